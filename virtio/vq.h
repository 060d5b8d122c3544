/* Split virtqueue (virtio 1.x, 2.7): the device side of one queue.
 *
 * The guest owns the descriptor table and the avail ring, the device owns the
 * used ring; all three live in guest RAM and a guest may rewrite any of them
 * at any time. vq_activate checks the ring placement once; vq_pop checks every
 * chain and hands the device validated segments, never a struct vring_desc.
 * All guest access goes through gmem. The module takes no KVM fd and logs
 * nothing: on a negative return the device sets DEVICE_NEEDS_RESET and logs
 * once, rate-limited.
 *
 * Not thread-safe: one thread drives a queue (pop, push, notify decisions). */
#ifndef FLINT_VQ_H
#define FLINT_VQ_H

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/gmem.h"
#include "core/util.h"
#include "core/wire.h"

/* Largest queue the split ring allows (2.7: Queue Size <= 32768). */
#define VQ_MAX_SIZE 32768
/* Entries an indirect table may hold. The spec's bound is the 32-bit len
 * (2^28 entries); Linux never builds tables larger than its queue sizes
 * (<= 1024 for the devices we emulate), so more is a hostile guest. */
#define VQ_MAX_INDIRECT 1024

/* One validated piece of a chain: [gpa, gpa + len) is wholly guest RAM and
 * host points at its first byte, for I/O straight to guest memory. write is
 * true for device-writable (guest-receives) segments. */
struct vq_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
	void *host;
};

/* A popped chain. The caller supplies seg/cap; vq_pop fills the rest.
 * Readable segments come first, then writable ones. readable and writable
 * are the byte totals of each kind (each at most UINT32_MAX). head is the id
 * to give back to vq_push. */
struct vq_chain {
	struct vq_seg *seg; /* caller's storage */
	uint32_t cap;	    /* entries in seg */
	uint32_t nseg;
	uint16_t head;
	uint32_t readable, writable;
};

/* One queue. Public so transports can embed it; only this module writes it.
 * Host pointers are valid while the gmem lives (guest RAM is never remapped). */
struct vq {
	struct gmem *gmem;
	bool ready;	/* activated and not reset */
	bool broken;	/* a pop failed: the queue is dead until vq_reset */
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	uint16_t size;	/* power of two, 1..VQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;   /* size entries */
	struct vring_avail *avail; /* ring[size] is used_event */
	struct vring_used *used;   /* ring[size] holds avail_event */

	uint16_t last_avail; /* next avail ring entry to pop (free-running) */
	uint16_t next_used;  /* used->idx we published last (free-running) */
	/* EVENT_IDX: next_used at the last vq_need_interrupt, and whether that
	 * value means anything yet (not before the first decision). */
	uint16_t signalled_used;
	bool signalled_valid;

	/* Counters for stats; never read by this module. */
	uint64_t pops;
	uint64_t notifications_suppressed; /* interrupts vq_need_interrupt skipped */
	uint64_t interrupts;		   /* interrupts it asked for */
	uint64_t errors;		   /* failed pops */
};

/* Validate and start a queue: size (32 bits, as the guest wrote QueueNum, so
 * nothing is truncated on the way) a power of two in 1..VQ_MAX_SIZE; desc
 * 16-, avail 2- and used 4-byte aligned (2.7 alignment); each ring, with its
 * trailing event field when event_idx, wholly in one RAM region of g. Indexes
 * start at 0 as for a fresh queue. Nothing is written to guest memory.
 * Returns 0, or -EINVAL with *q left reset. g must outlive the queue. */
int vq_activate(struct vq *q, struct gmem *g, uint32_t size, uint64_t desc, uint64_t avail,
		uint64_t used, bool event_idx) WARN_UNUSED;

/* Forget everything, counters included: the queue is not ready. */
void vq_reset(struct vq *q);

/* Take the next available chain into c (c->seg and c->cap set by the caller).
 * Returns 1 with a chain, 0 when the ring is empty, or a guest error:
 *   -EIO       avail->idx ran more than size entries ahead, or the queue is
 *              broken or not ready
 *   -EINVAL    head or next >= table size, readable after writable, nested
 *              indirect, INDIRECT with NEXT, indirect length 0, not a multiple
 *              of 16 or over VQ_MAX_INDIRECT entries
 *   -ELOOP     more descriptors than the table holds (a loop)
 *   -EFAULT    a buffer or indirect table not wholly in guest RAM
 *   -EOVERFLOW readable or writable total over UINT32_MAX
 *   -E2BIG     more segments than c->cap
 * Zero-length descriptors are checked for flags and order like any other but
 * carry no bytes, so their address is not checked and they add no segment.
 * After an error the queue is broken (later pops return -EIO, last_avail is
 * not advanced) until vq_reset; the caller sets DEVICE_NEEDS_RESET. */
int vq_pop(struct vq *q, struct vq_chain *c) WARN_UNUSED;

/* Return chain head to the guest with len bytes written, and publish the new
 * used->idx (release: the element is visible first). Returns 0, or -EINVAL
 * when head >= size or the queue is not ready. */
int vq_push(struct vq *q, uint16_t head, uint32_t len) WARN_UNUSED;

/* Give back the n chains popped last, none of them pushed: the next pops
 * (or a snapshot's saved queue) see them available again, as if never
 * taken (a device that held them for a later packet, or that a limiter
 * stopped). Only the device driving the queue, on its thread or with that
 * thread stopped. Returns 0, or -EINVAL (nothing changes) when n is more
 * than the chains popped and not used (last_avail - used idx). */
int vq_discard(struct vq *q, uint16_t n) WARN_UNUSED;

/* Whether to interrupt the guest for what vq_push published since the last
 * call. EVENT_IDX: vring_need_event(used_event, next_used, signalled_used);
 * otherwise: avail->flags lacks VRING_AVAIL_F_NO_INTERRUPT. Call after a batch
 * of pushes; counts interrupts / notifications_suppressed. */
bool vq_need_interrupt(struct vq *q);

/* Ask the guest to kick (enable) or not (disable) when it adds buffers.
 * EVENT_IDX: enable writes avail_event = last_avail, disable does nothing
 * (the guest stops kicking once it passes avail_event). Otherwise they clear
 * or set VRING_USED_F_NO_NOTIFY. After enabling, the caller must check
 * vq_has_work again: the guest may have added buffers before it saw the
 * change (enable issues the full fence that makes that check sound). */
void vq_enable_notify(struct vq *q);
void vq_disable_notify(struct vq *q);

/* True when the guest has made chains available that vq_pop has not taken
 * (false when the queue is not ready or broken). */
bool vq_has_work(const struct vq *q);

/* The avail idx the guest has published (acquire); 0 when not ready. */
uint16_t vq_avail_idx(const struct vq *q);

/* Ask the guest to kick when it next makes a chain available, however many
 * it has made available that the device has not taken yet (vq_enable_notify
 * asks only past last_avail): for a queue the device takes from now and
 * then, whose next chain says the guest has done something (vsock's event
 * queue). EVENT_IDX: avail_event = the published avail idx; otherwise
 * VRING_USED_F_NO_NOTIFY is cleared. Returns that avail idx (0 when not
 * ready): a later chain moves vq_avail_idx past it. Full fence, as
 * vq_enable_notify; a chain made available while this runs may come
 * without a kick, which the caller sees by comparing the index. */
uint16_t vq_notify_next(struct vq *q);

/* Whether q, if ready, still has its rings wholly in guest memory: memory
 * hot-plug's blocks may be unplugged under rings the guest placed there
 * (the device goes on using what it mapped, inside flint's own mapping),
 * and a snapshot of such a queue could not be restored (vq_restore places
 * rings as vq_activate does). True for a queue not ready. */
bool vq_in_memory(const struct vq *q);

/* Snapshot: append q's state to w, its own u32 version first: whether it
 * is ready and, if so, its size and ring addresses, event_idx, broken, the
 * indexes (last_avail, the used idx) and the EVENT_IDX interrupt state. The
 * counters are not saved. Returns 0 or w's error (-ENOMEM). Call with the
 * queue idle (the thread driving it stopped). */
int vq_save(const struct vq *q, struct wbuf *w) WARN_UNUSED;

/* Read state written by vq_save from r and make it q's, against guest
 * memory g. Everything is decoded and checked before q changes: the size
 * and rings go through vq_activate's own checks, and the device may hold
 * at most size chains (last_avail - used idx <= size). -EBADMSG for a
 * truncated or corrupt input or another version, -EINVAL for a queue the
 * guest's own set-up would have been refused; err (errlen bytes, may be 0)
 * says which, and q is left as it was. Nothing in guest memory is read or
 * written (avail->idx is checked by vq_pop as always). Bytes after the
 * section are left in r. */
int vq_restore(struct vq *q, struct gmem *g, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

#endif
