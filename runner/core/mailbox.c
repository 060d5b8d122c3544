#include "core/mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

/* One submitted action. It lives on the stack of the thread in
 * mailbox_call, which waits until done is set. */
struct request {
	int action;
	long arg;
	struct vm_err *err;
	bool done;
	struct request *next;
};

struct mailbox {
	pthread_mutex_t lock;
	pthread_cond_t answered; /* broadcast whenever a request is done */
	struct request *head, **tail;
	bool closed;
	struct vm_err close_err; /* the answer once closed */
	bool has_owner;		 /* the control thread is known */
	pthread_t owner;
	int fd; /* eventfd: requests waiting, or a wake-up */
};

int vm_err_set(struct vm_err *e, int code, const char *fmt, ...)
{
	e->code = code;
	e->msg[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

int mailbox_create(struct mailbox **out)
{
	struct mailbox *mb = calloc(1, sizeof(*mb));
	int r;

	*out = NULL;
	if (!mb)
		return -ENOMEM;
	mb->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mb->fd < 0) {
		r = -errno;
		free(mb);
		return r;
	}
	pthread_mutex_init(&mb->lock, NULL);
	pthread_cond_init(&mb->answered, NULL);
	mb->tail = &mb->head;
	*out = mb;
	return 0;
}

void mailbox_destroy(struct mailbox *mb)
{
	if (!mb)
		return;
	mailbox_close(mb, -ESHUTDOWN, "the VM is gone");
	pthread_cond_destroy(&mb->answered);
	pthread_mutex_destroy(&mb->lock);
	close_fd(&mb->fd);
	free(mb);
}

int mailbox_fd(const struct mailbox *mb)
{
	return mb->fd;
}

void mailbox_wake(struct mailbox *mb)
{
	if (eventfd_write(mb->fd, 1) < 0)
		pr_err("cannot wake the control thread: %s", strerror(errno));
}

int mailbox_call(struct mailbox *mb, int action, long arg, struct vm_err *err)
{
	struct request req = {.action = action, .arg = arg, .err = err};

	vm_err_set(err, 0, NULL);
	pthread_mutex_lock(&mb->lock);
	if (mb->has_owner && pthread_equal(mb->owner, pthread_self())) {
		pthread_mutex_unlock(&mb->lock);
		return vm_err_set(err, -EDEADLK, "the control thread cannot wait for itself");
	}
	if (mb->closed) {
		*err = mb->close_err;
		pthread_mutex_unlock(&mb->lock);
		return err->code;
	}
	*mb->tail = &req;
	mb->tail = &req.next;
	pthread_mutex_unlock(&mb->lock);
	mailbox_wake(mb);

	pthread_mutex_lock(&mb->lock);
	while (!req.done)
		pthread_cond_wait(&mb->answered, &mb->lock);
	pthread_mutex_unlock(&mb->lock);
	return err->code;
}

/* The first queued request, unlinked; NULL when none. Under the lock. */
static struct request *pop(struct mailbox *mb)
{
	struct request *req = mb->head;

	if (req) {
		mb->head = req->next;
		if (!mb->head)
			mb->tail = &mb->head;
		req->next = NULL;
	}
	return req;
}

unsigned mailbox_run(struct mailbox *mb, mailbox_exec_fn exec, void *ctx)
{
	eventfd_t count;
	unsigned n = 0;

	/* Take the wake-up before looking at the queue: a request queued after
	 * the look writes the fd again, so none is left without a wake-up. */
	if (eventfd_read(mb->fd, &count) < 0 && errno != EAGAIN)
		pr_err("control mailbox: %s", strerror(errno));
	pthread_mutex_lock(&mb->lock);
	if (!mb->has_owner) {
		mb->owner = pthread_self();
		mb->has_owner = true;
	}
	for (struct request *req; (req = pop(mb)); n++) {
		/* Unlocked while it runs: a pause waits for the vCPUs, and other
		 * threads may submit meanwhile. */
		pthread_mutex_unlock(&mb->lock);
		exec(ctx, req->action, req->arg, req->err);
		pthread_mutex_lock(&mb->lock);
		req->done = true;
		pthread_cond_broadcast(&mb->answered);
	}
	pthread_mutex_unlock(&mb->lock);
	return n;
}

void mailbox_close(struct mailbox *mb, int code, const char *msg)
{
	pthread_mutex_lock(&mb->lock);
	if (!mb->closed) {
		mb->closed = true;
		vm_err_set(&mb->close_err, code, msg ? "%s" : NULL, msg);
	}
	for (struct request *req; (req = pop(mb));) {
		*req->err = mb->close_err;
		req->done = true;
	}
	pthread_cond_broadcast(&mb->answered);
	pthread_mutex_unlock(&mb->lock);
}

bool mailbox_closed(struct mailbox *mb)
{
	pthread_mutex_lock(&mb->lock);
	bool c = mb->closed;
	pthread_mutex_unlock(&mb->lock);
	return c;
}
