/* virtio-pmem: the flush queue against fake guest memory and a real event
 * loop run in the test thread, whose syncs are real fdatasyncs (io_uring)
 * of a memfd, which never wait for a disk; then the device kind, which
 * maps a temporary file into the guest through a fake struct
 * device_memmap. The helpers play the guest driver. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/blk_ring_test.h"

#include "core/device_kinds.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "fake_driver.h"
#include "loop_watchdog.h"
#include "pmem/pmem.h"
#include "vq.h"

#define RAM   (4u << 20)
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000
#define BUF   0x10000
#define QSIZE 16

static struct gmem *g;
static struct vq q;
static struct fake_ring ring = {.desc = DESC, .avail = AVAIL, .used = USED};
static struct evloop *loop;
static struct pmem *d;
static int fd = -1, qfd = -1; /* the kind's file, the queue's memfd */
static char path[64];
static unsigned used_calls, resets, again_calls;
static uint16_t want_used, qsize;

static void *at(uint64_t gpa, uint64_t len)
{
	return fake_at(g, gpa, len);
}

static uint16_t used_idx(void)
{
	return fake_used_idx(&ring);
}

static void host_used(void *t, unsigned qi)
{
	(void)t;
	cr_assert_eq(qi, 0);
	used_calls++;
	if (used_idx() >= want_used)
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

static void setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	cr_assert_eq(evloop_create(&loop, 64), 0);
	snprintf(path, sizeof(path), "/tmp/flint-pmem-test-XXXXXX");
	cr_assert_geq(fd = mkstemp(path), 0);
	cr_assert_eq(ftruncate(fd, 3 << 20), 0);
	cr_assert_geq(qfd = memfd_create("pmem-test", MFD_CLOEXEC), 0);
	cr_assert_eq(ftruncate(qfd, 3 << 20), 0);
	used_calls = resets = again_calls = 0;
	want_used = UINT16_MAX;
	qsize = QSIZE;
}

static void teardown(void)
{
	evloop_destroy(loop); /* before the device: it may hold its timer */
	pmem_destroy(d);
	d = NULL;
	gmem_destroy(g);
	close(fd);
	close(qfd);
	unlink(path);
	blk_ring_fail_submits(0, 0);
}

TestSuite(pmem, .init = setup, .fini = teardown, .timeout = 10);

/* Activate the device on a fresh queue, as the driver does at probe and
 * after a reset. */
static void activate_fresh(void)
{
	vq_reset(&q);
	fake_ring_reset(&ring, g, qsize);
	memset(at(DESC, 0x3000), 0, 0x3000);
	cr_assert_eq(vq_activate(&q, g, qsize, DESC, AVAIL, USED, false), 0);
	cr_assert_eq(pmem_ops.activate(d, 0, &q, &host), 0);
}

/* The device on fd (a pipe for a sync that fails) with limiter cfg (NULL:
 * none), activated on a fresh queue. */
static void open_on(int sync_fd, const struct ratelimit_cfg *cfg)
{
	struct pmem_params p = {.id = "p0",
				.start = 0x140000000ULL,
				.size = 4 << 20,
				.fd = sync_fd,
				.file_bytes = 3 << 20,
				.loop = loop};

	if (cfg)
		p.rate_limiter = *cfg;
	cr_assert_eq(pmem_create(&d, &p), 0);
	activate_fresh();
}

static struct pmem_stats stats(void)
{
	struct pmem_stats s;
	pmem_get_stats(d, &s);
	return s;
}

/* Request k's buffers: its type at BUF + 16k, its response at BUF + 16k +
 * 8, set to 0xeeeeeeee so that an answer shows. */
static uint64_t req_at(unsigned k)
{
	return BUF + 16u * k;
}

static uint32_t resp(unsigned k)
{
	uint32_t v;
	memcpy(&v, at(req_at(k) + 8, 4), 4);
	return le32toh(v);
}

static uint16_t offer_flush(unsigned k, uint32_t type)
{
	uint32_t t = htole32(type);
	struct sg s[2] = {{req_at(k), 4, false}, {req_at(k) + 8, 4, true}};

	memcpy(at(req_at(k), 4), &t, 4);
	memset(at(req_at(k) + 8, 4), 0xee, 4);
	return fake_offer(&ring, s, 2);
}

static void run_until(uint16_t k, unsigned ms)
{
	want_used = k;
	if (used_idx() < k)
		loop_run_for(loop, ms);
	want_used = UINT16_MAX;
}

static void kick(void)
{
	pmem_ops.notify(d, 0);
}

Test(pmem, ops_shape_and_config_space)
{
	struct virtio_pmem_config cfg;
	uint8_t tail[8];

	open_on(qfd, NULL);
	cr_assert_eq(pmem_ops.device_id, VIRTIO_ID_PMEM);
	cr_assert_eq(pmem_ops.num_queues, 1);
	cr_assert_eq(pmem_ops.queue_max, PMEM_QUEUE_MAX);
	cr_assert_eq(pmem_ops.features(d), 0);
	pmem_ops.config_read(d, 0, &cfg, sizeof(cfg));
	cr_assert_eq(le64toh(cfg.start), 0x140000000ULL);
	cr_assert_eq(le64toh(cfg.size), 4 << 20);
	/* Byte by byte as the transport may split it, and past its end. */
	uint8_t b;
	pmem_ops.config_read(d, 4, &b, 1);
	cr_assert_eq(b, 0x01);
	memset(tail, 0xaa, sizeof(tail));
	pmem_ops.config_read(d, 16, tail, sizeof(tail));
	for (size_t i = 0; i < sizeof(tail); i++)
		cr_assert_eq(tail[i], 0);
	/* The guest cannot move it; the attempt is counted. */
	uint64_t zero = 0;
	pmem_ops.config_write(d, 0, &zero, 8);
	pmem_ops.config_read(d, 0, &cfg, sizeof(cfg));
	cr_assert_eq(le64toh(cfg.start), 0x140000000ULL);
	cr_assert_eq(stats().cfg_fails, 1);
}

Test(pmem, a_flush_syncs_and_answers_ok)
{
	open_on(qfd, NULL);
	uint16_t head = offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(1, 2000);
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(fake_used_elem(&ring, 0).id, head);
	cr_assert_eq(fake_used_elem(&ring, 0).len, 4);
	cr_assert_eq(resp(0), 0);
	struct pmem_stats s = stats();
	cr_assert_eq(s.requests, 1);
	cr_assert_eq(s.syncs, 1);
	cr_assert_eq(s.errors, 0);
	cr_assert_eq(resets, 0);
}

/* Requests waiting together share one sync. */
Test(pmem, waiting_requests_share_a_sync)
{
	open_on(qfd, NULL);
	for (unsigned k = 0; k < 5; k++)
		offer_flush(k, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(5, 2000);
	cr_assert_eq(used_idx(), 5);
	for (unsigned k = 0; k < 5; k++)
		cr_assert_eq(resp(k), 0, "request %u", k);
	cr_assert_eq(stats().requests, 5);
	cr_assert_eq(stats().syncs, 1);
	/* One more later: a sync of its own. */
	offer_flush(5, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(6, 2000);
	cr_assert_eq(stats().syncs, 2);
}

/* A sync that fails (a pipe cannot be synced) answers 1, VIRTIO_PMEM's
 * I/O error, to every request it was for. */
Test(pmem, a_failed_sync_answers_an_error)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	open_on(p[0], NULL);
	offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	offer_flush(1, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(2, 2000);
	cr_assert_eq(used_idx(), 2);
	cr_assert_eq(resp(0), 1);
	cr_assert_eq(resp(1), 1);
	cr_assert_eq(fake_used_elem(&ring, 1).len, 4);
	cr_assert_eq(stats().errors, 1);
	cr_assert_eq(resets, 0, "the queue still works");
	pmem_destroy(d);
	d = NULL;
	close(p[0]);
	close(p[1]);
}

/* Chains that are no flush request come back empty, counted; one after a
 * good request waits for the next batch, so that the good one is
 * answered by its sync and the bad one after. */
Test(pmem, chains_that_are_no_request_come_back_empty)
{
	open_on(qfd, NULL);
	struct sg no_resp = {req_at(1), 4, false};
	struct sg short_req[2] = {{req_at(2), 2, false}, {req_at(2) + 8, 4, true}};
	struct sg short_resp[2] = {{req_at(3), 4, false}, {req_at(3) + 8, 2, true}};
	struct sg only_w = {req_at(4) + 8, 4, true};

	uint16_t good = offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	fake_offer(&ring, &no_resp, 1);
	fake_offer(&ring, short_req, 2);
	fake_offer(&ring, short_resp, 2);
	fake_offer(&ring, &only_w, 1);
	offer_flush(5, 7); /* an unknown type */
	memset(at(req_at(3) + 8, 4), 0xee, 4);
	kick();
	run_until(6, 2000);
	cr_assert_eq(used_idx(), 6);
	cr_assert_eq(fake_used_elem(&ring, 0).id, good);
	cr_assert_eq(fake_used_elem(&ring, 0).len, 4);
	cr_assert_eq(resp(0), 0);
	for (uint16_t k = 1; k < 6; k++)
		cr_assert_eq(fake_used_elem(&ring, k).len, 0, "chain %u", k);
	cr_assert_eq(resp(5), 0xeeeeeeee, "an unknown request is not answered");
	cr_assert_eq(stats().errors, 5);
	cr_assert_eq(stats().requests, 1);
	cr_assert_eq(resets, 0);
}

/* Chains that are no request are given back at once: a notification
 * takes at most VIRTIO_BUDGET of them, a full queue of the largest size,
 * and asks to be notified again rather than look for more (a driver adding
 * chains as fast as they are given back would hold the loop thread); that
 * notification takes what came since. The largest queue holds
 * VIRTIO_BUDGET chains, so the budget runs out as the queue empties: the
 * device asks again without looking, as it does with chains waiting. */
Test(pmem, a_notification_takes_at_most_the_budget)
{
	struct sg only_w = {req_at(0) + 8, 4, true};

	qsize = PMEM_QUEUE_MAX;
	open_on(qfd, NULL);
	for (unsigned i = 0; i < PMEM_QUEUE_MAX; i++)
		fake_offer(&ring, &only_w, 1);
	kick();
	cr_assert_eq(stats().errors, VIRTIO_BUDGET);
	cr_assert_eq(again_calls, 1);
	fake_offer(&ring, &only_w, 1);
	kick();
	cr_assert_eq(stats().errors, VIRTIO_BUDGET + 1);
	cr_assert_eq(again_calls, 1);
	cr_assert_eq(used_idx(), VIRTIO_BUDGET + 1);
	cr_assert_eq(resets, 0);
}

/* A chain vq_pop refuses (a buffer outside RAM) breaks the queue. */
Test(pmem, a_broken_queue_needs_reset)
{
	open_on(qfd, NULL);
	struct sg s[2] = {{RAM + 0x1000, 4, false}, {req_at(0) + 8, 4, true}};

	fake_offer(&ring, s, 2);
	kick();
	cr_assert_eq(resets, 1);
	cr_assert_eq(stats().protocol_errors, 1);
	offer_flush(1, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	cr_assert_eq(used_idx(), 0, "nothing more until reset");
	/* The driver's reset, then a fresh queue works again. */
	pmem_ops.reset(d);
	activate_fresh();
	offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(1, 2000);
	cr_assert_eq(resp(0), 0);
}

/* The limiter: one sync per 200 ms. The second batch is held, counted
 * once, and answered when the bucket refills; a snapshot's quiesce gives
 * a held batch back to the available ring. */
Test(pmem, the_limiter_holds_a_batch)
{
	struct ratelimit_cfg cfg = {.ops = {.size = 1, .refill_time_ms = 200}};

	open_on(qfd, &cfg);
	offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(1, 2000);
	cr_assert_eq(used_idx(), 1);
	offer_flush(1, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	offer_flush(2, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	kick();
	cr_assert_eq(used_idx(), 1, "held");
	cr_assert_eq(stats().rate_limiter_throttled, 1);
	cr_assert_eq(q.last_avail, 3);
	run_until(3, 2000);
	cr_assert_eq(used_idx(), 3);
	cr_assert_eq(resp(2), 0);
	cr_assert_eq(stats().syncs, 2);
	cr_assert_eq(stats().rate_limiter_throttled, 1);

	/* Held again, then given back by quiesce: the ring offers it anew. */
	offer_flush(3, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	cr_assert_eq(q.last_avail, 4);
	pmem_quiesce(d);
	cr_assert_eq(q.last_avail, 3, "the held request is available again");
	run_until(4, 2000);
	cr_assert_eq(used_idx(), 4, "taken up again after the refill");
	cr_assert_eq(resp(3), 0);
}

/* A new limit lets a held batch go at once. */
Test(pmem, a_new_limit_frees_a_held_batch)
{
	struct ratelimit_cfg slow = {.ops = {.size = 1, .refill_time_ms = 60000}};
	struct ratelimit_cfg none = {0};

	open_on(qfd, &slow);
	offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(1, 2000);
	offer_flush(1, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(pmem_set_ratelimit(d, &none), 0);
	run_until(2, 2000);
	cr_assert_eq(used_idx(), 2);
	cr_assert_eq(resp(1), 0);
	struct ratelimit_cfg huge = {.ops = {.size = UINT64_MAX, .refill_time_ms = 1}};
	cr_assert_eq(pmem_set_ratelimit(d, &huge), -EINVAL);
}

/* A reset while a sync runs waits for it and answers nothing: the guest
 * has forgotten the requests. The device works again once activated. */
Test(pmem, a_reset_during_a_sync)
{
	open_on(qfd, NULL);
	offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick(); /* the sync is submitted; nothing reaps it until the loop runs */
	pmem_ops.reset(d);
	cr_assert_eq(used_idx(), 0);
	cr_assert_eq(resp(0), 0xeeeeeeee);
	activate_fresh();
	offer_flush(1, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	run_until(1, 2000);
	cr_assert_eq(resp(1), 0);
}

/* A snapshot: the drain waits for the loop to answer a sync (here the
 * loop does not run: the deadline passes), the quiesce answers it itself;
 * then the drain has nothing to wait for. */
Test(pmem, drain_and_quiesce_during_a_sync)
{
	open_on(qfd, NULL);
	offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	cr_assert_eq(pmem_drain(d, now_ns() + 20 * 1000000ull), -ETIMEDOUT);
	pmem_quiesce(d);
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(resp(0), 0);
	cr_assert_eq(used_calls, 1, "the quiesce told the transport");
	cr_assert_eq(pmem_drain(d, now_ns()), 0);
	cr_assert_eq(q.last_avail, 1);
}

/* A submit the kernel refuses (short of memory) stays queued and goes
 * again from a timer: the loop never waits for the sync. */
Test(pmem, a_refused_submit_is_retried)
{
	open_on(qfd, NULL);
	blk_ring_fail_submits(2, -EAGAIN);
	offer_flush(0, VIRTIO_PMEM_REQ_TYPE_FLUSH);
	kick();
	cr_assert_eq(used_idx(), 0, "not answered inside notify");
	run_until(1, 2000);
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(resp(0), 0);
	cr_assert_eq(blk_ring_fail_submits(0, 0), 0, "both refusals were used");
	cr_assert_eq(stats().errors, 0);
}

/* A queue larger than the device takes is refused at activation. */
Test(pmem, activation_checks_the_queue)
{
	struct pmem_params p = {.id = "p", .fd = qfd, .loop = loop};
	struct vq big = {.ready = true, .size = 512};

	cr_assert_eq(pmem_create(&d, &p), 0);
	cr_assert_eq(pmem_ops.activate(d, 0, &big, &host), -EINVAL);
	cr_assert_eq(stats().activate_fails, 1);
	p.fd = -1;
	struct pmem *e;
	cr_assert_eq(pmem_create(&e, &p), -EINVAL);
}

/* ---- the device kind: the file mapped into the guest ---------------- */

static uint64_t next_gpa;
static unsigned maps;
static bool mapped_ro;

static int fake_map(void *ctx, void *host_mem, uint64_t size, bool read_only, uint64_t *gpa)
{
	(void)ctx, (void)host_mem;
	cr_assert_eq(size % DEVICE_MEMMAP_ALIGN, 0);
	*gpa = next_gpa;
	next_gpa += size;
	maps++;
	mapped_ro = read_only;
	return 0;
}

static const struct device_memmap memmap = {.map = fake_map};

static struct vm_config kc;

static void kind_setup(void)
{
	setup();
	vm_config_init(&kc);
	next_gpa = 0x140000000ULL;
	maps = 0;
}

static void kind_teardown(void)
{
	vm_config_free(&kc);
	teardown();
}

static void add(const char *id, const char *file, bool ro)
{
	char err[256];
	struct vmc_pmem p = {.id = strdup(id), .path_on_host = strdup(file), .read_only = ro};

	cr_assert_eq(vm_config_put_pmem(&kc, &p, err, sizeof(err)), 0, "%s", err);
}

static int create(unsigned i, struct device_new *out)
{
	struct device_env env = {.loop = loop, .memmap = &memmap};
	return pmem_kind.create(&kc, i, kc.pmem[i].id, &env, out);
}

/* The mapping is the file (shared both ways), padded to 2 MiB; the queue
 * reports where it lies; save and restore check place and size. */
Test(pmem_kind, maps_the_file, .init = kind_setup, .fini = kind_teardown, .timeout = 10)
{
	struct device_new n;
	struct virtio_pmem_config cfg;

	cr_assert_eq(pwrite(fd, "hello", 5, 0), 5);
	add("p0", path, false);
	cr_assert_eq(create(0, &n), 0);
	cr_assert_eq(maps, 1);
	cr_assert_not(mapped_ro);
	n.ops->config_read(n.front, 0, &cfg, sizeof(cfg));
	cr_assert_eq(le64toh(cfg.start), 0x140000000ULL);
	cr_assert_eq(le64toh(cfg.size), 4 << 20, "3 MiB padded to 4");

	/* The device's own mapping: find it through its save, then through
	 * the file: a write to the file shows, and a write through the
	 * mapping reaches the file. */
	struct wbuf w;
	wbuf_init(&w);
	cr_assert_eq(pmem_kind.save(n.priv, &w), 0);
	struct rbuf r;
	char err[256];
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(pmem_kind.restore(n.priv, &r, err, sizeof(err)), 0, "%s", err);
	/* Another size or place is refused, naming it. */
	uint8_t *bytes = w.p;
	bytes[4 + 8 + 2] ^= 0x40; /* the size (after the version and the place): 4 MiB -> 0 */
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(pmem_kind.restore(n.priv, &r, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "must be the size it was"), "%s", err);
	bytes[4 + 8 + 2] ^= 0x40;
	bytes[4] ^= 0x01; /* the place */
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(pmem_kind.restore(n.priv, &r, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "in the snapshot at"), "%s", err);
	rbuf_init(&r, w.p, 6);
	cr_assert_eq(pmem_kind.restore(n.priv, &r, err, sizeof(err)), -EBADMSG);
	/* Version 2 holds the limiter's state; version 1 (before it was
	 * saved), the place and size only, is taken as it is. */
	bytes[4] ^= 0x01;
	cr_assert_eq(w.len, 4 + 8 + 8 + 16 * 8);
	bytes[0] = 1;
	rbuf_init(&r, w.p, 4 + 8 + 8);
	cr_assert_eq(pmem_kind.restore(n.priv, &r, err, sizeof(err)), 0, "%s", err);
	bytes[0] = 3;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(pmem_kind.restore(n.priv, &r, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "of another version"), "%s", err);
	wbuf_free(&w);

	/* A second device lands after the first. */
	int fd2;
	char path2[64];
	snprintf(path2, sizeof(path2), "/tmp/flint-pmem-test-XXXXXX");
	cr_assert_geq(fd2 = mkstemp(path2), 0);
	cr_assert_eq(ftruncate(fd2, 4096), 0);
	add("p1", path2, true);
	struct device_new n2;
	cr_assert_eq(create(1, &n2), 0);
	cr_assert(mapped_ro);
	n2.ops->config_read(n2.front, 0, &cfg, sizeof(cfg));
	cr_assert_eq(le64toh(cfg.start), 0x140000000ULL + (4 << 20));
	cr_assert_eq(le64toh(cfg.size), 2 << 20);
	pmem_kind.destroy(n2.priv);
	pmem_kind.destroy(n.priv);
	close(fd2);
	unlink(path2);
}

static void *seen;

static int see(void *ctx, void *host_mem, uint64_t size, bool ro, uint64_t *gpa)
{
	(void)ctx, (void)size, (void)ro;
	seen = host_mem;
	*gpa = 0x140000000ULL;
	return 0;
}

/* The guest's stores reach the file: what the kind mapped is MAP_SHARED. */
Test(pmem_kind, stores_reach_the_file, .init = kind_setup, .fini = kind_teardown, .timeout = 10)
{
	static const struct device_memmap mm = {.map = see};
	struct device_env env = {.loop = loop, .memmap = &mm};
	struct device_new n;
	char buf[6] = "";

	add("p0", path, false);
	cr_assert_eq(pmem_kind.create(&kc, 0, "p0", &env, &n), 0);
	cr_assert_eq((uintptr_t)seen % DEVICE_MEMMAP_ALIGN, 0, "the mapping is 2 MiB aligned");
	memcpy(seen, "guest", 5);
	cr_assert_eq(pread(fd, buf, 5, 0), 5);
	cr_assert_str_eq(buf, "guest");
	cr_assert_eq(pwrite(fd, "host!", 5, 10), 5);
	cr_assert_eq(memcmp((char *)seen + 10, "host!", 5), 0);
	/* Past the file's end, inside the padding: memory, not the file. */
	((char *)seen)[(3 << 20) + 5] = 1;
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 3 << 20);
	pmem_kind.destroy(n.priv);
}

/* Bad files get a message naming them and leave nothing behind; a file
 * one device writes cannot be another's. */
Test(pmem_kind, bad_files, .init = kind_setup, .fini = kind_teardown, .timeout = 10)
{
	struct device_new n, n2;
	char empty[64];
	int efd;

	add("missing", "/nonexistent/pmem.img", false);
	cr_assert_eq(create(0, &n), -ENOENT);
	snprintf(empty, sizeof(empty), "/tmp/flint-pmem-test-XXXXXX");
	cr_assert_geq(efd = mkstemp(empty), 0);
	add("empty", empty, false);
	cr_assert_eq(create(1, &n), -EINVAL);
	add("dir", "/tmp", true);
	cr_assert_eq(create(2, &n), -EINVAL);
	cr_assert_eq(maps, 0, "nothing mapped into the guest");
	add("a", path, false);
	add("b", path, true);
	cr_assert_eq(create(3, &n), 0);
	cr_assert_eq(create(4, &n2), -EBUSY, "in use read-write by another device");
	struct device_env none = {.loop = loop};
	cr_assert_eq(pmem_kind.create(&kc, 4, "b", &none, &n2), -EOPNOTSUPP);
	pmem_kind.destroy(n.priv);
	cr_assert_eq(create(4, &n2), 0, "free again once the first is gone");
	pmem_kind.destroy(n2.priv);
	close(efd);
	unlink(empty);
}
