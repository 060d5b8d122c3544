/* `flint run`'s host side (runner/cmd/run.c) end to end, over a Unix socket:
 * against a scripted fake agent (every answer and misbehaviour), and
 * against the real agent's connection server (rootfs/agent/agent.c, built
 * into this file) running real commands. No VM: the vsock muxer would only
 * relay the same bytes. Both ways of reaching the agent: its own connection
 * (RUN_ACCEPT) and one run.c opens through a fake vsock device's socket
 * (RUN_CONNECT: the CONNECT line, the device's answer, the retries), and
 * the ready hook that `flint run --save-snapshot` uses. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/proto.h"
#include "cmd/run.h"
#include "core/seccomp.h"

/* The real agent: its main and close_fd renamed, so that they do not clash
 * with flint's; serve() is what each vsock connection gets. */
int agent_main(void);
#define main	 agent_main
#define close_fd agent_close_fd
#include "agent/agent.c"
#undef main
#undef close_fd

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))

/* ---- the host side under test ---- */

struct harness {
	char path[108];
	char uds[108]; /* the fake vsock device's socket (RUN_CONNECT) */
	int in[2];     /* in[0] is run's stdin; the test writes in[1] */
	int out, err;  /* memfds: writes never block */
	struct run *run;
	pthread_mutex_t m;
	pthread_cond_t c;
	int calls, status;
	char msg[512];
	/* The ready hook: what it returns and the reason it gives; calls. */
	int ready_ret;
	const char *ready_msg;
	atomic_int ready_calls;
	/* The go hook (--wait-fd): what it returns and its reason; calls. */
	int go_ret;
	const char *go_msg;
	atomic_int go_calls;
	atomic_int stuck_calls, stuck_before_finish;
};

static void on_stuck(void *ctx)
{
	struct harness *h = ctx;

	pthread_mutex_lock(&h->m);
	atomic_fetch_add(&h->stuck_calls, 1);
	if (!h->calls)
		atomic_fetch_add(&h->stuck_before_finish, 1);
	pthread_mutex_unlock(&h->m);
}

static int on_ready(void *ctx, char *msg, size_t len)
{
	struct harness *h = ctx;

	atomic_fetch_add(&h->ready_calls, 1);
	if (h->ready_msg)
		snprintf(msg, len, "%s", h->ready_msg);
	return h->ready_ret;
}

static void on_finish(void *ctx, int status, const char *msg)
{
	struct harness *h = ctx;

	pthread_mutex_lock(&h->m);
	h->calls++;
	h->status = status;
	snprintf(h->msg, sizeof(h->msg), "%s", msg ? msg : "");
	pthread_cond_signal(&h->c);
	pthread_mutex_unlock(&h->m);
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* The harness's state and paths, before run.c starts. */
static void prepare(struct harness *h, bool with_stdin)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->m, NULL);
	pthread_cond_init(&h->c, NULL);
	snprintf(h->path, sizeof(h->path), "/tmp/flint-unit-run-%d.sock", getpid());
	snprintf(h->uds, sizeof(h->uds), "/tmp/flint-unit-run-%d.vsock", getpid());
	unlink(h->uds);
	h->in[0] = h->in[1] = -1;
	if (with_stdin)
		cr_assert_eq(pipe2(h->in, O_CLOEXEC), 0);
	h->out = memfd_create("out", MFD_CLOEXEC);
	h->err = memfd_create("err", MFD_CLOEXEC);
	cr_assert(h->out >= 0 && h->err >= 0);
}

/* run.c in mode, on the harness's fresh socket paths, with the ready hook
 * when `ready`. stdin: a pipe (with_stdin) or none (-1). */
static void start_mode(struct harness *h, enum run_mode mode, char **argv, int argc,
		       unsigned timeout_s, unsigned boot_s, bool with_stdin, bool ready)
{
	prepare(h, with_stdin);
	struct run_params p = {
	    .mode = mode,
	    .listen_path = h->path,
	    .uds_path = h->uds,
	    .argv = argv,
	    .argc = argc,
	    .timeout_s = timeout_s,
	    .boot_timeout_s = boot_s,
	    .in_fd = h->in[0],
	    .out_fd = h->out,
	    .err_fd = h->err,
	    .finish = on_finish,
	    .stuck = on_stuck,
	    .ready = ready ? on_ready : NULL,
	    .ctx = h,
	};
	cr_assert_eq(run_start(&h->run, &p), 0);
}

/* The agent's own connection (RUN_ACCEPT), no ready hook. */
static void start(struct harness *h, char **argv, int argc, unsigned timeout_s, unsigned boot_s,
		  bool with_stdin)
{
	start_mode(h, RUN_ACCEPT, argv, argc, timeout_s, boot_s, with_stdin, false);
}

/* Waits for finish(); returns the status. */
static int wait_finish(struct harness *h, int timeout_s)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_s;
	pthread_mutex_lock(&h->m);
	while (!h->calls && pthread_cond_timedwait(&h->c, &h->m, &until) == 0)
		;
	pthread_mutex_unlock(&h->m);
	cr_assert_eq(h->calls, 1, "finish() not called within %d s", timeout_s);
	cr_assert(run_finished(h->run));
	return h->status;
}

static void finish(struct harness *h)
{
	struct stat st;

	run_stop(h->run);
	cr_assert_neq(lstat(h->path, &st), 0, "run_stop left %s", h->path);
	unlink(h->uds); /* the fake device's, if any */
	if (h->in[1] >= 0)
		close(h->in[1]);
	if (h->in[0] >= 0)
		close(h->in[0]);
	close(h->out);
	close(h->err);
}

/* What was written to a memfd, NUL-terminated (malloc'd). */
static char *slurp(int fd, size_t *len)
{
	off_t n = lseek(fd, 0, SEEK_END);
	char *s = malloc((size_t)n + 1);

	cr_assert_eq(pread(fd, s, (size_t)n, 0), n);
	s[n] = '\0';
	if (len)
		*len = (size_t)n;
	return s;
}

static void expect_text(int fd, const char *want)
{
	char *s = slurp(fd, NULL);

	cr_assert_str_eq(s, want);
	free(s);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

/* ---- a scripted fake agent ---- */

struct fake {
	const char *path;
	/* A fake vsock device instead (RUN_CONNECT, or RUN_ACCEPT's
	 * reconnection): it listens on `uds` (after delay_ms), reads each
	 * connection's CONNECT line and answers the n-th with answers[n]
	 * (NULL: it closes the connection without a word), "OK 1073741824\n"
	 * after the list; the first connection answered OK is the agent's.
	 * never_ok: it closes every connection; mute: it answers nothing
	 * and holds the connection. */
	const char *uds;
	const char *answers[8];
	unsigned nanswers, delay_ms;
	bool never_ok, mute;
	char line[64];	   /* the last CONNECT line received */
	atomic_uint conns; /* connections accepted */
	atomic_bool quit;  /* fake_stop: give up waiting */
	int mute_fd;
	uint8_t script[8192]; /* raw bytes to send after the request */
	size_t script_len;
	bool want_stdin; /* read STDIN frames up to STDIN_EOF first */
	bool hold;	 /* keep the connection open afterwards */
	/* What it received. */
	uint8_t reqbuf[AGENT_REQUEST_MAX];
	struct agent_request req;
	int decoded;
	char stdin_got[256];
	size_t stdin_len;
	bool stdin_eof;
	int sock;
	pthread_t thread;
	bool joined;
};

static void script(struct fake *f, uint8_t type, const void *p, size_t len)
{
	struct agent_outbuf o = {.buf = f->script, .cap = sizeof(f->script), .len = f->script_len};

	cr_assert_eq(agent_out_frame(&o, type, p, len), 0);
	f->script_len = o.len;
}

static void script_exit(struct fake *f, uint32_t kind, int32_t value, const char *msg)
{
	f->script_len += agent_exit_encode(f->script + f->script_len, kind, value, msg);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		return -1;
	return fd;
}

/* Reads a connection's line, up to "\n", into line (NUL-terminated). */
static void read_line(int fd, char *line, size_t size)
{
	size_t n = 0;
	char c;

	while (n < size - 1 && read(fd, &c, 1) == 1) {
		line[n++] = c;
		if (c == '\n')
			break;
	}
	line[n] = '\0';
}

/* The fake vsock device: the connection it answered OK, or -1 once told
 * to quit. */
static int fake_device(struct fake *f)
{
	int lfd, fd = -1;

	usleep(f->delay_ms * 1000);
	if ((lfd = listen_unix(f->uds)) < 0)
		return -1;
	while (fd < 0 && !atomic_load(&f->quit)) {
		struct pollfd pf = {lfd, POLLIN, 0};
		unsigned n = atomic_load(&f->conns);
		int c;

		if (poll(&pf, 1, 20) <= 0 || (c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		read_line(c, f->line, sizeof(f->line));
		atomic_fetch_add(&f->conns, 1);
		if (f->mute) {
			f->mute_fd = c;
			while (!atomic_load(&f->quit))
				usleep(10 * 1000);
			break;
		}
		const char *a = f->never_ok	  ? NULL
				: n < f->nanswers ? f->answers[n]
						  : "OK 1073741824\n";
		ssize_t w = a ? write(c, a, strlen(a)) : 0;
		if (f->never_ok || n < f->nanswers || w < 0)
			close(c);
		else
			fd = c;
	}
	close(lfd);
	return fd;
}

static void *fake_agent(void *arg)
{
	struct fake *f = arg;
	struct agent_reader rd;
	char err[256];

	f->sock = f->uds ? fake_device(f) : connect_unix(f->path);
	if (f->sock < 0)
		return NULL;
	agent_reader_init(&rd, f->reqbuf, sizeof(f->reqbuf));
	if (agent_read_frame(&rd, f->sock) != 1 || rd.f.type != AGENT_REQUEST)
		return NULL;
	f->decoded = agent_request_decode(f->reqbuf, rd.f.len, &f->req, err, sizeof(err)) == 0;
	while (f->want_stdin && !f->stdin_eof) {
		static uint8_t data[AGENT_DATA_MAX];

		agent_reader_init(&rd, data, sizeof(data));
		if (agent_read_frame(&rd, f->sock) != 1)
			break;
		if (rd.f.type == AGENT_STDIN_EOF)
			f->stdin_eof = true;
		else if (rd.f.type == AGENT_STDIN &&
			 f->stdin_len + rd.f.len < sizeof(f->stdin_got)) {
			memcpy(f->stdin_got + f->stdin_len, data, rd.f.len);
			f->stdin_len += rd.f.len;
		}
	}
	for (size_t off = 0; off < f->script_len;) {
		ssize_t n = write(f->sock, f->script + off, f->script_len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (!f->hold) {
		close(f->sock);
		f->sock = -1;
	}
	return NULL;
}

static struct fake *fake_start(const char *path)
{
	struct fake *f = calloc(1, sizeof(*f));

	f->path = path;
	f->sock = -1;
	f->mute_fd = -1;
	return f;
}

/* A fake agent behind a fake vsock device on uds. */
static struct fake *fake_device_start(const char *uds)
{
	struct fake *f = fake_start(NULL);

	f->uds = uds;
	return f;
}

static void fake_go(struct fake *f)
{
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_agent, f), 0);
}

/* Waits until the fake has sent its script. */
static void fake_join(struct fake *f)
{
	if (!f->joined)
		pthread_join(f->thread, NULL);
	f->joined = true;
}

/* Tells a fake device to stop waiting for connections, and joins it. */
static void fake_stop(struct fake *f)
{
	atomic_store(&f->quit, true);
	fake_join(f);
}

static void fake_end(struct fake *f)
{
	fake_stop(f);
	if (f->sock >= 0)
		close(f->sock);
	if (f->mute_fd >= 0)
		close(f->mute_fd);
	if (f->decoded)
		agent_request_free(&f->req);
	free(f);
}

TestSuite(run_fake, .init = setup, .timeout = 20);

Test(run_fake, request_exit_code_and_separate_streams)
{
	struct harness h;
	struct fake *f;

	start(&h, ARGV("sh", "-c", "exit 3"), ARGC("sh", "-c", "exit 3"), 7, 5, false);
	f = fake_start(h.path);
	script(f, AGENT_STDOUT, "out\n", 4);
	script(f, AGENT_STDERR, "err\n", 4);
	script(f, AGENT_STDOUT, "more\n", 5);
	script_exit(f, AGENT_EXITED, 3, NULL);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 3);
	cr_assert_str_eq(h.msg, "");
	expect_text(h.out, "out\nmore\n");
	expect_text(h.err, "err\n");

	/* The request: the command only, no host environment, cwd "/". */
	fake_join(f);
	cr_assert(f->decoded);
	cr_assert_eq(f->req.argc, 3);
	cr_assert_str_eq(f->req.argv[2], "exit 3");
	cr_assert_eq(f->req.envc, 0);
	cr_assert_str_eq(f->req.cwd, "/");
	cr_assert_eq(f->req.timeout_ms, 7000);
	cr_assert_eq(f->req.flags, 0, "no stdin given, none asked for");

	struct run_timings t;
	run_get_timings(h.run, &t);
	cr_assert_gt(t.agent_ready_us, 0);
	cr_assert_geq(t.cmd_start_us, t.agent_ready_us);
	cr_assert_geq(t.cmd_end_us, t.cmd_start_us);
	cr_assert_eq(atomic_load(&h.stuck_calls), 0, "a guest that answered called stuck");
	finish(&h);
	fake_end(f);
}

/* `true` in mode, with a status pipe (sp; sp[1] is status_fd). */
static void start_status(struct harness *h, enum run_mode mode, int sp[2])
{
	prepare(h, false);
	cr_assert_eq(pipe2(sp, O_CLOEXEC), 0);
	struct run_params p = {
	    .mode = mode,
	    .listen_path = h->path,
	    .uds_path = h->uds,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .boot_timeout_s = 30,
	    .in_fd = -1,
	    .out_fd = h->out,
	    .err_fd = h->err,
	    .finish = on_finish,
	    .status_fd = sp[1],
	    .ctx = h,
	};
	cr_assert_eq(run_start(&h->run, &p), 0);
}

/* run_params.status_fd: the status line is there, all the output
 * written before it, by the time finish() is called. */
Test(run_fake, status_line_before_finish)
{
	struct harness h;
	struct fake *f;
	int sp[2];
	char line[128] = "";
	int st, sent, by;
	double ready, cmd;

	start_status(&h, RUN_ACCEPT, sp);
	f = fake_start(h.path);
	script(f, AGENT_STDOUT, "out\n", 4);
	script_exit(f, AGENT_EXITED, 7, NULL);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 7);
	cr_assert_gt(read(sp[0], line, sizeof(line) - 1), 0);
	cr_assert_eq(sscanf(line, "status=%d ready_ms=%lf command_ms=%lf sent=%d command=%d\n", &st,
			    &ready, &cmd, &sent, &by),
		     5, "%s", line);
	cr_assert_eq(st, 7);
	cr_assert_eq(by, 1, "the command's own status");
	cr_assert_geq(ready, 0);
	cr_assert_geq(cmd, 0);
	cr_assert_eq(sent, 1);
	cr_assert_eq(line[strlen(line) - 1], '\n');
	expect_text(h.out, "out\n");
	/* The VM's end after the run's: no second line. */
	run_vm_ended(h.run, 0);
	cr_assert_eq(fcntl(sp[0], F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(read(sp[0], line, sizeof(line)), -1);
	cr_assert_eq(errno, EAGAIN);
	close(sp[0]);
	close(sp[1]);
	finish(&h);
	fake_end(f);
}

/* A command that exits 122 itself: its status, said to be its own, so
 * that flint serve does not take it for flint run's crash; the agent's
 * timeout (124) is flint run's verdict, not the command's. */
Test(run_fake, status_line_says_whose_status_it_is)
{
	static const struct {
		unsigned kind, value;
		int status;
		const char *tail;
	} cases[] = {
	    {AGENT_EXITED, 122, 122, " command=1\n"},
	    {AGENT_SIGNALED, 9, 137, " command=1\n"},
	    {AGENT_TIMED_OUT, 0, 124, " command=0\n"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct harness h;
		struct fake *f;
		int sp[2];
		char line[128] = "";

		start_status(&h, RUN_ACCEPT, sp);
		f = fake_start(h.path);
		script_exit(f, cases[i].kind, cases[i].value, NULL);
		fake_go(f);
		cr_assert_eq(wait_finish(&h, 5), cases[i].status);
		cr_assert_gt(read(sp[0], line, sizeof(line) - 1), 0);
		cr_assert_not_null(strstr(line, cases[i].tail), "case %zu: %s", i, line);
		close(sp[0]);
		close(sp[1]);
		finish(&h);
		fake_end(f);
	}
}

/* The VM ends (a crash) before the agent is reached: run_vm_ended writes
 * the line with the VM's status, no agent, no command, sent=0: a caller
 * knows the command never ran. */
Test(run_fake, status_line_when_the_vm_ends_first)
{
	struct harness h;
	int sp[2];
	char line[128] = "";

	start_status(&h, RUN_CONNECT, sp); /* nothing listens on h.uds */
	usleep(100000);
	run_vm_ended(h.run, 122);
	cr_assert_gt(read(sp[0], line, sizeof(line) - 1), 0);
	cr_assert_str_eq(line, "status=122 ready_ms=-1.0 command_ms=-1.0 sent=0 command=0\n");
	cr_assert_eq(h.calls, 0, "finish() called for a run the VM's end stopped");
	close(sp[0]);
	close(sp[1]);
	finish(&h);
}

/* The VM ends (a crash) after the request went to the agent: the line
 * says sent=1, since the command may have run. */
Test(run_fake, status_line_when_the_vm_ends_after_the_request)
{
	struct harness h;
	struct fake *f;
	int sp[2];
	char line[128] = "";
	size_t len = 0;

	start_status(&h, RUN_ACCEPT, sp);
	f = fake_start(h.path);
	script(f, AGENT_STDOUT, "x", 1);
	f->hold = true; /* no EXIT: the command runs on */
	fake_go(f);
	fake_join(f);
	for (int i = 0; i < 200 && !len; i++) {
		free(slurp(h.out, &len));
		usleep(10000);
	}
	cr_assert_eq(len, 1, "the command's output did not come");
	cr_assert(f->decoded, "the fake agent did not get the request");
	run_vm_ended(h.run, 122);
	cr_assert_gt(read(sp[0], line, sizeof(line) - 1), 0);
	cr_assert_not_null(strstr(line, "status=122 "), "%s", line);
	cr_assert_not_null(strstr(line, " sent=1 command=0\n"), "%s", line);
	cr_assert_eq(h.calls, 0);
	close(sp[0]);
	close(sp[1]);
	finish(&h);
	fake_end(f);
}

/* Each final frame and the status and message it gives. */
static void expect_final(void (*add)(struct fake *), int status, const char *needle)
{
	struct harness h;
	struct fake *f;

	start(&h, ARGV("cmd"), 1, 2, 5, false);
	f = fake_start(h.path);
	add(f);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), status, "message: %s", h.msg);
	if (needle)
		cr_assert_not_null(strstr(h.msg, needle), "message '%s' lacks '%s'", h.msg, needle);
	else
		cr_assert_str_eq(h.msg, "");
	/* The agent answered, a timeout included: no guest stuck. */
	cr_assert_eq(atomic_load(&h.stuck_calls), 0);
	fake_end(f);
	finish(&h);
}

static void add_signal(struct fake *f)
{
	script_exit(f, AGENT_SIGNALED, 9, NULL);
}
static void add_timeout(struct fake *f)
{
	script_exit(f, AGENT_TIMED_OUT, 0, NULL);
}
static void add_not_started(struct fake *f)
{
	script_exit(f, AGENT_NOT_STARTED, 2, "cannot run 'cmd': No such file or directory");
}
static void add_error(struct fake *f)
{
	script(f, AGENT_ERROR, "malformed request: x", 20);
}
static void add_nothing(struct fake *f)
{
	script(f, AGENT_STDOUT, "partial", 7);
}
static void add_bad_header(struct fake *f)
{
	memcpy(f->script, "\x10\x00\x09\x00\x01\x00\x00\x00x", 9); /* version 9 */
	f->script_len = 9;
}
static void add_host_frame(struct fake *f)
{
	script(f, AGENT_STDIN, "x", 1);
}
static void add_bad_exit(struct fake *f)
{
	script_exit(f, AGENT_EXITED, 300, NULL);
}
static void add_oversize(struct fake *f)
{
	agent_hdr_put(f->script, AGENT_STDOUT, AGENT_DATA_MAX + 1);
	f->script_len = AGENT_HDR_SIZE;
}
static void add_control_chars(struct fake *f)
{
	script_exit(f, AGENT_NOT_STARTED, 1, "evil\033]0;title\007");
}

Test(run_fake, signal_is_128_plus_n)
{
	expect_final(add_signal, 137, NULL);
}
Test(run_fake, timeout)
{
	expect_final(add_timeout, RUN_EXIT_TIMEOUT, "the command timed out after 2 s");
}
Test(run_fake, not_started_is_127_with_the_reason)
{
	expect_final(add_not_started, 127, "cannot run 'cmd': No such file or directory");
}
Test(run_fake, error_frame)
{
	expect_final(add_error, RUN_EXIT_NO_AGENT, "refused the command: malformed request: x");
}
Test(run_fake, connection_lost_before_exit)
{
	expect_final(add_nothing, RUN_EXIT_NO_AGENT, "lost the connection");
}
Test(run_fake, bad_header)
{
	expect_final(add_bad_header, RUN_EXIT_NO_AGENT, "bad frame");
}
Test(run_fake, host_to_guest_frame_from_the_agent)
{
	expect_final(add_host_frame, RUN_EXIT_NO_AGENT, "bad frame");
}
Test(run_fake, exit_code_out_of_range)
{
	expect_final(add_bad_exit, RUN_EXIT_NO_AGENT, "malformed EXIT");
}
Test(run_fake, oversize_data_frame)
{
	expect_final(add_oversize, RUN_EXIT_NO_AGENT, "too long");
}
Test(run_fake, agent_text_cannot_steer_the_terminal)
{
	expect_final(add_control_chars, 127, "flint run: evil?]0;title?");
}

Test(run_fake, stdin_is_relayed_then_eof)
{
	struct harness h;
	struct fake *f;

	start(&h, ARGV("cat"), 1, 0, 5, true);
	f = fake_start(h.path);
	f->want_stdin = true;
	script(f, AGENT_STDOUT, "done", 4);
	script_exit(f, AGENT_EXITED, 0, NULL);
	fake_go(f);
	cr_assert_eq(write(h.in[1], "abc\n", 4), 4);
	cr_assert_eq(write(h.in[1], "def", 3), 3);
	close(h.in[1]);
	h.in[1] = -1;
	cr_assert_eq(wait_finish(&h, 5), 0);
	expect_text(h.out, "done");
	fake_join(f);
	cr_assert_eq(f->req.flags, AGENT_REQ_STDIN);
	cr_assert_eq(f->req.timeout_ms, 0);
	cr_assert(f->stdin_eof);
	cr_assert_eq(f->stdin_len, 7);
	cr_assert_arr_eq(f->stdin_got, "abc\ndef", 7);
	finish(&h);
	fake_end(f);
}

Test(run_fake, agent_never_connects)
{
	struct harness h;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	start(&h, ARGV("true"), 1, 0, 1, false);
	cr_assert_eq(wait_finish(&h, 5), RUN_EXIT_NO_AGENT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_str_eq(h.msg, "flint run: the guest agent did not connect within 1 s");
	cr_assert_geq(t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9, 0.9);
	cr_assert_eq(atomic_load(&h.stuck_before_finish), 1, "the stuck guest not said");
	struct run_timings t;
	run_get_timings(h.run, &t);
	cr_assert_eq(t.agent_ready_us, 0);
	finish(&h);
}

/* run_stop interrupts the thread wherever it waits; finish() is not
 * called then. */
Test(run_fake, stop_while_waiting_for_the_agent)
{
	struct harness h;

	start(&h, ARGV("true"), 1, 0, 0, false);
	usleep(50 * 1000);
	finish(&h);
	cr_assert_eq(h.calls, 0);
}

Test(run_fake, stop_during_the_command)
{
	struct harness h;
	struct fake *f;

	start(&h, ARGV("true"), 1, 0, 5, true);
	f = fake_start(h.path);
	f->hold = true;
	script(f, AGENT_STDOUT, "x", 1);
	fake_go(f);
	for (int i = 0; i < 200 && lseek(h.out, 0, SEEK_END) == 0; i++)
		usleep(10 * 1000);
	cr_assert_eq(lseek(h.out, 0, SEEK_END), 1);
	finish(&h);
	cr_assert_eq(h.calls, 0);
	fake_end(f);
}

/* An agent that never reports the command killed at its timeout: after
 * RUN_GUARD_S more, flint gives up with 124, and says first that the
 * guest is stuck (main.c then logs where its vCPUs were). */
Test(run_fake, guest_silent_past_the_timeout_is_stuck, .timeout = 30)
{
	struct harness h;
	struct fake *f;

	start(&h, ARGV("sleep", "100"), 2, 1, 5, false);
	f = fake_start(h.path);
	f->hold = true;
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 1 + RUN_GUARD_S + 5), RUN_EXIT_TIMEOUT);
	cr_assert_str_eq(h.msg,
			 "flint run: the command timed out after 1 s (the guest did not stop it)");
	cr_assert_eq(atomic_load(&h.stuck_calls), 1);
	cr_assert_eq(atomic_load(&h.stuck_before_finish), 1);
	finish(&h);
	fake_end(f);
}

/* A fake agent that takes the request, then sends frames[0..len) again
 * and again until the test ends or flint closes the connection; with big,
 * from a socket buffer of 64 MiB (SO_SNDBUFFORCE: root's, as the tests
 * run), so that flint's reads never catch up. */
static void *flood(struct fake *f, const uint8_t *frames, size_t len, bool big)
{
	struct agent_reader rd;
	int sz = 64 << 20;

	f->sock = connect_unix(f->path);
	if (f->sock < 0)
		return NULL;
	if (big && setsockopt(f->sock, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(f->sock, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	agent_reader_init(&rd, f->reqbuf, sizeof(f->reqbuf));
	if (agent_read_frame(&rd, f->sock) != 1)
		return NULL;
	while (!atomic_load(&f->quit) && send(f->sock, frames, len, MSG_NOSIGNAL) > 0)
		;
	return NULL;
}

/* A guest that never reports the command killed but keeps the connection
 * busy, faster than flint reads it: a byte of output and an empty frame,
 * without end. It is given up on all the same, as a silent one is. */
static void *chatty_agent(void *arg)
{
	static uint8_t frames[1000 * (2 * AGENT_HDR_SIZE + 1)];
	struct agent_outbuf o = {.buf = frames, .cap = sizeof(frames)};

	while (agent_out_frame(&o, AGENT_STDOUT, "x", 1) == 0 &&
	       agent_out_frame(&o, AGENT_STDOUT, NULL, 0) == 0)
		;
	return flood(arg, frames, o.len, false);
}

Test(run_fake, guest_chatty_past_the_timeout_is_stuck, .timeout = 30)
{
	struct harness h;
	struct fake *f;

	start(&h, ARGV("sleep", "100"), 2, 1, 5, false);
	f = fake_start(h.path);
	cr_assert_eq(pthread_create(&f->thread, NULL, chatty_agent, f), 0);
	cr_assert_eq(wait_finish(&h, 1 + RUN_GUARD_S + 5), RUN_EXIT_TIMEOUT);
	cr_assert_str_eq(h.msg,
			 "flint run: the command timed out after 1 s (the guest did not stop it)");
	cr_assert_eq(atomic_load(&h.stuck_calls), 1);
	cr_assert_gt(lseek(h.out, 0, SEEK_END), 0, "its output was relayed");
	finish(&h);
	fake_end(f);
}

/* The same with empty frames only, which give flint nothing to write
 * out, from a big socket buffer. */
static void *empty_frames_agent(void *arg)
{
	static uint8_t frames[8192 * AGENT_HDR_SIZE];
	struct agent_outbuf o = {.buf = frames, .cap = sizeof(frames)};

	while (agent_out_frame(&o, AGENT_STDOUT, NULL, 0) == 0)
		;
	return flood(arg, frames, o.len, true);
}

Test(run_fake, guest_sending_empty_frames_past_the_timeout_is_stuck, .timeout = 30)
{
	struct harness h;
	struct fake *f;

	start(&h, ARGV("sleep", "100"), 2, 1, 5, false);
	f = fake_start(h.path);
	cr_assert_eq(pthread_create(&f->thread, NULL, empty_frames_agent, f), 0);
	cr_assert_eq(wait_finish(&h, 1 + RUN_GUARD_S + 5), RUN_EXIT_TIMEOUT);
	cr_assert_str_eq(h.msg,
			 "flint run: the command timed out after 1 s (the guest did not stop it)");
	finish(&h);
	fake_end(f);
}

Test(run_fake, stale_socket_replaced_other_files_refused)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[108];
	struct run *r;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(path, sizeof(path), "/tmp/flint-unit-stale-%d.sock", getpid());
	strcpy(sa.sun_path, path);
	unlink(path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* a socket file nobody listens on */
	struct run_params p = {
	    .listen_path = path,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .in_fd = -1,
	    .out_fd = -1,
	    .err_fd = -1,
	    .finish = on_finish,
	};
	cr_assert_eq(run_start(&r, &p), 0);
	run_stop(r);
	cr_assert_eq(access(path, F_OK), -1);

	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	cr_assert_eq(run_start(&r, &p), -EEXIST);
	cr_assert_null(r);
	cr_assert_eq(access(path, F_OK), 0, "a file that is not a socket is left alone");
	unlink(path);
}

Test(run_fake, bad_params)
{
	struct run *r;
	struct run_params p = {
	    .listen_path = "/tmp/flint-unit-bad.sock",
	    .argv = ARGV("true"),
	    .argc = 0,
	    .in_fd = -1,
	    .out_fd = -1,
	    .err_fd = -1,
	    .finish = on_finish,
	};

	cr_assert_eq(run_start(&r, &p), -EINVAL);
	p.argc = 1;
	p.argv = ARGV("");
	cr_assert_eq(run_start(&r, &p), -EINVAL);
	p.argv = ARGV("true");
	p.timeout_s = 5000000;
	cr_assert_eq(run_start(&r, &p), -EINVAL);
	p.timeout_s = 0;
	p.listen_path =
	    "/tmp/this-path-is-far-too-long-for-a-unix-socket-xxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	cr_assert_eq(run_start(&r, &p), -ENAMETOOLONG);

	/* The environment and the working directory are checked as the
	 * agent checks them, and the whole request must fit. */
	p.listen_path = "/tmp/flint-unit-bad.sock";
	p.envp = ARGV("NOEQUALS");
	p.envc = 1;
	cr_assert_eq(run_start(&r, &p), -EINVAL);
	p.envp = NULL;
	cr_assert_eq(run_start(&r, &p), -EINVAL, "envc without envp");
	p.envc = -1;
	cr_assert_eq(run_start(&r, &p), -EINVAL);
	p.envc = 0;
	p.cwd = "relative";
	cr_assert_eq(run_start(&r, &p), -EINVAL);
	p.cwd = NULL;
	static char big[9][AGENT_STR_MAX - 1];
	char *env[10];
	for (int i = 0; i < 9; i++) {
		memset(big[i], 'x', sizeof(big[i]) - 1);
		memcpy(big[i], "V=", 2);
		big[i][sizeof(big[i]) - 1] = '\0';
		env[i] = big[i];
	}
	env[9] = NULL;
	p.envp = env;
	p.envc = 9;
	cr_assert_eq(run_start(&r, &p), -E2BIG);
	cr_assert_null(r);
}

/* Output to a pipe whose reader is slow arrives whole, in order. */
struct drain {
	int fd;
	size_t total;
	bool ordered;
};

static void *drain_pipe(void *arg)
{
	struct drain *d = arg;
	uint8_t buf[1000];
	ssize_t n;

	d->ordered = true;
	while ((n = read(d->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			d->ordered &= buf[i] == (uint8_t)((d->total + (size_t)i) % 251);
		d->total += (size_t)n;
		usleep(100);
	}
	return NULL;
}

Test(run_fake, large_output_to_a_slow_pipe)
{
	static uint8_t chunk[AGENT_DATA_MAX];
	struct harness h;
	struct fake *f;
	struct drain d = {0};
	pthread_t t;
	int p[2];
	const int frames = 16; /* 1 MiB */

	start(&h, ARGV("big"), 1, 0, 5, false);
	cr_assert_eq(pipe(p), 0);
	/* run.c holds h.out's number: swap the pipe in under it. */
	cr_assert_eq(dup2(p[1], h.out), h.out);
	close(p[1]);
	d.fd = p[0];
	pthread_create(&t, NULL, drain_pipe, &d);
	f = fake_start(h.path);
	f->hold = true;
	fake_go(f);
	fake_join(f);
	for (int i = 0; i < frames; i++) {
		uint8_t hdr[AGENT_HDR_SIZE];

		for (size_t j = 0; j < sizeof(chunk); j++)
			chunk[j] = (uint8_t)(((size_t)i * sizeof(chunk) + j) % 251);
		agent_hdr_put(hdr, AGENT_STDOUT, sizeof(chunk));
		cr_assert_eq(write(f->sock, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
		for (size_t off = 0; off < sizeof(chunk);) {
			ssize_t n = write(f->sock, chunk + off, sizeof(chunk) - off);

			cr_assert_gt(n, 0);
			off += (size_t)n;
		}
	}
	uint8_t ex[64];
	size_t n = agent_exit_encode(ex, AGENT_EXITED, 0, NULL);
	cr_assert_eq(write(f->sock, ex, n), (ssize_t)n);
	cr_assert_eq(wait_finish(&h, 15), 0);
	close(h.out);
	h.out = memfd_create("out", MFD_CLOEXEC);
	pthread_join(t, NULL);
	cr_assert_eq(d.total, (size_t)frames * sizeof(chunk));
	cr_assert(d.ordered);
	close(p[0]);
	finish(&h);
	fake_end(f);
}

/* ---- the real agent ---- */

/* A process that connects like the agent does at boot and serves the
 * connection with the agent's own code. */
static pid_t spawn_agent(struct harness *h)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Not the guest's to hold: flint would never see its EOF. */
		if (h->in[1] >= 0)
			close(h->in[1]);
		int fd = connect_unix(h->path);

		if (fd < 0)
			_exit(99);
		serve(fd);
		_exit(0);
	}
	return pid;
}

static void reap_agent(pid_t pid)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the agent's server ended with %#x", st);
}

/* Runs argv through the real agent; returns the status. */
static int agent_run(struct harness *h, char **argv, int argc, unsigned timeout_s, const char *in)
{
	pid_t pid;
	int status;

	start(h, argv, argc, timeout_s, 5, in != NULL);
	pid = spawn_agent(h);
	if (in) {
		cr_assert_eq(write(h->in[1], in, strlen(in)), (ssize_t)strlen(in));
		close(h->in[1]);
		h->in[1] = -1;
	}
	status = wait_finish(h, 15);
	reap_agent(pid);
	return status;
}

TestSuite(real_agent, .init = setup, .timeout = 30);

Test(real_agent, exit_status_and_separate_streams)
{
	struct harness h;
	char **argv = ARGV("sh", "-c", "echo out; echo err >&2; exit 3");

	cr_assert_eq(agent_run(&h, argv, 3, 0, NULL), 3);
	expect_text(h.out, "out\n");
	expect_text(h.err, "err\n");
	finish(&h);
}

Test(real_agent, stdin_relayed)
{
	struct harness h;
	char **argv = ARGV("sh", "-c", "read x; echo got:$x; cat");

	cr_assert_eq(agent_run(&h, argv, 3, 0, "abc\nrest\n"), 0);
	expect_text(h.out, "got:abc\nrest\n");
	finish(&h);
}

Test(real_agent, no_stdin_reads_eof)
{
	struct harness h;
	char **argv = ARGV("sh", "-c", "cat; echo end");

	cr_assert_eq(agent_run(&h, argv, 3, 0, NULL), 0);
	expect_text(h.out, "end\n");
	finish(&h);
}

Test(real_agent, killed_command_is_128_plus_signal)
{
	struct harness h;
	char **argv = ARGV("sh", "-c", "kill -9 $$");

	cr_assert_eq(agent_run(&h, argv, 3, 0, NULL), 137);
	finish(&h);
}

Test(real_agent, timeout_kills_the_process_group)
{
	struct harness h;
	struct timespec t0, t1;
	/* A grandchild holding the pipes open must not delay the status. */
	char **argv = ARGV("sh", "-c", "sleep 30 & sleep 30");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(agent_run(&h, argv, 3, 1, NULL), RUN_EXIT_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_str_eq(h.msg, "flint run: the command timed out after 1 s");
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 5);
	finish(&h);
}

Test(real_agent, missing_command_is_127)
{
	struct harness h;
	char **argv = ARGV("no-such-command-flint");

	cr_assert_eq(agent_run(&h, argv, 1, 0, NULL), 127);
	cr_assert_str_eq(
	    h.msg, "flint run: cannot run 'no-such-command-flint': No such file or directory");
	finish(&h);
}

Test(real_agent, default_environment_and_cwd)
{
	struct harness h;
	char **argv = ARGV("sh", "-c", "echo $HOME $PATH; pwd; env | grep -c =");

	cr_assert_eq(agent_run(&h, argv, 3, 0, NULL), 0);
	/* HOME, PATH and what sh itself sets (PWD; maybe SHLVL, _). */
	char *out = slurp(h.out, NULL);
	const char *want =
	    "/root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/\n";

	cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
	cr_assert_leq(atoi(out + strlen(want)), 5, "host environment leaked: %s", out);
	free(out);
	finish(&h);
}

/* flint run --env and --workdir: the request carries them; the agent's
 * defaults stay unless an entry of the same name replaces one. */
Test(real_agent, environment_and_working_directory_given)
{
	struct harness h;
	pid_t pid;

	prepare(&h, false);
	struct run_params p = {
	    .mode = RUN_ACCEPT,
	    .listen_path = h.path,
	    .argv = ARGV("sh", "-c", "echo \"$FOO|$HOME|$PATH\"; pwd"),
	    .argc = 3,
	    .envp = ARGV("FOO=a b=c", "HOME=/tmp"),
	    .envc = 2,
	    .cwd = "/tmp",
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h.out,
	    .err_fd = h.err,
	    .finish = on_finish,
	    .ctx = &h,
	};
	cr_assert_eq(run_start(&h.run, &p), 0);
	pid = spawn_agent(&h);
	cr_assert_eq(wait_finish(&h, 15), 0, "%s", h.msg);
	reap_agent(pid);
	expect_text(
	    h.out,
	    "a b=c|/tmp|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/tmp\n");
	finish(&h);
}

/* A directory that is not there: the command does not start (127). */
Test(real_agent, missing_working_directory_is_127)
{
	struct harness h;
	pid_t pid;

	prepare(&h, false);
	struct run_params p = {
	    .mode = RUN_ACCEPT,
	    .listen_path = h.path,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .cwd = "/no/such/dir-flint",
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h.out,
	    .err_fd = h.err,
	    .finish = on_finish,
	    .ctx = &h,
	};
	cr_assert_eq(run_start(&h.run, &p), 0);
	pid = spawn_agent(&h);
	cr_assert_eq(wait_finish(&h, 15), 127);
	reap_agent(pid);
	cr_assert_not_null(strstr(h.msg, "/no/such/dir-flint"), "%s", h.msg);
	finish(&h);
}

Test(real_agent, large_output)
{
	struct harness h;
	char **argv = ARGV("sh", "-c", "head -c 3000000 /dev/zero; echo e >&2");
	size_t len;

	cr_assert_eq(agent_run(&h, argv, 3, 0, NULL), 0);
	free(slurp(h.out, &len));
	cr_assert_eq(len, 3000000);
	expect_text(h.err, "e\n");
	finish(&h);
}

/* A command that never reads stdin while the host has megabytes of it:
 * neither side may deadlock. */
static void *feed(void *arg)
{
	static char buf[65536];
	int fd = *(int *)arg;

	memset(buf, 'z', sizeof(buf));
	for (int i = 0; i < 64; i++)
		if (write(fd, buf, sizeof(buf)) < 0)
			break;
	close(fd);
	return NULL;
}

Test(real_agent, unread_stdin_does_not_block_output)
{
	struct harness h;
	pthread_t t;
	pid_t pid;
	char **argv =
	    ARGV("sh", "-c", "exec 0<&-; head -c 500000 /dev/zero; sleep 0.2; echo end >&2");
	size_t len;

	start(&h, argv, 3, 0, 5, true);
	pid = spawn_agent(&h);
	pthread_create(&t, NULL, feed, &h.in[1]);
	cr_assert_eq(wait_finish(&h, 15), 0, "%s", h.msg);
	reap_agent(pid);
	free(slurp(h.out, &len));
	cr_assert_eq(len, 500000);
	expect_text(h.err, "end\n");
	/* The feeder may be blocked on a pipe nobody reads any more. */
	close(h.in[0]);
	h.in[0] = -1;
	pthread_join(t, NULL);
	h.in[1] = -1;
	finish(&h);
}

/* ---- the real agent's server against a raw connection ---- */

static pid_t serve_pair(int *sock)
{
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		serve(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

/* Sends raw bytes to a fresh server and expects an ERROR frame holding
 * needle, then a closed connection and a clean exit. */
static void expect_refused(const void *bytes, size_t n, const char *needle)
{
	uint8_t buf[AGENT_MSG_MAX];
	struct agent_reader rd;
	char msg[AGENT_MSG_MAX + 1];
	int sock;
	pid_t pid = serve_pair(&sock);

	cr_assert_eq(write(sock, bytes, n), (ssize_t)n);
	agent_reader_init(&rd, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&rd, sock), 1);
	cr_assert_eq(rd.f.type, AGENT_ERROR);
	agent_msg_copy(msg, sizeof(msg), buf, rd.f.len);
	cr_assert_not_null(strstr(msg, needle), "'%s' lacks '%s'", msg, needle);
	cr_assert_eq(agent_read_frame(&rd, sock), 0);
	close(sock);
	reap_agent(pid);
}

TestSuite(agent_serve, .timeout = 20);

Test(agent_serve, malformed_requests_get_an_error_reply)
{
	uint8_t b[64];

	agent_hdr_put(b, AGENT_REQUEST, 4);
	b[2] = 9;
	expect_refused(b, AGENT_HDR_SIZE, "bad frame header (protocol version 1 expected)");
	agent_hdr_put(b, AGENT_STDOUT, 1);
	expect_refused(b, AGENT_HDR_SIZE + 1, "expected a request, got frame type 16");
	agent_hdr_put(b, AGENT_STDIN, AGENT_DATA_MAX + 1);
	expect_refused(b, AGENT_HDR_SIZE, "frame too long");
	/* argc 0 */
	agent_hdr_put(b, AGENT_REQUEST, 17);
	memset(b + AGENT_HDR_SIZE, 0, 17);
	expect_refused(b, AGENT_HDR_SIZE + 17, "malformed request: no command (argc 0)");
	/* "ls", then an env entry without '=' */
	agent_hdr_put(b, AGENT_REQUEST, 16 + 3 + 3 + 2);
	memset(b + AGENT_HDR_SIZE, 0, 16);
	b[AGENT_HDR_SIZE + 8] = 1;
	b[AGENT_HDR_SIZE + 12] = 1;
	memcpy(b + AGENT_HDR_SIZE + 16, "ls\0ab\0/\0", 8);
	expect_refused(b, AGENT_HDR_SIZE + 24, "environment entry 0 is not NAME=value");
}

Test(agent_serve, host_closing_early_is_no_crash)
{
	uint8_t b[AGENT_HDR_SIZE + 4];
	int sock;
	pid_t pid;

	/* Nothing at all. */
	pid = serve_pair(&sock);
	close(sock);
	reap_agent(pid);
	/* Half a request. */
	pid = serve_pair(&sock);
	agent_hdr_put(b, AGENT_REQUEST, 100);
	cr_assert_eq(write(sock, b, sizeof(b)), (ssize_t)sizeof(b));
	close(sock);
	reap_agent(pid);
}

Test(agent_serve, host_vanishing_kills_the_command)
{
	uint8_t frm[256], buf[256];
	char *argv[] = {"sh", "-c", "echo $$; exec sleep 30"};
	struct agent_request req = {.argc = 3, .argv = argv};
	struct agent_reader rd;
	char err[128];
	int sock;
	pid_t pid = serve_pair(&sock), cmd;
	long n = agent_request_encode(&req, frm, sizeof(frm), err, sizeof(err));

	cr_assert_gt(n, 0);
	cr_assert_eq(write(sock, frm, (size_t)n), n);
	agent_reader_init(&rd, buf, sizeof(buf) - 1);
	cr_assert_eq(agent_read_frame(&rd, sock), 1);
	cr_assert_eq(rd.f.type, AGENT_STDOUT);
	buf[rd.f.len] = '\0';
	cmd = atoi((char *)buf);
	cr_assert_gt(cmd, 1);
	cr_assert_eq(kill(cmd, 0), 0);
	close(sock);
	reap_agent(pid); /* within the suite's timeout, not sleep's 30 s */
	cr_assert_eq(kill(cmd, 0), -1);
	cr_assert_eq(errno, ESRCH);
}

/* ---- RUN_CONNECT: a connection of run.c's own, through the vsock device ---- */

static double secs_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

TestSuite(run_connect, .init = setup, .timeout = 20);

Test(run_connect, connect_line_then_the_command)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_CONNECT, ARGV("sh", "-c", "exit 3"), 3, 7, 5, false, false);
	f = fake_device_start(h.uds);
	script(f, AGENT_STDOUT, "out\n", 4);
	script(f, AGENT_STDERR, "err\n", 4);
	script_exit(f, AGENT_EXITED, 3, NULL);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 3, "%s", h.msg);
	cr_assert_str_eq(h.msg, "");
	expect_text(h.out, "out\n");
	expect_text(h.err, "err\n");
	fake_join(f);
	/* Firecracker's hybrid vsock: the agent's port, then the request. */
	cr_assert_str_eq(f->line, "CONNECT 52\n");
	cr_assert_eq(atomic_load(&f->conns), 1);
	cr_assert(f->decoded, "the request came after the OK line, whole");
	cr_assert_eq(f->req.argc, 3);
	cr_assert_str_eq(f->req.argv[2], "exit 3");
	cr_assert_eq(f->req.timeout_ms, 7000);
	struct run_timings t;
	run_get_timings(h.run, &t);
	cr_assert_gt(t.agent_ready_us, 0);
	cr_assert_geq(t.cmd_start_us, t.agent_ready_us);
	cr_assert_geq(t.cmd_end_us, t.cmd_start_us);
	finish(&h);
	fake_end(f);
}

Test(run_connect, stdin_relayed)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_CONNECT, ARGV("cat"), 1, 0, 5, true, false);
	f = fake_device_start(h.uds);
	f->want_stdin = true;
	script_exit(f, AGENT_EXITED, 0, NULL);
	fake_go(f);
	cr_assert_eq(write(h.in[1], "abc", 3), 3);
	close(h.in[1]);
	h.in[1] = -1;
	cr_assert_eq(wait_finish(&h, 5), 0, "%s", h.msg);
	fake_join(f);
	cr_assert(f->stdin_eof);
	cr_assert_eq(f->stdin_len, 3);
	cr_assert_arr_eq(f->stdin_got, "abc", 3);
	finish(&h);
	fake_end(f);
}

/* The device closes the connection while nothing in the guest answers
 * (a restored guest's vsock coming back): run.c tries again. */
Test(run_connect, closed_connections_are_tried_again)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 5, false, false);
	f = fake_device_start(h.uds);
	f->nanswers = 3; /* three closed without a word, then OK */
	script_exit(f, AGENT_EXITED, 0, NULL);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 0, "%s", h.msg);
	fake_join(f);
	cr_assert_eq(atomic_load(&f->conns), 4);
	cr_assert(f->decoded);
	finish(&h);
	fake_end(f);
}

/* No socket yet (ENOENT), then one: tried again too. */
Test(run_connect, socket_that_appears_late)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 5, false, false);
	f = fake_device_start(h.uds);
	f->delay_ms = 200;
	script_exit(f, AGENT_EXITED, 4, NULL);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 4, "%s", h.msg);
	fake_join(f);
	cr_assert_eq(atomic_load(&f->conns), 1);
	finish(&h);
	fake_end(f);
}

/* An answer that is not "OK <port>\n" ends the run at once: the socket is
 * not a vsock device's, and nothing would change with another try. The
 * answer is shown as one line of plain text. */
static void expect_answer(const char *answer, const char *needle)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 5, false, false);
	f = fake_device_start(h.uds);
	f->answers[0] = answer;
	f->nanswers = 1;
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), RUN_EXIT_NO_AGENT, "answer '%s': %s", answer, h.msg);
	cr_assert_not_null(strstr(h.msg, "unexpected answer from the vsock socket"), "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, needle), "'%s' lacks '%s'", h.msg, needle);
	fake_stop(f);
	cr_assert_eq(atomic_load(&f->conns), 1, "answer '%s': tried again", answer);
	cr_assert_not(f->decoded, "a request after a refusal");
	finish(&h);
	fake_end(f);
}

Test(run_connect, other_answers_are_refused)
{
	expect_answer("ERROR no such port\n", ": \"ERROR no such port\"");
	expect_answer("OK\n", ": \"OK\"");
	expect_answer("OK \n", ": \"OK \"");
	expect_answer("OK 12x\n", ": \"OK 12x\"");
	expect_answer("OK 12345678901\n", ": \"OK 12345678901\"");
	expect_answer("ok 5\n", ": \"ok 5\"");
	expect_answer("NO\033]0;title\007\n", ": \"NO?]0;title?\"");
	/* No "\n" within 32 bytes. */
	expect_answer("0123456789abcdef0123456789abcdefXYZ",
		      ": \"0123456789abcdef0123456789abcdef\"");
}

Test(run_connect, nothing_answers_within_the_boot_timeout)
{
	struct harness h;
	struct fake *f;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 1, false, false);
	f = fake_device_start(h.uds);
	f->never_ok = true;
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), RUN_EXIT_NO_AGENT);
	cr_assert_geq(secs_since(&t0), 0.9);
	cr_assert_eq(atomic_load(&h.stuck_before_finish), 1, "the stuck guest not said");
	fake_stop(f);
	unsigned n = atomic_load(&f->conns);
	/* Tries before the fake listened are counted too. */
	cr_assert_not_null(strstr(h.msg, "flint run: the guest agent did not answer on vsock port "
					 "52 through "),
			   "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, " within 1 s ("), "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, " tries, the last: "), "%s", h.msg);
	cr_assert(n >= 5 && n <= 60, "%u tries in 1 s: backing off from 2 ms to 100 ms", n);
	struct run_timings t;
	run_get_timings(h.run, &t);
	cr_assert_eq(t.agent_ready_us, 0);
	finish(&h);
	fake_end(f);
}

Test(run_connect, no_socket_at_all)
{
	struct harness h;

	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 1, false, false);
	cr_assert_eq(wait_finish(&h, 5), RUN_EXIT_NO_AGENT);
	cr_assert_not_null(strstr(h.msg, "flint run: the guest agent did not answer on vsock port "
					 "52 through "),
			   "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, " within 1 s ("), "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, " tries, the last: No such file or directory)"), "%s",
			   h.msg);
	finish(&h);
}

/* A path that cannot become a socket (under a regular file): no retry. */
Test(run_connect, impossible_path_is_no_retry)
{
	struct harness h;
	struct timespec t0;
	char path[128];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	prepare(&h, false);
	int fd = open(h.uds, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/vsock", h.uds);
	struct run_params p = {
	    .mode = RUN_CONNECT,
	    .uds_path = path,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h.out,
	    .err_fd = h.err,
	    .finish = on_finish,
	    .ctx = &h,
	};
	cr_assert_eq(run_start(&h.run, &p), 0);
	cr_assert_eq(wait_finish(&h, 5), RUN_EXIT_NO_AGENT);
	cr_assert_lt(secs_since(&t0), 2);
	cr_assert_not_null(strstr(h.msg, "cannot connect to"), "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, "Not a directory"), "%s", h.msg);
	finish(&h);
}

/* The device takes the line and says nothing: the boot timeout ends the
 * wait; run_stop ends it sooner. */
Test(run_connect, no_answer_to_the_line)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 1, false, false);
	f = fake_device_start(h.uds);
	f->mute = true;
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), RUN_EXIT_NO_AGENT);
	cr_assert_not_null(strstr(h.msg, "flint run: the guest agent did not answer on vsock port "
					 "52 through "),
			   "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, " within 1 s ("), "%s", h.msg);
	cr_assert_not_null(strstr(h.msg, ", the last: no answer to the CONNECT line)"), "%s",
			   h.msg);
	finish(&h);
	fake_end(f);
}

Test(run_connect, stop_while_waiting_for_the_answer)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 0, false, false);
	f = fake_device_start(h.uds);
	f->mute = true;
	fake_go(f);
	for (int i = 0; i < 200 && !atomic_load(&f->conns); i++)
		usleep(10 * 1000);
	cr_assert_eq(atomic_load(&f->conns), 1);
	finish(&h);
	cr_assert_eq(h.calls, 0);
	fake_end(f);
}

Test(run_connect, stop_while_trying_again)
{
	struct harness h;

	start_mode(&h, RUN_CONNECT, ARGV("true"), 1, 0, 0, false, false);
	usleep(100 * 1000);
	finish(&h);
	cr_assert_eq(h.calls, 0);
}

Test(run_connect, bad_params)
{
	struct run *r;
	struct run_params p = {
	    .mode = RUN_CONNECT,
	    .listen_path = "/tmp/flint-unit-bad.sock",
	    .argv = ARGV("true"),
	    .argc = 1,
	    .in_fd = -1,
	    .out_fd = -1,
	    .err_fd = -1,
	    .finish = on_finish,
	};

	cr_assert_eq(run_start(&r, &p), -EINVAL, "no uds_path");
	cr_assert_null(r);
	p.uds_path = "/tmp/this-path-is-far-too-long-for-a-unix-socket-xxxxxxxxxxxxxxxxxxxxxxxxxx"
		     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	cr_assert_eq(run_start(&r, &p), -ENAMETOOLONG);
	p.uds_path = "/tmp/flint-unit-bad.vsock";
	p.argc = 0;
	cr_assert_eq(run_start(&r, &p), -EINVAL, "no command");
	p.ready = on_ready;
	cr_assert_eq(run_start(&r, &p), -EINVAL, "no command: the hook is RUN_ACCEPT's");
	cr_assert_eq(access("/tmp/flint-unit-bad.sock", F_OK), -1, "RUN_CONNECT listens nowhere");
}

/* ---- RUN_ACCEPT's ready hook (flint run --save-snapshot) ---- */

TestSuite(run_ready, .init = setup, .timeout = 20);

/* No command: the hook saves and ends the run; nothing is sent. */
Test(run_ready, no_command_the_hook_ends_the_run)
{
	struct harness h;
	struct fake *f;

	prepare(&h, false);
	struct run_params p = {
	    .listen_path = h.path,
	    .uds_path = h.uds,
	    .argc = 0,
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h.out,
	    .err_fd = h.err,
	    .finish = on_finish,
	    .ready = on_ready,
	    .ctx = &h,
	};
	cr_assert_eq(run_start(&h.run, &p), 0);
	f = fake_start(h.path);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 0, "%s", h.msg);
	cr_assert_str_eq(h.msg, "");
	cr_assert_eq(atomic_load(&h.ready_calls), 1);
	fake_join(f);
	cr_assert_not(f->decoded, "a request was sent");
	struct run_timings t;
	run_get_timings(h.run, &t);
	cr_assert_gt(t.agent_ready_us, 0);
	cr_assert_eq(t.cmd_start_us, 0);
	finish(&h);
	fake_end(f);
}

Test(run_ready, hook_fails)
{
	struct harness h;
	struct fake *f;

	prepare(&h, false);
	h.ready_ret = 125;
	h.ready_msg = "flint run: cannot save the snapshot: disk full";
	struct run_params p = {
	    .listen_path = h.path,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h.out,
	    .err_fd = h.err,
	    .finish = on_finish,
	    .ready = on_ready,
	    .ctx = &h,
	};
	cr_assert_eq(run_start(&h.run, &p), 0);
	f = fake_start(h.path);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 125);
	cr_assert_str_eq(h.msg, "flint run: cannot save the snapshot: disk full");
	fake_join(f);
	cr_assert_not(f->decoded, "the command was sent after the hook failed");
	finish(&h);
	fake_end(f);
}

Test(run_ready, send_on_the_accepted_connection)
{
	struct harness h;
	struct fake *f;

	start_mode(&h, RUN_ACCEPT, ARGV("x"), 1, 0, 5, false, true);
	h.ready_ret = RUN_READY_SEND;
	f = fake_start(h.path);
	script_exit(f, AGENT_EXITED, 6, NULL);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 6, "%s", h.msg);
	cr_assert_eq(atomic_load(&h.ready_calls), 1);
	finish(&h);
	fake_end(f);
}

/* The hook has reset every connection (a snapshot): the command goes over
 * a new one through the vsock device; the old one gets nothing. */
Test(run_ready, reconnect_through_the_device)
{
	struct harness h;
	struct fake *boot, *dev;

	start_mode(&h, RUN_ACCEPT, ARGV("sh", "-c", "echo hi"), 3, 0, 5, false, true);
	h.ready_ret = RUN_READY_RECONNECT;
	boot = fake_start(h.path);
	dev = fake_device_start(h.uds);
	script(dev, AGENT_STDOUT, "hi\n", 3);
	script_exit(dev, AGENT_EXITED, 7, NULL);
	fake_go(boot);
	fake_go(dev);
	cr_assert_eq(wait_finish(&h, 5), 7, "%s", h.msg);
	expect_text(h.out, "hi\n");
	cr_assert_eq(atomic_load(&h.ready_calls), 1);
	fake_join(boot);
	cr_assert_not(boot->decoded, "the command went to the connection the hook reset");
	fake_join(dev);
	cr_assert(dev->decoded);
	cr_assert_str_eq(dev->req.argv[2], "echo hi");
	cr_assert_str_eq(dev->line, "CONNECT 52\n");
	finish(&h);
	fake_end(boot);
	fake_end(dev);
}

Test(run_ready, reconnect_without_a_device_socket)
{
	struct harness h;
	struct fake *f;

	prepare(&h, false);
	h.ready_ret = RUN_READY_RECONNECT;
	struct run_params p = {
	    .listen_path = h.path,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h.out,
	    .err_fd = h.err,
	    .finish = on_finish,
	    .ready = on_ready,
	    .ctx = &h,
	};
	cr_assert_eq(run_start(&h.run, &p), 0);
	f = fake_start(h.path);
	fake_go(f);
	cr_assert_eq(wait_finish(&h, 5), 125);
	cr_assert_str_eq(h.msg, "flint run: no vsock socket to reach the agent through");
	finish(&h);
	fake_end(f);
}

/* ---- the real agent over RUN_CONNECT ---- */

/* A process that plays the vsock device (takes the CONNECT line, answers
 * OK) and serves the connection with the agent's own code. */
static pid_t spawn_device_agent(struct harness *h)
{
	int lfd = listen_unix(h->uds);
	pid_t pid;

	cr_assert_geq(lfd, 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char line[64];
		int fd;

		if (h->in[1] >= 0)
			close(h->in[1]);
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		close(lfd);
		if (fd < 0)
			_exit(99);
		read_line(fd, line, sizeof(line));
		if (strcmp(line, "CONNECT 52\n") || write(fd, "OK 1073741824\n", 14) != 14)
			_exit(98);
		serve(fd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

Test(real_agent, command_over_a_connection_of_its_own)
{
	struct harness h;
	char **argv = ARGV("sh", "-c", "read x; echo got:$x; echo err >&2; exit 3");
	pid_t pid;

	start_mode(&h, RUN_CONNECT, argv, 3, 0, 5, true, false);
	pid = spawn_device_agent(&h);
	cr_assert_eq(write(h.in[1], "abc\n", 4), 4);
	close(h.in[1]);
	h.in[1] = -1;
	cr_assert_eq(wait_finish(&h, 15), 3, "%s", h.msg);
	reap_agent(pid);
	expect_text(h.out, "got:abc\n");
	expect_text(h.err, "err\n");
	finish(&h);
}

/* ---- the run thread under its seccomp filter ---- */

/* In a child: the policy on, so that the run thread installs its filter;
 * RUN_CONNECT against the fake device, then RUN_ACCEPT with a hook that
 * has it reconnect. Any call outside the run table kills the child with
 * SIGSYS; a wrong result exits 1. No Criterion asserts in here. */
static int child_run(struct harness *h, enum run_mode mode, int ready_ret)
{
	struct fake *boot = NULL, *dev;
	struct timespec until;
	int status = -1;

	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->m, NULL);
	pthread_cond_init(&h->c, NULL);
	snprintf(h->path, sizeof(h->path), "/tmp/flint-unit-run-%d.sock", getpid());
	snprintf(h->uds, sizeof(h->uds), "/tmp/flint-unit-run-%d.vsock", getpid());
	h->ready_ret = ready_ret;
	h->out = memfd_create("out", MFD_CLOEXEC);
	struct run_params p = {
	    .mode = mode,
	    .listen_path = h->path,
	    .uds_path = h->uds,
	    .argv = ARGV("x"),
	    .argc = 1,
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h->out,
	    .err_fd = -1,
	    .finish = on_finish,
	    .ready = mode == RUN_ACCEPT ? on_ready : NULL,
	    .ctx = h,
	};
	dev = fake_device_start(h->uds);
	dev->nanswers = 1; /* one closed connection first: a retry too */
	script(dev, AGENT_STDOUT, "ok", 2);
	script_exit(dev, AGENT_EXITED, 9, NULL);
	if (run_start(&h->run, &p) < 0)
		_exit(1);
	if (mode == RUN_ACCEPT) {
		boot = fake_start(h->path);
		pthread_create(&boot->thread, NULL, fake_agent, boot);
	}
	pthread_create(&dev->thread, NULL, fake_agent, dev);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&h->m);
	while (!h->calls && pthread_cond_timedwait(&h->c, &h->m, &until) == 0)
		;
	if (h->calls)
		status = h->status;
	pthread_mutex_unlock(&h->m);
	run_stop(h->run);
	atomic_store(&dev->quit, true);
	pthread_join(dev->thread, NULL);
	if (boot)
		pthread_join(boot->thread, NULL);
	unlink(h->uds);
	return status == 9 && lseek(h->out, 0, SEEK_END) == 2 ? 0 : 1;
}

Test(run_connect, run_thread_under_its_seccomp_filter)
{
	static const struct {
		enum run_mode mode;
		int ready_ret;
	} runs[] = {{RUN_CONNECT, 0}, {RUN_ACCEPT, RUN_READY_RECONNECT}};

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		int st;
		pid_t pid = fork();

		cr_assert_geq(pid, 0);
		if (pid == 0) {
			struct harness h;

			if (seccomp_configure(SECCOMP_KILL, -1) < 0)
				_exit(2);
			_exit(child_run(&h, runs[i].mode, runs[i].ready_ret));
		}
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS,
			  "run %zu: a call outside the run table (SIGSYS)", i);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run %zu: status 0x%x", i, st);
	}
}

/* ---- RUN_CONNECT after a go byte (flint run --wait-fd) ---- */

static int on_go(void *ctx, char *msg, size_t len)
{
	struct harness *h = ctx;

	atomic_fetch_add(&h->go_calls, 1);
	if (h->go_msg)
		snprintf(msg, len, "%s", h->go_msg);
	return h->go_ret;
}

/* RUN_CONNECT with the go hook on a pipe: go[1] is the test's end. */
static void start_go(struct harness *h, int go[2], unsigned boot_s)
{
	prepare(h, false);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	struct run_params p = {
	    .mode = RUN_CONNECT,
	    .uds_path = h->uds,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .boot_timeout_s = boot_s,
	    .in_fd = -1,
	    .out_fd = h->out,
	    .err_fd = h->err,
	    .finish = on_finish,
	    .go = on_go,
	    .go_fd = go[0],
	    .ctx = h,
	};
	cr_assert_eq(run_start(&h->run, &p), 0);
}

TestSuite(run_go, .init = setup, .timeout = 20);

/* Nothing reaches the agent before the byte; then go() once, and the
 * command as usual. Only the one byte is read. */
Test(run_go, byte_then_the_command)
{
	struct harness h;
	struct fake *f;
	int go[2];
	char rest[8] = "";

	start_go(&h, go, 5);
	f = fake_device_start(h.uds);
	script(f, AGENT_STDOUT, "hi\n", 3);
	script_exit(f, AGENT_EXITED, 6, NULL);
	fake_go(f);
	usleep(200 * 1000);
	cr_assert_eq(atomic_load(&f->conns), 0, "the agent was reached before the go byte");
	cr_assert_eq(atomic_load(&h.go_calls), 0);
	cr_assert_not(run_finished(h.run));
	cr_assert_eq(write(go[1], "gxy", 3), 3);
	cr_assert_eq(wait_finish(&h, 5), 6, "%s", h.msg);
	cr_assert_eq(atomic_load(&h.go_calls), 1);
	expect_text(h.out, "hi\n");
	fake_join(f);
	cr_assert_eq(atomic_load(&f->conns), 1);
	cr_assert(f->decoded);
	cr_assert_eq(read(go[0], rest, sizeof(rest)), 2, "more than the go byte was read");
	cr_assert_str_eq(rest, "xy");
	struct run_timings t;
	run_get_timings(h.run, &t);
	cr_assert_gt(t.go_us, 0);
	cr_assert_not(t.given_up);
	cr_assert_geq(t.agent_ready_us, t.go_us);
	finish(&h);
	fake_end(f);
	close(go[0]);
	close(go[1]);
}

/* The end of the fd without a byte: finish(0), no go(), no connection. */
Test(run_go, end_without_a_byte_gives_up)
{
	struct harness h;
	struct fake *f;
	int go[2];

	start_go(&h, go, 5);
	f = fake_device_start(h.uds);
	script_exit(f, AGENT_EXITED, 6, NULL);
	fake_go(f);
	close(go[1]);
	cr_assert_eq(wait_finish(&h, 5), 0, "%s", h.msg);
	cr_assert_str_eq(h.msg, "");
	cr_assert_eq(atomic_load(&h.go_calls), 0);
	struct run_timings t;
	run_get_timings(h.run, &t);
	cr_assert(t.given_up);
	cr_assert_gt(t.go_us, 0);
	cr_assert_eq(t.agent_ready_us, 0);
	fake_stop(f);
	cr_assert_eq(atomic_load(&f->conns), 0);
	cr_assert_not(f->decoded);
	finish(&h);
	fake_end(f);
	close(go[0]);
}

/* go() refuses (the VM would not resume): its status and reason. */
Test(run_go, go_hook_fails)
{
	struct harness h;
	int go[2];

	start_go(&h, go, 5);
	h.go_ret = 125;
	h.go_msg = "cannot resume";
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(wait_finish(&h, 5), 125);
	cr_assert_str_eq(h.msg, "cannot resume");
	cr_assert_eq(atomic_load(&h.go_calls), 1);
	finish(&h);
	close(go[0]);
	close(go[1]);
}

/* The boot timeout counts from the byte, not from run_start: a warm VM
 * may wait far longer than it. */
Test(run_go, boot_timeout_counts_from_the_byte)
{
	struct harness h;
	struct fake *f;
	int go[2];

	start_go(&h, go, 1);
	usleep(1300 * 1000);
	f = fake_device_start(h.uds);
	script_exit(f, AGENT_EXITED, 0, NULL);
	fake_go(f);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(wait_finish(&h, 5), 0, "%s", h.msg);
	finish(&h);
	fake_end(f);
	close(go[0]);
	close(go[1]);
}

/* run_stop while waiting: the thread ends, finish() is not called. */
Test(run_go, stop_while_waiting)
{
	struct harness h;
	int go[2];

	start_go(&h, go, 5);
	usleep(50 * 1000);
	run_stop(h.run);
	h.run = NULL;
	cr_assert_eq(h.calls, 0);
	cr_assert_eq(atomic_load(&h.go_calls), 0);
	finish(&h);
	close(go[0]);
	close(go[1]);
}

/* A go fd that is not open: EXIT_FLINT_ERROR, saying so. */
Test(run_go, closed_fd)
{
	struct harness h;

	prepare(&h, false);
	struct run_params p = {
	    .mode = RUN_CONNECT,
	    .uds_path = h.uds,
	    .argv = ARGV("true"),
	    .argc = 1,
	    .in_fd = -1,
	    .out_fd = h.out,
	    .err_fd = h.err,
	    .finish = on_finish,
	    .go = on_go,
	    .go_fd = 1000, /* poll() reports POLLNVAL */
	    .ctx = &h,
	};
	cr_assert_eq(fcntl(1000, F_GETFD), -1);
	cr_assert_eq(run_start(&h.run, &p), 0);
	cr_assert_eq(wait_finish(&h, 5), EXIT_FLINT_ERROR);
	cr_assert_not_null(strstr(h.msg, "is not open"), "%s", h.msg);
	finish(&h);
}

Test(run_go, bad_params)
{
	struct run *r = NULL;
	struct run_params p = {
	    .mode = RUN_ACCEPT,
	    .listen_path = "/tmp/flint-unit-run-go.sock",
	    .uds_path = "/tmp/flint-unit-run-go.vsock",
	    .argv = ARGV("true"),
	    .argc = 1,
	    .in_fd = -1,
	    .out_fd = -1,
	    .err_fd = -1,
	    .finish = on_finish,
	    .go = on_go,
	    .go_fd = 0,
	};

	/* Only RUN_CONNECT waits, and only on an fd. */
	cr_assert_eq(run_start(&r, &p), -EINVAL);
	cr_assert_null(r);
	p.mode = RUN_CONNECT;
	p.go_fd = -1;
	cr_assert_eq(run_start(&r, &p), -EINVAL);
	cr_assert_null(r);
}

/* In a child with the policy on: the wait and go() under the run
 * thread's filter (the byte already there). */
static int child_go(struct harness *h)
{
	struct fake *dev;
	struct timespec until;
	int status = -1, go[2];

	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->m, NULL);
	pthread_cond_init(&h->c, NULL);
	snprintf(h->uds, sizeof(h->uds), "/tmp/flint-unit-run-%d.vsock", getpid());
	h->out = memfd_create("out", MFD_CLOEXEC);
	if (pipe2(go, O_CLOEXEC) < 0 || write(go[1], "g", 1) != 1)
		_exit(1);
	struct run_params p = {
	    .mode = RUN_CONNECT,
	    .uds_path = h->uds,
	    .argv = ARGV("x"),
	    .argc = 1,
	    .boot_timeout_s = 5,
	    .in_fd = -1,
	    .out_fd = h->out,
	    .err_fd = -1,
	    .finish = on_finish,
	    .go = on_go,
	    .go_fd = go[0],
	    .ctx = h,
	};
	dev = fake_device_start(h->uds);
	script(dev, AGENT_STDOUT, "ok", 2);
	script_exit(dev, AGENT_EXITED, 9, NULL);
	if (run_start(&h->run, &p) < 0)
		_exit(1);
	pthread_create(&dev->thread, NULL, fake_agent, dev);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&h->m);
	while (!h->calls && pthread_cond_timedwait(&h->c, &h->m, &until) == 0)
		;
	if (h->calls)
		status = h->status;
	pthread_mutex_unlock(&h->m);
	run_stop(h->run);
	atomic_store(&dev->quit, true);
	pthread_join(dev->thread, NULL);
	unlink(h->uds);
	bool ok = status == 9 && atomic_load(&h->go_calls) == 1 && lseek(h->out, 0, SEEK_END) == 2;
	return ok ? 0 : 1;
}

Test(run_go, under_the_run_threads_seccomp_filter)
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct harness h;

		if (seccomp_configure(SECCOMP_KILL, -1) < 0)
			_exit(2);
		_exit(child_go(&h));
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS, "a call outside the run table");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}
