/* agentc: flint serve's own client of a running VM's guest agent, so that
 * a request to a VM that runs on (reuse, or a per-request VM reset in
 * place) costs no process: the server connects to the VM's vsock socket
 * (Firecracker's hybrid vsock: "CONNECT 52\n", "OK <port>\n"), sends the
 * command in one REQUEST frame and the request body as STDIN frames, and
 * takes STDOUT, STDERR and the final EXIT or ERROR frame
 * (rootfs/agent/proto.h), as `flint run --attach` does in a process of its
 * own.
 *
 * Everything from the guest is untrusted: frames are checked by proto.c,
 * the device's answer line is checked here, stderr is kept up to a cap.
 * One thread drives a session; agentc_kill may come from any thread. The
 * outcome comes as a worker_result (worker.h), the way a worker's does:
 * OK, EXIT (the command's status, 127 when it could not start), SIGNAL,
 * TIMEOUT (the agent killed it at timeout_s, or the server's deadline
 * passed), LOST (the agent not reached within connect_ms, it refused the
 * request, or the connection broke first), KILLED (agentc_kill),
 * CLIENT_GONE (agentc_watch_client). */
#ifndef FLINT_SERVE_AGENTC_H
#define FLINT_SERVE_AGENTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "serve/worker.h"

/* Past timeout_s, how long the server waits for the agent's own kill to
 * be reported before it gives up on the guest (flint run's margin). */
#define AGENTC_MARGIN_S 10

struct agentc_params {
	const char *uds;     /* the VM's vsock socket */
	char *const *argv;   /* the command, NULL-terminated */
	char *const *env;    /* "NAME=value", NULL-terminated; NULL for none */
	const char *workdir; /* NULL: "/" */
	unsigned timeout_s;  /* 0: none */
	unsigned connect_ms; /* the agent not answering this long: LOST */
	size_t stderr_cap;   /* 0: WORKER_STDERR_CAP */
	/* NULL, or opens uds with O_PATH where the server must follow no
	 * name of somebody else's (a jailed VM's socket, in the tenant's
	 * tree): the connection goes to the socket that descriptor holds.
	 * An fd, or -errno (-ENOENT: not there yet, tried again). */
	int (*open_uds)(void *ctx, const char *uds);
	void *open_ctx;
	/* NULL, or whether the VM's flint has ended: trying to reach its
	 * agent stops then, rather than at connect_ms. */
	bool (*vm_gone)(void *ctx);
	void *gone_ctx;
};

struct agentc;

/* Reach the agent and send the command. Always gives a session (NULL
 * only when out of memory: -ENOMEM); one that could not reach the agent
 * or encode the request reads as ended at once, with LOST and the reason
 * in its stderr. */
int agentc_start(struct agentc **out, const struct agentc_params *p) WARN_UNUSED;

/* As worker_read: the command's stdout into buf (> 0), 0 at the end
 * (the EXIT frame, or the session over), -ECONNABORTED when the client
 * watched hung up, or in()'s error or another -errno (the session is
 * then over). The request body comes from in() (NULL: none), as STDIN
 * frames, and its end as STDIN_EOF. */
ssize_t agentc_read(struct agentc *a, worker_in_fn in, void *ctx, void *buf,
		    size_t len) WARN_UNUSED;

/* The HTTP client's connection (fd, -1 for none, the default), watched
 * by agentc_read while it waits: when the client hangs up (not bytes to
 * read: a next request), the session ends as WORKER_CLIENT_GONE, the
 * connection to the agent shut down (the agent kills the command), and
 * agentc_read returns -ECONNABORTED. */
void agentc_watch_client(struct agentc *a, int fd);

/* How it ended (call after agentc_read gave 0 or an error). res->err
 * points into a, valid until agentc_destroy. res->unsent: no byte of
 * the request was written to the agent (it was not reached, or was lost
 * before), so the command cannot have run. */
void agentc_result(struct agentc *a, struct worker_result *res);

/* The session's own last reason, such as why the agent was not reached
 * or the connection was lost ("" if it gave none): what the guest wrote
 * to stderr is not among them. Valid until agentc_destroy. */
const char *agentc_said(const struct agentc *a);

/* Ends the session now, from any thread: the connection is shut down. */
void agentc_kill(struct agentc *a);

/* Closes the connection and frees a. NULL ok. */
void agentc_destroy(struct agentc *a);

#endif
