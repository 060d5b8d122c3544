/* vCPU threads and the exit handler. The handler is a plain function of the
 * vCPU and its kvm_run, so tests feed it synthetic exits. */
#ifndef FLINT_VCPU_H
#define FLINT_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/control.h"
#include "core/util.h"

#define VCPU_EXIT_REASONS 64 /* KVM_EXIT_* values stay below this */
/* The signal that kicks a vCPU out of KVM_RUN: a real-time one, so nothing
 * else in the process uses it. */
#define VCPU_KICK_SIGNAL (SIGRTMIN + 1)

enum vcpu_action { VCPU_CONTINUE, VCPU_STOP, VCPU_FATAL };

/* What the exit handler may touch: the buses and the stop control. */
struct vcpu_env {
	struct bus *pio;
	struct bus *mmio;
	struct control *ctl;
};

struct vcpu {
	unsigned id;
	int fd;	      /* KVM vCPU fd, -1 in tests */
	int stats_fd; /* KVM binary stats fd, -1 when unavailable */
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	const struct vcpu_env *env;
	/* User-space exits by KVM_EXIT_* reason; written by this vCPU's thread
	 * only (vcpu_count), read with vcpu_counter while it runs (the
	 * metrics) or after it is joined. */
	uint64_t exits[VCPU_EXIT_REASONS];
	uint64_t pio_exits, mmio_exits, unhandled;
	char fatal[320]; /* why the handler returned VCPU_FATAL, and where */
	/* Where the guest was when this thread left its loop (--stats: a guest
	 * stuck in a loop of its own shows where); written by the thread,
	 * read after it is joined. left_valid: KVM_GET_REGS answered. */
	uint64_t left_rip;
	bool left_valid;
	/* Pausing: the control thread sets pause and kicks; the vCPU thread,
	 * out of KVM_RUN, tells the guest's kvmclock, sets parked and waits
	 * until pause is cleared or the VM stops. exited: the thread has left
	 * its loop. Under lock (pause is also read without it, on the way
	 * into KVM_RUN); cond signals every change. */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC */
	atomic_bool pause;
	bool parked, exited;
	/* Left in KVM_RUN for good (vcpu_abandon): nothing of it is freed. */
	bool abandoned;
	int kvmclock; /* the last KVM_KVMCLOCK_CTRL's result: 0 or -errno */
};

/* A vCPU's exit counters: one writer (its thread), readers on other
 * threads while it runs. Relaxed atomics, a plain load and store. */
static inline void vcpu_count(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static inline uint64_t vcpu_counter(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Handle one exit: dispatch port and MMIO accesses to the buses, turn guest
 * shutdowns and KVM errors into stop requests. Returns what the run loop
 * does next; on VCPU_FATAL, v->fatal says why. */
enum vcpu_action vcpu_handle_exit(struct vcpu *v, struct kvm_run *run);

/* Create vCPU `id` on vm_fd and map its kvm_run. Returns 0 or -errno. */
int vcpu_create(struct vcpu *v, int sys_fd, int vm_fd, unsigned id,
		const struct vcpu_env *env) WARN_UNUSED;
/* Start the KVM_RUN loop on its own thread. The calling thread must have the
 * kick signal blocked (see vcpu_block_kick); the vCPU thread unblocks it. */
int vcpu_start(struct vcpu *v) WARN_UNUSED;
/* Make the vCPU leave KVM_RUN soon, and a parked one look at the stop
 * control again (from any thread). */
void vcpu_kick(struct vcpu *v);

/* Pause and resume, from the control thread. vcpu_pause asks the vCPU to
 * park and kicks it out of KVM_RUN; vcpu_wait_paused waits until it is
 * parked (or its thread has ended): 0, or -ETIMEDOUT at deadline_ns
 * (CLOCK_MONOTONIC, now_ns()), when it may still be running. A parked vCPU
 * has told the guest's kvmclock that it was stopped (KVM_KVMCLOCK_CTRL;
 * v->kvmclock is -EINVAL for a guest without kvmclock) and stays out of
 * KVM_RUN until vcpu_resume, or until the VM stops. A vCPU not started
 * counts as paused; one paused before vcpu_start parks before its first
 * KVM_RUN. */
void vcpu_pause(struct vcpu *v);
int vcpu_wait_paused(struct vcpu *v, uint64_t deadline_ns) WARN_UNUSED;
void vcpu_resume(struct vcpu *v);
/* True while the vCPU thread is parked. */
bool vcpu_parked(struct vcpu *v);
/* True while the vCPU thread runs: started and not out of its loop. */
bool vcpu_alive(struct vcpu *v);
/* Give up on a thread that cannot leave KVM_RUN (a fault on a page nobody
 * will serve, which only a fatal signal ends before Linux 6.2): the
 * process's exit ends it. vcpu_join and vcpu_destroy leave it alone, its
 * fd and kvm_run mapping included; nothing may ask its fd for state
 * (KVM would wait for the thread's KVM_RUN). */
void vcpu_abandon(struct vcpu *v);
/* Wait for the vCPU thread to end (no-op if not started). */
void vcpu_join(struct vcpu *v);
/* Join the thread (if started), unmap, close. Safe on a zeroed vcpu with fd -1. */
void vcpu_destroy(struct vcpu *v);

/* Block the kick signal in the calling thread (and threads it creates) and
 * install its no-op handler. Call once before starting vCPUs. */
void vcpu_block_kick(void);

/* Read a KVM binary statistic of this vCPU by name ("exits", "io_exits", ...).
 * Returns 0 and *val, or -ENOENT. */
int vcpu_kvm_stat(struct vcpu *v, const char *name, uint64_t *val);

/* Name of a KVM_EXIT_* reason, e.g. "IO". */
const char *vcpu_exit_name(unsigned reason);

#endif
