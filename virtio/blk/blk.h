/* virtio-blk (virtio 1.2 section 5.2): one request queue over a disk image.
 * The front end: features, configuration space, the queue, request life
 * cycle and counters. Parsing lives in blk_req.c, host I/O in blk_io.c.
 *
 * Threads: notify() and the I/O completions run on the event-loop thread;
 * activate(), reset() and config reads come from vCPU threads. A mutex
 * serialises them. The image I/O goes through the drive's own io_uring
 * (blk_ring.h), which the event loop polls, so that reset() can cancel or
 * wait for the I/O in flight without the loop thread: when reset() returns,
 * no read or write of the old generation is under way, and none will touch
 * guest memory, the status byte or the used ring. A reset with I/O in
 * flight blocks until what cannot be cancelled ends. host->used and
 * host->needs_reset are called with the mutex held, from notify() and from
 * completions (on the loop thread), so they must take no lock held across
 * ops->reset; after reset() returns the device calls neither and touches no
 * queue.
 *
 * Rate limiting: a request the limiter refuses stays popped, in its slot,
 * and the queue is left alone (notifications off) until one loop timer,
 * armed for exactly as long as the tokens take, lets it go. The limits and
 * the image can be changed while the VM runs (blk_set_ratelimit,
 * blk_set_backing) from another thread: the change is made under the
 * mutex, and an eventfd the loop polls has the loop look at the queue again.
 *
 * Snapshot: blk_drain waits for the I/O in flight to be answered while the
 * loop runs; blk_quiesce, with the loop parked, leaves nothing popped and
 * unanswered, so that the queue's saved state says it all.
 *
 * Life cycle: blk_create before the loop runs; blk_destroy after the loop
 * has stopped (evloop_run returned or evloop_destroy done); it waits for any
 * I/O still in flight. */
#ifndef FLINT_BLK_H
#define FLINT_BLK_H

#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/evloop.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "virtio.h"

/* Largest queue the device takes; also the request pool size. */
#define BLK_QUEUE_MAX 256
/* Data segments per request (seg_max): the queue size less header and
 * status, as Linux assumes. A chain with more segments than BLK_QUEUE_MAX
 * breaks the queue (DEVICE_NEEDS_RESET). */
#define BLK_SEG_MAX (BLK_QUEUE_MAX - 2)
/* Advertised size_max (largest single segment). A request's data is held
 * to BLK_SEG_MAX of them (blk_geom.max_rw_bytes); a single segment may be
 * larger, the iovec path takes any. */
#define BLK_SIZE_MAX (1u << 20)
/* Advertised discard/write-zeroes limits, in 512-byte sectors. */
#define BLK_MAX_DWZ_SECTORS (1u << 22) /* 2 GiB per request */
#define BLK_DISCARD_ALIGN   8	       /* 4 KiB, the usual file system block */

struct blk;

struct blk_params {
	const char *path; /* image: regular file or block device */
	/* The drive's name (its id) where a message must say which drive the
	 * guest knows (a snapshot's drain); NULL: the path. */
	const char *name;
	bool read_only; /* open O_RDONLY, offer VIRTIO_BLK_F_RO, no discard */
	bool direct;	/* open O_DIRECT (bypass the host page cache) */
	/* Its blocks are the guest's for good (flint run's scratch disk,
	 * reserved on the host): no discard offered, and a write-zeroes never
	 * deallocates, so no guest gives them back for the host to fill. */
	bool keep_blocks;
	/* Firecracker's cache_type "Unsafe": VIRTIO_BLK_F_FLUSH is not offered,
	 * so the guest never asks for its writes to reach the disk. false is
	 * "Writeback": flushes are offered and done (fdatasync). */
	bool no_flush;
	/* Serial for GET_ID: up to VIRTIO_BLK_ID_BYTES bytes, NUL-padded;
	 * NULL or "" for none (GET_ID then answers 20 NUL bytes). */
	const char *id;
	struct evloop *loop; /* must outlive the device */
	/* Firecracker's rate limiter: every request costs one op, a read or a
	 * write also its data bytes (a flush, a discard: one op, no bytes).
	 * All zero: no limit. */
	struct ratelimit_cfg rate_limiter;
};

/* Counters for --stats, cumulative since blk_create. */
struct blk_stats {
	uint64_t reads, writes, flushes, get_ids, discards, write_zeroes;
	uint64_t write_syncs;	  /* writes made stable before completing (FLUSH
				   * offered and not negotiated) */
	uint64_t unsupported;	  /* requests answered VIRTIO_BLK_S_UNSUPP */
	uint64_t io_errors;	  /* requests answered VIRTIO_BLK_S_IOERR */
	uint64_t protocol_errors; /* broken chains: DEVICE_NEEDS_RESET */
	uint64_t bytes_read, bytes_written;
	uint64_t inflight, inflight_max; /* requests at the host right now / at most */
	uint64_t stale_completions;	 /* I/O that finished after a reset */
	uint64_t rate_limiter_throttled; /* requests the limiter refused (retries too) */
	uint64_t backing_swaps;		 /* images swapped by blk_set_backing */
};

/* Open the image and build the device. Capacity is the image size in
 * 512-byte sectors, rounded down (a partial last sector is logged and not
 * reachable). An id over VIRTIO_BLK_ID_BYTES is refused (-EINVAL). Errors
 * are logged naming the file. Returns 0 or -errno; *out owned by the caller
 * (blk_destroy). */
int blk_create(struct blk **out, const struct blk_params *p) WARN_UNUSED;

/* Wait for the I/O in flight (it ends into nothing), close the image and
 * free the device. The loop must have stopped. NULL ok. */
void blk_destroy(struct blk *b);

/* Capacity in 512-byte sectors (for logs and the VM glue). */
uint64_t blk_capacity(const struct blk *b);

/* The image's file system UUID (blk_disk_fs_uuid): 1, 0 for none, or
 * -errno. Not during blk_set_backing. */
int blk_fs_uuid(const struct blk *b, uint8_t uuid[16]) WARN_UNUSED;

/* Copy the counters. Any thread. */
void blk_get_stats(struct blk *b, struct blk_stats *out);

/* Change the rate limiter of a running drive (PATCH /drives after boot):
 * cfg is complete (what a PATCH leaves out, the caller takes from the
 * current config). What the buckets hold is kept (ratelimit_update), and a
 * request waiting for tokens is looked at again at once, not when the old
 * limits would have let it go. Any thread; does not wait for the loop.
 * Returns 0 or -EINVAL (a field over INT64_MAX; nothing changed). */
int blk_set_ratelimit(struct blk *b, const struct ratelimit_cfg *cfg) WARN_UNUSED;

/* The limiter's config now (for GET /vm/config and PATCH merges). */
void blk_get_ratelimit(struct blk *b, struct ratelimit_cfg *out);

/* The limiter's state for a snapshot (the loop parked and the vCPUs
 * paused: no lock taken), and back into a drive restored from one or reset
 * in place to it (its loop parked or not yet started): 0, or -EINVAL
 * (nothing changed) as ratelimit_resume says
 * (NULL: the buckets full, as at boot). */
void blk_save_limits(const struct blk *b, struct ratelimit_state *st);
int blk_restore_limits(struct blk *b, const struct ratelimit_state *st) WARN_UNUSED;

/* Point the drive at the image path instead (PATCH /drives after boot with
 * a new path_on_host): open it as blk_create does (same read-only and
 * O_DIRECT mode, same checks, the same lock on the image), wait for the I/O
 * in flight on the old image to end (it is answered as usual), swap, close
 * the old image, and publish the new capacity in the configuration space,
 * telling the guest it changed (virtio_host.config_changed) so that its
 * driver resizes the disk. The same image again (the same inode, e.g. a
 * file grown since) is not reopened: its size is read again, and if it has
 * not changed nothing happens (so a caller may pass the path it has). A request
 * waiting for the limiter is checked against the new capacity when it
 * runs. Any thread but the loop's; blocks for as long as the I/O in flight
 * takes. One call at a time. Returns 0, or -errno with the old image still
 * in use (the path cannot be opened or locked: logged naming it; -EINVAL
 * for an O_DIRECT drive whose new image needs another block size). */
int blk_set_backing(struct blk *b, const char *path) WARN_UNUSED;

/* Wait until no request is in flight at the image (each one answered into
 * the used ring by the loop thread, as always), or until deadline_ns
 * (now_ns()'s clock): a snapshot's drain, so that an acknowledged write is
 * on the image and no read is still to land in guest memory. The event loop
 * must run meanwhile (it reaps the completions), and the guest's vCPUs be
 * paused, else new requests may keep coming. Any thread but the loop's.
 * Returns 0, or -ETIMEDOUT with err saying which drive and how many
 * requests are still in flight. */
int blk_drain(struct blk *b, uint64_t deadline_ns, char *err, size_t errlen) WARN_UNUSED;

/* Leave nothing popped and unanswered (a snapshot's quiesce, the loop
 * parked): a request that started after blk_drain (a limiter's timer let it
 * go before the loop parked) is waited for and answered here; the request
 * the limiter holds back goes back to the guest (vq_discard: the available
 * ring offers it again, and a snapshot records it as not yet taken), and
 * notifications go back on. The limiter's timer, if armed, stays armed: it
 * looks at the queue when it fires, which finds the request again. So the
 * device takes work again when kicked. Any thread but the loop's, with the
 * loop parked or stopped (blocks for as long as I/O still under way takes). */
void blk_quiesce(struct blk *b);

/* VIRTIO_ID_BLOCK, one queue of up to BLK_QUEUE_MAX; dev is a struct blk. */
extern const struct virtio_dev_ops blk_ops;

#endif
