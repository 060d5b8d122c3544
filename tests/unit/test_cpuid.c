/* cpuid_setup on synthetic KVM_GET_SUPPORTED_CPUID tables shaped like an
 * Intel host (new KVM: 0xb subleaf 0 only) and an AMD host (old KVM: 0xb
 * subleaves 0 and 1, TOPOEXT leaves). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "x86/cpuid.h"

#define SIG  KVM_CPUID_FLAG_SIGNIFCANT_INDEX
#define ROOM 64

static struct kvm_cpuid2 *table_new(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + ROOM * sizeof(c->entries[0]));
	cr_assert_not_null(c);
	return c;
}

static void add(struct kvm_cpuid2 *c, unsigned fn, unsigned idx, unsigned flags, uint32_t eax,
		uint32_t ebx, uint32_t ecx, uint32_t edx)
{
	cr_assert_lt(c->nent, ROOM);
	c->entries[c->nent++] = (struct kvm_cpuid_entry2){
	    .function = fn,
	    .index = idx,
	    .flags = flags,
	    .eax = eax,
	    .ebx = ebx,
	    .ecx = ecx,
	    .edx = edx,
	};
}

static uint32_t str4(const char *s)
{
	uint32_t v;
	memcpy(&v, s, 4);
	return v;
}

/* Host values deliberately carry a foreign topology: APIC ID 7, 16
 * logical CPUs, HTT, 2 threads sharing L1/L2, 16 sharing L3. */
static void add_common(struct kvm_cpuid2 *c)
{
	add(c, 1, 0, 0, 0x000906ea, 0x07100800, 0x7ffafbff & ~(1u << 31), 0xbfebfbff);
	add(c, 4, 0, SIG, 0x1c004121, 0x01c0003f, 0x3f, 0);
	add(c, 4, 1, SIG, 0x1c004122, 0x01c0003f, 0x3f, 0);
	add(c, 4, 2, SIG, 0x1c004143, 0x00c0003f, 0x3ff, 0);
	add(c, 4, 3, SIG, 0x1c03c163, 0x02c0003f, 0x1fff, 6);
	add(c, 4, 4, SIG, 0, 0, 0, 0);
	add(c, 0x40000000, 0, 0, 0x40000001, str4("KVMK"), str4("VMKV"), str4("M\0\0\0"));
}

static struct kvm_cpuid2 *intel_table(void)
{
	struct kvm_cpuid2 *c = table_new();
	add(c, 0, 0, 0, 0x16, str4("Genu"), str4("ntel"), str4("ineI"));
	add_common(c);
	add(c, 0xb, 0, SIG, 1, 2, 0x100, 7);
	add(c, 0x80000001, 0, 0, 0, 0, 0x121, 0x2c100800);
	add(c, 0x80000008, 0, 0, 0x3027, 0, 0, 0);
	return c;
}

static struct kvm_cpuid2 *amd_table(void)
{
	struct kvm_cpuid2 *c = table_new();
	add(c, 0, 0, 0, 0x10, str4("Auth"), str4("cAMD"), str4("enti"));
	add_common(c);
	add(c, 0xb, 0, SIG, 1, 2, 0x100, 7);
	add(c, 0xb, 1, SIG, 7, 16, 0x201, 7);
	add(c, 0x80000001, 0, 0, 0x00a00f11, 0, 0x75c237ff, 0x2fd3fbff);
	add(c, 0x80000008, 0, 0, 0x3030, 0, 0x0000700f, 0);
	add(c, 0x8000001d, 0, SIG, 0x00004121, 0x01c0003f, 0x3f, 0);
	add(c, 0x8000001d, 1, SIG, 0x00004122, 0x01c0003f, 0x3f, 0);
	add(c, 0x8000001d, 2, SIG, 0x00004143, 0x01c0003f, 0x3ff, 2);
	add(c, 0x8000001d, 3, SIG, 0x0003c163, 0x03c0003f, 0x7fff, 1);
	add(c, 0x8000001d, 4, SIG, 0, 0, 0, 0);
	add(c, 0x8000001e, 0, 0, 0x0e, 0x0107, 0x0100, 0);
	return c;
}

static struct kvm_cpuid_entry2 *get(struct kvm_cpuid2 *c, unsigned fn, unsigned idx)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, fn, idx);
	cr_assert_not_null(e, "leaf %#x.%u", fn, idx);
	return e;
}

static void check_leaf1(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus, unsigned nlogical)
{
	struct kvm_cpuid_entry2 *e = get(c, 1, 0);
	cr_expect_eq(e->ebx >> 24, id, "initial APIC ID");
	cr_expect_eq((e->ebx >> 16) & 0xff, nlogical, "logical count");
	cr_expect_eq(e->ebx & 0xffff, 0x0800, "CLFLUSH size kept");
	cr_expect_eq(!!(e->edx & (1u << 28)), ncpus > 1, "HTT");
	cr_expect(e->ecx & (1u << 31), "hypervisor bit");
	cr_expect(e->ecx & (1u << 21), "x2APIC kept");
	cr_expect_eq(e->eax, 0x000906ea, "signature kept");
}

Test(cpuid, leaf1_id0_and_id3_of_4)
{
	for (unsigned id = 0; id < 4; id += 3) {
		struct kvm_cpuid2 *c = intel_table();
		cr_assert_eq(cpuid_setup(c, ROOM, id, 4), 0);
		check_leaf1(c, id, 4, 4);
		free(c);
	}
}

Test(cpuid, leaf1_logical_count_is_power_of_two)
{
	struct kvm_cpuid2 *c = intel_table();
	cr_assert_eq(cpuid_setup(c, ROOM, 2, 3), 0);
	check_leaf1(c, 2, 3, 4);
	free(c);
	c = intel_table();
	cr_assert_eq(cpuid_setup(c, ROOM, 4, 5), 0);
	check_leaf1(c, 4, 5, 8);
	free(c);
}

Test(cpuid, single_cpu_has_no_htt)
{
	struct kvm_cpuid2 *c = amd_table();
	cr_assert_eq(cpuid_setup(c, ROOM, 0, 1), 0);
	check_leaf1(c, 0, 1, 1);
	cr_expect_eq(get(c, 0x80000001, 0)->ecx & (1u << 1), 0, "no CmpLegacy");
	cr_expect_eq(get(c, 0x80000008, 0)->ecx & 0xf0ff, 0);
	cr_expect_eq(get(c, 0xb, 1)->eax, 0);
	cr_expect_eq(get(c, 0xb, 1)->ebx, 1);
	free(c);
}

Test(cpuid, x2apic_bit_not_invented)
{
	struct kvm_cpuid2 *c = intel_table();
	get(c, 1, 0)->ecx &= ~(1u << 21);
	cr_assert_eq(cpuid_setup(c, ROOM, 0, 2), 0);
	cr_expect_eq(get(c, 1, 0)->ecx & (1u << 21), 0);
	free(c);
}

Test(cpuid, leaf4_cores_and_sharing)
{
	struct kvm_cpuid2 *c = intel_table();
	cr_assert_eq(cpuid_setup(c, ROOM, 3, 4), 0);
	static const uint32_t type_level[4] = {0x121, 0x122, 0x143, 0x163};
	for (unsigned i = 0; i < 4; i++) {
		uint32_t eax = get(c, 4, i)->eax;
		cr_expect_eq(eax >> 26, 3, "cores - 1 in subleaf %u", i);
		unsigned sharing = i == 3 ? 3 : 0;
		cr_expect_eq((eax >> 14) & 0xfff, sharing, "sharing in subleaf %u", i);
		cr_expect_eq(eax & 0x3fff, type_level[i], "type/level kept in subleaf %u", i);
	}
	cr_expect_eq(get(c, 4, 4)->eax, 0, "terminator untouched");
	free(c);
}

static void check_topology(struct kvm_cpuid2 *c, unsigned leaf, unsigned id, unsigned ncpus,
			   unsigned shift)
{
	struct kvm_cpuid_entry2 *smt = get(c, leaf, 0), *core = get(c, leaf, 1);
	cr_expect(smt->flags & SIG);
	cr_expect(core->flags & SIG);
	cr_expect_eq(smt->eax, 0);
	cr_expect_eq(smt->ebx, 1);
	cr_expect_eq(smt->ecx, 0x100);
	cr_expect_eq(core->eax, shift);
	cr_expect_eq(core->ebx, ncpus);
	cr_expect_eq(core->ecx, 0x201);
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == leaf)
			cr_expect_eq(c->entries[i].edx, id, "x2APIC ID in %#x.%u", leaf,
				     c->entries[i].index);
}

Test(cpuid, leaf_b_core_level_added)
{
	for (unsigned id = 0; id < 4; id += 3) {
		struct kvm_cpuid2 *c = intel_table();
		unsigned nent = c->nent;
		cr_assert_null(cpuid_find(c, 0xb, 1));
		cr_assert_eq(cpuid_setup(c, ROOM, id, 4), 0);
		cr_expect_eq(c->nent, nent + 1);
		check_topology(c, 0xb, id, 4, 2);
		free(c);
	}
}

Test(cpuid, leaf_b_existing_subleaves_patched)
{
	struct kvm_cpuid2 *c = amd_table();
	add(c, 0xb, 2, SIG, 0, 0, 2, 7);
	unsigned nent = c->nent;
	cr_assert_eq(cpuid_setup(c, ROOM, 3, 4), 0);
	cr_expect_eq(c->nent, nent, "nothing added");
	check_topology(c, 0xb, 3, 4, 2);
	struct kvm_cpuid_entry2 *e = get(c, 0xb, 2);
	cr_expect_eq(e->ecx, 2, "invalid level echoes its index");
	cr_expect_eq(e->eax | e->ebx, 0);
	free(c);
}

Test(cpuid, leaf_1f_like_leaf_b)
{
	struct kvm_cpuid2 *c = intel_table();
	get(c, 0, 0)->eax = 0x1f;
	add(c, 0x1f, 0, SIG, 1, 2, 0x100, 7);
	cr_assert_eq(cpuid_setup(c, ROOM, 5, 6), 0);
	check_topology(c, 0x1f, 5, 6, 3);
	check_topology(c, 0xb, 5, 6, 3);
	free(c);
}

Test(cpuid, amd_leaves)
{
	for (unsigned id = 0; id < 4; id += 3) {
		struct kvm_cpuid2 *c = amd_table();
		cr_assert_eq(cpuid_setup(c, ROOM, id, 4), 0);
		check_leaf1(c, id, 4, 4);
		cr_expect(get(c, 0x80000001, 0)->ecx & (1u << 1), "CmpLegacy");
		uint32_t ecx = get(c, 0x80000008, 0)->ecx;
		cr_expect_eq(ecx & 0xff, 3, "NC");
		cr_expect_eq((ecx >> 12) & 0xf, 2, "ApicIdSize");
		struct kvm_cpuid_entry2 *e = get(c, 0x8000001e, 0);
		cr_expect_eq(e->eax, id, "extended APIC ID");
		cr_expect_eq(e->ebx & 0xff, id, "compute unit");
		cr_expect_eq((e->ebx >> 8) & 0xff, 0, "one thread per unit");
		cr_expect_eq(e->ecx, 0, "node 0");
		cr_expect_eq((get(c, 0x8000001d, 0)->eax >> 14) & 0xfff, 0);
		cr_expect_eq((get(c, 0x8000001d, 3)->eax >> 14) & 0xfff, 3, "L3 shared");
		free(c);
	}
}

Test(cpuid, amd_patches_skipped_on_intel)
{
	struct kvm_cpuid2 *c = intel_table();
	cr_assert_eq(cpuid_setup(c, ROOM, 1, 4), 0);
	cr_expect_eq(get(c, 0x80000001, 0)->ecx, 0x121);
	cr_expect_eq(get(c, 0x80000008, 0)->ecx, 0);
	free(c);
}

/* KVM reports VMX (Intel) or SVM (AMD) when its module's nested=1: the
 * guest gets neither, whatever the template said before. */
Test(cpuid, nested_virtualization_hidden)
{
	struct kvm_cpuid2 *c = intel_table();
	get(c, 1, 0)->ecx |= 1u << 5;
	cr_assert_eq(cpuid_setup(c, ROOM, 0, 1), 0);
	cr_expect_eq(get(c, 1, 0)->ecx & (1u << 5), 0, "VMX");
	cr_expect(get(c, 1, 0)->ecx & (1u << 31), "hypervisor bit");
	free(c);
	c = amd_table();
	get(c, 0x80000001, 0)->ecx |= 1u << 2;
	cr_assert_eq(cpuid_setup_smt(c, ROOM, 1, 2, true), 0);
	cr_expect_eq(get(c, 0x80000001, 0)->ecx & (1u << 2), 0, "SVM");
	cr_expect_eq(get(c, 0x80000001, 0)->ecx & ~(1u << 2),
		     (0x75c237ffu | (1u << 1)) & ~(1u << 2), "the other bits kept");
	free(c);
}

Test(cpuid, hidden_bits_are_nested_virtualizations)
{
	cr_expect_eq(cpuid_hidden(1, 0, 2), 1u << 5, "VMX");
	cr_expect_eq(cpuid_hidden(0x80000001, 0, 2), 1u << 2, "SVM");
	cr_expect_eq(cpuid_hidden(1, 0, 3), 0);
	cr_expect_eq(cpuid_hidden(7, 0, 2), 0);
}

/* 129 to 255 CPUs: 256 addressable IDs do not fit the 8-bit field, which
 * says 255, and the APIC ID above it is the vCPU's. */
Test(cpuid, leaf1_logical_count_fits_its_byte)
{
	struct kvm_cpuid2 *c = intel_table();
	cr_assert_eq(cpuid_setup(c, ROOM, 200, 255), 0);
	cr_expect_eq((get(c, 1, 0)->ebx >> 16) & 0xff, 0xff);
	cr_expect_eq(get(c, 1, 0)->ebx >> 24, 200);
	free(c);
}

Test(cpuid, kvm_signature_kept)
{
	struct kvm_cpuid2 *c = amd_table();
	cr_assert_eq(cpuid_setup(c, ROOM, 0, 2), 0);
	struct kvm_cpuid_entry2 *e = get(c, 0x40000000, 0);
	char sig[12];
	memcpy(sig, &e->ebx, 4);
	memcpy(sig + 4, &e->ecx, 4);
	memcpy(sig + 8, &e->edx, 4);
	cr_expect_arr_eq(sig, "KVMKVMKVM\0\0\0", 12);
	cr_expect_eq(e->eax, 0x40000001);
	free(c);
}

Test(cpuid, missing_leaves_not_added)
{
	struct kvm_cpuid2 *c = table_new();
	add(c, 0, 0, 0, 0x10, str4("Auth"), str4("cAMD"), str4("enti"));
	add(c, 1, 0, 0, 0x00a00f11, 0, 0, 0);
	cr_assert_eq(cpuid_setup(c, ROOM, 1, 2), 0);
	cr_expect_eq(c->nent, 2);
	cr_expect_null(cpuid_find(c, 0xb, 0));
	cr_expect_null(cpuid_find(c, 0x1f, 0));
	cr_expect_null(cpuid_find(c, 0x8000001e, 0));
	free(c);
}

Test(cpuid, bad_arguments)
{
	struct kvm_cpuid2 *c = intel_table();
	cr_expect_eq(cpuid_setup(NULL, ROOM, 0, 1), -EINVAL);
	cr_expect_eq(cpuid_setup(c, ROOM, 0, 0), -EINVAL);
	cr_expect_eq(cpuid_setup(c, ROOM, 4, 4), -EINVAL);
	cr_expect_eq(cpuid_setup(c, ROOM, 0, 256), -EINVAL);
	cr_expect_eq(cpuid_setup(c, c->nent - 1, 0, 1), -EINVAL, "nent > max");
	free(c);
}

Test(cpuid, full_table_is_enospc_and_untouched)
{
	struct kvm_cpuid2 *c = intel_table();
	size_t bytes = sizeof(*c) + c->nent * sizeof(c->entries[0]);
	struct kvm_cpuid2 *before = malloc(bytes);
	cr_assert_not_null(before);
	memcpy(before, c, bytes);
	cr_expect_eq(cpuid_setup(c, c->nent, 1, 2), -ENOSPC);
	cr_expect_eq(memcmp(before, c, bytes), 0);
	/* One free slot is exactly enough. */
	cr_expect_eq(cpuid_setup(c, c->nent + 1, 1, 2), 0);
	free(before);
	free(c);
}

Test(cpuid, find_matches_like_kvm)
{
	struct kvm_cpuid2 *c = intel_table();
	cr_expect_eq(cpuid_find(c, 1, 5), cpuid_find(c, 1, 0), "index ignored without SIG");
	cr_expect_null(cpuid_find(c, 4, 9));
	cr_expect_eq(cpuid_find(c, 4, 2)->index, 2);
	cr_expect_null(cpuid_find(c, 0x12345, 0));
	free(c);
}

/* --- machine-config smt: two threads per core ----------------------------- */

Test(cpuid, smt_intel_two_threads_per_core)
{
	for (unsigned id = 0; id < 6; id++) {
		struct kvm_cpuid2 *c = intel_table();
		get(c, 0, 0)->eax = 0x1f;
		add(c, 0x1f, 0, SIG, 1, 2, 0x100, 7);
		cr_assert_eq(cpuid_setup_smt(c, ROOM, id, 6, true), 0);
		check_leaf1(c, id, 6, 8); /* logical CPUs, as without smt */
		for (unsigned leaf = 0xb; leaf <= 0x1f; leaf += 0x14) {
			struct kvm_cpuid_entry2 *smt = get(c, leaf, 0), *core = get(c, leaf, 1);
			cr_expect_eq(smt->eax, 1, "%#x: thread is APIC ID bit 0", leaf);
			cr_expect_eq(smt->ebx, 2, "%#x: two threads per core", leaf);
			cr_expect_eq(smt->ecx, 0x100);
			cr_expect_eq(core->eax, 3);
			cr_expect_eq(core->ebx, 6);
			cr_expect_eq(core->ecx, 0x201);
			cr_expect_eq(smt->edx, id);
			cr_expect_eq(core->edx, id);
		}
		for (unsigned i = 0; i < 4; i++) {
			uint32_t eax = get(c, 4, i)->eax;
			cr_expect_eq(eax >> 26, 2, "3 cores - 1 in subleaf %u", i);
			cr_expect_eq((eax >> 14) & 0xfff, i == 3 ? 5 : 1, "sharing in subleaf %u",
				     i);
		}
		free(c);
	}
}

Test(cpuid, smt_amd_compute_units_of_two_threads)
{
	for (unsigned id = 0; id < 4; id++) {
		struct kvm_cpuid2 *c = amd_table();
		cr_assert_eq(cpuid_setup_smt(c, ROOM, id, 4, true), 0);
		check_leaf1(c, id, 4, 4);
		cr_expect_eq(get(c, 0xb, 0)->ebx, 2);
		cr_expect_eq(get(c, 0xb, 0)->eax, 1);
		uint32_t ecx = get(c, 0x80000008, 0)->ecx;
		cr_expect_eq(ecx & 0xff, 3, "NC counts logical CPUs");
		struct kvm_cpuid_entry2 *e = get(c, 0x8000001e, 0);
		cr_expect_eq(e->eax, id, "extended APIC ID");
		cr_expect_eq(e->ebx & 0xff, id / 2, "compute unit of CPU %u", id);
		cr_expect_eq((e->ebx >> 8) & 0xff, 1, "two threads per unit");
		cr_expect_eq((get(c, 0x8000001d, 0)->eax >> 14) & 0xfff, 1, "L1 shared by 2");
		cr_expect_eq((get(c, 0x8000001d, 2)->eax >> 14) & 0xfff, 1, "L2 shared by 2");
		cr_expect_eq((get(c, 0x8000001d, 3)->eax >> 14) & 0xfff, 3, "L3 shared by all");
		free(c);
	}
}

Test(cpuid, smt_off_is_cpuid_setup_and_one_thread_per_core)
{
	struct kvm_cpuid2 *a = amd_table(), *b = amd_table();
	size_t bytes = sizeof(*a) + ROOM * sizeof(a->entries[0]);

	cr_assert_eq(cpuid_setup(a, ROOM, 3, 4), 0);
	cr_assert_eq(cpuid_setup_smt(b, ROOM, 3, 4, false), 0);
	cr_expect_eq(memcmp(a, b, bytes), 0);
	cr_expect_eq(get(b, 0xb, 0)->ebx, 1);
	cr_expect_eq(get(b, 0xb, 0)->eax, 0);
	cr_expect_eq((get(b, 0x8000001e, 0)->ebx >> 8) & 0xff, 0);
	cr_expect_eq(get(b, 0x8000001e, 0)->ebx & 0xff, 3);
	free(a);
	free(b);
}

Test(cpuid, smt_with_one_vcpu_is_one_thread)
{
	struct kvm_cpuid2 *c = intel_table();

	cr_assert_eq(cpuid_setup_smt(c, ROOM, 0, 1, true), 0);
	check_leaf1(c, 0, 1, 1);
	cr_expect_eq(get(c, 0xb, 0)->ebx, 1);
	cr_expect_eq(get(c, 0xb, 0)->eax, 0);
	cr_expect_eq(get(c, 4, 0)->eax >> 26, 0);
	cr_expect_eq((get(c, 4, 0)->eax >> 14) & 0xfff, 0);
	free(c);
}

Test(cpuid, smt_with_an_odd_count_is_einval)
{
	struct kvm_cpuid2 *c = intel_table();
	size_t bytes = sizeof(*c) + ROOM * sizeof(c->entries[0]);
	struct kvm_cpuid2 *before = malloc(bytes);

	cr_assert_not_null(before);
	memcpy(before, c, bytes);
	cr_expect_eq(cpuid_setup_smt(c, ROOM, 0, 3, true), -EINVAL);
	cr_expect_eq(memcmp(before, c, bytes), 0, "untouched");
	free(before);
	free(c);
}

/* A CPU template's modifier: only the bits of its mask change, in the
 * registers it names, and the entry takes its flags; a leaf the table
 * lacks is -ENOENT. */
Test(cpuid, template_modifiers)
{
	struct kvm_cpuid2 *c = intel_table();
	const uint32_t mask[4] = {0, 0, (1u << 22) | (1u << 23), 0xf};
	const uint32_t value[4] = {0xffffffff, 0xffffffff, 1u << 23, 0x5};
	struct kvm_cpuid_entry2 before = *get(c, 1, 0), *e;
	unsigned n = c->nent;

	cr_assert_eq(cpuid_modify(c, 1, 0, 0, mask, value), 0);
	e = get(c, 1, 0);
	cr_assert_eq(e->eax, before.eax, "no mask: kept whatever the value");
	cr_assert_eq(e->ebx, before.ebx);
	cr_assert_eq(e->ecx, (before.ecx & ~((1u << 22) | (1u << 23))) | (1u << 23));
	cr_assert_eq(e->edx, (before.edx & ~0xfu) | 0x5);
	cr_assert_eq(c->nent, n);
	cr_assert_eq(cpuid_modify(c, 0xb, 0, SIG, mask, value), 0);
	cr_assert_eq(get(c, 0xb, 0)->flags, SIG);
	cr_assert_eq(cpuid_modify(c, 0x40000100, 3, SIG, mask, value), -ENOENT);
	cr_assert_eq(c->nent, n);
	free(c);
}
