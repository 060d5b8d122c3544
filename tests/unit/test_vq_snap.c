/* Split virtqueue snapshot: vq_save and vq_restore against a real gmem.
 * A restored queue goes on from the saved indexes; every queue the
 * guest's own set-up would refuse is refused on restore too, through the
 * same checks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/gmem.h"
#include "core/wire.h"
#include "vq.h"

#define RAM   (1u << 20)
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000
#define BUF   0x10000

static struct gmem *g;
static struct vq q, q2;
static struct vq_seg segs[4];
static struct vq_chain c;
static uint16_t guest_avail;
static struct wbuf w;

static void setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	vq_reset(&q);
	vq_reset(&q2);
	c = (struct vq_chain){.seg = segs, .cap = ARRAY_SIZE(segs)};
	guest_avail = 0;
	wbuf_init(&w);
}

static void teardown(void)
{
	wbuf_free(&w);
	gmem_destroy(g);
}

TestSuite(vq_snap, .init = setup, .fini = teardown);

static void *at(uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(g, gpa, len);
	cr_assert_not_null(p);
	return p;
}

/* The guest makes a one-descriptor chain at index i available. */
static void offer_one(uint16_t size, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags)
{
	struct vring_desc *d = at(DESC + (uint64_t)i * sizeof(*d), sizeof(*d));
	struct vring_avail *a = at(AVAIL, sizeof(*a) + 2u * size);

	*d = (struct vring_desc){.addr = addr, .len = len, .flags = flags};
	a->ring[guest_avail % size] = i;
	a->idx = ++guest_avail;
}

static struct vring_used *used_ring(uint16_t size)
{
	return at(USED, sizeof(struct vring_used) + sizeof(struct vring_used_elem) * size);
}

/* Encode a version-1 state by hand, for values vq_save never writes. */
struct st {
	uint32_t version;
	uint8_t ready, event_idx, broken;
	uint32_t size;
	uint64_t desc, avail, used;
	uint16_t last_avail, next_used, signalled_used;
	uint8_t signalled_valid;
};

static void put_state(struct wbuf *o, const struct st *s)
{
	wput_u32(o, s->version);
	wput_u8(o, s->ready);
	if (!s->ready)
		return;
	wput_u8(o, s->event_idx);
	wput_u8(o, s->broken);
	wput_u32(o, s->size);
	wput_u64(o, s->desc);
	wput_u64(o, s->avail);
	wput_u64(o, s->used);
	wput_u16(o, s->last_avail);
	wput_u16(o, s->next_used);
	wput_u16(o, s->signalled_used);
	wput_u8(o, s->signalled_valid);
}

static const struct st good = {.version = 1,
			       .ready = 1,
			       .event_idx = 1,
			       .size = 16,
			       .desc = DESC,
			       .avail = AVAIL,
			       .used = USED,
			       .last_avail = 5,
			       .next_used = 3};

/* Restore s into q2, which must then be exactly as it was. */
static void expect_refused(const struct st *s, int want, const char *says)
{
	struct wbuf o;
	struct rbuf r;
	struct vq before = q2;
	char err[200] = "";

	wbuf_init(&o);
	put_state(&o, s);
	rbuf_init(&r, o.p, o.len);
	cr_assert_eq(vq_restore(&q2, g, &r, err, sizeof(err)), want, "%s", err);
	cr_assert(strstr(err, says), "'%s' lacks '%s'", err, says);
	cr_assert_eq(strncmp(err, "vq: ", 4), 0, "%s", err);
	cr_assert_eq(memcmp(&before, &q2, sizeof(q2)), 0, "q2 unchanged");
	wbuf_free(&o);
}

Test(vq_snap, hand_encoding_matches_vq_save)
{
	struct wbuf o;

	cr_assert_eq(vq_activate(&q, g, 16, DESC, AVAIL, USED, true), 0);
	q.last_avail = 5;
	q.next_used = 3;
	cr_assert_eq(vq_save(&q, &w), 0);
	wbuf_init(&o);
	put_state(&o, &good);
	cr_assert_eq(o.len, w.len);
	cr_assert_arr_eq(o.p, w.p, w.len);
	wbuf_free(&o);
}

Test(vq_snap, round_trip_goes_on_from_the_saved_indexes)
{
	struct vring_used *u;
	struct rbuf r;
	char err[200] = "";

	cr_assert_eq(vq_activate(&q, g, 16, DESC, AVAIL, USED, true), 0);
	for (uint16_t i = 0; i < 3; i++)
		offer_one(16, i, BUF + i * 0x100, 0x100, VRING_DESC_F_WRITE);
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(vq_pop(&q, &c), 1);
	cr_assert_eq(vq_push(&q, 0, 10), 0);
	cr_assert_eq(vq_push(&q, 1, 11), 0);
	cr_assert(vq_need_interrupt(&q));
	cr_assert_eq(vq_save(&q, &w), 0);

	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vq_restore(&q2, g, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	cr_assert(q2.ready);
	cr_assert_not(q2.broken);
	cr_assert(q2.event_idx);
	cr_assert_eq(q2.size, 16);
	cr_assert_eq(q2.desc_gpa, DESC);
	cr_assert_eq(q2.avail_gpa, AVAIL);
	cr_assert_eq(q2.used_gpa, USED);
	cr_assert_eq(q2.desc, q.desc, "the same host view of the rings");
	cr_assert_eq(q2.avail, q.avail);
	cr_assert_eq(q2.used, q.used);
	cr_assert_eq(q2.last_avail, 3);
	cr_assert_eq(q2.next_used, 2);
	cr_assert_eq(q2.signalled_used, q.signalled_used);
	cr_assert_eq(q2.signalled_valid, true);
	cr_assert_eq(q2.gmem, g);

	/* The chain still held is returned, then a new one is popped. */
	cr_assert_eq(vq_push(&q2, 2, 12), 0);
	offer_one(16, 7, BUF + 0x800, 0x40, 0);
	cr_assert(vq_has_work(&q2));
	cr_assert_eq(vq_pop(&q2, &c), 1);
	cr_assert_eq(c.head, 7, "not a chain popped before the snapshot");
	cr_assert_eq(c.readable, 0x40);
	cr_assert_eq(vq_push(&q2, 7, 0), 0);
	u = used_ring(16);
	cr_assert_eq(u->idx, 4);
	cr_assert_eq(u->ring[2].id, 2);
	cr_assert_eq(u->ring[2].len, 12);
	cr_assert_eq(u->ring[3].id, 7);
	cr_assert_eq(vq_pop(&q2, &c), 0, "nothing more");
}

Test(vq_snap, a_queue_not_ready_restores_reset)
{
	struct rbuf r;

	cr_assert_eq(vq_save(&q, &w), 0);
	cr_assert_eq(w.len, 5, "version and ready only");
	cr_assert_eq(vq_activate(&q2, g, 8, DESC, AVAIL, USED, false), 0);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vq_restore(&q2, g, &r, NULL, 0), 0);
	cr_assert_not(q2.ready);
	cr_assert_eq(q2.size, 0);
	cr_assert_null(q2.desc);
}

Test(vq_snap, a_broken_queue_stays_broken)
{
	struct st s = good;
	struct rbuf r;

	s.broken = 1;
	put_state(&w, &s);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vq_restore(&q2, g, &r, NULL, 0), 0);
	cr_assert(q2.broken);
	cr_assert_eq(vq_pop(&q2, &c), -EIO);
}

Test(vq_snap, truncated_anywhere_refused)
{
	struct rbuf r;
	char err[200];

	cr_assert_eq(vq_activate(&q, g, 16, DESC, AVAIL, USED, true), 0);
	cr_assert_eq(vq_save(&q, &w), 0);
	cr_assert_eq(vq_activate(&q2, g, 8, DESC, AVAIL, USED, false), 0);
	q2.last_avail = 3;
	struct vq before = q2;
	for (size_t len = 0; len < w.len; len++) {
		err[0] = 0;
		rbuf_init(&r, w.p, len);
		cr_assert_eq(vq_restore(&q2, g, &r, err, sizeof(err)), -EBADMSG, "len %zu", len);
		cr_assert_eq(strncmp(err, "vq: ", 4), 0, "%s", err);
		cr_assert_eq(memcmp(&before, &q2, sizeof(q2)), 0, "len %zu: q2 unchanged", len);
	}
}

Test(vq_snap, corrupt_encoding_refused)
{
	struct st s = good;

	s.version = 2;
	expect_refused(&s, -EBADMSG, "version 2");
	s = good;
	s.event_idx = 2;
	expect_refused(&s, -EBADMSG, "flag");
	s = good;
	s.broken = 0xff;
	expect_refused(&s, -EBADMSG, "flag");
	s = good;
	s.signalled_valid = 3;
	expect_refused(&s, -EBADMSG, "flag");
	s = good;
	s.ready = 2;
	expect_refused(&s, -EBADMSG, "flag");
}

/* Placements the guest's own set-up is refused: vq_activate refuses each,
 * and so does a restore, which goes through the same checks. */
Test(vq_snap, placements_the_guest_could_not_set_up_refused)
{
	static const struct {
		uint32_t size;
		uint64_t desc, avail, used;
		const char *says;
	} bad[] = {
	    {0, DESC, AVAIL, USED, "power of two"},
	    {24, DESC, AVAIL, USED, "power of two"},
	    {65536, DESC, AVAIL, USED, "power of two"},
	    {1u << 31, DESC, AVAIL, USED, "power of two"},
	    {16, DESC + 8, AVAIL, USED, "misaligned"},
	    {16, DESC, AVAIL + 1, USED, "misaligned"},
	    {16, DESC, AVAIL, USED + 2, "misaligned"},
	    {16, 2 * RAM, AVAIL, USED, "guest memory"},
	    {16, DESC, 2 * RAM, USED, "guest memory"},
	    {16, DESC, AVAIL, 2 * RAM, "guest memory"},
	    {16, DESC, AVAIL, RAM - 8, "guest memory"}, /* straddles the end */
	    {16, UINT64_MAX - 15, AVAIL, USED, "guest memory"},
	    {32768, 0x90000, AVAIL, USED, "guest memory"}, /* a big table runs past RAM */
	};
	struct vq probe;

	cr_assert_eq(vq_activate(&q2, g, 8, DESC, AVAIL, USED, false), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct st s = good;

		s.size = bad[i].size;
		s.desc = bad[i].desc;
		s.avail = bad[i].avail;
		s.used = bad[i].used;
		s.last_avail = s.next_used = 0;
		cr_assert_eq(vq_activate(&probe, g, s.size, s.desc, s.avail, s.used, true), -EINVAL,
			     "case %zu: the guest's set-up is refused", i);
		expect_refused(&s, -EINVAL, bad[i].says);
	}
}

Test(vq_snap, more_chains_in_flight_than_the_ring_holds_refused)
{
	struct st s = good;
	struct rbuf r;

	s.last_avail = 20;
	s.next_used = 3; /* 17 held by a device on a queue of 16 */
	expect_refused(&s, -EINVAL, "17 chains in flight");
	s.last_avail = 2;
	s.next_used = 3; /* used ahead of avail: 65535 held */
	expect_refused(&s, -EINVAL, "in flight");
	/* Exactly a ring's worth, and the free-running indexes wrapping. */
	s.last_avail = 5;
	s.next_used = 65525;
	put_state(&w, &s);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vq_restore(&q2, g, &r, NULL, 0), 0);
	cr_assert_eq(q2.last_avail, 5);
	cr_assert_eq(q2.next_used, 65525);
}

/* Rings the guest placed in a hot-plugged block it then unplugged: the
 * queue runs on (inside flint's mapping), but a snapshot of it could not
 * be restored, which vq_in_memory tells before one is written. */
Test(vq_snap, rings_in_an_unplugged_block_are_not_in_memory)
{
	const uint64_t hot = 1ull << 30, block = 2ull << 20;

	cr_assert(vq_in_memory(&q), "a queue not ready");
	cr_assert_eq(gmem_hotplug_add(g, hot, 2 * block, block), 0);
	cr_assert_eq(gmem_hotplug_set(g, hot, block, true), 0);
	cr_assert_eq(vq_activate(&q, g, 16, hot + DESC, hot + AVAIL, hot + USED, true), 0);
	cr_assert(vq_in_memory(&q));
	cr_assert_eq(gmem_hotplug_set(g, hot, block, false), 0);
	cr_assert_not(vq_in_memory(&q));
	cr_assert_eq(gmem_hotplug_set(g, hot, block, true), 0);
	cr_assert(vq_in_memory(&q), "plugged again");
}
