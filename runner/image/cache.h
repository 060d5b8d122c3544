/* The image cache's upkeep: which images are in use, which a saved
 * snapshot still needs, and the trim that keeps the rest under a size.
 *
 * An image in <cache>/images is held by a process that boots from it
 * (flint run, flint-jail until it ends): a shared flock on it for as long
 * as that process runs. Its mtime is its
 * last use, moved each time image_prepare hands it out. A snapshot saved
 * from a VM that booted from it pins it: <cache>/images/pins/<hash of the
 * snapshot's path>/ holds a hard link to it and the snapshot's path.
 *
 * The trim removes the least recently used images that are not held, not
 * pinned (no other link: a pin's, or flint-jail's in a jail) and not used
 * in the last minute, oldest first, until the rest take at most its limit
 * on disk; and the pins whose snapshot is gone, the index entries whose
 * image is gone, and index files a writer killed midway left. Nothing in
 * it fails a run: what it cannot do it logs and leaves. */
#ifndef FLINT_IMAGE_CACHE_H
#define FLINT_IMAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* The cache's limit when none is given: FLINT_CACHE_MAX for flint run,
 * flint-jail's --image-limit cache=N (as ccache's and sccache's). */
#define IMAGE_CACHE_DEFAULT_MAX (10ULL << 30)

/* An image used this recently is never trimmed: the process that built or
 * found it may not hold it yet. */
#define IMAGE_CACHE_RECENT_S 60

/* Hold the cache's image at path: opened, flocked shared, checked to be
 * the file path names still (else opened again), and marked used now. *fd
 * (close-on-exec) for the caller to keep open while it boots from the
 * image; NULL: only marked used. 0, -ENOENT when it is gone (trimmed or
 * removed meanwhile: build it again), or -errno. */
int image_hold(const char *path, int *fd) WARN_UNUSED;

/* Trim the images directory images (<cache>/images) to max bytes on disk
 * (0: no limit, only the sweeps), as above. */
void image_cache_trim(const char *images, uint64_t max);

/* Pin the n images (each in images/, the cache's) for the snapshot to be
 * saved at snapshot (a path, relative or not; the file need not be there
 * yet). *lock (close-on-exec) keeps the pin while the caller runs, so that
 * a trim meanwhile does not take it for one whose snapshot is gone or was
 * never written; after that, it lasts while the file at the snapshot's path
 * is the one this run wrote (a later run saving there takes over; one that
 * saved nothing leaves the earlier pin as it was). Losing a pin (the
 * snapshot moved) loses no data: a trimmed image built again has another
 * file system UUID, and a restore onto it is refused (kind_blk.c). 0 or
 * -errno with err. */
int image_pin(const char *images, const char *snapshot, const char *const image[], size_t n,
	      int *lock, char *err, size_t errlen) WARN_UNUSED;

#endif
