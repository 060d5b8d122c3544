#include "cmd/ctlfd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cmd/run.h"
#include "core/logger.h"
#include "core/seccomp.h"

/* A request line is a word: longer ones are refused whole. */
#define LINE_MAX_LEN 64

struct ctlfd {
	int fd, stop_fd;
	struct nb_out out; /* fd, written without waiting for the peer */
	const struct ctlfd_ops *ops;
	void *ctx;
	pthread_t thread;
	bool started;
};

bool ctlfd_answer(const char *line, const struct ctlfd_ops *ops, void *ctx, char *ans, size_t len)
{
	struct vm_err err = {0};
	uint64_t t0;

	if (!strcmp(line, "where")) {
		ops->where(ctx);
		snprintf(ans, len, "ok\n");
		return true;
	}
	if (strcmp(line, "reset") != 0) {
		snprintf(ans, len, "error unknown request '%.32s' (expected reset or where)\n",
			 line);
		return false;
	}
	t0 = now_ns();
	if (ops->reset(ctx, &err) < 0) {
		/* One line: a message never carries a newline on. */
		err.msg[strcspn(err.msg, "\n")] = '\0';
		snprintf(ans, len, "error %s\n", err.msg[0] ? err.msg : strerror(-err.code));
		return true;
	}
	snprintf(ans, len, "ok %llu\n", (unsigned long long)(now_ns() - t0) / 1000);
	return true;
}

static int reset_vm(void *ctx, struct vm_err *err)
{
	return vm_reset(ctx, err);
}

static void where_vm(void *ctx)
{
	vm_describe_at_stop(ctx);
}

static void stop_vm(void *ctx, int status, const char *why)
{
	vm_request_stop(ctx, status, why);
}

static const struct ctlfd_ops vm_ops = {.reset = reset_vm, .where = where_vm, .stop = stop_vm};

/* Wait until the fd takes data or ctlfd_stop asks: 0, or -ECANCELED. */
static int wait_writable(struct ctlfd *c)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = c->out.fd, .events = POLLOUT},
				      {.fd = c->stop_fd, .events = POLLIN}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents)
			return -ECANCELED;
		return 0;
	}
}

/* An answer, whole, however slowly the peer reads it, but never past a
 * ctlfd_stop: a peer that sends requests and reads no answers would
 * otherwise hold this thread in write(), and flint's exit in the join.
 * 0, or -errno (-ECANCELED: stopped). */
static int answer(struct ctlfd *c, const char *s, size_t n)
{
	while (n) {
		int r;
		/* A description that may block (nb_out's may_block) is
		 * written once poll says it takes data, a pipe's PIPE_BUF at
		 * most, which it then takes without waiting. */
		if (c->out.may_block && (r = wait_writable(c)) < 0)
			return r;
		ssize_t w =
		    nb_out_write(&c->out, s, c->out.may_block && n > PIPE_BUF ? PIPE_BUF : n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if ((r = wait_writable(c)) < 0)
				return r;
			continue;
		}
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Serve lines until the fd ends (then stop the VM) or ctlfd_stop. */
static void serve(struct ctlfd *c)
{
	char buf[LINE_MAX_LEN + 1], ans[sizeof(((struct vm_err *)0)->msg) + 16];
	size_t have = 0;
	bool skipping = false; /* the rest of a line too long */

	for (;;) {
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
				      {.fd = c->stop_fd, .events = POLLIN}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_err("--control-fd: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			return;
		ssize_t n = read(c->fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (n < 0)
				pr_err("--control-fd: %s", strerror(errno));
			break;
		}
		have += (size_t)n;
		char *nl;
		while ((nl = memchr(buf, '\n', have))) {
			size_t len = (size_t)(nl - buf);

			*nl = '\0';
			if (len && buf[len - 1] == '\r')
				buf[len - 1] = '\0';
			if (skipping)
				snprintf(ans, sizeof(ans), "error request longer than %d bytes\n",
					 LINE_MAX_LEN);
			else
				ctlfd_answer(buf, c->ops, c->ctx, ans, sizeof(ans));
			skipping = false;
			memmove(buf, nl + 1, have - len - 1);
			have -= len + 1;
			int r = answer(c, ans, strlen(ans));
			if (r == -ECANCELED)
				return;
			if (r < 0)
				pr_debug("--control-fd: answer not written: %s", strerror(-r));
		}
		if (have == sizeof(buf) - 1) {
			skipping = true;
			have = 0;
		}
	}
	pr_debug("--control-fd closed: stopping the VM");
	c->ops->stop(c->ctx, 0, NULL);
}

static void *thread_main(void *arg)
{
	struct ctlfd *c = arg;
	int r;

	logger_thread_name("control");
	/* An answer to a peer already gone (flint serve asks "where" and
	 * lets go at once) is EPIPE, not SIGPIPE: this thread may answer
	 * before vm_run ignores the signal. */
	sigset_t pipe;
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	if ((r = seccomp_enter(SECCOMP_CONTROL)) < 0) {
		c->ops->stop(c->ctx, EXIT_FLINT_ERROR, "seccomp filter for --control-fd failed");
		return NULL;
	}
	serve(c);
	return NULL;
}

int ctlfd_start(struct ctlfd **out, int fd, struct vm *vm)
{
	return ctlfd_start_ops(out, fd, &vm_ops, vm);
}

int ctlfd_start_ops(struct ctlfd **out, int fd, const struct ctlfd_ops *ops, void *ctx)
{
	struct ctlfd *c;
	int r, flags;

	*out = NULL;
	/* Not for the guest's children (none) nor any program flint runs. */
	if ((flags = fcntl(fd, F_GETFD)) < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
		r = -errno;
		pr_err("--control-fd %d: %s", fd, strerror(errno));
		close(fd);
		return r;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->stop_fd = -1;
	c->ops = ops;
	c->ctx = ctx;
	/* The answers never wait for the peer outside the poll that
	 * ctlfd_stop ends (a socket: send(MSG_DONTWAIT)). */
	nb_out_open(&c->out, fd);
	if ((c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = -errno;
		pr_err("eventfd: %s", strerror(errno));
		goto err;
	}
	if ((r = -thread_start_unsignalled(&c->thread, NULL, thread_main, c)) < 0) {
		pr_err("cannot start the --control-fd thread: %s", strerror(-r));
		goto err;
	}
	c->started = true;
	*out = c;
	return 0;
err:
	ctlfd_stop(c);
	return r;
}

void ctlfd_stop(struct ctlfd *c)
{
	if (!c)
		return;
	if (c->started) {
		if (eventfd_write(c->stop_fd, 1) < 0)
			pr_err("--control-fd: cannot stop its thread: %s", strerror(errno));
		pthread_join(c->thread, NULL);
	}
	close_fd(&c->stop_fd);
	nb_out_close(&c->out);
	close_fd(&c->fd);
	free(c);
}
