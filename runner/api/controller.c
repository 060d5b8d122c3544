#include "api/controller.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "core/devices.h"
#include "core/version.h"

struct api_ctl {
	pthread_mutex_t lock;
	struct vm_config config; /* under lock */
	bool started;		 /* under lock */
	bool metrics_set;	 /* under lock: PUT /metrics done (or in initial) */
	/* under lock: a boot resource was configured (a snapshot can no
	 * longer be loaded, as in Firecracker) */
	bool boot_configured;
	_Atomic size_t max_body; /* read by the HTTP thread without the lock */
	char *id;
	const struct api_vm_ops *ops;
	void *ops_ctx;
	struct mmds *mmds; /* set before the API is served; read only after */
	atomic_uint_fast64_t count[API_REQ_COUNT], fails[API_REQ_COUNT];
};

const char *api_vmm_version(void)
{
	return FLINT_VERSION;
}

int api_ctl_create(struct api_ctl **out, const char *id, const struct vm_config *initial,
		   const struct api_vm_ops *ops, void *ops_ctx)
{
	struct api_ctl *ctl = calloc(1, sizeof(*ctl));

	*out = NULL;
	if (!ctl)
		return -ENOMEM;
	if (!(ctl->id = strdup(id ? id : API_DEFAULT_ID)))
		goto err_free;
	if (initial) {
		if (vm_config_copy(&ctl->config, initial) < 0)
			goto err_id;
	} else {
		vm_config_init(&ctl->config);
	}
	ctl->metrics_set = ctl->config.metrics.metrics_path != NULL;
	ctl->max_body = API_MAX_BODY;
	ctl->ops = ops;
	ctl->ops_ctx = ops_ctx;
	pthread_mutex_init(&ctl->lock, NULL);
	*out = ctl;
	return 0;
err_id:
	free(ctl->id);
err_free:
	free(ctl);
	return -ENOMEM;
}

void api_ctl_set_max_body(struct api_ctl *ctl, size_t max)
{
	atomic_store(&ctl->max_body, max);
}

size_t api_ctl_max_body(const struct api_ctl *ctl)
{
	return atomic_load(&((struct api_ctl *)ctl)->max_body);
}

void api_ctl_destroy(struct api_ctl *ctl)
{
	if (!ctl)
		return;
	vm_config_free(&ctl->config);
	pthread_mutex_destroy(&ctl->lock);
	free(ctl->id);
	free(ctl);
}

void api_ctl_mark_started(struct api_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	ctl->started = true;
	pthread_mutex_unlock(&ctl->lock);
}

bool api_ctl_started(struct api_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	bool s = ctl->started;
	pthread_mutex_unlock(&ctl->lock);
	return s;
}

int api_ctl_get_config(struct api_ctl *ctl, struct vm_config *dst)
{
	pthread_mutex_lock(&ctl->lock);
	int r = vm_config_copy(dst, &ctl->config);
	pthread_mutex_unlock(&ctl->lock);
	return r;
}

/* Take the lock for a pre-boot request: 0 with the lock held, or
 * -EPERM with err set and the lock released. */
static int lock_pre_boot(struct api_ctl *ctl, struct vm_err *err)
{
	pthread_mutex_lock(&ctl->lock);
	if (!ctl->started)
		return 0;
	pthread_mutex_unlock(&ctl->lock);
	return vm_err_set(err, -EPERM, "%s", API_ERR_AFTER_START);
}

static int lock_post_boot(struct api_ctl *ctl, struct vm_err *err)
{
	pthread_mutex_lock(&ctl->lock);
	if (ctl->started)
		return 0;
	pthread_mutex_unlock(&ctl->lock);
	return vm_err_set(err, -EPERM, "%s", API_ERR_BEFORE_START);
}

/* Unlock and turn a vm_config update's result (0 or -errno with msg
 * filled in err->msg) into err's code. */
static int done(struct api_ctl *ctl, int r, struct vm_err *err)
{
	pthread_mutex_unlock(&ctl->lock);
	err->code = r;
	if (!r)
		err->msg[0] = '\0';
	return r;
}

/* done() for a boot resource: once one was asked for, no snapshot loads,
 * even when the request failed (Firecracker marks its boot path before it
 * tries). A body that did not parse never reaches here. */
static int done_boot(struct api_ctl *ctl, int r, struct vm_err *err)
{
	ctl->boot_configured = true;
	return done(ctl, r, err);
}

int api_ctl_put_machine(struct api_ctl *ctl, const struct vmc_machine *m, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	r = vm_config_set_machine(&ctl->config, m, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

int api_ctl_patch_machine(struct api_ctl *ctl, const struct vmc_machine_patch *p,
			  struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	r = vm_config_patch_machine(&ctl->config, p, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

/* Whether path opens (ops->check_file), the lock held; what names the
 * file in the answer ("The kernel file cannot be opened: ..."). */
static int check_file(struct api_ctl *ctl, const char *what, const char *path, bool write,
		      struct vm_err *err)
{
	struct vm_err why = {0};
	int r;

	if (!path || !ctl->ops || !ctl->ops->check_file ||
	    (r = ctl->ops->check_file(ctl->ops_ctx, path, write, &why)) >= 0)
		return 0;
	return vm_err_set(err, r, "The %s file cannot be opened: %s", what, why.msg);
}

int api_ctl_put_boot(struct api_ctl *ctl, struct vmc_boot *b, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	if ((r = check_file(ctl, "kernel", b->kernel_image_path, false, err)) < 0 ||
	    (r = check_file(ctl, "initrd", b->initrd_path, false, err)) < 0)
		return done_boot(ctl, r, err);
	r = vm_config_set_boot(&ctl->config, b, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

int api_ctl_put_drive(struct api_ctl *ctl, struct vmc_drive *d, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	if ((r = check_file(ctl, "drive's", d->path_on_host, !d->is_read_only, err)) < 0)
		return done_boot(ctl, r, err);
	r = vm_config_put_drive(&ctl->config, d, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

int api_ctl_put_pmem(struct api_ctl *ctl, struct vmc_pmem *p, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	if ((r = check_file(ctl, "pmem device's", p->path_on_host, !p->read_only, err)) < 0)
		return done_boot(ctl, r, err);
	r = vm_config_put_pmem(&ctl->config, p, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

int api_ctl_put_net(struct api_ctl *ctl, struct vmc_net *n, struct vm_err *err)
{
	struct vm_err why = {0};
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	if (n->host_dev_name && ctl->ops && ctl->ops->check_tap &&
	    (r = ctl->ops->check_tap(ctl->ops_ctx, n->host_dev_name, &why)) < 0)
		return done_boot(
		    ctl, vm_err_set(err, r, "Could not create the network device: %s", why.msg),
		    err);
	r = vm_config_put_net(&ctl->config, n, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

int api_ctl_put_vsock(struct api_ctl *ctl, struct vmc_vsock *v, struct vm_err *err)
{
	struct vm_err why = {0};
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	if (v->uds_path && ctl->ops && ctl->ops->check_uds &&
	    (r = ctl->ops->check_uds(ctl->ops_ctx, v->uds_path, &why)) < 0)
		return done_boot(
		    ctl, vm_err_set(err, r, "Cannot create backend for vsock device: %s", why.msg),
		    err);
	r = vm_config_set_vsock(&ctl->config, v, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

int api_ctl_put_entropy(struct api_ctl *ctl, const struct vmc_entropy *e, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	vm_config_set_entropy(&ctl->config, e);
	return done_boot(ctl, 0, err);
}

int api_ctl_put_cpu_config(struct api_ctl *ctl, const struct vmc_cpu_config *t, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	vm_config_set_cpu_config(&ctl->config, t);
	/* As Firecracker: not a boot resource, a snapshot may still load. */
	return done(ctl, 0, err);
}

int api_ctl_put_mmds_config(struct api_ctl *ctl, const struct vmc_mmds_req *q, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	r = vm_config_set_mmds(&ctl->config, q, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

void api_ctl_set_mmds(struct api_ctl *ctl, struct mmds *m)
{
	ctl->mmds = m;
}

struct mmds *api_ctl_mmds(struct api_ctl *ctl)
{
	return ctl->mmds;
}

int api_ctl_put_serial(struct api_ctl *ctl, struct vmc_serial *s, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	vm_config_set_serial(&ctl->config, s);
	/* As Firecracker: not a boot resource; a snapshot loaded next has
	 * its console there. */
	return done(ctl, 0, err);
}

/* An op's failure: its code (-EIO when it said none) and its message, or
 * strerror's. */
static int op_failed(int r, struct vm_err *err)
{
	if (r >= 0)
		r = -EIO;
	err->code = r;
	if (!err->msg[0])
		snprintf(err->msg, sizeof(err->msg), "%s", strerror(-r));
	return r;
}

int api_ctl_put_balloon(struct api_ctl *ctl, const struct vmc_balloon *b, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	r = vm_config_set_balloon(&ctl->config, b, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

/* Firecracker's answer when there is no balloon. */
#define NO_BALLOON "No balloon device found."

/* After a post-boot update's op answered r: the merged config becomes the
 * controller's when the VM took it, else it goes. Unlocks. */
static int take_merged(struct api_ctl *ctl, struct vm_config *merged, int r, struct vm_err *err)
{
	if (r < 0) {
		vm_config_free(merged);
		return done(ctl, op_failed(r, err), err);
	}
	vm_config_free(&ctl->config);
	ctl->config = *merged;
	return done(ctl, 0, err);
}

/* A balloon PATCH: before the start the config changes; after it, a copy
 * does, the device follows it (ops->update_balloon), and it becomes the
 * config. edit is vm_config_patch_balloon or _stats with its value. */
static int patch_balloon(struct api_ctl *ctl, uint32_t v, unsigned changes,
			 int (*edit)(struct vm_config *c, uint32_t v, bool started, char *err,
				     size_t errlen),
			 struct vm_err *err)
{
	struct vm_config merged;
	int r;

	pthread_mutex_lock(&ctl->lock);
	if (!ctl->config.balloon.enabled)
		return done(ctl, vm_err_set(err, -ENOENT, NO_BALLOON), err);
	if (!ctl->started)
		return done(ctl, edit(&ctl->config, v, false, err->msg, sizeof(err->msg)), err);
	if (vm_config_copy(&merged, &ctl->config) < 0)
		return done(ctl, vm_err_set(err, -ENOMEM, "out of memory"), err);
	if ((r = edit(&merged, v, true, err->msg, sizeof(err->msg))) < 0)
		goto err;
	*err = (struct vm_err){0};
	if (!ctl->ops || !ctl->ops->update_balloon) {
		r = vm_err_set(err, -EOPNOTSUPP, "flint cannot update the balloon after boot");
		goto err;
	}
	return take_merged(ctl, &merged,
			   ctl->ops->update_balloon(ctl->ops_ctx, &merged.balloon, changes, err),
			   err);
err:
	vm_config_free(&merged);
	return done(ctl, r, err);
}

static int edit_amount(struct vm_config *c, uint32_t v, bool started, char *err, size_t errlen)
{
	(void)started;
	return vm_config_patch_balloon(c, v, err, errlen);
}

int api_ctl_patch_balloon(struct api_ctl *ctl, uint32_t amount_mib, struct vm_err *err)
{
	return patch_balloon(ctl, amount_mib, DEVICE_CHANGE_TARGET, edit_amount, err);
}

int api_ctl_patch_balloon_stats(struct api_ctl *ctl, uint32_t interval_s, struct vm_err *err)
{
	return patch_balloon(ctl, interval_s, DEVICE_CHANGE_STATS_INTERVAL,
			     vm_config_patch_balloon_stats, err);
}

/* A free page hinting request: after the start, on a balloon made with
 * hinting; the device carries out cmd. The lock is held on return when
 * 0. */
static int hint_command(struct api_ctl *ctl, unsigned cmd, uint64_t arg,
			void (*emit)(void *e, const char *name, uint64_t v), void *e,
			struct vm_err *err)
{
	int r = lock_post_boot(ctl, err);

	if (r < 0)
		return r;
	if (!ctl->config.balloon.enabled)
		r = vm_err_set(err, -ENOENT, NO_BALLOON);
	else if (!ctl->config.balloon.free_page_hinting)
		r = vm_err_set(err, -EINVAL, "Attempting to use hinting when not enabled");
	else if (!ctl->ops || !ctl->ops->balloon_command)
		r = vm_err_set(err, -EOPNOTSUPP, "flint cannot reach the balloon");
	else if ((r = ctl->ops->balloon_command(ctl->ops_ctx, cmd, arg, emit, e, err)) < 0)
		op_failed(r, err);
	if (r < 0)
		pthread_mutex_unlock(&ctl->lock);
	return r;
}

int api_ctl_balloon_hint_start(struct api_ctl *ctl, bool ack_on_stop, struct vm_err *err)
{
	int r = hint_command(ctl, DEVICE_CMD_HINT_START, ack_on_stop, NULL, NULL, err);

	return r < 0 ? r : done(ctl, 0, err);
}

int api_ctl_balloon_hint_stop(struct api_ctl *ctl, struct vm_err *err)
{
	int r = hint_command(ctl, DEVICE_CMD_HINT_STOP, 0, NULL, NULL, err);

	return r < 0 ? r : done(ctl, 0, err);
}

char *api_ctl_balloon_json(struct api_ctl *ctl, struct vm_err *err)
{
	char *s = NULL;

	pthread_mutex_lock(&ctl->lock);
	if (!ctl->config.balloon.enabled)
		vm_err_set(err, -ENOENT, NO_BALLOON);
	else if (!(s = config_json_encode_balloon(&ctl->config.balloon)))
		vm_err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_unlock(&ctl->lock);
	return s;
}

static void put_stat(void *ctx, const char *name, uint64_t v)
{
	json_t *o = ctx;

	json_object_set_new(o, name, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

char *api_ctl_balloon_stats_json(struct api_ctl *ctl, struct vm_err *err)
{
	json_t *o = NULL;
	char *s = NULL;

	if (lock_post_boot(ctl, err) < 0)
		return NULL;
	if (!ctl->config.balloon.enabled)
		vm_err_set(err, -ENOENT, NO_BALLOON);
	else if (!ctl->config.balloon.stats_polling_interval_s)
		vm_err_set(err, -EINVAL, "Received stats query when stats are disabled.");
	else if (!ctl->ops || !ctl->ops->balloon_report)
		vm_err_set(err, -EOPNOTSUPP, "flint cannot report on the balloon");
	else if (!(o = json_object()))
		vm_err_set(err, -ENOMEM, "out of memory");
	else if (ctl->ops->balloon_report(ctl->ops_ctx, put_stat, o, err) < 0)
		op_failed(-EIO, err);
	else if (!(s = json_dumps(o, JSON_COMPACT)))
		vm_err_set(err, -ENOMEM, "out of memory");
	json_decref(o);
	pthread_mutex_unlock(&ctl->lock);
	return s;
}

char *api_ctl_balloon_hint_status_json(struct api_ctl *ctl, struct vm_err *err)
{
	json_t *o = json_object();
	char *s = NULL;

	if (!o) {
		vm_err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if (hint_command(ctl, DEVICE_CMD_HINT_STATUS, 0, put_stat, o, err) == 0) {
		/* Firecracker's BalloonHintingStatus: null before the guest's
		 * first command. */
		if (!json_object_get(o, "guest_cmd"))
			json_object_set_new(o, "guest_cmd", json_null());
		if (!(s = json_dumps(o, JSON_COMPACT)))
			vm_err_set(err, -ENOMEM, "out of memory");
		pthread_mutex_unlock(&ctl->lock);
	}
	json_decref(o);
	return s;
}

/* Firecracker's answer when there is no memory hot-plug device, as its
 * NO_BALLOON. */
#define NO_MEMORY_HOTPLUG "No memory hotplug device found."

int api_ctl_put_memory_hotplug(struct api_ctl *ctl, const struct vmc_memory_hotplug *h,
			       struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	r = vm_config_set_memory_hotplug(&ctl->config, h, err->msg, sizeof(err->msg));
	return done_boot(ctl, r, err);
}

int api_ctl_patch_memory_hotplug(struct api_ctl *ctl, uint32_t requested_size_mib,
				 struct vm_err *err)
{
	const struct vmc_memory_hotplug *h = &ctl->config.memory_hotplug;
	int r;

	pthread_mutex_lock(&ctl->lock);
	if (!h->enabled)
		return done(ctl, vm_err_set(err, -ENOENT, NO_MEMORY_HOTPLUG), err);
	if (!ctl->started)
		return done(ctl,
			    vm_err_set(err, -EPERM,
				       "%s The memory hot-plug device exists in a running microVM "
				       "only; it starts with no memory plugged.",
				       API_ERR_BEFORE_START),
			    err);
	if (requested_size_mib % h->block_size_mib)
		return done(ctl,
			    vm_err_set(err, -EINVAL,
				       "requested_size_mib: must be a multiple of block_size_mib "
				       "(%u MiB), got %u",
				       h->block_size_mib, requested_size_mib),
			    err);
	if (requested_size_mib > h->total_size_mib)
		return done(ctl,
			    vm_err_set(err, -EINVAL,
				       "requested_size_mib: must be at most total_size_mib (%u "
				       "MiB), got %u",
				       h->total_size_mib, requested_size_mib),
			    err);
	*err = (struct vm_err){0};
	if (!ctl->ops || !ctl->ops->update_memory_hotplug)
		return done(ctl,
			    vm_err_set(err, -EOPNOTSUPP,
				       "flint cannot update the memory hot-plug device after boot"),
			    err);
	if ((r = ctl->ops->update_memory_hotplug(ctl->ops_ctx, requested_size_mib, err)) < 0)
		r = op_failed(r, err);
	return done(ctl, r, err);
}

char *api_ctl_memory_hotplug_json(struct api_ctl *ctl, struct vm_err *err)
{
	const struct vmc_memory_hotplug *h = &ctl->config.memory_hotplug;
	uint32_t plugged = 0, requested = 0;
	json_t *o = NULL;
	char *s = NULL;
	int r;

	pthread_mutex_lock(&ctl->lock);
	if (!h->enabled) {
		vm_err_set(err, -ENOENT, NO_MEMORY_HOTPLUG);
		goto out;
	}
	if (ctl->started) {
		*err = (struct vm_err){0};
		if (!ctl->ops || !ctl->ops->memory_hotplug_status) {
			vm_err_set(err, -EOPNOTSUPP,
				   "flint cannot report on the memory hot-plug device");
			goto out;
		}
		if ((r = ctl->ops->memory_hotplug_status(ctl->ops_ctx, &plugged, &requested, err)) <
		    0) {
			op_failed(r, err);
			goto out;
		}
	}
	/* MemoryHotplugStatus, in the swagger's order. */
	o = json_pack("{s:I, s:I, s:I, s:I, s:I}", "total_size_mib", (json_int_t)h->total_size_mib,
		      "slot_size_mib", (json_int_t)h->slot_size_mib, "block_size_mib",
		      (json_int_t)h->block_size_mib, "plugged_size_mib", (json_int_t)plugged,
		      "requested_size_mib", (json_int_t)requested);
	if (!o || !(s = json_dumps(o, JSON_COMPACT)))
		vm_err_set(err, -ENOMEM, "out of memory");
out:
	json_decref(o);
	pthread_mutex_unlock(&ctl->lock);
	return s;
}

int api_ctl_put_logger(struct api_ctl *ctl, struct vmc_logger *l, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	*err = (struct vm_err){0};
	if (ctl->ops && ctl->ops->set_logger &&
	    (r = ctl->ops->set_logger(ctl->ops_ctx, l, err)) < 0) {
		pthread_mutex_unlock(&ctl->lock);
		return op_failed(r, err);
	}
	vm_config_update_logger(&ctl->config, l);
	return done(ctl, 0, err);
}

int api_ctl_put_metrics(struct api_ctl *ctl, struct vmc_metrics *m, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);
	if (r < 0)
		return r;
	if (ctl->metrics_set) {
		pthread_mutex_unlock(&ctl->lock);
		return vm_err_set(err, -EALREADY, "Reinitialization of metrics not allowed.");
	}
	*err = (struct vm_err){0};
	if (ctl->ops && ctl->ops->set_metrics &&
	    (r = ctl->ops->set_metrics(ctl->ops_ctx, m, err)) < 0) {
		pthread_mutex_unlock(&ctl->lock);
		return op_failed(r, err);
	}
	vm_config_set_metrics(&ctl->config, m);
	ctl->metrics_set = true;
	return done(ctl, 0, err);
}

/* PATCH after boot: merge the patch into a copy of the config, hand the
 * merged entry to the VM, keep the copy when the VM took it and drop it
 * otherwise, so the config always says what the VM runs. start_patch:
 * the lock taken and *merged a copy of the config; 0, or -errno with err
 * set and the lock released. */
static int start_patch(struct api_ctl *ctl, struct vm_config *merged, struct vm_err *err)
{
	int r = lock_post_boot(ctl, err);

	if (r < 0)
		return r;
	if (vm_config_copy(merged, &ctl->config) < 0)
		return done(ctl, vm_err_set(err, -ENOMEM, "out of memory"), err);
	return 0;
}

/* The patch merged (r, its vm_config_patch_*'s answer) and the VM has an
 * op for it (has_op, else "flint cannot update WHAT after boot"): 0 with
 * err cleared for the op; or the copy dropped, the lock released and r. */
static int check_patch(struct api_ctl *ctl, struct vm_config *merged, int r, bool has_op,
		       const char *what, struct vm_err *err)
{
	if (r >= 0 && !has_op)
		r = vm_err_set(err, -EOPNOTSUPP, "flint cannot update %s after boot", what);
	else if (r >= 0)
		*err = (struct vm_err){0};
	if (r < 0) {
		vm_config_free(merged);
		return done(ctl, r, err);
	}
	return 0;
}

int api_ctl_patch_drive(struct api_ctl *ctl, struct vmc_drive_patch *p, struct vm_err *err)
{
	struct vm_config merged;
	int r;

	if ((r = start_patch(ctl, &merged, err)) < 0)
		return r;
	/* Whether the PATCH named an image (the patch gives its path away
	 * below): the same path again means "read it anew" (Kata grows a disk
	 * that way), none means "leave it". */
	bool new_image = p->path_on_host != NULL;
	r = vm_config_patch_drive(&merged, p, err->msg, sizeof(err->msg));
	if ((r = check_patch(ctl, &merged, r, ctl->ops && ctl->ops->update_drive, "a drive", err)) <
	    0)
		return r;
	int i = vm_config_find_drive(&merged, p->drive_id);
	return take_merged(ctl, &merged,
			   ctl->ops->update_drive(ctl->ops_ctx, &merged.drives[i], new_image, err),
			   err);
}

int api_ctl_patch_net(struct api_ctl *ctl, struct vmc_net_patch *p, struct vm_err *err)
{
	struct vm_config merged;
	int r;

	if ((r = start_patch(ctl, &merged, err)) < 0)
		return r;
	r = vm_config_patch_net(&merged, p, err->msg, sizeof(err->msg));
	if ((r = check_patch(ctl, &merged, r, ctl->ops && ctl->ops->update_net,
			     "a network interface", err)) < 0)
		return r;
	int i = vm_config_find_net(&merged, p->iface_id);
	return take_merged(ctl, &merged, ctl->ops->update_net(ctl->ops_ctx, &merged.nets[i], err),
			   err);
}

int api_ctl_patch_pmem(struct api_ctl *ctl, struct vmc_pmem_patch *p, struct vm_err *err)
{
	struct vm_config merged;
	int r;

	if ((r = start_patch(ctl, &merged, err)) < 0)
		return r;
	r = vm_config_patch_pmem(&merged, p, err->msg, sizeof(err->msg));
	if ((r = check_patch(ctl, &merged, r, ctl->ops && ctl->ops->update_pmem, "a pmem device",
			     err)) < 0)
		return r;
	int i = vm_config_find_pmem(&merged, p->id);
	return take_merged(ctl, &merged, ctl->ops->update_pmem(ctl->ops_ctx, &merged.pmem[i], err),
			   err);
}

int api_ctl_start(struct api_ctl *ctl, struct vm_err *err)
{
	int r = lock_pre_boot(ctl, err);

	if (r < 0)
		return r;
	if (!ctl->config.boot.kernel_image_path)
		return done(
		    ctl,
		    vm_err_set(err, -EINVAL, "Cannot start microvm without kernel configuration."),
		    err);
	*err = (struct vm_err){0};
	if (!ctl->ops || !ctl->ops->start)
		return done(ctl, vm_err_set(err, -EOPNOTSUPP, "flint cannot start a VM here"), err);
	if ((r = ctl->ops->start(ctl->ops_ctx, &ctl->config, err)) < 0)
		return done(ctl, op_failed(r, err), err);
	ctl->started = true;
	return done(ctl, 0, err);
}

int api_ctl_snapshot_create(struct api_ctl *ctl, const struct vm_snapshot_args *a,
			    struct vm_err *err)
{
	int r = lock_post_boot(ctl, err);

	if (r < 0)
		return r;
	/* Firecracker checks this first, paused or not, with this message. */
	if (a->type == VM_SNAPSHOT_DIFF && !ctl->config.machine.track_dirty_pages)
		return done(
		    ctl, vm_err_set(err, -EINVAL, "%s", API_ERR_DIFF_WITHOUT_DIRTY_TRACKING), err);
	*err = (struct vm_err){0};
	if (!ctl->ops || !ctl->ops->snapshot_create)
		return done(ctl, vm_err_set(err, -EOPNOTSUPP, "flint cannot create snapshots here"),
			    err);
	if ((r = ctl->ops->snapshot_create(ctl->ops_ctx, a, err)) < 0)
		return done(ctl, op_failed(r, err), err);
	return done(ctl, 0, err);
}

int api_ctl_snapshot_load(struct api_ctl *ctl, const struct vm_restore_args *a, struct vm_err *err)
{
	struct vm_config loaded;
	int r = lock_pre_boot(ctl, err);

	if (r < 0)
		return r;
	if (ctl->boot_configured)
		return done(ctl,
			    vm_err_set(err, -EPERM,
				       "Loading a microVM snapshot not allowed after configuring "
				       "boot-specific resources."),
			    err);
	*err = (struct vm_err){0};
	if (!ctl->ops || !ctl->ops->snapshot_load)
		return done(ctl, vm_err_set(err, -EOPNOTSUPP, "flint cannot load snapshots here"),
			    err);
	vm_config_init(&loaded);
	struct vm_restore_args with_serial = *a;

	with_serial.serial = &ctl->config.serial;
	if ((r = ctl->ops->snapshot_load(ctl->ops_ctx, &with_serial, &loaded, err)) < 0) {
		vm_config_free(&loaded);
		return done(ctl, op_failed(r, err), err);
	}
	/* The machine is the snapshot's now: GET /vm/config shows it. The
	 * instance's logger and metrics stay as configured. */
	vm_config_set_logger(&loaded, &ctl->config.logger);
	ctl->config.logger = (struct vmc_logger){0};
	vm_config_set_metrics(&loaded, &ctl->config.metrics);
	ctl->config.metrics = (struct vmc_metrics){0};
	vm_config_free(&ctl->config);
	ctl->config = loaded;
	ctl->started = true;
	return done(ctl, 0, err);
}

/* A post-boot action through one of the ops. */
static int post_boot_op(struct api_ctl *ctl, int (*op)(void *, struct vm_err *), struct vm_err *err)
{
	int r = lock_post_boot(ctl, err);

	if (r < 0)
		return r;
	*err = (struct vm_err){0};
	if (!op)
		return done(ctl, vm_err_set(err, -EOPNOTSUPP, "flint cannot do this here"), err);
	if ((r = op(ctl->ops_ctx, err)) < 0)
		r = op_failed(r, err);
	return done(ctl, r, err);
}

int api_ctl_pause(struct api_ctl *ctl, struct vm_err *err)
{
	return post_boot_op(ctl, ctl->ops ? ctl->ops->pause : NULL, err);
}

int api_ctl_resume(struct api_ctl *ctl, struct vm_err *err)
{
	return post_boot_op(ctl, ctl->ops ? ctl->ops->resume : NULL, err);
}

int api_ctl_ctrl_alt_del(struct api_ctl *ctl, struct vm_err *err)
{
	return post_boot_op(ctl, ctl->ops ? ctl->ops->ctrl_alt_del : NULL, err);
}

/* FlushMetrics, as Firecracker: after the start only; without metrics
 * configured there is nothing to write and it is no error. */
int api_ctl_flush_metrics(struct api_ctl *ctl, struct vm_err *err)
{
	int r = lock_post_boot(ctl, err);

	if (r < 0)
		return r;
	*err = (struct vm_err){0};
	if (!ctl->metrics_set)
		return done(ctl, 0, err);
	if (!ctl->ops || !ctl->ops->flush_metrics)
		return done(ctl, vm_err_set(err, -EOPNOTSUPP, "flint cannot flush metrics here"),
			    err);
	if ((r = ctl->ops->flush_metrics(ctl->ops_ctx, err)) < 0)
		r = op_failed(r, err);
	return done(ctl, r, err);
}

/* A JSON object to a malloc'd compact string; takes o's reference. */
static char *dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

char *api_ctl_instance_info(struct api_ctl *ctl)
{
	const char *state = "Not started";

	pthread_mutex_lock(&ctl->lock);
	if (ctl->started)
		state = ctl->ops && ctl->ops->state ? ctl->ops->state(ctl->ops_ctx) : "Running";
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "app_name", API_APP_NAME, "id", ctl->id,
			      "state", state ? state : "Running", "vmm_version", FLINT_VERSION);
	pthread_mutex_unlock(&ctl->lock);
	return dump(o);
}

char *api_ctl_version(struct api_ctl *ctl)
{
	(void)ctl;
	return dump(json_pack("{s:s}", "firecracker_version", FLINT_VERSION));
}

char *api_ctl_machine_json(struct api_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	char *s = config_json_encode_machine(&ctl->config.machine);
	pthread_mutex_unlock(&ctl->lock);
	return s;
}

char *api_ctl_vm_config_json(struct api_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	char *s = config_json_encode_api(&ctl->config);
	pthread_mutex_unlock(&ctl->lock);
	return s;
}

void api_ctl_count(struct api_ctl *ctl, enum api_req req, bool failed)
{
	if ((unsigned)req >= API_REQ_COUNT)
		return;
	atomic_fetch_add_explicit(&ctl->count[req], 1, memory_order_relaxed);
	if (failed)
		atomic_fetch_add_explicit(&ctl->fails[req], 1, memory_order_relaxed);
}

/* Firecracker's metric group and name of each counter; GETs have no
 * _fails counter there. */
static const struct {
	const char *group, *name;
} req_names[API_REQ_COUNT] = {
    [API_REQ_GET_INSTANCE_INFO] = {"get_api_requests", "instance_info"},
    [API_REQ_GET_VERSION] = {"get_api_requests", "vmm_version"},
    [API_REQ_GET_MACHINE_CFG] = {"get_api_requests", "machine_cfg"},
    [API_REQ_GET_VM_CONFIG] = {"get_api_requests", "vm_config"},
    [API_REQ_PUT_ACTIONS] = {"put_api_requests", "actions"},
    [API_REQ_PUT_BOOT_SOURCE] = {"put_api_requests", "boot_source"},
    [API_REQ_PUT_DRIVE] = {"put_api_requests", "drive"},
    [API_REQ_PUT_LOGGER] = {"put_api_requests", "logger"},
    [API_REQ_PUT_MACHINE_CFG] = {"put_api_requests", "machine_cfg"},
    [API_REQ_PUT_METRICS] = {"put_api_requests", "metrics"},
    [API_REQ_PUT_NETWORK] = {"put_api_requests", "network"},
    [API_REQ_PUT_VSOCK] = {"put_api_requests", "vsock"},
    [API_REQ_PUT_ENTROPY] = {"put_api_requests", "entropy"},
    [API_REQ_PUT_SERIAL] = {"put_api_requests", "serial"},
    [API_REQ_PUT_BALLOON] = {"put_api_requests", "balloon"},
    [API_REQ_PUT_CPU_CONFIG] = {"put_api_requests", "cpu_cfg"},
    [API_REQ_GET_BALLOON] = {"get_api_requests", "balloon"},
    [API_REQ_GET_BALLOON_STATS] = {"get_api_requests", "balloon_stats"},
    [API_REQ_PATCH_DRIVE] = {"patch_api_requests", "drive"},
    [API_REQ_PATCH_NETWORK] = {"patch_api_requests", "network"},
    [API_REQ_PATCH_MACHINE_CFG] = {"patch_api_requests", "machine_cfg"},
    [API_REQ_PATCH_VM] = {"patch_api_requests", "vm"},
    [API_REQ_PATCH_BALLOON] = {"patch_api_requests", "balloon"},
    [API_REQ_PATCH_BALLOON_STATS] = {"patch_api_requests", "balloon_stats"},
    [API_REQ_PUT_SNAPSHOT_CREATE] = {"put_api_requests", "snapshot_create"},
    [API_REQ_PUT_SNAPSHOT_LOAD] = {"put_api_requests", "snapshot_load"},
    [API_REQ_GET_MMDS] = {"get_api_requests", "mmds"},
    [API_REQ_PUT_MMDS] = {"put_api_requests", "mmds"},
    [API_REQ_PATCH_MMDS] = {"patch_api_requests", "mmds"},
    [API_REQ_PUT_PMEM] = {"put_api_requests", "pmem"},
    [API_REQ_PATCH_PMEM] = {"patch_api_requests", "pmem"},
    [API_REQ_PUT_HOTPLUG_MEMORY] = {"put_api_requests", "hotplug_memory"},
    [API_REQ_PATCH_HOTPLUG_MEMORY] = {"patch_api_requests", "hotplug_memory"},
    [API_REQ_GET_HOTPLUG_MEMORY] = {"get_api_requests", "hotplug_memory"},
};

void api_ctl_counters(struct api_ctl *ctl, api_emit_fn emit, void *ctx)
{
	char name[96];

	for (unsigned i = 0; i < API_REQ_COUNT; i++) {
		bool get = !strcmp(req_names[i].group, "get_api_requests");
		snprintf(name, sizeof(name), "%s.%s_count", req_names[i].group, req_names[i].name);
		emit(ctx, name, atomic_load_explicit(&ctl->count[i], memory_order_relaxed));
		if (get)
			continue;
		snprintf(name, sizeof(name), "%s.%s_fails", req_names[i].group, req_names[i].name);
		emit(ctx, name, atomic_load_explicit(&ctl->fails[i], memory_order_relaxed));
	}
}
