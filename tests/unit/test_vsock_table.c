/* The hybrid-vsock muxer's table: lookups through colliding buckets, the
 * round-robin queue, the RST ring, host port allocation. */
#include <criterion/criterion.h>

#include "vsock/vsock_table.h"

static struct vsock_table t;

static void init(void)
{
	vsock_table_init(&t);
}

TestSuite(vsock_table, .init = init);

Test(vsock_table, find_add_del)
{
	/* More entries than buckets: every bucket holds several. */
	static struct vsock_entry e[3 * VSOCK_TABLE_BUCKETS];

	for (unsigned i = 0; i < 3 * VSOCK_TABLE_BUCKETS; i++) {
		cr_assert_null(vsock_table_find(&t, 52 + i % 2, i));
		vsock_table_add(&t, &e[i], 52 + i % 2, i);
	}
	for (unsigned i = 0; i < 3 * VSOCK_TABLE_BUCKETS; i++)
		cr_assert_eq(vsock_table_find(&t, 52 + i % 2, i), &e[i]);
	cr_assert_null(vsock_table_find(&t, 53, 0), "same guest port, other host port");
	for (unsigned i = 0; i < 3 * VSOCK_TABLE_BUCKETS; i += 2)
		vsock_table_del(&t, &e[i]);
	vsock_table_del(&t, &e[0]); /* twice: a no-op */
	for (unsigned i = 0; i < 3 * VSOCK_TABLE_BUCKETS; i++)
		cr_assert_eq(vsock_table_find(&t, 52 + i % 2, i), i % 2 ? &e[i] : NULL);
	cr_assert_not(e[0].hashed);
	cr_assert(e[1].hashed);
}

Test(vsock_table, queue_serves_in_turn)
{
	struct vsock_entry a = {0}, b = {0}, c = {0};

	cr_assert_null(vsock_table_first(&t));
	cr_assert_not(vsock_table_pending(&t));
	vsock_table_queue(&t, &a);
	vsock_table_queue(&t, &b);
	vsock_table_queue(&t, &a); /* already queued: stays first */
	vsock_table_queue(&t, &c);
	cr_assert(vsock_table_pending(&t));
	cr_assert_eq(vsock_table_first(&t), &a);
	/* a sent a packet and still owes more: to the back. */
	vsock_table_unqueue(&t, &a);
	vsock_table_queue(&t, &a);
	cr_assert_eq(vsock_table_first(&t), &b);
	vsock_table_unqueue(&t, &c); /* from the middle */
	vsock_table_unqueue(&t, &c);
	vsock_table_unqueue(&t, &b);
	cr_assert_eq(vsock_table_first(&t), &a);
	vsock_table_unqueue(&t, &a);
	cr_assert_null(vsock_table_first(&t));
	cr_assert_null(t.qtail);
}

Test(vsock_table, rsts_in_order_and_bounded)
{
	struct vsock_rst r;

	cr_assert_not(vsock_table_pop_rst(&t, &r));
	for (unsigned i = 0; i < VSOCK_TABLE_RSTS; i++)
		cr_assert(vsock_table_push_rst(&t, i, 1000 + i));
	cr_assert_not(vsock_table_push_rst(&t, 1, 1), "full: dropped");
	cr_assert(vsock_table_pending(&t));
	for (unsigned i = 0; i < 10; i++) {
		cr_assert(vsock_table_pop_rst(&t, &r));
		cr_assert_eq(r.local_port, i);
		cr_assert_eq(r.peer_port, 1000 + i);
	}
	/* Wraps around the ring. */
	cr_assert(vsock_table_push_rst(&t, 7, 7));
	vsock_table_clear_rsts(&t);
	cr_assert_not(vsock_table_pop_rst(&t, &r));
	cr_assert_not(vsock_table_pending(&t));
}

Test(vsock_table, new_ports_skip_those_in_use_and_wrap)
{
	struct vsock_entry e = {0}, f = {0};

	cr_assert_eq(vsock_table_new_port(&t), VSOCK_TABLE_FIRST_PORT);
	/* A guest connection to a host port in the range is skipped. */
	vsock_table_add(&t, &e, VSOCK_TABLE_FIRST_PORT + 1, 9);
	cr_assert_eq(vsock_table_new_port(&t), VSOCK_TABLE_FIRST_PORT + 2);
	t.next_port = UINT32_MAX;
	cr_assert_eq(vsock_table_new_port(&t), UINT32_MAX);
	vsock_table_add(&t, &f, VSOCK_TABLE_FIRST_PORT, 5);
	cr_assert_eq(vsock_table_new_port(&t), VSOCK_TABLE_FIRST_PORT + 2,
		     "wrapped, past the ports in use");
}
