/* The virtio-mmio transport, version 2 ("modern", virtio 1.2 section 4.2.2):
 * the register file a guest driver programs, the status state machine, and
 * the bridge between a device (virtio.h) and the VM's interrupt and
 * notification plumbing. It knows no KVM fd: the VM glue gives it an irq
 * callback and calls virtio_mmio_queue_notify from its ioeventfd handler.
 *
 * VM glue, per device in one MMIO_SLOT_SIZE slot at base with IRQ line irq:
 *   - bus_register(mmio, base, 0x1000, &virtio_mmio_bus_ops, t);
 *   - for q < virtio_mmio_num_queues(t): an eventfd registered with
 *     KVM_IOEVENTFD {.addr = base + VIRTIO_MMIO_QUEUE_NOTIFY, .len = 4,
 *     .datamatch = q, .flags = KVM_IOEVENTFD_FLAG_DATAMATCH}; when it fires,
 *     the event loop calls virtio_mmio_queue_notify(t, q). (A write that
 *     matches no ioeventfd reaches the bus and is forwarded the same way.)
 *     None for the queues in ops->exit_queues: their writes reach the bus,
 *     where ops->notify_in_place may take them at once;
 *   - the irq callback writes 1 to an irqfd for that line (KVM_IRQFD); it is
 *     called for every interrupt, not only on edges, and may run on any
 *     vCPU thread or the event-loop thread;
 *   - the guest learns of the device from the kernel command line:
 *     "virtio_mmio.device=4K@0x<base in hex>:<irq>". */
#ifndef FLINT_VIRTIO_MMIO_H
#define FLINT_VIRTIO_MMIO_H

#include <linux/virtio_mmio.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/gmem.h"
#include "core/util.h"
#include "core/wire.h"
#include "virtio.h"

/* VendorID register: "FLNT" in the register's little-endian bytes (QEMU
 * uses "QEMU", 0x554d4551). Linux's virtio-mmio driver ignores it. */
#define VIRTIO_MMIO_VENDOR_FLINT 0x544e4c46
/* Bytes the transport decodes: registers below VIRTIO_MMIO_CONFIG, device
 * configuration space above. */
#define VIRTIO_MMIO_SIZE 0x1000

struct virtio_mmio;

/* Per-queue counters, cumulative since virtio_mmio_create (a reset does not
 * clear them). */
struct virtio_mmio_queue_stats {
	uint64_t notifications;		/* guest kicks forwarded to ops->notify */
	uint64_t notifications_dropped; /* kicks while not running or NEEDS_RESET */
	uint64_t interrupts;		/* used-buffer interrupts raised */
	uint64_t interrupts_suppressed; /* host.used calls EVENT_IDX/NO_INTERRUPT skipped */
	uint64_t interrupts_merged;	/* due, but the last one was not acknowledged yet */
};

/* A transport for device dev, in its reset state. ops must have num_queues
 * in 1..VIRTIO_MAX_QUEUES, queue_max a power of two (values over
 * VQ_MAX_SIZE are reported as VQ_MAX_SIZE), and features, activate, reset
 * and notify set; config_read/config_write may be NULL (config space then
 * reads as zeros and ignores writes). irq(irq_ctx) is called to interrupt
 * the guest. g, ops, dev and irq_ctx must outlive the transport. Returns 0,
 * -EINVAL or -ENOMEM. */
int virtio_mmio_create(struct virtio_mmio **out, struct gmem *g, const struct virtio_dev_ops *ops,
		       void *dev, void (*irq)(void *ctx), void *irq_ctx) WARN_UNUSED;

/* Free the transport (NULL ok). Call after the vCPUs and the event loop have
 * stopped; it does not reset the device. */
void virtio_mmio_destroy(struct virtio_mmio *t);

/* Register handlers for VIRTIO_MMIO_SIZE bytes, opaque = the transport.
 * Registers (below 0x100) take aligned 32-bit accesses only: other reads
 * give 0, other writes are ignored. Config space (0x100 on) takes 1, 2, 4
 * and 8-byte accesses, forwarded to ops->config_read/write with the offset
 * relative to 0x100. */
extern const struct bus_ops virtio_mmio_bus_ops;

/* Where a QueueNotify write that reached the bus (no ioeventfd caught it)
 * goes: fwd(ctx, q) for q in range, on the vCPU thread that wrote it, which
 * must only hand it on (the queue's eventfd, to the thread that serves the
 * device); but virtio_mmio_queue_notify there and then for a queue of
 * ops->exit_queues that ops->notify_in_place claims. Unset (tests), the
 * write is virtio_mmio_queue_notify's at once. Set before the guest runs. */
void virtio_mmio_set_notify_forward(struct virtio_mmio *t, void (*fwd)(void *ctx, unsigned q),
				    void *ctx);

/* The guest notified queue q: forward to ops->notify when the device is
 * running and not waiting for a reset; otherwise (and for q out of range)
 * drop it. Any thread; serialised against the other calls into the device. */
void virtio_mmio_queue_notify(struct virtio_mmio *t, unsigned q);

/* The device's configuration changed: bump ConfigGeneration and raise a
 * configuration interrupt. Any thread; takes no lock, so a device may call
 * it from its callbacks. */
void virtio_mmio_config_changed(struct virtio_mmio *t);

/* ops->num_queues: how many ioeventfds the glue registers. */
unsigned virtio_mmio_num_queues(const struct virtio_mmio *t);

/* Copy queue q's counters to *s (zeros for q out of range). Any thread; the
 * fields are read one by one, not as a snapshot. */
void virtio_mmio_get_stats(const struct virtio_mmio *t, unsigned q,
			   struct virtio_mmio_queue_stats *s);

/* Bytes of device configuration space a snapshot records (ops->config_read
 * from offset 0; flint's devices have less, the rest reads as zeros). */
#define VIRTIO_MMIO_CONFIG_SAVED 256

/* Snapshot: append the transport's state to w, its own u32 version first:
 * the device id and queue count it was made for, the features offered and
 * acknowledged, status, the selectors, InterruptStatus, ConfigGeneration,
 * whether the device runs or needs a reset, each queue's registers and its
 * vq state (vq_save), and a dump of the device's configuration space. The
 * device's own state (requests in flight, buffers held, connections) is
 * not in it: each device saves that itself. Call with the vCPUs paused and
 * the device quiet (no completions arriving off the notify path). Returns
 * 0, w's error (-ENOMEM), or -EFAULT with err saying which queue's rings
 * lie in memory the guest has unplugged since it placed them there (a
 * state no restore would take: vq_in_memory). */
int virtio_mmio_save(const struct virtio_mmio *t, struct wbuf *w, char *err,
		     size_t errlen) WARN_UNUSED;

/* Read state written by virtio_mmio_save from r and make it t's. t must be
 * in its reset state, as created (-EBUSY otherwise), for the same kind of
 * device with the same queue count. Everything is decoded and checked
 * before t changes: a status no driver can reach, features acknowledged
 * (FEATURES_OK) that this device does not offer or without VERSION_1,
 * queue registers set before FEATURES_OK, and for a running device each
 * ready queue's size (a power of two up to QueueNumMax) and rings (in
 * guest memory, aligned) through the same checks as the driver's own
 * DRIVER_OK, its vq state agreeing with its registers. -EBADMSG for a
 * truncated or corrupt input or another version, -EINVAL for a state the
 * guest's own set-up could not have produced; err (errlen bytes, may be 0)
 * says which field and t is left as it was. A running device is then
 * activated with the restored features and queues (ops->activate); its
 * refusal is returned (-errno) with t and the device reset as before. The
 * saved configuration space is checked for size and otherwise skipped:
 * restoring it is the device's. An interrupt the state has pending
 * (InterruptStatus not 0) is raised again. Takes t's locks; call before the
 * guest runs. Bytes after the section are left in r. */
int virtio_mmio_restore(struct virtio_mmio *t, struct rbuf *r, char *err,
			size_t errlen) WARN_UNUSED;

/* The host's own status-0 reset, as the driver's: the device forgets its
 * queues and what it holds (ops->reset, which waits for a notification in
 * flight) and the registers go back to their state at create
 * (ConfigGeneration aside), so that virtio_mmio_restore takes t again. For
 * a VM reset in place to its snapshot: the vCPUs paused, the device
 * quiesced. */
void virtio_mmio_reset(struct virtio_mmio *t);

#endif
