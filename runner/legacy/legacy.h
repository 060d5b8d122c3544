/* Small fixed devices every x86 flint guest has: the i8042 with a keyboard, the
 * Firecracker-compatible boot timer, and flint's exit-status register. Each
 * is a bus device with no knowledge of KVM. */
#ifndef FLINT_LEGACY_H
#define FLINT_LEGACY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/control.h"
#include "core/mailbox.h"
#include "core/wire.h"

/* i8042 keyboard controller with a PS/2 keyboard, enough for Linux's i8042
 * and atkbd drivers to find them quickly and for Ctrl-Alt-Del: register
 * i8042_data_ops at I8042_DATA_PORT and i8042_cmd_ops at I8042_CMD_PORT (one
 * port each) with opaque = the struct. Writing 0xfe to the command port
 * pulses reset: `reset` is called. `irq` is called (an edge) each time a byte
 * from the keyboard reaches the output buffer while the guest has the
 * keyboard interrupt enabled: trigger I8042_KBD_IRQ. There is no mouse port:
 * the controller answers the aux tests as a port with nothing attached, so a
 * guest without i8042.noaux gives up on it at once. The vCPU threads (the bus
 * ops) and the control thread (i8042_ctrl_alt_del) share the state under
 * `lock`. The fields are the device's own: set them up with i8042_init. */
#define I8042_KBD_IRQ	1
#define I8042_KBD_QUEUE 16 /* a PS/2 keyboard's own buffer */
struct i8042 {
	void (*reset)(void *ctx);
	void (*irq)(void *ctx);
	void *ctx;
	pthread_mutex_t lock;
	uint8_t ctr;	   /* the controller's command byte */
	uint8_t cmd;	   /* a command waiting for its byte on the data port, or 0 */
	bool last_was_cmd; /* status bit 3: the last write went to the command port */
	bool has_reply;	   /* the controller's answer waits in the output buffer */
	uint8_t reply, last_read;
	uint8_t outp;	/* the output port (0xd0/0xd1): A20 and the reset line */
	bool signalled; /* `irq` was called for the keyboard byte on show */
	/* The keyboard: its answers and keys wait here for the controller. */
	uint8_t kq[I8042_KBD_QUEUE];
	unsigned kq_head, kq_len;
	uint8_t kbd_cmd;  /* a keyboard command waiting for its parameter, or 0 */
	uint8_t kbd_last; /* the last byte it sent, for Resend */
	bool scanning;	  /* keys are reported (0xf4 enables, 0xf5 disables) */
};
extern const struct bus_ops i8042_data_ops;
extern const struct bus_ops i8042_cmd_ops;

/* Set k up as a PC's controller after its firmware ran: keyboard interrupt
 * on, translation to scan code set 1 on, keyboard enabled. reset and irq may
 * be NULL. No teardown is needed. */
void i8042_init(struct i8042 *k, void (*reset)(void *ctx), void (*irq)(void *ctx), void *ctx);

/* Press and release Ctrl-Alt-Del on the keyboard (Firecracker's
 * SendCtrlAltDel): queue the scan codes in the set the guest reads (set 1
 * when the controller translates, else set 2) and raise the interrupt.
 * 0, or -errno with err saying why: -EAGAIN while the guest has switched the
 * keyboard off, -ENOSPC when the guest has not read earlier keys. Any thread. */
int i8042_ctrl_alt_del(struct i8042 *k, struct vm_err *err);

/* Snapshot: append the controller's state (command byte, output buffer,
 * output port, a command waiting for its byte) and the keyboard's (its
 * queue of bytes not yet read, in order, a command waiting for its
 * parameter, scanning on or off), its own u32 version first. Returns 0 or
 * w's error (-ENOMEM). Any thread. */
int i8042_save(const struct i8042 *k, struct wbuf *w) WARN_UNUSED;

/* Read state written by i8042_save from r and make it k's (k set up with
 * i8042_init; its callbacks are kept). Everything is decoded and checked
 * before k changes: -EBADMSG for a truncated or corrupt input or another
 * version, -EINVAL for a state this controller cannot be in (a pending
 * command it does not take, a keyboard queue over I8042_KBD_QUEUE); err
 * (errlen bytes, may be 0) says which field, and k is left as it was. On
 * success, a keyboard byte waiting in the output buffer with the interrupt
 * enabled raises the interrupt again (its edge before the snapshot may not
 * have reached the guest). Bytes after the section are left in r. */
int i8042_restore(struct i8042 *k, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

/* Boot timer at BOOT_TIMER_ADDR: a one-byte write of 123 at offset 0 records
 * the time since launch (Firecracker's contract) and logs it. */
#define BOOT_TIMER_MAGIC 123
struct boot_timer {
	/* 0 until the guest signals; set once (two vCPUs may race to), read
	 * with __atomic_load_n by other threads (the metrics). */
	uint64_t boot_us;
	void (*fired)(void *ctx, uint64_t us); /* optional */
	void *ctx;
};
extern const struct bus_ops boot_timer_ops;

/* Exit-status register at EXIT_DEV_ADDR: a 1-, 2- or 4-byte write at offset 0
 * stops the VM; flint exits with the value (0-255; larger values give 255). */
struct exit_dev {
	struct control *ctl;
};
extern const struct bus_ops exit_dev_ops;

#endif
