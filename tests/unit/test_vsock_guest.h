/* A fake virtio-vsock guest driver for the device and muxer tests: guest
 * memory with the three queues, chains laid out the way Linux 6.1 does
 * (TX: header and payload in two buffers; RX: one buffer per packet), and
 * readers for what the device put in the used rings. One buffer per
 * descriptor index, at a fixed address, so a used head names its buffer.
 * Header-only (static inline). One thread plays the guest. */
#ifndef FLINT_TEST_VSOCK_GUEST_H
#define FLINT_TEST_VSOCK_GUEST_H

#include <criterion/criterion.h>
#include <endian.h>
#include <linux/virtio_vsock.h>
#include <linux/vm_sockets.h>
#include <string.h>
#include <unistd.h>

#include "core/gmem.h"
#include "vq.h"
#include "vsock/vsock_pkt.h"

#define G_RAM	  (16u << 20)
#define G_QSIZE	  64
#define G_CID	  3
#define G_BUFSZ	  (VSOCK_PKT_MAX_PAYLOAD + 4096)
#define G_BUFBASE 0x100000
#define G_RXBUF	  4096 /* RX buffer size, as Linux's (about) */

struct guest {
	struct gmem *g;
	struct vq q[3];
	uint16_t avail[3], next_desc[3], used_seen[3];
	/* Descriptors the device holds, and each chain's count by head. */
	unsigned in_flight[3];
	uint8_t chain_len[3][G_QSIZE];
};

static inline uint64_t g_ring(unsigned q)
{
	return 0x10000ull * (q + 1);
}

static inline uint64_t g_buf(unsigned q, uint16_t idx)
{
	return G_BUFBASE + ((uint64_t)q * G_QSIZE + idx) * G_BUFSZ;
}

static inline void *g_at(struct guest *gs, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(gs->g, gpa, len);
	cr_assert_not_null(p, "test layout outside RAM");
	return p;
}

static inline void guest_start(struct guest *gs, bool event_idx)
{
	memset(gs, 0, sizeof(*gs));
	cr_assert_eq(gmem_create(&gs->g, G_RAM), 0);
	cr_assert_leq(g_buf(3, 0), G_RAM);
	for (unsigned q = 0; q < 3; q++)
		cr_assert_eq(vq_activate(&gs->q[q], gs->g, G_QSIZE, g_ring(q), g_ring(q) + 0x1000,
					 g_ring(q) + 0x2000, event_idx),
			     0);
}

/* The guest forgets its rings (after a device reset) and sets them up anew. */
static inline void guest_restart(struct guest *gs, bool event_idx)
{
	struct gmem *g = gs->g;

	memset(g_at(gs, g_ring(0), 0x30000), 0, 0x30000);
	memset(gs, 0, sizeof(*gs));
	gs->g = g;
	for (unsigned q = 0; q < 3; q++)
		cr_assert_eq(vq_activate(&gs->q[q], gs->g, G_QSIZE, g_ring(q), g_ring(q) + 0x1000,
					 g_ring(q) + 0x2000, event_idx),
			     0);
}

static inline void guest_stop(struct guest *gs)
{
	gmem_destroy(gs->g);
}

static inline bool guest_used(struct guest *gs, unsigned q, struct vring_used_elem *e);

/* Wait until n descriptors of queue q (and their buffers) are free. TX
 * chains come back by themselves: take them back, waiting for a device
 * that runs on another thread. */
static inline void guest_reserve(struct guest *gs, unsigned q, unsigned n)
{
	struct vring_used_elem e;

	for (int i = 0; gs->in_flight[q] + n > G_QSIZE; i++) {
		cr_assert_eq(q, 1, "queue %u full", q);
		cr_assert_lt(i, 100000, "the device does not give TX chains back");
		if (!guest_used(gs, q, &e))
			usleep(20);
	}
}

/* Offer a chain of n buffers (lens[i] bytes, writable if w) on queue q; the
 * data the caller wants in them goes in with g_buf(q, desc index). Returns
 * the head. */
static inline uint16_t guest_offer(struct guest *gs, unsigned q, const uint32_t *lens, unsigned n,
				   bool w)
{
	uint16_t head;
	struct vring_desc *desc = g_at(gs, g_ring(q), 16 * G_QSIZE);
	struct vring_avail *avail = g_at(gs, g_ring(q) + 0x1000, 4 + 2 * G_QSIZE);

	guest_reserve(gs, q, n);
	head = gs->next_desc[q];
	gs->in_flight[q] += n;
	gs->chain_len[q][head] = (uint8_t)n;

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % G_QSIZE);
		desc[idx] =
		    (struct vring_desc){.addr = g_buf(q, idx),
					.len = lens[i],
					.flags = (uint16_t)((w ? VRING_DESC_F_WRITE : 0) |
							    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
					.next = (uint16_t)((idx + 1) % G_QSIZE)};
	}
	gs->next_desc[q] = (uint16_t)((head + n) % G_QSIZE);
	avail->ring[gs->avail[q] % G_QSIZE] = head;
	__atomic_store_n(&avail->idx, ++gs->avail[q], __ATOMIC_RELEASE);
	return head;
}

/* A guest packet header from port src_port to the host's dst_port. */
static inline struct virtio_vsock_hdr guest_hdr(uint32_t src_port, uint32_t dst_port, uint16_t op,
						uint32_t flags, uint32_t buf_alloc,
						uint32_t fwd_cnt)
{
	return (struct virtio_vsock_hdr){.src_cid = htole64(G_CID),
					 .dst_cid = htole64(VMADDR_CID_HOST),
					 .src_port = htole32(src_port),
					 .dst_port = htole32(dst_port),
					 .type = htole16(VIRTIO_VSOCK_TYPE_STREAM),
					 .op = htole16(op),
					 .flags = htole32(flags),
					 .buf_alloc = htole32(buf_alloc),
					 .fwd_cnt = htole32(fwd_cnt)};
}

/* Queue a TX packet: h, then len bytes of data in a second buffer. */
static inline uint16_t guest_send(struct guest *gs, struct virtio_vsock_hdr h, const void *data,
				  uint32_t len)
{
	uint16_t idx = gs->next_desc[1];
	uint32_t lens[2] = {VSOCK_PKT_HDR_SIZE, len};

	guest_reserve(gs, 1, len ? 2 : 1);
	h.len = htole32(len);
	memcpy(g_at(gs, g_buf(1, idx), sizeof(h)), &h, sizeof(h));
	if (len)
		memcpy(g_at(gs, g_buf(1, (uint16_t)((idx + 1) % G_QSIZE)), len), data, len);
	return guest_offer(gs, 1, lens, len ? 2 : 1, false);
}

/* Offer n RX buffers of size bytes each. */
static inline void guest_give_rx(struct guest *gs, unsigned n, uint32_t size)
{
	for (unsigned i = 0; i < n; i++)
		guest_offer(gs, 0, &size, 1, true);
}

/* The next used entry of queue q, if the device published one. */
static inline bool guest_used(struct guest *gs, unsigned q, struct vring_used_elem *e)
{
	struct vring_used *used = g_at(gs, g_ring(q) + 0x2000, 4 + 8 * G_QSIZE);

	if (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == gs->used_seen[q])
		return false;
	*e = used->ring[gs->used_seen[q]++ % G_QSIZE];
	cr_assert_lt(e->id, G_QSIZE);
	gs->in_flight[q] -= gs->chain_len[q][e->id];
	gs->chain_len[q][e->id] = 0;
	return true;
}

/* A packet the device delivered in an RX buffer: header into *h, payload
 * into data (up to cap); returns false when there is none. */
static inline bool guest_recv(struct guest *gs, struct virtio_vsock_hdr *h, void *data,
			      uint32_t cap)
{
	struct vring_used_elem e;
	uint32_t len;

	if (!guest_used(gs, 0, &e))
		return false;
	cr_assert_geq(e.len, VSOCK_PKT_HDR_SIZE);
	memcpy(h, g_at(gs, g_buf(0, (uint16_t)e.id), sizeof(*h)), sizeof(*h));
	len = le32toh(h->len);
	cr_assert_eq(e.len, VSOCK_PKT_HDR_SIZE + len, "used length is header + payload");
	cr_assert_leq(len, cap);
	if (len)
		memcpy(data, g_at(gs, g_buf(0, (uint16_t)e.id) + VSOCK_PKT_HDR_SIZE, len), len);
	return true;
}

#endif
