/* libFuzzer harness for virtio/pmem/pmem.c: the fuzzer plays a hostile
 * guest that writes the whole of guest RAM (descriptor table, rings,
 * buffers) and picks the queue size, and the host's choice of rate
 * limiter, a change of it while a batch waits, and a reset in the middle.
 * The device runs for real: its flushes are fdatasyncs of a memfd on its
 * own io_uring. The event loop is only started to be stopped (its timer
 * and polls cancelled, as when a VM stops), then a snapshot's quiesce
 * answers the sync under way itself and gives back a held batch. ASan and
 * UBSan are the oracle, with the checks below: after the quiesce nothing
 * is popped and unanswered, no more requests are answered than two queues
 * hold, and every sync answers a request but one a reset cut short.
 *
 * Input layout:
 *   0      bit 0 reset after the first kick, bit 1 a new limit after it,
 *          bit 7 EVENT_IDX
 *   1      queue size log2 (mod 5: 1 to 16 entries)
 *   2      ops bucket size (0: no ops limit)
 *   3      refill time in ms (0: no limit)
 *   then   guest RAM from address 0 (zeros past the input)
 * The rings are at 0x0/0x100/0x200; buffers may be anywhere in the 64 KiB
 * of RAM, rings included. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/gmem.h"
#include "fuzz.h"
#include "pmem/pmem.h"
#include "vq.h"

#define RAM 0x10000
#define HDR 4

static struct gmem *g;
static struct evloop *loop;
static struct pmem *d;
static struct vq vq;

static void host_used(void *t, unsigned q)
{
	(void)t;
	CHECK(q == 0);
}

static void host_needs_reset(void *t)
{
	(void)t;
}

static const struct virtio_host host = {.used = host_used, .needs_reset = host_needs_reset};

static void setup(void)
{
	struct pmem_params p = {.id = "fuzz", .start = 1ULL << 32, .size = 2 << 20};
	int fd = memfd_create("fuzz-pmem", MFD_CLOEXEC);

	log_verbose = 0;
	if (fd < 0 || ftruncate(fd, 4096) || gmem_create(&g, RAM) || evloop_create(&loop, 64))
		__builtin_trap();
	p.fd = fd;
	p.file_bytes = 4096;
	p.loop = loop;
	if (pmem_create(&d, &p))
		__builtin_trap();
}

static void start(uint32_t qsize, bool event_idx)
{
	vq_reset(&vq);
	CHECK(vq_activate(&vq, g, qsize, 0, 0x100, 0x200, event_idx) == 0);
	CHECK(pmem_ops.activate(d, 0, &vq, &host) == 0);
}

/* Stop the loop (cancelling the device's timer and polls), then quiesce
 * as a snapshot does. */
static void run(void)
{
	evloop_stop(loop);
	CHECK(evloop_run(loop) == 0);
	pmem_quiesce(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pmem_stats before, after;
	struct ratelimit_cfg cfg;
	uint32_t qsize;
	uint8_t *ram;
	size_t img;

	if (size < HDR)
		return 0;
	if (!d)
		setup();
	qsize = 1u << (data[1] % 5);
	cfg = (struct ratelimit_cfg){.ops = {.size = data[2], .refill_time_ms = data[3]}};
	ram = gmem_ptr(g, 0, RAM);
	img = size - HDR < RAM ? size - HDR : RAM;
	memset(ram, 0, RAM);
	memcpy(ram, data + HDR, img);

	pmem_ops.reset(d);
	CHECK(pmem_set_ratelimit(d, &(struct ratelimit_cfg){0}) == 0);
	CHECK(pmem_set_ratelimit(d, &cfg) == 0);
	pmem_get_stats(d, &before);
	start(qsize, data[0] & 0x80);
	pmem_ops.notify(d, 0);
	if (data[0] & 2) {
		cfg.ops.size /= 2;
		cfg.ops.refill_time_ms *= 2;
		CHECK(pmem_set_ratelimit(d, &cfg) == 0);
	}
	if (data[0] & 1) {
		pmem_ops.reset(d);
		start(qsize, data[0] & 0x80);
	}
	pmem_ops.notify(d, 0);
	run();
	/* Nothing popped is left unanswered. */
	CHECK(vq.broken || vq.last_avail == vq.next_used);
	pmem_get_stats(d, &after);
	/* Two rounds (a reset between) of at most a queue's worth each. */
	CHECK(after.requests - before.requests <= 2u * qsize);
	/* Each sync answered a request, but one a reset dropped. */
	CHECK(after.syncs - before.syncs <= after.requests - before.requests + (data[0] & 1));
	return 0;
}
