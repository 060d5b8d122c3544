/* libFuzzer harness for vsock's pure parts: the fuzzer plays a hostile guest
 * (and a socket) against one connection. Guest packets are cut into
 * segments as it likes and go through vsock_pkt_parse, then
 * vsock_conn_recv; the harness forwards and buffers payloads the way the
 * muxer does and checks the credit and buffer invariants after each step.
 * RX chains go through vsock_pkt_rx_map, and lines through the CONNECT
 * parser. Every iovec handed out is touched byte by byte, so one outside
 * its segment shows up as an ASan report.
 *
 * Input: byte 0 bit 0 host-initiated (else guest-initiated); then events,
 * each an opcode byte (mod 8) and its operands:
 *   0 packet: segment count (mod 5), u16 length per segment (mod 2048),
 *     the bytes of the segments in order (a header's src_cid/dst_cid/ports
 *     are fixed up to this connection when bit 7 of the count is clear),
 *     then a byte: how much of an RW's payload the socket takes, in 1/255ths
 *   1 send: vsock_conn_next and emit, an RW of u16 bytes (clipped to credit);
 *     then a u16 size: unless 0, vsock_conn_resize to it before the emit
 *   2 flush: u16 bytes of the buffer go to the socket
 *   3 readable, 4 drained, 5 eof
 *   6 line: a byte n (mod 40), then n bytes through line_scan and the parser
 *   7 rx chain: count (mod 5) and u16 lengths of writable segments */
#include <endian.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "vsock/vsock_conn.h"
#include "vsock/vsock_pkt.h"
#include "vsock/vsock_uds.h"

#define CID	 3
#define BUF	 4096
#define LOCAL	 52
#define PEER	 1234
#define MAX_SEGS 4

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t byte(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t u16(struct in *in)
{
	uint16_t lo = byte(in);
	return (uint16_t)(lo | byte(in) << 8);
}

static volatile uint8_t sink;

static void touch(const struct iovec *iov, unsigned n, size_t want)
{
	size_t tot = 0;

	for (unsigned i = 0; i < n; i++) {
		for (size_t k = 0; k < iov[i].iov_len; k++)
			sink ^= ((volatile uint8_t *)iov[i].iov_base)[k];
		tot += iov[i].iov_len;
	}
	CHECK(tot == want);
}

/* A chain of malloc'd segments, each exactly its length, filled from in. */
static unsigned make_chain(struct in *in, struct vq_chain *c, struct vq_seg *seg, bool write,
			   bool fill)
{
	unsigned n = byte(in) % (MAX_SEGS + 1);

	*c = (struct vq_chain){.seg = seg, .cap = MAX_SEGS, .nseg = n};
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = u16(in) % 2048 + 1;
		seg[i] = (struct vq_seg){.len = len, .write = write, .host = calloc(1, len)};
		for (uint32_t k = 0; fill && k < len; k++)
			((uint8_t *)seg[i].host)[k] = byte(in);
		if (write)
			c->writable += len;
		else
			c->readable += len;
	}
	return n;
}

static void free_chain(struct vq_chain *c)
{
	for (unsigned i = 0; i < c->nseg; i++)
		free(c->seg[i].host);
}

/* fwd_cnt + buf_alloc of the last header emitted: how far the guest may
 * send. */
static uint32_t edge;

static void check(const struct vsock_conn *c)
{
	CHECK(c->buf_len <= c->buf_alloc);
	/* Everything received and not forwarded is in the buffer. */
	CHECK(c->rx_cnt - c->fwd_cnt == c->buf_len);
	/* What the guest may still send always fits. */
	CHECK(c->rx_cnt - c->fwd_cnt <= vsock_conn_promised(c));
	CHECK(vsock_conn_promised(c) <= c->buf_alloc);
	CHECK(vsock_conn_credit(c) <= c->peer_buf_alloc);
}

static void packet(struct in *in, struct vsock_conn *c)
{
	struct vq_seg seg[MAX_SEGS];
	struct iovec iov[MAX_SEGS];
	struct vq_chain ch;
	struct vsock_pkt p = {.iov = iov, .cap = MAX_SEGS};
	bool raw = in->n && (*in->p & 0x80);

	make_chain(in, &ch, seg, false, true);
	if (!raw && ch.nseg && seg[0].len >= VSOCK_PKT_HDR_SIZE) {
		struct virtio_vsock_hdr *h = seg[0].host;
		h->src_cid = htole64(CID);
		h->dst_cid = htole64(VMADDR_CID_HOST);
		h->src_port = htole32(PEER);
		h->dst_port = htole32(LOCAL);
	}
	enum vsock_pkt_err err = vsock_pkt_parse(&ch, CID, &p);
	uint8_t take = byte(in);
	if (err != VSOCK_PKT_OK) {
		(void)vsock_pkt_can_reset(err, &p);
		CHECK(vsock_pkt_strerror(err)[0]);
		free_chain(&ch);
		return;
	}
	uint32_t len = le32toh(p.hdr.len);
	touch(p.iov, p.niov, len);
	if (le32toh(p.hdr.src_port) == PEER && le32toh(p.hdr.dst_port) == LOCAL &&
	    vsock_conn_recv(c, &p.hdr) == VSOCK_CONN_KEEP &&
	    le16toh(p.hdr.op) == VIRTIO_VSOCK_OP_RW && len) {
		/* The muxer: straight to the socket when nothing is buffered. */
		uint32_t direct = c->buf_len ? 0 : (uint32_t)((uint64_t)len * take / 255);
		if (direct)
			vsock_conn_forwarded(c, direct);
		CHECK(vsock_conn_buffer(c, p.iov, p.niov, direct) == 0);
	}
	free_chain(&ch);
}

static void send_one(struct in *in, struct vsock_conn *c)
{
	struct virtio_vsock_hdr h;
	uint32_t flags, len = u16(in), size = u16(in), credit = vsock_conn_credit(c);
	uint32_t promised = vsock_conn_promised(c), old = c->buf_alloc;
	uint16_t op = vsock_conn_next(c, &flags);

	if (!op)
		return;
	if (size) {
		int r = vsock_conn_resize(c, size);
		CHECK(r == 0 || r == -EBUSY || r == -EINVAL);
		CHECK(r != -EBUSY || c->buf_len);
		CHECK(r != -EINVAL || size < promised);
		CHECK(c->buf_alloc == (r ? old : size));
	}
	if (op != VIRTIO_VSOCK_OP_RW)
		len = 0;
	else if (len > credit)
		len = credit;
	CHECK(op != VIRTIO_VSOCK_OP_RW || credit > 0);
	vsock_conn_emit(c, &h, CID, op, flags, len);
	CHECK(le16toh(h.op) == op && le32toh(h.len) == len);
	CHECK(le32toh(h.fwd_cnt) == c->fwd_cnt && le32toh(h.buf_alloc) == c->buf_alloc);
	/* The guest is never told it may send less than it was before. */
	CHECK((int32_t)(le32toh(h.fwd_cnt) + le32toh(h.buf_alloc) - edge) >= 0);
	edge = le32toh(h.fwd_cnt) + le32toh(h.buf_alloc);
}

static void flush(struct in *in, struct vsock_conn *c)
{
	struct iovec iov[2];
	unsigned n = vsock_conn_buffered(c, iov);
	uint32_t want = u16(in);

	touch(iov, n, c->buf_len);
	if (want > c->buf_len)
		want = c->buf_len;
	if (want)
		vsock_conn_forwarded(c, want);
}

static void line(struct in *in)
{
	char buf[40];
	size_t n = byte(in) % sizeof(buf), have = 0;
	uint32_t port;
	bool done = false;

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)byte(in);
	/* In two pieces, as a socket might deliver it. */
	for (size_t off = 0; off < n && !done;) {
		size_t piece = off ? n - off : n / 2 + 1;
		if (piece > n - off)
			piece = n - off;
		ssize_t t = vsock_uds_line_scan(buf + off, piece, have, &done);
		if (t < 0)
			return;
		CHECK((size_t)t <= piece && have + (size_t)t <= VSOCK_UDS_LINE_MAX);
		have += (size_t)t;
		off += (size_t)t;
		if (!t)
			break;
	}
	if (done)
		(void)vsock_uds_parse_connect(buf, have - 1, &port);
}

static void rx_chain(struct in *in)
{
	struct vq_seg seg[MAX_SEGS];
	struct iovec iov[MAX_SEGS];
	struct vq_chain ch;
	struct vsock_pkt p = {.iov = iov, .cap = MAX_SEGS};
	struct virtio_vsock_hdr h;

	make_chain(in, &ch, seg, true, false);
	if (vsock_pkt_rx_map(&ch, &p) == 0) {
		CHECK(p.room > 0 && p.room <= VSOCK_PKT_MAX_PAYLOAD);
		CHECK(p.room <= ch.writable - VSOCK_PKT_HDR_SIZE);
		touch(p.iov, p.niov, p.room);
		vsock_pkt_init(&h, CID, LOCAL, PEER, VIRTIO_VSOCK_OP_RW, 0);
		vsock_pkt_rx_put_hdr(&ch, &h);
	}
	free_chain(&ch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct vsock_conn c;

	edge = 0;
	if (byte(&in) & 1) {
		vsock_conn_connect(&c, LOCAL, PEER, BUF);
	} else {
		struct virtio_vsock_hdr req = {.src_port = htole32(PEER),
					       .dst_port = htole32(LOCAL),
					       .buf_alloc = htole32(u16(&in))};
		vsock_conn_accept(&c, &req, BUF);
	}
	while (in.n) {
		switch (byte(&in) % 8) {
		case 0:
			packet(&in, &c);
			break;
		case 1:
			send_one(&in, &c);
			break;
		case 2:
			flush(&in, &c);
			break;
		case 3:
			vsock_conn_readable(&c);
			break;
		case 4:
			vsock_conn_drained(&c);
			break;
		case 5:
			vsock_conn_eof(&c);
			break;
		case 6:
			line(&in);
			break;
		case 7:
			rx_chain(&in);
			break;
		}
		check(&c);
		(void)vsock_conn_finished(&c);
		(void)vsock_conn_should_shut_wr(&c);
	}
	vsock_conn_release(&c);
	return 0;
}
