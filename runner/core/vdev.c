#include "core/vdev.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/virtio_mmio.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/kvm.h"
#include "x86/layout.h"

struct vdev;

/* One per queue: the ioeventfd KVM signals on the guest's QueueNotify write
 * of this queue's index, and the event-loop poll waiting on it. */
struct qnotify {
	struct ev_op op;
	struct vdev *d;
	unsigned q;
	int fd;
};

struct vdev {
	struct virtio_mmio *t;
	const struct vdev_env *env;
	uint64_t base;
	unsigned irq;
	int irqfd;
	unsigned nq;
	struct qnotify n[VIRTIO_MAX_QUEUES];
};

static void queue_kicked(struct ev_op *op, int res)
{
	struct qnotify *n = container_of(op, struct qnotify, op);
	eventfd_t count;

	if (res < 0)
		return; /* cancelled at teardown */
	/* Consume the readiness; several guest kicks fold into one wake-up. */
	if (eventfd_read(n->fd, &count) < 0)
		return;
	virtio_mmio_queue_notify(n->d->t, n->q);
}

/* A QueueNotify write that reached the bus (a vCPU thread): through the
 * queue's eventfd to the event loop, as KVM's ioeventfd would have sent it. */
static void forward_notify(void *ctx, unsigned q)
{
	struct vdev *d = ctx;

	if (q < d->nq && eventfd_write(d->n[q].fd, 1) < 0)
		pr_debug("virtio queue %u notify: %s", q, strerror(errno));
}

static void raise_irq(void *ctx)
{
	struct vdev *d = ctx;
	if (eventfd_write(d->irqfd, 1) < 0)
		pr_debug("virtio irqfd %u: %s", d->irq, strerror(errno));
}

int vdev_attach(struct vdev **out, const struct vdev_env *env, unsigned index,
		const struct virtio_dev_ops *ops, void *dev)
{
	struct vdev *d;
	int r;

	*out = NULL;
	if (index >= VDEV_MAX || ops->num_queues == 0 || ops->num_queues > VIRTIO_MAX_QUEUES)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	/* Even a failed attach hands the device back: polls already queued on
	 * the event loop point into it, so it must outlive the loop. */
	*out = d;
	d->env = env;
	d->base = MMIO_DYN_START + index * MMIO_SLOT_SIZE;
	d->irq = VDEV_FIRST_IRQ + index;
	d->nq = ops->num_queues;
	d->irqfd = -1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		d->n[q].fd = -1;

	if ((r = virtio_mmio_create(&d->t, env->mem, ops, dev, raise_irq, d)) < 0) {
		pr_err("virtio device %u: transport: %s", index, strerror(-r));
		goto err;
	}
	if ((r = bus_register(env->mmio, d->base, MMIO_SLOT_SIZE, &virtio_mmio_bus_ops, d->t)) <
	    0) {
		pr_err("virtio device %u: MMIO slot 0x%llx: %s", index, (unsigned long long)d->base,
		       strerror(-r));
		goto err;
	}
	if ((d->irqfd = kvm_irqfd(env->vm_fd, d->irq)) < 0) {
		r = d->irqfd;
		pr_err("virtio device %u: irqfd for IRQ %u: %s", index, d->irq, strerror(-r));
		goto err;
	}
	for (unsigned q = 0; q < d->nq; q++) {
		struct qnotify *n = &d->n[q];
		*n = (struct qnotify){.op = {.done = queue_kicked}, .d = d, .q = q};
		n->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct kvm_ioeventfd io = {
		    .datamatch = q,
		    .addr = d->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		    .len = 4,
		    .fd = n->fd,
		    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};
		/* A queue of exit_queues: its writes reach the bus (mmio.h),
		 * which forwards them to this eventfd or notifies in place. */
		bool exits = ops->exit_queues >> q & 1;
		if (n->fd < 0 || (!exits && ioctl(env->vm_fd, KVM_IOEVENTFD, &io) < 0)) {
			r = -errno;
			pr_err("virtio device %u: ioeventfd for queue %u: %s", index, q,
			       strerror(errno));
			goto err;
		}
		if ((r = evloop_poll(env->loop, &n->op, n->fd, POLLIN)) < 0) {
			pr_err("virtio device %u: polling queue %u: %s", index, q, strerror(-r));
			goto err;
		}
	}
	virtio_mmio_set_notify_forward(d->t, forward_notify, d);
	return 0;
err:
	return r;
}

void vdev_detach(struct vdev *d)
{
	if (!d)
		return;
	/* The VM fd's close drops the ioeventfds and irqfd registrations; the
	 * event loop has stopped, so no poll is pending on our fds. */
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		close_fd(&d->n[q].fd);
	close_fd(&d->irqfd);
	virtio_mmio_destroy(d->t);
	free(d);
}

int vdev_cmdline(const struct vdev *d, char *buf, size_t len)
{
	size_t used = strlen(buf);
	int n = snprintf(buf + used, len - used, "%svirtio_mmio.device=4K@0x%llx:%u",
			 used ? " " : "", (unsigned long long)d->base, d->irq);
	return n < 0 || (size_t)n >= len - used ? -ENOSPC : 0;
}

unsigned vdev_num_queues(const struct vdev *d)
{
	return d->nq;
}

void vdev_queue_stats(const struct vdev *d, unsigned q, struct virtio_mmio_queue_stats *s)
{
	virtio_mmio_get_stats(d->t, q, s);
}

int vdev_save(const struct vdev *d, struct wbuf *w, char *err, size_t errlen)
{
	return virtio_mmio_save(d->t, w, err, errlen);
}

int vdev_restore(struct vdev *d, struct rbuf *r, char *err, size_t errlen)
{
	return virtio_mmio_restore(d->t, r, err, errlen);
}

void vdev_reset(struct vdev *d)
{
	virtio_mmio_reset(d->t);
}

void vdev_kick(struct vdev *d)
{
	for (unsigned q = 0; q < d->nq; q++)
		forward_notify(d, q);
}
