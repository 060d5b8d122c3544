#include "legacy/legacy.h"

#include <errno.h>
#include <string.h>

#include "core/util.h"

#define I8042_STATUS_SYSFLAG 0x04 /* "self-test passed", as after a cold boot */
#define I8042_CMD_RESET 0xfe

static void i8042_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len); /* no keyboard: nothing to read */
}

static void i8042_status_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	/* Output buffer empty, input buffer empty: the kernel's kb_wait() before
	 * a reset sees an idle controller at once. */
	memset(data, 0, len);
	((uint8_t *)data)[0] = I8042_STATUS_SYSFLAG;
}

static void i8042_cmd_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct i8042 *k = opaque;
	if (off == 0 && len == 1 && *(const uint8_t *)data == I8042_CMD_RESET && k->reset)
		k->reset(k->ctx);
}

int i8042_ctrl_alt_del(struct i8042 *k, struct vm_err *err)
{
	(void)k;
	/* Until the i8042 has a keyboard with an interrupt. */
	return vm_err_set(err, -EOPNOTSUPP, "SendCtrlAltDel is not supported yet");
}

const struct bus_ops i8042_data_ops = {.read = i8042_read};
const struct bus_ops i8042_cmd_ops = {.read = i8042_status_read, .write = i8042_cmd_write};

static void boot_timer_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct boot_timer *t = opaque;
	if (off != 0 || len != 1 || *(const uint8_t *)data != BOOT_TIMER_MAGIC || t->boot_us)
		return;
	t->boot_us = us_since_launch();
	pr_info("guest boot time: %llu us (%llu ms) since launch",
		(unsigned long long)t->boot_us, (unsigned long long)t->boot_us / 1000);
	if (t->fired)
		t->fired(t->ctx, t->boot_us);
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
