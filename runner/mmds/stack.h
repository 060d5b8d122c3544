/* The guest's way to MMDS: a tiny endpoint at the MMDS address on a
 * network interface, as Firecracker's. The interface's TX frames pass
 * through mmds_stack_take first; it keeps the ones for MMDS (ARP requests
 * for its address, IPv4 to it) and the device sends the rest on. What MMDS
 * answers comes back through mmds_stack_give, which the device asks before
 * it reads its backend, so MMDS's frames go to the guest first.
 *
 * TCP is a passive server on port 80, nothing more: a SYN opens a
 * connection (at most MMDS_STACK_CONNS), in-order
 * data is taken into the connection's request buffer and acknowledged,
 * out-of-order data is not taken (the ACK says what is expected), and the
 * request, once whole (the serve function decides), is answered through
 * the send window the guest offers, one MSS at a time. Segments are made
 * when the device asks for a frame, from each connection's state, so a
 * frame the guest never acknowledged is made again from it: at once on a
 * duplicate ACK, or after MMDS_STACK_RTO_NS without an ACK. The stack has
 * no timer of its own: mmds_stack_owed tells the device when to ask next.
 * Connections stay open until the guest closes them (HTTP keep-alive); a
 * SYN on the ports of one the guest has forgotten replaces it; segments
 * to another port, or for no connection, get a RST.
 * Checksums are written in full (the device gives MMDS's frames to the
 * guest with no offload flags) and not checked on the way in: the frames
 * cross memory, and a guest with checksum offload leaves them partial.
 *
 * Not thread-safe: the device calls it under its own lock. The serve
 * function is called from mmds_stack_take. */
#ifndef FLINT_MMDS_STACK_H
#define FLINT_MMDS_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* The MMDS endpoint's MAC, Firecracker's (a locally administered one). */
#define MMDS_STACK_MAC                                                                             \
	{                                                                                          \
		0x06, 0x01, 0x23, 0x45, 0x67, 0x01                                                 \
	}
#define MMDS_STACK_PORT	 80
#define MMDS_STACK_CONNS 30
/* The bytes a connection holds of requests not yet answered, as
 * Firecracker's: more is not taken (the window closes), and a request
 * that does not fit resets the connection. */
#define MMDS_STACK_RCV_BUF 2500
/* Unacknowledged data goes again after this long (doubled at each
 * timeout in a row, to 32 times), at most MMDS_STACK_RTO_MAX times in a
 * row; then the connection is reset. */
#define MMDS_STACK_RTO_NS  (300ull * 1000 * 1000)
#define MMDS_STACK_RTO_MAX 15
/* With every connection taken, a SYN takes the place of one the guest has
 * left idle this long, or is refused. */
#define MMDS_STACK_IDLE_NS (10ull * 1000 * 1000 * 1000)
/* A reply the guest has taken nothing more of for this long (a window
 * kept at 0) is dropped with its connection: the guest cannot hold
 * flint's memory with replies it does not read. */
#define MMDS_STACK_STALL_NS (30ull * 1000 * 1000 * 1000)
/* The replies an endpoint holds at once, all connections together (one
 * reply is always let through, however large): a request beyond it has
 * its connection reset. */
#define MMDS_STACK_REPLY_BYTES (16u << 20)
/* The largest frame mmds_stack_give makes: Ethernet, IPv4 and TCP headers
 * and one MSS. */
#define MMDS_STACK_MSS	     1460
#define MMDS_STACK_FRAME_MAX (14 + 20 + 20 + MMDS_STACK_MSS)

/* What the serve function answers, in a buffer it malloc'd (the stack
 * frees it once sent). */
struct mmds_reply {
	uint8_t *data;
	size_t len;
	bool close; /* close the connection once the reply is sent */
};

/* Given a connection's request bytes not yet answered (len > 0; full:
 * the connection can take no more until some are answered), return 0
 * when no whole request is there yet; or the bytes of it the reply
 * answers (1..len), with *r filled; or -errno to close the connection
 * unanswered. */
typedef int (*mmds_serve_fn)(void *ctx, const uint8_t *req, size_t len, bool full,
			     struct mmds_reply *r);

struct mmds_stack_params {
	uint32_t ipv4; /* the MMDS address, network order */
	mmds_serve_fn serve;
	void *ctx;
	struct mmds_stack_stats *stats; /* counted into; must outlive the stack */
};

/* Firecracker's MMDS metrics (its "mmds" section), shared by every
 * endpoint of an instance and its HTTP side, so atomic. */
struct mmds_stack_stats {
	_Atomic uint64_t rx_accepted;	      /* frames taken for MMDS */
	_Atomic uint64_t rx_accepted_err;     /* taken, but malformed */
	_Atomic uint64_t rx_accepted_unusual; /* taken, not a kind MMDS answers */
	_Atomic uint64_t rx_bad_eth;	      /* too short for an Ethernet header */
	_Atomic uint64_t rx_invalid_token;    /* GETs with a token not (or no longer) good */
	_Atomic uint64_t rx_no_token;	      /* GETs without a token */
	_Atomic uint64_t rx_count;	      /* TCP segments handled */
	_Atomic uint64_t tx_bytes, tx_count;  /* frames made for the guest */
	_Atomic uint64_t connections_created, connections_destroyed;
};

struct mmds_stack;

int mmds_stack_create(struct mmds_stack **out, const struct mmds_stack_params *p) WARN_UNUSED;
void mmds_stack_destroy(struct mmds_stack *s); /* NULL ok */

/* A frame the guest sent (Ethernet header first, no virtio-net header):
 * true when it was for MMDS and is consumed here, false when the device
 * sends it on. now: now_ns(). */
bool mmds_stack_take(struct mmds_stack *s, const uint8_t *frame, size_t len, uint64_t now);

/* The next frame for the guest, written into buf (cap bytes, at least 60
 * for anything to come): its length, or 0 when there is none. Advances
 * what was sent. */
size_t mmds_stack_give(struct mmds_stack *s, uint8_t *buf, size_t cap, uint64_t now);

/* Whether mmds_stack_give has a frame at now (cheap: no frame is made),
 * and in *due when it will next have one by itself, a retransmission or
 * a timeout (0: not without the guest). */
bool mmds_stack_owed(const struct mmds_stack *s, uint64_t now, uint64_t *due);

/* Forget every connection and queued frame (the device was reset: the
 * guest's side is gone or rolled back). */
void mmds_stack_reset(struct mmds_stack *s);

#endif
