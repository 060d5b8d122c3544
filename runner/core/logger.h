/* The logger: Firecracker's human-readable log (--level, --log-path,
 * --show-level, --show-log-origin, PUT /logger, a config file's "logger"),
 * behind util.h's pr_err/pr_warn/pr_info/pr_debug/pr_trace.
 *
 * Until logger_configure() runs, lines go to stderr as they always did
 * ("flint: <message>"; util.h). Once configured:
 *  - a line passes when its level is within the configured level (Error <
 *    Warning < Info < Debug < Trace; Off passes none; --verbose lifts Info
 *    to Debug) and, with a module filter, when its source file's path
 *    starts with the module ("virtio/blk", "runner/core/vcpu"); an error
 *    line reaches stderr whether it passes or not;
 *  - with a log_path, it is written there in Firecracker's format:
 *        <local time, ns> [<instance id>:<thread>[:<LEVEL>][:<file>:<line>]] <message>
 *    e.g. "2025-01-30T10:02:03.123456789 [anonymous-instance:main:WARN] ...",
 *    LEVEL one of ERROR WARN INFO DEBUG TRACE as Firecracker prints them.
 *    Error lines, passed or not, are also printed on stderr as before, so
 *    that a flint that fails still says why where it was started
 *    (Firecracker, too, prints its fatal error on stderr at any level);
 *  - without a log_path, lines stay on stderr, "flint: <message>", with
 *    "[<LEVEL>:<file>:<line>] " before the message when show_level or
 *    show_log_origin ask for either part.
 * A line is one write() of at most 2 KiB (longer messages are cut), so the
 * lines of several threads do not interleave. Writing a line makes no
 * system call besides write (and clock_gettime where the vDSO cannot
 * answer): it runs under every thread's seccomp filter. A line that cannot
 * be written (a full pipe: the fd is non-blocking, as Firecracker's) is
 * counted, not retried (logger_missed). */
#ifndef FLINT_LOGGER_H
#define FLINT_LOGGER_H

#include <stddef.h>
#include <stdint.h>

#include "config/vm_config.h"
#include "core/util.h"

/* Firecracker's instance id when none is given (--id). */
#define LOGGER_DEFAULT_ID "anonymous-instance"

/* Apply l and the instance id (NULL: LOGGER_DEFAULT_ID; cut to 64 bytes)
 * to every later line, updating the configuration as Firecracker's
 * Logger::update does: the level every time, log_path, show_level,
 * show_log_origin and module only when l gives them (a module of "": no
 * filter), the earlier ones kept otherwise. log_path must exist, a regular
 * file or a named pipe (mkfifo): it is opened read-write (so that a pipe
 * with no reader yet opens at once and never raises SIGPIPE), appending,
 * non-blocking and close-on-exec, and never created, as Firecracker's.
 * Call before the threads install their seccomp filters (the open, and the
 * time zone loaded here). Returns 0, or -errno with err saying why
 * ("cannot open log_path '...': No such file or directory"), the earlier
 * configuration then unchanged. l is not kept. */
int logger_configure(const struct vmc_logger *l, const char *instance_id, char *err,
		     size_t errlen) WARN_UNUSED;

/* Back to the default (stderr, as before any logger_configure), closing
 * the log_path. For teardown and tests; no other thread may be logging. */
void logger_reset(void);

/* Name the calling thread in log lines (cut to 15 bytes, as the kernel's
 * thread names): each thread calls it first thing, e.g. "main",
 * "evloop", "vcpu 0", "api". A thread that never did shows "-". This
 * does not rename the thread for the kernel (pthread_setname_np). */
void logger_thread_name(const char *name);

/* The logger's counters since start, for the metrics' "logger" section:
 * lines not written (missed_log_count: to the log file, or to stderr once
 * pr_stderr_nonblocking made it drop what its reader does not take) and,
 * among those to the log file, the ones that failed with an error other
 * than a full pipe (log_fails). */
struct logger_counts {
	uint64_t missed_log_count;
	uint64_t log_fails;
};
void logger_counts(struct logger_counts *c);

#endif
