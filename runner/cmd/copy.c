/* flint run's copies: see copy.h. The parent's side is a socket pair; the
 * helper process does the rest with blocking I/O, one agent connection
 * per copy. */
#include "cmd/copy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/proto.h"
#include "agent/tarcopy.h"
#include "cmd/spool.h"

/* The agent answers at once: it is up (the run thread holds a connection
 * to it). */
#define ANSWER_TIMEOUT_MS 10000
#define MSG_LEN		  COPY_MSG_LEN

struct copier {
	int ctl; /* our end of the socket pair */
	unsigned n[2];
};

/* ---- the helper process ---- */

struct helper {
	int ctl, err_fd;
	const char *uds;
	const struct copy_item *items[2];
	unsigned n[2];
	/* The copy-ins' streams, archived from the helper's start (while the
	 * guest boots) until they are sent; NULL once sent, or where the
	 * archiver could not start (each is then archived as it is sent). */
	struct spool *spool;
	const char **paths;
	bool ahead;	     /* archive the copy-ins from the start (copy_start) */
	unsigned timeout_ms; /* each phase's, copy_bounds' */
	/* The file data the copy-outs may still write, and their bound as
	 * messages show it. */
	uint64_t out_left;
	char limit_name[64];
};

/* The phase's deadline: an interval timer's SIGALRM shuts the copy's
 * agent connection down, which ends whatever waits on it (a read, a write,
 * the CONNECT's answer) at once and fails the copy; copies not begun then
 * fail untried. The guest cannot keep the connection from that, as it can
 * keep the idle limit from passing with a byte now and then. live_sock:
 * the connection, once connected, -1 between copies. */
static volatile sig_atomic_t expired, live_sock = -1;

static void on_alarm(int sig)
{
	int err = errno;

	(void)sig;
	expired = 1;
	if (live_sock >= 0)
		shutdown(live_sock, SHUT_RDWR);
	errno = err;
}

/* tarcopy_io.expired. */
static bool past_deadline(void *ctx)
{
	(void)ctx;
	return expired;
}

static void set_deadline(unsigned ms)
{
	struct itimerval it = {.it_value = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}};

	setitimer(ITIMER_REAL, &it, NULL);
}

/* One copy's agent connection. */
struct conn {
	int sock;
	struct agent_reader rd;
	uint8_t rbuf[AGENT_DATA_MAX];
	uint8_t tbuf[AGENT_HDR_SIZE + AGENT_DATA_MAX];
	bool ended;		 /* TAR_END came */
	bool send_failed;	 /* a frame to the agent could not be sent */
	char agent_msg[MSG_LEN]; /* the agent's ERROR, if one came */
};

static int say(char *msg, const char *fmt, ...) PRINTF(2, 3);
static int say(char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, MSG_LEN, fmt, ap);
	va_end(ap);
	return -1;
}

/* A connection to the agent's port through the vsock device's socket:
 * "CONNECT <port>\n", then "OK <port>\n" read a byte at a time. */
static int dial(const char *uds, int *fd, char *msg)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[32], a[33];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", AGENT_VSOCK_PORT);
	size_t len = 0;

	if (strlen(uds) >= sizeof(sa.sun_path))
		return say(msg, "socket path too long: %s", uds);
	strcpy(sa.sun_path, uds);
	*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0 || connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return say(msg, "cannot reach the guest agent through %s: %s", uds,
			   strerror(errno));
	/* Connected: from now on the deadline can cut it off (a socket not
	 * yet connected cannot be shut down). */
	live_sock = *fd;
	if (expired)
		return -1;
	if (write_full(*fd, line, (size_t)n) < 0)
		return say(msg, "cannot reach the guest agent through %s: %s", uds,
			   strerror(errno));
	while (len < sizeof(a) - 1) {
		struct pollfd pf = {*fd, POLLIN, 0};
		ssize_t got;

		if (poll(&pf, 1, ANSWER_TIMEOUT_MS) == 0)
			return say(msg, "the guest agent did not answer");
		got = recv(*fd, a + len, 1, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return say(msg, "the guest agent did not answer (%s)",
				   got ? strerror(errno) : "connection closed");
		if (a[len++] == '\n')
			break;
	}
	a[len] = '\0';
	if (strncmp(a, "OK ", 3) || a[len - 1] != '\n')
		return say(msg, "unexpected answer from the vsock socket %s", uds);
	return 0;
}

int copy_set_idle(int sock, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* The message for a read or write of the agent's connection that failed
 * with err: a timeout is the idle limit copy_set_idle put on it. */
static int io_failed(struct conn *c, char *msg, const char *what, int err)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	if ((err == EAGAIN || err == EWOULDBLOCK) &&
	    getsockopt(c->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0)
		return say(msg,
			   "the guest agent's connection was idle for %.1f s (the copy's limit)",
			   (double)tv.tv_sec + tv.tv_usec / 1e6);
	return say(msg, "%s the guest agent: %s", what, strerror(err));
}

static int send_frame(struct conn *c, uint8_t type, const void *p, size_t len, char *msg)
{
	struct agent_outbuf o = {.buf = c->tbuf, .cap = sizeof(c->tbuf)};
	int ret;

	agent_out_frame(&o, type, p, len);
	/* 1: the socket stayed full for SO_SNDTIMEO (the idle limit). */
	if ((ret = agent_out_flush(&o, c->sock)) != 0) {
		c->send_failed = true;
		return io_failed(c, msg, "sending to", ret == 1 ? EAGAIN : -ret);
	}
	return 0;
}

/* The next frame; ERROR's text kept in agent_msg. 1 with it, or -1. */
static int next_frame(struct conn *c, char *msg)
{
	int ret = agent_read_frame(&c->rd, c->sock);

	if (ret == 1 && c->rd.f.type == AGENT_ERROR) {
		char m[AGENT_MSG_MAX + 1];

		agent_msg_copy(m, sizeof(m), c->rbuf, c->rd.f.len);
		snprintf(c->agent_msg, sizeof(c->agent_msg), "the guest agent: %s", m);
		return say(msg, "%s", c->agent_msg);
	}
	if (ret == 1)
		return 1;
	if (ret == 0 || ret == -ECONNRESET)
		return say(msg, "the guest agent closed the connection");
	if (ret == -EPROTO || ret == -EMSGSIZE)
		return say(msg, "bad frame from the guest agent");
	return io_failed(c, msg, "reading from", -ret);
}

static int conn_write(void *ctx, const void *buf, size_t len, char *msg, size_t msglen)
{
	struct conn *c = ctx;
	char m[MSG_LEN];

	for (const uint8_t *p = buf; len;) {
		size_t n = len < AGENT_DATA_MAX ? len : AGENT_DATA_MAX;

		if (send_frame(c, AGENT_TAR, p, n, m) < 0) {
			snprintf(msg, msglen, "%s", m);
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static ssize_t conn_read(void *ctx, const void **buf, char *msg, size_t msglen)
{
	struct conn *c = ctx;
	char m[MSG_LEN];

	while (!c->ended) {
		if (next_frame(c, m) < 0) {
			snprintf(msg, msglen, "%s", m);
			return -1;
		}
		if (c->rd.f.type == AGENT_TAR_END) {
			c->ended = true;
		} else if (c->rd.f.type != AGENT_TAR) {
			snprintf(msg, msglen, "frame type %u from the guest agent in a tar stream",
				 c->rd.f.type);
			return -1;
		} else if (c->rd.f.len) {
			*buf = c->rbuf;
			return (ssize_t)c->rd.f.len;
		}
	}
	return 0;
}

/* The COPY_IN or COPY_OUT (type) of its guest path, with flags and the
 * run's user, in c->tbuf: its length, or -errno with err (MSG_LEN bytes)
 * saying why. */
static long request_frame(struct conn *c, uint8_t type, const struct copy_item *it, uint32_t flags,
			  const char *path, char *err)
{
	struct agent_copy cp = {.flags = flags | (it->user ? AGENT_COPY_USER : 0),
				.uid = it->uid,
				.gid = it->gid,
				.path = path};

	return agent_copy_encode(c->tbuf, sizeof(c->tbuf), type, &cp, err, MSG_LEN);
}

/* --copy-in: the stream of src (stream i of sp, or archived now) to the
 * agent, then its verdict. */
static int copy_in(struct conn *c, const struct copy_item *it, struct spool *sp, unsigned i,
		   char *msg)
{
	struct tarcopy_io io = {.write = conn_write, .ctx = c};
	char err[MSG_LEN];
	struct agent_exit e;
	long n = request_frame(c, AGENT_COPY_IN, it, it->contents ? AGENT_COPY_CONTENTS : 0,
			       it->dst, err);
	int sent;

	if (n < 0)
		return say(msg, "%s", err);
	if (write_full(c->sock, c->tbuf, (size_t)n) < 0)
		return io_failed(c, msg, "sending to", errno);
	sent = sp ? spool_send(sp, i, &io, AGENT_DATA_MAX, err, sizeof(err))
		  : tarcopy_send(it->src, &io, NULL, err, sizeof(err));
	if (sent == 0 && send_frame(c, AGENT_TAR_END, NULL, 0, err) < 0)
		sent = -1;
	/* A stream cut short: the agent, waiting for the rest, gets its end
	 * now and answers, rather than at the idle limit. */
	if (sent < 0)
		shutdown(c->sock, SHUT_WR);
	/* Even when sending failed: the agent may have said why first, if it
	 * stopped taking the stream. A failure here (a file this host could
	 * not read) is the cause, and what the agent says of the stream's
	 * early end only its consequence. */
	if (next_frame(c, msg) < 0)
		return sent < 0 && (!c->send_failed || !c->agent_msg[0]) ? say(msg, "%s", err) : -1;
	if (sent < 0)
		return say(msg, "%s", err);
	if (c->rd.f.type != AGENT_EXIT || agent_exit_decode(c->rbuf, c->rd.f.len, &e) < 0 ||
	    e.kind != AGENT_EXITED || e.value != 0)
		return say(msg, "unexpected answer from the guest agent");
	return 0;
}

/* --copy-out: the agent's stream of src extracted at dst, at most *room
 * bytes of file data (lowered by what it writes; NULL: no bound, named by
 * room_name). */
static int copy_out(struct conn *c, const struct copy_item *it, uint64_t *room,
		    const char *room_name, char *msg)
{
	struct tarcopy_io io = {.read = conn_read,
				.ctx = c,
				.room = room,
				.room_name = room_name,
				.expired = past_deadline};
	/* The guest's stream: its top must be what was asked for, its links
	 * must stay inside the copy (tarcopy.h). As root its owners are kept,
	 * but no set-id bit: a guest's file is never a set-user-ID program
	 * on the host. */
	unsigned flags = (it->contents ? TARCOPY_CONTENTS : 0) |
			 (geteuid() == 0 ? TARCOPY_KEEP_ALL : 0) | TARCOPY_LINKS_INSIDE |
			 TARCOPY_NO_SET_ID;
	char err[MSG_LEN], top[NAME_MAX + 1];
	const void *b;
	long n = request_frame(c, AGENT_COPY_OUT, it, 0, it->src, err);

	if (n < 0)
		return say(msg, "%s", err);
	if (write_full(c->sock, c->tbuf, (size_t)n) < 0)
		return io_failed(c, msg, "sending to", errno);
	if (tarcopy_receive(it->dst, flags, tarcopy_top_of(it->src, top) < 0 ? NULL : top, &io, err,
			    sizeof(err)) < 0)
		return say(msg, "%s", c->agent_msg[0] ? c->agent_msg : err);
	/* The archive's end came; its padding and TAR_END may follow. */
	while (!c->ended)
		if (conn_read(c, &b, err, sizeof(err)) < 0)
			return say(msg, "%s", err);
	return 0;
}

/* sp, i: a copy-in's spooled stream; h: the helper's bounds, or NULL. */
static int session(int sock, bool out, const struct copy_item *it, struct spool *sp, unsigned i,
		   struct helper *h, char *msg)
{
	/* Two frames' room: not on the stack. */
	struct conn *c = malloc(sizeof(*c));
	int ret;

	if (!c)
		return say(msg, "out of memory");
	c->sock = sock;
	c->ended = false;
	c->send_failed = false;
	c->agent_msg[0] = '\0';
	agent_reader_init(&c->rd, c->rbuf, sizeof(c->rbuf));
	ret = out ? copy_out(c, it, h ? &h->out_left : NULL, h ? h->limit_name : NULL, msg)
		  : copy_in(c, it, sp, i, msg);
	free(c);
	return ret;
}

int copy_session(int sock, bool out, const struct copy_item *it, char *msg)
{
	return session(sock, out, it, NULL, 0, NULL, msg);
}

/* Copy i of the copy-ins (out false) or copy-outs. */
static int one_copy(struct helper *h, bool out, unsigned i)
{
	const struct copy_item *it = &h->items[out][i];
	char msg[MSG_LEN];
	int sock = -1, ret;

	bool begun = !expired;

	ret = begun ? dial(h->uds, &sock, msg) : -1;
	if (ret == 0 && (ret = copy_set_idle(sock, COPY_IDLE_MS)) < 0)
		ret = say(msg, "cannot set the copy's idle limit: %s", strerror(-ret));
	if (ret == 0)
		ret = session(sock, out, it, out ? NULL : h->spool, i, h, msg);
	/* Before the close: the number may be another's after it. */
	live_sock = -1;
	close_fd(&sock);
	/* Whatever the copy said of its connection cut off, this is why. */
	if (ret < 0 && expired)
		say(msg, "not %s within --copy-timeout %g s", begun ? "done" : "begun",
		    h->timeout_ms / 1000.0);
	if (ret < 0)
		dprintf(h->err_fd, "flint run: --copy-%s %s%s:%s: %s\n", out ? "out" : "in",
			it->src, it->contents ? "/." : "", it->dst, msg);
	return ret;
}

/* The copy-ins' archiver, started at once: what it makes before the agent
 * is up is time the copy-ins no longer take. Without it, each copy-in is
 * archived as it is sent. */
static void start_spool(struct helper *h)
{
	if (!h->ahead || !h->n[0] || !(h->paths = calloc(h->n[0], sizeof(*h->paths))))
		return;
	for (unsigned i = 0; i < h->n[0]; i++)
		h->paths[i] = h->items[0][i].src;
	if (spool_start(&h->spool, h->paths, h->n[0], SPOOL_RING_SIZE) < 0) {
		free(h->paths);
		h->paths = NULL;
	}
}

static void end_spool(struct helper *h)
{
	spool_end(h->spool);
	h->spool = NULL;
	free(h->paths);
	h->paths = NULL;
}

static void helper_main(struct helper *h)
{
	start_spool(h);
	for (;;) {
		unsigned failed = 0;
		uint8_t b;
		ssize_t n = recv(h->ctl, &b, 1, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (b != 'i' && b != 'o'))
			return;
		/* A copy-out's extraction changes the working directory:
		 * never while the archiver walks a tree. */
		if (b == 'o')
			end_spool(h);
		expired = 0;
		set_deadline(h->timeout_ms);
		for (unsigned i = 0; i < h->n[b == 'o']; i++)
			if (one_copy(h, b == 'o', i) < 0 && (failed++, b == 'i'))
				break;
		set_deadline(0);
		uint8_t verdict = (uint8_t)(failed > 255 ? 255 : failed);
		if (send(h->ctl, &verdict, 1, MSG_NOSIGNAL) != 1)
			return;
		/* After the verdict: an archiver held up reading a file of a
		 * copy-in that failed before it must not hold up the run. */
		if (b == 'i')
			end_spool(h);
	}
}

/* In the child: every inherited descriptor closed but ctl and err_fd (and
 * 0-2): the VM's, its images' locks, the tap's are not the helper's. */
static void keep_only(int ctl, int err_fd)
{
	int lo = ctl < err_fd ? ctl : err_fd, hi = ctl < err_fd ? err_fd : ctl;

	if (lo < 3)
		lo = hi;
	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0U, 0);
}

/* uds as an absolute path (in buf, len bytes, when it is not one), so
 * that the archiver's changes of directory cannot move it; NULL when that
 * does not fit a socket address. */
static const char *absolute(const char *uds, char *buf, size_t len)
{
	char cwd[PATH_MAX];
	int n;

	if (uds[0] == '/')
		return uds;
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	n = snprintf(buf, len, "%s/%s", cwd, uds);
	return n > 0 && (size_t)n < len ? buf : NULL;
}

/* size as the options take it: "4G", "512M", "64K" or bytes. */
static void show_size(uint64_t size, char *buf, size_t len)
{
	static const char unit[] = "GMK";

	for (unsigned i = 0; i < 3; i++) {
		unsigned shift = 30 - 10 * i;

		if (size && size % (1ULL << shift) == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(size >> shift), unit[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu bytes", (unsigned long long)size);
}

int copy_start(struct copier **out, const struct copy_item *in, unsigned nin,
	       const struct copy_item *outs, unsigned nout, const char *uds, int err_fd, bool ahead,
	       const struct copy_bounds *b)
{
	struct copier *c;
	struct stat st;
	int sv[2];
	pid_t parent = getpid(), pid;

	*out = NULL;
	for (unsigned i = 0; i < nin; i++)
		if (lstat(in[i].src, &st) < 0) {
			dprintf(err_fd, "flint run: --copy-in %s:%s: %s\n", in[i].src, in[i].dst,
				strerror(errno));
			return -ENOENT;
		}
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	c->n[0] = nin;
	c->n[1] = nout;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		int err = -errno;

		free(c);
		return err;
	}
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(sv[0]);
		close(sv[1]);
		free(c);
		return err;
	}
	if (pid == 0) {
		/* The parent's copies of the arrays are ours too (fork). */
		struct helper h = {.ctl = sv[1],
				   .err_fd = err_fd,
				   .uds = uds,
				   .items = {in, outs},
				   .n = {nin, nout},
				   .timeout_ms = b && b->timeout_ms ? b->timeout_ms
								    : COPY_TIMEOUT_S_DEFAULT * 1000,
				   .out_left =
				       b && b->out_limit ? b->out_limit : COPY_OUT_LIMIT_DEFAULT};
		char abs[sizeof(((struct sockaddr_un *)NULL)->sun_path)], size[32];
		const char *a = absolute(uds, abs, sizeof(abs));
		struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
		sigset_t alrm;

		show_size(h.out_left, size, sizeof(size));
		snprintf(h.limit_name, sizeof(h.limit_name), "--copy-out-limit %s", size);

		/* Without an absolute socket path, no archiver beside dial(). */
		h.ahead = ahead && a;
		if (a)
			h.uds = a;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		signal(SIGPIPE, SIG_IGN);
		/* A terminal's ^\ (SIGQUIT) is flint's to take (it says where the guest
		 * was and stops); this helper ends with it. */
		signal(SIGQUIT, SIG_IGN);
		/* The deadline's; whatever flint's mask held back. */
		sigaction(SIGALRM, &sa, NULL);
		sigemptyset(&alrm);
		sigaddset(&alrm, SIGALRM);
		sigprocmask(SIG_UNBLOCK, &alrm, NULL);
		close(sv[0]);
		keep_only(sv[1], err_fd);
		helper_main(&h);
		_exit(0);
	}
	close(sv[1]);
	c->ctl = sv[0];
	*out = c;
	return 0;
}

unsigned copy_count(const struct copier *c, bool out)
{
	return c ? c->n[out] : 0;
}

int copy_fd(const struct copier *c)
{
	return c->ctl;
}

int copy_request(struct copier *c, bool out)
{
	uint8_t b = out ? 'o' : 'i';

	return send(c->ctl, &b, 1, MSG_NOSIGNAL) == 1 ? 0 : -EPIPE;
}

int copy_result(struct copier *c)
{
	uint8_t b;
	ssize_t n;

	do
		n = recv(c->ctl, &b, 1, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	return n == 1 ? b : -EPIPE;
}

void copy_stop(struct copier *c)
{
	if (!c)
		return;
	close_fd(&c->ctl);
	free(c);
}
