#include "legacy/ioapic.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The register window (82093AA datasheet, section 3.1). */
#define IOREGSEL 0x00
#define IOWIN	 0x10
/* Registers behind IOWIN. */
#define REG_ID	  0x00
#define REG_VER	  0x01
#define REG_ARB	  0x02
#define REG_REDIR 0x10 /* pin p: low half 0x10 + 2p, high half 0x11 + 2p */

/* A redirection entry's bits (section 3.2.4). */
#define RTE_VECTOR	 0xffULL
#define RTE_DELIV_SHIFT	 8
#define RTE_DELIV_MASK	 0x7ULL
#define RTE_DEST_LOGICAL (1ULL << 11)
#define RTE_LEVEL	 (1ULL << 15)
#define RTE_MASKED	 (1ULL << 16)
#define RTE_DEST_SHIFT	 56
/* What a guest may set: vector, delivery and destination mode, polarity,
 * trigger mode and mask; the destination. Delivery status (bit 12) and
 * remote IRR (bit 14) are the chip's. */
#define RTE_WRITABLE (0x1afffULL | (0xffULL << RTE_DEST_SHIFT))
#define ID_MASK	     0x0f000000u

/* The MSI a message-signalled pin sends (Intel SDM vol. 3, 11.11). */
#define MSI_ADDR_BASE	     0xfee00000u
#define MSI_ADDR_DEST_SHIFT  12
#define MSI_ADDR_LOGICAL     (1u << 2)
#define MSI_DATA_DELIV_SHIFT 8
#define MSI_DATA_ASSERT	     (1u << 14)
#define MSI_DATA_LEVEL	     (1u << 15)

/* Fixed, lowest priority, SMI, NMI and INIT go out as messages. ExtINT
 * (7) and the reserved modes (3, 6) have no MSI form: such a pin stays
 * silent. */
static bool routable(uint64_t e)
{
	unsigned mode = (e >> RTE_DELIV_SHIFT) & RTE_DELIV_MASK;
	return !(e & RTE_MASKED) && mode != 3 && mode != 6 && mode != 7;
}

static struct ioapic_msi message(unsigned pin, uint64_t e)
{
	uint32_t dest = (uint32_t)(e >> RTE_DEST_SHIFT) & 0xff;
	struct ioapic_msi m = {
	    .gsi = pin,
	    .address_lo = MSI_ADDR_BASE | dest << MSI_ADDR_DEST_SHIFT |
			  (e & RTE_DEST_LOGICAL ? MSI_ADDR_LOGICAL : 0),
	    .data = (uint32_t)(e & RTE_VECTOR) |
		    (uint32_t)((e >> RTE_DELIV_SHIFT) & RTE_DELIV_MASK) << MSI_DATA_DELIV_SHIFT |
		    (e & RTE_LEVEL ? MSI_DATA_LEVEL | MSI_DATA_ASSERT : 0),
	};
	return m;
}

/* A guest-made change's turn under the rate limit (take_turn). */
enum turn {
	TURN_NOW,    /* taken, the lock held throughout */
	TURN_WAITED, /* waited for without the lock: look again, then ask again */
	TURN_KICKED, /* the wait cut short by a signal: look again, then install */
};

/* Whether a guest-made change may be installed now. If not, the writing
 * vCPU's thread waits for its turn without the lock, so that other vCPUs
 * read and write the chip meanwhile (which may change what to install).
 * A wait cut short by a signal is a pause's kick, which wants this vCPU
 * out of its exit: the change then goes in at once. Under the lock. */
static enum turn take_turn(struct ioapic *io)
{
	uint64_t now = io->now();

	if (ratelimit_consume(&io->rl, now, 0, 1))
		return TURN_NOW;
	if (!io->throttle_told) {
		io->throttle_told = true;
		pr_warn("IOAPIC: the guest changes its interrupt routes more than %u times a "
			"second; each change now waits its turn",
			IOAPIC_ROUTE_RATE);
	}
	uint64_t wait = ratelimit_wait_ns(&io->rl, now, 0, 1);
	pthread_mutex_unlock(&io->lock);
	bool slept = io->sleep_ns(wait);
	pthread_mutex_lock(&io->lock);
	return slept ? TURN_WAITED : TURN_KICKED;
}

static bool sleep_mono(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};

	return clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0;
}

/* Recompute the messages; hand them over if they differ from the set
 * installed (a guest's change: rate-limited, see take_turn), or in any case
 * with `force` (a load, not limited). Under the lock. */
static int sync_routes(struct ioapic *io, bool force)
{
	struct ioapic_msi next[IOAPIC_MAX_PINS];
	bool ask = !force; /* for a turn */
	unsigned n;

	for (;;) {
		n = 0;
		for (unsigned p = 0; p < io->s.npins; p++)
			if (routable(io->s.redir[p]))
				next[n++] = message(p, io->s.redir[p]);
		if (!force && n == io->ninstalled &&
		    !memcmp(next, io->installed, n * sizeof(next[0])))
			return 0;
		if (!ask)
			break;
		enum turn turn = take_turn(io);
		if (turn == TURN_NOW)
			break;
		ask = turn == TURN_WAITED;
	}
	int r = io->routes ? io->routes(io->ctx, next, n) : 0;
	if (r < 0)
		return r;
	io->route_error_told = false; /* a later failure is news again */
	memcpy(io->installed, next, n * sizeof(next[0]));
	io->ninstalled = n;
	return 0;
}

int ioapic_init(struct ioapic *io, unsigned npins, ioapic_routes_fn routes, void *ctx)
{
	if (npins == 0 || npins > IOAPIC_MAX_PINS)
		return -EINVAL;
	memset(io, 0, sizeof(*io));
	pthread_mutex_init(&io->lock, NULL);
	io->routes = routes;
	io->ctx = ctx;
	io->s.npins = npins;
	for (unsigned p = 0; p < npins; p++)
		io->s.redir[p] = RTE_MASKED;
	_Static_assert(1000 * IOAPIC_ROUTE_BURST % IOAPIC_ROUTE_RATE == 0,
		       "the refill time is whole milliseconds");
	io->now = now_ns;
	io->sleep_ns = sleep_mono;
	const struct ratelimit_cfg cfg = {
	    .ops = {.size = IOAPIC_ROUTE_BURST,
		    .refill_time_ms = 1000ull * IOAPIC_ROUTE_BURST / IOAPIC_ROUTE_RATE}};
	if (ratelimit_init(&io->rl, &cfg, now_ns()) < 0)
		return -EINVAL;
	return 0;
}

static uint32_t reg_read(const struct ioapic *io, uint32_t reg)
{
	switch (reg) {
	case REG_ID:
	case REG_ARB:
		return io->s.id;
	case REG_VER:
		return IOAPIC_VERSION | (io->s.npins - 1) << 16;
	}
	if (reg >= REG_REDIR && reg < REG_REDIR + 2 * io->s.npins) {
		uint64_t e = io->s.redir[(reg - REG_REDIR) / 2];
		return (reg & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
	}
	return 0; /* no such register: the chip reads 0 */
}

static void reg_write(struct ioapic *io, uint32_t reg, uint32_t val)
{
	if (reg == REG_ID) {
		io->s.id = val & ID_MASK;
		return;
	}
	if (reg < REG_REDIR || reg >= REG_REDIR + 2 * io->s.npins)
		return; /* read-only or absent */
	unsigned pin = (reg - REG_REDIR) / 2;
	uint64_t e = io->s.redir[pin];
	if (reg & 1)
		e = (e & 0xffffffffULL) | (uint64_t)val << 32;
	else
		e = (e & ~0xffffffffULL) | val;
	io->s.redir[pin] = e & RTE_WRITABLE;
	int r = sync_routes(io, false);
	if (r < 0 && !io->route_error_told) {
		io->route_error_told = true; /* the guest may retry it forever */
		pr_err("IOAPIC pin %u: installing its interrupt route: %s", pin, strerror(-r));
	}
}

/* Only aligned 32-bit accesses to IOREGSEL and IOWIN mean anything (the
 * datasheet's rule); others read 0 and are dropped. */
static void ioapic_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct ioapic *io = opaque;
	uint32_t v = 0;

	memset(data, 0, len);
	if (len != 4)
		return;
	pthread_mutex_lock(&io->lock);
	if (off == IOREGSEL)
		v = io->s.ioregsel;
	else if (off == IOWIN)
		v = reg_read(io, io->s.ioregsel);
	pthread_mutex_unlock(&io->lock);
	memcpy(data, &v, 4);
}

static void ioapic_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct ioapic *io = opaque;
	uint32_t v;

	if (len != 4)
		return;
	memcpy(&v, data, 4);
	pthread_mutex_lock(&io->lock);
	if (off == IOREGSEL)
		io->s.ioregsel = v & 0xff;
	else if (off == IOWIN)
		reg_write(io, io->s.ioregsel, v);
	pthread_mutex_unlock(&io->lock);
}

const struct bus_ops ioapic_bus_ops = {.read = ioapic_read, .write = ioapic_write};

void ioapic_save(struct ioapic *io, struct ioapic_state *out)
{
	pthread_mutex_lock(&io->lock);
	*out = io->s;
	pthread_mutex_unlock(&io->lock);
}

int ioapic_state_check(const struct ioapic_state *s, char *err, size_t errlen)
{
	if (s->npins == 0 || s->npins > IOAPIC_MAX_PINS)
		return err_set(err, errlen, -EINVAL, "IOAPIC: %u pins (1 to %u)", s->npins,
			       IOAPIC_MAX_PINS);
	if (s->id & ~ID_MASK || s->ioregsel > 0xff)
		return err_set(err, errlen, -EINVAL, "IOAPIC: ID register %#x, IOREGSEL %#x", s->id,
			       s->ioregsel);
	for (unsigned p = 0; p < IOAPIC_MAX_PINS; p++) {
		uint64_t e = s->redir[p];
		if (p >= s->npins ? e != 0 : (e & ~RTE_WRITABLE) != 0)
			return err_set(err, errlen, -EINVAL,
				       "IOAPIC: pin %u's entry %#llx has bits no guest sets", p,
				       (unsigned long long)e);
	}
	return 0;
}

int ioapic_load(struct ioapic *io, const struct ioapic_state *s, char *err, size_t errlen)
{
	int r = ioapic_state_check(s, err, errlen);
	if (r < 0)
		return r;
	pthread_mutex_lock(&io->lock);
	if (s->npins != io->s.npins) {
		pthread_mutex_unlock(&io->lock);
		return err_set(err, errlen, -EINVAL,
			       "IOAPIC: the snapshot's has %u pins, this VM's devices need %u",
			       s->npins, io->s.npins);
	}
	io->s = *s;
	/* Whatever KVM had before, it gets this state's set. */
	r = sync_routes(io, true);
	pthread_mutex_unlock(&io->lock);
	if (r < 0)
		return err_set(err, errlen, r, "IOAPIC: installing its interrupt routes: %s",
			       strerror(-r));
	return 0;
}
