/* The virtio-blk I/O engine; see blk_io.h. */
#include "blk/blk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
/* KEEP_SIZE: block devices want it, and the range is within the file. */
#define ZERO (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)

enum { STAGE_MAIN, STAGE_ZERO_BY_PUNCH, STAGE_REALLOCATE, STAGE_SYNC };

/* O_DIRECT offset alignment, from statx (Linux 6.1+ file systems that
 * report it) or the logical sector size of a block device; 0 if unknown. */
static uint32_t dio_alignment(int fd, bool blkdev)
{
	struct statx stx;
	int ssz;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align)
		return stx.stx_dio_offset_align;
	if (blkdev && ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
		return (uint32_t)ssz;
	return 0;
}

/* The size in bytes of the regular file or block device fd, whose stat is
 * *st. Logs naming path. Returns 0 or -errno (-EINVAL: neither). */
static int disk_size(int fd, const struct stat *st, const char *path, uint64_t *bytes)
{
	int err;

	if (S_ISREG(st->st_mode)) {
		*bytes = (uint64_t)st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, bytes) == 0)
			return 0;
		err = -errno;
		pr_err("drive %s: BLKGETSIZE64: %s", path, strerror(-err));
		return err;
	}
	pr_err("drive %s: not a regular file or block device", path);
	return -EINVAL;
}

int blk_disk_open(struct blk_disk *d, const char *path, bool read_only, bool direct)
{
	/* O_NONBLOCK: a FIFO or a terminal named as an image would block the
	 * open (and the control thread with it) until someone came; it is
	 * refused by its type below, and cleared for what is kept (io_uring
	 * answers -EAGAIN for a non-blocking file on some file systems). */
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
		    (direct ? O_DIRECT : 0);
	struct stat st;
	int err;

	*d = (struct blk_disk){.fd = -1};
	d->fd = open(path, flags);
	if (d->fd < 0) {
		err = -errno;
		pr_err("drive %s: cannot open %s%s: %s", path,
		       read_only ? "read-only" : "read-write", direct ? " with O_DIRECT" : "",
		       strerror(-err));
		return err;
	}
	if (fstat(d->fd, &st) < 0) {
		err = -errno;
		pr_err("drive %s: fstat: %s", path, strerror(-err));
		goto err_close;
	}
	if ((err = disk_size(d->fd, &st, path, &d->bytes)) < 0)
		goto err_close;
	if (fcntl(d->fd, F_SETFL, direct ? O_DIRECT : 0) < 0) {
		err = -errno;
		pr_err("drive %s: fcntl: %s", path, strerror(-err));
		goto err_close;
	}
	/* One writer or any number of readers per image, across processes. */
	if ((err = lock_image(d->fd, path, !read_only)) < 0)
		goto err_close;
	if (direct)
		d->dio_align = dio_alignment(d->fd, S_ISBLK(st.st_mode));
	return 0;

err_close:
	close_fd(&d->fd);
	return err;
}

int blk_disk_same(const struct blk_disk *d, const char *path, uint64_t *bytes)
{
	struct stat cur, st;

	if (d->fd < 0 || stat(path, &st) < 0 || fstat(d->fd, &cur) < 0)
		return 0;
	if (st.st_dev != cur.st_dev || st.st_ino != cur.st_ino ||
	    (st.st_mode & S_IFMT) != (cur.st_mode & S_IFMT))
		return 0;
	/* The size as the open fd sees it now (a file grown since). */
	return disk_size(d->fd, &cur, path, bytes) < 0 ? 0 : 1;
}

void blk_disk_close(struct blk_disk *d)
{
	close_fd(&d->fd);
}

/* ext2/3/4's superblock, 1024 bytes into the image: its magic at 56, its
 * s_uuid at 104. */
#define EXT_SB	     1024
#define EXT_MAGIC    0xEF53
#define EXT_MAGIC_AT (EXT_SB + 56)
#define EXT_UUID_AT  (EXT_SB + 104)

int blk_disk_fs_uuid(const struct blk_disk *d, uint8_t uuid[16])
{
	/* One aligned block, which an O_DIRECT image reads as well. */
	uint8_t *block = aligned_alloc(4096, 4096);
	ssize_t n;
	int r = 0;

	if (!block)
		return -ENOMEM;
	if ((n = pread(d->fd, block, 4096, 0)) < 0)
		r = -errno;
	else if (n >= EXT_UUID_AT + 16 &&
		 (block[EXT_MAGIC_AT] | block[EXT_MAGIC_AT + 1] << 8) == EXT_MAGIC) {
		memcpy(uuid, block + EXT_UUID_AT, 16);
		r = 1;
	}
	free(block);
	return r;
}

static int sync_stage(struct blk_io *io)
{
	io->stage = STAGE_SYNC;
	return blk_ring_fsync(io->ring, &io->op, io->fd, true);
}

/* One step finished with res: judge it, then finish or start the next. */
static void step_done(struct blk_ring_op *op, int res)
{
	struct blk_io *io = container_of(op, struct blk_io, op);
	bool rw = io->kind == BLK_IO_READ || io->kind == BLK_IO_WRITE;

	if (io->stage == STAGE_MAIN && rw && res >= 0 && (uint64_t)res != io->len)
		res = -EIO;
	else if (io->stage == STAGE_MAIN && io->kind == BLK_IO_DISCARD && res == -EOPNOTSUPP)
		res = 0;
	else if (io->stage == STAGE_MAIN && io->kind == BLK_IO_WRITE_ZEROES &&
		 (!io->unmap || io->keep) && res == -EOPNOTSUPP) {
		/* No ZERO_RANGE here (tmpfs, some block devices): a hole reads
		 * back zeros too; the guest loses only the preallocation (but
		 * for io->keep: allocated again). */
		io->stage = STAGE_ZERO_BY_PUNCH;
		res = blk_ring_fallocate(io->ring, &io->op, io->fd, PUNCH, io->off, io->len);
		if (res == 0)
			return;
	} else if (io->stage == STAGE_ZERO_BY_PUNCH && io->keep && res >= 0) {
		io->stage = STAGE_REALLOCATE;
		res = blk_ring_fallocate(io->ring, &io->op, io->fd, 0, io->off, io->len);
		if (res == 0)
			return;
	} else if (io->stage == STAGE_REALLOCATE && res == -EOPNOTSUPP) {
		res = 0; /* zeros all the same */
	}
	if (res > 0)
		res = 0;
	if (res == 0 && io->sync && io->stage != STAGE_SYNC) {
		res = sync_stage(io);
		if (res == 0)
			return;
	}
	io->done(io, res);
}

int blk_io_submit(struct blk_ring *r, int fd, struct blk_io *io)
{
	io->op = (struct blk_ring_op){.done = step_done};
	io->ring = r;
	io->fd = fd;
	io->stage = STAGE_MAIN;
	switch (io->kind) {
	case BLK_IO_READ:
		return blk_ring_readv(r, &io->op, fd, io->iov, io->niov, io->off);
	case BLK_IO_WRITE:
		return blk_ring_writev(r, &io->op, fd, io->iov, io->niov, io->off);
	case BLK_IO_FLUSH:
		return sync_stage(io);
	case BLK_IO_DISCARD:
		return blk_ring_fallocate(r, &io->op, fd, PUNCH, io->off, io->len);
	case BLK_IO_WRITE_ZEROES:
		return blk_ring_fallocate(r, &io->op, fd, io->unmap && !io->keep ? PUNCH : ZERO,
					  io->off, io->len);
	}
	return -EINVAL;
}
