/* virtio-mmio transport: the tests play the guest driver through the bus
 * handlers, against a fake device that counts what reaches it and a real
 * gmem holding the rings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/gmem.h"
#include "mmio.h"
#include "vq.h"

#define RAM  (1u << 20)
#define QMAX 256
/* Rings of queue 0 and queue 1. */
#define DESC0  0x1000
#define AVAIL0 0x2000
#define USED0  0x3000
#define DESC1  0x4000
#define AVAIL1 0x5000
#define USED1  0x6000

#define F_DEV_A	 (1ULL << 1) /* device-specific bits the fake offers */
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

struct fake {
	int activate_ret;
	bool used_on_notify; /* push head 0 and call host.used from notify */
	unsigned activates, resets, notifies[VIRTIO_MAX_QUEUES];
	unsigned config_reads, config_writes;
	uint64_t act_features;
	struct vq *queues;
	struct virtio_host host;
	uint64_t cfg_off;
	uint32_t cfg_len;
	uint8_t config[16];
	/* The concurrency test: notifications seen with the queue not live. */
	unsigned long notify_on_dead_queue;
};

static struct fake dev;
static unsigned irqs;
static struct gmem *g;
static struct virtio_mmio *t;

static uint64_t fake_features(void *d)
{
	(void)d;
	return F_DEV_A | F_DEV_B;
}

static void fake_config_read(void *d, uint64_t off, void *data, uint32_t len)
{
	struct fake *f = d;
	f->config_reads++;
	f->cfg_off = off;
	f->cfg_len = len;
	if (off + len <= sizeof(f->config))
		memcpy(data, f->config + off, len);
}

static void fake_config_write(void *d, uint64_t off, const void *data, uint32_t len)
{
	struct fake *f = d;
	f->config_writes++;
	f->cfg_off = off;
	f->cfg_len = len;
	if (off + len <= sizeof(f->config))
		memcpy(f->config + off, data, len);
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

static void fake_notify(void *d, unsigned q)
{
	struct fake *f = d;
	f->notifies[q]++;
	if (!f->queues || !f->queues[q].ready)
		f->notify_on_dead_queue++;
	if (f->used_on_notify) {
		cr_assert_eq(vq_push(&f->queues[q], 0, 0), 0);
		f->host.used(f->host.t, q);
	}
}

static const struct virtio_dev_ops fake_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .num_queues = 2,
    .queue_max = QMAX,
    .features = fake_features,
    .config_read = fake_config_read,
    .config_write = fake_config_write,
    .activate = fake_activate,
    .reset = fake_reset,
    .notify = fake_notify,
};

static void fake_irq(void *ctx)
{
	cr_assert_eq(ctx, &irqs);
	__atomic_fetch_add(&irqs, 1, __ATOMIC_RELAXED);
}

static void setup(void)
{
	memset(&dev, 0, sizeof(dev));
	irqs = 0;
	cr_assert_eq(gmem_create(&g, RAM), 0);
	cr_assert_eq(virtio_mmio_create(&t, g, &fake_ops, &dev, fake_irq, &irqs), 0);
}

static void teardown(void)
{
	virtio_mmio_destroy(t);
	gmem_destroy(g);
}

TestSuite(mmio, .init = setup, .fini = teardown);

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	virtio_mmio_bus_ops.read(t, off, &v, sizeof(v));
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	virtio_mmio_bus_ops.write(t, off, &v, sizeof(v));
}

static void write_features(uint64_t f)
{
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

/* 3.1.1 up to FEATURES_OK, which must stick. */
static void negotiate(uint64_t f)
{
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	write_features(f);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK);
}

/* Program queue q as Linux's vm_setup_vq does. */
static void setup_queue(unsigned q, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	wr(VIRTIO_MMIO_QUEUE_SEL, q);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, num);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	wr(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	wr(VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	wr(VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
}

static void driver_ok(void)
{
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
}

/* A device running with queue 0 (size 16) and the given features. */
static void bring_up(uint64_t f)
{
	unsigned before = dev.activates;

	negotiate(f);
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	driver_ok();
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(dev.activates, before + 1);
}

static struct vring_avail *avail0(void)
{
	struct vring_avail *a = gmem_ptr(g, AVAIL0, sizeof(*a));
	cr_assert_not_null(a);
	return a;
}

static struct virtio_mmio_queue_stats stats(unsigned q)
{
	struct virtio_mmio_queue_stats s;
	virtio_mmio_get_stats(t, q, &s);
	return s;
}

static void expect_needs_reset_not_activated(void)
{
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK | S_NR);
	cr_assert_eq(dev.activates, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(irqs, 1);
	virtio_mmio_queue_notify(t, 0);
	cr_assert_eq(dev.notifies[0], 0);
}

Test(mmio, identity_registers)
{
	cr_assert_eq(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976); /* "virt" */
	cr_assert_eq(rd(VIRTIO_MMIO_VERSION), 2);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	cr_assert_eq(rd(VIRTIO_MMIO_VENDOR_ID), 0x544e4c46);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(virtio_mmio_num_queues(t), 2);
}

Test(mmio, device_features_both_halves)
{
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES),
		     (uint32_t)(F_DEV_A | F_DEV_B | F_EVIDX | F_INDIR));
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 is bit 32 */
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES_SEL), 0); /* write-only */
}

Test(mmio, accepted_features_reach_activate)
{
	bring_up(F_VER1 | F_DEV_B | F_INDIR);
	cr_assert_eq(dev.act_features, F_VER1 | F_DEV_B | F_INDIR);
	cr_assert_eq(dev.queues[0].event_idx, false);
}

Test(mmio, driver_features_frozen_after_features_ok)
{
	negotiate(F_VER1 | F_DEV_A);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(F_DEV_B | F_EVIDX));
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	driver_ok();
	cr_assert_eq(dev.activates, 1);
	cr_assert_eq(dev.act_features, F_VER1 | F_DEV_A);
}

Test(mmio, driver_features_ignored_before_driver)
{
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	write_features(F_VER1 | F_DEV_A); /* too early: dropped */
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV); /* no VERSION_1 */
}

Test(mmio, unoffered_feature_refused)
{
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	write_features(F_VER1 | (1ULL << 3));
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	/* An unoffered bit in the high half too. */
	write_features(F_VER1 | (1ULL << 40));
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	/* The driver may try again with a subset. */
	write_features(F_VER1 | F_DEV_A);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK);
}

Test(mmio, missing_version_1_refused)
{
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	write_features(F_DEV_A | F_EVIDX);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	cr_assert_eq(dev.activates, 0);
}

Test(mmio, status_out_of_order_ignored)
{
	wr(VIRTIO_MMIO_STATUS, S_DRV); /* DRIVER before ACKNOWLEDGE */
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK); /* skips DRIVER */
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	wr(VIRTIO_MMIO_STATUS, S_ACK); /* clearing a bit */
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	write_features(F_VER1);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_DOK); /* skips FEATURES_OK */
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	cr_assert_eq(dev.activates, 0);
	cr_assert_eq(dev.resets, 0);
}

Test(mmio, failed_sticks_and_stops_progress)
{
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_FAILED);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_FAILED);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_FAILED);
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(dev.resets, 1);
}

Test(mmio, reset_clears_everything)
{
	bring_up(F_VER1 | F_EVIDX);
	virtio_mmio_config_changed(t);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 1);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(dev.queues[0].ready, true);

	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(dev.resets, 2); /* negotiate's and this one */
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	cr_assert_eq(dev.queues[0].ready, false);
	cr_assert_eq(dev.queues[0].size, 0);
	/* Notifications stop at once. */
	virtio_mmio_queue_notify(t, 0);
	cr_assert_eq(dev.notifies[0], 0);
	/* Driver features are gone: FEATURES_OK without writing them fails
	 * for want of VERSION_1. */
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	/* The generation survives: a driver never sees it go back. */
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 1);
}

Test(mmio, reset_then_second_bring_up)
{
	bring_up(F_VER1);
	wr(VIRTIO_MMIO_STATUS, 0);
	negotiate(F_VER1 | F_EVIDX);
	setup_queue(1, 8, DESC1, AVAIL1, USED1);
	driver_ok();
	cr_assert_eq(dev.activates, 2);
	cr_assert_eq(dev.queues[0].ready, false);
	cr_assert_eq(dev.queues[1].ready, true);
	cr_assert_eq(dev.queues[1].size, 8);
	cr_assert_eq(dev.queues[1].event_idx, true);
	virtio_mmio_queue_notify(t, 1);
	cr_assert_eq(dev.notifies[1], 1);
}

Test(mmio, queue_num_max)
{
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	wr(VIRTIO_MMIO_QUEUE_SEL, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	wr(VIRTIO_MMIO_QUEUE_SEL, 2);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0xffffffff);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

Test(mmio, queue_registers_reach_vq_activate)
{
	negotiate(F_VER1 | F_EVIDX);
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	setup_queue(1, 256, DESC1, AVAIL1, USED1);
	driver_ok();
	cr_assert_eq(dev.activates, 1);
	cr_assert_eq(dev.act_features, F_VER1 | F_EVIDX);
	struct vq *q = dev.queues;
	cr_assert_eq(q[0].ready, true);
	cr_assert_eq(q[0].size, 16);
	cr_assert_eq(q[0].desc_gpa, DESC0);
	cr_assert_eq(q[0].avail_gpa, AVAIL0);
	cr_assert_eq(q[0].used_gpa, USED0);
	cr_assert_eq(q[0].event_idx, true);
	cr_assert_eq(q[0].gmem, g);
	cr_assert_eq(q[1].size, 256);
	cr_assert_eq(q[1].desc_gpa, DESC1);
	cr_assert_eq(q[1].avail_gpa, AVAIL1);
	cr_assert_eq(q[1].used_gpa, USED1);
	cr_assert_eq((void *)q[1].used, gmem_ptr(g, USED1, 1));
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(irqs, 0);
}

Test(mmio, queue_not_made_ready_stays_reset)
{
	negotiate(F_VER1);
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	driver_ok();
	cr_assert_eq(dev.queues[0].ready, true);
	cr_assert_eq(dev.queues[1].ready, false);
	cr_assert_eq(dev.queues[1].size, 0);
}

Test(mmio, queue_registers_frozen_outside_setup)
{
	/* Before FEATURES_OK: dropped. */
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	write_features(F_VER1);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	/* Ready: QueueNum and the addresses no longer change. */
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	wr(VIRTIO_MMIO_QUEUE_NUM, 3);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1008);
	driver_ok();
	cr_assert_eq(dev.activates, 1);
	cr_assert_eq(dev.queues[0].size, 16);
	cr_assert_eq(dev.queues[0].desc_gpa, DESC0);
	/* Running: queue 1's registers and queue 0's ready are frozen. */
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 1);
	wr(VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	/* Write-only registers read as 0. */
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
}

Test(mmio, queue_ready_zero_before_driver_ok)
{
	negotiate(F_VER1);
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 1);
	wr(VIRTIO_MMIO_QUEUE_READY, 0); /* Linux's del_vqs on a probe error */
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	wr(VIRTIO_MMIO_QUEUE_READY, 2); /* neither 0 nor 1 */
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	driver_ok();
	cr_assert_eq(dev.activates, 1);
	cr_assert_eq(dev.queues[0].ready, false);
}

Test(mmio, misaligned_desc_needs_reset)
{
	negotiate(F_VER1);
	setup_queue(0, 16, DESC0 + 8, AVAIL0, USED0);
	driver_ok();
	expect_needs_reset_not_activated();
}

Test(mmio, misaligned_used_needs_reset)
{
	negotiate(F_VER1);
	setup_queue(0, 16, DESC0, AVAIL0, USED0 + 2);
	driver_ok();
	expect_needs_reset_not_activated();
}

Test(mmio, ring_outside_ram_needs_reset)
{
	negotiate(F_VER1);
	/* The high half puts the table at 4 GiB + DESC0: not RAM here. */
	setup_queue(0, 16, (1ULL << 32) | DESC0, AVAIL0, USED0);
	driver_ok();
	expect_needs_reset_not_activated();
}

Test(mmio, ring_straddling_end_of_ram_needs_reset)
{
	negotiate(F_VER1);
	setup_queue(0, 256, RAM - 0x800, AVAIL0, USED0); /* 4 KiB table */
	driver_ok();
	expect_needs_reset_not_activated();
}

Test(mmio, bad_queue_sizes_need_reset)
{
	static const uint32_t bad[] = {0, 100, QMAX * 2, 0x80000000u};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		irqs = 0;
		negotiate(F_VER1);
		setup_queue(1, bad[i], DESC1, AVAIL1, USED1);
		driver_ok();
		cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK | S_NR,
			     "size %u", bad[i]);
		cr_assert_eq(dev.activates, 0);
		cr_assert_eq(irqs, 1);
	}
}

Test(mmio, second_queue_bad_stops_activation)
{
	negotiate(F_VER1);
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	setup_queue(1, 16, DESC1 + 4, AVAIL1, USED1);
	driver_ok();
	expect_needs_reset_not_activated();
	/* Reset recovers: a good layout now activates. */
	negotiate(F_VER1);
	setup_queue(1, 16, DESC1, AVAIL1, USED1);
	driver_ok();
	cr_assert_eq(dev.activates, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

/* A guest that loops reset, a bad queue and DRIVER_OK fails its device
 * each time, and is told each time; the host's log says so a few times,
 * not once per loop. */
Test(mmio, a_guest_looping_needs_reset_does_not_flood_the_log)
{
	enum { LOOPS = 1000, LOGGED = 8 /* mmio.c's NEEDS_RESET_LOGS */ };
	FILE *log = tmpfile();
	char line[512];
	unsigned lines = 0;
	int saved;

	cr_assert_not_null(log);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	cr_assert_eq(dup2(fileno(log), STDERR_FILENO), STDERR_FILENO);
	for (unsigned i = 0; i < LOOPS; i++) {
		irqs = 0;
		negotiate(F_VER1);
		setup_queue(0, 100, DESC0, AVAIL0, USED0);
		driver_ok();
		cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK | S_NR);
		cr_assert_eq(irqs, 1, "the driver is told every time");
	}
	fflush(stderr);
	cr_assert_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	rewind(log);
	while (fgets(line, sizeof(line), log))
		if (strstr(line, "device needs reset") && ++lines == LOGGED)
			cr_assert(strstr(line, "(not logged again)"), "%s", line);
	cr_assert_eq(lines, LOGGED);
	fclose(log);
}

Test(mmio, device_activate_error_needs_reset)
{
	dev.activate_ret = -EIO;
	negotiate(F_VER1);
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	driver_ok();
	cr_assert_eq(dev.activates, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK | S_NR);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(irqs, 1);
	virtio_mmio_queue_notify(t, 0);
	cr_assert_eq(dev.notifies[0], 0);
	dev.host.used(dev.host.t, 0); /* not running: no interrupt */
	cr_assert_eq(irqs, 1);
}

Test(mmio, notify_only_after_driver_ok)
{
	negotiate(F_VER1);
	setup_queue(0, 16, DESC0, AVAIL0, USED0);
	virtio_mmio_queue_notify(t, 0);
	cr_assert_eq(dev.notifies[0], 0);
	driver_ok();
	virtio_mmio_queue_notify(t, 0);
	virtio_mmio_queue_notify(t, 1);
	virtio_mmio_queue_notify(t, 2); /* no such queue */
	virtio_mmio_queue_notify(t, ~0u);
	cr_assert_eq(dev.notifies[0], 1);
	cr_assert_eq(dev.notifies[1], 1);
	cr_assert_eq(stats(0).notifications, 1);
	cr_assert_eq(stats(0).notifications_dropped, 1);
	cr_assert_eq(stats(1).notifications, 1);
	cr_assert_eq(stats(2).notifications, 0);
}

Test(mmio, mmio_queue_notify_write_forwarded)
{
	bring_up(F_VER1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 7);
	cr_assert_eq(dev.notifies[0], 2);
	cr_assert_eq(dev.notifies[1], 1);
	cr_assert_eq(stats(0).notifications, 2);
	uint16_t half = 0;
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_QUEUE_NOTIFY, &half, sizeof(half));
	cr_assert_eq(dev.notifies[0], 2); /* 16-bit: not a register access */
}

/* With a forward set (the VM's: the queue's eventfd), a QueueNotify write
 * that reached the bus goes there, on to the device's own thread, never
 * into ops->notify on the vCPU thread that wrote it. */
static unsigned forwarded[4];

static void fwd(void *ctx, unsigned q)
{
	cr_assert_eq(ctx, &forwarded);
	forwarded[q]++;
}

Test(mmio, queue_notify_write_goes_to_the_forward)
{
	memset(forwarded, 0, sizeof(forwarded));
	bring_up(F_VER1);
	virtio_mmio_set_notify_forward(t, fwd, &forwarded);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 7); /* no such queue: dropped */
	cr_assert_eq(forwarded[0], 1);
	cr_assert_eq(forwarded[1], 1);
	cr_assert_eq(dev.notifies[0] + dev.notifies[1], 0, "not on the vCPU thread");
}

/* A queue of ops->exit_queues that ops->notify_in_place claims is
 * notified there and then, on the vCPU thread of the write (a balloon's
 * free page hints); unclaimed, or not one of exit_queues, it is forwarded. */
static bool claim_queue_1;

static bool fake_in_place(void *d, unsigned q)
{
	(void)d;
	return claim_queue_1 && q == 1;
}

Test(mmio, queue_notify_in_place)
{
	static struct virtio_dev_ops o;

	o = fake_ops;
	o.exit_queues = 1u << 1;
	o.notify_in_place = fake_in_place;
	virtio_mmio_destroy(t);
	cr_assert_eq(virtio_mmio_create(&t, g, &o, &dev, fake_irq, &irqs), 0);
	memset(forwarded, 0, sizeof(forwarded));
	bring_up(F_VER1);
	virtio_mmio_set_notify_forward(t, fwd, &forwarded);
	claim_queue_1 = true;
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	cr_assert_eq(dev.notifies[1], 1, "in place");
	cr_assert_eq(forwarded[1], 0);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	cr_assert_eq(forwarded[0], 1, "not an exit queue");
	cr_assert_eq(dev.notifies[0], 0);
	claim_queue_1 = false;
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	cr_assert_eq(forwarded[1], 1, "not claimed now");
	cr_assert_eq(dev.notifies[1], 1);
}

/* A device at its budget asks to be notified again: through the same
 * forward, to the thread that serves it, never into ops->notify at once
 * (the device holds its lock). Without a forward nothing is sent. */
Test(mmio, a_device_asking_again_goes_to_the_forward)
{
	memset(forwarded, 0, sizeof(forwarded));
	bring_up(F_VER1);
	dev.host.again(dev.host.t, 1);
	cr_assert_eq(dev.notifies[1], 0);
	virtio_mmio_set_notify_forward(t, fwd, &forwarded);
	dev.host.again(dev.host.t, 1);
	dev.host.again(dev.host.t, 5); /* no such queue */
	cr_assert_eq(forwarded[1], 1);
	cr_assert_eq(forwarded[0] + forwarded[2] + forwarded[3], 0);
	cr_assert_eq(dev.notifies[1], 0);
}

Test(mmio, needs_reset_stops_notifications_until_reset)
{
	bring_up(F_VER1);
	dev.host.needs_reset(dev.host.t);
	dev.host.needs_reset(dev.host.t); /* second report: no second interrupt */
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK | S_NR);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(irqs, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 0);
	virtio_mmio_queue_notify(t, 0);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	cr_assert_eq(dev.notifies[0], 0);
	cr_assert_eq(stats(0).notifications_dropped, 2);
	/* A driver writing back what it read (NEEDS_RESET included) moves
	 * nothing; only a reset clears the bit. */
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK | S_NR);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK | S_NR);
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	bring_up(F_VER1);
	virtio_mmio_queue_notify(t, 0);
	cr_assert_eq(dev.notifies[0], 1);
}

Test(mmio, used_interrupts_without_event_idx)
{
	bring_up(F_VER1);
	cr_assert_eq(vq_push(&dev.queues[0], 0, 0), 0);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	/* The driver asks for no interrupts. */
	avail0()->flags = VRING_AVAIL_F_NO_INTERRUPT;
	cr_assert_eq(vq_push(&dev.queues[0], 1, 0), 0);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 1);
	cr_assert_eq(stats(0).interrupts, 1);
	cr_assert_eq(stats(0).interrupts_suppressed, 1);
	dev.host.used(dev.host.t, 5); /* no such queue: nothing */
	cr_assert_eq(irqs, 1);
}

Test(mmio, used_interrupts_with_event_idx)
{
	bring_up(F_VER1 | F_EVIDX);
	uint16_t *used_event = gmem_ptr(g, AVAIL0 + 4 + 2 * 16, 2);
	cr_assert_not_null(used_event);

	/* First decision always interrupts. */
	cr_assert_eq(vq_push(&dev.queues[0], 0, 0), 0);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 1);
	/* The guest wants to hear once used->idx passes 5. */
	*used_event = 5;
	cr_assert_eq(vq_push(&dev.queues[0], 1, 0), 0);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 1);
	for (uint16_t i = 2; i < 6; i++)
		cr_assert_eq(vq_push(&dev.queues[0], i, 0), 0);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 2);
	cr_assert_eq(stats(0).interrupts, 2);
	cr_assert_eq(stats(0).interrupts_suppressed, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
}

Test(mmio, no_second_edge_before_the_guest_acknowledges)
{
	bring_up(F_VER1);
	cr_assert_eq(vq_push(&dev.queues[0], 0, 0), 0);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 1);
	/* Its handler has not acknowledged yet: it will see this one too. */
	cr_assert_eq(vq_push(&dev.queues[0], 1, 0), 0);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 1);
	cr_assert_eq(stats(0).interrupts, 1);
	cr_assert_eq(stats(0).interrupts_merged, 1);
	/* A configuration change is another cause: its own edge. */
	virtio_mmio_config_changed(t);
	cr_assert_eq(irqs, 2);
	/* Once acknowledged, the next used buffer interrupts again. */
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(vq_push(&dev.queues[0], 2, 0), 0);
	dev.host.used(dev.host.t, 0);
	cr_assert_eq(irqs, 3);
	cr_assert_eq(stats(0).interrupts, 2);
	/* A reset clears the status: the first interrupt after it is sent. */
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

Test(mmio, used_from_inside_notify)
{
	/* The device completes synchronously in notify: host.used must not
	 * deadlock on the transport's locks. */
	bring_up(F_VER1);
	dev.used_on_notify = true;
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	virtio_mmio_queue_notify(t, 0);
	cr_assert_eq(dev.notifies[0], 2);
	/* The second came before the guest acknowledged the first. */
	cr_assert_eq(irqs, 1);
	cr_assert_eq(stats(0).interrupts_merged, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	struct vring_used *u = gmem_ptr(g, USED0, sizeof(*u));
	cr_assert_eq(u->idx, 2);
}

Test(mmio, interrupt_ack)
{
	bring_up(F_VER1);
	cr_assert_eq(vq_push(&dev.queues[0], 0, 0), 0);
	dev.host.used(dev.host.t, 0);
	virtio_mmio_config_changed(t);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS),
		     VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_ACK), 0); /* write-only */
	cr_assert_eq(irqs, 2);
}

Test(mmio, config_read_forwarded_in_all_sizes)
{
	for (unsigned i = 0; i < sizeof(dev.config); i++)
		dev.config[i] = 0x10 + i;
	uint8_t b = 0;
	uint16_t h = 0;
	uint32_t w = 0;
	uint64_t d = 0;
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_CONFIG + 3, &b, 1);
	cr_assert_eq(b, 0x13);
	cr_assert_eq(dev.cfg_off, 3);
	cr_assert_eq(dev.cfg_len, 1);
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_CONFIG + 2, &h, 2);
	cr_assert_eq(h, 0x1312);
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_CONFIG + 4, &w, 4);
	cr_assert_eq(w, 0x17161514);
	cr_assert_eq(dev.cfg_off, 4);
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_CONFIG + 8, &d, 8);
	cr_assert_eq(d, 0x1f1e1d1c1b1a1918ULL);
	cr_assert_eq(dev.cfg_len, 8);
	cr_assert_eq(dev.config_reads, 4);
	/* A 3-byte access is not forwarded and reads as zeros. */
	uint8_t three[3] = {0xff, 0xff, 0xff};
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_CONFIG, three, 3);
	cr_assert_eq(three[0] | three[1] | three[2], 0);
	cr_assert_eq(dev.config_reads, 4);
}

Test(mmio, config_write_forwarded_once_driver_found_device)
{
	uint32_t w = 0xa1b2c3d4;
	uint16_t h = 0xbeef;
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_CONFIG + 4, &w, 4);
	cr_assert_eq(dev.config_writes, 0); /* status 0 */
	wr(VIRTIO_MMIO_STATUS, S_ACK);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_CONFIG + 4, &w, 4);
	cr_assert_eq(dev.config_writes, 1);
	cr_assert_eq(dev.cfg_off, 4);
	cr_assert_eq(dev.cfg_len, 4);
	cr_assert_eq(dev.config[4], 0xd4);
	cr_assert_eq(dev.config[7], 0xa1);
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_CONFIG + 10, &h, 2);
	cr_assert_eq(dev.config_writes, 2);
	cr_assert_eq(dev.config[10], 0xef);
	uint8_t three[3] = {1, 2, 3};
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_CONFIG, three, 3);
	cr_assert_eq(dev.config_writes, 2);
	wr(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FAILED);
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_CONFIG + 4, &w, 4);
	cr_assert_eq(dev.config_writes, 2);
}

Test(mmio, narrow_and_unaligned_register_access_ignored)
{
	uint8_t b = 0xff;
	uint16_t h = 0xffff;
	uint64_t d = ~0ULL;
	uint32_t w = 0xffffffff;
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_MAGIC_VALUE, &b, 1);
	cr_assert_eq(b, 0);
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_MAGIC_VALUE, &h, 2);
	cr_assert_eq(h, 0);
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_MAGIC_VALUE, &d, 8);
	cr_assert_eq(d, 0);
	virtio_mmio_bus_ops.read(t, VIRTIO_MMIO_MAGIC_VALUE + 2, &w, 4);
	cr_assert_eq(w, 0);
	/* An 8-bit STATUS write does not acknowledge the device. */
	b = S_ACK;
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_STATUS, &b, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	h = S_ACK;
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_STATUS, &h, 2);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	w = S_ACK;
	virtio_mmio_bus_ops.write(t, VIRTIO_MMIO_STATUS + 1, &w, 4);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(dev.resets, 0);
}

Test(mmio, read_only_registers_ignore_writes)
{
	bring_up(F_VER1);
	virtio_mmio_config_changed(t);
	wr(VIRTIO_MMIO_MAGIC_VALUE, 0);
	wr(VIRTIO_MMIO_VERSION, 1);
	wr(VIRTIO_MMIO_DEVICE_ID, 9);
	wr(VIRTIO_MMIO_VENDOR_ID, 0);
	wr(VIRTIO_MMIO_DEVICE_FEATURES, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM_MAX, 1);
	wr(VIRTIO_MMIO_INTERRUPT_STATUS, 0);
	wr(VIRTIO_MMIO_CONFIG_GENERATION, 0);
	wr(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096); /* legacy only */
	cr_assert_eq(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	cr_assert_eq(rd(VIRTIO_MMIO_VERSION), 2);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	cr_assert_eq(rd(VIRTIO_MMIO_VENDOR_ID), 0x544e4c46);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES), 1);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 1);
	cr_assert_eq(rd(VIRTIO_MMIO_GUEST_PAGE_SIZE), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
}

Test(mmio, config_generation_bump)
{
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 0);
	virtio_mmio_config_changed(t);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 1);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(irqs, 1);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	virtio_mmio_config_changed(t);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 2);
	cr_assert_eq(irqs, 2);
}

Test(mmio, create_rejects_bad_ops)
{
	struct virtio_mmio *x = (void *)1;
	struct virtio_dev_ops o = fake_ops;

	o.num_queues = 0;
	cr_assert_eq(virtio_mmio_create(&x, g, &o, &dev, fake_irq, &irqs), -EINVAL);
	cr_assert_null(x);
	o.num_queues = VIRTIO_MAX_QUEUES + 1;
	cr_assert_eq(virtio_mmio_create(&x, g, &o, &dev, fake_irq, &irqs), -EINVAL);
	o = fake_ops;
	o.queue_max = 100;
	cr_assert_eq(virtio_mmio_create(&x, g, &o, &dev, fake_irq, &irqs), -EINVAL);
	o.queue_max = 0;
	cr_assert_eq(virtio_mmio_create(&x, g, &o, &dev, fake_irq, &irqs), -EINVAL);
	o = fake_ops;
	o.notify = NULL;
	cr_assert_eq(virtio_mmio_create(&x, g, &o, &dev, fake_irq, &irqs), -EINVAL);
	cr_assert_eq(virtio_mmio_create(&x, g, &fake_ops, &dev, NULL, NULL), -EINVAL);
	/* queue_max above the split ring's limit is reported as the limit. */
	o = fake_ops;
	o.queue_max = 65536;
	cr_assert_eq(virtio_mmio_create(&x, g, &o, &dev, fake_irq, &irqs), 0);
	uint32_t v = 0;
	virtio_mmio_bus_ops.read(x, VIRTIO_MMIO_QUEUE_NUM_MAX, &v, 4);
	cr_assert_eq(v, VQ_MAX_SIZE);
	virtio_mmio_destroy(x);
	virtio_mmio_destroy(NULL);
}

Test(mmio, config_space_without_callbacks_reads_zero)
{
	struct virtio_mmio *x;
	struct virtio_dev_ops o = fake_ops;
	uint32_t v = 0xffffffff;

	o.config_read = NULL;
	o.config_write = NULL;
	cr_assert_eq(virtio_mmio_create(&x, g, &o, &dev, fake_irq, &irqs), 0);
	virtio_mmio_bus_ops.read(x, VIRTIO_MMIO_CONFIG, &v, 4);
	cr_assert_eq(v, 0);
	virtio_mmio_bus_ops.write(x, VIRTIO_MMIO_CONFIG, &v, 4);
	virtio_mmio_destroy(x);
}

static bool stop_kicking;

static void *kicker(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop_kicking, __ATOMIC_RELAXED))
		virtio_mmio_queue_notify(t, 0);
	return NULL;
}

Test(mmio, reset_never_pulls_rings_from_a_notification)
{
	/* An event loop kicks queue 0 nonstop while a vCPU brings the device
	 * up and resets it: every notification the device sees must find its
	 * queue live. */
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, kicker, NULL), 0);
	for (int i = 0; i < 300; i++) {
		negotiate(F_VER1);
		setup_queue(0, 16, DESC0, AVAIL0, USED0);
		driver_ok();
		wr(VIRTIO_MMIO_STATUS, 0);
	}
	__atomic_store_n(&stop_kicking, true, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	cr_assert_eq(dev.activates, 300);
	cr_assert_eq(dev.resets, 600); /* negotiate resets first, as Linux does */
	cr_assert_eq(dev.notify_on_dead_queue, 0);
	struct virtio_mmio_queue_stats s = stats(0);
	cr_assert_eq(s.notifications, dev.notifies[0]);
}

/* A device whose configuration changes on its own (a drive's new capacity)
 * tells the guest through the host callbacks it got at activation, without
 * knowing the transport: ConfigGeneration moves on and a configuration
 * interrupt is raised. */
Test(mmio, device_reports_a_config_change_through_its_host)
{
	bring_up(F_VER1);
	cr_assert_not_null(dev.host.config_changed);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 0);
	irqs = 0;
	dev.host.config_changed(dev.host.t);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 1);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(irqs, 1);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	dev.host.config_changed(dev.host.t);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG_GENERATION), 2);
	cr_assert_eq(irqs, 2);
}
