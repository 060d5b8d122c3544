/* The guest agent's wire format (rootfs/agent/proto.c): frame headers,
 * request encoding and every way a request can be malformed, EXIT frames,
 * and reading frames from a stream in pieces. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/proto.h"

/* ---- headers ---- */

Test(agent_hdr, round_trip_and_layout)
{
	uint8_t h[AGENT_HDR_SIZE];
	struct agent_frame f;

	agent_hdr_put(h, AGENT_STDOUT, 0x1234);
	/* Little-endian: type, flags, version, length. */
	const uint8_t want[] = {16, 0, AGENT_PROTO_VERSION, 0, 0x34, 0x12, 0, 0};
	cr_assert_arr_eq(h, want, sizeof(want));
	cr_assert_eq(agent_hdr_get(h, &f), 0);
	cr_assert_eq(f.type, AGENT_STDOUT);
	cr_assert_eq(f.len, 0x1234);
}

Test(agent_hdr, rejects_bad_version_flags_and_type)
{
	uint8_t h[AGENT_HDR_SIZE];
	struct agent_frame f;

	agent_hdr_put(h, AGENT_REQUEST, 10);
	h[2] = AGENT_PROTO_VERSION + 1;
	cr_assert_eq(agent_hdr_get(h, &f), -EPROTO);
	agent_hdr_put(h, AGENT_REQUEST, 10);
	h[3] = 1; /* version 0x101 */
	cr_assert_eq(agent_hdr_get(h, &f), -EPROTO);
	agent_hdr_put(h, AGENT_REQUEST, 10);
	h[1] = 0x80;
	cr_assert_eq(agent_hdr_get(h, &f), -EPROTO);
	for (unsigned t = 0; t < 256; t++) {
		bool known = t == AGENT_REQUEST || t == AGENT_STDIN || t == AGENT_STDIN_EOF ||
			     t == AGENT_STDOUT || t == AGENT_STDERR || t == AGENT_EXIT ||
			     t == AGENT_ERROR || t == AGENT_COPY_IN || t == AGENT_COPY_OUT ||
			     t == AGENT_TAR || t == AGENT_TAR_END;

		agent_hdr_put(h, (uint8_t)t, 0);
		/* shorter than their fixed parts */
		if (t == AGENT_EXIT || t == AGENT_COPY_IN || t == AGENT_COPY_OUT)
			cr_assert_eq(agent_hdr_get(h, &f), -EPROTO);
		else
			cr_assert_eq(agent_hdr_get(h, &f), known ? 0 : -EPROTO, "type %u", t);
	}
}

Test(agent_hdr, caps_length_per_type)
{
	const struct {
		uint8_t type;
		uint32_t max;
	} caps[] = {
	    {AGENT_REQUEST, AGENT_REQUEST_MAX},
	    {AGENT_STDIN, AGENT_DATA_MAX},
	    {AGENT_STDOUT, AGENT_DATA_MAX},
	    {AGENT_STDERR, AGENT_DATA_MAX},
	    {AGENT_STDIN_EOF, 0},
	    {AGENT_EXIT, AGENT_EXIT_FIXED + AGENT_MSG_MAX},
	    {AGENT_ERROR, AGENT_MSG_MAX},
	};
	uint8_t h[AGENT_HDR_SIZE];
	struct agent_frame f;

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		agent_hdr_put(h, caps[i].type, caps[i].max);
		cr_assert_eq(agent_hdr_get(h, &f), 0, "type %u", caps[i].type);
		agent_hdr_put(h, caps[i].type, caps[i].max + 1);
		cr_assert_eq(agent_hdr_get(h, &f), -EMSGSIZE, "type %u", caps[i].type);
	}
	agent_hdr_put(h, AGENT_STDOUT, 0xffffffff);
	cr_assert_eq(agent_hdr_get(h, &f), -EMSGSIZE);
}

/* ---- requests ---- */

static uint8_t frame[AGENT_HDR_SIZE + AGENT_REQUEST_MAX];

/* Encodes a request; returns the payload length (asserting success). */
static size_t encode(const struct agent_request *req)
{
	char err[256];
	long n = agent_request_encode(req, frame, sizeof(frame), err, sizeof(err));

	cr_assert_gt(n, 0, "encode: %ld %s", n, err);
	return (size_t)n - AGENT_HDR_SIZE;
}

Test(agent_request, round_trip)
{
	char *argv[] = {"sh", "-c", "echo hi; exit 3", ""};
	char *envp[] = {"A=1", "EMPTY=", "PATH=/x"};
	struct agent_request in = {
	    .timeout_ms = 1500,
	    .flags = AGENT_REQ_STDIN,
	    .argc = 4,
	    .envc = 3,
	    .argv = argv,
	    .envp = envp,
	    .cwd = "/tmp",
	};
	struct agent_request out;
	struct agent_frame f;
	char err[256];
	size_t len = encode(&in);

	cr_assert_eq(agent_hdr_get(frame, &f), 0);
	cr_assert_eq(f.type, AGENT_REQUEST);
	cr_assert_eq(f.len, len);
	cr_assert_eq(agent_request_decode(frame + AGENT_HDR_SIZE, len, &out, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(out.timeout_ms, 1500);
	cr_assert_eq(out.flags, AGENT_REQ_STDIN);
	cr_assert_eq(out.argc, 4);
	cr_assert_eq(out.envc, 3);
	for (int i = 0; i < 4; i++)
		cr_assert_str_eq(out.argv[i], argv[i]);
	cr_assert_null(out.argv[4]);
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(out.envp[i], envp[i]);
	cr_assert_null(out.envp[3]);
	cr_assert_str_eq(out.cwd, "/tmp");
	/* The strings live in the payload, not in copies. */
	cr_assert(out.argv[0] >= (char *)frame && out.argv[0] < (char *)frame + sizeof(frame));
	agent_request_free(&out);
	cr_assert_null(out.argv);
}

Test(agent_request, minimal_and_exact_layout)
{
	char *argv[] = {"true"};
	struct agent_request in = {.argc = 1, .argv = argv};
	struct agent_request out;
	char err[256];
	size_t len = encode(&in);
	const uint8_t want[] = {0, 0, 0, 0, 0, 0,   0,	 0,   1,   0, 0,
				0, 0, 0, 0, 0, 't', 'r', 'u', 'e', 0, 0};

	cr_assert_eq(len, sizeof(want));
	cr_assert_arr_eq(frame + AGENT_HDR_SIZE, want, sizeof(want));
	cr_assert_eq(agent_request_decode(frame + AGENT_HDR_SIZE, len, &out, err, sizeof(err)), 0);
	cr_assert_str_eq(out.cwd, "");
	cr_assert_eq(out.envc, 0);
	cr_assert_null(out.envp[0]);
	agent_request_free(&out);
}

/* A payload built by hand: the fixed part, then raw string bytes. */
static size_t raw(uint8_t *p, uint32_t timeout, uint32_t flags, uint32_t argc, uint32_t envc,
		  const void *strs, size_t n)
{
	uint32_t fixed[4] = {timeout, flags, argc, envc}; /* host is little-endian */

	memcpy(p, fixed, sizeof(fixed));
	if (strs != p + 16)
		memcpy(p + 16, strs, n);
	return 16 + n;
}

#define RAW(argc, envc, lit) raw(buf, 0, 0, argc, envc, lit, sizeof(lit) - 1)

static void expect_bad(const uint8_t *p, size_t len, const char *needle)
{
	struct agent_request req;
	char err[256] = "";

	cr_assert_eq(agent_request_decode(p, len, &req, err, sizeof(err)), -EINVAL,
		     "accepted; wanted '%s'", needle);
	cr_assert_not_null(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
	cr_assert_null(req.argv);
}

Test(agent_request, malformed)
{
	static uint8_t buf[AGENT_REQUEST_MAX + 64];
	size_t n;

	/* The baseline is fine. */
	n = RAW(1, 1, "ls\0A=1\0/\0");
	struct agent_request ok;
	char err[256];
	cr_assert_eq(agent_request_decode(buf, n, &ok, err, sizeof(err)), 0, "%s", err);
	agent_request_free(&ok);

	expect_bad(buf, 0, "too short");
	expect_bad(buf, 15, "too short");
	n = RAW(0, 0, "\0");
	expect_bad(buf, n, "argc 0");
	n = RAW(AGENT_ARGC_MAX + 1, 0, "a\0\0");
	expect_bad(buf, n, "too many arguments");
	n = RAW(0xffffffff, 0, "a\0\0");
	expect_bad(buf, n, "too many arguments");
	n = RAW(1, AGENT_ENVC_MAX + 1, "a\0\0");
	expect_bad(buf, n, "too many environment");
	/* Counts that the payload cannot hold, however short the strings. */
	n = RAW(100, 0, "a\0\0");
	expect_bad(buf, n, "do not fit");
	n = raw(buf, 0, 4, 1, 0, "a\0\0", 3);
	expect_bad(buf, n, "unknown request flags");
	n = raw(buf, 0, 0x80000000, 1, 0, "a\0\0", 3);
	expect_bad(buf, n, "unknown request flags");
	/* Not NUL-terminated: the last string, or the only one. */
	n = RAW(1, 0, "ls\0/");
	expect_bad(buf, n, "working directory 0 is missing or not NUL-terminated");
	n = RAW(1, 1, "ls\0A=1");
	expect_bad(buf, n, "missing or not NUL-terminated");
	/* One string fewer than counted: the cwd is missing. */
	n = RAW(2, 0, "ls\0-l\0");
	expect_bad(buf, n, "working directory");
	/* An embedded NUL makes one string more than counted. */
	n = RAW(1, 0, "ls\0/tm\0p\0");
	expect_bad(buf, n, "2 bytes after the working directory");
	n = RAW(1, 0, "ls\0/\0junk");
	expect_bad(buf, n, "4 bytes after");
	n = RAW(1, 0, "ls\0/\0\0");
	expect_bad(buf, n, "1 bytes after");
	n = RAW(1, 0, "\0/\0");
	expect_bad(buf, n, "empty command name");
	n = RAW(1, 1, "ls\0NOEQUALS\0/\0");
	expect_bad(buf, n, "environment entry 0 is not NAME=value");
	n = RAW(1, 2, "ls\0A=1\0=x\0/\0");
	expect_bad(buf, n, "environment entry 1 is not NAME=value");
	n = RAW(1, 1, "ls\0\0/\0");
	expect_bad(buf, n, "environment entry 0 is not NAME=value");
	n = RAW(1, 0, "ls\0tmp\0");
	expect_bad(buf, n, "not an absolute path");
}

Test(agent_request, overlong_fields)
{
	static uint8_t buf[AGENT_REQUEST_MAX + 64];
	size_t n;

	/* One argument of AGENT_STR_MAX bytes without its NUL in reach. */
	memset(buf + 16, 'x', AGENT_STR_MAX);
	buf[16 + AGENT_STR_MAX] = '\0';
	buf[16 + AGENT_STR_MAX + 1] = '\0';
	n = raw(buf, 0, 0, 1, 0, buf + 16, AGENT_STR_MAX + 2);
	expect_bad(buf, n, "argument 0 is too long");
	/* AGENT_STR_MAX - 1 characters are fine. */
	buf[16 + AGENT_STR_MAX - 1] = '\0';
	n = raw(buf, 0, 0, 1, 0, buf + 16, AGENT_STR_MAX + 1);
	struct agent_request req;
	char err[256];
	cr_assert_eq(agent_request_decode(buf, n, &req, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strlen(req.argv[0]), AGENT_STR_MAX - 1);
	agent_request_free(&req);
	/* A payload over the request limit. */
	expect_bad(buf, AGENT_REQUEST_MAX + 1, "request too long");
}

Test(agent_request, encoder_refuses_what_the_agent_would)
{
	char err[256];
	char *argv[] = {"ls"};
	char *empty[] = {""};
	char *bad_env[] = {"NOEQ"};
	struct agent_request req = {.argc = 0, .argv = argv};

	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	req = (struct agent_request){.argc = 1, .argv = empty};
	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	req = (struct agent_request){.argc = 1, .argv = argv, .envc = 1, .envp = bad_env};
	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "NAME=value"));
	req = (struct agent_request){.argc = 1, .argv = argv, .cwd = "relative"};
	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	req = (struct agent_request){.argc = 1, .argv = argv, .flags = 8};
	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	req = (struct agent_request){.argc = AGENT_ARGC_MAX + 1, .argv = argv};
	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	/* Too big for the buffer given, or for the protocol. */
	req = (struct agent_request){.argc = 1, .argv = argv};
	/* "ls" and an empty cwd: 16 + 3 + 1 bytes. */
	cr_assert_eq(agent_request_encode(&req, frame, AGENT_HDR_SIZE + 19, err, sizeof(err)),
		     -E2BIG);
	cr_assert_eq(agent_request_encode(&req, frame, AGENT_HDR_SIZE + 20, err, sizeof(err)),
		     AGENT_HDR_SIZE + 20);

	char *big = malloc(AGENT_STR_MAX + 1);
	memset(big, 'y', AGENT_STR_MAX);
	big[AGENT_STR_MAX] = '\0';
	char *one_big[] = {big};
	req = (struct agent_request){.argc = 1, .argv = one_big};
	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "too long"));
	big[AGENT_STR_MAX - 1] = '\0';
	char *many[10];
	for (int i = 0; i < 10; i++)
		many[i] = big; /* 10 x 128 KiB > 1 MiB */
	req = (struct agent_request){.argc = 10, .argv = many};
	cr_assert_eq(agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err)), -E2BIG);
	free(big);
}

/* Random corruption of a valid request never crashes the decoder, and what
 * it accepts is internally consistent. */
Test(agent_request, mutations_decode_safely)
{
	char *argv[] = {"sh", "-c", "x"};
	char *envp[] = {"A=1", "B=2"};
	struct agent_request in = {.argc = 3, .argv = argv, .envc = 2, .envp = envp, .cwd = "/r"};
	size_t len = encode(&in);
	uint8_t *p = malloc(len + 8);
	unsigned seed = 12345, accepted = 0;

	for (int iter = 0; iter < 200000; iter++) {
		struct agent_request out;
		char err[256];
		size_t n = len - (size_t)(rand_r(&seed) % 3 == 0 ? rand_r(&seed) % 8 : 0);

		memcpy(p, frame + AGENT_HDR_SIZE, len);
		for (int k = rand_r(&seed) % 3 + 1; k > 0; k--)
			p[rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
		if (agent_request_decode(p, n, &out, err, sizeof(err)) < 0)
			continue;
		accepted++;
		cr_assert_geq(out.argc, 1);
		cr_assert_neq(out.argv[0][0], '\0');
		cr_assert_null(out.argv[out.argc]);
		cr_assert_null(out.envp[out.envc]);
		for (uint32_t i = 0; i < out.envc; i++)
			cr_assert(strchr(out.envp[i], '=') > out.envp[i]);
		cr_assert(out.cwd[0] == '\0' || out.cwd[0] == '/');
		cr_assert(out.cwd + strlen(out.cwd) + 1 <= (char *)p + n);
		agent_request_free(&out);
	}
	/* Flips inside string bytes keep it valid often enough. */
	cr_assert_gt(accepted, 1000);
	free(p);
}

/* ---- EXIT and messages ---- */

Test(agent_exit, round_trip_and_ranges)
{
	uint8_t buf[AGENT_HDR_SIZE + AGENT_EXIT_FIXED + AGENT_MSG_MAX];
	struct agent_exit e;
	struct agent_frame f;
	size_t n = agent_exit_encode(buf, AGENT_NOT_STARTED, 2, "cannot run 'x': No such file");

	cr_assert_eq(agent_hdr_get(buf, &f), 0);
	cr_assert_eq(f.type, AGENT_EXIT);
	cr_assert_eq(f.len + AGENT_HDR_SIZE, n);
	cr_assert_eq(agent_exit_decode(buf + AGENT_HDR_SIZE, f.len, &e), 0);
	cr_assert_eq(e.kind, AGENT_NOT_STARTED);
	cr_assert_eq(e.value, 2);
	cr_assert_str_eq(e.msg, "cannot run 'x': No such file");

	const struct {
		uint32_t kind;
		int32_t value;
		int ok;
	} cases[] = {
	    {AGENT_EXITED, 0, 1},
	    {AGENT_EXITED, 255, 1},
	    {AGENT_EXITED, 256, 0},
	    {AGENT_EXITED, -1, 0},
	    {AGENT_SIGNALED, 9, 1},
	    {AGENT_SIGNALED, 64, 1},
	    {AGENT_SIGNALED, 0, 0},
	    {AGENT_SIGNALED, 65, 0},
	    {AGENT_TIMED_OUT, 0, 1},
	    {AGENT_NOT_STARTED, 13, 1},
	    {4, 0, 0},
	    {0xffffffff, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = agent_exit_encode(buf, cases[i].kind, cases[i].value, NULL);
		cr_assert_eq(n, AGENT_HDR_SIZE + AGENT_EXIT_FIXED);
		cr_assert_eq(agent_exit_decode(buf + AGENT_HDR_SIZE, AGENT_EXIT_FIXED, &e),
			     cases[i].ok ? 0 : -EINVAL, "case %zu", i);
		if (cases[i].ok)
			cr_assert_str_eq(e.msg, "");
	}
	cr_assert_eq(agent_exit_decode(buf + AGENT_HDR_SIZE, AGENT_EXIT_FIXED - 1, &e), -EINVAL);
	cr_assert_eq(
	    agent_exit_decode(buf + AGENT_HDR_SIZE, AGENT_EXIT_FIXED + AGENT_MSG_MAX + 1, &e),
	    -EINVAL);
}

Test(agent_exit, message_cut_and_made_printable)
{
	uint8_t buf[AGENT_HDR_SIZE + AGENT_EXIT_FIXED + AGENT_MSG_MAX];
	char long_msg[AGENT_MSG_MAX + 50];
	struct agent_exit e;
	size_t n;

	memset(long_msg, 'm', sizeof(long_msg) - 1);
	long_msg[sizeof(long_msg) - 1] = '\0';
	n = agent_exit_encode(buf, AGENT_NOT_STARTED, 1, long_msg);
	cr_assert_eq(n, AGENT_HDR_SIZE + AGENT_EXIT_FIXED + AGENT_MSG_MAX);
	cr_assert_eq(agent_exit_decode(buf + AGENT_HDR_SIZE, n - AGENT_HDR_SIZE, &e), 0);
	cr_assert_eq(strlen(e.msg), AGENT_MSG_MAX);

	n = agent_exit_encode(buf, AGENT_NOT_STARTED, 1, "a\033[2Jb\nc\xff");
	cr_assert_eq(agent_exit_decode(buf + AGENT_HDR_SIZE, n - AGENT_HDR_SIZE, &e), 0);
	cr_assert_str_eq(e.msg, "a?[2Jb?c?");

	char small[4];
	agent_msg_copy(small, sizeof(small), (const uint8_t *)"abcdef", 6);
	cr_assert_str_eq(small, "abc");
	agent_msg_copy(small, sizeof(small), (const uint8_t *)"a\0b", 3);
	cr_assert_str_eq(small, "a?b");
}

/* ---- reading and writing frames on a stream ---- */

static void pair(int sv[2], bool nonblock)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0, sv), 0);
}

static void put(int fd, const void *p, size_t n)
{
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
}

Test(agent_reader, frame_in_one_byte_pieces)
{
	uint8_t frm[AGENT_HDR_SIZE + 5], buf[64];
	struct agent_reader r;
	int sv[2];

	pair(sv, true);
	agent_hdr_put(frm, AGENT_STDIN, 5);
	memcpy(frm + AGENT_HDR_SIZE, "hello", 5);
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), -EAGAIN);
	for (size_t i = 0; i < sizeof(frm); i++) {
		put(sv[1], frm + i, 1);
		int ret = agent_read_frame(&r, sv[0]);

		if (i + 1 < sizeof(frm))
			cr_assert_eq(ret, -EAGAIN, "byte %zu", i);
		else
			cr_assert_eq(ret, 1);
	}
	cr_assert_eq(r.f.type, AGENT_STDIN);
	cr_assert_eq(r.f.len, 5);
	cr_assert_arr_eq(buf, "hello", 5);
	close(sv[1]);
	cr_assert_eq(agent_read_frame(&r, sv[0]), 0); /* EOF at a boundary */
	close(sv[0]);
}

Test(agent_reader, never_reads_past_a_frame)
{
	uint8_t two[2 * AGENT_HDR_SIZE + 3], buf[16];
	struct agent_reader r;
	int sv[2];

	pair(sv, false);
	agent_hdr_put(two, AGENT_STDOUT, 3);
	memcpy(two + AGENT_HDR_SIZE, "abc", 3);
	agent_hdr_put(two + AGENT_HDR_SIZE + 3, AGENT_STDIN_EOF, 0);
	put(sv[1], two, sizeof(two));
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), 1);
	cr_assert_eq(r.f.type, AGENT_STDOUT);
	cr_assert_arr_eq(buf, "abc", 3);
	cr_assert_eq(agent_read_frame(&r, sv[0]), 1);
	cr_assert_eq(r.f.type, AGENT_STDIN_EOF);
	cr_assert_eq(r.f.len, 0);
	/* Nothing else was consumed: a byte written now is the next read. */
	put(sv[1], "z", 1);
	char c;
	cr_assert_eq(read(sv[0], &c, 1), 1);
	cr_assert_eq(c, 'z');
	close(sv[0]);
	close(sv[1]);
}

Test(agent_reader, truncated_streams)
{
	uint8_t frm[AGENT_HDR_SIZE + 4], buf[16];
	struct agent_reader r;
	int sv[2];

	/* EOF inside the header. */
	pair(sv, false);
	agent_hdr_put(frm, AGENT_STDERR, 4);
	put(sv[1], frm, 3);
	close(sv[1]);
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), -ECONNRESET);
	close(sv[0]);
	/* EOF inside the payload. */
	pair(sv, false);
	put(sv[1], frm, AGENT_HDR_SIZE + 2);
	close(sv[1]);
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), -ECONNRESET);
	close(sv[0]);
}

Test(agent_reader, bad_headers_are_refused_before_the_payload)
{
	uint8_t hdr[AGENT_HDR_SIZE], buf[16];
	struct agent_reader r;
	int sv[2];

	/* A length over the type's cap. */
	pair(sv, false);
	agent_hdr_put(hdr, AGENT_STDOUT, AGENT_DATA_MAX + 1);
	put(sv[1], hdr, sizeof(hdr));
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), -EMSGSIZE);
	/* Within the cap, but over the caller's buffer. */
	agent_hdr_put(hdr, AGENT_STDOUT, sizeof(buf) + 1);
	put(sv[1], hdr, sizeof(hdr));
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), -EMSGSIZE);
	/* An unknown type. */
	agent_hdr_put(hdr, 99, 0);
	put(sv[1], hdr, sizeof(hdr));
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), -EPROTO);
	/* Another version. */
	agent_hdr_put(hdr, AGENT_STDOUT, 0);
	hdr[2] = 7;
	put(sv[1], hdr, sizeof(hdr));
	agent_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(agent_read_frame(&r, sv[0]), -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

Test(agent_outbuf, queue_flush_and_resume)
{
	static uint8_t big[AGENT_HDR_SIZE + AGENT_DATA_MAX];
	uint8_t small[AGENT_HDR_SIZE + 4];
	struct agent_outbuf o = {.buf = small, .cap = sizeof(small)};
	int sv[2], sndbuf = 4096;

	cr_assert_eq(agent_out_frame(&o, AGENT_STDOUT, "abcde", 5), -ENOBUFS);
	cr_assert_eq(agent_out_frame(&o, AGENT_STDOUT, "abcd", 4), 0);
	cr_assert_eq(agent_out_frame(&o, AGENT_STDIN_EOF, NULL, 0), -ENOBUFS);

	pair(sv, true);
	cr_assert_eq(agent_out_flush(&o, sv[0]), 0);
	cr_assert_eq(o.len, 0);
	cr_assert_eq(o.off, 0);
	uint8_t got[sizeof(small)];
	cr_assert_eq(read(sv[1], got, sizeof(got)), (ssize_t)sizeof(got));
	cr_assert_arr_eq(got + AGENT_HDR_SIZE, "abcd", 4);

	/* A socket that takes only part: 1 while bytes remain, then resumes
	 * where it stopped. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	o = (struct agent_outbuf){.buf = big, .cap = sizeof(big)};
	memset(big + AGENT_HDR_SIZE, 'q', AGENT_DATA_MAX);
	cr_assert_eq(agent_out_frame(&o, AGENT_STDERR, big + AGENT_HDR_SIZE, AGENT_DATA_MAX), 0);
	cr_assert_eq(agent_out_flush(&o, sv[0]), 1);
	cr_assert_gt(o.off, 0);
	size_t total = 0;
	static uint8_t sink[sizeof(big)];
	while (total < sizeof(big)) {
		ssize_t n = read(sv[1], sink + total, sizeof(sink) - total);

		if (n < 0) {
			cr_assert_eq(errno, EAGAIN);
			cr_assert_geq(agent_out_flush(&o, sv[0]), 0);
			continue;
		}
		total += (size_t)n;
	}
	cr_assert_eq(agent_out_flush(&o, sv[0]), 0);
	cr_assert_eq(sink[0], AGENT_STDERR);
	cr_assert_eq(sink[sizeof(sink) - 1], 'q');

	/* A peer gone: -EPIPE, and no SIGPIPE. */
	close(sv[1]);
	cr_assert_eq(agent_out_frame(&o, AGENT_STDOUT, "x", 1), 0);
	cr_assert_eq(agent_out_flush(&o, sv[0]), -EPIPE);
	close(sv[0]);
}

/* ---- --user and the copies' frames ---- */

Test(agent_request, user_round_trip_and_old_layout_unchanged)
{
	char *argv[] = {"id"};
	struct agent_request in = {.flags = AGENT_REQ_USER,
				   .argc = 1,
				   .argv = argv,
				   .uid = 1000,
				   .gid = AGENT_GID_DEFAULT,
				   .cwd = "/"};
	struct agent_request out;
	char err[256];
	size_t len = encode(&in);

	/* 24 fixed bytes, then "id\0/\0". */
	cr_assert_eq(len, 24 + 3 + 2);
	cr_assert_eq(frame[AGENT_HDR_SIZE + 16], 0xe8); /* 1000, little-endian */
	cr_assert_eq(frame[AGENT_HDR_SIZE + 17], 0x03);
	cr_assert_str_eq((char *)frame + AGENT_HDR_SIZE + 24, "id");
	cr_assert_eq(agent_request_decode(frame + AGENT_HDR_SIZE, len, &out, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(out.uid, 1000);
	cr_assert_eq(out.gid, AGENT_GID_DEFAULT);
	cr_assert_str_eq(out.argv[0], "id");
	agent_request_free(&out);
	/* Without the flag: the old 16-byte layout, what agentc.c sends. */
	in.flags = 0;
	cr_assert_eq(encode(&in), 16 + 3 + 2);
	cr_assert_str_eq((char *)frame + AGENT_HDR_SIZE + 16, "id");
	/* uid 2^32-1 is "unchanged" to setuid: refused. */
	in.flags = AGENT_REQ_USER;
	in.uid = UINT32_MAX;
	cr_assert_eq(agent_request_encode(&in, frame, sizeof(frame), err, sizeof(err)), -EINVAL);
	/* The flag with too short a payload. */
	uint8_t p[20] = {0};
	p[4] = AGENT_REQ_USER;
	p[8] = 1;
	cr_assert_eq(agent_request_decode(p, sizeof(p), &out, err, sizeof(err)), -EINVAL);
}

Test(agent_copy, round_trip_and_header_limits)
{
	uint8_t b[AGENT_HDR_SIZE + AGENT_COPY_USER_FIXED + AGENT_PATH_MAX];
	struct agent_frame f;
	struct agent_copy c;
	char err[256];
	long n =
	    agent_copy_encode(b, sizeof(b), AGENT_COPY_IN,
			      &(struct agent_copy){.flags = AGENT_COPY_CONTENTS, .path = "/tmp/w/"},
			      err, sizeof(err));

	cr_assert_eq(n, AGENT_HDR_SIZE + 4 + 8, "%s", err);
	cr_assert_eq(agent_hdr_get(b, &f), 0);
	cr_assert_eq(f.type, AGENT_COPY_IN);
	cr_assert_eq(
	    agent_copy_decode(AGENT_COPY_IN, b + AGENT_HDR_SIZE, f.len, &c, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(c.flags, AGENT_COPY_CONTENTS);
	cr_assert_str_eq(c.path, "/tmp/w/");
	n = agent_copy_encode(b, sizeof(b), AGENT_COPY_OUT, &(struct agent_copy){.path = "/out"},
			      err, sizeof(err));
	cr_assert_gt(n, 0);
	cr_assert_eq(agent_hdr_get(b, &f), 0);
	cr_assert_eq(f.type, AGENT_COPY_OUT);
	/* With the run's user, either way: uid and gid after the flags. */
	for (uint8_t t = AGENT_COPY_IN; t <= AGENT_COPY_OUT; t++) {
		n = agent_copy_encode(b, sizeof(b), t,
				      &(struct agent_copy){.flags = AGENT_COPY_USER,
							   .uid = 1000,
							   .gid = AGENT_GID_DEFAULT,
							   .path = "/w"},
				      err, sizeof(err));
		cr_assert_eq(n, AGENT_HDR_SIZE + AGENT_COPY_USER_FIXED + 3, "%s", err);
		cr_assert_eq(agent_hdr_get(b, &f), 0);
		cr_assert_eq(agent_copy_decode(t, b + AGENT_HDR_SIZE, f.len, &c, err, sizeof(err)),
			     0, "%s", err);
		cr_assert_eq(c.flags, AGENT_COPY_USER);
		cr_assert_eq(c.uid, 1000);
		cr_assert_eq(c.gid, AGENT_GID_DEFAULT);
		cr_assert_str_eq(c.path, "/w");
	}
	/* TAR up to AGENT_DATA_MAX, TAR_END empty, copies within their cap. */
	agent_hdr_put(b, AGENT_TAR, AGENT_DATA_MAX);
	cr_assert_eq(agent_hdr_get(b, &f), 0);
	agent_hdr_put(b, AGENT_TAR, AGENT_DATA_MAX + 1);
	cr_assert_eq(agent_hdr_get(b, &f), -EMSGSIZE);
	agent_hdr_put(b, AGENT_TAR_END, 0);
	cr_assert_eq(agent_hdr_get(b, &f), 0);
	agent_hdr_put(b, AGENT_TAR_END, 1);
	cr_assert_eq(agent_hdr_get(b, &f), -EMSGSIZE);
	agent_hdr_put(b, AGENT_COPY_IN, AGENT_COPY_USER_FIXED + AGENT_PATH_MAX + 1);
	cr_assert_eq(agent_hdr_get(b, &f), -EMSGSIZE);
	agent_hdr_put(b, AGENT_COPY_OUT, AGENT_COPY_FIXED + 1);
	cr_assert_eq(agent_hdr_get(b, &f), -EPROTO);
}

/* A copy payload from its parts: flags, with AGENT_COPY_USER uid and gid
 * (uid's bytes all u, gid 0), then len bytes of s. */
static size_t copy_payload(uint8_t *p, uint32_t flags, uint8_t u, const char *s, size_t len)
{
	size_t fixed = flags & AGENT_COPY_USER ? AGENT_COPY_USER_FIXED : AGENT_COPY_FIXED;

	memset(p, 0, fixed);
	p[0] = (uint8_t)flags;
	if (flags & AGENT_COPY_USER)
		memset(p + 4, u, 4);
	memcpy(p + fixed, s, len);
	return fixed + len;
}

Test(agent_copy, malformed)
{
	static uint8_t p[AGENT_COPY_USER_FIXED + AGENT_PATH_MAX + 16];
	static char big[AGENT_PATH_MAX + 8];
	struct agent_copy c;
	char err[256];
	struct {
		uint8_t type;
		uint32_t flags;
		uint8_t uid; /* each of its bytes */
		const char *s;
		size_t len;
		const char *needle;
	} bad[] = {
	    {AGENT_COPY_IN, 4, 0, "/a", 3, "unknown copy flags"},
	    {AGENT_COPY_OUT, AGENT_COPY_CONTENTS, 0, "/a", 3, "unknown copy flags"},
	    {AGENT_COPY_IN, 0, 0, "/a", 2, "not one NUL-terminated string"},
	    {AGENT_COPY_IN, 0, 0, "/a\0b", 5, "not one NUL-terminated string"},
	    {AGENT_COPY_IN, 0, 0, "a/b", 4, "not absolute"},
	    {AGENT_COPY_IN, 0, 0, "/a/../etc", 10, "'..' component"},
	    {AGENT_COPY_IN, 0, 0, "/a/./b", 7, "'..' component"},
	    {AGENT_COPY_OUT, 0, 0, "/..", 4, "'..' component"},
	    {AGENT_REQUEST, 0, 0, "/a", 3, "not a copy"},
	    /* (uid_t)-1 is "unchanged" to setuid. */
	    {AGENT_COPY_OUT, AGENT_COPY_USER, 0xff, "/a", 3, "not a user"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = copy_payload(p, bad[i].flags, bad[i].uid, bad[i].s, bad[i].len);

		cr_assert_eq(agent_copy_decode(bad[i].type, p, n, &c, err, sizeof(err)), -EINVAL,
			     "case %zu taken", i);
		cr_assert(strstr(err, bad[i].needle), "case %zu: '%s' lacks '%s'", i, err,
			  bad[i].needle);
		cr_assert_null(c.path);
	}
	/* The user's flag, cut after 7 bytes: no room for its 8 and a path. */
	copy_payload(p, AGENT_COPY_USER, 0, "/a", 3);
	cr_assert_eq(
	    agent_copy_decode(AGENT_COPY_IN, p, AGENT_COPY_FIXED + 3, &c, err, sizeof(err)),
	    -EINVAL);
	cr_assert(strstr(err, "copy request of"), "%s", err);
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	cr_assert_eq(agent_copy_encode(p, sizeof(p), AGENT_COPY_IN,
				       &(struct agent_copy){.path = big}, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "too long"), "%s", err);
	cr_assert(agent_path_has_dots("/a/.."));
	cr_assert(!agent_path_has_dots("/a/..b/.c/"));
}
