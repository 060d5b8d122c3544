#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/bus.h"

struct rec {
	uint64_t off;
	uint32_t len;
	uint8_t data[8];
	int writes, reads;
};

static void rec_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct rec *r = opaque;
	r->reads++;
	r->off = off;
	r->len = len;
	memset(data, 0x5a, len);
}

static void rec_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct rec *r = opaque;
	r->writes++;
	r->off = off;
	r->len = len;
	memcpy(r->data, data, len < 8 ? len : 8);
}

static const struct bus_ops rec_ops = {.read = rec_read, .write = rec_write};

Test(bus, dispatch_hands_offsets)
{
	struct bus *b;
	struct rec a = {0}, c = {0};
	uint8_t v[2] = {1, 2}, out[2];
	cr_assert_eq(bus_create(&b), 0);
	cr_assert_eq(bus_register(b, 0x3f8, 8, &rec_ops, &a), 0);
	cr_assert_eq(bus_register(b, 0x60, 1, &rec_ops, &c), 0);
	cr_assert(bus_write(b, 0x3fb, v, 2));
	cr_assert_eq(a.writes, 1);
	cr_assert_eq(a.off, 3);
	cr_assert_eq(a.len, 2);
	cr_assert_eq(a.data[1], 2);
	cr_assert(bus_read(b, 0x60, out, 1));
	cr_assert_eq(c.reads, 1);
	cr_assert_eq(c.off, 0);
	cr_assert_eq(out[0], 0x5a);
	bus_destroy(b);
}

Test(bus, unclaimed_reads_are_all_ones)
{
	struct bus *b;
	struct rec a = {0};
	uint8_t out[4] = {0};
	cr_assert_eq(bus_create(&b), 0);
	cr_assert_eq(bus_register(b, 0x100, 4, &rec_ops, &a), 0);
	cr_assert_not(bus_read(b, 0x104, out, 4));
	cr_assert_eq(out[0], 0xff);
	cr_assert_eq(out[3], 0xff);
	cr_assert_not(bus_read(b, 0x102, out, 4), "an access straddling the end is refused");
	cr_assert_not(bus_write(b, 0xff, out, 2), "an access straddling the start is refused");
	cr_assert_not(bus_read(b, 0x100, out, 0));
	cr_assert_eq(a.reads + a.writes, 0);
	bus_destroy(b);
}

Test(bus, refuses_overlap_and_empty_ranges)
{
	struct bus *b;
	struct rec a = {0};
	cr_assert_eq(bus_create(&b), 0);
	cr_assert_eq(bus_register(b, 0x1000, 0x100, &rec_ops, &a), 0);
	cr_assert_eq(bus_register(b, 0x1000, 0x100, &rec_ops, &a), -EEXIST);
	cr_assert_eq(bus_register(b, 0x10ff, 1, &rec_ops, &a), -EEXIST);
	cr_assert_eq(bus_register(b, 0xf00, 0x101, &rec_ops, &a), -EEXIST);
	cr_assert_eq(bus_register(b, 0x0, 0x10000, &rec_ops, &a), -EEXIST, "covers the range");
	cr_assert_eq(bus_register(b, 0x2000, 0, &rec_ops, &a), -EINVAL);
	cr_assert_eq(bus_register(b, UINT64_MAX, 2, &rec_ops, &a), -EINVAL);
	cr_assert_eq(bus_register(b, 0xf00, 0x100, &rec_ops, &a), 0, "adjacent below is fine");
	cr_assert_eq(bus_register(b, 0x1100, 0x100, &rec_ops, &a), 0, "adjacent above is fine");
	cr_assert_eq(bus_register(b, UINT64_MAX, 1, &rec_ops, &a), 0);
	bus_destroy(b);
}

Test(bus, many_ranges_stay_sorted)
{
	struct bus *b;
	static struct rec r[64];
	uint8_t x = 0;
	cr_assert_eq(bus_create(&b), 0);
	/* Register in a scrambled order to exercise insertion and growth. */
	for (unsigned i = 0; i < 64; i++) {
		unsigned k = (i * 37) % 64;
		cr_assert_eq(bus_register(b, 0x10000 + k * 0x1000, 0x1000, &rec_ops, &r[k]), 0);
	}
	for (unsigned k = 0; k < 64; k++) {
		cr_assert(bus_write(b, 0x10000 + k * 0x1000 + 0x10, &x, 1));
		cr_assert_eq(r[k].writes, 1);
		cr_assert_eq(r[k].off, 0x10);
	}
	bus_destroy(b);
}
