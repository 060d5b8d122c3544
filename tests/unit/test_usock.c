/* usock: a listener's Unix socket at a path, as the API, vsock and flint
 * serve make theirs: a stale socket replaced, a live one or another kind
 * of file refused and left, the PUT /vsock check that makes nothing, and
 * the end's removal of only the socket made. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/usock.h"

static char dir[] = "/tmp/flint-usock-XXXXXX";
static char path[128];

static void dir_setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
}

static void dir_teardown(void)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(usock, .init = dir_setup, .fini = dir_teardown);

static bool is_socket(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0 && S_ISSOCK(st.st_mode);
}

Test(usock, listen_replaces_a_stale_socket_only)
{
	int fd, fd2;

	cr_assert_geq(fd = usock_listen(path, SOCK_NONBLOCK, 8, 0, NULL), 0);
	cr_assert(is_socket(path));
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* Someone listens there: refused, and the socket file stays. */
	cr_assert_eq(usock_listen(path, 0, 8, 0, NULL), -EADDRINUSE);
	cr_assert(is_socket(path));
	close(fd);
	/* Stale now (nobody listens): replaced. */
	cr_assert_geq(fd2 = usock_listen(path, 0, 8, 0, NULL), 0);
	cr_assert_eq(fcntl(fd2, F_GETFL) & O_NONBLOCK, 0, "blocking unless asked");
	close(fd2);
}

Test(usock, listen_refuses_a_regular_file)
{
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	struct stat st;

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(usock_listen(path, 0, 8, 0, NULL), -EEXIST);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode), "left in place");
	cr_assert_str_eq(usock_why(-EEXIST),
			 "the file exists and is not a socket; not replacing it");
}

Test(usock, paths_too_long_or_empty)
{
	char longp[200];

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	cr_assert_eq(usock_listen(longp, 0, 8, 0, NULL), -ENAMETOOLONG);
	cr_assert_eq(usock_check(longp), -ENAMETOOLONG);
	cr_assert_eq(usock_listen("", 0, 8, 0, NULL), -ENAMETOOLONG);
	cr_assert_str_eq(usock_why(-ENAMETOOLONG), "a socket path has 1 to 107 bytes");
}

/* The mode is the file's before anyone can connect; made names it, and
 * only that file is removed: not one put there since, nor another kind. */
Test(usock, mode_made_and_removal_of_only_its_own)
{
	struct usock_made made;
	struct stat st;
	int fd;

	cr_assert_geq(fd = usock_listen(path, 0, 8, 0600, &made), 0);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(st.st_ino, made.ino);
	close(fd);
	/* Another listener's since (the first moved away, so that its inode
	 * stays taken): kept. */
	char old[160];
	struct usock_made other;
	snprintf(old, sizeof(old), "%s.old", path);
	cr_assert_eq(rename(path, old), 0);
	cr_assert_geq(fd = usock_listen(path, 0, 8, 0, &other), 0);
	cr_assert_neq(other.ino, made.ino);
	usock_remove(path, &made);
	cr_assert(is_socket(path), "another's socket removed");
	usock_remove(path, &other);
	cr_assert(!is_socket(path), "its own socket left");
	close(fd);
	/* A file of another kind where it was: kept. */
	cr_assert_geq(fd = open(path, O_CREAT | O_WRONLY, 0600), 0);
	close(fd);
	usock_remove(path, &other);
	cr_assert_eq(access(path, F_OK), 0);
}

/* usock_check as uid 65534 (run in a child when root, who may write
 * anywhere): 0 or -errno. */
static int check_as_nobody(const char *p)
{
	int st;
	pid_t pid;

	if (geteuid() != 0)
		return usock_check(p);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(255);
		_exit(-usock_check(p));
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_neq(WEXITSTATUS(st), 255, "could not become uid 65534");
	return -WEXITSTATUS(st);
}

/* Another user's socket (0600: its connect refused with EACCES, whether
 * or not it is live) is not ours to replace, even in a directory we may
 * write in. Needs root, to be two users. */
Test(usock, another_users_socket_is_left)
{
	int fd, st;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("not root: cannot make another user's socket");
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_geq(fd = usock_listen(path, 0, 8, 0600, NULL), 0);
	close(fd); /* stale, but the other user cannot tell */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(255);
		int r = usock_listen(path, 0, 8, 0, NULL);
		_exit(r >= 0 ? 0 : -r);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), EACCES, "status %d", WEXITSTATUS(st));
	cr_assert(is_socket(path), "the other user's socket was replaced");
}

/* PUT /vsock's check: what listen would refuse, and a directory the
 * socket cannot be made in, without making anything. */
Test(usock, check_says_what_listen_would_without_listening)
{
	char p[192];
	int fd, l;

	cr_assert_eq(usock_check(path), 0);
	cr_assert(!is_socket(path), "nothing made");
	snprintf(p, sizeof(p), "%s/no-such-dir/v.sock", dir);
	cr_assert_eq(usock_check(p), -ENOENT);
	cr_assert_str_eq(usock_why(-ENOENT), "No such file or directory");
	/* A regular file where its directory would be. */
	snprintf(p, sizeof(p), "%s/file", dir);
	cr_assert_geq(fd = open(p, O_CREAT | O_WRONLY, 0600), 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/file/v.sock", dir);
	cr_assert_eq(usock_check(p), -ENOTDIR);
	/* listen's refusals. */
	snprintf(p, sizeof(p), "%s/file", dir);
	cr_assert_eq(usock_check(p), -EEXIST);
	cr_assert_geq(l = usock_listen(path, 0, 8, 0, NULL), 0);
	cr_assert_eq(usock_check(path), -EADDRINUSE);
	cr_assert_str_eq(usock_why(-EADDRINUSE), "another program is listening on it");
	close(l);
	/* Stale: free, and left there (listen replaces it). */
	cr_assert_eq(usock_check(path), 0);
	cr_assert(is_socket(path));
	/* A directory its user may not write in. */
	cr_assert_eq(chmod(dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/ro", dir);
	cr_assert_eq(mkdir(p, 0555), 0);
	snprintf(p, sizeof(p), "%s/ro/v.sock", dir);
	cr_assert_eq(check_as_nobody(p), -EACCES);
	snprintf(p, sizeof(p), "%s/rw", dir);
	cr_assert_eq(mkdir(p, 0777), 0);
	cr_assert_eq(chmod(p, 0777), 0);
	snprintf(p, sizeof(p), "%s/rw/v.sock", dir);
	cr_assert_eq(check_as_nobody(p), 0);
}
