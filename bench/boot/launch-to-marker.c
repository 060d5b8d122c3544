/* launch-to-marker: run a VMM, time from launch to a marker line on its
 * console, and snapshot KVM's exit histogram at that moment, so flint and
 * QEMU are measured the same way.
 *
 *   launch-to-marker [-t SECONDS] [-h HISTFILE] MARKER -- VMM ARGS...
 *
 * Prints one line: "ms=<launch-to-marker ms> status=<VMM exit status>", then
 * the histogram's "exit_reason: ... hitcount: N" lines as read when the
 * marker appeared. Exits 1 if the marker never appeared. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char hist[65536];

static void snapshot(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, hist, sizeof(hist) - 1);
	hist[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	const char *hist_path = NULL, *marker;
	int timeout_s = 120, opt, p[2], status = -1;

	while ((opt = getopt(argc, argv, "+t:h:")) != -1) {
		if (opt == 't')
			timeout_s = atoi(optarg);
		else if (opt == 'h')
			hist_path = optarg;
		else
			return 2;
	}
	if (argc - optind < 3 || strcmp(argv[optind + 1], "--")) {
		fprintf(stderr, "usage: launch-to-marker [-t S] [-h HIST] MARKER -- VMM ARGS...\n");
		return 2;
	}
	marker = argv[optind];
	if (pipe2(p, O_CLOEXEC) < 0)
		return 2;
	double t0 = now_ms(), t_marker = -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, STDIN_FILENO);
		execvp(argv[optind + 2], &argv[optind + 2]);
		_exit(127);
	}
	close(p[1]);
	/* Match the marker across read boundaries with a sliding window. */
	char win[512] = "", buf[4096];
	size_t wl = 0, ml = strlen(marker);
	double deadline = t0 + timeout_s * 1e3;
	for (;;) {
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		ssize_t n = read(p[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && t_marker < 0; i++) {
			if (wl == sizeof(win) - 1) {
				memmove(win, win + 256, wl - 256);
				wl -= 256;
			}
			win[wl++] = buf[i];
			win[wl] = '\0';
			if (wl >= ml && !memcmp(win + wl - ml, marker, ml)) {
				t_marker = now_ms();
				if (hist_path)
					snapshot(hist_path);
			}
		}
	}
	if (now_ms() >= deadline)
		kill(pid, SIGKILL);
	close(p[0]);
	if (waitpid(pid, &status, 0) > 0)
		status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("ms=%.2f status=%d\n", t_marker < 0 ? -1.0 : t_marker - t0, status);
	for (char *l = strtok(hist, "\n"); l; l = strtok(NULL, "\n"))
		if (strstr(l, "hitcount"))
			printf("%s\n", l);
	return t_marker < 0;
}
