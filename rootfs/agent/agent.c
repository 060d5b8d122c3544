/*
 * flint-agent: the guest end of `flint run`, installed as /sbin/flint-agent
 * and started by /init when the kernel command line holds `flint.agent`.
 *
 * It listens on vsock port AGENT_VSOCK_PORT and serves each connection from
 * the host (CID 2; one from inside the guest, through the vsock loopback,
 * is closed unanswered) in a child process of its own: one request (argv,
 * environment, working directory, optional stdin, timeout, optional user;
 * see proto.h), the
 * command's stdout and stderr streamed back separately, and its exit status
 * or signal; or one copy, a tar stream into or out of the guest
 * (tarcopy.h). At start
 * it also connects once to the host (CID 2) on the same port: flint's vsock
 * muxer relays that to `flint run`, which learns that the guest is ready and
 * sends its command there. Nothing listening on the host is normal (the
 * muxer resets the connection); no vsock device at all ends the agent.
 *
 * A malformed request gets an ERROR frame and the connection is closed; the
 * agent itself goes on. Built statically with libc and libarchive.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "proto.h"
#include "tarcopy.h"

/* Overridden or extended by the request's environment. PATH as a
 * container image's default (Docker's): an image made with `docker export`
 * has lost its own ENV, and its tools are often in /usr/local/bin. */
static const char *const default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
};
#define N_DEFAULT_ENV (sizeof(default_env) / sizeof(default_env[0]))

/* The host's answer may take long in a slow or nested VM. */
#define CONNECT_TIMEOUT_S 10
/* Without a pidfd, how often to look for the command's exit. */
#define WAIT_TICK_MS 50

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	char buf[300];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "flint-agent: ");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(buf);
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_blocking(int fd, bool blocking)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

/* Sends one frame on a blocking socket. 0 or -errno. */
static int send_frame(int sock, struct agent_outbuf *o)
{
	set_blocking(sock, true);
	return agent_out_flush(o, sock);
}

static void reply_error(int sock, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply_error(int sock, const char *fmt, ...)
{
	uint8_t buf[AGENT_HDR_SIZE + AGENT_MSG_MAX];
	struct agent_outbuf o = {.buf = buf, .cap = sizeof(buf)};
	char msg[AGENT_MSG_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (agent_out_frame(&o, AGENT_ERROR, msg, strlen(msg)) == 0)
		send_frame(sock, &o);
}

/* ---- the command ------------------------------------------------------- */

struct child {
	pid_t pid;
	int pidfd;
	int in, out, err; /* our ends of its stdin, stdout, stderr pipes */
};

/* What the child reports through its status pipe when it cannot exec. */
enum start_stage { IN_EXEC, IN_CHDIR, IN_USER };
struct start_failure {
	int stage; /* enum start_stage */
	int err;
};

/* The user a request names: its group and home from the guest's
 * /etc/passwd ("name:pw:uid:gid:gecos:home:shell"), read with libc alone
 * (a static binary has no NSS). Without an entry: the gid given, or the
 * uid's number, and "/" for home. */
struct user {
	uid_t uid;
	gid_t gid;
	char home[256];
};

static void lookup_user(uint32_t uid, uint32_t gid, struct user *u)
{
	char line[1024];
	FILE *f = fopen("/etc/passwd", "re");
	bool found = false;

	u->uid = uid;
	u->gid = gid == AGENT_GID_DEFAULT ? uid : gid;
	snprintf(u->home, sizeof(u->home), "/");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *field[7], *c = line;
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		/* strsep, not strtok: empty fields count. */
		while (n < 7 && (field[n] = strsep(&c, ":")))
			n++;
		if (n < 6 || !*field[2] || strtoul(field[2], NULL, 10) != uid)
			continue;
		found = true;
		if (gid == AGENT_GID_DEFAULT && *field[3])
			u->gid = (gid_t)strtoul(field[3], NULL, 10);
		if (field[5][0] == '/')
			snprintf(u->home, sizeof(u->home), "%s", field[5]);
	}
	if (f)
		fclose(f);
}

/* Become u for good: its group alone first, while we may still change
 * groups, then its uid. 0 or -1 (errno). */
static int become(const struct user *u)
{
	return setgroups(1, &u->gid) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0 ? -1 : 0;
}

/* The default environment, minus what the request overrides, then the
 * request's; with a user, HOME is the user's. Returns a malloc'd array
 * (the strings are not copied, but for home's, in home). */
static char **make_env(const struct agent_request *req, const struct user *u, char *home,
		       size_t homelen)
{
	size_t n = 0;
	char **env = calloc(N_DEFAULT_ENV + req->envc + 1, sizeof(*env));

	if (!env)
		return NULL;
	for (size_t i = 0; i < N_DEFAULT_ENV; i++) {
		size_t name = strcspn(default_env[i], "=") + 1; /* "NAME=" */
		bool overridden = false;

		for (uint32_t j = 0; j < req->envc && !overridden; j++)
			overridden = !strncmp(req->envp[j], default_env[i], name);
		if (overridden)
			continue;
		if (u && !strncmp(default_env[i], "HOME=", name)) {
			snprintf(home, homelen, "HOME=%s", u->home);
			env[n++] = home;
		} else {
			env[n++] = (char *)default_env[i];
		}
	}
	for (uint32_t j = 0; j < req->envc; j++)
		env[n++] = req->envp[j];
	return env;
}

/* In the child: never returns. */
static void exec_child(const struct agent_request *req, const struct user *u, char **env, int in,
		       int out, int err, int status_fd)
{
	const char *cwd = req->cwd[0] ? req->cwd : "/";
	struct start_failure f = {0};

	/* Its own process group, so that a timeout kills what it started. */
	setpgid(0, 0);
	/* Ignored signals stay ignored across exec: give the command the
	 * defaults. */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	if (in < 0)
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* dup2 leaves 0-2 without O_CLOEXEC; every other fd has it. */
	if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(127);
	/* The user first; then chdir as the user, whose permissions count. */
	if (u && become(u) < 0) {
		f = (struct start_failure){IN_USER, errno};
	} else if (chdir(cwd) < 0) {
		f = (struct start_failure){IN_CHDIR, errno};
	} else {
		/* execvp searches the PATH of our environment: the command's. */
		environ = env;
		execvp(req->argv[0], req->argv);
		f = (struct start_failure){IN_EXEC, errno};
	}
	if (write(status_fd, &f, sizeof(f)) < 0)
		_exit(127);
	_exit(127);
}

/* Whether a command was ever started in this guest, in memory the agent's
 * processes share (main maps it; a connection server run without it, as
 * in the unit tests, knows only its own commands). Until one starts
 * nothing but the agent writes in the guest: a copy-in may leave out
 * libarchive's symlink checks beneath a directory it makes
 * (TARCOPY_SOLE_WRITER), holding a read lock on sole_lock_path that the
 * first command waits to take for writing (an open file description's
 * lock: the kernel drops it with a copy killed midway). Once one has
 * started, a copy-in follows no symlink to its destination which a job
 * may have put there (TARCOPY_DEST_NO_LINKS), and a --user copy-in is
 * made by the user itself: a job of the user's still running could
 * otherwise swap a directory root writes in for a symlink. */
static bool started_here, *command_started = &started_here;
static const char *sole_lock_path; /* main's; NULL: no copy is the sole writer */

/* Lock sole_lock_path (F_RDLCK or F_WRLCK, waiting or not): its
 * descriptor, to close to unlock, or -1. */
static int sole_lock(short type, bool wait)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET};
	int fd = sole_lock_path ? open(sole_lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;

	if (fd >= 0 && fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &l) < 0)
		close_fd(&fd);
	return fd;
}

/* A copy-in as the guest's sole writer, if no command has started: the
 * lock's descriptor, to close when the copy is done, or -1. */
static int sole_begin(void)
{
	int fd = sole_lock(F_RDLCK, false);

	if (fd >= 0 && __atomic_load_n(command_started, __ATOMIC_SEQ_CST))
		close_fd(&fd);
	return fd;
}

/* Before a command's fork: no copy-in is the sole writer from now on, and
 * those that were have ended. */
static void command_begins(void)
{
	int fd;

	__atomic_store_n(command_started, true, __ATOMIC_SEQ_CST);
	while ((fd = sole_lock(F_WRLCK, true)) < 0 && errno == EINTR)
		;
	close_fd(&fd);
}

/* Starts the command. 0, or -errno with why set (the command did not
 * start: the host is told so). */
static int start_child(const struct agent_request *req, struct child *c, char *why, size_t len)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
	struct start_failure f;
	struct user user, *u = NULL;
	char home[sizeof(user.home) + 8];
	char **env;
	int ret = 0;
	ssize_t n;

	if (req->flags & AGENT_REQ_USER) {
		lookup_user(req->uid, req->gid, &user);
		u = &user;
	}
	env = make_env(req, u, home, sizeof(home));

	*c = (struct child){.pid = -1, .pidfd = -1, .in = -1, .out = -1, .err = -1};
	if (!env || ((req->flags & AGENT_REQ_STDIN) && pipe2(in, O_CLOEXEC) < 0) ||
	    pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0) {
		ret = env ? -errno : -ENOMEM;
		snprintf(why, len, "cannot set up the command: %s", strerror(-ret));
		goto out;
	}
	command_begins();
	c->pid = fork();
	if (c->pid < 0) {
		ret = -errno;
		snprintf(why, len, "fork: %s", strerror(errno));
		goto out;
	}
	if (c->pid == 0)
		exec_child(req, u, env, in[0], out[1], err[1], st[1]);
	/* Also here, so that a kill of the group cannot precede the child's
	 * own setpgid. */
	setpgid(c->pid, c->pid);
	close_fd(&st[1]);
	/* EOF: exec succeeded and closed the pipe. */
	do
		n = read(st[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(f)) {
		ret = -f.err;
		if (f.stage == IN_USER)
			snprintf(why, len, "cannot become uid %u gid %u: %s", (unsigned)user.uid,
				 (unsigned)user.gid, strerror(f.err));
		else if (f.stage == IN_CHDIR)
			snprintf(why, len, "cannot change to %.200s: %s", req->cwd,
				 strerror(f.err));
		else
			snprintf(why, len, "cannot run '%.200s': %s", req->argv[0],
				 strerror(f.err));
		waitpid(c->pid, NULL, 0);
		c->pid = -1;
		goto out;
	}
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	c->in = in[1];
	c->out = out[0];
	c->err = err[0];
	in[1] = out[0] = err[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
		close_fd(&st[i]);
	}
	free(env);
	return ret;
}

/* ---- the relay --------------------------------------------------------- */

struct relay {
	int sock;
	struct child c;
	struct agent_reader *rd; /* its buffer holds STDIN data being written */
	size_t in_off;
	bool in_pending;
	struct agent_outbuf tx;
	uint8_t txbuf[AGENT_HDR_SIZE + AGENT_DATA_MAX];
	uint64_t deadline; /* ms, 0 for none */
	bool exited, timed_out, host_gone;
	int wstatus;
};

static void reap(struct relay *r)
{
	if (!r->exited && waitpid(r->c.pid, &r->wstatus, WNOHANG) == r->c.pid) {
		r->exited = true;
		close_fd(&r->c.pidfd);
	}
}

/* Frames from the host while no STDIN data waits for the command. */
static void read_host(struct relay *r)
{
	while (!r->in_pending && !r->host_gone) {
		int ret = agent_read_frame(r->rd, r->sock);

		if (ret == -EAGAIN)
			return;
		if (ret <= 0) {
			if (ret == -EPROTO || ret == -EMSGSIZE)
				reply_error(r->sock, "bad frame from the host");
			r->host_gone = true;
			return;
		}
		switch (r->rd->f.type) {
		case AGENT_STDIN:
			/* Dropped when the command has closed its stdin
			 * or was given none. */
			r->in_off = 0;
			r->in_pending = r->c.in >= 0 && r->rd->f.len > 0;
			break;
		case AGENT_STDIN_EOF:
			close_fd(&r->c.in);
			break;
		default:
			reply_error(r->sock, "unexpected frame type %u after the request",
				    r->rd->f.type);
			r->host_gone = true;
		}
	}
}

static void write_stdin(struct relay *r)
{
	ssize_t n = write(r->c.in, r->rd->buf + r->in_off, r->rd->f.len - r->in_off);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		/* EPIPE: the command closed its stdin; the rest is dropped. */
		close_fd(&r->c.in);
		r->in_pending = false;
		return;
	}
	r->in_off += (size_t)n;
	r->in_pending = r->in_off < r->rd->f.len;
}

/* One read of the command's stdout or stderr into a frame; tx is empty. */
static void read_output(struct relay *r, int *fd, uint8_t type)
{
	uint8_t *data = r->tx.buf + AGENT_HDR_SIZE;
	ssize_t n = read(*fd, data, AGENT_DATA_MAX);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close_fd(fd);
		return;
	}
	agent_out_frame(&r->tx, type, data, (size_t)n);
}

static void kill_group(struct relay *r)
{
	kill(-r->c.pid, SIGKILL);
	close_fd(&r->c.in);
	r->in_pending = false;
}

static int poll_ms(const struct relay *r)
{
	int ms = -1;

	if (r->deadline && !r->timed_out) {
		uint64_t now = now_ms();

		ms = now >= r->deadline ? 0 : (int)(r->deadline - now);
	}
	if (!r->exited && r->c.pidfd < 0 && (ms < 0 || ms > WAIT_TICK_MS))
		ms = WAIT_TICK_MS;
	return ms;
}

/* Relays until the command has exited and its output is sent (or it was
 * killed). Returns false when the host went away. */
static bool relay(struct relay *r)
{
	for (;;) {
		bool tx_busy = r->tx.len > 0;
		struct pollfd pf[5] = {
		    {r->sock,
		     (short)((r->in_pending ? 0 : POLLIN) | (tx_busy ? POLLOUT : 0) | POLLRDHUP),
		     0},
		    /* Output is read only into an empty tx: the host's pace. */
		    {tx_busy ? -1 : r->c.out, POLLIN, 0},
		    {tx_busy ? -1 : r->c.err, POLLIN, 0},
		    {r->in_pending ? r->c.in : -1, POLLOUT, 0},
		    {r->exited ? -1 : r->c.pidfd, POLLIN, 0},
		};

		if (r->exited && !tx_busy && ((r->c.out < 0 && r->c.err < 0) || r->timed_out))
			return true;
		if (poll(pf, 5, poll_ms(r)) < 0 && errno != EINTR) {
			r->host_gone = true; /* cannot go on: end it like a hang-up */
			return false;
		}
		if (r->deadline && !r->timed_out && now_ms() >= r->deadline) {
			r->timed_out = true;
			kill_group(r);
		}
		if (pf[0].revents & POLLOUT || (tx_busy && pf[0].revents & (POLLERR | POLLHUP))) {
			if (agent_out_flush(&r->tx, r->sock) < 0)
				r->host_gone = true;
		}
		if (pf[0].revents & ~POLLOUT) {
			if (r->in_pending && pf[0].revents & (POLLRDHUP | POLLHUP | POLLERR))
				r->host_gone = true;
			read_host(r);
		}
		if (r->host_gone)
			return false;
		if (pf[3].revents)
			write_stdin(r);
		if (pf[1].revents)
			read_output(r, &r->c.out, AGENT_STDOUT);
		if (pf[2].revents && r->tx.len == 0)
			read_output(r, &r->c.err, AGENT_STDERR);
		if (r->tx.len && agent_out_flush(&r->tx, r->sock) < 0) {
			r->host_gone = true;
			return false;
		}
		if (pf[4].revents || r->c.pidfd < 0)
			reap(r);
	}
}

static void run_request(int sock, struct agent_reader *rd, const struct agent_request *req)
{
	static struct relay r;
	char why[AGENT_MSG_MAX];
	uint32_t kind;
	int32_t value;
	int ret;

	r = (struct relay){.sock = sock, .rd = rd};
	r.tx = (struct agent_outbuf){.buf = r.txbuf, .cap = sizeof(r.txbuf)};
	ret = start_child(req, &r.c, why, sizeof(why));
	if (ret < 0) {
		r.tx.len = agent_exit_encode(r.txbuf, AGENT_NOT_STARTED, -ret, why);
		send_frame(sock, &r.tx);
		return;
	}
	if (req->timeout_ms)
		r.deadline = now_ms() + req->timeout_ms;
	set_blocking(sock, false);
	set_blocking(r.c.out, false);
	set_blocking(r.c.err, false);
	if (r.c.in >= 0)
		set_blocking(r.c.in, false);

	if (!relay(&r)) {
		/* Nobody wants the result: stop the command. */
		kill(-r.c.pid, SIGKILL);
		waitpid(r.c.pid, NULL, 0);
		return;
	}
	if (r.timed_out) {
		kind = AGENT_TIMED_OUT;
		value = 0;
	} else if (WIFSIGNALED(r.wstatus)) {
		kind = AGENT_SIGNALED;
		value = WTERMSIG(r.wstatus);
	} else {
		kind = AGENT_EXITED;
		value = WEXITSTATUS(r.wstatus);
	}
	r.tx.len = agent_exit_encode(r.txbuf, kind, value, NULL);
	r.tx.off = 0;
	send_frame(sock, &r.tx);
}

/* ---- copies ------------------------------------------------------------ */

/* A copy's end of the connection: frames read into rd, TAR frames sent
 * from tx. */
struct copy_conn {
	int sock;
	struct agent_reader *rd;
	bool ended; /* TAR_END came */
	struct agent_outbuf tx;
	uint8_t txbuf[AGENT_HDR_SIZE + AGENT_DATA_MAX];
};

/* tarcopy_io.read for COPY_IN: the payloads of TAR frames up to TAR_END. */
static ssize_t copy_read(void *ctx, const void **buf, char *msg, size_t len)
{
	struct copy_conn *c = ctx;

	while (!c->ended) {
		int ret = agent_read_frame(c->rd, c->sock);

		if (ret <= 0) {
			snprintf(msg, len, "the host %s in the middle of the stream",
				 ret == 0 || ret == -ECONNRESET ? "went away" : "sent a bad frame");
			return -1;
		}
		if (c->rd->f.type == AGENT_TAR_END) {
			c->ended = true;
		} else if (c->rd->f.type != AGENT_TAR) {
			snprintf(msg, len, "frame type %u in a tar stream", c->rd->f.type);
			return -1;
		} else if (c->rd->f.len) {
			*buf = c->rd->buf;
			return (ssize_t)c->rd->f.len;
		}
	}
	return 0;
}

/* tarcopy_io.write for COPY_OUT: TAR frames. */
static int copy_write(void *ctx, const void *buf, size_t len, char *msg, size_t msglen)
{
	struct copy_conn *c = ctx;
	const uint8_t *p = buf;

	while (len) {
		size_t n = len < AGENT_DATA_MAX ? len : AGENT_DATA_MAX;
		int ret;

		c->tx.len = c->tx.off = 0;
		agent_out_frame(&c->tx, AGENT_TAR, p, n);
		if ((ret = send_frame(c->sock, &c->tx)) != 0) {
			snprintf(msg, msglen, "sending to the host: %s", strerror(-ret));
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* COPY_IN: extract the stream at path; EXIT (exited, 0) once it is all in
 * place, else ERROR, after the rest of the stream (so that the host, still
 * sending, reads the reason). */
static void copy_in(struct copy_conn *c, const char *path, const struct agent_copy *cp)
{
	struct tarcopy_io io = {.read = copy_read, .ctx = c};
	struct tarcopy_owner owner;
	int sole_fd = sole_begin();
	bool sole = sole_fd >= 0;
	unsigned tf = (cp->flags & AGENT_COPY_CONTENTS ? TARCOPY_CONTENTS : 0) |
		      (sole ? TARCOPY_SOLE_WRITER : TARCOPY_DEST_NO_LINKS);
	char err[AGENT_MSG_MAX - 32], none[1];
	const void *b;
	int ret = 0;

	/* The run's user gets what it works on, with no set-id bits (a
	 * set-user-ID file of the host's would be one of root's here): made
	 * by root and given to the user while nothing else runs, by the user
	 * itself once a command has (see command_started). */
	if (cp->flags & AGENT_COPY_USER) {
		struct user u;

		lookup_user(cp->uid, cp->gid, &u);
		owner = (struct tarcopy_owner){u.uid, u.gid};
		io.owner = sole ? &owner : NULL;
		tf |= TARCOPY_NO_SET_ID;
		if (!sole && become(&u) < 0) {
			snprintf(err, sizeof(err), "cannot become uid %u, gid %u: %s",
				 (unsigned)u.uid, (unsigned)u.gid, strerror(errno));
			ret = -1;
		}
	}
	if (geteuid() == 0)
		tf |= TARCOPY_KEEP_ALL;
	if (ret == 0)
		ret = tarcopy_receive(path, tf, NULL, &io, err, sizeof(err));
	close_fd(&sole_fd);

	/* What follows the archive's end (its padding) up to TAR_END. */
	while (!c->ended && copy_read(c, &b, none, sizeof(none)) > 0)
		;
	if (ret < 0 || !c->ended) {
		reply_error(c->sock, "%s: %s", path, ret < 0 ? err : "the stream did not end");
		return;
	}
	c->tx.len = agent_exit_encode(c->txbuf, AGENT_EXITED, 0, NULL);
	c->tx.off = 0;
	send_frame(c->sock, &c->tx);
}

/* COPY_OUT: the stream of path, then TAR_END; or ERROR, also midway. For
 * a run's user, read as that user: a job cannot have root read for it
 * what it may not (a directory it swaps for a symlink to /root while the
 * stream is sent, say). */
static void copy_out(struct copy_conn *c, const char *path, const struct agent_copy *cp)
{
	struct tarcopy_io io = {.write = copy_write, .ctx = c};
	char err[AGENT_MSG_MAX - 32];

	if (cp->flags & AGENT_COPY_USER) {
		struct user u;

		lookup_user(cp->uid, cp->gid, &u);
		if (become(&u) < 0) {
			reply_error(c->sock, "cannot become uid %u, gid %u: %s", (unsigned)u.uid,
				    (unsigned)u.gid, strerror(errno));
			return;
		}
	}

	if (tarcopy_send(path, &io, NULL, err, sizeof(err)) < 0) {
		reply_error(c->sock, "%s", err);
		return;
	}
	c->tx.len = c->tx.off = 0;
	agent_out_frame(&c->tx, AGENT_TAR_END, NULL, 0);
	send_frame(c->sock, &c->tx);
}

static void serve_copy(int sock, struct agent_reader *rd)
{
	static struct copy_conn c;
	struct agent_copy cp;
	char err[AGENT_MSG_MAX];

	if (agent_copy_decode(rd->f.type, rd->buf, rd->f.len, &cp, err, sizeof(err)) < 0) {
		reply_error(sock, "malformed copy request: %s", err);
		return;
	}
	c = (struct copy_conn){.sock = sock, .rd = rd};
	c.tx = (struct agent_outbuf){.buf = c.txbuf, .cap = sizeof(c.txbuf)};
	/* The path points into rd's buffer, which the stream reuses. */
	char *p = strdup(cp.path);

	if (!p) {
		reply_error(sock, "out of memory");
		return;
	}
	if (rd->f.type == AGENT_COPY_IN)
		copy_in(&c, p, &cp);
	else
		copy_out(&c, p, &cp);
	free(p);
}

/* ---- connections ------------------------------------------------------- */

/* One connection, in a child process of its own. */
static void serve(int sock)
{
	struct agent_reader rd;
	struct agent_request req;
	char err[AGENT_MSG_MAX] = "out of memory";
	uint8_t *buf = malloc(AGENT_REQUEST_MAX);
	int ret;

	if (!buf)
		return;
	agent_reader_init(&rd, buf, AGENT_REQUEST_MAX);
	ret = agent_read_frame(&rd, sock);
	if (ret == -EPROTO)
		reply_error(sock, "bad frame header (protocol version %u expected)",
			    AGENT_PROTO_VERSION);
	else if (ret == -EMSGSIZE)
		reply_error(sock, "frame too long");
	else if (ret > 0 && (rd.f.type == AGENT_COPY_IN || rd.f.type == AGENT_COPY_OUT))
		serve_copy(sock, &rd);
	else if (ret > 0 && rd.f.type != AGENT_REQUEST)
		reply_error(sock, "expected a request, got frame type %u", rd.f.type);
	else if (ret > 0 && agent_request_decode(buf, rd.f.len, &req, err, sizeof(err)) < 0)
		reply_error(sock, "malformed request: %s", err);
	else if (ret > 0) {
		run_request(sock, &rd, &req);
		agent_request_free(&req);
	}
	/* ret 0: the host closed before asking anything. */
	free(buf);
}

static void spawn_server(int sock, int lfd)
{
	pid_t pid = fork();

	if (pid < 0)
		say("fork: %s", strerror(errno));
	if (pid == 0) {
		/* The command's exit must be waited for here. */
		signal(SIGCHLD, SIG_DFL);
		close(lfd);
		serve(sock);
		_exit(0);
	}
	close(sock);
}

/* A connection from anyone but the host: from inside the guest, through
 * the vsock loopback (CID 1, or the guest's own CID). The agent runs as
 * root and runs what it is asked to as root: a --user job must not reach
 * it. Closed unanswered; the first is told on the console. */
static void refuse(int sock, unsigned cid)
{
	static bool told;

	if (!told)
		say("refused a connection from CID %u: the agent serves the host (CID 2) only",
		    cid);
	told = true;
	close(sock);
}

/* The local CID, VMADDR_CID_ANY without a vsock device. */
static unsigned local_cid(void)
{
	unsigned cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
			cid = VMADDR_CID_ANY;
		close(fd);
	}
	return cid;
}

static int listen_vsock(void)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK,
	    .svm_cid = VMADDR_CID_ANY,
	    .svm_port = AGENT_VSOCK_PORT,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		say("cannot listen on vsock port %u: %s", AGENT_VSOCK_PORT, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Tells the host we are ready, and serves what it sends on that
 * connection. */
static void connect_host(int lfd)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK,
	    .svm_cid = VMADDR_CID_HOST,
	    .svm_port = AGENT_VSOCK_PORT,
	};
	struct timeval tv = {.tv_sec = CONNECT_TIMEOUT_S};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		say("socket: %s", strerror(errno));
		return;
	}
	setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		spawn_server(fd, lfd);
		return;
	}
	/* A reset: nobody on the host waits for us, which is fine. */
	if (errno != ECONNRESET && errno != ECONNREFUSED)
		say("cannot reach the host: %s", strerror(errno));
	close(fd);
}

int main(void)
{
	int lfd;

	signal(SIGPIPE, SIG_IGN);
	/* The connection servers are reaped by the kernel. */
	signal(SIGCHLD, SIG_IGN);
	if (local_cid() == VMADDR_CID_ANY) {
		say("no vsock device; not serving");
		return 0;
	}
	bool *shared =
	    mmap(NULL, sizeof(bool), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (shared == MAP_FAILED) {
		started_here = true; /* cannot tell: the checks stay */
	} else {
		command_started = shared;
		sole_lock_path = "/run/flint-agent.lock";
	}
	lfd = listen_vsock();
	connect_host(lfd);
	for (;;) {
		struct sockaddr_vm peer = {0};
		socklen_t plen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);

		if (fd >= 0 && peer.svm_cid != VMADDR_CID_HOST) {
			refuse(fd, peer.svm_cid);
			continue;
		}
		if (fd >= 0) {
			spawn_server(fd, lfd);
			continue;
		}
		if (errno != EINTR && errno != ECONNABORTED) {
			say("accept: %s", strerror(errno));
			sleep(1); /* EMFILE and the like: do not spin */
		}
	}
}
