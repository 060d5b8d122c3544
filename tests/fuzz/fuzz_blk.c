/* libFuzzer harness for virtio/blk/blk_req.c: the fuzzer plays a hostile
 * guest that controls the request header, the discard range and how the
 * chain is cut into segments. No I/O: blk_parse is pure, and what it returns is
 * checked against the chain and then touched byte by byte, so an iovec or
 * status pointer outside the segments shows up as an ASan report.
 *
 * Input layout (little-endian):
 *   0      bit 0 read-only, 1 FLUSH, 2 DISCARD, 3 WRITE_ZEROES negotiated,
 *          bit 4 huge capacity (near the 2^55-sector limit)
 *   1..2   capacity in sectors (u16; or subtracted from the huge one)
 *   3      segment count (mod 33)
 *   then   u16 per segment: bit 15 device-writable, bits 0..11 length - 1;
 *          once a segment is writable the rest are too (vq_pop's promise)
 *   rest   the segments' bytes, in order, zeros when the input runs out
 * Each segment is its own malloc of exactly its length. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk_req.h"
#include "fuzz.h"

#define MAX_SEGS 32

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* True when [p, p + len) lies inside one segment of direction write. */
static bool inside(const struct vq_chain *c, const void *p, size_t len, bool write)
{
	const uint8_t *b = p;

	for (uint32_t i = 0; i < c->nseg; i++) {
		const uint8_t *s = c->seg[i].host;

		if (c->seg[i].write == write && b >= s && len <= c->seg[i].len &&
		    (size_t)(b - s) <= c->seg[i].len - len)
			return true;
	}
	return false;
}

/* The iovec covers exactly len bytes, each entry within one segment of the
 * right direction, none of them the status byte; touch every byte. */
static void check_iov(const struct vq_chain *c, const struct blk_req *r, uint64_t len, bool write)
{
	uint64_t tot = 0;

	CHECK(r->niov <= c->nseg);
	for (unsigned i = 0; i < r->niov; i++) {
		volatile uint8_t *p = r->iov[i].iov_base;
		size_t n = r->iov[i].iov_len;

		CHECK(n > 0 && inside(c, r->iov[i].iov_base, n, write));
		CHECK(!write || r->status_byte < (uint8_t *)p ||
		      r->status_byte >= (uint8_t *)p + n);
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)(p[k] + 1);
		tot += n;
	}
	CHECK(tot == len);
}

static void check_range(const struct blk_geom *g, const struct blk_req *r)
{
	CHECK(r->off % BLK_SECTOR_SIZE == 0 && r->len % BLK_SECTOR_SIZE == 0);
	CHECK(r->len > 0);
	CHECK(r->off / BLK_SECTOR_SIZE <= g->capacity);
	CHECK(r->len / BLK_SECTOR_SIZE <= g->capacity - r->off / BLK_SECTOR_SIZE);
}

static void check(const struct blk_geom *g, const struct vq_chain *c, const struct blk_req *r)
{
	const struct vq_seg *last = &c->seg[c->nseg - 1];
	static const char id[VIRTIO_BLK_ID_BYTES] = "fuzz-serial";

	CHECK(last->write && r->status_byte == (uint8_t *)last->host + last->len - 1);
	*r->status_byte = VIRTIO_BLK_S_OK;
	switch (r->op) {
	case BLK_OP_NONE:
		CHECK(r->status == VIRTIO_BLK_S_OK || r->status == VIRTIO_BLK_S_IOERR ||
		      r->status == VIRTIO_BLK_S_UNSUPP);
		CHECK(r->niov == 0);
		break;
	case BLK_OP_READ:
		CHECK(r->type == VIRTIO_BLK_T_IN && c->readable == 16);
		CHECK(r->len == c->writable - 1u);
		check_range(g, r);
		check_iov(c, r, r->len, true);
		break;
	case BLK_OP_WRITE:
		CHECK(r->type == VIRTIO_BLK_T_OUT && !g->read_only && c->writable == 1);
		CHECK(r->len == c->readable - 16u);
		check_range(g, r);
		check_iov(c, r, r->len, false);
		break;
	case BLK_OP_FLUSH:
		CHECK(r->type == VIRTIO_BLK_T_FLUSH && g->flush);
		break;
	case BLK_OP_GET_ID:
		CHECK(r->type == VIRTIO_BLK_T_GET_ID);
		CHECK(r->len >= 1 && r->len <= VIRTIO_BLK_ID_BYTES && r->len < c->writable);
		check_iov(c, r, r->len, true);
		CHECK(blk_iov_fill(r->iov, r->niov, id, r->len) == r->len);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		CHECK(!g->read_only);
		CHECK(r->op == BLK_OP_DISCARD ? g->discard && !r->unmap : g->write_zeroes);
		check_range(g, r);
		break;
	default:
		CHECK(0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vq_seg segs[MAX_SEGS];
	struct iovec iov[MAX_SEGS];
	struct vq_chain c = {.seg = segs, .cap = MAX_SEGS};
	struct blk_geom g;
	struct blk_req r;
	const uint8_t *body;
	size_t nseg, left;
	bool write = false;
	int rc;

	if (size < 4)
		return 0;
	nseg = data[3] % (MAX_SEGS + 1);
	if (size < 4 + 2 * nseg)
		return 0;
	g = (struct blk_geom){
	    .read_only = data[0] & 1,
	    .flush = data[0] & 2,
	    .discard = data[0] & 4,
	    .write_zeroes = data[0] & 8,
	    .max_discard_sectors = 1u << 22,
	    .max_write_zeroes_sectors = 1u << 22,
	};
	g.capacity = data[0] & 16 ? (UINT64_MAX >> 9) - le16(data + 1) : le16(data + 1);
	body = data + 4 + 2 * nseg;
	left = size - 4 - 2 * nseg;
	for (size_t i = 0; i < nseg; i++) {
		uint16_t v = le16(data + 4 + 2 * i);
		uint32_t len = (v & 0xfff) + 1u;
		uint8_t *buf = malloc(len);
		size_t n = left < len ? left : len;

		CHECK(buf);
		memset(buf, 0, len);
		memcpy(buf, body, n);
		body += n;
		left -= n;
		write |= v >> 15;
		segs[i] =
		    (struct vq_seg){.gpa = 0x1000 * i, .len = len, .write = write, .host = buf};
		if (write)
			c.writable += len;
		else
			c.readable += len;
	}
	c.nseg = (uint32_t)nseg;

	rc = blk_parse(&g, &c, &r, iov, (unsigned)nseg);
	if (c.writable == 0) {
		CHECK(rc == -EPROTO && r.status_byte == NULL);
	} else {
		CHECK(rc == 0);
		check(&g, &c, &r);
	}
	for (size_t i = 0; i < nseg; i++)
		free(segs[i].host);
	return 0;
}
