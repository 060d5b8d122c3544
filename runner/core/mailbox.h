/* The control mailbox: actions submitted from any thread (the API thread,
 * tests) and executed one at a time, in order, by the VM's control thread,
 * each answered with a result and a message (struct vm_err) to the thread
 * that asked, which waits for it.
 *
 * The control thread polls mailbox_fd(). Stop requests from vCPU, event
 * loop and relay threads do not queue here: they must never wait for the
 * control thread, so they go through control.h's latch, whose kick wakes
 * the same fd (mailbox_wake). One wake-up, one thread that acts on it.
 *
 * The mailbox knows nothing of what an action does: it carries an action
 * number and an argument to the executor the control thread passes to
 * mailbox_run. */
#ifndef FLINT_MAILBOX_H
#define FLINT_MAILBOX_H

#include <stdbool.h>

#include "core/util.h"

/* The VM's one error type: what an action (or, later, an API request)
 * answers. code is 0 or -errno; msg says why in words a user can act on,
 * "" when there is nothing to say. */
struct vm_err {
	int code;
	char msg[512];
};

/* Set e to code and the formatted message (fmt NULL: ""). Returns code. */
int vm_err_set(struct vm_err *e, int code, const char *fmt, ...) PRINTF(3, 4);

struct mailbox;

/* Executes one action on the control thread: fills err (it starts as {0,
 * ""}) and returns nothing; the mailbox hands err to the caller. */
typedef void (*mailbox_exec_fn)(void *ctx, int action, long arg, struct vm_err *err);

/* An open, empty mailbox. 0 or -errno. */
int mailbox_create(struct mailbox **out) WARN_UNUSED;

/* Answer what is still queued as mailbox_close would and free the mailbox.
 * No thread may be inside mailbox_call any more. NULL ok. */
void mailbox_destroy(struct mailbox *mb);

/* Readable (POLLIN) when an action waits or mailbox_wake was called. */
int mailbox_fd(const struct mailbox *mb);

/* Submit an action and wait for its answer: returns err->code, err filled
 * in. Any thread but the control thread, which gets -EDEADLK at once (it
 * would wait for itself). A closed mailbox answers at once with the code
 * and message it was closed with. */
int mailbox_call(struct mailbox *mb, int action, long arg, struct vm_err *err);

/* Control thread: take the wake-up, then execute every queued action in
 * submission order through exec, answering each as it is done. Actions
 * submitted meanwhile run in the same call. Returns how many ran. The
 * first call makes the calling thread the control thread. */
unsigned mailbox_run(struct mailbox *mb, mailbox_exec_fn exec, void *ctx);

/* Make mailbox_fd readable, to wake the control thread (a stop request).
 * Any thread; takes no lock. */
void mailbox_wake(struct mailbox *mb);

/* Refuse actions from now on: those queued and not yet executed, and every
 * later call, are answered with code (a -errno) and msg (NULL: ""). An
 * action being executed still gets its own answer. Idempotent; the first
 * close's answer stays. Any thread. */
void mailbox_close(struct mailbox *mb, int code, const char *msg);

/* True once mailbox_close was called. */
bool mailbox_closed(struct mailbox *mb);

#endif
