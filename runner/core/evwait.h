/* Two things a device keeps on its event loop so that another thread can
 * cut a wait short, built on evloop.h's primitives: the kick for blk, net,
 * rng, pmem, balloon and the vsock muxer, the wait for all but the muxer.
 *
 * struct ev_kick: an eventfd that any thread writes and the loop polls
 * (multishot), so that the device looks at its queues again: a PATCH gave
 * it new limits or a new statistics interval, a drive's image was swapped,
 * the vsock device changed state.
 *
 * struct ev_wait: a timer that another thread may bring forward. A
 * device arms it for the moment its rate limiter will let a refused
 * request go (ratelimit_wait_ns), or for its next statistics request; new
 * limits or a new interval arrive by the kick, whose handler calls
 * ev_wait_recheck: the timer is cancelled, and its handler looks again
 * just as when it runs out. What tells that cancel from the loop's own on
 * its way out is the recheck flag, set here and read in ev_wait_done.
 *
 * Threads: the device's done() callbacks run on the loop thread and make
 * the ev_wait calls under the device's own lock, as do its other loop-
 * thread paths that arm the timer (or the set-up thread, before the loop
 * runs); only ev_kick_send is for any thread.
 * Both structs are plain members of the device's struct; their handlers
 * recover it with container_of on the ev_op. Neither holds state worth a
 * snapshot: a restored device has no request waiting (a quiesce gives the
 * held one back to the queue), and a statistics timer starts afresh. */
#ifndef FLINT_EVWAIT_H
#define FLINT_EVWAIT_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/evloop.h"
#include "core/util.h"

struct ev_kick {
	int fd; /* eventfd; -1 after a failed ev_kick_init and after ev_kick_close */
	struct ev_op op;
};

/* Open k's eventfd and set done as its handler. 0 or -errno. */
int ev_kick_init(struct ev_kick *k, void (*done)(struct ev_op *, int)) WARN_UNUSED;

/* Close the eventfd (the loop must no longer poll it). No-op when closed. */
void ev_kick_close(struct ev_kick *k);

/* Loop thread (or the set-up thread before the loop runs): have the loop
 * poll k unless it does already. 0 or -errno;
 * -ESHUTDOWN while the loop stops, which callers need not report. */
int ev_kick_arm(struct ev_kick *k, struct evloop *l) WARN_UNUSED;

/* Any thread: have k's handler run. 0 or -errno; a counter already full is
 * a kick already waiting, so 0. */
int ev_kick_send(struct ev_kick *k) WARN_UNUSED;

/* In k's handler, first: res < 0 is returned as it is (-ECANCELED: the loop
 * stops; otherwise the poll failed); else the counter is read back to zero
 * and 0 returned: the device should look again. */
int ev_kick_take(struct ev_kick *k, int res) WARN_UNUSED;

struct ev_wait {
	struct ev_op op;
	struct __kernel_timespec ts; /* op's; the kernel reads it at the next turn */
	bool armed;		     /* submitted, and ev_wait_done not yet called */
	bool recheck;		     /* cancelled by ev_wait_recheck */
};

/* Set done as w's handler, not armed. */
void ev_wait_init(struct ev_wait *w, void (*done)(struct ev_op *, int));

/* Arm w to run out in ns nanoseconds (at least 1, at most INT64_MAX:
 * ratelimit_wait_ns's 0 and UINT64_MAX), unless it is armed already (then
 * it keeps its time: 0). 0 or evloop_timeout's -errno. */
int ev_wait_arm(struct ev_wait *w, struct evloop *l, uint64_t ns) WARN_UNUSED;

static inline bool ev_wait_armed(const struct ev_wait *w)
{
	return w->armed;
}

/* In w's handler, under the lock: w is no longer armed. True when the
 * device should look again (w ran out, or ev_wait_recheck cut it short);
 * false when the loop cancelled it on its way out. */
bool ev_wait_done(struct ev_wait *w, int res);

/* New limits, in the kick's handler: when w is armed, cancel it so that
 * its handler looks again at once, and return true (the device leaves it
 * to that handler); false when it is not armed, or the cancel could not
 * be queued (the device looks now). */
bool ev_wait_recheck(struct ev_wait *w, struct evloop *l);

#endif
