/* An 8250/16550A UART register model (console). Knows nothing of KVM: output
 * bytes and interrupt edges go to callbacks. Thread-safe (the vCPU thread
 * and the input thread both use it). */
#ifndef FLINT_SERIAL_H
#define FLINT_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/util.h"
#include "core/wire.h"

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

/* Snapshot: append the UART's state (its registers, the receive FIFO's
 * bytes in order, whether a THRE interrupt is armed) to w, its own u32
 * version first. Returns 0 or w's error (-ENOMEM). Any thread. */
int serial_save(const struct serial *s, struct wbuf *w) WARN_UNUSED;

/* Read state written by serial_save from r and make it s's. Everything is
 * decoded and checked before s changes: -EBADMSG for a truncated or
 * corrupt input or another version, -EINVAL for a value this UART cannot
 * hold (a register bit it lacks, MSR lines that disagree with MCR, a FIFO
 * over 64 bytes); err (errlen bytes, may be 0) says which field, and s is
 * left as it was. On success an interrupt the restored state has pending
 * is raised again through ops->irq (the edge sent before the snapshot may
 * not have reached the guest). Bytes after the section are left in r for
 * the caller. */
int serial_restore(struct serial *s, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

#endif
