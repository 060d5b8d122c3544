#include "mmds/stack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <netinet/if_ether.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ETH_LEN	   14
#define IP_LEN	   20
#define TCP_LEN	   20
#define QUEUED_MAX 8

/* Sequence-space comparisons (RFC 793's modulo 2^32). */
#define SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LE(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)

struct conn {
	bool used;
	uint8_t mac[6];	       /* the guest's */
	uint32_t addr;	       /* the guest's, network order */
	uint16_t port;	       /* the guest's, network order */
	uint64_t last;	       /* now of the last acceptable segment from the guest */
	uint32_t iss, rcv_nxt; /* ours; the next byte expected */
	uint32_t irs;	       /* the guest's SYN's sequence number */
	uint32_t snd_una, snd_nxt, snd_max;
	uint16_t mss, wnd;    /* the guest's */
	uint64_t sent_at;     /* when snd_una's segment (the oldest unacked) went */
	uint64_t progress_at; /* when the reply began or last moved on */
	unsigned rtos;	      /* timeouts in a row */
	bool syn_sent, syn_acked, need_ack;
	/* Ours: owed (the reply asked for it, or the guest closed), sent
	 * (at fin_seq, once), acknowledged; the guest's, taken. */
	bool fin_owed, fin_sent, fin_acked, peer_fin;
	uint32_t fin_seq;
	/* The reply being sent: byte i has sequence number tx_seq + i. */
	struct mmds_reply tx;
	uint32_t tx_seq;
	/* Request bytes taken, not yet answered. */
	uint8_t rbuf[MMDS_STACK_RCV_BUF];
	size_t rlen;
};

/* A frame owed outside any connection: an ARP reply or a RST. */
struct queued {
	uint8_t mac[6];
	uint32_t addr;
	uint16_t port;
	uint32_t seq, ack;
	uint8_t flags; /* TH_*; 0: an ARP reply */
};

struct mmds_stack {
	struct mmds_stack_params p;
	uint8_t mac[6];
	struct conn c[MMDS_STACK_CONNS];
	unsigned next; /* where give() looks first: connections take turns */
	struct queued q[QUEUED_MAX];
	unsigned qfirst, qcount;
	size_t reply_bytes; /* held in the connections' replies */
	struct mmds_stack_stats *st;
};

int mmds_stack_create(struct mmds_stack **out, const struct mmds_stack_params *p)
{
	static const uint8_t mac[6] = MMDS_STACK_MAC;
	struct mmds_stack *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->p = *p;
	s->st = p->stats;
	memcpy(s->mac, mac, sizeof(mac));
	*out = s;
	return 0;
}

static void conn_drop(struct mmds_stack *s, struct conn *c)
{
	s->reply_bytes -= c->tx.len;
	free(c->tx.data);
	memset(c, 0, sizeof(*c));
	s->st->connections_destroyed++;
}

void mmds_stack_destroy(struct mmds_stack *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < MMDS_STACK_CONNS; i++)
		free(s->c[i].tx.data);
	free(s);
}

static void enqueue(struct mmds_stack *s, const struct queued *e)
{
	if (s->qcount == QUEUED_MAX)
		return; /* the guest asks again */
	s->q[(s->qfirst + s->qcount++) % QUEUED_MAX] = *e;
}

/* ---- the way in ----------------------------------------------------------- */

static bool take_arp(struct mmds_stack *s, const uint8_t *p, size_t len)
{
	struct ether_arp a;
	struct queued e = {.flags = 0};

	if (len < sizeof(a))
		return false;
	memcpy(&a, p, sizeof(a));
	if (ntohs(a.arp_hrd) != ARPHRD_ETHER || ntohs(a.arp_pro) != ETHERTYPE_IP ||
	    a.arp_hln != 6 || a.arp_pln != 4 || ntohs(a.arp_op) != ARPOP_REQUEST ||
	    memcmp(a.arp_tpa, &s->p.ipv4, 4))
		return false;
	s->st->rx_accepted++;
	memcpy(e.mac, a.arp_sha, 6);
	memcpy(&e.addr, a.arp_spa, 4);
	enqueue(s, &e);
	return true;
}

static struct conn *conn_find(struct mmds_stack *s, uint32_t addr, uint16_t port)
{
	for (unsigned i = 0; i < MMDS_STACK_CONNS; i++)
		if (s->c[i].used && s->c[i].addr == addr && s->c[i].port == port)
			return &s->c[i];
	return NULL;
}

/* Drop c, telling the guest with a RST. */
static void conn_reset(struct mmds_stack *s, struct conn *c)
{
	struct queued e = {.addr = c->addr,
			   .port = c->port,
			   .seq = c->snd_max,
			   .ack = c->rcv_nxt,
			   .flags = TH_RST | TH_ACK};

	memcpy(e.mac, c->mac, 6);
	enqueue(s, &e);
	conn_drop(s, c);
}

/* A free slot, or the one the guest has left idle longest if that is
 * long enough; NULL: none. */
static struct conn *conn_new(struct mmds_stack *s, uint64_t now)
{
	struct conn *old = &s->c[0];

	for (unsigned i = 0; i < MMDS_STACK_CONNS; i++) {
		if (!s->c[i].used)
			return &s->c[i];
		if (s->c[i].last < old->last)
			old = &s->c[i];
	}
	if (now - old->last < MMDS_STACK_IDLE_NS)
		return NULL;
	conn_reset(s, old);
	return old;
}

/* The MSS option of a SYN, or 536 (RFC 1122's default). */
static uint16_t syn_mss(const uint8_t *opt, size_t len)
{
	for (size_t i = 0; i < len;) {
		if (opt[i] == TCPOPT_EOL)
			break;
		if (opt[i] == TCPOPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= len || opt[i + 1] < 2 || i + opt[i + 1] > len)
			break;
		if (opt[i] == TCPOPT_MAXSEG && opt[i + 1] == TCPOLEN_MAXSEG)
			return (uint16_t)(opt[i + 2] << 8 | opt[i + 3]);
		i += opt[i + 1];
	}
	return 536;
}

static void reset_reply(struct mmds_stack *s, const uint8_t *mac, uint32_t addr,
			const struct tcphdr *t, size_t payload)
{
	struct queued e = {.addr = addr, .port = t->th_sport, .flags = TH_RST};

	memcpy(e.mac, mac, 6);
	if (t->th_flags & TH_ACK) {
		e.seq = ntohl(t->th_ack);
	} else {
		e.flags |= TH_ACK;
		e.ack = ntohl(t->th_seq) + (uint32_t)payload + !!(t->th_flags & TH_SYN) +
			!!(t->th_flags & TH_FIN);
	}
	enqueue(s, &e);
}

/* Answer what the connection holds, one request at a time: a reply is
 * sent whole before the next request is looked at. */
static void serve(struct mmds_stack *s, struct conn *c, uint64_t now)
{
	while (c->rlen && !c->tx.data && !c->fin_owed) {
		struct mmds_reply r = {0};
		int n = s->p.serve(s->p.ctx, c->rbuf, c->rlen, c->rlen == sizeof(c->rbuf), &r);

		if (n == 0)
			break;
		if (n < 0 || (size_t)n > c->rlen) {
			free(r.data);
			conn_reset(s, c); /* what cannot be answered */
			return;
		}
		if (s->reply_bytes && s->reply_bytes + r.len > MMDS_STACK_REPLY_BYTES) {
			/* Other connections hold all the replies they may: this
			 * one goes, and the guest asks again. */
			free(r.data);
			conn_reset(s, c);
			return;
		}
		memmove(c->rbuf, c->rbuf + n, c->rlen - (size_t)n);
		c->rlen -= (size_t)n;
		c->tx = r;
		c->tx_seq = c->snd_una;
		c->progress_at = now;
		if (!r.len) {
			free(r.data);
			c->tx = (struct mmds_reply){.close = r.close};
		}
		s->reply_bytes += c->tx.len;
		if (r.close)
			c->fin_owed = true;
	}
	if (c->peer_fin && !c->tx.data)
		c->fin_owed = true; /* the guest is done: so are we */
}

/* The guest acknowledged up to ack: drop what it has of the reply. A
 * duplicate ACK (nothing new, data outstanding, none sent with it) says a
 * segment went missing: send again from there. */
static void acked(struct conn *c, uint32_t ack, bool bare, uint64_t now, size_t *held)
{
	if (ack == c->snd_una && bare && c->snd_una != c->snd_max && c->syn_acked) {
		c->snd_nxt = c->snd_una;
		return;
	}
	if (!SEQ_LT(c->snd_una, ack) || SEQ_LT(c->snd_max, ack))
		return;
	c->rtos = 0;
	c->syn_acked = true;
	c->snd_una = ack;
	if (SEQ_LT(c->snd_nxt, ack))
		c->snd_nxt = ack;
	c->sent_at = c->progress_at = now;
	if (c->tx.data && !SEQ_LT(ack, c->tx_seq + (uint32_t)c->tx.len)) {
		*held -= c->tx.len;
		free(c->tx.data);
		c->tx = (struct mmds_reply){0};
	}
	if (c->fin_sent && SEQ_LT(c->fin_seq, ack))
		c->fin_acked = true;
}

/* A new connection from the guest's SYN t (with its options in opt). */
static void conn_open(struct mmds_stack *s, struct conn *c, const uint8_t *mac, uint32_t addr,
		      const struct tcphdr *t, const uint8_t *opt, size_t optlen, uint64_t now)
{
	*c = (struct conn){.used = true, .addr = addr, .port = t->th_sport};
	memcpy(c->mac, mac, 6);
	if (getrandom(&c->iss, sizeof(c->iss), GRND_NONBLOCK) != sizeof(c->iss))
		c->iss = (uint32_t)now;
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->irs = ntohl(t->th_seq);
	c->rcv_nxt = c->irs + 1;
	c->mss = syn_mss(opt, optlen);
	if (c->mss < 64)
		c->mss = 64;
	c->wnd = ntohs(t->th_win);
	c->last = c->progress_at = now;
	s->st->connections_created++;
}

static uint16_t rcv_wnd(const struct conn *c)
{
	return (uint16_t)(sizeof(c->rbuf) - c->rlen);
}

static void take_tcp(struct mmds_stack *s, const uint8_t *mac, const struct iphdr *ip,
		     const uint8_t *p, size_t len, uint64_t now)
{
	struct tcphdr t;
	size_t hl, payload;
	struct conn *c;
	uint32_t seq;

	if (len < TCP_LEN) {
		s->st->rx_accepted_err++;
		return;
	}
	memcpy(&t, p, sizeof(t));
	hl = (size_t)t.th_off * 4;
	if (hl < TCP_LEN || hl > len) {
		s->st->rx_accepted_err++;
		return;
	}
	payload = len - hl;
	seq = ntohl(t.th_seq);
	s->st->rx_count++;
	c = conn_find(s, ip->saddr, t.th_sport);
	if (t.th_flags & TH_RST) {
		/* Only within the window (RFC 5961): a stale one is no one's. */
		if (c && SEQ_LE(c->rcv_nxt, seq) &&
		    SEQ_LT(seq, c->rcv_nxt + (rcv_wnd(c) ? rcv_wnd(c) : 1)))
			conn_drop(s, c);
		return;
	}
	if (ntohs(t.th_dport) != MMDS_STACK_PORT) {
		s->st->rx_accepted_err++;
		reset_reply(s, mac, ip->saddr, &t, payload);
		return;
	}
	if (c && (t.th_flags & TH_SYN)) {
		/* The guest sent its SYN again: our SYN-ACK is lost or late;
		 * or, after the handshake, a late copy of it: it gets an ACK. */
		if (seq == c->irs) {
			if (!c->syn_acked) {
				c->syn_sent = false;
				c->snd_nxt = c->iss;
			} else {
				c->need_ack = true;
			}
			return;
		}
		/* A new connection on a pair of ports the guest no longer
		 * holds (a guest rolled back, or rebooted): the old one goes. */
		conn_drop(s, c);
		c = NULL;
	}
	if (!c) {
		if ((t.th_flags & (TH_SYN | TH_ACK | TH_FIN)) != TH_SYN || payload ||
		    !(c = conn_new(s, now))) {
			reset_reply(s, mac, ip->saddr, &t, payload);
			return;
		}
		conn_open(s, c, mac, ip->saddr, &t, p + TCP_LEN, hl - TCP_LEN, now);
		return;
	}
	if (!(t.th_flags & TH_ACK))
		return;
	acked(c, ntohl(t.th_ack), !payload && !(t.th_flags & TH_FIN) && ntohs(t.th_win) == c->wnd,
	      now, &s->reply_bytes);
	if (!c->syn_acked)
		return;
	c->wnd = ntohs(t.th_win);
	if (payload || (t.th_flags & TH_FIN)) {
		c->need_ack = true;
		if (seq == c->rcv_nxt && !c->peer_fin) {
			size_t room = sizeof(c->rbuf) - c->rlen;
			size_t n = payload < room ? payload : room;

			memcpy(c->rbuf + c->rlen, p + hl, n);
			c->rlen += n;
			c->rcv_nxt += (uint32_t)n;
			c->last = now;
			if (n == payload && (t.th_flags & TH_FIN)) {
				c->rcv_nxt++;
				c->peer_fin = true;
			}
		}
	} else if (seq != c->rcv_nxt) {
		/* Not the next byte (a keepalive probe, an old segment): the
		 * guest is told what is. */
		c->need_ack = true;
	} else {
		c->last = now;
	}
	serve(s, c, now);
	if (c->used && c->fin_acked && c->peer_fin && !c->need_ack)
		conn_drop(s, c);
}

bool mmds_stack_take(struct mmds_stack *s, const uint8_t *f, size_t len, uint64_t now)
{
	struct ether_header eh;
	struct iphdr ip;
	size_t ihl, tot;

	if (len < ETH_LEN) {
		s->st->rx_bad_eth++;
		return false;
	}
	memcpy(&eh, f, sizeof(eh));
	if (ntohs(eh.ether_type) == ETHERTYPE_ARP)
		return take_arp(s, f + ETH_LEN, len - ETH_LEN);
	if (ntohs(eh.ether_type) != ETHERTYPE_IP || len < ETH_LEN + IP_LEN)
		return false;
	memcpy(&ip, f + ETH_LEN, sizeof(ip));
	if (ip.daddr != s->p.ipv4)
		return false;
	/* For MMDS from here: taken, whatever becomes of it. */
	s->st->rx_accepted++;
	ihl = (size_t)ip.ihl * 4;
	tot = ntohs(ip.tot_len);
	if (ip.version != 4 || ihl < IP_LEN || tot < ihl || tot > len - ETH_LEN) {
		s->st->rx_accepted_err++;
		return true;
	}
	if (ip.protocol != IPPROTO_TCP || (ntohs(ip.frag_off) & (IP_MF | IP_OFFMASK))) {
		s->st->rx_accepted_unusual++;
		return true;
	}
	take_tcp(s, eh.ether_shost, &ip, f + ETH_LEN + ihl, tot - ihl, now);
	return true;
}

/* ---- the way out ---------------------------------------------------------- */

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static size_t put_eth(const struct mmds_stack *s, uint8_t *buf, const uint8_t *to, uint16_t type)
{
	struct ether_header eh;

	memcpy(eh.ether_dhost, to, 6);
	memcpy(eh.ether_shost, s->mac, 6);
	eh.ether_type = htons(type);
	memcpy(buf, &eh, sizeof(eh));
	return ETH_LEN;
}

static size_t put_arp(const struct mmds_stack *s, uint8_t *buf, const struct queued *e)
{
	struct ether_arp a = {.ea_hdr = {.ar_hrd = htons(ARPHRD_ETHER),
					 .ar_pro = htons(ETHERTYPE_IP),
					 .ar_hln = 6,
					 .ar_pln = 4,
					 .ar_op = htons(ARPOP_REPLY)}};
	size_t n = put_eth(s, buf, e->mac, ETHERTYPE_ARP);

	memcpy(a.arp_sha, s->mac, 6);
	memcpy(a.arp_spa, &s->p.ipv4, 4);
	memcpy(a.arp_tha, e->mac, 6);
	memcpy(a.arp_tpa, &e->addr, 4);
	memcpy(buf + n, &a, sizeof(a));
	return n + sizeof(a);
}

/* One TCP segment to the guest at (mac, addr, port), with data's n bytes
 * and, on a SYN, our MSS. */
static size_t put_tcp(const struct mmds_stack *s, uint8_t *buf, const uint8_t *mac, uint32_t addr,
		      uint16_t port, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
		      const uint8_t *data, size_t n)
{
	size_t opt = flags & TH_SYN ? 4 : 0, tl = TCP_LEN + opt + n;
	struct iphdr ip = {.version = 4,
			   .ihl = 5,
			   .tot_len = htons((uint16_t)(IP_LEN + tl)),
			   /* Firecracker's: MMDS is on the guest's link only. */
			   .ttl = 1,
			   .protocol = IPPROTO_TCP,
			   .saddr = s->p.ipv4,
			   .daddr = addr};
	struct tcphdr t = {.th_sport = htons(MMDS_STACK_PORT),
			   .th_dport = port,
			   .th_seq = htonl(seq),
			   .th_ack = flags & TH_ACK ? htonl(ack) : 0,
			   .th_off = (uint8_t)((TCP_LEN + opt) / 4),
			   .th_flags = flags,
			   .th_win = htons(wnd)};
	uint8_t *tp = buf + ETH_LEN + IP_LEN;
	uint32_t sum;

	put_eth(s, buf, mac, ETHERTYPE_IP);
	ip.check = fold(sum16(0, (const uint8_t *)&ip, sizeof(ip)));
	memcpy(buf + ETH_LEN, &ip, sizeof(ip));
	memcpy(tp, &t, sizeof(t));
	if (opt) {
		tp[TCP_LEN] = TCPOPT_MAXSEG;
		tp[TCP_LEN + 1] = TCPOLEN_MAXSEG;
		tp[TCP_LEN + 2] = MMDS_STACK_MSS >> 8;
		tp[TCP_LEN + 3] = MMDS_STACK_MSS & 0xff;
	}
	if (n)
		memcpy(tp + TCP_LEN + opt, data, n);
	/* The pseudo-header: addresses, protocol, TCP length. */
	sum = sum16(0, (const uint8_t *)&ip.saddr, 8) + IPPROTO_TCP + (uint32_t)tl;
	sum = sum16(sum, tp, tl);
	t.th_sum = fold(sum);
	memcpy(tp + offsetof(struct tcphdr, th_sum), &t.th_sum, sizeof(t.th_sum));
	return ETH_LEN + IP_LEN + tl;
}

/* The wait before the next retransmission: doubled at each timeout in a
 * row, to 32 times (a paused guest takes nothing for a while). */
static uint64_t rto(const struct conn *c)
{
	return MMDS_STACK_RTO_NS << (c->rtos < 5 ? c->rtos : 5);
}

/* Go back to the oldest unacknowledged byte when it has waited too long;
 * false when it has too often, or the reply has not moved on for
 * MMDS_STACK_STALL_NS (a guest that takes nothing keeps no reply in
 * flint's memory), and c is reset. */
static bool maybe_resend(struct mmds_stack *s, struct conn *c, uint64_t now)
{
	if (c->tx.data && now - c->progress_at >= MMDS_STACK_STALL_NS) {
		conn_reset(s, c);
		return false;
	}
	if (c->snd_una == c->snd_max || now - c->sent_at < rto(c))
		return true;
	if (++c->rtos > MMDS_STACK_RTO_MAX) {
		conn_reset(s, c);
		return false;
	}
	c->snd_nxt = c->snd_una;
	if (!c->syn_acked)
		c->syn_sent = false;
	c->sent_at = now;
	return true;
}

/* How much of the reply may go now (from snd_nxt, within the guest's
 * window). */
static uint32_t sendable(const struct conn *c)
{
	uint32_t end, wnd_end, stop;

	if (!c->tx.data)
		return 0;
	end = c->tx_seq + (uint32_t)c->tx.len;
	wnd_end = c->snd_una + c->wnd;
	stop = SEQ_LT(wnd_end, end) ? wnd_end : end;
	return SEQ_LT(c->snd_nxt, stop) ? stop - c->snd_nxt : 0;
}

/* Whether our FIN goes (again) now: owed, the reply all acknowledged,
 * and not sent, or gone back to. */
static bool fin_due(const struct conn *c)
{
	return c->fin_owed && !c->tx.data && !c->fin_acked &&
	       (!c->fin_sent || SEQ_LE(c->snd_nxt, c->fin_seq));
}

/* The next segment conn c owes, or 0. */
static size_t conn_give(struct mmds_stack *s, struct conn *c, uint8_t *buf, size_t cap,
			uint64_t now)
{
	const size_t hdrs = ETH_LEN + IP_LEN + TCP_LEN;
	size_t len, n;

	if (!maybe_resend(s, c, now))
		return 0;
	if (!c->syn_acked) {
		if (c->syn_sent || cap < hdrs + 4)
			return 0;
		c->syn_sent = true;
		c->snd_nxt = c->snd_max = c->iss + 1;
		c->sent_at = now;
		return put_tcp(s, buf, c->mac, c->addr, c->port, c->iss, c->rcv_nxt,
			       TH_SYN | TH_ACK, rcv_wnd(c), NULL, 0);
	}
	if (cap < hdrs)
		return 0;
	if ((n = sendable(c)) && cap > hdrs) {
		if (n > c->mss)
			n = c->mss;
		if (n > MMDS_STACK_MSS)
			n = MMDS_STACK_MSS;
		if (n > cap - hdrs)
			n = cap - hdrs;
		if (c->snd_una == c->snd_max)
			c->sent_at = now;
		len =
		    put_tcp(s, buf, c->mac, c->addr, c->port, c->snd_nxt, c->rcv_nxt,
			    TH_ACK | TH_PUSH, rcv_wnd(c), c->tx.data + (c->snd_nxt - c->tx_seq), n);
		c->snd_nxt += (uint32_t)n;
		if (SEQ_LT(c->snd_max, c->snd_nxt))
			c->snd_max = c->snd_nxt;
		c->need_ack = false;
		return len;
	}
	if (fin_due(c)) {
		if (!c->fin_sent)
			c->fin_seq = c->snd_nxt;
		if (c->snd_una == c->snd_max)
			c->sent_at = now;
		len = put_tcp(s, buf, c->mac, c->addr, c->port, c->fin_seq, c->rcv_nxt,
			      TH_ACK | TH_FIN, rcv_wnd(c), NULL, 0);
		c->fin_sent = true;
		c->snd_nxt = c->fin_seq + 1;
		if (SEQ_LT(c->snd_max, c->snd_nxt))
			c->snd_max = c->snd_nxt;
		c->need_ack = false;
		return len;
	}
	if (c->need_ack) {
		c->need_ack = false;
		len = put_tcp(s, buf, c->mac, c->addr, c->port, c->snd_nxt, c->rcv_nxt, TH_ACK,
			      rcv_wnd(c), NULL, 0);
		if (c->fin_acked && c->peer_fin)
			conn_drop(s, c);
		return len;
	}
	return 0;
}

/* Whether c has a segment to give now, and when it next will by itself
 * (a retransmission, a stalled reply's end) into *due (0: not). */
static bool conn_owes(const struct conn *c, uint64_t now, uint64_t *due)
{
	uint64_t at = 0;

	if (c->tx.data)
		at = c->progress_at + MMDS_STACK_STALL_NS;
	if (c->snd_una != c->snd_max && (!at || c->sent_at + rto(c) < at))
		at = c->sent_at + rto(c);
	if (at && (!*due || at < *due))
		*due = at;
	if (at && now >= at)
		return true;
	if (!c->syn_acked)
		return !c->syn_sent;
	return sendable(c) || fin_due(c) || c->need_ack;
}

bool mmds_stack_owed(const struct mmds_stack *s, uint64_t now, uint64_t *due)
{
	bool owed = s->qcount > 0;

	*due = 0;
	for (unsigned i = 0; i < MMDS_STACK_CONNS; i++)
		if (s->c[i].used)
			owed |= conn_owes(&s->c[i], now, due);
	return owed;
}

void mmds_stack_reset(struct mmds_stack *s)
{
	for (unsigned i = 0; i < MMDS_STACK_CONNS; i++)
		if (s->c[i].used)
			conn_drop(s, &s->c[i]);
	s->qcount = 0;
}

/* The first queued frame, or 0. */
static size_t give_queued(struct mmds_stack *s, uint8_t *buf, size_t cap)
{
	const struct queued *e = &s->q[s->qfirst];
	size_t len;

	if (!s->qcount || cap < ETH_LEN + IP_LEN + TCP_LEN)
		return 0;
	len = e->flags
		  ? put_tcp(s, buf, e->mac, e->addr, e->port, e->seq, e->ack, e->flags, 0, NULL, 0)
		  : put_arp(s, buf, e);
	s->qfirst = (s->qfirst + 1) % QUEUED_MAX;
	s->qcount--;
	return len;
}

size_t mmds_stack_give(struct mmds_stack *s, uint8_t *buf, size_t cap, uint64_t now)
{
	size_t len = give_queued(s, buf, cap);

	for (unsigned k = 0; !len && k < MMDS_STACK_CONNS; k++) {
		struct conn *c = &s->c[(s->next + k) % MMDS_STACK_CONNS];

		if (c->used && (len = conn_give(s, c, buf, cap, now)))
			s->next = (s->next + k + 1) % MMDS_STACK_CONNS;
	}
	/* A connection that timed out queued its RST. */
	if (!len)
		len = give_queued(s, buf, cap);
	if (len) {
		s->st->tx_count++;
		s->st->tx_bytes += len;
	}
	return len;
}
