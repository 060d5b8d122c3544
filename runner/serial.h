/* An 8250/16550A UART register model (console). Knows nothing of KVM: output
 * bytes and interrupt edges go to callbacks. Thread-safe (the vCPU thread
 * and the input thread both use it). */
#ifndef FLINT_SERIAL_H
#define FLINT_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "util.h"

struct serial_ops {
	/* The guest transmitted these bytes. */
	void (*out)(void *ctx, const uint8_t *buf, size_t n);
	/* An interrupt condition rose (edge, as an irqfd delivers it). */
	void (*irq)(void *ctx);
};

struct serial;

int serial_create(struct serial **out, const struct serial_ops *ops, void *ctx) WARN_UNUSED;
void serial_destroy(struct serial *s); /* NULL ok */

/* Register handlers for the 8 ports; register with opaque = the serial. */
extern const struct bus_ops serial_bus_ops;

/* Host input for the guest: queue up to n bytes in the receive FIFO. Returns
 * the number accepted (the rest is for a later call when the FIFO drains). */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t n);

#endif
