/* The virtio-vsock device against a fake guest driver (test_vsock_guest.h)
 * and a fake backend that records what it is given and hands out packets
 * the test queues. The event loop only runs the device's deferred interrupt
 * decisions here. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/time_types.h>
#include <linux/virtio_ids.h>

#include "core/evloop.h"
#include "test_vsock_guest.h"
#include "vsock/vsock.h"

/* ---- the fake backend ---------------------------------------------------- */

struct sent {
	struct virtio_vsock_hdr hdr;
	uint8_t data[128];
};

static struct {
	struct sent tx[16];
	unsigned ntx, nbad, changed;
	struct virtio_vsock_hdr bad;
	/* Packets to hand out: out[next_out..nout). */
	struct sent out[16];
	unsigned nout, next_out;
	unsigned dry;		       /* rx() calls to answer "nothing after all" first */
	unsigned rx_calls, rx_offered; /* rx() calls; buffers the last one had */
	bool refill;		       /* the guest adds a TX chain for each one taken */
	bool endless;		       /* data for ever, and the guest gives RX back at once */
} be;

static struct guest gs;

static void be_tx(void *b, const struct vsock_pkt *p)
{
	static struct sent past; /* past the first 16: counted only */
	struct sent *s = be.ntx < 16 ? &be.tx[be.ntx] : &past;
	size_t off = 0;

	(void)b;
	be.ntx++;
	if (be.refill)
		guest_send(&gs, guest_hdr(1234, 52, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 4096, 0),
			   NULL, 0);
	s->hdr = p->hdr;
	for (unsigned i = 0; i < p->niov; i++) {
		cr_assert_leq(off + p->iov[i].iov_len, sizeof(s->data));
		memcpy(s->data + off, p->iov[i].iov_base, p->iov[i].iov_len);
		off += p->iov[i].iov_len;
	}
	cr_assert_eq(off, le32toh(p->hdr.len));
}

static void be_tx_bad(void *b, const struct vsock_pkt *p)
{
	(void)b;
	be.nbad++;
	be.bad = p->hdr;
}

static bool be_rx_pending(void *b)
{
	struct vring_used_elem e;

	(void)b;
	if (be.endless) {
		/* A guest on another vCPU taking each packet and giving its
		 * buffer back as soon as it is used. */
		while (guest_used(&gs, 0, &e))
			guest_give_rx(&gs, 1, G_RXBUF);
		return true;
	}
	return be.next_out < be.nout;
}

static unsigned be_rx(void *b, struct vsock_pkt *p, unsigned n)
{
	unsigned k = 0;

	(void)b;
	cr_assert_geq(n, 1);
	be.rx_calls++;
	be.rx_offered = n;
	if (be.endless) {
		for (; k < n; k++) {
			vsock_pkt_init(&p[k].hdr, G_CID, 52, 1234, VIRTIO_VSOCK_OP_RW, 0);
			p[k].hdr.len = htole32(1);
		}
		return k;
	}
	if (be.dry) {
		be.dry--;
		be.next_out = be.nout; /* nothing after all: the socket was empty */
		return 0;
	}
	for (; k < n && be.next_out < be.nout; k++) {
		struct sent *s = &be.out[be.next_out++];
		uint32_t len = le32toh(s->hdr.len);
		cr_assert_leq(len, p[k].room);
		p[k].hdr = s->hdr;
		cr_assert_geq(p[k].iov[0].iov_len, len, "one RX buffer holds these payloads");
		memcpy(p[k].iov[0].iov_base, s->data, len);
	}
	return k;
}

static void be_changed(void *b)
{
	(void)b;
	be.changed++;
}

static const struct vsock_backend backend = {.tx = be_tx,
					     .tx_bad = be_tx_bad,
					     .rx_pending = be_rx_pending,
					     .rx = be_rx,
					     .changed = be_changed};

/* A host packet for the backend to hand out. */
static void queue_out(uint16_t op, const char *data)
{
	struct sent *s = &be.out[be.nout++];
	uint32_t len = data ? (uint32_t)strlen(data) : 0;

	vsock_pkt_init(&s->hdr, G_CID, 52, 1234, op, 0);
	s->hdr.len = htole32(len);
	memcpy(s->data, data ? data : "", len);
}

/* ---- the fake transport and the loop ------------------------------------ */

static struct evloop *loop;
static struct vsock_dev *d;
static unsigned used_calls[3], again_calls[3], resets_asked;

static void host_used(void *t, unsigned q)
{
	(void)t;
	cr_assert_lt(q, 3);
	used_calls[q]++;
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets_asked++;
}

static void host_again(void *t, unsigned q)
{
	(void)t;
	cr_assert_lt(q, 3);
	again_calls[q]++;
}

static const struct virtio_host host = {
    .used = host_used, .needs_reset = host_needs_reset, .again = host_again};

static void setup(void)
{
	memset(&be, 0, sizeof(be));
	memset(used_calls, 0, sizeof(used_calls));
	memset(again_calls, 0, sizeof(again_calls));
	resets_asked = 0;
	guest_start(&gs, false);
	cr_assert_eq(evloop_create(&loop, 16), 0);
	cr_assert_eq(vsock_dev_create(&d, G_CID, loop, &backend), 0);
	vsock_ops.reset(d); /* as Linux's probe does */
	cr_assert_eq(vsock_ops.activate(d, 0, gs.q, &host), 0);
}

static void teardown(void)
{
	evloop_destroy(loop);
	vsock_dev_destroy(d);
	guest_stop(&gs);
}

TestSuite(vsock_dev, .init = setup, .fini = teardown, .timeout = 10);

static struct ev_op tick;
static void tick_done(struct ev_op *op, int res)
{
	(void)op, (void)res;
	evloop_stop(loop);
}

/* One turn of the loop, so that deferred calls (interrupt decisions) run. */
static void turn(void)
{
	static struct __kernel_timespec ts = {.tv_nsec = 1000 * 1000};
	tick = (struct ev_op){.done = tick_done};
	cr_assert_eq(evloop_timeout(loop, &tick, &ts), 0);
	cr_assert_eq(evloop_run(loop), 0);
}

static uint16_t used_flags(unsigned q)
{
	return ((struct vring_used *)g_at(&gs, g_ring(q) + 0x2000, 4))->flags;
}

Test(vsock_dev, ops_and_config)
{
	uint64_t cid = 0;
	uint8_t b[4];

	cr_assert_eq(vsock_ops.device_id, VIRTIO_ID_VSOCK);
	cr_assert_eq(vsock_ops.num_queues, 3);
	cr_assert_eq(vsock_ops.features(d), 0, "streams only: no SEQPACKET");
	vsock_ops.config_read(d, 0, &cid, 8);
	cr_assert_eq(le64toh(cid), G_CID);
	vsock_ops.config_read(d, 4, b, 4);
	cr_assert_eq(b[0] | b[1] | b[2] | b[3], 0, "upper half of the CID");
	memset(b, 0xff, sizeof(b));
	vsock_ops.config_read(d, 6, b, 4);
	cr_assert_eq(b[2] | b[3], 0, "past the config: zeros");
	struct vsock_dev *d2;
	cr_assert_eq(vsock_dev_create(&d2, 2, loop, &backend), -EINVAL, "CID 2 is the host");
	struct vsock_backend partial = backend;
	partial.rx = NULL;
	cr_assert_eq(vsock_dev_create(&d2, G_CID, loop, &partial), -EINVAL);
}

Test(vsock_dev, activate_and_reset_tell_the_backend)
{
	uint64_t r = vsock_dev_resets(d);

	cr_assert_eq(r, 1);
	cr_assert_eq(be.changed, 2);
	vsock_ops.reset(d);
	cr_assert_eq(vsock_dev_resets(d), 2);
	cr_assert_eq(be.changed, 3);
	/* Reset: the device touches no queue, whatever the backend has. */
	queue_out(VIRTIO_VSOCK_OP_RST, NULL);
	guest_give_rx(&gs, 1, G_RXBUF);
	vsock_dev_kick(d);
	vsock_ops.notify(d, 0);
	struct vring_used_elem e;
	cr_assert_not(guest_used(&gs, 0, &e));
	cr_assert_eq(be.next_out, 0);
	/* Queues missing or too large: activation refused. */
	guest_restart(&gs, false);
	gs.q[1].ready = false;
	cr_assert_eq(vsock_ops.activate(d, 0, gs.q, &host), -EINVAL);
}

Test(vsock_dev, tx_packets_reach_the_backend)
{
	struct vring_used_elem e;

	guest_send(&gs, guest_hdr(1234, 52, VIRTIO_VSOCK_OP_REQUEST, 0, 4096, 0), NULL, 0);
	guest_send(&gs, guest_hdr(1234, 52, VIRTIO_VSOCK_OP_RW, 0, 4096, 0), "hello", 5);
	vsock_ops.notify(d, 1);
	cr_assert_eq(be.ntx, 2);
	cr_assert_eq(le16toh(be.tx[0].hdr.op), VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(le16toh(be.tx[1].hdr.op), VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(memcmp(be.tx[1].data, "hello", 5), 0);
	/* Both chains back at once, nothing written to them. */
	cr_assert(guest_used(&gs, 1, &e));
	cr_assert_eq(e.id, 0);
	cr_assert_eq(e.len, 0);
	cr_assert(guest_used(&gs, 1, &e));
	cr_assert_eq(e.id, 1);
	cr_assert_not(guest_used(&gs, 1, &e));
	/* One interrupt decision for the batch, after the loop's turn. */
	cr_assert_eq(used_calls[1], 0);
	turn();
	cr_assert_eq(used_calls[1], 1);
	/* Drained: notifications back on for the next packet. */
	cr_assert_eq(used_flags(1) & VRING_USED_F_NO_NOTIFY, 0);
	struct vsock_dev_stats st;
	vsock_dev_get_stats(d, &st);
	cr_assert_eq(st.tx_packets, 2);
	cr_assert_eq(st.tx_bytes, 5);
	cr_assert_eq(st.bad_packets, 0);
}

/* A guest that adds a TX chain for each one the device takes (one that
 * polls the used ring would) cannot hold the device's thread: it stops at
 * VIRTIO_BUDGET chains, notifications left off, and asks to be notified
 * again; that notification takes the rest. */
Test(vsock_dev, a_guest_refilling_tx_cannot_hold_the_device)
{
	guest_send(&gs, guest_hdr(1234, 52, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 4096, 0), NULL, 0);
	be.refill = true;
	vsock_ops.notify(d, 1);
	cr_assert_eq(be.ntx, VIRTIO_BUDGET);
	cr_assert_eq(again_calls[1], 1);
	cr_assert(used_flags(1) & VRING_USED_F_NO_NOTIFY, "the again is the kick");
	be.refill = false;
	vsock_ops.notify(d, 1);
	cr_assert_eq(be.ntx, VIRTIO_BUDGET + 1, "the last chain the guest added");
	cr_assert_eq(again_calls[1], 1);
	cr_assert_eq(used_flags(1) & VRING_USED_F_NO_NOTIFY, 0);
}

/* A guest that gives its RX buffers back as fast as they are used, with a
 * host program that always has data, held the device (and the event loop)
 * for as long as it kept on: at most VIRTIO_BUDGET packets a call, then
 * the queue is notified again. */
Test(vsock_dev, a_guest_refilling_rx_cannot_hold_the_device)
{
	struct vsock_dev_stats st;

	be.endless = true;
	guest_give_rx(&gs, 8, G_RXBUF);
	vsock_ops.notify(d, 0);
	vsock_dev_get_stats(d, &st);
	cr_assert_eq(st.rx_packets, VIRTIO_BUDGET);
	cr_assert_eq(again_calls[0], 1);
	be.endless = false;
}

/* A TX packet (a credit update, say) that lets the backend send: the
 * decisions for both queues are made as soon as the first RX batch is in,
 * not at the end of the loop's turn. */
Test(vsock_dev, first_rx_batch_decides_interrupts_at_once)
{
	struct virtio_vsock_hdr h;
	char data[8];

	guest_give_rx(&gs, 2, G_RXBUF);
	queue_out(VIRTIO_VSOCK_OP_RW, "go");
	guest_send(&gs, guest_hdr(1234, 52, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 4096, 0), NULL, 0);
	vsock_ops.notify(d, 1);
	cr_assert_eq(used_calls[0], 1);
	cr_assert_eq(used_calls[1], 1);
	turn();
	cr_assert_eq(used_calls[0], 1, "nothing left for the end of the turn");
	cr_assert_eq(used_calls[1], 1);
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(memcmp(data, "go", 2), 0);
}

Test(vsock_dev, bad_packets_are_dropped_counted_and_reported)
{
	struct vring_used_elem e;
	struct vsock_dev_stats st;
	struct virtio_vsock_hdr h = guest_hdr(1234, 52, VIRTIO_VSOCK_OP_RW, 0, 4096, 0);

	/* Another guest's CID: nothing names a connection of ours. */
	h.src_cid = htole64(G_CID + 1);
	guest_send(&gs, h, "x", 1);
	/* A SEQPACKET packet: names one, so the backend resets it. */
	h = guest_hdr(1234, 52, VIRTIO_VSOCK_OP_RW, 0, 4096, 0);
	h.type = htole16(VIRTIO_VSOCK_TYPE_SEQPACKET);
	guest_send(&gs, h, "x", 1);
	/* A TX chain with a writable buffer. */
	uint32_t l = 64;
	guest_offer(&gs, 1, &l, 1, true);
	vsock_ops.notify(d, 1);
	cr_assert_eq(be.ntx, 0);
	cr_assert_eq(be.nbad, 1);
	cr_assert_eq(le32toh(be.bad.src_port), 1234);
	for (int i = 0; i < 3; i++)
		cr_assert(guest_used(&gs, 1, &e), "chain %d given back", i);
	vsock_dev_get_stats(d, &st);
	cr_assert_eq(st.bad_packets, 3);
	cr_assert_eq(st.protocol_errors, 0);
	cr_assert_eq(resets_asked, 0, "bad packets do not break the device");
}

Test(vsock_dev, rx_delivers_while_the_guest_has_buffers)
{
	struct virtio_vsock_hdr h;
	char data[64];
	struct vsock_dev_stats st;

	queue_out(VIRTIO_VSOCK_OP_RESPONSE, NULL);
	queue_out(VIRTIO_VSOCK_OP_RW, "abc");
	queue_out(VIRTIO_VSOCK_OP_RW, "defg");
	guest_give_rx(&gs, 2, G_RXBUF);
	vsock_dev_kick(d);
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(le16toh(h.op), VIRTIO_VSOCK_OP_RESPONSE);
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(le16toh(h.op), VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(memcmp(data, "abc", 3), 0);
	cr_assert_not(guest_recv(&gs, &h, data, sizeof(data)));
	/* Out of buffers with a packet waiting: kicks on. */
	cr_assert_eq(used_flags(0) & VRING_USED_F_NO_NOTIFY, 0);
	vsock_dev_get_stats(d, &st);
	cr_assert_eq(st.rx_waits, 1);
	guest_give_rx(&gs, 1, G_RXBUF);
	vsock_ops.notify(d, 0);
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(memcmp(data, "defg", 4), 0);
	/* Nothing pending: RX kicks off again. */
	cr_assert(used_flags(0) & VRING_USED_F_NO_NOTIFY);
	turn();
	/* One decision per pass, made as soon as its first batch is in. */
	cr_assert_eq(used_calls[0], 2);
	vsock_dev_get_stats(d, &st);
	cr_assert_eq(st.rx_packets, 3);
	cr_assert_eq(st.rx_bytes, 7);
}

/* A chain taken for a packet that was not there after all is kept for the
 * next one, not given back empty. */
Test(vsock_dev, rx_chain_kept_when_nothing_came)
{
	struct virtio_vsock_hdr h;
	char data[8];
	struct vring_used_elem e;

	guest_give_rx(&gs, 2, G_RXBUF);
	queue_out(VIRTIO_VSOCK_OP_RW, "zz");
	be.dry = 1;
	vsock_dev_kick(d);
	cr_assert_not(guest_used(&gs, 0, &e));
	be.nout = be.next_out = 0;
	queue_out(VIRTIO_VSOCK_OP_RW, "yy");
	vsock_dev_kick(d);
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(memcmp(data, "yy", 2), 0);
	cr_assert_eq(gs.used_seen[0], 1);
	struct vring_used *used = g_at(&gs, g_ring(0) + 0x2000, 12);
	cr_assert_eq(used->ring[0].id, 0, "the first buffer, kept");
}

/* The backend gets the guest's buffers a batch (32) at a time; those it
 * does not fill stay the device's, in the order the guest gave them. */
Test(vsock_dev, rx_buffers_go_to_the_backend_in_batches)
{
	struct virtio_vsock_hdr h;
	char data[8];
	struct vring_used *used = g_at(&gs, g_ring(0) + 0x2000, 4 + 8 * G_QSIZE);

	guest_give_rx(&gs, 40, G_RXBUF);
	for (unsigned i = 0; i < 16; i++)
		queue_out(VIRTIO_VSOCK_OP_RW, "x");
	vsock_dev_kick(d);
	cr_assert_eq(be.rx_calls, 1, "one call for the batch");
	cr_assert_eq(be.rx_offered, 32);
	for (unsigned i = 0; i < 16; i++)
		cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	be.nout = be.next_out = 0;
	queue_out(VIRTIO_VSOCK_OP_RW, "y");
	vsock_dev_kick(d);
	cr_assert_eq(be.rx_offered, 24, "16 kept, and the guest's last 8");
	be.nout = be.next_out = 0;
	queue_out(VIRTIO_VSOCK_OP_RW, "z");
	vsock_dev_kick(d);
	cr_assert_eq(be.rx_offered, 23, "all kept");
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(data[0], 'y');
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(data[0], 'z');
	cr_assert_eq(used->ring[16].id, 16);
	cr_assert_eq(used->ring[17].id, 17, "the next buffer in the guest's order");
	cr_assert_not(guest_recv(&gs, &h, data, sizeof(data)));
}

/* Chains kept from one call to the next are moved to the front with their
 * segments: what the backend writes still lands in each one's buffers. */
Test(vsock_dev, kept_rx_chains_keep_their_buffers)
{
	uint32_t lens[] = {VSOCK_PKT_HDR_SIZE, 4, 4};
	const char *want[] = {"ab", "cd", "ef", "gh", "ij"};
	uint16_t heads[5];
	struct vring_used_elem e;
	struct virtio_vsock_hdr h;

	for (unsigned i = 0; i < 5; i++)
		heads[i] = guest_offer(&gs, 0, lens, 3, true);
	queue_out(VIRTIO_VSOCK_OP_RW, want[0]);
	queue_out(VIRTIO_VSOCK_OP_RW, want[1]);
	vsock_dev_kick(d);
	cr_assert_eq(be.rx_offered, 5);
	be.nout = be.next_out = 0;
	for (unsigned i = 2; i < 5; i++)
		queue_out(VIRTIO_VSOCK_OP_RW, want[i]);
	vsock_dev_kick(d);
	cr_assert_eq(be.rx_offered, 3);
	for (unsigned i = 0; i < 5; i++) {
		cr_assert(guest_used(&gs, 0, &e));
		cr_assert_eq(e.id, heads[i]);
		cr_assert_eq(e.len, VSOCK_PKT_HDR_SIZE + 2);
		memcpy(&h, g_at(&gs, g_buf(0, heads[i]), sizeof(h)), sizeof(h));
		cr_assert_eq(le32toh(h.len), 2);
		cr_assert_eq(memcmp(g_at(&gs, g_buf(0, (uint16_t)(heads[i] + 1)), 2), want[i], 2),
			     0, "packet %u", i);
	}
}

Test(vsock_dev, rx_buffers_split_like_older_linux)
{
	uint32_t lens[] = {VSOCK_PKT_HDR_SIZE, 100};
	struct vring_used_elem e;
	struct virtio_vsock_hdr h;

	guest_offer(&gs, 0, lens, 2, true);
	queue_out(VIRTIO_VSOCK_OP_RW, "split");
	vsock_dev_kick(d);
	cr_assert(guest_used(&gs, 0, &e));
	cr_assert_eq(e.len, VSOCK_PKT_HDR_SIZE + 5);
	memcpy(&h, g_at(&gs, g_buf(0, 0), sizeof(h)), sizeof(h));
	cr_assert_eq(le32toh(h.len), 5);
	cr_assert_eq(memcmp(g_at(&gs, g_buf(0, 1), 5), "split", 5), 0);
}

Test(vsock_dev, broken_rings_need_a_reset)
{
	struct vsock_dev_stats st;
	struct vring_avail *avail = g_at(&gs, g_ring(1) + 0x1000, 4);

	/* The TX avail index runs more than a queue ahead. */
	avail->idx = G_QSIZE + 5;
	vsock_ops.notify(d, 1);
	cr_assert_eq(resets_asked, 1);
	vsock_ops.notify(d, 1);
	cr_assert_eq(resets_asked, 1, "once");
	vsock_dev_get_stats(d, &st);
	cr_assert_eq(st.protocol_errors, 1);
	/* After a reset and a fresh start, it works again. */
	vsock_ops.reset(d);
	guest_restart(&gs, false);
	cr_assert_eq(vsock_ops.activate(d, 0, gs.q, &host), 0);
	guest_send(&gs, guest_hdr(1234, 52, VIRTIO_VSOCK_OP_REQUEST, 0, 4096, 0), NULL, 0);
	vsock_ops.notify(d, 1);
	cr_assert_eq(be.ntx, 1);
}

Test(vsock_dev, rx_buffer_without_room_for_data_needs_a_reset)
{
	uint32_t l = VSOCK_PKT_HDR_SIZE;

	guest_offer(&gs, 0, &l, 1, true);
	queue_out(VIRTIO_VSOCK_OP_RESPONSE, NULL);
	vsock_dev_kick(d);
	cr_assert_eq(resets_asked, 1);
	cr_assert_eq(be.next_out, 0, "nothing taken from the backend");
}

/* With EVENT_IDX, the device asks for a kick only when it waits. */
Test(vsock_dev, event_idx_rx_kick_only_when_waiting)
{
	uint16_t *avail_event = g_at(&gs, g_ring(0) + 0x2000 + 4 + 8 * G_QSIZE, 2);

	vsock_ops.reset(d);
	guest_restart(&gs, true);
	cr_assert_eq(vsock_ops.activate(d, 1ull << VIRTIO_RING_F_EVENT_IDX, gs.q, &host), 0);
	guest_give_rx(&gs, 1, G_RXBUF);
	queue_out(VIRTIO_VSOCK_OP_RW, "a");
	queue_out(VIRTIO_VSOCK_OP_RW, "b");
	vsock_dev_kick(d);
	/* One delivered, one waiting: kick me when you add buffer #1. */
	cr_assert_eq(*avail_event, 1);
	cr_assert_eq(be.next_out, 1);
}

/* ---- snapshot: quiesce ------------------------------------------------------ */

/* One event buffer on queue 2, as Linux's: 4 bytes, device-writable; filled
 * with a pattern the event must overwrite. */
static uint16_t give_event_buffer(void)
{
	uint32_t len = sizeof(struct virtio_vsock_event);
	uint16_t head = guest_offer(&gs, 2, &len, 1, true);

	memset(g_at(&gs, g_buf(2, head), 8), 0xa5, 8);
	return head;
}

/* Held RX chains go back to the guest's avail ring, the guest's queued TX
 * packets reach the backend first, and the event queue's buffer gets one
 * TRANSPORT_RESET (id 0, used length 4) with an interrupt decision for it;
 * afterwards the device delivers into the buffers given back. */
Test(vsock_dev, quiesce_gives_rx_back_and_sends_transport_reset)
{
	uint16_t ev_head = give_event_buffer();
	struct virtio_vsock_hdr h;
	struct vring_used_elem e;
	uint8_t *ev;
	char data[8];

	guest_give_rx(&gs, 5, G_RXBUF);
	queue_out(VIRTIO_VSOCK_OP_RW, "ab");
	vsock_dev_kick(d);
	cr_assert_eq(be.rx_offered, 5);
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(gs.q[0].last_avail - gs.q[0].next_used, 4, "four held");
	guest_send(&gs, guest_hdr(1234, 52, VIRTIO_VSOCK_OP_RW, 0, 4096, 0), "late", 4);
	memset(used_calls, 0, sizeof(used_calls));

	cr_assert(vsock_dev_quiesce(d));
	cr_assert_eq(gs.q[0].last_avail, 1, "the held chains offered again");
	cr_assert_eq(gs.q[0].next_used, 1);
	cr_assert_not(guest_used(&gs, 0, &e), "nothing used on RX");
	cr_assert_eq(be.ntx, 1, "the queued TX packet went to the backend first");
	cr_assert_eq(memcmp(be.tx[0].data, "late", 4), 0);
	cr_assert(guest_used(&gs, 2, &e));
	cr_assert_eq(e.id, ev_head);
	cr_assert_eq(e.len, sizeof(struct virtio_vsock_event));
	ev = g_at(&gs, g_buf(2, ev_head), 8);
	cr_assert_eq(ev[0] | ev[1] | ev[2] | ev[3], 0, "id TRANSPORT_RESET, little-endian");
	cr_assert_eq(ev[4], 0xa5, "nothing past the event");
	cr_assert_not(guest_used(&gs, 2, &e), "one event");
	cr_assert_eq(used_calls[2], 1, "the event signalled at once");
	cr_assert_eq(used_calls[1], 1, "so is the TX chain used");

	/* Works on: the next packet lands in the first buffer given back. */
	be.nout = be.next_out = 0;
	queue_out(VIRTIO_VSOCK_OP_RW, "cd");
	vsock_dev_kick(d);
	cr_assert_eq(be.rx_offered, 4);
	cr_assert(guest_used(&gs, 0, &e));
	cr_assert_eq(e.id, 1);
	cr_assert_eq(memcmp(g_at(&gs, g_buf(0, 1) + VSOCK_PKT_HDR_SIZE, 2), "cd", 2), 0);
}

/* No event buffer, one too small, no driver: no event, and nothing breaks. */
Test(vsock_dev, quiesce_without_an_event_buffer)
{
	uint32_t small = 2;
	struct vring_used_elem e;
	uint16_t head;

	cr_assert_not(vsock_dev_quiesce(d), "no event buffer");
	cr_assert_not(guest_used(&gs, 2, &e));
	head = guest_offer(&gs, 2, &small, 1, true);
	cr_assert_not(vsock_dev_quiesce(d), "a buffer too small");
	cr_assert(guest_used(&gs, 2, &e), "given back unused");
	cr_assert_eq(e.id, head);
	cr_assert_eq(e.len, 0);
	cr_assert_eq(resets_asked, 0);
	give_event_buffer();
	vsock_ops.reset(d);
	cr_assert_not(vsock_dev_quiesce(d), "no driver");
	cr_assert_not(guest_used(&gs, 2, &e));
	/* A driver without an event queue. */
	guest_restart(&gs, false);
	gs.q[2].ready = false;
	cr_assert_eq(vsock_ops.activate(d, 0, gs.q, &host), 0);
	cr_assert_not(vsock_dev_quiesce(d));
}

/* ---- snapshot: awaiting the guest's reset -------------------------------- */

static uint16_t *avail_event_of(unsigned q)
{
	return g_at(&gs, g_ring(q) + 0x2000 + 4 + 8 * G_QSIZE, 2);
}

/* Linux's driver as the device meets it after a snapshot: EVENT_IDX, eight
 * event buffers, RX buffers given but the backend's packet not asked for
 * yet. Quiesce sends the TRANSPORT_RESET into the first event buffer. */
static void quiesce_a_linux_guest(void)
{
	vsock_ops.reset(d);
	guest_restart(&gs, true);
	cr_assert_eq(vsock_ops.activate(d, 1ull << VIRTIO_RING_F_EVENT_IDX, gs.q, &host), 0);
	for (int i = 0; i < 8; i++)
		give_event_buffer();
	cr_assert(vsock_dev_quiesce(d));
	guest_give_rx(&gs, 2, G_RXBUF);
	queue_out(VIRTIO_VSOCK_OP_REQUEST, NULL);
}

/* The guest handled the event and gives its buffer back, as Linux's event
 * work does right after it reset its sockets: refill, then kick. */
static void guest_refills_the_event_queue(void)
{
	struct vring_used_elem e;

	cr_assert(guest_used(&gs, 2, &e), "the event");
	give_event_buffer();
	vsock_ops.notify(d, VSOCK_EVQ);
}

/* The guest's refill after the event must kick, though seven of its event
 * buffers are still with the device: with EVENT_IDX avail_event is its
 * avail idx (8), past last_avail (1). A kick of the event queue with no
 * refill (the VMM kicks every queue after a snapshot and a restore) is no
 * sign the guest took the event up; the refill's is, and the device then
 * asks the backend for what it held back (here a REQUEST). */
Test(vsock_dev, the_guests_refill_after_the_reset_kicks_and_ends_the_wait)
{
	struct virtio_vsock_hdr h;
	char data[8];

	quiesce_a_linux_guest();
	cr_assert_eq(*avail_event_of(VSOCK_EVQ), 8, "kick me at your next event buffer");
	cr_assert(vring_need_event(*avail_event_of(VSOCK_EVQ), 9, 8), "the refill kicks");
	cr_assert(vsock_dev_awaiting_reset(d));
	vsock_ops.notify(d, VSOCK_EVQ);
	cr_assert(vsock_dev_awaiting_reset(d), "the VMM's own kick");
	cr_assert_eq(be.rx_calls, 0);
	guest_refills_the_event_queue();
	cr_assert_not(vsock_dev_awaiting_reset(d));
	cr_assert_eq(be.rx_calls, 1, "the backend asked at the refill's kick");
	cr_assert(guest_recv(&gs, &h, data, sizeof(data)));
	cr_assert_eq(le16toh(h.op), VIRTIO_VSOCK_OP_REQUEST);
}

/* Without EVENT_IDX the guest kicks unless told not to: the event queue's
 * used flags must not say VRING_USED_F_NO_NOTIFY. */
Test(vsock_dev, without_event_idx_the_refill_kicks_too)
{
	give_event_buffer();
	give_event_buffer();
	cr_assert(vsock_dev_quiesce(d));
	cr_assert_eq(used_flags(VSOCK_EVQ) & VRING_USED_F_NO_NOTIFY, 0);
	cr_assert(vsock_dev_awaiting_reset(d));
	guest_refills_the_event_queue();
	cr_assert_not(vsock_dev_awaiting_reset(d));
}

/* Nothing awaited without an event sent; a driver reset, a new activation
 * or the backend giving up ends a wait. */
Test(vsock_dev, what_ends_the_wait_and_what_starts_none)
{
	cr_assert_not(vsock_dev_quiesce(d), "no event buffer");
	cr_assert_not(vsock_dev_awaiting_reset(d));
	give_event_buffer();
	cr_assert(vsock_dev_quiesce(d));
	cr_assert(vsock_dev_awaiting_reset(d));
	vsock_dev_stop_awaiting_reset(d);
	cr_assert_not(vsock_dev_awaiting_reset(d));

	quiesce_a_linux_guest();
	cr_assert(vsock_dev_awaiting_reset(d));
	vsock_ops.reset(d);
	cr_assert_not(vsock_dev_awaiting_reset(d), "reset");
	quiesce_a_linux_guest();
	cr_assert_eq(vsock_ops.activate(d, 1ull << VIRTIO_RING_F_EVENT_IDX, gs.q, &host), 0);
	cr_assert_not(vsock_dev_awaiting_reset(d), "activated anew");
}

static void save_into(struct vsock_dev *dv, struct wbuf *w)
{
	wbuf_init(w);
	cr_assert_eq(vsock_dev_save(dv, w), 0);
}

/* A device made as a restore makes it: created, activated with the guest's
 * queues as the transport restore left them. */
static struct vsock_dev *restored_device(void)
{
	struct vsock_dev *d2;

	cr_assert_eq(vsock_dev_create(&d2, G_CID, loop, &backend), 0);
	cr_assert_eq(vsock_ops.activate(d2, 1ull << VIRTIO_RING_F_EVENT_IDX, gs.q, &host), 0);
	return d2;
}

/* The state is the flag and the index to see move, after a version; the
 * restored device awaits the guest's reset as the saved one did, is not
 * fooled by the VMM's kick, and ends the wait at the guest's refill. */
Test(vsock_dev, save_and_restore_carry_the_wait)
{
	static const uint8_t want[] = {1, 0, 0, 0, 1, 8, 0};
	struct vsock_dev *d2;
	struct wbuf w, w2;
	struct rbuf r;
	char err[128] = "";

	quiesce_a_linux_guest();
	save_into(d, &w);
	cr_assert_eq(w.len, sizeof(want));
	cr_assert_eq(memcmp(w.p, want, sizeof(want)), 0, "version 1, awaiting, index 8");
	d2 = restored_device();
	cr_assert_not(vsock_dev_awaiting_reset(d2));
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vsock_dev_restore(d2, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	cr_assert(vsock_dev_awaiting_reset(d2));
	save_into(d2, &w2);
	cr_assert_eq(w2.len, w.len);
	cr_assert_eq(memcmp(w2.p, w.p, w.len), 0, "encodes back to its bytes");
	vsock_ops.notify(d2, VSOCK_EVQ);
	cr_assert(vsock_dev_awaiting_reset(d2), "the VMM's own kick");
	cr_assert_eq(be.rx_calls, 0);
	{
		struct vring_used_elem e;
		cr_assert(guest_used(&gs, 2, &e));
		give_event_buffer();
		vsock_ops.notify(d2, VSOCK_EVQ);
	}
	cr_assert_not(vsock_dev_awaiting_reset(d2));
	cr_assert_eq(be.rx_calls, 1);
	turn(); /* d2's deferred interrupt decisions, before it goes */
	vsock_dev_destroy(d2);
	wbuf_free(&w);
	wbuf_free(&w2);
}

Test(vsock_dev, save_and_restore_with_nothing_awaited)
{
	static const uint8_t want[] = {1, 0, 0, 0, 0, 0, 0};
	struct vsock_dev *d2;
	struct wbuf w;
	struct rbuf r;
	char err[128] = "";

	save_into(d, &w);
	cr_assert_eq(w.len, sizeof(want));
	cr_assert_eq(memcmp(w.p, want, sizeof(want)), 0);
	d2 = restored_device();
	give_event_buffer();
	cr_assert(vsock_dev_quiesce(d2));
	cr_assert(vsock_dev_awaiting_reset(d2));
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vsock_dev_restore(d2, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(vsock_dev_awaiting_reset(d2), "the saved state wins");
	turn(); /* d2's deferred interrupt decisions, before it goes */
	vsock_dev_destroy(d2);
	wbuf_free(&w);
}

/* One refused restore: its error and message, and the device as it was
 * (awaiting the guest's reset). */
static void refused(const uint8_t *in, size_t len, int want, const char *says)
{
	struct rbuf r;
	char err[160] = "";

	rbuf_init(&r, in, len);
	cr_assert_eq(vsock_dev_restore(d, &r, err, sizeof(err)), want, "%zu bytes: %s", len, err);
	cr_assert_not_null(strstr(err, says), "\"%s\" does not say \"%s\"", err, says);
	cr_assert_eq(strncmp(err, "vsock: ", 7), 0, "%s", err);
	cr_assert(vsock_dev_awaiting_reset(d), "changed by a refused restore");
}

Test(vsock_dev, restore_refuses_bad_state_and_changes_nothing)
{
	static const uint8_t good[] = {1, 0, 0, 0, 1, 8, 0};
	static const uint8_t v2[] = {2, 0, 0, 0, 1, 8, 0};
	static const uint8_t flag2[] = {1, 0, 0, 0, 2, 8, 0};
	static const uint8_t idx_alone[] = {1, 0, 0, 0, 0, 8, 0};
	struct rbuf r;
	char err[160] = "";

	quiesce_a_linux_guest();
	for (size_t n = 0; n < 4; n++)
		refused(good, n, -EBADMSG, "truncated before its version");
	for (size_t n = 4; n < sizeof(good); n++)
		refused(good, n, -EBADMSG, "truncated");
	refused(v2, sizeof(v2), -EBADMSG, "version 2");
	refused(flag2, sizeof(flag2), -EBADMSG, "awaiting the guest's reset");
	refused(idx_alone, sizeof(idx_alone), -EINVAL, "index (8) with no reset awaited");
	/* Awaited, but the restored driver set up no event queue, or none at
	 * all: the saved device could not have sent the event. */
	vsock_ops.reset(d);
	rbuf_init(&r, good, sizeof(good));
	cr_assert_eq(vsock_dev_restore(d, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "no event queue"), "%s", err);
	guest_restart(&gs, true);
	gs.q[2].ready = false;
	cr_assert_eq(vsock_ops.activate(d, 1ull << VIRTIO_RING_F_EVENT_IDX, gs.q, &host), 0);
	rbuf_init(&r, good, sizeof(good));
	cr_assert_eq(vsock_dev_restore(d, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "no event queue"), "%s", err);
	cr_assert_not(vsock_dev_awaiting_reset(d));
	/* Bytes after the state are the caller's. */
	{
		static const uint8_t more[] = {1, 0, 0, 0, 0, 0, 0, 0xee};
		rbuf_init(&r, more, sizeof(more));
		cr_assert_eq(vsock_dev_restore(d, &r, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(r.off, sizeof(more) - 1);
	}
}
