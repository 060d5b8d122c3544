/* gmem's insides, shared by gmem.c and gmem_snap.c (and their unit tests);
 * no other module includes this. */
#ifndef FLINT_GMEM_INT_H
#define FLINT_GMEM_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/gmem.h"

#define BITS_PER_WORD (8 * sizeof(unsigned long))

struct gmem {
	size_t nregions;
	struct gmem_region r[GMEM_MAX_REGIONS];
	uint64_t size;
	struct gmem_opts opts;
	/* With track_dirty: one bit per GMEM_PAGE of each region, set for the
	 * pages flint wrote (and, after gmem_dirty_merge, the guest) since the
	 * last snapshot. Words are read and written with atomics. */
	unsigned long *dirty[GMEM_MAX_REGIONS];
	/* The memory file a File-backed restore maps (its own dup), or -1,
	 * and the bytes of it the mappings reach. */
	int file_fd;
	uint64_t file_need;
	/* gmem_set_lazy: pages not present may hold data. */
	bool lazy;
	/* The memory hot-plug region (gmem_hotplug_add), size 0 without one:
	 * one bit per block of plugged, and with track_dirty one per
	 * GMEM_PAGE of dirty (as RAM's), read and written with atomics. */
	struct {
		struct gmem_region r;
		uint64_t block;
		unsigned long *plugged;
		unsigned long *dirty;
	} hot;
};

/* Words of a bitmap of nbits bits. */
static inline uint64_t gmem_bits_words(uint64_t nbits)
{
	return (nbits + BITS_PER_WORD - 1) / BITS_PER_WORD;
}

/* Set bits [first, first + n) of b, a word at a time (atomic OR). */
void gmem_bits_set(unsigned long *b, uint64_t first, uint64_t n);
/* OR src's first nbits bits into dst (atomic per word); src's bits past
 * nbits in its last word are ignored, so dst's stay as they were. */
void gmem_bits_or(unsigned long *dst, const unsigned long *src, uint64_t nbits);
static inline bool gmem_bits_test(const unsigned long *b, uint64_t i)
{
	return (b[i / BITS_PER_WORD] >> (i % BITS_PER_WORD)) & 1;
}
/* The same for a bitmap other threads change (the hot-plug region's). */
static inline bool gmem_bits_test_atomic(const unsigned long *b, uint64_t i)
{
	return (__atomic_load_n(&b[i / BITS_PER_WORD], __ATOMIC_RELAXED) >> (i % BITS_PER_WORD)) &
	       1;
}

/* How gmem_save_full finds the pages that may hold data: AUTO is mincore()
 * when the host has no swap in use, else PAGEMAP (present or swapped in
 * /proc/self/pagemap), else ALL (every page read). Tests force each. */
enum gmem_scan { GMEM_SCAN_AUTO, GMEM_SCAN_MINCORE, GMEM_SCAN_PAGEMAP, GMEM_SCAN_ALL };
int gmem_save_full_scan(struct gmem *g, int fd, enum gmem_scan how, char *err,
			size_t errlen) WARN_UNUSED;

/* Allocate g's dirty bitmaps (all clear) when g->opts.track_dirty. */
int gmem_alloc_dirty(struct gmem *g) WARN_UNUSED;

/* The rules gmem_hotplug_add holds a hot-plug region to, against the RAM
 * regions of ram (its hot part ignored): 0, or -EINVAL with err naming
 * the rule broken. A snapshot's region is checked by the same rules
 * (gmem_layout_check). */
int gmem_hotplug_check(const struct gmem_layout *ram, uint64_t gpa, uint64_t size, uint64_t block,
		       char *err, size_t errlen) WARN_UNUSED;

/* Give g a hot-plug region mapped at host (g takes it: gmem_destroy
 * unmaps it), every block unplugged, with its bitmaps. gmem_hotplug_add's
 * checks are the caller's. 0 or -ENOMEM (host is then the caller's). */
int gmem_hotplug_adopt(struct gmem *g, void *host, uint64_t gpa, uint64_t size,
		       uint64_t block) WARN_UNUSED;

/* The next run of plugged blocks of g's hot-plug region at or after block
 * *at: false when there is none; else true with blocks [*first, *end), and
 * *at moved past them. */
bool gmem_hotplug_next_run(const struct gmem *g, uint64_t *at, uint64_t *first, uint64_t *end);

/* The advice every mapping of guest memory gets: left out of core dumps
 * and out of children (MADV_DONTDUMP, MADV_DONTFORK). */
void gmem_advise_private(void *p, uint64_t size);

#endif
