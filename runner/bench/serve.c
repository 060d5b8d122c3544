/* serve: flint bench serve's driver. See serve.h. */
#include "bench/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/fcapi.h"

static const char *const iso_names[] = {
    [BSERVE_RESET] = "reset", [BSERVE_RESTORE] = "restore", [BSERVE_REUSE] = "reuse"};

const char *bserve_isolation_name(enum bserve_isolation i)
{
	return (unsigned)i < ARRAY_SIZE(iso_names) ? iso_names[i] : NULL;
}

int bserve_isolation_from_name(const char *name, enum bserve_isolation *i)
{
	for (unsigned k = 0; k < ARRAY_SIZE(iso_names); k++)
		if (!strcmp(name, iso_names[k])) {
			*i = (enum bserve_isolation)k;
			return 0;
		}
	return -EINVAL;
}

/* ----- what flint serve is told ----- */

/* VMs the bench may have alive at once: the registration's, the C
 * running and (restored per request) the C warm ones behind them. */
static unsigned vms_needed(const struct bserve_cfg *c)
{
	return 2 * c->concurrency + 2;
}

int bserve_argv(const struct bserve_cfg *c, struct vmm_argv *a)
{
	unsigned vms = vms_needed(c);
	uint64_t mem = (uint64_t)vms * c->mem_mib;
	int r = 0;

	vmm_argv_reset(a);
	r = r ?: vmm_argv_add(a, "%s", c->flint);
	r = r ?: vmm_argv_add(a, "serve");
	r = r ?: vmm_argv_add(a, "--listen=unix:%s/serve.sock", c->dir);
	r = r ?: vmm_argv_add(a, "--state-dir=%s/state", c->dir);
	r = r ?: vmm_argv_add(a, "--register-timeout=%u", c->timeout_s);
	r = r
		?: vmm_argv_add(a, "--per-request=%s",
				c->isolation == BSERVE_RESTORE ? "restore" : "reset");
	if (vms > BSERVE_MAX_VMS_DEFAULT)
		r = r ?: vmm_argv_add(a, "--max-vms=%u", vms);
	if (mem > BSERVE_MAX_MEM_DEFAULT_MIB)
		r = r ?: vmm_argv_add(a, "--max-mem=%lluM", (unsigned long long)mem);
	return r;
}

/* argv[0..n) as a JSON array. */
static json_t *jargv(char *const *argv, int n)
{
	json_t *a = json_array();

	for (int i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(argv[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

int bserve_function_json(const struct bserve_cfg *c, char **out)
{
	static char *const dflt[] = {"sh", "-c", "read l; echo pong $l"};
	static char *const prepare[] = {"sh", "-c", "true"};
	bool own = c->ncommand > 0;
	json_t *f;

	*out = NULL;
	f = json_pack("{s:o, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "command",
		      own ? jargv(c->command, c->ncommand) : jargv(dflt, 3), "kernel", c->kernel,
		      "rootfs", c->rootfs, "mem_mib", (json_int_t)c->mem_mib, "vcpus",
		      (json_int_t)c->vcpus, "timeout_s",
		      (json_int_t)(c->timeout_s > 3600 ? 3600 : c->timeout_s), "max_concurrency",
		      (json_int_t)c->concurrency, "min_warm", (json_int_t)c->concurrency,
		      "isolation", c->isolation == BSERVE_REUSE ? "reuse" : "per-request");
	/* The default's shell warmed in the snapshot (bench/serve/README.md):
	 * a command of the user's own is taken as it is. */
	if (f && !own && json_object_set_new(f, "prepare", jargv(prepare, 3))) {
		json_decref(f);
		f = NULL;
	}
	if (f)
		*out = json_dumps(f, JSON_COMPACT);
	json_decref(f);
	return *out ? 0 : -ENOMEM;
}

int bserve_pool_ready(const char *json, unsigned *ready)
{
	json_t *doc = json_loads(json, 0, NULL);
	json_t *pool = json_object_get(doc, "pool");
	json_t *warm = json_object_get(pool, "warm"), *starting = json_object_get(pool, "starting");
	int r = -EINVAL;

	if (json_is_integer(warm) && json_is_integer(starting) &&
	    json_integer_value(warm) >= json_integer_value(starting) &&
	    json_integer_value(starting) >= 0) {
		*ready = (unsigned)(json_integer_value(warm) - json_integer_value(starting));
		r = 0;
	}
	json_decref(doc);
	return r;
}

/* ----- the server ----- */

struct bserve {
	const struct bserve_cfg *c;
	pid_t pid;
	char sock[PATH_MAX], state[PATH_MAX], log[PATH_MAX];
};

const char *bserve_socket(const struct bserve *s)
{
	return s->sock;
}

/* The last line flint serve wrote to its log, into out ("" if none). */
static void last_line(const struct bserve *s, char *out, size_t len)
{
	char buf[4096];
	int fd = open(s->log, O_RDONLY | O_CLOEXEC);
	off_t end;
	ssize_t n = 0;

	out[0] = '\0';
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end > 0) {
		off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
		n = pread(fd, buf, sizeof(buf) - 1, from);
	}
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	char *nl = strrchr(buf, '\n');
	snprintf(out, len, "%.200s", nl ? nl + 1 : buf);
}

/* Whether flint serve has ended; its status into *status then. */
static bool ended(struct bserve *s, int *status)
{
	if (s->pid <= 0)
		return true;
	if (waitpid(s->pid, status, WNOHANG) != s->pid)
		return false;
	s->pid = -1;
	if (s->c->pid)
		*s->c->pid = 0;
	return true;
}

static int status_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* why: what went wrong, and flint serve's last line. */
static int failed(struct bserve *s, int r, char *why, size_t len, const char *fmt, ...)
    PRINTF(5, 6);
static int failed(struct bserve *s, int r, char *why, size_t len, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(why, len, fmt, ap);
	va_end(ap);
	last_line(s, line, sizeof(line));
	if (line[0] && n >= 0 && (size_t)n < len)
		snprintf(why + n, len - (size_t)n, " (flint serve: %s)", line);
	return r;
}

static int spawn(struct bserve *s, char *why, size_t len)
{
	const struct bserve_cfg *c = s->c;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct vmm_argv *a = malloc(sizeof(*a));
	sigset_t none, dfl;
	int log = -1, r;

	if (!a)
		return -ENOMEM;
	if ((r = bserve_argv(c, a)) < 0) {
		free(a);
		snprintf(why, len, "flint serve's command line is too long");
		return r;
	}
	log = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log < 0) {
		r = -errno;
		free(a);
		snprintf(why, len, "%s: %s", s->log, strerror(-r));
		return r;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	/* A process group of its own: a terminal's ^C reaches the bench,
	 * which stops the server as it should be stopped. */
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	r = r ?: posix_spawn_file_actions_adddup2(&fa, log, 1);
	r = r ?: posix_spawn_file_actions_adddup2(&fa, log, 2);
	r = r
		?: posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						     POSIX_SPAWN_SETSIGDEF);
	r = r ?: posix_spawnattr_setpgroup(&at, 0);
	r = r ?: posix_spawnattr_setsigmask(&at, &none);
	r = r ?: posix_spawnattr_setsigdefault(&at, &dfl);
	r = r ?: posix_spawn(&s->pid, c->flint, &fa, &at, a->v, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(log);
	free(a);
	if (r) {
		s->pid = -1;
		snprintf(why, len, "cannot start %s serve: %s", c->flint, strerror(r));
		return -r;
	}
	if (c->pid)
		*c->pid = s->pid;
	return 0;
}

/* Connect to the server's socket once it listens: 0 with *fd. */
static int dial(struct bserve *s, uint64_t deadline_us, int *fd, char *why, size_t len)
{
	int st, r;

	for (;;) {
		uint64_t step = now_us() + 50000;

		r = fcapi_connect(s->sock, step < deadline_us ? step : deadline_us, fd);
		if (r != -ETIMEDOUT)
			break;
		if (*s->c->stop)
			return -EINTR;
		if (ended(s, &st))
			return failed(s, -EIO, why, len, "flint serve ended with status %d",
				      status_code(st));
		if (now_us() >= deadline_us)
			return failed(s, -ETIMEDOUT, why, len,
				      "flint serve did not listen on %s within 30 s", s->sock);
	}
	if (r < 0)
		return failed(s, r, why, len, "%s: %s", s->sock, strerror(-r));
	return 0;
}

/* One exchange with the server on *fd: 0 with the status and body, or
 * -errno with why. */
static int call(struct bserve *s, int fd, const char *method, const char *path, const char *json,
		uint64_t deadline_us, int *status, char *body, size_t blen, char *why, size_t len)
{
	struct fcapi_call c = {.method = method,
			       .path = path,
			       .body = json,
			       .body_len = json ? strlen(json) : 0,
			       .deadline_us = deadline_us,
			       .max_answer = 1 << 20};
	struct fcapi_answer *a = malloc(sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->body = body;
	a->body_len = blen;
	r = fcapi_exchange(fd, &c, a);
	*status = a->status;
	free(a);
	if (r < 0 && *s->c->stop)
		return -EINTR;
	if (r < 0)
		return failed(s, r, why, len, "%s %s: %s", method, path,
			      r == -EPROTO ? "no HTTP answer" : strerror(-r));
	return 0;
}

static int registration(struct bserve *s, int fd, char *why, size_t len)
{
	const struct bserve_cfg *c = s->c;
	char *fn = NULL, body[1024], msg[512];
	int status = 0, r;

	if ((r = bserve_function_json(c, &fn)) < 0) {
		snprintf(why, len, "out of memory");
		return r;
	}
	r = call(s, fd, "PUT", "/functions/" BSERVE_FN, fn,
		 now_us() + (c->timeout_s + 30) * 1000000ull, &status, body, sizeof(body), why,
		 len);
	free(fn);
	if (r < 0)
		return r;
	if (status != 201) {
		/* its answer says why; the log's last line would not */
		fcapi_fault(body, msg, sizeof(msg));
		snprintf(why, len, "registering the function gave %d: %s", status, msg);
		return -EIO;
	}
	return 0;
}

/* Until c->concurrency warm VMs are ready, asking every 20 ms. */
static int warm_pool(struct bserve *s, int fd, char *why, size_t len)
{
	const struct bserve_cfg *c = s->c;
	uint64_t deadline = now_us() + c->timeout_s * 1000000ull;
	char *body = malloc(65536);
	unsigned ready = 0;
	int status, r;

	if (!body)
		return -ENOMEM;
	for (;;) {
		if ((r = call(s, fd, "GET", "/functions/" BSERVE_FN, NULL, deadline + 5000000,
			      &status, body, 65536, why, len)) < 0)
			break;
		if (status != 200 || bserve_pool_ready(body, &ready) < 0) {
			r = failed(s, -EIO, why, len,
				   "GET /functions/" BSERVE_FN " gave %d: %.100s", status, body);
			break;
		}
		if (ready >= c->concurrency)
			break;
		if (*c->stop) {
			r = -EINTR;
			break;
		}
		if (now_us() >= deadline) {
			r = failed(s, -ETIMEDOUT, why, len,
				   "%u of the %u warm VMs ready after %u s (--timeout)", ready,
				   c->concurrency, c->timeout_s);
			break;
		}
		usleep(20000);
	}
	free(body);
	return r;
}

int bserve_start(const struct bserve_cfg *c, struct bserve **out, char *why, size_t len)
{
	struct bserve *s;
	int fd = -1, r;

	*out = NULL;
	why[0] = '\0';
	if (strlen(c->dir) > BSERVE_DIR_MAX) {
		snprintf(why, len, "%s: too long for flint serve's state (VM sockets); set TMPDIR",
			 c->dir);
		return -ENAMETOOLONG;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return -ENOMEM;
	s->c = c;
	s->pid = -1;
	snprintf(s->sock, sizeof(s->sock), "%s/serve.sock", c->dir);
	snprintf(s->state, sizeof(s->state), "%s/state", c->dir);
	snprintf(s->log, sizeof(s->log), "%s/serve.log", c->dir);
	if ((r = spawn(s, why, len)) < 0 || (r = dial(s, now_us() + 30000000, &fd, why, len)) < 0 ||
	    (r = registration(s, fd, why, len)) < 0 || (r = warm_pool(s, fd, why, len)) < 0) {
		char ignored[8];

		close_fd(&fd);
		bserve_stop(s, ignored, sizeof(ignored));
		return r;
	}
	close_fd(&fd);
	*out = s;
	return 0;
}

int bserve_stop(struct bserve *s, char *why, size_t len)
{
	uint64_t deadline;
	int st = 0, r = 0;

	if (!s)
		return 0;
	why[0] = '\0';
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		deadline = now_us() + BSERVE_STOP_S * 1000000ull;
		while (!ended(s, &st) && now_us() < deadline)
			usleep(10000);
		if (s->pid > 0) {
			kill(-s->pid, SIGKILL);
			while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
				;
			s->pid = -1;
			if (s->c->pid)
				*s->c->pid = 0;
			r = failed(s, -EIO, why, len,
				   "flint serve did not stop within %d s of SIGTERM: its "
				   "process group killed",
				   BSERVE_STOP_S);
		} else if (status_code(st)) {
			r = failed(s, -EIO, why, len, "flint serve ended with status %d",
				   status_code(st));
		}
	}
	/* flint serve removes its socket and state; what is left is ours. */
	unlink(s->sock);
	rmdir(s->state);
	unlink(s->log);
	free(s);
	return r;
}

/* ----- the requests ----- */

struct load {
	const struct bserve_load *l;
	struct bench_record *out;
	atomic_uint next, sent;
};

/* One request on *fd (dialled when -1) into rec. */
static void one(const struct bserve_load *l, int *fd, struct fcapi_answer *a,
		struct bench_record *rec)
{
	struct fcapi_call c = {.method = "POST",
			       .path = l->path,
			       .content_type = "application/octet-stream",
			       .accept = "*/*",
			       .body = l->body,
			       .body_len = l->body ? strlen(l->body) : 0,
			       .max_answer = SIZE_MAX};
	char outcome[32] = "", msg[128];
	uint64_t t0;
	int r;

	bench_record_init(rec, "flint");
	/* A lane's connection, kept alive; dialled again after a close. */
	if (*fd < 0 && (r = fcapi_connect(l->sock, now_us(), fd)) < 0) {
		snprintf(rec->why, sizeof(rec->why), "cannot connect to flint serve: %s",
			 r == -ETIMEDOUT ? "not listening" : strerror(-r));
		return;
	}
	t0 = now_us();
	c.deadline_us = t0 + (l->timeout_s + 5) * 1000000ull;
	r = fcapi_exchange(*fd, &c, a);
	uint64_t done = now_us();
	if (r < 0 || a->close)
		close_fd(fd);
	if (r < 0) {
		snprintf(rec->why, sizeof(rec->why), "the request: %s",
			 r == -EPROTO	   ? "no HTTP answer (or a malformed one)"
			 : r == -ETIMEDOUT ? "no answer in time (--timeout)"
					   : strerror(-r));
		return;
	}
	if (a->first_byte_us)
		rec->phase_us[BP_FIRST_RESPONSE] = a->first_byte_us - t0;
	rec->phase_us[BP_RESPONSE] = done - t0;
	if (a->status != 200) {
		if (fcapi_header(a, "X-Flint-Outcome", outcome, sizeof(outcome)) < 0)
			snprintf(outcome, sizeof(outcome), "-");
		fcapi_fault(a->body, msg, sizeof(msg));
		snprintf(rec->why, sizeof(rec->why), "status %d, outcome %s: %.80s", a->status,
			 outcome, msg);
		return;
	}
	if (l->expect && (a->body_bytes != strlen(l->expect) || strcmp(a->body, l->expect))) {
		snprintf(rec->why, sizeof(rec->why), "answered '%.40s' (%llu bytes), not '%.30s'",
			 a->body, (unsigned long long)a->body_bytes, l->expect);
		return;
	}
	rec->ok = true;
}

static void *lane(void *arg)
{
	struct load *ld = arg;
	const struct bserve_load *l = ld->l;
	struct fcapi_answer *a = malloc(sizeof(*a));
	static const size_t keep = 256;
	char *body = malloc(keep);
	int fd = -1;

	if (!a || !body) {
		free(a);
		free(body);
		return (void *)(intptr_t)-ENOMEM;
	}
	a->body = body;
	a->body_len = keep;
	for (;;) {
		if (*l->stop)
			break;
		unsigned k = atomic_fetch_add(&ld->next, 1);
		if (k >= l->n)
			break;
		one(l, &fd, a, &ld->out[k]);
		atomic_fetch_add(&ld->sent, 1);
	}
	close_fd(&fd);
	free(a);
	free(body);
	return NULL;
}

int bserve_load_run(const struct bserve_load *l, struct bench_record *out, size_t *nout,
		    uint64_t *wall_us)
{
	pthread_t t[256];
	struct load ld = {.l = l, .out = out};
	unsigned started = 0, lanes = l->concurrency;
	uint64_t t0 = now_us();
	int ret = 0;

	*nout = 0;
	*wall_us = 0;
	if (!lanes || lanes > ARRAY_SIZE(t))
		return -EINVAL;
	if (lanes > l->n)
		lanes = l->n;
	for (; started < lanes; started++) {
		int e = pthread_create(&t[started], NULL, lane, &ld);

		if (e) {
			ret = -e;
			break;
		}
	}
	for (unsigned i = 0; i < started; i++) {
		void *v;

		pthread_join(t[i], &v);
		if (v && !ret)
			ret = (int)(intptr_t)v;
	}
	*wall_us = now_us() - t0;
	/* The requests taken were all sent, in order, and all recorded. */
	*nout = atomic_load(&ld.sent);
	if (!ret && *l->stop)
		ret = -EINTR;
	return ret;
}
