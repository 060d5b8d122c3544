/* uffd_watch: see uffd_watch.h. */
#include "snapshot/uffd_watch.h"

#include <errno.h>
#include <string.h>

#include "core/util.h"
#include "snapshot/uffd.h"

void uffd_watch_init(struct uffd_watch *w, int uffd, int conn, const struct gmem *g,
		     void (*lost)(void *ctx, const char *why), void *ctx)
{
	*w = (struct uffd_watch){.state = conn >= 0 ? UFFD_HANDLER : UFFD_NONE,
				 .uffd = uffd,
				 .conn = conn,
				 .mem = g,
				 .lost = lost,
				 .ctx = ctx};
}

struct pollfd uffd_watch_pollfd(const struct uffd_watch *w)
{
	if (w->state == UFFD_HANDLER)
		return (struct pollfd){.fd = w->conn, .events = POLLRDHUP};
	if (w->state == UFFD_QUIET || w->state == UFFD_ORPHAN)
		return (struct pollfd){.fd = w->uffd, .events = POLLIN};
	return (struct pollfd){.fd = -1};
}

bool uffd_watch_due(const struct uffd_watch *w)
{
	return w->state == UFFD_UNREAD;
}

/* O_NONBLOCK set again (uffd_watch.h): true, or false with the watch
 * ended (NONE) when it cannot be. */
static bool nonblock_again(struct uffd_watch *w)
{
	int r = uffd_nonblock(w->uffd);

	if (r < 0) {
		pr_err("the Uffd backend's userfaultfd: %s; a page the Uffd handler has not "
		       "served will hang the VM",
		       strerror(-r));
		w->state = UFFD_NONE;
	}
	return r == 0;
}

void uffd_watch_step(struct uffd_watch *w, short revents)
{
	struct pollfd p = {.fd = w->uffd, .events = POLLIN};
	char why[128];
	int r;

	switch (w->state) {
	case UFFD_HANDLER:
		if (!(revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return;
		pr_warn("the Uffd handler closed its connection: if nobody reads the userfaultfd, "
			"the VM stops at the first page it needs that the handler has not served");
		/* A fault the handler read but did not answer before it died
		 * waits for ever with no event left: woken, it faults anew.
		 * The handler's O_NONBLOCK is this file's too (poll needs it). */
		if ((r = uffd_wake_all(w->uffd, w->mem)) < 0 || (r = uffd_nonblock(w->uffd)) < 0)
			pr_err("the Uffd backend's userfaultfd: %s", strerror(-r));
		w->state = UFFD_QUIET;
		return;
	case UFFD_QUIET:
		/* POLLERR alone: made blocking, the file says nothing else. */
		if ((revents & POLLERR) && !nonblock_again(w))
			return;
		if (revents & POLLIN) {
			w->state = UFFD_UNREAD;
			w->due = now_ns() + UFFD_UNREAD_NS;
		}
		return;
	case UFFD_UNREAD:
		if (now_ns() < w->due || !nonblock_again(w))
			return;
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) {
			w->state = UFFD_QUIET; /* read: somebody serves it */
			return;
		}
		pr_warn("nobody has read the userfaultfd for 1 s: flint reads it from now on");
		w->state = UFFD_ORPHAN;
		__attribute__((fallthrough)); /* to read that event */
	case UFFD_ORPHAN:
		/* A range removed (a balloon's inflation, an unplug) needs no
		 * answer: its remover goes on once the event is read. A page
		 * fault has none: closing the userfaultfd would give the guest
		 * zeros for its data. */
		if ((r = uffd_orphan_event(w->uffd, w->mem, why, sizeof(why))) < 0) {
			pr_err("reading the userfaultfd: %s; a page the Uffd handler has not "
			       "served will hang the VM",
			       strerror(-r));
			w->state = UFFD_NONE;
		} else if (r > 0) {
			w->lost(w->ctx, why);
		}
		return;
	case UFFD_NONE:
		return;
	}
}

void uffd_watch_poll(struct uffd_watch *w, int ms)
{
	struct pollfd p = uffd_watch_pollfd(w);
	int n = poll(&p, 1, ms);

	if (n > 0 || uffd_watch_due(w))
		uffd_watch_step(w, n > 0 ? p.revents : 0);
}

bool uffd_watch_wait(struct uffd_watch *w, bool (*done)(void *ctx), void *ctx)
{
	uint64_t start = now_ns(), orphan_at = 0, woke_at = start, unread_at = 0;
	bool pending = false; /* an event seen unread since the start */

	while (!done(ctx)) {
		uint64_t now = now_ns();

		if (w->state == UFFD_NONE)
			return true; /* no Uffd backend, or unreadable: the plain join */
		if (w->state == UFFD_ORPHAN && !orphan_at)
			orphan_at = now;
		if (orphan_at && now - orphan_at >= UFFD_UNREAD_NS)
			return false;
		if (pending && now - start >= UFFD_STOP_MAX_NS) {
			pr_warn("the VM's threads have not ended in %llu s, and page faults came "
				"meanwhile: the Uffd handler reads them and does not answer",
				(unsigned long long)(UFFD_STOP_MAX_NS / UFFD_UNREAD_NS));
			return false;
		}
		/* Each second the faults are woken, so that one a handler read
		 * and left comes again: not while one waits unread (the rule
		 * below times it, and a wake would take it back), nor in a
		 * connected handler's first seconds, in which one that serves
		 * answers what comes (a wake would hand it each fault twice). */
		if (w->state != UFFD_ORPHAN && !unread_at && now - woke_at >= UFFD_UNREAD_NS &&
		    (w->state != UFFD_HANDLER || now - start >= UFFD_HANDLER_UNREAD_NS)) {
			if (uffd_wake_all(w->uffd, w->mem) < 0)
				return true; /* cannot: the plain join */
			woke_at = now;
		}
		/* Connected, the handler reads the userfaultfd; the watch only
		 * looks whether an event waits (p[1]). */
		struct pollfd p[2] = {
		    uffd_watch_pollfd(w),
		    {.fd = w->state == UFFD_HANDLER ? w->uffd : -1, .events = POLLIN}};
		int n = poll(p, 2, 20);

		if (n > 0 && p[0].fd == w->uffd && (p[0].revents & POLLIN))
			pending = true;
		if ((p[1].revents & POLLERR) && !nonblock_again(w))
			continue;
		if (p[1].revents & POLLIN) {
			pending = true;
			if (!unread_at)
				unread_at = now;
		} else {
			unread_at = 0;
		}
		if (unread_at && now - unread_at >= UFFD_HANDLER_UNREAD_NS) {
			pr_warn("the Uffd handler has left an event unread for %llu s while the VM "
				"stops: flint reads the userfaultfd from now on",
				(unsigned long long)(UFFD_HANDLER_UNREAD_NS / UFFD_UNREAD_NS));
			w->state = UFFD_ORPHAN;
			uffd_watch_step(w, POLLIN);
			continue;
		}
		if ((n > 0 && p[0].revents) || uffd_watch_due(w))
			uffd_watch_step(w, p[0].revents);
	}
	return true;
}
