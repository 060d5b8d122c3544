/* libFuzzer harness for rootfs/agent/proto.c: the fuzzer plays a hostile
 * peer of the guest agent or of flint run. The input is one frame as it
 * would arrive on the socket; it goes through the frame reader (from a
 * pipe) and then the decoder for its type. A request the decoder accepts
 * must be internally consistent and encode back to the very same bytes
 * (the encoding is canonical); an accepted EXIT must hold a value in range
 * and a printable message. Every payload is its own malloc of exactly its
 * length, so ASan sees any over-read. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/proto.h"
#include "fuzz.h"

static void check_request(const uint8_t *p, size_t len)
{
	static uint8_t again[AGENT_HDR_SIZE + AGENT_REQUEST_MAX];
	struct agent_request req;
	char err[256];
	long n;

	if (agent_request_decode(p, len, &req, err, sizeof(err)) < 0) {
		CHECK(memchr(err, '\0', sizeof(err)) && err[0]);
		return;
	}
	CHECK(req.argc >= 1 && req.argv[0][0] && !req.argv[req.argc] && !req.envp[req.envc]);
	for (uint32_t i = 0; i < req.envc; i++)
		CHECK(strchr(req.envp[i], '=') > req.envp[i]);
	CHECK(!req.cwd[0] || req.cwd[0] == '/');
	n = agent_request_encode(&req, again, sizeof(again), err, sizeof(err));
	CHECK(n == (long)(AGENT_HDR_SIZE + len));
	CHECK(!memcmp(again + AGENT_HDR_SIZE, p, len));
	agent_request_free(&req);
}

static void check_exit(const uint8_t *p, size_t len)
{
	struct agent_exit e;

	if (agent_exit_decode(p, len, &e) < 0)
		return;
	CHECK(e.kind <= AGENT_NOT_STARTED);
	if (e.kind == AGENT_EXITED)
		CHECK(e.value >= 0 && e.value <= 255);
	if (e.kind == AGENT_SIGNALED)
		CHECK(e.value >= 1 && e.value <= 64);
	for (const char *c = e.msg; *c; c++)
		CHECK(*c >= 0x20 && *c < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t payload[AGENT_REQUEST_MAX];
	struct agent_reader rd;
	int fds[2], ret;

	/* A pipe holds 64 KiB: enough for every frame but the biggest
	 * requests, which the fuzzer rarely builds anyway. */
	if (size > 65536 || pipe(fds) < 0)
		return 0;
	if (write(fds[1], data, size) != (ssize_t)size) {
		close(fds[0]);
		close(fds[1]);
		return 0;
	}
	close(fds[1]);
	agent_reader_init(&rd, payload, AGENT_REQUEST_MAX);
	ret = agent_read_frame(&rd, fds[0]);
	close(fds[0]);
	CHECK(ret == 1 || ret == 0 || ret == -ECONNRESET || ret == -EPROTO || ret == -EMSGSIZE);
	if (ret == 1) {
		/* Exactly the payload's length, so over-reads show. */
		uint8_t *p = malloc(rd.f.len ? rd.f.len : 1);

		memcpy(p, payload, rd.f.len);
		if (rd.f.type == AGENT_REQUEST)
			check_request(p, rd.f.len);
		else if (rd.f.type == AGENT_EXIT)
			check_exit(p, rd.f.len);
		free(p);
	}
	return 0;
}
