#include "mmds/port.h"

#include <errno.h>
#include <stdlib.h>

#include "mmds/http.h"
#include "mmds/stack.h"

struct mmds_port {
	struct mmds_http http;
	struct mmds_stack *stack;
};

static void port_destroy(void *port)
{
	struct mmds_port *p = port;

	if (!p)
		return;
	mmds_stack_destroy(p->stack);
	free(p);
}

static bool port_take(void *port, const uint8_t *frame, size_t len)
{
	struct mmds_port *p = port;

	return mmds_stack_take(p->stack, frame, len, now_ns());
}

static bool port_owed(void *port, uint64_t *due_ns)
{
	struct mmds_port *p = port;

	return mmds_stack_owed(p->stack, now_ns(), due_ns);
}

static void port_reset(void *port)
{
	struct mmds_port *p = port;

	mmds_stack_reset(p->stack);
}

static size_t port_give(void *port, uint8_t *buf, size_t cap)
{
	struct mmds_port *p = port;

	return mmds_stack_give(p->stack, buf, cap, now_ns());
}

int mmds_port_create(struct net_detour *out, struct mmds *m, uint32_t ipv4, bool v2,
		     bool imds_compat)
{
	struct mmds_port *p = calloc(1, sizeof(*p));
	struct mmds_stack_params sp = {
	    .ipv4 = ipv4, .serve = mmds_http_serve, .stats = mmds_stats(m)};
	int r;

	if (!p)
		return -ENOMEM;
	p->http = (struct mmds_http){.store = m, .v2 = v2, .imds_compat = imds_compat};
	sp.ctx = &p->http;
	if ((r = mmds_stack_create(&p->stack, &sp)) < 0) {
		free(p);
		return r;
	}
	*out = (struct net_detour){.take = port_take,
				   .owed = port_owed,
				   .give = port_give,
				   .reset = port_reset,
				   .destroy = port_destroy,
				   .ctx = p};
	return 0;
}
