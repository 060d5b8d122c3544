/* flint bench serve's driver (bench/serve.c) without VMs: flint serve's
 * command line, the function registered, the warm pool read, and the
 * requests (lanes, kept-alive connections, records) against a stand-in
 * server on threads; a flint that ends at once is reported with its last
 * line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench/serve.h"

static volatile sig_atomic_t no_stop;

static struct bserve_cfg cfg(unsigned c)
{
	return (struct bserve_cfg){.flint = "/f/flint",
				   .dir = "/tmp/fb",
				   .kernel = "/k",
				   .rootfs = "/r",
				   .mem_mib = 128,
				   .vcpus = 1,
				   .concurrency = c,
				   .timeout_s = 60,
				   .stop = &no_stop};
}

static bool has(const struct vmm_argv *a, const char *w)
{
	for (int i = 0; i < a->n; i++)
		if (!strcmp(a->v[i], w))
			return true;
	return false;
}

Test(bench_serve, argv)
{
	struct bserve_cfg c = cfg(1);
	struct vmm_argv a;

	cr_assert_eq(bserve_argv(&c, &a), 0);
	cr_assert_str_eq(a.v[0], "/f/flint");
	cr_assert_str_eq(a.v[1], "serve");
	cr_assert(has(&a, "--listen=unix:/tmp/fb/serve.sock"));
	cr_assert(has(&a, "--state-dir=/tmp/fb/state"));
	cr_assert(has(&a, "--per-request=reset"), "flint serve's default, said");
	cr_assert(has(&a, "--register-timeout=60"));
	cr_assert_null(a.v[a.n]);
	for (int i = 0; i < a.n; i++)
		cr_assert(strncmp(a.v[i], "--max-", 6), "%s: within flint serve's defaults",
			  a.v[i]);
	c = cfg(64);
	c.isolation = BSERVE_RESTORE;
	cr_assert_eq(bserve_argv(&c, &a), 0);
	cr_assert(has(&a, "--per-request=restore"));
	cr_assert(has(&a, "--max-vms=130"), "64 running, 64 warm behind, the registration's");
	cr_assert(has(&a, "--max-mem=16640M"));
}

Test(bench_serve, function)
{
	struct bserve_cfg c = cfg(4);
	char *cmd[] = {"cat", "-n"};
	char *s;

	cr_assert_eq(bserve_function_json(&c, &s), 0);
	cr_assert_str_eq(s,
			 "{\"command\":[\"sh\",\"-c\",\"read l; echo pong $l\"],\"kernel\":\"/k\","
			 "\"rootfs\":\"/r\",\"mem_mib\":128,\"vcpus\":1,\"timeout_s\":60,"
			 "\"max_concurrency\":4,\"min_warm\":4,\"isolation\":\"per-request\","
			 "\"prepare\":[\"sh\",\"-c\",\"true\"]}");
	free(s);
	c.command = cmd;
	c.ncommand = 2;
	c.isolation = BSERVE_REUSE;
	c.timeout_s = 86400;
	cr_assert_eq(bserve_function_json(&c, &s), 0);
	cr_assert(strstr(s, "\"command\":[\"cat\",\"-n\"]"), "%s", s);
	cr_assert(strstr(s, "\"isolation\":\"reuse\""), "%s", s);
	cr_assert(strstr(s, "\"timeout_s\":3600"), "flint serve's most: %s", s);
	cr_assert_null(strstr(s, "prepare"), "the user's command taken as it is: %s", s);
	free(s);
}

Test(bench_serve, pool_ready)
{
	unsigned n = 99;

	cr_assert_eq(
	    bserve_pool_ready("{\"name\":\"bench\",\"pool\":{\"warm\":4,\"starting\":1}}", &n), 0);
	cr_assert_eq(n, 3, "starting VMs are warm but not ready");
	cr_assert_eq(bserve_pool_ready("{\"state\":\"registering\"}", &n), -EINVAL);
	cr_assert_eq(bserve_pool_ready("{\"pool\":{\"warm\":1,\"starting\":2}}", &n), -EINVAL);
	cr_assert_eq(bserve_pool_ready("not json", &n), -EINVAL);
}

Test(bench_serve, isolation_names)
{
	enum bserve_isolation i;

	cr_assert_eq(bserve_isolation_from_name("restore", &i), 0);
	cr_assert_eq(i, BSERVE_RESTORE);
	cr_assert_str_eq(bserve_isolation_name(BSERVE_REUSE), "reuse");
	cr_assert_eq(bserve_isolation_from_name("per-request", &i), -EINVAL);
}

/* ---- the requests, against a stand-in flint serve ---------------------- */

static char sock[108];
static int lfd = -1;
static atomic_int served, conns;
static pthread_t acceptor;

/* One connection: each request (headers and its Content-Length body)
 * answered by the number it is among all: the 3rd a 503, the 5th a
 * wrong body, the 7th with Connection: close, the others pong. */
static void *conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	size_t len = 0;

	for (;;) {
		char *h = memmem(buf, len, "\r\n\r\n", 4);
		if (h) {
			char *cl = strcasestr(buf, "Content-Length:");
			size_t need =
			    (size_t)(h + 4 - buf) + (cl && cl < h ? (size_t)atol(cl + 15) : 0);
			if (len >= need) {
				int k = atomic_fetch_add(&served, 1) + 1;
				const char *a =
				    k == 3   ? "HTTP/1.1 503 Busy\r\nX-Flint-Outcome: killed\r\n"
					       "Content-Length: 28\r\n\r\n{\"fault_message\": "
					       "\"full\"}\n\r\n"
				    : k == 5 ? "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\npong\n"
				    : k == 7 ? "HTTP/1.1 200 OK\r\nConnection: close\r\n"
					       "Content-Length: 17\r\n\r\npong flint-bench\n"
					     : "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n"
					       "pong flint-bench\n";
				cr_assert(strstr(buf, "POST /functions/bench/invoke HTTP/1.1\r\n"));
				cr_assert(strstr(buf, "\r\n\r\nflint-bench\n"));
				usleep(2000);
				if (write(fd, a, strlen(a)) < 0 || k == 7)
					break;
				memmove(buf, buf + need, len - need);
				len -= need;
				continue;
			}
		}
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	return NULL;
}

static void *accept_loop(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			return NULL;
		atomic_fetch_add(&conns, 1);
		pthread_create(&t, NULL, conn, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
}

static void start_fake(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sock, sizeof(sock), "/tmp/test_bench_serve.%d.sock", getpid());
	unlink(sock);
	strcpy(sa.sun_path, sock);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 16), 0);
	cr_assert_eq(pthread_create(&acceptor, NULL, accept_loop, NULL), 0);
}

static void stop_fake(void)
{
	shutdown(lfd, SHUT_RDWR);
	pthread_join(acceptor, NULL);
	close(lfd);
	unlink(sock);
}

Test(bench_serve, requests, .init = start_fake, .fini = stop_fake, .timeout = 20)
{
	struct bench_record out[12];
	struct bserve_load l = {.sock = sock,
				.path = "/functions/bench/invoke",
				.body = BSERVE_BODY,
				.expect = BSERVE_EXPECT,
				.n = 12,
				.concurrency = 3,
				.timeout_s = 5,
				.stop = &no_stop};
	size_t n = 0, ok = 0;
	uint64_t wall = 0;
	bool said503 = false, saidbody = false;

	cr_assert_eq(bserve_load_run(&l, out, &n, &wall), 0);
	cr_assert_eq(n, 12);
	cr_assert_eq(atomic_load(&served), 12);
	cr_assert_eq(atomic_load(&conns), 4,
		     "a connection per lane, one dialled again after a close");
	cr_assert_gt(wall, 0);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(out[i].vmm, "flint");
		cr_assert_neq(out[i].phase_us[BP_RESPONSE], BENCH_NONE, "request %zu: %s", i,
			      out[i].why);
		cr_assert_leq(out[i].phase_us[BP_FIRST_RESPONSE], out[i].phase_us[BP_RESPONSE]);
		cr_assert_geq(out[i].phase_us[BP_RESPONSE], 2000, "the server's 2 ms counted");
		cr_assert_eq(out[i].phase_us[BP_INIT], BENCH_NONE);
		ok += out[i].ok;
		said503 |= strstr(out[i].why, "status 503, outcome killed: full") != NULL;
		saidbody |= strstr(out[i].why, "answered 'pong\n' (5 bytes)") != NULL;
	}
	cr_assert_eq(ok, 10);
	cr_assert(said503);
	cr_assert(saidbody);
}

Test(bench_serve, requests_stopped_and_refused)
{
	static volatile sig_atomic_t stop = 15;
	struct bench_record out[4];
	struct bserve_load l = {.sock = "/nonexistent/flint.sock",
				.path = "/functions/bench/invoke",
				.n = 4,
				.concurrency = 2,
				.timeout_s = 5,
				.stop = &stop};
	size_t n = 9;
	uint64_t wall;

	cr_assert_eq(bserve_load_run(&l, out, &n, &wall), -EINTR);
	cr_assert_eq(n, 0, "nothing sent once stopped");
	l.stop = &no_stop;
	cr_assert_eq(bserve_load_run(&l, out, &n, &wall), 0);
	cr_assert_eq(n, 4);
	for (size_t i = 0; i < n; i++) {
		cr_assert_not(out[i].ok);
		cr_assert(strstr(out[i].why, "cannot connect to flint serve"), "%s", out[i].why);
	}
}

/* A "flint" that says why and ends at once. */
Test(bench_serve, a_server_that_ends)
{
	char dir[] = "/tmp/test_bench_serve.XXXXXX", fake[64], why[512];
	struct bserve_cfg c = cfg(1);
	volatile pid_t pid = 0;
	struct bserve *s = NULL;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(fake, sizeof(fake), "%s/flint", dir);
	cr_assert_not_null(f = fopen(fake, "w"));
	fputs("#!/bin/sh\necho \"flint serve: --frob: unknown option ($1)\" >&2\nexit 3\n", f);
	fclose(f);
	chmod(fake, 0755);
	c.flint = fake;
	c.dir = dir;
	c.pid = &pid;
	cr_assert_eq(bserve_start(&c, &s, why, sizeof(why)), -EIO, "%s", why);
	cr_assert_null(s);
	cr_assert(strstr(why, "flint serve ended with status 3"), "%s", why);
	cr_assert(strstr(why, "--frob: unknown option (serve)"), "its last line: %s", why);
	cr_assert_eq(pid, 0, "reaped");
	unlink(fake);
	cr_assert_eq(rmdir(dir), 0, "its log removed, nothing left");
}
