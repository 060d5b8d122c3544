#include "x86/vcpu_state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* MSR numbers (no UAPI header carries them). */
#define MSR_IA32_TSC	      0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_KVM_ASYNC_PF_EN   0x4b564d02
#define MSR_KVM_ASYNC_PF_INT  0x4b564d06

/* Local APIC registers, by their offset in kvm_lapic_state.regs. */
#define APIC_PPR  0xa0
#define APIC_ISR  0x100 /* 256 bits: eight 32-bit words 16 bytes apart */
#define APIC_IRR  0x200 /* the same */
#define APIC_LVTT 0x320

/* The MSRs flint saves and restores: guest-written state that neither
 * KVM_GET_SREGS nor the LAPIC carries. A section naming any other MSR is
 * refused, so a crafted file cannot set arbitrary ones. Left out on
 * purpose: feature and identification MSRs (ARCH_CAPABILITIES,
 * PERF_CAPABILITIES, PLATFORM_INFO, UCODE_REV), which describe the host
 * and are the VMM's to set; machine-check, PMU, LBR-record, VMX/SVM and
 * Hyper-V MSRs, none of which flint gives a guest; SMI_COUNT (no SMM); the
 * old kvmclock MSRs 0x11/0x12, which share their value with the _NEW ones
 * (a write of the old one after the new one would turn kvmclock off);
 * MSR_KVM_MIGRATION_CONTROL (SEV only); the x2APIC range (the LAPIC
 * state). */
static const struct {
	uint32_t first, count;
} allowed_msrs[] = {
    {0x10, 1},	     /* TSC */
    {0x3b, 1},	     /* TSC_ADJUST */
    {0x48, 1},	     /* SPEC_CTRL */
    {0x140, 1},	     /* MISC_FEATURES_ENABLES (CPUID faulting) */
    {0x174, 3},	     /* SYSENTER_CS, _ESP, _EIP */
    {0x1a0, 1},	     /* MISC_ENABLE */
    {0x1d9, 1},	     /* DEBUGCTL */
    {0x1fc, 1},	     /* POWER_CTL */
    {0x200, 16},     /* MTRR variable ranges: 8 base/mask pairs (KVM has 8) */
    {0x250, 1},	     /* MTRR fixed 64K_00000 */
    {0x258, 2},	     /* MTRR fixed 16K_80000, 16K_A0000 */
    {0x268, 8},	     /* MTRR fixed 4K_C0000 .. 4K_F8000 */
    {0x277, 1},	     /* PAT */
    {0x2ff, 1},	     /* MTRR_DEF_TYPE */
    {0x6e0, 1},	     /* TSC_DEADLINE */
    {0xc0000080, 5}, /* EFER, STAR, LSTAR, CSTAR, SFMASK */
    {0xc0000100, 4}, /* FS_BASE, GS_BASE, KERNEL_GS_BASE, TSC_AUX */
    {0xc0010015, 1}, /* AMD HWCR */
    {0xc001011f, 1}, /* AMD VIRT_SPEC_CTRL */
    {0x4b564d00, 7}, /* KVM: WALL_CLOCK_NEW, SYSTEM_TIME_NEW, ASYNC_PF_EN,
			STEAL_TIME, PV_EOI_EN, POLL_CONTROL, ASYNC_PF_INT */
};

/* Saved besides what KVM lists: KVM emulates the MTRRs but leaves them out
 * of KVM_GET_MSR_INDEX_LIST, and flint's boot sets MTRR_DEF_TYPE. */
static const uint32_t mtrr_msrs[] = {
    0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, 0x208, 0x209,
    0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f, 0x250, 0x258, 0x259, 0x268,
    0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f, 0x2ff,
};

#define EVENT_FLAGS                                                                                \
	(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |                       \
	 KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD |      \
	 KVM_VCPUEVENT_VALID_TRIPLE_FAULT)
/* KVM's tsc_tolerance_ppm: within it KVM itself would not scale. */
#define TSC_TOLERANCE_PPM 250u

bool vcpu_state_msr_allowed(uint32_t index)
{
	for (size_t i = 0; i < ARRAY_SIZE(allowed_msrs); i++)
		if (index - allowed_msrs[i].first < allowed_msrs[i].count)
			return true;
	return false;
}

/* A refusal: -errno, err naming the field (fmt is a literal). */
#define fail(err, errlen, r, ...) err_set(err, errlen, r, "vcpu state: " __VA_ARGS__)

/* An ioctl's failure as -errno with err naming it. */
static int fail_ioctl(char *err, size_t errlen, const char *what)
{
	int r = -errno;
	return fail(err, errlen, r, "%s: %s", what, strerror(errno));
}

void vcpu_state_free(struct vcpu_state *s)
{
	free(s->xsave);
	s->xsave = NULL;
	s->xsave_size = 0;
}

/* The size of this host's kvm_xsave: KVM_CAP_XSAVE2's answer, or the fixed
 * 4096 of KVM_GET_XSAVE; 0 without XSAVE support. */
static uint32_t host_xsave_size(int sys_fd)
{
	int n = ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (n >= (int)sizeof(struct kvm_xsave))
		return (uint32_t)n;
	return ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0 ? sizeof(struct kvm_xsave) : 0;
}

static bool have_msr(const struct vcpu_state *s, uint32_t index)
{
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index == index)
			return true;
	return false;
}

static void add_msr(struct vcpu_state *s, uint32_t index)
{
	if (vcpu_state_msr_allowed(index) && !have_msr(s, index) && s->nmsrs < VCPU_STATE_MAX_MSRS)
		s->msrs[s->nmsrs++].index = index;
}

/* The MSRs to save: KVM's list filtered by the allow-list, then the MTRRs. */
static int list_msrs(int sys_fd, struct vcpu_state *s, char *err, size_t errlen)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;

	/* The first call fails with E2BIG and says how many there are. */
	if (ioctl(sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return fail_ioctl(err, errlen, "KVM_GET_MSR_INDEX_LIST");
	l = calloc(1, sizeof(*l) + (size_t)probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (ioctl(sys_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int r = fail_ioctl(err, errlen, "KVM_GET_MSR_INDEX_LIST");
		free(l);
		return r;
	}
	for (uint32_t i = 0; i < l->nmsrs && i < probe.nmsrs; i++)
		add_msr(s, l->indices[i]);
	free(l);
	for (size_t i = 0; i < ARRAY_SIZE(mtrr_msrs); i++)
		add_msr(s, mtrr_msrs[i]);
	return 0;
}

static int get_msrs(int vcpu_fd, struct vcpu_state *s, char *err, size_t errlen)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + s->nmsrs * sizeof(m->entries[0]));
	int r;

	if (!m)
		return -ENOMEM;
	m->nmsrs = s->nmsrs;
	memcpy(m->entries, s->msrs, s->nmsrs * sizeof(m->entries[0]));
	/* KVM_GET_MSRS returns how many it read: it stops at the first it cannot. */
	r = ioctl(vcpu_fd, KVM_GET_MSRS, m);
	if (r < 0)
		r = fail_ioctl(err, errlen, "KVM_GET_MSRS");
	else if ((uint32_t)r < s->nmsrs)
		r = fail(err, errlen, -EIO, "KVM_GET_MSRS: KVM cannot read MSR %#x",
			 s->msrs[r].index);
	else {
		memcpy(s->msrs, m->entries, s->nmsrs * sizeof(m->entries[0]));
		r = 0;
	}
	free(m);
	return r;
}

static int get_xsave(int vcpu_fd, int sys_fd, struct vcpu_state *s, char *err, size_t errlen)
{
	bool xsave2 = ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2) > 0;
	uint32_t size = host_xsave_size(sys_fd);

	if (!size)
		return fail(err, errlen, -ENOTSUP, "this host's KVM has no KVM_CAP_XSAVE");
	if (size > VCPU_STATE_MAX_XSAVE)
		return fail(err, errlen, -E2BIG, "this host's XSAVE area is %u bytes, over %u",
			    size, VCPU_STATE_MAX_XSAVE);
	s->xsave = calloc(1, size);
	if (!s->xsave)
		return -ENOMEM;
	s->xsave_size = size;
	if (xsave2 ? ioctl(vcpu_fd, KVM_GET_XSAVE2, s->xsave) < 0
		   : ioctl(vcpu_fd, KVM_GET_XSAVE, s->xsave) < 0)
		return fail_ioctl(err, errlen, xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
	return 0;
}

int vcpu_state_get(int vcpu_fd, int sys_fd, struct vcpu_state *s, char *err, size_t errlen)
{
	int r;

	memset(s, 0, sizeof(*s));
	/* KVM_GET_MP_STATE first: it takes pending INIT/SIPI into the vCPU,
	 * which changes what the other calls read. */
	if (ioctl(vcpu_fd, KVM_GET_MP_STATE, &s->mp) < 0)
		return fail_ioctl(err, errlen, "KVM_GET_MP_STATE");
	if (ioctl(vcpu_fd, KVM_GET_REGS, &s->regs) < 0)
		return fail_ioctl(err, errlen, "KVM_GET_REGS");
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s->sregs) < 0)
		return fail_ioctl(err, errlen, "KVM_GET_SREGS");
	if ((r = get_xsave(vcpu_fd, sys_fd, s, err, errlen)) < 0)
		goto err;
	if (ioctl(vcpu_fd, KVM_GET_XCRS, &s->xcrs) < 0) {
		r = fail_ioctl(err, errlen, "KVM_GET_XCRS");
		goto err;
	}
	if (ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0) {
		r = fail_ioctl(err, errlen, "KVM_GET_DEBUGREGS");
		goto err;
	}
	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &s->lapic) < 0) {
		r = fail_ioctl(err, errlen, "KVM_GET_LAPIC");
		goto err;
	}
	/* A host that cannot say leaves it 0: the restore then cannot check. */
	if (ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_TSC_KHZ) > 0) {
		int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
		if (khz < 0) {
			r = fail_ioctl(err, errlen, "KVM_GET_TSC_KHZ");
			goto err;
		}
		s->tsc_khz = (uint32_t)khz;
	}
	if ((r = list_msrs(sys_fd, s, err, errlen)) < 0 ||
	    (r = get_msrs(vcpu_fd, s, err, errlen)) < 0)
		goto err;
	/* Last: the other GETs may have changed what is pending. */
	if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events) < 0) {
		r = fail_ioctl(err, errlen, "KVM_GET_VCPU_EVENTS");
		goto err;
	}
	return 0;

err:
	vcpu_state_free(s);
	return r;
}

int vcpu_state_encode(const struct vcpu_state *s, struct wbuf *w)
{
	wput_u32(w, VCPU_STATE_VERSION);
	wput_blob(w, &s->regs, sizeof(s->regs));
	wput_blob(w, &s->sregs, sizeof(s->sregs));
	wput_u32(w, s->xsave_size);
	wput_blob(w, s->xsave, s->xsave_size);
	wput_blob(w, &s->xcrs, sizeof(s->xcrs));
	wput_blob(w, &s->lapic, sizeof(s->lapic));
	wput_u32(w, s->nmsrs);
	for (uint32_t i = 0; i < s->nmsrs; i++) {
		wput_u32(w, s->msrs[i].index);
		wput_u64(w, s->msrs[i].data);
	}
	wput_blob(w, &s->events, sizeof(s->events));
	wput_blob(w, &s->mp, sizeof(s->mp));
	wput_blob(w, &s->debugregs, sizeof(s->debugregs));
	wput_u32(w, s->tsc_khz);
	return wbuf_err(w);
}

/* The checks that need no KVM: values KVM itself, or a guest, never
 * produces. */
static int check(const struct vcpu_state *s, char *err, size_t errlen)
{
	const struct kvm_vcpu_events *e = &s->events;
	const struct kvm_debugregs *d = &s->debugregs;

	for (uint32_t i = 0; i < s->nmsrs; i++) {
		if (!vcpu_state_msr_allowed(s->msrs[i].index))
			return fail(err, errlen, -EINVAL, "MSR %#x is not one flint restores",
				    s->msrs[i].index);
		for (uint32_t j = 0; j < i; j++)
			if (s->msrs[j].index == s->msrs[i].index)
				return fail(err, errlen, -EINVAL, "MSR %#x given twice",
					    s->msrs[i].index);
	}
	if (s->xcrs.nr_xcrs > KVM_MAX_XCRS || s->xcrs.flags)
		return fail(err, errlen, -EINVAL, "XCRs: %u of at most %u, flags %#x",
			    s->xcrs.nr_xcrs, KVM_MAX_XCRS, s->xcrs.flags);
	if (e->flags & ~EVENT_FLAGS)
		return fail(err, errlen, -EINVAL, "vCPU events: unknown flags %#x",
			    e->flags & ~EVENT_FLAGS);
	if ((e->exception.injected || e->exception.pending) && e->exception.nr >= 32)
		return fail(err, errlen, -EINVAL, "vCPU events: exception vector %u",
			    e->exception.nr);
	switch (s->mp.mp_state) {
	case KVM_MP_STATE_RUNNABLE:
	case KVM_MP_STATE_UNINITIALIZED:
	case KVM_MP_STATE_INIT_RECEIVED:
	case KVM_MP_STATE_HALTED:
	case KVM_MP_STATE_SIPI_RECEIVED:
	case KVM_MP_STATE_AP_RESET_HOLD:
	case KVM_MP_STATE_SUSPENDED:
		break;
	default:
		return fail(err, errlen, -EINVAL, "MP state %u is not an x86 one", s->mp.mp_state);
	}
	if (d->flags || (d->dr6 >> 32) || (d->dr7 >> 32))
		return fail(err, errlen, -EINVAL,
			    "debug registers: flags %#llx, DR6 %#llx, DR7 %#llx",
			    (unsigned long long)d->flags, (unsigned long long)d->dr6,
			    (unsigned long long)d->dr7);
	return 0;
}

int vcpu_state_decode(struct rbuf *r, struct vcpu_state *s, char *err, size_t errlen)
{
	const uint8_t *xsave;
	size_t xsave_len;
	int ret;

	memset(s, 0, sizeof(*s));
	uint32_t version = rget_u32(r);
	if (rbuf_err(r))
		return fail(err, errlen, -EBADMSG, "truncated before its version");
	if (version != VCPU_STATE_VERSION)
		return fail(err, errlen, -EINVAL, "version %u, this flint reads %u", version,
			    VCPU_STATE_VERSION);
	rget_struct(r, &s->regs, sizeof(s->regs));
	rget_struct(r, &s->sregs, sizeof(s->sregs));
	s->xsave_size = rget_u32(r);
	xsave = rget_blob(r, &xsave_len, VCPU_STATE_MAX_XSAVE);
	if (rbuf_err(r))
		return fail(err, errlen, -EBADMSG, "truncated or corrupt registers or XSAVE area");
	if (xsave_len != s->xsave_size || s->xsave_size < sizeof(struct kvm_xsave) ||
	    s->xsave_size % 4) {
		uint32_t size = s->xsave_size;
		s->xsave_size = 0;
		return fail(
		    err, errlen, -EBADMSG,
		    "XSAVE area of %zu bytes, recorded as %u (at least %zu, a multiple of 4)",
		    xsave_len, size, sizeof(struct kvm_xsave));
	}
	rget_struct(r, &s->xcrs, sizeof(s->xcrs));
	rget_struct(r, &s->lapic, sizeof(s->lapic));
	s->nmsrs = rget_u32(r);
	if (rbuf_err(r) || s->nmsrs > VCPU_STATE_MAX_MSRS) {
		ret = rbuf_err(r) ? -EBADMSG : -EINVAL;
		fail(err, errlen, ret, "%u MSRs (at most %u), or truncated before them", s->nmsrs,
		     VCPU_STATE_MAX_MSRS);
		s->nmsrs = 0;
		s->xsave_size = 0;
		return ret;
	}
	for (uint32_t i = 0; i < s->nmsrs; i++) {
		s->msrs[i].index = rget_u32(r);
		s->msrs[i].data = rget_u64(r);
	}
	rget_struct(r, &s->events, sizeof(s->events));
	rget_struct(r, &s->mp, sizeof(s->mp));
	rget_struct(r, &s->debugregs, sizeof(s->debugregs));
	s->tsc_khz = rget_u32(r);
	if (rbuf_err(r)) {
		s->xsave_size = 0;
		return fail(err, errlen, -EBADMSG,
			    "truncated or corrupt MSRs, events, MP state, debug registers or TSC");
	}
	if ((ret = check(s, err, errlen)) < 0) {
		s->xsave_size = 0;
		return ret;
	}
	s->xsave = malloc(s->xsave_size);
	if (!s->xsave) {
		s->xsave_size = 0;
		return -ENOMEM;
	}
	memcpy(s->xsave, xsave, s->xsave_size);
	return 0;
}

/* Where MSR `index` goes in KVM_SET_MSRS: the TSC before all (TSC_ADJUST
 * and the deadline are read against it), ASYNC_PF_INT (the vector) before
 * ASYNC_PF_EN (which may deliver at once), TSC_DEADLINE last (KVM arms the
 * timer by comparing it with the TSC). */
static int msr_rank(uint32_t index)
{
	switch (index) {
	case MSR_IA32_TSC:
		return 0;
	case MSR_KVM_ASYNC_PF_INT:
		return 1;
	case MSR_KVM_ASYNC_PF_EN:
		return 3;
	case MSR_IA32_TSC_DEADLINE:
		return 4;
	default:
		return 2;
	}
}

static int put_msrs(int vcpu_fd, const struct vcpu_state *s, char *err, size_t errlen)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + s->nmsrs * sizeof(m->entries[0]));
	int r;

	if (!m)
		return -ENOMEM;
	for (int rank = 0; rank <= 4; rank++)
		for (uint32_t i = 0; i < s->nmsrs; i++)
			if (msr_rank(s->msrs[i].index) == rank)
				m->entries[m->nmsrs++] = s->msrs[i];
	/* KVM_SET_MSRS returns how many it wrote: it stops at the first refusal. */
	r = ioctl(vcpu_fd, KVM_SET_MSRS, m);
	if (r < 0)
		r = fail_ioctl(err, errlen, "KVM_SET_MSRS");
	else if ((uint32_t)r < m->nmsrs)
		r = fail(err, errlen, -EINVAL, "KVM_SET_MSRS: KVM refused MSR %#x = %#llx",
			 m->entries[r].index, (unsigned long long)m->entries[r].data);
	else
		r = 0;
	free(m);
	return r;
}

/* KVM_SET_XSAVE's refusal (r), with what in the area it checks: the
 * components present (XSTATE_BV, each of which the guest's XCR0 must
 * allow), XCOMP_BV (0 in the standard form) and MXCSR's reserved bits. */
static void xsave_refused(const struct kvm_xsave *x, int r, char *err, size_t errlen)
{
	uint64_t bv, comp;
	uint32_t mxcsr;

	memcpy(&mxcsr, (const uint8_t *)x->region + 24, sizeof(mxcsr));
	memcpy(&bv, (const uint8_t *)x->region + 512, sizeof(bv));
	memcpy(&comp, (const uint8_t *)x->region + 520, sizeof(comp));
	fail(err, errlen, r,
	     "KVM_SET_XSAVE: %s: the saved area's XSTATE_BV %#llx, XCOMP_BV %#llx, MXCSR %#x "
	     "(a state component the guest's CPU lacks on this host, a compacted area or "
	     "MXCSR's reserved bits)",
	     strerror(-r), (unsigned long long)bv, (unsigned long long)comp, mxcsr);
}

/* Whether the vCPU's TSC must be set to s->tsc_khz: 0 (no), 1 (yes, and
 * the host can), or -errno with err saying why it cannot. */
static int tsc_needs_setting(int vcpu_fd, int sys_fd, const struct vcpu_state *s, char *err,
			     size_t errlen)
{
	if (!s->tsc_khz)
		return 0; /* saved where KVM could not say: nothing to compare */
	int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0)
		return fail(err, errlen, khz < 0 ? -errno : -ENOTSUP,
			    "the snapshot's TSC runs at %u kHz and this host's KVM cannot say "
			    "its own (KVM_GET_TSC_KHZ: %s)",
			    s->tsc_khz, khz < 0 ? strerror(errno) : "0");
	uint64_t diff = (uint64_t)khz > s->tsc_khz ? (uint64_t)khz - s->tsc_khz
						   : (uint64_t)s->tsc_khz - (uint64_t)khz;
	if (diff * 1000000u <= (uint64_t)s->tsc_khz * TSC_TOLERANCE_PPM)
		return 0;
	if (ioctl(sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0)
		return 1;
	return fail(err, errlen, -ENOTSUP,
		    "the snapshot's TSC runs at %u kHz, this host's at %d kHz, and this host's "
		    "KVM cannot scale a guest's TSC (no KVM_CAP_TSC_CONTROL): restore it on a "
		    "host with the same TSC frequency",
		    s->tsc_khz, khz);
}

int vcpu_state_put(int vcpu_fd, int sys_fd, const struct vcpu_state *s, char *err, size_t errlen)
{
	struct kvm_xsave *xsave = NULL;
	int r, set_tsc;

	/* Everything that can be refused is refused before the first SET. */
	uint32_t host_size = host_xsave_size(sys_fd);
	if (!host_size)
		return fail(err, errlen, -ENOTSUP, "this host's KVM has no KVM_CAP_XSAVE");
	if (s->xsave_size > host_size)
		return fail(err, errlen, -EINVAL,
			    "the snapshot's XSAVE area is %u bytes, this host's KVM takes %u: "
			    "the guest used CPU state this host does not have",
			    s->xsave_size, host_size);
	if ((set_tsc = tsc_needs_setting(vcpu_fd, sys_fd, s, err, errlen)) < 0)
		return set_tsc;
	/* KVM_SET_XSAVE reads the host's full size; the components past the
	 * snapshot's are absent from its XSTATE_BV, so zeros. */
	xsave = calloc(1, host_size);
	if (!xsave)
		return -ENOMEM;
	memcpy(xsave, s->xsave, s->xsave_size);

	r = -1;
	if (set_tsc && ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)s->tsc_khz) < 0) {
		r = -errno;
		fail(err, errlen, r,
		     "KVM_SET_TSC_KHZ: %s: this host's KVM cannot give the guest "
		     "the snapshot's TSC frequency, %u kHz",
		     strerror(-r), s->tsc_khz);
		goto out;
	}
	if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &s->mp) < 0) {
		r = fail_ioctl(err, errlen, "KVM_SET_MP_STATE");
		goto out;
	}
	if (ioctl(vcpu_fd, KVM_SET_REGS, &s->regs) < 0) {
		r = fail_ioctl(err, errlen, "KVM_SET_REGS");
		goto out;
	}
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s->sregs) < 0) {
		r = fail_ioctl(err, errlen, "KVM_SET_SREGS");
		goto out;
	}
	if (ioctl(vcpu_fd, KVM_SET_XSAVE, xsave) < 0) {
		r = -errno;
		xsave_refused(xsave, r, err, errlen);
		goto out;
	}
	if (ioctl(vcpu_fd, KVM_SET_XCRS, &s->xcrs) < 0) {
		r = fail_ioctl(err, errlen, "KVM_SET_XCRS");
		goto out;
	}
	if (ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0) {
		r = fail_ioctl(err, errlen, "KVM_SET_DEBUGREGS");
		goto out;
	}
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &s->lapic) < 0) {
		r = fail_ioctl(err, errlen, "KVM_SET_LAPIC");
		goto out;
	}
	if ((r = put_msrs(vcpu_fd, s, err, errlen)) < 0)
		goto out;
	if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &s->events) < 0) {
		r = fail_ioctl(err, errlen, "KVM_SET_VCPU_EVENTS");
		goto out;
	}
	r = 0;
out:
	free(xsave);
	return r;
}

static uint32_t apic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;

	memcpy(&v, l->regs + off, sizeof(v));
	return v;
}

/* The highest vector set in the 256-bit register at off (APIC_ISR,
 * APIC_IRR), or -1. */
static int top_vector(const struct kvm_lapic_state *l, unsigned off)
{
	for (int w = 7; w >= 0; w--) {
		uint32_t v = apic_reg(l, off + 0x10 * (unsigned)w);

		if (v)
			return w * 32 + 31 - __builtin_clz(v);
	}
	return -1;
}

void vcpu_state_apic_line(const struct kvm_lapic_state *l, const uint64_t *tsc,
			  const uint64_t *deadline, char *buf, size_t len)
{
	static const char *const modes[] = {"one-shot", "periodic", "TSC-deadline", "reserved"};
	uint32_t lvtt = apic_reg(l, APIC_LVTT);
	int isr = top_vector(l, APIC_ISR), irr = top_vector(l, APIC_IRR);
	char in[16] = "none", pend[16] = "none", dl[64] = "";

	if (isr >= 0)
		snprintf(in, sizeof(in), "%#x", (unsigned)isr);
	if (irr >= 0)
		snprintf(pend, sizeof(pend), "%#x", (unsigned)irr);
	if (tsc && deadline && !*deadline)
		snprintf(dl, sizeof(dl), ", no TSC deadline");
	else if (tsc && deadline)
		snprintf(dl, sizeof(dl), ", TSC deadline %+lld cycles from the TSC",
			 (long long)(*deadline - *tsc));
	snprintf(buf, len, "timer vector %#x, %s%s%s, in service %s, pending %s, PPR %#x",
		 lvtt & 0xff, modes[(lvtt >> 17) & 3], lvtt & (1u << 16) ? ", masked" : "", dl, in,
		 pend, apic_reg(l, APIC_PPR));
}

int vcpu_state_describe_apic(int vcpu_fd, char *buf, size_t len)
{
	struct kvm_lapic_state l;
	union {
		struct kvm_msrs h;
		char room[sizeof(struct kvm_msrs) + 2 * sizeof(struct kvm_msr_entry)];
	} m;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	memset(&m, 0, sizeof(m));
	m.h.nmsrs = 2;
	m.h.entries[0].index = MSR_IA32_TSC;
	m.h.entries[1].index = MSR_IA32_TSC_DEADLINE;
	if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) == 2) {
		uint64_t tsc = m.h.entries[0].data, deadline = m.h.entries[1].data;

		vcpu_state_apic_line(&l, &tsc, &deadline, buf, len);
	} else {
		vcpu_state_apic_line(&l, NULL, NULL, buf, len);
	}
	return 0;
}

int vcpu_state_save(int vcpu_fd, int sys_fd, struct wbuf *w, char *err, size_t errlen)
{
	struct vcpu_state s;
	int r = vcpu_state_get(vcpu_fd, sys_fd, &s, err, errlen);

	if (r < 0)
		return r;
	r = vcpu_state_encode(&s, w);
	if (r < 0)
		fail(err, errlen, r, "encoding: %s", strerror(-r));
	vcpu_state_free(&s);
	return r;
}

int vcpu_state_restore(int vcpu_fd, int sys_fd, struct rbuf *r, char *err, size_t errlen)
{
	struct vcpu_state s;
	int ret = vcpu_state_decode(r, &s, err, errlen);

	if (ret < 0)
		return ret;
	ret = vcpu_state_put(vcpu_fd, sys_fd, &s, err, errlen);
	vcpu_state_free(&s);
	return ret;
}
