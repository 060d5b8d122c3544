/* virtio-blk: the parser against chains popped from a real vq in a fake guest
 * memory, and the whole device (front end + engine) against a temporary
 * image file and a real event loop run in the test thread. The helpers play
 * the guest driver: they lay out descriptors and offer chains. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"
#include "blk_req.h"
#include "evloop.h"
#include "fake_driver.h"
#include "gmem.h"
#include "vq.h"

#define RAM   (4u << 20)
#define DESC  0x1000 /* 256 descriptors: 4 KiB */
#define AVAIL 0x3000
#define USED  0x4000
#define BUF   0x10000
#define CAP   64 /* image sectors */
#define SECT  BLK_SECTOR_SIZE

static struct gmem *g;
static struct vq q;
static struct fake_ring ring = {.desc = DESC, .avail = AVAIL, .used = USED};

static void *at(uint64_t gpa, uint64_t len)
{
	return fake_at(g, gpa, len);
}

static void ring_start(uint16_t size)
{
	vq_reset(&q);
	fake_ring_reset(&ring, g, size);
	cr_assert_eq(vq_activate(&q, g, size, DESC, AVAIL, USED, false), 0);
}

static void gmem_setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	ring_start(16);
}

static void gmem_teardown(void)
{
	gmem_destroy(g);
}

static uint16_t offer(const struct sg *s, unsigned n)
{
	return fake_offer(&ring, s, n);
}

static void put_hdr(uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};
	cr_assert_eq(gmem_write(g, gpa, &h, sizeof(h)), 0);
}

static void put_dwz(uint64_t gpa, uint64_t sector, uint32_t num, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes d = {
	    .sector = sector, .num_sectors = num, .flags = flags};
	cr_assert_eq(gmem_write(g, gpa, &d, sizeof(d)), 0);
}

static uint8_t *byte_at(uint64_t gpa)
{
	return at(gpa, 1);
}

/* ---- the parser ------------------------------------------------------ */

static struct vq_seg segs[BLK_QUEUE_MAX];
static struct iovec iov[BLK_QUEUE_MAX];
static struct blk_req r;
static struct blk_geom geom;

static void parse_setup(void)
{
	gmem_setup();
	geom = (struct blk_geom){.capacity = CAP,
				 .flush = true,
				 .discard = true,
				 .write_zeroes = true,
				 .max_discard_sectors = 16,
				 .max_write_zeroes_sectors = 16};
}

TestSuite(blk_parse, .init = parse_setup, .fini = gmem_teardown);

/* Offer the chain, pop it and parse it. */
static int parse(const struct sg *s, unsigned n)
{
	struct vq_chain c = {.seg = segs, .cap = ARRAY_SIZE(segs)};

	offer(s, n);
	cr_assert_eq(vq_pop(&q, &c), 1);
	return blk_parse(&geom, &c, &r, iov, ARRAY_SIZE(iov));
}

/* Header at BUF, optional data, status byte at BUF + 0x8000. */
static int parse_simple(uint32_t type, uint64_t sector, uint32_t data_len, bool data_w)
{
	struct sg s[] = {
	    {BUF, 16, false}, {BUF + 0x1000, data_len, data_w}, {BUF + 0x8000, 1, true}};

	put_hdr(BUF, type, sector);
	if (data_len)
		return parse(s, 3);
	s[1] = s[2];
	return parse(s, 2);
}

static void assert_answer(uint8_t status)
{
	cr_assert_eq(r.op, BLK_OP_NONE);
	cr_assert_eq(r.status, status, "status %u, want %u", r.status, status);
	cr_assert_eq(r.status_byte, byte_at(BUF + 0x8000));
}

Test(blk_parse, read)
{
	struct sg s[] = {{BUF, 16, false},
			 {BUF + 0x1000, 1024, true},
			 {BUF + 0x2000, 512, true},
			 {BUF + 0x8000, 1, true}};

	put_hdr(BUF, VIRTIO_BLK_T_IN, 3);
	cr_assert_eq(parse(s, 4), 0);
	cr_assert_eq(r.type, VIRTIO_BLK_T_IN);
	cr_assert_eq(r.op, BLK_OP_READ);
	cr_assert_eq(r.off, 3 * SECT);
	cr_assert_eq(r.len, 1536);
	cr_assert_eq(r.niov, 2);
	cr_assert_eq(r.iov[0].iov_base, at(BUF + 0x1000, 1024));
	cr_assert_eq(r.iov[0].iov_len, 1024);
	cr_assert_eq(r.iov[1].iov_base, at(BUF + 0x2000, 512));
	cr_assert_eq(r.status_byte, byte_at(BUF + 0x8000));
}

Test(blk_parse, write)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_OUT, CAP - 2, 1024, false), 0);
	cr_assert_eq(r.op, BLK_OP_WRITE);
	cr_assert_eq(r.off, (CAP - 2) * SECT);
	cr_assert_eq(r.len, 1024);
	cr_assert_eq(r.niov, 1);
	cr_assert_eq(r.iov[0].iov_base, at(BUF + 0x1000, 1));
}

/* Framing is free: header split, header and data in one buffer, data and
 * status in one buffer. */
Test(blk_parse, any_layout)
{
	struct sg split[] = {
	    {BUF, 10, false}, {BUF + 0x100, 6 + 512, false}, {BUF + 0x8000, 1, true}};
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_OUT, .sector = 5};

	cr_assert_eq(gmem_write(g, BUF, &h, 10), 0);
	cr_assert_eq(gmem_write(g, BUF + 0x100, (uint8_t *)&h + 10, 6), 0);
	cr_assert_eq(parse(split, 3), 0);
	cr_assert_eq(r.op, BLK_OP_WRITE);
	cr_assert_eq(r.off, 5 * SECT);
	cr_assert_eq(r.niov, 1);
	cr_assert_eq(r.iov[0].iov_base, at(BUF + 0x106, 1));
	cr_assert_eq(r.iov[0].iov_len, 512);

	struct sg joined[] = {{BUF, 16, false}, {BUF + 0x1000, 512 + 1, true}};
	put_hdr(BUF, VIRTIO_BLK_T_IN, 0);
	cr_assert_eq(parse(joined, 2), 0);
	cr_assert_eq(r.op, BLK_OP_READ);
	cr_assert_eq(r.len, 512);
	cr_assert_eq(r.iov[0].iov_len, 512);
	cr_assert_eq(r.status_byte, byte_at(BUF + 0x1000 + 512));
}

Test(blk_parse, beyond_capacity_is_ioerr)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, CAP - 1, 1024, true), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_OUT, CAP, 512, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	/* sector * 512 and sector + n would wrap. */
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, UINT64_MAX, 512, true), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, UINT64_MAX >> 9, 512, true), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	/* The last sector exactly is fine. */
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, CAP - 1, 512, true), 0);
	cr_assert_eq(r.op, BLK_OP_READ);
}

Test(blk_parse, zero_length_read_is_ok_without_io)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, CAP, 0, true), 0);
	assert_answer(VIRTIO_BLK_S_OK);
}

Test(blk_parse, partial_sector_is_ioerr)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, 0, 511, true), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_OUT, 0, 513, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
}

Test(blk_parse, wrong_direction_is_ioerr)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, 0, 512, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_OUT, 0, 512, true), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_GET_ID, 0, 20, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 16, true), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
}

Test(blk_parse, no_status_byte_is_a_protocol_error)
{
	struct sg s[] = {{BUF, 16, false}, {BUF + 0x1000, 512, false}};

	put_hdr(BUF, VIRTIO_BLK_T_OUT, 0);
	cr_assert_eq(parse(s, 2), -EPROTO);
	cr_assert_null(r.status_byte);
}

Test(blk_parse, short_header_is_ioerr)
{
	struct sg s[] = {{BUF, 15, false}, {BUF + 0x8000, 1, true}};

	put_hdr(BUF, VIRTIO_BLK_T_IN, 0);
	cr_assert_eq(parse(s, 2), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(r.type, BLK_TYPE_NONE);

	struct sg none[] = {{BUF + 0x8000, 1, true}};
	cr_assert_eq(parse(none, 1), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
}

Test(blk_parse, read_only_refuses_writes)
{
	geom.read_only = true;
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_OUT, 0, 512, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	put_dwz(BUF + 0x1000, 0, 1, 0);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_IN, 0, 512, true), 0);
	cr_assert_eq(r.op, BLK_OP_READ);
}

Test(blk_parse, flush)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_FLUSH, 0, 0, false), 0);
	cr_assert_eq(r.op, BLK_OP_FLUSH);
	geom.flush = false;
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_FLUSH, 0, 0, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
}

Test(blk_parse, get_id)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_GET_ID, 0, 20, true), 0);
	cr_assert_eq(r.op, BLK_OP_GET_ID);
	cr_assert_eq(r.len, 20);
	cr_assert_eq(r.niov, 1);
	/* Longer buffers get 20 bytes, shorter ones what fits. */
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_GET_ID, 0, 512, true), 0);
	cr_assert_eq(r.len, 20);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_GET_ID, 0, 7, true), 0);
	cr_assert_eq(r.len, 7);
	cr_assert_eq(r.iov[0].iov_len, 7);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_GET_ID, 0, 0, true), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
}

Test(blk_parse, unknown_type_is_unsupp)
{
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_SCSI_CMD, 0, 0, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_SECURE_ERASE, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(parse_simple(0xdeadbeef, 0, 0, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(r.type, 0xdeadbeef);
}

Test(blk_parse, discard_and_write_zeroes)
{
	put_dwz(BUF + 0x1000, 8, 16, 0);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 16, false), 0);
	cr_assert_eq(r.op, BLK_OP_DISCARD);
	cr_assert_eq(r.off, 8 * SECT);
	cr_assert_eq(r.len, 16 * SECT);
	cr_assert_not(r.unmap);

	put_dwz(BUF + 0x1000, CAP - 1, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 0);
	cr_assert_eq(r.op, BLK_OP_WRITE_ZEROES);
	cr_assert_eq(r.off, (CAP - 1) * SECT);
	cr_assert_eq(r.len, SECT);
	cr_assert(r.unmap);

	/* No range at all: done. */
	put_dwz(BUF + 0x1000, 0, 0, 0);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_OK);
}

Test(blk_parse, discard_and_write_zeroes_errors)
{
	/* unmap on a discard, unknown flags: UNSUPP (5.2.6.2). */
	put_dwz(BUF + 0x1000, 0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
	put_dwz(BUF + 0x1000, 0, 1, 2);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
	/* Beyond capacity, wrapping, over the advertised maximum. */
	put_dwz(BUF + 0x1000, CAP - 1, 2, 0);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	put_dwz(BUF + 0x1000, UINT64_MAX, 1, 0);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	put_dwz(BUF + 0x1000, 0, 17, 0);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	/* Two ranges (max_discard_seg is 1), a partial one, none. */
	put_dwz(BUF + 0x1000, 0, 1, 0);
	put_dwz(BUF + 0x1010, 2, 1, 0);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 32, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 8, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_WRITE_ZEROES, 0, 0, false), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
	/* Not negotiated. */
	geom.discard = geom.write_zeroes = false;
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_DISCARD, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
}

Test(blk_parse, iov_fill_spans_and_stops)
{
	uint8_t a[3], b[10];
	struct iovec v[] = {{a, sizeof(a)}, {b, sizeof(b)}};

	cr_assert_eq(blk_iov_fill(v, 2, "abcdefgh", 8), 8);
	cr_assert_eq(memcmp(a, "abc", 3), 0);
	cr_assert_eq(memcmp(b, "defgh", 5), 0);
	cr_assert_eq(blk_iov_fill(v, 2, "0123456789abcdefghij", 20), 13);
}

/* ---- the device against a real image and event loop ------------------ */

static char path[] = "/tmp/flint-blk-XXXXXX";
static int img = -1; /* the test's own fd on the image */
static struct evloop *loop;
static struct blk *b;
static unsigned used_calls, resets;
static uint16_t want_used; /* stop the loop once used->idx reaches this */
static bool in_run;

static void host_used(void *t, unsigned qi)
{
	(void)t;
	cr_assert_eq(qi, 0);
	used_calls++;
	if (in_run && q.next_used == want_used)
		evloop_stop(loop);
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets++;
}

static const struct virtio_host host = {.used = host_used, .needs_reset = host_needs_reset};

/* An image of CAP sectors, sector i filled with byte i + 1. */
static void make_image(void)
{
	uint8_t sec[SECT];

	img = mkstemp(path);
	cr_assert_geq(img, 0);
	for (unsigned i = 0; i < CAP; i++) {
		memset(sec, i + 1, sizeof(sec));
		cr_assert_eq(pwrite(img, sec, sizeof(sec), (off_t)i * SECT), SECT);
	}
}

static void open_dev(bool ro, const char *id)
{
	struct blk_params p = {.path = path, .read_only = ro, .id = id, .loop = loop};

	cr_assert_eq(blk_create(&b, &p), 0);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
}

static void dev_setup(void)
{
	gmem_setup();
	make_image();
	cr_assert_eq(evloop_create(&loop, 64), 0);
	used_calls = resets = 0;
	in_run = false;
}

static void dev_teardown(void)
{
	evloop_destroy(loop);
	blk_destroy(b);
	b = NULL;
	close_fd(&img);
	unlink(path);
	gmem_teardown();
}

TestSuite(blk_dev, .init = dev_setup, .fini = dev_teardown, .timeout = 10);

/* Kick the device and run the loop until n chains have been used in all. */
static void kick_and_wait(uint16_t n)
{
	blk_ops.notify(b, 0);
	want_used = n;
	if (q.next_used == n)
		return;
	in_run = true;
	cr_assert_eq(evloop_run(loop), 0);
	in_run = false;
	cr_assert_eq(q.next_used, n, "used %u of %u", q.next_used, n);
}

static struct vring_used_elem used_elem(uint16_t i)
{
	return fake_used_elem(&ring, i);
}

/* Status byte at gpa, preset to a value no completion writes. */
static uint64_t status_at(uint64_t gpa)
{
	*byte_at(gpa) = 0xee;
	return gpa;
}

static uint16_t offer_rw(uint32_t type, uint64_t sector, uint64_t buf, uint32_t len, uint64_t st)
{
	uint64_t hdr = st - 0x100;
	struct sg s[] = {{hdr, 16, false}, {buf, len, type != VIRTIO_BLK_T_OUT}, {st, 1, true}};

	put_hdr(hdr, type, sector);
	return offer(s, 3);
}

static void offer_dwz(uint32_t type, uint64_t sector, uint32_t num, uint32_t flags, uint64_t st)
{
	uint64_t hdr = st - 0x100;
	struct sg s[] = {{hdr, 16, false}, {hdr + 16, 16, false}, {st, 1, true}};

	put_hdr(hdr, type, 0);
	put_dwz(hdr + 16, sector, num, flags);
	offer(s, 3);
}

Test(blk_dev, ops_and_config)
{
	struct virtio_blk_config c;
	uint8_t tail[8];
	uint64_t f;

	open_dev(false, NULL);
	cr_assert_eq(blk_ops.device_id, VIRTIO_ID_BLOCK);
	cr_assert_eq(blk_ops.num_queues, 1);
	cr_assert_eq(blk_ops.queue_max, 256);
	f = blk_ops.features(b);
	cr_assert(f & 1ull << VIRTIO_BLK_F_FLUSH);
	cr_assert(f & 1ull << VIRTIO_BLK_F_DISCARD);
	cr_assert(f & 1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	cr_assert_not(f & 1ull << VIRTIO_BLK_F_RO);
	blk_ops.config_read(b, 0, &c, sizeof(c));
	cr_assert_eq(c.capacity, CAP);
	cr_assert_eq(blk_capacity(b), CAP);
	cr_assert_eq(c.seg_max, 254);
	cr_assert_eq(c.size_max, BLK_SIZE_MAX);
	cr_assert_eq(c.blk_size, 512);
	cr_assert_eq(c.max_discard_seg, 1);
	cr_assert_eq(c.max_write_zeroes_seg, 1);
	cr_assert_eq(c.max_discard_sectors, BLK_MAX_DWZ_SECTORS);
	cr_assert_eq(c.write_zeroes_may_unmap, 1);
	/* A 2-byte read of seg_max, and reads past the end give zeros. */
	uint16_t seg;
	blk_ops.config_read(b, offsetof(struct virtio_blk_config, seg_max), &seg, 2);
	cr_assert_eq(seg, 254);
	memset(tail, 0xff, sizeof(tail));
	blk_ops.config_read(b, sizeof(c) - 4, tail, sizeof(tail));
	for (unsigned i = 4; i < sizeof(tail); i++)
		cr_assert_eq(tail[i], 0);
	blk_ops.config_read(b, 1ull << 40, tail, sizeof(tail));
	cr_assert_eq(tail[0], 0);
	blk_ops.config_write(b, 0, tail, 8); /* ignored */
	blk_ops.config_read(b, 0, &c, sizeof(c));
	cr_assert_eq(c.capacity, CAP);
}

Test(blk_dev, read_only_features)
{
	open_dev(true, NULL);
	uint64_t f = blk_ops.features(b);
	cr_assert(f & 1ull << VIRTIO_BLK_F_RO);
	cr_assert_not(f & 1ull << VIRTIO_BLK_F_DISCARD);
	cr_assert_not(f & 1ull << VIRTIO_BLK_F_WRITE_ZEROES);
}

Test(blk_dev, create_errors)
{
	struct blk_params p = {.path = "/nonexistent/flint.img", .loop = loop};

	cr_assert_eq(blk_create(&b, &p), -ENOENT);
	cr_assert_null(b);
	p.path = "/tmp";
	p.read_only = true;
	cr_assert_eq(blk_create(&b, &p), -EINVAL, "a directory is no disk");
	p.path = path;
	p.id = "123456789012345678901";
	cr_assert_eq(blk_create(&b, &p), -EINVAL, "21-byte id");
	blk_destroy(NULL);
}

Test(blk_dev, partial_last_sector_is_rounded_down)
{
	cr_assert_eq(ftruncate(img, CAP * SECT + 100), 0);
	open_dev(false, NULL);
	cr_assert_eq(blk_capacity(b), CAP);
}

Test(blk_dev, write_then_read_back)
{
	uint8_t *w = at(BUF, 1024), *rd = at(BUF + 0x1000, 1024);
	struct blk_stats st;

	open_dev(false, NULL);
	memset(w, 0x5a, 1024);
	uint16_t h1 = offer_rw(VIRTIO_BLK_T_OUT, 10, BUF, 1024, status_at(BUF + 0x9000));
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(used_elem(0).id, h1);
	cr_assert_eq(used_elem(0).len, 1);

	uint16_t h2 = offer_rw(VIRTIO_BLK_T_IN, 9, BUF + 0x1000, 1024, status_at(BUF + 0x9200));
	kick_and_wait(2);
	cr_assert_eq(*byte_at(BUF + 0x9200), VIRTIO_BLK_S_OK);
	cr_assert_eq(used_elem(1).id, h2);
	cr_assert_eq(used_elem(1).len, 1025);
	for (unsigned i = 0; i < 512; i++)
		cr_assert_eq(rd[i], 10, "sector 9 untouched");
	for (unsigned i = 512; i < 1024; i++)
		cr_assert_eq(rd[i], 0x5a);

	/* And it reached the file. */
	uint8_t f[512];
	cr_assert_eq(pread(img, f, sizeof(f), 11 * SECT), SECT);
	cr_assert_eq(f[0], 0x5a);
	cr_assert_eq(f[511], 0x5a);
	blk_get_stats(b, &st);
	cr_assert_eq(st.writes, 1);
	cr_assert_eq(st.reads, 1);
	cr_assert_eq(st.bytes_written, 1024);
	cr_assert_eq(st.bytes_read, 1024);
	cr_assert_eq(st.inflight, 0);
	/* Notifications are back on after the drain. */
	cr_assert_not(((struct vring_used *)at(USED, 4))->flags & VRING_USED_F_NO_NOTIFY);
}

Test(blk_dev, many_in_flight_complete_into_the_used_ring)
{
	enum { N = 12 };
	uint16_t heads[N];
	bool seen[N] = {false};
	struct blk_stats st;

	ring_start(64);
	open_dev(false, NULL);
	for (unsigned i = 0; i < N; i++) {
		if (i % 2)
			memset(at(BUF + i * 0x1000u, 512), 0xa0 + i, 512);
		heads[i] = offer_rw(i % 2 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, i,
				    BUF + i * 0x1000u, 512, status_at(BUF + 0x40000 + i * 0x200u));
	}
	kick_and_wait(N);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight_max, N, "all submitted before any completed");
	cr_assert_eq(st.inflight, 0);
	for (unsigned k = 0; k < N; k++) {
		struct vring_used_elem e = used_elem((uint16_t)k);
		unsigned i;

		for (i = 0; i < N && heads[i] != e.id; i++)
			;
		cr_assert_lt(i, N, "unknown head %u", e.id);
		cr_assert_not(seen[i], "head %u used twice", e.id);
		seen[i] = true;
		cr_assert_eq(e.len, i % 2 ? 1 : 513);
		cr_assert_eq(*byte_at(BUF + 0x40000 + i * 0x200u), VIRTIO_BLK_S_OK);
		if (i % 2 == 0)
			cr_assert_eq(*byte_at(BUF + i * 0x1000u + 100), i + 1);
	}
}

Test(blk_dev, flush)
{
	open_dev(false, NULL);
	struct sg s[] = {{BUF, 16, false}, {status_at(BUF + 0x100), 1, true}};
	put_hdr(BUF, VIRTIO_BLK_T_FLUSH, 0);
	offer(s, 2);
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x100), VIRTIO_BLK_S_OK);
	cr_assert_eq(used_elem(0).len, 1);
}

/* Without FLUSH negotiated every write is made stable before completion. */
Test(blk_dev, write_without_flush_negotiated)
{
	struct blk_params p = {.path = path, .loop = loop};

	cr_assert_eq(blk_create(&b, &p), 0);
	cr_assert_eq(blk_ops.activate(b, 0, &q, &host), 0);
	memset(at(BUF, 512), 0x77, 512);
	offer_rw(VIRTIO_BLK_T_OUT, 0, BUF, 512, status_at(BUF + 0x9000));
	struct sg s[] = {{BUF + 0x100, 16, false}, {status_at(BUF + 0x200), 1, true}};
	put_hdr(BUF + 0x100, VIRTIO_BLK_T_FLUSH, 0);
	offer(s, 2);
	kick_and_wait(2);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(*byte_at(BUF + 0x200), VIRTIO_BLK_S_UNSUPP);
}

/* A big allocated range, then a discard of most of it: blocks go back. */
Test(blk_dev, discard_frees_space)
{
	enum { BIG = 2048 }; /* 1 MiB */
	static uint8_t data[BIG * SECT];
	struct stat before, after;

	memset(data, 0x33, sizeof(data));
	cr_assert_eq(pwrite(img, data, sizeof(data), 0), (ssize_t)sizeof(data));
	cr_assert_eq(fsync(img), 0);
	cr_assert_eq(fstat(img, &before), 0);
	open_dev(false, NULL);
	cr_assert_eq(blk_capacity(b), BIG);
	offer_dwz(VIRTIO_BLK_T_DISCARD, 8, BIG - 16, 0, status_at(BUF + 0x9000));
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(fstat(img, &after), 0);
	cr_assert_eq(after.st_size, before.st_size, "KEEP_SIZE");
	cr_assert_lt(after.st_blocks, before.st_blocks / 2, "blocks %ld -> %ld",
		     (long)before.st_blocks, (long)after.st_blocks);
	/* The edges were not discarded. */
	uint8_t edge[SECT];
	cr_assert_eq(pread(img, edge, SECT, 7 * SECT), SECT);
	cr_assert_eq(edge[0], 0x33);
}

Test(blk_dev, write_zeroes_reads_back_zeros)
{
	uint8_t f[3 * SECT];

	open_dev(false, NULL);
	offer_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 4, 2, 0, status_at(BUF + 0x9000));
	offer_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 20, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
		  status_at(BUF + 0x9400));
	kick_and_wait(2);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(*byte_at(BUF + 0x9400), VIRTIO_BLK_S_OK);
	cr_assert_eq(pread(img, f, sizeof(f), 4 * SECT), (ssize_t)sizeof(f));
	for (unsigned i = 0; i < 2 * SECT; i++)
		cr_assert_eq(f[i], 0);
	cr_assert_eq(f[2 * SECT], 7, "sector 6 untouched");
	cr_assert_eq(pread(img, f, SECT, 20 * SECT), SECT);
	for (unsigned i = 0; i < SECT; i++)
		cr_assert_eq(f[i], 0);
	/* Through the queue as well. */
	offer_rw(VIRTIO_BLK_T_IN, 4, BUF, 1024, status_at(BUF + 0x9800));
	memset(at(BUF, 1024), 0xff, 1024);
	kick_and_wait(3);
	cr_assert_eq(*byte_at(BUF + 0x9800), VIRTIO_BLK_S_OK);
	cr_assert_eq(*byte_at(BUF + 1023), 0);
}

Test(blk_dev, read_only_drive_leaves_the_image_alone)
{
	struct stat before, after;
	uint8_t f[SECT];
	struct blk_stats st;

	cr_assert_eq(fstat(img, &before), 0);
	open_dev(true, NULL);
	memset(at(BUF, 512), 0x99, 512);
	offer_rw(VIRTIO_BLK_T_OUT, 0, BUF, 512, status_at(BUF + 0x9000));
	offer_dwz(VIRTIO_BLK_T_DISCARD, 0, 8, 0, status_at(BUF + 0x9400));
	offer_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0, status_at(BUF + 0x9800));
	kick_and_wait(3);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(*byte_at(BUF + 0x9400), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(*byte_at(BUF + 0x9800), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(pread(img, f, SECT, 0), SECT);
	cr_assert_eq(f[0], 1);
	cr_assert_eq(fstat(img, &after), 0);
	cr_assert_eq(after.st_blocks, before.st_blocks);
	cr_assert_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	blk_get_stats(b, &st);
	cr_assert_eq(st.io_errors, 3);
}

Test(blk_dev, get_id)
{
	open_dev(false, "flint-disk-0");
	memset(at(BUF + 0x1000, 32), 0xff, 32);
	offer_rw(VIRTIO_BLK_T_GET_ID, 0, BUF + 0x1000, 32, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_GET_ID, 0, BUF + 0x2000, 5, status_at(BUF + 0x9400));
	kick_and_wait(2);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(memcmp(at(BUF + 0x1000, 20), "flint-disk-0\0\0\0\0\0\0\0\0", 20), 0);
	cr_assert_eq(*byte_at(BUF + 0x1000 + 20), 0xff, "nothing past 20 bytes");
	cr_assert_eq(used_elem(0).len, 21);
	cr_assert_eq(memcmp(at(BUF + 0x2000, 5), "flint", 5), 0);
	cr_assert_eq(used_elem(1).len, 6);
}

Test(blk_dev, unknown_type_and_bad_requests_are_answered)
{
	struct blk_stats st;

	open_dev(false, NULL);
	struct sg s[] = {{BUF, 16, false}, {status_at(BUF + 0x100), 1, true}};
	put_hdr(BUF, 99, 0);
	offer(s, 2);
	offer_rw(VIRTIO_BLK_T_IN, CAP, BUF + 0x1000, 512, status_at(BUF + 0x9000));
	kick_and_wait(2);
	cr_assert_eq(*byte_at(BUF + 0x100), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(used_elem(1).len, 1);
	cr_assert_eq(resets, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.unsupported, 1);
	cr_assert_eq(st.io_errors, 1);
}

Test(blk_dev, chain_without_status_needs_reset)
{
	struct blk_stats st;

	open_dev(false, NULL);
	struct sg s[] = {{BUF, 16, false}, {BUF + 0x1000, 512, false}};
	put_hdr(BUF, VIRTIO_BLK_T_OUT, 0);
	uint16_t h = offer(s, 2);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF + 0x2000, 512, status_at(BUF + 0x9000));
	blk_ops.notify(b, 0);
	cr_assert_eq(resets, 1);
	cr_assert_eq(q.next_used, 1, "given back, and nothing more popped");
	cr_assert_eq(used_elem(0).id, h);
	cr_assert_eq(used_elem(0).len, 0);
	cr_assert_eq(*byte_at(BUF + 0x9000), 0xee);
	blk_ops.notify(b, 0);
	cr_assert_eq(q.next_used, 1);
	blk_get_stats(b, &st);
	cr_assert_eq(st.protocol_errors, 1);
}

Test(blk_dev, broken_chain_needs_reset)
{
	open_dev(false, NULL);
	struct sg s[] = {{RAM - 8, 16, false}, {BUF, 1, true}}; /* leaves RAM */
	offer(s, 2);
	blk_ops.notify(b, 0);
	cr_assert_eq(resets, 1);
	cr_assert_eq(q.next_used, 0);
}

/* I/O in flight at a reset finishes into nothing: no status, no used entry;
 * a new generation works meanwhile. */
Test(blk_dev, reset_with_io_in_flight)
{
	struct blk_stats st;

	open_dev(false, NULL);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, 512, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_OUT, 1, BUF + 0x1000, 512, status_at(BUF + 0x9400));
	blk_ops.notify(b, 0); /* submitted, not yet run */
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 2);
	blk_ops.reset(b);
	ring_start(16); /* what the transport does after ops->reset */
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	uint16_t h = offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x2000, 512, status_at(BUF + 0x9800));
	kick_and_wait(1);
	/* The loop waited for every op before returning. */
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.stale_completions, 2);
	cr_assert_eq(q.next_used, 1);
	cr_assert_eq(used_elem(0).id, h);
	cr_assert_eq(*byte_at(BUF + 0x9800), VIRTIO_BLK_S_OK);
	cr_assert_eq(*byte_at(BUF + 0x9000), 0xee);
	cr_assert_eq(*byte_at(BUF + 0x9400), 0xee);
}

/* A read of one sector as a single INDIRECT descriptor (so a 256-entry
 * table holds 256 requests): header, then data and status in one buffer.
 * Request i uses table ITAB + 32 i and buffer IBUF + 1 KiB i; its status
 * byte is at ind_status(i). */
#define ITAB 0x8000
#define IBUF 0x100000

static uint64_t ind_status(unsigned i)
{
	return IBUF + 0x400u * i + 0x100 + SECT;
}

static void offer_indirect_read(unsigned i, uint64_t sector)
{
	uint64_t hdr = IBUF + 0x400u * i;
	struct vring_desc *t = at(ITAB + 32u * i, 32);
	struct sg s = {ITAB + 32u * i, 32, false};

	put_hdr(hdr, VIRTIO_BLK_T_IN, sector);
	t[0] = (struct vring_desc){.addr = hdr, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 1};
	t[1] =
	    (struct vring_desc){.addr = hdr + 0x100, .len = SECT + 1, .flags = VRING_DESC_F_WRITE};
	status_at(ind_status(i));
	offer(&s, 1);
	struct vring_desc *d = at(DESC + 16u * ((ring.next_desc + q.size - 1) % q.size), 16);
	d->flags = VRING_DESC_F_INDIRECT;
}

/* After a reset with most of the pool still at the host, the new generation
 * runs out of slots, waits, and resumes as the old I/O frees them. */
Test(blk_dev, pool_exhaustion_resumes)
{
	enum { OLD = 200, NEW = 100 };
	struct blk_stats st;

	ring_start(256);
	open_dev(false, NULL);
	for (unsigned i = 0; i < OLD; i++)
		offer_indirect_read(i, i % CAP);
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, OLD);
	blk_ops.reset(b);
	ring_start(256);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	for (unsigned i = 0; i < NEW; i++)
		offer_indirect_read(OLD + i, i % CAP);
	kick_and_wait(NEW);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight_max, BLK_QUEUE_MAX);
	cr_assert_eq(st.inflight, 0);
	for (unsigned i = 0; i < NEW; i++) {
		cr_assert_eq(*byte_at(ind_status(OLD + i)), VIRTIO_BLK_S_OK);
		cr_assert_eq(*byte_at(IBUF + 0x400u * (OLD + i) + 0x100), i % CAP + 1);
	}
	for (unsigned i = 0; i < OLD; i++)
		cr_assert_eq(*byte_at(ind_status(i)), 0xee);
}

/* O_DIRECT: guest pages are page aligned, so I/O goes straight through. */
Test(blk_dev, direct_io)
{
	struct blk_params p = {.path = path, .direct = true, .loop = loop};
	struct virtio_blk_config c;
	int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);

	if (fd < 0 && errno == EINVAL)
		cr_skip_test("no O_DIRECT on the file system of %s", path);
	close_fd(&fd);
	cr_assert_eq(blk_create(&b, &p), 0);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	blk_ops.config_read(b, 0, &c, sizeof(c));
	cr_assert(c.blk_size == 512 || c.blk_size == 4096, "blk_size %u", c.blk_size);
	memset(at(BUF, 4096), 0x42, 4096);
	offer_rw(VIRTIO_BLK_T_OUT, 8, BUF, 4096, status_at(BUF + 0x9000));
	kick_and_wait(1);
	offer_rw(VIRTIO_BLK_T_IN, 8, BUF + 0x2000, 4096, status_at(BUF + 0x9400));
	kick_and_wait(2);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(*byte_at(BUF + 0x9400), VIRTIO_BLK_S_OK);
	cr_assert_eq(memcmp(at(BUF, 4096), at(BUF + 0x2000, 4096), 4096), 0);
}
