/* plot: flint bench's SVG, drawn by gnuplot. See plot.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/plot.h"
#include "bench/stats.h"

extern char **environ;

/* How long gnuplot may take, and the most SVG and messages kept from it. */
#define PLOT_TIMEOUT_MS (60 * 1000)
#define PLOT_MAX_SVG	(64u << 20)
#define PLOT_MAX_ERR	4096

/* ----- the script ----- */

/* Characters a word of the script's data (a VMM's name) keeps. */
static bool word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("._+-", c));
}

/* src as a word of the script's data: word_char()s kept, anything else
 * '_'; "?" when empty. */
static void clean_word(char *dst, size_t len, const char *src)
{
	size_t i = 0;

	for (; src[i] && i + 1 < len; i++)
		dst[i] = word_char(src[i]) ? src[i] : '_';
	dst[i] = 0;
	if (!i && len > 1)
		snprintf(dst, len, "?");
}

/* src as the inside of a double-quoted string of the script (a reason):
 * word_char()s and " ,:;()/=" kept, anything else '?'. */
static void clean_text(char *dst, size_t len, const char *src)
{
	size_t i = 0;

	for (; src[i] && i + 1 < len; i++)
		dst[i] = word_char(src[i]) || strchr(" ,:;()/=", src[i]) ? src[i] : '?';
	dst[i] = 0;
}

/* The start-up latencies of vmm's successful runs in ms, sorted, into a
 * malloc'd *v (NULL when there are none) of *n. */
static int startups(const struct bench_set *s, const char *vmm, double **v, size_t *n)
{
	*n = 0;
	*v = NULL;
	for (size_t i = 0; i < s->nruns; i++) {
		uint64_t x = stats_startup_us(&s->runs[i]);

		if (strcmp(s->runs[i].vmm, vmm) || !s->runs[i].ok || x == BENCH_NONE)
			continue;
		if (!*v && !(*v = malloc(s->nruns * sizeof(**v))))
			return -ENOMEM;
		(*v)[(*n)++] = (double)x / 1000;
	}
	stats_sort(*v, *n);
	return 0;
}

/* Datablock $cdfI: vmm's empirical CDF as steps, from (first, 0). */
static void cdf_block(FILE *out, size_t i, const double *v, size_t n)
{
	fprintf(out, "$cdf%zu << EOD\n%.3f 0\n", i, v[0]);
	for (size_t k = 0; k < n; k++)
		fprintf(out, "%.3f %.6f\n", v[k], (double)(k + 1) / (double)n);
	fputs("EOD\n", out);
}

/* The line under the plots: missing peers and VMMs without a successful
 * run, or "" when there are none. */
static void note_line(const struct bench_set *s, const char **vmm, size_t nv, const size_t *nok,
		      char *note, size_t len)
{
	size_t used = 0;

	note[0] = 0;
	for (size_t i = 0; i < nv && used + 1 < len; i++) {
		const struct bench_missing *m = stats_missing_of(s, vmm[i]);
		char name[32], why[sizeof(m->why)];

		if (nok[i])
			continue;
		clean_word(name, sizeof(name), vmm[i]);
		clean_text(why, sizeof(why), m ? m->why : "");
		for (size_t k = 0; k < s->nruns && !m; k++)
			if (!strcmp(s->runs[k].vmm, vmm[i]) && !s->runs[k].ok &&
			    s->runs[k].why[0]) {
				clean_text(why, sizeof(why), s->runs[k].why);
				break;
			}
		used += (size_t)snprintf(note + used, len - used, "%s%s %s%s%s%s", used ? "; " : "",
					 name, m ? "missing" : "no successful run",
					 *why ? " (" : "", why, *why ? ")" : "");
		if (used >= len)
			used = len - 1;
	}
}

/* The stacked bars: datablock $bars (a row per VMM with successful runs,
 * a column per start-up phase some of them reached, the exit too where
 * start-up ends there: its mean duration in ms) and its plot command. */
static int bars(const struct bench_set *s, FILE *out, const char **vmm, size_t nv,
		const size_t *nok)
{
	double mean[BENCH_MAX_VMMS][BP_COUNT];
	bool col[BP_COUNT] = {false};
	unsigned np = BENCH_STARTUP_PHASES;
	size_t c = 2;
	int r;

	for (size_t i = 0; i < s->nruns; i++)
		if (s->runs[i].to_exit)
			np = BP_EXIT + 1;
	for (size_t i = 0; i < nv; i++) {
		for (unsigned p = 0; p < np && nok[i]; p++) {
			struct bench_stats st;

			if ((r = stats_of(s->runs, s->nruns, vmm[i],
					  (struct bench_fig){BF_DURATION, p}, &st)) < 0)
				return r;
			mean[i][p] = st.n ? st.mean / 1000 : 0;
			col[p] = col[p] || st.n;
		}
	}
	fputs("$bars << EOD\n", out);
	for (size_t i = 0; i < nv; i++) {
		char name[32];

		if (!nok[i])
			continue;
		clean_word(name, sizeof(name), vmm[i]);
		fputs(name, out);
		for (unsigned p = 0; p < np; p++)
			if (col[p])
				fprintf(out, " %.3f", mean[i][p]);
		fputc('\n', out);
	}
	fputs("EOD\n", out);
	fputs("set title \"mean time to each phase from the one before\"\n"
	      "unset xlabel\nset ylabel \"ms from launch\"\n"
	      "set xrange [*:*]\nset yrange [0:*]\nset grid noxtics ytics\n"
	      "set style data histograms\nset style histogram rowstacked\n"
	      "set style fill solid 0.8 border -1\nset boxwidth 0.6\n"
	      "set key outside right top vertical reverse Left invert\n"
	      "plot",
	      out);
	for (unsigned p = 0; p < np; p++) {
		if (!col[p])
			continue;
		/* a duration is named by the phase that ends it */
		fprintf(out, "%s $bars using %zu%s title \"%s\"", c > 2 ? "," : "", c,
			c == 2 ? ":xtic(1)" : "", bench_phase_name(p) + strlen("launch-to-"));
		c++;
	}
	fputc('\n', out);
	return 0;
}

int plot_script(const struct bench_set *s, FILE *out)
{
	const char *vmm[BENCH_MAX_VMMS];
	size_t nv = stats_vmms(s, vmm, BENCH_MAX_VMMS), nok[BENCH_MAX_VMMS], any = 0;
	char mode[32], note[512];
	int r = 0;

	if (nv > BENCH_MAX_VMMS)
		return -E2BIG;
	clean_text(mode, sizeof(mode), s->mode ? s->mode : "");
	fputs("set terminal svg size 1200,500 dynamic noenhanced font \"sans,11\""
	      " background \"white\"\n",
	      out);
	for (size_t i = 0; i < nv; i++) {
		double *v;

		if ((r = startups(s, vmm[i], &v, &nok[i])) < 0)
			return r;
		if (nok[i])
			cdf_block(out, i, v, nok[i]);
		any += nok[i];
		free(v);
	}
	note_line(s, vmm, nv, nok, note, sizeof(note));
	if (!any) {
		fprintf(out,
			"set title \"flint bench %s: no successful run to plot\"\n"
			"unset border\nunset tics\nunset key\n"
			"set label 1 \"%s\" at screen 0.02, screen 0.04 left\n"
			"plot [0:1] [0:1] 2 notitle\n",
			mode, note);
		return fflush(out) == EOF || ferror(out) ? -EIO : 0;
	}
	fprintf(out,
		"set multiplot layout 1,2 title \"flint bench %s: start-up latency\"\n"
		"set bmargin 5\n"
		"set label 1 \"%s\" at screen 0.02, screen 0.03 left\n"
		"set title \"CDF of the start-up latency (launch to the last phase reached)\"\n"
		"set xlabel \"ms from launch\"\nset ylabel \"fraction of runs\"\n"
		"set xrange [0:*]\nset yrange [0:1.05]\nset grid\n"
		"set key bottom right\n"
		"plot",
		mode, note);
	for (size_t i = 0, k = 0; i < nv; i++) {
		char name[32], failed[32] = "";
		size_t nf = 0;

		if (!nok[i])
			continue;
		/* the CDF is of the runs that succeeded: the others said, as
		 * the table's header says them */
		for (size_t j = 0; j < s->nruns; j++)
			nf += !strcmp(s->runs[j].vmm, vmm[i]) && !s->runs[j].ok;
		if (nf)
			snprintf(failed, sizeof(failed), ", %zu failed", nf);
		clean_word(name, sizeof(name), vmm[i]);
		fprintf(out, "%s $cdf%zu using 1:2 with steps lw 2 title \"%s (%zu runs%s)\"",
			k++ ? "," : "", i, name, nok[i], failed);
	}
	fputs("\nunset label 1\n", out);
	if ((r = bars(s, out, vmm, nv, nok)) < 0)
		return r;
	fputs("unset multiplot\n", out);
	return fflush(out) == EOF || ferror(out) ? -EIO : 0;
}

/* ----- gnuplot ----- */

/* gnuplot's side of the three streams and the rest of its start: fds 0-2
 * and nothing else, no signal blocked, SIGPIPE as the default. */
static int spawn_gnuplot(const char *prog, const int child[3], pid_t *pid)
{
	char *const argv[] = {(char *)prog, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int r;

	if ((r = posix_spawn_file_actions_init(&fa)))
		return -r;
	if ((r = posix_spawnattr_init(&at))) {
		posix_spawn_file_actions_destroy(&fa);
		return -r;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	for (int i = 0; i < 3 && !r; i++)
		r = posix_spawn_file_actions_adddup2(&fa, child[i], i);
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!r)
		r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setsigmask(&at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&at, &dfl);
	/* glibc's posix_spawnp reports a failed exec (ENOENT) as its result */
	if (!r)
		r = posix_spawnp(pid, prog, &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return -r;
}

/* What came back from gnuplot. */
struct output {
	char *svg;
	size_t len, cap;
	char err[PLOT_MAX_ERR];
	size_t errlen;
};

/* Read what fd has into o (the SVG for its stdout, the start of its
 * messages for its stderr); 0 at its end, 1 for more to come, -errno. */
static int take(int fd, struct output *o, bool svg)
{
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 1 : -errno;
	if (!n)
		return 0;
	if (!svg) {
		size_t k = (size_t)n < sizeof(o->err) - 1 - o->errlen
			       ? (size_t)n
			       : sizeof(o->err) - 1 - o->errlen;

		memcpy(o->err + o->errlen, buf, k);
		o->errlen += k;
		o->err[o->errlen] = 0;
		return 1;
	}
	if (o->len + (size_t)n > PLOT_MAX_SVG)
		return -EFBIG;
	if (o->len + (size_t)n > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 65536;
		char *p;

		while (cap < o->len + (size_t)n)
			cap *= 2;
		if (!(p = realloc(o->svg, cap)))
			return -ENOMEM;
		o->svg = p;
		o->cap = cap;
	}
	memcpy(o->svg + o->len, buf, (size_t)n);
	o->len += (size_t)n;
	return 1;
}

/* Feed script[0..len) to gnuplot's stdin (in, a socket: MSG_NOSIGNAL, so
 * that a gnuplot gone early is an error and not our SIGPIPE), closing it
 * at the end, while its stdout and stderr are read into o, until both
 * end. 0 or -errno (-ETIMEDOUT). */
static int converse(int in, int out, int errfd, const char *script, size_t len, struct output *o)
{
	uint64_t deadline = now_ns() + (uint64_t)PLOT_TIMEOUT_MS * 1000000;
	size_t sent = 0;
	bool out_open = true, err_open = true;

	while (out_open || err_open) {
		struct pollfd p[3] = {{.fd = out, .events = POLLIN},
				      {.fd = errfd, .events = POLLIN},
				      {.fd = in, .events = POLLOUT}};
		uint64_t now = now_ns();
		int r;

		p[0].fd = out_open ? out : -1;
		p[1].fd = err_open ? errfd : -1;
		p[2].fd = in;
		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(p, 3, (int)((deadline - now) / 1000000) + 1);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		if (in >= 0 && p[2].revents) {
			ssize_t n =
			    send(in, script + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);

			/* gnuplot gone before the end: its status and message say why */
			if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
				sent = len;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
			sent += n > 0 ? (size_t)n : 0;
			if (sent == len) {
				shutdown(in, SHUT_WR);
				in = -1;
			}
		}
		if (out_open && p[0].revents && (r = take(out, o, true)) <= 0) {
			if (r < 0)
				return r;
			out_open = false;
		}
		if (err_open && p[1].revents && (r = take(errfd, o, false)) <= 0) {
			if (r < 0)
				return r;
			err_open = false;
		}
	}
	return 0;
}

/* gnuplot's last message line (where it says what was wrong), or "". */
static const char *last_line(char *err)
{
	char *end = err + strlen(err), *start;

	while (end > err && (end[-1] == '\n' || end[-1] == ' '))
		*--end = 0;
	start = strrchr(err, '\n');
	start = start ? start + 1 : err;
	while (*start == ' ')
		start++;
	return start;
}

int plot_svg(const struct bench_set *s, int out_fd, const char *gnuplot, char *err, size_t errlen)
{
	int child[3] = {-1, -1, -1}, in = -1, out = -1, errfd = -1, sv[2], pp[2], status, r;
	const char *prog = gnuplot ? gnuplot : "gnuplot";
	struct output o = {0};
	char *script = NULL;
	size_t len = 0;
	FILE *f;
	pid_t pid = -1;

	if (!(f = open_memstream(&script, &len)))
		return err_set(err, errlen, -ENOMEM, "plot: out of memory");
	r = plot_script(s, f);
	if (fclose(f) && !r)
		r = -EIO;
	if (r < 0) {
		err_set(err, errlen, r, "plot: cannot write the gnuplot script: %s", strerror(-r));
		goto out;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = err_set(err, errlen, -errno, "plot: socketpair: %m");
		goto out;
	}
	in = sv[0];
	child[0] = sv[1];
	for (int i = 1; i < 3; i++) {
		if (pipe2(pp, O_CLOEXEC) < 0) {
			r = err_set(err, errlen, -errno, "plot: pipe: %m");
			goto out;
		}
		child[i] = pp[1];
		*(i == 1 ? &out : &errfd) = pp[0];
	}
	if ((r = spawn_gnuplot(prog, child, &pid)) < 0) {
		pid = -1;
		if (r == -ENOENT)
			err_set(err, errlen, r,
				"plot: %s not found: --svg needs gnuplot (Debian: apt-get install "
				"gnuplot-nox)",
				prog);
		else
			err_set(err, errlen, r, "plot: cannot start %s: %s", prog, strerror(-r));
		goto out;
	}
	for (int i = 0; i < 3; i++)
		close_fd(&child[i]);
	if (fcntl(in, F_SETFL, O_NONBLOCK) < 0 || fcntl(out, F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(errfd, F_SETFL, O_NONBLOCK) < 0) {
		r = err_set(err, errlen, -errno, "plot: fcntl: %m");
		goto out;
	}
	if ((r = converse(in, out, errfd, script, len, &o)) < 0) {
		if (r == -ETIMEDOUT)
			err_set(err, errlen, r, "plot: %s took more than %d s: killed", prog,
				PLOT_TIMEOUT_MS / 1000);
		else
			err_set(err, errlen, r, "plot: talking to %s: %s", prog, strerror(-r));
		goto out;
	}
	close_fd(&in);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			r = err_set(err, errlen, -errno, "plot: waitpid: %m");
			goto out;
		}
	pid = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) || o.len < 5 || memcmp(o.svg, "<?xml", 5)) {
		r = err_set(err, errlen, -EPROTO, "plot: %s failed (%s %d)%s%s", prog,
			    WIFEXITED(status) ? "exit status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			    o.errlen ? ": " : "", last_line(o.err));
		goto out;
	}
	if ((r = write_full(out_fd, o.svg, o.len)) < 0)
		err_set(err, errlen, r, "plot: writing the SVG: %s", strerror(-r));
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 3; i++)
		close_fd(&child[i]);
	close_fd(&in);
	close_fd(&out);
	close_fd(&errfd);
	free(o.svg);
	free(script);
	return r;
}
