/* agentc: flint serve's client of a running VM's guest agent (see
 * agentc.h). One poll loop per session: the request and the body go out
 * as the socket takes them, while stdout is handed to the caller a frame
 * at a time and stderr kept, so that neither side waits on the other. */
#include "serve/agentc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/proto.h"
#include "core/util.h"

#define ANSWER_MAX   32 /* "OK 4294967295\n" is 14 */
#define RETRY_MIN_MS 2	/* between two tries to reach the agent, doubling */
#define RETRY_MAX_MS 100

struct agentc {
	int sock;
	struct agent_reader rd;
	uint8_t rbuf[AGENT_DATA_MAX];
	/* The request frame, then one STDIN frame at a time. */
	struct agent_outbuf tx;
	uint8_t stage[AGENT_HDR_SIZE + AGENT_DATA_MAX];
	bool in_open;	/* the body is still being sent */
	bool sending;	/* the request's first write was tried: it may run */
	size_t out_off; /* of a STDOUT frame in rbuf still being handed out */
	bool out_pending, over;
	uint64_t start_ns, ready_ns, sent_ns, end_ns, deadline_ns;
	enum worker_outcome outcome;
	int status;
	atomic_bool killed; /* agentc_kill, from any thread */
	bool timed_out;
	int client_fd;	/* the HTTP client's connection, watched; -1 none */
	char said[160]; /* the session's own last reason (agentc_said) */
	char *err;
	size_t err_cap, err_len, err_total;
};

/* stderr kept: the guest's, and the session's own reasons. */
static void keep_err(struct agentc *a, const void *p, size_t len)
{
	size_t room = a->err_cap - a->err_len, n = len < room ? len : room;

	memcpy(a->err + a->err_len, p, n);
	a->err_len += n;
	a->err_total += len;
}

/* A reason of the session's own, into its stderr as a line of flint
 * serve's. */
static void say(struct agentc *a, const char *fmt, ...) PRINTF(2, 3);
static void say(struct agentc *a, const char *fmt, ...)
{
	static const char tag[] = "flint serve: ";
	const size_t t = sizeof(tag) - 1;
	char line[sizeof(tag) + AGENT_MSG_MAX + 128];
	va_list ap;
	int n;

	memcpy(line, tag, t);
	va_start(ap, fmt);
	n = vsnprintf(line + t, sizeof(line) - t - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - t - 2)
		n = (int)(sizeof(line) - t - 2);
	/* The reason alone, for the client's answer (agentc_said). */
	snprintf(a->said, sizeof(a->said), "%.*s", n, line + t);
	line[t + (size_t)n] = '\n';
	keep_err(a, line, t + (size_t)n + 1);
}

/* The session ends with outcome o (status for EXIT and SIGNAL). */
static void end(struct agentc *a, enum worker_outcome o, int status)
{
	if (a->over)
		return;
	a->over = true;
	a->outcome = o;
	a->status = status;
	a->end_ns = now_ns();
	if (a->sock >= 0)
		shutdown(a->sock, SHUT_RDWR);
}

static int ms_until(uint64_t deadline)
{
	uint64_t now = now_ns(), ms;

	if (!deadline)
		return -1;
	if (now >= deadline)
		return 0;
	ms = (deadline - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* One try: connected, the CONNECT line sent and its answer read a byte at
 * a time (the agent's frames follow it). 1 for "OK ...", 0 for a try
 * worth another (nothing listens yet, or the device closed the
 * connection: nothing in the guest answered yet), -1 for another answer
 * (said), -2 at the deadline. The socket stays in a->sock on 1. */
static int dial(struct agentc *a, const struct agentc_params *p, uint64_t deadline)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[32], ans[ANSWER_MAX + 1];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", AGENT_VSOCK_PORT), path = -1, c;
	size_t len = 0;

	if (p->open_uds) {
		/* The socket's inode through its descriptor's magic link: no
		 * name in somebody else's tree is followed. */
		if ((path = p->open_uds(p->open_ctx, p->uds)) < 0)
			return path == -ENOENT ? 0
					       : (say(a, "%s: %s", p->uds, strerror(-path)), -1);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", path);
	} else {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->uds);
	}
	a->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->sock < 0) {
		close_fd(&path);
		return say(a, "socket: %s", strerror(errno)), -1;
	}
	c = connect(a->sock, (struct sockaddr *)&sa, sizeof(sa));
	close_fd(&path);
	if (c < 0 || send(a->sock, line, (size_t)n, MSG_NOSIGNAL) != n) {
		close_fd(&a->sock);
		return 0;
	}
	for (;;) {
		struct pollfd pf = {a->sock, POLLIN, 0};
		int r = poll(&pf, 1, ms_until(deadline));
		ssize_t got;

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			close_fd(&a->sock);
			return -2;
		}
		got = recv(a->sock, ans + len, 1, 0);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got <= 0) {
			close_fd(&a->sock);
			return 0;
		}
		if (ans[len++] == '\n')
			break;
		if (len == ANSWER_MAX) {
			close_fd(&a->sock);
			return say(a, "the vsock device's answer is too long"), -1;
		}
	}
	ans[len - 1] = '\0';
	if (strncmp(ans, "OK ", 3) != 0) {
		for (size_t i = 0; i < len - 1; i++)
			if (ans[i] < 0x20 || ans[i] > 0x7e)
				ans[i] = '?';
		close_fd(&a->sock);
		return say(a, "the vsock device answered '%s'", ans), -1;
	}
	return 1;
}

/* Tries until the agent answers or connect_ms passes. */
static bool reach(struct agentc *a, const struct agentc_params *p)
{
	uint64_t deadline = now_ns() + (uint64_t)p->connect_ms * 1000000ULL;
	int wait = RETRY_MIN_MS;

	for (;;) {
		int r = dial(a, p, deadline);

		if (r == 1)
			return true;
		if (r == 0 && p->vm_gone && p->vm_gone(p->gone_ctx)) {
			say(a, "the VM's flint ended before its guest agent answered");
			return false;
		}
		if (r < 0 || now_ns() >= deadline) {
			if (r != -1)
				say(a, "the guest agent did not answer within %u ms",
				    p->connect_ms);
			return false;
		}
		usleep((useconds_t)wait * 1000);
		wait = wait * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : wait * 2;
	}
}

static size_t count(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

int agentc_start(struct agentc **out, const struct agentc_params *p)
{
	struct agentc *a = calloc(1, sizeof(*a));
	size_t cap = p->stderr_cap ? p->stderr_cap : WORKER_STDERR_CAP;
	char why[256];
	long len;

	*out = NULL;
	if (!a || !(a->err = malloc(cap + 1)) ||
	    !(a->tx.buf = malloc(AGENT_HDR_SIZE + AGENT_REQUEST_MAX))) {
		if (a)
			free(a->err);
		free(a);
		return -ENOMEM;
	}
	a->err_cap = cap;
	a->sock = a->client_fd = -1;
	a->tx.cap = AGENT_HDR_SIZE + AGENT_REQUEST_MAX;
	a->start_ns = now_ns();
	agent_reader_init(&a->rd, a->rbuf, sizeof(a->rbuf));
	*out = a;

	struct agent_request req = {
	    .timeout_ms = p->timeout_s * 1000,
	    .flags = AGENT_REQ_STDIN,
	    .argc = (uint32_t)count(p->argv),
	    .envc = (uint32_t)count(p->env),
	    .argv = p->argv,
	    .envp = p->env,
	    .cwd = p->workdir ? p->workdir : "/",
	};
	len = agent_request_encode(&req, a->tx.buf, a->tx.cap, why, sizeof(why));
	if (len < 0) {
		say(a, "%s", why);
		end(a, WORKER_LOST, 0);
		return 0;
	}
	a->tx.len = (size_t)len;
	if (!reach(a, p)) {
		end(a, WORKER_LOST, 0);
		return 0;
	}
	a->ready_ns = now_ns();
	a->in_open = true;
	if (p->timeout_s)
		a->deadline_ns =
		    a->ready_ns + (uint64_t)(p->timeout_s + AGENTC_MARGIN_S) * 1000000000ULL;
	return 0;
}

/* The EXIT or ERROR frame in rbuf: the end. */
static void final_frame(struct agentc *a)
{
	struct agent_exit e;
	char msg[AGENT_MSG_MAX + 1];

	if (a->rd.f.type == AGENT_ERROR) {
		agent_msg_copy(msg, sizeof(msg), a->rbuf, a->rd.f.len);
		say(a, "the guest agent refused the command: %s", msg);
		end(a, WORKER_LOST, 0);
		return;
	}
	if (agent_exit_decode(a->rbuf, a->rd.f.len, &e) < 0) {
		say(a, "a malformed EXIT frame from the guest agent");
		end(a, WORKER_LOST, 0);
		return;
	}
	switch (e.kind) {
	case AGENT_EXITED:
		end(a, e.value ? WORKER_EXIT : WORKER_OK, e.value);
		break;
	case AGENT_SIGNALED:
		end(a, WORKER_SIGNAL, e.value);
		break;
	case AGENT_TIMED_OUT:
		end(a, WORKER_TIMEOUT, 124);
		break;
	default: /* AGENT_NOT_STARTED */
		say(a, "%s", e.msg[0] ? e.msg : "the command did not start");
		end(a, WORKER_EXIT, 127);
	}
}

/* Reads frames until a STDOUT one waits to be handed out, the socket runs
 * dry, the end, or AGENT_READ_BATCH of them. */
static void read_frames(struct agentc *a)
{
	for (unsigned i = 0; i < AGENT_READ_BATCH && !a->out_pending && !a->over; i++) {
		int r = agent_read_frame(&a->rd, a->sock);

		if (r == -EAGAIN || r == -EINTR)
			return;
		if (r <= 0) {
			say(a, "%s",
			    r == 0 || r == -ECONNRESET ? "lost the connection to the guest agent"
			    : r == -EPROTO || r == -EMSGSIZE ? "a bad frame from the guest agent"
							     : strerror(-r));
			end(a, WORKER_LOST, 0);
			return;
		}
		switch (a->rd.f.type) {
		case AGENT_STDOUT:
			a->out_off = 0;
			a->out_pending = a->rd.f.len > 0;
			break;
		case AGENT_STDERR:
			keep_err(a, a->rbuf, a->rd.f.len);
			break;
		case AGENT_EXIT:
		case AGENT_ERROR:
			final_frame(a);
			break;
		default:
			say(a, "a host-to-guest frame from the guest agent");
			end(a, WORKER_LOST, 0);
		}
	}
}

/* The next piece of the body as a STDIN frame (or STDIN_EOF) once the
 * last one is out. 0, or in()'s error. */
static int fill_tx(struct agentc *a, worker_in_fn in, void *ctx)
{
	ssize_t n;

	if (!a->in_open || a->tx.len > a->tx.off)
		return 0;
	a->tx.len = a->tx.off = 0;
	n = in ? in(ctx, a->stage, AGENT_DATA_MAX) : 0;
	if (n < 0)
		return (int)n;
	if (n == 0) {
		a->in_open = false;
		return agent_out_frame(&a->tx, AGENT_STDIN_EOF, NULL, 0);
	}
	return agent_out_frame(&a->tx, AGENT_STDIN, a->stage, (size_t)n);
}

ssize_t agentc_read(struct agentc *a, worker_in_fn in, void *ctx, void *buf, size_t len)
{
	for (;;) {
		if (a->out_pending) {
			size_t n = a->rd.f.len - a->out_off;

			if (n > len)
				n = len;
			memcpy(buf, a->rbuf + a->out_off, n);
			a->out_off += n;
			a->out_pending = a->out_off < a->rd.f.len;
			return (ssize_t)n;
		}
		if (a->over)
			return 0;
		int r = fill_tx(a, in, ctx);
		if (r < 0) {
			say(a, "the request body: %s", strerror(-r));
			end(a, WORKER_KILLED, 0);
			return r;
		}
		if (a->tx.len > a->tx.off) {
			a->sending = true;
			r = agent_out_flush(&a->tx, a->sock);
			if (r < 0 && r != -EPIPE) {
				say(a, "sending to the guest agent: %s", strerror(-r));
				end(a, WORKER_LOST, 0);
				continue;
			}
			if (r < 0) /* the agent stopped reading: the rest is dropped */
				a->in_open = false, a->tx.len = a->tx.off = 0;
			if (!a->sent_ns && r == 0)
				a->sent_ns = now_ns();
			/* All of it out: the next piece of the body before waiting. */
			if (a->in_open && a->tx.len == a->tx.off)
				continue;
		}
		struct pollfd pf[2] = {
		    {a->sock, (short)(POLLIN | (a->tx.len > a->tx.off ? POLLOUT : 0)), 0},
		    /* Its hang-up only: bytes from it are the next request. */
		    {a->client_fd, POLLRDHUP, 0},
		};
		int n = poll(pf, ARRAY_SIZE(pf), ms_until(a->deadline_ns));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			end(a, WORKER_LOST, 0);
			return r;
		}
		if (pf[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			/* Nobody takes the answer: the connection's end (as
			 * agentc_kill's) has the agent kill the command's
			 * group. */
			say(a, "the client hung up: the command was ended");
			end(a, WORKER_CLIENT_GONE, 0);
			return -ECONNABORTED;
		}
		/* Past the deadline, whether or not the agent is still
		 * sending: one that never pauses must not outlast it. */
		if (n == 0 || (a->deadline_ns && now_ns() >= a->deadline_ns)) {
			say(a, "no status from the guest agent %u s past the timeout",
			    AGENTC_MARGIN_S);
			a->timed_out = true;
			end(a, WORKER_TIMEOUT, 0);
			continue;
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
			read_frames(a);
	}
}

void agentc_watch_client(struct agentc *a, int fd)
{
	if (a)
		a->client_fd = fd;
}

void agentc_result(struct agentc *a, struct worker_result *res)
{
	uint64_t end_ns = a->end_ns ? a->end_ns : now_ns();

	if (!a->over)
		end(a, WORKER_LOST, 0);
	*res = (struct worker_result){
	    .outcome = atomic_load(&a->killed) ? WORKER_KILLED : a->outcome,
	    .status = atomic_load(&a->killed) ? 9 : a->status,
	    .deadline = a->timed_out,
	    .err = a->err,
	    .err_len = a->err_len,
	    .err_total = a->err_total,
	    .err_truncated = a->err_total > a->err_len,
	    .run_ns = end_ns - a->start_ns,
	    .ready_ms = a->ready_ns ? (double)(a->ready_ns - a->start_ns) / 1e6 : -1,
	    .command_ms = a->sent_ns ? (double)(end_ns - a->sent_ns) / 1e6 : -1,
	    .unsent = !a->sending,
	};
	a->err[a->err_len] = '\0';
}

const char *agentc_said(const struct agentc *a)
{
	return a->said;
}

void agentc_kill(struct agentc *a)
{
	if (!a)
		return;
	atomic_store(&a->killed, true);
	if (a->sock >= 0)
		shutdown(a->sock, SHUT_RDWR);
}

void agentc_destroy(struct agentc *a)
{
	if (!a)
		return;
	close_fd(&a->sock);
	free(a->tx.buf);
	free(a->err);
	free(a);
}
