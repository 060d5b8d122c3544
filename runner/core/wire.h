/* wire: the bytes of one piece of saved state (a snapshot's sections).
 * A writer appends little-endian integers and length-prefixed byte strings
 * to a buffer that grows; a reader takes them back from a buffer it never
 * reads past. Both remember their first failure, so that an encoder or a
 * decoder does all its steps and checks once at the end: a short or
 * corrupt input gives -EBADMSG and zeros, never a read out of bounds.
 * What the values mean, and whether they are acceptable, is the caller's
 * to check. Pure: no I/O, no locks. */
#ifndef FLINT_WIRE_H
#define FLINT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* A byte string longer than this is refused by both sides. */
#define WIRE_MAX_BLOB (64u << 20)

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err; /* 0, or the first -ENOMEM / -E2BIG */
};

/* An empty writer; wbuf_free releases what it holds. */
void wbuf_init(struct wbuf *w);
void wbuf_free(struct wbuf *w);
void wput_u8(struct wbuf *w, uint8_t v);
void wput_u16(struct wbuf *w, uint16_t v);
void wput_u32(struct wbuf *w, uint32_t v);
void wput_u64(struct wbuf *w, uint64_t v);
/* n raw bytes (a fixed-size record both sides know the size of). */
void wput_bytes(struct wbuf *w, const void *p, size_t n);
/* A byte string: its length (u32) then its bytes; -E2BIG over WIRE_MAX_BLOB. */
void wput_blob(struct wbuf *w, const void *p, size_t n);
/* A string as a blob without its NUL; NULL is written as length 2^32-1. */
void wput_str(struct wbuf *w, const char *s);
/* 0 or the first error. */
int wbuf_err(const struct wbuf *w) WARN_UNUSED;

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int err; /* 0, or -EBADMSG once a read went past the end */
};

void rbuf_init(struct rbuf *r, const void *p, size_t len);
/* Each gives 0 (and sets the error) when the input is too short. */
uint8_t rget_u8(struct rbuf *r);
uint16_t rget_u16(struct rbuf *r);
uint32_t rget_u32(struct rbuf *r);
uint64_t rget_u64(struct rbuf *r);
/* A bool written as one byte: 0 or 1; any other value sets *bad (a corrupt
 * input the caller refuses with its own message). */
bool rget_bool(struct rbuf *r, bool *bad);
/* n bytes into out; zeros when the input is too short. */
void rget_bytes(struct rbuf *r, void *out, size_t n);
/* A blob of at most max bytes: a pointer into the input (NULL and *n = 0
 * on error, which a longer one is). */
const uint8_t *rget_blob(struct rbuf *r, size_t *n, size_t max);
/* A blob that must be exactly size bytes (a fixed-size record written with
 * wput_blob) into out: false, zeros and the reader's error when it is not. */
bool rget_struct(struct rbuf *r, void *out, size_t size);
/* A string written by wput_str, at most max bytes: malloc'd and
 * NUL-terminated, NULL for a NULL one (*was_null true) or on error; one
 * holding a NUL byte is an error. */
char *rget_str(struct rbuf *r, size_t max, bool *was_null);
/* 0, -EBADMSG when a read failed, or -ENOMEM (rget_str). */
int rbuf_err(const struct rbuf *r) WARN_UNUSED;
/* True when every byte was read and none failed. */
bool rbuf_done(const struct rbuf *r);

#endif
