/* virtio-blk request parsing; see blk_req.h. Statuses follow virtio 1.2
 * 5.2.6: IOERR for "device or driver error" (bad framing, wrong direction,
 * out of range, writes to a read-only disk), UNSUPP for types and flags the
 * device does not implement or the driver did not negotiate. */
#include "blk/blk_req.h"

#include <errno.h>
#include <string.h>

#define HDR_SIZE sizeof(struct virtio_blk_outhdr)
#define DWZ_SIZE sizeof(struct virtio_blk_discard_write_zeroes)
_Static_assert(HDR_SIZE == 16 && DWZ_SIZE == 16, "gather() copies at most 16 bytes");

/* The iovec for bytes [skip, skip + take) of the readable (write false) or
 * writable area of c. Returns the entries used, or -E2BIG past cap. The
 * caller has checked that the area holds skip + take bytes. */
static int slice(const struct vq_chain *c, bool write, uint64_t skip, uint64_t take,
		 struct iovec *iov, unsigned cap)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < c->nseg && take; i++) {
		const struct vq_seg *s = &c->seg[i];
		uint64_t len = s->len;

		if (s->write != write)
			continue;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		len -= skip;
		if (len > take)
			len = take;
		if (n == cap)
			return -E2BIG;
		iov[n++] = (struct iovec){.iov_base = (uint8_t *)s->host + skip, .iov_len = len};
		take -= len;
		skip = 0;
	}
	return (int)n;
}

/* Copy len (<= 16) bytes at offset off of the readable area into dst, the
 * caller's local of that size. The caller has checked the area is long
 * enough; no segment is empty, so 16 bytes span at most 16 of them. */
static void gather(const struct vq_chain *c, uint64_t off, void *dst, size_t len)
{
	struct iovec v[16];
	uint8_t *d = dst;
	int n = slice(c, false, off, len, v, ARRAY_SIZE(v));

	memset(dst, 0, len);
	for (int i = 0; i < n; i++) {
		memcpy(d, v[i].iov_base, v[i].iov_len);
		d += v[i].iov_len;
	}
}

size_t blk_iov_fill(const struct iovec *iov, unsigned niov, const void *src, size_t len)
{
	const uint8_t *p = src;
	size_t done = 0;

	for (unsigned i = 0; i < niov && done < len; i++) {
		size_t n = iov[i].iov_len;

		if (n > len - done)
			n = len - done;
		memcpy(iov[i].iov_base, p + done, n);
		done += n;
	}
	return done;
}

/* [sector, sector + bytes / 512) within the disk; no overflow since
 * sector <= capacity < 2^55 is checked first. */
static bool in_range(const struct blk_geom *g, uint64_t sector, uint64_t bytes)
{
	return sector <= g->capacity && bytes >> BLK_SECTOR_SHIFT <= g->capacity - sector;
}

static int answer(struct blk_req *r, uint8_t status)
{
	r->op = BLK_OP_NONE;
	r->status = status;
	r->niov = 0;
	return 0;
}

/* IN and OUT: data in one direction only, whole sectors, within the disk. */
static int parse_rw(const struct blk_geom *g, const struct vq_chain *c, struct blk_req *r,
		    uint64_t sector, unsigned cap)
{
	bool in = r->type == VIRTIO_BLK_T_IN;
	uint64_t len;
	int n;

	if (!in && g->read_only)
		return answer(r, VIRTIO_BLK_S_IOERR); /* 5.2.6.2: and write nothing */
	/* The other direction holds only the header (IN) or the status (OUT). */
	if (in ? c->readable != HDR_SIZE : c->writable != 1)
		return answer(r, VIRTIO_BLK_S_IOERR);
	len = in ? c->writable - 1u : c->readable - HDR_SIZE;
	if (len % BLK_SECTOR_SIZE || !in_range(g, sector, len) ||
	    (g->max_rw_bytes && len > g->max_rw_bytes))
		return answer(r, VIRTIO_BLK_S_IOERR);
	if (len == 0)
		return answer(r, VIRTIO_BLK_S_OK);
	n = slice(c, in, in ? 0 : HDR_SIZE, len, r->iov, cap);
	if (n < 0)
		return answer(r, VIRTIO_BLK_S_IOERR);
	r->niov = (unsigned)n;
	r->op = in ? BLK_OP_READ : BLK_OP_WRITE;
	r->off = sector << BLK_SECTOR_SHIFT;
	r->len = len;
	return 0;
}

/* DISCARD and WRITE_ZEROES: exactly one range (max_*_seg is 1), known flags,
 * within the disk and the advertised maximum. */
static int parse_dwz(const struct blk_geom *g, const struct vq_chain *c, struct blk_req *r)
{
	bool discard = r->type == VIRTIO_BLK_T_DISCARD;
	struct virtio_blk_discard_write_zeroes d;
	uint32_t max = discard ? g->max_discard_sectors : g->max_write_zeroes_sectors;

	/* Read-only disks are not offered these; the write rule still comes
	 * first, as for OUT. */
	if (g->read_only)
		return answer(r, VIRTIO_BLK_S_IOERR);
	if (!(discard ? g->discard : g->write_zeroes))
		return answer(r, VIRTIO_BLK_S_UNSUPP);
	if (c->readable != HDR_SIZE + DWZ_SIZE || c->writable != 1)
		return answer(r, VIRTIO_BLK_S_IOERR);
	gather(c, HDR_SIZE, &d, sizeof(d));
	if (d.flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		return answer(r, VIRTIO_BLK_S_UNSUPP);
	if (discard && d.flags)
		return answer(r, VIRTIO_BLK_S_UNSUPP); /* 5.2.6.2: unmap on a discard */
	if (d.num_sectors > max ||
	    !in_range(g, d.sector, (uint64_t)d.num_sectors << BLK_SECTOR_SHIFT))
		return answer(r, VIRTIO_BLK_S_IOERR);
	if (d.num_sectors == 0)
		return answer(r, VIRTIO_BLK_S_OK);
	r->op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
	r->off = d.sector << BLK_SECTOR_SHIFT;
	r->len = (uint64_t)d.num_sectors << BLK_SECTOR_SHIFT;
	r->unmap = !discard && d.flags;
	return 0;
}

int blk_parse(const struct blk_geom *g, const struct vq_chain *c, struct blk_req *r,
	      struct iovec *iov, unsigned cap)
{
	const struct vq_seg *last = c->nseg ? &c->seg[c->nseg - 1] : NULL;
	struct virtio_blk_outhdr h;
	uint64_t idlen;
	int n;

	*r = (struct blk_req){.type = BLK_TYPE_NONE, .iov = iov};
	/* Writable segments come last, and none is empty. */
	if (c->writable == 0 || !last || !last->write)
		return -EPROTO;
	r->status_byte = (uint8_t *)last->host + last->len - 1;
	if (c->readable < HDR_SIZE)
		return answer(r, VIRTIO_BLK_S_IOERR);
	gather(c, 0, &h, sizeof(h));
	r->type = h.type;

	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return parse_rw(g, c, r, h.sector, cap);
	case VIRTIO_BLK_T_FLUSH:
		/* The sector is 0 and there is no data (driver SHOULD/MUST); a
		 * driver that sends either anyway still gets its flush. */
		if (!g->flush)
			return answer(r, VIRTIO_BLK_S_UNSUPP);
		/* Nothing written to a read-only drive: nothing to make stable
		 * (an fdatasync would still flush the host disk's cache). */
		if (g->read_only)
			return answer(r, VIRTIO_BLK_S_OK);
		r->op = BLK_OP_FLUSH;
		return 0;
	case VIRTIO_BLK_T_GET_ID:
		if (c->readable != HDR_SIZE || c->writable < 2)
			return answer(r, VIRTIO_BLK_S_IOERR);
		idlen = c->writable - 1u;
		if (idlen > VIRTIO_BLK_ID_BYTES)
			idlen = VIRTIO_BLK_ID_BYTES;
		n = slice(c, true, 0, idlen, iov, cap);
		if (n < 0)
			return answer(r, VIRTIO_BLK_S_IOERR);
		r->niov = (unsigned)n;
		r->len = idlen;
		r->op = BLK_OP_GET_ID;
		return 0;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return parse_dwz(g, c, r);
	default:
		return answer(r, VIRTIO_BLK_S_UNSUPP);
	}
}
