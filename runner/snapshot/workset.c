/* workset: record a restored guest's touched pages as a loading set and
 * fault one in at once; the file and what "touched" means are in
 * workset.h. */
#include "snapshot/workset.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/gmem_snap.h"

/* Where the header's fields are. */
#define OFF_VERSION 8
#define OFF_COUNT   12
#define OFF_SIZE    16
#define OFF_HCRC    24
#define RUN_LEN	    16u
#define CRC_LEN	    4u
/* The largest memory file a layout allows (gmem_layout_check). */
#define MAX_MEMORY (1ULL << 46)
/* pagemap entries read at once: 16 MiB of guest memory. */
#define CHUNK	   4096
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define READ_AHEAD (128u << 10)

static uint32_t crc(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), p, n);
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

/* --- the rules, for the reader and the writer ------------------------------ */

/* 0 when the runs of ws obey the file's rules, else -EINVAL and err names
 * the first run that does not. */
static int check_runs(const struct workset *ws, char *err, size_t errlen)
{
	uint64_t end = 0;

	if (ws->file_size == 0 || ws->file_size % GMEM_PAGE || ws->file_size > MAX_MEMORY)
		return err_set(
		    err, errlen, -EINVAL,
		    "a memory size of 0x%llx (not a non-zero multiple of 4 KiB up to 2^46)",
		    (unsigned long long)ws->file_size);
	if (ws->n > WORKSET_MAX_RUNS)
		return err_set(err, errlen, -EINVAL, "%u runs, at most %u", ws->n,
			       WORKSET_MAX_RUNS);
	for (uint32_t i = 0; i < ws->n; i++) {
		const struct workset_run *r = &ws->runs[i];

		if (r->len == 0)
			return err_set(err, errlen, -EINVAL, "run %u at 0x%llx is empty", i,
				       (unsigned long long)r->off);
		if (r->off % GMEM_PAGE || r->len % GMEM_PAGE)
			return err_set(err, errlen, -EINVAL,
				       "run %u [0x%llx, +0x%llx) is not page-aligned", i,
				       (unsigned long long)r->off, (unsigned long long)r->len);
		if (r->off > ws->file_size || r->len > ws->file_size - r->off)
			return err_set(
			    err, errlen, -EINVAL,
			    "run %u [0x%llx, +0x%llx) ends past the memory's 0x%llx bytes", i,
			    (unsigned long long)r->off, (unsigned long long)r->len,
			    (unsigned long long)ws->file_size);
		if (i && r->off < end)
			return err_set(err, errlen, -EINVAL,
				       "run %u at 0x%llx is before the end of run %u (0x%llx): "
				       "unsorted or overlapping",
				       i, (unsigned long long)r->off, i - 1,
				       (unsigned long long)end);
		if (i && r->off == end)
			return err_set(err, errlen, -EINVAL,
				       "run %u at 0x%llx starts where run %u ends (one run)", i,
				       (unsigned long long)r->off, i - 1);
		end = r->off + r->len;
	}
	return 0;
}

uint64_t workset_pages(const struct workset *ws)
{
	uint64_t pages = 0;

	for (uint32_t i = 0; i < ws->n; i++)
		pages += ws->runs[i].len / GMEM_PAGE;
	return pages;
}

void workset_free(struct workset *ws)
{
	if (!ws)
		return;
	free(ws->runs);
	*ws = (struct workset){0};
}

/* --- reading --------------------------------------------------------------- */

/* Magic, format version, the header's CRC (which covers the count), the
 * length the count gives, the whole CRC: each believed only once the one
 * before it held. *n is the run count. */
static int check_frame(const uint8_t *buf, size_t len, uint32_t *n, char *err, size_t errlen)
{
	uint32_t v, want;
	uint64_t total;

	if (len && memcmp(buf, WORKSET_MAGIC, len < WORKSET_MAGIC_LEN ? len : WORKSET_MAGIC_LEN))
		return err_set(err, errlen, -EBADMSG, "not a flint loading set");
	if (len < OFF_VERSION + 4)
		goto truncated;
	if ((v = le32_at(buf + OFF_VERSION)) != WORKSET_VERSION)
		return err_set(err, errlen, -EPROTONOSUPPORT,
			       "format version %u, this flint reads %u", v, WORKSET_VERSION);
	if (len < WORKSET_HEADER_LEN)
		goto truncated;
	if ((v = le32_at(buf + OFF_HCRC)) != (want = crc(buf, OFF_HCRC)))
		return err_set(err, errlen, -EBADMSG,
			       "corrupt: header checksum 0x%08x, its bytes give 0x%08x", v, want);
	*n = le32_at(buf + OFF_COUNT);
	if (*n > WORKSET_MAX_RUNS)
		return err_set(err, errlen, -EBADMSG, "corrupt: %u runs, at most %u", *n,
			       WORKSET_MAX_RUNS);
	total = WORKSET_HEADER_LEN + (uint64_t)*n * RUN_LEN + CRC_LEN;
	if (len < total)
		return err_set(err, errlen, -EBADMSG, "truncated at byte %zu of %llu", len,
			       (unsigned long long)total);
	if (len > total)
		return err_set(err, errlen, -EBADMSG,
			       "corrupt: %zu bytes long, its %u runs make %llu", len, *n,
			       (unsigned long long)total);
	if ((v = le32_at(buf + len - CRC_LEN)) != (want = crc(buf, len - CRC_LEN)))
		return err_set(err, errlen, -EBADMSG,
			       "corrupt: checksum 0x%08x, its bytes give 0x%08x", v, want);
	return 0;

truncated:
	return err_set(err, errlen, -EBADMSG, "truncated at byte %zu (in the %u-byte header)", len,
		       WORKSET_HEADER_LEN);
}

int workset_parse(const uint8_t *buf, size_t len, struct workset *out, char *err, size_t errlen)
{
	struct workset ws = {0};
	struct rbuf r;
	char why[256];
	int ret;

	*out = (struct workset){0};
	ret = check_frame(buf, len, &ws.n, err, errlen);
	if (ret)
		return ret;
	rbuf_init(&r, buf + OFF_SIZE, len - OFF_SIZE - CRC_LEN);
	ws.file_size = rget_u64(&r);
	(void)rget_u32(&r); /* the header's CRC, checked */
	if (ws.n && !(ws.runs = calloc(ws.n, sizeof(*ws.runs))))
		return err_set(err, errlen, -ENOMEM, "out of memory for %u runs", ws.n);
	for (uint32_t i = 0; i < ws.n; i++) {
		ws.runs[i].off = rget_u64(&r);
		ws.runs[i].len = rget_u64(&r);
	}
	/* The frame's length check makes both impossible. */
	if (rbuf_err(&r) || !rbuf_done(&r)) {
		ret = err_set(err, errlen, -EBADMSG, "corrupt: the runs do not fill the file");
		goto err;
	}
	ret = check_runs(&ws, why, sizeof(why));
	if (ret) {
		ret = err_set(err, errlen, -EBADMSG, "corrupt: %s", why);
		goto err;
	}
	*out = ws;
	return 0;

err:
	workset_free(&ws);
	return ret;
}

/* --- writing --------------------------------------------------------------- */

int workset_encode(const struct workset *ws, struct wbuf *out)
{
	uint32_t v32;
	int ret;

	wbuf_init(out);
	if (ws->n > WORKSET_MAX_RUNS)
		return -E2BIG;
	ret = check_runs(ws, NULL, 0);
	if (ret)
		return ret;
	wput_bytes(out, WORKSET_MAGIC, WORKSET_MAGIC_LEN);
	wput_u32(out, WORKSET_VERSION);
	wput_u32(out, ws->n);
	wput_u64(out, ws->file_size);
	wput_u32(out, 0); /* the header's CRC, once the header is there */
	for (uint32_t i = 0; i < ws->n; i++) {
		wput_u64(out, ws->runs[i].off);
		wput_u64(out, ws->runs[i].len);
	}
	ret = wbuf_err(out);
	if (ret)
		return ret;
	v32 = htole32(crc(out->p, OFF_HCRC));
	memcpy(out->p + OFF_HCRC, &v32, sizeof(v32));
	wput_u32(out, crc(out->p, out->len));
	return wbuf_err(out);
}

/* 0 when l is a good layout and g's, else -EINVAL with err. */
static int layout_is_g(const struct gmem *g, const struct gmem_layout *l, char *err, size_t errlen)
{
	struct gmem_layout own;
	int ret = gmem_layout_check(l, err, errlen);

	if (ret)
		return ret;
	gmem_layout_of(g, &own);
	if (own.nregions != l->nregions)
		return err_set(err, errlen, -EINVAL,
			       "memory layout: %u regions, this VM's memory has %u", l->nregions,
			       own.nregions);
	for (uint32_t i = 0; i < l->nregions; i++)
		if (own.r[i].gpa != l->r[i].gpa || own.r[i].size != l->r[i].size ||
		    own.r[i].offset != l->r[i].offset)
			return err_set(err, errlen, -EINVAL,
				       "memory layout: region %u is not this VM's memory's", i);
	return 0;
}

/* Append the page at file offset off to ws: it extends the last run when
 * it follows it. */
static int add_page(struct workset *ws, uint32_t *cap, uint64_t off)
{
	struct workset_run *last = ws->n ? &ws->runs[ws->n - 1] : NULL;

	if (last && last->off + last->len == off) {
		last->len += GMEM_PAGE;
		return 0;
	}
	if (ws->n == WORKSET_MAX_RUNS)
		return -E2BIG;
	if (ws->n == *cap) {
		uint32_t ncap = *cap ? 2 * *cap : 256;
		struct workset_run *p;

		if (ncap > WORKSET_MAX_RUNS)
			ncap = WORKSET_MAX_RUNS;
		p = realloc(ws->runs, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		ws->runs = p;
		*cap = ncap;
	}
	ws->runs[ws->n++] = (struct workset_run){.off = off, .len = GMEM_PAGE};
	return 0;
}

int workset_scan(const struct gmem *g, const struct gmem_layout *l, struct workset *out, char *err,
		 size_t errlen)
{
	struct workset ws = {.file_size = gmem_layout_file_size(l)};
	uint64_t *pm_buf = NULL;
	uint32_t cap = 0;
	int pm = -1, ret;

	*out = (struct workset){0};
	ret = layout_is_g(g, l, err, errlen);
	if (ret)
		return ret;
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return err_set(err, errlen, -errno, "loading set: /proc/self/pagemap: %s",
			       strerror(errno));
	pm_buf = malloc(CHUNK * sizeof(*pm_buf));
	if (!pm_buf) {
		ret = err_set(err, errlen, -ENOMEM, "loading set: out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < l->nregions; i++) {
		const struct gmem_region *r = gmem_region(g, i);
		uint64_t npages = r->size / GMEM_PAGE;

		for (uint64_t base = 0; base < npages; base += CHUNK) {
			uint64_t n = npages - base < CHUNK ? npages - base : CHUNK;
			uintptr_t host = (uintptr_t)r->host + base * GMEM_PAGE;

			ret = pread_full(pm, pm_buf, n * sizeof(*pm_buf),
					 host / GMEM_PAGE * sizeof(*pm_buf));
			if (ret) {
				ret = err_set(err, errlen, ret,
					      "loading set: reading /proc/self/pagemap: %s",
					      strerror(-ret));
				goto out;
			}
			for (uint64_t j = 0; j < n; j++) {
				if (!(pm_buf[j] & (PM_PRESENT | PM_SWAPPED)))
					continue;
				ret = add_page(&ws, &cap, l->r[i].offset + (base + j) * GMEM_PAGE);
				if (ret) {
					ret = err_set(err, errlen, ret,
						      ret == -E2BIG
							  ? "loading set: over %u runs"
							  : "loading set: out of memory (%u runs)",
						      ws.n);
					goto out;
				}
			}
		}
	}
	*out = ws;
	ws = (struct workset){0};
out:
	workset_free(&ws);
	free(pm_buf);
	close_fd(&pm);
	return ret;
}

int workset_record(const struct gmem *g, const struct gmem_layout *l, const char *path, char *err,
		   size_t errlen)
{
	struct workset ws;
	struct wbuf b;
	int ret;

	ret = workset_scan(g, l, &ws, err, errlen);
	if (ret)
		return ret;
	ret = workset_encode(&ws, &b);
	if (ret)
		ret =
		    err_set(err, errlen, ret, "loading set %s: encoding: %s", path, strerror(-ret));
	else
		ret = write_file_atomic("loading set", path, b.p, b.len, err, errlen);
	wbuf_free(&b);
	workset_free(&ws);
	return ret;
}

/* --- prefetching ----------------------------------------------------------- */

/* Call fn on each piece of ws's runs in g's mappings (a run crossing from
 * one region into the next is two pieces); stop at the first error. */
static int for_each_piece(struct gmem *g, const struct gmem_layout *l, const struct workset *ws,
			  int (*fn)(void *ctx, uint8_t *host, uint64_t len), void *ctx)
{
	for (uint32_t k = 0; k < ws->n; k++) {
		uint64_t off = ws->runs[k].off, len = ws->runs[k].len;

		for (uint32_t i = 0; i < l->nregions && len; i++) {
			const struct gmem_layout_region *r = &l->r[i];

			if (off < r->offset || off - r->offset >= r->size)
				continue;
			uint64_t in = off - r->offset;
			uint64_t n = r->size - in < len ? r->size - in : len;
			int ret = fn(ctx, (uint8_t *)gmem_region(g, i)->host + in, n);
			if (ret)
				return ret;
			off += n;
			len -= n;
		}
	}
	return 0;
}

/* Start the read of a piece from the file, without waiting: in pieces of
 * 128 KiB, since the kernel reads at most its read-ahead window (128 KiB
 * by default) per call. Advice: a failure costs only speed. */
static int willneed(void *ctx, uint8_t *host, uint64_t len)
{
	(void)ctx;
	for (uint64_t o = 0; o < len; o += READ_AHEAD)
		madvise(host + o, len - o < READ_AHEAD ? len - o : READ_AHEAD, MADV_WILLNEED);
	return 0;
}

static int touch(uint8_t *host, uint64_t len)
{
	for (uint64_t o = 0; o < len; o += GMEM_PAGE)
		(void)*(volatile const uint8_t *)(host + o);
	return 0;
}

static int fault_in(void *ctx, uint8_t *host, uint64_t len)
{
	enum workset_fault *how = ctx;

	if (*how == WORKSET_FAULT_TOUCH)
		return touch(host, len);
	while (madvise(host, len, MADV_POPULATE_READ) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EINVAL)
			return -errno;
		/* A kernel before 5.14: touch, here and for the runs after. */
		*how = WORKSET_FAULT_TOUCH;
		return touch(host, len);
	}
	return 0;
}

/* workset_fault_in, its message without a prefix. */
static long fault_in_ws(struct gmem *g, const struct gmem_layout *l, const struct workset *ws,
			enum workset_fault how, char *err, size_t errlen)
{
	int ret;

	ret = layout_is_g(g, l, err, errlen);
	if (ret)
		return ret;
	if (ws->file_size != gmem_layout_file_size(l))
		return err_set(err, errlen, -EINVAL,
			       "recorded for %llu bytes of memory, this VM has %llu",
			       (unsigned long long)ws->file_size,
			       (unsigned long long)gmem_layout_file_size(l));
	ret = check_runs(ws, err, errlen);
	/* touch() would die of SIGBUS past a shrunk file's end (a populate
	 * fails with EFAULT). */
	if (!ret)
		ret = gmem_check_file(g, err, errlen);
	if (ret)
		return ret;
	(void)for_each_piece(g, l, ws, willneed, NULL);
	ret = for_each_piece(g, l, ws, fault_in, &how);
	if (ret)
		return err_set(err, errlen, ret, "faulting pages in: %s", strerror(-ret));
	return (long)workset_pages(ws);
}

long workset_fault_in(struct gmem *g, const struct gmem_layout *l, const struct workset *ws,
		      enum workset_fault how, char *err, size_t errlen)
{
	char why[256];
	long ret = fault_in_ws(g, l, ws, how, why, sizeof(why));

	if (ret < 0)
		return err_set(err, errlen, (int)ret, "loading set: %s", why);
	return ret;
}

/* The file at path into a malloc'd *buf (read, not mapped: a file cut
 * short meanwhile is an error, not a SIGBUS). */
static int read_set(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd, ret;

	*buf = NULL;
	*len = 0;
	fd = open_regular(path, O_RDONLY, &st);
	if (fd < 0)
		return err_set(err, errlen, fd, "loading set %s: %s", path, file_strerror(fd));
	if ((uint64_t)st.st_size > WORKSET_MAX_FILE) {
		ret = err_set(err, errlen, -EFBIG, "loading set %s: over %llu bytes", path,
			      (unsigned long long)WORKSET_MAX_FILE);
		goto out;
	}
	*buf = malloc(st.st_size ? st.st_size : 1);
	if (!*buf) {
		ret = err_set(err, errlen, -ENOMEM, "loading set %s: out of memory", path);
		goto out;
	}
	ret = pread_full(fd, *buf, st.st_size, 0);
	if (ret) {
		ret = err_set(err, errlen, ret, "loading set %s: reading: %s", path,
			      ret == -EIO ? "it shrank while read" : strerror(-ret));
		free(*buf);
		*buf = NULL;
		goto out;
	}
	*len = st.st_size;
out:
	close_fd(&fd);
	return ret;
}

long workset_prefetch(struct gmem *g, const struct gmem_layout *l, const char *path, char *err,
		      size_t errlen)
{
	struct workset ws;
	uint8_t *buf;
	size_t len;
	char why[256];
	long ret;

	ret = read_set(path, &buf, &len, err, errlen);
	if (ret)
		return ret;
	ret = workset_parse(buf, len, &ws, why, sizeof(why));
	free(buf);
	if (ret)
		return err_set(err, errlen, (int)ret, "loading set %s: %s", path, why);
	ret = fault_in_ws(g, l, &ws, WORKSET_FAULT_AUTO, why, sizeof(why));
	workset_free(&ws);
	if (ret < 0)
		return err_set(err, errlen, (int)ret, "loading set %s: %s", path, why);
	return ret;
}
