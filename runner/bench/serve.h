/* `flint bench serve`'s driver: requests through a `flint serve` of the
 * bench's own, each timed from its send to its whole answer.
 *
 * bserve_start starts `FLINT serve` (its process group of its own, its
 * socket, state directory and log in the bench's private directory),
 * registers one function the way bench/serve does (default: `sh -c 'read
 * l; echo pong $l'` with a `prepare` that runs the shell once, so that the
 * snapshot's page cache holds it), with max_concurrency and min_warm the
 * bench's concurrency, and waits until that many warm VMs are ready.
 * bserve_load_run then sends requests from C lanes at once (a thread and
 * a kept-alive connection each, through bench/fcapi.h's client), each
 * giving a bench_record: BP_FIRST_RESPONSE at the answer's first byte,
 * BP_RESPONSE at its end (so stats' "startup" is the request's latency),
 * ok for a 200 with the expected body. bserve_stop stops the server as
 * its README says (SIGTERM: it kills and reaps every VM and removes its
 * state), its process group killed only when it has not ended in time.
 *
 * The isolation maps to flint serve's: reset (its default: a VM reset in
 * place after each request), restore (--per-request restore: a VM
 * restored per request), reuse (the function's "isolation": "reuse"). */
#ifndef FLINT_BENCH_SERVE_H
#define FLINT_BENCH_SERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench/record.h"
#include "bench/vmm.h"
#include "core/util.h"

enum bserve_isolation { BSERVE_RESET, BSERVE_RESTORE, BSERVE_REUSE };

/* The function's name, its default body and the answer expected. */
#define BSERVE_FN     "bench"
#define BSERVE_BODY   "flint-bench\n"
#define BSERVE_EXPECT "pong flint-bench\n"
/* The bench's directory holds the state directory "DIR/state", which
 * flint serve takes up to 79 bytes long. */
#define BSERVE_DIR_MAX 72
/* flint serve's own limits, raised when the bench needs more VMs. */
#define BSERVE_MAX_VMS_DEFAULT	   64
#define BSERVE_MAX_MEM_DEFAULT_MIB 8192
/* The longest a stopping flint serve is given before its group is killed. */
#define BSERVE_STOP_S 30

struct bserve_cfg {
	const char *flint; /* the flint that serves (and whose VMs run) */
	const char *dir;   /* a private directory, at most BSERVE_DIR_MAX bytes */
	const char *kernel, *rootfs;
	unsigned mem_mib, vcpus, concurrency, timeout_s;
	enum bserve_isolation isolation;
	char *const *command; /* ncommand 0: the default function */
	int ncommand;
	/* Set by a signal handler: every wait gives up. */
	volatile sig_atomic_t *stop;
	/* flint serve's pid, written once it is spawned and cleared once it
	 * is reaped, for a signal handler to SIGTERM (NULL: not wanted). */
	volatile pid_t *pid;
};

/* The isolation's name (reset, restore, reuse) and back: 0 or -EINVAL. */
const char *bserve_isolation_name(enum bserve_isolation i);
int bserve_isolation_from_name(const char *name, enum bserve_isolation *i) WARN_UNUSED;

/* flint serve's argv for c into a (pointing into a->buf). 0, -E2BIG. */
int bserve_argv(const struct bserve_cfg *c, struct vmm_argv *a) WARN_UNUSED;

/* The function's registration (PUT /functions/BSERVE_FN's body) for c,
 * a new string the caller frees. 0 or -ENOMEM. */
int bserve_function_json(const struct bserve_cfg *c, char **out) WARN_UNUSED;

/* GET /functions/BSERVE_FN's answer: its warm VMs ready (pool.warm less
 * pool.starting) into *ready. 0, or -EINVAL for another document. */
int bserve_pool_ready(const char *json, unsigned *ready) WARN_UNUSED;

struct bserve;

/* Start flint serve, register the function and wait for its warm pool
 * (each step within c->timeout_s, the start within 30 s). 0 with *out,
 * or -errno with why (flint serve's last line when it said one); the
 * server is then stopped already. -EINTR when c->stop was set. c must
 * outlive *out. */
int bserve_start(const struct bserve_cfg *c, struct bserve **out, char *why,
		 size_t len) WARN_UNUSED;

/* The socket flint serve listens on. */
const char *bserve_socket(const struct bserve *s);

/* Stop s's flint serve (SIGTERM, then after BSERVE_STOP_S its process
 * group SIGKILLed), remove what it left in the directory, free s. 0 when
 * it ended by itself with status 0, else -EIO with why. NULL ok. */
int bserve_stop(struct bserve *s, char *why, size_t len);

/* What requests to send: n of them, concurrency at once, each POST path
 * with body over the Unix socket sock, answered within timeout_s; ok
 * when 200 and (expect not NULL) the body is expect. */
struct bserve_load {
	const char *sock, *path, *body, *expect;
	unsigned n, concurrency, timeout_s;
	volatile sig_atomic_t *stop; /* set: no more requests sent */
};

/* Send l's requests: records, vmm "flint", into out[0..l->n) in the
 * order they were sent, their count into *nout (fewer when stopped);
 * *wall_us from the first send to the last answer. Returns 0, -EINTR
 * when l->stop was set, or -errno when a lane could not start. */
int bserve_load_run(const struct bserve_load *l, struct bench_record *out, size_t *nout,
		    uint64_t *wall_us) WARN_UNUSED;

#endif
