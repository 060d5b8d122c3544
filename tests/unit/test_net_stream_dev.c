/* virtio-net on its stream backend (--net user): the device against fake
 * guest memory and a real event loop run in the test thread, with an
 * AF_UNIX SOCK_STREAM socket pair standing in for passt (frames behind a
 * 32-bit big-endian length, no virtio-net header). Then passt itself
 * (passt.c), when it is installed: started, answering, gone when its socket
 * closes; and the ways it fails to start. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/gmem.h"
#include "fake_driver.h"
#include "loop_watchdog.h"
#include "mmds/mmds.h"
#include "mmds/port.h"
#include "net/net.h"
#include "net/net_hdr.h"
#include "net/passt.h"
#include "net/stream.h"
#include "tmpdir.h"
#include "vq.h"

#define F(bit) (1ull << (bit))
#define RAM    (4u << 20)
#define RXB    0x100000 /* RX buffers: 4 KiB each, buffer i (desc i) at RXB + i * 4 KiB */
#define TXB    0x10000
#define RXBUF  4096u

enum { RX, TX };

static struct gmem *g;
static struct vq vqs[2];
static struct fake_ring rings[2] = {{.desc = 0x1000, .avail = 0x2000, .used = 0x3000},
				    {.desc = 0x4000, .avail = 0x5000, .used = 0x6000}};
static struct evloop *loop;
static struct net *n;
static int peer = -1; /* the test's end: passt's */
static unsigned resets;
static bool (*until)(void);
static uint16_t rx_offered;
static const uint8_t mac[6] = {0x06, 0, 0xac, 0x10, 0, 2};

static void *at(uint64_t gpa, uint64_t len)
{
	return fake_at(g, gpa, len);
}

static void ring_start(unsigned i, uint16_t size)
{
	struct fake_ring *r = &rings[i];

	vq_reset(&vqs[i]);
	fake_ring_reset(r, g, size);
	memset(at(r->desc, 0x3000), 0, 0x3000);
	cr_assert_eq(vq_activate(&vqs[i], g, size, r->desc, r->avail, r->used, false), 0);
}

static void host_used(void *t, unsigned q)
{
	(void)t;
	(void)q;
	if (until && until())
		evloop_stop(loop);
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets++;
}

static const struct virtio_host host = {.used = host_used, .needs_reset = host_needs_reset};

/* Run the loop until cond() holds (checked at each interrupt decision) or
 * ms have passed. */
static void run(bool (*cond)(void), unsigned ms)
{
	until = cond;
	if (cond && cond())
		return;
	loop_run_for(loop, ms);
	until = NULL;
}

static uint16_t want_rx, want_tx;

static bool rx_reached(void)
{
	return fake_used_idx(&rings[RX]) >= want_rx;
}

static bool tx_reached(void)
{
	return fake_used_idx(&rings[TX]) >= want_tx;
}

static void run_rx_until(uint16_t k)
{
	want_rx = k;
	run(rx_reached, 3000);
	cr_assert_eq(fake_used_idx(&rings[RX]), k, "RX used %u of %u", fake_used_idx(&rings[RX]),
		     k);
}

static void run_tx_until(uint16_t k)
{
	want_tx = k;
	run(tx_reached, 3000);
	cr_assert_eq(fake_used_idx(&rings[TX]), k, "TX used %u of %u", fake_used_idx(&rings[TX]),
		     k);
}

static void kick(unsigned q)
{
	net_ops.notify(n, q);
}

static void dev_setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	ring_start(RX, 256);
	ring_start(TX, 256);
	cr_assert_eq(evloop_create(&loop, 64), 0);
	/* The test thread runs the loop: a write to a closed socket must not
	 * kill it (flint's loop thread has every signal blocked). */
	signal(SIGPIPE, SIG_IGN);
	resets = 0;
	rx_offered = 0;
}

static void dev_teardown(void)
{
	evloop_destroy(loop);
	net_destroy(n);
	n = NULL;
	close_fd(&peer);
	gmem_destroy(g);
}

TestSuite(net_stream_dev, .init = dev_setup, .fini = dev_teardown, .timeout = 20);

static const uint64_t mrg = F(VIRTIO_NET_F_MRG_RXBUF);

/* The device on one end of a stream socket pair, activated with features;
 * sndbuf, if not 0, shrinks both ends' buffers; detour, if not NULL, is
 * the device's. */
static void open_stream_with(uint64_t features, int sndbuf, const struct net_detour *detour)
{
	struct net_params p = {.backend = NET_BACKEND_USER, .id = "net0", .mac = mac, .loop = loop};
	int sv[2];

	if (detour)
		p.detour = *detour;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	if (sndbuf)
		for (int i = 0; i < 2; i++) {
			cr_assert_eq(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(int)),
				     0);
			cr_assert_eq(setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(int)),
				     0);
		}
	peer = sv[1];
	cr_assert_eq(net_create_fd(&n, &p, sv[0]), 0);
	cr_assert_eq(net_ops.activate(n, features, vqs, &host), 0);
}

static void open_stream(uint64_t features, int sndbuf)
{
	open_stream_with(features, sndbuf, NULL);
}

static struct net_stats stats(void)
{
	struct net_stats s;
	net_get_stats(n, &s);
	return s;
}

static void fill(uint8_t *p, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 3);
}

static bool filled(const uint8_t *p, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seed + i * 3))
			return false;
	return true;
}

/* Offer k more one-buffer RX chains of RXBUF bytes. */
static void offer_rx(unsigned k)
{
	for (unsigned i = 0; i < k; i++, rx_offered++) {
		struct sg s = {RXB + (uint64_t)rx_offered * RXBUF, RXBUF, true};
		cr_assert_eq(fake_offer(&rings[RX], &s, 1), rx_offered);
	}
}

/* Write all of p to the peer socket, waiting for room. */
static void peer_write(const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t r = write(peer, b, len);
		if (r < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = peer, .events = POLLOUT};
			cr_assert_eq(poll(&pfd, 1, 2000), 1);
			continue;
		}
		cr_assert_gt(r, 0, "write: %s", strerror(errno));
		b += r;
		len -= (size_t)r;
	}
}

static uint8_t wire[1 << 20];
static size_t wire_len;

/* Append a frame of len bytes (seeded) to wire, behind its prefix. */
static void wire_frame(uint32_t len, uint8_t seed)
{
	stream_put_len(wire + wire_len, len);
	fill(wire + wire_len + STREAM_PREFIX, len, seed);
	wire_len += STREAM_PREFIX + len;
}

/* Read exactly len bytes from the peer socket. */
static void peer_read(uint8_t *p, size_t len)
{
	while (len) {
		ssize_t r = read(peer, p, len);
		if (r < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = peer, .events = POLLIN};
			cr_assert_eq(poll(&pfd, 1, 2000), 1, "the device wrote no more");
			continue;
		}
		cr_assert_gt(r, 0, "read: %s", r ? strerror(errno) : "end");
		p += r;
		len -= (size_t)r;
	}
}

/* The next frame the device sent: its length, its bytes in buf. */
static uint32_t peer_frame(uint8_t *buf, size_t cap)
{
	uint8_t pre[STREAM_PREFIX];
	uint32_t len;

	peer_read(pre, sizeof(pre));
	len = (uint32_t)pre[0] << 24 | (uint32_t)pre[1] << 16 | (uint32_t)pre[2] << 8 | pre[3];
	cr_assert_leq(len, cap);
	peer_read(buf, len);
	return len;
}

/* The frame the guest received starting at used element *k: its bytes in
 * out (header stripped, checked zero but num_buffers); *k moves past it. */
static uint32_t guest_frame(uint16_t *k, uint8_t *out)
{
	struct vring_used_elem e = fake_used_elem(&rings[RX], *k);
	struct virtio_net_hdr_v1 h;
	uint32_t len = 0;
	uint16_t nbuf;

	memcpy(&h, at(RXB + (uint64_t)e.id * RXBUF, NET_HDR_LEN), NET_HDR_LEN);
	nbuf = le16toh(h.num_buffers);
	cr_assert(h.flags == 0 && h.gso_type == 0 && h.hdr_len == 0 && h.gso_size == 0 &&
		      h.csum_start == 0 && h.csum_offset == 0,
		  "a zeroed header");
	cr_assert_geq(nbuf, 1);
	for (uint16_t i = 0; i < nbuf; i++) {
		e = fake_used_elem(&rings[RX], (uint16_t)(*k + i));
		uint32_t skip = i == 0 ? NET_HDR_LEN : 0;
		memcpy(out + len, at(RXB + (uint64_t)e.id * RXBUF + skip, e.len - skip),
		       e.len - skip);
		len += e.len - skip;
	}
	*k = (uint16_t)(*k + nbuf);
	return len;
}

static uint8_t got[70000];

/* ---- features ------------------------------------------------------------ */

Test(net_stream_dev, no_offloads_and_passts_mtu)
{
	struct virtio_net_config c;
	uint64_t f;

	open_stream(mrg, 0);
	f = net_ops.features(n);
	cr_assert_eq(f,
		     F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MAC) |
			 F(VIRTIO_NET_F_MTU),
		     "features %#llx: nothing a header would carry", (unsigned long long)f);
	net_ops.config_read(n, 0, &c, sizeof(c));
	cr_assert_eq(le16toh(c.mtu), NET_USER_MTU);
	cr_assert_eq(memcmp(c.mac, mac, 6), 0);
}

/* ---- RX: passt -> guest -------------------------------------------------- */

Test(net_stream_dev, rx_frames_split_any_way_reach_the_guest)
{
	uint16_t k = 0;

	open_stream(mrg, 0);
	offer_rx(40);
	kick(RX);
	wire_len = 0;
	wire_frame(60, 1);
	wire_frame(1514, 2);
	wire_frame(0, 0); /* skipped */
	wire_frame(14, 3);
	/* A byte at a time for the first frame and its prefix, then the rest
	 * in two writes cut inside the second frame's prefix. */
	/* (Each run ends with the loop's ops cancelled: the kick arms the
	 * device's poll again.) */
	for (size_t i = 0; i < STREAM_PREFIX + 60; i++) {
		peer_write(wire + i, 1);
		kick(RX);
		run(NULL, 2);
	}
	peer_write(wire + STREAM_PREFIX + 60, 2);
	kick(RX);
	run(NULL, 2);
	peer_write(wire + STREAM_PREFIX + 62, wire_len - STREAM_PREFIX - 62);
	kick(RX);
	run_rx_until(3);
	cr_assert_eq(guest_frame(&k, got), 60);
	cr_assert(filled(got, 60, 1));
	cr_assert_eq(guest_frame(&k, got), 1514);
	cr_assert(filled(got, 1514, 2));
	cr_assert_eq(guest_frame(&k, got), 14);
	cr_assert(filled(got, 14, 3));
	cr_assert_eq(stats().rx_packets, 3);
	cr_assert_eq(stats().rx_bytes, 60 + 1514 + 14);
	cr_assert_eq(stats().rx_errors, 0);
}

/* A frame of passt's MTU spreads over as many 4 KiB buffers as it takes. */
Test(net_stream_dev, rx_the_largest_frame_over_mergeable_buffers)
{
	uint16_t k = 0;
	uint32_t len = NET_USER_MTU + 14;

	open_stream(mrg, 0);
	offer_rx(40);
	kick(RX);
	wire_len = 0;
	wire_frame(len, 9);
	wire_frame(100, 10);
	peer_write(wire, wire_len);
	run_rx_until((uint16_t)((NET_HDR_LEN + len + RXBUF - 1) / RXBUF + 1));
	cr_assert_eq(guest_frame(&k, got), len);
	cr_assert(filled(got, len, 9));
	cr_assert_eq(guest_frame(&k, got), 100);
	cr_assert(filled(got, 100, 10));
}

/* More frames than one turn's budget (64) in one read: the rest comes on
 * the loop's next turns, though the socket is empty by then. */
Test(net_stream_dev, rx_frames_left_in_the_buffer_are_not_forgotten)
{
	uint16_t k = 0;

	open_stream(mrg, 0);
	offer_rx(200);
	kick(RX);
	wire_len = 0;
	for (unsigned i = 0; i < 150; i++)
		wire_frame(60, (uint8_t)i);
	peer_write(wire, wire_len);
	run_rx_until(150);
	for (unsigned i = 0; i < 150; i++) {
		cr_assert_eq(guest_frame(&k, got), 60);
		cr_assert(filled(got, 60, (uint8_t)i), "frame %u", i);
	}
}

/* Without buffers the device stops reading, and passt's frames wait in the
 * socket; buffers offered later take them in order. */
Test(net_stream_dev, rx_waits_for_buffers)
{
	uint16_t k = 0;

	open_stream(mrg, 0);
	kick(RX);
	wire_len = 0;
	wire_frame(200, 1);
	wire_frame(300, 2);
	peer_write(wire, wire_len);
	run(NULL, 20);
	cr_assert_eq(fake_used_idx(&rings[RX]), 0);
	cr_assert_geq(stats().rx_no_buffers, 1);
	offer_rx(20);
	kick(RX);
	run_rx_until(2);
	cr_assert_eq(guest_frame(&k, got), 200);
	cr_assert(filled(got, 200, 1));
	cr_assert_eq(guest_frame(&k, got), 300);
	cr_assert(filled(got, 300, 2));
}

/* A length over the largest frame: nothing after it is a frame any more.
 * Counted, the guest gets what came before and nothing after, and the
 * device needs no reset (its queues are fine). */
Test(net_stream_dev, rx_an_oversized_frame_breaks_the_stream)
{
	uint16_t k = 0;

	open_stream(mrg, 0);
	offer_rx(40);
	kick(RX);
	wire_len = 0;
	wire_frame(60, 1);
	stream_put_len(wire + wire_len, NET_FRAME_MAX + 1);
	wire_len += STREAM_PREFIX;
	wire_frame(60, 2); /* looks like a frame; must not be taken as one */
	peer_write(wire, wire_len);
	run(NULL, 50);
	cr_assert_eq(fake_used_idx(&rings[RX]), 1);
	cr_assert_eq(guest_frame(&k, got), 60);
	cr_assert_geq(stats().rx_errors, 1);
	cr_assert_eq(resets, 0);
	/* For good: another kick, more bytes, still nothing. */
	wire_len = 0;
	wire_frame(60, 3);
	peer_write(wire, wire_len);
	kick(RX);
	run(NULL, 50);
	cr_assert_eq(fake_used_idx(&rings[RX]), 1);
}

/* passt gone: the end of the stream is counted, the device goes on. */
Test(net_stream_dev, rx_the_end_of_the_stream)
{
	open_stream(mrg, 0);
	offer_rx(40);
	kick(RX);
	wire_len = 0;
	wire_frame(60, 1);
	peer_write(wire, wire_len);
	close_fd(&peer);
	run_rx_until(1);
	run(NULL, 20);
	cr_assert_eq(stats().rx_packets, 1);
	cr_assert_geq(stats().rx_errors, 1);
	cr_assert_eq(resets, 0);
}

/* ---- TX: guest -> passt -------------------------------------------------- */

/* A TX chain as Linux lays it out: a zero header, then the frame. */
static uint16_t offer_tx(uint64_t gpa, uint32_t frame_len, uint8_t seed)
{
	struct sg s[] = {{gpa, NET_HDR_LEN, false}, {gpa + 0x100, frame_len, false}};

	memset(at(gpa, NET_HDR_LEN), 0, NET_HDR_LEN);
	fill(at(gpa + 0x100, frame_len), frame_len, seed);
	return fake_offer(&rings[TX], s, 2);
}

Test(net_stream_dev, tx_frames_go_out_behind_their_length)
{
	open_stream(mrg, 0);
	offer_tx(TXB, 60, 1);
	offer_tx(TXB + 0x1000, 1514, 2);
	kick(TX);
	run_tx_until(2);
	cr_assert_eq(peer_frame(got, sizeof(got)), 60, "the header does not cross");
	cr_assert(filled(got, 60, 1));
	cr_assert_eq(peer_frame(got, sizeof(got)), 1514);
	cr_assert(filled(got, 1514, 2));
	cr_assert_eq(stats().tx_packets, 2);
	cr_assert_eq(stats().tx_bytes, 60 + 1514);
}

/* passt resets its connection on a frame over 65535 bytes (it would take
 * the guest's networking down for good): such a frame, which virtio-net
 * allows, is dropped and counted; the largest one passt takes, and those
 * after, go out. */
Test(net_stream_dev, tx_a_frame_over_65535_bytes_is_dropped)
{
	open_stream(mrg, 0);
	offer_tx(TXB, STREAM_FRAME_MAX, 1);
	offer_tx(TXB + 0x20000, STREAM_FRAME_MAX + 1, 2);
	offer_tx(TXB + 0x40000, 60, 3);
	kick(TX);
	run_tx_until(3);
	cr_assert_eq(peer_frame(got, sizeof(got)), STREAM_FRAME_MAX);
	cr_assert(filled(got, STREAM_FRAME_MAX, 1));
	cr_assert_eq(peer_frame(got, sizeof(got)), 60);
	cr_assert(filled(got, 60, 3));
	cr_assert_eq(stats().tx_packets, 2);
	cr_assert_eq(stats().tx_malformed, 1);
}

/* MMDS on a passt interface, the real endpoint as the detour: the guest's
 * ARP request for 169.254.169.254 never reaches passt, and MMDS's reply
 * reaches the guest ahead of the frame passt sent before it. */
Test(net_stream_dev, mmds_answers_arp_ahead_of_passt)
{
	static const uint8_t arp[42] = {
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x06, 0, 0xac, 0x10, 0,	   2,	 0x08, 0x06,
	    0,	  1,	0x08, 0,    6,	  4,	0,    1, 0x06, 0,    0xac, 0x10, 0,    2,
	    10,	  0,	2,    15,   0,	  0,	0,    0, 0,    0,    169,  254,	 169,  254};
	struct net_detour port;
	struct mmds *m;
	uint16_t k = 0;

	cr_assert_eq(mmds_create(&m, 0), 0);
	cr_assert_eq(mmds_port_create(&port, m, htonl(0xa9fea9fe), false, false), 0);
	open_stream_with(mrg, 0, &port);
	wire_len = 0;
	wire_frame(60, 7);
	peer_write(wire, wire_len); /* passt's frame, waiting */
	offer_rx(20);		    /* room for passt's largest frame */
	memset(at(TXB, NET_HDR_LEN), 0, NET_HDR_LEN);
	memcpy(at(TXB + 0x100, sizeof(arp)), arp, sizeof(arp));
	struct sg tx[] = {{TXB, NET_HDR_LEN, false}, {TXB + 0x100, sizeof(arp), false}};
	fake_offer(&rings[TX], tx, 2);
	kick(TX);
	run_rx_until(2);
	cr_assert_eq(guest_frame(&k, got), 42, "MMDS's ARP reply first");
	cr_assert_eq(got[21], 2, "a reply");
	cr_assert_eq(memcmp(got + 22, (uint8_t[]){0x06, 0x01, 0x23, 0x45, 0x67, 0x01}, 6), 0);
	cr_assert_eq(guest_frame(&k, got), 60, "then passt's");
	cr_assert(filled(got, 60, 7));
	cr_assert_eq(stats().tx_detoured, 1);
	cr_assert_eq(stats().tx_packets, 0, "nothing went to passt");
	cr_assert_eq(mmds_stats(m)->rx_accepted, 1);
	net_destroy(n);
	n = NULL;
	mmds_destroy(m);
}

/* A header asking for a checksum the device never offered is a malformed
 * packet, not a frame sent with a hole in it. */
Test(net_stream_dev, tx_offload_headers_are_refused)
{
	struct virtio_net_hdr_v1 h = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				      .csum_start = htole16(34),
				      .csum_offset = htole16(16)};

	open_stream(mrg, 0);
	offer_tx(TXB, 60, 1);
	memcpy(at(TXB, NET_HDR_LEN), &h, NET_HDR_LEN);
	offer_tx(TXB + 0x1000, 70, 2);
	kick(TX);
	run_tx_until(2);
	cr_assert_eq(stats().tx_malformed, 1);
	cr_assert_eq(peer_frame(got, sizeof(got)), 70);
	cr_assert(filled(got, 70, 2));
}

/* A thread playing passt reading frames while the test thread runs the
 * loop: frame i should be lens[i] bytes filled from seed i + first. */
struct reader {
	pthread_t t;
	unsigned nf, got;
	uint8_t first;
	uint32_t lens[16];
	bool bad;
	atomic_bool done;
};

static struct reader rd;

static bool read_all(uint8_t *p, size_t len)
{
	while (len) {
		struct pollfd pfd = {.fd = peer, .events = POLLIN};
		ssize_t r = read(peer, p, len);
		if (r < 0 && errno == EAGAIN) {
			if (poll(&pfd, 1, 5000) != 1)
				return false;
			continue;
		}
		if (r <= 0)
			return false;
		p += r;
		len -= (size_t)r;
	}
	return true;
}

static void *read_frames(void *arg)
{
	static uint8_t buf[70000];
	struct reader *r = arg;

	for (; r->got < r->nf; r->got++) {
		uint8_t pre[STREAM_PREFIX];
		uint32_t len;

		if (!read_all(pre, sizeof(pre)))
			break;
		len = (uint32_t)pre[0] << 24 | (uint32_t)pre[1] << 16 | (uint32_t)pre[2] << 8 |
		      pre[3];
		if (len != r->lens[r->got] || !read_all(buf, len) ||
		    !filled(buf, len, (uint8_t)(r->first + r->got))) {
			r->bad = true;
			break;
		}
		/* Slow: let the device's writes find the socket full. */
		usleep(2000);
	}
	atomic_store(&r->done, true);
	return NULL;
}

static bool reader_done(void)
{
	return atomic_load(&rd.done);
}

/* Start reading nf frames of lens[] bytes, seeded from first. */
static void start_reader(unsigned nf, const uint32_t *lens, uint8_t first)
{
	rd = (struct reader){.nf = nf, .first = first};
	memcpy(rd.lens, lens, nf * sizeof(*lens));
	cr_assert_eq(pthread_create(&rd.t, NULL, read_frames, &rd), 0);
}

/* Run the loop until the reader is done (it read all or found a bad
 * frame); then check it read all, whole and in order. */
static void finish_reader(void)
{
	run(reader_done, 10000);
	pthread_join(rd.t, NULL);
	cr_assert_not(rd.bad, "frame %u of %u cut or out of order", rd.got, rd.nf);
	cr_assert_eq(rd.got, rd.nf, "read %u frames of %u", rd.got, rd.nf);
}

/* passt slow to read: socket buffers of a few KiB and frames of 60000
 * bytes, so that writes stop part-way through frames and go on later. No
 * frame is cut, none comes out of order, and the guest's chains are used as
 * their frames go. */
Test(net_stream_dev, tx_short_writes_are_continued_in_order)
{
	uint32_t lens[12];
	const unsigned nf = 12;

	open_stream(mrg, 4096);
	for (unsigned i = 0; i < nf; i++) {
		lens[i] = 60000 - i;
		offer_tx(TXB + (uint64_t)i * 0x10000, lens[i], (uint8_t)i);
	}
	kick(TX);
	run(NULL, 20);
	cr_assert_lt(fake_used_idx(&rings[TX]), nf, "the peer has read nothing yet");
	/* (The run's end cancelled the write in flight: a kick goes on.) */
	kick(TX);
	start_reader(nf, lens, 0);
	finish_reader();
	run_tx_until((uint16_t)nf);
	cr_assert_eq(stats().tx_packets, nf);
	cr_assert_eq(stats().tx_errors, 0);
}

/* A reset while a frame is half written: the frame still goes out whole,
 * and the stream carries on framed for the next driver. */
Test(net_stream_dev, tx_a_reset_never_cuts_a_frame)
{
	const uint32_t lens[] = {60000, 50000, 100};

	open_stream(mrg, 4096);
	offer_tx(TXB, lens[0], 1);
	offer_tx(TXB + 0x10000, lens[1], 2);
	kick(TX);
	run(NULL, 20);
	cr_assert_eq(fake_used_idx(&rings[TX]), 0, "the first frame is not all out");
	net_ops.reset(n);
	/* The next driver. */
	ring_start(RX, 256);
	ring_start(TX, 256);
	cr_assert_eq(net_ops.activate(n, mrg, vqs, &host), 0);
	offer_tx(TXB + 0x20000, lens[2], 3);
	kick(TX);
	start_reader(3, lens, 1);
	finish_reader();
	run_tx_until(1);
	cr_assert_eq(stats().stale_completions, 2, "the old driver's two chains");
	cr_assert_eq(stats().tx_packets, 3);
}

/* passt gone: writes fail, are counted once the stream is known broken,
 * and the guest's chains are used all the same (the guest is not stuck). */
Test(net_stream_dev, tx_to_a_closed_stream)
{
	open_stream(mrg, 0);
	close_fd(&peer);
	for (unsigned i = 0; i < 5; i++)
		offer_tx(TXB + (uint64_t)i * 0x1000, 60, (uint8_t)i);
	kick(TX);
	run_tx_until(5);
	cr_assert_eq(stats().tx_packets, 0);
	cr_assert_eq(stats().tx_errors, 5);
	cr_assert_eq(resets, 0);
}

/* Snapshot: drain waits for the writes (passt not reading: it gives up,
 * naming the stream); quiesce uses the chains of the frames still queued,
 * which then go out whole, in order, once passt reads. */
Test(net_stream_dev, snapshot_with_writes_queued)
{
	const uint32_t lens[] = {40000, 40000, 40000, 40000};
	char msg[256];

	open_stream(mrg, 4096);
	for (unsigned i = 0; i < 4; i++)
		offer_tx(TXB + (uint64_t)i * 0x10000, 40000, (uint8_t)i);
	kick(TX);
	run(NULL, 20);
	cr_assert_eq(net_drain(n, now_ns() + 20 * 1000000, msg, sizeof(msg)), -ETIMEDOUT);
	cr_assert_not_null(strstr(msg, "4 packets still being written to the stream socket"), "%s",
			   msg);
	net_quiesce(n);
	cr_assert_eq(fake_used_idx(&rings[TX]), 4, "every chain used");
	kick(TX);
	start_reader(4, lens, 0);
	finish_reader();
	cr_assert_eq(net_drain(n, now_ns() + 500 * 1000000ull, msg, sizeof(msg)), 0);
	cr_assert_eq(stats().tx_packets, 4);
	cr_assert_eq(fake_used_idx(&rings[TX]), 4, "none used twice");
}

/* --net user,fd=N: passt started by someone else (flint-jail), its socket
 * inherited: net_create takes it over instead of starting passt, and
 * frames flow on it; anything but a Unix stream socket is refused. */
Test(net_stream_dev, an_inherited_passt_socket)
{
	struct net_params p = {.backend = NET_BACKEND_USER, .id = "net0", .mac = mac, .loop = loop};
	int sv[2], pfd[2];

	/* FLINT_PASST pointing nowhere: no passt is started. */
	setenv("FLINT_PASST", "/nonexistent/passt", 1);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peer = sv[1];
	p.user_fd = sv[0];
	cr_assert_eq(net_create(&n, &p), 0);
	cr_assert(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	cr_assert(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(net_ops.activate(n, mrg, vqs, &host), 0);
	offer_tx(TXB, 60, 7);
	kick(TX);
	run_tx_until(1);
	cr_assert_eq(peer_frame(got, sizeof(got)), 60, "the frame reached passt's end");
	cr_assert(filled(got, 60, 7));
	net_destroy(n);
	n = NULL;
	cr_assert_lt(fcntl(sv[0], F_GETFD), 0, "the device owned it");

	cr_assert_eq(pipe(pfd), 0);
	p.user_fd = pfd[0];
	cr_assert_eq(net_create(&n, &p), -ENOTSOCK);
	cr_assert_null(n);
	cr_assert_eq(fcntl(pfd[0], F_GETFD), 0, "left alone, and not made close-on-exec");
	close(pfd[0]);
	close(pfd[1]);
	p.user_fd = 1000;
	cr_assert_eq(net_create(&n, &p), -EBADF);
	/* A Unix stream socket that is no pair's end: unconnected, or
	 * listening. */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	cr_assert_geq(s, 0);
	p.user_fd = s;
	cr_assert_eq(net_create(&n, &p), -ENOTCONN, "an unconnected socket taken");
	cr_assert_lt((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/flint-unit-passt-%d",
				      test_tmpdir(), (int)getpid()),
		     sizeof(a.sun_path), "$TMPDIR too long for a socket's path");
	unlink(a.sun_path);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(s, 1), 0);
	cr_assert_eq(net_create(&n, &p), -ENOTCONN, "a listening socket taken");
	cr_assert_null(n);
	close(s);
	unlink(a.sun_path);
	unsetenv("FLINT_PASST");
}

/* ---- passt --------------------------------------------------------------- */

static const struct passt_net user = {
    .addr = "10.0.2.15", .prefix = 24, .gateway = "10.0.2.2", .dns = "10.0.2.3"};

TestSuite(passt, .timeout = 30);

Test(passt, the_probe_is_an_arp_request_for_the_gateway)
{
	uint8_t b[64];
	const uint8_t spa[4] = {10, 0, 2, 15}, tpa[4] = {10, 0, 2, 2};

	cr_assert_eq(passt_arp_probe(&user, b, sizeof(b)), 42);
	cr_assert_eq(memcmp(b, "\xff\xff\xff\xff\xff\xff", 6), 0);
	cr_assert_eq(b[12], 0x08);
	cr_assert_eq(b[13], 0x06);
	cr_assert_eq(b[21], 1, "a request");
	cr_assert_eq(memcmp(b + 28, spa, 4), 0);
	cr_assert_eq(memcmp(b + 38, tpa, 4), 0);
	cr_assert_eq(passt_arp_probe(&user, b, 41), 0);
	struct passt_net v6 = user;
	v6.gateway = "fe80::1";
	cr_assert_eq(passt_arp_probe(&v6, b, sizeof(b)), 0);
}

Test(passt, missing_binary_named)
{
	char path[256];
	int fd = 5;
	pid_t pid = 5;

	setenv("FLINT_PASST", "/nonexistent/passt", 1);
	cr_assert_eq(passt_find(path, sizeof(path)), -ENOENT);
	cr_assert_eq(passt_start("eth0", &user, 1000, &fd, &pid), -ENOENT);
	cr_assert_eq(fd, -1);
	unsetenv("FLINT_PASST");
	setenv("PATH", "/nonexistent", 1);
	cr_assert_eq(passt_find(path, sizeof(path)), -ENOENT);
}

/* A stand-in script as FLINT_PASST; returns its path. */
static const char *fake_passt(const char *body)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/flint-fake-passt-%d", (int)getpid());
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	cr_assert_eq(chmod(path, 0755), 0);
	setenv("FLINT_PASST", path, 1);
	return path;
}

Test(passt, one_that_exits_is_an_error)
{
	const char *p = fake_passt("echo 'Failed to send 3 bytes to syslog' >&2; "
				   "echo 'External interface not usable' >&2; exit 1");
	int fd;
	pid_t pid;

	cr_assert_eq(passt_start("eth0", &user, 5000, &fd, &pid), -ECONNREFUSED);
	cr_assert_eq(fd, -1);
	cr_assert_eq(pid, -1);
	unlink(p);
	unsetenv("FLINT_PASST");
}

Test(passt, one_that_never_answers_is_killed)
{
	const char *p = fake_passt("exec sleep 30");
	uint64_t t0 = now_ns();
	int fd;
	pid_t pid;

	cr_assert_eq(passt_start("eth0", &user, 200, &fd, &pid), -ETIMEDOUT);
	cr_assert_lt(now_ns() - t0, 5000000000ull, "not waiting for sleep");
	cr_assert_eq(fd, -1);
	unlink(p);
	unsetenv("FLINT_PASST");
}

/* What a passt that started said on its stderr before it answered is
 * shown as warnings ("Couldn't get any nameserver address": a guest
 * without DNS), its syslog complaints not. */
Test(passt, its_warnings_at_start_are_shown)
{
	/* The probe read, an ARP reply (42 bytes behind its length) written. */
	const char *p = fake_passt(
	    "echo 'Failed to send 3 bytes to syslog' >&2; "
	    "echo \"Couldn't get any nameserver address\" >&2; "
	    "head -c 46 <&3 >/dev/null; "
	    "printf '\\000\\000\\000\\052\\377\\377\\377\\377\\377\\377\\002\\000"
	    "\\000\\000\\000\\001\\010\\006\\000\\001\\010\\000\\006\\004\\000\\002' >&3; "
	    "head -c 20 /dev/zero >&3; exec sleep 30");
	char path[4096], out[1024] = "";
	int fd = -1, err, saved = dup(STDERR_FILENO);
	ssize_t said;
	pid_t pid = -1;

	snprintf(path, sizeof(path), "%s/flint-passt-err-XXXXXX", test_tmpdir());
	cr_assert_geq(err = mkstemp(path), 0, "%s", path);
	unlink(path);
	dup2(err, STDERR_FILENO);
	int r = passt_start("eth0", &user, 5000, &fd, &pid);
	dup2(saved, STDERR_FILENO);
	close(saved);
	said = pread(err, out, sizeof(out) - 1, 0);
	close(err);
	out[said > 0 ? said : 0] = '\0';
	cr_assert_eq(r, 0, "%s", out);
	cr_assert_geq(fd, 0);
	cr_assert_gt(pid, 0);
	cr_assert_not_null(strstr(out, "eth0: passt: Couldn't get any nameserver address"), "%s",
			   out);
	cr_assert_null(strstr(out, "syslog"), "%s", out);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fd);
	unlink(p);
	unsetenv("FLINT_PASST");
}

/* It gets the socket as fd 3 and the arguments flint means. */
Test(passt, its_arguments)
{
	const char *p = fake_passt("echo \"$@\" >/tmp/flint-fake-passt-args; exit 3");
	char line[512] = "";
	int fd;
	pid_t pid;
	FILE *f;

	cr_assert_lt(passt_start("eth0", &user, 5000, &fd, &pid), 0);
	cr_assert_not_null(f = fopen("/tmp/flint-fake-passt-args", "r"));
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink("/tmp/flint-fake-passt-args");
	cr_assert_not_null(strstr(line, "--fd 3"), "%s", line);
	cr_assert_not_null(strstr(line, "--foreground"), "%s", line);
	cr_assert_not_null(strstr(line, "--address 10.0.2.15 --netmask 24 --gateway 10.0.2.2"),
			   "%s", line);
	cr_assert_not_null(strstr(line, "--dns-forward 10.0.2.3"), "%s", line);
	/* Not --dns: Debian 12's passt then forwarded the guest's queries to
	 * 0.0.0.0 (the host's resolver is resolv.conf's, not 10.0.2.3). */
	cr_assert_null(strstr(line, "--dns "), "%s", line);
	if (geteuid() == 0)
		cr_assert_not_null(strstr(line, "--runas 65534:65534"), "%s", line);
	unlink(p);
	unsetenv("FLINT_PASST");
}

static int hook_ran(void *ctx)
{
	return setenv("FLINT_TEST_HOOK", ctx, 1);
}

static int hook_fails(void *ctx)
{
	(void)ctx;
	return -EPERM;
}

/* A launcher's hook (flint-jail's: the network namespace, the jail's
 * user) runs in the child before passt; passt gets no --runas then, as the
 * hook chose its ids; a hook that fails runs no passt. */
Test(passt, a_launchers_hook)
{
	const char *p = fake_passt("echo \"$FLINT_TEST_HOOK $@\" >/tmp/flint-fake-passt-hook; "
				   "exit 3");
	struct passt_child c = {.setup = hook_ran, .ctx = "hooked"};
	char line[512] = "";
	int fd;
	pid_t pid;
	FILE *f;

	unlink("/tmp/flint-fake-passt-hook");
	cr_assert_lt(passt_start_as("eth0", &user, 5000, &c, &fd, &pid), 0);
	cr_assert_not_null(f = fopen("/tmp/flint-fake-passt-hook", "r"));
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink("/tmp/flint-fake-passt-hook");
	cr_assert_eq(strncmp(line, "hooked ", 7), 0, "%s", line);
	cr_assert_not_null(strstr(line, "--fd 3"), "%s", line);
	cr_assert_null(strstr(line, "--runas"), "%s", line);
	cr_assert_null(getenv("FLINT_TEST_HOOK"), "in the child only");

	c.setup = hook_fails;
	cr_assert_eq(passt_start_as("eth0", &user, 5000, &c, &fd, &pid), -ECONNREFUSED);
	cr_assert_eq(fd, -1);
	cr_assert_eq(access("/tmp/flint-fake-passt-hook", F_OK), -1, "passt never ran");
	unlink(p);
	unsetenv("FLINT_PASST");
}

/* The real passt, where it is installed and the host has a default route
 * (which passt needs): ready, answering frames, and gone once its socket
 * closes. */
Test(passt, the_real_one)
{
	char path[256];
	uint8_t probe[STREAM_PREFIX + 42], pre[STREAM_PREFIX], f[1600];
	struct pollfd pfd;
	int fd, st;
	pid_t pid;

	unsetenv("FLINT_PASST");
	if (passt_find(path, sizeof(path)) < 0)
		cr_skip_test("passt is not installed");
	if (passt_start("eth0", &user, 10000, &fd, &pid) < 0)
		cr_skip_test("passt would not start here (no default route?)");
	cr_assert_gt(pid, 0);
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "running");
	/* A second ARP request: the stream flint got starts at a frame. */
	stream_put_len(probe, (uint32_t)passt_arp_probe(&user, probe + STREAM_PREFIX, 42));
	cr_assert_eq(write(fd, probe, sizeof(probe)), (ssize_t)sizeof(probe));
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 5000), 1);
	cr_assert_eq(read(fd, pre, sizeof(pre)), (ssize_t)sizeof(pre));
	uint32_t len = (uint32_t)pre[2] << 8 | pre[3];
	cr_assert(pre[0] == 0 && pre[1] == 0 && len >= 42 && len <= sizeof(f));
	cr_assert_eq(poll(&pfd, 1, 5000), 1);
	cr_assert_eq(read(fd, f, len), (ssize_t)len);
	cr_assert_eq(f[21], 2, "an ARP reply");
	close(fd);
	pid_t w = 0;
	for (int i = 0; i < 500 && (w = waitpid(pid, &st, WNOHANG)) == 0; i++)
		usleep(10000);
	cr_assert_eq(w, pid, "passt quit when its socket closed");
}
