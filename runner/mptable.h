/* Intel MP table (MP spec 1.4) so that SMP guests without ACPI find every
 * vCPU, the IOAPIC and the ISA interrupt routing. */
#ifndef FLINT_MPTABLE_H
#define FLINT_MPTABLE_H

#include "gmem.h"
#include "util.h"

#define MPTABLE_MAX_CPUS 32

/* Write the floating pointer and configuration table at MPTABLE_ADDR for
 * ncpus (1..MPTABLE_MAX_CPUS) processors with APIC IDs 0..ncpus-1, an ISA
 * bus, one IOAPIC (ID ncpus) at IOAPIC_ADDR with ISA IRQs 0-15 routed to
 * pins 0-15, and LINT0 ExtINT / LINT1 NMI. Returns 0, -EINVAL for a bad
 * count, -E2BIG if it does not fit below 0xa0000, -EFAULT. */
int mptable_write(struct gmem *g, unsigned ncpus) WARN_UNUSED;

#endif
