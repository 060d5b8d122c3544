#include <criterion/criterion.h>
#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/gmem.h"
#include "hugepool.h"
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

/* Guest memory is not inherited by a child flint forks (MADV_DONTFORK):
 * in the child the range is unmapped (madvise on it fails with ENOMEM),
 * so the parent's guest pages never turn copy-on-write. */
Test(gmem, not_inherited_by_a_child)
{
	struct gmem *g;
	uint8_t *p;
	int st;
	pid_t pid;

	cr_assert_eq(gmem_create(&g, 4 << 20), 0);
	p = gmem_ptr(g, 0x1000, 4096);
	p[0] = 1;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(madvise((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, MADV_NORMAL) < 0 &&
			      errno == ENOMEM
			  ? 0
			  : 1);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child has the guest's memory");
	gmem_destroy(g);
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

/* --- machine-config's huge_pages "2M" and track_dirty_pages --------------- */

/* KernelPageSize of the mapping that starts at p, in KiB (smaps), or -1. */
static long kernel_page_kib(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256], start[32];
	long v = -1;
	bool in = false;

	cr_assert_not_null(f);
	snprintf(start, sizeof(start), "%lx-", (unsigned long)(uintptr_t)p);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' '))
			in = !strncmp(line, start, strlen(start));
		else if (in && !strncmp(line, "KernelPageSize:", 15))
			v = strtol(line + 15, NULL, 10);
	}
	fclose(f);
	return v;
}

static void check_huge_mapping(uint64_t size)
{
	struct gmem *g;
	struct gmem_opts o = {.huge_2m = true};

	cr_assert_eq(gmem_create_opts(&g, size, &o), 0);
	cr_assert_eq(gmem_page_size(g), 2 << 20);
	cr_assert_eq(gmem_slot_flags(g), 0);
	void *host = gmem_region(g, 0)->host;
	cr_assert_eq((uintptr_t)host % (2 << 20), 0);
	cr_assert_eq(kernel_page_kib(host), 2048, "backed by 2 MiB hugetlbfs pages");
	*(volatile uint8_t *)gmem_ptr(g, 0, 1) = 1;
	*(volatile uint8_t *)gmem_ptr(g, size - 1, 1) = 2;
	cr_assert_eq(*(uint8_t *)gmem_ptr(g, size - 1, 1), 2);
	gmem_destroy(g);
}

/* A request beyond the free pool fails at create (-ENOMEM: vm.c names
 * /proc/sys/vm/nr_hugepages), never later with a SIGBUS; a request the pool
 * can serve is backed by 2 MiB pages. Without free pages and without root
 * to add some, the refusal is all that can be shown. */
Test(gmem, huge_pages_2m_mapped_from_the_pool_or_refused_at_create, .fini = hugepool_give_back)
{
	struct gmem *g = (void *)1;
	struct gmem_opts o = {.huge_2m = true};
	long avail = hugepool_take(0);

	cr_assert_geq(avail, 0);
	uint64_t too_many = (uint64_t)(avail + 1) * (2 << 20);
	cr_assert_eq(gmem_create_opts(&g, too_many, &o), -ENOMEM,
		     "%ld free huge pages: %llu bytes must be refused", avail,
		     (unsigned long long)too_many);
	cr_assert_null(g);

	const long want = 4; /* 8 MiB */
	if (hugepool_take(want) < want) {
		cr_assert_neq(geteuid(), 0, "the kernel gave fewer huge pages than asked");
		cr_log_info("cannot add huge pages (not root): only the refusal was checked");
		return;
	}
	check_huge_mapping(want << 21);
}

/* A balloon's inflate: the whole pages inside the range read as zeros
 * afterwards (and are gone from the process), pages partly inside keep
 * their bytes; a range outside RAM is refused. */
Test(gmem, discard_gives_whole_pages_back)
{
	struct gmem *g;
	uint8_t *p;

	cr_assert_eq(gmem_create(&g, 1 << 20), 0);
	p = gmem_ptr(g, 0, 1 << 20);
	memset(p, 0xaa, 8 * 4096);
	cr_assert_eq(gmem_discard(g, 4096, 2 * 4096), 0);
	unsigned char in[4];
	cr_assert_eq(mincore(p, 4 * 4096, in), 0);
	cr_assert((in[0] & 1) && !(in[1] & 1) && !(in[2] & 1) && (in[3] & 1),
		  "pages 1 and 2 gone from the process, 0 and 3 kept: %d %d %d %d", in[0], in[1],
		  in[2], in[3]);
	cr_assert_eq(p[4095], 0xaa);
	cr_assert_eq(p[4096], 0);
	cr_assert_eq(p[3 * 4096 - 1], 0);
	cr_assert_eq(p[3 * 4096], 0xaa);
	/* 4 KiB from 100 bytes into page 5: no whole page inside. */
	cr_assert_eq(gmem_discard(g, 5 * 4096 + 100, 4096), 0);
	cr_assert_eq(p[5 * 4096 + 200], 0xaa, "a page partly inside is kept");
	cr_assert_eq(gmem_discard(g, (1 << 20) - 4096, 8192), -EFAULT);
	cr_assert_eq(gmem_discard(g, UINT64_MAX - 4095, 4096), -EFAULT);
	cr_assert_eq(gmem_discard(g, 0, 0), -EFAULT);
	gmem_destroy(g);
}

Test(gmem, huge_pages_need_a_multiple_of_2m)
{
	struct gmem *g = (void *)1;
	struct gmem_opts o = {.huge_2m = true};

	cr_assert_eq(gmem_create_opts(&g, (2 << 20) + 4096, &o), -EINVAL);
	cr_assert_null(g);
}

Test(gmem, dirty_page_tracking_sets_the_slot_flag)
{
	struct gmem *g;
	struct gmem_opts o = {.track_dirty = true};

	cr_assert_eq(gmem_create_opts(&g, 4 << 20, &o), 0);
	cr_assert_eq(gmem_slot_flags(g), KVM_MEM_LOG_DIRTY_PAGES);
	cr_assert_eq(gmem_page_size(g), 4096);
	gmem_destroy(g);
	cr_assert_eq(gmem_create(&g, 4 << 20), 0);
	cr_assert_eq(gmem_slot_flags(g), 0);
	gmem_destroy(g);
	cr_assert_eq(gmem_create_opts(&g, 4 << 20, NULL), 0);
	cr_assert_eq(gmem_slot_flags(g), 0);
	gmem_destroy(g);
}

/* The memory hot-plug region: outside RAM, reached only where plugged,
 * its memory given back when unplugged. */
Test(gmem, hotplug_region_reached_only_where_plugged)
{
	const uint64_t M2 = 2ULL << 20, base = 4ULL << 30, size = 128ULL << 20;
	struct gmem *g;
	void *host;
	uint8_t *p;

	cr_assert_eq(gmem_create(&g, 64ULL << 20), 0);
	cr_assert_null(gmem_hotplug_region(g), "a region before one was added");
	/* bad geometry, an overlap with RAM */
	cr_assert_eq(gmem_hotplug_add(g, base, size, 3 * M2), -EINVAL);
	cr_assert_eq(gmem_hotplug_add(g, base, size + M2, 4 * M2), -EINVAL);
	cr_assert_eq(gmem_hotplug_add(g, base + 4096, size, M2), -EINVAL);
	cr_assert_eq(gmem_hotplug_add(g, 32ULL << 20, size, M2), -EINVAL);
	cr_assert_eq(gmem_hotplug_add(g, base, size, M2), 0);
	cr_assert_eq(gmem_hotplug_add(g, base + size, size, M2), -EEXIST);
	const struct gmem_region *hr = gmem_hotplug_region(g);
	cr_assert_not_null(hr);
	cr_assert_eq(hr->gpa, base);
	cr_assert_eq(hr->size, size);
	host = hr->host;
	cr_assert_eq(gmem_size(g), 64ULL << 20, "RAM's size unchanged");
	cr_assert_eq(gmem_nregions(g), 1);

	cr_assert_null(gmem_ptr(g, base, 1), "unplugged memory reached");
	cr_assert_eq(gmem_hotplug_set(g, base + M2, 2 * M2, true), 0);
	cr_assert_null(gmem_ptr(g, base, 1));
	p = gmem_ptr(g, base + M2, 2 * M2);
	cr_assert_eq(p, (uint8_t *)host + M2);
	cr_assert_null(gmem_ptr(g, base + M2, 2 * M2 + 1), "past the plugged blocks");
	cr_assert_null(gmem_ptr(g, base + 3 * M2 - 8, 16), "across into an unplugged block");
	cr_assert_eq(gmem_write(g, base + 2 * M2, "hot", 4), 0);
	cr_assert_str_eq((char *)host + 2 * M2, "hot");
	/* unplugged: out of reach, and zeroed when plugged again */
	cr_assert_eq(gmem_hotplug_set(g, base + 2 * M2, M2, false), 0);
	cr_assert_null(gmem_ptr(g, base + 2 * M2, 1));
	cr_assert_not_null(gmem_ptr(g, base + M2, M2), "the other block stays");
	cr_assert_eq(gmem_hotplug_set(g, base + 2 * M2, M2, true), 0);
	cr_assert_eq(((uint8_t *)host)[2 * M2], 0);
	/* ranges refused */
	cr_assert_eq(gmem_hotplug_set(g, base + 4096, M2, true), -EINVAL);
	cr_assert_eq(gmem_hotplug_set(g, base, M2 + 4096, true), -EINVAL);
	cr_assert_eq(gmem_hotplug_set(g, base + size - M2, 2 * M2, true), -EINVAL);
	cr_assert_eq(gmem_hotplug_set(g, base - M2, M2, true), -EINVAL);
	/* At or past the region's end (one block past wrapped the length
	 * check once, and set a bit past the bitmap). */
	cr_assert_eq(gmem_hotplug_set(g, base + size, M2, true), -EINVAL);
	cr_assert_eq(gmem_hotplug_set(g, base + size + M2, M2, true), -EINVAL);
	cr_assert_eq(gmem_hotplug_set(g, base + 1000 * M2, M2, false), -EINVAL);
	cr_assert_eq(gmem_hotplug_set(g, base, 0, true), -EINVAL);
	/* a guest-physical address past the region */
	cr_assert_null(gmem_ptr(g, base + size, 1));
	cr_assert_null(gmem_ptr(g, UINT64_MAX - 4, 8));
	gmem_destroy(g);
}
