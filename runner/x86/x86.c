#include "x86/x86.h"

#include <asm/processor-flags.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/study.h"
#include "x86/layout.h"

/* MSR numbers (no UAPI header carries them). */
#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_EFER		0xc0000080
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MSR_IA32_TSC		0x10
#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE		(1ULL << 11)
#define MTRR_TYPE_WB		6ULL
#define EFER_LME		(1ULL << 8)
#define EFER_LMA		(1ULL << 10)

/* LAPIC register offsets and delivery modes for LINT0/LINT1. */
#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

#define PTE_P  1ULL
#define PTE_RW 2ULL
#define PTE_PS 0x80ULL

/* GDT slots: the 64-bit boot protocol wants __BOOT_CS 0x10, __BOOT_DS 0x18. */
#define GDT_CODE    2
#define GDT_DATA    3
#define GDT_TSS	    4
#define GDT_ENTRIES 5

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0xf0000) << 32) | ((uint64_t)(base & 0xffffff) << 16) |
	       (limit & 0xffff);
}

int x86_write_boot_tables(struct gmem *g)
{
	uint64_t pml4 = PDPT_ADDR | PTE_P | PTE_RW;
	uint64_t pdpt[4], pd[4 * 512];
	uint64_t gdt[GDT_ENTRIES] = {
	    [GDT_CODE] = gdt_entry(0xa09b, 0, 0xfffff), /* 64-bit code, exec/read */
	    [GDT_DATA] = gdt_entry(0xc093, 0, 0xfffff), /* flat data, read/write */
	    [GDT_TSS] = gdt_entry(0x808b, 0, 0xfffff),	/* busy TSS, which VMX needs */
	};
	uint64_t idt = 0;

	for (unsigned i = 0; i < 4; i++)
		pdpt[i] = (PD_ADDR + i * 0x1000) | PTE_P | PTE_RW;
	for (unsigned i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_PS;
	if (gmem_write(g, PML4_ADDR, &pml4, sizeof(pml4)) ||
	    gmem_write(g, PDPT_ADDR, pdpt, sizeof(pdpt)) ||
	    gmem_write(g, PD_ADDR, pd, sizeof(pd)) || gmem_write(g, GDT_ADDR, gdt, sizeof(gdt)) ||
	    gmem_write(g, IDT_ADDR, &idt, sizeof(idt)))
		return -EFAULT;
	return 0;
}

static struct kvm_segment segment(unsigned idx, uint8_t type, uint8_t l, uint8_t db)
{
	return (struct kvm_segment){
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = idx * 8,
	    .type = type,
	    .present = 1,
	    .dpl = 0,
	    .db = db,
	    .s = 1,
	    .l = l,
	    .g = 1,
	};
}

void x86_boot_sregs(struct kvm_sregs *s)
{
	s->cs = segment(GDT_CODE, 0xb, 1, 0);
	s->ds = s->es = s->fs = s->gs = s->ss = segment(GDT_DATA, 0x3, 0, 1);
	s->tr = segment(GDT_TSS, 0xb, 0, 0);
	s->tr.s = 0;
	s->gdt.base = GDT_ADDR;
	s->gdt.limit = GDT_ENTRIES * 8 - 1;
	s->idt.base = IDT_ADDR;
	s->idt.limit = 7;
	s->cr0 = X86_CR0_PE | X86_CR0_PG | X86_CR0_ET;
	s->cr3 = PML4_ADDR;
	s->cr4 = X86_CR4_PAE;
	s->efer = EFER_LME | EFER_LMA;
}

void x86_boot_regs(struct kvm_regs *r, const struct boot_info *bi)
{
	memset(r, 0, sizeof(*r));
	r->rflags = X86_EFLAGS_FIXED;
	r->rip = bi->entry;
	r->rsi = ZERO_PAGE_ADDR;
	r->rsp = r->rbp = BOOT_STACK_ADDR;
}

static int set_msrs(int fd)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} boot_msrs[] = {
	    {MSR_IA32_SYSENTER_CS, 0},
	    {MSR_IA32_SYSENTER_ESP, 0},
	    {MSR_IA32_SYSENTER_EIP, 0},
	    {MSR_STAR, 0},
	    {MSR_CSTAR, 0},
	    {MSR_KERNEL_GS_BASE, 0},
	    {MSR_SYSCALL_MASK, 0},
	    {MSR_LSTAR, 0},
	    {MSR_IA32_TSC, 0},
	    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	    {MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WB},
	};
	const size_t n = ARRAY_SIZE(boot_msrs);
	if (study_on(STUDY_NO_MSRS))
		return 0; /* study switch: KVM's reset values */
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	for (size_t i = 0; i < n; i++) {
		m->entries[i].index = boot_msrs[i].index;
		m->entries[i].data = boot_msrs[i].data;
	}
	/* KVM_SET_MSRS returns how many it set; fewer means one was refused. */
	int r = ioctl(fd, KVM_SET_MSRS, m);
	free(m);
	if (r < 0)
		return -errno;
	return (size_t)r == n ? 0 : -EINVAL;
}

int x86_msr_modify(int fd, uint32_t index, uint64_t mask, uint64_t value)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = {.h = {.nmsrs = 1}, .e = {.index = index}};
	int r;

	if ((r = ioctl(fd, KVM_GET_MSRS, &m)) < 0)
		return -errno;
	if (r != 1)
		return -EINVAL;
	m.e.data = (m.e.data & ~mask) | (value & mask);
	if ((r = ioctl(fd, KVM_SET_MSRS, &m)) < 0)
		return -errno;
	return r == 1 ? 0 : -EINVAL;
}

static void set_lvt(struct kvm_lapic_state *l, unsigned reg, uint32_t mode)
{
	uint32_t v;
	memcpy(&v, &l->regs[reg], sizeof(v));
	v = (v & ~0x700u) | (mode << 8);
	memcpy(&l->regs[reg], &v, sizeof(v));
}

int x86_vcpu_setup(int fd, unsigned id, struct kvm_cpuid2 *cpuid, const struct boot_info *bi,
		   const char **what)
{
	struct kvm_lapic_state lapic;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	int r;

	*what = "KVM_SET_CPUID2";
	if (ioctl(fd, KVM_SET_CPUID2, cpuid) < 0)
		return -errno;
	*what = "KVM_SET_MSRS";
	if ((r = set_msrs(fd)) < 0)
		return r;
	*what = "KVM_GET_LAPIC";
	if (ioctl(fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	set_lvt(&lapic, APIC_LVT0, APIC_MODE_EXTINT);
	set_lvt(&lapic, APIC_LVT1, APIC_MODE_NMI);
	*what = "KVM_SET_LAPIC";
	if (ioctl(fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	if (id != 0)
		return 0; /* APs wait in KVM for INIT/SIPI from the BSP */
	*what = "KVM_SET_FPU";
	if (ioctl(fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	*what = "KVM_GET_SREGS";
	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	x86_boot_sregs(&sregs);
	*what = "KVM_SET_SREGS";
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	x86_boot_regs(&regs, bi);
	*what = "KVM_SET_REGS";
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}
