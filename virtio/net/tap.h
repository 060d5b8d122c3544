/* The host end of virtio-net: a Linux tap interface, opened with
 * IFF_TAP|IFF_NO_PI|IFF_VNET_HDR and a 12-byte vnet header, the size of the
 * virtio 1.x header (struct virtio_net_hdr_v1). Every read returns one frame
 * behind such a header, every write takes one, so packets cross between the
 * tap and the guest with their offload fields unchanged (net.c reads RX
 * straight into guest memory and writes TX from its checked copy). */
#ifndef FLINT_TAP_H
#define FLINT_TAP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

/* Attach to the existing tap interface `name` (flint creates none: a tap it
 * made would vanish at exit and carry no address). The fd is O_NONBLOCK and
 * close-on-exec; *fd is -1 on failure. Errors are logged naming the tap:
 *   -ENODEV  no interface of that name
 *   -EINVAL  not a tap (a tun, a multiqueue tap, another kind of interface),
 *            or a name longer than IFNAMSIZ - 1
 *   -EPERM / -EACCES  needs CAP_NET_ADMIN, or a tap owned by this user
 *   -EBUSY   another process has it open
 *   -EOPNOTSUPP  the kernel's tun lacks IFF_VNET_HDR
 * Returns 0 or -errno. */
int tap_open(const char *name, int *fd) WARN_UNUSED;

/* The TUN_F_* offloads matching the virtio-net features a guest accepted:
 * what the guest can take in (GUEST_CSUM, GUEST_TSO4, GUEST_TSO6), which is
 * what the tap may then hand us. */
unsigned tap_offloads(uint64_t features);

/* TUNSETOFFLOAD. Returns 0 or -errno. */
int tap_set_offloads(int fd, unsigned offloads) WARN_UNUSED;

/* Whether fd is a tun/tap file attached to an interface. */
bool tap_is_tap(int fd);

#endif
