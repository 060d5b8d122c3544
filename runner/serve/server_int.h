/* server_int: what server.c (options, HTTP, the process), registry.c
 * (functions, the pool's actions, the manager thread) and invoke.c (one
 * invocation) share. One mutex, struct server.lock, guards the registry,
 * the pool, the VM table and the stderr store; nothing slow runs under it
 * but posix_spawn of a warm VM. */
#ifndef FLINT_SERVE_SERVER_INT_H
#define FLINT_SERVE_SERVER_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "serve/fn.h"
#include "serve/jailing.h"
#include "serve/pool.h"
#include "serve/prom.h"
#include "serve/worker.h"

#define SERVE_MAX_LISTEN 4
/* --max-bodies' default (unless --max-body is larger). */
#define SERVE_MAX_BODIES (256u << 20)
/* A connection idle this long is closed (libmicrohttpd's timeout). */
#define SERVE_IDLE_TIMEOUT_S 120u

struct serve_opts {
	const char *listen[SERVE_MAX_LISTEN];
	unsigned nlisten;
	char state_dir[PATH_MAX]; /* functions' snapshots live under it */
	bool state_dir_made;	  /* made by us: removed at exit */
	char flint[PATH_MAX];	  /* the flint binary the VMs run */
	uint32_t max_vms;
	uint64_t max_mem_mib;
	uint32_t max_queue, fn_queue;
	unsigned queue_timeout_s, idle_s;
	size_t max_body;   /* a request body's cap */
	size_t max_bodies; /* the bodies held at once, queued ones' included */
	size_t out_buffer; /* stdout held to choose the status; then streamed */
	unsigned stderr_keep_s, stderr_keep_n;
	unsigned register_timeout_s; /* boot, prepare, snapshot */
	/* Per-request isolation by a VM reset in place to its snapshot after
	 * each request (--per-request reset), not a VM restored per request
	 * (restore). */
	bool reset;
	/* --jail: each VM's flint under flint-jail (jailing.h). */
	struct jailing_opts jail;
};

enum serve_fn_state {
	/* waiting for room in the pool, then booting to its snapshot (a VM
	 * the pool counts, but not yet a function of it) */
	SFN_REGISTERING,
	SFN_READY,
	SFN_DRAINING, /* DELETE: no new requests, waiting for the pool's GONE */
	SFN_GONE,
};

/* The most requests one VM serves, reset after each, before it is
 * retired for a fresh one (--per-request reset). */
#define SERVE_RESET_MAX 1000
/* The longest a reset may take before its VM is given up. */
#define SERVE_RESET_TIMEOUT_MS 10000
/* A VM that runs on whose agent does not answer this long: 502. */
#define SERVE_AGENT_CONNECT_MS 10000

/* A registered function. Freed once it is out of the registry and no
 * thread holds it (refs). */
struct serve_fn {
	struct serve_fn *next;
	struct fn_config cfg;
	enum serve_fn_state state;
	bool listed; /* in server.fns */
	unsigned refs;
	uint64_t pool_id;
	char dir[PATH_MAX], state_path[PATH_MAX], mem_path[PATH_MAX];
	/* --jail: the kernel and root image its registration booted (the
	 * defaults resolved), the root image staged as drive0 at restores. */
	char kernel[PATH_MAX], rootfs[PATH_MAX];
	double save_ms;	       /* registering: boot, prepare and snapshot */
	struct worker *saving; /* the registering flint, for a shutdown */
	pthread_cond_t gone;   /* the pool said GONE, or the server stops */
};

/* A VM alive, by the pool's id: warm (its worker restored it paused) or
 * busy (an invocation drives its worker). */
struct serve_vm {
	struct serve_vm *next;
	uint64_t id;
	struct serve_fn *fn; /* a reference of its own */
	/* Per-request: the VM's flint, restored paused (warm) until a request
	 * takes it; NULL for one its request restores. */
	struct worker *w;
	/* Reuse: the VM's own flint, running on between requests, and its
	 * vsock socket, which each request's `flint run --attach` reaches. */
	struct worker *vmw;
	char uds[108];
	/* --jail: vmw's jail (the worker's: valid while vmw is), uds being
	 * a path in it. */
	struct jail_slot *jail;
	pid_t pid;	       /* the VM's flint, for its RSS */
	struct worker *run_w;  /* busy: the request's worker (its call's), to kill */
	struct agentc *run_ac; /* or its session with the VM's agent */
	bool busy;
	bool lost; /* warm, its flint ended by itself: say how, at its reaping */
	/* Reuse: its guest did not answer a request in time (no status past
	 * the timeout): at its reaping, its flint is asked where the vCPUs
	 * were, and that is logged. */
	bool stuck;
};

/* A request handed to the pool (its ctx): how it was placed, filled in by
 * an action for a queued one. */
struct serve_wait {
	pthread_cond_t cv;
	bool decided, run;
	/* An invocation's HTTP connection, watched while it waits (-1 for a
	 * registration): a client gone gives its place up (client_gone). */
	int client_fd;
	bool client_gone;
	uint64_t req, vm, wait_ns;
	bool warm;
	enum pool_refuse reason;
};

/* An invocation's stderr, kept for GET .../invocations/{id}/stderr. */
struct serve_err {
	struct serve_err *next;
	uint64_t id;
	char fn[FN_NAME_MAX + 1];
	char *text;
	size_t len, total;
	uint64_t expires_ns;
};

struct serve_metrics {
	struct prom_registry *reg;
	struct prom_family *invocations, *refused, *restarts, *queue_wait, *restore, *run, *total,
	    *reset;
	struct prom_family *vms, *queued, *vms_alive, *guest_mem, *rss, *functions;
};

/* A streamed answer whose command's output is not all read by
 * deadline_ns (its start + timeout_s + WORKER_MARGIN_S), as its client
 * takes the answer slowly (every byte taken restarts libmicrohttpd's idle
 * timeout): the call would hold the VM. The manager then shuts the connection down (cut), and
 * the connection's thread gives the answer up as for a client gone. fd is
 * the call's own dup of the connection, so that no number closed and
 * reused meanwhile is shut down. Listed in server.streams, under the lock,
 * until the command ends. */
struct serve_stream {
	struct serve_stream *next;
	int fd;
	uint64_t deadline_ns;
	bool cut;
};

/* A flint that answered early (worker_early) and is still tearing its VM
 * down: reaped by the manager once it exits, killed at kill_ns. */
struct serve_exiting {
	struct serve_exiting *next;
	struct worker *w;
	uint64_t kill_ns;
};

struct server {
	struct serve_opts o;
	pthread_mutex_t lock;
	struct pool *pool;
	struct serve_fn *fns;
	struct serve_vm *vms;
	struct serve_vm *reap; /* stopped VMs for the manager to kill and reap */
	struct serve_exiting *exiting;
	struct serve_stream *streams;
	struct serve_err *errs;
	unsigned nerrs;
	uint64_t dir_seq;
	bool stopping;
	pthread_cond_t manager_cv; /* CLOCK_MONOTONIC */
	struct jailing *jail;	   /* NULL: VMs run unjailed */
	pthread_t manager;
	bool manager_started;
	struct serve_metrics m;
	/* Bytes of request bodies held: taken as they arrive, given back when
	 * the request (or the call it became) frees its body. */
	_Atomic size_t bodies_held;
};

/* Count n more bytes of request bodies against --max-bodies: false (none
 * counted) past it. */
bool serve_bodies_take(struct server *s, size_t n);
void serve_bodies_give(struct server *s, size_t n);

/* server.c: the pool's limits and timings for options o. */
struct pool_cfg serve_pool_cfg(const struct serve_opts *o);

/* registry.c */
struct serve_fn *serve_fn_find(struct server *s, const char *name);
void serve_fn_put(struct server *s, struct serve_fn *fn); /* under the lock */
void serve_do_acts(struct server *s);			  /* under the lock */
struct serve_vm *serve_vm_find(struct server *s, uint64_t id);
void serve_vm_unlink(struct server *s, struct serve_vm *v);
void serve_vm_free(struct server *s, struct serve_vm *v); /* under the lock */
/* Whether fn's VMs run on between requests in a flint of their own,
 * reached by `flint run --attach`: reuse, and per-request VMs reset in
 * place. */
bool serve_fn_attached(const struct server *s, const struct serve_fn *fn);
/* Whether fn's VMs are reset in place after each request. */
bool serve_fn_resets(const struct server *s, const struct serve_fn *fn);

/* invoke.c: the pool's decision (under the lock, which a wait lets go of)
 * on a request or registration submitted with w as its ctx (its cv
 * initialised; destroyed here) and placed as a says: whether it runs (w's
 * req, vm and warm set), waiting for it if queued. false: refused (*why
 * set) or the server is stopping. */
bool serve_admitted(struct server *s, struct serve_wait *w, const struct pool_admit *a,
		    enum pool_refuse *why);

/* List st (its fd and deadline_ns set) for the manager to watch, or take
 * it off the list again (under the lock). */
void serve_stream_add(struct server *s, struct serve_stream *st);
void serve_stream_del(struct server *s, struct serve_stream *st);

/* Hand w, whose outcome is known, to the manager to reap (under the
 * lock). */
void serve_exiting_add(struct server *s, struct worker *w);
/* Start v's flint: a warm VM (per-request) or the reuse VM, waiting for a
 * jail's uid until deadline_ns (serve_jail_params). 0 or -errno. */
int serve_vm_spawn(struct server *s, struct serve_vm *v, uint64_t deadline_ns) WARN_UNUSED;
int serve_manager_start(struct server *s) WARN_UNUSED;
void serve_manager_stop(struct server *s);
/* Every VM killed and reaped, every function freed (no connection left). */
void serve_registry_free(struct server *s);
/* The options every worker of fn gets: a NULL-terminated array of
 * malloc'd strings (--kernel, --rootfs, ... for a registration; --timings
 * for the others). NULL when out of memory. */
char **serve_worker_opts(const struct server *s, const struct serve_fn *fn, bool registering);
/* A worker of kind for fn's snapshot, command, environment and working
 * directory, with opts, its status line early. */
struct worker_params serve_worker_params(const struct server *s, const struct serve_fn *fn,
					 enum worker_kind kind, char *const *opts);
/* --jail: p's flint in a jail of its own for fn, which the worker removes
 * when it is over (*slot: the jail, for paths in it), waiting for a free
 * uid until deadline_ns (0: not at all; never under the server's lock,
 * which the reaping that frees one takes). Without --jail, nothing (*slot
 * NULL). 0, or -errno (-EAGAIN: no uid free). */
int serve_jail_params(struct server *s, const struct serve_fn *fn, struct worker_params *p,
		      uint64_t deadline_ns, struct jail_slot **slot) WARN_UNUSED;
/* Until when a request that came at since_ns waits for a jail's uid:
 * --queue-timeout from then, its wait in the queue included. */
uint64_t serve_uid_deadline(const struct server *s, uint64_t since_ns);
/* agentc's open_uds for a jailed VM's socket (ctx: its jail_slot). */
int serve_jail_open_uds(void *ctx, const char *uds);
void serve_strv_free(char **v);
/* PUT /functions/{name}: status and a JSON body (malloc'd). */
unsigned serve_fn_register(struct server *s, const char *name, const char *body, size_t len,
			   char **out);
/* DELETE /functions/{name}: waits for the drain. */
unsigned serve_fn_delete(struct server *s, const char *name, char **out);
/* GET /functions, /functions/{name}, /: JSON. */
unsigned serve_fn_list(struct server *s, char **out);
unsigned serve_fn_show(struct server *s, const char *name, char **out);
unsigned serve_info(struct server *s, char **out);
/* GET /metrics: the text. */
unsigned serve_metrics_render(struct server *s, char **out, size_t *len);
int serve_metrics_init(struct serve_metrics *m) WARN_UNUSED;
/* Keep an invocation's stderr (under the lock). */
void serve_err_keep(struct server *s, uint64_t id, const char *fn, const char *text, size_t len,
		    size_t total);
/* GET .../invocations/{id}/stderr: 200 with the text, or 404. */
unsigned serve_err_get(struct server *s, const char *fn, uint64_t id, char **out, size_t *len);

/* For results nothing can be done about: a metric not counted for want
 * of memory, a pool call on a VM it has already forgotten. */
static inline void serve_ignore(int r)
{
	(void)r;
}

/* {"fault_message": msg}, malloc'd. */
char *serve_fault(const char *fmt, ...) PRINTF(1, 2);
/* The pool's refusal as an HTTP status and a message. */
unsigned serve_refuse_status(enum pool_refuse r);
const char *serve_refuse_text(enum pool_refuse r);

#endif
