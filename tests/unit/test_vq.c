/* Split virtqueue against a real gmem: the helpers below play the guest
 * driver, laying out the descriptor table, avail and used rings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/gmem.h"
#include "vq.h"

#define RAM (1u << 20)
/* Ring placement for queues of up to 256 entries. */
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000
#define ITAB  0x5000 /* indirect tables */
#define ITAB2 0x6000
#define BUF   0x10000

static struct gmem *g;
static struct vq q;
static struct vq_seg segs[16];
static struct vq_chain c;
static uint16_t guest_avail; /* the driver's free-running avail idx */

static void setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	vq_reset(&q);
	c = (struct vq_chain){.seg = segs, .cap = ARRAY_SIZE(segs)};
	guest_avail = 0;
}

static void teardown(void)
{
	gmem_destroy(g);
}

TestSuite(vq, .init = setup, .fini = teardown);

/* Host view of guest memory; the test's own layout must be in RAM. */
static void *at(uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(g, gpa, len);
	cr_assert_not_null(p, "test layout outside RAM: %#llx", (unsigned long long)gpa);
	return p;
}

static struct vring_avail *avail(void)
{
	return at(AVAIL, sizeof(struct vring_avail));
}

static struct vring_used *used(void)
{
	return at(USED, sizeof(struct vring_used));
}

static void start(uint16_t size, bool event_idx)
{
	cr_assert_eq(vq_activate(&q, g, size, DESC, AVAIL, USED, event_idx), 0);
}

/* Descriptor i of the table at gpa `table`. */
static void set_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct vring_desc *d = at(table + (uint64_t)i * sizeof(*d), sizeof(*d));
	*d = (struct vring_desc){.addr = addr, .len = len, .flags = flags, .next = next};
}

/* Make chain `head` available: ring entry first, then idx (as a driver). */
static void offer(uint16_t head)
{
	uint16_t *ring = at(AVAIL + 4, 2u * q.size);
	ring[guest_avail % q.size] = head;
	avail()->idx = ++guest_avail;
}

/* A one-descriptor chain at index i, offered. */
static void offer_one(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags)
{
	set_desc(DESC, i, addr, len, flags, 0);
	offer(i);
}

static void assert_seg(unsigned n, uint64_t gpa, uint32_t len, bool write)
{
	cr_assert_lt(n, c.nseg);
	cr_assert_eq(c.seg[n].gpa, gpa);
	cr_assert_eq(c.seg[n].len, len);
	cr_assert_eq(c.seg[n].write, write);
	cr_assert_eq(c.seg[n].host, gmem_ptr(g, gpa, len));
}

/* A pop that must fail with err and leave the queue broken, not advanced. */
static void assert_pop_fails(int err)
{
	uint16_t last = q.last_avail;
	cr_assert_eq(vq_pop(&q, &c), err);
	cr_assert_eq(c.nseg, 0);
	cr_assert_eq(q.last_avail, last);
	cr_assert(q.broken);
	cr_assert_eq(q.errors, 1);
	cr_assert_eq(vq_pop(&q, &c), -EIO, "a broken queue stays broken");
}

/* ---- happy paths ---------------------------------------------------- */

Test(vq, single_readable_segment)
{
	start(16, false);
	cr_assert_not(vq_has_work(&q));
	cr_assert_eq(vq_pop(&q, &c), 0);
	offer_one(3, BUF, 512, 0);
	cr_assert(vq_has_work(&q));
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.head, 3);
	cr_assert_eq(c.nseg, 1);
	assert_seg(0, BUF, 512, false);
	cr_assert_eq(c.readable, 512);
	cr_assert_eq(c.writable, 0);
	cr_assert_eq(q.last_avail, 1);
	cr_assert_eq(q.pops, 1);
	cr_assert_not(vq_has_work(&q));
	cr_assert_eq(vq_pop(&q, &c), 0);
}

Test(vq, readable_then_writable_segments)
{
	start(16, false);
	set_desc(DESC, 0, BUF, 16, VRING_DESC_F_NEXT, 5);
	set_desc(DESC, 5, BUF + 0x1000, 4096, VRING_DESC_F_NEXT, 2);
	set_desc(DESC, 2, BUF + 0x3000, 1, VRING_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.head, 0);
	cr_assert_eq(c.nseg, 3);
	assert_seg(0, BUF, 16, false);
	assert_seg(1, BUF + 0x1000, 4096, false);
	assert_seg(2, BUF + 0x3000, 1, true);
	cr_assert_eq(c.readable, 16 + 4096);
	cr_assert_eq(c.writable, 1);
}

Test(vq, chain_as_long_as_the_queue)
{
	start(4, false);
	for (uint16_t i = 0; i < 4; i++)
		set_desc(DESC, i, BUF + i * 8u, 8, i < 3 ? VRING_DESC_F_NEXT : 0, i + 1);
	offer(0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.nseg, 4);
	cr_assert_eq(c.readable, 32);
}

Test(vq, indirect_table)
{
	start(16, false);
	set_desc(ITAB, 0, BUF, 64, VRING_DESC_F_NEXT, 2);
	set_desc(ITAB, 2, BUF + 0x100, 32, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(ITAB, 1, BUF + 0x200, 4, VRING_DESC_F_WRITE, 0);
	/* The WRITE flag on the descriptor naming the table is ignored. */
	offer_one(7, ITAB, 3 * sizeof(struct vring_desc),
		  VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.head, 7);
	cr_assert_eq(c.nseg, 3);
	assert_seg(0, BUF, 64, false);
	assert_seg(1, BUF + 0x100, 32, true);
	assert_seg(2, BUF + 0x200, 4, true);
	cr_assert_eq(c.readable, 64);
	cr_assert_eq(c.writable, 36);
}

Test(vq, direct_descriptors_then_indirect)
{
	start(16, false);
	set_desc(DESC, 1, BUF, 8, VRING_DESC_F_NEXT, 4);
	set_desc(DESC, 4, ITAB, sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
	set_desc(ITAB, 0, BUF + 8, 8, VRING_DESC_F_WRITE, 0);
	offer(1);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.nseg, 2);
	assert_seg(0, BUF, 8, false);
	assert_seg(1, BUF + 8, 8, true);
}

Test(vq, chains_come_out_in_order)
{
	start(8, false);
	offer_one(5, BUF, 1, 0);
	offer_one(0, BUF + 1, 2, 0);
	offer_one(7, BUF + 3, 3, VRING_DESC_F_WRITE);
	uint16_t heads[] = {5, 0, 7};
	for (unsigned i = 0; i < ARRAY_SIZE(heads); i++) {
		cr_assert_eq(vq_pop(&q, &c), 1);
		cr_assert_eq(c.head, heads[i]);
		cr_assert_eq(c.readable + c.writable, i + 1);
	}
	cr_assert_eq(vq_pop(&q, &c), 0);
}

Test(vq, zero_length_segment_is_skipped_unchecked)
{
	start(8, false);
	set_desc(DESC, 0, BUF, 4, VRING_DESC_F_NEXT, 1);
	set_desc(DESC, 1, UINT64_MAX, 0, VRING_DESC_F_NEXT, 2); /* not RAM, no bytes */
	set_desc(DESC, 2, BUF + 4, 4, VRING_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.nseg, 2);
	assert_seg(0, BUF, 4, false);
	assert_seg(1, BUF + 4, 4, true);
}

Test(vq, push_writes_element_then_idx)
{
	start(4, false);
	offer_one(2, BUF, 8, VRING_DESC_F_WRITE);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(vq_push(&q, c.head, 6), 0);
	cr_assert_eq(used()->idx, 1);
	cr_assert_eq(used()->ring[0].id, 2);
	cr_assert_eq(used()->ring[0].len, 6);
	cr_assert_eq(vq_push(&q, 3, 0), 0);
	cr_assert_eq(used()->idx, 2);
	cr_assert_eq(used()->ring[1].id, 3);
	cr_assert_eq(used()->ring[1].len, 0);
}

Test(vq, indices_wrap_past_65535)
{
	start(4, false);
	set_desc(DESC, 1, BUF, 8, VRING_DESC_F_WRITE, 0);
	/* 65536 + 3 round trips, two in flight at a time to cross the wrap
	 * with pending entries on both sides of it. */
	for (uint32_t n = 0; n < 65536 + 3; n += 2) {
		offer(1);
		offer(1);
		cr_assert_eq(vq_pop(&q, &c), 1);
		cr_assert_eq(vq_pop(&q, &c), 1);
		cr_assert_eq(c.head, 1);
		cr_assert_eq(vq_pop(&q, &c), 0);
		cr_assert_eq(vq_push(&q, 1, n), 0);
		cr_assert_eq(vq_push(&q, 1, n + 1), 0);
		cr_assert_eq(used()->ring[(uint16_t)(n + 1) % 4].len, n + 1);
	}
	cr_assert_eq(q.last_avail, (uint16_t)(65536 + 4));
	cr_assert_eq(used()->idx, (uint16_t)(65536 + 4));
	cr_assert_eq(q.pops, 65536 + 4);
}

Test(vq, reset_then_reactivate)
{
	start(8, false);
	offer_one(0, BUF, 8, 0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	vq_reset(&q);
	cr_assert_not(q.ready);
	cr_assert_eq(vq_pop(&q, &c), -EIO);
	cr_assert_eq(vq_push(&q, 0, 0), -EINVAL);
	cr_assert_not(vq_has_work(&q));
	cr_assert_not(vq_need_interrupt(&q));
	start(8, false);
	cr_assert_eq(q.last_avail, 0);
}

/* ---- activation ------------------------------------------------------ */

Test(vq, activate_accepts_every_power_of_two)
{
	for (uint32_t size = 1; size <= VQ_MAX_SIZE; size *= 2) {
		/* 32768 descriptors take 512 KiB: place the rings after them. */
		uint64_t a = DESC + 16ull * size, u = a + 0x11000;
		cr_assert_eq(vq_activate(&q, g, size, DESC, a, u, true), 0, "size %u", size);
		cr_assert_eq(q.size, size);
	}
}

Test(vq, activate_rejects_bad_sizes)
{
	uint32_t bad[] = {0, 3, 6, 100, 32767, 32769, 65535, 65536, 1u << 20, UINT32_MAX};
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		cr_assert_eq(vq_activate(&q, g, bad[i], DESC, AVAIL, USED, false), -EINVAL,
			     "size %u", bad[i]);
		cr_assert_not(q.ready);
	}
}

Test(vq, activate_rejects_misaligned_rings)
{
	cr_assert_eq(vq_activate(&q, g, 8, DESC + 8, AVAIL, USED, false), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, DESC + 1, AVAIL, USED, false), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, DESC, AVAIL + 1, USED, false), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, DESC, AVAIL, USED + 2, false), -EINVAL);
	cr_assert_not(q.ready);
	/* The minimum alignments are enough. */
	cr_assert_eq(vq_activate(&q, g, 8, DESC + 16, AVAIL + 2, USED + 4, false), 0);
}

Test(vq, activate_rejects_rings_past_ram)
{
	/* size 8: desc 128 bytes, avail 4+16 (+2), used 4+64 (+2). */
	cr_assert_eq(vq_activate(&q, g, 8, RAM - 128, RAM - 20, RAM - 68, false), 0);
	cr_assert_eq(vq_activate(&q, g, 8, RAM - 112, AVAIL, USED, false), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, DESC, RAM - 18, USED, false), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, DESC, AVAIL, RAM - 64, false), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, RAM, AVAIL, USED, false), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, UINT64_MAX - 15, AVAIL, USED, false), -EINVAL);
	/* The event fields count when EVENT_IDX is on. */
	cr_assert_eq(vq_activate(&q, g, 8, DESC, RAM - 20, USED, true), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, DESC, AVAIL, RAM - 68, true), -EINVAL);
	cr_assert_eq(vq_activate(&q, g, 8, DESC, RAM - 22, RAM - 72, true), 0);
	cr_assert_eq(vq_activate(&q, g, 32768, RAM - 0x70000, AVAIL, USED, false), -EINVAL);
}

/* ---- hostile chains ---------------------------------------------------- */

Test(vq, avail_idx_jump_beyond_size)
{
	start(8, false);
	offer_one(0, BUF, 8, 0);
	avail()->idx = 9; /* 9 pending in an 8-entry ring */
	assert_pop_fails(-EIO);
	cr_assert_not(vq_has_work(&q), "a broken queue has no work");
}

Test(vq, avail_idx_jump_of_exactly_size_is_fine)
{
	start(8, false);
	for (int i = 0; i < 8; i++)
		offer_one(i, BUF, 8, 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(vq_pop(&q, &c), 0);
}

Test(vq, avail_idx_going_backwards)
{
	start(8, false);
	offer_one(0, BUF, 8, 0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	avail()->idx = 0; /* 65535 "pending" */
	assert_pop_fails(-EIO);
}

Test(vq, head_out_of_range)
{
	start(8, false);
	set_desc(DESC, 0, BUF, 8, 0, 0);
	offer(8);
	assert_pop_fails(-EINVAL);
}

Test(vq, next_out_of_range)
{
	start(8, false);
	set_desc(DESC, 0, BUF, 8, VRING_DESC_F_NEXT, 8);
	offer(0);
	assert_pop_fails(-EINVAL);
}

Test(vq, two_descriptor_loop)
{
	start(8, false);
	set_desc(DESC, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	offer(0);
	assert_pop_fails(-ELOOP);
}

Test(vq, self_loop)
{
	start(8, false);
	set_desc(DESC, 3, BUF, 0, VRING_DESC_F_NEXT, 3); /* zero length: no cap hit */
	offer(3);
	assert_pop_fails(-ELOOP);
}

Test(vq, chain_longer_than_size)
{
	/* Four descriptors, five links: the walk must stop at the ttl. */
	start(4, false);
	for (uint16_t i = 0; i < 4; i++)
		set_desc(DESC, i, BUF, 8, VRING_DESC_F_NEXT, (i + 1) % 4);
	offer(0);
	assert_pop_fails(-ELOOP);
}

Test(vq, readable_after_writable)
{
	start(8, false);
	set_desc(DESC, 0, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 8, 0, 0);
	offer(0);
	assert_pop_fails(-EINVAL);
}

Test(vq, readable_after_empty_writable)
{
	start(8, false);
	set_desc(DESC, 0, BUF, 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 8, 0, 0);
	offer(0);
	assert_pop_fails(-EINVAL);
}

Test(vq, readable_in_indirect_after_direct_writable)
{
	start(8, false);
	set_desc(DESC, 0, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(DESC, 1, ITAB, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(ITAB, 0, BUF, 8, 0, 0);
	offer(0);
	assert_pop_fails(-EINVAL);
}

Test(vq, indirect_inside_indirect)
{
	start(8, false);
	set_desc(ITAB, 0, ITAB2, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(ITAB2, 0, BUF, 8, 0, 0);
	offer_one(0, ITAB, 16, VRING_DESC_F_INDIRECT);
	assert_pop_fails(-EINVAL);
}

Test(vq, indirect_with_next)
{
	start(8, false);
	set_desc(ITAB, 0, BUF, 8, 0, 0);
	set_desc(DESC, 1, BUF, 8, 0, 0);
	set_desc(DESC, 0, ITAB, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	offer(0);
	assert_pop_fails(-EINVAL);
}

Test(vq, indirect_empty_table)
{
	start(8, false);
	offer_one(0, ITAB, 0, VRING_DESC_F_INDIRECT);
	assert_pop_fails(-EINVAL);
}

Test(vq, indirect_length_not_multiple_of_16)
{
	start(8, false);
	set_desc(ITAB, 0, BUF, 8, 0, 0);
	offer_one(0, ITAB, 24, VRING_DESC_F_INDIRECT);
	assert_pop_fails(-EINVAL);
}

Test(vq, indirect_table_outside_ram)
{
	start(8, false);
	offer_one(0, RAM - 16, 32, VRING_DESC_F_INDIRECT);
	assert_pop_fails(-EFAULT);
}

Test(vq, indirect_table_too_big)
{
	start(8, false);
	/* 1024 entries are allowed (and here form a loop-free 1-entry chain)... */
	set_desc(ITAB, 0, BUF, 8, 0, 0);
	offer_one(0, ITAB, VQ_MAX_INDIRECT * 16, VRING_DESC_F_INDIRECT);
	cr_assert_eq(vq_pop(&q, &c), 1);
	/* ...1025 are not. */
	offer_one(0, ITAB, (VQ_MAX_INDIRECT + 1) * 16, VRING_DESC_F_INDIRECT);
	cr_assert_eq(vq_pop(&q, &c), -EINVAL);
}

Test(vq, indirect_next_out_of_table)
{
	start(8, false);
	/* Entry 2 would be inside the queue size but outside the 2-entry table. */
	set_desc(ITAB, 0, BUF, 8, VRING_DESC_F_NEXT, 2);
	offer_one(0, ITAB, 32, VRING_DESC_F_INDIRECT);
	assert_pop_fails(-EINVAL);
}

Test(vq, indirect_loop)
{
	start(8, false);
	set_desc(ITAB, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	set_desc(ITAB, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	offer_one(0, ITAB, 32, VRING_DESC_F_INDIRECT);
	assert_pop_fails(-ELOOP);
}

Test(vq, buffer_address_wraps)
{
	start(8, false);
	offer_one(0, UINT64_MAX - 8, 16, 0);
	assert_pop_fails(-EFAULT);
}

Test(vq, buffer_outside_ram)
{
	start(8, false);
	offer_one(0, RAM - 8, 16, VRING_DESC_F_WRITE);
	assert_pop_fails(-EFAULT);
}

Test(vq, buffer_in_mmio_hole)
{
	start(8, false);
	offer_one(0, 0xd0000000, 16, 0);
	assert_pop_fails(-EFAULT);
}

Test(vq, more_segments_than_storage)
{
	start(32, false);
	for (uint16_t i = 0; i < 17; i++)
		set_desc(DESC, i, BUF, 8, i < 16 ? VRING_DESC_F_NEXT : 0, i + 1);
	offer(0);
	assert_pop_fails(-E2BIG);
}

Test(vq, lengths_sum_over_4gib)
{
	/* 4096 readable descriptors of 1 MiB (all of RAM, legal on their own)
	 * add up to 2^32: one over UINT32_MAX. The rings move past the table. */
	enum { N = 4096, SIZE = 8192 };
	struct vq_seg *many = calloc(N, sizeof(*many));
	cr_assert_not_null(many);
	c = (struct vq_chain){.seg = many, .cap = N};
	uint64_t a = DESC + 16 * SIZE, u = a + 0x5000;
	cr_assert_eq(vq_activate(&q, g, SIZE, DESC, a, u, false), 0);
	for (uint16_t i = 0; i < N; i++)
		set_desc(DESC, i, 0, RAM, i < N - 1 ? VRING_DESC_F_NEXT : 0, i + 1);
	uint16_t *ring = at(a + 4, 2);
	ring[0] = 0;
	((struct vring_avail *)at(a, 4))->idx = 1;
	assert_pop_fails(-EOVERFLOW);
	/* One descriptor fewer fits exactly below 4 GiB. */
	vq_reset(&q);
	cr_assert_eq(vq_activate(&q, g, SIZE, DESC, a, u, false), 0);
	set_desc(DESC, N - 2, 0, RAM, 0, 0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.readable, (N - 1) * (uint64_t)RAM);
	free(many);
}

Test(vq, push_rejects_bad_head)
{
	start(8, false);
	cr_assert_eq(vq_push(&q, 8, 0), -EINVAL);
	cr_assert_eq(used()->idx, 0);
}

/* ---- notification suppression ------------------------------------------ */

static void set_used_event(uint16_t v)
{
	*(uint16_t *)at(AVAIL + 4 + 2u * q.size, 2) = v;
}

static uint16_t avail_event(void)
{
	return *(uint16_t *)at(USED + 4 + 8u * q.size, 2);
}

Test(vq, no_interrupt_flag_without_event_idx)
{
	start(8, false);
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert(vq_need_interrupt(&q));
	avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert_not(vq_need_interrupt(&q));
	avail()->flags = 0;
	cr_assert(vq_need_interrupt(&q));
	cr_assert_eq(q.interrupts, 2);
	cr_assert_eq(q.notifications_suppressed, 1);
}

Test(vq, event_idx_interrupts_only_when_crossing_used_event)
{
	start(8, true);
	avail()->flags = VRING_AVAIL_F_NO_INTERRUPT; /* ignored with EVENT_IDX */
	set_used_event(3);
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert(vq_need_interrupt(&q), "the first decision always interrupts");
	/* used idx 1 -> 2: event 3 not reached. */
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert_not(vq_need_interrupt(&q));
	/* 2 -> 4 crosses 3 (the guest wants an interrupt once idx passes 3). */
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert(vq_need_interrupt(&q));
	/* Nothing new since the last decision: no interrupt. */
	cr_assert_not(vq_need_interrupt(&q));
	/* The guest asks for the very next one: 4 -> 5 with event 4. */
	set_used_event(4);
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert(vq_need_interrupt(&q));
	/* An event index already behind: 5 -> 6 with event 4 does not fire. */
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert_not(vq_need_interrupt(&q));
	cr_assert_eq(q.interrupts, 3);
	cr_assert_eq(q.notifications_suppressed, 3);
}

Test(vq, event_idx_across_the_wrap)
{
	start(8, true);
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert(vq_need_interrupt(&q));
	/* used idx 1 -> 65536 (0): passes event 65535 across the wrap. */
	for (uint32_t i = 0; i < 65535; i++)
		cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert_eq(used()->idx, 0);
	set_used_event(65535);
	cr_assert(vq_need_interrupt(&q));
	/* 0 -> 1 with event still 65535: already signalled. */
	cr_assert_eq(vq_push(&q, 0, 0), 0);
	cr_assert_not(vq_need_interrupt(&q));
}

Test(vq, enable_notify_writes_avail_event)
{
	start(8, true);
	offer_one(0, BUF, 8, 0);
	offer_one(1, BUF, 8, 0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	vq_enable_notify(&q);
	cr_assert_eq(avail_event(), 1);
	cr_assert(vq_has_work(&q), "the re-check after enabling sees the second chain");
	cr_assert_eq(vq_pop(&q, &c), 1);
	vq_disable_notify(&q);
	cr_assert_eq(avail_event(), 1, "disable leaves avail_event alone");
	cr_assert_eq(used()->flags, 0, "used->flags is not used with EVENT_IDX");
	vq_enable_notify(&q);
	cr_assert_eq(avail_event(), 2);
	cr_assert_not(vq_has_work(&q));
}

Test(vq, notify_flag_without_event_idx)
{
	start(8, false);
	vq_disable_notify(&q);
	cr_assert_eq(used()->flags, VRING_USED_F_NO_NOTIFY);
	vq_enable_notify(&q);
	cr_assert_eq(used()->flags, 0);
	offer_one(0, BUF, 8, 0);
	cr_assert(vq_has_work(&q));
}

/* ---- vq_discard ------------------------------------------------------ */

/* Chains given back are popped again, the same heads in the same order;
 * one used already cannot be given back. */
Test(vq, discard_gives_back_the_last_chains)
{
	start(16, false);
	offer_one(1, BUF, 64, VRING_DESC_F_WRITE);
	offer_one(2, BUF + 64, 64, VRING_DESC_F_WRITE);
	offer_one(3, BUF + 128, 64, VRING_DESC_F_WRITE);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(vq_push(&q, c.head, 0), 0);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(vq_discard(&q, 3), -EINVAL, "only 2 are popped and not used");
	cr_assert_eq(q.last_avail, 3);
	cr_assert_eq(vq_discard(&q, 2), 0);
	cr_assert(vq_has_work(&q));
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.head, 2);
	cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(c.head, 3);
	cr_assert_eq(vq_pop(&q, &c), 0);
	cr_assert_eq(vq_discard(&q, 0), 0);
}
