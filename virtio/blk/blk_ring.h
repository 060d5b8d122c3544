/* A drive's own io_uring, for its image I/O only. The event loop polls its
 * fd and the device reaps it there; the point of a ring of its own is that
 * a thread resetting the device can wait in the kernel for the I/O still
 * under way (blk_ring_drain), reaping the completions itself, without the
 * event-loop thread, which may at that moment be waiting for the very lock
 * the resetting thread holds (see blk.c).
 *
 * Threads: any, one at a time; the caller serialises every call (blk.c's
 * device lock). Like the event loop's ring it is created disabled,
 * restricted to the opcodes it uses and to no io_uring_register()
 * operations, and then enabled. No IORING_SETUP_COOP_TASKRUN, DEFER_TASKRUN
 * or SINGLE_ISSUER: the kernel finishes a request in the task that
 * submitted it (task work), and must be free to interrupt that task
 * whatever it is blocked in, so that another thread's drain completes. */
#ifndef FLINT_BLK_RING_H
#define FLINT_BLK_RING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/util.h"

struct blk_ring;

/* Embed in the caller's struct; set done and leave it alone while
 * pending. done(op, res) gets what the kernel returned (bytes, 0 or -errno;
 * -ECANCELED if a drain cancelled it) and may queue again. */
struct blk_ring_op {
	void (*done)(struct blk_ring_op *op, int res);
	bool pending; /* private */
};

/* A ring for up to `depth` operations in flight at once (the caller's
 * bound: more are refused with -EBUSY; a power of two wastes nothing).
 * Returns 0 or -errno. */
int blk_ring_create(struct blk_ring **out, unsigned depth) WARN_UNUSED;

/* Drain (done() runs for whatever is still in flight), then free. NULL ok. */
void blk_ring_destroy(struct blk_ring *r);

/* Readable (POLLIN) while completions wait to be reaped. */
int blk_ring_fd(const struct blk_ring *r);

/* Operations in flight: queued or submitted, done() not yet run. */
unsigned blk_ring_pending(const struct blk_ring *r);

/* Queue one operation; blk_ring_submit hands the queue to the kernel.
 * Returns 0 (done() will run) or -errno (it will not): -EBUSY if op is
 * pending or depth is reached, -ESHUTDOWN during a drain. iov[] and the
 * buffers must stay valid until done(). */
int blk_ring_readv(struct blk_ring *r, struct blk_ring_op *op, int fd, const struct iovec *iov,
		   unsigned iovcnt, uint64_t off) WARN_UNUSED;
int blk_ring_writev(struct blk_ring *r, struct blk_ring_op *op, int fd, const struct iovec *iov,
		    unsigned iovcnt, uint64_t off) WARN_UNUSED;
int blk_ring_fsync(struct blk_ring *r, struct blk_ring_op *op, int fd, bool datasync) WARN_UNUSED;
int blk_ring_fallocate(struct blk_ring *r, struct blk_ring_op *op, int fd, int mode, uint64_t off,
		       uint64_t len) WARN_UNUSED;

/* Submit what is queued, in one io_uring_enter (none if nothing is).
 * Returns 0 once the kernel has all of it, or -errno: what failed to go
 * stays queued for the next call, which nothing but the caller makes (the
 * kernel taking only part of the queue, short of memory, is -EAGAIN). */
int blk_ring_submit(struct blk_ring *r) WARN_UNUSED;

/* Run done() for every completion there is, without waiting; what the
 * handlers queue waits for blk_ring_submit. Returns the number of
 * completions. */
unsigned blk_ring_reap(struct blk_ring *r);

/* Wait until nothing is in flight, cancelling nothing: each operation
 * ends as it would have (done() runs here), and what the handlers queue
 * meanwhile is submitted and waited for too. For a drive that swaps its
 * image under requests the guest still expects answers to. Blocks for as
 * long as the I/O takes. Returns 0, or -errno if io_uring_enter failed
 * (some I/O may then still be under way). */
int blk_ring_wait(struct blk_ring *r) WARN_UNUSED;

/* Cancel everything in flight that the kernel can still cancel, and wait
 * for the rest to finish, running each done(). Afterwards the kernel holds
 * no reference to any iovec or buffer given to this ring. Handlers cannot
 * queue new work meanwhile (-ESHUTDOWN). Blocks for as long as the slowest
 * request takes (a read from a disk, a sync). Returns 0, or -errno if
 * io_uring_enter failed (some I/O may then still be under way). */
int blk_ring_drain(struct blk_ring *r) WARN_UNUSED;

#endif
