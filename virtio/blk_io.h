/* The virtio-blk host I/O engine: the disk image and the operations on it,
 * submitted to the event loop. It knows nothing of virtio: the front end
 * (blk.c) parses requests and hands it byte ranges and iovecs that point
 * straight into guest memory (no bounce copies).
 *
 * Threads: blk_io_submit only on the loop thread (or before the loop runs);
 * done() runs on the loop thread. */
#ifndef FLINT_BLK_IO_H
#define FLINT_BLK_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "evloop.h"
#include "util.h"

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
	bool sync;  /* WRITE/WRITE_ZEROES: fdatasync before done() */
	/* Result: 0, or -errno. A short read or write is -EIO: within the
	 * image's size it only happens if the file shrank under us. A discard
	 * the file system cannot do is 0 (discard is a hint). */
	void (*done)(struct blk_io *io, int res);

	/* Private to the engine. */
	struct ev_op op;
	struct evloop *loop;
	int fd;
	int stage;
};

/* Start io on the disk's fd. Returns 0 (done() will be called) or -errno
 * from the loop (done() will not be called). */
int blk_io_submit(struct evloop *l, int fd, struct blk_io *io) WARN_UNUSED;

#endif
