#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

int log_verbose;
uint64_t launch_ns;

static pr_sink_fn *log_sink;
/* pr_stderr_nonblocking: stderr through an nb_out, set once before the
 * threads start; the lines it dropped. */
static struct nb_out err_out = {.fd = -1};
static bool err_nonblocking;
static _Atomic uint64_t err_missed;

void pr_set_sink(pr_sink_fn *sink)
{
	__atomic_store_n(&log_sink, sink, __ATOMIC_RELEASE);
}

/* Whether fd takes data now. For a pipe, which then has a free buffer, a
 * write of a line (under PIPE_BUF) does not wait. */
static bool writable_now(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

void pr_stderr(const char *tag, const char *fmt, va_list ap)
{
	char line[1024];

	/* One write per line so lines from several threads do not interleave. */
	int n = snprintf(line, sizeof(line) - 2, "flint: %s", tag);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	size_t len = strnlen(line, sizeof(line) - 2);
	line[len++] = '\n';
	if (!err_nonblocking) {
		ssize_t r = write(STDERR_FILENO, line, len);
		(void)r;
	} else if (err_out.may_block && !writable_now(err_out.fd)) {
		atomic_fetch_add(&err_missed, 1);
	} else if (nb_out_write(&err_out, line, len) != (ssize_t)len) {
		atomic_fetch_add(&err_missed, 1);
	}
}

void pr_stderr_nonblocking(void)
{
	nb_out_open(&err_out, STDERR_FILENO);
	err_nonblocking = err_out.fd >= 0;
}

uint64_t pr_stderr_missed(void)
{
	return atomic_load(&err_missed);
}

void nb_out_open(struct nb_out *o, int fd)
{
	struct stat st, own_st;
	char path[32];
	int flags = fd >= 0 ? fcntl(fd, F_GETFL) : -1;

	*o = (struct nb_out){.fd = -1};
	if (flags < 0 || fstat(fd, &st) < 0)
		return;
	o->fd = fd;
	if ((flags & O_NONBLOCK) || S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return;
	if (S_ISSOCK(st.st_mode)) {
		o->use_send = true;
		return;
	}
	o->may_block = true;
	/* /dev/ptmx (5:2) opened again is another pty, not this one. */
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(5, 2))
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int own = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (own < 0)
		return;
	if (fstat(own, &own_st) < 0 || own_st.st_dev != st.st_dev || own_st.st_ino != st.st_ino ||
	    own_st.st_rdev != st.st_rdev) {
		close(own);
		return;
	}
	*o = (struct nb_out){.fd = own, .own = true};
}

ssize_t nb_out_write(const struct nb_out *o, const void *p, size_t n)
{
	if (o->fd < 0) {
		errno = EBADF;
		return -1;
	}
	return o->use_send ? send(o->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(o->fd, p, n);
}

void nb_out_close(struct nb_out *o)
{
	if (o->own)
		close(o->fd);
	*o = (struct nb_out){.fd = -1};
}

/* One loop for the three: pos < 0 is write(), else pread/pwrite at pos. */
static int transfer(int fd, uint8_t *p, size_t n, int64_t pos, bool rd)
{
	while (n) {
		/* One call moves at most about 2 GiB anyway. */
		size_t chunk = n > (1u << 30) ? (1u << 30) : n;
		ssize_t k = pos < 0 ? write(fd, p, chunk)
			    : rd    ? pread(fd, p, chunk, (off_t)pos)
				    : pwrite(fd, p, chunk, (off_t)pos);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
		if (pos >= 0)
			pos += k;
	}
	return 0;
}

int write_full(int fd, const void *p, size_t n)
{
	return transfer(fd, (uint8_t *)p, n, -1, false);
}

int pwrite_full(int fd, const void *p, size_t n, uint64_t off)
{
	return transfer(fd, (uint8_t *)p, n, (int64_t)off, false);
}

int pread_full(int fd, void *p, size_t n, uint64_t off)
{
	return transfer(fd, p, n, (int64_t)off, true);
}

int err_set(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

char *ascii_printable(char *s)
{
	for (char *c = s; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	return s;
}

/* This thread's capture of its last error (pr_capture). */
static __thread char *capture_buf;
static __thread size_t capture_len;

void pr_capture(char *buf, size_t len)
{
	capture_buf = buf;
	capture_len = buf ? len : 0;
	if (buf && len)
		buf[0] = '\0';
}

void pr_log(enum pr_level level, const char *file, int line, const char *fmt, ...)
{
	pr_sink_fn *sink = __atomic_load_n(&log_sink, __ATOMIC_ACQUIRE);
	va_list ap;

	if (level == PR_ERROR && capture_buf) {
		va_start(ap, fmt);
		vsnprintf(capture_buf, capture_len, fmt, ap);
		va_end(ap);
	}
	if (!sink && (level > PR_DEBUG || (level == PR_DEBUG && !log_verbose)))
		return;
	va_start(ap, fmt);
	if (sink)
		sink(level, file, line, fmt, ap);
	else
		pr_stderr("", fmt, ap);
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

uint64_t now_us(void)
{
	return now_ns() / 1000;
}

int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	int r = pthread_attr_init(&a);

	if (r)
		return r;
	if (!(r = pthread_attr_setstacksize(&a, THREAD_STACK_SIZE)))
		r = pthread_create(t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return r;
}

int thread_start_unsignalled(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			     void *arg)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = attr ? pthread_create(t, attr, fn, arg) : thread_start(t, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

uint64_t process_cpu_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void *lazy_zalloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void lazy_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

#define STACK_RELEASE_SPAN (512u * 1024)

__attribute__((noinline)) bool stack_release_below(void)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	/* The page under this frame and the two below it stay: madvise's
	 * own frame is there. */
	uintptr_t end = ((uintptr_t)__builtin_frame_address(0) & ~(page - 1)) - 2 * page;

	if (getpid() != gettid())
		return false;
	/* ENOMEM for the part below the stack, which is not mapped: expected,
	 * the stack's own part is released all the same. */
	(void)madvise((void *)(end - STACK_RELEASE_SPAN), STACK_RELEASE_SPAN, MADV_DONTNEED);
	return true;
}

uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t us_since_launch(void)
{
	return (now_ns() - launch_ns) / 1000;
}

void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

int cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
			      .tv_nsec = (long)(deadline_ns % 1000000000u)};

	return pthread_cond_timedwait(c, m, &ts);
}

int open_regular(const char *path, int flags, struct stat *st)
{
	struct stat own;
	int fd;

	if (!st)
		st = &own;
	if ((flags & O_NOFOLLOW ? lstat(path, st) : stat(path, st)) < 0) {
		if (!(flags & O_CREAT) || errno != ENOENT)
			return -errno;
	} else if (!S_ISREG(st->st_mode)) {
		return -EINVAL;
	}
	if ((fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600)) < 0)
		return -errno;
	/* Its status flags as opened, O_NONBLOCK off (without F_GETFL, which
	 * the seccomp tables need not allow). */
	if (fstat(fd, st) < 0 ||
	    fcntl(fd, F_SETFL, flags & (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

const char *file_strerror(int r)
{
	return r == -EINVAL ? "not a regular file" : strerror(-r);
}

int map_file(const char *path, uint64_t max, const uint8_t **buf, uint64_t *len)
{
	struct stat st;
	int fd = open_regular(path, O_RDONLY, &st);
	int ret = 0;

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > max)
		ret = -EFBIG;
	else if (st.st_size > 0) {
		/* Read-only and private: the caller reads the page cache's pages
		 * themselves, with no buffer in between. */
		void *p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			ret = -errno;
		else {
			*buf = p;
			*len = st.st_size;
		}
	}
	close(fd);
	return ret;
}

void unmap_file(const uint8_t *buf, uint64_t len)
{
	if (buf && len)
		munmap((void *)buf, len);
}

int read_named_file_max(const char *path, size_t max, char **text, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = NULL;
	int fd, r = 0;

	*text = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0)
		return -errno;
	for (;;) {
		if (n + 1 >= cap || !buf) {
			char *p = realloc(buf, cap *= 2);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			buf = p;
		}
		ssize_t k = read(fd, buf + n, cap - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			break;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > max) {
			r = -EFBIG;
			break;
		}
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

int lock_file(int fd, bool exclusive, int *holder)
{
	struct flock l = {.l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET};

	*holder = F_UNLCK;
	if (fcntl(fd, F_OFD_SETLK, &l) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return -errno;
	/* Who is in the way: a reader or a writer (its pid is not kept). */
	if (fcntl(fd, F_OFD_GETLK, &l) == 0)
		*holder = l.l_type;
	return -EAGAIN;
}

int lock_image(int fd, const char *path, bool write)
{
	const char *mode = write ? "read-write" : "read-only";
	int holder, r = lock_file(fd, write, &holder);

	if (r == -EAGAIN) {
		pr_err("drive %s: cannot open %s: in use%s by another process", path, mode,
		       holder == F_RDLCK   ? " read-only"
		       : holder == F_WRLCK ? " read-write"
					   : "");
		return -EBUSY;
	}
	if (r < 0)
		pr_info("drive %s: cannot lock the image (%s): nothing stops another process "
			"from opening it read-write at the same time",
			path, strerror(-r));
	return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
	char p[PATH_MAX];

	if ((size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return mkdir(p, mode) < 0 && errno != EEXIST ? -errno : 0;
}

int write_file_atomic(const char *what, const char *path, const void *buf, size_t len, char *err,
		      size_t errlen)
{
	char *tmp = NULL, *dir = NULL;
	int fd = -1, dfd = -1, ret;

	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		ret = err_set(err, errlen, -ENOMEM, "%s %s: out of memory", what, path);
		goto out;
	}
	/* A fresh file, so that its mode and owner are ours: a stale .tmp
	 * (a crash) or a symlink at its name is removed, not written through. */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		ret = err_set(err, errlen, -errno, "%s: removing %s: %m", what, tmp);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = err_set(err, errlen, -errno, "%s: creating %s: %m", what, tmp);
		goto out;
	}
	ret = write_full(fd, buf, len);
	if (ret) {
		ret = err_set(err, errlen, ret, "%s: writing %s: %s", what, tmp, strerror(-ret));
		goto err_tmp;
	}
	if (fsync(fd) < 0) {
		ret = err_set(err, errlen, -errno, "%s: syncing %s: %m", what, tmp);
		goto err_tmp;
	}
	/* close can report a write-back error (NFS): it counts. */
	ret = close(fd);
	fd = -1;
	if (ret < 0) {
		ret = err_set(err, errlen, -errno, "%s: closing %s: %m", what, tmp);
		goto err_tmp;
	}
	if (rename(tmp, path) < 0) {
		ret = err_set(err, errlen, -errno, "%s: renaming %s to %s: %m", what, tmp, path);
		goto err_tmp;
	}
	if (!(dir = strdup(path))) {
		ret = err_set(err, errlen, -ENOMEM, "%s %s: out of memory", what, path);
		goto out;
	}
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		ret =
		    err_set(err, errlen, -errno, "%s: syncing the directory of %s: %m", what, path);
		goto out;
	}
	ret = 0;
	goto out;

err_tmp:
	close_fd(&fd);
	unlink(tmp);
out:
	close_fd(&dfd);
	free(dir);
	free(tmp);
	return ret;
}
