/* QEMU's stream protocol, as passt speaks it: Ethernet frames over a Unix
 * stream socket, each preceded by its length as a 32-bit big-endian
 * integer. No virtio-net header crosses: the far end sees plain frames.
 *
 * Pure framing, no I/O and no policy: the caller reads bytes into the
 * decoder and takes whole frames out (stream_rx_*), and keeps track of a
 * frame it is writing, however short the writes (stream_out_*). The
 * device (net.c) decides when to read and write and what a broken stream
 * means. Not thread-safe: the owner's lock covers it. */
#ifndef FLINT_NET_STREAM_H
#define FLINT_NET_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* The length prefix. */
#define STREAM_PREFIX 4u
/* The longest frame the far end takes: passt resets the connection on a
 * longer one (Linux's ETH_MAX_MTU). */
#define STREAM_FRAME_MAX 65535u

/* Write len as the 4-byte big-endian prefix at out. */
void stream_put_len(uint8_t *out, uint32_t len);

/* The decoder of the incoming byte stream: one buffer, bytes in at its
 * end, frames out from its front. A frame may arrive in any number of
 * reads (its prefix too); zero-length frames are skipped; a prefix over
 * max_frame breaks the stream for good (-EMSGSIZE): nothing after it can
 * be framed again. */
struct stream_rx {
	uint8_t *buf;
	size_t cap;	    /* >= STREAM_PREFIX + max_frame */
	size_t start, end;  /* unread bytes: buf[start, end) */
	uint32_t max_frame; /* the longest frame taken */
	uint32_t bad_len;   /* the prefix that broke the stream */
	int err;	    /* 0, or -EMSGSIZE once broken */
};

/* Allocate a decoder of cap bytes for frames of up to max_frame bytes. cap
 * must hold a whole frame with its prefix. Returns 0, -EINVAL or -ENOMEM. */
int stream_rx_init(struct stream_rx *rx, size_t cap, uint32_t max_frame) WARN_UNUSED;

/* Free the buffer; the struct may be initialised again. Zeroed ok. */
void stream_rx_free(struct stream_rx *rx);

/* Where the next read should go, and how much it may take. Read only once
 * stream_rx_next has returned 0 (every whole frame taken): then the room is
 * never 0, as the bytes of the frame not yet whole are moved to the front
 * when the room behind them is short. *at stays valid until the next call
 * to any stream_rx function. 0 once broken. */
size_t stream_rx_space(struct stream_rx *rx, uint8_t **at);

/* n bytes were read to where stream_rx_space pointed (n no more than it
 * said). Returns 0, or -EINVAL for n past the space (nothing taken). */
int stream_rx_commit(struct stream_rx *rx, size_t n) WARN_UNUSED;

/* Take the next whole frame: 1 with *frame and *len (valid until the next
 * call to any stream_rx function), 0 when the bytes so far hold none, or
 * -EMSGSIZE when the stream is broken (then and every time after;
 * rx->bad_len says by what). */
int stream_rx_next(struct stream_rx *rx, const uint8_t **frame, uint32_t *len) WARN_UNUSED;

/* Whether bytes are buffered that stream_rx_next has not handed out: a
 * whole frame may be waiting, so the caller should not wait for the
 * socket to be readable before it asks. */
bool stream_rx_pending(const struct stream_rx *rx);

/* One frame on its way out, prefix and bytes in one buffer: a write may
 * take any part of it, and the rest goes next. */
struct stream_out {
	const uint8_t *p; /* the next byte to write */
	size_t left;	  /* bytes still to write */
};

/* Start sending the len-byte frame at frame, whose caller reserved the
 * STREAM_PREFIX bytes before it: the prefix is written there. */
void stream_out_start(struct stream_out *o, uint8_t *frame, uint32_t len);

/* A write took n bytes from o->p: returns 1 when the frame is all out,
 * 0 when o->p and o->left say what comes next, -EINVAL for n past what was
 * left (nothing taken). */
int stream_out_advance(struct stream_out *o, size_t n) WARN_UNUSED;

#endif
