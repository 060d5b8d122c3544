/* workset (issue 12): a loading set records the pages a file-backed
 * restore touched (read, written, a hole read), merged into runs, across
 * the two regions too; prefetching one maps exactly its runs (pagemap) and
 * makes them resident (mincore), by MADV_POPULATE_READ or by touching;
 * every refusal (not a loading set, another version, truncated at every
 * byte, a bit flipped anywhere, trailing bytes, the header's count, runs
 * empty, unaligned, past the end, unsorted, overlapping or unmerged under a
 * good checksum, another memory size) says which and faults nothing in.
 *
 * Memory files are real files under /tmp. So that "touched" is exact here
 * (workset.h: fault-around maps page-cache pages around a read fault), a
 * file holds data only where the test reads or in 2 MiB blocks it does not
 * touch, its page cache is dropped and the regions get MADV_RANDOM. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/gmem.h"
#include "core/gmem_snap.h"
#include "core/wire.h"
#include "snapshot/workset.h"
#include "write_file.h"
#include "x86/layout.h"

#define PG GMEM_PAGE

static char err[1024];
static char dir[64];

#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "'%s' not in '%s'", s, err)

static void mkdir_tmp(void)
{
	strcpy(dir, "/tmp/workset-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* dir/name */
static const char *in_dir(const char *name)
{
	static char path[2][128];
	static int k;

	k ^= 1;
	snprintf(path[k], sizeof(path[k]), "%s/%s", dir, name);
	return path[k];
}

/* A memory file of size bytes whose pages pages[0..n) hold data (the page
 * number in each byte's place, never zero), the rest holes, out of the
 * page cache. */
static int mem_file(uint64_t size, const uint64_t *pages, size_t n)
{
	char name[] = "/tmp/workset-mem-XXXXXX";
	uint8_t buf[PG];
	int fd = mkstemp(name);

	cr_assert_geq(fd, 0);
	unlink(name);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	for (size_t i = 0; i < n; i++) {
		memset(buf, (int)(pages[i] % 255) + 1, sizeof(buf));
		cr_assert_eq(pwrite(fd, buf, PG, (off_t)(pages[i] * PG)), (ssize_t)PG);
	}
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	return fd;
}

/* A File-backed restore of fd (size bytes, flint's layout for it) with no
 * read-ahead, so that a read maps just its page. */
static struct gmem *restore(int fd, uint64_t size, struct gmem_layout *l)
{
	struct gmem *g;

	gmem_layout_for_size(size, l);
	cr_assert_eq(gmem_create_from_file(&g, l, fd, NULL, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < gmem_nregions(g); i++)
		cr_assert_eq(madvise(gmem_region(g, i)->host, gmem_region(g, i)->size, MADV_RANDOM),
			     0);
	return g;
}

/* Host address of page pg of the memory file (offset pg * 4 KiB). */
static uint8_t *page_at(const struct gmem *g, const struct gmem_layout *l, uint64_t pg)
{
	uint64_t off = pg * PG;

	for (uint32_t i = 0; i < l->nregions; i++)
		if (off >= l->r[i].offset && off - l->r[i].offset < l->r[i].size)
			return (uint8_t *)gmem_region(g, i)->host + (off - l->r[i].offset);
	cr_assert_fail("page %llu outside the layout", (unsigned long long)pg);
	return NULL;
}

static void read_page(const struct gmem *g, const struct gmem_layout *l, uint64_t pg)
{
	(void)*(volatile uint8_t *)page_at(g, l, pg);
}

/* Mapped in this process (pagemap present or swapped). */
static bool mapped(const void *p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / PG * sizeof(e))),
		     (ssize_t)sizeof(e));
	close(fd);
	return e & (3ULL << 62);
}

static bool resident(const void *p)
{
	unsigned char v = 0;

	cr_assert_eq(mincore((void *)p, PG, &v), 0);
	return v & 1;
}

static struct workset read_back(const char *path)
{
	struct workset ws;
	uint8_t *buf;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s: %m", path);
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc(st.st_size);
	cr_assert_eq(read(fd, buf, st.st_size), st.st_size);
	close(fd);
	cr_assert_eq(workset_parse(buf, st.st_size, &ws, err, sizeof(err)), 0, "%s", err);
	free(buf);
	return ws;
}

/* ws's runs are exactly want[0..n) (first page, pages). */
static void assert_runs(const struct workset *ws, const uint64_t (*want)[2], uint32_t n)
{
	for (uint32_t i = 0; i < ws->n && i < n; i++)
		cr_assert(ws->runs[i].off == want[i][0] * PG && ws->runs[i].len == want[i][1] * PG,
			  "run %u: [page %llu, +%llu), expected [page %llu, +%llu)", i,
			  (unsigned long long)(ws->runs[i].off / PG),
			  (unsigned long long)(ws->runs[i].len / PG),
			  (unsigned long long)want[i][0], (unsigned long long)want[i][1]);
	cr_assert_eq(ws->n, n, "%u runs, expected %u", ws->n, n);
}

/* --- recording --------------------------------------------------------- */

Test(workset, record_reads_back_the_touched_runs, .init = mkdir_tmp, .fini = rm_tmp)
{
	const uint64_t size = 8 << 20, last = size / PG - 1;
	/* Data where the test reads, and in block 2 (pages 1024..1535), which
	 * nothing touches: it must not show. */
	const uint64_t data[] = {1, 2, 3, 10, 12, last, 1030, 1031, 1500};
	const uint64_t want[][2] = {{1, 3}, {10, 1}, {12, 1}, {300, 1}, {last, 1}};
	struct gmem_layout l;
	struct workset ws;
	int fd = mem_file(size, data, ARRAY_SIZE(data));
	struct gmem *g = restore(fd, size, &l);

	for (uint64_t pg = 1; pg <= 3; pg++)
		read_page(g, &l, pg);
	page_at(g, &l, 10)[5] = 0xaa; /* a write: a private copy */
	read_page(g, &l, 12);
	read_page(g, &l, 300); /* a hole */
	read_page(g, &l, last);
	cr_assert_eq(workset_record(g, &l, in_dir("ws"), err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(access(in_dir("ws.tmp"), F_OK), -1);

	ws = read_back(in_dir("ws"));
	cr_assert_eq(ws.file_size, size);
	assert_runs(&ws, want, ARRAY_SIZE(want));
	cr_assert_eq(workset_pages(&ws), 7);
	workset_free(&ws);
	gmem_destroy(g);
	close(fd);
}

Test(workset, nothing_touched_is_an_empty_set, .init = mkdir_tmp, .fini = rm_tmp)
{
	const uint64_t data[] = {0, 1, 2};
	struct gmem_layout l;
	struct workset ws;
	int fd = mem_file(4 << 20, data, ARRAY_SIZE(data));
	struct gmem *g = restore(fd, 4 << 20, &l);

	cr_assert_eq(workset_record(g, &l, in_dir("ws"), err, sizeof(err)), 0, "%s", err);
	ws = read_back(in_dir("ws"));
	cr_assert_eq(ws.n, 0);
	cr_assert_eq(ws.file_size, 4 << 20);
	workset_free(&ws);
	gmem_destroy(g);
	close(fd);
}

/* Two regions: the file concatenates them, so region 0's last page and
 * region 1's first are one run. */
Test(workset, record_merges_across_the_regions, .init = mkdir_tmp, .fini = rm_tmp)
{
	const uint64_t size = MMIO_GAP_START + (4 << 20), low = MMIO_GAP_START / PG;
	const uint64_t data[] = {0, low - 1, low, low + 1, low + 100};
	const uint64_t want[][2] = {{0, 1}, {low - 1, 3}, {low + 100, 1}};
	struct gmem_layout l;
	struct workset ws;
	int fd = mem_file(size, data, ARRAY_SIZE(data));
	struct gmem *g = restore(fd, size, &l);

	cr_assert_eq(l.nregions, 2);
	for (size_t i = 0; i < ARRAY_SIZE(data); i++)
		read_page(g, &l, data[i]);
	cr_assert_eq(workset_record(g, &l, in_dir("ws"), err, sizeof(err)), 0, "%s", err);
	ws = read_back(in_dir("ws"));
	assert_runs(&ws, want, ARRAY_SIZE(want));
	workset_free(&ws);
	gmem_destroy(g);
	close(fd);
}

Test(workset, record_replaces_a_file_atomically, .init = mkdir_tmp, .fini = rm_tmp)
{
	const uint64_t data[] = {7};
	const uint64_t want[][2] = {{7, 1}};
	struct gmem_layout l;
	struct workset ws;
	int fd = mem_file(4 << 20, data, 1);
	struct gmem *g = restore(fd, 4 << 20, &l);
	int old = open(in_dir("ws"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	/* An old set and a stale .tmp that is a symlink: replaced, and the
	 * symlink's target left alone. */
	cr_assert_geq(old, 0);
	cr_assert_eq(write(old, "old", 3), 3);
	close(old);
	cr_assert_eq(symlink(in_dir("target"), in_dir("ws.tmp")), 0);
	read_page(g, &l, 7);
	cr_assert_eq(workset_record(g, &l, in_dir("ws"), err, sizeof(err)), 0, "%s", err);
	ws = read_back(in_dir("ws"));
	assert_runs(&ws, want, 1);
	cr_assert_eq(access(in_dir("target"), F_OK), -1);
	cr_assert_eq(access(in_dir("ws.tmp"), F_OK), -1);
	workset_free(&ws);

	cr_assert_eq(workset_record(g, &l, "/nonexistent-dir/ws", err, sizeof(err)), -ENOENT);
	ERR_HAS("/nonexistent-dir/ws.tmp");
	gmem_destroy(g);
	close(fd);
}

Test(workset, scan_refuses_another_layout)
{
	const uint64_t data[] = {0};
	struct gmem_layout l, other;
	struct workset ws;
	int fd = mem_file(4 << 20, data, 1);
	struct gmem *g = restore(fd, 4 << 20, &l);

	gmem_layout_for_size(8 << 20, &other);
	cr_assert_eq(workset_scan(g, &other, &ws, err, sizeof(err)), -EINVAL);
	ERR_HAS("region 0");
	cr_assert_eq(ws.n, 0);
	cr_assert_null(ws.runs);
	other = l;
	other.nregions = 3;
	cr_assert_eq(workset_scan(g, &other, &ws, err, sizeof(err)), -EINVAL);
	ERR_HAS("3 regions");
	gmem_destroy(g);
	close(fd);
}

/* --- prefetching ------------------------------------------------------- */

static const uint64_t pf_runs[][2] = {{5, 3}, {100, 1}, {500, 100}}; /* 500.. crosses 2 MiB */
#define PF_PAGES 104
#define PF_SIZE	 (8 << 20)

/* Every page of the 8 MiB file holds data; the set pf_runs at path. */
static int prefetch_setup(const char *path)
{
	uint64_t *all = malloc(PF_SIZE / PG * sizeof(*all));
	struct workset ws = {.file_size = PF_SIZE, .n = ARRAY_SIZE(pf_runs)};
	struct workset_run runs[ARRAY_SIZE(pf_runs)];
	struct wbuf b;
	int fd, out;

	for (uint64_t i = 0; i < PF_SIZE / PG; i++)
		all[i] = i;
	fd = mem_file(PF_SIZE, all, PF_SIZE / PG);
	free(all);
	for (size_t i = 0; i < ARRAY_SIZE(pf_runs); i++)
		runs[i] = (struct workset_run){pf_runs[i][0] * PG, pf_runs[i][1] * PG};
	ws.runs = runs;
	cr_assert_eq(workset_encode(&ws, &b), 0);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(out, 0);
	cr_assert_eq(write(out, b.p, b.len), (ssize_t)b.len);
	close(out);
	wbuf_free(&b);
	return fd;
}

static bool in_pf_runs(uint64_t pg)
{
	for (size_t i = 0; i < ARRAY_SIZE(pf_runs); i++)
		if (pg >= pf_runs[i][0] && pg < pf_runs[i][0] + pf_runs[i][1])
			return true;
	return false;
}

/* Before: nothing mapped. After: the runs mapped, resident and holding
 * the file's bytes; block 3, far from every run, still not mapped. */
static void assert_prefetched(const struct gmem *g, const struct gmem_layout *l)
{
	for (uint64_t pg = 0; pg < 1024; pg++)
		if (in_pf_runs(pg)) {
			cr_assert(mapped(page_at(g, l, pg)), "page %llu not mapped",
				  (unsigned long long)pg);
			cr_assert(resident(page_at(g, l, pg)), "page %llu not resident",
				  (unsigned long long)pg);
			cr_assert_eq(page_at(g, l, pg)[123], pg % 255 + 1);
		}
	for (uint64_t pg = 1536; pg < 2048; pg++)
		cr_assert(!mapped(page_at(g, l, pg)), "page %llu mapped", (unsigned long long)pg);
}

static void assert_nothing_mapped(const struct gmem *g, const struct gmem_layout *l)
{
	for (uint64_t pg = 0; pg < PF_SIZE / PG; pg++)
		cr_assert(!mapped(page_at(g, l, pg)), "page %llu mapped", (unsigned long long)pg);
}

Test(workset, prefetch_maps_the_runs, .init = mkdir_tmp, .fini = rm_tmp)
{
	int fd = prefetch_setup(in_dir("ws"));
	struct gmem_layout l;
	struct gmem *g = restore(fd, PF_SIZE, &l);

	assert_nothing_mapped(g, &l);
	cr_assert_eq(workset_prefetch(g, &l, in_dir("ws"), err, sizeof(err)), PF_PAGES, "%s", err);
	assert_prefetched(g, &l);
	gmem_destroy(g);
	close(fd);
}

Test(workset, fault_in_by_touching, .init = mkdir_tmp, .fini = rm_tmp)
{
	int fd = prefetch_setup(in_dir("ws"));
	struct gmem_layout l;
	struct gmem *g = restore(fd, PF_SIZE, &l);
	struct workset ws = read_back(in_dir("ws"));

	assert_nothing_mapped(g, &l);
	cr_assert_eq(workset_fault_in(g, &l, &ws, WORKSET_FAULT_TOUCH, err, sizeof(err)), PF_PAGES,
		     "%s", err);
	assert_prefetched(g, &l);
	workset_free(&ws);
	gmem_destroy(g);
	close(fd);
}

/* A memory file that shrank after the restore is refused before a page is
 * touched: touching one past its end would kill flint with SIGBUS. */
Test(workset, fault_in_refuses_a_shrunk_memory_file, .init = mkdir_tmp, .fini = rm_tmp)
{
	int fd = prefetch_setup(in_dir("ws"));
	struct gmem_layout l;
	struct gmem *g = restore(fd, PF_SIZE, &l);
	struct workset ws = read_back(in_dir("ws"));

	cr_assert_eq(ftruncate(fd, PG), 0);
	cr_assert_eq(workset_fault_in(g, &l, &ws, WORKSET_FAULT_TOUCH, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, "shrank"), "%s", err);
	workset_free(&ws);
	gmem_destroy(g);
	close(fd);
}

/* A run crossing from region 0 into region 1 is faulted in both. */
Test(workset, prefetch_across_the_regions, .init = mkdir_tmp, .fini = rm_tmp)
{
	const uint64_t size = MMIO_GAP_START + (4 << 20), low = MMIO_GAP_START / PG;
	const uint64_t data[] = {low - 2, low - 1, low, low + 1};
	struct workset_run run = {(low - 2) * PG, 4 * PG};
	struct workset ws = {.file_size = size, .n = 1, .runs = &run};
	struct gmem_layout l;
	int fd = mem_file(size, data, ARRAY_SIZE(data));
	struct gmem *g = restore(fd, size, &l);

	for (size_t i = 0; i < ARRAY_SIZE(data); i++)
		cr_assert(!mapped(page_at(g, &l, data[i])));
	cr_assert_eq(workset_fault_in(g, &l, &ws, WORKSET_FAULT_AUTO, err, sizeof(err)), 4, "%s",
		     err);
	for (size_t i = 0; i < ARRAY_SIZE(data); i++) {
		cr_assert(mapped(page_at(g, &l, data[i])), "page %llu",
			  (unsigned long long)data[i]);
		cr_assert_eq(*page_at(g, &l, data[i]), data[i] % 255 + 1);
	}
	cr_assert(!mapped(page_at(g, &l, low + 2 + 512)));
	gmem_destroy(g);
	close(fd);
}

/* Recorded on one restore, prefetched on the next: the same pages. */
Test(workset, record_then_prefetch, .init = mkdir_tmp, .fini = rm_tmp)
{
	const uint64_t data[] = {40, 41, 42, 900, 901};
	struct gmem_layout l;
	int fd = mem_file(8 << 20, data, ARRAY_SIZE(data));
	struct gmem *g = restore(fd, 8 << 20, &l);

	for (size_t i = 0; i < ARRAY_SIZE(data); i++)
		read_page(g, &l, data[i]);
	cr_assert_eq(workset_record(g, &l, in_dir("ws"), err, sizeof(err)), 0, "%s", err);
	gmem_destroy(g);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);

	g = restore(fd, 8 << 20, &l);
	cr_assert(!mapped(page_at(g, &l, 41)));
	cr_assert_eq(workset_prefetch(g, &l, in_dir("ws"), err, sizeof(err)), 5, "%s", err);
	for (size_t i = 0; i < ARRAY_SIZE(data); i++)
		cr_assert(mapped(page_at(g, &l, data[i])));
	gmem_destroy(g);
	close(fd);
}

/* --- the file's refusals ----------------------------------------------- */

/* A good file: 4 MiB of memory, three runs. */
static struct wbuf good(void)
{
	struct workset_run runs[] = {{0, PG}, {2 * PG, 3 * PG}, {100 * PG, 10 * PG}};
	struct workset ws = {.file_size = 4 << 20, .n = 3, .runs = runs};
	struct wbuf b;

	cr_assert_eq(workset_encode(&ws, &b), 0);
	cr_assert_eq(b.len, WORKSET_HEADER_LEN + 3 * 16 + 4);
	return b;
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

/* Both CRCs made right again after an edit. */
static void seal(uint8_t *p, size_t len)
{
	put32(p + 24, (uint32_t)crc32(0, p, 24));
	put32(p + len - 4, (uint32_t)crc32(0, p, len - 4));
}

static int parse(const uint8_t *p, size_t len)
{
	struct workset ws;
	int r;

	err[0] = '\0';
	r = workset_parse(p, len, &ws, err, sizeof(err));
	if (r) {
		cr_assert(err[0], "a refusal without a message");
		cr_assert(ws.n == 0 && !ws.runs);
	} else {
		workset_free(&ws);
	}
	return r;
}

Test(workset, round_trip)
{
	struct wbuf b = good(), again;
	struct workset ws;

	cr_assert_eq(workset_parse(b.p, b.len, &ws, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ws.file_size, 4 << 20);
	cr_assert_eq(ws.n, 3);
	cr_assert(ws.runs[1].off == 2 * PG && ws.runs[1].len == 3 * PG);
	cr_assert_eq(workset_pages(&ws), 14);
	cr_assert_eq(workset_encode(&ws, &again), 0);
	cr_assert(again.len == b.len && !memcmp(again.p, b.p, b.len));
	workset_free(&ws);
	workset_free(&ws); /* twice is fine */
	workset_free(NULL);
	wbuf_free(&again);
	wbuf_free(&b);
}

Test(workset, not_a_loading_set)
{
	struct wbuf b = good();

	b.p[3] ^= 1;
	cr_assert_eq(parse(b.p, b.len), -EBADMSG);
	ERR_HAS("not a flint loading set");
	cr_assert_eq(parse((const uint8_t *)"FLINTSNP", 8), -EBADMSG);
	ERR_HAS("not a flint loading set");
	wbuf_free(&b);
}

Test(workset, other_format_version)
{
	struct wbuf b = good();

	put32(b.p + 8, 2);
	seal(b.p, b.len);
	cr_assert_eq(parse(b.p, b.len), -EPROTONOSUPPORT);
	ERR_HAS("format version 2, this flint reads 1");
	wbuf_free(&b);
}

Test(workset, truncated_at_every_byte)
{
	struct wbuf b = good();

	for (size_t n = 0; n < b.len; n++) {
		uint8_t *p = malloc(n ? n : 1);

		memcpy(p, b.p, n);
		cr_assert_eq(parse(p, n), -EBADMSG, "at %zu", n);
		cr_assert_not_null(strstr(err, "truncated at byte"), "at %zu: %s", n, err);
		free(p);
	}
	wbuf_free(&b);
}

Test(workset, flipped_bit_anywhere)
{
	struct wbuf b = good();

	for (size_t i = 0; i < b.len * 8; i++) {
		b.p[i / 8] ^= 1 << (i % 8);
		int r = parse(b.p, b.len);
		cr_assert(r == -EBADMSG || (r == -EPROTONOSUPPORT && i / 8 >= 8 && i / 8 < 12),
			  "bit %zu: %d (%s)", i, r, err);
		b.p[i / 8] ^= 1 << (i % 8);
	}
	cr_assert_eq(parse(b.p, b.len), 0);
	wbuf_free(&b);
}

Test(workset, checksums)
{
	struct wbuf b = good();

	b.p[b.len - 1] ^= 0x80;
	cr_assert_eq(parse(b.p, b.len), -EBADMSG);
	ERR_HAS("corrupt: checksum");
	b.p[b.len - 1] ^= 0x80;
	b.p[WORKSET_HEADER_LEN + 3] ^= 1; /* a run's offset */
	cr_assert_eq(parse(b.p, b.len), -EBADMSG);
	ERR_HAS("corrupt: checksum");
	b.p[WORKSET_HEADER_LEN + 3] ^= 1;
	b.p[16] ^= 1; /* the memory size: the header's checksum */
	cr_assert_eq(parse(b.p, b.len), -EBADMSG);
	ERR_HAS("corrupt: header checksum");
	wbuf_free(&b);
}

Test(workset, trailing_bytes)
{
	struct wbuf b = good();
	uint8_t *p = calloc(1, b.len + 1);

	memcpy(p, b.p, b.len);
	cr_assert_eq(parse(p, b.len + 1), -EBADMSG);
	ERR_HAS("corrupt: 81 bytes long, its 3 runs make 80");
	free(p);
	wbuf_free(&b);
}

/* The count under a good header checksum: over the cap, or more runs than
 * the file holds (truncated), or fewer (trailing bytes). */
Test(workset, run_count)
{
	struct wbuf b = good();

	put32(b.p + 12, WORKSET_MAX_RUNS + 1);
	seal(b.p, b.len);
	cr_assert_eq(parse(b.p, b.len), -EBADMSG);
	ERR_HAS("runs, at most");
	put32(b.p + 12, 4);
	seal(b.p, b.len);
	cr_assert_eq(parse(b.p, b.len), -EBADMSG);
	ERR_HAS("truncated at byte 80 of 96");
	put32(b.p + 12, 2);
	seal(b.p, b.len);
	cr_assert_eq(parse(b.p, b.len), -EBADMSG);
	ERR_HAS("80 bytes long, its 2 runs make 64");
	wbuf_free(&b);
}

/* Run k of good()'s set changed to (off, len) pages and sealed: refused
 * with what. */
static void bad_run(uint32_t k, uint64_t off, uint64_t len, const char *what)
{
	struct wbuf b = good();
	uint8_t *r = b.p + WORKSET_HEADER_LEN + 16 * k;

	put64(r, off);
	put64(r + 8, len);
	seal(b.p, b.len);
	cr_assert_eq(parse(b.p, b.len), -EBADMSG, "run %u [%#llx, +%#llx)", k,
		     (unsigned long long)off, (unsigned long long)len);
	ERR_HAS("corrupt: ");
	ERR_HAS(what);
	wbuf_free(&b);
}

Test(workset, bad_runs)
{
	bad_run(0, 0, 0, "run 0 at 0x0 is empty");
	bad_run(1, 2 * PG + 1, PG, "run 1 [0x2001, +0x1000) is not page-aligned");
	bad_run(1, 2 * PG, PG - 1, "not page-aligned");
	bad_run(2, 1023 * PG, 2 * PG, "run 2 [0x3ff000, +0x2000) ends past the memory's 0x400000");
	bad_run(2, 1024 * PG, PG, "ends past the memory's");
	bad_run(2, UINT64_MAX - PG + 1, PG, "ends past the memory's");
	bad_run(2, 100 * PG, UINT64_MAX - PG + 1, "ends past the memory's");
	bad_run(1, 0, PG,
		"run 1 at 0x0 is before the end of run 0 (0x1000): unsorted or overlapping");
	bad_run(2, 3 * PG, PG, "run 2 at 0x3000 is before the end of run 1 (0x5000)");
	bad_run(2, 1 * PG, PG, "unsorted or overlapping");
	bad_run(1, 1 * PG, PG, "run 1 at 0x1000 starts where run 0 ends (one run)");
	bad_run(2, 5 * PG, PG, "run 2 at 0x5000 starts where run 1 ends");
}

Test(workset, bad_memory_size)
{
	const uint64_t sizes[] = {0, (4 << 20) + 1, 1ULL << 47};

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct wbuf b = good();

		put64(b.p + 16, sizes[i]);
		seal(b.p, b.len);
		cr_assert_eq(parse(b.p, b.len), -EBADMSG);
		ERR_HAS("a memory size of");
		wbuf_free(&b);
	}
}

Test(workset, encode_refuses_what_parse_would)
{
	struct workset_run runs[] = {{0, PG}, {PG, PG}};
	struct workset ws = {.file_size = 4 << 20, .n = 2, .runs = runs};
	struct wbuf b;

	cr_assert_eq(workset_encode(&ws, &b), -EINVAL); /* unmerged */
	wbuf_free(&b);
	runs[1].off = 2 * PG + 7;
	cr_assert_eq(workset_encode(&ws, &b), -EINVAL);
	wbuf_free(&b);
	ws.n = WORKSET_MAX_RUNS + 1;
	cr_assert_eq(workset_encode(&ws, &b), -E2BIG);
	wbuf_free(&b);
	ws = (struct workset){.file_size = 4 << 20};
	cr_assert_eq(workset_encode(&ws, &b), 0);
	cr_assert_eq(b.len, WORKSET_HEADER_LEN + 4);
	cr_assert_eq(parse(b.p, b.len), 0);
	wbuf_free(&b);
}

/* --- prefetch's refusals: named, and nothing faulted in ------------------ */

Test(workset, prefetch_refusals, .init = mkdir_tmp, .fini = rm_tmp)
{
	int fd = prefetch_setup(in_dir("ws"));
	struct gmem_layout l, other;
	struct gmem *g = restore(fd, PF_SIZE, &l);
	struct workset_run run = {0, PG};
	struct workset ws = {.file_size = 4 << 20, .n = 1, .runs = &run};
	struct wbuf b = good();

	/* Recorded for 4 MiB of memory, restored with 8. */
	write_file(in_dir("small"), b.p, b.len);
	cr_assert_eq(workset_prefetch(g, &l, in_dir("small"), err, sizeof(err)), -EINVAL);
	ERR_HAS("small: recorded for 4194304 bytes of memory, this VM has 8388608");
	cr_assert_eq(workset_fault_in(g, &l, &ws, WORKSET_FAULT_AUTO, err, sizeof(err)), -EINVAL);
	ERR_HAS("loading set: recorded for 4194304 bytes");

	/* Corrupt: a run past the end, sealed. */
	put64(b.p + 16, PF_SIZE);
	put64(b.p + WORKSET_HEADER_LEN + 32, PF_SIZE - PG);
	seal(b.p, b.len);
	write_file(in_dir("bad"), b.p, b.len);
	cr_assert_eq(workset_prefetch(g, &l, in_dir("bad"), err, sizeof(err)), -EBADMSG);
	ERR_HAS("bad: corrupt: run 2");

	write_file(in_dir("empty"), "", 0);
	cr_assert_eq(workset_prefetch(g, &l, in_dir("empty"), err, sizeof(err)), -EBADMSG);
	ERR_HAS("empty: truncated at byte 0");
	cr_assert_eq(workset_prefetch(g, &l, in_dir("none"), err, sizeof(err)), -ENOENT);
	ERR_HAS("none: No such file");
	cr_assert_eq(workset_prefetch(g, &l, dir, err, sizeof(err)), -EINVAL);
	ERR_HAS("not a regular file");
	write_file(in_dir("huge"), "", 0);
	cr_assert_eq(truncate(in_dir("huge"), WORKSET_MAX_FILE + 1), 0);
	cr_assert_eq(workset_prefetch(g, &l, in_dir("huge"), err, sizeof(err)), -EFBIG);
	ERR_HAS("huge: over 67108896 bytes");

	/* A layout that is not g's. */
	gmem_layout_for_size(4 << 20, &other);
	cr_assert_eq(workset_prefetch(g, &other, in_dir("ws"), err, sizeof(err)), -EINVAL);
	ERR_HAS("memory layout: region 0");

	assert_nothing_mapped(g, &l);
	/* And the good one still works after all that. */
	cr_assert_eq(workset_prefetch(g, &l, in_dir("ws"), err, sizeof(err)), PF_PAGES, "%s", err);
	wbuf_free(&b);
	gmem_destroy(g);
	close(fd);
}
