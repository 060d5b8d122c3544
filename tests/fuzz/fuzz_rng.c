/* libFuzzer harness for virtio/rng/rng.c: the fuzzer plays a hostile guest
 * that writes the whole of guest RAM (descriptor table, rings, buffers) and
 * picks the queue size, and the host's choice of rate limiter, a change of
 * it while requests wait, and a reset in the middle. The device runs for
 * real: getrandom fills the guest's buffers, a throttled request arms a
 * timer on a real io_uring event loop, which the run then stops (cancelling
 * it). The limiter reads a clock the harness moves 1 ms per input. ASan and
 * UBSan are the oracle, with the checks below on the counters.
 *
 * Input layout:
 *   0      bit 0 reset after the first kick, bit 1 a new limit after it,
 *          bit 7 EVENT_IDX
 *   1      queue size log2 (mod 5: 1 to 16 entries)
 *   2      ops bucket size (0: no ops limit)
 *   3      bandwidth bucket size in 256-byte units (0: no bandwidth limit)
 *   4      refill time in ms of both buckets (0: no limit)
 *   then   guest RAM from address 0 (zeros past the input)
 * The rings are at 0x0/0x100/0x200; buffers may be anywhere in the 64 KiB
 * of RAM, rings included. */
#include <stdint.h>
#include <string.h>

#include "core/evloop.h"
#include "core/gmem.h"
#include "fuzz.h"
#include "rng/rng.h"
#include "rng/rng_test.h"
#include "vq.h"

#define RAM 0x10000
#define HDR 5

static struct gmem *g;
static struct evloop *loop;
static struct rng *r;
static struct vq vq;
static uint64_t fake_now = 1;

static uint64_t fake_clock(void)
{
	return fake_now;
}

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
	struct rng_params p = {0};

	log_verbose = 0;
	if (gmem_create(&g, RAM) || evloop_create(&loop, 64))
		__builtin_trap();
	rng_test_set_clock(fake_clock);
	p.loop = loop;
	if (rng_create(&r, &p))
		__builtin_trap();
}

static void start(uint32_t qsize, bool event_idx)
{
	vq_reset(&vq);
	CHECK(vq_activate(&vq, g, qsize, 0, 0x100, 0x200, event_idx) == 0);
	CHECK(rng_ops.activate(r, 0, &vq, &host) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rng_stats before, after;
	struct ratelimit_cfg cfg;
	uint32_t qsize;
	uint8_t *ram;
	size_t img;

	if (size < HDR)
		return 0;
	if (!r)
		setup();
	fake_now += 1000000;
	qsize = 1u << (data[1] % 5);
	cfg = (struct ratelimit_cfg){
	    .ops = {.size = data[2], .refill_time_ms = data[4]},
	    .bandwidth = {.size = data[3] * 256u, .refill_time_ms = data[4]},
	};
	ram = gmem_ptr(g, 0, RAM);
	img = size - HDR < RAM ? size - HDR : RAM;
	memset(ram, 0, RAM);
	memcpy(ram, data + HDR, img);

	rng_ops.reset(r);
	/* Each input starts from a full limiter. */
	CHECK(rng_set_ratelimit(r, &(struct ratelimit_cfg){0}) == 0);
	CHECK(rng_set_ratelimit(r, &cfg) == 0);
	rng_get_stats(r, &before);
	start(qsize, data[0] & 0x80);
	rng_ops.notify(r, 0);
	if (data[0] & 2) {
		cfg.ops.size /= 2;
		cfg.bandwidth.refill_time_ms *= 2;
		CHECK(rng_set_ratelimit(r, &cfg) == 0);
	}
	if (data[0] & 1) {
		rng_ops.reset(r);
		start(qsize, data[0] & 0x80);
	}
	rng_ops.notify(r, 0);
	/* A run asked to stop cancels the timer and the poll, and runs their
	 * completions, before it returns. */
	evloop_stop(loop);
	CHECK(evloop_run(loop) == 0);
	rng_get_stats(r, &after);
	CHECK(after.bytes - before.bytes <= (after.requests - before.requests) * RNG_REQ_MAX);
	CHECK(after.requests - before.requests <= 2u * qsize);
	return 0;
}
