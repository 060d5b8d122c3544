/* The virtio-blk host I/O engine: the disk image and the operations on it,
 * submitted to the drive's own ring (blk_ring.h). It knows nothing of
 * virtio: the front end (blk.c) parses requests and hands it byte ranges
 * and iovecs that point straight into guest memory (no bounce copies).
 *
 * Threads: whoever drives the ring (blk.c's lock held): blk_io_submit, and
 * done(), which runs from blk_ring_reap or blk_ring_drain. */
#ifndef FLINT_BLK_IO_H
#define FLINT_BLK_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blk/blk_ring.h"
#include "core/util.h"

/* An open image. */
struct blk_disk {
	int fd;		    /* -1 when closed */
	uint64_t bytes;	    /* file or block device size */
	uint32_t dio_align; /* O_DIRECT offset alignment in bytes; 0 if not direct or unknown */
};

/* Open path read-write or read-only (O_CLOEXEC, O_DIRECT when direct): a
 * regular file or a block device. Logs a message naming the file and the
 * step that failed. Returns 0 or -errno (-EINVAL: neither a regular file
 * nor a block device). */
int blk_disk_open(struct blk_disk *d, const char *path, bool read_only, bool direct) WARN_UNUSED;
void blk_disk_close(struct blk_disk *d); /* closed or never opened: ok */

/* The UUID of the ext2/3/4 file system d holds (its superblock's s_uuid):
 * 1 with uuid set, 0 when d holds no such file system, or -errno. What a
 * snapshot records of an image: a file system made again from the same
 * files gets another UUID, a copy keeps it. */
int blk_disk_fs_uuid(const struct blk_disk *d, uint8_t uuid[16]) WARN_UNUSED;

/* Whether path names the image d has open (the same inode: the same file,
 * through any name), and if so its size now in *bytes: a drive asked to
 * switch to the image it already has re-reads its size instead of opening
 * it again, which its own lock on the image would refuse. Returns 1 or 0
 * (not the same, or path cannot be looked at: the caller opens it and
 * reports what fails). */
int blk_disk_same(const struct blk_disk *d, const char *path, uint64_t *bytes) WARN_UNUSED;

enum blk_io_kind {
	BLK_IO_READ,	    /* preadv iov at off; len bytes expected */
	BLK_IO_WRITE,	    /* pwritev iov at off; len bytes expected */
	BLK_IO_FLUSH,	    /* fdatasync */
	BLK_IO_DISCARD,	    /* punch a hole in [off, off + len) */
	BLK_IO_WRITE_ZEROES /* [off, off + len) reads back zeros */
};

/* One operation. The caller fills the public part and embeds it; the engine
 * owns the rest until done(). */
struct blk_io {
	enum blk_io_kind kind;
	uint64_t off, len;
	const struct iovec *iov; /* READ/WRITE: must stay valid until done() */
	unsigned niov;
	bool unmap; /* WRITE_ZEROES: deallocating is fine (punch a hole) */
	/* WRITE_ZEROES: the range stays allocated, unmap or not, even where
	 * the file system has no ZERO_RANGE (tmpfs: a hole punched is
	 * allocated again) */
	bool keep;
	bool sync; /* WRITE/WRITE_ZEROES: fdatasync before done() */
	/* Result: 0, or -errno. A short read or write is -EIO: within the
	 * image's size it only happens if the file shrank under us. A discard
	 * the file system cannot do is 0 (discard is a hint). */
	void (*done)(struct blk_io *io, int res);

	/* Private to the engine. */
	struct blk_ring_op op;
	struct blk_ring *ring;
	int fd;
	int stage;
};

/* Queue io on the disk's fd in ring r (blk_ring_submit sends it). Returns 0
 * (done() will be called) or -errno from the ring (done() will not be). A
 * step after the first (the fdatasync of a sync write, the hole punched
 * where ZERO_RANGE is missing) that the ring refuses, during a drain say,
 * ends io with that error. */
int blk_io_submit(struct blk_ring *r, int fd, struct blk_io *io) WARN_UNUSED;

#endif
