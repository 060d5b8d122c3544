#include "core/device_kinds.h"

#include <stdio.h>
#include <string.h>

#include "blk/blk.h"
#include "net/net.h"
#include "vsock/vsock_mux.h"

#define ULL(x) ((unsigned long long)(x))

/* A configured id, or "<prefix><i>" (the ids vm_config_cli gives). */
static char *id_or_numbered(const char *id, const char *prefix, unsigned i)
{
	char name[32];

	if (id)
		return strdup(id);
	snprintf(name, sizeof(name), "%s%u", prefix, i);
	return strdup(name);
}

/* virtio-blk: --drive, /dev/vda, vdb, ... */

static unsigned blk_count(const struct config *cfg)
{
	return cfg->ndrives;
}

static char *blk_id(const struct config *cfg, unsigned i)
{
	return id_or_numbered(cfg->drives[i].id, "drive", i);
}

static int blk_kind_create(const struct config *cfg, unsigned i, const char *id,
			   const struct device_env *env, struct device_new *out)
{
	const struct drive_cfg *d = &cfg->drives[i];
	/* The guest's serial is the configured id only: an unnamed drive
	 * answers GET_ID with none, as before ids. */
	struct blk_params p = {.path = d->path,
			       .read_only = d->read_only,
			       .direct = d->direct,
			       .id = d->id,
			       .loop = env->loop};
	struct blk *b = NULL;
	int r;

	(void)id;
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

static const struct device_kind blk_kind = {
    .name = "blk",
    .label = "drive",
    .count = blk_count,
    .id = blk_id,
    .create = blk_kind_create,
    .destroy = blk_kind_destroy,
    .print_stats = blk_print_stats,
};

/* virtio-net: --net, eth0, eth1, ... */

static unsigned net_count(const struct config *cfg)
{
	return cfg->nnets;
}

static char *net_id(const struct config *cfg, unsigned i)
{
	return id_or_numbered(cfg->nets[i].id, "net", i);
}

static int net_kind_create(const struct config *cfg, unsigned i, const char *id,
			   const struct device_env *env, struct device_new *out)
{
	const struct net_cfg *n = &cfg->nets[i];
	struct net_params p = {
	    .tap = n->tap, .id = id, .mac = n->has_mac ? n->mac : NULL, .loop = env->loop};
	struct net *net = NULL;
	int r;

	if ((r = net_create(&net, &p)) < 0)
		return r;
	*out = (struct device_new){.priv = net, .ops = &net_ops, .front = net};
	return 0;
}

static void net_kind_destroy(void *dev)
{
	net_destroy(dev);
}

static void net_print_stats(const struct device *d)
{
	struct virtio_mmio_queue_stats rx, tx;
	struct net_stats ns;

	device_queue_stats(d, 0, &rx);
	device_queue_stats(d, 1, &tx);
	net_get_stats(device_priv(d), &ns);
	pr_info("eth%u: rx packets=%llu bytes=%llu; tx packets=%llu bytes=%llu "
		"malformed=%llu; rx dropped=%llu bad-buffers=%llu; errors rx=%llu tx=%llu "
		"protocol=%llu; rx-waits=%llu; "
		"interrupts rx=%llu tx=%llu; notifications rx=%llu tx=%llu",
		device_index(d), ULL(ns.rx_packets), ULL(ns.rx_bytes), ULL(ns.tx_packets),
		ULL(ns.tx_bytes), ULL(ns.tx_malformed), ULL(ns.rx_dropped), ULL(ns.rx_bad_buffers),
		ULL(ns.rx_errors), ULL(ns.tx_errors), ULL(ns.protocol_errors),
		ULL(ns.rx_no_buffers), ULL(rx.interrupts), ULL(tx.interrupts),
		ULL(rx.notifications), ULL(tx.notifications));
}

static const struct device_kind net_kind = {
    .name = "net",
    .label = "network interface",
    .count = net_count,
    .id = net_id,
    .create = net_kind_create,
    .destroy = net_kind_destroy,
    .print_stats = net_print_stats,
};

/* vsock: --vsock, at most one, its host side the muxer (vsock_mux.h). */

static unsigned vsock_count(const struct config *cfg)
{
	return cfg->vsock.enabled;
}

static char *vsock_id(const struct config *cfg, unsigned i)
{
	(void)cfg;
	(void)i;
	return strdup("vsock");
}

static int vsock_kind_create(const struct config *cfg, unsigned i, const char *id,
			     const struct device_env *env, struct device_new *out)
{
	struct vsock_mux_params p = {
	    .guest_cid = cfg->vsock.cid, .uds_path = cfg->vsock.uds, .loop = env->loop};
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
}

static const struct device_kind vsock_kind = {
    .name = "vsock",
    .label = "vsock device",
    .count = vsock_count,
    .id = vsock_id,
    .create = vsock_kind_create,
    .destroy = vsock_kind_destroy,
    .print_stats = vsock_print_stats,
};

const struct device_kind *const device_kinds[] = {&blk_kind, &net_kind, &vsock_kind};
const size_t device_nkinds = ARRAY_SIZE(device_kinds);
