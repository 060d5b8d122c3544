/* gmem_snap: guest memory in a snapshot (issue 12).
 *
 * The memory file is the guest's RAM regions concatenated in gpa order
 * (struct gmem_layout: region 0, [0, low), at offset 0; region 1, above
 * 4 GiB, at offset low), then the memory hot-plug region if there is one
 * (its plugged blocks' pages; an unplugged block is a hole), as Firecracker
 * appends it, gmem_layout_file_size bytes long. Its size and the regions
 * go in the state file as the region table (gmem_layout_save). Which blocks
 * are plugged is the virtio-mem device's state.
 *
 * Full: every page that holds data is written at its offset; a page the
 * guest never touched, or that holds only zeros, stays a hole (the file is
 * sparse: a 128 MiB guest that used 20 MiB takes about 20 MiB of disk).
 * Diff: only the pages dirtied since the last snapshot (KVM's log merged in
 * with gmem_dirty_merge and gmem_hotplug_dirty_merge, plus flint's own
 * writes; in the hot-plug region, only plugged blocks' pages: an unplugged
 * block's wait for it to be plugged again, and a block unplugged is all
 * dirty) at their offsets, in a file of the same layout: written over a
 * copy of the full file it gives the latest memory; kept apart, its data
 * extents are its pages, laid over the full one at load (gmem_apply_diff,
 * gmem_file_apply_diff). Reading a diff's pages back relies on the file
 * system reporting holes (SEEK_DATA) at a granularity of at most 4 KiB and
 * keeping written zeros as data: ext4, xfs, btrfs and tmpfs do; a file
 * system with larger blocks is refused at load.
 *
 * File backend: each region is a private mapping of the memory file, so a
 * page is read from it on first touch, VMs restored from one file share its
 * page cache, and the guest's writes stay private (copy on write).
 *
 * Saving must not race writers of guest memory: the vCPUs are paused and
 * the devices quiet. */
#ifndef FLINT_GMEM_SNAP_H
#define FLINT_GMEM_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gmem.h"
#include "core/util.h"
#include "core/wire.h"

/* The region table's section version (gmem_layout_save): 2 adds the
 * hot-plug region; a layout without one is written as version 1. */
#define GMEM_LAYOUT_VERSION 2

/* g's layout (its regions, concatenated in the file). */
void gmem_layout_of(const struct gmem *g, struct gmem_layout *l);
/* Bytes of a memory file of layout l: the end of its last region. */
uint64_t gmem_layout_file_size(const struct gmem_layout *l);
/* 0 when l is a layout gmem_create could have made (1 or 2 regions, a
 * total size gmem_create accepts, the regions and offsets that size gives),
 * else -EINVAL and err names the region and field. */
int gmem_layout_check(const struct gmem_layout *l, char *err, size_t errlen) WARN_UNUSED;

/* The region table as a state file section: u32 version, u32 nregions, then
 * per region u64 gpa, size, file offset; version 2 then the hot-plug
 * region's u64 gpa, size, block size and file offset. */
int gmem_layout_save(const struct gmem_layout *l, struct wbuf *w) WARN_UNUSED;
/* Decode and check (gmem_layout_check) a table into *l, unchanged on error:
 * -EBADMSG when truncated, -EINVAL for another version or a layout flint's
 * map does not allow; err says which. */
int gmem_layout_restore(struct gmem_layout *l, struct rbuf *r, char *err,
			size_t errlen) WARN_UNUSED;

/* Full snapshot of g into fd (a regular file, opened for writing; its old
 * content is discarded): the file is truncated to the layout's size and the
 * pages that hold data written in runs, one pwrite per run. Pages that hold
 * data are found with mincore(), which is exact unless the host swaps (a
 * swapped-out page shows as not resident): then /proc/self/pagemap
 * (present or swapped), else every page is read; an all-zero page is
 * skipped either way. With track_dirty, g's dirty bitmap is cleared on
 * success (a diff then follows this snapshot; the caller discards KVM's log
 * with KVM_GET_DIRTY_LOG too). 0 or -errno with err set. */
int gmem_save_full(struct gmem *g, int fd, char *err, size_t errlen) WARN_UNUSED;

/* OR KVM_GET_DIRTY_LOG's bitmap for slot (region index, as vm.c numbers
 * the slots) into g's: nbits must be the region's page count (the
 * bitmap's words are ceil(nbits/64), bits past nbits ignored). -EINVAL
 * without track_dirty, for an unknown slot or another size. Call before
 * gmem_save_diff: a diff that fails keeps the bitmap, so nothing is lost. */
int gmem_dirty_merge(struct gmem *g, size_t slot, const unsigned long *kvm_bitmap,
		     uint64_t nbits) WARN_UNUSED;

/* The same for KVM's log of the hot-plug region's slot at byte offset off
 * of the region (a multiple of 64 pages), nbits pages long. -EINVAL
 * without track_dirty or a region, or for a slot not inside it. */
int gmem_hotplug_dirty_merge(struct gmem *g, uint64_t off, const unsigned long *kvm_bitmap,
			     uint64_t nbits) WARN_UNUSED;

/* Diff snapshot of g into fd: the dirty pages (zeros included) at their
 * offsets; the file is extended to the layout's size if shorter and
 * nothing else in it is touched, so fd is either a new empty file (opened
 * with O_TRUNC: a diff apart) or a copy of the full file to update. On
 * success g's dirty bitmap is cleared; on failure it keeps every page.
 * -EINVAL without track_dirty. */
int gmem_save_diff(struct gmem *g, int fd, char *err, size_t errlen) WARN_UNUSED;

/* Map guest RAM from a memory file of layout l (File backend): each region
 * a private mapping of fd at its offset, the hot-plug region's too (every
 * block unplugged: gmem_hotplug_set plugs what the device's state says). l must pass
 * gmem_layout_check, fd be a regular file at least gmem_layout_file_size(l) long (-EINVAL, err says
 * which); o as gmem_create_opts, but huge_2m is refused (hugetlbfs pages cannot map a regular
 * file). fd may be closed afterwards; the file must not be shrunk while g lives (a page past its
 * end is a SIGBUS). */
int gmem_create_from_file(struct gmem **out, const struct gmem_layout *l, int fd,
			  const struct gmem_opts *o, char *err, size_t errlen) WARN_UNUSED;

/* True when fd is the memory file g is mapped from (a File-backed
 * restore): writing a snapshot into it would change the guest's memory. */
bool gmem_maps_file(const struct gmem *g, int fd);

/* Whether g is a File-backed restore's memory (gmem_create_from_file):
 * the memory gmem_drop_private can take back to the file. */
bool gmem_from_file(const struct gmem *g);

/* A File-backed restore's memory file still holds all the mappings reach:
 * 0, or -EIO with err saying how far it shrank (a host program truncated
 * it; the pages the guest has not written since are gone, and a touch of
 * one would hang the guest in KVM or kill flint with SIGBUS). 0 for any
 * other memory. Any thread. */
int gmem_check_file(const struct gmem *g, char *err, size_t errlen) WARN_UNUSED;

/* Take every page of g the guest or flint wrote since it was mapped back
 * to the memory file's: the private copies (found in /proc/self/pagemap)
 * read back from the file in place, up to 8 MiB of them, and dropped
 * past that (MADV_DONTNEED: the next read is the file's); without
 * pagemap, every page dropped. Pages only read stay as they are. Either
 * way no page keeps what was written, and the guest faults on as few as
 * can be. What
 * laid a diff over g (gmem_apply_diff) is dropped too. -EOPNOTSUPP for a
 * g that is not a File-backed restore's (anonymous memory would read back
 * zeros); -errno from madvise (then part of g may be dropped already). The
 * vCPUs must be paused and no device writing guest memory. The hot-plug
 * region's pages too, plugged or not (which blocks are plugged is not
 * changed here). */
int gmem_drop_private(struct gmem *g) WARN_UNUSED;

/* Read a diff file's pages (its data extents) into g, over what g holds
 * (a restored full snapshot): copy on write for a file-backed g, the
 * memory file is not changed. The diff must be g's layout's size.
 * -EOPNOTSUPP when its file system does not report holes finely enough. */
int gmem_apply_diff(struct gmem *g, int diff_fd, char *err, size_t errlen) WARN_UNUSED;
/* The same into a working copy of the full memory file (base_fd, opened
 * read-write), both of layout l. */
int gmem_file_apply_diff(int base_fd, int diff_fd, const struct gmem_layout *l, char *err,
			 size_t errlen) WARN_UNUSED;

#endif
