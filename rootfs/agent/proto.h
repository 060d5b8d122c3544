/* The guest agent's wire format, shared by flint (runner/cmd/run.c) and
 * the agent (rootfs/agent/agent.c); described in rootfs/README.md.
 *
 * A connection carries one command, or one copy. Every message is a frame:
 * an 8-byte header (type, flags 0, protocol version, payload length;
 * little-endian) and the payload. For a command the host sends REQUEST
 * first, then STDIN data and one STDIN_EOF if the request asked for stdin;
 * the agent answers with STDOUT and STDERR data and ends the exchange with
 * one EXIT or ERROR frame. A copy into the guest (flint run --copy-in) is
 * COPY_IN, then the tar stream as TAR frames and one TAR_END; the agent
 * answers EXIT (exited, 0) once all of it is in place, or ERROR. A copy out
 * of the guest (--copy-out) is COPY_OUT; the agent answers with TAR frames
 * and one TAR_END, or ERROR (also in the middle of the stream). What the
 * tar streams hold, and the rules for where they land: tarcopy.h.
 *
 * Both ends trust nothing they receive: lengths are capped per type before
 * anything is read, and a request is decoded with every count, string and
 * field checked (agent_request_decode). Nothing here allocates except
 * agent_request_decode's pointer array. */
#ifndef FLINT_AGENT_PROTO_H
#define FLINT_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The vsock port the agent listens on, and connects to on CID 2 when it
 * starts (so that `flint run` learns it is ready). */
#define AGENT_VSOCK_PORT 52

#define AGENT_PROTO_VERSION 1
#define AGENT_HDR_SIZE	    8

/* Payload limits, checked on the header before the payload is read. */
#define AGENT_REQUEST_MAX (1u << 20)  /* whole request payload */
#define AGENT_DATA_MAX	  (64u << 10) /* one STDIN, STDOUT or STDERR frame */
#define AGENT_MSG_MAX	  256	      /* EXIT and ERROR messages */
#define AGENT_ARGC_MAX	  4096
#define AGENT_ENVC_MAX	  4096
#define AGENT_STR_MAX	  (128u << 10) /* one string, NUL included (Linux's MAX_ARG_STRLEN) */
#define AGENT_PATH_MAX	  4096	       /* a COPY_IN or COPY_OUT path, NUL included */
/* The fixed part of a request (24 bytes with AGENT_REQ_USER), of an EXIT
 * payload and of a COPY_IN or COPY_OUT payload. */
#define AGENT_REQ_FIXED	      16
#define AGENT_REQ_USER_FIXED  24
#define AGENT_EXIT_FIXED      8
#define AGENT_COPY_FIXED      4
#define AGENT_COPY_USER_FIXED 12

enum agent_type {
	/* host -> agent */
	AGENT_REQUEST = 1,   /* the command: see agent_request_encode */
	AGENT_STDIN = 2,     /* bytes for the command's stdin */
	AGENT_STDIN_EOF = 3, /* no more stdin: the agent closes the pipe; empty */
	AGENT_COPY_IN = 4,   /* a tar stream into a guest path: agent_copy_encode */
	AGENT_COPY_OUT = 5,  /* a tar stream of a guest path, please */
	/* either way, in a copy's session */
	AGENT_TAR = 6,	   /* tar bytes */
	AGENT_TAR_END = 7, /* the end of the tar bytes; empty */
	/* agent -> host */
	AGENT_STDOUT = 16,
	AGENT_STDERR = 17,
	AGENT_EXIT = 18,  /* u32 kind, i32 value, message bytes; last frame */
	AGENT_ERROR = 19, /* message bytes: the request was refused; last frame */
};

/* AGENT_EXIT kinds and what value holds. */
enum agent_exit_kind {
	AGENT_EXITED = 0,      /* exit code 0-255 */
	AGENT_SIGNALED = 1,    /* signal number 1-64 */
	AGENT_TIMED_OUT = 2,   /* killed at the request's timeout; value 0 */
	AGENT_NOT_STARTED = 3, /* errno; the message says what failed */
};

/* Request flags. */
#define AGENT_REQ_STDIN 1u /* STDIN frames follow; else stdin is /dev/null */
#define AGENT_REQ_USER	2u /* run as uid, gid (the fixed part is 24 bytes) */
#define AGENT_REQ_FLAGS (AGENT_REQ_STDIN | AGENT_REQ_USER)
/* AGENT_REQ_USER's gid: the uid's group in the guest's /etc/passwd, or
 * the uid's own number when it has no entry. */
#define AGENT_GID_DEFAULT 0xffffffffu

/* COPY_IN and COPY_OUT flags. */
#define AGENT_COPY_CONTENTS 1u /* COPY_IN: the source was DIR/.: its contents go into the path */
/* The run's --user (uid, gid: the fixed part is AGENT_COPY_USER_FIXED
 * bytes): a COPY_IN's entries and the directories it makes become the
 * user's, without set-id bits (made by the user itself once a command has
 * run), a COPY_OUT reads as the user. gid as AGENT_REQ_USER's. */
#define AGENT_COPY_USER	 2u
#define AGENT_COPY_FLAGS (AGENT_COPY_CONTENTS | AGENT_COPY_USER)

/* A decoded frame header. */
struct agent_frame {
	uint8_t type;
	uint32_t len;
};

/* A command. Encoded as u32 timeout_ms, u32 flags, u32 argc, u32 envc,
 * with AGENT_REQ_USER u32 uid and u32 gid, then argc argument strings, envc
 * "NAME=value" strings and the working directory, each NUL-terminated,
 * packed, nothing after the last. An agent older than AGENT_REQ_USER
 * refuses the flag, so a request without it is what it always was. */
struct agent_request {
	uint32_t timeout_ms; /* 0: no limit */
	uint32_t flags;	     /* AGENT_REQ_* */
	uint32_t argc, envc;
	uint32_t uid, gid; /* AGENT_REQ_USER: uid < 2^32-1; gid or AGENT_GID_DEFAULT */
	char *const *argv; /* argc strings, then NULL */
	char *const *envp; /* envc strings, then NULL */
	const char *cwd;   /* absolute, or "" for "/" */
};

/* A COPY_IN or COPY_OUT. Encoded as u32 flags, with AGENT_COPY_USER u32
 * uid and u32 gid, then the guest path, NUL-terminated, nothing after
 * it. */
struct agent_copy {
	uint32_t flags;	   /* AGENT_COPY_* */
	uint32_t uid, gid; /* AGENT_COPY_USER: as agent_request's */
	const char *path;
};

/* An EXIT frame's contents. */
struct agent_exit {
	uint32_t kind; /* enum agent_exit_kind */
	int32_t value;
	char msg[AGENT_MSG_MAX + 1]; /* NUL-terminated, printable ASCII only */
};

/* Write a header for a frame of type and len payload bytes into hdr. */
void agent_hdr_put(uint8_t *hdr, uint8_t type, uint32_t len);

/* Decode and check a header: version, flags, known type, length within the
 * type's limit. 0, -EPROTO (bad version, flags or type) or -EMSGSIZE. */
int agent_hdr_get(const uint8_t *hdr, struct agent_frame *f);

/* Build a whole REQUEST frame (header included) from req (argv, envp: the
 * counted strings; NULL terminators not needed) into buf of cap bytes.
 * Returns the frame's length, -EINVAL for a request the agent would refuse
 * (msg in err) or -E2BIG when it does not fit cap or AGENT_REQUEST_MAX. */
long agent_request_encode(const struct agent_request *req, uint8_t *buf, size_t cap, char *err,
			  size_t errlen);

/* Decode a REQUEST payload with every check. On success req->argv, envp
 * and cwd point into payload (which must outlive req and stay put) and
 * req->argv is a malloc'd array, released with agent_request_free. Returns
 * 0, -EINVAL with a message in err, or -ENOMEM. */
int agent_request_decode(const uint8_t *payload, size_t len, struct agent_request *req, char *err,
			 size_t errlen);

void agent_request_free(struct agent_request *req);

/* Build a whole COPY_IN or COPY_OUT frame (header included) of c into buf
 * of cap bytes. Returns the frame's length, or -EINVAL (msg in err) for
 * what agent_copy_decode would refuse, -E2BIG when it does not fit cap. */
long agent_copy_encode(uint8_t *buf, size_t cap, uint8_t type, const struct agent_copy *c,
		       char *err, size_t errlen);

/* Decode a COPY_IN or COPY_OUT payload into c: flags known for the type
 * (AGENT_COPY_CONTENTS only on COPY_IN), a uid below 2^32-1, a path that
 * is absolute, under AGENT_PATH_MAX bytes, with no "." or ".." component
 * (a trailing "/" allowed). c->path points into payload. 0 or -EINVAL
 * with err. */
int agent_copy_decode(uint8_t type, const uint8_t *payload, size_t len, struct agent_copy *c,
		      char *err, size_t errlen);

/* Whether path (absolute) has a "." or ".." component. */
bool agent_path_has_dots(const char *path);

/* Build an EXIT frame into buf (AGENT_HDR_SIZE + AGENT_EXIT_FIXED +
 * AGENT_MSG_MAX bytes); msg may be NULL, and is cut at AGENT_MSG_MAX.
 * Returns the frame's length. */
size_t agent_exit_encode(uint8_t *buf, uint32_t kind, int32_t value, const char *msg);

/* Decode an EXIT payload: kind known, value in range for it, message made
 * printable. 0 or -EINVAL. */
int agent_exit_decode(const uint8_t *payload, size_t len, struct agent_exit *e);

/* Copy a message payload (ERROR, or an EXIT's text) into out as a
 * NUL-terminated string of printable ASCII ('?' for anything else),
 * truncated to outlen - 1. */
void agent_msg_copy(char *out, size_t outlen, const uint8_t *p, size_t len);

/* Reads frames from a stream, blocking or not, a piece at a time: a frame
 * split across reads (or a non-blocking socket running dry) resumes where
 * it stopped. Never reads past the current frame. */
struct agent_reader {
	uint8_t hdr[AGENT_HDR_SIZE];
	uint8_t *buf; /* payload of the current frame; the caller's */
	size_t cap;
	size_t got; /* bytes of the current frame (header included) so far */
	struct agent_frame f;
};

void agent_reader_init(struct agent_reader *r, uint8_t *buf, size_t cap);

/* Read until one frame is complete. Returns 1 with the frame in r->f and
 * its payload in r->buf (valid until the next call), 0 on end of stream at
 * a frame boundary, -EAGAIN when a non-blocking fd has nothing more yet,
 * -ECONNRESET on end of stream inside a frame, -EPROTO or -EMSGSIZE for a
 * bad header (also when the payload exceeds cap), or read's -errno. */
int agent_read_frame(struct agent_reader *r, int fd);

/* Frames a host-side reader (flint run's relay, flint serve's agentc)
 * takes in one go before it looks at its deadline, its stop and its client
 * again: frames that give it nothing to pass on (empty ones, stderr, or
 * for an output whose reader is gone), sent faster than it reads them,
 * would otherwise keep it reading for ever. */
#define AGENT_READ_BATCH 64

/* Frames waiting to go out on a socket: built in place, sent as the socket
 * takes them. */
struct agent_outbuf {
	uint8_t *buf; /* the caller's */
	size_t cap;
	size_t len, off; /* bytes queued, bytes already sent */
};

/* Queue a frame. 0, or -ENOBUFS when it does not fit the space left. */
int agent_out_frame(struct agent_outbuf *o, uint8_t type, const void *payload, size_t len);

/* Send what the socket takes (send with MSG_NOSIGNAL, EINTR retried).
 * Returns 1 while bytes remain (the socket is full), 0 when all is sent
 * (the buffer is then empty again), or -errno (-EPIPE: the peer is gone). */
int agent_out_flush(struct agent_outbuf *o, int fd);

#endif
