/* route: which of flint serve's endpoints a request names.
 *
 *   GET    /                                        the server: limits, totals
 *   GET    /functions                               every function, in brief
 *   PUT    /functions/{name}                        register (body: fn.h)
 *   GET    /functions/{name}                        configuration, pool, counters
 *   DELETE /functions/{name}                        drain, then remove
 *   POST   /functions/{name}/invoke                 run it (body: stdin)
 *   GET    /functions/{name}/invocations/{id}/stderr  a past invocation's stderr
 *   GET    /metrics                                 Prometheus text
 *
 * Pure: the URL's path (libmicrohttpd hands it without the query, percent
 * escapes undone) and the method in, the endpoint out, or the HTTP status
 * that refuses it: 404 for a path that is none of these, 405 (with the
 * methods it takes) for one that is there under another method, 400 for a
 * malformed function name or invocation id. A name is checked as fn.h's
 * fn_name_check does, so that it is safe in a file name and a metric label. */
#ifndef FLINT_SERVE_ROUTE_H
#define FLINT_SERVE_ROUTE_H

#include <stdint.h>

#include "serve/fn.h"

enum serve_ep {
	SERVE_EP_NONE, /* refused: see status */
	SERVE_EP_INFO,
	SERVE_EP_FN_LIST,
	SERVE_EP_FN_PUT,
	SERVE_EP_FN_GET,
	SERVE_EP_FN_DELETE,
	SERVE_EP_INVOKE,
	SERVE_EP_STDERR,
	SERVE_EP_METRICS,
};

struct serve_route {
	enum serve_ep ep;
	char name[FN_NAME_MAX + 1]; /* the function's, "" when none */
	uint64_t id;		    /* SERVE_EP_STDERR: the invocation's, >= 1 */
	unsigned status;	    /* SERVE_EP_NONE: 400, 404 or 405 */
	const char *allow;	    /* 405: the Allow header's value */
	char err[160];		    /* SERVE_EP_NONE: why, for the answer's body */
};

/* Route method and path into *r; returns r->ep. */
enum serve_ep serve_route(const char *method, const char *path, struct serve_route *r);

#endif
