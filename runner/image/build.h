/* flint run's images (issue 14): a directory or tar archive made into an
 * ext4 image with e2fsprogs' mke2fs, kept in flint's cache by the key of
 * its content (image.h) and used again; and the scratch disk of --scratch.
 * The programs are run through an injectable runner, so that the tests see
 * the commands without running them. */
#ifndef FLINT_IMAGE_BUILD_H
#define FLINT_IMAGE_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* Run argv (argv[0] looked up on PATH) with stdin from in_fd (-1:
 * /dev/null) and stdout to out_fd (-1: flint's stderr, where the
 * program's messages go too), and wait for it. Its exit status (128+N when
 * signal N killed it), or -errno when it could not be started (-ENOENT: not
 * installed). */
typedef int image_run_fn(void *ctx, char *const argv[], int in_fd, int out_fd);

/* The runner flint uses: posix_spawnp. */
int image_run_cmd(void *ctx, char *const argv[], int in_fd, int out_fd);

struct image_builder {
	const char *cache_dir; /* images go in <cache_dir>/images/<key>.ext4 */
	image_run_fn *run;     /* image_run_cmd, or a test's fake */
	void *ctx;
	/* Run tar and mke2fs under fakeroot (sharing one state file), so that
	 * a tar archive's owners and device nodes survive without root. */
	bool fakeroot;
	/* Limits for an archive that is not trusted (flint-jail's tenant's,
	 * built as root), 0 for none (flint's own builds): no file the build
	 * writes larger than max_bytes (the decompressed archive, each file
	 * extracted, the image: RLIMIT_FSIZE while image_prepare runs, its
	 * programs killed by SIGXFSZ), and no more than max_entries entries
	 * in the archive (counted by `tar -t` before anything is extracted).
	 * Over either, image_prepare fails with -EFBIG, naming the limit. */
	uint64_t max_bytes;
	uint64_t max_entries;
	/* Keep an index of the sources' fingerprints (image_fingerprint) in
	 * <cache_dir>/images/index/<fingerprint>, each naming the content key
	 * computed for it, so that a source seen before and unchanged since
	 * is not read again: flint run's builder. Not flint-jail's, which
	 * builds from a fresh copy every time (new inodes, new times) in a
	 * cache its tenants share. */
	bool use_index;
	/* The cache's limit on disk (cache.h), trimmed to after each build;
	 * 0: none. */
	uint64_t cache_max;
};

/* flint's cache directory: $FLINT_CACHE, else $XDG_CACHE_HOME/flint, else
 * $HOME/.cache/flint (the kernel build's and mk/build-mhd.sh's
 * convention). 0, or -ENOENT when none of the three is set, or
 * -ENAMETOOLONG. */
int image_cache_dir(char *out, size_t len) WARN_UNUSED;

/* A builder with flint's runner and cache directory and the index;
 * fakeroot when flint is not root and fakeroot is on PATH. 0 or -errno
 * with err. */
int image_builder_default(struct image_builder *b, char *cache, size_t len, char *err,
			  size_t errlen) WARN_UNUSED;

/* The ext4 image for path (image_detect's kinds): an ext4 image is itself
 * (its path copied to out); a directory or tar archive is built into
 * <cache>/images/<key>.ext4 unless that is there already, in a private
 * work directory beside it and renamed into place, so that runs building
 * the same image at once each finish with a whole one. With b->use_index,
 * a source whose fingerprint the index has, naming a key whose image is
 * there, is taken without its content being read; otherwise, once the key
 * is known and the image there, the fingerprint goes in the index if it is
 * settled (image.h) and unchanged since its key was computed. The source
 * is resolved to its real path once, and the fingerprint, the key and the
 * build all read that; a source whose fingerprint changed by the end of
 * its build fails with -EAGAIN, its image not cached (it might not be the
 * key's content). Otherwise the index is an aid: nothing that goes wrong
 * with it fails the call (it is logged at debug level). A cached image is
 * held (image_hold: *hold, the caller's to keep open while it boots from
 * it, -1 for an ext4 image given; NULL: not held, only marked used); one
 * trimmed away between the check and the hold is built again. After a
 * build the cache is trimmed to b->cache_max. *built: whether mke2fs ran
 * (NULL: not wanted). 0, or -errno with err naming path and the step that
 * failed. */
int image_prepare(const struct image_builder *b, const char *path, char *out, size_t outlen,
		  int *hold, bool *built, char *err, size_t errlen) WARN_UNUSED;

/* A private work directory <cache_dir>/images/<prefix>XXXXXX (prefix
 * ".build-" or ".jail-"), its path in out, holding a lock file that *lock
 * keeps flocked: image_prepare removes such a directory once its lock is
 * free and it is a minute old, so that a process killed mid-build leaves
 * nothing for long. The caller removes it with image_work_remove. 0 or
 * -errno with err. */
int image_work_create(const char *cache_dir, const char *prefix, char *out, size_t outlen,
		      int *lock, char *err, size_t errlen) WARN_UNUSED;

/* Remove the work directory at work (all of it) and let go of its lock;
 * *lock becomes -1. */
void image_work_remove(const char *work, int *lock);

/* A fresh file of size bytes in dir, formatted ext4 (no journal: it is
 * thrown away) and its blocks reserved (image_reserve_scratch), for the
 * guest's writable layer. Its path in out; the caller removes it. 0 or
 * -errno with err. */
int image_make_scratch(const struct image_builder *b, const char *dir, uint64_t size, char *out,
		       size_t outlen, char *err, size_t errlen) WARN_UNUSED;

/* Reserve the blocks of fd's file of size bytes, formatted and sparse
 * (fallocate; mke2fs's discard leaves it holes but for its metadata): a
 * guest that fills the disk meets its own ext4's ENOSPC, never the host's
 * full file system. -ENOSPC, naming both sizes, when the file system has
 * less room; with check_only (before formatting), or where the file
 * system has no fallocate, only that check. name for messages. 0 or
 * -errno with err. */
int image_reserve_scratch(int fd, uint64_t size, bool check_only, const char *name, char *err,
			  size_t errlen) WARN_UNUSED;

/* Format the file at path, open as fd, of size bytes (its size set), as
 * image_make_scratch's disk: its room checked, then ext4, no journal, no
 * reserved blocks, then its blocks reserved (image_reserve_scratch). name
 * is path for messages (flint-jail formats through /proc/PID/fd/N). 0 or
 * -errno with err. */
int image_format_scratch(const struct image_builder *b, int fd, const char *path, uint64_t size,
			 const char *name, char *err, size_t errlen) WARN_UNUSED;

#endif
