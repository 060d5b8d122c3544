/* virtio-pmem's request queue; see pmem.h.
 *
 * States. IDLE: nothing popped. HELD: a batch popped, waiting for the
 * limiter, its wait armed (core/evwait.h, as rng.c). SYNCING: a batch popped, its fdatasync on the
 * ring, ring_op polling the ring's fd. Nothing is popped outside IDLE, so
 * a request is answered only by a sync that started after it was made.
 *
 * Locking as rng.c and blk.c: one mutex over everything that changes;
 * sync_done runs with it held (from blk_ring_reap in ring_ready, or from
 * blk_ring_wait / blk_ring_drain in pmem_drain, reset and destroy), and
 * pushes what it answers through d->after, which the caller runs. */
#include "pmem/pmem.h"

#include <errno.h>
#include <linux/time_types.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pmem.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blk/blk_ring.h"
#include "core/evwait.h"

enum pmem_state { IDLE, HELD, SYNCING };

/* What the guest gets for a request: the response's ret. */
#define RESP_OK	 0u
#define RESP_EIO 1u

struct pending {
	uint16_t head;
	uint8_t *resp; /* the chain's first writable segment, at least 4 bytes */
};

struct pmem {
	char *id;
	struct virtio_pmem_config cfg; /* little-endian, as the guest reads it */
	int fd;
	uint64_t file_bytes;
	struct evloop *loop;
	struct blk_ring *ring;
	struct blk_ring_op sync_op;
	struct ev_kick kick;   /* a new limit, to the loop */
	struct ev_op ring_op;  /* the loop's poll of the ring's fd */
	struct ev_op retry_op; /* a submit the kernel refused, again */
	struct __kernel_timespec retry_ts;
	pthread_cond_t idle; /* a sync ended: pmem_drain looks again */

	pthread_mutex_t lock; /* everything below */
	bool active, broken;
	struct ev_wait wait; /* the held batch's */
	bool held_counted;   /* the held batch was counted as throttled */
	bool logged_ring, logged_req, logged_sync, logged_timer, logged_submit;
	enum pmem_state state;
	struct virtio_after *after; /* sync_done's, while a caller reaps */
	struct vq *vq;
	struct virtio_host host;
	struct ratelimit rl;
	unsigned nbatch;
	struct pending batch[PMEM_QUEUE_MAX];
	struct vq_seg segs[VQ_MAX_INDIRECT];
	struct pmem_stats stats;
};

static void protocol_error(struct pmem *d, struct virtio_after *a, int err)
{
	d->stats.protocol_errors++;
	d->broken = true;
	a->reset = true;
	if (!d->logged_ring)
		pr_err("pmem %s: guest broke the queue (%s); device needs reset", d->id,
		       strerror(-err));
	d->logged_ring = true;
}

static void push(struct pmem *d, struct virtio_after *a, uint16_t head, uint32_t len)
{
	if (vq_push(d->vq, head, len) == 0)
		a->used = 1; /* queue 0 */
}

/* The request a chain carries, checked: its response's place, or NULL
 * with *why set when the chain is no flush request. */
static uint8_t *flush_request(const struct vq_chain *c, const char **why)
{
	const struct vq_seg *req = c->nseg ? &c->seg[0] : NULL;
	const struct vq_seg *resp = NULL;
	uint32_t type;

	for (uint32_t i = 0; i < c->nseg && !resp; i++)
		if (c->seg[i].write)
			resp = &c->seg[i];
	*why = NULL;
	if (!req || req->write || req->len < sizeof(struct virtio_pmem_req))
		*why = "no request in its first readable buffer";
	else if (!resp || resp->len < sizeof(struct virtio_pmem_resp))
		*why = "no room for the response in its first writable buffer";
	else if (memcpy(&type, req->host, sizeof(type)),
		 le32toh(type) != VIRTIO_PMEM_REQ_TYPE_FLUSH)
		*why = "a request type other than flush";
	return *why ? NULL : resp->host;
}

/* Pop every request available into the batch. Returns its size (0: the
 * queue is empty, notifications back on) or -errno for a broken queue.
 * The batch is always the chains popped last, none used (pmem_quiesce
 * gives them back with vq_discard): a chain that is no request, after
 * some that are, goes back to wait for the next batch, where it is the
 * first and is given back empty. Lock held, state IDLE. */
static int take(struct pmem *d, struct virtio_after *a)
{
	d->nbatch = 0;
	for (unsigned k = 0; d->nbatch < PMEM_QUEUE_MAX; k++) {
		struct vq_chain c = {.seg = d->segs, .cap = ARRAY_SIZE(d->segs)};
		const char *why;
		uint8_t *resp;
		int n;

		/* Chains that are no request, given back at once, end a
		 * batch of none too: notified again, the device goes on. */
		if (k == VIRTIO_BUDGET) {
			if (!d->nbatch)
				a->again |= 1u;
			break;
		}
		n = vq_pop(d->vq, &c);

		if (n < 0)
			return n;
		if (n == 0) {
			if (d->nbatch)
				break;
			vq_enable_notify(d->vq);
			if (!vq_has_work(d->vq))
				return 0;
			vq_disable_notify(d->vq);
			continue;
		}
		if (!(resp = flush_request(&c, &why)) && d->nbatch) {
			if (vq_discard(d->vq, 1) == 0)
				break;
		}
		if (!resp) {
			d->stats.errors++;
			if (!d->logged_req)
				pr_err("pmem %s: a chain with %s; given back empty", d->id, why);
			d->logged_req = true;
			push(d, a, c.head, 0);
			continue;
		}
		d->batch[d->nbatch++] = (struct pending){.head = c.head, .resp = resp};
	}
	return (int)d->nbatch;
}

/* Answer the batch with res (0 or -errno): back to IDLE. Lock held;
 * d->after set by whoever reaps, but for a reset or destroy, after which
 * the guest has forgotten the requests. */
static void answer_batch(struct pmem *d, int res)
{
	uint32_t ret = htole32(res == 0 ? RESP_OK : RESP_EIO);

	d->state = IDLE;
	pthread_cond_broadcast(&d->idle); /* pmem_drain sees it once we unlock */
	if (!d->active || d->broken || !d->after) {
		d->nbatch = 0;
		return;
	}
	if (res < 0) {
		d->stats.errors++;
		if (!d->logged_sync)
			pr_err("pmem %s: fdatasync: %s; the guest's flush fails", d->id,
			       strerror(-res));
		d->logged_sync = true;
	}
	for (unsigned i = 0; i < d->nbatch; i++) {
		memcpy(d->batch[i].resp, &ret, sizeof(ret));
		d->stats.requests++;
		push(d, d->after, d->batch[i].head, sizeof(ret));
	}
	d->nbatch = 0;
}

/* The batch's sync ended (-ECANCELED from a reset's drain). */
static void sync_done(struct blk_ring_op *op, int res)
{
	struct pmem *d = container_of(op, struct pmem, sync_op);

	d->stats.syncs++;
	answer_batch(d, res);
}

/* Arm the wait for ns, and the poll that lets a new limit cut it short.
 * Lock held, loop thread. When the timer cannot be armed, notifications
 * go back on, so that the guest's next kick tries again. */
static void arm_timer(struct pmem *d, uint64_t ns)
{
	int err;

	if ((err = ev_kick_arm(&d->kick, d->loop)) < 0 && err != -ESHUTDOWN)
		pr_err("pmem %s: cannot poll for new limits: %s", d->id, strerror(-err));
	if ((err = ev_wait_arm(&d->wait, d->loop, ns)) == 0)
		return;
	if (err != -ESHUTDOWN && !d->logged_timer) {
		pr_err("pmem %s: cannot arm the rate limiter's timer: %s", d->id, strerror(-err));
		d->logged_timer = true;
	}
	vq_enable_notify(d->vq);
}

#define RETRY_NS (10 * 1000000ull)

/* Hand the queued sync to the kernel and poll the ring for its end. One
 * the kernel does not take (short of memory) stays queued and is handed
 * over again from retry_op, as blk.c does: the loop never waits for it.
 * Lock held, loop thread. */
static void submit(struct pmem *d)
{
	int err = blk_ring_submit(d->ring);

	if (err < 0) {
		if (!d->logged_submit)
			pr_err("pmem %s: submitting its sync: %s; retrying", d->id, strerror(-err));
		d->logged_submit = true;
		if (!evloop_pending(&d->retry_op)) {
			evloop_ts_ns(&d->retry_ts, RETRY_NS);
			err = evloop_timeout(d->loop, &d->retry_op, &d->retry_ts);
			if (err < 0 && err != -ESHUTDOWN)
				pr_err("pmem %s: cannot arm its retry: %s", d->id, strerror(-err));
		}
	}
	if (!evloop_pending(&d->ring_op)) {
		err = evloop_poll(d->loop, &d->ring_op, blk_ring_fd(d->ring), POLLIN);
		if (err < 0 && err != -ESHUTDOWN)
			pr_err("pmem %s: polling its I/O ring: %s", d->id, strerror(-err));
	}
}

static void retry_done(struct ev_op *op, int res)
{
	struct pmem *d = container_of(op, struct pmem, retry_op);

	(void)res;
	pthread_mutex_lock(&d->lock);
	if (d->state == SYNCING && blk_ring_pending(d->ring))
		submit(d);
	pthread_mutex_unlock(&d->lock);
}

/* Start the held batch's sync. One that cannot even be queued fails its
 * requests at once. Lock held, loop thread. */
static void start_sync(struct pmem *d, struct virtio_after *a)
{
	int err = blk_ring_fsync(d->ring, &d->sync_op, d->fd, true);

	if (err < 0) {
		struct virtio_after *saved = d->after;

		d->after = a;
		answer_batch(d, err);
		d->after = saved;
		return;
	}
	d->state = SYNCING;
	submit(d);
}

/* Answer requests until the queue is empty, a sync runs or the limiter
 * says wait. Lock held, loop thread. */
static void process(struct pmem *d, struct virtio_after *a)
{
	while (d->active && !d->broken && d->state != SYNCING) {
		uint64_t now;
		int n;

		if (d->state == HELD && ev_wait_armed(&d->wait))
			return; /* the timer takes it up */
		if (d->state == IDLE) {
			vq_disable_notify(d->vq);
			n = take(d, a);
			if (n < 0)
				protocol_error(d, a, n);
			if (n <= 0)
				return;
			d->state = HELD;
			d->held_counted = false;
		}
		now = now_ns();
		if (!ratelimit_consume(&d->rl, now, d->file_bytes, 1)) {
			if (!d->held_counted)
				d->stats.rate_limiter_throttled++;
			d->held_counted = true;
			arm_timer(d, ratelimit_wait_ns(&d->rl, now, d->file_bytes, 1));
			return;
		}
		start_sync(d, a);
	}
}

static void timer_done(struct ev_op *op, int res)
{
	struct pmem *d = container_of(op, struct pmem, wait.op);
	struct virtio_after a = {.used = 0};

	pthread_mutex_lock(&d->lock);
	a.host = d->host;
	if (ev_wait_done(&d->wait, res))
		process(d, &a);
	else if (d->state == HELD && d->active && !d->broken)
		vq_enable_notify(d->vq); /* the loop stops: a later kick looks again */
	virtio_after_run(&a);
	pthread_mutex_unlock(&d->lock);
}

/* pmem_set_ratelimit changed the limit: a held batch looks again now. */
static void kick_done(struct ev_op *op, int res)
{
	struct pmem *d = container_of(op, struct pmem, kick.op);
	struct virtio_after a = {.used = 0};

	if ((res = ev_kick_take(&d->kick, res)) < 0) {
		if (res != -ECANCELED)
			pr_err("pmem %s: polling for new limits: %s", d->id, strerror(-res));
		return; /* the next timer polls again */
	}
	pthread_mutex_lock(&d->lock);
	/* An armed timer's done() runs next, once, and processes. */
	if (!ev_wait_recheck(&d->wait, d->loop)) {
		a.host = d->host;
		process(d, &a);
		virtio_after_run(&a);
	}
	pthread_mutex_unlock(&d->lock);
}

/* The ring has a completion (or the loop is stopping: -ECANCELED). */
static void ring_ready(struct ev_op *op, int res)
{
	struct pmem *d = container_of(op, struct pmem, ring_op);
	struct virtio_after a = {.used = 0};

	if (res < 0 && res != -ECANCELED)
		pr_err("pmem %s: polling its I/O ring: %s", d->id, strerror(-res));
	if (res < 0)
		return;
	pthread_mutex_lock(&d->lock);
	a.host = d->host;
	d->after = &a;
	blk_ring_reap(d->ring);
	d->after = NULL;
	process(d, &a);
	virtio_after_run(&a);
	pthread_mutex_unlock(&d->lock);
}

static uint64_t pmem_features(void *dev)
{
	(void)dev;
	return 0;
}

static void pmem_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct pmem *d = dev;

	virtio_config_copy(&d->cfg, sizeof(d->cfg), off, data, len);
}

/* Read-only: the guest cannot move the device. Counted, as Firecracker's
 * cfg_fails. */
static void pmem_config_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct pmem *d = dev;

	(void)off, (void)data, (void)len;
	pthread_mutex_lock(&d->lock);
	d->stats.cfg_fails++;
	pthread_mutex_unlock(&d->lock);
}

static int pmem_activate(void *dev, uint64_t features, struct vq *queues,
			 const struct virtio_host *host)
{
	struct pmem *d = dev;

	(void)features;
	pthread_mutex_lock(&d->lock);
	if (!queues[0].ready || queues[0].size > PMEM_QUEUE_MAX) {
		d->stats.activate_fails++;
		pthread_mutex_unlock(&d->lock);
		return -EINVAL;
	}
	d->vq = &queues[0];
	d->host = *host;
	d->active = true;
	d->broken = false;
	d->state = IDLE;
	d->nbatch = 0;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* Wait for a sync under way; its requests are dropped (the guest has
 * forgotten them), as is a held batch. A timer still armed finds nothing. */
static void pmem_reset(void *dev)
{
	struct pmem *d = dev;
	int err;

	pthread_mutex_lock(&d->lock);
	d->active = d->broken = false;
	d->after = NULL;
	if ((err = blk_ring_drain(d->ring)) < 0)
		pr_err("pmem %s: reset cannot wait for its sync: %s", d->id, strerror(-err));
	d->state = IDLE;
	d->nbatch = 0;
	d->vq = NULL;
	d->host = (struct virtio_host){0};
	pthread_mutex_unlock(&d->lock);
}

static void pmem_notify(void *dev, unsigned q)
{
	struct pmem *d = dev;
	struct virtio_after a = {.used = 0};

	if (q != 0)
		return;
	pthread_mutex_lock(&d->lock);
	a.host = d->host;
	process(d, &a);
	virtio_after_run(&a);
	pthread_mutex_unlock(&d->lock);
}

const struct virtio_dev_ops pmem_ops = {
    .device_id = VIRTIO_ID_PMEM,
    .num_queues = 1,
    .queue_max = PMEM_QUEUE_MAX,
    .features = pmem_features,
    .config_read = pmem_config_read,
    .config_write = pmem_config_write,
    .activate = pmem_activate,
    .reset = pmem_reset,
    .notify = pmem_notify,
};

int pmem_create(struct pmem **out, const struct pmem_params *p)
{
	struct pmem *d;
	int err;

	*out = NULL;
	if (!p->loop || p->fd < 0)
		return -EINVAL;
	if (!(d = calloc(1, sizeof(*d))) || !(d->id = strdup(p->id ? p->id : "?"))) {
		free(d);
		return -ENOMEM;
	}
	d->cfg = (struct virtio_pmem_config){.start = htole64(p->start), .size = htole64(p->size)};
	d->fd = p->fd;
	d->file_bytes = p->file_bytes;
	d->loop = p->loop;
	d->kick.fd = -1;
	d->sync_op = (struct blk_ring_op){.done = sync_done};
	d->ring_op = (struct ev_op){.done = ring_ready};
	ev_wait_init(&d->wait, timer_done);
	d->retry_op = (struct ev_op){.done = retry_done};
	if ((err = ratelimit_init(&d->rl, &p->rate_limiter, now_ns())) < 0) {
		pr_err("pmem %s: rate limiter: a value is over %lld", d->id, (long long)INT64_MAX);
		goto err;
	}
	/* One sync at a time. */
	if ((err = blk_ring_create(&d->ring, 1)) < 0) {
		pr_err("pmem %s: cannot create its I/O ring: %s", d->id, strerror(-err));
		goto err;
	}
	if ((err = ev_kick_init(&d->kick, kick_done)) < 0) {
		pr_err("pmem %s: eventfd: %s", d->id, strerror(-err));
		goto err;
	}
	cond_init_monotonic(&d->idle); /* for pmem_drain */
	pthread_mutex_init(&d->lock, NULL);
	*out = d;
	return 0;

err:
	blk_ring_destroy(d->ring);
	free(d->id);
	free(d);
	return err;
}

void pmem_destroy(struct pmem *d)
{
	int err;

	if (!d)
		return;
	if (evloop_pending(&d->ring_op) || evloop_pending(&d->wait.op) ||
	    evloop_pending(&d->kick.op) || evloop_pending(&d->retry_op)) {
		pr_err("pmem %s: destroyed while the event loop holds its timer or polls", d->id);
		return;
	}
	pthread_mutex_lock(&d->lock);
	d->active = false;
	d->after = NULL;
	err = blk_ring_drain(d->ring);
	pthread_mutex_unlock(&d->lock);
	if (err < 0) {
		pr_err("pmem %s: destroyed with its sync under way", d->id);
		return;
	}
	blk_ring_destroy(d->ring);
	ev_kick_close(&d->kick);
	pthread_cond_destroy(&d->idle);
	pthread_mutex_destroy(&d->lock);
	free(d->id);
	free(d);
}

int pmem_set_ratelimit(struct pmem *d, const struct ratelimit_cfg *cfg)
{
	int err;

	pthread_mutex_lock(&d->lock);
	err = ratelimit_update(&d->rl, cfg, now_ns());
	if (err == 0 && d->state == HELD)
		err = ev_kick_send(&d->kick);
	pthread_mutex_unlock(&d->lock);
	return err;
}

void pmem_save_limits(const struct pmem *d, struct ratelimit_state *st)
{
	ratelimit_save(&d->rl, now_ns(), st);
}

int pmem_restore_limits(struct pmem *d, const struct ratelimit_state *st)
{
	int err;

	pthread_mutex_lock(&d->lock);
	err = ratelimit_resume(&d->rl, st, now_ns());
	/* A reset in place: a timer armed for the buckets before. */
	if (err == 0 && ev_wait_armed(&d->wait) && ev_kick_send(&d->kick) < 0)
		pr_err("pmem %s: cannot wake the event loop for the restored limits", d->id);
	pthread_mutex_unlock(&d->lock);
	return err;
}

/* Wait for the sync under way, answering its requests here: the loop is
 * parked or gone. Lock held. */
static void wait_sync(struct pmem *d)
{
	struct virtio_after a = {.host = d->host};
	int err;

	if (d->state != SYNCING)
		return;
	d->after = &a;
	if ((err = blk_ring_wait(d->ring)) < 0)
		pr_err("pmem %s: cannot wait for its sync: %s", d->id, strerror(-err));
	d->after = NULL;
	virtio_after_run(&a);
}

int pmem_drain(struct pmem *d, uint64_t deadline_ns)
{
	bool busy;

	/* The loop reaps the sync and answers; answer_batch signals idle. */
	pthread_mutex_lock(&d->lock);
	while (d->state == SYNCING && now_ns() < deadline_ns)
		cond_wait_until(&d->idle, &d->lock, deadline_ns);
	busy = d->state == SYNCING;
	pthread_mutex_unlock(&d->lock);
	return busy ? -ETIMEDOUT : 0;
}

void pmem_quiesce(struct pmem *d)
{
	pthread_mutex_lock(&d->lock);
	/* The loop may have started another sync since pmem_drain. */
	wait_sync(d);
	if (d->state == HELD) {
		/* The batch is the last chains popped, none used. */
		if (vq_discard(d->vq, (uint16_t)d->nbatch) < 0)
			pr_err("pmem %s: cannot give back the requests the limiter keeps", d->id);
		d->nbatch = 0;
		d->state = IDLE;
	}
	if (d->active && !d->broken)
		vq_enable_notify(d->vq);
	pthread_mutex_unlock(&d->lock);
}

void pmem_get_stats(struct pmem *d, struct pmem_stats *out)
{
	pthread_mutex_lock(&d->lock);
	*out = d->stats;
	pthread_mutex_unlock(&d->lock);
}
