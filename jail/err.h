/* flint-jail's error lines: "flint-jail: <step>: <path>: <reason>", so every
 * failure names the step it happened in and the file it concerns. */
#ifndef FLINT_JAIL_ERR_H
#define FLINT_JAIL_ERR_H

#include "util.h"

/* Print "flint-jail: STEP: PATH: strerror(-err)" (PATH may be NULL) and
 * return err, a negative errno. */
int jail_fail(const char *step, const char *path, int err);

/* The same with a reason of its own instead of strerror. Returns err. */
int jail_failf(int err, const char *step, const char *path, const char *fmt, ...) PRINTF(4, 5);

#endif
