/* The stream protocol's framing (virtio/net/stream.c): frames behind a
 * 32-bit big-endian length, decoded from reads of any size, and a frame's
 * writes however short. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/stream.h"

/* A byte stream the tests build: frames appended with their prefixes. */
struct wire {
	uint8_t b[1 << 20];
	size_t len;
};

static void put_frame(struct wire *w, uint32_t len, uint8_t seed)
{
	stream_put_len(w->b + w->len, len);
	w->len += STREAM_PREFIX;
	for (uint32_t i = 0; i < len; i++)
		w->b[w->len++] = (uint8_t)(seed + i * 7);
}

static bool frame_is(const uint8_t *f, uint32_t len, uint32_t want_len, uint8_t seed)
{
	if (len != want_len)
		return false;
	for (uint32_t i = 0; i < len; i++)
		if (f[i] != (uint8_t)(seed + i * 7))
			return false;
	return true;
}

/* Feed w to rx in reads of at most chunk bytes (and no more than the
 * decoder offers), taking every whole frame after each read into lens[]
 * and seeds[] (the frame's first byte). Returns the frames taken, or the
 * error. */
static int feed(struct stream_rx *rx, const struct wire *w, size_t chunk, uint32_t *lens,
		uint8_t *firsts, unsigned max)
{
	size_t off = 0;
	unsigned got = 0;

	for (;;) {
		const uint8_t *f;
		uint32_t l;
		uint8_t *at;
		size_t room, n;
		int r;

		while ((r = stream_rx_next(rx, &f, &l)) == 1) {
			cr_assert_lt(got, max);
			lens[got] = l;
			firsts[got] = f[0];
			cr_assert(frame_is(f, l, l, f[0]), "frame %u of %u bytes intact", got, l);
			got++;
		}
		if (r < 0)
			return r;
		if (off == w->len)
			return (int)got;
		room = stream_rx_space(rx, &at);
		cr_assert_gt(room, 0, "room for a read after every frame is taken");
		n = w->len - off < chunk ? w->len - off : chunk;
		n = n < room ? n : room;
		memcpy(at, w->b + off, n);
		cr_assert_eq(stream_rx_commit(rx, n), 0);
		off += n;
	}
}

static struct wire w;
static uint32_t lens[4096];
static uint8_t firsts[4096];

Test(net_stream, prefix_is_big_endian)
{
	uint8_t b[4];

	stream_put_len(b, 0x01020304);
	cr_assert_eq(memcmp(b, "\x01\x02\x03\x04", 4), 0);
	stream_put_len(b, 60);
	cr_assert_eq(memcmp(b, "\0\0\0\x3c", 4), 0);
}

Test(net_stream, init_wants_room_for_a_whole_frame)
{
	struct stream_rx rx;

	cr_assert_eq(stream_rx_init(&rx, 100, 97), -EINVAL);
	cr_assert_eq(stream_rx_init(&rx, 100, 0), -EINVAL);
	cr_assert_eq(stream_rx_init(&rx, 100, 96), 0);
	stream_rx_free(&rx);
	stream_rx_free(&rx); /* twice: zeroed */
}

Test(net_stream, frames_in_one_read)
{
	struct stream_rx rx;

	cr_assert_eq(stream_rx_init(&rx, 4096, 1514), 0);
	w.len = 0;
	put_frame(&w, 60, 1);
	put_frame(&w, 1514, 2);
	put_frame(&w, 14, 3);
	cr_assert_eq(feed(&rx, &w, SIZE_MAX, lens, firsts, 16), 3);
	cr_assert_eq(lens[0], 60);
	cr_assert_eq(lens[1], 1514);
	cr_assert_eq(lens[2], 14);
	cr_assert_eq(firsts[1], 2);
	cr_assert_not(stream_rx_pending(&rx));
	stream_rx_free(&rx);
}

/* Every split of a frame across two reads, the prefix's own three included,
 * and a byte at a time. */
Test(net_stream, short_reads_anywhere)
{
	struct stream_rx rx;

	w.len = 0;
	put_frame(&w, 100, 9);
	put_frame(&w, 33, 10);
	for (size_t chunk = 1; chunk <= w.len; chunk++) {
		cr_assert_eq(stream_rx_init(&rx, 256, 128), 0);
		cr_assert_eq(feed(&rx, &w, chunk, lens, firsts, 16), 2, "reads of %zu bytes",
			     chunk);
		cr_assert_eq(lens[0], 100);
		cr_assert_eq(lens[1], 33);
		stream_rx_free(&rx);
	}
}

Test(net_stream, a_split_prefix_is_no_frame_yet)
{
	struct stream_rx rx;
	const uint8_t *f;
	uint8_t *at;
	uint32_t l;

	cr_assert_eq(stream_rx_init(&rx, 256, 128), 0);
	w.len = 0;
	put_frame(&w, 20, 4);
	for (size_t i = 0; i < STREAM_PREFIX + 19; i++) {
		cr_assert_gt(stream_rx_space(&rx, &at), 0);
		*at = w.b[i];
		cr_assert_eq(stream_rx_commit(&rx, 1), 0);
		cr_assert_eq(stream_rx_next(&rx, &f, &l), 0, "after %zu bytes", i + 1);
		cr_assert_not(stream_rx_pending(&rx));
	}
	cr_assert_gt(stream_rx_space(&rx, &at), 0);
	*at = w.b[STREAM_PREFIX + 19];
	cr_assert_eq(stream_rx_commit(&rx, 1), 0);
	cr_assert(stream_rx_pending(&rx));
	cr_assert_eq(stream_rx_next(&rx, &f, &l), 1);
	cr_assert(frame_is(f, l, 20, 4));
	stream_rx_free(&rx);
}

Test(net_stream, zero_length_frames_are_skipped)
{
	struct stream_rx rx;

	cr_assert_eq(stream_rx_init(&rx, 256, 128), 0);
	w.len = 0;
	put_frame(&w, 0, 0);
	put_frame(&w, 0, 0);
	put_frame(&w, 50, 5);
	put_frame(&w, 0, 0);
	put_frame(&w, 51, 6);
	put_frame(&w, 0, 0);
	cr_assert_eq(feed(&rx, &w, 3, lens, firsts, 16), 2);
	cr_assert_eq(lens[0], 50);
	cr_assert_eq(firsts[0], 5);
	cr_assert_eq(lens[1], 51);
	cr_assert_eq(firsts[1], 6);
	stream_rx_free(&rx);
}

Test(net_stream, the_longest_frame_passes)
{
	struct stream_rx rx;

	/* The buffer exactly one frame and its prefix: every byte of it used. */
	cr_assert_eq(stream_rx_init(&rx, STREAM_PREFIX + 65550, 65550), 0);
	w.len = 0;
	put_frame(&w, 65550, 7);
	put_frame(&w, 65550, 8);
	put_frame(&w, 1, 9);
	cr_assert_eq(feed(&rx, &w, 40000, lens, firsts, 16), 3);
	cr_assert_eq(lens[0], 65550);
	cr_assert_eq(lens[1], 65550);
	cr_assert_eq(firsts[1], 8);
	cr_assert_eq(lens[2], 1);
	stream_rx_free(&rx);
}

Test(net_stream, an_oversized_frame_breaks_the_stream)
{
	struct stream_rx rx;
	const uint8_t *f;
	uint8_t *at;
	uint32_t l;

	cr_assert_eq(stream_rx_init(&rx, 256, 128), 0);
	w.len = 0;
	put_frame(&w, 10, 1);
	stream_put_len(w.b + w.len, 129);
	w.len += STREAM_PREFIX;
	put_frame(&w, 10, 2); /* never reached */
	cr_assert_eq(feed(&rx, &w, SIZE_MAX, lens, firsts, 16), -EMSGSIZE);
	cr_assert_eq(rx.bad_len, 129);
	/* For good: no frame, no room for reads. */
	cr_assert_eq(stream_rx_next(&rx, &f, &l), -EMSGSIZE);
	cr_assert_eq(stream_rx_space(&rx, &at), 0);
	cr_assert_not(stream_rx_pending(&rx));
	stream_rx_free(&rx);

	/* A huge length, read a byte at a time: refused once the prefix is
	 * whole, with no more bytes read for it. */
	cr_assert_eq(stream_rx_init(&rx, 256, 128), 0);
	w.len = 0;
	stream_put_len(w.b, 0xffffffffu);
	w.len = STREAM_PREFIX;
	cr_assert_eq(feed(&rx, &w, 1, lens, firsts, 16), -EMSGSIZE);
	cr_assert_eq(rx.bad_len, 0xffffffffu);
	stream_rx_free(&rx);
}

Test(net_stream, commit_past_the_room_is_refused)
{
	struct stream_rx rx;
	uint8_t *at;
	size_t room;

	cr_assert_eq(stream_rx_init(&rx, 256, 128), 0);
	room = stream_rx_space(&rx, &at);
	cr_assert_eq(room, 256);
	cr_assert_eq(stream_rx_commit(&rx, room + 1), -EINVAL);
	cr_assert_eq(stream_rx_commit(&rx, room), 0);
	cr_assert_eq(stream_rx_commit(&rx, 1), -EINVAL);
	stream_rx_free(&rx);
}

/* Many frames of many sizes through a tight buffer in reads of odd sizes:
 * the partial frame is moved to the front over and over. */
Test(net_stream, many_frames_through_a_small_buffer)
{
	struct stream_rx rx;
	unsigned want = 0;
	int got;

	w.len = 0;
	for (uint32_t i = 0; w.len < sizeof(w.b) - 2000 && want < 4000; i++, want++)
		put_frame(&w, (i * 37) % 1200, (uint8_t)i);
	for (size_t chunk = 1; chunk < 3000; chunk = chunk * 3 + 1) {
		cr_assert_eq(stream_rx_init(&rx, 1300, 1200), 0);
		got = feed(&rx, &w, chunk, lens, firsts, 4096);
		/* Zero-length ones (every 1200/gcd-th) are skipped. */
		unsigned k = 0;
		for (uint32_t i = 0; i < want; i++) {
			if ((i * 37) % 1200 == 0)
				continue;
			cr_assert_lt(k, (unsigned)got);
			cr_assert_eq(lens[k], (i * 37) % 1200, "frame %u, reads of %zu", i, chunk);
			cr_assert_eq(firsts[k], (uint8_t)i);
			k++;
		}
		cr_assert_eq((unsigned)got, k);
		stream_rx_free(&rx);
	}
}

Test(net_stream, a_frame_goes_out_through_short_writes)
{
	uint8_t buf[STREAM_PREFIX + 300], out[sizeof(buf)];
	struct stream_out o;
	size_t n = 0, step = 1;
	int r = 0;

	for (unsigned i = 0; i < 300; i++)
		buf[STREAM_PREFIX + i] = (uint8_t)i;
	stream_out_start(&o, buf + STREAM_PREFIX, 300);
	cr_assert_eq(o.left, sizeof(buf));
	cr_assert_eq(o.p, buf);
	/* A write of nothing, then 1, 2, 3... bytes (a socket taking what it
	 * has room for), the prefix split too. */
	cr_assert_eq(stream_out_advance(&o, 0), 0);
	while (r == 0) {
		size_t k = step < o.left ? step++ : o.left;
		memcpy(out + n, o.p, k);
		n += k;
		r = stream_out_advance(&o, k);
	}
	cr_assert_eq(r, 1);
	cr_assert_eq(n, sizeof(buf));
	cr_assert_eq(memcmp(out, "\0\0\x01\x2c", 4), 0, "prefix 300");
	for (unsigned i = 0; i < 300; i++)
		cr_assert_eq(out[STREAM_PREFIX + i], (uint8_t)i);
}

Test(net_stream, advancing_past_the_frame_is_refused)
{
	uint8_t buf[STREAM_PREFIX + 10];
	struct stream_out o;

	stream_out_start(&o, buf + STREAM_PREFIX, 10);
	cr_assert_eq(stream_out_advance(&o, 15), -EINVAL);
	cr_assert_eq(o.left, 14, "nothing taken");
	cr_assert_eq(stream_out_advance(&o, 13), 0);
	cr_assert_eq(stream_out_advance(&o, 2), -EINVAL);
	cr_assert_eq(stream_out_advance(&o, 1), 1);
}
