/* The virtio-blk drive kind: the configuration's drives, /dev/vda first. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "blk/blk.h"
#include "core/device_kinds.h"

#define ULL(x) ((unsigned long long)(x))

static unsigned blk_count(const struct vm_config *c)
{
	return c->ndrives;
}

static char *blk_id(const struct vm_config *c, unsigned i)
{
	return strdup(c->drives[i].drive_id);
}

static int blk_kind_create(const struct vm_config *c, unsigned i, const char *id,
			   const struct device_env *env, struct device_new *out)
{
	const struct vmc_drive *d = &c->drives[i];
	/* The guest reads the drive's id as its serial (GET_ID), cut to the
	 * 20 bytes virtio-blk has for it, as Firecracker does. */
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	struct blk_params p = {.path = d->path_on_host,
			       .name = id,
			       .read_only = d->is_read_only,
			       .direct = d->direct,
			       .keep_blocks = d->keep_blocks,
			       .no_flush = d->cache_type == VMC_CACHE_UNSAFE,
			       .id = serial,
			       .loop = env->loop,
			       .rate_limiter = d->rate_limiter};
	struct blk *b = NULL;
	int r;

	snprintf(serial, sizeof(serial), "%s", id);
	if ((r = blk_create(&b, &p)) < 0)
		return r;
	*out = (struct device_new){.priv = b, .ops = &blk_ops, .front = b};
	return 0;
}

static void blk_kind_destroy(void *dev)
{
	blk_destroy(dev);
}

static void blk_print_stats(const struct device *d)
{
	struct virtio_mmio_queue_stats q;
	struct blk_stats b;

	device_queue_stats(d, 0, &q);
	blk_get_stats(device_priv(d), &b);
	pr_info("vd%c: reads=%llu writes=%llu (synced=%llu) flushes=%llu discards=%llu "
		"errors=%llu in-flight-max=%llu; queue: notifications=%llu interrupts=%llu "
		"suppressed=%llu merged=%llu",
		'a' + device_index(d), ULL(b.reads), ULL(b.writes), ULL(b.write_syncs),
		ULL(b.flushes), ULL(b.discards),
		ULL(b.io_errors + b.protocol_errors + b.unsupported), ULL(b.inflight_max),
		ULL(q.notifications), ULL(q.interrupts), ULL(q.interrupts_suppressed),
		ULL(q.interrupts_merged));
}

/* Firecracker's block metric names where it has one. */
static void blk_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	struct virtio_mmio_queue_stats q;
	struct blk_stats b;

	device_queue_stats(d, 0, &q);
	blk_get_stats(device_priv(d), &b);
	emit(ctx, "read_count", b.reads);
	emit(ctx, "write_count", b.writes);
	emit(ctx, "flush_count", b.flushes);
	emit(ctx, "discard_count", b.discards);
	emit(ctx, "write_zeroes_count", b.write_zeroes);
	emit(ctx, "get_id_count", b.get_ids);
	emit(ctx, "read_bytes", b.bytes_read);
	emit(ctx, "write_bytes", b.bytes_written);
	emit(ctx, "io_errors", b.io_errors);
	emit(ctx, "invalid_reqs_count", b.protocol_errors + b.unsupported);
	emit(ctx, "queue_event_count", q.notifications);
	emit(ctx, "interrupts", q.interrupts);
	emit(ctx, "rate_limiter_throttled_events", b.rate_limiter_throttled);
	emit(ctx, "update_count", b.backing_swaps);
}

/* PATCH /drives/{id} after boot: the image when the PATCH named one (a
 * no-op when it is the one the drive has, at the same size), then the rate
 * limiter. A PATCH of the limiter alone never touches the image: its path
 * may name another file by now. */
static int blk_update(void *dev, const struct vm_config *c, unsigned i, unsigned changes,
		      struct vm_err *err)
{
	const struct vmc_drive *d = &c->drives[i];
	int r;

	if ((changes & DEVICE_CHANGE_BACKING) && (r = blk_set_backing(dev, d->path_on_host)) < 0)
		return vm_err_set(err, r, "drive %s: cannot switch to %s: %s", d->drive_id,
				  d->path_on_host, strerror(-r));
	if ((changes & DEVICE_CHANGE_LIMITS) && (r = blk_set_ratelimit(dev, &d->rate_limiter)) < 0)
		return vm_err_set(err, r, "drive %s: rate limiter: %s", d->drive_id, strerror(-r));
	return 0;
}

/* Snapshot: the requests in flight at the image are answered first (an
 * acknowledged write is then on the image), then, with the loop parked, the
 * request the limiter holds goes back to the guest's available ring. */
static int blk_kind_drain(void *dev, uint64_t deadline_ns, struct vm_err *err)
{
	char why[sizeof(err->msg)];
	int r = blk_drain(dev, deadline_ns, why, sizeof(why));

	return r < 0 ? vm_err_set(err, r, "%s", why) : 0;
}

static void blk_kind_quiesce(void *dev)
{
	blk_quiesce(dev);
}

/* A drive's state in a snapshot is what its image was, so that a restore
 * onto another image is refused: the guest's page cache and open files
 * hold the saved one's blocks, and on another file system (one made again
 * from the same files, a rebuilt root image, a cache's image trimmed and
 * built anew) they would read garbage and write corruption. Version 1:
 * the capacity in sectors (u64), whether a file system UUID follows (u8),
 * its 16 bytes. Version 2 adds the rate limiter's state
 * (ratelimit_state_put), so that a restored drive goes on with what its
 * buckets held, as Firecracker's does; a version 1 drive's buckets start
 * full. A snapshot without any (written before) is taken as it is, its
 * buckets full. */
#define BLK_STATE_VERSION 2

static int blk_kind_save(const void *dev, struct wbuf *w)
{
	struct ratelimit_state rl;
	uint8_t uuid[16] = {0};
	int r = blk_fs_uuid(dev, uuid);

	/* Only a check's loss: the snapshot is saved all the same. */
	if (r < 0)
		pr_warn("drive: cannot read its image's file system UUID (%s): a restore will "
			"not check it",
			strerror(-r));
	blk_save_limits(dev, &rl);
	wput_u32(w, BLK_STATE_VERSION);
	wput_u64(w, blk_capacity(dev));
	wput_u8(w, r == 1);
	wput_bytes(w, uuid, sizeof(uuid));
	ratelimit_state_put(w, &rl);
	return wbuf_err(w);
}

static void uuid_text(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

/* The image's checks: it is the one the snapshot was saved with. */
static int same_image(const struct blk *dev, uint64_t sectors, bool had, const uint8_t saved[16],
		      char *err, size_t errlen)
{
	uint8_t now[16];
	char a[37], b[37];
	int n;

	if (sectors != blk_capacity(dev))
		return err_set(err, errlen, -EINVAL,
			       "its image now has %llu sectors, the snapshot's had %llu: a restore "
			       "needs the image the snapshot was saved with",
			       ULL(blk_capacity(dev)), ULL(sectors));
	if (!had)
		return 0;
	if ((n = blk_fs_uuid(dev, now)) < 0)
		return err_set(err, errlen, n, "cannot read its image: %s", strerror(-n));
	uuid_text(saved, a);
	if (n == 0)
		return err_set(err, errlen, -EINVAL,
			       "its image holds no ext4 file system now; the snapshot's held %s: "
			       "a restore needs the image the snapshot was saved with",
			       a);
	uuid_text(now, b);
	if (memcmp(saved, now, sizeof(now)))
		return err_set(err, errlen, -EINVAL,
			       "its image holds another file system (UUID %s) than the one the "
			       "snapshot was saved with (%s): the image was made again or "
			       "replaced since, and the guest's view of the old one would "
			       "corrupt it; restore with the image the snapshot was saved with",
			       b, a);
	return 0;
}

static int blk_kind_restore(void *dev, struct rbuf *r, char *err, size_t errlen)
{
	struct ratelimit_state rl;
	uint8_t saved[16];
	uint32_t version;
	uint64_t sectors;
	bool had, bad = false;
	int n;

	if (rbuf_done(r)) /* written before drives kept any state */
		return kind_limits_restored(blk_restore_limits(dev, NULL), "its rate limiter", err,
					    errlen);
	version = rget_u32(r);
	if (rbuf_err(r) == 0 && (version < 1 || version > BLK_STATE_VERSION))
		return err_set(err, errlen, -EBADMSG, "its state is of another version");
	sectors = rget_u64(r);
	had = rget_bool(r, &bad);
	rget_bytes(r, saved, sizeof(saved));
	if (version >= 2)
		ratelimit_state_get(r, &rl);
	if (rbuf_err(r) < 0 || bad)
		return err_set(err, errlen, -EBADMSG, "its state is malformed");
	if ((n = same_image(dev, sectors, had, saved, err, errlen)) < 0)
		return n;
	return kind_limits_restored(blk_restore_limits(dev, version < 2 ? NULL : &rl),
				    "its rate limiter", err, errlen);
}

const struct device_kind blk_kind = {
    .name = "blk",
    .label = "drive",
    .metrics_section = "block_",
    .count = blk_count,
    .id = blk_id,
    .create = blk_kind_create,
    .destroy = blk_kind_destroy,
    .print_stats = blk_print_stats,
    .counters = blk_counters,
    .update = blk_update,
    .drain = blk_kind_drain,
    .quiesce = blk_kind_quiesce,
    /* Besides the transport and the queue, what the image was and the
     * limiter's buckets: nothing is in flight or held after quiesce. */
    .save = blk_kind_save,
    .restore = blk_kind_restore,
};
