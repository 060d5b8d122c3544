/* The hybrid-vsock muxer's bookkeeping, with no I/O: connections by their
 * (host port, guest port), the queue of connections that owe the guest a
 * packet (served in turn, so that many streams share the RX queue fairly),
 * RSTs owed for connections that no longer exist, and host ports for
 * host-initiated connections. Entries are embedded in the muxer's
 * connection structs (container_of). Loop thread only. */
#ifndef FLINT_VSOCK_TABLE_H
#define FLINT_VSOCK_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

#define VSOCK_TABLE_BUCKETS 256
/* Queued RSTs at most: one per connection the muxer allows (1024), and
 * some for stray guest packets. A guest that gives no RX buffers cannot
 * make the queue grow: the rest are dropped. */
#define VSOCK_TABLE_RSTS (1024 + 64)
/* Host ports for host-initiated connections start here (as Firecracker's). */
#define VSOCK_TABLE_FIRST_PORT (1u << 30)

struct vsock_entry {
	uint32_t local_port, peer_port; /* host end, guest end */
	bool hashed, queued;
	struct vsock_entry *hnext;	   /* bucket */
	struct vsock_entry *qprev, *qnext; /* queue */
};

struct vsock_rst {
	uint32_t local_port, peer_port;
};

struct vsock_table {
	struct vsock_entry *bucket[VSOCK_TABLE_BUCKETS];
	struct vsock_entry *qhead, *qtail;
	struct vsock_rst rst[VSOCK_TABLE_RSTS];
	unsigned rst_head, rst_len;
	uint32_t next_port;
};

void vsock_table_init(struct vsock_table *t);

/* Enter e under (local_port, peer_port), which no entry has (the caller
 * looked). Remove it (a no-op when not entered). */
void vsock_table_add(struct vsock_table *t, struct vsock_entry *e, uint32_t local_port,
		     uint32_t peer_port);
void vsock_table_del(struct vsock_table *t, struct vsock_entry *e);

/* The entry for (local_port, peer_port), or NULL. */
struct vsock_entry *vsock_table_find(const struct vsock_table *t, uint32_t local_port,
				     uint32_t peer_port);

/* A host port from VSOCK_TABLE_FIRST_PORT on, wrapping, that no entry has
 * as its local port. There must be fewer entries than ports. */
uint32_t vsock_table_new_port(struct vsock_table *t);

/* The queue: append e unless it is queued; take it out (a no-op when not
 * queued); the first one, or NULL. */
void vsock_table_queue(struct vsock_table *t, struct vsock_entry *e);
void vsock_table_unqueue(struct vsock_table *t, struct vsock_entry *e);
struct vsock_entry *vsock_table_first(const struct vsock_table *t);

/* Whether the guest is owed anything: a RST, or a queued entry's packet. */
bool vsock_table_pending(const struct vsock_table *t);

/* Owe the guest a RST for (local_port, peer_port): false when the queue is
 * full (dropped). Take the oldest one owed: false when none. Forget them
 * all (the guest was reset). */
bool vsock_table_push_rst(struct vsock_table *t, uint32_t local_port, uint32_t peer_port);
bool vsock_table_pop_rst(struct vsock_table *t, struct vsock_rst *out);
void vsock_table_clear_rsts(struct vsock_table *t);

#endif
