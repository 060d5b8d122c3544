/* The vsock device kind: at most one, its host side the muxer (vsock_mux.h). */
#include <string.h>

#include "core/device_kinds.h"
#include "core/usock.h"
#include "vsock/vsock_mux.h"

#define ULL(x) ((unsigned long long)(x))

int vsock_kind_check_uds(const char *path)
{
	int r = usock_check(path);

	if (r < 0)
		pr_err("vsock socket %s: %s", path, usock_why(r));
	return r;
}

static unsigned vsock_count(const struct vm_config *c)
{
	return c->vsock.enabled;
}

static char *vsock_id(const struct vm_config *c, unsigned i)
{
	(void)c;
	(void)i;
	return strdup("vsock");
}

static int vsock_kind_create(const struct vm_config *c, unsigned i, const char *id,
			     const struct device_env *env, struct device_new *out)
{
	struct vsock_mux_params p = {
	    .guest_cid = c->vsock.guest_cid, .uds_path = c->vsock.uds_path, .loop = env->loop};
	struct vsock_mux *m = NULL;
	int r;

	(void)i;
	(void)id;
	if ((r = vsock_mux_create(&m, &p)) < 0)
		return r;
	/* The registry keeps the muxer; the transport gets its virtio device. */
	out->priv = m;
	vsock_mux_device(m, &out->ops, &out->front);
	return 0;
}

static void vsock_kind_destroy(void *dev)
{
	vsock_mux_destroy(dev);
}

static void vsock_print_stats(const struct device *d)
{
	struct virtio_mmio_queue_stats rx, tx;
	struct vsock_mux_stats v;

	device_queue_stats(d, 0, &rx);
	device_queue_stats(d, 1, &tx);
	vsock_mux_get_stats(device_priv(d), &v);
	pr_info("vsock: connections host=%llu guest=%llu open=%llu resets=%llu; "
		"bytes to guest=%llu from guest=%llu; bad packets=%llu; "
		"interrupts rx=%llu tx=%llu; notifications rx=%llu tx=%llu",
		ULL(v.conns_host), ULL(v.conns_guest), ULL(v.conns_open), ULL(v.resets),
		ULL(v.rx_bytes), ULL(v.tx_bytes), ULL(v.bad_packets), ULL(rx.interrupts),
		ULL(tx.interrupts), ULL(rx.notifications), ULL(tx.notifications));
	vsock_mux_print_open(device_priv(d));
}

static void vsock_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	struct vsock_mux_stats v;

	vsock_mux_get_stats(device_priv(d), &v);
	emit(ctx, "conns_added", v.conns_host + v.conns_guest);
	emit(ctx, "conns_open", v.conns_open);
	emit(ctx, "conn_resets", v.resets);
	emit(ctx, "rx_bytes_count", v.rx_bytes);
	emit(ctx, "tx_bytes_count", v.tx_bytes);
	emit(ctx, "rx_bad_packets", v.bad_packets);
}

static void vsock_kind_quiesce(void *dev)
{
	vsock_mux_quiesce(dev);
}

static void vsock_kind_hand_over(void *dev, uint64_t deadline_ns)
{
	vsock_mux_hand_over(dev, deadline_ns);
}

static int vsock_kind_save(const void *dev, struct wbuf *w)
{
	return vsock_mux_save(dev, w);
}

static int vsock_kind_restore(void *dev, struct rbuf *r, char *err, size_t errlen)
{
	return vsock_mux_restore(dev, r, err, errlen);
}

const struct device_kind vsock_kind = {
    .name = "vsock",
    .label = "vsock device",
    .metrics_section = "vsock",
    .count = vsock_count,
    .id = vsock_id,
    .create = vsock_kind_create,
    .destroy = vsock_kind_destroy,
    .print_stats = vsock_print_stats,
    .counters = vsock_counters,
    /* No drain: nothing is in flight at the backend. The muxer moves data
     * with plain non-blocking calls on the loop thread, and only waits for
     * readiness (polls) and its timer, none of which holds guest data. */
    .drain = NULL,
    .quiesce = vsock_kind_quiesce,
    .hand_over = vsock_kind_hand_over,
    /* The CID and the Unix socket's path come from the configuration, and
     * quiesce closed every connection (the guest drops its own at the
     * TRANSPORT_RESET event), so no connection, credit or port survives a
     * snapshot. What does: whether the guest has taken up that event yet,
     * so that the restored VM too holds host connections back until it has
     * (vsock_mux.h). */
    .save = vsock_kind_save,
    .restore = vsock_kind_restore,
};
