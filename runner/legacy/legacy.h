/* Small fixed devices every x86 flint guest has: the i8042 reset line, the
 * Firecracker-compatible boot timer, and flint's exit-status register. Each
 * is a bus device with no knowledge of KVM. */
#ifndef FLINT_LEGACY_H
#define FLINT_LEGACY_H

#include <stdint.h>

#include "core/bus.h"
#include "core/control.h"
#include "core/mailbox.h"

/* i8042 keyboard controller, reset path only: register i8042_bus_ops at
 * I8042_DATA_PORT and I8042_CMD_PORT (one port each) with opaque = the
 * struct. Writing 0xfe to the command port pulses reset: `reset` is called. */
struct i8042 {
	void (*reset)(void *ctx);
	void *ctx;
};
extern const struct bus_ops i8042_data_ops;
extern const struct bus_ops i8042_cmd_ops;

/* Press and release Ctrl-Alt-Del on the keyboard (Firecracker's
 * SendCtrlAltDel). 0, or -errno with err saying why. */
int i8042_ctrl_alt_del(struct i8042 *k, struct vm_err *err);

/* Boot timer at BOOT_TIMER_ADDR: a one-byte write of 123 at offset 0 records
 * the time since launch (Firecracker's contract) and logs it. */
#define BOOT_TIMER_MAGIC 123
struct boot_timer {
	uint64_t boot_us; /* 0 until the guest signals */
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
