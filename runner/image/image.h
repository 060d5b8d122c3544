/* flint run's images (issue 14): what a path given to --image or --rootfs
 * holds, judged by its content, and the key its ext4 image is cached under.
 * Pure reading: nothing here writes a file or runs a program (build.h
 * does). */
#ifndef FLINT_IMAGE_H
#define FLINT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

enum image_kind {
	IMAGE_DIR,     /* a directory: the root's files */
	IMAGE_EXT4,    /* an ext2/3/4 file system image (magic 0xEF53 at 1080) */
	IMAGE_TAR,     /* a tar archive (ustar magic at 257) */
	IMAGE_TAR_GZ,  /* gzip (1f 8b) holding a tar archive */
	IMAGE_TAR_XZ,  /* xz (fd 37 7a 58 5a 00), taken to hold a tar archive */
	IMAGE_TAR_ZST, /* zstd (28 b5 2f fd), taken to hold a tar archive */
};

/* The key's text: 64 lowercase hex digits of SHA-256, and the NUL. A
 * cryptographic hash, since a cache may be shared by users who do not
 * trust each other (flint-jail's, root's, by every tenant): nobody can
 * make an image whose key is that of another's. */
#define IMAGE_KEY_LEN 65

/* SHA-256 of the n bytes at p, as a key's text in out. */
void image_hash_text(const void *p, size_t n, char out[IMAGE_KEY_LEN]);

/* Whether s begins with a key's text (or a fingerprint's): IMAGE_KEY_LEN - 1
 * lowercase hex digits. */
bool image_key_text(const char *s);

/* A kind's name for messages ("directory", "gzip-compressed tar archive"). */
const char *image_kind_name(enum image_kind k);

/* What path holds, by its content, never its name: a directory, an ext4
 * image, a plain tar or a gzip, xz or zstd stream (a gzip stream's first
 * block is checked to be a tar header). 0 with *kind set, or -errno with
 * err naming path and saying what it is instead (empty, truncated, not a
 * kind flint knows, not there). Symlinks are followed. */
int image_detect(const char *path, enum image_kind *kind, char *err, size_t errlen) WARN_UNUSED;

/* Whether path holds an ext2/3/4 file system image (image_detect says
 * IMAGE_EXT4); false for anything else, or for what cannot be read. */
bool image_is_ext4(const char *path);

/* The cache key of path's content, as 64 hex digits in key: for a file, a
 * hash of its bytes; for a directory, of a walk in sorted name order
 * recording each entry's relative path, type and mode, owner and group,
 * size, device number, symlink target and file contents (not times, not
 * extended attributes, not hard links). Entries below path are not
 * followed through symlinks. 0, or -errno with err naming the entry that
 * could not be read. */
int image_key(const char *path, enum image_kind kind, char key[IMAGE_KEY_LEN], char *err,
	      size_t errlen) WARN_UNUSED;

/* The fingerprint of path's metadata, as 64 hex digits in fp, for the
 * cache's index (build.h): a hash of its real path and, for a regular
 * file, its device and inode numbers, size, mode, owners, and mtime and
 * ctime to the nanosecond; for a directory, the same of each entry in
 * image_key's walk (with its relative path, device number and symlink
 * target). No content is read: a change to it moves the ctime, which is
 * what makes the fingerprint stand for the content. *settled: whether
 * every mtime and ctime is at least 2 s older than the walk's start, so
 * that a change that came just after, within a time's granularity, could
 * not have left them as they were (git's "racily clean" entries): only a
 * settled fingerprint may go in the index. 0, or -errno with err (-EINVAL
 * for a file that is not a regular file, a block device, whose content
 * moves no time). */
int image_fingerprint(const char *path, enum image_kind kind, char fp[IMAGE_KEY_LEN], bool *settled,
		      char *err, size_t errlen) WARN_UNUSED;

/* Whether a file system of this type (statfs's f_type) keeps times as the
 * fingerprint relies on: a local one of Linux's own, where the kernel
 * itself sets each ctime (ext2/3/4, XFS, Btrfs, tmpfs, F2FS, overlayfs).
 * Not NFS or SMB, whose attributes a client caches for up to a minute
 * while another changes the content, nor FUSE, whose ctimes are the
 * daemon's to make up, nor FAT, which has none: a fingerprint there, or
 * of a tree that spans file systems, is never settled, and the source is
 * hashed on every run. */
bool image_fs_keeps_times(unsigned long f_type);

/* What a tree needs in an ext4 file system with 4 KiB blocks. */
struct image_usage {
	uint64_t bytes;	 /* data and directory blocks, each rounded up to 4 KiB */
	uint64_t inodes; /* entries, the top directory included */
};

/* Add up the tree at dir (not following symlinks). 0, or -errno with err. */
int image_measure(const char *dir, struct image_usage *u, char *err, size_t errlen) WARN_UNUSED;

/* The size of an ext4 image for a tree of usage u, in bytes (a whole number
 * of MiB), and its inode count: the content plus room for the file
 * system's own blocks and headroom. */
void image_size_for(const struct image_usage *u, uint64_t *bytes, uint64_t *inodes);

#endif
