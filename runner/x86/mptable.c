/* Intel MultiProcessor Specification 1.4 tables. Linux has no UAPI header for
 * them, so the layouts are defined here (spec chapter 4) and their sizes
 * checked. The whole table is built in a host buffer, checksummed, and
 * copied into the EBDA in one gmem_write. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "x86/layout.h"
#include "x86/mptable.h"

/* The EBDA ends where the legacy VGA hole starts. */
#define EBDA_END      0xa0000ULL
#define MP_TABLE_ROOM (EBDA_END - MPTABLE_ADDR)

#define MP_APIC_VERSION	  0x14	/* integrated local APIC */
#define MP_IOAPIC_VERSION 0x11	/* 82093AA */
#define MP_CPU_SIGNATURE  0x600 /* family 6, model 0, stepping 0 */
#define MP_FEATURE_FPU	  (1u << 0)
#define MP_FEATURE_APIC	  (1u << 9)
#define MP_APIC_ALL	  0xff

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return (uint8_t)-sum;
}

static size_t table_size(unsigned ncpus, unsigned npins)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
	       ncpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
	       npins * sizeof(struct mpc_intsrc) + 2 * sizeof(struct mpc_lintsrc);
}

/* Append one entry at *pos; the caller sized buf with table_size(). */
static void put(uint8_t *buf, size_t *pos, const void *entry, size_t len)
{
	memcpy(buf + *pos, entry, len);
	*pos += len;
}

static void put_entries(uint8_t *buf, size_t *pos, unsigned ncpus, unsigned npins)
{
	for (unsigned i = 0; i < ncpus; i++) {
		struct mpc_cpu cpu = {
		    .type = MP_PROCESSOR,
		    .apicid = (uint8_t)i,
		    .apicver = MP_APIC_VERSION,
		    .cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0),
		    .cpufeature = MP_CPU_SIGNATURE,
		    .featureflag = MP_FEATURE_FPU | MP_FEATURE_APIC,
		};
		put(buf, pos, &cpu, sizeof(cpu));
	}

	struct mpc_bus bus = {.type = MP_BUS, .busid = 0};
	memcpy(bus.bustype, BUSTYPE_ISA, sizeof(bus.bustype));
	put(buf, pos, &bus, sizeof(bus));

	struct mpc_ioapic ioapic = {
	    .type = MP_IOAPIC,
	    .apicid = (uint8_t)ncpus,
	    .apicver = MP_IOAPIC_VERSION,
	    .flags = MPC_APIC_USABLE,
	    .apicaddr = (uint32_t)IOAPIC_ADDR,
	};
	put(buf, pos, &ioapic, sizeof(ioapic));

	/* Every pin, as an ISA-style edge interrupt: the legacy devices' and
	 * the virtio-mmio devices', whose irqfds deliver edges. */
	for (unsigned irq = 0; irq < npins; irq++) {
		struct mpc_intsrc src = {
		    .type = MP_INTSRC,
		    .irqtype = mp_INT,
		    .irqflag = MP_IRQPOL_DEFAULT | MP_IRQTRIG_DEFAULT,
		    .srcbus = 0,
		    .srcbusirq = (uint8_t)irq,
		    .dstapic = (uint8_t)ncpus,
		    .dstirq = (uint8_t)irq,
		};
		put(buf, pos, &src, sizeof(src));
	}

	/* LINT0 ExtINT (virtual wire: where a PIC's output would come in;
	 * flint's VMs have none, and Linux masks it), NMI on LINT1, on every
	 * CPU (kvmtool does the same). */
	static const uint8_t lint_type[2] = {mp_ExtINT, mp_NMI};
	for (uint8_t lint = 0; lint < 2; lint++) {
		struct mpc_lintsrc l = {
		    .type = MP_LINTSRC,
		    .irqtype = lint_type[lint],
		    .irqflag = MP_IRQPOL_DEFAULT | MP_IRQTRIG_DEFAULT,
		    .srcbusid = 0,
		    .srcbusirq = 0,
		    .destapic = MP_APIC_ALL,
		    .destapiclint = lint,
		};
		put(buf, pos, &l, sizeof(l));
	}
}

int mptable_write(struct gmem *g, unsigned ncpus, unsigned npins)
{
	if (ncpus == 0 || ncpus > MPTABLE_MAX_CPUS || npins == 0 || npins > MPTABLE_MAX_PINS)
		return -EINVAL;
	size_t size = table_size(ncpus, npins);
	if (size > MP_TABLE_ROOM)
		return -E2BIG;

	uint8_t buf[MP_TABLE_ROOM];
	memset(buf, 0, sizeof(buf));
	size_t pos = sizeof(struct mpf_intel) + sizeof(struct mpc_table);
	put_entries(buf, &pos, ncpus, npins);
	assert(pos == size);

	struct mpc_table hdr = {
	    .length = (uint16_t)(size - sizeof(struct mpf_intel)),
	    .spec = MP_SPEC_REV,
	    .oemcount = (uint16_t)(ncpus + 2 + npins + 2),
	    .lapic = (uint32_t)LAPIC_ADDR,
	};
	memcpy(hdr.signature, MPC_SIGNATURE, sizeof(hdr.signature));
	memcpy(hdr.oem, "FLINT   ", sizeof(hdr.oem));
	memcpy(hdr.productid, "FLINT MICROV", sizeof(hdr.productid));
	memcpy(buf + sizeof(struct mpf_intel), &hdr, sizeof(hdr));
	/* The checksum byte is still zero, so it can be folded in last. */
	buf[sizeof(struct mpf_intel) + offsetof(struct mpc_table, checksum)] =
	    checksum(buf + sizeof(struct mpf_intel), hdr.length);

	struct mpf_intel mpf = {
	    .physptr = (uint32_t)(MPTABLE_ADDR + sizeof(struct mpf_intel)),
	    .length = 1, /* in 16-byte units */
	    .specification = MP_SPEC_REV,
	};
	memcpy(mpf.signature, MPF_SIGNATURE, sizeof(mpf.signature));
	mpf.checksum = checksum(&mpf, sizeof(mpf));
	memcpy(buf, &mpf, sizeof(mpf));

	return gmem_write(g, MPTABLE_ADDR, buf, size);
}
