#include "core/gmem.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/mman.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/gmem_int.h"
#include "core/study.h"
#include "x86/layout.h"

#define HUGE_2M (2ULL << 20)

void gmem_advise_private(void *p, uint64_t size)
{
	/* A core dump of flint (a seccomp kill, a crash) must not carry the
	 * guest's memory: it is the tenant's data, and large. */
	madvise(p, size, MADV_DONTDUMP);
	/* Nor may a child flint forks (the copy helper, passt): with the
	 * mapping inherited, every guest page already written would be
	 * copy-on-write in flint until the child exec'd or ended, and the
	 * guest's next write to each one a page copy (--copy-in's helper,
	 * forked once the kernel was loaded, cost the guest's boot about a
	 * third more in the rig). QEMU marks its RAM the same way. */
	madvise(p, size, MADV_DONTFORK);
}

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
		gmem_advise_private(q, size);
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
	gmem_advise_private(a, size);
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
	gmem_advise_private(p, size);
	return p;
}

int gmem_create(struct gmem **out, uint64_t size)
{
	return gmem_create_opts(out, size, NULL);
}

void gmem_layout_for_size(uint64_t size, struct gmem_layout *l)
{
	uint64_t low = size < MMIO_GAP_START ? size : MMIO_GAP_START;

	memset(l, 0, sizeof(*l));
	l->nregions = 1;
	l->r[0] = (struct gmem_layout_region){.gpa = 0, .size = low, .offset = 0};
	if (size > low)
		l->r[l->nregions++] = (struct gmem_layout_region){
		    .gpa = MMIO_GAP_END, .size = size - low, .offset = low};
}

int gmem_alloc_dirty(struct gmem *g)
{
	if (!g->opts.track_dirty)
		return 0;
	for (size_t i = 0; i < g->nregions; i++) {
		g->dirty[i] =
		    calloc(gmem_bits_words(g->r[i].size / GMEM_PAGE), sizeof(unsigned long));
		if (!g->dirty[i])
			return -ENOMEM;
	}
	return 0;
}

int gmem_create_opts(struct gmem **out, uint64_t size, const struct gmem_opts *o)
{
	struct gmem_opts none = {0};
	struct gmem_layout l;
	struct gmem *g;
	int err;

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
	g->file_fd = -1;
	g->opts = *o;
	gmem_layout_for_size(size, &l);
	for (size_t i = 0; i < l.nregions; i++) {
		void *p = o->huge_2m ? map_huge(l.r[i].size) : map_aligned(l.r[i].size);
		if (!p) {
			err = -errno;
			goto err_destroy;
		}
		g->r[g->nregions++] =
		    (struct gmem_region){.gpa = l.r[i].gpa, .size = l.r[i].size, .host = p};
	}
	err = gmem_alloc_dirty(g);
	if (err)
		goto err_destroy;
	g->size = size;
	*out = g;
	return 0;

err_destroy:
	gmem_destroy(g);
	return err;
}

void gmem_destroy(struct gmem *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nregions; i++) {
		munmap(g->r[i].host, g->r[i].size);
		free(g->dirty[i]);
	}
	if (g->hot.r.host)
		munmap(g->hot.r.host, g->hot.r.size);
	free(g->hot.plugged);
	free(g->hot.dirty);
	close_fd(&g->file_fd);
	free(g);
}

int gmem_hotplug_adopt(struct gmem *g, void *host, uint64_t gpa, uint64_t size, uint64_t block)
{
	g->hot.plugged = calloc(gmem_bits_words(size / block), sizeof(unsigned long));
	if (g->hot.plugged && g->opts.track_dirty)
		g->hot.dirty = calloc(gmem_bits_words(size / GMEM_PAGE), sizeof(unsigned long));
	if (!g->hot.plugged || (g->opts.track_dirty && !g->hot.dirty)) {
		free(g->hot.plugged);
		g->hot.plugged = NULL;
		return -ENOMEM;
	}
	g->hot.r = (struct gmem_region){.gpa = gpa, .size = size, .host = host};
	g->hot.block = block;
	return 0;
}

int gmem_hotplug_check(const struct gmem_layout *ram, uint64_t gpa, uint64_t size, uint64_t block,
		       char *err, size_t errlen)
{
	const uint64_t end = 1ULL << 47;

	if (!size || !block || (block & (block - 1)) || block % HUGE_2M || size % block)
		return err_set(err, errlen, -EINVAL,
			       "the hot-plug region's size 0x%llx and block 0x%llx are not a "
			       "multiple of a power of two of at least 2 MiB",
			       (unsigned long long)size, (unsigned long long)block);
	if (size > end)
		return err_set(err, errlen, -EINVAL,
			       "the hot-plug region's size 0x%llx is past 2^47",
			       (unsigned long long)size);
	if (gpa % HUGE_2M || gpa > end - size)
		return err_set(err, errlen, -EINVAL,
			       "the hot-plug region's gpa 0x%llx is not 2 MiB aligned or ends past "
			       "2^47",
			       (unsigned long long)gpa);
	for (uint32_t i = 0; i < ram->nregions; i++)
		if (gpa < ram->r[i].gpa + ram->r[i].size && ram->r[i].gpa < gpa + size)
			return err_set(err, errlen, -EINVAL,
				       "the hot-plug region at 0x%llx overlaps region %u",
				       (unsigned long long)gpa, i);
	return 0;
}

int gmem_hotplug_add(struct gmem *g, uint64_t gpa, uint64_t size, uint64_t block)
{
	struct gmem_layout ram;
	void *host;
	int r;

	if (g->hot.r.size)
		return g->hot.r.gpa == gpa && g->hot.r.size == size && g->hot.block == block
			   ? 0
			   : -EEXIST;
	gmem_layout_for_size(g->size, &ram);
	if ((r = gmem_hotplug_check(&ram, gpa, size, block, NULL, 0)) < 0)
		return r;
	if (!(host = map_aligned(size)))
		return -ENOMEM;
	if ((r = gmem_hotplug_adopt(g, host, gpa, size, block)) < 0)
		munmap(host, size);
	return r;
}

bool gmem_hotplug_next_run(const struct gmem *g, uint64_t *at, uint64_t *first, uint64_t *end)
{
	uint64_t n = g->hot.r.size ? g->hot.r.size / g->hot.block : 0, i = *at;

	while (i < n && !gmem_bits_test_atomic(g->hot.plugged, i))
		i++;
	if (i >= n) {
		*at = n;
		return false;
	}
	*first = i;
	while (i < n && gmem_bits_test_atomic(g->hot.plugged, i))
		i++;
	*end = *at = i;
	return true;
}

const struct gmem_region *gmem_hotplug_region(const struct gmem *g)
{
	return g->hot.r.size ? &g->hot.r : NULL;
}

int gmem_hotplug_set(struct gmem *g, uint64_t gpa, uint64_t len, bool plugged)
{
	uint64_t b = g->hot.block;

	if (!g->hot.r.size || !len || gpa < g->hot.r.gpa || gpa - g->hot.r.gpa >= g->hot.r.size ||
	    (gpa - g->hot.r.gpa) % b || len % b || len > g->hot.r.size - (gpa - g->hot.r.gpa))
		return -EINVAL;
	uint64_t first = (gpa - g->hot.r.gpa) / b, n = len / b;
	uint8_t *p = (uint8_t *)g->hot.r.host + (gpa - g->hot.r.gpa);

	if (plugged) {
		gmem_bits_set(g->hot.plugged, first, n);
		return 0;
	}
	for (uint64_t i = first; i < first + n; i++)
		__atomic_fetch_and(&g->hot.plugged[i / BITS_PER_WORD],
				   ~(1UL << (i % BITS_PER_WORD)), __ATOMIC_RELAXED);
	/* Advice: memory that stays is only memory the host keeps longer. */
	madvise(p, len, MADV_DONTNEED);
	/* What the guest finds there if it plugs the blocks again is not
	 * what they held: the next diff snapshot after that must carry it
	 * (their KVM slot, and its log, may be gone meanwhile). */
	if (g->hot.dirty)
		gmem_bits_set(g->hot.dirty, (gpa - g->hot.r.gpa) / GMEM_PAGE, len / GMEM_PAGE);
	return 0;
}

/* [gpa, gpa + len) in the hot-plug region with every block plugged: its
 * host address; else NULL. */
static void *hot_ptr(const struct gmem *g, uint64_t gpa, uint64_t len)
{
	uint64_t off;

	if (!g->hot.r.size || gpa < g->hot.r.gpa || (off = gpa - g->hot.r.gpa) >= g->hot.r.size ||
	    len > g->hot.r.size - off)
		return NULL;
	for (uint64_t i = off / g->hot.block; i <= (off + len - 1) / g->hot.block; i++)
		if (!gmem_bits_test_atomic(g->hot.plugged, i))
			return NULL;
	return (uint8_t *)g->hot.r.host + off;
}

void gmem_bits_set(unsigned long *b, uint64_t first, uint64_t n)
{
	while (n) {
		uint64_t bit = first % BITS_PER_WORD;
		uint64_t k = BITS_PER_WORD - bit < n ? BITS_PER_WORD - bit : n;
		unsigned long mask = k == BITS_PER_WORD ? ~0UL : ((1UL << k) - 1) << bit;

		__atomic_fetch_or(&b[first / BITS_PER_WORD], mask, __ATOMIC_RELAXED);
		first += k;
		n -= k;
	}
}

void gmem_bits_or(unsigned long *dst, const unsigned long *src, uint64_t nbits)
{
	uint64_t full = nbits / BITS_PER_WORD, rest = nbits % BITS_PER_WORD;

	for (uint64_t i = 0; i < full; i++)
		if (src[i])
			__atomic_fetch_or(&dst[i], src[i], __ATOMIC_RELAXED);
	if (rest)
		__atomic_fetch_or(&dst[full], src[full] & ((1UL << rest) - 1), __ATOMIC_RELAXED);
}

/* Mark the pages of [off, off + len) of a region's dirty bitmap (inside
 * it, len > 0). */
static void mark_bits(unsigned long *dirty, uint64_t off, uint64_t len)
{
	uint64_t first = off / GMEM_PAGE, last = (off + len - 1) / GMEM_PAGE;

	gmem_bits_set(dirty, first, last - first + 1);
}

void gmem_mark_dirty(struct gmem *g, uint64_t gpa, uint64_t len)
{
	if (!g->opts.track_dirty || len == 0)
		return;
	for (size_t i = 0; i < g->nregions; i++) {
		const struct gmem_region *r = &g->r[i];
		/* The part of [gpa, gpa+len) inside r, without computing an end
		 * that could wrap. */
		uint64_t lo = gpa > r->gpa ? gpa - r->gpa : 0;
		uint64_t skip = r->gpa > gpa ? r->gpa - gpa : 0;

		if (lo >= r->size || skip >= len)
			continue;
		uint64_t n = len - skip < r->size - lo ? len - skip : r->size - lo;
		mark_bits(g->dirty[i], lo, n);
	}
	/* Only plugged memory is written (gmem_ptr_w), so in the region. */
	if (g->hot.dirty && gpa >= g->hot.r.gpa && gpa - g->hot.r.gpa < g->hot.r.size) {
		uint64_t off = gpa - g->hot.r.gpa;

		mark_bits(g->hot.dirty, off, len < g->hot.r.size - off ? len : g->hot.r.size - off);
	}
}

void gmem_mark_dirty_host(struct gmem *g, const void *host, size_t len)
{
	uintptr_t p = (uintptr_t)host;

	if (!g->opts.track_dirty || len == 0)
		return;
	for (size_t i = 0; i < g->nregions; i++) {
		uintptr_t base = (uintptr_t)g->r[i].host;

		if (p < base || p - base >= g->r[i].size)
			continue;
		uint64_t off = p - base;
		mark_bits(g->dirty[i], off, len < g->r[i].size - off ? len : g->r[i].size - off);
	}
	uintptr_t hb = (uintptr_t)g->hot.r.host;
	if (g->hot.dirty && p >= hb && p - hb < g->hot.r.size)
		mark_bits(g->hot.dirty, p - hb,
			  len < g->hot.r.size - (p - hb) ? len : g->hot.r.size - (p - hb));
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
	return hot_ptr(g, gpa, len);
}

int gmem_discard(struct gmem *g, uint64_t gpa, uint64_t len)
{
	uint64_t ps = gmem_page_size(g), start, end;
	uint8_t *p = len ? gmem_ptr(g, gpa, len) : NULL;

	if (!p)
		return -EFAULT;
	/* Host addresses: regions are page-aligned in both spaces. */
	start = ((uintptr_t)p + ps - 1) & ~(ps - 1);
	end = ((uintptr_t)p + len) & ~(ps - 1);
	if (start >= end)
		return 0;
	if (madvise((void *)(uintptr_t)start, end - start, MADV_DONTNEED) < 0)
		return -errno;
	return 0;
}

int gmem_read(const struct gmem *g, uint64_t gpa, void *dst, size_t len)
{
	const void *p = gmem_ptr(g, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

void *gmem_ptr_w(struct gmem *g, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(g, gpa, len);

	if (p)
		gmem_mark_dirty(g, gpa, len ? len : 1);
	return p;
}

int gmem_write(struct gmem *g, uint64_t gpa, const void *src, size_t len)
{
	void *p = gmem_ptr_w(g, gpa, len);
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

void gmem_set_lazy(struct gmem *g)
{
	g->lazy = true;
}
