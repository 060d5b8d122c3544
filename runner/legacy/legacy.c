#include "legacy/legacy.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"

/* Status register (port 0x64, read) */
#define STR_OBF	     0x01 /* a byte waits at port 0x60 */
#define STR_SYS	     0x04 /* the command byte's system flag: self-test passed */
#define STR_CMD	     0x08 /* the last write went to port 0x64 */
#define STR_UNLOCKED 0x10 /* no key lock: Linux warns "Keylock active" without it */

/* Command byte ("CTR" in Linux) */
#define CTR_KBDINT 0x01 /* interrupt when keyboard data arrives */
#define CTR_SYS	   0x04
#define CTR_KBDDIS 0x10 /* keyboard interface off: its bytes wait in the keyboard */
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40 /* the controller hands on scan code set 1 */

/* Controller commands (port 0x64, write) and their answers */
#define CMD_READ_CTR	0x20
#define CMD_WRITE_CTR	0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE	0xa8
#define CMD_AUX_TEST	0xa9
#define CMD_SELF_TEST	0xaa
#define CMD_KBD_TEST	0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE	0xae
#define CMD_READ_OUTP	0xd0
#define CMD_WRITE_OUTP	0xd1
#define CMD_KBD_LOOP	0xd2 /* the next data byte comes back as keyboard data */
#define CMD_AUX_LOOP	0xd3
#define CMD_AUX_SEND	0xd4
#define CMD_RESET	0xfe /* pulse output port bit 0: the CPU's reset line */
#define SELF_TEST_OK	0x55
#define PORT_TEST_OK	0x00
#define PORT_CLOCK_HIGH 0x02 /* a port test's answer for an empty socket */
#define OUTP_INIT	0x03 /* reset line released, A20 on */

/* Keyboard commands (port 0x60, write) and answers */
#define KBD_SET_LEDS   0xed
#define KBD_ECHO       0xee
#define KBD_SCAN_SET   0xf0
#define KBD_GET_ID     0xf2
#define KBD_TYPEMATIC  0xf3
#define KBD_ENABLE     0xf4
#define KBD_DISABLE    0xf5
#define KBD_DEFAULTS   0xf6
#define KBD_SET3_FIRST 0xf7 /* 0xf7-0xfd: set 3 key modes, acknowledged */
#define KBD_SET3_LAST  0xfd
#define KBD_RESEND     0xfe
#define KBD_RESET      0xff
#define KBD_ACK	       0xfa
#define KBD_BAT_OK     0xaa
#define KBD_ID0	       0xab
#define KBD_ID1	       0x83 /* an MF2 keyboard; 0x41 once translated */
#define KBD_ID1_XLATE  0x41
#define KBD_SET2       0x02 /* the only set this keyboard speaks; 0x41 translated */

/* Ctrl, Alt and Delete pressed, then released in reverse: set 1 (translated;
 * a release is the code | 0x80) and set 2 (a release is prefixed 0xf0);
 * Delete is an extended (0xe0) key in both. */
static const uint8_t cad_set1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
static const uint8_t cad_set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
				   0x71, 0xf0, 0x11, 0xf0, 0x14};

void i8042_init(struct i8042 *k, void (*reset)(void *ctx), void (*irq)(void *ctx), void *ctx)
{
	*k = (struct i8042){
	    .reset = reset,
	    .irq = irq,
	    .ctx = ctx,
	    .lock = PTHREAD_MUTEX_INITIALIZER,
	    .ctr = CTR_KBDINT | CTR_SYS | CTR_XLATE,
	    .outp = OUTP_INIT,
	    .scanning = true,
	};
}

/* The rest runs with k->lock held. */

static bool kbd_on_show(const struct i8042 *k)
{
	return !k->has_reply && !(k->ctr & CTR_KBDDIS) && k->kq_len > 0;
}

/* One edge per keyboard byte that reaches the output buffer with the
 * interrupt enabled: Linux's handler reads one byte per interrupt. The
 * controller's own answers are polled by the guest and raise nothing. */
static void update_irq(struct i8042 *k)
{
	if (!kbd_on_show(k) || !(k->ctr & CTR_KBDINT)) {
		k->signalled = false;
		return;
	}
	if (k->signalled)
		return;
	k->signalled = true;
	if (k->irq)
		k->irq(k->ctx);
}

static void kq_clear(struct i8042 *k)
{
	k->kq_head = k->kq_len = 0;
	k->signalled = false;
}

static void kbd_send(struct i8042 *k, uint8_t b)
{
	/* Command answers follow a clear and are at most three bytes. */
	if (k->kq_len == I8042_KBD_QUEUE)
		return;
	k->kq[(k->kq_head + k->kq_len++) % I8042_KBD_QUEUE] = b;
	k->kbd_last = b;
}

static uint8_t kbd_pop(struct i8042 *k)
{
	uint8_t b = k->kq[k->kq_head];

	k->kq_head = (k->kq_head + 1) % I8042_KBD_QUEUE;
	k->kq_len--;
	k->signalled = false;
	return b;
}

static void reply(struct i8042 *k, uint8_t b)
{
	/* An unread earlier answer is replaced, as one output register would. */
	k->reply = b;
	k->has_reply = true;
}

static void kbd_param(struct i8042 *k, uint8_t cmd, uint8_t v)
{
	bool xlate = k->ctr & CTR_XLATE;

	if (cmd != KBD_SCAN_SET) { /* LEDs and typematic rate: nothing to show */
		kbd_send(k, KBD_ACK);
	} else if (v == 0) { /* which set? */
		kbd_send(k, KBD_ACK);
		kbd_send(k, xlate ? KBD_ID1_XLATE : KBD_SET2);
	} else if (v == 2) {
		kbd_send(k, KBD_ACK);
	} else {
		kbd_send(k, KBD_RESEND); /* sets 1 and 3: not this keyboard */
	}
}

/* A byte for the keyboard: a command, or the parameter of the last one. */
static void kbd_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->kbd_cmd;

	/* A keyboard drops what it had not sent when it gets a command. */
	if (v != KBD_RESEND)
		kq_clear(k);
	k->kbd_cmd = 0;
	if (cmd) {
		kbd_param(k, cmd, v);
		return;
	}
	switch (v) {
	case KBD_SET_LEDS:
	case KBD_SCAN_SET:
	case KBD_TYPEMATIC:
		kbd_send(k, KBD_ACK);
		k->kbd_cmd = v;
		break;
	case KBD_ECHO:
		kbd_send(k, KBD_ECHO);
		break;
	case KBD_GET_ID:
		kbd_send(k, KBD_ACK);
		kbd_send(k, KBD_ID0);
		kbd_send(k, k->ctr & CTR_XLATE ? KBD_ID1_XLATE : KBD_ID1);
		break;
	case KBD_ENABLE:
	case KBD_DISABLE:
		kbd_send(k, KBD_ACK);
		k->scanning = v == KBD_ENABLE;
		break;
	case KBD_RESEND:
		kbd_send(k, k->kbd_last);
		break;
	case KBD_RESET:
		kbd_send(k, KBD_ACK);
		kbd_send(k, KBD_BAT_OK);
		k->scanning = true;
		break;
	default:
		if (v == KBD_DEFAULTS || (v >= KBD_SET3_FIRST && v <= KBD_SET3_LAST))
			kbd_send(k, KBD_ACK);
		else
			kbd_send(k, KBD_RESEND); /* not a command it knows */
		break;
	}
}

static void i8042_data_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct i8042 *k = opaque;
	uint8_t v;

	(void)off;
	pthread_mutex_lock(&k->lock);
	if (k->has_reply) {
		v = k->reply;
		k->has_reply = false;
	} else if (kbd_on_show(k)) {
		v = kbd_pop(k);
	} else {
		v = k->last_read; /* an empty buffer shows its last byte again */
	}
	k->last_read = v;
	update_irq(k); /* the next keyboard byte, if any */
	pthread_mutex_unlock(&k->lock);
	memset(data, 0, len);
	((uint8_t *)data)[0] = v;
}

static void i8042_data_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct i8042 *k = opaque;
	uint8_t v = *(const uint8_t *)data;

	if (off != 0 || len != 1)
		return;
	pthread_mutex_lock(&k->lock);
	k->last_was_cmd = false;
	switch (k->cmd) {
	case 0:
		kbd_write(k, v);
		break;
	case CMD_WRITE_CTR:
		k->ctr = v;
		break;
	case CMD_WRITE_OUTP:
		k->outp = v;
		break;
	case CMD_KBD_LOOP:
		kbd_send(k, v);
		break;
	case CMD_AUX_LOOP:
		/* No aux port: the byte comes back without the aux flag, which
		 * Linux takes as a failed loopback at once (no 0.5 s timeout). */
		reply(k, v);
		break;
	default: /* CMD_AUX_SEND: nothing is attached */
		break;
	}
	k->cmd = 0;
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_status_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct i8042 *k = opaque;
	uint8_t st = STR_UNLOCKED;

	(void)off;
	pthread_mutex_lock(&k->lock);
	if (k->has_reply || kbd_on_show(k))
		st |= STR_OBF;
	if (k->ctr & CTR_SYS)
		st |= STR_SYS;
	if (k->last_was_cmd)
		st |= STR_CMD;
	pthread_mutex_unlock(&k->lock);
	/* The input buffer is always empty: commands take effect at once. */
	memset(data, 0, len);
	((uint8_t *)data)[0] = st;
}

static void i8042_cmd_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct i8042 *k = opaque;
	uint8_t v = *(const uint8_t *)data;
	bool reset = false;

	if (off != 0 || len != 1)
		return;
	pthread_mutex_lock(&k->lock);
	k->last_was_cmd = true;
	k->cmd = 0;
	switch (v) {
	case CMD_READ_CTR:
		reply(k, k->ctr);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTP:
	case CMD_KBD_LOOP:
	case CMD_AUX_LOOP:
	case CMD_AUX_SEND:
		k->cmd = v; /* its byte follows on the data port */
		break;
	case CMD_AUX_DISABLE:
		k->ctr |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ctr &= (uint8_t)~CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
		reply(k, PORT_CLOCK_HIGH);
		break;
	case CMD_SELF_TEST:
		reply(k, SELF_TEST_OK);
		break;
	case CMD_KBD_TEST:
		reply(k, PORT_TEST_OK);
		break;
	case CMD_KBD_DISABLE:
		k->ctr |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ctr &= (uint8_t)~CTR_KBDDIS;
		break;
	case CMD_READ_OUTP:
		reply(k, k->outp);
		break;
	case CMD_RESET:
		reset = true;
		break;
	default: /* 0xff and other pulses, the mux: nothing to do */
		break;
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->ctx);
}

int i8042_ctrl_alt_del(struct i8042 *k, struct vm_err *err)
{
	const uint8_t *codes;
	size_t n;
	int r = 0;

	pthread_mutex_lock(&k->lock);
	if (k->ctr & CTR_XLATE) {
		codes = cad_set1;
		n = sizeof(cad_set1);
	} else {
		codes = cad_set2;
		n = sizeof(cad_set2);
	}
	if (!k->scanning) {
		r = -EAGAIN;
	} else if (I8042_KBD_QUEUE - k->kq_len < n) {
		r = -ENOSPC;
	} else {
		for (size_t i = 0; i < n; i++)
			kbd_send(k, codes[i]);
		update_irq(k);
	}
	pthread_mutex_unlock(&k->lock);
	if (r == -EAGAIN)
		return vm_err_set(err, r, "the guest has switched its keyboard off; try again");
	if (r == -ENOSPC)
		return vm_err_set(err, r, "the guest has not read the keys sent before");
	return 0;
}

/* Snapshot state, version 1: the controller's bytes, then the keyboard's
 * and its queue oldest first. `signalled` is not saved: restore raises the
 * interrupt for a byte on show afresh. */
#define I8042_STATE_V1 1

int i8042_save(const struct i8042 *ck, struct wbuf *w)
{
	/* The lock is not part of the state: taking it changes nothing saved. */
	struct i8042 *k = (struct i8042 *)ck;

	pthread_mutex_lock(&k->lock);
	wput_u32(w, I8042_STATE_V1);
	wput_u8(w, k->ctr);
	wput_u8(w, k->cmd);
	wput_u8(w, k->last_was_cmd);
	wput_u8(w, k->has_reply);
	wput_u8(w, k->reply);
	wput_u8(w, k->last_read);
	wput_u8(w, k->outp);
	wput_u8(w, k->kbd_cmd);
	wput_u8(w, k->kbd_last);
	wput_u8(w, k->scanning);
	wput_u8(w, (uint8_t)k->kq_len);
	for (unsigned i = 0; i < k->kq_len; i++)
		wput_u8(w, k->kq[(k->kq_head + i) % I8042_KBD_QUEUE]);
	pthread_mutex_unlock(&k->lock);
	return wbuf_err(w);
}

/* A refusal: -errno, err saying which field (fmt is a literal). */
#define refuse(e, err, errlen, ...) err_set(err, errlen, e, "i8042: " __VA_ARGS__)

/* The commands that wait for a byte on the data port: the only values
 * i8042_cmd_write leaves in cmd, and kbd_write in kbd_cmd. */
static bool cmd_takes_byte(uint8_t c)
{
	return c == 0 || c == CMD_WRITE_CTR || c == CMD_WRITE_OUTP || c == CMD_KBD_LOOP ||
	       c == CMD_AUX_LOOP || c == CMD_AUX_SEND;
}

static bool kbd_cmd_takes_param(uint8_t c)
{
	return c == 0 || c == KBD_SET_LEDS || c == KBD_SCAN_SET || c == KBD_TYPEMATIC;
}

int i8042_restore(struct i8042 *k, struct rbuf *r, char *err, size_t errlen)
{
	uint8_t ctr, cmd, reply, last_read, outp, kbd_cmd, kbd_last, len;
	uint8_t kq[I8042_KBD_QUEUE];
	bool last_was_cmd, has_reply, scanning, bad = false;
	uint32_t version;

	version = rget_u32(r);
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated before its version");
	if (version != I8042_STATE_V1)
		return refuse(-EBADMSG, err, errlen, "state version %u, this flint reads %u",
			      version, I8042_STATE_V1);
	ctr = rget_u8(r);
	cmd = rget_u8(r);
	last_was_cmd = rget_bool(r, &bad);
	has_reply = rget_bool(r, &bad);
	reply = rget_u8(r);
	last_read = rget_u8(r);
	outp = rget_u8(r);
	kbd_cmd = rget_u8(r);
	kbd_last = rget_u8(r);
	scanning = rget_bool(r, &bad);
	len = rget_u8(r);
	if (len > I8042_KBD_QUEUE)
		return refuse(-EINVAL, err, errlen, "keyboard queue of %u bytes, over %u", len,
			      I8042_KBD_QUEUE);
	rget_bytes(r, kq, len);
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated");
	if (bad)
		return refuse(-EBADMSG, err, errlen, "a flag neither 0 nor 1");
	if (!cmd_takes_byte(cmd))
		return refuse(-EINVAL, err, errlen, "pending controller command %#x", cmd);
	if (!kbd_cmd_takes_param(kbd_cmd))
		return refuse(-EINVAL, err, errlen, "pending keyboard command %#x", kbd_cmd);

	pthread_mutex_lock(&k->lock);
	k->ctr = ctr;
	k->cmd = cmd;
	k->last_was_cmd = last_was_cmd;
	k->has_reply = has_reply;
	k->reply = reply;
	k->last_read = last_read;
	k->outp = outp;
	memcpy(k->kq, kq, len);
	k->kq_head = 0;
	k->kq_len = len;
	k->kbd_cmd = kbd_cmd;
	k->kbd_last = kbd_last;
	k->scanning = scanning;
	k->signalled = false;
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

const struct bus_ops i8042_data_ops = {.read = i8042_data_read, .write = i8042_data_write};
const struct bus_ops i8042_cmd_ops = {.read = i8042_status_read, .write = i8042_cmd_write};

static void boot_timer_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct boot_timer *t = opaque;
	uint64_t none = 0, us;

	if (off != 0 || len != 1 || *(const uint8_t *)data != BOOT_TIMER_MAGIC ||
	    __atomic_load_n(&t->boot_us, __ATOMIC_ACQUIRE))
		return;
	us = us_since_launch();
	if (!__atomic_compare_exchange_n(&t->boot_us, &none, us, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return; /* another vCPU's write came first */
	pr_info("guest boot time: %llu us (%llu ms) since launch", (unsigned long long)us,
		(unsigned long long)us / 1000);
	if (t->fired)
		t->fired(t->ctx, us);
}

const struct bus_ops boot_timer_ops = {.write = boot_timer_write};

static void exit_dev_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct exit_dev *e = opaque;
	uint32_t v = 0;

	if (off != 0 || (len != 1 && len != 2 && len != 4))
		return;
	memcpy(&v, data, len); /* x86 is little-endian, as is the guest */
	control_request_stop(e->ctl, STOP_GUEST_EXIT, v > 255 ? 255 : (int)v, NULL);
}

const struct bus_ops exit_dev_ops = {.write = exit_dev_write};
