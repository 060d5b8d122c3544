/* controller: what Firecracker's API acts on. Holds the pre-boot
 * vm_config, the instance's identity (id, app name, version) and its phase,
 * and applies Firecracker's phase rules: resources are configured before
 * InstanceStart (PUT machine-config, boot-source, drives,
 * network-interfaces, vsock, logger, metrics, entropy, serial, balloon,
 * hotplug/memory; PATCH machine-config); after it only PATCH /vm, PATCH
 * drives, network-interfaces, the balloon and hotplug/memory,
 * SendCtrlAltDel and FlushMetrics are accepted. Once
 * started, it drives the VM through struct api_vm_ops, implemented by the
 * command layer (runner/cmd/).
 *
 * Every request function returns 0 or -errno with err->msg set to the
 * fault_message the API answers. The config is guarded by a mutex, so the
 * functions may be called from any thread; the ops are called with it held
 * (one request at a time reaches the VM, in order). The request counters
 * are atomics, readable while requests run (metrics). */
#ifndef FLINT_API_CONTROLLER_H
#define FLINT_API_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/vm_config.h"
#include "core/mailbox.h"
#include "core/util.h"
#include "core/vm.h"
#include "mmds/mmds.h"

/* The VM as the controller sees it once started. Called with the
 * controller's lock held, on the thread that made the request: under the
 * API's seccomp filter (no ioctl, no open, no new thread) when that is the
 * API thread, so an op hands its work to the VM's control thread (the
 * mailbox) and waits for the answer. */
struct api_vm_ops {
	/* InstanceStart: build and start the VM described by c; returns once
	 * its vCPUs run (0) or it failed (-errno, err->msg says why). */
	int (*start)(void *ctx, const struct vm_config *c, struct vm_err *err);
	int (*pause)(void *ctx, struct vm_err *err);
	int (*resume)(void *ctx, struct vm_err *err);
	int (*ctrl_alt_del)(void *ctx, struct vm_err *err);
	int (*flush_metrics)(void *ctx, struct vm_err *err);
	/* PATCH after boot, given the device's whole new entry (already
	 * merged and checked) */
	int (*update_drive)(void *ctx, const struct vmc_drive *d, bool new_image,
			    struct vm_err *err);
	int (*update_net)(void *ctx, const struct vmc_net *n, struct vm_err *err);
	int (*update_pmem)(void *ctx, const struct vmc_pmem *p, struct vm_err *err);
	/* PATCH /balloon and /balloon/statistics after boot: the device
	 * follows b in what changes (enum device_change) names. */
	int (*update_balloon)(void *ctx, const struct vmc_balloon *b, unsigned changes,
			      struct vm_err *err);
	/* GET /balloon/statistics: the device's report, name by name. */
	int (*balloon_report)(void *ctx, void (*emit)(void *e, const char *name, uint64_t v),
			      void *e, struct vm_err *err);
	/* The balloon's free page hinting: the device carries out cmd (enum
	 * device_command) with arg, reporting through emit. */
	int (*balloon_command)(void *ctx, unsigned cmd, uint64_t arg,
			       void (*emit)(void *e, const char *name, uint64_t v), void *e,
			       struct vm_err *err);
	/* PATCH /hotplug/memory after the start: the device's new target (already
	 * checked: a multiple of block_size_mib, at most total_size_mib). */
	int (*update_memory_hotplug)(void *ctx, uint32_t requested_size_mib, struct vm_err *err);
	/* GET /hotplug/memory after the start: what the device knows now. */
	int (*memory_hotplug_status)(void *ctx, uint32_t *plugged_size_mib,
				     uint32_t *requested_size_mib, struct vm_err *err);
	/* PUT /logger and PUT /metrics take effect at once (pre-boot only, as
	 * Firecracker). NULL: only recorded in the config. */
	int (*set_logger)(void *ctx, const struct vmc_logger *l, struct vm_err *err);
	int (*set_metrics)(void *ctx, const struct vmc_metrics *m, struct vm_err *err);
	/* PUT /snapshot/create (the VM paused) and /snapshot/load (a fresh
	 * instance: builds the VM from the snapshot, whose configuration goes
	 * to *loaded, vm_config_init'ed by the caller and freed by it). */
	int (*snapshot_create)(void *ctx, const struct vm_snapshot_args *a, struct vm_err *err);
	int (*snapshot_load)(void *ctx, const struct vm_restore_args *a, struct vm_config *loaded,
			     struct vm_err *err);
	/* PUT /boot-source, /drives and /pmem: whether path opens, for reading
	 * or also for writing. Firecracker opens these files at the PUT, so a
	 * path that does not open is the PUT's 400, not InstanceStart's.
	 * NULL: checked at InstanceStart only. */
	int (*check_file)(void *ctx, const char *path, bool write, struct vm_err *err);
	/* PUT /network-interfaces: whether the tap attaches (Firecracker opens
	 * it at the PUT). NULL: checked at InstanceStart only. */
	int (*check_tap)(void *ctx, const char *name, struct vm_err *err);
	/* PUT /vsock: whether a socket can listen at uds_path (Firecracker
	 * binds it at the PUT). NULL: checked at InstanceStart only. */
	int (*check_uds)(void *ctx, const char *path, struct vm_err *err);
	/* "Running" / "Paused" once started (vm_state_name) */
	const char *(*state)(void *ctx);
};

/* Firecracker's instance id when --id is not given. */
#define API_DEFAULT_ID "anonymous-instance"
/* InstanceInfo's app_name. */
#define API_APP_NAME "flint"

/* Firecracker's answers to a request in the wrong phase. */
#define API_ERR_AFTER_START  "The requested operation is not supported after starting the microVM."
#define API_ERR_BEFORE_START "The requested operation is not supported before starting the microVM."
/* Firecracker's answer to a Diff snapshot of a VM without dirty page
 * tracking (vm_snap.c says the same). */
#define API_ERR_DIFF_WITHOUT_DIRTY_TRACKING                                                        \
	"Diff snapshots are not allowed on uVMs with dirty page tracking disabled."

/* The requests counted for metrics, by method and resource, in
 * Firecracker's metric groups (get_api_requests, put_api_requests,
 * patch_api_requests). */
enum api_req {
	API_REQ_GET_INSTANCE_INFO,
	API_REQ_GET_VERSION,
	API_REQ_GET_MACHINE_CFG,
	API_REQ_GET_VM_CONFIG,
	API_REQ_PUT_ACTIONS,
	API_REQ_PUT_BOOT_SOURCE,
	API_REQ_PUT_DRIVE,
	API_REQ_PUT_LOGGER,
	API_REQ_PUT_MACHINE_CFG,
	API_REQ_PUT_METRICS,
	API_REQ_PUT_NETWORK,
	API_REQ_PUT_VSOCK,
	API_REQ_PUT_ENTROPY,
	API_REQ_PUT_SERIAL,
	API_REQ_PUT_BALLOON,
	API_REQ_PUT_CPU_CONFIG,
	API_REQ_GET_BALLOON,
	API_REQ_GET_BALLOON_STATS,
	API_REQ_PATCH_DRIVE,
	API_REQ_PATCH_NETWORK,
	API_REQ_PATCH_MACHINE_CFG,
	API_REQ_PATCH_VM,
	API_REQ_PATCH_BALLOON,
	API_REQ_PATCH_BALLOON_STATS,
	API_REQ_PUT_SNAPSHOT_CREATE,
	API_REQ_PUT_SNAPSHOT_LOAD,
	API_REQ_GET_MMDS,
	API_REQ_PUT_MMDS, /* PUT /mmds and PUT /mmds/config, as Firecracker counts them */
	API_REQ_PATCH_MMDS,
	API_REQ_PUT_PMEM,
	API_REQ_PATCH_PMEM,
	API_REQ_PUT_HOTPLUG_MEMORY,
	API_REQ_PATCH_HOTPLUG_MEMORY,
	API_REQ_GET_HOTPLUG_MEMORY,
	API_REQ_COUNT
};

struct api_ctl;

/* Firecracker's default cap on a request body. */
#define API_MAX_BODY 51200

/* A controller for instance `id` (NULL: API_DEFAULT_ID), starting from a
 * copy of `initial` (NULL: Firecracker's defaults, vm_config_init). ops
 * and ops_ctx are kept (ops must outlive the controller). 0 or -ENOMEM. */
int api_ctl_create(struct api_ctl **out, const char *id, const struct vm_config *initial,
		   const struct api_vm_ops *ops, void *ops_ctx) WARN_UNUSED;
/* Free the controller and its config. NULL ok. */
void api_ctl_destroy(struct api_ctl *ctl);
/* The cap on a request body, at least 1: API_MAX_BODY until set
 * (--http-api-max-payload-size). Requests read it as they arrive. */
void api_ctl_set_max_body(struct api_ctl *ctl, size_t max);
size_t api_ctl_max_body(const struct api_ctl *ctl);

/* The VM was started outside the API (--config-file: flint boots at once
 * and serves the API beside it): from now on the post-boot rules apply. */
void api_ctl_mark_started(struct api_ctl *ctl);
bool api_ctl_started(struct api_ctl *ctl);

/* A deep copy of the current config into dst (which holds nothing yet).
 * 0 or -ENOMEM. */
int api_ctl_get_config(struct api_ctl *ctl, struct vm_config *dst) WARN_UNUSED;

/* Pre-boot configuration, each with vm_config's rules. The parts passed
 * by pointer to non-const are taken over on success (as the vm_config_*
 * updates do); on failure the caller still owns and frees them. */
int api_ctl_put_machine(struct api_ctl *ctl, const struct vmc_machine *m,
			struct vm_err *err) WARN_UNUSED;
int api_ctl_patch_machine(struct api_ctl *ctl, const struct vmc_machine_patch *p,
			  struct vm_err *err) WARN_UNUSED;
int api_ctl_put_boot(struct api_ctl *ctl, struct vmc_boot *b, struct vm_err *err) WARN_UNUSED;
int api_ctl_put_drive(struct api_ctl *ctl, struct vmc_drive *d, struct vm_err *err) WARN_UNUSED;
int api_ctl_put_net(struct api_ctl *ctl, struct vmc_net *n, struct vm_err *err) WARN_UNUSED;
int api_ctl_put_pmem(struct api_ctl *ctl, struct vmc_pmem *p, struct vm_err *err) WARN_UNUSED;
int api_ctl_put_vsock(struct api_ctl *ctl, struct vmc_vsock *v, struct vm_err *err) WARN_UNUSED;
int api_ctl_put_entropy(struct api_ctl *ctl, const struct vmc_entropy *e,
			struct vm_err *err) WARN_UNUSED;
int api_ctl_put_serial(struct api_ctl *ctl, struct vmc_serial *s, struct vm_err *err) WARN_UNUSED;
int api_ctl_put_cpu_config(struct api_ctl *ctl, const struct vmc_cpu_config *t,
			   struct vm_err *err) WARN_UNUSED;
/* PUT /mmds/config, with vm_config_set_mmds's rules. */
int api_ctl_put_mmds_config(struct api_ctl *ctl, const struct vmc_mmds_req *q,
			    struct vm_err *err) WARN_UNUSED;
/* The instance's MMDS data store, which PUT, PATCH and GET /mmds act on
 * at any time (mmds.h: it has its own lock). Kept, not owned; NULL (the
 * default): those requests are refused. */
void api_ctl_set_mmds(struct api_ctl *ctl, struct mmds *m);
struct mmds *api_ctl_mmds(struct api_ctl *ctl);
/* Through ops->set_logger / set_metrics first; metrics once only, as
 * Firecracker ("Reinitialization of metrics not allowed."). */
int api_ctl_put_logger(struct api_ctl *ctl, struct vmc_logger *l, struct vm_err *err) WARN_UNUSED;
int api_ctl_put_metrics(struct api_ctl *ctl, struct vmc_metrics *m, struct vm_err *err) WARN_UNUSED;

/* PATCH drives, network-interfaces and pmem: post-boot only (the
 * swagger's rule). The patch is merged into the config's entry, which is
 * handed to ops->update_drive / update_net / update_pmem; when that fails
 * the entry is restored.
 * The patch's strings are taken over on success. */
int api_ctl_patch_drive(struct api_ctl *ctl, struct vmc_drive_patch *p,
			struct vm_err *err) WARN_UNUSED;
int api_ctl_patch_net(struct api_ctl *ctl, struct vmc_net_patch *p, struct vm_err *err) WARN_UNUSED;
int api_ctl_patch_pmem(struct api_ctl *ctl, struct vmc_pmem_patch *p,
		       struct vm_err *err) WARN_UNUSED;

/* The balloon, with Firecracker's rules: PUT before the start (amount_mib
 * at most the machine's memory); PATCH /balloon (amount_mib) and PATCH
 * /balloon/statistics (the interval) before or after it (after: through
 * ops->update_balloon; statistics cannot be turned on or off then); GET
 * /balloon/statistics after it. Free page hinting (PATCH
 * /balloon/hinting/start with acknowledge_on_stop, PATCH .../stop, GET
 * .../status: Firecracker's BalloonHintingStatus) after it, on a balloon
 * made with free_page_hinting. */
int api_ctl_put_balloon(struct api_ctl *ctl, const struct vmc_balloon *b,
			struct vm_err *err) WARN_UNUSED;
int api_ctl_patch_balloon(struct api_ctl *ctl, uint32_t amount_mib, struct vm_err *err) WARN_UNUSED;
int api_ctl_patch_balloon_stats(struct api_ctl *ctl, uint32_t interval_s,
				struct vm_err *err) WARN_UNUSED;
int api_ctl_balloon_hint_start(struct api_ctl *ctl, bool ack_on_stop,
			       struct vm_err *err) WARN_UNUSED;
int api_ctl_balloon_hint_stop(struct api_ctl *ctl, struct vm_err *err) WARN_UNUSED;
/* malloc'd JSON, or NULL with err set. */
char *api_ctl_balloon_hint_status_json(struct api_ctl *ctl, struct vm_err *err);
/* GET /balloon (Firecracker's Balloon) and GET /balloon/statistics
 * (BalloonStats): malloc'd JSON, or NULL with err set. */
char *api_ctl_balloon_json(struct api_ctl *ctl, struct vm_err *err);
char *api_ctl_balloon_stats_json(struct api_ctl *ctl, struct vm_err *err);

/* Memory hot-plug (a virtio-mem device), with Firecracker's rules: PUT
 * /hotplug/memory before the start only (a VM a snapshot made has started:
 * it keeps the snapshot's), with vm_config_set_memory_hotplug's rules;
 * PATCH (the requested size: a multiple of block_size_mib, at most
 * total_size_mib) after the start only, through
 * ops->update_memory_hotplug; GET /hotplug/memory (MemoryHotplugStatus:
 * the configuration, plugged_size_mib and requested_size_mib, both 0
 * before the start and ops->memory_hotplug_status's after): malloc'd
 * JSON, or NULL with err set. PATCH and GET are refused when none is
 * configured. */
int api_ctl_put_memory_hotplug(struct api_ctl *ctl, const struct vmc_memory_hotplug *h,
			       struct vm_err *err) WARN_UNUSED;
int api_ctl_patch_memory_hotplug(struct api_ctl *ctl, uint32_t requested_size_mib,
				 struct vm_err *err) WARN_UNUSED;
char *api_ctl_memory_hotplug_json(struct api_ctl *ctl, struct vm_err *err);

/* Actions. InstanceStart once (needs a boot-source); pause, resume and
 * SendCtrlAltDel once started; FlushMetrics once metrics are configured,
 * before or after the start. */
int api_ctl_start(struct api_ctl *ctl, struct vm_err *err) WARN_UNUSED;
int api_ctl_pause(struct api_ctl *ctl, struct vm_err *err) WARN_UNUSED;
int api_ctl_resume(struct api_ctl *ctl, struct vm_err *err) WARN_UNUSED;
int api_ctl_ctrl_alt_del(struct api_ctl *ctl, struct vm_err *err) WARN_UNUSED;
int api_ctl_flush_metrics(struct api_ctl *ctl, struct vm_err *err) WARN_UNUSED;

/* Snapshots, with Firecracker's phase rules: create once started (the VM
 * must be paused: the VM says so; and flint refuses a VM with memory
 * hot-plug configured, before the VM is asked); load before the start and
 * before any boot resource (machine-config, boot-source, drives,
 * network-interfaces, vsock, entropy, serial, balloon, hotplug/memory) was
 * configured; logger and metrics may be. A loaded snapshot counts as the
 * start; its configuration becomes the controller's. */
int api_ctl_snapshot_create(struct api_ctl *ctl, const struct vm_snapshot_args *a,
			    struct vm_err *err) WARN_UNUSED;
int api_ctl_snapshot_load(struct api_ctl *ctl, const struct vm_restore_args *a,
			  struct vm_err *err) WARN_UNUSED;

/* The GET answers, malloc'd JSON (NULL when out of memory):
 * InstanceInfo {app_name, id, state, vmm_version}, with state "Not
 * started" before the start and ops->state() after; FirecrackerVersion
 * {"firecracker_version": flint's version}; MachineConfiguration; the
 * FullVmConfiguration (config_json_encode). */
char *api_ctl_instance_info(struct api_ctl *ctl);
char *api_ctl_version(struct api_ctl *ctl);
char *api_ctl_machine_json(struct api_ctl *ctl);
char *api_ctl_vm_config_json(struct api_ctl *ctl);

/* flint's version, as --version prints it. */
const char *api_vmm_version(void);

/* Count a request (failed: it was answered with an error). */
void api_ctl_count(struct api_ctl *ctl, enum api_req req, bool failed);

/* Every request counter, as Firecracker names its metrics:
 * emit(ctx, "put_api_requests.drive_count", n), "..._fails", ... */
typedef void (*api_emit_fn)(void *ctx, const char *name, uint64_t value);
void api_ctl_counters(struct api_ctl *ctl, api_emit_fn emit, void *ctx);

#endif
