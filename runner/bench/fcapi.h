/* flint bench's client of Firecracker's API: HTTP/1.1 over its Unix
 * socket, one request at a time on one connection, to boot a guest the
 * way Firecracker's getting-started does (PUT /boot-source,
 * /machine-config, /drives/rootfs, then /actions InstanceStart:
 * vmm_firecracker_boot, bench/vmm.h). The same client drives flint's own
 * API, which answers as Firecracker's does, for flint bench's serve mode
 * and the bench programs (bench/api, bench/snapshot, bench/serve), which
 * link it statically: it needs only libc, jansson and core/util.
 * Trusts nothing it reads: a status line, headers and a body of bounded
 * length, or an error. */
#ifndef FLINT_BENCH_FCAPI_H
#define FLINT_BENCH_FCAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

#define FCAPI_ANSWER_MAX 4096 /* headers and body of one answer */
#define FCAPI_HEAD_MAX	 8192 /* a request's headers, an answer's (trailers too) */

/* Connect to the API socket at path, trying again every millisecond
 * while it is not there yet (the VMM is starting), until deadline_us
 * (CLOCK_MONOTONIC). 0 with *fd, or -errno (-ETIMEDOUT). */
int fcapi_connect(const char *path, uint64_t deadline_us, int *fd) WARN_UNUSED;

/* fcapi_connect to the socket of the child process pid, which it stops
 * waiting for once pid has ended (left unreaped): -ECHILD. */
int fcapi_connect_child(const char *path, pid_t pid, uint64_t deadline_us, int *fd) WARN_UNUSED;

/* One request: method, path, a JSON body (NULL: none). *status is the
 * answer's; body (len bytes, NUL-terminated, cut to fit) its body.
 * Returns 0, -EPROTO for an answer that is not HTTP/1.x or too long,
 * -ETIMEDOUT, or another -errno. */
int fcapi_request(int fd, const char *method, const char *path, const char *json,
		  uint64_t deadline_us, int *status, char *body, size_t len) WARN_UNUSED;

/* One request, as fcapi_exchange sends it: HTTP/1.1 with Host,
 * Accept and Content-Type (NULL: application/json) and Content-Length. */
struct fcapi_call {
	const char *method, *path;
	const char *content_type, *accept;
	const char *body; /* NULL: none */
	size_t body_len;
	uint64_t deadline_us; /* CLOCK_MONOTONIC: the whole exchange's */
	size_t max_answer;    /* headers and body (0: FCAPI_ANSWER_MAX) */
};

/* Its answer. The caller sets body and body_len (0: keep none); the rest
 * is fcapi_exchange's. */
struct fcapi_answer {
	int status;
	char head[FCAPI_HEAD_MAX]; /* status line, headers (and trailers), CRLF each */
	char *body;		   /* the body's first body_len - 1 bytes, NUL-ended */
	size_t body_len;
	uint64_t body_bytes;	/* the whole body's length (what was not kept too) */
	bool close;		/* Connection: close: the server closes after it */
	uint64_t first_byte_us; /* CLOCK_MONOTONIC at the answer's first byte */
};

/* Send c on the connection fd and read its answer into a: a status line
 * (HTTP/1.0 or 1.1), headers, then a body of Content-Length bytes, a
 * chunked one, or none. Returns 0; -EPROTO for an answer that is not
 * HTTP/1.x, is longer than c->max_answer, has a line over FCAPI_HEAD_MAX,
 * a bad length or chunk, or bytes after its end; -ETIMEDOUT past the
 * deadline; another -errno. The connection can take another request
 * after a 0 unless a->close. */
int fcapi_exchange(int fd, const struct fcapi_call *c, struct fcapi_answer *a) WARN_UNUSED;

/* Header name's value (no colon; any case; trailers too) in a, its
 * surrounding blanks dropped, into out (cut to fit): 0, or -ENOENT. */
int fcapi_header(const struct fcapi_answer *a, const char *name, char *out, size_t len);

/* What an error answer's body says: its JSON "fault_message" (Firecracker's
 * and flint's errors), else the body itself, into out (cut to fit). */
void fcapi_fault(const char *body, char *out, size_t len);

#endif
