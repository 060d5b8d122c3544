/* The host side of the serial console: line-buffered output to a file
 * descriptor (or nowhere), and a watch for the guest kernel's panic line. */
#ifndef FLINT_CONSOLE_H
#define FLINT_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

struct console;

/* out_fd -1 discards output (--console none) but still watches for panics. */
int console_create(struct console **out, int out_fd) WARN_UNUSED;
void console_destroy(struct console *c); /* flushes; NULL ok */

/* serial_ops.out: take guest output. Writes whole lines at once. */
void console_output(void *ctx, const uint8_t *buf, size_t n);
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
