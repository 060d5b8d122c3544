#include "x86/vm_state.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

/* A refusal: -errno, err naming the field (fmt is a literal). */
#define fail(err, errlen, r, ...) err_set(err, errlen, r, "VM state: " __VA_ARGS__)

int vm_state_get(int vm_fd, struct ioapic *io, struct vm_kvm_state *s, char *err, size_t errlen)
{
	struct kvm_clock_data clock = {0};

	memset(s, 0, sizeof(*s));
	ioapic_save(io, &s->ioapic);
	if (ioctl(vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return fail(err, errlen, -errno, "KVM_GET_CLOCK: %s", strerror(errno));
	s->clock = clock.clock;
	s->clock_flags = clock.flags;
	return 0;
}

int vm_state_encode(const struct vm_kvm_state *s, struct wbuf *w)
{
	wput_u32(w, VM_STATE_VERSION);
	wput_u32(w, s->ioapic.npins);
	wput_u32(w, s->ioapic.id);
	wput_u32(w, s->ioapic.ioregsel);
	for (unsigned p = 0; p < IOAPIC_MAX_PINS; p++)
		wput_u64(w, s->ioapic.redir[p]);
	wput_u64(w, s->clock);
	wput_u32(w, s->clock_flags);
	return wbuf_err(w);
}

int vm_state_decode(struct rbuf *r, struct vm_kvm_state *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	uint32_t version = rget_u32(r);
	if (rbuf_err(r))
		return fail(err, errlen, -EBADMSG, "truncated before its version");
	if (version == 1)
		return fail(err, errlen, -EINVAL,
			    "version 1 (KVM's own PICs, I/O APIC and PIT), from a flint "
			    "before the split irqchip; this flint reads %u: take the snapshot "
			    "again",
			    VM_STATE_VERSION);
	if (version != VM_STATE_VERSION)
		return fail(err, errlen, -EINVAL, "version %u, this flint reads %u", version,
			    VM_STATE_VERSION);
	s->ioapic.npins = rget_u32(r);
	s->ioapic.id = rget_u32(r);
	s->ioapic.ioregsel = rget_u32(r);
	for (unsigned p = 0; p < IOAPIC_MAX_PINS; p++)
		s->ioapic.redir[p] = rget_u64(r);
	s->clock = rget_u64(r);
	s->clock_flags = rget_u32(r);
	if (rbuf_err(r))
		return fail(err, errlen, -EBADMSG, "truncated or corrupt I/O APIC or clock");
	char why[160];
	if (ioapic_state_check(&s->ioapic, why, sizeof(why)) < 0)
		return fail(err, errlen, -EINVAL, "%s", why);
	return 0;
}

int vm_state_put(int vm_fd, struct ioapic *io, const struct vm_kvm_state *s, char *err,
		 size_t errlen)
{
	/* Only the clock: KVM_CLOCK_REALTIME and the host TSC would ask KVM to
	 * add the time since the save. */
	struct kvm_clock_data clock = {.clock = s->clock};
	char why[160];
	int r = ioapic_load(io, &s->ioapic, why, sizeof(why));

	if (r < 0)
		return fail(err, errlen, r, "%s", why);
	if (ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return fail(err, errlen, -errno, "KVM_SET_CLOCK: %s", strerror(errno));
	return 0;
}

int vm_state_save(int vm_fd, struct ioapic *io, struct wbuf *w, char *err, size_t errlen)
{
	struct vm_kvm_state s;
	int r = vm_state_get(vm_fd, io, &s, err, errlen);

	if (r < 0)
		return r;
	if ((r = vm_state_encode(&s, w)) < 0)
		return fail(err, errlen, r, "encoding: %s", strerror(-r));
	return 0;
}

int vm_state_restore(int vm_fd, struct ioapic *io, struct rbuf *r, char *err, size_t errlen)
{
	struct vm_kvm_state s;
	int ret = vm_state_decode(r, &s, err, errlen);

	return ret < 0 ? ret : vm_state_put(vm_fd, io, &s, err, errlen);
}
