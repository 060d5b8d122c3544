/* The host side of the serial console: line-buffered output to a file
 * descriptor (or nowhere), bounded by an optional rate limiter, and a watch
 * for the guest kernel's panic line. */
#ifndef FLINT_CONSOLE_H
#define FLINT_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ratelimit.h"
#include "core/util.h"

struct console;

/* out_fd -1 discards output (--console none) but still watches for panics. */
int console_create(struct console **out, int out_fd) WARN_UNUSED;
void console_destroy(struct console *c); /* flushes; NULL ok */

/* Bound the bytes that reach the output fd by one token bucket of bytes
 * (PUT /serial's rate_limiter), at time now (now_ns()). As Firecracker's
 * serial, output beyond the limit is dropped, not delayed: the guest never
 * waits for its console; console_dropped() counts what was lost. The panic
 * watch still sees every byte. A bucket with size or refill_time 0 limits
 * nothing. Call before any output. 0, or -EINVAL for a field over
 * INT64_MAX. */
int console_set_limit(struct console *c, const struct ratelimit_bucket_cfg *b,
		      uint64_t now) WARN_UNUSED;

/* serial_ops.out: take guest output. Writes whole lines at once. */
void console_output(void *ctx, const uint8_t *buf, size_t n);
/* The same at time now (console_output passes now_ns()), for tests. */
void console_output_at(struct console *c, const uint8_t *buf, size_t n, uint64_t now);

/* Bytes the rate limiter dropped so far. */
uint64_t console_dropped(struct console *c);
/* Write out a pending partial line (a prompt, say). */
void console_flush(struct console *c);

/* True once the guest printed "Kernel panic - not syncing"; copies that line
 * (without the newline) to line[0..len). */
bool console_panicked(struct console *c, char *line, size_t len);

/* True once, after the panic line, the guest printed the line Linux's
 * panic() ends its output with when it does not reset at once: "---[ end
 * Kernel panic - not syncing: ..." (no panic=: it then spins for ever) or
 * "Rebooting in N seconds.." (panic=N). The kernel has then said all it
 * will, and the VMM stops the VM itself instead of waiting. Any thread;
 * lock-free, so it can be asked after every write to the UART. */
bool console_panic_over(struct console *c);

#endif
