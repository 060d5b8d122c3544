/* A 16550A UART as Linux's 8250 driver sees it. Transmission is instant:
 * every THR write goes straight to ops->out, so THR and the transmitter are
 * always empty. The receive FIFO holds 64 bytes in both FIFO and 16450
 * modes (Firecracker does the same); there are no timing or baud effects.
 *
 * The interrupt output is computed from the register state after every
 * access, and ops->irq is called on each low-to-high transition, which is
 * what an edge-triggered ISA line behind an irqfd delivers. */
#include "legacy/serial.h"

#include <errno.h>
#include <linux/serial_reg.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_FIFO_SIZE 64
#define NPORTS	     8

/* IIR[7:6] read 11 when the FIFOs are enabled (no UAPI name for it). */
#define IIR_FIFO_BITS 0xc0
#define IER_MASK      (UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI)
#define MCR_MASK      (UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT1 | UART_MCR_OUT2 | UART_MCR_LOOP)

/* Reset state as Firecracker and QEMU have it: 9600 baud, OUT2 set, and
 * a modem that is present and ready. */
#define RESET_DIVISOR 12
#define RESET_MCR     UART_MCR_OUT2
#define RESET_MSR     (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

struct serial {
	pthread_mutex_t lock;
	const struct serial_ops *ops;
	void *ctx;

	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint8_t msr;	    /* status lines and delta bits */
	uint8_t lsr_errors; /* UART_LSR_OE, cleared by reading LSR */
	bool fifo_enabled;
	bool thri_pending; /* THR empty interrupt armed */
	bool irq_line;	   /* the interrupt output as last computed */

	uint8_t rx[RX_FIFO_SIZE];
	unsigned rx_head, rx_count;
};

int serial_create(struct serial **out, const struct serial_ops *ops, void *ctx)
{
	struct serial *s;

	*out = NULL;
	if (!ops || !ops->out || !ops->irq)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int err = pthread_mutex_init(&s->lock, NULL);
	if (err) {
		free(s);
		return -err;
	}
	s->ops = ops;
	s->ctx = ctx;
	s->dll = RESET_DIVISOR;
	s->mcr = RESET_MCR;
	s->msr = RESET_MSR;
	*out = s;
	return 0;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* The highest-priority pending, enabled interrupt, as IIR[3:0]. */
static uint8_t pending_id(const struct serial *s)
{
	if ((s->ier & UART_IER_RLSI) && s->lsr_errors)
		return UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->rx_count)
		return UART_IIR_RDI;
	if ((s->ier & UART_IER_THRI) && s->thri_pending)
		return UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && (s->msr & UART_MSR_ANY_DELTA))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

static void update_irq(struct serial *s)
{
	bool line = pending_id(s) != UART_IIR_NO_INT;

	if (line && !s->irq_line)
		s->ops->irq(s->ctx);
	s->irq_line = line;
}

static bool rx_push(struct serial *s, uint8_t b)
{
	if (s->rx_count == RX_FIFO_SIZE)
		return false;
	s->rx[(s->rx_head + s->rx_count) % RX_FIFO_SIZE] = b;
	s->rx_count++;
	return true;
}

static uint8_t rx_pop(struct serial *s)
{
	if (!s->rx_count)
		return 0;
	uint8_t b = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % RX_FIFO_SIZE;
	s->rx_count--;
	return b;
}

/* MSR's status lines: in loopback they follow MCR (DTR->DSR, RTS->CTS,
 * OUT1->RI, OUT2->DCD), otherwise the fixed "modem ready" state. */
static uint8_t modem_lines(uint8_t mcr)
{
	if (!(mcr & UART_MCR_LOOP))
		return RESET_MSR;
	uint8_t m = 0;
	if (mcr & UART_MCR_DTR)
		m |= UART_MSR_DSR;
	if (mcr & UART_MCR_RTS)
		m |= UART_MSR_CTS;
	if (mcr & UART_MCR_OUT1)
		m |= UART_MSR_RI;
	if (mcr & UART_MCR_OUT2)
		m |= UART_MSR_DCD;
	return m;
}

static void write_mcr(struct serial *s, uint8_t v)
{
	uint8_t old = modem_lines(s->mcr), now = modem_lines(v & MCR_MASK);
	uint8_t delta = s->msr & UART_MSR_ANY_DELTA;

	if ((old ^ now) & UART_MSR_CTS)
		delta |= UART_MSR_DCTS;
	if ((old ^ now) & UART_MSR_DSR)
		delta |= UART_MSR_DDSR;
	if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
		delta |= UART_MSR_TERI;
	if ((old ^ now) & UART_MSR_DCD)
		delta |= UART_MSR_DDCD;
	s->mcr = v & MCR_MASK;
	s->msr = now | delta;
}

static void write_thr(struct serial *s, uint8_t b)
{
	/* Writing THR clears the THRE interrupt; the byte leaves at once and
	 * THR is empty again, which raises it anew: a fresh edge. */
	s->thri_pending = false;
	update_irq(s);
	if (s->mcr & UART_MCR_LOOP) {
		if (!rx_push(s, b))
			s->lsr_errors |= UART_LSR_OE;
	} else {
		s->ops->out(s->ctx, &b, 1);
	}
	s->thri_pending = true;
}

static void reg_write(struct serial *s, unsigned off, uint8_t v)
{
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (off) {
	case UART_TX:
		if (dlab)
			s->dll = v;
		else
			write_thr(s, v);
		break;
	case UART_IER:
		if (dlab) {
			s->dlm = v;
			break;
		}
		/* Enabling THRI with THR empty interrupts at once; Linux's
		 * start_tx and its THRE probe at startup rely on it. */
		if ((v & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
			s->thri_pending = true;
		s->ier = v & IER_MASK;
		break;
	case UART_FCR:
		s->fifo_enabled = v & UART_FCR_ENABLE_FIFO;
		if (v & UART_FCR_CLEAR_RCVR)
			s->rx_count = 0;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		write_mcr(s, v);
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	update_irq(s);
}

static uint8_t reg_read(struct serial *s, unsigned off)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t v = 0;

	switch (off) {
	case UART_RX:
		v = dlab ? s->dll : rx_pop(s);
		break;
	case UART_IER:
		v = dlab ? s->dlm : s->ier;
		break;
	case UART_IIR:
		v = pending_id(s);
		/* Reading IIR acknowledges a THRE interrupt it reports. */
		if (v == UART_IIR_THRI)
			s->thri_pending = false;
		if (s->fifo_enabled)
			v |= IIR_FIFO_BITS;
		break;
	case UART_LCR:
		v = s->lcr;
		break;
	case UART_MCR:
		v = s->mcr;
		break;
	case UART_LSR:
		v = UART_LSR_THRE | UART_LSR_TEMT | s->lsr_errors;
		if (s->rx_count)
			v |= UART_LSR_DR;
		s->lsr_errors = 0;
		break;
	case UART_MSR:
		v = s->msr;
		s->msr &= ~UART_MSR_ANY_DELTA;
		break;
	case UART_SCR:
		v = s->scr;
		break;
	}
	update_irq(s);
	return v;
}

static void serial_bus_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct serial *s = opaque;

	/* Only byte accesses reach registers; anything else floats high. */
	if (len != 1 || off >= NPORTS) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	*(uint8_t *)data = reg_read(s, (unsigned)off);
	pthread_mutex_unlock(&s->lock);
}

static void serial_bus_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct serial *s = opaque;

	if (len != 1 || off >= NPORTS)
		return;
	pthread_mutex_lock(&s->lock);
	reg_write(s, (unsigned)off, *(const uint8_t *)data);
	pthread_mutex_unlock(&s->lock);
}

const struct bus_ops serial_bus_ops = {
    .read = serial_bus_read,
    .write = serial_bus_write,
};

size_t serial_input(struct serial *s, const uint8_t *buf, size_t n)
{
	size_t i = 0;

	pthread_mutex_lock(&s->lock);
	/* In loopback the receiver is cut off from the line; the bytes wait
	 * for the guest to leave it (Linux uses it only while probing). */
	if (!(s->mcr & UART_MCR_LOOP)) {
		while (i < n && rx_push(s, buf[i]))
			i++;
		update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	return i;
}

/* Snapshot state, version 1: the registers, then the FIFO's length and
 * bytes oldest first. irq_line is not saved: it follows from the rest. */
#define SERIAL_STATE_V1 1

int serial_save(const struct serial *cs, struct wbuf *w)
{
	/* The lock is not part of the state: taking it changes nothing saved. */
	struct serial *s = (struct serial *)cs;

	pthread_mutex_lock(&s->lock);
	wput_u32(w, SERIAL_STATE_V1);
	wput_u8(w, s->ier);
	wput_u8(w, s->lcr);
	wput_u8(w, s->mcr);
	wput_u8(w, s->scr);
	wput_u8(w, s->dll);
	wput_u8(w, s->dlm);
	wput_u8(w, s->msr);
	wput_u8(w, s->lsr_errors);
	wput_u8(w, s->fifo_enabled);
	wput_u8(w, s->thri_pending);
	wput_u8(w, (uint8_t)s->rx_count);
	for (unsigned i = 0; i < s->rx_count; i++)
		wput_u8(w, s->rx[(s->rx_head + i) % RX_FIFO_SIZE]);
	pthread_mutex_unlock(&s->lock);
	return wbuf_err(w);
}

/* A refusal: -errno, err saying which field (fmt is a literal). */
#define refuse(e, err, errlen, ...) err_set(err, errlen, e, "serial: " __VA_ARGS__)

int serial_restore(struct serial *s, struct rbuf *r, char *err, size_t errlen)
{
	struct serial n;
	uint32_t version;
	uint8_t count;
	bool bad = false;

	version = rget_u32(r);
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated before its version");
	if (version != SERIAL_STATE_V1)
		return refuse(-EBADMSG, err, errlen, "state version %u, this flint reads %u",
			      version, SERIAL_STATE_V1);
	n.ier = rget_u8(r);
	n.lcr = rget_u8(r);
	n.mcr = rget_u8(r);
	n.scr = rget_u8(r);
	n.dll = rget_u8(r);
	n.dlm = rget_u8(r);
	n.msr = rget_u8(r);
	n.lsr_errors = rget_u8(r);
	n.fifo_enabled = rget_bool(r, &bad);
	n.thri_pending = rget_bool(r, &bad);
	count = rget_u8(r);
	if (count > RX_FIFO_SIZE)
		return refuse(-EINVAL, err, errlen, "receive FIFO of %u bytes, over %u", count,
			      RX_FIFO_SIZE);
	rget_bytes(r, n.rx, count);
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated");
	if (bad)
		return refuse(-EBADMSG, err, errlen, "a flag neither 0 nor 1");
	if (n.ier & ~IER_MASK)
		return refuse(-EINVAL, err, errlen, "IER %#x has bits this UART lacks", n.ier);
	if (n.mcr & ~MCR_MASK)
		return refuse(-EINVAL, err, errlen, "MCR %#x has bits this UART lacks", n.mcr);
	if ((n.msr & ~UART_MSR_ANY_DELTA) != modem_lines(n.mcr))
		return refuse(-EINVAL, err, errlen, "MSR %#x disagrees with MCR %#x", n.msr, n.mcr);
	if (n.lsr_errors & ~UART_LSR_OE)
		return refuse(-EINVAL, err, errlen, "LSR errors %#x beyond an overrun",
			      n.lsr_errors);

	pthread_mutex_lock(&s->lock);
	s->ier = n.ier;
	s->lcr = n.lcr;
	s->mcr = n.mcr;
	s->scr = n.scr;
	s->dll = n.dll;
	s->dlm = n.dlm;
	s->msr = n.msr;
	s->lsr_errors = n.lsr_errors;
	s->fifo_enabled = n.fifo_enabled;
	s->thri_pending = n.thri_pending;
	memcpy(s->rx, n.rx, count);
	s->rx_head = 0;
	s->rx_count = count;
	/* From idle: a pending interrupt gives an edge now. */
	s->irq_line = false;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
