# Guest kernel, root file system, the rig and `make run`. Filled in by the
# kernel, rootfs and rig work; see kernel-config/, rootfs/, tests/vm/.

# ---- guest kernel and initramfs (kernel-config/, rootfs/) ----------------
#   make kernel   $(BUILD)/vmlinux: tinyconfig + kernel-config/flint.config,
#                 built once per machine, cached in $(FLINT_CACHE)
#   make rootfs   $(BUILD)/initramfs.cpio.gz: rootfs/init.c as /init + busybox
#   make rootfs-img   $(BUILD)/rootfs.ext4: the same files as an ext4 image,
#                 to boot from a drive (--drive path=... --append "root=/dev/vda rw")
#   make guest-check   boot both in QEMU microvm (TCG, ~1 min), check /init

BUSYBOX ?= /bin/busybox
GUEST_KERNEL_DEPS := kernel-config/flint.config kernel-config/required.txt \
	kernel-config/build.sh
GUEST_INIT_CFLAGS := -std=gnu11 -static -Os -s -D_GNU_SOURCE $(WARN)
GUEST_ETC := $(wildcard rootfs/etc/*)

kernel: $(BUILD)/vmlinux
rootfs: $(BUILD)/initramfs.cpio.gz

$(BUILD)/vmlinux: $(GUEST_KERNEL_DEPS)
	kernel-config/build.sh $@

$(BUILD)/rootfs/init: rootfs/init.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_INIT_CFLAGS) -o $@ $<

# The guest agent of `flint run` (rootfs/agent/), /sbin/flint-agent.
GUEST_AGENT := $(BUILD)/rootfs/flint-agent
GUEST_AGENT_SRCS := rootfs/agent/agent.c rootfs/agent/proto.c rootfs/agent/tarcopy.c \
	rootfs/agent/archive_static.c
$(GUEST_AGENT): $(GUEST_AGENT_SRCS) rootfs/agent/proto.h rootfs/agent/tarcopy.h
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_INIT_CFLAGS) -o $@ $(GUEST_AGENT_SRCS) $(ARCHIVE_STATIC)

# The kernel's own cpio writer: it adds /dev/console without needing root.
$(BUILD)/rootfs/gen_init_cpio: kernel-config/build.sh
	@mkdir -p $(dir $@)
	src=$$(kernel-config/build.sh src) && \
		$(CC) -O2 -o $@ $$src/usr/gen_init_cpio.c

$(BUILD)/initramfs.cpio.gz: rootfs/mkinitramfs.sh rootfs/contents.sh $(BUILD)/rootfs/gen_init_cpio \
		$(BUILD)/rootfs/init $(BUSYBOX) $(GUEST_AGENT) $(GUEST_ETC)
	rootfs/mkinitramfs.sh $@ $(BUILD)/rootfs/gen_init_cpio \
		$(BUILD)/rootfs/init $(BUSYBOX) $(GUEST_AGENT)

# -- ext4 root image (rootfs/mkext4.sh): mke2fs -d, no root or loop mounts;
# reproducible (fixed UUID, hash seed, owners and times). The VM tests carry
# it into the rig (ROOTFS there) for the virtio-blk scenarios.
ROOTFS_IMG_SIZE ?= 64M
rootfs-img: $(BUILD)/rootfs.ext4

$(BUILD)/rootfs.ext4: rootfs/mkext4.sh rootfs/contents.sh $(BUILD)/rootfs/init \
		$(BUSYBOX) $(GUEST_AGENT) $(GUEST_ETC)
	rootfs/mkext4.sh $@ $(BUILD)/rootfs/init $(BUSYBOX) $(GUEST_AGENT) $(ROOTFS_IMG_SIZE)

vm-test rig-shell: $(BUILD)/rootfs.ext4
# -- end of ext4 root image

.PHONY: guest-check rootfs-img
guest-check: $(BUILD)/vmlinux $(BUILD)/initramfs.cpio.gz $(BUILD)/rootfs.ext4
	rootfs/qemu-check.sh $(BUILD)/vmlinux $(BUILD)/initramfs.cpio.gz $(BUILD)/rootfs.ext4

# ---- end of guest kernel and initramfs -----------------------------------

# ---- rig / run (tests/vm/) ------------------------------------------------
#   make vm-test    tests/vm/scenarios: inside the nested-KVM rig, or directly
#                   where this host's KVM can boot Linux (tests/vm/rig test)
#   make run        flint run: boot the default guest, run a demo command through
#                   the guest agent; prints its output and timings (in the rig
#                   on hosts like these; it says so)
#   make rig        download the L1 kernel, build the rig's cached initramfs
#   make rig-shell  a shell in L1 with flint, the guest and QEMU
# RIG_FLAGS=--verbose shows L1's boot and every scenario's output;
# VM_TESTS="boot smp" runs only the scenarios whose names contain those words.

RIG := tests/vm/rig
RIG_FLAGS ?=
RIG_ENV := BUILD=$(BUILD)
GUEST_ARTEFACTS := $(BUILD)/flint $(BUILD)/vmlinux $(BUILD)/initramfs.cpio.gz \
	$(BUILD)/rootfs.ext4 $(TEST_TOOLS) $(RIG_GUESTS) $(BUILD)/test-initrd.cpio.gz
RUN_CMD ?= sh -c 'echo hello from the guest: $$(uname -sr), $$(nproc) vCPUs, $$(grep MemTotal /proc/meminfo); grep ext4 /proc/mounts; echo and this goes to stderr >&2'

.PHONY: rig-shell

vm-test: $(GUEST_ARTEFACTS)
	$(RIG_ENV) $(RIG) $(RIG_FLAGS) test $(VM_TESTS)

# The demo is flint's main job: `flint run` boots the ext4 root file system
# (read-only, so the image in $(BUILD) stays as built), runs the command
# through the guest agent over vsock, relays its output and exits with its
# status; --timings shows launch to init, to agent ready, and command time.
run: $(GUEST_ARTEFACTS)
	@$(RIG_ENV) $(RIG) $(RIG_FLAGS) run -- run --kernel $(BUILD)/vmlinux \
		--rootfs $(BUILD)/rootfs.ext4 --mem 128M --vcpus 2 --timings -- $(RUN_CMD)

rig:
	$(RIG_ENV) $(RIG) $(RIG_FLAGS) prepare

rig-shell: $(GUEST_ARTEFACTS)
	$(RIG_ENV) $(RIG) $(RIG_FLAGS) shell

# ---- end of rig / run ------------------------------------------------------
