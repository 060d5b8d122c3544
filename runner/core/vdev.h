/* Put a virtio device on the VM: an MMIO slot and an IRQ line, its
 * virtio-mmio transport on the MMIO bus, one KVM ioeventfd per queue polled
 * by the event loop (queue notifications never exit to user space), an
 * irqfd for its interrupts (no ioctl from device threads), and the kernel
 * command-line argument that tells the guest where it is. This is the only
 * place where virtio devices meet KVM. */
#ifndef FLINT_VDEV_H
#define FLINT_VDEV_H

#include <stddef.h>

#include "core/bus.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/util.h"
#include "mmio.h"
#include "virtio.h"

/* IRQs for virtio devices: after the legacy ISA lines, up to I/O APIC pin 23
 * (the chip has as many pins as the VM uses: vm.c). */
#define VDEV_FIRST_IRQ 5
#define VDEV_MAX       (24 - VDEV_FIRST_IRQ)

struct vdev_env {
	int vm_fd;
	struct bus *mmio;
	struct gmem *mem;
	struct evloop *loop;
};

struct vdev;

/* Attach device `dev` (with `ops`) as virtio device number `index`
 * (0..VDEV_MAX-1): slot MMIO_DYN_START + index pages, IRQ VDEV_FIRST_IRQ +
 * index. Call before the event loop and the vCPUs start. Returns 0 or -errno
 * with a message logged; even then *out may hold the partly attached device,
 * to be detached like any other (after the event loop is destroyed). */
int vdev_attach(struct vdev **out, const struct vdev_env *env, unsigned index,
		const struct virtio_dev_ops *ops, void *dev) WARN_UNUSED;

/* Detach after the vCPUs and the event loop have stopped. NULL ok. */
void vdev_detach(struct vdev *d);

/* Queue counters from the transport: notifications and interrupts. */
unsigned vdev_num_queues(const struct vdev *d);
void vdev_queue_stats(const struct vdev *d, unsigned q, struct virtio_mmio_queue_stats *s);

/* Append " virtio_mmio.device=4K@0xADDR:IRQ" to buf (NUL-terminated, size
 * len). Returns 0 or -ENOSPC. */
int vdev_cmdline(const struct vdev *d, char *buf, size_t len) WARN_UNUSED;

/* Snapshot: the transport's state (virtio_mmio_save), restored into a
 * fresh slot (virtio_mmio_restore: checked, then the device activated).
 * vdev_kick: notify every queue through its eventfd, as a guest's kick
 * would (the event loop, started or resumed, takes it up). */
int vdev_save(const struct vdev *d, struct wbuf *w, char *err, size_t errlen) WARN_UNUSED;
int vdev_restore(struct vdev *d, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;
void vdev_kick(struct vdev *d);
/* Back to a fresh slot's state, as the driver's reset (virtio_mmio_reset),
 * so that vdev_restore takes it again: a reset in place. */
void vdev_reset(struct vdev *d);

#endif
