/* snapbench: snapshot and restore timings of flint and QEMU, measured from
 * outside each VMM the same way (bench/snapshot).
 *
 * The guest answers each line it reads on its console (the VMM's stdin)
 * with "pong LINE" on its console (the VMM's stdout), after printing
 * "bench-ready" once it is up.
 *
 *   snapbench boot -v flint|qemu [-t SECONDS] -- VMM ARGS...
 *       A cold boot: launch VMM ARGS, time the launch to "bench-ready"
 *       (ready_ms), then write "x\n" and time the launch to "pong x"
 *       (pong_ms); the VMM is then killed.
 *   snapbench create -v flint|qemu -S SOCK [-s STATE -m MEM | -o FILE]
 *                    [-x fd|exec] [-t SECONDS] -- VMM ARGS...
 *       The same boot of VMM ARGS, which must serve flint's API or QEMU's
 *       QMP on SOCK; after the pong, the VM is paused (flint: PATCH /vm
 *       Paused; QEMU: stop) and the snapshot timed (create_ms): flint, PUT
 *       /snapshot/create (Full, to STATE and MEM) to its answer; QEMU,
 *       creating FILE, handing it over (getfd) and migrate "fd:" to it, or
 *       migrate "exec:cat > FILE" (-x exec), until its MIGRATION event says
 *       completed. own_ms is the VMM's own figure (flint's Debug line
 *       "Full snapshot ... in N us", QEMU's query-migrate total-time). The
 *       VMM is then killed.
 *   snapbench restore -v flint|qemu -m MODE [-n COUNT] [-S SOCK] [-i FILE]
 *                     [-h HIST] [-k TERM] [-t SECONDS] -- VMM ARGS...
 *       Launch COUNT (default 1, at most 16) copies of VMM ARGS at once,
 *       each a restore, and time each from just before its fork to "pong x"
 *       on its stdout. "x\n" goes to a VMM's stdin once it says its VM
 *       runs: flint, its Debug line "restored ... in N us" on stderr (run it
 *       with --level Debug); QEMU, its RESUME event on the QMP socket SOCK,
 *       or query-status saying running. "{i}" in SOCK and ARGS becomes the
 *       copy's number (0..COUNT-1). -i FILE opens FILE read-only as the
 *       VMMs' fd 3 (QEMU: -incoming fd:3). At a VMM's pong, with COUNT 1,
 *       KVM's exit histogram HIST is read; once every copy answered, each
 *       one's Rss, Pss and Anonymous from /proc/PID/smaps_rollup. Then
 *       every copy is killed (-k TERM: SIGTERM, and waited for, so that
 *       flint writes its --record-workset file).
 *
 * Each prints one line, "run mode=... vmm=... KEY=VALUE ...", with
 * ms=-1 where something never happened, and the reason on stderr
 * ("snapbench: ..."), with the end of the VMM's stderr; exit status 1 then.
 * Built static so it runs in the rig's L1 (bench/snapshot/run), with
 * flint's own HTTP client of its API (runner/bench/fcapi.c, and
 * core/util.c, jansson) and bench/vmmctl.c's connect and QMP reads. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../vmmctl.h"
#include "bench/fcapi.h"
#include "core/util.h"

#define MAX_VMS	 16
#define MAX_ARGS 128
#define READY	 "bench-ready"
#define PONG	 "pong x"
/* The same while restores run: the retries take CPU from the VMMs. */
#define QMP_RETRY_NS 200000ULL
#define REAP_WAIT_S  10

static double ms_since(uint64_t t0, uint64_t t)
{
	return t ? (double)(t - t0) / 1e6 : -1.0;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("snapbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- one VMM process ---- */

enum x_when { X_ON_READY, X_ON_RESUMED };
enum qmp_state { Q_NONE, Q_CONNECT, Q_GREETING, Q_CAPS, Q_STATUS, Q_RUNNING };

struct vmm {
	int idx;
	pid_t pid;
	int in_fd, out_fd, err_fd, qmp_fd;
	uint64_t t0; /* just before the fork */
	uint64_t t_ready, t_resumed, t_x, t_pong;
	long long load_us, ws_us, own_us;
	enum x_when x_when;
	bool want_ready;
	enum qmp_state qs;
	char qmp_path[108];
	int status; /* as a shell shows it once reaped; -1 before */
	long rss_kib, pss_kib, anon_kib;
	/* The console, matched across reads with a sliding window. */
	char win[512];
	size_t wl;
	/* stderr: the line being read, and the last bytes for messages. */
	char line[1024];
	size_t ll;
	char tail[4096];
	size_t tl;
	/* QMP input not yet split into lines. */
	char qbuf[16384];
	size_t ql;
	char qerr[256];
};

static const char *vmm_name; /* flint or qemu */
static bool is_qemu;
static char hist[65536]; /* KVM's exit histogram at the pong */
static const char *hist_path;
static bool hist_read;

static void vmm_init(struct vmm *v, int idx)
{
	memset(v, 0, sizeof(*v));
	v->idx = idx;
	v->pid = -1;
	v->in_fd = v->out_fd = v->err_fd = v->qmp_fd = -1;
	v->load_us = v->ws_us = v->own_us = -1;
	v->status = -1;
	v->rss_kib = v->pss_kib = v->anon_kib = -1;
}

/* s with every "{i}" replaced by idx, into out[0..len). */
static void subst(char *out, size_t len, const char *s, int idx)
{
	size_t o = 0;
	while (*s && o + 1 < len) {
		if (!strncmp(s, "{i}", 3)) {
			int n = snprintf(out + o, len - o, "%d", idx);
			if (n < 0 || (size_t)n >= len - o)
				break;
			o += (size_t)n;
			s += 3;
		} else {
			out[o++] = *s++;
		}
	}
	out[o] = '\0';
}

/* Fork and exec argv (with "{i}" replaced by v->idx) with its stdin,
 * stdout and stderr on pipes to us, and fd 3 on fd3_file (read-only) when
 * not NULL. Sets v->t0 just before the fork. 0 or -errno. */
static int vmm_spawn(struct vmm *v, char *const *argv, const char *fd3_file)
{
	static char args[MAX_ARGS][1024];
	char *av[MAX_ARGS + 1];
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, n = 0;

	for (; argv[n]; n++) {
		if (n == MAX_ARGS || strlen(argv[n]) >= sizeof(args[n]) - 16)
			return -E2BIG;
		subst(args[n], sizeof(args[n]), argv[n], v->idx);
		av[n] = args[n];
	}
	av[n] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		int e = -errno;
		close_fd(&in[0]), close_fd(&in[1]), close_fd(&out[0]), close_fd(&out[1]);
		close_fd(&err[0]), close_fd(&err[1]);
		return e;
	}
	v->t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		if (fd3_file) {
			int fd = open(fd3_file, O_RDONLY);
			if (fd < 0 || dup2(fd, 3) < 0) {
				dprintf(STDERR_FILENO, "snapbench: %s: %s\n", fd3_file,
					strerror(errno));
				_exit(127);
			}
			if (fd != 3)
				close(fd);
		}
		execvp(av[0], av);
		dprintf(STDERR_FILENO, "snapbench: cannot run %s: %s\n", av[0], strerror(errno));
		_exit(127);
	}
	v->pid = pid;
	close(in[0]), close(out[1]), close(err[1]);
	v->in_fd = in[1];
	v->out_fd = out[0];
	v->err_fd = err[0];
	fcntl(v->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(v->err_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* The number after the last "needle" in s, or -1. */
static long long num_after(const char *s, const char *needle)
{
	const char *p = NULL;
	for (const char *q = s; (q = strstr(q, needle)); q++)
		p = q;
	return p ? strtoll(p + strlen(needle), NULL, 10) : -1;
}

/* One whole line of flint's stderr: its restore and loading-set timings,
 * and its snapshot time. */
static void err_line(struct vmm *v, const char *l)
{
	if (strstr(l, "restored ") && strstr(l, " us")) {
		v->load_us = num_after(l, " in ");
		if (!v->t_resumed)
			v->t_resumed = now_ns();
	} else if (strstr(l, "loading set ") && strstr(l, " pages in ")) {
		v->ws_us = num_after(l, " pages in ");
	} else if (strstr(l, " snapshot ") && strstr(l, "(memory ")) {
		v->own_us = num_after(l, " in ");
	}
}

static void err_data(struct vmm *v, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (v->tl == sizeof(v->tail)) {
			memmove(v->tail, v->tail + 1024, v->tl - 1024);
			v->tl -= 1024;
		}
		v->tail[v->tl++] = c;
		if (c == '\n') {
			v->line[v->ll] = '\0';
			err_line(v, v->line);
			v->ll = 0;
		} else if (v->ll < sizeof(v->line) - 1) {
			v->line[v->ll++] = c;
		}
	}
}

static void read_hist(void)
{
	int fd = open(hist_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, hist, sizeof(hist) - 1);
	hist[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	hist_read = true;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void send_x(struct vmm *v)
{
	if (v->t_x)
		return;
	v->t_x = now_ns();
	if (write_all(v->in_fd, "x\n", 2) < 0)
		say("%s %d: writing to its stdin: %s", vmm_name, v->idx, strerror(errno));
}

static void out_data(struct vmm *v, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v->wl == sizeof(v->win) - 1) {
			memmove(v->win, v->win + 256, v->wl - 256);
			v->wl -= 256;
		}
		v->win[v->wl++] = buf[i];
		v->win[v->wl] = '\0';
		if (v->want_ready && !v->t_ready && v->wl >= strlen(READY) &&
		    !memcmp(v->win + v->wl - strlen(READY), READY, strlen(READY))) {
			v->t_ready = now_ns();
			if (v->x_when == X_ON_READY)
				send_x(v);
		}
		if (v->t_x && !v->t_pong && v->wl >= strlen(PONG) &&
		    !memcmp(v->win + v->wl - strlen(PONG), PONG, strlen(PONG))) {
			v->t_pong = now_ns();
			if (hist_path && !hist_read)
				read_hist();
		}
	}
}

/* ---- QMP, driven from the poll loop (restore) ---- */

/* True when the JSON text s has "key": "value" (or "key": value for
 * non-strings), whatever the spaces. */
static bool json_has(const char *s, const char *key, const char *value)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\"", key);
	for (const char *p = s; (p = strstr(p, k)); p++) {
		const char *q = p + strlen(k);
		while (*q == ' ')
			q++;
		if (*q++ != ':')
			continue;
		while (*q == ' ')
			q++;
		if (!strncmp(q, value, strlen(value)))
			return true;
	}
	return false;
}

static void qmp_send(struct vmm *v, const char *cmd)
{
	if (write_all(v->qmp_fd, cmd, strlen(cmd)) < 0) {
		snprintf(v->qerr, sizeof(v->qerr), "writing to QMP: %s", strerror(errno));
		close_fd(&v->qmp_fd);
	}
}

static void qmp_resumed(struct vmm *v)
{
	if (!v->t_resumed)
		v->t_resumed = now_ns();
	v->qs = Q_RUNNING;
}

static void qmp_msg(struct vmm *v, const char *l)
{
	if (strstr(l, "\"event\"")) {
		if (v->qs >= Q_CAPS && json_has(l, "event", "\"RESUME\""))
			qmp_resumed(v);
		return;
	}
	if (strstr(l, "\"error\"")) {
		snprintf(v->qerr, sizeof(v->qerr), "QMP: %.200s", l);
		return;
	}
	switch (v->qs) {
	case Q_GREETING:
		if (strstr(l, "\"QMP\"")) {
			v->qs = Q_CAPS;
			qmp_send(v, "{\"execute\":\"qmp_capabilities\"}\n");
		}
		break;
	case Q_CAPS:
		if (strstr(l, "\"return\"")) {
			v->qs = Q_STATUS;
			qmp_send(v, "{\"execute\":\"query-status\"}\n");
		}
		break;
	case Q_STATUS:
		/* Not running yet: its RESUME event will say when. */
		if (strstr(l, "\"return\"") && json_has(l, "running", "true"))
			qmp_resumed(v);
		break;
	default:
		break;
	}
}

static void qmp_data(struct vmm *v)
{
	ssize_t n = read(v->qmp_fd, v->qbuf + v->ql, sizeof(v->qbuf) - 1 - v->ql);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			if (!v->t_resumed)
				snprintf(v->qerr, sizeof(v->qerr), "QMP closed before the VM ran");
			close_fd(&v->qmp_fd);
		}
		return;
	}
	v->ql += (size_t)n;
	v->qbuf[v->ql] = '\0';
	char *nl;
	while ((nl = strchr(v->qbuf, '\n'))) {
		*nl = '\0';
		qmp_msg(v, v->qbuf);
		size_t used = (size_t)(nl - v->qbuf) + 1;
		memmove(v->qbuf, v->qbuf + used, v->ql - used);
		v->ql -= used;
		v->qbuf[v->ql] = '\0';
	}
	if (v->ql == sizeof(v->qbuf) - 1)
		v->ql = 0; /* a line too long to be one we want */
}

/* One connect() to the QMP socket; false while it is not up yet. */
static bool qmp_try_connect(struct vmm *v)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", v->qmp_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return false;
	}
	v->qmp_fd = fd;
	v->qs = Q_GREETING;
	return true;
}

/* ---- the loop ---- */

typedef bool (*done_fn)(struct vmm *v, int n);

static bool all_ponged(struct vmm *v, int n)
{
	for (int i = 0; i < n; i++)
		if (!v[i].t_pong)
			return false;
	return true;
}

/* Serve the VMMs' stdout, stderr and QMP sockets until done() or the
 * deadline or every VMM has ended. 0, -ETIMEDOUT, or -ECHILD when a VMM
 * closed its stdout (it ended). */
static int pump(struct vmm *v, int n, uint64_t deadline, done_fn done)
{
	char buf[8192];

	for (;;) {
		if (done(v, n))
			return 0;
		struct pollfd pf[MAX_VMS * 3];
		struct vmm *who[MAX_VMS * 3];
		int np = 0;
		bool connecting = false;
		for (int i = 0; i < n; i++) {
			if (v[i].qs == Q_CONNECT && !qmp_try_connect(&v[i]))
				connecting = true;
			int fds[3] = {v[i].out_fd, v[i].err_fd, v[i].qmp_fd};
			for (int k = 0; k < 3; k++)
				if (fds[k] >= 0) {
					pf[np] = (struct pollfd){.fd = fds[k], .events = POLLIN};
					who[np++] = &v[i];
				}
			if (v[i].x_when == X_ON_RESUMED && v[i].t_resumed)
				send_x(&v[i]);
		}
		uint64_t t = now_ns();
		if (t >= deadline)
			return -ETIMEDOUT;
		/* While a QMP socket is not up, look again every QMP_RETRY_NS. */
		int wait_ms = connecting ? 0 : (int)((deadline - t) / 1000000 + 1);
		int r = poll(pf, (nfds_t)np, wait_ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (connecting && r == 0)
			nanosleep(&(struct timespec){0, (long)QMP_RETRY_NS}, NULL);
		for (int j = 0; j < np && r > 0; j++) {
			if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct vmm *w = who[j];
			if (pf[j].fd == w->qmp_fd) {
				qmp_data(w);
				continue;
			}
			ssize_t got = read(pf[j].fd, buf, sizeof(buf));
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (pf[j].fd == w->out_fd) {
				if (got <= 0)
					close_fd(&w->out_fd);
				else
					out_data(w, buf, (size_t)got);
			} else {
				if (got <= 0)
					close_fd(&w->err_fd);
				else
					err_data(w, buf, (size_t)got);
			}
		}
		if (done(v, n))
			return 0;
		/* A VMM that closed its stdout before its pong has ended. */
		for (int i = 0; i < n; i++)
			if (v[i].out_fd < 0 && !v[i].t_pong)
				return -ECHILD;
	}
}

/* What v wrote since: stderr kept, stdout dropped, so that a VMM on its
 * way out never blocks on a full pipe. */
static void vmm_drain(struct vmm *v)
{
	char buf[4096];
	ssize_t got;
	while (v->err_fd >= 0 && (got = read(v->err_fd, buf, sizeof(buf))) > 0)
		err_data(v, buf, (size_t)got);
	while (v->out_fd >= 0 && read(v->out_fd, buf, sizeof(buf)) > 0)
		;
}

/* Send sig to v and reap it; SIGKILL if it has not ended REAP_WAIT_S
 * after. Its status in v->status. */
static void vmm_reap(struct vmm *v, int sig)
{
	int st;
	if (v->pid <= 0)
		return;
	kill(v->pid, sig);
	uint64_t deadline = now_ns() + REAP_WAIT_S * 1000000000ULL;
	for (;;) {
		pid_t r = waitpid(v->pid, &st, WNOHANG);
		if (r == v->pid)
			break;
		if (r < 0) {
			v->pid = -1;
			return;
		}
		if (now_ns() >= deadline) {
			if (sig == SIGKILL) {
				say("%s %d (pid %d) did not end %d s after SIGKILL", vmm_name,
				    v->idx, (int)v->pid, REAP_WAIT_S);
				return;
			}
			say("%s %d did not end %d s after signal %d; killing it", vmm_name, v->idx,
			    REAP_WAIT_S, sig);
			kill(v->pid, SIGKILL);
			sig = SIGKILL;
			deadline = now_ns() + REAP_WAIT_S * 1000000000ULL;
		}
		vmm_drain(v);
		usleep(1000);
	}
	v->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	v->pid = -1;
}

/* The rest of v's stderr (it has ended: never blocks, even where a child
 * of it still holds the pipe), then close its fds. */
static void vmm_close(struct vmm *v)
{
	vmm_drain(v);
	close_fd(&v->in_fd);
	close_fd(&v->out_fd);
	close_fd(&v->err_fd);
	close_fd(&v->qmp_fd);
	if (v->qmp_path[0])
		unlink(v->qmp_path);
}

/* The last 12 lines of v's stderr, and what went wrong on QMP. */
static void show_tail(struct vmm *v)
{
	if (v->ll) /* a last line without its newline */
		err_data(v, "\n", 1);
	const char *p = v->tail, *end = v->tail + v->tl;
	int lines = 0;
	for (const char *q = end; q > p; q--)
		if (q[-1] == '\n' && ++lines > 12) {
			p = q;
			break;
		}
	fprintf(stderr, "snapbench: %s %d's stderr (end):\n", vmm_name, v->idx);
	for (const char *l = p; l < end;) {
		const char *nl = memchr(l, '\n', (size_t)(end - l));
		size_t len = nl ? (size_t)(nl - l) : (size_t)(end - l);
		fprintf(stderr, "#   %.*s\n", (int)len, l);
		l += len + 1;
	}
	if (v->qerr[0])
		fprintf(stderr, "#   (%s)\n", v->qerr);
}

/* Rss, Pss and Anonymous of pid from smaps_rollup, in KiB (-1: unread). */
static void read_mem(struct vmm *v)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)v->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	v->rss_kib = num_after(buf, "\nRss:");
	v->pss_kib = num_after(buf, "\nPss:");
	v->anon_kib = num_after(buf, "\nAnonymous:");
}

/* The histogram's "{ exit_reason: N } hitcount: M" lines as " total=T
 * rN=M ...". */
static void print_hist(void)
{
	long long total = 0;
	char words[4096] = "";
	size_t o = 0;
	for (char *l = strtok(hist, "\n"); l; l = strtok(NULL, "\n")) {
		char *r = strstr(l, "exit_reason:"), *h = strstr(l, "hitcount:");
		if (!r || !h)
			continue;
		long long reason = strtoll(r + 12, NULL, 10), count = strtoll(h + 9, NULL, 10);
		total += count;
		int w = snprintf(words + o, sizeof(words) - o, " r%lld=%lld", reason, count);
		if (w > 0 && (size_t)w < sizeof(words) - o)
			o += (size_t)w;
	}
	printf(" total=%lld%s", total, words);
}

/* ---- flint's API and QEMU's QMP, blocking (create) ---- */

/* What the MIGRATION events so far said: 0 nothing final, 1 completed,
 * -1 failed or cancelled. */
static int mig_end;

static void note_event(const char *l)
{
	if (!json_has(l, "event", "\"MIGRATION\""))
		return;
	if (json_has(l, "status", "\"completed\""))
		mig_end = 1;
	else if (json_has(l, "status", "\"failed\"") || json_has(l, "status", "\"cancelled\""))
		mig_end = -1;
}

/* Send cmd (with fd attached by SCM_RIGHTS when fd >= 0) and read up to its
 * answer, noting the events that pass. 0, -EPROTO for an "error" answer
 * (in out), or -errno. */
static int qmp_cmd(struct qmp_conn *c, const char *cmd, int fd, char *out, size_t outlen)
{
	int r;
	if (fd >= 0) {
		char ctl[CMSG_SPACE(sizeof(int))] = {0};
		struct iovec iov = {.iov_base = (void *)cmd, .iov_len = strlen(cmd)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl,
				    .msg_controllen = sizeof(ctl)};
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		if (sendmsg(c->fd, &mh, 0) != (ssize_t)strlen(cmd))
			return -errno;
	} else if ((r = write_all(c->fd, cmd, strlen(cmd))) < 0) {
		return r;
	}
	for (;;) {
		if ((r = qmp_next(c, out, outlen)) < 0)
			return r;
		if (strstr(out, "\"event\"")) {
			note_event(out);
			continue;
		}
		return strstr(out, "\"return\"") ? 0 : -EPROTO;
	}
}

/* ---- create ---- */

struct create_opts {
	const char *sock, *state, *mem, *file, *how;
	int timeout_s;
};

static char *const *cmd_argv;

/* flint: PATCH /vm Paused, then PUT /snapshot/create, timed. */
static int create_flint(struct vmm *v, const struct create_opts *o, struct qmp_conn *c,
			double *pause_ms, double *create_ms)
{
	char body[2048], out[2048];
	int r, status = 0;

	if ((r = c->fd = vmmctl_connect(o->sock, v->pid, c->deadline)) < 0) {
		say("flint's API socket %s: %s", o->sock, strerror(-r));
		return r;
	}
	uint64_t t0 = now_ns();
	r = fcapi_request(c->fd, "PATCH", "/vm", "{\"state\":\"Paused\"}", c->deadline / 1000,
			  &status, out, sizeof(out));
	*pause_ms = ms_since(t0, now_ns());
	if (r < 0 || status != 204) {
		say("PATCH /vm Paused: %s", r < 0 ? strerror(-r) : out);
		return r < 0 ? r : -EPROTO;
	}
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
		 o->state, o->mem);
	t0 = now_ns();
	r = fcapi_request(c->fd, "PUT", "/snapshot/create", body, c->deadline / 1000, &status, out,
			  sizeof(out));
	*create_ms = ms_since(t0, now_ns());
	if (r < 0 || status != 204) {
		say("PUT /snapshot/create: %s (HTTP %d)", r < 0 ? strerror(-r) : out, status);
		return r < 0 ? r : -EPROTO;
	}
	return 0;
}

/* QEMU: stop, then migrate to a new file until completed, timed. */
static int create_qemu(struct vmm *v, const struct create_opts *o, struct qmp_conn *c,
		       double *pause_ms, double *create_ms)
{
	char out[4096], cmd[1024];
	int r, fd = -1;

	if ((r = c->fd = vmmctl_connect(o->sock, v->pid, c->deadline)) < 0) {
		say("QEMU's QMP socket %s: %s", o->sock, strerror(-r));
		return r;
	}
	if ((r = qmp_next(c, out, sizeof(out))) < 0 || !strstr(out, "\"QMP\"") ||
	    (r = qmp_cmd(c, "{\"execute\":\"qmp_capabilities\"}\n", -1, out, sizeof(out))) < 0 ||
	    (r = qmp_cmd(
		 c,
		 "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
		 "[{\"capability\":\"events\",\"state\":true}]}}\n",
		 -1, out, sizeof(out))) < 0) {
		say("QMP set-up: %s: %.300s", r < 0 ? strerror(-r) : "no greeting", out);
		return r < 0 ? r : -EPROTO;
	}
	uint64_t t0 = now_ns();
	r = qmp_cmd(c, "{\"execute\":\"stop\"}\n", -1, out, sizeof(out));
	*pause_ms = ms_since(t0, now_ns());
	if (r < 0) {
		say("QMP stop: %s: %.300s", strerror(-r), out);
		return r;
	}
	mig_end = 0;
	t0 = now_ns();
	if (!strcmp(o->how, "fd")) {
		fd = open(o->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			r = -errno;
			say("%s: %s", o->file, strerror(errno));
			return r;
		}
		r = qmp_cmd(c, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"snapbench\"}}\n",
			    fd, out, sizeof(out));
		close(fd);
		if (r < 0) {
			say("QMP getfd: %s: %.300s", strerror(-r), out);
			return r;
		}
		snprintf(cmd, sizeof(cmd),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:snapbench\"}}\n");
	} else {
		snprintf(cmd, sizeof(cmd),
			 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > %s\"}}\n",
			 o->file);
	}
	if ((r = qmp_cmd(c, cmd, -1, out, sizeof(out))) < 0) {
		say("QMP migrate: %s: %.300s", strerror(-r), out);
		return r;
	}
	while (!mig_end) {
		if ((r = qmp_next(c, out, sizeof(out))) < 0) {
			say("waiting for the migration to complete: %s", strerror(-r));
			return r;
		}
		note_event(out);
	}
	*create_ms = ms_since(t0, now_ns());
	if (mig_end < 0) {
		say("the migration failed: %.300s", out);
		return -EIO;
	}
	if (qmp_cmd(c, "{\"execute\":\"query-migrate\"}\n", -1, out, sizeof(out)) == 0)
		v->own_us = num_after(out, "\"total-time\":") * 1000;
	return 0;
}

/* Wait (at most 5 s) until the size of path holds still for 50 ms: what
 * cat still had to write after QEMU said completed (-x exec). */
static void settle_file(const char *path)
{
	struct stat st;
	off_t last = -1;
	int still = 0;
	for (int i = 0; i < 500 && still < 5; i++) {
		if (stat(path, &st) == 0 && st.st_size == last)
			still++;
		else
			still = 0;
		last = stat(path, &st) == 0 ? st.st_size : -1;
		usleep(10000);
	}
}

/* boot (boot_only) and create: see the comment at the top. */
static int create_main(int argc, char **argv, bool boot_only)
{
	struct create_opts o = {.how = "fd", .timeout_s = 120};
	int opt;

	while ((opt = getopt(argc, argv, "+v:S:s:m:o:x:t:")) != -1) {
		switch (opt) {
		case 'v':
			vmm_name = optarg;
			break;
		case 'S':
			o.sock = optarg;
			break;
		case 's':
			o.state = optarg;
			break;
		case 'm':
			o.mem = optarg;
			break;
		case 'o':
			o.file = optarg;
			break;
		case 'x':
			o.how = optarg;
			break;
		case 't':
			o.timeout_s = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	is_qemu = vmm_name && !strcmp(vmm_name, "qemu");
	bool bad_snap = !o.sock || (is_qemu ? !o.file : !o.state || !o.mem) ||
			(strcmp(o.how, "fd") && strcmp(o.how, "exec"));
	if (!vmm_name || (!is_qemu && strcmp(vmm_name, "flint")) || (!boot_only && bad_snap) ||
	    optind >= argc || strcmp(argv[optind - 1], "--")) {
		fprintf(stderr,
			"usage: snapbench boot -v flint|qemu [-t S] -- VMM ARGS...\n"
			"       snapbench create -v flint|qemu -S SOCK [-s STATE -m MEM | -o "
			"FILE] [-x fd|exec] [-t S] -- VMM ARGS...\n");
		return 2;
	}
	cmd_argv = &argv[optind];
	static struct vmm v;
	static struct qmp_conn c;
	double pause_ms = -1, create_ms = -1;
	int r;

	vmm_init(&v, 0);
	v.want_ready = true;
	v.x_when = X_ON_READY;
	if (o.sock)
		unlink(o.sock);
	if ((r = vmm_spawn(&v, cmd_argv, NULL)) < 0) {
		say("cannot start %s: %s", cmd_argv[0], strerror(-r));
		return 1;
	}
	uint64_t deadline = v.t0 + (uint64_t)o.timeout_s * 1000000000ULL;
	r = pump(&v, 1, deadline, all_ponged);
	if (r < 0)
		say("%s: %s before %s", vmm_name, r == -ETIMEDOUT ? "timed out" : "ended",
		    v.t_ready ? "\"" PONG "\"" : "\"" READY "\"");
	if (r == 0 && !boot_only) {
		c.fd = -1;
		c.deadline = deadline;
		r = is_qemu ? create_qemu(&v, &o, &c, &pause_ms, &create_ms)
			    : create_flint(&v, &o, &c, &pause_ms, &create_ms);
		close_fd(&c.fd);
	}
	vmm_reap(&v, SIGKILL);
	vmm_close(&v);
	if (o.sock)
		unlink(o.sock);
	if (boot_only) {
		printf("run mode=boot vmm=%s ready_ms=%.3f pong_ms=%.3f status=%d\n", vmm_name,
		       ms_since(v.t0, v.t_ready), r < 0 ? -1.0 : ms_since(v.t0, v.t_pong),
		       v.status);
	} else {
		if (r == 0 && is_qemu && !strcmp(o.how, "exec"))
			settle_file(o.file);
		printf("run mode=create vmm=%s ready_ms=%.3f pong_ms=%.3f pause_ms=%.3f "
		       "create_ms=%.3f own_ms=%.3f status=%d\n",
		       vmm_name, ms_since(v.t0, v.t_ready), ms_since(v.t0, v.t_pong), pause_ms,
		       r < 0 ? -1.0 : create_ms, v.own_us < 0 ? -1.0 : v.own_us / 1e3, v.status);
	}
	fflush(stdout);
	if (r < 0) {
		show_tail(&v);
		return 1;
	}
	return 0;
}

/* ---- restore ---- */

static int restore_main(int argc, char **argv)
{
	const char *mode = NULL, *sock = NULL, *fd3 = NULL;
	int count = 1, timeout_s = 120, opt, stop_sig = SIGKILL;

	while ((opt = getopt(argc, argv, "+v:m:n:S:i:h:k:t:")) != -1) {
		switch (opt) {
		case 'v':
			vmm_name = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 'n':
			count = atoi(optarg);
			break;
		case 'S':
			sock = optarg;
			break;
		case 'i':
			fd3 = optarg;
			break;
		case 'h':
			hist_path = optarg;
			break;
		case 'k':
			if (strcmp(optarg, "TERM"))
				return 2;
			stop_sig = SIGTERM;
			break;
		case 't':
			timeout_s = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	is_qemu = vmm_name && !strcmp(vmm_name, "qemu");
	if (!vmm_name || (!is_qemu && strcmp(vmm_name, "flint")) || !mode || count < 1 ||
	    count > MAX_VMS || (is_qemu && !sock) || optind >= argc ||
	    strcmp(argv[optind - 1], "--")) {
		fprintf(stderr,
			"usage: snapbench restore -v flint|qemu -m MODE [-n COUNT] [-S SOCK] "
			"[-i FILE] [-h HIST] [-k TERM] [-t S] -- VMM ARGS...\n");
		return 2;
	}
	if (count > 1)
		hist_path = NULL;
	cmd_argv = &argv[optind];
	static struct vmm v[MAX_VMS];
	int r = 0, ok = 0;

	for (int i = 0; i < count; i++) {
		vmm_init(&v[i], i);
		v[i].x_when = X_ON_RESUMED;
		if (is_qemu) {
			subst(v[i].qmp_path, sizeof(v[i].qmp_path), sock, i);
			unlink(v[i].qmp_path);
			v[i].qs = Q_CONNECT;
		}
	}
	for (int i = 0; i < count && r == 0; i++)
		if ((r = vmm_spawn(&v[i], cmd_argv, fd3)) < 0)
			say("cannot start %s: %s", cmd_argv[0], strerror(-r));
	uint64_t deadline = v[0].t0 + (uint64_t)timeout_s * 1000000000ULL;
	if (r == 0)
		r = pump(v, count, deadline, all_ponged);
	for (int i = 0; i < count; i++)
		if (v[i].t_pong) {
			ok++;
			read_mem(&v[i]);
		}
	for (int i = 0; i < count; i++) {
		vmm_reap(&v[i], stop_sig);
		vmm_close(&v[i]);
	}
	/* One line: the last pong, the first VM's figures, memory summed. */
	uint64_t last = 0;
	long rss = 0, pss = 0, anon = 0;
	bool mem_ok = ok == count;
	for (int i = 0; i < count; i++) {
		if (v[i].t_pong && v[i].t_pong - v[0].t0 > last)
			last = v[i].t_pong - v[0].t0;
		if (v[i].rss_kib < 0 || v[i].pss_kib < 0 || v[i].anon_kib < 0)
			mem_ok = false;
		rss += v[i].rss_kib;
		pss += v[i].pss_kib;
		anon += v[i].anon_kib;
	}
	if (ok == count && !mem_ok)
		say("could not read every VMM's /proc/PID/smaps_rollup");
	printf("run mode=%s vmm=%s n=%d ok=%d pong_ms=%.3f resumed_ms=%.3f load_ms=%.3f ws_ms=%.3f "
	       "rss_kib=%ld pss_kib=%ld anon_kib=%ld status=%d",
	       mode, vmm_name, count, ok, ok == count ? (double)last / 1e6 : -1.0,
	       ms_since(v[0].t0, v[0].t_resumed), v[0].load_us < 0 ? -1.0 : v[0].load_us / 1e3,
	       v[0].ws_us < 0 ? -1.0 : v[0].ws_us / 1e3, mem_ok ? rss : -1, mem_ok ? pss : -1,
	       mem_ok ? anon : -1, v[0].status);
	if (hist_read)
		print_hist();
	printf("\n");
	fflush(stdout);
	if (ok == count)
		return 0;
	for (int i = 0; i < count; i++) {
		if (v[i].t_pong)
			continue;
		if (!v[i].t_resumed && is_qemu)
			say("qemu %d never said its VM runs (%s)", i,
			    v[i].qs == Q_CONNECT  ? "its QMP socket never accepted"
			    : v[i].qs == Q_STATUS ? "no RESUME event"
						  : "the QMP handshake did not finish");
		else if (!v[i].t_resumed)
			say("flint %d never said its VM runs (no \"restored ... in N us\" line: "
			    "run "
			    "it with --level Debug)",
			    i);
		else
			say("%s %d: no \"" PONG "\" %.0f ms after its VM ran (status %d%s)",
			    vmm_name, i, (double)(now_ns() - v[i].t_resumed) / 1e6, v[i].status,
			    r == -ETIMEDOUT ? ", timed out" : "");
		show_tail(&v[i]);
	}
	return 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "boot"))
		return create_main(argc - 1, argv + 1, true);
	if (argc >= 2 && !strcmp(argv[1], "create"))
		return create_main(argc - 1, argv + 1, false);
	if (argc >= 2 && !strcmp(argv[1], "restore"))
		return restore_main(argc - 1, argv + 1);
	fprintf(stderr, "usage: snapbench boot|create|restore ... (see the comment at the top)\n");
	return 2;
}
