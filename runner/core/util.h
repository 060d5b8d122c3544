/* Small helpers every runner module may use: logging, fds, time. */
#ifndef FLINT_UTIL_H
#define FLINT_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WARN_UNUSED   __attribute__((warn_unused_result))
#define PRINTF(a, b)  __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* The struct that embeds *ptr as its `member`: how a callback given a
 * pointer to an embedded op (struct ev_op, struct blk_ring_op) gets back to
 * its owner. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Log lines. pr_err, pr_warn, pr_info, pr_debug and pr_trace log one line
 * at their level, with the file and line they are called from (for the
 * logger's show_log_origin). By default a line goes to stderr as
 * "flint: <message>", one write() per line so that the lines of several
 * threads do not interleave: error, warning and info lines always, debug
 * lines only when log_verbose is set (--verbose), trace lines never. Once
 * logger_configure() ran (core/logger.h: --level, --log-path, PUT /logger),
 * the logger decides where a line goes and how it reads. */
enum pr_level {
	/* The order of vm_config.h's enum vmc_log_level (logger.c checks). */
	PR_ERROR,
	PR_WARN,
	PR_INFO,
	PR_DEBUG,
	PR_TRACE,
};
/* Keep a copy of this thread's last error message in buf (len bytes, ""
 * until one comes) from now on, as well as logging it; NULL stops. For
 * callers that answer someone with the reason: the API's InstanceStart. */
void pr_capture(char *buf, size_t len);

/* All n bytes written (write_full), or written or read at offset off
 * (pwrite_full, pread_full), through short transfers and EINTR: 0, -errno,
 * or -EIO when the fd takes or gives nothing more (a file shorter than the
 * read). */
int write_full(int fd, const void *p, size_t n) WARN_UNUSED;
int pwrite_full(int fd, const void *p, size_t n, uint64_t off) WARN_UNUSED;
int pread_full(int fd, void *p, size_t n, uint64_t off) WARN_UNUSED;

/* buf[0..len) as the file at path, atomically: written to a fresh
 * "<path>.tmp" (mode 0600; a stale one or a symlink at that name is
 * removed, not written through), fsynced, renamed over path, and the
 * directory fsynced, so a reader sees the old file or the new one. Until
 * the rename an error removes the .tmp file and leaves path as it was.
 * 0 or -errno, with err saying "<what>: <step> <file>: <why>". */
int write_file_atomic(const char *what, const char *path, const void *buf, size_t len, char *err,
		      size_t errlen) WARN_UNUSED;

/* mkdir -p: every missing parent of path made 0755, path itself mode;
 * existing ones are left as they are. 0, -ENAMETOOLONG or -errno. */
int mkdir_p(const char *path, mode_t mode) WARN_UNUSED;

/* Format a message into a caller's err buffer (errlen bytes; NULL or 0:
 * none) and return r: the `return err_set(err, errlen, -EINVAL, "...")`
 * of every function that answers -errno with a message. */
int err_set(char *err, size_t errlen, int r, const char *fmt, ...) PRINTF(4, 5);

/* s in place with every byte but printable ASCII (0x20 to 0x7e) made '?':
 * text a guest or a request chose, fit for a terminal, a log and JSON (no
 * control byte, no UTF-8 sequence cut short). Returns s. */
char *ascii_printable(char *s);

void pr_log(enum pr_level level, const char *file, int line, const char *fmt, ...) PRINTF(4, 5);
#define pr_err(...)   pr_log(PR_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define pr_warn(...)  pr_log(PR_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define pr_info(...)  pr_log(PR_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define pr_debug(...) pr_log(PR_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define pr_trace(...) pr_log(PR_TRACE, __FILE__, __LINE__, __VA_ARGS__)
extern int log_verbose;

/* Where pr_log hands its lines instead of the default: the logger
 * (logger.c) sets it and clears it (NULL: back to the default). A pointer
 * rather than a call into logger.c, so that util.c still links alone (the
 * jail launcher, the fuzzers). */
typedef void pr_sink_fn(enum pr_level level, const char *file, int line, const char *fmt,
			va_list ap);
void pr_set_sink(pr_sink_fn *sink);

/* Write "flint: <tag><message>\n" to stderr in one write(), the message cut
 * to fit flint's 1 KiB line: the default output, and the logger's when it
 * writes to stderr. tag may be "". */
void pr_stderr(const char *tag, const char *fmt, va_list ap) PRINTF(2, 0);
/* From now on pr_stderr never waits for stderr's reader (nb_out below): a
 * line it does not take at once is dropped and counted. Where stderr
 * could not be had non-blocking (nb_out's may_block: no /proc in a jail, a
 * pty master), a line is written only when poll says stderr takes data,
 * which for a pipe means the whole line (1 KiB, under PIPE_BUF), and
 * dropped otherwise. For a process whose vCPUs and control thread log:
 * one stalled in write() could not be paused, nor stop on SIGTERM. Call
 * before the seccomp filters (it may open /proc/self/fd/2); every thread's
 * filter lets poll through with a zero timeout. */
void pr_stderr_nonblocking(void);
/* Lines pr_stderr dropped so far. */
uint64_t pr_stderr_missed(void);

/* An output that never waits for its reader. nb_out_open points o at fd:
 * a file as it is (it has no reader; its writes wait only for the disk or
 * a network file system's server, which may hold them), as is one
 * already non-blocking; a
 * socket written with send(MSG_DONTWAIT); a pipe or terminal through a
 * description of its own, opened non-blocking through /proc/self/fd, so
 * that whoever shares fd's (a shell's terminal, other writers of the
 * pipe) keeps its flags. Where that cannot be had (no /proc, as in a jail
 * that mounts none; a pty master, which /proc would open anew) fd is used
 * as it is and may_block is set: its writer must poll for POLLOUT first.
 * fd not open (or -1): o->fd is -1, and nothing is written. */
struct nb_out {
	int fd;
	bool own;	/* fd is ours: nb_out_close closes it */
	bool use_send;	/* a socket: send(MSG_DONTWAIT | MSG_NOSIGNAL) */
	bool may_block; /* a write may wait for the reader */
};
void nb_out_open(struct nb_out *o, int fd);
/* write(2), or send(2) for a socket: bytes taken, or -1 with errno
 * (EAGAIN: the reader is behind). */
ssize_t nb_out_write(const struct nb_out *o, const void *p, size_t n);
void nb_out_close(struct nb_out *o);

/* Close *fd if it is >= 0 and set it to -1. Accepts -1. */
void close_fd(int *fd);

/* CLOCK_MONOTONIC in nanoseconds, and in microseconds. */
uint64_t now_ns(void);
uint64_t now_us(void);
/* The stack of each thread a VM's flint starts (the seccomp builder maps
 * its own): just under 2 MiB, so that no stack can hold a transparent
 * huge page. glibc's default, 8 MiB, could: a thread started right after
 * guest RAM was mapped gets the mapping just below it, whose top is then
 * on a 2 MiB boundary, and with THP "always" (before Linux 6.7, which
 * keeps them off MAP_STACK mappings) the first touch of that stack made
 * 2 MiB resident, more than all of flint's own memory. The deepest user,
 * the API thread's jansson at its nesting limit (2048), needs under 1 MiB. */
#define THREAD_STACK_SIZE ((2u << 20) - (64u << 10))
/* pthread_create with THREAD_STACK_SIZE; the new thread keeps the
 * caller's signal mask. Returns pthread_create's 0 or error number. */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* pthread_create with every signal blocked in the new thread: host
 * signals are for the main thread's signalfd (one taken by another thread
 * would end flint without its orderly stop), and a write to a closed pipe
 * must give EPIPE. The caller's mask is kept. attr NULL: a stack of
 * THREAD_STACK_SIZE. Returns pthread_create's 0 or error number. */
int thread_start_unsignalled(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			     void *arg);
/* c made to wait on CLOCK_MONOTONIC, now_ns()'s clock (cond_wait_until). */
void cond_init_monotonic(pthread_cond_t *c);
/* pthread_cond_timedwait on c (made by cond_init_monotonic) with m held,
 * until deadline_ns of now_ns()'s clock: 0, ETIMEDOUT, as it returns. */
int cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ns);
/* This process's CPU time (CLOCK_PROCESS_CPUTIME_ID), microseconds. */
uint64_t process_cpu_us(void);
/* CLOCK_REALTIME (the wall clock) in nanoseconds since the epoch. */
uint64_t realtime_ns(void);

/* Zeroed memory for a large struct most of whose bytes a VM never
 * touches (segment tables sized for a full queue, a frame's buffer): mapped,
 * so that the kernel zeroes each page as it is first used and only those
 * count in RSS. calloc clears all of it whenever the heap already had the
 * memory. NULL when out of memory. lazy_free takes the same size; NULL ok. */
void *lazy_zalloc(size_t size);
void lazy_free(void *p, size_t size);

/* Give back the pages of the main thread's stack below the caller's frame:
 * what set-up touched deeper down (the kernel's loading, the boot tables,
 * `flint run`'s paths) and the thread, in its loop, will not reach again.
 * They would otherwise stay in RSS for the VM's life; one touched again
 * comes back zeroed. Looks no further than 512 KiB down, where below a
 * main stack the kernel maps nothing (its guard gap is 1 MiB). Returns
 * false, releasing nothing, on any other thread: what lies below a thread's
 * stack is unknown. */
bool stack_release_below(void);

/* Launch timestamp (now_ns() at process start, set by main) and the time
 * elapsed since it in microseconds. */
extern uint64_t launch_ns;
uint64_t us_since_launch(void);

/* Open path as a regular file with flags (O_RDONLY, O_WRONLY or O_RDWR,
 * and any of O_NOFOLLOW (a symlink is then not a regular file: -EINVAL),
 * O_CREAT (a missing file made, mode 0600) and the like; O_CLOEXEC is
 * added), filling *st when st is not
 * NULL. Anything else named there (a FIFO, which would hold open() until a
 * writer came, or a device, whose open alone may act) is refused by its
 * type before it is opened, and the open itself is non-blocking should it
 * have been swapped in meanwhile. Returns the descriptor, in blocking mode,
 * or -errno: -EINVAL when not a regular file. */
struct stat;
int open_regular(const char *path, int flags, struct stat *st) WARN_UNUSED;
/* What open_regular's (or map_file's) -errno r says, for a message: "not a
 * regular file" for -EINVAL, strerror's words otherwise. */
const char *file_strerror(int r);

/* Map a whole regular file read-only, refusing files over max bytes. An
 * empty file gives *buf NULL and *len 0. Returns 0 or -errno (-EFBIG when
 * over max, -EINVAL when not a regular file). Release with unmap_file. */
int map_file(const char *path, uint64_t max, const uint8_t **buf, uint64_t *len) WARN_UNUSED;
void unmap_file(const uint8_t *buf, uint64_t len);

/* Read a whole file to its end, as Firecracker's read_to_string: a file
 * the operator named on flint's command line (--config-file, a CPU
 * template it names, --metadata), a named pipe or /dev/stdin too
 * (--config-file <(envsubst < vm.json)), waiting for it as asked; or a
 * /proc file, whose size says nothing. Not for a path a request names:
 * there map_file refuses all but a regular file, unopened. *text is malloc'd and NUL-terminated,
 * *len its length. Returns 0 or -errno (-EFBIG past max bytes, -EISDIR for a directory). */
int read_named_file_max(const char *path, size_t max, char **text, size_t *len) WARN_UNUSED;

/* Lock the whole file behind fd for this open file description (an OFD
 * lock, fcntl F_OFD_SETLK, as QEMU takes on its images): shared when
 * !exclusive, so that readers share it, exclusive when exclusive, so that a
 * writer is alone (fd must then be open for writing). The lock is on the
 * inode, whatever name or hard link reached it, and the kernel drops it
 * when the last descriptor of this open is closed or the process dies.
 * Returns 0; -EAGAIN when another open of the file, in any process, this one
 * included, holds a conflicting lock: *holder is then F_RDLCK or F_WRLCK (or
 * F_UNLCK if that lock went away meanwhile); another -errno when the file
 * system cannot lock. */
int lock_file(int fd, bool exclusive, int *holder) WARN_UNUSED;

/* lock_file() for the disk image of a drive, open at `path` read-write
 * (write) or read-only: one writer or any number of readers. A conflict is
 * an error, -EBUSY, logged as "drive PATH: cannot open read-write: in use
 * read-only by another process"; a file system that cannot lock is only
 * warned about. Returns 0 or -EBUSY. */
int lock_image(int fd, const char *path, bool write) WARN_UNUSED;

#endif
