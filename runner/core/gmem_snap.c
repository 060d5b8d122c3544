/* gmem_snap: guest memory to and from a snapshot's memory file; the file's
 * layout and the rules are in gmem_snap.h. */
#include "core/gmem_snap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/gmem_int.h"

/* Pages looked at per mincore()/pagemap read: 16 MiB of guest memory. */
#define CHUNK	   4096
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define HUGE_2M	   (2ULL << 20)

/* --- the region table ---------------------------------------------------- */

void gmem_layout_of(const struct gmem *g, struct gmem_layout *l)
{
	uint64_t off = 0;

	memset(l, 0, sizeof(*l));
	l->nregions = g->nregions;
	for (size_t i = 0; i < g->nregions; i++) {
		l->r[i] = (struct gmem_layout_region){
		    .gpa = g->r[i].gpa, .size = g->r[i].size, .offset = off};
		off += g->r[i].size;
	}
	if (g->hot.r.size)
		l->hot = (struct gmem_layout_hot){.gpa = g->hot.r.gpa,
						  .size = g->hot.r.size,
						  .block = g->hot.block,
						  .offset = off};
}

uint64_t gmem_layout_file_size(const struct gmem_layout *l)
{
	if (l->nregions == 0 || l->nregions > GMEM_MAX_REGIONS)
		return 0;
	if (l->hot.size)
		return l->hot.offset + l->hot.size;
	return l->r[l->nregions - 1].offset + l->r[l->nregions - 1].size;
}

/* 0 when l's hot-plug region is one gmem_hotplug_add could have made,
 * right after RAM in the file (total: RAM's bytes); else -EINVAL. */
static int hot_check(const struct gmem_layout *l, uint64_t total, char *err, size_t errlen)
{
	const struct gmem_layout_hot *h = &l->hot;
	char why[160];
	int r;

	if (!h->size)
		return 0;
	if ((r = gmem_hotplug_check(l, h->gpa, h->size, h->block, why, sizeof(why))) < 0)
		return err_set(err, errlen, r, "memory layout: %s", why);
	if (h->offset != total)
		return err_set(err, errlen, -EINVAL,
			       "memory layout: the hot-plug region's file offset 0x%llx "
			       "(flint's file has it at 0x%llx)",
			       (unsigned long long)h->offset, (unsigned long long)total);
	return 0;
}

int gmem_layout_check(const struct gmem_layout *l, char *err, size_t errlen)
{
	static const char *const field[] = {"gpa", "size", "file offset"};
	struct gmem_layout want;
	uint64_t total = 0;

	if (l->nregions == 0 || l->nregions > GMEM_MAX_REGIONS)
		return err_set(err, errlen, -EINVAL,
			       "memory layout: %u regions (flint maps 1 or %d)", l->nregions,
			       GMEM_MAX_REGIONS);
	for (uint32_t i = 0; i < l->nregions; i++) {
		if (l->r[i].size > (1ULL << 46) || total + l->r[i].size > (1ULL << 46))
			return err_set(err, errlen, -EINVAL,
				       "memory layout: region %u size 0x%llx too large", i,
				       (unsigned long long)l->r[i].size);
		total += l->r[i].size;
	}
	if (total == 0 || total % GMEM_PAGE)
		return err_set(
		    err, errlen, -EINVAL,
		    "memory layout: total size 0x%llx is not a non-zero multiple of 4 KiB",
		    (unsigned long long)total);
	gmem_layout_for_size(total, &want);
	if (want.nregions != l->nregions)
		return err_set(err, errlen, -EINVAL,
			       "memory layout: %u regions for 0x%llx bytes (flint maps %u)",
			       l->nregions, (unsigned long long)total, want.nregions);
	for (uint32_t i = 0; i < l->nregions; i++) {
		const uint64_t got[] = {l->r[i].gpa, l->r[i].size, l->r[i].offset};
		const uint64_t exp[] = {want.r[i].gpa, want.r[i].size, want.r[i].offset};

		for (size_t f = 0; f < ARRAY_SIZE(got); f++)
			if (got[f] != exp[f])
				return err_set(
				    err, errlen, -EINVAL,
				    "memory layout: region %u %s 0x%llx (flint's map has 0x%llx)",
				    i, field[f], (unsigned long long)got[f],
				    (unsigned long long)exp[f]);
	}
	return hot_check(l, total, err, errlen);
}

int gmem_layout_save(const struct gmem_layout *l, struct wbuf *w)
{
	/* Version 1 without a hot-plug region: what flint before it reads. */
	wput_u32(w, l->hot.size ? GMEM_LAYOUT_VERSION : 1);
	wput_u32(w, l->nregions);
	for (uint32_t i = 0; i < l->nregions && i < GMEM_MAX_REGIONS; i++) {
		wput_u64(w, l->r[i].gpa);
		wput_u64(w, l->r[i].size);
		wput_u64(w, l->r[i].offset);
	}
	if (l->hot.size) {
		wput_u64(w, l->hot.gpa);
		wput_u64(w, l->hot.size);
		wput_u64(w, l->hot.block);
		wput_u64(w, l->hot.offset);
	}
	return wbuf_err(w);
}

int gmem_layout_restore(struct gmem_layout *l, struct rbuf *r, char *err, size_t errlen)
{
	struct gmem_layout t;
	uint32_t version;
	int ret;

	memset(&t, 0, sizeof(t));
	version = rget_u32(r);
	t.nregions = rget_u32(r);
	if (rbuf_err(r))
		return err_set(err, errlen, -EBADMSG, "memory layout: truncated");
	if (version < 1 || version > GMEM_LAYOUT_VERSION)
		return err_set(err, errlen, -EINVAL,
			       "memory layout: version %u (flint reads 1 to %u)", version,
			       GMEM_LAYOUT_VERSION);
	if (t.nregions == 0 || t.nregions > GMEM_MAX_REGIONS)
		return err_set(err, errlen, -EINVAL,
			       "memory layout: %u regions (flint maps 1 or %d)", t.nregions,
			       GMEM_MAX_REGIONS);
	for (uint32_t i = 0; i < t.nregions; i++) {
		t.r[i].gpa = rget_u64(r);
		t.r[i].size = rget_u64(r);
		t.r[i].offset = rget_u64(r);
	}
	if (version >= 2) {
		t.hot.gpa = rget_u64(r);
		t.hot.size = rget_u64(r);
		t.hot.block = rget_u64(r);
		t.hot.offset = rget_u64(r);
		if (!rbuf_err(r) && !t.hot.size)
			return err_set(err, errlen, -EINVAL,
				       "memory layout: an empty hot-plug region");
	}
	if (rbuf_err(r))
		return err_set(err, errlen, -EBADMSG, "memory layout: truncated");
	ret = gmem_layout_check(&t, err, errlen);
	if (ret)
		return ret;
	*l = t;
	return 0;
}

/* --- writing ------------------------------------------------------------- */

static int regular_file(int fd, struct stat *st, const char *what, char *err, size_t errlen)
{
	if (fstat(fd, st) < 0)
		return err_set(err, errlen, -errno, "%s: fstat: %s", what, strerror(errno));
	if (!S_ISREG(st->st_mode))
		return err_set(err, errlen, -EINVAL, "%s is not a regular file", what);
	return 0;
}

/* A snapshot written into the file g maps would change (full: truncate
 * away) the memory under the guest. */
static int not_own_file(const struct gmem *g, const struct stat *st, char *err, size_t errlen)
{
	struct stat own;

	if (g->file_fd >= 0 && fstat(g->file_fd, &own) == 0 && own.st_dev == st->st_dev &&
	    own.st_ino == st->st_ino)
		return err_set(err, errlen, -EINVAL,
			       "memory file: it is the file this VM's memory is mapped from");
	return 0;
}

bool gmem_maps_file(const struct gmem *g, int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && not_own_file(g, &st, NULL, 0) < 0;
}

static bool page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t acc = 0;

	/* Most data pages differ from zero in their first word. */
	if (w[0])
		return false;
	for (size_t i = 0; i < GMEM_PAGE / 8; i += 8) {
		for (size_t j = 0; j < 8; j++)
			acc |= w[i + j];
		if (acc)
			return false;
	}
	return true;
}

/* True when the host has pages in swap, so that mincore() may call a page
 * that holds data not resident. */
static bool swap_in_use(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return true;
	return si.totalswap != si.freeswap;
}

/* vec[j] = whether page base+j of r is in memory (or swap), for n pages. */
static int scan(const struct gmem_region *r, uint64_t base, uint64_t n, enum gmem_scan how, int pm,
		uint64_t *pmbuf, uint8_t *vec)
{
	uint8_t *host = (uint8_t *)r->host + base * GMEM_PAGE;

	switch (how) {
	case GMEM_SCAN_MINCORE:
		if (mincore(host, n * GMEM_PAGE, vec) < 0)
			return -errno;
		for (uint64_t j = 0; j < n; j++)
			vec[j] &= 1;
		return 0;
	case GMEM_SCAN_PAGEMAP: {
		int ret = pread_full(pm, (uint8_t *)pmbuf, n * 8, (uintptr_t)host / GMEM_PAGE * 8);
		if (ret)
			return ret;
		for (uint64_t j = 0; j < n; j++)
			vec[j] = !!(pmbuf[j] & (PM_PRESENT | PM_SWAPPED));
		return 0;
	}
	default:
		memset(vec, 1, n);
		return 0;
	}
}

/* Set vec[j] for the pages of [off, off + n pages) of the file fd that hold
 * data: in a file-backed gmem, a page neither copied (written) nor in the
 * page cache shows as not resident, yet holds the file's content. */
static int file_data(int fd, uint64_t off, uint64_t n, uint8_t *vec)
{
	uint64_t end = off + n * GMEM_PAGE, at = off;

	while (at < end) {
		off_t data = lseek(fd, (off_t)at, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			return 0;
		if (data < 0)
			return -errno;
		if ((uint64_t)data >= end)
			return 0;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		uint64_t stop = (uint64_t)hole < end ? (uint64_t)hole : end;
		for (uint64_t pg = ((uint64_t)data - off) / GMEM_PAGE;
		     pg < (stop - off + GMEM_PAGE - 1) / GMEM_PAGE; pg++)
			vec[pg] = 1;
		at = stop;
	}
	return 0;
}

/* vec[j] = whether page base+j of region r may hold data, for n pages. */
static int candidates(const struct gmem *g, const struct gmem_region *r, uint64_t src_off,
		      uint64_t base, uint64_t n, enum gmem_scan how, int pm, uint64_t *pmbuf,
		      uint8_t *vec)
{
	int ret = scan(r, base, n, how, pm, pmbuf, vec);
	if (!ret && how != GMEM_SCAN_ALL && g->file_fd >= 0)
		ret = file_data(g->file_fd, src_off + base * GMEM_PAGE, n, vec);
	return ret;
}

/* Write the pages of region r (of g's) that hold data at file offset off
 * (which is also where a file-backed g's region lies in its own file), in
 * runs. */
static int full_region(const struct gmem *g, const struct gmem_region *r, uint64_t off, int fd,
		       enum gmem_scan how, int pm, uint64_t *pmbuf)
{
	const uint8_t *host = r->host;
	uint64_t npages = r->size / GMEM_PAGE, run = UINT64_MAX;
	uint8_t vec[CHUNK];
	int ret;

	for (uint64_t base = 0; base < npages; base += CHUNK) {
		uint64_t n = npages - base < CHUNK ? npages - base : CHUNK;

		ret = candidates(g, r, off, base, n, how, pm, pmbuf, vec);
		if (ret)
			return ret;
		for (uint64_t j = 0; j < n; j++) {
			uint64_t pg = base + j;
			bool data = vec[j] && !page_zero(host + pg * GMEM_PAGE);

			if (data && run == UINT64_MAX)
				run = pg;
			if (!data && run != UINT64_MAX) {
				ret = pwrite_full(fd, host + run * GMEM_PAGE,
						  (pg - run) * GMEM_PAGE, off + run * GMEM_PAGE);
				if (ret)
					return ret;
				run = UINT64_MAX;
			}
		}
	}
	if (run != UINT64_MAX)
		return pwrite_full(fd, host + run * GMEM_PAGE, (npages - run) * GMEM_PAGE,
				   off + run * GMEM_PAGE);
	return 0;
}

/* The part of g's hot-plug region from block first to end, as a region. */
static struct gmem_region hot_part(const struct gmem *g, uint64_t first, uint64_t end)
{
	uint64_t b = g->hot.block;

	return (struct gmem_region){.gpa = g->hot.r.gpa + first * b,
				    .size = (end - first) * b,
				    .host = (uint8_t *)g->hot.r.host + first * b};
}

/* The hot-plug region's plugged blocks, as full_region writes RAM's: an
 * unplugged block is a hole (the guest has nothing there). */
static int full_hot(const struct gmem *g, uint64_t off, int fd, enum gmem_scan how, int pm,
		    uint64_t *pmbuf)
{
	uint64_t at = 0, first, end;
	int ret = 0;

	while (!ret && gmem_hotplug_next_run(g, &at, &first, &end)) {
		struct gmem_region part = hot_part(g, first, end);

		ret = full_region(g, &part, off + first * g->hot.block, fd, how, pm, pmbuf);
	}
	return ret;
}

static void clear_bits(unsigned long *b, uint64_t nbits)
{
	for (uint64_t w = 0; w < gmem_bits_words(nbits); w++)
		__atomic_store_n(&b[w], 0, __ATOMIC_RELAXED);
}

static void clear_dirty(struct gmem *g)
{
	for (size_t i = 0; g->opts.track_dirty && i < g->nregions; i++)
		clear_bits(g->dirty[i], g->r[i].size / GMEM_PAGE);
	if (g->hot.dirty)
		clear_bits(g->hot.dirty, g->hot.r.size / GMEM_PAGE);
}

int gmem_save_full_scan(struct gmem *g, int fd, enum gmem_scan how, char *err, size_t errlen)
{
	struct gmem_layout l;
	struct stat st;
	uint64_t *pmbuf = NULL;
	bool checked = false;
	int pm = -1, ret;

	ret = regular_file(fd, &st, "memory file", err, errlen);
	if (!ret)
		ret = not_own_file(g, &st, err, errlen);
	/* A page past a shrunk file's end would be read with SIGBUS. */
	if (!ret)
		ret = gmem_check_file(g, err, errlen);
	if (ret)
		return ret;
	gmem_layout_of(g, &l);
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)gmem_layout_file_size(&l)) < 0)
		return err_set(err, errlen, -errno, "memory file: ftruncate: %s", strerror(errno));
	if (how == GMEM_SCAN_AUTO && g->lazy)
		how = GMEM_SCAN_ALL;
	if (how == GMEM_SCAN_AUTO) {
		checked = !swap_in_use();
		how = checked ? GMEM_SCAN_MINCORE : GMEM_SCAN_PAGEMAP;
	}
again:
	if (how == GMEM_SCAN_PAGEMAP) {
		pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		pmbuf = malloc(CHUNK * sizeof(*pmbuf));
		if (pm < 0 || !pmbuf)
			how = GMEM_SCAN_ALL; /* no /proc in a jail: read every page */
	}
	for (size_t i = 0; i < l.nregions && !ret; i++)
		ret = full_region(g, &g->r[i], l.r[i].offset, fd, how, pm, pmbuf);
	if (!ret && l.hot.size)
		ret = full_hot(g, l.hot.offset, fd, how, pm, pmbuf);
	close_fd(&pm);
	free(pmbuf);
	pmbuf = NULL;
	if (ret)
		return err_set(err, errlen, ret, "memory file: writing guest memory: %s",
			       strerror(-ret));
	/* A page swapped out while mincore() looked was taken for a hole:
	 * write again, from a scan that sees swapped pages. */
	if (checked && swap_in_use()) {
		checked = false;
		how = GMEM_SCAN_PAGEMAP;
		goto again;
	}
	clear_dirty(g);
	return 0;
}

int gmem_save_full(struct gmem *g, int fd, char *err, size_t errlen)
{
	return gmem_save_full_scan(g, fd, GMEM_SCAN_AUTO, err, errlen);
}

int gmem_dirty_merge(struct gmem *g, size_t slot, const unsigned long *kvm_bitmap, uint64_t nbits)
{
	if (!g->opts.track_dirty || slot >= g->nregions || nbits != g->r[slot].size / GMEM_PAGE)
		return -EINVAL;
	gmem_bits_or(g->dirty[slot], kvm_bitmap, nbits);
	return 0;
}

int gmem_hotplug_dirty_merge(struct gmem *g, uint64_t off, const unsigned long *kvm_bitmap,
			     uint64_t nbits)
{
	uint64_t first = off / GMEM_PAGE;

	if (!g->hot.dirty || off % GMEM_PAGE || first % BITS_PER_WORD || off >= g->hot.r.size ||
	    nbits > (g->hot.r.size - off) / GMEM_PAGE)
		return -EINVAL;
	gmem_bits_or(g->hot.dirty + first / BITS_PER_WORD, kvm_bitmap, nbits);
	return 0;
}

/* Write the pages set in bits (npages of region r) at file offset off. */
static int diff_region(const struct gmem_region *r, const unsigned long *bits, uint64_t off, int fd)
{
	const uint8_t *host = r->host;
	uint64_t npages = r->size / GMEM_PAGE, pg = 0;

	while (pg < npages) {
		if (!bits[pg / BITS_PER_WORD] && pg % BITS_PER_WORD == 0) {
			pg += BITS_PER_WORD;
			continue;
		}
		if (!gmem_bits_test(bits, pg)) {
			pg++;
			continue;
		}
		uint64_t end = pg + 1;
		while (end < npages && gmem_bits_test(bits, end))
			end++;
		int ret = pwrite_full(fd, host + pg * GMEM_PAGE, (end - pg) * GMEM_PAGE,
				      off + pg * GMEM_PAGE);
		if (ret)
			return ret;
		pg = end;
	}
	return 0;
}

/* The dirty pages of the hot-plug region's plugged blocks (taken: its
 * dirty bits), as diff_region writes RAM's. A block's first page is at a
 * word of the bitmap: a block is 2 MiB or more. */
static int diff_hot(const struct gmem *g, const unsigned long *taken, uint64_t off, int fd)
{
	uint64_t at = 0, first, end, words_per_block = g->hot.block / GMEM_PAGE / BITS_PER_WORD;
	int ret = 0;

	while (!ret && gmem_hotplug_next_run(g, &at, &first, &end)) {
		struct gmem_region part = hot_part(g, first, end);

		ret = diff_region(&part, taken + first * words_per_block,
				  off + first * g->hot.block, fd);
	}
	return ret;
}

/* Give back to g's hot-plug dirty bitmap the bits taken (taken) of its
 * unplugged blocks, which diff_hot did not write: their pages go into the
 * diff after the guest plugs them again. */
static void keep_unplugged(struct gmem *g, const unsigned long *taken)
{
	uint64_t wpb = g->hot.block / GMEM_PAGE / BITS_PER_WORD;

	for (uint64_t b = 0; b < g->hot.r.size / g->hot.block; b++)
		if (!gmem_bits_test_atomic(g->hot.plugged, b))
			gmem_bits_or(g->hot.dirty + b * wpb, taken + b * wpb,
				     g->hot.block / GMEM_PAGE);
}

/* Take bitmap b's nbits bits into t (a page marked meanwhile goes to the
 * next diff). */
static void take_bits(unsigned long *t, unsigned long *b, uint64_t nbits)
{
	for (uint64_t w = 0; w < gmem_bits_words(nbits); w++)
		t[w] = __atomic_exchange_n(&b[w], 0, __ATOMIC_RELAXED);
}

int gmem_save_diff(struct gmem *g, int fd, char *err, size_t errlen)
{
	unsigned long *taken[GMEM_MAX_REGIONS] = {NULL}, *hot = NULL;
	uint64_t hot_pages = g->hot.r.size / GMEM_PAGE;
	struct gmem_layout l;
	struct stat st;
	uint64_t size;
	int ret;

	if (!g->opts.track_dirty)
		return err_set(err, errlen, -EINVAL, "diff snapshot: dirty page tracking is off");
	ret = regular_file(fd, &st, "memory file", err, errlen);
	if (!ret)
		ret = not_own_file(g, &st, err, errlen);
	if (!ret)
		ret = gmem_check_file(g, err, errlen); /* as gmem_save_full_scan */
	if (ret)
		return ret;
	gmem_layout_of(g, &l);
	size = gmem_layout_file_size(&l);
	if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0)
		return err_set(err, errlen, -errno, "memory file: ftruncate: %s", strerror(errno));
	for (size_t i = 0; i < l.nregions; i++) {
		uint64_t words = gmem_bits_words(l.r[i].size / GMEM_PAGE);

		taken[i] = malloc(words * sizeof(unsigned long));
		if (!taken[i]) {
			ret = -ENOMEM;
			goto out;
		}
	}
	if (hot_pages && !(hot = malloc(gmem_bits_words(hot_pages) * sizeof(unsigned long)))) {
		ret = -ENOMEM;
		goto out;
	}
	/* Take the bits, and give them back if the diff cannot be written. */
	for (size_t i = 0; i < l.nregions; i++)
		take_bits(taken[i], g->dirty[i], l.r[i].size / GMEM_PAGE);
	if (hot)
		take_bits(hot, g->hot.dirty, hot_pages);
	for (size_t i = 0; i < l.nregions && !ret; i++)
		ret = diff_region(&g->r[i], taken[i], l.r[i].offset, fd);
	if (!ret && hot && !(ret = diff_hot(g, hot, l.hot.offset, fd)))
		keep_unplugged(g, hot);
	if (ret) {
		for (size_t i = 0; i < l.nregions; i++)
			gmem_bits_or(g->dirty[i], taken[i], l.r[i].size / GMEM_PAGE);
		if (hot)
			gmem_bits_or(g->hot.dirty, hot, hot_pages);
	}
out:
	for (size_t i = 0; i < GMEM_MAX_REGIONS; i++)
		free(taken[i]);
	free(hot);
	if (ret)
		return err_set(err, errlen, ret, "memory file: writing dirty pages: %s",
			       strerror(-ret));
	return 0;
}

/* --- restoring ----------------------------------------------------------- */

/* A private mapping of fd's [off, off+size), 2 MiB aligned like
 * gmem_create's memory (the copies the guest makes can then be huge). */
static void *map_from_file(int fd, uint64_t off, uint64_t size)
{
	uint8_t *p = mmap(NULL, size + HUGE_2M, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + size, p + HUGE_2M - a);
	if (mmap(a, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
		 (off_t)off) == MAP_FAILED) {
		int e = errno;
		munmap(a, size);
		errno = e;
		return NULL;
	}
	gmem_advise_private(a, size); /* as gmem_create's */
	return a;
}

int gmem_create_from_file(struct gmem **out, const struct gmem_layout *l, int fd,
			  const struct gmem_opts *o, char *err, size_t errlen)
{
	struct gmem_opts none = {0};
	struct stat st;
	struct gmem *g;
	uint64_t need;
	int ret;

	*out = NULL;
	if (!o)
		o = &none;
	if (o->huge_2m)
		return err_set(err, errlen, -EINVAL,
			       "memory file: huge pages cannot back a file-backed restore");
	ret = gmem_layout_check(l, err, errlen);
	if (ret)
		return ret;
	ret = regular_file(fd, &st, "memory file", err, errlen);
	if (ret)
		return ret;
	need = gmem_layout_file_size(l);
	if ((uint64_t)st.st_size < need)
		return err_set(err, errlen, -EINVAL,
			       "memory file: %llu bytes, the snapshot's memory needs %llu",
			       (unsigned long long)st.st_size, (unsigned long long)need);
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->opts = *o;
	/* Kept to tell, at the next full snapshot, which pages the file holds. */
	g->file_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (g->file_fd < 0) {
		ret = err_set(err, errlen, -errno, "memory file: dup: %s", strerror(errno));
		goto err_destroy;
	}
	g->file_need = need;
	for (uint32_t i = 0; i < l->nregions; i++) {
		void *p = map_from_file(fd, l->r[i].offset, l->r[i].size);
		if (!p) {
			ret = err_set(err, errlen, -errno, "memory file: mmap region %u: %s", i,
				      strerror(errno));
			goto err_destroy;
		}
		g->r[g->nregions++] =
		    (struct gmem_region){.gpa = l->r[i].gpa, .size = l->r[i].size, .host = p};
		g->size += l->r[i].size;
	}
	ret = gmem_alloc_dirty(g);
	if (ret)
		goto err_destroy;
	if (l->hot.size) {
		/* Every block unplugged until the device's state plugs them. */
		void *p = map_from_file(fd, l->hot.offset, l->hot.size);

		if (!p) {
			ret = err_set(err, errlen, -errno,
				      "memory file: mmap the hot-plug region: %s", strerror(errno));
			goto err_destroy;
		}
		if ((ret = gmem_hotplug_adopt(g, p, l->hot.gpa, l->hot.size, l->hot.block)) < 0) {
			munmap(p, l->hot.size);
			goto err_destroy;
		}
	}
	*out = g;
	return 0;

err_destroy:
	gmem_destroy(g);
	return ret;
}

bool gmem_from_file(const struct gmem *g)
{
	return g->file_fd >= 0 && !g->lazy;
}

int gmem_check_file(const struct gmem *g, char *err, size_t errlen)
{
	struct stat st;

	if (!gmem_from_file(g) || fstat(g->file_fd, &st) < 0 ||
	    (uint64_t)st.st_size >= g->file_need)
		return 0;
	return err_set(err, errlen, -EIO,
		       "the memory file shrank to %llu bytes while the guest ran on it (it maps "
		       "%llu): a host program truncated or rewrote it, and the guest's pages "
		       "there are gone",
		       (unsigned long long)st.st_size, (unsigned long long)g->file_need);
}

/* /proc/self/pagemap's bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_FILE	   (1ULL << 61) /* a file page (or shared anonymous) */

/* Copies of the memory file's pages a reset writes back in place rather
 * than drops, at most: a page written back stays mapped (and so does its
 * nested page table entry), so the guest does not fault on it again;
 * past this, the rest are dropped (the memory a VM keeps is bounded). */
#define COPY_BACK_MAX (8ULL << 20)

/* Pages first..end-1 of a region at host (offset off of the memory file
 * fd) back to the file's: read back in place while *budget lasts,
 * dropped after. */
static int put_back(uint8_t *host, uint64_t first, uint64_t end, int fd, uint64_t off,
		    uint64_t *budget)
{
	uint64_t len = (end - first) * GMEM_PAGE;

	if (len <= *budget) {
		*budget -= len;
		return pread_full(fd, host + first * GMEM_PAGE, len, off + first * GMEM_PAGE);
	}
	return madvise(host + first * GMEM_PAGE, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

/* The private copies in region r (at offset off of the memory file fd),
 * found in pagemap pm: the pages present or swapped that are not the
 * file's (copies made when they were written), put back in runs. The
 * file's own pages, only read, stay as they are. */
static int reset_copies(const struct gmem_region *r, int fd, uint64_t off, int pm, uint64_t *pmbuf,
			uint64_t *budget)
{
	uint64_t npages = r->size / GMEM_PAGE, run = UINT64_MAX;
	uint8_t *host = r->host;
	int ret;

	for (uint64_t base = 0; base < npages; base += CHUNK) {
		uint64_t n = npages - base < CHUNK ? npages - base : CHUNK;
		uint64_t at = ((uintptr_t)host / GMEM_PAGE + base) * sizeof(uint64_t);

		if ((ret = pread_full(pm, pmbuf, n * sizeof(uint64_t), at)))
			return ret;
		for (uint64_t j = 0; j < n; j++) {
			bool copy = (pmbuf[j] & (PM_PRESENT | PM_SWAPPED)) && !(pmbuf[j] & PM_FILE);

			if (copy && run == UINT64_MAX)
				run = base + j;
			if (!copy && run != UINT64_MAX) {
				if ((ret = put_back(host, run, base + j, fd, off, budget)))
					return ret;
				run = UINT64_MAX;
			}
		}
	}
	return run == UINT64_MAX ? 0 : put_back(host, run, npages, fd, off, budget);
}

/* The slow way of a reset, said once (every later reset takes it too):
 * every page the guest touches afterwards faults again. */
static void warn_drop_all(const char *what, int err)
{
	static bool said;

	if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
		pr_warn("reset: %s (%s): every private page of guest memory dropped", what,
			strerror(err));
}

int gmem_drop_private(struct gmem *g)
{
	uint64_t *pmbuf, budget = COPY_BACK_MAX;
	struct gmem_layout l;
	int pm, ret = 0;

	if (!gmem_from_file(g))
		return -EOPNOTSUPP;
	gmem_layout_of(g, &l);
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		warn_drop_all("/proc/self/pagemap cannot be opened", errno);
	pmbuf = pm >= 0 ? malloc(CHUNK * sizeof(*pmbuf)) : NULL;
	for (size_t i = 0; i < g->nregions && pmbuf && !ret; i++)
		ret = reset_copies(&g->r[i], g->file_fd, l.r[i].offset, pm, pmbuf, &budget);
	if (g->hot.r.size && pmbuf && !ret)
		ret = reset_copies(&g->hot.r, g->file_fd, l.hot.offset, pm, pmbuf, &budget);
	if (pm >= 0 && (!pmbuf || ret))
		warn_drop_all("the pages /proc/self/pagemap shows written cannot be put back",
			      pmbuf ? -ret : ENOMEM);
	free(pmbuf);
	close_fd(&pm);
	if (!ret && pmbuf)
		return 0;
	/* No pagemap (no /proc in a jail), or it failed: every page dropped. */
	for (size_t i = 0; i < g->nregions; i++)
		if (madvise(g->r[i].host, g->r[i].size, MADV_DONTNEED) < 0)
			return -errno;
	if (g->hot.r.size && madvise(g->hot.r.host, g->hot.r.size, MADV_DONTNEED) < 0)
		return -errno;
	return 0;
}

/* Call fn for each data extent of fd in [0, end). The file system must say
 * where holes are at 4 KiB or finer (else a diff's extents would carry a
 * neighbour's zeros over the base). */
static int for_each_extent(int fd, uint64_t end, int (*fn)(void *, uint64_t, uint64_t), void *ctx,
			   char *err, size_t errlen)
{
	struct statfs sf;
	struct stat st;
	uint64_t off = 0;
	int ret;

	if (fstatfs(fd, &sf) < 0 || fstat(fd, &st) < 0)
		return err_set(err, errlen, -errno, "diff file: %s", strerror(errno));
	if ((uint64_t)sf.f_bsize > GMEM_PAGE)
		return err_set(
		    err, errlen, -EOPNOTSUPP,
		    "diff file: its file system's blocks (%llu bytes) are larger than a page",
		    (unsigned long long)sf.f_bsize);
	while (off < end) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return err_set(err, errlen, -errno, "diff file: SEEK_DATA: %s",
				       strerror(errno));
		if ((uint64_t)data >= end)
			break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return err_set(err, errlen, -errno, "diff file: SEEK_HOLE: %s",
				       strerror(errno));
		/* One extent over a sparse file: holes are not reported. */
		if (data == 0 && hole >= st.st_size && (uint64_t)st.st_blocks * 512 < end)
			return err_set(err, errlen, -EOPNOTSUPP,
				       "diff file: its file system does not report holes");
		uint64_t stop = (uint64_t)hole < end ? (uint64_t)hole : end;
		ret = fn(ctx, data, stop - data);
		if (ret)
			return err_set(err, errlen, ret, "diff file: copying pages: %s",
				       strerror(-ret));
		off = stop;
	}
	return 0;
}

struct into_gmem {
	struct gmem *g;
	struct gmem_layout l;
	int fd;
};

static int extent_into_gmem(void *ctx, uint64_t off, uint64_t len)
{
	struct into_gmem *c = ctx;

	for (uint32_t i = 0; i < c->l.nregions && len; i++) {
		const struct gmem_layout_region *r = &c->l.r[i];

		if (off < r->offset || off - r->offset >= r->size)
			continue;
		uint64_t n = r->size - (off - r->offset) < len ? r->size - (off - r->offset) : len;
		int ret = pread_full(c->fd, (uint8_t *)c->g->r[i].host + (off - r->offset), n, off);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	/* The hot-plug region's, plugged or not: the device's state, restored
	 * after, says which blocks the guest may reach. */
	const struct gmem_layout_hot *h = &c->l.hot;
	if (len && h->size && off >= h->offset && off - h->offset < h->size) {
		uint64_t n = h->size - (off - h->offset) < len ? h->size - (off - h->offset) : len;

		return pread_full(c->fd, (uint8_t *)c->g->hot.r.host + (off - h->offset), n, off);
	}
	return 0;
}

static int check_diff_size(int fd, const char *what, uint64_t want, char *err, size_t errlen)
{
	struct stat st;
	int ret = regular_file(fd, &st, what, err, errlen);

	if (ret)
		return ret;
	if ((uint64_t)st.st_size != want)
		return err_set(err, errlen, -EINVAL, "%s: %llu bytes, the memory layout has %llu",
			       what, (unsigned long long)st.st_size, (unsigned long long)want);
	return 0;
}

int gmem_apply_diff(struct gmem *g, int diff_fd, char *err, size_t errlen)
{
	struct into_gmem c = {.g = g, .fd = diff_fd};
	int ret;

	gmem_layout_of(g, &c.l);
	ret = check_diff_size(diff_fd, "diff file", gmem_layout_file_size(&c.l), err, errlen);
	if (ret)
		return ret;
	return for_each_extent(diff_fd, gmem_layout_file_size(&c.l), extent_into_gmem, &c, err,
			       errlen);
}

struct into_file {
	int base, diff;
	uint8_t *buf;
};

#define COPY_BUF (1u << 20)

static int extent_into_file(void *ctx, uint64_t off, uint64_t len)
{
	struct into_file *c = ctx;

	while (len) {
		uint64_t n = len < COPY_BUF ? len : COPY_BUF;
		int ret = pread_full(c->diff, c->buf, n, off);
		if (!ret)
			ret = pwrite_full(c->base, c->buf, n, off);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

int gmem_file_apply_diff(int base_fd, int diff_fd, const struct gmem_layout *l, char *err,
			 size_t errlen)
{
	struct into_file c = {.base = base_fd, .diff = diff_fd};
	uint64_t size;
	int ret;

	ret = gmem_layout_check(l, err, errlen);
	if (ret)
		return ret;
	size = gmem_layout_file_size(l);
	ret = check_diff_size(base_fd, "memory file", size, err, errlen);
	if (!ret)
		ret = check_diff_size(diff_fd, "diff file", size, err, errlen);
	if (ret)
		return ret;
	c.buf = malloc(COPY_BUF);
	if (!c.buf)
		return -ENOMEM;
	ret = for_each_extent(diff_fd, size, extent_into_file, &c, err, errlen);
	free(c.buf);
	return ret;
}
