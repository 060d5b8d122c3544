/* The MP table read back from a real gmem with the structs that wrote it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/gmem.h"
#include "x86/layout.h"
#include "x86/mptable.h"

#define MEM_SIZE (2ULL << 20)

struct parsed {
	const struct mpf_intel *mpf;
	const struct mpc_table *mpc;
	const uint8_t *entries;
};

static uint8_t sum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s += b[i];
	return s;
}

static struct gmem *mem_with_pins(unsigned ncpus, unsigned npins)
{
	struct gmem *g;
	cr_assert_eq(gmem_create(&g, MEM_SIZE), 0);
	cr_assert_eq(mptable_write(g, ncpus, npins), 0);
	return g;
}

static struct gmem *mem_with_table(unsigned ncpus)
{
	return mem_with_pins(ncpus, MPTABLE_MAX_PINS);
}

static struct parsed parse(const struct gmem *g)
{
	struct parsed p;
	p.mpf = gmem_ptr(g, MPTABLE_ADDR, sizeof(*p.mpf));
	cr_assert_not_null(p.mpf);
	p.mpc = gmem_ptr(g, p.mpf->physptr, sizeof(*p.mpc));
	cr_assert_not_null(p.mpc);
	cr_assert_not_null(gmem_ptr(g, p.mpf->physptr, p.mpc->length));
	p.entries = (const uint8_t *)(p.mpc + 1);
	return p;
}

/* Entry i of the configuration table (entries differ in size by type). */
static const uint8_t *entry(const struct parsed *p, unsigned i)
{
	const uint8_t *e = p->entries;
	while (i--)
		e += e[0] == MP_PROCESSOR ? sizeof(struct mpc_cpu) : 8;
	return e;
}

static unsigned count_type(const struct parsed *p, uint8_t type)
{
	unsigned n = 0;
	for (unsigned i = 0; i < p->mpc->oemcount; i++)
		n += entry(p, i)[0] == type;
	return n;
}

static const uint8_t *find_type(const struct parsed *p, uint8_t type, unsigned nth)
{
	for (unsigned i = 0; i < p->mpc->oemcount; i++) {
		const uint8_t *e = entry(p, i);
		if (e[0] == type && nth-- == 0)
			return e;
	}
	return NULL;
}

static void check_checksums(unsigned ncpus)
{
	struct gmem *g = mem_with_table(ncpus);
	struct parsed p = parse(g);
	cr_expect_eq(sum(p.mpf, sizeof(*p.mpf)), 0, "floating pointer, %u cpus", ncpus);
	cr_expect_eq(sum(p.mpc, p.mpc->length), 0, "config table, %u cpus", ncpus);
	cr_expect_neq(p.mpc->checksum, 0);
	gmem_destroy(g);
}

Test(mptable, checksums_zero_sum)
{
	check_checksums(1);
	check_checksums(2);
	check_checksums(32);
}

Test(mptable, floating_pointer)
{
	struct gmem *g = mem_with_table(2);
	struct parsed p = parse(g);
	cr_expect_arr_eq(p.mpf->signature, "_MP_", 4);
	cr_expect_eq(p.mpf->physptr, MPTABLE_ADDR + 16);
	cr_expect_eq(p.mpf->length, 1);
	cr_expect_eq(p.mpf->specification, 4);
	cr_expect_eq(p.mpf->feature1, 0);
	gmem_destroy(g);
}

Test(mptable, config_header)
{
	struct gmem *g = mem_with_table(4);
	struct parsed p = parse(g);
	cr_expect_arr_eq(p.mpc->signature, "PCMP", 4);
	cr_expect_eq(p.mpc->spec, 4);
	cr_expect_eq(p.mpc->lapic, LAPIC_ADDR);
	cr_expect_eq(p.mpc->oemcount, 4 + 1 + 1 + 24 + 2);
	cr_expect_eq(p.mpc->length, sizeof(struct mpc_table) + 4 * sizeof(struct mpc_cpu) + 28 * 8);
	cr_expect_arr_eq(p.mpc->oem, "FLINT   ", 8);
	/* Entries are sorted by type, as the spec asks. */
	for (unsigned i = 1; i < p.mpc->oemcount; i++)
		cr_expect_leq(entry(&p, i - 1)[0], entry(&p, i)[0]);
	gmem_destroy(g);
}

Test(mptable, entry_counts)
{
	unsigned counts[] = {1, 2, 32};
	for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
		struct gmem *g = mem_with_table(counts[k]);
		struct parsed p = parse(g);
		cr_expect_eq(count_type(&p, MP_PROCESSOR), counts[k]);
		cr_expect_eq(count_type(&p, MP_BUS), 1);
		cr_expect_eq(count_type(&p, MP_IOAPIC), 1);
		cr_expect_eq(count_type(&p, MP_INTSRC), 24);
		cr_expect_eq(count_type(&p, MP_LINTSRC), 2);
		gmem_destroy(g);
	}
}

Test(mptable, one_interrupt_entry_per_pin_of_a_smaller_ioapic)
{
	struct gmem *g = mem_with_pins(2, 7);
	struct parsed p = parse(g);
	cr_expect_eq(count_type(&p, MP_INTSRC), 7);
	cr_expect_eq(p.mpc->oemcount, 2 + 1 + 1 + 7 + 2);
	cr_expect_eq(p.mpc->length, sizeof(struct mpc_table) + 2 * sizeof(struct mpc_cpu) + 11 * 8);
	for (unsigned irq = 0; irq < 7; irq++) {
		const struct mpc_intsrc *s = (const void *)find_type(&p, MP_INTSRC, irq);
		cr_assert_not_null(s);
		cr_expect_eq(s->srcbusirq, irq);
		cr_expect_eq(s->dstirq, irq);
	}
	cr_expect_eq(sum(p.mpc, p.mpc->length), 0);
	gmem_destroy(g);
}

Test(mptable, processors)
{
	struct gmem *g = mem_with_table(8);
	struct parsed p = parse(g);
	for (unsigned i = 0; i < 8; i++) {
		const struct mpc_cpu *c = (const void *)find_type(&p, MP_PROCESSOR, i);
		cr_assert_not_null(c);
		cr_expect_eq(c->apicid, i);
		cr_expect_eq(c->apicver, 0x14);
		cr_expect(c->cpuflag & CPU_ENABLED);
		cr_expect_eq(!!(c->cpuflag & CPU_BOOTPROCESSOR), i == 0, "BSP flag on cpu %u", i);
		cr_expect_eq(c->cpufeature, 0x600);
		cr_expect_eq(c->featureflag, (1u << 0) | (1u << 9));
	}
	gmem_destroy(g);
}

Test(mptable, bus_and_ioapic)
{
	struct gmem *g = mem_with_table(3);
	struct parsed p = parse(g);
	const struct mpc_bus *b = (const void *)find_type(&p, MP_BUS, 0);
	cr_assert_not_null(b);
	cr_expect_eq(b->busid, 0);
	cr_expect_arr_eq(b->bustype, "ISA   ", 6);
	const struct mpc_ioapic *io = (const void *)find_type(&p, MP_IOAPIC, 0);
	cr_assert_not_null(io);
	cr_expect_eq(io->apicid, 3);
	cr_expect_eq(io->apicver, 0x11);
	cr_expect_eq(io->flags, MPC_APIC_USABLE);
	cr_expect_eq(io->apicaddr, IOAPIC_ADDR);
	gmem_destroy(g);
}

Test(mptable, interrupt_routing)
{
	struct gmem *g = mem_with_table(2);
	struct parsed p = parse(g);
	for (unsigned irq = 0; irq < 24; irq++) {
		const struct mpc_intsrc *s = (const void *)find_type(&p, MP_INTSRC, irq);
		cr_assert_not_null(s);
		cr_expect_eq(s->irqtype, mp_INT);
		cr_expect_eq(s->irqflag, 0);
		cr_expect_eq(s->srcbus, 0);
		cr_expect_eq(s->srcbusirq, irq);
		cr_expect_eq(s->dstapic, 2, "routed to the IOAPIC's id");
		cr_expect_eq(s->dstirq, irq);
	}
	const struct mpc_lintsrc *l0 = (const void *)find_type(&p, MP_LINTSRC, 0);
	const struct mpc_lintsrc *l1 = (const void *)find_type(&p, MP_LINTSRC, 1);
	cr_assert(l0 && l1);
	cr_expect_eq(l0->irqtype, mp_ExtINT);
	cr_expect_eq(l0->destapic, 0xff);
	cr_expect_eq(l0->destapiclint, 0);
	cr_expect_eq(l1->irqtype, mp_NMI);
	cr_expect_eq(l1->destapic, 0xff);
	cr_expect_eq(l1->destapiclint, 1);
	gmem_destroy(g);
}

Test(mptable, fits_in_ebda)
{
	struct gmem *g = mem_with_table(MPTABLE_MAX_CPUS);
	struct parsed p = parse(g);
	cr_expect_leq(p.mpf->physptr + p.mpc->length, 0xa0000);
	gmem_destroy(g);
}

Test(mptable, bad_cpu_counts)
{
	struct gmem *g;
	cr_assert_eq(gmem_create(&g, MEM_SIZE), 0);
	uint8_t *ebda = gmem_ptr(g, MPTABLE_ADDR, 0x400);
	cr_assert_not_null(ebda);
	cr_expect_eq(mptable_write(g, 0, 5), -EINVAL);
	cr_expect_eq(mptable_write(g, MPTABLE_MAX_CPUS + 1, 5), -EINVAL);
	cr_expect_eq(mptable_write(g, 1, 0), -EINVAL);
	cr_expect_eq(mptable_write(g, 1, MPTABLE_MAX_PINS + 1), -EINVAL);
	for (size_t i = 0; i < 0x400; i++)
		cr_assert_eq(ebda[i], 0, "nothing written on failure");
	gmem_destroy(g);
}

Test(mptable, memory_too_small)
{
	struct gmem *g;
	/* 0x9f000 bytes: the EBDA page is past the end of RAM. */
	cr_assert_eq(gmem_create(&g, 0x9f000), 0);
	cr_expect_eq(mptable_write(g, 1, 5), -EFAULT);
	gmem_destroy(g);
	/* RAM ending exactly at the VGA hole holds the largest table. */
	cr_assert_eq(gmem_create(&g, 0xa0000), 0);
	cr_expect_eq(mptable_write(g, MPTABLE_MAX_CPUS, MPTABLE_MAX_PINS), 0);
	gmem_destroy(g);
}
