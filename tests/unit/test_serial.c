/* The 16550A model driven through serial_bus_ops, as the port bus would. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/serial_reg.h>
#include <pthread.h>
#include <string.h>

#include "core/wire.h"
#include "legacy/serial.h"

struct fake {
	uint8_t out[256];
	size_t nout;
	unsigned edges;
};

static void fake_out(void *ctx, const uint8_t *buf, size_t n)
{
	struct fake *f = ctx;
	cr_assert_leq(f->nout + n, sizeof(f->out));
	memcpy(f->out + f->nout, buf, n);
	f->nout += n;
}

static void fake_irq(void *ctx)
{
	struct fake *f = ctx;
	f->edges++;
}

static const struct serial_ops fake_ops = {.out = fake_out, .irq = fake_irq};

static struct fake fk;
static struct serial *s;

static void setup(void)
{
	memset(&fk, 0, sizeof(fk));
	cr_assert_eq(serial_create(&s, &fake_ops, &fk), 0);
}

static void teardown(void)
{
	serial_destroy(s);
	s = NULL;
}

static uint8_t rd(unsigned off)
{
	uint8_t v = 0x5a;
	serial_bus_ops.read(s, off, &v, 1);
	return v;
}

static void wr(unsigned off, uint8_t v)
{
	serial_bus_ops.write(s, off, &v, 1);
}

static void input(const char *str)
{
	cr_assert_eq(serial_input(s, (const uint8_t *)str, strlen(str)), strlen(str));
}

TestSuite(serial, .init = setup, .fini = teardown);

Test(serial, reset_values)
{
	cr_expect_eq(rd(UART_IER), 0);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT);
	cr_expect_eq(rd(UART_LCR), 0);
	cr_expect_eq(rd(UART_MCR), UART_MCR_OUT2);
	cr_expect_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	cr_expect_eq(rd(UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	cr_expect_eq(rd(UART_SCR), 0);
	cr_expect_eq(rd(UART_RX), 0, "empty receiver reads 0");
	wr(UART_LCR, UART_LCR_DLAB);
	cr_expect_eq(rd(UART_DLL), 12, "9600 baud");
	cr_expect_eq(rd(UART_DLM), 0);
	cr_expect_eq(fk.edges, 0);
	cr_expect_eq(fk.nout, 0);
}

Test(serial, create_needs_callbacks)
{
	struct serial *t = (void *)1;
	struct serial_ops no_irq = {.out = fake_out};
	cr_expect_eq(serial_create(&t, &no_irq, NULL), -EINVAL);
	cr_expect_null(t);
	serial_destroy(NULL);
}

Test(serial, thr_reaches_out)
{
	wr(UART_TX, 'h');
	wr(UART_TX, 'i');
	cr_expect_eq(fk.nout, 2);
	cr_expect_arr_eq(fk.out, "hi", 2);
	cr_expect_eq(rd(UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), UART_LSR_THRE | UART_LSR_TEMT,
		     "transmitter stays empty");
	cr_expect_eq(fk.edges, 0, "THRI masked");
}

Test(serial, lsr_data_ready)
{
	cr_expect_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	input("ab");
	cr_expect_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT | UART_LSR_DR);
	cr_expect_eq(rd(UART_RX), 'a');
	cr_expect(rd(UART_LSR) & UART_LSR_DR);
	cr_expect_eq(rd(UART_RX), 'b');
	cr_expect_eq(rd(UART_LSR) & UART_LSR_DR, 0);
}

Test(serial, divisor_latch_is_not_output)
{
	wr(UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8);
	wr(UART_DLL, 1);
	wr(UART_DLM, 0x02);
	cr_expect_eq(rd(UART_DLL), 1);
	cr_expect_eq(rd(UART_DLM), 0x02);
	cr_expect_eq(fk.nout, 0);
	wr(UART_LCR, UART_LCR_WLEN8);
	cr_expect_eq(rd(UART_IER), 0, "DLM write did not touch IER");
	cr_expect_eq(rd(UART_LCR), UART_LCR_WLEN8);
	wr(UART_TX, 'x');
	cr_expect_eq(fk.nout, 1);
}

Test(serial, rx_fifo_fill_drain_overflow)
{
	uint8_t buf[100];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	cr_expect_eq(serial_input(s, buf, sizeof(buf)), 64, "partial count");
	cr_expect_eq(serial_input(s, buf, 1), 0, "full");
	for (unsigned i = 0; i < 10; i++)
		cr_expect_eq(rd(UART_RX), i);
	cr_expect_eq(serial_input(s, buf + 64, 36), 10, "room for what drained");
	for (unsigned i = 10; i < 74; i++)
		cr_expect_eq(rd(UART_RX), i, "order kept across the wrap");
	cr_expect_eq(rd(UART_LSR) & (UART_LSR_DR | UART_LSR_OE), 0, "no overrun on input");
	cr_expect_eq(serial_input(s, buf, 0), 0);
}

Test(serial, fcr_clears_receiver_and_sets_fifo_bits)
{
	input("xyz");
	wr(UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR | UART_FCR_CLEAR_XMIT);
	cr_expect_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	cr_expect_eq(rd(UART_IIR), 0xc0 | UART_IIR_NO_INT);
	wr(UART_FCR, 0);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT);
}

Test(serial, thri_on_enable_and_cleared_by_iir)
{
	wr(UART_IER, UART_IER_THRI);
	cr_expect_eq(fk.edges, 1, "enabling THRI with THR empty");
	cr_expect_eq(rd(UART_IIR), UART_IIR_THRI);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT, "IIR read acknowledged it");
	/* Rewriting the same IER does not re-arm it. */
	wr(UART_IER, UART_IER_THRI);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT);
	/* Linux's THRE probe: off, then on again, must interrupt again. */
	wr(UART_IER, 0);
	wr(UART_IER, UART_IER_THRI);
	cr_expect_eq(rd(UART_IIR), UART_IIR_THRI);
	cr_expect_eq(fk.edges, 2);
}

Test(serial, thr_write_gives_an_edge)
{
	wr(UART_IER, UART_IER_THRI);
	cr_expect_eq(rd(UART_IIR), UART_IIR_THRI);
	unsigned e = fk.edges;
	wr(UART_TX, 'a');
	cr_expect_eq(fk.edges, e + 1);
	/* Not acknowledged: the next write still drops and re-raises it. */
	wr(UART_TX, 'b');
	cr_expect_eq(fk.edges, e + 2);
	cr_expect_eq(rd(UART_IIR), UART_IIR_THRI);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT);
}

Test(serial, input_edge_with_rdi)
{
	wr(UART_IER, UART_IER_RDI);
	cr_expect_eq(fk.edges, 0);
	input("q");
	cr_expect_eq(fk.edges, 1);
	input("r");
	cr_expect_eq(fk.edges, 1, "already pending: no new edge");
	cr_expect_eq(rd(UART_IIR), UART_IIR_RDI, "IIR read does not clear RDI");
	rd(UART_RX);
	cr_expect_eq(rd(UART_IIR), UART_IIR_RDI);
	rd(UART_RX);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT, "drained");
	input("s");
	cr_expect_eq(fk.edges, 2);
}

Test(serial, no_edge_when_masked)
{
	input("abc");
	wr(UART_TX, 'x');
	wr(UART_IER, UART_IER_MSI);
	wr(UART_MCR, UART_MCR_DTR | UART_MCR_RTS);
	cr_expect_eq(fk.edges, 0);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT);
	/* Unmasking pending data raises it. */
	wr(UART_IER, UART_IER_RDI);
	cr_expect_eq(fk.edges, 1);
}

Test(serial, iir_priority)
{
	wr(UART_MCR, UART_MCR_LOOP);
	rd(UART_MSR); /* entering loopback changed every modem line */
	/* Overrun the FIFO through loopback to get a line-status error. */
	for (unsigned i = 0; i < 65; i++)
		wr(UART_TX, (uint8_t)i);
	wr(UART_IER, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);
	cr_expect_eq(fk.edges, 1);
	cr_expect_eq(rd(UART_IIR), UART_IIR_RLSI);
	cr_expect_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT | UART_LSR_DR | UART_LSR_OE);
	cr_expect_eq(rd(UART_LSR) & UART_LSR_OE, 0, "LSR read clears OE");
	cr_expect_eq(rd(UART_IIR), UART_IIR_RDI);
	for (unsigned i = 0; i < 64; i++)
		cr_expect_eq(rd(UART_RX), i);
	cr_expect_eq(rd(UART_IIR), UART_IIR_THRI);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT);
	/* A modem line change in loopback is the lowest priority. */
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_RTS);
	cr_expect_eq(rd(UART_IIR), UART_IIR_MSI);
	cr_expect_eq(rd(UART_MSR), UART_MSR_CTS | UART_MSR_DCTS);
	cr_expect_eq(rd(UART_IIR), UART_IIR_NO_INT, "MSR read cleared the delta");
	cr_expect_eq(fk.nout, 0, "loopback bytes never left");
}

Test(serial, loopback)
{
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
	/* Linux's autoconfig check. */
	cr_expect_eq(rd(UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_CTS);
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	cr_expect_eq(rd(UART_MSR) & 0xf0, UART_MSR_DSR | UART_MSR_RI);
	wr(UART_TX, 'L');
	cr_expect_eq(fk.nout, 0);
	cr_expect(rd(UART_LSR) & UART_LSR_DR);
	cr_expect_eq(rd(UART_RX), 'L');
	cr_expect_eq(serial_input(s, (const uint8_t *)"z", 1), 0, "line cut off");
	wr(UART_MCR, UART_MCR_OUT2);
	cr_expect_eq(rd(UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	wr(UART_TX, 'o');
	cr_expect_eq(fk.nout, 1);
	input("z");
}

Test(serial, scratch)
{
	wr(UART_SCR, 0xa5);
	cr_expect_eq(rd(UART_SCR), 0xa5);
	wr(UART_LCR, UART_LCR_DLAB);
	cr_expect_eq(rd(UART_SCR), 0xa5, "not banked by DLAB");
}

Test(serial, odd_accesses_ignored)
{
	uint8_t w[4] = {'a', 'b', 'c', 'd'}, r[4];
	serial_bus_ops.write(s, UART_TX, w, 2);
	serial_bus_ops.write(s, UART_IER, w, 4);
	serial_bus_ops.write(s, 8, w, 1);
	serial_bus_ops.write(s, UINT64_MAX, w, 1);
	serial_bus_ops.write(s, UART_TX, w, 0);
	cr_expect_eq(fk.nout, 0);
	cr_expect_eq(rd(UART_IER), 0);
	input("k");
	memset(r, 0, sizeof(r));
	serial_bus_ops.read(s, UART_RX, r, 2);
	cr_expect_eq(r[0], 0xff);
	cr_expect_eq(r[1], 0xff);
	serial_bus_ops.read(s, 9, r, 1);
	cr_expect_eq(r[0], 0xff);
	cr_expect_eq(rd(UART_RX), 'k', "wide read did not consume");
	wr(UART_LSR, 0);
	wr(UART_MSR, 0);
	cr_expect_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT, "LSR read-only");
	cr_expect_eq(rd(UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
}

static void *feeder(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < 20000;) {
		uint8_t b = (uint8_t)i;
		i += (unsigned)serial_input(s, &b, 1);
	}
	return NULL;
}

Test(serial, input_thread_and_vcpu_thread)
{
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, feeder, NULL), 0);
	for (unsigned i = 0; i < 20000;) {
		if (!(rd(UART_LSR) & UART_LSR_DR))
			continue;
		cr_assert_eq(rd(UART_RX), (uint8_t)i, "byte %u", i);
		i++;
	}
	pthread_join(t, NULL);
}

/* ---- snapshot ------------------------------------------------------ */

static uint8_t rd_of(struct serial *u, unsigned off)
{
	uint8_t v = 0x5a;
	serial_bus_ops.read(u, off, &v, 1);
	return v;
}

static void wr_of(struct serial *u, unsigned off, uint8_t v)
{
	serial_bus_ops.write(u, off, &v, 1);
}

/* What a guest sees, reading every register and then the whole receive
 * FIFO (reads have side effects: two UARTs in the same state give the
 * same bytes). */
#define DUMP_LEN 160
static void dump(struct serial *u, uint8_t *out)
{
	unsigned n = 0;
	uint8_t lcr = rd_of(u, UART_LCR);

	out[n++] = lcr;
	out[n++] = rd_of(u, UART_MCR);
	out[n++] = rd_of(u, UART_SCR);
	out[n++] = rd_of(u, UART_IER);
	out[n++] = rd_of(u, UART_IIR);
	out[n++] = rd_of(u, UART_MSR);
	out[n++] = rd_of(u, UART_LSR);
	wr_of(u, UART_LCR, lcr | UART_LCR_DLAB);
	out[n++] = rd_of(u, UART_DLL);
	out[n++] = rd_of(u, UART_DLM);
	wr_of(u, UART_LCR, lcr & ~UART_LCR_DLAB);
	for (unsigned i = 0; i < 70; i++) {
		out[n++] = rd_of(u, UART_LSR);
		out[n++] = rd_of(u, UART_RX);
	}
	out[n++] = rd_of(u, UART_IIR);
	while (n < DUMP_LEN)
		out[n++] = 0;
}

static struct fake fk2;
static struct serial *s2;

/* The suite's setup has run already (s); these add s2. */
static void snap_setup(void)
{
	memset(&fk2, 0, sizeof(fk2));
	cr_assert_eq(serial_create(&s2, &fake_ops, &fk2), 0);
}

static void snap_teardown(void)
{
	serial_destroy(s2);
	s2 = NULL;
}

static void save(struct wbuf *w)
{
	wbuf_init(w);
	cr_assert_eq(serial_save(s, w), 0);
}

/* s2 is still a UART fresh from serial_create. */
static void expect_s2_untouched(void)
{
	cr_assert_eq(fk2.edges, 0);
	cr_assert_eq(rd_of(s2, UART_IER), 0);
	cr_assert_eq(rd_of(s2, UART_MCR), UART_MCR_OUT2);
	cr_assert_eq(rd_of(s2, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	cr_assert_eq(rd_of(s2, UART_SCR), 0);
	wr_of(s2, UART_LCR, UART_LCR_DLAB);
	cr_assert_eq(rd_of(s2, UART_DLL), 12);
	wr_of(s2, UART_LCR, 0);
}

Test(serial, snapshot_round_trip, .init = snap_setup, .fini = snap_teardown)
{
	uint8_t buf[60], a[DUMP_LEN], b[DUMP_LEN];
	struct wbuf w;
	struct rbuf r;
	char err[128] = "";

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i + 1);
	/* A FIFO whose head has moved: the bytes wrap in the ring. */
	cr_assert_eq(serial_input(s, buf, 60), 60);
	for (unsigned i = 0; i < 50; i++)
		rd(UART_RX);
	cr_assert_eq(serial_input(s, buf, 30), 30);
	/* Loopback: modem deltas, then an overrun. */
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_DTR);
	for (unsigned i = 0; i < 30; i++)
		wr(UART_TX, (uint8_t)(0x80 + i));
	wr(UART_LCR, UART_LCR_DLAB);
	wr(UART_DLL, 3);
	wr(UART_DLM, 1);
	wr(UART_LCR, UART_LCR_WLEN8 | UART_LCR_PARITY);
	wr(UART_FCR, UART_FCR_ENABLE_FIFO);
	wr(UART_SCR, 0x7e);
	wr(UART_IER, UART_IER_RDI | UART_IER_RLSI | UART_IER_MSI);

	save(&w);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(serial_restore(s2, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r), "the whole section read");
	cr_assert_eq(fk2.edges, 1, "the pending interrupt raised again");
	dump(s, a);
	dump(s2, b);
	cr_assert_arr_eq(a, b, DUMP_LEN);
	cr_assert_eq(a[4], 0xc0 | UART_IIR_RLSI, "an overrun was pending");
	cr_assert_eq(a[6] & UART_LSR_OE, UART_LSR_OE);
	/* The restored UART goes on working: its output reaches its own ops. */
	wr_of(s2, UART_MCR, UART_MCR_OUT2);
	wr_of(s2, UART_TX, 'z');
	cr_assert_eq(fk2.nout, 1);
	cr_assert_eq(fk2.out[0], 'z');
	wbuf_free(&w);
}

Test(serial, snapshot_nothing_pending_raises_nothing, .init = snap_setup, .fini = snap_teardown)
{
	struct wbuf w;
	struct rbuf r;

	input("abc"); /* data, but RDI masked */
	save(&w);
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(serial_restore(s2, &r, NULL, 0), 0);
	cr_assert_eq(fk2.edges, 0);
	cr_assert_eq(rd_of(s2, UART_RX), 'a');
	/* THRI armed but masked at the snapshot: enabling it interrupts. */
	wr_of(s2, UART_IER, UART_IER_THRI);
	cr_assert_eq(fk2.edges, 1);
	wbuf_free(&w);
}

Test(serial, snapshot_truncated_anywhere_refused, .init = snap_setup, .fini = snap_teardown)
{
	struct wbuf w;
	struct rbuf r;
	char err[128];

	input("hello");
	wr(UART_IER, UART_IER_RDI);
	save(&w);
	for (size_t len = 0; len < w.len; len++) {
		err[0] = 0;
		rbuf_init(&r, w.p, len);
		cr_assert_eq(serial_restore(s2, &r, err, sizeof(err)), -EBADMSG, "len %zu", len);
		cr_assert_eq(strncmp(err, "serial: ", 8), 0, "%s", err);
	}
	expect_s2_untouched();
	wbuf_free(&w);
}

/* The saved state with byte `off` set to v must be refused with `want`. */
static void expect_patch_refused(const struct wbuf *w, size_t off, uint8_t v, int want,
				 const char *says)
{
	uint8_t p[256];
	struct rbuf r;
	char err[128] = "";

	cr_assert_leq(w->len, sizeof(p));
	memcpy(p, w->p, w->len);
	p[off] = v;
	rbuf_init(&r, p, w->len);
	cr_assert_eq(serial_restore(s2, &r, err, sizeof(err)), want, "byte %zu = %#x: %s", off, v,
		     err);
	cr_assert(strstr(err, says), "byte %zu: '%s' lacks '%s'", off, err, says);
}

/* Offsets in version 1: u32 version, then one byte each for IER, LCR,
 * MCR, SCR, DLL, DLM, MSR, LSR errors, FIFO on, THRI armed, FIFO length. */
Test(serial, snapshot_bad_values_refused, .init = snap_setup, .fini = snap_teardown)
{
	struct wbuf w;

	input("xy");
	save(&w);
	cr_assert_eq(w.len, 4 + 11 + 2);
	expect_patch_refused(&w, 0, 2, -EBADMSG, "version 2");
	expect_patch_refused(&w, 4, UART_IER_RDI | 0x10, -EINVAL, "IER");
	expect_patch_refused(&w, 6, UART_MCR_OUT2 | 0x20, -EINVAL, "MCR");
	expect_patch_refused(&w, 10, UART_MSR_DSR | UART_MSR_CTS, -EINVAL, "MSR");
	expect_patch_refused(&w, 10, 0xff, -EINVAL, "MSR");
	expect_patch_refused(&w, 11, UART_LSR_DR, -EINVAL, "LSR");
	expect_patch_refused(&w, 12, 2, -EBADMSG, "flag");
	expect_patch_refused(&w, 13, 0xff, -EBADMSG, "flag");
	expect_patch_refused(&w, 14, 65, -EINVAL, "FIFO of 65");
	expect_patch_refused(&w, 14, 3, -EBADMSG, "truncated");
	expect_s2_untouched();
	wbuf_free(&w);
}
