/* Why and how the VM stops. Devices and vCPU threads request a stop; the
 * first request wins and later ones are ignored. Thread-safe. */
#ifndef FLINT_CONTROL_H
#define FLINT_CONTROL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/util.h"

/* flint's own exit statuses, beside the guest command's 0-255. */
#define EXIT_GUEST_CRASH 122 /* guest kernel panic, triple fault, KVM error */
#define EXIT_FLINT_ERROR 125 /* bad options, unreadable files, host KVM trouble */

enum stop_reason {
	STOP_NONE = 0,
	STOP_GUEST_RESET,  /* guest rebooted (i8042 reset, triple fault with reboot=t) */
	STOP_GUEST_EXIT,   /* guest init reported an exit status */
	STOP_GUEST_PANIC,  /* guest kernel panicked */
	STOP_HOST_SIGNAL,  /* SIGINT/SIGTERM on the host */
	STOP_FATAL,        /* KVM internal error, emulation failure, triple fault... */
};

struct control {
	_Atomic int reason; /* enum stop_reason */
	int status;         /* exit status flint returns; valid once reason != NONE */
	char msg[256];      /* message printed at exit, "" for none */
	/* Called once, by the first stop request, to make every vCPU leave KVM_RUN. */
	void (*kick)(void *ctx);
	void *kick_ctx;
	pthread_mutex_t lock;
};

void control_init(struct control *c, void (*kick)(void *ctx), void *kick_ctx);

/* Request a stop. Returns true if this request was the first (and so took
 * effect). fmt may be NULL for no message. */
bool control_request_stop(struct control *c, enum stop_reason r, int status, const char *fmt, ...)
	PRINTF(4, 5);

static inline bool control_stopping(struct control *c)
{
	return atomic_load_explicit(&c->reason, memory_order_acquire) != STOP_NONE;
}

#endif
