/* One vsock connection: the state machine, credit both ways, the buffer of
 * guest data, shutdown. No sockets: the tests play the guest's packets and
 * the muxer's calls. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <string.h>

#include "test_vsock_guest.h"
#include "vsock/vsock_conn.h"

#define CID   G_CID
#define BUF   1024 /* our buf_alloc in these tests */
#define LOCAL 52   /* host port */
#define PEER  1234 /* guest port */

static struct vsock_conn c;

static void fini(void)
{
	vsock_conn_release(&c);
}

TestSuite(vsock_conn, .fini = fini);

/* A guest packet for the connection, with its credit fields. */
static struct virtio_vsock_hdr g(uint16_t op, uint32_t len, uint32_t flags, uint32_t buf_alloc,
				 uint32_t fwd_cnt)
{
	struct virtio_vsock_hdr h = guest_hdr(PEER, LOCAL, op, flags, buf_alloc, fwd_cnt);
	h.len = htole32(len);
	return h;
}

static enum vsock_conn_verdict recv_op(uint16_t op, uint32_t len, uint32_t flags)
{
	struct virtio_vsock_hdr h = g(op, len, flags, c.peer_buf_alloc, c.peer_fwd_cnt);
	return vsock_conn_recv(&c, &h);
}

/* Take the next packet and emit it (len bytes for RW); returns its op. */
static uint16_t send_next(uint32_t len, struct virtio_vsock_hdr *out)
{
	struct virtio_vsock_hdr h;
	uint32_t flags;
	uint16_t op = vsock_conn_next(&c, &flags);

	if (op)
		vsock_conn_emit(&c, out ? out : &h, CID, op, flags,
				op == VIRTIO_VSOCK_OP_RW ? len : 0);
	return op;
}

/* A guest-initiated connection, RESPONSE sent; the guest offers peer_buf. */
static void open_conn(uint32_t peer_buf)
{
	struct virtio_vsock_hdr req = g(VIRTIO_VSOCK_OP_REQUEST, 0, 0, peer_buf, 0);

	vsock_conn_accept(&c, &req, BUF);
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_RESPONSE);
}

Test(vsock_conn, host_initiated_handshake)
{
	struct virtio_vsock_hdr h;

	vsock_conn_connect(&c, LOCAL, PEER, BUF);
	cr_assert_eq(c.state, VSOCK_CONN_CONNECTING);
	/* A RESPONSE before our REQUEST went out is a protocol error. */
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RESPONSE, 0, 0), VSOCK_CONN_RESET);
	cr_assert_eq(send_next(0, &h), VIRTIO_VSOCK_OP_REQUEST);
	cr_assert(c.request_sent);
	cr_assert_eq(le32toh(h.src_port), LOCAL);
	cr_assert_eq(le32toh(h.dst_port), PEER);
	cr_assert_eq(le32toh(h.buf_alloc), BUF);
	cr_assert_eq(le64toh(h.dst_cid), CID);
	/* Nothing more until the guest answers, whatever the socket says. */
	vsock_conn_readable(&c);
	cr_assert_eq(send_next(0, NULL), 0);
	struct virtio_vsock_hdr resp = g(VIRTIO_VSOCK_OP_RESPONSE, 0, 0, 4096, 0);
	cr_assert_eq(vsock_conn_recv(&c, &resp), VSOCK_CONN_ESTABLISHED);
	cr_assert_eq(c.state, VSOCK_CONN_OPEN);
	cr_assert_eq(vsock_conn_credit(&c), 4096);
	/* Whatever the host program wrote after its CONNECT line may go now. */
	cr_assert(c.pending & VSOCK_CONN_DATA);
	cr_assert_eq(send_next(100, NULL), VIRTIO_VSOCK_OP_RW);
	/* A second RESPONSE is wrong. */
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RESPONSE, 0, 0), VSOCK_CONN_RESET);
}

Test(vsock_conn, nothing_but_response_or_rst_while_connecting)
{
	static const uint16_t ops[] = {VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_OP_SHUTDOWN,
				       VIRTIO_VSOCK_OP_CREDIT_UPDATE,
				       VIRTIO_VSOCK_OP_CREDIT_REQUEST, VIRTIO_VSOCK_OP_REQUEST};
	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		vsock_conn_connect(&c, LOCAL, PEER, BUF);
		(void)send_next(0, NULL);
		cr_assert_eq(recv_op(ops[i], 0, 0), VSOCK_CONN_RESET, "op %u", ops[i]);
	}
	vsock_conn_connect(&c, LOCAL, PEER, BUF);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RST, 0, 0), VSOCK_CONN_GONE, "refused");
	cr_assert_eq(c.state, VSOCK_CONN_CLOSED);
	cr_assert_eq(send_next(0, NULL), 0);
}

Test(vsock_conn, guest_initiated_sends_response_then_data)
{
	struct virtio_vsock_hdr req = g(VIRTIO_VSOCK_OP_REQUEST, 0, 0, 2048, 0), h;
	uint32_t flags;

	vsock_conn_accept(&c, &req, BUF);
	cr_assert_eq(c.local_port, LOCAL);
	cr_assert_eq(c.peer_port, PEER);
	cr_assert_eq(c.state, VSOCK_CONN_OPEN);
	cr_assert_eq(vsock_conn_credit(&c), 2048);
	cr_assert_eq(vsock_conn_next(&c, &flags), VIRTIO_VSOCK_OP_RESPONSE);
	vsock_conn_emit(&c, &h, CID, VIRTIO_VSOCK_OP_RESPONSE, 0, 0);
	cr_assert_eq(le16toh(h.op), VIRTIO_VSOCK_OP_RESPONSE);
	cr_assert_eq(vsock_conn_next(&c, &flags), VIRTIO_VSOCK_OP_RW);
	/* The socket had nothing: quiet until it polls readable. */
	vsock_conn_drained(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), 0);
	vsock_conn_readable(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), VIRTIO_VSOCK_OP_RW);
	/* A duplicate REQUEST for a live connection resets it. */
	cr_assert_eq(vsock_conn_recv(&c, &req), VSOCK_CONN_RESET);
}

Test(vsock_conn, we_never_send_past_the_guests_credit)
{
	open_conn(1000);
	cr_assert_eq(send_next(600, NULL), VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(vsock_conn_credit(&c), 400);
	cr_assert_eq(send_next(400, NULL), VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(vsock_conn_credit(&c), 0);
	/* Out of credit: no RW, and nothing unless asked to ask. */
	cr_assert_eq(send_next(0, NULL), 0);
	cr_assert(c.want_credit);
	cr_assert(vsock_conn_ask_credit(&c));
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	cr_assert_eq(send_next(0, NULL), 0);
	cr_assert_not(vsock_conn_ask_credit(&c), "once per wait");
	vsock_conn_readable(&c);
	cr_assert_eq(send_next(0, NULL), 0, "readable, but no credit and asked already");
	/* The guest consumed 500: data flows again. */
	struct virtio_vsock_hdr up = g(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0, 1000, 500);
	cr_assert_eq(vsock_conn_recv(&c, &up), VSOCK_CONN_KEEP);
	cr_assert_eq(vsock_conn_credit(&c), 500);
	cr_assert_not(c.want_credit);
	cr_assert_eq(send_next(500, NULL), VIRTIO_VSOCK_OP_RW);
	/* Dry again: a new wait may ask again. */
	cr_assert_eq(send_next(0, NULL), 0);
	cr_assert(vsock_conn_ask_credit(&c));
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_CREDIT_REQUEST);
}

Test(vsock_conn, credit_from_any_guest_packet_and_across_wrap)
{
	open_conn(1000);
	c.tx_cnt = c.peer_fwd_cnt = UINT32_MAX - 100;
	cr_assert_eq(send_next(300, NULL), VIRTIO_VSOCK_OP_RW); /* tx_cnt wraps */
	cr_assert_eq(vsock_conn_credit(&c), 700);
	/* An RW from the guest carries its fwd_cnt past the wrap too. */
	struct virtio_vsock_hdr rw = g(VIRTIO_VSOCK_OP_RW, 0, 0, 1000, UINT32_MAX - 100 + 300);
	cr_assert_eq(vsock_conn_recv(&c, &rw), VSOCK_CONN_KEEP);
	cr_assert_eq(vsock_conn_credit(&c), 1000);
	/* The guest shrinking its buffer below what is in flight: no credit. */
	cr_assert_eq(send_next(800, NULL), VIRTIO_VSOCK_OP_RW);
	struct virtio_vsock_hdr shrink =
	    g(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0, 500, UINT32_MAX - 100 + 300);
	cr_assert_eq(vsock_conn_recv(&c, &shrink), VSOCK_CONN_KEEP);
	cr_assert_eq(vsock_conn_credit(&c), 0);
}

Test(vsock_conn, a_guest_past_our_credit_is_reset)
{
	open_conn(1000);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, BUF - 10, 0), VSOCK_CONN_KEEP);
	cr_assert_eq(c.rx_cnt, BUF - 10);
	/* Nothing forwarded yet: 10 bytes of room. */
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 10, 0), VSOCK_CONN_KEEP);
	/* Room freed counts once the guest has heard of it. */
	vsock_conn_forwarded(&c, 100);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 1, 0), VSOCK_CONN_RESET);
}

Test(vsock_conn, room_freed_counts_once_the_guest_has_heard)
{
	open_conn(1000);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, BUF, 0), VSOCK_CONN_KEEP);
	vsock_conn_forwarded(&c, 100);
	vsock_conn_drained(&c);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0, 0), VSOCK_CONN_KEEP);
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 100, 0), VSOCK_CONN_KEEP);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 1, 0), VSOCK_CONN_RESET);
}

/* Data from a guest that has not heard our RESPONSE (so no credit) is a
 * protocol error. */
Test(vsock_conn, data_before_our_first_header_is_reset)
{
	struct virtio_vsock_hdr req = g(VIRTIO_VSOCK_OP_REQUEST, 0, 0, 2048, 0);

	vsock_conn_accept(&c, &req, BUF);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 1, 0), VSOCK_CONN_RESET);
}

/* buf_alloc changes between headers, but never takes back what the guest
 * was let send: the buffer always holds all of it. */
Test(vsock_conn, resize_never_takes_back_credit)
{
	static uint8_t data[BUF];
	struct iovec in = {data, 0};
	struct virtio_vsock_hdr h;

	open_conn(1000); /* the guest may send up to 0 + BUF */
	cr_assert_eq(vsock_conn_promised(&c), BUF);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 600, 0), VSOCK_CONN_KEEP);
	in.iov_len = 600;
	cr_assert_eq(vsock_conn_buffer(&c, &in, 1, 0), 0);
	cr_assert_eq(vsock_conn_resize(&c, 2 * BUF), -EBUSY, "not while it holds data");
	vsock_conn_forwarded(&c, 600);
	cr_assert_eq(vsock_conn_promised(&c), BUF - 600);
	cr_assert_eq(vsock_conn_resize(&c, BUF - 601), -EINVAL, "below what was promised");
	cr_assert_eq(vsock_conn_resize(&c, 512), 0);
	cr_assert_eq(c.buf_alloc, 512);
	cr_assert_null(c.buf);
	/* The guest has not heard: it may still fill the old header's edge,
	 * and the smaller buffer takes it. */
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, BUF - 600, 0), VSOCK_CONN_KEEP);
	in.iov_len = BUF - 600;
	cr_assert_eq(vsock_conn_buffer(&c, &in, 1, 0), 0);
	/* Our next header has the new size, from the new fwd_cnt: its edge is
	 * past the old one. */
	vsock_conn_drained(&c);
	cr_assert_eq(send_next(0, &h), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(le32toh(h.buf_alloc), 512);
	cr_assert_eq(le32toh(h.fwd_cnt), 600);
	cr_assert_eq(vsock_conn_promised(&c), 512);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 600 + 512 - BUF, 0), VSOCK_CONN_KEEP);
	in.iov_len = 600 + 512 - BUF;
	cr_assert_eq(vsock_conn_buffer(&c, &in, 1, 0), 0);
	cr_assert_eq(c.buf_len, 512, "the buffer is full, with all the guest was let send");
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 1, 0), VSOCK_CONN_RESET);
}

Test(vsock_conn, credit_updates_after_half_the_buffer_and_on_request)
{
	struct virtio_vsock_hdr h;

	open_conn(1000);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, BUF, 0), VSOCK_CONN_KEEP);
	vsock_conn_forwarded(&c, BUF / 2 - 1);
	cr_assert_not(c.pending & VSOCK_CONN_CREDIT_UPDATE);
	vsock_conn_forwarded(&c, 1);
	cr_assert(c.pending & VSOCK_CONN_CREDIT_UPDATE);
	vsock_conn_drained(&c);
	cr_assert_eq(send_next(0, &h), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(le32toh(h.fwd_cnt), BUF / 2);
	cr_assert_eq(le32toh(h.buf_alloc), BUF);
	cr_assert_eq(send_next(0, NULL), 0);
	/* Any packet carries fwd_cnt: data going out makes the update moot. */
	vsock_conn_forwarded(&c, BUF / 2);
	cr_assert(c.pending & VSOCK_CONN_CREDIT_UPDATE);
	vsock_conn_readable(&c);
	cr_assert_eq(send_next(10, &h), VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(le32toh(h.fwd_cnt), BUF);
	cr_assert_eq(le32toh(h.len), 10);
	cr_assert_not(c.pending & VSOCK_CONN_CREDIT_UPDATE);
	/* Asked, we answer at once. */
	vsock_conn_drained(&c);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0, 0), VSOCK_CONN_KEEP);
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
}

Test(vsock_conn, buffer_wraps_and_forwarding_consumes_it)
{
	uint8_t data[700], out[700];
	struct iovec in[2] = {{data, 300}, {data + 300, 400}}, iov[2];

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	open_conn(1000);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 700, 0), VSOCK_CONN_KEEP);
	/* The socket took 100 straight from the guest; the rest is kept. */
	vsock_conn_forwarded(&c, 100);
	cr_assert_eq(vsock_conn_buffer(&c, in, 2, 100), 0);
	cr_assert_eq(c.buf_len, 600);
	cr_assert_eq(vsock_conn_buffered(&c, iov), 1);
	cr_assert_eq(memcmp(iov[0].iov_base, data + 100, 600), 0);
	vsock_conn_forwarded(&c, 500);
	cr_assert_eq(c.buf_len, 100);
	/* The guest hears of the room (a credit update is due). */
	vsock_conn_drained(&c);
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	/* 700 more: they wrap around the end of the 1024-byte ring. */
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 700, 0), VSOCK_CONN_KEEP);
	cr_assert_eq(vsock_conn_buffer(&c, in, 2, 0), 0);
	cr_assert_eq(c.buf_len, 800);
	cr_assert_eq(vsock_conn_buffered(&c, iov), 2);
	cr_assert_eq(iov[0].iov_len + iov[1].iov_len, 800);
	cr_assert_eq(memcmp(iov[0].iov_base, data + 600, 100), 0);
	memcpy(out, (uint8_t *)iov[0].iov_base + 100, iov[0].iov_len - 100);
	memcpy(out + iov[0].iov_len - 100, iov[1].iov_base, iov[1].iov_len);
	cr_assert_eq(memcmp(out, data, 700), 0);
	vsock_conn_forwarded(&c, 800);
	cr_assert_eq(c.buf_len, 0);
	cr_assert_eq(c.fwd_cnt, 1400);
	cr_assert_eq(vsock_conn_buffered(&c, iov), 0);
	/* More than buf_alloc never fits. */
	cr_assert_eq(c.buf_len, 0);
	uint8_t big[BUF + 1];
	struct iovec bi = {big, sizeof(big)};
	cr_assert_eq(vsock_conn_buffer(&c, &bi, 1, 0), -ENOBUFS);
}

Test(vsock_conn, guest_shuts_send_then_host_eof)
{
	uint8_t d[10] = {0};
	struct iovec in = {d, 10};
	struct virtio_vsock_hdr h;
	uint32_t flags;

	open_conn(1000);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 10, 0), VSOCK_CONN_KEEP);
	cr_assert_eq(vsock_conn_buffer(&c, &in, 1, 0), 0);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_SHUTDOWN, 0, VIRTIO_VSOCK_SHUTDOWN_SEND),
		     VSOCK_CONN_KEEP);
	/* Not before the buffered data has gone out. */
	cr_assert_not(vsock_conn_should_shut_wr(&c));
	vsock_conn_forwarded(&c, 10);
	cr_assert(vsock_conn_should_shut_wr(&c));
	c.shut_wr = true;
	cr_assert_not(vsock_conn_should_shut_wr(&c));
	/* More data after SHUTDOWN SEND is a protocol error. */
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 1, 0), VSOCK_CONN_RESET);
	/* The host direction is still open until the socket's EOF. */
	cr_assert_not(vsock_conn_finished(&c));
	vsock_conn_eof(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_eq(flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
	cr_assert_not(vsock_conn_finished(&c), "not before the SHUTDOWN went out");
	vsock_conn_emit(&c, &h, CID, VIRTIO_VSOCK_OP_SHUTDOWN, flags, 0);
	cr_assert_eq(le32toh(h.flags), VIRTIO_VSOCK_SHUTDOWN_SEND);
	cr_assert(vsock_conn_finished(&c));
	/* No data after the EOF, even if the socket polls readable. */
	vsock_conn_readable(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), 0);
}

Test(vsock_conn, host_eof_first_then_guest_close)
{
	uint32_t flags;

	open_conn(1000);
	vsock_conn_eof(&c);
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_not(vsock_conn_finished(&c), "the guest may still send");
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 5, 0), VSOCK_CONN_KEEP);
	vsock_conn_forwarded(&c, 5);
	/* Linux's close(): both flags at once. */
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_SHUTDOWN, 0,
			     VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND),
		     VSOCK_CONN_KEEP);
	cr_assert(vsock_conn_finished(&c));
	cr_assert_eq(vsock_conn_next(&c, &flags), 0);
}

/* The host program half-closes, later closes: a second SHUTDOWN, now
 * with both flags, once; nothing for a connection not open. */
Test(vsock_conn, host_gone_after_a_half_close_says_so_again)
{
	uint32_t flags;

	open_conn(1000);
	vsock_conn_eof(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_eq(flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_eq(vsock_conn_next(&c, &flags), 0);
	vsock_conn_host_gone(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_eq(flags, VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV);
	cr_assert_eq(send_next(0, NULL), VIRTIO_VSOCK_OP_SHUTDOWN);
	vsock_conn_host_gone(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), 0, "said once");
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RST, 0, 0), VSOCK_CONN_GONE);
	vsock_conn_host_gone(&c);
	cr_assert_eq(vsock_conn_next(&c, &flags), 0, "nothing after the guest's reset");
}

Test(vsock_conn, guest_stops_receiving)
{
	open_conn(1000);
	vsock_conn_readable(&c);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_SHUTDOWN, 0, VIRTIO_VSOCK_SHUTDOWN_RCV),
		     VSOCK_CONN_KEEP);
	cr_assert_not(c.pending & VSOCK_CONN_DATA);
	vsock_conn_readable(&c);
	cr_assert_eq(send_next(0, NULL), 0, "no data for a guest that reads no more");
	cr_assert_not(vsock_conn_finished(&c), "the guest may still send");
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_SHUTDOWN, 0, VIRTIO_VSOCK_SHUTDOWN_SEND),
		     VSOCK_CONN_KEEP);
	cr_assert(vsock_conn_finished(&c));
}

Test(vsock_conn, guest_reset_closes_for_good)
{
	open_conn(1000);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RST, 0, 0), VSOCK_CONN_GONE);
	cr_assert_eq(c.state, VSOCK_CONN_CLOSED);
	cr_assert_eq(c.pending, 0);
	cr_assert_eq(recv_op(VIRTIO_VSOCK_OP_RW, 1, 0), VSOCK_CONN_GONE);
	cr_assert_not(vsock_conn_finished(&c));
	cr_assert_not(vsock_conn_should_shut_wr(&c));
}
