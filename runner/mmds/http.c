#include "mmds/http.h"

#include <errno.h>
#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_PATH "/latest/api/token"

/* A header the request had: its name as sent (for messages) and value. */
struct hdr {
	const char *name, *val;
	size_t nlen, vlen;
};

enum { H_ACCEPT, H_TOKEN, H_TTL, H_FORWARDED, H_COUNT };

static const char *const names[][2] = {
    [H_ACCEPT] = {"Accept", NULL},
    [H_TOKEN] = {"X-metadata-token", "X-aws-ec2-metadata-token"},
    [H_TTL] = {"X-metadata-token-ttl-seconds", "X-aws-ec2-metadata-token-ttl-seconds"},
    [H_FORWARDED] = {"X-Forwarded-For", NULL},
};

struct req {
	const char *url;
	size_t url_len;
	const char *field; /* the header whose value comes next */
	size_t field_len;
	struct hdr h[H_COUNT];
	struct hdr *cur; /* the one being read, NULL: not one of ours */
	bool body, done;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct req *q = p->data;

	if (!q->url)
		q->url = at;
	q->url_len = (size_t)(at + len - q->url);
	return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	struct req *q = p->data;

	/* The request is one buffer: a name arrives whole, or in pieces
	 * that follow each other. */
	if (q->field && q->field + q->field_len == at && !q->cur) {
		q->field_len += len;
	} else {
		q->field = at;
		q->field_len = len;
	}
	q->cur = NULL;
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	struct req *q = p->data;

	if (q->cur) {
		q->cur->vlen = (size_t)(at + len - q->cur->val);
		return 0;
	}
	if (!q->field)
		return 0; /* the rest of a value not ours (a folded line) */
	for (unsigned i = 0; i < H_COUNT; i++)
		for (unsigned k = 0; k < 2 && names[i][k]; k++)
			if (strlen(names[i][k]) == q->field_len &&
			    !strncasecmp(names[i][k], q->field, q->field_len)) {
				q->cur = &q->h[i];
				*q->cur = (struct hdr){q->field, at, q->field_len, len};
			}
	if (!q->cur)
		q->field = NULL; /* so that the next name starts afresh */
	return 0;
}

static int on_headers(http_parser *p)
{
	struct req *q = p->data;

	/* Values without the blanks around them, as Firecracker takes them
	 * (http_parser keeps the trailing ones). */
	for (unsigned i = 0; i < H_COUNT; i++) {
		struct hdr *h = &q->h[i];

		while (h->vlen && (*h->val == ' ' || *h->val == '\t'))
			h->val++, h->vlen--;
		while (h->vlen && (h->val[h->vlen - 1] == ' ' || h->val[h->vlen - 1] == '\t'))
			h->vlen--;
	}
	q->body = p->content_length > 0 && p->content_length != UINT64_MAX;
	q->body |= (p->flags & F_CHUNKED) != 0;
	return 0;
}

static int on_complete(http_parser *p)
{
	struct req *q = p->data;

	q->done = true;
	http_parser_pause(p, 1); /* one request at a time */
	return 0;
}

/* The reply's bytes: status line, headers, body. */
static int reply(struct mmds_reply *r, const http_parser *p, unsigned code, const char *type,
		 const char *extra, const char *body, size_t blen)
{
	static const struct {
		unsigned code;
		const char *text;
	} reasons[] = {{200, "OK"},	   {400, "Bad Request"},	{401, "Unauthorized"},
		       {404, "Not Found"}, {405, "Method Not Allowed"}, {501, "Not Implemented"}};
	const char *reason = "";
	char head[512];
	int n;

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].code == code)
			reason = reasons[i].text;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.%u %u %s\r\nConnection: %s\r\n%sContent-Type: %s\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     p->http_major == 1 && p->http_minor == 0 ? 0u : 1u, code, reason,
		     r->close ? "close" : "keep-alive", extra ? extra : "", type, blen);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENOMEM;
	if (!(r->data = malloc((size_t)n + blen)))
		return -ENOMEM;
	memcpy(r->data, head, (size_t)n);
	if (blen)
		memcpy(r->data + n, body, blen);
	r->len = (size_t)n + blen;
	return 0;
}

static int text(struct mmds_reply *r, const http_parser *p, unsigned code, const char *extra,
		const char *fmt, ...) PRINTF(5, 6);
static int text(struct mmds_reply *r, const http_parser *p, unsigned code, const char *extra,
		const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	return reply(r, p, code, "text/plain", extra, msg,
		     (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

/* The request's path: the target without an absolute form's
 * "http://host[:port]"; NULL when there is none. Into buf. */
static const char *path_of(const struct req *q, char *buf, size_t cap)
{
	const char *u = q->url;
	size_t len = q->url_len;

	if (len >= 7 && !strncasecmp(u, "http://", 7)) {
		const char *slash = memchr(u + 7, '/', len - 7);

		if (!slash)
			return NULL;
		len -= (size_t)(slash - u);
		u = slash;
	}
	if (!len || u[0] != '/' || len >= cap)
		return NULL;
	memcpy(buf, u, len);
	buf[len] = '\0';
	return buf;
}

/* The path with every run of slashes as one. */
static void squeeze(const char *path, char *out)
{
	char prev = 0;

	for (; *path; path++) {
		if (*path == '/' && prev == '/')
			continue;
		*out++ = prev = *path;
	}
	*out = '\0';
}

static bool header_is(const struct hdr *h, const char *v)
{
	return h->vlen == strlen(v) && !strncasecmp(h->val, v, h->vlen);
}

static int put_token(struct mmds_http *m, const struct req *q, const http_parser *p,
		     const char *path, struct mmds_reply *r)
{
	const struct hdr *ttl = &q->h[H_TTL];
	char clean[MMDS_STACK_RCV_BUF], val[32], extra[128], tok[MMDS_TOKEN_LEN + 1];
	unsigned long n;
	char *end;

	if (q->h[H_FORWARDED].name)
		return text(r, p, 400, NULL,
			    "Invalid header. Reason: Unsupported header name. Key: %.*s",
			    (int)q->h[H_FORWARDED].nlen, q->h[H_FORWARDED].name);
	squeeze(path, clean);
	if (strcmp(clean, TOKEN_PATH))
		return text(r, p, 404, NULL, "Resource not found: %s.", path);
	if (!ttl->name)
		return text(
		    r, p, 400, NULL,
		    "Token time to live value not found. Use `X-metadata-token-ttl-seconds` "
		    "or `X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's "
		    "lifetime.");
	/* Its digits whole (leading zeros dropped), or too many for any TTL. */
	size_t skip = 0;

	while (skip + 1 < ttl->vlen && ttl->val[skip] == '0')
		skip++;
	snprintf(val, sizeof(val), "%.*s", (int)(ttl->vlen - skip), ttl->val + skip);
	errno = 0;
	n = strtoul(val, &end, 10);
	if (!val[0] || ttl->vlen - skip >= sizeof(val) || *end || errno || val[0] == '-' ||
	    val[0] == '+' || n > UINT32_MAX)
		return text(r, p, 400, NULL,
			    "Invalid header. Reason: Invalid value. Key:%.*s; Value:%.*s",
			    (int)ttl->nlen, ttl->name, (int)ttl->vlen, ttl->val);
	if (n < MMDS_TOKEN_TTL_MIN || n > MMDS_TOKEN_TTL_MAX)
		return text(r, p, 400, NULL,
			    "Invalid time to live value provided for token: %lu. Please provide a "
			    "value between %u and %u.",
			    n, MMDS_TOKEN_TTL_MIN, MMDS_TOKEN_TTL_MAX);
	mmds_token_new(m->store, (uint32_t)n, now_ns(), tok);
	snprintf(extra, sizeof(extra), "%.*s: %lu\r\n", (int)ttl->nlen, ttl->name, n);
	return reply(r, p, 200, "text/plain", extra, tok, MMDS_TOKEN_LEN);
}

static int get(struct mmds_http *m, const struct req *q, const http_parser *p, const char *path,
	       struct mmds_reply *r)
{
	struct mmds_stack_stats *st = mmds_stats(m->store);
	const struct hdr *tok = &q->h[H_TOKEN];
	bool json = !m->imds_compat && q->h[H_ACCEPT].name &&
		    header_is(&q->h[H_ACCEPT], "application/json");
	char clean[MMDS_STACK_RCV_BUF], *out;
	size_t len;
	int e;

	if (!tok->name) {
		st->rx_no_token++;
		if (m->v2)
			return text(
			    r, p, 401, NULL,
			    "No MMDS token provided. Use `X-metadata-token` or "
			    "`X-aws-ec2-metadata-token` header to specify the session token.");
	} else if (!mmds_token_check(m->store, tok->val, tok->vlen, now_ns())) {
		st->rx_invalid_token++;
		if (m->v2)
			return text(r, p, 401, NULL, "MMDS token not valid.");
	}
	squeeze(path, clean);
	e = mmds_lookup(m->store, clean, json, &out, &len);
	if (e == -ENOENT)
		return text(r, p, 404, NULL, "Resource not found: %s.", path);
	if (e == -ENOTSUP)
		return text(r, p, 501, NULL,
			    "Cannot retrieve value. The value has an unsupported type.");
	if (e < 0)
		return e;
	e = reply(r, p, 200, json ? "application/json" : "text/plain", NULL, out, len);
	free(out);
	return e;
}

int mmds_http_serve(void *ctx, const uint8_t *req, size_t len, bool full, struct mmds_reply *r)
{
	struct mmds_http *m = ctx;
	http_parser_settings s;
	http_parser p;
	struct req q = {0};
	char pbuf[MMDS_STACK_RCV_BUF]; /* a request is no longer */
	const char *path;
	size_t used;
	int e;

	http_parser_settings_init(&s);
	s.on_url = on_url;
	s.on_header_field = on_field;
	s.on_header_value = on_value;
	s.on_headers_complete = on_headers;
	s.on_message_complete = on_complete;
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &q;
	used = http_parser_execute(&p, &s, (const char *)req, len);
	e = HTTP_PARSER_ERRNO(&p);
	if (e != HPE_OK && e != HPE_PAUSED) {
		/* What follows cannot be framed: answer, then close. */
		r->close = true;
		return text(r, &p, 400, NULL, "Invalid request.") < 0 ? -ENOMEM : (int)len;
	}
	if (!q.done)
		return full ? -EMSGSIZE : 0;
	if (q.body) {
		r->close = true;
		return text(r, &p, 400, NULL, "Invalid request.") < 0 ? -ENOMEM : (int)used;
	}
	/* HTTP/1.0 without keep-alive, or Connection: close: the client
	 * reads to the end (Firecracker keeps every connection open). */
	r->close = !http_should_keep_alive(&p);
	if (p.http_major != 1 || p.http_minor > 1)
		e = text(r, &p, 501, NULL, "Unsupported HTTP version.");
	else if (!(path = path_of(&q, pbuf, sizeof(pbuf))))
		e = text(r, &p, 400, NULL, "Invalid URI.");
	else if (p.method == HTTP_GET)
		e = get(m, &q, &p, path, r);
	else if (p.method == HTTP_PUT)
		e = put_token(m, &q, &p, path, r);
	else if (p.method == HTTP_PATCH || p.method == HTTP_DELETE)
		e = text(r, &p, 405, "Allow: GET, PUT\r\n", "Not allowed HTTP method.");
	else
		e = text(r, &p, 501, NULL, "Unsupported HTTP method.");
	return e < 0 ? e : (int)used;
}
