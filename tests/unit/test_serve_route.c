/* route (issue 13): flint serve's endpoints. Every endpoint under its
 * methods; 405 with the methods a path takes; 404 for paths that are none;
 * 400 for bad function names and invocation ids (empty, too long, bytes a
 * file name or metric label must not hold, zero, a sign, leading zeros,
 * past UINT64_MAX). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "serve/route.h"

static struct serve_route r;

static void is(const char *method, const char *path, enum serve_ep ep)
{
	cr_assert_eq(serve_route(method, path, &r), ep, "%s %s: %d (%s)", method, path, r.ep,
		     r.err);
	cr_assert_eq(r.ep, ep);
}

static void refused(const char *method, const char *path, unsigned status)
{
	cr_assert_eq(serve_route(method, path, &r), SERVE_EP_NONE, "%s %s routed to %d", method,
		     path, r.ep);
	cr_assert_eq(r.status, status, "%s %s: %u, expected %u (%s)", method, path, r.status,
		     status, r.err);
	cr_assert(r.err[0], "%s %s: no message", method, path);
}

Test(serve_route, endpoints)
{
	is("GET", "/", SERVE_EP_INFO);
	is("GET", "/metrics", SERVE_EP_METRICS);
	is("GET", "/functions", SERVE_EP_FN_LIST);
	is("PUT", "/functions/hello", SERVE_EP_FN_PUT);
	cr_assert_str_eq(r.name, "hello");
	is("GET", "/functions/hello", SERVE_EP_FN_GET);
	is("DELETE", "/functions/hello", SERVE_EP_FN_DELETE);
	is("POST", "/functions/a-b_C9/invoke", SERVE_EP_INVOKE);
	cr_assert_str_eq(r.name, "a-b_C9");
	is("GET", "/functions/f/invocations/42/stderr", SERVE_EP_STDERR);
	cr_assert_str_eq(r.name, "f");
	cr_assert_eq(r.id, 42);
	is("GET", "/functions/f/invocations/18446744073709551615/stderr", SERVE_EP_STDERR);
	cr_assert_eq(r.id, UINT64_MAX);
}

Test(serve_route, methods)
{
	refused("POST", "/", 405);
	cr_assert_str_eq(r.allow, "GET");
	refused("PATCH", "/functions/f", 405);
	cr_assert_str_eq(r.allow, "GET, PUT, DELETE");
	refused("GET", "/functions/f/invoke", 405);
	cr_assert_str_eq(r.allow, "POST");
	refused("PUT", "/functions", 405);
	refused("DELETE", "/metrics", 405);
	refused("POST", "/functions/f/invocations/1/stderr", 405);
	/* A method that is part of an allowed one is not it. */
	refused("ET", "/functions/f", 405);
	refused("PU", "/functions/f", 405);
	refused("", "/functions/f", 405);
}

Test(serve_route, not_found)
{
	refused("GET", "", 404);
	refused("GET", "/function", 404);
	refused("GET", "/functionsx", 404);
	refused("GET", "/functions/f/", 404);
	refused("GET", "/functions/f/run", 404);
	refused("POST", "/functions/f/invoke/", 404);
	refused("GET", "/functions/f/invocations/1", 404);
	refused("GET", "/functions/f/invocations/1/stdout", 404);
	refused("GET", "/functions/f/invocations/1/stderr/x", 404);
	refused("GET", "/metrics/", 404);
}

Test(serve_route, bad_names)
{
	char longname[80];

	refused("GET", "/functions/", 400);
	refused("GET", "/functions//invoke", 400);
	refused("GET", "/functions/a.b", 400);
	refused("GET", "/functions/..", 400);
	refused("GET", "/functions/a b", 400);
	refused("GET", "/functions/a\"b", 400);
	refused("GET", "/functions/\xc3\xa9", 400);
	memset(longname, 'a', 65);
	longname[65] = '\0';
	char path[128];
	snprintf(path, sizeof(path), "/functions/%s", longname);
	refused("GET", path, 400);
	longname[64] = '\0';
	snprintf(path, sizeof(path), "/functions/%s", longname);
	is("GET", path, SERVE_EP_FN_GET);
}

Test(serve_route, bad_ids)
{
	refused("GET", "/functions/f/invocations/0/stderr", 400);
	refused("GET", "/functions/f/invocations/007/stderr", 400);
	refused("GET", "/functions/f/invocations/-1/stderr", 400);
	refused("GET", "/functions/f/invocations/+1/stderr", 400);
	refused("GET", "/functions/f/invocations/1x/stderr", 400);
	refused("GET", "/functions/f/invocations//stderr", 400);
	refused("GET", "/functions/f/invocations/18446744073709551616/stderr", 400);
	refused("GET", "/functions/f/invocations/123456789012345678901/stderr", 400);
}
