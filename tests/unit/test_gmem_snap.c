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
	/* Another version (a newer one; 0); a region moved. */
	w.p[0] = GMEM_LAYOUT_VERSION + 1;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "version 3"), "%s", err);
	w.p[0] = 0;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "version 0"), "%s", err);
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

/* A memory file a host program shrinks under the restored VM is told, with
 * both sizes (flint stops the VM rather than let the guest's next touch of
 * a page cut off wait in KVM for ever); one that grows is not. Memory of
 * its own (not from a file) has nothing to check. */
Test(gmem_snap, check_file_names_a_shrunk_memory_file)
{
	struct gmem *g = guest_with_data(false), *r;
	struct gmem_layout l;
	int fd = tmp_file();
	char err[256] = "";

	cr_assert_eq(gmem_check_file(g, err, sizeof(err)), 0, "anonymous memory");
	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gmem_check_file(r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ftruncate(fd, SZ + PG), 0);
	cr_assert_eq(gmem_check_file(r, err, sizeof(err)), 0, "a file that grew: %s", err);
	cr_assert_eq(ftruncate(fd, SZ / 2), 0);
	cr_assert_eq(gmem_check_file(r, err, sizeof(err)), -EIO);
	char want[64];
	snprintf(want, sizeof(want), "shrank to %u bytes", (unsigned)(SZ / 2));
	cr_assert_not_null(strstr(err, want), "%s", err);
	gmem_destroy(r);
	gmem_destroy(g);
	close(fd);
}

/* A snapshot of a guest whose memory file shrank is refused, not read
 * (every page, when the scan cannot tell, or a dirty one the file gives
 * again): a page past the file's end would kill flint with SIGBUS. */
Test(gmem_snap, save_refuses_a_shrunk_memory_file)
{
	struct gmem *g = guest_with_data(false), *r;
	struct gmem_opts o = {.track_dirty = true};
	struct gmem_layout l;
	int fd = tmp_file(), out = tmp_file();
	char err[256] = "";

	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, &o, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ftruncate(fd, SZ / 2), 0);
	cr_assert_eq(gmem_save_full_scan(r, out, GMEM_SCAN_ALL, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, "shrank"), "%s", err);
	cr_assert_eq(gmem_save_diff(r, out, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, "shrank"), "%s", err);
	gmem_destroy(r);
	gmem_destroy(g);
	close(out);
	close(fd);
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

/* --- the memory hot-plug region -------------------------------------------- */

/* 64 MiB of RAM and a 256 MiB hot-plug region of 2 MiB blocks at 1 GiB: in
 * the memory file RAM, then the region (block b at HOT_OFF + b * HOT_BLK). */
#define HOT_RAM (64ULL << 20)
#define HOT_GPA (1ULL << 30)
#define HOT_SZ	(256ULL << 20)
#define HOT_BLK (2ULL << 20)
#define HOT_OFF HOT_RAM
#define HOT_NPG ((HOT_RAM + HOT_SZ) / PG) /* the file's pages */
#define BLK_PG	(HOT_BLK / PG)		  /* a block's pages */
/* The gpa of page pg of block b, its page in the region and in the file. */
#define HOT_AT(b, pg)  (HOT_GPA + (b)*HOT_BLK + (pg)*PG)
#define HOT_PG(b, pg)  ((b)*BLK_PG + (pg))
#define HOT_FPG(b, pg) (HOT_OFF / PG + HOT_PG(b, pg))

static struct gmem *hot_guest(bool track)
{
	struct gmem_opts o = {.track_dirty = track};
	struct gmem *g;

	cr_assert_eq(gmem_create_opts(&g, HOT_RAM, &o), 0);
	cr_assert_eq(gmem_hotplug_add(g, HOT_GPA, HOT_SZ, HOT_BLK), 0);
	return g;
}

static void plug(struct gmem *g, uint64_t block, bool plugged)
{
	cr_assert_eq(gmem_hotplug_set(g, HOT_AT(block, 0), HOT_BLK, plugged), 0, "block %llu",
		     (unsigned long long)block);
}

static struct gmem_layout hot_layout(void)
{
	struct gmem_layout l;

	gmem_layout_for_size(HOT_RAM, &l);
	l.hot = (struct gmem_layout_hot){
	    .gpa = HOT_GPA, .size = HOT_SZ, .block = HOT_BLK, .offset = HOT_OFF};
	return l;
}

static bool hot_dirty(const struct gmem *g, uint64_t page)
{
	return gmem_bits_test(g->hot.dirty, page);
}

/* The hot-plug region's dirty pages. */
static uint64_t hot_dirty_count(const struct gmem *g)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < gmem_bits_words(g->hot.r.size / PG); w++)
		n += __builtin_popcountl(g->hot.dirty[w]);
	return n;
}

static void hot_clear_bits(struct gmem *g)
{
	memset(g->hot.dirty, 0, gmem_bits_words(g->hot.r.size / PG) * sizeof(unsigned long));
}

/* [off, off + len) of fd is a hole: the next data lies past it, or none. */
static void assert_hole(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	if (d < 0)
		cr_assert_eq(errno, ENXIO, "SEEK_DATA: %s", strerror(errno));
	else
		cr_assert_geq((uint64_t)d, off + len, "data at %#llx in the hole [%#llx, +%#llx)",
			      (unsigned long long)d, (unsigned long long)off,
			      (unsigned long long)len);
}

/* Page fpg of the file holds v in every byte. */
static void assert_file_page(int fd, uint64_t fpg, uint8_t v)
{
	uint8_t want[PG];

	memset(want, v, sizeof(want));
	assert_file_is(fd, fpg * PG, want, PG);
}

/* The page at gpa of g is plugged and holds v in every byte. */
static void assert_guest_page(const struct gmem *g, uint64_t gpa, uint8_t v)
{
	const uint8_t *p = gmem_ptr(g, gpa, PG);

	cr_assert_not_null(p, "gpa %#llx is out of reach", (unsigned long long)gpa);
	for (uint64_t i = 0; i < PG; i++)
		cr_assert_eq(p[i], v, "gpa %#llx byte %llu: %#x, expected %#x",
			     (unsigned long long)gpa, (unsigned long long)i, p[i], v);
}

Test(gmem_layout, of_a_gmem_with_a_hot_plug_region)
{
	const uint64_t two = MMIO_GAP_START + (4 << 20);
	struct gmem_layout l, want = hot_layout();
	struct gmem *g;
	char err[256] = "";

	cr_assert_eq(gmem_create(&g, HOT_RAM), 0);
	gmem_layout_of(g, &l);
	cr_assert_eq(l.hot.gpa | l.hot.size | l.hot.block | l.hot.offset, 0, "a region unasked");
	cr_assert_eq(gmem_layout_file_size(&l), HOT_RAM);
	cr_assert_eq(gmem_hotplug_add(g, HOT_GPA, HOT_SZ, HOT_BLK), 0);
	gmem_layout_of(g, &l);
	cr_assert_eq(memcmp(&l, &want, sizeof(l)), 0);
	cr_assert_eq(l.hot.offset, HOT_RAM, "right after RAM");
	cr_assert_eq(gmem_layout_file_size(&l), HOT_RAM + HOT_SZ);
	cr_assert_eq(gmem_layout_check(&l, err, sizeof(err)), 0, "%s", err);
	/* Plugging changes nothing of it. */
	plug(g, 7, true);
	gmem_layout_of(g, &l);
	cr_assert_eq(memcmp(&l, &want, sizeof(l)), 0);
	gmem_destroy(g);

	/* RAM around the MMIO hole: the region after both RAM regions. */
	cr_assert_eq(gmem_create(&g, two), 0);
	cr_assert_eq(gmem_hotplug_add(g, 8ULL << 30, HOT_SZ, 4 * HOT_BLK), 0);
	gmem_layout_of(g, &l);
	cr_assert_eq(l.nregions, 2);
	cr_assert_eq(l.r[1].offset, MMIO_GAP_START);
	cr_assert_eq(l.hot.gpa, 8ULL << 30);
	cr_assert_eq(l.hot.size, HOT_SZ);
	cr_assert_eq(l.hot.block, 4 * HOT_BLK);
	cr_assert_eq(l.hot.offset, two);
	cr_assert_eq(gmem_layout_file_size(&l), two + HOT_SZ);
	cr_assert_eq(gmem_layout_check(&l, err, sizeof(err)), 0, "%s", err);
	gmem_destroy(g);
}

Test(gmem_layout, check_refuses_a_hot_plug_region_flint_does_not_make)
{
	const struct gmem_layout good = hot_layout();
	struct gmem_layout l;
	char err[256] = "";

	cr_assert_eq(gmem_layout_check(&good, err, sizeof(err)), 0, "%s", err);
	/* The block: a power of two of at least 2 MiB dividing the size. */
	l = good, l.hot.block = 0;
	assert_refused(&l, "block 0x0 ");
	l = good, l.hot.block = 3 * HOT_BLK, l.hot.size = 18 * HOT_BLK; /* divides, no power */
	assert_refused(&l, "block 0x600000 ");
	l = good, l.hot.block = HOT_BLK / 2; /* a power of two dividing, too small */
	assert_refused(&l, "block 0x100000 ");
	l = good, l.hot.block = PG;
	assert_refused(&l, "block 0x1000 ");
	l = good, l.hot.block = 4 * HOT_BLK, l.hot.size = HOT_SZ + HOT_BLK; /* not dividing */
	assert_refused(&l, "size 0x10200000 and block 0x800000");
	l = good, l.hot.block = 4 * HOT_BLK; /* a bigger block that divides is fine */
	cr_assert_eq(gmem_layout_check(&l, err, sizeof(err)), 0, "%s", err);
	/* The gpa: 2 MiB aligned, not past 2^47. */
	l = good, l.hot.gpa = HOT_GPA + PG;
	assert_refused(&l, "gpa 0x40001000 is not 2 MiB aligned");
	l = good, l.hot.gpa = HOT_GPA + HOT_BLK / 2;
	assert_refused(&l, "gpa 0x40100000");
	l = good, l.hot.gpa = (1ULL << 47) - HOT_BLK;
	assert_refused(&l, "ends past 2^47");
	l = good, l.hot.size = 1ULL << 48;
	assert_refused(&l, "size 0x1000000000000 is past 2^47");
	/* No overlap with RAM: inside it, across its end; right after is fine. */
	l = good, l.hot.gpa = 0;
	assert_refused(&l, "at 0x0 overlaps region 0");
	l = good, l.hot.gpa = HOT_RAM - HOT_BLK;
	assert_refused(&l, "overlaps region 0");
	l = good, l.hot.gpa = HOT_RAM;
	cr_assert_eq(gmem_layout_check(&l, err, sizeof(err)), 0, "%s", err);
	gmem_layout_for_size(MMIO_GAP_START + (4 << 20), &l);
	l.hot = (struct gmem_layout_hot){.gpa = MMIO_GAP_END + HOT_BLK,
					 .size = HOT_SZ,
					 .block = HOT_BLK,
					 .offset = MMIO_GAP_START + (4 << 20)};
	assert_refused(&l, "overlaps region 1");
	l.hot.gpa = MMIO_GAP_END + (4 << 20);
	cr_assert_eq(gmem_layout_check(&l, err, sizeof(err)), 0, "%s", err);
	/* The file offset: the end of RAM. */
	l = good, l.hot.offset = HOT_RAM + PG;
	assert_refused(&l, "file offset 0x4001000 (flint's file has it at 0x4000000)");
	l = good, l.hot.offset = 0;
	assert_refused(&l, "file offset 0x0 ");
	l = good, l.hot.offset = HOT_RAM + HOT_BLK;
	assert_refused(&l, "file offset");
}

Test(gmem_layout, hot_plug_region_round_trip_is_version_2)
{
	const struct gmem_layout l = hot_layout();
	struct gmem_layout back, keep, bad;
	struct wbuf w;
	struct rbuf r;
	char err[256];

	cr_assert_eq(GMEM_LAYOUT_VERSION, 2);
	wbuf_init(&w);
	cr_assert_eq(gmem_layout_save(&l, &w), 0);
	cr_assert_eq(w.len, 8 + 24 + 32);
	/* u32 version, nregions; the region; the hot-plug region's four u64s. */
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(rget_u32(&r), 2);
	cr_assert_eq(rget_u32(&r), 1);
	cr_assert_eq(rget_u64(&r), 0);
	cr_assert_eq(rget_u64(&r), HOT_RAM);
	cr_assert_eq(rget_u64(&r), 0);
	cr_assert_eq(rget_u64(&r), HOT_GPA);
	cr_assert_eq(rget_u64(&r), HOT_SZ);
	cr_assert_eq(rget_u64(&r), HOT_BLK);
	cr_assert_eq(rget_u64(&r), HOT_OFF);
	cr_assert(rbuf_done(&r));
	memset(&back, 0x5a, sizeof(back));
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	cr_assert_eq(memcmp(&l, &back, sizeof(l)), 0);
	/* Every truncation, the hot-plug region's bytes included: -EBADMSG,
	 * the destination untouched. */
	memset(&keep, 0x5a, sizeof(keep));
	for (size_t n = 0; n < w.len; n++) {
		back = keep;
		rbuf_init(&r, w.p, n);
		cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EBADMSG, "len %zu",
			     n);
		cr_assert_not_null(strstr(err, "truncated"), "%s", err);
		cr_assert_eq(memcmp(&back, &keep, sizeof(keep)), 0);
	}
	/* A version 2 table with an empty hot-plug region: a version 1
	 * writer's table, refused. */
	memset(w.p + 8 + 24 + 8, 0, 8);
	back = keep;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "empty hot-plug region"), "%s", err);
	cr_assert_eq(memcmp(&back, &keep, sizeof(keep)), 0);
	/* ...also all zero. */
	memset(w.p + 8 + 24, 0, 32);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "empty hot-plug region"), "%s", err);
	wbuf_free(&w);
	/* A region the check refuses (gmem_layout_save writes what it is given). */
	bad = l, bad.hot.block = HOT_BLK / 2;
	wbuf_init(&w);
	cr_assert_eq(gmem_layout_save(&bad, &w), 0);
	back = keep;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "block 0x100000"), "%s", err);
	cr_assert_eq(memcmp(&back, &keep, sizeof(keep)), 0);
	wbuf_free(&w);
}

/* Without a hot-plug region the table is what flint before it wrote and
 * reads: version 1; read back, no region. */
Test(gmem_layout, without_a_hot_plug_region_is_version_1)
{
	struct gmem_layout l, back;
	struct wbuf w;
	struct rbuf r;
	char err[256];

	gmem_layout_for_size(HOT_RAM, &l);
	l.hot.gpa = HOT_GPA, l.hot.block = HOT_BLK; /* no size: no region */
	wbuf_init(&w);
	cr_assert_eq(gmem_layout_save(&l, &w), 0);
	cr_assert_eq(w.len, 8 + 24);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(rget_u32(&r), 1);
	cr_assert_eq(rget_u32(&r), 1);
	memset(&back, 0x5a, sizeof(back));
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	cr_assert_eq(back.hot.gpa | back.hot.size | back.hot.block | back.hot.offset, 0);
	gmem_layout_for_size(HOT_RAM, &l);
	cr_assert_eq(memcmp(&l, &back, sizeof(l)), 0);
	/* Called version 2, the hot-plug region it lacks is a truncation. */
	w.p[0] = 2;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(gmem_layout_restore(&back, &r, err, sizeof(err)), -EBADMSG);
	cr_assert_not_null(strstr(err, "truncated"), "%s", err);
	wbuf_free(&w);
}

/* A guest with RAM page 2 written; hot blocks 0 and 3 plugged and written
 * (block 3: pages 5 and 511; page 6 written and zeroed again), block 1
 * plugged and only read, block 5 plugged, written and unplugged again; the
 * others never plugged. */
static void hot_fill(struct gmem *g)
{
	fill_page(g, 2 * PG, 0x11);
	cr_assert_eq(gmem_write(g, HOT_AT(0, 0), "x", 1), -EFAULT, "an unplugged block written");
	plug(g, 0, true);
	plug(g, 1, true);
	plug(g, 3, true);
	plug(g, 5, true);
	fill_page(g, HOT_AT(0, 0), 0xb0);
	fill_page(g, HOT_AT(3, 5), 0xb3);
	fill_page(g, HOT_AT(3, BLK_PG - 1), 0xc3);
	fill_page(g, HOT_AT(3, 6), 0x66);
	fill_page(g, HOT_AT(3, 6), 0);
	fill_page(g, HOT_AT(5, 0), 0xb5);
	fill_page(g, HOT_AT(5, 100), 0xb5);
	cr_assert_eq(*(volatile uint8_t *)gmem_ptr(g, HOT_AT(1, 9), 1), 0);
	plug(g, 5, false);
	cr_assert_null(gmem_ptr(g, HOT_AT(5, 0), 1));
}

/* The file pages hot_fill leaves data in. */
static const uint64_t hot_data_pgs[] = {2, HOT_FPG(0, 0), HOT_FPG(3, 5), HOT_FPG(3, BLK_PG - 1)};

static void assert_hot_full_file(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, HOT_RAM + HOT_SZ);
	assert_data_pages(fd, HOT_NPG, hot_data_pgs, ARRAY_SIZE(hot_data_pgs));
	assert_file_page(fd, 2, 0x11);
	assert_file_page(fd, HOT_FPG(0, 0), 0xb0);
	assert_file_page(fd, HOT_FPG(3, 5), 0xb3);
	assert_file_page(fd, HOT_FPG(3, BLK_PG - 1), 0xc3);
	/* The unplugged blocks are holes: block 5, which held data, and
	 * those never plugged (2, 4, 6 to the end). */
	assert_hole(fd, HOT_OFF + 5 * HOT_BLK, HOT_BLK);
	assert_hole(fd, HOT_OFF + 2 * HOT_BLK, HOT_BLK);
	assert_hole(fd, HOT_OFF + 4 * HOT_BLK, HOT_BLK);
	assert_hole(fd, HOT_OFF + 6 * HOT_BLK, HOT_SZ - 6 * HOT_BLK);
	cr_assert_leq((uint64_t)st.st_blocks * 512, (ARRAY_SIZE(hot_data_pgs) + 4) * PG,
		      "%llu bytes allocated", (unsigned long long)st.st_blocks * 512);
}

static void full_save_with_hot(enum gmem_scan how)
{
	struct gmem *g = hot_guest(false);
	int fd = tmp_file();
	char err[256] = "";

	hot_fill(g);
	cr_assert_eq(write(fd, "old content", 11), 11);
	cr_assert_eq(gmem_save_full_scan(g, fd, how, err, sizeof(err)), 0, "%s", err);
	assert_hot_full_file(fd);
	close(fd);
	gmem_destroy(g);
}

Test(gmem_snap, full_save_with_a_hot_plug_region_mincore)
{
	full_save_with_hot(GMEM_SCAN_MINCORE);
}

Test(gmem_snap, full_save_with_a_hot_plug_region_pagemap)
{
	full_save_with_hot(GMEM_SCAN_PAGEMAP);
}

Test(gmem_snap, full_save_with_a_hot_plug_region_reading_every_page)
{
	full_save_with_hot(GMEM_SCAN_ALL);
}

Test(gmem_snap, full_save_with_a_hot_plug_region_auto)
{
	full_save_with_hot(GMEM_SCAN_AUTO);
}

/* A restore maps the region from the file with every block unplugged, out
 * of reach until the device's state plugs it; then the file's pages. */
Test(gmem_snap, restore_maps_the_hot_plug_region_unplugged)
{
	struct gmem *g = hot_guest(false), *r;
	struct gmem_layout l, m;
	int fd = tmp_file();
	char err[256] = "";
	uint8_t buf[PG];

	hot_fill(g);
	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	gmem_destroy(g);

	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	const struct gmem_region *h = gmem_hotplug_region(r);
	cr_assert_not_null(h);
	cr_assert_eq(h->gpa, HOT_GPA);
	cr_assert_eq(h->size, HOT_SZ);
	void *host = h->host;
	gmem_layout_of(r, &m);
	cr_assert_eq(memcmp(&l, &m, sizeof(l)), 0);
	cr_assert_eq(gmem_size(r), HOT_RAM);
	assert_guest_page(r, 2 * PG, 0x11);
	for (uint64_t b = 0; b < HOT_SZ / HOT_BLK; b++)
		cr_assert_null(gmem_ptr(r, HOT_AT(b, 0), 1), "block %llu plugged",
			       (unsigned long long)b);
	cr_assert_eq(gmem_read(r, HOT_AT(3, 5), buf, sizeof(buf)), -EFAULT);
	/* The device adding its region again takes this one; another
	 * geometry is refused and leaves it. */
	cr_assert_eq(gmem_hotplug_add(r, HOT_GPA, HOT_SZ, HOT_BLK), 0);
	cr_assert_eq(gmem_hotplug_region(r)->host, host);
	cr_assert_eq(gmem_hotplug_add(r, HOT_GPA, HOT_SZ, 2 * HOT_BLK), -EEXIST);
	cr_assert_eq(gmem_hotplug_add(r, HOT_GPA + HOT_BLK, HOT_SZ, HOT_BLK), -EEXIST);
	cr_assert_eq(gmem_hotplug_add(r, HOT_GPA, HOT_SZ / 2, HOT_BLK), -EEXIST);
	gmem_layout_of(r, &m);
	cr_assert_eq(memcmp(&l, &m, sizeof(l)), 0);
	cr_assert_null(gmem_ptr(r, HOT_AT(3, 5), 1), "taking the region plugged a block");

	plug(r, 3, true);
	assert_guest_page(r, HOT_AT(3, 5), 0xb3);
	assert_guest_page(r, HOT_AT(3, BLK_PG - 1), 0xc3);
	assert_guest_page(r, HOT_AT(3, 6), 0);
	cr_assert_eq(gmem_read(r, HOT_AT(3, 5), buf, sizeof(buf)), 0);
	cr_assert_eq(buf[100], 0xb3);
	cr_assert_null(gmem_ptr(r, HOT_AT(0, 0), 1), "plugging block 3 plugged block 0");
	cr_assert_null(gmem_ptr(r, HOT_AT(3, BLK_PG - 1), 2 * PG), "across into block 4");
	plug(r, 0, true);
	assert_guest_page(r, HOT_AT(0, 0), 0xb0);
	/* Block 5 was unplugged at the snapshot: plugged now, zeros. */
	plug(r, 5, true);
	assert_guest_page(r, HOT_AT(5, 0), 0);
	assert_guest_page(r, HOT_AT(5, 100), 0);
	/* Private: a write changes neither the file nor another restore. */
	fill_page(r, HOT_AT(3, 5), 0xee);
	assert_guest_page(r, HOT_AT(3, 5), 0xee);
	assert_file_page(fd, HOT_FPG(3, 5), 0xb3);
	struct gmem *r2;
	cr_assert_eq(gmem_create_from_file(&r2, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	plug(r2, 3, true);
	assert_guest_page(r2, HOT_AT(3, 5), 0xb3);
	gmem_destroy(r2);
	/* Unplugged and plugged again, a block reads the file's again. */
	plug(r, 3, false);
	cr_assert_null(gmem_ptr(r, HOT_AT(3, 5), 1));
	plug(r, 3, true);
	assert_guest_page(r, HOT_AT(3, 5), 0xb3);
	gmem_destroy(r);
	close(fd);
}

/* A restored guest's plugged blocks that nobody touched since (not in
 * memory, nor in the page cache) still hold the file's data: the next full
 * snapshot carries them, at the same offsets. */
Test(gmem_snap, full_save_of_a_file_backed_guest_keeps_untouched_hot_pages)
{
	struct gmem *g = hot_guest(false), *r;
	struct gmem_layout l;
	int fd = tmp_file(), fd2 = tmp_file();
	char err[256] = "";

	hot_fill(g);
	cr_assert_eq(gmem_save_full(g, fd, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);
	gmem_destroy(g);
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	cr_assert_eq(gmem_create_from_file(&r, &l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	plug(r, 0, true);
	plug(r, 3, true);
	fill_page(r, HOT_AT(3, 7), 0x37);
	cr_assert_eq(gmem_save_full_scan(r, fd2, GMEM_SCAN_MINCORE, err, sizeof(err)), 0, "%s",
		     err);
	uint64_t want[] = {2, HOT_FPG(0, 0), HOT_FPG(3, 5), HOT_FPG(3, 7), HOT_FPG(3, BLK_PG - 1)};
	assert_data_pages(fd2, HOT_NPG, want, ARRAY_SIZE(want));
	assert_file_page(fd2, HOT_FPG(0, 0), 0xb0);
	assert_file_page(fd2, HOT_FPG(3, 5), 0xb3);
	assert_file_page(fd2, HOT_FPG(3, 7), 0x37);
	assert_file_page(fd2, HOT_FPG(3, BLK_PG - 1), 0xc3);
	gmem_destroy(r);
	close(fd);
	close(fd2);
}

/* flint's writes into plugged hot memory are marked; KVM's log of a slot of
 * the region merges in at its offset; a slot that is not one is refused. */
Test(gmem_dirty, hot_plug_region_writes_and_merge)
{
	struct gmem_opts o = {.track_dirty = true};
	const uint64_t npages = HOT_SZ / PG;
	unsigned long *kvm = malloc(gmem_bits_words(npages + W) * sizeof(unsigned long));
	struct gmem *g;
	uint16_t v = 0xabcd;

	cr_assert_not_null(kvm);
	memset(kvm, 0xff, gmem_bits_words(npages + W) * sizeof(unsigned long));
	/* Without tracking, or without a region. */
	g = hot_guest(false);
	cr_assert_null(g->hot.dirty);
	plug(g, 0, true);
	cr_assert_eq(gmem_write(g, HOT_AT(0, 0), &v, sizeof(v)), 0);
	cr_assert_eq(gmem_hotplug_dirty_merge(g, 0, kvm, BLK_PG), -EINVAL);
	gmem_destroy(g);
	cr_assert_eq(gmem_create_opts(&g, HOT_RAM, &o), 0);
	cr_assert_eq(gmem_hotplug_dirty_merge(g, 0, kvm, BLK_PG), -EINVAL);
	gmem_destroy(g);

	g = hot_guest(true);
	cr_assert_not_null(g->hot.dirty);
	cr_assert_eq(hot_dirty_count(g), 0);
	/* Nothing is written into unplugged memory, nor marked. */
	cr_assert_eq(gmem_write(g, HOT_AT(2, 0), &v, sizeof(v)), -EFAULT);
	cr_assert_null(gmem_ptr_w(g, HOT_AT(2, 0), PG));
	cr_assert_eq(hot_dirty_count(g), 0);
	plug(g, 2, true);
	/* Two bytes across pages 0 and 1 of block 2. */
	cr_assert_eq(gmem_write(g, HOT_AT(2, 1) - 1, &v, sizeof(v)), 0);
	cr_assert(hot_dirty(g, HOT_PG(2, 0)) && hot_dirty(g, HOT_PG(2, 1)));
	cr_assert_eq(hot_dirty_count(g), 2);
	cr_assert_not_null(gmem_ptr_w(g, HOT_AT(2, 10) + 8, 2 * PG)); /* pages 10 to 12 */
	cr_assert(hot_dirty(g, HOT_PG(2, 10)) && hot_dirty(g, HOT_PG(2, 12)));
	cr_assert_eq(hot_dirty_count(g), 5);
	cr_assert_not_null(gmem_ptr(g, HOT_AT(2, 20), PG)); /* reading marks nothing */
	/* Across into unplugged block 3: refused, nothing marked. */
	cr_assert_eq(gmem_write(g, HOT_AT(3, 0) - 1, &v, sizeof(v)), -EFAULT);
	cr_assert_not(hot_dirty(g, HOT_PG(2, BLK_PG - 1)));
	gmem_mark_dirty_host(g, (uint8_t *)gmem_hotplug_region(g)->host + HOT_PG(2, 30) * PG + 1,
			     PG);
	cr_assert(hot_dirty(g, HOT_PG(2, 30)) && hot_dirty(g, HOT_PG(2, 31)));
	cr_assert_eq(hot_dirty_count(g), 7);
	/* RAM's bitmap is RAM's. */
	cr_assert_eq(gmem_bits_test(g->dirty[0], 0), 0);
	hot_clear_bits(g);

	/* Refused: an offset not a page, not at 64 pages (a word of the
	 * bitmap), at or past the region's end; a log past the end. */
	const uint64_t bad[][2] = {
	    {100, 1},
	    {PG, 1},
	    {32 * PG, 1},
	    {HOT_SZ, 1},
	    {HOT_SZ + 64 * PG, 1},
	    {~0ULL << 18, 1},
	    {HOT_SZ - HOT_BLK, BLK_PG + 1},
	    {0, npages + 1},
	    {64 * PG, npages - 63},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(gmem_hotplug_dirty_merge(g, bad[i][0], kvm, bad[i][1]), -EINVAL,
			     "off %#llx nbits %llu", (unsigned long long)bad[i][0],
			     (unsigned long long)bad[i][1]);
	cr_assert_eq(hot_dirty_count(g), 0, "a refused log merged");

	/* A slot of 64 pages at 256 KiB: exactly its pages. */
	cr_assert_eq(gmem_hotplug_dirty_merge(g, 64 * PG, kvm, 64), 0);
	cr_assert_eq(hot_dirty_count(g), 64);
	cr_assert(hot_dirty(g, 64) && hot_dirty(g, 127) && !hot_dirty(g, 63) && !hot_dirty(g, 128));
	hot_clear_bits(g);
	/* Bits past nbits in the log's last word are ignored. */
	cr_assert_eq(gmem_hotplug_dirty_merge(g, HOT_BLK, kvm, 100), 0);
	cr_assert_eq(hot_dirty_count(g), 100);
	cr_assert(hot_dirty(g, BLK_PG + 99) && !hot_dirty(g, BLK_PG + 100));
	hot_clear_bits(g);
	/* The last block; the whole region; nothing. */
	cr_assert_eq(gmem_hotplug_dirty_merge(g, HOT_SZ - HOT_BLK, kvm, BLK_PG), 0);
	cr_assert_eq(hot_dirty_count(g), BLK_PG);
	cr_assert(hot_dirty(g, npages - 1) && !hot_dirty(g, npages - BLK_PG - 1));
	hot_clear_bits(g);
	cr_assert_eq(gmem_hotplug_dirty_merge(g, 0, kvm, npages), 0);
	cr_assert_eq(hot_dirty_count(g), npages);
	hot_clear_bits(g);
	cr_assert_eq(gmem_hotplug_dirty_merge(g, 0, kvm, 0), 0);
	cr_assert_eq(hot_dirty_count(g), 0);
	/* A sparse log ORs into what is marked. */
	fill_page(g, HOT_AT(2, 3), 3);
	memset(kvm, 0, BLK_PG / 8);
	kvm[0] = 1UL << 5;
	kvm[BLK_PG / W - 1] = 1UL << (W - 1);
	cr_assert_eq(gmem_hotplug_dirty_merge(g, 2 * HOT_BLK, kvm, BLK_PG), 0);
	cr_assert_eq(hot_dirty_count(g), 3);
	cr_assert(hot_dirty(g, HOT_PG(2, 3)) && hot_dirty(g, HOT_PG(2, 5)) &&
		  hot_dirty(g, HOT_PG(2, BLK_PG - 1)));
	gmem_destroy(g);
	free(kvm);
}

/* A diff carries the dirty pages of plugged blocks at their offsets (flint's
 * writes and KVM's log), nothing of an unplugged block; laid over a restore
 * of the full snapshot, the latest memory. */
Test(gmem_snap, diff_with_a_hot_plug_region)
{
	struct gmem *g = hot_guest(true), *r;
	struct gmem_layout l;
	int full = tmp_file(), diff = tmp_file();
	char err[256] = "";
	unsigned long kvm[BLK_PG / W];
	struct stat st;

	plug(g, 1, true);
	plug(g, 2, true);
	fill_page(g, HOT_AT(1, 0), 0x21);
	fill_page(g, HOT_AT(1, 3), 0x20);
	cr_assert(hot_dirty(g, HOT_PG(1, 0)) && hot_dirty(g, HOT_PG(1, 3)));
	cr_assert_eq(gmem_save_full(g, full, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(hot_dirty_count(g), 0, "a full snapshot starts the next diff afresh");
	gmem_layout_of(g, &l);
	uint64_t want_full[] = {HOT_FPG(1, 0), HOT_FPG(1, 3)};
	assert_data_pages(full, HOT_NPG, want_full, ARRAY_SIZE(want_full));

	/* flint writes page 3 of block 1; the guest (as KVM logs it, in the
	 * slot of block 1) page 70; KVM's last word has bits past the slot. */
	fill_page(g, HOT_AT(1, 3), 0x31);
	memset(gmem_ptr(g, HOT_AT(1, 70), PG), 0x47, PG);
	memset(kvm, 0, sizeof(kvm));
	kvm[70 / W] = 1UL << (70 % W);
	kvm[ARRAY_SIZE(kvm) - 1] = 1UL << (W - 2); /* page 510: past 500 */
	cr_assert_eq(gmem_hotplug_dirty_merge(g, HOT_BLK, kvm, 500), 0);
	cr_assert_eq(hot_dirty_count(g), 2);
	/* A page logged in a block not plugged (4), and one written in a
	 * block unplugged since (2): not in the diff. */
	memset(kvm, 0, sizeof(kvm));
	kvm[0] = 1UL << 1;
	cr_assert_eq(gmem_hotplug_dirty_merge(g, 4 * HOT_BLK, kvm, BLK_PG), 0);
	fill_page(g, HOT_AT(2, 9), 0x29);
	plug(g, 2, false);
	/* Unplugged, block 2 is all dirty: what a plug finds there is new. */
	cr_assert_eq(hot_dirty_count(g), 3 + BLK_PG);

	cr_assert_eq(gmem_save_diff(g, diff, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fstat(diff, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, HOT_RAM + HOT_SZ);
	uint64_t want[] = {HOT_FPG(1, 3), HOT_FPG(1, 70)};
	assert_data_pages(diff, HOT_NPG, want, ARRAY_SIZE(want));
	assert_file_page(diff, HOT_FPG(1, 3), 0x31);
	assert_file_page(diff, HOT_FPG(1, 70), 0x47);
	/* The unplugged blocks' bits wait for them to be plugged again. */
	cr_assert_eq(hot_dirty_count(g), 1 + BLK_PG);
	cr_assert(hot_dirty(g, HOT_PG(4, 1)) && hot_dirty(g, HOT_PG(2, 9)));
	assert_clean(g);

	/* Over a restore of the full snapshot: the blocks the device's state
	 * plugs hold the latest pages; the full file is not changed. */
	cr_assert_eq(gmem_create_from_file(&r, &l, full, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gmem_apply_diff(r, diff, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(gmem_ptr(r, HOT_AT(1, 3), 1), "the diff plugged a block");
	plug(r, 1, true);
	assert_guest_page(r, HOT_AT(1, 3), 0x31);
	assert_guest_page(r, HOT_AT(1, 70), 0x47);
	assert_guest_page(r, HOT_AT(1, 0), 0x21);
	assert_guest_page(r, HOT_AT(1, 4), 0);
	plug(r, 2, true);
	assert_guest_page(r, HOT_AT(2, 9), 0);
	plug(r, 4, true);
	assert_guest_page(r, HOT_AT(4, 1), 0);
	assert_file_page(full, HOT_FPG(1, 3), 0x20);
	assert_hole(full, HOT_FPG(1, 70) * PG, PG);
	/* Into a copy of the full file: the same. */
	int copy = tmp_file();
	cr_assert_eq(ftruncate(copy, HOT_RAM + HOT_SZ), 0);
	cr_assert_eq(pwrite(copy, gmem_ptr(g, HOT_AT(1, 0), PG), PG, HOT_FPG(1, 0) * PG),
		     (ssize_t)PG);
	cr_assert_eq(gmem_file_apply_diff(copy, diff, &l, err, sizeof(err)), 0, "%s", err);
	uint64_t want_copy[] = {HOT_FPG(1, 0), HOT_FPG(1, 3), HOT_FPG(1, 70)};
	assert_data_pages(copy, HOT_NPG, want_copy, ARRAY_SIZE(want_copy));
	assert_file_page(copy, HOT_FPG(1, 0), 0x21);
	assert_file_page(copy, HOT_FPG(1, 3), 0x31);
	assert_file_page(copy, HOT_FPG(1, 70), 0x47);
	gmem_destroy(r);
	gmem_destroy(g);
	close(full);
	close(diff);
	close(copy);
}

/* A block unplugged and plugged again between two snapshots (its KVM slot,
 * and the slot's log, may be gone meanwhile): the diff carries what the
 * guest finds there now, zeros. A block unplugged across a diff is not in
 * it, and goes into the one after it is plugged again. Base and diffs give
 * what the live guest reads. */
Test(gmem_snap, diff_after_a_block_was_unplugged_and_plugged_again)
{
	struct gmem *g = hot_guest(true);
	int full = tmp_file(), d1 = tmp_file(), d2 = tmp_file(), copy = tmp_file();
	uint64_t want[BLK_PG];
	struct gmem_layout l;
	char err[256] = "";

	plug(g, 1, true);
	plug(g, 3, true);
	fill_page(g, HOT_AT(1, 5), 0x41);
	fill_page(g, HOT_AT(3, 7), 0x43);
	cr_assert_eq(gmem_save_full(g, full, err, sizeof(err)), 0, "%s", err);
	gmem_layout_of(g, &l);

	plug(g, 1, false);
	plug(g, 1, true);
	plug(g, 3, false);
	cr_assert_eq(gmem_save_diff(g, d1, err, sizeof(err)), 0, "%s", err);
	for (uint64_t i = 0; i < BLK_PG; i++)
		want[i] = HOT_FPG(1, i);
	assert_data_pages(d1, HOT_NPG, want, BLK_PG);
	assert_file_page(d1, HOT_FPG(1, 5), 0);

	plug(g, 3, true);
	cr_assert_eq(gmem_save_diff(g, d2, err, sizeof(err)), 0, "%s", err);
	for (uint64_t i = 0; i < BLK_PG; i++)
		want[i] = HOT_FPG(3, i);
	assert_data_pages(d2, HOT_NPG, want, BLK_PG);
	cr_assert_eq(hot_dirty_count(g), 0);

	/* The chain, into a copy of the full file. */
	cr_assert_eq(ftruncate(copy, HOT_RAM + HOT_SZ), 0);
	for (uint64_t b = 1; b <= 3; b += 2)
		cr_assert_eq(
		    pwrite(copy, b == 1 ? "\x41" : "\x43", 1, HOT_FPG(b, b == 1 ? 5 : 7) * PG), 1);
	assert_file_page(full, HOT_FPG(1, 5), 0x41);
	cr_assert_eq(gmem_file_apply_diff(copy, d1, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gmem_file_apply_diff(copy, d2, &l, err, sizeof(err)), 0, "%s", err);
	assert_file_page(copy, HOT_FPG(1, 5), 0);
	assert_file_page(copy, HOT_FPG(3, 7), 0);
	assert_guest_page(g, HOT_AT(1, 5), 0);
	assert_guest_page(g, HOT_AT(3, 7), 0);
	gmem_destroy(g);
	close(full);
	close(d1);
	close(d2);
	close(copy);
}
