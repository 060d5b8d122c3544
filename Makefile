# flint: build, guest artefacts, tests and benchmarks.
#   make            build the runner (build/flint)
#   make run        boot the default guest and run a demo command
#   make test       unit tests, host smoke tests, a short sanitized fuzz run,
#                   the jail tests (as root), then the VM scenarios (in the
#                   rig on hosts whose KVM cannot run a stock kernel)
#   make install    flint, flint-jail, the guest kernel and root file system
#                   under $(PREFIX) (default /usr/local; DESTDIR for staging);
#                   make uninstall removes them

CC ?= cc
BUILD ?= build
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wmissing-prototypes -Wstrict-prototypes -Wshadow -Werror
# -iquote: project headers are included with quotes only, and qualified by
# folder ("core/gmem.h", "blk/blk.h"; virtio/'s own mmio.h, vq.h and
# virtio.h at its top), so that runner/core/seccomp.h does not hide
# libseccomp's <seccomp.h>.
CPPFLAGS += -D_GNU_SOURCE -iquote runner -iquote virtio -iquote rootfs
# Each function and object in a section of its own, so that the static
# flint's link drops what nothing calls (-Wl,--gc-sections): 375 KB less
# text, and fewer pages mapped at every launch (the RSS flint bench counts).
FLINT_CFLAGS := -std=gnu11 $(WARN) -pthread -MMD -MP -ffunction-sections -fdata-sections
LDLIBS_FLINT := -pthread -luring -lseccomp -ljansson -lmicrohttpd -lz -larchive \
	-lhttp_parser -lnettle
# The static links of libarchive (the guest agent, the static flint):
# Debian's libarchive.a and what its tar reader, pax writer and disk
# reader and writer need, behind rootfs/agent/archive_static.o (which
# keeps its xar writer, and with it libxml2 and ICU, out).
ARCHIVE_STATIC_OBJ := $(BUILD)/rootfs/agent/archive_static.o
ARCHIVE_STATIC := -larchive -lnettle -lacl -llzma -lzstd -llz4 -lbz2 -lz

RUNNER_SRCS := $(wildcard runner/*/*.c virtio/*.c virtio/*/*.c) rootfs/agent/proto.c \
	rootfs/agent/tarcopy.c
RUNNER_LIB_SRCS := $(filter-out runner/cmd/main.c,$(RUNNER_SRCS))
RUNNER_OBJS := $(RUNNER_SRCS:%.c=$(BUILD)/%.o)
RUNNER_LIB_OBJS := $(RUNNER_LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/%.o)

.PHONY: all clean test unit smoke vm-test run kernel rootfs rig bench-boot bench-snapshot bench-serve bench-run bench-api bench-blk bench-net bench-vsock fmt
.PHONY: install uninstall FORCE
all: $(BUILD)/flint

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(FLINT_CFLAGS) $(CFLAGS) -c -o $@ $<

# flint is linked statically. A dynamic flint loaded some 30 shared
# libraries (libmicrohttpd's GnuTLS and its own, libarchive's) at every
# launch: 7 ms on a host, 74 ms in the rig's L1 against 9 ms static, paid
# by every flint run, restore and serve VM. The jail holds no shared
# libraries either. libmicrohttpd: Debian's libmicrohttpd.a needs gnutls,
# which cannot be linked statically (no libp11-kit.a), so flint links one
# built without HTTPS from Debian's source package of the installed
# libmicrohttpd-dev's version (mk/build-mhd.sh: fetched once into
# $(FLINT_CACHE), ~10 s to build once per machine); its header is checked
# to be the one flint's objects were compiled against. flint's API speaks
# plain HTTP on a Unix socket. The unit tests keep -lmicrohttpd.
MHD_DIR := $(BUILD)/mhd
MHD_LIB := $(MHD_DIR)/lib/libmicrohttpd.a
FLINT_STATIC_LIBS = $(ARCHIVE_STATIC_OBJ) $(MHD_LIB) \
	$(filter-out -lmicrohttpd -larchive,$(LDLIBS_FLINT)) $(ARCHIVE_STATIC)

$(MHD_LIB): mk/build-mhd.sh $(wildcard /usr/include/microhttpd.h)
	CC='$(CC)' mk/build-mhd.sh $(MHD_DIR)

# mk/boot-order.ld puts the functions and read-only data a launch touches
# first, libc's and the libraries' included, so that the pages a boot
# touches share few of their 64 KiB fault-around windows with code it never
# runs: profiled in the rig by `make boot-order` (mk/boot-order.sh says
# how), and rerun when flint bench shows the RSS outside guest RAM grown. A
# section it names that no longer exists matches nothing.
FLINT_LINK = $(CC) $(CFLAGS) -static -Wl,--gc-sections
$(BUILD)/flint: $(RUNNER_OBJS) $(ARCHIVE_STATIC_OBJ) $(MHD_LIB) mk/boot-order.ld
	$(FLINT_LINK) -Wl,-T,mk/boot-order.ld -o $@ $(RUNNER_OBJS) $(FLINT_STATIC_LIBS)

.PHONY: boot-order
boot-order: $(RUNNER_OBJS) $(ARCHIVE_STATIC_OBJ) $(MHD_LIB)
	CC='$(CC)' mk/boot-order.sh $(BUILD) '$(FLINT_LINK)' '$(RUNNER_OBJS) $(FLINT_STATIC_LIBS)'

$(BUILD)/unit-tests: $(UNIT_OBJS) $(RUNNER_LIB_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(shell pkg-config --libs criterion) $(LDLIBS_FLINT)

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests --jobs 2

# Host smoke tests: a tiny hand-written guest, no Linux; milliseconds.
smoke: $(BUILD)/flint $(BUILD)/vm-pause-test
	sh tests/smoke/run.sh $(BUILD)/flint $(BUILD)

# The pause smoke test: flint's objects, the VM driven through vm_act() from
# another thread as the API will (tests/smoke/pause.c).
$(BUILD)/vm-pause-test: tests/smoke/pause.c $(RUNNER_LIB_OBJS)
	$(CC) $(CPPFLAGS) $(FLINT_CFLAGS) $(CFLAGS) -o $@ $^ $(LDLIBS_FLINT)

# flint-uffd (tests/tools/flint-uffd.c): the Uffd backend's page-fault
# handler for the tests and benches, with uffd.c's protocol code (and what
# that links) and jansson; static, so that the rig carries it into L1 as
# $(BUILD)/tools/flint-uffd (mk/tools.mk leaves it out of the guest's
# tools). test_uffd runs it from beside unit-tests.
FLINT_UFFD_OBJS := $(addprefix $(BUILD)/runner/,snapshot/uffd.o core/gmem.o core/util.o core/study.o)
$(BUILD)/flint-uffd: $(BUILD)/tests/tools/flint-uffd.o $(FLINT_UFFD_OBJS)
	$(CC) $(CFLAGS) -static -o $@ $^ -pthread -ljansson
$(BUILD)/tools/flint-uffd: $(BUILD)/flint-uffd
	@mkdir -p $(dir $@)
	strip -o $@ $<
unit smoke: $(BUILD)/flint-uffd
vm-test: $(BUILD)/tools/flint-uffd
-include $(BUILD)/tests/tools/flint-uffd.d


include mk/tools.mk
include mk/guest.mk
include mk/fuzz.mk
include mk/jail.mk

# flint run --image's Debian userland for the rig's f3 scenario: debootstrap
# where it is installed and the mirror answers, else this host's own
# packages (tests/vm/debian-tar.sh); the rig carries $(BUILD)/vm-images/.
$(BUILD)/vm-images/debian.tar.xz: tests/vm/debian-tar.sh
	@mkdir -p $(dir $@)
	tests/vm/debian-tar.sh $@
vm-test: $(BUILD)/vm-images/debian.tar.xz

test: unit smoke fuzz-smoke jail-test vm-test

# Launch-to-init and VM exits against QEMU microvm, in one rig run.
BENCH_RUNS ?= 10
bench-boot: $(BUILD)/flint
	bench/boot/run $(BENCH_RUNS)

# Snapshot create and restore to the first response (File, Uffd, with a
# loading set), exits and memory with 1 and 10 VMs, against QEMU microvm's
# migrate and -incoming, in one rig run.
bench-snapshot: $(BUILD)/flint $(BUILD)/tools/flint-uffd
	bench/snapshot/run $(BENCH_RUNS)

# flint serve per request (warm pool, cold, reuse) against a cold flint run
# and QEMU -M microvm restored per request, in one rig run.
bench-serve: $(BUILD)/flint
	bench/serve/run $(BENCH_RUNS)

# `flint run --image DIR -- true` end to end and a small job (a source tree
# copied in, checksummed, the result copied out) against QEMU microvm with
# the same image and agent and against gVisor's runsc do, in one rig run.
BENCH_RUN_N ?= 20
bench-run: $(BUILD)/flint
	BUILD=$(BUILD) bench/run/run $(BENCH_RUN_N)

# Launch to the API socket's first answer against QEMU -S's QMP, on this
# host (bench/api/run rig: API-driven boot against command-line boot).
bench-api: $(BUILD)/flint
	bench/api/run host

# virtio-blk IOPS, throughput, exits and interrupts per request against QEMU
# microvm (virtio-blk-device, aio=io_uring), in one rig run.
bench-blk: $(BUILD)/flint
	bench/blk/run 3

# TCP over virtio-net (QEMU: virtio-net-device, tap, vhost=off) and vsock
# (QEMU: vhost-vsock-device) throughput, latency, exits and interrupts per
# MiB against QEMU microvm, one rig run each.
bench-net: $(BUILD)/flint
	bench/net/run 3
bench-vsock: $(BUILD)/flint
	bench/vsock/run 3

clean:
	rm -rf $(BUILD)

# Every C file in the tree, as .clang-format says (clang-format 14, Debian 12's).
fmt:
	clang-format -i $$(git ls-files '*.[ch]')

# ---- install ---------------------------------------------------------------
# flint is installed statically linked (the build the jail runs, which holds
# no shared libraries), so that one binary serves both `flint` and
# `flint-jail --exec-file $(PREFIX)/bin/flint`; `flint run` finds the guest
# in $(PREFIX)/share/flint (runner/config/home.h), so PREFIX is compiled in.
# INSTALL_KERNEL and INSTALL_ROOTFS install a guest built elsewhere.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
DATADIR := $(PREFIX)/share/flint
INSTALL_KERNEL ?= $(BUILD)/vmlinux
INSTALL_ROOTFS ?= $(BUILD)/rootfs.ext4

# The prefix home.o was built with: rewritten (and home.o rebuilt) only when
# PREFIX changes.
$(BUILD)/prefix: FORCE
	@mkdir -p $(BUILD)
	@echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' >$@
$(BUILD)/runner/config/home.o: $(BUILD)/prefix
$(BUILD)/runner/config/home.o: CPPFLAGS += -DFLINT_PREFIX='"$(PREFIX)"'

install: $(BUILD)/jail/flint $(BUILD)/flint-jail $(INSTALL_KERNEL) $(INSTALL_ROOTFS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)
	install -m 755 -s $(BUILD)/jail/flint $(DESTDIR)$(BINDIR)/flint
	install -m 755 -s $(BUILD)/flint-jail $(DESTDIR)$(BINDIR)/flint-jail
	install -m 644 $(INSTALL_KERNEL) $(DESTDIR)$(DATADIR)/vmlinux
	install -m 644 $(INSTALL_ROOTFS) $(DESTDIR)$(DATADIR)/rootfs.ext4

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/flint $(DESTDIR)$(BINDIR)/flint-jail \
		$(DESTDIR)$(DATADIR)/vmlinux $(DESTDIR)$(DATADIR)/rootfs.ext4
	-rmdir $(DESTDIR)$(DATADIR) 2>/dev/null

-include $(RUNNER_OBJS:.o=.d) $(UNIT_OBJS:.o=.d)
