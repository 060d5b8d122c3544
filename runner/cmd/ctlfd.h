/* flint --restore ... --control-fd N: a thread that reads requests, one a
 * line, on an inherited fd (a socketpair end that a supervisor such as
 * flint serve keeps) and answers each on the same fd:
 *
 *   "reset\n"  -> vm_reset: "ok <microseconds>\n" (the time from the request
 *                 read to the VM running again from its snapshot) or
 *                 "error <message>\n"
 *   "where\n"  -> vm_describe_at_stop: "ok\n"; when the VM stops, flint
 *                 logs where each vCPU was (a supervisor whose request the
 *                 guest did not answer asks it before letting the VM go)
 *   other      -> "error unknown request ...\n"
 *
 * The fd's end (EOF, or an error reading it) stops the VM, as if asked,
 * with status 0: the supervisor has gone or let the VM go. An answer the
 * peer does not read yet waits in poll, with ctlfd_stop, never in
 * write(). The thread applies the "control" seccomp filter (seccomp.h)
 * before it reads. */
#ifndef FLINT_CTLFD_H
#define FLINT_CTLFD_H

#include "core/util.h"
#include "core/vm.h"

struct ctlfd;

/* Take fd (it becomes close-on-exec, and is the thread's to close) and
 * start the thread that serves it for vm, which must outlive
 * ctlfd_stop. Before vm_run, on the main thread, so that the thread
 * inherits no seccomp filter. 0 or -errno (logged; fd is closed). */
int ctlfd_start(struct ctlfd **out, int fd, struct vm *vm) WARN_UNUSED;

/* End the thread (a request it is serving is answered first) and close
 * the fd. NULL ok. */
void ctlfd_stop(struct ctlfd *c);

/* What a request does to the VM: vm_reset and vm_describe_at_stop in
 * flint, stand-ins in tests; stop is vm_request_stop (the fd's end, a
 * filter that failed). */
struct ctlfd_ops {
	int (*reset)(void *ctx, struct vm_err *err);
	void (*where)(void *ctx);
	void (*stop)(void *ctx, int status, const char *why);
};

/* ctlfd_start with ops on ctx in place of the VM's. For tests. */
int ctlfd_start_ops(struct ctlfd **out, int fd, const struct ctlfd_ops *ops, void *ctx) WARN_UNUSED;

/* One request line (without its newline) answered into ans (a line with
 * its newline): what the thread does with each, through ops on ctx.
 * Returns false when the line asks nothing of the VM (an unknown request:
 * ans says so). For tests. */
bool ctlfd_answer(const char *line, const struct ctlfd_ops *ops, void *ctx, char *ans, size_t len);

#endif
