/* The hybrid-vsock muxer's table and queues; see vsock_table.h. */
#include "vsock/vsock_table.h"

#include <string.h>

void vsock_table_init(struct vsock_table *t)
{
	memset(t, 0, sizeof(*t));
	t->next_port = VSOCK_TABLE_FIRST_PORT;
}

static unsigned bucket(uint32_t local_port, uint32_t peer_port)
{
	return ((local_port * 0x9e3779b1u) ^ peer_port) % VSOCK_TABLE_BUCKETS;
}

void vsock_table_add(struct vsock_table *t, struct vsock_entry *e, uint32_t local_port,
		     uint32_t peer_port)
{
	struct vsock_entry **b = &t->bucket[bucket(local_port, peer_port)];

	e->local_port = local_port;
	e->peer_port = peer_port;
	e->hnext = *b;
	e->hashed = true;
	*b = e;
}

void vsock_table_del(struct vsock_table *t, struct vsock_entry *e)
{
	struct vsock_entry **p = &t->bucket[bucket(e->local_port, e->peer_port)];

	if (!e->hashed)
		return;
	while (*p && *p != e)
		p = &(*p)->hnext;
	if (*p)
		*p = e->hnext;
	e->hashed = false;
}

struct vsock_entry *vsock_table_find(const struct vsock_table *t, uint32_t local_port,
				     uint32_t peer_port)
{
	struct vsock_entry *e = t->bucket[bucket(local_port, peer_port)];

	while (e && (e->local_port != local_port || e->peer_port != peer_port))
		e = e->hnext;
	return e;
}

static bool port_used(const struct vsock_table *t, uint32_t port)
{
	for (unsigned i = 0; i < VSOCK_TABLE_BUCKETS; i++)
		for (const struct vsock_entry *e = t->bucket[i]; e; e = e->hnext)
			if (e->local_port == port)
				return true;
	return false;
}

uint32_t vsock_table_new_port(struct vsock_table *t)
{
	for (;;) {
		uint32_t p = t->next_port++;
		if (t->next_port == 0)
			t->next_port = VSOCK_TABLE_FIRST_PORT;
		if (!port_used(t, p))
			return p;
	}
}

void vsock_table_queue(struct vsock_table *t, struct vsock_entry *e)
{
	if (e->queued)
		return;
	e->queued = true;
	e->qnext = NULL;
	e->qprev = t->qtail;
	if (t->qtail)
		t->qtail->qnext = e;
	else
		t->qhead = e;
	t->qtail = e;
}

void vsock_table_unqueue(struct vsock_table *t, struct vsock_entry *e)
{
	if (!e->queued)
		return;
	if (e->qprev)
		e->qprev->qnext = e->qnext;
	else
		t->qhead = e->qnext;
	if (e->qnext)
		e->qnext->qprev = e->qprev;
	else
		t->qtail = e->qprev;
	e->queued = false;
}

struct vsock_entry *vsock_table_first(const struct vsock_table *t)
{
	return t->qhead;
}

bool vsock_table_pending(const struct vsock_table *t)
{
	return t->rst_len || t->qhead;
}

bool vsock_table_push_rst(struct vsock_table *t, uint32_t local_port, uint32_t peer_port)
{
	if (t->rst_len == VSOCK_TABLE_RSTS)
		return false;
	t->rst[(t->rst_head + t->rst_len++) % VSOCK_TABLE_RSTS] =
	    (struct vsock_rst){local_port, peer_port};
	return true;
}

bool vsock_table_pop_rst(struct vsock_table *t, struct vsock_rst *out)
{
	if (!t->rst_len)
		return false;
	*out = t->rst[t->rst_head];
	t->rst_head = (t->rst_head + 1) % VSOCK_TABLE_RSTS;
	t->rst_len--;
	return true;
}

void vsock_table_clear_rsts(struct vsock_table *t)
{
	t->rst_head = t->rst_len = 0;
}
