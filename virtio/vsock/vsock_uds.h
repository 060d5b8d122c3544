/* The host side of Firecracker's hybrid vsock: the Unix sockets, the
 * "CONNECT <port>\n" line a host program writes to open a connection to a
 * guest port, and the "OK <port>\n" answer. */
#ifndef FLINT_VSOCK_UDS_H
#define FLINT_VSOCK_UDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

/* Longest CONNECT line, "\n" included ("CONNECT 4294967295\n" is 19). */
#define VSOCK_UDS_LINE_MAX 32

/* A host program's line, read in pieces: given the n bytes the socket holds
 * (peeked, not consumed) and `have` bytes of the line read before, how many
 * to consume: up to and including the first "\n" (*done set), or all of them.
 * Returns that count, or -EMSGSIZE when the line would pass
 * VSOCK_UDS_LINE_MAX without a "\n". Reading no further than the "\n" leaves
 * the stream that follows it in the socket. */
ssize_t vsock_uds_line_scan(const char *p, size_t n, size_t have, bool *done);

/* Parse a line without its "\n" as Firecracker does, in words split at
 * white space (a CRLF line's "\r" is some): the first "CONNECT" (any case),
 * the second a decimal port 0..UINT32_MAX (a "+" before it allowed, no
 * other sign), any further words ignored. Returns 0 with *port, or
 * -EINVAL. */
int vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port) WARN_UNUSED;

/* The answer to a CONNECT: "OK <port>\n" in buf (size >= VSOCK_UDS_LINE_MAX).
 * Returns its length. */
size_t vsock_uds_ok_line(char *buf, size_t size, uint32_t port);

/* Connect, without blocking, to "<path>_<port>" (a guest connection to host
 * port `port`). A listener whose backlog is full counts as refused (an
 * AF_UNIX connect does not complete later). Returns 0 with *fd
 * (non-blocking, close-on-exec), or -errno (-ENAMETOOLONG, -ENOENT,
 * -ECONNREFUSED, -EAGAIN...). */
int vsock_uds_connect(const char *path, uint32_t port, int *fd) WARN_UNUSED;

#endif
