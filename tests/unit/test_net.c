/* virtio-net: the TX header checks, the feature -> tap offload mapping, and
 * the whole device against fake guest memory, a real event loop run in the
 * test thread, and an AF_UNIX SOCK_SEQPACKET socket pair standing in for the
 * tap (one packet per read and write, header included, as a tap with
 * IFF_VNET_HDR). The helpers play the guest driver. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/time_types.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/device_kinds.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "fake_driver.h"
#include "loop_watchdog.h"
#include "net/net.h"
#include "net/net_hdr.h"
#include "net/tap.h"
#include "vq.h"

#define F(bit) (1ull << (bit))

/* ---- header checks ------------------------------------------------------ */

static const uint64_t all_tx =
    F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6);

static struct virtio_net_hdr_v1 hdr(uint8_t flags, uint8_t gso, uint16_t gso_size,
				    uint16_t csum_start, uint16_t csum_offset, uint16_t hdr_len)
{
	return (struct virtio_net_hdr_v1){.flags = flags,
					  .gso_type = gso,
					  .hdr_len = htole16(hdr_len),
					  .gso_size = htole16(gso_size),
					  .csum_start = htole16(csum_start),
					  .csum_offset = htole16(csum_offset)};
}

#define CSUM VIRTIO_NET_HDR_F_NEEDS_CSUM

Test(net_hdr, plain_and_offloaded_packets_pass)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);

	cr_assert_eq(net_hdr_check(&h, 60, 0), NET_HDR_OK);
	h = hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0);
	cr_assert_eq(net_hdr_check(&h, 60, 0), NET_HDR_OK);
	/* TCP checksum over an IPv4 packet: start 34, offset 16. */
	h = hdr(CSUM, 0, 0, 34, 16, 0);
	cr_assert_eq(net_hdr_check(&h, 54, all_tx), NET_HDR_OK, "field ends at the frame's end");
	h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 66);
	cr_assert_eq(net_hdr_check(&h, 65000, all_tx), NET_HDR_OK);
	h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 1428, 54, 16, 86);
	cr_assert_eq(net_hdr_check(&h, NET_FRAME_MAX, all_tx), NET_HDR_OK);
}

Test(net_hdr, frame_length)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);

	cr_assert_eq(net_hdr_check(&h, 13, all_tx), NET_HDR_SHORT);
	cr_assert_eq(net_hdr_check(&h, 0, all_tx), NET_HDR_SHORT);
	cr_assert_eq(net_hdr_check(&h, 14, all_tx), NET_HDR_OK);
	cr_assert_eq(net_hdr_check(&h, NET_FRAME_MAX + 1, all_tx), NET_HDR_LONG);
	cr_assert_eq(NET_FRAME_MAX + NET_HDR_LEN, 65562);
}

Test(net_hdr, flags)
{
	for (unsigned bit = 2; bit < 8; bit++) {
		struct virtio_net_hdr_v1 h = hdr((uint8_t)(1u << bit), 0, 0, 0, 0, 0);
		cr_assert_eq(net_hdr_check(&h, 60, all_tx), NET_HDR_FLAGS, "flag bit %u", bit);
	}
}

Test(net_hdr, needs_csum_needs_the_feature)
{
	struct virtio_net_hdr_v1 h = hdr(CSUM, 0, 0, 34, 16, 0);

	cr_assert_eq(net_hdr_check(&h, 60, all_tx & ~F(VIRTIO_NET_F_CSUM)), NET_HDR_CSUM_NOT_OURS);
}

Test(net_hdr, csum_range)
{
	struct virtio_net_hdr_v1 h = hdr(CSUM, 0, 0, 34, 16, 0);

	cr_assert_eq(net_hdr_check(&h, 51, all_tx), NET_HDR_CSUM_RANGE);
	h = hdr(CSUM, 0, 0, 0xffff, 0xffff, 0); /* no 16-bit wrap */
	cr_assert_eq(net_hdr_check(&h, NET_FRAME_MAX, all_tx), NET_HDR_CSUM_RANGE);
	h = hdr(CSUM, 0, 0, 60, 0, 0);
	cr_assert_eq(net_hdr_check(&h, 61, all_tx), NET_HDR_CSUM_RANGE);
	/* Without NEEDS_CSUM the fields mean nothing. */
	h = hdr(0, 0, 0, 0xffff, 0xffff, 0);
	cr_assert_eq(net_hdr_check(&h, 60, all_tx), NET_HDR_OK);
}

Test(net_hdr, gso_type_known_and_negotiated)
{
	/* UFO (not offered), unassigned values, TSO with ECN (not offered). */
	const uint8_t ecn = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
	const uint8_t bad[] = {VIRTIO_NET_HDR_GSO_UDP, 2, 5, 6, 0x7f, ecn};
	struct virtio_net_hdr_v1 h;

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		h = hdr(CSUM, bad[i], 1448, 34, 16, 66);
		cr_assert_eq(net_hdr_check(&h, 3000, all_tx), NET_HDR_GSO_TYPE, "type %#x", bad[i]);
	}
	h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 66);
	cr_assert_eq(net_hdr_check(&h, 3000, all_tx & ~F(VIRTIO_NET_F_HOST_TSO4)),
		     NET_HDR_GSO_TYPE);
	h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 1448, 54, 16, 86);
	cr_assert_eq(net_hdr_check(&h, 3000, all_tx & ~F(VIRTIO_NET_F_HOST_TSO6)),
		     NET_HDR_GSO_TYPE);
}

Test(net_hdr, gso_needs_csum_and_size)
{
	struct virtio_net_hdr_v1 h = hdr(0, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 66);

	cr_assert_eq(net_hdr_check(&h, 3000, all_tx), NET_HDR_GSO_NO_CSUM);
	h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0, 34, 16, 66);
	cr_assert_eq(net_hdr_check(&h, 3000, all_tx), NET_HDR_GSO_SIZE);
}

Test(net_hdr, hdr_len)
{
	struct virtio_net_hdr_v1 h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 3001);

	cr_assert_eq(net_hdr_check(&h, 3000, all_tx), NET_HDR_HDR_LEN);
	h = hdr(0, 0, 0, 0, 0, 61);
	cr_assert_eq(net_hdr_check(&h, 60, all_tx), NET_HDR_HDR_LEN);
}

Test(net_hdr, every_error_has_words)
{
	for (int e = NET_HDR_OK; e <= NET_HDR_HDR_LEN; e++)
		cr_assert_neq(strcmp(net_hdr_strerror((enum net_hdr_err)e), "?"), 0, "error %d", e);
	cr_assert_str_eq(net_hdr_strerror((enum net_hdr_err)99), "?");
}

/* ---- features -> tap offloads ------------------------------------------ */

Test(tap, offloads_follow_what_the_guest_takes)
{
	const uint64_t gcsum = F(VIRTIO_NET_F_GUEST_CSUM);

	cr_assert_eq(tap_offloads(0), 0);
	/* What the guest sends is none of the tap's business. */
	cr_assert_eq(tap_offloads(all_tx), 0);
	cr_assert_eq(tap_offloads(gcsum), TUN_F_CSUM);
	cr_assert_eq(tap_offloads(gcsum | F(VIRTIO_NET_F_GUEST_TSO4)), TUN_F_CSUM | TUN_F_TSO4);
	cr_assert_eq(tap_offloads(gcsum | F(VIRTIO_NET_F_GUEST_TSO6)), TUN_F_CSUM | TUN_F_TSO6);
	cr_assert_eq(tap_offloads(gcsum | F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) |
				  F(VIRTIO_NET_F_GUEST_UFO) | F(VIRTIO_NET_F_GUEST_ECN)),
		     TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, "no UFO, no ECN");
	/* TSO without checksum offload is nothing tun accepts. */
	cr_assert_eq(tap_offloads(F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6)), 0);
}

/* ---- the device --------------------------------------------------------- */

#define RAM (4u << 20)
#define BUF 0x10000

/* The guest's view of its queues: RX at 0x1000.., TX at 0x4000... */

static struct gmem *g;
static struct vq vqs[2];
static struct fake_ring rings[2] = {{.desc = 0x1000, .avail = 0x2000, .used = 0x3000},
				    {.desc = 0x4000, .avail = 0x5000, .used = 0x6000}};
static struct evloop *loop;
static struct net *n;
static int peer = -1; /* the test's end of the fake tap */
static unsigned used_calls[2], again_calls[2], resets;
static bool (*until)(void);
static const uint8_t mac[6] = {0x06, 0, 0xac, 0x10, 0, 2};

enum { RX, TX };

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

/* Lay out n buffers as one chain of queue i and offer it. */
static uint16_t offer(unsigned i, const struct sg *s, unsigned cnt)
{
	return fake_offer(&rings[i], s, cnt);
}

/* One device-writable buffer. */
static uint16_t offer_rx(uint64_t gpa, uint32_t len)
{
	struct sg s = {gpa, len, true};
	return offer(RX, &s, 1);
}

static uint16_t used_idx(unsigned i)
{
	return fake_used_idx(&rings[i]);
}

static struct vring_used_elem used_elem(unsigned i, uint16_t k)
{
	return fake_used_elem(&rings[i], k);
}

static void host_used(void *t, unsigned q)
{
	(void)t;
	cr_assert_lt(q, 2);
	used_calls[q]++;
	if (until && until())
		evloop_stop(loop);
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets++;
}

static void host_again(void *t, unsigned q)
{
	(void)t;
	cr_assert_lt(q, 2);
	again_calls[q]++;
}

static const struct virtio_host host = {
    .used = host_used, .needs_reset = host_needs_reset, .again = host_again};

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
	return used_idx(RX) >= want_rx;
}

static bool tx_reached(void)
{
	return used_idx(TX) >= want_tx;
}

static void kick(unsigned q)
{
	net_ops.notify(n, q);
}

static void run_rx_until(uint16_t k)
{
	want_rx = k;
	run(rx_reached, 2000);
	cr_assert_eq(used_idx(RX), k, "RX used %u of %u", used_idx(RX), k);
}

static void run_tx_until(uint16_t k)
{
	want_tx = k;
	run(tx_reached, 2000);
	cr_assert_eq(used_idx(TX), k, "TX used %u of %u", used_idx(TX), k);
}

static void dev_setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	ring_start(RX, 256);
	ring_start(TX, 256);
	cr_assert_eq(evloop_create(&loop, 64), 0);
	used_calls[RX] = used_calls[TX] = again_calls[RX] = again_calls[TX] = resets = 0;
}

static void dev_teardown(void)
{
	evloop_destroy(loop);
	net_destroy(n);
	n = NULL;
	close_fd(&peer);
	gmem_destroy(g);
}

TestSuite(net_dev, .init = dev_setup, .fini = dev_teardown, .timeout = 10);

/* The device made with p on one end of a socket pair, activated with
 * features. */
static void open_with(uint64_t features, const struct net_params *p)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	cr_assert_eq(net_create_fd(&n, p, sv[0]), 0);
	cr_assert_eq(net_ops.activate(n, features, vqs, &host), 0);
}

/* The device with no limiter and no detour. */
static void open_dev(uint64_t features)
{
	struct net_params p = {.id = "net0", .mac = mac, .loop = loop};

	open_with(features, &p);
}

static struct net_stats stats(void)
{
	struct net_stats s;
	net_get_stats(n, &s);
	return s;
}

/* A frame of len bytes: byte i is seed + i. */
static void fill(uint8_t *p, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i);
}

static bool filled(const uint8_t *p, uint32_t len, uint8_t seed, uint32_t from)
{
	for (uint32_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seed + from + i))
			return false;
	return true;
}

/* The host sends one packet to the guest: header then frame. */
static void peer_send(const struct virtio_net_hdr_v1 *h, uint32_t frame_len, uint8_t seed)
{
	static uint8_t pkt[NET_HDR_LEN + 70000];

	memcpy(pkt, h, NET_HDR_LEN);
	fill(pkt + NET_HDR_LEN, frame_len, seed);
	cr_assert_eq(write(peer, pkt, NET_HDR_LEN + frame_len), (ssize_t)(NET_HDR_LEN + frame_len));
}

/* A TX packet as Linux lays it out: the header in its own buffer, the frame
 * in another; the header at gpa, the frame at gpa + 0x100. */
static uint16_t offer_tx(uint64_t gpa, const struct virtio_net_hdr_v1 *h, uint32_t frame_len,
			 uint8_t seed)
{
	struct sg s[] = {{gpa, NET_HDR_LEN, false}, {gpa + 0x100, frame_len, false}};

	memcpy(at(gpa, NET_HDR_LEN), h, NET_HDR_LEN);
	fill(at(gpa + 0x100, frame_len), frame_len, seed);
	return offer(TX, s, 2);
}

static const uint64_t mrg =
    F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM);

Test(net_dev, ops_features_and_config)
{
	struct virtio_net_config c;
	uint64_t f;
	uint8_t tail[4];

	open_dev(mrg);
	cr_assert_eq(net_ops.device_id, VIRTIO_ID_NET);
	cr_assert_eq(net_ops.num_queues, 2);
	cr_assert_eq(net_ops.queue_max, 256);
	f = net_ops.features(n);
	cr_assert_eq(f,
		     F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) |
			 F(VIRTIO_NET_F_HOST_TSO6) | F(VIRTIO_NET_F_GUEST_TSO4) |
			 F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_MRG_RXBUF) |
			 F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MAC),
		     "features %#llx", (unsigned long long)f);
	net_ops.config_read(n, 0, &c, sizeof(c));
	cr_assert_eq(memcmp(c.mac, mac, 6), 0);
	cr_assert_eq(le16toh(c.status), VIRTIO_NET_S_LINK_UP);
	/* A 2-byte read of status; past the end reads 0. */
	uint16_t st;
	net_ops.config_read(n, offsetof(struct virtio_net_config, status), &st, 2);
	cr_assert_eq(le16toh(st), VIRTIO_NET_S_LINK_UP);
	memset(tail, 0xff, sizeof(tail));
	net_ops.config_read(n, 1ull << 40, tail, sizeof(tail));
	cr_assert_eq(tail[0] | tail[3], 0);
	net_ops.config_write(n, 0, tail, 4); /* ignored */
	net_ops.config_read(n, 0, &c, sizeof(c));
	cr_assert_eq(c.mac[0], 0x06);
	cr_assert_eq(c.mtu, 0, "no MTU offered");
}

/* An interface's mtu (Firecracker's NetworkInterface.mtu) is offered with
 * VIRTIO_NET_F_MTU and read from the config space; out of range, refused. */
Test(net_dev, mtu_is_offered_in_the_config_space)
{
	struct net_params p = {.id = "net0", .loop = loop, .mtu = 9000};
	struct virtio_net_config c;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	cr_assert_eq(net_create_fd(&n, &p, sv[0]), 0);
	cr_assert(net_ops.features(n) & F(VIRTIO_NET_F_MTU));
	cr_assert_not(net_ops.features(n) & F(VIRTIO_NET_F_MAC));
	net_ops.config_read(n, 0, &c, sizeof(c));
	cr_assert_eq(le16toh(c.mtu), 9000);

	struct net *bad = NULL;
	p.mtu = 67;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	cr_assert_eq(net_create_fd(&bad, &p, sv[0]), -EINVAL);
	cr_assert_null(bad);
}

Test(net_dev, no_mac_no_mac_feature)
{
	struct net_params p = {.id = "net0", .loop = loop};
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	cr_assert_eq(net_create_fd(&n, &p, sv[0]), 0);
	cr_assert_not(net_ops.features(n) & F(VIRTIO_NET_F_MAC));
}

static const uint64_t full = F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) |
			     F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |
			     F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) |
			     F(VIRTIO_NET_F_MRG_RXBUF);

/* The next packet from the device, or -1 if none is waiting. */
static ssize_t peer_recv(uint8_t *buf, size_t cap)
{
	ssize_t r = read(peer, buf, cap);
	return r < 0 && errno == EAGAIN ? -1 : r;
}

Test(net_dev, tx_packets_reach_the_tap_whole)
{
	struct virtio_net_hdr_v1 h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 66);
	struct virtio_net_hdr_v1 plain = hdr(0, 0, 0, 0, 0, 0);
	static uint8_t got[NET_HDR_LEN + 5000];
	struct net_stats s;
	uint16_t a, b;

	open_dev(full);
	a = offer_tx(BUF, &h, 4000, 1);
	b = offer_tx(BUF + 0x2000, &plain, 60, 2);
	kick(TX);
	run_tx_until(2);
	cr_assert_eq(used_elem(TX, 0).id, a);
	cr_assert_eq(used_elem(TX, 0).len, 0);
	cr_assert_eq(used_elem(TX, 1).id, b);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 4000);
	cr_assert_eq(memcmp(got, &h, NET_HDR_LEN), 0, "the header passes through");
	cr_assert(filled(got + NET_HDR_LEN, 4000, 1, 0));
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	cr_assert(filled(got + NET_HDR_LEN, 60, 2, 0));
	s = stats();
	cr_assert_eq(s.tx_packets, 2);
	cr_assert_eq(s.tx_bytes, 4060);
	cr_assert_eq(s.tx_malformed, 0);
	cr_assert_eq(resets, 0);
	/* Idle again: notifications back on. */
	cr_assert_not(((struct vring_used *)at(rings[TX].used, 4))->flags & VRING_USED_F_NO_NOTIFY);
}

/* One buffer holding header and frame, as Linux's any-layout TX does. */
Test(net_dev, tx_header_and_frame_in_one_buffer)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	uint8_t got[200];

	open_dev(full);
	memcpy(at(BUF, NET_HDR_LEN), &h, NET_HDR_LEN);
	fill(at(BUF + NET_HDR_LEN, 100), 100, 7);
	struct sg s = {BUF, NET_HDR_LEN + 100, false};
	offer(TX, &s, 1);
	kick(TX);
	run_tx_until(1);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 100);
	cr_assert(filled(got + NET_HDR_LEN, 100, 7, 0));
}

/* The header is checked once, when the kick pops the chain, and the tap
 * gets that checked copy whatever the guest writes afterwards. Here the
 * guest rewrites it after the kick and before the loop has run, so before
 * the write could have started: into a header the check would refuse
 * (unknown flags and GSO type, gso_size 0, checksum and hdr_len past the
 * frame), once laid out as Linux does and once split over two buffers. */
Test(net_dev, tx_header_rewritten_after_the_kick_is_not_sent)
{
	struct virtio_net_hdr_v1 h = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 66);
	struct virtio_net_hdr_v1 plain = hdr(0, 0, 0, 0, 0, 0);
	struct virtio_net_hdr_v1 bad = hdr(0xff, 0x7f, 0, 0xffff, 0xffff, 0xffff);
	/* 5 bytes of header, then the other 7 and the frame in one buffer. */
	struct sg split[] = {{BUF + 0x2000, 5, false}, {BUF + 0x2100, 7 + 60, false}};
	static uint8_t got[NET_HDR_LEN + 5000];

	open_dev(full);
	offer_tx(BUF, &h, 4000, 1);
	memcpy(at(BUF + 0x2000, 5), &plain, 5);
	memcpy(at(BUF + 0x2100, 7), (uint8_t *)&plain + 5, 7);
	fill(at(BUF + 0x2100 + 7, 60), 60, 2);
	offer(TX, split, 2);
	kick(TX); /* both popped and checked; their writes not yet run */
	cr_assert_eq(stats().tx_malformed, 0);
	memcpy(at(BUF, NET_HDR_LEN), &bad, NET_HDR_LEN);
	memcpy(at(BUF + 0x2000, 5), &bad, 5);
	memcpy(at(BUF + 0x2100, 7), (uint8_t *)&bad + 5, 7);
	run_tx_until(2);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 4000);
	cr_assert_eq(memcmp(got, &h, NET_HDR_LEN), 0, "the tap got the header rewritten");
	cr_assert(filled(got + NET_HDR_LEN, 4000, 1, 0));
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	cr_assert_eq(memcmp(got, &plain, NET_HDR_LEN), 0, "the tap got the split header rewritten");
	cr_assert(filled(got + NET_HDR_LEN, 60, 2, 0));
	cr_assert_eq(stats().tx_packets, 2);
}

/* Each malformed chain is given back unsent and counted; the good packets
 * around them go out and the device needs no reset. */
Test(net_dev, tx_malformed_chains_are_dropped_and_counted)
{
	struct virtio_net_hdr_v1 ok = hdr(0, 0, 0, 0, 0, 0);
	struct virtio_net_hdr_v1 bad_flags = hdr(0x40, 0, 0, 0, 0, 0);
	struct virtio_net_hdr_v1 tso = hdr(CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 66);
	uint8_t got[4096];
	struct net_stats s;
	unsigned sent = 0;

	/* No HOST_TSO4: a TSO packet is malformed. */
	open_dev(full & ~F(VIRTIO_NET_F_HOST_TSO4));
	offer_tx(BUF, &ok, 60, 1);
	struct sg writable[] = {{BUF + 0x1000, NET_HDR_LEN, false}, {BUF + 0x1100, 60, true}};
	offer(TX, writable, 2);
	struct sg short_hdr = {BUF + 0x2000, 11, false};
	offer(TX, &short_hdr, 1);
	offer_tx(BUF + 0x3000, &bad_flags, 60, 3);
	offer_tx(BUF + 0x4000, &tso, 3000, 4);
	offer_tx(BUF + 0x5000, &ok, 13, 5); /* runt */
	offer_tx(BUF + 0x6000, &ok, 70, 6);
	kick(TX);
	run_tx_until(7);
	for (uint16_t k = 0; k < 7; k++)
		cr_assert_eq(used_elem(TX, k).len, 0);
	while (peer_recv(got, sizeof(got)) > 0)
		sent++;
	cr_assert_eq(sent, 2);
	s = stats();
	cr_assert_eq(s.tx_malformed, 5);
	cr_assert_eq(s.tx_packets, 2);
	cr_assert_eq(resets, 0, "a bad packet is not a broken device");
	/* Still working. */
	offer_tx(BUF + 0x7000, &ok, 80, 8);
	kick(TX);
	run_tx_until(8);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 80);
}

/* Frames dropped at once take no slot for long, so the slots never stop
 * the device: a notification takes at most VIRTIO_BUDGET of them, a full
 * queue of the largest size, and asks to be notified again rather than
 * look for more (a driver adding frames as fast as they are used would
 * hold the loop thread); that notification takes what came since. The
 * largest queue holds VIRTIO_BUDGET chains, so the budget runs out as the
 * queue empties: the device asks again without looking, as it does with
 * chains waiting. */
Test(net_dev, tx_notification_takes_at_most_the_budget)
{
	struct sg short_hdr = {BUF, 11, false};

	open_dev(full);
	for (unsigned i = 0; i < 256; i++)
		offer(TX, &short_hdr, 1);
	kick(TX);
	cr_assert_eq(stats().tx_malformed, VIRTIO_BUDGET);
	cr_assert_eq(again_calls[TX], 1);
	offer(TX, &short_hdr, 1);
	kick(TX);
	cr_assert_eq(stats().tx_malformed, VIRTIO_BUDGET + 1);
	cr_assert_eq(again_calls[TX], 1);
	cr_assert_eq(used_idx(TX), VIRTIO_BUDGET + 1);
	cr_assert_eq(again_calls[RX], 0);
	cr_assert_eq(resets, 0);
}

Test(net_dev, tx_broken_ring_needs_reset)
{
	struct sg s = {RAM - 8, 64, false}; /* leaves RAM */

	open_dev(full);
	offer(TX, &s, 1);
	kick(TX);
	cr_assert_eq(resets, 1);
	cr_assert_eq(stats().protocol_errors, 1);
	cr_assert_eq(used_idx(TX), 0);
}

/* MRG_RXBUF: a packet spreads over as many buffers as it fills, the header's
 * num_buffers says how many, and the buffers it did not need stay for the
 * next packet. */
Test(net_dev, rx_mergeable_spreads_one_packet)
{
	struct virtio_net_hdr_v1 h = hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0);
	struct virtio_net_hdr_v1 *g0;
	uint16_t heads[5];
	struct net_stats s;

	open_dev(mrg); /* no guest GSO: 1530 bytes of buffers will do */
	for (unsigned i = 0; i < 5; i++)
		heads[i] = offer_rx(BUF + i * 0x1000u, 1000);
	peer_send(&h, 2500, 9);
	peer_send(&h, 100, 10);
	kick(RX);
	run_rx_until(4);
	/* 12 + 2500 = 1000 + 1000 + 512 */
	cr_assert_eq(used_elem(RX, 0).id, heads[0]);
	cr_assert_eq(used_elem(RX, 0).len, 1000);
	cr_assert_eq(used_elem(RX, 1).id, heads[1]);
	cr_assert_eq(used_elem(RX, 1).len, 1000);
	cr_assert_eq(used_elem(RX, 2).id, heads[2]);
	cr_assert_eq(used_elem(RX, 2).len, 512);
	g0 = at(BUF, NET_HDR_LEN);
	cr_assert_eq(g0->flags, VIRTIO_NET_HDR_F_DATA_VALID);
	cr_assert_eq(le16toh(g0->num_buffers), 3);
	cr_assert(filled(at(BUF + NET_HDR_LEN, 988), 988, 9, 0));
	cr_assert(filled(at(BUF + 0x1000, 1000), 1000, 9, 988));
	cr_assert(filled(at(BUF + 0x2000, 512), 512, 9, 1988));
	/* The second packet in the fourth buffer. */
	cr_assert_eq(used_elem(RX, 3).id, heads[3]);
	cr_assert_eq(used_elem(RX, 3).len, NET_HDR_LEN + 100);
	cr_assert_eq(le16toh(((struct virtio_net_hdr_v1 *)at(BUF + 0x3000, 12))->num_buffers), 1);
	s = stats();
	cr_assert_eq(s.rx_packets, 2);
	cr_assert_eq(s.rx_bytes, 2600);
	cr_assert_eq(s.rx_dropped, 0);
}

/* Without MRG_RXBUF each packet takes one chain, here of two buffers. */
Test(net_dev, rx_one_chain_per_packet)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	uint16_t a, b;

	open_dev(F(VIRTIO_NET_F_GUEST_CSUM));
	struct sg c1[] = {{BUF, NET_HDR_LEN, true}, {BUF + 0x100, 1514, true}};
	struct sg c2[] = {{BUF + 0x1000, NET_HDR_LEN, true}, {BUF + 0x1100, 1514, true}};
	a = offer(RX, c1, 2);
	b = offer(RX, c2, 2);
	peer_send(&h, 60, 1);
	peer_send(&h, 1514, 2);
	kick(RX);
	run_rx_until(2);
	cr_assert_eq(used_elem(RX, 0).id, a);
	cr_assert_eq(used_elem(RX, 0).len, NET_HDR_LEN + 60);
	cr_assert_eq(used_elem(RX, 1).id, b);
	cr_assert_eq(used_elem(RX, 1).len, NET_HDR_LEN + 1514);
	cr_assert_eq(le16toh(((struct virtio_net_hdr_v1 *)at(BUF, 12))->num_buffers), 1);
	cr_assert(filled(at(BUF + 0x1100, 1514), 1514, 2, 0));
}

/* Out of buffers, the device stops reading and asks for a kick; nothing
 * blocks, the packets wait in the tap, and a kick with buffers resumes. */
Test(net_dev, rx_without_buffers_waits_for_a_kick)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	struct net_stats s;

	open_dev(mrg);
	offer_rx(BUF, 1000); /* short of the 1530 a packet may need */
	for (unsigned i = 0; i < 3; i++)
		peer_send(&h, 100, (uint8_t)(20 + i));
	kick(RX);
	run(NULL, 50);
	cr_assert_eq(used_idx(RX), 0);
	s = stats();
	cr_assert_eq(s.rx_no_buffers, 1);
	cr_assert_eq(s.rx_packets, 0);
	cr_assert_not(((struct vring_used *)at(rings[RX].used, 4))->flags & VRING_USED_F_NO_NOTIFY,
		      "notifications on while waiting");
	/* The guest adds buffers and kicks. */
	for (unsigned i = 1; i < 5; i++)
		offer_rx(BUF + i * 0x1000u, 1000);
	kick(RX);
	run_rx_until(3);
	for (unsigned i = 0; i < 3; i++)
		cr_assert(
		    filled(at(BUF + i * 0x1000u + NET_HDR_LEN, 100), 100, (uint8_t)(20 + i), 0));
	cr_assert_eq(stats().rx_packets, 3);
}

/* A flood while the guest takes nothing: the tap fills up and refuses the
 * sender; the device neither blocks nor spins. */
Test(net_dev, rx_flood_with_no_buffers_does_not_block)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	static uint8_t pkt[NET_HDR_LEN + 1000];
	struct evloop_stats before, after;
	unsigned sent = 0;

	open_dev(mrg);
	memcpy(pkt, &h, NET_HDR_LEN);
	kick(RX);
	evloop_get_stats(loop, &before);
	while (write(peer, pkt, sizeof(pkt)) == (ssize_t)sizeof(pkt))
		sent++;
	cr_assert_eq(errno, EAGAIN);
	cr_assert_gt(sent, 10);
	run(NULL, 50);
	evloop_get_stats(loop, &after);
	cr_assert_lt(after.completed - before.completed, 10, "%llu completions while idle",
		     (unsigned long long)(after.completed - before.completed));
	cr_assert_eq(used_idx(RX), 0);
	cr_assert_eq(stats().rx_no_buffers, 1);
}

/* A burst queued at once reaches the guest whole and in order: the kick
 * reads a budget of it at once, the loop the rest in a few turns, with its
 * other work in between. */
Test(net_dev, rx_burst_delivered_in_order)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	struct evloop_stats before, after;
	enum { CNT = 140 };
	uint16_t heads[CNT];
	uint64_t bytes = 0;
	struct net_stats s;

	open_dev(mrg);
	for (unsigned i = 0; i < CNT; i++)
		heads[i] = offer_rx(BUF + i * 0x1000u, 2048);
	offer_rx(BUF + CNT * 0x1000u, 2048); /* one to spare: the tap runs dry first */
	for (unsigned i = 0; i < CNT; i++) {
		peer_send(&h, 60 + i, (uint8_t)i);
		bytes += 60 + i;
	}
	evloop_get_stats(loop, &before);
	kick(RX);
	cr_assert_gt(used_idx(RX), 0, "the kick reads at once");
	cr_assert_lt(used_idx(RX), CNT, "one pass takes a budget, not the whole tap");
	run_rx_until(CNT);
	evloop_get_stats(loop, &after);
	cr_assert_leq(after.iterations - before.iterations, 6, "%llu loop turns",
		      (unsigned long long)(after.iterations - before.iterations));
	for (uint16_t k = 0; k < CNT; k++) {
		uint64_t gpa = BUF + k * 0x1000u;
		cr_assert_eq(used_elem(RX, k).id, heads[k], "packet %u", k);
		cr_assert_eq(used_elem(RX, k).len, NET_HDR_LEN + 60 + k, "packet %u", k);
		cr_assert_eq(le16toh(((struct virtio_net_hdr_v1 *)at(gpa, 12))->num_buffers), 1);
		cr_assert(filled(at(gpa + NET_HDR_LEN, 60 + k), 60 + k, (uint8_t)k, 0), "packet %u",
			  k);
	}
	s = stats();
	cr_assert_eq(s.rx_packets, CNT);
	cr_assert_eq(s.rx_bytes, bytes);
	cr_assert_eq(s.rx_dropped + s.rx_errors + s.rx_no_buffers, 0);
}

/* Short of buffers in the middle of a burst the device stops reading and
 * leaves no poll armed: the packets wait in the tap, the loop stays idle,
 * and the guest's next kick brings them in. */
Test(net_dev, rx_out_of_buffers_mid_burst_waits_for_a_kick)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	struct evloop_stats before, after;

	open_dev(F(VIRTIO_NET_F_GUEST_CSUM)); /* one chain per packet */
	offer_rx(BUF, 2000);
	kick(RX); /* the tap is empty: the device polls it */
	for (unsigned i = 0; i < 3; i++)
		peer_send(&h, 100, (uint8_t)(30 + i));
	evloop_get_stats(loop, &before);
	run(NULL, 50); /* the poll fires, one packet is read, then nothing */
	evloop_get_stats(loop, &after);
	cr_assert_lt(after.completed - before.completed, 5, "%llu completions",
		     (unsigned long long)(after.completed - before.completed));
	cr_assert_eq(used_idx(RX), 1);
	cr_assert_eq(stats().rx_no_buffers, 1);
	cr_assert_not(((struct vring_used *)at(rings[RX].used, 4))->flags & VRING_USED_F_NO_NOTIFY,
		      "notifications on while waiting");
	offer_rx(BUF + 0x1000, 2000);
	offer_rx(BUF + 0x2000, 2000);
	kick(RX);
	cr_assert_eq(used_idx(RX), 3, "the kick reads what waited");
	for (unsigned i = 0; i < 3; i++)
		cr_assert(
		    filled(at(BUF + i * 0x1000u + NET_HDR_LEN, 100), 100, (uint8_t)(30 + i), 0));
	cr_assert_eq(stats().rx_packets, 3);
}

/* An interface with mtu 9000 and no guest GSO: the device waits for room
 * for a frame that long (with its header and a VLAN tag) before it reads,
 * as it waits for 1530 bytes without an mtu; it read into less and dropped
 * a jumbo frame the guest's next buffers would have taken. */
Test(net_dev, rx_waits_for_room_for_the_mtu)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	struct net_params p = {.id = "net0", .mac = mac, .loop = loop, .mtu = 9000};

	open_with(mrg, &p);
	offer_rx(BUF, 4096);
	offer_rx(BUF + 0x1000, 4096);
	peer_send(&h, 9014, 7);
	kick(RX);
	run(NULL, 50);
	cr_assert_eq(used_idx(RX), 0, "read into 8 KiB");
	cr_assert_eq(stats().rx_no_buffers, 1);
	offer_rx(BUF + 0x2000, 4096);
	kick(RX);
	run_rx_until(3);
	cr_assert_eq(le16toh(((struct virtio_net_hdr_v1 *)at(BUF, 12))->num_buffers), 3);
	cr_assert(filled(at(BUF + NET_HDR_LEN, 4096 - NET_HDR_LEN), 4096 - NET_HDR_LEN, 7, 0));
	cr_assert_eq(stats().rx_dropped, 0);
	cr_assert_eq(stats().rx_packets, 1);
}

/* A packet exactly as large as the chain is delivered whole; one byte more
 * and it is dropped, not delivered cut short, and the chain takes the next
 * packet. */
Test(net_dev, rx_packet_larger_than_the_buffers_is_dropped)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	struct sg c = {BUF, NET_HDR_LEN + 1514, true};
	struct sg c2 = {BUF + 0x1000, NET_HDR_LEN + 1514, true};

	open_dev(F(VIRTIO_NET_F_GUEST_CSUM));
	offer(RX, &c, 1);
	peer_send(&h, 1514, 3);
	peer_send(&h, 1515, 4);
	peer_send(&h, 60, 5);
	kick(RX);
	run_rx_until(1);
	cr_assert_eq(used_elem(RX, 0).len, NET_HDR_LEN + 1514);
	offer(RX, &c2, 1);
	kick(RX);
	run_rx_until(2);
	cr_assert_eq(used_elem(RX, 1).len, NET_HDR_LEN + 60);
	cr_assert(filled(at(BUF + 0x1000 + NET_HDR_LEN, 60), 60, 5, 0));
	cr_assert_eq(stats().rx_dropped, 1);
	cr_assert_eq(stats().rx_packets, 2);
}

Test(net_dev, rx_chains_no_packet_can_use_are_given_back)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	struct sg readable[] = {{BUF, 100, false}, {BUF + 0x100, 2000, true}};
	uint16_t bad1, bad2, good;

	open_dev(F(VIRTIO_NET_F_GUEST_CSUM));
	bad1 = offer(RX, readable, 2);
	bad2 = offer_rx(BUF + 0x1000, NET_HDR_LEN - 1);
	good = offer_rx(BUF + 0x2000, 2000);
	peer_send(&h, 60, 1);
	kick(RX);
	run_rx_until(3);
	cr_assert_eq(used_elem(RX, 0).id, bad1);
	cr_assert_eq(used_elem(RX, 0).len, 0);
	cr_assert_eq(used_elem(RX, 1).id, bad2);
	cr_assert_eq(used_elem(RX, 2).id, good);
	cr_assert_eq(used_elem(RX, 2).len, NET_HDR_LEN + 60);
	cr_assert_eq(stats().rx_bad_buffers, 2);
	cr_assert_eq(resets, 0);
}

/* A guest offering RX chains no packet can use as fast as they are given
 * back held the device's thread and lock for as long as it kept on: no
 * more than VIRTIO_BUDGET per notification, then the queue is notified
 * again, and a good chain after them still gets the packet. */
Test(net_dev, rx_notification_takes_at_most_the_budget)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);

	open_dev(F(VIRTIO_NET_F_GUEST_CSUM));
	for (unsigned i = 0; i < 256; i++)
		offer_rx(BUF, NET_HDR_LEN - 1);
	peer_send(&h, 60, 1);
	kick(RX);
	cr_assert_eq(stats().rx_bad_buffers, VIRTIO_BUDGET);
	cr_assert_eq(again_calls[RX], 1);
	offer_rx(BUF + 0x1000, 2000);
	kick(RX);
	run_rx_until(VIRTIO_BUDGET + 1);
	cr_assert_eq(used_elem(RX, VIRTIO_BUDGET).len, NET_HDR_LEN + 60);
	cr_assert_eq(stats().rx_packets, 1);
	cr_assert_eq(resets, 0);
}

Test(net_dev, rx_broken_ring_needs_reset)
{
	open_dev(mrg);
	offer_rx(RAM - 8, 2000);
	kick(RX);
	cr_assert_eq(resets, 1);
	cr_assert_eq(used_idx(RX), 0);
}

/* Writes queued at a reset finish into nothing: no used entries for the
 * old generation, and the new one works meanwhile. RX reads happen at once
 * under the device's lock, so none is left to a reset. */
Test(net_dev, reset_with_io_pending)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	uint8_t got[256];
	unsigned sent = 0;
	uint16_t head;
	struct net_stats s;

	open_dev(mrg);
	offer_tx(BUF, &h, 60, 1);
	offer_tx(BUF + 0x1000, &h, 60, 2);
	kick(TX); /* two writes queued, not yet run */
	for (unsigned i = 0; i < 2; i++)
		offer_rx(BUF + 0x10000 + i * 0x1000u, 1000);
	peer_send(&h, 100, 3);
	kick(RX); /* read and delivered here */
	cr_assert_eq(used_idx(RX), 1);
	net_ops.reset(n);
	ring_start(RX, 256); /* what the transport does after ops->reset */
	ring_start(TX, 256);
	cr_assert_eq(net_ops.activate(n, mrg, vqs, &host), 0);
	head = offer_tx(BUF + 0x2000, &h, 60, 4);
	kick(TX); /* nothing in flight for this generation: popped and queued */
	run_tx_until(1);
	cr_assert_eq(used_elem(TX, 0).id, head);
	cr_assert_eq(used_idx(RX), 0);
	/* The old writes were under way already; the new one follows them. */
	while (peer_recv(got, sizeof(got)) > 0)
		sent++;
	cr_assert_eq(sent, 3);
	s = stats();
	cr_assert_eq(s.stale_completions, 2, "the two writes");
	cr_assert_eq(s.rx_packets, 1);
	/* RX works in the new generation. */
	offer_rx(BUF + 0x20000, 2000);
	peer_send(&h, 50, 5);
	kick(RX);
	run_rx_until(1);
	cr_assert(filled(at(BUF + 0x20000 + NET_HDR_LEN, 50), 50, 5, 0));
}

/* The guest's old RX buffers, as the test filled them before a reset. */
#define OLD_RX	   BUF
#define OLD_RX_LEN 0x2000

static uint8_t old_rx[OLD_RX_LEN];

/* Two buffers posted and the tap empty: the device is waiting for a
 * packet, with the buffers popped. */
static void rx_waiting_on_an_empty_tap(void)
{
	open_dev(mrg);
	memset(at(OLD_RX, OLD_RX_LEN), 0xee, OLD_RX_LEN);
	memcpy(old_rx, at(OLD_RX, OLD_RX_LEN), OLD_RX_LEN);
	offer_rx(OLD_RX, 1000);
	offer_rx(OLD_RX + 0x1000, 1000);
	kick(RX);
	cr_assert_eq(used_idx(RX), 0);
}

/* After the reset nothing of the old generation moved, and a new one takes
 * the packet sent meanwhile. */
static void rx_after_reset_goes_to_the_new_buffers(uint8_t seed)
{
	cr_assert_eq(memcmp(at(OLD_RX, OLD_RX_LEN), old_rx, OLD_RX_LEN), 0,
		     "a packet landed in a buffer of the old generation");
	cr_assert_eq(used_idx(RX), 0);
	cr_assert_eq(stats().rx_packets, 0);
	ring_start(RX, 256);
	ring_start(TX, 256);
	cr_assert_eq(net_ops.activate(n, mrg, vqs, &host), 0);
	offer_rx(BUF + 0x8000, 2000);
	kick(RX);
	run_rx_until(1);
	cr_assert_eq(used_elem(RX, 0).len, NET_HDR_LEN + 100);
	cr_assert(filled(at(BUF + 0x8000 + NET_HDR_LEN, 100), 100, seed, 0));
	cr_assert_eq(memcmp(at(OLD_RX, OLD_RX_LEN), old_rx, OLD_RX_LEN), 0);
	cr_assert_eq(stats().rx_packets, 1);
}

/* The reset comes before the event loop has run at all since the device
 * started waiting, and the packet right after it: when the loop runs, no
 * byte of it reaches the old buffers (virtio.h: once reset returns, the
 * device touches no buffer). */
Test(net_dev, reset_then_a_packet_leaves_the_old_buffers_alone)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);

	rx_waiting_on_an_empty_tap();
	net_ops.reset(n);
	peer_send(&h, 100, 42);
	for (unsigned i = 0; i < 3; i++)
		run(NULL, 20);
	rx_after_reset_goes_to_the_new_buffers(42);
}

/* The same with the loop running and waiting on the tap when a vCPU
 * thread resets the device. */
static void *reset_meanwhile(void *arg)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);

	(void)arg;
	usleep(20000);	  /* the loop is waiting in the kernel */
	net_ops.reset(n); /* as a vCPU thread would */
	peer_send(&h, 100, 43);
	usleep(20000);
	evloop_stop(loop);
	return NULL;
}

Test(net_dev, reset_while_the_loop_waits_leaves_the_old_buffers_alone)
{
	pthread_t t;

	rx_waiting_on_an_empty_tap();
	cr_assert_eq(pthread_create(&t, NULL, reset_meanwhile, NULL), 0);
	cr_assert_eq(evloop_run(loop), 0);
	pthread_join(t, NULL);
	rx_after_reset_goes_to_the_new_buffers(43);
}

/* A tap with no room (here: a socket with a small send buffer nobody reads
 * yet): io_uring waits for room itself, and every packet gets out. */
static atomic_uint drained;
static atomic_uint used_when_draining;

static void *drain_peer(void *arg)
{
	static uint8_t buf[4096];
	unsigned want = *(unsigned *)arg;
	struct pollfd p = {.fd = peer, .events = POLLIN};

	usleep(20000); /* let the device fill the socket first */
	atomic_store(&used_when_draining, used_idx(TX));
	while (atomic_load(&drained) < want && poll(&p, 1, 2000) > 0)
		while (read(peer, buf, sizeof(buf)) > 0)
			atomic_fetch_add(&drained, 1);
	return NULL;
}

Test(net_dev, tx_waits_for_room)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	int sndbuf = 4096, sv[2];
	struct net_params p = {.id = "net0", .loop = loop};
	unsigned want = 40;
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	cr_assert_eq(net_create_fd(&n, &p, sv[0]), 0);
	cr_assert_eq(net_ops.activate(n, mrg, vqs, &host), 0);
	for (unsigned i = 0; i < want; i++)
		offer_tx(BUF + i * 0x1000u, &h, 1500, (uint8_t)i);
	atomic_store(&drained, 0);
	cr_assert_eq(pthread_create(&t, NULL, drain_peer, &want), 0);
	kick(TX);
	run_tx_until((uint16_t)want);
	pthread_join(t, NULL);
	cr_assert_lt(atomic_load(&used_when_draining), want, "the socket never filled up");
	cr_assert_eq(atomic_load(&drained), want);
	cr_assert_eq(stats().tx_packets, want);
	cr_assert_eq(stats().tx_errors, 0);
}

/* A write waiting for room on a full tap when a vCPU thread resets the
 * device. Once the reset returns the device reads no guest memory
 * (virtio.h), so the test takes all of guest RAM away (PROT_NONE) right
 * after it, then makes room: a late read of the packet from guest memory
 * would fail with -EFAULT (the kernel's copy) or crash the test (the
 * device's own). The packet as the guest queued it still reaches the tap. */
static struct {
	uint16_t used; /* TX used index then */
	ssize_t len;   /* what the tap then gave the peer, -1 for nothing */
	uint8_t pkt[NET_HDR_LEN + 2000];
} late;

static void *reset_then_make_room(void *arg)
{
	unsigned fillers = *(unsigned *)arg;
	struct pollfd pf = {.fd = peer, .events = POLLIN};
	static uint8_t buf[256];

	usleep(20000); /* the loop tried the write, which waits for room */
	late.used = used_idx(TX);
	net_ops.reset(n); /* as a vCPU thread would */
	if (mprotect(at(0, RAM), RAM, PROT_NONE) == 0) {
		for (unsigned i = 0; i < fillers; i++)
			if (read(peer, buf, sizeof(buf)) < 0)
				break;
		late.len = -1;
		if (poll(&pf, 1, 1000) == 1)
			late.len = read(peer, late.pkt, sizeof(late.pkt));
	}
	evloop_stop(loop);
	return NULL;
}

Test(net_dev, tx_write_waiting_at_reset_reads_no_guest_memory)
{
	struct virtio_net_hdr_v1 h = hdr(CSUM, 0, 0, 34, 16, 0);
	uint8_t filler[NET_HDR_LEN + 100] = {0};
	struct net_params p = {.id = "net0", .loop = loop};
	int sndbuf = 4096, sv[2];
	unsigned fillers = 0;
	struct net_stats s;
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	while (write(sv[0], filler, sizeof(filler)) == (ssize_t)sizeof(filler))
		fillers++;
	cr_assert_eq(errno, EAGAIN, "the tap is full");
	cr_assert_eq(net_create_fd(&n, &p, sv[0]), 0);
	cr_assert_eq(net_ops.activate(n, full, vqs, &host), 0);
	offer_tx(BUF, &h, 1500, 9);
	kick(TX);
	memset(&late, 0, sizeof(late));
	late.len = -2;
	cr_assert_eq(pthread_create(&t, NULL, reset_then_make_room, &fillers), 0);
	cr_assert_eq(evloop_run(loop), 0);
	pthread_join(t, NULL);
	cr_assert_eq(mprotect(at(0, RAM), RAM, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(late.used, 0, "the write did not wait for room");
	cr_assert_neq(late.len, -2, "mprotect failed");
	cr_assert_eq(late.len, (ssize_t)(NET_HDR_LEN + 1500),
		     "the tap got %zd bytes: the write read guest memory after the reset",
		     late.len);
	cr_assert_eq(memcmp(late.pkt, &h, NET_HDR_LEN), 0);
	cr_assert(filled(late.pkt + NET_HDR_LEN, 1500, 9, 0));
	s = stats();
	cr_assert_eq(s.stale_completions, 1);
	cr_assert_eq(s.tx_errors, 0);
	cr_assert_eq(used_idx(TX), 0, "no used entry for the old generation");
}

/* ---- a real tap (root with /dev/net/tun; skipped elsewhere) ------------- */

static char tap_name[IFNAMSIZ];

/* A persistent tap of our own, or a skip. */
static void tap_setup(void)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	tap_name[0] = 0;
	if (fd < 0)
		cr_skip_test("no /dev/net/tun: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "flntut%%d");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		int e = errno;
		close(fd);
		cr_skip_test("cannot create a tap: %s", strerror(e));
	}
	memcpy(tap_name, ifr.ifr_name, IFNAMSIZ);
	close(fd);
	dev_setup();
}

static void tap_teardown(void)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
	int fd;

	if (!tap_name[0])
		return;
	dev_teardown(); /* closes the device's fd on the tap */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	memcpy(ifr.ifr_name, tap_name, IFNAMSIZ);
	if (fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0)
		cr_assert_eq(ioctl(fd, TUNSETPERSIST, 0), 0);
	close_fd(&fd);
}

TestSuite(net_tap, .init = tap_setup, .fini = tap_teardown, .timeout = 10);

Test(net_tap, open_errors_name_the_problem)
{
	int fd, fd2;

	cr_assert_eq(tap_open("flint-none0", &fd), -ENODEV);
	cr_assert_eq(fd, -1);
	cr_assert_eq(tap_open("a-name-of-sixteen", &fd), -EINVAL);
	cr_assert_eq(tap_open("", &fd), -EINVAL);
	cr_assert_eq(tap_open("lo", &fd), -EINVAL, "not a tap");
	cr_assert_eq(tap_open(tap_name, &fd), 0);
	cr_assert_eq(tap_open(tap_name, &fd2), -EBUSY);
	cr_assert_eq(fd2, -1);
	close_fd(&fd);
}

Test(net_tap, opened_with_a_12_byte_vnet_header)
{
	struct ifreq ifr;
	int fd, sz = 0;

	cr_assert_eq(tap_open(tap_name, &fd), 0);
	cr_assert(tap_is_tap(fd));
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	memset(&ifr, 0, sizeof(ifr));
	cr_assert_eq(ioctl(fd, TUNGETIFF, &ifr), 0);
	cr_assert_eq(ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
		     IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
	cr_assert_eq(ioctl(fd, TUNGETVNETHDRSZ, &sz), 0);
	cr_assert_eq(sz, 12);
	cr_assert_eq(tap_set_offloads(fd, tap_offloads(full)), 0);
	cr_assert_eq(tap_set_offloads(fd, TUN_F_TSO4), -EINVAL, "tun wants CSUM with TSO");
	cr_assert_eq(tap_set_offloads(fd, 0), 0);
	close_fd(&fd);
	cr_assert_not(tap_is_tap(STDIN_FILENO));
}

/* Up, IPv6 off (no stray router solicitations), an MTU that lets a frame
 * be larger than a guest's plain buffer; a packet socket on it. */
static int tap_up(void)
{
	struct ifreq ifr;
	char path[96];
	int s, ps, idx = (int)if_nametoindex(tap_name);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", tap_name);
	if ((f = fopen(path, "w"))) {
		fputs("1", f);
		fclose(f);
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, tap_name, IFNAMSIZ);
	ifr.ifr_mtu = 9000;
	cr_assert_eq(ioctl(s, SIOCSIFMTU, &ifr), 0);
	cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
	ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(0x88b5));
	cr_assert_geq(ps, 0);
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET, .sll_protocol = htons(0x88b5), .sll_ifindex = idx};
	cr_assert_eq(bind(ps, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return ps;
}

/* An Ethernet frame of len bytes, ethertype 0x88b5 (local experimental). */
static void frame(uint8_t *f, uint32_t len, uint8_t seed)
{
	fill(f, len, seed);
	memcpy(f, "\x06\x00\xac\x10\x00\x02\x06\x00\xac\x10\x00\x01\x88\xb5", 14);
}

/* Through the real tap: host frames reach the guest behind a 12-byte
 * header with num_buffers set; one larger than the guest's buffer is
 * dropped whole; guest frames reach the host. */
Test(net_tap, packets_both_ways)
{
	struct net_params p = {.tap = tap_name, .id = "net0"};
	static uint8_t f[3000];
	uint8_t got[256];
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	int ps;

	p.loop = loop;
	int r = net_create(&n, &p);
	cr_assert_eq(r, 0, "net_create: %s", strerror(-r));
	cr_assert_eq(net_ops.activate(n, F(VIRTIO_NET_F_GUEST_CSUM), vqs, &host), 0);
	ps = tap_up();
	offer_rx(BUF, NET_HDR_LEN + 1514);
	offer_rx(BUF + 0x1000, NET_HDR_LEN + 1514);
	frame(f, 100, 1);
	cr_assert_eq(write(ps, f, 100), 100);
	frame(f, 3000, 2);
	cr_assert_eq(write(ps, f, 3000), 3000);
	frame(f, 200, 3);
	cr_assert_eq(write(ps, f, 200), 200);
	kick(RX);
	run_rx_until(2);
	cr_assert_eq(used_elem(RX, 0).len, NET_HDR_LEN + 100);
	cr_assert_eq(le16toh(((struct virtio_net_hdr_v1 *)at(BUF, 12))->num_buffers), 1);
	cr_assert(filled(at(BUF + NET_HDR_LEN + 14, 86), 86, 1, 14));
	cr_assert_eq(used_elem(RX, 1).len, NET_HDR_LEN + 200, "len %u", used_elem(RX, 1).len);
	cr_assert(filled(at(BUF + 0x1000 + NET_HDR_LEN + 14, 186), 186, 3, 14));
	cr_assert_eq(stats().rx_dropped, 1);
	cr_assert_eq(stats().rx_packets, 2);

	frame(f, 150, 4);
	memcpy(at(BUF + 0x2000, NET_HDR_LEN), &h, NET_HDR_LEN);
	memcpy(at(BUF + 0x2100, 150), f, 150);
	struct sg s[] = {{BUF + 0x2000, NET_HDR_LEN, false}, {BUF + 0x2100, 150, false}};
	offer(TX, s, 2);
	kick(TX);
	run_tx_until(1);
	struct pollfd pf = {.fd = ps, .events = POLLIN};
	cr_assert_eq(poll(&pf, 1, 1000), 1);
	cr_assert_eq(read(ps, got, sizeof(got)), 150);
	cr_assert(filled(got + 14, 136, 4, 14));
	cr_assert_eq(stats().tx_packets, 1);
	close(ps);
}

/* ---- rate limiters -------------------------------------------------------- */

static void open_limited(uint64_t features, const struct ratelimit_cfg *rx,
			 const struct ratelimit_cfg *tx)
{
	struct net_params p = {.id = "net0", .mac = mac, .loop = loop};

	if (rx)
		p.rx_rate_limiter = *rx;
	if (tx)
		p.tx_rate_limiter = *tx;
	open_with(features, &p);
}

/* What queue probe_q's used ring held ms into the loop's run, seen from a
 * timer of the loop's own (a loop that stops cancels the device's timers). */
static struct ev_op probe_op;
static struct __kernel_timespec probe_ts;
static unsigned probe_q;
static uint16_t probe_used;

static void used_probe_done(struct ev_op *op, int res)
{
	(void)op;
	if (res == -ETIME)
		probe_used = used_idx(probe_q);
}

static void probe_at(unsigned q, unsigned ms)
{
	probe_q = q;
	probe_used = 0xffff;
	probe_ts = (struct __kernel_timespec){.tv_nsec = ms * 1000000L};
	probe_op = (struct ev_op){.done = used_probe_done};
	cr_assert_eq(evloop_timeout(loop, &probe_op, &probe_ts), 0);
}

static uint64_t ms_since(uint64_t t0)
{
	return (now_ns() - t0) / 1000000;
}

/* One TX frame per 100 ms: of two frames kicked together the second waits
 * in the device, unsent and unused, and goes when its token is there. */
Test(net_dev, tx_limiter_holds_a_frame_until_its_token)
{
	struct ratelimit_cfg tx = {.ops = {.size = 1, .refill_time_ms = 100}};
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	static uint8_t got[NET_HDR_LEN + 100];
	uint64_t t0;

	open_limited(full, NULL, &tx);
	offer_tx(BUF, &h, 60, 1);
	offer_tx(BUF + 0x1000, &h, 60, 2);
	t0 = now_ns();
	kick(TX);
	cr_assert_eq(stats().tx_rate_limiter_throttled, 1);
	probe_at(TX, 50);
	run_tx_until(2);
	cr_assert_eq(probe_used, 1, "%u TX used at 50 ms: the second frame did not wait",
		     probe_used);
	cr_assert_geq(ms_since(t0), 90);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	cr_assert(filled(got + NET_HDR_LEN, 60, 2, 0));
	cr_assert_eq(stats().tx_packets, 2);
	cr_assert_eq(stats().tx_rate_limiter_throttled, 1);
}

/* RX bandwidth of 100 bytes per 100 ms: a 100-byte frame takes the bucket,
 * the next one is read but held out of the used ring until its tokens are
 * there; the TX direction is not limited by it. */
Test(net_dev, rx_limiter_holds_a_frame_until_its_tokens)
{
	struct ratelimit_cfg rx = {.bandwidth = {.size = 100, .refill_time_ms = 100}};
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	uint64_t t0;

	open_limited(F(VIRTIO_NET_F_GUEST_CSUM), &rx, NULL);
	struct sg c1[] = {{BUF, NET_HDR_LEN, true}, {BUF + 0x100, 1514, true}};
	struct sg c2[] = {{BUF + 0x1000, NET_HDR_LEN, true}, {BUF + 0x1100, 1514, true}};
	offer(RX, c1, 2);
	offer(RX, c2, 2);
	peer_send(&h, 100, 1);
	peer_send(&h, 100, 2);
	t0 = now_ns();
	kick(RX);
	cr_assert_eq(stats().rx_rate_limiter_throttled, 1);
	probe_at(RX, 50);
	run_rx_until(2);
	cr_assert_eq(probe_used, 1, "%u RX used at 50 ms", probe_used);
	cr_assert_geq(ms_since(t0), 90);
	cr_assert_eq(used_elem(RX, 1).len, NET_HDR_LEN + 100);
	cr_assert(filled(at(BUF + 0x1100, 100), 100, 2, 0));
	cr_assert_eq(stats().rx_packets, 2);
	cr_assert_eq(stats().tx_rate_limiter_throttled, 0);
}

struct later {
	unsigned ms;
	struct ratelimit_cfg cfg;
	int ret;
};

static void *lift_tx_later(void *arg)
{
	struct later *l = arg;

	usleep(l->ms * 1000);
	l->ret = net_set_ratelimit(n, NULL, &l->cfg);
	return NULL;
}

/* The kind's snapshot holds both limiters' buckets: a TX token spent
 * before the save is spent again once restored (a reset in place), though
 * a PATCH between refilled it; a limit lifted since stays lifted. */
Test(net_dev, kind_snapshot_keeps_both_buckets)
{
	const struct ratelimit_cfg tx = {.ops = {.size = 1, .refill_time_ms = 10000}};
	const struct ratelimit_cfg rx = {.ops = {.size = 5, .refill_time_ms = 1000}}, none = {0};
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	struct ratelimit_state srx, stx;
	struct wbuf w;
	struct rbuf r;
	char err[256];

	open_limited(full, &rx, &tx);
	offer_tx(BUF, &h, 60, 1);
	kick(TX);
	run_tx_until(1);
	wbuf_init(&w);
	cr_assert_eq(net_kind.save(n, &w), 0);
	cr_assert_eq(net_set_ratelimit(n, NULL, &none), 0);
	cr_assert_eq(net_set_ratelimit(n, NULL, &tx), 0);
	net_save_limits(n, &srx, &stx);
	cr_assert_eq(stx.ops.tokens, 1, "a new limit starts full");

	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(net_kind.restore(n, &r, err, sizeof(err)), 0, "%s", err);
	net_save_limits(n, &srx, &stx);
	cr_assert_eq(stx.ops.tokens, 0);
	cr_assert_eq(srx.ops.tokens, 5);

	cr_assert_eq(net_set_ratelimit(n, &none, NULL), 0);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(net_kind.restore(n, &r, err, sizeof(err)), 0, "%s", err);
	net_save_limits(n, &srx, &stx);
	cr_assert_eq(srx.cfg.ops.size, 0, "the RX limit lifted came back");
	cr_assert_eq(stx.ops.tokens, 0);
	rbuf_init(&r, w.p, 0); /* a snapshot from before: nothing of its own */
	cr_assert_eq(net_kind.restore(n, &r, err, sizeof(err)), 0, "%s", err);
	wbuf_free(&w);
}

/* One TX frame per 10 s; another thread lifts the limit 50 ms into the
 * loop's run: the waiting frame goes at once, not in 10 s. RX keeps its
 * limit (NULL leaves it). */
Test(net_dev, tx_limit_lifted_at_runtime_from_another_thread)
{
	struct ratelimit_cfg tx = {.ops = {.size = 1, .refill_time_ms = 10000}};
	struct ratelimit_cfg rx = {.ops = {.size = 5, .refill_time_ms = 1000}}, got_rx, got_tx;
	struct later l = {.ms = 50, .cfg = {.bandwidth = {0}, .ops = {0}}, .ret = -1};
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	pthread_t th;
	uint64_t t0;

	open_limited(full, &rx, &tx);
	offer_tx(BUF, &h, 60, 1);
	offer_tx(BUF + 0x1000, &h, 60, 2);
	t0 = now_ns();
	kick(TX);
	cr_assert_eq(pthread_create(&th, NULL, lift_tx_later, &l), 0);
	probe_at(TX, 30);
	run_tx_until(2);
	pthread_join(th, NULL);
	cr_assert_eq(l.ret, 0);
	cr_assert_eq(probe_used, 1);
	cr_assert_lt(ms_since(t0), 1000);
	net_get_ratelimit(n, &got_rx, &got_tx);
	cr_assert_eq(got_rx.ops.size, 5);
	cr_assert_eq(got_tx.ops.size, 0);
	l.cfg.bandwidth.size = (uint64_t)INT64_MAX + 1;
	cr_assert_eq(net_set_ratelimit(n, &rx, &l.cfg), -EINVAL);
	rx.ops.size = 9;
	cr_assert_eq(net_set_ratelimit(n, &rx, NULL), 0);
	net_get_ratelimit(n, &got_rx, NULL);
	cr_assert_eq(got_rx.ops.size, 9);
}

/* A reset forgets the frame waiting for the TX limiter: it is never sent,
 * and its slot is free for the next generation. */
Test(net_dev, reset_forgets_a_throttled_tx_frame)
{
	struct ratelimit_cfg tx = {.ops = {.size = 1, .refill_time_ms = 10000}};
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	static uint8_t got[NET_HDR_LEN + 100];

	open_limited(full, NULL, &tx);
	offer_tx(BUF, &h, 60, 1);
	offer_tx(BUF + 0x1000, &h, 60, 2);
	kick(TX);
	run_tx_until(1);
	net_ops.reset(n);
	run(NULL, 50);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	cr_assert(filled(got + NET_HDR_LEN, 60, 1, 0));
	cr_assert_eq(peer_recv(got, sizeof(got)), -1, "the throttled frame was sent");
}

/* ---- snapshot: drain and quiesce ------------------------------------------ */

/* Chains popped and not used: what the saved queue would say the device
 * holds. */
static uint16_t unused(unsigned q)
{
	return (uint16_t)(vqs[q].last_avail - vqs[q].next_used);
}

/* RX limited to 100 bytes per 10 s: of two packets the second is read into
 * the held buffers and held back. Quiesce gives back every held chain (the
 * throttled packet is lost with them, and counted), nothing stays held, and
 * after a kick the next packet lands in the first buffer given back. */
Test(net_dev, quiesce_gives_back_held_rx_chains_and_a_throttled_packet)
{
	struct ratelimit_cfg rx = {.bandwidth = {.size = 100, .refill_time_ms = 10000}};
	struct ratelimit_cfg off = {.bandwidth = {0}, .ops = {0}};
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	uint16_t heads[5];
	unsigned before;

	open_limited(mrg, &rx, NULL);
	for (unsigned i = 0; i < 5; i++)
		heads[i] = offer_rx(BUF + i * 0x1000u, 1000);
	peer_send(&h, 100, 1);
	peer_send(&h, 100, 2);
	kick(RX);
	cr_assert_eq(used_idx(RX), 1);
	cr_assert_eq(stats().rx_rate_limiter_throttled, 1);
	cr_assert_eq(unused(RX), 4, "the rest held, the second packet in the first of them");
	before = used_calls[RX];

	net_quiesce(n);
	cr_assert_eq(unused(RX), 0, "last_avail %u, used %u", vqs[RX].last_avail,
		     vqs[RX].next_used);
	cr_assert_eq(vqs[RX].last_avail, 1);
	cr_assert_eq(used_idx(RX), 1, "nothing used by the quiesce");
	cr_assert_eq(stats().rx_dropped, 1);
	cr_assert_eq(stats().rx_packets, 1);
	cr_assert_eq(used_calls[RX], before);

	/* Works on: the next packet goes to the first buffer given back. */
	cr_assert_eq(net_set_ratelimit(n, &off, NULL), 0);
	peer_send(&h, 200, 3);
	kick(RX);
	run_rx_until(2);
	cr_assert_eq(used_elem(RX, 1).id, heads[1]);
	cr_assert_eq(used_elem(RX, 1).len, NET_HDR_LEN + 200);
	cr_assert(filled(at(BUF + 0x1000 + NET_HDR_LEN, 200), 200, 3, 0));
	cr_assert_eq(stats().rx_packets, 2);
	cr_assert_eq(unused(RX), 3);
}

/* TX limited to one frame per 10 s: the first frame's write is queued (the
 * loop is not running: it is still in flight), the second frame waits for
 * the limiter. Quiesce uses the first chain at once and gives the second
 * back; the write then completes without a second use of its chain, and
 * after a kick the second frame is taken again and sent. */
Test(net_dev, quiesce_gives_back_a_throttled_tx_frame_and_uses_writes_in_flight)
{
	struct ratelimit_cfg tx = {.ops = {.size = 1, .refill_time_ms = 10000}};
	struct ratelimit_cfg off = {.bandwidth = {0}, .ops = {0}};
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	static uint8_t got[NET_HDR_LEN + 100];
	uint16_t a, b;

	open_limited(full, NULL, &tx);
	a = offer_tx(BUF, &h, 60, 1);
	b = offer_tx(BUF + 0x1000, &h, 60, 2);
	kick(TX);
	cr_assert_eq(stats().tx_rate_limiter_throttled, 1);
	cr_assert_eq(used_idx(TX), 0);
	cr_assert_eq(unused(TX), 2);

	net_quiesce(n);
	cr_assert_eq(unused(TX), 0);
	cr_assert_eq(vqs[TX].last_avail, 1, "the throttled frame's chain offered again");
	cr_assert_eq(used_idx(TX), 1);
	cr_assert_eq(used_elem(TX, 0).id, a, "the chain of the write in flight is used");
	cr_assert_eq(used_calls[TX], 1, "and the guest told");

	run(NULL, 50);
	cr_assert_eq(used_idx(TX), 1, "the write's completion used its chain again");
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	cr_assert(filled(got + NET_HDR_LEN, 60, 1, 0));
	cr_assert_eq(peer_recv(got, sizeof(got)), -1, "the throttled frame was sent");

	cr_assert_eq(net_set_ratelimit(n, NULL, &off), 0);
	kick(TX);
	run_tx_until(2);
	cr_assert_eq(used_elem(TX, 1).id, b);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	cr_assert(filled(got + NET_HDR_LEN, 60, 2, 0));
	cr_assert_eq(stats().tx_packets, 2);
	cr_assert_eq(unused(TX), 0);
}

/* A hostile guest offers an RX chain no packet can use between two good
 * ones: it is used at once, so the held chains are not the last popped and
 * rewinding the avail index would offer the used one again. Quiesce uses
 * the held ones empty instead. */
Test(net_dev, quiesce_uses_held_rx_chains_it_cannot_give_back)
{
	struct sg bad = {BUF + 0x1000, 1000, false};
	uint16_t a, b, c;

	open_dev(mrg);
	a = offer_rx(BUF, 1000);
	b = offer(RX, &bad, 1);
	c = offer_rx(BUF + 0x2000, 1000);
	kick(RX); /* the tap is empty: a and c held, b used */
	cr_assert_eq(used_idx(RX), 1);
	cr_assert_eq(used_elem(RX, 0).id, b);
	cr_assert_eq(unused(RX), 2);

	net_quiesce(n);
	cr_assert_eq(vqs[RX].last_avail, 3, "b would be offered again");
	cr_assert_eq(unused(RX), 0);
	cr_assert_eq(used_idx(RX), 3);
	cr_assert_eq(used_elem(RX, 1).id, a);
	cr_assert_eq(used_elem(RX, 1).len, 0);
	cr_assert_eq(used_elem(RX, 2).id, c);
	cr_assert_eq(used_elem(RX, 2).len, 0);
}

/* Nothing held, or no driver: quiesce changes nothing. */
Test(net_dev, quiesce_with_nothing_held_changes_nothing)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);

	open_dev(mrg);
	net_quiesce(n);
	cr_assert_eq(vqs[RX].last_avail, 0);
	cr_assert_eq(used_idx(RX) + used_idx(TX), 0);
	offer_rx(BUF, 2000);
	peer_send(&h, 100, 4);
	kick(RX);
	cr_assert_eq(used_idx(RX), 1);
	net_quiesce(n);
	cr_assert_eq(unused(RX), 0);
	net_ops.reset(n);
	net_quiesce(n);
	cr_assert_eq(used_idx(RX), 1);
}

static struct {
	uint64_t deadline;
	int ret;
	uint16_t used_at_return;
	char err[128];
} drain_call;

static void *drain_then_stop(void *arg)
{
	(void)arg;
	drain_call.ret = net_drain(n, drain_call.deadline, drain_call.err, sizeof(drain_call.err));
	drain_call.used_at_return = used_idx(TX);
	evloop_stop(loop);
	return NULL;
}

/* Drain waits, with the loop running, until the TX writes in flight have
 * finished and their chains are used; past its deadline it says so. */
Test(net_dev, drain_waits_for_tx_writes_in_flight)
{
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0, 0);
	static uint8_t got[NET_HDR_LEN + 100];
	pthread_t t;

	open_dev(full);
	offer_tx(BUF, &h, 60, 1);
	kick(TX); /* queued: the loop is not running */
	cr_assert_eq(
	    net_drain(n, now_ns() + 10 * 1000000ull, drain_call.err, sizeof(drain_call.err)),
	    -ETIMEDOUT);
	cr_assert_str_eq(drain_call.err, "net0: 1 packet still being written to tap (fd)");
	cr_assert_eq(used_idx(TX), 0);

	drain_call.deadline = now_ns() + 2000 * 1000000ull;
	drain_call.ret = 1;
	cr_assert_eq(pthread_create(&t, NULL, drain_then_stop, NULL), 0);
	run(NULL, 3000);
	pthread_join(t, NULL);
	cr_assert_eq(drain_call.ret, 0, "%s", drain_call.err);
	cr_assert_eq(drain_call.used_at_return, 1);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	/* Nothing in flight: at once. */
	cr_assert_eq(net_drain(n, 0, drain_call.err, sizeof(drain_call.err)), 0);
}

/* ---- the detour (MMDS's way in and out) ------------------------------------ */

static struct {
	unsigned taken, destroyed, resets, asked;
	bool owed;	 /* an answer to give */
	bool stuck;	 /* owed() says due now, for ever */
	uint64_t due_at; /* now_ns() from which an answer is owed by itself; 0: none */
} dt;

/* Takes frames whose first byte is 0xee and answers each with a 70-byte
 * frame of seed 9. */
static bool dt_take(void *ctx, const uint8_t *frame, size_t len)
{
	(void)ctx;
	if (!len || frame[0] != 0xee)
		return false;
	dt.taken++;
	dt.owed = true;
	return true;
}

static bool dt_owed(void *ctx, uint64_t *due)
{
	(void)ctx;
	dt.asked++;
	*due = dt.due_at;
	if (dt.stuck)
		return true;
	if (dt.due_at && now_ns() >= dt.due_at) {
		dt.due_at = 0;
		dt.owed = true;
	}
	return dt.owed;
}

static void dt_reset(void *ctx)
{
	(void)ctx;
	dt.resets++;
	dt.owed = false;
}

static size_t dt_give(void *ctx, uint8_t *buf, size_t cap)
{
	(void)ctx;
	if (!dt.owed || cap < 70)
		return 0;
	dt.owed = false;
	fill(buf, 70, 9);
	return 70;
}

static void dt_destroy(void *ctx)
{
	(void)ctx;
	dt.destroyed++;
}

/* The device with the detour, limiters as given (NULL: none). */
static void open_detour(uint64_t features, const struct ratelimit_cfg *tx)
{
	struct net_params p = {.id = "net0",
			       .mac = mac,
			       .loop = loop,
			       .detour = {.take = dt_take,
					  .owed = dt_owed,
					  .give = dt_give,
					  .reset = dt_reset,
					  .destroy = dt_destroy}};

	memset(&dt, 0, sizeof(dt));
	if (tx)
		p.tx_rate_limiter = *tx;
	open_with(features, &p);
}

/* A frame for the detour never reaches the tap; its answer reaches the
 * guest ahead of what the tap holds, behind a zeroed header; the device
 * ends the detour with itself. */
Test(net_dev, detour_takes_its_frames_and_answers_first)
{
	struct virtio_net_hdr_v1 plain = hdr(0, 0, 0, 0, 0, 0);
	static uint8_t got[NET_HDR_LEN + 200];
	struct net_stats s;

	open_detour(mrg, NULL);
	peer_send(&plain, 60, 1); /* waiting in the tap */
	offer_rx(BUF + 0x8000, 2048);
	offer_rx(BUF + 0x9000, 2048);
	offer_tx(BUF, &plain, 60, 0xee);
	offer_tx(BUF + 0x2000, &plain, 60, 2);
	kick(TX);
	run_tx_until(2);
	run_rx_until(2);
	cr_assert_eq(dt.taken, 1);
	cr_assert_eq(peer_recv(got, sizeof(got)), NET_HDR_LEN + 60, "the other frame went on");
	cr_assert(filled(got + NET_HDR_LEN, 60, 2, 0));
	cr_assert_eq(peer_recv(got, sizeof(got)), -1, "and only it");
	cr_assert_eq(used_elem(RX, 0).len, NET_HDR_LEN + 70, "the detour's answer first");
	cr_assert(filled(at(BUF + 0x8000 + NET_HDR_LEN, 70), 70, 9, 0));
	cr_assert_eq(((struct virtio_net_hdr_v1 *)at(BUF + 0x8000, NET_HDR_LEN))->flags, 0);
	cr_assert_eq(used_elem(RX, 1).len, NET_HDR_LEN + 60, "then the tap's");
	cr_assert(filled(at(BUF + 0x9000 + NET_HDR_LEN, 60), 60, 1, 0));
	s = stats();
	cr_assert_eq(s.tx_detoured, 1);
	cr_assert_eq(s.tx_packets, 1, "the backend's only");
	cr_assert_eq(s.rx_packets, 2);
	net_destroy(n);
	n = NULL;
	cr_assert_eq(dt.destroyed, 1);
}

/* The detour's frames pass no TX limiter: with the limiter's one token
 * gone, they are taken at once, and the backend's frame waits. */
Test(net_dev, detour_frames_pass_the_tx_limiter)
{
	struct ratelimit_cfg tx = {.ops = {.size = 1, .refill_time_ms = 100000}};
	struct virtio_net_hdr_v1 plain = hdr(0, 0, 0, 0, 0, 0);

	open_detour(mrg, &tx);
	offer_tx(BUF, &plain, 60, 2);	       /* takes the token */
	offer_tx(BUF + 0x1000, &plain, 60, 3); /* waits */
	offer_tx(BUF + 0x2000, &plain, 60, 0xee);
	kick(TX);
	cr_assert_eq(stats().tx_rate_limiter_throttled, 1, "the second frame waits for a token");
	cr_assert_eq(dt.taken, 0, "behind it, in order");
	run_tx_until(1);
	net_ops.reset(n);
	cr_assert_eq(dt.resets, 1, "a reset reaches the detour");
	ring_start(TX, 256);
	cr_assert_eq(net_ops.activate(n, mrg, vqs, &host), 0);
	offer_tx(BUF + 0x2000, &plain, 60, 0xee);
	offer_tx(BUF + 0x3000, &plain, 60, 0xee);
	kick(TX);
	cr_assert_eq(used_idx(TX), 2, "both the detour's, at once, no token needed");
	cr_assert_eq(dt.taken, 2);
	cr_assert_eq(stats().tx_detoured, 2);
}

/* A frame the detour will have by itself (a retransmission) reaches the
 * guest with no kick and no traffic: the device's timer asks for it. */
Test(net_dev, detour_timer_asks_again_on_an_idle_link)
{
	uint64_t t0 = now_ns();

	open_detour(mrg, NULL);
	dt.due_at = t0 + 50 * 1000000ull;
	offer_rx(BUF + 0x8000, 2048);
	kick(RX);
	cr_assert_eq(used_idx(RX), 0, "nothing owed yet");
	run_rx_until(1);
	cr_assert_geq(ms_since(t0), 45);
	cr_assert_eq(used_elem(RX, 0).len, NET_HDR_LEN + 70);
}

/* A frame due already that cannot go (the guest has given no RX buffers)
 * does not spin the event loop on a timer that goes off at once: it waits
 * for the guest's kick. */
Test(net_dev, detour_frame_due_without_buffers_waits_for_the_kick)
{
	open_detour(mrg, NULL);
	dt.stuck = true;
	dt.due_at = now_ns() - 1;
	kick(RX);
	loop_run_for(loop, 100);
	cr_assert_leq(dt.asked, 3, "asked %u times in 100 ms", dt.asked);
}
