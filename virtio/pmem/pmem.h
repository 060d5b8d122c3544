/* virtio-pmem (virtio 1.2 section 5.19), Firecracker's "pmem" device: a
 * host file mapped into the guest's physical address space, which the
 * guest reads and writes with loads and stores (as /dev/pmem<N>), and one
 * request queue on which it asks for its writes to be made durable.
 *
 * This module is the queue side only. Who maps the file into the guest
 * (kind_pmem.c, through the VM) gives the range it landed at, which the
 * configuration space reports, and the file's descriptor, which a flush
 * syncs; the device never touches the mapping.
 *
 * A request is one chain: a device-readable struct virtio_pmem_req (its
 * type, VIRTIO_PMEM_REQ_TYPE_FLUSH the only one) in its first readable
 * segment, and a device-writable struct virtio_pmem_resp in its first
 * writable segment, which gets 0 for success or 1 for an I/O error, the
 * chain given back with the 4 bytes written. Any other chain is given back
 * empty and counted as an error; a chain vq_pop refuses breaks the queue
 * (DEVICE_NEEDS_RESET).
 *
 * Flushes are coalesced: every request waiting when a sync starts is
 * answered by that sync, an fdatasync(2) on the device's own io_uring
 * (blk_ring.h), so the event loop never blocks on the disk. Requests that
 * come while it runs wait for the next one.
 *
 * Rate limiter (core/ratelimit.h), as Firecracker's: each sync costs one
 * operation and the file's size in bytes. A batch the limiter refuses is
 * kept (popped, not answered) and a timer armed for when it would pass.
 *
 * Threads: as rng.h. notify(), the timer and the ring's completions run on
 * the event-loop thread; activate() and reset() on vCPU threads;
 * pmem_set_ratelimit() on any. One mutex serialises them. A reset waits for
 * a sync under way and drops the requests it was for.
 *
 * Life cycle: pmem_create before the loop runs; pmem_destroy after it has
 * stopped. */
#ifndef FLINT_PMEM_H
#define FLINT_PMEM_H

#include <stdint.h>

#include "core/evloop.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "virtio.h"

/* Largest queue the device takes (Firecracker's pmem queue size). */
#define PMEM_QUEUE_MAX 256

struct pmem;

struct pmem_params {
	const char *id;	     /* for messages; copied */
	uint64_t start;	     /* guest-physical address of the mapping */
	uint64_t size;	     /* its length (the configuration space's) */
	int fd;		     /* the file a flush syncs; not owned, must outlive the device */
	uint64_t file_bytes; /* what a flush costs the bandwidth bucket */
	struct ratelimit_cfg rate_limiter; /* all zero: no limit */
	struct evloop *loop;		   /* must outlive the device */
};

/* Counters, cumulative since pmem_create. */
struct pmem_stats {
	uint64_t requests;		 /* flush requests answered */
	uint64_t syncs;			 /* fdatasyncs run for them */
	uint64_t rate_limiter_throttled; /* batches the limiter held back, each once */
	uint64_t errors;		 /* chains given back empty, failed syncs */
	uint64_t activate_fails;	 /* queues the device refused */
	uint64_t cfg_fails;		 /* the guest's writes to its configuration */
	uint64_t protocol_errors;	 /* broken queue: DEVICE_NEEDS_RESET */
};

/* Build the device. 0 or -errno (logged): -EINVAL for a limiter field over
 * INT64_MAX. *out owned by the caller (pmem_destroy). */
int pmem_create(struct pmem **out, const struct pmem_params *p) WARN_UNUSED;

/* Free the device: a sync still under way is waited for. The loop must
 * have stopped (or never run); if it still holds the device's timer or
 * polls, the device is leaked, not freed. NULL ok. */
void pmem_destroy(struct pmem *d);

/* Change the limiter while the VM runs (PATCH /pmem/{id}); what the
 * buckets hold is kept. A batch waiting for the old limit is looked at
 * again on the loop thread. Any thread. 0 or -EINVAL (unchanged). */
int pmem_set_ratelimit(struct pmem *d, const struct ratelimit_cfg *cfg) WARN_UNUSED;

/* The limiter's state for a snapshot (the loop parked and the vCPUs
 * paused: no lock taken), and back into a device restored from one or reset
 * in place to it (its loop parked or not yet started): 0, or -EINVAL
 * (nothing changed) as ratelimit_resume says
 * (NULL: the buckets full, as at boot). */
void pmem_save_limits(const struct pmem *d, struct ratelimit_state *st);
int pmem_restore_limits(struct pmem *d, const struct ratelimit_state *st) WARN_UNUSED;

/* Snapshot. pmem_drain: wait, until deadline_ns (now_ns()'s clock), for a
 * sync under way to end and be answered by the event loop, which runs
 * on; 0, or -ETIMEDOUT. pmem_quiesce, with the loop parked or stopped: a
 * sync still under way (or started since) is waited for and answered
 * here, a batch the limiter keeps goes back to the guest (vq_discard),
 * and notifications go back on. Afterwards nothing is popped and
 * unanswered. */
int pmem_drain(struct pmem *d, uint64_t deadline_ns) WARN_UNUSED;
void pmem_quiesce(struct pmem *d);

/* Copy the counters. Any thread. */
void pmem_get_stats(struct pmem *d, struct pmem_stats *out);

/* VIRTIO_ID_PMEM, one queue of up to PMEM_QUEUE_MAX; dev is a struct pmem. */
extern const struct virtio_dev_ops pmem_ops;

#endif
