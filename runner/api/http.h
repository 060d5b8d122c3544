/* http: the API's transport. HTTP/1.1 (libmicrohttpd) on a Unix socket
 * this module binds itself, each request's body gathered up to
 * the controller's cap (api_ctl_max_body) (what is beyond is read and dropped, and the request
 * answered 400), handed to api_handle() (router.h) and its answer sent
 * with Content-Type: application/json.
 *
 * libmicrohttpd runs without a thread of its own: one API thread, made by
 * api_http_start, installs the API seccomp filter (SECCOMP_API, no ioctl)
 * before it serves anything, then loops on the daemon's epoll fd and a
 * stop eventfd, calling MHD_run. Requests are handled one at a time on
 * that thread, so the api_vm_ops run there, under that filter.
 *
 * Create the thread before the main thread installs its own filter: a new
 * thread inherits its creator's filters (seccomp.h). */
#ifndef FLINT_API_HTTP_H
#define FLINT_API_HTTP_H

#include <stddef.h>

#include "api/controller.h"
#include "core/util.h"

/* Firecracker's --api-sock default. */
#define API_DEFAULT_SOCK "/run/flint.socket"

/* Clients served at once (Firecracker's API serves a handful); more wait in
 * the listen backlog. */
#define API_MAX_CONNECTIONS 16u
/* A connection idle this long is closed: a client that sends half a request
 * and stops holds nothing for ever. */
#define API_IDLE_TIMEOUT_S 60u

/* A body announced over this many bytes (or over the cap, if that is
 * larger) is refused without being read; up to it, an oversized body is
 * read (not kept) and then refused. */
#define API_MAX_DRAIN (1u << 20)

struct api_http;

/* Bind and listen on the Unix socket at path (a stale socket there is
 * replaced; one another process listens on, or a path that is something
 * else, is refused), start the API thread serving ctl, and return once its
 * filter is on. ctl must outlive the server. 0, or -errno with a message
 * in err[0..errlen). */
int api_http_start(struct api_http **out, const char *path, struct api_ctl *ctl, char *err,
		   size_t errlen) WARN_UNUSED;

/* Stop and join the API thread (a request being handled is finished
 * first), close every connection, remove the socket and free h. NULL ok. */
void api_http_stop(struct api_http *h);

#endif
