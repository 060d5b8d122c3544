/* virtio-vsock device; see vsock.h. TX chains are parsed and handed to the
 * backend one by one and given back at once (the backend has copied or sent
 * the payload by then). RX chains are taken only while the backend has
 * something to send, up to RX_BATCH at a time, and handed to the backend
 * together, so that it can fill many with one read of a socket. Chains it
 * did not fill (it had less to send than they hold, or nothing after all)
 * are kept, mapped, for the next packets (a snapshot's quiesce gives them
 * back with vq_discard). The event queue's buffers wait for the one event
 * the device sends, TRANSPORT_RESET, when a snapshot drops the host's
 * connections.
 *
 * After that event the device awaits the guest's handling of it (see
 * vsock.h): Linux's driver handles events in a work item of its own, which
 * may run after the RX work that takes up a new connection, so a REQUEST
 * sent before it would be reset by the late event. The evidence is the
 * event queue's avail idx: Linux gives the buffer back (refills) right after
 * it reset its sockets, then kicks; the device asks for that kick
 * (vq_notify_next) and, at each notification of the event queue, compares
 * the index with the one it saw when it sent the event. The index, not the
 * kick alone: the VMM kicks every queue itself after a snapshot or a
 * restore. */
#include "vsock/vsock.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"

/* Segments a chain may have: a queue's worth (indirect tables included). */
#define SEG_MAX VSOCK_QUEUE_MAX
/* RX chains handed to the backend at a time. Linux's are 4 KiB, and its
 * reader's credit update gives 192 KiB (48 of them) at a time; with the
 * interrupt decision after the first batch (process_rx), 32 gets a waiting
 * guest going on 128 KiB while the rest is read. (In the rig: 16 made the
 * guest finish its batch first and ask for a second interrupt; 64 made it
 * wait for all of it, at 0.7 times the throughput.) */
#define RX_BATCH 32
/* Segment storage for the held chains, shared: a chain is popped only with
 * a queue's worth free, so no chain is refused for want of room, and Linux's
 * (one or two segments each) fill a batch in a few hundred bytes. */
#define RX_POOL (2 * SEG_MAX)

struct vsock_dev {
	struct vsock_backend be;
	struct evloop *loop;
	struct virtio_vsock_config cfg;
	uint64_t cid;
	_Atomic uint64_t resets;
	/* A TRANSPORT_RESET went out and the guest has not taken it up yet
	 * (written under the lock, read without it: backend callbacks ask). */
	_Atomic bool reset_wait;

	pthread_mutex_t lock; /* everything below */
	bool active;	      /* activated, not reset */
	bool broken;	      /* needs_reset asked: touch no queue until reset */
	bool logged;	      /* a protocol error was logged */
	struct vq *rxq, *txq;
	struct vq *evq; /* NULL when the driver did not set it up */
	/* The event queue's avail idx when the TRANSPORT_RESET went out: the
	 * guest's next event buffer moves it (reset_wait). */
	uint16_t reset_avail;
	struct virtio_host host;
	/* RX chains popped and mapped, not used yet: rx_chain[0..rx_held),
	 * oldest first, each with its packet rx_pkt[i]. Their segments and
	 * payload iovecs sit at the same offsets of rx_segs and rx_iov, in
	 * the same order, rx_pool_used entries in all. */
	unsigned rx_held, rx_pool_used;
	struct vq_chain rx_chain[RX_BATCH];
	struct vsock_pkt rx_pkt[RX_BATCH];
	/* Interrupt decisions once per event-loop batch (blk.c does the same):
	 * queues pushed to since the last one. */
	struct ev_op used_op;
	uint32_t used_pending;
	struct vsock_dev_stats stats;
	struct vq_seg rx_segs[RX_POOL], tx_segs[SEG_MAX];
	struct iovec rx_iov[RX_POOL], tx_iov[SEG_MAX];
};

static void protocol_error(struct vsock_dev *d, struct virtio_after *a, const char *what, int err)
{
	d->stats.protocol_errors++;
	d->broken = true;
	a->reset = true;
	if (!d->logged)
		pr_err("vsock: guest broke the %s (%s); device needs reset", what, strerror(-err));
	d->logged = true;
}

static void push(struct vsock_dev *d, struct virtio_after *a, unsigned q, uint16_t head,
		 uint32_t len)
{
	struct vq *vq = q == VSOCK_RXQ ? d->rxq : q == VSOCK_TXQ ? d->txq : d->evq;

	if (vq_push(vq, head, len) == 0)
		a->used |= 1u << q;
}

static void tx_one(struct vsock_dev *d, const struct vq_chain *c)
{
	struct vsock_pkt p = {.iov = d->tx_iov, .cap = SEG_MAX};
	enum vsock_pkt_err err = vsock_pkt_parse(c, d->cid, &p);

	if (err == VSOCK_PKT_OK) {
		d->stats.tx_packets++;
		d->stats.tx_bytes += le32toh(p.hdr.len);
		d->be.tx(d->be.be, &p);
		return;
	}
	d->stats.bad_packets++;
	pr_debug("vsock: dropped a guest packet: %s (op %u, ports %u -> %u)",
		 vsock_pkt_strerror(err), le16toh(p.hdr.op), le32toh(p.hdr.src_port),
		 le32toh(p.hdr.dst_port));
	if (vsock_pkt_can_reset(err, &p))
		d->be.tx_bad(d->be.be, &p);
}

/* Take every TX chain there is, notifications off meanwhile; once empty,
 * turn them on and look once more (the guest may have added a chain before
 * it saw them on). Past VIRTIO_BUDGET chains, notifications still off, ask
 * to be notified again. */
static void process_tx(struct vsock_dev *d, struct virtio_after *a)
{
	struct vq_chain c = {.seg = d->tx_segs, .cap = SEG_MAX};
	int r;

	vq_disable_notify(d->txq);
	for (unsigned n = 0;; n++) {
		if (virtio_budget_spent(a, VSOCK_TXQ, n))
			return;
		r = vq_pop(d->txq, &c);
		if (r < 0) {
			protocol_error(d, a, "TX queue", r);
			return;
		}
		if (r == 0) {
			vq_enable_notify(d->txq);
			if (!vq_has_work(d->txq))
				return;
			vq_disable_notify(d->txq);
			continue;
		}
		tx_one(d, &c);
		push(d, a, VSOCK_TXQ, c.head, 0);
	}
}

/* Pop and map RX chains until RX_BATCH are held, the pool is short of a
 * queue's worth of segments, or the guest has no more. Returns how many are
 * held, 0 when none (notifications are then on: its next buffer kicks us),
 * or -1 after a protocol error. */
static int rx_fill(struct vsock_dev *d, struct virtio_after *a)
{
	int r;

	while (d->rx_held < RX_BATCH && RX_POOL - d->rx_pool_used >= SEG_MAX) {
		struct vq_chain *c = &d->rx_chain[d->rx_held];
		struct vsock_pkt *p = &d->rx_pkt[d->rx_held];

		*c = (struct vq_chain){.seg = d->rx_segs + d->rx_pool_used, .cap = SEG_MAX};
		r = vq_pop(d->rxq, c);
		if (r < 0) {
			protocol_error(d, a, "RX queue", r);
			return -1;
		}
		if (r == 0) {
			if (d->rx_held)
				break;
			vq_enable_notify(d->rxq);
			if (!vq_has_work(d->rxq)) {
				d->stats.rx_waits++;
				return 0;
			}
			vq_disable_notify(d->rxq);
			continue;
		}
		/* The payload never has more segments than the chain. */
		*p = (struct vsock_pkt){.iov = d->rx_iov + d->rx_pool_used, .cap = c->nseg};
		r = vsock_pkt_rx_map(c, p);
		if (r < 0) {
			push(d, a, VSOCK_RXQ, c->head, 0);
			protocol_error(d, a, "RX queue with a buffer too small for a packet", r);
			return -1;
		}
		d->rx_pool_used += c->nseg;
		d->rx_held++;
	}
	return (int)d->rx_held;
}

/* The first n held chains were used: move the rest, and their segments and
 * iovecs, to the front. */
static void rx_drop_first(struct vsock_dev *d, unsigned n)
{
	unsigned rest = d->rx_held - n, from;

	if (!rest) {
		d->rx_held = d->rx_pool_used = 0;
		return;
	}
	from = (unsigned)(d->rx_chain[n].seg - d->rx_segs);
	memmove(d->rx_segs, d->rx_segs + from, (d->rx_pool_used - from) * sizeof(d->rx_segs[0]));
	memmove(d->rx_iov, d->rx_iov + from, (d->rx_pool_used - from) * sizeof(d->rx_iov[0]));
	memmove(d->rx_chain, d->rx_chain + n, rest * sizeof(d->rx_chain[0]));
	memmove(d->rx_pkt, d->rx_pkt + n, rest * sizeof(d->rx_pkt[0]));
	for (unsigned i = 0; i < rest; i++) {
		d->rx_chain[i].seg -= from;
		d->rx_pkt[i].iov -= from;
	}
	d->rx_pool_used -= from;
	d->rx_held = rest;
}

/* Hand the guest what the backend has, while it has RX buffers. No RX
 * notifications unless we are waiting for buffers.
 *
 * Interrupts are decided once per event-loop batch (finish), except after
 * the first batch of RX packets here: then at once, for everything pushed
 * so far. A guest that waits for data (its reader sent a credit update and
 * has drained its socket) starts on those while we read the next batches,
 * instead of after the last; one that is still busy has its interrupts
 * off (EVENT_IDX) and gets none. */
static void process_rx(struct vsock_dev *d, struct virtio_after *a)
{
	bool first = true;

	/* At most VIRTIO_BUDGET chains a call: a guest that keeps giving RX
	 * buffers back with credit to match (buf_alloc 4 GiB) would hold the
	 * loop and d->lock for as long as a host program has data. */
	for (unsigned pushed = 0;;) {
		unsigned n;
		int held;

		if (virtio_budget_spent(a, VSOCK_RXQ, pushed))
			return;
		if (!d->be.rx_pending(d->be.be)) {
			vq_disable_notify(d->rxq);
			return;
		}
		if ((held = rx_fill(d, a)) <= 0)
			return;
		n = d->be.rx(d->be.be, d->rx_pkt, (unsigned)held);
		if (n > (unsigned)held)
			n = (unsigned)held; /* a backend's bug: do not push twice */
		for (unsigned i = 0; i < n; i++) {
			uint32_t len = le32toh(d->rx_pkt[i].hdr.len);
			vsock_pkt_rx_put_hdr(&d->rx_chain[i], &d->rx_pkt[i].hdr);
			d->stats.rx_packets++;
			d->stats.rx_bytes += len;
			push(d, a, VSOCK_RXQ, d->rx_chain[i].head, VSOCK_PKT_HDR_SIZE + len);
		}
		pushed += n;
		rx_drop_first(d, n);
		if (first && a->used & 1u << VSOCK_RXQ) {
			struct virtio_after now = {.host = a->host,
						   .used = a->used | d->used_pending};

			first = false;
			virtio_after_run(&now);
			a->used = d->used_pending = 0;
		}
	}
}

/* Interrupts for what was pushed: one decision per event-loop batch. */
static void finish(struct vsock_dev *d, struct virtio_after *a)
{
	if (a->used) {
		d->used_pending |= a->used;
		a->used = 0;
		if (evloop_defer(d->loop, &d->used_op) < 0)
			a->used = d->used_pending;
	}
	virtio_after_run(a);
}

static void used_batch(struct ev_op *op, int res)
{
	struct vsock_dev *d = container_of(op, struct vsock_dev, used_op);
	struct virtio_after a = {.used = 0};

	(void)res;
	pthread_mutex_lock(&d->lock);
	a.host = d->host;
	if (d->active)
		a.used = d->used_pending;
	d->used_pending = 0;
	virtio_after_run(&a);
	pthread_mutex_unlock(&d->lock);
}

static void run(struct vsock_dev *d, bool tx)
{
	struct virtio_after a = {.used = 0};

	pthread_mutex_lock(&d->lock);
	a.host = d->host;
	if (d->active && tx && !d->broken)
		process_tx(d, &a);
	if (d->active && !d->broken)
		process_rx(d, &a);
	finish(d, &a);
	pthread_mutex_unlock(&d->lock);
}

/* ---- snapshot ------------------------------------------------------------ */

/* Put a TRANSPORT_RESET event in the guest's next event buffer. Returns
 * whether it went out. */
static bool send_transport_reset(struct vsock_dev *d, struct virtio_after *a)
{
	struct virtio_vsock_event ev = {.id = htole32(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET)};
	struct vq_chain c = {.seg = d->tx_segs, .cap = SEG_MAX};
	const uint8_t *from = (const uint8_t *)&ev;
	size_t left = sizeof(ev);
	int r;

	if (!d->evq) {
		pr_debug("vsock: the driver has no event queue; its connections are not reset");
		return false;
	}
	if ((r = vq_pop(d->evq, &c)) < 0) {
		protocol_error(d, a, "event queue", r);
		return false;
	}
	if (r == 0) {
		pr_debug("vsock: no event buffer from the guest; its connections are not reset");
		return false;
	}
	if (c.readable || c.writable < sizeof(ev)) {
		/* Linux's are exactly one event, device-writable. */
		pr_debug("vsock: an event buffer of %u writable bytes (%u readable); "
			 "its connections are not reset",
			 c.writable, c.readable);
		push(d, a, VSOCK_EVQ, c.head, 0);
		return false;
	}
	for (unsigned i = 0; i < c.nseg && left; i++) {
		size_t n = c.seg[i].len < left ? c.seg[i].len : left;
		memcpy(c.seg[i].host, from, n);
		from += n;
		left -= n;
	}
	/* The driver takes an event whose length is exactly one. */
	push(d, a, VSOCK_EVQ, c.head, sizeof(ev));
	/* Its buffer comes back once the guest has handled the event: ask for
	 * the kick then, past the buffers it still has with us. */
	d->reset_avail = vq_notify_next(d->evq);
	atomic_store(&d->reset_wait, true);
	return true;
}

bool vsock_dev_quiesce(struct vsock_dev *d)
{
	struct virtio_after a = {.used = 0};
	bool sent = false;

	pthread_mutex_lock(&d->lock);
	a.host = d->host;
	if (d->active && !d->broken) {
		/* What the guest has sent reaches the backend before it
		 * closes its connections. */
		process_tx(d, &a);
	}
	if (d->active && !d->broken && d->rx_held && vq_discard(d->rxq, (uint16_t)d->rx_held) < 0)
		pr_err("vsock: cannot give back %u RX buffers", d->rx_held); /* a bug */
	/* Broken: the driver must reset the device, which forgets the queues
	 * anyway. */
	d->rx_held = d->rx_pool_used = 0;
	if (d->active && !d->broken)
		sent = send_transport_reset(d, &a);
	/* Interrupts now, also those left for the end of the loop's batch:
	 * the state is saved before the loop runs again. */
	a.used |= d->active ? d->used_pending : 0;
	d->used_pending = 0;
	virtio_after_run(&a);
	pthread_mutex_unlock(&d->lock);
	return sent;
}

/* A notification of the event queue, which holds buffers for the one event
 * we send (vsock_dev_quiesce takes one when it needs it): the guest may have
 * handled our TRANSPORT_RESET. If so, the backend may send what it held
 * back for it. */
static void event_notify(struct vsock_dev *d)
{
	bool done = false;

	pthread_mutex_lock(&d->lock);
	if (atomic_load(&d->reset_wait) && d->active && !d->broken && d->evq &&
	    vq_avail_idx(d->evq) != d->reset_avail) {
		atomic_store(&d->reset_wait, false);
		done = true;
	}
	pthread_mutex_unlock(&d->lock);
	if (done) {
		pr_debug("vsock: the guest took up the transport reset");
		run(d, false);
	}
}

static void vsock_notify(void *dev, unsigned q)
{
	if (q == VSOCK_TXQ || q == VSOCK_RXQ)
		run(dev, q == VSOCK_TXQ);
	else if (q == VSOCK_EVQ)
		event_notify(dev);
}

bool vsock_dev_awaiting_reset(const struct vsock_dev *d)
{
	return atomic_load(&d->reset_wait);
}

void vsock_dev_stop_awaiting_reset(struct vsock_dev *d)
{
	atomic_store(&d->reset_wait, false);
}

/* ---- snapshot state ------------------------------------------------------ */

/* Version 1: whether a reset is awaited (u8), and the event queue's avail
 * idx it waits to see move (u16; 0 when none is awaited). */
#define VSOCK_STATE_V1 1

/* A refusal: -errno, err saying which field (fmt is a literal). */
#define refuse(e, err, errlen, ...) err_set(err, errlen, e, "vsock: " __VA_ARGS__)

int vsock_dev_save(const struct vsock_dev *d, struct wbuf *w)
{
	bool wait = atomic_load(&d->reset_wait);

	/* With the loop parked nothing changes these meanwhile. */
	wput_u32(w, VSOCK_STATE_V1);
	wput_u8(w, wait);
	wput_u16(w, wait ? d->reset_avail : 0);
	return wbuf_err(w);
}

int vsock_dev_restore(struct vsock_dev *d, struct rbuf *r, char *err, size_t errlen)
{
	uint32_t version;
	uint16_t avail;
	bool wait, bad = false, evq;

	version = rget_u32(r);
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated before its version");
	if (version != VSOCK_STATE_V1)
		return refuse(-EBADMSG, err, errlen, "state version %u, this flint reads %u",
			      version, VSOCK_STATE_V1);
	wait = rget_bool(r, &bad);
	avail = rget_u16(r);
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated");
	if (bad)
		return refuse(-EBADMSG, err, errlen,
			      "the flag \"awaiting the guest's reset\" is neither 0 nor 1");
	if (!wait && avail)
		return refuse(-EINVAL, err, errlen,
			      "an event queue index (%u) with no reset awaited", avail);
	pthread_mutex_lock(&d->lock);
	evq = d->active && d->evq;
	if (!wait || evq) {
		atomic_store(&d->reset_wait, wait);
		d->reset_avail = avail;
	}
	pthread_mutex_unlock(&d->lock);
	if (wait && !evq)
		return refuse(-EINVAL, err, errlen,
			      "a reset awaited from a driver with no event queue (or none at all)");
	return 0;
}

void vsock_dev_kick(struct vsock_dev *d)
{
	run(d, false);
}

static uint64_t vsock_features(void *dev)
{
	(void)dev;
	return 0;
}

static void vsock_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	const struct vsock_dev *d = dev;

	/* cfg never changes after create: no lock. */
	virtio_config_copy(&d->cfg, sizeof(d->cfg), off, data, len);
}

static int vsock_activate(void *dev, uint64_t features, struct vq *queues,
			  const struct virtio_host *host)
{
	struct vsock_dev *d = dev;

	(void)features;
	if (!queues[VSOCK_RXQ].ready || !queues[VSOCK_TXQ].ready ||
	    queues[VSOCK_RXQ].size > VSOCK_QUEUE_MAX || queues[VSOCK_TXQ].size > VSOCK_QUEUE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	d->rxq = &queues[VSOCK_RXQ];
	d->txq = &queues[VSOCK_TXQ];
	d->evq = queues[VSOCK_EVQ].ready ? &queues[VSOCK_EVQ] : NULL;
	d->host = *host;
	d->active = true;
	d->broken = false;
	/* A new driver knows of no connection: nothing to wait for (a restore
	 * sets it again, vsock_dev_restore). */
	atomic_store(&d->reset_wait, false);
	d->rx_held = d->rx_pool_used = 0;
	d->used_pending = 0;
	pthread_mutex_unlock(&d->lock);
	/* The backend may have packets waiting for the guest (a host program
	 * that connected before the driver was up): let it kick us. */
	d->be.changed(d->be.be);
	return 0;
}

static void vsock_reset(void *dev)
{
	struct vsock_dev *d = dev;

	pthread_mutex_lock(&d->lock);
	atomic_fetch_add(&d->resets, 1);
	d->active = d->broken = false;
	atomic_store(&d->reset_wait, false);
	d->rx_held = d->rx_pool_used = 0;
	d->used_pending = 0;
	d->rxq = d->txq = d->evq = NULL;
	d->host = (struct virtio_host){0};
	pthread_mutex_unlock(&d->lock);
	d->be.changed(d->be.be);
}

const struct virtio_dev_ops vsock_ops = {
    .device_id = VIRTIO_ID_VSOCK,
    .num_queues = 3,
    .queue_max = VSOCK_QUEUE_MAX,
    .features = vsock_features,
    .config_read = vsock_config_read,
    .config_write = NULL,
    .activate = vsock_activate,
    .reset = vsock_reset,
    .notify = vsock_notify,
};

int vsock_dev_create(struct vsock_dev **out, uint64_t guest_cid, struct evloop *loop,
		     const struct vsock_backend *be)
{
	struct vsock_dev *d;
	int r;

	*out = NULL;
	if (guest_cid < 3 || !loop || !be->tx || !be->tx_bad || !be->rx_pending || !be->rx ||
	    !be->changed)
		return -EINVAL;
	/* Its segment tables are sized for full queues and mostly unused. */
	d = lazy_zalloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	r = -pthread_mutex_init(&d->lock, NULL);
	if (r) {
		lazy_free(d, sizeof(*d));
		return r;
	}
	d->be = *be;
	d->loop = loop;
	d->cid = guest_cid;
	d->cfg.guest_cid = htole64(guest_cid);
	d->used_op = (struct ev_op){.done = used_batch};
	*out = d;
	return 0;
}

void vsock_dev_destroy(struct vsock_dev *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	lazy_free(d, sizeof(*d));
}

uint64_t vsock_dev_resets(const struct vsock_dev *d)
{
	return atomic_load(&d->resets);
}

void vsock_dev_get_stats(struct vsock_dev *d, struct vsock_dev_stats *out)
{
	pthread_mutex_lock(&d->lock);
	*out = d->stats;
	pthread_mutex_unlock(&d->lock);
}
