#include "core/devices.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vdev.h"

struct device {
	const struct device_kind *kind;
	char *id;
	unsigned index; /* among the devices of its kind */
	void *priv;
	void *slot; /* the transport's handle, NULL when attach failed early */
	const struct devices *r;
};

struct devices {
	const struct device_transport *t;
	void *t_ctx;
	struct device *list[DEVICES_MAX];
	unsigned n;
};

int devices_create(struct devices **out, const struct device_transport *t, void *t_ctx)
{
	struct devices *r = calloc(1, sizeof(*r));

	*out = r;
	if (!r)
		return -ENOMEM;
	r->t = t;
	r->t_ctx = t_ctx;
	return 0;
}

static unsigned count_kind(const struct devices *r, const struct device_kind *k)
{
	unsigned n = 0;

	for (unsigned j = 0; j < r->n; j++)
		n += r->list[j]->kind == k;
	return n;
}

int devices_attach(struct devices *r, const struct device_kind *k, const struct vm_config *c,
		   unsigned i, const struct device_env *env)
{
	struct device *d;
	int ret;

	if (r->n == DEVICES_MAX) {
		pr_err("too many devices (at most %d)", DEVICES_MAX);
		return -ENOSPC;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->id = k->id(c, i))) {
		free(d);
		pr_err("%s %u: out of memory", k->label, i);
		return -ENOMEM;
	}
	/* Ids name a device in the API's paths (/drives/{id}), one namespace
	 * per kind, as Firecracker's drive and interface ids. */
	if (devices_find(r, k->name, d->id)) {
		pr_err("another %s has the id '%s'", k->label, d->id);
		free(d->id);
		free(d);
		return -EEXIST;
	}
	d->kind = k;
	d->r = r;
	d->index = count_kind(r, k);
	struct device_new made = {0};
	if ((ret = k->create(c, i, d->id, env, &made)) < 0) {
		free(d->id);
		free(d);
		return ret;
	}
	/* Registered before the transport attaches: even a failed attach may
	 * leave event-loop polls that point into the device. */
	d->priv = made.priv;
	r->list[r->n++] = d;
	return r->t->attach(r->t_ctx, r->n - 1, made.ops, made.front, &d->slot);
}

unsigned devices_configured(const struct device_kind *const *kinds, size_t nkinds,
			    const struct vm_config *c)
{
	unsigned n = 0;

	for (size_t k = 0; k < nkinds; k++)
		n += kinds[k]->count(c);
	return n;
}

int devices_attach_all(struct devices *r, const struct device_kind *const *kinds, size_t nkinds,
		       const struct vm_config *c, const struct device_env *env)
{
	int ret;

	for (size_t k = 0; k < nkinds; k++)
		for (unsigned i = 0; i < kinds[k]->count(c); i++)
			if ((ret = devices_attach(r, kinds[k], c, i, env)) < 0)
				return ret;
	return 0;
}

int devices_update(struct devices *r, const char *kind, const char *id, const struct vm_config *c,
		   unsigned changes, struct vm_err *err)
{
	struct device *d = devices_find(r, kind, id);

	if (!d)
		return vm_err_set(err, -ENOENT, "no %s '%s' in this VM", kind, id);
	if (!d->kind->update)
		return vm_err_set(err, -EOPNOTSUPP, "a %s cannot be changed while the VM runs",
				  d->kind->label);
	/* A kind's index in the configuration is its attach index: devices
	 * attach in configuration order. */
	return d->kind->update(d->priv, c, d->index, changes, err);
}

void device_metrics_section(const struct device *d, char *buf, size_t len)
{
	const char *s = d->kind->metrics_section ? d->kind->metrics_section : d->kind->name;
	size_t n = strlen(s);

	snprintf(buf, len, "%s%s", s, n && s[n - 1] == '_' ? d->id : "");
}

void device_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	if (d->kind->counters)
		d->kind->counters(d, emit, ctx);
}

int device_report(const struct device *d, device_counter_fn emit, void *ctx)
{
	if (!d->kind->report)
		return -EOPNOTSUPP;
	d->kind->report(d, emit, ctx);
	return 0;
}

int device_command(struct device *d, enum device_command cmd, uint64_t arg, device_counter_fn emit,
		   void *ctx, struct vm_err *err)
{
	if (!d->kind->command)
		return vm_err_set(err, -EOPNOTSUPP, "the %s takes no such request", d->kind->label);
	return d->kind->command(d->priv, cmd, arg, emit, ctx, err);
}

struct device *devices_find(const struct devices *r, const char *kind, const char *id)
{
	for (unsigned j = 0; j < r->n; j++) {
		struct device *d = r->list[j];
		if ((!kind || !strcmp(d->kind->name, kind)) && !strcmp(d->id, id))
			return d;
	}
	return NULL;
}

unsigned devices_count(const struct devices *r)
{
	return r->n;
}

struct device *devices_at(const struct devices *r, unsigned n)
{
	return n < r->n ? r->list[n] : NULL;
}

void devices_print_stats(const struct devices *r)
{
	for (unsigned j = 0; j < r->n; j++)
		if (r->list[j]->kind->print_stats)
			r->list[j]->kind->print_stats(r->list[j]);
}

int devices_cmdline(const struct devices *r, char *buf, size_t len)
{
	for (unsigned j = 0; j < r->n; j++)
		if (!r->list[j]->slot || r->t->cmdline(r->list[j]->slot, buf, len) < 0)
			return -ENOSPC;
	return 0;
}

int devices_drain(struct devices *r, uint64_t deadline_ns, struct vm_err *err)
{
	int ret;

	for (unsigned j = 0; j < r->n; j++) {
		struct device *d = r->list[j];
		if (d->kind->drain && (ret = d->kind->drain(d->priv, deadline_ns, err)) < 0)
			return ret;
	}
	return 0;
}

void devices_hand_over(struct devices *r, uint64_t deadline_ns)
{
	for (unsigned j = 0; j < r->n; j++)
		if (r->list[j]->kind->hand_over)
			r->list[j]->kind->hand_over(r->list[j]->priv, deadline_ns);
}

int devices_check(const struct devices *r, char *err, size_t errlen)
{
	char why[256];
	int ret;

	for (unsigned j = 0; j < r->n; j++) {
		const struct device *d = r->list[j];

		if (d->kind->check && (ret = d->kind->check(d->priv, why, sizeof(why))) < 0)
			return err_set(err, errlen, ret, "%s %s: %s", d->kind->label, d->id, why);
	}
	return 0;
}

void devices_quiesce(struct devices *r)
{
	for (unsigned j = 0; j < r->n; j++)
		if (r->list[j]->kind->quiesce)
			r->list[j]->kind->quiesce(r->list[j]->priv);
}

void devices_kick(struct devices *r)
{
	for (unsigned j = 0; j < r->n; j++)
		if (r->list[j]->slot && r->t->kick)
			r->t->kick(r->list[j]->slot);
}

bool devices_can_reset(const struct devices *r)
{
	for (unsigned j = 0; j < r->n; j++)
		if (!r->list[j]->slot || !r->t->reset)
			return false;
	return true;
}

void devices_reset(struct devices *r)
{
	for (unsigned j = 0; j < r->n; j++)
		if (r->list[j]->slot && r->t->reset)
			r->t->reset(r->list[j]->slot);
}

#define DEVICE_SECTION_VERSION 1u

static void section_id(const struct device *d, char buf[DEVICE_SECTION_ID_MAX + 1])
{
	int n = snprintf(buf, DEVICE_SECTION_ID_MAX + 1, "%.15s:", d->kind->name);

	for (const unsigned char *s = (const unsigned char *)d->id;
	     *s && n + 3 <= DEVICE_SECTION_ID_MAX; s++) {
		if (*s > ' ' && *s < 0x7f && *s != '%')
			buf[n++] = (char)*s;
		else
			n += snprintf(buf + n, 4, "%%%02X", *s);
	}
	buf[n] = '\0';
}

int devices_save(const struct devices *r, device_section_fn emit, void *ctx, char *err,
		 size_t errlen)
{
	char id[DEVICE_SECTION_ID_MAX + 1], why[256];
	int ret = 0;

	if (!r->t->save)
		return err_set(err, errlen, -EOPNOTSUPP, "the devices' transport cannot be saved");
	for (unsigned j = 0; j < r->n && !ret; j++) {
		const struct device *d = r->list[j];
		struct wbuf w;

		wbuf_init(&w);
		wput_u32(&w, DEVICE_SECTION_VERSION);
		section_id(d, id);
		why[0] = '\0';
		if (!d->slot)
			ret = err_set(err, errlen, -EINVAL, "%s: not attached", id);
		else if ((ret = r->t->save(d->slot, &w, why, sizeof(why))) < 0 ||
			 (d->kind->save && (ret = d->kind->save(d->priv, &w)) < 0) ||
			 (ret = wbuf_err(&w)) < 0)
			err_set(err, errlen, ret, "%s: %s", id, why[0] ? why : strerror(-ret));
		else if ((ret = emit(ctx, id, w.p, w.len)) < 0)
			err_set(err, errlen, ret, "%s: %s", id, strerror(-ret));
		wbuf_free(&w);
	}
	return ret;
}

/* Restore device d from its section (devices_restore). */
static int restore_one(struct devices *r, struct device *d, device_lookup_fn lookup, void *ctx,
		       char *err, size_t errlen)
{
	char id[DEVICE_SECTION_ID_MAX + 1], why[256];
	const uint8_t *data;
	size_t len;
	struct rbuf rb;
	int ret;

	section_id(d, id);
	if (!d->slot)
		return err_set(err, errlen, -EINVAL, "%s: not attached", id);
	if (lookup(ctx, id, &data, &len) < 0) {
		/* A snapshot from before ids were escaped holds a '%' as it is. */
		char raw[DEVICE_SECTION_ID_MAX + 1];

		snprintf(raw, sizeof(raw), "%s:%s", d->kind->name, d->id);
		if (!strcmp(raw, id) || lookup(ctx, raw, &data, &len) < 0)
			return err_set(err, errlen, -EBADMSG, "no state for device %s", id);
	}
	rbuf_init(&rb, data, len);
	uint32_t v = rget_u32(&rb);
	if (rbuf_err(&rb) < 0 || v != DEVICE_SECTION_VERSION)
		return err_set(err, errlen, -EBADMSG,
			       "device %s: section version %u, this flint reads %u", id, v,
			       DEVICE_SECTION_VERSION);
	why[0] = '\0';
	if ((ret = r->t->restore(d->slot, &rb, why, sizeof(why))) < 0 ||
	    (d->kind->restore && (ret = d->kind->restore(d->priv, &rb, why, sizeof(why))) < 0))
		return err_set(err, errlen, ret, "device %s: %s", id,
			       why[0] ? why : strerror(-ret));
	if (!rbuf_done(&rb))
		return err_set(err, errlen, -EBADMSG, "device %s: %zu bytes left over", id,
			       rb.len - rb.off);
	return 0;
}

int devices_restore(struct devices *r, device_lookup_fn lookup, void *ctx, char *err, size_t errlen)
{
	int ret;

	if (!r->t->restore)
		return err_set(err, errlen, -EOPNOTSUPP,
			       "the devices' transport cannot be restored");
	/* The kinds that plug guest memory first, then the rest. */
	for (int first = 1; first >= 0; first--)
		for (unsigned j = 0; j < r->n; j++)
			if (r->list[j]->kind->restore_first == first &&
			    (ret = restore_one(r, r->list[j], lookup, ctx, err, errlen)) < 0)
				return ret;
	return 0;
}

void devices_destroy(struct devices *r)
{
	if (!r)
		return;
	while (r->n) {
		struct device *d = r->list[--r->n];
		r->t->detach(d->slot);
		d->kind->destroy(d->priv);
		free(d->id);
		free(d);
	}
	free(r);
}

const char *device_id(const struct device *d)
{
	return d->id;
}

const struct device_kind *device_kind(const struct device *d)
{
	return d->kind;
}

unsigned device_index(const struct device *d)
{
	return d->index;
}

void *device_priv(const struct device *d)
{
	return d->priv;
}

unsigned device_num_queues(const struct device *d)
{
	return d->slot ? d->r->t->num_queues(d->slot) : 0;
}

void device_queue_stats(const struct device *d, unsigned q, struct virtio_mmio_queue_stats *s)
{
	if (d->slot && q < device_num_queues(d))
		d->r->t->queue_stats(d->slot, q, s);
	else
		memset(s, 0, sizeof(*s));
}

/* The VM's transport: vdev.h's slots. */
static int vdev_slot_attach(void *ctx, unsigned slot, const struct virtio_dev_ops *ops, void *dev,
			    void **handle)
{
	struct vdev *v = NULL;
	int r;

	*handle = NULL;
	if (slot >= VDEV_MAX) {
		pr_err("too many virtio devices (at most %d)", VDEV_MAX);
		return -ENOSPC;
	}
	r = vdev_attach(&v, ctx, slot, ops, dev);
	*handle = v;
	return r;
}

static void vdev_slot_detach(void *handle)
{
	vdev_detach(handle);
}

static unsigned vdev_slot_num_queues(const void *handle)
{
	return vdev_num_queues(handle);
}

static void vdev_slot_queue_stats(const void *handle, unsigned q, struct virtio_mmio_queue_stats *s)
{
	vdev_queue_stats(handle, q, s);
}

static int vdev_slot_cmdline(const void *handle, char *buf, size_t len)
{
	return vdev_cmdline(handle, buf, len);
}

static int vdev_slot_save(const void *handle, struct wbuf *w, char *err, size_t errlen)
{
	return vdev_save(handle, w, err, errlen);
}

static int vdev_slot_restore(void *handle, struct rbuf *r, char *err, size_t errlen)
{
	return vdev_restore(handle, r, err, errlen);
}

static void vdev_slot_kick(void *handle)
{
	vdev_kick(handle);
}

static void vdev_slot_reset(void *handle)
{
	vdev_reset(handle);
}

const struct device_transport devices_vdev_transport = {
    .attach = vdev_slot_attach,
    .detach = vdev_slot_detach,
    .num_queues = vdev_slot_num_queues,
    .queue_stats = vdev_slot_queue_stats,
    .cmdline = vdev_slot_cmdline,
    .save = vdev_slot_save,
    .restore = vdev_slot_restore,
    .kick = vdev_slot_kick,
    .reset = vdev_slot_reset,
};
