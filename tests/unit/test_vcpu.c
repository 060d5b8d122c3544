/* The exit handler fed synthetic kvm_run exits, no KVM involved. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "core/bus.h"
#include "core/control.h"
#include "core/vcpu.h"

struct fixture {
	struct bus *pio, *mmio;
	struct control ctl;
	struct vcpu_env env;
	struct vcpu v;
	/* kvm_run plus room for port I/O data after it, as KVM lays it out. */
	union {
		struct kvm_run run;
		uint8_t page[4096];
	} r;
	uint8_t last[8];
	uint64_t last_off;
	int writes, reads;
};

static struct fixture f;

static void dev_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct fixture *x = opaque;
	x->writes++;
	x->last_off = off;
	memcpy(x->last, data, len < 8 ? len : 8);
}

static void dev_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct fixture *x = opaque;
	x->reads++;
	x->last_off = off;
	memset(data, 0x42, len);
}

static void stop_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	(void)off;
	(void)data;
	(void)len;
	control_request_stop(opaque, STOP_GUEST_EXIT, 7, NULL);
}

static const struct bus_ops dev_ops = {.read = dev_read, .write = dev_write};
static const struct bus_ops stop_ops = {.write = stop_write};

static void setup(void)
{
	memset(&f, 0, sizeof(f));
	cr_assert_eq(bus_create(&f.pio), 0);
	cr_assert_eq(bus_create(&f.mmio), 0);
	control_init(&f.ctl, NULL, NULL);
	cr_assert_eq(bus_register(f.pio, 0x3f8, 8, &dev_ops, &f), 0);
	cr_assert_eq(bus_register(f.pio, 0x501, 1, &stop_ops, &f.ctl), 0);
	cr_assert_eq(bus_register(f.mmio, 0xd0000000, 0x1000, &dev_ops, &f), 0);
	f.env = (struct vcpu_env){.pio = f.pio, .mmio = f.mmio, .ctl = &f.ctl};
	f.v.env = &f.env;
	f.v.fd = f.v.stats_fd = -1;
	f.v.run_size = sizeof(f.r);
}

static void teardown(void)
{
	bus_destroy(f.pio);
	bus_destroy(f.mmio);
}

static void io_exit(uint8_t dir, uint16_t port, uint8_t size, uint32_t count)
{
	f.r.run.exit_reason = KVM_EXIT_IO;
	f.r.run.io.direction = dir;
	f.r.run.io.port = port;
	f.r.run.io.size = size;
	f.r.run.io.count = count;
	f.r.run.io.data_offset = sizeof(struct kvm_run);
}

TestSuite(exit, .init = setup, .fini = teardown);

Test(exit, pio_out_reaches_the_device_at_an_offset)
{
	io_exit(KVM_EXIT_IO_OUT, 0x3f9, 1, 1);
	f.r.page[sizeof(struct kvm_run)] = 0xab;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.writes, 1);
	cr_assert_eq(f.last_off, 1);
	cr_assert_eq(f.last[0], 0xab);
	cr_assert_eq(f.v.exits[KVM_EXIT_IO], 1);
	cr_assert_eq(f.v.pio_exits, 1);
}

Test(exit, pio_in_fills_kvm_run_data)
{
	io_exit(KVM_EXIT_IO_IN, 0x3fd, 1, 1);
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.reads, 1);
	cr_assert_eq(f.r.page[sizeof(struct kvm_run)], 0x42);
}

Test(exit, string_io_repeats_count_times)
{
	io_exit(KVM_EXIT_IO_OUT, 0x3f8, 1, 5);
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.writes, 5);
}

Test(exit, unclaimed_port_reads_all_ones_and_is_counted)
{
	io_exit(KVM_EXIT_IO_IN, 0x2f8, 1, 1);
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.r.page[sizeof(struct kvm_run)], 0xff);
	cr_assert_eq(f.v.unhandled, 1);
}

Test(exit, io_data_outside_kvm_run_is_refused)
{
	io_exit(KVM_EXIT_IO_OUT, 0x3f8, 4, 2000);
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.writes, 0);
	cr_assert_eq(f.v.unhandled, 1);
}

Test(exit, mmio_write_and_read)
{
	f.r.run.exit_reason = KVM_EXIT_MMIO;
	f.r.run.mmio.phys_addr = 0xd0000010;
	f.r.run.mmio.len = 4;
	f.r.run.mmio.is_write = 1;
	memcpy(f.r.run.mmio.data, "\x01\x02\x03\x04", 4);
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.last_off, 0x10);
	cr_assert_eq(f.last[3], 4);
	f.r.run.mmio.is_write = 0;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.r.run.mmio.data[0], 0x42);
	cr_assert_eq(f.v.mmio_exits, 2);
}

Test(exit, mmio_oversized_length_is_refused)
{
	f.r.run.exit_reason = KVM_EXIT_MMIO;
	f.r.run.mmio.phys_addr = 0xd0000000;
	f.r.run.mmio.len = 64;
	f.r.run.mmio.is_write = 1;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	cr_assert_eq(f.writes, 0);
	cr_assert_eq(f.v.unhandled, 1);
}

Test(exit, a_device_stop_request_stops_the_loop)
{
	io_exit(KVM_EXIT_IO_OUT, 0x501, 1, 1);
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_STOP);
	cr_assert_eq(f.ctl.reason, STOP_GUEST_EXIT);
	cr_assert_eq(f.ctl.value, 7);
}

Test(exit, triple_fault_is_fatal_with_a_message)
{
	f.r.run.exit_reason = KVM_EXIT_SHUTDOWN;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_FATAL);
	cr_assert_not_null(strstr(f.v.fatal, "triple fault"));
}

Test(exit, internal_errors_are_fatal)
{
	f.r.run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
	f.r.run.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_FATAL);
	cr_assert_not_null(strstr(f.v.fatal, "emulate"));
	f.r.run.internal.suberror = 3;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_FATAL);
	cr_assert_not_null(strstr(f.v.fatal, "suberror 3"));
	f.r.run.exit_reason = KVM_EXIT_FAIL_ENTRY;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_FATAL);
}

Test(exit, system_event_reset_stops_cleanly)
{
	f.r.run.exit_reason = KVM_EXIT_SYSTEM_EVENT;
	f.r.run.system_event.type = KVM_SYSTEM_EVENT_RESET;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_STOP);
	cr_assert_eq(f.ctl.reason, STOP_GUEST_RESET);
	cr_assert_eq(f.ctl.value, 0);
}

Test(exit, intr_continues_unless_stopping)
{
	f.r.run.exit_reason = KVM_EXIT_INTR;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_CONTINUE);
	control_request_stop(&f.ctl, STOP_HOST_SIGNAL, 130, "stopped");
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_STOP);
	cr_assert_eq(f.v.exits[KVM_EXIT_INTR], 2);
}

Test(exit, unknown_reasons_are_fatal_and_counted)
{
	f.r.run.exit_reason = 1000;
	cr_assert_eq(vcpu_handle_exit(&f.v, &f.r.run), VCPU_FATAL);
	cr_assert_eq(f.v.exits[KVM_EXIT_UNKNOWN], 1);
	cr_assert_str_eq(vcpu_exit_name(KVM_EXIT_IO), "IO");
	cr_assert_str_eq(vcpu_exit_name(1000), "OTHER");
}

Test(control, first_stop_wins)
{
	struct control c;
	control_init(&c, NULL, NULL);
	cr_assert_not(control_stopping(&c));
	cr_assert(control_request_stop(&c, STOP_GUEST_EXIT, 3, "first %d", 1));
	cr_assert_not(control_request_stop(&c, STOP_GUEST_CRASH, 0, "second"));
	cr_assert_eq(c.value, 3);
	cr_assert_str_eq(c.msg, "first 1");
	cr_assert(control_stopping(&c));
}
