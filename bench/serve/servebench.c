/* servebench: request latency and throughput for bench/serve, measured the
 * same way for every way of serving a request.
 *
 *   servebench http -s SOCK -u PATH [-c C] [-n N] [-w W] [-b BODY] [-e EXPECT]
 *       N requests (after W warm-up ones, not counted, also C at a time so
 *       that a server's VMs each take some), C at a time, each
 *       "POST PATH" with BODY over HTTP/1.1 to the Unix socket SOCK (one
 *       kept-alive connection per lane); a request counts as answered when
 *       its status is 200 and its body is EXPECT.
 *   servebench exec [-c C] [-n N] [-w W] [-b BODY] [-e EXPECT] -- CMD ARGS...
 *       The same with a process per request: CMD ARGS ("{n}" in them
 *       becomes the request's number) with BODY on its stdin; answered when
 *       it exits 0 and its stdout holds EXPECT.
 *
 * A request's latency runs from just before it is sent (or its process
 * forked) to its whole answer read (or its process reaped). Prints one
 * line: "mode=... c=C n=N ok=K errors=E wall_s=... rps=... p50_ms=...
 * p90_ms=... p99_ms=... min_ms=... max_ms=...", and the first error on
 * stderr. Built static so that it runs in the rig's L1 (bench/serve/run),
 * with flint's own HTTP client (runner/bench/fcapi.c, and core/util.c,
 * jansson): an answer's body of Content-Length bytes or chunked (as flint
 * serve streams output beyond its buffer), up to 1 MiB with its headers,
 * within REQ_TIMEOUT_US. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/fcapi.h"
#include "core/util.h"

#define MAX_LANES 64
#define RESP_MAX  (1 << 20)
/* A request's answer must be in by then (an error, not a wait for ever). */
#define REQ_TIMEOUT_US (300 * 1000000ULL)

static const char *sock_path, *url_path, *body = "", *expect;
static char **cmd;
static bool http_mode;
static int lanes = 1, total = 10, warmup;
static atomic_int next_req, errors;
static double *lat_ms;
/* The phase the lanes run: the warm-up (its latencies dropped, its
 * requests numbered from 0) or the measured one (from base). */
static int phase_n, phase_base;
static bool phase_keep;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static bool err_said;

static void say_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say_error(const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&errors, 1);
	pthread_mutex_lock(&err_lock);
	if (!err_said) {
		err_said = true;
		fputs("servebench: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&err_lock);
}

/* One request on *fd (connected again when closed): POST url_path with
 * body through flint's client (fcapi_exchange), its answer into a (a->body
 * set by the caller). true when answered 200 with expect. */
static bool http_one(int *fd, struct fcapi_answer *a)
{
	struct fcapi_call c = {.method = "POST",
			       .path = url_path,
			       .content_type = "application/octet-stream",
			       .accept = "*/*",
			       .body = body,
			       .body_len = strlen(body),
			       .deadline_us = now_us() + REQ_TIMEOUT_US,
			       .max_answer = RESP_MAX};
	int r;

	/* One try: a socket not there or refusing is -ETIMEDOUT to fcapi. */
	if (*fd < 0 && (r = fcapi_connect(sock_path, 0, fd)) < 0) {
		say_error("cannot connect to %s: %s", sock_path,
			  r == -ETIMEDOUT ? "no socket there, or it refuses" : strerror(-r));
		return false;
	}
	if ((r = fcapi_exchange(*fd, &c, a)) < 0) {
		/* Closed before a byte of the answer came, or the answer's fault. */
		if (r == -EPROTO && !a->first_byte_us)
			say_error("the server closed the connection");
		else
			say_error("POST %s: %s", url_path,
				  r == -EPROTO
				      ? "an answer cut short, not HTTP/1.x, over 1 MiB, with a "
					"bad length or chunk, or with bytes after its end"
				      : strerror(-r));
		close_fd(fd);
		return false;
	}
	if (a->close)
		close_fd(fd);
	size_t kept = a->body_bytes < a->body_len ? (size_t)a->body_bytes : a->body_len - 1;
	if (a->status != 200 ||
	    (expect && (a->body_bytes != strlen(expect) || memcmp(a->body, expect, kept)))) {
		say_error("status %d, body '%.*s'", a->status, (int)(kept > 200 ? 200 : kept),
			  a->body);
		return false;
	}
	return true;
}

static bool exec_one(int k, char *buf)
{
	char *argv[128], *owned[128];
	int in[2], out[2], no = 0, st;
	size_t len = 0, blen = strlen(body);
	pid_t pid;

	for (int i = 0; cmd[i] && i < 127; i++) {
		char *at = strstr(cmd[i], "{n}");
		argv[i] = cmd[i];
		if (at &&
		    asprintf(&owned[no], "%.*s%d%s", (int)(at - cmd[i]), cmd[i], k, at + 3) > 0)
			argv[i] = owned[no++];
		argv[i + 1] = NULL;
	}
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		say_error("pipe: %s", strerror(errno));
		return false;
	}
	pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	for (int i = 0; i < no; i++)
		free(owned[i]);
	if (pid < 0) {
		say_error("fork: %s", strerror(errno));
		close(in[1]);
		close(out[0]);
		return false;
	}
	if (blen && write(in[1], body, blen) != (ssize_t)blen)
		say_error("writing the body: %s", strerror(errno));
	close(in[1]);
	for (;;) {
		ssize_t r = read(out[0], buf + len, RESP_MAX - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == RESP_MAX - 1)
			break;
	}
	buf[len] = '\0';
	close(out[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || (expect && !strstr(buf, expect))) {
		say_error("%s: status %d, stdout '%.200s'", argv[0],
			  WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), buf);
		return false;
	}
	return true;
}

static void *lane(void *arg)
{
	char *buf = malloc(RESP_MAX);
	struct fcapi_answer *a = malloc(sizeof(*a));
	int fd = -1;

	(void)arg;
	if (!buf || !a) {
		free(buf);
		free(a);
		return NULL;
	}
	a->body = buf;
	a->body_len = RESP_MAX;
	for (;;) {
		int k = atomic_fetch_add(&next_req, 1);
		uint64_t t0;
		bool ok;

		if (k >= phase_n)
			break;
		t0 = now_ns();
		ok = http_mode ? http_one(&fd, a) : exec_one(phase_base + k, buf);
		if (phase_keep)
			lat_ms[k] = ok ? (double)(now_ns() - t0) / 1e6 : -1;
		else if (!ok)
			fprintf(stderr, "servebench: warm-up request %d failed\n", k);
	}
	close_fd(&fd);
	free(buf);
	free(a);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
	int i = (int)(p / 100.0 * n + 0.999999) - 1;
	return n ? v[i < 0 ? 0 : i >= n ? n - 1 : i] : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: servebench http -s SOCK -u PATH [-c C] [-n N] [-w W] [-b BODY] "
			"[-e EXPECT]\n"
			"       servebench exec [-c C] [-n N] [-w W] [-b BODY] [-e EXPECT] -- CMD "
			"ARGS...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_LANES];
	uint64_t t0, t1;
	int c, ok = 0;

	if (argc < 2)
		usage();
	http_mode = !strcmp(argv[1], "http");
	if (!http_mode && strcmp(argv[1], "exec"))
		usage();
	optind = 2;
	while ((c = getopt(argc, argv, "s:u:c:n:w:b:e:")) != -1) {
		switch (c) {
		case 's':
			sock_path = optarg;
			break;
		case 'u':
			url_path = optarg;
			break;
		case 'c':
			lanes = atoi(optarg);
			break;
		case 'n':
			total = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'b':
			body = optarg;
			break;
		case 'e':
			expect = optarg;
			break;
		default:
			usage();
		}
	}
	cmd = argv + optind;
	if (lanes < 1 || lanes > MAX_LANES || total < 1 || warmup < 0 ||
	    (http_mode ? !sock_path || !url_path : !*cmd))
		usage();
	signal(SIGPIPE, SIG_IGN);
	lat_ms = calloc((size_t)total, sizeof(*lat_ms));
	if (!lat_ms)
		return 1;
	/* The warm-up, C at a time as the run, before the clock starts. */
	phase_n = warmup;
	for (int i = 0; i < lanes; i++)
		pthread_create(&th[i], NULL, lane, NULL);
	for (int i = 0; i < lanes; i++)
		pthread_join(th[i], NULL);
	atomic_store(&errors, 0);
	atomic_store(&next_req, 0);
	phase_n = total;
	phase_base = warmup;
	phase_keep = true;
	t0 = now_ns();
	for (int i = 0; i < lanes; i++)
		pthread_create(&th[i], NULL, lane, NULL);
	for (int i = 0; i < lanes; i++)
		pthread_join(th[i], NULL);
	t1 = now_ns();
	for (int i = 0; i < total; i++)
		if (lat_ms[i] >= 0)
			lat_ms[ok++] = lat_ms[i];
	qsort(lat_ms, (size_t)ok, sizeof(*lat_ms), cmp);
	double wall = (double)(t1 - t0) / 1e9;
	printf("mode=%s c=%d n=%d ok=%d errors=%d wall_s=%.3f rps=%.2f p50_ms=%.1f p90_ms=%.1f "
	       "p99_ms=%.1f min_ms=%.1f max_ms=%.1f\n",
	       http_mode ? "http" : "exec", lanes, total, ok, atomic_load(&errors), wall,
	       (double)ok / wall, pct(lat_ms, ok, 50), pct(lat_ms, ok, 90), pct(lat_ms, ok, 99),
	       ok ? lat_ms[0] : -1, ok ? lat_ms[ok - 1] : -1);
	return ok == total ? 0 : 1;
}
