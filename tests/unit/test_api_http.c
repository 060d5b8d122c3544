/* The API's HTTP transport on a real Unix socket, driven by a raw client:
 * answers, headers, bodies over the cap, keep-alive, and the socket file's
 * life (stale ones replaced, others refused, removed at stop). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/controller.h"
#include "api/http.h"
#include "api/router.h"

TestSuite(api_http, .timeout = 20);

static char dir[40], sock[64];
static struct api_ctl *ctl;
static struct api_http *http;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/flint-api-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	cr_assert_eq(api_ctl_create(&ctl, "http-test", NULL, NULL, NULL), 0);
}

static void teardown(void)
{
	api_http_stop(http);
	http = NULL;
	api_ctl_destroy(ctl);
	unlink(sock);
	rmdir(dir);
}

static void start(void)
{
	char err[256] = "";
	int r = api_http_start(&http, sock, ctl, err, sizeof(err));
	cr_assert_eq(r, 0, "api_http_start: %s", err);
}

static int connect_api(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* One whole answer: its status, headers and body (malloc'd, NUL-ended). */
struct answer {
	int status;
	char *head; /* status line and headers */
	char *body;
};

static void answer_free(struct answer *a)
{
	free(a->head);
	free(a->body);
}

/* Read one response from fd: headers up to the blank line, then
 * Content-Length bytes of body. */
static struct answer read_answer(int fd)
{
	char buf[65536];
	size_t n = 0;
	char *end = NULL;
	struct answer a = {0};

	while (!(end = n ? memmem(buf, n, "\r\n\r\n", 4) : NULL)) {
		cr_assert_lt(n, sizeof(buf));
		ssize_t r = recv(fd, buf + n, sizeof(buf) - n, 0);
		cr_assert_gt(r, 0, "recv: %s", r ? strerror(errno) : "closed before the headers");
		n += (size_t)r;
	}
	size_t hlen = (size_t)(end - buf) + 4;
	a.head = strndup(buf, hlen);
	cr_assert_eq(sscanf(a.head, "HTTP/1.1 %d", &a.status), 1, "%s", a.head);
	size_t blen = 0;
	const char *cl = strcasestr(a.head, "\r\nContent-Length:");
	if (cl)
		blen = strtoul(cl + 17, NULL, 10);
	while (n < hlen + blen) {
		ssize_t r = recv(fd, buf + n, sizeof(buf) - n, 0);
		cr_assert_gt(r, 0, "recv body: %s", r ? strerror(errno) : "closed");
		n += (size_t)r;
	}
	a.body = strndup(buf + hlen, blen);
	return a;
}

/* A request on a new connection. */
static struct answer request(const char *method, const char *path, const char *body, size_t len)
{
	char head[256];
	int fd = connect_api();
	int hl = snprintf(head, sizeof(head),
			  "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
			  "Content-Length: %zu\r\n\r\n",
			  method, path, len);

	send_all(fd, head, (size_t)hl);
	if (len)
		send_all(fd, body, len);
	struct answer a = read_answer(fd);
	close(fd);
	return a;
}

Test(api_http, get_put_and_oversized, .init = setup, .fini = teardown)
{
	start();
	struct answer a = request("GET", "/", NULL, 0);
	cr_assert_eq(a.status, 200, "%s", a.head);
	cr_assert(strcasestr(a.head, "Content-Type: application/json"), "%s", a.head);
	cr_assert(strstr(a.body, "\"app_name\":\"flint\""), "%s", a.body);
	cr_assert(strstr(a.body, "\"id\":\"http-test\""), "%s", a.body);
	answer_free(&a);

	const char *mc = "{\"vcpu_count\": 2, \"mem_size_mib\": 256}";
	a = request("PUT", "/machine-config", mc, strlen(mc));
	cr_assert_eq(a.status, 204, "%s%s", a.head, a.body);
	cr_assert_str_eq(a.body, "");
	answer_free(&a);
	a = request("GET", "/machine-config", NULL, 0);
	cr_assert_eq(a.status, 200);
	cr_assert(strstr(a.body, "\"vcpu_count\":2"), "%s", a.body);
	answer_free(&a);

	/* Over the cap: refused, the server reads it all and goes on. */
	size_t big = 3 * API_MAX_BODY;
	char *b = malloc(big);
	cr_assert_not_null(b);
	memset(b, ' ', big);
	b[0] = '{';
	b[big - 1] = '}';
	a = request("PUT", "/machine-config", b, big);
	cr_assert_eq(a.status, 400, "%s", a.head);
	cr_assert(strstr(a.body, "larger than the limit of 51200"), "%s", a.body);
	answer_free(&a);
	/* Just one byte over. */
	a = request("PUT", "/machine-config", b, API_MAX_BODY + 1);
	cr_assert_eq(a.status, 400);
	cr_assert(strstr(a.body, "larger than the limit"), "%s", a.body);
	answer_free(&a);
	/* With a larger cap (--http-api-max-payload-size) it is read and
	 * parsed: refused for what it lacks, not for its size. */
	api_ctl_set_max_body(ctl, big);
	a = request("PUT", "/machine-config", b, big);
	cr_assert_eq(a.status, 400, "%s", a.head);
	cr_assert_null(strstr(a.body, "larger than the limit"), "%s", a.body);
	cr_assert(strstr(a.body, "vcpu_count"), "%s", a.body);
	answer_free(&a);
	api_ctl_set_max_body(ctl, API_MAX_BODY);
	free(b);

	a = request("PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 256}", 39);
	cr_assert_eq(a.status, 400);
	cr_assert(strstr(a.body, "fault_message"), "%s", a.body);
	answer_free(&a);
	a = request("GET", "/nope", NULL, 0);
	cr_assert_eq(a.status, 400);
	cr_assert(strstr(a.body, "Invalid request method and/or path"), "%s", a.body);
	answer_free(&a);
	/* The config kept vcpu_count 2. */
	a = request("GET", "/machine-config", NULL, 0);
	cr_assert(strstr(a.body, "\"vcpu_count\":2"), "%s", a.body);
	answer_free(&a);
}

/* A body nested as deep as jansson parses (2048 levels, ~12 KB): the
 * API thread's stack (THREAD_STACK_SIZE) holds its parse and its free,
 * the request is refused and the server answers the next one; as MMDS
 * data it is stored and dumped back. */
Test(api_http, the_deepest_body_jansson_parses_is_refused, .init = setup, .fini = teardown)
{
	const int depth = 2047; /* under the top level's object */
	size_t n = 0, cap = (size_t)depth * 6 + 64;
	char *b = malloc(cap);

	cr_assert_not_null(b);
	n += (size_t)snprintf(b, cap, "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"x\": ");
	for (int i = 1; i < depth; i++)
		n += (size_t)snprintf(b + n, cap - n, "{\"a\":");
	b[n++] = '1';
	for (int i = 0; i < depth; i++)
		b[n++] = '}';
	start();
	struct answer a = request("PUT", "/machine-config", b, n);
	cr_assert_eq(a.status, 400, "%s%s", a.head, a.body);
	cr_assert(strstr(a.body, "'x'"), "parsed to the end, refused for its field: %s", a.body);
	answer_free(&a);
	b[n - 1] = ' '; /* one level short of closing: not JSON */
	a = request("PUT", "/machine-config", b, n);
	cr_assert_eq(a.status, 400, "%s%s", a.head, a.body);
	answer_free(&a);
	b[n - 1] = '}';
	/* As MMDS data it is taken whole, and written back whole (jansson's
	 * dump, the deepest recursion on the API thread). */
	struct mmds *m;
	cr_assert_eq(mmds_create(&m, API_MAX_BODY), 0);
	api_ctl_set_mmds(ctl, m);
	a = request("PUT", "/mmds", b, n);
	cr_assert_eq(a.status, 204, "%s%s", a.head, a.body);
	answer_free(&a);
	a = request("GET", "/mmds", NULL, 0);
	cr_assert_eq(a.status, 200, "%s", a.head);
	cr_assert_geq(strlen(a.body), (size_t)depth * 5, "%zu bytes", strlen(a.body));
	answer_free(&a);
	free(b);
	a = request("GET", "/machine-config", NULL, 0);
	cr_assert_eq(a.status, 200, "%s", a.head);
	answer_free(&a);
	api_http_stop(http);
	http = NULL;
	api_ctl_set_mmds(ctl, NULL);
	mmds_destroy(m);
}

Test(api_http, keep_alive_and_chunked_body, .init = setup, .fini = teardown)
{
	start();
	int fd = connect_api();
	const char *r1 = "GET /version HTTP/1.1\r\nHost: x\r\n\r\n";
	send_all(fd, r1, strlen(r1));
	struct answer a = read_answer(fd);
	cr_assert_eq(a.status, 200);
	cr_assert(strstr(a.body, "firecracker_version"), "%s", a.body);
	answer_free(&a);
	/* Same connection, a chunked body in two pieces. */
	const char *r2 =
	    "PUT /boot-source HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "f\r\n{\"kernel_image_\r\n"
	    "c\r\npath\": \"/k\"}\r\n0\r\n\r\n";
	send_all(fd, r2, strlen(r2));
	a = read_answer(fd);
	cr_assert_eq(a.status, 204, "%s%s", a.head, a.body);
	answer_free(&a);
	close(fd);
	struct vm_config c;
	cr_assert_eq(api_ctl_get_config(ctl, &c), 0);
	cr_assert_str_eq(c.boot.kernel_image_path, "/k");
	vm_config_free(&c);
}

Test(api_http, socket_file_life, .init = setup, .fini = teardown)
{
	char err[256];
	struct stat st;

	/* A regular file is not replaced. */
	FILE *f = fopen(sock, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(api_http_start(&http, sock, ctl, err, sizeof(err)), -EEXIST);
	cr_assert(strstr(err, "not a socket"), "%s", err);
	cr_assert_null(http);
	cr_assert_eq(stat(sock, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	unlink(sock);

	/* A stale socket (nobody listens) is. */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	start();
	struct answer a = request("GET", "/", NULL, 0);
	cr_assert_eq(a.status, 200);
	answer_free(&a);

	/* One that a server answers on is refused, and left alone. */
	struct api_http *second = NULL;
	cr_assert_eq(api_http_start(&second, sock, ctl, err, sizeof(err)), -EADDRINUSE);
	cr_assert(strstr(err, "listening"), "%s", err);
	a = request("GET", "/", NULL, 0);
	cr_assert_eq(a.status, 200);
	answer_free(&a);

	/* Stop removes it. */
	api_http_stop(http);
	http = NULL;
	cr_assert_eq(stat(sock, &st), -1);
	cr_assert_eq(errno, ENOENT);

	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	cr_assert_eq(api_http_start(&second, longpath, ctl, err, sizeof(err)), -ENAMETOOLONG);
	api_http_stop(NULL);
}

/* A body announced far beyond the cap is refused from its headers, before
 * a byte of it is read; the socket is its owner's alone (0600). */
Test(api_http, a_huge_body_is_refused_unread_and_the_socket_is_private, .init = setup,
     .fini = teardown)
{
	struct stat st;

	start();
	cr_assert_eq(stat(sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
	int fd = connect_api();
	const char *r = "PUT /machine-config HTTP/1.1\r\nHost: x\r\n"
			"Content-Length: 1000000000000\r\n\r\n{";
	send_all(fd, r, strlen(r));
	struct answer a = read_answer(fd);
	cr_assert_eq(a.status, 400, "%s", a.head);
	cr_assert(strstr(a.body, "larger than the limit of 51200"), "%s", a.body);
	answer_free(&a);
	close(fd);
	a = request("GET", "/", NULL, 0);
	cr_assert_eq(a.status, 200, "the server goes on");
	answer_free(&a);
}

/* Clients that fill every connection slot and then leave: the next one is
 * answered. libmicrohttpd takes its listening socket out of its epoll set
 * at the limit and puts it back only as it next runs; nothing woke the API
 * thread for that, so the API stopped answering for good. */
Test(api_http, connections_freed_at_the_limit_are_accepted_again, .init = setup, .fini = teardown)
{
	const char *get = "GET /version HTTP/1.1\r\nHost: x\r\n\r\n";
	struct timeval tv = {.tv_sec = 3};
	int fds[API_MAX_CONNECTIONS];

	start();
	for (unsigned i = 0; i < API_MAX_CONNECTIONS; i++) {
		fds[i] = connect_api();
		send_all(fds[i], get, strlen(get));
		struct answer a = read_answer(fds[i]);
		cr_assert_eq(a.status, 200);
		answer_free(&a);
	}
	for (unsigned i = 0; i < API_MAX_CONNECTIONS; i++)
		close(fds[i]);
	int fd = connect_api();
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	send_all(fd, get, strlen(get));
	struct answer a = read_answer(fd);
	cr_assert_eq(a.status, 200);
	answer_free(&a);
	close(fd);
}

/* A path is taken as sent, as Firecracker's: no %-decoding, which made
 * /drives/a%00b the drive "a" and /%76ersion /version. */
Test(api_http, paths_are_not_percent_decoded, .init = setup, .fini = teardown)
{
	const char *d = "{\"drive_id\": \"a\", \"path_on_host\": \"/dev/null\", "
			"\"is_root_device\": false, \"is_read_only\": true}";

	start();
	struct answer a = request("PUT", "/drives/a%00b", d, strlen(d));
	cr_assert_eq(a.status, 400, "%s%s", a.head, a.body);
	cr_assert(strstr(a.body, "'a%00b'"), "%s", a.body);
	answer_free(&a);
	a = request("GET", "/%76ersion", NULL, 0);
	cr_assert_eq(a.status, 400, "%s%s", a.head, a.body);
	cr_assert(strstr(a.body, "GET /%76ersion"), "%s", a.body);
	answer_free(&a);
}
