/* libFuzzer harness for virtio/balloon/balloon.c: the fuzzer plays a
 * hostile guest that writes the whole of guest RAM (descriptor tables,
 * rings, frame lists, statistics, free page reports) and the configuration
 * space, picks the queue size and the features negotiated, and resets the
 * device in the middle. The device runs for real, made anew for each
 * input: its inflate and reports give pages back (gmem_discard on the
 * harness's own RAM), and a real io_uring event loop takes a turn after
 * each round (the chain offered before activation, a new interval's
 * request), then stops, cancelling the statistics timer. ASan and UBSan
 * are the oracle, with the checks below on the counters.
 *
 * Input layout:
 *   0      bit 0 statistics negotiated, bit 1 reset and activate again after
 *          the first round, bit 2 free page reporting negotiated, bit 3 a
 *          new statistics interval after the first round, bit 7 EVENT_IDX
 *   1      queue size log2 (mod 9: 1 to 256 entries)
 *   2      configuration write: offset (mod 16) and length (bits 4-5: 1, 2, 4, 8)
 *   3..10  its bytes
 *   then   guest RAM from address 0 (zeros past the input)
 * Queue q's rings are at q * 0x2000 (descriptors), + 0x1000 (available),
 * + 0x1400 (used); buffers may be anywhere in the 64 KiB of RAM. */
#include <linux/time_types.h>
#include <linux/virtio_balloon.h>
#include <stdint.h>
#include <string.h>

#include "balloon/balloon.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "fuzz.h"
#include "vq.h"

#define RAM 0x10000
#define HDR 11

static struct gmem *g;
static struct evloop *loop;
static struct balloon *b;
static struct vq vqs[4];

static void host_used(void *t, unsigned q)
{
	(void)t;
	CHECK(q < 4);
}

static void host_nothing(void *t)
{
	(void)t;
}

static const struct virtio_host host = {
    .used = host_used, .needs_reset = host_nothing, .config_changed = host_nothing};

static void start(uint32_t qsize, bool event_idx, uint64_t features)
{
	for (unsigned q = 0; q < 4; q++) {
		vq_reset(&vqs[q]);
		CHECK(vq_activate(&vqs[q], g, qsize, q * 0x2000, q * 0x2000 + 0x1000,
				  q * 0x2000 + 0x1400, event_idx) == 0);
	}
	CHECK(balloon_ops.activate(b, features, vqs, &host) == 0);
}

/* Ends the loop's turn: a timeout of 0 whose completion stops it. */
static struct ev_op turn_op;
static struct __kernel_timespec zero;

static void turn_done(struct ev_op *op, int res)
{
	(void)op, (void)res;
	evloop_stop(loop);
}

/* Kick every queue, then let the loop take one turn. */
static void round_of_kicks(void)
{
	for (unsigned q = 0; q < 4; q++)
		balloon_ops.notify(b, q);
	turn_op = (struct ev_op){.done = turn_done};
	CHECK(evloop_timeout(loop, &turn_op, &zero) == 0);
	CHECK(evloop_run(loop) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct balloon_params p = {.target_pages = 8, .stats_interval_s = 1};
	struct balloon_counters n;
	uint64_t features;
	uint8_t cfg[16];
	uint32_t qsize, len;
	uint8_t *ram;
	size_t img;

	if (size < HDR)
		return 0;
	if (!g) {
		log_verbose = 0;
		if (gmem_create(&g, RAM) || evloop_create(&loop, 64))
			__builtin_trap();
	}
	qsize = 1u << (data[1] % 9);
	features = (data[0] & 1 ? 1ull << VIRTIO_BALLOON_F_STATS_VQ : 0) |
		   (data[0] & 4 ? 1ull << VIRTIO_BALLOON_F_REPORTING : 0);
	p.free_page_reporting = data[0] & 4;
	p.loop = loop;
	CHECK(balloon_create(&b, &p) == 0);
	ram = gmem_ptr(g, 0, RAM);
	img = size - HDR < RAM ? size - HDR : RAM;
	memset(ram, 0, RAM);
	memcpy(ram, data + HDR, img);

	start(qsize, data[0] & 0x80, features);
	len = 1u << ((data[2] >> 4) & 3);
	balloon_ops.config_write(b, data[2] & 15, data + 3, len);
	balloon_ops.config_read(b, data[2] & 15, cfg, len);
	round_of_kicks();
	if (data[0] & 8)
		CHECK(balloon_set_stats_interval(b, 2) == 0);
	if (data[0] & 2) {
		balloon_ops.reset(b);
		start(qsize, data[0] & 0x80, features);
	}
	round_of_kicks();
	balloon_quiesce(b);
	balloon_get_counters(b, &n);
	/* A stopped run cancels the timer and the poll, and runs their
	 * completions, before it returns: then the device can go. */
	evloop_stop(loop);
	CHECK(evloop_run(loop) == 0);
	balloon_destroy(b);
	b = NULL;
	/* Each round takes at most a queue's worth of chains a queue. */
	CHECK(n.inflate_count <= 2u * qsize);
	CHECK(n.deflate_count <= 2u * qsize);
	CHECK(n.stats_updates_count <= 2u * qsize + 1);
	CHECK(n.free_page_report_count <= 2u * qsize);
	CHECK(n.pages_inflated <= 2u * qsize * BALLOON_FRAMES_MAX);
	CHECK(n.free_page_report_freed <= 2u * qsize * VQ_MAX_INDIRECT * (uint64_t)RAM);
	return 0;
}
