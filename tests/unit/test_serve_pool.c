/* flint serve's pool: every transition of requests (run now on a warm or a
 * new VM, queued, refused for each reason, admitted from the queue, timed
 * out, cancelled, completed) and of VMs (warm started, ready, failed and
 * replaced with a back-off, busy, back to ready under reuse, retired,
 * evicted, stopped when idle or drained), every limit (max_concurrency,
 * the function's and the global queue, VMs, memory), fairness between
 * functions contending for a global limit, draining, registrations' VMs
 * under the same limits and in the same queue, and a randomized run
 * of thousands of operations against a model, with the invariants checked
 * after each. Time is passed in, so every expectation is exact. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serve/pool.h"

#define NACT 512

static struct pool *p;
static struct pool_act acts[NACT];
static unsigned nacts;

static void teardown(void)
{
	pool_destroy(p);
	p = NULL;
}

TestSuite(pool, .fini = teardown);

static void mkpool_cfg(const struct pool_cfg *c)
{
	cr_assert_eq(pool_create(c, 0, &p), 0);
}

static void mkpool(uint32_t vms, uint64_t mem, uint32_t queued)
{
	struct pool_cfg c = {.max_vms = vms, .max_mem_mib = mem, .max_queued = queued};

	mkpool_cfg(&c);
}

static struct pool_fn_cfg fcfg(uint32_t conc, uint32_t mem, uint32_t warm, uint32_t qmax)
{
	return (struct pool_fn_cfg){
	    .max_concurrency = conc,
	    .mem_mib = mem,
	    .min_warm = warm,
	    .isolation = POOL_PER_REQUEST,
	    .queue_max = qmax,
	    .queue_timeout_ns = 1000,
	};
}

static uint64_t addfn_cfg(const struct pool_fn_cfg *c, uint64_t now)
{
	uint64_t id = 0;

	cr_assert_eq(pool_fn_add(p, c, NULL, now, &id), 0);
	cr_assert_neq(id, 0);
	return id;
}

static uint64_t addfn(uint32_t conc, uint32_t mem, uint32_t warm, uint32_t qmax)
{
	struct pool_fn_cfg c = fcfg(conc, mem, warm, qmax);

	return addfn_cfg(&c, 0);
}

static unsigned take(void)
{
	nacts = 0;
	while (nacts < NACT && pool_next_act(p, &acts[nacts]))
		nacts++;
	cr_assert_lt(nacts, NACT);
	return nacts;
}

static struct pool_admit sub(uint64_t fn, uint64_t now)
{
	struct pool_admit a;

	cr_assert_eq(pool_submit(p, fn, NULL, now, &a), 0);
	return a;
}

static uint64_t run_new(uint64_t fn, uint64_t now)
{
	struct pool_admit a = sub(fn, now);

	cr_assert_eq(a.kind, POOL_RUN);
	cr_assert_not(a.warm);
	cr_assert_neq(a.vm, 0);
	return a.req;
}

static uint64_t queued(uint64_t fn, uint64_t now)
{
	struct pool_admit a = sub(fn, now);

	cr_assert_eq(a.kind, POOL_QUEUED, "kind %d reason %d", a.kind, a.reason);
	cr_assert_neq(a.req, 0);
	return a.req;
}

static void refused(uint64_t fn, uint64_t now, enum pool_refuse why)
{
	struct pool_admit a = sub(fn, now);

	cr_assert_eq(a.kind, POOL_REFUSED);
	cr_assert_eq(a.reason, why, "reason %s, not %s", pool_refuse_name(a.reason),
		     pool_refuse_name(why));
	cr_assert_eq(a.req, 0);
}

static struct pool_stats fstats(uint64_t fn)
{
	struct pool_stats st;

	cr_assert_eq(pool_fn_stats(p, fn, &st), 0);
	return st;
}

static struct pool_stats gstats(void)
{
	struct pool_stats st;

	pool_stats(p, &st);
	return st;
}

/* The WARM actions just taken, all of function fn: their VMs, in ids[]. */
static void warms(uint64_t fn, unsigned n, uint64_t *ids)
{
	cr_assert_eq(take(), n, "%u actions, not %u WARM", nacts, n);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(acts[i].kind, POOL_ACT_WARM);
		cr_assert_eq(acts[i].fn, fn);
		if (ids)
			ids[i] = acts[i].vm;
	}
}

static void no_acts(void)
{
	cr_assert_eq(take(), 0, "unexpected action %d", nacts ? (int)acts[0].kind : -1);
}

/* ---- configuration ------------------------------------------------------- */

Test(pool, create_refuses_bad_limits)
{
	struct pool_cfg ok = {.max_vms = 1, .max_mem_mib = 1};
	struct pool_cfg bad[] = {
	    {.max_vms = 0, .max_mem_mib = 1},
	    {.max_vms = 1, .max_mem_mib = 0},
	    {.max_vms = 1, .max_mem_mib = 1, .warm_retry_ns = 10, .warm_retry_max_ns = 9},
	};

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(pool_create(&bad[i], 0, &p), -EINVAL);
	cr_assert_eq(pool_create(&ok, 0, &p), 0);
	pool_destroy(NULL);
}

Test(pool, fn_add_refuses_bad_config)
{
	struct pool_fn_cfg c;
	uint64_t id = 77;

	mkpool(4, 1024, 4);
	c = fcfg(0, 128, 0, 0);
	cr_assert_eq(pool_fn_add(p, &c, NULL, 0, &id), -EINVAL);
	c = fcfg(1, 0, 0, 0);
	cr_assert_eq(pool_fn_add(p, &c, NULL, 0, &id), -EINVAL);
	c = fcfg(1, 128, 0, 1);
	c.queue_timeout_ns = 0;
	cr_assert_eq(pool_fn_add(p, &c, NULL, 0, &id), -EINVAL);
	c = fcfg(1, 128, 0, 0);
	c.isolation = POOL_REUSE;
	c.reuse_max = 0;
	cr_assert_eq(pool_fn_add(p, &c, NULL, 0, &id), -EINVAL);
	c = fcfg(1, 128, 0, 0);
	c.isolation = 7;
	cr_assert_eq(pool_fn_add(p, &c, NULL, 0, &id), -EINVAL);
	c = fcfg(1, 1025, 0, 0);
	cr_assert_eq(pool_fn_add(p, &c, NULL, 0, &id), -E2BIG);
	cr_assert_eq(id, 77, "id written on failure");
	/* Queue timeout 0 is fine without a queue; reuse_max ignored per
	 * request. */
	c = fcfg(1, 1024, 0, 0);
	c.queue_timeout_ns = 0;
	c.reuse_max = 0;
	cr_assert_eq(pool_fn_add(p, &c, NULL, 0, &id), 0);
	no_acts();
}

Test(pool, names)
{
	cr_assert_str_eq(pool_refuse_name(POOL_REFUSE_UNKNOWN), "unknown");
	cr_assert_str_eq(pool_refuse_name(POOL_REFUSE_DRAINING), "draining");
	cr_assert_str_eq(pool_refuse_name(POOL_REFUSE_FN_FULL), "fn_full");
	cr_assert_str_eq(pool_refuse_name(POOL_REFUSE_LIMITS), "limits");
	cr_assert_str_eq(pool_refuse_name(POOL_REFUSE_TIMEOUT), "timeout");
	cr_assert_str_eq(pool_refuse_name(POOL_REFUSE_COUNT), "?");
	cr_assert_str_eq(pool_stop_name(POOL_STOP_EVICTED), "evicted");
	cr_assert_str_eq(pool_stop_name(POOL_STOP_RETIRED), "retired");
	cr_assert_str_eq(pool_stop_name(POOL_STOP_IDLE), "idle");
	cr_assert_str_eq(pool_stop_name(POOL_STOP_DRAINED), "drained");
}

/* ---- a request's life ----------------------------------------------------- */

Test(pool, run_on_new_vm_and_complete)
{
	uint64_t f, r;
	struct pool_admit a;
	struct pool_stats st;

	mkpool(4, 1024, 4);
	f = addfn(2, 256, 0, 0);
	no_acts();
	a = sub(f, 5);
	cr_assert_eq(a.kind, POOL_RUN);
	cr_assert_not(a.warm);
	r = a.req;
	no_acts(); /* its RUN is the answer, not an action */
	st = fstats(f);
	cr_assert_eq(st.running, 1);
	cr_assert_eq(st.vms, 1);
	cr_assert_eq(st.mem_mib, 256);
	cr_assert_eq(st.admitted, 1);
	cr_assert_eq(st.vms_started, 1);
	cr_assert_eq(st.queued, 0);
	/* The VM exited with its request: the pool forgets it, no STOP. */
	cr_assert_eq(pool_complete(p, r, false, 10), 0);
	no_acts();
	cr_assert_eq(pool_complete(p, r, false, 10), -ENOENT, "completed twice");
	st = gstats();
	cr_assert_eq(st.running, 0);
	cr_assert_eq(st.vms, 0);
	cr_assert_eq(st.mem_mib, 0);
	cr_assert_eq(st.completed, 1);
	cr_assert_eq(st.submitted, 1);
}

Test(pool, per_request_vm_left_alive_is_retired)
{
	uint64_t f, r;
	struct pool_admit a;

	mkpool(4, 1024, 4);
	f = addfn(2, 256, 0, 0);
	a = sub(f, 0);
	r = a.req;
	cr_assert_eq(pool_vm_set_ctx(p, a.vm, &a), 0);
	cr_assert_eq(pool_complete(p, r, true, 1), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_STOP);
	cr_assert_eq(acts[0].why, POOL_STOP_RETIRED);
	cr_assert_eq(acts[0].vm, a.vm);
	cr_assert_eq(acts[0].fn, f);
	cr_assert_eq(acts[0].vm_ctx, &a);
	cr_assert_eq(fstats(f).retired, 1);
	cr_assert_eq(fstats(f).vms, 0);
	cr_assert_eq(pool_vm_set_ctx(p, a.vm, NULL), -ENOENT);
}

Test(pool, ctx_values_travel_with_actions)
{
	struct pool_fn_cfg c = fcfg(1, 128, 0, 1);
	int fctx, rctx1, rctx2;
	struct pool_admit a;
	uint64_t f;

	mkpool(4, 1024, 4);
	cr_assert_eq(pool_fn_add(p, &c, &fctx, 0, &f), 0);
	cr_assert_eq(pool_submit(p, f, &rctx1, 0, &a), 0);
	cr_assert_eq(a.kind, POOL_RUN);
	cr_assert_eq(pool_submit(p, f, &rctx2, 0, &a), 0);
	cr_assert_eq(a.kind, POOL_QUEUED);
	cr_assert_eq(pool_complete(p, a.req - 2, false, 7), 0); /* the first */
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, a.req);
	cr_assert_eq(acts[0].fn_ctx, &fctx);
	cr_assert_eq(acts[0].req_ctx, &rctx2);
	cr_assert_eq(acts[0].wait_ns, 7);
	cr_assert_not(acts[0].warm);
	cr_assert_eq(pool_fn_remove(p, f, 8), 0);
	cr_assert_eq(pool_complete(p, a.req, false, 9), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_GONE);
	cr_assert_eq(acts[0].fn, f);
	cr_assert_eq(acts[0].fn_ctx, &fctx);
}

Test(pool, max_concurrency_queue_fifo_and_fn_full)
{
	uint64_t f, r1, r2, r3, r4;
	struct pool_stats st;

	mkpool(8, 8192, 8);
	f = addfn(2, 128, 0, 2);
	r1 = run_new(f, 0);
	r2 = run_new(f, 1);
	r3 = queued(f, 2);
	r4 = queued(f, 3);
	refused(f, 4, POOL_REFUSE_FN_FULL);
	st = fstats(f);
	cr_assert_eq(st.running, 2);
	cr_assert_eq(st.queue_len, 2);
	cr_assert_eq(st.queued, 2);
	cr_assert_eq(st.refused[POOL_REFUSE_FN_FULL], 1);
	cr_assert_eq(st.submitted, 5);
	no_acts();

	/* The slot r2 frees goes to the oldest queued, r3. */
	cr_assert_eq(pool_complete(p, r2, false, 10), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, r3);
	cr_assert_eq(acts[0].wait_ns, 8);
	/* Room in the queue again. */
	uint64_t r5 = queued(f, 11);

	cr_assert_eq(pool_complete(p, r1, false, 12), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r4);
	cr_assert_eq(pool_complete(p, r3, false, 13), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r5);
	cr_assert_eq(acts[0].wait_ns, 2);
	st = fstats(f);
	cr_assert_eq(st.admitted, 5);
	cr_assert_eq(st.completed, 3);
	cr_assert_eq(st.running, 2);
	cr_assert_eq(st.queue_len, 0);
}

Test(pool, no_queue_means_refuse_at_once)
{
	uint64_t f;

	mkpool(8, 8192, 8);
	f = addfn(1, 128, 0, 0);
	run_new(f, 0);
	refused(f, 0, POOL_REFUSE_FN_FULL);
	cr_assert_eq(gstats().queue_len, 0);
}

Test(pool, global_vm_limit_queues_then_limits)
{
	uint64_t a, b, ra, rb;

	mkpool(1, 8192, 1);
	a = addfn(4, 128, 0, 4);
	b = addfn(4, 128, 0, 4);
	ra = run_new(a, 0);
	/* b has a free slot, but no VM may start: it waits on the limit. */
	rb = queued(b, 1);
	/* The global queue (1) is full: 503, whichever function. */
	refused(a, 2, POOL_REFUSE_LIMITS);
	refused(b, 2, POOL_REFUSE_LIMITS);
	cr_assert_eq(gstats().refused[POOL_REFUSE_LIMITS], 2);
	cr_assert_eq(pool_complete(p, ra, false, 3), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, rb);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
}

Test(pool, global_limit_with_no_global_queue)
{
	uint64_t a;

	mkpool(1, 8192, 0);
	a = addfn(4, 128, 0, 4);
	run_new(a, 0);
	refused(a, 1, POOL_REFUSE_LIMITS);
}

Test(pool, fn_queue_full_while_waiting_on_limits_is_503)
{
	uint64_t a, b;

	mkpool(1, 8192, 8);
	a = addfn(4, 128, 0, 4);
	b = addfn(4, 128, 0, 1);
	run_new(a, 0);
	queued(b, 1);
	/* b's own queue is full, but what it waits for is the host: 503. */
	refused(b, 2, POOL_REFUSE_LIMITS);
}

Test(pool, global_queue_full_while_fn_at_concurrency_is_503)
{
	uint64_t a;

	mkpool(8, 8192, 1);
	a = addfn(1, 128, 0, 4);
	run_new(a, 0);
	queued(a, 0);
	refused(a, 0, POOL_REFUSE_LIMITS);
}

Test(pool, memory_limit)
{
	uint64_t big, small, r1, r2, rs;

	mkpool(8, 1024, 8);
	big = addfn(4, 512, 0, 4);
	small = addfn(4, 256, 0, 4);
	r1 = run_new(big, 0);
	r2 = run_new(big, 0);
	cr_assert_eq(gstats().mem_mib, 1024);
	rs = queued(small, 1);
	cr_assert_eq(pool_complete(p, r1, false, 2), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, rs);
	/* 768 in use: another 256 fits, a 512 does not. */
	run_new(small, 3);
	queued(big, 3);
	cr_assert_eq(gstats().mem_mib, 1024);
	(void)r2;
}

Test(pool, unknown_functions)
{
	uint64_t f, r;

	mkpool(4, 1024, 4);
	refused(0, 0, POOL_REFUSE_UNKNOWN);
	refused(12345, 0, POOL_REFUSE_UNKNOWN);
	f = addfn(1, 128, 0, 0);
	r = run_new(f, 0);
	refused(r, 0, POOL_REFUSE_UNKNOWN); /* a request's id is no function */
	cr_assert_eq(gstats().refused[POOL_REFUSE_UNKNOWN], 3);
	cr_assert_eq(gstats().submitted, 4);
	cr_assert_eq(pool_fn_stats(p, r, &(struct pool_stats){0}), -ENOENT);
	cr_assert_eq(pool_fn_remove(p, r, 0), -ENOENT);
	cr_assert_eq(pool_complete(p, f, true, 0), -ENOENT);
	cr_assert_eq(pool_cancel(p, f, 0), -ENOENT);
	cr_assert_eq(pool_vm_ready(p, f, 0), -ENOENT);
	cr_assert_eq(pool_vm_failed(p, r, 0), -ENOENT);
}

/* ---- queue deadlines and cancelling ------------------------------------- */

Test(pool, queue_deadline)
{
	uint64_t f, r1, r2, r3;

	mkpool(8, 8192, 8);
	f = addfn(1, 128, 0, 4); /* queue timeout 1000 */
	r1 = run_new(f, 0);
	cr_assert_eq(pool_next_deadline(p), UINT64_MAX);
	r2 = queued(f, 100);
	r3 = queued(f, 300);
	cr_assert_eq(pool_next_deadline(p), 1100);
	pool_tick(p, 1099);
	no_acts();
	pool_tick(p, 1100);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_REFUSE);
	cr_assert_eq(acts[0].req, r2);
	cr_assert_eq(acts[0].reason, POOL_REFUSE_TIMEOUT);
	cr_assert_eq(acts[0].wait_ns, 1000);
	cr_assert_eq(pool_cancel(p, r2, 1100), -ENOENT);
	cr_assert_eq(pool_next_deadline(p), 1300);
	/* A completion after r3's deadline: r3 timed out, it is not run. */
	cr_assert_eq(pool_complete(p, r1, false, 1300), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_REFUSE);
	cr_assert_eq(acts[0].req, r3);
	cr_assert_eq(fstats(f).refused[POOL_REFUSE_TIMEOUT], 2);
	cr_assert_eq(fstats(f).queue_len, 0);
	cr_assert_eq(pool_next_deadline(p), UINT64_MAX);
}

Test(pool, timeout_in_queue_makes_room)
{
	uint64_t f, r1, r2;

	mkpool(8, 8192, 1);
	f = addfn(1, 128, 0, 4);
	r1 = run_new(f, 0);
	r2 = queued(f, 0);
	refused(f, 999, POOL_REFUSE_LIMITS);
	/* At 1000, r2's deadline: refused first, so the new one fits. */
	queued(f, 1000);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r2);
	cr_assert_eq(acts[0].kind, POOL_ACT_REFUSE);
	(void)r1;
}

Test(pool, cancel)
{
	uint64_t f, r1, r2, r3;

	mkpool(8, 8192, 8);
	f = addfn(1, 128, 0, 4);
	r1 = run_new(f, 0);
	r2 = queued(f, 0);
	r3 = queued(f, 0);
	cr_assert_eq(pool_cancel(p, r1, 1), -ENOENT, "cancelled a running request");
	cr_assert_eq(pool_cancel(p, r2, 1), 0);
	cr_assert_eq(pool_cancel(p, r2, 1), -ENOENT);
	no_acts();
	cr_assert_eq(fstats(f).cancelled, 1);
	cr_assert_eq(fstats(f).queue_len, 1);
	cr_assert_eq(pool_complete(p, r1, false, 2), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r3);
	cr_assert_eq(pool_complete(p, r2, false, 2), -ENOENT);
}

Test(pool, cancelling_the_blocked_head_lets_others_through)
{
	uint64_t big, small, rb, rs;

	mkpool(8, 1024, 8);
	big = addfn(4, 1024, 0, 4);
	small = addfn(4, 256, 0, 4);
	run_new(small, 0);
	rb = queued(big, 1);
	rs = queued(small, 2); /* fits, but big is older */
	cr_assert_eq(pool_cancel(p, rb, 3), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, rs);
}

Test(pool, time_going_back_counts_as_the_latest)
{
	uint64_t f, r1, r2;

	mkpool(8, 8192, 8);
	f = addfn(1, 128, 0, 4);
	r1 = run_new(f, 500);
	r2 = queued(f, 100); /* at 500 really */
	cr_assert_eq(pool_next_deadline(p), 1500);
	cr_assert_eq(pool_complete(p, r1, false, 0), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r2);
	cr_assert_eq(acts[0].wait_ns, 0);
}

/* ---- the warm pool --------------------------------------------------------- */

Test(pool, min_warm_started_ready_used_and_replaced)
{
	uint64_t f, w[2], w3[1];
	struct pool_admit a;
	struct pool_stats st;

	mkpool(8, 8192, 8);
	f = addfn(4, 128, 2, 0);
	warms(f, 2, w);
	st = fstats(f);
	cr_assert_eq(st.warm, 2);
	cr_assert_eq(st.starting, 2);
	cr_assert_eq(st.vms, 2);
	cr_assert_eq(st.mem_mib, 256);
	cr_assert_eq(st.warm_started, 2);

	/* Not ready yet: a request gets a new VM, and the pool starts no
	 * more warm ones (it has its two). */
	run_new(f, 1);
	no_acts();
	cr_assert_eq(pool_vm_ready(p, w[0], 2), 0);
	cr_assert_eq(pool_vm_ready(p, w[1], 3), 0);
	cr_assert_eq(pool_vm_ready(p, w[1], 3), -EINVAL, "ready twice");
	no_acts();
	cr_assert_eq(fstats(f).starting, 0);
	cr_assert_eq(fstats(f).warm_ready, 2);

	/* A warm VM takes the request (the most recently ready), and a
	 * replacement starts. */
	a = sub(f, 4);
	cr_assert_eq(a.kind, POOL_RUN);
	cr_assert(a.warm);
	cr_assert_eq(a.vm, w[1]);
	warms(f, 1, w3);
	st = fstats(f);
	cr_assert_eq(st.admitted_warm, 1);
	cr_assert_eq(st.warm, 2);
	cr_assert_eq(st.running, 2);
	cr_assert_eq(st.vms, 4);
	cr_assert_eq(pool_vm_ready(p, a.vm, 5), -EINVAL, "a busy VM made ready");
	cr_assert_eq(pool_vm_failed(p, a.vm, 5), -EBUSY);

	/* A ready warm VM that dies is replaced at once. */
	cr_assert_eq(pool_vm_failed(p, w[0], 6), 0);
	warms(f, 1, NULL);
	cr_assert_eq(pool_vm_failed(p, w[0], 6), -ENOENT);
	cr_assert_eq(fstats(f).vms_failed, 1);
	cr_assert_eq(fstats(f).warm, 2);
}

Test(pool, queued_request_takes_the_vm_that_becomes_ready)
{
	uint64_t f, w[1], r;

	mkpool(1, 8192, 8);
	f = addfn(4, 128, 1, 4);
	warms(f, 1, w);
	/* The only VM the limit allows is f's own warm one, starting: the
	 * request waits for it rather than evicting it. */
	r = queued(f, 1);
	no_acts();
	cr_assert_eq(pool_vm_ready(p, w[0], 5), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, r);
	cr_assert_eq(acts[0].vm, w[0]);
	cr_assert(acts[0].warm);
	cr_assert_eq(acts[0].wait_ns, 4);
}

Test(pool, warm_start_failures_back_off)
{
	struct pool_cfg c = {
	    .max_vms = 8, .max_mem_mib = 8192, .warm_retry_ns = 100, .warm_retry_max_ns = 350};
	uint64_t f, w[1];

	mkpool_cfg(&c);
	f = addfn(4, 128, 1, 0);
	warms(f, 1, w);
	cr_assert_eq(pool_vm_failed(p, w[0], 10), 0);
	no_acts();
	cr_assert_eq(fstats(f).warm, 0);
	cr_assert_eq(pool_next_deadline(p), 110);
	pool_tick(p, 109);
	no_acts();
	pool_tick(p, 110);
	warms(f, 1, w);
	/* Again: 200, then 350 (the cap), then 350. */
	cr_assert_eq(pool_vm_failed(p, w[0], 110), 0);
	cr_assert_eq(pool_next_deadline(p), 310);
	pool_tick(p, 310);
	warms(f, 1, w);
	cr_assert_eq(pool_vm_failed(p, w[0], 310), 0);
	cr_assert_eq(pool_next_deadline(p), 660);
	pool_tick(p, 660);
	warms(f, 1, w);
	cr_assert_eq(pool_vm_failed(p, w[0], 660), 0);
	cr_assert_eq(pool_next_deadline(p), 1010);
	/* Requests are not held back by it. */
	run_new(f, 700);
	pool_tick(p, 1010);
	warms(f, 1, w);
	/* One start resets it; a ready VM failing later is replaced at once. */
	cr_assert_eq(pool_vm_ready(p, w[0], 1020), 0);
	cr_assert_eq(pool_vm_failed(p, w[0], 1030), 0);
	warms(f, 1, w);
	cr_assert_eq(pool_vm_failed(p, w[0], 1040), 0);
	cr_assert_eq(pool_next_deadline(p), 1140);
	cr_assert_eq(fstats(f).vms_failed, 6);
}

Test(pool, warm_vms_take_turns_within_limits)
{
	uint64_t a, b, wa[3], wb[2];

	mkpool(4, 8192, 8);
	a = addfn(4, 128, 3, 0);
	warms(a, 3, wa);
	b = addfn(4, 128, 3, 0);
	warms(b, 1, wb); /* the 4th VM; b was served last */
	/* Each place that frees goes to the function whose turn it is,
	 * whichever lost a VM. */
	cr_assert_eq(pool_vm_failed(p, wa[0], 1), 0);
	warms(a, 1, &wa[0]);
	cr_assert_eq(pool_vm_failed(p, wa[1], 2), 0);
	warms(b, 1, &wb[1]);
	cr_assert_eq(pool_vm_failed(p, wa[2], 3), 0);
	warms(a, 1, &wa[2]);
	cr_assert_eq(pool_vm_failed(p, wb[0], 4), 0);
	warms(b, 1, &wb[0]);
	cr_assert_eq(fstats(a).warm, 2);
	cr_assert_eq(fstats(b).warm, 2);
}

Test(pool, round_robin_from_scratch)
{
	uint64_t a, b;
	struct pool_fn_cfg c = fcfg(4, 128, 3, 0);

	mkpool(4, 8192, 8);
	/* Two functions added while the pool cannot start anything (a
	 * request of a third waits on the limit)... */
	uint64_t x = addfn(4, 8192, 0, 4);
	uint64_t rx = run_new(x, 0);

	queued(x, 0);
	a = addfn_cfg(&c, 0);
	b = addfn_cfg(&c, 0);
	no_acts();
	/* ...get the room, when it comes, in turns. */
	cr_assert_eq(pool_fn_remove(p, x, 1), 0);
	cr_assert_eq(pool_complete(p, rx, false, 1), 0);
	take();
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(pool_complete(p, acts[0].req, false, 2), 0);
	cr_assert_eq(take(), 5);
	cr_assert_eq(acts[0].kind, POOL_ACT_GONE);
	cr_assert_eq(acts[1].fn, a);
	cr_assert_eq(acts[2].fn, b);
	cr_assert_eq(acts[3].fn, a);
	cr_assert_eq(acts[4].fn, b);
}

Test(pool, no_warm_start_while_a_request_waits_on_limits)
{
	uint64_t x, s, big, rx1, rx2, rb, ws[1];

	mkpool(8, 1024, 8);
	x = addfn(4, 256, 0, 4);
	s = addfn(4, 256, 1, 4);
	warms(s, 1, ws);
	big = addfn(1, 1024, 0, 4);
	rx1 = run_new(x, 0);
	rx2 = run_new(x, 0);
	/* 768 in use: big waits (evicting s's warm VM leaves 512 busy). */
	rb = queued(big, 1);
	/* s's warm VM dies: 256 would fit a new one, but it is big's turn. */
	cr_assert_eq(pool_vm_failed(p, ws[0], 2), 0);
	no_acts();
	cr_assert_eq(pool_complete(p, rx1, false, 3), 0);
	no_acts();
	cr_assert_eq(pool_complete(p, rx2, false, 4), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, rb);
	/* Once big is done, s gets its warm VM back. */
	cr_assert_eq(pool_complete(p, rb, false, 5), 0);
	warms(s, 1, NULL);
}

Test(pool, freed_place_goes_to_waiting_request_before_warm)
{
	uint64_t a, b, w[1], rb, ra;
	struct pool_admit x;

	mkpool(2, 8192, 8);
	a = addfn(4, 128, 0, 4);
	b = addfn(4, 128, 1, 4);
	warms(b, 1, w);
	cr_assert_eq(pool_vm_ready(p, w[0], 0), 0);
	run_new(a, 1);
	x = sub(b, 2);
	cr_assert(x.warm);
	rb = x.req;
	no_acts(); /* b's replacement does not fit */
	ra = queued(a, 3);
	cr_assert_eq(pool_complete(p, rb, false, 4), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, ra);
	cr_assert_eq(fstats(b).warm, 0);
}

/* ---- eviction -------------------------------------------------------------- */

Test(pool, warm_vms_evicted_for_another_function)
{
	uint64_t a, b, w[2], rb;
	struct pool_admit x;

	mkpool(2, 8192, 8);
	a = addfn(4, 128, 2, 4);
	warms(a, 2, w);
	cr_assert_eq(pool_vm_ready(p, w[1], 1), 0);
	cr_assert_eq(pool_vm_ready(p, w[0], 2), 0);
	b = addfn(4, 128, 0, 4);
	/* No room: a's least recently idle warm VM goes. */
	x = sub(b, 3);
	cr_assert_eq(x.kind, POOL_RUN);
	cr_assert_not(x.warm);
	rb = x.req;
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_STOP);
	cr_assert_eq(acts[0].why, POOL_STOP_EVICTED);
	cr_assert_eq(acts[0].vm, w[1]);
	cr_assert_eq(fstats(a).evicted, 1);
	cr_assert_eq(fstats(a).warm, 1);
	/* a is below min_warm but no VM fits: nothing started. */
	cr_assert_eq(gstats().vms, 2);
	/* When b's VM goes, a gets its warm VM back. */
	cr_assert_eq(pool_complete(p, rb, false, 4), 0);
	warms(a, 1, NULL);
}

Test(pool, own_starting_vms_are_not_evicted)
{
	uint64_t a, w[2];

	mkpool(2, 8192, 8);
	a = addfn(4, 128, 2, 4);
	warms(a, 2, w);
	queued(a, 1);
	no_acts();
	cr_assert_eq(fstats(a).warm, 2);
}

Test(pool, evicting_a_vm_not_yet_announced_says_nothing)
{
	uint64_t a, b;

	mkpool(1, 8192, 8);
	a = addfn(4, 128, 1, 4);
	/* a's WARM is queued but not taken; b's request evicts that VM. */
	b = addfn(4, 128, 0, 4);
	run_new(b, 1);
	no_acts(); /* neither the WARM nor a STOP */
	cr_assert_eq(fstats(a).warm, 0);
	cr_assert_eq(fstats(a).evicted, 1);
}

Test(pool, starting_vms_of_others_can_be_evicted)
{
	uint64_t a, b, w[1];

	mkpool(1, 8192, 8);
	a = addfn(4, 128, 1, 4);
	warms(a, 1, w);
	b = addfn(4, 128, 0, 4);
	run_new(b, 1);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_STOP);
	cr_assert_eq(acts[0].vm, w[0]);
	/* Its late report finds it gone. */
	cr_assert_eq(pool_vm_ready(p, w[0], 2), -ENOENT);
	cr_assert_eq(pool_vm_failed(p, w[0], 2), -ENOENT);
}

Test(pool, surplus_warm_vms_evicted_first)
{
	struct pool_fn_cfg c = fcfg(4, 128, 1, 4);
	uint64_t a, b, x, wb[1], ra1, ra2, va1, va2;
	struct pool_admit r;

	mkpool(3, 8192, 8);
	/* b: one warm VM, its min_warm, ready first (least recently idle). */
	b = addfn(4, 128, 1, 4);
	warms(b, 1, wb);
	cr_assert_eq(pool_vm_ready(p, wb[0], 1), 0);
	/* a (reuse, min_warm 1): two requests leave two VMs, one surplus. */
	c.isolation = POOL_REUSE;
	c.reuse_max = 10;
	c.min_warm = 0;
	a = addfn_cfg(&c, 2);
	r = sub(a, 2);
	ra1 = r.req;
	va1 = r.vm;
	r = sub(a, 2);
	ra2 = r.req;
	va2 = r.vm;
	cr_assert_eq(pool_complete(p, ra1, true, 3), 0);
	cr_assert_eq(pool_complete(p, ra2, true, 4), 0);
	no_acts();
	cr_assert_eq(fstats(a).warm, 2);
	/* x needs two places: a's two warm VMs (surplus, min_warm 0) go
	 * before b's (at its min_warm), though b's is least recently idle. */
	x = addfn(4, 128, 0, 4);
	run_new(x, 5);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].vm, va1);
	run_new(x, 5);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].vm, va2);
	cr_assert_eq(fstats(b).warm, 1);
	/* A third takes b's. */
	run_new(x, 6);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].vm, wb[0]);
	cr_assert_eq(acts[0].why, POOL_STOP_EVICTED);
}

Test(pool, nothing_evicted_when_it_would_not_be_enough)
{
	uint64_t big, small, w[1];

	mkpool(8, 1024, 8);
	small = addfn(4, 256, 1, 4);
	warms(small, 1, w);
	cr_assert_eq(pool_vm_ready(p, w[0], 0), 0);
	cr_assert(sub(small, 1).warm);
	warms(small, 1, w); /* the replacement */
	run_new(small, 1);
	run_new(small, 1); /* 768 busy + 256 warm */
	no_acts();
	big = addfn(4, 512, 0, 4);
	/* 1024 in use, 256 of it warm: evicting it leaves 768, too much for
	 * 512. Nothing is evicted. */
	queued(big, 2);
	no_acts();
	cr_assert_eq(fstats(small).warm, 1);
	cr_assert_eq(fstats(small).evicted, 0);
}

/* ---- fairness --------------------------------------------------------------- */

Test(pool, functions_contending_for_one_vm_go_in_arrival_order)
{
	uint64_t a, b, running, order[8], want[8];
	unsigned n = 0;

	mkpool(1, 8192, 16);
	a = addfn(8, 128, 0, 8);
	b = addfn(8, 128, 0, 8);
	running = run_new(a, 0);
	/* a floods first, b comes later: b is served after a's earlier
	 * ones, before a's later ones. */
	want[0] = queued(a, 1);
	want[1] = queued(a, 2);
	want[2] = queued(b, 3);
	want[3] = queued(a, 4);
	want[4] = queued(b, 5);
	want[5] = queued(a, 6);
	for (uint64_t t = 10; n < 6; t++) {
		cr_assert_eq(pool_complete(p, running, false, t), 0);
		cr_assert_eq(take(), 1);
		cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
		order[n++] = running = acts[0].req;
	}
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(order[i], want[i], "position %u", i);
}

Test(pool, big_function_not_starved_by_small_ones)
{
	uint64_t big, small, rs[4], rb;
	unsigned i;

	mkpool(8, 1024, 64);
	big = addfn(1, 1024, 0, 8);
	small = addfn(8, 256, 0, 32);
	for (i = 0; i < 4; i++)
		rs[i] = run_new(small, 0);
	rb = queued(big, 1);
	/* The small function keeps asking; memory it could use frees, but
	 * big is older, so it waits too. */
	for (i = 0; i < 4; i++) {
		uint64_t r = queued(small, 2 + i);

		cr_assert_eq(pool_complete(p, rs[i], false, 2 + i), 0);
		if (i < 3) {
			no_acts();
			continue;
		}
		/* The last of the old ones ended: big runs, and the small
		 * ones wait for it. */
		cr_assert_eq(take(), 1);
		cr_assert_eq(acts[0].req, rb);
		(void)r;
	}
	cr_assert_eq(gstats().running, 1);
	cr_assert_eq(gstats().queue_len, 4);
	cr_assert_eq(fstats(small).queue_len, 4);
}

Test(pool, big_function_gets_memory_as_busy_vms_finish)
{
	uint64_t big, small, rs[4], rb;
	unsigned i;

	mkpool(8, 1024, 64);
	big = addfn(1, 1024, 0, 8);
	small = addfn(8, 256, 0, 32);
	for (i = 0; i < 4; i++)
		rs[i] = run_new(small, 0);
	rb = queued(big, 1);
	for (i = 0; i < 3; i++) {
		queued(small, 2);
		cr_assert_eq(pool_complete(p, rs[i], false, 3), 0);
		no_acts(); /* 256 free, 512, 768: small waits behind big */
	}
	cr_assert_eq(pool_complete(p, rs[3], false, 4), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, rb);
	cr_assert_eq(pool_complete(p, rb, false, 5), 0);
	cr_assert_eq(take(), 3);
	for (i = 0; i < 3; i++)
		cr_assert_eq(acts[i].fn, small);
}

Test(pool, waiting_behind_the_limit_may_still_use_own_warm_vm)
{
	uint64_t big, small, w[1], rb;
	struct pool_admit x;

	mkpool(8, 1024, 64);
	small = addfn(8, 256, 1, 32);
	warms(small, 1, w);
	cr_assert_eq(pool_vm_ready(p, w[0], 0), 0);
	big = addfn(1, 1024, 0, 8);
	cr_assert(sub(small, 1).warm);
	warms(small, 1, w);
	run_new(small, 1);
	run_new(small, 1);
	cr_assert_eq(pool_vm_ready(p, w[0], 1), 0);
	/* 768 busy, 256 warm: big waits (evicting the warm VM would not make
	 * room). */
	rb = queued(big, 2);
	no_acts();
	/* small's next request is younger than big's, but takes its own
	 * ready warm VM, which costs nothing more. */
	x = sub(small, 3);
	cr_assert_eq(x.kind, POOL_RUN);
	cr_assert(x.warm);
	cr_assert_eq(x.vm, w[0]);
	no_acts();
	/* The one after that waits behind big. */
	queued(small, 4);
	cr_assert_eq(fstats(big).queue_len, 1);
	(void)rb;
}

/* ---- reuse ------------------------------------------------------------------- */

Test(pool, reuse_serves_reuse_max_then_retires)
{
	struct pool_fn_cfg c = fcfg(1, 128, 0, 4);
	uint64_t f, vm, r;
	struct pool_admit x;

	c.isolation = POOL_REUSE;
	c.reuse_max = 3;
	mkpool(8, 8192, 8);
	f = addfn_cfg(&c, 0);
	x = sub(f, 0);
	cr_assert_not(x.warm);
	vm = x.vm;
	cr_assert_eq(pool_complete(p, x.req, true, 1), 0);
	no_acts();
	cr_assert_eq(fstats(f).warm, 1);
	/* Second request: the same VM, warm. A third queues behind it and
	 * gets the VM when it is back. */
	x = sub(f, 2);
	cr_assert(x.warm);
	cr_assert_eq(x.vm, vm);
	r = queued(f, 3);
	cr_assert_eq(pool_complete(p, x.req, true, 4), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, r);
	cr_assert_eq(acts[0].vm, vm);
	cr_assert(acts[0].warm);
	/* Its third: retired. */
	cr_assert_eq(pool_complete(p, r, true, 5), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_STOP);
	cr_assert_eq(acts[0].why, POOL_STOP_RETIRED);
	cr_assert_eq(acts[0].vm, vm);
	cr_assert_eq(fstats(f).vms, 0);
	/* The next gets a new VM. */
	x = sub(f, 6);
	cr_assert_not(x.warm);
	cr_assert_neq(x.vm, vm);
}

Test(pool, reuse_vm_that_died_is_forgotten)
{
	struct pool_fn_cfg c = fcfg(1, 128, 0, 4);
	uint64_t f, vm;
	struct pool_admit x;

	c.isolation = POOL_REUSE;
	c.reuse_max = 3;
	mkpool(8, 8192, 8);
	f = addfn_cfg(&c, 0);
	x = sub(f, 0);
	vm = x.vm;
	cr_assert_eq(pool_complete(p, x.req, false, 1), 0);
	no_acts();
	cr_assert_eq(fstats(f).vms, 0);
	x = sub(f, 2);
	cr_assert_not(x.warm);
	cr_assert_neq(x.vm, vm);
}

Test(pool, surplus_idle_vms_stop_after_idle_ns)
{
	struct pool_cfg pc = {.max_vms = 8, .max_mem_mib = 8192, .max_queued = 8, .idle_ns = 100};
	struct pool_fn_cfg c = fcfg(4, 128, 1, 4);
	uint64_t f, v[3], w[1];
	struct pool_admit x[3];

	c.isolation = POOL_REUSE;
	c.reuse_max = 100;
	mkpool_cfg(&pc);
	f = addfn_cfg(&c, 0);
	warms(f, 1, w);
	for (int i = 0; i < 3; i++) {
		x[i] = sub(f, 0);
		v[i] = x[i].vm;
	}
	cr_assert_eq(pool_complete(p, x[0].req, true, 10), 0);
	cr_assert_eq(pool_complete(p, x[1].req, true, 20), 0);
	cr_assert_eq(pool_complete(p, x[2].req, true, 30), 0);
	no_acts();
	/* 4 warm (w starting, 3 ready), min_warm 1: the 3 oldest ready may go
	 * once idle 100, oldest first. */
	cr_assert_eq(fstats(f).warm, 4);
	cr_assert_eq(pool_next_deadline(p), 110);
	pool_tick(p, 119);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].vm, v[0]);
	cr_assert_eq(acts[0].why, POOL_STOP_IDLE);
	cr_assert_eq(pool_next_deadline(p), 120);
	pool_tick(p, 1000);
	cr_assert_eq(take(), 2);
	cr_assert_eq(acts[0].vm, v[1]);
	cr_assert_eq(acts[1].vm, v[2]);
	/* The warm one (min_warm) stays. */
	cr_assert_eq(fstats(f).warm, 1);
	cr_assert_eq(fstats(f).idle_stopped, 3);
	cr_assert_eq(pool_next_deadline(p), UINT64_MAX);
	cr_assert_eq(pool_vm_ready(p, w[0], 2000), 0);
	pool_tick(p, 5000);
	no_acts();
}

/* ---- draining ---------------------------------------------------------------- */

Test(pool, remove_idle_function_is_gone_at_once)
{
	uint64_t f, w[2];

	mkpool(8, 8192, 8);
	f = addfn(4, 128, 2, 4);
	warms(f, 2, w);
	cr_assert_eq(pool_vm_ready(p, w[0], 1), 0);
	cr_assert_eq(pool_fn_remove(p, f, 2), 0);
	cr_assert_eq(take(), 3);
	/* The starting one first, then the ready one, then the function. */
	cr_assert_eq(acts[0].kind, POOL_ACT_STOP);
	cr_assert_eq(acts[0].vm, w[1]);
	cr_assert_eq(acts[0].why, POOL_STOP_DRAINED);
	cr_assert_eq(acts[1].vm, w[0]);
	cr_assert_eq(acts[2].kind, POOL_ACT_GONE);
	cr_assert_eq(acts[2].fn, f);
	cr_assert_eq(pool_fn_remove(p, f, 3), -ENOENT);
	refused(f, 3, POOL_REFUSE_UNKNOWN);
	cr_assert_eq(gstats().vms, 0);
	cr_assert_eq(gstats().drained, 2);
}

Test(pool, drain_finishes_running_and_queued_then_goes)
{
	uint64_t f, r1, r2, r3;
	struct pool_stats st;

	mkpool(8, 8192, 8);
	f = addfn(1, 128, 0, 4);
	r1 = run_new(f, 0);
	r2 = queued(f, 1);
	r3 = queued(f, 2);
	cr_assert_eq(pool_fn_remove(p, f, 3), 0);
	cr_assert_eq(pool_fn_remove(p, f, 3), -EALREADY);
	no_acts();
	refused(f, 4, POOL_REFUSE_DRAINING);
	st = fstats(f);
	cr_assert(st.draining);
	cr_assert_eq(st.refused[POOL_REFUSE_DRAINING], 1);
	cr_assert_eq(pool_complete(p, r1, false, 5), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r2);
	cr_assert_eq(pool_complete(p, r2, false, 6), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r3);
	cr_assert_eq(pool_complete(p, r3, false, 7), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_GONE);
	cr_assert_eq(pool_fn_stats(p, f, &st), -ENOENT);
}

Test(pool, drain_times_out_queued_requests_too)
{
	uint64_t f, r2;

	mkpool(8, 8192, 8);
	f = addfn(1, 128, 0, 4);
	run_new(f, 0);
	r2 = queued(f, 0);
	cr_assert_eq(pool_fn_remove(p, f, 1), 0);
	pool_tick(p, 1000);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r2);
	cr_assert_eq(acts[0].reason, POOL_REFUSE_TIMEOUT);
}

Test(pool, draining_reuse_keeps_vms_for_its_queue_only)
{
	struct pool_fn_cfg c = fcfg(1, 128, 0, 4);
	uint64_t f, vm, r2;
	struct pool_admit x;

	c.isolation = POOL_REUSE;
	c.reuse_max = 10;
	mkpool(8, 8192, 8);
	f = addfn_cfg(&c, 0);
	x = sub(f, 0);
	vm = x.vm;
	r2 = queued(f, 1);
	cr_assert_eq(pool_fn_remove(p, f, 2), 0);
	/* The VM comes back and serves the queued request. */
	cr_assert_eq(pool_complete(p, x.req, true, 3), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].vm, vm);
	/* Then, nothing queued: stopped, and the function goes. */
	cr_assert_eq(pool_complete(p, r2, true, 4), 0);
	cr_assert_eq(take(), 2);
	cr_assert_eq(acts[0].kind, POOL_ACT_STOP);
	cr_assert_eq(acts[0].why, POOL_STOP_DRAINED);
	cr_assert_eq(acts[1].kind, POOL_ACT_GONE);
}

Test(pool, draining_function_last_vm_makes_room_for_others)
{
	uint64_t a, b, ra, rb;

	mkpool(1, 8192, 8);
	a = addfn(4, 128, 0, 4);
	b = addfn(4, 128, 0, 4);
	ra = run_new(a, 0);
	rb = queued(b, 1);
	cr_assert_eq(pool_fn_remove(p, a, 2), 0);
	no_acts();
	cr_assert_eq(pool_complete(p, ra, false, 3), 0);
	cr_assert_eq(take(), 2);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, rb);
	cr_assert_eq(acts[1].kind, POOL_ACT_GONE);
	cr_assert_eq(acts[1].fn, a);
}

/* ---- registrations -------------------------------------------------------- */

static struct pool_admit reg(uint32_t mem, void *ctx, uint64_t now)
{
	struct pool_admit a;

	cr_assert_eq(pool_reg_submit(p, mem, ctx, now, &a), 0);
	return a;
}

Test(pool, reg_refuses_bad_sizes)
{
	struct pool_admit a;

	mkpool(4, 1024, 4);
	cr_assert_eq(pool_reg_submit(p, 0, NULL, 0, &a), -EINVAL);
	cr_assert_eq(pool_reg_submit(p, 1025, NULL, 0, &a), -EINVAL);
	cr_assert_eq(gstats().submitted, 0);
}

Test(pool, reg_counts_against_vms_and_memory)
{
	struct pool_cfg c = {
	    .max_vms = 2, .max_mem_mib = 300, .max_queued = 8, .reg_timeout_ns = 1000};
	struct pool_admit a, b;
	uint64_t f, r;

	mkpool_cfg(&c);
	f = addfn(4, 100, 0, 4);
	a = reg(250, NULL, 0);
	cr_assert_eq(a.kind, POOL_RUN);
	cr_assert_not(a.warm);
	cr_assert_neq(a.vm, 0);
	cr_assert_eq(gstats().vms, 1);
	cr_assert_eq(gstats().mem_mib, 250);
	/* 250 + 100 is over 300: the function's request waits. */
	r = queued(f, 1);
	no_acts();
	/* No function's counters show it. */
	cr_assert_eq(fstats(f).vms, 0);
	cr_assert_eq(fstats(f).submitted, 1);
	/* A second registration: another VM would fit (2) but not its 250. */
	b = reg(250, NULL, 2);
	cr_assert_eq(b.kind, POOL_QUEUED);
	/* Its VM ended (whatever vm_reusable says): the room goes to the
	 * oldest waiting, the request; the registration waits on. */
	cr_assert_eq(pool_complete(p, a.req, true, 3), 0);
	cr_assert_eq(take(), 1, "no STOP for a registration's VM");
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, r);
	cr_assert_eq(gstats().mem_mib, 100);
	cr_assert_eq(pool_complete(p, r, false, 4), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, b.req);
	cr_assert_eq(acts[0].fn, 0);
	cr_assert_null(acts[0].fn_ctx);
	cr_assert_eq(acts[0].wait_ns, 2);
	cr_assert_eq(pool_complete(p, b.req, false, 5), 0);
	no_acts();
	struct pool_stats st = gstats();
	cr_assert_eq(st.vms, 0);
	cr_assert_eq(st.mem_mib, 0);
	cr_assert_eq(st.submitted, 3);
	cr_assert_eq(st.completed, 3);
}

Test(pool, reg_waits_in_arrival_order_with_requests)
{
	struct pool_cfg c = {
	    .max_vms = 1, .max_mem_mib = 8192, .max_queued = 8, .reg_timeout_ns = 1000};
	struct pool_admit g;
	uint64_t f, r1, r2;
	int ctx;

	mkpool_cfg(&c);
	f = addfn(4, 128, 0, 4);
	r1 = run_new(f, 0);
	g = reg(128, &ctx, 1);
	cr_assert_eq(g.kind, POOL_QUEUED);
	r2 = queued(f, 2);
	/* The registration came first: it takes the VM freed. */
	cr_assert_eq(pool_complete(p, r1, false, 3), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_RUN);
	cr_assert_eq(acts[0].req, g.req);
	cr_assert_eq(acts[0].req_ctx, &ctx);
	cr_assert_eq(pool_complete(p, g.req, false, 4), 0);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].req, r2);
}

Test(pool, reg_blocks_warm_vms_and_evicts_them)
{
	struct pool_cfg c = {
	    .max_vms = 2, .max_mem_mib = 8192, .max_queued = 8, .reg_timeout_ns = 1000};
	struct pool_admit g;
	uint64_t f, w[2];

	mkpool_cfg(&c);
	f = addfn(4, 128, 2, 4);
	warms(f, 2, w);
	cr_assert_eq(pool_vm_ready(p, w[0], 1), 0);
	cr_assert_eq(pool_vm_ready(p, w[1], 2), 0);
	/* Warm VMs are given up for a registration as for a request. */
	g = reg(128, NULL, 3);
	cr_assert_eq(g.kind, POOL_RUN);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_STOP);
	cr_assert_eq(acts[0].why, POOL_STOP_EVICTED);
	cr_assert_eq(acts[0].vm, w[0]);
	cr_assert_eq(gstats().vms, 2);
	cr_assert_eq(pool_complete(p, g.req, false, 4), 0);
	warms(f, 1, NULL);
}

Test(pool, reg_times_out_or_is_cancelled)
{
	struct pool_cfg c = {
	    .max_vms = 1, .max_mem_mib = 8192, .max_queued = 8, .reg_timeout_ns = 1000};
	struct pool_admit g, h;
	uint64_t f, r;

	mkpool_cfg(&c);
	f = addfn(4, 128, 0, 4);
	r = run_new(f, 0);
	g = reg(128, NULL, 10);
	cr_assert_eq(g.kind, POOL_QUEUED);
	cr_assert_eq(pool_next_deadline(p), 1010);
	pool_tick(p, 1010);
	cr_assert_eq(take(), 1);
	cr_assert_eq(acts[0].kind, POOL_ACT_REFUSE);
	cr_assert_eq(acts[0].req, g.req);
	cr_assert_eq(acts[0].reason, POOL_REFUSE_TIMEOUT);
	cr_assert_eq(acts[0].fn, 0);
	h = reg(128, NULL, 1020);
	cr_assert_eq(h.kind, POOL_QUEUED);
	cr_assert_eq(pool_cancel(p, h.req, 1030), 0);
	cr_assert_eq(pool_complete(p, h.req, false, 1040), -ENOENT);
	cr_assert_eq(pool_complete(p, r, false, 1050), 0);
	no_acts();
	struct pool_stats st = gstats();
	cr_assert_eq(st.refused[POOL_REFUSE_TIMEOUT], 1);
	cr_assert_eq(st.cancelled, 1);
	cr_assert_eq(st.queue_len, 0);
	cr_assert_eq(st.vms, 0);
}

Test(pool, reg_without_a_wait_is_refused_at_once)
{
	struct pool_admit g;
	uint64_t f;

	mkpool(1, 8192, 8); /* reg_timeout_ns 0 */
	f = addfn(4, 128, 0, 4);
	run_new(f, 0);
	g = reg(128, NULL, 1);
	cr_assert_eq(g.kind, POOL_REFUSED);
	cr_assert_eq(g.reason, POOL_REFUSE_LIMITS);
	cr_assert_eq(g.req, 0);
	cr_assert_eq(gstats().refused[POOL_REFUSE_LIMITS], 1);
	/* The global queue bounds registrations too. */
	pool_destroy(p);
	struct pool_cfg c = {
	    .max_vms = 1, .max_mem_mib = 8192, .max_queued = 1, .reg_timeout_ns = 1000};
	mkpool_cfg(&c);
	f = addfn(4, 128, 0, 4);
	run_new(f, 0);
	cr_assert_eq(reg(128, NULL, 1).kind, POOL_QUEUED);
	g = reg(128, NULL, 2);
	cr_assert_eq(g.kind, POOL_REFUSED);
	cr_assert_eq(g.reason, POOL_REFUSE_LIMITS);
}

Test(pool, destroy_with_registrations_in_flight)
{
	struct pool_cfg c = {
	    .max_vms = 1, .max_mem_mib = 8192, .max_queued = 8, .reg_timeout_ns = 1000};

	mkpool_cfg(&c);
	cr_assert_eq(reg(128, NULL, 0).kind, POOL_RUN);
	cr_assert_eq(reg(128, NULL, 1).kind, POOL_QUEUED);
	pool_tick(p, 2000); /* its REFUSE not taken */
	cr_assert_eq(reg(128, NULL, 2001).kind, POOL_QUEUED);
}

Test(pool, destroy_with_everything_in_flight)
{
	uint64_t a, b;

	mkpool(4, 8192, 8);
	a = addfn(1, 128, 2, 4);
	b = addfn(1, 128, 0, 4);
	run_new(a, 0);
	queued(a, 0);
	run_new(b, 0); /* evicts: a STOP pending */
	queued(b, 0);
	cr_assert_eq(pool_fn_remove(p, b, 0), 0);
	/* Timeouts: REFUSE pending. teardown destroys it all with actions
	 * not taken (under ASan, a leak or a double free would show). */
	pool_tick(p, 5000);
	cr_assert_eq(gstats().refused[POOL_REFUSE_TIMEOUT], 2);
}

/* ---- randomized ------------------------------------------------------------- */

/* A model of what the pool said: each id's kind and state, each function's
 * config, the requests and VMs alive. Every answer and action is checked
 * against it as it comes, and the invariants after every operation. */

#define R_OPS	20000
#define R_MAXID (R_OPS * 4 + 64)
#define R_FNS	512
#define R_LIVE	4096

enum { M_NONE, M_FN, M_REQ, M_VM };
enum { MQ_QUEUED, MQ_RUNNING, MQ_DONE };
/* MV_AFTER: its request completed with the VM reusable; the call's actions
 * will stop it, give it the next request, or leave it ready. */
enum { MV_STARTING, MV_READY, MV_BUSY, MV_AFTER, MV_ENDED };

struct m_obj {
	int kind, state;
	uint64_t fn, seq;
	uint64_t t;  /* request: when submitted; VM: when it last became ready */
	uint64_t vm; /* request: the VM it ran on */
	uint32_t uses;
	bool ran;
	int completes;
};

struct m_fn {
	uint64_t id;
	struct pool_fn_cfg cfg;
	bool draining, gone;
};

static struct {
	struct m_obj *o;
	struct m_fn fns[R_FNS];
	unsigned nfns;
	uint64_t live[R_LIVE]; /* requests and VMs not ended */
	unsigned nlive;
	uint64_t now, seq, rng;
	struct pool_cfg cfg;
	uint64_t admitted, completed;
	/* Requests waiting on the limits after the last operation, and the
	 * youngest request given a new VM since: no request may overtake
	 * one of those for a new VM. */
	uint64_t blocked[R_FNS];
	unsigned nblocked;
	uint64_t youngest_new;
} M;

static uint64_t rnd(void)
{
	M.rng ^= M.rng << 13;
	M.rng ^= M.rng >> 7;
	M.rng ^= M.rng << 17;
	return M.rng;
}

static unsigned rn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static struct m_fn *m_fn(uint64_t id)
{
	for (unsigned i = 0; i < M.nfns; i++)
		if (M.fns[i].id == id)
			return &M.fns[i];
	return NULL;
}

static struct m_obj *m_obj(uint64_t id)
{
	cr_assert(id > 0 && id < R_MAXID, "id %llu", (unsigned long long)id);
	return &M.o[id];
}

static void m_live(uint64_t id)
{
	cr_assert_lt(M.nlive, R_LIVE);
	M.live[M.nlive++] = id;
}

static void m_unlive(uint64_t id)
{
	for (unsigned i = 0; i < M.nlive; i++) {
		if (M.live[i] == id) {
			M.live[i] = M.live[--M.nlive];
			return;
		}
	}
	cr_assert_fail("%llu not live", (unsigned long long)id);
}

static unsigned m_count(int kind, int state, uint64_t fn)
{
	unsigned n = 0;

	for (unsigned i = 0; i < M.nlive; i++) {
		struct m_obj *o = &M.o[M.live[i]];

		n += o->kind == kind && o->state == state && (!fn || o->fn == fn);
	}
	return n;
}

/* Queued request id leaves its function's queue: it must be the oldest
 * there. */
static void m_leave_queue(uint64_t id)
{
	struct m_obj *r = m_obj(id);

	cr_assert_eq(r->kind, M_REQ);
	cr_assert_eq(r->state, MQ_QUEUED, "request %llu not queued", (unsigned long long)id);
	for (unsigned i = 0; i < M.nlive; i++) {
		struct m_obj *q = &M.o[M.live[i]];

		if (q->kind == M_REQ && q->state == MQ_QUEUED && q->fn == r->fn)
			cr_assert_geq(q->seq, r->seq, "queue order broken");
	}
}

static void m_run(uint64_t req, uint64_t fn, uint64_t vm, bool warm)
{
	struct m_obj *r = m_obj(req), *v = m_obj(vm);
	struct m_fn *f = m_fn(fn);

	cr_assert_not_null(f);
	cr_assert_eq(r->fn, fn);
	cr_assert_not(r->ran, "admitted twice");
	r->state = MQ_RUNNING;
	r->vm = vm;
	r->ran = true;
	M.admitted++;
	if (warm) {
		cr_assert_eq(v->kind, M_VM);
		cr_assert_eq(v->fn, fn);
		cr_assert(v->state == MV_READY || v->state == MV_AFTER, "warm VM %llu in state %d",
			  (unsigned long long)vm, v->state);
	} else {
		cr_assert_eq(v->kind, M_NONE, "new VM %llu seen before", (unsigned long long)vm);
		if (r->seq > M.youngest_new)
			M.youngest_new = r->seq;
		v->kind = M_VM;
		v->fn = fn;
		m_live(vm);
	}
	v->state = MV_BUSY;
	v->uses++;
	cr_assert_leq(v->uses, f->cfg.isolation == POOL_REUSE ? f->cfg.reuse_max : 1);
}

static void m_acts(void)
{
	struct pool_act a;
	struct m_obj *o;

	while (pool_next_act(p, &a)) {
		switch (a.kind) {
		case POOL_ACT_RUN:
			m_leave_queue(a.req);
			cr_assert_eq(a.wait_ns, M.now - m_obj(a.req)->t);
			m_run(a.req, a.fn, a.vm, a.warm);
			break;
		case POOL_ACT_REFUSE:
			m_leave_queue(a.req);
			cr_assert_eq(a.reason, POOL_REFUSE_TIMEOUT);
			o = m_obj(a.req);
			cr_assert_eq(o->fn, a.fn);
			cr_assert_geq(M.now, o->t + m_fn(o->fn)->cfg.queue_timeout_ns);
			cr_assert_eq(a.wait_ns, M.now - o->t);
			o->state = MQ_DONE;
			m_unlive(a.req);
			break;
		case POOL_ACT_WARM:
			o = m_obj(a.vm);
			cr_assert_eq(o->kind, M_NONE);
			cr_assert_not(m_fn(a.fn)->draining);
			o->kind = M_VM;
			o->fn = a.fn;
			o->state = MV_STARTING;
			m_live(a.vm);
			break;
		case POOL_ACT_STOP:
			o = m_obj(a.vm);
			cr_assert_eq(o->kind, M_VM);
			cr_assert_eq(o->fn, a.fn);
			switch (a.why) {
			case POOL_STOP_RETIRED:
				cr_assert_eq(o->state, MV_AFTER);
				break;
			case POOL_STOP_IDLE:
				cr_assert_eq(o->state, MV_READY);
				cr_assert_geq(M.now, o->t + M.cfg.idle_ns);
				break;
			case POOL_STOP_DRAINED:
				cr_assert(m_fn(a.fn)->draining);
				/* fall through */
			case POOL_STOP_EVICTED:
				cr_assert(o->state == MV_STARTING || o->state == MV_READY ||
					      o->state == MV_AFTER,
					  "%s of a VM in state %d", pool_stop_name(a.why),
					  o->state);
				break;
			}
			o->state = MV_ENDED;
			m_unlive(a.vm);
			break;
		case POOL_ACT_GONE: {
			struct m_fn *f = m_fn(a.fn);

			cr_assert(f && f->draining && !f->gone);
			for (unsigned i = 0; i < M.nlive; i++)
				cr_assert_neq(M.o[M.live[i]].fn, a.fn, "GONE with %llu alive",
					      (unsigned long long)M.live[i]);
			f->gone = true;
			break;
		}
		}
	}
	/* A VM whose request completed and that was neither stopped nor given
	 * another request is ready again: only under reuse, before its last. */
	for (unsigned i = 0; i < M.nlive; i++) {
		o = &M.o[M.live[i]];
		if (o->kind == M_VM && o->state == MV_AFTER) {
			struct m_fn *f = m_fn(o->fn);

			cr_assert_eq(f->cfg.isolation, POOL_REUSE, "per-request VM kept");
			cr_assert_lt(o->uses, f->cfg.reuse_max, "VM kept past reuse_max");
			o->state = MV_READY;
			o->t = M.now;
		}
	}
}

static bool m_fits(uint32_t vms, uint64_t mem, uint32_t fmem)
{
	return vms + 1 <= M.cfg.max_vms && mem + fmem <= M.cfg.max_mem_mib;
}

static void m_check(void)
{
	struct pool_stats g;
	uint32_t vms = 0, warm = 0, queued_n = 0, running = 0;
	uint64_t mem = 0, refused_n = 0, oldest_seq = UINT64_MAX;
	struct m_fn *oldest = NULL;

	/* Those waiting on the limits before, and waiting still, were not
	 * overtaken. */
	for (unsigned i = 0; i < M.nblocked; i++) {
		struct m_obj *r = m_obj(M.blocked[i]);

		if (r->state == MQ_QUEUED)
			cr_assert_lt(M.youngest_new, r->seq, "request %llu overtaken by %llu",
				     (unsigned long long)r->seq,
				     (unsigned long long)M.youngest_new);
	}
	M.nblocked = 0;
	M.youngest_new = 0;
	pool_stats(p, &g);
	for (unsigned k = 0; k < M.nfns; k++) {
		struct m_fn *f = &M.fns[k];
		struct pool_stats st;
		uint32_t fv = 0, fw = 0, fs = 0, fq = 0, fr = 0, fready = 0;
		uint64_t head = UINT64_MAX, head_id = 0, oldest_idle = UINT64_MAX;

		if (f->gone) {
			cr_assert_eq(pool_fn_stats(p, f->id, &st), -ENOENT);
			continue;
		}
		cr_assert_eq(pool_fn_stats(p, f->id, &st), 0);
		for (unsigned i = 0; i < M.nlive; i++) {
			struct m_obj *o = &M.o[M.live[i]];

			if (o->fn != f->id)
				continue;
			if (o->kind == M_REQ) {
				fq += o->state == MQ_QUEUED;
				fr += o->state == MQ_RUNNING;
				if (o->state == MQ_QUEUED && o->seq < head) {
					head = o->seq;
					head_id = M.live[i];
				}
				continue;
			}
			fv++;
			fw += o->state == MV_STARTING || o->state == MV_READY;
			fs += o->state == MV_STARTING;
			if (o->state == MV_READY) {
				fready++;
				if (o->t < oldest_idle)
					oldest_idle = o->t;
			}
		}
		cr_assert_eq(st.running, fr);
		cr_assert_leq(fr, f->cfg.max_concurrency, "slots over max_concurrency");
		cr_assert_eq(st.queue_len, fq);
		cr_assert_leq(fq, f->cfg.queue_max);
		cr_assert_eq(st.vms, fv);
		cr_assert_eq(st.warm, fw);
		cr_assert_eq(st.starting, fs);
		cr_assert_eq(st.mem_mib, (uint64_t)fv * f->cfg.mem_mib);
		cr_assert_eq(st.draining, f->draining);
		cr_assert_eq(st.admitted, st.completed + st.running);
		if (f->draining)
			cr_assert_leq(fw, fq, "a draining function keeps spare warm VMs");
		if (M.cfg.idle_ns && fw > f->cfg.min_warm && fready)
			cr_assert_gt(oldest_idle + M.cfg.idle_ns, M.now, "a surplus idle VM kept");
		vms += fv;
		warm += fw;
		mem += st.mem_mib;
		queued_n += fq;
		running += fr;
		/* Queued with a free slot: it waits on the limits, so its
		 * function has no ready VM. */
		if (fq && fr < f->cfg.max_concurrency) {
			cr_assert_eq(fready, 0, "a queued request with a slot and a ready VM");
			M.blocked[M.nblocked++] = head_id;
			if (head < oldest_seq) {
				oldest_seq = head;
				oldest = f;
			}
		}
	}
	cr_assert_eq(g.vms, vms);
	cr_assert_eq(g.mem_mib, mem);
	cr_assert_eq(g.warm, warm);
	cr_assert_eq(g.queue_len, queued_n);
	cr_assert_eq(g.running, running);
	cr_assert_leq(g.vms, M.cfg.max_vms, "VMs over the limit");
	cr_assert_leq(g.mem_mib, M.cfg.max_mem_mib, "memory over the limit");
	cr_assert_leq(g.queue_len, M.cfg.max_queued);
	for (unsigned i = 0; i < POOL_REFUSE_COUNT; i++)
		refused_n += g.refused[i];
	cr_assert_eq(g.submitted, g.admitted + refused_n + g.cancelled + g.queue_len);
	cr_assert_eq(g.admitted, g.completed + g.running);
	cr_assert_eq(g.admitted, M.admitted);
	cr_assert_eq(g.completed, M.completed);
	if (oldest) {
		/* The oldest request waiting on the limits could not be placed
		 * even by evicting every warm VM of the other functions. */
		uint32_t ev = 0;
		uint64_t evmem = 0;

		for (unsigned i = 0; i < M.nlive; i++) {
			struct m_obj *o = &M.o[M.live[i]];

			if (o->kind == M_VM && o->fn != oldest->id &&
			    (o->state == MV_STARTING || o->state == MV_READY)) {
				ev++;
				evmem += m_fn(o->fn)->cfg.mem_mib;
			}
		}
		cr_assert_not(m_fits(vms - ev, mem - evmem, oldest->cfg.mem_mib),
			      "a waiting request could have run");
	} else if (!M.cfg.warm_retry_ns) {
		/* Nobody waits on the limits: each function has its min_warm,
		 * or its next warm VM does not fit. */
		for (unsigned k = 0; k < M.nfns; k++) {
			struct m_fn *f = &M.fns[k];
			struct pool_stats st;

			if (f->gone || f->draining)
				continue;
			cr_assert_eq(pool_fn_stats(p, f->id, &st), 0);
			if (st.warm < f->cfg.min_warm)
				cr_assert_not(m_fits(vms, mem, f->cfg.mem_mib),
					      "a warm VM missing though it fits");
		}
	}
	cr_assert_gt(pool_next_deadline(p), M.now, "something due was not done");
}

/* A random live object of kind k in state s1 or s2; 0 if none. */
static uint64_t m_pick(int k, int s1, int s2)
{
	uint64_t c[R_LIVE];
	unsigned n = 0;

	for (unsigned i = 0; i < M.nlive; i++) {
		struct m_obj *o = &M.o[M.live[i]];

		if (o->kind == k && (o->state == s1 || o->state == s2))
			c[n++] = M.live[i];
	}
	return n ? c[rn(n)] : 0;
}

static struct m_fn *m_pick_fn(void)
{
	struct m_fn *c[R_FNS];
	unsigned n = 0;

	for (unsigned i = 0; i < M.nfns; i++)
		if (!M.fns[i].gone)
			c[n++] = &M.fns[i];
	return n ? c[rn(n)] : NULL;
}

static bool m_add_fn(void)
{
	struct pool_fn_cfg c = {
	    .max_concurrency = 1 + rn(4),
	    .mem_mib = 64u << rn(4),
	    .min_warm = rn(3),
	    .isolation = rn(2) ? POOL_REUSE : POOL_PER_REQUEST,
	    .reuse_max = 1 + rn(4),
	    .queue_max = rn(5),
	    .queue_timeout_ns = 1 + rn(400),
	};
	unsigned alive = 0;
	uint64_t id;

	for (unsigned i = 0; i < M.nfns; i++)
		alive += !M.fns[i].gone;
	if (M.nfns == R_FNS || alive >= 5)
		return false;
	cr_assert_eq(pool_fn_add(p, &c, NULL, M.now, &id), 0);
	m_obj(id)->kind = M_FN;
	M.fns[M.nfns++] = (struct m_fn){.id = id, .cfg = c};
	m_acts();
	return true;
}

static bool m_submit(void)
{
	struct m_fn *f = rn(20) ? m_pick_fn() : NULL;
	uint64_t fn = f ? f->id : (rn(2) ? 0 : R_MAXID + 1);
	struct pool_admit a;

	if (!rn(10) && M.nfns) {
		f = &M.fns[rn(M.nfns)]; /* gone ones too */
		fn = f->id;
	}
	cr_assert_eq(pool_submit(p, fn, NULL, M.now, &a), 0);
	m_acts(); /* what the call did besides: timeouts, evictions, WARMs */
	switch (a.kind) {
	case POOL_REFUSED:
		if (!f || f->gone) {
			cr_assert_eq(a.reason, POOL_REFUSE_UNKNOWN);
		} else if (f->draining) {
			cr_assert_eq(a.reason, POOL_REFUSE_DRAINING);
		} else {
			unsigned fq = m_count(M_REQ, MQ_QUEUED, fn);
			unsigned fr = m_count(M_REQ, MQ_RUNNING, fn);
			unsigned gq = m_count(M_REQ, MQ_QUEUED, 0);

			if (a.reason == POOL_REFUSE_FN_FULL) {
				cr_assert_eq(fr, f->cfg.max_concurrency);
				cr_assert_eq(fq, f->cfg.queue_max);
			} else {
				cr_assert_eq(a.reason, POOL_REFUSE_LIMITS);
				cr_assert(gq == M.cfg.max_queued ||
					  (fq == f->cfg.queue_max && fr < f->cfg.max_concurrency));
			}
		}
		return true;
	case POOL_RUN:
	case POOL_QUEUED:
		cr_assert(f && !f->gone && !f->draining);
		if (a.kind == POOL_RUN)
			cr_assert_eq(m_count(M_REQ, MQ_QUEUED, fn), 0, "ran ahead of its queue");
		*m_obj(a.req) = (struct m_obj){.kind = M_REQ, .fn = fn, .seq = ++M.seq, .t = M.now};
		m_live(a.req);
		if (a.kind == POOL_RUN)
			m_run(a.req, fn, a.vm, a.warm);
		return true;
	}
	cr_assert_fail("kind %d", a.kind);
	return true;
}

static bool m_complete(void)
{
	uint64_t id = m_pick(M_REQ, MQ_RUNNING, MQ_RUNNING);
	bool reusable = rn(4) != 0;
	struct m_obj *r, *v;

	if (!id)
		return false;
	r = m_obj(id);
	v = m_obj(r->vm);
	cr_assert_eq(v->state, MV_BUSY);
	cr_assert_eq(pool_complete(p, id, reusable, M.now), 0);
	cr_assert_eq(++r->completes, 1);
	r->state = MQ_DONE;
	M.completed++;
	m_unlive(id);
	if (reusable) {
		v->state = MV_AFTER;
	} else {
		v->state = MV_ENDED;
		m_unlive(r->vm);
	}
	m_acts();
	cr_assert_eq(pool_complete(p, id, true, M.now), -ENOENT, "completed twice");
	return true;
}

static bool m_cancel(void)
{
	uint64_t id = m_pick(M_REQ, MQ_QUEUED, MQ_QUEUED);
	int rc;

	if (!id)
		return false;
	rc = pool_cancel(p, id, M.now);
	if (rc == 0) {
		m_obj(id)->state = MQ_DONE;
		m_unlive(id);
		m_acts();
		return true;
	}
	/* It timed out first, in the call's own settling. */
	cr_assert_eq(rc, -ENOENT);
	m_acts();
	cr_assert_eq(m_obj(id)->state, MQ_DONE);
	return true;
}

static bool m_ready(void)
{
	uint64_t id = m_pick(M_VM, MV_STARTING, MV_STARTING);
	int rc;

	if (!id)
		return false;
	rc = pool_vm_ready(p, id, M.now);
	if (rc == 0) {
		m_obj(id)->state = MV_READY;
		m_obj(id)->t = M.now;
		m_acts();
		return true;
	}
	cr_assert_eq(rc, -ENOENT);
	m_acts();
	cr_assert_eq(m_obj(id)->state, MV_ENDED, "ready refused for a VM alive");
	return true;
}

static bool m_fail(void)
{
	uint64_t id = m_pick(M_VM, MV_STARTING, MV_READY);
	int rc;

	if (!id) {
		id = m_pick(M_VM, MV_BUSY, MV_BUSY);
		if (!id)
			return false;
		cr_assert_eq(pool_vm_failed(p, id, M.now), -EBUSY);
		m_acts();
		return true;
	}
	rc = pool_vm_failed(p, id, M.now);
	if (rc == 0) {
		m_obj(id)->state = MV_ENDED;
		m_unlive(id);
		m_acts();
		return true;
	}
	m_acts();
	if (rc == -EBUSY)
		cr_assert_eq(m_obj(id)->state, MV_BUSY);
	else
		cr_assert_eq(rc, -ENOENT);
	return true;
}

static bool m_remove(void)
{
	struct m_fn *f = m_pick_fn();
	int rc;

	if (!f)
		return false;
	rc = pool_fn_remove(p, f->id, M.now);
	cr_assert_eq(rc, f->draining ? -EALREADY : 0);
	f->draining = true;
	m_acts();
	return true;
}

static void randomized(uint64_t seed, const struct pool_cfg *cfg)
{
	memset(&M, 0, sizeof(M));
	M.o = calloc(R_MAXID, sizeof(*M.o));
	cr_assert_not_null(M.o);
	M.rng = seed;
	M.cfg = *cfg;
	mkpool_cfg(cfg);
	for (unsigned i = 0; i < 3; i++)
		m_add_fn();
	for (unsigned op = 0; op < R_OPS; op++) {
		unsigned k = rn(100);
		bool called;

		M.now += rn(8) ? rn(20) : rn(600);
		if (k < 35)
			called = m_submit();
		else if (k < 60)
			called = m_complete();
		else if (k < 75)
			called = m_ready();
		else if (k < 80)
			called = m_fail();
		else if (k < 85)
			called = m_cancel();
		else if (k < 87)
			called = m_add_fn();
		else if (k < 88)
			called = m_remove();
		else
			called = false;
		if (!called) {
			pool_tick(p, M.now);
			m_acts();
		}
		m_check();
	}
	/* Wind down: every function removed, every request through. */
	for (unsigned i = 0; i < M.nfns; i++) {
		if (!M.fns[i].gone && !M.fns[i].draining) {
			cr_assert_eq(pool_fn_remove(p, M.fns[i].id, M.now), 0);
			M.fns[i].draining = true;
			m_acts();
			m_check();
		}
	}
	for (unsigned guard = 0; M.nlive; guard++) {
		cr_assert_lt(guard, 100000, "the pool does not drain");
		M.now += 10;
		bool called = false;

		if (m_count(M_REQ, MQ_RUNNING, 0))
			called = m_complete();
		else if (m_count(M_VM, MV_STARTING, 0))
			called = m_ready();
		if (!called) {
			pool_tick(p, M.now);
			m_acts();
		}
		m_check();
	}
	for (unsigned i = 0; i < M.nfns; i++)
		cr_assert(M.fns[i].gone, "function %llu not gone", (unsigned long long)M.fns[i].id);
	cr_assert_eq(gstats().vms, 0);
	cr_assert_eq(gstats().mem_mib, 0);
	cr_assert_eq(M.admitted, M.completed);
	for (uint64_t id = 1; id < R_MAXID; id++) {
		struct m_obj *o = &M.o[id];

		if (o->kind == M_REQ)
			cr_assert_eq(o->completes, o->ran ? 1 : 0, "request %llu",
				     (unsigned long long)id);
	}
	/* It did exercise things. */
	cr_assert_gt(gstats().admitted, R_OPS / 10);
	cr_assert_gt(gstats().admitted_warm, 500);
	cr_assert_gt(gstats().queued, 500);
	cr_assert_gt(gstats().evicted, 500);
	cr_assert_gt(gstats().refused[POOL_REFUSE_TIMEOUT], 200);
	cr_assert_gt(gstats().refused[POOL_REFUSE_FN_FULL], 100);
	cr_assert_gt(gstats().refused[POOL_REFUSE_LIMITS], 100);
	cr_assert_gt(gstats().refused[POOL_REFUSE_DRAINING], 50);
	cr_assert_gt(gstats().cancelled, 50);
	cr_assert_gt(gstats().retired, 500);
	cr_assert_gt(gstats().drained, 50);
	cr_assert_gt(gstats().vms_failed, 200);
	if (cfg->idle_ns)
		cr_assert_gt(gstats().idle_stopped, 50);
	free(M.o);
}

Test(pool, randomized_tight_limits)
{
	struct pool_cfg c = {.max_vms = 6, .max_mem_mib = 1024, .max_queued = 8, .idle_ns = 300};

	randomized(0x5eed1234abcdull, &c);
}

Test(pool, randomized_with_retry_backoff)
{
	struct pool_cfg c = {.max_vms = 10,
			     .max_mem_mib = 2048,
			     .max_queued = 12,
			     .warm_retry_ns = 50,
			     .warm_retry_max_ns = 400};

	randomized(0xfeedface1ull, &c);
}
