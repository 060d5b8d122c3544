#include "legacy/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* What Linux's panic() prints first, in every version since 2.6. */
#define PANIC_MARK "Kernel panic - not syncing"
/* What it prints last, after the stack trace, unless it resets at once
 * (panic=-1, which prints neither): without panic= (or with panic=0) the
 * end marker (since 3.11), after which
 * it spins with interrupts on, for ever; with panic=N > 0 the second line,
 * after which it waits N seconds and resets. */
#define PANIC_END_MARK	  "---[ end " PANIC_MARK
#define PANIC_REBOOT_MARK "Rebooting in "

struct console {
	int fd;
	bool own_fd;	   /* fd is a description of our own: closed at the end */
	bool use_send;	   /* a socket: send(MSG_DONTWAIT), its flags left alone */
	int restore_flags; /* -1, or the shared description's flags to put back */
	pthread_mutex_t lock;
	/* Output bytes: one bucket (bandwidth), ops unlimited. */
	struct ratelimit limit;
	bool limited;
	uint64_t dropped; /* by the rate limiter */
	uint64_t lost;	  /* for a reader that did not keep up, or went away */
	uint64_t written; /* bytes the output took */
	uint64_t errors;  /* writes that failed for another reason than a full reader */
	/* Bytes on their way out: a line being put together, and what the
	 * reader has not taken yet. Pages are touched only as far as output
	 * waits. */
	uint8_t *buf;
	size_t len;
	char line[256]; /* the current line, for the panic watch */
	size_t line_len;
	bool panicked;
	atomic_bool panic_over; /* the end marker followed the panic line */
	char panic_line[256];
};

/* Point c at fd so that no write waits for a reader: a vCPU writes the
 * guest's output, and one stalled in write() (a log collector that stopped
 * reading a pipe) could not be paused, nor could the main thread, which
 * flushes under the same lock, serve the API. A file never waits; a socket
 * takes send(MSG_DONTWAIT); a pipe or a terminal gets a description of
 * its own, opened non-blocking through /proc, so that whoever shares the
 * original (a shell's terminal, other writers of the pipe) keeps it as it
 * was. Without /proc (a jail that mounts none) the shared description is
 * made non-blocking, as Firecracker does with its stdout, and given its
 * flags back at the end. */
static void attach_output(struct console *c, int fd)
{
	struct stat st;
	char path[32];
	int flags = fcntl(fd, F_GETFL);

	c->fd = fd;
	c->restore_flags = -1;
	if (fd < 0 || flags < 0 || (flags & O_NONBLOCK) || fstat(fd, &st) < 0 ||
	    S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return;
	if (S_ISSOCK(st.st_mode)) {
		c->use_send = true;
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int own = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (own >= 0) {
		c->fd = own;
		c->own_fd = true;
	} else if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0) {
		c->restore_flags = flags;
	}
}

int console_create(struct console **out, int out_fd)
{
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (out_fd >= 0 && !(c->buf = malloc(CONSOLE_BACKLOG))) {
		free(c);
		return -ENOMEM;
	}
	attach_output(c, out_fd);
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

/* Write what waits, as far as the reader takes it now. What it cannot take
 * yet stays; a reader that is gone, or an output that fails, loses it. */
static void flush_locked(struct console *c)
{
	size_t off = 0;
	while (c->fd >= 0 && off < c->len) {
		ssize_t r = c->use_send ? send(c->fd, c->buf + off, c->len - off,
					       MSG_DONTWAIT | MSG_NOSIGNAL)
					: write(c->fd, c->buf + off, c->len - off);
		if (r > 0) {
			off += r;
			c->written += r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EPIPE, EIO, a zero-length write: not worth keeping. */
		c->errors++;
		c->lost += c->len - off;
		off = c->len;
	}
	if (off) {
		memmove(c->buf, c->buf + off, c->len - off);
		c->len -= off;
	}
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	flush_locked(c);
	c->lost += c->len;
	c->len = 0;
	pthread_mutex_unlock(&c->lock);
	if (c->own_fd)
		close(c->fd);
	else if (c->restore_flags >= 0)
		(void)fcntl(c->fd, F_SETFL, c->restore_flags);
	pthread_mutex_destroy(&c->lock);
	free(c->buf);
	free(c);
}

static void end_line(struct console *c)
{
	c->line[c->line_len] = '\0';
	c->line_len = 0;
	if (c->panicked) {
		if (strstr(c->line, PANIC_END_MARK) || strstr(c->line, PANIC_REBOOT_MARK))
			atomic_store(&c->panic_over, true);
	} else if (strstr(c->line, PANIC_MARK) && !strstr(c->line, PANIC_END_MARK)) {
		c->panicked = true;
		/* Drop the trailing \r the kernel's console adds. */
		size_t n = strcspn(c->line, "\r");
		c->line[n] = '\0';
		strcpy(c->panic_line, c->line);
	}
}

int console_set_limit(struct console *c, const struct ratelimit_bucket_cfg *b, uint64_t now)
{
	struct ratelimit_cfg cfg = {.bandwidth = *b};
	struct ratelimit rl;
	int r = ratelimit_init(&rl, &cfg, now);

	if (r < 0)
		return r;
	pthread_mutex_lock(&c->lock);
	c->limit = rl;
	c->limited = ratelimit_enabled(&rl);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void console_output(void *ctx, const uint8_t *buf, size_t n)
{
	struct console *c = ctx;

	/* limited is set before the vCPUs start and never changes after. */
	console_output_at(c, buf, n, c->limited ? now_ns() : 0);
}

void console_output_at(struct console *c, const uint8_t *buf, size_t n, uint64_t now)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n')
			end_line(c);
		else if (c->line_len < sizeof(c->line) - 1)
			c->line[c->line_len++] = buf[i];
		if (c->fd < 0)
			continue;
		/* Byte by byte, as the guest writes them (one per THR write). */
		if (c->limited && !ratelimit_consume(&c->limit, now, 1, 0)) {
			c->dropped++;
			continue;
		}
		if (c->len == CONSOLE_BACKLOG)
			flush_locked(c);
		if (c->len == CONSOLE_BACKLOG) {
			c->lost++; /* the reader is that far behind: newest first */
			continue;
		}
		c->buf[c->len++] = buf[i];
		if (buf[i] == '\n')
			flush_locked(c);
	}
	pthread_mutex_unlock(&c->lock);
}

void console_flush(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	flush_locked(c);
	pthread_mutex_unlock(&c->lock);
}

int console_waiting_fd(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	int fd = c->len ? c->fd : -1;
	pthread_mutex_unlock(&c->lock);
	return fd;
}

void console_drain(struct console *c, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	int fd;

	console_flush(c);
	while ((fd = console_waiting_fd(c)) >= 0) {
		uint64_t now = now_ns();
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (now >= deadline || poll(&p, 1, (int)((deadline - now + 999999) / 1000000)) == 0)
			break;
		console_flush(c);
	}
}

void console_counts(struct console *c, struct console_counts *out)
{
	pthread_mutex_lock(&c->lock);
	*out = (struct console_counts){.written = c->written,
				       .dropped = c->dropped,
				       .lost = c->lost,
				       .waiting = c->len,
				       .errors = c->errors};
	pthread_mutex_unlock(&c->lock);
}

bool console_panicked(struct console *c, char *line, size_t len)
{
	pthread_mutex_lock(&c->lock);
	bool p = c->panicked;
	if (p && len) {
		strncpy(line, c->panic_line, len - 1);
		line[len - 1] = '\0';
	}
	pthread_mutex_unlock(&c->lock);
	return p;
}

bool console_panic_over(struct console *c)
{
	return atomic_load(&c->panic_over);
}
