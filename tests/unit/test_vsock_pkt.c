/* virtio-vsock packets: every check on a guest header, headers split across
 * buffers, RX chain layout. Chains are built by hand from host buffers (the
 * parser only reads the validated segments vq_pop would give it). */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <string.h>

#include "test_vsock_guest.h"
#include "vsock/vsock_pkt.h"

#define CID G_CID

static uint8_t mem[4][80 * 1024];
static struct vq_seg segs[8];
static struct vq_chain chain;
static struct iovec iov[8];
static struct vsock_pkt pkt;

/* A chain of n buffers of the given lengths, all readable (write false)
 * or all writable, carved from mem[]. */
static void make_chain(const uint32_t *lens, unsigned n, bool write)
{
	chain = (struct vq_chain){.seg = segs, .cap = 8, .nseg = n};
	for (unsigned i = 0; i < n; i++) {
		segs[i] = (struct vq_seg){
		    .gpa = 0x1000 * (i + 1), .len = lens[i], .write = write, .host = mem[i]};
		if (write)
			chain.writable += lens[i];
		else
			chain.readable += lens[i];
	}
	pkt = (struct vsock_pkt){.iov = iov, .cap = 8};
}

static struct virtio_vsock_hdr hdr(uint16_t op, uint32_t len, uint32_t flags)
{
	struct virtio_vsock_hdr h = guest_hdr(1234, 52, op, flags, 65536, 7);
	h.len = htole32(len);
	return h;
}

/* Lay h and then len payload bytes (i & 0xff) out over the chain's buffers. */
static void fill(const struct virtio_vsock_hdr *h, uint32_t len)
{
	static uint8_t all[sizeof(mem[0]) * 2];
	uint32_t total = VSOCK_PKT_HDR_SIZE + len, off = 0;

	cr_assert_leq(total, sizeof(all));
	memcpy(all, h, VSOCK_PKT_HDR_SIZE);
	for (uint32_t i = 0; i < len; i++)
		all[VSOCK_PKT_HDR_SIZE + i] = (uint8_t)i;
	for (unsigned i = 0; i < chain.nseg && off < total; i++) {
		uint32_t n = segs[i].len < total - off ? segs[i].len : total - off;
		memcpy(segs[i].host, all + off, n);
		off += n;
	}
}

/* One readable buffer holding h and len payload bytes: parse it. */
static enum vsock_pkt_err parse_one(struct virtio_vsock_hdr h, uint32_t len, uint32_t extra)
{
	uint32_t l = VSOCK_PKT_HDR_SIZE + len + extra;
	make_chain(&l, 1, false);
	fill(&h, len);
	return vsock_pkt_parse(&chain, CID, &pkt);
}

Test(vsock_pkt, rw_in_one_buffer)
{
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RW, 100, 0), 100, 0), VSOCK_PKT_OK);
	cr_assert_eq(le16toh(pkt.hdr.op), VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(le32toh(pkt.hdr.src_port), 1234);
	cr_assert_eq(le32toh(pkt.hdr.fwd_cnt), 7);
	cr_assert_eq(pkt.niov, 1);
	cr_assert_eq(pkt.iov[0].iov_base, mem[0] + VSOCK_PKT_HDR_SIZE);
	cr_assert_eq(pkt.iov[0].iov_len, 100);
	cr_assert_eq(((uint8_t *)pkt.iov[0].iov_base)[99], 99);
}

/* The payload iovecs cover len bytes exactly, even when the chain has more. */
Test(vsock_pkt, payload_is_len_bytes_not_the_chain)
{
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RW, 10, 0), 10, 500), VSOCK_PKT_OK);
	cr_assert_eq(pkt.niov, 1);
	cr_assert_eq(pkt.iov[0].iov_len, 10);
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RW, 0, 0), 0, 0), VSOCK_PKT_OK);
	cr_assert_eq(pkt.niov, 0);
}

/* Linux puts the header and the payload in two buffers; any split works. */
Test(vsock_pkt, header_split_across_buffers)
{
	uint32_t lens[] = {10, 20, 14 + 30, 70};
	struct virtio_vsock_hdr h = hdr(VIRTIO_VSOCK_OP_RW, 100, 0);

	make_chain(lens, 4, false);
	fill(&h, 100);
	cr_assert_eq(vsock_pkt_parse(&chain, CID, &pkt), VSOCK_PKT_OK);
	cr_assert_eq(memcmp(&pkt.hdr, &h, sizeof(h)), 0);
	cr_assert_eq(pkt.niov, 2);
	cr_assert_eq(pkt.iov[0].iov_base, mem[2] + 14);
	cr_assert_eq(pkt.iov[0].iov_len, 30);
	cr_assert_eq(pkt.iov[1].iov_base, mem[3]);
	cr_assert_eq(pkt.iov[1].iov_len, 70);
	cr_assert_eq(((uint8_t *)pkt.iov[1].iov_base)[0], 30);
}

Test(vsock_pkt, short_header)
{
	uint32_t lens[] = {20, 23};
	struct virtio_vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 0, 0);

	make_chain(lens, 2, false);
	fill(&h, 0);
	cr_assert_eq(vsock_pkt_parse(&chain, CID, &pkt), VSOCK_PKT_SHORT);
	cr_assert_not(vsock_pkt_can_reset(VSOCK_PKT_SHORT, &pkt));
	make_chain(lens, 0, false);
	cr_assert_eq(vsock_pkt_parse(&chain, CID, &pkt), VSOCK_PKT_SHORT);
}

Test(vsock_pkt, writable_buffers_in_a_tx_chain)
{
	uint32_t l = 100;

	make_chain(&l, 1, true);
	cr_assert_eq(vsock_pkt_parse(&chain, CID, &pkt), VSOCK_PKT_WRITABLE);
	cr_assert_not(vsock_pkt_can_reset(VSOCK_PKT_WRITABLE, &pkt));
}

Test(vsock_pkt, addresses)
{
	struct virtio_vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 0, 0);

	h.src_cid = htole64(4);
	cr_assert_eq(parse_one(h, 0, 0), VSOCK_PKT_SRC_CID);
	cr_assert_not(vsock_pkt_can_reset(VSOCK_PKT_SRC_CID, &pkt));
	/* The upper half of the 64-bit CID counts too. */
	h.src_cid = htole64(CID | 1ull << 32);
	cr_assert_eq(parse_one(h, 0, 0), VSOCK_PKT_SRC_CID);
	h = hdr(VIRTIO_VSOCK_OP_REQUEST, 0, 0);
	h.dst_cid = htole64(CID);
	cr_assert_eq(parse_one(h, 0, 0), VSOCK_PKT_DST_CID);
	h.dst_cid = htole64(VMADDR_CID_LOCAL);
	cr_assert_eq(parse_one(h, 0, 0), VSOCK_PKT_DST_CID);
	cr_assert_not(vsock_pkt_can_reset(VSOCK_PKT_DST_CID, &pkt));
}

Test(vsock_pkt, type_is_stream_only)
{
	struct virtio_vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 0, 0);

	h.type = htole16(VIRTIO_VSOCK_TYPE_SEQPACKET);
	cr_assert_eq(parse_one(h, 0, 0), VSOCK_PKT_TYPE);
	cr_assert(vsock_pkt_can_reset(VSOCK_PKT_TYPE, &pkt));
	h.type = 0;
	cr_assert_eq(parse_one(h, 0, 0), VSOCK_PKT_TYPE);
}

Test(vsock_pkt, ops)
{
	for (uint16_t op = VIRTIO_VSOCK_OP_REQUEST; op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST; op++)
		cr_assert_eq(parse_one(hdr(op, 0, 0), 0, 0), VSOCK_PKT_OK, "op %u", op);
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_INVALID, 0, 0), 0, 0), VSOCK_PKT_OP);
	cr_assert(vsock_pkt_can_reset(VSOCK_PKT_OP, &pkt));
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_CREDIT_REQUEST + 1, 0, 0), 0, 0), VSOCK_PKT_OP);
	cr_assert_eq(parse_one(hdr(0xffff, 0, 0), 0, 0), VSOCK_PKT_OP);
}

Test(vsock_pkt, flags_only_on_shutdown)
{
	uint32_t both = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;

	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 0, both), 0, 0), VSOCK_PKT_OK);
	cr_assert_eq(le32toh(pkt.hdr.flags), both);
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 0, 4), 0, 0), VSOCK_PKT_FLAGS);
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 0, both | 1u << 31), 0, 0),
		     VSOCK_PKT_FLAGS);
	/* SEQPACKET's EOM/EOR on a stream's RW, or anything on another op. */
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RW, 1, VIRTIO_VSOCK_SEQ_EOM), 1, 0),
		     VSOCK_PKT_FLAGS);
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_REQUEST, 0, 1), 0, 0), VSOCK_PKT_FLAGS);
	cr_assert(vsock_pkt_can_reset(VSOCK_PKT_FLAGS, &pkt));
}

Test(vsock_pkt, length)
{
	/* More than the chain holds. */
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RW, 101, 0), 100, 0), VSOCK_PKT_LEN);
	cr_assert(vsock_pkt_can_reset(VSOCK_PKT_LEN, &pkt));
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RW, UINT32_MAX, 0), 100, 0), VSOCK_PKT_LEN);
	/* Over the maximum, though the chain holds it. */
	cr_assert_eq(
	    parse_one(hdr(VIRTIO_VSOCK_OP_RW, VSOCK_PKT_MAX_PAYLOAD, 0), VSOCK_PKT_MAX_PAYLOAD, 0),
	    VSOCK_PKT_OK);
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RW, VSOCK_PKT_MAX_PAYLOAD + 1, 0),
			       VSOCK_PKT_MAX_PAYLOAD + 1, 0),
		     VSOCK_PKT_LEN);
	/* A payload on a control packet. */
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_REQUEST, 4, 0), 4, 0), VSOCK_PKT_LEN);
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1, 0), 1, 0), VSOCK_PKT_LEN);
}

Test(vsock_pkt, too_many_payload_segments)
{
	uint32_t lens[] = {44, 10, 10, 10};
	struct virtio_vsock_hdr h = hdr(VIRTIO_VSOCK_OP_RW, 30, 0);

	make_chain(lens, 4, false);
	fill(&h, 30);
	pkt.cap = 2;
	cr_assert_eq(vsock_pkt_parse(&chain, CID, &pkt), VSOCK_PKT_SEGS);
	cr_assert(vsock_pkt_can_reset(VSOCK_PKT_SEGS, &pkt));
	pkt.cap = 3;
	cr_assert_eq(vsock_pkt_parse(&chain, CID, &pkt), VSOCK_PKT_OK);
	cr_assert_eq(pkt.niov, 3);
}

/* A bad packet that is a RST is never answered with one. */
Test(vsock_pkt, no_reset_for_a_reset)
{
	cr_assert_eq(parse_one(hdr(VIRTIO_VSOCK_OP_RST, 0, 1), 0, 0), VSOCK_PKT_FLAGS);
	cr_assert_not(vsock_pkt_can_reset(VSOCK_PKT_FLAGS, &pkt));
	cr_assert_not(vsock_pkt_can_reset(VSOCK_PKT_OK, &pkt));
}

Test(vsock_pkt, error_names)
{
	for (int e = VSOCK_PKT_OK; e <= VSOCK_PKT_SEGS; e++)
		cr_assert_str_neq(vsock_pkt_strerror(e), "?");
	cr_assert_str_eq(vsock_pkt_strerror(99), "?");
}

Test(vsock_pkt, rx_map_one_buffer)
{
	uint32_t l = 4096;

	make_chain(&l, 1, true);
	cr_assert_eq(vsock_pkt_rx_map(&chain, &pkt), 0);
	cr_assert_eq(pkt.room, 4096 - VSOCK_PKT_HDR_SIZE);
	cr_assert_eq(pkt.niov, 1);
	cr_assert_eq(pkt.iov[0].iov_base, mem[0] + VSOCK_PKT_HDR_SIZE);
	cr_assert_eq(pkt.iov[0].iov_len, 4096 - VSOCK_PKT_HDR_SIZE);
}

Test(vsock_pkt, rx_map_split_header_and_put_it)
{
	uint32_t lens[] = {20, 100, 50};
	struct virtio_vsock_hdr h = hdr(VIRTIO_VSOCK_OP_RW, 3, 0), back;

	make_chain(lens, 3, true);
	cr_assert_eq(vsock_pkt_rx_map(&chain, &pkt), 0);
	cr_assert_eq(pkt.room, 170 - VSOCK_PKT_HDR_SIZE);
	cr_assert_eq(pkt.niov, 2);
	cr_assert_eq(pkt.iov[0].iov_base, mem[1] + 24);
	cr_assert_eq(pkt.iov[0].iov_len, 76);
	cr_assert_eq(pkt.iov[1].iov_len, 50);
	memset(mem[1] + 24, 0xaa, 76);
	vsock_pkt_rx_put_hdr(&chain, &h);
	memcpy(&back, mem[0], 20);
	memcpy((uint8_t *)&back + 20, mem[1], 24);
	cr_assert_eq(memcmp(&back, &h, sizeof(h)), 0);
	cr_assert_eq(mem[1][24], 0xaa, "the payload area is untouched");
}

Test(vsock_pkt, rx_map_refusals)
{
	uint32_t lens[] = {VSOCK_PKT_HDR_SIZE, 10};

	make_chain(lens, 1, true);
	cr_assert_eq(vsock_pkt_rx_map(&chain, &pkt), -EINVAL, "no room past the header");
	make_chain(lens, 2, false);
	cr_assert_eq(vsock_pkt_rx_map(&chain, &pkt), -EINVAL, "readable buffers");
	make_chain(lens, 2, true);
	chain.readable = 1; /* a readable one first, as vq_pop would order it */
	cr_assert_eq(vsock_pkt_rx_map(&chain, &pkt), -EINVAL);
	make_chain(lens, 2, true);
	pkt.cap = 0;
	cr_assert_eq(vsock_pkt_rx_map(&chain, &pkt), -E2BIG);
}

Test(vsock_pkt, rx_room_is_capped)
{
	uint32_t lens[] = {80 * 1024, 80 * 1024};

	make_chain(lens, 2, true);
	cr_assert_eq(vsock_pkt_rx_map(&chain, &pkt), 0);
	cr_assert_eq(pkt.room, VSOCK_PKT_MAX_PAYLOAD);
	cr_assert_eq(pkt.niov, 1);
}

Test(vsock_pkt, init_addresses_a_host_packet)
{
	struct virtio_vsock_hdr h;

	memset(&h, 0xff, sizeof(h));
	vsock_pkt_init(&h, CID, 52, 1234, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_SEND);
	cr_assert_eq(le64toh(h.src_cid), VMADDR_CID_HOST);
	cr_assert_eq(le64toh(h.dst_cid), CID);
	cr_assert_eq(le32toh(h.src_port), 52);
	cr_assert_eq(le32toh(h.dst_port), 1234);
	cr_assert_eq(le16toh(h.type), VIRTIO_VSOCK_TYPE_STREAM);
	cr_assert_eq(le16toh(h.op), VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_eq(le32toh(h.flags), VIRTIO_VSOCK_SHUTDOWN_SEND);
	cr_assert_eq(h.len | h.buf_alloc | h.fwd_cnt, 0);
}
