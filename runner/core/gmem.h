/* Guest memory: the one guarded door to guest-physical addresses.
 * No other module does guest address arithmetic. */
#ifndef FLINT_GMEM_H
#define FLINT_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

struct gmem;

/* Guest RAM is at most two regions: below the 32-bit MMIO hole and above
 * 4 GiB (gmem_create). */
#define GMEM_MAX_REGIONS 2
/* The unit of dirty tracking and of the memory file's holes: KVM's dirty log
 * counts 4 KiB pages whatever backs them. */
#define GMEM_PAGE 4096ULL

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	void *host;
};

/* Where each region lies in guest-physical space and in a memory file (a
 * snapshot's region table; gmem_snap.h encodes it). flint's map is a
 * function of the total size (gmem_layout_for_size) and its file is the
 * regions' concatenation: region 0 at offset 0, region 1 right after it,
 * then the memory hot-plug region, if any (its unplugged blocks holes). */
struct gmem_layout {
	uint32_t nregions;
	struct gmem_layout_region {
		uint64_t gpa, size, offset;
	} r[GMEM_MAX_REGIONS];
	/* The hot-plug region (gmem_hotplug_add) with its block size; size 0
	 * without one (gmem_layout_for_size never makes one). */
	struct gmem_layout_hot {
		uint64_t gpa, size, block, offset;
	} hot;
};

/* How guest RAM is backed (machine-config's huge_pages and
 * track_dirty_pages). All false: gmem_create's anonymous 4 KiB pages. */
struct gmem_opts {
	/* 2 MiB hugetlbfs pages (MAP_HUGETLB | MAP_HUGE_2MB), reserved from
	 * the host's pool when mapped: size must be a multiple of 2 MiB, and
	 * a pool too small fails here with -ENOMEM instead of a SIGBUS when
	 * the guest first touches a page the pool cannot give. */
	bool huge_2m;
	/* KVM logs the pages the guest writes (KVM_MEM_LOG_DIRTY_PAGES on
	 * every slot, gmem_slot_flags), and gmem keeps a bitmap of the pages
	 * flint writes (gmem_ptr_w, gmem_write), for diff snapshots. */
	bool track_dirty;
};

/* Map `size` bytes of guest RAM (anonymous, MAP_NORESERVE, THP advised),
 * split around the 32-bit MMIO hole: [0, min(size, MMIO_GAP_START)) and, for
 * the rest, [4 GiB, ...). size must be a non-zero multiple of 4 KiB.
 * Returns 0 or -errno. */
int gmem_create(struct gmem **out, uint64_t size) WARN_UNUSED;
/* The same, backed as o says (NULL: as gmem_create). -EINVAL for a size
 * that is not a multiple of the page size; with huge_2m, -ENOMEM when the
 * host's pool (/proc/sys/vm/nr_hugepages) has too few free pages. */
int gmem_create_opts(struct gmem **out, uint64_t size, const struct gmem_opts *o) WARN_UNUSED;
void gmem_destroy(struct gmem *g); /* NULL ok */

/* The layout gmem_create gives `size` bytes (the regions around the hole,
 * concatenated in the file). size is not checked: see gmem_create. */
void gmem_layout_for_size(uint64_t size, struct gmem_layout *l);

/* Host pointer for [gpa, gpa+len) or NULL unless the whole range lies in one
 * RAM region (overflow checked; len 0 is treated as 1). For reading, or for
 * writing memory that a snapshot need not see as changed (nothing else):
 * flint's writes go through gmem_ptr_w or gmem_write. */
void *gmem_ptr(const struct gmem *g, uint64_t gpa, uint64_t len);
/* gmem_ptr for a range flint will write: with track_dirty its pages are
 * marked dirty now, so the next diff snapshot carries them. A caller that
 * keeps the pointer across a snapshot (gmem_save_diff) must mark again what
 * it writes after it (gmem_mark_dirty), or give the buffer back first. */
void *gmem_ptr_w(struct gmem *g, uint64_t gpa, uint64_t len);
/* Mark [gpa, gpa+len), or [host, host+len) of g's mapping, as written by
 * flint (no-op without track_dirty, or for a range outside RAM: the parts
 * inside are marked). One atomic OR per 64 pages; any thread. */
void gmem_mark_dirty(struct gmem *g, uint64_t gpa, uint64_t len);
void gmem_mark_dirty_host(struct gmem *g, const void *host, size_t len);

/* Copy to/from guest memory (gmem_write marks the pages dirty as
 * gmem_ptr_w does). Return 0 or -EFAULT. */
int gmem_read(const struct gmem *g, uint64_t gpa, void *dst, size_t len) WARN_UNUSED;
int gmem_write(struct gmem *g, uint64_t gpa, const void *src, size_t len) WARN_UNUSED;

/* Give the host back the memory of the backing pages wholly inside
 * [gpa, gpa+len) (a balloon's inflate): MADV_DONTNEED, so the guest's next
 * touch finds a zeroed page, or the memory file's (a File-backed restore).
 * Pages partly inside are kept (with 2 MiB pages, a run of 4 KiB pages
 * frees only the huge pages it covers). Not marked dirty: what the guest
 * gave holds nothing it reads. With memory a page-fault handler fills
 * (the Uffd backend) the kernel tells the handler (UFFD_EVENT_REMOVE, which
 * the handler must read before madvise returns), which serves zeros there
 * from then on. 0 (also when no whole page is inside); -EFAULT unless the
 * whole range lies in one RAM region; -errno from madvise. Any thread. */
int gmem_discard(struct gmem *g, uint64_t gpa, uint64_t len) WARN_UNUSED;

/* Total RAM bytes, RAM below the hole, and the regions (for KVM slots). */
uint64_t gmem_size(const struct gmem *g);
uint64_t gmem_low_end(const struct gmem *g);
size_t gmem_nregions(const struct gmem *g);
const struct gmem_region *gmem_region(const struct gmem *g, size_t i);

/* The flags of struct kvm_userspace_memory_region for every slot of g:
 * KVM_MEM_LOG_DIRTY_PAGES when it was created with track_dirty, else 0. */
uint32_t gmem_slot_flags(const struct gmem *g);
/* The size of the pages backing g: 4 KiB, or 2 MiB with huge_2m. */
uint64_t gmem_page_size(const struct gmem *g);

/* A memory hot-plug region (virtio-mem): `size` bytes at gpa, outside RAM
 * (neither in gmem_size nor the regions; a snapshot's memory file holds
 * its plugged blocks after RAM), mapped here (anonymous, MAP_NORESERVE:
 * nothing is used until touched; its host address for the VM's KVM slots
 * in gmem_hotplug_region). Its blocks of `block` bytes are all unplugged
 * at first: gmem_ptr and the rest reach only plugged ones, so no device of
 * flint's writes where the guest has no memory. gpa, size and block
 * multiples of 2 MiB, block a power of two dividing size; at most one
 * region. A region g has already, with the same gpa, size and block (one
 * a restore mapped from its memory file, gmem_create_from_file, or added
 * before the Uffd backend registered it), is taken as it is: 0. Else 0,
 * -EINVAL, -EEXIST or -ENOMEM. */
int gmem_hotplug_add(struct gmem *g, uint64_t gpa, uint64_t size, uint64_t block) WARN_UNUSED;
/* The hot-plug region, or NULL without one. */
const struct gmem_region *gmem_hotplug_region(const struct gmem *g);
/* Plug or unplug the blocks of [gpa, gpa + len) (block-aligned, inside the
 * region). Unplugged memory goes back to the host (MADV_DONTNEED): the
 * guest gives it up, and finds it zeroed (or, restored from a file, as the
 * file has it) when it plugs it again; with track_dirty its pages are
 * marked dirty, so that the diff snapshot after that carries it. 0 or
 * -EINVAL. Any thread. */
int gmem_hotplug_set(struct gmem *g, uint64_t gpa, uint64_t len, bool plugged) WARN_UNUSED;

/* Mark g as filled on first touch from outside (the Uffd backend: a page
 * not yet present holds data a handler brings), so that gmem_save_full
 * reads every page, faulting it in, rather than taking a page not present
 * for a hole. */
void gmem_set_lazy(struct gmem *g);

#endif
