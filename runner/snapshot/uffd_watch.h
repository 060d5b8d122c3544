/* uffd_watch: the Uffd backend (uffd.h) as the VM's main thread watches it
 * (vm.c), from the restore to the threads' end.
 *
 * States. HANDLER: the handler's connection, for its hang-up. Then QUIET:
 * the userfaultfd, for an event; UNREAD: one came, unread, at `due` minus
 * UFFD_UNREAD_NS; if it is still unread at `due`, nobody reads the
 * userfaultfd (a handler may hang up and serve on: until then flint reads
 * none of its events), and from then on ORPHAN: flint reads each event
 * itself (uffd_orphan_event), and a page fault among them is one nothing
 * can answer. NONE: no Uffd backend, or one that cannot be watched.
 *
 * The handler shares the userfaultfd's open file, and with it O_NONBLOCK:
 * should it clear the flag, a poll says POLLERR at once; the watch sets it
 * again and looks anew. */
#ifndef FLINT_UFFD_WATCH_H
#define FLINT_UFFD_WATCH_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/gmem.h"

/* An event nobody has read for this long: nobody reads the userfaultfd. */
#define UFFD_UNREAD_NS 1000000000ull
/* While the threads end (uffd_watch_wait): an event a connected handler
 * leaves unread this long is one it will not read (a few seconds: a
 * handler that serves reads at once, what it answers may take longer). */
#define UFFD_HANDLER_UNREAD_NS (3 * UFFD_UNREAD_NS)
/* The threads' end, once page faults came meanwhile: a handler that reads
 * them and never answers keeps them waiting for ever, though each second
 * they are woken to come again; one that serves answers within
 * milliseconds. */
#define UFFD_STOP_MAX_NS (10 * UFFD_UNREAD_NS)

enum uffd_state { UFFD_NONE, UFFD_HANDLER, UFFD_QUIET, UFFD_UNREAD, UFFD_ORPHAN };

struct uffd_watch {
	enum uffd_state state;
	uint64_t due;
	int uffd, conn;
	const struct gmem *mem;
	/* A thread waits on a page fault nothing can answer (why names its
	 * address): the VM must stop. */
	void (*lost)(void *ctx, const char *why);
	void *ctx;
};

/* w watching the userfaultfd uffd, registered over g, and the handler's
 * connection conn (HANDLER; NONE when conn is -1). The fds stay the
 * caller's. */
void uffd_watch_init(struct uffd_watch *w, int uffd, int conn, const struct gmem *g,
		     void (*lost)(void *ctx, const char *why), void *ctx);

/* The fd and events a poll waits on for w (fd -1: none). */
struct pollfd uffd_watch_pollfd(const struct uffd_watch *w);

/* Whether uffd_watch_step must run even when that poll says nothing (an
 * unread event's second is counting). */
bool uffd_watch_due(const struct uffd_watch *w);

/* Take what that poll said (revents, 0 for nothing). */
void uffd_watch_step(struct uffd_watch *w, short revents);

/* That poll, waiting up to ms milliseconds, and its step: for a thread
 * that waits on another in slices (a pause of the event loop). */
void uffd_watch_poll(struct uffd_watch *w, int ms);

/* The VM's threads ending with the Uffd backend: wait until done(ctx),
 * watching on. A thread faulting on a page the handler never serves waits
 * for ever (a vCPU's fault taken in KVM ignores the stop's kick before
 * Linux 6.2; a device's memcpy always), and only the process's exit ends
 * it. Zeros would free it, but the guest or a device could pass them on
 * (to a disk). So the watch goes on while the threads end: a handler that
 * dies now is seen; one that hung up and serves on answers within the
 * unread rule's second; each second the faults are woken (a connected
 * handler's from UFFD_HANDLER_UNREAD_NS on, and not while an event waits
 * unread), so that one the handler read and left comes again; a removal's
 * event is read. A connected handler is not read for, but an event it
 * leaves unread for UFFD_HANDLER_UNREAD_NS makes the watch ORPHAN. False,
 * and the caller gives the threads still running up, once ORPHAN for a
 * second, or once UFFD_STOP_MAX_NS passed since the stop began with an
 * event seen unread at any time meanwhile (a fault read and left each
 * time; a thread then held up by other work too is given up with them);
 * threads held up elsewhere with no fault seen are waited for as by a
 * plain join. True when done, or at once for NONE or a userfaultfd that
 * cannot be woken (a plain join then). */
bool uffd_watch_wait(struct uffd_watch *w, bool (*done)(void *ctx), void *ctx);

#endif
