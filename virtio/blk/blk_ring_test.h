/* blk_ring.c's test seam, for the unit tests only: nothing in flint
 * includes this header but blk_ring.c itself, which defines the function. It
 * makes the failure of blk_ring_submit that memory pressure causes
 * (io_uring_enter refusing with -EAGAIN or -ENOMEM) happen on demand. */
#ifndef FLINT_BLK_RING_TEST_H
#define FLINT_BLK_RING_TEST_H

/* Make the next n calls of blk_ring_submit, on any ring, that have something
 * to submit fail with err (a -errno) before reaching the kernel, leaving what
 * is queued queued, as a refused io_uring_enter does; n 0 ends it. Returns
 * how many of the failures asked for before were still to come. Not
 * thread-safe: call it while no other thread uses a ring. */
unsigned blk_ring_fail_submits(unsigned n, int err);

#endif
