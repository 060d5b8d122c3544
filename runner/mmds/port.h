/* MMDS on one network interface: its endpoint (stack.h) answering from
 * the instance's data store through mmds/http.h, in the shape of the net
 * device's detour (net/net.h), whose take and give these are. */
#ifndef FLINT_MMDS_PORT_H
#define FLINT_MMDS_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mmds/mmds.h"

struct mmds_port;

/* An endpoint at ipv4 (network order) serving m (which must outlive it):
 * v2, imds_compat as mmds_http's. 0 or -ENOMEM. */
int mmds_port_create(struct mmds_port **out, struct mmds *m, uint32_t ipv4, bool v2,
		     bool imds_compat) WARN_UNUSED;
void mmds_port_destroy(void *port); /* NULL ok */

bool mmds_port_take(void *port, const uint8_t *frame, size_t len);
bool mmds_port_owed(void *port, uint64_t *due_ns);
size_t mmds_port_give(void *port, uint8_t *buf, size_t cap);
void mmds_port_reset(void *port);

#endif
