/* agentc (issue 13): flint serve's own client of a running VM's guest
 * agent, against a stand-in for the VM's vsock device and agent on a Unix
 * socket (a thread): the CONNECT line and its answer, the request (argv,
 * environment, working directory, timeout, stdin asked for), the body as
 * STDIN frames then STDIN_EOF, stdout handed out and stderr kept, and each
 * way a session ends (EXIT with a status, a signal, the agent's timeout,
 * a command that did not start, ERROR, the connection lost, a bad frame,
 * nobody answering, a kill from another thread). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/proto.h"
#include "serve/agentc.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})

/* The stand-in: what it answers, and what it was sent. */
struct fake {
	char path[108];
	int lfd;
	pthread_t t;
	const char *answer;	 /* the device's line; NULL: "OK 1073741824\n" */
	uint8_t script[1 << 18]; /* frames sent after the body's end */
	size_t script_len;
	bool close_early; /* close right after the request */
	bool hang;	  /* wait 2 s before answering */
	struct agent_request req;
	uint8_t reqbuf[1 << 16];
	char body[1 << 16];
	size_t body_len;
	bool got_eof;
};

static void add(struct fake *f, uint8_t type, const void *p, size_t len)
{
	agent_hdr_put(f->script + f->script_len, type, (uint32_t)len);
	memcpy(f->script + f->script_len + AGENT_HDR_SIZE, p, len);
	f->script_len += AGENT_HDR_SIZE + len;
}

static void add_exit(struct fake *f, uint32_t kind, int32_t value)
{
	uint8_t buf[AGENT_HDR_SIZE + AGENT_EXIT_FIXED + AGENT_MSG_MAX];
	size_t n = agent_exit_encode(buf, kind, value, "why");

	memcpy(f->script + f->script_len, buf, n);
	f->script_len += n;
}

static void *serve(void *arg)
{
	struct fake *f = arg;
	struct agent_reader rd;
	static uint8_t payload[AGENT_REQUEST_MAX];
	char line[32];
	size_t n = 0;
	int c = accept(f->lfd, NULL, NULL);
	char err[128];

	if (c < 0)
		return NULL;
	while (n < sizeof(line) - 1 && read(c, line + n, 1) == 1 && line[n++] != '\n')
		;
	line[n] = '\0';
	cr_assert_str_eq(line, "CONNECT 52\n");
	const char *ans = f->answer ? f->answer : "OK 1073741824\n";
	cr_assert_eq(write(c, ans, strlen(ans)), (ssize_t)strlen(ans));
	agent_reader_init(&rd, payload, sizeof(payload));
	if (agent_read_frame(&rd, c) == 1 && rd.f.type == AGENT_REQUEST) {
		memcpy(f->reqbuf, payload, rd.f.len);
		cr_assert_eq(agent_request_decode(f->reqbuf, rd.f.len, &f->req, err, sizeof(err)),
			     0, "%s", err);
	}
	if (f->close_early) {
		close(c);
		return NULL;
	}
	while (agent_read_frame(&rd, c) == 1) {
		if (rd.f.type == AGENT_STDIN_EOF) {
			f->got_eof = true;
			break;
		}
		memcpy(f->body + f->body_len, payload, rd.f.len);
		f->body_len += rd.f.len;
	}
	if (f->hang)
		sleep(2);
	/* The client may be gone already (refused, killed): no check. */
	if (write(c, f->script, f->script_len) < 0)
		f->script_len = 0;
	usleep(100 * 1000); /* the client reads before the end */
	close(c);
	return NULL;
}

static struct fake *fake_start(void)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	cr_assert_not_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/flint-unit-agentc-%d.sock", getpid());
	unlink(f->path);
	strcpy(sa.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(f->lfd >= 0);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 4), 0);
	return f;
}

static void fake_go(struct fake *f)
{
	cr_assert_eq(pthread_create(&f->t, NULL, serve, f), 0);
}

static void fake_free(struct fake *f)
{
	close(f->lfd);
	unlink(f->path);
	agent_request_free(&f->req);
	free(f);
}

static void fake_end(struct fake *f)
{
	pthread_join(f->t, NULL);
	fake_free(f);
}

struct body {
	const char *p;
	size_t len, off;
};

static ssize_t body_in(void *ctx, void *buf, size_t len)
{
	struct body *b = ctx;
	size_t n = b->len - b->off < len ? b->len - b->off : len;

	memcpy(buf, b->p + b->off, n);
	b->off += n;
	return (ssize_t)n;
}

/* A whole session: its stdout into out (NUL-terminated), its result. */
static void session(struct fake *f, const struct agentc_params *p, const char *body, char *out,
		    size_t cap, struct worker_result *res, struct agentc **keep)
{
	struct body b = {body, body ? strlen(body) : 0, 0};
	struct agentc *a;
	size_t len = 0;
	ssize_t n;

	if (f)
		fake_go(f);
	cr_assert_eq(agentc_start(&a, p), 0);
	while ((n = agentc_read(a, body ? body_in : NULL, &b, out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	agentc_result(a, res);
	*keep = a;
}

/* As flint serve: a peer gone is an error, not a signal. */
static void no_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(agentc, .init = no_sigpipe, .timeout = 20);

Test(agentc, request_body_streams_and_status)
{
	struct fake *f = fake_start();
	struct agentc_params p = {.uds = f->path,
				  .argv = ARGV("sh", "-c", "cat"),
				  .env = ARGV("A=1", "B=two"),
				  .workdir = "/tmp",
				  .timeout_s = 7,
				  .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	char out[256];

	add(f, AGENT_STDOUT, "out1 ", 5);
	add(f, AGENT_STDERR, "err\n", 4);
	add(f, AGENT_STDOUT, "out2", 4);
	add_exit(f, AGENT_EXITED, 3);
	session(f, &p, "the body", out, sizeof(out), &res, &a);
	pthread_join(f->t, NULL);
	cr_assert_str_eq(out, "out1 out2");
	cr_assert_eq(res.outcome, WORKER_EXIT);
	cr_assert_eq(res.status, 3);
	cr_assert_str_eq(res.err, "err\n");
	cr_assert_geq(res.ready_ms, 0);
	cr_assert_geq(res.command_ms, 0);
	cr_assert_not(res.unsent);
	cr_assert_eq(f->req.argc, 3);
	cr_assert_str_eq(f->req.argv[2], "cat");
	cr_assert_eq(f->req.envc, 2);
	cr_assert_str_eq(f->req.envp[1], "B=two");
	cr_assert_str_eq(f->req.cwd, "/tmp");
	cr_assert_eq(f->req.timeout_ms, 7000);
	cr_assert_eq(f->req.flags, AGENT_REQ_STDIN);
	cr_assert_eq(f->body_len, 8);
	cr_assert_eq(memcmp(f->body, "the body", 8), 0);
	cr_assert(f->got_eof);
	fake_free(f);
	agentc_destroy(a);
}

/* Each final frame and the outcome it gives. */
static void ends(void (*script)(struct fake *), enum worker_outcome o, int status, const char *err)
{
	struct fake *f = fake_start();
	struct agentc_params p = {.uds = f->path, .argv = ARGV("true"), .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	char out[64];

	script(f);
	session(f, &p, NULL, out, sizeof(out), &res, &a);
	cr_assert_eq(res.outcome, o, "outcome %s", worker_outcome_name(res.outcome));
	cr_assert_eq(res.status, status);
	if (err)
		cr_assert_not_null(strstr(res.err, err), "'%s' not in '%s'", err, res.err);
	/* A session lost gives its reason apart, for the client's answer. */
	if (o == WORKER_LOST)
		cr_assert_not_null(strstr(agentc_said(a), err), "said '%s'", agentc_said(a));
	if (o == WORKER_OK)
		cr_assert_str_empty(agentc_said(a));
	fake_end(f);
	agentc_destroy(a);
}

static void s_ok(struct fake *f)
{
	add_exit(f, AGENT_EXITED, 0);
}
static void s_signal(struct fake *f)
{
	add_exit(f, AGENT_SIGNALED, 9);
}
static void s_timeout(struct fake *f)
{
	add_exit(f, AGENT_TIMED_OUT, 0);
}
static void s_not_started(struct fake *f)
{
	add_exit(f, AGENT_NOT_STARTED, 2);
}
static void s_error(struct fake *f)
{
	add(f, AGENT_ERROR, "no such user", 12);
}
static void s_nothing(struct fake *f)
{
	(void)f;
}
static void s_bad(struct fake *f)
{
	uint8_t hdr[AGENT_HDR_SIZE] = {AGENT_STDOUT, 0, 1, 0, 0xff, 0xff, 0xff, 0x7f};
	memcpy(f->script, hdr, sizeof(hdr));
	f->script_len = sizeof(hdr);
}
static void s_host_frame(struct fake *f)
{
	add(f, AGENT_STDIN, "x", 1);
}

Test(agentc, ends)
{
	ends(s_ok, WORKER_OK, 0, NULL);
	ends(s_signal, WORKER_SIGNAL, 9, NULL);
	ends(s_timeout, WORKER_TIMEOUT, 124, NULL);
	ends(s_not_started, WORKER_EXIT, 127, "why");
	ends(s_error, WORKER_LOST, 0, "refused the command: no such user");
	ends(s_nothing, WORKER_LOST, 0, "lost the connection");
	ends(s_bad, WORKER_LOST, 0, "a bad frame");
	ends(s_host_frame, WORKER_LOST, 0, "host-to-guest frame");
}

Test(agentc, closed_after_the_request)
{
	struct fake *f = fake_start();
	struct agentc_params p = {.uds = f->path, .argv = ARGV("true"), .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	char out[64];

	f->close_early = true;
	session(f, &p, "body", out, sizeof(out), &res, &a);
	cr_assert_eq(res.outcome, WORKER_LOST);
	fake_end(f);
	agentc_destroy(a);
}

Test(agentc, another_answer_from_the_device)
{
	struct fake *f = fake_start();
	struct agentc_params p = {.uds = f->path, .argv = ARGV("true"), .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	char out[64];

	f->answer = "NO\x01 way\n";
	session(f, &p, NULL, out, sizeof(out), &res, &a);
	cr_assert_eq(res.outcome, WORKER_LOST);
	cr_assert_not_null(strstr(res.err, "answered 'NO? way'"), "%s", res.err);
	fake_end(f);
	agentc_destroy(a);
}

/* Nobody listens: retried until connect_ms, then LOST. */
Test(agentc, nobody_answers)
{
	struct agentc_params p = {
	    .uds = "/tmp/flint-unit-agentc-none.sock", .argv = ARGV("true"), .connect_ms = 300};
	struct worker_result res;
	struct agentc *a;
	char out[16];

	unlink(p.uds);
	session(NULL, &p, NULL, out, sizeof(out), &res, &a);
	cr_assert_eq(res.outcome, WORKER_LOST);
	cr_assert_not_null(strstr(res.err, "did not answer within 300 ms"), "%s", res.err);
	cr_assert_str_eq(agentc_said(a), "the guest agent did not answer within 300 ms");
	cr_assert_geq(res.run_ns, 300000000ULL);
	cr_assert(res.unsent, "nothing was sent, and the result says otherwise");
	agentc_destroy(a);
}

static bool gone_after(void *ctx)
{
	return --*(int *)ctx <= 0;
}

/* The VM's flint gone (vm_gone): the tries stop then, not at connect_ms. */
Test(agentc, gives_up_when_the_vm_is_gone)
{
	int tries = 3;
	struct agentc_params p = {.uds = "/tmp/flint-unit-agentc-none.sock",
				  .argv = ARGV("true"),
				  .connect_ms = 10000,
				  .vm_gone = gone_after,
				  .gone_ctx = &tries};
	struct worker_result res;
	struct agentc *a;
	char out[16];

	unlink(p.uds);
	session(NULL, &p, NULL, out, sizeof(out), &res, &a);
	cr_assert_eq(res.outcome, WORKER_LOST);
	cr_assert_not_null(strstr(res.err, "the VM's flint ended before its guest agent answered"),
			   "%s", res.err);
	cr_assert_str_eq(agentc_said(a), "the VM's flint ended before its guest agent answered");
	cr_assert_lt(res.run_ns, 2000000000ULL);
	cr_assert_eq(tries, 0);
	cr_assert(res.unsent);
	agentc_destroy(a);
}

static void *kill_soon(void *arg)
{
	usleep(200 * 1000);
	agentc_kill(arg);
	return NULL;
}

/* A kill from another thread ends a session that waits on the agent. */
Test(agentc, kill_from_another_thread)
{
	struct fake *f = fake_start();
	struct agentc_params p = {.uds = f->path, .argv = ARGV("sleep", "100"), .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	pthread_t t;
	char buf[16];

	f->hang = true;
	fake_go(f);
	cr_assert_eq(agentc_start(&a, &p), 0);
	cr_assert_eq(pthread_create(&t, NULL, kill_soon, a), 0);
	while (agentc_read(a, NULL, NULL, buf, sizeof(buf)) > 0)
		;
	pthread_join(t, NULL);
	agentc_result(a, &res);
	cr_assert_eq(res.outcome, WORKER_KILLED);
	agentc_destroy(a);
	fake_end(f);
}

static void *hang_up_soon(void *arg)
{
	usleep(200 * 1000);
	close(*(int *)arg);
	return NULL;
}

/* The HTTP client hangs up (a socketpair for its connection) while the
 * agent is quiet: the session ends at once with its own outcome, and the
 * connection to the agent is shut down (the agent kills the command). */
Test(agentc, client_hang_up_ends_the_session)
{
	struct fake *f = fake_start();
	struct agentc_params p = {.uds = f->path, .argv = ARGV("sleep", "100"), .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	pthread_t t;
	char buf[16];
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->hang = true;
	fake_go(f);
	cr_assert_eq(agentc_start(&a, &p), 0);
	agentc_watch_client(a, sv[0]);
	uint64_t t0 = now_ns();
	cr_assert_eq(pthread_create(&t, NULL, hang_up_soon, &sv[1]), 0);
	cr_assert_eq(agentc_read(a, NULL, NULL, buf, sizeof(buf)), -ECONNABORTED);
	uint64_t took = now_ns() - t0;
	pthread_join(t, NULL);
	cr_assert_lt(took, 1500000000ULL, "%.2f s: not before the agent's answer", took / 1e9);
	cr_assert_eq(agentc_read(a, NULL, NULL, buf, sizeof(buf)), 0);
	agentc_result(a, &res);
	cr_assert_eq(res.outcome, WORKER_CLIENT_GONE, "%s", worker_outcome_name(res.outcome));
	cr_assert_not(res.deadline);
	agentc_destroy(a);
	fake_end(f);
	close(sv[0]);
}

/* A fake agent that answers the CONNECT line, takes the request and its
 * body, then sends frames[0..len) again and again until the server closes
 * the connection; with big, from a socket buffer of 64 MiB
 * (SO_SNDBUFFORCE: root's, as the tests run), so that the server's reads
 * never catch up. */
static void *flood(struct fake *f, const uint8_t *frames, size_t len, bool big)
{
	static uint8_t payload[AGENT_REQUEST_MAX];
	struct agent_reader rd;
	int sz = 64 << 20;
	char line[32];
	size_t n = 0;
	int c = accept(f->lfd, NULL, NULL);

	if (c < 0)
		return NULL;
	if (big && setsockopt(c, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	while (n < sizeof(line) - 1 && read(c, line + n, 1) == 1 && line[n++] != '\n')
		;
	cr_assert_eq(write(c, "OK 1073741824\n", 14), 14);
	agent_reader_init(&rd, payload, sizeof(payload));
	while (agent_read_frame(&rd, c) == 1 && rd.f.type != AGENT_STDIN_EOF)
		;
	while (send(c, frames, len, MSG_NOSIGNAL) > 0)
		;
	close(c);
	return NULL;
}

/* An agent that never reports the command killed but keeps the
 * connection busy, faster than the server reads it: a byte of output and
 * an empty frame, without end. */
static void *chatty(void *arg)
{
	static uint8_t frames[1000 * (2 * AGENT_HDR_SIZE + 1)];
	struct agent_outbuf o = {.buf = frames, .cap = sizeof(frames)};

	while (agent_out_frame(&o, AGENT_STDOUT, "x", 1) == 0 &&
	       agent_out_frame(&o, AGENT_STDOUT, NULL, 0) == 0)
		;
	return flood(arg, frames, o.len, false);
}

/* The server's deadline (timeout_s and AGENTC_MARGIN_S) ends the session
 * even while the agent keeps sending. */
Test(agentc, a_chatty_agent_past_the_deadline_is_given_up, .timeout = 40)
{
	struct fake *f = fake_start();
	struct agentc_params p = {
	    .uds = f->path, .argv = ARGV("yes"), .timeout_s = 1, .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	uint64_t t0 = now_ns(), took;
	char buf[4096];
	size_t got = 0;
	ssize_t n;

	cr_assert_eq(pthread_create(&f->t, NULL, chatty, f), 0);
	cr_assert_eq(agentc_start(&a, &p), 0);
	while ((n = agentc_read(a, NULL, NULL, buf, sizeof(buf))) > 0) {
		got += (size_t)n;
		cr_assert_lt(now_ns() - t0, (uint64_t)(1 + AGENTC_MARGIN_S + 10) * 1000000000ULL,
			     "still reading %zu bytes later", got);
	}
	took = now_ns() - t0;
	agentc_result(a, &res);
	cr_assert_eq(res.outcome, WORKER_TIMEOUT, "%s", worker_outcome_name(res.outcome));
	cr_assert(res.deadline);
	cr_assert_gt(got, 0);
	cr_assert_geq(took, (uint64_t)(1 + AGENTC_MARGIN_S) * 1000000000ULL);
	agentc_destroy(a);
	fake_end(f);
}

/* The same with stderr frames only, which hand the caller nothing, from
 * a big socket buffer. */
static void *stderr_only(void *arg)
{
	static uint8_t frames[4096 * (AGENT_HDR_SIZE + 1)];
	struct agent_outbuf o = {.buf = frames, .cap = sizeof(frames)};

	while (agent_out_frame(&o, AGENT_STDERR, "e", 1) == 0)
		;
	return flood(arg, frames, o.len, true);
}

Test(agentc, an_agent_sending_only_stderr_past_the_deadline_is_given_up, .timeout = 40)
{
	struct fake *f = fake_start();
	struct agentc_params p = {
	    .uds = f->path, .argv = ARGV("yes"), .timeout_s = 1, .connect_ms = 2000};
	struct worker_result res;
	struct agentc *a;
	char buf[16];

	cr_assert_eq(pthread_create(&f->t, NULL, stderr_only, f), 0);
	cr_assert_eq(agentc_start(&a, &p), 0);
	cr_assert_eq(agentc_read(a, NULL, NULL, buf, sizeof(buf)), 0);
	agentc_result(a, &res);
	cr_assert_eq(res.outcome, WORKER_TIMEOUT, "%s", worker_outcome_name(res.outcome));
	cr_assert(res.deadline);
	agentc_destroy(a);
	fake_end(f);
}

/* open_uds: the connection goes to the socket the descriptor holds, not
 * to the name uds spells (here a name where nothing listens); not there
 * yet is tried again; another error ends the session with it. */
struct opener {
	const char *real;
	int calls, enoent_first;
	int err;
};

static int open_real(void *ctx, const char *uds)
{
	struct opener *o = ctx;

	(void)uds;
	if (o->calls++ < o->enoent_first)
		return -ENOENT;
	if (o->err)
		return o->err;
	int fd = open(o->real, O_PATH | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

Test(agentc, open_uds_connects_through_the_descriptor)
{
	struct fake *f = fake_start();
	struct opener o = {.real = f->path, .enoent_first = 2};
	struct agentc_params p = {.uds = "/nonexistent/run/v.sock",
				  .argv = ARGV("true"),
				  .connect_ms = 5000,
				  .open_uds = open_real,
				  .open_ctx = &o};
	struct worker_result res;
	struct agentc *a;
	char out[64];

	add(f, AGENT_STDOUT, "hi", 2);
	add_exit(f, AGENT_EXITED, 0);
	session(f, &p, NULL, out, sizeof(out), &res, &a);
	pthread_join(f->t, NULL);
	cr_assert_eq(res.outcome, WORKER_OK, "%s", res.err);
	cr_assert_str_eq(out, "hi");
	cr_assert_eq(o.calls, 3, "not there yet was not tried again");
	fake_free(f);
	agentc_destroy(a);

	o = (struct opener){.real = "/nonexistent", .err = -ENOTSOCK};
	session(NULL, &p, NULL, out, sizeof(out), &res, &a);
	cr_assert_eq(res.outcome, WORKER_LOST);
	cr_assert_not_null(
	    strstr(res.err, "/nonexistent/run/v.sock: Socket operation on non-socket"), "%s",
	    res.err);
	cr_assert_eq(o.calls, 1);
	agentc_destroy(a);
}
