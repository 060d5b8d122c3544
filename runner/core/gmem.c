#include "core/gmem.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/mman.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/study.h"
#include "x86/layout.h"

#define GMEM_MAX_REGIONS 2

struct gmem {
	size_t nregions;
	struct gmem_region r[GMEM_MAX_REGIONS];
	uint64_t size;
	struct gmem_opts opts;
};

#define HUGE_2M (2ULL << 20)

/* Anonymous memory aligned to 2 MiB. KVM maps a guest 2 MiB page with one
 * nested page table entry only when the host address has the same 2 MiB
 * alignment as the guest one and the host page is a transparent huge page;
 * with both, the guest's first touches (NPF exits) drop by up to 512x. */
static void *map_aligned(uint64_t size)
{
	const uint64_t huge = 2ULL << 20;

	if (study_on(STUDY_NO_THP)) {
		/* Study switch: small pages only, no 2 MiB alignment. */
		void *q = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (q == MAP_FAILED)
			return NULL;
		madvise(q, size, MADV_NOHUGEPAGE);
		madvise(q, size, MADV_DONTDUMP);
		return q;
	}
	uint8_t *p = mmap(NULL, size + huge, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uint8_t *a = (uint8_t *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + size, p + huge - a);
	/* Advice only: without THP the guest still runs, with more exits. */
	madvise(a, size, MADV_HUGEPAGE);
	/* A core dump of flint (a seccomp kill, a crash) must not carry the
	 * guest's memory: it is the tenant's data, and large. */
	madvise(a, size, MADV_DONTDUMP);
	return a;
}

/* 2 MiB hugetlbfs pages, which the kernel aligns to 2 MiB itself. No
 * MAP_NORESERVE: the pages are reserved from the pool now, so a pool too
 * small fails this mmap with ENOMEM rather than the guest's first touch of
 * an unreserved page with a SIGBUS that takes flint down. */
static void *map_huge(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_DONTDUMP);
	return p;
}

int gmem_create(struct gmem **out, uint64_t size)
{
	return gmem_create_opts(out, size, NULL);
}

int gmem_create_opts(struct gmem **out, uint64_t size, const struct gmem_opts *o)
{
	struct gmem_opts none = {0};
	struct gmem *g;
	uint64_t low, high;

	*out = NULL;
	if (!o)
		o = &none;
	if (size == 0 || size % (o->huge_2m ? HUGE_2M : 4096))
		return -EINVAL;
	/* The high region starts at 4 GiB; keep gpa + size far from wrapping. */
	if (size > (1ULL << 46))
		return -E2BIG;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->opts = *o;
	low = size < MMIO_GAP_START ? size : MMIO_GAP_START;
	high = size - low;
	uint64_t sizes[] = {low, high}, bases[] = {0, MMIO_GAP_END};
	for (size_t i = 0; i < ARRAY_SIZE(sizes) && sizes[i]; i++) {
		void *p = o->huge_2m ? map_huge(sizes[i]) : map_aligned(sizes[i]);
		if (!p) {
			int err = -errno;
			gmem_destroy(g);
			return err;
		}
		g->r[g->nregions++] = (struct gmem_region){.gpa = bases[i], .size = sizes[i], .host = p};
	}
	g->size = size;
	*out = g;
	return 0;
}

void gmem_destroy(struct gmem *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nregions; i++)
		munmap(g->r[i].host, g->r[i].size);
	free(g);
}

void *gmem_ptr(const struct gmem *g, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		len = 1;
	for (size_t i = 0; i < g->nregions; i++) {
		const struct gmem_region *r = &g->r[i];
		/* gpa >= r->gpa first, so the subtraction below cannot wrap, and
		 * len is compared against what is left: no gpa + len overflow. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return (uint8_t *)r->host + (gpa - r->gpa);
	}
	return NULL;
}

int gmem_read(const struct gmem *g, uint64_t gpa, void *dst, size_t len)
{
	const void *p = gmem_ptr(g, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(struct gmem *g, uint64_t gpa, const void *src, size_t len)
{
	void *p = gmem_ptr(g, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

uint64_t gmem_size(const struct gmem *g)
{
	return g->size;
}

uint64_t gmem_low_end(const struct gmem *g)
{
	return g->r[0].size;
}

size_t gmem_nregions(const struct gmem *g)
{
	return g->nregions;
}

const struct gmem_region *gmem_region(const struct gmem *g, size_t i)
{
	return i < g->nregions ? &g->r[i] : NULL;
}

uint32_t gmem_slot_flags(const struct gmem *g)
{
	return g->opts.track_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0;
}

uint64_t gmem_page_size(const struct gmem *g)
{
	return g->opts.huge_2m ? HUGE_2M : 4096;
}
