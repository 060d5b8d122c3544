/* `flint run --copy-in HOST:GUEST` and `--copy-out GUEST:HOST`: a helper
 * process that moves file trees between the host and the guest agent as
 * tar streams (rootfs/agent/tarcopy.h: the stream and where it lands).
 *
 * Why a process: writing the guest's tar stream to the host's disk (and
 * walking a host tree) takes file system calls that no thread of flint may
 * make once its seccomp filter is on, and the stream comes from the guest:
 * libarchive parses it away from the VMM's memory. The helper is forked by
 * copy_start before flint starts any thread; it opens a connection of its
 * own to the agent for each copy (the vsock device's socket, "CONNECT 52",
 * a COPY_IN or COPY_OUT session) and does what the run thread asks over a
 * socket pair: one byte for "the copy-ins" or "the copy-outs", one byte
 * back, the number of copies that failed (each failure is written to
 * err_fd as it happens, naming the option). The copy-ins stop at the first
 * failure; every copy-out is tried. With `ahead`, the copy-ins' tar
 * streams are made from the helper's start, while the guest boots, and
 * wait in memory (spool.h: up to 8 MiB, the rest made as it is sent) until
 * asked for. The helper ends when the socket pair closes (copy_stop, or
 * flint's end). */
#ifndef FLINT_COPY_H
#define FLINT_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

/* One --copy-in or --copy-out: src and dst as the user gave them (the
 * guest's path absolute), but a source "DIR/." is src "DIR" with
 * contents. */
struct copy_item {
	const char *src, *dst;
	bool contents; /* the source's contents, not the source, into dst */
	/* The run's --user (gid: AGENT_GID_DEFAULT for the user's own): a
	 * copy-in's files become the user's, a copy-out reads as the user
	 * (rootfs/agent/proto.h, AGENT_COPY_USER). */
	bool user;
	uint32_t uid, gid;
};

struct copier;

/* The guest is not trusted to end its side of a copy, nor to send only
 * what it holds: how long each phase of copies may take, and how much file
 * data the copy-outs may write to the host. */
struct copy_bounds {
	/* All the copy-ins together, and then all the copy-outs together
	 * (--copy-timeout), from the request: past it the copy in flight is
	 * cut off and fails, and those not begun fail untried, each naming
	 * the limit. 0: COPY_TIMEOUT_S_DEFAULT. */
	unsigned timeout_ms;
	/* The bytes of file data all the copy-outs of the run together may
	 * extract (--copy-out-limit): the one that would pass it fails,
	 * naming it, and what was extracted stays. 0:
	 * COPY_OUT_LIMIT_DEFAULT. */
	uint64_t out_limit;
};

/* Ten minutes: a CI job's workspace and results move in far less, and a
 * guest that stalls or streams without end holds the run no longer. */
#define COPY_TIMEOUT_S_DEFAULT 600
/* A fixed 4 GiB rather than what the guest could hold (its memory and its
 * disks): that bounds nothing a hostile agent sends (it can make up an
 * endless stream whatever it holds), would take the sizes of the image,
 * the scratch disk and the drives to copy.c, and changes with them; a
 * fixed default is one a user can know and raise. */
#define COPY_OUT_LIMIT_DEFAULT (4ULL << 30)

/* Check the copy-ins' host sources are there (a message on err_fd naming
 * the first that is not), then fork the helper, which reaches the agent
 * through the vsock device's socket uds. The helper has its own copy of
 * the arrays and strings (a fork's). ahead: start reading the copy-ins now
 * (not where they must be read when asked for, as after a wait for a go
 * byte). b: the bounds, NULL for the defaults. Call before any thread
 * starts. Returns 0 or -errno. */
int copy_start(struct copier **out, const struct copy_item *in, unsigned nin,
	       const struct copy_item *outs, unsigned nout, const char *uds, int err_fd, bool ahead,
	       const struct copy_bounds *b) WARN_UNUSED;

/* The room copy_session's message needs. */
#define COPY_MSG_LEN 512

/* One copy over a connection to the agent that the caller has opened
 * (sock, blocking; left open): a COPY_IN session sending the tree at
 * it->src (it->contents: DIR/.), or a COPY_OUT session extracting the
 * guest's it->src at it->dst, by tarcopy.h's rules. The helper uses it
 * for each copy; a program that reaches the agent another way (AF_VSOCK
 * through a VMM's vhost-vsock, bench/run/runbench.c) does too. Returns 0,
 * or -1 with the reason in msg (COPY_MSG_LEN bytes). */
int copy_session(int sock, bool out, const struct copy_item *it, char *msg) WARN_UNUSED;

/* How long the helper lets a copy's connection go silent: the guest is
 * not trusted to keep a copy moving. No byte either way for this long
 * fails the copy, naming the limit, sooner than copy_bounds' timeout
 * would. */
#define COPY_IDLE_MS 60000

/* Put an idle limit of ms on sock's reads and writes (SO_RCVTIMEO and
 * SO_SNDTIMEO): copy_session then fails a copy whose connection is silent
 * that long, saying so. 0 or -errno. */
int copy_set_idle(int sock, unsigned ms) WARN_UNUSED;

/* How many copy-ins (out false) or copy-outs there are. 0 for NULL. */
unsigned copy_count(const struct copier *c, bool out);

/* The socket to poll for copy_result's answer. */
int copy_fd(const struct copier *c);

/* Ask the helper for the copy-ins or the copy-outs. 0 or -errno. */
int copy_request(struct copier *c, bool out) WARN_UNUSED;

/* Its answer, once copy_fd is readable: the number of copies that failed,
 * -EAGAIN when not there yet, or -EPIPE when the helper is gone. */
int copy_result(struct copier *c) WARN_UNUSED;

/* Close the socket pair (the helper then ends, at once if idle) and free.
 * NULL ok. */
void copy_stop(struct copier *c);

#endif
