/* QEMU's stream protocol's framing; see stream.h. */
#include "net/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void stream_put_len(uint8_t *out, uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

static uint32_t get_len(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int stream_rx_init(struct stream_rx *rx, size_t cap, uint32_t max_frame)
{
	*rx = (struct stream_rx){0};
	if (!max_frame || cap < STREAM_PREFIX + (size_t)max_frame)
		return -EINVAL;
	if (!(rx->buf = malloc(cap)))
		return -ENOMEM;
	rx->cap = cap;
	rx->max_frame = max_frame;
	return 0;
}

void stream_rx_free(struct stream_rx *rx)
{
	free(rx->buf);
	*rx = (struct stream_rx){0};
}

size_t stream_rx_space(struct stream_rx *rx, uint8_t **at)
{
	*at = NULL;
	if (rx->err || !rx->buf)
		return 0;
	if (rx->start == rx->end) {
		rx->start = rx->end = 0;
	} else if (rx->end == rx->cap || rx->start > rx->cap / 2) {
		/* What is left is less than a frame and its prefix (a whole
		 * frame is taken before the caller reads again, or it is
		 * waiting: then it is still here, and the caller should not
		 * be reading), so it fits at the front. Moving when half the
		 * buffer is behind keeps reads large. */
		memmove(rx->buf, rx->buf + rx->start, rx->end - rx->start);
		rx->end -= rx->start;
		rx->start = 0;
	}
	*at = rx->buf + rx->end;
	return rx->cap - rx->end;
}

int stream_rx_commit(struct stream_rx *rx, size_t n)
{
	if (!rx->buf || n > rx->cap - rx->end)
		return -EINVAL;
	rx->end += n;
	return 0;
}

int stream_rx_next(struct stream_rx *rx, const uint8_t **frame, uint32_t *len)
{
	for (;;) {
		size_t have = rx->end - rx->start;
		uint32_t l;

		if (rx->err)
			return rx->err;
		if (have < STREAM_PREFIX)
			return 0;
		l = get_len(rx->buf + rx->start);
		if (l > rx->max_frame) {
			/* Not a length any frame has: the bytes after it cannot
			 * be trusted to start a frame either. */
			rx->bad_len = l;
			rx->err = -EMSGSIZE;
			return rx->err;
		}
		if (l == 0) {
			rx->start += STREAM_PREFIX;
			continue;
		}
		if (have - STREAM_PREFIX < l)
			return 0;
		*frame = rx->buf + rx->start + STREAM_PREFIX;
		*len = l;
		rx->start += STREAM_PREFIX + l;
		return 1;
	}
}

bool stream_rx_pending(const struct stream_rx *rx)
{
	size_t have = rx->end - rx->start;
	uint32_t l;

	if (rx->err || have < STREAM_PREFIX)
		return false;
	/* A zero or oversized prefix is something stream_rx_next acts on. */
	l = get_len(rx->buf + rx->start);
	return l == 0 || l > rx->max_frame || have - STREAM_PREFIX >= l;
}

void stream_out_start(struct stream_out *o, uint8_t *frame, uint32_t len)
{
	stream_put_len(frame - STREAM_PREFIX, len);
	o->p = frame - STREAM_PREFIX;
	o->left = STREAM_PREFIX + (size_t)len;
}

int stream_out_advance(struct stream_out *o, size_t n)
{
	if (n > o->left)
		return -EINVAL;
	o->p += n;
	o->left -= n;
	return o->left == 0;
}
