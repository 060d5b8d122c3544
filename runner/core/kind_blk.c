/* The virtio-blk drive kind: the configuration's drives, /dev/vda first. */
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
	pr_info("vd%c: reads=%llu writes=%llu flushes=%llu discards=%llu errors=%llu "
		"in-flight-max=%llu; queue: notifications=%llu interrupts=%llu "
		"suppressed=%llu merged=%llu",
		'a' + device_index(d), ULL(b.reads), ULL(b.writes), ULL(b.flushes), ULL(b.discards),
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
    /* No save/restore: a drive has no state of its own beyond its
     * transport and queue. Its capacity comes from its image (the
     * configuration names it; the restored configuration space is the
     * transport's), nothing is in flight or held after quiesce, and the
     * limiter's buckets start full on restore, as at boot (Firecracker
     * does not save them either). */
};
