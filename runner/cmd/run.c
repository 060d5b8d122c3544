/* The host side of `flint run`: see run.h. One thread: it accepts the
 * agent's connection or opens one, sends the request, and relays stdin,
 * stdout and stderr with poll() until the agent's final frame. Everything
 * from the guest is untrusted: frames are checked by proto.c, the vsock
 * device's answer line is checked here, and output is relayed only as
 * bytes. */
#include "cmd/run.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/proto.h"
#include "cmd/copy.h"
#include "core/control.h"
#include "core/logger.h"
#include "core/phases.h"
#include "core/seccomp.h"
#include "core/usock.h"

/* Output is written in pieces a pipe takes whole once poll() calls it
 * writable (PIPE_BUF), so that the thread never blocks outside poll() and
 * run_stop can always interrupt it. */
#define OUT_CHUNK 4096
#define TX_CAP	  (AGENT_HDR_SIZE + AGENT_REQUEST_MAX)
#define MSG_LEN	  512
/* RUN_CONNECT: the answer to a CONNECT line is at most this long, "\n"
 * included ("OK 4294967295\n" is 14); the wait between two tries doubles
 * from RETRY_MIN_MS to RETRY_MAX_MS. */
#define ANSWER_MAX   32
#define RETRY_MIN_MS 2
#define RETRY_MAX_MS 100

struct run;

/* The agent connection's relay state. Part of struct run, so that the
 * thread allocates nothing: freeing in a thread's malloc arena can make
 * glibc shrink it and read /proc/sys/vm/overcommit_memory, which the
 * thread's seccomp filter refuses. */
struct session {
	struct run *r;
	int sock;
	struct agent_reader rd;
	uint8_t rbuf[AGENT_DATA_MAX];
	bool req_sent, in_open;
	bool got_exit;	 /* the agent said how the command ended */
	bool got_output; /* --phase-fd: the first output (or the end) was marked */
	/* A STDOUT or STDERR payload (in rbuf) still being written out. */
	int out_fd, out_idx; /* out_idx: 0 stdout, 1 stderr */
	size_t out_off;
	bool out_pending;
	bool dead[2]; /* out_fd, err_fd refused writes: drop their output */
	char *msg;    /* MSG_LEN bytes: the reason given to finish() */
};

struct run {
	struct run_params p;
	char *path;  /* listen_path, unlinked by run_stop; NULL for RUN_CONNECT */
	char *uds;   /* uds_path, NULL for none */
	int lfd;     /* listening; the thread closes it once the agent is in */
	int stop_fd; /* eventfd: run_stop wants the thread gone */
	pthread_t thread;
	bool thread_started, joined;
	atomic_bool stopping, finished;
	/* The request's sending has begun: from here on the command may
	 * run in the guest (the status line's sent=1). */
	atomic_bool sending;
	/* The status the command itself ended with (its exit status, or 128
	 * and its signal), as the agent's EXIT said; -1 before, or when the
	 * agent's verdict was another (a timeout, a command that did not
	 * start). */
	atomic_int cmd_status;
	pthread_mutex_t lock; /* guards t */
	struct run_timings t;
	struct agent_outbuf tx; /* the request, then STDIN frames */
	struct session s;
};

static void set_time(struct run *r, uint64_t *field)
{
	pthread_mutex_lock(&r->lock);
	*field = us_since_launch();
	pthread_mutex_unlock(&r->lock);
}

/* Milliseconds from now to deadline (ns) for poll(), 0 once passed. */
static int ms_until(uint64_t deadline)
{
	uint64_t now = now_ns(), ms;

	if (now >= deadline)
		return 0;
	ms = (deadline - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Waits for the agent's connection. Returns the connected socket, -1 when
 * stopped, or -2 with s->msg set. */
static int wait_agent(struct session *s)
{
	struct run *r = s->r;
	uint64_t deadline = now_ns() + (uint64_t)r->p.boot_timeout_s * 1000000000ULL;

	for (;;) {
		struct pollfd pf[2] = {{r->stop_fd, POLLIN, 0}, {r->lfd, POLLIN, 0}};
		int n = poll(pf, 2, r->p.boot_timeout_s ? ms_until(deadline) : -1), fd;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(s->msg, MSG_LEN, "flint run: poll: %s", strerror(errno));
			return -2;
		}
		if (pf[0].revents)
			return -1;
		if (n == 0) {
			if (r->p.stuck)
				r->p.stuck(r->p.ctx);
			snprintf(s->msg, MSG_LEN,
				 "flint run: the guest agent did not connect within %u s",
				 r->p.boot_timeout_s);
			return -2;
		}
		fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
			snprintf(s->msg, MSG_LEN, "flint run: accept: %s", strerror(errno));
			return -2;
		}
	}
}

/* Sleeps ms, or until run_stop. Returns true when stopped. */
static bool nap(struct run *r, int ms)
{
	struct pollfd pf = {r->stop_fd, POLLIN, 0};

	while (poll(&pf, 1, ms) < 0 && errno == EINTR)
		;
	return pf.revents != 0;
}

/* One try: a connection to the vsock device's socket, the CONNECT line
 * sent. Returns 0 with *fd (non-blocking), or -errno. */
static int dial(struct run *r, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", AGENT_VSOCK_PORT), err = 0;
	ssize_t sent;

	strcpy(sa.sun_path, r->uds); /* its length checked by run_start */
	*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*fd < 0)
		return -errno;
	/* A Unix socket connects at once, or not at all (EAGAIN: a full
	 * backlog); the line fits an empty socket buffer whole. */
	if (connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		err = errno;
	else if ((sent = send(*fd, line, (size_t)n, MSG_NOSIGNAL)) != n)
		err = sent < 0 ? errno : EIO;
	if (err)
		close_fd(fd);
	return -err;
}

/* A failed try worth another: nothing listens on the socket yet, or it is
 * busy, or the device closed the connection (nothing answered in the
 * guest). */
static bool try_again(int err)
{
	return err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == ECONNRESET ||
	       err == EPIPE;
}

/* Reads the device's answer to the CONNECT line, a byte at a time (the
 * agent's stream follows it: none of it may be taken here), until its
 * "\n". Returns 1 for "OK <port>", 0 when the connection closed first,
 * -1 when stopped, -2 with s->msg set (another answer, an error), -3 at the
 * deadline. */
static int read_answer(struct session *s, int fd, uint64_t deadline)
{
	struct run *r = s->r;
	char a[ANSWER_MAX + 1];
	size_t len = 0;

	for (;;) {
		struct pollfd pf[2] = {{r->stop_fd, POLLIN, 0}, {fd, POLLIN, 0}};
		int n = poll(pf, 2, r->p.boot_timeout_s ? ms_until(deadline) : -1);
		ssize_t got;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(s->msg, MSG_LEN, "flint run: poll: %s", strerror(errno));
			return -2;
		}
		if (pf[0].revents)
			return -1;
		if (n == 0)
			return -3;
		/* Up to the "\n", or ANSWER_MAX bytes without one. */
		while ((got = recv(fd, a + len, 1, 0)) == 1 && a[len++] != '\n' && len < ANSWER_MAX)
			;
		if (got == 1)
			break;
		if (got == 0 || try_again(errno))
			return 0;
		if (errno != EAGAIN && errno != EINTR) {
			snprintf(s->msg, MSG_LEN, "flint run: reading from %s: %s", r->uds,
				 strerror(errno));
			return -2;
		}
	}
	a[len] = '\0';
	size_t digits = len > 4 ? strspn(a + 3, "0123456789") : 0;
	if (!strncmp(a, "OK ", 3) && digits >= 1 && digits <= 10 && a + 3 + digits == a + len - 1)
		return 1;
	/* The device's text, as flint shows it: one line, no control bytes. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)a[i] < 0x20 || (unsigned char)a[i] > 0x7e)
			a[i] = a[i] == '\n' && i == len - 1 ? '\0' : '?';
	snprintf(s->msg, MSG_LEN, "flint run: unexpected answer from the vsock socket %s: \"%s\"",
		 r->uds, a);
	return -2;
}

/* RUN_CONNECT: opens a connection to the agent's port through the vsock
 * device's socket, trying again while nothing answers. Returns the
 * connected socket, -1 when stopped, or -2 with s->msg set. */
static int connect_agent(struct session *s)
{
	struct run *r = s->r;
	uint64_t deadline = now_ns() + (uint64_t)r->p.boot_timeout_s * 1000000000ULL;
	const char *last;
	unsigned tries = 0;
	int delay = RETRY_MIN_MS;

	for (;;) {
		int fd, ret = dial(r, &fd);

		tries++;
		if (ret == 0) {
			ret = read_answer(s, fd, deadline);
			if (ret == 1)
				return fd;
			close_fd(&fd);
			if (ret == -3) {
				last = "no answer to the CONNECT line";
				break;
			}
			if (ret < 0)
				return ret;
			last = "the connection was closed before the device's OK";
		} else if (try_again(-ret)) {
			last = strerror(-ret);
		} else {
			snprintf(s->msg, MSG_LEN, "flint run: cannot connect to %s: %s", r->uds,
				 strerror(-ret));
			return -2;
		}
		int left = r->p.boot_timeout_s ? ms_until(deadline) : INT_MAX;
		if (left == 0)
			break;
		if (nap(r, delay < left ? delay : left))
			return -1;
		delay = delay * 2 < RETRY_MAX_MS ? delay * 2 : RETRY_MAX_MS;
	}
	if (r->p.stuck)
		r->p.stuck(r->p.ctx);
	snprintf(s->msg, MSG_LEN,
		 "flint run: the guest agent did not answer on vsock port %u through %s within %u "
		 "s (%u %s, the last: %s)",
		 AGENT_VSOCK_PORT, r->uds, r->p.boot_timeout_s, tries, tries == 1 ? "try" : "tries",
		 last);
	return -2;
}

static int lost(struct session *s, int err)
{
	snprintf(s->msg, MSG_LEN, "flint run: lost the connection to the guest agent (%s)",
		 err ? strerror(err) : "closed before the command's status");
	return RUN_EXIT_NO_AGENT;
}

static int bad_frame(struct session *s, const char *why)
{
	snprintf(s->msg, MSG_LEN, "flint run: bad frame from the guest agent: %s", why);
	return RUN_EXIT_NO_AGENT;
}

/* The final frame: the status for finish(). */
static int handle_exit(struct session *s)
{
	struct agent_exit e;
	unsigned t = s->r->p.timeout_s;

	if (agent_exit_decode(s->rbuf, s->rd.f.len, &e) < 0)
		return bad_frame(s, "malformed EXIT");
	s->got_exit = true;
	set_time(s->r, &s->r->t.cmd_end_us);
	switch (e.kind) {
	case AGENT_EXITED:
		atomic_store(&s->r->cmd_status, (int)e.value);
		return e.value;
	case AGENT_SIGNALED:
		atomic_store(&s->r->cmd_status, 128 + (int)e.value);
		return 128 + e.value;
	case AGENT_TIMED_OUT:
		snprintf(s->msg, MSG_LEN, "flint run: the command timed out after %u s", t);
		return RUN_EXIT_TIMEOUT;
	default: /* AGENT_NOT_STARTED */
		snprintf(s->msg, MSG_LEN, "flint run: %s",
			 e.msg[0] ? e.msg : "the command did not start");
		return 127;
	}
}

/* Reads the agent's frames while nothing is waiting to be written out, at
 * most AGENT_READ_BATCH. Returns -1 to go on, or the final status. */
static int read_agent(struct session *s)
{
	for (unsigned i = 0; i < AGENT_READ_BATCH && !s->out_pending; i++) {
		int ret = agent_read_frame(&s->rd, s->sock);
		char msg[AGENT_MSG_MAX + 1];

		if (ret == -EAGAIN)
			return -1;
		if (ret == 0 || ret == -ECONNRESET)
			return lost(s, 0);
		if (ret == -EPROTO || ret == -EMSGSIZE)
			return bad_frame(s, ret == -EPROTO ? "bad header" : "too long");
		if (ret < 0)
			return lost(s, -ret);
		/* --phase-fd: the first output, or the end of a command that
		 * printed nothing. */
		bool output = (s->rd.f.type == AGENT_STDOUT || s->rd.f.type == AGENT_STDERR) &&
			      s->rd.f.len > 0;
		if (!s->got_output && (output || s->rd.f.type == AGENT_EXIT)) {
			s->got_output = true;
			phases_output();
		}
		switch (s->rd.f.type) {
		case AGENT_STDOUT:
		case AGENT_STDERR: {
			bool err = s->rd.f.type == AGENT_STDERR;

			if (s->rd.f.len == 0 || s->dead[err])
				break;
			s->out_fd = err ? s->r->p.err_fd : s->r->p.out_fd;
			s->out_idx = err;
			s->out_off = 0;
			s->out_pending = s->out_fd >= 0;
			break;
		}
		case AGENT_EXIT:
			return handle_exit(s);
		case AGENT_ERROR:
			agent_msg_copy(msg, sizeof(msg), s->rbuf, s->rd.f.len);
			snprintf(s->msg, MSG_LEN,
				 "flint run: the guest agent refused the command: %s", msg);
			return RUN_EXIT_NO_AGENT;
		default:
			return bad_frame(s, "a host-to-guest frame type");
		}
	}
	return -1;
}

static void write_out(struct session *s)
{
	size_t left = s->rd.f.len - s->out_off;
	ssize_t n = write(s->out_fd, s->rbuf + s->out_off, left < OUT_CHUNK ? left : OUT_CHUNK);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		/* The reader is gone (EPIPE: SIGPIPE is blocked on this
		 * thread): the command runs on, its output to this fd is
		 * dropped. */
		s->dead[s->out_idx] = true;
		s->out_pending = false;
		return;
	}
	s->out_off += (size_t)n;
	s->out_pending = s->out_off < s->rd.f.len;
}

/* One read of the host's stdin into a STDIN frame, or STDIN_EOF. */
static void read_stdin(struct session *s)
{
	struct agent_outbuf *tx = &s->r->tx;
	uint8_t *data = tx->buf + AGENT_HDR_SIZE;
	ssize_t n = read(s->r->p.in_fd, data, AGENT_DATA_MAX);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	/* Neither frame can fail: stdin is read only when tx is empty. A
	 * read error ends stdin like EOF: the command sees its end. */
	if (n <= 0) {
		s->in_open = false;
		agent_out_frame(tx, AGENT_STDIN_EOF, NULL, 0);
		return;
	}
	agent_out_frame(tx, AGENT_STDIN, data, (size_t)n);
}

/* Sends what the socket takes. -1 to go on, or a final status. */
static int flush(struct session *s)
{
	int ret = agent_out_flush(&s->r->tx, s->sock);

	if (ret < 0)
		return lost(s, -ret);
	if (ret == 0 && !s->req_sent) {
		s->req_sent = true;
		set_time(s->r, &s->r->t.cmd_start_us);
	}
	return -1;
}

/* Relays until the agent's final frame. Returns the status, or -1 when
 * stopped. */
static int relay(struct session *s)
{
	struct run *r = s->r;
	uint64_t deadline = 0;
	int status;

	if (r->p.timeout_s)
		deadline = now_ns() + (uint64_t)(r->p.timeout_s + RUN_GUARD_S) * 1000000000ULL;
	if ((status = flush(s)) >= 0)
		return status;
	for (;;) {
		bool tx_busy = r->tx.len > 0;
		struct pollfd pf[4] = {
		    {r->stop_fd, POLLIN, 0},
		    /* Not read while output waits: the agent then waits too.
		     * Left out entirely then, or a hang-up would spin us. */
		    {s->out_pending && !tx_busy ? -1 : s->sock,
		     (short)((s->out_pending ? 0 : POLLIN) | (tx_busy ? POLLOUT : 0)), 0},
		    {s->req_sent && s->in_open && !tx_busy ? r->p.in_fd : -1, POLLIN, 0},
		    {s->out_pending ? s->out_fd : -1, POLLOUT, 0},
		};
		int n = poll(pf, ARRAY_SIZE(pf), deadline ? ms_until(deadline) : -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lost(s, errno);
		/* Past the deadline, whether or not the guest is still
		 * sending: one that never pauses must not outlast it. */
		if (n == 0 || (deadline && now_ns() >= deadline)) {
			if (r->p.stuck)
				r->p.stuck(r->p.ctx);
			snprintf(s->msg, MSG_LEN,
				 "flint run: the command timed out after %u s (the guest did not "
				 "stop it)",
				 r->p.timeout_s);
			return RUN_EXIT_TIMEOUT;
		}
		if (pf[0].revents)
			return -1;
		if (pf[3].revents)
			write_out(s);
		if (pf[2].revents)
			read_stdin(s);
		if (r->tx.len && (status = flush(s)) >= 0)
			return status;
		if ((pf[1].revents & ~POLLOUT) && (status = read_agent(s)) >= 0)
			return status;
	}
}

/* RUN_ACCEPT with a ready hook: what it says. Returns -1 to go on with
 * s->sock (a new one if it asked), -2 when stopped, or a final status. */
static int call_ready(struct session *s)
{
	struct run *r = s->r;
	int ret = r->p.ready(r->p.ctx, s->msg, MSG_LEN);

	if (ret == RUN_READY_SEND)
		return -1;
	close_fd(&s->sock);
	if (ret != RUN_READY_RECONNECT)
		return ret < 0 ? EXIT_FLINT_ERROR : ret;
	if (!r->uds) {
		snprintf(s->msg, MSG_LEN, "flint run: no vsock socket to reach the agent through");
		return EXIT_FLINT_ERROR;
	}
	s->sock = connect_agent(s);
	return s->sock == -1 ? -2 : s->sock < 0 ? RUN_EXIT_NO_AGENT : -1;
}

/* RUN_CONNECT with go(): waits for one byte on go_fd, then go() resumes
 * the VM. Returns -1 to go on, -2 when stopped, or a final status (0 when
 * go_fd ended without a byte: the warm VM was given up). */
static int wait_go(struct session *s)
{
	struct run *r = s->r;
	char b;

	for (;;) {
		struct pollfd pf[2] = {{r->stop_fd, POLLIN, 0}, {r->p.go_fd, POLLIN, 0}};
		ssize_t n;
		int ret;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(s->msg, MSG_LEN, "flint run: poll: %s", strerror(errno));
			return EXIT_FLINT_ERROR;
		}
		if (pf[0].revents)
			return -2;
		if (pf[1].revents & POLLNVAL) {
			snprintf(s->msg, MSG_LEN, "flint run: --wait-fd %d is not open",
				 r->p.go_fd);
			return EXIT_FLINT_ERROR;
		}
		if (!pf[1].revents)
			continue;
		/* One byte only: whatever follows is the caller's. */
		n = read(r->p.go_fd, &b, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			snprintf(s->msg, MSG_LEN, "flint run: reading --wait-fd %d: %s", r->p.go_fd,
				 strerror(errno));
			return EXIT_FLINT_ERROR;
		}
		pthread_mutex_lock(&r->lock);
		r->t.go_us = us_since_launch();
		r->t.given_up = n == 0;
		pthread_mutex_unlock(&r->lock);
		if (n == 0)
			return 0;
		ret = r->p.go(r->p.ctx, s->msg, MSG_LEN);
		return ret == 0 ? -1 : ret < 0 ? EXIT_FLINT_ERROR : ret;
	}
}

/* Has the copy helper do the copy-ins or the copy-outs, and waits for it.
 * Returns how many failed, -1 when stopped, or -2 with s->msg set. */
static int run_copies(struct session *s, bool out)
{
	struct run *r = s->r;
	uint64_t *t = out ? r->t.copy_out_us : r->t.copy_in_us;
	int ret;

	set_time(r, &t[0]);
	ret = copy_request(r->p.copy, out);

	while (ret == 0 || ret == -EAGAIN) {
		struct pollfd pf[2] = {{r->stop_fd, POLLIN, 0}, {copy_fd(r->p.copy), POLLIN, 0}};

		if (poll(pf, 2, -1) < 0 && errno != EINTR) {
			ret = -errno;
			break;
		}
		if (pf[0].revents)
			return -1;
		if (pf[1].revents && (ret = copy_result(r->p.copy)) >= 0) {
			set_time(r, &t[1]);
			return ret;
		}
	}
	snprintf(s->msg, MSG_LEN, "flint run: the copy helper is gone (%s)", strerror(-ret));
	return -2;
}

static int session_run(struct session *s)
{
	struct run *r = s->r;
	int status;

	if (r->p.go && (status = wait_go(s)) != -1)
		return status == -2 ? -1 : status;
	s->sock = r->p.mode == RUN_CONNECT ? connect_agent(s) : wait_agent(s);
	/* One agent connection per run: later ones are refused. */
	close_fd(&r->lfd);
	if (s->sock == -1)
		return -1;
	if (s->sock < 0)
		return RUN_EXIT_NO_AGENT;
	set_time(r, &r->t.agent_ready_us);
	phases_mark(BP_AGENT_READY);
	if (r->p.mode == RUN_ACCEPT && r->p.ready && (status = call_ready(s)) != -1)
		return status == -2 ? -1 : status;
	if (!r->tx.len) {
		/* No command, and ready() did not end the run. */
		close_fd(&s->sock);
		snprintf(s->msg, MSG_LEN, "flint run: no command");
		return EXIT_FLINT_ERROR;
	}
	if (copy_count(r->p.copy, false) && (status = run_copies(s, false)) != 0) {
		close_fd(&s->sock);
		if (status == -1)
			return -1;
		if (status > 0)
			snprintf(s->msg, MSG_LEN,
				 "flint run: the command was not run: --copy-in failed");
		return EXIT_FLINT_ERROR;
	}
	agent_reader_init(&s->rd, s->rbuf, sizeof(s->rbuf));
	s->in_open = r->p.in_fd >= 0;
	atomic_store(&r->sending, true);
	status = relay(s);
	close_fd(&s->sock);
	/* Whatever the command's fate, its results are collected, as long as
	 * the agent was there to tell it. */
	if (status >= 0 && s->got_exit && copy_count(r->p.copy, true)) {
		int failed = run_copies(s, true);

		if (failed == -1)
			return -1;
		if (failed != 0 && status == 0) {
			if (failed > 0)
				snprintf(s->msg, MSG_LEN,
					 "flint run: the command exited 0, but --copy-out failed");
			status = EXIT_FLINT_ERROR;
		}
	}
	return status;
}

/* run_params.status_fd's line. */
static void say_status(struct run *r, int status)
{
	struct run_timings t;
	char line[112];
	double ready = -1, cmd = -1;
	int n;

	run_get_timings(r, &t);
	if (t.agent_ready_us)
		ready = (double)(t.agent_ready_us - t.go_us) / 1000.0;
	if (t.cmd_end_us && t.cmd_start_us)
		cmd = (double)(t.cmd_end_us - t.cmd_start_us) / 1000.0;
	/* command=1: the command's own status, whatever its number (its 122
	 * to 125 are none of flint run's). */
	n = snprintf(line, sizeof(line),
		     "status=%d ready_ms=%.1f command_ms=%.1f sent=%d command=%d\n", status, ready,
		     cmd, atomic_load(&r->sending) ? 1 : 0,
		     atomic_load(&r->cmd_status) == status ? 1 : 0);
	if (write_full(r->p.status_fd, line, (size_t)n) < 0)
		pr_warn("flint run: cannot write the status line: %s", strerror(errno));
}

static void *run_thread(void *arg)
{
	struct run *r = arg;
	char msg[MSG_LEN] = "";
	/* The thread's filter before it touches anything the guest sends,
	 * and its name before that (vcpu.c). */
	pthread_setname_np(pthread_self(), "run");
	logger_thread_name("run");
	int status, err = seccomp_enter(SECCOMP_RUN);

	if (err < 0) {
		snprintf(msg, sizeof(msg), "flint run: seccomp filter: %s", strerror(-err));
		status = EXIT_FLINT_ERROR;
	} else {
		r->s.msg = msg;
		status = session_run(&r->s);
	}
	if (status < 0 || atomic_load(&r->stopping))
		return NULL;
	if (r->p.status_fd > 0)
		say_status(r, status);
	/* Before finish(): the caller may check run_finished as soon as the
	 * VM it stops has ended. */
	atomic_store(&r->finished, true);
	r->p.finish(r->p.ctx, status, msg[0] ? msg : NULL);
	return NULL;
}

/* Listens on path (core/usock.h: a stale socket replaced, nothing else). */
static int listen_on(struct run *r)
{
	int fd = usock_listen(r->path, SOCK_NONBLOCK, 1, 0, NULL);

	if (fd < 0) {
		pr_err("flint run: cannot listen on %s: %s", r->path, usock_why(fd));
		return fd;
	}
	r->lfd = fd;
	return 0;
}

/* The request frame into r->tx: argv, the environment given (never the
 * host's), the working directory ("/" by default). */
static int build_request(struct run *r)
{
	const struct run_params *p = &r->p;
	struct agent_request req = {
	    .timeout_ms = p->timeout_s * 1000,
	    .flags = (p->in_fd >= 0 ? AGENT_REQ_STDIN : 0) | (p->user ? AGENT_REQ_USER : 0),
	    .uid = p->uid,
	    .gid = p->gid,
	    .argc = (uint32_t)p->argc,
	    .envc = p->envc > 0 ? (uint32_t)p->envc : 0,
	    .argv = p->argv,
	    .envp = p->envp,
	    .cwd = p->cwd ? p->cwd : "/",
	};
	char err[256];
	long len;

	if (!p->finish || (p->mode == RUN_ACCEPT ? !p->listen_path : !p->uds_path)) {
		pr_err("flint run: no %s", p->finish ? "socket to reach the agent" : "finish()");
		return -EINVAL;
	}
	if (p->go && (p->mode != RUN_CONNECT || p->go_fd < 0)) {
		pr_err("flint run: waiting for a go byte needs RUN_CONNECT and an fd");
		return -EINVAL;
	}
	if (p->argc == 0 && p->ready && p->mode == RUN_ACCEPT)
		return 0; /* no request: ready() ends the run */
	if (p->argc < 1 || !p->argv) {
		pr_err("flint run: no command");
		return -EINVAL;
	}
	if (p->envc < 0 || (p->envc > 0 && !p->envp)) {
		pr_err("flint run: bad environment");
		return -EINVAL;
	}
	if (p->timeout_s > UINT32_MAX / 1000) {
		pr_err("flint run: --timeout %u is too long", p->timeout_s);
		return -EINVAL;
	}
	len = agent_request_encode(&req, r->tx.buf, r->tx.cap, err, sizeof(err));
	if (len == -E2BIG) {
		pr_err("flint run: %s: the command's words, its --env entries and --workdir go "
		       "to the guest agent in one request, which must fit",
		       err);
		return (int)len;
	}
	if (len < 0) {
		pr_err("flint run: %s", err);
		return (int)len;
	}
	r->tx.len = (size_t)len;
	return 0;
}

int run_start(struct run **out, const struct run_params *p)
{
	/* Most of it is a 64 KiB frame buffer that small outputs barely use. */
	struct run *r = lazy_zalloc(sizeof(*r));
	int ret;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->p = *p;
	r->lfd = r->stop_fd = -1;
	atomic_init(&r->cmd_status, -1);
	r->s.r = r;
	r->s.sock = -1;
	pthread_mutex_init(&r->lock, NULL);
	r->tx.cap = TX_CAP;
	r->tx.buf = malloc(TX_CAP);
	if (p->mode == RUN_ACCEPT && p->listen_path && !(r->path = strdup(p->listen_path))) {
		ret = -ENOMEM;
		goto err;
	}
	if (!r->tx.buf || (p->uds_path && !(r->uds = strdup(p->uds_path)))) {
		ret = -ENOMEM;
		goto err;
	}
	if ((ret = build_request(r)) < 0)
		goto err;
	if (r->uds && strlen(r->uds) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		pr_err("flint run: socket path too long: %s", r->uds);
		ret = -ENAMETOOLONG;
		goto err;
	}
	if (p->mode == RUN_ACCEPT && (ret = listen_on(r)) < 0)
		goto err;
	r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop_fd < 0) {
		ret = -errno;
		pr_err("flint run: eventfd: %s", strerror(errno));
		goto err;
	}
	ret = -thread_start_unsignalled(&r->thread, NULL, run_thread, r);
	if (ret < 0) {
		pr_err("flint run: cannot start a thread: %s", strerror(-ret));
		goto err;
	}
	r->thread_started = true;
	*out = r;
	return 0;
err:
	run_stop(r);
	return ret;
}

/* Stops the thread (finish() is then not called) and joins it, once. */
static void join_thread(struct run *r)
{
	if (!r->thread_started || r->joined)
		return;
	atomic_store(&r->stopping, true);
	if (eventfd_write(r->stop_fd, 1) < 0)
		pr_err("flint run: cannot stop the relay thread: %s", strerror(errno));
	pthread_join(r->thread, NULL);
	r->joined = true;
}

void run_vm_ended(struct run *r, int status)
{
	if (!r)
		return;
	join_thread(r);
	if (r->thread_started && !atomic_load(&r->finished) && r->p.status_fd > 0)
		say_status(r, status);
}

void run_stop(struct run *r)
{
	if (!r)
		return;
	join_thread(r);
	if (r->path && (r->lfd >= 0 || r->thread_started))
		unlink(r->path);
	close_fd(&r->lfd);
	close_fd(&r->stop_fd);
	pthread_mutex_destroy(&r->lock);
	free(r->tx.buf);
	free(r->path);
	free(r->uds);
	lazy_free(r, sizeof(*r));
}

bool run_finished(const struct run *r)
{
	return r && atomic_load(&r->finished);
}

void run_get_timings(const struct run *r, struct run_timings *out)
{
	struct run *m = (struct run *)r;

	if (!r) {
		*out = (struct run_timings){0};
		return;
	}
	pthread_mutex_lock(&m->lock);
	*out = m->t;
	pthread_mutex_unlock(&m->lock);
}
