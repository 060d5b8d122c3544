/* virtio-rng: the whole device against fake guest memory and a real event
 * loop run in the test thread. The helpers play the guest driver. The rate
 * limiter reads a clock the tests move by hand (rng_test.h), except in the
 * test that times the real thing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/device_kinds.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "fake_driver.h"
#include "loop_watchdog.h"
#include "rng/rng.h"
#include "rng/rng_test.h"
#include "vq.h"

#define RAM   (4u << 20)
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000
#define BUF   0x10000
#define MS    1000000ull

static struct gmem *g;
static struct vq q;
static struct fake_ring ring = {.desc = DESC, .avail = AVAIL, .used = USED};
static struct evloop *loop;
static struct rng *r;
static unsigned used_calls, again_calls, resets;
static uint16_t want_used;
static _Atomic uint64_t fake_now;

/* The guest's side of a_guest_refilling_cannot_hold_the_device: a chain
 * added each time the device reads the clock, which it does once per
 * request, as a guest that polls the used ring adds one per answer. */
static bool refill;
static void refill_one(void);

static uint64_t fake_clock(void)
{
	if (refill)
		refill_one();
	return atomic_load(&fake_now);
}

static void *at(uint64_t gpa, uint64_t len)
{
	return fake_at(g, gpa, len);
}

static uint16_t used_idx(void)
{
	return fake_used_idx(&ring);
}

static void host_used(void *t, unsigned qi)
{
	(void)t;
	cr_assert_eq(qi, 0);
	used_calls++;
	if (used_idx() >= want_used)
		evloop_stop(loop);
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets++;
}

static void host_again(void *t, unsigned qi)
{
	(void)t;
	cr_assert_eq(qi, 0);
	again_calls++;
}

static const struct virtio_host host = {
    .used = host_used, .needs_reset = host_needs_reset, .again = host_again};

static void ring_start(void)
{
	vq_reset(&q);
	fake_ring_reset(&ring, g, 16);
	memset(at(DESC, 0x3000), 0, 0x3000);
	cr_assert_eq(vq_activate(&q, g, 16, DESC, AVAIL, USED, false), 0);
}

static void setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	cr_assert_eq(evloop_create(&loop, 64), 0);
	atomic_store(&fake_now, 1000 * MS);
	rng_test_set_clock(fake_clock);
	used_calls = again_calls = resets = 0;
	refill = false;
	want_used = UINT16_MAX;
}

static void teardown(void)
{
	evloop_destroy(loop); /* before the device: it may hold its timer */
	rng_destroy(r);
	r = NULL;
	rng_test_set_clock(NULL);
	gmem_destroy(g);
}

TestSuite(rng, .init = setup, .fini = teardown, .timeout = 10);

/* The device with limiter cfg (NULL: none), activated on a fresh queue. */
static void open_dev(const struct ratelimit_cfg *cfg)
{
	struct rng_params p = {.loop = loop};

	if (cfg)
		p.rate_limiter = *cfg;
	cr_assert_eq(rng_create(&r, &p), 0);
	ring_start();
	cr_assert_eq(rng_ops.activate(r, 0, &q, &host), 0);
}

static struct rng_stats stats(void)
{
	struct rng_stats s;
	rng_get_stats(r, &s);
	return s;
}

/* One device-writable buffer of len bytes at gpa, 0xee where the device
 * has not written, with 0xee guard bytes after it. */
static uint16_t offer_buf(uint64_t gpa, uint32_t len)
{
	struct sg s = {gpa, len, true};

	memset(at(gpa, len + 64), 0xee, len + 64);
	return fake_offer(&ring, &s, 1);
}

static bool all_ee(uint64_t gpa, uint32_t len)
{
	const uint8_t *p = at(gpa, len);

	for (uint32_t i = 0; i < len; i++)
		if (p[i] != 0xee)
			return false;
	return true;
}

/* Random bytes: not one run of 32 0xee bytes (odds 2^-256 per run). */
static bool random_looking(uint64_t gpa, uint32_t len)
{
	for (uint32_t i = 0; i + 32 <= len; i += 32)
		if (all_ee(gpa + i, 32))
			return false;
	return true;
}

/* Run the loop until the used index reaches k or ms have passed; returns
 * the loop's turns. */
static uint64_t run_until(uint16_t k, unsigned ms)
{
	struct evloop_stats before, after;

	evloop_get_stats(loop, &before);
	want_used = k;
	if (used_idx() < k)
		loop_run_for(loop, ms);
	want_used = UINT16_MAX;
	evloop_get_stats(loop, &after);
	return after.iterations - before.iterations;
}

static void kick(void)
{
	rng_ops.notify(r, 0);
}

/* Moves the fake clock on by delta_ms after ms of real time, while the
 * loop runs (a loop that stops drops its timer). */
struct advance {
	pthread_t t;
	unsigned ms, delta_ms;
};

static void *advance_thread(void *arg)
{
	struct advance *a = arg;

	usleep(a->ms * 1000u);
	atomic_fetch_add(&fake_now, a->delta_ms * MS);
	return NULL;
}

static void advance_later(struct advance *a, unsigned ms, unsigned delta_ms)
{
	a->ms = ms;
	a->delta_ms = delta_ms;
	cr_assert_eq(pthread_create(&a->t, NULL, advance_thread, a), 0);
}

Test(rng, ops_shape_and_no_config)
{
	uint8_t cfg[8];

	open_dev(NULL);
	cr_assert_eq(rng_ops.device_id, VIRTIO_ID_RNG);
	cr_assert_eq(rng_ops.num_queues, 1);
	cr_assert_eq(rng_ops.queue_max, RNG_QUEUE_MAX);
	cr_assert_eq(rng_ops.features(r), 0);
	memset(cfg, 0xaa, sizeof(cfg));
	rng_ops.config_read(r, 0, cfg, sizeof(cfg));
	for (unsigned i = 0; i < sizeof(cfg); i++)
		cr_assert_eq(cfg[i], 0);
	vq_reset(&q);
	fake_ring_reset(&ring, g, 512);
	cr_assert_eq(vq_activate(&q, g, 512, DESC, AVAIL, USED, false), 0);
	cr_assert_eq(rng_ops.activate(r, 0, &q, &host), -EINVAL, "a queue over RNG_QUEUE_MAX");
}

Test(rng, fills_every_writable_buffer_of_a_chain)
{
	struct sg s[] = {{BUF, 100, true}, {BUF + 0x1000, 200, true}};
	uint16_t head;
	struct rng_stats st;

	open_dev(NULL);
	memset(at(BUF, 0x2000), 0xee, 0x2000);
	head = fake_offer(&ring, s, 2);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(fake_used_elem(&ring, 0).id, head);
	cr_assert_eq(fake_used_elem(&ring, 0).len, 300);
	cr_assert(random_looking(BUF, 96));
	cr_assert(random_looking(BUF + 0x1000, 192));
	cr_assert(all_ee(BUF + 100, 0x1000 - 100), "past the first buffer");
	cr_assert(all_ee(BUF + 0x1000 + 200, 64), "past the second buffer");
	cr_assert_eq(used_calls, 1);
	st = stats();
	cr_assert_eq(st.requests, 1);
	cr_assert_eq(st.bytes, 300);
	cr_assert_eq(st.errors, 0);
	cr_assert_eq(resets, 0);
}

Test(rng, a_request_gets_at_most_64_KiB)
{
	open_dev(NULL);
	offer_buf(BUF, 100000);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(fake_used_elem(&ring, 0).len, RNG_REQ_MAX);
	cr_assert(random_looking(BUF + RNG_REQ_MAX - 64, 64));
	cr_assert(all_ee(BUF + RNG_REQ_MAX, 100000 - RNG_REQ_MAX));
	cr_assert_eq(stats().bytes, RNG_REQ_MAX);
}

static void refill_one(void)
{
	offer_buf(BUF, 16);
}

/* A guest that adds a request for each one answered cannot hold the
 * device's thread: it stops at VIRTIO_BUDGET requests and asks to be
 * notified again, which takes the rest. */
Test(rng, a_guest_refilling_cannot_hold_the_device)
{
	open_dev(NULL);
	offer_buf(BUF, 16);
	refill = true;
	kick();
	refill = false;
	cr_assert_eq(stats().requests, VIRTIO_BUDGET);
	cr_assert_eq(again_calls, 1);
	kick();
	cr_assert_eq(stats().requests, VIRTIO_BUDGET + 1, "the last request the guest added");
	cr_assert_eq(again_calls, 1);
}

/* A device-readable buffer makes the chain no request: given back empty,
 * counted, nothing written, and the queue goes on. */
Test(rng, a_read_only_buffer_is_refused)
{
	struct sg bad[] = {{BUF, 16, false}, {BUF + 0x1000, 64, true}};
	struct sg ro = {BUF + 0x2000, 64, false};
	struct rng_stats st;

	open_dev(NULL);
	memset(at(BUF, 0x3000), 0xee, 0x3000);
	fake_offer(&ring, bad, 2);
	fake_offer(&ring, &ro, 1);
	offer_buf(BUF + 0x4000, 32);
	kick();
	cr_assert_eq(used_idx(), 3);
	cr_assert_eq(fake_used_elem(&ring, 0).len, 0);
	cr_assert_eq(fake_used_elem(&ring, 1).len, 0);
	cr_assert_eq(fake_used_elem(&ring, 2).len, 32);
	cr_assert(all_ee(BUF, 0x3000), "a refused chain's buffers were written");
	st = stats();
	cr_assert_eq(st.errors, 2);
	cr_assert_eq(st.requests, 1);
	cr_assert_eq(st.bytes, 32);
	cr_assert_eq(resets, 0);
}

Test(rng, a_broken_queue_needs_reset)
{
	open_dev(NULL);
	/* avail->idx runs more than the queue size ahead. */
	((struct vring_avail *)at(AVAIL, 4))->idx = 40;
	kick();
	cr_assert_eq(resets, 1);
	cr_assert_eq(stats().protocol_errors, 1);
	kick(); /* nothing more until reset */
	cr_assert_eq(resets, 1);
	rng_ops.reset(r);
	ring_start();
	cr_assert_eq(rng_ops.activate(r, 0, &q, &host), 0);
	offer_buf(BUF, 16);
	kick();
	cr_assert_eq(used_idx(), 1);
}

/* One request per 100 ms, on the fake clock. */
static const struct ratelimit_cfg one_per_100ms = {.ops = {.size = 1, .refill_time_ms = 100}};

/* Two requests: the first passes, the second is kept, counted once, and
 * waits on a timer: while the limiter's clock stands still (350 ms here)
 * the timer fires and is armed again, a few loop turns, never a busy loop;
 * once the clock has moved on the next firing answers it. */
Test(rng, a_throttled_request_waits_on_a_timer)
{
	struct advance a;
	uint64_t t0, turns;

	open_dev(&one_per_100ms);
	offer_buf(BUF, 64);
	offer_buf(BUF + 0x1000, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(stats().rate_limiter_throttled, 1);
	kick(); /* the guest kicks again: still waiting */
	cr_assert_eq(used_idx(), 1);
	cr_assert(all_ee(BUF + 0x1000, 64));
	t0 = now_ns();
	advance_later(&a, 350, 100);
	turns = run_until(2, 2000);
	pthread_join(a.t, NULL);
	cr_assert_eq(used_idx(), 2);
	cr_assert_geq(now_ns() - t0, 350 * MS, "served before the limiter's clock moved");
	cr_assert_leq(turns, 12, "%llu loop turns: a busy wait", (unsigned long long)turns);
	cr_assert_geq(turns, 4, "the timer did not fire every 100 ms");
	cr_assert_eq(stats().rate_limiter_throttled, 1, "one request, counted once");
	cr_assert_eq(fake_used_elem(&ring, 1).len, 64);
	cr_assert(random_looking(BUF + 0x1000, 64));
	cr_assert_eq(stats().requests, 2);
}

/* The bandwidth bucket counts the bytes each request gets. */
Test(rng, bandwidth_is_counted_in_bytes)
{
	const struct ratelimit_cfg cfg = {.bandwidth = {.size = 1000, .refill_time_ms = 100}};

	open_dev(&cfg);
	offer_buf(BUF, 600);
	offer_buf(BUF + 0x1000, 400);
	offer_buf(BUF + 0x2000, 1);
	kick();
	cr_assert_eq(used_idx(), 2, "1000 bytes pass, the 1001st waits");
	cr_assert_eq(stats().rate_limiter_throttled, 1);
	atomic_fetch_add(&fake_now, 1 * MS); /* 10 bytes' worth */
	run_until(3, 2000);
	cr_assert_eq(used_idx(), 3);
	cr_assert_eq(stats().bytes, 1001);
}

/* The real clock: 1 KiB per 50 ms, three 1 KiB requests: the last is
 * answered 100 ms after the first, not much later, in few loop turns. */
Test(rng, real_clock_rate_without_busy_waiting)
{
	const struct ratelimit_cfg cfg = {.bandwidth = {.size = 1024, .refill_time_ms = 50}};
	uint64_t t0, dt, turns;

	rng_test_set_clock(NULL);
	open_dev(&cfg);
	for (unsigned i = 0; i < 3; i++)
		offer_buf(BUF + i * 0x1000u, 1024);
	t0 = now_ns();
	kick();
	cr_assert_eq(used_idx(), 1);
	turns = run_until(3, 2000);
	dt = now_ns() - t0;
	cr_assert_eq(used_idx(), 3);
	cr_assert_geq(dt, 99 * MS, "answered after %llu ms", (unsigned long long)(dt / MS));
	cr_assert_lt(dt, 600 * MS, "answered after %llu ms", (unsigned long long)(dt / MS));
	cr_assert_leq(turns, 10, "%llu loop turns", (unsigned long long)turns);
	cr_assert_eq(stats().rate_limiter_throttled, 2);
}

/* A reset drops the kept request: when its timer fires, nothing is written
 * to its buffer nor given back; the next generation works. */
Test(rng, reset_while_throttled_drops_the_request)
{
	open_dev(&one_per_100ms);
	offer_buf(BUF, 64);
	offer_buf(BUF + 0x1000, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	rng_ops.reset(r);
	vq_reset(&q); /* what the transport does after ops->reset */
	atomic_fetch_add(&fake_now, 100 * MS);
	run_until(2, 300); /* the timer fires into nothing */
	cr_assert_eq(used_idx(), 1);
	cr_assert(all_ee(BUF + 0x1000, 64), "the dropped request was filled");
	cr_assert_eq(stats().requests, 1);
	cr_assert_eq(stats().protocol_errors, 0, "the timer used the reset queue");
	cr_assert_eq(resets, 0);

	ring_start();
	cr_assert_eq(rng_ops.activate(r, 0, &q, &host), 0);
	offer_buf(BUF + 0x2000, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert(random_looking(BUF + 0x2000, 64));
	cr_assert(all_ee(BUF + 0x1000, 64));
}

/* A reset with the timer still armed, then a new generation throttled in
 * its turn: the old timer, firing, does not serve the new request early;
 * the new one is served once the clock allows. */
Test(rng, stale_timer_after_reset_respects_the_limit)
{
	struct advance a;
	uint64_t t0;

	open_dev(&one_per_100ms);
	offer_buf(BUF, 64);
	offer_buf(BUF + 0x1000, 64);
	kick();
	rng_ops.reset(r);
	ring_start();
	cr_assert_eq(rng_ops.activate(r, 0, &q, &host), 0);
	offer_buf(BUF + 0x2000, 64);
	kick(); /* the bucket is still empty: kept, the old timer armed */
	cr_assert_eq(used_idx(), 0);
	t0 = now_ns();
	advance_later(&a, 300, 100);
	run_until(1, 2000);
	pthread_join(a.t, NULL);
	cr_assert_eq(used_idx(), 1);
	cr_assert_geq(now_ns() - t0, 300 * MS, "served before the clock moved");
	cr_assert(all_ee(BUF + 0x1000, 64));
}

static void *lift_limit(void *arg)
{
	const struct ratelimit_cfg none = {0};

	(void)arg;
	usleep(50000); /* the loop waits on the hour-long timer */
	cr_assert_eq(rng_set_ratelimit(r, &none), 0);
	return NULL;
}

/* A request waiting for an hour under the old limit is answered at once
 * when another thread lifts the limit while the loop waits. */
Test(rng, a_new_limit_from_another_thread_wakes_the_waiting_request)
{
	const struct ratelimit_cfg hourly = {.ops = {.size = 1, .refill_time_ms = 3600000}};
	pthread_t t;

	open_dev(&hourly);
	offer_buf(BUF, 64);
	offer_buf(BUF + 0x1000, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(pthread_create(&t, NULL, lift_limit, NULL), 0);
	run_until(2, 2000);
	pthread_join(t, NULL);
	cr_assert_eq(used_idx(), 2, "still waiting after the limit was lifted");
	cr_assert(random_looking(BUF + 0x1000, 64));
}

/* A new limit keeps what the bucket holds (ratelimit_update): an empty ops
 * bucket given a larger size is still empty, and refills at the new rate. */
Test(rng, a_new_limit_keeps_the_bucket)
{
	const struct ratelimit_cfg two = {.ops = {.size = 2, .refill_time_ms = 100}};
	struct advance a;
	uint64_t t0;

	open_dev(&one_per_100ms);
	offer_buf(BUF, 64);
	offer_buf(BUF + 0x1000, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(rng_set_ratelimit(r, &two), 0);
	t0 = now_ns();
	advance_later(&a, 200, 50); /* one token at 2 per 100 ms */
	run_until(2, 2000);
	pthread_join(a.t, NULL);
	cr_assert_eq(used_idx(), 2);
	cr_assert_geq(now_ns() - t0, 200 * MS, "the update refilled the bucket");
}

Test(rng, limits_over_int64_are_refused)
{
	struct ratelimit_cfg bad = {
	    .bandwidth = {.size = (uint64_t)INT64_MAX + 1, .refill_time_ms = 1}};
	struct rng_params p = {.rate_limiter = bad, .loop = loop};
	struct rng *x = (struct rng *)1;

	cr_assert_eq(rng_create(&x, &p), -EINVAL);
	cr_assert_null(x);
	open_dev(NULL);
	cr_assert_eq(rng_set_ratelimit(r, &bad), -EINVAL);
	offer_buf(BUF, 64);
	kick();
	cr_assert_eq(used_idx(), 1, "the limiter was left as it was: none");
}

/* ---- snapshot: quiesce ------------------------------------------------- */

static bool notifications_on(void)
{
	const struct vring_used *u = at(USED, 4);
	return !(u->flags & VRING_USED_F_NO_NOTIFY);
}

/* The request the limiter keeps goes back to the guest: last_avail rewound,
 * the used index unchanged, its buffer untouched, notifications on. A kick
 * takes it again and it is served, once, when the limiter allows. */
Test(rng, quiesce_gives_back_the_kept_request)
{
	uint16_t h2;

	open_dev(&one_per_100ms);
	offer_buf(BUF, 64);
	h2 = offer_buf(BUF + 0x1000, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(q.last_avail, 2);
	cr_assert_not(notifications_on());

	rng_quiesce(r);
	cr_assert_eq(q.last_avail, 1, "the kept request was not given back");
	cr_assert_eq(q.next_used, 1);
	cr_assert_eq(used_idx(), 1);
	cr_assert(all_ee(BUF + 0x1000, 64));
	cr_assert(notifications_on());

	kick(); /* the bucket is still empty: taken and kept again */
	cr_assert_eq(q.last_avail, 2);
	cr_assert_eq(used_idx(), 1);
	atomic_fetch_add(&fake_now, 100 * MS);
	run_until(2, 2000);
	cr_assert_eq(used_idx(), 2, "the request given back was never served");
	cr_assert_eq(fake_used_elem(&ring, 1).id, h2);
	cr_assert_eq(fake_used_elem(&ring, 1).len, 64);
	cr_assert(random_looking(BUF + 0x1000, 64));
	cr_assert_eq(stats().requests, 2);
}

/* Nothing kept: quiesce changes nothing and the device goes on. */
Test(rng, quiesce_with_nothing_kept_changes_nothing)
{
	open_dev(NULL);
	offer_buf(BUF, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	rng_quiesce(r);
	cr_assert_eq(q.last_avail, 1);
	cr_assert_eq(q.next_used, 1);
	cr_assert(notifications_on());
	offer_buf(BUF + 0x1000, 64);
	kick();
	cr_assert_eq(used_idx(), 2);
	cr_assert(random_looking(BUF + 0x1000, 64));
}

/* The kind: a quiesce, nothing to drain; its save is the limiter's. */
Test(rng, kind_snapshot_hooks)
{
	cr_assert_null(rng_kind.drain);
	cr_assert_not_null(rng_kind.quiesce);
	cr_assert_not_null(rng_kind.save);
	cr_assert_not_null(rng_kind.restore);
}

/* The device's section restored into a fresh device (the restored VM's),
 * which then serves a request on a fresh ring; returns the restore's. */
static int restore_into_fresh(const struct wbuf *w, const struct ratelimit_cfg *cfg, char *err,
			      size_t errlen)
{
	struct rng_params p = {.loop = loop, .rate_limiter = *cfg};
	struct rng *fresh = NULL;
	struct rbuf rb;
	int ret;

	cr_assert_eq(rng_create(&fresh, &p), 0);
	rbuf_init(&rb, w->p, w->len);
	ret = rng_kind.restore(fresh, &rb, err, errlen);
	rng_destroy(r);
	r = fresh;
	ring_start();
	cr_assert_eq(rng_ops.activate(r, 0, &q, &host), 0);
	offer_buf(BUF, 64);
	kick();
	return ret;
}

/* A snapshot keeps what the bucket held, as Firecracker's does: the token
 * spent before the save is still spent in the restored device. */
Test(rng, a_snapshot_keeps_the_bucket)
{
	struct wbuf w;
	char err[256];

	open_dev(&one_per_100ms);
	offer_buf(BUF, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	wbuf_init(&w);
	cr_assert_eq(rng_kind.save(r, &w), 0);
	cr_assert_eq(restore_into_fresh(&w, &one_per_100ms, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(used_idx(), 0, "the restored bucket was full");
	cr_assert_eq(stats().rate_limiter_throttled, 1);
	atomic_fetch_add(&fake_now, 100 * MS);
	run_until(1, 2000);
	cr_assert_eq(used_idx(), 1, "the refill did not serve it");
	wbuf_free(&w);
}

/* A snapshot from before limiters were saved (no state of the kind's own)
 * starts the bucket full; a device with other limits (PATCHed, then reset
 * in place) keeps its own, with the saved bucket brought to them; a state
 * no limiter can be in is refused naming the limiter. */
Test(rng, a_snapshot_without_or_with_a_bad_bucket)
{
	const struct ratelimit_cfg two = {.ops = {.size = 2, .refill_time_ms = 100}};
	struct ratelimit_state st = {.cfg = one_per_100ms, .ops = {.tokens = 2}};
	struct wbuf w;
	char err[256];

	open_dev(&one_per_100ms);
	wbuf_init(&w);
	cr_assert_eq(restore_into_fresh(&w, &one_per_100ms, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(used_idx(), 1, "no saved state: the bucket starts full");

	cr_assert_eq(rng_kind.save(r, &w), 0); /* its one token spent */
	cr_assert_eq(restore_into_fresh(&w, &two, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(used_idx(), 0, "the bucket was refilled");
	atomic_fetch_add(&fake_now, 50 * MS); /* one token at two per 100 ms */
	run_until(1, 2000);
	cr_assert_eq(used_idx(), 1, "not at the device's own rate");

	wbuf_free(&w);
	wbuf_init(&w);
	cr_assert_eq(kind_limits_save(&w, &st, 1), 0); /* 2 tokens in a bucket of 1 */
	cr_assert_eq(restore_into_fresh(&w, &one_per_100ms, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "its rate limiter is in a state no limiter can be in"), "%s", err);

	w.len -= 1; /* cut short */
	cr_assert_eq(restore_into_fresh(&w, &one_per_100ms, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "malformed"), "%s", err);
	w.p[0] = 9; /* another version */
	w.len += 1;
	cr_assert_eq(restore_into_fresh(&w, &one_per_100ms, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "of another version"), "%s", err);
	wbuf_free(&w);
}

/* Restored limits (a reset in place) reach a request already waiting on a
 * timer armed for the buckets before: a token restored lets it go now,
 * not when the old timer would have gone off (100 s). Found by a review. */
Test(rng, restored_limits_cut_an_armed_wait_short)
{
	const struct ratelimit_cfg slow = {.ops = {.size = 1, .refill_time_ms = 100000}};
	const struct ratelimit_state st = {.cfg = slow, .ops = {.tokens = 1}};

	open_dev(&slow);
	offer_buf(BUF, 64);
	offer_buf(BUF + 0x1000, 64);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(rng_restore_limits(r, &st), 0);
	run_until(2, 2000);
	cr_assert_eq(used_idx(), 2, "the old timer held the restored token");
}
