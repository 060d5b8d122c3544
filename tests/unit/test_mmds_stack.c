/* The MMDS endpoint's ARP and TCP, frame by frame: the tests play the
 * guest's network stack, and a fake serve function answers a request once
 * it holds a blank line. Every frame given is checked for its checksums. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/ethernet.h>
#include <netinet/if_ether.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "mmds/stack.h"

#define GUEST_PORT 40000
#define SEC	   1000000000ull

static const uint8_t guest_mac[6] = {0x02, 0, 0, 0, 0, 0x10};
static const uint8_t mmds_mac[6] = MMDS_STACK_MAC;
static uint32_t mmds_ip, guest_ip;
static struct mmds_stack *st;
static struct mmds_stack_stats ss;
static unsigned served;
static size_t reply_size = 5;
static bool reply_close;

/* Answers each request ending in a blank line with reply_size bytes of
 * 'x' ("HELLO" when reply_size is 5). */
static int fake_serve(void *ctx, const uint8_t *req, size_t len, bool full, struct mmds_reply *r)
{
	const uint8_t *end = memmem(req, len, "\r\n\r\n", 4);

	(void)ctx;
	if (!end)
		return full ? -EMSGSIZE : 0;
	served++;
	r->len = reply_size;
	r->data = malloc(reply_size);
	if (reply_size == 5)
		memcpy(r->data, "HELLO", 5);
	else
		memset(r->data, 'x', reply_size);
	r->close = reply_close;
	return (int)(end + 4 - req);
}

static void setup(void)
{
	struct mmds_stack_params p = {.serve = fake_serve, .stats = &ss};

	inet_pton(AF_INET, "169.254.169.254", &mmds_ip);
	inet_pton(AF_INET, "10.0.0.2", &guest_ip);
	p.ipv4 = mmds_ip;
	memset(&ss, 0, sizeof(ss));
	served = 0;
	reply_size = 5;
	reply_close = false;
	cr_assert_eq(mmds_stack_create(&st, &p), 0);
}

static void teardown(void)
{
	mmds_stack_destroy(st);
}

TestSuite(mmds_stack, .init = setup, .fini = teardown);

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t folded(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static size_t tcp_frame(uint8_t *f, uint32_t dst, uint16_t dport, uint8_t flags, uint32_t seq,
			uint32_t ack, uint16_t win, const void *data, size_t n)
{
	struct ether_header eh;
	struct iphdr ip = {.version = 4,
			   .ihl = 5,
			   .tot_len = htons((uint16_t)(40 + n)),
			   .ttl = 64,
			   .protocol = IPPROTO_TCP,
			   .saddr = guest_ip,
			   .daddr = dst};
	struct tcphdr t = {.th_sport = htons(GUEST_PORT),
			   .th_dport = htons(dport),
			   .th_seq = htonl(seq),
			   .th_ack = htonl(ack),
			   .th_off = 5,
			   .th_flags = flags,
			   .th_win = htons(win)};

	memcpy(eh.ether_dhost, mmds_mac, 6);
	memcpy(eh.ether_shost, guest_mac, 6);
	eh.ether_type = htons(ETHERTYPE_IP);
	memcpy(f, &eh, 14);
	memcpy(f + 14, &ip, 20);
	memcpy(f + 34, &t, 20);
	if (n)
		memcpy(f + 54, data, n);
	return 54 + n;
}

static bool send_tcp(uint8_t flags, uint32_t seq, uint32_t ack, const char *data)
{
	uint8_t f[2048];
	size_t n = data ? strlen(data) : 0;

	return mmds_stack_take(st, f, tcp_frame(f, mmds_ip, 80, flags, seq, ack, 65535, data, n),
			       0);
}

struct seg {
	uint8_t flags;
	uint32_t seq, ack;
	uint16_t win, dport;
	const uint8_t *data;
	size_t len;
	uint16_t mss; /* a SYN's option; 0: none */
	uint8_t buf[2048];
};

/* The next frame, which must be TCP to the guest with good checksums. */
static bool give_tcp(struct seg *s, size_t cap, uint64_t now)
{
	struct iphdr ip;
	struct tcphdr t;
	size_t n = mmds_stack_give(st, s->buf, cap, now), hl, tl;
	uint32_t sum;

	if (!n)
		return false;
	cr_assert_leq(n, cap);
	cr_assert_geq(n, 54);
	cr_assert_eq(memcmp(s->buf, guest_mac, 6), 0);
	cr_assert_eq(memcmp(s->buf + 6, mmds_mac, 6), 0);
	memcpy(&ip, s->buf + 14, 20);
	cr_assert_eq(ip.protocol, IPPROTO_TCP);
	cr_assert_eq(ip.saddr, mmds_ip);
	cr_assert_eq(ip.daddr, guest_ip);
	cr_assert_eq(ntohs(ip.tot_len), n - 14);
	cr_assert_eq(folded(sum16(0, s->buf + 14, 20)), 0xffff, "IP checksum");
	tl = n - 34;
	sum = sum16(0, s->buf + 26, 8) + IPPROTO_TCP + (uint32_t)tl;
	cr_assert_eq(folded(sum16(sum, s->buf + 34, tl)), 0xffff, "TCP checksum");
	memcpy(&t, s->buf + 34, 20);
	cr_assert_eq(ntohs(t.th_sport), 80);
	hl = (size_t)t.th_off * 4;
	s->flags = t.th_flags;
	s->seq = ntohl(t.th_seq);
	s->ack = ntohl(t.th_ack);
	s->win = ntohs(t.th_win);
	s->dport = ntohs(t.th_dport);
	s->mss =
	    hl == 24 && s->buf[54] == TCPOPT_MAXSEG ? (uint16_t)(s->buf[56] << 8 | s->buf[57]) : 0;
	s->data = s->buf + 34 + hl;
	s->len = tl - hl;
	return true;
}

/* SYN, SYN-ACK, ACK: returns our ISS + 1. */
static uint32_t open_conn(uint32_t guest_iss)
{
	struct seg s;

	cr_assert(send_tcp(TH_SYN, guest_iss, 0, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_SYN | TH_ACK);
	cr_assert_eq(s.dport, GUEST_PORT);
	cr_assert_eq(s.ack, guest_iss + 1);
	cr_assert_eq(s.mss, MMDS_STACK_MSS);
	cr_assert_not(give_tcp(&s, 2048, 0), "nothing more until the ACK");
	cr_assert(send_tcp(TH_ACK, guest_iss + 1, s.seq + 1, NULL));
	cr_assert_not(give_tcp(&s, 2048, 0), "a bare ACK needs no answer");
	return s.seq + 1;
}

Test(mmds_stack, answers_arp_for_its_address_only)
{
	uint8_t f[64] = {0}, out[128];
	struct ether_header eh;
	struct ether_arp a = {.ea_hdr = {.ar_hrd = htons(ARPHRD_ETHER),
					 .ar_pro = htons(ETHERTYPE_IP),
					 .ar_hln = 6,
					 .ar_pln = 4,
					 .ar_op = htons(ARPOP_REQUEST)}};
	uint32_t other;
	size_t n;

	memset(eh.ether_dhost, 0xff, 6);
	memcpy(eh.ether_shost, guest_mac, 6);
	eh.ether_type = htons(ETHERTYPE_ARP);
	memcpy(a.arp_sha, guest_mac, 6);
	memcpy(a.arp_spa, &guest_ip, 4);
	inet_pton(AF_INET, "10.0.0.1", &other);
	memcpy(a.arp_tpa, &other, 4);
	memcpy(f, &eh, 14);
	memcpy(f + 14, &a, sizeof(a));
	cr_assert_not(mmds_stack_take(st, f, 42, 0), "the gateway's ARP goes on to the backend");
	memcpy(a.arp_tpa, &mmds_ip, 4);
	memcpy(f + 14, &a, sizeof(a));
	cr_assert(mmds_stack_take(st, f, 42, 0));
	n = mmds_stack_give(st, out, sizeof(out), 0);
	cr_assert_eq(n, 42);
	cr_assert_eq(memcmp(out, guest_mac, 6), 0);
	memcpy(&a, out + 14, sizeof(a));
	cr_assert_eq(ntohs(a.arp_op), ARPOP_REPLY);
	cr_assert_eq(memcmp(a.arp_sha, mmds_mac, 6), 0);
	cr_assert_eq(memcmp(a.arp_spa, &mmds_ip, 4), 0);
	cr_assert_eq(memcmp(a.arp_tpa, &guest_ip, 4), 0);
	cr_assert_eq(mmds_stack_give(st, out, sizeof(out), 0), 0);
}

Test(mmds_stack, other_traffic_goes_on_and_short_frames_are_counted)
{
	uint8_t f[128];
	uint32_t other;

	inet_pton(AF_INET, "1.1.1.1", &other);
	cr_assert_not(
	    mmds_stack_take(st, f, tcp_frame(f, other, 80, TH_SYN, 1, 0, 1000, NULL, 0), 0));
	cr_assert_not(mmds_stack_take(st, f, 10, 0));
	cr_assert_eq(ss.rx_bad_eth, 1);
	cr_assert_eq(ss.rx_accepted, 0);
}

Test(mmds_stack, a_request_is_acknowledged_answered_and_closed_by_the_guest)
{
	struct seg s;
	uint32_t us = open_conn(1000), me = 1001;
	const char *req = "GET / HTTP/1.1\r\n\r\n";

	cr_assert(send_tcp(TH_ACK | TH_PUSH, me, us, "GET / HT"));
	me += 8;
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK);
	cr_assert_eq(s.ack, me, "the first part is acknowledged");
	cr_assert_eq(s.win, MMDS_STACK_RCV_BUF - 8);
	cr_assert_eq(served, 0);
	cr_assert(send_tcp(TH_ACK | TH_PUSH, me, us, req + 8));
	me += (uint32_t)strlen(req + 8);
	cr_assert_eq(served, 1);
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK | TH_PUSH);
	cr_assert_eq(s.seq, us);
	cr_assert_eq(s.ack, me, "the reply acknowledges the request");
	cr_assert_eq(s.len, 5);
	cr_assert_eq(memcmp(s.data, "HELLO", 5), 0);
	cr_assert_not(give_tcp(&s, 2048, 0));
	us += 5;
	/* The guest acknowledges and closes; the stack closes too. */
	cr_assert(send_tcp(TH_ACK | TH_FIN, me, us, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK | TH_FIN);
	cr_assert_eq(s.seq, us);
	cr_assert_eq(s.ack, me + 1);
	cr_assert(send_tcp(TH_ACK, me + 1, us + 1, NULL));
	cr_assert_eq(ss.connections_created, 1);
	cr_assert_eq(ss.connections_destroyed, 1);
	cr_assert_not(give_tcp(&s, 2048, 0));
}

Test(mmds_stack, a_large_reply_follows_the_window_and_mss)
{
	struct seg s;
	uint32_t us = open_conn(7), me = 8;
	uint8_t f[2048];
	size_t got = 0;

	reply_size = 5000;
	cr_assert(mmds_stack_take(
	    st, f, tcp_frame(f, mmds_ip, 80, TH_ACK, me, us, 2000, "GET / HTTP/1.1\r\n\r\n", 18),
	    0));
	me += 18;
	/* The guest's SYN named no MSS: RFC 1122's 536. */
	while (give_tcp(&s, 2048, 0)) {
		cr_assert_eq(s.seq, us + got);
		cr_assert_leq(s.len, 536);
		got += s.len;
	}
	cr_assert_eq(got, 2000, "no further than the window");
	/* A small buffer gets a small segment. */
	cr_assert(mmds_stack_take(
	    st, f, tcp_frame(f, mmds_ip, 80, TH_ACK, me, us + 2000, 65535, NULL, 0), 0));
	cr_assert(give_tcp(&s, 54 + 100, 0));
	cr_assert_eq(s.len, 100);
	cr_assert_eq(s.seq, us + 2000);
	got += 100;
	while (give_tcp(&s, 2048, 0)) {
		cr_assert_eq(s.seq, us + got);
		got += s.len;
	}
	cr_assert_eq(got, 5000);
}

Test(mmds_stack, unacknowledged_data_is_sent_again_after_the_timeout)
{
	struct seg s;
	uint32_t us = open_conn(1), me = 2;

	cr_assert(send_tcp(TH_ACK, me, us, "GET / HTTP/1.1\r\n\r\n"));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.seq, us);
	cr_assert_not(give_tcp(&s, 2048, MMDS_STACK_RTO_NS / 2));
	cr_assert(give_tcp(&s, 2048, MMDS_STACK_RTO_NS + 1));
	cr_assert_eq(s.seq, us, "the same bytes again");
	cr_assert_eq(s.len, 5);
}

Test(mmds_stack, out_of_order_data_is_not_taken)
{
	struct seg s;
	uint32_t us = open_conn(100);

	cr_assert(send_tcp(TH_ACK, 200, us, "later\r\n\r\n"));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK);
	cr_assert_eq(s.ack, 101, "still expects byte 101");
	cr_assert_eq(served, 0);
}

Test(mmds_stack, stray_segments_and_other_ports_get_a_reset)
{
	struct seg s;
	uint8_t f[128];

	cr_assert(send_tcp(TH_ACK, 5, 77, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_RST);
	cr_assert_eq(s.seq, 77);
	cr_assert(mmds_stack_take(st, f, tcp_frame(f, mmds_ip, 22, TH_SYN, 9, 0, 100, NULL, 0), 0));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_RST | TH_ACK);
	cr_assert_eq(s.ack, 10);
}

Test(mmds_stack, a_reset_from_the_guest_drops_the_connection)
{
	struct seg s;
	uint32_t us = open_conn(50);

	cr_assert(send_tcp(TH_RST, 51, us, NULL));
	cr_assert_eq(ss.connections_destroyed, 1);
	cr_assert_not(give_tcp(&s, 2048, 0));
}

Test(mmds_stack, the_stack_closes_when_the_reply_says_so)
{
	struct seg s;
	uint32_t us = open_conn(10), me = 11;

	reply_close = true;
	cr_assert(send_tcp(TH_ACK, me, us, "GET / HTTP/1.0\r\n\r\n"));
	me += 18;
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.len, 5);
	cr_assert_not(give_tcp(&s, 2048, 0), "the FIN waits for the reply's ACK");
	cr_assert(send_tcp(TH_ACK, me, us + 5, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK | TH_FIN);
	cr_assert(send_tcp(TH_ACK | TH_FIN, me, us + 6, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK);
	cr_assert_eq(s.ack, me + 1);
	cr_assert_not(give_tcp(&s, 2048, 0));
	cr_assert_eq(ss.connections_destroyed, 1);
}

Test(mmds_stack, a_request_too_large_resets_the_connection)
{
	struct seg s;
	uint32_t us = open_conn(0), me = 1;
	char big[1001];

	memset(big, 'a', 1000);
	big[1000] = 0;
	for (unsigned i = 0; i < 2; i++) {
		cr_assert(send_tcp(TH_ACK, me, us, big));
		me += 1000;
		cr_assert(give_tcp(&s, 2048, 0));
		cr_assert_eq(s.flags, TH_ACK);
		cr_assert_eq(s.win, MMDS_STACK_RCV_BUF - 1000 * (i + 1));
	}
	/* 500 more fill the buffer with no request ending in it. */
	cr_assert(send_tcp(TH_ACK, me, us, big));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_RST | TH_ACK);
	cr_assert_eq(ss.connections_destroyed, 1);
	cr_assert_not(give_tcp(&s, 2048, 0));
}

Test(mmds_stack, a_duplicate_ack_sends_the_data_again)
{
	struct seg s;
	uint32_t us = open_conn(1), me = 2;

	reply_size = 1000;
	cr_assert(send_tcp(TH_ACK, me, us, "GET / HTTP/1.1\r\n\r\n"));
	me += 18;
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.seq, us + 536);
	cr_assert_not(give_tcp(&s, 2048, 0));
	/* The guest got the second segment only. */
	cr_assert(send_tcp(TH_ACK, me, us, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.seq, us);
	cr_assert_eq(s.len, 536);
}

/* A reply the guest never acknowledges goes again after 300 ms, then
 * after twice as long each time (a paused guest takes nothing for a
 * while); after MMDS_STACK_STALL_NS without progress the connection is
 * reset, past all it sent. */
Test(mmds_stack, a_lost_reply_goes_again_ever_more_slowly_then_is_reset)
{
	struct seg s;
	uint32_t us = open_conn(1);
	uint64_t t = 0, wait = MMDS_STACK_RTO_NS;
	unsigned sent = 0;

	cr_assert(send_tcp(TH_ACK, 2, us, "GET / HTTP/1.1\r\n\r\n"));
	cr_assert(give_tcp(&s, 2048, t));
	while (t + wait < MMDS_STACK_STALL_NS) {
		cr_assert_not(give_tcp(&s, 2048, t + wait - 1), "early, at %llu ns",
			      (unsigned long long)(t + wait - 1));
		t += wait;
		cr_assert(give_tcp(&s, 2048, t));
		cr_assert_eq(s.seq, us);
		sent++;
		if (wait < MMDS_STACK_RTO_NS << 5)
			wait *= 2;
	}
	cr_assert_eq(sent, 7, "after 0.3, 0.6, 1.2, 2.4, 4.8, 9.6 and 9.6 s: at 28.5 s");
	cr_assert(give_tcp(&s, 2048, MMDS_STACK_STALL_NS));
	cr_assert_eq(s.flags, TH_RST | TH_ACK, "reset");
	cr_assert_eq(s.seq, us + 5, "past all it sent");
	cr_assert_eq(ss.connections_destroyed, 1);
}

static void syn_from(uint16_t port, uint64_t now)
{
	uint8_t f[128];
	size_t n = tcp_frame(f, mmds_ip, 80, TH_SYN, 1, 0, 100, NULL, 0);
	uint16_t p = htons(port);

	memcpy(f + 34, &p, 2);
	cr_assert(mmds_stack_take(st, f, n, now));
}

/* Replies held at once are bounded, all connections together: one
 * larger than what is left resets its connection (the first always
 * goes). A duplicate of the opening SYN after the handshake gets an ACK
 * and changes nothing. */
Test(mmds_stack, replies_held_are_bounded)
{
	uint8_t f[256];
	struct seg s;
	uint32_t us;

	reply_size = MMDS_STACK_REPLY_BYTES - 100;
	us = open_conn(1);
	cr_assert(mmds_stack_take(
	    st, f, tcp_frame(f, mmds_ip, 80, TH_ACK, 2, us, 0, "GET / HTTP/1.1\r\n\r\n", 18), 0));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.len, 0, "window 0: the reply is held");
	cr_assert(send_tcp(TH_SYN, 1, 0, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK, "a late copy of the SYN: an ACK");
	cr_assert_eq(ss.connections_created, 1);
	/* A second connection's reply does not fit beside it. */
	reply_size = 200;
	syn_from(41000, 1);
	cr_assert(give_tcp(&s, 2048, 1));
	cr_assert_eq(s.flags, TH_SYN | TH_ACK);
	{
		uint8_t g[256];
		size_t n = tcp_frame(g, mmds_ip, 80, TH_ACK, 2, s.seq + 1, 1000,
				     "GET / HTTP/1.1\r\n\r\n", 18);
		uint16_t port = htons(41000);

		memcpy(g + 34, &port, 2);
		cr_assert(mmds_stack_take(st, g, n, 1));
	}
	cr_assert(give_tcp(&s, 2048, 1));
	cr_assert_eq(s.flags, TH_RST | TH_ACK);
	cr_assert_eq(s.dport, 41000);
	cr_assert_eq(ss.connections_destroyed, 1);
}

Test(mmds_stack, a_full_table_refuses_a_syn_until_a_connection_is_idle)
{
	struct seg s;

	for (unsigned i = 0; i < MMDS_STACK_CONNS; i++)
		syn_from((uint16_t)(1000 + i), i);
	while (give_tcp(&s, 2048, 100))
		cr_assert_eq(s.flags, TH_SYN | TH_ACK);
	syn_from(2000, 1000);
	cr_assert(give_tcp(&s, 2048, 1000));
	cr_assert_eq(s.flags, TH_RST | TH_ACK, "all busy: refused");
	cr_assert_eq(s.dport, 2000);
	cr_assert_eq(ss.connections_created, MMDS_STACK_CONNS);
	/* Ten seconds on, the first (idle) one gives way. */
	syn_from(2001, MMDS_STACK_IDLE_NS + 1);
	cr_assert_eq(ss.connections_created, MMDS_STACK_CONNS + 1);
	cr_assert_eq(ss.connections_destroyed, 1);
}

/* A SYN on the ports of a connection the stack still holds, not the one
 * that opened it (the guest rebooted, or was rolled back to a snapshot):
 * the old connection goes and the new one is answered. */
Test(mmds_stack, a_new_syn_on_held_ports_replaces_the_connection)
{
	struct seg s;
	uint32_t us = open_conn(1000);

	cr_assert(send_tcp(TH_ACK, 1001, us, "GET / HTTP/1.1\r\n\r\n"));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert(send_tcp(TH_ACK, 1019, us + 5, NULL));
	cr_assert(send_tcp(TH_SYN, 777777, 0, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_SYN | TH_ACK);
	cr_assert_eq(s.ack, 777778);
	cr_assert_eq(ss.connections_created, 2);
	cr_assert_eq(ss.connections_destroyed, 1);
}

/* A keepalive probe (the byte before the next) is answered with an ACK;
 * an ACK of nothing new, in sequence, is not. */
Test(mmds_stack, keepalive_probes_are_answered)
{
	struct seg s;
	uint32_t us = open_conn(50);

	cr_assert(send_tcp(TH_ACK, 50, us, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK);
	cr_assert_eq(s.ack, 51);
	cr_assert(send_tcp(TH_ACK, 51, us, NULL));
	cr_assert_not(give_tcp(&s, 2048, 0));
}

/* A duplicate ACK and then the ACK of our FIN, before the stack is asked
 * for a frame: the FIN counts as acknowledged, and no FIN goes at a
 * sequence number it never had. */
Test(mmds_stack, the_ack_of_our_fin_counts_after_a_duplicate)
{
	struct seg s;
	uint32_t us = open_conn(10), me = 11, fin;

	reply_close = true;
	cr_assert(send_tcp(TH_ACK, me, us, "GET / HTTP/1.0\r\n\r\n"));
	me += 18;
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert(send_tcp(TH_ACK, me, us + 5, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK | TH_FIN);
	fin = s.seq;
	cr_assert(send_tcp(TH_ACK, me, fin, NULL)); /* a duplicate */
	cr_assert(send_tcp(TH_ACK, me, fin + 1, NULL));
	while (give_tcp(&s, 2048, 0))
		cr_assert_not(s.flags & TH_FIN, "a FIN again, at %u (the FIN was %u)", s.seq, fin);
	cr_assert(send_tcp(TH_ACK | TH_FIN, me, fin + 1, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_ACK);
	cr_assert_eq(ss.connections_destroyed, 1);
}

/* Buffers with room for the headers only get no empty data segments. */
Test(mmds_stack, no_empty_data_segments)
{
	struct seg s;
	uint32_t us = open_conn(1);

	cr_assert(send_tcp(TH_ACK, 2, us, "GET / HTTP/1.1\r\n\r\n"));
	cr_assert(give_tcp(&s, 54, 0), "the ACK of the request fits");
	cr_assert_eq(s.len, 0);
	cr_assert_eq(s.flags, TH_ACK);
	cr_assert_not(give_tcp(&s, 54, 0));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.len, 5);
	cr_assert_eq(s.seq, us);
}

/* A RST outside the window is no one's: the connection stays. */
Test(mmds_stack, a_reset_outside_the_window_is_ignored)
{
	uint32_t us = open_conn(50);

	cr_assert(send_tcp(TH_RST, 50 + 100000, us, NULL));
	cr_assert_eq(ss.connections_destroyed, 0);
	cr_assert(send_tcp(TH_RST, 49, us, NULL));
	cr_assert_eq(ss.connections_destroyed, 0);
	cr_assert(send_tcp(TH_RST, 51, us, NULL));
	cr_assert_eq(ss.connections_destroyed, 1);
}

/* A guest that shuts its window after asking keeps no reply in flint's
 * memory past MMDS_STACK_STALL_NS; until then it is retransmitted only
 * when the window opens. owed() says when to come back. */
Test(mmds_stack, a_reply_the_guest_never_takes_is_dropped)
{
	uint8_t f[256];
	struct seg s;
	uint32_t us = open_conn(1);
	uint64_t due;

	cr_assert(mmds_stack_take(
	    st, f, tcp_frame(f, mmds_ip, 80, TH_ACK, 2, us, 0, "GET / HTTP/1.1\r\n\r\n", 18), 0));
	cr_assert(mmds_stack_owed(st, 0, &due), "the ACK of the request");
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.len, 0, "window 0: nothing of the reply");
	cr_assert_not(mmds_stack_owed(st, 1, &due));
	cr_assert_eq(due, MMDS_STACK_STALL_NS);
	cr_assert(mmds_stack_owed(st, MMDS_STACK_STALL_NS, &due));
	cr_assert(give_tcp(&s, 2048, MMDS_STACK_STALL_NS));
	cr_assert_eq(s.flags, TH_RST | TH_ACK);
	cr_assert_eq(ss.connections_destroyed, 1);
}

/* owed() and give() agree, and due is the retransmission's time. */
Test(mmds_stack, owed_says_when_to_ask)
{
	struct seg s;
	uint32_t us = open_conn(1);
	uint64_t due;

	cr_assert_not(mmds_stack_owed(st, 0, &due));
	cr_assert_eq(due, 0, "an idle connection wants nothing");
	cr_assert(send_tcp(TH_ACK, 2, us, "GET / HTTP/1.1\r\n\r\n"));
	cr_assert(mmds_stack_owed(st, 0, &due));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_not(mmds_stack_owed(st, 10, &due));
	cr_assert_eq(due, MMDS_STACK_RTO_NS);
	cr_assert(mmds_stack_owed(st, MMDS_STACK_RTO_NS, &due));
	cr_assert(give_tcp(&s, 2048, MMDS_STACK_RTO_NS));
	cr_assert_eq(s.seq, us);
	cr_assert_eq(s.len, 5);
}

/* A reset forgets every connection and queued frame. */
Test(mmds_stack, reset_forgets_everything)
{
	struct seg s;
	uint32_t us = open_conn(1);

	cr_assert(send_tcp(TH_ACK, 2, us, "GET / HTTP/1.1\r\n\r\n"));
	cr_assert(send_tcp(TH_ACK, 99, 99, NULL)); /* a stray: RST queued */
	mmds_stack_reset(st);
	cr_assert_not(give_tcp(&s, 2048, 0));
	cr_assert_eq(ss.connections_destroyed, 1);
	cr_assert(send_tcp(TH_ACK, 20, us, NULL));
	cr_assert(give_tcp(&s, 2048, 0));
	cr_assert_eq(s.flags, TH_RST, "a segment of the old connection is no one's");
}
