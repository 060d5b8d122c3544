/* vm_state: the VM-wide x86 KVM state for a snapshot: the in-kernel PICs
 * and IOAPIC, the PIT, and kvmclock.
 *
 * The section (runner/core/wire.h), in this order:
 *   u32 version (VM_STATE_VERSION)
 *   3 x blob kvm_irqchip                 (PIC master, PIC slave, IOAPIC:
 *                                          chip ids 0, 1, 2)
 *   blob kvm_pit_state2
 *   u64 kvmclock (ns), u32 its KVM_GET_CLOCK flags (kept for reading only)
 * The blobs are the UAPI structs in x86 byte order (little-endian); one of
 * the wrong size is refused.
 *
 * Restore: the interrupt controllers, then the PIT (whose timer raises
 * IRQ 0 on them), then the clock, with KVM_SET_CLOCK given only the clock
 * value (as vm.c's resume): the guest's clock goes on from where it was
 * saved. Do it before vcpu_state_restore, on a VM made as flint makes one
 * (KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2), with its vCPUs out of KVM_RUN;
 * on save, every vCPU must be out of KVM_RUN too. */
#ifndef FLINT_VM_STATE_H
#define FLINT_VM_STATE_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "core/wire.h"

#define VM_STATE_VERSION 1u

struct vm_kvm_state {
	struct kvm_irqchip chip[KVM_NR_IRQCHIPS]; /* indexed by KVM_IRQCHIP_* */
	struct kvm_pit_state2 pit;
	uint64_t clock;
	uint32_t clock_flags;
};

/* Read vm_fd's state into s. 0 or -errno, err naming the KVM call. */
int vm_state_get(int vm_fd, struct vm_kvm_state *s, char *err, size_t errlen) WARN_UNUSED;
/* Append s as a section to w. Returns wbuf_err(w). */
int vm_state_encode(const struct vm_kvm_state *s, struct wbuf *w) WARN_UNUSED;
/* Decode one section from r into s and check it: chip ids in their slots,
 * the PICs' ELCR masks KVM's, the IOAPIC at its fixed address, PIT modes
 * and counts a guest can program, flags KVM knows. Pure: no ioctl.
 * Returns 0, -EBADMSG (truncated, or a blob of the wrong size) or -EINVAL
 * (another version, or a value the guest's own set-up could not produce),
 * with err naming the field. */
int vm_state_decode(struct rbuf *r, struct vm_kvm_state *s, char *err, size_t errlen) WARN_UNUSED;
/* Write s into vm_fd in the order above. A KVM_SET that fails leaves the
 * VM half restored (discard it): -errno, err names it. */
int vm_state_put(int vm_fd, const struct vm_kvm_state *s, char *err, size_t errlen) WARN_UNUSED;

/* get + encode. 0 or -errno, err says why. */
int vm_state_save(int vm_fd, struct wbuf *w, char *err, size_t errlen) WARN_UNUSED;
/* decode + put: nothing reaches KVM unless the whole section decodes and
 * checks. */
int vm_state_restore(int vm_fd, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

#endif
