/* libFuzzer harness for the snapshot's section decoders (issue 12: a
 * state file "never crashes flint, and nothing from it is trusted before
 * it is checked"). fuzz_snapfile reaches the container; this one feeds
 * what is inside it. The input's first byte chooses the decoder (its
 * value mod DECODERS; for virtio-mmio, the next bit makes the device
 * refuse activation); the rest is the section, read from a malloc of
 * exactly its length, so ASan sees any over-read:
 *   0 vcpu_state_decode   1 vm_state_decode   2 gmem_layout_restore
 *   3 serial_restore      4 i8042_restore     5 vq_restore
 *   6 virtio_mmio_restore (a fresh transport, a fake device)
 * A refusal must be -EBADMSG or -EINVAL with a message and leave the
 * target as it was. An accepted section must keep what the header
 * promises, must encode back to the very bytes it was read from (virtio-
 * mmio: must save and restore again into a fresh transport), and the
 * restored thing must then survive use: the bytes after the section are
 * guest memory or register accesses (ring pops and pushes on a restored
 * queue, UART and i8042 port reads and writes).
 *
 * Seeds: FUZZ_SNAPSECTIONS_SEEDS=DIR writes one valid encoding per
 * decoder (and a few variants), made by the encoders, into DIR and exits:
 *   FUZZ_SNAPSECTIONS_SEEDS=tests/fuzz/corpus/snapsections \
 *       $(BUILD)/fuzz/fuzz_snapsections */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/serial_reg.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/gmem.h"
#include "core/gmem_snap.h"
#include "core/wire.h"
#include "fuzz.h"
#include "legacy/legacy.h"
#include "legacy/serial.h"
#include "mmio.h"
#include "virtio.h"
#include "vq.h"
#include "x86/layout.h"
#include "x86/vcpu_state.h"
#include "x86/vm_state.h"

enum { D_VCPU, D_VM, D_LAYOUT, D_SERIAL, D_I8042, D_VQ, D_MMIO, DECODERS };

/* Guest memory for the queues: small, so that the fuzzer finds ring
 * addresses inside it. */
#define RAM	 (64u << 10)
#define QMAX	 256
#define NQUEUES	 2
#define F_DEV	 ((1ULL << 1) | (1ULL << 9))
#define MAX_OPS	 64 /* register accesses or pops after a restore */
#define ERRLEN	 256
#define CFG_SIZE 16
#define MMIO_OPS 16 /* register accesses after a virtio-mmio restore */

int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct gmem *g;
static uint8_t ram_before[RAM];

/* A refusal: a code the header names and a message. */
static void refused(int ret, const char *err)
{
	CHECK(ret == -EBADMSG || ret == -EINVAL);
	CHECK(err[0] && memchr(err, '\0', ERRLEN));
}

/* w holds exactly the n bytes at p. */
static void same_bytes(const struct wbuf *w, const uint8_t *p, size_t n)
{
	CHECK(wbuf_err(w) == 0 && w->len == n && (!n || !memcmp(w->p, p, n)));
}

/* The bytes after the section as guest memory (the rest zeros). */
static void fill_ram(const uint8_t *p, size_t n)
{
	uint8_t *ram = gmem_ptr(g, 0, RAM);

	CHECK(ram);
	if (n > RAM)
		n = RAM;
	memcpy(ram, p, n);
	memset(ram + n, 0, RAM - n);
}

/* ---- vCPU and VM state ------------------------------------------------- */

static void fuzz_vcpu(const uint8_t *p, size_t n)
{
	struct vcpu_state s, again;
	char err[ERRLEN] = "";
	struct rbuf r;
	struct wbuf w;
	int ret;

	rbuf_init(&r, p, n);
	ret = vcpu_state_decode(&r, &s, err, sizeof(err));
	if (ret < 0) {
		refused(ret, err);
		CHECK(!s.xsave); /* nothing to free */
		return;
	}
	CHECK(ret == 0 && r.off <= n);
	CHECK(s.xsave && s.xsave_size >= sizeof(struct kvm_xsave) && s.xsave_size % 4 == 0 &&
	      s.xsave_size <= VCPU_STATE_MAX_XSAVE);
	CHECK(s.nmsrs <= VCPU_STATE_MAX_MSRS && s.xcrs.nr_xcrs <= KVM_MAX_XCRS);
	for (uint32_t i = 0; i < s.nmsrs; i++) {
		CHECK(vcpu_state_msr_allowed(s.msrs[i].index));
		for (uint32_t j = 0; j < i; j++)
			CHECK(s.msrs[j].index != s.msrs[i].index);
	}
	CHECK(!s.debugregs.flags && !(s.debugregs.dr6 >> 32) && !(s.debugregs.dr7 >> 32));

	wbuf_init(&w);
	CHECK(vcpu_state_encode(&s, &w) == 0);
	same_bytes(&w, p, r.off);
	rbuf_init(&r, w.p, w.len);
	CHECK(vcpu_state_decode(&r, &again, err, sizeof(err)) == 0 && rbuf_done(&r));
	CHECK(!memcmp(&again, &s, offsetof(struct vcpu_state, xsave_size)));
	CHECK(again.xsave_size == s.xsave_size && !memcmp(again.xsave, s.xsave, s.xsave_size));
	vcpu_state_free(&again);
	vcpu_state_free(&s);
	wbuf_free(&w);
}

/* The routes a restored I/O APIC hands over: one per unmasked pin at
 * most, in pin order, each an MSI to the local APICs' window. */
static unsigned vm_pins;

static int check_routes(void *ctx, const struct ioapic_msi *m, unsigned n)
{
	struct ioapic *io = ctx; /* its lock is held: read its entries directly */
	unsigned want = 0;

	for (unsigned p = 0; p < vm_pins; p++) {
		uint64_t e = io->s.redir[p];
		unsigned mode = (e >> 8) & 7;
		want += !(e & (1ULL << 16)) && mode != 3 && mode != 6 && mode != 7;
	}
	CHECK(n == want && n <= vm_pins);
	for (unsigned i = 0; i < n; i++) {
		CHECK(m[i].gsi < vm_pins && (i == 0 || m[i].gsi > m[i - 1].gsi));
		CHECK((m[i].address_lo & 0xfff00000u) == 0xfee00000u);
		CHECK((m[i].data & 0xff) == (io->s.redir[m[i].gsi] & 0xff)); /* its vector */
	}
	return 0;
}

static void fuzz_vm(const uint8_t *p, size_t n)
{
	struct vm_kvm_state s, again;
	struct ioapic io;
	char err[ERRLEN] = "";
	struct rbuf r;
	struct wbuf w;
	int ret;

	rbuf_init(&r, p, n);
	ret = vm_state_decode(&r, &s, err, sizeof(err));
	if (ret < 0) {
		refused(ret, err);
		return;
	}
	CHECK(ret == 0 && r.off <= n);
	size_t used = r.off;

	wbuf_init(&w);
	CHECK(vm_state_encode(&s, &w) == 0);
	same_bytes(&w, p, used);
	rbuf_init(&r, w.p, w.len);
	CHECK(vm_state_decode(&r, &again, err, sizeof(err)) == 0 && rbuf_done(&r));
	CHECK(!memcmp(&again, &s, sizeof(s)));
	wbuf_free(&w);

	/* What the decode let through, a chip of its pin count takes. */
	vm_pins = s.ioapic.npins;
	CHECK(ioapic_init(&io, vm_pins, check_routes, &io) == 0);
	CHECK(ioapic_load(&io, &s.ioapic, err, sizeof(err)) == 0);
	/* The guest goes on: (op, dword) records; op bit 0 picks IOREGSEL
	 * or IOWIN, bit 7 a read. What it saves then is still a state. */
	for (size_t i = used, k = 0; i + 5 <= n && k < MAX_OPS; i += 5, k++) {
		uint32_t v;
		memcpy(&v, p + i + 1, 4);
		if (p[i] & 0x80)
			ioapic_bus_ops.read(&io, (p[i] & 1) ? 0x10 : 0x00, &v, 4);
		else
			ioapic_bus_ops.write(&io, (p[i] & 1) ? 0x10 : 0x00, &v, 4);
	}
	struct ioapic_state after;
	ioapic_save(&io, &after);
	CHECK(ioapic_state_check(&after, err, sizeof(err)) == 0);
}

/* ---- the memory layout ------------------------------------------------- */

static void fuzz_layout(const uint8_t *p, size_t n)
{
	struct gmem_layout l, before, want;
	char err[ERRLEN] = "";
	uint64_t total = 0;
	struct rbuf r;
	struct wbuf w;
	int ret;

	memset(&l, 0xa5, sizeof(l));
	before = l;
	rbuf_init(&r, p, n);
	ret = gmem_layout_restore(&l, &r, err, sizeof(err));
	if (ret < 0) {
		refused(ret, err);
		CHECK(!memcmp(&l, &before, sizeof(l))); /* unchanged on error */
		return;
	}
	CHECK(ret == 0 && r.off <= n);
	CHECK(gmem_layout_check(&l, NULL, 0) == 0);
	for (uint32_t i = 0; i < l.nregions; i++)
		total += l.r[i].size;
	/* flint's own map for that size, concatenated in the file, then the
	 * hot-plug region's, if any, right after RAM. */
	gmem_layout_for_size(total, &want);
	CHECK(want.nregions == l.nregions && !memcmp(want.r, l.r, sizeof(l.r)));
	CHECK(gmem_layout_file_size(&l) == (l.hot.size ? total + l.hot.size : total));
	CHECK(!l.hot.size ||
	      (l.hot.offset == total && l.hot.block && l.hot.size % l.hot.block == 0));

	wbuf_init(&w);
	CHECK(gmem_layout_save(&l, &w) == 0);
	same_bytes(&w, p, r.off);
	wbuf_free(&w);
}

/* ---- serial and i8042 -------------------------------------------------- */

static unsigned irqs;

static void count_irq(void *ctx)
{
	(void)ctx;
	irqs++;
}

static void serial_out(void *ctx, const uint8_t *buf, size_t n)
{
	(void)ctx;
	(void)buf;
	(void)n;
}

static const struct serial_ops serial_ops = {.out = serial_out, .irq = count_irq};

static void serial_state(const struct serial *s, struct wbuf *w)
{
	wbuf_init(w);
	CHECK(serial_save(s, w) == 0);
}

static void fuzz_serial(const uint8_t *p, size_t n)
{
	struct serial *s, *s2;
	uint8_t iir;
	struct wbuf before, after;
	char err[ERRLEN] = "";
	size_t used;
	struct rbuf r;
	int ret;

	CHECK(serial_create(&s, &serial_ops, NULL) == 0);
	serial_state(s, &before);
	irqs = 0;
	rbuf_init(&r, p, n);
	ret = serial_restore(s, &r, err, sizeof(err));
	serial_state(s, &after);
	if (ret < 0) {
		refused(ret, err);
		same_bytes(&after, before.p, before.len); /* left as it was */
		CHECK(!irqs);
		goto out;
	}
	CHECK(ret == 0 && r.off <= n && irqs <= 1);
	used = r.off;
	same_bytes(&after, p, used);
	/* An interrupt pending in the restored state was raised again. */
	serial_bus_ops.read(s, UART_IIR, &iir, 1);
	CHECK(irqs == !(iir & UART_IIR_NO_INT));
	/* What it saves restores into another UART. */
	CHECK(serial_create(&s2, &serial_ops, NULL) == 0);
	rbuf_init(&r, after.p, after.len);
	CHECK(serial_restore(s2, &r, err, sizeof(err)) == 0 && rbuf_done(&r));
	serial_destroy(s2);

	/* The guest goes on: (port, value) pairs, odd ports read. */
	for (size_t i = used, k = 0; i + 1 < n && k < MAX_OPS; i += 2, k++) {
		uint8_t off = p[i] % 8, v = p[i + 1];

		if (p[i] & 0x80)
			serial_bus_ops.read(s, off, &v, 1);
		else
			serial_bus_ops.write(s, off, &v, 1);
	}
	CHECK(serial_input(s, (const uint8_t *)"flint", 5) <= 5);
out:
	wbuf_free(&before);
	wbuf_free(&after);
	serial_destroy(s);
}

static void i8042_state(const struct i8042 *k, struct wbuf *w)
{
	wbuf_init(w);
	CHECK(i8042_save(k, w) == 0);
}

static void fuzz_i8042(const uint8_t *p, size_t n)
{
	struct i8042 k, k2;
	struct wbuf before, after;
	struct vm_err verr;
	char err[ERRLEN] = "";
	size_t used;
	struct rbuf r;
	int ret;

	i8042_init(&k, NULL, count_irq, NULL);
	i8042_state(&k, &before);
	irqs = 0;
	rbuf_init(&r, p, n);
	ret = i8042_restore(&k, &r, err, sizeof(err));
	i8042_state(&k, &after);
	if (ret < 0) {
		refused(ret, err);
		same_bytes(&after, before.p, before.len);
		CHECK(!irqs);
		goto out;
	}
	CHECK(ret == 0 && r.off <= n && irqs <= 1);
	CHECK(k.kq_len <= I8042_KBD_QUEUE && k.kq_head < I8042_KBD_QUEUE);
	used = r.off;
	same_bytes(&after, p, used);
	/* A keyboard byte on show with its interrupt on was signalled again
	 * (command byte: 0x01 interrupt on, 0x10 keyboard off). */
	CHECK(irqs == (!k.has_reply && !(k.ctr & 0x10) && k.kq_len && (k.ctr & 0x01)));
	i8042_init(&k2, NULL, count_irq, NULL);
	rbuf_init(&r, after.p, after.len);
	CHECK(i8042_restore(&k2, &r, err, sizeof(err)) == 0 && rbuf_done(&r));

	/* The guest goes on: (port, value) pairs on the data and command
	 * ports (no reset callback: 0xfe is harmless). */
	for (size_t i = used, j = 0; i + 1 < n && j < MAX_OPS; i += 2, j++) {
		const struct bus_ops *ops = p[i] & 1 ? &i8042_cmd_ops : &i8042_data_ops;
		uint8_t v = p[i + 1];

		if (p[i] & 0x80)
			ops->read(&k, 0, &v, 1);
		else
			ops->write(&k, 0, &v, 1);
		CHECK(k.kq_len <= I8042_KBD_QUEUE && k.kq_head < I8042_KBD_QUEUE);
	}
	ret = i8042_ctrl_alt_del(&k, &verr);
	CHECK(ret == 0 || ret == -EAGAIN || ret == -ENOSPC);
	CHECK(k.kq_len <= I8042_KBD_QUEUE && k.kq_head < I8042_KBD_QUEUE);
out:
	wbuf_free(&before);
	wbuf_free(&after);
}

/* ---- virtqueues -------------------------------------------------------- */

/* A ready queue as vq.h describes it: size, alignment and rings in RAM
 * as vq_activate checks them, and at most size chains in flight. */
static void check_vq(const struct vq *q)
{
	uint64_t ev = q->event_idx ? 2 : 0;

	if (!q->ready)
		return;
	CHECK(q->gmem == g && q->size && q->size <= VQ_MAX_SIZE && !(q->size & (q->size - 1)));
	CHECK(q->desc_gpa % 16 == 0 && q->avail_gpa % 2 == 0 && q->used_gpa % 4 == 0);
	CHECK((void *)q->desc == gmem_ptr(g, q->desc_gpa, 16ULL * q->size));
	CHECK((void *)q->avail == gmem_ptr(g, q->avail_gpa, 4 + 2ULL * q->size + ev));
	CHECK((void *)q->used == gmem_ptr(g, q->used_gpa, 4 + 8ULL * q->size + ev));
	CHECK((uint16_t)(q->last_avail - q->next_used) <= q->size);
}

/* Serve q as a device would: pop what the guest made available (the
 * bytes after the section), complete each chain at once. Every segment
 * must be guest RAM; a guest error breaks the queue. */
static void serve(struct vq *q)
{
	struct vq_seg seg[8];
	struct vq_chain c = {.seg = seg, .cap = 8};
	int ret = 1;

	for (unsigned i = 0; i < MAX_OPS && ret == 1; i++) {
		ret = vq_pop(q, &c);
		if (ret != 1)
			break;
		CHECK(c.head < q->size && c.nseg <= c.cap);
		for (uint32_t k = 0; k < c.nseg; k++)
			CHECK(seg[k].len && seg[k].host == gmem_ptr(g, seg[k].gpa, seg[k].len));
		CHECK(vq_push(q, c.head, c.writable) == 0);
		check_vq(q);
	}
	CHECK(ret == 1 || ret == 0 || ret == -EIO || ret == -EINVAL || ret == -ELOOP ||
	      ret == -EFAULT || ret == -EOVERFLOW || ret == -E2BIG);
	if (ret < 0)
		CHECK(q->broken && vq_pop(q, &c) == -EIO);
	(void)vq_need_interrupt(q);
	vq_enable_notify(q);
	(void)vq_has_work(q);
}

static void fuzz_vq(const uint8_t *p, size_t n)
{
	struct vq q, before, again;
	char err[ERRLEN] = "";
	size_t used;
	struct rbuf r;
	struct wbuf w;
	int ret;

	/* A queue in use, to see that a refusal leaves it so. */
	CHECK(vq_activate(&q, g, 8, 0x100, 0x200, 0x300, true) == 0);
	q.last_avail = 5;
	q.next_used = 3;
	q.pops = 7;
	before = q;
	rbuf_init(&r, p, n);
	memcpy(ram_before, gmem_ptr(g, 0, RAM), RAM);
	ret = vq_restore(&q, g, &r, err, sizeof(err));
	CHECK(!memcmp(ram_before, gmem_ptr(g, 0, RAM), RAM)); /* nothing read or written */
	if (ret < 0) {
		refused(ret, err);
		CHECK(!memcmp(&q, &before, sizeof(q)));
		return;
	}
	CHECK(ret == 0 && r.off <= n);
	used = r.off;
	check_vq(&q);
	if (!q.ready) {
		vq_reset(&before);
		CHECK(!memcmp(&q, &before, sizeof(q)));
	}
	wbuf_init(&w);
	CHECK(vq_save(&q, &w) == 0);
	same_bytes(&w, p, used);
	vq_reset(&again);
	rbuf_init(&r, w.p, w.len);
	CHECK(vq_restore(&again, g, &r, err, sizeof(err)) == 0 && rbuf_done(&r));
	CHECK(!memcmp(&again, &q, sizeof(q)));
	wbuf_free(&w);

	if (q.ready) {
		fill_ram(p + used, n - used);
		serve(&q);
	}
}

/* ---- virtio-mmio ------------------------------------------------------- */

/* A device whose activate and reset do nothing but record. */
struct fake {
	int activate_ret;
	unsigned activates, resets;
	uint64_t features;
	struct vq *queues;
	struct virtio_host host;
};

static struct fake fake;
static const uint8_t fake_cfg[CFG_SIZE] = "flint-fuzz-cfg!";

static uint64_t fake_features(void *d)
{
	(void)d;
	return F_DEV;
}

static void fake_config_read(void *d, uint64_t off, void *data, uint32_t len)
{
	(void)d;
	virtio_config_copy(fake_cfg, sizeof(fake_cfg), off, data, len);
}

static int fake_activate(void *d, uint64_t features, struct vq *queues,
			 const struct virtio_host *host)
{
	struct fake *f = d;

	f->activates++;
	f->features = features;
	f->queues = queues;
	f->host = *host;
	return f->activate_ret;
}

static void fake_reset(void *d)
{
	struct fake *f = d;
	f->resets++;
}

static void fake_notify(void *d, unsigned q)
{
	struct fake *f = d;

	CHECK(f->queues && q < NQUEUES);
	if (!f->queues[q].ready)
		return;
	serve(&f->queues[q]);
	if (f->queues[q].broken)
		f->host.needs_reset(f->host.t);
	else
		f->host.used(f->host.t, q);
}

static const struct virtio_dev_ops fake_ops = {
    .device_id = VIRTIO_ID_NET,
    .num_queues = NQUEUES,
    .queue_max = QMAX,
    .features = fake_features,
    .config_read = fake_config_read,
    .activate = fake_activate,
    .reset = fake_reset,
    .notify = fake_notify,
};

/* The registers a driver reads and writes after a restore. */
static const uint64_t mmio_regs[] = {
    VIRTIO_MMIO_DEVICE_FEATURES,     VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,	      VIRTIO_MMIO_QUEUE_NUM_MAX,
    VIRTIO_MMIO_QUEUE_NUM,	     VIRTIO_MMIO_QUEUE_READY,	      VIRTIO_MMIO_QUEUE_NOTIFY,
    VIRTIO_MMIO_INTERRUPT_STATUS,    VIRTIO_MMIO_INTERRUPT_ACK,	      VIRTIO_MMIO_STATUS,
    VIRTIO_MMIO_QUEUE_DESC_LOW,	     VIRTIO_MMIO_QUEUE_DESC_HIGH,     VIRTIO_MMIO_QUEUE_AVAIL_LOW,
    VIRTIO_MMIO_QUEUE_AVAIL_HIGH,    VIRTIO_MMIO_QUEUE_USED_LOW,      VIRTIO_MMIO_QUEUE_USED_HIGH,
    VIRTIO_MMIO_CONFIG_GENERATION,
};

static uint32_t mmio_rd(struct virtio_mmio *t, uint64_t off)
{
	uint32_t v = 0;

	virtio_mmio_bus_ops.read(t, off, &v, 4);
	return v;
}

static void mmio_wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	virtio_mmio_bus_ops.write(t, off, &v, 4);
}

static void mmio_state(const struct virtio_mmio *t, struct wbuf *w)
{
	wbuf_init(w);
	CHECK(virtio_mmio_save(t, w, NULL, 0) == 0);
}

static void fuzz_mmio(const uint8_t *p, size_t n, bool refuse_activation)
{
	const uint64_t offered = F_DEV | (1ULL << VIRTIO_F_VERSION_1) |
				 (1ULL << VIRTIO_RING_F_EVENT_IDX) |
				 (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	struct wbuf before, after;
	struct virtio_mmio *t, *t2;
	char err[ERRLEN] = "";
	uint32_t isr;
	size_t used;
	struct rbuf r;
	int ret;

	memset(&fake, 0, sizeof(fake));
	fake.activate_ret = refuse_activation ? -EIO : 0;
	CHECK(virtio_mmio_create(&t, g, &fake_ops, &fake, count_irq, NULL) == 0);
	mmio_state(t, &before);
	irqs = 0;
	rbuf_init(&r, p, n);
	ret = virtio_mmio_restore(t, &r, err, sizeof(err));
	mmio_state(t, &after);
	if (ret == -EIO) {
		/* The device refused: t and the device reset as before. */
		CHECK(refuse_activation && fake.activates == 1 && err[0]);
		same_bytes(&after, before.p, before.len);
		CHECK(!irqs && mmio_rd(t, VIRTIO_MMIO_STATUS) == 0);
		goto out;
	}
	if (ret < 0) {
		refused(ret, err);
		same_bytes(&after, before.p, before.len);
		CHECK(!irqs && !fake.activates && !fake.resets);
		goto out;
	}
	CHECK(ret == 0 && r.off <= n && irqs <= 1 && fake.activates <= 1);
	used = r.off;
	if (fake.activates) {
		/* Running: features the driver could accept, queues that pass
		 * the driver's DRIVER_OK checks. */
		uint32_t st = mmio_rd(t, VIRTIO_MMIO_STATUS);

		CHECK(st & VIRTIO_CONFIG_S_DRIVER_OK);
		CHECK(!(fake.features & ~offered) &&
		      (fake.features & (1ULL << VIRTIO_F_VERSION_1)));
		for (unsigned q = 0; q < NQUEUES; q++) {
			check_vq(&fake.queues[q]);
			CHECK(!fake.queues[q].ready || fake.queues[q].size <= QMAX);
			CHECK(!fake.queues[q].ready ||
			      fake.queues[q].event_idx ==
				  !!(fake.features & (1ULL << VIRTIO_RING_F_EVENT_IDX)));
		}
	}
	CHECK(mmio_rd(t, VIRTIO_MMIO_MAGIC_VALUE) == 0x74726976);
	isr = mmio_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS);
	CHECK(!(isr & ~3u) && irqs == !!isr);
	/* A transport no longer in its reset state takes no second restore
	 * and stays as it is. */
	if (mmio_rd(t, VIRTIO_MMIO_STATUS)) {
		struct wbuf again;
		char err2[ERRLEN] = "";

		rbuf_init(&r, after.p, after.len);
		CHECK(virtio_mmio_restore(t, &r, err2, sizeof(err2)) == -EBUSY && err2[0]);
		mmio_state(t, &again);
		same_bytes(&again, after.p, after.len);
		wbuf_free(&again);
	}

	/* What it saves restores into a fresh transport. */
	{
		struct fake keep = fake;

		memset(&fake, 0, sizeof(fake));
		CHECK(virtio_mmio_create(&t2, g, &fake_ops, &fake, count_irq, NULL) == 0);
		rbuf_init(&r, after.p, after.len);
		ret = virtio_mmio_restore(t2, &r, err, sizeof(err));
		CHECK(ret == 0 && rbuf_done(&r) && fake.activates == keep.activates);
		mmio_wr(t2, VIRTIO_MMIO_STATUS, 0);
		virtio_mmio_destroy(t2);
		fake = keep;
	}

	/* The guest goes on: after the section, a count of register
	 * accesses (at most MMIO_OPS), 5 bytes each (which register, a read
	 * when its top bit is set; the value), then its rings (guest RAM);
	 * then every queue is kicked. */
	{
		size_t i = used, nops = i < n ? p[i++] % (MMIO_OPS + 1) : 0;
		size_t ram = i + 5 * nops < n ? i + 5 * nops : n;

		fill_ram(p + ram, n - ram);
		for (; nops && i + 5 <= n; nops--, i += 5) {
			uint64_t off = mmio_regs[(p[i] & 0x7f) % ARRAY_SIZE(mmio_regs)];
			uint32_t v;

			memcpy(&v, p + i + 1, 4);
			if (p[i] & 0x80)
				(void)mmio_rd(t, off);
			else
				mmio_wr(t, off, v);
		}
	}
	for (unsigned q = 0; q < NQUEUES; q++) {
		mmio_wr(t, VIRTIO_MMIO_QUEUE_SEL, q);
		(void)mmio_rd(t, VIRTIO_MMIO_QUEUE_READY);
		virtio_mmio_queue_notify(t, q);
	}
	if (fake.queues && (mmio_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK))
		for (unsigned q = 0; q < NQUEUES; q++)
			check_vq(&fake.queues[q]);
	mmio_wr(t, VIRTIO_MMIO_INTERRUPT_ACK, 3);
	mmio_wr(t, VIRTIO_MMIO_STATUS, 0);
	CHECK(mmio_rd(t, VIRTIO_MMIO_STATUS) == 0);
out:
	wbuf_free(&before);
	wbuf_free(&after);
	virtio_mmio_destroy(t);
}

/* ---- seeds ------------------------------------------------------------- */

/* A seed: the selector, the section in w, then the bytes in tail (NULL:
 * none). */
static void put_seed(const char *dir, const char *name, unsigned sel, const struct wbuf *w,
		     const struct wbuf *tail)
{
	char path[4096];
	uint8_t b = (uint8_t)sel;
	FILE *f;

	CHECK(wbuf_err(w) == 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	CHECK(f);
	CHECK(fwrite(&b, 1, 1, f) == 1 && fwrite(w->p, 1, w->len, f) == w->len);
	CHECK(!tail || (wbuf_err(tail) == 0 && fwrite(tail->p, 1, tail->len, f) == tail->len));
	CHECK(fclose(f) == 0);
}

static void seed_vcpu(const char *dir)
{
	struct vcpu_state s;
	struct wbuf w;

	memset(&s, 0, sizeof(s));
	s.regs.rip = 0x100000;
	s.regs.rflags = 2;
	s.sregs.cr0 = 0x80000011;
	s.sregs.efer = 0x500;
	s.xcrs.nr_xcrs = 1;
	s.xcrs.xcrs[0].value = 1;
	s.events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	s.mp.mp_state = KVM_MP_STATE_RUNNABLE;
	s.debugregs.dr6 = 0xffff0ff0;
	s.debugregs.dr7 = 0x400;
	s.tsc_khz = 2000000;
	s.nmsrs = 3;
	s.msrs[0] = (struct kvm_msr_entry){.index = 0x10, .data = 12345};
	s.msrs[1] = (struct kvm_msr_entry){.index = 0xc0000082, .data = 0xffffffff81000000ULL};
	s.msrs[2] = (struct kvm_msr_entry){.index = 0x4b564d01, .data = 0x1001};
	s.xsave_size = sizeof(struct kvm_xsave);
	s.xsave = calloc(1, s.xsave_size);
	CHECK(s.xsave);
	s.xsave->region[0] = 0x37f;
	wbuf_init(&w);
	CHECK(vcpu_state_encode(&s, &w) == 0);
	put_seed(dir, "vcpu", D_VCPU, &w, NULL);
	wbuf_free(&w);
	vcpu_state_free(&s);
}

static void seed_vm(const char *dir)
{
	struct vm_kvm_state s;
	struct wbuf w;

	memset(&s, 0, sizeof(s));
	s.ioapic.npins = 8;
	for (unsigned p = 0; p < 8; p++)
		s.ioapic.redir[p] = 1ULL << 16; /* masked */
	s.ioapic.redir[4] = 0x24;		/* the serial port's, unmasked */
	s.ioapic.redir[5] = 0x8000 | 0x25 | 1ULL << 56;
	s.ioapic.ioregsel = 0x1b;
	s.clock = 123456789;
	wbuf_init(&w);
	CHECK(vm_state_encode(&s, &w) == 0);
	put_seed(dir, "vm", D_VM, &w, NULL);
	wbuf_free(&w);
}

static void seed_layout(const char *dir)
{
	struct gmem_layout l;
	struct wbuf w;

	gmem_layout_for_size(128u << 20, &l);
	wbuf_init(&w);
	CHECK(gmem_layout_save(&l, &w) == 0);
	put_seed(dir, "layout-one-region", D_LAYOUT, &w, NULL);
	wbuf_free(&w);
	gmem_layout_for_size(MMIO_GAP_START + (2u << 20), &l);
	CHECK(l.nregions == 2);
	wbuf_init(&w);
	CHECK(gmem_layout_save(&l, &w) == 0);
	put_seed(dir, "layout-two-regions", D_LAYOUT, &w, NULL);
	wbuf_free(&w);
	/* A memory hot-plug region of 512 MiB at 1 GiB (version 2). */
	gmem_layout_for_size(128u << 20, &l);
	l.hot = (struct gmem_layout_hot){
	    .gpa = 1ULL << 30, .size = 512ULL << 20, .block = 2ULL << 20, .offset = 128u << 20};
	wbuf_init(&w);
	CHECK(gmem_layout_save(&l, &w) == 0);
	put_seed(dir, "layout-hot-plug", D_LAYOUT, &w, NULL);
	wbuf_free(&w);
}

static void seed_serial(const char *dir)
{
	struct serial *s;
	struct wbuf w;
	uint8_t v;

	CHECK(serial_create(&s, &serial_ops, NULL) == 0);
	v = UART_IER_RDI | UART_IER_THRI;
	serial_bus_ops.write(s, UART_IER, &v, 1);
	v = UART_LCR_WLEN8;
	serial_bus_ops.write(s, UART_LCR, &v, 1);
	v = UART_FCR_ENABLE_FIFO;
	serial_bus_ops.write(s, UART_FCR, &v, 1);
	CHECK(serial_input(s, (const uint8_t *)"ls\n", 3) == 3);
	wbuf_init(&w);
	CHECK(serial_save(s, &w) == 0);
	put_seed(dir, "serial", D_SERIAL, &w, NULL);
	wbuf_free(&w);
	serial_destroy(s);
}

static void seed_i8042(const char *dir)
{
	struct i8042 k;
	struct vm_err verr;
	struct wbuf w;
	uint8_t v = 0xf2; /* keyboard: get id (ack and two bytes queued) */

	i8042_init(&k, NULL, count_irq, NULL);
	i8042_data_ops.write(&k, 0, &v, 1);
	v = 0x60; /* controller: the command byte follows */
	i8042_cmd_ops.write(&k, 0, &v, 1);
	wbuf_init(&w);
	CHECK(i8042_save(&k, &w) == 0);
	put_seed(dir, "i8042", D_I8042, &w, NULL);
	wbuf_free(&w);
	i8042_init(&k, NULL, count_irq, NULL);
	CHECK(i8042_ctrl_alt_del(&k, &verr) == 0);
	wbuf_init(&w);
	CHECK(i8042_save(&k, &w) == 0);
	put_seed(dir, "i8042-ctrl-alt-del", D_I8042, &w, NULL);
	wbuf_free(&w);
}

/* Seeds' queues: 16 entries, rings at the bottom of guest RAM, so that
 * the RAM after a section stays short. */
#define SEED_QSIZE 16
#define SEED_DESC  0x0
#define SEED_AVAIL 0x100
#define SEED_USED  0x200

/* Guest RAM from 0 up to the avail ring's end: one 64-byte readable
 * buffer at 0x400 made available as the chain after `last_avail`. */
static void put_ring(struct wbuf *w, uint16_t last_avail)
{
	uint8_t ram[SEED_AVAIL + 4 + 2 * SEED_QSIZE] = {0};
	struct vring_desc d = {.addr = 0x400, .len = 64};
	uint16_t idx = (uint16_t)(last_avail + 1);

	memcpy(ram + SEED_DESC, &d, sizeof(d));
	memcpy(ram + SEED_AVAIL + 2, &idx, 2);
	/* ring[last_avail % size] = head 0: already zero */
	wput_bytes(w, ram, sizeof(ram));
}

static void seed_vq(const char *dir)
{
	struct vq q;
	struct wbuf w, ram;

	CHECK(vq_activate(&q, g, SEED_QSIZE, SEED_DESC, SEED_AVAIL, SEED_USED, true) == 0);
	q.last_avail = 3; /* test-only: as if three chains were popped, */
	q.next_used = 1;  /* one pushed */
	q.signalled_used = 1;
	q.signalled_valid = true;
	wbuf_init(&w);
	CHECK(vq_save(&q, &w) == 0);
	wbuf_init(&ram);
	put_ring(&ram, q.last_avail);
	put_seed(dir, "vq", D_VQ, &w, &ram);
	wbuf_free(&ram);
	wbuf_free(&w);
}

static void seed_mmio(const char *dir)
{
	const uint64_t feat =
	    (1ULL << 1) | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX);
	const uint32_t ok =
	    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	struct virtio_mmio *t;
	struct wbuf w, tail;

	memset(&fake, 0, sizeof(fake));
	CHECK(virtio_mmio_create(&t, g, &fake_ops, &fake, count_irq, NULL) == 0);
	/* The guest's driver, up to FEATURES_OK. */
	mmio_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	mmio_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	mmio_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)feat);
	mmio_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(feat >> 32));
	mmio_wr(t, VIRTIO_MMIO_STATUS, ok);
	CHECK(mmio_rd(t, VIRTIO_MMIO_STATUS) == ok);
	/* Queue 0 programmed and ready; queue 1 left alone. */
	mmio_wr(t, VIRTIO_MMIO_QUEUE_SEL, 0);
	mmio_wr(t, VIRTIO_MMIO_QUEUE_NUM, SEED_QSIZE);
	mmio_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, SEED_DESC);
	mmio_wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, SEED_AVAIL);
	mmio_wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, SEED_USED);
	mmio_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	wbuf_init(&w);
	CHECK(virtio_mmio_save(t, &w, NULL, 0) == 0);
	/* After it, the driver's DRIVER_OK, then a chain on queue 0. */
	wbuf_init(&tail);
	wput_u8(&tail, 1);
	CHECK(mmio_regs[11] == VIRTIO_MMIO_STATUS);
	wput_u8(&tail, 11);
	wput_u32(&tail, ok | VIRTIO_CONFIG_S_DRIVER_OK);
	put_ring(&tail, 0);
	put_seed(dir, "mmio-setup", D_MMIO, &w, &tail);
	wbuf_free(&tail);
	wbuf_free(&w);

	mmio_wr(t, VIRTIO_MMIO_STATUS, ok | VIRTIO_CONFIG_S_DRIVER_OK);
	CHECK(fake.activates == 1 && fake.queues[0].ready);
	fake.queues[0].last_avail = 2; /* test-only: two popped, one used */
	fake.queues[0].next_used = 1;
	virtio_mmio_config_changed(t); /* InterruptStatus pending */
	wbuf_init(&w);
	CHECK(virtio_mmio_save(t, &w, NULL, 0) == 0);
	wbuf_init(&tail);
	wput_u8(&tail, 0); /* no register accesses */
	put_ring(&tail, fake.queues[0].last_avail);
	put_seed(dir, "mmio-running", D_MMIO, &w, &tail);
	/* The same with a device that refuses activation. */
	put_seed(dir, "mmio-running-refused", D_MMIO + DECODERS, &w, &tail);
	wbuf_free(&tail);
	wbuf_free(&w);
	virtio_mmio_destroy(t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("FUZZ_SNAPSECTIONS_SEEDS");

	(void)argc;
	(void)argv;
	CHECK(gmem_create(&g, RAM) == 0);
	if (!dir)
		return 0;
	seed_vcpu(dir);
	seed_vm(dir);
	seed_layout(dir);
	seed_serial(dir);
	seed_i8042(dir);
	seed_vq(dir);
	seed_mmio(dir);
	exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;
	size_t n;

	if (size < 1 || size > (1u << 20))
		return 0;
	n = size - 1;
	p = malloc(n ? n : 1);
	CHECK(p);
	memcpy(p, data + 1, n);
	switch (data[0] % DECODERS) {
	case D_VCPU:
		fuzz_vcpu(p, n);
		break;
	case D_VM:
		fuzz_vm(p, n);
		break;
	case D_LAYOUT:
		fuzz_layout(p, n);
		break;
	case D_SERIAL:
		fuzz_serial(p, n);
		break;
	case D_I8042:
		fuzz_i8042(p, n);
		break;
	case D_VQ:
		fuzz_vq(p, n);
		break;
	default:
		fuzz_mmio(p, n, (data[0] / DECODERS) & 1);
		break;
	}
	free(p);
	return 0;
}
