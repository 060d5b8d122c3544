/* Kicks and limiter waits (core/evwait.h) on a real io_uring event loop,
 * run on the test's own thread. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "core/evloop.h"
#include "core/evwait.h"

/* Waits of 10 s that a passing test never sees run out. */
TestSuite(evwait, .timeout = 5);

#define LONG_NS (10ull * 1000000000ull)

/* A stand-in device: what its two handlers saw. */
struct dev {
	struct evloop *l;
	struct ev_kick kick;
	struct ev_wait wait;
	int kicks, waits;
	int kick_res, wait_res;
	bool again;	      /* ev_wait_done's last answer */
	bool later;	      /* ev_wait_recheck's in the kick's handler */
	bool stop_on_kick;    /* the kick's handler stops the loop */
	bool recheck_on_kick; /* ... or asks the wait to look again */
	bool recheck_twice;   /* ... twice */
};

static void kick_done(struct ev_op *op, int res)
{
	struct dev *d = container_of(op, struct dev, kick.op);

	d->kick_res = ev_kick_take(&d->kick, res);
	if (d->kick_res < 0)
		return;
	d->kicks++;
	if (d->recheck_on_kick)
		d->later = ev_wait_recheck(&d->wait, d->l);
	if (d->recheck_twice)
		d->later = d->later && ev_wait_recheck(&d->wait, d->l);
	if (d->stop_on_kick)
		evloop_stop(d->l);
}

static void wait_done(struct ev_op *op, int res)
{
	struct dev *d = container_of(op, struct dev, wait.op);

	d->waits++;
	d->wait_res = res;
	d->again = ev_wait_done(&d->wait, res);
	evloop_stop(d->l);
}

static void dev_init(struct dev *d)
{
	int r;

	*d = (struct dev){.kick_res = 1, .wait_res = 1};
	r = evloop_create(&d->l, 8);
	cr_assert_eq(r, 0, "evloop_create: %s", strerror(-r));
	r = ev_kick_init(&d->kick, kick_done);
	cr_assert_eq(r, 0, "ev_kick_init: %s", strerror(-r));
	ev_wait_init(&d->wait, wait_done);
}

static void dev_run(struct dev *d)
{
	cr_assert_eq(evloop_run(d->l), 0);
}

static void dev_fini(struct dev *d)
{
	evloop_destroy(d->l);
	ev_kick_close(&d->kick);
	cr_assert_eq(d->kick.fd, -1);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

Test(evwait, kicks_before_the_loop_runs_come_as_one_and_are_read_back)
{
	struct dev d;
	eventfd_t v;

	dev_init(&d);
	d.stop_on_kick = true;
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0);
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0, "armed again: a no-op");
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	dev_run(&d);
	cr_assert_eq(d.kicks, 1);
	cr_assert_eq(d.kick_res, -ECANCELED, "the poll's last call: the loop stopped");
	cr_assert_eq(eventfd_read(d.kick.fd, &v), -1, "the counter was read back to zero");
	cr_assert_eq(errno, EAGAIN);
	dev_fini(&d);
}

Test(evwait, a_full_counter_is_a_kick_already_waiting)
{
	struct dev d;

	dev_init(&d);
	cr_assert_eq(eventfd_write(d.kick.fd, UINT64_MAX - 1), 0);
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	dev_fini(&d);
}

Test(evwait, the_kick_handler_sees_the_loop_stop)
{
	struct dev d;

	dev_init(&d);
	d.kick_res = 1;
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0);
	evloop_stop(d.l);
	dev_run(&d);
	cr_assert_eq(d.kick_res, -ECANCELED, "got %d", d.kick_res);
	cr_assert_eq(d.kicks, 0);
	dev_fini(&d);
}

Test(evwait, a_wait_runs_out_and_the_device_looks_again)
{
	struct dev d;

	dev_init(&d);
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, 1000000), 0);
	cr_assert(ev_wait_armed(&d.wait));
	dev_run(&d);
	cr_assert_eq(d.waits, 1);
	cr_assert_eq(d.wait_res, -ETIME);
	cr_assert(d.again);
	cr_assert_not(ev_wait_armed(&d.wait));
	dev_fini(&d);
}

Test(evwait, arming_an_armed_wait_keeps_its_time)
{
	struct dev d;
	double t0 = now_s();

	dev_init(&d);
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, 1000000), 0);
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, LONG_NS), 0);
	dev_run(&d);
	cr_assert_eq(d.waits, 1);
	cr_assert_eq(d.wait_res, -ETIME);
	cr_assert_lt(now_s() - t0, 2.0, "the first time held");
	dev_fini(&d);
}

Test(evwait, waits_of_zero_and_of_centuries_are_armed)
{
	struct dev d;

	dev_init(&d);
	/* ratelimit_wait_ns's 0: once round the loop. */
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, 0), 0);
	cr_assert_eq(d.wait.ts.tv_sec, 0);
	cr_assert_eq(d.wait.ts.tv_nsec, 1);
	dev_run(&d);
	cr_assert_eq(d.wait_res, -ETIME);
	/* Its UINT64_MAX is beyond a timespec's signed seconds' reach as
	 * nanoseconds: armed all the same, then the loop stops. */
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, UINT64_MAX), 0);
	cr_assert_eq(d.wait.ts.tv_sec, INT64_MAX / 1000000000);
	cr_assert_eq(d.wait.ts.tv_nsec, INT64_MAX % 1000000000);
	evloop_stop(d.l);
	dev_run(&d);
	cr_assert_eq(d.waits, 2);
	cr_assert_eq(d.wait_res, -ECANCELED);
	cr_assert_not(d.again);
	dev_fini(&d);
}

Test(evwait, new_limits_cut_an_armed_wait_short)
{
	struct dev d;
	double t0 = now_s();

	dev_init(&d);
	d.recheck_on_kick = true;
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, LONG_NS), 0);
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0);
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	dev_run(&d);
	cr_assert(d.later, "the wait's handler looks again, not the kick's");
	cr_assert_eq(d.waits, 1);
	cr_assert_eq(d.wait_res, -ECANCELED);
	cr_assert(d.again, "a cancel for new limits is not the loop's");
	cr_assert_not(ev_wait_armed(&d.wait));
	cr_assert_lt(now_s() - t0, 2.0);
	dev_fini(&d);
}

Test(evwait, with_no_wait_armed_the_kick_looks_itself)
{
	struct dev d;

	dev_init(&d);
	d.recheck_on_kick = d.stop_on_kick = true;
	d.later = true;
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0);
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	dev_run(&d);
	cr_assert_eq(d.kicks, 1);
	cr_assert_not(d.later);
	cr_assert_eq(d.waits, 0);
	dev_fini(&d);
}

Test(evwait, a_loop_that_stops_cancels_the_wait_without_a_look)
{
	struct dev d;

	dev_init(&d);
	d.stop_on_kick = true;
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, LONG_NS), 0);
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0);
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	dev_run(&d);
	cr_assert_eq(d.waits, 1, "evloop_run cancels what is pending on its way out");
	cr_assert_eq(d.wait_res, -ECANCELED);
	cr_assert_not(d.again);
	cr_assert_not(ev_wait_armed(&d.wait));
	/* And it can be armed again on the next run. */
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, 1000000), 0);
	dev_run(&d);
	cr_assert_eq(d.waits, 2);
	cr_assert(d.again);
	dev_fini(&d);
}

Test(evwait, a_second_recheck_before_the_first_lands_changes_nothing)
{
	struct dev d;

	dev_init(&d);
	d.recheck_on_kick = d.recheck_twice = true;
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, LONG_NS), 0);
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0);
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	dev_run(&d);
	cr_assert(d.later);
	cr_assert_eq(d.waits, 1, "one cancel, one call");
	cr_assert_eq(d.wait_res, -ECANCELED);
	cr_assert(d.again);
	dev_fini(&d);
}

Test(evwait, a_recheck_the_loop_stops_behind_still_looks)
{
	struct dev d;

	dev_init(&d);
	d.recheck_on_kick = d.stop_on_kick = true;
	cr_assert_eq(ev_wait_arm(&d.wait, d.l, LONG_NS), 0);
	cr_assert_eq(ev_kick_arm(&d.kick, d.l), 0);
	cr_assert_eq(ev_kick_send(&d.kick), 0);
	dev_run(&d);
	cr_assert_eq(d.waits, 1);
	cr_assert_eq(d.wait_res, -ECANCELED);
	cr_assert(d.again, "new limits came first: the device looks (and finds the loop gone)");
	cr_assert_not(ev_wait_armed(&d.wait));
	dev_fini(&d);
}
