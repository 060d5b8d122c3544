/* flint-jail's error lines: "flint-jail: <step>: <path>: <reason>", so every
 * failure names the step it happened in and the file it concerns. */
#ifndef FLINT_JAIL_ERR_H
#define FLINT_JAIL_ERR_H

#include "core/util.h"

/* Print "flint-jail: STEP: PATH: strerror(-err)" (PATH may be NULL) and
 * return err, a negative errno. */
int jail_fail(const char *step, const char *path, int err);

/* The same with a reason of its own instead of strerror. Returns err. */
int jail_failf(int err, const char *step, const char *path, const char *fmt, ...) PRINTF(4, 5);

/* The race tests' build (-DJAIL_TEST_PAUSE, make $(BUILD)/jail/flint-jail-pause):
 * print "flint-jail: test pause: STEP" and stop with SIGSTOP, so that a
 * test can act as the jail's user between two steps and then continue the
 * jailer (tests/jail/races.sh). Nothing in the real jailer. */
#ifdef JAIL_TEST_PAUSE
void jail_test_pause(const char *fmt, ...) PRINTF(1, 2);
#else
static inline PRINTF(1, 2) void jail_test_pause(const char *fmt, ...)
{
	(void)fmt;
}
#endif

#endif
