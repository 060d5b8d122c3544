/* virtio-balloon: the whole device against fake guest memory, its three
 * queues laid out by the fake driver, and a real event loop run in the
 * test thread for the statistics timer. The helpers play the guest's
 * driver. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/userfaultfd.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "balloon/balloon.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/wire.h"
#include "fake_driver.h"
#include "loop_watchdog.h"
#include "snapshot/uffd.h"
#include "vq.h"

#define RAM   (4u << 20)
#define BUF   0x20000  /* the driver's frame lists and statistics */
#define PAGES 0x100000 /* the pages it gives */
#define PFN0  (PAGES / 4096)

static struct gmem *g;
#define NQ 5

static struct vq qs[NQ];
static struct fake_ring rings[NQ];
static struct evloop *loop;
static struct balloon *b;
static unsigned used_calls[NQ], resets, config_changes;
static unsigned stop_q;
static uint16_t stop_at;

static void *at(uint64_t gpa, uint64_t len)
{
	return fake_at(g, gpa, len);
}

static void host_used(void *t, unsigned q)
{
	(void)t;
	cr_assert_lt(q, NQ);
	used_calls[q]++;
	if (q == stop_q && fake_used_idx(&rings[q]) >= stop_at)
		evloop_stop(loop);
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets++;
}

static void host_config_changed(void *t)
{
	(void)t;
	config_changes++;
}

static unsigned again_calls[NQ];

static void host_again(void *t, unsigned q)
{
	(void)t;
	cr_assert_lt(q, NQ);
	again_calls[q]++;
}

static const struct virtio_host host = {.used = host_used,
					.needs_reset = host_needs_reset,
					.config_changed = host_config_changed,
					.again = host_again};
/* The queues' size for make_dev. */
static uint16_t qsize;

static void setup(void)
{
	cr_assert_eq(gmem_create(&g, RAM), 0);
	cr_assert_eq(evloop_create(&loop, 64), 0);
	memset(used_calls, 0, sizeof(used_calls));
	memset(again_calls, 0, sizeof(again_calls));
	resets = config_changes = 0;
	stop_q = NQ;
	qsize = 16;
}

static void teardown(void)
{
	evloop_destroy(loop); /* before the device: it may hold its timer */
	balloon_destroy(b);
	b = NULL;
	gmem_destroy(g);
}

TestSuite(balloon, .init = setup, .fini = teardown, .timeout = 20);

/* The device made with p (its loop filled in), its queues ready but not
 * activated. */
static void make_dev(struct balloon_params p)
{
	p.loop = loop;
	cr_assert_eq(balloon_create(&b, &p), 0);
	for (unsigned i = 0; i < NQ; i++) {
		uint64_t base = 0x1000 + i * 0x4000;

		rings[i] =
		    (struct fake_ring){.desc = base, .avail = base + 0x1000, .used = base + 0x2000};
		vq_reset(&qs[i]);
		fake_ring_reset(&rings[i], g, qsize);
		memset(at(base, 0x3000), 0, 0x3000);
		cr_assert_eq(vq_activate(&qs[i], g, qsize, rings[i].desc, rings[i].avail,
					 rings[i].used, true),
			     0);
	}
}

/* make_dev, then DRIVER_OK; features: what the driver acknowledged. */
static void open_dev(struct balloon_params p, uint64_t features)
{
	make_dev(p);
	cr_assert_eq(balloon_ops.activate(b, features, qs, &host), 0);
}

/* A second device, on a loop of its own (a device with statistics polls
 * its loop from its creation: the loop goes first at the end). */
static struct evloop *other_loop;

static struct balloon *other_dev(struct balloon_params p)
{
	struct balloon *o;

	cr_assert_eq(evloop_create(&other_loop, 8), 0);
	p.loop = other_loop;
	cr_assert_eq(balloon_create(&o, &p), 0);
	return o;
}

static void other_free(struct balloon *o)
{
	evloop_destroy(other_loop);
	balloon_destroy(o);
}

static const uint64_t STATS = 1ull << VIRTIO_BALLOON_F_STATS_VQ;

/* Offer a list of frames on queue q (one readable buffer) and kick. */
static uint16_t give(unsigned q, const uint32_t *pfn, unsigned n, uint32_t len)
{
	struct sg s = {BUF + q * 0x1000, len, false};
	uint16_t head;

	for (unsigned i = 0; i < n; i++) {
		uint32_t le = htole32(pfn[i]);
		memcpy(at(s.gpa + 4 * i, 4), &le, 4);
	}
	head = fake_offer(&rings[q], &s, 1);
	balloon_ops.notify(b, q);
	return head;
}

/* Whether the driver's next offer on queue q would kick: with EVENT_IDX
 * (Linux's way), the avail_event the device left in the used ring is the
 * avail index the driver published last. */
static bool next_offer_kicks(unsigned q)
{
	uint16_t ev = *(uint16_t *)at(rings[q].used + 4 + 8 * 16, 2);

	return le16toh(ev) == rings[q].avail_idx;
}

static struct balloon_counters counters(void)
{
	struct balloon_counters n;
	balloon_get_counters(b, &n);
	return n;
}

static struct balloon_info info(void)
{
	struct balloon_info in;
	balloon_get_info(b, &in);
	return in;
}

static uint8_t page_byte(unsigned i)
{
	return *(uint8_t *)at(PAGES + i * 4096ull, 1);
}

Test(balloon, features_follow_the_parameters)
{
	open_dev((struct balloon_params){.target_pages = 1}, 0);
	cr_assert_eq(balloon_ops.device_id, VIRTIO_ID_BALLOON);
	cr_assert_eq(balloon_ops.num_queues, 5);
	cr_assert_eq(balloon_ops.features(b), 0);
	struct balloon *o =
	    other_dev((struct balloon_params){.deflate_on_oom = true, .stats_interval_s = 2});
	cr_assert_eq(balloon_ops.features(o), STATS | 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	other_free(o);
	o = other_dev((struct balloon_params){.free_page_hinting = true});
	cr_assert_eq(balloon_ops.features(o), 1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT);
	other_free(o);
	cr_assert_eq(balloon_create(&(struct balloon *){NULL}, &(struct balloon_params){0}),
		     -EINVAL, "no loop");
}

Test(balloon, config_space_target_and_actual)
{
	uint32_t cfg[3], v = htole32(77), bogus = htole32(5);

	open_dev((struct balloon_params){.target_pages = 256}, 0);
	balloon_ops.config_read(b, 0, cfg, sizeof(cfg));
	cr_assert_eq(le32toh(cfg[0]), 256);
	cr_assert_eq(cfg[1], 0);
	cr_assert_eq(cfg[2], 0, "past the space: zeros");
	balloon_ops.config_write(b, 4, &v, 4);
	balloon_ops.config_write(b, 0, &bogus, 4); /* num_pages is the host's */
	balloon_ops.config_write(b, 5, &bogus, 2); /* not actual, whole */
	balloon_ops.config_read(b, 0, cfg, 8);
	cr_assert_eq(le32toh(cfg[0]), 256);
	cr_assert_eq(le32toh(cfg[1]), 77);
	cr_assert_eq(info().actual_pages, 77);

	balloon_set_target(b, 512);
	cr_assert_eq(config_changes, 1, "the running driver is told");
	balloon_ops.config_read(b, 0, cfg, 4);
	cr_assert_eq(le32toh(cfg[0]), 512);
	balloon_ops.reset(b);
	balloon_set_target(b, 1024);
	cr_assert_eq(config_changes, 1, "no interrupt for a reset device");
	cr_assert_eq(info().target_pages, 1024);
}

/* The pages given back read as zeros afterwards; those around them keep
 * what the guest wrote. Frames out of order and in runs. */
Test(balloon, inflate_gives_the_pages_back)
{
	uint32_t pfn[] = {PFN0 + 1, PFN0 + 2, PFN0 + 3, PFN0 + 7, PFN0 + 5};
	struct balloon_counters n;
	uint16_t head;

	open_dev((struct balloon_params){.target_pages = 5}, 0);
	memset(at(PAGES, 10 * 4096), 0xaa, 10 * 4096);
	head = give(0, pfn, 5, sizeof(pfn));
	cr_assert_eq(fake_used_idx(&rings[0]), 1);
	cr_assert_eq(fake_used_elem(&rings[0], 0).id, head);
	cr_assert_eq(fake_used_elem(&rings[0], 0).len, 0);
	cr_assert_eq(used_calls[0], 1);
	for (unsigned i = 0; i < 10; i++) {
		bool given = i == 1 || i == 2 || i == 3 || i == 5 || i == 7;
		cr_assert_eq(page_byte(i), given ? 0 : 0xaa, "page %u", i);
	}
	n = counters();
	cr_assert_eq(n.inflate_count, 1);
	cr_assert_eq(n.pages_inflated, 5);
	cr_assert_eq(n.event_fails, 0);
	cr_assert_eq(resets, 0);
}

/* A chain listing more frames than any driver sends is given back
 * untouched, and counted. */
Test(balloon, an_oversized_frame_list_is_given_back_untouched)
{
	uint32_t pfn[BALLOON_FRAMES_MAX + 1];

	open_dev((struct balloon_params){0}, 0);
	for (unsigned i = 0; i <= BALLOON_FRAMES_MAX; i++)
		pfn[i] = PFN0 + 2 * (i % 4);
	memset(at(PAGES, 8 * 4096), 0xaa, 8 * 4096);
	give(0, pfn, BALLOON_FRAMES_MAX + 1, sizeof(pfn));
	cr_assert_eq(fake_used_idx(&rings[0]), 1);
	for (unsigned i = 0; i < 8; i++)
		cr_assert_eq(page_byte(i), 0xaa, "page %u", i);
	cr_assert_eq(counters().pages_inflated, 0);
	cr_assert_eq(counters().event_fails, 1);
	give(0, pfn, BALLOON_FRAMES_MAX, BALLOON_FRAMES_MAX * 4);
	cr_assert_eq(page_byte(0), 0, "the most a driver sends is taken");
	cr_assert_eq(counters().pages_inflated, BALLOON_FRAMES_MAX);
}

Test(balloon, deflate_only_counts)
{
	uint32_t pfn[] = {PFN0, PFN0 + 1};

	open_dev((struct balloon_params){0}, 0);
	memset(at(PAGES, 2 * 4096), 0xaa, 2 * 4096);
	give(1, pfn, 2, sizeof(pfn));
	cr_assert_eq(fake_used_idx(&rings[1]), 1);
	cr_assert_eq(page_byte(0), 0xaa);
	cr_assert_eq(page_byte(1), 0xaa);
	cr_assert_eq(counters().deflate_count, 1);
	cr_assert_eq(counters().pages_deflated, 2);
}

/* A notification takes at most VIRTIO_BUDGET chains, a full queue of the
 * largest size, and then asks to be notified again rather than look for
 * more (a driver adding chains as fast as they are used would hold the
 * device's thread); that notification takes what came since. */
Test(balloon, a_notification_takes_at_most_the_budget)
{
	uint32_t le = htole32(PFN0);
	struct sg s = {BUF + 0x1000, 4, false};

	qsize = BALLOON_QUEUE_MAX;
	open_dev((struct balloon_params){0}, 0);
	memcpy(at(s.gpa, 4), &le, 4);
	for (unsigned i = 0; i < BALLOON_QUEUE_MAX; i++)
		fake_offer(&rings[1], &s, 1);
	balloon_ops.notify(b, 1);
	cr_assert_eq(counters().deflate_count, VIRTIO_BUDGET);
	cr_assert_eq(again_calls[1], 1);
	fake_offer(&rings[1], &s, 1);
	balloon_ops.notify(b, 1);
	cr_assert_eq(counters().deflate_count, VIRTIO_BUDGET + 1);
	cr_assert_eq(again_calls[1], 1);
	cr_assert_eq(resets, 0);
}

/* A hostile driver: a frame outside RAM (and one whose run would wrap), a
 * frame cut short, a writable buffer. Each chain is given back, counted,
 * and nothing outside what it named in RAM is touched. */
Test(balloon, bad_frames_are_counted_and_touch_nothing_else)
{
	uint32_t pfn[] = {PFN0, RAM / 4096, 0xffffffffu, PFN0 + 2};
	struct sg w = {BUF + 0x3000, 8, true};

	open_dev((struct balloon_params){0}, 0);
	memset(at(PAGES, 4 * 4096), 0xaa, 4 * 4096);
	give(0, pfn, 4, sizeof(pfn));
	cr_assert_eq(fake_used_idx(&rings[0]), 1);
	cr_assert_eq(page_byte(0), 0, "the good frames are still given back");
	cr_assert_eq(page_byte(1), 0xaa);
	cr_assert_eq(page_byte(2), 0);
	cr_assert_eq(counters().discard_fails, 2);

	give(0, pfn, 1, 6); /* one frame and half of the next */
	cr_assert_eq(fake_used_idx(&rings[0]), 2);
	cr_assert_eq(counters().pages_inflated, 5);

	fake_offer(&rings[0], &w, 1);
	balloon_ops.notify(b, 0);
	cr_assert_eq(fake_used_idx(&rings[0]), 3);
	cr_assert_eq(counters().event_fails, 4);
	cr_assert_eq(resets, 0, "bad contents are not a broken queue");
}

/* Write one statistics chain of n entries at gpa (its length: n * 10). */
static uint32_t put_stats(uint64_t gpa, const uint16_t *tag, const uint64_t *val, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t t = htole16(tag[i]);
		uint64_t v = htole64(val[i]);

		memcpy(at(gpa + 10 * i, 2), &t, 2);
		memcpy(at(gpa + 10 * i + 2, 8), &v, 8);
	}
	return 10 * n;
}

/* Run the loop until queue q's used index reaches k or ms passed. */
static void run_until(unsigned q, uint16_t k, unsigned ms)
{
	stop_q = q;
	stop_at = k;
	if (fake_used_idx(&rings[q]) < k)
		loop_run_for(loop, ms);
	stop_q = NQ;
}

Test(balloon, statistics_are_kept_held_and_asked_for_again)
{
	uint16_t tag[] = {VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT, 99};
	uint64_t val[] = {1000, 4000, 7};
	struct sg s = {BUF + 0x2000, 0, false};
	struct balloon_info in;
	uint16_t head;

	open_dev((struct balloon_params){.stats_interval_s = 1}, STATS);
	s.len = put_stats(s.gpa, tag, val, 3);
	head = fake_offer(&rings[2], &s, 1);
	balloon_ops.notify(b, 2);
	cr_assert_eq(fake_used_idx(&rings[2]), 0, "held until the interval is over");
	cr_assert(next_offer_kicks(2), "the driver's next offer must kick");
	in = info();
	cr_assert(in.have[VIRTIO_BALLOON_S_MEMFREE] && in.have[VIRTIO_BALLOON_S_MEMTOT]);
	cr_assert_eq(in.stat[VIRTIO_BALLOON_S_MEMFREE], 1000);
	cr_assert_eq(in.stat[VIRTIO_BALLOON_S_MEMTOT], 4000);
	cr_assert_not(in.have[VIRTIO_BALLOON_S_SWAP_IN]);
	cr_assert_eq(counters().stats_updates_count, 1);

	run_until(2, 1, 3000);
	cr_assert_eq(fake_used_idx(&rings[2]), 1, "given back after the interval");
	cr_assert_eq(fake_used_elem(&rings[2], 0).id, head);

	/* The driver offers it again, filled anew; a new interval asks at once
	 * (within 300 ms: not the 1 s timer armed as it was taken again). */
	val[0] = 500;
	head = fake_offer(&rings[2], &s, 1);
	put_stats(s.gpa, tag, val, 1);
	balloon_ops.notify(b, 2);
	cr_assert_eq(info().stat[VIRTIO_BALLOON_S_MEMFREE], 500);
	cr_assert(next_offer_kicks(2));
	cr_assert_eq(balloon_set_stats_interval(b, 60), 0);
	run_until(2, 2, 300);
	cr_assert_eq(fake_used_idx(&rings[2]), 2, "asked at once");
	cr_assert_eq(info().stats_interval_s, 60);
	cr_assert_eq(balloon_set_stats_interval(b, 0), -EINVAL, "cannot turn them off");
}

/* A snapshot's quiesce gives the held chain back to the ring; the kick
 * after it takes it again without counting an update. */
Test(balloon, quiesce_requeues_the_statistics_chain)
{
	uint16_t tag[] = {VIRTIO_BALLOON_S_MEMFREE};
	uint64_t val[] = {77};
	struct sg s = {BUF + 0x2000, 0, false};

	open_dev((struct balloon_params){.stats_interval_s = 30}, STATS);
	s.len = put_stats(s.gpa, tag, val, 1);
	fake_offer(&rings[2], &s, 1);
	balloon_ops.notify(b, 2);
	cr_assert_not(vq_has_work(&qs[2]));
	balloon_quiesce(b);
	cr_assert(vq_has_work(&qs[2]), "offered again");
	cr_assert_eq(fake_used_idx(&rings[2]), 0, "not used: a snapshot shows it available");
	balloon_ops.notify(b, 2);
	cr_assert_not(vq_has_work(&qs[2]), "taken again");
	cr_assert_eq(counters().stats_updates_count, 1, "not a second update");
	cr_assert_eq(info().stat[VIRTIO_BALLOON_S_MEMFREE], 77);
}

/* Linux's driver offers its first statistics while it probes, before
 * DRIVER_OK: activation has the loop take them, and the interval's timer
 * then gives the chain back. */
Test(balloon, statistics_offered_before_activation)
{
	uint16_t tag[] = {VIRTIO_BALLOON_S_MEMTOT};
	uint64_t val[] = {4096};
	struct sg s = {BUF + 0x2000, 0, false};
	uint16_t head;

	make_dev((struct balloon_params){.stats_interval_s = 1});
	s.len = put_stats(s.gpa, tag, val, 1);
	head = fake_offer(&rings[2], &s, 1);
	balloon_ops.notify(b, 2); /* the kick before DRIVER_OK: not taken */
	cr_assert_eq(counters().stats_updates_count, 0);
	cr_assert_eq(balloon_ops.activate(b, STATS, qs, &host), 0);
	run_until(2, 1, 3000);
	cr_assert_eq(fake_used_idx(&rings[2]), 1);
	cr_assert_eq(fake_used_elem(&rings[2], 0).id, head);
	cr_assert_eq(info().stat[VIRTIO_BALLOON_S_MEMTOT], 4096);
	cr_assert_eq(counters().stats_updates_count, 1);
	cr_assert(next_offer_kicks(2));
}

static const uint64_t REPORTING = 1ull << VIRTIO_BALLOON_F_REPORTING;

/* Free page reports: each buffer's run of memory goes back to the host, on
 * queue 2, or 3 behind the statistics; a run outside RAM is counted. */
static void report_on(unsigned q)
{
	struct sg s[] = {{PAGES, 2 * 4096, true}, {PAGES + 4 * 4096, 4096, true}};
	struct balloon_counters n;

	memset(at(PAGES, 6 * 4096), 0xaa, 6 * 4096);
	fake_offer(&rings[q], s, 2);
	balloon_ops.notify(b, q);
	cr_assert_eq(fake_used_idx(&rings[q]), 1);
	cr_assert_eq(fake_used_elem(&rings[q], 0).len, 0);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(page_byte(i), i < 2 || i == 4 ? 0 : 0xaa, "page %u", i);
	n = counters();
	cr_assert_eq(n.free_page_report_count, 1);
	cr_assert_eq(n.free_page_report_freed, 3 * 4096);
	cr_assert_eq(n.free_page_report_fails, 0);
}

Test(balloon, free_page_reports_without_statistics)
{
	open_dev((struct balloon_params){.free_page_reporting = true}, REPORTING);
	cr_assert_eq(balloon_ops.features(b), REPORTING);
	report_on(2);
}

Test(balloon, free_page_reports_behind_statistics)
{
	open_dev((struct balloon_params){.free_page_reporting = true, .stats_interval_s = 9},
		 STATS | REPORTING);
	report_on(3);
	cr_assert_eq(counters().stats_updates_count, 0, "not taken for statistics");
	/* Not negotiated: queue 3 is nobody's. */
	balloon_ops.reset(b);
	cr_assert_eq(balloon_ops.activate(b, STATS, qs, &host), 0);
	fake_offer(&rings[3], &(struct sg){PAGES, 4096, true}, 1);
	balloon_ops.notify(b, 3);
	cr_assert_eq(counters().free_page_report_count, 1);
}

static const uint64_t HINTING = 1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT;

/* The host's hinting command in the configuration space. */
static uint32_t host_cmd(void)
{
	uint32_t cfg[3];

	balloon_ops.config_read(b, 0, cfg, sizeof(cfg));
	return le32toh(cfg[2]);
}

/* The guest's driver sends command id on hint queue q (one le32,
 * device-readable) and kicks. */
static void guest_cmd(unsigned q, uint32_t id)
{
	uint32_t le = htole32(id);

	memcpy(at(BUF + 0x3000, 4), &le, 4);
	fake_offer(&rings[q], &(struct sg){BUF + 0x3000, 4, false}, 1);
	balloon_ops.notify(b, q);
}

/* The guest hints pages 0 and 1 (one device-writable block) on queue q;
 * whether the host dropped them (they read 0, not 0xaa). */
static bool hint_dropped(unsigned q)
{
	uint16_t used = fake_used_idx(&rings[q]);

	memset(at(PAGES, 2 * 4096), 0xaa, 2 * 4096);
	fake_offer(&rings[q], &(struct sg){PAGES, 2 * 4096, true}, 1);
	balloon_ops.notify(b, q);
	cr_assert_eq(fake_used_idx(&rings[q]), used + 1, "the hint was given back");
	cr_assert_eq(fake_used_elem(&rings[q], used).len, 0);
	cr_assert_eq(page_byte(0), page_byte(1));
	return page_byte(0) == 0;
}

static struct balloon_hint_status hint_status(void)
{
	struct balloon_hint_status st;

	cr_assert_eq(balloon_hint_status(b, &st), 0);
	return st;
}

/* A hinting run: hints before any run, and once the host said DONE, are
 * given back untouched; between the guest's start of the host's run and
 * its end, they go back to the host; the guest's end of the run gets DONE
 * at once (ack_on_stop). */
Test(balloon, free_page_hinting_run)
{
	open_dev((struct balloon_params){.free_page_hinting = true}, HINTING);
	cr_assert_eq(host_cmd(), VIRTIO_BALLOON_CMD_ID_STOP);
	cr_assert_not(hint_status().have_guest_cmd);
	cr_assert_not(hint_dropped(2), "no run");

	cr_assert_eq(balloon_hint_start(b, true), 0);
	cr_assert_eq(config_changes, 1);
	cr_assert_eq(host_cmd(), 2);
	cr_assert_not(hint_dropped(2), "a run the guest has not started");
	guest_cmd(2, 2);
	cr_assert(hint_status().have_guest_cmd);
	cr_assert_eq(hint_status().guest_cmd, 2);
	cr_assert(hint_dropped(2));
	guest_cmd(2, VIRTIO_BALLOON_CMD_ID_STOP);
	cr_assert_eq(host_cmd(), VIRTIO_BALLOON_CMD_ID_DONE, "acknowledged at once");
	cr_assert_eq(config_changes, 2);
	cr_assert_eq(hint_status().guest_cmd, VIRTIO_BALLOON_CMD_ID_STOP);
	cr_assert_not(hint_dropped(2), "the guest has its blocks back");

	struct balloon_counters n = counters();
	cr_assert_eq(n.free_page_hint_count, 4, "the hinted blocks");
	cr_assert_eq(n.free_page_hint_freed, 2 * 4096);
	cr_assert_eq(n.free_page_hint_fails, 0);
	cr_assert_eq(resets, 0);
}

/* Without ack_on_stop the run stays the host's until it says DONE; a new
 * run's id is the next one, and a STOP that ends the guest's older run
 * does not end it; hints of a run the host has moved on from are not
 * dropped. Hinting sits behind statistics and before reports. */
Test(balloon, free_page_hinting_stop_and_runs)
{
	open_dev((struct balloon_params){.free_page_hinting = true,
					 .free_page_reporting = true,
					 .stats_interval_s = 9},
		 STATS | HINTING | REPORTING);
	cr_assert_eq(balloon_hint_start(b, false), 0);
	guest_cmd(3, 2);
	guest_cmd(3, VIRTIO_BALLOON_CMD_ID_STOP);
	cr_assert_eq(host_cmd(), 2, "not acknowledged");
	cr_assert_eq(balloon_hint_stop(b), 0);
	cr_assert_eq(host_cmd(), VIRTIO_BALLOON_CMD_ID_DONE);

	cr_assert_eq(balloon_hint_start(b, true), 0);
	cr_assert_eq(host_cmd(), 3);
	guest_cmd(3, 2); /* a start of the old run, late */
	cr_assert_not(hint_dropped(3));
	guest_cmd(3, VIRTIO_BALLOON_CMD_ID_STOP);
	cr_assert_eq(host_cmd(), 3, "the old run's end is not the new one's");
	guest_cmd(3, 3);
	cr_assert(hint_dropped(3));
	cr_assert_eq(balloon_hint_start(b, true), 0);
	cr_assert_eq(host_cmd(), 4);
	cr_assert_not(hint_dropped(3), "the host moved on to run 4");
	cr_assert_eq(counters().stats_updates_count, 0, "not the statistics queue");
	cr_assert_eq(counters().free_page_report_count, 0, "nor the reports'");
	report_on(4);
}

/* A command that is not one le32 is counted and changes nothing; a device
 * made without hinting refuses the host's requests. */
Test(balloon, free_page_hinting_refusals)
{
	open_dev((struct balloon_params){.free_page_hinting = true}, HINTING);
	cr_assert_eq(balloon_hint_start(b, true), 0);
	fake_offer(&rings[2], &(struct sg){BUF + 0x3000, 3, false}, 1);
	balloon_ops.notify(b, 2);
	cr_assert_eq(counters().free_page_hint_fails, 1);
	cr_assert_not(hint_status().have_guest_cmd);
	cr_assert_eq(fake_used_idx(&rings[2]), 1);

	struct balloon *o = other_dev((struct balloon_params){0});
	struct balloon_hint_status st;
	cr_assert_eq(balloon_hint_start(o, true), -EINVAL);
	cr_assert_eq(balloon_hint_stop(o), -EINVAL);
	cr_assert_eq(balloon_hint_status(o, &st), -EINVAL);
	other_free(o);
	o = other_dev((struct balloon_params){.free_page_hinting = true});
	cr_assert_eq(balloon_hint_start(o, true), -ENODEV, "not activated");
	cr_assert_eq(balloon_hint_status(o, &st), 0);
	cr_assert_eq(st.host_cmd, 0, "nothing changed");
	other_free(o);
}

Test(balloon, statistics_refusals)
{
	struct sg s = {BUF + 0x2000, 15, false};

	struct balloon *o = other_dev((struct balloon_params){0});

	cr_assert_eq(balloon_set_stats_interval(o, 5), -EINVAL, "cannot turn them on");
	/* Off, and asked to stay off: nothing to change, as Firecracker
	 * answers a PATCH of the interval it has (204, not 400). */
	cr_assert_eq(balloon_set_stats_interval(o, 0), 0);
	cr_assert_eq(balloon_set_stats_interval(o, 5), -EINVAL, "still off");
	other_free(o);

	open_dev((struct balloon_params){.stats_interval_s = 5}, 0);
	balloon_ops.notify(b, 2); /* no stats queue negotiated: nothing */
	cr_assert_eq(counters().stats_updates_count, 0);
	balloon_ops.reset(b);
	cr_assert_eq(balloon_ops.activate(b, STATS, qs, &host), 0);
	fake_offer(&rings[2], &s, 1);
	balloon_ops.notify(b, 2);
	cr_assert_eq(counters().stats_update_fails, 1, "not whole entries");
	/* A snapshot's quiesce offers the held chain again. */
	cr_assert_not(vq_has_work(&qs[2]));
	balloon_quiesce(b);
	cr_assert(vq_has_work(&qs[2]));
	cr_assert_eq(fake_used_idx(&rings[2]), 0);
}

/* A statistics chain of 20 MiB (whole entries, the guest's RAM five
 * times) is refused unread: it was read a byte at a time on the event
 * loop under the device's locks, and one of 4 GiB held them seconds. */
Test(balloon, an_oversized_statistics_chain_is_refused_unread)
{
	struct sg s[5];

	for (int i = 0; i < 5; i++)
		s[i] = (struct sg){0, RAM, false};
	open_dev((struct balloon_params){.stats_interval_s = 1}, STATS);
	fake_offer(&rings[2], s, 5);
	balloon_ops.notify(b, 2);
	cr_assert_eq(counters().stats_update_fails, 1);
	struct balloon_info in = info();
	for (int t = 0; t < BALLOON_NSTATS; t++)
		cr_assert_not(in.have[t], "tag %d taken from guest RAM", t);
}

Test(balloon, save_and_restore)
{
	uint16_t tag[] = {VIRTIO_BALLOON_S_AVAIL};
	uint64_t val[] = {123456};
	struct sg s = {BUF + 0x2000, 0, false};
	uint32_t actual = htole32(40);
	struct balloon *other;
	struct wbuf w;
	struct rbuf r;
	char err[256];

	open_dev((struct balloon_params){.target_pages = 64, .stats_interval_s = 5}, STATS);
	balloon_ops.config_write(b, 4, &actual, 4);
	s.len = put_stats(s.gpa, tag, val, 1);
	fake_offer(&rings[2], &s, 1);
	balloon_ops.notify(b, 2);
	wbuf_init(&w);
	cr_assert_eq(balloon_save(b, &w), 0);

	other = other_dev((struct balloon_params){.stats_interval_s = 1});
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(balloon_restore(other, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(rbuf_done(&r));
	struct balloon_info in;
	balloon_get_info(other, &in);
	cr_assert_eq(in.target_pages, 64);
	cr_assert_eq(in.actual_pages, 40);
	cr_assert_eq(in.stats_interval_s, 5);
	cr_assert(in.have[VIRTIO_BALLOON_S_AVAIL]);
	cr_assert_eq(in.stat[VIRTIO_BALLOON_S_AVAIL], 123456);
	other_free(other);

	/* Refusals: statistics off in the new device, a truncated state, a
	 * version from elsewhere; the device is left as it was. */
	other = other_dev((struct balloon_params){.target_pages = 9});
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(balloon_restore(other, &r, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "balloon: saved with statistics on, configured off");
	other_free(other);
	other = other_dev((struct balloon_params){.stats_interval_s = 1});
	for (size_t cut = 0; cut < w.len; cut++) {
		rbuf_init(&r, w.p, cut);
		cr_assert_eq(balloon_restore(other, &r, err, sizeof(err)), -EBADMSG, "cut %zu",
			     cut);
	}
	w.p[0] ^= 2;
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(balloon_restore(other, &r, err, sizeof(err)), -EPROTONOSUPPORT);
	balloon_get_info(other, &in);
	cr_assert_eq(in.target_pages, 0, "unchanged by the refusals");
	other_free(other);
	wbuf_free(&w);
}

/* Free page hinting's state is saved: the host's command, the last run,
 * the guest's command and acknowledge_on_stop; the next run after id
 * 0xffffffff is 2. A version 1 state (no hinting) still restores. */
Test(balloon, save_and_restore_hinting)
{
	struct balloon *other;
	struct wbuf w;
	struct rbuf r;
	char err[256];

	open_dev((struct balloon_params){.free_page_hinting = true}, HINTING);
	cr_assert_eq(balloon_hint_start(b, true), 0);
	guest_cmd(2, 2);
	wbuf_init(&w);
	cr_assert_eq(balloon_save(b, &w), 0);
	other = other_dev((struct balloon_params){.free_page_hinting = true});
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(balloon_restore(other, &r, err, sizeof(err)), 0, "%s", err);
	struct balloon_hint_status st;
	cr_assert_eq(balloon_hint_status(other, &st), 0);
	cr_assert_eq(st.host_cmd, 2);
	cr_assert(st.have_guest_cmd);
	cr_assert_eq(st.guest_cmd, 2);
	other_free(other);
	other = other_dev((struct balloon_params){0});
	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(balloon_restore(other, &r, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "balloon: saved with a free page hinting run, configured without "
			      "hinting");
	other_free(other);
	wbuf_free(&w);

	/* Version 2 by hand (into the running device): the last run
	 * 0xffffffff; then version 1. */
	for (uint32_t version = 2; version >= 1; version--) {
		wbuf_init(&w);
		wput_u32(&w, version);
		wput_u32(&w, 5); /* target */
		wput_u32(&w, 3); /* actual */
		wput_u32(&w, 0); /* interval */
		wput_u16(&w, 0); /* statistics */
		if (version == 2) {
			wput_u32(&w, VIRTIO_BALLOON_CMD_ID_DONE);
			wput_u32(&w, UINT32_MAX);
			wput_u32(&w, 0);
			wput_u8(&w, 3);
		}
		rbuf_init(&r, w.p, w.len);
		cr_assert_eq(balloon_restore(b, &r, err, sizeof(err)), 0, "%s", err);
		cr_assert(rbuf_done(&r));
		st = hint_status();
		cr_assert_eq(st.host_cmd, version == 2 ? VIRTIO_BALLOON_CMD_ID_DONE : 0);
		cr_assert_eq(st.have_guest_cmd, version == 2);
		cr_assert_eq(balloon_hint_start(b, false), 0);
		cr_assert_eq(host_cmd(), 2, "version %u: the first run after the last", version);
		wbuf_free(&w);
	}
}

/* A snapshot that caught a run: its hints are not taken after the restore
 * (the guest may have reused a block it listed), and the restored device's
 * first kick ends it (DONE, a configuration interrupt). A run id that is
 * not the last run's is refused. */
Test(balloon, restore_ends_a_run)
{
	struct wbuf w;
	struct rbuf r;
	char err[256];

	open_dev((struct balloon_params){.free_page_hinting = true}, HINTING);
	for (uint32_t last = 2; last <= 3; last++) {
		wbuf_init(&w);
		wput_u32(&w, 2);
		wput_u32(&w, 0);
		wput_u32(&w, 0);
		wput_u32(&w, 0);
		wput_u16(&w, 0);
		wput_u32(&w, 2); /* host_cmd: run 2 */
		wput_u32(&w, last);
		wput_u32(&w, 2); /* the guest started it */
		wput_u8(&w, 1);
		rbuf_init(&r, w.p, w.len);
		if (last == 3) {
			cr_assert_eq(balloon_restore(b, &r, err, sizeof(err)), -EBADMSG);
			cr_assert_str_eq(
			    err, "balloon: free page hinting run 2, but the last run was 3");
		} else {
			cr_assert_eq(balloon_restore(b, &r, err, sizeof(err)), 0, "%s", err);
		}
		wbuf_free(&w);
	}
	cr_assert_eq(host_cmd(), 2, "until the first kick");
	unsigned before = config_changes;
	cr_assert_not(hint_dropped(2), "a run the snapshot caught");
	cr_assert_eq(host_cmd(), VIRTIO_BALLOON_CMD_ID_DONE);
	cr_assert_eq(config_changes, before + 1);
}

/* ---- with the Uffd backend ---------------------------------------------- */

/* Giving memory back under the Uffd backend: madvise(MADV_DONTNEED) waits
 * until somebody reads its UFFD_EVENT_REMOVE, which, once the handler is
 * gone, is the main thread; the main thread meanwhile takes the device's
 * lock for the metrics and the API, and a vCPU for the configuration
 * space. The wait holds that lock no longer (it deadlocked the VM). */
static void *inflate_two(void *arg)
{
	uint32_t pfn[] = {PFN0, PFN0 + 1};

	(void)arg;
	give(0, pfn, 2, sizeof(pfn));
	return NULL;
}

static void *report_two(void *arg)
{
	(void)arg;
	fake_offer(&rings[2], &(struct sg){PAGES, 2 * 4096, true}, 1);
	balloon_ops.notify(b, 2);
	return NULL;
}

static void *read_counters(void *arg)
{
	uint32_t cfg[3];

	balloon_get_counters(b, arg);
	balloon_ops.config_read(b, 0, cfg, sizeof(cfg));
	return NULL;
}

static void discard_waits_unlocked(void *(*guest)(void *))
{
	struct balloon_counters n;
	struct uffd_msg m;
	struct timespec ts;
	pthread_t gt, rt;
	char err[256];
	int fd, e;

	e = uffd_create(&fd, err, sizeof(err));
	if (e == -EPERM || e == -ENOSYS || e == -EACCES)
		cr_skip_test("%s", err);
	cr_assert_eq(e, 0, "%s", err);
	struct uffdio_register reg = {
	    .range = {.start = (uintptr_t)at(PAGES, 2 * 4096), .len = 2 * 4096},
	    .mode = UFFDIO_REGISTER_MODE_MISSING};
	cr_assert_eq(ioctl(fd, UFFDIO_REGISTER, &reg), 0, "%s", strerror(errno));
	cr_assert_eq(pthread_create(&gt, NULL, guest, NULL), 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 5000), 1, "no UFFD_EVENT_REMOVE");
	cr_assert_eq(pthread_create(&rt, NULL, read_counters, &n), 0);
	cr_assert_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
	ts.tv_sec += 2;
	int waited = pthread_timedjoin_np(rt, NULL, &ts);
	/* The event read, the discard goes on. */
	cr_assert_eq(read(fd, &m, sizeof(m)), sizeof(m));
	cr_assert_eq(m.event, UFFD_EVENT_REMOVE);
	cr_assert_eq(pthread_join(gt, NULL), 0);
	if (waited)
		cr_assert_eq(pthread_join(rt, NULL), 0);
	cr_assert_eq(waited, 0, "the counters waited for the discard: %s", strerror(waited));
	close(fd);
}

Test(balloon, an_inflate_waiting_on_the_uffd_holds_no_lock)
{
	open_dev((struct balloon_params){.target_pages = 2}, 0);
	discard_waits_unlocked(inflate_two);
	cr_assert_eq(fake_used_idx(&rings[0]), 1);
	cr_assert_eq(counters().pages_inflated, 2);
}

Test(balloon, a_free_page_report_waiting_on_the_uffd_holds_no_lock)
{
	open_dev((struct balloon_params){.free_page_reporting = true}, REPORTING);
	discard_waits_unlocked(report_two);
	cr_assert_eq(fake_used_idx(&rings[2]), 1);
	cr_assert_eq(counters().free_page_report_freed, 2 * 4096);
}
