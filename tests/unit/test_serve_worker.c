/* runner/serve/worker.c against fake flint programs: a shell script the test
 * writes stands in for flint run. It records its argv (when FAKE_ARGS names
 * a file), waits for the go byte on fd 3 when given --wait-fd (its end
 * without one: exit 0, as flint does), then execs the words after "--", so
 * each test's command says what the "VM" does: echo its stdin, write
 * stderr, exit N, sleep for ever, leave a grandchild behind, kill itself.
 * Given --status-fd N it runs the command instead, writes flint run's
 * status line on fd N, then "tears down" for FAKE_TEARDOWN seconds with
 * its stdout and stderr still open, as flint does.
 * SIGPIPE is at its default in these tests: a write to a closed pipe that
 * raised it would kill the test. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve/worker.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})

static char dir[64], fake[96], args_file[96];
static char env_args[128];
static char *fake_env[] = {env_args, "PATH=/usr/local/bin:/usr/bin:/bin", NULL};

static const char fake_flint[] =
    "#!/bin/sh\n"
    "[ -n \"$FAKE_ARGS\" ] && printf '%s\\n' \"$@\" >\"$FAKE_ARGS\"\n"
    "wait=\n"
    "sfd=\n"
    "while [ $# -gt 0 ]; do\n"
    "\tcase $1 in\n"
    "\t--wait-fd) wait=$2; shift ;;\n"
    "\t--status-fd) sfd=$2; shift ;;\n"
    "\t--) shift; break ;;\n"
    "\tesac\n"
    "\tshift\n"
    "done\n"
    "if [ -n \"$wait\" ]; then\n"
    "\tb=$(dd bs=1 count=1 <&3 2>/dev/null)\n"
    "\t[ -n \"$b\" ] || exit 0\n"
    "fi\n"
    "if [ -n \"$sfd\" ]; then\n"
    "\t\"$@\" 3<&- 4>&-\n"
    "\tst=$?\n"
    "\tsent=\"${FAKE_SENT:+ sent=$FAKE_SENT}${FAKE_BY:+ command=$FAKE_BY}\"\n"
    "\teval \"printf 'status=%d ready_ms=1.5 command_ms=2.5%s\\\\n' $st \\\"$sent\\\" >&$sfd\"\n"
    "\teval \"exec $sfd>&-\"\n"
    "\tsleep \"${FAKE_TEARDOWN:-0}\"\n"
    "\texit $st\n"
    "fi\n"
    "exec \"$@\" 3<&-\n";

static void setup(void)
{
	FILE *f;

	signal(SIGPIPE, SIG_DFL);
	snprintf(dir, sizeof(dir), "/tmp/flint-unit-worker-%d", getpid());
	mkdir(dir, 0700);
	snprintf(fake, sizeof(fake), "%s/flint", dir);
	snprintf(args_file, sizeof(args_file), "%s/args", dir);
	snprintf(env_args, sizeof(env_args), "FAKE_ARGS=%s", args_file);
	cr_assert_not_null(f = fopen(fake, "w"));
	fputs(fake_flint, f);
	fclose(f);
	cr_assert_eq(chmod(fake, 0755), 0);
}

static struct worker *last;

static void teardown(void)
{
	char cmd[128];

	worker_destroy(last);
	last = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(worker, .init = setup, .fini = teardown, .timeout = 30);

static struct worker_params params(enum worker_kind kind, char *const *argv)
{
	return (struct worker_params){
	    .kind = kind,
	    .flint = fake,
	    .state = "fn.state",
	    .mem = "fn.mem",
	    .argv = argv,
	    .envp = fake_env,
	};
}

static double secs(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own */
}

/* ---- request bodies and responses ---- */

/* A body from a buffer, handed out in pieces of at most `piece`. */
struct body {
	const uint8_t *data;
	size_t len, off, piece;
	int fail_at; /* in() returns -ECONNRESET once off reaches it; -1 never */
};

static ssize_t body_in(void *ctx, void *buf, size_t len)
{
	struct body *b = ctx;
	size_t n = b->len - b->off;

	if (b->fail_at >= 0 && b->off >= (size_t)b->fail_at)
		return -ECONNRESET;
	if (b->piece && n > b->piece)
		n = b->piece;
	if (n > len)
		n = len;
	memcpy(buf, b->data + b->off, n);
	b->off += n;
	return (ssize_t)n;
}

/* What the command wrote to stdout, gathered; fail_after: out() refuses
 * once it holds that much (-1 never). */
struct sink {
	struct body in;
	uint8_t *data;
	size_t len, cap;
	long fail_after;
};

static ssize_t sink_in(void *ctx, void *buf, size_t len)
{
	return body_in(&((struct sink *)ctx)->in, buf, len);
}

static int sink_out(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;

	if (s->fail_after >= 0 && s->len >= (size_t)s->fail_after)
		return -EPIPE;
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		cr_assert_not_null(s->data = realloc(s->data, s->cap));
	}
	memcpy(s->data + s->len, buf, len);
	s->len += len;
	return 0;
}

static void sink_init(struct sink *s, const void *body, size_t len)
{
	*s = (struct sink){.in = {.data = body, .len = len, .fail_at = -1}, .fail_after = -1};
}

/* The last worker run() waited for (`last`): res->err points into it, so
 * it is destroyed by the next run() or at the end of the test. */

/* Spawns p, pumps the body through it, waits: the result, stdout in *s. */
static int run(struct worker_params *p, struct sink *s, struct worker_result *res)
{
	struct worker *w;
	int r;

	worker_destroy(last);
	last = NULL;
	cr_assert_eq(worker_spawn(&w, p), 0);
	r = worker_pump(w, s->in.data ? sink_in : NULL, sink_out, s);
	cr_assert_eq(worker_wait(w, res), 0);
	last = w;
	return r;
}

static bool out_is(const struct sink *s, const char *text)
{
	return s->len == strlen(text) && !memcmp(s->data, text, s->len);
}

/* Gone, or a zombie about to be reaped by init: within 3 s. */
static bool process_dies(pid_t pid)
{
	for (int i = 0; i < 300; i++) {
		char path[64], stat[256] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		if (!(f = fopen(path, "r")))
			return true;
		if (!fgets(stat, sizeof(stat), f))
			stat[0] = '\0';
		fclose(f);
		char *close_paren = strrchr(stat, ')');
		if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z')
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static pid_t read_pid(const char *path)
{
	FILE *f;
	int pid = 0;

	for (int i = 0; i < 200 && pid <= 0; i++) {
		if ((f = fopen(path, "r"))) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid <= 0)
			usleep(10 * 1000);
	}
	return pid;
}

/* ---- the argv ---- */

static void expect_argv(char **got, char *const *want)
{
	size_t i;

	for (i = 0; want[i]; i++) {
		cr_assert_not_null(got[i], "argv ends at %zu, expected '%s'", i, want[i]);
		cr_assert_str_eq(got[i], want[i], "argv[%zu]", i);
	}
	cr_assert_null(got[i], "argv goes on past %zu: '%s'", i, got[i]);
}

Test(worker, argv_for_each_kind)
{
	struct worker_params p = {
	    .kind = WORKER_RESTORE,
	    .flint = "/usr/bin/flint",
	    .state = "/f/s",
	    .mem = "/f/m",
	    .argv = ARGV("cat", "-"),
	};
	char **v;

	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("/usr/bin/flint", "run", "--restore", "/f/s", "--mem-file", "/f/m",
			    "--", "cat", "-"));
	worker_argv_free(v);

	p.kind = WORKER_WARM;
	p.timeout_s = 30;
	p.opts = ARGV("--workset", "/f/ws", "--timings");
	p.launcher = ARGV("/usr/bin/flint-jail", "--uid", "1000", "--");
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("/usr/bin/flint-jail", "--uid", "1000", "--", "/usr/bin/flint", "run",
			    "--restore", "/f/s", "--mem-file", "/f/m", "--timeout", "30",
			    "--wait-fd", "3", "--workset", "/f/ws", "--timings", "--", "cat", "-"));
	worker_argv_free(v);

	/* Registering: no command needed. */
	p = (struct worker_params){
	    .kind = WORKER_SAVE,
	    .flint = "flint",
	    .state = "s",
	    .mem = "m",
	    .opts = ARGV("--kernel", "k", "--mem", "256"),
	};
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("flint", "run", "--save-snapshot", "s", "--save-mem", "m", "--kernel",
			    "k", "--mem", "256"));
	worker_argv_free(v);
	p.argv = ARGV("python3", "-c", "import json");
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("flint", "run", "--save-snapshot", "s", "--save-mem", "m", "--kernel",
			    "k", "--mem", "256", "--", "python3", "-c", "import json"));
	worker_argv_free(v);
	worker_argv_free(NULL);
}

Test(worker, argv_refusals)
{
	struct worker_params ok = {
	    .kind = WORKER_RESTORE, .flint = "f", .state = "s", .mem = "m", .argv = ARGV("x")};
	struct worker_params p;
	struct worker *w = (struct worker *)1;
	char **v = (char **)1;

	p = ok;
	p.flint = NULL;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	cr_assert_null(v);
	p.flint = "";
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p = ok;
	p.state = NULL;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p = ok;
	p.mem = NULL;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p = ok;
	p.argv = NULL;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p.argv = ARGV(NULL);
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p.kind = WORKER_WARM;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p = ok;
	p.kind = (enum worker_kind)7;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	/* worker_spawn refuses the same, with nothing started. */
	p.kind = WORKER_RESTORE;
	p.argv = NULL;
	cr_assert_eq(worker_spawn(&w, &p), -EINVAL);
	cr_assert_null(w);
}

/* The command's environment and working directory, --save-after for a
 * prepare command, and an attached worker (no VM of its own). */
Test(worker, argv_env_workdir_save_after_attach)
{
	struct worker_params p = {
	    .kind = WORKER_RESTORE,
	    .flint = "flint",
	    .state = "s",
	    .mem = "m",
	    .timeout_s = 5,
	    .opts = ARGV("--timings"),
	    .argv = ARGV("sh", "-c", "echo $A"),
	    .env = ARGV("A=1", "B=x y=z"),
	    .workdir = "/srv",
	};
	char **v;

	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("flint", "run", "--restore", "s", "--mem-file", "m", "--timeout", "5",
			    "--timings", "--env", "A=1", "--env", "B=x y=z", "--workdir", "/srv",
			    "--", "sh", "-c", "echo $A"));
	worker_argv_free(v);
	p.kind = WORKER_WARM;
	p.env = ARGV(NULL); /* empty: none */
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("flint", "run", "--restore", "s", "--mem-file", "m", "--timeout", "5",
			    "--wait-fd", "3", "--timings", "--workdir", "/srv", "--", "sh", "-c",
			    "echo $A"));
	worker_argv_free(v);

	/* Registering with a prepare command: saved only if it exits 0. */
	p = (struct worker_params){
	    .kind = WORKER_SAVE,
	    .flint = "flint",
	    .state = "s",
	    .mem = "m",
	    .opts = ARGV("--mem", "256"),
	    .argv = ARGV("python3", "-c", "import json"),
	    .env = ARGV("PYTHONDONTWRITEBYTECODE=1"),
	    .workdir = "/app",
	    .save_after = true,
	};
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("flint", "run", "--save-snapshot", "s", "--save-mem", "m", "--mem",
			    "256", "--save-after", "--env", "PYTHONDONTWRITEBYTECODE=1",
			    "--workdir", "/app", "--", "python3", "-c", "import json"));
	worker_argv_free(v);
	/* Without a command: nothing runs, so no --save-after, --env or
	 * --workdir (flint run refuses them there). */
	p.argv = NULL;
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(
	    v, ARGV("flint", "run", "--save-snapshot", "s", "--save-mem", "m", "--mem", "256"));
	worker_argv_free(v);

	/* Attached: the running VM's socket, no files of its own. */
	p = (struct worker_params){
	    .kind = WORKER_ATTACH,
	    .flint = "/usr/bin/flint",
	    .launcher = ARGV("/usr/bin/flint-jail", "--"),
	    .uds = "/run/flint-serve/fn/vm3.vsock",
	    .timeout_s = 9,
	    .opts = ARGV("--timings"),
	    .argv = ARGV("cat"),
	    .env = ARGV("K=V"),
	    .workdir = "/tmp",
	};
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("/usr/bin/flint-jail", "--", "/usr/bin/flint", "run", "--attach",
			    "/run/flint-serve/fn/vm3.vsock", "--timeout", "9", "--timings", "--env",
			    "K=V", "--workdir", "/tmp", "--", "cat"));
	worker_argv_free(v);
	/* The state and memory files are not an attach's. */
	p.state = "s";
	p.mem = "m";
	p.launcher = NULL;
	p.opts = NULL;
	p.env = NULL;
	p.workdir = NULL;
	p.timeout_s = 0;
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("/usr/bin/flint", "run", "--attach", "/run/flint-serve/fn/vm3.vsock",
			    "--", "cat"));
	worker_argv_free(v);
}

Test(worker, argv_refusals_env_save_after_attach)
{
	struct worker_params ok = {
	    .kind = WORKER_ATTACH, .flint = "f", .uds = "/u", .argv = ARGV("x")};
	struct worker_params p;
	struct worker *w = (struct worker *)1;
	char **v = (char **)1;

	p = ok;
	cr_assert_eq(worker_argv(&p, &v), 0);
	worker_argv_free(v);
	p.uds = NULL;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL, "attach without a socket");
	cr_assert_null(v);
	p.uds = "";
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p = ok;
	p.argv = NULL;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL, "attach without a command");
	p = ok;
	p.env = ARGV("A=1", "NOEQUALS");
	cr_assert_eq(worker_argv(&p, &v), -EINVAL, "an env entry without '='");
	p = ok;
	p.save_after = true;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL, "--save-after is a save's");
	p.kind = WORKER_RESTORE;
	p.state = "s";
	p.mem = "m";
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p.kind = WORKER_WARM;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	/* A restore still needs its files. */
	p = ok;
	p.kind = WORKER_RESTORE;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL, "restore without files");
	/* worker_spawn refuses the same, with nothing started. */
	p = ok;
	p.uds = NULL;
	cr_assert_eq(worker_spawn(&w, &p), -EINVAL);
	cr_assert_null(w);
}

/* The fake got the argv the module built, through a launcher, with the
 * environment given. */
Test(worker, spawned_argv_through_a_launcher)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("true"));
	struct worker_result res;
	struct sink s;
	char got[512] = "";
	FILE *f;

	p.launcher = ARGV("/usr/bin/env");
	p.timeout_s = 7;
	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK, "%s: %s", worker_outcome_name(res.outcome), res.err);
	cr_assert_not_null(f = fopen(args_file, "r"));
	size_t n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = '\0';
	fclose(f);
	cr_assert_str_eq(got,
			 "run\n--restore\nfn.state\n--mem-file\nfn.mem\n--timeout\n7\n--\ntrue\n");
	free(s.data);
}

/* ---- outcomes ---- */

Test(worker, exit_statuses_map_to_outcomes)
{
	static const struct {
		int st;
		enum worker_outcome o;
		int detail;
	} map[] = {
	    {0, WORKER_OK, 0},
	    {1, WORKER_EXIT, 1},
	    {121, WORKER_EXIT, 121},
	    {122, WORKER_CRASH, 122},
	    {123, WORKER_LOST, 123},
	    {124, WORKER_TIMEOUT, 124},
	    {125, WORKER_FLINT_ERROR, 125},
	    {126, WORKER_EXIT, 126},
	    {127, WORKER_EXIT, 127},
	    {128, WORKER_EXIT, 128},
	    {129, WORKER_SIGNAL, 1},
	    {137, WORKER_SIGNAL, 9},
	    {192, WORKER_SIGNAL, 64},
	    {193, WORKER_EXIT, 193},
	    {255, WORKER_EXIT, 255},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		int d = -1;

		cr_assert_eq(worker_outcome_of(map[i].st, &d), map[i].o, "status %d", map[i].st);
		cr_assert_eq(d, map[i].detail, "status %d", map[i].st);
	}
	cr_assert_eq(worker_outcome_of(3, NULL), WORKER_EXIT);
	cr_assert_str_eq(worker_outcome_name(WORKER_OK), "ok");
	cr_assert_str_eq(worker_outcome_name(WORKER_FLINT_ERROR), "flint_error");
	cr_assert_str_eq(worker_outcome_name(WORKER_KILLED), "killed");
	cr_assert_str_eq(worker_outcome_name((enum worker_outcome)99), "?");
}

/* early_status: flint run --status-fd 4; the outcome, stdout and stderr
 * are there as soon as the status line is, while flint still "tears
 * down" (2 s here); worker_wait then reaps it with the same outcome. */
Test(worker, early_status_before_the_exit)
{
	static char teardown_env[] = "FAKE_TEARDOWN=2";
	char *env[] = {env_args, teardown_env, "PATH=/usr/local/bin:/usr/bin:/bin", NULL};
	struct worker_params p =
	    params(WORKER_RESTORE, ARGV("sh", "-c", "echo out; echo err >&2; exit 3"));
	struct worker_result res;
	char buf[64], args[512] = "";
	size_t len = 0;
	ssize_t n;
	FILE *f;

	p.early_status = true;
	p.envp = env;
	cr_assert_eq(worker_spawn(&last, &p), 0);
	double t0 = secs();
	while ((n = worker_read(last, NULL, NULL, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	cr_assert_eq(n, 0);
	cr_assert_lt(secs() - t0, 1.5, "stdout ended only with flint's exit");
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(buf, "out\n", 4), 0);
	cr_assert(worker_early(last, &res));
	cr_assert(res.early);
	cr_assert_eq(res.outcome, WORKER_EXIT);
	cr_assert_eq(res.status, 3);
	cr_assert_str_eq(res.err, "err\n");
	cr_assert_float_eq(res.ready_ms, 1.5, 1e-9);
	cr_assert_float_eq(res.command_ms, 2.5, 1e-9);
	cr_assert_not(worker_exited(last), "flint had 2 s of teardown left");
	cr_assert_eq(worker_wait(last, &res), 0);
	cr_assert_not(res.early);
	cr_assert_eq(res.outcome, WORKER_EXIT);
	cr_assert_eq(res.status, 3);
	cr_assert_float_eq(res.command_ms, 2.5, 1e-9);
	cr_assert_geq(secs() - t0, 1.9);
	cr_assert_not_null(f = fopen(args_file, "r"));
	len = fread(args, 1, sizeof(args) - 1, f);
	fclose(f);
	args[len] = '\0';
	cr_assert_not_null(strstr(args, "--status-fd\n4\n"), "%s", args);

	/* Without it, no early outcome. */
	worker_destroy(last);
	p = params(WORKER_RESTORE, ARGV("true"));
	cr_assert_eq(worker_spawn(&last, &p), 0);
	while ((n = worker_read(last, NULL, NULL, buf, sizeof(buf))) > 0)
		;
	cr_assert_not(worker_early(last, &res));
	cr_assert_eq(worker_wait(last, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	cr_assert_float_eq(res.ready_ms, -1, 1e-9);
}

/* The status line's sent=0 (flint: the command never reached the guest)
 * is the result's unsent, early and once reaped; sent=1 or none is not. */
Test(worker, status_line_sent)
{
	static const struct {
		const char *env;
		bool unsent;
	} runs[] = {{"FAKE_SENT=0", true}, {"FAKE_SENT=1", false}, {"FAKE_NONE=", false}};
	struct worker_result res;
	char buf[16];

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		char *env[] = {env_args, (char *)runs[i].env, "PATH=/usr/local/bin:/usr/bin:/bin",
			       NULL};
		struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", "exit 122"));

		p.early_status = true;
		p.envp = env;
		cr_assert_eq(worker_spawn(&last, &p), 0);
		while (worker_read(last, NULL, NULL, buf, sizeof(buf)) > 0)
			;
		cr_assert(worker_early(last, &res));
		cr_assert_eq(res.outcome, WORKER_CRASH);
		cr_assert_eq(res.unsent, runs[i].unsent, "%s", runs[i].env);
		cr_assert_eq(worker_wait(last, &res), 0);
		cr_assert_eq(res.outcome, WORKER_CRASH);
		cr_assert_eq(res.unsent, runs[i].unsent, "%s, reaped", runs[i].env);
		worker_destroy(last);
		last = NULL;
	}
}

/* A command's own exit status of 122 to 125, which the status line says
 * is the command's (command=1), is its exit, not flint run's crash, lost
 * agent, timeout or error: before the VM is torn down and once reaped. */
Test(worker, a_commands_own_122_to_125_are_its_exit)
{
	char env_by[] = "FAKE_BY=1", env_sent[] = "FAKE_SENT=1";
	char *env[] = {env_args, env_sent, env_by, "PATH=/usr/local/bin:/usr/bin:/bin", NULL};
	struct worker_result res;
	char buf[16], cmd[16];

	for (int st = 122; st <= 125; st++) {
		snprintf(cmd, sizeof(cmd), "exit %d", st);
		struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", cmd));

		p.early_status = true;
		p.envp = env;
		cr_assert_eq(worker_spawn(&last, &p), 0);
		while (worker_read(last, NULL, NULL, buf, sizeof(buf)) > 0)
			;
		cr_assert(worker_early(last, &res));
		cr_assert_eq(res.outcome, WORKER_EXIT, "status %d", st);
		cr_assert_eq(res.status, st);
		cr_assert_eq(worker_wait(last, &res), 0);
		cr_assert_eq(res.outcome, WORKER_EXIT, "status %d, reaped", st);
		cr_assert_eq(res.status, st);
		worker_destroy(last);
		last = NULL;
	}
	/* command=0: flint run's own 122. */
	env_by[sizeof(env_by) - 2] = '0';
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", "exit 122"));

	p.envp = env;
	cr_assert_eq(worker_spawn(&last, &p), 0);
	while (worker_read(last, NULL, NULL, buf, sizeof(buf)) > 0)
		;
	cr_assert_eq(worker_wait(last, &res), 0);
	cr_assert_eq(res.outcome, WORKER_CRASH);
}

/* The fake flint exits with each of flint run's statuses. */
Test(worker, flint_exit_statuses)
{
	static const struct {
		const char *code;
		enum worker_outcome o;
		int status;
	} runs[] = {
	    {"0", WORKER_OK, 0},	  {"3", WORKER_EXIT, 3},
	    {"122", WORKER_CRASH, 122},	  {"123", WORKER_LOST, 123},
	    {"124", WORKER_TIMEOUT, 124}, {"125", WORKER_FLINT_ERROR, 125},
	    {"127", WORKER_EXIT, 127},	  {"130", WORKER_SIGNAL, 2},
	};

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		char cmd[64];
		struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", cmd));
		struct worker_result res;
		struct sink s;

		snprintf(cmd, sizeof(cmd), "echo out; exit %s", runs[i].code);
		sink_init(&s, NULL, 0);
		cr_assert_eq(run(&p, &s, &res), 0);
		cr_assert_eq(res.outcome, runs[i].o, "exit %s: %s", runs[i].code,
			     worker_outcome_name(res.outcome));
		cr_assert_eq(res.status, runs[i].status, "exit %s", runs[i].code);
		cr_assert(WIFEXITED(res.wait_status));
		cr_assert_not(res.deadline);
		cr_assert(out_is(&s, "out\n"), "exit %s", runs[i].code);
		free(s.data);
	}
}

/* flint itself dies of a signal: KILLED with that signal. */
Test(worker, flint_killed_by_a_signal)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", "kill -TERM $$"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_eq(res.outcome, WORKER_KILLED, "%s", worker_outcome_name(res.outcome));
	cr_assert_eq(res.status, SIGTERM);
	cr_assert_not(res.deadline);
	free(s.data);
}

/* A missing flint: spawn fails with exec's error, nothing left. */
Test(worker, missing_flint)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("true"));
	struct worker *w;
	int fds = count_fds();

	p.flint = "/nonexistent/flint";
	cr_assert_eq(worker_spawn(&w, &p), -ENOENT);
	cr_assert_null(w);
	cr_assert_eq(count_fds(), fds);
}

/* ---- streaming ---- */

static uint8_t *pattern(size_t len)
{
	uint8_t *b = malloc(len);

	cr_assert_not_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i * 7 + i / 251);
	return b;
}

/* 8 MiB through cat, both ways at once: far more than a pipe holds, so it
 * only finishes if stdin is written while stdout is read. */
Test(worker, large_body_both_ways)
{
	size_t len = 8 << 20;
	uint8_t *body = pattern(len);
	struct worker_params p = params(WORKER_RESTORE, ARGV("cat"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, body, len);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK, "%s: %s", worker_outcome_name(res.outcome), res.err);
	cr_assert_eq(s.len, len);
	cr_assert(!memcmp(s.data, body, len), "stdout differs from the body");
	free(s.data);
	free(body);
}

/* A command that writes all its output before reading its input (or the
 * reverse) does not deadlock either. */
Test(worker, output_before_input_and_input_before_output)
{
	size_t len = 1 << 20;
	uint8_t *body = pattern(len);
	struct worker_params p =
	    params(WORKER_RESTORE,
		   ARGV("sh", "-c", "head -c 1048576 /dev/zero; cat >/dev/null; echo end"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, body, len);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	cr_assert_eq(s.len, len + 4);
	cr_assert(!memcmp(s.data + len, "end\n", 4));
	free(s.data);

	p = params(WORKER_RESTORE, ARGV("sh", "-c", "wc -c; head -c 1048576 /dev/zero"));
	sink_init(&s, body, len);
	s.in.piece = 1000; /* in() in small pieces */
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	cr_assert_eq(s.len, 8 + len, "%zu", s.len);
	cr_assert(!memcmp(s.data, "1048576\n", 8));
	free(s.data);
	free(body);
}

/* worker_read hands out stdout as it comes, in the caller's buffer. */
Test(worker, worker_read_pieces)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", "read x; echo got:$x"));
	struct body b = {.data = (const uint8_t *)"abc\n", .len = 4, .fail_at = -1};
	struct worker_result res;
	struct worker *w;
	char buf[3], all[32] = "";
	ssize_t n;
	size_t len = 0;

	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_gt(worker_pid(w), 0);
	while ((n = worker_read(w, body_in, &b, buf, sizeof(buf))) > 0) {
		cr_assert_leq(n, 3);
		memcpy(all + len, buf, (size_t)n);
		len += (size_t)n;
	}
	cr_assert_eq(n, 0);
	cr_assert_str_eq(all, "got:abc\n");
	cr_assert_eq(worker_read(w, body_in, &b, buf, sizeof(buf)), 0, "after the end: 0 again");
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	/* After worker_wait, nothing more to read. */
	cr_assert_eq(worker_read(w, NULL, NULL, buf, sizeof(buf)), -EINVAL);
	worker_destroy(w);
}

/* No body: the command reads end of file at once. */
Test(worker, no_body_is_eof)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("wc", "-c"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert(out_is(&s, "0\n"));
	free(s.data);
}

/* A command that closes its stdin with most of a big body unwritten: the
 * rest is dropped, no SIGPIPE (at its default here) kills the test. */
Test(worker, command_not_reading_stdin)
{
	size_t len = 4 << 20;
	uint8_t *body = pattern(len);
	struct worker_params p =
	    params(WORKER_RESTORE, ARGV("sh", "-c", "exec 0<&-; sleep 0.2; echo done"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, body, len);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	cr_assert(out_is(&s, "done\n"));
	cr_assert_lt(s.in.off, len, "the whole body went into a closed stdin");
	free(s.data);
	free(body);
}

/* ---- stderr ---- */

Test(worker, stderr_kept_up_to_the_cap)
{
	struct worker_params p =
	    params(WORKER_RESTORE,
		   ARGV("sh", "-c",
			"head -c 200000 /dev/zero | tr '\\0' e >&2; echo done; echo tail >&2"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert(out_is(&s, "done\n"));
	cr_assert_eq(res.err_len, WORKER_STDERR_CAP);
	cr_assert_eq(res.err_total, 200005);
	cr_assert(res.err_truncated);
	cr_assert_eq(strlen(res.err), WORKER_STDERR_CAP, "NUL-terminated at the cap");
	cr_assert_eq(res.err[0], 'e');
	cr_assert_eq(res.err[WORKER_STDERR_CAP - 1], 'e');
	free(s.data);

	/* A cap of one's own; what fits is kept whole. */
	p = params(WORKER_RESTORE, ARGV("sh", "-c", "echo one >&2; echo two >&2"));
	p.stderr_cap = 100;
	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_str_eq(res.err, "one\ntwo\n");
	cr_assert_eq(res.err_len, 8);
	cr_assert_eq(res.err_total, 8);
	cr_assert_not(res.err_truncated);
	free(s.data);
	p.stderr_cap = 5;
	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_str_eq(res.err, "one\nt");
	cr_assert(res.err_truncated);
	cr_assert_eq(res.err_total, 8);
	free(s.data);
}

/* ---- the deadline, leftovers, kills ---- */

/* The deadline kills the whole group: flint and the grandchild it left
 * sleeping. */
Test(worker, deadline_kills_the_process_group)
{
	char cmd[256], pidfile[128];
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", cmd));
	struct worker_result res;
	struct worker *w;
	struct sink s;
	double t0 = secs();

	snprintf(pidfile, sizeof(pidfile), "%s/grandchild", dir);
	snprintf(cmd, sizeof(cmd),
		 "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >%s; sleep 1000", pidfile);
	p.deadline_s = 1;
	p.timeout_s = 100; /* deadline_s wins */
	sink_init(&s, NULL, 0);
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_pump(w, NULL, sink_out, &s), -ETIMEDOUT);
	double took = secs() - t0;
	cr_assert(took >= 0.9 && took < 5, "the deadline came after %.2f s", took);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_TIMEOUT, "%s", worker_outcome_name(res.outcome));
	cr_assert(res.deadline);
	cr_assert(WIFSIGNALED(res.wait_status) && WTERMSIG(res.wait_status) == SIGKILL);
	pid_t gc = read_pid(pidfile);
	cr_assert_gt(gc, 0, "no grandchild pid");
	cr_assert(process_dies(gc), "the grandchild %d outlived the deadline", gc);
	worker_destroy(w);
	free(s.data);
}

/* flint exits while a process it left holds stdout open: the leftover is
 * killed, so stdout ends and the exchange finishes at once. */
Test(worker, leftovers_killed_when_flint_exits)
{
	char cmd[256], pidfile[128];
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", cmd));
	struct worker_result res;
	struct sink s;
	double t0 = secs();

	snprintf(pidfile, sizeof(pidfile), "%s/leftover", dir);
	snprintf(cmd, sizeof(cmd), "sleep 1000 & echo $! >%s; echo hi; exit 3", pidfile);
	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_lt(secs() - t0, 5);
	cr_assert_eq(res.outcome, WORKER_EXIT);
	cr_assert_eq(res.status, 3);
	cr_assert(out_is(&s, "hi\n"));
	pid_t gc = read_pid(pidfile);
	cr_assert_gt(gc, 0);
	cr_assert(process_dies(gc), "the leftover %d lives on", gc);
	free(s.data);
}

/* The deadline also holds in worker_wait (nobody reads stdout). */
Test(worker, deadline_in_wait)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("sleep", "1000"));
	struct worker_result res;
	struct worker *w;
	double t0 = secs();

	p.deadline_s = 1;
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert(secs() - t0 < 5);
	cr_assert_eq(res.outcome, WORKER_TIMEOUT);
	cr_assert(res.deadline);
	/* Again: the same result. */
	struct worker_result again;
	cr_assert_eq(worker_wait(w, &again), 0);
	cr_assert_eq(again.outcome, WORKER_TIMEOUT);
	cr_assert_eq(again.wait_status, res.wait_status);
	worker_destroy(w);
}

/* out() refuses (the client is gone): the group is killed. */
Test(worker, client_gone_kills)
{
	struct worker_params p =
	    params(WORKER_RESTORE, ARGV("sh", "-c", "while :; do echo y; done"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, NULL, 0);
	s.fail_after = 10000;
	cr_assert_eq(run(&p, &s, &res), -EPIPE);
	cr_assert_eq(res.outcome, WORKER_KILLED);
	cr_assert_eq(res.status, SIGKILL);
	free(s.data);
}

/* in() fails (the upload broke): the group is killed. */
Test(worker, body_error_kills)
{
	size_t len = 1 << 20;
	uint8_t *body = pattern(len);
	struct worker_params p = params(WORKER_RESTORE, ARGV("cat"));
	struct worker_result res;
	struct sink s;

	sink_init(&s, body, len);
	s.in.piece = 4096;
	s.in.fail_at = 100000;
	cr_assert_eq(run(&p, &s, &res), -ECONNRESET);
	cr_assert_eq(res.outcome, WORKER_KILLED, "%s %d: %s", worker_outcome_name(res.outcome),
		     res.status, res.err);
	free(s.data);
	free(body);
}

static void *hang_up_later(void *arg)
{
	usleep(300 * 1000);
	close(*(int *)arg);
	return NULL;
}

/* The HTTP client hangs up while the command is quiet (a socketpair for
 * its connection): worker_read ends at once rather than at the deadline,
 * the whole group killed, and the outcome says why. A next request
 * pipelined on the connection (bytes to read) is no hang-up. */
Test(worker, client_hang_up_ends_the_command)
{
	char cmd[256], pidfile[128];
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", cmd));
	struct worker_result res;
	struct worker *w;
	pthread_t t;
	char buf[16];
	int sv[2];

	snprintf(pidfile, sizeof(pidfile), "%s/grandchild", dir);
	snprintf(cmd, sizeof(cmd),
		 "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >%s; sleep 1000", pidfile);
	p.timeout_s = 100;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(write(sv[1], "GET / HTTP/1.1\r\n", 16), 16);
	cr_assert_eq(worker_spawn(&w, &p), 0);
	worker_watch_client(w, sv[0]);
	double t0 = secs();
	cr_assert_eq(pthread_create(&t, NULL, hang_up_later, &sv[1]), 0);
	cr_assert_eq(worker_read(w, NULL, NULL, buf, sizeof(buf)), -ECONNABORTED);
	double took = secs() - t0;
	pthread_join(t, NULL);
	cr_assert(took >= 0.25 && took < 3, "worker_read ended after %.2f s", took);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_CLIENT_GONE, "%s", worker_outcome_name(res.outcome));
	cr_assert_not(res.deadline);
	cr_assert(WIFSIGNALED(res.wait_status) && WTERMSIG(res.wait_status) == SIGKILL);
	cr_assert_str_eq(worker_outcome_name(WORKER_CLIENT_GONE), "client_gone");
	pid_t gc = read_pid(pidfile);
	cr_assert_gt(gc, 0, "no grandchild pid");
	cr_assert(process_dies(gc), "the grandchild %d outlived its client", gc);
	worker_destroy(w);
	close(sv[0]);
}

static void *kill_later(void *arg)
{
	usleep(200 * 1000);
	worker_kill(arg);
	return NULL;
}

/* worker_kill from another thread ends a pump in progress. */
Test(worker, kill_from_another_thread)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("sleep", "1000"));
	struct worker_result res;
	struct worker *w;
	struct sink s;
	pthread_t t;

	sink_init(&s, NULL, 0);
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(pthread_create(&t, NULL, kill_later, w), 0);
	cr_assert_eq(worker_pump(w, NULL, sink_out, &s), 0);
	pthread_join(t, NULL);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_KILLED);
	cr_assert_eq(res.status, SIGKILL);
	worker_kill(w); /* reaped: nothing */
	worker_destroy(w);
	free(s.data);
}

/* A worker given up without worker_wait (its thread gone): destroy kills
 * and reaps it. */
Test(worker, destroy_kills_and_reaps)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("sleep", "1000"));
	struct worker *w;
	pid_t pid;
	int st;

	cr_assert_eq(worker_spawn(&w, &p), 0);
	pid = worker_pid(w);
	worker_destroy(w);
	cr_assert_eq(waitpid(pid, &st, WNOHANG), -1, "not reaped");
	cr_assert_eq(errno, ECHILD);
	cr_assert_eq(kill(pid, 0), -1);
	worker_destroy(NULL);
}

/* ---- warm workers ---- */

Test(worker, warm_release)
{
	char marker[128], cmd[256];
	struct worker_params p = params(WORKER_WARM, ARGV("sh", "-c", cmd));
	struct worker_result res;
	struct worker *w;
	struct sink s;
	char buf[16];

	snprintf(marker, sizeof(marker), "%s/ran", dir);
	snprintf(cmd, sizeof(cmd), "touch %s; echo ran; cat", marker);
	p.deadline_s = 1; /* from the release, not the spawn */
	sink_init(&s, "abc", 3);
	cr_assert_eq(worker_spawn(&w, &p), 0);
	usleep(1300 * 1000);
	cr_assert_neq(access(marker, F_OK), 0, "the command ran before its release");
	cr_assert_not(worker_exited(w));
	cr_assert_eq(worker_read(w, NULL, NULL, buf, sizeof(buf)), -EINVAL, "read before release");
	cr_assert_eq(worker_release(w), 0);
	cr_assert_eq(worker_release(w), -EINVAL, "a second release");
	cr_assert_eq(worker_pump(w, sink_in, sink_out, &s), 0);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK, "%s: %s", worker_outcome_name(res.outcome), res.err);
	cr_assert(out_is(&s, "ran\nabc"));
	cr_assert_lt(res.run_ns, 1000000000ULL, "run_ns counts from the release");
	worker_destroy(w);
	free(s.data);
}

/* Discarded before its release: the go pipe's end, exit 0, the command
 * never ran. */
Test(worker, warm_discard)
{
	char marker[128], cmd[256];
	struct worker_params p = params(WORKER_WARM, ARGV("sh", "-c", cmd));
	struct worker_result res;
	struct worker *w;
	double t0;

	snprintf(marker, sizeof(marker), "%s/ran", dir);
	snprintf(cmd, sizeof(cmd), "touch %s", marker);
	cr_assert_eq(worker_spawn(&w, &p), 0);
	usleep(100 * 1000);
	t0 = secs();
	cr_assert_eq(worker_discard(w, &res), 0);
	cr_assert_lt(secs() - t0, 3);
	cr_assert_eq(res.outcome, WORKER_OK);
	cr_assert(WIFEXITED(res.wait_status));
	cr_assert_neq(access(marker, F_OK), 0, "a discarded worker ran its command");
	cr_assert_eq(worker_release(w), -EINVAL);
	worker_destroy(w);

	/* worker_wait on an unreleased warm worker discards it too. */
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	cr_assert_neq(access(marker, F_OK), 0);
	worker_destroy(w);
}

/* A warm flint that ignores its go pipe's end is killed after
 * WORKER_DISCARD_S... too long for a test; one that already died: its
 * release says -EPIPE (no SIGPIPE), and worker_wait how it ended. */
Test(worker, release_of_a_dead_warm_worker)
{
	struct worker_params p = params(WORKER_WARM, ARGV("true"));
	struct worker_result res;
	struct worker *w;

	cr_assert_eq(worker_spawn(&w, &p), 0);
	worker_kill(w);
	for (int i = 0; i < 300 && !worker_exited(w); i++)
		usleep(10 * 1000);
	cr_assert(worker_exited(w));
	cr_assert_eq(worker_release(w), -EPIPE);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_KILLED);
	cr_assert_eq(res.status, SIGKILL);
	worker_destroy(w);
}

/* A discard of a released worker kills it. */
Test(worker, discard_of_a_running_worker_kills)
{
	struct worker_params p = params(WORKER_WARM, ARGV("sleep", "1000"));
	struct worker_result res;
	struct worker *w;

	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_release(w), 0);
	cr_assert_eq(worker_discard(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_KILLED);
	worker_destroy(w);
}

/* ---- descriptors ---- */

/* The child has fds 0-2 only (3 too when warm), even with a descriptor of
 * the server's open without CLOEXEC; the server has the same fds before
 * and after workers of every kind and ending. */
Test(worker, no_fd_leaks)
{
	int leak = open("/dev/null", O_RDONLY); /* not CLOEXEC */
	int before = count_fds();
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", "ls /proc/$$/fd"));
	struct worker_result res;
	struct worker *w;
	struct sink s;

	cr_assert_geq(leak, 0);
	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert(out_is(&s, "0\n1\n2\n"), "the child's fds: %.*s", (int)s.len, (char *)s.data);
	free(s.data);

	/* A warm one: 3 is the go pipe; the fake reads it, then closes it
	 * for the command (3<&-): 0-2 again. */
	p = params(WORKER_WARM, ARGV("sh", "-c", "ls /proc/$$/fd"));
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_release(w), 0);
	sink_init(&s, NULL, 0);
	cr_assert_eq(worker_pump(w, NULL, sink_out, &s), 0);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert(out_is(&s, "0\n1\n2\n"), "%.*s", (int)s.len, (char *)s.data);
	worker_destroy(w);
	free(s.data);

	/* Every ending: exit, deadline, discard, destroy unwaited, body. */
	size_t len = 1 << 20;
	uint8_t *body = pattern(len);
	p = params(WORKER_RESTORE, ARGV("cat"));
	sink_init(&s, body, len);
	cr_assert_eq(run(&p, &s, &res), 0);
	free(s.data);
	p = params(WORKER_RESTORE, ARGV("sleep", "1000"));
	p.deadline_s = 1;
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_wait(w, &res), 0);
	worker_destroy(w);
	p = params(WORKER_WARM, ARGV("true"));
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_discard(w, &res), 0);
	worker_destroy(w);
	cr_assert_eq(worker_spawn(&w, &p), 0);
	worker_destroy(w);
	/* A warm one with its status pipe (flint run --status-fd), destroyed
	 * unwaited, as the pool drops a warm VM it evicts. */
	p.early_status = true;
	cr_assert_eq(worker_spawn(&w, &p), 0);
	worker_destroy(w);
	free(body);
	cr_assert_eq(count_fds(), before);
	close(leak);
}

/* ---- without a pidfd (a kernel before 5.3) ---- */

/* The exit found with waitid: statuses, leftovers killed, the deadline,
 * a warm release and discard, the same as with a pidfd. */
Test(worker, without_a_pidfd)
{
	char cmd[256], pidfile[128];
	struct worker_params p = params(WORKER_RESTORE, ARGV("sh", "-c", cmd));
	struct worker_result res;
	struct worker *w;
	struct sink s;
	int fds = count_fds();
	double t0;

	worker_test_no_pidfd = true;
	snprintf(pidfile, sizeof(pidfile), "%s/leftover", dir);
	snprintf(cmd, sizeof(cmd), "sleep 1000 & echo $! >%s; cat; exit 123", pidfile);
	sink_init(&s, "body", 4);
	t0 = secs();
	cr_assert_eq(run(&p, &s, &res), 0);
	cr_assert_lt(secs() - t0, 5);
	cr_assert_eq(res.outcome, WORKER_LOST);
	cr_assert(out_is(&s, "body"));
	cr_assert(process_dies(read_pid(pidfile)));
	free(s.data);

	p = params(WORKER_RESTORE, ARGV("sleep", "1000"));
	p.deadline_s = 1;
	t0 = secs();
	sink_init(&s, NULL, 0);
	cr_assert_eq(run(&p, &s, &res), -ETIMEDOUT);
	cr_assert(secs() - t0 < 5);
	cr_assert_eq(res.outcome, WORKER_TIMEOUT);
	free(s.data);

	p = params(WORKER_WARM, ARGV("echo", "warm"));
	cr_assert_eq(worker_spawn(&w, &p), 0);
	usleep(100 * 1000);
	cr_assert_not(worker_exited(w));
	cr_assert_eq(worker_release(w), 0);
	sink_init(&s, NULL, 0);
	cr_assert_eq(worker_pump(w, NULL, sink_out, &s), 0);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	cr_assert(out_is(&s, "warm\n"));
	worker_destroy(w);
	free(s.data);
	cr_assert_eq(worker_spawn(&w, &p), 0);
	cr_assert_eq(worker_discard(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
	worker_destroy(w);
	worker_destroy(last);
	last = NULL;
	cr_assert_eq(count_fds(), fds);
}

/* ---- WORKER_VM with control: worker_reset ---- */

/* A stand-in for flint --restore ... --control-fd 3: it answers each line
 * read on fd 3 as --mode says (ok: "ok <100 n>"; refuse; slow: never in
 * time; die: exits 3 at the first request; say: a crash, named on stderr;
 * flood: 100 KB on stderr before the crash's line; chat: 40 KB on stderr
 * before each answer, a crash at the third), and exits 0 at the socket's
 * end, as flint does. check: "ok 1" only when its stdin and stdout are
 * /dev/null and fd 3 a socket, as a detached VM's are. where: "ok" to
 * "where", and at the end the line flint would log; hang: "ok" to each,
 * and no exit at the end; quit (without control): runs until SIGQUIT,
 * then logs that line and exits 131. */
static const char vm_flint[] =
    "#!/bin/sh\n"
    "[ -n \"$FAKE_ARGS\" ] && printf '%s\\n' \"$@\" >\"$FAKE_ARGS\"\n"
    "mode=ok\n"
    "while [ $# -gt 0 ]; do case $1 in --mode) mode=$2; shift ;; esac; shift; done\n"
    /* As flint: an answer to a closed socket is not a signal. */
    "trap '' PIPE\n"
    "if [ $mode = quit ]; then\n"
    "\ttrap 'echo \"flint: vCPUs left the guest at: 0:rip=0x2\" >&2; exit 131' QUIT\n"
    "\twhile :; do sleep 0.05; done\n"
    "fi\n"
    "n=0\n"
    "while read -r line <&3; do\n"
    "\tn=$((n + 1))\n"
    "\tcase $mode in\n"
    "\tok) printf 'ok %d\\n' $((n * 100)) >&3 ;;\n"
    "\trefuse) printf 'error this VM cannot be reset to its snapshot: no\\n' >&3 ;;\n"
    "\tslow) sleep 3 ;;\n"
    "\tdie) exit 3 ;;\n"
    "\tsay) echo 'flint: guest triple fault on vCPU 0 (KVM_EXIT_SHUTDOWN)' >&2; exit 122 ;;\n"
    "\tflood) head -c 100000 /dev/zero | tr '\\0' x >&2; echo; echo 'flint: lost' >&2; exit 122 "
    ";;\n"
    "\tchat) if [ $n = 3 ]; then echo 'flint: the end' >&2; exit 122; fi\n"
    "\t\thead -c 40000 /dev/zero | tr '\\0' y >&2; printf 'ok %d\\n' $n >&3 ;;\n"
    "\twhere) [ \"$line\" = where ] && asked=1 && echo ok >&3 ;;\n"
    "\thang) echo ok >&3 ;;\n"
    "\tcheck) in=$(readlink /proc/$$/fd/0); out=$(readlink /proc/$$/fd/1)\n"
    "\t\tc=$(readlink /proc/$$/fd/3)\n"
    "\t\tcase $in,$out,$c in /dev/null,/dev/null,socket:*) echo 'ok 1' >&3 ;;\n"
    "\t\t*) echo \"error $in $out $c\" >&3 ;; esac ;;\n"
    "\tesac\n"
    "done\n"
    "[ -n \"$asked\" ] && echo 'flint: vCPUs left the guest at: 0:rip=0x1' >&2\n"
    "[ $mode = hang ] && exec sleep 100\n"
    "exit 0\n";

static struct worker *spawn_vm_with(const char *mode, bool control, unsigned deadline_s)
{
	char path[128], tmp[128];
	struct worker *w;
	FILE *f;

	/* Written beside and renamed over: a stand-in still running reads
	 * its script as it goes, and must not see it rewritten. */
	snprintf(tmp, sizeof(tmp), "%s/vmflint.new", dir);
	snprintf(path, sizeof(path), "%s/vmflint", dir);
	cr_assert_not_null(f = fopen(tmp, "w"));
	fputs(vm_flint, f);
	fclose(f);
	cr_assert_eq(chmod(tmp, 0755), 0);
	cr_assert_eq(rename(tmp, path), 0);
	struct worker_params p = {.kind = WORKER_VM,
				  .flint = path,
				  .state = "fn.state",
				  .mem = "fn.mem",
				  .uds = "vm.sock",
				  .control = control,
				  .deadline_s = deadline_s,
				  .opts = ARGV("--mode", (char *)mode),
				  .envp = fake_env};
	cr_assert_eq(worker_spawn(&w, &p), 0);
	last = w;
	return w;
}

static struct worker *spawn_vm(const char *mode)
{
	return spawn_vm_with(mode, true, 0);
}

Test(worker, argv_vm_control)
{
	struct worker_params p = {.kind = WORKER_VM,
				  .flint = "flint",
				  .state = "s",
				  .mem = "m",
				  .uds = "u",
				  .control = true,
				  .opts = ARGV("--level", "Debug")};
	char **v;

	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("flint", "--restore", "s", "--mem-file", "m", "--vsock-override", "u",
			    "--console", "none", "--control-fd", "3", "--level", "Debug"));
	worker_argv_free(v);
	p.control = false;
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("flint", "--restore", "s", "--mem-file", "m", "--vsock-override", "u",
			    "--console", "none", "--level", "Debug"));
	worker_argv_free(v);
	/* Only a VM takes --control-fd. */
	p = (struct worker_params){.kind = WORKER_RESTORE,
				   .flint = "flint",
				   .state = "s",
				   .mem = "m",
				   .argv = ARGV("true"),
				   .control = true};
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	cr_assert_null(v);
}

Test(worker, reset_answers_in_turn_and_the_end_stops_the_vm)
{
	struct worker *w = spawn_vm("ok");
	struct worker_result res;
	uint64_t us = 0;
	char err[128];

	cr_assert_eq(worker_reset(w, 5000, &us, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(us, 100);
	cr_assert_eq(worker_reset(w, 5000, &us, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(us, 200);
	cr_assert_eq(worker_reset(w, 5000, NULL, NULL, 0), 0);
	cr_assert_not(worker_exited(w));
	/* worker_wait closes the socket: "flint" exits 0 by itself. */
	double t0 = secs();
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK, "outcome %d status %d", res.outcome, res.status);
	cr_assert_not(res.deadline);
	cr_assert_lt(secs() - t0, 2.0);
	cr_assert_eq(worker_reset(w, 100, &us, err, sizeof(err)), -EPIPE);
}

/* A VM whose guest stopped answering: asked where it was, let go; what
 * its flint then logs comes with the result. */
Test(worker, stop_saying_where)
{
	struct worker *w = spawn_vm("where");
	struct worker_result res;
	double t0 = secs();

	cr_assert_eq(worker_stop_saying_where(w, 3000, &res), 0);
	cr_assert_lt(secs() - t0, 2.0);
	cr_assert_eq(res.outcome, WORKER_OK, "outcome %d status %d", res.outcome, res.status);
	cr_assert_not_null(strstr(res.err, "flint: vCPUs left the guest at: 0:rip=0x1"), "%s",
			   res.err);
	/* Again: the same result. */
	struct worker_result again;
	cr_assert_eq(worker_stop_saying_where(w, 3000, &again), 0);
	cr_assert_eq(again.wait_status, res.wait_status);
}

/* A VM that lived past a deadline of its own still gets to say it. */
Test(worker, stop_saying_where_past_the_vms_own_deadline)
{
	struct worker *w = spawn_vm_with("where", true, 1);
	struct worker_result res;

	usleep(1300 * 1000);
	cr_assert_eq(worker_stop_saying_where(w, 3000, &res), 0);
	cr_assert_not_null(strstr(res.err, "flint: vCPUs left the guest at: 0:rip=0x1"), "%s",
			   res.err);
}

/* Without control (a reused VM): SIGQUIT, which flint takes the same way. */
Test(worker, stop_saying_where_without_control_is_sigquit)
{
	struct worker *w = spawn_vm_with("quit", false, 0);
	struct worker_result res;

	usleep(200 * 1000); /* the stand-in's trap set */
	cr_assert_eq(worker_stop_saying_where(w, 3000, &res), 0);
	cr_assert(WIFEXITED(res.wait_status) && WEXITSTATUS(res.wait_status) == 131, "%#x",
		  res.wait_status);
	cr_assert_not_null(strstr(res.err, "flint: vCPUs left the guest at: 0:rip=0x2"), "%s",
			   res.err);
}

/* One that does not stop is killed at the time given. */
Test(worker, stop_saying_where_kills_one_that_does_not_stop)
{
	struct worker *w = spawn_vm("hang");
	struct worker_result res;
	double t0 = secs();

	cr_assert_eq(worker_stop_saying_where(w, 500, &res), 0);
	double took = secs() - t0;
	cr_assert(took >= 0.45 && took < 3, "took %.2f s", took);
	cr_assert(WIFSIGNALED(res.wait_status) && WTERMSIG(res.wait_status) == SIGKILL);
}

/* Several stuck VMs are asked first and waited for within one deadline,
 * not one deadline after another. */
Test(worker, stuck_vms_asked_together_share_one_deadline)
{
	struct worker *a = spawn_vm("hang"), *b = spawn_vm("hang"), *c = spawn_vm("where");
	struct worker_result res;
	double t0 = secs();
	uint64_t deadline = now_ns() + 500 * 1000000ULL;

	cr_assert_eq(worker_ask_where(a, deadline), 0);
	cr_assert_eq(worker_ask_where(b, deadline), 0);
	cr_assert_eq(worker_ask_where(c, deadline), 0);
	cr_assert_lt(secs() - t0, 0.3, "asking waits for nothing");
	cr_assert_eq(worker_wait(a, &res), 0);
	cr_assert(WIFSIGNALED(res.wait_status) && WTERMSIG(res.wait_status) == SIGKILL);
	cr_assert_eq(worker_wait(b, &res), 0);
	cr_assert(WIFSIGNALED(res.wait_status) && WTERMSIG(res.wait_status) == SIGKILL);
	cr_assert_eq(worker_wait(c, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK, "outcome %d status %d", res.outcome, res.status);
	cr_assert_not_null(strstr(res.err, "flint: vCPUs left the guest at: 0:rip=0x1"), "%s",
			   res.err);
	double took = secs() - t0;
	cr_assert(took >= 0.45 && took < 0.95, "took %.2f s for three, one deadline of 0.5 s",
		  took);
	/* Asked again once ended: nothing to do. */
	cr_assert_eq(worker_ask_where(a, deadline), 0);
}

Test(worker, reset_detached_stdio_and_a_socket)
{
	struct worker *w = spawn_vm("check");
	char err[256];

	cr_assert_eq(worker_reset(w, 5000, NULL, err, sizeof(err)), 0, "%s", err);
}

Test(worker, reset_refused_is_eio_with_the_message)
{
	struct worker *w = spawn_vm("refuse");
	uint64_t us = 7;
	char err[128];

	cr_assert_eq(worker_reset(w, 5000, &us, err, sizeof(err)), -EIO);
	cr_assert_str_eq(err, "this VM cannot be reset to its snapshot: no");
	cr_assert_eq(us, 7);
	/* The VM runs on: another request is answered too. */
	cr_assert_eq(worker_reset(w, 5000, &us, err, sizeof(err)), -EIO);
	cr_assert_not(worker_exited(w));
}

Test(worker, reset_timeout_closes_the_socket)
{
	struct worker *w = spawn_vm("slow");
	struct worker_result res;
	char err[128];
	double t0 = secs();

	cr_assert_eq(worker_reset(w, 200, NULL, err, sizeof(err)), -ETIMEDOUT);
	cr_assert_geq(secs() - t0, 0.19);
	cr_assert_lt(secs() - t0, 1.5);
	/* No late answer can be taken for this one's. */
	cr_assert_eq(worker_reset(w, 200, NULL, err, sizeof(err)), -EPIPE);
	/* The stand-in reads the end after its sleep and exits 0. */
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_OK);
}

Test(worker, reset_of_a_dead_vm_is_epipe)
{
	struct worker *w = spawn_vm("die");
	struct worker_result res;
	char err[128];

	cr_assert_eq(worker_reset(w, 5000, NULL, err, sizeof(err)), -EPIPE);
	for (int i = 0; i < 200 && !worker_exited(w); i++)
		usleep(10000);
	cr_assert(worker_exited(w));
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_EXIT);
	cr_assert_eq(res.status, 3);
	cr_assert_eq(worker_reset(w, 100, NULL, err, sizeof(err)), -EPIPE);
}

/* A VM's stderr is kept (its memfd, up to WORKER_VM_STDERR_CAP): flint's
 * reason for a crash is in the result; a VM that says more than the cap
 * keeps only its first bytes, and its memfd does not grow. */
Test(worker, vm_stderr_kept_up_to_the_cap)
{
	static const char *const modes[] = {"say", "flood"};
	struct worker_result res;
	char err[128], said[128];

	for (int m = 0; m < 2; m++) {
		struct worker *w = spawn_vm(modes[m]);

		cr_assert_eq(worker_reset(w, 5000, NULL, err, sizeof(err)), -EPIPE);
		cr_assert_eq(worker_wait(w, &res), 0);
		cr_assert_eq(res.outcome, WORKER_CRASH);
		worker_flint_said(&res, said, sizeof(said));
		if (m == 0) {
			cr_assert_str_eq(
			    res.err, "flint: guest triple fault on vCPU 0 (KVM_EXIT_SHUTDOWN)\n");
			cr_assert_str_eq(said, "guest triple fault on vCPU 0 (KVM_EXIT_SHUTDOWN)");
			cr_assert_not(res.err_truncated);
		} else {
			cr_assert_eq(res.err_len, WORKER_VM_STDERR_CAP);
			/* The memfd did not grow: flint's offset stopped at the cap. */
			cr_assert_eq(res.err_total, WORKER_VM_STDERR_CAP);
			cr_assert(res.err_truncated);
			cr_assert_eq(res.err[0], 'x');
			cr_assert_str_eq(said, "", "the line past the cap was kept: %s", said);
		}
		worker_destroy(w);
		last = NULL;
	}
}

/* A VM that says 40 KB at each reset: with worker_log_rewind between
 * requests (as flint serve calls it) its stderr starts again once past
 * half the cap, so only its last words (at the third request) are kept,
 * untruncated. */
Test(worker, vm_stderr_rewound_between_requests)
{
	struct worker *w = spawn_vm("chat");
	struct worker_result res;
	char err[128], said[64];

	for (int i = 0; i < 2; i++) {
		cr_assert_eq(worker_reset(w, 5000, NULL, err, sizeof(err)), 0, "%s", err);
		worker_log_rewind(w);
	}
	cr_assert_eq(worker_reset(w, 5000, NULL, err, sizeof(err)), -EPIPE);
	cr_assert_eq(worker_wait(w, &res), 0);
	cr_assert_eq(res.outcome, WORKER_CRASH);
	cr_assert_not(res.err_truncated);
	cr_assert_str_eq(res.err, "flint: the end\n");
	cr_assert_str_eq(worker_flint_said(&res, said, sizeof(said)), "the end");
}

/* worker_flint_said: flint's last line, not the command's after it; none
 * from a stderr kept only in part. */
Test(worker, flint_said_takes_flints_last_line)
{
	struct worker_result r = {.err = "flint: first\nout\nflint: second\ncommand's\n"};
	char buf[64];

	r.err_len = strlen(r.err);
	cr_assert_str_eq(worker_flint_said(&r, buf, sizeof(buf)), "second");
	r.err = "no flint here\n";
	r.err_len = strlen(r.err);
	cr_assert_str_eq(worker_flint_said(&r, buf, sizeof(buf)), "");
	r.err = "flint: no newline";
	r.err_len = strlen(r.err);
	cr_assert_str_eq(worker_flint_said(&r, buf, sizeof(buf)), "no newline");
	r.err_truncated = true;
	cr_assert_str_eq(worker_flint_said(&r, buf, sizeof(buf)), "");
	r.err_truncated = false;
	r.err = NULL;
	r.err_len = 0;
	cr_assert_str_eq(worker_flint_said(&r, buf, sizeof(buf)), "");
	/* No control byte a guest's output could put in it. */
	r.err = "flint: \033]0;owned\007\033[2K forged\n";
	r.err_len = strlen(r.err);
	cr_assert_str_eq(worker_flint_said(&r, buf, sizeof(buf)), "?]0;owned??[2K forged");
}

Test(worker, reset_without_control_is_einval)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("sleep", "5"));
	struct worker *w;

	cr_assert_eq(worker_spawn(&w, &p), 0);
	last = w;
	cr_assert_eq(worker_reset(w, 100, NULL, NULL, 0), -EINVAL);
}

/* ---- a launcher that runs flint itself, and the gone callback ---- */

/* flint-jail's --exec-file names flint: its arguments follow the
 * launcher's "--" without flint's path; both argv builders. */
Test(worker, argv_launcher_runs_flint)
{
	struct worker_params p = {
	    .kind = WORKER_RESTORE,
	    .flint = "/jail/flint",
	    .state = "/f/s",
	    .mem = "/f/m",
	    .argv = ARGV("cat"),
	    .launcher = ARGV("/usr/bin/flint-jail", "--exec-file", "/jail/flint", "--"),
	    .launcher_runs_flint = true,
	};
	char **v;

	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("/usr/bin/flint-jail", "--exec-file", "/jail/flint", "--", "run",
			    "--restore", "/f/s", "--mem-file", "/f/m", "--", "cat"));
	worker_argv_free(v);

	p = (struct worker_params){
	    .kind = WORKER_VM,
	    .flint = "/jail/flint",
	    .state = "/f/s",
	    .mem = "/f/m",
	    .uds = "/run/v.sock",
	    .control = true,
	    .opts = ARGV("--drive-override", "drive0=/img"),
	    .launcher = ARGV("/usr/bin/flint-jail", "--"),
	    .launcher_runs_flint = true,
	};
	cr_assert_eq(worker_argv(&p, &v), 0);
	expect_argv(v, ARGV("/usr/bin/flint-jail", "--", "--restore", "/f/s", "--mem-file", "/f/m",
			    "--vsock-override", "/run/v.sock", "--console", "none", "--control-fd",
			    "3", "--drive-override", "drive0=/img"));
	worker_argv_free(v);

	/* Without a launcher there is nothing to run flint. */
	p.launcher = NULL;
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
	p.kind = WORKER_RESTORE;
	p.uds = NULL;
	p.control = false;
	p.argv = ARGV("cat");
	cr_assert_eq(worker_argv(&p, &v), -EINVAL);
}

struct gone_ctx {
	int n;
	pid_t pid;
	bool reaped; /* at the call, pid was reaped already */
};

static void count_gone(void *ctx)
{
	struct gone_ctx *g = ctx;
	int st;

	g->n++;
	g->reaped = g->pid <= 0 || (waitpid(g->pid, &st, WNOHANG) < 0 && errno == ECHILD);
}

/* gone runs once: after the reap in worker_destroy, or from a spawn that
 * failed (which leaves nothing else behind). */
Test(worker, gone_called_once_after_the_reap_or_a_failed_spawn)
{
	struct worker_params p = params(WORKER_RESTORE, ARGV("sleep", "1000"));
	struct gone_ctx g = {0};
	struct worker *w;

	p.gone = count_gone;
	p.gone_ctx = &g;
	cr_assert_eq(worker_spawn(&w, &p), 0);
	g.pid = worker_pid(w);
	cr_assert_eq(g.n, 0, "gone before the worker is over");
	worker_destroy(w);
	cr_assert_eq(g.n, 1);
	cr_assert(g.reaped, "gone ran before the reap");

	g.pid = 0;
	p.flint = "/nonexistent/flint";
	cr_assert_eq(worker_spawn(&w, &p), -ENOENT);
	cr_assert_eq(g.n, 2, "a failed spawn did not give its jail back");

	p.flint = "flint";
	p.argv = NULL; /* refused by worker_argv */
	cr_assert_eq(worker_spawn(&w, &p), -EINVAL);
	cr_assert_eq(g.n, 3);
}
