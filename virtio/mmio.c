/* virtio-mmio version 2 (virtio 1.2 section 4.2.2), modern only. Behaviour
 * follows Firecracker's transport/mmio.rs: status moves one step at a time,
 * anything else is ignored; queue registers are frozen outside the
 * FEATURES_OK..DRIVER_OK window; a device that cannot start sets
 * DEVICE_NEEDS_RESET and raises a configuration interrupt.
 *
 * Threads and locks. Registers are accessed by vCPU threads; queue
 * notifications come from the event-loop thread (ioeventfd) or a vCPU (a
 * QueueNotify write that reached the bus); the device calls host.used,
 * host.needs_reset and host.config_changed (virtio_mmio_config_changed)
 * from wherever it processes its queues, including from inside ops->notify
 * and ops->activate, and from a thread of its own (a drive swapping its
 * image on the VM's control thread).
 *
 *  - lock guards the register file: status, selectors, driver features,
 *    queue registers. Every register access holds it; so do config_read and
 *    config_write.
 *  - dev_lock guards queues[] and serialises the calls that start, stop and
 *    drive the device: ops->activate, ops->reset and ops->notify run with it
 *    held, and queues[] is only written (vq_activate, vq_reset) with it held.
 *    A reset therefore waits for a notification in flight and never pulls
 *    the rings from under it.
 *  - Order: lock, then dev_lock. Nothing that runs under dev_lock takes lock.
 *  - running, needs_reset, isr, config_gen and the stats are atomics, so
 *    host.used, host.needs_reset, host.again and virtio_mmio_config_changed
 *    take no lock
 *    at all: a device may call them while dev_lock is held (from
 *    ops->notify) or from a thread of its own without deadlock.
 *  - A device that completes work off the notify path (e.g. io_uring
 *    completions) must stop doing so before its ops->reset returns; after
 *    that the transport resets the queues. */
#include "mmio.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "registers are copied in host order");

/* MagicValue: "virt" in the register's little-endian bytes. */
#define MMIO_MAGIC   0x74726976
#define MMIO_VERSION 2 /* modern; 1 is the legacy layout */

#define TRANSPORT_FEATURES                                                                         \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |                        \
	 (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

#define S_ACK	    VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRIVER    VIRTIO_CONFIG_S_DRIVER
#define S_FEATURES  VIRTIO_CONFIG_S_FEATURES_OK
#define S_DRIVER_OK VIRTIO_CONFIG_S_DRIVER_OK
#define S_FAILED    VIRTIO_CONFIG_S_FAILED
#define S_NEEDS_RST VIRTIO_CONFIG_S_NEEDS_RESET
#define S_SETUP	    (S_ACK | S_DRIVER | S_FEATURES) /* queue registers writable */

/* DEVICE_NEEDS_RESET lines one transport logs. Each reset lets the device
 * fail again, so a guest that loops reset, bad set-up and DRIVER_OK (a
 * dozen register writes) would otherwise write a line for each, without
 * end, to the host's log; a driver that breaks a few times shows them all. */
#define NEEDS_RESET_LOGS 8

/* What the driver programmed for one queue, used at DRIVER_OK. */
struct qreg {
	uint32_t num;
	uint32_t ready;
	uint64_t desc, avail, used;
};

struct virtio_mmio {
	struct gmem *gmem;
	const struct virtio_dev_ops *ops;
	void *dev;
	void (*irq)(void *ctx);
	void *irq_ctx;
	void (*fwd)(void *ctx, unsigned q); /* QueueNotify writes the bus saw */
	void *fwd_ctx;
	struct virtio_host host;
	uint64_t offered;
	uint32_t queue_max;

	pthread_mutex_t lock;
	uint32_t status; /* bits the driver set; NEEDS_RESET is needs_reset */
	uint32_t dev_features_sel, drv_features_sel, queue_sel;
	uint64_t driver_features;
	struct qreg qreg[VIRTIO_MAX_QUEUES];

	pthread_mutex_t dev_lock;
	struct vq queues[VIRTIO_MAX_QUEUES];

	/* Atomics (see the top). */
	bool running;	  /* activated, not reset */
	bool needs_reset; /* DEVICE_NEEDS_RESET until the driver resets */
	unsigned logs;	  /* set_needs_reset lines logged */
	uint32_t isr;	  /* InterruptStatus */
	uint32_t config_gen;
	struct virtio_mmio_queue_stats stats[VIRTIO_MAX_QUEUES];
};

static void count(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

/* Set the cause before the edge: the guest's handler reads InterruptStatus.
 * No edge when the cause was already set: an interrupt for it is on its way
 * or being handled, and the handler acknowledges (an exit, ordered against
 * this atomic) before it looks at the queues, so it sees this work too.
 * This is the level-triggered line QEMU models, without a second interrupt
 * per batch that a guest would take only to find nothing new. Returns
 * whether an edge was sent. */
static bool interrupt(struct virtio_mmio *t, uint32_t why)
{
	if ((__atomic_fetch_or(&t->isr, why, __ATOMIC_SEQ_CST) & why) == why)
		return false;
	t->irq(t->irq_ctx);
	return true;
}

/* Enter DEVICE_NEEDS_RESET: log and interrupt only on the first call until
 * the driver resets, and log no more than NEEDS_RESET_LOGS times in all, so
 * a guest cannot flood the log. */
static void PRINTF(2, 3) set_needs_reset(struct virtio_mmio *t, const char *fmt, ...)
{
	char why[160];
	unsigned n;
	va_list ap;

	if (__atomic_exchange_n(&t->needs_reset, true, __ATOMIC_SEQ_CST))
		return;
	if (__atomic_load_n(&t->logs, __ATOMIC_RELAXED) < NEEDS_RESET_LOGS &&
	    (n = __atomic_add_fetch(&t->logs, 1, __ATOMIC_RELAXED)) <= NEEDS_RESET_LOGS) {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		pr_err("virtio-mmio device %u: %s; device needs reset%s", t->ops->device_id, why,
		       n == NEEDS_RESET_LOGS ? " (not logged again)" : "");
	}
	interrupt(t, VIRTIO_MMIO_INT_CONFIG);
}

static void host_used(void *opaque, unsigned q)
{
	struct virtio_mmio *t = opaque;

	if (q >= t->ops->num_queues || !__atomic_load_n(&t->running, __ATOMIC_ACQUIRE))
		return;
	if (vq_need_interrupt(&t->queues[q])) {
		count(interrupt(t, VIRTIO_MMIO_INT_VRING) ? &t->stats[q].interrupts
							  : &t->stats[q].interrupts_merged);
	} else {
		count(&t->stats[q].interrupts_suppressed);
	}
}

static void host_needs_reset(void *opaque)
{
	set_needs_reset(opaque, "the device reported a guest error");
}

static void host_config_changed(void *opaque)
{
	virtio_mmio_config_changed(opaque);
}

/* Through the queue's eventfd, as a QueueNotify the bus saw: the device's
 * thread takes it up after what it has waiting. Without a forward (tests)
 * nobody would: the device's caller sees virtio_after.again itself. */
static void host_again(void *opaque, unsigned q)
{
	struct virtio_mmio *t = opaque;

	if (t->fwd && q < t->ops->num_queues)
		t->fwd(t->fwd_ctx, q);
}

static uint32_t status_get(const struct virtio_mmio *t)
{
	bool nr = __atomic_load_n(&t->needs_reset, __ATOMIC_ACQUIRE);

	return t->status | (nr ? S_NEEDS_RST : 0);
}

/* The selected queue's registers, or NULL when QueueSel is out of range. */
static struct qreg *sel_qreg(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->num_queues ? &t->qreg[t->queue_sel] : NULL;
}

/* The selected queue's registers if the driver may program them now: between
 * FEATURES_OK and DRIVER_OK, while the queue is not ready (4.2.3.2). */
static struct qreg *writable_qreg(struct virtio_mmio *t)
{
	struct qreg *qr = sel_qreg(t);

	return qr && !qr->ready && status_get(t) == S_SETUP ? qr : NULL;
}

static void set_half(uint64_t *x, bool high, uint32_t v)
{
	*x = high ? (*x & 0xffffffffULL) | (uint64_t)v << 32 : (*x & ~0xffffffffULL) | v;
}

/* Status 0: the device forgets everything. ops->reset runs under dev_lock,
 * after any notification in flight, and before the rings are dropped. */
static void reset(struct virtio_mmio *t)
{
	__atomic_store_n(&t->running, false, __ATOMIC_RELEASE);
	pthread_mutex_lock(&t->dev_lock);
	t->ops->reset(t->dev);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vq_reset(&t->queues[q]);
	pthread_mutex_unlock(&t->dev_lock);

	t->status = 0;
	t->dev_features_sel = t->drv_features_sel = t->queue_sel = 0;
	t->driver_features = 0;
	memset(t->qreg, 0, sizeof(t->qreg));
	__atomic_store_n(&t->isr, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->needs_reset, false, __ATOMIC_SEQ_CST);
}

/* Queue registers qr as a ready queue: a size up to QueueNumMax, then
 * vq_activate's checks. At DRIVER_OK and for a restored running device. */
static int start_queue(const struct virtio_mmio *t, const struct qreg *qr, bool event_idx,
		       struct vq *q)
{
	if (qr->num > t->queue_max) {
		vq_reset(q);
		return -EINVAL;
	}
	return vq_activate(q, t->gmem, qr->num, qr->desc, qr->avail, qr->used, event_idx);
}

/* DRIVER_OK: validate and start every queue the driver made ready, then the
 * device. Any failure leaves the device stopped in DEVICE_NEEDS_RESET. */
static void activate(struct virtio_mmio *t)
{
	bool event_idx = t->driver_features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	unsigned q, bad = 0;
	int err = 0;

	pthread_mutex_lock(&t->dev_lock);
	for (q = 0; q < t->ops->num_queues && !err; q++) {
		const struct qreg *qr = &t->qreg[q];

		if (!qr->ready)
			continue; /* stays reset: the device sees ready == false */
		err = start_queue(t, qr, event_idx, &t->queues[q]);
		bad = q;
	}
	if (!err) {
		/* Before activate: the device may report used buffers from it. A
		 * notification cannot slip in, dev_lock is held. */
		__atomic_store_n(&t->running, true, __ATOMIC_RELEASE);
		err = t->ops->activate(t->dev, t->driver_features, t->queues, &t->host);
		if (err) {
			__atomic_store_n(&t->running, false, __ATOMIC_RELEASE);
			pthread_mutex_unlock(&t->dev_lock);
			set_needs_reset(t, "activation failed: %s", strerror(-err));
			return;
		}
	}
	pthread_mutex_unlock(&t->dev_lock);
	if (err)
		set_needs_reset(
		    t, "queue %u: size %u or rings (desc %#llx avail %#llx used %#llx) refused",
		    bad, t->qreg[bad].num, (unsigned long long)t->qreg[bad].desc,
		    (unsigned long long)t->qreg[bad].avail, (unsigned long long)t->qreg[bad].used);
}

/* The driver may only accept what was offered, and must accept VERSION_1:
 * there is no legacy interface behind this transport. */
static bool features_acceptable(const struct virtio_mmio *t)
{
	return !(t->driver_features & ~t->offered) &&
	       (t->driver_features & (1ULL << VIRTIO_F_VERSION_1));
}

/* Each write adds one step of 3.1.1; FAILED may be added at any time and 0
 * resets. Anything else is ignored, as Firecracker does. */
static void status_write(struct virtio_mmio *t, uint32_t v)
{
	uint32_t cur = t->status;
	bool ok;

	v &= ~S_NEEDS_RST; /* the device's bit; a driver writes back what it read */
	if (v == 0) {
		reset(t);
		return;
	}
	if (v & S_FAILED) {
		t->status |= S_FAILED;
		return;
	}
	if (v == cur)
		return;
	switch (cur) {
	case 0:
		ok = v == S_ACK;
		break;
	case S_ACK:
		ok = v == (S_ACK | S_DRIVER);
		break;
	case S_ACK | S_DRIVER:
		ok = v == S_SETUP;
		if (ok && !features_acceptable(t)) {
			/* 3.1.1 step 6: FEATURES_OK reads back clear. */
			pr_debug("virtio-mmio device %u: refused driver features %#llx",
				 t->ops->device_id, (unsigned long long)t->driver_features);
			return;
		}
		break;
	case S_SETUP:
		if (v == (S_SETUP | S_DRIVER_OK)) {
			t->status = v;
			activate(t);
			return;
		}
		ok = false;
		break;
	default:
		ok = false;
	}
	if (ok)
		t->status = v;
	else
		pr_debug("virtio-mmio device %u: ignored status %#x -> %#x", t->ops->device_id, cur,
			 v);
}

static uint32_t reg_read(struct virtio_mmio *t, uint64_t off)
{
	const struct qreg *qr = sel_qreg(t);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return MMIO_VERSION;
	case VIRTIO_MMIO_DEVICE_ID:
		return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR_FLINT;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (t->dev_features_sel > 1)
			return 0;
		return (uint32_t)(t->offered >> (32 * t->dev_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return qr ? t->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return qr ? qr->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return __atomic_load_n(&t->isr, __ATOMIC_SEQ_CST);
	case VIRTIO_MMIO_STATUS:
		return status_get(t);
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return __atomic_load_n(&t->config_gen, __ATOMIC_SEQ_CST);
	default:
		return 0; /* write-only, reserved, or legacy-only */
	}
}

/* The ring address a Queue{Desc,Driver,Device}{Low,High} register sets:
 * each pair sits at 0x80, 0x90, 0xa0, high half at +4. */
static uint64_t *ring_addr(struct qreg *qr, uint64_t off)
{
	switch (off & ~4ULL) {
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		return &qr->desc;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		return &qr->avail;
	default:
		return &qr->used;
	}
}

static void reg_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct qreg *sel = sel_qreg(t), *qr = writable_qreg(t);

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->dev_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (t->status == (S_ACK | S_DRIVER) && t->drv_features_sel <= 1)
			set_half(&t->driver_features, t->drv_features_sel, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->drv_features_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (qr)
			qr->num = v;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		/* Stopping a queue is fine whenever the device is not running
		 * (Linux's del_vqs writes 0 and reads it back). */
		if (v == 1 && qr)
			qr->ready = 1;
		else if (v == 0 && sel && !__atomic_load_n(&t->running, __ATOMIC_ACQUIRE))
			sel->ready = 0;
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		__atomic_fetch_and(&t->isr, ~v, __ATOMIC_SEQ_CST);
		break;
	case VIRTIO_MMIO_STATUS:
		status_write(t, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (qr)
			set_half(ring_addr(qr, off), off & 4, v);
		break;
	default:
		break; /* read-only, reserved, or legacy-only */
	}
}

static bool config_len_ok(uint32_t len)
{
	return len == 1 || len == 2 || len == 4 || len == 8;
}

static void mmio_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_mmio *t = opaque;
	uint32_t v;

	memset(data, 0, len);
	if (off >= VIRTIO_MMIO_CONFIG) {
		if (!config_len_ok(len) || !t->ops->config_read)
			return;
		pthread_mutex_lock(&t->lock);
		t->ops->config_read(t->dev, off - VIRTIO_MMIO_CONFIG, data, len);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (len != 4 || off % 4)
		return;
	pthread_mutex_lock(&t->lock);
	v = reg_read(t, off);
	pthread_mutex_unlock(&t->lock);
	memcpy(data, &v, sizeof(v));
}

static void mmio_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_mmio *t = opaque;
	uint32_t v;

	if (off >= VIRTIO_MMIO_CONFIG) {
		if (!config_len_ok(len) || !t->ops->config_write)
			return;
		pthread_mutex_lock(&t->lock);
		/* As Firecracker: only a driver that has found the device, and
		 * has not given up on it, writes its configuration. */
		if ((t->status & S_DRIVER) && !(t->status & S_FAILED))
			t->ops->config_write(t->dev, off - VIRTIO_MMIO_CONFIG, data, len);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (len != 4 || off % 4)
		return;
	memcpy(&v, data, sizeof(v));
	if (off == VIRTIO_MMIO_QUEUE_NOTIFY) {
		/* No ioeventfd caught it: to the device's own thread, as a
		 * caught one goes; devices only run on that thread, but for
		 * a queue the device takes in place. Not under lock: see the
		 * top. */
		if (v < t->ops->num_queues && (t->ops->exit_queues >> v & 1) &&
		    t->ops->notify_in_place && t->ops->notify_in_place(t->dev, v)) {
			virtio_mmio_queue_notify(t, v);
		} else if (t->fwd) {
			if (v < t->ops->num_queues)
				t->fwd(t->fwd_ctx, v);
		} else {
			virtio_mmio_queue_notify(t, v);
		}
		return;
	}
	pthread_mutex_lock(&t->lock);
	reg_write(t, off, v);
	pthread_mutex_unlock(&t->lock);
}

const struct bus_ops virtio_mmio_bus_ops = {.read = mmio_read, .write = mmio_write};

static bool is_pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

int virtio_mmio_create(struct virtio_mmio **out, struct gmem *g, const struct virtio_dev_ops *ops,
		       void *dev, void (*irq)(void *ctx), void *irq_ctx)
{
	struct virtio_mmio *t;
	int err;

	*out = NULL;
	if (!g || !ops || !irq || !ops->features || !ops->activate || !ops->reset || !ops->notify ||
	    ops->num_queues < 1 || ops->num_queues > VIRTIO_MAX_QUEUES || !is_pow2(ops->queue_max))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	err = -pthread_mutex_init(&t->lock, NULL);
	if (err)
		goto err_free;
	err = -pthread_mutex_init(&t->dev_lock, NULL);
	if (err)
		goto err_lock;
	t->gmem = g;
	t->ops = ops;
	t->dev = dev;
	t->irq = irq;
	t->irq_ctx = irq_ctx;
	t->host = (struct virtio_host){.used = host_used,
				       .needs_reset = host_needs_reset,
				       .config_changed = host_config_changed,
				       .again = host_again,
				       .t = t};
	t->offered = ops->features(dev) | TRANSPORT_FEATURES;
	t->queue_max = ops->queue_max > VQ_MAX_SIZE ? VQ_MAX_SIZE : ops->queue_max;
	*out = t;
	return 0;

err_lock:
	pthread_mutex_destroy(&t->lock);
err_free:
	free(t);
	return err;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->dev_lock);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void virtio_mmio_set_notify_forward(struct virtio_mmio *t, void (*fwd)(void *ctx, unsigned q),
				    void *ctx)
{
	t->fwd = fwd;
	t->fwd_ctx = ctx;
}

void virtio_mmio_queue_notify(struct virtio_mmio *t, unsigned q)
{
	if (q >= t->ops->num_queues)
		return;
	pthread_mutex_lock(&t->dev_lock);
	if (__atomic_load_n(&t->running, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&t->needs_reset, __ATOMIC_ACQUIRE)) {
		count(&t->stats[q].notifications);
		t->ops->notify(t->dev, q);
	} else {
		count(&t->stats[q].notifications_dropped);
	}
	pthread_mutex_unlock(&t->dev_lock);
}

void virtio_mmio_config_changed(struct virtio_mmio *t)
{
	__atomic_fetch_add(&t->config_gen, 1, __ATOMIC_SEQ_CST);
	interrupt(t, VIRTIO_MMIO_INT_CONFIG);
}

unsigned virtio_mmio_num_queues(const struct virtio_mmio *t)
{
	return t->ops->num_queues;
}

void virtio_mmio_get_stats(const struct virtio_mmio *t, unsigned q,
			   struct virtio_mmio_queue_stats *s)
{
	*s = (struct virtio_mmio_queue_stats){0};
	if (q >= t->ops->num_queues)
		return;
	s->notifications = __atomic_load_n(&t->stats[q].notifications, __ATOMIC_RELAXED);
	s->notifications_dropped =
	    __atomic_load_n(&t->stats[q].notifications_dropped, __ATOMIC_RELAXED);
	s->interrupts = __atomic_load_n(&t->stats[q].interrupts, __ATOMIC_RELAXED);
	s->interrupts_suppressed =
	    __atomic_load_n(&t->stats[q].interrupts_suppressed, __ATOMIC_RELAXED);
	s->interrupts_merged = __atomic_load_n(&t->stats[q].interrupts_merged, __ATOMIC_RELAXED);
}

/* Snapshot state, version 1 (see virtio_mmio_save). */
#define MMIO_STATE_V1 1

int virtio_mmio_save(const struct virtio_mmio *ct, struct wbuf *w, char *err, size_t errlen)
{
	/* The locks are not part of the state: taking them changes nothing. */
	struct virtio_mmio *t = (struct virtio_mmio *)ct;
	uint8_t cfg[VIRTIO_MMIO_CONFIG_SAVED];
	int r = 0;

	pthread_mutex_lock(&t->lock);
	pthread_mutex_lock(&t->dev_lock);
	wput_u32(w, MMIO_STATE_V1);
	wput_u32(w, t->ops->device_id);
	wput_u32(w, t->ops->num_queues);
	wput_u64(w, t->offered);
	wput_u32(w, t->status);
	wput_u8(w, __atomic_load_n(&t->running, __ATOMIC_ACQUIRE));
	wput_u8(w, __atomic_load_n(&t->needs_reset, __ATOMIC_ACQUIRE));
	wput_u32(w, t->dev_features_sel);
	wput_u32(w, t->drv_features_sel);
	wput_u32(w, t->queue_sel);
	wput_u64(w, t->driver_features);
	wput_u32(w, __atomic_load_n(&t->isr, __ATOMIC_SEQ_CST));
	wput_u32(w, __atomic_load_n(&t->config_gen, __ATOMIC_SEQ_CST));
	for (unsigned q = 0; q < t->ops->num_queues; q++) {
		const struct qreg *qr = &t->qreg[q];

		wput_u32(w, qr->num);
		wput_u32(w, qr->ready);
		wput_u64(w, qr->desc);
		wput_u64(w, qr->avail);
		wput_u64(w, qr->used);
		if (!vq_in_memory(&t->queues[q])) {
			r = err_set(err, errlen, -EFAULT,
				    "queue %u's rings lie in memory the guest unplugged after it "
				    "placed them there (a snapshot of it could not be restored)",
				    q);
			break;
		}
		if (vq_save(&t->queues[q], w))
			break; /* w's error, returned below */
	}
	pthread_mutex_unlock(&t->dev_lock);
	if (r < 0) {
		pthread_mutex_unlock(&t->lock);
		return r;
	}
	/* As the guest reads it, 8 bytes at a time, under lock as mmio_read. */
	memset(cfg, 0, sizeof(cfg));
	if (t->ops->config_read)
		for (unsigned off = 0; off < sizeof(cfg); off += 8)
			t->ops->config_read(t->dev, off, cfg + off, 8);
	pthread_mutex_unlock(&t->lock);
	wput_blob(w, cfg, sizeof(cfg));
	return wbuf_err(w);
}

static int PRINTF(5, 6)
    refuse(const struct virtio_mmio *t, int e, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		int n = snprintf(err, errlen, "virtio-mmio device %u: ", t->ops->device_id);
		va_start(ap, fmt);
		if (n > 0 && (size_t)n < errlen)
			vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return e;
}

/* A status a driver can leave behind: a prefix of 3.1.1's steps, each
 * added in order by status_write, with or without FAILED. */
static bool status_reachable(uint32_t s)
{
	switch (s & ~S_FAILED) {
	case 0:
	case S_ACK:
	case S_ACK | S_DRIVER:
	case S_SETUP:
	case S_SETUP | S_DRIVER_OK:
		return true;
	default:
		return false;
	}
}

/* A decoded transport state, checked before it becomes t's. */
struct mmio_state {
	uint32_t status, dev_features_sel, drv_features_sel, queue_sel, isr, config_gen;
	uint64_t offered, driver_features;
	bool running, needs_reset;
	struct qreg qreg[VIRTIO_MAX_QUEUES];
	struct vq queues[VIRTIO_MAX_QUEUES];
};

/* Decode st from r: -EBADMSG (err set) for a short, corrupt or foreign
 * input, -EINVAL for another device. */
static int decode(const struct virtio_mmio *t, struct rbuf *r, struct mmio_state *st, char *err,
		  size_t errlen)
{
	uint32_t version, id, nq;
	uint8_t running, needs_reset;
	size_t cfg_len;
	char why[160];

	version = rget_u32(r);
	id = rget_u32(r);
	nq = rget_u32(r);
	if (rbuf_err(r))
		return refuse(t, -EBADMSG, err, errlen, "state truncated in its header");
	if (version != MMIO_STATE_V1)
		return refuse(t, -EBADMSG, err, errlen, "state version %u, this flint reads %u",
			      version, MMIO_STATE_V1);
	if (id != t->ops->device_id || nq != t->ops->num_queues)
		return refuse(t, -EINVAL, err, errlen,
			      "state of device %u with %u queues, this one has %u", id, nq,
			      t->ops->num_queues);
	st->offered = rget_u64(r);
	st->status = rget_u32(r);
	running = rget_u8(r);
	needs_reset = rget_u8(r);
	st->dev_features_sel = rget_u32(r);
	st->drv_features_sel = rget_u32(r);
	st->queue_sel = rget_u32(r);
	st->driver_features = rget_u64(r);
	st->isr = rget_u32(r);
	st->config_gen = rget_u32(r);
	if (rbuf_err(r))
		return refuse(t, -EBADMSG, err, errlen, "state truncated in its registers");
	if (running > 1 || needs_reset > 1)
		return refuse(t, -EBADMSG, err, errlen, "running %u or needs_reset %u not 0 or 1",
			      running, needs_reset);
	st->running = running;
	st->needs_reset = needs_reset;
	for (unsigned q = 0; q < nq; q++) {
		struct qreg *qr = &st->qreg[q];
		int e;

		qr->num = rget_u32(r);
		qr->ready = rget_u32(r);
		qr->desc = rget_u64(r);
		qr->avail = rget_u64(r);
		qr->used = rget_u64(r);
		if (rbuf_err(r))
			return refuse(t, -EBADMSG, err, errlen, "state truncated in queue %u", q);
		e = vq_restore(&st->queues[q], t->gmem, r, why, sizeof(why));
		if (e)
			return refuse(t, e, err, errlen, "queue %u: %s", q, why);
	}
	if (!rget_blob(r, &cfg_len, VIRTIO_MMIO_CONFIG_SAVED) ||
	    cfg_len != VIRTIO_MMIO_CONFIG_SAVED)
		return refuse(t, -EBADMSG, err, errlen,
			      "configuration space truncated or not %u bytes",
			      VIRTIO_MMIO_CONFIG_SAVED);
	return 0;
}

/* Whether st is a state the guest's own driving of this transport could
 * have produced: -EINVAL with err set if not. */
static int check(const struct virtio_mmio *t, const struct mmio_state *st, char *err, size_t errlen)
{
	bool event_idx = st->driver_features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	bool dok = st->status & S_DRIVER_OK, fok = st->status & S_FEATURES;
	uint64_t unoffered = st->driver_features & ~t->offered;

	if (!status_reachable(st->status))
		return refuse(t, -EINVAL, err, errlen, "status %#x is not one a driver can reach",
			      st->status);
	if (st->running && !dok)
		return refuse(t, -EINVAL, err, errlen, "running with status %#x", st->status);
	if (st->needs_reset && !dok)
		return refuse(t, -EINVAL, err, errlen, "needs a reset with status %#x", st->status);
	if (dok && !st->running && !st->needs_reset)
		return refuse(t, -EINVAL, err, errlen,
			      "status %#x, neither running nor failed to start", st->status);
	if (fok && unoffered)
		return refuse(t, -EINVAL, err, errlen,
			      "acknowledged features %#llx include %#llx, which this device does "
			      "not offer (%#llx; the saved one offered %#llx)",
			      (unsigned long long)st->driver_features,
			      (unsigned long long)unoffered, (unsigned long long)t->offered,
			      (unsigned long long)st->offered);
	if (fok && !(st->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
		return refuse(t, -EINVAL, err, errlen, "acknowledged features %#llx lack VERSION_1",
			      (unsigned long long)st->driver_features);
	if (!(st->status & S_DRIVER) && st->driver_features)
		return refuse(t, -EINVAL, err, errlen, "driver features %#llx with status %#x",
			      (unsigned long long)st->driver_features, st->status);
	if (st->isr & ~(uint32_t)(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		return refuse(t, -EINVAL, err, errlen, "InterruptStatus %#x", st->isr);
	for (unsigned q = 0; q < t->ops->num_queues; q++) {
		const struct qreg *qr = &st->qreg[q];
		const struct vq *vq = &st->queues[q];
		struct vq probe;

		if (qr->ready > 1)
			return refuse(t, -EINVAL, err, errlen, "queue %u: QueueReady %u", q,
				      qr->ready);
		if (!fok && (qr->num || qr->ready || qr->desc || qr->avail || qr->used))
			return refuse(t, -EINVAL, err, errlen,
				      "queue %u: registers set with status %#x", q, st->status);
		if (!st->running) {
			/* Queues start at DRIVER_OK; after a failed start some
			 * may be, and are dropped (the driver must reset). */
			if (vq->ready && !dok)
				return refuse(t, -EINVAL, err, errlen,
					      "queue %u: started with status %#x", q, st->status);
			continue;
		}
		if (!qr->ready) {
			if (vq->ready)
				return refuse(t, -EINVAL, err, errlen,
					      "queue %u: started but not made ready", q);
			continue;
		}
		/* The driver's DRIVER_OK path, on the restored registers. */
		if (start_queue(t, qr, event_idx, &probe))
			return refuse(t, -EINVAL, err, errlen,
				      "queue %u: size %u (max %u) or rings (desc %#llx avail %#llx "
				      "used %#llx) refused",
				      q, qr->num, t->queue_max, (unsigned long long)qr->desc,
				      (unsigned long long)qr->avail, (unsigned long long)qr->used);
		if (!vq->ready || vq->size != probe.size || vq->desc_gpa != probe.desc_gpa ||
		    vq->avail_gpa != probe.avail_gpa || vq->used_gpa != probe.used_gpa ||
		    vq->event_idx != probe.event_idx)
			return refuse(t, -EINVAL, err, errlen,
				      "queue %u: its ring state disagrees with its registers", q);
	}
	return 0;
}

/* Back to the state virtio_mmio_create left (config_gen aside). */
static void clear_registers(struct virtio_mmio *t)
{
	t->status = 0;
	t->dev_features_sel = t->drv_features_sel = t->queue_sel = 0;
	t->driver_features = 0;
	memset(t->qreg, 0, sizeof(t->qreg));
	__atomic_store_n(&t->isr, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->needs_reset, false, __ATOMIC_SEQ_CST);
}

int virtio_mmio_restore(struct virtio_mmio *t, struct rbuf *r, char *err, size_t errlen)
{
	struct mmio_state *st;
	uint32_t old_gen;
	int e;

	st = calloc(1, sizeof(*st));
	if (!st)
		return refuse(t, -ENOMEM, err, errlen, "no memory to decode the state");
	pthread_mutex_lock(&t->lock);
	if (t->status || __atomic_load_n(&t->running, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&t->needs_reset, __ATOMIC_ACQUIRE)) {
		e = refuse(t, -EBUSY, err, errlen, "restore into a transport already in use");
		goto out;
	}
	e = decode(t, r, st, err, errlen);
	if (!e)
		e = check(t, st, err, errlen);
	if (e)
		goto out;

	old_gen = __atomic_load_n(&t->config_gen, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&t->dev_lock);
	t->status = st->status;
	t->dev_features_sel = st->dev_features_sel;
	t->drv_features_sel = st->drv_features_sel;
	t->queue_sel = st->queue_sel;
	t->driver_features = st->driver_features;
	memcpy(t->qreg, st->qreg, sizeof(t->qreg));
	__atomic_store_n(&t->isr, st->isr, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->config_gen, st->config_gen, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->needs_reset, st->needs_reset, __ATOMIC_SEQ_CST);
	if (st->running) {
		for (unsigned q = 0; q < t->ops->num_queues; q++)
			t->queues[q] = st->queues[q];
		/* As the driver's path: a reset (its probe's status 0), then
		 * activate with running already set (see activate()). */
		t->ops->reset(t->dev);
		__atomic_store_n(&t->running, true, __ATOMIC_RELEASE);
		e = t->ops->activate(t->dev, t->driver_features, t->queues, &t->host);
		if (e) {
			__atomic_store_n(&t->running, false, __ATOMIC_RELEASE);
			t->ops->reset(t->dev);
			for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
				vq_reset(&t->queues[q]);
			clear_registers(t);
			__atomic_store_n(&t->config_gen, old_gen, __ATOMIC_SEQ_CST);
			pthread_mutex_unlock(&t->dev_lock);
			e = refuse(t, e, err, errlen, "the device refused activation: %s",
				   strerror(-e));
			goto out;
		}
	}
	pthread_mutex_unlock(&t->dev_lock);
	pthread_mutex_unlock(&t->lock);
	free(st);
	/* The edge for a pending cause may not have reached the guest before
	 * the snapshot; a spurious one is harmless (the handler reads 0). */
	if (__atomic_load_n(&t->isr, __ATOMIC_SEQ_CST))
		t->irq(t->irq_ctx);
	return 0;

out:
	pthread_mutex_unlock(&t->lock);
	free(st);
	return e;
}

void virtio_mmio_reset(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	reset(t);
	pthread_mutex_unlock(&t->lock);
}
