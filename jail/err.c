#include "err.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void emit(const char *step, const char *path, const char *reason)
{
	char line[8192];
	int n = snprintf(line, sizeof(line), "flint-jail: %s: %s%s%s\n", step, path ? path : "",
			 path ? ": " : "", reason);

	/* One write, so the line stays whole beside flint's own output. */
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

int jail_fail(const char *step, const char *path, int err)
{
	emit(step, path, strerror(-err));
	return err;
}

int jail_failf(int err, const char *step, const char *path, const char *fmt, ...)
{
	char reason[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	emit(step, path, reason);
	return err;
}

#ifdef JAIL_TEST_PAUSE
void jail_test_pause(const char *fmt, ...)
{
	char step[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(step, sizeof(step), fmt, ap);
	va_end(ap);
	emit("test pause", NULL, step);
	raise(SIGSTOP);
}
#endif
