/* Guest memory: the one guarded door to guest-physical addresses.
 * No other module does guest address arithmetic. */
#ifndef FLINT_GMEM_H
#define FLINT_GMEM_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

struct gmem;

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	void *host;
};

/* Map `size` bytes of guest RAM (anonymous, MAP_NORESERVE, THP advised),
 * split around the 32-bit MMIO hole: [0, min(size, MMIO_GAP_START)) and, for
 * the rest, [4 GiB, ...). size must be a non-zero multiple of 4 KiB.
 * Returns 0 or -errno. */
int gmem_create(struct gmem **out, uint64_t size) WARN_UNUSED;
void gmem_destroy(struct gmem *g); /* NULL ok */

/* Host pointer for [gpa, gpa+len) or NULL unless the whole range lies in one
 * RAM region (overflow checked; len 0 is treated as 1). */
void *gmem_ptr(const struct gmem *g, uint64_t gpa, uint64_t len);

/* Copy to/from guest memory. Return 0 or -EFAULT. */
int gmem_read(const struct gmem *g, uint64_t gpa, void *dst, size_t len) WARN_UNUSED;
int gmem_write(struct gmem *g, uint64_t gpa, const void *src, size_t len) WARN_UNUSED;

/* Total RAM bytes, RAM below the hole, and the regions (for KVM slots). */
uint64_t gmem_size(const struct gmem *g);
uint64_t gmem_low_end(const struct gmem *g);
size_t gmem_nregions(const struct gmem *g);
const struct gmem_region *gmem_region(const struct gmem *g, size_t i);

#endif
