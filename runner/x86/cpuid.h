/* Per-vCPU CPUID derived from KVM_GET_SUPPORTED_CPUID. Pure: no KVM calls. */
#ifndef FLINT_CPUID_H
#define FLINT_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

/* Adjust `c` (a copy of the supported table, nent entries, with room for
 * `max` entries) in place for vCPU `id` of `ncpus`: APIC IDs (leaf 1 EBX,
 * leaf 0xb/0x1f x2APIC IDs, AMD 0x8000001e), logical/core counts (leaf 1,
 * leaf 4, leaf 0xb, AMD 0x80000008 ECX), the hypervisor bit, and the KVM
 * signature leaves. Returns 0 or -EINVAL (ncpus 0 or id >= ncpus),
 * -ENOSPC if a needed entry cannot be added. */
int cpuid_setup(struct kvm_cpuid2 *c, unsigned max, unsigned id, unsigned ncpus) WARN_UNUSED;

/* cpuid_setup with machine-config's smt: true, and ncpus > 1, makes the
 * ncpus logical CPUs ncpus/2 cores of two threads each (APIC ID bit 0 is
 * the thread): leaf 0xb/0x1f's SMT level counts 2 threads (shift 1), leaf 4
 * counts ncpus/2 cores and L1/L2 shared by 2, AMD's 0x8000001e gives core
 * id/2 with 2 threads per unit and 0x8000001d L1/L2 shared by 2. Leaf 1's
 * count and HTT, and 0x80000008's NC, count logical CPUs either way. false
 * is cpuid_setup. -EINVAL also for smt with an odd ncpus above 1. */
int cpuid_setup_smt(struct kvm_cpuid2 *c, unsigned max, unsigned id, unsigned ncpus,
		    bool smt) WARN_UNUSED;

/* A custom CPU template's CPUID modifier (PUT /cpu-config): the entry for
 * (leaf, subleaf) takes flags, and each register r (EAX, EBX, ECX, EDX)
 * value[r] in the bits of mask[r], keeping the others. 0, or -ENOENT when
 * c has no such entry. */
int cpuid_modify(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf, uint32_t flags,
		 const uint32_t mask[4], const uint32_t value[4]) WARN_UNUSED;

/* The entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index);

/* The bits of a leaf's register (0 EAX, 1 EBX, 2 ECX, 3 EDX) that
 * cpuid_setup hides whatever KVM reports: nested virtualization's, VMX
 * (leaf 1 ECX) and SVM (0x80000001 ECX). */
uint32_t cpuid_hidden(unsigned leaf, unsigned subleaf, unsigned reg);

#endif
