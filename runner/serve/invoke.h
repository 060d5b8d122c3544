/* invoke: POST /functions/{name}/invoke (see invoke.c). */
#ifndef FLINT_SERVE_INVOKE_H
#define FLINT_SERVE_INVOKE_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

struct server;

/* Run function name with body (malloc'd, taken over) as its stdin and
 * queue the answer on conn. inline_err: ?stderr=inline. *after may be set
 * to work left for once the answer is sent: serve_invoke_after(*after)
 * then (from libmicrohttpd's completion callback). */
enum MHD_Result serve_invoke(struct server *s, struct MHD_Connection *conn, const char *name,
			     char *body, size_t len, bool inline_err, void **after);
void serve_invoke_after(void *after);

#endif
