/* flint's I/O APIC driven through ioapic_bus_ops, as the vCPUs' MMIO
 * exits would: its registers, and the MSI routes it hands over. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "legacy/ioapic.h"

struct fake {
	unsigned calls, n;
	struct ioapic_msi msi[IOAPIC_MAX_PINS];
	int fail; /* the next call's answer, then 0 */
};

static int fake_routes(void *ctx, const struct ioapic_msi *m, unsigned n)
{
	struct fake *f = ctx;
	int r = f->fail;
	f->calls++;
	f->fail = 0;
	if (r < 0)
		return r;
	f->n = n;
	memcpy(f->msi, m, n * sizeof(*m));
	return 0;
}

static void w32(struct ioapic *io, uint64_t off, uint32_t v)
{
	ioapic_bus_ops.write(io, off, &v, 4);
}

static uint32_t r32(struct ioapic *io, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	ioapic_bus_ops.read(io, off, &v, 4);
	return v;
}

static uint32_t reg(struct ioapic *io, uint32_t r)
{
	w32(io, 0x00, r);
	return r32(io, 0x10);
}

static void set_reg(struct ioapic *io, uint32_t r, uint32_t v)
{
	w32(io, 0x00, r);
	w32(io, 0x10, v);
}

Test(ioapic, version_register_counts_the_pins_and_every_pin_starts_masked)
{
	struct ioapic io;
	struct fake f = {0};

	cr_assert_eq(ioapic_init(&io, 7, fake_routes, &f), 0);
	cr_expect_eq(reg(&io, 0x01), 0x11 | 6 << 16);
	cr_expect_eq(reg(&io, 0x00), 0);
	for (unsigned p = 0; p < 7; p++) {
		cr_expect_eq(reg(&io, 0x10 + 2 * p), 1u << 16, "pin %u", p);
		cr_expect_eq(reg(&io, 0x11 + 2 * p), 0, "pin %u", p);
	}
	/* Past the last pin, and registers that do not exist, read 0. */
	cr_expect_eq(reg(&io, 0x10 + 2 * 7), 0);
	cr_expect_eq(reg(&io, 0x05), 0);
	cr_expect_eq(f.calls, 0);
	cr_expect_eq(ioapic_init(&io, 0, fake_routes, &f), -EINVAL);
	cr_expect_eq(ioapic_init(&io, 25, fake_routes, &f), -EINVAL);
}

Test(ioapic, an_unmasked_pin_becomes_an_msi_route_and_masking_takes_it_away)
{
	struct ioapic io;
	struct fake f = {0};

	cr_assert_eq(ioapic_init(&io, 8, fake_routes, &f), 0);
	/* As Linux writes an entry: the high half (destination), then the
	 * low half, still masked; then the unmask. */
	set_reg(&io, 0x11 + 2 * 5, 0x03000000); /* APIC 3 */
	set_reg(&io, 0x10 + 2 * 5, 0x10000 | 0x31);
	cr_expect_eq(f.calls, 0, "masked: nothing to route");
	set_reg(&io, 0x10 + 2 * 5, 0x31);
	cr_assert_eq(f.calls, 1);
	cr_assert_eq(f.n, 1);
	cr_expect_eq(f.msi[0].gsi, 5);
	cr_expect_eq(f.msi[0].address_lo, 0xfee03000);
	cr_expect_eq(f.msi[0].data, 0x31);
	cr_expect_eq(reg(&io, 0x10 + 2 * 5), 0x31);
	cr_expect_eq(reg(&io, 0x11 + 2 * 5), 0x03000000);

	/* The same value again changes no message: no call. */
	set_reg(&io, 0x10 + 2 * 5, 0x31);
	cr_expect_eq(f.calls, 1);

	/* Logical destination, lowest priority, level-triggered. */
	set_reg(&io, 0x10 + 2 * 6, 0x8000 | 0x800 | 0x100 | 0x40);
	cr_assert_eq(f.calls, 2);
	cr_assert_eq(f.n, 2);
	cr_expect_eq(f.msi[1].gsi, 6);
	cr_expect_eq(f.msi[1].address_lo, 0xfee00000 | 1 << 2);
	cr_expect_eq(f.msi[1].data, 0x40 | 1 << 8 | 1 << 14 | 1 << 15);

	set_reg(&io, 0x10 + 2 * 5, 0x10031);
	cr_assert_eq(f.calls, 3);
	cr_assert_eq(f.n, 1);
	cr_expect_eq(f.msi[0].gsi, 6);
}

Test(ioapic, the_chips_own_bits_and_modes_without_a_message_are_not_the_guests)
{
	struct ioapic io;
	struct fake f = {0};

	cr_assert_eq(ioapic_init(&io, 4, fake_routes, &f), 0);
	/* Delivery status (12) and remote IRR (14) are read-only; the
	 * destination's low bits (32-55) are not kept. */
	set_reg(&io, 0x10 + 2 * 1, 0x10000 | 1 << 12 | 1 << 14 | 0x22);
	set_reg(&io, 0x11 + 2 * 1, 0xff00ffff);
	cr_expect_eq(reg(&io, 0x10 + 2 * 1), 0x10000 | 0x22);
	cr_expect_eq(reg(&io, 0x11 + 2 * 1), 0xff000000);
	/* ExtINT (7) unmasked has no MSI form: no route. */
	set_reg(&io, 0x10 + 2 * 2, 0x700 | 0x30);
	cr_expect_eq(f.calls, 0);
	/* The ID keeps bits 24-27 only; version and arbitration are read-only. */
	set_reg(&io, 0x00, 0xffffffff);
	cr_expect_eq(reg(&io, 0x00), 0x0f000000);
	set_reg(&io, 0x01, 0);
	cr_expect_eq(reg(&io, 0x01), 0x11 | 3 << 16);
	/* Past the pins: dropped. */
	set_reg(&io, 0x10 + 2 * 4, 0x30);
	cr_expect_eq(reg(&io, 0x10 + 2 * 4), 0);
	cr_expect_eq(f.calls, 0);
}

Test(ioapic, accesses_other_than_aligned_dwords_are_dropped)
{
	struct ioapic io;
	struct fake f = {0};
	uint8_t b = 0x12;
	uint64_t q = 0x10;
	uint8_t rb = 0xaa;

	cr_assert_eq(ioapic_init(&io, 4, fake_routes, &f), 0);
	w32(&io, 0x00, 0x01);
	ioapic_bus_ops.write(&io, 0x00, &b, 1);
	ioapic_bus_ops.write(&io, 0x00, &q, 8);
	cr_expect_eq(r32(&io, 0x00), 0x01, "IOREGSEL kept its dword write");
	ioapic_bus_ops.read(&io, 0x10, &rb, 1);
	cr_expect_eq(rb, 0);
	w32(&io, 0x04, 0x10); /* neither register */
	cr_expect_eq(r32(&io, 0x04), 0);
	cr_expect_eq(r32(&io, 0x40), 0, "no EOI register in version 0x11");
	/* IOREGSEL keeps 8 bits. */
	w32(&io, 0x00, 0x101);
	cr_expect_eq(r32(&io, 0x00), 0x01);
}

Test(ioapic, a_failed_route_is_tried_again_at_the_next_change)
{
	struct ioapic io;
	struct fake f = {.fail = -ENOMEM};

	cr_assert_eq(ioapic_init(&io, 4, fake_routes, &f), 0);
	set_reg(&io, 0x10 + 2 * 3, 0x33);
	cr_expect_eq(f.calls, 1);
	cr_expect_eq(f.n, 0, "the failed set was not kept");
	/* The entry is as written, and the next write installs it. */
	cr_expect_eq(reg(&io, 0x10 + 2 * 3), 0x33);
	set_reg(&io, 0x11 + 2 * 3, 0);
	cr_expect_eq(f.calls, 2);
	cr_expect_eq(f.n, 1);
}

Test(ioapic, save_and_load_give_back_the_registers_and_their_routes)
{
	struct ioapic a, b;
	struct fake fa = {0}, fb = {0};
	struct ioapic_state s;
	char err[160];

	cr_assert_eq(ioapic_init(&a, 6, fake_routes, &fa), 0);
	set_reg(&a, 0x11 + 2 * 4, 0x01000000);
	set_reg(&a, 0x10 + 2 * 4, 0x24);
	set_reg(&a, 0x00, 0x02000000);
	w32(&a, 0x00, 0x19);
	ioapic_save(&a, &s);
	cr_expect_eq(s.npins, 6);
	cr_expect_eq(s.ioregsel, 0x19);

	cr_assert_eq(ioapic_init(&b, 6, fake_routes, &fb), 0);
	cr_assert_eq(ioapic_load(&b, &s, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(fb.calls, 1);
	cr_expect_eq(fb.n, 1);
	cr_expect_eq(fb.msi[0].gsi, 4);
	cr_expect_eq(fb.msi[0].address_lo, 0xfee01000);
	cr_expect_eq(r32(&b, 0x10), 0x01000000, "IOREGSEL 0x19: pin 4's high half");
	cr_expect_eq(reg(&b, 0x00), 0x02000000);

	/* A state with nothing unmasked still replaces KVM's routes. */
	struct ioapic_state none = {.npins = 6};
	for (unsigned p = 0; p < 6; p++)
		none.redir[p] = 1ULL << 16;
	cr_assert_eq(ioapic_load(&b, &none, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(fb.calls, 2);
	cr_expect_eq(fb.n, 0);

	/* Another pin count: refused, nothing changed. */
	s.npins = 7;
	cr_expect_eq(ioapic_load(&b, &s, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "7 pins"), "%s", err);
	cr_expect_eq(fb.calls, 2);
}

Test(ioapic, smi_nmi_and_init_go_out_as_messages_reserved_modes_do_not)
{
	struct ioapic io;
	struct fake f = {0};
	/* mode: 2 SMI, 4 NMI, 5 INIT route; 3 and 6 are reserved (KVM would
	 * log each such message as unsupported), 7 ExtINT has no MSI form. */
	static const struct {
		unsigned mode;
		bool routed;
	} modes[] = {{2, true}, {3, false}, {4, true}, {5, true}, {6, false}, {7, false}};

	cr_assert_eq(ioapic_init(&io, 8, fake_routes, &f), 0);
	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		f.n = 99;
		set_reg(&io, 0x10 + 2 * 2, modes[i].mode << 8 | 0x40);
		if (modes[i].routed) {
			cr_assert_eq(f.n, 1, "mode %u", modes[i].mode);
			cr_expect_eq(f.msi[0].data, modes[i].mode << 8 | 0x40, "mode %u",
				     modes[i].mode);
		} else {
			cr_expect(f.n == 0 || f.n == 99, "mode %u routed", modes[i].mode);
		}
		set_reg(&io, 0x10 + 2 * 2, 1u << 16); /* masked again */
	}
}

/* The chip's clock for the route limit: a sleep only moves it on. */
static uint64_t fake_ns;
static unsigned sleeps;
static uint64_t slept_ns;

static uint64_t fake_now(void)
{
	return fake_ns;
}

/* The chip a sleep is for, and what happens while it sleeps. */
static struct ioapic *sleeper;
static bool lock_was_free, kick;
static void (*meanwhile)(struct ioapic *io);

static bool fake_sleep(uint64_t ns)
{
	sleeps++;
	slept_ns += ns;
	if (sleeper) {
		lock_was_free = pthread_mutex_trylock(&sleeper->lock) == 0;
		if (lock_was_free)
			pthread_mutex_unlock(&sleeper->lock);
		if (meanwhile)
			meanwhile(sleeper);
	}
	if (kick)
		return false; /* cut short: the clock has not moved on */
	fake_ns += ns;
	return true;
}

/* A chip of 6 pins on the fake clock, pin 2's mask toggled through the
 * whole burst of route changes. */
static void init_and_spend_burst(struct ioapic *io, struct fake *f)
{
	cr_assert_eq(ioapic_init(io, 6, fake_routes, f), 0);
	fake_ns = now_ns(); /* the limiter was set up on the real clock */
	sleeps = 0;
	slept_ns = 0;
	io->now = fake_now;
	io->sleep_ns = fake_sleep;
	for (unsigned i = 0; i < IOAPIC_ROUTE_BURST; i++)
		set_reg(io, 0x10 + 2 * 2, (i & 1) ? 0x10031 : 0x31);
}

/* A guest toggling a mask bit: the first IOAPIC_ROUTE_BURST changes go in
 * at once, each one after that waits 1/IOAPIC_ROUTE_RATE s for its turn;
 * every change is still installed, writes that change nothing cost
 * nothing, and a load is not held up. */
Test(ioapic, a_guest_changing_its_routes_in_a_loop_waits_its_turn)
{
	struct ioapic io;
	struct fake f = {0};
	const uint64_t turn = 1000000000ull / IOAPIC_ROUTE_RATE;
	struct ioapic_state s;
	char err[160];

	init_and_spend_burst(&io, &f);
	cr_expect_eq(f.calls, IOAPIC_ROUTE_BURST);
	cr_expect_eq(sleeps, 0, "the burst waits for nothing");
	/* The same entry again: no change, no turn taken. */
	set_reg(&io, 0x10 + 2 * 2, 0x10031);
	cr_expect_eq(f.calls, IOAPIC_ROUTE_BURST);
	cr_expect_eq(sleeps, 0);
	for (unsigned i = 0; i < 10; i++)
		set_reg(&io, 0x10 + 2 * 2, (i & 1) ? 0x10031 : 0x31);
	cr_expect_eq(f.calls, IOAPIC_ROUTE_BURST + 10, "each change is installed");
	cr_expect_eq(sleeps, 10);
	cr_expect_eq(slept_ns, 10 * turn, "%llu ns slept", (unsigned long long)slept_ns);
	cr_expect(io.throttle_told, "said once in the log");
	/* A quiet guest gets its burst back: 256 changes, no wait. */
	fake_ns += 1000000000ull * IOAPIC_ROUTE_BURST / IOAPIC_ROUTE_RATE;
	for (unsigned i = 0; i < IOAPIC_ROUTE_BURST; i++)
		set_reg(&io, 0x10 + 2 * 2, (i & 1) ? 0x10031 : 0x31);
	cr_expect_eq(f.calls, 2 * IOAPIC_ROUTE_BURST + 10);
	cr_expect_eq(sleeps, 10, "the burst came back");
	/* A load (restore, reset) installs at once, limit or not. */
	ioapic_save(&io, &s);
	set_reg(&io, 0x10 + 2 * 2, 0x31);
	cr_expect_eq(sleeps, 11, "the bucket is empty again");
	unsigned before = sleeps, calls = f.calls;
	cr_assert_eq(ioapic_load(&io, &s, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(f.calls, calls + 1);
	cr_expect_eq(sleeps, before);
}

/* Another vCPU's write, while the first waits: pin 2 masked again. */
static void other_vcpu_masks_pin2(struct ioapic *io)
{
	meanwhile = NULL; /* its own wait is a plain one */
	set_reg(io, 0x10 + 2 * 2, 0x10031);
}

/* A change waiting its turn holds no lock, so the other vCPUs reach the
 * chip; it installs what the chip holds once its turn comes (nothing, if
 * another vCPU undid it meanwhile); a wait cut short by a signal (a
 * pause's kick) installs at once. */
Test(ioapic, a_change_waiting_its_turn_holds_no_lock_and_a_kick_ends_the_wait)
{
	struct ioapic io;
	struct fake f = {0};

	init_and_spend_burst(&io, &f);
	cr_assert_eq(sleeps, 0);
	sleeper = &io;

	/* Waits, unlocked; installs the change after its turn. */
	set_reg(&io, 0x10 + 2 * 2, 0x31);
	cr_expect_eq(sleeps, 1);
	cr_expect(lock_was_free, "the lock was held through the wait");
	cr_expect_eq(f.calls, IOAPIC_ROUTE_BURST + 1);
	cr_expect_eq(f.n, 1);

	/* Kicked: installed at once, after one wait. */
	kick = true;
	unsigned before = sleeps;
	set_reg(&io, 0x10 + 2 * 2, 0x33);
	kick = false;
	cr_expect_eq(sleeps, before + 1, "one wait, cut short");
	cr_expect_eq(f.calls, IOAPIC_ROUTE_BURST + 2);
	cr_expect_eq(f.n, 1);
	cr_expect_eq(f.msi[0].data & 0xff, 0x33);

	/* Undone by another vCPU while it waited (which waits its own turn):
	 * the first installs nothing, the chip as the last writer left it. */
	unsigned calls = f.calls;
	meanwhile = other_vcpu_masks_pin2;
	set_reg(&io, 0x10 + 2 * 2, 0x32);
	cr_expect_eq(reg(&io, 0x10 + 2 * 2), 0x10031);
	cr_expect_eq(f.calls, calls + 1, "the mask, installed by the other vCPU");
	cr_expect_eq(f.n, 0);
	sleeper = NULL;
}
