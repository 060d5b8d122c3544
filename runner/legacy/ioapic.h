/* The I/O APIC, in flint rather than in KVM (KVM's split irqchip): an
 * 82093AA-style register window (IOREGSEL at 0x00, IOWIN at 0x10) with as
 * many pins as the VM has interrupt lines, not KVM's fixed 24. Linux reads
 * and rewrites every pin's entry several times while it sets the chip up,
 * one VM exit per access; a chip of 7 pins costs a third of a 24-pin one's.
 *
 * The chip never delivers an interrupt itself. Each pin's entry, unmasked,
 * is an MSI message (the address and data an I/O APIC puts on the bus); the
 * owner gets the whole set of them through `routes` whenever it changes and
 * installs it as the VM's interrupt routes (KVM_SET_GSI_ROUTING, GSI = pin),
 * where the irqfds of the devices meet it. A masked pin has no route: an
 * edge raised on it is lost, as on the chip. Remote IRR and delivery status
 * read 0: KVM delivers the messages, and the guest's EOI for a level-
 * triggered one needs nothing from the chip (vcpu.c lets the exit pass).
 *
 * Each write that changes a message reinstalls the set, and that is not
 * free for the host (KVM_SET_GSI_ROUTING builds a new table and waits for
 * an SRCU grace period, partly on a kworker outside the VM's cgroup). A
 * guest that toggles a mask bit in a loop is held to IOAPIC_ROUTE_RATE
 * changes a second after a burst of IOAPIC_ROUTE_BURST (Linux makes a few
 * dozen at boot): the writing vCPU waits for its turn (said once in the
 * log), so only that guest is slowed. It waits without `lock`, so other
 * vCPUs read and write the chip meanwhile (and may take the turn first),
 * and it installs what the chip holds once its turn comes; a kick (a
 * pause, a snapshot, a reset) ends the wait and the change goes in at
 * once, so none of them waits on a guest's turn. QEMU and Cloud Hypervisor
 * reinstall on every entry write, changed or not, without a limit.
 *
 * No knowledge of KVM; bus device at IOAPIC_ADDR, one page, opaque = the
 * struct. The vCPU threads (the bus ops) and the control thread (save,
 * load) share it under `lock`. */
#ifndef FLINT_IOAPIC_H
#define FLINT_IOAPIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/ratelimit.h"
#include "core/util.h"

#define IOAPIC_MAX_PINS 24
#define IOAPIC_VERSION	0x11 /* 82093AA: no EOI register */

/* Route changes the guest may make: a burst, then this many a second. */
#define IOAPIC_ROUTE_BURST 256
#define IOAPIC_ROUTE_RATE  100

/* One unmasked pin as the message it sends. */
struct ioapic_msi {
	uint32_t gsi; /* the pin */
	uint32_t address_lo;
	uint32_t data;
};

/* Install these n messages as the VM's routes, replacing the last set.
 * 0 or -errno (logged by the chip: the guest's write cannot fail). */
typedef int (*ioapic_routes_fn)(void *ctx, const struct ioapic_msi *msi, unsigned n);

/* What a snapshot keeps: the guest-visible registers. */
struct ioapic_state {
	uint32_t npins;	   /* 1..IOAPIC_MAX_PINS, fixed when the VM is made */
	uint32_t id;	   /* bits 24-27 of register 0, as the guest wrote them */
	uint32_t ioregsel; /* the register IOWIN shows */
	uint64_t redir[IOAPIC_MAX_PINS];
};

struct ioapic {
	pthread_mutex_t lock;
	struct ioapic_state s;
	ioapic_routes_fn routes;
	void *ctx;
	/* The set last installed, to skip a write that changes no message. */
	struct ioapic_msi installed[IOAPIC_MAX_PINS];
	unsigned ninstalled;
	bool route_error_told;
	/* The guest's route changes, rate-limited (not saved: a restored VM
	 * starts with a full bucket). now and sleep_ns are now_ns and a
	 * CLOCK_MONOTONIC sleep (false: cut short by a signal); a test may set
	 * its own after ioapic_init. */
	struct ratelimit rl;
	uint64_t (*now)(void);
	bool (*sleep_ns)(uint64_t ns);
	bool throttle_told;
};

extern const struct bus_ops ioapic_bus_ops;

/* A chip of npins (1..IOAPIC_MAX_PINS) after reset: every pin masked, ID
 * 0 (a 64-bit guest keeps it; the MP table's ID is only a name). -EINVAL
 * for a bad count. No teardown is needed. */
int ioapic_init(struct ioapic *io, unsigned npins, ioapic_routes_fn routes, void *ctx) WARN_UNUSED;

/* The registers, for a snapshot. */
void ioapic_save(struct ioapic *io, struct ioapic_state *out);

/* Check s (pure): a pin count in range, the ID and IOREGSEL in their bits,
 * no entry with bits a guest cannot set. -EINVAL with err naming it. */
int ioapic_state_check(const struct ioapic_state *s, char *err, size_t errlen) WARN_UNUSED;

/* Load s (checked, and of this chip's pin count) and install its routes.
 * 0, -EINVAL (err says why; nothing changed) or the routes' -errno. */
int ioapic_load(struct ioapic *io, const struct ioapic_state *s, char *err,
		size_t errlen) WARN_UNUSED;

#endif
