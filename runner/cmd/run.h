/* The host side of `flint run`: reaches the guest agent, sends it the
 * command, relays stdin to it and its stdout and stderr back, and reports
 * the command's status. Two ways to reach the agent (run_params.mode):
 * wait for the connection the agent makes once at boot (a guest-initiated
 * vsock connection to CID 2, port AGENT_VSOCK_PORT, which the vsock muxer
 * relays to the Unix socket `listen_path`), or open one to the port it
 * listens on through the vsock device's own socket (a restored guest: its
 * boot connection did not survive the snapshot), optionally only once a
 * go byte comes on an fd (a warm VM restored paused: run_params.go). Runs
 * on a thread of its own; knows nothing of the VM but its callbacks.
 *
 * Exit statuses given to finish(): the command's status, 128+N when signal
 * N killed it, RUN_EXIT_TIMEOUT when --timeout expired (the agent killed
 * it, or flint gave up 10 s later), 127 when it could not be started,
 * RUN_EXIT_NO_AGENT when the agent did not connect or answer within the
 * boot timeout, the connection broke before a status arrived, or the agent
 * (or the vsock device's socket) refused the request or broke the
 * protocol. Wire format: rootfs/agent/proto.h. */
#ifndef FLINT_RUN_H
#define FLINT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define RUN_EXIT_NO_AGENT 123
#define RUN_EXIT_TIMEOUT  124
/* flint's own exit statuses, beside the guest command's 0-255 (main.c
 * maps how the VM ended to them). */
#define EXIT_GUEST_CRASH 122 /* guest kernel panic, triple fault, KVM error */
#define EXIT_FLINT_ERROR 125 /* bad options, unreadable files, host KVM trouble */

struct run;

/* How the run thread reaches the agent. */
enum run_mode {
	/* Listen on listen_path before the VM boots and take the agent's own
	 * connection, made once when it starts. */
	RUN_ACCEPT,
	/* Connect to the vsock device's socket uds_path and send "CONNECT
	 * <AGENT_VSOCK_PORT>\n" (Firecracker's hybrid vsock); the agent's
	 * listener answers and the device says "OK <port>\n". A closed
	 * connection before that line (nothing answered in the guest yet, as
	 * while a restored guest's vsock comes back) or a socket nobody
	 * listens on yet is tried again, sooner then later, until the boot
	 * timeout. */
	RUN_CONNECT,
};

/* What run_params.ready returns besides a final status. */
#define RUN_READY_SEND	    (-1) /* send the command on the accepted connection */
#define RUN_READY_RECONNECT (-2) /* close it and reach the agent as RUN_CONNECT does */

/* The agent kills the command at timeout_s; no status this much later
 * means the guest is stuck, and flint gives up on it. */
#define RUN_GUARD_S 10

struct run_params {
	enum run_mode mode;
	const char *listen_path; /* RUN_ACCEPT: "<uds>_<AGENT_VSOCK_PORT>" */
	/* The vsock device's socket: RUN_CONNECT's, and RUN_ACCEPT's when
	 * ready() asks to reconnect. NULL otherwise. Copied. */
	const char *uds_path;
	char *const *argv; /* command and arguments; copied. argc >= 1, or 0
			    * with ready(), which must then end the run */
	int argc;
	/* The command's environment beside the agent's defaults (PATH, HOME,
	 * which an entry of the same name replaces): envc "NAME=value"
	 * strings, copied; NULL and 0 for none. */
	char *const *envp;
	int envc;
	const char *cwd;	   /* its working directory, absolute; NULL: "/" */
	unsigned timeout_s;	   /* command time limit, 0 for none */
	unsigned boot_timeout_s;   /* how long to wait for the agent, 0 for ever */
	int in_fd, out_fd, err_fd; /* relayed: normally 0, 1, 2; -1: none */
	/* Called once, from the run thread, when the command has finished or
	 * failed; msg is NULL or a one-line reason for the user. */
	void (*finish)(void *ctx, int status, const char *msg);
	/* Optional: called from the run thread, before finish(), when the
	 * guest stopped answering: its agent did not come up within
	 * boot_timeout_s, or did not report the command killed within
	 * RUN_GUARD_S of timeout_s. */
	void (*stuck)(void *ctx);
	/* RUN_ACCEPT, optional: called once, from the run thread, when the
	 * agent's connection is accepted, before anything is sent on it
	 * (`flint run --save-snapshot` pauses and saves the VM there). Returns
	 * RUN_READY_SEND, RUN_READY_RECONNECT (a snapshot has reset every
	 * vsock connection), or a status 0-255 to finish with at once, nothing
	 * sent; it may write a reason for finish() into msg (msglen bytes). */
	int (*ready)(void *ctx, char *msg, size_t msglen);
	/* RUN_CONNECT, optional (`flint run --wait-fd`: a VM restored paused,
	 * kept warm until its request comes): before reaching the agent, wait
	 * for one byte on go_fd (the caller's; only that byte is read), then
	 * call go(), which resumes the VM and returns 0, or a status to
	 * finish with at once (a reason in msg). The end of go_fd without a
	 * byte finishes with 0, nothing sent (the warm VM was given up); its
	 * boot and command timeouts count from the byte. */
	int (*go)(void *ctx, char *msg, size_t msglen);
	int go_fd;
	/* Optional (> 0; 0 or -1: none): the moment the status is known, and so
	 * all the command's output written, "status=S ready_ms=R
	 * command_ms=C sent=B command=K\n" goes here (R: from the go byte,
	 * or from launch, to the agent ready; C: the command; -1 when not
	 * reached; B: 1 once the request's sending began, 0 when the command
	 * cannot have run; K: 1 when S is the command's own exit status, or
	 * 128 and its signal, 0 when it is flint run's), before finish(): a caller learns the outcome without
	 * waiting for the VM's teardown. When the VM ends first, run_vm_ended
	 * writes the line instead, with the VM's status. The fd is the
	 * caller's. */
	int status_fd;
	/* --copy-in and --copy-out (copy.h), the caller's; NULL: none. The
	 * copy-ins run once the agent is reached, before the command is
	 * sent: one failing ends the run with EXIT_FLINT_ERROR, nothing run.
	 * The copy-outs run once the agent has said how the command ended
	 * (its status, a signal, the timeout, not started): one failing
	 * makes a status of 0 EXIT_FLINT_ERROR, another status stands. */
	struct copier *copy;
	/* --user: the command runs as uid and gid (AGENT_GID_DEFAULT: the
	 * uid's group in the guest's /etc/passwd, or the uid). */
	bool user;
	uint32_t uid, gid;
	void *ctx; /* for finish, ready and go */
};

/* Microseconds since launch (util.h us_since_launch) at each milestone, 0
 * when not reached. */
struct run_timings {
	uint64_t go_us;		 /* go(): the wait on go_fd ended (byte or end) */
	bool given_up;		 /* go_fd ended without a byte: nothing ran */
	uint64_t agent_ready_us; /* the agent's connection accepted, or its OK */
	uint64_t cmd_start_us;	 /* request sent */
	uint64_t cmd_end_us;	 /* status received */
	/* The copies (run_params.copy), from the request to the helper to
	 * its verdict: begin and end, 0 where none ran. */
	uint64_t copy_in_us[2], copy_out_us[2];
};

/* RUN_ACCEPT: bind and listen on listen_path (before the VM boots, so the
 * agent finds it); then start the thread. Returns 0 or -errno, logged. */
int run_start(struct run **out, const struct run_params *p) WARN_UNUSED;

/* The VM has ended with status (its exit status): stop the thread if still
 * running (finish() is then not called) and join it; if the thread wrote
 * no status line, write status_fd's now, with that status. NULL ok. */
void run_vm_ended(struct run *r, int status);

/* Stop the thread if still running (the VM has ended: finish() is then not
 * called), join it, unlink listen_path (RUN_ACCEPT), free. NULL ok. */
void run_stop(struct run *r);

/* True once finish() has been called. */
bool run_finished(const struct run *r);

void run_get_timings(const struct run *r, struct run_timings *out);

#endif
