/* pool: flint serve's admission, queueing and warm-pool state machine.
 *
 * Pure: no threads, no processes, no clock. The server holds one lock
 * around every call and passes the time in (now_ns(), CLOCK_MONOTONIC
 * nanoseconds; a time earlier than one already seen counts as that one), so
 * the same calls always give the same answers and tests are exact. The
 * pool decides; the caller does (spawns, signals, kills) and reports back.
 *
 * What it tracks, by ids it hands out (uint64_t, never 0, never reused,
 * one sequence for functions, requests and VMs alike, so a stale id is
 * always -ENOENT or POOL_REFUSE_UNKNOWN):
 *
 * - functions, each with its limits (struct pool_fn_cfg);
 * - requests: queued (waiting, with a deadline) or running (on a VM);
 * - registrations (pool_reg_submit): a function booted to its snapshot
 *   before it is in the pool, by a VM of its own that counts against the
 *   global limits as any other; placed as a request of no function is;
 * - VMs, each of one function: starting (a warm VM being restored),
 *   ready (idle: restored and paused, or a reuse VM between requests) or
 *   busy (serving one request; a VM restored for that request counts as
 *   busy from the moment it is decided). Starting and ready VMs are "warm".
 *
 * Global limits (struct pool_cfg) count every VM alive (starting, ready,
 * busy) and the guest memory they hold (the sum of their functions'
 * mem_mib). A VM stops counting the moment the pool decides it ends (the
 * STOP action is queued), so the caller must kill promptly.
 *
 * Placing a request, in this order: a ready VM of its function (the most
 * recently idle one, so that surplus reuse VMs age out); else a new VM, if
 * it fits the limits; else a new VM after evicting warm VMs of OTHER
 * functions (first those above their function's min_warm, least recently
 * idle first, then any, least recently idle first), if evicting all of them
 * would make it fit; else it waits. A function's own starting VMs are never
 * evicted for it: the request waits for one to become ready instead.
 *
 * Fairness: FIFO within a function. Across functions, whenever VMs or
 * memory free up, the queued requests that have a free slot in their
 * function are served in the order they arrived; while the oldest of them
 * cannot be placed, no younger request takes a new VM (it may still take a
 * ready VM of its own function, which costs nothing more), and no warm VM
 * is started. So a function with big VMs is never starved by a stream of
 * small ones: it waits for busy VMs to finish, which they do.
 *
 * The warm pool: after every call, each function that is not draining and
 * has fewer than min_warm warm VMs gets WARM actions, one VM at a time,
 * functions taking turns, as long as they fit the limits without evicting
 * anything and no request is waiting on the limits. A warm VM that fails
 * (pool_vm_failed) is dropped and replaced the same way; if it failed while
 * starting, the function's replacements wait warm_retry_ns, doubling at
 * each failure up to warm_retry_max_ns, until one starts (so a function
 * whose VM cannot start does not spin). Warm VMs above min_warm (left over
 * by reuse) are stopped once idle for idle_ns.
 *
 * Isolation: per-request, a VM serves one request; reuse, a VM serves up
 * to reuse_max requests in turn, going back to ready between them, then is
 * retired.
 *
 * Actions. Besides its return value, each call may queue actions for the
 * caller: a queued request admitted or refused, a warm VM to start, a VM to
 * stop, a drained function gone. After EVERY call, take them all with
 * pool_next_act() (in order) and do them. Each VM the caller is told about
 * (a WARM action, or a RUN with warm false) ends exactly once: by a STOP
 * action, by pool_vm_failed(), or by pool_complete() with vm_reusable
 * false. A VM the pool gives up before its WARM action was taken is simply
 * never mentioned again.
 *
 * Memory: objects are allocated only where a call can return -ENOMEM with
 * nothing changed (pool_fn_add, pool_submit), or while placing a request or
 * starting a warm VM, where a failed allocation is taken as the limits
 * being reached (the request waits, the warm VM is not started).
 *
 * Counters (struct pool_stats) for the whole pool and per function, readable
 * at any time. */
#ifndef FLINT_SERVE_POOL_H
#define FLINT_SERVE_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

/* The pool's global limits and timings. */
struct pool_cfg {
	uint32_t max_vms;     /* VMs alive at once, >= 1 */
	uint64_t max_mem_mib; /* guest memory of the VMs alive, >= 1 */
	uint32_t max_queued;  /* requests waiting, all functions together */
	uint64_t idle_ns;     /* warm VMs above min_warm stop after this idle; 0: never */
	/* The wait before replacing a warm VM that failed to start, doubled at
	 * each failure in a row up to warm_retry_max_ns (>= warm_retry_ns).
	 * 0: replace at once. */
	uint64_t warm_retry_ns, warm_retry_max_ns;
	/* The longest a registration waits for room; 0: none waits. */
	uint64_t reg_timeout_ns;
};

enum pool_isolation {
	POOL_PER_REQUEST = 0, /* one request per VM (fn.h's FN_PER_REQUEST) */
	POOL_REUSE = 1,	      /* up to reuse_max requests per VM (FN_REUSE) */
};

/* A function's limits (fn.h's fields, plus its queue's). */
struct pool_fn_cfg {
	uint32_t max_concurrency; /* requests running at once, >= 1 */
	uint32_t mem_mib;	  /* each VM's, >= 1 and <= the pool's max_mem_mib */
	uint32_t min_warm;	  /* warm VMs kept ready */
	enum pool_isolation isolation;
	uint32_t reuse_max;	   /* with POOL_REUSE, >= 1; ignored otherwise */
	uint32_t queue_max;	   /* requests waiting; 0: none wait */
	uint64_t queue_timeout_ns; /* the longest a request waits; > 0 if queue_max > 0 */
};

/* Why a request is refused; the server's HTTP status in brackets. */
enum pool_refuse {
	POOL_REFUSE_UNKNOWN,  /* no such function, or gone (404) */
	POOL_REFUSE_DRAINING, /* the function is being removed (409) */
	POOL_REFUSE_FN_FULL,  /* its max_concurrency in use and its queue full (429) */
	POOL_REFUSE_LIMITS,   /* the global queue full, or the global limits
			       * reached and its function's queue full (503) */
	POOL_REFUSE_TIMEOUT,  /* waited queue_timeout_ns without a VM (503) */
	POOL_REFUSE_COUNT
};

/* Why a VM is to be stopped. */
enum pool_stop {
	POOL_STOP_EVICTED, /* a warm VM given up to make room for another function */
	POOL_STOP_RETIRED, /* served its last request (reuse_max, or per-request) */
	POOL_STOP_IDLE,	   /* a warm VM above min_warm, idle for idle_ns */
	POOL_STOP_DRAINED, /* its function is being removed and needs it no more */
};

enum pool_act_kind {
	/* A queued request is admitted: it runs on VM vm, which is warm (an
	 * idle VM of its function: hand it the request) or not (a new VM:
	 * restore one for it). wait_ns: how long it was queued. */
	POOL_ACT_RUN,
	/* A queued request is refused (reason: POOL_REFUSE_TIMEOUT). */
	POOL_ACT_REFUSE,
	/* Start warm VM vm of function fn (restored and paused), then report
	 * pool_vm_ready() or pool_vm_failed(). */
	POOL_ACT_WARM,
	/* Stop VM vm (why), starting, ready or just finished serving; its
	 * request, if any, already completed. */
	POOL_ACT_STOP,
	/* Function fn is drained and removed: nothing of it remains. */
	POOL_ACT_GONE,
};

struct pool_act {
	enum pool_act_kind kind;
	uint64_t fn;		 /* always */
	uint64_t req;		 /* RUN, REFUSE; else 0 */
	uint64_t vm;		 /* RUN, WARM, STOP; else 0 */
	bool warm;		 /* RUN */
	uint64_t wait_ns;	 /* RUN, REFUSE: time spent queued */
	enum pool_refuse reason; /* REFUSE */
	enum pool_stop why;	 /* STOP */
	void *fn_ctx;		 /* always: pool_fn_add()'s ctx */
	void *req_ctx;		 /* RUN, REFUSE: pool_submit()'s ctx */
	void *vm_ctx;		 /* STOP: pool_vm_set_ctx()'s, NULL if never set */
};

/* What pool_submit() decided for the new request. */
enum pool_admit_kind {
	POOL_RUN,     /* runs now: req on vm, warm as in POOL_ACT_RUN */
	POOL_QUEUED,  /* waits: a RUN or REFUSE action for req comes later */
	POOL_REFUSED, /* refused now (reason); req is 0 */
};

struct pool_admit {
	enum pool_admit_kind kind;
	uint64_t req, vm;
	bool warm;
	enum pool_refuse reason;
};

/* Counters since the pool (or function) was added, and gauges. For the
 * pool as a whole, submitted counts requests to unknown functions and
 * registrations too, and then: submitted == admitted + all refused +
 * cancelled + queue_len, and admitted == completed + running. */
struct pool_stats {
	uint64_t submitted;		     /* pool_submit() calls */
	uint64_t admitted, admitted_warm;    /* given a VM; of them an idle one */
	uint64_t queued;		     /* requests that waited in the queue */
	uint64_t refused[POOL_REFUSE_COUNT]; /* at submit or from the queue */
	uint64_t cancelled;		     /* queued requests pool_cancel()ed */
	uint64_t completed;		     /* admitted requests pool_complete()d */
	uint64_t vms_started;		     /* new VMs: warm, or restored per request */
	uint64_t warm_started, warm_ready;   /* WARM actions; pool_vm_ready() */
	uint64_t vms_failed;		     /* warm VMs pool_vm_failed() */
	uint64_t evicted, retired, idle_stopped, drained; /* STOP actions by why */
	/* gauges */
	uint32_t running;   /* requests on a VM */
	uint32_t queue_len; /* requests waiting */
	uint32_t warm;	    /* VMs starting or ready */
	uint32_t starting;  /* of them, starting */
	uint32_t vms;	    /* VMs alive: warm + running */
	uint64_t mem_mib;   /* their guest memory */
	bool draining;	    /* per function: being removed */
};

struct pool;

/* A pool with limits cfg and the time starting at now. 0, -EINVAL
 * (max_vms or max_mem_mib 0, warm_retry_max_ns below warm_retry_ns) or
 * -ENOMEM. */
int pool_create(const struct pool_cfg *cfg, uint64_t now, struct pool **out) WARN_UNUSED;

/* Free the pool and everything in it, actions not taken included (the
 * caller stops its VMs itself). NULL is fine. */
void pool_destroy(struct pool *p);

/* Add a function with limits cfg and the caller's ctx (carried in every
 * action about it); *id gets its id. Its warm VMs come as WARM actions.
 * 0; -EINVAL (a field out of range); -E2BIG (its VMs could never fit:
 * mem_mib over max_mem_mib); -ENOMEM. */
int pool_fn_add(struct pool *p, const struct pool_fn_cfg *cfg, void *ctx, uint64_t now,
		uint64_t *id) WARN_UNUSED;

/* Drain function fn: refuse new requests (POOL_REFUSE_DRAINING), let its
 * running and queued ones finish, stop its warm VMs as they are no longer
 * needed, then remove it with a GONE action (at once if it had nothing).
 * 0; -ENOENT (unknown); -EALREADY (already draining). */
int pool_fn_remove(struct pool *p, uint64_t fn, uint64_t now) WARN_UNUSED;

/* A request for function fn, with the caller's ctx: *out says whether it
 * runs now (then nothing else will say so: no RUN action comes for it),
 * waits, or is refused. 0 with *out set, or -ENOMEM (nothing changed). */
int pool_submit(struct pool *p, uint64_t fn, void *ctx, uint64_t now,
		struct pool_admit *out) WARN_UNUSED;

/* A registration's VM, of mem_mib, with the caller's ctx: placed as a
 * request of a function of its own with no limit but the global ones
 * would be (in arrival order with the others' requests, evicting warm VMs
 * of functions if need be), it runs now (out->vm, never warm), waits up to
 * reg_timeout_ns in the global queue (its RUN or REFUSE action has fn 0
 * and fn_ctx NULL), or is refused (POOL_REFUSE_LIMITS). Its VM is always
 * the caller's to end: report it with pool_complete() (vm_reusable does not
 * matter) once it has ended, or pool_cancel() it while it waits. The
 * pool's counters count it as a request; no function's do. 0 with *out
 * set; -EINVAL (mem_mib 0 or over max_mem_mib); -ENOMEM (nothing
 * changed). */
int pool_reg_submit(struct pool *p, uint32_t mem_mib, void *ctx, uint64_t now,
		    struct pool_admit *out) WARN_UNUSED;

/* Running request req finished (whatever its outcome): its slot frees and
 * its VM either serves again (vm_reusable: the VM is alive and in a state
 * to take another request, e.g. its command exited; the pool keeps it under
 * reuse, or gives a STOP) or is the caller's to end (!vm_reusable: it
 * exited, was killed, crashed; the pool forgets it). 0; -ENOENT (no such
 * running request: unknown, queued, refused or already completed). */
int pool_complete(struct pool *p, uint64_t req, bool vm_reusable, uint64_t now) WARN_UNUSED;

/* The client of queued request req went away: drop it (no action comes
 * for it). 0; -ENOENT (unknown or no longer queued: its RUN or REFUSE
 * action says what became of it). */
int pool_cancel(struct pool *p, uint64_t req, uint64_t now) WARN_UNUSED;

/* Warm VM vm, started by a WARM action, is restored and ready for a
 * request. 0; -ENOENT (unknown or stopped meanwhile: its STOP says so);
 * -EINVAL (not starting). */
int pool_vm_ready(struct pool *p, uint64_t vm, uint64_t now) WARN_UNUSED;

/* Warm VM vm (starting or ready) failed or died: the pool forgets it and
 * replaces it (after a wait if it never started). A busy VM's end is told
 * by pool_complete() instead. 0; -ENOENT (unknown or stopped); -EBUSY
 * (busy). */
int pool_vm_failed(struct pool *p, uint64_t vm, uint64_t now) WARN_UNUSED;

/* Attach the caller's ctx to VM vm (its worker), given back in its STOP
 * action. 0 or -ENOENT. */
int pool_vm_set_ctx(struct pool *p, uint64_t vm, void *ctx) WARN_UNUSED;

/* Let time pass to now: queued requests past their deadline are refused
 * (REFUSE, POOL_REFUSE_TIMEOUT), surplus warm VMs idle too long stopped,
 * held-off warm VMs started. Every other call does this first as well. */
void pool_tick(struct pool *p, uint64_t now);

/* The earliest time at which pool_tick() would do something that no call
 * has done yet (a deadline, an idle time, a retry); UINT64_MAX if none.
 * The caller sleeps until then, or until its next call. */
uint64_t pool_next_deadline(const struct pool *p);

/* Take the oldest action not taken yet into *act: true, or false when
 * there is none. Pointers in it are the caller's own ctx values. */
bool pool_next_act(struct pool *p, struct pool_act *act);

/* The pool's counters (*st) or function fn's (0 or -ENOENT). For a
 * function, refused[POOL_REFUSE_UNKNOWN] is always 0. */
void pool_stats(const struct pool *p, struct pool_stats *st);
int pool_fn_stats(const struct pool *p, uint64_t fn, struct pool_stats *st) WARN_UNUSED;

/* Names for logs and metric labels: "unknown", "draining", "fn_full",
 * "limits", "timeout"; "evicted", "retired", "idle", "drained". */
const char *pool_refuse_name(enum pool_refuse r);
const char *pool_stop_name(enum pool_stop s);

#endif
