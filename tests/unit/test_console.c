/* The console's panic watch: the panic line, and the line after which a
 * panicked Linux prints nothing more (issue 10: without panic=-1 the guest
 * spun after it and flint waited for ever); its rate limiter; and output
 * that never waits for its reader. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "legacy/console.h"

static void out(struct console *c, const char *s)
{
	console_output(c, (const uint8_t *)s, strlen(s));
}

Test(console, panic_is_over_at_the_end_marker)
{
	struct console *c;
	char line[128];

	cr_assert_eq(console_create(&c, -1), 0);
	out(c, "[    0.5] Run /init as init process\r\n");
	cr_assert_not(console_panicked(c, line, sizeof(line)));
	cr_assert_not(console_panic_over(c));
	out(c, "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n");
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_str_eq(line,
			 "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs");
	cr_assert_not(console_panic_over(c), "the stack trace is still to come");
	out(c,
	    "[    1.2] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1\r\n"
	    "[    1.2] Call Trace:\r\n [    1.2]  <TASK>\r\n[    1.2] Kernel Offset: disabled\r\n");
	cr_assert_not(console_panic_over(c));
	/* Over only once the marker's line is complete. */
	out(c, "[    1.2] ---[ end Kernel panic - not syncing: VFS: Unable to mount ");
	cr_assert_not(console_panic_over(c));
	out(c, "root fs ]---\r\n");
	cr_assert(console_panic_over(c));
	/* The first panic line is the one reported. */
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_str_eq(line,
			 "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs");
	console_destroy(c);
}

/* flint's init's last message but its ready line, for flint run to name
 * why init gave up (an image it could not mount), fit to print. */
Test(console, init_said_its_last_message)
{
	struct console *c;
	char line[128] = "";

	cr_assert_eq(console_create(&c, -1), 0);
	out(c, "flint-init: ready\r\n");
	cr_assert_not(console_init_said(c, line, sizeof(line)), "ready is no message");
	out(c, "[    0.9] EXT4-fs (vdb): VFS: Can't find ext4 filesystem\r\n");
	out(c, "flint-init: mount /dev/vdb on /mnt/lower: Invalid \x1b[2Jargument\r\n");
	out(c, "[    1.0] reboot: Power down\r\n");
	cr_assert(console_init_said(c, line, sizeof(line)));
	cr_assert_str_eq(line, "flint-init: mount /dev/vdb on /mnt/lower: Invalid ?[2Jargument");
	/* Only at a line's start. */
	out(c, "job: flint-init: not init\r\n");
	cr_assert(console_init_said(c, line, sizeof(line)));
	cr_assert_str_eq(line, "flint-init: mount /dev/vdb on /mnt/lower: Invalid ?[2Jargument");
	console_destroy(c);
}

/* The panic line goes into flint's own message: the guest's control bytes
 * (a terminal's escape sequences) do not. */
Test(console, a_panic_line_is_fit_to_print)
{
	struct console *c;
	char line[128];

	cr_assert_eq(console_create(&c, -1), 0);
	out(c, "Kernel panic - not syncing: x\x80\033[2K\033]0;owned\007\r\n");
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_str_eq(line, "Kernel panic - not syncing: x??[2K?]0;owned?");
	console_destroy(c);
}

/* The words inside a line are a guest program's (a log it prints), not
 * the kernel's panic: the kernel starts its line with them, after its
 * printk time if it has one. */
Test(console, panic_words_inside_a_line_are_no_panic)
{
	struct console *c;
	char line[128];

	cr_assert_eq(console_create(&c, -1), 0);
	out(c, "grep: old.log: Kernel panic - not syncing: VFS\r\n");
	out(c, "[ 1.2]Kernel panic - not syncing: no space after the time\r\n");
	cr_assert_not(console_panicked(c, line, sizeof(line)));
	out(c, "[    9.876543] Kernel panic - not syncing: Attempted to kill init!\r\n");
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_not(console_panic_over(c));
	out(c, "echo ---[ end Kernel panic - not syncing: x\r\n");
	cr_assert_not(console_panic_over(c), "the end marker inside a line");
	out(c, "[    9.9] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---\r\n");
	cr_assert(console_panic_over(c));
	console_destroy(c);
}

Test(console, panic_with_a_reboot_delay_is_over_at_its_announcement)
{
	struct console *c;

	cr_assert_eq(console_create(&c, -1), 0);
	out(c, "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n");
	out(c, "Kernel Offset: disabled\n");
	cr_assert_not(console_panic_over(c));
	out(c, "Rebooting in 30 seconds..\n");
	cr_assert(console_panic_over(c), "panic=30: nothing more until the reset 30 s later");
	console_destroy(c);
}

Test(console, markers_without_a_panic_line_stop_nothing)
{
	struct console *c;
	char line[128];

	cr_assert_eq(console_create(&c, -1), 0);
	out(c, "---[ end Kernel panic - not syncing: quoted in a log ]---\n");
	out(c, "Rebooting in 5 seconds..\n");
	cr_assert_not(console_panicked(c, line, sizeof(line)));
	cr_assert_not(console_panic_over(c));
	console_destroy(c);
}

/* --- PUT /serial's rate_limiter: output bytes beyond it are dropped -------- */

#define T0 1000000000ULL /* a time in ns, the limiter's start */
#define MS 1000000ULL

static uint64_t dropped(struct console *c)
{
	struct console_counts n;

	console_counts(c, &n);
	return n.dropped;
}

static void out_at(struct console *c, const char *s, uint64_t now)
{
	console_output_at(c, (const uint8_t *)s, strlen(s), now);
}

/* Everything written to the pipe so far, as a string. */
static const char *drain(int fd)
{
	static char got[512];
	ssize_t n = read(fd, got, sizeof(got) - 1);
	got[n > 0 ? n : 0] = '\0';
	return got;
}

static struct console *limited_console(int p[2], uint64_t size, uint64_t burst, uint64_t refill_ms)
{
	struct console *c;
	struct ratelimit_bucket_cfg b = {
	    .size = size, .one_time_burst = burst, .refill_time_ms = refill_ms};

	cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
	cr_assert_eq(console_create(&c, p[1]), 0);
	cr_assert_eq(console_set_limit(c, &b, T0), 0);
	return c;
}

Test(console, output_beyond_the_limit_is_dropped_and_counted)
{
	int p[2];
	struct console *c = limited_console(p, 10, 0, 1000);
	char line[128];

	out_at(c, "abcdefghijklmnopqrst", T0);
	console_flush(c);
	cr_assert_str_eq(drain(p[0]), "abcdefghij", "the bucket's 10 bytes, the rest dropped");
	cr_assert_eq(dropped(c), 10);
	/* Half the refill time later, half the bucket is back. */
	out_at(c, "ABCDEFGHIJ", T0 + 500 * MS);
	console_flush(c);
	cr_assert_str_eq(drain(p[0]), "ABCDE");
	cr_assert_eq(dropped(c), 15);
	/* Dropped output still reaches the panic watch. */
	out_at(c, "\nKernel panic - not syncing: lost to the limit\n", T0 + 500 * MS);
	console_flush(c);
	cr_assert_str_eq(drain(p[0]), "");
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_str_eq(line, "Kernel panic - not syncing: lost to the limit",
			 "the whole line, of dropped bytes");
	/* A whole refill time later the bucket is full again, no more. */
	out_at(c, "0123456789xyz\n", T0 + 5000 * MS);
	console_flush(c);
	cr_assert_str_eq(drain(p[0]), "0123456789");
	console_destroy(c);
	close(p[0]);
	close(p[1]);
}

Test(console, one_time_burst_comes_first)
{
	int p[2];
	struct console *c = limited_console(p, 4, 6, 1000);

	out_at(c, "0123456789ABCDEF", T0);
	console_flush(c);
	cr_assert_str_eq(drain(p[0]), "0123456789", "burst 6 then size 4");
	cr_assert_eq(dropped(c), 6);
	console_destroy(c);
	close(p[0]);
	close(p[1]);
}

Test(console, a_bucket_of_size_0_limits_nothing)
{
	int p[2];
	struct console *c = limited_console(p, 0, 0, 1000);

	out_at(c, "all of it\n", T0);
	cr_assert_str_eq(drain(p[0]), "all of it\n");
	cr_assert_eq(dropped(c), 0);
	console_destroy(c);
	close(p[0]);
	close(p[1]);
}

Test(console, discarded_output_counts_nothing_dropped)
{
	struct console *c;
	struct ratelimit_bucket_cfg b = {.size = 1, .refill_time_ms = 1000};

	cr_assert_eq(console_create(&c, -1), 0);
	cr_assert_eq(console_set_limit(c, &b, T0), 0);
	out_at(c, "nowhere\n", T0);
	cr_assert_eq(dropped(c), 0);
	b.size = 1ULL << 63;
	cr_assert_eq(console_set_limit(c, &b, T0), -EINVAL);
	console_destroy(c);
}

/* --- A reader that falls behind never stalls the writer ------------------- */

/* n bytes of numbered lines: byte i of the stream is pattern(i). */
static char pattern(size_t i)
{
	return i % 64 == 63 ? '\n' : (char)('a' + (i / 64) % 26);
}

static void out_pattern(struct console *c, size_t from, size_t n)
{
	static uint8_t chunk[4096];

	while (n) {
		size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
		for (size_t i = 0; i < k; i++)
			chunk[i] = (uint8_t)pattern(from + i);
		console_output(c, chunk, k);
		from += k, n -= k;
	}
}

/* Reads what fd holds now (fd non-blocking) and checks it continues the
 * pattern at *at. */
static void read_pattern(int fd, size_t *at)
{
	char b[4096];
	ssize_t r;

	while ((r = read(fd, b, sizeof(b))) > 0)
		for (ssize_t i = 0; i < r; i++, (*at)++)
			cr_assert_eq(b[i], pattern(*at), "byte %zu out of order", *at);
}

/* A blocking pipe nobody reads (a log collector that stopped): the writer
 * (a vCPU) returns at once; the pipe holds what it holds, the backlog
 * CONSOLE_BACKLOG more, the rest is lost and counted. Once the reader
 * reads again, the backlog follows in order. The pipe's own description
 * stays blocking: the console writes through one of its own. */
Test(console, a_stalled_pipe_never_blocks_the_writer, .timeout = 20)
{
	int p[2];
	struct console *c;
	struct console_counts n;
	const size_t total = 2u << 20;

	cr_assert_eq(pipe(p), 0);
	int cap = fcntl(p[1], F_GETPIPE_SZ);
	cr_assert_gt(cap, 0);
	cr_assert_eq(console_create(&c, p[1]), 0);
	cr_assert_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0,
		     "the caller's description is left as it was");
	out_pattern(c, 0, total);
	console_counts(c, &n);
	cr_assert_eq(n.written, (uint64_t)cap);
	cr_assert_eq(n.waiting, CONSOLE_BACKLOG);
	cr_assert_eq(n.lost, total - cap - CONSOLE_BACKLOG);
	cr_assert_eq(n.errors, 0);
	cr_assert_eq(console_waiting_fd(c) >= 0, true);

	cr_assert_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	size_t at = 0;
	while (console_waiting_fd(c) >= 0) {
		read_pattern(p[0], &at);
		console_flush(c);
	}
	read_pattern(p[0], &at);
	cr_assert_eq(at, cap + CONSOLE_BACKLOG, "the pipe's and the backlog's bytes, in order");
	console_counts(c, &n);
	cr_assert_eq(n.written, at);
	console_destroy(c);
	close(p[0]);
	close(p[1]);
}

/* A socket (systemd's stdout) is written with MSG_DONTWAIT: the same. */
Test(console, a_stalled_socket_never_blocks_the_writer, .timeout = 20)
{
	int s[2];
	struct console *c;
	struct console_counts n;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	cr_assert_eq(console_create(&c, s[1]), 0);
	out_pattern(c, 0, 4u << 20);
	console_counts(c, &n);
	cr_assert_gt(n.written, 0);
	cr_assert_eq(n.waiting, CONSOLE_BACKLOG);
	cr_assert_eq(n.written + n.waiting + n.lost, 4u << 20);
	cr_assert_eq(fcntl(s[1], F_GETFL) & O_NONBLOCK, 0);
	cr_assert_eq(fcntl(s[0], F_SETFL, O_NONBLOCK), 0);
	size_t at = 0;
	while (console_waiting_fd(c) >= 0) {
		read_pattern(s[0], &at);
		console_flush(c);
	}
	read_pattern(s[0], &at);
	cr_assert_eq(at, n.written + n.waiting, "the socket's and the backlog's bytes, in order");
	console_destroy(c);
	close(s[0]);
	close(s[1]);
}

/* A reader that is gone: output is lost and counted, nothing kept. */
Test(console, a_reader_gone_loses_output)
{
	int p[2];
	struct console *c;
	struct console_counts n;

	signal(SIGPIPE, SIG_IGN); /* as vm_run */
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(console_create(&c, p[1]), 0);
	close(p[0]);
	out_pattern(c, 0, 1000);
	console_flush(c); /* the last line's 40 bytes, no newline yet */
	console_counts(c, &n);
	cr_assert_eq(n.written, 0);
	cr_assert_eq(n.lost, 1000);
	cr_assert_gt(n.errors, 0);
	cr_assert_eq(n.waiting, 0);
	cr_assert_eq(console_waiting_fd(c), -1);
	console_destroy(c);
	close(p[1]);
}

static void *read_later(void *arg)
{
	int fd = *(int *)arg;
	char b[4096];

	usleep(200 * 1000);
	while (read(fd, b, sizeof(b)) > 0)
		;
	return NULL;
}

/* At the end, a reader slower than the guest still gets all of it: the
 * drain waits for it (up to its timeout). */
Test(console, the_drain_waits_for_a_slow_reader, .timeout = 20)
{
	int p[2];
	struct console *c;
	struct console_counts n;
	pthread_t t;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(console_create(&c, p[1]), 0);
	out_pattern(c, 0, 200000);
	console_counts(c, &n);
	cr_assert_gt(n.waiting, 0);
	cr_assert_eq(pthread_create(&t, NULL, read_later, &p[0]), 0);
	console_drain(c, 10000);
	console_counts(c, &n);
	cr_assert_eq(n.waiting, 0);
	cr_assert_eq(n.lost, 0);
	cr_assert_eq(n.written, 200000);
	console_destroy(c);
	close(p[1]);
	pthread_join(t, NULL);
	close(p[0]);
}

/* A drain that runs out of time loses what waits there and then, so that
 * the counts read after it (--stats, the last metrics line) have it. */
Test(console, a_drain_out_of_time_counts_what_waits_as_lost, .timeout = 20)
{
	int p[2];
	struct console *c;
	struct console_counts n;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(console_create(&c, p[1]), 0);
	out_pattern(c, 0, 200000);
	console_counts(c, &n);
	uint64_t waiting = n.waiting;
	cr_assert_gt(waiting, 0);
	console_drain(c, 50);
	console_counts(c, &n);
	cr_assert_eq(n.waiting, 0);
	cr_assert_eq(n.lost, waiting);
	cr_assert_eq(n.written + n.lost, 200000);
	console_destroy(c);
	close(p[0]);
	close(p[1]);
}

/* A pty master (a description /proc cannot give again): a vCPU's output
 * waits in the backlog, and the control thread's flush writes it once
 * poll says the pty takes it, in order. */
Test(console, a_pty_master_is_written_by_the_control_thread_only, .timeout = 20)
{
	struct console *c;
	struct console_counts n;
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	if (m < 0)
		cr_skip_test("no /dev/ptmx here");
	cr_assert_eq(grantpt(m), 0);
	cr_assert_eq(unlockpt(m), 0);
	int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_NONBLOCK);
	cr_assert_geq(s, 0);
	struct termios t;
	cr_assert_eq(tcgetattr(s, &t), 0);
	cfmakeraw(&t);
	cr_assert_eq(tcsetattr(s, TCSANOW, &t), 0);
	cr_assert_eq(console_create(&c, m), 0);
	out(c, "from the guest\n");
	console_counts(c, &n);
	cr_assert_eq(n.written, 0, "a vCPU never writes an output that may block");
	cr_assert_eq(n.waiting, 15);
	console_flush(c);
	console_counts(c, &n);
	cr_assert_eq(n.written, 15);
	char b[64];
	ssize_t r = read(s, b, sizeof(b) - 1);
	cr_assert_eq(r, 15);
	b[r] = '\0';
	cr_assert_str_eq(b, "from the guest\n");
	console_destroy(c);
	close(s);
	close(m);
}

/* An output fd that is not open discards, and keeps discarding after a
 * file is opened at its number. */
Test(console, an_output_not_open_discards)
{
	char path[] = "/tmp/flint-console-XXXXXX";
	struct console *c;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	close(p[1]);
	cr_assert_eq(console_create(&c, p[1]), 0);
	int f = mkstemp(path);
	cr_assert_eq(f, p[1], "the lowest free number");
	out(c, "not for this file\n");
	console_flush(c);
	cr_assert_eq(lseek(f, 0, SEEK_END), 0);
	console_destroy(c);
	close(f);
	unlink(path);
	close(p[0]);
}
