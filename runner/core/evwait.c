/* Kicks and limiter waits on the event loop; see evwait.h. */
#include "core/evwait.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>

int ev_kick_init(struct ev_kick *k, void (*done)(struct ev_op *, int))
{
	k->op = (struct ev_op){.done = done};
	k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return k->fd < 0 ? -errno : 0;
}

void ev_kick_close(struct ev_kick *k)
{
	close_fd(&k->fd);
}

int ev_kick_arm(struct ev_kick *k, struct evloop *l)
{
	if (evloop_pending(&k->op))
		return 0;
	return evloop_poll(l, &k->op, k->fd, POLLIN);
}

int ev_kick_send(struct ev_kick *k)
{
	if (eventfd_write(k->fd, 1) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

int ev_kick_take(struct ev_kick *k, int res)
{
	eventfd_t v;

	if (res < 0)
		return res;
	/* It can only fail with EAGAIN: a readiness reported twice for one
	 * write, already read. */
	(void)eventfd_read(k->fd, &v);
	return 0;
}

void ev_wait_init(struct ev_wait *w, void (*done)(struct ev_op *, int))
{
	*w = (struct ev_wait){.op = {.done = done}};
}

int ev_wait_arm(struct ev_wait *w, struct evloop *l, uint64_t ns)
{
	int err;

	if (w->armed)
		return 0;
	if (!ns)
		ns = 1; /* passes now: let the loop come round once */
	if (ns > (uint64_t)INT64_MAX)
		ns = INT64_MAX;
	evloop_ts_ns(&w->ts, ns);
	err = evloop_timeout(l, &w->op, &w->ts);
	if (err == 0)
		w->armed = true;
	return err;
}

bool ev_wait_done(struct ev_wait *w, int res)
{
	bool again = res != -ECANCELED || w->recheck;

	w->armed = w->recheck = false;
	return again;
}

bool ev_wait_recheck(struct ev_wait *w, struct evloop *l)
{
	if (!w->armed)
		return false;
	/* Armed, the op is pending (even one run out, until its handler
	 * starts), so a cancel fails only when the loop has no room to take
	 * it: then the device looks now, and its timer runs out in time. */
	if (!w->recheck && evloop_cancel(l, &w->op) == 0)
		w->recheck = true;
	return w->recheck;
}
