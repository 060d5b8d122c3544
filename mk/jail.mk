# flint-jail (jail/): the hardened launcher, and the static flint it runs.
#   make build/flint-jail   the jailer: static, linked with libcap
#   make build/jail/flint   a copy of build/flint, which is static (the jail
#                           holds no shared libraries, like Firecracker's
#                           musl builds)
#   make jail-test          host tests (tests/jail/run.sh, and races.sh: the
#                           jail's user against the jailer; they need root)
#   make bench-jail         launch to init through flint-jail against flint
#                           alone, in one rig run (bench/jail/)
# The rig carries both binaries into L1 as $(BUILD)/tools/flint-jail and
# $(BUILD)/tools/flint for the a0-jail scenarios.

JAIL_SRCS := $(wildcard jail/*.c)
JAIL_OBJS := $(JAIL_SRCS:%.c=$(BUILD)/%.o)
# What the jailer shares with flint: reading the cgroup files, where flint
# run finds its guest, and flint's parsing of its arguments and config file
# (jail/plan.c), with what they need (--seccomp-test-forbidden's thread
# names: seccomp.o and libseccomp; JSON: jansson), and flint's reader of a
# snapshot's state file (snapfile.o, wire.o; its CRC32: zlib), and flint
# run's image builder and its cache for --image (image.o, build.o, cache.o:
# nettle, zlib), and the start of passt for --net user (passt.o, stream.o),
# no KVM code.
# All from Debian's .a files: the jailer stays static.
JAIL_RUNNER_OBJS := $(addprefix $(BUILD)/runner/,core/util.o core/cgroupfs.o config/home.o \
	config/cli.o config/cmdline.o config/vm_config.o config/vm_config_cli.o \
	config/config_json.o config/jfield.o core/ratelimit.o core/seccomp.o \
	snapshot/snapfile.o core/wire.o image/image.o image/build.o image/cache.o) \
	$(BUILD)/virtio/net/passt.o $(BUILD)/virtio/net/stream.o
JAIL_LDLIBS_OWN := -lcap -lseccomp -ljansson -lz -lnettle
# The unit tests link the modules without main and the privilege drop
# (libcap: fs.c lowers the capabilities while it walks a user's path).
JAIL_LIB_OBJS := $(filter-out $(BUILD)/jail/main.o $(BUILD)/jail/privs.o $(BUILD)/jail/jimage.o,\
	$(JAIL_OBJS))
JAIL_RIG_BINS := $(BUILD)/tools/flint-jail $(BUILD)/tools/flint

.PHONY: jail-test bench-jail

$(BUILD)/flint-jail: $(JAIL_OBJS) $(JAIL_RUNNER_OBJS)
	$(CC) $(CFLAGS) -static -o $@ $^ $(JAIL_LDLIBS_OWN)

# The jail's flint is flint itself, static (the Makefile's rule).
$(BUILD)/jail/flint: $(BUILD)/flint
	@mkdir -p $(dir $@)
	cp $< $@

# A program run as --exec-file by the host tests: reports what it sees.
$(BUILD)/jail/probe: tests/jail/probe.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -static -O2 -D_GNU_SOURCE $(WARN) -o $@ $<

# The race tests' jailer: the same sources with -DJAIL_TEST_PAUSE, stopping
# itself between steps (jail_test_pause in jail/err.h).
JAIL_PAUSE_OBJS := $(JAIL_SRCS:jail/%.c=$(BUILD)/jail-pause/%.o)
$(BUILD)/jail-pause/%.o: jail/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DJAIL_TEST_PAUSE $(FLINT_CFLAGS) $(CFLAGS) -c -o $@ $<
$(BUILD)/jail/flint-jail-pause: $(JAIL_PAUSE_OBJS) $(JAIL_RUNNER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -o $@ $^ $(JAIL_LDLIBS_OWN)

# The jail's user in the race tests: swaps names while the jailer works.
$(BUILD)/jail/racer: tests/jail/racer.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -static -O2 -D_GNU_SOURCE $(WARN) -o $@ $<

$(BUILD)/tools/flint-jail: $(BUILD)/flint-jail
	@mkdir -p $(dir $@)
	strip -o $@ $<
$(BUILD)/tools/flint: $(BUILD)/jail/flint
	@mkdir -p $(dir $@)
	strip -o $@ $<

$(BUILD)/unit-tests: $(JAIL_LIB_OBJS)
$(BUILD)/unit-tests: LDLIBS_FLINT += -lcap
$(BUILD)/tests/unit/test_jail%.o: CPPFLAGS += -iquote jail

vm-test: $(JAIL_RIG_BINS)

# ($(BUILD)/flint: run.sh's dynamic exec file and flint's own memory check.)
jail-test: $(BUILD)/flint-jail $(BUILD)/jail/flint $(BUILD)/jail/probe $(BUILD)/flint \
		$(BUILD)/jail/flint-jail-pause $(BUILD)/jail/racer $(BUILD)/flint-uffd
	sh tests/jail/run.sh $(BUILD); a=$$?; sh tests/jail/races.sh $(BUILD) && [ $$a = 0 ]

bench-jail: $(BUILD)/flint-jail $(BUILD)/jail/flint
	bench/jail/run $(BENCH_RUNS)

-include $(JAIL_OBJS:.o=.d) $(JAIL_PAUSE_OBJS:.o=.d)
