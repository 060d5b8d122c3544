/* route: flint serve's endpoints (see route.h). */
#include "serve/route.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The next path segment of *p (after its '/'), into seg: its length, or
 * -1 when there is none (the end) or it is longer than max. *p moves past it. */
static int segment(const char **p, char *seg, size_t max)
{
	const char *s = *p, *end;
	size_t n;

	if (*s != '/')
		return -1;
	s++;
	end = strchr(s, '/');
	n = end ? (size_t)(end - s) : strlen(s);
	if (n > max)
		return -2;
	memcpy(seg, s, n);
	seg[n] = '\0';
	*p = s + n;
	return (int)n;
}

static enum serve_ep refuse(struct serve_route *r, unsigned status, const char *allow,
			    const char *fmt, const char *arg)
{
	r->ep = SERVE_EP_NONE;
	r->status = status;
	r->allow = allow;
	snprintf(r->err, sizeof(r->err), fmt, arg);
	return SERVE_EP_NONE;
}

/* method is one of allow's (a ", "-separated list). */
static bool allowed(const char *method, const char *allow)
{
	size_t n = strlen(method);

	if (!n)
		return false;
	for (const char *a = allow; (a = strstr(a, method)); a += n)
		if ((a == allow || a[-1] == ' ') && (a[n] == ',' || a[n] == '\0'))
			return true;
	return false;
}

static enum serve_ep pick(struct serve_route *r, const char *method, const char *allow,
			  const char *path, enum serve_ep get, enum serve_ep put,
			  enum serve_ep post, enum serve_ep del)
{
	if (!allowed(method, allow))
		return refuse(r, 405, allow, "%s does not take this method", path);
	r->ep = !strcmp(method, "GET")	  ? get
		: !strcmp(method, "PUT")  ? put
		: !strcmp(method, "POST") ? post
					  : del;
	return r->ep;
}

/* A decimal id, 1 to UINT64_MAX, no sign, no leading zero. */
static bool parse_id(const char *s, uint64_t *id)
{
	uint64_t v = 0;

	if (*s < '1' || *s > '9')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*id = v;
	return true;
}

enum serve_ep serve_route(const char *method, const char *path, struct serve_route *r)
{
	char seg[FN_NAME_MAX + 2], err[128];
	const char *p = path;
	int n;

	memset(r, 0, sizeof(*r));
	if (!strcmp(path, "/"))
		return pick(r, method, "GET", "/", SERVE_EP_INFO, 0, 0, 0);
	if (!strcmp(path, "/metrics"))
		return pick(r, method, "GET", "/metrics", SERVE_EP_METRICS, 0, 0, 0);
	if (!strcmp(path, "/functions"))
		return pick(r, method, "GET", "/functions", SERVE_EP_FN_LIST, 0, 0, 0);
	if (strncmp(p, "/functions/", 11) != 0)
		return refuse(r, 404, NULL, "no such endpoint%s", "");
	p += 10;
	n = segment(&p, seg, FN_NAME_MAX + 1);
	if (n < 0)
		return refuse(r, 400, NULL, "a function name is 1 to %s bytes", "64");
	if (fn_name_check(seg, err, sizeof(err)) < 0)
		return refuse(r, 400, NULL, "%s", err);
	strcpy(r->name, seg);
	if (*p == '\0')
		return pick(r, method, "GET, PUT, DELETE", "/functions/{name}", SERVE_EP_FN_GET,
			    SERVE_EP_FN_PUT, 0, SERVE_EP_FN_DELETE);
	if (!strcmp(p, "/invoke"))
		return pick(r, method, "POST", "/functions/{name}/invoke", 0, 0, SERVE_EP_INVOKE,
			    0);
	if (strncmp(p, "/invocations/", 13) != 0)
		return refuse(r, 404, NULL, "no such endpoint%s", "");
	p += 12;
	/* An id is at most 20 digits: a longer segment is no id. */
	n = segment(&p, seg, 20);
	if (n < 0 || !parse_id(seg, &r->id) || strcmp(p, "/stderr") != 0) {
		if (n >= 0 && strcmp(p, "/stderr") != 0)
			return refuse(r, 404, NULL, "no such endpoint%s", "");
		return refuse(r, 400, NULL, "an invocation id is a decimal number from 1%s", "");
	}
	return pick(r, method, "GET", "/functions/{name}/invocations/{id}/stderr", SERVE_EP_STDERR,
		    0, 0, 0);
}
