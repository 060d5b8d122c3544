/* The virtio-net interface kind: the configuration's interfaces, eth0 first,
 * each on its tap or, for a user interface, on a passt of its own; on those
 * the MMDS configuration names, MMDS's endpoint sees the guest's frames
 * first. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/device_kinds.h"
#include "mmds/port.h"
#include "net/net.h"
#include "net/tap.h"

#define ULL(x) ((unsigned long long)(x))

int net_kind_check_tap(const char *name)
{
	int fd, r = tap_open(name, &fd);

	if (r == 0)
		close(fd);
	return r;
}

static unsigned net_count(const struct vm_config *c)
{
	return c->nnets;
}

static char *net_id(const struct vm_config *c, unsigned i)
{
	return strdup(c->nets[i].iface_id);
}

static int net_kind_create(const struct vm_config *c, unsigned i, const char *id,
			   const struct device_env *env, struct device_new *out)
{
	const struct vmc_net *n = &c->nets[i];
	/* A user interface given a tap (a restore's network override) is a
	 * tap interface from then on. */
	bool user = n->user && !n->host_dev_name;
	struct net_params p = {.backend = user ? NET_BACKEND_USER : NET_BACKEND_TAP,
			       .tap = n->host_dev_name,
			       .user = {.addr = VMC_USER_ADDR,
					.prefix = VMC_USER_PREFIX,
					.gateway = VMC_USER_GATEWAY,
					.dns = VMC_USER_DNS},
			       .user_fd = user ? n->fd : 0,
			       .id = id,
			       .mac = n->has_guest_mac ? n->guest_mac : NULL,
			       .mtu = n->mtu,
			       .loop = env->loop,
			       .rx_rate_limiter = n->rx_rate_limiter,
			       .tx_rate_limiter = n->tx_rate_limiter};
	struct net *net = NULL;
	int r;

	if (n->mmds && c->mmds.enabled) {
		if (!env->mmds) {
			pr_err(
			    "%s: MMDS is configured on it, but this flint has no MMDS data store",
			    n->iface_id);
			return -EINVAL;
		}
		if ((r = mmds_port_create(&p.detour, env->mmds, c->mmds.ipv4, c->mmds.v2,
					  c->mmds.imds_compat)) < 0)
			return r;
	}
	if ((r = net_create(&net, &p)) < 0) {
		if (p.detour.destroy)
			p.detour.destroy(p.detour.ctx);
		return r;
	}
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

/* Firecracker's net metric names where it has one. */
static void net_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	struct virtio_mmio_queue_stats rx, tx;
	struct net_stats ns;

	device_queue_stats(d, 0, &rx);
	device_queue_stats(d, 1, &tx);
	net_get_stats(device_priv(d), &ns);
	emit(ctx, "rx_packets_count", ns.rx_packets);
	emit(ctx, "rx_bytes_count", ns.rx_bytes);
	emit(ctx, "tx_packets_count", ns.tx_packets);
	emit(ctx, "tx_bytes_count", ns.tx_bytes);
	emit(ctx, "tx_malformed_frames", ns.tx_malformed);
	emit(ctx, "rx_fails", ns.rx_errors);
	emit(ctx, "tx_fails", ns.tx_errors);
	emit(ctx, "rx_dropped", ns.rx_dropped);
	emit(ctx, "no_rx_avail_buffer", ns.rx_no_buffers);
	emit(ctx, "event_fails", ns.protocol_errors);
	emit(ctx, "rx_queue_event_count", rx.notifications);
	emit(ctx, "tx_queue_event_count", tx.notifications);
	emit(ctx, "rx_rate_limiter_throttled", ns.rx_rate_limiter_throttled);
	emit(ctx, "tx_rate_limiter_throttled", ns.tx_rate_limiter_throttled);
}

/* PATCH /network-interfaces/{id} after boot: the rate limiters. */
static int net_update(void *dev, const struct vm_config *c, unsigned i, unsigned changes,
		      struct vm_err *err)
{
	const struct vmc_net *n = &c->nets[i];
	int r;

	if (!(changes & DEVICE_CHANGE_LIMITS))
		return 0;
	if ((r = net_set_ratelimit(dev, &n->rx_rate_limiter, &n->tx_rate_limiter)) < 0)
		return vm_err_set(err, r, "network interface %s: rate limiter: %s", n->iface_id,
				  strerror(-r));
	return 0;
}

/* Snapshot: the TX writes in flight on the event loop (io_uring writev of
 * the device's copies) finish and are used before the loop is parked. */
static int net_kind_drain(void *dev, uint64_t deadline_ns, struct vm_err *err)
{
	char msg[256];
	int r;

	if ((r = net_drain(dev, deadline_ns, msg, sizeof(msg))) < 0)
		return vm_err_set(err, r, "network interface %s", msg);
	return 0;
}

static void net_kind_quiesce(void *dev)
{
	net_quiesce(dev);
}

static int net_kind_save(const void *dev, struct wbuf *w)
{
	struct ratelimit_state st[2];

	net_save_limits(dev, &st[0], &st[1]);
	return kind_limits_save(w, st, 2);
}

static int net_kind_restore(void *dev, struct rbuf *r, char *err, size_t errlen)
{
	struct ratelimit_state st[2];
	int n = kind_limits_load(r, st, 2, err, errlen);

	if (n < 0)
		return n;
	return kind_limits_restored(net_restore_limits(dev, n ? &st[0] : NULL, n ? &st[1] : NULL),
				    "its RX or TX rate limiter", err, errlen);
}

const struct device_kind net_kind = {
    .name = "net",
    .label = "network interface",
    .metrics_section = "net_",
    .count = net_count,
    .id = net_id,
    .create = net_kind_create,
    .destroy = net_kind_destroy,
    .print_stats = net_print_stats,
    .counters = net_counters,
    .update = net_update,
    .drain = net_kind_drain,
    .quiesce = net_kind_quiesce,
    /* Beyond its transport and queues, the device's own state is what its
     * RX and TX limiters' buckets hold (a snapshot from before they were
     * saved starts them full). The MAC, MTU, tap and limits come from the
     * configuration (a restore may name another tap), the offloads and RX
     * room from the features the restored transport activates it with;
     * quiesce left nothing held. A user
     * interface gets a new passt, on the same fixed addresses: the guest's
     * configuration holds, its connections through the old passt are gone
     * (as a tap's clone's are), and the frames the old stream held (read,
     * not delivered) are not in the snapshot, as a tap's queue is not. */
    .save = net_kind_save,
    .restore = net_kind_restore,
};
