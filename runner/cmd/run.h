/* The host side of `flint run`: waits for the guest agent to connect (a
 * guest-initiated vsock connection to CID 2, port AGENT_PORT, which the
 * vsock muxer relays to the Unix socket `listen_path`), sends it the
 * command, relays stdin to it and its stdout and stderr back, and reports
 * the command's status. Runs on a thread of its own; knows nothing of the
 * VM but the finish callback.
 *
 * Exit statuses given to finish(): the command's status, 128+N when signal
 * N killed it, RUN_EXIT_TIMEOUT when --timeout expired (the agent killed
 * it, or flint gave up 10 s later), 127 when it could not be started,
 * RUN_EXIT_NO_AGENT when the agent did not connect within the boot timeout,
 * the connection broke before a status arrived, or the agent refused the
 * request or broke the protocol. Wire format: rootfs/agent/proto.h. */
#ifndef FLINT_RUN_H
#define FLINT_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

#define RUN_EXIT_NO_AGENT 123
#define RUN_EXIT_TIMEOUT 124
/* flint's own exit statuses, beside the guest command's 0-255 (main.c
 * maps how the VM ended to them). */
#define EXIT_GUEST_CRASH 122 /* guest kernel panic, triple fault, KVM error */
#define EXIT_FLINT_ERROR 125 /* bad options, unreadable files, host KVM trouble */

struct run;

struct run_params {
	const char *listen_path;   /* Unix socket to listen on: "<uds>_<AGENT_PORT>" */
	char *const *argv;	   /* command and arguments, argc >= 1; copied */
	int argc;
	unsigned timeout_s;	   /* command time limit, 0 for none */
	unsigned boot_timeout_s;   /* how long to wait for the agent, 0 for ever */
	int in_fd, out_fd, err_fd; /* relayed: normally 0, 1, 2; -1: none */
	/* Called once, from the run thread, when the command has finished or
	 * failed; msg is NULL or a one-line reason for the user. */
	void (*finish)(void *ctx, int status, const char *msg);
	void *ctx;
};

/* Microseconds since launch (util.h us_since_launch) at each milestone, 0
 * when not reached. */
struct run_timings {
	uint64_t agent_ready_us; /* the agent's connection accepted */
	uint64_t cmd_start_us;	 /* request sent */
	uint64_t cmd_end_us;	 /* status received */
};

/* Bind and listen on listen_path (before the VM boots, so the agent finds
 * it), then start the thread. Returns 0 or -errno, logged. */
int run_start(struct run **out, const struct run_params *p) WARN_UNUSED;

/* Stop the thread if still running (the VM has ended: finish() is then not
 * called), join it, unlink listen_path, free. NULL ok. */
void run_stop(struct run *r);

/* True once finish() has been called. */
bool run_finished(const struct run *r);

void run_get_timings(const struct run *r, struct run_timings *out);

#endif
