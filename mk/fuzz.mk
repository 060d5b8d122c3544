# libFuzzer harnesses (tests/fuzz/fuzz_*.c), built with clang-14 and
# ASan + UBSan against the real module sources.
#   make fuzz-smoke   each harness for FUZZ_SMOKE_TIME seconds on its seeds
#   make fuzz         each harness for FUZZ_TIME seconds
# Needs the Debian packages clang-14 and libclang-rt-14-dev (the fuzzer and
# sanitizer runtimes).

FUZZ_CC ?= clang-14
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined $(WARN)
FUZZ_TIME ?= 600
FUZZ_SMOKE_TIME ?= 20
FUZZ_HARNESSES := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_HARNESSES:%=$(BUILD)/fuzz/%)

# Module sources each harness links (no main, nothing that opens /dev/kvm).
FUZZ_SRCS_fuzz_vq := virtio/vq.c runner/core/gmem.c runner/core/study.c runner/core/wire.c runner/core/util.c
FUZZ_SRCS_fuzz_blk := virtio/blk/blk_req.c
FUZZ_SRCS_fuzz_vsock := virtio/vsock/vsock_pkt.c virtio/vsock/vsock_conn.c virtio/vsock/vsock_uds.c \
	runner/core/util.c
FUZZ_SRCS_fuzz_agent := rootfs/agent/proto.c
# The device on a real io_uring event loop, a socket pair for its tap.
FUZZ_SRCS_fuzz_net := virtio/net/net.c virtio/net/net_hdr.c virtio/net/tap.c virtio/net/stream.c virtio/net/passt.c virtio/vq.c runner/core/ratelimit.c runner/core/wire.c \
	runner/core/gmem.c runner/core/study.c runner/core/evloop.c runner/core/evwait.c runner/core/uring.c runner/core/util.c
FUZZ_LIBS_fuzz_net := -luring
# The kernel and initrd loader and the zero page (a malformed vmlinux or
# bzImage), into guest memory of its own.
FUZZ_SRCS_fuzz_loader := runner/x86/loader.c runner/core/gmem.c runner/core/study.c runner/core/wire.c \
	runner/core/util.c
# The stream protocol's decoder (--net user's frames from passt).
FUZZ_SRCS_fuzz_net_stream := virtio/net/stream.c
# The API's router and controller, with the JSON parsing and the config
# rules behind them (no HTTP: libmicrohttpd parses the request line and
# headers; the harness hands over what it would).
FUZZ_SRCS_fuzz_api := runner/api/router.c runner/api/controller.c runner/config/config_json.c \
	runner/config/jfield.c runner/config/vm_config.c runner/config/cmdline.c runner/core/mailbox.c \
	runner/core/util.c runner/core/ratelimit.c runner/core/wire.c runner/mmds/mmds.c
FUZZ_LIBS_fuzz_api := -ljansson -lnettle -pthread
# The entropy device on a real io_uring event loop (its rate limiter's timer).
FUZZ_SRCS_fuzz_rng := virtio/rng/rng.c virtio/vq.c runner/core/gmem.c runner/core/study.c runner/core/wire.c \
	runner/core/evloop.c runner/core/evwait.c runner/core/uring.c runner/core/util.c runner/core/ratelimit.c
FUZZ_LIBS_fuzz_rng := -luring
# virtio-pmem's flush queue on a real io_uring event loop, its syncs on a
# ring of its own (blk_ring.c), of a memfd.
FUZZ_SRCS_fuzz_pmem := virtio/pmem/pmem.c virtio/blk/blk_ring.c virtio/vq.c runner/core/gmem.c \
	runner/core/study.c runner/core/wire.c runner/core/evloop.c runner/core/evwait.c runner/core/uring.c \
	runner/core/util.c runner/core/ratelimit.c
FUZZ_LIBS_fuzz_pmem := -luring
# The balloon on a real io_uring event loop (its statistics timer), its
# inflate discarding the harness's own RAM.
FUZZ_SRCS_fuzz_balloon := virtio/balloon/balloon.c virtio/vq.c runner/core/gmem.c runner/core/study.c \
	runner/core/wire.c runner/core/evloop.c runner/core/evwait.c runner/core/uring.c runner/core/util.c
FUZZ_LIBS_fuzz_balloon := -luring

# virtio-mem's request queue, its VM glue a mirror of the region that
# checks every plug and unplug; then its saved state's round trip and
# the input's rest restored as one.
FUZZ_SRCS_fuzz_vmem := virtio/mem/mem.c virtio/vq.c runner/core/gmem.c runner/core/study.c \
	runner/core/wire.c runner/core/util.c

# The snapshot state file's reader (and writer, for the round trip), with
# the vm_config it parses.
FUZZ_SRCS_fuzz_snapfile := runner/snapshot/snapfile.c runner/core/wire.c runner/config/config_json.c \
	runner/config/jfield.c runner/config/vm_config.c runner/config/cmdline.c runner/core/util.c \
	runner/core/ratelimit.c
FUZZ_LIBS_fuzz_snapfile := -ljansson -lz
# The loading set's reader and writer, and its faulting in (on anonymous
# memory of two regions).
FUZZ_SRCS_fuzz_workset := runner/snapshot/workset.c runner/core/gmem_snap.c runner/core/gmem.c \
	runner/core/study.c runner/core/wire.c runner/core/util.c
FUZZ_LIBS_fuzz_workset := -lz
# The decoders of the state file's sections (vCPU, VM, memory layout,
# serial, i8042, virtqueue, virtio-mmio on a fake device).
FUZZ_SRCS_fuzz_snapsections := runner/x86/vcpu_state.c runner/x86/vm_state.c runner/legacy/ioapic.c \
	runner/core/ratelimit.c runner/core/gmem_snap.c \
	runner/core/gmem.c runner/core/study.c runner/core/wire.c runner/core/util.c \
	runner/legacy/serial.c runner/legacy/legacy.c runner/core/control.c runner/core/mailbox.c \
	virtio/vq.c virtio/mmio.c
FUZZ_LIBS_fuzz_snapsections := -pthread
# flint serve's function configuration (PUT /functions/{name}) with the
# JSON field reader behind it.
FUZZ_SRCS_fuzz_serve_fn := runner/serve/fn.c runner/config/jfield.c runner/core/util.c
FUZZ_LIBS_fuzz_serve_fn := -ljansson
# flint serve's request path before a VM: the endpoint, then a PUT's body.
FUZZ_SRCS_fuzz_serve_request := runner/serve/route.c runner/serve/fn.c runner/config/jfield.c \
	runner/core/util.c
FUZZ_LIBS_fuzz_serve_request := -ljansson
# MMDS's guest side: the TCP endpoint, the HTTP answers, the data store.
FUZZ_SRCS_fuzz_mmds := runner/mmds/stack.c runner/mmds/http.c runner/mmds/mmds.c runner/core/util.c
FUZZ_LIBS_fuzz_mmds := -ljansson -lhttp_parser -lnettle -pthread
# flint bench's phase lines, as a VMM writes them on --phase-fd.
FUZZ_SRCS_fuzz_bench_phase := runner/bench/phase.c runner/bench/record.c runner/core/util.c
# --copy-out's receiving end (a guest's tar stream), with libarchive; its
# bounds on names, entries and headers small, so that the fuzzer's streams reach
# them.
FUZZ_SRCS_fuzz_tarcopy := rootfs/agent/tarcopy.c
FUZZ_LIBS_fuzz_tarcopy := -larchive
FUZZ_DEFS_fuzz_tarcopy := -DTARCOPY_NAME_MAX=256 -DTARCOPY_NAMES_MAX=4096u -DTARCOPY_MAX_ENTRIES=64u \
	-DTARCOPY_HEADER_MAX=65536u

.PHONY: fuzz fuzz-smoke fuzz-build
fuzz-build: $(FUZZ_BINS)

define fuzz_rule
$(BUILD)/fuzz/$(1): tests/fuzz/$(1).c $(FUZZ_SRCS_$(1)) $(wildcard runner/*/*.h virtio/*.h virtio/*/*.h rootfs/agent/*.h)
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(CPPFLAGS) $$(FUZZ_CFLAGS) $(FUZZ_DEFS_$(1)) -o $$@ $$< $(FUZZ_SRCS_$(1)) $(FUZZ_LIBS_$(1))
endef
$(foreach h,$(FUZZ_HARNESSES),$(eval $(call fuzz_rule,$(h))))

# Each harness runs on a scratch copy of its seeds, so the corpus it grows
# never lands in the tree; a crash reproducer is left in $(BUILD)/fuzz/.
define fuzz_run
	@set -e; for h in $(FUZZ_HARNESSES); do \
		seeds=tests/fuzz/corpus/$${h#fuzz_}; work=$(BUILD)/fuzz/corpus-$$h; \
		mkdir -p $$work; \
		log=$(BUILD)/fuzz/$$h.log; \
		echo "fuzz: $$h for $(1) s (log: $$log)"; \
		if $(BUILD)/fuzz/$$h -max_total_time=$(1) -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=$(BUILD)/fuzz/$$h- -print_final_stats=1 \
			$$work $$seeds >$$log 2>&1; then \
			grep -E '^(Done|stat::(number_of_executed_units|peak_rss_mb))' $$log; \
		else \
			tail -n 60 $$log; echo "fuzz: $$h FAILED"; exit 1; \
		fi; \
	done
endef

fuzz-smoke: $(FUZZ_BINS)
	$(call fuzz_run,$(FUZZ_SMOKE_TIME))

fuzz: $(FUZZ_BINS)
	$(call fuzz_run,$(FUZZ_TIME))
