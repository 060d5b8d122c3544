/* virtio-balloon; see balloon.h. Inflate and deflate chains are taken whole
 * as they come; the statistics chain is held between updates, and one
 * event-loop timer (wait) gives it back every interval.
 *
 * The kick, polled by the loop from the device's creation on, brings the
 * loop work another thread found: the driver offers its first statistics
 * chain while it probes, before DRIVER_OK, when the device does not take
 * it yet, so activation (on a vCPU thread) asks the loop to take it
 * (take_stats); a new interval (any thread) asks it to give the chain back
 * at once (ask_now), cutting the timer short as rng.c does for a new limit
 * (core/evwait.h).
 *
 * Threads and locking as rng.c: one mutex (lock) over everything that
 * changes; host callbacks are called with it held. Ops are submitted on
 * the loop thread only; a reset on a vCPU thread leaves the timer to fire
 * into nothing. But memory goes back to the host (gmem_discard) with lock
 * let go: with the Uffd backend, madvise(MADV_DONTNEED) waits until
 * somebody reads its UFFD_EVENT_REMOVE, and once the handler is gone that
 * is the main thread, which takes lock for the metrics and the API. A
 * second mutex, work, taken before lock by whoever processes a queue (the
 * loop, a vCPU's kick in place) and held throughout, keeps the rings and
 * the chain being taken (segs) that thread's meanwhile; a reset cannot
 * come either (the transport runs it and notify under its dev_lock). A
 * range is given back before its chain is pushed, as before. */
#include "balloon/balloon.h"

#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/evwait.h"

#define Q_INFLATE 0
#define Q_DEFLATE 1
/* Then, in this order, those negotiated: statistics, free page hints, free
 * page reports (Linux's driver numbers its queues so: no gap for one not
 * there). */
#define Q_OPTIONAL 2
#define NQUEUES	   5

/* A free page hinting run's command ids: 0 and 1 are STOP and DONE. */
#define HINT_RUN_FIRST 2u

/* One statistics entry as the driver lays it out: le16 tag, le64 value. */
#define STAT_LEN 10u
/* The most a statistics chain may hold: Linux sends one entry of each tag
 * it knows. A longer one is refused unread: it is read a byte at a time on
 * the event loop, under the device's locks (4 GiB would hold it seconds). */
#define STATS_MAX_BYTES (4u * BALLOON_NSTATS * STAT_LEN)

/* 2: free page hinting's state after the statistics. */
#define SAVE_VERSION 2u

struct balloon {
	struct evloop *loop;
	struct ev_kick kick; /* a new interval, to the loop */
	bool deflate_on_oom;
	bool stats_on;	   /* made with statistics: the feature is offered */
	bool reporting_on; /* made with free page reporting: offered */
	bool hinting_on;   /* made with free page hinting: offered */

	pthread_mutex_t work; /* the rings and segs: a queue's processing */
	pthread_mutex_t lock; /* everything below */
	bool active;	      /* activated, not reset */
	bool broken;	      /* needs_reset asked: take nothing more */
	bool stats_negotiated, hinting_negotiated, reporting_negotiated;
	unsigned q_stats, q_hints, q_reports; /* their queues, once negotiated */
	struct ev_wait wait;		      /* the next statistics request */
	bool take_stats;		      /* the kick: look at the statistics queue */
	bool ask_now;			      /* the kick: give the statistics chain back now */
	bool stats_held;		      /* stats_head is popped, waiting for the timer */
	bool logged_ring, logged_frames, logged_discard, logged_stats, logged_timer;
	uint16_t stats_head;
	bool requeued; /* quiesce gave requeued_head back to the ring */
	uint16_t requeued_head;
	uint32_t target, actual, interval_s;
	/* Free page hinting: host_cmd, what the configuration space shows
	 * (STOP, DONE or the run's id); last_run, the last run's id;
	 * guest_cmd, the last id the guest sent (have_guest_cmd: it sent
	 * one); ack_on_stop: a run the guest ends gets DONE at once. */
	uint32_t host_cmd, last_run, guest_cmd;
	bool have_guest_cmd, ack_on_stop, logged_hint;
	bool done_on_kick; /* restored with a run: DONE at the first kick */
	bool have[BALLOON_NSTATS];
	uint64_t stat[BALLOON_NSTATS];
	struct vq *vq; /* the transport's queues, NQUEUES of them */
	struct virtio_host host;
	struct vq_seg segs[VQ_MAX_INDIRECT];
	struct balloon_counters n;
};

static void protocol_error(struct balloon *b, struct virtio_after *a, unsigned q, int err)
{
	b->n.event_fails++;
	b->broken = true;
	a->reset = true;
	if (!b->logged_ring)
		pr_err("balloon: guest broke queue %u (%s); device needs reset", q, strerror(-err));
	b->logged_ring = true;
}

static void push(struct balloon *b, struct virtio_after *a, unsigned q, uint16_t head)
{
	if (vq_push(&b->vq[q], head, 0) == 0)
		a->used |= 1u << q;
}

/* A place in chain c's device-readable bytes, read across segment
 * boundaries (frame lists, statistics entries). */
struct readable {
	const struct vq_chain *c;
	uint32_t seg, off;
};

/* Up to n of the bytes from where r is into out; how many there were. */
static unsigned take_bytes(struct readable *r, uint8_t *out, unsigned n)
{
	unsigned got = 0;

	while (got < n && r->seg < r->c->nseg && !r->c->seg[r->seg].write) {
		const struct vq_seg *s = &r->c->seg[r->seg];

		if (r->off == s->len) {
			r->seg++;
			r->off = 0;
			continue;
		}
		out[got++] = ((const uint8_t *)s->host)[r->off++];
	}
	return got;
}

/* The next frame into *pfn: 1, or 0 at the end of the readable bytes
 * (*partial set when a frame was cut short). */
static int next_frame(struct readable *f, uint32_t *pfn, bool *partial)
{
	uint8_t le[4];
	unsigned got = take_bytes(f, le, sizeof(le));

	if (got < sizeof(le)) {
		*partial = got > 0;
		return 0;
	}
	*pfn =
	    (uint32_t)le[0] | (uint32_t)le[1] << 8 | (uint32_t)le[2] << 16 | (uint32_t)le[3] << 24;
	return 1;
}

/* gmem_discard with lock let go (see the top). work and lock held. */
static int discard(struct balloon *b, struct gmem *g, uint64_t gpa, uint64_t len)
{
	int err;

	pthread_mutex_unlock(&b->lock);
	err = gmem_discard(g, gpa, len);
	pthread_mutex_lock(&b->lock);
	return err;
}

/* Give a run of frames back to the host (inflate). work and lock held. */
static void discard_run(struct balloon *b, uint64_t first, uint64_t count)
{
	struct gmem *g = b->vq[Q_INFLATE].gmem;
	int err = discard(b, g, first * BALLOON_PAGE, count * BALLOON_PAGE);

	if (err == 0)
		return;
	b->n.discard_fails++;
	b->n.event_fails++;
	if (!b->logged_discard)
		pr_err("balloon: the guest's pages 0x%llx-0x%llx: %s; not given back to the host",
		       (unsigned long long)(first * BALLOON_PAGE),
		       (unsigned long long)((first + count) * BALLOON_PAGE - 1),
		       err == -EFAULT ? "outside guest RAM" : strerror(-err));
	b->logged_discard = true;
}

/* One inflate or deflate chain: its frames, in runs. A chain of more than
 * BALLOON_FRAMES_MAX frames is no driver's (Linux's sends at most 256) and
 * is given back untouched: a hostile one could hold the loop for minutes
 * of madvise calls. work and lock held (lock let go meanwhile). */
static void take_frames(struct balloon *b, const struct vq_chain *c, bool inflate)
{
	struct readable f = {.c = c};
	uint64_t first = 0, count = 0;
	uint32_t pfn;
	bool partial = false;

	if (c->readable > BALLOON_FRAMES_MAX * 4u) {
		b->n.event_fails++;
		if (!b->logged_frames)
			pr_err("balloon: an %s request of %u bytes, over %u frames; given back "
			       "untouched",
			       inflate ? "inflate" : "deflate", c->readable, BALLOON_FRAMES_MAX);
		b->logged_frames = true;
		return;
	}
	while (next_frame(&f, &pfn, &partial)) {
		if (inflate)
			b->n.pages_inflated++;
		else
			b->n.pages_deflated++;
		if (count && pfn == first + count) {
			count++;
			continue;
		}
		if (count && inflate)
			discard_run(b, first, count);
		first = pfn;
		count = 1;
	}
	if (count && inflate)
		discard_run(b, first, count);
	if (partial || c->writable) {
		b->n.event_fails++;
		if (!b->logged_frames)
			pr_err("balloon: an %s request with %s; its whole frames taken",
			       inflate ? "inflate" : "deflate",
			       partial ? "a frame cut short" : "a device-writable buffer");
		b->logged_frames = true;
	}
}

/* The next chain of vq into c: 1, or 0 when the queue is empty (its
 * notifications back on, with no chain added meanwhile), or vq_pop's
 * -errno. */
static int next_chain(struct balloon *b, struct vq *vq, struct vq_chain *c)
{
	for (;;) {
		int n;

		*c = (struct vq_chain){.seg = b->segs, .cap = ARRAY_SIZE(b->segs)};
		if ((n = vq_pop(vq, c)) != 0)
			return n;
		vq_enable_notify(vq);
		if (!vq_has_work(vq))
			return 0;
		vq_disable_notify(vq);
	}
}

/* The k-th chain of queue q in this pass into *c: true, or false when
 * the pass ends (VIRTIO_BUDGET taken: notified again; the queue empty; or
 * a protocol error, reported). Lock held. */
static bool budgeted_chain(struct balloon *b, struct virtio_after *a, unsigned q, unsigned k,
			   struct vq_chain *c)
{
	int n;

	if (virtio_budget_spent(a, q, k) || (n = next_chain(b, &b->vq[q], c)) == 0)
		return false;
	if (n < 0) {
		protocol_error(b, a, q, n);
		return false;
	}
	return true;
}

/* Take every chain of the inflate or deflate queue, up to VIRTIO_BUDGET
 * (then ask to be notified again). work and lock held (lock let go
 * while memory goes back). */
static void process_frames(struct balloon *b, struct virtio_after *a, unsigned q)
{
	struct vq_chain c;

	for (unsigned k = 0; budgeted_chain(b, a, q, k, &c); k++) {
		if (q == Q_INFLATE)
			b->n.inflate_count++;
		else
			b->n.deflate_count++;
		take_frames(b, &c, q == Q_INFLATE);
		push(b, a, q, c.head);
	}
}

/* Read the statistics chain's entries; false, reading nothing, when it is
 * malformed (not whole entries, over STATS_MAX_BYTES, or with
 * device-writable bytes): the last values stand. */
static bool read_stats(struct balloon *b, const struct vq_chain *c)
{
	struct readable r = {.c = c};
	uint8_t e[STAT_LEN];

	if (c->writable || c->readable % STAT_LEN || c->readable > STATS_MAX_BYTES)
		return false;
	for (;;) {
		if (take_bytes(&r, e, STAT_LEN) < STAT_LEN)
			return true;
		uint16_t tag = (uint16_t)(e[0] | e[1] << 8);
		uint64_t v = 0;

		for (int i = 7; i >= 0; i--)
			v = v << 8 | e[2 + i];
		if (tag < BALLOON_NSTATS) {
			b->have[tag] = true;
			b->stat[tag] = v;
		}
	}
}

/* The memory of buffer seg of a free page report or hint goes back to the
 * host: its length added to *freed, or, refused by gmem_discard, one to
 * *fails (logged once). work and lock held. */
static void give_back(struct balloon *b, struct gmem *g, const struct vq_seg *seg, const char *what,
		      uint64_t *freed, uint64_t *fails)
{
	int err = discard(b, g, seg->gpa, seg->len);

	if (err == 0) {
		*freed += seg->len;
		return;
	}
	++*fails;
	if (!b->logged_discard)
		pr_err("balloon: a free page %s of 0x%llx bytes at 0x%llx: %s; not given back to "
		       "the host",
		       what, (unsigned long long)seg->len, (unsigned long long)seg->gpa,
		       strerror(-err));
	b->logged_discard = true;
}

/* Free page reports: each buffer of a chain is a run of free guest memory
 * (Linux reports blocks of at least 2 MiB, as device-writable buffers the
 * device never writes); its pages go back to the host. work and lock
 * held (lock let go meanwhile). */
static void process_reports(struct balloon *b, struct virtio_after *a)
{
	struct vq *vq = &b->vq[b->q_reports];
	struct vq_chain c;

	for (unsigned k = 0; budgeted_chain(b, a, b->q_reports, k, &c); k++) {
		b->n.free_page_report_count++;
		for (uint32_t i = 0; i < c.nseg; i++)
			give_back(b, vq->gmem, &c.seg[i], "report", &b->n.free_page_report_freed,
				  &b->n.free_page_report_fails);
		push(b, a, b->q_reports, c.head);
	}
}

/* Whether hinted memory may go back to the host now: a run is the host's
 * and the guest has started it. Once the host says DONE (or starts
 * another run) the guest takes its blocks back, so a hint still in the
 * ring is given back untouched. Lock held. */
static bool hint_run_live(const struct balloon *b)
{
	return b->host_cmd >= HINT_RUN_FIRST && b->have_guest_cmd && b->guest_cmd == b->host_cmd &&
	       !b->done_on_kick;
}

/* A hint chain's command id: the guest starts the host's run with its id
 * and ends it with STOP; the run it ends gets DONE at once when
 * ack_on_stop (a STOP that ends an older run does not end the new one).
 * Lock held. */
static void take_hint_cmd(struct balloon *b, const struct vq_chain *c)
{
	struct readable r = {.c = c};
	uint8_t le[4];

	if (c->readable != sizeof(le) || take_bytes(&r, le, sizeof(le)) != sizeof(le)) {
		b->n.free_page_hint_fails++;
		b->n.event_fails++;
		if (!b->logged_hint)
			pr_err("balloon: a free page hint command of %u bytes, not 4; ignored",
			       c->readable);
		b->logged_hint = true;
		return;
	}
	uint32_t id =
	    (uint32_t)le[0] | (uint32_t)le[1] << 8 | (uint32_t)le[2] << 16 | (uint32_t)le[3] << 24;
	bool ends_run = id == VIRTIO_BALLOON_CMD_ID_STOP && hint_run_live(b);

	b->guest_cmd = id;
	b->have_guest_cmd = true;
	if (ends_run && b->ack_on_stop) {
		b->host_cmd = VIRTIO_BALLOON_CMD_ID_DONE;
		virtio_config_changed(&b->host);
	}
}

/* Free page hinting: a chain's device-readable bytes are a command id
 * (take_hint_cmd); its device-writable buffers are blocks of memory free
 * in the guest, held by its driver for the run (Linux: 4 MiB each), which
 * go back to the host while the run is live. Chains are given back with
 * nothing written. On the vCPU thread of the guest's kick
 * (balloon_notify_in_place): Linux's driver lists a block, kicks, and only
 * then lets its shrinker reuse the block, which must not lose what it is
 * then given. work and lock held (lock let go meanwhile: the kick still
 * returns only once the memory is back). */
static void process_hints(struct balloon *b, struct virtio_after *a)
{
	struct vq *vq = &b->vq[b->q_hints];
	struct vq_chain c;

	for (unsigned k = 0; budgeted_chain(b, a, b->q_hints, k, &c); k++) {
		if (c.readable)
			take_hint_cmd(b, &c);
		for (uint32_t i = 0; i < c.nseg; i++) {
			if (!c.seg[i].write)
				continue;
			b->n.free_page_hint_count++;
			if (hint_run_live(b))
				give_back(b, vq->gmem, &c.seg[i], "hint",
					  &b->n.free_page_hint_freed, &b->n.free_page_hint_fails);
		}
		push(b, a, b->q_hints, c.head);
	}
}

/* Arm the wait for the interval, and the poll of the kick again should a
 * stopped loop have cancelled it. Lock held, loop thread. */
static void arm_timer(struct balloon *b)
{
	int err;

	if (ev_wait_armed(&b->wait))
		return;
	if ((err = ev_kick_arm(&b->kick, b->loop)) < 0 && err != -ESHUTDOWN)
		pr_err("balloon: cannot poll its eventfd: %s", strerror(-err));
	err = ev_wait_arm(&b->wait, b->loop, b->interval_s * 1000000000ull);
	if (err == 0)
		return;
	if (err != -ESHUTDOWN && !b->logged_timer)
		pr_err("balloon: cannot arm the statistics timer: %s", strerror(-err));
	b->logged_timer = true;
}

/* The guest offered its statistics chain: read it, hold it, arm the timer.
 * Lock held, loop thread. */
static void process_stats(struct balloon *b, struct virtio_after *a)
{
	struct vq *vq = &b->vq[b->q_stats];
	struct vq_chain c;
	int n;

	if (!b->stats_negotiated || !vq->ready)
		return;
	/* The driver offers one chain at a time: a second one waits in the
	 * ring until the first is given back. */
	while (!b->stats_held && (n = next_chain(b, vq, &c)) != 0) {
		if (n < 0) {
			protocol_error(b, a, b->q_stats, n);
			return;
		}
		bool again = b->requeued && c.head == b->requeued_head;

		b->requeued = false;
		if (!again)
			b->n.stats_updates_count++;
		if (!read_stats(b, &c) && !again) {
			b->n.stats_update_fails++;
			if (!b->logged_stats)
				pr_err("balloon: a statistics request that is not whole "
				       "%u-byte entries; the last values kept",
				       STAT_LEN);
			b->logged_stats = true;
		}
		b->stats_held = true;
		b->stats_head = c.head;
		arm_timer(b);
	}
	/* Holding it, the device pops no more, but the driver's next offer
	 * must still kick (with EVENT_IDX: avail_event moves up to it). */
	if (b->stats_held)
		vq_enable_notify(vq);
}

/* Ask the guest for fresh statistics: give its chain back. Lock held. */
static void ask_stats(struct balloon *b, struct virtio_after *a)
{
	if (!b->active || b->broken || !b->stats_held)
		return;
	b->stats_held = false;
	push(b, a, b->q_stats, b->stats_head);
}

/* The interval is over, or a new one cut it short; or the loop is
 * stopping. */
static void timer_done(struct ev_op *op, int res)
{
	struct balloon *b = container_of(op, struct balloon, wait.op);
	struct virtio_after a = {.reset = false};

	pthread_mutex_lock(&b->work);
	pthread_mutex_lock(&b->lock);
	if (ev_wait_done(&b->wait, res)) {
		a.host = b->host;
		ask_stats(b, &a);
		virtio_after_run(&a);
	}
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&b->work);
}

/* Work another thread left for the loop: the statistics chain the driver
 * offered before activation, a new interval (ask now, then every new
 * interval). */
static void kick_done(struct ev_op *op, int res)
{
	struct balloon *b = container_of(op, struct balloon, kick.op);
	struct virtio_after a = {.reset = false};

	if ((res = ev_kick_take(&b->kick, res)) < 0) {
		if (res != -ECANCELED)
			pr_err("balloon: polling its eventfd: %s", strerror(-res));
		return; /* the next timer polls again */
	}
	pthread_mutex_lock(&b->work);
	pthread_mutex_lock(&b->lock);
	a.host = b->host;
	/* Asked to give the chain back, the device takes one first should it
	 * wait in the ring unseen. */
	if ((b->take_stats || b->ask_now) && b->active && !b->broken)
		process_stats(b, &a);
	b->take_stats = false;
	/* An armed timer's done() runs next, once, and asks. */
	if (b->ask_now && !ev_wait_recheck(&b->wait, b->loop))
		ask_stats(b, &a);
	b->ask_now = false;
	virtio_after_run(&a);
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&b->work);
}

static uint64_t balloon_features(void *dev)
{
	struct balloon *b = dev;

	return (b->stats_on ? 1ull << VIRTIO_BALLOON_F_STATS_VQ : 0) |
	       (b->deflate_on_oom ? 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM : 0) |
	       (b->hinting_on ? 1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT : 0) |
	       (b->reporting_on ? 1ull << VIRTIO_BALLOON_F_REPORTING : 0);
}

static void balloon_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct balloon *b = dev;
	uint32_t cfg[3];

	pthread_mutex_lock(&b->lock);
	cfg[0] = htole32(b->target);
	cfg[1] = htole32(b->actual);
	cfg[2] = htole32(b->host_cmd);
	pthread_mutex_unlock(&b->lock);
	virtio_config_copy(cfg, sizeof(cfg), off, data, len);
}

/* The driver writes actual, whole; num_pages is the host's. */
static void balloon_config_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct balloon *b = dev;
	uint32_t v;

	if (off != 4 || len != 4)
		return;
	memcpy(&v, data, sizeof(v));
	pthread_mutex_lock(&b->lock);
	b->actual = le32toh(v);
	pthread_mutex_unlock(&b->lock);
}

static int balloon_activate(void *dev, uint64_t features, struct vq *queues,
			    const struct virtio_host *host)
{
	struct balloon *b = dev;
	bool stats = features & (1ull << VIRTIO_BALLOON_F_STATS_VQ);
	bool hints = features & (1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT);
	bool reports = features & (1ull << VIRTIO_BALLOON_F_REPORTING);
	unsigned used = Q_OPTIONAL + stats + hints + reports;
	int err;

	for (unsigned q = 0; q < used; q++)
		if (!queues[q].ready || queues[q].size > BALLOON_QUEUE_MAX)
			return -EINVAL;
	pthread_mutex_lock(&b->lock);
	b->vq = queues;
	b->host = *host;
	b->active = true;
	b->broken = b->stats_held = false;
	b->stats_negotiated = stats;
	b->hinting_negotiated = hints;
	b->reporting_negotiated = reports;
	b->q_stats = Q_OPTIONAL;
	b->q_hints = Q_OPTIONAL + stats;
	b->q_reports = b->q_hints + hints;
	if (stats) {
		/* The chain the driver offered while it probed. */
		b->take_stats = true;
		if ((err = ev_kick_send(&b->kick)) < 0)
			pr_err("balloon: cannot wake the event loop: %s", strerror(-err));
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/* The guest has forgotten its chains. A timer still armed finds nothing
 * held. What the guest holds (actual) stays as it last wrote it: a driver
 * that probes again reads it back as 0 only once it writes so. */
static void balloon_reset(void *dev)
{
	struct balloon *b = dev;

	pthread_mutex_lock(&b->lock);
	b->active = b->broken = b->stats_held = false;
	b->stats_negotiated = b->hinting_negotiated = b->reporting_negotiated = false;
	b->vq = NULL;
	b->host = (struct virtio_host){0};
	pthread_mutex_unlock(&b->lock);
}

static void balloon_notify(void *dev, unsigned q)
{
	struct balloon *b = dev;
	struct virtio_after a = {.reset = false};

	pthread_mutex_lock(&b->work);
	pthread_mutex_lock(&b->lock);
	if (b->active && !b->broken && b->done_on_kick) {
		/* Restored with a run: it ends, its blocks back to the guest. */
		b->done_on_kick = false;
		b->host_cmd = VIRTIO_BALLOON_CMD_ID_DONE;
		virtio_config_changed(&b->host);
	}
	if (b->active && !b->broken) {
		a.host = b->host;
		if (q == Q_INFLATE || q == Q_DEFLATE)
			process_frames(b, &a, q);
		else if (b->stats_negotiated && q == b->q_stats)
			process_stats(b, &a);
		else if (b->hinting_negotiated && q == b->q_hints)
			process_hints(b, &a);
		else if (b->reporting_negotiated && q == b->q_reports)
			process_reports(b, &a);
		virtio_after_run(&a);
	}
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&b->work);
}

/* The hint queue is notified in place (process_hints). */
static bool balloon_notify_in_place(void *dev, unsigned q)
{
	struct balloon *b = dev;

	pthread_mutex_lock(&b->lock);
	bool hints = b->active && b->hinting_negotiated && q == b->q_hints;
	pthread_mutex_unlock(&b->lock);
	return hints;
}

const struct virtio_dev_ops balloon_ops = {
    .device_id = VIRTIO_ID_BALLOON,
    .num_queues = NQUEUES,
    .queue_max = BALLOON_QUEUE_MAX,
    .features = balloon_features,
    .config_read = balloon_config_read,
    .config_write = balloon_config_write,
    .activate = balloon_activate,
    .reset = balloon_reset,
    .notify = balloon_notify,
    /* The optional queues, one of which may be the hints'. */
    .exit_queues = 7u << Q_OPTIONAL,
    .notify_in_place = balloon_notify_in_place,
};

int balloon_create(struct balloon **out, const struct balloon_params *p)
{
	struct balloon *b;
	int err;

	*out = NULL;
	if (!p->loop)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->loop = p->loop;
	b->kick.fd = -1;
	ev_wait_init(&b->wait, timer_done);
	b->deflate_on_oom = p->deflate_on_oom;
	b->stats_on = p->stats_interval_s > 0;
	b->reporting_on = p->free_page_reporting;
	b->hinting_on = p->free_page_hinting;
	b->interval_s = p->stats_interval_s;
	b->target = p->target_pages;
	if ((err = ev_kick_init(&b->kick, kick_done)) < 0) {
		pr_err("balloon: eventfd: %s", strerror(-err));
		free(b);
		return err;
	}
	pthread_mutex_init(&b->work, NULL);
	pthread_mutex_init(&b->lock, NULL);
	/* Made before the loop runs: the set-up thread may submit. */
	if (b->stats_on && (err = ev_kick_arm(&b->kick, b->loop)) < 0) {
		pr_err("balloon: cannot poll its eventfd: %s", strerror(-err));
		pthread_mutex_destroy(&b->lock);
		pthread_mutex_destroy(&b->work);
		ev_kick_close(&b->kick);
		free(b);
		return err;
	}
	*out = b;
	return 0;
}

void balloon_destroy(struct balloon *b)
{
	if (!b)
		return;
	if (evloop_pending(&b->wait.op) || evloop_pending(&b->kick.op)) {
		pr_err("balloon: destroyed while the event loop holds its timer or poll");
		return;
	}
	ev_kick_close(&b->kick);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->work);
	free(b);
}

void balloon_set_target(struct balloon *b, uint32_t pages)
{
	pthread_mutex_lock(&b->lock);
	b->target = pages;
	if (b->active)
		virtio_config_changed(&b->host);
	pthread_mutex_unlock(&b->lock);
}

int balloon_set_stats_interval(struct balloon *b, uint32_t s)
{
	int err;

	if (!s && !b->stats_on)
		return 0; /* off, and staying off */
	if (!s || !b->stats_on)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	b->interval_s = s;
	b->ask_now = true;
	err = ev_kick_send(&b->kick);
	pthread_mutex_unlock(&b->lock);
	return err;
}

int balloon_hint_start(struct balloon *b, bool ack_on_stop)
{
	if (!b->hinting_on)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	if (!b->active) {
		pthread_mutex_unlock(&b->lock);
		return -ENODEV;
	}
	b->last_run = b->last_run < HINT_RUN_FIRST || b->last_run == UINT32_MAX ? HINT_RUN_FIRST
										: b->last_run + 1;
	b->host_cmd = b->last_run;
	b->ack_on_stop = ack_on_stop;
	if (b->active)
		virtio_config_changed(&b->host);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int balloon_hint_stop(struct balloon *b)
{
	if (!b->hinting_on)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	b->host_cmd = VIRTIO_BALLOON_CMD_ID_DONE;
	if (b->active)
		virtio_config_changed(&b->host);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int balloon_hint_status(struct balloon *b, struct balloon_hint_status *out)
{
	if (!b->hinting_on)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	*out = (struct balloon_hint_status){.host_cmd = b->host_cmd,
					    .guest_cmd = b->guest_cmd,
					    .have_guest_cmd = b->have_guest_cmd};
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void balloon_get_info(struct balloon *b, struct balloon_info *out)
{
	pthread_mutex_lock(&b->lock);
	*out = (struct balloon_info){
	    .target_pages = b->target,
	    .actual_pages = b->actual,
	    .stats_interval_s = b->interval_s,
	};
	memcpy(out->have, b->have, sizeof(out->have));
	memcpy(out->stat, b->stat, sizeof(out->stat));
	pthread_mutex_unlock(&b->lock);
}

void balloon_get_counters(struct balloon *b, struct balloon_counters *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->n;
	pthread_mutex_unlock(&b->lock);
}

void balloon_quiesce(struct balloon *b)
{
	pthread_mutex_lock(&b->work);
	pthread_mutex_lock(&b->lock);
	if (b->stats_held) {
		if (vq_discard(&b->vq[b->q_stats], 1) < 0)
			pr_err("balloon: cannot give back the statistics request it holds");
		b->stats_held = false;
		/* Taken again when the queue is kicked: not a new update. */
		b->requeued = true;
		b->requeued_head = b->stats_head;
	}
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&b->work);
}

int balloon_save(const struct balloon *b, struct wbuf *w)
{
	struct balloon *m = (struct balloon *)b; /* the lock only */
	uint16_t n = 0;

	pthread_mutex_lock(&m->lock);
	wput_u32(w, SAVE_VERSION);
	wput_u32(w, b->target);
	wput_u32(w, b->actual);
	wput_u32(w, b->interval_s);
	for (unsigned t = 0; t < BALLOON_NSTATS; t++)
		n += b->have[t];
	wput_u16(w, n);
	for (unsigned t = 0; t < BALLOON_NSTATS; t++) {
		if (!b->have[t])
			continue;
		wput_u16(w, (uint16_t)t);
		wput_u64(w, b->stat[t]);
	}
	wput_u32(w, b->host_cmd);
	wput_u32(w, b->last_run);
	wput_u32(w, b->guest_cmd);
	wput_u8(w, (uint8_t)(b->have_guest_cmd | b->ack_on_stop << 1));
	pthread_mutex_unlock(&m->lock);
	return wbuf_err(w);
}

int balloon_restore(struct balloon *b, struct rbuf *r, char *err, size_t errlen)
{
	uint32_t version = rget_u32(r), target = rget_u32(r), actual = rget_u32(r);
	uint32_t interval = rget_u32(r);
	uint16_t n = rget_u16(r);
	bool have[BALLOON_NSTATS] = {false};
	uint64_t stat[BALLOON_NSTATS] = {0};

	if (rbuf_err(r) < 0)
		return err_set(err, errlen, -EBADMSG, "balloon: truncated state");
	if (version < 1 || version > SAVE_VERSION)
		return err_set(err, errlen, -EPROTONOSUPPORT,
			       "balloon: state version %u, this flint reads 1 to %u", version,
			       SAVE_VERSION);
	if ((interval > 0) != b->stats_on)
		return err_set(err, errlen, -EINVAL,
			       "balloon: saved with statistics %s, configured %s",
			       interval ? "on" : "off", b->stats_on ? "on" : "off");
	for (uint16_t i = 0; i < n; i++) {
		uint16_t t = rget_u16(r);
		uint64_t v = rget_u64(r);

		if (rbuf_err(r) < 0)
			return err_set(err, errlen, -EBADMSG, "balloon: truncated statistics");
		if (t >= BALLOON_NSTATS || have[t])
			return err_set(err, errlen, -EBADMSG,
				       "balloon: a bad or repeated statistics tag %u", t);
		have[t] = true;
		stat[t] = v;
	}
	/* Version 1 had no hinting: none asked, none running. */
	uint32_t host_cmd = 0, last_run = 0, guest_cmd = 0;
	uint8_t flags = 0;

	if (version >= 2) {
		host_cmd = rget_u32(r);
		last_run = rget_u32(r);
		guest_cmd = rget_u32(r);
		flags = rget_u8(r);
		if (rbuf_err(r) < 0)
			return err_set(err, errlen, -EBADMSG,
				       "balloon: truncated free page hinting state");
		if (flags > 3)
			return err_set(err, errlen, -EBADMSG,
				       "balloon: free page hinting flags 0x%x", flags);
		if (host_cmd && !b->hinting_on)
			return err_set(err, errlen, -EINVAL,
				       "balloon: saved with a free page hinting run, configured "
				       "without hinting");
		if (host_cmd >= HINT_RUN_FIRST && host_cmd != last_run)
			return err_set(err, errlen, -EBADMSG,
				       "balloon: free page hinting run %u, but the last run was %u",
				       host_cmd, last_run);
	}
	pthread_mutex_lock(&b->lock);
	b->host_cmd = host_cmd;
	b->last_run = last_run;
	b->guest_cmd = guest_cmd;
	b->have_guest_cmd = flags & 1;
	b->ack_on_stop = flags & 2;
	/* A run the snapshot caught: the guest's driver may have listed a
	 * block it went on to reuse since (nothing here knows), so none of
	 * its hints is taken, and it ends (DONE) at the restored device's
	 * first kick, as Firecracker's does. */
	b->done_on_kick = host_cmd >= HINT_RUN_FIRST;
	b->target = target;
	b->actual = actual;
	b->interval_s = interval;
	memcpy(b->have, have, sizeof(have));
	memcpy(b->stat, stat, sizeof(stat));
	pthread_mutex_unlock(&b->lock);
	return 0;
}
