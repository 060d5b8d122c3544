/* ctlpair: run a program with one end of a socketpair as its fd 3 (for
 * `flint --restore ... --control-fd 3`), for shell scripts that cannot make
 * a socketpair themselves.
 *
 *   ctlpair -- PROGRAM ARGS...
 *
 * Lines read on stdin go to the socket; what comes back on it is written
 * to stdout as it comes (a reset's "ok <us>" or "error ..."). The
 * program's stdin is /dev/null, its stdout ctlpair's stderr (stdout is
 * the answers).
 * End of stdin closes ctlpair's end of the pair (the program reads EOF:
 * flint stops its VM); ctlpair then waits for the program and exits with
 * its status (128+N for a signal), or when the program ends first. Stdin
 * may be a FIFO that a script keeps open and writes a line to at a time.
 * The program starts with its signals at their defaults, as flint serve
 * starts a worker. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int sv[2], status, first = 1;
	pid_t pid;
	bool in_open = true;
	char buf[4096];

	if (first < argc && !strcmp(argv[first], "--"))
		first++;
	if (first >= argc) {
		fprintf(stderr, "usage: ctlpair -- PROGRAM ARGS...\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("ctlpair: socketpair");
		return 2;
	}
	pid = fork();
	if (pid < 0) {
		perror("ctlpair: fork");
		return 2;
	}
	if (pid == 0) {
		/* dup2 clears FD_CLOEXEC on fd 3; sv[1] itself goes at exec.
		 * Its stdin is not ours (the requests): flint's console would
		 * read them. */
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		/* The program's signals as flint serve gives its workers: each at
		 * its default, none blocked (a shell starts a background job with
		 * SIGINT and SIGQUIT ignored; ours ignores SIGPIPE). */
		static const int dfl[] = {SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
		sigset_t none;
		for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
			signal(dfl[i], SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(sv[1], 3) < 0 ||
		    dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
			perror("ctlpair: dup2");
			_exit(127);
		}
		execvp(argv[first], argv + first);
		fprintf(stderr, "ctlpair: %s: %s\n", argv[first], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	for (;;) {
		struct pollfd p[2] = {{.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN},
				      {.fd = sv[0], .events = POLLIN}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("ctlpair: poll");
			break;
		}
		if (p[1].revents) {
			ssize_t n = read(sv[0], buf, sizeof(buf));

			if (n <= 0)
				break; /* the program closed its end, or ended */
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				break;
		}
		if (in_open && p[0].revents) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n <= 0) {
				/* EOF for the program: its request stream ended. */
				shutdown(sv[0], SHUT_WR);
				in_open = false;
			} else if (write_all(sv[0], buf, (size_t)n) < 0) {
				break;
			}
		}
	}
	close(sv[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("ctlpair: waitpid");
			return 2;
		}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
