/* libFuzzer harness for virtio/balloon/balloon.c: the fuzzer plays a
 * hostile guest that writes the whole of guest RAM (descriptor tables,
 * rings, frame lists, statistics) and the configuration space, picks the
 * queue size and whether statistics are negotiated, and resets the device
 * in the middle. The device runs for real: its inflate gives the guest's
 * pages back (gmem_discard on the fuzzer's own RAM), its statistics timer
 * and eventfd poll run on a real io_uring event loop, its free page
 * reports give back the runs the fuzzer names, which each input then
 * stops. ASan and UBSan are the oracle, with the checks below on the
 * counters.
 *
 * Input layout:
 *   0      bit 0 statistics negotiated, bit 1 reset and activate again after
 *          the first round, bit 2 free page reporting negotiated, bit 7
 *          EVENT_IDX
 *   1      queue size log2 (mod 5: 1 to 16 entries)
 *   2      configuration write: offset (mod 16) and length (bits 4-5: 1, 2, 4, 8)
 *   3..10  its bytes
 *   then   guest RAM from address 0 (zeros past the input)
 * Queue q's rings are at q * 0x400 (descriptors), + 0x100 (available),
 * + 0x200 (used); buffers may be anywhere in the 64 KiB of RAM. */
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

static void setup(void)
{
	struct balloon_params p = {
	    .target_pages = 8, .stats_interval_s = 1, .free_page_reporting = true};

	log_verbose = 0;
	if (gmem_create(&g, RAM) || evloop_create(&loop, 64))
		__builtin_trap();
	p.loop = loop;
	if (balloon_create(&b, &p))
		__builtin_trap();
}

static void start(uint32_t qsize, bool event_idx, uint64_t features)
{
	for (unsigned q = 0; q < 4; q++) {
		vq_reset(&vqs[q]);
		CHECK(vq_activate(&vqs[q], g, qsize, q * 0x400, q * 0x400 + 0x100,
				  q * 0x400 + 0x200, event_idx) == 0);
	}
	CHECK(balloon_ops.activate(b, features, vqs, &host) == 0);
}

static void round_of_kicks(void)
{
	for (unsigned q = 0; q < 4; q++)
		balloon_ops.notify(b, q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct balloon_counters before, after;
	uint64_t features;
	uint8_t cfg[16];
	uint32_t qsize, len;
	uint8_t *ram;
	size_t img;

	if (size < HDR)
		return 0;
	if (!b)
		setup();
	qsize = 1u << (data[1] % 5);
	features = (data[0] & 1 ? 1ull << VIRTIO_BALLOON_F_STATS_VQ : 0) |
		   (data[0] & 4 ? 1ull << VIRTIO_BALLOON_F_REPORTING : 0);
	ram = gmem_ptr(g, 0, RAM);
	img = size - HDR < RAM ? size - HDR : RAM;
	memset(ram, 0, RAM);
	memcpy(ram, data + HDR, img);

	balloon_ops.reset(b);
	balloon_get_counters(b, &before);
	start(qsize, data[0] & 0x80, features);
	len = 1u << ((data[2] >> 4) & 3);
	balloon_ops.config_write(b, data[2] & 15, data + 3, len);
	balloon_ops.config_read(b, data[2] & 15, cfg, len);
	round_of_kicks();
	if (data[0] & 2) {
		balloon_ops.reset(b);
		start(qsize, data[0] & 0x80, features);
	}
	round_of_kicks();
	/* A run asked to stop cancels the timer and the poll, and runs their
	 * completions, before it returns. */
	evloop_stop(loop);
	CHECK(evloop_run(loop) == 0);
	balloon_get_counters(b, &after);
	/* Each round takes at most a queue's worth of chains a queue. */
	CHECK(after.inflate_count - before.inflate_count <= 2u * qsize);
	CHECK(after.deflate_count - before.deflate_count <= 2u * qsize);
	CHECK(after.stats_updates_count - before.stats_updates_count <= 2u * qsize);
	CHECK(after.free_page_report_count - before.free_page_report_count <= 2u * qsize);
	CHECK(after.free_page_report_freed - before.free_page_report_freed <=
	      2u * qsize * VQ_MAX_INDIRECT * (uint64_t)RAM);
	/* A frame is 4 bytes of a buffer the guest described in its RAM. */
	CHECK(after.pages_inflated - before.pages_inflated <= 2u * qsize * (RAM / 4));
	return 0;
}
