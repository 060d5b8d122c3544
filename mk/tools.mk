# Static test tools (tests/tools/*.c): the guest end of the VM scenarios and
# the host end in L1. One program per file; they may include rootfs/agent
# headers. $(BUILD)/test-initrd.cpio.gz is the guest initramfs with the tools
# appended in /bin (the kernel unpacks concatenated archives in order).
# flint-uffd.c is a host tool built by the Makefile ($(BUILD)/flint-uffd).
TEST_TOOL_SRCS := $(filter-out tests/tools/flint-uffd.c,$(wildcard tests/tools/*.c))
TEST_TOOLS := $(TEST_TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)
# Those the guest runs: snapedit is L1's alone (it edits state files).
GUEST_TEST_TOOLS := $(filter-out %/snapedit,$(TEST_TOOLS))
TEST_TOOL_CFLAGS := -std=gnu11 -static -O2 -pthread -D_GNU_SOURCE -Irootfs $(WARN)

# The smoke tests' tiny WALK guest as a kernel for the rig too (L1 gets
# $(BUILD)/tools/*): it touches guest memory with interrupts off, where KVM
# takes a page fault in the vCPU's own thread.
RIG_GUESTS := $(BUILD)/tools/tiny-walk

.PHONY: test-tools
test-tools: $(TEST_TOOLS) $(BUILD)/test-initrd.cpio.gz $(RIG_GUESTS)

$(BUILD)/tools/tiny-walk: tests/smoke/tiny-guest.S
	@mkdir -p $(dir $@)
	$(CC) -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,--build-id=none -DWALK -o $@ $<

$(BUILD)/tools/%: tests/tools/%.c $(wildcard tests/tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_TOOL_CFLAGS) -o $@ $< $(TOOL_LIBS)

# snapedit rewrites a state file's CRCs (zlib's, as snapfile.c's; the
# layout it walks is snapfile.c's too).
$(BUILD)/tools/snapedit: TOOL_LIBS := -lz

$(BUILD)/test-initrd.cpio.gz: $(BUILD)/initramfs.cpio.gz $(BUILD)/rootfs/gen_init_cpio $(TEST_TOOLS)
	for t in $(abspath $(GUEST_TEST_TOOLS)); do echo "file /bin/$${t##*/} $$t 0755 0 0"; done >$@.list
	$(BUILD)/rootfs/gen_init_cpio -t 0 $@.list >$@.cpio
	{ cat $(BUILD)/initramfs.cpio.gz; gzip -n <$@.cpio; } >$@.tmp
	rm -f $@.cpio
	rm -f $@.list
	mv $@.tmp $@
