/* The entropy device kind (PUT /entropy): at most one virtio-rng device,
 * known as "rng" as in Firecracker. */
#include <string.h>

#include "core/device_kinds.h"
#include "rng/rng.h"

#define ULL(x) ((unsigned long long)(x))

static unsigned rng_count(const struct vm_config *c)
{
	return c->entropy.enabled;
}

static char *rng_id(const struct vm_config *c, unsigned i)
{
	(void)c;
	(void)i;
	return strdup("rng");
}

static int rng_kind_create(const struct vm_config *c, unsigned i, const char *id,
			   const struct device_env *env, struct device_new *out)
{
	struct rng_params p = {.rate_limiter = c->entropy.rate_limiter, .loop = env->loop};
	struct rng *r = NULL;
	int err;

	(void)i;
	(void)id;
	if ((err = rng_create(&r, &p)) < 0)
		return err;
	*out = (struct device_new){.priv = r, .ops = &rng_ops, .front = r};
	return 0;
}

static void rng_kind_destroy(void *dev)
{
	rng_destroy(dev);
}

static void rng_print_stats(const struct device *d)
{
	struct virtio_mmio_queue_stats q;
	struct rng_stats s;

	device_queue_stats(d, 0, &q);
	rng_get_stats(device_priv(d), &s);
	pr_info("entropy: requests=%llu bytes=%llu throttled=%llu errors=%llu; queue: "
		"notifications=%llu interrupts=%llu",
		ULL(s.requests), ULL(s.bytes), ULL(s.rate_limiter_throttled),
		ULL(s.errors + s.protocol_errors), ULL(q.notifications), ULL(q.interrupts));
}

/* Firecracker's entropy metric names. */
static void rng_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	struct virtio_mmio_queue_stats q;
	struct rng_stats s;

	device_queue_stats(d, 0, &q);
	rng_get_stats(device_priv(d), &s);
	emit(ctx, "entropy_event_count", q.notifications);
	emit(ctx, "entropy_event_fails", s.errors + s.protocol_errors);
	emit(ctx, "entropy_bytes", s.bytes);
	emit(ctx, "entropy_rate_limiter_throttled", s.rate_limiter_throttled);
}

/* Snapshot: the request the limiter keeps goes back to the guest. */
static void rng_kind_quiesce(void *dev)
{
	rng_quiesce(dev);
}

static int rng_kind_save(const void *dev, struct wbuf *w)
{
	struct ratelimit_state st;

	rng_save_limits(dev, &st);
	return kind_limits_save(w, &st, 1);
}

static int rng_kind_restore(void *dev, struct rbuf *r, char *err, size_t errlen)
{
	struct ratelimit_state st;
	int n = kind_limits_load(r, &st, 1, err, errlen);

	if (n < 0)
		return n;
	return kind_limits_restored(rng_restore_limits(dev, n ? &st : NULL), "its rate limiter",
				    err, errlen);
}

/* Firecracker has no PATCH /entropy: no update hook. rng_set_ratelimit is
 * there for when one comes. */
const struct device_kind rng_kind = {
    .name = "rng",
    .label = "entropy device",
    .metrics_section = "entropy",
    .count = rng_count,
    .id = rng_id,
    .create = rng_kind_create,
    .destroy = rng_kind_destroy,
    .print_stats = rng_print_stats,
    .counters = rng_counters,
    /* No drain: getrandom fills a request at once, nothing is ever in
     * flight at a backend. Beyond the transport and the queue once
     * quiesced, the device's state is what its limiter's buckets hold. */
    .quiesce = rng_kind_quiesce,
    .save = rng_kind_save,
    .restore = rng_kind_restore,
};
