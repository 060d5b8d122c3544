/* fcapi: flint bench's Firecracker API client. See fcapi.h. */
#include "bench/fcapi.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether the child pid has ended (left for its waiter to reap). */
static bool child_ended(pid_t pid)
{
	siginfo_t si = {0};

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

int fcapi_connect(const char *path, uint64_t deadline_us, int *fd)
{
	return fcapi_connect_child(path, 0, deadline_us, fd);
}

int fcapi_connect_child(const char *path, pid_t pid, uint64_t deadline_us, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	*fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (s < 0)
			return -errno;
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			*fd = s;
			return 0;
		}
		int e = errno;
		close(s);
		if (e != ENOENT && e != ECONNREFUSED)
			return -e;
		if (pid > 0 && child_ended(pid))
			return -ECHILD;
		if (now_us() >= deadline_us)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/* Wait for fd to be ready for ev until the deadline. */
static int wait_fd(int fd, short ev, uint64_t deadline_us)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = ev};
		uint64_t now = now_us();

		if (now >= deadline_us)
			return -ETIMEDOUT;
		int n = poll(&p, 1, (int)((deadline_us - now + 999) / 1000));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* ----- the answer, read through a buffer ----- */

struct rd {
	int fd;
	uint64_t deadline_us;
	uint64_t *first_us; /* set at the first byte (NULL: not wanted) */
	size_t total, max;  /* bytes of the answer read so far, and its cap */
	size_t pos, end;
	char buf[4096];
};

/* More bytes into r->buf (which the caller has used up). */
static int rd_fill(struct rd *r)
{
	int ret;

	for (;;) {
		if ((ret = wait_fd(r->fd, POLLIN, r->deadline_us)) < 0)
			return ret;
		ssize_t k = recv(r->fd, r->buf, sizeof(r->buf), 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EPROTO; /* closed mid-answer */
		if (r->first_us && !*r->first_us)
			*r->first_us = now_us();
		r->pos = 0;
		r->end = (size_t)k;
		return 0;
	}
}

/* One line (CRLF or LF ended, without it) into line[0..len), NUL-ended;
 * -EPROTO when it does not fit or the answer grows past its cap. */
static int rd_line(struct rd *r, char *line, size_t len)
{
	size_t n = 0;
	int ret;

	for (;;) {
		if (r->pos == r->end && (ret = rd_fill(r)) < 0)
			return ret;
		char c = r->buf[r->pos++];
		if (++r->total > r->max)
			return -EPROTO;
		if (c == '\n')
			break;
		if (n + 1 >= len)
			return -EPROTO;
		line[n++] = c;
	}
	if (n && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return 0;
}

/* n bytes of body: as many as fit kept in a->body, all counted. */
static int rd_body(struct rd *r, uint64_t n, struct fcapi_answer *a)
{
	int ret;

	if (n > r->max - r->total)
		return -EPROTO;
	while (n) {
		if (r->pos == r->end && (ret = rd_fill(r)) < 0)
			return ret;
		size_t k = r->end - r->pos < n ? r->end - r->pos : (size_t)n;
		size_t keep = a->body_len && a->body_bytes < a->body_len - 1
				  ? a->body_len - 1 - a->body_bytes
				  : 0;
		if (keep > k)
			keep = k;
		if (keep) {
			memcpy(a->body + a->body_bytes, r->buf + r->pos, keep);
			a->body[a->body_bytes + keep] = '\0';
		}
		a->body_bytes += k;
		r->total += k;
		r->pos += k;
		n -= k;
	}
	return 0;
}

/* A decimal (hex: base 16) number filling s, at most max. */
static int whole_number(const char *s, int base, uint64_t max, uint64_t *v)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!isxdigit((unsigned char)*s))
		return -EPROTO;
	errno = 0;
	unsigned long long x = strtoull(s, &e, base);
	while (*e == ' ' || *e == '\t')
		e++;
	if (errno || *e || x > max)
		return -EPROTO;
	*v = x;
	return 0;
}

/* A chunked body (RFC 9112 7.1): sizes in hex (extensions after ';'
 * ignored), each chunk's CRLF, then trailers up to an empty line (kept
 * with the headers). */
static int rd_chunked(struct rd *r, struct fcapi_answer *a)
{
	char line[FCAPI_HEAD_MAX];
	uint64_t n;
	int ret;

	for (;;) {
		if ((ret = rd_line(r, line, sizeof(line))) < 0)
			return ret;
		line[strcspn(line, ";")] = '\0';
		if ((ret = whole_number(line, 16, r->max, &n)) < 0)
			return ret;
		if (!n)
			break;
		if ((ret = rd_body(r, n, a)) < 0 || (ret = rd_line(r, line, sizeof(line))) < 0)
			return ret;
		if (line[0])
			return -EPROTO; /* not the chunk's end */
	}
	for (;;) {
		size_t hl = strlen(a->head);

		if ((ret = rd_line(r, line, sizeof(line))) < 0)
			return ret;
		if (!line[0])
			return 0;
		if (hl + strlen(line) + 3 > sizeof(a->head))
			return -EPROTO;
		snprintf(a->head + hl, sizeof(a->head) - hl, "%s\r\n", line);
	}
}

/* Header name's value in a->head (up to its CRLF), or NULL; name without
 * the colon, any case. */
static const char *header_at(const struct fcapi_answer *a, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(a->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *h = p + 2;

		if (!strncasecmp(h, name, nl) && h[nl] == ':') {
			const char *v = h + nl + 1, *e;

			while (*v == ' ' || *v == '\t')
				v++;
			e = strstr(v, "\r\n");
			*vlen = (size_t)(e - v);
			while (*vlen && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
				(*vlen)--;
			return v;
		}
	}
	return NULL;
}

int fcapi_header(const struct fcapi_answer *a, const char *name, char *out, size_t len)
{
	size_t vl;
	const char *v = header_at(a, name, &vl);

	if (!v)
		return -ENOENT;
	if (len)
		snprintf(out, len, "%.*s", (int)vl, v);
	return 0;
}

void fcapi_fault(const char *body, char *out, size_t len)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *m = json_string_value(json_object_get(j, "fault_message"));

	snprintf(out, len, "%s", m ? m : body);
	json_decref(j);
}

/* The status line and headers into a->head, then the body as they say. */
static int read_answer(struct rd *r, struct fcapi_answer *a)
{
	char line[FCAPI_HEAD_MAX], val[64];
	uint64_t clen = 0;
	bool chunked = false;
	int code, ret;
	char sp;

	for (size_t hl = 0;;) {
		if ((ret = rd_line(r, line, sizeof(line))) < 0)
			return ret;
		if (!line[0])
			break;
		if (hl + strlen(line) + 3 > sizeof(a->head))
			return -EPROTO;
		hl += (size_t)snprintf(a->head + hl, sizeof(a->head) - hl, "%s\r\n", line);
	}
	if (sscanf(a->head, "HTTP/1.%*1[01] %3d%c", &code, &sp) != 2 || (sp != ' ' && sp != '\r') ||
	    code < 100)
		return -EPROTO;
	a->status = code;
	if (fcapi_header(a, "Transfer-Encoding", val, sizeof(val)) == 0)
		chunked = !strcasecmp(val, "chunked");
	if (fcapi_header(a, "Connection", val, sizeof(val)) == 0)
		a->close = !strcasecmp(val, "close");
	if (chunked)
		return rd_chunked(r, a);
	/* None: no body (Firecracker's 204s have none). */
	if (fcapi_header(a, "Content-Length", val, sizeof(val)) == 0 &&
	    (ret = whole_number(val, 10, UINT64_MAX, &clen)) < 0)
		return ret;
	return rd_body(r, clen, a);
}

int fcapi_exchange(int fd, const struct fcapi_call *c, struct fcapi_answer *a)
{
	char req[FCAPI_HEAD_MAX];
	size_t blen = c->body ? c->body_len : 0;
	int n, r;

	a->status = 0;
	a->head[0] = '\0';
	a->body_bytes = 0;
	a->close = false;
	a->first_byte_us = 0;
	if (a->body_len)
		a->body[0] = '\0';
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: %s\r\n"
		     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		     c->method, c->path, c->accept ? c->accept : "application/json",
		     c->content_type ? c->content_type : "application/json", blen);
	if (n < 0 || (size_t)n >= sizeof(req))
		return -E2BIG;
	/* The headers, then the body, each written whole. */
	for (int part = 0; part < 2; part++) {
		const char *p = part ? c->body : req;
		size_t left = part ? blen : (size_t)n;

		while (left) {
			if ((r = wait_fd(fd, POLLOUT, c->deadline_us)) < 0)
				return r;
			ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
			if (w < 0 && errno != EINTR && errno != EAGAIN)
				return -errno;
			if (w > 0)
				p += w, left -= (size_t)w;
		}
	}
	struct rd *rd = malloc(sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	*rd = (struct rd){.fd = fd,
			  .deadline_us = c->deadline_us,
			  .first_us = &a->first_byte_us,
			  .max = c->max_answer ? c->max_answer : FCAPI_ANSWER_MAX};
	r = read_answer(rd, a);
	/* An answer longer than its length (a pipelined extra) is not ours. */
	if (!r && rd->pos != rd->end)
		r = -EPROTO;
	free(rd);
	return r;
}

int fcapi_request(int fd, const char *method, const char *path, const char *json,
		  uint64_t deadline_us, int *status, char *body, size_t len)
{
	struct fcapi_call c = {.method = method,
			       .path = path,
			       .body = json,
			       .body_len = json ? strlen(json) : 0,
			       .deadline_us = deadline_us,
			       .max_answer = FCAPI_ANSWER_MAX};
	struct fcapi_answer *a = malloc(sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->body = body;
	a->body_len = len;
	if ((r = fcapi_exchange(fd, &c, a)) == 0)
		*status = a->status;
	free(a);
	return r;
}
