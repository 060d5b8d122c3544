/* MMDS on one network interface: its endpoint (stack.h) answering from
 * the instance's data store through mmds/http.h, as the net device's
 * detour (net/net.h). */
#ifndef FLINT_MMDS_PORT_H
#define FLINT_MMDS_PORT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"
#include "mmds/mmds.h"
#include "net/net.h"

/* An endpoint at ipv4 (network order) serving m (which must outlive it),
 * v2 and imds_compat as mmds_http's, into *out: its hooks, and its state
 * as ctx, which out->destroy frees (net_destroy does, once the device
 * has it). 0 or -ENOMEM. */
int mmds_port_create(struct net_detour *out, struct mmds *m, uint32_t ipv4, bool v2,
		     bool imds_compat) WARN_UNUSED;

#endif
