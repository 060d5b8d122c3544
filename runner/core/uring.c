#include "core/uring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The most opcodes a caller restricts a ring to. */
#define URING_MAX_OPS 16

/* Install the opcode rows and enable the ring. No
 * IORING_RESTRICTION_REGISTER_OP rows: once enabled, the ring refuses every
 * io_uring_register() operation. */
static int restrict_ring(struct io_uring *ring, const uint8_t *ops, size_t nops)
{
	struct io_uring_restriction res[URING_MAX_OPS];
	int r;

	if (nops > ARRAY_SIZE(res))
		return -E2BIG;
	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < nops; i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = ops[i];
	}
	/* liburing 2.3 declares io_uring_register_restrictions() and
	 * io_uring_enable_rings() but does not export them from the shared
	 * library (axboe/liburing#773), so go through io_uring_register(). */
	r = io_uring_register(ring->ring_fd, IORING_REGISTER_RESTRICTIONS, res, nops);
	if (r < 0)
		return r;
	r = io_uring_register(ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	return r < 0 ? r : 0;
}

int uring_init_restricted(struct io_uring *ring, unsigned entries, unsigned cq_entries,
			  const uint8_t *ops, size_t nops)
{
	/* The ring fd is close-on-exec by the kernel's own doing. */
	unsigned flags = IORING_SETUP_R_DISABLED | (cq_entries ? IORING_SETUP_CQSIZE : 0);
	struct io_uring_params p = {.flags = flags | IORING_SETUP_SUBMIT_ALL,
				    .cq_entries = cq_entries};
	int r = io_uring_queue_init_params(entries, ring, &p);

	if (r == -EINVAL && entries) {
		/* IORING_SETUP_SUBMIT_ALL needs Linux 5.18. */
		p = (struct io_uring_params){.flags = flags, .cq_entries = cq_entries};
		r = io_uring_queue_init_params(entries, ring, &p);
	}
	if (r < 0)
		return r;
	if ((r = restrict_ring(ring, ops, nops)) < 0) {
		io_uring_queue_exit(ring);
		return r;
	}
	return 0;
}
