#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_verbose;
uint64_t launch_ns;

static void vlog(const char *fmt, va_list ap)
{
	char line[1024];

	/* One write per line so lines from several threads do not interleave. */
	int n = snprintf(line, sizeof(line), "flint: ");
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	size_t len = strnlen(line, sizeof(line) - 2);
	line[len++] = '\n';
	ssize_t r = write(STDERR_FILENO, line, len);
	(void)r;
}

void pr_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void pr_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void pr_debug(const char *fmt, ...)
{
	va_list ap;
	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t us_since_launch(void)
{
	return (now_ns() - launch_ns) / 1000;
}

int read_file(const char *path, uint64_t max, uint8_t **buf, uint64_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto err_close;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -EFBIG;
		goto err_close;
	}
	uint8_t *p = malloc(st.st_size ? st.st_size : 1);
	if (!p) {
		ret = -ENOMEM;
		goto err_close;
	}
	uint64_t got = 0;
	while (got < (uint64_t)st.st_size) {
		ssize_t r = read(fd, p + got, st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			free(p);
			goto err_close;
		}
		got += r;
	}
	close(fd);
	*buf = p;
	*len = got;
	return 0;

err_close:
	close(fd);
	return ret;
}
