/* virtio-mmio snapshot: a transport driven by the test (playing the guest
 * driver) is saved and restored into a second transport for a second
 * fake device over the same guest memory (as a restored memory file gives
 * it). The restored one must answer as the first did and go on serving
 * the queues; every state a guest could not have produced is refused with
 * the transport left as it was. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <string.h>

#include "core/gmem.h"
#include "core/wire.h"
#include "mmio.h"
#include "vq.h"

#define RAM    (1u << 20)
#define QMAX   256
#define DESC0  0x1000
#define AVAIL0 0x2000
#define USED0  0x3000
#define DESC1  0x4000
#define AVAIL1 0x5000
#define USED1  0x6000
#define BUF    0x10000

#define F_DEV_A	 (1ULL << 1)
#define F_DEV_B	 (1ULL << 9)
#define F_VER1	 (1ULL << VIRTIO_F_VERSION_1)
#define F_EVIDX	 (1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIR	 (1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define OFFERED	 (F_DEV_A | F_DEV_B | F_VER1 | F_EVIDX | F_INDIR)
#define S_ACK	 VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV	 VIRTIO_CONFIG_S_DRIVER
#define S_FOK	 VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK	 VIRTIO_CONFIG_S_DRIVER_OK
#define S_FAILED VIRTIO_CONFIG_S_FAILED
#define S_NR	 VIRTIO_CONFIG_S_NEEDS_RESET
#define S_RUN	 (S_ACK | S_DRV | S_FOK | S_DOK)

struct fake {
	int activate_ret;
	unsigned activates, resets, notifies;
	uint64_t act_features;
	struct vq *queues;
	struct virtio_host host;
	uint8_t config[16];
	uint16_t popped[8]; /* heads, in the order popped */
	unsigned npopped;
	unsigned irqs;
};

static struct gmem *g;
static struct fake d1, d2;
static struct virtio_mmio *t1, *t2;

static uint64_t fake_features(void *d)
{
	(void)d;
	return F_DEV_A | F_DEV_B;
}

static void fake_config_read(void *d, uint64_t off, void *data, uint32_t len)
{
	struct fake *f = d;
	virtio_config_copy(f->config, sizeof(f->config), off, data, len);
}

static int fake_activate(void *d, uint64_t features, struct vq *queues,
			 const struct virtio_host *host)
{
	struct fake *f = d;
	f->activates++;
	f->act_features = features;
	f->queues = queues;
	f->host = *host;
	return f->activate_ret;
}

static void fake_reset(void *d)
{
	struct fake *f = d;
	f->resets++;
}

/* A device that completes every chain at once, writing nothing. */
static void fake_notify(void *d, unsigned q)
{
	struct fake *f = d;
	struct vq_seg seg[4];
	struct vq_chain c = {.seg = seg, .cap = 4};

	f->notifies++;
	while (vq_pop(&f->queues[q], &c) == 1) {
		cr_assert_lt(f->npopped, ARRAY_SIZE(f->popped));
		f->popped[f->npopped++] = c.head;
		cr_assert_eq(vq_push(&f->queues[q], c.head, c.readable), 0);
	}
	f->host.used(f->host.t, q);
}

static const struct virtio_dev_ops fake_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .num_queues = 2,
    .queue_max = QMAX,
    .features = fake_features,
    .config_read = fake_config_read,
    .activate = fake_activate,
    .reset = fake_reset,
    .notify = fake_notify,
};

static void fake_irq(void *ctx)
{
	struct fake *f = ctx;
	f->irqs++;
}

static struct wbuf w;

static void setup(void)
{
	memset(&d1, 0, sizeof(d1));
	memset(&d2, 0, sizeof(d2));
	memcpy(d1.config, "flint-config-16b", 16);
	memcpy(d2.config, d1.config, 16);
	cr_assert_eq(gmem_create(&g, RAM), 0);
	cr_assert_eq(virtio_mmio_create(&t1, g, &fake_ops, &d1, fake_irq, &d1), 0);
	cr_assert_eq(virtio_mmio_create(&t2, g, &fake_ops, &d2, fake_irq, &d2), 0);
	wbuf_init(&w);
}

static void teardown(void)
{
	wbuf_free(&w);
	virtio_mmio_destroy(t1);
	virtio_mmio_destroy(t2);
	gmem_destroy(g);
}

TestSuite(mmio_snap, .init = setup, .fini = teardown);

static uint32_t rd(struct virtio_mmio *t, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	virtio_mmio_bus_ops.read(t, off, &v, sizeof(v));
	return v;
}

static void wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	virtio_mmio_bus_ops.write(t, off, &v, sizeof(v));
}

static void negotiate(struct virtio_mmio *t, uint64_t f)
{
	wr(t, VIRTIO_MMIO_STATUS, 0);
	wr(t, VIRTIO_MMIO_STATUS, S_ACK);
	wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK);
}

static void setup_queue(struct virtio_mmio *t, unsigned q, uint32_t num, uint64_t desc,
			uint64_t avail, uint64_t used)
{
	wr(t, VIRTIO_MMIO_QUEUE_SEL, q);
	wr(t, VIRTIO_MMIO_QUEUE_NUM, num);
	wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void *at(uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(g, gpa, len);
	cr_assert_not_null(p);
	return p;
}

/* The guest offers a one-descriptor readable chain at index i on queue 0
 * (size 16) and asks, through used_event, for an interrupt at the next
 * used buffer. */
static uint16_t guest_avail;
static void offer0(uint16_t i, uint32_t len)
{
	struct vring_desc *d = at(DESC0 + (uint64_t)i * sizeof(*d), sizeof(*d));
	struct vring_avail *a = at(AVAIL0, sizeof(*a) + 2u * 16 + 2);
	struct vring_used *u = at(USED0, sizeof(*u));

	*d = (struct vring_desc){.addr = BUF + (uint64_t)i * 0x100, .len = len};
	a->ring[guest_avail % 16] = i;
	a->ring[16] = u->idx; /* used_event */
	a->idx = ++guest_avail;
}

/* t1 running with both queues, traffic on queue 0, an interrupt pending
 * (not acknowledged) and a configuration change seen. */
static void bring_up_busy(void)
{
	guest_avail = 0;
	negotiate(t1, F_VER1 | F_EVIDX | F_DEV_B);
	setup_queue(t1, 0, 16, DESC0, AVAIL0, USED0);
	setup_queue(t1, 1, 8, DESC1, AVAIL1, USED1);
	wr(t1, VIRTIO_MMIO_STATUS, S_RUN);
	cr_assert_eq(d1.activates, 1);
	offer0(3, 0x10);
	offer0(5, 0x20);
	virtio_mmio_queue_notify(t1, 0);
	cr_assert_eq(d1.npopped, 2);
	cr_assert_eq(rd(t1, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	virtio_mmio_config_changed(t1);
	wr(t1, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	wr(t1, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(t1, VIRTIO_MMIO_QUEUE_SEL, 1);
}

static void save1(void)
{
	wbuf_free(&w);
	cr_assert_eq(virtio_mmio_save(t1, &w, NULL, 0), 0);
}

static int restore2(const struct wbuf *from, char *err, size_t errlen)
{
	struct rbuf r;
	rbuf_init(&r, from->p, from->len);
	int e = virtio_mmio_restore(t2, &r, err, errlen);
	if (!e)
		cr_assert(rbuf_done(&r), "the whole section read");
	return e;
}

/* Every register as the guest reads it, for QueueSel 0..2 and both feature
 * words, and the configuration space; the selectors are put back. */
static void expect_same_registers(void)
{
	uint32_t qsel = 1;

	for (unsigned sel = 0; sel < 3; sel++) {
		wr(t1, VIRTIO_MMIO_QUEUE_SEL, sel);
		wr(t2, VIRTIO_MMIO_QUEUE_SEL, sel);
		wr(t1, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
		wr(t2, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
		for (uint64_t off = 0; off < VIRTIO_MMIO_CONFIG; off += 4)
			cr_assert_eq(rd(t1, off), rd(t2, off), "QueueSel %u, register %#llx", sel,
				     (unsigned long long)off);
	}
	for (uint64_t off = VIRTIO_MMIO_CONFIG; off < VIRTIO_MMIO_CONFIG + 24; off += 4)
		cr_assert_eq(rd(t1, off), rd(t2, off));
	wr(t1, VIRTIO_MMIO_QUEUE_SEL, qsel);
	wr(t2, VIRTIO_MMIO_QUEUE_SEL, qsel);
	wr(t1, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	wr(t2, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
}

/* t2 is as virtio_mmio_create left it, and the device was never started. */
static void expect_t2_untouched(void)
{
	cr_assert_eq(d2.activates, 0);
	cr_assert_eq(d2.resets, 0);
	cr_assert_eq(d2.irqs, 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_CONFIG_GENERATION), 0);
	wr(t2, VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_QUEUE_READY), 0);
	virtio_mmio_queue_notify(t2, 0);
	cr_assert_eq(d2.notifies, 0);
}

Test(mmio_snap, restored_transport_answers_as_before)
{
	char err[256] = "";

	bring_up_busy();
	save1();
	cr_assert_eq(restore2(&w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d2.resets, 1, "reset before activation, as a driver's probe");
	cr_assert_eq(d2.activates, 1);
	cr_assert_eq(d2.act_features, F_VER1 | F_EVIDX | F_DEV_B);
	cr_assert_eq(d2.irqs, 1, "the pending interrupt raised again");
	cr_assert(d2.queues[0].ready);
	cr_assert(d2.queues[1].ready);
	cr_assert_eq(d2.queues[0].last_avail, 2);
	cr_assert_eq(d2.queues[0].next_used, 2);
	cr_assert_eq(d2.queues[1].size, 8);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_STATUS), S_RUN);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_INTERRUPT_STATUS),
		     VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_CONFIG_GENERATION), 1);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_QUEUE_READY), 1, "QueueSel 1 kept");
	cr_assert_eq(rd(t2, VIRTIO_MMIO_DEVICE_FEATURES), 1, "DeviceFeaturesSel 1 kept");
	expect_same_registers();
	/* Driver features are frozen after FEATURES_OK on both. */
	wr(t2, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	cr_assert_eq(restore2(&w, err, sizeof(err)), -EBUSY, "only into a fresh transport");
}

Test(mmio_snap, restored_queue_serves_a_new_request)
{
	struct vring_used *u = at(USED0, sizeof(*u) + 16 * sizeof(struct vring_used_elem));
	char err[256] = "";

	bring_up_busy();
	save1();
	cr_assert_eq(restore2(&w, err, sizeof(err)), 0, "%s", err);
	wr(t2, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	offer0(9, 0x30);
	wr(t2, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	cr_assert_eq(d2.notifies, 1);
	cr_assert_eq(d2.npopped, 1, "only the new chain: last_avail was restored");
	cr_assert_eq(d2.popped[0], 9);
	cr_assert_eq(u->idx, 3, "used idx goes on from the saved one");
	cr_assert_eq(u->ring[2].id, 9);
	cr_assert_eq(u->ring[2].len, 0x30);
	cr_assert_eq(u->ring[0].id, 3, "earlier entries untouched");
	cr_assert_eq(u->ring[1].id, 5);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	cr_assert_eq(d2.irqs, 2, "an interrupt for it (used_event asked)");
	/* The source is unaffected by the copy. */
	cr_assert_eq(d1.npopped, 2);
	/* And the guest may reset the restored device as any other. */
	wr(t2, VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(d2.resets, 2);
	cr_assert_not(d2.queues[0].ready);
}

Test(mmio_snap, mid_negotiation_state_round_trip)
{
	char err[256] = "";

	negotiate(t1, F_VER1 | F_DEV_A);
	setup_queue(t1, 1, 8, DESC1, AVAIL1, USED1);
	wr(t1, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(t1, VIRTIO_MMIO_QUEUE_NUM, 16); /* queue 0 half set up */
	save1();
	cr_assert_eq(restore2(&w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d2.activates, 0, "not running: nothing to start");
	cr_assert_eq(d2.irqs, 0);
	expect_same_registers();
	/* The driver goes on where it was on the restored transport. */
	wr(t2, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(t2, VIRTIO_MMIO_QUEUE_DESC_LOW, DESC0);
	wr(t2, VIRTIO_MMIO_QUEUE_AVAIL_LOW, AVAIL0);
	wr(t2, VIRTIO_MMIO_QUEUE_USED_LOW, USED0);
	wr(t2, VIRTIO_MMIO_QUEUE_READY, 1);
	wr(t2, VIRTIO_MMIO_STATUS, S_RUN);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_STATUS), S_RUN);
	cr_assert_eq(d2.activates, 1);
	cr_assert_eq(d2.act_features, F_VER1 | F_DEV_A);
	cr_assert_eq(d2.queues[0].size, 16);
	cr_assert_eq(d2.queues[1].size, 8);
}

Test(mmio_snap, needs_reset_state_round_trip)
{
	char err[256] = "";

	negotiate(t1, F_VER1);
	setup_queue(t1, 0, 16, DESC0, AVAIL0, 2 * RAM); /* refused at DRIVER_OK */
	wr(t1, VIRTIO_MMIO_STATUS, S_RUN);
	cr_assert_eq(rd(t1, VIRTIO_MMIO_STATUS), S_RUN | S_NR);
	save1();
	cr_assert_eq(restore2(&w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d2.activates, 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_STATUS), S_RUN | S_NR);
	cr_assert_eq(d2.irqs, 1, "its configuration interrupt raised again");
	virtio_mmio_queue_notify(t2, 0);
	cr_assert_eq(d2.notifies, 0);
	wr(t2, VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_STATUS), 0);
}

Test(mmio_snap, truncated_anywhere_refused)
{
	char err[256];

	bring_up_busy();
	save1();
	for (size_t len = 0; len < w.len; len++) {
		struct rbuf r;

		err[0] = 0;
		rbuf_init(&r, w.p, len);
		cr_assert_eq(virtio_mmio_restore(t2, &r, err, sizeof(err)), -EBADMSG,
			     "len %zu of %zu: %s", len, w.len, err);
		cr_assert_eq(strncmp(err, "virtio-mmio device 2: ", 22), 0, "%s", err);
	}
	expect_t2_untouched();
	cr_assert_eq(restore2(&w, err, sizeof(err)), 0, "%s", err);
}

/* ---- a state encoded by hand, to refuse what vq_save never writes ----- */

struct qst {
	uint32_t num, ready;
	uint64_t desc, avail, used;
	struct vq vq; /* the fields vq_save reads */
};

struct st {
	uint32_t version, id, nq;
	uint64_t offered;
	uint32_t status;
	uint8_t running, needs_reset;
	uint32_t dsel, drvsel, qsel;
	uint64_t features;
	uint32_t isr, gen;
	struct qst q[2];
	uint32_t cfg_len;
};

static void put_state(struct wbuf *o, const struct st *s)
{
	uint8_t cfg[VIRTIO_MMIO_CONFIG_SAVED] = {0};

	wput_u32(o, s->version);
	wput_u32(o, s->id);
	wput_u32(o, s->nq);
	wput_u64(o, s->offered);
	wput_u32(o, s->status);
	wput_u8(o, s->running);
	wput_u8(o, s->needs_reset);
	wput_u32(o, s->dsel);
	wput_u32(o, s->drvsel);
	wput_u32(o, s->qsel);
	wput_u64(o, s->features);
	wput_u32(o, s->isr);
	wput_u32(o, s->gen);
	for (unsigned i = 0; i < 2; i++) {
		wput_u32(o, s->q[i].num);
		wput_u32(o, s->q[i].ready);
		wput_u64(o, s->q[i].desc);
		wput_u64(o, s->q[i].avail);
		wput_u64(o, s->q[i].used);
		cr_assert_eq(vq_save(&s->q[i].vq, o), 0);
	}
	memcpy(cfg, d1.config, sizeof(d1.config));
	wput_blob(o, cfg, s->cfg_len);
}

static struct qst ready_queue(uint32_t num, uint64_t desc, uint64_t avail, uint64_t used,
			      bool event_idx)
{
	struct qst q = {.num = num, .ready = 1, .desc = desc, .avail = avail, .used = used};

	q.vq = (struct vq){.ready = true,
			   .event_idx = event_idx,
			   .size = (uint16_t)num,
			   .desc_gpa = desc,
			   .avail_gpa = avail,
			   .used_gpa = used};
	return q;
}

/* A running device with queue 0 (16 entries) ready and EVENT_IDX. */
static struct st good(void)
{
	return (struct st){.version = 1,
			   .id = VIRTIO_ID_BLOCK,
			   .nq = 2,
			   .offered = OFFERED,
			   .status = S_RUN,
			   .running = 1,
			   .drvsel = 1, /* where negotiate leaves it */
			   .features = F_VER1 | F_EVIDX,
			   .q = {ready_queue(16, DESC0, AVAIL0, USED0, true)},
			   .cfg_len = VIRTIO_MMIO_CONFIG_SAVED};
}

static void expect_refused(const struct st *s, int want, const char *says)
{
	struct wbuf o;
	char err[256] = "";

	wbuf_init(&o);
	put_state(&o, s);
	cr_assert_eq(restore2(&o, err, sizeof(err)), want, "%s", err);
	cr_assert(strstr(err, says), "'%s' lacks '%s'", err, says);
	wbuf_free(&o);
	expect_t2_untouched();
}

Test(mmio_snap, hand_encoding_matches_the_real_one)
{
	struct wbuf o;
	struct st s = good();

	negotiate(t1, F_VER1 | F_EVIDX);
	setup_queue(t1, 0, 16, DESC0, AVAIL0, USED0);
	wr(t1, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(t1, VIRTIO_MMIO_STATUS, S_RUN);
	save1();
	wbuf_init(&o);
	put_state(&o, &s);
	cr_assert_eq(o.len, w.len);
	cr_assert_arr_eq(o.p, w.p, w.len);
	wbuf_free(&o);
	/* And the good one restores. */
	cr_assert_eq(restore2(&w, NULL, 0), 0);
}

Test(mmio_snap, queue_outside_guest_memory_refused)
{
	struct st s = good();

	s.q[1] = ready_queue(8, DESC1, AVAIL1, RAM - 0x40, true); /* straddles the end */
	expect_refused(&s, -EINVAL, "queue 1: vq: size 8");
	s.q[1] = ready_queue(8, 4 * RAM, AVAIL1, USED1, true);
	expect_refused(&s, -EINVAL, "guest memory");
}

Test(mmio_snap, queue_size_refused)
{
	struct st s = good();

	s.q[0] = ready_queue(24, DESC0, AVAIL0, USED0, true);
	expect_refused(&s, -EINVAL, "power of two");
	/* A power of two the ring allows but over this device's QueueNumMax:
	 * the driver's own DRIVER_OK would refuse it. */
	s.q[0] = ready_queue(2 * QMAX, DESC0, AVAIL0, USED0, true);
	expect_refused(&s, -EINVAL, "max 256");
}

Test(mmio_snap, queue_state_disagreeing_with_registers_refused)
{
	struct st s = good();

	s.q[0].desc = DESC1;
	expect_refused(&s, -EINVAL, "disagrees");
	s = good();
	s.q[0].vq.event_idx = false; /* EVENT_IDX was negotiated */
	expect_refused(&s, -EINVAL, "disagrees");
	s = good();
	s.q[0].vq.ready = false;
	expect_refused(&s, -EINVAL, "disagrees");
	s = good();
	s.q[1].vq = s.q[0].vq; /* started though never made ready */
	expect_refused(&s, -EINVAL, "not made ready");
	s = good();
	s.q[0].vq.last_avail = 40; /* 40 chains held on a queue of 16 */
	expect_refused(&s, -EINVAL, "in flight");
}

Test(mmio_snap, features_never_offered_refused)
{
	struct st s = good();

	s.features |= 1ULL << 3;
	expect_refused(&s, -EINVAL, "not offer");
	s.features = F_VER1 | (1ULL << 40);
	expect_refused(&s, -EINVAL, "not offer");
	/* Offered when saved, not by this device now. */
	s.offered |= 1ULL << 3;
	s.features = F_VER1 | (1ULL << 3);
	expect_refused(&s, -EINVAL, "not offer");
	s.features = F_EVIDX;
	expect_refused(&s, -EINVAL, "VERSION_1");
	/* Features are only written with DRIVER set. */
	s = (struct st){.version = 1,
			.id = VIRTIO_ID_BLOCK,
			.nq = 2,
			.status = S_ACK,
			.features = F_VER1,
			.cfg_len = VIRTIO_MMIO_CONFIG_SAVED};
	expect_refused(&s, -EINVAL, "driver features");
}

Test(mmio_snap, status_no_driver_can_set_refused)
{
	static const uint32_t bad[] = {
	    S_DRV,		   /* DRIVER before ACKNOWLEDGE */
	    S_ACK | S_FOK,	   /* skips DRIVER */
	    S_ACK | S_DRV | S_DOK, /* skips FEATURES_OK */
	    S_RUN | S_NR,	   /* the device's bit, not the driver's */
	    S_RUN | 0x10,	   /* a reserved bit */
	    0xffffffff,
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct st s = good();

		s.status = bad[i];
		expect_refused(&s, -EINVAL, "not one a driver can reach");
	}
	struct st s = good();
	s.status = S_ACK | S_DRV | S_FOK; /* running, but DRIVER_OK never set */
	expect_refused(&s, -EINVAL, "running with status");
	s = good();
	s.running = 0; /* DRIVER_OK, but neither started nor failed */
	expect_refused(&s, -EINVAL, "neither running");
	s = (struct st){.version = 1,
			.id = VIRTIO_ID_BLOCK,
			.nq = 2,
			.status = S_ACK | S_DRV,
			.q = {{.num = 16}},
			.cfg_len = VIRTIO_MMIO_CONFIG_SAVED};
	expect_refused(&s, -EINVAL, "registers set with status");
	s = good();
	s.isr = 4;
	expect_refused(&s, -EINVAL, "InterruptStatus");
	s = good();
	s.q[0].ready = 2;
	expect_refused(&s, -EINVAL, "QueueReady 2");
}

Test(mmio_snap, another_device_or_encoding_refused)
{
	struct st s = good();

	s.id = VIRTIO_ID_NET;
	expect_refused(&s, -EINVAL, "device 1 with 2 queues");
	s = good();
	s.nq = 3;
	expect_refused(&s, -EINVAL, "3 queues");
	s = good();
	s.version = 2;
	expect_refused(&s, -EBADMSG, "version 2");
	s = good();
	s.running = 2;
	expect_refused(&s, -EBADMSG, "not 0 or 1");
	s = good();
	s.cfg_len = 100;
	expect_refused(&s, -EBADMSG, "configuration space");
	s = good();
	s.q[0].vq.size = 0; /* written as a ready queue's size 0 */
	expect_refused(&s, -EINVAL, "power of two");
}

Test(mmio_snap, device_refusing_activation_leaves_the_transport_reset)
{
	char err[256] = "";

	bring_up_busy();
	save1();
	d2.activate_ret = -EIO;
	cr_assert_eq(restore2(&w, err, sizeof(err)), -EIO, "%s", err);
	cr_assert(strstr(err, "refused activation"), "%s", err);
	cr_assert_eq(d2.activates, 1);
	cr_assert_eq(d2.resets, 2, "reset again after the failed start");
	cr_assert_not(d2.queues[0].ready);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(rd(t2, VIRTIO_MMIO_CONFIG_GENERATION), 0);
	cr_assert_eq(d2.irqs, 0);
	virtio_mmio_queue_notify(t2, 0);
	cr_assert_eq(d2.notifies, 0);
	d2.activate_ret = 0;
	cr_assert_eq(restore2(&w, err, sizeof(err)), 0, "then a restore works: %s", err);
	cr_assert_eq(d2.activates, 2);
}

/* A reset in place: the transport that was saved goes on (more requests,
 * a changed configuration, other selectors), then virtio_mmio_reset takes
 * it back to a fresh slot's state (the device reset, as by its driver) and
 * the saved state restores into it: it answers as the saved one, serves
 * from the saved ring indices, and can be reset and restored again. */
Test(mmio_snap, reset_in_place_then_restore_into_the_same_transport)
{
	struct vring_used *u = at(USED0, sizeof(*u) + 16 * sizeof(struct vring_used_elem));
	char err[256] = "";
	struct rbuf r;

	bring_up_busy();
	save1();
	cr_assert_eq(restore2(&w, err, sizeof(err)), 0, "%s", err); /* the reference */
	for (int round = 0; round < 3; round++) {
		/* What the VM did after the snapshot. */
		offer0(7, 0x40);
		virtio_mmio_queue_notify(t1, 0);
		virtio_mmio_config_changed(t1);
		wr(t1, VIRTIO_MMIO_QUEUE_SEL, 0);
		wr(t1, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
		rbuf_init(&r, w.p, w.len);
		cr_assert_eq(virtio_mmio_restore(t1, &r, err, sizeof(err)), -EBUSY,
			     "not over a transport in use");
		unsigned resets = d1.resets, activates = d1.activates;
		virtio_mmio_reset(t1);
		cr_assert_eq(d1.resets, resets + 1, "the device forgot its queues");
		cr_assert_eq(rd(t1, VIRTIO_MMIO_STATUS), 0);
		cr_assert_eq(rd(t1, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
		/* The guest's memory back to the snapshot's, as the memory
		 * file gives it: the used ring of the snapshot. */
		u->idx = 2;
		guest_avail = 2;
		((struct vring_avail *)at(AVAIL0, sizeof(struct vring_avail)))->idx = 2;
		rbuf_init(&r, w.p, w.len);
		cr_assert_eq(virtio_mmio_restore(t1, &r, err, sizeof(err)), 0, "%s", err);
		cr_assert(rbuf_done(&r));
		cr_assert_eq(d1.activates, activates + 1);
		cr_assert_eq(d1.queues[0].last_avail, 2, "round %d", round);
		cr_assert_eq(d1.queues[0].next_used, 2);
		expect_same_registers();
		/* It serves from there. */
		d1.npopped = 0;
		offer0(9, 0x30);
		wr(t1, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		cr_assert_eq(d1.npopped, 1);
		cr_assert_eq(d1.popped[0], 9);
		cr_assert_eq(u->idx, 3);
		cr_assert_eq(u->ring[2].id, 9);
	}
}

/* A queue whose rings the guest placed in a hot-plugged block it then
 * unplugged: the save says so, naming the queue, rather than writing a
 * state its restore would refuse. */
Test(mmio_snap, rings_in_unplugged_memory_are_refused_at_save)
{
	const uint64_t hot = 1ull << 30, block = 2ull << 20;
	char err[200] = "";

	cr_assert_eq(gmem_hotplug_add(g, hot, block, block), 0);
	cr_assert_eq(gmem_hotplug_set(g, hot, block, true), 0);
	negotiate(t1, F_VER1 | F_EVIDX | F_DEV_B);
	setup_queue(t1, 0, 16, DESC0, AVAIL0, USED0);
	setup_queue(t1, 1, 8, hot + DESC1, hot + AVAIL1, hot + USED1);
	wr(t1, VIRTIO_MMIO_STATUS, S_RUN);
	cr_assert_eq(d1.activates, 1);
	save1();
	cr_assert_eq(gmem_hotplug_set(g, hot, block, false), 0);
	wbuf_free(&w);
	cr_assert_eq(virtio_mmio_save(t1, &w, err, sizeof(err)), -EFAULT);
	cr_assert(strstr(err, "queue 1's rings lie in memory the guest unplugged"), "%s", err);
}
