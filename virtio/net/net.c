/* virtio-net front end on a tap or a stream socket (passt); see net.h.
 *
 * RX: chains the guest offers are popped ahead and held here (the one place
 * a later snapshot finds them) until a read has room for any packet: 65562
 * bytes with MRG_RXBUF and guest GSO (spread over as many one-buffer chains
 * as that takes), one chain without MRG_RXBUF. Reads are plain readv() calls
 * on the non-blocking tap, straight into their buffers, made on the loop
 * thread with the lock held; a packet takes as many chains as it fills, the
 * rest stay held, and the next read follows at once. That goes on until the
 * tap is empty (-EAGAIN: a one-shot io_uring poll calls back once it is
 * readable), the guest is short of buffers, or RX_BUDGET packets. With no
 * buffers the device stops reading and asks for a kick: the tap queues, then
 * drops, and flint never blocks. As in Firecracker's and QEMU's user-space
 * net devices, no read into guest memory is ever under way outside the lock.
 *
 * TX: each chain is copied whole, header and frame, into a buffer of the
 * device's own (a TX slot), its header checked there (net_hdr.c), and the
 * slot written to the tap with io_uring, up to TX_SLOTS writes in flight. A
 * malformed chain is given back unsent and counted; the device carries on.
 * The copy is the one read of the guest's bytes, so:
 *  - the tap gets the header that was checked: a guest rewriting it after
 *    the kick cannot hand the host kernel flags, a gso_size of 0 or
 *    checksum offsets the check refused (tun parses the header itself);
 *  - no write in flight refers to guest memory, so a write waiting for room
 *    on a full tap reads nothing of the guest's after a reset (virtio.h).
 * The price is one memcpy per packet, at most 64 KiB, on the loop thread.
 * Timed on the TX path alone (a fake guest, a real tap whose host drops the
 * frames): 1.0 us per 1514-byte packet with the copy or without, 5.4 us per
 * 64 KiB GSO packet against 6.3 without, tun's own copy then reading a
 * buffer in cache instead of cold guest memory. Firecracker copies TX frames
 * too. The alternative, writing from guest memory and having reset cancel
 * the writes and wait for them, needs the loop thread (only it submits, and
 * a cancelled write's completion is reaped there): see below why reset
 * cannot wait for it. The slots take TX_SLOTS * 64 KiB of address space,
 * faulted in only as far as packets fill them; the free list is LIFO, so a
 * light load keeps reusing the same few.
 *
 * Threads and locking as blk.c: one mutex; notify and completions on the
 * loop thread (the only one that submits or reads the tap); activate and
 * reset on vCPU threads, with a generation number so that writes submitted
 * before a reset finish into nothing. A reset cancels nothing and waits for
 * no one: once it has the lock no RX read is under way, the RX poll it may
 * leave armed carries no buffer, and the TX writes still in flight read
 * only their slots. (Waiting for the loop thread would deadlock: the
 * transport holds its dev_lock around reset, and the loop thread takes that
 * lock for every queue notification.)
 *
 * Snapshots (net_drain, net_quiesce): the saved queues must show every
 * chain the device has, so drain waits for the TX writes in flight, and
 * quiesce, with the loop parked, gives back what is held: the held RX
 * chains and the frame the TX limiter holds (vq_discard), and uses the
 * chain of any write still in flight. The RX poll and the limiters' timers
 * stay armed: one that fires after the resume finds nothing held and
 * starts over, as does the transport's kick of every queue.
 *
 * The stream backend changes three functions and nothing of the queues'
 * handling: rx_read (a frame from the decoder, copied), tx_submit and
 * tx_done (one write at a time, in order, continued after a short one).
 * A TX slot already has room for the length prefix: it goes over the last
 * four bytes of the checked header, which the stream does not carry. */
#include "net/net.h"

#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/time_types.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/evwait.h"
#include "net/net_hdr.h"
#include "net/stream.h"
#include "net/tap.h"

enum { RXQ, TXQ, NQ };

#define NET_QUEUE_MAX 256
/* A full direct chain then a full indirect table: with room for this many
 * segments vq_pop never fails for want of it. */
#define POP_SEG_MAX (NET_QUEUE_MAX + VQ_MAX_INDIRECT)
/* Segments kept per RX chain. Linux builds chains of at most
 * MAX_SKB_FRAGS + 2 (19); longer ones are refused, not fatal. */
#define RX_SEG_MAX 32
#define TX_SLOTS   64
/* The longest TX chain: the header and the largest frame. */
#define TX_BUF_LEN (NET_HDR_LEN + NET_FRAME_MAX)
/* The kernel's UIO_MAXIOV: the most iovecs one read takes. */
#define RX_IOV_MAX 1024
/* Room a read needs for any packet: with guest GSO, the spec's 65562;
 * without, a full-size Ethernet frame with a VLAN tag. */
#define RX_ROOM_GSO   (NET_HDR_LEN + NET_FRAME_MAX)
#define RX_ROOM_PLAIN (NET_HDR_LEN + ETH_FRAME_LEN + 4)
/* The stream's read buffer: two of the largest frames, so that reads stay
 * large when a frame is split across them. */
#define STREAM_RX_BUF (2 * (STREAM_PREFIX + NET_FRAME_MAX))
/* Reads of the stream for one frame, at most (rx_read_stream). */
#define STREAM_RX_READS 4
/* passt's start: it answers in milliseconds; an emulated host is slower. */
#define PASST_TIMEOUT_MS 10000
/* Packets read in one go; then the loop serves its other completions (TX,
 * other devices) before RX reads on. evloop_defer() would not make way for
 * them: the loop runs what its deferred calls defer again before it next
 * enters the kernel. Arming the RX poll does: on a tap that still has
 * packets it completes at once, on the loop's next turn. */
#define RX_BUDGET 64

/* An RX chain popped and held for a later read. */
struct rx_chain {
	uint16_t head;
	uint16_t niov;
	uint32_t len; /* writable bytes */
	struct iovec iov[RX_SEG_MAX];
};

/* One TX packet at the host: a copy of the guest's chain, which the write
 * reads and the guest cannot change. */
struct tx_slot {
	struct ev_op op;
	struct net *n;
	struct tx_slot *next; /* free list */
	uint32_t gen;	      /* n->gen when submitted */
	uint16_t head;
	bool inflight;	       /* written by io_uring: tx_done not run yet */
	bool used;	       /* head already used by net_quiesce: tx_done pushes nothing */
	uint32_t frame_len;    /* the frame's bytes, after the header */
	struct iovec iov;      /* the write's one iovec: buf, or what is left of out */
	struct stream_out out; /* stream: the prefix and frame still to write */
	uint8_t buf[TX_BUF_LEN];
};

/* One direction's limiter and the timer that lets its refused frame go. */
struct throttle {
	struct ev_wait wait; /* cut short by new limits (core/evwait.h) */
	struct net *n;
	unsigned q;
	struct ratelimit rl;
	bool on;	/* rl limits */
	bool logged;	/* wait could not be armed: said once */
	uint64_t bytes; /* the refused frame's */
};

struct net {
	char id[32];
	char peer[48]; /* "tap NAME", "passt (pid N)": for messages */
	int fd;
	bool is_tap; /* a tun/tap fd: offloads are set on it */
	bool stream; /* NET_BACKEND_USER: frames over a stream socket */
	pid_t passt; /* the passt net_create started, or -1 */
	struct evloop *loop;
	bool has_mac;
	bool has_mtu;
	struct virtio_net_config cfg;

	pthread_mutex_t lock; /* everything below */
	bool active;	      /* activated, not reset */
	bool broken;	      /* needs_reset asked: pop nothing more */
	bool logged_ring, logged_tx, logged_io;
	uint32_t gen; /* bumped by activate and reset */
	uint64_t features;
	struct vq *vq[NQ];
	struct virtio_host host;

	/* RX. held[] is a ring of held_count chains from held_first. */
	struct rx_chain *held;
	unsigned held_first, held_count;
	uint64_t held_bytes;
	/* A chain popped after held ones was used at once (rx_hold: no
	 * packet could use it), so the held chains are not the last popped
	 * and vq_discard cannot give them back (net_quiesce). Until nothing
	 * is held. */
	bool held_behind;
	uint32_t rx_room_want; /* room a read is given when the guest has it */
	uint32_t rx_room_min;  /* room below which the device waits for buffers */
	bool rx_waiting;       /* short of buffers: notifications on */
	bool rx_stopped;       /* a read failed: no more until the next RX kick */
	/* One-shot POLLIN on the tap. Readiness has no generation: one armed
	 * before a reset and completing after it only reads on if a new
	 * generation is active, into its buffers. */
	struct ev_op rx_poll;
	struct iovec rx_iov[RX_IOV_MAX];

	/* TX */
	struct tx_slot *slots, *tx_free;
	unsigned tx_inflight;
	bool tx_starved; /* stopped popping for want of a slot */
	bool tx_polling; /* notifications left off while writes are in flight */

	/* The stream backend. srx: frames read, not yet delivered; rx_again:
	 * a zero timer that brings RX back on the loop's next turn when the
	 * budget ran out with frames still in srx (no poll would: the socket
	 * may be empty). tx_q: slots in the order their frames go, the head's
	 * write in flight. rx_broken, tx_broken: that direction is done. */
	struct stream_rx srx;
	struct ev_op rx_again;
	struct __kernel_timespec rx_again_ts;
	struct tx_slot *tx_q, *tx_q_tail;
	bool rx_broken, tx_broken;

	/* Completions push at once and ask for interrupts once per batch. */
	struct ev_op used_op;
	uint32_t used_pending; /* bit q: queue q, as struct virtio_after's used */
	struct vq_seg segs[POP_SEG_MAX];
	struct net_stats stats;

	/* Rate limiting (see net.h). rx_throttled: the length of a packet
	 * read into the first held chains that the RX limiter refused (0:
	 * none); tx_throttled: a TX slot, copied and checked, the TX limiter
	 * refused. kick: sent by net_set_ratelimit. */
	struct throttle thr[NQ];
	uint32_t rx_throttled;
	struct tx_slot *tx_throttled;
	struct ev_kick kick;

	/* The detour (net.h). detour_owed: TX gave it a frame, so it may
	 * have an answer for RX. detour_timer: a timeout for when it will
	 * have a frame by itself (a retransmission), so that a frame the
	 * guest never took goes again on an idle link. */
	struct net_detour detour;
	bool detour_owed, logged_detour;
	struct ev_op detour_timer;
	struct __kernel_timespec detour_ts;
	uint8_t detour_buf[NET_DETOUR_FRAME_MAX];
};

/* On the loop thread: leave the interrupt decisions to the end of the
 * event loop's batch. */
static void defer_used(struct net *n, struct virtio_after *a)
{
	n->used_pending |= a->used;
	if (a->used && evloop_defer(n->loop, &n->used_op) == 0)
		a->used = 0;
}

static void used_batch(struct ev_op *op, int res)
{
	struct net *n = container_of(op, struct net, used_op);
	struct virtio_after a = {.reset = false};

	(void)res;
	pthread_mutex_lock(&n->lock);
	a.host = n->host;
	a.used = n->active ? n->used_pending : 0;
	n->used_pending = 0;
	virtio_after_run(&a);
	pthread_mutex_unlock(&n->lock);
}

static void protocol_error(struct net *n, struct virtio_after *a, const char *what, int err)
{
	n->stats.protocol_errors++;
	n->broken = true;
	a->reset = true;
	if (!n->logged_ring)
		pr_err("%s: guest broke the %s (%s); device needs reset", n->id, what,
		       strerror(-err));
	n->logged_ring = true;
}

static void io_error(struct net *n, const char *what, int err)
{
	if (err == -ESHUTDOWN)
		return; /* the loop is stopping: nothing went wrong */
	if (!n->logged_io)
		pr_err("%s: %s: %s: %s (counting further errors quietly)", n->id, n->peer, what,
		       strerror(-err));
	n->logged_io = true;
}

static void push(struct net *n, struct virtio_after *a, unsigned q, uint16_t head, uint32_t len)
{
	if (vq_push(n->vq[q], head, len) == 0)
		a->used |= 1u << q;
}

/* ---- rate limiting ------------------------------------------------------ */

static void arm_kick(struct net *n)
{
	int r;

	if ((r = ev_kick_arm(&n->kick, n->loop)) < 0 && r != -ESHUTDOWN)
		pr_err("%s: polling its eventfd: %s", n->id, strerror(-r));
}

/* Arm t's timer for when its refused frame will pass, unless armed.
 * Lock held, loop thread. */
static void arm_throttle(struct net *n, struct throttle *t)
{
	int r;

	arm_kick(n);
	if (ev_wait_armed(&t->wait))
		return;
	r = ev_wait_arm(&t->wait, n->loop, ratelimit_wait_ns(&t->rl, now_ns(), t->bytes, 1));
	if (r < 0 && r != -ESHUTDOWN && !t->logged) {
		/* The next kick or completion tries again. */
		pr_err("%s: cannot arm the rate limiter's timer: %s", n->id, strerror(-r));
		t->logged = true;
	}
}

/* Whether queue q's limiter lets a frame of `bytes` go now; if not, its
 * timer is armed for when it will. Lock held, loop thread. */
static bool admit(struct net *n, unsigned q, uint64_t bytes)
{
	struct throttle *t = &n->thr[q];

	if (!t->on || ratelimit_consume(&t->rl, now_ns(), bytes, 1))
		return true;
	t->bytes = bytes;
	arm_throttle(n, t);
	return false;
}

/* Copy len bytes at byte off of an iovec array to or from buf; returns
 * the bytes copied (fewer when the array ends first). */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len,
		       bool to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len - done)
			l = len - done;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off, (uint8_t *)buf + done, l);
		else
			memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, l);
		done += l;
		off = 0;
	}
	return done;
}

/* ---- RX: tap -> guest --------------------------------------------------- */

static struct rx_chain *held_at(struct net *n, unsigned i)
{
	return &n->held[(n->held_first + i) % NET_QUEUE_MAX];
}

static bool rx_has_room(const struct net *n, uint32_t room)
{
	if (!(n->features & 1ull << VIRTIO_NET_F_MRG_RXBUF))
		return n->held_count > 0; /* one chain, whatever its size */
	return n->held_bytes >= room;
}

/* Keep a popped RX chain for a read, or give back one no packet can use. */
static void rx_hold(struct net *n, struct virtio_after *a, const struct vq_chain *c)
{
	struct rx_chain *h;

	if (c->readable || c->writable < NET_HDR_LEN || c->nseg > RX_SEG_MAX) {
		n->stats.rx_bad_buffers++;
		n->held_behind |= n->held_count > 0;
		push(n, a, RXQ, c->head, 0);
		return;
	}
	h = held_at(n, n->held_count++);
	h->head = c->head;
	h->len = c->writable;
	h->niov = (uint16_t)c->nseg;
	for (unsigned i = 0; i < c->nseg; i++)
		h->iov[i] = (struct iovec){c->seg[i].host, c->seg[i].len};
	n->held_bytes += h->len;
}

/* Pop RX chains until a read has room for any packet. Returns whether it
 * has; if not, RX notifications are on and the device waits for a kick, or
 * it took VIRTIO_BUDGET chains (a guest offering chains no packet can use,
 * each given back at once, as fast as they go) and is notified again. */
static bool rx_fill(struct net *n, struct virtio_after *a)
{
	struct vq_chain c = {.seg = n->segs, .cap = ARRAY_SIZE(n->segs)};
	struct vq *q = n->vq[RXQ];
	int r;

	for (unsigned k = 0; n->held_count < NET_QUEUE_MAX && !rx_has_room(n, n->rx_room_want);
	     k++) {
		if (virtio_budget_spent(a, RXQ, k))
			return false;
		r = vq_pop(q, &c);
		if (r < 0) {
			protocol_error(n, a, "RX queue", r);
			return false;
		}
		if (r == 0) {
			/* Ask for a kick, then look once more: the guest may
			 * have added buffers before it saw the request. */
			vq_enable_notify(q);
			if (!vq_has_work(q))
				break;
			continue;
		}
		rx_hold(n, a, &c);
	}
	if (rx_has_room(n, n->rx_room_min)) {
		vq_disable_notify(q);
		n->rx_waiting = false;
		return true;
	}
	if (!n->rx_waiting)
		n->stats.rx_no_buffers++;
	n->rx_waiting = true;
	return false;
}

/* The held chains, from the first, as n->rx_iov: returns the iovecs (one
 * left free at the end), and in *room the bytes they take. */
static unsigned rx_gather(struct net *n, uint64_t *room)
{
	unsigned k = 0, niov = 0;
	unsigned most = n->features & 1ull << VIRTIO_NET_F_MRG_RXBUF ? n->held_count : 1;

	*room = 0;
	while (k < most && *room < n->rx_room_want) {
		const struct rx_chain *h = held_at(n, k);
		if (niov + h->niov > RX_IOV_MAX - 1)
			break;
		memcpy(&n->rx_iov[niov], h->iov, h->niov * sizeof(h->iov[0]));
		niov += h->niov;
		*room += h->len;
		k++;
	}
	return niov;
}

/* Copy a frame of len bytes into the held chains as rx_gather laid them
 * out (niov iovecs taking room bytes), behind a zeroed header (rx_deliver
 * fills num_buffers): returns its length with the header; a frame larger
 * than room is not copied (rx_process drops it). */
static ssize_t rx_copy(struct net *n, unsigned niov, uint64_t room, const uint8_t *f, uint32_t len)
{
	static const struct virtio_net_hdr_v1 zero;

	if (NET_HDR_LEN + (uint64_t)len <= room) {
		iov_copy(n->rx_iov, niov, 0, (void *)&zero, NET_HDR_LEN, true);
		iov_copy(n->rx_iov, niov, NET_HDR_LEN, (void *)f, len, true);
	}
	return (ssize_t)(NET_HDR_LEN + len);
}

/* The stream backend's rx_read: the next frame from the decoder, reading
 * the socket until one is whole, copied into the chains behind a zeroed
 * header (rx_deliver fills num_buffers). A frame larger than the room is
 * taken and not copied: rx_process drops it. -EAGAIN: no frame is whole,
 * the socket empty or STREAM_RX_READS read; -EPIPE: passt closed it;
 * -EMSGSIZE: a length over NET_FRAME_MAX, the stream broken. */
static ssize_t rx_read_stream(struct net *n, uint64_t *room)
{
	const uint8_t *f;
	unsigned niov;
	uint32_t len;
	int r;

	*room = 0;
	if (n->rx_broken)
		return -EPIPE;
	for (unsigned reads = 0; (r = stream_rx_next(&n->srx, &f, &len)) == 0; reads++) {
		uint8_t *at;
		size_t space;
		ssize_t got;

		/* A peer sending nothing but empty frames (which the decoder
		 * skips) would hold the loop here: after a few reads, back to
		 * the loop, which comes again when the socket is readable. */
		if (reads == STREAM_RX_READS)
			return -EAGAIN;
		space = stream_rx_space(&n->srx, &at);
		got = read(n->fd, at, space);

		if (got < 0)
			return -errno;
		if (got == 0) {
			if (!n->logged_io)
				pr_err("%s: %s closed the connection: no more packets from it",
				       n->id, n->peer);
			n->logged_io = true;
			n->rx_broken = true;
			return -EPIPE;
		}
		if (stream_rx_commit(&n->srx, (size_t)got) < 0)
			return -EIO; /* read() took no more than space */
	}
	if (r < 0) {
		if (!n->rx_broken && !n->logged_io)
			pr_err("%s: %s sent a frame of %u bytes, over %u: the stream is broken, no "
			       "more packets from it",
			       n->id, n->peer, n->srx.bad_len, (unsigned)NET_FRAME_MAX);
		n->logged_io = true;
		n->rx_broken = true;
		return r;
	}
	niov = rx_gather(n, room);
	return rx_copy(n, niov, *room, f, len);
}

/* The detour's next frame, copied as rx_copy does; 0: it has none. It is
 * asked for no more than the held chains take. */
static ssize_t rx_read_detour(struct net *n, uint64_t *room)
{
	uint64_t cap, due;
	unsigned niov;
	size_t len;

	if (!n->detour.owed(n->detour.ctx, &due))
		return 0;
	niov = rx_gather(n, room);
	cap = *room > NET_HDR_LEN ? *room - NET_HDR_LEN : 0;
	if (cap > sizeof(n->detour_buf))
		cap = sizeof(n->detour_buf);
	len = cap ? n->detour.give(n->detour.ctx, n->detour_buf, cap) : 0;
	return len ? rx_copy(n, niov, *room, n->detour_buf, (uint32_t)len) : 0;
}

/* One read into the held chains, from the first: returns its length or
 * -errno, and in *room what the guest's buffers could take of it. */
static ssize_t rx_read(struct net *n, uint64_t *room)
{
	uint8_t spill;
	unsigned niov;
	ssize_t r;

	if (n->detour.take && (r = rx_read_detour(n, room)) > 0)
		return r;
	if (n->rx_stopped)
		return -ENODATA; /* the detour's frames only (rx_process) */
	if (n->stream)
		return rx_read_stream(n, room);
	niov = rx_gather(n, room);
	/* tun returns min(packet, room), so a packet that did not fit would
	 * look like one that fitted exactly: a byte of ours past the room
	 * tells them apart. */
	n->rx_iov[niov++] = (struct iovec){&spill, 1};
	r = readv(n->fd, n->rx_iov, (int)niov);
	return r < 0 ? -errno : r;
}

/* A packet of len bytes (header included) is in the first held chains. */
static void rx_deliver(struct net *n, struct virtio_after *a, uint32_t len)
{
	const struct rx_chain *first = held_at(n, 0);
	unsigned k = 0;
	uint16_t nbuf;

	for (uint32_t left = len; left; k++)
		left -= left < held_at(n, k)->len ? left : held_at(n, k)->len;
	/* tun skips num_buffers; the guest reads it once used->idx moves. */
	nbuf = htole16((uint16_t)k);
	iov_copy(first->iov, first->niov, offsetof(struct virtio_net_hdr_v1, num_buffers), &nbuf,
		 sizeof(nbuf), true);
	for (unsigned i = 0; i < k; i++) {
		const struct rx_chain *h = held_at(n, i);
		uint32_t used = len < h->len ? len : h->len;
		push(n, a, RXQ, h->head, used);
		len -= used;
		n->held_bytes -= h->len;
	}
	n->held_first = (n->held_first + k) % NET_QUEUE_MAX;
	n->held_count -= k;
	if (!n->held_count)
		n->held_behind = false;
}

/* The stream: have the loop call rx_ready() on its next turn, for frames
 * the decoder holds already. */
static void rx_again(struct net *n)
{
	int r;

	if (evloop_pending(&n->rx_again))
		return;
	n->rx_again_ts = (struct __kernel_timespec){0};
	if ((r = evloop_timeout(n->loop, &n->rx_again, &n->rx_again_ts)) < 0) {
		n->stats.rx_errors += r != -ESHUTDOWN;
		io_error(n, "arming a timer", r);
		n->rx_stopped = true;
	}
}

/* Have the loop call rx_ready() once the tap is readable, unless a poll is
 * armed already. */
static void rx_wait(struct net *n)
{
	int r;

	if (evloop_pending(&n->rx_poll))
		return;
	if ((r = evloop_poll_once(n->loop, &n->rx_poll, n->fd, POLLIN)) < 0) {
		n->stats.rx_errors += r != -ESHUTDOWN;
		io_error(n, "polling", r);
		n->rx_stopped = true;
	}
}

/* Lock held, loop thread: read packets into the held chains while the tap
 * has them, the guest has room and the budget lasts. No poll is armed for
 * want of buffers: the RX kick brings the device back. A backend that
 * failed (rx_stopped) is not read until the next RX kick; the detour's
 * frames still go. */
static void rx_pump(struct net *n, struct virtio_after *a)
{
	uint64_t room;
	ssize_t r;

	if (!n->active || n->broken || (n->rx_stopped && !n->detour.take))
		return;
	for (unsigned i = 0; i < RX_BUDGET; i++) {
		if (n->rx_throttled) {
			/* The packet read before goes first; until it
			 * does the tap is not read. */
			if (ev_wait_armed(&n->thr[RXQ].wait) ||
			    !admit(n, RXQ, n->rx_throttled - NET_HDR_LEN))
				return;
			n->stats.rx_packets++;
			n->stats.rx_bytes += n->rx_throttled - NET_HDR_LEN;
			rx_deliver(n, a, n->rx_throttled);
			n->rx_throttled = 0;
			continue;
		}
		if (!rx_fill(n, a))
			return;
		r = rx_read(n, &room);
		if (r == -EAGAIN) {
			rx_wait(n);
			return;
		}
		if (r == -ENODATA)
			return;
		if (r < 0) {
			/* Reading again at once would spin on a tap that is
			 * gone. (The stream's ends were logged already.) */
			n->stats.rx_errors++;
			if (!n->rx_broken)
				io_error(n, "read", (int)r);
			n->rx_stopped = true;
			return;
		}
		if ((size_t)r < NET_HDR_LEN || (uint64_t)r > room) {
			/* Larger than the guest's buffers: it would arrive
			 * cut short. */
			n->stats.rx_dropped++;
			continue;
		}
		if (!admit(n, RXQ, (uint64_t)r - NET_HDR_LEN)) {
			n->rx_throttled = (uint32_t)r; /* held, not used yet */
			return;
		}
		n->stats.rx_packets++;
		n->stats.rx_bytes += (uint64_t)r - NET_HDR_LEN;
		rx_deliver(n, a, (uint32_t)r);
	}
	/* The rest after the loop's other completions. */
	if (n->stream && stream_rx_pending(&n->srx))
		rx_again(n);
	else
		rx_wait(n);
}

/* The longest the detour's timer waits. */
#define DETOUR_TICK_NS (250ull * 1000 * 1000)

/* Arm the detour's timer for when it will have a frame by itself, unless
 * one is armed (it will look again when it goes off). A frame due already
 * waits for what stopped rx_pump (RX buffers: the guest's kick; the RX
 * limiter: its timer), not for a timer that would go off at once, again
 * and again. Lock held, loop thread. */
static void detour_arm(struct net *n)
{
	uint64_t due = 0, now, wait;
	int r;

	if (!n->detour.take || !n->active || evloop_pending(&n->detour_timer))
		return;
	n->detour.owed(n->detour.ctx, &due);
	now = now_ns();
	if (due <= now)
		return;
	/* Never moved earlier (a retransmission due sooner than a stalled
	 * reply's end): it goes off at least this often instead. */
	wait = due - now < DETOUR_TICK_NS ? due - now : DETOUR_TICK_NS;
	evloop_ts_ns(&n->detour_ts, wait);
	r = evloop_timeout(n->loop, &n->detour_timer, &n->detour_ts);
	if (r < 0 && r != -ESHUTDOWN && !n->logged_detour) {
		/* The next RX or TX looks again. */
		pr_err("%s: cannot arm the detour's timer: %s", n->id, strerror(-r));
		n->logged_detour = true;
	}
}

static void rx_process(struct net *n, struct virtio_after *a)
{
	rx_pump(n, a);
	detour_arm(n);
}

static void rx_on(struct net *n, int res)
{
	struct virtio_after a = {.reset = false};

	pthread_mutex_lock(&n->lock);
	a.host = n->host;
	if (res >= 0) {
		rx_process(n, &a);
	} else if (res != -ECANCELED && n->active) {
		/* -ECANCELED: the loop is stopping. */
		n->stats.rx_errors++;
		io_error(n, "polling", res);
		n->rx_stopped = true;
	}
	defer_used(n, &a);
	virtio_after_run(&a);
	pthread_mutex_unlock(&n->lock);
}

static void rx_ready(struct ev_op *op, int res)
{
	rx_on(container_of(op, struct net, rx_poll), res);
}

/* The zero timer's -ETIME is its going off. */
static void rx_again_done(struct ev_op *op, int res)
{
	rx_on(container_of(op, struct net, rx_again), res == -ETIME ? 0 : res);
}

/* The detour's timer went off (-ETIME); -ECANCELED: the loop stops. */
static void detour_timer_done(struct ev_op *op, int res)
{
	struct net *n = container_of(op, struct net, detour_timer);
	struct virtio_after a = {.reset = false};

	if (res != -ETIME)
		return;
	pthread_mutex_lock(&n->lock);
	a.host = n->host;
	rx_process(n, &a);
	defer_used(n, &a);
	virtio_after_run(&a);
	pthread_mutex_unlock(&n->lock);
}

/* ---- TX: guest -> tap --------------------------------------------------- */

static void tx_drop(struct net *n, struct virtio_after *a, uint16_t head, const char *why)
{
	n->stats.tx_malformed++;
	if (!n->logged_tx)
		pr_err("%s: dropped a malformed TX packet (%s); counting the rest quietly", n->id,
		       why);
	n->logged_tx = true;
	push(n, a, TXQ, head, 0);
}

static void slot_free(struct net *n, struct tx_slot *s)
{
	s->next = n->tx_free;
	n->tx_free = s;
}

/* A slot's write is over, whatever became of it (counted by the caller):
 * its chain is used unless a reset or net_quiesce has had it, and the slot
 * is free. */
static void tx_finish(struct net *n, struct virtio_after *a, struct tx_slot *s)
{
	n->tx_inflight--;
	s->inflight = false;
	if (s->gen != n->gen || !n->active)
		n->stats.stale_completions++;
	else if (!s->used)
		push(n, a, TXQ, s->head, 0);
	slot_free(n, s);
}

/* The stream: write what is left of the frame at the head of tx_q, unless
 * its write is in flight; once the stream is broken, or the write cannot
 * be queued, finish the slots unsent, in order. A loop on its way out
 * (-ESHUTDOWN) leaves them queued, the stream still framed: a loop run
 * again (the tests') goes on at the next TX kick. */
static void stream_write_head(struct net *n, struct virtio_after *a)
{
	struct tx_slot *s;
	int r;

	while ((s = n->tx_q)) {
		if (evloop_pending(&s->op))
			return;
		if (!n->tx_broken) {
			s->iov = (struct iovec){(void *)s->out.p, s->out.left};
			r = evloop_writev(n->loop, &s->op, n->fd, &s->iov, 1, 0);
			if (r == 0 || r == -ESHUTDOWN)
				return;
			n->stats.tx_errors++;
			io_error(n, "queueing a write", r);
			/* Part of this frame is out: the next one's length
			 * would land inside it. */
			if (s->out.left != STREAM_PREFIX + s->frame_len)
				n->tx_broken = true;
		} else {
			n->stats.tx_errors++;
		}
		n->tx_q = s->next;
		tx_finish(n, a, s);
	}
	n->tx_q_tail = NULL;
}

static void tx_submit(struct net *n, struct virtio_after *a, struct tx_slot *s)
{
	int r;

	if (n->stream) {
		/* In flight from here: in the queue, the slot's copy is all
		 * that is written, as for a tap's write. */
		s->inflight = true;
		s->used = false;
		if (++n->tx_inflight > n->stats.tx_inflight_max)
			n->stats.tx_inflight_max = n->tx_inflight;
		stream_out_start(&s->out, s->buf + NET_HDR_LEN, s->frame_len);
		s->next = NULL;
		if (n->tx_q)
			n->tx_q_tail->next = s;
		else
			n->tx_q = s;
		n->tx_q_tail = s;
		stream_write_head(n, a);
		return;
	}
	r = evloop_writev(n->loop, &s->op, n->fd, &s->iov, 1, 0);
	if (r < 0) {
		n->stats.tx_errors += r != -ESHUTDOWN;
		io_error(n, "queueing a write", r);
		push(n, a, TXQ, s->head, 0);
		slot_free(n, s);
		return;
	}
	s->inflight = true;
	s->used = false;
	if (++n->tx_inflight > n->stats.tx_inflight_max)
		n->stats.tx_inflight_max = n->tx_inflight;
}

/* Copy the popped chain c into a slot, check the copy's header and start
 * writing the copy, or drop the chain. */
static void tx_start(struct net *n, struct virtio_after *a, const struct vq_chain *c)
{
	struct virtio_net_hdr_v1 h;
	enum net_hdr_err e;
	struct tx_slot *s;
	size_t len = 0;

	if (c->writable) {
		tx_drop(n, a, c->head, "device-writable buffers");
		return;
	}
	if (c->readable < NET_HDR_LEN) {
		tx_drop(n, a, c->head, "shorter than the virtio-net header");
		return;
	}
	if (c->readable > TX_BUF_LEN) {
		tx_drop(n, a, c->head, net_hdr_strerror(NET_HDR_LONG));
		return;
	}
	s = n->tx_free;
	n->tx_free = s->next;
	/* The one read of the guest's bytes (see the top). readable is the sum
	 * of the segments' lengths; the bound is sizeof(buf) all the same. */
	for (unsigned i = 0; i < c->nseg && len < sizeof(s->buf); i++) {
		size_t l =
		    c->seg[i].len < sizeof(s->buf) - len ? c->seg[i].len : sizeof(s->buf) - len;
		memcpy(s->buf + len, c->seg[i].host, l);
		len += l;
	}
	memcpy(&h, s->buf, sizeof(h));
	e = net_hdr_check(&h, (uint32_t)(len - NET_HDR_LEN), n->features);
	if (e != NET_HDR_OK) {
		slot_free(n, s);
		tx_drop(n, a, c->head, net_hdr_strerror(e));
		return;
	}
	if (n->detour.take &&
	    n->detour.take(n->detour.ctx, s->buf + NET_HDR_LEN, len - NET_HDR_LEN)) {
		/* The endpoint's: no limiter, not the backend's traffic. */
		n->stats.tx_detoured++;
		slot_free(n, s);
		push(n, a, TXQ, c->head, 0);
		n->detour_owed = true;
		return;
	}
	if (n->stream && len - NET_HDR_LEN > STREAM_FRAME_MAX) {
		slot_free(n, s);
		tx_drop(n, a, c->head, "over 65535 bytes, more than passt takes");
		return;
	}
	s->head = c->head;
	s->iov = (struct iovec){s->buf, len};
	s->frame_len = (uint32_t)(len - NET_HDR_LEN);
	s->gen = n->gen;
	if (!admit(n, TXQ, len - NET_HDR_LEN)) {
		n->tx_throttled = s;
		return;
	}
	tx_submit(n, a, s);
}

/* Pop and send TX chains, as blk.c's process(): notifications stay off
 * while writes are in flight, as each completion looks at the ring again;
 * at most VIRTIO_BUDGET per call (frames dropped or detoured take no slot
 * for long), then ask to be notified again. */
static void tx_pump(struct net *n, struct virtio_after *a)
{
	struct vq_chain c = {.seg = n->segs, .cap = ARRAY_SIZE(n->segs)};
	struct vq *q = n->vq[TXQ];
	int r;

	n->tx_starved = n->tx_polling = false;
	if (n->stream)
		stream_write_head(n, a); /* frames a stopped loop left queued */
	if (!n->active || n->broken)
		return;
	vq_disable_notify(q);
	if (n->tx_throttled) {
		/* The queue waits, notifications off, for this frame. */
		struct tx_slot *s = n->tx_throttled;

		if (ev_wait_armed(&n->thr[TXQ].wait) || !admit(n, TXQ, s->frame_len))
			return;
		n->tx_throttled = NULL;
		tx_submit(n, a, s);
	}
	for (unsigned k = 0;; k++) {
		if (virtio_budget_spent(a, TXQ, k))
			return;
		if (!n->tx_free) {
			n->tx_starved = true;
			return;
		}
		r = vq_pop(q, &c);
		if (r < 0) {
			protocol_error(n, a, "TX queue", r);
			return;
		}
		if (r == 0) {
			if (n->tx_inflight) {
				n->tx_polling = true;
				return;
			}
			vq_enable_notify(q);
			if (!vq_has_work(q))
				return;
			vq_disable_notify(q);
			continue;
		}
		tx_start(n, a, &c);
		if (n->tx_throttled)
			return;
	}
}

/* tx_pump, then RX for what the detour has to answer. */
static void tx_process(struct net *n, struct virtio_after *a)
{
	tx_pump(n, a);
	if (n->detour_owed) {
		n->detour_owed = false;
		rx_process(n, a);
	}
}

/* The stream: a write of the head of tx_q ended. The rest of a frame goes
 * on whatever the generation: a frame cut short would leave the stream
 * unframed. */
static void stream_tx_done(struct net *n, struct virtio_after *a, struct tx_slot *s, int res)
{
	int r = res > 0 ? stream_out_advance(&s->out, (size_t)res) : -EIO;

	/* Cancelled (the loop stops): nothing of this write went, and the
	 * frame waits at the head, as stream_write_head leaves it. */
	if (res == -ECANCELED)
		return;
	if (r == 0) {
		stream_write_head(n, a); /* the rest of the frame */
		return;
	}
	if (r == 1) {
		n->stats.tx_packets++;
		n->stats.tx_bytes += s->frame_len;
	} else {
		/* A socket refuses or ends for good, and a write of 0 bytes
		 * would come back again and again: the stream is over. */
		n->stats.tx_errors++;
		if (!n->logged_io)
			pr_err("%s: %s: write: %s: the stream is broken, no more packets to it",
			       n->id, n->peer, strerror(res < 0 ? -res : EIO));
		n->logged_io = true;
		n->tx_broken = true;
	}
	n->tx_q = s->next;
	tx_finish(n, a, s);
	stream_write_head(n, a);
}

static void tx_done(struct ev_op *op, int res)
{
	struct tx_slot *s = container_of(op, struct tx_slot, op);
	struct net *n = s->n;
	struct virtio_after a = {.reset = false};

	pthread_mutex_lock(&n->lock);
	a.host = n->host;
	if (n->stream) {
		stream_tx_done(n, &a, s, res);
		if (n->tx_starved || n->tx_polling)
			tx_process(n, &a);
		defer_used(n, &a);
		virtio_after_run(&a);
		pthread_mutex_unlock(&n->lock);
		return;
	}
	n->tx_inflight--;
	s->inflight = false;
	if (s->gen != n->gen || !n->active) {
		n->stats.stale_completions++;
	} else {
		/* A full tap (only with a small TUNSETSNDBUF) makes io_uring wait
		 * for room itself: -EAGAIN here is an error like any other. */
		if (res >= 0) {
			n->stats.tx_packets++;
			n->stats.tx_bytes += s->frame_len;
		} else if (res != -ECANCELED) {
			n->stats.tx_errors++;
			io_error(n, "write", res);
		}
		if (!s->used)
			push(n, &a, TXQ, s->head, 0);
	}
	slot_free(n, s);
	if (n->tx_starved || n->tx_polling)
		tx_process(n, &a);
	defer_used(n, &a);
	virtio_after_run(&a);
	pthread_mutex_unlock(&n->lock);
}

/* A direction's timer: its refused frame should pass now, or new limits
 * cut the wait short; or the loop stops. */
static void throttle_expired(struct ev_op *op, int res)
{
	struct throttle *t = container_of(op, struct throttle, wait.op);
	struct net *n = t->n;
	struct virtio_after a = {.reset = false};

	pthread_mutex_lock(&n->lock);
	if (ev_wait_done(&t->wait, res)) {
		a.host = n->host;
		if (t->q == RXQ)
			rx_process(n, &a);
		else
			tx_process(n, &a);
		defer_used(n, &a);
		virtio_after_run(&a);
	}
	pthread_mutex_unlock(&n->lock);
}

/* New limits from another thread: a timer armed for the old ones is
 * cancelled and armed again (throttle_expired); a waiting frame with no
 * timer is looked at now. */
static void kicked(struct ev_op *op, int res)
{
	struct net *n = container_of(op, struct net, kick.op);
	struct virtio_after a = {.reset = false};

	if ((res = ev_kick_take(&n->kick, res)) < 0) {
		if (res != -ECANCELED)
			pr_err("%s: polling its eventfd: %s", n->id, strerror(-res));
		return;
	}
	pthread_mutex_lock(&n->lock);
	a.host = n->host;
	for (unsigned q = 0; q < NQ; q++) {
		if (ev_wait_recheck(&n->thr[q].wait, n->loop))
			continue; /* throttle_expired looks */
		if (q == RXQ && n->rx_throttled)
			rx_process(n, &a);
		else if (q == TXQ && n->tx_throttled)
			tx_process(n, &a);
	}
	defer_used(n, &a);
	virtio_after_run(&a);
	pthread_mutex_unlock(&n->lock);
}

/* ---- the device --------------------------------------------------------- */

static uint64_t net_features(void *dev)
{
	struct net *n = dev;
	uint64_t f = 1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_NET_F_STATUS;

	/* A stream carries no header: nothing partial or segmented may
	 * cross it. */
	if (!n->stream)
		f |= 1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_GUEST_CSUM |
		     1ull << VIRTIO_NET_F_HOST_TSO4 | 1ull << VIRTIO_NET_F_HOST_TSO6 |
		     1ull << VIRTIO_NET_F_GUEST_TSO4 | 1ull << VIRTIO_NET_F_GUEST_TSO6;

	if (n->has_mtu)
		f |= 1ull << VIRTIO_NET_F_MTU;
	return n->has_mac ? f | 1ull << VIRTIO_NET_F_MAC : f;
}

static void net_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	const struct net *n = dev;

	/* cfg never changes after create: no lock. */
	virtio_config_copy(&n->cfg, sizeof(n->cfg), off, data, len);
}

static void net_config_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	/* The MAC is writable only for legacy drivers, which we do not take. */
	(void)dev, (void)off, (void)data, (void)len;
}

/* Lock held: forget every chain and packet of the old generation. Writes
 * in flight keep their slots, which hold all they read, until they
 * complete. */
static void drop_queue_state(struct net *n)
{
	n->gen++;
	n->held_first = n->held_count = 0;
	n->held_bytes = 0;
	n->held_behind = false;
	n->rx_waiting = n->rx_stopped = false;
	n->tx_starved = n->tx_polling = false;
	n->used_pending = 0;
	/* Waiting frames: the RX one is in chains just forgotten; the TX one
	 * is a slot that was never written. A timer left armed finds nothing. */
	n->rx_throttled = 0;
	if (n->tx_throttled)
		slot_free(n, n->tx_throttled);
	n->tx_throttled = NULL;
}

static int net_activate(void *dev, uint64_t features, struct vq *queues,
			const struct virtio_host *host)
{
	struct net *n = dev;
	bool gso = features & (1ull << VIRTIO_NET_F_GUEST_TSO4 | 1ull << VIRTIO_NET_F_GUEST_TSO6);
	unsigned offloads = tap_offloads(features);
	int err;

	for (unsigned q = 0; q < NQ; q++)
		if (!queues[q].ready || queues[q].size > NET_QUEUE_MAX)
			return -EINVAL;
	/* The guest takes partial checksums and GSO packets only if it said
	 * so: the tap then hands them over as they are. */
	if (n->is_tap && (err = tap_set_offloads(n->fd, offloads)) < 0) {
		pr_err("%s: %s: TUNSETOFFLOAD %#x: %s", n->id, n->peer, offloads, strerror(-err));
		return err;
	}
	pthread_mutex_lock(&n->lock);
	drop_queue_state(n);
	n->features = features;
	n->vq[RXQ] = &queues[RXQ];
	n->vq[TXQ] = &queues[TXQ];
	n->host = *host;
	n->rx_room_want = RX_ROOM_GSO;
	/* A stream's frames are as long as passt's MTU (65520 by default),
	 * with no GSO to say so; a tap's as the mtu offered, if larger than
	 * Ethernet's. */
	n->rx_room_min = gso || n->stream ? RX_ROOM_GSO : RX_ROOM_PLAIN;
	if (!gso && !n->stream && n->has_mtu && le16toh(n->cfg.mtu) > ETH_DATA_LEN)
		n->rx_room_min = RX_ROOM_PLAIN - ETH_DATA_LEN + le16toh(n->cfg.mtu);
	n->active = true;
	n->broken = false;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

static void net_reset(void *dev)
{
	struct net *n = dev;
	int err;

	/* RX reads run to the end with the lock held, so once we have it none
	 * is under way and none will start into the chains forgotten here. A
	 * poll left armed is harmless (see rx_poll in struct net). Writes end
	 * on their own, reading only their slots' copies, and find the
	 * generation changed. */
	pthread_mutex_lock(&n->lock);
	drop_queue_state(n);
	if (n->detour.reset)
		n->detour.reset(n->detour.ctx);
	n->active = n->broken = false;
	n->vq[RXQ] = n->vq[TXQ] = NULL;
	n->host = (struct virtio_host){0};
	pthread_mutex_unlock(&n->lock);
	if (n->is_tap && (err = tap_set_offloads(n->fd, 0)) < 0)
		pr_debug("%s: %s: TUNSETOFFLOAD 0: %s", n->id, n->peer, strerror(-err));
}

static void net_notify(void *dev, unsigned q)
{
	struct net *n = dev;
	struct virtio_after a = {.reset = false};

	pthread_mutex_lock(&n->lock);
	a.host = n->host;
	if (q == RXQ) {
		n->rx_stopped = false;
		rx_process(n, &a);
	} else if (q == TXQ) {
		tx_process(n, &a);
	}
	virtio_after_run(&a);
	pthread_mutex_unlock(&n->lock);
}

/* ---- snapshot ------------------------------------------------------------ */

/* Lock held: give the held RX chains back to the guest. They are the last
 * chains popped and none popped after them was used (unless held_behind),
 * so vq_discard rewinds the avail index over exactly them. */
static void rx_give_back(struct net *n, struct virtio_after *a)
{
	if (n->rx_throttled) {
		/* A packet read into the first held chains that the limiter
		 * held back goes with them: the guest's buffers come back
		 * unused and the packet is lost, as on a link that drops it
		 * (the guest's TCP sends it again). */
		n->stats.rx_dropped++;
		n->rx_throttled = 0;
	}
	if (!n->held_count || n->broken) {
		/* Broken: the driver must reset the device, which forgets the
		 * queue anyway. */
	} else if (n->held_behind || vq_discard(n->vq[RXQ], (uint16_t)n->held_count) < 0) {
		/* Only a guest that offers RX buffers no packet can use gets
		 * here (Linux never does): its held buffers are used empty,
		 * which Linux drops as a runt and offers again. */
		for (unsigned i = 0; i < n->held_count; i++)
			push(n, a, RXQ, held_at(n, i)->head, 0);
	}
	n->held_first = n->held_count = 0;
	n->held_bytes = 0;
	n->held_behind = false;
}

/* Lock held: leave no TX chain popped and not used. A write still in
 * flight (started after net_drain, or one that never finished) has its
 * chain used now: the slot holds all it sends, so the guest's buffer is
 * free whether or not the write ends. The frame the limiter holds back is
 * given back, not sent: it is the last chain popped, so vq_discard offers
 * it again and the device takes it anew after the resume, through the
 * limiter (sending it now would pass the limit, and its write would still
 * be in flight in the state saved). */
static void tx_give_back(struct net *n, struct virtio_after *a)
{
	for (unsigned i = 0; i < TX_SLOTS && !n->broken; i++) {
		struct tx_slot *s = &n->slots[i];

		if (s->inflight && s->gen == n->gen && !s->used) {
			s->used = true;
			push(n, a, TXQ, s->head, 0);
		}
	}
	if (!n->tx_throttled)
		return;
	if (!n->broken && vq_discard(n->vq[TXQ], 1) < 0)
		push(n, a, TXQ, n->tx_throttled->head, 0); /* cannot happen: dropped */
	slot_free(n, n->tx_throttled);
	n->tx_throttled = NULL;
}

void net_quiesce(struct net *n)
{
	struct virtio_after a = {.reset = false};

	pthread_mutex_lock(&n->lock);
	a.host = n->host;
	if (n->active) {
		rx_give_back(n, &a);
		tx_give_back(n, &a);
	}
	/* Interrupt decisions left for the end of a batch the loop will
	 * not finish before the state is saved: now. */
	a.used = n->active ? a.used | n->used_pending : 0;
	n->used_pending = 0;
	virtio_after_run(&a);
	pthread_mutex_unlock(&n->lock);
}

int net_drain(struct net *n, uint64_t deadline_ns, char *err, size_t errlen)
{
	const struct timespec step = {.tv_nsec = 200 * 1000};
	unsigned left;

	for (;;) {
		pthread_mutex_lock(&n->lock);
		left = n->tx_inflight;
		pthread_mutex_unlock(&n->lock);
		if (!left)
			return 0;
		if (now_ns() >= deadline_ns)
			break;
		nanosleep(&step, NULL);
	}
	if (errlen)
		snprintf(err, errlen, "%s: %u packet%s still being written to %s", n->id, left,
			 left == 1 ? "" : "s", n->peer);
	return -ETIMEDOUT;
}

const struct virtio_dev_ops net_ops = {
    .device_id = VIRTIO_ID_NET,
    .num_queues = NQ,
    .queue_max = NET_QUEUE_MAX,
    .features = net_features,
    .config_read = net_config_read,
    .config_write = net_config_write,
    .activate = net_activate,
    .reset = net_reset,
    .notify = net_notify,
};

int net_create_fd(struct net **out, const struct net_params *p, int fd)
{
	struct net *n;

	*out = NULL;
	if (!p->loop || fd < 0) {
		close_fd(&fd);
		return -EINVAL;
	}
	if (p->mtu && (p->mtu < 68 || p->mtu > 65535)) {
		pr_err("%s: MTU %u: expected 68 to 65535", p->id ? p->id : "net", p->mtu);
		close_fd(&fd);
		return -EINVAL;
	}
	/* The slots' 4 MiB are fresh zero pages from mmap (glibc maps an
	 * allocation this large on its own): faulted in as packets fill them. */
	n = calloc(1, sizeof(*n));
	if (!n || !(n->held = calloc(NET_QUEUE_MAX, sizeof(*n->held))) ||
	    !(n->slots = calloc(TX_SLOTS, sizeof(*n->slots))) ||
	    (p->backend == NET_BACKEND_USER &&
	     stream_rx_init(&n->srx, STREAM_RX_BUF, NET_FRAME_MAX) < 0)) {
		if (n) {
			free(n->slots);
			free(n->held);
		}
		free(n);
		close_fd(&fd);
		return -ENOMEM;
	}
	n->fd = fd;
	int err = ev_kick_init(&n->kick, kicked);

	if (err < 0) {
		pr_err("%s: eventfd: %s", p->id ? p->id : "net", strerror(-err));
		stream_rx_free(&n->srx);
		free(n->slots);
		free(n->held);
		free(n);
		close_fd(&fd);
		return err;
	}
	for (unsigned q = 0; q < NQ; q++) {
		const struct ratelimit_cfg *c =
		    q == RXQ ? &p->rx_rate_limiter : &p->tx_rate_limiter;
		struct throttle *t = &n->thr[q];

		if (ratelimit_init(&t->rl, c, now_ns()) < 0) {
			pr_err("%s: %s rate limiter: a value is over %lld", p->id ? p->id : "net",
			       q == RXQ ? "rx" : "tx", (long long)INT64_MAX);
			ev_kick_close(&n->kick);
			stream_rx_free(&n->srx);
			free(n->slots);
			free(n->held);
			free(n);
			close_fd(&fd);
			return -EINVAL;
		}
		t->on = ratelimit_enabled(&t->rl);
		t->n = n;
		t->q = q;
		ev_wait_init(&t->wait, throttle_expired);
	}
	n->stream = p->backend == NET_BACKEND_USER;
	n->is_tap = !n->stream && tap_is_tap(fd);
	n->passt = -1;
	n->loop = p->loop;
	n->detour = p->detour;
	snprintf(n->id, sizeof(n->id), "%s", p->id ? p->id : "net");
	if (n->stream)
		snprintf(n->peer, sizeof(n->peer), "the stream socket");
	else
		snprintf(n->peer, sizeof(n->peer), "tap %s", p->tap ? p->tap : "(fd)");
	n->rx_poll = (struct ev_op){.done = rx_ready};
	n->rx_again = (struct ev_op){.done = rx_again_done};
	n->detour_timer = (struct ev_op){.done = detour_timer_done};
	n->used_op = (struct ev_op){.done = used_batch};
	for (unsigned i = 0; i < TX_SLOTS; i++) {
		n->slots[i] = (struct tx_slot){.op = {.done = tx_done}, .n = n};
		slot_free(n, &n->slots[i]);
	}
	if (p->mac) {
		n->has_mac = true;
		memcpy(n->cfg.mac, p->mac, sizeof(n->cfg.mac));
	}
	n->cfg.status = htole16(VIRTIO_NET_S_LINK_UP);
	if (p->mtu || n->stream) {
		/* passt's own MTU, unless told otherwise: with no
		 * segmentation offload, large frames are the way to few. */
		n->has_mtu = true;
		n->cfg.mtu = htole16((uint16_t)(p->mtu ? p->mtu : NET_USER_MTU));
	}
	pthread_mutex_init(&n->lock, NULL);
	*out = n;
	return 0;
}

int net_create(struct net **out, const struct net_params *p)
{
	pid_t pid;
	int fd, err;

	*out = NULL;
	if (!p->loop || (p->backend == NET_BACKEND_TAP && !p->tap))
		return -EINVAL;
	if (p->backend == NET_BACKEND_USER && p->user_fd > 0) {
		if ((err = passt_adopt(p->id ? p->id : "net", p->user_fd)) < 0)
			return err;
		if ((err = net_create_fd(out, p, p->user_fd)) < 0)
			return err;
		snprintf((*out)->peer, sizeof((*out)->peer), "passt (fd %d)", p->user_fd);
		return 0;
	}
	if (p->backend == NET_BACKEND_USER) {
		if ((err = passt_start(p->id ? p->id : "net", &p->user, PASST_TIMEOUT_MS, &fd,
				       &pid)) < 0)
			return err;
		/* A failure below closes fd, and passt quits. */
		if ((err = net_create_fd(out, p, fd)) < 0)
			return err;
		(*out)->passt = pid;
		snprintf((*out)->peer, sizeof((*out)->peer), "passt (pid %d)", (int)pid);
		return 0;
	}
	if ((err = tap_open(p->tap, &fd)) < 0)
		return err;
	return net_create_fd(out, p, fd);
}

/* Whether any TX slot's write is with the kernel. (Stream frames a stopped
 * loop left queued are not, though they count in tx_inflight.) */
static bool tx_ops_pending(const struct net *n)
{
	for (unsigned i = 0; i < TX_SLOTS; i++)
		if (evloop_pending(&n->slots[i].op))
			return true;
	return false;
}

void net_destroy(struct net *n)
{
	if (!n)
		return;
	/* passt quits at its socket's end; flint, under its seccomp filter
	 * by now, does not wait for it (once flint has exited, init reaps it). */
	close_fd(&n->fd);
	ev_kick_close(&n->kick);
	if (tx_ops_pending(n) || evloop_pending(&n->rx_poll) || evloop_pending(&n->kick.op) ||
	    evloop_pending(&n->thr[RXQ].wait.op) || evloop_pending(&n->thr[TXQ].wait.op) ||
	    evloop_pending(&n->rx_again) || evloop_pending(&n->detour_timer)) {
		/* The ring still holds ops of ours, and the kernel may still
		 * read the writes' buffers: leak rather than free (the
		 * detour's too, which the timer's handler would use). */
		pr_err("%s: destroyed with I/O in flight", n->id);
		return;
	}
	if (n->detour.destroy)
		n->detour.destroy(n->detour.ctx);
	pthread_mutex_destroy(&n->lock);
	stream_rx_free(&n->srx);
	free(n->slots);
	free(n->held);
	free(n);
}

void net_get_stats(struct net *n, struct net_stats *out)
{
	pthread_mutex_lock(&n->lock);
	*out = n->stats;
	out->rx_rate_limiter_throttled = n->thr[RXQ].rl.throttled;
	out->tx_rate_limiter_throttled = n->thr[TXQ].rl.throttled;
	pthread_mutex_unlock(&n->lock);
}

int net_set_ratelimit(struct net *n, const struct ratelimit_cfg *rx, const struct ratelimit_cfg *tx)
{
	const struct ratelimit_cfg *cfg[NQ] = {[RXQ] = rx, [TXQ] = tx};
	struct ratelimit rl[NQ];
	uint64_t now;
	int err;

	pthread_mutex_lock(&n->lock);
	now = now_ns();
	/* Both checked before either changes. */
	for (unsigned q = 0; q < NQ; q++) {
		rl[q] = n->thr[q].rl;
		if (cfg[q] && ratelimit_update(&rl[q], cfg[q], now) < 0) {
			pthread_mutex_unlock(&n->lock);
			return -EINVAL;
		}
	}
	for (unsigned q = 0; q < NQ; q++) {
		n->thr[q].rl = rl[q];
		n->thr[q].on = ratelimit_enabled(&rl[q]);
	}
	if ((n->rx_throttled || n->tx_throttled) && (err = ev_kick_send(&n->kick)) < 0)
		pr_err("%s: waking the event loop: %s", n->id, strerror(-err));
	pthread_mutex_unlock(&n->lock);
	return 0;
}

void net_save_limits(const struct net *n, struct ratelimit_state *rx, struct ratelimit_state *tx)
{
	uint64_t now = now_ns();

	ratelimit_save(&n->thr[RXQ].rl, now, rx);
	ratelimit_save(&n->thr[TXQ].rl, now, tx);
}

int net_restore_limits(struct net *n, const struct ratelimit_state *rx,
		       const struct ratelimit_state *tx)
{
	const struct ratelimit_state *st[NQ] = {[RXQ] = rx, [TXQ] = tx};
	struct ratelimit rl[NQ];
	uint64_t now;
	int err = 0;

	pthread_mutex_lock(&n->lock);
	now = now_ns();
	/* Both checked before either changes. */
	for (unsigned q = 0; q < NQ && !err; q++) {
		rl[q] = n->thr[q].rl;
		err = ratelimit_resume(&rl[q], st[q], now);
	}
	for (unsigned q = 0; q < NQ && !err; q++) {
		n->thr[q].rl = rl[q];
		n->thr[q].on = ratelimit_enabled(&rl[q]);
	}
	/* A reset in place: a timer armed for the buckets before. */
	if (!err && (ev_wait_armed(&n->thr[RXQ].wait) || ev_wait_armed(&n->thr[TXQ].wait)) &&
	    ev_kick_send(&n->kick) < 0)
		pr_err("%s: cannot wake the event loop for the restored limits", n->id);
	pthread_mutex_unlock(&n->lock);
	return err;
}

void net_get_ratelimit(struct net *n, struct ratelimit_cfg *rx, struct ratelimit_cfg *tx)
{
	pthread_mutex_lock(&n->lock);
	if (rx)
		*rx = (struct ratelimit_cfg){.bandwidth = n->thr[RXQ].rl.bandwidth.cfg,
					     .ops = n->thr[RXQ].rl.ops.cfg};
	if (tx)
		*tx = (struct ratelimit_cfg){.bandwidth = n->thr[TXQ].rl.bandwidth.cfg,
					     .ops = n->thr[TXQ].rl.ops.cfg};
	pthread_mutex_unlock(&n->lock);
}
