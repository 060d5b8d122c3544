/* The driver's side of a split virtqueue, for device tests: lay out chains
 * in a descriptor table in fake guest memory, offer them in the avail ring,
 * and read what the device put in the used ring. One chain's buffers take
 * consecutive descriptors, wrapping at the queue size. Header-only. */
#ifndef FLINT_TEST_FAKE_DRIVER_H
#define FLINT_TEST_FAKE_DRIVER_H

#include <criterion/criterion.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/gmem.h"

/* One buffer of a chain as the driver describes it. */
struct sg {
	uint64_t gpa;
	uint32_t len;
	bool w; /* device-writable */
};

/* Where one queue's rings are, and the driver's indexes. */
struct fake_ring {
	uint64_t desc, avail, used;
	struct gmem *g;
	uint16_t size, avail_idx, next_desc;
};

/* [gpa, gpa + len) of g, which the test's layout must keep in RAM. */
static inline void *fake_at(struct gmem *g, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(g, gpa, len);
	cr_assert_not_null(p, "test layout outside RAM");
	return p;
}

/* A fresh queue of `size` entries in g: nothing offered yet. */
static inline void fake_ring_reset(struct fake_ring *r, struct gmem *g, uint16_t size)
{
	r->g = g;
	r->size = size;
	r->avail_idx = r->next_desc = 0;
}

/* Lay out n buffers as one chain in fresh descriptors and offer it; returns
 * its head. */
static inline uint16_t fake_offer(struct fake_ring *r, const struct sg *s, unsigned n)
{
	uint16_t head = r->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((r->next_desc + i) % r->size);
		uint16_t flags =
		    (s[i].w ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0);
		*(struct vring_desc *)fake_at(r->g, r->desc + idx * 16u, 16) = (struct vring_desc){
		    .addr = s[i].gpa,
		    .len = s[i].len,
		    .flags = flags,
		    .next = (uint16_t)((idx + 1) % r->size),
		};
	}
	r->next_desc = (uint16_t)((r->next_desc + n) % r->size);
	((uint16_t *)fake_at(r->g, r->avail + 4, 2u * r->size))[r->avail_idx % r->size] = head;
	__atomic_store_n(&((struct vring_avail *)fake_at(r->g, r->avail, 4))->idx, ++r->avail_idx,
			 __ATOMIC_RELEASE);
	return head;
}

/* The used ring's index, as the device last published it. */
static inline uint16_t fake_used_idx(const struct fake_ring *r)
{
	return __atomic_load_n(&((struct vring_used *)fake_at(r->g, r->used, 4))->idx,
			       __ATOMIC_ACQUIRE);
}

/* Used ring entry k (free-running). */
static inline struct vring_used_elem fake_used_elem(const struct fake_ring *r, uint16_t k)
{
	return ((struct vring_used *)fake_at(r->g, r->used, 4 + 8u * r->size))->ring[k % r->size];
}

#endif
