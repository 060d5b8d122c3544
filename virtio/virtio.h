/* The contract between a virtio device and its transport. A device is a
 * table of callbacks plus its own state; it knows neither the transport
 * (virtio-mmio today) nor how notifications reach it (an ioeventfd polled by
 * the event loop, or an MMIO write). The transport owns the register file,
 * feature negotiation, the status state machine and the queues, and
 * activates the device at DRIVER_OK.
 *
 * Threads (virtio-mmio, see mmio.c): activate, reset and notify are
 * serialised with each other by the transport and never run concurrently;
 * notify runs on the event-loop thread (or a vCPU thread when no ioeventfd
 * caught the kick), activate and reset on a vCPU thread. config_read and
 * config_write run on vCPU threads, concurrently with notify: a device whose
 * config changes from elsewhere protects it itself. The virtio_host
 * callbacks take no transport lock, so a device may call them from inside
 * its callbacks or from a thread of its own (used reads queue q's rings:
 * call it from whichever thread is driving that queue). */
#ifndef FLINT_VIRTIO_H
#define FLINT_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/gmem.h"
#include "core/util.h"
#include "vq.h"

#define VIRTIO_MAX_QUEUES 8

/* The most chains a device takes from one queue per notification, as
 * vhost's weights do since CVE-2019-3900: a guest that keeps adding chains
 * as fast as they are used would otherwise hold the device's thread (and
 * its lock, which a pause or snapshot waits for) for ever. Past it the
 * device asks to be notified again (virtio_after.again) and the thread
 * serves its other work first. A full queue of the largest size. */
#define VIRTIO_BUDGET 256

/* What a device may ask of its transport, given at activation. */
struct virtio_host {
	/* Buffers were added to queue q's used ring: the transport decides,
	 * from EVENT_IDX or the NO_INTERRUPT flag, whether to interrupt. */
	void (*used)(void *t, unsigned q);
	/* The guest broke the protocol: set DEVICE_NEEDS_RESET, raise a
	 * configuration interrupt, and stop using the queues until reset. */
	void (*needs_reset)(void *t);
	/* The device's configuration space changed on its own (a drive's new
	 * capacity after its image was swapped): the transport tells the
	 * driver (virtio-mmio: ConfigGeneration moves on and a configuration
	 * interrupt is raised), which reads the space again. Call it after the
	 * new values are readable. */
	void (*config_changed)(void *t);
	/* The device stopped at its budget with chains left on queue q: notify
	 * it again, as the guest's kick would, once the thread that serves it
	 * has served its other work. NULL: never asked (tests). */
	void (*again)(void *t, unsigned q);
	void *t;
};

/* Tell the transport that the device's configuration space changed
 * (host->config_changed, when set). */
static inline void virtio_config_changed(const struct virtio_host *host)
{
	if (host->config_changed)
		host->config_changed(host->t);
}

/* The calls a device owes its transport for a piece of work (a notify, a
 * completion, a reset's give-back), gathered while it works and made once
 * at its end, with the device's lock held (the transport takes none), so
 * that nothing reaches the transport once reset() has the lock. */
struct virtio_after {
	struct virtio_host host;
	uint32_t used;	/* bit q: buffers were added to queue q's used ring */
	uint32_t again; /* bit q: queue q has chains left past the budget */
	bool reset;	/* the guest broke the protocol: needs_reset */
};

/* Whether a device that has taken k chains from queue q in this call has
 * spent its VIRTIO_BUDGET: if so, q is marked to be notified again and the
 * device stops taking. */
static inline bool virtio_budget_spent(struct virtio_after *a, unsigned q, unsigned k)
{
	if (k < VIRTIO_BUDGET)
		return false;
	a->again |= 1u << q;
	return true;
}

/* needs_reset, if owed, then used for each queue marked, in order; then
 * again for each queue marked (none after a reset). */
static inline void virtio_after_run(const struct virtio_after *a)
{
	if (a->reset && a->host.needs_reset)
		a->host.needs_reset(a->host.t);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES && a->host.used; q++)
		if (a->used & 1u << q)
			a->host.used(a->host.t, q);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES && a->host.again && !a->reset; q++)
		if (a->again & 1u << q)
			a->host.again(a->host.t, q);
}

struct virtio_dev_ops {
	uint32_t device_id;  /* VIRTIO_ID_* from <linux/virtio_ids.h> */
	unsigned num_queues; /* 1..VIRTIO_MAX_QUEUES */
	uint32_t queue_max;  /* largest queue size the device accepts */
	/* Feature bits the device offers; the transport adds VIRTIO_F_VERSION_1,
	 * VIRTIO_RING_F_EVENT_IDX and VIRTIO_RING_F_INDIRECT_DESC. */
	uint64_t (*features)(void *dev);
	/* Device configuration space: off is relative to its start; reads
	 * beyond the device's config return zeros, writes there are ignored. */
	void (*config_read)(void *dev, uint64_t off, void *data, uint32_t len);
	void (*config_write)(void *dev, uint64_t off, const void *data, uint32_t len);
	/* DRIVER_OK: the negotiated features and the validated, activated queues
	 * (vq_activate done by the transport). Return 0, or -errno to have the
	 * transport set DEVICE_NEEDS_RESET. */
	int (*activate)(void *dev, uint64_t features, struct vq *queues,
			const struct virtio_host *host);
	/* The driver wrote status 0: drop all queue state and in-flight work
	 * (in-flight I/O completes into nothing). Also called before any
	 * activate (Linux resets a device when it probes it). When it returns
	 * the device no longer touches the queues or calls the host callbacks:
	 * the transport resets the queues next. */
	void (*reset)(void *dev);
	/* The driver notified queue q (only after activate). */
	void (*notify)(void *dev, unsigned q);
	/* Queues (bit q) whose QueueNotify write the VM glue lets reach the
	 * bus (no ioeventfd), for notify_in_place to claim. 0: none. */
	uint32_t exit_queues;
	/* Whether the notify of queue q, one of exit_queues, runs at once on
	 * the vCPU thread that wrote it, the write returning once the device
	 * has taken the queue (a free page hint must go back to the host
	 * before the guest's driver can reuse the memory); false: forwarded
	 * as any other. NULL: never. */
	bool (*notify_in_place)(void *dev, unsigned q);
};

/* config_read for a device whose configuration is the fixed struct cfg of
 * `size` bytes: copy what [off, off + len) covers of it and zero the rest. */
static inline void virtio_config_copy(const void *cfg, size_t size, uint64_t off, void *data,
				      uint32_t len)
{
	uint64_t n = 0;

	if (off < size) {
		n = size - off;
		if (n > len)
			n = len;
		memcpy(data, (const uint8_t *)cfg + off, n);
	}
	memset((uint8_t *)data + n, 0, len - n);
}

#endif
