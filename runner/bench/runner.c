/* runner: one VMM run for flint bench. See runner.h. */
#include "bench/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/phase.h"

#define SMAPS_MAX (16u << 20) /* a VMM with more mappings than this is not measured */
#define TAIL_MAX  160	      /* the VMM's last output, for a failure's reason */

int runner_find(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");

	if (!name || !*name)
		return -ENOENT;
	if (strchr(name, '/')) {
		struct stat st;

		/* A directory passes access(X_OK): only a file runs. One that
		 * is there but cannot run is -EACCES: "not found" misleads. */
		if (stat(name, &st) < 0 || (size_t)snprintf(out, len, "%s", name) >= len)
			return -ENOENT;
		return S_ISREG(st.st_mode) && access(name, X_OK) == 0 ? 0 : -EACCES;
	}
	for (const char *p = path ? path : "/usr/local/bin:/usr/bin:/bin"; *p;) {
		size_t dl = strcspn(p, ":");
		struct stat st;

		if ((size_t)snprintf(out, len, "%.*s/%s", (int)dl, dl ? p : ".", name) < len &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return 0;
		p += dl + (p[dl] == ':');
	}
	return -ENOENT;
}

/* "Key:   123 kB" at line l: the number. */
static bool kb_field(const char *l, const char *eol, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);
	uint64_t x = 0;
	const char *p;

	if ((size_t)(eol - l) <= kl || memcmp(l, key, kl) || l[kl] != ':')
		return false;
	for (p = l + kl + 1; p < eol && *p == ' '; p++)
		;
	if (p == eol || *p < '0' || *p > '9')
		return false;
	for (; p < eol && *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*v = x;
	return true;
}

/* A mapping's header, "start-end perms ...": its size in KiB. */
static bool map_header(const char *l, const char *eol, uint64_t *kib)
{
	char *end;
	unsigned long long a, b;

	if (eol - l < 3 || !strchr("0123456789abcdef", *l))
		return false;
	errno = 0;
	a = strtoull(l, &end, 16);
	if (errno || end >= eol || *end != '-')
		return false;
	b = strtoull(end + 1, &end, 16);
	if (errno || end >= eol || *end != ' ' || b < a)
		return false;
	*kib = (b - a) >> 10;
	return true;
}

int runner_smaps(const char *text, size_t n, uint64_t guest_mem_kib, uint64_t *total_kib,
		 uint64_t *guest_kib)
{
	const char *p = text, *end = text + n;
	uint64_t size = 0, rss, total = 0, best = 0;
	bool in_map = false, found = false;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		eol = eol ? eol : end;
		if (map_header(p, eol, &size)) {
			in_map = true;
		} else if (in_map && kb_field(p, eol, "Rss", &rss)) {
			total += rss;
			if (size >= guest_mem_kib &&
			    size <= guest_mem_kib + RUNNER_GUEST_SLACK_KIB &&
			    (!found || rss > best)) {
				best = rss;
				found = true;
			}
		} else if (!in_map) {
			return -EINVAL; /* text before any mapping */
		}
		p = eol + 1;
	}
	if (!in_map)
		return -EINVAL;
	*total_kib = total;
	if (!found)
		return -ENOENT;
	*guest_kib = best;
	return 0;
}

int runner_stat(const char *text, long ticks_per_s, struct runner_stat *st)
{
	const char *p = strrchr(text, ')');
	unsigned long long v[13];

	/* After the command's name: state, ppid, pgrp, session, tty, tpgid,
	 * flags, minflt, cminflt, majflt, cmajflt, utime, stime (the last two
	 * in clock ticks, every thread's, the ended ones' too). */
	if (ticks_per_s <= 0 || !p ||
	    sscanf(p + 1, " %*c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[1],
		   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
		   &v[12]) != 12)
		return -EINVAL;
	st->minflt = v[7];
	st->majflt = v[9];
	st->cpu_us = (v[11] + v[12]) * 1000000ULL / (unsigned long long)ticks_per_s;
	return 0;
}

void runner_scan_init(struct runner_scan *s, const struct runner_marker *m, unsigned nm)
{
	memset(s, 0, sizeof(*s));
	s->m = m;
	s->nm = nm;
	s->win[s->wl++] = '\n'; /* the stream begins a line */
}

unsigned runner_scan_feed(struct runner_scan *s, const char *buf, size_t n)
{
	unsigned now = 0;

	for (size_t i = 0; i < n; i++) {
		/* Keep the last 256 bytes at least: a marker's longest and
		 * the line's end before it. */
		if (s->wl == sizeof(s->win) - 1) {
			memmove(s->win, s->win + 255, s->wl - 255);
			s->wl -= 255;
		}
		s->win[s->wl++] = buf[i];
		for (unsigned k = 0; k < s->nm; k++) {
			size_t ml = s->m[k].text ? strlen(s->m[k].text) : 0;

			if (!ml || ml > 255 || (s->found & (1u << k)) || s->wl <= ml ||
			    memcmp(s->win + s->wl - ml, s->m[k].text, ml) ||
			    (s->win[s->wl - ml - 1] != '\n' && s->win[s->wl - ml - 1] != '\r'))
				continue;
			s->found |= 1u << k;
			now |= 1u << k;
		}
	}
	return now;
}

/* The whole of a /proc file (up to max bytes), NUL-terminated, malloc'd;
 * NULL if it cannot be read. */
static char *read_proc(pid_t pid, const char *what, size_t max, size_t *len)
{
	char path[64], *text;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	return read_named_file_max(path, max, &text, len) < 0 ? NULL : text;
}

/* RSS outside guest RAM, guest RAM resident, faults, CPU time: at
 * measure_at. */
static void measure(pid_t pid, uint64_t guest_mem_kib, struct bench_record *r)
{
	struct runner_stat st;
	uint64_t total, guest;
	size_t n;
	char *t = read_proc(pid, "smaps", SMAPS_MAX, &n);

	if (t && runner_smaps(t, n, guest_mem_kib, &total, &guest) == 0 && guest <= total) {
		r->rss_overhead_kib = total - guest;
		r->guest_touched_kib = guest;
	}
	free(t);
	if ((t = read_proc(pid, "stat", 1 << 16, &n)) &&
	    runner_stat(t, sysconf(_SC_CLK_TCK), &st) == 0) {
		r->minor_faults = st.minflt;
		r->major_faults = st.majflt;
		r->cpu_us = st.cpu_us;
	}
	free(t);
}

/* The child: its own process group (a timeout kills all of it), stdin
 * from /dev/null, stdout and stderr to out, the phase pipe at
 * RUNNER_PHASE_FD. Both pipes are first moved above the descriptors they
 * become (the bench's own 0-2 may have been closed, and a pipe got one of
 * those numbers). Nothing else the bench inherited goes on (a CI
 * runner's descriptors, make's jobserver). Only async-signal-safe calls. */
static void child(const char *path, char *const *argv, int out, int phase)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* Above 0-2 too: dup2 onto the number it already has would leave it
	 * close-on-exec, and the VMM without a stdin. */
	if (null >= 0)
		null = fcntl(null, F_DUPFD_CLOEXEC, RUNNER_PHASE_FD + 1);
	setpgid(0, 0);
	out = fcntl(out, F_DUPFD_CLOEXEC, RUNNER_PHASE_FD + 1);
	if (phase >= 0 && (phase = fcntl(phase, F_DUPFD_CLOEXEC, RUNNER_PHASE_FD + 1)) < 0)
		_exit(126);
	if (out < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(out, STDERR_FILENO) < 0 || (phase >= 0 && dup2(phase, RUNNER_PHASE_FD) < 0))
		_exit(126);
	close_range(phase >= 0 ? RUNNER_PHASE_FD + 1 : STDERR_FILENO + 1, ~0U, 0);
	execv(path, argv);
	_exit(127);
}

static void set_why(struct bench_record *r, const char *fmt, ...) PRINTF(2, 3);
static void set_why(struct bench_record *r, const char *fmt, ...)
{
	va_list ap;

	if (r->why[0])
		return; /* the first reason stands */
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

void runner_missing(struct bench_record *r, const char *bin, int err)
{
	set_why(r, BENCH_MISSING_PREFIX "%.90s %s", bin,
		err == -EACCES ? "is not an executable file" : "not found");
}

/* The last non-empty line of the VMM's output, for a reason. */
static const char *last_line(char *tail, size_t n)
{
	while (n && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		n--;
	tail[n] = '\0';
	char *nl = memrchr(tail, '\n', n);
	return nl ? nl + 1 : tail;
}

struct watch {
	const struct runner_launch *l;
	struct bench_record *r;
	struct runner_scan scan;
	struct phase_parser pp;
	pid_t pid;
	uint64_t t0;
	bool measured, phase_bad, stopped;
	char tail[TAIL_MAX + 1];
	size_t tl;
};

static void on_console(struct watch *w, const char *buf, size_t n, uint64_t t)
{
	unsigned hit = runner_scan_feed(&w->scan, buf, n);

	for (unsigned k = 0; k < RUNNER_MAX_MARKERS; k++)
		if ((hit & (1u << k)) && w->r->phase_us[w->l->markers[k].phase] == BENCH_NONE)
			w->r->phase_us[w->l->markers[k].phase] = t - w->t0;
	if (n >= TAIL_MAX) {
		memcpy(w->tail, buf + n - TAIL_MAX, TAIL_MAX);
		w->tl = TAIL_MAX;
	} else {
		size_t keep = w->tl + n > TAIL_MAX ? TAIL_MAX - n : w->tl;

		memmove(w->tail, w->tail + w->tl - keep, keep);
		memcpy(w->tail + keep, buf, n);
		w->tl = keep + n;
	}
}

static void on_phases(struct watch *w, const char *buf, size_t n)
{
	char err[128];

	if (w->phase_bad)
		return;
	if (phase_feed(&w->pp, buf, n, err, sizeof(err)) < 0) {
		w->phase_bad = true;
		set_why(w->r, "%s", err);
	}
}

/* Once the VMM is reaped, what it wrote is read for this long more: a
 * process it left behind may hold the pipes open. */
#define DRAIN_US 200000

/* Reap the VMM if it has ended: *status and BP_EXIT. */
static bool try_reap(struct watch *w, int *status)
{
	pid_t got = waitpid(w->pid, status, WNOHANG);

	if (got == w->pid || (got < 0 && errno == ECHILD)) {
		w->r->phase_us[BP_EXIT] = now_us() - w->t0;
		return true;
	}
	return false;
}

/* Read both pipes and wait for the VMM until it has ended and closed
 * them (or DRAIN_US after its end), or the deadline. pidfd: readable when
 * it ends (-1: look every 10 ms). Returns false at the deadline, the VMM
 * still running. */
static bool watch(struct watch *w, int *out, int *ph, int pidfd, uint64_t deadline, int *status)
{
	char buf[4096];
	bool reaped = false;

	while (!reaped || *out >= 0 || *ph >= 0) {
		struct pollfd p[3] = {{.fd = *out, .events = POLLIN},
				      {.fd = *ph, .events = POLLIN},
				      {.fd = reaped ? -1 : pidfd, .events = POLLIN}};
		uint64_t now = now_us();

		if (!reaped && (reaped = try_reap(w, status)))
			deadline = now + DRAIN_US < deadline ? now + DRAIN_US : deadline;
		if (now >= deadline)
			break;
		uint64_t left = (deadline - now + 999) / 1000;
		if (!reaped && pidfd < 0 && left > 10)
			left = 10;
		if (reaped && *out < 0 && *ph < 0)
			break;
		int k = poll(p, 3, left > 60000 ? 60000 : (int)left);

		if (k < 0 && errno != EINTR)
			break;
		now = now_us();
		for (int i = 0; i < 2; i++) {
			int *fd = i ? ph : out;
			ssize_t got;

			if (*fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(*fd, buf, sizeof(buf));
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (got <= 0) {
				close_fd(fd);
				continue;
			}
			if (i)
				on_phases(w, buf, (size_t)got);
			else
				on_console(w, buf, (size_t)got, now);
		}
		if (!w->measured && !reaped && w->r->phase_us[w->l->measure_at] != BENCH_NONE) {
			w->measured = true;
			measure(w->pid, w->l->guest_mem_kib, w->r);
			if (w->l->stop_at_measure && kill(-w->pid, SIGKILL) == 0)
				w->stopped = true;
		}
	}
	return reaped;
}

int runner_run(const struct runner_launch *l, struct bench_record *r)
{
	int out[2] = {-1, -1}, ph[2] = {-1, -1}, status = 0;
	unsigned timeout_ms = l->timeout_ms ? l->timeout_ms : 60000;
	char path[4096], err[128];
	struct watch w = {.l = l, .r = r};
	int ret = -ENOENT, pidfd = -1;

	bench_record_init(r, l->vmm);
	if (!l->argv || (ret = runner_find(l->argv[0], path, sizeof(path))) < 0) {
		runner_missing(r, l->argv && l->argv[0] ? l->argv[0] : "(no binary)", ret);
		return 0;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || (l->phase_fd && pipe2(ph, O_CLOEXEC) < 0)) {
		ret = -errno;
		goto out;
	}
	unsigned nm = 0;
	while (nm < RUNNER_MAX_MARKERS && l->markers[nm].text)
		nm++;
	runner_scan_init(&w.scan, l->markers, nm);
	w.t0 = now_us();
	phase_parser_init(&w.pp, r, w.t0);
	w.pp.skip = l->phase_skip;
	w.pid = fork();
	if (w.pid < 0) {
		ret = -errno;
		goto out;
	}
	if (w.pid == 0)
		child(path, l->argv, out[1], ph[1]);
	setpgid(w.pid, w.pid); /* as the child does: whichever runs first */
	close_fd(&out[1]);
	close_fd(&ph[1]);
	pidfd = (int)syscall(SYS_pidfd_open, w.pid, 0);
	if (l->drive && (ret = l->drive(l->drive_ctx, w.pid, w.t0 + (uint64_t)timeout_ms * 1000,
					err, sizeof(err))) < 0) {
		kill(-w.pid, SIGKILL);
		while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR)
			;
		r->phase_us[BP_EXIT] = now_us() - w.t0;
		set_why(r, "%s", err);
	} else if (!watch(&w, &out[0], &ph[0], pidfd, w.t0 + (uint64_t)timeout_ms * 1000,
			  &status)) {
		kill(-w.pid, SIGKILL);
		while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR)
			;
		r->phase_us[BP_EXIT] = now_us() - w.t0;
		set_why(r, "timeout after %u ms", timeout_ms);
	} else if (w.stopped) {
		/* Killed once measured, as asked: its status says nothing,
		 * and its end was the kill, no launch to exit to set beside
		 * a VMM's own (the table's row then has no ratio). */
		r->phase_us[BP_EXIT] = BENCH_NONE;
	} else if (WIFSIGNALED(status)) {
		set_why(r, "killed by signal %d: %s", WTERMSIG(status), last_line(w.tail, w.tl));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
		   !(l->status_is_guests && r->phase_us[l->measure_at] != BENCH_NONE)) {
		set_why(r, "exit status %d: %s", WEXITSTATUS(status), last_line(w.tail, w.tl));
	}
	if (l->phase_fd && !w.phase_bad && phase_finish(&w.pp, err, sizeof(err)) < 0)
		set_why(r, "%s", err);
	if (r->phase_us[l->measure_at] == BENCH_NONE) {
		const char *text = NULL, *name = bench_phase_name(l->measure_at);

		for (unsigned k = 0; k < nm; k++)
			if (l->markers[k].phase == l->measure_at)
				text = l->markers[k].text;
		if (text)
			set_why(r, "the marker '%s' never appeared", text);
		else
			set_why(r, "%s never reported", name ? name : "the phase measured");
	}
	r->ok = !r->why[0];
	ret = 0;
out:
	close_fd(&pidfd);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&ph[0]);
	close_fd(&ph[1]);
	return ret;
}
