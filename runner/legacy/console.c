#include "legacy/console.h"

#include <errno.h>
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

struct console {
	int fd;
	pthread_mutex_t lock;
	/* Output bytes: one bucket (bandwidth), ops unlimited. */
	struct ratelimit limit;
	bool limited;
	uint64_t dropped;
	uint8_t buf[4096];
	size_t len;
	char line[256]; /* the current line, for the panic watch */
	size_t line_len;
	bool panicked;
	atomic_bool panic_over; /* the end marker followed the panic line */
	char panic_line[256];
};

int console_create(struct console **out, int out_fd)
{
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = out_fd;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

static void flush_locked(struct console *c)
{
	size_t off = 0;
	while (c->fd >= 0 && off < c->len) {
		ssize_t r = write(c->fd, c->buf + off, c->len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* the reader went away; drop output rather than stall */
		off += r;
	}
	c->len = 0;
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	console_flush(c);
	pthread_mutex_destroy(&c->lock);
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
		c->buf[c->len++] = buf[i];
		if (buf[i] == '\n' || c->len == sizeof(c->buf))
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

uint64_t console_dropped(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t d = c->dropped;
	pthread_mutex_unlock(&c->lock);
	return d;
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
