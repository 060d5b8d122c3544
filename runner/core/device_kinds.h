/* flint's device kinds for the registry (devices.h): virtio-blk drives,
 * virtio-net interfaces and the vsock device, each created from its part of
 * the vm_config and reporting its own --stats line and counters. Each kind's
 * glue is a kind_NAME.c of its own; the table is the one place that lists
 * them. */
#ifndef FLINT_DEVICE_KINDS_H
#define FLINT_DEVICE_KINDS_H

#include <stddef.h>

#include "core/devices.h"

extern const struct device_kind blk_kind, net_kind, vsock_kind, rng_kind, balloon_kind, pmem_kind,
    mem_kind;

/* Whether the tap `name` attaches as a network interface would attach it
 * (opened, then closed): for PUT /network-interfaces, which Firecracker
 * answers by opening the tap. 0 or -errno, why logged naming the tap. */
int net_kind_check_tap(const char *name) WARN_UNUSED;

/* Whether the vsock device's socket could listen at path (nothing made
 * there): for PUT /vsock, at which Firecracker binds it. 0 or -errno, why
 * logged naming the path. */
int vsock_kind_check_uds(const char *path) WARN_UNUSED;

/* The state of a kind whose own state is only its rate limiters' (n of
 * them): version 1, then each one's (ratelimit_state_put). save: 0 or
 * wbuf_err's. load: 1 with st[0..n) read, 0 for a section without it (a
 * snapshot from before limiters were saved: the kind restores the buckets
 * full, X_restore_limits(dev, NULL)), or -EBADMSG with err set. */
#define KIND_LIMITS_VERSION 1
int kind_limits_save(struct wbuf *w, const struct ratelimit_state *st, unsigned n) WARN_UNUSED;
int kind_limits_load(struct rbuf *r, struct ratelimit_state *st, unsigned n, char *err,
		     size_t errlen) WARN_UNUSED;

/* What a kind's restore says of its device's rate limiter state: r from
 * the device's restore of it (ratelimit_resume's 0 or -EINVAL), which
 * naming the limiter ("its rate limiter"). 0, or -EBADMSG with err set. */
int kind_limits_restored(int r, const char *which, char *err, size_t errlen) WARN_UNUSED;

/* The kinds in guest slot order: drives (/dev/vda first), network
 * interfaces (eth0 first), vsock, entropy, balloon, pmem devices (/dev/pmem0
 * first), memory hot-plug. */
extern const struct device_kind *const device_kinds[];
extern const size_t device_nkinds;

#endif
