/* virtio-blk: the parser against chains popped from a real vq in a fake guest
 * memory, and the whole device (front end + engine) against a temporary
 * image file and a real event loop run in the test thread. The helpers play
 * the guest driver: they lay out descriptors and offer chains. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/time_types.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk/blk.h"
#include "blk/blk_req.h"
#include "blk/blk_ring.h"
#include "blk/blk_ring_test.h"
#include "config/vm_config.h"
#include "core/device_kinds.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/seccomp.h"
#include "core/wire.h"
#include "fake_driver.h"
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
	/* A read-only drive has nothing to make stable: OK, no I/O (an
	 * fdatasync would still flush the host disk's cache). */
	geom.read_only = true;
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_FLUSH, 0, 0, false), 0);
	assert_answer(VIRTIO_BLK_S_OK);
	geom.flush = false;
	cr_assert_eq(parse_simple(VIRTIO_BLK_T_FLUSH, 0, 0, false), 0);
	assert_answer(VIRTIO_BLK_S_UNSUPP);
}

/* A chain may name one guest buffer again and again: a request's data is
 * held to what seg_max and size_max let a driver send (max_rw_bytes), or a
 * little RAM would make a read of 4 GiB. */
Test(blk_parse, data_over_max_rw_bytes_is_ioerr)
{
	struct sg s[] = {{BUF, 16, false},
			 {BUF + 0x1000, 4096, true},
			 {BUF + 0x1000, 4096, true},
			 {BUF + 0x8000, 1, true}};

	geom.max_rw_bytes = 8192;
	put_hdr(BUF, VIRTIO_BLK_T_IN, 0);
	cr_assert_eq(parse(s, 4), 0);
	cr_assert_eq(r.op, BLK_OP_READ);
	geom.max_rw_bytes = 4096;
	cr_assert_eq(parse(s, 4), 0);
	assert_answer(VIRTIO_BLK_S_IOERR);
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

/* ---- the drive's own ring -------------------------------------------- */

struct ring_probe {
	struct blk_ring_op op;
	struct blk_ring *r;
	int res, calls, requeue; /* requeue: what queueing again returned */
	int fd;
	struct iovec iov;
};

static void probe_done(struct blk_ring_op *op, int res)
{
	struct ring_probe *p = container_of(op, struct ring_probe, op);

	p->res = res;
	p->calls++;
	p->requeue = blk_ring_readv(p->r, &p->op, p->fd, &p->iov, 1, 0);
}

/* Two reads waiting on an empty pipe, in a ring of depth 2: a third is
 * refused; the drain cancels both, runs their handlers, refuses what they
 * queue, and leaves nothing in flight. */
Test(blk_ring, drain_cancels_and_waits)
{
	struct blk_ring *br;
	struct ring_probe p[3];
	uint8_t buf[3][16];
	int fds[2];

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	cr_assert_eq(blk_ring_create(&br, 2), 0);
	cr_assert_eq(blk_ring_drain(br), 0, "nothing to drain");
	for (int i = 0; i < 3; i++)
		p[i] = (struct ring_probe){.op = {.done = probe_done},
					   .r = br,
					   .fd = fds[0],
					   .iov = {buf[i], sizeof(buf[i])}};
	cr_assert_eq(blk_ring_readv(br, &p[0].op, fds[0], &p[0].iov, 1, 0), 0);
	cr_assert_eq(blk_ring_readv(br, &p[0].op, fds[0], &p[0].iov, 1, 0), -EBUSY, "op pending");
	cr_assert_eq(blk_ring_readv(br, &p[1].op, fds[0], &p[1].iov, 1, 0), 0);
	cr_assert_eq(blk_ring_readv(br, &p[2].op, fds[0], &p[2].iov, 1, 0), -EBUSY, "depth");
	cr_assert_eq(blk_ring_submit(br), 0);
	cr_assert_eq(blk_ring_reap(br), 0);
	cr_assert_eq(blk_ring_pending(br), 2);
	cr_assert_eq(blk_ring_drain(br), 0);
	cr_assert_eq(blk_ring_pending(br), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(p[i].calls, 1);
		cr_assert_eq(p[i].res, -ECANCELED);
		cr_assert_eq(p[i].requeue, -ESHUTDOWN);
	}
	/* Data now comes, and nobody reads it. */
	cr_assert_eq(write(fds[1], "late", 4), 4);
	cr_assert_eq(read(fds[0], buf[2], sizeof(buf[2])), 4);
	blk_ring_destroy(br);
	blk_ring_destroy(NULL);
	close_fd(&fds[0]);
	close_fd(&fds[1]);
}

/* A completion waits for reap; the ring's fd is readable meanwhile. */
Test(blk_ring, reap_runs_completions)
{
	struct blk_ring *br;
	struct ring_probe p;
	uint8_t buf[16];
	int fds[2];
	struct pollfd pfd;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	cr_assert_eq(blk_ring_create(&br, 4), 0);
	p = (struct ring_probe){
	    .op = {.done = probe_done}, .r = br, .fd = fds[0], .iov = {buf, sizeof(buf)}};
	cr_assert_eq(write(fds[1], "abc", 3), 3);
	cr_assert_eq(blk_ring_readv(br, &p.op, fds[0], &p.iov, 1, 0), 0);
	cr_assert_eq(blk_ring_submit(br), 0);
	pfd = (struct pollfd){.fd = blk_ring_fd(br), .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 5000), 1);
	cr_assert_eq(blk_ring_reap(br), 1);
	cr_assert_eq(p.res, 3);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	cr_assert_eq(p.requeue, 0, "queued again from its handler");
	cr_assert_eq(blk_ring_pending(br), 1);
	blk_ring_destroy(br); /* drains the second read */
	cr_assert_eq(p.calls, 2);
	cr_assert_eq(p.res, -ECANCELED);
	close_fd(&fds[0]);
	close_fd(&fds[1]);
}

/* ---- the device against a real image and event loop ------------------ */

static char path[] = "/tmp/flint-blk-XXXXXX";
static int img = -1; /* the test's own fd on the image */
static struct evloop *loop;
static struct blk *b;
static unsigned used_calls, resets, again_calls;
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

static void host_again(void *t, unsigned qi)
{
	(void)t;
	cr_assert_eq(qi, 0);
	again_calls++;
}

static const struct virtio_host host = {
    .used = host_used, .needs_reset = host_needs_reset, .again = host_again};

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
	used_calls = resets = again_calls = 0;
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

/* A FIFO named as an image (by a PATCH, say) is refused at once: the open
 * must not wait for a writer, which would hang the control thread. */
Test(blk_dev, a_fifo_is_refused_without_blocking)
{
	char fifo[] = "/tmp/flint-blk-fifo.XXXXXX";
	struct blk *f = NULL;

	cr_assert_not_null(mkdtemp(fifo));
	char p[64];
	snprintf(p, sizeof(p), "%s/f", fifo);
	cr_assert_eq(mkfifo(p, 0600), 0);
	for (int ro = 0; ro < 2; ro++) {
		struct blk_params bp = {.path = p, .read_only = ro, .loop = loop};
		cr_assert_eq(blk_create(&f, &bp), -EINVAL, "read_only %d", ro);
		cr_assert_null(f);
	}
	unlink(p);
	rmdir(fifo);
}

/* cache_type "Unsafe" (Firecracker's default for an API drive): no
 * VIRTIO_BLK_F_FLUSH, so the guest sends none, and writes are not made
 * stable either (each was synced: the guest's writes as slow as
 * write-through, the opposite of what Unsafe asks); "Writeback" offers it. */
Test(blk_dev, unsafe_cache_offers_no_flush_and_syncs_nothing)
{
	struct blk_params p = {.path = path, .loop = loop, .no_flush = true};
	struct blk_stats st;

	cr_assert_eq(blk_create(&b, &p), 0);
	cr_assert_not(blk_ops.features(b) & 1ull << VIRTIO_BLK_F_FLUSH);
	cr_assert(blk_ops.features(b) & 1ull << VIRTIO_BLK_F_DISCARD);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	offer_rw(VIRTIO_BLK_T_OUT, 0, BUF, 512, status_at(BUF + 0x9000));
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	blk_get_stats(b, &st);
	cr_assert_eq(st.writes, 1);
	cr_assert_eq(st.write_syncs, 0);
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
	struct blk_stats st;
	blk_get_stats(b, &st);
	cr_assert_eq(st.write_syncs, 1);
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

/* A drive that keeps its blocks (flint run's reserved scratch disk):
 * no discard offered, a discard answered UNSUPP, and a write-zeroes that
 * allows unmapping zeroes without giving the blocks back. */
Test(blk_dev, keep_blocks_gives_none_back)
{
	enum { BIG = 2048 }; /* 1 MiB */
	static uint8_t data[BIG * SECT];
	struct blk_params p = {.path = path, .loop = loop, .keep_blocks = true};
	struct virtio_blk_config c;
	struct stat before, after;
	uint8_t f[SECT];
	uint64_t feat;

	memset(data, 0x33, sizeof(data));
	cr_assert_eq(pwrite(img, data, sizeof(data), 0), (ssize_t)sizeof(data));
	cr_assert_eq(fsync(img), 0);
	cr_assert_eq(fstat(img, &before), 0);
	cr_assert_eq(blk_create(&b, &p), 0);
	feat = blk_ops.features(b);
	cr_assert_not(feat & 1ull << VIRTIO_BLK_F_DISCARD);
	cr_assert(feat & 1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	blk_ops.config_read(b, 0, &c, sizeof(c));
	cr_assert_eq(c.write_zeroes_may_unmap, 0);
	cr_assert_eq(c.max_discard_sectors, 0);
	cr_assert_eq(blk_ops.activate(b, feat, &q, &host), 0);
	offer_dwz(VIRTIO_BLK_T_DISCARD, 8, BIG - 16, 0, status_at(BUF + 0x9000));
	offer_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 8, BIG - 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
		  status_at(BUF + 0x9400));
	kick_and_wait(2);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(*byte_at(BUF + 0x9400), VIRTIO_BLK_S_OK);
	cr_assert_eq(pread(img, f, SECT, 100 * SECT), SECT);
	cr_assert_eq(f[0], 0, "zeroed");
	cr_assert_eq(fstat(img, &after), 0);
	cr_assert_geq(after.st_blocks, before.st_blocks, "blocks %ld -> %ld",
		      (long)before.st_blocks, (long)after.st_blocks);
}

/* The same on tmpfs, which has no ZERO_RANGE: the hole a write-zeroes
 * punches there is allocated again. */
Test(blk_dev, keep_blocks_on_tmpfs)
{
	enum { BIG = 256 };
	static uint8_t data[BIG * SECT];
	char shm[] = "/dev/shm/flint-blk-keep-XXXXXX";
	struct blk_params p = {.path = shm, .loop = loop, .keep_blocks = true};
	struct stat before, after;
	uint8_t f[SECT];
	int fd = mkstemp(shm);

	if (fd < 0)
		cr_skip_test("no /dev/shm");
	memset(data, 0x44, sizeof(data));
	cr_assert_eq(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	cr_assert_eq(fstat(fd, &before), 0);
	cr_assert_eq(blk_create(&b, &p), 0);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	offer_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 8, BIG - 16, 0, status_at(BUF + 0x9000));
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(pread(fd, f, SECT, 100 * SECT), SECT);
	cr_assert_eq(f[0], 0, "zeroed");
	cr_assert_eq(pread(fd, f, SECT, 7 * SECT), SECT);
	cr_assert_eq(f[0], 0x44, "the edge untouched");
	cr_assert_eq(fstat(fd, &after), 0);
	cr_assert_geq(after.st_blocks, before.st_blocks, "blocks %ld -> %ld",
		      (long)before.st_blocks, (long)after.st_blocks);
	close(fd);
	unlink(shm);
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

/* I/O in flight at a reset is over when reset returns and finishes into
 * nothing: no status, no used entry, no byte of guest memory; a new
 * generation works meanwhile. */
Test(blk_dev, reset_with_io_in_flight)
{
	struct blk_stats st;

	open_dev(false, NULL);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, 512, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_OUT, 1, BUF + 0x1000, 512, status_at(BUF + 0x9400));
	blk_ops.notify(b, 0); /* submitted, not reaped */
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 2);
	blk_ops.reset(b);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0, "reset returned with I/O in flight");
	cr_assert_eq(st.stale_completions, 2);
	/* The guest has its memory back and uses it. */
	memset(at(BUF, 0x2000), 0x11, 0x2000);
	ring_start(16); /* what the transport does after ops->reset */
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	uint16_t h = offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x2000, 512, status_at(BUF + 0x9800));
	kick_and_wait(1);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.stale_completions, 2);
	cr_assert_eq(q.next_used, 1);
	cr_assert_eq(used_elem(0).id, h);
	cr_assert_eq(*byte_at(BUF + 0x9800), VIRTIO_BLK_S_OK);
	cr_assert_eq(*byte_at(BUF + 0x2000), 3);
	cr_assert_eq(*byte_at(BUF + 0x9000), 0xee);
	cr_assert_eq(*byte_at(BUF + 0x9400), 0xee);
	for (unsigned i = 0; i < 0x2000; i++)
		cr_assert_eq(*byte_at(BUF + i), 0x11, "byte %#x changed after the reset", i);
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

static void offer_indirect(unsigned i, uint32_t type, uint64_t sector)
{
	uint64_t hdr = IBUF + 0x400u * i;
	struct vring_desc *t = at(ITAB + 32u * i, 32);
	struct sg s = {ITAB + 32u * i, 32, false};

	put_hdr(hdr, type, sector);
	t[0] = (struct vring_desc){.addr = hdr, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 1};
	t[1] =
	    (struct vring_desc){.addr = hdr + 0x100, .len = SECT + 1, .flags = VRING_DESC_F_WRITE};
	status_at(ind_status(i));
	offer(&s, 1);
	struct vring_desc *d = at(DESC + 16u * ((ring.next_desc + q.size - 1) % q.size), 16);
	d->flags = VRING_DESC_F_INDIRECT;
}

static void offer_indirect_read(unsigned i, uint64_t sector)
{
	offer_indirect(i, VIRTIO_BLK_T_IN, sector);
}

/* A driver that offers more chains than the pool holds (reusing
 * descriptors the device still has): the device stops popping when the
 * pool is empty and resumes as completions free slots. */
Test(blk_dev, pool_exhaustion_resumes)
{
	enum { MORE = 100, ALL = BLK_QUEUE_MAX + MORE };
	struct blk_stats st;

	ring_start(256);
	open_dev(false, NULL);
	for (unsigned i = 0; i < BLK_QUEUE_MAX; i++)
		offer_indirect_read(i, i % CAP);
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, BLK_QUEUE_MAX);
	for (unsigned i = BLK_QUEUE_MAX; i < ALL; i++)
		offer_indirect_read(i, i % CAP);
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.reads, BLK_QUEUE_MAX, "popped with no slot free");
	kick_and_wait(ALL);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight_max, BLK_QUEUE_MAX);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.reads, ALL);
	for (unsigned i = 0; i < ALL; i++) {
		cr_assert_eq(*byte_at(ind_status(i)), VIRTIO_BLK_S_OK);
		cr_assert_eq(*byte_at(IBUF + 0x400u * i + 0x100), i % CAP + 1);
	}
}

/* Requests answered at once (an unknown type) give their slot back at
 * once, so the pool never stops the device: a notification takes at most
 * VIRTIO_BUDGET of them, a full queue of the largest size, and asks to be
 * notified again rather than look for more (a driver adding requests as
 * fast as they are answered would hold the loop thread and the device's
 * lock); that notification takes what came since. The largest queue holds
 * VIRTIO_BUDGET chains, so the budget runs out as the queue empties: the
 * device asks again without looking, as it does with chains waiting. */
Test(blk_dev, a_notification_takes_at_most_the_budget)
{
	struct blk_stats st;

	ring_start(BLK_QUEUE_MAX);
	open_dev(false, NULL);
	/* One descriptor each (indirect): no chain reuses another's. */
	for (unsigned i = 0; i < BLK_QUEUE_MAX; i++)
		offer_indirect(i, 99, 0);
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.unsupported, VIRTIO_BUDGET);
	cr_assert_eq(again_calls, 1);
	for (unsigned i = 0; i < BLK_QUEUE_MAX; i++)
		cr_assert_eq(*byte_at(ind_status(i)), VIRTIO_BLK_S_UNSUPP);
	offer_indirect(0, 99, 0); /* its first chain was used: free again */
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.unsupported, VIRTIO_BUDGET + 1);
	cr_assert_eq(again_calls, 1);
	cr_assert_eq(q.next_used, (uint16_t)(VIRTIO_BUDGET + 1));
	cr_assert_eq(resets, 0);
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

/* ---- reset with I/O under way: guest memory is the guest's again -------- */

/* Descriptors on the image besides img: the device's; *last the last. */
static unsigned device_image_fds(int *last)
{
	DIR *d = opendir("/proc/self/fd");
	char link[64], target[PATH_MAX];
	struct dirent *e;
	unsigned n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		ssize_t len;

		if (e->d_name[0] == '.' || fd == img || fd == dirfd(d))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		if (strcmp(target, path) == 0) {
			*last = fd;
			n++;
		}
	}
	closedir(d);
	return n;
}

/* The device's own fd on the image: the one on path that is not img. */
static int device_image_fd(void)
{
	int fd = -1;
	unsigned n = device_image_fds(&fd);

	cr_assert_eq(n, 1, "%u descriptors on the image besides the test's", n);
	return fd;
}

/* Put fd (a pipe end whose other end the test holds) where the device's
 * image descriptor was: its reads and writes then wait on the test, so they
 * are certainly under way when the test resets the device. */
static void image_becomes(int fd)
{
	cr_assert_geq(dup2(fd, device_image_fd()), 0);
}

static void stop_loop(struct ev_op *op, int res)
{
	(void)op, (void)res;
	evloop_stop(loop);
}

/* Run the loop for ms milliseconds: anything it still has to submit or
 * complete happens now. */
static void run_for_ms(unsigned ms)
{
	static struct __kernel_timespec ts;
	static struct ev_op timer;

	ts = (struct __kernel_timespec){.tv_nsec = ms * 1000000L};
	timer = (struct ev_op){.done = stop_loop};
	cr_assert_eq(evloop_timeout(loop, &timer, &ts), 0);
	cr_assert_eq(evloop_run(loop), 0);
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	cr_assert_geq(fl, 0);
	cr_assert_eq(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), 0);
}

/* Bytes waiting in the pipe read end fd, read and dropped. */
static size_t drain_pipe(int fd)
{
	uint8_t junk[4096];
	size_t total = 0;
	ssize_t n;

	set_nonblock(fd, true);
	while ((n = read(fd, junk, sizeof(junk))) > 0)
		total += (size_t)n;
	cr_assert(n == 0 || errno == EAGAIN, "read: %s", strerror(errno));
	set_nonblock(fd, false);
	return total;
}

static bool all_bytes(uint64_t gpa, size_t len, uint8_t v)
{
	const uint8_t *p = at(gpa, len);

	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

static int rpipe[2] = {-1, -1};

/* A 512-byte read into BUF from an image that is an empty pipe: submitted,
 * waiting for data. */
static void read_waiting_on_a_pipe(void)
{
	struct blk_stats st;

	open_dev(false, NULL);
	cr_assert_eq(pipe2(rpipe, O_CLOEXEC), 0);
	image_becomes(rpipe[0]);
	memset(at(BUF, SECT), 0xee, SECT);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, SECT, status_at(BUF + 0x9000));
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 1);
}

/* After the reset the guest reuses BUF; data then reaches the image and
 * the loop runs: BUF keeps what the guest put there, and the data stays in
 * the pipe, unread. */
static void late_data_stays_out_of_guest_memory(void)
{
	struct blk_stats st;
	uint8_t data[SECT];

	memset(at(BUF, SECT), 0x11, SECT);
	memset(data, 0x5a, sizeof(data));
	cr_assert_eq(write(rpipe[1], data, sizeof(data)), SECT);
	run_for_ms(50);
	cr_assert(all_bytes(BUF, SECT, 0x11), "a read landed in guest memory after the reset");
	cr_assert_eq(*byte_at(BUF + 0x9000), 0xee, "a status after the reset");
	cr_assert_eq(q.next_used, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.stale_completions, 1);
	cr_assert_eq(drain_pipe(rpipe[0]), SECT, "the read ran after the reset");
	close_fd(&rpipe[0]);
	close_fd(&rpipe[1]);
}

Test(blk_dev, reset_ends_a_read_in_flight)
{
	read_waiting_on_a_pipe();
	blk_ops.reset(b);
	late_data_stays_out_of_guest_memory();
}

/* A write waiting for room in a full pipe: after the reset the guest
 * rewrites the buffer and the pipe empties; nothing of the buffer, old or
 * new, reaches the image. */
Test(blk_dev, reset_ends_a_write_in_flight)
{
	int p[2];
	uint8_t fill[4096], got[SECT];
	struct blk_stats st;

	open_dev(false, NULL);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	set_nonblock(p[1], true);
	memset(fill, 0x77, sizeof(fill));
	while (write(p[1], fill, sizeof(fill)) > 0)
		;
	cr_assert_eq(errno, EAGAIN);
	set_nonblock(p[1], false); /* the device's descriptor shares the flag */
	image_becomes(p[1]);
	memset(at(BUF, SECT), 0x11, SECT);
	offer_rw(VIRTIO_BLK_T_OUT, 0, BUF, SECT, status_at(BUF + 0x9000));
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 1);
	blk_ops.reset(b);
	memset(at(BUF, SECT), 0x22, SECT);
	cr_assert_gt(drain_pipe(p[0]), 0);
	run_for_ms(50);
	set_nonblock(p[0], true);
	cr_assert_eq(read(p[0], got, sizeof(got)), -1,
		     "a write read guest memory after the reset (byte %#x)", got[0]);
	cr_assert_eq(errno, EAGAIN);
	cr_assert_eq(*byte_at(BUF + 0x9000), 0xee);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	close_fd(&p[0]);
	close_fd(&p[1]);
}

/* The deadlock the design avoids: the transport resets under its dev_lock
 * on a vCPU thread while the loop thread, which submitted the I/O, waits
 * for that lock. Here the test thread submits and then blocks on
 * dev_lock; another thread resets holding it. The reset must finish
 * without the test thread doing anything (the suite's timeout catches a
 * hang). */
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static bool dev_lock_held;

static void *reset_under_dev_lock(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&dev_lock);
	__atomic_store_n(&dev_lock_held, true, __ATOMIC_RELEASE);
	usleep(20000); /* let the test thread block on dev_lock */
	blk_ops.reset(b);
	pthread_mutex_unlock(&dev_lock);
	return NULL;
}

Test(blk_dev, reset_on_a_vcpu_thread_needs_nothing_of_the_loop_thread)
{
	pthread_t t;

	read_waiting_on_a_pipe();
	cr_assert_eq(pthread_create(&t, NULL, reset_under_dev_lock, NULL), 0);
	while (!__atomic_load_n(&dev_lock_held, __ATOMIC_ACQUIRE))
		usleep(1000);
	pthread_mutex_lock(&dev_lock); /* as the loop thread on a notification */
	pthread_mutex_unlock(&dev_lock);
	cr_assert_eq(pthread_join(t, NULL), 0);
	late_data_stays_out_of_guest_memory();
}

/* The wait happens on a vCPU thread in flint, under its seccomp filter:
 * it must allow what the drain calls (io_uring_enter). In a child, which
 * the filter would kill. */
Test(blk_dev, reset_waits_under_the_vcpu_seccomp_filter)
{
	int st;
	pid_t pid;

	/* flint's guest memory stays out of children (MADV_DONTFORK); this
	 * child is the VMM itself and needs it. */
	for (size_t i = 0; i < gmem_nregions(g); i++)
		cr_assert_eq(madvise(gmem_region(g, i)->host, gmem_region(g, i)->size, MADV_DOFORK),
			     0);
	pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct blk_stats bs;

		read_waiting_on_a_pipe();
		if (seccomp_install(SECCOMP_VCPU, false) < 0)
			_exit(2);
		blk_ops.reset(b);
		blk_get_stats(b, &bs);
		_exit(bs.inflight == 0 ? 0 : 3);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert_not(WIFSIGNALED(st), "the reset was killed by signal %d (%s)", WTERMSIG(st),
		      WTERMSIG(st) == SIGSYS ? "the vCPU filter refuses a call" : "?");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d", WEXITSTATUS(st));
}

/* ---- a submission that fails: the drive retries on its own ------------- */

static int log_fd = -1, saved_stderr = -1;

/* From here flint's log (stderr) goes to a file... */
static void log_capture(void)
{
	char name[] = "/tmp/flint-blk-log-XXXXXX";

	log_fd = mkstemp(name);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert(log_fd >= 0 && saved_stderr >= 0);
	unlink(name);
	cr_assert_geq(dup2(log_fd, STDERR_FILENO), 0);
}

/* ...until here; what it got is in log[]. */
static void log_release(char *log, size_t len)
{
	ssize_t n;

	cr_assert_geq(dup2(saved_stderr, STDERR_FILENO), 0);
	close_fd(&saved_stderr);
	n = pread(log_fd, log, len - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close_fd(&log_fd);
}

static unsigned occurrences(const char *log, const char *what)
{
	unsigned n = 0;

	for (const char *p = log; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static void guard_expired(struct ev_op *op, int res)
{
	(void)op;
	if (res != -ECANCELED)
		evloop_stop(loop);
}

/* Run the loop, and nothing else (no notification), until n chains have
 * been used in all or ms milliseconds have passed. */
static void run_until_used(uint16_t n, unsigned ms)
{
	static struct __kernel_timespec ts;
	static struct ev_op guard;

	ts = (struct __kernel_timespec){.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};
	guard = (struct ev_op){.done = guard_expired};
	cr_assert_eq(evloop_timeout(loop, &guard, &ts), 0);
	want_used = n;
	in_run = true;
	cr_assert_eq(evloop_run(loop), 0);
	in_run = false;
}

/* io_uring_enter refuses the read three times (short of memory): the
 * requests stay queued in the drive's ring, where no completion will come
 * and notifications are off, so the drive must submit them again by itself.
 * One line says it failed, one that it works again. */
Test(blk_dev, failed_submit_is_retried_without_a_notification)
{
	struct blk_stats st;
	char log[4096];
	uint16_t h;

	open_dev(false, NULL);
	h = offer_rw(VIRTIO_BLK_T_IN, 3, BUF, SECT, status_at(BUF + 0x9000));
	log_capture();
	blk_ring_fail_submits(3, -EAGAIN);
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	run_until_used(1, 2000);
	log_release(log, sizeof(log));
	cr_assert_eq(st.inflight, 1);
	cr_assert_eq(blk_ring_fail_submits(0, 0), 0, "the drive did not submit four times");
	cr_assert_eq(q.next_used, 1, "the read never reached the kernel; log:\n%s", log);
	cr_assert_eq(used_elem(0).id, h);
	cr_assert_eq(used_elem(0).len, SECT + 1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF, SECT, 4), "sector 3 holds 4s");
	cr_assert_eq(occurrences(log, "submitting I/O: Resource temporarily unavailable; retrying"),
		     1, "log:\n%s", log);
	cr_assert_eq(occurrences(log, "submitting I/O again"), 1, "log:\n%s", log);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.io_errors, 0);
}

/* Failures that last: the retries back off (1, 2, 4, ... ms, not one a
 * millisecond), and the log has one line for all of them. */
Test(blk_dev, lasting_submit_failures_back_off_and_log_once)
{
	struct blk_stats st;
	char log[4096];
	unsigned tries;

	open_dev(false, NULL);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, SECT, status_at(BUF + 0x9000));
	log_capture();
	blk_ring_fail_submits(1000, -ENOMEM);
	blk_ops.notify(b, 0);
	run_until_used(1, 100);
	log_release(log, sizeof(log));
	tries = 1000 - blk_ring_fail_submits(0, 0);
	/* Due at 0, 1, 3, 7, 15, 31, 63 ms and every 100 ms from 127. */
	cr_assert(tries >= 4 && tries <= 10, "%u submissions in 100 ms", tries);
	cr_assert_eq(q.next_used, 0);
	cr_assert_eq(*byte_at(BUF + 0x9000), 0xee);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 1);
	cr_assert_eq(occurrences(log, "submitting I/O: Cannot allocate memory; retrying"), 1,
		     "log:\n%s", log);
	cr_assert_eq(occurrences(log, "flint: "), 1, "log:\n%s", log);
	/* Submissions work again: the next notification sends the read. */
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
}

/* A reset while a retry is pending: the drain submits what was queued and
 * waits for it, which ends into nothing; the timer, when it fires, finds
 * nothing to submit, touches nothing of the guest's, and the next
 * generation works. */
Test(blk_dev, reset_with_a_retry_pending)
{
	struct blk_stats st;
	char log[4096];
	uint16_t h;

	open_dev(false, NULL);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, SECT, status_at(BUF + 0x9000));
	log_capture();
	blk_ring_fail_submits(1000, -EAGAIN);
	blk_ops.notify(b, 0); /* the retry timer waits in the loop */
	blk_ops.reset(b);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0, "reset returned with I/O queued");
	cr_assert_eq(st.stale_completions, 1);
	memset(at(BUF, SECT), 0x11, SECT);
	run_for_ms(20); /* the timer fires: nothing queued, nothing fails */
	log_release(log, sizeof(log));
	cr_assert_eq(blk_ring_fail_submits(0, 0), 999, "one failure, and no more");
	cr_assert_eq(occurrences(log, "submitting I/O again"), 1, "log:\n%s", log);
	cr_assert(all_bytes(BUF, SECT, 0x11), "guest memory written after the reset");
	cr_assert_eq(*byte_at(BUF + 0x9000), 0xee);
	cr_assert_eq(q.next_used, 0);
	ring_start(16);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	h = offer_rw(VIRTIO_BLK_T_IN, 5, BUF + 0x1000, SECT, status_at(BUF + 0x9400));
	kick_and_wait(1);
	cr_assert_eq(used_elem(0).id, h);
	cr_assert_eq(*byte_at(BUF + 0x9400), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF + 0x1000, SECT, 6));
}

/* Teardown with a retry pending, in vm_destroy's order: the loop cancels
 * the timer, then the drive drains what was queued and is freed (its image
 * closed), not kept for a loop that still holds its op. */
Test(blk_dev, destroy_with_a_retry_pending)
{
	char log[4096];
	int fd;

	open_dev(false, NULL);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, SECT, status_at(BUF + 0x9000));
	blk_ring_fail_submits(1000, -EAGAIN);
	log_capture();
	blk_ops.notify(b, 0);
	evloop_destroy(loop);
	loop = NULL;
	blk_destroy(b);
	b = NULL;
	log_release(log, sizeof(log));
	cr_assert_eq(device_image_fds(&fd), 0, "the drive was not freed; log:\n%s", log);
	cr_assert_null(strstr(log, "destroyed while"), "log:\n%s", log);
}

/* ---- rate limiting and a new image after boot --------------------------- */

static unsigned config_changes;

static void host_config_changed(void *t)
{
	(void)t;
	config_changes++;
}

static const struct virtio_host host_cc = {
    .used = host_used, .needs_reset = host_needs_reset, .config_changed = host_config_changed};

static void open_limited(const struct ratelimit_cfg *rl)
{
	struct blk_params p = {.path = path, .loop = loop};

	if (rl)
		p.rate_limiter = *rl;
	config_changes = 0;
	cr_assert_eq(blk_create(&b, &p), 0);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host_cc), 0);
}

static uint64_t ms_since(uint64_t t0)
{
	return (now_ns() - t0) / 1000000;
}

/* What the used ring held ms into the next loop run, seen from a timer of
 * the loop's own (a loop that stops cancels every op, the device's timers
 * with them, so the test looks without stopping it). */
static struct ev_op probe_op;
static struct __kernel_timespec probe_ts;
static uint16_t probe_used;

static void used_probe_done(struct ev_op *op, int res)
{
	(void)op;
	if (res == -ETIME)
		probe_used = q.next_used;
}

static void probe_at(unsigned ms)
{
	probe_used = 0xffff;
	probe_ts = (struct __kernel_timespec){.tv_nsec = ms * 1000000L};
	probe_op = (struct ev_op){.done = used_probe_done};
	cr_assert_eq(evloop_timeout(loop, &probe_op, &probe_ts), 0);
}

/* One op per 100 ms, a bucket of one: of two reads kicked together the
 * first goes at once, the second waits in the device (not answered, not
 * failed) and goes when its token is there, without another kick. */
Test(blk_dev, throttled_request_waits_for_its_token)
{
	struct ratelimit_cfg rl = {.ops = {.size = 1, .refill_time_ms = 100}};
	struct blk_stats st;
	uint64_t t0;

	open_limited(&rl);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	t0 = now_ns();
	blk_ops.notify(b, 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.rate_limiter_throttled, 1);
	cr_assert_eq(st.reads, 1, "a throttled request is not counted as read yet");
	probe_at(50);
	run_until_used(2, 2000);
	cr_assert_eq(probe_used, 1, "%u used at 50 ms: the second read did not wait", probe_used);
	cr_assert_eq(q.next_used, 2, "the throttled read never went");
	cr_assert_geq(ms_since(t0), 90, "went after %llu ms", (unsigned long long)ms_since(t0));
	cr_assert_eq(*byte_at(BUF + 0x9200), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF + 0x1000, SECT, 3), "sector 2 holds 3s");
	blk_get_stats(b, &st);
	cr_assert_eq(st.reads, 2);
	cr_assert_eq(st.rate_limiter_throttled, 1, "one timer, not a retry per loop turn");
}

/* A write-zeroes that may not unmap is bytes the host writes where it cannot
 * punch a hole: it takes them from the bandwidth bucket as a write does
 * (it cost nothing, so the bucket bounded none of them), and one the bucket
 * holds back waits on one timer for its bytes, as a read does. */
Test(blk_dev, bandwidth_counts_write_zeroes)
{
	struct ratelimit_cfg rl = {.bandwidth = {.size = SECT, .refill_time_ms = 100}};
	struct blk_stats st;
	uint64_t t0;

	open_limited(&rl);
	offer_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 4, 1, 0, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	offer_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 6, 1, 0, status_at(BUF + 0x9400));
	t0 = now_ns();
	blk_ops.notify(b, 0);
	probe_at(50);
	run_until_used(3, 2000);
	cr_assert_eq(probe_used, 1, "%u used at 50 ms", probe_used);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert_eq(*byte_at(BUF + 0x9400), VIRTIO_BLK_S_OK);
	cr_assert_geq(ms_since(t0), 190);
	blk_get_stats(b, &st);
	cr_assert_eq(st.rate_limiter_throttled, 2, "one timer a wait, not a retry per loop turn");
}

/* Bandwidth: 512 bytes per 100 ms. A read takes the bucket; a flush costs
 * one op and no bytes, so it passes; the next read waits. */
Test(blk_dev, bandwidth_counts_data_bytes_and_flush_none)
{
	struct ratelimit_cfg rl = {.bandwidth = {.size = SECT, .refill_time_ms = 100}};
	struct sg fl[] = {{BUF + 0x300, 16, false}, {status_at(BUF + 0x400), 1, true}};
	uint64_t t0;

	open_limited(&rl);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	put_hdr(BUF + 0x300, VIRTIO_BLK_T_FLUSH, 0);
	offer(fl, 2);
	offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	t0 = now_ns();
	blk_ops.notify(b, 0);
	probe_at(50);
	run_until_used(3, 2000);
	cr_assert_eq(probe_used, 2, "%u used at 50 ms (the flush waited for bytes?)", probe_used);
	cr_assert_eq(*byte_at(BUF + 0x400), VIRTIO_BLK_S_OK);
	cr_assert_eq(q.next_used, 3);
	cr_assert_geq(ms_since(t0), 90);
}

struct later {
	unsigned ms;
	struct ratelimit_cfg cfg;
	int ret;
};

static void *set_limit_later(void *arg)
{
	struct later *l = arg;

	usleep(l->ms * 1000);
	l->ret = blk_set_ratelimit(b, &l->cfg);
	return NULL;
}

/* One op per 10 s: the second read waits on a 10 s timer. Another thread
 * lifts the limit 50 ms later, while the loop runs: the read goes at once,
 * not when the old timer would have fired. The buckets' throttled count
 * is kept. */
Test(blk_dev, limit_changed_at_runtime_from_another_thread)
{
	struct ratelimit_cfg rl = {.ops = {.size = 1, .refill_time_ms = 10000}}, got;
	struct later l = {.ms = 50, .cfg = {.bandwidth = {0}, .ops = {0}}, .ret = -1};
	struct blk_stats st;
	pthread_t th;
	uint64_t t0;

	open_limited(&rl);
	blk_get_ratelimit(b, &got);
	cr_assert_eq(got.ops.size, 1);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	t0 = now_ns();
	blk_ops.notify(b, 0);
	cr_assert_eq(pthread_create(&th, NULL, set_limit_later, &l), 0);
	probe_at(30);
	run_until_used(2, 2000);
	pthread_join(th, NULL);
	cr_assert_eq(probe_used, 1);
	cr_assert_eq(l.ret, 0);
	cr_assert_eq(q.next_used, 2, "still waiting for the old limit's timer");
	cr_assert_lt(ms_since(t0), 1000);
	cr_assert_eq(*byte_at(BUF + 0x9200), VIRTIO_BLK_S_OK);
	blk_get_stats(b, &st);
	cr_assert_eq(st.rate_limiter_throttled, 1);
	blk_get_ratelimit(b, &got);
	cr_assert_eq(got.ops.size, 0);
	l.cfg.ops.size = (uint64_t)INT64_MAX + 1;
	cr_assert_eq(blk_set_ratelimit(b, &l.cfg), -EINVAL);
}

/* A limit set at runtime on a drive that had none applies to the next
 * requests. */
Test(blk_dev, limit_set_at_runtime_applies)
{
	struct ratelimit_cfg rl = {.ops = {.size = 1, .refill_time_ms = 10000}};
	struct blk_stats st;

	open_limited(NULL);
	cr_assert_eq(blk_set_ratelimit(b, &rl), 0);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	kick_and_wait(1);
	run_until_used(2, 100);
	cr_assert_eq(q.next_used, 1);
	blk_get_stats(b, &st);
	cr_assert_eq(st.rate_limiter_throttled, 1);
}

/* A reset forgets the request waiting for the limiter: its slot is free
 * again, nothing is written for it, and the next generation works once
 * the limit is lifted. */
Test(blk_dev, reset_forgets_a_throttled_request)
{
	struct ratelimit_cfg rl = {.ops = {.size = 1, .refill_time_ms = 10000}};
	struct ratelimit_cfg none = {.bandwidth = {0}, .ops = {0}};
	uint16_t h;

	open_limited(&rl);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	memset(at(BUF + 0x1000, SECT), 0x11, SECT);
	kick_and_wait(1);
	blk_ops.reset(b);
	cr_assert_eq(blk_set_ratelimit(b, &none), 0);
	run_for_ms(20);
	cr_assert(all_bytes(BUF + 0x1000, SECT, 0x11));
	cr_assert_eq(*byte_at(BUF + 0x9200), 0xee);
	ring_start(16);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host_cc), 0);
	h = offer_rw(VIRTIO_BLK_T_IN, 5, BUF + 0x2000, SECT, status_at(BUF + 0x9400));
	kick_and_wait(1);
	cr_assert_eq(used_elem(0).id, h);
	cr_assert(all_bytes(BUF + 0x2000, SECT, 6));
}

static char path2[] = "/tmp/flint-blk2-XXXXXX";

/* A second image of n sectors, each filled with v. */
static void make_image2(unsigned n, uint8_t v)
{
	uint8_t sec[SECT];
	int fd = mkstemp(path2);

	cr_assert_geq(fd, 0);
	memset(sec, v, sizeof(sec));
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(pwrite(fd, sec, sizeof(sec), (off_t)i * SECT), SECT);
	close_fd(&fd);
}

static uint64_t config_capacity(void)
{
	uint64_t c;

	blk_ops.config_read(b, offsetof(struct virtio_blk_config, capacity), &c, sizeof(c));
	return c;
}

/* PATCH /drives after boot: the drive reads the new image, the guest sees
 * its capacity in the configuration space and is told (config_changed);
 * a sector past the old end is readable now. */
Test(blk_dev, backing_swap_changes_capacity_and_tells_the_guest)
{
	struct blk_stats st;

	make_image2(2 * CAP, 0x77);
	open_limited(NULL);
	cr_assert_eq(config_capacity(), CAP);
	cr_assert_eq(blk_set_backing(b, path2), 0);
	unlink(path2);
	cr_assert_eq(config_capacity(), 2 * CAP);
	cr_assert_eq(blk_capacity(b), 2 * CAP);
	cr_assert_eq(config_changes, 1);
	offer_rw(VIRTIO_BLK_T_IN, CAP + 5, BUF, SECT, status_at(BUF + 0x9000));
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF, SECT, 0x77));
	blk_get_stats(b, &st);
	cr_assert_eq(st.backing_swaps, 1);
	/* The old image is closed, and with it its lock. */
	int fd;
	cr_assert_eq(device_image_fds(&fd), 0);
}

/* A path that cannot be opened: an error, and the old image stays, with
 * its capacity, and the guest is told nothing. */
Test(blk_dev, backing_swap_to_a_missing_file_keeps_the_old_image)
{
	open_limited(NULL);
	cr_assert_eq(blk_set_backing(b, "/nonexistent/flint.img"), -ENOENT);
	cr_assert_lt(blk_set_backing(b, "/tmp"), 0, "a directory is no disk");
	cr_assert_eq(config_capacity(), CAP);
	cr_assert_eq(config_changes, 0);
	offer_rw(VIRTIO_BLK_T_IN, 3, BUF, SECT, status_at(BUF + 0x9000));
	kick_and_wait(1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF, SECT, 4), "sector 3 of the old image holds 4s");
}

/* The same image again after it grew (Firecracker's way to have a guest see
 * a resized file): its own lock does not refuse it, the size is read again. */
Test(blk_dev, backing_swap_to_the_same_grown_image)
{
	open_limited(NULL);
	cr_assert_eq(ftruncate(img, 3 * CAP * SECT), 0);
	cr_assert_eq(blk_set_backing(b, path), 0);
	cr_assert_eq(config_capacity(), 3 * CAP);
	cr_assert_eq(config_changes, 1);
	int fd;
	cr_assert_eq(device_image_fds(&fd), 1, "reopened: two descriptors on the image");
}

struct swap_arg {
	const char *path;
	int ret;
	bool done;
};

static void *swap_thread(void *arg)
{
	struct swap_arg *s = arg;

	s->ret = blk_set_backing(b, s->path);
	__atomic_store_n(&s->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* A read under way on the old image when the swap comes: the swap waits for
 * it, and it is answered as usual (here the data the "image" then gives). */
Test(blk_dev, backing_swap_waits_for_the_io_in_flight)
{
	struct swap_arg sa = {.path = path2, .ret = -1};
	uint8_t data[SECT];
	pthread_t th;

	make_image2(CAP, 0x77);
	read_waiting_on_a_pipe();
	cr_assert_eq(pthread_create(&th, NULL, swap_thread, &sa), 0);
	usleep(100 * 1000);
	cr_assert_not(__atomic_load_n(&sa.done, __ATOMIC_ACQUIRE), "swapped under a read");
	memset(data, 0x5a, sizeof(data));
	cr_assert_eq(write(rpipe[1], data, sizeof(data)), SECT);
	pthread_join(th, NULL);
	unlink(path2);
	cr_assert_eq(sa.ret, 0);
	cr_assert_eq(q.next_used, 1, "the read was not answered");
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF, SECT, 0x5a));
	close_fd(&rpipe[0]);
	close_fd(&rpipe[1]);
}

/* The drive kind's glue: create passes the config's rate limiter, and
 * update (PATCH /drives after boot) swaps the image and changes the limit;
 * an update to a missing image fails with a message, the drive unchanged. */
Test(blk_dev, kind_update_swaps_the_image_and_the_limit)
{
	static struct vm_config c;
	struct vmc_drive *dp = &c.drives[0];
	struct device_env env = {.loop = loop};
	struct device_new dn;
	struct ratelimit_cfg rl;
	struct vm_err err = {0};

	memset(&c, 0, sizeof(c));
	c.ndrives = 1;
	*dp = (struct vmc_drive){.drive_id = "rootfs",
				 .path_on_host = path,
				 .rate_limiter = {.ops = {.size = 1, .refill_time_ms = 10000}}};
	make_image2(2 * CAP, 0x77);
	cr_assert_eq(blk_kind.create(&c, 0, "rootfs", &env, &dn), 0);
	b = dn.priv;
	blk_get_ratelimit(b, &rl);
	cr_assert_eq(rl.ops.size, 1);
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host_cc), 0);
	config_changes = 0;
	cr_assert_not_null(blk_kind.update);
	/* The same entry again: nothing changes, the guest is told nothing. */
	cr_assert_eq(blk_kind.update(b, &c, 0, DEVICE_CHANGE_BACKING | DEVICE_CHANGE_LIMITS, &err),
		     0);
	cr_assert_eq(config_changes, 0);
	dp->path_on_host = path2;
	dp->rate_limiter.ops.size = 0;
	cr_assert_eq(blk_kind.update(b, &c, 0, DEVICE_CHANGE_BACKING | DEVICE_CHANGE_LIMITS, &err),
		     0, "%s", err.msg);
	unlink(path2);
	cr_assert_eq(blk_capacity(b), 2 * CAP);
	cr_assert_eq(config_changes, 1);
	blk_get_ratelimit(b, &rl);
	cr_assert_eq(rl.ops.size, 0);
	dp->path_on_host = "/nonexistent/flint.img";
	cr_assert_eq(blk_kind.update(b, &c, 0, DEVICE_CHANGE_BACKING | DEVICE_CHANGE_LIMITS, &err),
		     -ENOENT);
	cr_assert_not_null(strstr(err.msg, "/nonexistent/flint.img"), "%s", err.msg);
	cr_assert_eq(blk_capacity(b), 2 * CAP);
	/* A PATCH of the limiter alone never opens the path: here it names
	 * nothing any more, and the drive keeps its image. */
	dp->rate_limiter.ops.size = 3;
	cr_assert_eq(blk_kind.update(b, &c, 0, DEVICE_CHANGE_LIMITS, &err), 0, "%s", err.msg);
	blk_get_ratelimit(b, &rl);
	cr_assert_eq(rl.ops.size, 3);
	cr_assert_eq(blk_capacity(b), 2 * CAP);
	cr_assert_eq(config_changes, 1);
}

/* The test image as ext4 would be seen: its superblock's magic, and a
 * UUID of 16 bytes v (v 0: no magic, no file system). */
static void set_fs_uuid(uint8_t v)
{
	uint8_t magic[2] = {v ? 0x53 : 0, v ? 0xef : 0}, uuid[16];

	memset(uuid, v, sizeof(uuid));
	cr_assert_eq(pwrite(img, magic, 2, 1024 + 56), 2);
	cr_assert_eq(pwrite(img, uuid, 16, 1024 + 104), 16);
}

static int kind_restore(const struct wbuf *w, char *err, size_t len)
{
	struct rbuf rb;

	rbuf_init(&rb, w->p, w->len);
	return blk_kind.restore(b, &rb, err, len);
}

/* A snapshot records what the drive's image was (its file system's UUID,
 * its size); a restore onto another one is refused, naming both, since the
 * guest's cached view of the old file system would corrupt the new. A
 * snapshot written before drives kept that (nothing after the transport's
 * state) is taken as it is. */
Test(blk_dev, kind_restore_refuses_another_image)
{
	char err[512] = "";
	struct wbuf w;

	set_fs_uuid(0x11);
	open_dev(false, "rootfs");
	wbuf_init(&w);
	cr_assert_eq(blk_kind.save(b, &w), 0);
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), 0, "%s", err);
	set_fs_uuid(0x22);
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err,
			 "another file system (UUID 22222222-2222-2222-2222-222222222222) than "
			 "the one the snapshot was saved with "
			 "(11111111-1111-1111-1111-111111111111)"),
		  "%s", err);
	set_fs_uuid(0);
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "holds no ext4 file system now"), "%s", err);
	wbuf_free(&w);

	/* Not a file system, but another size. */
	wbuf_init(&w);
	cr_assert_eq(blk_kind.save(b, &w), 0);
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ftruncate(img, (off_t)(CAP + 8) * SECT), 0);
	blk_destroy(b);
	open_dev(false, "rootfs");
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "now has 72 sectors, the snapshot's had 64"), "%s", err);
	wbuf_free(&w);

	/* Saved before: nothing to check. Cut short: refused. */
	wbuf_init(&w);
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), 0, "%s", err);
	wput_u32(&w, 1);
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "malformed"), "%s", err);
	wbuf_free(&w);
}

/* The limiter's buckets go with the drive (version 2); a drive whose
 * limits changed since (PATCHed, then reset in place) keeps its own; a
 * version 1 section (before limiters were saved) leaves them full. */
Test(blk_dev, kind_restore_takes_the_limiter)
{
	const struct ratelimit_cfg one = {.ops = {.size = 1, .refill_time_ms = 100000}};
	char err[512] = "";
	struct wbuf w;
	struct ratelimit_state st;

	set_fs_uuid(0x11);
	open_dev(false, "rootfs");
	cr_assert_eq(blk_set_ratelimit(b, &one), 0);
	blk_save_limits(b, &st);
	cr_assert_eq(st.ops.tokens, 1);
	wbuf_init(&w);
	cr_assert_eq(blk_kind.save(b, &w), 0);
	cr_assert_eq(w.len, 4 + 8 + 1 + 16 + 16 * 8);

	/* Saved with its one token spent: restored so. */
	w.p[4 + 8 + 1 + 16 + 8 * 8 + 3 * 8] = 0; /* ops tokens: 0 */
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), 0, "%s", err);
	blk_save_limits(b, &st);
	cr_assert_eq(st.ops.tokens, 0);

	/* A drive without the limit now: it stays without. */
	cr_assert_eq(blk_set_ratelimit(b, &(struct ratelimit_cfg){0}), 0);
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), 0, "%s", err);
	blk_save_limits(b, &st);
	cr_assert_eq(st.cfg.ops.size, 0);

	/* A state no limiter can be in: refused. */
	cr_assert_eq(blk_set_ratelimit(b, &one), 0);
	w.p[4 + 8 + 1 + 16 + 8 * 8 + 3 * 8] = 2; /* ops tokens: 2 of 1 */
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "its rate limiter is in a state no limiter can be in"), "%s", err);

	/* Version 1: the image's checks only. */
	w.p[0] = 1;
	w.len = 4 + 8 + 1 + 16;
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), 0, "%s", err);
	blk_save_limits(b, &st);
	cr_assert_eq(st.ops.tokens, 1);
	w.p[0] = 3;
	cr_assert_eq(kind_restore(&w, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "of another version"), "%s", err);
	wbuf_free(&w);
}

/* ---- snapshot: drain and quiesce --------------------------------------- */

struct write_later {
	int fd;
	unsigned ms;
	uint8_t v;
};

/* Write one sector of v to fd, ms from now: the "image" (a pipe) answers
 * the read waiting on it. */
static void *write_later(void *arg)
{
	struct write_later *w = arg;
	uint8_t data[SECT];

	usleep(w->ms * 1000);
	memset(data, w->v, sizeof(data));
	(void)!write(w->fd, data, sizeof(data));
	return NULL;
}

/* Until the used ring's index reaches n, or 2 s. */
static bool used_reaches(uint16_t n)
{
	uint64_t end = now_ns() + 2000000000ull;

	while (fake_used_idx(&ring) != n && now_ns() < end)
		usleep(200);
	return fake_used_idx(&ring) == n;
}

static bool notifications_on(void)
{
	const struct vring_used *u = at(USED, 4);
	return !(__atomic_load_n(&u->flags, __ATOMIC_ACQUIRE) & VRING_USED_F_NO_NOTIFY);
}

/* A read under way at the image when the drain comes (the loop on its own
 * thread, as in flint): drain returns once it has been answered and used,
 * its data in guest memory. */
Test(blk_dev, drain_waits_for_a_request_in_flight)
{
	struct write_later w = {.ms = 50, .v = 0x5a};
	char err[256] = "";
	struct blk_stats st;
	pthread_t th;
	uint64_t t0;

	read_waiting_on_a_pipe();
	w.fd = rpipe[1];
	cr_assert_eq(evloop_start(loop), 0);
	cr_assert_eq(pthread_create(&th, NULL, write_later, &w), 0);
	t0 = now_ns();
	cr_assert_eq(blk_drain(b, now_ns() + 2000000000ull, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(ms_since(t0), 40, "drained after %llu ms, before the read could end",
		      (unsigned long long)ms_since(t0));
	/* Seen now, before the loop stops. */
	cr_assert_eq(fake_used_idx(&ring), 1, "drain returned before the read was used");
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF, SECT, 0x5a));
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	evloop_stop(loop);
	cr_assert_eq(evloop_join(loop), 0);
	pthread_join(th, NULL);
	close_fd(&rpipe[0]);
	close_fd(&rpipe[1]);
}

/* Nothing in flight: done at once, even past the deadline. */
Test(blk_dev, drain_with_nothing_in_flight_returns_at_once)
{
	char err[256] = "";

	open_dev(false, NULL);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	kick_and_wait(1);
	cr_assert_eq(blk_drain(b, now_ns(), err, sizeof(err)), 0, "%s", err);
	cr_assert_str_empty(err);
}

/* A backend that does not answer: -ETIMEDOUT at the deadline, with a message
 * naming the drive (its id) and what is left; once the backend answers, a
 * drain succeeds. Through the kind's hook, as vm.c calls it. */
Test(blk_dev, drain_with_a_stuck_backend_times_out_naming_the_drive)
{
	static struct vm_config c;
	struct device_env env = {.loop = loop};
	struct write_later w = {.ms = 0, .v = 0x5a};
	struct vm_err err = {0};
	struct device_new dn;
	uint64_t t0;

	memset(&c, 0, sizeof(c));
	c.ndrives = 1;
	c.drives[0] = (struct vmc_drive){.drive_id = "rootfs", .path_on_host = path};
	cr_assert_not_null(blk_kind.drain);
	cr_assert_eq(blk_kind.create(&c, 0, "rootfs", &env, &dn), 0);
	b = dn.priv;
	cr_assert_eq(blk_ops.activate(b, blk_ops.features(b), &q, &host), 0);
	cr_assert_eq(pipe2(rpipe, O_CLOEXEC), 0);
	image_becomes(rpipe[0]);
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, SECT, status_at(BUF + 0x9000));
	blk_ops.notify(b, 0);
	cr_assert_eq(evloop_start(loop), 0);
	t0 = now_ns();
	cr_assert_eq(blk_kind.drain(b, now_ns() + 100000000ull, &err), -ETIMEDOUT);
	cr_assert_geq(ms_since(t0), 90, "gave up after %llu ms", (unsigned long long)ms_since(t0));
	cr_assert_lt(ms_since(t0), 1000);
	cr_assert_eq(err.code, -ETIMEDOUT);
	cr_assert_not_null(strstr(err.msg, "drive rootfs"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "1 request still in flight"), "%s", err.msg);
	cr_assert_eq(fake_used_idx(&ring), 0);
	w.fd = rpipe[1];
	write_later(&w);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(blk_kind.drain(b, now_ns() + 2000000000ull, &err), 0, "%s", err.msg);
	cr_assert_eq(fake_used_idx(&ring), 1);
	evloop_stop(loop);
	cr_assert_eq(evloop_join(loop), 0);
	close_fd(&rpipe[0]);
	close_fd(&rpipe[1]);
}

/* The snapshot's order with a rate-limited drive (one op per 300 ms): of
 * two reads, the first is answered by the drain, the second is held by the
 * limiter. With the loop paused, quiesce gives it back: the available ring
 * offers it again (last_avail rewound, the used index unchanged, nothing
 * written for it) and notifications are on. A kick (here while paused, the
 * pauser standing in for the loop thread) takes it again, and after the
 * resume it is served once, when its token comes. */
Test(blk_dev, quiesce_gives_back_a_throttled_request)
{
	struct ratelimit_cfg rl = {.ops = {.size = 1, .refill_time_ms = 300}};
	char err[256] = "";
	struct blk_stats st;
	uint16_t h2;

	open_limited(&rl);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	h2 = offer_rw(VIRTIO_BLK_T_IN, 2, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	memset(at(BUF + 0x1000, SECT), 0x11, SECT);
	blk_ops.notify(b, 0);
	cr_assert_eq(evloop_start(loop), 0);
	cr_assert_eq(blk_drain(b, now_ns() + 2000000000ull, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(evloop_pause(loop), 0);
	cr_assert_eq(fake_used_idx(&ring), 1, "the limiter let the second read go already");
	cr_assert_eq(q.last_avail, 2);
	cr_assert_not(notifications_on());

	blk_quiesce(b);
	cr_assert_eq(q.last_avail, 1, "the held request was not given back");
	cr_assert_eq(q.next_used, 1);
	cr_assert_eq(fake_used_idx(&ring), 1);
	cr_assert_eq(*byte_at(BUF + 0x9200), 0xee);
	cr_assert(all_bytes(BUF + 0x1000, SECT, 0x11));
	cr_assert(notifications_on());
	blk_get_stats(b, &st);
	cr_assert_eq(st.reads, 1);

	blk_ops.notify(b, 0);
	cr_assert_eq(q.last_avail, 2, "the kick did not take the request again");
	evloop_resume(loop);
	cr_assert(used_reaches(2), "the request given back was never served");
	cr_assert_eq(used_elem(1).id, h2);
	cr_assert_eq(*byte_at(BUF + 0x9200), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF + 0x1000, SECT, 3), "sector 2 holds 3s");
	evloop_stop(loop);
	cr_assert_eq(evloop_join(loop), 0);
	blk_get_stats(b, &st);
	cr_assert_eq(st.reads, 2, "served twice?");
	cr_assert_eq(q.next_used, 2);
}

/* I/O that started after the drain (a limiter's timer let a request go
 * before the loop parked): quiesce waits for it and answers it, as usual,
 * so that nothing is left popped and unanswered. The loop does not run. */
Test(blk_dev, quiesce_answers_io_started_after_the_drain)
{
	struct write_later w = {.ms = 30, .v = 0x5a};
	struct blk_stats st;
	pthread_t th;
	uint64_t t0;

	read_waiting_on_a_pipe();
	w.fd = rpipe[1];
	cr_assert_eq(pthread_create(&th, NULL, write_later, &w), 0);
	t0 = now_ns();
	blk_quiesce(b);
	pthread_join(th, NULL);
	cr_assert_geq(ms_since(t0), 20);
	cr_assert_eq(fake_used_idx(&ring), 1);
	cr_assert_eq(q.last_avail, 1);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF, SECT, 0x5a));
	cr_assert_eq(used_calls, 1, "the guest was not told");
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.stale_completions, 0);
	close_fd(&rpipe[0]);
	close_fd(&rpipe[1]);
}

/* Nothing held: quiesce changes nothing, and the drive goes on. */
Test(blk_dev, quiesce_with_nothing_held_changes_nothing)
{
	open_dev(false, NULL);
	offer_rw(VIRTIO_BLK_T_IN, 1, BUF, SECT, status_at(BUF + 0x9000));
	kick_and_wait(1);
	blk_quiesce(b);
	cr_assert_eq(q.last_avail, 1);
	cr_assert_eq(q.next_used, 1);
	cr_assert(notifications_on());
	offer_rw(VIRTIO_BLK_T_IN, 3, BUF + 0x1000, SECT, status_at(BUF + 0x9200));
	kick_and_wait(2);
	cr_assert(all_bytes(BUF + 0x1000, SECT, 4));
}

/* The kind drains and quiesces, and saves what its image was
 * (kind_restore_refuses_another_image). */
Test(blk_dev, kind_snapshot_hooks)
{
	cr_assert_not_null(blk_kind.drain);
	cr_assert_not_null(blk_kind.quiesce);
	cr_assert_not_null(blk_kind.save);
	cr_assert_not_null(blk_kind.restore);
}

/* The race quiesce closes, as it happens in flint: the limiter's timer, on
 * the loop thread, lets a held read go after the drain; the loop thread
 * submits it (to an "image" that answers 30 ms later) and is then parked.
 * quiesce, on this thread, waits for the read and answers it: the kernel
 * finishes it by task work in the parked loop thread, which its futex wait
 * lets run. */
Test(blk_dev, quiesce_answers_a_read_the_parked_loop_thread_submitted)
{
	struct ratelimit_cfg rl = {.ops = {.size = 1, .refill_time_ms = 50}};
	struct sg id[] = {
	    {BUF + 0x2000, 16, false}, {BUF + 0x3000, 20, true}, {BUF + 0x3100, 1, true}};
	struct write_later w = {.ms = 30, .v = 0x5a};
	struct blk_stats st;
	pthread_t th;
	uint64_t end;

	open_limited(&rl);
	cr_assert_eq(pipe2(rpipe, O_CLOEXEC), 0);
	image_becomes(rpipe[0]);
	put_hdr(BUF + 0x2000, VIRTIO_BLK_T_GET_ID, 0);
	offer(id, 3); /* takes the only token */
	offer_rw(VIRTIO_BLK_T_IN, 0, BUF, SECT, status_at(BUF + 0x9000));
	blk_ops.notify(b, 0);
	cr_assert_eq(fake_used_idx(&ring), 1);
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0, "the read did not wait for the limiter");
	cr_assert_eq(evloop_start(loop), 0);
	end = now_ns() + 2000000000ull;
	do {
		usleep(1000);
		blk_get_stats(b, &st);
	} while (st.inflight == 0 && now_ns() < end);
	cr_assert_eq(st.inflight, 1, "the timer did not let the read go");
	cr_assert_eq(evloop_pause(loop), 0);
	w.fd = rpipe[1];
	cr_assert_eq(pthread_create(&th, NULL, write_later, &w), 0);
	blk_quiesce(b);
	pthread_join(th, NULL);
	cr_assert_eq(fake_used_idx(&ring), 2);
	cr_assert_eq(q.last_avail, 2);
	cr_assert_eq(*byte_at(BUF + 0x9000), VIRTIO_BLK_S_OK);
	cr_assert(all_bytes(BUF, SECT, 0x5a));
	blk_get_stats(b, &st);
	cr_assert_eq(st.inflight, 0);
	evloop_resume(loop);
	evloop_stop(loop);
	cr_assert_eq(evloop_join(loop), 0);
	close_fd(&rpipe[0]);
	close_fd(&rpipe[1]);
}
