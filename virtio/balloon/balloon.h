/* virtio-balloon (virtio 1.2 section 5.5), Firecracker's balloon device: the
 * host sets a target of pages the guest should give up; the guest's driver
 * gives pages (inflate) or takes them back (deflate), each time listing
 * their page frame numbers, and says in the configuration space how many it
 * holds. The memory of the pages given is handed back to the host.
 *
 * Queues, in the order Linux's driver finds them on virtio-mmio: inflate
 * (0), deflate (1), then those negotiated without a gap: stats, free page
 * hints, free page reports (2 to 4). Features offered:
 * VIRTIO_BALLOON_F_STATS_VQ when stats_interval_s > 0 (it cannot be turned
 * on or off later: the driver asks for the queue once, at probe),
 * VIRTIO_BALLOON_F_DEFLATE_ON_OOM when asked (the guest may then deflate on
 * its own under memory pressure), VIRTIO_BALLOON_F_FREE_PAGE_HINT and
 * VIRTIO_BALLOON_F_REPORTING when asked.
 *
 * Configuration space (little-endian): le32 num_pages, the target, written
 * by the host; le32 actual, what the driver holds, written by it; le32
 * free_page_hint_cmd_id, the host's hinting command. A new target or
 * command raises a configuration interrupt.
 *
 * Inflate and deflate: each chain's device-readable bytes are le32 page
 * frame numbers of 4 KiB pages. Runs of consecutive frames are given to
 * gmem_discard (the queue's guest memory: the one door), which drops the
 * host pages wholly inside them; a frame outside guest RAM, or bytes that
 * are not a whole number of frames, are counted as errors and nothing of
 * that chain outside RAM is touched; a chain of more than BALLOON_FRAMES_MAX
 * frames is given back untouched. Deflate only counts: the guest's next
 * touch of a page faults it back in, zeroed (or, for memory restored from a
 * file, as the file has it). Chains are given back with nothing written.
 *
 * Free page reporting: the guest's driver lists runs of memory that are
 * free in it (each a device-writable buffer, never written); they go to
 * gmem_discard as inflated pages do, and the chain is given back.
 *
 * Free page hinting (virtio 1.2 section 5.5.6.7, Firecracker's hinting
 * runs): the host starts a run by showing a new command id (2 and up,
 * wrapping) and ends it with DONE (1). The guest's driver answers a new id
 * with a chain holding it (le32, device-readable), then offers blocks of
 * its free memory, which it holds meanwhile (device-writable buffers,
 * never written), then a chain holding STOP (0). A block goes to
 * gmem_discard only while the run is live (the host's id, started by the
 * guest): after DONE the guest takes its blocks back, and a hint still in
 * the ring is given back untouched. With ack_on_stop the run the guest
 * ends gets DONE at once; without it, the host says DONE (hint_stop).
 * Linux's driver may reuse a block once its kick returns (its shrinker),
 * so the hint queue is taken on the vCPU thread of the kick
 * (virtio_dev_ops.notify_in_place), before the kick returns. A run a
 * snapshot caught ends (DONE) at the restored device's first kick, none of
 * its hints taken.
 *
 * Statistics: the driver offers one chain of (le16 tag, le64 value)
 * entries and waits. The device keeps the values and holds the chain; every
 * stats_interval_s it gives the chain back, which asks the driver for fresh
 * values (it offers the chain again, filled). A new interval asks at once.
 *
 * Threads: notify, the timer and the device's eventfd on the event-loop
 * thread (the hint queue's notify on a vCPU thread); activate, reset, config_read and config_write
 * on vCPU threads; balloon_set_target, balloon_set_stats_interval and balloon_get_info from the
 * control or API thread; balloon_quiesce with the loop parked. One mutex serialises them; the host
 * callbacks are called with it held (virtio.h). Work another thread finds for the loop (the
 * statistics chain offered before activation, a new interval's request) goes to it through the
 * eventfd.
 *
 * Life cycle: balloon_create before the loop runs; balloon_destroy after it
 * has stopped. */
#ifndef FLINT_BALLOON_H
#define FLINT_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/evloop.h"
#include "core/util.h"
#include "core/wire.h"
#include "virtio.h"

/* Largest queue the device takes (Firecracker's balloon queue size). */
#define BALLOON_QUEUE_MAX 256
/* The unit of the target and of a page frame number. */
#define BALLOON_PAGE 4096u
/* The most frames an inflate or deflate chain may list (Linux's driver
 * sends at most 256, VIRTIO_BALLOON_ARRAY_PFNS_MAX; Firecracker takes as
 * many). */
#define BALLOON_FRAMES_MAX 256u
/* The statistics tags the device knows (VIRTIO_BALLOON_S_*, 0 to 15); the
 * others are ignored. */
#define BALLOON_NSTATS 16

struct balloon;

struct balloon_params {
	uint32_t target_pages;	   /* what the guest should give up */
	bool deflate_on_oom;	   /* offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	uint32_t stats_interval_s; /* 0: no stats queue */
	bool free_page_hinting;	   /* offer VIRTIO_BALLOON_F_FREE_PAGE_HINT */
	bool free_page_reporting;  /* offer VIRTIO_BALLOON_F_REPORTING */
	struct evloop *loop;	   /* must outlive the device */
};

/* What the device knows now. */
struct balloon_info {
	uint32_t target_pages, actual_pages;
	uint32_t stats_interval_s;
	/* The guest's last statistics, by VIRTIO_BALLOON_S_* tag; have[t]
	 * false for a tag it has not given. */
	bool have[BALLOON_NSTATS];
	uint64_t stat[BALLOON_NSTATS];
};

/* Counters, cumulative since balloon_create (Firecracker's balloon metrics,
 * and what flint adds). */
struct balloon_counters {
	uint64_t inflate_count;		 /* inflate chains taken */
	uint64_t deflate_count;		 /* deflate chains taken */
	uint64_t stats_updates_count;	 /* statistics chains the guest filled */
	uint64_t stats_update_fails;	 /* of those, malformed */
	uint64_t event_fails;		 /* bad chains and frames; a broken queue */
	uint64_t pages_inflated;	 /* frames the guest gave, each once per chain */
	uint64_t pages_deflated;	 /* frames it took back */
	uint64_t discard_fails;		 /* runs gmem_discard refused */
	uint64_t free_page_report_count; /* report chains taken */
	uint64_t free_page_report_freed; /* bytes given back through them */
	uint64_t free_page_report_fails; /* buffers gmem_discard refused */
	uint64_t free_page_hint_count;	 /* hint chains taken */
	uint64_t free_page_hint_freed;	 /* bytes given back through them */
	uint64_t free_page_hint_fails;	 /* bad commands, blocks refused */
};

/* Free page hinting as GET /balloon/hinting/status tells it: the host's
 * last command (0 STOP, 1 DONE, or a run's id) and the guest's, if it sent
 * one. */
struct balloon_hint_status {
	uint32_t host_cmd, guest_cmd;
	bool have_guest_cmd;
};

/* Build the device. 0 or -errno (-EINVAL without a loop); *out owned by
 * the caller (balloon_destroy). */
int balloon_create(struct balloon **out, const struct balloon_params *p) WARN_UNUSED;

/* Free the device. The loop must have stopped (or never run); if it still
 * holds the device's timer or poll, the device is leaked, not freed. NULL
 * ok. */
void balloon_destroy(struct balloon *b);

/* A new target (PATCH /balloon): the configuration space shows it, and the
 * driver is told (a configuration interrupt) when it is running. */
void balloon_set_target(struct balloon *b, uint32_t pages);

/* A new statistics interval (PATCH /balloon/statistics): statistics are
 * asked for at once, then every `s` seconds. -EINVAL when s is 0 or the
 * device was made without statistics (they cannot be turned on or off
 * while the guest runs), and nothing changes; but 0 for a device without
 * them is no change, and returns 0 (as Firecracker takes the interval it
 * has). */
int balloon_set_stats_interval(struct balloon *b, uint32_t s) WARN_UNUSED;

/* Free page hinting (PATCH /balloon/hinting/start and stop, GET
 * /balloon/hinting/status): start a run under a new id (-ENODEV, nothing
 * changed, before the guest's driver has activated the device), DONE to
 * the guest (it takes back what it held for the run), the status. -EINVAL
 * for a device made without hinting. */
int balloon_hint_start(struct balloon *b, bool ack_on_stop) WARN_UNUSED;
int balloon_hint_stop(struct balloon *b) WARN_UNUSED;
int balloon_hint_status(struct balloon *b, struct balloon_hint_status *out) WARN_UNUSED;

void balloon_get_info(struct balloon *b, struct balloon_info *out);
void balloon_get_counters(struct balloon *b, struct balloon_counters *out);

/* A snapshot's quiesce: the statistics chain the device holds goes back to
 * the guest (vq_discard), so that the saved queue offers it again and the
 * restored device takes it up when the transport kicks the queue (the
 * device that goes on takes it again without counting an update). With
 * the loop parked (evloop_call_parked: on the loop thread or the one that
 * parked it) or not running. */
void balloon_quiesce(struct balloon *b);

/* The device's own state for a snapshot: its version, the target, what
 * the guest holds, the statistics interval, the last statistics and the
 * free page hinting commands (version 2; version 1's restore as none).
 * restore checks everything before it changes anything; a snapshot made
 * with statistics on restores only into a device with them on, and the
 * other way round (the guest's driver knows which it has). */
int balloon_save(const struct balloon *b, struct wbuf *w) WARN_UNUSED;
int balloon_restore(struct balloon *b, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

/* VIRTIO_ID_BALLOON, up to five queues of up to BALLOON_QUEUE_MAX (the
 * last three as negotiated); dev is a struct balloon. */
extern const struct virtio_dev_ops balloon_ops;

#endif
