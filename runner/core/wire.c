#include "core/wire.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NULL_STR 0xffffffffu

void wbuf_init(struct wbuf *w)
{
	*w = (struct wbuf){0};
}

void wbuf_free(struct wbuf *w)
{
	free(w->p);
	wbuf_init(w);
}

/* Room for n more bytes, or the error set. */
static bool reserve(struct wbuf *w, size_t n)
{
	if (w->err)
		return false;
	if (n > SIZE_MAX / 2 - w->len) {
		w->err = -E2BIG;
		return false;
	}
	if (w->len + n <= w->cap)
		return true;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n)
		cap *= 2;
	uint8_t *p = realloc(w->p, cap);
	if (!p) {
		w->err = -ENOMEM;
		return false;
	}
	w->p = p;
	w->cap = cap;
	return true;
}

void wput_bytes(struct wbuf *w, const void *p, size_t n)
{
	if (!n || !reserve(w, n))
		return;
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

void wput_u8(struct wbuf *w, uint8_t v)
{
	wput_bytes(w, &v, 1);
}

void wput_u16(struct wbuf *w, uint16_t v)
{
	v = htole16(v);
	wput_bytes(w, &v, sizeof(v));
}

void wput_u32(struct wbuf *w, uint32_t v)
{
	v = htole32(v);
	wput_bytes(w, &v, sizeof(v));
}

void wput_u64(struct wbuf *w, uint64_t v)
{
	v = htole64(v);
	wput_bytes(w, &v, sizeof(v));
}

void wput_blob(struct wbuf *w, const void *p, size_t n)
{
	if (n > WIRE_MAX_BLOB) {
		if (!w->err)
			w->err = -E2BIG;
		return;
	}
	wput_u32(w, (uint32_t)n);
	wput_bytes(w, p, n);
}

void wput_str(struct wbuf *w, const char *s)
{
	if (!s)
		wput_u32(w, NULL_STR);
	else
		wput_blob(w, s, strlen(s));
}

int wbuf_err(const struct wbuf *w)
{
	return w->err;
}

void rbuf_init(struct rbuf *r, const void *p, size_t len)
{
	*r = (struct rbuf){.p = p, .len = p ? len : 0};
}

/* n bytes at the cursor, or NULL with the error set. */
static const uint8_t *take(struct rbuf *r, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = -EBADMSG;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

void rget_bytes(struct rbuf *r, void *out, size_t n)
{
	const uint8_t *p = take(r, n);

	if (p)
		memcpy(out, p, n);
	else
		memset(out, 0, n);
}

uint8_t rget_u8(struct rbuf *r)
{
	uint8_t v;
	rget_bytes(r, &v, 1);
	return v;
}

uint16_t rget_u16(struct rbuf *r)
{
	uint16_t v;
	rget_bytes(r, &v, sizeof(v));
	return le16toh(v);
}

uint32_t rget_u32(struct rbuf *r)
{
	uint32_t v;
	rget_bytes(r, &v, sizeof(v));
	return le32toh(v);
}

uint64_t rget_u64(struct rbuf *r)
{
	uint64_t v;
	rget_bytes(r, &v, sizeof(v));
	return le64toh(v);
}

bool rget_bool(struct rbuf *r, bool *bad)
{
	uint8_t v = rget_u8(r);

	*bad |= v > 1;
	return v;
}

const uint8_t *rget_blob(struct rbuf *r, size_t *n, size_t max)
{
	uint32_t len = rget_u32(r);
	const uint8_t *p;

	*n = 0;
	if (r->err)
		return NULL;
	if (len > max || len > WIRE_MAX_BLOB) {
		r->err = -EBADMSG;
		return NULL;
	}
	if (!(p = take(r, len)))
		return NULL;
	*n = len;
	return p;
}

bool rget_struct(struct rbuf *r, void *out, size_t size)
{
	size_t n;
	const uint8_t *p = rget_blob(r, &n, size);

	if (!p || n != size) {
		if (!r->err)
			r->err = -EBADMSG;
		memset(out, 0, size);
		return false;
	}
	memcpy(out, p, size);
	return true;
}

char *rget_str(struct rbuf *r, size_t max, bool *was_null)
{
	size_t save = r->off, n;
	const uint8_t *p;
	char *s;

	*was_null = false;
	if (rget_u32(r) == NULL_STR && !r->err) {
		*was_null = true;
		return NULL;
	}
	if (r->err)
		return NULL;
	r->off = save;
	if (!(p = rget_blob(r, &n, max)))
		return NULL;
	if (memchr(p, '\0', n)) {
		r->err = -EBADMSG;
		return NULL;
	}
	if (!(s = malloc(n + 1))) {
		r->err = -ENOMEM;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int rbuf_err(const struct rbuf *r)
{
	return r->err;
}

bool rbuf_done(const struct rbuf *r)
{
	return !r->err && r->off == r->len;
}
