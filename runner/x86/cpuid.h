/* Per-vCPU CPUID derived from KVM_GET_SUPPORTED_CPUID. Pure: no KVM calls. */
#ifndef FLINT_CPUID_H
#define FLINT_CPUID_H

#include <linux/kvm.h>

#include "core/util.h"

/* Adjust `c` (a copy of the supported table, nent entries, with room for
 * `max` entries) in place for vCPU `id` of `ncpus`: APIC IDs (leaf 1 EBX,
 * leaf 0xb/0x1f x2APIC IDs, AMD 0x8000001e), logical/core counts (leaf 1,
 * leaf 4, leaf 0xb, AMD 0x80000008 ECX), the hypervisor bit, and the KVM
 * signature leaves. Returns 0 or -EINVAL (ncpus 0 or id >= ncpus),
 * -ENOSPC if a needed entry cannot be added. */
int cpuid_setup(struct kvm_cpuid2 *c, unsigned max, unsigned id, unsigned ncpus) WARN_UNUSED;

/* The entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index);

#endif
