/* router: one API request (method, path, body) to its answer, by
 * Firecracker's swagger (v1.16.1): the paths, their methods, the JSON
 * bodies (config_json), and the answers: 204 with no body on success, 200
 * with JSON for a GET, 400 with {"fault_message": "..."} for every error
 * (bad JSON, an unknown field, a wrong method or path, a request in the
 * wrong phase, a body over the controller's cap, api_ctl_max_body). Paths of the swagger that flint
 * has no device for yet answer 400 saying so.
 *
 * Pure but for the controller it acts on: no I/O, so tests and the fuzzer
 * call it directly; http.c is the transport around it. */
#ifndef FLINT_API_ROUTER_H
#define FLINT_API_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "api/controller.h"

struct api_resp {
	int status; /* 200, 204, 400, or 413 (an MMDS document over its limit) */
	char *body; /* malloc'd JSON, NUL-terminated; NULL for 204 */
	size_t len; /* strlen(body), 0 without one */
	/* Firecracker's "Deprecation: true" header goes with the answer (a
	 * PUT /mmds/config of version 1). */
	bool deprecated;
};

/* Handle method ("GET", "PUT", "PATCH"; anything else is refused) on url
 * (its path; a "?query" is ignored) with the body body[0..len) (len 0: no
 * body). When len > api_ctl_max_body(ctl) the request is refused without reading
 * body, which may then be NULL (the HTTP layer stops storing it). Fills
 * *resp (free resp->body) and returns its status; counts the request on
 * ctl. */
int api_handle(struct api_ctl *ctl, const char *method, const char *url, const char *body,
	       size_t len, struct api_resp *resp);

/* Free resp's body. */
void api_resp_free(struct api_resp *resp);

#endif
