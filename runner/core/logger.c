#include "core/logger.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert((int)PR_ERROR == (int)VMC_LOG_ERROR && (int)PR_WARN == (int)VMC_LOG_WARNING &&
		   (int)PR_INFO == (int)VMC_LOG_INFO && (int)PR_DEBUG == (int)VMC_LOG_DEBUG &&
		   (int)PR_TRACE == (int)VMC_LOG_TRACE,
	       "util.h's pr_level follows vm_config.h's vmc_log_level");

#define LINE_MAX_BYTES 2048
#define ID_MAX	       64

/* The configuration every line reads, and the counters: under `lock`,
 * which a line holds from its filter to its write. */
static struct {
	pthread_mutex_t lock;
	int fd; /* log_path, or -1: stderr */
	enum vmc_log_level level;
	bool show_level;
	bool show_origin;
	char *module; /* NULL: no filter */
	char id[ID_MAX + 1];
	struct logger_counts counts;
} lg = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .level = VMC_LOG_INFO};

static __thread char thread_name[16];

/* Firecracker's names of the levels in its lines (Rust's log::Level). */
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

static bool passes(enum pr_level level, const char *file)
{
	enum vmc_log_level max = lg.level;

	if (max == VMC_LOG_OFF)
		return false;
	if (max == VMC_LOG_INFO && log_verbose)
		max = VMC_LOG_DEBUG;
	if ((int)level > (int)max)
		return false;
	return !lg.module || (file && strncmp(file, lg.module, strlen(lg.module)) == 0);
}

/* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn" in local time, as Firecracker's
 * timestamps. localtime_r makes no system call once the time zone is
 * loaded (tzset() in logger_configure). */
static int timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	return snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09ld", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

static void put(char *buf, size_t len, size_t *n, const char *fmt, ...) PRINTF(4, 5);
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;

	if (*n >= len)
		return;
	va_start(ap, fmt);
	int r = vsnprintf(buf + *n, len - *n, fmt, ap);
	va_end(ap);
	if (r > 0)
		*n = *n + r < len ? *n + r : len - 1;
}

static void write_file(enum pr_level level, const char *file, int line, const char *fmt, va_list ap)
{
	char buf[LINE_MAX_BYTES];
	size_t n = 0;

	n = timestamp(buf, sizeof(buf));
	put(buf, sizeof(buf), &n, " [%s:%s", lg.id, thread_name[0] ? thread_name : "-");
	if (lg.show_level)
		put(buf, sizeof(buf), &n, ":%s", level_tags[level]);
	if (lg.show_origin)
		put(buf, sizeof(buf), &n, ":%s:%d", file ? file : "?", line);
	put(buf, sizeof(buf), &n, "] ");
	if (n < sizeof(buf) - 1) {
		int r = vsnprintf(buf + n, sizeof(buf) - 1 - n, fmt, ap);
		if (r > 0)
			n = n + r < sizeof(buf) - 1 ? n + r : sizeof(buf) - 2;
	}
	buf[n++] = '\n';

	ssize_t w = write(lg.fd, buf, n);
	if (w != (ssize_t)n) {
		lg.counts.missed_log_count++;
		if (w >= 0 || errno != EAGAIN)
			lg.counts.log_fails++;
	}
}

/* A line on stderr, "[<LEVEL>:<file>:<line>] " before it when show_level
 * or show_log_origin ask for either part. */
static void write_stderr(enum pr_level level, const char *file, int line, const char *fmt,
			 va_list ap)
{
	char tag[256];
	size_t n = 0;

	if (!lg.show_level && !lg.show_origin) {
		pr_stderr("", fmt, ap);
		return;
	}
	put(tag, sizeof(tag), &n, "[%s", lg.show_level ? level_tags[level] : "");
	if (lg.show_origin)
		put(tag, sizeof(tag), &n, "%s%s:%d", lg.show_level ? ":" : "", file ? file : "?",
		    line);
	put(tag, sizeof(tag), &n, "] ");
	pr_stderr(tag, fmt, ap);
}

/* The level and the module filter choose what is logged; an error line
 * reaches stderr whatever they say, so that a flint that fails says why
 * where it was started (Firecracker prints its fatal error on stderr
 * besides logging it, at any level). */
static void sink(enum pr_level level, const char *file, int line, const char *fmt, va_list ap)
{
	pthread_mutex_lock(&lg.lock);
	bool pass = passes(level, file);
	if (lg.fd >= 0) {
		if (pass) {
			va_list copy;
			va_copy(copy, ap);
			write_file(level, file, line, fmt, copy);
			va_end(copy);
		}
		if (level == PR_ERROR)
			pr_stderr("", fmt, ap);
	} else if (pass || level == PR_ERROR) {
		write_stderr(level, file, line, fmt, ap);
	}
	pthread_mutex_unlock(&lg.lock);
}

int logger_configure(const struct vmc_logger *l, const char *instance_id, char *err, size_t errlen)
{
	char *module = NULL;
	int fd = -1;

	if ((unsigned)l->level > VMC_LOG_OFF) {
		snprintf(err, errlen, "invalid log level %d", (int)l->level);
		return -EINVAL;
	}
	if (l->module && l->module[0] && !(module = strdup(l->module))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (l->log_path) {
		/* Read-write: a named pipe then opens without a reader and
		 * writing to it never gets EPIPE (Firecracker's reason too);
		 * O_APPEND where Firecracker writes from offset 0, so that a
		 * reused file keeps whole lines. Not O_CREAT: the file or pipe
		 * must exist, as Firecracker's logger wants. */
		fd = open(l->log_path, O_RDWR | O_APPEND | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			snprintf(err, errlen, "cannot open log_path '%s': %s", l->log_path,
				 strerror(e));
			free(module);
			return -e;
		}
	}
	/* Load the time zone now: the first localtime_r would otherwise read
	 * /etc/localtime, under a seccomp filter that has no open. */
	tzset();

	/* As Firecracker's Logger::update: the level every time, the rest
	 * only when given. */
	pthread_mutex_lock(&lg.lock);
	lg.level = l->level;
	if (l->log_path) {
		close_fd(&lg.fd);
		lg.fd = fd;
	}
	if (l->has_show_level)
		lg.show_level = l->show_level;
	if (l->has_show_log_origin)
		lg.show_origin = l->show_log_origin;
	if (l->module) {
		free(lg.module);
		lg.module = module;
	}
	snprintf(lg.id, sizeof(lg.id), "%s",
		 instance_id && instance_id[0] ? instance_id : LOGGER_DEFAULT_ID);
	pthread_mutex_unlock(&lg.lock);
	pr_set_sink(sink);
	return 0;
}

void logger_reset(void)
{
	pr_set_sink(NULL);
	pthread_mutex_lock(&lg.lock);
	close_fd(&lg.fd);
	lg.level = VMC_LOG_INFO;
	lg.show_level = lg.show_origin = false;
	free(lg.module);
	lg.module = NULL;
	lg.id[0] = '\0';
	pthread_mutex_unlock(&lg.lock);
}

void logger_thread_name(const char *name)
{
	snprintf(thread_name, sizeof(thread_name), "%s", name ? name : "");
}

void logger_counts(struct logger_counts *c)
{
	pthread_mutex_lock(&lg.lock);
	*c = lg.counts;
	pthread_mutex_unlock(&lg.lock);
	/* Lines stderr's reader did not take (pr_stderr_nonblocking). */
	c->missed_log_count += pr_stderr_missed();
}
