/* A vCPU parked right after an I/O exit has finished that instruction: the
 * value a port read gave is in RAX and RIP is past the IN, as KVM makes
 * them only when KVM_RUN is entered again (vcpu.c's complete_io, with
 * immediate_exit). A snapshot or a reset in place (vm_reset) reads or sets
 * the registers of a parked vCPU: they must hold no half-done instruction.
 * The guest is `1: in al, 0x80; jmp 1b`; the port's handler asks its own
 * vCPU to pause at the first read. Skipped where /dev/kvm cannot be used. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/bus.h"
#include "core/control.h"
#include "core/gmem.h"
#include "core/kvm.h"
#include "core/vcpu.h"
#include "x86/cpuid.h"
#include "x86/layout.h"
#include "x86/loader.h"
#include "x86/x86.h"

#define CODE_ADDR 0x100000ULL
#define PORT	  0x80
#define VALUE	  0x5a
#define SECOND	  1000000000ULL

static struct {
	int sys_fd, vm_fd;
	struct gmem *mem;
	struct bus *pio, *mmio;
	struct control ctl;
	struct vcpu_env env;
	struct vcpu v;
	atomic_int reads;
} k = {.sys_fd = -1, .vm_fd = -1};

static void kick(void *ctx)
{
	(void)ctx;
	vcpu_kick(&k.v);
}

/* The port: VALUE, and a pause asked of the vCPU at the first read (on
 * the vCPU's own thread, inside its exit handler). */
static void port_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque, (void)off;
	memset(data, VALUE, len);
	if (atomic_fetch_add(&k.reads, 1) == 0)
		vcpu_pause(&k.v);
}

static void port_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	(void)opaque, (void)off, (void)data, (void)len;
}

static const struct bus_ops port_ops = {.read = port_read, .write = port_write};

static void setup(void)
{
	static const uint8_t code[] = {0xe4, PORT, 0xeb, 0xfc}; /* in al, 0x80; jmp -4 */
	uint64_t tss = KVM_TSS_ADDR, idmap = KVM_IDENTITY_MAP_ADDR;
	struct boot_info bi = {.entry = CODE_ADDR};
	const char *what = "";
	char err[512];
	unsigned max;

	setenv("FLINT_ALLOW_PVM", "1", 1);
	if (kvm_open(&k.sys_fd, err, sizeof(err)) < 0)
		cr_skip_test("no usable /dev/kvm: %s", err);
	k.vm_fd = ioctl(k.sys_fd, KVM_CREATE_VM, 0);
	cr_assert_geq(k.vm_fd, 0);
	cr_assert_eq(ioctl(k.vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss), 0);
	cr_assert_eq(ioctl(k.vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap), 0);
	cr_assert_eq(ioctl(k.vm_fd, KVM_CREATE_IRQCHIP, 0), 0);
	cr_assert_eq(gmem_create(&k.mem, 32 << 20), 0);
	const struct gmem_region *g = gmem_region(k.mem, 0);
	struct kvm_userspace_memory_region m = {.guest_phys_addr = g->gpa,
						.memory_size = g->size,
						.userspace_addr = (uint64_t)(uintptr_t)g->host};
	cr_assert_eq(ioctl(k.vm_fd, KVM_SET_USER_MEMORY_REGION, &m), 0);
	cr_assert_eq(x86_write_boot_tables(k.mem), 0);
	cr_assert_eq(gmem_write(k.mem, CODE_ADDR, code, sizeof(code)), 0);
	cr_assert_eq(bus_create(&k.pio), 0);
	cr_assert_eq(bus_create(&k.mmio), 0);
	cr_assert_eq(bus_register(k.pio, PORT, 1, &port_ops, NULL), 0);
	control_init(&k.ctl, kick, NULL);
	k.env = (struct vcpu_env){.pio = k.pio, .mmio = k.mmio, .ctl = &k.ctl};
	struct kvm_cpuid2 *cpuid = kvm_supported_cpuid(k.sys_fd, &max);
	cr_assert(cpuid);
	cr_assert_eq(vcpu_create(&k.v, k.sys_fd, k.vm_fd, 0, &k.env), 0);
	cr_assert_eq(cpuid_setup(cpuid, max, 0, 1), 0);
	cr_assert_eq(x86_vcpu_setup(k.v.fd, 0, cpuid, &bi, &what), 0, "%s", what);
	free(cpuid);
	vcpu_block_kick();
}

static void teardown(void)
{
	control_request_stop(&k.ctl, STOP_REQUESTED, 0, NULL);
	vcpu_destroy(&k.v);
	bus_destroy(k.pio);
	bus_destroy(k.mmio);
	gmem_destroy(k.mem);
	close_fd(&k.vm_fd);
	close_fd(&k.sys_fd);
}

TestSuite(vcpu_io, .init = setup, .fini = teardown, .timeout = 60);

Test(vcpu_io, a_vcpu_parked_after_a_port_read_has_finished_it)
{
	struct kvm_regs regs;

	cr_assert_eq(vcpu_start(&k.v), 0);
	uint64_t end = now_ns() + 10 * SECOND;
	while (atomic_load(&k.reads) == 0) {
		cr_assert_lt(now_ns(), end, "the guest never read the port");
		usleep(1000);
	}
	cr_assert_eq(vcpu_wait_paused(&k.v, now_ns() + 5 * SECOND), 0, "the vCPU did not park");
	cr_assert_eq(atomic_load(&k.reads), 1, "it ran on past the pause");
	/* Parked, out of KVM_RUN: its registers are what a snapshot saves. */
	cr_assert_eq(ioctl(k.v.fd, KVM_GET_REGS, &regs), 0);
	cr_assert_eq(regs.rip, CODE_ADDR + 2, "rip %#llx: the IN is not finished",
		     (unsigned long long)regs.rip);
	cr_assert_eq(regs.rax & 0xff, VALUE, "al %#llx: the port's value is not in it",
		     (unsigned long long)(regs.rax & 0xff));
	/* And it runs on from there. */
	vcpu_resume(&k.v);
	while (atomic_load(&k.reads) < 3) {
		cr_assert_lt(now_ns(), end, "the guest did not read the port again");
		usleep(1000);
	}
}
