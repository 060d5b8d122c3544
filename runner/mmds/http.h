/* MMDS's HTTP, the guest's side: a request the endpoint (mmds/stack.h)
 * took in, answered from the data store (mmds/mmds.h), as Firecracker's
 * MMDS answers it.
 *
 * GET PATH: the value at PATH, as JSON when the request's Accept is
 * application/json (and imds_compat is off), else in IMDS's text form.
 * PUT /latest/api/token with X-metadata-token-ttl-seconds (or the
 * X-aws-ec2- form) of 1 to 21600: a session token. With version 2 every
 * GET needs a good one in X-metadata-token (or X-aws-ec2-metadata-token);
 * with version 1 a GET is answered whatever it sends, and only counted.
 * PATCH and DELETE: 405, with Allow: GET, PUT; other methods 501. A
 * request with a body, or that does not parse, gets 400 and the
 * connection is closed; so does one that asks for it (Connection: close,
 * or HTTP/1.0 without keep-alive), once answered. Errors are text/plain, one line. The request's
 * parser is Node's http_parser (Debian's libhttp-parser). */
#ifndef FLINT_MMDS_HTTP_H
#define FLINT_MMDS_HTTP_H

#include <stdbool.h>

#include "mmds/mmds.h"
#include "mmds/stack.h"

/* What an interface's endpoint serves, for mmds_http_serve's ctx. */
struct mmds_http {
	struct mmds *store;
	bool v2;	  /* version 2: tokens required */
	bool imds_compat; /* IMDS's text form whatever Accept says */
};

/* mmds_serve_fn (stack.h) for ctx a struct mmds_http. */
int mmds_http_serve(void *ctx, const uint8_t *req, size_t len, bool full, struct mmds_reply *r);

#endif
