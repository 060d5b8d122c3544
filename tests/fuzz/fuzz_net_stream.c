/* libFuzzer harness for virtio/net/stream.c's decoder: the fuzzer plays
 * passt (or whatever holds the other end of --net user's socket). The
 * input's first four bytes choose the decoder's largest frame (1 to 4096
 * bytes), its buffer's slack over one frame, and the sizes of the reads
 * the stream arrives in; the rest is the stream. Whatever the reads, the
 * decoder must hand out exactly the frames a plain walk over the whole
 * stream finds, each the very bytes that followed its prefix, skip
 * zero-length ones, and stop for good, at the same place, at the first
 * prefix over the limit. The buffer is its own malloc of exactly its
 * size, so ASan sees any overrun. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "net/stream.h"

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The reference: where the n-th non-empty frame starts (its prefix) in s,
 * or the offset of the prefix that breaks the stream (*bad), or SIZE_MAX
 * for no n-th frame yet. */
static size_t nth_frame(const uint8_t *s, size_t len, uint32_t max, unsigned n, bool *bad)
{
	size_t off = 0;

	*bad = false;
	while (len - off >= STREAM_PREFIX) {
		uint32_t l = be32(s + off);
		if (l > max) {
			*bad = true;
			return off;
		}
		if (len - off - STREAM_PREFIX < l)
			return SIZE_MAX;
		if (l && n-- == 0)
			return off;
		off += STREAM_PREFIX + l;
	}
	return SIZE_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream_rx rx;
	const uint8_t *s;
	uint32_t max, rng;
	size_t len, fed = 0, slack;
	unsigned taken = 0;

	if (size < 4)
		return 0;
	max = 1 + ((uint32_t)data[0] << 8 | data[1]) % 4096;
	slack = data[2];
	rng = data[3] | 1;
	s = data + 4;
	len = size - 4;
	CHECK(stream_rx_init(&rx, STREAM_PREFIX + max + slack, max) == 0);

	for (;;) {
		const uint8_t *f;
		uint32_t fl;
		uint8_t *at;
		size_t room, n, want;
		bool bad;
		int r;

		while ((r = stream_rx_next(&rx, &f, &fl)) == 1) {
			want = nth_frame(s, fed, max, taken, &bad);
			CHECK(want != SIZE_MAX && !bad);
			CHECK(fl == be32(s + want) && fl > 0 && fl <= max);
			CHECK(!memcmp(f, s + want + STREAM_PREFIX, fl));
			taken++;
		}
		want = nth_frame(s, fed, max, taken, &bad);
		if (r < 0) {
			CHECK(r == -EMSGSIZE && bad && rx.bad_len == be32(s + want));
			CHECK(stream_rx_space(&rx, &at) == 0 && !stream_rx_pending(&rx));
			CHECK(stream_rx_next(&rx, &f, &fl) == -EMSGSIZE);
			break;
		}
		CHECK(r == 0 && want == SIZE_MAX && !stream_rx_pending(&rx));
		if (fed == len)
			break;
		room = stream_rx_space(&rx, &at);
		CHECK(room > 0 && room <= rx.cap);
		/* Reads of 1 to 64 bytes, or whatever room there is. */
		rng = rng * 1103515245u + 12345u;
		n = (rng >> 16) % 8 == 0 ? room : 1 + (rng >> 16) % 64;
		if (n > room)
			n = room;
		if (n > len - fed)
			n = len - fed;
		memcpy(at, s + fed, n);
		CHECK(stream_rx_commit(&rx, n) == 0);
		fed += n;
	}
	stream_rx_free(&rx);
	return 0;
}
