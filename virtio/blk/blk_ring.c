/* A drive's own io_uring; see blk_ring.h. */
#include "blk/blk_ring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk_ring_test.h"
#include "core/uring.h"

/* Every opcode the ring accepts; the kernel completes any other with
 * -EACCES. */
static const uint8_t allowed_ops[] = {
    IORING_OP_READV,	    /* blk_ring_readv */
    IORING_OP_WRITEV,	    /* blk_ring_writev */
    IORING_OP_FSYNC,	    /* blk_ring_fsync */
    IORING_OP_FALLOCATE,    /* blk_ring_fallocate */
    IORING_OP_ASYNC_CANCEL, /* blk_ring_drain */
};

struct blk_ring {
	struct io_uring ring;
	bool ring_ok;
	bool draining;
	unsigned pending, depth;
};

int blk_ring_create(struct blk_ring **out, unsigned depth)
{
	/* An SQE per operation in flight: the CQ, twice the SQ, then holds
	 * all of their completions and the drain's cancel, and never
	 * overflows. A full SQ is flushed to the kernel (get_sqe). */
	struct blk_ring *r;
	int err;

	*out = NULL;
	if (!depth)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->depth = depth;
	err = uring_init_restricted(&r->ring, depth, 0, allowed_ops, ARRAY_SIZE(allowed_ops));
	if (err < 0)
		goto err;
	r->ring_ok = true;
	*out = r;
	return 0;
err:
	blk_ring_destroy(r);
	return err;
}

void blk_ring_destroy(struct blk_ring *r)
{
	if (!r)
		return;
	if (r->ring_ok) {
		if (blk_ring_drain(r) < 0) {
			/* The kernel may still use buffers that belong to the
			 * caller, and this struct: leak it, ring and all. */
			pr_err("drive I/O ring: %u requests still in flight at teardown",
			       r->pending);
			return;
		}
		io_uring_queue_exit(&r->ring);
	}
	free(r);
}

int blk_ring_fd(const struct blk_ring *r)
{
	return r->ring.ring_fd;
}

unsigned blk_ring_pending(const struct blk_ring *r)
{
	return r->pending;
}

/* A free SQE; when the SQ is full, hand it to the kernel first. */
static int get_sqe(struct blk_ring *r, struct io_uring_sqe **out)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) {
		int err = io_uring_submit(&r->ring);
		if (err < 0)
			return err;
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			return -EAGAIN;
	}
	*out = sqe;
	return 0;
}

/* A free SQE for op, which then counts as pending; the caller preps it
 * and sets its user_data to op. */
static int queue(struct blk_ring *r, struct blk_ring_op *op, struct io_uring_sqe **out)
{
	int err;

	if (!op->done)
		return -EINVAL;
	if (op->pending || r->pending >= r->depth)
		return -EBUSY;
	if (r->draining)
		return -ESHUTDOWN;
	if ((err = get_sqe(r, out)) < 0)
		return err;
	op->pending = true;
	r->pending++;
	return 0;
}

int blk_ring_readv(struct blk_ring *r, struct blk_ring_op *op, int fd, const struct iovec *iov,
		   unsigned iovcnt, uint64_t off)
{
	struct io_uring_sqe *sqe;
	int err = queue(r, op, &sqe);

	if (err == 0) {
		io_uring_prep_readv(sqe, fd, iov, iovcnt, off);
		io_uring_sqe_set_data(sqe, op);
	}
	return err;
}

int blk_ring_writev(struct blk_ring *r, struct blk_ring_op *op, int fd, const struct iovec *iov,
		    unsigned iovcnt, uint64_t off)
{
	struct io_uring_sqe *sqe;
	int err = queue(r, op, &sqe);

	if (err == 0) {
		io_uring_prep_writev(sqe, fd, iov, iovcnt, off);
		io_uring_sqe_set_data(sqe, op);
	}
	return err;
}

int blk_ring_fsync(struct blk_ring *r, struct blk_ring_op *op, int fd, bool datasync)
{
	struct io_uring_sqe *sqe;
	int err = queue(r, op, &sqe);

	if (err == 0) {
		io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
		io_uring_sqe_set_data(sqe, op);
	}
	return err;
}

int blk_ring_fallocate(struct blk_ring *r, struct blk_ring_op *op, int fd, int mode, uint64_t off,
		       uint64_t len)
{
	struct io_uring_sqe *sqe;
	int err = queue(r, op, &sqe);

	if (err == 0) {
		io_uring_prep_fallocate(sqe, fd, mode, off, len);
		io_uring_sqe_set_data(sqe, op);
	}
	return err;
}

/* blk_ring_fail_submits (blk_ring_test.h): failures still to inject, and
 * the error. Zero but in unit tests. */
static unsigned fail_left;
static int fail_err;

unsigned blk_ring_fail_submits(unsigned n, int err)
{
	unsigned left = fail_left;

	fail_left = n;
	fail_err = err;
	return left;
}

int blk_ring_submit(struct blk_ring *r)
{
	int err;

	if (fail_left && io_uring_sq_ready(&r->ring)) {
		/* Only where io_uring_submit would enter the kernel. */
		fail_left--;
		return fail_err;
	}
	err = io_uring_submit(&r->ring);
	if (err < 0)
		return err;
	/* Short of memory the kernel takes the SQEs before the one it cannot
	 * allocate a request for, returns their count and leaves the rest
	 * queued: the caller must hear of them, or nobody submits them. */
	return io_uring_sq_ready(&r->ring) ? -EAGAIN : 0;
}

/* Run the handler of every CQE there is. Each CQE is released before its
 * handler runs, which may queue again. */
static unsigned reap_cqes(struct blk_ring *r)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
		struct blk_ring_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&r->ring, cqe);
		n++;
		if (!op)
			continue; /* the drain's cancel */
		op->pending = false;
		r->pending--;
		op->done(op, res);
	}
	return n;
}

unsigned blk_ring_reap(struct blk_ring *r)
{
	return reap_cqes(r);
}

int blk_ring_wait(struct blk_ring *r)
{
	int err = 0;

	reap_cqes(r);
	while (r->pending) {
		/* Also submits what is queued: a failed submission's leftovers
		 * and the next steps the handlers queue. */
		err = io_uring_submit_and_wait(&r->ring, 1);
		if (err == -EINTR || err == -EAGAIN || err == -EBUSY)
			err = 0;
		if (err < 0)
			break;
		err = 0;
		reap_cqes(r);
	}
	return err;
}

int blk_ring_drain(struct blk_ring *r)
{
	struct io_uring_sqe *sqe;
	int err = 0;

	reap_cqes(r);
	if (!r->pending)
		return 0;
	r->draining = true;
	/* Reads waiting for a page or a poll, work not yet started in the
	 * kernel's workers: cancelled. A read or sync already under way runs
	 * to its end, which the wait below sees. A kernel without
	 * IORING_ASYNC_CANCEL_ANY (before 5.19) fails the cancel: all wait. */
	if (get_sqe(r, &sqe) == 0) {
		io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data(sqe, NULL);
	}
	while (r->pending) {
		err = io_uring_submit_and_wait(&r->ring, 1);
		if (err == -EINTR || err == -EAGAIN || err == -EBUSY)
			err = 0; /* a signal (a vCPU kick), or short of memory: again */
		if (err < 0)
			break;
		err = 0;
		reap_cqes(r);
	}
	r->draining = false;
	return err;
}
