/* worker: one VM's flint child for `flint serve` (see worker.h). One poll
 * loop serves the child's three pipes and its exit (a pidfd; without one,
 * an old kernel, waitid with WNOWAIT now and then), so that neither side
 * ever waits on the other: the command may write all its output before it
 * reads its input, or the reverse, and a body far bigger than a pipe
 * streams both ways. */
#include "serve/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define IN_BUF	     (64 << 10) /* request body staged for the child's stdin */
#define PUMP_BUF     (16 << 10) /* worker_pump's piece of stdout, on its stack */
#define SCRATCH	     4096	/* stderr past the cap, stdout dropped */
#define EXIT_POLL_MS 20		/* without a pidfd: how often to look for the exit */
#define DRAIN_READS  64		/* reads of each pipe once flint has exited */
/* The highest signal number (SIGRTMAX on Linux): 128+N above it is a
 * command's own exit status, not a signal. */
#define SIGNAL_MAX	64
#define STATUS_LINE_MAX 128 /* flint run --status-fd's line */
/* flint --control-fd's answer line, "error <message>", at most. */
#define CONTROL_LINE_MAX 640

bool worker_test_no_pidfd;

struct worker {
	pthread_mutex_t lock; /* pid and reaped, for worker_kill */
	pid_t pid;
	bool reaped;
	int pidfd; /* readable once flint exits; -1 on a kernel without */
	/* The server's ends of the child's stdin, stdout, stderr and go
	 * pipe; -1 once closed. */
	int in_fd, out_fd, err_fd, go_fd;
	/* early_status: the status pipe's read end, and the line so far. */
	int st_fd;
	char st_line[STATUS_LINE_MAX];
	size_t st_len;
	bool early_status, status_known;
	int st_status;
	int st_by_command; /* the line's command=1: st_status is the command's own */
	int st_sent;	   /* the line's sent=: 0, 1, or -1 when absent */
	double st_ready_ms, st_command_ms;
	bool warm, detached, released, discarding, exited, timed_out;
	/* The HTTP client's connection, watched (-1: none), and whether it
	 * hung up: the group was killed for it. */
	int client_fd;
	bool client_gone;
	/* WORKER_VM with control: the server's end of the control socket
	 * (-1 once closed), and an answer's line so far. */
	bool control;
	int ctl_fd;
	char ctl_line[CONTROL_LINE_MAX];
	size_t ctl_len;
	uint64_t start_ns, end_ns;
	uint64_t span_ns;     /* the deadline, from the start or release; 0 none */
	uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 for none */
	uint8_t *inbuf;	      /* IN_BUF: body bytes in_off..in_len still to write */
	size_t in_off, in_len;
	/* A detached VM's stderr: a memfd sealed at WORKER_VM_STDERR_CAP
	 * bytes (flint's writes past it fail), read at its end; -1 for none. */
	int log_fd;
	bool log_full; /* it reached the cap: later words were lost */
	char *err;     /* err_cap + 1 bytes */
	size_t err_cap, err_len, err_total;
	bool done; /* reaped and res filled */
	int wait_err;
	struct worker_result res;
	void (*gone)(void *ctx);
	void *gone_ctx;
};

/* ---- argv ---- */

static size_t count(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

void worker_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* WORKER_VM's: [launcher] flint --restore STATE --mem-file MEM
 * --vsock-override UDS --console none [opts]. */
static int vm_argv(const struct worker_params *p, char ***out)
{
	const char *fixed[] = {"--restore",	   p->state, "--mem-file", p->mem,
			       "--vsock-override", p->uds,   "--console",  "none"};
	size_t nl = count(p->launcher), no = count(p->opts), n = 0;
	char **v;

	if (!p->flint || !*p->flint || !p->state || !p->mem || !p->uds || !*p->uds ||
	    count(p->argv) || p->save_after || (p->launcher_runs_flint && !nl))
		return -EINVAL;
	v = calloc(nl + 1 + ARRAY_SIZE(fixed) + 2 + no + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < nl; i++)
		if (!(v[n++] = strdup(p->launcher[i])))
			goto nomem;
	if (!p->launcher_runs_flint && !(v[n++] = strdup(p->flint)))
		goto nomem;
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		if (!(v[n++] = strdup(fixed[i])))
			goto nomem;
	if (p->control) {
		char num[16];

		snprintf(num, sizeof(num), "%d", WORKER_CONTROL_FD);
		if (!(v[n++] = strdup("--control-fd")) || !(v[n++] = strdup(num)))
			goto nomem;
	}
	for (size_t i = 0; i < no; i++)
		if (!(v[n++] = strdup(p->opts[i])))
			goto nomem;
	*out = v;
	return 0;
nomem:
	worker_argv_free(v);
	return -ENOMEM;
}

int worker_argv(const struct worker_params *p, char ***out)
{
	size_t nl = count(p->launcher), no = count(p->opts), na = count(p->argv), n = 0;
	size_t ne = na ? count(p->env) : 0;
	char num[16], **v;
	bool save = p->kind == WORKER_SAVE, attach = p->kind == WORKER_ATTACH;

	*out = NULL;
	if (p->kind == WORKER_VM)
		return vm_argv(p, out);
	if (!p->flint || !*p->flint || (attach ? !p->uds || !*p->uds : !p->state || !p->mem) ||
	    (p->kind != WORKER_RESTORE && p->kind != WORKER_WARM && !save && !attach) ||
	    (!save && !na) || (p->save_after && !save) || p->control ||
	    (p->launcher_runs_flint && !nl))
		return -EINVAL;
	for (size_t i = 0; i < ne; i++)
		if (!strchr(p->env[i], '='))
			return -EINVAL;
	/* launcher, flint, run, two options with their values (or --attach
	 * UDS), --timeout S, --wait-fd 3, --status-fd 4, opts, --save-after, --env E each,
	 * --workdir D, --, argv, NULL */
	v = calloc(nl + 2 + 4 + 2 + 2 + 2 + no + 1 + 2 * ne + 2 + 1 + na + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
#define ADD(s)                                                                                     \
	do {                                                                                       \
		if (!(v[n++] = strdup(s)))                                                         \
			goto nomem;                                                                \
	} while (0)
	for (size_t i = 0; i < nl; i++)
		ADD(p->launcher[i]);
	if (!p->launcher_runs_flint)
		ADD(p->flint);
	ADD("run");
	if (attach) {
		ADD("--attach");
		ADD(p->uds);
	} else {
		ADD(save ? "--save-snapshot" : "--restore");
		ADD(p->state);
		ADD(save ? "--save-mem" : "--mem-file");
		ADD(p->mem);
	}
	if (p->timeout_s) {
		snprintf(num, sizeof(num), "%u", p->timeout_s);
		ADD("--timeout");
		ADD(num);
	}
	if (p->kind == WORKER_WARM) {
		snprintf(num, sizeof(num), "%d", WORKER_GO_FD);
		ADD("--wait-fd");
		ADD(num);
	}
	if (p->early_status && !save) {
		snprintf(num, sizeof(num), "%d", WORKER_STATUS_FD);
		ADD("--status-fd");
		ADD(num);
	}
	for (size_t i = 0; i < no; i++)
		ADD(p->opts[i]);
	if (na) {
		if (p->save_after)
			ADD("--save-after");
		for (size_t i = 0; i < ne; i++) {
			ADD("--env");
			ADD(p->env[i]);
		}
		if (p->workdir) {
			ADD("--workdir");
			ADD(p->workdir);
		}
		ADD("--");
		for (size_t i = 0; i < na; i++)
			ADD(p->argv[i]);
	}
#undef ADD
	*out = v;
	return 0;
nomem:
	worker_argv_free(v);
	return -ENOMEM;
}

/* ---- outcomes ---- */

enum worker_outcome worker_outcome_of(int st, int *detail)
{
	enum worker_outcome o;
	int d = st;

	if (st == 0)
		o = WORKER_OK;
	else if (st == 122)
		o = WORKER_CRASH;
	else if (st == 123)
		o = WORKER_LOST;
	else if (st == 124)
		o = WORKER_TIMEOUT;
	else if (st == 125)
		o = WORKER_FLINT_ERROR;
	else if (st > 128 && st <= 128 + SIGNAL_MAX) {
		o = WORKER_SIGNAL;
		d = st - 128;
	} else
		o = WORKER_EXIT;
	if (detail)
		*detail = d;
	return o;
}

/* flint run's status st: the command's own when the status line said so
 * and flint run ended with it (a copy-out's failure makes it 125), so
 * that a command's own 122 to 125 are no crash, lost agent, timeout or
 * flint error. */
static enum worker_outcome outcome_for(const struct worker *w, int st, int *detail)
{
	if (w->status_known && w->st_by_command == 1 && st == w->st_status && st >= 122 &&
	    st <= 125) {
		*detail = st;
		return WORKER_EXIT;
	}
	return worker_outcome_of(st, detail);
}

const char *worker_flint_said(const struct worker_result *res, char *buf, size_t len)
{
	static const char tag[] = "flint: ";
	const char *text = res->err ? res->err : "", *end = text + res->err_len, *line = NULL;
	const char *eol;

	/* Words lost past the cap: the last line kept is not its last. */
	if (res->err_truncated)
		end = text;
	for (const char *p = text; p + sizeof(tag) - 1 <= end; p++)
		if ((p == text || p[-1] == '\n') && !strncmp(p, tag, sizeof(tag) - 1))
			line = p + sizeof(tag) - 1;
	if (!line)
		line = end;
	eol = memchr(line, '\n', (size_t)(end - line));
	snprintf(buf, len, "%.*s", (int)((eol ? eol : end) - line), line);
	/* Logged and answered: the guest's output shares the stream. */
	return ascii_printable(buf);
}

const char *worker_outcome_name(enum worker_outcome o)
{
	static const char *const names[] = {
	    [WORKER_OK] = "ok",
	    [WORKER_EXIT] = "exit",
	    [WORKER_TIMEOUT] = "timeout",
	    [WORKER_CRASH] = "crash",
	    [WORKER_LOST] = "lost",
	    [WORKER_FLINT_ERROR] = "flint_error",
	    [WORKER_SIGNAL] = "signal",
	    [WORKER_KILLED] = "killed",
	    [WORKER_CLIENT_GONE] = "client_gone",
	};

	return (unsigned)o < ARRAY_SIZE(names) && names[o] ? names[o] : "?";
}

/* ---- the process ---- */

static void kill_group(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	/* The group keeps flint's pid as its id until flint is reaped: until
	 * then the id cannot name anything else. */
	if (w->pid > 0 && !w->reaped)
		killpg(w->pid, SIGKILL);
	pthread_mutex_unlock(&w->lock);
}

void worker_kill(struct worker *w)
{
	if (w)
		kill_group(w);
}

/* Whether flint has exited, without blocking. The first time it is seen,
 * whatever is left of its group is killed: nothing outlives it, and no
 * leftover holds its pipes open. */
static bool check_exit(struct worker *w)
{
	if (w->exited)
		return true;
	if (w->pidfd >= 0) {
		struct pollfd pf = {w->pidfd, POLLIN, 0};

		w->exited = poll(&pf, 1, 0) > 0;
	} else {
		siginfo_t si = {0};

		w->exited = waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == w->pid;
	}
	if (w->exited) {
		w->end_ns = now_ns();
		kill_group(w);
	}
	return w->exited;
}

static void set_deadline(struct worker *w, uint64_t from)
{
	w->deadline_ns = w->span_ns ? from + w->span_ns : 0;
}

/* At the deadline: the group killed, and no deadline after that (the wait
 * for its exit is short). */
static bool deadline_passed(struct worker *w)
{
	if (!w->deadline_ns || now_ns() < w->deadline_ns)
		return false;
	w->timed_out = true;
	w->deadline_ns = 0;
	kill_group(w);
	return true;
}

/* poll()'s timeout: to the deadline, and EXIT_POLL_MS at most without a
 * pidfd, until flint has exited. */
static int wait_ms(struct worker *w)
{
	int ms = -1;

	if (w->deadline_ns) {
		uint64_t now = now_ns(), left;

		left = now >= w->deadline_ns ? 0 : (w->deadline_ns - now + 999999) / 1000000;
		ms = left > INT_MAX ? INT_MAX : (int)left;
	}
	if (w->pidfd < 0 && !w->exited && (ms < 0 || ms > EXIT_POLL_MS))
		ms = EXIT_POLL_MS;
	return ms;
}

/* write() that never lets SIGPIPE reach the process: the signal is blocked
 * on this thread for the call, and the one an EPIPE raised (directed at
 * this thread) is taken back before the mask is restored. */
static ssize_t write_nosig(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old, pending;
	struct timespec zero = {0, 0};
	ssize_t n;
	int err;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = write(fd, buf, len);
	err = errno;
	if (n < 0 && err == EPIPE && !sigismember(&old, SIGPIPE) && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE))
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return n;
}

/* One read of stderr: kept up to the cap, counted and dropped past it. */
static void read_err(struct worker *w)
{
	char scratch[SCRATCH];
	size_t room = w->err_cap - w->err_len;
	ssize_t got =
	    read(w->err_fd, room ? w->err + w->err_len : scratch, room ? room : sizeof(scratch));

	if (got > 0) {
		if (room)
			w->err_len += (size_t)got;
		w->err_total += (size_t)got;
	} else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
		close_fd(&w->err_fd);
	}
}

/* One read of the status pipe; a whole line makes the status known. */
static void read_status(struct worker *w)
{
	ssize_t got = read(w->st_fd, w->st_line + w->st_len, sizeof(w->st_line) - 1 - w->st_len);

	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0) {
		close_fd(&w->st_fd);
		return;
	}
	w->st_len += (size_t)got;
	w->st_line[w->st_len] = '\0';
	if (!strchr(w->st_line, '\n')) {
		if (w->st_len == sizeof(w->st_line) - 1)
			close_fd(&w->st_fd); /* not flint's line: ignored */
		return;
	}
	w->st_sent = -1;
	w->st_by_command = 0;
	if (sscanf(w->st_line, "status=%d ready_ms=%lf command_ms=%lf sent=%d command=%d",
		   &w->st_status, &w->st_ready_ms, &w->st_command_ms, &w->st_sent,
		   &w->st_by_command) >= 3 &&
	    w->st_status >= 0 && w->st_status <= 255)
		w->status_known = true;
	close_fd(&w->st_fd);
}

/* The status is known, so all of stdout is in its pipe: one read that
 * finds it empty is its end. And stderr's, kept. */
static ssize_t read_rest(struct worker *w, void *buf, size_t len)
{
	ssize_t got;

	for (int i = 0; i < DRAIN_READS && w->err_fd >= 0; i++) {
		size_t before = w->err_total;
		read_err(w);
		if (w->err_fd >= 0 && w->err_total == before)
			break;
	}
	got = read(w->out_fd, buf, len);
	if (got > 0)
		return got;
	if (got < 0 && errno == EINTR)
		return read_rest(w, buf, len);
	close_fd(&w->out_fd);
	return 0;
}

/* One read of stdout, dropped (worker_wait: nobody takes it any more). */
static void drop_out(struct worker *w)
{
	char scratch[SCRATCH];
	ssize_t got = read(w->out_fd, scratch, sizeof(scratch));

	if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
		close_fd(&w->out_fd);
}

/* The body staged for stdin: more from in() once it is all written; its
 * end (or no in()) closes stdin. 0, or in()'s error. */
static int fill_stdin(struct worker *w, worker_in_fn in, void *ctx)
{
	ssize_t n;

	if (w->in_fd < 0 || w->in_off < w->in_len)
		return 0;
	if (!in) {
		close_fd(&w->in_fd);
		return 0;
	}
	n = in(ctx, w->inbuf, IN_BUF);
	/* An error leaves stdin open for the caller to kill the group
	 * first: closed now, the command could see a clean end of its input
	 * and exit 0 before the kill. */
	if (n < 0)
		return n < INT_MIN ? -EIO : (int)n;
	if (n == 0) {
		close_fd(&w->in_fd);
		return 0;
	}
	w->in_off = 0;
	w->in_len = (size_t)n > IN_BUF ? IN_BUF : (size_t)n;
	return 0;
}

static void write_stdin(struct worker *w)
{
	ssize_t n = write_nosig(w->in_fd, w->inbuf + w->in_off, w->in_len - w->in_off);

	if (n > 0) {
		w->in_off += (size_t)n;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EPIPE: the command reads no more; the rest of the body is dropped. */
	close_fd(&w->in_fd);
	w->in_off = w->in_len = 0;
}

ssize_t worker_read(struct worker *w, worker_in_fn in, void *ctx, void *buf, size_t len)
{
	if (w->done || (w->warm && !w->released))
		return -EINVAL;
	for (;;) {
		struct pollfd pf[6];
		int n, r;

		if (w->out_fd < 0)
			return 0;
		if (w->status_known)
			return read_rest(w, buf, len);
		if (deadline_passed(w))
			return -ETIMEDOUT;
		if ((r = fill_stdin(w, in, ctx)) < 0) {
			kill_group(w);
			close_fd(&w->in_fd);
			return r;
		}
		pf[0] = (struct pollfd){w->out_fd, POLLIN, 0};
		pf[1] = (struct pollfd){w->err_fd, POLLIN, 0};
		pf[2] = (struct pollfd){w->in_off < w->in_len ? w->in_fd : -1, POLLOUT, 0};
		pf[3] = (struct pollfd){w->exited ? -1 : w->pidfd, POLLIN, 0};
		pf[4] = (struct pollfd){w->st_fd, POLLIN, 0};
		/* Its hang-up only: bytes from it are the next request. */
		pf[5] = (struct pollfd){w->client_fd, POLLRDHUP, 0};
		n = poll(pf, ARRAY_SIZE(pf), wait_ms(w));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (pf[5].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			/* Nobody takes the answer: the VM's time and slot are
			 * not spent on it. Ended as at the deadline. */
			w->client_gone = true;
			kill_group(w);
			return -ECONNABORTED;
		}
		if (pf[1].revents)
			read_err(w);
		if (pf[2].revents)
			write_stdin(w);
		if (pf[3].revents || w->pidfd < 0)
			check_exit(w);
		if (pf[4].revents)
			read_status(w);
		if (pf[0].revents) {
			ssize_t got = read(w->out_fd, buf, len);

			if (got > 0)
				return got;
			if (got == 0) {
				close_fd(&w->out_fd);
				return 0;
			}
			if (errno != EAGAIN && errno != EINTR) {
				r = -errno;
				close_fd(&w->out_fd);
				return r;
			}
		}
	}
}

void worker_watch_client(struct worker *w, int fd)
{
	if (w)
		w->client_fd = fd;
}

int worker_pump(struct worker *w, worker_in_fn in, worker_out_fn out, void *ctx)
{
	uint8_t buf[PUMP_BUF];

	for (;;) {
		ssize_t n = worker_read(w, in, ctx, buf, sizeof(buf));
		int r;

		if (n <= 0)
			return (int)n;
		if ((r = out(ctx, buf, (size_t)n)) < 0) {
			kill_group(w);
			return r;
		}
	}
}

/* Unreleased warm worker: its go pipe closed, flint stops the VM and
 * exits 0; WORKER_DISCARD_S for it to do so. */
static void begin_discard(struct worker *w)
{
	close_fd(&w->go_fd);
	w->discarding = true;
	w->deadline_ns = now_ns() + (uint64_t)WORKER_DISCARD_S * 1000000000ULL;
}

/* After flint's exit: what its pipes still hold (its group is killed:
 * whatever writes is dying). */
static void drain(struct worker *w)
{
	for (int i = 0; i < DRAIN_READS && w->err_fd >= 0; i++) {
		size_t before = w->err_total;

		read_err(w);
		if (w->err_fd >= 0 && w->err_total == before)
			break; /* EAGAIN */
	}
	close_fd(&w->err_fd);
	close_fd(&w->out_fd);
	close_fd(&w->in_fd);
	if (w->st_fd >= 0)
		read_status(w); /* written before flint exited, if at all */
	close_fd(&w->st_fd);
}

static int reap(struct worker *w, int *st)
{
	pid_t got;
	int err = 0;

	pthread_mutex_lock(&w->lock);
	while ((got = waitpid(w->pid, st, 0)) < 0 && errno == EINTR)
		;
	if (got < 0)
		err = -errno;
	w->reaped = true;
	pthread_mutex_unlock(&w->lock);
	return err;
}

/* How far flint has written in a detached VM's stderr memfd: the file
 * offset the two descriptors share; -1 for none. */
static off_t log_written(const struct worker *w)
{
	return w->log_fd >= 0 ? lseek(w->log_fd, 0, SEEK_CUR) : -1;
}

/* A detached VM's stderr, from its memfd: what flint wrote there, up to
 * the cap. */
static void read_log(struct worker *w)
{
	off_t n = log_written(w);
	size_t want = n > 0 ? (size_t)n : 0;
	ssize_t got;

	if (want > w->err_cap)
		want = w->err_cap;
	got = want ? pread(w->log_fd, w->err, want, 0) : 0;
	w->err_len = got > 0 ? (size_t)got : 0;
	w->err_total = n > 0 ? (size_t)n : 0;
	w->log_full = n >= WORKER_VM_STDERR_CAP;
	close_fd(&w->log_fd);
}

void worker_log_rewind(struct worker *w)
{
	if (log_written(w) > WORKER_VM_STDERR_CAP / 2)
		(void)lseek(w->log_fd, 0, SEEK_SET);
}

static void fill_result(struct worker *w, int st, int err)
{
	struct worker_result *res = &w->res;

	if (w->log_fd >= 0)
		read_log(w);
	*res = (struct worker_result){.wait_status = st};
	if (err < 0) {
		res->outcome = WORKER_KILLED;
	} else if (WIFEXITED(st)) {
		res->outcome = outcome_for(w, WEXITSTATUS(st), &res->status);
	} else {
		res->outcome = WORKER_KILLED;
		res->status = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	}
	/* Killed at the deadline (not exited by itself just before). */
	if (w->timed_out && (err < 0 || !WIFEXITED(st))) {
		res->outcome = WORKER_TIMEOUT;
		res->deadline = true;
	} else if (w->client_gone && (err < 0 || !WIFEXITED(st))) {
		res->outcome = WORKER_CLIENT_GONE; /* killed for it, the same way */
	}
	w->err[w->err_len] = '\0';
	res->err = w->err;
	res->err_len = w->err_len;
	res->err_total = w->err_total;
	res->err_truncated = w->err_total > w->err_len || w->log_full;
	if (!w->end_ns)
		w->end_ns = now_ns();
	res->run_ns = w->end_ns - w->start_ns;
	res->ready_ms = w->status_known ? w->st_ready_ms : -1;
	res->command_ms = w->status_known ? w->st_command_ms : -1;
	res->unsent = w->status_known && w->st_sent == 0;
}

bool worker_early(struct worker *w, struct worker_result *res)
{
	if (w->done) {
		*res = w->res;
		return true;
	}
	if (!w->status_known || w->out_fd >= 0)
		return false;
	*res = (struct worker_result){.early = true};
	res->outcome = outcome_for(w, w->st_status, &res->status);
	w->err[w->err_len] = '\0';
	res->err = w->err;
	res->err_len = w->err_len;
	res->err_total = w->err_total;
	res->err_truncated = w->err_total > w->err_len;
	res->run_ns = now_ns() - w->start_ns;
	res->ready_ms = w->st_ready_ms;
	res->command_ms = w->st_command_ms;
	res->unsent = w->st_sent == 0;
	return true;
}

int worker_wait(struct worker *w, struct worker_result *res)
{
	int st = 0;

	if (w->done) {
		*res = w->res;
		return w->wait_err;
	}
	if (w->warm && !w->released && !w->discarding)
		begin_discard(w);
	close_fd(&w->in_fd);
	/* A controlled VM's flint stops it and exits 0 at its socket's end. */
	close_fd(&w->ctl_fd);
	while (!check_exit(w)) {
		struct pollfd pf[3] = {
		    {w->out_fd, POLLIN, 0},
		    {w->err_fd, POLLIN, 0},
		    {w->pidfd, POLLIN, 0},
		};

		deadline_passed(w);
		if (poll(pf, ARRAY_SIZE(pf), wait_ms(w)) < 0 && errno != EINTR) {
			kill_group(w); /* reap() then waits for it */
			break;
		}
		if (pf[0].revents)
			drop_out(w);
		if (pf[1].revents)
			read_err(w);
	}
	drain(w);
	w->wait_err = reap(w, &st);
	close_fd(&w->pidfd); /* a reaped worker holds no descriptor */
	fill_result(w, st, w->wait_err);
	w->done = true;
	*res = w->res;
	return w->wait_err;
}

int worker_discard(struct worker *w, struct worker_result *res)
{
	if (!w->done) {
		if (w->warm && !w->released)
			begin_discard(w);
		else
			kill_group(w);
	}
	return worker_wait(w, res);
}

/* One answer line of flint --control-fd, read into w->ctl_line until its
 * newline or the deadline: 0 with the line (no newline), -ETIMEDOUT,
 * -EPIPE when the socket ended. */
static int control_line(struct worker *w, uint64_t deadline)
{
	for (;;) {
		char *nl = memchr(w->ctl_line, '\n', w->ctl_len);
		uint64_t now = now_ns();
		ssize_t got;

		if (nl) {
			*nl = '\0';
			return 0;
		}
		if (w->ctl_len == sizeof(w->ctl_line) - 1)
			return -EPROTO; /* not flint's answer */
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pf = {w->ctl_fd, POLLIN, 0};
		uint64_t ms = (deadline - now + 999999) / 1000000;
		int n = poll(&pf, 1, ms > INT_MAX ? INT_MAX : (int)ms);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		got =
		    read(w->ctl_fd, w->ctl_line + w->ctl_len, sizeof(w->ctl_line) - 1 - w->ctl_len);
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
			return -EPIPE;
		if (got > 0)
			w->ctl_len += (size_t)got;
	}
}

/* Send req (a line) on the control socket and take flint's answer into
 * w->ctl_line by the deadline. 0, -EPIPE (flint gone: the socket closed),
 * or control_line's error (the socket closed: a late answer can never be
 * taken for the next request's). */
/* Send req on the control socket. 0, or -EPIPE (the socket closed). */
static int control_send(struct worker *w, const char *req)
{
	size_t len = strlen(req);
	ssize_t sent;

	if (w->ctl_fd < 0)
		return -EPIPE;
	while ((sent = send(w->ctl_fd, req, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (sent != (ssize_t)len) {
		/* A few bytes sent into an empty socket either go whole or
		 * fail: flint has closed its end. */
		close_fd(&w->ctl_fd);
		return -EPIPE;
	}
	return 0;
}

static int control_request(struct worker *w, const char *req, uint64_t deadline)
{
	int r;

	w->ctl_len = 0;
	if ((r = control_send(w, req)) < 0)
		return r;
	if ((r = control_line(w, deadline)) < 0)
		close_fd(&w->ctl_fd);
	w->ctl_len = 0; /* one answer per request: nothing is left over */
	return r;
}

int worker_reset(struct worker *w, unsigned timeout_ms, uint64_t *us, char *err, size_t errlen)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	unsigned long long n;
	int r;

	if (errlen)
		err[0] = '\0';
	if (!w->control)
		return -EINVAL;
	if ((r = control_request(w, "reset\n", deadline)) < 0) {
		if (r == -EPROTO && errlen)
			snprintf(err, errlen, "an answer longer than %d bytes", CONTROL_LINE_MAX);
		return r == -EPROTO ? -EIO : r;
	}
	if (sscanf(w->ctl_line, "ok %llu", &n) == 1) {
		if (us)
			*us = n;
		return 0;
	}
	if (errlen)
		snprintf(err, errlen, "%s",
			 !strncmp(w->ctl_line, "error ", 6) ? w->ctl_line + 6 : w->ctl_line);
	return -EIO;
}

int worker_ask_where(struct worker *w, uint64_t deadline_ns)
{
	if (w->done)
		return 0;
	if (!w->detached) /* WORKER_VM */
		return -EINVAL;
	if (w->control) {
		/* The VM is let go now: the socket's end, after the request,
		 * stops it; its words come with its stderr. A socket already
		 * closed: flint is on its way out. */
		(void)control_send(w, "where\n");
		close_fd(&w->ctl_fd);
	} else {
		/* SIGQUIT does the same: flint stops the VM saying where it
		 * was. flint only: a leftover of its group keeps the default
		 * action, a core dump. */
		pthread_mutex_lock(&w->lock);
		if (w->pid > 0 && !w->reaped)
			kill(w->pid, SIGQUIT);
		pthread_mutex_unlock(&w->lock);
	}
	/* This, whatever deadline the VM had before: it is being let go. */
	w->deadline_ns = deadline_ns;
	return 0;
}

int worker_stop_saying_where(struct worker *w, unsigned timeout_ms, struct worker_result *res)
{
	int r = worker_ask_where(w, now_ns() + (uint64_t)timeout_ms * 1000000ULL);

	return r < 0 ? r : worker_wait(w, res);
}

bool worker_exited(struct worker *w)
{
	return w->reaped || check_exit(w);
}

int worker_release(struct worker *w)
{
	const char go = 'g';
	ssize_t n;

	if (!w->warm || w->released || w->discarding || w->done)
		return -EINVAL;
	while ((n = write_nosig(w->go_fd, &go, 1)) < 0 && errno == EINTR)
		;
	int err = n == 1 ? 0 : n < 0 ? -errno : -EIO;
	close_fd(&w->go_fd);
	w->released = true;
	w->start_ns = now_ns();
	set_deadline(w, w->start_ns);
	return err;
}

pid_t worker_pid(const struct worker *w)
{
	return w->pid;
}

/* A pipe end the child gets: at 5 or above, so that the dup2s onto 0-4
 * never overwrite one another's source nor leave a CLOEXEC one in place. */
static int above_go_fd(int *fd)
{
	int nfd;

	if (*fd > WORKER_STATUS_FD)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, WORKER_STATUS_FD + 1);
	if (nfd < 0)
		return -errno;
	close_fd(fd);
	*fd = nfd;
	return 0;
}

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* A detached VM's stderr (w->log_fd; *child, a descriptor of the same
 * open file for the child): a memfd of the cap's size (zeros), sealed so
 * that it can neither grow nor shrink, so that a VM that says much costs
 * at most that. What flint wrote is 0 to the offset the two descriptors
 * share (writes past the cap fail). */
static int make_log(struct worker *w, int *child)
{
	w->log_fd = memfd_create("flint-vm-stderr", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (w->log_fd < 0 || ftruncate(w->log_fd, WORKER_VM_STDERR_CAP) < 0 ||
	    fcntl(w->log_fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
		return -errno;
	*child = fcntl(w->log_fd, F_DUPFD_CLOEXEC, WORKER_STATUS_FD + 1);
	return *child < 0 ? -errno : 0;
}

/* The child's pipes: child[i] its end of stdin, stdout, stderr, go (-1
 * for none: a detached VM's stdio has none), parent[i] the worker's. */
static int make_pipes(struct worker *w, int child[5], int parent[5])
{
	for (int i = 0; i < 5; i++) {
		int p[2], r;

		if (i == 3 && w->control) {
			/* Both ways: requests in, answers out. */
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
				return -errno;
			child[i] = p[1];
			parent[i] = p[0];
			if ((r = above_go_fd(&child[i])) < 0 || (r = nonblock(parent[i])) < 0)
				return r;
			continue;
		}
		if ((i == 3 && !w->warm) || (i == 4 && !w->early_status) || (w->detached && i < 3))
			continue;
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		/* stdin and go are read by the child; stdout, stderr and
		 * status written. */
		bool reads = i == 0 || i == 3;
		child[i] = reads ? p[0] : p[1];
		parent[i] = reads ? p[1] : p[0];
		if ((r = above_go_fd(&child[i])) < 0 || (r = nonblock(parent[i])) < 0)
			return r;
	}
	return 0;
}

/* posix_spawn's settings: fds 0-2 (and 3) from the pipes and every other
 * one closed; a process group of its own; no signal blocked; the ones a
 * server may ignore (SIGPIPE first) back to their defaults. */
static int spawn_settings(const struct worker *w, const int child[5],
			  posix_spawn_file_actions_t *fa, posix_spawnattr_t *at)
{
	static const int defaults[] = {SIGPIPE, SIGHUP,	 SIGINT,  SIGQUIT, SIGTERM,
				       SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2, SIGTSTP,
				       SIGTTIN, SIGTTOU, SIGXFSZ};
	sigset_t none, dfl;
	int r = 0, n = w->early_status ? 5 : w->warm || w->control ? 4 : 3;

	/* A slot with no pipe below the last one (fd 3 of a worker with a
	 * status pipe and no go pipe) gets /dev/null, not a server fd; so do
	 * a detached VM's stdin and stdout (its stderr: its memfd). */
	for (int i = 0; i < n && !r; i++)
		r = (w->detached && i < 2) || child[i] < 0
			? posix_spawn_file_actions_addopen(fa, i, "/dev/null", O_RDWR, 0)
			: posix_spawn_file_actions_adddup2(fa, child[i], i);
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(fa, n);
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		sigaddset(&dfl, defaults[i]);
	if (!r)
		r = posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						     POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setpgroup(at, 0);
	if (!r)
		r = posix_spawnattr_setsigmask(at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(at, &dfl);
	return -r;
}

int worker_spawn(struct worker **out, const struct worker_params *p)
{
	int child[5] = {-1, -1, -1, -1, -1}, parent[5] = {-1, -1, -1, -1, -1}, r;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	bool fa_ok = false, at_ok = false;
	char **argv = NULL;
	struct worker *w;
	unsigned span_s = p->deadline_s;

	*out = NULL;
	if (!span_s && p->timeout_s)
		span_s = p->timeout_s + WORKER_MARGIN_S;
	if ((r = worker_argv(p, &argv)) < 0 || !(w = calloc(1, sizeof(*w)))) {
		worker_argv_free(argv);
		if (p->gone)
			p->gone(p->gone_ctx);
		return r < 0 ? r : -ENOMEM;
	}
	w->gone = p->gone;
	w->gone_ctx = p->gone_ctx;
	pthread_mutex_init(&w->lock, NULL);
	w->pidfd = w->in_fd = w->out_fd = w->err_fd = w->go_fd = w->st_fd = w->ctl_fd = -1;
	w->log_fd = w->client_fd = -1;
	w->warm = p->kind == WORKER_WARM;
	w->control = p->kind == WORKER_VM && p->control;
	w->early_status = p->early_status && p->kind != WORKER_SAVE && p->kind != WORKER_VM;
	w->detached = p->kind == WORKER_VM;
	w->span_ns = (uint64_t)span_s * 1000000000ULL;
	w->err_cap = p->stderr_cap ? p->stderr_cap : WORKER_STDERR_CAP;
	if (w->detached && w->err_cap > WORKER_VM_STDERR_CAP)
		w->err_cap = WORKER_VM_STDERR_CAP;
	w->err = malloc(w->err_cap + 1);
	w->inbuf = malloc(IN_BUF);
	if (!w->err || !w->inbuf) {
		r = -ENOMEM;
		goto err;
	}
	if ((r = make_pipes(w, child, parent)) < 0 ||
	    (w->detached && (r = make_log(w, &child[2])) < 0))
		goto err;
	if ((r = -posix_spawn_file_actions_init(&fa)) < 0)
		goto err;
	fa_ok = true;
	if ((r = -posix_spawnattr_init(&at)) < 0)
		goto err;
	at_ok = true;
	if ((r = spawn_settings(w, child, &fa, &at)) < 0)
		goto err;
	/* glibc's posix_spawn returns once the child has exec'd, or with
	 * exec's error. */
	r = -posix_spawn(&w->pid, argv[0], &fa, &at, argv, p->envp ? p->envp : environ);
	if (r < 0) {
		w->pid = 0;
		goto err;
	}
	w->start_ns = now_ns();
	if (!worker_test_no_pidfd)
		w->pidfd = (int)syscall(SYS_pidfd_open, w->pid, 0); /* CLOEXEC; -1: waitid */
	if (w->control) {
		w->ctl_fd = parent[3];
		parent[3] = -1;
	}
	if (w->detached) {
		for (int i = 0; i < 5; i++)
			close_fd(&parent[i]);
	}
	w->in_fd = parent[0];
	w->out_fd = parent[1];
	w->err_fd = parent[2];
	w->go_fd = parent[3];
	w->st_fd = parent[4];
	for (int i = 0; i < 5; i++)
		close_fd(&child[i]);
	if (!w->warm)
		set_deadline(w, w->start_ns);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	worker_argv_free(argv);
	*out = w;
	return 0;
err:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (at_ok)
		posix_spawnattr_destroy(&at);
	for (int i = 0; i < 5; i++) {
		close_fd(&child[i]);
		close_fd(&parent[i]);
	}
	worker_argv_free(argv);
	worker_destroy(w);
	return r;
}

void worker_destroy(struct worker *w)
{
	int st;

	if (!w)
		return;
	if (w->pid > 0 && !w->reaped) {
		kill_group(w);
		(void)reap(w, &st);
	}
	close_fd(&w->in_fd);
	close_fd(&w->out_fd);
	close_fd(&w->err_fd);
	close_fd(&w->go_fd);
	close_fd(&w->st_fd); /* a warm VM's, destroyed unwaited */
	close_fd(&w->ctl_fd);
	close_fd(&w->pidfd);
	close_fd(&w->log_fd);
	pthread_mutex_destroy(&w->lock);
	free(w->inbuf);
	free(w->err);
	if (w->gone)
		w->gone(w->gone_ctx);
	free(w);
}
