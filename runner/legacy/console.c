#include "legacy/console.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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
/* What flint's own init begins its messages with (rootfs/init.c). */
#define INIT_MARK  "flint-init: "
#define INIT_READY INIT_MARK "ready"

struct console {
	struct nb_out out; /* the output; fd -1 discards */
	pthread_mutex_t lock;
	/* Output bytes: one bucket (bandwidth), ops unlimited. */
	struct ratelimit limit;
	bool limited;
	uint64_t dropped; /* by the rate limiter */
	uint64_t lost;	  /* for a reader that did not keep up, or went away */
	uint64_t written; /* bytes the output took */
	uint64_t errors;  /* writes that failed for another reason than a full reader */
	/* Bytes on their way out, a ring of CONSOLE_BACKLOG from buf[head]:
	 * a line being put together, and what the reader has not taken yet.
	 * Its pages are touched only as far as output waits. */
	uint8_t *buf;
	size_t head, len;
	/* The reader refused the last write (EAGAIN): a vCPU does not try
	 * again, the control thread does once the output polls writable. */
	bool behind;
	char line[256]; /* the current line, for the panic watch */
	size_t line_len;
	bool panicked;
	atomic_bool panic_over; /* the end marker followed the panic line */
	char panic_line[256];
	char init_line[256]; /* the last of init's messages but its ready */
};

/* No write waits for the reader (nb_out, util.h): a vCPU writes the guest's
 * output, and one stalled in write() (a log collector that stopped reading
 * a pipe) could not be paused, nor could the control thread, which
 * flushes under the same lock, serve the API or stop on SIGTERM. */
int console_create(struct console **out, int out_fd)
{
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	nb_out_open(&c->out, out_fd);
	if (c->out.fd >= 0 && !(c->buf = malloc(CONSOLE_BACKLOG))) {
		nb_out_close(&c->out);
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

/* One write of what waits, from the ring's head up to its end or the
 * ring's wrap (writev is not in the vCPUs' seccomp table; the loop in
 * flush_locked writes the rest). An output that may block (nb_out's
 * may_block) is written only by the control thread, once poll says it
 * takes data, and a pipe's PIPE_BUF at a time, which such a pipe then
 * takes whole without waiting. */
static ssize_t write_some(struct console *c, bool control)
{
	size_t n = c->len < CONSOLE_BACKLOG - c->head ? c->len : CONSOLE_BACKLOG - c->head;

	if (c->out.may_block) {
		struct pollfd p = {.fd = c->out.fd, .events = POLLOUT};

		if (!control || poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)) {
			errno = EAGAIN;
			return -1;
		}
		if (n > PIPE_BUF)
			n = PIPE_BUF;
	}
	return nb_out_write(&c->out, c->buf + c->head, n);
}

/* Write what waits, as far as the reader takes it now. What it cannot take
 * yet stays; a reader that is gone, or an output that fails, loses it.
 * control: on the control thread (which may poll), not a vCPU's. */
static void flush_locked(struct console *c, bool control)
{
	if (c->behind && !control)
		return;
	c->behind = false;
	while (c->len) {
		ssize_t r = write_some(c, control);
		if (r > 0) {
			c->head = (c->head + (size_t)r) % CONSOLE_BACKLOG;
			c->len -= (size_t)r;
			c->written += (uint64_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->behind = true;
			return;
		}
		/* EPIPE, EIO, a zero-length write: not worth keeping. */
		c->errors++;
		c->lost += c->len;
		c->len = 0;
	}
	c->head = 0; /* empty: the next output starts at the pages in use */
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	flush_locked(c, true);
	c->lost += c->len;
	c->len = 0;
	pthread_mutex_unlock(&c->lock);
	nb_out_close(&c->out);
	pthread_mutex_destroy(&c->lock);
	free(c->buf);
	free(c);
}

/* Whether line starts with mark as the kernel prints it: at the line's
 * start, after its printk time ("[    1.234567] ") if it has one. Not
 * anywhere in a line: a guest program may print the words (a log it shows). */
static bool kernel_says(const char *line, const char *mark)
{
	if (*line == '[') {
		const char *end = strchr(line, ']');

		if (!end || end[1] != ' ')
			return false;
		line = end + 2;
	}
	return !strncmp(line, mark, strlen(mark));
}

static void end_line(struct console *c)
{
	c->line[c->line_len] = '\0';
	c->line_len = 0;
	if (c->panicked) {
		if (kernel_says(c->line, PANIC_END_MARK) || kernel_says(c->line, PANIC_REBOOT_MARK))
			atomic_store(&c->panic_over, true);
	} else if (!strncmp(c->line, INIT_MARK, strlen(INIT_MARK)) &&
		   strncmp(c->line, INIT_READY, strlen(INIT_READY))) {
		c->line[strcspn(c->line, "\r")] = '\0';
		ascii_printable(strcpy(c->init_line, c->line));
	} else if (kernel_says(c->line, PANIC_MARK)) {
		c->panicked = true;
		/* Drop the trailing \r the kernel's console adds; flint's own
		 * message carries the rest, so no byte the guest chose may
		 * steer the terminal or the log it lands in. */
		c->line[strcspn(c->line, "\r")] = '\0';
		ascii_printable(strcpy(c->panic_line, c->line));
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
		if (c->out.fd < 0)
			continue;
		/* Byte by byte, as the guest writes them (one per THR write). */
		if (c->limited && !ratelimit_consume(&c->limit, now, 1, 0)) {
			c->dropped++;
			continue;
		}
		if (c->len == CONSOLE_BACKLOG) {
			c->lost++; /* the reader is that far behind: newest first */
			continue;
		}
		c->buf[(c->head + c->len++) % CONSOLE_BACKLOG] = buf[i];
		if (buf[i] == '\n' || c->len == CONSOLE_BACKLOG)
			flush_locked(c, false);
	}
	pthread_mutex_unlock(&c->lock);
}

void console_flush(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	flush_locked(c, true);
	pthread_mutex_unlock(&c->lock);
}

int console_waiting_fd(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	int fd = c->len ? c->out.fd : -1;
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
	/* What the reader did not take in time is lost now, so that --stats
	 * and the last metrics line count it. */
	pthread_mutex_lock(&c->lock);
	c->lost += c->len;
	c->len = 0;
	pthread_mutex_unlock(&c->lock);
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

bool console_init_said(struct console *c, char *line, size_t len)
{
	pthread_mutex_lock(&c->lock);
	bool said = c->init_line[0];
	if (said && len) {
		strncpy(line, c->init_line, len - 1);
		line[len - 1] = '\0';
	}
	pthread_mutex_unlock(&c->lock);
	return said;
}

bool console_panic_over(struct console *c)
{
	return atomic_load(&c->panic_over);
}
