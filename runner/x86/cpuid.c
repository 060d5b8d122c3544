/* The guest sees one package of ncpus logical CPUs with APIC IDs
 * 0..ncpus-1: ncpus cores of one thread each, or with smt (machine-config's
 * smt, as Firecracker means it) ncpus/2 cores of two threads, the threads
 * of a core being consecutive APIC IDs (bit 0 the thread). Every leaf that
 * states topology is made to agree with that (leaf 1, 4, 0xb, 0x1f and
 * AMD's 0x80000001/8/1d/1e), so Linux's topology code, the MP table and the
 * local APICs tell one story. Nested virtualization is hidden (VMX, SVM):
 * flint saves no nested state in a snapshot, and the host's nested VMX/SVM
 * emulation is code a guest need not reach. Everything else is left as
 * KVM_GET_SUPPORTED_CPUID reported it. */
#include "x86/cpuid.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/study.h"

/* APIC IDs are 8 bits in leaf 1 and the MP table; 0xff is broadcast. */
#define CPUID_MAX_CPUS 255

#define LEAF1_EBX_NLOGICAL_SHIFT 16
#define LEAF1_EBX_APIC_ID_SHIFT	 24
#define LEAF1_ECX_VMX		 (1u << 5)
#define LEAF1_ECX_HYPERVISOR	 (1u << 31)
#define LEAF1_EDX_HTT		 (1u << 28)

/* Leaf 4 and AMD 0x8000001d share the cache-descriptor EAX layout. */
#define CACHE_EAX_TYPE_MASK	0x1fu
#define CACHE_EAX_LEVEL(eax)	(((eax) >> 5) & 0x7)
#define CACHE_EAX_SHARING_SHIFT 14 /* [25:14] logical CPUs sharing - 1 */
#define CACHE_EAX_SHARING_MASK	(0xfffu << CACHE_EAX_SHARING_SHIFT)
#define LEAF4_EAX_CORES_SHIFT	26 /* [31:26] cores per package - 1 */
#define LEAF4_EAX_CORES_MASK	(0x3fu << LEAF4_EAX_CORES_SHIFT)

/* Leaf 0xb / 0x1f. */
#define TOPO_TYPE_SMT	    1
#define TOPO_TYPE_CORE	    2
#define TOPO_ECX_TYPE_SHIFT 8

#define AMD_EXT_ECX_CMP_LEGACY		(1u << 1) /* 0x80000001 */
#define AMD_EXT_ECX_SVM			(1u << 2) /* 0x80000001 */
#define AMD_SIZE_ECX_APIC_ID_SIZE_SHIFT 12	  /* 0x80000008 ECX[15:12] */

static unsigned order_base_2(unsigned n)
{
	unsigned bits = 0;

	while ((1u << bits) < n)
		bits++;
	return bits;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		/* Same matching as KVM: the index only counts where it is
		 * significant for the leaf. */
		if (e->function == function &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

int cpuid_modify(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf, uint32_t flags,
		 const uint32_t mask[4], const uint32_t value[4])
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, leaf, subleaf);

	if (!e)
		return -ENOENT;
	e->flags = flags;
	e->eax = (e->eax & ~mask[0]) | (value[0] & mask[0]);
	e->ebx = (e->ebx & ~mask[1]) | (value[1] & mask[1]);
	e->ecx = (e->ecx & ~mask[2]) | (value[2] & mask[2]);
	e->edx = (e->edx & ~mask[3]) | (value[3] & mask[3]);
	return 0;
}

static bool vendor_is_amd(struct kvm_cpuid2 *c)
{
	const struct kvm_cpuid_entry2 *e = cpuid_find(c, 0, 0);
	char v[12];

	if (!e)
		return false;
	memcpy(v, &e->ebx, 4);
	memcpy(v + 4, &e->edx, 4);
	memcpy(v + 8, &e->ecx, 4);
	return !memcmp(v, "AuthenticAMD", 12) || !memcmp(v, "HygonGenuine", 12);
}

/* Since Linux 6.2 KVM reports only subleaf 0 of the topology leaves; the
 * core level must be added for the guest to see more than one thread. */
static bool needs_core_level(struct kvm_cpuid2 *c, unsigned leaf)
{
	return cpuid_find(c, leaf, 0) && !cpuid_find(c, leaf, 1);
}

static void patch_leaf1(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);

	if (!e)
		return;
	/* The count of addressable IDs rounds up to a power of two: APIC IDs
	 * are carved into bit fields (Firecracker does the same). Its field
	 * is 8 bits: 256 (129 CPUs or more) is 255 there. */
	unsigned nlogical = 1u << order_base_2(ncpus);

	e->ebx &= 0xffffu;
	e->ebx |= id << LEAF1_EBX_APIC_ID_SHIFT;
	e->ebx |= (nlogical > 0xff ? 0xff : nlogical) << LEAF1_EBX_NLOGICAL_SHIFT;
	e->ecx |= LEAF1_ECX_HYPERVISOR;
	e->ecx &= ~LEAF1_ECX_VMX;
	if (ncpus > 1)
		e->edx |= LEAF1_EDX_HTT;
	else
		e->edx &= ~LEAF1_EDX_HTT;
}

/* Deterministic cache parameters, leaf 4 (Intel) or 0x8000001d (AMD): the
 * host's sharing counts would leak its SMT layout into the guest's view. */
static void patch_cache_leaf(struct kvm_cpuid2 *c, unsigned leaf, unsigned ncpus, unsigned threads,
			     bool cores)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != leaf || !(e->eax & CACHE_EAX_TYPE_MASK))
			continue;
		/* L1 and L2 are per core, shared by its threads; L3 is shared
		 * by the package. */
		unsigned sharing = CACHE_EAX_LEVEL(e->eax) >= 3 ? ncpus - 1 : threads - 1;
		e->eax &= ~CACHE_EAX_SHARING_MASK;
		e->eax |= sharing << CACHE_EAX_SHARING_SHIFT;
		if (cores) {
			unsigned n = ncpus / threads > 64 ? 64 : ncpus / threads;
			e->eax &= ~LEAF4_EAX_CORES_MASK;
			e->eax |= (n - 1) << LEAF4_EAX_CORES_SHIFT;
		}
	}
}

static void patch_topology(struct kvm_cpuid2 *c, unsigned leaf, unsigned id, unsigned ncpus,
			   unsigned threads)
{
	if (needs_core_level(c, leaf)) {
		/* Room was checked by the caller. */
		c->entries[c->nent++] = (struct kvm_cpuid_entry2){
		    .function = leaf,
		    .index = 1,
		    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		};
	}
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != leaf)
			continue;
		e->flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		e->edx = id; /* x2APIC ID, in every subleaf */
		switch (e->index) {
		case 0: /* SMT level: the threads of a core, bit 0 with two */
			e->eax = order_base_2(threads);
			e->ebx = threads;
			e->ecx = TOPO_TYPE_SMT << TOPO_ECX_TYPE_SHIFT;
			break;
		case 1: /* core level: the whole package */
			e->eax = order_base_2(ncpus);
			e->ebx = ncpus;
			e->ecx = (TOPO_TYPE_CORE << TOPO_ECX_TYPE_SHIFT) | 1;
			break;
		default: /* no further levels: type 0 ends the enumeration */
			e->eax = 0;
			e->ebx = 0;
			e->ecx = e->index & 0xff;
			break;
		}
	}
}

static void patch_amd(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus, unsigned threads)
{
	struct kvm_cpuid_entry2 *e;

	e = cpuid_find(c, 0x80000001, 0);
	if (e) {
		/* CmpLegacy: HTT in leaf 1 counts cores, not threads. */
		if (ncpus > 1)
			e->ecx |= AMD_EXT_ECX_CMP_LEGACY;
		else
			e->ecx &= ~AMD_EXT_ECX_CMP_LEGACY;
	}
	e = cpuid_find(c, 0x80000008, 0);
	if (e) {
		e->ecx &= ~0xf0ffu;
		e->ecx |= (ncpus - 1) | (order_base_2(ncpus) << AMD_SIZE_ECX_APIC_ID_SIZE_SHIFT);
	}
	patch_cache_leaf(c, 0x8000001d, ncpus, threads, false);
	e = cpuid_find(c, 0x8000001e, 0);
	if (e) {
		e->eax = id; /* extended APIC ID */
		/* The compute unit (core) id, and [15:8] its threads - 1. */
		e->ebx = (id / threads) | (threads - 1) << 8;
		e->ecx = 0; /* node 0, one node per processor */
	}
}

uint32_t cpuid_hidden(unsigned leaf, unsigned subleaf, unsigned reg)
{
	if (leaf == 1 && subleaf == 0 && reg == 2)
		return LEAF1_ECX_VMX;
	if (leaf == 0x80000001 && subleaf == 0 && reg == 2)
		return AMD_EXT_ECX_SVM;
	return 0;
}

int cpuid_setup(struct kvm_cpuid2 *c, unsigned max, unsigned id, unsigned ncpus)
{
	return cpuid_setup_smt(c, max, id, ncpus, false);
}

int cpuid_setup_smt(struct kvm_cpuid2 *c, unsigned max, unsigned id, unsigned ncpus, bool smt)
{
	if (!c || c->nent > max || ncpus == 0 || ncpus > CPUID_MAX_CPUS || id >= ncpus)
		return -EINVAL;
	/* As Firecracker: two threads per core only with more than one vCPU,
	 * and then the count must be even (vm_config checks it too). */
	unsigned threads = smt && ncpus > 1 ? 2 : 1;
	if (ncpus % threads)
		return -EINVAL;
	/* Check for room before changing anything, so a failure leaves the
	 * table as it was. */
	unsigned need = needs_core_level(c, 0xb) + needs_core_level(c, 0x1f);
	if (max - c->nent < need)
		return -ENOSPC;
	if (study_on(STUDY_PLAIN_CPUID)) {
		/* Study switch: the table as KVM reported it, but for the
		 * hypervisor bit, which QEMU sets too (without it the guest
		 * uses no paravirtual clock or EOI: another guest). */
		struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);
		if (e)
			e->ecx |= LEAF1_ECX_HYPERVISOR;
		return 0;
	}

	patch_leaf1(c, id, ncpus);
	struct kvm_cpuid_entry2 *ext = cpuid_find(c, 0x80000001, 0);
	if (ext)
		ext->ecx &= ~AMD_EXT_ECX_SVM;
	patch_cache_leaf(c, 4, ncpus, threads, true);
	patch_topology(c, 0xb, id, ncpus, threads);
	patch_topology(c, 0x1f, id, ncpus, threads);
	if (vendor_is_amd(c))
		patch_amd(c, id, ncpus, threads);
	return 0;
}
