/* The host side of the serial console: line-buffered output to a file
 * descriptor (or nowhere), bounded by an optional rate limiter, and a watch
 * for the guest kernel's panic line. No write waits for the output's
 * reader: what it has not taken yet waits in a backlog of CONSOLE_BACKLOG
 * bytes, and output beyond that is lost and counted, as Firecracker's
 * serial drops what a full stdout refuses. */
#ifndef FLINT_CONSOLE_H
#define FLINT_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ratelimit.h"
#include "core/util.h"

struct console;

#define CONSOLE_BACKLOG (256u << 10)

/* out_fd -1 (or one not open) discards output (--console none) but still
 * watches for panics. out_fd is written through an nb_out (util.h): a pipe
 * or terminal through a non-blocking description of the console's own;
 * out_fd stays the caller's, its flags as they were. */
int console_create(struct console **out, int out_fd) WARN_UNUSED;
/* Writes what the reader takes at once, then frees; NULL ok. */
void console_destroy(struct console *c);

/* Bound the bytes that reach the output fd by one token bucket of bytes
 * (PUT /serial's rate_limiter), at time now (now_ns()). As Firecracker's
 * serial, output beyond the limit is dropped, not delayed: the guest never
 * waits for its console; console_counts() counts what was dropped. The panic
 * watch still sees every byte. A bucket with size or refill_time 0 limits
 * nothing. Call before any output. 0, or -EINVAL for a field over
 * INT64_MAX. */
int console_set_limit(struct console *c, const struct ratelimit_bucket_cfg *b,
		      uint64_t now) WARN_UNUSED;

/* serial_ops.out: take guest output. Writes whole lines at once. */
void console_output(void *ctx, const uint8_t *buf, size_t n);
/* The same at time now (console_output passes now_ns()), for tests. */
void console_output_at(struct console *c, const uint8_t *buf, size_t n, uint64_t now);

struct console_counts {
	uint64_t written; /* bytes the output took */
	uint64_t dropped; /* bytes the rate limiter dropped */
	uint64_t lost;	  /* bytes lost: the backlog was full, or the output failed */
	uint64_t waiting; /* bytes in the backlog now */
	uint64_t errors;  /* writes that failed (not for a full reader) */
};
void console_counts(struct console *c, struct console_counts *out);

/* Write out what waits, as far as the reader takes it now: a pending
 * partial line (a prompt, say), and the backlog. Never blocks. */
void console_flush(struct console *c);
/* The fd to poll for POLLOUT while output waits for the reader, else -1. */
int console_waiting_fd(struct console *c);
/* At the end: flush, waiting up to timeout_ms for a slow reader. */
void console_drain(struct console *c, int timeout_ms);

/* True once the guest printed "Kernel panic - not syncing"; copies that line
 * (without the newline) to line[0..len). */
bool console_panicked(struct console *c, char *line, size_t len);

/* True once flint's init (rootfs/init.c) said something besides that it
 * is ready, a line beginning "flint-init: " (why it could not mount an
 * image, say); copies the last such line, made printable, to line[0..len).
 * A guest program could print one too: ask only before any ran. */
bool console_init_said(struct console *c, char *line, size_t len);

/* True once, after the panic line, the guest printed the line Linux's
 * panic() ends its output with when it does not reset at once: "---[ end
 * Kernel panic - not syncing: ..." (no panic=: it then spins for ever) or
 * "Rebooting in N seconds.." (panic=N). The kernel has then said all it
 * will, and the VMM stops the VM itself instead of waiting. Any thread;
 * lock-free, so it can be asked after every write to the UART. */
bool console_panic_over(struct console *c);

#endif
