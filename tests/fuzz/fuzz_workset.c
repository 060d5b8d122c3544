/* libFuzzer harness for runner/snapshot/workset.c: the fuzzer writes the
 * loading set. Each input is read twice: as a whole file, and as the body
 * of one (a u64 memory size, then the runs, 16 bytes each), framed here
 * with a good header and checksums, so that the fuzzer gets past the CRCs
 * to the runs' checks. A refusal must come with a message and leave the
 * set empty; a set that is accepted must obey the rules the reader
 * promises (runs non-empty, page-aligned, sorted, apart, inside the
 * memory), must encode back to the very bytes it was read from, and, when
 * it is for the harness's memory (two regions, as flint maps over 3.25
 * GiB) and not too big, must fault its pages in there (the count returned,
 * each page mapped per pagemap). Every read
 * is from a malloc of exactly the input's length, so ASan sees any
 * over-read. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/gmem.h"
#include "core/gmem_snap.h"
#include "fuzz.h"
#include "snapshot/workset.h"
#include "x86/layout.h"

/* Sets of at most this many pages are faulted in (zero pages: cheap). */
#define FAULT_MAX_PAGES 4096

static struct gmem *g;
static struct gmem_layout l;

/* Anonymous memory stands in for a File-backed restore: the faulting in is
 * the same calls; only what backs the pages differs. */
static void memory(void)
{
	if (g)
		return;
	CHECK(gmem_create(&g, MMIO_GAP_START + (2 << 20)) == 0);
	gmem_layout_of(g, &l);
	CHECK(l.nregions == 2);
}

/* Page off of the memory file is mapped (pagemap: present or swapped). */
static bool mapped(uint64_t off)
{
	static int pm = -1;
	uint64_t e = 0;

	for (uint32_t i = 0; i < l.nregions; i++) {
		if (off < l.r[i].offset || off - l.r[i].offset >= l.r[i].size)
			continue;
		uintptr_t host = (uintptr_t)gmem_region(g, i)->host + (off - l.r[i].offset);

		if (pm < 0)
			pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		CHECK(pm >= 0);
		CHECK(pread(pm, &e, sizeof(e), (off_t)(host / GMEM_PAGE * sizeof(e))) == sizeof(e));
		return e & (3ULL << 62);
	}
	return false;
}

static void check_accepted(const struct workset *ws, const uint8_t *p, size_t len)
{
	struct wbuf b;
	char err[512];
	uint64_t end = 0, pages = 0;

	CHECK(ws->file_size && ws->file_size % GMEM_PAGE == 0 && ws->n <= WORKSET_MAX_RUNS);
	CHECK(!ws->n || ws->runs);
	for (uint32_t i = 0; i < ws->n; i++) {
		const struct workset_run *r = &ws->runs[i];

		CHECK(r->len && r->off % GMEM_PAGE == 0 && r->len % GMEM_PAGE == 0);
		CHECK(r->off <= ws->file_size && r->len <= ws->file_size - r->off);
		CHECK(i == 0 || r->off > end);
		end = r->off + r->len;
		pages += r->len / GMEM_PAGE;
	}
	CHECK(workset_pages(ws) == pages);

	/* Encoded back: the same bytes. */
	CHECK(workset_encode(ws, &b) == 0);
	CHECK(b.len == len && !memcmp(b.p, p, len));
	wbuf_free(&b);

	memory();
	if (ws->file_size == gmem_layout_file_size(&l) && pages <= FAULT_MAX_PAGES) {
		CHECK(workset_fault_in(g, &l, ws, WORKSET_FAULT_AUTO, err, sizeof(err)) ==
		      (long)pages);
		for (uint32_t i = 0; i < ws->n; i++)
			for (uint64_t o = 0; o < ws->runs[i].len; o += GMEM_PAGE)
				CHECK(mapped(ws->runs[i].off + o));
	} else if (ws->file_size != gmem_layout_file_size(&l))
		CHECK(workset_fault_in(g, &l, ws, WORKSET_FAULT_AUTO, err, sizeof(err)) ==
			  -EINVAL &&
		      err[0]);
}

static void read_one(const uint8_t *p, size_t len)
{
	struct workset ws;
	char err[512] = "";
	int r = workset_parse(p, len, &ws, err, sizeof(err));

	if (r < 0) {
		CHECK(r == -EBADMSG || r == -EPROTONOSUPPORT || r == -ENOMEM);
		CHECK(err[0] && memchr(err, '\0', sizeof(err)));
		CHECK(ws.n == 0 && !ws.runs);
	} else {
		CHECK(r == 0);
		check_accepted(&ws, p, len);
		workset_free(&ws);
	}
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;
	size_t runs, total;

	if (size > (1u << 20))
		return 0;
	p = malloc(size ? size : 1);
	memcpy(p, data, size);
	read_one(p, size);
	free(p);

	/* The input as the memory size and the runs, in a frame the reader
	 * believes. */
	if (size < 8)
		return 0;
	runs = (size - 8) / 16;
	total = WORKSET_HEADER_LEN + runs * 16 + 4;
	p = malloc(total);
	memcpy(p, WORKSET_MAGIC, WORKSET_MAGIC_LEN);
	put32(p + 8, WORKSET_VERSION);
	put32(p + 12, (uint32_t)runs);
	memcpy(p + 16, data, 8);
	put32(p + 24, (uint32_t)crc32(0, p, 24));
	memcpy(p + WORKSET_HEADER_LEN, data + 8, runs * 16);
	put32(p + total - 4, (uint32_t)crc32(0, p, total - 4));
	read_one(p, total);
	free(p);
	return 0;
}
