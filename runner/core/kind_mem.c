/* The memory hot-plug device kind (PUT /hotplug/memory): at most one
 * virtio-mem device, known as "memory-hotplug", whose region the VM places
 * above RAM and device memory (struct device_hotmem) and the guest plugs
 * and unplugs blocks of. The device (virtio/mem) keeps which blocks are
 * plugged; the VM makes the memory reachable or gives it back. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/device_kinds.h"
#include "mem/mem.h"

#define ULL(x) ((unsigned long long)(x))
#define MIB    (1ULL << 20)

struct mem_dev {
	struct vmem *m;
	const struct device_hotmem *hot;
};

static unsigned mem_count(const struct vm_config *c)
{
	return c->memory_hotplug.enabled;
}

static char *mem_id(const struct vm_config *c, unsigned i)
{
	(void)c;
	(void)i;
	return strdup("memory-hotplug");
}

static int dev_plug(void *ctx, uint64_t gpa, uint64_t len)
{
	const struct mem_dev *d = ctx;

	return d->hot->set(d->hot->ctx, gpa, len, true);
}

static int dev_unplug(void *ctx, uint64_t gpa, uint64_t len)
{
	const struct mem_dev *d = ctx;

	return d->hot->set(d->hot->ctx, gpa, len, false);
}

static void mem_kind_destroy(void *dev)
{
	struct mem_dev *d = dev;

	if (d)
		vmem_destroy(d->m);
	free(d);
}

static int mem_kind_create(const struct vm_config *c, unsigned i, const char *id,
			   const struct device_env *env, struct device_new *out)
{
	const struct vmc_memory_hotplug *h = &c->memory_hotplug;
	struct mem_dev *d;
	uint64_t gpa;
	int r;

	(void)i;
	(void)id;
	if (!env->hotmem) {
		pr_err("memory hot-plug: this VM has no room for it");
		return -EOPNOTSUPP;
	}
	if (!(d = calloc(1, sizeof(*d))))
		return -ENOMEM;
	d->hot = env->hotmem;
	if ((r = d->hot->add(d->hot->ctx, h->total_size_mib * MIB, h->slot_size_mib * MIB,
			     h->block_size_mib * MIB, &gpa)) < 0)
		goto fail;
	struct vmem_params p = {
	    .addr = gpa,
	    .region_size = h->total_size_mib * MIB,
	    .block_size = h->block_size_mib * MIB,
	    .host = {.plug = dev_plug, .unplug = dev_unplug, .ctx = d},
	};
	if ((r = vmem_create(&d->m, &p)) < 0) {
		pr_err("memory hot-plug: %s", strerror(-r));
		goto fail;
	}
	if (h->requested_size_mib &&
	    (r = vmem_set_requested(d->m, h->requested_size_mib * MIB)) < 0)
		goto fail;
	pr_debug("memory hot-plug: %u MiB at %#llx in blocks of %u MiB, KVM slots of %u MiB",
		 h->total_size_mib, ULL(gpa), h->block_size_mib, h->slot_size_mib);
	*out = (struct device_new){.priv = d, .ops = &vmem_ops, .front = d->m};
	return 0;
fail:
	mem_kind_destroy(d);
	return r;
}

static void mem_print_stats(const struct device *d)
{
	const struct mem_dev *m = device_priv(d);
	struct vmem_counters n;
	struct vmem_info in;

	vmem_get_info(m->m, &in);
	vmem_get_counters(m->m, &n);
	pr_info("memory-hotplug: plugged %llu MiB of %llu (requested %llu); requests: plug=%llu "
		"unplug=%llu unplug_all=%llu state=%llu nacks=%llu errors=%llu",
		ULL(in.plugged / MIB), ULL(in.region_size / MIB), ULL(in.requested / MIB),
		ULL(n.plug), ULL(n.unplug), ULL(n.unplug_all), ULL(n.state), ULL(n.nacks),
		ULL(n.errors + n.protocol_errors));
}

static void mem_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	const struct mem_dev *m = device_priv(d);
	struct vmem_counters n;
	struct vmem_info in;

	vmem_get_info(m->m, &in);
	vmem_get_counters(m->m, &n);
	emit(ctx, "plug_count", n.plug);
	emit(ctx, "unplug_count", n.unplug + n.unplug_all);
	emit(ctx, "state_count", n.state);
	emit(ctx, "nack_count", n.nacks);
	emit(ctx, "event_fails", n.errors + n.protocol_errors);
	emit(ctx, "plugged_bytes", in.plugged);
}

/* GET /hotplug/memory's figures, in MiB. */
static void mem_report(const struct device *d, device_counter_fn emit, void *ctx)
{
	const struct mem_dev *m = device_priv(d);
	struct vmem_info in;

	vmem_get_info(m->m, &in);
	emit(ctx, "plugged_size_mib", in.plugged / MIB);
	emit(ctx, "requested_size_mib", in.requested / MIB);
}

/* PATCH /hotplug/memory: the new target (checked by the controller). */
static int mem_update(void *dev, const struct vm_config *c, unsigned i, unsigned changes,
		      struct vm_err *err)
{
	struct mem_dev *d = dev;
	int r;

	(void)i;
	if (!(changes & DEVICE_CHANGE_REQUESTED))
		return 0;
	if ((r = vmem_set_requested(d->m, c->memory_hotplug.requested_size_mib * MIB)) < 0)
		return vm_err_set(err, r,
				  "requested_size_mib %u: not a multiple of the block size "
				  "within the region",
				  c->memory_hotplug.requested_size_mib);
	return 0;
}

static int mem_kind_save(const void *dev, struct wbuf *w)
{
	const struct mem_dev *d = dev;

	return vmem_save(d->m, w);
}

/* What plugging the device's ranges back (or taking them away) did: the
 * first error, and the range it came from (the later ranges are not
 * tried). */
struct replug {
	const struct mem_dev *d;
	bool plugged;
	int r;
	uint64_t gpa, len;
};

static void replug_range(void *ctx, uint64_t gpa, uint64_t len)
{
	struct replug *p = ctx;
	int r = p->r ? 0 : p->d->hot->set(p->d->hot->ctx, gpa, len, p->plugged);

	if (r < 0) {
		p->r = r;
		p->gpa = gpa;
		p->len = len;
	}
}

/* The device's state from the snapshot, then the memory behind it: the
 * blocks the guest had plugged are plugged again (KVM slots, gmem lets
 * devices in); their contents are in guest memory already, restored from
 * the memory file. A VM reset in place has the blocks it plugged since:
 * they are taken away first (the device still knows them), and a reset
 * that fails after that stops the VM (vm_reset_execute). */
static int mem_kind_restore(void *dev, struct rbuf *r, char *err, size_t errlen)
{
	struct mem_dev *d = dev;
	struct replug p = {.d = d, .plugged = false};
	int e;

	vmem_plugged_ranges(d->m, replug_range, &p);
	if (p.r < 0)
		return err_set(err, errlen, p.r, "memory hot-plug: unplugging %#llx (%llu MiB): %s",
			       ULL(p.gpa), ULL(p.len / MIB), strerror(-p.r));
	if ((e = vmem_restore(d->m, r, err, errlen)) < 0)
		return e;
	p = (struct replug){.d = d, .plugged = true};
	vmem_plugged_ranges(d->m, replug_range, &p);
	if (p.r < 0)
		return err_set(err, errlen, p.r, "memory hot-plug: plugging %#llx (%llu MiB): %s",
			       ULL(p.gpa), ULL(p.len / MIB), strerror(-p.r));
	return 0;
}

/* Nothing to drain or quiesce: the device answers each request as it
 * takes it. */
const struct device_kind mem_kind = {
    .name = "mem",
    .label = "memory hot-plug device",
    .metrics_section = "memory_hotplug",
    .count = mem_count,
    .id = mem_id,
    .create = mem_kind_create,
    .destroy = mem_kind_destroy,
    .print_stats = mem_print_stats,
    .counters = mem_counters,
    .report = mem_report,
    .update = mem_update,
    .save = mem_kind_save,
    .restore = mem_kind_restore,
    .restore_first = true,
};
