/* The console's panic watch: the panic line, and the line after which a
 * panicked Linux prints nothing more (issue 10: without panic=-1 the guest
 * spun after it and flint waited for ever). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
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
	cr_assert_eq(console_dropped(c), 10);
	/* Half the refill time later, half the bucket is back. */
	out_at(c, "ABCDEFGHIJ", T0 + 500 * MS);
	console_flush(c);
	cr_assert_str_eq(drain(p[0]), "ABCDE");
	cr_assert_eq(console_dropped(c), 15);
	/* Dropped output still reaches the panic watch. */
	out_at(c, "Kernel panic - not syncing: lost to the limit\n", T0 + 500 * MS);
	console_flush(c);
	cr_assert_str_eq(drain(p[0]), "");
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_str_eq(line,
			 "abcdefghijklmnopqrstABCDEFGHIJ"
			 "Kernel panic - not syncing: lost to the limit",
			 "the whole line, dropped bytes too");
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
	cr_assert_eq(console_dropped(c), 6);
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
	cr_assert_eq(console_dropped(c), 0);
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
	cr_assert_eq(console_dropped(c), 0);
	b.size = 1ULL << 63;
	cr_assert_eq(console_set_limit(c, &b, T0), -EINVAL);
	console_destroy(c);
}
