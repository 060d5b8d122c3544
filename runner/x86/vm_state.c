#include "x86/vm_state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

/* Where KVM's IOAPIC answers; a guest cannot move it. */
#define IOAPIC_BASE 0xfec00000ULL
/* The ELCR bits KVM lets a guest set (kvm_pic_init): IRQs 0-2 on the
 * master and 8 and 13 on the slave are edge-triggered for good. */
static const uint8_t elcr_mask[2] = {0xf8, 0xde};
#define PIT_FLAGS (KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON)

static const char *const chip_name[KVM_NR_IRQCHIPS] = {"PIC master", "PIC slave", "IOAPIC"};

/* A refusal: -errno, err naming the field (fmt is a literal). */
#define fail(err, errlen, r, ...) err_set(err, errlen, r, "VM state: " __VA_ARGS__)

static int fail_ioctl(char *err, size_t errlen, const char *what, const char *which)
{
	int r = -errno;
	return fail(err, errlen, r, "%s%s%s: %s", what, which ? " " : "", which ? which : "",
		    strerror(errno));
}

int vm_state_get(int vm_fd, struct vm_kvm_state *s, char *err, size_t errlen)
{
	struct kvm_clock_data clock = {0};

	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < KVM_NR_IRQCHIPS; i++) {
		s->chip[i].chip_id = i;
		if (ioctl(vm_fd, KVM_GET_IRQCHIP, &s->chip[i]) < 0)
			return fail_ioctl(err, errlen, "KVM_GET_IRQCHIP", chip_name[i]);
	}
	if (ioctl(vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		return fail_ioctl(err, errlen, "KVM_GET_PIT2", NULL);
	if (ioctl(vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return fail_ioctl(err, errlen, "KVM_GET_CLOCK", NULL);
	s->clock = clock.clock;
	s->clock_flags = clock.flags;
	return 0;
}

int vm_state_encode(const struct vm_kvm_state *s, struct wbuf *w)
{
	wput_u32(w, VM_STATE_VERSION);
	for (unsigned i = 0; i < KVM_NR_IRQCHIPS; i++)
		wput_blob(w, &s->chip[i], sizeof(s->chip[i]));
	wput_blob(w, &s->pit, sizeof(s->pit));
	wput_u64(w, s->clock);
	wput_u32(w, s->clock_flags);
	return wbuf_err(w);
}

static int check(const struct vm_kvm_state *s, char *err, size_t errlen)
{
	for (unsigned i = 0; i < KVM_NR_IRQCHIPS; i++)
		if (s->chip[i].chip_id != i || s->chip[i].pad)
			return fail(err, errlen, -EINVAL, "%s: chip id %u in its slot",
				    chip_name[i], s->chip[i].chip_id);
	for (unsigned i = 0; i < 2; i++) {
		const struct kvm_pic_state *p = &s->chip[i].chip.pic;
		if (p->elcr_mask != elcr_mask[i] || (p->elcr & ~p->elcr_mask))
			return fail(err, errlen, -EINVAL, "%s: ELCR %#x, mask %#x (KVM's is %#x)",
				    chip_name[i], p->elcr, p->elcr_mask, elcr_mask[i]);
	}
	const struct kvm_ioapic_state *io = &s->chip[KVM_IRQCHIP_IOAPIC].chip.ioapic;
	if (io->base_address != IOAPIC_BASE || io->id > 0xf || io->ioregsel > 0xff)
		return fail(
		    err, errlen, -EINVAL, "IOAPIC: at %#llx (not %#llx), id %u, IOREGSEL %#x",
		    (unsigned long long)io->base_address, IOAPIC_BASE, io->id, io->ioregsel);
	if (s->pit.flags & ~PIT_FLAGS)
		return fail(err, errlen, -EINVAL, "PIT: unknown flags %#x",
			    s->pit.flags & ~PIT_FLAGS);
	for (unsigned i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &s->pit.channels[i];
		/* The PIT takes modes 6 and 7 as 2 and 3 and counts up to 2^16;
		 * KVM marks a channel never programmed with mode 0xff. */
		if ((c->mode > 5 && c->mode != 0xff) || c->count > 0x10000 || c->rw_mode > 3 ||
		    c->bcd > 1 || c->gate > 1)
			return fail(err, errlen, -EINVAL,
				    "PIT channel %u: mode %u, count %u, access %u, bcd %u, gate %u",
				    i, c->mode, c->count, c->rw_mode, c->bcd, c->gate);
	}
	return 0;
}

int vm_state_decode(struct rbuf *r, struct vm_kvm_state *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	uint32_t version = rget_u32(r);
	if (rbuf_err(r))
		return fail(err, errlen, -EBADMSG, "truncated before its version");
	if (version != VM_STATE_VERSION)
		return fail(err, errlen, -EINVAL, "version %u, this flint reads %u", version,
			    VM_STATE_VERSION);
	for (unsigned i = 0; i < KVM_NR_IRQCHIPS; i++)
		rget_struct(r, &s->chip[i], sizeof(s->chip[i]));
	rget_struct(r, &s->pit, sizeof(s->pit));
	s->clock = rget_u64(r);
	s->clock_flags = rget_u32(r);
	if (rbuf_err(r))
		return fail(err, errlen, -EBADMSG,
			    "truncated or corrupt interrupt controllers, PIT "
			    "or clock");
	return check(s, err, errlen);
}

int vm_state_put(int vm_fd, const struct vm_kvm_state *s, char *err, size_t errlen)
{
	/* Only the clock: KVM_CLOCK_REALTIME and the host TSC would ask KVM to
	 * add the time since the save. */
	struct kvm_clock_data clock = {.clock = s->clock};

	for (unsigned i = 0; i < KVM_NR_IRQCHIPS; i++) {
		struct kvm_irqchip chip = s->chip[i];
		if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return fail_ioctl(err, errlen, "KVM_SET_IRQCHIP", chip_name[i]);
	}
	struct kvm_pit_state2 pit = s->pit;
	if (ioctl(vm_fd, KVM_SET_PIT2, &pit) < 0)
		return fail_ioctl(err, errlen, "KVM_SET_PIT2", NULL);
	if (ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return fail_ioctl(err, errlen, "KVM_SET_CLOCK", NULL);
	return 0;
}

int vm_state_save(int vm_fd, struct wbuf *w, char *err, size_t errlen)
{
	struct vm_kvm_state s;
	int r = vm_state_get(vm_fd, &s, err, errlen);

	if (r < 0)
		return r;
	if ((r = vm_state_encode(&s, w)) < 0)
		return fail(err, errlen, r, "encoding: %s", strerror(-r));
	return 0;
}

int vm_state_restore(int vm_fd, struct rbuf *r, char *err, size_t errlen)
{
	struct vm_kvm_state s;
	int ret = vm_state_decode(r, &s, err, errlen);

	return ret < 0 ? ret : vm_state_put(vm_fd, &s, err, errlen);
}
