/* io_uring set-up shared by the event loop and the drives' own rings: a ring
 * restricted to the opcodes its owner submits, since io_uring submissions
 * bypass seccomp. */
#ifndef FLINT_URING_H
#define FLINT_URING_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* Set up `ring` with `entries` SQEs and cq_entries CQEs (0: the kernel's
 * default, twice entries), IORING_SETUP_SUBMIT_ALL where the kernel has it
 * (an SQE it refuses does not hold back the ones after it), accepting only
 * the opcodes ops[0..nops) and no io_uring_register() operation once
 * enabled. 0, or -errno with the ring torn down. */
int uring_init_restricted(struct io_uring *ring, unsigned entries, unsigned cq_entries,
			  const uint8_t *ops, size_t nops) WARN_UNUSED;

#endif
