/* The console's panic watch: the panic line, and the line after which a
 * panicked Linux prints nothing more (issue 10: without panic=-1 the guest
 * spun after it and flint waited for ever). */
#include <criterion/criterion.h>
#include <string.h>

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
	cr_assert_str_eq(line, "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs");
	cr_assert_not(console_panic_over(c), "the stack trace is still to come");
	out(c, "[    1.2] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1\r\n"
	       "[    1.2] Call Trace:\r\n [    1.2]  <TASK>\r\n[    1.2] Kernel Offset: disabled\r\n");
	cr_assert_not(console_panic_over(c));
	/* Over only once the marker's line is complete. */
	out(c, "[    1.2] ---[ end Kernel panic - not syncing: VFS: Unable to mount ");
	cr_assert_not(console_panic_over(c));
	out(c, "root fs ]---\r\n");
	cr_assert(console_panic_over(c));
	/* The first panic line is the one reported. */
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_str_eq(line, "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs");
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
