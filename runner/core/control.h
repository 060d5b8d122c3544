/* Why and how the VM stops: a latch. Devices, vCPU, event-loop and relay
 * threads request a stop without waiting for anyone; the first request wins
 * and later ones are ignored. Its kick makes the vCPUs leave KVM_RUN and
 * wakes the control thread through the mailbox's fd (mailbox.h), where
 * actions that want an answer queue. Thread-safe. */
#ifndef FLINT_CONTROL_H
#define FLINT_CONTROL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/util.h"

/* Why the VM stopped. What that means for flint's exit status is the
 * command layer's business (main.c), not the VM's. */
enum stop_reason {
	STOP_NONE = 0,
	STOP_GUEST_RESET, /* guest rebooted (i8042 reset, KVM reset or shutdown event) */
	STOP_GUEST_EXIT,  /* the guest wrote its exit device; value: what it wrote */
	STOP_GUEST_PANIC, /* the guest kernel panicked */
	STOP_GUEST_CRASH, /* triple fault, KVM internal or emulation error, crash event */
	STOP_HOST_SIGNAL, /* SIGINT/SIGTERM/SIGHUP/SIGQUIT on the host; value: the signal */
	STOP_REQUESTED,	  /* vm_request_stop, a stop action; value: the requester's */
	STOP_ERROR,	  /* flint failed: KVM_RUN, a thread, a seccomp filter */
};

struct control {
	_Atomic int reason; /* enum stop_reason */
	int value;	    /* see enum stop_reason; valid once reason != NONE */
	char msg[256];	    /* why, for the user; "" for nothing to say */
	/* Called once, by the first stop request, to make every vCPU leave KVM_RUN. */
	void (*kick)(void *ctx);
	void *kick_ctx;
	pthread_mutex_t lock;
};

void control_init(struct control *c, void (*kick)(void *ctx), void *kick_ctx);

/* Request a stop. Returns true if this request was the first (and so took
 * effect). fmt may be NULL for no message. */
bool control_request_stop(struct control *c, enum stop_reason r, int value, const char *fmt, ...)
    PRINTF(4, 5);

static inline bool control_stopping(struct control *c)
{
	return atomic_load_explicit(&c->reason, memory_order_acquire) != STOP_NONE;
}

#endif
