/* vmmctl: a VMM's control socket, for the bench programs. See vmmctl.h. */
#define _GNU_SOURCE
#include "vmmctl.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/fcapi.h"
#include "core/util.h"

#define RETRY_NS 50000L /* the connect() retry period while the socket is not up */

int vmmctl_connect(const char *path, pid_t pid, uint64_t deadline_ns)
{
	const struct timespec pause = {0, RETRY_NS};

	for (;;) {
		int fd, r;

		/* A deadline already past: one try. */
		if ((r = fcapi_connect(path, 0, &fd)) == 0)
			return fd;
		if (r != -ETIMEDOUT)
			return r;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -ECHILD;
		if (now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

/* Read more into c->buf. */
static int fill(struct qmp_conn *c)
{
	if (c->len >= sizeof(c->buf) - 1)
		return -ENOBUFS;
	for (;;) {
		uint64_t t = now_ns();
		if (t >= c->deadline)
			return -ETIMEDOUT;
		struct pollfd pf = {.fd = c->fd, .events = POLLIN};
		int r = poll(&pf, 1, (int)((c->deadline - t) / 1000000 + 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			continue;
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
		return 0;
	}
}

int qmp_next(struct qmp_conn *c, char *out, size_t outlen)
{
	char *nl;
	int r;

	c->buf[c->len] = '\0';
	while (!(nl = strchr(c->buf, '\n')))
		if ((r = fill(c)) < 0)
			return r;
	size_t n = (size_t)(nl - c->buf) + 1, keep = n < outlen ? n : outlen - 1;
	memcpy(out, c->buf, keep);
	out[keep] = '\0';
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	c->buf[c->len] = '\0';
	return 0;
}
