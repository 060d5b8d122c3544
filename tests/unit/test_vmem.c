/* virtio-mem: the request queue against fake guest memory laid out by the
 * fake driver, a fake transport that counts what the device asks of it,
 * and a fake VM glue (struct vmem_host) that records plug and unplug
 * calls and fails when told to. The helpers play the guest's driver. No
 * event loop: the device has none. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mem.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/gmem.h"
#include "core/wire.h"
#include "fake_driver.h"
#include "mem/mem.h"
#include "vq.h"

#define RAM   (4u << 20)
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000
#define BUF   0x10000
#define QSIZE 16

#define MIB	 (1ull << 20)
#define BLOCK	 (2 * MIB)
#define ADDR	 0x100000000ull /* the region: 4 GiB up */
#define NBLOCKS	 128u		/* two words of bitmap */
#define REGION	 (NBLOCKS * BLOCK)
#define FEATURES (1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE)

static struct gmem *g;
static struct vq q;
static struct fake_ring ring = {.desc = DESC, .avail = AVAIL, .used = USED};
static struct vmem *m;
static unsigned used_calls, resets, config_changes;
static unsigned next_req; /* the request buffers used, round the ring */

/* What the fake VM glue was asked. */
struct call {
	bool plug;
	uint64_t gpa, len;
};
static struct call calls[64];
static unsigned ncalls;
static int fail_at = -1; /* the call (0-based) that fails, -1: none */

static void *at(uint64_t gpa, uint64_t len)
{
	return fake_at(g, gpa, len);
}

static int record(bool plug, uint64_t gpa, uint64_t len)
{
	cr_assert_lt(ncalls, ARRAY_SIZE(calls));
	if ((int)ncalls == fail_at) {
		fail_at = -1;
		return -EIO;
	}
	calls[ncalls++] = (struct call){plug, gpa, len};
	return 0;
}

static int vm_plug(void *ctx, uint64_t gpa, uint64_t len)
{
	cr_assert_eq(ctx, &calls);
	return record(true, gpa, len);
}

/* An unplug held up (the Uffd backend's removal, nobody reading it): the
 * fake says on entered[1] that it waits, and waits for a byte on
 * release[0]. */
static bool hold_unplug;
static int entered[2] = {-1, -1}, release[2] = {-1, -1};

static int vm_unplug(void *ctx, uint64_t gpa, uint64_t len)
{
	char c = 0;

	cr_assert_eq(ctx, &calls);
	if (hold_unplug) {
		cr_assert_eq(write(entered[1], &c, 1), 1);
		cr_assert_eq(read(release[0], &c, 1), 1);
	}
	return record(false, gpa, len);
}

static void host_used(void *t, unsigned qi)
{
	(void)t;
	cr_assert_eq(qi, 0);
	used_calls++;
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets++;
}

static void host_config_changed(void *t)
{
	(void)t;
	config_changes++;
}

static const struct virtio_host host = {
    .used = host_used, .needs_reset = host_needs_reset, .config_changed = host_config_changed};

static struct vmem_params params(void)
{
	return (struct vmem_params){
	    .addr = ADDR,
	    .region_size = REGION,
	    .block_size = BLOCK,
	    .host = {.plug = vm_plug, .unplug = vm_unplug, .ctx = &calls},
	};
}

static void setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	used_calls = resets = config_changes = ncalls = next_req = 0;
	fail_at = -1;
	hold_unplug = false;
}

static void teardown(void)
{
	vmem_destroy(m);
	m = NULL;
	gmem_destroy(g);
}

TestSuite(vmem, .init = setup, .fini = teardown, .timeout = 10);

/* A fresh queue, activated, as the driver does at probe and after a
 * reset. */
static void activate_fresh(void)
{
	vq_reset(&q);
	fake_ring_reset(&ring, g, QSIZE);
	memset(at(DESC, 0x3000), 0, 0x3000);
	next_req = 0;
	cr_assert_eq(vq_activate(&q, g, QSIZE, DESC, AVAIL, USED, true), 0);
	cr_assert_eq(vmem_ops.activate(m, FEATURES, &q, &host), 0);
}

/* The device of params(), the driver running, requested_size as given. */
static void open_dev(uint64_t requested)
{
	struct vmem_params p = params();

	cr_assert_eq(vmem_create(&m, &p), 0);
	cr_assert_eq(vmem_set_requested(m, requested), 0);
	activate_fresh();
}

static struct vmem_counters counters(void)
{
	struct vmem_counters n;
	vmem_get_counters(m, &n);
	return n;
}

static struct vmem_info info(void)
{
	struct vmem_info in;
	vmem_get_info(m, &in);
	return in;
}

static struct virtio_mem_config config(void)
{
	struct virtio_mem_config cfg;
	vmem_ops.config_read(m, 0, &cfg, sizeof(cfg));
	return cfg;
}

/* The buffers of the next request: the request at its start, the
 * response 32 bytes in, 64 bytes each. */
static uint64_t req_buf(void)
{
	return BUF + 64u * (next_req++ % QSIZE);
}

static void put_req(uint64_t gpa, uint16_t type, uint64_t addr, uint16_t nb)
{
	struct virtio_mem_req r;

	memset(&r, 0, sizeof(r));
	r.type = htole16(type);
	r.u.plug.addr = htole64(addr);
	r.u.plug.nb_blocks = htole16(nb);
	memcpy(at(gpa, sizeof(r)), &r, sizeof(r));
}

/* The driver's request, as Linux sends it (one buffer each way), answered
 * at once: the response's type, and *state its state (NULL: not wanted).
 * The used element's length is checked. */
static uint16_t request(uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
	uint64_t b = req_buf();
	struct sg s[2] = {{b, sizeof(struct virtio_mem_req), false},
			  {b + 32, sizeof(struct virtio_mem_resp), true}};
	struct virtio_mem_resp resp;
	uint16_t used = fake_used_idx(&ring), head;

	put_req(b, type, addr, nb);
	memset(at(b + 32, 32), 0xee, 32);
	head = fake_offer(&ring, s, 2);
	vmem_ops.notify(m, 0);
	cr_assert_eq(fake_used_idx(&ring), (uint16_t)(used + 1), "answered at once");
	cr_assert_eq(fake_used_elem(&ring, used).id, head);
	cr_assert_eq(fake_used_elem(&ring, used).len, sizeof(struct virtio_mem_resp));
	memcpy(&resp, at(b + 32, sizeof(resp)), sizeof(resp));
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(resp.padding[i], 0);
	cr_assert_eq(*(uint8_t *)at(b + 32 + sizeof(resp), 1), 0xee, "nothing past it");
	if (state)
		*state = le16toh(resp.u.state.state);
	return le16toh(resp.type);
}

static uint64_t blk(unsigned i)
{
	return ADDR + i * BLOCK;
}

static uint16_t plug(unsigned first, uint16_t nb)
{
	return request(VIRTIO_MEM_REQ_PLUG, blk(first), nb, NULL);
}

static uint16_t unplug(unsigned first, uint16_t nb)
{
	return request(VIRTIO_MEM_REQ_UNPLUG, blk(first), nb, NULL);
}

static uint16_t state_of(unsigned first, uint16_t nb)
{
	uint16_t st = 0xffff;

	cr_assert_eq(request(VIRTIO_MEM_REQ_STATE, blk(first), nb, &st), VIRTIO_MEM_RESP_ACK);
	return st;
}

static void assert_call(unsigned k, bool is_plug, unsigned first, unsigned nb)
{
	cr_assert_gt(ncalls, k);
	cr_assert_eq(calls[k].plug, is_plug, "call %u", k);
	cr_assert_eq(calls[k].gpa, blk(first), "call %u at 0x%llx", k,
		     (unsigned long long)calls[k].gpa);
	cr_assert_eq(calls[k].len, nb * BLOCK, "call %u of 0x%llx", k,
		     (unsigned long long)calls[k].len);
}

/* vmem_plugged_ranges into calls-like records. */
struct ranges {
	unsigned n;
	uint64_t gpa[16], len[16];
};

static void add_range(void *ctx, uint64_t gpa, uint64_t len)
{
	struct ranges *r = ctx;

	cr_assert_lt(r->n, 16);
	r->gpa[r->n] = gpa;
	r->len[r->n++] = len;
}

static struct ranges ranges_of(struct vmem *d)
{
	struct ranges r = {0};

	vmem_plugged_ranges(d, add_range, &r);
	return r;
}

Test(vmem, create_refuses_bad_params)
{
	struct vmem_params p;
	struct vmem *o = (struct vmem *)&p;
	static const struct {
		uint64_t addr, region, block;
	} bad[] = {
	    {ADDR, REGION, MIB},		    /* block under 2 MiB */
	    {ADDR, 3 * BLOCK, 3 * MIB},		    /* not a power of two */
	    {ADDR, 0, BLOCK},			    /* empty region */
	    {ADDR, REGION + MIB, BLOCK},	    /* not whole blocks */
	    {ADDR + MIB, REGION, BLOCK},	    /* region not aligned */
	    {ADDR, REGION, 0},			    /* no block */
	    {UINT64_MAX - BLOCK + 1, BLOCK, BLOCK}, /* past the address space */
	    {(1ull << 52) - BLOCK, 2 * BLOCK, BLOCK},
	    {0, 1ull << 53, 1ull << 30}, /* ends past 2^52 */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		p = params();
		p.addr = bad[i].addr;
		p.region_size = bad[i].region;
		p.block_size = bad[i].block;
		o = (struct vmem *)&p;
		cr_assert_eq(vmem_create(&o, &p), -EINVAL, "case %zu", i);
		cr_assert_null(o, "case %zu", i);
	}
	p = params();
	p.host.plug = NULL;
	cr_assert_eq(vmem_create(&o, &p), -EINVAL, "no plug");
	p = params();
	p.host.unplug = NULL;
	cr_assert_eq(vmem_create(&o, &p), -EINVAL, "no unplug");
	/* The largest region that fits, and a 1 GiB block at 0. */
	p = params();
	p.addr = (1ull << 52) - BLOCK;
	p.region_size = BLOCK;
	cr_assert_eq(vmem_create(&o, &p), 0);
	vmem_destroy(o);
	p = params();
	p.addr = 0;
	p.block_size = p.region_size = 1ull << 30;
	cr_assert_eq(vmem_create(&o, &p), 0);
	vmem_destroy(o);
	vmem_destroy(NULL);
	cr_assert_eq(ncalls, 0);
}

Test(vmem, ops_shape_and_config_space)
{
	struct virtio_mem_config cfg;
	uint8_t tail[8];
	uint32_t hi;
	uint64_t v;

	open_dev(16 * MIB);
	cr_assert_eq(vmem_ops.device_id, VIRTIO_ID_MEM);
	cr_assert_eq(vmem_ops.num_queues, 1);
	cr_assert_eq(vmem_ops.queue_max, VMEM_QUEUE_MAX);
	cr_assert_eq(vmem_ops.features(m), FEATURES);
	cfg = config();
	cr_assert_eq(le64toh(cfg.block_size), BLOCK);
	cr_assert_eq(le16toh(cfg.node_id), 0);
	for (unsigned i = 0; i < sizeof(cfg.padding); i++)
		cr_assert_eq(cfg.padding[i], 0);
	cr_assert_eq(le64toh(cfg.addr), ADDR);
	cr_assert_eq(le64toh(cfg.region_size), REGION);
	cr_assert_eq(le64toh(cfg.usable_region_size), REGION);
	cr_assert_eq(le64toh(cfg.plugged_size), 0);
	cr_assert_eq(le64toh(cfg.requested_size), 16 * MIB);
	/* In pieces as the transport may split it, and past its end. */
	vmem_ops.config_read(m, offsetof(struct virtio_mem_config, addr) + 4, &hi, 4);
	cr_assert_eq(le32toh(hi), ADDR >> 32);
	memset(tail, 0xaa, sizeof(tail));
	vmem_ops.config_read(m, sizeof(cfg), tail, sizeof(tail));
	for (size_t i = 0; i < sizeof(tail); i++)
		cr_assert_eq(tail[i], 0);
	/* Read-only for the driver. */
	v = htole64(REGION);
	vmem_ops.config_write(m, offsetof(struct virtio_mem_config, requested_size), &v, 8);
	vmem_ops.config_write(m, offsetof(struct virtio_mem_config, plugged_size), &v, 8);
	cfg = config();
	cr_assert_eq(le64toh(cfg.requested_size), 16 * MIB);
	cr_assert_eq(le64toh(cfg.plugged_size), 0);
	struct vmem_info in = info();
	cr_assert_eq(in.addr, ADDR);
	cr_assert_eq(in.region_size, REGION);
	cr_assert_eq(in.block_size, BLOCK);
	cr_assert_eq(in.requested, 16 * MIB);
	cr_assert_eq(in.plugged, 0);
}

Test(vmem, plug_acks_and_grows_plugged_size)
{
	open_dev(16 * MIB);
	cr_assert_eq(plug(0, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(ncalls, 1);
	assert_call(0, true, 0, 2);
	cr_assert_eq(used_calls, 1);
	cr_assert_eq(info().plugged, 2 * BLOCK);
	cr_assert_eq(le64toh(config().plugged_size), 2 * BLOCK);
	/* Up to the requested size exactly, at the region's end. */
	cr_assert_eq(plug(NBLOCKS - 6, 6), VIRTIO_MEM_RESP_ACK);
	assert_call(1, true, NBLOCKS - 6, 6);
	cr_assert_eq(info().plugged, 16 * MIB);
	struct vmem_counters n = counters();
	cr_assert_eq(n.plug, 2);
	cr_assert_eq(n.nacks + n.errors + n.protocol_errors, 0);
	cr_assert_eq(resets + config_changes, 0);
}

Test(vmem, plug_over_the_requested_size_nacks)
{
	open_dev(4 * MIB);
	cr_assert_eq(plug(0, 3), VIRTIO_MEM_RESP_NACK);
	cr_assert_eq(ncalls, 0, "the VM is not asked");
	cr_assert_eq(info().plugged, 0);
	cr_assert_eq(plug(0, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(4, 1), VIRTIO_MEM_RESP_NACK);
	cr_assert_eq(state_of(4, 1), VIRTIO_MEM_STATE_UNPLUGGED);
	/* A lower target: nothing plugs until the guest is under it. */
	cr_assert_eq(vmem_set_requested(m, 0), 0);
	cr_assert_eq(plug(8, 1), VIRTIO_MEM_RESP_NACK);
	struct vmem_counters n = counters();
	cr_assert_eq(n.plug, 4);
	cr_assert_eq(n.nacks, 3);
	cr_assert_eq(n.errors, 0);
	cr_assert_eq(ncalls, 1);
	cr_assert_eq(info().plugged, 2 * BLOCK);
}

Test(vmem, plug_of_a_bad_range_is_an_error)
{
	open_dev(REGION);
	cr_assert_eq(plug(4, 4), VIRTIO_MEM_RESP_ACK);
	ncalls = 0;
	cr_assert_eq(plug(4, 1), VIRTIO_MEM_RESP_ERROR, "already plugged");
	cr_assert_eq(plug(2, 3), VIRTIO_MEM_RESP_ERROR, "partly plugged");
	cr_assert_eq(plug(7, 2), VIRTIO_MEM_RESP_ERROR, "partly plugged, at its end");
	cr_assert_eq(request(VIRTIO_MEM_REQ_PLUG, blk(0) + 4096, 1, NULL), VIRTIO_MEM_RESP_ERROR,
		     "misaligned");
	cr_assert_eq(request(VIRTIO_MEM_REQ_PLUG, blk(0) + MIB, 1, NULL), VIRTIO_MEM_RESP_ERROR,
		     "half a block in");
	cr_assert_eq(request(VIRTIO_MEM_REQ_PLUG, ADDR - BLOCK, 1, NULL), VIRTIO_MEM_RESP_ERROR,
		     "below the region");
	cr_assert_eq(request(VIRTIO_MEM_REQ_PLUG, ADDR - BLOCK, 2, NULL), VIRTIO_MEM_RESP_ERROR,
		     "straddling its start");
	cr_assert_eq(request(VIRTIO_MEM_REQ_PLUG, 0, 1, NULL), VIRTIO_MEM_RESP_ERROR, "at 0");
	cr_assert_eq(plug(NBLOCKS, 1), VIRTIO_MEM_RESP_ERROR, "just past the end");
	cr_assert_eq(plug(NBLOCKS - 1, 2), VIRTIO_MEM_RESP_ERROR, "straddling the end");
	cr_assert_eq(plug(0, NBLOCKS + 1), VIRTIO_MEM_RESP_ERROR, "larger than the region");
	cr_assert_eq(plug(0, 0), VIRTIO_MEM_RESP_ERROR, "no block");
	cr_assert_eq(request(VIRTIO_MEM_REQ_PLUG, UINT64_MAX - BLOCK + 1, 0xffff, NULL),
		     VIRTIO_MEM_RESP_ERROR, "a range that wraps");
	cr_assert_eq(request(VIRTIO_MEM_REQ_PLUG, blk(NBLOCKS - 1), 0xffff, NULL),
		     VIRTIO_MEM_RESP_ERROR, "nb_blocks at its largest");
	cr_assert_eq(ncalls, 0, "the VM is never asked");
	cr_assert_eq(info().plugged, 4 * BLOCK);
	struct vmem_counters n = counters();
	cr_assert_eq(n.plug, 15);
	cr_assert_eq(n.errors, 14);
	cr_assert_eq(n.nacks, 0);
	cr_assert_eq(resets, 0, "the queue still works");
}

Test(vmem, unplug_acks_and_refuses_what_is_not_plugged)
{
	open_dev(REGION);
	cr_assert_eq(plug(10, 6), VIRTIO_MEM_RESP_ACK);
	ncalls = 0;
	cr_assert_eq(unplug(12, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(ncalls, 1);
	assert_call(0, false, 12, 2);
	cr_assert_eq(info().plugged, 4 * BLOCK);
	cr_assert_eq(le64toh(config().plugged_size), 4 * BLOCK);
	cr_assert_eq(unplug(12, 1), VIRTIO_MEM_RESP_ERROR, "unplugged already");
	cr_assert_eq(unplug(11, 2), VIRTIO_MEM_RESP_ERROR, "partly unplugged");
	cr_assert_eq(unplug(9, 2), VIRTIO_MEM_RESP_ERROR, "partly, before");
	cr_assert_eq(unplug(0, 1), VIRTIO_MEM_RESP_ERROR, "never plugged");
	cr_assert_eq(unplug(10, 0), VIRTIO_MEM_RESP_ERROR, "no block");
	cr_assert_eq(request(VIRTIO_MEM_REQ_UNPLUG, blk(10) + 4096, 1, NULL), VIRTIO_MEM_RESP_ERROR,
		     "misaligned");
	cr_assert_eq(unplug(NBLOCKS, 1), VIRTIO_MEM_RESP_ERROR, "outside");
	cr_assert_eq(ncalls, 1);
	cr_assert_eq(unplug(14, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(unplug(10, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(info().plugged, 0);
	struct vmem_counters n = counters();
	cr_assert_eq(n.unplug, 10);
	cr_assert_eq(n.errors, 7);
}

/* UNPLUG_ALL asks the VM once per maximal run of plugged blocks. */
Test(vmem, unplug_all_unplugs_each_run)
{
	open_dev(REGION);
	cr_assert_eq(request(VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(ncalls, 0, "nothing plugged: nothing to do");
	cr_assert_eq(plug(0, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(60, 10), VIRTIO_MEM_RESP_ACK); /* across a bitmap word */
	cr_assert_eq(plug(NBLOCKS - 1, 1), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(vmem_set_requested(m, 0), 0);
	ncalls = 0;
	/* Its address and count are not looked at. */
	cr_assert_eq(request(VIRTIO_MEM_REQ_UNPLUG_ALL, 12345, 7, NULL), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(ncalls, 3);
	assert_call(0, false, 0, 2);
	assert_call(1, false, 60, 10);
	assert_call(2, false, NBLOCKS - 1, 1);
	cr_assert_eq(info().plugged, 0);
	cr_assert_eq(le64toh(config().plugged_size), 0);
	cr_assert_eq(state_of(0, NBLOCKS / 2), VIRTIO_MEM_STATE_UNPLUGGED);
	cr_assert_eq(state_of(NBLOCKS / 2, NBLOCKS / 2), VIRTIO_MEM_STATE_UNPLUGGED);
	cr_assert_eq(counters().unplug_all, 2);
	cr_assert_eq(counters().errors, 0);
}

Test(vmem, unplug_all_stops_at_a_host_failure)
{
	open_dev(REGION);
	cr_assert_eq(plug(0, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(5, 3), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(20, 1), VIRTIO_MEM_RESP_ACK);
	ncalls = 0;
	fail_at = 1;
	cr_assert_eq(request(VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ERROR);
	cr_assert_eq(ncalls, 1);
	assert_call(0, false, 0, 2);
	cr_assert_eq(info().plugged, 4 * BLOCK, "the first run stays unplugged");
	cr_assert_eq(state_of(0, 2), VIRTIO_MEM_STATE_UNPLUGGED);
	cr_assert_eq(state_of(5, 3), VIRTIO_MEM_STATE_PLUGGED);
	cr_assert_eq(counters().errors, 1);
	/* Again, the VM willing. */
	cr_assert_eq(request(VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
	assert_call(1, false, 5, 3);
	assert_call(2, false, 20, 1);
	cr_assert_eq(info().plugged, 0);
}

Test(vmem, state_of_a_range)
{
	open_dev(REGION);
	cr_assert_eq(plug(62, 4), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(state_of(62, 4), VIRTIO_MEM_STATE_PLUGGED);
	cr_assert_eq(state_of(63, 2), VIRTIO_MEM_STATE_PLUGGED);
	cr_assert_eq(state_of(0, 62), VIRTIO_MEM_STATE_UNPLUGGED);
	cr_assert_eq(state_of(66, NBLOCKS - 66), VIRTIO_MEM_STATE_UNPLUGGED);
	cr_assert_eq(state_of(61, 2), VIRTIO_MEM_STATE_MIXED);
	cr_assert_eq(state_of(65, 2), VIRTIO_MEM_STATE_MIXED);
	cr_assert_eq(state_of(0, NBLOCKS), VIRTIO_MEM_STATE_MIXED);
	cr_assert_eq(request(VIRTIO_MEM_REQ_STATE, blk(0), 0, NULL), VIRTIO_MEM_RESP_ERROR);
	cr_assert_eq(request(VIRTIO_MEM_REQ_STATE, blk(0), NBLOCKS + 1, NULL),
		     VIRTIO_MEM_RESP_ERROR);
	cr_assert_eq(request(VIRTIO_MEM_REQ_STATE, blk(1) - 4096, 1, NULL), VIRTIO_MEM_RESP_ERROR);
	struct vmem_counters n = counters();
	cr_assert_eq(n.state, 10);
	cr_assert_eq(n.errors, 3);
	cr_assert_eq(ncalls, 1, "state asks the VM nothing");
}

Test(vmem, a_host_failure_changes_nothing)
{
	open_dev(REGION);
	fail_at = 0;
	cr_assert_eq(plug(3, 2), VIRTIO_MEM_RESP_ERROR);
	cr_assert_eq(info().plugged, 0);
	cr_assert_eq(state_of(3, 2), VIRTIO_MEM_STATE_UNPLUGGED);
	cr_assert_eq(plug(3, 2), VIRTIO_MEM_RESP_ACK, "the same request, the VM willing");
	fail_at = 1;
	cr_assert_eq(unplug(3, 1), VIRTIO_MEM_RESP_ERROR);
	cr_assert_eq(info().plugged, 2 * BLOCK);
	cr_assert_eq(state_of(3, 2), VIRTIO_MEM_STATE_PLUGGED);
	struct vmem_counters n = counters();
	cr_assert_eq(n.errors, 2);
	cr_assert_eq(n.plug, 2);
	cr_assert_eq(n.unplug, 1);
	cr_assert_eq(resets, 0);
}

Test(vmem, an_unknown_request_is_an_error)
{
	open_dev(REGION);
	cr_assert_eq(request(4, blk(0), 1, NULL), VIRTIO_MEM_RESP_ERROR);
	cr_assert_eq(request(0xffff, blk(0), 1, NULL), VIRTIO_MEM_RESP_ERROR);
	struct vmem_counters n = counters();
	cr_assert_eq(n.errors, 2);
	cr_assert_eq(n.plug + n.unplug + n.unplug_all + n.state, 0);
	cr_assert_eq(ncalls, 0);
}

Test(vmem, set_requested_checks_and_tells_a_running_driver)
{
	struct vmem_params p = params();

	cr_assert_eq(vmem_create(&m, &p), 0);
	cr_assert_eq(info().requested, 0);
	cr_assert_eq(vmem_set_requested(m, BLOCK + 4096), -EINVAL);
	cr_assert_eq(vmem_set_requested(m, MIB), -EINVAL);
	cr_assert_eq(vmem_set_requested(m, REGION + BLOCK), -EINVAL);
	cr_assert_eq(info().requested, 0, "unchanged by the refusals");
	/* Before the driver runs: only recorded. */
	cr_assert_eq(vmem_set_requested(m, REGION), 0);
	cr_assert_eq(le64toh(config().requested_size), REGION);
	cr_assert_eq(config_changes, 0);
	activate_fresh();
	cr_assert_eq(config_changes, 0);
	cr_assert_eq(vmem_set_requested(m, 8 * MIB), 0);
	cr_assert_eq(config_changes, 1);
	cr_assert_eq(le64toh(config().requested_size), 8 * MIB);
	cr_assert_eq(info().requested, 8 * MIB);
	cr_assert_eq(vmem_set_requested(m, 3 * MIB), -EINVAL);
	cr_assert_eq(config_changes, 1);
	/* After the driver's reset: recorded again, and read at its probe. */
	vmem_ops.reset(m);
	cr_assert_eq(vmem_set_requested(m, 0), 0);
	cr_assert_eq(config_changes, 1);
	cr_assert_eq(le64toh(config().requested_size), 0);
}

/* Chains too short for a request or a response come back with nothing
 * written; a request split over several buffers is read whole. */
Test(vmem, short_buffers_come_back_empty)
{
	const uint32_t REQ = sizeof(struct virtio_mem_req), RESP = sizeof(struct virtio_mem_resp);
	struct sg short_req[2] = {{BUF, REQ - 1, false}, {BUF + 32, RESP, true}};
	struct sg short_resp[2] = {{BUF + 64, REQ, false}, {BUF + 96, RESP - 1, true}};
	struct sg no_resp = {BUF + 128, REQ, false};
	struct sg no_req = {BUF + 192 + 32, RESP, true};
	struct sg split[4] = {{BUF + 256, 3, false},
			      {BUF + 256 + 3, REQ - 3, false},
			      {BUF + 256 + 32, 1, true},
			      {BUF + 256 + 33, 31, true}};
	struct virtio_mem_resp resp;

	open_dev(REGION);
	memset(at(BUF, 0x200), 0xee, 0x200);
	put_req(BUF, VIRTIO_MEM_REQ_PLUG, blk(0), 1);
	put_req(BUF + 64, VIRTIO_MEM_REQ_PLUG, blk(0), 1);
	put_req(BUF + 128, VIRTIO_MEM_REQ_PLUG, blk(0), 1);
	put_req(BUF + 256, VIRTIO_MEM_REQ_PLUG, blk(1), 2);
	fake_offer(&ring, short_req, 2);
	fake_offer(&ring, short_resp, 2);
	fake_offer(&ring, &no_resp, 1);
	fake_offer(&ring, &no_req, 1);
	uint16_t head = fake_offer(&ring, split, 4);
	vmem_ops.notify(m, 0);
	cr_assert_eq(fake_used_idx(&ring), 5);
	cr_assert_eq(used_calls, 1, "one interrupt for the batch");
	for (uint16_t k = 0; k < 4; k++)
		cr_assert_eq(fake_used_elem(&ring, k).len, 0, "chain %u", k);
	cr_assert_eq(*(uint8_t *)at(BUF + 32, 1), 0xee, "nothing written");
	cr_assert_eq(*(uint8_t *)at(BUF + 96, 1), 0xee, "nothing written");
	cr_assert_eq(*(uint8_t *)at(BUF + 192 + 32, 1), 0xee, "nothing written");
	cr_assert_eq(fake_used_elem(&ring, 4).id, head);
	cr_assert_eq(fake_used_elem(&ring, 4).len, RESP);
	memcpy(&resp, at(BUF + 256 + 32, sizeof(resp)), sizeof(resp));
	cr_assert_eq(le16toh(resp.type), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(*(uint8_t *)at(BUF + 256 + 32 + RESP, 1), 0xee);
	cr_assert_eq(ncalls, 1);
	assert_call(0, true, 1, 2);
	struct vmem_counters n = counters();
	cr_assert_eq(n.errors, 4);
	cr_assert_eq(n.plug, 1);
	cr_assert_eq(resets, 0);
}

/* A chain vq_pop refuses (a buffer outside RAM) breaks the queue until
 * the driver resets the device. */
Test(vmem, a_broken_queue_needs_reset)
{
	struct sg s[2] = {{RAM + 0x1000, sizeof(struct virtio_mem_req), false},
			  {BUF + 32, sizeof(struct virtio_mem_resp), true}};

	open_dev(REGION);
	fake_offer(&ring, s, 2);
	vmem_ops.notify(m, 0);
	cr_assert_eq(resets, 1);
	cr_assert_eq(counters().protocol_errors, 1);
	struct sg ok[2] = {{BUF, sizeof(struct virtio_mem_req), false},
			   {BUF + 32, sizeof(struct virtio_mem_resp), true}};
	put_req(BUF, VIRTIO_MEM_REQ_PLUG, blk(0), 1);
	fake_offer(&ring, ok, 2);
	vmem_ops.notify(m, 0);
	cr_assert_eq(fake_used_idx(&ring), 0, "nothing more until reset");
	cr_assert_eq(ncalls, 0);
	vmem_ops.reset(m);
	activate_fresh();
	cr_assert_eq(plug(0, 1), VIRTIO_MEM_RESP_ACK);
}

Test(vmem, activation_wants_the_feature_and_a_small_queue)
{
	struct vmem_params p = params();

	cr_assert_eq(vmem_create(&m, &p), 0);
	vq_reset(&q);
	fake_ring_reset(&ring, g, QSIZE);
	cr_assert_eq(vq_activate(&q, g, QSIZE, DESC, AVAIL, USED, false), 0);
	cr_assert_eq(vmem_ops.activate(m, 0, &q, &host), -EINVAL, "a driver without it");
	vq_reset(&q);
	cr_assert_eq(vmem_ops.activate(m, FEATURES, &q, &host), -EINVAL, "not ready");
	cr_assert_eq(vq_activate(&q, g, 256, DESC, AVAIL, USED, false), 0);
	cr_assert_eq(vmem_ops.activate(m, FEATURES, &q, &host), -EINVAL, "over VMEM_QUEUE_MAX");
	/* Not active: kicks and new targets go nowhere. */
	vmem_ops.notify(m, 0);
	cr_assert_eq(vmem_set_requested(m, BLOCK), 0);
	cr_assert_eq(used_calls + config_changes + resets, 0);
	activate_fresh();
	vmem_ops.notify(m, 1); /* no such queue */
	cr_assert_eq(plug(0, 1), VIRTIO_MEM_RESP_ACK);
}

/* The driver's reset forgets the queue, not what is plugged: the next
 * driver finds it in plugged_size and unplugs it all. */
Test(vmem, reset_keeps_what_is_plugged)
{
	open_dev(REGION);
	cr_assert_eq(plug(0, 3), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(9, 1), VIRTIO_MEM_RESP_ACK);
	vmem_ops.reset(m);
	cr_assert_eq(info().plugged, 4 * BLOCK);
	cr_assert_eq(info().requested, REGION);
	cr_assert_eq(le64toh(config().plugged_size), 4 * BLOCK);
	activate_fresh();
	cr_assert_eq(state_of(0, 3), VIRTIO_MEM_STATE_PLUGGED);
	ncalls = 0;
	cr_assert_eq(request(VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(ncalls, 2);
	assert_call(0, false, 0, 3);
	assert_call(1, false, 9, 1);
	cr_assert_eq(le64toh(config().plugged_size), 0);
}

Test(vmem, plugged_ranges_in_address_order)
{
	struct ranges r;

	open_dev(REGION);
	r = ranges_of(m);
	cr_assert_eq(r.n, 0);
	cr_assert_eq(plug(NBLOCKS - 2, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(0, 1), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(63, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(65, 1), VIRTIO_MEM_RESP_ACK); /* joins the run before */
	cr_assert_eq(plug(2, 1), VIRTIO_MEM_RESP_ACK);
	r = ranges_of(m);
	cr_assert_eq(r.n, 4);
	cr_assert_eq(r.gpa[0], blk(0));
	cr_assert_eq(r.len[0], BLOCK);
	cr_assert_eq(r.gpa[1], blk(2));
	cr_assert_eq(r.len[1], BLOCK);
	cr_assert_eq(r.gpa[2], blk(63));
	cr_assert_eq(r.len[2], 3 * BLOCK);
	cr_assert_eq(r.gpa[3], blk(NBLOCKS - 2));
	cr_assert_eq(r.len[3], 2 * BLOCK);
	/* The whole region: one run. */
	cr_assert_eq(request(VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(0, NBLOCKS), VIRTIO_MEM_RESP_ACK);
	r = ranges_of(m);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.gpa[0], ADDR);
	cr_assert_eq(r.len[0], REGION);
}

/* What a saved state's run list says, written by hand. */
static void put_state(struct wbuf *w, uint64_t addr, uint64_t region, uint64_t block,
		      uint64_t requested, const uint64_t *runs, unsigned nruns)
{
	wput_u32(w, 1);
	wput_u64(w, addr);
	wput_u64(w, region);
	wput_u64(w, block);
	wput_u64(w, requested);
	wput_u64(w, nruns);
	for (unsigned i = 0; i < 2 * nruns; i++)
		wput_u64(w, runs[i]);
}

static int restore_from(struct vmem *d, const struct wbuf *w, char *err, size_t errlen)
{
	struct rbuf r;

	rbuf_init(&r, w->p, w->len);
	return vmem_restore(d, &r, err, errlen);
}

Test(vmem, save_and_restore)
{
	struct vmem_params p = params();
	struct vmem *o;
	struct wbuf w;
	struct rbuf r;
	struct ranges rr;
	char err[256];

	open_dev(40 * MIB);
	cr_assert_eq(plug(1, 3), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(60, 8), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(plug(NBLOCKS - 1, 1), VIRTIO_MEM_RESP_ACK);
	wbuf_init(&w);
	cr_assert_eq(vmem_save(m, &w), 0);

	cr_assert_eq(vmem_create(&o, &p), 0);
	ncalls = 0;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vmem_restore(o, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	cr_assert_eq(ncalls, 0, "the VM restores its memory itself");
	struct vmem_info in;
	vmem_get_info(o, &in);
	cr_assert_eq(in.plugged, 12 * BLOCK);
	cr_assert_eq(in.requested, 40 * MIB);
	vmem_ops.config_read(o, offsetof(struct virtio_mem_config, plugged_size), &in.plugged, 8);
	cr_assert_eq(le64toh(in.plugged), 12 * BLOCK);
	rr = ranges_of(o);
	cr_assert_eq(rr.n, 3);
	cr_assert_eq(rr.gpa[0], blk(1));
	cr_assert_eq(rr.len[0], 3 * BLOCK);
	cr_assert_eq(rr.gpa[1], blk(60));
	cr_assert_eq(rr.len[1], 8 * BLOCK);
	cr_assert_eq(rr.gpa[2], blk(NBLOCKS - 1));
	cr_assert_eq(rr.len[2], BLOCK);
	/* And it goes on: saved again, the same bytes. */
	struct wbuf w2;
	wbuf_init(&w2);
	cr_assert_eq(vmem_save(o, &w2), 0);
	cr_assert_eq(w2.len, w.len);
	cr_assert_eq(memcmp(w2.p, w.p, w.len), 0);
	wbuf_free(&w2);
	vmem_destroy(o);

	/* Another geometry: refused, the device as it was (one block
	 * plugged, a target of 2 MiB). */
	static const struct {
		uint64_t addr, region, block;
	} other[] = {
	    {ADDR + BLOCK, REGION, BLOCK},
	    {ADDR, REGION - BLOCK, BLOCK},
	    {ADDR, REGION, 2 * BLOCK},
	};
	for (size_t i = 0; i < ARRAY_SIZE(other); i++) {
		p = params();
		p.addr = other[i].addr;
		p.region_size = other[i].region;
		p.block_size = other[i].block;
		cr_assert_eq(vmem_create(&o, &p), 0);
		cr_assert_eq(vmem_set_requested(o, p.block_size), 0);
		cr_assert_eq(restore_from(o, &w, err, sizeof(err)), -EINVAL, "geometry %zu", i);
		cr_assert(strstr(err, "virtio-mem: saved for a region"), "%s", err);
		vmem_get_info(o, &in);
		cr_assert_eq(in.plugged, 0);
		cr_assert_eq(in.requested, p.block_size);
		vmem_destroy(o);
	}

	/* Truncated anywhere, another version, corrupt runs or target. */
	p = params();
	cr_assert_eq(vmem_create(&o, &p), 0);
	cr_assert_eq(vmem_set_requested(o, BLOCK), 0);
	cr_assert_eq(vmem_set_requested(m, REGION), 0);
	cr_assert_eq(plug(10, 1), VIRTIO_MEM_RESP_ACK);
	for (size_t cut = 0; cut < w.len; cut++) {
		rbuf_init(&r, w.p, cut);
		cr_assert_eq(vmem_restore(o, &r, err, sizeof(err)), -EBADMSG, "cut %zu", cut);
	}
	w.p[0] ^= 2;
	cr_assert_eq(restore_from(o, &w, err, sizeof(err)), -EPROTONOSUPPORT);
	w.p[0] ^= 2;
	static const struct {
		uint64_t requested;
		unsigned n;
		uint64_t runs[6];
	} bad[] = {
	    {BLOCK + 4096, 0, {0}},	/* target not whole blocks */
	    {REGION + BLOCK, 0, {0}},	/* target over the region */
	    {0, 1, {0, 0}},		/* an empty run */
	    {0, 1, {NBLOCKS, 1}},	/* past the end */
	    {0, 1, {NBLOCKS - 1, 2}},	/* across the end */
	    {0, 1, {1, UINT64_MAX}},	/* wrapping */
	    {0, 2, {4, 2, 5, 2}},	/* overlapping */
	    {0, 2, {4, 2, 6, 2}},	/* touching: not maximal */
	    {0, 2, {8, 2, 4, 2}},	/* out of order */
	    {0, 3, {0, 1, 2, 1, 4, 1}}, /* fine, but claims more below */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct wbuf b;
		unsigned n = bad[i].n;

		wbuf_init(&b);
		put_state(&b, ADDR, REGION, BLOCK, bad[i].requested, bad[i].runs, n);
		if (i == ARRAY_SIZE(bad) - 1) {
			/* The count says 3 runs: drop the last's bytes. */
			b.len -= 16;
		}
		cr_assert_eq(restore_from(o, &b, err, sizeof(err)), -EBADMSG, "bad %zu: %s", i,
			     err);
		wbuf_free(&b);
	}
	/* More runs than the region could hold apart. */
	struct wbuf b;
	wbuf_init(&b);
	put_state(&b, ADDR, REGION, BLOCK, 0, NULL, 0);
	b.len -= 8;
	wput_u64(&b, NBLOCKS / 2 + 1);
	cr_assert_eq(restore_from(o, &b, err, sizeof(err)), -EBADMSG);
	/* Garbage. */
	memset(b.p, 0x5a, b.len);
	cr_assert_neq(restore_from(o, &b, err, sizeof(err)), 0);
	wbuf_free(&b);
	vmem_get_info(o, &in);
	cr_assert_eq(in.plugged, 0, "unchanged by the refusals");
	cr_assert_eq(in.requested, BLOCK);
	cr_assert_eq(ranges_of(o).n, 0);

	/* Restored over a device with blocks plugged: the saved state is
	 * all there is. */
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vmem_restore(m, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(info().plugged, 12 * BLOCK);
	cr_assert_eq(info().requested, 40 * MIB);
	cr_assert_eq(state_of(10, 1), VIRTIO_MEM_STATE_UNPLUGGED);
	cr_assert_eq(state_of(1, 3), VIRTIO_MEM_STATE_PLUGGED);
	vmem_destroy(o);
	wbuf_free(&w);
}

/* A driver without UNPLUGGED_INACCESSIBLE that resets and tries again as
 * often as it likes is refused each time, and named in the log once. */
Test(vmem, a_driver_without_the_feature_is_logged_once)
{
	struct vmem_params p = params();
	FILE *log = tmpfile();
	char line[512];
	unsigned lines = 0;
	int saved;

	cr_assert_not_null(log);
	cr_assert_eq(vmem_create(&m, &p), 0);
	vq_reset(&q);
	fake_ring_reset(&ring, g, QSIZE);
	cr_assert_eq(vq_activate(&q, g, QSIZE, DESC, AVAIL, USED, false), 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	cr_assert_eq(dup2(fileno(log), STDERR_FILENO), STDERR_FILENO);
	for (unsigned i = 0; i < 100; i++) {
		cr_assert_eq(vmem_ops.activate(m, 0, &q, &host), -EINVAL);
		vmem_ops.reset(m);
	}
	fflush(stderr);
	cr_assert_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	rewind(log);
	while (fgets(line, sizeof(line), log))
		lines += strstr(line, "UNPLUGGED_INACCESSIBLE") != NULL;
	cr_assert_eq(lines, 1);
	fclose(log);
}

/* An unplug whose memory goes back slowly (with the Uffd backend, its
 * removal waits until somebody reads the userfaultfd: once the handler is
 * gone, the main thread) holds no lock the main thread takes for the
 * metrics and the API, nor a vCPU for the configuration space: that
 * deadlocked the VM. */
static void *unplug_two(void *arg)
{
	(void)arg;
	cr_assert_eq(unplug(0, 2), VIRTIO_MEM_RESP_ACK);
	return NULL;
}

static void *read_figures(void *arg)
{
	struct virtio_mem_config *cfg = arg;

	(void)counters();
	(void)info();
	*cfg = config();
	return NULL;
}

Test(vmem, an_unplug_held_up_holds_no_lock)
{
	struct virtio_mem_config cfg;
	struct timespec ts;
	pthread_t ut, rt;
	char c = 0;

	open_dev(4 * BLOCK);
	cr_assert_eq(plug(0, 2), VIRTIO_MEM_RESP_ACK);
	cr_assert_eq(pipe(entered), 0);
	cr_assert_eq(pipe(release), 0);
	hold_unplug = true;
	cr_assert_eq(pthread_create(&ut, NULL, unplug_two, NULL), 0);
	struct pollfd p = {.fd = entered[0], .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 5000), 1, "the unplug never came");
	cr_assert_eq(pthread_create(&rt, NULL, read_figures, &cfg), 0);
	cr_assert_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
	ts.tv_sec += 2;
	int waited = pthread_timedjoin_np(rt, NULL, &ts);
	cr_assert_eq(write(release[1], &c, 1), 1);
	cr_assert_eq(pthread_join(ut, NULL), 0);
	if (waited)
		cr_assert_eq(pthread_join(rt, NULL), 0);
	cr_assert_eq(waited, 0, "the figures waited for the unplug: %s", strerror(waited));
	cr_assert_eq(le64toh(cfg.plugged_size), 2 * BLOCK, "plugged until it is done");
	cr_assert_eq(info().plugged, 0);
	for (int i = 0; i < 2; i++) {
		close(entered[i]);
		close(release[i]);
	}
}
