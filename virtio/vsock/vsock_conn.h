/* One vsock stream connection as the host end sees it (virtio 1.2 section
 * 5.10.6): its state, the packets it owes the guest, credit both ways, and
 * the guest's data the Unix socket has not taken yet. No sockets and no I/O:
 * the muxer (vsock_mux.c) tells it what the guest sent and what happened on
 * the Unix socket, and asks it what to send next and when it is finished.
 *
 * Counters are the spec's, from this end: rx_cnt bytes received from the
 * guest, fwd_cnt of them written to the Unix socket, tx_cnt bytes sent to
 * the guest; the guest's peer_buf_alloc and peer_fwd_cnt arrive in every
 * header it sends, and ours go in every header we send. All are 32-bit and
 * wrap; only differences are compared.
 *
 * Credit (5.10.6.3): we never send the guest more than
 * peer_buf_alloc - (tx_cnt - peer_fwd_cnt). The guest may send us up to the
 * edge of the last header we sent, told_fwd_cnt + told_buf_alloc, and is
 * reset past it. Everything received and not yet forwarded sits in the
 * connection's buffer of buf_alloc bytes, so it never overflows: buf_alloc
 * may change between headers (the muxer shares a per-VM budget out this
 * way, vsock_conn_resize), but never below what the last header promised
 * and we have not forwarded, so the edge never moves back. A guest acting
 * on an older header, or an older Linux whose credit arithmetic would wrap
 * on a shrunken buffer, therefore never sends what we cannot hold. We offer
 * a credit update once half the buffer has been forwarded since the guest
 * last heard our fwd_cnt, and whenever asked. Out of the guest's credit we
 * wait for its update, and ask for one only when the muxer says the wait
 * has lasted (vsock_conn_ask_credit). */
#ifndef FLINT_VSOCK_CONN_H
#define FLINT_VSOCK_CONN_H

#include <linux/virtio_vsock.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/util.h"

enum vsock_conn_state {
	VSOCK_CONN_CONNECTING, /* host-initiated: REQUEST not answered yet */
	VSOCK_CONN_OPEN,
	VSOCK_CONN_CLOSED, /* reset, either way: nothing more to send */
};

/* What the connection owes the guest (pending), in the order it is sent. */
enum {
	VSOCK_CONN_REQUEST = 1 << 0,
	VSOCK_CONN_RESPONSE = 1 << 1,
	VSOCK_CONN_DATA = 1 << 2,     /* the socket may have data, and we may send it */
	VSOCK_CONN_SHUTDOWN = 1 << 3, /* the socket's EOF: SHUTDOWN with SEND */
	VSOCK_CONN_CREDIT_UPDATE = 1 << 4,
	VSOCK_CONN_CREDIT_REQUEST = 1 << 5,
};

/* What the muxer does after a guest packet. */
enum vsock_conn_verdict {
	VSOCK_CONN_KEEP,	/* carry on (for RW: forward the payload) */
	VSOCK_CONN_ESTABLISHED, /* the guest accepted our REQUEST */
	VSOCK_CONN_RESET,	/* protocol violation: send RST, close */
	VSOCK_CONN_GONE,	/* the guest reset it: close, send nothing */
};

struct vsock_conn {
	enum vsock_conn_state state;
	uint32_t local_port, peer_port; /* host end, guest end */
	unsigned pending;		/* VSOCK_CONN_* bits */
	bool request_sent;
	bool peer_no_send, peer_no_recv; /* the guest's SHUTDOWN SEND / RCV */
	bool local_eof;			 /* the Unix socket's EOF was read */
	bool host_gone;			 /* and the host program closed it altogether */
	bool shut_wr;			 /* shutdown(SHUT_WR) done on the socket */
	bool want_credit, credit_asked;	 /* out of guest credit; asked for more */
	/* Guest to host. */
	uint32_t buf_alloc, rx_cnt, fwd_cnt;
	uint32_t told_fwd_cnt, told_buf_alloc; /* in the last header we sent */
	/* Host to guest. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	/* Received, not yet forwarded: a ring of buf_alloc bytes (allocated on
	 * first use), buf_len bytes from buf_head. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
};

/* A host-initiated connection from local_port to the guest's peer_port:
 * CONNECTING, with a REQUEST to send. */
void vsock_conn_connect(struct vsock_conn *c, uint32_t local_port, uint32_t peer_port,
			uint32_t buf_alloc);

/* A guest-initiated connection, from the guest's REQUEST req (its ports and
 * credit), once the Unix side is connected: OPEN, with a RESPONSE to send. */
void vsock_conn_accept(struct vsock_conn *c, const struct virtio_vsock_hdr *req,
		       uint32_t buf_alloc);

/* Free the buffer. The struct may be reused after another connect/accept. */
void vsock_conn_release(struct vsock_conn *c);

/* A checked guest packet for this connection (vsock_pkt_parse): take its
 * credit fields, act on its op, and say what the muxer does. An RW's
 * payload counts as received: the muxer then writes it to the socket
 * (vsock_conn_forwarded) or buffers it (vsock_conn_buffer). */
enum vsock_conn_verdict vsock_conn_recv(struct vsock_conn *c,
					const struct virtio_vsock_hdr *h) WARN_UNUSED;

/* Bytes the guest may still send us on the strength of the headers it has
 * been sent, and we have not forwarded: what buf_alloc must cover. */
uint32_t vsock_conn_promised(const struct vsock_conn *c);

/* Make buf_alloc size for the headers from now on (the buffer is unmapped,
 * and mapped at the new size when next needed). Returns 0; -EBUSY while
 * the buffer holds data; -EINVAL when size is below vsock_conn_promised. */
int vsock_conn_resize(struct vsock_conn *c, uint32_t size) WARN_UNUSED;

/* Bytes we may send the guest now. */
uint32_t vsock_conn_credit(const struct vsock_conn *c);

/* The next packet to send, or 0 when nothing is pending. An RW (DATA) is
 * only offered with credit; without, the connection waits for the guest's
 * update (want_credit). flags is set for SHUTDOWN. */
uint16_t vsock_conn_next(struct vsock_conn *c, uint32_t *flags);

/* Waiting for credit: make a CREDIT_REQUEST pending, once per wait. Linux
 * sends its update unasked once its reader has consumed a quarter of its
 * buffer, so the muxer asks only after a wait has lasted: asking at once
 * would trade a round trip for whatever little the reader has consumed so
 * far, again and again. Returns whether a request is now pending. */
bool vsock_conn_ask_credit(struct vsock_conn *c);

/* Fill h for op (and len payload bytes for RW) to guest guest_cid, with our
 * credit fields, and count it as sent. */
void vsock_conn_emit(struct vsock_conn *c, struct virtio_vsock_hdr *h, uint64_t guest_cid,
		     uint16_t op, uint32_t flags, uint32_t len);

/* The socket had nothing to read (wait for it to be readable), or gave its
 * EOF (a SHUTDOWN is owed). */
void vsock_conn_drained(struct vsock_conn *c);
void vsock_conn_eof(struct vsock_conn *c);

/* After its EOF, the host program turned out to have closed the socket
 * altogether: it will read nothing more either. A SHUTDOWN with both
 * flags is owed (again, if one with SEND alone went out): a Linux guest
 * resets the connection on it at once when its reader has taken
 * everything, or when its program closes. */
void vsock_conn_host_gone(struct vsock_conn *c);

/* The socket may have data again (it polled readable). */
void vsock_conn_readable(struct vsock_conn *c);

/* Append iov's bytes from offset skip on to the buffer (what the socket did
 * not take). Returns 0, -ENOMEM, or -ENOBUFS past buf_alloc (which the
 * credit check in vsock_conn_recv rules out). */
int vsock_conn_buffer(struct vsock_conn *c, const struct iovec *iov, unsigned niov,
		      size_t skip) WARN_UNUSED;

/* The buffered bytes as up to two iovecs; returns how many. */
unsigned vsock_conn_buffered(const struct vsock_conn *c, struct iovec iov[2]);

/* n bytes went to the socket: from the buffer when it holds any, else
 * straight from the guest. May make a credit update pending. */
void vsock_conn_forwarded(struct vsock_conn *c, uint32_t n);

/* Whether to shutdown(SHUT_WR) the socket now: the guest will send nothing
 * more and everything it sent has been forwarded. */
bool vsock_conn_should_shut_wr(const struct vsock_conn *c);

/* Whether both directions are done: the connection is to be reset (the way
 * a vsock stream ends) and closed. */
bool vsock_conn_finished(const struct vsock_conn *c);

#endif
