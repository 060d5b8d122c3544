/* virtio-rng; see rng.h. Requests are popped one at a time, charged to the
 * rate limiter, filled with getrandom(2) straight into guest memory (the
 * segments vq_pop validated) and given back.
 *
 * Throttling. A request the limiter refuses stays popped in r->chain and
 * the queue stops behind it, with notifications off: the guest's kicks cost
 * no exit meanwhile. One timer (wait) is armed for ratelimit_wait_ns();
 * when it fires the loop takes the queue up again. A new limit
 * (rng_set_ratelimit, on another thread) may let the kept request pass
 * sooner: that thread sends the kick, which the loop polls once a timer
 * has been armed, and the loop cancels the timer and looks again at once
 * (core/evwait.h).
 *
 * Threads and locking as blk.c: one mutex over everything that changes;
 * host->used and host->needs_reset are called with it held (they take no
 * lock, virtio.h). Ops are submitted on the loop thread only (notify, the
 * timer and the poll), as blk.c does; reset on a vCPU thread leaves the
 * timer to fire into nothing. */
#include "rng/rng.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/evwait.h"
#include "rng/rng_test.h"

struct rng {
	struct evloop *loop;
	uint64_t (*now)(void);
	struct ev_kick kick; /* a new limit, to the loop */

	pthread_mutex_t lock; /* everything below */
	bool active;	      /* activated, not reset */
	bool broken;	      /* needs_reset asked: pop nothing more */
	bool held;	      /* chain is popped and waits for the limiter */
	bool held_counted;    /* and was counted as throttled */
	bool logged_ring, logged_req, logged_host, logged_timer;
	uint32_t held_len; /* bytes the kept request will get */
	struct vq *vq;
	struct virtio_host host;
	struct ratelimit rl;
	struct ev_wait wait; /* the kept request's */
	struct vq_chain chain;
	struct vq_seg segs[VQ_MAX_INDIRECT];
	struct rng_stats stats;
};

static void protocol_error(struct rng *r, struct virtio_after *a, int err)
{
	r->stats.protocol_errors++;
	r->broken = true;
	a->reset = true;
	if (!r->logged_ring)
		pr_err("entropy: guest broke the queue (%s); device needs reset", strerror(-err));
	r->logged_ring = true;
}

static void push(struct rng *r, struct virtio_after *a, uint16_t head, uint32_t len)
{
	if (vq_push(r->vq, head, len) == 0)
		a->used = 1; /* queue 0 */
}

/* Fill the first len writable bytes of c from the host. Returns 0 or
 * -errno (the guest then gets nothing). */
static int fill(const struct vq_chain *c, uint32_t len)
{
	for (uint32_t i = 0; i < c->nseg && len; i++) {
		uint8_t *p = c->seg[i].host;
		uint32_t n = c->seg[i].len < len ? c->seg[i].len : len;

		len -= n;
		while (n) {
			/* Never blocks the loop: a host whose pool is not
			 * ready yet fails the request instead. EINTR: a vCPU
			 * kick, when notify came on a vCPU thread. */
			ssize_t got = getrandom(p, n, GRND_NONBLOCK);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return got < 0 ? -errno : -EIO;
			p += got;
			n -= (uint32_t)got;
		}
	}
	return 0;
}

/* Arm the wait for ns, and the poll that lets a new limit cut it short.
 * Lock held, loop thread. When the timer cannot be armed, notifications
 * go back on, so that the guest's next kick tries again. */
static void arm_timer(struct rng *r, uint64_t ns)
{
	int err;

	if ((err = ev_kick_arm(&r->kick, r->loop)) < 0 && err != -ESHUTDOWN)
		pr_err("entropy: cannot poll for new limits: %s", strerror(-err));
	if ((err = ev_wait_arm(&r->wait, r->loop, ns)) == 0)
		return;
	if (err != -ESHUTDOWN && !r->logged_timer) {
		pr_err("entropy: cannot arm the rate limiter's timer: %s", strerror(-err));
		r->logged_timer = true;
	}
	vq_enable_notify(r->vq);
}

/* Take the next chain into r->chain as the kept request, *left counting
 * down the chains taken. Returns 1, 0 when the queue is empty
 * (notifications back on) or *left is 0 (asked to be notified again), or
 * -errno for a broken queue. Chains no request can use are given back
 * empty here. */
static int take(struct rng *r, struct virtio_after *a, unsigned *left)
{
	for (;;) {
		int n;

		if (!*left) {
			a->again |= 1u;
			return 0;
		}
		r->chain = (struct vq_chain){.seg = r->segs, .cap = ARRAY_SIZE(r->segs)};
		n = vq_pop(r->vq, &r->chain);
		if (n < 0)
			return n;
		if (n > 0)
			(*left)--;
		if (n == 0) {
			vq_enable_notify(r->vq);
			if (!vq_has_work(r->vq))
				return 0;
			vq_disable_notify(r->vq);
			continue;
		}
		if (r->chain.readable || !r->chain.writable) {
			r->stats.errors++;
			if (!r->logged_req)
				pr_err("entropy: a request with %s; given back empty",
				       r->chain.readable ? "a device-readable buffer"
							 : "no writable byte");
			r->logged_req = true;
			push(r, a, r->chain.head, 0);
			continue;
		}
		r->held = true;
		r->held_counted = false;
		r->held_len = r->chain.writable < RNG_REQ_MAX ? r->chain.writable : RNG_REQ_MAX;
		return 1;
	}
}

/* Answer requests until the queue is empty, the limiter says wait, or
 * VIRTIO_BUDGET chains were taken. Lock held, loop thread. */
static void process(struct rng *r, struct virtio_after *a)
{
	unsigned left = VIRTIO_BUDGET;

	if (!r->active || r->broken)
		return;
	if (r->held && ev_wait_armed(&r->wait))
		return; /* the timer takes it up */
	vq_disable_notify(r->vq);
	for (;;) {
		uint64_t now;
		int err;

		if (!r->held) {
			err = take(r, a, &left);
			if (err < 0)
				protocol_error(r, a, err);
			if (err <= 0)
				return;
		}
		now = r->now();
		if (!ratelimit_consume(&r->rl, now, r->held_len, 1)) {
			if (!r->held_counted)
				r->stats.rate_limiter_throttled++;
			r->held_counted = true;
			arm_timer(r, ratelimit_wait_ns(&r->rl, now, r->held_len, 1));
			return;
		}
		r->held = false;
		err = fill(&r->chain, r->held_len);
		if (err < 0) {
			r->stats.errors++;
			if (!r->logged_host)
				pr_err("entropy: getrandom: %s; request given back empty",
				       strerror(-err));
			r->logged_host = true;
			push(r, a, r->chain.head, 0);
			continue;
		}
		r->stats.requests++;
		r->stats.bytes += r->held_len;
		push(r, a, r->chain.head, r->held_len);
	}
}

/* The kept request's wait is over, or a new limit cut it short; or the
 * loop is stopping and takes no new op. */
static void timer_done(struct ev_op *op, int res)
{
	struct rng *r = container_of(op, struct rng, wait.op);
	struct virtio_after a = {.used = 0};

	pthread_mutex_lock(&r->lock);
	if (ev_wait_done(&r->wait, res)) {
		a.host = r->host;
		process(r, &a);
		virtio_after_run(&a);
	} else if (r->held && r->active && !r->broken) {
		/* The loop stops and drops the timer: should it run again,
		 * the guest's next kick takes the kept request up. */
		vq_enable_notify(r->vq);
	}
	pthread_mutex_unlock(&r->lock);
}

/* rng_set_ratelimit changed the limit: a kept request looks again now. */
static void kick_done(struct ev_op *op, int res)
{
	struct rng *r = container_of(op, struct rng, kick.op);
	struct virtio_after a = {.used = 0};

	if ((res = ev_kick_take(&r->kick, res)) < 0) {
		if (res != -ECANCELED)
			pr_err("entropy: polling for new limits: %s", strerror(-res));
		return; /* the next timer polls again */
	}
	pthread_mutex_lock(&r->lock);
	/* An armed timer's done() runs next, once, and processes. */
	if (!ev_wait_recheck(&r->wait, r->loop)) {
		a.host = r->host;
		process(r, &a);
		virtio_after_run(&a);
	}
	pthread_mutex_unlock(&r->lock);
}

static uint64_t rng_features(void *dev)
{
	(void)dev;
	return 0;
}

static void rng_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	/* No configuration space. */
	(void)dev, (void)off;
	memset(data, 0, len);
}

static void rng_config_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	(void)dev, (void)off, (void)data, (void)len;
}

static int rng_activate(void *dev, uint64_t features, struct vq *queues,
			const struct virtio_host *host)
{
	struct rng *r = dev;

	(void)features;
	if (!queues[0].ready || queues[0].size > RNG_QUEUE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->vq = &queues[0];
	r->host = *host;
	r->active = true;
	r->broken = r->held = false;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* Drop the kept request: the guest has forgotten it. A timer still armed
 * finds nothing to do. */
static void rng_reset(void *dev)
{
	struct rng *r = dev;

	pthread_mutex_lock(&r->lock);
	r->active = r->broken = r->held = false;
	r->vq = NULL;
	r->host = (struct virtio_host){0};
	pthread_mutex_unlock(&r->lock);
}

static void rng_notify(void *dev, unsigned q)
{
	struct rng *r = dev;
	struct virtio_after a = {.used = 0};

	if (q != 0)
		return;
	pthread_mutex_lock(&r->lock);
	a.host = r->host;
	process(r, &a);
	virtio_after_run(&a);
	pthread_mutex_unlock(&r->lock);
}

const struct virtio_dev_ops rng_ops = {
    .device_id = VIRTIO_ID_RNG,
    .num_queues = 1,
    .queue_max = RNG_QUEUE_MAX,
    .features = rng_features,
    .config_read = rng_config_read,
    .config_write = rng_config_write,
    .activate = rng_activate,
    .reset = rng_reset,
    .notify = rng_notify,
};

/* rng_test_set_clock (rng_test.h): NULL but in tests. */
static uint64_t (*test_clock)(void);

void rng_test_set_clock(uint64_t (*now)(void))
{
	test_clock = now;
}

int rng_create(struct rng **out, const struct rng_params *p)
{
	struct rng *r;
	int err;

	*out = NULL;
	if (!p->loop)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = p->loop;
	r->kick.fd = -1;
	r->now = test_clock ? test_clock : now_ns;
	ev_wait_init(&r->wait, timer_done);
	err = ratelimit_init(&r->rl, &p->rate_limiter, r->now());
	if (err) {
		pr_err("entropy: rate limiter: a value is over %lld", (long long)INT64_MAX);
		goto err_free;
	}
	if ((err = ev_kick_init(&r->kick, kick_done)) < 0) {
		pr_err("entropy: eventfd: %s", strerror(-err));
		goto err_free;
	}
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;

err_free:
	free(r);
	return err;
}

void rng_destroy(struct rng *r)
{
	if (!r)
		return;
	if (evloop_pending(&r->wait.op) || evloop_pending(&r->kick.op)) {
		/* The loop still runs, or never ran and still holds them. */
		pr_err("entropy: destroyed while the event loop holds its timer or poll");
		return;
	}
	ev_kick_close(&r->kick);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int rng_set_ratelimit(struct rng *r, const struct ratelimit_cfg *cfg)
{
	int err;

	pthread_mutex_lock(&r->lock);
	err = ratelimit_update(&r->rl, cfg, r->now());
	if (err == 0 && r->held)
		err = ev_kick_send(&r->kick);
	pthread_mutex_unlock(&r->lock);
	return err;
}

void rng_save_limits(const struct rng *r, struct ratelimit_state *st)
{
	ratelimit_save(&r->rl, r->now(), st);
}

int rng_restore_limits(struct rng *r, const struct ratelimit_state *st)
{
	int err;

	pthread_mutex_lock(&r->lock);
	err = ratelimit_resume(&r->rl, st, r->now());
	/* A reset in place: a timer armed for the buckets before. */
	if (err == 0 && ev_wait_armed(&r->wait) && ev_kick_send(&r->kick) < 0)
		pr_err("entropy: cannot wake the event loop for the restored limits");
	pthread_mutex_unlock(&r->lock);
	return err;
}

void rng_quiesce(struct rng *r)
{
	pthread_mutex_lock(&r->lock);
	if (r->held) {
		/* The last chain popped: process() stops behind it. The next
		 * take() counts it as throttled again, if it still is. */
		if (vq_discard(r->vq, 1) < 0)
			pr_err("entropy: cannot give back the request the limiter keeps");
		r->held = false;
	}
	/* process() left them off behind the kept request. */
	if (r->active && !r->broken)
		vq_enable_notify(r->vq);
	pthread_mutex_unlock(&r->lock);
}

void rng_get_stats(struct rng *r, struct rng_stats *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->stats;
	pthread_mutex_unlock(&r->lock);
}
