/* The guest agent's wire format: see proto.h. Built into both flint and
 * the static agent, so it uses nothing but libc. */
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

void agent_hdr_put(uint8_t *hdr, uint8_t type, uint32_t len)
{
	hdr[0] = type;
	hdr[1] = 0;
	hdr[2] = (uint8_t)AGENT_PROTO_VERSION;
	hdr[3] = (uint8_t)(AGENT_PROTO_VERSION >> 8);
	put32(hdr + 4, len);
}

int agent_hdr_get(const uint8_t *hdr, struct agent_frame *f)
{
	uint32_t min = 0, max;

	f->type = hdr[0];
	f->len = get32(hdr + 4);
	if (hdr[1] != 0 || (hdr[2] | hdr[3] << 8) != AGENT_PROTO_VERSION)
		return -EPROTO;
	switch (f->type) {
	case AGENT_REQUEST:
		max = AGENT_REQUEST_MAX;
		break;
	case AGENT_STDIN:
	case AGENT_STDOUT:
	case AGENT_STDERR:
		max = AGENT_DATA_MAX;
		break;
	case AGENT_STDIN_EOF:
	case AGENT_TAR_END:
		max = 0;
		break;
	case AGENT_TAR:
		max = AGENT_DATA_MAX;
		break;
	case AGENT_COPY_IN:
	case AGENT_COPY_OUT:
		min = AGENT_COPY_FIXED + 2; /* "/" and its NUL at least */
		max = AGENT_COPY_USER_FIXED + AGENT_PATH_MAX;
		break;
	case AGENT_EXIT:
		min = AGENT_EXIT_FIXED;
		max = AGENT_EXIT_FIXED + AGENT_MSG_MAX;
		break;
	case AGENT_ERROR:
		max = AGENT_MSG_MAX;
		break;
	default:
		return -EPROTO;
	}
	if (f->len < min)
		return -EPROTO;
	return f->len > max ? -EMSGSIZE : 0;
}

/* Appends s and its NUL at *pos. */
static void put_str(uint8_t *p, size_t *pos, const char *s)
{
	size_t n = strlen(s) + 1;

	memcpy(p + *pos, s, n);
	*pos += n;
}

long agent_request_encode(const struct agent_request *req, uint8_t *buf, size_t cap, char *err,
			  size_t errlen)
{
	size_t fixed = req->flags & AGENT_REQ_USER ? AGENT_REQ_USER_FIXED : AGENT_REQ_FIXED;
	size_t size = fixed, pos = fixed;
	const char *cwd = req->cwd ? req->cwd : "";
	uint8_t *p = buf + AGENT_HDR_SIZE;
	struct agent_request check;
	int ret;

	/* Sizes first, so that nothing is written past cap; the counts are
	 * bounded before they are trusted to walk the arrays. */
	if (req->argc > AGENT_ARGC_MAX || req->envc > AGENT_ENVC_MAX)
		return fail(err, errlen, "too many arguments or environment entries");
	for (uint32_t i = 0; i < req->argc + req->envc + 1; i++) {
		const char *s = i < req->argc		    ? req->argv[i]
				: i < req->argc + req->envc ? req->envp[i - req->argc]
							    : cwd;
		size_t n = strnlen(s, AGENT_STR_MAX);

		if (n == AGENT_STR_MAX)
			return fail(err, errlen, "a string is too long (at most %u bytes)",
				    AGENT_STR_MAX - 1);
		size += n + 1;
	}
	if (size > AGENT_REQUEST_MAX || size + AGENT_HDR_SIZE > cap) {
		fail(err, errlen, "the command is too long (%zu bytes, at most %u)", size,
		     AGENT_REQUEST_MAX);
		return -E2BIG;
	}

	put32(p, req->timeout_ms);
	put32(p + 4, req->flags);
	put32(p + 8, req->argc);
	put32(p + 12, req->envc);
	if (req->flags & AGENT_REQ_USER) {
		put32(p + 16, req->uid);
		put32(p + 20, req->gid);
	}
	for (uint32_t i = 0; i < req->argc; i++)
		put_str(p, &pos, req->argv[i]);
	for (uint32_t i = 0; i < req->envc; i++)
		put_str(p, &pos, req->envp[i]);
	put_str(p, &pos, cwd);

	/* One set of rules: check what was built exactly as the agent will. */
	ret = agent_request_decode(p, size, &check, err, errlen);
	if (ret < 0)
		return ret;
	agent_request_free(&check);
	agent_hdr_put(buf, AGENT_REQUEST, (uint32_t)size);
	return (long)(size + AGENT_HDR_SIZE);
}

/* Finds the NUL-terminated string at *pos within len bytes. Returns its
 * start and moves *pos past its NUL, or NULL with err set. */
static const char *take_str(const uint8_t *p, size_t len, size_t *pos, const char *what,
			    uint32_t idx, char *err, size_t errlen)
{
	const uint8_t *s = p + *pos;
	size_t left = len - *pos;
	const uint8_t *nul = memchr(s, '\0', left < AGENT_STR_MAX ? left : AGENT_STR_MAX);

	if (!nul) {
		if (left >= AGENT_STR_MAX)
			fail(err, errlen, "%s %u is too long (at most %u bytes)", what, idx,
			     AGENT_STR_MAX - 1);
		else
			fail(err, errlen, "%s %u is missing or not NUL-terminated", what, idx);
		return NULL;
	}
	*pos += (size_t)(nul - s) + 1;
	return (const char *)s;
}

int agent_request_decode(const uint8_t *payload, size_t len, struct agent_request *req, char *err,
			 size_t errlen)
{
	size_t pos = AGENT_REQ_FIXED;
	const char **vec;
	uint32_t argc, envc, flags;

	memset(req, 0, sizeof(*req));
	if (len < AGENT_REQ_FIXED)
		return fail(err, errlen, "request too short (%zu bytes)", len);
	if (len > AGENT_REQUEST_MAX)
		return fail(err, errlen, "request too long (%zu bytes)", len);
	argc = get32(payload + 8);
	envc = get32(payload + 12);
	flags = get32(payload + 4);
	if (flags & ~AGENT_REQ_FLAGS)
		return fail(err, errlen, "unknown request flags %#x", flags);
	if (flags & AGENT_REQ_USER) {
		pos = AGENT_REQ_USER_FIXED;
		if (len < pos)
			return fail(err, errlen, "request too short for a user (%zu bytes)", len);
		req->uid = get32(payload + 16);
		req->gid = get32(payload + 20);
		/* (uid_t)-1 means "unchanged" to setuid and friends. */
		if (req->uid == UINT32_MAX)
			return fail(err, errlen, "uid %u is not a user", req->uid);
	}
	if (argc == 0)
		return fail(err, errlen, "no command (argc 0)");
	if (argc > AGENT_ARGC_MAX)
		return fail(err, errlen, "too many arguments (%u, at most %u)", argc,
			    AGENT_ARGC_MAX);
	if (envc > AGENT_ENVC_MAX)
		return fail(err, errlen, "too many environment entries (%u, at most %u)", envc,
			    AGENT_ENVC_MAX);

	/* Every string takes at least its NUL. */
	if ((uint64_t)argc + envc + 1 > len - pos)
		return fail(err, errlen,
			    "%u arguments and %u environment entries do not fit %zu bytes", argc,
			    envc, len);

	/* argv, its NULL, envp, its NULL: one allocation. */
	vec = calloc((size_t)argc + envc + 2, sizeof(*vec));
	if (!vec)
		return -ENOMEM;
	for (uint32_t i = 0; i < argc; i++) {
		vec[i] = take_str(payload, len, &pos, "argument", i, err, errlen);
		if (!vec[i])
			goto bad;
	}
	if (vec[0][0] == '\0') {
		fail(err, errlen, "empty command name");
		goto bad;
	}
	for (uint32_t i = 0; i < envc; i++) {
		const char *e = take_str(payload, len, &pos, "environment entry", i, err, errlen);

		if (!e)
			goto bad;
		/* "=x" has no name; no '=' at all is not an assignment. */
		if (e[0] == '=' || !strchr(e, '=')) {
			fail(err, errlen, "environment entry %u is not NAME=value", i);
			goto bad;
		}
		vec[argc + 1 + i] = e;
	}
	req->cwd = take_str(payload, len, &pos, "working directory", 0, err, errlen);
	if (!req->cwd)
		goto bad;
	if (req->cwd[0] != '\0' && req->cwd[0] != '/') {
		fail(err, errlen, "the working directory is not an absolute path");
		goto bad;
	}
	/* Also what an embedded NUL looks like: one string more than counted. */
	if (pos != len) {
		fail(err, errlen, "%zu bytes after the working directory", len - pos);
		goto bad;
	}

	req->timeout_ms = get32(payload);
	req->flags = flags;
	req->argc = argc;
	req->envc = envc;
	req->argv = (char *const *)vec;
	req->envp = (char *const *)(vec + argc + 1);
	return 0;
bad:
	free(vec);
	req->cwd = NULL;
	return -EINVAL;
}

void agent_request_free(struct agent_request *req)
{
	free((void *)req->argv);
	req->argv = NULL;
	req->envp = NULL;
}

bool agent_path_has_dots(const char *path)
{
	for (const char *c = path; *c;) {
		size_t n;

		c += strspn(c, "/");
		n = strcspn(c, "/");
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return true;
		c += n;
	}
	return false;
}

long agent_copy_encode(uint8_t *buf, size_t cap, uint8_t type, const struct agent_copy *c,
		       char *err, size_t errlen)
{
	size_t fixed = c->flags & AGENT_COPY_USER ? AGENT_COPY_USER_FIXED : AGENT_COPY_FIXED;
	size_t n = strnlen(c->path, AGENT_PATH_MAX), size = fixed + n + 1;
	struct agent_copy back;

	if (n == AGENT_PATH_MAX)
		return fail(err, errlen, "the guest path is too long (at most %u bytes)",
			    AGENT_PATH_MAX - 1);
	if (AGENT_HDR_SIZE + size > cap)
		return -E2BIG;
	agent_hdr_put(buf, type, (uint32_t)size);
	put32(buf + AGENT_HDR_SIZE, c->flags);
	if (c->flags & AGENT_COPY_USER) {
		put32(buf + AGENT_HDR_SIZE + 4, c->uid);
		put32(buf + AGENT_HDR_SIZE + 8, c->gid);
	}
	memcpy(buf + AGENT_HDR_SIZE + fixed, c->path, n + 1);
	int ret = agent_copy_decode(type, buf + AGENT_HDR_SIZE, size, &back, err, errlen);

	return ret < 0 ? ret : (long)(AGENT_HDR_SIZE + size);
}

int agent_copy_decode(uint8_t type, const uint8_t *payload, size_t len, struct agent_copy *c,
		      char *err, size_t errlen)
{
	uint32_t known = type == AGENT_COPY_IN ? AGENT_COPY_FLAGS : AGENT_COPY_USER;
	size_t fixed;
	const char *p;

	*c = (struct agent_copy){0};
	if (type != AGENT_COPY_IN && type != AGENT_COPY_OUT)
		return fail(err, errlen, "frame type %u is not a copy", type);
	if (len < AGENT_COPY_FIXED)
		return fail(err, errlen, "copy request of %zu bytes", len);
	c->flags = get32(payload);
	if (c->flags & ~known)
		return fail(err, errlen, "unknown copy flags %#x", c->flags);
	fixed = c->flags & AGENT_COPY_USER ? AGENT_COPY_USER_FIXED : AGENT_COPY_FIXED;
	if (len < fixed + 2 || len > fixed + AGENT_PATH_MAX)
		return fail(err, errlen, "copy request of %zu bytes", len);
	if (c->flags & AGENT_COPY_USER) {
		c->uid = get32(payload + 4);
		c->gid = get32(payload + 8);
		if (c->uid == UINT32_MAX)
			return fail(err, errlen, "uid %u is not a user", c->uid);
	}
	p = (const char *)payload + fixed;
	/* Exactly one string, its NUL the payload's last byte. */
	if (memchr(p, '\0', len - fixed) != (const void *)(payload + len - 1))
		return fail(err, errlen, "the path is not one NUL-terminated string");
	if (p[0] != '/')
		return fail(err, errlen, "the path is not absolute");
	if (agent_path_has_dots(p))
		return fail(err, errlen, "the path has a '.' or '..' component");
	c->path = p;
	return 0;
}

size_t agent_exit_encode(uint8_t *buf, uint32_t kind, int32_t value, const char *msg)
{
	size_t n = msg ? strnlen(msg, AGENT_MSG_MAX) : 0;

	agent_hdr_put(buf, AGENT_EXIT, (uint32_t)(AGENT_EXIT_FIXED + n));
	put32(buf + AGENT_HDR_SIZE, kind);
	put32(buf + AGENT_HDR_SIZE + 4, (uint32_t)value);
	if (n)
		memcpy(buf + AGENT_HDR_SIZE + AGENT_EXIT_FIXED, msg, n);
	return AGENT_HDR_SIZE + AGENT_EXIT_FIXED + n;
}

int agent_exit_decode(const uint8_t *payload, size_t len, struct agent_exit *e)
{
	bool ok;

	if (len < AGENT_EXIT_FIXED || len > AGENT_EXIT_FIXED + AGENT_MSG_MAX)
		return -EINVAL;
	e->kind = get32(payload);
	e->value = (int32_t)get32(payload + 4);
	switch (e->kind) {
	case AGENT_EXITED:
		ok = e->value >= 0 && e->value <= 255;
		break;
	case AGENT_SIGNALED:
		ok = e->value >= 1 && e->value <= 64;
		break;
	case AGENT_TIMED_OUT:
	case AGENT_NOT_STARTED:
		ok = true;
		break;
	default:
		ok = false;
	}
	if (!ok)
		return -EINVAL;
	agent_msg_copy(e->msg, sizeof(e->msg), payload + AGENT_EXIT_FIXED, len - AGENT_EXIT_FIXED);
	return 0;
}

void agent_msg_copy(char *out, size_t outlen, const uint8_t *p, size_t len)
{
	size_t n = 0;

	if (!outlen)
		return;
	/* The text comes from the other side: nothing that steers a terminal. */
	for (; n < len && n + 1 < outlen; n++)
		out[n] = p[n] >= 0x20 && p[n] < 0x7f ? (char)p[n] : '?';
	out[n] = '\0';
}

void agent_reader_init(struct agent_reader *r, uint8_t *buf, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->buf = buf;
	r->cap = cap;
}

int agent_read_frame(struct agent_reader *r, int fd)
{
	for (;;) {
		uint8_t *dst;
		size_t want;
		ssize_t n;

		if (r->got < AGENT_HDR_SIZE) {
			dst = r->hdr + r->got;
			want = AGENT_HDR_SIZE - r->got;
		} else {
			size_t have = r->got - AGENT_HDR_SIZE;

			if (have == r->f.len) {
				r->got = 0;
				return 1;
			}
			dst = r->buf + have;
			want = r->f.len - have;
		}
		n = read(fd, dst, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (n == 0)
			return r->got ? -ECONNRESET : 0;
		r->got += (size_t)n;
		if (r->got == AGENT_HDR_SIZE) {
			int ret = agent_hdr_get(r->hdr, &r->f);

			if (ret < 0)
				return ret;
			if (r->f.len > r->cap)
				return -EMSGSIZE;
		}
	}
}

int agent_out_frame(struct agent_outbuf *o, uint8_t type, const void *payload, size_t len)
{
	uint8_t *dst;

	if (o->cap - o->len < AGENT_HDR_SIZE || o->cap - o->len - AGENT_HDR_SIZE < len)
		return -ENOBUFS;
	dst = o->buf + o->len;
	agent_hdr_put(dst, type, (uint32_t)len);
	/* The payload may have been read in place, right after the header. */
	if (len && payload != dst + AGENT_HDR_SIZE)
		memcpy(dst + AGENT_HDR_SIZE, payload, len);
	o->len += AGENT_HDR_SIZE + len;
	return 0;
}

int agent_out_flush(struct agent_outbuf *o, int fd)
{
	while (o->off < o->len) {
		ssize_t n = send(fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? 1 : -errno;
		o->off += (size_t)n;
	}
	o->off = o->len = 0;
	return 0;
}
