/* libFuzzer harness for MMDS's guest side: the fuzzer plays the guest's
 * network stack against runner/mmds/stack.c, with http.c answering from a
 * real data store (mmds.c). The input is a list of operations:
 *   0: a raw frame (two bytes of length, then its bytes);
 *   1: a TCP segment to MMDS's port 80 or another port, from one of four
 *      guest ports, its flags, window, sequence and acknowledgement
 *      numbers chosen freely or relative to what MMDS last sent (so that
 *      connections get established and requests answered), and a payload;
 *   2: take up to N frames from MMDS into a buffer of a chosen size;
 *   3: move the clock (retransmission, idle connections);
 *   4: PATCH the store with a small document;
 *   5: reset the stack (the device was reset).
 * Every frame MMDS gives must fit the buffer it was given and carry a good
 * IPv4 header checksum and a TCP checksum, and mmds_stack_owed must have
 * said there was one; no more than MMDS_STACK_CONNS connections may be
 * open at once. ASan and UBSan watch the rest. */
#include <arpa/inet.h>
#include <jansson.h>
#include <net/ethernet.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mmds/http.h"
#include "mmds/mmds.h"
#include "mmds/stack.h"

static const uint8_t guest_mac[6] = {0x02, 0, 0, 0, 0, 1};
static const uint8_t mmds_mac[6] = MMDS_STACK_MAC;

struct input {
	const uint8_t *p;
	size_t left;
};

static uint8_t u8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static uint16_t u16(struct input *in)
{
	return (uint16_t)(u8(in) << 8 | u8(in));
}

static uint32_t u32(struct input *in)
{
	return (uint32_t)u16(in) << 16 | u16(in);
}

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

/* What MMDS last sent each guest port: its next sequence number. */
static uint32_t their_seq[4];

static void check_given(const uint8_t *f, size_t n, size_t cap)
{
	struct ether_header eh;
	struct iphdr ip;

	CHECK(n <= cap);
	CHECK(n >= 42);
	memcpy(&eh, f, sizeof(eh));
	CHECK(!memcmp(eh.ether_shost, mmds_mac, 6));
	if (ntohs(eh.ether_type) == ETHERTYPE_ARP) {
		CHECK(n == 42);
		return;
	}
	CHECK(ntohs(eh.ether_type) == ETHERTYPE_IP);
	CHECK(n >= 54);
	memcpy(&ip, f + 14, sizeof(ip));
	CHECK(ntohs(ip.tot_len) == n - 14);
	CHECK(folded(sum16(0, f + 14, 20)) == 0xffff);
	size_t tl = n - 34;
	uint32_t sum = sum16(0, f + 26, 8) + IPPROTO_TCP + (uint32_t)tl;
	CHECK(folded(sum16(sum, f + 34, tl)) == 0xffff);
	struct tcphdr t;
	memcpy(&t, f + 34, sizeof(t));
	uint16_t port = ntohs(t.th_dport);
	if (port >= 40000 && port < 40004) {
		size_t hl = (size_t)t.th_off * 4;
		uint32_t len = (uint32_t)(tl - hl) + !!(t.th_flags & (TH_SYN | TH_FIN));
		their_seq[port - 40000] = ntohl(t.th_seq) + len;
	}
}

static size_t tcp_frame(uint8_t *f, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t flags,
			uint32_t seq, uint32_t ack, uint16_t win, const uint8_t *data, size_t n)
{
	struct ether_header eh;
	struct iphdr ip = {.version = 4,
			   .ihl = 5,
			   .tot_len = htons((uint16_t)(40 + n)),
			   .ttl = 64,
			   .protocol = IPPROTO_TCP,
			   .saddr = htonl(0x0a000002),
			   .daddr = dst};
	struct tcphdr t = {.th_sport = htons(sport),
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
	memcpy(f + 54, data, n);
	return 54 + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t frame[2048], out[MMDS_STACK_FRAME_MAX + 64];
	static uint32_t my_seq[4];
	struct input in = {data, size};
	struct mmds_stack *st;
	struct mmds *m;
	struct mmds_http h;
	uint32_t ip = htonl(0xa9fea9fe);
	uint64_t now = 1000000000ull;
	char err[256];
	json_t *v;

	if (mmds_create(&m, 4096) < 0)
		return 0;
	v = json_loads("{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"n\":1,\"o\":{}}}}", 0,
		       NULL);
	CHECK(v && mmds_put(m, v, err, sizeof(err)) == 0);
	json_decref(v);
	h = (struct mmds_http){.store = m, .v2 = size & 1, .imds_compat = size & 2};
	struct mmds_stack_params p = {
	    .ipv4 = ip, .serve = mmds_http_serve, .ctx = &h, .stats = mmds_stats(m)};
	if (mmds_stack_create(&st, &p) < 0) {
		mmds_destroy(m);
		return 0;
	}
	memset(their_seq, 0, sizeof(their_seq));
	memset(my_seq, 0, sizeof(my_seq));
	while (in.left) {
		switch (u8(&in) % 6) {
		case 0: {
			size_t n = u16(&in) % sizeof(frame);
			if (n > in.left)
				n = in.left;
			memcpy(frame, in.p, n);
			in.p += n;
			in.left -= n;
			mmds_stack_take(st, frame, n, now);
			break;
		}
		case 1: {
			uint8_t who = u8(&in), flags = u8(&in), how = u8(&in);
			unsigned k = who & 3;
			uint16_t dport = who & 4 ? (uint16_t)u16(&in) : 80, win = u16(&in);
			uint32_t seq = how & 1 ? u32(&in) : my_seq[k];
			uint32_t ack = how & 2 ? u32(&in) : their_seq[k];
			size_t n;

			if ((flags & TH_SYN) && !(how & 1))
				seq = u32(&in); /* a new connection's own ISN */
			n = u16(&in) % 1500;
			if (n > in.left)
				n = in.left;
			size_t len = tcp_frame(frame, ip, (uint16_t)(40000 + k), dport, flags, seq,
					       ack, win, in.p, n);
			in.p += n;
			in.left -= n;
			if (!(how & 1))
				my_seq[k] = seq + (uint32_t)n + !!(flags & (TH_SYN | TH_FIN));
			CHECK(mmds_stack_take(st, frame, len, now));
			break;
		}
		case 2: {
			unsigned count = u8(&in) % 64;
			size_t cap = 1 + u16(&in) % sizeof(out);

			for (unsigned i = 0; i < count; i++) {
				uint64_t due;
				bool owed = mmds_stack_owed(st, now, &due);
				size_t n = mmds_stack_give(st, out, cap, now);

				CHECK(!due || due > now || owed);
				if (!n)
					break;
				CHECK(owed);
				check_given(out, n, cap);
			}
			break;
		}
		case 3:
			now += (uint64_t)u16(&in) * 1000000;
			break;
		case 4: {
			char doc[64];
			snprintf(doc, sizeof(doc), "{\"latest\":{\"meta-data\":{\"k%u\":\"%u\"}}}",
				 u8(&in) % 8, u8(&in));
			v = json_loads(doc, 0, NULL);
			if (v)
				(void)mmds_patch(m, v, err, sizeof(err));
			json_decref(v);
			break;
		}
		case 5:
			mmds_stack_reset(st);
			break;
		}
		struct mmds_stack_stats *s = mmds_stats(m);
		CHECK(s->connections_created - s->connections_destroyed <= MMDS_STACK_CONNS);
	}
	mmds_stack_destroy(st);
	mmds_destroy(m);
	return 0;
}
