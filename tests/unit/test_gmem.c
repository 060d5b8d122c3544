#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include "core/gmem.h"
#include "x86/layout.h"

Test(gmem, small_layout_is_one_low_region)
{
	struct gmem *g;
	cr_assert_eq(gmem_create(&g, 128 << 20), 0);
	cr_assert_eq(gmem_nregions(g), 1);
	cr_assert_eq(gmem_low_end(g), 128 << 20);
	cr_assert_eq(gmem_size(g), 128 << 20);
	cr_assert_eq(gmem_region(g, 0)->gpa, 0);
	cr_assert_null(gmem_region(g, 1));
	gmem_destroy(g);
}

Test(gmem, large_layout_skips_the_mmio_hole)
{
	struct gmem *g;
	uint64_t size = 4ULL << 30;
	cr_assert_eq(gmem_create(&g, size), 0);
	cr_assert_eq(gmem_nregions(g), 2);
	cr_assert_eq(gmem_low_end(g), MMIO_GAP_START);
	cr_assert_eq(gmem_region(g, 1)->gpa, MMIO_GAP_END);
	cr_assert_eq(gmem_region(g, 1)->size, size - MMIO_GAP_START);
	cr_assert_null(gmem_ptr(g, MMIO_GAP_START, 1), "the hole is not RAM");
	cr_assert_null(gmem_ptr(g, MMIO_GAP_END - 1, 1));
	cr_assert_not_null(gmem_ptr(g, MMIO_GAP_END, 1));
	cr_assert_null(gmem_ptr(g, MMIO_GAP_START - 4, 8), "a range may not straddle the hole");
	gmem_destroy(g);
}

Test(gmem, rejects_bad_sizes)
{
	struct gmem *g = (void *)1;
	cr_assert_eq(gmem_create(&g, 0), -EINVAL);
	cr_assert_null(g);
	cr_assert_eq(gmem_create(&g, 4097), -EINVAL);
	cr_assert_eq(gmem_create(&g, 1ULL << 60), -E2BIG);
}

Test(gmem, ptr_checks_bounds_and_overflow)
{
	struct gmem *g;
	uint64_t size = 1 << 20;
	cr_assert_eq(gmem_create(&g, size), 0);
	cr_assert_not_null(gmem_ptr(g, 0, size));
	cr_assert_not_null(gmem_ptr(g, size - 1, 1));
	cr_assert_not_null(gmem_ptr(g, size - 1, 0), "len 0 counts as one byte");
	cr_assert_null(gmem_ptr(g, size, 0));
	cr_assert_null(gmem_ptr(g, size - 1, 2));
	cr_assert_null(gmem_ptr(g, 0, size + 1));
	cr_assert_null(gmem_ptr(g, 16, UINT64_MAX), "gpa + len wraps");
	cr_assert_null(gmem_ptr(g, UINT64_MAX, 2));
	gmem_destroy(g);
}

Test(gmem, read_write_round_trip_and_fault)
{
	struct gmem *g;
	uint32_t v = 0xdeadbeef, r = 0;
	cr_assert_eq(gmem_create(&g, 1 << 20), 0);
	cr_assert_eq(gmem_write(g, 0x1000, &v, sizeof(v)), 0);
	cr_assert_eq(gmem_read(g, 0x1000, &r, sizeof(r)), 0);
	cr_assert_eq(r, v);
	cr_assert_eq(*(uint32_t *)gmem_ptr(g, 0x1000, 4), v);
	cr_assert_eq(gmem_write(g, (1 << 20) - 2, &v, sizeof(v)), -EFAULT);
	cr_assert_eq(gmem_read(g, (1 << 20) - 2, &r, sizeof(r)), -EFAULT);
	gmem_destroy(g);
	gmem_destroy(NULL);
}

Test(gmem, host_mapping_is_2m_aligned_for_huge_pages)
{
	struct gmem *g;
	cr_assert_eq(gmem_create(&g, (4ULL << 30) + (6 << 20)), 0);
	for (size_t i = 0; i < gmem_nregions(g); i++)
		cr_assert_eq((uintptr_t)gmem_region(g, i)->host % (2 << 20), 0);
	/* The whole mapping is usable: first and last byte of each region. */
	*(volatile uint8_t *)gmem_ptr(g, 0, 1) = 1;
	*(volatile uint8_t *)gmem_ptr(g, gmem_low_end(g) - 1, 1) = 1;
	*(volatile uint8_t *)gmem_ptr(g, MMIO_GAP_END + gmem_region(g, 1)->size - 1, 1) = 1;
	gmem_destroy(g);
}
