/* An address bus (one for port I/O, one for MMIO). Devices register a range
 * and are handed offsets within it, never absolute addresses. Registration
 * happens before vCPUs start; dispatch is then lock-free and read-only. */
#ifndef FLINT_BUS_H
#define FLINT_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

struct bus_ops {
	/* Fill data[0..len) for a read at `off`. May be NULL: reads give 0xff. */
	void (*read)(void *opaque, uint64_t off, void *data, uint32_t len);
	/* Handle a write at `off`. May be NULL: writes are ignored. */
	void (*write)(void *opaque, uint64_t off, const void *data, uint32_t len);
};

struct bus;

int bus_create(struct bus **out) WARN_UNUSED;
void bus_destroy(struct bus *b); /* NULL ok */

/* Add [base, base+len). -EINVAL for len 0 or wrap-around, -EEXIST when it
 * overlaps a registered range, -ENOMEM. ops and opaque must outlive the bus. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque) WARN_UNUSED;

/* Dispatch an access. The access must lie wholly inside one range. Return
 * false when nothing is there (a read then yields all-ones). */
bool bus_read(const struct bus *b, uint64_t addr, void *data, uint32_t len);
bool bus_write(const struct bus *b, uint64_t addr, const void *data, uint32_t len);

#endif
