/* drive: the host side of bench/blk. Runs a VMM whose guest runs blkbench,
 * answers blkbench's handshake on the VMM's console, and reads KVM's exit
 * histogram at the start and the end of each measured interval, so flint
 * and QEMU are counted the same way.
 *
 *   drive [-t SECONDS] -h HISTFILE -- VMM ARGS...
 *
 * The VMM's console (its stdout) is copied to stdout, with CRs removed. On a
 * console line "R NAME" it reads the histogram and sends a newline to the
 * VMM's stdin (the guest's console input); on "D" it reads it again, prints
 *   exits name=NAME total=N r<REASON>=N ...
 * (the exits during the interval, by SVM exit code, decimal) and sends
 * another newline. The VMM's stderr is left alone. Exits with the VMM's
 * status (128+N for signal N), or 124 if it ran past SECONDS and was killed. */
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

#include "counters.h" /* tests/tools */

static const char *hist_path;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void snapshot(struct kvm_exits *h)
{
	if (kvm_exits_read(hist_path, h) < 0)
		fprintf(stderr, "drive: cannot read %s\n", hist_path);
}

static void print_delta(const char *name, const struct kvm_exits *a, const struct kvm_exits *b)
{
	char out[4096];

	kvm_exits_format(out, sizeof(out), a, b);
	printf("exits name=%s%s\n", name, out);
	fflush(stdout);
}

static void reply(int fd)
{
	if (write(fd, "\n", 1) != 1)
		fprintf(stderr, "drive: cannot answer the guest: %s\n", strerror(errno));
}

int main(int argc, char **argv)
{
	int timeout_s = 600, opt, out[2], in[2], status = -1, timed_out = 0;
	struct kvm_exits before = {0}, after = {0};
	char line[4096], name[256] = "";
	size_t ll = 0;

	while ((opt = getopt(argc, argv, "+t:h:")) != -1) {
		if (opt == 't')
			timeout_s = atoi(optarg);
		else if (opt == 'h')
			hist_path = optarg;
		else
			return 2;
	}
	/* (getopt has consumed the "--") */
	if (!hist_path || optind >= argc) {
		fprintf(stderr, "usage: drive [-t S] -h HIST -- VMM ARGS...\n");
		return 2;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		execvp(argv[optind], &argv[optind]);
		_exit(127);
	}
	close(out[1]);
	close(in[0]);
	double deadline = now_s() + timeout_s;
	for (;;) {
		struct pollfd pf = {.fd = out[0], .events = POLLIN};
		int left = (int)((deadline - now_s()) * 1000);
		char buf[4096];

		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (poll(&pf, 1, left) <= 0)
			continue;
		ssize_t n = read(out[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\r')
				continue;
			if (buf[i] != '\n' && ll < sizeof(line) - 1) {
				line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			if (!strncmp(line, "R ", 2)) {
				snprintf(name, sizeof(name), "%.200s", line + 2);
				snapshot(&before);
				reply(in[1]);
			} else if (!strcmp(line, "D") && name[0]) {
				snapshot(&after);
				reply(in[1]);
				print_delta(name, &before, &after);
				name[0] = '\0';
			} else {
				printf("%s\n", line);
				fflush(stdout);
			}
		}
	}
	if (timed_out) {
		fprintf(stderr, "drive: the VMM ran past %d s; killing it\n", timeout_s);
		kill(pid, SIGKILL);
	}
	close(in[1]);
	close(out[0]);
	if (waitpid(pid, &status, 0) > 0)
		status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return timed_out ? 124 : status;
}
