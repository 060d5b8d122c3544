/* bench/run's timer and QEMU client.
 *
 *   runbench exec [-O FILE] [-E FILE] [-t S] -- CMD ARGS...
 *       Runs CMD in a process group of its own (stdout to FILE, default
 *       /dev/null; stderr to FILE, default inherited) and prints
 *       "total_ms=T status=S": launch to its reaped exit. For `flint run`
 *       and `runsc do`, whose own ends are the job's end. At -t's limit
 *       (default 300 s) the group is killed and the status is 124.
 *
 *   runbench qemu -g CID [-i HOST:GUEST]... [-o GUEST:HOST]... [-x ARG]...
 *                 [-O FILE] [-l FILE] [-t S] -- QEMU ARGS...
 *       What `flint run --copy-in --copy-out -- CMD` does, against QEMU
 *       with a vhost-vsock-device of guest CID CID booting flint's root
 *       image with its guest agent: listens on vsock port 52 for the
 *       agent's "ready" connection, starts QEMU, and once the agent has
 *       connected does the copy-ins (each a connection of its own to
 *       CID:52, copy.c's copy_session), the command (the -x words) on the
 *       ready connection, as flint does (its STDOUT to -O FILE, default
 *       discarded; STDERR discarded), and the copy-outs; then kills QEMU
 *       (SIGKILL, reaped), as flint ends its VM once the command is done.
 *       QEMU's own output goes to -l FILE (default /dev/null). Prints
 *       "ready_ms= copyin_ms= cmd_ms= copyout_ms= stop_ms= total_ms=
 *       status=", each phase from the end of the one before, ready from
 *       the launch; status is the command's (128+N for signal N), 125
 *       when a copy failed or the agent refused, 124 at -t's limit
 *       (default 120 s, the whole run).
 *
 * Exit status: the printed status, or 2 for a usage or set-up error. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "agent/proto.h"
#include "cmd/copy.h"

#define MAX_COPIES     8
#define MAX_WORDS      64
#define STATUS_COPY    125
#define STATUS_TIMEOUT 124

static double ms(uint64_t ns)
{
	return ns / 1e6;
}

static void usage(void)
{
	fprintf(stderr, "usage: runbench exec [-O FILE] [-E FILE] [-t S] -- CMD ARGS...\n"
			"       runbench qemu -g CID [-i HOST:GUEST]... [-o GUEST:HOST]... "
			"[-x ARG]... [-O FILE] [-l FILE] [-t S] -- QEMU ARGS...\n");
	exit(2);
}

/* Opens path for output on fd target (in the child). */
static void redirect(const char *path, int target)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || dup2(fd, target) < 0) {
		fprintf(stderr, "runbench: %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(fd);
}

/* Forks and execs argv in a process group of its own, stdin /dev/null,
 * stdout and stderr as given (NULL: inherited). Returns the pid or
 * -errno. */
static pid_t spawn(char **argv, const char *out, const char *err)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (fd < 0 || dup2(fd, 0) < 0)
			_exit(127);
		if (out)
			redirect(out, 1);
		if (err)
			redirect(err, 2);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "runbench: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static int wait_status(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

static int cmd_exec(int argc, char **argv)
{
	const char *out = "/dev/null", *err = NULL;
	struct sigaction sa = {.sa_handler = on_alarm};
	unsigned timeout_s = 300;
	uint64_t t0;
	pid_t pid;
	int c, st;

	while ((c = getopt(argc, argv, "+O:E:t:")) != -1) {
		if (c == 'O')
			out = optarg;
		else if (c == 'E')
			err = optarg;
		else if (c == 't')
			timeout_s = (unsigned)strtoul(optarg, NULL, 10);
		else
			usage();
	}
	if (optind >= argc)
		usage();
	t0 = now_ns();
	if ((pid = spawn(&argv[optind], out, err)) < 0) {
		fprintf(stderr, "runbench: fork: %s\n", strerror((int)-pid));
		return 2;
	}
	/* No SA_RESTART: the alarm interrupts waitpid. */
	sigaction(SIGALRM, &sa, NULL);
	alarm(timeout_s);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "runbench: waitpid: %s\n", strerror(errno));
			return 2;
		}
		if (timed_out) {
			fprintf(stderr, "runbench: %s still running after %u s: killed\n",
				argv[optind], timeout_s);
			kill(-pid, SIGKILL);
		}
	}
	alarm(0);
	c = timed_out ? STATUS_TIMEOUT : wait_status(st);
	printf("total_ms=%.1f status=%d\n", ms(now_ns() - t0), c);
	return c;
}

/* ---- runbench qemu ---- */

struct job {
	unsigned cid;
	struct copy_item in[MAX_COPIES], out[MAX_COPIES];
	unsigned nin, nout;
	char *words[MAX_WORDS + 1];
	unsigned nwords;
	const char *cmd_out, *log;
	uint64_t deadline; /* now_ns() */
	pid_t qemu;
};

/* "A:B" into an item (the strings are argv's). */
static void split_item(struct copy_item *it, char *s)
{
	char *colon = strchr(s, ':');

	if (!colon || colon == s || !colon[1])
		usage();
	*colon = '\0';
	it->src = s;
	it->dst = colon + 1;
	it->contents = false;
}

static int remaining_ms(const struct job *j)
{
	uint64_t t = now_ns();

	return t >= j->deadline ? 0 : (int)((j->deadline - t) / 1000000u) + 1;
}

/* Whether QEMU is gone (reaped here, its status said). */
static bool qemu_gone(struct job *j)
{
	int st;

	if (waitpid(j->qemu, &st, WNOHANG) != j->qemu)
		return false;
	fprintf(stderr, "runbench: QEMU exited (status %d) before the job was done\n",
		wait_status(st));
	j->qemu = -1;
	return true;
}

/* The agent's connection to CID 2 port 52 (its "ready"): the listener's
 * first. Returns the socket, -ETIMEDOUT or -ECHILD (QEMU ended). */
static int await_agent(struct job *j, int lfd)
{
	for (;;) {
		struct pollfd pf = {lfd, POLLIN, 0};
		int left = remaining_ms(j), fd;

		if (!left)
			return -ETIMEDOUT;
		if (poll(&pf, 1, left < 50 ? left : 50) == 1) {
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
		if (qemu_gone(j))
			return -ECHILD;
	}
}

static int listen_agent(void)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK,
	    .svm_cid = VMADDR_CID_ANY,
	    .svm_port = AGENT_VSOCK_PORT,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		int err = -errno;

		fprintf(stderr, "runbench: listening on vsock port %u: %s\n", AGENT_VSOCK_PORT,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return err;
	}
	return fd;
}

/* A connection of its own to the agent's listener, for a copy. */
static int dial_agent(const struct job *j)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK,
	    .svm_cid = j->cid,
	    .svm_port = AGENT_VSOCK_PORT,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		if (fd >= 0)
			close(fd);
		return err;
	}
	return fd;
}

/* The copies one way; 0, or -1 after saying which failed. */
static int copies(const struct job *j, bool out)
{
	const struct copy_item *items = out ? j->out : j->in;

	for (unsigned i = 0; i < (out ? j->nout : j->nin); i++) {
		char msg[COPY_MSG_LEN];
		int fd = dial_agent(j), r;

		if (fd < 0) {
			fprintf(stderr, "runbench: connecting to CID %u port %u: %s\n", j->cid,
				AGENT_VSOCK_PORT, strerror(-fd));
			return -1;
		}
		r = copy_session(fd, out, &items[i], msg);
		close(fd);
		if (r < 0) {
			fprintf(stderr, "runbench: copy-%s %s:%s: %s\n", out ? "out" : "in",
				items[i].src, items[i].dst, msg);
			return -1;
		}
	}
	return 0;
}

/* The command on the agent's connection: REQUEST, then STDOUT and STDERR
 * until EXIT or ERROR. Returns its status (exit code, 128+N for a
 * signal), 124 for the agent's timeout or ours, 125 for a refusal or a
 * broken exchange. */
static int command(const struct job *j, int sock)
{
	static uint8_t buf[AGENT_REQUEST_MAX];
	struct agent_request req = {
	    .argc = j->nwords,
	    .argv = j->words,
	    .cwd = "/",
	};
	struct agent_reader rd;
	struct agent_exit e;
	char err[256];
	int out = -1, status = STATUS_COPY, r;
	long n = agent_request_encode(&req, buf, sizeof(buf), err, sizeof(err));

	if (n < 0) {
		fprintf(stderr, "runbench: the request: %s\n", n == -EINVAL ? err : "too long");
		return STATUS_COPY;
	}
	if ((r = write_full(sock, buf, (size_t)n)) < 0) {
		fprintf(stderr, "runbench: sending the request: %s\n", strerror(-r));
		return STATUS_COPY;
	}
	if (j->cmd_out &&
	    (out = open(j->cmd_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		fprintf(stderr, "runbench: %s: %s\n", j->cmd_out, strerror(errno));
		return STATUS_COPY;
	}
	agent_reader_init(&rd, buf, sizeof(buf));
	for (;;) {
		struct pollfd pf = {sock, POLLIN, 0};
		int left = remaining_ms(j);

		if (!left || poll(&pf, 1, left) == 0) {
			fprintf(stderr, "runbench: the command did not end in time\n");
			status = STATUS_TIMEOUT;
			break;
		}
		if ((r = agent_read_frame(&rd, sock)) == -EAGAIN || r == -EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "runbench: reading from the agent: %s\n",
				r ? strerror(-r) : "connection closed");
			break;
		}
		if (rd.f.type == AGENT_STDOUT) {
			if (out >= 0 && (r = write_full(out, buf, rd.f.len)) < 0)
				fprintf(stderr, "runbench: %s: %s\n", j->cmd_out, strerror(-r));
			continue;
		}
		if (rd.f.type == AGENT_STDERR)
			continue;
		if (rd.f.type == AGENT_ERROR) {
			agent_msg_copy(err, sizeof(err), buf, rd.f.len);
			fprintf(stderr, "runbench: the agent refused: %s\n", err);
		} else if (rd.f.type != AGENT_EXIT || agent_exit_decode(buf, rd.f.len, &e) < 0) {
			fprintf(stderr, "runbench: unexpected frame type %u\n", rd.f.type);
		} else if (e.kind == AGENT_EXITED) {
			status = e.value;
		} else if (e.kind == AGENT_SIGNALED) {
			status = 128 + e.value;
		} else if (e.kind == AGENT_TIMED_OUT) {
			status = STATUS_TIMEOUT;
		} else {
			fprintf(stderr, "runbench: the command did not start: %s\n", e.msg);
			status = 127;
		}
		break;
	}
	if (out >= 0)
		close(out);
	return status;
}

static void stop_qemu(struct job *j)
{
	if (j->qemu <= 0)
		return;
	kill(j->qemu, SIGKILL);
	while (waitpid(j->qemu, NULL, 0) < 0 && errno == EINTR)
		;
	j->qemu = -1;
}

static int cmd_qemu(int argc, char **argv)
{
	struct job j = {.log = "/dev/null", .qemu = -1};
	uint64_t t0, t_ready = 0, t_in = 0, t_cmd = 0, t_out = 0, t_end;
	int c, lfd, sock = -1, status = STATUS_COPY;
	unsigned long timeout_s = 120;

	while ((c = getopt(argc, argv, "+g:i:o:x:O:l:t:")) != -1) {
		switch (c) {
		case 'g':
			j.cid = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			if (j.nin == MAX_COPIES)
				usage();
			split_item(&j.in[j.nin++], optarg);
			break;
		case 'o':
			if (j.nout == MAX_COPIES)
				usage();
			split_item(&j.out[j.nout++], optarg);
			break;
		case 'x':
			if (j.nwords == MAX_WORDS)
				usage();
			j.words[j.nwords++] = optarg;
			break;
		case 'O':
			j.cmd_out = optarg;
			break;
		case 'l':
			j.log = optarg;
			break;
		case 't':
			timeout_s = strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (j.cid < 3 || !j.nwords || optind >= argc)
		usage();
	if ((lfd = listen_agent()) < 0)
		return 2;
	t0 = now_ns();
	j.deadline = t0 + timeout_s * 1000000000u;
	if ((j.qemu = spawn(&argv[optind], j.log, j.log)) < 0) {
		fprintf(stderr, "runbench: fork: %s\n", strerror((int)-j.qemu));
		close(lfd);
		return 2;
	}
	sock = await_agent(&j, lfd);
	close(lfd);
	if (sock < 0) {
		if (sock == -ETIMEDOUT)
			fprintf(stderr, "runbench: the agent did not connect in %lu s\n",
				timeout_s);
		status = sock == -ETIMEDOUT ? STATUS_TIMEOUT : STATUS_COPY;
		goto out;
	}
	t_ready = now_ns();
	if (copies(&j, false) < 0)
		goto out;
	t_in = now_ns();
	status = command(&j, sock);
	t_cmd = now_ns();
	if (copies(&j, true) < 0 && status == 0)
		status = STATUS_COPY;
	t_out = now_ns();
out:
	if (sock >= 0)
		close(sock);
	if (j.qemu > 0 && qemu_gone(&j) && status == 0)
		status = STATUS_COPY;
	stop_qemu(&j);
	t_end = now_ns();
	if (t_out)
		printf("ready_ms=%.1f copyin_ms=%.1f cmd_ms=%.1f copyout_ms=%.1f stop_ms=%.1f "
		       "total_ms=%.1f status=%d\n",
		       ms(t_ready - t0), ms(t_in - t_ready), ms(t_cmd - t_in), ms(t_out - t_cmd),
		       ms(t_end - t_out), ms(t_end - t0), status);
	else
		printf("total_ms=%.1f status=%d\n", ms(t_end - t0), status);
	return status;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "exec"))
		return cmd_exec(argc - 1, argv + 1);
	if (!strcmp(argv[1], "qemu"))
		return cmd_qemu(argc - 1, argv + 1);
	usage();
}
