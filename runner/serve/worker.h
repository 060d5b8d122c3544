/* worker: the flint child process of one VM, for `flint serve`.
 *
 * A worker is one `flint run` process (optionally behind a launcher such as
 * flint-jail) in a process group of its own, with pipes for its stdin,
 * stdout and stderr, and for a warm worker a go pipe: `flint run --restore
 * STATE --mem-file MEM --wait-fd 3` restores its VM paused and waits for one
 * byte there. An attached worker has no VM of its own: `flint run --attach
 * UDS` runs its command in a VM that runs already (reuse isolation). The server thread that owns a
 * request drives its worker: release it (warm), stream the request body into its stdin and its
 * stdout out to the client (worker_read or worker_pump: one poll loop that also keeps stderr, up to
 * a cap), then collect the outcome (worker_wait), which reaps the process. A wall-clock deadline
 * (timeout_s plus a margin, from the start or the release) kills the whole process group with
 * SIGKILL, as does flint's own exit for anything it left behind, so no process outlives its worker;
 * worker_destroy kills and reaps whatever is left, so a worker whose thread is gone can always be
 * ended.
 *
 * Threads: one thread drives a worker; worker_kill may come from any
 * thread at any time. SIGPIPE: writes to the child's pipes block it on the
 * calling thread and take back the one they raise, so it never reaches the
 * server. The server must not set SIGCHLD to SIG_IGN (the kernel would reap
 * workers itself) and must not reap them with waitpid(-1, ...).
 *
 * Files: every descriptor of a worker is CLOEXEC; the child gets only its
 * stdin, stdout, stderr and go pipe or control socket (fd 3), every other
 * descriptor of the server being closed in it, CLOEXEC or not. */
#ifndef FLINT_SERVE_WORKER_H
#define FLINT_SERVE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

#define WORKER_GO_FD	     3		/* the go pipe's number in the child */
#define WORKER_CONTROL_FD    3		/* WORKER_VM's control socket's (control) */
#define WORKER_STATUS_FD     4		/* the status pipe's (early_status) */
#define WORKER_MARGIN_S	     15		/* deadline past timeout_s (flint's own guard is 10 s) */
#define WORKER_STDERR_CAP    (64 << 10) /* stderr kept by default */
#define WORKER_VM_STDERR_CAP (64 << 10) /* a WORKER_VM's stderr, at most */
#define WORKER_DISCARD_S     10		/* a discarded warm worker's time to stop */

enum worker_kind {
	/* flint run --restore STATE --mem-file MEM [--timeout S] [opts] -- ARGV */
	WORKER_RESTORE,
	/* The same with --wait-fd 3: restored paused until worker_release. */
	WORKER_WARM,
	/* flint run --save-snapshot STATE --save-mem MEM [opts] [-- ARGV]:
	 * registering a function (boot, optional prepare command, save);
	 * with save_after and ARGV, --save-after: ARGV runs first and the VM
	 * is saved only when it exits 0. */
	WORKER_SAVE,
	/* flint run --attach UDS [--timeout S] [opts] -- ARGV: ARGV in the
	 * running VM whose vsock device's socket is UDS; no state or memory
	 * file. */
	WORKER_ATTACH,
	/* flint --restore STATE --mem-file MEM --vsock-override UDS --console
	 * none [opts]: a VM that runs on by itself (no command; reuse
	 * isolation's VM, which WORKER_ATTACH workers reach). Its stdin and
	 * stdout are /dev/null (nobody reads them for its life); its stderr
	 * a memfd that holds up to WORKER_VM_STDERR_CAP bytes (started
	 * again between requests once past half of it: worker_log_rewind),
	 * read into the result when it is reaped (flint's message when the
	 * guest crashed); no deadline. worker_exited says whether it died,
	 * worker_kill and worker_wait end it. With control, it also gets
	 * --control-fd 3: worker_reset takes it back to its snapshot in
	 * place. */
	WORKER_VM,
};

struct worker_params {
	enum worker_kind kind;
	const char *flint; /* flint's path, exec'd as is (no PATH search) */
	/* NULL, or the words before flint's path (a launcher: "flint-jail",
	 * its options, ...; launcher[0] is exec'd), NULL-terminated. */
	char *const *launcher;
	/* The launcher runs flint itself (flint-jail's --exec-file): flint's
	 * path is left out, its arguments follow the launcher's words. */
	bool launcher_runs_flint;
	/* The snapshot's state and memory files; not WORKER_ATTACH's (which
	 * ignores them). */
	const char *state, *mem;
	const char *uds;    /* WORKER_ATTACH, WORKER_VM: the VM's vsock socket */
	unsigned timeout_s; /* flint run --timeout; 0 for none */
	/* The deadline in seconds from the start (a warm worker: from its
	 * release). 0: timeout_s + WORKER_MARGIN_S, or none without a
	 * timeout. */
	unsigned deadline_s;
	/* More flint run options, before "--" (--workset FILE, --timings,
	 * --kernel FILE, ...), NULL-terminated; NULL for none. */
	char *const *opts;
	/* The command, NULL-terminated; NULL or empty for none, which only
	 * WORKER_SAVE may have. */
	char *const *argv;
	/* The command's environment in the guest, "NAME=value" strings
	 * (--env each), NULL-terminated; NULL or empty for none. Its working
	 * directory there (--workdir), NULL for flint run's "/". Both go
	 * after opts, and only with a command: a WORKER_SAVE without one
	 * leaves them out (there is nothing for them to apply to). */
	char *const *env;
	const char *workdir;
	/* WORKER_SAVE with a command: --save-after (save only if it exits
	 * 0). Ignored without a command; -EINVAL with another kind. */
	bool save_after;
	/* RESTORE, WARM, ATTACH: flint run --status-fd 4, so that the
	 * outcome is known the moment the command ends (worker_early),
	 * before flint has torn its VM down and exited. */
	bool early_status;
	size_t stderr_cap; /* stderr bytes kept; 0: WORKER_STDERR_CAP */
	/* WORKER_VM: fd 3 in the child is one end of a socketpair, and flint
	 * gets --control-fd 3 (worker_reset). -EINVAL with another kind. */
	bool control;
	char *const *envp; /* the child's environment; NULL: the server's */
	/* NULL, or called with gone_ctx exactly once when the worker is
	 * over: from worker_destroy once flint is reaped, or from
	 * worker_spawn when it fails (a jail to remove). */
	void (*gone)(void *ctx);
	void *gone_ctx;
};

/* What a request's client and a registration are told of WORKER_CRASH,
 * before flint's own reason (the rig's runner knows these words). */
#define WORKER_CRASH_TEXT "the guest crashed (kernel panic, triple fault or KVM error)"

/* How a worker ended, from flint run's exit status (runner/cmd/run.h). */
enum worker_outcome {
	WORKER_OK,	    /* 0 */
	WORKER_EXIT,	    /* the command's non-zero status: 1-121, 126-128 */
	WORKER_TIMEOUT,	    /* 124 (--timeout), or the deadline killed it */
	WORKER_CRASH,	    /* 122: the guest crashed */
	WORKER_LOST,	    /* 123: no agent, or the connection to it lost */
	WORKER_FLINT_ERROR, /* 125: flint failed (bad snapshot, host trouble) */
	WORKER_SIGNAL,	    /* 128+N: signal N killed the command */
	WORKER_KILLED,	    /* flint itself died of a signal (worker_kill, OOM) */
	WORKER_CLIENT_GONE, /* the HTTP client hung up first: the command was ended */
};

struct worker_result {
	enum worker_outcome outcome;
	/* EXIT: the command's status; SIGNAL: N; KILLED: the signal that
	 * killed flint; otherwise flint's exit status (TIMEOUT at the
	 * deadline: SIGKILL's number). */
	int status;
	int wait_status; /* as waitpid gave it */
	bool deadline;	 /* the deadline passed: the group was killed */
	/* stderr: the first bytes, up to the cap, NUL-terminated; valid
	 * until worker_destroy. err_total counts every byte flint wrote
	 * there; err_truncated when some were not kept. */
	const char *err;
	size_t err_len, err_total;
	bool err_truncated;
	uint64_t run_ns; /* from the start (or release) to flint's exit */
	/* With early_status, from flint run's status line (else -1): the
	 * start (or release) to the guest agent ready, and the command. */
	double ready_ms, command_ms;
	/* Nothing of the request ran in the guest: with early_status,
	 * flint's status line said sent=0; agentc_result: nothing of the
	 * request was written to the agent. */
	bool unsent;
	bool early; /* from worker_early: flint had not exited yet */
};

struct worker;

/* Reads the request body: up to len bytes into buf. Returns the number
 * read (> 0), 0 at its end, or -errno to abandon the request. Called each
 * time the worker has written all it had into the child's stdin (a 64 KiB
 * buffer); it should not block long: stdout and the deadline wait while
 * it does. */
typedef ssize_t (*worker_in_fn)(void *ctx, void *buf, size_t len);

/* Takes len (> 0) bytes of the command's stdout. 0, or -errno to abandon
 * the request (the client is gone). */
typedef int (*worker_out_fn)(void *ctx, const void *buf, size_t len);

/* The argv worker_spawn runs for p, NULL-terminated, every string
 * malloc'd (worker_argv_free):
 *   [launcher...] flint run --restore STATE --mem-file MEM |
 *     --save-snapshot STATE --save-mem MEM | --attach UDS
 *   [--timeout S] [--wait-fd 3] [opts...] [--save-after]
 *   [--env K=V ...] [--workdir D] [-- ARGV...]
 * 0, or -EINVAL (no flint; no state or memory file but for an attach; no
 * uds for an attach; no command but for a save; an env entry without
 * '='; save_after with a kind other than WORKER_SAVE), -ENOMEM. flint run
 * checks the rest (names, paths, sizes) and exits 125. */
int worker_argv(const struct worker_params *p, char ***out) WARN_UNUSED;
void worker_argv_free(char **argv); /* NULL ok */

/* Starts flint for p (posix_spawn: the child in a new process group, its
 * signal mask empty and the usual signals at their defaults). The deadline
 * starts now, but a warm worker's at its release. 0, or -errno (exec
 * failed: -ENOENT, -EACCES, ...; nothing is left behind then). */
int worker_spawn(struct worker **out, const struct worker_params *p) WARN_UNUSED;

pid_t worker_pid(const struct worker *w);

/* A warm worker's go: writes the byte and closes the go pipe; its VM
 * resumes and runs the command, and the deadline starts. 0; -EPIPE when
 * flint is gone (worker_wait says how it ended); -EINVAL when w is not a
 * warm worker or was released already. */
int worker_release(struct worker *w) WARN_UNUSED;

/* Blocks until the command's stdout has bytes for buf (up to len), while
 * feeding its stdin from in() (NULL: no body) and keeping its stderr.
 * Returns the number of bytes (> 0); 0 at the end of stdout (flint
 * exited, or closed it); -ETIMEDOUT when the deadline passed (the group
 * is killed); -ECONNABORTED when the client watched hung up
 * (worker_watch_client; the group is killed); in()'s error (the group is
 * killed); -EINVAL for a warm worker not released; another -errno. Call
 * worker_wait after 0 or an error. */
ssize_t worker_read(struct worker *w, worker_in_fn in, void *ctx, void *buf,
		    size_t len) WARN_UNUSED;

/* The HTTP client's connection (fd, -1 for none, the default), watched
 * by worker_read while it waits: when the client hangs up (POLLRDHUP,
 * POLLHUP, POLLERR; bytes to read are no hang-up: a next request), the
 * group is killed and worker_read returns -ECONNABORTED; the outcome is
 * then WORKER_CLIENT_GONE, unless flint had exited by itself. */
void worker_watch_client(struct worker *w, int fd);

/* worker_read until the end of stdout, each piece handed to out(). 0, or
 * worker_read's error, or out()'s (the group is killed). */
int worker_pump(struct worker *w, worker_in_fn in, worker_out_fn out, void *ctx) WARN_UNUSED;

/* Ends the exchange and reaps: closes stdin (what is left of the body is
 * dropped), drops stdout still coming, keeps stderr, waits for flint to
 * exit until the deadline (then kills the group), kills what is left of
 * its group, reaps it and fills *res. A warm worker not released is
 * discarded (worker_discard). Calling it again gives the same result.
 * 0, or -errno from waitpid (*res then says KILLED). */
int worker_wait(struct worker *w, struct worker_result *res) WARN_UNUSED;

/* With early_status: once worker_read has given the end of stdout and
 * flint's status line came before it, the outcome from that line into
 * *res (early set; err as far as it came), true; flint may still be
 * tearing its VM down: worker_wait (or worker_destroy) ends it later.
 * false otherwise (then worker_wait). */
bool worker_early(struct worker *w, struct worker_result *res);

/* Gives a worker up: a warm one not released has its go pipe closed (flint
 * stops the VM and exits 0) and WORKER_DISCARD_S to exit before it is
 * killed; any other is killed at once. Then worker_wait. */
int worker_discard(struct worker *w, struct worker_result *res) WARN_UNUSED;

/* A WORKER_VM with control: sends "reset" on its control socket and waits
 * up to timeout_ms for flint's answer: 0 with *us (the reset's time as
 * flint measured it, microseconds; may be NULL) when the VM runs again
 * from its snapshot; -EIO with flint's message in err (errlen bytes, may
 * be 0) when it refused or failed (a failure after its memory was dropped
 * stops the VM: worker_exited); -ETIMEDOUT when no answer came in time
 * (the control socket is then closed, so flint stops the VM: a late
 * answer can never be taken for the next reset's); -EPIPE when flint is
 * gone or its socket closed; -EINVAL for a worker without control. One
 * thread at a time. worker_wait closes the socket first: flint stops its
 * VM and exits 0. */
int worker_reset(struct worker *w, unsigned timeout_ms, uint64_t *us, char *err,
		 size_t errlen) WARN_UNUSED;

/* A WORKER_VM whose guest stopped answering: "where" on its control
 * socket (flint will log where each vCPU was when it stops the VM; the
 * answer is not waited for), then the socket closed (it stops the VM and
 * exits); without control, SIGQUIT to flint, which does both. Returns at
 * once. The VM's deadline becomes deadline_ns (now_ns()'s
 * clock; its own no longer counts): worker_wait waits until then at most
 * before it kills the group, and reaps, with those lines in the result's
 * err. So several stuck VMs are asked first and then waited for, within
 * one deadline. 0; -EINVAL for another kind; 0 with nothing done when
 * the worker has ended. */
int worker_ask_where(struct worker *w, uint64_t deadline_ns) WARN_UNUSED;

/* worker_ask_where with a deadline timeout_ms from now, then worker_wait
 * into *res. 0, or as those. */
int worker_stop_saying_where(struct worker *w, unsigned timeout_ms,
			     struct worker_result *res) WARN_UNUSED;

/* Whether flint has exited (not reaped yet; worker_wait does that).
 * Never blocks: for a pool checking its warm workers. */
bool worker_exited(struct worker *w);

/* SIGKILL to the worker's process group, now. Any thread; nothing once it
 * has been reaped. */
void worker_kill(struct worker *w);

/* Kills and reaps the worker if worker_wait has not, closes its pipes and
 * frees it. NULL ok. */
void worker_destroy(struct worker *w);

/* flint run's exit status as an outcome (named "ok", "exit", "timeout",
 * "crash", "lost", "flint_error", "signal", "killed", "client_gone" by
 * worker_outcome_name, as metric labels and headers show them);
 * *detail (may be NULL) gets the status or signal as worker_result.status
 * says. */
enum worker_outcome worker_outcome_of(int exit_status, int *detail);
const char *worker_outcome_name(enum worker_outcome o);

/* WORKER_VM, between requests (before a reset, if any): its stderr
 * past half WORKER_VM_STDERR_CAP starts again from the top (the offset
 * it shares with flint rewound; what follows is not read), so that the
 * room for its last words does not run out over its life. Nothing for
 * another kind. */
void worker_log_rewind(struct worker *w);

/* flint's own last word in a result's stderr (a command's stderr comes
 * there too): the last line that starts "flint: ", without it, into buf;
 * "" when there is none, or when the stderr kept was truncated (its
 * last line kept is then not its last). Returns buf. */
const char *worker_flint_said(const struct worker_result *res, char *buf, size_t len);

/* Tests only: workers spawned while it is true go without a pidfd, as on a
 * kernel before 5.3 (flint's exit found with waitid every 20 ms). */
extern bool worker_test_no_pidfd;

#endif
