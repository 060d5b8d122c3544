#include "core/evloop.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/uring.h"

/* Every opcode the ring accepts: one row for each submission function. The
 * kernel completes any other opcode with -EACCES, so a seccomp filter that
 * allows io_uring_enter() allows no more than this. */
static const uint8_t allowed_ops[] = {
    IORING_OP_POLL_ADD,	    /* evloop_poll (multishot), evloop_poll_once */
    IORING_OP_WRITEV,	    /* evloop_writev */
    IORING_OP_ASYNC_CANCEL, /* evloop_cancel, and the cancels on the way out */
    IORING_OP_TIMEOUT,	    /* evloop_timeout */
};

/* user_data of the loop's cancel requests: their CQEs go to no handler. */
#define NO_OP 0

struct evloop {
	struct io_uring ring;
	bool ring_ok;
	int wake_fd; /* eventfd: evloop_stop() writes it, the loop polls it */
	struct ev_op wake_op;
	atomic_bool stop;
	bool draining;	   /* cancelling everything before evloop_run returns */
	struct ev_op *ops; /* pending ops */
	struct ev_op *deferred, **deferred_tail; /* evloop_defer() calls, in order */
	pthread_t thread;
	bool started;
	int thread_result;
	int (*thread_init)(void *ctx); /* evloop_set_thread_init */
	void *thread_ctx;
	/* Pausing (evloop_pause). pause is read by the loop once a turn
	 * without the lock; everything else is under park_lock, which
	 * park_cond goes with: the loop waits on it while parked, a pauser
	 * until the loop parks or ends. active: a loop runs, or a thread from
	 * evloop_start is on its way to run one; in_run: evloop_run runs, in
	 * thread runner. */
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	atomic_bool pause;
	bool parked, active, in_run;
	pthread_t runner;
	/* evloop_call_parked: what the parked loop thread is to run, NULL
	 * once it has (under park_lock). */
	void (*call_fn)(void *ctx);
	void *call_ctx;
	/* Written by the thread running the loop only; read by anyone. */
	_Atomic uint64_t submitted, completed, iterations;
};

static void count(_Atomic uint64_t *c, uint64_t n)
{
	/* One writer: no locked add needed. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void clear_eventfd(int fd)
{
	eventfd_t v;
	if (eventfd_read(fd, &v) < 0 && errno != EAGAIN)
		pr_debug("event loop: reading its eventfd: %s", strerror(errno));
}

static void woken(struct ev_op *op, int res)
{
	struct evloop *l = container_of(op, struct evloop, wake_op);
	if (res > 0)
		clear_eventfd(l->wake_fd);
	else if (res != -ECANCELED)
		pr_err("event loop: polling its eventfd: %s", strerror(-res));
}

#define EVLOOP_MIN_CQ 256

int evloop_create(struct evloop **out, unsigned entries)
{
	struct evloop *l = calloc(1, sizeof(*l));
	int r;

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->wake_op = (struct ev_op){.done = woken};
	pthread_mutex_init(&l->park_lock, NULL);
	cond_init_monotonic(&l->park_cond); /* evloop_pause_until */
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		r = -errno;
		goto err;
	}
	/* Completions come from the polls, timers and reads in flight, not
	 * from one turn's submissions: four times as many, and at least
	 * EVLOOP_MIN_CQ (a vsock connection may each have a poll pending).
	 * More wait in the kernel's overflow list. */
	r = uring_init_restricted(&l->ring, entries,
				  entries * 4 > EVLOOP_MIN_CQ ? entries * 4 : EVLOOP_MIN_CQ,
				  allowed_ops, ARRAY_SIZE(allowed_ops));
	if (r < 0)
		goto err;
	l->ring_ok = true;
	*out = l;
	return 0;
err:
	evloop_destroy(l);
	return r;
}

/* A free SQE; when the SQ is full, hand it to the kernel first. */
static int get_sqe(struct evloop *l, struct io_uring_sqe **out)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		int r = io_uring_submit(&l->ring);
		if (r < 0)
			return r;
		count(&l->submitted, r);
		sqe = io_uring_get_sqe(&l->ring);
		if (!sqe)
			return -EAGAIN;
	}
	*out = sqe;
	return 0;
}

static void link_op(struct evloop *l, struct ev_op *op)
{
	op->prev = NULL;
	op->next = l->ops;
	if (l->ops)
		l->ops->prev = op;
	l->ops = op;
}

static void unlink_op(struct evloop *l, struct ev_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		l->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static int submit(struct evloop *l, struct ev_op *op, const struct io_uring_sqe *src,
		  bool multishot)
{
	struct io_uring_sqe *sqe;
	int r;

	if (!op->done)
		return -EINVAL;
	if (op->pending)
		return -EBUSY;
	if (l->draining)
		return -ESHUTDOWN;
	if ((r = get_sqe(l, &sqe)) < 0)
		return r;
	*sqe = *src;
	io_uring_sqe_set_data(sqe, op);
	op->pending = true;
	op->multishot = multishot;
	op->cancelled = false;
	link_op(l, op);
	return 0;
}

static int arm_poll(struct evloop *l, struct ev_op *op)
{
	struct io_uring_sqe *sqe;
	int r = get_sqe(l, &sqe);

	if (r < 0)
		return r;
	io_uring_prep_poll_multishot(sqe, op->fd, op->events);
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int evloop_poll(struct evloop *l, struct ev_op *op, int fd, unsigned events)
{
	struct io_uring_sqe sqe = {0};

	if (op->pending)
		return -EBUSY;
	op->fd = fd;
	op->events = events;
	io_uring_prep_poll_multishot(&sqe, fd, events);
	return submit(l, op, &sqe, true);
}

int evloop_poll_once(struct evloop *l, struct ev_op *op, int fd, unsigned events)
{
	struct io_uring_sqe sqe = {0};
	io_uring_prep_poll_add(&sqe, fd, events);
	return submit(l, op, &sqe, false);
}

void evloop_ts_ns(struct __kernel_timespec *ts, uint64_t ns)
{
	*ts = (struct __kernel_timespec){.tv_sec = (int64_t)(ns / 1000000000u),
					 .tv_nsec = (long long)(ns % 1000000000u)};
}

int evloop_timeout(struct evloop *l, struct ev_op *op, const struct __kernel_timespec *ts)
{
	struct io_uring_sqe sqe = {0};
	/* count 0: a pure timer, not one that completes after other CQEs. */
	io_uring_prep_timeout(&sqe, (struct __kernel_timespec *)ts, 0, 0);
	return submit(l, op, &sqe, false);
}

int evloop_writev(struct evloop *l, struct ev_op *op, int fd, const struct iovec *iov,
		  unsigned iovcnt, uint64_t off)
{
	struct io_uring_sqe sqe = {0};
	io_uring_prep_writev(&sqe, fd, iov, iovcnt, off);
	return submit(l, op, &sqe, false);
}

int evloop_submit_sqe(struct evloop *l, struct ev_op *op, const struct io_uring_sqe *sqe)
{
	return submit(l, op, sqe, false);
}

int evloop_cancel(struct evloop *l, struct ev_op *op)
{
	struct io_uring_sqe *sqe;
	int r;

	if (!op->pending)
		return -ENOENT;
	if (op->cancelled)
		return 0;
	if ((r = get_sqe(l, &sqe)) < 0)
		return r;
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data64(sqe, NO_OP);
	op->cancelled = true;
	return 0;
}

static void complete(struct evloop *l, struct ev_op *op, int res, unsigned flags)
{
	/* The kernel's word, not op->multishot: an SQE from evloop_submit_sqe
	 * may be multishot too. */
	bool more = flags & IORING_CQE_F_MORE;

	if (op->multishot && !more && res >= 0 && !op->cancelled) {
		/* The kernel ended the multishot poll (a CQ overflow, say). */
		int r = arm_poll(l, op);
		if (r == 0) {
			op->done(op, res);
			return;
		}
		res = r;
	}
	if (!more) {
		unlink_op(l, op);
		op->pending = false;
	}
	/* Last use of op: done() may free it or submit it again. */
	op->done(op, res);
}

/* Run the handlers of every CQE there is, then release them in one go. */
static void reap(struct evloop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		struct ev_op *op = io_uring_cqe_get_data(cqe);
		n++;
		if (op)
			complete(l, op, cqe->res, cqe->flags);
	}
	io_uring_cq_advance(&l->ring, n);
	count(&l->completed, n);
}

int evloop_defer(struct evloop *l, struct ev_op *op)
{
	if (op->pending)
		return -EBUSY;
	if (op->deferred)
		return 0;
	op->deferred = true;
	op->defer_next = NULL;
	if (!l->deferred)
		l->deferred_tail = &l->deferred;
	*l->deferred_tail = op;
	l->deferred_tail = &op->defer_next;
	return 0;
}

/* Run the deferred calls, including any that they defer in turn. */
static void run_deferred(struct evloop *l)
{
	while (l->deferred) {
		struct ev_op *op = l->deferred;
		l->deferred = op->defer_next;
		op->deferred = false;
		op->done(op, 0);
	}
}

/* Submit what is queued and wait for at least one completion. Interrupted or
 * short of kernel resources, the caller reaps and comes back. */
static int enter(struct evloop *l)
{
	int r = io_uring_submit_and_wait(&l->ring, 1);

	count(&l->iterations, 1);
	if (r >= 0) {
		count(&l->submitted, r);
		return 0;
	}
	if (r == -EINTR || r == -EAGAIN || r == -EBUSY)
		return 0;
	pr_err("event loop: io_uring_enter: %s", strerror(-r));
	return r;
}

/* Cancel every pending op and wait until each has completed. */
static int drain(struct evloop *l)
{
	int r = 0;

	l->draining = true;
	for (struct ev_op *op = l->ops; op && r == 0; op = op->next)
		r = evloop_cancel(l, op);
	while (l->ops && r == 0) {
		r = enter(l);
		reap(l);
	}
	l->draining = false;
	if (r < 0)
		pr_err("event loop: cannot cancel pending I/O: %s", strerror(-r));
	return r;
}

/* Whether a loop runs (or a started thread is on its way to), and by whom:
 * on for evloop_start, and for evloop_run in the calling thread; off when
 * evloop_run returns or the started thread ends. */
static void set_active(struct evloop *l, bool on, bool run)
{
	pthread_mutex_lock(&l->park_lock);
	l->active = on;
	l->in_run = run;
	l->runner = pthread_self();
	if (!on) {
		/* A pause of a loop that ends is over; a pauser waiting for
		 * it to park returns. */
		atomic_store_explicit(&l->pause, false, memory_order_relaxed);
		pthread_cond_broadcast(&l->park_cond);
	}
	pthread_mutex_unlock(&l->park_lock);
}

/* Between two batches, evloop_pause asked: wait, parked, for
 * evloop_resume or evloop_stop. Loop thread. */
static void park(struct evloop *l)
{
	pthread_mutex_lock(&l->park_lock);
	l->parked = true;
	pthread_cond_broadcast(&l->park_cond);
	while (atomic_load_explicit(&l->pause, memory_order_relaxed) &&
	       !atomic_load_explicit(&l->stop, memory_order_acquire)) {
		if (l->call_fn) {
			/* Parked still: no done() runs around it. */
			void (*fn)(void *) = l->call_fn;
			pthread_mutex_unlock(&l->park_lock);
			fn(l->call_ctx);
			pthread_mutex_lock(&l->park_lock);
			l->call_fn = NULL;
			pthread_cond_broadcast(&l->park_cond);
			continue;
		}
		pthread_cond_wait(&l->park_cond, &l->park_lock);
	}
	l->parked = false;
	/* A call asked of a loop that stops instead stays set: its caller
	 * sees it not run, clears it and says so (-ESHUTDOWN). */
	pthread_cond_broadcast(&l->park_cond);
	pthread_mutex_unlock(&l->park_lock);
}

int evloop_run(struct evloop *l)
{
	int r = 0, d;

	if (!l->wake_op.pending && (r = evloop_poll(l, &l->wake_op, l->wake_fd, POLLIN)) < 0)
		return r;
	set_active(l, true, true);
	while (r == 0 && !atomic_load_explicit(&l->stop, memory_order_acquire)) {
		if (atomic_load_explicit(&l->pause, memory_order_acquire)) {
			park(l);
			continue;
		}
		r = enter(l);
		reap(l);
		run_deferred(l);
	}
	for (struct ev_op *op = l->deferred; op; op = op->defer_next)
		op->deferred = false;
	l->deferred = NULL;
	d = drain(l);
	clear_eventfd(l->wake_fd);
	set_active(l, false, false);
	atomic_store_explicit(&l->stop, false, memory_order_release);
	return r < 0 ? r : d;
}

static void *loop_thread(void *arg)
{
	struct evloop *l = arg;
	/* Named by itself before its init installs its filter (vcpu.c). */
	pthread_setname_np(pthread_self(), "evloop");
	if (!l->thread_init || (l->thread_result = l->thread_init(l->thread_ctx)) >= 0)
		l->thread_result = evloop_run(l);
	/* Also when the loop never ran (a refused init, a failed first poll). */
	set_active(l, false, false);
	return NULL;
}

void evloop_set_thread_init(struct evloop *l, int (*fn)(void *ctx), void *ctx)
{
	l->thread_init = fn;
	l->thread_ctx = ctx;
}

int evloop_start(struct evloop *l)
{
	int r;

	if (l->started)
		return -EBUSY;
	/* Active from now: a pause right after this call waits for the
	 * thread to park rather than find no loop. */
	pthread_mutex_lock(&l->park_lock);
	l->active = true;
	pthread_mutex_unlock(&l->park_lock);
	r = thread_start_unsignalled(&l->thread, NULL, loop_thread, l);
	if (r) {
		set_active(l, false, false);
		return -r;
	}
	l->started = true;
	return 0;
}

void evloop_stop(struct evloop *l)
{
	uint64_t one = 1;

	atomic_store_explicit(&l->stop, true, memory_order_release);
	/* EAGAIN means the counter is full: the loop is awake anyway. */
	if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_err("cannot wake the event loop: %s", strerror(errno));
	/* A parked loop waits on the condition, not on the ring. */
	pthread_mutex_lock(&l->park_lock);
	pthread_cond_broadcast(&l->park_cond);
	pthread_mutex_unlock(&l->park_lock);
}

int evloop_pause(struct evloop *l)
{
	return evloop_pause_until(l, UINT64_MAX);
}

int evloop_pause_until(struct evloop *l, uint64_t deadline_ns)
{
	uint64_t one = 1;
	int r = 0;

	pthread_mutex_lock(&l->park_lock);
	if (!l->active)
		goto out;
	if (l->in_run && pthread_equal(l->runner, pthread_self())) {
		r = -EDEADLK; /* a handler would wait for itself */
		goto out;
	}
	atomic_store_explicit(&l->pause, true, memory_order_release);
	/* The loop may be waiting in the kernel: the wake-up poll ends its
	 * batch. EAGAIN: the counter is full, the loop is awake anyway. */
	if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
		r = -errno;
		atomic_store_explicit(&l->pause, false, memory_order_relaxed);
		goto out;
	}
	while (!l->parked && l->active && !r)
		if (deadline_ns == UINT64_MAX)
			pthread_cond_wait(&l->park_cond, &l->park_lock);
		else if (cond_wait_until(&l->park_cond, &l->park_lock, deadline_ns) == ETIMEDOUT)
			r = -ETIMEDOUT;
out:
	pthread_mutex_unlock(&l->park_lock);
	return r;
}

int evloop_call_parked(struct evloop *l, void (*fn)(void *ctx), void *ctx)
{
	int r = 0;

	pthread_mutex_lock(&l->park_lock);
	/* A loop stopping, or started and ended since: fn is never run, not
	 * even here, on a thread of another seccomp table. */
	if (atomic_load_explicit(&l->stop, memory_order_acquire) || (l->started && !l->active)) {
		pthread_mutex_unlock(&l->park_lock);
		return -ESHUTDOWN;
	}
	if (!l->active) {
		pthread_mutex_unlock(&l->park_lock);
		fn(ctx); /* no loop thread: nothing runs beside the caller */
		return 0;
	}
	if (!l->parked) {
		pthread_mutex_unlock(&l->park_lock);
		return -EINVAL;
	}
	l->call_fn = fn;
	l->call_ctx = ctx;
	pthread_cond_broadcast(&l->park_cond);
	while (l->call_fn == fn && l->call_ctx == ctx && l->parked)
		pthread_cond_wait(&l->park_cond, &l->park_lock);
	if (l->call_fn) { /* the loop left its park (a stop) before running it */
		l->call_fn = NULL;
		r = -ESHUTDOWN;
	}
	pthread_mutex_unlock(&l->park_lock);
	return r;
}

void evloop_resume(struct evloop *l)
{
	pthread_mutex_lock(&l->park_lock);
	atomic_store_explicit(&l->pause, false, memory_order_release);
	pthread_cond_broadcast(&l->park_cond);
	pthread_mutex_unlock(&l->park_lock);
}

int evloop_join(struct evloop *l)
{
	if (!l->started)
		return 0;
	pthread_join(l->thread, NULL);
	l->started = false;
	return l->thread_result;
}

bool evloop_try_join(struct evloop *l, int *result)
{
	*result = 0;
	if (!l->started)
		return true;
	if (pthread_tryjoin_np(l->thread, NULL) != 0)
		return false;
	l->started = false;
	*result = l->thread_result;
	return true;
}

void evloop_get_stats(const struct evloop *l, struct evloop_stats *out)
{
	out->submitted = atomic_load_explicit(&l->submitted, memory_order_relaxed);
	out->completed = atomic_load_explicit(&l->completed, memory_order_relaxed);
	out->iterations = atomic_load_explicit(&l->iterations, memory_order_relaxed);
}

void evloop_destroy(struct evloop *l)
{
	if (!l)
		return;
	if (l->started) {
		evloop_stop(l);
		(void)evloop_join(l);
	}
	if (l->ring_ok) {
		if (l->ops)
			(void)drain(l);
		io_uring_queue_exit(&l->ring);
	}
	close_fd(&l->wake_fd);
	pthread_cond_destroy(&l->park_cond);
	pthread_mutex_destroy(&l->park_lock);
	free(l);
}
