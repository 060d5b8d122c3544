/* libFuzzer harness for virtio/vq.c: the fuzzer plays a hostile guest.
 *
 * Input layout (little-endian):
 *   0..3   queue size as the transport would pass it (any u32; usually
 *          taken as 1 << (byte 0 & 15) so activation mostly succeeds)
 *   4      bit 0 EVENT_IDX, bit 1 raw size (bytes 0..3 as is)
 *   5      segment storage capacity - 1 (1..256)
 *   6..11  desc, avail, used ring addresses (u16 each, inside RAM)
 *   12     script length n (mod 64), then n script bytes, one op each:
 *            low 2 bits 0: pop and push back, 1: pop and keep in flight,
 *            2: guest adds (byte >> 2) to avail->idx, 3: notify dance
 *   rest   the first 64 KiB of guest RAM (descriptors, rings, buffers)
 * Every popped chain is checked against gmem and touched end to end, so a
 * segment outside guest RAM shows up as a trap or an ASan report. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/gmem.h"
#include "fuzz.h"
#include "vq.h"

#define RAM (64u << 10)
#define HDR 13

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* A chain vq_pop accepted must be exactly what the walk promised. */
static void check_chain(struct gmem *g, const struct vq *q, const struct vq_chain *c)
{
	uint64_t tot[2] = {0, 0};
	bool seen_write = false;

	CHECK(c->head < q->size && c->nseg <= c->cap);
	for (uint32_t i = 0; i < c->nseg; i++) {
		const struct vq_seg *s = &c->seg[i];
		volatile uint8_t *p = s->host;

		CHECK(s->len > 0 && s->host == gmem_ptr(g, s->gpa, s->len));
		CHECK(s->write || !seen_write);
		seen_write |= s->write;
		tot[s->write] += s->len;
		/* Touch both ends: outside the mapping this faults. */
		(void)p[0];
		(void)p[s->len - 1];
		if (s->write)
			p[s->len - 1] = 0xa5;
	}
	CHECK(tot[0] == c->readable && tot[1] == c->writable);
}

/* vq_pop returns 1, 0 or one of the errors vq.h lists. */
static bool pop_result_ok(int r)
{
	switch (r) {
	case 1:
	case 0:
	case -EIO:
	case -EINVAL:
	case -ELOOP:
	case -EFAULT:
	case -EOVERFLOW:
	case -E2BIG:
		return true;
	}
	return false;
}

static void notify_dance(struct vq *q)
{
	vq_disable_notify(q);
	vq_enable_notify(q);
	(void)vq_has_work(q);
	(void)vq_need_interrupt(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gmem *g;
	static struct vq_seg segs[256];
	struct vq_chain c = {.seg = segs};
	struct vq q;
	const uint8_t *script;
	uint32_t qsize, n;

	if (size < HDR)
		return 0;
	if (!g && gmem_create(&g, RAM))
		__builtin_trap();
	qsize = data[4] & 2 ? (le16(data) | (uint32_t)le16(data + 2) << 16) : 1u << (data[0] & 15);
	c.cap = data[5] % ARRAY_SIZE(segs) + 1;
	n = data[12] % 64;
	if (size < HDR + n)
		return 0;
	script = data + HDR;
	uint8_t *ram = gmem_ptr(g, 0, RAM);
	size_t img = size - HDR - n < RAM ? size - HDR - n : RAM;
	memset(ram, 0, RAM);
	memcpy(ram, data + HDR + n, img);

	if (vq_activate(&q, g, qsize, le16(data + 6), le16(data + 8), le16(data + 10), data[4] & 1))
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t op = script[i];
		int r;

		switch (op & 3) {
		case 0:
		case 1:
			r = vq_pop(&q, &c);
			CHECK(pop_result_ok(r));
			if (r == 1) {
				check_chain(g, &q, &c);
				if ((op & 3) == 0)
					CHECK(vq_push(&q, c.head, c.writable) == 0);
			}
			break;
		case 2: {
			struct vring_avail *a = q.avail;
			a->idx = (uint16_t)(a->idx + (op >> 2));
			break;
		}
		default:
			notify_dance(&q);
		}
	}
	vq_reset(&q);
	return 0;
}
