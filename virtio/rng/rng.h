/* virtio-rng (virtio 1.2 section 5.4), Firecracker's "entropy" device: one
 * request queue whose chains of device-writable buffers the device fills
 * from the host's getrandom(2). No features beyond the transport's, no
 * configuration space.
 *
 * A request is one chain: its writable bytes, at most RNG_REQ_MAX, are
 * filled and the chain given back with that used length. A chain with a
 * device-readable buffer, or with no writable byte, is given back empty and
 * counted as an error (as Firecracker does); a chain vq_pop refuses breaks
 * the queue (DEVICE_NEEDS_RESET).
 *
 * Rate limiter (core/ratelimit.h): each request costs its filled bytes from
 * the bandwidth bucket and one operation from the ops bucket. A request the
 * limiter refuses is kept (popped, not answered) and one event-loop timer is
 * armed for the moment it would pass; nothing polls meanwhile, and the
 * queue waits behind it, in order.
 *
 * Threads: notify() and the timer run on the event-loop thread; activate()
 * and reset() come from vCPU threads, rng_set_ratelimit() from any thread.
 * One mutex serialises them. A reset drops the kept request (the guest has
 * forgotten it) and leaves the timer armed, to find nothing when it fires: a
 * vCPU thread cannot cancel a loop op.
 *
 * Life cycle: rng_create before the loop runs; rng_destroy after it has
 * stopped. */
#ifndef FLINT_RNG_H
#define FLINT_RNG_H

#include <stdint.h>

#include "core/evloop.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "virtio.h"

/* Largest queue the device takes (Firecracker's entropy queue size). */
#define RNG_QUEUE_MAX 256
/* Bytes filled per request at most; a larger chain gets this many. */
#define RNG_REQ_MAX (64u << 10)

struct rng;

struct rng_params {
	struct ratelimit_cfg rate_limiter; /* all zero: no limit */
	struct evloop *loop;		   /* must outlive the device */
};

/* Counters, cumulative since rng_create. */
struct rng_stats {
	uint64_t requests;		 /* chains filled */
	uint64_t bytes;			 /* random bytes given to the guest */
	uint64_t rate_limiter_throttled; /* requests the limiter held back, each once */
	uint64_t errors;		 /* chains given back empty, getrandom failures */
	uint64_t protocol_errors;	 /* broken queue: DEVICE_NEEDS_RESET */
};

/* Build the device with the limiter of p (checked as ratelimit_init does:
 * -EINVAL for a field over INT64_MAX). Returns 0 or -errno; *out owned by
 * the caller (rng_destroy). */
int rng_create(struct rng **out, const struct rng_params *p) WARN_UNUSED;

/* Free the device. The loop must have stopped (or never run); if it still
 * holds the device's timer or poll, the device is leaked, not freed. NULL
 * ok. */
void rng_destroy(struct rng *r);

/* Change the limiter while the VM runs (a PATCH): what the buckets hold is
 * kept, as ratelimit_update does. A request waiting for the old limit is
 * looked at again on the loop thread, at once. Any thread. Returns 0 or
 * -EINVAL (the limiter unchanged). */
int rng_set_ratelimit(struct rng *r, const struct ratelimit_cfg *cfg) WARN_UNUSED;

/* The limiter's state for a snapshot (the loop parked and the vCPUs
 * paused: no lock taken), and back into a device restored from one or reset
 * in place to it (its loop parked or not yet started): 0, or -EINVAL
 * (nothing changed) as ratelimit_resume says
 * (NULL: the buckets full, as at boot). */
void rng_save_limits(const struct rng *r, struct ratelimit_state *st);
int rng_restore_limits(struct rng *r, const struct ratelimit_state *st) WARN_UNUSED;

/* A snapshot's quiesce: the request the limiter keeps goes back to the
 * guest (vq_discard: the available ring offers it again, and a snapshot
 * records it as not yet taken) and notifications go back on. The timer, if
 * armed, stays armed and looks at the queue when it fires; so the device
 * takes work again when kicked. Nothing else is ever held: a request that
 * passes the limiter is answered at once. Any thread but the loop's, with
 * the loop parked (evloop_pause) or not running. */
void rng_quiesce(struct rng *r);

/* Copy the counters. Any thread. */
void rng_get_stats(struct rng *r, struct rng_stats *out);

/* VIRTIO_ID_RNG, one queue of up to RNG_QUEUE_MAX; dev is a struct rng. */
extern const struct virtio_dev_ops rng_ops;

#endif
