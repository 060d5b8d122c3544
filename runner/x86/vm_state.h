/* vm_state: the VM-wide x86 state for a snapshot: flint's I/O APIC
 * (legacy/ioapic.h; KVM keeps only the local APICs, which are each
 * vCPU's, and there is no PIC or PIT) and kvmclock.
 *
 * The section (runner/core/wire.h), in this order:
 *   u32 version (VM_STATE_VERSION)
 *   u32 I/O APIC pins, u32 its ID register, u32 its IOREGSEL
 *   IOAPIC_MAX_PINS x u64 redirection entries (0 past the pins)
 *   u64 kvmclock (ns), u32 its KVM_GET_CLOCK flags (kept for reading only)
 *
 * Restore: the I/O APIC (its routes installed in KVM), then the clock,
 * with KVM_SET_CLOCK given only the clock value (as vm.c's resume): the
 * guest's clock goes on from where it was saved. Do it before
 * vcpu_state_restore, on a VM made as flint makes one (the split irqchip,
 * an I/O APIC of the same pin count), with its vCPUs out of KVM_RUN; on
 * save, every vCPU must be out of KVM_RUN too. Version 1, KVM's own PICs,
 * I/O APIC and PIT, is refused by name. */
#ifndef FLINT_VM_STATE_H
#define FLINT_VM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "core/wire.h"
#include "legacy/ioapic.h"

#define VM_STATE_VERSION 2u

struct vm_kvm_state {
	struct ioapic_state ioapic;
	uint64_t clock;
	uint32_t clock_flags;
};

/* Read io's registers and vm_fd's clock into s. 0 or -errno, err naming
 * the KVM call. */
int vm_state_get(int vm_fd, struct ioapic *io, struct vm_kvm_state *s, char *err,
		 size_t errlen) WARN_UNUSED;
/* Append s as a section to w. Returns wbuf_err(w). */
int vm_state_encode(const struct vm_kvm_state *s, struct wbuf *w) WARN_UNUSED;
/* Decode one section from r into s and check it (ioapic_state_check).
 * Pure: no ioctl. Returns 0, -EBADMSG (truncated) or -EINVAL (another
 * version, or a value the guest could not have set), with err naming the
 * field. */
int vm_state_decode(struct rbuf *r, struct vm_kvm_state *s, char *err, size_t errlen) WARN_UNUSED;
/* Load s into io and vm_fd in the order above. A step that fails leaves
 * the VM half restored (discard it): -errno, err names it. */
int vm_state_put(int vm_fd, struct ioapic *io, const struct vm_kvm_state *s, char *err,
		 size_t errlen) WARN_UNUSED;

/* get + encode. 0 or -errno, err says why. */
int vm_state_save(int vm_fd, struct ioapic *io, struct wbuf *w, char *err,
		  size_t errlen) WARN_UNUSED;
/* decode + put: nothing reaches the VM unless the whole section decodes
 * and checks. */
int vm_state_restore(int vm_fd, struct ioapic *io, struct rbuf *r, char *err,
		     size_t errlen) WARN_UNUSED;

#endif
