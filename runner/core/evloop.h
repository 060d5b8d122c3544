/* One io_uring event loop per VM, on its own thread. Devices embed a
 * struct ev_op in their own structs and get its done() callback, on the loop
 * thread, when the operation completes; the loop knows no device kinds and
 * allocates nothing per operation.
 *
 * Threads: only the loop thread submits, from inside done() callbacks (the
 * common case: a queue-notify handler pops requests and submits I/O), or the
 * set-up thread before the loop runs. Any other thread that needs the loop
 * writes an eventfd the loop polls; evloop_stop(), evloop_pause() and
 * evloop_resume() are the calls that are safe from other threads. While the
 * loop is paused, the thread that paused it stands in for the loop thread
 * (see evloop_pause).
 *
 * The ring is created disabled, restricted to the opcodes in the table in
 * evloop.c (one row for each submission function below) and to no
 * io_uring_register() operations at all, and only then enabled. */
#ifndef FLINT_EVLOOP_H
#define FLINT_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/util.h"

struct evloop;
struct io_uring_sqe;
struct __kernel_timespec;

/* Embed in the caller's struct and recover it with container_of. Set done,
 * zero the rest (a designated initialiser does both) and leave it alone while
 * pending. One op carries one operation at a time.
 *
 * done(op, res) gets what the kernel returned: bytes for a writev, the ready
 * poll events for a poll, -ETIME for a timer that ran out, or -errno
 * (-ECANCELED after evloop_cancel or at teardown). Errors are the handler's to judge;
 * the loop carries on. done may submit again, on this op or any other. */
struct ev_op {
	void (*done)(struct ev_op *op, int res);
	/* Private to the loop. */
	struct ev_op *prev, *next; /* in the loop's list of pending ops */
	struct ev_op *defer_next;  /* in the list of deferred calls */
	int fd;			   /* poll: re-armed on the same fd and events */
	unsigned events;
	bool pending, multishot, cancelled, deferred;
};

struct evloop_stats {
	uint64_t submitted;  /* SQEs handed to the kernel */
	uint64_t completed;  /* CQEs reaped */
	uint64_t iterations; /* loop turns: one io_uring_enter each, SQ overflow aside */
};

/* Create a loop whose submission queue holds `entries` SQEs (a power of two
 * up to 4096 reads best; more submissions than that are still taken). Does
 * not start a thread. Returns 0 or -errno (-ENOSYS or -EPERM where io_uring
 * is unavailable or disabled by kernel.io_uring_disabled). */
int evloop_create(struct evloop **out, unsigned entries) WARN_UNUSED;

/* Stop and join the loop thread if there is one, cancel whatever is still
 * pending and wait for it (its done() runs here, with -ECANCELED or its real
 * result), then free. So the structs holding the ops must outlive this call,
 * or the loop must have stopped first. NULL ok. */
void evloop_destroy(struct evloop *l);

/* Run the loop in the calling thread until evloop_stop(). Before returning,
 * cancel every pending op and wait for its completion, so that afterwards
 * the kernel holds no reference to any op, iovec or buffer. Pending ops do
 * not survive: a later evloop_run() starts with none. Returns 0 or -errno
 * when the ring itself fails. */
int evloop_run(struct evloop *l) WARN_UNUSED;

/* evloop_run() on a new thread named "evloop", with all signals blocked.
 * Returns 0, -EBUSY if already started, or -errno. */
int evloop_start(struct evloop *l) WARN_UNUSED;

/* Have the thread from evloop_start() call fn(ctx) before it runs the loop
 * (vm.c installs the thread's seccomp filter there). A negative return ends
 * the thread at once with that result, which evloop_join() returns. Call
 * before evloop_start(). */
void evloop_set_thread_init(struct evloop *l, int (*fn)(void *ctx), void *ctx);

/* Ask the loop to stop; returns at once. Safe from any thread, the loop's own
 * handlers included. A stop requested before the loop runs makes the next
 * run return at once. */
void evloop_stop(struct evloop *l);

/* Park the thread running the loop between two batches (after a batch's
 * handlers and deferred calls, before it next waits) and wait until it is
 * parked: no done() runs until evloop_resume. Pending ops stay pending; what
 * completes meanwhile waits in the completion queue and its done() runs
 * after the resume. Until then the calling thread may use the loop as its
 * own thread would (submit, cancel, defer: a snapshot's quiesce gives back
 * buffers and disarms timers): the loop thread touches nothing while parked,
 * and the lock it parks under hands its memory over both ways. The SQEs so
 * queued go to the kernel on the loop's first turn after the resume.
 *
 * From any thread but the loop's (there: -EDEADLK). When no loop runs (not
 * started, or stopped: evloop_run has returned) it does nothing and returns
 * 0; a thread just started is waited for until it parks before its first
 * turn. Pauses do not nest: one evloop_resume ends them. evloop_stop while
 * paused still ends the loop (its way out cancels the pending ops as
 * usual, running their done()), so evloop_join returns. Returns 0 or
 * -errno. */
int evloop_pause(struct evloop *l) WARN_UNUSED;
/* evloop_pause, waiting until deadline_ns (now_ns()'s clock) at most:
 * -ETIMEDOUT then, the loop still asked to pause (it parks when it can;
 * call again to wait on, or evloop_resume to take the request back). A
 * loop held up in a done() (a device's copy from guest memory the Uffd
 * handler does not serve) would keep evloop_pause waiting for ever. */
int evloop_pause_until(struct evloop *l, uint64_t deadline_ns) WARN_UNUSED;

/* Have the parked loop thread run fn(ctx) and wait until it has: code that
 * must run on the loop's thread (a snapshot's device quiesce: the syscalls
 * it makes are that thread's, under its seccomp table) while the loop
 * stays parked, no done() around it. Call between evloop_pause and
 * evloop_resume, from the pausing thread. When no loop was started, fn
 * runs on the caller's thread. 0; -EINVAL when the loop is not parked;
 * -ESHUTDOWN when it is stopping, has ended since it was started, or
 * stopped before running fn (fn has not run). */
int evloop_call_parked(struct evloop *l, void (*fn)(void *ctx), void *ctx) WARN_UNUSED;

/* Let a paused loop run on (and forget a pause asked of a loop that has
 * stopped since). Any thread; returns at once; a no-op when not paused. */
void evloop_resume(struct evloop *l);

/* Wait for the thread from evloop_start() to finish (call evloop_stop first)
 * and return what its evloop_run() returned; 0 if no thread was started. */
int evloop_join(struct evloop *l);
/* evloop_join if the thread has finished (true, its result in *result),
 * or false at once. */
bool evloop_try_join(struct evloop *l, int *result);

/* Counters, for --stats. Safe to call from any thread at any time. */
void evloop_get_stats(const struct evloop *l, struct evloop_stats *out);

/* True from submission until the op's final done() call has started. */
static inline bool evloop_pending(const struct ev_op *op)
{
	return op->pending;
}

/* Submissions. Each queues one SQE (flushing the SQ to the kernel first if it
 * is full) and returns 0 or -errno: -EBUSY if op is still pending, -EINVAL
 * without op->done, -ESHUTDOWN while the loop cancels everything on its way
 * out. The SQEs go to the kernel on the loop's next turn, in one syscall. */

/* Poll fd for `events` (POLLIN...) until cancelled: done() runs once per
 * readiness with the ready events and the op stays pending (a multishot poll,
 * re-armed by the loop should the kernel end it). A final negative res ends
 * it. The handler must consume the readiness (read the eventfd). */
int evloop_poll(struct evloop *l, struct ev_op *op, int fd, unsigned events) WARN_UNUSED;

/* Poll fd once for `events`: done() runs once, with the ready events (or
 * -errno), and the op is free again. For readiness wanted now and then, with
 * a mask that changes (a socket's POLLIN while it may send, POLLOUT while
 * output is queued), where a multishot poll would keep firing. */
int evloop_poll_once(struct evloop *l, struct ev_op *op, int fd, unsigned events) WARN_UNUSED;

/* A timer: done() runs with -ETIME once *ts (relative, CLOCK_MONOTONIC) has
 * passed, or -ECANCELED. *ts must stay valid until the loop's next turn (the
 * kernel reads it when the SQE is submitted); keeping it beside op is the
 * simple way. */
int evloop_timeout(struct evloop *l, struct ev_op *op,
		   const struct __kernel_timespec *ts) WARN_UNUSED;

/* *ts = ns nanoseconds, as evloop_timeout takes a wait. */
void evloop_ts_ns(struct __kernel_timespec *ts, uint64_t ns);

/* pwritev at byte offset off (virtio-net's packets to its tap). iov[] and
 * the buffers must stay valid until done() (the kernel may read the array
 * after this returns). The loop has no read, sync or fallocate: drives do
 * their I/O on rings of their own (virtio/blk/blk_ring.h), and an opcode no
 * device submits here is one more thing a compromised loop thread could do
 * past seccomp. */
int evloop_writev(struct evloop *l, struct ev_op *op, int fd, const struct iovec *iov,
		  unsigned iovcnt, uint64_t off) WARN_UNUSED;

/* Ask the kernel to cancel a pending op. Its done() still runs once more:
 * -ECANCELED, or its real result if it finished first (a read already under
 * way is not interrupted). Returns 0 (also when already asked), -ENOENT if
 * op is not pending, or -errno. */
int evloop_cancel(struct evloop *l, struct ev_op *op) WARN_UNUSED;

/* Call op->done(op, 0) once, after the loop has run the handlers of the
 * current batch of completions and before it next waits: a device batches
 * its work per batch (one interrupt decision for many completed requests).
 * Deferring an op already deferred is a no-op. The op must not be pending
 * I/O. Loop thread only. Calls still deferred when the loop stops are
 * dropped. Returns 0 or -EBUSY (op pending). */
int evloop_defer(struct evloop *l, struct ev_op *op) WARN_UNUSED;

/* Queue a copy of a caller-prepared SQE, for tests and for trying an opcode
 * before it gets its own function; its user_data is overwritten. The ring's
 * restrictions still apply: an opcode outside the table, or any SQE flag
 * (links, fixed files, async), completes with -EACCES. */
int evloop_submit_sqe(struct evloop *l, struct ev_op *op,
		      const struct io_uring_sqe *sqe) WARN_UNUSED;

#endif
