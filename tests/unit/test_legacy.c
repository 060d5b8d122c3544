#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/control.h"
#include "core/wire.h"
#include "legacy/console.h"
#include "legacy/legacy.h"

static int resets, irqs;
static void on_reset(void *ctx)
{
	(void)ctx;
	resets++;
}

static void on_irq(void *ctx)
{
	(void)ctx;
	irqs++;
}

static void kbc_init(struct i8042 *k)
{
	resets = irqs = 0;
	i8042_init(k, on_reset, on_irq, NULL);
}

static void cmd(struct i8042 *k, uint8_t v)
{
	i8042_cmd_ops.write(k, 0, &v, 1);
}

static void put(struct i8042 *k, uint8_t v)
{
	if (i8042_data_ops.write) /* as the bus: no handler, the write is ignored */
		i8042_data_ops.write(k, 0, &v, 1);
}

static uint8_t status(struct i8042 *k)
{
	uint8_t v;
	i8042_cmd_ops.read(k, 0, &v, 1);
	return v;
}

static uint8_t get(struct i8042 *k)
{
	uint8_t v;
	i8042_data_ops.read(k, 0, &v, 1);
	return v;
}

/* Reads what is in the output buffer as Linux's i8042_wait_read would:
 * the status says a byte is there, then the data port gives it. */
static uint8_t expect_byte(struct i8042 *k)
{
	cr_assert(status(k) & 0x01, "a byte waits (OBF)");
	return get(k);
}

/* Linux's __i8042_command for a command with one answer. */
static uint8_t ask(struct i8042 *k, uint8_t c)
{
	cmd(k, c);
	return expect_byte(k);
}

/* The keyboard's answers arrive by interrupt, one edge per byte. */
static void expect_kbd(struct i8042 *k, const uint8_t *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int before = irqs;
		cr_assert(status(k) & 0x01, "byte %zu of %zu waits", i, n);
		cr_assert_eq(status(k) & 0x20, 0, "keyboard data, not aux");
		cr_assert_eq(get(k), want[i], "byte %zu", i);
		/* The edge for byte i was raised before; reading it raises the
		 * edge for byte i+1, if any. */
		cr_assert_eq(irqs, before + (i + 1 < n), "edge after byte %zu", i);
	}
	cr_assert_eq(status(k) & 0x01, 0, "nothing more");
}

Test(i8042, only_the_reset_command_resets)
{
	struct i8042 k;
	uint8_t v = 0xfe;
	kbc_init(&k);
	cr_assert_eq(status(&k) & 0x03, 0, "input and output buffers empty");
	cmd(&k, 0xaa);
	cmd(&k, 0xff); /* Linux's "null command for SMM" at probe */
	cmd(&k, 0xfd);
	cr_assert_eq(resets, 0);
	i8042_cmd_ops.write(&k, 0, &v, 2);
	cr_assert_eq(resets, 0, "wrong width");
	cmd(&k, 0xfe);
	cr_assert_eq(resets, 1);
}

/* What Linux 6.1's i8042 probe does, in order, and what it checks. */
Test(i8042, answers_linux_controller_probe)
{
	struct i8042 k;
	uint8_t ctr;
	kbc_init(&k);
	/* i8042_controller_check: flushing finds no byte; the status is not
	 * 0xff (no controller). */
	cr_assert_eq(status(&k) & 0x01, 0);
	cr_assert_neq(status(&k), 0xff);
	/* i8042_platform_init: A20 through the output port, a null command */
	cmd(&k, 0xd1);
	cr_assert(status(&k) & 0x08, "the last write was a command");
	put(&k, 0xdf);
	cr_assert_eq(ask(&k, 0xd0), 0xdf, "output port written");
	cmd(&k, 0xff);
	/* i8042_controller_selftest */
	cr_assert_eq(ask(&k, 0xaa), 0x55);
	/* i8042_controller_init: two equal reads, translation on (a PC's
	 * firmware leaves it so), system flag, keyboard interrupt */
	ctr = ask(&k, 0x20);
	cr_assert_eq(ask(&k, 0x20), ctr);
	cr_assert_eq(ctr, 0x45);
	cr_assert(status(&k) & 0x10, "no key lock");
	cr_assert(status(&k) & 0x04, "system flag");
	cmd(&k, 0x60);
	put(&k, (uint8_t)((ctr | 0x10) & ~0x01)); /* keyboard off, no interrupt */
	cr_assert_eq(ask(&k, 0x20), 0x54);
	/* i8042_check_aux (without i8042.noaux): the loopback fails at once
	 * (no aux flag) and the port test reports nothing attached */
	cmd(&k, 0xd3);
	put(&k, 0x5a);
	cr_assert(status(&k) & 0x01, "an answer, not a timeout");
	cr_assert_eq(status(&k) & 0x20, 0, "not aux data: no aux port");
	uint8_t t = ask(&k, 0xa9); /* Linux reads the stale byte's successor */
	cr_assert(t != 0 && t != 0xfa && t != 0xff, "aux test fails: %#x", t);
	cr_assert_eq(status(&k) & 0x01, 0);
	/* the keyboard test and the port toggles */
	cr_assert_eq(ask(&k, 0xab), 0x00);
	cmd(&k, 0xa7);
	cr_assert(ask(&k, 0x20) & 0x20);
	cmd(&k, 0xa8);
	cr_assert_eq(ask(&k, 0x20) & 0x20, 0);
	/* i8042_enable_kbd_port */
	cmd(&k, 0x60);
	put(&k, 0x45);
	cr_assert_eq(ask(&k, 0x20), 0x45);
	cr_assert_eq(irqs, 0, "the controller's answers are polled, not signalled");
	cr_assert_eq(resets, 0);
}

/* atkbd_probe, atkbd_reset_state and atkbd_activate behind a translating
 * controller, each answer through the interrupt. */
Test(i8042, keyboard_answers_atkbd)
{
	struct i8042 k;
	kbc_init(&k);
	put(&k, 0xf2); /* GETID */
	cr_assert_eq(irqs, 1);
	expect_kbd(&k, (const uint8_t[]){0xfa, 0xab, 0x41}, 3);
	put(&k, 0xf5); /* deactivate */
	expect_kbd(&k, (const uint8_t[]){0xfa}, 1);
	put(&k, 0xed); /* LEDs off */
	expect_kbd(&k, (const uint8_t[]){0xfa}, 1);
	put(&k, 0x00);
	expect_kbd(&k, (const uint8_t[]){0xfa}, 1);
	put(&k, 0xf3); /* fastest repeat */
	expect_kbd(&k, (const uint8_t[]){0xfa}, 1);
	put(&k, 0x00);
	expect_kbd(&k, (const uint8_t[]){0xfa}, 1);
	put(&k, 0xf4); /* activate */
	expect_kbd(&k, (const uint8_t[]){0xfa}, 1);
	put(&k, 0xee);
	expect_kbd(&k, (const uint8_t[]){0xee}, 1);
	put(&k, 0xff); /* reset: ACK then self-test passed */
	expect_kbd(&k, (const uint8_t[]){0xfa, 0xaa}, 2);
	put(&k, 0xe8); /* not a standard command: resend */
	expect_kbd(&k, (const uint8_t[]){0xfe}, 1);
	put(&k, 0xf0); /* scan code set 3: refused; set 2 and the query */
	put(&k, 0x03);
	expect_kbd(&k, (const uint8_t[]){0xfe}, 1);
	put(&k, 0xf0);
	put(&k, 0x00);
	expect_kbd(&k, (const uint8_t[]){0xfa, 0x41}, 2);
	/* untranslated: the raw set-2 id */
	cmd(&k, 0x60);
	put(&k, 0x05);
	put(&k, 0xf2);
	expect_kbd(&k, (const uint8_t[]){0xfa, 0xab, 0x83}, 3);
	cr_assert_eq(resets, 0);
}

static const uint8_t cad1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};

Test(i8042, ctrl_alt_del_types_set1_when_translating)
{
	struct i8042 k;
	struct vm_err e = {0};
	kbc_init(&k);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0, "%s", e.msg);
	cr_assert_eq(irqs, 1, "one edge for the first byte");
	expect_kbd(&k, cad1, sizeof(cad1));
	cr_assert_eq(irqs, (int)sizeof(cad1), "one edge per byte");
}

Test(i8042, ctrl_alt_del_types_set2_without_translation)
{
	static const uint8_t cad2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
				       0x71, 0xf0, 0x11, 0xf0, 0x14};
	struct i8042 k;
	struct vm_err e = {0};
	kbc_init(&k);
	cmd(&k, 0x60);
	put(&k, 0x05); /* Firecracker's command byte: no translation */
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0, "%s", e.msg);
	cr_assert_eq(irqs, 1);
	expect_kbd(&k, cad2, sizeof(cad2));
}

Test(i8042, keys_wait_while_the_guest_masks_the_keyboard)
{
	struct i8042 k;
	struct vm_err e = {0};
	kbc_init(&k);
	cmd(&k, 0xad); /* keyboard interface off */
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0);
	cr_assert_eq(status(&k) & 0x01, 0, "held in the keyboard");
	cr_assert_eq(irqs, 0);
	cmd(&k, 0xae);
	cr_assert_eq(irqs, 1, "shown once the interface is on");
	cmd(&k, 0x60);
	put(&k, 0x44); /* interrupt off */
	cr_assert_eq(expect_byte(&k), 0x1d, "polled");
	cr_assert_eq(irqs, 1);
	cmd(&k, 0x60);
	put(&k, 0x45);
	cr_assert_eq(irqs, 2, "the interrupt comes back with the bytes");
	/* a controller answer goes before the keys and leaves them in order */
	cr_assert_eq(ask(&k, 0x20), 0x45);
	expect_kbd(&k, cad1 + 1, sizeof(cad1) - 1);
}

Test(i8042, ctrl_alt_del_refused_when_the_keyboard_is_off_or_full)
{
	struct i8042 k;
	struct vm_err e = {0};
	kbc_init(&k);
	put(&k, 0xf5); /* atkbd_deactivate */
	get(&k);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), -EAGAIN);
	cr_assert_eq(e.code, -EAGAIN);
	cr_assert_neq(e.msg[0], '\0');
	cr_assert_eq(status(&k) & 0x01, 0);
	put(&k, 0xf4);
	get(&k);
	cmd(&k, 0xad); /* the guest reads nothing */
	e = (struct vm_err){0};
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0, "16 bytes fit");
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), -ENOSPC);
	cr_assert_neq(e.msg[0], '\0');
	cmd(&k, 0xae);
	uint8_t two[2 * sizeof(cad1)];
	memcpy(two, cad1, sizeof(cad1));
	memcpy(two + sizeof(cad1), cad1, sizeof(cad1));
	expect_kbd(&k, two, sizeof(two));
}

Test(i8042, a_keyboard_command_drops_unsent_keys)
{
	struct i8042 k;
	struct vm_err e = {0};
	kbc_init(&k);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0);
	cr_assert_eq(get(&k), 0x1d);
	put(&k, 0xf4);
	cr_assert_eq(irqs, 3, "one edge for the ACK");
	expect_kbd(&k, (const uint8_t[]){0xfa}, 1);
}

/* ---- i8042 snapshot ------------------------------------------------- */

static int irqs2;
static void on_irq2(void *ctx)
{
	(void)ctx;
	irqs2++;
}

/* A second controller to restore into, fresh from i8042_init. */
static void kbc2_init(struct i8042 *k2)
{
	irqs2 = 0;
	i8042_init(k2, on_reset, on_irq2, NULL);
}

/* What a guest sees from here on, with the interrupts it gets: finish the
 * pending controller command, drain the output buffer, give the pending
 * keyboard command its parameter, read the command byte and output port.
 * Two controllers in the same state give the same bytes. */
#define KDUMP 64
static void kdump(struct i8042 *k, const int *edges, uint8_t *out)
{
	unsigned n = 0;
	int e0 = *edges;

	memset(out, 0, KDUMP);
	out[n++] = status(k);
	put(k, 0x47); /* the controller command's byte */
	for (unsigned i = 0; i < 20; i++) {
		out[n++] = status(k);
		out[n++] = get(k);
	}
	put(k, 0x00); /* the keyboard command's parameter */
	for (unsigned i = 0; i < 3; i++) {
		out[n++] = status(k);
		out[n++] = get(k);
	}
	out[n++] = ask(k, 0x20);
	out[n++] = ask(k, 0xd0);
	out[n++] = (uint8_t)(*edges - e0);
	cr_assert_leq(n, KDUMP);
}

static void ksave(struct i8042 *k, struct wbuf *w)
{
	wbuf_init(w);
	cr_assert_eq(i8042_save(k, w), 0);
}

/* Every field of the state (the lock and callbacks aside) is the same. */
static void expect_same_state(const struct i8042 *a, const struct i8042 *b)
{
	cr_assert_eq(a->ctr, b->ctr);
	cr_assert_eq(a->cmd, b->cmd);
	cr_assert_eq(a->last_was_cmd, b->last_was_cmd);
	cr_assert_eq(a->has_reply, b->has_reply);
	cr_assert_eq(a->reply, b->reply);
	cr_assert_eq(a->last_read, b->last_read);
	cr_assert_eq(a->outp, b->outp);
	cr_assert_eq(a->signalled, b->signalled);
	cr_assert_eq(a->kq_head, b->kq_head);
	cr_assert_eq(a->kq_len, b->kq_len);
	cr_assert_arr_eq(a->kq, b->kq, sizeof(a->kq));
	cr_assert_eq(a->kbd_cmd, b->kbd_cmd);
	cr_assert_eq(a->kbd_last, b->kbd_last);
	cr_assert_eq(a->scanning, b->scanning);
}

Test(i8042, snapshot_round_trip)
{
	struct i8042 k, k2;
	struct vm_err e = {0};
	struct wbuf w;
	struct rbuf r;
	char err[128] = "";
	uint8_t a[KDUMP], b[KDUMP];

	kbc_init(&k);
	kbc2_init(&k2);
	/* Keys half read (the queue's head has moved), a controller answer
	 * in front of them, a command waiting for its byte on the data
	 * port, a keyboard command waiting for its parameter. */
	put(&k, 0xf0); /* scan code set: the parameter comes later */
	cr_assert_eq(get(&k), 0xfa);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0, "%s", e.msg);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0, "%s", e.msg);
	for (unsigned i = 0; i < 3; i++)
		get(&k);
	cmd(&k, 0xd1);
	put(&k, 0xdd); /* output port */
	cmd(&k, 0x20); /* an answer waits */
	cmd(&k, 0x60); /* a command byte follows */
	ksave(&k, &w);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(i8042_restore(&k2, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r), "the whole section read");
	cr_assert_eq(irqs2, 0, "the answer is on show, not a key");
	cr_assert_eq(k2.kq_len, 13);
	kdump(&k, &irqs, a);
	kdump(&k2, &irqs2, b);
	cr_assert_arr_eq(a, b, KDUMP);
	cr_assert_eq(a[2], 0x45, "the controller's answer first");
	cr_assert_eq(a[4], cad1[3], "then the keys from where the guest was");
	cr_assert_eq(a[2 + 2 * 13], cad1[7], "the last of 13");
	wbuf_free(&w);
}

Test(i8042, snapshot_raises_a_key_on_show_again)
{
	struct i8042 k, k2;
	struct vm_err e = {0};
	struct wbuf w;
	struct rbuf r;

	kbc_init(&k);
	kbc2_init(&k2);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0);
	cr_assert_eq(irqs, 1);
	ksave(&k, &w);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(i8042_restore(&k2, &r, NULL, 0), 0);
	cr_assert_eq(irqs2, 1, "the key waiting at the snapshot interrupts again");
	for (size_t i = 0; i < sizeof(cad1); i++) {
		cr_assert_eq(irqs2, (int)i + 1, "one edge per byte, as before");
		cr_assert_eq(expect_byte(&k2), cad1[i]);
	}
	wbuf_free(&w);

	/* With the keyboard interrupt off, the key waits silently. */
	kbc_init(&k);
	kbc2_init(&k2);
	cmd(&k, 0x60);
	put(&k, 0x44);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0);
	ksave(&k, &w);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(i8042_restore(&k2, &r, NULL, 0), 0);
	cr_assert_eq(irqs2, 0);
	cr_assert_eq(expect_byte(&k2), 0x1d, "polled");
	wbuf_free(&w);
}

Test(i8042, snapshot_truncated_anywhere_refused)
{
	struct i8042 k, k2, fresh;
	struct vm_err e = {0};
	struct wbuf w;
	struct rbuf r;
	char err[128];

	kbc_init(&k);
	kbc2_init(&k2);
	kbc2_init(&fresh);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0);
	cmd(&k, 0x60);
	ksave(&k, &w);
	for (size_t len = 0; len < w.len; len++) {
		err[0] = 0;
		rbuf_init(&r, w.p, len);
		cr_assert_eq(i8042_restore(&k2, &r, err, sizeof(err)), -EBADMSG, "len %zu", len);
		cr_assert_eq(strncmp(err, "i8042: ", 7), 0, "%s", err);
	}
	expect_same_state(&k2, &fresh);
	cr_assert_eq(irqs2, 0);
	wbuf_free(&w);
}

/* Offsets in version 1: u32 version, then one byte each for the command
 * byte, pending command, last write was a command, answer waiting, the
 * answer, last byte read, output port, pending keyboard command, its last
 * byte, scanning, queue length; then the queue. */
Test(i8042, snapshot_bad_values_refused)
{
	static const struct {
		size_t off;
		uint8_t v;
		int want;
		const char *says;
	} bad[] = {
	    {0, 2, -EBADMSG, "version 2"},
	    {5, 0x20, -EINVAL, "controller command 0x20"}, /* answered at once, never pending */
	    {5, 0xfe, -EINVAL, "controller command"},
	    {6, 2, -EBADMSG, "flag"},
	    {7, 0x80, -EBADMSG, "flag"},
	    {11, 0xf2, -EINVAL, "keyboard command 0xf2"},
	    {11, 0x01, -EINVAL, "keyboard command"},
	    {13, 3, -EBADMSG, "flag"},
	    {14, 17, -EINVAL, "queue of 17"},
	    {14, 9, -EBADMSG, "truncated"},
	};
	struct i8042 k, k2, fresh;
	struct vm_err e = {0};
	struct wbuf w;
	struct rbuf r;
	uint8_t p[64];
	char err[128];

	kbc_init(&k);
	kbc2_init(&k2);
	kbc2_init(&fresh);
	cr_assert_eq(i8042_ctrl_alt_del(&k, &e), 0);
	ksave(&k, &w);
	cr_assert_eq(w.len, 4 + 11 + sizeof(cad1));
	cr_assert_leq(w.len, sizeof(p));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memcpy(p, w.p, w.len);
		p[bad[i].off] = bad[i].v;
		err[0] = 0;
		rbuf_init(&r, p, w.len);
		cr_assert_eq(i8042_restore(&k2, &r, err, sizeof(err)), bad[i].want,
			     "byte %zu = %#x: %s", bad[i].off, bad[i].v, err);
		cr_assert(strstr(err, bad[i].says), "'%s' lacks '%s'", err, bad[i].says);
	}
	expect_same_state(&k2, &fresh);
	cr_assert_eq(irqs2, 0);
	wbuf_free(&w);
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

/* Two vCPUs signalling at once: the time is recorded, and fired() called,
 * once (a check then a store let both through: fired twice, the boot's
 * exit count written by two threads). */
static atomic_uint fired_calls;
static pthread_barrier_t both;

static void count_fired(void *ctx, uint64_t us)
{
	(void)ctx;
	(void)us;
	atomic_fetch_add(&fired_calls, 1);
	usleep(100); /* as a log line takes */
}

static void *signal_timer(void *t)
{
	uint8_t v = BOOT_TIMER_MAGIC;

	pthread_barrier_wait(&both);
	boot_timer_ops.write(t, 0, &v, 1);
	return NULL;
}

Test(boot_timer, two_vcpus_at_once_fire_it_once)
{
	launch_ns = now_ns() - 1000000;
	cr_assert_eq(pthread_barrier_init(&both, NULL, 2), 0);
	for (unsigned round = 0; round < 300; round++) {
		struct boot_timer t = {.fired = count_fired};
		pthread_t a, b;

		atomic_store(&fired_calls, 0);
		cr_assert_eq(pthread_create(&a, NULL, signal_timer, &t), 0);
		cr_assert_eq(pthread_create(&b, NULL, signal_timer, &t), 0);
		pthread_join(a, NULL);
		pthread_join(b, NULL);
		cr_assert_eq(atomic_load(&fired_calls), 1, "round %u", round);
		cr_assert_gt(t.boot_us, 0);
	}
	pthread_barrier_destroy(&both);
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
