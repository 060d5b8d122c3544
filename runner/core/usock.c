/* usock: see usock.h. */
#include "core/usock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int set_path(struct sockaddr_un *a, const char *path)
{
	size_t n = strlen(path);

	*a = (struct sockaddr_un){.sun_family = AF_UNIX};
	if (!n || n >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	memcpy(a->sun_path, path, n + 1);
	return 0;
}

/* What is at path, for a listener to come: 0 for nothing, or a socket file
 * nothing accepts connections on (stale: *stale set, the connection
 * refused); -EADDRINUSE if something does, -EEXIST for a file of another
 * kind, or -errno (-EACCES: another user's socket, which may be live, is
 * not ours to replace). */
static int path_free(const char *path, const struct sockaddr_un *a, bool *stale)
{
	struct stat st;
	int fd, r;

	*stale = false;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	/* EAGAIN: a listener whose backlog is full, alive. */
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0 || errno == EAGAIN)
		r = -EADDRINUSE;
	else
		r = errno == ECONNREFUSED ? 0 : -errno;
	close(fd);
	*stale = r == 0;
	return r;
}

int usock_listen(const char *path, int flags, int backlog, mode_t mode, struct usock_made *made)
{
	struct sockaddr_un a;
	struct stat st;
	bool stale;
	int fd, r;

	if ((r = set_path(&a, path)) < 0 || (r = path_free(path, &a, &stale)) < 0)
		return r;
	if (stale && unlink(path) < 0 && errno != ENOENT)
		return -errno;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0)) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((mode && chmod(path, mode) < 0) || lstat(path, &st) < 0 || listen(fd, backlog) < 0) {
		r = -errno;
		unlink(path);
		close(fd);
		return r;
	}
	if (made)
		*made = (struct usock_made){.dev = st.st_dev, .ino = st.st_ino};
	return fd;
}

int usock_check(const char *path)
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

void usock_remove(const char *path, const struct usock_made *made)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == made->dev &&
	    st.st_ino == made->ino)
		unlink(path);
}

const char *usock_why(int r)
{
	switch (r) {
	case -EEXIST:
		return "the file exists and is not a socket; not replacing it";
	case -EADDRINUSE:
		return "another program is listening on it";
	case -ENAMETOOLONG:
		return "a socket path has 1 to 107 bytes";
	default:
		return strerror(-r);
	}
}
