/* FLINT_STUDY: the study switches are off unless named exactly, and the
 * switched paths still work. Criterion runs each test in its own process, so
 * each sees $FLINT_STUDY afresh. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/gmem.h"
#include "core/study.h"
#include "x86/cpuid.h"

Test(study, all_off_without_the_variable)
{
	unsetenv("FLINT_STUDY");
	for (int s = 0; s < STUDY_SWITCHES; s++)
		cr_assert_not(study_on(s), "switch %d", s);
}

Test(study, only_exact_names_count)
{
	setenv("FLINT_STUDY", "no-th,no-msrs,,bogus,plain-cpuidx,no-tsc-deadline", 1);
	cr_assert_not(study_on(STUDY_NO_THP));
	cr_assert(study_on(STUDY_NO_MSRS));
	cr_assert_not(study_on(STUDY_PLAIN_CPUID));
	cr_assert_not(study_on(STUDY_SWITCHES));
}

Test(study, plain_cpuid_only_adds_the_hypervisor_bit)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 8 * sizeof(c->entries[0]));
	cr_assert_not_null(c);
	c->nent = 1;
	c->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ebx = 0x12345678};
	struct kvm_cpuid_entry2 before = c->entries[0];

	setenv("FLINT_STUDY", "plain-cpuid", 1);
	cr_assert_eq(cpuid_setup(c, 8, 1, 2), 0);
	cr_assert_eq(c->nent, 1);
	before.ecx |= 1u << 31; /* the hypervisor bit, and nothing else */
	cr_assert_eq(memcmp(&c->entries[0], &before, sizeof(before)), 0);
	free(c);
}

Test(study, no_thp_memory_is_usable_guest_ram)
{
	struct gmem *g;
	uint32_t v = 0xfeedface, r = 0;

	setenv("FLINT_STUDY", "no-thp", 1);
	cr_assert_eq(gmem_create(&g, 8 << 20), 0);
	cr_assert_eq(gmem_write(g, (8 << 20) - 4, &v, sizeof(v)), 0);
	cr_assert_eq(gmem_read(g, (8 << 20) - 4, &r, sizeof(r)), 0);
	cr_assert_eq(r, v);
	cr_assert_null(gmem_ptr(g, 8 << 20, 1));
	gmem_destroy(g);
}
