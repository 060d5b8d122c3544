/* virtio-blk front end; see blk.h. Requests are popped while the pool has a
 * free slot, parsed (blk_req.c), answered at once when no I/O is needed, and
 * otherwise handed to the engine (blk_io.c); each finishes into the used
 * ring in completion order.
 *
 * Reset and guest memory. The I/O goes straight between the image and guest
 * memory, so a reset must not return while any of it is under way (virtio.h:
 * after reset the device touches no guest memory). The transport calls
 * reset on a vCPU thread holding its dev_lock, which the event-loop thread
 * takes for every queue notification: a reset that waited for the loop
 * thread to reap completions could wait forever. So each drive has its own
 * io_uring (blk_ring.c), which the loop only polls; every use of it is under
 * b->lock, and reset, holding b->lock, cancels what the kernel can cancel and
 * waits in io_uring_enter for the rest, reaping the completions itself. The
 * kernel finishes a request by task work in the thread that submitted it,
 * which runs even while that thread is blocked on a mutex (the ring has no
 * COOP_TASKRUN), so nothing on this wait needs user space to move.
 *
 * A submission that fails (io_uring_enter short of memory: -EAGAIN,
 * -ENOMEM) leaves its SQEs queued in the drive's ring, where no poll sees
 * them and notifications stay off while they count as in flight: nothing
 * would submit them again. So a failure arms a timer on the loop, 1 ms
 * doubling to 100 ms while failures last, whose handler submits again; the
 * first failure is logged, and the recovery. A reset (on a vCPU thread,
 * which cannot cancel a loop op) leaves the timer armed: its drain submits
 * and waits for what was queued, and the timer then finds nothing to
 * submit. The loop cancels the timer when it stops, before blk_destroy.
 *
 * Weighed and not taken: bounce buffers (the I/O never sees guest memory; a
 * completion copies under b->lock if its generation is current) cost a
 * memcpy of every byte read or written, about 40 us per MiB, and host
 * memory that only splitting large requests would bound (a full queue of
 * large requests is hundreds of MiB). A cancel on the loop's shared ring
 * cannot be waited for off the loop thread; IORING_REGISTER_SYNC_CANCEL
 * does not wait for a buffered read parked on a page, which no cancel table
 * holds (and the loop's ring refuses io_uring_register()). Remapping guest
 * memory under in-flight I/O does not stop O_DIRECT, whose pages are
 * pinned. The ring of its own costs the common path no measurable time (the
 * same io_uring_enter calls per request as the shared ring); a reset with
 * I/O in flight blocks its vCPU until that I/O ends, as QEMU's drain on
 * reset does. */
#include "blk/blk.h"

#include <errno.h>
#include <linux/time_types.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blk/blk_io.h"
#include "blk/blk_req.h"
#include "blk/blk_ring.h"
#include "core/evwait.h"

/* One request at the host. */
struct slot {
	struct blk_io io;
	struct blk *b;
	struct slot *next_free;
	uint32_t gen;	    /* b->gen when submitted */
	uint16_t head;	    /* chain to give back */
	uint32_t type;	    /* for the byte counters */
	uint8_t *status;    /* last writable byte of the chain */
	uint32_t used_ok;   /* used length on success */
	struct blk_req req; /* parsed; its iov is iov[] */
	struct iovec iov[BLK_QUEUE_MAX];
};

struct blk {
	struct blk_disk disk;
	struct evloop *loop;
	struct ev_op ring_op;  /* the loop's poll of the ring's fd */
	struct ev_op retry_op; /* the timer that submits again after a failure */
	char path[64];	       /* for messages, possibly truncated */
	char name[64];	       /* the drive's id (or path), for the drain's error */
	bool read_only, direct, no_flush, keep_blocks;
	uint64_t capacity; /* atomic: blk_set_backing changes it */
	uint8_t id[VIRTIO_BLK_ID_BYTES];
	/* Sent by another thread (blk_set_ratelimit, blk_set_backing) to
	 * have the loop look at the queue again (core/evwait.h). */
	struct ev_kick kick;

	pthread_mutex_t cfg_lock; /* cfg: read by vCPUs, capacity changed by a swap */
	struct virtio_blk_config cfg;

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t idle;  /* with lock: stats.inflight fell to 0 (blk_drain) */
	bool active;	      /* activated, not reset */
	bool broken;	      /* needs_reset asked: pop nothing more */
	bool starved;	      /* stopped popping for want of a slot */
	bool polling;	      /* notifications left off while I/O is in flight */
	bool logged;	      /* a protocol error was logged */
	uint32_t gen;	      /* bumped by activate and reset */
	struct vq *vq;
	struct virtio_host host;
	struct blk_ring *ring;		   /* all I/O; used only with the lock held */
	struct __kernel_timespec retry_ts; /* retry_op's; read at the loop's next turn */
	uint32_t retry_ms;		   /* next retry's delay; 0: submissions work */
	bool retry_unarmed_logged;	   /* this failure run could not arm retry_op */
	struct virtio_after *after;	   /* where completions being reaped report */
	struct blk_geom geom;
	bool sync; /* FLUSH offered but not negotiated: writes stable at completion */
	/* Slots [fresh, BLK_QUEUE_MAX) were never used and never touched: a
	 * slot is 4 KiB (its iov[]), and a guest that keeps few requests in
	 * flight leaves most of the megabyte unpaged. Used ones go to free. */
	struct slot *pool, *free;
	unsigned fresh;
	/* Completions push to the used ring at once but ask the transport for
	 * an interrupt once per event-loop batch: many requests, one decision. */
	struct ev_op used_op;
	bool used_pending;
	struct vq_seg segs[BLK_QUEUE_MAX];
	struct blk_stats stats;

	/* Rate limiting (see blk.h). throttled: the request the limiter
	 * refused, popped and parsed, first to go; rl_wait: the one timer
	 * that brings it back, cut short by new limits (core/evwait.h). */
	struct ratelimit rl;
	bool rl_on;
	struct slot *throttled;
	struct ev_wait rl_wait;
	bool rl_unarmed_logged;
};

static void protocol_error(struct blk *b, struct virtio_after *a, const char *what, int err)
{
	b->stats.protocol_errors++;
	b->broken = true;
	a->reset = true;
	if (!b->logged)
		pr_err("drive %s: guest broke the queue (%s: %s); device needs reset", b->path,
		       what, strerror(-err));
	b->logged = true;
}

static void push(struct blk *b, struct virtio_after *a, uint16_t head, uint32_t len)
{
	if (vq_push(b->vq, head, len) == 0)
		a->used = 1; /* queue 0 */
}

/* Answer a request that needs no I/O and free its slot. */
static void answer(struct blk *b, struct virtio_after *a, struct slot *s, uint8_t status,
		   uint32_t len)
{
	*s->status = status;
	if (status == VIRTIO_BLK_S_IOERR)
		b->stats.io_errors++;
	else if (status == VIRTIO_BLK_S_UNSUPP)
		b->stats.unsupported++;
	push(b, a, s->head, len);
	s->next_free = b->free;
	b->free = s;
}

static void count_type(struct blk_stats *st, uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		st->reads++;
		break;
	case VIRTIO_BLK_T_OUT:
		st->writes++;
		break;
	case VIRTIO_BLK_T_FLUSH:
		st->flushes++;
		break;
	case VIRTIO_BLK_T_GET_ID:
		st->get_ids++;
		break;
	case VIRTIO_BLK_T_DISCARD:
		st->discards++;
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		st->write_zeroes++;
		break;
	}
}

static void io_done(struct blk_io *io, int res);
static void ring_ready(struct ev_op *op, int res);
static void retry_submit(struct ev_op *op, int res);
static void rl_expired(struct ev_op *op, int res);
static void kicked(struct ev_op *op, int res);

/* Have the loop poll the kick, once and for all. Loop thread. */
static void arm_kick(struct blk *b)
{
	int err = ev_kick_arm(&b->kick, b->loop);

	if (err < 0 && err != -ESHUTDOWN)
		pr_err("drive %s: polling its eventfd: %s", b->path, strerror(-err));
}

/* From another thread: have the loop look at the queue again. */
static void kick(struct blk *b)
{
	int err = ev_kick_send(&b->kick);

	if (err < 0)
		pr_err("drive %s: waking the event loop: %s", b->path, strerror(-err));
}

static const enum blk_io_kind io_kind[] = {
    [BLK_OP_READ] = BLK_IO_READ,
    [BLK_OP_WRITE] = BLK_IO_WRITE,
    [BLK_OP_FLUSH] = BLK_IO_FLUSH,
    [BLK_OP_DISCARD] = BLK_IO_DISCARD,
    [BLK_OP_WRITE_ZEROES] = BLK_IO_WRITE_ZEROES,
};

/* The bytes request r costs the limiter: a read's or a write's data (as
 * Firecracker counts), and a write-zeroes' unless it may unmap (the host
 * writes them where it cannot punch). */
static uint64_t req_bytes(const struct blk_req *r)
{
	bool data = r->op == BLK_OP_READ || r->op == BLK_OP_WRITE ||
		    (r->op == BLK_OP_WRITE_ZEROES && !r->unmap);

	return data ? r->len : 0;
}

/* Whether the limiter lets request r go now: one op and req_bytes.
 * Requests answered without I/O because they are malformed cost nothing.
 * Lock held. */
static bool admit(struct blk *b, const struct blk_req *r)
{
	if (!b->rl_on || r->op == BLK_OP_NONE)
		return true;
	return ratelimit_consume(&b->rl, now_ns(), req_bytes(r), 1);
}

/* The limiter refused b->throttled: arm rl_wait for when it will not,
 * unless it is armed already. Lock held, loop thread. */
static void arm_throttle(struct blk *b)
{
	const struct blk_req *r = &b->throttled->req;
	int err;

	arm_kick(b);
	if (ev_wait_armed(&b->rl_wait))
		return;
	err =
	    ev_wait_arm(&b->rl_wait, b->loop, ratelimit_wait_ns(&b->rl, now_ns(), req_bytes(r), 1));
	if (err < 0 && err != -ESHUTDOWN && !b->rl_unarmed_logged) {
		/* The next notification or completion tries again. */
		pr_err("drive %s: cannot arm the rate limiter's timer: %s", b->path,
		       strerror(-err));
		b->rl_unarmed_logged = true;
	}
}

/* Run the parsed request in slot s: answer it at once or start its I/O. */
static void run(struct blk *b, struct virtio_after *a, struct slot *s)
{
	const struct blk_req *r = &s->req;
	size_t n;
	int err;

	count_type(&b->stats, r->type);
	switch (r->op) {
	case BLK_OP_NONE:
		answer(b, a, s, r->status, 1);
		return;
	case BLK_OP_GET_ID:
		n = blk_iov_fill(r->iov, r->niov, b->id, r->len);
		answer(b, a, s, VIRTIO_BLK_S_OK, (uint32_t)n + 1);
		return;
	case BLK_OP_FLUSH:
		break;
	default:
		/* Parsed against the capacity of the time; a request that
		 * waited for the limiter may meet a smaller image since. */
		if (r->off + r->len > b->geom.capacity << BLK_SECTOR_SHIFT) {
			answer(b, a, s, VIRTIO_BLK_S_IOERR, 1);
			return;
		}
		break;
	}
	s->io = (struct blk_io){
	    .kind = io_kind[r->op],
	    .off = r->off,
	    .len = r->len,
	    .iov = r->iov,
	    .niov = r->niov,
	    .unmap = r->unmap,
	    .keep = b->keep_blocks,
	    .sync = b->sync && (r->op == BLK_OP_WRITE || r->op == BLK_OP_WRITE_ZEROES),
	    .done = io_done,
	};
	/* A read writes its data and the status; the rest only the status. */
	s->used_ok = r->op == BLK_OP_READ ? (uint32_t)r->len + 1 : 1;
	s->gen = b->gen;
	err = blk_io_submit(b->ring, b->disk.fd, &s->io);
	if (err) {
		answer(b, a, s, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	b->stats.write_syncs += s->io.sync;
	if (++b->stats.inflight > b->stats.inflight_max)
		b->stats.inflight_max = b->stats.inflight;
}

/* Start the popped chain c in slot s (taken off the free list), or keep it
 * in b->throttled if the limiter says not yet. */
static void start(struct blk *b, struct virtio_after *a, struct slot *s, const struct vq_chain *c)
{
	int err;

	s->head = c->head;
	err = blk_parse(&b->geom, c, &s->req, s->iov, ARRAY_SIZE(s->iov));
	if (err) {
		/* No status byte: give the chain back empty and stop. */
		protocol_error(b, a, "request without a status byte", err);
		push(b, a, c->head, 0);
		s->next_free = b->free;
		b->free = s;
		return;
	}
	s->status = s->req.status_byte;
	s->type = s->req.type;
	if (!admit(b, &s->req)) {
		b->throttled = s;
		arm_throttle(b);
		return;
	}
	run(b, a, s);
}

/* A slot off the free list, else a fresh one; the caller checked there is
 * one. */
static struct slot *take_slot(struct blk *b)
{
	struct slot *s = b->free;

	if (s) {
		b->free = s->next_free;
		return s;
	}
	s = &b->pool[b->fresh++];
	s->b = b;
	return s;
}

/* Pop and start requests until the queue is empty or the pool is, or
 * VIRTIO_BUDGET were taken (requests answered at once give their slot back
 * at once: an unsupported type, GET_ID, one out of range), then ask to be
 * notified again. Lock held, loop thread. Notifications stay off while
 * draining, and stay off while requests are in flight: each completion
 * looks at the ring again, so the guest need not kick for requests it adds
 * meanwhile (fewer exits under load). Once idle, they go back on and the
 * ring is checked once more, since the guest may have added a chain before
 * it saw them on. */
static void process(struct blk *b, struct virtio_after *a)
{
	struct vq_chain c = {.seg = b->segs, .cap = ARRAY_SIZE(b->segs)};
	struct slot *s;
	int r;

	b->starved = b->polling = false;
	if (!b->active || b->broken)
		return;
	vq_disable_notify(b->vq);
	if (b->throttled) {
		/* The queue stays as it is, notifications off, until the
		 * limiter lets its first request go. */
		s = b->throttled;
		if (!admit(b, &s->req)) {
			arm_throttle(b);
			return;
		}
		b->throttled = NULL;
		run(b, a, s);
	}
	for (unsigned n = 0;; n++) {
		if (virtio_budget_spent(a, 0, n))
			return;
		if (!b->free && b->fresh == BLK_QUEUE_MAX) {
			b->starved = true; /* a completion resumes us */
			return;
		}
		r = vq_pop(b->vq, &c);
		if (r < 0) {
			protocol_error(b, a, "bad chain", r);
			return;
		}
		if (r == 0) {
			if (b->stats.inflight) {
				b->polling = true; /* a completion looks again */
				return;
			}
			vq_enable_notify(b->vq);
			if (!vq_has_work(b->vq))
				return;
			vq_disable_notify(b->vq);
			continue;
		}
		s = take_slot(b);
		start(b, a, s, &c);
		if (b->broken || b->throttled)
			return;
	}
}

/* One request's I/O ended. Lock held: called by blk_ring_reap (ring_ready)
 * or blk_ring_drain (reset, destroy), which bumped the generation first. */
static void io_done(struct blk_io *io, int res)
{
	struct slot *s = container_of(io, struct slot, io);
	struct blk *b = s->b;

	if (--b->stats.inflight == 0)
		pthread_cond_broadcast(&b->idle); /* blk_drain sees it once we unlock */
	if (s->gen != b->gen || !b->active || !b->after) {
		/* Reset since: the guest has forgotten this request. (Only
		 * ring_ready reaps with b->after set; the drains come after a
		 * generation change.) */
		b->stats.stale_completions++;
		s->next_free = b->free;
		b->free = s;
		return;
	}
	if (res == 0 && s->type == VIRTIO_BLK_T_IN)
		b->stats.bytes_read += io->len;
	else if (res == 0 && s->type == VIRTIO_BLK_T_OUT)
		b->stats.bytes_written += io->len;
	answer(b, b->after, s, res == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR,
	       res == 0 ? s->used_ok : 1);
}

#define RETRY_MIN_MS 1
#define RETRY_MAX_MS 100

/* blk_ring_submit failed with err: what did not go stays queued, so arm
 * retry_op to submit again (see the top of this file). Logs the first
 * failure of a run, not each retry. Lock held, loop thread. */
static void submit_failed(struct blk *b, int err)
{
	int r;

	if (!b->retry_ms) {
		pr_err("drive %s: submitting I/O: %s; retrying", b->path, strerror(-err));
		b->retry_ms = RETRY_MIN_MS;
	}
	if (evloop_pending(&b->retry_op))
		return;
	b->retry_ts = (struct __kernel_timespec){.tv_nsec = b->retry_ms * 1000000L};
	r = evloop_timeout(b->loop, &b->retry_op, &b->retry_ts);
	if (r == 0) {
		b->retry_ms = b->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : b->retry_ms * 2;
	} else if (r != -ESHUTDOWN && !b->retry_unarmed_logged) {
		/* The next notification or completion submits again. */
		pr_err("drive %s: cannot arm the I/O retry: %s", b->path, strerror(-r));
		b->retry_unarmed_logged = true;
	}
}

/* Hand what process() and the completions queued to the kernel, and make
 * sure the loop polls the ring while anything is in flight. The poll is
 * armed here, on the loop thread, rather than at create: the loop cancels
 * every op when it stops, and a drive created for a loop that never runs
 * leaves nothing in it. Lock held. */
static void submit(struct blk *b)
{
	int err = blk_ring_submit(b->ring);

	if (err < 0) {
		submit_failed(b, err);
	} else if (b->retry_ms) {
		pr_info("drive %s: submitting I/O again", b->path);
		b->retry_ms = 0;
		b->retry_unarmed_logged = false;
	}
	arm_kick(b);
	if (blk_ring_pending(b->ring) && !evloop_pending(&b->ring_op)) {
		err = evloop_poll(b->loop, &b->ring_op, blk_ring_fd(b->ring), POLLIN);
		if (err < 0 && err != -ESHUTDOWN)
			pr_err("drive %s: polling its I/O ring: %s", b->path, strerror(-err));
	}
}

/* The ring has completions (or the loop is stopping: res -ECANCELED). */
static void ring_ready(struct ev_op *op, int res)
{
	struct blk *b = container_of(op, struct blk, ring_op);
	struct virtio_after a = {.used = 0};

	if (res < 0 && res != -ECANCELED)
		pr_err("drive %s: polling its I/O ring: %s", b->path, strerror(-res));
	if (res < 0)
		return; /* the next notification polls again */
	pthread_mutex_lock(&b->lock);
	a.host = b->host;
	b->after = &a;
	blk_ring_reap(b->ring);
	b->after = NULL;
	if (b->starved || b->polling)
		process(b, &a);
	submit(b);
	if (a.used) {
		/* On the loop thread, where deferring is allowed. */
		a.used = 0;
		b->used_pending = true;
		if (evloop_defer(b->loop, &b->used_op) < 0)
			a.used = 1; /* queue 0 */
	}
	virtio_after_run(&a);
	pthread_mutex_unlock(&b->lock);
}

/* retry_op's time has come: submit what is still queued. At -ECANCELED
 * the loop is stopping and takes no new op: nothing to do. */
static void retry_submit(struct ev_op *op, int res)
{
	struct blk *b = container_of(op, struct blk, retry_op);

	if (res == -ECANCELED)
		return;
	pthread_mutex_lock(&b->lock);
	submit(b);
	pthread_mutex_unlock(&b->lock);
}

/* Process the queue and submit, on the loop thread, outside a completion
 * of the drive's ring: for rl_wait and the kick. */
static void resume(struct blk *b)
{
	struct virtio_after a = {.used = 0};

	pthread_mutex_lock(&b->lock);
	a.host = b->host;
	process(b, &a);
	submit(b);
	virtio_after_run(&a);
	pthread_mutex_unlock(&b->lock);
}

/* rl_wait: the limiter should let the waiting request go now, or new
 * limits cut the wait short; or the loop stops. */
static void rl_expired(struct ev_op *op, int res)
{
	struct blk *b = container_of(op, struct blk, rl_wait.op);
	bool again;

	pthread_mutex_lock(&b->lock);
	again = ev_wait_done(&b->rl_wait, res);
	pthread_mutex_unlock(&b->lock);
	if (again)
		resume(b);
}

/* Another thread changed the limits or the image: a timer armed for the
 * old limits is cancelled and armed again (rl_expired), and the queue is
 * looked at (completions that a swap answered may have freed slots). */
static void kicked(struct ev_op *op, int res)
{
	struct blk *b = container_of(op, struct blk, kick.op);
	bool later;

	if ((res = ev_kick_take(&b->kick, res)) < 0) {
		if (res != -ECANCELED)
			pr_err("drive %s: polling its eventfd: %s", b->path, strerror(-res));
		return;
	}
	/* An armed timer: rl_expired resumes, with the timer free to arm
	 * again. */
	pthread_mutex_lock(&b->lock);
	later = ev_wait_recheck(&b->rl_wait, b->loop);
	pthread_mutex_unlock(&b->lock);
	if (!later)
		resume(b);
}

/* After a batch of completions: one interrupt decision for all of them. */
static void used_batch(struct ev_op *op, int res)
{
	struct blk *b = container_of(op, struct blk, used_op);
	struct virtio_after a = {.used = 0};

	(void)res;
	pthread_mutex_lock(&b->lock);
	a.host = b->host;
	a.used = b->used_pending && b->active;
	b->used_pending = false;
	virtio_after_run(&a);
	pthread_mutex_unlock(&b->lock);
}

static uint64_t blk_features(void *dev)
{
	struct blk *b = dev;
	uint64_t f = 1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_SEG_MAX |
		     1ull << VIRTIO_BLK_F_SIZE_MAX;

	if (!b->no_flush)
		f |= 1ull << VIRTIO_BLK_F_FLUSH;

	if (b->read_only)
		return f | 1ull << VIRTIO_BLK_F_RO;
	if (b->keep_blocks)
		return f | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	return f | 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
}

static void blk_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct blk *b = dev;

	/* A swap changes the capacity from another thread. */
	pthread_mutex_lock(&b->cfg_lock);
	virtio_config_copy(&b->cfg, sizeof(b->cfg), off, data, len);
	pthread_mutex_unlock(&b->cfg_lock);
}

static void blk_config_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	/* Nothing is writable: no VIRTIO_BLK_F_CONFIG_WCE. */
	(void)dev, (void)off, (void)data, (void)len;
}

static int blk_activate(void *dev, uint64_t features, struct vq *queues,
			const struct virtio_host *host)
{
	struct blk *b = dev;

	if (!queues[0].ready || queues[0].size > BLK_QUEUE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	b->gen++;
	b->vq = &queues[0];
	b->host = *host;
	b->geom = (struct blk_geom){
	    .capacity = __atomic_load_n(&b->capacity, __ATOMIC_RELAXED),
	    .read_only = b->read_only,
	    .flush = features & 1ull << VIRTIO_BLK_F_FLUSH,
	    .discard = features & 1ull << VIRTIO_BLK_F_DISCARD,
	    .write_zeroes = features & 1ull << VIRTIO_BLK_F_WRITE_ZEROES,
	    .max_discard_sectors = BLK_MAX_DWZ_SECTORS,
	    .max_write_zeroes_sectors = BLK_MAX_DWZ_SECTORS,
	    .max_rw_bytes = (uint64_t)BLK_SEG_MAX * BLK_SIZE_MAX,
	};
	/* 5.2.6.2: FLUSH offered and not negotiated means every completed
	 * write is stable. Not offered (cache_type Unsafe), nothing is made
	 * stable, as in Firecracker: that is what Unsafe asks. */
	b->sync = !b->no_flush && !b->geom.flush;
	b->active = true;
	b->broken = b->starved = b->polling = false;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/* Forget the generation, and wait until none of its I/O is under way
 * (see the top of this file): what the kernel cannot cancel, a read or a
 * sync already running, ends before this returns. */
static void blk_reset(void *dev)
{
	struct blk *b = dev;
	int err;

	pthread_mutex_lock(&b->lock);
	b->gen++;
	b->active = b->broken = b->starved = b->polling = b->used_pending = false;
	if (b->throttled) {
		/* Forgotten by the guest; the timer, when it fires, finds
		 * nothing to do. */
		b->throttled->next_free = b->free;
		b->free = b->throttled;
		b->throttled = NULL;
	}
	b->vq = NULL;
	b->host = (struct virtio_host){0};
	if ((err = blk_ring_drain(b->ring)) < 0)
		pr_err("drive %s: reset cannot wait for the I/O in flight: %s", b->path,
		       strerror(-err));
	pthread_mutex_unlock(&b->lock);
}

static void blk_notify(void *dev, unsigned q)
{
	struct blk *b = dev;
	struct virtio_after a = {.used = 0};

	if (q != 0)
		return;
	pthread_mutex_lock(&b->lock);
	a.host = b->host;
	process(b, &a);
	submit(b);
	virtio_after_run(&a);
	pthread_mutex_unlock(&b->lock);
}

const struct virtio_dev_ops blk_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .num_queues = 1,
    .queue_max = BLK_QUEUE_MAX,
    .features = blk_features,
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .activate = blk_activate,
    .reset = blk_reset,
    .notify = blk_notify,
};

/* Block size the guest sees: 512, or what O_DIRECT needs if that is more
 * (a power of two up to 4 KiB; anything else is left to fail as IOERR). */
static uint32_t block_size(const struct blk_disk *d)
{
	uint32_t a = d->dio_align;

	if (a > BLK_SECTOR_SIZE && a <= 4096 && !(a & (a - 1)))
		return a;
	return BLK_SECTOR_SIZE;
}

static void fill_config(struct blk *b)
{
	struct virtio_blk_config *c = &b->cfg;

	memset(c, 0, sizeof(*c));
	c->capacity = b->capacity;
	c->size_max = BLK_SIZE_MAX;
	c->seg_max = BLK_SEG_MAX;
	c->blk_size = block_size(&b->disk);
	if (b->read_only)
		return;
	if (!b->keep_blocks) {
		c->max_discard_sectors = BLK_MAX_DWZ_SECTORS;
		c->max_discard_seg = 1;
		c->discard_sector_alignment = BLK_DISCARD_ALIGN;
	}
	c->max_write_zeroes_sectors = BLK_MAX_DWZ_SECTORS;
	c->max_write_zeroes_seg = 1;
	c->write_zeroes_may_unmap = !b->keep_blocks;
}

int blk_create(struct blk **out, const struct blk_params *p)
{
	size_t idlen = p->id ? strlen(p->id) : 0;
	struct blk *b;
	int err;

	*out = NULL;
	if (!p->path || !p->loop)
		return -EINVAL;
	if (idlen > VIRTIO_BLK_ID_BYTES) {
		pr_err("drive %s: id \"%s\" is longer than %d bytes", p->path, p->id,
		       VIRTIO_BLK_ID_BYTES);
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->disk.fd = -1;
	b->kick.fd = -1;
	b->loop = p->loop;
	b->used_op = (struct ev_op){.done = used_batch};
	b->ring_op = (struct ev_op){.done = ring_ready};
	b->retry_op = (struct ev_op){.done = retry_submit};
	ev_wait_init(&b->rl_wait, rl_expired);
	b->read_only = p->read_only;
	b->keep_blocks = p->keep_blocks;
	b->no_flush = p->no_flush;
	b->direct = p->direct;
	err = ratelimit_init(&b->rl, &p->rate_limiter, now_ns());
	if (err) {
		pr_err("drive %s: rate limiter: a value is over %lld", p->path,
		       (long long)INT64_MAX);
		free(b);
		return err;
	}
	b->rl_on = ratelimit_enabled(&b->rl);
	snprintf(b->path, sizeof(b->path), "%s", p->path);
	snprintf(b->name, sizeof(b->name), "%s", p->name ? p->name : p->path);
	memcpy(b->id, p->id ? p->id : "", idlen);
	b->pool = calloc(BLK_QUEUE_MAX, sizeof(*b->pool));
	if (!b->pool) {
		err = -ENOMEM;
		goto err_free;
	}
	if ((err = ev_kick_init(&b->kick, kicked)) < 0) {
		pr_err("drive %s: eventfd: %s", p->path, strerror(-err));
		goto err_pool;
	}
	err = blk_ring_create(&b->ring, BLK_QUEUE_MAX);
	if (err) {
		pr_err("drive %s: cannot create its io_uring: %s", p->path, strerror(-err));
		goto err_pool;
	}
	err = blk_disk_open(&b->disk, p->path, p->read_only, p->direct);
	if (err)
		goto err_ring;
	b->capacity = b->disk.bytes >> BLK_SECTOR_SHIFT;
	if (b->disk.bytes % BLK_SECTOR_SIZE)
		pr_info("drive %s: size %llu is not a multiple of %u; the last %llu bytes are "
			"not visible to the guest",
			p->path, (unsigned long long)b->disk.bytes, BLK_SECTOR_SIZE,
			(unsigned long long)(b->disk.bytes % BLK_SECTOR_SIZE));
	fill_config(b);
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->cfg_lock, NULL);
	/* blk_drain's deadline is now_ns()'s clock. */
	cond_init_monotonic(&b->idle);
	*out = b;
	return 0;

err_ring:
	blk_ring_destroy(b->ring);
err_pool:
	ev_kick_close(&b->kick);
	free(b->pool);
err_free:
	free(b);
	return err;
}

void blk_destroy(struct blk *b)
{
	int err;

	if (!b)
		return;
	if (evloop_pending(&b->ring_op) || evloop_pending(&b->retry_op) ||
	    evloop_pending(&b->rl_wait.op) || evloop_pending(&b->kick.op)) {
		/* The loop still runs, or never ran and still holds the poll
		 * or the retry timer: leak rather than free what it holds. */
		pr_err("drive %s: destroyed while the event loop holds its poll or retry", b->path);
		return;
	}
	/* As a reset: what is still in flight ends into nothing. */
	pthread_mutex_lock(&b->lock);
	b->gen++;
	b->active = false;
	err = blk_ring_drain(b->ring);
	pthread_mutex_unlock(&b->lock);
	if (err < 0) {
		/* The kernel may still write into these: leak rather than free. */
		pr_err("drive %s: destroyed with %llu requests in flight", b->path,
		       (unsigned long long)b->stats.inflight);
		return;
	}
	blk_ring_destroy(b->ring);
	blk_disk_close(&b->disk);
	ev_kick_close(&b->kick);
	pthread_mutex_destroy(&b->cfg_lock);
	pthread_cond_destroy(&b->idle);
	pthread_mutex_destroy(&b->lock);
	free(b->pool);
	free(b);
}

uint64_t blk_capacity(const struct blk *b)
{
	return __atomic_load_n(&b->capacity, __ATOMIC_RELAXED);
}

int blk_fs_uuid(const struct blk *b, uint8_t uuid[16])
{
	return blk_disk_fs_uuid(&b->disk, uuid);
}

void blk_get_stats(struct blk *b, struct blk_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->stats;
	out->rate_limiter_throttled = b->rl.throttled;
	pthread_mutex_unlock(&b->lock);
}

int blk_set_ratelimit(struct blk *b, const struct ratelimit_cfg *cfg)
{
	int err;

	pthread_mutex_lock(&b->lock);
	err = ratelimit_update(&b->rl, cfg, now_ns());
	if (err == 0) {
		b->rl_on = ratelimit_enabled(&b->rl);
		if (b->throttled)
			kick(b);
	}
	pthread_mutex_unlock(&b->lock);
	return err;
}

void blk_get_ratelimit(struct blk *b, struct ratelimit_cfg *out)
{
	pthread_mutex_lock(&b->lock);
	*out = (struct ratelimit_cfg){.bandwidth = b->rl.bandwidth.cfg, .ops = b->rl.ops.cfg};
	pthread_mutex_unlock(&b->lock);
}

void blk_save_limits(const struct blk *b, struct ratelimit_state *st)
{
	ratelimit_save(&b->rl, now_ns(), st);
}

int blk_restore_limits(struct blk *b, const struct ratelimit_state *st)
{
	int err;

	pthread_mutex_lock(&b->lock);
	if ((err = ratelimit_resume(&b->rl, st, now_ns())) == 0) {
		b->rl_on = ratelimit_enabled(&b->rl);
		/* A reset in place: a timer armed for the buckets before. */
		if (ev_wait_armed(&b->rl_wait))
			kick(b);
	}
	pthread_mutex_unlock(&b->lock);
	return err;
}

int blk_drain(struct blk *b, uint64_t deadline_ns, char *err, size_t errlen)
{
	uint64_t t0 = now_ns(), left = 0;
	pthread_mutex_lock(&b->lock);
	/* io_done signals idle when the last one is reaped; the wait ends
	 * early on that or at the deadline (a timed futex wait: every thread's
	 * seccomp filter allows futex). */
	while (b->stats.inflight && now_ns() < deadline_ns)
		cond_wait_until(&b->idle, &b->lock, deadline_ns);
	left = b->stats.inflight;
	pthread_mutex_unlock(&b->lock);
	if (!left)
		return 0;
	return err_set(err, errlen, -ETIMEDOUT,
		       "drive %s: %llu request%s still in flight at its image after %llu ms",
		       b->name, (unsigned long long)left, left == 1 ? "" : "s",
		       (unsigned long long)((now_ns() - t0) / 1000000));
}

void blk_quiesce(struct blk *b)
{
	struct virtio_after a = {.used = 0};
	int err;

	pthread_mutex_lock(&b->lock);
	a.host = b->host;
	if (b->stats.inflight) {
		/* Started since blk_drain: answered here, as a swap answers
		 * what is in flight (the loop is parked, so nothing else
		 * reaps). */
		b->after = &a;
		err = blk_ring_wait(b->ring);
		b->after = NULL;
		if (err < 0)
			pr_err("drive %s: cannot wait for its I/O to come to rest: %s", b->path,
			       strerror(-err));
	}
	if (b->throttled) {
		/* The last chain popped: process() pops nothing behind it. */
		if (vq_discard(b->vq, 1) < 0)
			pr_err("drive %s: cannot give back the request the limiter holds", b->path);
		b->throttled->next_free = b->free;
		b->free = b->throttled;
		b->throttled = NULL;
	}
	/* process() left them off behind the held request; a kick (or the
	 * limiter's timer, still armed) takes the queue up again. */
	if (b->active && !b->broken)
		vq_enable_notify(b->vq);
	virtio_after_run(&a);
	pthread_mutex_unlock(&b->lock);
}

int blk_set_backing(struct blk *b, const char *path)
{
	struct blk_disk nd = {.fd = -1}, old = {.fd = -1};
	struct virtio_after a = {.used = 0};
	uint64_t bytes, cap;
	bool same;
	int err;

	if (!path || !*path)
		return -EINVAL;
	same = blk_disk_same(&b->disk, path, &bytes);
	if (!same) {
		if ((err = blk_disk_open(&nd, path, b->read_only, b->direct)) < 0)
			return err;
		if (block_size(&nd) != b->cfg.blk_size) {
			/* The guest reads blk_size once: O_DIRECT on the new
			 * image would fail every request. */
			pr_err("drive %s: %s needs %u-byte blocks, the guest has %u", b->path, path,
			       block_size(&nd), b->cfg.blk_size);
			blk_disk_close(&nd);
			return -EINVAL;
		}
		bytes = nd.bytes;
	}
	cap = bytes >> BLK_SECTOR_SHIFT;
	if (same && cap == blk_capacity(b))
		return 0; /* nothing the guest could see changed */
	pthread_mutex_lock(&b->lock);
	if (!same) {
		/* The I/O in flight ends on the old image and is answered as
		 * usual; nothing new starts while the lock is held. */
		a.host = b->host;
		b->after = &a;
		err = blk_ring_wait(b->ring);
		b->after = NULL;
		if (err < 0) {
			virtio_after_run(&a);
			pthread_mutex_unlock(&b->lock);
			pr_err("drive %s: cannot wait for its I/O to swap to %s: %s", b->path, path,
			       strerror(-err));
			blk_disk_close(&nd);
			return err;
		}
		old = b->disk;
		b->disk = nd;
	}
	__atomic_store_n(&b->capacity, cap, __ATOMIC_RELAXED);
	b->geom.capacity = cap;
	pthread_mutex_lock(&b->cfg_lock);
	b->cfg.capacity = cap;
	pthread_mutex_unlock(&b->cfg_lock);
	b->stats.backing_swaps++;
	pr_info("drive %s: now %s, %llu sectors", b->path, path, (unsigned long long)cap);
	snprintf(b->path, sizeof(b->path), "%s", path);
	virtio_after_run(&a);
	if (b->active)
		virtio_config_changed(&b->host);
	/* Completions answered here may have freed slots the queue waits
	 * for; the loop looks again. */
	kick(b);
	pthread_mutex_unlock(&b->lock);
	blk_disk_close(&old);
	return 0;
}
