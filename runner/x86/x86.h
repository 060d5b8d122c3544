/* The x86 CPU state flint boots Linux in: long mode with identity-mapped
 * page tables and a flat GDT, no firmware. */
#ifndef FLINT_X86_H
#define FLINT_X86_H

#include <linux/kvm.h>

#include "core/gmem.h"
#include "core/util.h"
#include "x86/loader.h"

/* Write the identity page tables (0-4 GiB, 2 MiB pages), the boot GDT and an
 * empty IDT into guest memory. Returns 0 or -EFAULT. */
int x86_write_boot_tables(struct gmem *g) WARN_UNUSED;

/* Fill sregs/regs for the boot vCPU entering bi->entry in long mode with
 * rsi pointing at the zero page. Pure: tests check the values. */
void x86_boot_sregs(struct kvm_sregs *s);
void x86_boot_regs(struct kvm_regs *r, const struct boot_info *bi);

/* A custom CPU template's MSR modifier (PUT /cpu-config): MSR `index` of
 * the vCPU takes `value` in the bits of `mask`, keeping the others (read
 * with KVM_GET_MSRS first). 0, or -EINVAL when KVM does not have or take
 * the MSR, or -errno. */
int x86_msr_modify(int vcpu_fd, uint32_t index, uint64_t mask, uint64_t value) WARN_UNUSED;

/* Configure vCPU `id`: CPUID (from `cpuid`, already patched for it), the
 * MSRs Linux expects, LAPIC LINT0 ExtINT / LINT1 NMI, and for id 0 the boot
 * registers. Returns 0 or -errno; *what names the failed step. */
int x86_vcpu_setup(int vcpu_fd, unsigned id, struct kvm_cpuid2 *cpuid, const struct boot_info *bi,
		   const char **what) WARN_UNUSED;

#endif
