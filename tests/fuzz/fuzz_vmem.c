/* libFuzzer harness for virtio/mem/mem.c: the fuzzer plays a hostile guest
 * that writes the whole of guest RAM (descriptor table, rings, requests)
 * and picks the queue size, and the host's choices: the requested size, a
 * new one between two kicks, a driver reset between them, and which of the
 * VM's plug and unplug calls fail. The rest of the input is then offered
 * as a saved state to restore. ASan and UBSan are the oracle, with the
 * checks below, against a mirror of the region that the fake VM glue
 * keeps: the device plugs only unplugged blocks inside the region, never
 * past the requested size, unplugs only plugged ones, and reports what
 * the mirror holds (plugged size, plugged ranges, a snapshot's round
 * trip); a restore that fails changes nothing.
 *
 * Input layout:
 *   0      bit 0 reset after the first kick, bit 1 a new requested size
 *          after it, bit 7 EVENT_IDX
 *   1      queue size log2 (mod 5: 1 to 16 entries)
 *   2      the requested size in blocks (mod NBLOCKS + 1); after a new
 *          one, half that
 *   3      the VM's calls that fail: call k fails when bit k % 8 is set
 *   then   guest RAM from address 0 (zeros past the input), and what
 *          remains after RAM's 4 KiB is restored as a saved state
 * The rings are at 0x0/0x100/0x200; buffers may be anywhere in the 4 KiB
 * of RAM, rings included. */
#include <errno.h>
#include <linux/virtio_mem.h>
#include <stdint.h>
#include <string.h>

#include "core/gmem.h"
#include "core/wire.h"
#include "fuzz.h"
#include "mem/mem.h"
#include "vq.h"

#define RAM	0x1000
#define HDR	4
#define BLOCK	(2ull << 20)
#define ADDR	(1ull << 32)
#define NBLOCKS 100u /* across two bitmap words */

static struct gmem *g;
static struct vq vq;
static bool mirror[NBLOCKS]; /* what the VM has plugged */
static uint64_t requested;   /* the host's target, bytes */
static unsigned calls;
static uint8_t fail_mask;
/* Two devices for the whole run (so that each logs its first complaints
 * only, not every input's), and the state of a fresh one, restored into
 * both to start each input afresh. */
static struct vmem *m, *o;
static struct wbuf fresh;

static void host_used(void *t, unsigned q)
{
	(void)t;
	CHECK(q == 0);
}

static void host_needs_reset(void *t)
{
	(void)t;
}

static void host_config_changed(void *t)
{
	(void)t;
}

static const struct virtio_host host = {
    .used = host_used, .needs_reset = host_needs_reset, .config_changed = host_config_changed};

static unsigned mirror_count(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < NBLOCKS; i++)
		n += mirror[i];
	return n;
}

/* A call of the VM's glue: a block-aligned range inside the region, all
 * of it in the state the call changes. Fails as the input says. */
static int vm_call(bool plug, uint64_t gpa, uint64_t len)
{
	uint64_t first, n;

	CHECK(gpa >= ADDR && gpa % BLOCK == 0 && len && len % BLOCK == 0);
	first = (gpa - ADDR) / BLOCK;
	n = len / BLOCK;
	CHECK(first < NBLOCKS && n <= NBLOCKS - first);
	for (uint64_t i = first; i < first + n; i++)
		CHECK(mirror[i] != plug);
	if (plug)
		CHECK((mirror_count() + n) * BLOCK <= requested);
	if (fail_mask >> (calls++ % 8) & 1)
		return -EIO;
	for (uint64_t i = first; i < first + n; i++)
		mirror[i] = plug;
	return 0;
}

static int vm_plug(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)ctx;
	return vm_call(true, gpa, len);
}

static int vm_unplug(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)ctx;
	return vm_call(false, gpa, len);
}

static const struct vmem_params params = {
    .addr = ADDR,
    .region_size = NBLOCKS * BLOCK,
    .block_size = BLOCK,
    .host = {.plug = vm_plug, .unplug = vm_unplug},
};

static void start(struct vmem *d, uint32_t qsize, bool event_idx)
{
	vq_reset(&vq);
	CHECK(vq_activate(&vq, g, qsize, 0, 0x100, 0x200, event_idx) == 0);
	CHECK(vmem_ops.activate(d, 1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, &vq, &host) == 0);
}

/* The plugged ranges, checked against the mirror: maximal runs, in
 * order. */
struct walk {
	uint64_t next; /* the first block a run may start at */
	unsigned blocks;
};

static void check_range(void *ctx, uint64_t gpa, uint64_t len)
{
	struct walk *w = ctx;
	uint64_t first = (gpa - ADDR) / BLOCK, n = len / BLOCK;

	CHECK(gpa >= ADDR && gpa % BLOCK == 0 && len && len % BLOCK == 0);
	CHECK(first >= w->next && first + n <= NBLOCKS);
	CHECK(first == 0 || !mirror[first - 1]);
	CHECK(first + n == NBLOCKS || !mirror[first + n]);
	for (uint64_t i = first; i < first + n; i++)
		CHECK(mirror[i]);
	w->next = first + n + 1;
	w->blocks += (unsigned)n;
}

static void check_device(struct vmem *d)
{
	struct walk w = {0};
	struct vmem_info in;

	vmem_get_info(d, &in);
	CHECK(in.plugged == mirror_count() * BLOCK);
	vmem_plugged_ranges(d, check_range, &w);
	CHECK(w.blocks == mirror_count());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmem_info before, after;
	struct wbuf w;
	struct rbuf r;
	char err[256];
	uint32_t qsize;
	uint8_t *ram;
	size_t img;

	if (size < HDR)
		return 0;
	if (!g) {
		log_verbose = 0;
		if (gmem_create(&g, RAM) || vmem_create(&m, &params) || vmem_create(&o, &params))
			__builtin_trap();
		wbuf_init(&fresh);
		CHECK(vmem_save(m, &fresh) == 0);
	}
	qsize = 1u << (data[1] % 5);
	fail_mask = data[3];
	calls = 0;
	memset(mirror, 0, sizeof(mirror));
	requested = (uint64_t)(data[2] % (NBLOCKS + 1)) * BLOCK;
	ram = gmem_ptr(g, 0, RAM);
	img = size - HDR < RAM ? size - HDR : RAM;
	memset(ram, 0, RAM);
	memcpy(ram, data + HDR, img);

	vmem_ops.reset(m);
	rbuf_init(&r, fresh.p, fresh.len);
	CHECK(vmem_restore(m, &r, err, sizeof(err)) == 0);
	rbuf_init(&r, fresh.p, fresh.len);
	CHECK(vmem_restore(o, &r, err, sizeof(err)) == 0);
	check_device(m);
	CHECK(vmem_set_requested(m, requested) == 0);
	start(m, qsize, data[0] & 0x80);
	vmem_ops.notify(m, 0);
	if (data[0] & 2) {
		requested = requested / BLOCK / 2 * BLOCK;
		CHECK(vmem_set_requested(m, requested) == 0);
	}
	if (data[0] & 1) {
		vmem_ops.reset(m);
		start(m, qsize, data[0] & 0x80);
	}
	vmem_ops.notify(m, 0);
	/* Every chain popped was answered. */
	CHECK(vq.broken || vq.last_avail == vq.next_used);
	check_device(m);

	/* A snapshot's round trip, then the input's state over it. */
	wbuf_init(&w);
	CHECK(vmem_save(m, &w) == 0);
	rbuf_init(&r, w.p, w.len);
	CHECK(vmem_restore(o, &r, err, sizeof(err)) == 0);
	CHECK(rbuf_done(&r));
	check_device(o);
	vmem_get_info(o, &before);
	CHECK(before.requested == requested);
	rbuf_init(&r, data + HDR + img, size - HDR - img);
	if (vmem_restore(o, &r, err, sizeof(err)) < 0) {
		vmem_get_info(o, &after);
		CHECK(memcmp(&before, &after, sizeof(before)) == 0);
		check_device(o);
	} else {
		vmem_get_info(o, &after);
		CHECK(after.plugged <= NBLOCKS * BLOCK && after.requested <= NBLOCKS * BLOCK);
	}
	wbuf_free(&w);
	return 0;
}
