/* virtio-vsock packet parsing and layout; see vsock_pkt.h. */
#include "vsock/vsock_pkt.h"

#include <endian.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <string.h>

/* Copy the first len bytes of the chain's segments (all of one direction:
 * TX chains are readable only, RX chains writable only) out to dst, or in
 * from src. Return the bytes copied: fewer than len when the chain is
 * shorter. */
static uint32_t gather(const struct vq_chain *c, void *dst, uint32_t len)
{
	uint32_t done = 0;

	for (uint32_t i = 0; i < c->nseg && done < len; i++) {
		uint32_t n = c->seg[i].len < len - done ? c->seg[i].len : len - done;
		memcpy((uint8_t *)dst + done, c->seg[i].host, n);
		done += n;
	}
	return done;
}

static void scatter(const struct vq_chain *c, const void *src, uint32_t len)
{
	uint32_t done = 0;

	for (uint32_t i = 0; i < c->nseg && done < len; i++) {
		uint32_t n = c->seg[i].len < len - done ? c->seg[i].len : len - done;
		memcpy(c->seg[i].host, (const uint8_t *)src + done, n);
		done += n;
	}
}

/* Point iov at len bytes of the chain's segments from byte skip on. Returns
 * the number of iovecs, or -E2BIG when more than cap are needed. The caller
 * has checked that the chain holds skip + len bytes. */
static int map_segs(const struct vq_chain *c, uint32_t skip, uint32_t len, struct iovec *iov,
		    unsigned cap)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < c->nseg && len; i++) {
		uint32_t seg = c->seg[i].len;
		if (skip >= seg) {
			skip -= seg;
			continue;
		}
		uint32_t take = seg - skip < len ? seg - skip : len;
		if (n == cap)
			return -E2BIG;
		iov[n++] = (struct iovec){(uint8_t *)c->seg[i].host + skip, take};
		len -= take;
		skip = 0;
	}
	return (int)n;
}

static bool known_op(uint16_t op)
{
	return op >= VIRTIO_VSOCK_OP_REQUEST && op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST;
}

enum vsock_pkt_err vsock_pkt_parse(const struct vq_chain *c, uint64_t guest_cid,
				   struct vsock_pkt *p)
{
	const struct virtio_vsock_hdr *h = &p->hdr;
	uint16_t op;
	uint32_t flags, len;
	int n;

	memset(&p->hdr, 0, sizeof(p->hdr));
	p->niov = 0;
	p->room = 0;
	if (c->writable)
		return VSOCK_PKT_WRITABLE;
	if (gather(c, &p->hdr, VSOCK_PKT_HDR_SIZE) < VSOCK_PKT_HDR_SIZE)
		return VSOCK_PKT_SHORT;
	if (le64toh(h->src_cid) != guest_cid)
		return VSOCK_PKT_SRC_CID;
	if (le64toh(h->dst_cid) != VMADDR_CID_HOST)
		return VSOCK_PKT_DST_CID;
	if (le16toh(h->type) != VIRTIO_VSOCK_TYPE_STREAM)
		return VSOCK_PKT_TYPE;
	op = le16toh(h->op);
	if (!known_op(op))
		return VSOCK_PKT_OP;
	flags = le32toh(h->flags);
	if (op == VIRTIO_VSOCK_OP_SHUTDOWN
		? flags & ~(uint32_t)(VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)
		: flags)
		return VSOCK_PKT_FLAGS;
	len = le32toh(h->len);
	if (len > c->readable - VSOCK_PKT_HDR_SIZE || len > VSOCK_PKT_MAX_PAYLOAD ||
	    (len && op != VIRTIO_VSOCK_OP_RW))
		return VSOCK_PKT_LEN;
	n = map_segs(c, VSOCK_PKT_HDR_SIZE, len, p->iov, p->cap);
	if (n < 0)
		return VSOCK_PKT_SEGS;
	p->niov = (unsigned)n;
	return VSOCK_PKT_OK;
}

bool vsock_pkt_can_reset(enum vsock_pkt_err err, const struct vsock_pkt *p)
{
	switch (err) {
	case VSOCK_PKT_TYPE:
	case VSOCK_PKT_OP:
	case VSOCK_PKT_FLAGS:
	case VSOCK_PKT_LEN:
	case VSOCK_PKT_SEGS:
		return le16toh(p->hdr.op) != VIRTIO_VSOCK_OP_RST;
	default:
		return false;
	}
}

const char *vsock_pkt_strerror(enum vsock_pkt_err err)
{
	static const char *const names[] = {
	    [VSOCK_PKT_OK] = "ok",
	    [VSOCK_PKT_WRITABLE] = "writable buffers in a TX chain",
	    [VSOCK_PKT_SHORT] = "short header",
	    [VSOCK_PKT_SRC_CID] = "wrong source CID",
	    [VSOCK_PKT_DST_CID] = "destination is not the host",
	    [VSOCK_PKT_TYPE] = "not a stream packet",
	    [VSOCK_PKT_OP] = "unknown op",
	    [VSOCK_PKT_FLAGS] = "bad flags",
	    [VSOCK_PKT_LEN] = "bad length",
	    [VSOCK_PKT_SEGS] = "too many segments",
	};
	return (unsigned)err < ARRAY_SIZE(names) ? names[err] : "?";
}

int vsock_pkt_rx_map(const struct vq_chain *c, struct vsock_pkt *p)
{
	uint32_t room;
	int n;

	p->niov = 0;
	p->room = 0;
	/* A buffer that holds a header and no data could carry control
	 * packets only; Linux gives 4 KiB ones, so refuse rather than stall. */
	if (c->readable || c->writable <= VSOCK_PKT_HDR_SIZE)
		return -EINVAL;
	room = c->writable - VSOCK_PKT_HDR_SIZE;
	if (room > VSOCK_PKT_MAX_PAYLOAD)
		room = VSOCK_PKT_MAX_PAYLOAD;
	n = map_segs(c, VSOCK_PKT_HDR_SIZE, room, p->iov, p->cap);
	if (n < 0)
		return n;
	p->niov = (unsigned)n;
	p->room = room;
	return 0;
}

void vsock_pkt_rx_put_hdr(const struct vq_chain *c, const struct virtio_vsock_hdr *h)
{
	scatter(c, h, VSOCK_PKT_HDR_SIZE);
}

void vsock_pkt_init(struct virtio_vsock_hdr *h, uint64_t guest_cid, uint32_t host_port,
		    uint32_t guest_port, uint16_t op, uint32_t flags)
{
	*h = (struct virtio_vsock_hdr){
	    .src_cid = htole64(VMADDR_CID_HOST),
	    .dst_cid = htole64(guest_cid),
	    .src_port = htole32(host_port),
	    .dst_port = htole32(guest_port),
	    .type = htole16(VIRTIO_VSOCK_TYPE_STREAM),
	    .op = htole16(op),
	    .flags = htole32(flags),
	};
}
