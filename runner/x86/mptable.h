/* Intel MP table (MP spec 1.4) so that SMP guests without ACPI find every
 * vCPU, the IOAPIC and the ISA interrupt routing. */
#ifndef FLINT_MPTABLE_H
#define FLINT_MPTABLE_H

#include <assert.h>
#include <stdint.h>

#include "core/gmem.h"
#include "core/util.h"

#define MPTABLE_MAX_CPUS 32
#define MPTABLE_MAX_PINS 24

/* MP spec 1.4 layouts (chapter 4). No UAPI header carries them; the names
 * follow Linux's arch/x86/include/asm/mpspec_def.h. Exposed so that tests
 * parse the table back with the very definitions that wrote it. */
#define MPF_SIGNATURE "_MP_"
#define MPC_SIGNATURE "PCMP"
#define MP_SPEC_REV   4
#define BUSTYPE_ISA   "ISA   "

/* Floating pointer structure: found by the guest's scan of the EBDA. */
struct mpf_intel {
	char signature[4];
	uint32_t physptr; /* configuration table */
	uint8_t length;	  /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum; /* all bytes sum to 0 */
	uint8_t feature1; /* 0: a configuration table is present */
	uint8_t feature2;
	uint8_t feature3[3];
} __attribute__((packed));
static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer");

/* Configuration table header, followed by `oemcount` entries. */
struct mpc_table {
	char signature[4];
	uint16_t length; /* header and entries */
	uint8_t spec;
	uint8_t checksum; /* header and entries sum to 0 */
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount; /* number of entries */
	uint32_t lapic;
	uint16_t exttbl_length;
	uint8_t exttbl_checksum;
	uint8_t reserved;
} __attribute__((packed));
static_assert(sizeof(struct mpc_table) == 44, "MP configuration table header");

enum mp_entry_type { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };

#define CPU_ENABLED	  1
#define CPU_BOOTPROCESSOR 2
struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;  /* CPUID signature: stepping, model, family */
	uint32_t featureflag; /* CPUID.1:EDX */
	uint32_t reserved[2];
} __attribute__((packed));
static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry");

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));
static_assert(sizeof(struct mpc_bus) == 8, "MP bus entry");

#define MPC_APIC_USABLE 1
struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));
static_assert(sizeof(struct mpc_ioapic) == 8, "MP I/O APIC entry");

enum mp_irq_type { mp_INT = 0, mp_NMI = 1, mp_SMI = 2, mp_ExtINT = 3 };
#define MP_IRQPOL_DEFAULT  0x0 /* conforms to the bus */
#define MP_IRQTRIG_DEFAULT 0x0 /* conforms to the bus */

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));
static_assert(sizeof(struct mpc_intsrc) == 8, "MP I/O interrupt entry");

struct mpc_lintsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbusid;
	uint8_t srcbusirq;
	uint8_t destapic; /* 0xff: every local APIC */
	uint8_t destapiclint;
} __attribute__((packed));
static_assert(sizeof(struct mpc_lintsrc) == 8, "MP local interrupt entry");

/* Write the floating pointer and configuration table at MPTABLE_ADDR for
 * ncpus (1..MPTABLE_MAX_CPUS) processors with APIC IDs 0..ncpus-1, an ISA
 * bus, one IOAPIC (ID ncpus) at IOAPIC_ADDR with ISA IRQs 0..npins-1
 * routed to pins 0..npins-1 (edge, as irqfds deliver; npins
 * 1..MPTABLE_MAX_PINS), and LINT0 ExtINT / LINT1 NMI. Returns 0, -EINVAL
 * for a bad count, -E2BIG if it does not fit below 0xa0000, -EFAULT. */
int mptable_write(struct gmem *g, unsigned ncpus, unsigned npins) WARN_UNUSED;

#endif
