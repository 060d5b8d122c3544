/* workset: a restored guest's working set as a loading set (issue 12's
 * working-set prefetch, after REAP and FaaSnap). One restore records which
 * pages of guest memory the guest touched (until its first response, say);
 * later restores from the same snapshot fault those pages in at once, in
 * large runs, before the guest resumes, instead of one fault per page
 * while it runs.
 *
 * The file, little-endian:
 *   "FLINTWKS", u32 format version, u32 run count, u64 the memory file's
 *   size (gmem_layout_file_size), u32 CRC32 of those 24 bytes (so that the
 *   count may be believed before the rest is read);
 *   the runs, each u64 offset and u64 length in the memory file: page
 *   aligned, non-empty, sorted, neither overlapping nor touching (adjacent
 *   pages are one run, across the regions too: the file concatenates them);
 *   u32 CRC32 (zlib) of everything before it.
 * The reader believes nothing before its check: magic, format version, the
 * header's CRC, the length the count gives, the whole CRC, then each run.
 *
 * "Touched" is what /proc/self/pagemap says is present or swapped in the
 * regions' mappings (readable without privileges: only the PFNs need
 * CAP_SYS_ADMIN). It is a superset of the pages the guest used: on a read
 * fault in a file mapping (the File backend) the kernel also maps the pages
 * around it that are already in the page cache (fault-around, 64 KiB by
 * default, never across a 2 MiB boundary), and a transparent huge page
 * counts whole. That costs a little extra prefetching. A page is missed
 * only if the host reclaimed it meanwhile (memory pressure unmaps clean
 * file pages). Pages flint touched for the guest (its rings, a diff laid
 * over the memory) count too: the next restore needs them as well.
 * A recording restore that wants the exact set drops the memory file's
 * page cache first (POSIX_FADV_DONTNEED on a disk file system) and advises
 * MADV_RANDOM on the regions (no read-ahead), so that nothing but the
 * touched pages is cached to be mapped around them. */
#ifndef FLINT_WORKSET_H
#define FLINT_WORKSET_H

#include <stddef.h>
#include <stdint.h>

#include "core/gmem.h"
#include "core/util.h"
#include "core/wire.h"

#define WORKSET_MAGIC	  "FLINTWKS"
#define WORKSET_MAGIC_LEN 8
/* The layout this flint writes and the only one it reads. */
#define WORKSET_VERSION	   1u
#define WORKSET_HEADER_LEN 28u
/* At most this many runs (64 MiB of file): a 128 MiB guest has at most
 * 16 Ki, one every other page. */
#define WORKSET_MAX_RUNS (1u << 22)
/* The biggest file workset_prefetch reads. */
#define WORKSET_MAX_FILE (WORKSET_HEADER_LEN + 16ull * WORKSET_MAX_RUNS + 4)

struct workset_run {
	uint64_t off, len; /* in the memory file, bytes */
};

/* A loading set: the memory file's size and its runs (malloc'd). */
struct workset {
	uint64_t file_size;
	uint32_t n;
	struct workset_run *runs;
};

/* Check and decode a loading set of len bytes into *out (its runs
 * malloc'd; release with workset_free). 0; -EBADMSG when buf is not a
 * loading set, truncated or corrupt (a run out of order, overlapping,
 * unaligned or past the memory's end under a good checksum);
 * -EPROTONOSUPPORT for another format version; -ENOMEM. err says which;
 * *out is empty on error. Memory only: flint-uffd may use it to prefetch. */
int workset_parse(const uint8_t *buf, size_t len, struct workset *out, char *err,
		  size_t errlen) WARN_UNUSED;
/* The file's bytes for ws into out (initialised here; wbuf_free it).
 * -EINVAL when ws breaks a rule the reader holds it to, -E2BIG over
 * WORKSET_MAX_RUNS, -ENOMEM. */
int workset_encode(const struct workset *ws, struct wbuf *out) WARN_UNUSED;
/* The pages ws covers. */
uint64_t workset_pages(const struct workset *ws);
void workset_free(struct workset *ws); /* NULL ok; leaves it empty */

/* The pages of g touched so far (see above) into *out, in file offsets of
 * layout l, which must be g's (-EINVAL otherwise). -E2BIG over
 * WORKSET_MAX_RUNS; -errno when /proc/self/pagemap cannot be read (no
 * /proc in a jail). err says which. */
int workset_scan(const struct gmem *g, const struct gmem_layout *l, struct workset *out, char *err,
		 size_t errlen) WARN_UNUSED;

/* workset_scan written to path as a loading set, atomically: a fresh
 * PATH.tmp, fsync, rename, the directory fsync'd (a crash leaves the old
 * file or the new one). 0 or -errno with err. */
int workset_record(const struct gmem *g, const struct gmem_layout *l, const char *path, char *err,
		   size_t errlen) WARN_UNUSED;

/* How workset_fault_in faults the pages in. AUTO: the file's reads for
 * every run started at once (MADV_WILLNEED, 128 KiB a call: with a cold
 * page cache they then run side by side rather than one run after the
 * other), then one MADV_POPULATE_READ per run (Linux 5.14+), falling back
 * to TOUCH where the kernel lacks it (EINVAL). TOUCH: the same reads, then
 * one byte read per page: for old kernels, and to measure against. */
enum workset_fault { WORKSET_FAULT_AUTO, WORKSET_FAULT_TOUCH };

/* Fault ws's runs into g, a File-backed restore's memory of layout l (g's
 * own; ws->file_size must be l's size: -EINVAL, nothing touched). For a
 * Uffd-backed g, do not call it: each page would be one round trip to the
 * handler, which may prefetch on its own. Returns the pages faulted in, or
 * -errno with err (-EFAULT: a page could not be read, e.g. the memory file
 * shrank). */
long workset_fault_in(struct gmem *g, const struct gmem_layout *l, const struct workset *ws,
		      enum workset_fault how, char *err, size_t errlen) WARN_UNUSED;

/* Read the loading set at path (at most WORKSET_MAX_FILE bytes), check it
 * (workset_parse, then its size against l's) and fault it into g
 * (workset_fault_in, AUTO). Returns the pages prefetched, or -errno with
 * err naming the file and what is wrong with it; a refused file changes
 * nothing in g. */
long workset_prefetch(struct gmem *g, const struct gmem_layout *l, const char *path, char *err,
		      size_t errlen) WARN_UNUSED;

#endif
