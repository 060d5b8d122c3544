/* vsock connection state and credit; see vsock_conn.h. */
#include "vsock/vsock_conn.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "vsock/vsock_pkt.h"

static void init(struct vsock_conn *c, uint32_t local_port, uint32_t peer_port, uint32_t buf_alloc)
{
	*c = (struct vsock_conn){
	    .local_port = local_port, .peer_port = peer_port, .buf_alloc = buf_alloc};
}

void vsock_conn_connect(struct vsock_conn *c, uint32_t local_port, uint32_t peer_port,
			uint32_t buf_alloc)
{
	init(c, local_port, peer_port, buf_alloc);
	c->state = VSOCK_CONN_CONNECTING;
	c->pending = VSOCK_CONN_REQUEST;
}

static void take_credit(struct vsock_conn *c, const struct virtio_vsock_hdr *h)
{
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
}

void vsock_conn_accept(struct vsock_conn *c, const struct virtio_vsock_hdr *req, uint32_t buf_alloc)
{
	init(c, le32toh(req->dst_port), le32toh(req->src_port), buf_alloc);
	take_credit(c, req);
	c->state = VSOCK_CONN_OPEN;
	/* The host program may write before the guest hears the RESPONSE:
	 * its data follows the RESPONSE (vsock_conn_next's order). */
	c->pending = VSOCK_CONN_RESPONSE | VSOCK_CONN_DATA;
}

void vsock_conn_release(struct vsock_conn *c)
{
	lazy_free(c->buf, c->buf_alloc);
	c->buf = NULL;
	c->buf_head = c->buf_len = 0;
}

uint32_t vsock_conn_promised(const struct vsock_conn *c)
{
	return c->told_fwd_cnt + c->told_buf_alloc - c->fwd_cnt;
}

int vsock_conn_resize(struct vsock_conn *c, uint32_t size)
{
	if (size == c->buf_alloc)
		return 0;
	if (c->buf_len)
		return -EBUSY;
	if (size < vsock_conn_promised(c))
		return -EINVAL;
	vsock_conn_release(c);
	c->buf_alloc = size;
	return 0;
}

uint32_t vsock_conn_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	/* The guest may shrink its buffer below what is in flight. */
	return in_flight < c->peer_buf_alloc ? c->peer_buf_alloc - in_flight : 0;
}

/* Whether data from the socket may still go to the guest. */
static bool may_send(const struct vsock_conn *c)
{
	return c->state == VSOCK_CONN_OPEN && !c->peer_no_recv && !c->local_eof;
}

enum vsock_conn_verdict vsock_conn_recv(struct vsock_conn *c, const struct virtio_vsock_hdr *h)
{
	uint16_t op = le16toh(h->op);
	uint32_t flags = le32toh(h->flags), len = le32toh(h->len);

	if (c->state == VSOCK_CONN_CLOSED)
		return VSOCK_CONN_GONE;
	if (op == VIRTIO_VSOCK_OP_RST) {
		c->state = VSOCK_CONN_CLOSED;
		c->pending = 0;
		return VSOCK_CONN_GONE;
	}
	take_credit(c, h);
	if (c->want_credit && vsock_conn_credit(c) > 0) {
		c->want_credit = c->credit_asked = false;
		if (may_send(c))
			c->pending |= VSOCK_CONN_DATA;
	}
	if (op == VIRTIO_VSOCK_OP_RESPONSE) {
		if (c->state != VSOCK_CONN_CONNECTING || !c->request_sent)
			return VSOCK_CONN_RESET;
		c->state = VSOCK_CONN_OPEN;
		c->pending |= VSOCK_CONN_DATA;
		return VSOCK_CONN_ESTABLISHED;
	}
	/* A second REQUEST for a live connection is as wrong as traffic on
	 * one the guest has not accepted. */
	if (c->state != VSOCK_CONN_OPEN || op == VIRTIO_VSOCK_OP_REQUEST)
		return VSOCK_CONN_RESET;
	switch (op) {
	case VIRTIO_VSOCK_OP_RW:
		/* Up to the edge of our last header (see the header file). */
		if (c->peer_no_send ||
		    (c->rx_cnt - c->told_fwd_cnt) + (uint64_t)len > c->told_buf_alloc)
			return VSOCK_CONN_RESET;
		c->rx_cnt += len;
		return VSOCK_CONN_KEEP;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		if (flags & VIRTIO_VSOCK_SHUTDOWN_RCV) {
			c->peer_no_recv = true;
			c->want_credit = false;
			c->pending &= ~(unsigned)(VSOCK_CONN_DATA | VSOCK_CONN_CREDIT_REQUEST);
		}
		if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND) {
			c->peer_no_send = true;
			c->pending &= ~(unsigned)VSOCK_CONN_CREDIT_UPDATE;
		}
		return VSOCK_CONN_KEEP;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pending |= VSOCK_CONN_CREDIT_UPDATE;
		return VSOCK_CONN_KEEP;
	default: /* CREDIT_UPDATE: the credit fields were all it carried */
		return VSOCK_CONN_KEEP;
	}
}

uint16_t vsock_conn_next(struct vsock_conn *c, uint32_t *flags)
{
	*flags = 0;
	if (c->pending & VSOCK_CONN_REQUEST)
		return VIRTIO_VSOCK_OP_REQUEST;
	if (c->state != VSOCK_CONN_OPEN)
		return 0;
	if (c->pending & VSOCK_CONN_RESPONSE)
		return VIRTIO_VSOCK_OP_RESPONSE;
	if (c->pending & VSOCK_CONN_DATA) {
		if (vsock_conn_credit(c) > 0)
			return VIRTIO_VSOCK_OP_RW;
		/* Wait for the guest's update (vsock_conn_ask_credit). */
		c->pending &= ~(unsigned)VSOCK_CONN_DATA;
		c->want_credit = true;
	}
	if (c->pending & VSOCK_CONN_SHUTDOWN) {
		*flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
		if (c->host_gone)
			*flags |= VIRTIO_VSOCK_SHUTDOWN_RCV;
		return VIRTIO_VSOCK_OP_SHUTDOWN;
	}
	if (c->pending & VSOCK_CONN_CREDIT_UPDATE)
		return VIRTIO_VSOCK_OP_CREDIT_UPDATE;
	if (c->pending & VSOCK_CONN_CREDIT_REQUEST)
		return VIRTIO_VSOCK_OP_CREDIT_REQUEST;
	return 0;
}

bool vsock_conn_ask_credit(struct vsock_conn *c)
{
	if (!c->want_credit || c->credit_asked || c->state != VSOCK_CONN_OPEN)
		return false;
	c->pending |= VSOCK_CONN_CREDIT_REQUEST;
	return true;
}

void vsock_conn_emit(struct vsock_conn *c, struct virtio_vsock_hdr *h, uint64_t guest_cid,
		     uint16_t op, uint32_t flags, uint32_t len)
{
	vsock_pkt_init(h, guest_cid, c->local_port, c->peer_port, op, flags);
	h->len = htole32(len);
	h->buf_alloc = htole32(c->buf_alloc);
	h->fwd_cnt = htole32(c->fwd_cnt);
	/* Every header carries our credit: no separate update needed now. */
	c->told_fwd_cnt = c->fwd_cnt;
	c->told_buf_alloc = c->buf_alloc;
	c->pending &= ~(unsigned)VSOCK_CONN_CREDIT_UPDATE;
	switch (op) {
	case VIRTIO_VSOCK_OP_REQUEST:
		c->pending &= ~(unsigned)VSOCK_CONN_REQUEST;
		c->request_sent = true;
		break;
	case VIRTIO_VSOCK_OP_RESPONSE:
		c->pending &= ~(unsigned)VSOCK_CONN_RESPONSE;
		break;
	case VIRTIO_VSOCK_OP_RW:
		c->tx_cnt += len;
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		c->pending &= ~(unsigned)VSOCK_CONN_SHUTDOWN;
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pending &= ~(unsigned)VSOCK_CONN_CREDIT_REQUEST;
		c->credit_asked = true;
		break;
	}
}

void vsock_conn_drained(struct vsock_conn *c)
{
	c->pending &= ~(unsigned)VSOCK_CONN_DATA;
}

void vsock_conn_eof(struct vsock_conn *c)
{
	c->local_eof = true;
	c->pending &= ~(unsigned)VSOCK_CONN_DATA;
	c->pending |= VSOCK_CONN_SHUTDOWN;
}

void vsock_conn_host_gone(struct vsock_conn *c)
{
	if (c->host_gone || c->state != VSOCK_CONN_OPEN)
		return;
	c->host_gone = true;
	c->pending |= VSOCK_CONN_SHUTDOWN;
}

void vsock_conn_readable(struct vsock_conn *c)
{
	if (may_send(c))
		c->pending |= VSOCK_CONN_DATA;
}

int vsock_conn_buffer(struct vsock_conn *c, const struct iovec *iov, unsigned niov, size_t skip)
{
	for (unsigned i = 0; i < niov; i++) {
		const uint8_t *src = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		src += skip;
		len -= skip;
		skip = 0;
		if (len > c->buf_alloc - c->buf_len)
			return -ENOBUFS;
		/* Mapped rather than malloc'd: only what the guest's data
		 * fills is in RSS, and freeing many buffers never makes glibc
		 * shrink a heap, which would open a /proc file no loop-thread
		 * filter allows. */
		if (!c->buf && (c->buf = lazy_zalloc(c->buf_alloc)) == NULL)
			return -ENOMEM;
		while (len) {
			uint32_t tail = (c->buf_head + c->buf_len) % c->buf_alloc;
			uint32_t n =
			    c->buf_alloc - tail < len ? c->buf_alloc - tail : (uint32_t)len;
			memcpy(c->buf + tail, src, n);
			c->buf_len += n;
			src += n;
			len -= n;
		}
	}
	return 0;
}

unsigned vsock_conn_buffered(const struct vsock_conn *c, struct iovec iov[2])
{
	uint32_t first = c->buf_alloc - c->buf_head;

	if (!c->buf_len)
		return 0;
	if (c->buf_len <= first) {
		iov[0] = (struct iovec){c->buf + c->buf_head, c->buf_len};
		return 1;
	}
	iov[0] = (struct iovec){c->buf + c->buf_head, first};
	iov[1] = (struct iovec){c->buf, c->buf_len - first};
	return 2;
}

void vsock_conn_forwarded(struct vsock_conn *c, uint32_t n)
{
	uint32_t from_buf = n < c->buf_len ? n : c->buf_len;

	c->buf_head = c->buf_alloc ? (c->buf_head + from_buf) % c->buf_alloc : 0;
	c->buf_len -= from_buf;
	c->fwd_cnt += n;
	if (c->fwd_cnt - c->told_fwd_cnt >= c->buf_alloc / 2 && c->state == VSOCK_CONN_OPEN &&
	    !c->peer_no_send)
		c->pending |= VSOCK_CONN_CREDIT_UPDATE;
}

bool vsock_conn_should_shut_wr(const struct vsock_conn *c)
{
	return c->state == VSOCK_CONN_OPEN && c->peer_no_send && !c->buf_len && !c->shut_wr;
}

bool vsock_conn_finished(const struct vsock_conn *c)
{
	bool sent_all = c->peer_no_recv || (c->local_eof && !(c->pending & VSOCK_CONN_SHUTDOWN));

	return c->state == VSOCK_CONN_OPEN && c->peer_no_send && !c->buf_len && sent_all;
}
