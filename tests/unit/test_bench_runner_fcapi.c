/* flint bench's Firecracker API client (bench/fcapi.c), and the boot that
 * drives Firecracker through it (vmm_firecracker_boot, bench/vmm.c),
 * against a stand-in server on a thread: answers good and bad, a boot's
 * requests in order, a fault message carried into the reason. (The client
 * against flint's own API, booting the smoke tests' tiny guest, was tried
 * by hand.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/fcapi.h"
#include "bench/vmm.h"

/* The stand-in: for each request read, the next canned answer. */
struct server {
	int fd;			/* connected (socketpair), or listening (lfd) */
	int lfd;		/* -1: none */
	const char *answers[8]; /* NULL: close instead of answering */
	int n;
	char seen[8192]; /* the requests as read, concatenated */
	size_t seen_len;
	int delay_ms; /* before listening */
	const char *path;
};

/* Read one request (headers and its Content-Length body). */
static bool read_request(struct server *s)
{
	size_t start = s->seen_len;

	for (;;) {
		char *h = memmem(s->seen + start, s->seen_len - start, "\r\n\r\n", 4);
		if (h) {
			char *cl = strcasestr(s->seen + start, "Content-Length:");
			long n = cl && cl < h ? atol(cl + 15) : 0;
			if ((size_t)(h + 4 - s->seen) + (size_t)n <= s->seen_len)
				return true;
		}
		ssize_t k = read(s->fd, s->seen + s->seen_len, sizeof(s->seen) - 1 - s->seen_len);
		if (k <= 0)
			return false;
		s->seen_len += (size_t)k;
		s->seen[s->seen_len] = '\0';
	}
}

static void *serve(void *arg)
{
	struct server *s = arg;

	if (s->path) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		usleep((useconds_t)s->delay_ms * 1000);
		strcpy(sa.sun_path, s->path);
		s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->lfd, 1) < 0)
			return NULL;
		s->fd = accept(s->lfd, NULL, NULL);
	}
	for (int i = 0; i < s->n; i++) {
		if (!read_request(s))
			break;
		if (!s->answers[i]) {
			shutdown(s->fd, SHUT_WR); /* the connection closed, no answer */
			break;
		}
		if (write(s->fd, s->answers[i], strlen(s->answers[i])) < 0)
			break;
	}
	/* Keep the connection until the client is done with it. */
	char c;
	while (read(s->fd, &c, 1) > 0)
		;
	return NULL;
}

static uint64_t in_ms(int ms)
{
	return now_ns() / 1000 + (uint64_t)ms * 1000;
}

/* A request on a socket pair with the server's canned answers. */
static int one(const char *answer, int *status, char *body, size_t len, int ms)
{
	int sp[2];
	struct server s = {.lfd = -1, .answers = {answer}, .n = 1};
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	s.fd = sp[1];
	cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
	int r = fcapi_request(sp[0], "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}",
			      in_ms(ms), status, body, len);
	close(sp[0]);
	pthread_join(t, NULL);
	close(sp[1]);
	cr_assert(strstr(s.seen, "PUT /actions HTTP/1.1\r\n"), "%s", s.seen);
	cr_assert(strstr(s.seen, "Content-Length: 31\r\n"), "%s", s.seen);
	cr_assert(strstr(s.seen, "\r\n\r\n{\"action_type\":\"InstanceStart\"}"), "%s", s.seen);
	return r;
}

Test(bench_fcapi, answers)
{
	int status = 0;
	char body[64] = "x";

	cr_assert_eq(one("HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n", &status,
			 body, sizeof(body), 2000),
		     0);
	cr_assert_eq(status, 204);
	cr_assert_str_eq(body, "");
	cr_assert_eq(one("HTTP/1.1 400 Bad Request\r\ncontent-length: 25\r\n\r\n"
			 "{\"fault_message\": \"no!\"}\n",
			 &status, body, sizeof(body), 2000),
		     0);
	cr_assert_eq(status, 400);
	cr_assert_str_eq(body, "{\"fault_message\": \"no!\"}\n");
	/* A body longer than the caller's buffer is cut, the answer read whole. */
	cr_assert_eq(
	    one("HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", &status, body, 4, 2000),
	    0);
	cr_assert_str_eq(body, "012");
}

Test(bench_fcapi, bad_answers)
{
	int status;
	char body[64];

	cr_assert_eq(one("garbage\r\n\r\n", &status, body, sizeof(body), 2000), -EPROTO);
	cr_assert_eq(one("HTTP/2 204 x\r\n\r\n", &status, body, sizeof(body), 2000), -EPROTO);
	cr_assert_eq(one("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", &status, body,
			 sizeof(body), 200),
		     -ETIMEDOUT, "short of its length until the deadline");
	cr_assert_eq(
	    one("HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", &status, body, sizeof(body), 2000),
	    -EPROTO);
	cr_assert_eq(one("HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n", &status, body,
			 sizeof(body), 2000),
		     -EPROTO, "longer than an answer may be");
	cr_assert_eq(one(NULL, &status, body, sizeof(body), 2000), -EPROTO, "closed, no answer");
}

Test(bench_fcapi, no_answer_in_time)
{
	int sp[2], status;
	char body[8];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	uint64_t t0 = now_ns();
	cr_assert_eq(
	    fcapi_request(sp[0], "GET", "/", NULL, in_ms(100), &status, body, sizeof(body)),
	    -ETIMEDOUT);
	cr_assert_lt(now_ns() - t0, 2000000000ULL);
	close(sp[0]);
	close(sp[1]);
}

/* fcapi_exchange of one request against the canned answer; *a filled. */
static int ex(const char *answer, struct fcapi_answer *a, size_t max)
{
	int sp[2];
	struct server s = {.lfd = -1, .answers = {answer}, .n = 1};
	struct fcapi_call c = {.method = "POST",
			       .path = "/functions/f/invoke",
			       .content_type = "application/octet-stream",
			       .body = "x\n",
			       .body_len = 2,
			       .deadline_us = in_ms(2000),
			       .max_answer = max};
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	s.fd = sp[1];
	cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
	uint64_t t0 = now_ns() / 1000;
	int r = fcapi_exchange(sp[0], &c, a);
	close(sp[0]);
	pthread_join(t, NULL);
	close(sp[1]);
	cr_assert(strstr(s.seen, "POST /functions/f/invoke HTTP/1.1\r\n"), "%s", s.seen);
	cr_assert(strstr(s.seen, "Content-Type: application/octet-stream\r\n"), "%s", s.seen);
	cr_assert(strstr(s.seen, "\r\n\r\nx\n"), "%s", s.seen);
	if (!r)
		cr_assert(a->first_byte_us >= t0 && a->first_byte_us <= now_ns() / 1000);
	return r;
}

Test(bench_fcapi, exchange_headers_and_a_body_longer_than_kept)
{
	static char body[8];
	static struct fcapi_answer a = {.body = body, .body_len = sizeof(body)};
	char v[32];

	cr_assert_eq(ex("HTTP/1.1 200 OK\r\nX-Flint-Outcome:  ok \r\nContent-Length: 12\r\n\r\n"
			"pong x\n12345",
			&a, 1 << 20),
		     0);
	cr_assert_eq(a.status, 200);
	cr_assert_eq(a.body_bytes, 12, "the whole body counted");
	cr_assert_str_eq(body, "pong x\n", "its first 7 bytes kept");
	cr_assert_eq(fcapi_header(&a, "x-flint-outcome", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "ok");
	cr_assert_eq(fcapi_header(&a, "X-Flint-Warm", v, sizeof(v)), -ENOENT);
	cr_assert_not(a.close);
	cr_assert_eq(
	    ex("HTTP/1.1 503 No\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", &a, 1 << 20),
	    0);
	cr_assert_eq(a.status, 503);
	cr_assert(a.close);
	cr_assert_eq(a.body_bytes, 0);
	cr_assert_str_eq(body, "");
}

Test(bench_fcapi, exchange_chunked)
{
	static char body[64];
	static struct fcapi_answer a = {.body = body, .body_len = sizeof(body)};
	char v[32];

	cr_assert_eq(ex("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			"5\r\npong \r\nA;ext=1\r\n0123456789\r\n0\r\nX-Flint-Outcome: exit\r\n\r\n",
			&a, 1 << 20),
		     0);
	cr_assert_eq(a.body_bytes, 15);
	cr_assert_str_eq(body, "pong 0123456789");
	cr_assert_eq(fcapi_header(&a, "X-Flint-Outcome", v, sizeof(v)), 0, "%s", a.head);
	cr_assert_str_eq(v, "exit", "the trailer");
	/* A chunk without its CRLF, a size that is not hex, past the cap. */
	cr_assert_eq(
	    ex("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", &a,
	       1 << 20),
	    -EPROTO);
	cr_assert_eq(
	    ex("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", &a, 1 << 20),
	    -EPROTO);
	cr_assert_eq(ex("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			"FFFFFFFF\r\nabc\r\n0\r\n\r\n",
			&a, 1 << 20),
		     -EPROTO);
}

Test(bench_fcapi, exchange_two_on_one_connection)
{
	int sp[2];
	struct server s = {.lfd = -1,
			   .answers = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na\n",
				       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nb\n"},
			   .n = 2};
	char body[8];
	struct fcapi_answer a = {.body = body, .body_len = sizeof(body)};
	struct fcapi_call c = {.method = "POST", .path = "/", .deadline_us = in_ms(2000)};
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	s.fd = sp[1];
	cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
	cr_assert_eq(fcapi_exchange(sp[0], &c, &a), 0);
	cr_assert_str_eq(body, "a\n");
	cr_assert_eq(fcapi_exchange(sp[0], &c, &a), 0);
	cr_assert_str_eq(body, "b\n");
	close(sp[0]);
	pthread_join(t, NULL);
	close(sp[1]);
}

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_bench_fcapi.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char p[96];

	snprintf(p, sizeof(p), "%s/api.sock", dir);
	unlink(p);
	rmdir(dir);
}

TestSuite(bench_firecracker_boot, .init = setup, .fini = teardown);

static char *cmd[] = {"echo", "bench-out", NULL};

/* The boot's requests, in order, to a socket that appears late. */
Test(bench_firecracker_boot, a_boot)
{
	char path[96], why[256] = "";
	struct server s = {.fd = -1, .lfd = -1, .n = 4, .delay_ms = 50, .path = path};
	struct vmm_guest g = {.kernel = "/k/vmlinux",
			      .rootfs = "/r/root.ext4",
			      .mem_mib = 256,
			      .vcpus = 2,
			      .command = cmd,
			      .ncommand = 2};
	struct vmm_firecracker_boot b = {.sock = path, .g = &g};
	pthread_t t;

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	for (int i = 0; i < 4; i++)
		s.answers[i] = "HTTP/1.1 204 No Content\r\n\r\n";
	cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
	cr_assert_eq(vmm_firecracker_boot(&b, 1, in_ms(5000), why, sizeof(why)), 0, "%s", why);
	pthread_join(t, NULL);
	close(s.fd);
	close(s.lfd);
	const char *src = strstr(s.seen, "PUT /boot-source "),
		   *mc = strstr(s.seen, "PUT /machine-config "),
		   *dr = strstr(s.seen, "PUT /drives/rootfs "),
		   *act = strstr(s.seen, "PUT /actions ");
	cr_assert(src && mc && dr && act, "%s", s.seen);
	cr_assert(src < mc && mc < dr && dr < act, "in Firecracker's getting-started order");
	cr_assert(strstr(s.seen, "\"kernel_image_path\":\"/k/vmlinux\""), "%s", s.seen);
	cr_assert(strstr(s.seen, "\"boot_args\":\"" VMM_DEFAULT_CMDLINE " -- echo "
				 "bench-out\""),
		  "%s", s.seen);
	cr_assert(strstr(s.seen, "\"vcpu_count\":2"), "%s", s.seen);
	cr_assert(strstr(s.seen, "\"mem_size_mib\":256"), "%s", s.seen);
	cr_assert(strstr(s.seen, "\"path_on_host\":\"/r/root.ext4\""), "%s", s.seen);
	cr_assert(strstr(s.seen, "\"is_root_device\":true"), "%s", s.seen);
	cr_assert(strstr(s.seen, "\"action_type\":\"InstanceStart\""), "%s", s.seen);
}

Test(bench_firecracker_boot, a_refusal_says_why)
{
	char path[96], why[256] = "";
	struct server s = {.fd = -1, .lfd = -1, .n = 2, .path = path};
	struct vmm_guest g = {.kernel = "/k", .mem_mib = 128, .vcpus = 64};
	struct vmm_firecracker_boot b = {.sock = path, .g = &g};
	pthread_t t;

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	s.answers[0] = "HTTP/1.1 204 No Content\r\n\r\n";
	s.answers[1] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 44\r\n\r\n"
		       "{\"fault_message\":\"vcpu_count: 1 to 32 (64)\"}";
	cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
	cr_assert_eq(vmm_firecracker_boot(&b, 1, in_ms(5000), why, sizeof(why)), -EIO);
	pthread_join(t, NULL);
	close(s.fd);
	close(s.lfd);
	cr_assert_str_eq(why, "PUT /machine-config: 400 vcpu_count: 1 to 32 (64)");
	cr_assert_null(strstr(s.seen, "/actions"), "nothing after the refusal");
}

Test(bench_firecracker_boot, nothing_listens)
{
	char path[96], why[256] = "";
	struct vmm_guest g = {.kernel = "/k", .mem_mib = 128, .vcpus = 1};
	struct vmm_firecracker_boot b = {.sock = path, .g = &g};

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	cr_assert_eq(vmm_firecracker_boot(&b, 1, in_ms(100), why, sizeof(why)), -ETIMEDOUT);
	cr_assert(strstr(why, "api.sock: Connection timed out"), "%s", why);
}

/* A Firecracker that ended before it listened is not waited for until
 * the deadline; its exit is left for its waiter to reap. */
Test(bench_firecracker_boot, it_ended_first)
{
	char path[96], why[256] = "";
	struct vmm_guest g = {.kernel = "/k", .mem_mib = 128, .vcpus = 1};
	struct vmm_firecracker_boot b = {.sock = path, .g = &g};
	uint64_t t0 = now_us();
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (!pid)
		_exit(3);
	snprintf(path, sizeof(path), "%s/api.sock", dir);
	cr_assert_eq(vmm_firecracker_boot(&b, pid, in_ms(20000), why, sizeof(why)), -ECHILD);
	cr_assert_lt(now_us() - t0, 10000000, "waited for the deadline");
	cr_assert(strstr(why, "firecracker ended before it listened there"), "%s", why);
	cr_assert_eq(waitpid(pid, &st, 0), pid, "reaped already");
	cr_assert_eq(WEXITSTATUS(st), 3);
}

Test(bench_firecracker_boot, firecracker_argv)
{
	struct vmm_argv a;

	cr_assert_eq(vmm_firecracker_argv(&a, NULL, "/run/fc.sock"), 0);
	cr_assert_eq(a.n, 3);
	cr_assert_str_eq(a.v[0], "firecracker");
	cr_assert_str_eq(a.v[1], "--api-sock");
	cr_assert_str_eq(a.v[2], "/run/fc.sock");
	cr_assert_null(a.v[3]);
}
