/* util.h on its own: what every module gets from it without other headers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "core/util.h"

struct outer {
	char pad[3];
	int member;
	struct {
		long x;
	} inner;
};

/* container_of is util.h's (once, for every module), and gets back the
 * embedding struct from a member at any offset. */
Test(util, container_of_finds_the_embedding_struct)
{
	struct outer o;

	cr_assert_eq(container_of(&o.member, struct outer, member), &o);
	cr_assert_eq(container_of(&o.inner, struct outer, inner), &o);
	cr_assert_eq(container_of(&o.inner.x, struct outer, inner.x), &o);
	cr_assert_eq(container_of((void *)o.pad, struct outer, pad), &o);
}

/* The Rss of the main thread's stack, from /proc/self/smaps, in KiB. */
static long stack_rss_kib(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in_stack = false;
	long kib = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ' ') && line[0] != ' ' &&
		    strchr("0123456789abcdef", line[0]))
			in_stack = strstr(line, "[stack]") != NULL;
		else if (in_stack && sscanf(line, "Rss: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

/* 256 KiB of stack touched below the caller's frame, as set-up's deep
 * calls do; returns the sum so that the writes cannot be optimised out. */
static __attribute__((noinline)) int touch_deep(void)
{
	volatile char buf[256 * 1024];
	int sum = 0;

	for (size_t i = 0; i < sizeof(buf); i += 4096)
		buf[i] = 1;
	for (size_t i = 0; i < sizeof(buf); i += 4096)
		sum += buf[i];
	return sum;
}

static void *release_on_thread(void *arg)
{
	(void)arg;
	return stack_release_below() ? (void *)1 : NULL;
}

/* The pages that deeper calls touched leave the main thread's RSS, the
 * stack still works (they come back zeroed), and another thread's stack,
 * whose neighbours are unknown, is left alone. */
Test(util, stack_release_below_gives_back_what_deeper_calls_touched)
{
	pthread_t t;
	void *released = (void *)1;
	long before, after;

	cr_assert_eq(touch_deep(), 64);
	before = stack_rss_kib();
	cr_assert_geq(before, 256, "the stack holds %ld KiB after touching 256", before);
	cr_assert(stack_release_below());
	after = stack_rss_kib();
	cr_assert_lt(after, before - 200, "%ld KiB before the release, %ld after", before, after);
	cr_assert_eq(touch_deep(), 64);
	cr_assert_eq(pthread_create(&t, NULL, release_on_thread, NULL), 0);
	cr_assert_eq(pthread_join(t, &released), 0);
	cr_assert_null(released);
}

struct stack_seen {
	size_t size;
	bool all_blocked;
};

static void *see_own_stack(void *arg)
{
	struct stack_seen *seen = arg;
	pthread_attr_t a;
	sigset_t mask;
	void *addr;

	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		pthread_attr_getstack(&a, &addr, &seen->size);
		pthread_attr_destroy(&a);
	}
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	seen->all_blocked = sigismember(&mask, SIGTERM) && sigismember(&mask, SIGPIPE);
	return NULL;
}

/* Every thread flint starts has a stack under 2 MiB, which no
 * transparent huge page fits in, wherever it is mapped; the unsignalled
 * ones have every signal blocked, the others the caller's mask. */
Test(util, threads_get_stacks_no_huge_page_fits_in)
{
	struct stack_seen plain = {0}, unsignalled = {0};
	pthread_t t;

	cr_assert_lt(THREAD_STACK_SIZE, 2u << 20);
	cr_assert_geq(THREAD_STACK_SIZE, 1u << 20, "jansson at its nesting limit needs ~1 MiB");
	cr_assert_eq(thread_start(&t, see_own_stack, &plain), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(thread_start_unsignalled(&t, NULL, see_own_stack, &unsignalled), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(plain.size, THREAD_STACK_SIZE, "stack of %zu bytes", plain.size);
	cr_assert_eq(unsignalled.size, THREAD_STACK_SIZE, "stack of %zu bytes", unsignalled.size);
	cr_assert_not(plain.all_blocked);
	cr_assert(unsignalled.all_blocked);
}

/* nb_out: an output that never waits for its reader, whatever fd is. */
Test(util, nb_out_opens_a_pipe_through_a_description_of_its_own)
{
	struct nb_out o;
	int p[2];
	char b[8];

	cr_assert_eq(pipe(p), 0);
	nb_out_open(&o, p[1]);
	cr_assert(o.own && !o.use_send && !o.may_block);
	cr_assert_neq(o.fd, p[1]);
	cr_assert(fcntl(o.fd, F_GETFL) & O_NONBLOCK);
	cr_assert_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0, "the caller's description as it was");
	cr_assert_eq(nb_out_write(&o, "abc", 3), 3);
	cr_assert_eq(read(p[0], b, sizeof(b)), 3, "the same pipe");
	/* Full: EAGAIN, not a wait. */
	static char big[1 << 20];
	while (nb_out_write(&o, big, sizeof(big)) > 0)
		;
	cr_assert_eq(errno, EAGAIN);
	nb_out_close(&o);
	cr_assert_eq(o.fd, -1);
	close(p[0]);
	close(p[1]);
}

Test(util, nb_out_sends_to_a_socket_and_writes_a_file_as_it_is)
{
	struct nb_out o;
	int s[2];
	char path[] = "/tmp/flint-nb-XXXXXX";
	int f = mkstemp(path);

	cr_assert_geq(f, 0);
	unlink(path);
	nb_out_open(&o, f);
	cr_assert(o.fd == f && !o.own && !o.may_block && !o.use_send, "a file never waits");
	cr_assert_eq(nb_out_write(&o, "x", 1), 1);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	nb_out_open(&o, s[1]);
	cr_assert(o.fd == s[1] && o.use_send && !o.may_block);
	static char big[1 << 20];
	while (nb_out_write(&o, big, sizeof(big)) > 0)
		;
	cr_assert_eq(errno, EAGAIN, "MSG_DONTWAIT");
	cr_assert_eq(fcntl(s[1], F_GETFL) & O_NONBLOCK, 0);
	nb_out_close(&o);
	close(s[0]);
	close(s[1]);
	close(f);
}

/* A pty master opened again through /proc would be another pty: it is
 * written as it is, and its writer told to poll first. */
Test(util, nb_out_takes_a_pty_master_as_it_is)
{
	struct nb_out o;
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	if (m < 0)
		cr_skip_test("no /dev/ptmx here");
	nb_out_open(&o, m);
	cr_assert(o.fd == m && !o.own && o.may_block);
	close(m);
}

static void say(const char *fmt, ...) PRINTF(1, 2);
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pr_stderr("", fmt, ap);
	va_end(ap);
}

/* Stderr that cannot be had non-blocking (here a pty master; in a jail
 * without /proc, a pipe too) and whose reader has stopped: a line is
 * dropped and counted, never waited for (a vCPU held in write() under the
 * logger's lock held every thread that logs). */
Test(util, stderr_without_a_description_of_its_own_drops_a_line_it_would_wait_for, .timeout = 20)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		cr_skip_test("no /dev/ptmx here");
	int sl = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(sl, 0);
	/* Raw: a canonical line discipline takes (and drops) past a full line. */
	struct termios t;
	cr_assert_eq(tcgetattr(sl, &t), 0);
	cfmakeraw(&t);
	cr_assert_eq(tcsetattr(sl, TCSANOW, &t), 0);
	/* Fill the slave's input until it takes nothing more, then make the
	 * master blocking again, as a terminal handed to flint is. */
	int fl = fcntl(m, F_GETFL);
	cr_assert_eq(fcntl(m, F_SETFL, fl | O_NONBLOCK), 0);
	static char big[4096];
	memset(big, 'x', sizeof(big));
	for (int quiet = 0; quiet < 5;) {
		if (write(m, big, sizeof(big)) > 0) {
			quiet = 0;
			continue;
		}
		cr_assert_eq(errno, EAGAIN);
		quiet++;
		usleep(20000); /* the tty's worker may move some on */
	}
	cr_assert_eq(fcntl(m, F_SETFL, fl), 0);
	cr_assert_geq(dup2(m, STDERR_FILENO), 0);

	pr_stderr_nonblocking();
	uint64_t before = pr_stderr_missed();
	say("a line stderr cannot take %d", 1);
	say("nor this one");
	cr_assert_eq(pr_stderr_missed() - before, 2);
	close(sl);
	close(m);
}

/* An fd that is not open is never written: a later open() that reuses its
 * number must not receive the output. */
Test(util, nb_out_of_a_closed_fd_writes_nothing)
{
	struct nb_out o;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	close(p[1]);
	nb_out_open(&o, p[1]);
	cr_assert_eq(o.fd, -1);
	cr_assert_eq(nb_out_write(&o, "x", 1), -1);
	cr_assert_eq(errno, EBADF);
	nb_out_open(&o, -1);
	cr_assert_eq(o.fd, -1);
	close(p[0]);
}

/* What the operator names on the command line is read as Firecracker's
 * read_to_string reads it: a named pipe too (--config-file <(envsubst <
 * vm.json) was refused as "not a regular file"), up to the cap. */
Test(util, read_named_file_max_reads_a_pipe_and_a_file_to_the_cap)
{
	char dir[] = "/tmp/flint-named-XXXXXX", fifo[64], file[64], *text;
	size_t len;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	snprintf(file, sizeof(file), "%s/file", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	const uint8_t *m;
	uint64_t mlen;
	cr_assert_eq(map_file(fifo, 1 << 20, &m, &mlen), -EINVAL, "a request's path: refused");
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(fifo, O_WRONLY);
		_exit(fd >= 0 && write(fd, "{\"a\": 1}", 8) == 8 ? 0 : 1);
	}
	cr_assert_eq(read_named_file_max(fifo, 1 << 20, &text, &len), 0);
	cr_assert_eq(len, 8);
	cr_assert_str_eq(text, "{\"a\": 1}");
	free(text);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);

	int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	static char big[10000];
	memset(big, 'x', sizeof(big));
	cr_assert_eq(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
	close(fd);
	cr_assert_eq(read_named_file_max(file, sizeof(big), &text, &len), 0);
	cr_assert_eq(len, sizeof(big));
	cr_assert_eq(text[len], '\0');
	free(text);
	cr_assert_eq(read_named_file_max(file, sizeof(big) - 1, &text, &len), -EFBIG);
	cr_assert_null(text);
	cr_assert_eq(read_named_file_max(dir, 100, &text, &len), -EISDIR);
	cr_assert_eq(read_named_file_max(file + 1, 100, &text, &len), -ENOENT);
	unlink(fifo);
	unlink(file);
	rmdir(dir);
}

/* open_regular opens a regular file, blocking again once open, and refuses
 * anything else without blocking: a FIFO nobody writes to, a directory, a
 * device. */
Test(util, open_regular_refuses_what_is_not_a_regular_file)
{
	char dir[] = "/tmp/flint-util-XXXXXX", path[64];
	struct stat st;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "abc", 3), 3);
	close(fd);
	fd = open_regular(path, O_RDONLY, &st);
	cr_assert_geq(fd, 0);
	cr_assert_eq(st.st_size, 3);
	cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(open_regular(path, O_RDONLY, &st), -EINVAL);
	cr_assert_eq(open_regular(path, O_RDWR, NULL), -EINVAL);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(open_regular(dir, O_RDONLY, NULL), -EINVAL);
	cr_assert_eq(open_regular("/dev/null", O_RDONLY, NULL), -EINVAL);
	cr_assert_eq(open_regular(path, O_RDONLY, NULL), -ENOENT);
	/* O_CREAT: a missing file is made (0600), a FIFO still refused. */
	fd = open_regular(path, O_WRONLY | O_CREAT | O_NOFOLLOW, &st);
	cr_assert_geq(fd, 0);
	cr_assert(S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600, "mode %o", st.st_mode);
	cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(open_regular(path, O_WRONLY | O_CREAT | O_NOFOLLOW, NULL), -EINVAL);
	cr_assert_eq(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(dir), 0);
}
