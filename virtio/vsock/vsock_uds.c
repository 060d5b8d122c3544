/* Hybrid vsock's Unix-socket side; see vsock_uds.h. */
#include "vsock/vsock_uds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

ssize_t vsock_uds_line_scan(const char *p, size_t n, size_t have, bool *done)
{
	const char *nl = memchr(p, '\n', n);
	size_t take = nl ? (size_t)(nl - p) + 1 : n;

	*done = nl != NULL;
	if (have + take > VSOCK_UDS_LINE_MAX || (!nl && have + take == VSOCK_UDS_LINE_MAX))
		return -EMSGSIZE;
	return (ssize_t)take;
}

/* ASCII white space, where Firecracker's split_whitespace splits. */
static bool blank(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

int vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port)
{
	static const char word[] = "CONNECT";
	size_t i = 0, w = sizeof(word) - 1, digits = 0;
	uint64_t v = 0;

	while (i < len && blank(line[i]))
		i++;
	if (len - i <= w || strncasecmp(line + i, word, w) != 0 || !blank(line[i + w]))
		return -EINVAL;
	for (i += w; i < len && blank(line[i]); i++)
		;
	if (i < len && line[i] == '+')
		i++;
	for (; i < len && line[i] >= '0' && line[i] <= '9'; i++, digits++) {
		v = v * 10 + (uint64_t)(line[i] - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	if (!digits || (i < len && !blank(line[i])))
		return -EINVAL;
	*port = (uint32_t)v;
	return 0;
}

size_t vsock_uds_ok_line(char *buf, size_t size, uint32_t port)
{
	int n = snprintf(buf, size, "OK %u\n", port);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static int set_path(struct sockaddr_un *a, const char *path)
{
	*a = (struct sockaddr_un){.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	memcpy(a->sun_path, path, strlen(path) + 1);
	return 0;
}

static int new_socket(int *fd)
{
	*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return *fd < 0 ? -errno : 0;
}

/* What is at path, for a listener to come: 0 for nothing, or a socket
 * file nothing accepts connections on (stale: *stale set); -EADDRINUSE
 * if something does, -EEXIST for a file of another kind, or -errno. */
static int path_free(const char *path, const struct sockaddr_un *a, bool *stale)
{
	struct stat st;
	int fd, r;

	*stale = false;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if ((r = new_socket(&fd)) < 0)
		return r;
	r = connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0 || errno == EAGAIN
		? -EADDRINUSE
		: 0;
	close_fd(&fd);
	*stale = r == 0;
	return r;
}

int vsock_uds_listen(const char *path, int *fd)
{
	struct sockaddr_un a;
	bool stale;
	int r;

	*fd = -1;
	if ((r = set_path(&a, path)) < 0 || (r = path_free(path, &a, &stale)) < 0)
		return r;
	if (stale && unlink(path) < 0 && errno != ENOENT)
		return -errno;
	if ((r = new_socket(fd)) < 0)
		return r;
	if (bind(*fd, (const struct sockaddr *)&a, sizeof(a)) < 0 || listen(*fd, 128) < 0) {
		r = -errno;
		close_fd(fd);
		return r;
	}
	return 0;
}

int vsock_uds_check(const char *path)
{
	struct sockaddr_un a;
	char dir[sizeof(a.sun_path)];
	const char *slash = strrchr(path, '/');
	bool stale;
	int r;

	if ((r = set_path(&a, path)) < 0 || (r = path_free(path, &a, &stale)) < 0)
		return r;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	/* As bind will: with the effective ids. (A directory that is not one
	 * made path_free's lstat fail already.) */
	return faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0 ? -errno : 0;
}

const char *vsock_uds_why(int r)
{
	switch (r) {
	case -EEXIST:
		return "the file exists and is not a socket; not replacing it";
	case -EADDRINUSE:
		return "another program is listening on it";
	case -ENAMETOOLONG:
		return "longer than a Unix socket's path can be";
	default:
		return strerror(-r);
	}
}

int vsock_uds_connect(const char *path, uint32_t port, int *fd)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", path, port);
	int r;

	*fd = -1;
	if (n < 0 || (size_t)n >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	if ((r = new_socket(fd)) < 0)
		return r;
	if (connect(*fd, (const struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		close_fd(fd);
		return r;
	}
	return 0;
}
