/* usock: a listening Unix socket at a path, made as every flint listener
 * (the API's, vsock's, flint serve's) makes it: a stale socket file a dead
 * process left is replaced, a live one or a file of another kind never is,
 * and only a socket this process made is removed at the end. */
#ifndef FLINT_USOCK_H
#define FLINT_USOCK_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/util.h"

/* A listener's own socket file: which to remove at the end. */
struct usock_made {
	dev_t dev;
	ino_t ino;
};

/* Listen at path (SOCK_STREAM, close-on-exec, plus flags: SOCK_NONBLOCK),
 * backlog deep. A path of 1 to 107 bytes (-ENAMETOOLONG otherwise);
 * refused, leaving what is there: a file of another kind (-EEXIST), a
 * socket something accepts connections on (-EADDRINUSE). With mode, the
 * socket file gets it before listen (so that no one connects before).
 * made (may be NULL) gets the file's identity. Returns the fd, or -errno
 * (after bind, with the file removed). */
int usock_listen(const char *path, int flags, int backlog, mode_t mode,
		 struct usock_made *made) WARN_UNUSED;

/* Whether usock_listen(path) would listen, without making anything: its
 * refusals, and the directory path is in must be one this process may
 * create a file in (-ENOENT, -ENOTDIR, -EACCES, ...). A stale socket
 * counts as free and is left there. 0 or -errno. */
int usock_check(const char *path) WARN_UNUSED;

/* Remove path if it is still the socket made (not one another process put
 * there since). */
void usock_remove(const char *path, const struct usock_made *made);

/* What a -errno of usock_listen or usock_check means, for a message after
 * the path. */
const char *usock_why(int r);

#endif
