/* vCPU and VM state against real KVM and as bytes.
 *
 * With /dev/kvm (this host's kvm_pvm runs the two-instruction guest, as in
 * test_vcpu_pause.c; skipped where /dev/kvm cannot be used at all): a guest
 * counts in memory, is stopped and saved; a second VM with a copy of its
 * memory and one fresh vCPU is restored from the bytes and counts on from
 * where the first stopped. Restores refused for the host (an XSAVE area too
 * large, a TSC this host cannot give) leave the vCPU untouched.
 *
 * Without KVM: the decoders refuse every truncation, an MSR outside the
 * allow-list, a wrong XSAVE size, and values no guest could have set,
 * before any ioctl: they are given fds of -1, on which any ioctl fails. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/bus.h"
#include "core/control.h"
#include "core/gmem.h"
#include "core/kvm.h"
#include "core/vcpu.h"
#include "core/wire.h"
#include "x86/cpuid.h"
#include "x86/layout.h"
#include "x86/loader.h"
#include "x86/vcpu_state.h"
#include "x86/vm_state.h"
#include "x86/x86.h"

#define CODE_ADDR   0x100000ULL
#define COUNTER_GPA 0x200000ULL
#define SPIN_ADDR   0x300000ULL /* jmp . : where the copy's own boot would go */
#define MEM_SIZE    (32ULL << 20)
#define SECOND	    1000000000ULL

#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_LSTAR	      0xc0000082
#define MSR_KERNEL_GS_BASE    0xc0000102
#define MSR_IA32_UCODE_REV    0x8b

/* ---- the byte-level decoders, no KVM ------------------------------------ */

/* Offsets into a vCPU section, from the format in vcpu_state.h. */
#define OFF_XSAVE_SIZE (4 + 4 + sizeof(struct kvm_regs) + 4 + sizeof(struct kvm_sregs))
#define OFF_NMSRS(xsave_size)                                                                      \
	(OFF_XSAVE_SIZE + 4 + 4 + (xsave_size) + 4 + sizeof(struct kvm_xcrs) + 4 +                 \
	 sizeof(struct kvm_lapic_state))

/* A state as a guest could have left it, made by hand. */
static void sample_vcpu(struct vcpu_state *s)
{
	memset(s, 0, sizeof(*s));
	s->regs.rip = CODE_ADDR;
	s->regs.rflags = 2;
	s->sregs.cr0 = 0x80000011;
	s->xcrs.nr_xcrs = 1;
	s->xcrs.xcrs[0].value = 1;
	s->events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	s->mp.mp_state = KVM_MP_STATE_RUNNABLE;
	s->debugregs.dr6 = 0xffff0ff0;
	s->debugregs.dr7 = 0x400;
	s->tsc_khz = 2000000;
	s->nmsrs = 3;
	s->msrs[0] = (struct kvm_msr_entry){.index = MSR_LSTAR, .data = 0xffffffff81000000ULL};
	s->msrs[1] = (struct kvm_msr_entry){.index = 0x10, .data = 12345};
	s->msrs[2] = (struct kvm_msr_entry){.index = 0x4b564d01, .data = 0x1001};
	s->xsave_size = sizeof(struct kvm_xsave);
	s->xsave = calloc(1, s->xsave_size);
	cr_assert(s->xsave);
	s->xsave->region[0] = 0x37f;
}

static void encode_vcpu(const struct vcpu_state *s, struct wbuf *w)
{
	wbuf_init(w);
	cr_assert_eq(vcpu_state_encode(s, w), 0);
}

/* vcpu_state_restore on fds of -1 (no KVM): what it returns, err in err. */
static int restore_bytes(const void *p, size_t len, char *err, size_t errlen)
{
	struct rbuf r;

	rbuf_init(&r, p, len);
	err[0] = 0;
	return vcpu_state_restore(-1, -1, &r, err, errlen);
}

static void put_u32_at(struct wbuf *w, size_t off, uint32_t v)
{
	cr_assert_leq(off + 4, w->len);
	memcpy(w->p + off, &v, 4); /* x86: little-endian, as wire.h writes */
}

Test(vcpu_state_bytes, a_section_decodes_to_what_was_encoded)
{
	struct vcpu_state s, back;
	struct wbuf w;
	struct rbuf r;
	char err[256] = "";

	sample_vcpu(&s);
	encode_vcpu(&s, &w);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vcpu_state_decode(&r, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	cr_assert_eq(memcmp(&back.regs, &s.regs, sizeof(s.regs)), 0);
	cr_assert_eq(memcmp(&back.sregs, &s.sregs, sizeof(s.sregs)), 0);
	cr_assert_eq(memcmp(&back.events, &s.events, sizeof(s.events)), 0);
	cr_assert_eq(memcmp(&back.debugregs, &s.debugregs, sizeof(s.debugregs)), 0);
	cr_assert_eq(back.xsave_size, s.xsave_size);
	cr_assert_eq(memcmp(back.xsave, s.xsave, s.xsave_size), 0);
	cr_assert_eq(back.nmsrs, 3);
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(back.msrs[i].index, s.msrs[i].index);
		cr_assert_eq(back.msrs[i].data, s.msrs[i].data);
	}
	cr_assert_eq(back.tsc_khz, s.tsc_khz);
	/* The whole section decodes and checks, so the restore goes on to
	 * KVM, which an fd of -1 does not have: not a decode error. */
	int ret = restore_bytes(w.p, w.len, err, sizeof(err));
	cr_assert(ret != 0 && ret != -EBADMSG && ret != -EINVAL, "%d %s", ret, err);
	vcpu_state_free(&back);
	vcpu_state_free(&s);
	wbuf_free(&w);
}

Test(vcpu_state_bytes, every_truncation_is_refused_before_any_ioctl)
{
	struct vcpu_state s;
	struct wbuf w;
	char err[256];

	sample_vcpu(&s);
	encode_vcpu(&s, &w);
	for (size_t len = 0; len < w.len; len++) {
		int ret = restore_bytes(w.p, len, err, sizeof(err));
		cr_assert_eq(ret, -EBADMSG, "%zu of %zu bytes: %d (%s)", len, w.len, ret, err);
		cr_assert(strstr(err, "vcpu state"), "%s", err);
	}
	vcpu_state_free(&s);
	wbuf_free(&w);
}

Test(vcpu_state_bytes, an_msr_outside_the_allow_list_is_refused)
{
	struct vcpu_state s;
	struct wbuf w;
	char err[256];

	cr_assert(vcpu_state_msr_allowed(MSR_LSTAR));
	cr_assert(vcpu_state_msr_allowed(0x4b564d00)); /* kvmclock's wall clock */
	cr_assert(vcpu_state_msr_allowed(0x2ff));      /* MTRR_DEF_TYPE */
	cr_assert_not(vcpu_state_msr_allowed(MSR_IA32_UCODE_REV));
	cr_assert_not(vcpu_state_msr_allowed(0x11));  /* the old kvmclock */
	cr_assert_not(vcpu_state_msr_allowed(0x10a)); /* ARCH_CAPABILITIES */
	cr_assert_not(vcpu_state_msr_allowed(0x800)); /* x2APIC */

	sample_vcpu(&s);
	s.msrs[1].index = MSR_IA32_UCODE_REV;
	encode_vcpu(&s, &w);
	cr_assert_eq(restore_bytes(w.p, w.len, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "MSR 0x8b"), "%s", err);
	wbuf_free(&w);

	/* One MSR twice. */
	s.msrs[1].index = MSR_LSTAR;
	encode_vcpu(&s, &w);
	cr_assert_eq(restore_bytes(w.p, w.len, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "twice"), "%s", err);
	wbuf_free(&w);

	/* More MSRs than the allow-list has. */
	s.msrs[1].index = 0x10;
	encode_vcpu(&s, &w);
	put_u32_at(&w, OFF_NMSRS(s.xsave_size), VCPU_STATE_MAX_MSRS + 1);
	cr_assert_eq(restore_bytes(w.p, w.len, err, sizeof(err)), -EINVAL, "%s", err);
	cr_assert(strstr(err, "MSRs"), "%s", err);
	wbuf_free(&w);
	vcpu_state_free(&s);
}

Test(vcpu_state_bytes, a_wrong_xsave_size_is_refused)
{
	struct vcpu_state s;
	struct wbuf w;
	char err[256];

	sample_vcpu(&s);
	encode_vcpu(&s, &w);
	/* The recorded size disagrees with the area's. */
	put_u32_at(&w, OFF_XSAVE_SIZE, s.xsave_size + 64);
	cr_assert_eq(restore_bytes(w.p, w.len, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "XSAVE"), "%s", err);
	wbuf_free(&w);

	/* Smaller than any kvm_xsave, or not whole words. */
	uint32_t bad[] = {0, 4092, 4098};
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vcpu_state t = s;
		t.xsave_size = bad[i];
		t.xsave = calloc(1, bad[i] + 1);
		encode_vcpu(&t, &w);
		cr_assert_eq(restore_bytes(w.p, w.len, err, sizeof(err)), -EBADMSG, "size %u",
			     bad[i]);
		cr_assert(strstr(err, "XSAVE"), "%s", err);
		free(t.xsave);
		wbuf_free(&w);
	}
	vcpu_state_free(&s);
}

Test(vcpu_state_bytes, values_no_guest_could_set_are_refused)
{
	struct vcpu_state s;
	struct wbuf w;
	char err[256];
	const struct {
		const char *what, *says;
	} cases[] = {
	    {"unknown event flag", "events"}, {"exception vector 32", "exception"},
	    {"s390 MP state", "MP state"},    {"17 XCRs", "XCRs"},
	    {"debug flags", "debug"},
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		sample_vcpu(&s);
		switch (i) {
		case 0:
			s.events.flags |= 0x80;
			break;
		case 1:
			s.events.exception.injected = 1;
			s.events.exception.nr = 32;
			break;
		case 2:
			s.mp.mp_state = KVM_MP_STATE_STOPPED;
			break;
		case 3:
			s.xcrs.nr_xcrs = KVM_MAX_XCRS + 1;
			break;
		case 4:
			s.debugregs.flags = 1;
			break;
		}
		encode_vcpu(&s, &w);
		cr_assert_eq(restore_bytes(w.p, w.len, err, sizeof(err)), -EINVAL, "%s",
			     cases[i].what);
		cr_assert(strstr(err, cases[i].says), "%s: %s", cases[i].what, err);
		wbuf_free(&w);
		vcpu_state_free(&s);
	}

	/* Another version. */
	sample_vcpu(&s);
	encode_vcpu(&s, &w);
	put_u32_at(&w, 0, VCPU_STATE_VERSION + 1);
	cr_assert_eq(restore_bytes(w.p, w.len, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "version"), "%s", err);
	wbuf_free(&w);
	vcpu_state_free(&s);
}

static void sample_vm(struct vm_kvm_state *s)
{
	memset(s, 0, sizeof(*s));
	s->ioapic.npins = 7;
	for (unsigned p = 0; p < 7; p++)
		s->ioapic.redir[p] = 1ULL << 16; /* masked */
	s->ioapic.redir[4] = 0x24;		 /* the serial port: vector 0x24, unmasked */
	s->ioapic.redir[5] = 0x25 | 1ULL << 56;	 /* to APIC 1 */
	s->ioapic.ioregsel = 0x18;
	s->clock = 123456789;
}

/* The routes a chip under test hands over: counted, and put into KVM
 * when the chip's context is a VM fd. */
static unsigned routes_calls, routes_last_n;
static struct ioapic_msi routes_last[IOAPIC_MAX_PINS];

static int record_routes(void *ctx, const struct ioapic_msi *m, unsigned n)
{
	int vm_fd = (int)(intptr_t)ctx;
	struct {
		struct kvm_irq_routing head;
		struct kvm_irq_routing_entry e[IOAPIC_MAX_PINS];
	} t = {.head.nr = n};

	routes_calls++;
	routes_last_n = n;
	memcpy(routes_last, m, n * sizeof(*m));
	for (unsigned i = 0; i < n; i++)
		t.e[i] = (struct kvm_irq_routing_entry){
		    .gsi = m[i].gsi,
		    .type = KVM_IRQ_ROUTING_MSI,
		    .u.msi = {.address_lo = m[i].address_lo, .data = m[i].data}};
	if (vm_fd >= 0 && ioctl(vm_fd, KVM_SET_GSI_ROUTING, &t.head) < 0)
		return -errno;
	return 0;
}

static int vm_restore_bytes(const struct wbuf *w, size_t len, char *err, size_t errlen)
{
	struct ioapic io;
	struct rbuf r;

	cr_assert_eq(ioapic_init(&io, 7, record_routes, (void *)(intptr_t)-1), 0);
	rbuf_init(&r, w->p, len);
	err[0] = 0;
	return vm_state_restore(-1, &io, &r, err, errlen);
}

Test(vm_state_bytes, a_section_decodes_to_what_was_encoded_and_truncations_are_refused)
{
	struct vm_kvm_state s, back;
	struct wbuf w;
	struct rbuf r;
	char err[256] = "";

	sample_vm(&s);
	wbuf_init(&w);
	cr_assert_eq(vm_state_encode(&s, &w), 0);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vm_state_decode(&r, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	cr_assert_eq(memcmp(&back, &s, sizeof(s)), 0);
	/* Decoded whole: the chip takes it and installs its two unmasked
	 * pins; then the clock reaches KVM, which fd -1 is not. */
	routes_calls = 0;
	cr_assert_eq(vm_restore_bytes(&w, w.len, err, sizeof(err)), -EBADF, "%s", err);
	cr_assert_eq(routes_calls, 1);
	cr_assert_eq(routes_last_n, 2);
	cr_assert_eq(routes_last[0].gsi, 4);
	cr_assert_eq(routes_last[0].address_lo, 0xfee00000);
	cr_assert_eq(routes_last[0].data, 0x24);
	cr_assert_eq(routes_last[1].gsi, 5);
	cr_assert_eq(routes_last[1].address_lo, 0xfee01000);
	routes_calls = 0;
	for (size_t len = 0; len < w.len; len++) {
		int ret = vm_restore_bytes(&w, len, err, sizeof(err));
		cr_assert_eq(ret, -EBADMSG, "%zu of %zu bytes: %d (%s)", len, w.len, ret, err);
	}
	cr_assert_eq(routes_calls, 0, "a truncated section reached the chip");
	wbuf_free(&w);
}

Test(vm_state_bytes, values_no_guest_could_set_are_refused)
{
	struct vm_kvm_state s;
	struct wbuf w;
	char err[256];
	const char *says[] = {"0 pins",
			      "25 pins",
			      "ID register",
			      "IOREGSEL",
			      "pin 3",
			      "pin 9",
			      "the snapshot's has 8 pins",
			      "version 3",
			      "version 1 (KVM's own"};

	for (unsigned i = 0; i < ARRAY_SIZE(says); i++) {
		sample_vm(&s);
		switch (i) {
		case 0:
			s.ioapic.npins = 0;
			break;
		case 1:
			s.ioapic.npins = 25;
			break;
		case 2:
			s.ioapic.id = 0x10000001; /* bits below the ID */
			break;
		case 3:
			s.ioapic.ioregsel = 0x100;
			break;
		case 4:
			s.ioapic.redir[3] |= 1ULL << 14; /* remote IRR: the chip's */
			break;
		case 5:
			s.ioapic.redir[9] = 0x30; /* a pin past the chip's */
			break;
		case 6:
			s.ioapic.npins = 8; /* a chip of 7 takes no other */
			break;
		}
		wbuf_init(&w);
		cr_assert_eq(vm_state_encode(&s, &w), 0);
		if (i == 7)
			put_u32_at(&w, 0, VM_STATE_VERSION + 1);
		if (i == 8)
			put_u32_at(&w, 0, 1);
		routes_calls = 0;
		cr_assert_eq(vm_restore_bytes(&w, w.len, err, sizeof(err)), -EINVAL, "case %u", i);
		cr_assert(strstr(err, says[i]), "case %u: %s", i, err);
		cr_assert_eq(routes_calls, 0, "case %u reached KVM", i);
		wbuf_free(&w);
	}
}

/* ---- real KVM ------------------------------------------------------------ */

struct machine {
	int vm_fd;
	struct gmem *mem;
	struct bus *pio, *mmio;
	struct control ctl;
	struct vcpu_env env;
	struct vcpu v;
	struct ioapic io;
	bool has_vcpu;
	volatile uint64_t *counter;
};

static int sys_fd = -1;
static struct machine a = {.vm_fd = -1}, b = {.vm_fd = -1};

static void kick(void *ctx)
{
	vcpu_kick(ctx);
}

static void open_kvm(void)
{
	char err[512];

	/* This host's kvm_pvm runs these few instructions, as the smoke tests'. */
	setenv("FLINT_ALLOW_PVM", "1", 1);
	if (kvm_open(&sys_fd, err, sizeof(err)) < 0)
		cr_skip_test("no usable /dev/kvm: %s", err);
	vcpu_block_kick();
}

/* A VM as flint makes one, 32 MiB of memory and one vCPU set up to boot at
 * `entry`; `load`: with the boot tables, the counting guest at CODE_ADDR
 * and a loop that does not count at SPIN_ADDR in memory. */
static void machine_make(struct machine *m, bool load, uint64_t entry)
{
	/* 1: incq COUNTER_GPA; jmp 1b */
	static const uint8_t code[] = {0x48, 0xff, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0xeb, 0xf6};
	static const uint8_t spin[] = {0xeb, 0xfe};
	struct kvm_enable_cap split = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {7}};
	uint64_t tss = KVM_TSS_ADDR, idmap = KVM_IDENTITY_MAP_ADDR;
	struct boot_info bi = {.entry = entry};
	const char *what = "";
	unsigned max;

	m->vm_fd = ioctl(sys_fd, KVM_CREATE_VM, 0);
	cr_assert_geq(m->vm_fd, 0);
	cr_assert_eq(ioctl(m->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss), 0);
	cr_assert_eq(ioctl(m->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap), 0);
	cr_assert_eq(ioctl(m->vm_fd, KVM_ENABLE_CAP, &split), 0);
	cr_assert_eq(ioapic_init(&m->io, 7, record_routes, (void *)(intptr_t)m->vm_fd), 0);
	cr_assert_eq(gmem_create(&m->mem, MEM_SIZE), 0);
	cr_assert_eq(gmem_nregions(m->mem), 1);
	const struct gmem_region *g = gmem_region(m->mem, 0);
	struct kvm_userspace_memory_region mr = {.guest_phys_addr = g->gpa,
						 .memory_size = g->size,
						 .userspace_addr = (uint64_t)(uintptr_t)g->host};
	cr_assert_eq(ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr), 0);
	if (load) {
		cr_assert_eq(x86_write_boot_tables(m->mem), 0);
		cr_assert_eq(gmem_write(m->mem, CODE_ADDR, code, sizeof(code)), 0);
		cr_assert_eq(gmem_write(m->mem, SPIN_ADDR, spin, sizeof(spin)), 0);
	}
	m->counter = gmem_ptr(m->mem, COUNTER_GPA, sizeof(uint64_t));

	cr_assert_eq(bus_create(&m->pio), 0);
	cr_assert_eq(bus_create(&m->mmio), 0);
	control_init(&m->ctl, kick, &m->v);
	m->env = (struct vcpu_env){.pio = m->pio, .mmio = m->mmio, .ctl = &m->ctl};
	struct kvm_cpuid2 *cpuid = kvm_supported_cpuid(sys_fd, &max);
	cr_assert(cpuid);
	cr_assert_eq(vcpu_create(&m->v, sys_fd, m->vm_fd, 0, &m->env), 0);
	m->has_vcpu = true;
	cr_assert_eq(cpuid_setup(cpuid, max, 0, 1), 0);
	/* The restore's precondition: the vCPU set up as for a boot (CPUID). */
	cr_assert_eq(x86_vcpu_setup(m->v.fd, 0, cpuid, &bi, &what), 0, "%s", what);
	free(cpuid);
}

static void machine_destroy(struct machine *m)
{
	if (m->has_vcpu) {
		control_request_stop(&m->ctl, STOP_REQUESTED, 0, NULL);
		vcpu_destroy(&m->v);
	}
	bus_destroy(m->pio);
	bus_destroy(m->mmio);
	gmem_destroy(m->mem);
	close_fd(&m->vm_fd);
	*m = (struct machine){.vm_fd = -1};
}

static void teardown(void)
{
	machine_destroy(&a);
	machine_destroy(&b);
	close_fd(&sys_fd);
}

TestSuite(vcpu_state_kvm, .init = open_kvm, .fini = teardown, .timeout = 60);

static uint64_t wait_count_past(struct machine *m, uint64_t past)
{
	uint64_t end = now_ns() + 10 * SECOND, c;

	while ((c = *m->counter) <= past) {
		cr_assert_lt(now_ns(), end, "the guest did not count past %llu (at %llu)",
			     (unsigned long long)past, (unsigned long long)c);
		usleep(1000);
	}
	return c;
}

static void set_msr(int fd, uint32_t index, uint64_t data)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = {.h = {.nmsrs = 1}, .e = {.index = index, .data = data}};
	cr_assert_eq(ioctl(fd, KVM_SET_MSRS, &m), 1, "MSR %#x", index);
}

static uint64_t get_msr(int fd, uint32_t index)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = {.h = {.nmsrs = 1}, .e = {.index = index}};
	cr_assert_eq(ioctl(fd, KVM_GET_MSRS, &m), 1, "MSR %#x", index);
	return m.e.data;
}

#define APIC_LDR 0xd0
/* In the XSAVE area's legacy region and header (Intel SDM vol. 1, 13.4). */
#define XMM3_OFF      (160 + 3 * 16)
#define XSTATE_BV_OFF 512

/* State the counting guest never touches, unlike a fresh vCPU's: general
 * and FPU/SSE registers, a debug register, the LAPIC's logical ID. */
static void set_distinct(int fd)
{
	struct kvm_lapic_state lapic;
	struct kvm_debugregs dr;
	struct kvm_regs regs;
	uint32_t ldr = 0x05000000;
	int xsave2 = ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	size_t size = xsave2 > 4096 ? (size_t)xsave2 : 4096;
	uint8_t *xsave = calloc(1, size);
	uint64_t bv;

	cr_assert_eq(ioctl(fd, KVM_GET_REGS, &regs), 0);
	regs.rbx = 0x1badc0de;
	regs.r15 = 0xfeedfacecafebeefULL;
	cr_assert_eq(ioctl(fd, KVM_SET_REGS, &regs), 0);
	/* Through KVM_SET_XSAVE: KVM_SET_FPU writes the legacy area but leaves
	 * XSTATE_BV alone, so KVM_GET_XSAVE would report SSE as in its init
	 * state (zeros). */
	cr_assert(xsave);
	cr_assert_eq(ioctl(fd, xsave2 > 0 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave), 0);
	memset(xsave + XMM3_OFF, 0x5a, 16);
	memcpy(&bv, xsave + XSTATE_BV_OFF, sizeof(bv));
	bv |= 3; /* x87, SSE */
	memcpy(xsave + XSTATE_BV_OFF, &bv, sizeof(bv));
	cr_assert_eq(ioctl(fd, KVM_SET_XSAVE, xsave), 0);
	free(xsave);
	cr_assert_eq(ioctl(fd, KVM_GET_DEBUGREGS, &dr), 0);
	dr.db[1] = 0x123000;
	cr_assert_eq(ioctl(fd, KVM_SET_DEBUGREGS, &dr), 0);
	cr_assert_eq(ioctl(fd, KVM_GET_LAPIC, &lapic), 0);
	memcpy(&lapic.regs[APIC_LDR], &ldr, sizeof(ldr));
	cr_assert_eq(ioctl(fd, KVM_SET_LAPIC, &lapic), 0);
}

static void check_distinct(int fd)
{
	struct kvm_lapic_state lapic;
	struct kvm_debugregs dr;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	uint8_t xmm[16];
	uint32_t ldr;

	cr_assert_eq(ioctl(fd, KVM_GET_REGS, &regs), 0);
	cr_assert_eq(regs.rbx, 0x1badc0de);
	cr_assert_eq(regs.r15, 0xfeedfacecafebeefULL);
	cr_assert_eq(ioctl(fd, KVM_GET_FPU, &fpu), 0);
	memset(xmm, 0x5a, sizeof(xmm));
	cr_assert_eq(memcmp(fpu.xmm[3], xmm, sizeof(xmm)), 0, "XMM3 not restored");
	cr_assert_eq(ioctl(fd, KVM_GET_DEBUGREGS, &dr), 0);
	cr_assert_eq(dr.db[1], 0x123000);
	cr_assert_eq(ioctl(fd, KVM_GET_LAPIC, &lapic), 0);
	memcpy(&ldr, &lapic.regs[APIC_LDR], sizeof(ldr));
	cr_assert_eq(ldr, 0x05000000, "LAPIC LDR %#x", ldr);
}

/* Run a's guest a while, stop it (kick out and join) and save it: VM then
 * vCPU section into w. Returns where the counter stopped. */
static uint64_t run_stop_save(struct wbuf *w, struct kvm_regs *regs)
{
	char err[512] = "";

	machine_make(&a, true, CODE_ADDR);
	/* Values the guest never writes, to find again after the restore. */
	set_msr(a.v.fd, MSR_LSTAR, 0xffffffff81a00000ULL);
	set_msr(a.v.fd, MSR_KERNEL_GS_BASE, 0xffff888000123000ULL);
	set_msr(a.v.fd, MSR_IA32_SYSENTER_ESP, 0x5000);
	set_distinct(a.v.fd);
	cr_assert_eq(vcpu_start(&a.v), 0);
	wait_count_past(&a, 1000);
	control_request_stop(&a.ctl, STOP_REQUESTED, 0, NULL);
	vcpu_join(&a.v);
	cr_assert(a.v.exited);
	uint64_t stopped = *a.counter;

	wbuf_init(w);
	cr_assert_eq(vm_state_save(a.vm_fd, &a.io, w, err, sizeof(err)), 0, "%s", err);
	size_t vm_len = w->len;
	cr_assert_eq(vcpu_state_save(a.v.fd, sys_fd, w, err, sizeof(err)), 0, "%s", err);
	cr_log_info("VM section %zu bytes, vCPU section %zu bytes", vm_len, w->len - vm_len);
	cr_assert_eq(ioctl(a.v.fd, KVM_GET_REGS, regs), 0);
	cr_assert_eq(*a.counter, stopped, "the guest counted after its vCPU was joined");
	return stopped;
}

static void skip_vm_section(struct rbuf *r)
{
	struct vm_kvm_state vs;
	char err[256] = "";

	cr_assert_eq(vm_state_decode(r, &vs, err, sizeof(err)), 0, "%s", err);
}

/* b: a second VM with a copy of a's memory and a fresh vCPU, whose own
 * boot state would spin at SPIN_ADDR without counting. */
static void make_copy(void)
{
	machine_make(&b, false, SPIN_ADDR);
	const struct gmem_region *ga = gmem_region(a.mem, 0), *gb = gmem_region(b.mem, 0);
	cr_assert_eq(ga->size, gb->size);
	memcpy(gb->host, ga->host, ga->size);
}

Test(vcpu_state_kvm, a_restored_vm_counts_on_from_where_the_saved_one_stopped)
{
	struct kvm_regs saved_regs, regs;
	struct kvm_sregs sa, sb;
	struct kvm_mp_state mp;
	struct wbuf w;
	struct rbuf r;
	char err[512] = "";

	uint64_t stopped = run_stop_save(&w, &saved_regs);
	cr_assert(saved_regs.rip == CODE_ADDR || saved_regs.rip == CODE_ADDR + 8,
		  "the guest was stopped at %#llx, outside its loop",
		  (unsigned long long)saved_regs.rip);
	make_copy();
	cr_assert_eq(*b.counter, stopped);

	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vm_state_restore(b.vm_fd, &b.io, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(vcpu_state_restore(b.v.fd, sys_fd, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));

	cr_assert_eq(ioctl(b.v.fd, KVM_GET_REGS, &regs), 0);
	cr_assert_eq(regs.rip, saved_regs.rip);
	cr_assert_eq(memcmp(&regs, &saved_regs, sizeof(regs)), 0, "general registers differ");
	cr_assert_eq(ioctl(a.v.fd, KVM_GET_SREGS, &sa), 0);
	cr_assert_eq(ioctl(b.v.fd, KVM_GET_SREGS, &sb), 0);
	cr_assert_eq(sb.cr0, sa.cr0);
	cr_assert_eq(sb.cr3, sa.cr3);
	cr_assert_eq(sb.cr4, sa.cr4);
	cr_assert_eq(sb.efer, sa.efer);
	cr_assert_eq(sb.cs.selector, sa.cs.selector);
	cr_assert_eq(sb.gdt.base, sa.gdt.base);
	cr_assert_eq(get_msr(b.v.fd, MSR_LSTAR), 0xffffffff81a00000ULL);
	cr_assert_eq(get_msr(b.v.fd, MSR_KERNEL_GS_BASE), 0xffff888000123000ULL);
	cr_assert_eq(get_msr(b.v.fd, MSR_IA32_SYSENTER_ESP), 0x5000);
	cr_assert_eq(ioctl(b.v.fd, KVM_GET_MP_STATE, &mp), 0);
	cr_assert_eq(mp.mp_state, KVM_MP_STATE_RUNNABLE);
	check_distinct(b.v.fd);

	cr_assert_eq(vcpu_start(&b.v), 0);
	uint64_t c = wait_count_past(&b, stopped + 1000);
	cr_assert_gt(c, stopped);
	cr_assert_eq(*a.counter, stopped, "the first guest ran again");
	cr_assert_not(control_stopping(&b.ctl), "the restored guest stopped: %s", b.ctl.msg);
	wbuf_free(&w);
}

Test(vcpu_state_kvm, a_saved_section_holds_the_msrs_kvm_lists_and_the_mtrrs)
{
	struct vcpu_state s;
	char err[512] = "";

	machine_make(&a, true, CODE_ADDR);
	cr_assert_eq(vcpu_state_get(a.v.fd, sys_fd, &s, err, sizeof(err)), 0, "%s", err);
	bool lstar = false, kvmclock = false, mtrr = false;
	for (uint32_t i = 0; i < s.nmsrs; i++) {
		cr_assert(vcpu_state_msr_allowed(s.msrs[i].index));
		lstar |= s.msrs[i].index == MSR_LSTAR;
		kvmclock |= s.msrs[i].index == 0x4b564d01;
		mtrr |=
		    s.msrs[i].index == 0x2ff && s.msrs[i].data == 0x806; /* x86.c's boot value */
	}
	cr_log_info("%u MSRs, XSAVE %u bytes, TSC %u kHz", s.nmsrs, s.xsave_size, s.tsc_khz);
	cr_assert(lstar && kvmclock && mtrr, "LSTAR %d, SYSTEM_TIME_NEW %d, MTRR_DEF_TYPE %d",
		  lstar, kvmclock, mtrr);
	int xsave2 = ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	cr_assert_eq(s.xsave_size, xsave2 >= 4096 ? (uint32_t)xsave2 : 4096u);
	vcpu_state_free(&s);
}

/* Restore s into b's vCPU, expect `want`, and check the vCPU is as before. */
static void refused_untouched(const struct vcpu_state *s, int want, const char *says)
{
	struct kvm_regs before, after;
	struct wbuf w;
	struct rbuf r;
	char err[512] = "";

	cr_assert_eq(ioctl(b.v.fd, KVM_GET_REGS, &before), 0);
	wbuf_init(&w);
	cr_assert_eq(vcpu_state_encode(s, &w), 0);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(vcpu_state_restore(b.v.fd, sys_fd, &r, err, sizeof(err)), want, "%s", err);
	cr_assert(strstr(err, says), "%s", err);
	cr_assert_eq(ioctl(b.v.fd, KVM_GET_REGS, &after), 0);
	cr_assert_eq(memcmp(&before, &after, sizeof(before)), 0,
		     "the refused restore set registers");
	cr_assert_eq(get_msr(b.v.fd, MSR_LSTAR), 0, "the refused restore set MSRs");
	wbuf_free(&w);
}

Test(vcpu_state_kvm, an_xsave_area_larger_than_this_host_takes_is_refused_untouched)
{
	struct kvm_regs regs;
	struct vcpu_state s;
	struct wbuf w;
	struct rbuf r;
	char err[512] = "";

	run_stop_save(&w, &regs);
	make_copy();
	rbuf_init(&r, w.p, w.len);
	skip_vm_section(&r);
	cr_assert_eq(vcpu_state_decode(&r, &s, err, sizeof(err)), 0, "%s", err);
	struct kvm_xsave *big = calloc(1, s.xsave_size + 64);
	memcpy(big, s.xsave, s.xsave_size);
	free(s.xsave);
	s.xsave = big;
	s.xsave_size += 64;
	refused_untouched(&s, -EINVAL, "XSAVE area");
	vcpu_state_free(&s);
	wbuf_free(&w);
}

Test(vcpu_state_kvm, a_tsc_frequency_this_host_cannot_give_is_refused_or_set)
{
	struct kvm_regs regs;
	struct vcpu_state s;
	struct wbuf w;
	struct rbuf r;
	char err[512] = "";

	run_stop_save(&w, &regs);
	make_copy();
	rbuf_init(&r, w.p, w.len);
	skip_vm_section(&r);
	cr_assert_eq(vcpu_state_decode(&r, &s, err, sizeof(err)), 0, "%s", err);
	if (!s.tsc_khz)
		cr_skip_test("this host's KVM cannot say its TSC frequency");
	int host = ioctl(b.v.fd, KVM_GET_TSC_KHZ, 0);
	cr_assert_gt(host, 0);
	/* Within KVM's 250 ppm: taken as the same. */
	s.tsc_khz = host + host / 10000;
	cr_assert_eq(vcpu_state_put(b.v.fd, sys_fd, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ioctl(b.v.fd, KVM_GET_TSC_KHZ, 0), host);

	machine_destroy(&b);
	make_copy();
	s.tsc_khz = host - host / 4;
	if (ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0) {
		cr_assert_eq(vcpu_state_put(b.v.fd, sys_fd, &s, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(ioctl(b.v.fd, KVM_GET_TSC_KHZ, 0), (int)s.tsc_khz);
	} else {
		cr_log_info("no KVM_CAP_TSC_CONTROL here: a TSC of %u kHz is refused", s.tsc_khz);
		refused_untouched(&s, -ENOTSUP, "KVM_CAP_TSC_CONTROL");
		cr_assert_eq(ioctl(b.v.fd, KVM_GET_TSC_KHZ, 0), host);
	}
	vcpu_state_free(&s);
	wbuf_free(&w);
}

Test(vcpu_state_kvm, the_vm_section_restores_the_ioapic_its_routes_and_the_clock)
{
	struct kvm_clock_data clock = {0};
	struct ioapic_state back;
	struct vm_kvm_state s;
	struct wbuf w;
	struct rbuf r;
	char err[512] = "";

	machine_make(&a, true, CODE_ADDR);
	machine_make(&b, false, SPIN_ADDR);
	cr_assert_eq(vm_state_get(a.vm_fd, &a.io, &s, err, sizeof(err)), 0, "%s", err);
	/* What a guest could have programmed. */
	s.ioapic.redir[4] = 0x24; /* serial: vector 0x24, unmasked */
	s.ioapic.ioregsel = 0x18;
	s.clock += 5 * SECOND;
	wbuf_init(&w);
	cr_assert_eq(vm_state_encode(&s, &w), 0);
	rbuf_init(&r, w.p, w.len);
	routes_calls = 0;
	cr_assert_eq(vm_state_restore(b.vm_fd, &b.io, &r, err, sizeof(err)), 0, "%s", err);

	/* KVM took the route (record_routes puts it in b's VM). */
	cr_assert_eq(routes_calls, 1);
	cr_assert_eq(routes_last_n, 1);
	cr_assert_eq(routes_last[0].gsi, 4);
	ioapic_save(&b.io, &back);
	cr_assert_eq(back.redir[4], 0x24);
	cr_assert_eq(back.ioregsel, 0x18);
	cr_assert_eq(ioctl(b.vm_fd, KVM_GET_CLOCK, &clock), 0);
	/* Set to the saved value, so at least that, and not seconds more. */
	cr_assert_geq(clock.clock, s.clock);
	cr_assert_lt(clock.clock, s.clock + SECOND);
	wbuf_free(&w);
}

/* --stats' line on a vCPU's local APIC: what a guest halted for good had
 * armed and in service. */
static void apic_set(struct kvm_lapic_state *l, unsigned off, uint32_t v)
{
	memcpy(l->regs + off, &v, sizeof(v));
}

Test(vcpu_state_bytes, the_apic_line_says_timer_service_and_pending)
{
	struct kvm_lapic_state l;
	uint64_t tsc = 1000000, deadline = 1250000, none = 0;
	char line[256];

	memset(&l, 0, sizeof(l));
	apic_set(&l, 0x320, 0x400ec);		  /* TSC-deadline mode, vector 0xec */
	apic_set(&l, 0x100 + 0x10 * 7, 1u << 19); /* 0xf3 in service */
	apic_set(&l, 0x200 + 0x10 * 7, 1u << 12); /* 0xec pending */
	apic_set(&l, 0xa0, 0xf0);
	vcpu_state_apic_line(&l, &tsc, &deadline, line, sizeof(line));
	cr_assert_str_eq(line, "timer vector 0xec, TSC-deadline, TSC deadline +250000 cycles from "
			       "the TSC, in service 0xf3, pending 0xec, PPR 0xf0");

	apic_set(&l, 0x320, 0x500ec); /* masked */
	memset(l.regs + 0x100, 0, 0x80);
	memset(l.regs + 0x200, 0, 0x80);
	apic_set(&l, 0x200, 1u << 1); /* vector 1: the lowest bit of the lowest word */
	apic_set(&l, 0xa0, 0);
	vcpu_state_apic_line(&l, &tsc, &none, line, sizeof(line));
	cr_assert_str_eq(line, "timer vector 0xec, TSC-deadline, masked, no TSC deadline, in "
			       "service none, pending 0x1, PPR 0");
	vcpu_state_apic_line(&l, NULL, NULL, line, sizeof(line));
	cr_assert_str_eq(line, "timer vector 0xec, TSC-deadline, masked, in service none, pending "
			       "0x1, PPR 0");
	/* cut to the buffer, terminated */
	vcpu_state_apic_line(&l, NULL, NULL, line, 8);
	cr_assert_str_eq(line, "timer v");
}
