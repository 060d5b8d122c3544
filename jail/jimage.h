/* flint run's --image (and --rootfs) under the jail: a directory or tar
 * archive made into an ext4 image by the jailer, outside the jail and
 * before it drops its privileges, with flint's own builder
 * (runner/image/build.h), into the jailer's cache.
 *
 * The source is the tenant's, and may be where the tenant can change it
 * while the jailer works, so root never reads it by name: it is opened
 * once as uid:gid (fs_open_as), and
 * - a directory is read by `tar -c` running as uid:gid (every privilege
 *   dropped, started in the directory through that descriptor) into a
 *   private copy, root's, a deterministic stream (names sorted, numeric
 *   owners) so that the same tree gives the same key;
 * - a tar archive is copied from that descriptor into a private copy;
 * - an ext4 image is not built: it is staged as a read-only drive is.
 * The key is the hash of the private copy and the image is built from it,
 * so what is cached under a key is what that key was computed from, and
 * nothing the tenant could not read reaches the image. The copy goes once
 * the image is made or found in the cache; its work directory is locked
 * while the jailer uses it, so that one a killed jailer left is swept by a
 * later build (image_work_create).
 *
 * The archive is the tenant's and is extracted as root (tar -x, xz,
 * zstd, gunzip, mke2fs -d), bounded (struct jimage_limits): a small
 * archive that decompresses to terabytes, or holds a huge sparse file or
 * millions of entries, is refused with -EFBIG naming the source and the
 * limit, and leaves nothing in the cache. Every file the build writes is
 * at most `bytes` (RLIMIT_FSIZE, SIGXFSZ killing tar or xz), so the data
 * extracted is at most the plain archive's size, at most `bytes` too; the
 * entries are counted before extraction, each taking at most a block. At
 * its peak a build holds about 3 x `bytes` plus 4 KiB per entry. Memory
 * is bounded only by the formats: zstd's window at most 2 GiB (--long=31,
 * for an archive made with zstd --long from a pipe), xz's dictionary by
 * what the archive asks (xz's default: no limit on decompression).
 * The build stays root's, not the tenant's: run as uid:gid (under
 * fakeroot, to keep the archive's owners for mke2fs -d) it would be open
 * to the tenant's other processes of that uid, which could ptrace tar or
 * mke2fs (dumpable after exec) and change the tree or the image after its
 * key was computed: an image cached under the key of another tenant's
 * archive. */
#ifndef FLINT_JAIL_JIMAGE_H
#define FLINT_JAIL_JIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

/* The bounds of a build (--image-limit): the copy of the source, the
 * archive decompressed, each file extracted and the image at most bytes
 * (RLIMIT_FSIZE while the image is built), and at most entries entries
 * in the archive. */
struct jimage_limits {
	uint64_t bytes, entries;
	uint64_t cache; /* the cache's limit on disk (image/cache.h), 0: none */
};

/* Resolve the image at src for a jail of uid:gid: *out "" when src is an
 * ext4 image (staged as it is; with any, so is every file that is not a
 * tar archive: --rootfs takes any file), else the path of the ext4 image built from
 * it (or found) in <cache>/images. cache "" when the jailer has none (no
 * FLINT_CACHE, XDG_CACHE_HOME or HOME): only an ext4 image works then. An
 * image built or found is held (image_hold: *hold, -1 for an ext4 image
 * staged as it is) until the caller has linked it into the jail, so that
 * a trim of the cache meanwhile leaves it be. 0, or -errno with a message
 * in err naming src. */
int jimage_resolve(uid_t uid, gid_t gid, const char *cache, const struct jimage_limits *lim,
		   const char *src, bool any, char *out, size_t outlen, int *hold, char *err,
		   size_t errlen) WARN_UNUSED;

#endif
