/* vcpu_state: one x86 vCPU's KVM state for a snapshot, read from a stopped
 * vCPU and written into a fresh one.
 *
 * What is saved: registers, special registers, the XSAVE area, XCRs, the
 * LAPIC, MSRs, pending events, the MP state, debug registers and the TSC
 * frequency. The MSRs are those KVM_GET_MSR_INDEX_LIST reports that are in
 * flint's allow-list (vcpu_state_msr_allowed), plus the MTRRs, which KVM
 * emulates without listing them.
 *
 * The section (runner/core/wire.h), in this order:
 *   u32 version (VCPU_STATE_VERSION)
 *   blob kvm_regs, blob kvm_sregs           (the UAPI structs, x86 byte order,
 *                                            which is little-endian)
 *   u32 xsave size, blob of that many bytes (kvm_xsave, 4096 or KVM_CAP_XSAVE2's)
 *   blob kvm_xcrs, blob kvm_lapic_state
 *   u32 n, n x (u32 index, u64 value)       (MSRs)
 *   blob kvm_vcpu_events, blob kvm_mp_state, blob kvm_debugregs
 *   u32 TSC kHz                             (0: the host could not say)
 * A blob whose length is not its struct's size is refused.
 *
 * Restore order, which KVM needs (KVM's api.rst and Firecracker's
 * restore_state): TSC frequency (before the TSC MSR, which counts in its
 * ticks), MP state, regs, sregs (which set the APIC base and EFER), XSAVE,
 * XCRs, debug registers, LAPIC (after sregs, for the APIC base), MSRs
 * (after the LAPIC: the TSC-deadline MSR arms a timer only on a configured
 * LAPIC; within them TSC first and TSC_DEADLINE last, ASYNC_PF_INT before
 * ASYNC_PF_EN), vCPU events last (KVM_SET_REGS drops a pending exception,
 * which the events put back). KVM_SET_CPUID2 must have been done before, as
 * for a boot (x86_vcpu_setup with the snapshot's configuration).
 *
 * Not thread-safe against the vCPU itself: the vCPU must be out of KVM_RUN
 * (parked by vcpu_pause, or its thread joined), and on save every other
 * vCPU of the VM too (KVM_GET_VCPU_EVENTS). */
#ifndef FLINT_VCPU_STATE_H
#define FLINT_VCPU_STATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "core/wire.h"

#define VCPU_STATE_VERSION 1u
/* At most this many MSRs: the allow-list's size, which no valid section
 * exceeds. */
#define VCPU_STATE_MAX_MSRS 64u
/* The largest XSAVE area accepted (AMX makes one ~11 KiB). */
#define VCPU_STATE_MAX_XSAVE (256u << 10)

struct vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs debugregs;
	uint32_t tsc_khz; /* 0: unknown */
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[VCPU_STATE_MAX_MSRS];
	uint32_t xsave_size;	 /* bytes at xsave */
	struct kvm_xsave *xsave; /* malloc'd; vcpu_state_free */
};

/* Read vcpu_fd's state into s (zeroed first). sys_fd is /dev/kvm, for the
 * MSR list and the XSAVE size. Returns 0 or -errno with err naming the
 * KVM call or the MSR that failed; s holds nothing to free on error. */
int vcpu_state_get(int vcpu_fd, int sys_fd, struct vcpu_state *s, char *err,
		   size_t errlen) WARN_UNUSED;
/* Append s as a section to w. Returns wbuf_err(w). */
int vcpu_state_encode(const struct vcpu_state *s, struct wbuf *w) WARN_UNUSED;
/* Decode one section from r into s (zeroed first) and check it: sizes,
 * counts, every MSR in the allow-list and none twice, flags KVM knows, an
 * MP state x86 has. Pure: no ioctl. Returns 0, -EBADMSG (truncated or
 * corrupt: a short read, a blob of the wrong size) or -EINVAL (another
 * version, or a value a guest's own set-up could not have produced), with
 * err naming the field; s holds nothing to free on error. */
int vcpu_state_decode(struct rbuf *r, struct vcpu_state *s, char *err, size_t errlen) WARN_UNUSED;
/* Write s into vcpu_fd, in the order above. Before its first KVM_SET it
 * checks the host: an XSAVE area larger than this KVM takes is -EINVAL; a
 * TSC frequency more than 250 ppm (KVM's own tolerance) from the vCPU's is
 * set with KVM_SET_TSC_KHZ where the host can scale the TSC
 * (KVM_CAP_TSC_CONTROL), else refused with -ENOTSUP. A KVM_SET that fails
 * leaves the vCPU half restored (discard it): -errno, err names it. */
int vcpu_state_put(int vcpu_fd, int sys_fd, const struct vcpu_state *s, char *err,
		   size_t errlen) WARN_UNUSED;
/* Release s's XSAVE area; s may be zeroed. */
void vcpu_state_free(struct vcpu_state *s);

/* get + encode: append vcpu_fd's state to w. 0 or -errno, err says why. */
int vcpu_state_save(int vcpu_fd, int sys_fd, struct wbuf *w, char *err, size_t errlen) WARN_UNUSED;
/* decode + put: nothing reaches KVM unless the whole section decodes and
 * checks. 0 or -errno as vcpu_state_decode and vcpu_state_put. */
int vcpu_state_restore(int vcpu_fd, int sys_fd, struct rbuf *r, char *err,
		       size_t errlen) WARN_UNUSED;

/* True when MSR `index` is one flint saves and restores (the list is in
 * vcpu_state.c, each with why). */
bool vcpu_state_msr_allowed(uint32_t index);

/* A line on a vCPU's local APIC, for a guest that stopped answering (flint
 * --stats at the VM's end): the timer's LVT entry (mode, masked or not), the
 * TSC deadline against the TSC (tsc and deadline NULL: not read), the
 * highest vector in service and the highest pending, and the PPR. Into
 * buf, cut to len. */
void vcpu_state_apic_line(const struct kvm_lapic_state *l, const uint64_t *tsc,
			  const uint64_t *deadline, char *buf, size_t len);

/* vcpu_state_apic_line of a vCPU out of KVM_RUN (KVM_GET_LAPIC, and
 * KVM_GET_MSRS for the TSC and its deadline). 0 or -errno (the LAPIC could
 * not be read: nothing written). */
int vcpu_state_describe_apic(int vcpu_fd, char *buf, size_t len);

#endif
