#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "core/control.h"
#include "legacy/console.h"
#include "legacy/legacy.h"

static int resets;
static void on_reset(void *ctx)
{
	(void)ctx;
	resets++;
}

Test(i8042, only_the_reset_command_resets)
{
	struct i8042 k = {.reset = on_reset};
	uint8_t v = 0xfe, st;
	resets = 0;
	i8042_cmd_ops.read(&k, 0, &st, 1);
	cr_assert_eq(st & 0x03, 0, "input and output buffers empty");
	v = 0xaa;
	i8042_cmd_ops.write(&k, 0, &v, 1);
	cr_assert_eq(resets, 0);
	v = 0xfe;
	i8042_cmd_ops.write(&k, 0, &v, 2);
	cr_assert_eq(resets, 0, "wrong width");
	i8042_cmd_ops.write(&k, 0, &v, 1);
	cr_assert_eq(resets, 1);
}

Test(boot_timer, records_only_the_magic_byte_once)
{
	struct boot_timer t = {0};
	uint8_t v = 122;
	uint32_t w = 123;
	launch_ns = now_ns();
	boot_timer_ops.write(&t, 0, &v, 1);
	cr_assert_eq(t.boot_us, 0);
	boot_timer_ops.write(&t, 0, &w, 4);
	cr_assert_eq(t.boot_us, 0, "4-byte writes are not the contract");
	v = 123;
	boot_timer_ops.write(&t, 1, &v, 1);
	cr_assert_eq(t.boot_us, 0, "offset 1");
	launch_ns -= 5000; /* at least 5 us have passed */
	boot_timer_ops.write(&t, 0, &v, 1);
	cr_assert_geq(t.boot_us, 5);
}

Test(exit_dev, write_stops_with_the_status)
{
	struct control c;
	struct exit_dev e = {.ctl = &c};
	uint32_t s = 3;
	control_init(&c, NULL, NULL);
	exit_dev_ops.write(&e, 4, &s, 4);
	cr_assert_not(control_stopping(&c), "offset 4 is not the register");
	exit_dev_ops.write(&e, 0, &s, 3);
	cr_assert_not(control_stopping(&c), "3-byte write");
	exit_dev_ops.write(&e, 0, &s, 4);
	cr_assert_eq(c.reason, STOP_GUEST_EXIT);
	cr_assert_eq(c.value, 3);
}

Test(exit_dev, large_values_clamp_to_255)
{
	struct control c;
	struct exit_dev e = {.ctl = &c};
	uint32_t s = 70000;
	control_init(&c, NULL, NULL);
	exit_dev_ops.write(&e, 0, &s, 4);
	cr_assert_eq(c.value, 255);
}

Test(console, detects_the_panic_line_across_writes)
{
	struct console *c;
	char line[128];
	cr_assert_eq(console_create(&c, -1), 0);
	const char *a = "[ 1.0] ok\r\n[ 1.1] Kernel panic - not sy";
	const char *b = "ncing: sysrq triggered crash\r\n";
	console_output(c, (const uint8_t *)a, strlen(a));
	cr_assert_not(console_panicked(c, line, sizeof(line)));
	console_output(c, (const uint8_t *)b, strlen(b));
	cr_assert(console_panicked(c, line, sizeof(line)));
	cr_assert_str_eq(line, "[ 1.1] Kernel panic - not syncing: sysrq triggered crash");
	console_destroy(c);
}

Test(console, writes_whole_lines_to_its_fd)
{
	struct console *c;
	int p[2];
	char buf[64] = {0};
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(console_create(&c, p[1]), 0);
	console_output(c, (const uint8_t *)"abc", 3);
	console_output(c, (const uint8_t *)"d\npro", 5);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "abcd\n");
	console_flush(c);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 3);
	cr_assert_str_eq(buf, "pro");
	console_destroy(c);
	close(p[0]);
	close(p[1]);
}
