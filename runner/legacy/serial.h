/* An 8250/16550A UART register model (console). Knows nothing of KVM: output
 * bytes and interrupt edges go to callbacks. Thread-safe (the vCPU thread
 * and the input thread both use it). */
#ifndef FLINT_SERIAL_H
#define FLINT_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/util.h"

/* Both callbacks run on the calling thread with the UART's lock held: they
 * must not call back into the serial. */
struct serial_ops {
	/* The guest transmitted these bytes (one THR write, so n is 1). */
	void (*out)(void *ctx, const uint8_t *buf, size_t n);
	/* The interrupt output went from idle to pending (an edge, as an irqfd
	 * delivers it): trigger COM1_IRQ, e.g. write 1 to its irqfd. */
	void (*irq)(void *ctx);
};

struct serial;

/* A UART in its reset state. ops (both callbacks required) and ctx must
 * outlive it. Returns 0, -EINVAL or -ENOMEM. */
int serial_create(struct serial **out, const struct serial_ops *ops, void *ctx) WARN_UNUSED;
void serial_destroy(struct serial *s); /* NULL ok */

/* Register handlers for the 8 ports; register with opaque = the serial.
 * Only 1-byte accesses reach a register: other reads give 0xff, other
 * writes are dropped. */
extern const struct bus_ops serial_bus_ops;

/* Host input for the guest: queue up to n bytes in the 64-byte receive
 * FIFO. Returns the number accepted (the rest is for a later call when the
 * FIFO drains); 0 while the guest has the UART in loopback mode. */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t n);

#endif
