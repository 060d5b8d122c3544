/* gmem_snap: guest memory to a sparse memory file and back (issue 12). The
 * dirty bitmap's bit logic is checked exhaustively against a naive model;
 * files are real files under /tmp, read back with SEEK_DATA/SEEK_HOLE. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/gmem.h"
#include "core/gmem_int.h"
#include "core/gmem_snap.h"
#include "core/wire.h"
#include "vq.h"
#include "x86/layout.h"

#define PG GMEM_PAGE
#define W  BITS_PER_WORD

static int tmp_file(void)
{
	char name[] = "/tmp/gmem-snap-XXXXXX";
	int fd = mkstemp(name);

	cr_assert_geq(fd, 0);
	unlink(name);
	return fd;
}

/* Which pages of fd's first npages hold data (SEEK_DATA/SEEK_HOLE). */
static void data_pages(int fd, uint64_t npages, bool *out)
{
	off_t off = 0, end = (off_t)(npages * PG);

	memset(out, 0, npages);
	while (off < end) {
		off_t d = lseek(fd, off, SEEK_DATA);
		if (d < 0) {
			cr_assert_eq(errno, ENXIO);
			return;
		}
		off_t h = lseek(fd, d, SEEK_HOLE);
		cr_assert_geq(h, d);
		for (uint64_t p = d / PG; p < (uint64_t)(h + PG - 1) / PG && p < npages; p++)
			out[p] = true;
		off = h;
	}
}

/* fd's data pages are exactly want[0..n) (page numbers) of npages. */
static void assert_data_pages(int fd, uint64_t npages, const uint64_t *want, size_t n)
{
	bool *got = malloc(npages), *exp = calloc(npages, 1);

	cr_assert(got && exp);
	for (size_t i = 0; i < n; i++)
		exp[want[i]] = true;
	data_pages(fd, npages, got);
	for (uint64_t p = 0; p < npages; p++)
		cr_assert_eq(got[p], exp[p], "page %llu: data %d, expected %d",
			     (unsigned long long)p, got[p], exp[p]);
	free(got);
	free(exp);
}

static void fill_page(struct gmem *g, uint64_t gpa, uint8_t v)
{
	uint8_t buf[PG];

	memset(buf, v, sizeof(buf));
	cr_assert_eq(gmem_write(g, gpa, buf, sizeof(buf)), 0);
}

/* The file's bytes [off, off+len) equal p's. */
static void assert_file_is(int fd, uint64_t off, const void *p, uint64_t len)
{
	uint8_t *buf = malloc(len);

	cr_assert_not_null(buf);
	cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	cr_assert_eq(memcmp(buf, p, len), 0, "file differs at [%#llx, +%#llx)",
		     (unsigned long long)off, (unsigned long long)len);
	free(buf);
}

static bool dirty(const struct gmem *g, size_t region, uint64_t page)
{
	return gmem_bits_test(g->dirty[region], page);
}

static void assert_clean(const struct gmem *g)
{
	for (size_t i = 0; i < g->nregions; i++)
		for (uint64_t p = 0; p < g->r[i].size / PG; p++)
			cr_assert(!dirty(g, i, p), "region %zu page %llu dirty", i,
				  (unsigned long long)p);
}

static void clear_bits(struct gmem *g)
{
	for (size_t i = 0; i < g->nregions; i++)
		memset(g->dirty[i], 0, gmem_bits_words(g->r[i].size / PG) * sizeof(unsigned long));
}

/* --- the bitmap, exhaustively --------------------------------------------- */

#define NB 200 /* bits: three full words and a partial one */
#define NW ((NB + W - 1) / W)

static bool bit(const unsigned long *b, size_t i)
{
	return (b[i / W] >> (i % W)) & 1;
}

Test(gmem_bits, set_every_range)
{
	unsigned long b[NW + 1];

	for (uint64_t first = 0; first <= NB; first++)
		for (uint64_t n = 0; first + n <= NB; n++) {
			memset(b, 0, sizeof(b));
			gmem_bits_set(b, first, n);
			for (uint64_t i = 0; i < (NW + 1) * W; i++)
				cr_assert_eq(bit(b, i), i >= first && i < first + n,
					     "first %llu n %llu bit %llu",
					     (unsigned long long)first, (unsigned long long)n,
					     (unsigned long long)i);
		}
}

Test(gmem_bits, set_ors_into_what_is_there)
{
	unsigned long b[NW] = {0x5, 0, 0, 0};

	gmem_bits_set(b, 1, 1);
	cr_assert_eq(b[0], 0x7);
	gmem_bits_set(b, W - 1, 2);
	cr_assert_eq(b[0], 0x7 | (1UL << (W - 1)));
	cr_assert_eq(b[1], 1);
}

/* dst | src over nbits; dst's bits at and past nbits never change, whatever
 * src holds there (KVM's last word may carry anything past the slot). */
Test(gmem_bits, or_every_length_ignores_bits_past_the_end)
{
	const unsigned long pats[] = {
	    0, ~0UL, 0xaaaaaaaaaaaaaaaaUL, 0x0123456789abcdefUL, 1UL << (W - 1), 1};

	for (uint64_t nbits = 0; nbits <= NB; nbits++)
		for (size_t sp = 0; sp < ARRAY_SIZE(pats); sp++)
			for (size_t dp = 0; dp < ARRAY_SIZE(pats); dp++) {
				unsigned long src[NW], dst[NW], before[NW];

				for (size_t w = 0; w < NW; w++) {
					src[w] = pats[sp] ^ (w * 0x1111111111111111UL);
					dst[w] = before[w] = pats[dp] >> w;
				}
				gmem_bits_or(dst, src, nbits);
				for (uint64_t i = 0; i < NW * W; i++) {
					bool want = bit(before, i) || (i < nbits && bit(src, i));
					cr_assert_eq(bit(dst, i), want, "nbits %llu bit %llu",
						     (unsigned long long)nbits,
						     (unsigned long long)i);
				}
			}
}

Test(gmem_bits, words)
{
	cr_assert_eq(gmem_bits_words(0), 0);
	cr_assert_eq(gmem_bits_words(1), 1);
	cr_assert_eq(gmem_bits_words(W), 1);
	cr_assert_eq(gmem_bits_words(W + 1), 2);
}

/* --- flint's own writes are marked ---------------------------------------- */

Test(gmem_dirty, write_and_ptr_w_mark_the_pages_they_touch)
{
	struct gmem *g;
	struct gmem_opts o = {.track_dirty = true};
	uint16_t v = 0xabcd;

	cr_assert_eq(gmem_create_opts(&g, 1 << 20, &o), 0);
	assert_clean(g);
	/* Two bytes across the boundary of pages 1 and 2. */
	cr_assert_eq(gmem_write(g, 2 * PG - 1, &v, sizeof(v)), 0);
	cr_assert(dirty(g, 0, 1) && dirty(g, 0, 2));
	cr_assert(!dirty(g, 0, 0) && !dirty(g, 0, 3));
	/* gmem_ptr is for reading: it marks nothing. */
	cr_assert_not_null(gmem_ptr(g, 10 * PG, PG));
	cr_assert(!dirty(g, 0, 10));
	cr_assert_not_null(gmem_ptr_w(g, 10 * PG + 8, 3 * PG));
	for (uint64_t p = 9; p <= 14; p++)
		cr_assert_eq(dirty(g, 0, p), p >= 10 && p <= 13, "page %llu",
			     (unsigned long long)p);
	/* A failed write or pointer marks nothing. */
	clear_bits(g);
	cr_assert_eq(gmem_write(g, (1 << 20) - 1, &v, sizeof(v)), -EFAULT);
	cr_assert_null(gmem_ptr_w(g, (1 << 20) - 1, 2));
	assert_clean(g);
	/* The last page; by host address too. */
	cr_assert_eq(gmem_write(g, (1 << 20) - 2, &v, sizeof(v)), 0);
	cr_assert(dirty(g, 0, 255));
	gmem_mark_dirty_host(g, (uint8_t *)gmem_region(g, 0)->host + 7 * PG + 100, PG);
	cr_assert(dirty(g, 0, 7) && dirty(g, 0, 8));
	gmem_mark_dirty_host(g, &v, sizeof(v)); /* not guest memory: ignored */
	gmem_destroy(g);
}

Test(gmem_dirty, off_without_tracking)
{
	struct gmem *g;
	uint32_t v = 1;

	cr_assert_eq(gmem_create(&g, 1 << 20), 0);
	cr_assert_null(g->dirty[0]);
	cr_assert_eq(gmem_write(g, 0, &v, sizeof(v)), 0);
	cr_assert_not_null(gmem_ptr_w(g, 0, 4));
	gmem_mark_dirty(g, 0, 4);
	gmem_mark_dirty_host(g, gmem_region(g, 0)->host, 4);
	unsigned long kvm[4] = {1};
	cr_assert_eq(gmem_dirty_merge(g, 0, kvm, 256), -EINVAL);
	gmem_destroy(g);
}

/* Marks are split at the MMIO hole: each region's own pages, nothing for the
 * hole, no wrap for a range near 2^64. */
Test(gmem_dirty, marks_split_at_region_boundaries)
{
	struct gmem *g;
	struct gmem_opts o = {.track_dirty = true};
	uint64_t size = MMIO_GAP_START + (8 << 20);
	uint64_t low_pages = MMIO_GAP_START / PG;

	cr_assert_eq(gmem_create_opts(&g, size, &o), 0);
	cr_assert_eq(gmem_nregions(g), 2);
	gmem_mark_dirty(g, MMIO_GAP_START - PG, MMIO_GAP_END - MMIO_GAP_START + 2 * PG);
	cr_assert(dirty(g, 0, low_pages - 1));
	cr_assert(!dirty(g, 0, low_pages - 2));
	cr_assert(dirty(g, 1, 0));
	cr_assert(!dirty(g, 1, 1));
	clear_bits(g);
	gmem_mark_dirty(g, MMIO_GAP_START, 4096);	 /* in the hole */
	gmem_mark_dirty(g, UINT64_MAX - 10, 100);	 /* wraps */
	gmem_mark_dirty(g, MMIO_GAP_END + (8 << 20), 1); /* past the end */
	gmem_mark_dirty(g, 0, 0);
	assert_clean(g);
	gmem_mark_dirty(g, MMIO_GAP_END + (8 << 20) - 1, UINT64_MAX); /* to the end */
	cr_assert(dirty(g, 1, (8 << 20) / PG - 1));
	gmem_destroy(g);
}

/* A fake KVM_GET_DIRTY_LOG bitmap: its bits past the slot's pages are
 * ignored, a wrong slot or size refused. */
Test(gmem_dirty, merge_a_kvm_bitmap)
{
	struct gmem *g;
	struct gmem_opts o = {.track_dirty = true};
	uint64_t npages = 100; /* one full word and 36 bits */
	unsigned long kvm[2] = {(1UL << 0) | (1UL << 63), (1UL << 35) | (1UL << 36) | (~0UL << 40)};

	cr_assert_eq(gmem_create_opts(&g, npages * PG, &o), 0);
	cr_assert_eq(gmem_dirty_merge(g, 1, kvm, npages), -EINVAL);
	cr_assert_eq(gmem_dirty_merge(g, 0, kvm, npages + 1), -EINVAL);
	cr_assert_eq(gmem_dirty_merge(g, 0, kvm, npages - 1), -EINVAL);
	assert_clean(g);
	fill_page(g, 50 * PG, 1); /* flint's own */
	cr_assert_eq(gmem_dirty_merge(g, 0, kvm, npages), 0);
	for (uint64_t p = 0; p < npages; p++)
		cr_assert_eq(dirty(g, 0, p), p == 0 || p == 63 || p == 99 || p == 50, "page %llu",
			     (unsigned long long)p);
	cr_assert_eq(g->dirty[0][1] >> 36, 0, "bits past the slot stay clear");
	gmem_destroy(g);
}

/* --- the region table ------------------------------------------------------ */

Test(gmem_layout, for_sizes_and_of_a_gmem)
{
	struct gmem_layout l, m;
	struct gmem *g;

	gmem_layout_for_size(64 << 20, &l);
	cr_assert_eq(l.nregions, 1);
	cr_assert_eq(gmem_layout_file_size(&l), 64 << 20);
	cr_assert_eq(gmem_layout_check(&l, NULL, 0), 0);
	gmem_layout_for_size(MMIO_GAP_START + (2 << 20), &l);
	cr_assert_eq(l.nregions, 2);
	cr_assert_eq(l.r[1].gpa, MMIO_GAP_END);
	cr_assert_eq(l.r[1].offset, MMIO_GAP_START);
	cr_assert_eq(gmem_layout_file_size(&l), MMIO_GAP_START + (2 << 20));
	cr_assert_eq(gmem_create(&g, MMIO_GAP_START + (2 << 20)), 0);
	gmem_layout_of(g, &m);
	cr_assert_eq(memcmp(&l, &m, sizeof(l)), 0);
	gmem_destroy(g);
}

static void assert_refused(const struct gmem_layout *l, const char *needle)
{
	char err[256] = "";

	cr_assert_eq(gmem_layout_check(l, err, sizeof(err)), -EINVAL, "%s", needle);
	cr_assert_not_null(strstr(err, needle), "'%s' lacks '%s'", err, needle);
}

Test(gmem_layout, check_refuses_what_flint_does_not_map)
{
	struct gmem_layout good, l;

	gmem_layout_for_size(MMIO_GAP_START + (2 << 20), &good);
	l = good, l.nregions = 0;
	assert_refused(&l, "0 regions");
	l = good, l.nregions = 3;
	assert_refused(&l, "3 regions");
	l = good, l.r[0].gpa = 0x1000;
	assert_refused(&l, "region 0 gpa 0x1000");
	l = good, l.r[1].gpa = MMIO_GAP_START; /* in the hole */
	assert_refused(&l, "region 1 gpa");
	l = good, l.r[1].offset = 0; /* overlapping region 0 in the file */
	assert_refused(&l, "region 1 file offset");
	l = good, l.r[0].size -= PG, l.r[1].size += PG; /* same total, moved split */
	assert_refused(&l, "region 0 size");
	l = good, l.r[1].size = 100;
	assert_refused(&l, "multiple of 4 KiB");
	l = good, l.r[1].size = UINT64_MAX - 4095;
	assert_refused(&l, "too large");
	gmem_layout_for_size(64 << 20, &l);
	l.nregions = 2; /* a second region the size does not need */
	l.r[1] = (struct gmem_layout_region){.gpa = MMIO_GAP_END, .size = PG, .offset = 64 << 20};
	assert_refused(&l, "2 regions");
	gmem_layout_for_size(64 << 20, &l);
	l.r[0].size = 0;
	assert_refused(&l, "non-zero");
}

Test(gmem_layout, round_trip_truncation_and_version)
{
	struct gmem_layout l, back, keep;
	struct wbuf w;
	struct rbuf r;
	char err[256];

	gmem_layout_for_size(MMIO_GAP_START + (2 << 20), &l);
	wbuf_init(&w);
	cr_assert_eq(gmem_layout_save(&l, &w), 0);
	cr_assert_eq(w.len, 8 + 2 * 24);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), 0);
	cr_assert(rbuf_done(&r));
	cr_assert_eq(memcmp(&l, &back, sizeof(l)), 0);
	/* Every truncation: -EBADMSG, the destination untouched. */
	memset(&keep, 0x5a, sizeof(keep));
	for (size_t n = 0; n < w.len; n++) {
		back = keep;
		rbuf_init(&r, w.p, n);
		cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EBADMSG, "len %zu",
			     n);
		cr_assert_not_null(strstr(err, "truncated"));
		cr_assert_eq(memcmp(&back, &keep, sizeof(keep)), 0);
	}
	/* Another version; a region moved. */
	w.p[0] = 2;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "version 2"));
	w.p[0] = 1;
	w.p[8] = 0x10; /* region 0 gpa 0x10 */
	rbuf_init(&r, w.p, w.len);
	back = keep;
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "region 0 gpa"), "%s", err);
	cr_assert_eq(memcmp(&back, &keep, sizeof(keep)), 0);
	w.p[8] = 0;
	w.p[4] = 9; /* nregions */
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	wbuf_free(&w);
}

/* --- full snapshot, file-backed restore ---------------------------------- */

#define SZ  (8ULL << 20)
#define NPG (SZ / PG)

/* Pages 1, 2, 3 (one run), 700 and the last hold data; page 9 was written
 * and zeroed again; the rest never touched. */
static const uint64_t data_pgs[] = {1, 2, 3, 700, NPG - 1};

static struct gmem *guest_with_data(bool track)
{
	struct gmem_opts o = {.track_dirty = track};
	struct gmem *g;

	cr_assert_eq(gmem_create_opts(&g, SZ, &o), 0);
	for (size_t i = 0; i < ARRAY_SIZE(data_pgs); i++)
		fill_page(g, data_pgs[i] * PG, 0x10 + i);
	fill_page(g, 9 * PG, 0x77);
	fill_page(g, 9 * PG, 0);
	/* A page that is only read is not data either. */
	cr_assert_eq(*(volatile uint8_t *)gmem_ptr(g, 20 * PG, 1), 0);
	return g;
}

static void full_save_leaves_holes(enum gmem_scan how)
{
	struct gmem *g = guest_with_data(false);
	int fd = tmp_file();
	char err[256] = "";
	struct stat st;

	cr_assert_eq(write(fd, "old content", 11), 11);
	cr_assert_eq(gmem_save_full_scan(g, fd, how, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, SZ);
	assert_data_pages(fd, NPG, data_pgs, ARRAY_SIZE(data_pgs));
	cr_assert_leq((uint64_t)st.st_blocks * 512, (ARRAY_SIZE(data_pgs) + 4) * PG,
		      "%llu bytes allocated", (unsigned long long)st.st_blocks * 512);
	assert_file_is(fd, 0, gmem_region(g, 0)->host, SZ);
	close(fd);
	gmem_destroy(g);
}

Test(gmem_snap, full_save_leaves_holes_mincore)
{
	full_save_leaves_holes(GMEM_SCAN_MINCORE);
}

Test(gmem_snap, full_save_leaves_holes_pagemap)
{
	full_save_leaves_holes(GMEM_SCAN_PAGEMAP);
}

Test(gmem_snap, full_save_leaves_holes_reading_every_page)
{
	full_save_leaves_holes(GMEM_SCAN_ALL);
}

Test(gmem_snap, full_save_leaves_holes_auto)
{
	full_save_leaves_holes(GMEM_SCAN_AUTO);
}

Test(gmem_snap, full_save_over_the_hole)
{
	struct gmem_opts o = {.track_dirty = true};
	uint64_t size = MMIO_GAP_START + (4 << 20), low = MMIO_GAP_START / PG;
	struct gmem *g, *r;
	struct gmem_layout l;
	int fd = tmp_file();
	char err[256] = "";

	cr_assert_eq(gmem_create_opts(&g, size, &o), 0);
	fill_page(g, MMIO_GAP_START - PG, 0xaa);
	fill_page(g, MMIO_GAP_END, 0xbb);
	fill_page(g, MMIO_GAP_END + (4 << 20) - PG, 0xcc);
	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	uint64_t want[] = {low - 1, low, low + 1023};
	assert_data_pages(fd, size / PG, want, ARRAY_SIZE(want));
	assert_clean(g); /* a full snapshot starts the next diff afresh */
	gmem_layout_of(g, &l);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(*(uint8_t *)gmem_ptr(r, MMIO_GAP_START - 1, 1), 0xaa);
	cr_assert_eq(*(uint8_t *)gmem_ptr(r, MMIO_GAP_END, 1), 0xbb);
	cr_assert_eq(*(uint8_t *)gmem_ptr(r, MMIO_GAP_END + (4 << 20) - 1, 1), 0xcc);
	cr_assert_eq(*(uint8_t *)gmem_ptr(r, 0, 1), 0);
	cr_assert_null(gmem_ptr(r, MMIO_GAP_START, 1));
	gmem_destroy(r);
	gmem_destroy(g);
	close(fd);
}

Test(gmem_snap, restore_is_byte_identical_and_private)
{
	struct gmem *g = guest_with_data(false), *r, *r2;
	struct gmem_layout l;
	struct gmem_opts o = {.track_dirty = true};
	int fd = tmp_file();
	char err[256] = "";
	uint8_t *orig = malloc(SZ);

	cr_assert_not_null(orig);
	memcpy(orig, gmem_region(g, 0)->host, SZ);
	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	gmem_destroy(g);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, &o, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gmem_size(r), SZ);
	cr_assert_eq(gmem_slot_flags(r), KVM_MEM_LOG_DIRTY_PAGES);
	cr_assert_eq(memcmp(gmem_region(r, 0)->host, orig, SZ), 0);
	/* The guest (and flint) write: the file does not change, a second VM
	 * from the same file sees the snapshot, the write is tracked. */
	fill_page(r, 2 * PG, 0xee);
	*(volatile uint8_t *)gmem_ptr(r, 30 * PG, 1) = 1;
	cr_assert(dirty(r, 0, 2));
	assert_file_is(fd, 0, orig, SZ);
	cr_assert_eq(gmem_create_from_file(&r2, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(memcmp(gmem_region(r2, 0)->host, orig, SZ), 0);
	cr_assert_eq(*(uint8_t *)gmem_ptr(r, 2 * PG, 1), 0xee);
	gmem_destroy(r2);
	gmem_destroy(r);
	close(fd);
	free(orig);
}

/* A restored VM's pages that nobody touched since, and that the page cache
 * dropped, show as not resident; the next full snapshot must still carry
 * them (they hold the first file's data). */
Test(gmem_snap, full_save_of_a_file_backed_guest_keeps_untouched_pages)
{
	struct gmem *g = guest_with_data(false), *r;
	struct gmem_layout l;
	int fd = tmp_file(), fd2 = tmp_file();
	char err[256] = "";
	uint8_t *orig = malloc(SZ);

	cr_assert_not_null(orig);
	memcpy(orig, gmem_region(g, 0)->host, SZ);
	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	gmem_destroy(g);
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	fill_page(r, 5 * PG, 0x55);
	memset(orig + 5 * PG, 0x55, PG);
	cr_assert_eq(gmem_save_full_scan(r, fd2, GMEM_SCAN_MINCORE, err, sizeof(err)), 0, "%s",
		     err);
	uint64_t want[] = {1, 2, 3, 5, 700, NPG - 1};
	assert_data_pages(fd2, NPG, want, ARRAY_SIZE(want));
	assert_file_is(fd2, 0, orig, SZ);
	/* Not into the file it maps: that would truncate its own memory. */
	cr_assert_eq(gmem_save_full(r, fd, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "mapped from"), "%s", err);
	assert_file_is(fd, 0, orig, 5 * PG);
	gmem_destroy(r);
	close(fd);
	close(fd2);
	free(orig);
}

Test(gmem_snap, restore_refusals)
{
	struct gmem *g = guest_with_data(false), *r = (void *)1;
	struct gmem_layout l, bad;
	struct gmem_opts huge = {.huge_2m = true};
	int fd = tmp_file(), p[2];
	char err[256] = "";

	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	/* A layout outside flint's map. */
	bad = l;
	bad.r[0].gpa = 0x100000;
	cr_assert_eq(gmem_create_from_file(&r, &bad, fd, NULL, err, sizeof(err)), -EINVAL);
	cr_assert_null(r);
	cr_assert_not_null(strstr(err, "region 0 gpa"), "%s", err);
	bad = l;
	bad.nregions = 2;
	bad.r[1] = (struct gmem_layout_region){.gpa = 0x1000000, .size = PG, .offset = SZ};
	cr_assert_eq(gmem_create_from_file(&r, &bad, fd, NULL, err, sizeof(err)), -EINVAL);
	/* Huge pages. */
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, &huge, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "huge"), "%s", err);
	/* A file too short. */
	cr_assert_eq(ftruncate(fd, SZ - PG), 0);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), -EINVAL);
	cr_assert_null(r);
	cr_assert_not_null(strstr(err, "needs"), "%s", err);
	/* Not a regular file. */
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(gmem_create_from_file(&r, &l, p[0], NULL, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "regular"), "%s", err);
	cr_assert_eq(gmem_save_full(g, p[1], err, sizeof(err)), -EINVAL);
	close(p[0]);
	close(p[1]);
	close(fd);
	gmem_destroy(g);
}

/* --- diff snapshots -------------------------------------------------------- */

Test(gmem_snap, diff_holds_exactly_the_dirty_pages)
{
	struct gmem *g = guest_with_data(true);
	int full = tmp_file(), diff = tmp_file(), diff2 = tmp_file();
	char err[256] = "";
	unsigned long kvm[gmem_bits_words(NPG)];

	cr_assert_eq(gmem_save_full(g, full, err, sizeof(err)), 0, "%s", err);
	assert_clean(g);
	/* flint writes page 4 and zeroes page 700; the guest (behind flint's
	 * back, as KVM would log) writes pages 64 and the last. */
	fill_page(g, 4 * PG, 0x44);
	fill_page(g, 700 * PG, 0);
	memset(gmem_ptr(g, 64 * PG, PG), 0x64, PG);
	memset(gmem_ptr(g, (NPG - 1) * PG, PG), 0x99, PG);
	memset(kvm, 0, sizeof(kvm));
	kvm[1] = 1;				      /* page 64 */
	kvm[(NPG - 1) / W] |= 1UL << ((NPG - 1) % W); /* the last page */
	cr_assert_eq(gmem_dirty_merge(g, 0, kvm, NPG), 0);
	cr_assert_eq(gmem_save_diff(g, diff, err, sizeof(err)), 0, "%s", err);
	uint64_t want[] = {4, 64, 700, NPG - 1};
	assert_data_pages(diff, NPG, want, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_file_is(diff, want[i] * PG, gmem_ptr(g, want[i] * PG, PG), PG);
	assert_clean(g);
	/* Nothing since: an empty diff of the same size. */
	cr_assert_eq(gmem_save_diff(g, diff2, err, sizeof(err)), 0, "%s", err);
	assert_data_pages(diff2, NPG, NULL, 0);
	struct stat st;
	cr_assert_eq(fstat(diff2, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, SZ);
	close(full);
	close(diff);
	close(diff2);
	gmem_destroy(g);
}

/* The diff over the full gives the latest memory: written over a copy of the
 * full file, applied to a copy afterwards, or laid over a file-backed
 * restore (which leaves the full file alone). */
Test(gmem_snap, diff_over_full_is_the_latest_content)
{
	struct gmem *g = guest_with_data(true), *r;
	struct gmem_layout l;
	int full = tmp_file(), diff = tmp_file(), copy = tmp_file(), over = tmp_file();
	char err[256] = "";
	uint8_t *base = malloc(SZ), *latest = malloc(SZ);

	cr_assert(base && latest);
	gmem_layout_of(g, &l);
	cr_assert_eq(gmem_save_full(g, full, err, sizeof(err)), 0, "%s", err);
	memcpy(base, gmem_region(g, 0)->host, SZ);
	fill_page(g, 1 * PG, 0);      /* data back to zeros */
	fill_page(g, 3 * PG, 0x33);   /* changed */
	fill_page(g, 100 * PG, 0x42); /* new */
	memcpy(latest, gmem_region(g, 0)->host, SZ);
	/* A copy of the full file, for the diff to be written over. */
	cr_assert_eq(pwrite(over, base, SZ, 0), (ssize_t)SZ);
	cr_assert_eq(pwrite(copy, base, SZ, 0), (ssize_t)SZ);
	cr_assert_eq(gmem_save_diff(g, diff, err, sizeof(err)), 0, "%s", err);
	fill_page(g, 1 * PG, 0);
	fill_page(g, 3 * PG, 0x33);
	fill_page(g, 100 * PG, 0x42);
	cr_assert_eq(gmem_save_diff(g, over, err, sizeof(err)), 0, "%s", err);
	assert_file_is(over, 0, latest, SZ);
	cr_assert_eq(gmem_file_apply_diff(copy, diff, &l, err, sizeof(err)), 0, "%s", err);
	assert_file_is(copy, 0, latest, SZ);
	cr_assert_eq(gmem_create_from_file(&r, &l, full, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gmem_apply_diff(r, diff, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(memcmp(gmem_region(r, 0)->host, latest, SZ), 0);
	assert_file_is(full, 0, base, SZ);
	/* A diff of another size is refused. */
	cr_assert_eq(ftruncate(diff, SZ + PG), 0);
	cr_assert_eq(gmem_apply_diff(r, diff, err, sizeof(err)), -EINVAL);
	cr_assert_eq(gmem_file_apply_diff(copy, diff, &l, err, sizeof(err)), -EINVAL);
	gmem_destroy(r);
	gmem_destroy(g);
	close(full);
	close(diff);
	close(copy);
	close(over);
	free(base);
	free(latest);
}

Test(gmem_snap, diff_refusals_keep_the_bitmap)
{
	struct gmem *g = guest_with_data(false), *t;
	struct gmem_opts o = {.track_dirty = true};
	int fd = tmp_file(), p[2];
	char err[256] = "";

	cr_assert_eq(gmem_save_diff(g, fd, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "tracking"), "%s", err);
	gmem_destroy(g);
	cr_assert_eq(gmem_create_opts(&t, SZ, &o), 0);
	fill_page(t, 8 * PG, 8);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(gmem_save_diff(t, p[1], err, sizeof(err)), -EINVAL);
	cr_assert(dirty(t, 0, 8));
	/* A write that fails (a read-only fd of the right size) gives every
	 * bit back. */
	char path[64];
	cr_assert_eq(ftruncate(fd, SZ), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(ro, 0);
	cr_assert_eq(gmem_save_diff(t, ro, err, sizeof(err)), -EBADF);
	cr_assert_not_null(strstr(err, "writing dirty pages"), "%s", err);
	cr_assert(dirty(t, 0, 8), "the failed diff lost page 8");
	close(ro);
	close(p[0]);
	close(p[1]);
	close(fd);
	gmem_destroy(t);
}

/* --- the virtqueue marks what the device writes ---------------------------- */

Test(gmem_dirty, vq_marks_writable_buffers_and_the_used_ring)
{
	struct gmem *g;
	struct gmem_opts o = {.track_dirty = true};
	struct vq q;
	struct vq_seg segs[4];
	struct vq_chain c = {.seg = segs, .cap = 4};
	const uint64_t desc = 0x1000, avail = 0x2000, used = 0x3000;

	cr_assert_eq(gmem_create_opts(&g, 1 << 20, &o), 0);
	vq_reset(&q);
	cr_assert_eq(vq_activate(&q, g, 16, desc, avail, used, true), 0);
	struct vring_desc *d = gmem_ptr(g, desc, 2 * sizeof(*d));
	d[0] =
	    (struct vring_desc){.addr = 0x10000, .len = 100, .flags = VRING_DESC_F_NEXT, .next = 1};
	d[1] = (struct vring_desc){.addr = 0x20ff0, .len = 0x20, .flags = VRING_DESC_F_WRITE};
	struct vring_avail *a = gmem_ptr(g, avail, sizeof(*a) + 16 * 2);
	a->ring[0] = 0;
	a->idx = 1;
	clear_bits(g);
	cr_assert_eq(vq_pop(&q, &c), 1);
	/* The writable buffer's two pages, not the readable one. */
	cr_assert(dirty(g, 0, 0x20) && dirty(g, 0, 0x21));
	cr_assert(!dirty(g, 0, 0x10));
	cr_assert(!dirty(g, 0, used / PG));
	cr_assert_eq(vq_push(&q, c.head, 0x20), 0);
	cr_assert(dirty(g, 0, used / PG), "the used ring");
	clear_bits(g);
	vq_enable_notify(&q); /* writes avail_event in the used ring */
	cr_assert(dirty(g, 0, used / PG));
	gmem_destroy(g);
}

/* A reset in place: every page written since the restore (by the guest,
 * by flint, a diff laid over it) reads the memory file again; pages never
 * touched too; the file itself never changed. Only a File-backed restore's
 * memory can be dropped so (anonymous memory would read back zeros). */
/* pagemap's entry for the page at p. */
static uint64_t pagemap_of(const void *p)
{
	uint64_t e = 0;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	cr_assert_geq(pm, 0);
	cr_assert_eq(pread(pm, &e, sizeof(e), (off_t)((uintptr_t)p / PG * sizeof(e))),
		     (ssize_t)sizeof(e));
	close(pm);
	return e;
}

/* A page the guest only read stays mapped, and one it wrote is read back
 * from the file in place (its nested page table entry stays with both),
 * so that a reset costs no fault on either. */
Test(gmem_snap, drop_private_keeps_pages_only_read)
{
	struct gmem *g = guest_with_data(false), *r;
	struct gmem_layout l;
	int fd = tmp_file();
	char err[256] = "";
	volatile uint8_t *rd, *wr;

	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	gmem_destroy(g);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	rd = gmem_ptr(r, 1 * PG, 1);
	wr = gmem_ptr(r, 2 * PG, 1);
	cr_assert_eq(*rd, 0x10);
	*wr = 0x77;
	cr_assert(pagemap_of((const void *)rd) & (1ULL << 63), "the page read is mapped");
	cr_assert_not(pagemap_of((const void *)wr) & (1ULL << 61), "the page written is a copy");
	cr_assert_eq(gmem_drop_private(r), 0);
	cr_assert(pagemap_of((const void *)rd) & (1ULL << 63), "the page only read was dropped");
	cr_assert(pagemap_of((const void *)wr) & (1ULL << 63), "the written page was not kept");
	cr_assert_eq(*wr, *(uint8_t *)gmem_ptr(r, 2 * PG + 1, 1), "the page's old byte is back");
	cr_assert_neq(*wr, 0x77);
	gmem_destroy(r);
	close(fd);
}

Test(gmem_snap, drop_private_reads_the_file_again)
{
	struct gmem *g = guest_with_data(false), *r;
	struct gmem_layout l;
	int fd = tmp_file(), diff = tmp_file();
	char err[256] = "";
	uint8_t *orig = malloc(SZ);

	cr_assert_not_null(orig);
	memcpy(orig, gmem_region(g, 0)->host, SZ);
	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	cr_assert_not(gmem_from_file(g));
	cr_assert_eq(gmem_drop_private(g), -EOPNOTSUPP);
	cr_assert_eq(*(uint8_t *)gmem_ptr(g, 1 * PG, 1), 0x10, "anonymous memory was dropped");
	gmem_destroy(g);

	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert(gmem_from_file(r));
	for (int round = 0; round < 3; round++) {
		fill_page(r, 1 * PG, 0xee);   /* over data */
		fill_page(r, 500 * PG, 0x5a); /* over a hole */
		*(volatile uint8_t *)gmem_ptr(r, (NPG - 1) * PG + 7, 1) = 0x99;
		cr_assert_neq(memcmp(gmem_region(r, 0)->host, orig, SZ), 0);
		cr_assert_eq(gmem_drop_private(r), 0);
		cr_assert_eq(memcmp(gmem_region(r, 0)->host, orig, SZ), 0, "round %d", round);
		assert_file_is(fd, 0, orig, SZ);
	}
	/* A diff's pages laid over it go too. */
	fill_page(r, 3 * PG, 0x33);
	cr_assert_eq(pwrite(diff, gmem_ptr(r, 3 * PG, PG), PG, 3 * PG), (ssize_t)PG);
	cr_assert_eq(ftruncate(diff, SZ), 0);
	cr_assert_eq(gmem_drop_private(r), 0);
	cr_assert_eq(gmem_apply_diff(r, diff, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(*(uint8_t *)gmem_ptr(r, 3 * PG, 1), 0x33);
	cr_assert_eq(gmem_drop_private(r), 0);
	cr_assert_eq(memcmp(gmem_region(r, 0)->host, orig, SZ), 0);
	gmem_destroy(r);
	close(fd);
	close(diff);
	free(orig);
}
