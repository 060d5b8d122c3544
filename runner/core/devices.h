/* The VM's device registry: devices attach through a table of kinds and are
 * known by id ("drive0", "net0", "vsock"). Stats, the kernel command line
 * and teardown are loops over the attached devices; later, snapshot save
 * and restore will be too. The VM names no device kind: the kinds are
 * described by struct device_kind (device_kinds.h has flint's), and the
 * registry reaches the guest through a transport (virtio-mmio slots from
 * vdev.h in the VM, a fake in tests).
 *
 * Threads: attach, detach and teardown on the thread that builds the VM,
 * before the vCPUs and the event loop start or after they stop; lookups
 * and stats from any thread once attaching is over. */
#ifndef FLINT_DEVICES_H
#define FLINT_DEVICES_H

#include <stddef.h>

#include "config/vm_config.h"
#include "core/evloop.h"
#include "core/mailbox.h"
#include "core/util.h"
#include "core/wire.h"
#include "mmio.h"
#include "virtio.h"

/* Attached devices at most: the transport may allow fewer (vdev: VDEV_MAX). */
#define DEVICES_MAX 32

struct devices;
struct mmds;
struct device;

/* Guest-physical room for host memory a device puts in the guest's
 * address space (virtio-pmem's file), above RAM and the MMIO hole. */
struct device_memmap {
	/* Map [host, host + size) (size a multiple of DEVICE_MEMMAP_ALIGN)
	 * at the next free DEVICE_MEMMAP_ALIGN-aligned guest-physical
	 * address, writable by the guest or not, for as long as the VM
	 * lives: the same devices mapped in the same order get the same
	 * addresses (a snapshot's). 0 with *gpa set, or -errno (logged). */
	int (*map)(void *ctx, void *host, uint64_t size, bool read_only, uint64_t *gpa);
	void *ctx;
};
#define DEVICE_MEMMAP_ALIGN (2ULL << 20)

/* Guest-physical room for a memory hot-plug region (virtio-mem): host
 * memory above RAM, the MMIO hole and device memory, which the guest and
 * flint's devices reach only where it is plugged. */
struct device_hotmem {
	/* Reserve the region: size bytes in KVM slots of slot_size (a
	 * multiple of block_size, which divides size), at an address aligned
	 * for the guest's memory blocks. At most one. 0 with *gpa set, or
	 * -errno (logged). */
	int (*add)(void *ctx, uint64_t size, uint64_t slot_size, uint64_t block_size,
		   uint64_t *gpa);
	/* Plug or unplug [gpa, gpa + len) (blocks of the region): gmem lets
	 * devices reach it or not, a KVM slot is made when its first block is
	 * plugged and dropped when its last is unplugged, unplugged memory
	 * goes back to the host. 0, or -errno (logged) with nothing changed.
	 * On the thread that drives the device (the event loop's). */
	int (*set)(void *ctx, uint64_t gpa, uint64_t len, bool plugged);
	void *ctx;
};

/* What a kind needs to create a device. */
struct device_env {
	struct evloop *loop;
	struct mmds *mmds;		    /* the instance's MMDS data store; NULL: none */
	const struct device_memmap *memmap; /* NULL: no device may map memory */
	const struct device_hotmem *hotmem; /* NULL: no memory hot-plug */
};

/* What a kind's create makes: its own device, given back to the other
 * hooks (struct blk, struct net, struct vsock_mux), and the virtio front end
 * the transport attaches (ops on front; front is often priv itself). */
struct device_new {
	void *priv;
	const struct virtio_dev_ops *ops;
	void *front;
};

/* What a change after boot touches (struct device_kind's update): a drive's
 * image (PATCH with path_on_host, even the same path: the file may have
 * grown), its rate limiters. */
enum device_change {
	DEVICE_CHANGE_BACKING = 1u << 0,
	DEVICE_CHANGE_LIMITS = 1u << 1,
	DEVICE_CHANGE_TARGET = 1u << 2,		/* a balloon's amount_mib */
	DEVICE_CHANGE_STATS_INTERVAL = 1u << 3, /* its stats_polling_interval_s */
	DEVICE_CHANGE_REQUESTED = 1u << 4,	/* memory hot-plug's requested_size_mib */
};

/* A request to a device beyond its configuration (struct device_kind's
 * command): a balloon's free page hinting run, started (arg: whether the
 * guest's end of the run is acknowledged at once), stopped, or reported
 * on through emit. */
enum device_command {
	DEVICE_CMD_HINT_START,
	DEVICE_CMD_HINT_STOP,
	DEVICE_CMD_HINT_STATUS,
};

/* Receives one counter of a device: its name (Firecracker's metric name
 * where it has one, "read_bytes") and its value since the device was made. */
typedef void (*device_counter_fn)(void *ctx, const char *name, uint64_t value);

/* A kind of device: how to find its instances in the configuration, create
 * and destroy one, report on it, and change it while the VM runs. Each hook
 * is given the index i of the instance among those of its kind in the
 * configuration (0 for the first drive). */
struct device_kind {
	const char *name;  /* "blk", "net", "vsock": for lookups */
	const char *label; /* "drive", "network interface": for messages */
	/* The device's section in the metrics file: Firecracker's name; one
	 * ending in '_' gets the device's id ("block_" -> "block_rootfs"). */
	const char *metrics_section;
	/* How many devices of this kind c describes. */
	unsigned (*count)(const struct vm_config *c);
	/* The i-th one's id, malloc'd (NULL when out of memory). */
	char *(*id)(const struct vm_config *c, unsigned i);
	/* Create the i-th one, known as id. 0 or -errno, logged; on failure
	 * nothing is left to destroy. */
	int (*create)(const struct vm_config *c, unsigned i, const char *id,
		      const struct device_env *env, struct device_new *out);
	/* Free what create made (its priv). The event loop has stopped (or never started)
	 * and the transport is detached. */
	void (*destroy)(void *dev);
	/* Print the device's --stats line(s) with pr_info; NULL for none. */
	void (*print_stats)(const struct device *d);
	/* Every counter of the device, through emit (metrics); NULL for none. */
	void (*counters)(const struct device *d, device_counter_fn emit, void *ctx);
	/* What the device reports of its state now, name by name (a
	 * balloon's GET /balloon/statistics: its target, what the guest holds,
	 * the guest's statistics); NULL for none. Any thread once the device
	 * is attached. */
	void (*report)(const struct device *d, device_counter_fn emit, void *ctx);
	/* The i-th entry of c changed while the VM runs (PATCH /drives/{id}):
	 * make the device follow it in what `changes` (enum device_change
	 * bits) names, and only that. On the control thread, with the event
	 * loop running. 0, or -errno with err saying why (the device then runs
	 * on as before). NULL: the kind cannot change after boot. */
	int (*update)(void *dev, const struct vm_config *c, unsigned i, unsigned changes,
		      struct vm_err *err);
	/* Carry out cmd (enum device_command) with arg, reporting through
	 * emit what it reports. On the control thread. 0, or -errno with err
	 * saying why. NULL: the kind takes no command. */
	int (*command)(void *dev, enum device_command cmd, uint64_t arg, device_counter_fn emit,
		       void *ctx, struct vm_err *err);

	/* Snapshot (issue 12). On the control thread, the vCPUs paused, in
	 * this order for every device: drain, then (the event loop parked by
	 * evloop_pause, so no device code runs anywhere else) quiesce, the
	 * transport's save, save; then evloop_resume and, for the VM that
	 * goes on in this process, the transport kicks every queue.
	 *
	 * drain: wait, until deadline_ns (now_ns()'s clock), for the I/O the
	 * device has in flight at its backend to finish and be used (a
	 * drive's reads and writes: an acknowledged write is then on its
	 * image). The event loop still runs. 0, or -ETIMEDOUT with err set.
	 * NULL: the kind has nothing in flight to wait for. */
	int (*drain)(void *dev, uint64_t deadline_ns, struct vm_err *err);
	/* quiesce: leave nothing the saved queues would not show: every chain
	 * popped and not used goes back to the guest (vq_discard: its
	 * available ring offers it again), packets or requests held back by
	 * a limiter included; vsock drops its host connections and sends the
	 * guest VIRTIO_VSOCK_EVENT_TRANSPORT_RESET. Afterwards the device
	 * takes work again when kicked (the VM may resume in this process).
	 * NULL: the kind holds nothing. */
	void (*quiesce)(void *dev);
	/* hand_over: the VM has stopped and the event loop has ended: give
	 * the host what the device took from the guest and still holds (guest
	 * data a host socket had not taken), waiting for room until
	 * deadline_ns, then dropping the rest with a word in the log. On the
	 * control thread, under its seccomp table (write, poll). NULL: the
	 * kind holds nothing for the host. */
	void (*hand_over)(void *dev, uint64_t deadline_ns);
	/* check: what the guest reaches directly in host memory is still
	 * whole (a pmem device's file, which a host program may truncate:
	 * the guest's accesses past the new end cannot be served, and KVM
	 * retries them for ever). On the control thread, about every 100 ms
	 * while the VM runs. 0, or -errno with err saying what was lost. NULL:
	 * the kind maps nothing. */
	int (*check)(void *dev, char *err, size_t errlen);
	/* save/restore: the device's own state beyond its transport and
	 * queues, its own u32 version first (restore: decode and check all
	 * before changing anything, as wire.h's convention). restore runs on
	 * a device just created from the snapshot's configuration, after its
	 * transport was restored (activated), before the event loop starts.
	 * NULL: the kind has no state of its own (none is written). */
	int (*save)(const void *dev, struct wbuf *w);
	int (*restore)(void *dev, struct rbuf *r, char *err, size_t errlen);
	/* The kind's restore plugs guest memory (memory hot-plug): its devices
	 * are restored before the others, whose rings and buffers may lie in
	 * that memory (a transport's restore finds its rings there). */
	bool restore_first;
};

/* How a device reaches the guest. attach puts device `dev` (with `ops`) in
 * transport slot `slot` (0, 1, ... in attach order) and returns 0 or -errno
 * (logged); on failure *handle may still hold a partly attached slot,
 * which is detached like any other. detach accepts NULL. */
struct device_transport {
	int (*attach)(void *ctx, unsigned slot, const struct virtio_dev_ops *ops, void *dev,
		      void **handle);
	void (*detach)(void *handle);
	unsigned (*num_queues)(const void *handle);
	void (*queue_stats)(const void *handle, unsigned q, struct virtio_mmio_queue_stats *s);
	/* Append the slot's kernel command-line argument: 0 or -ENOSPC. */
	int (*cmdline)(const void *handle, char *buf, size_t len);
	/* Snapshot: the slot's transport state (registers, queues) into w
	 * (0 or -errno, err saying why when it can: a state no restore would
	 * take); restore it into a fresh slot (0 or -errno, err says why); kick:
	 * have the device look at every queue (a notify, through the event
	 * loop). NULL: the transport has no snapshot support. */
	int (*save)(const void *handle, struct wbuf *w, char *err, size_t errlen);
	int (*restore)(void *handle, struct rbuf *r, char *err, size_t errlen);
	void (*kick)(void *handle);
	/* Back to a fresh slot's state (the driver's reset), so that restore
	 * takes it again: a VM reset in place. NULL: no reset in place. */
	void (*reset)(void *handle);
};

/* The transport of a VM: virtio-mmio slots, ioeventfds and irqfds of
 * vdev.h; its ctx is a struct vdev_env. */
extern const struct device_transport devices_vdev_transport;

/* An empty registry whose devices reach the guest through t (t_ctx its
 * context, which must outlive the registry). 0 or -ENOMEM. */
int devices_create(struct devices **out, const struct device_transport *t, void *t_ctx) WARN_UNUSED;

/* Attach the i-th device of kind k that c describes: its id must be new
 * among the devices of that kind, then the kind creates it and the
 * transport attaches it in the next slot. 0 or -errno, with a message
 * logged (-EEXIST for a duplicate id, naming it). A device whose transport
 * failed stays registered so that devices_destroy frees it after the event
 * loop, which may hold polls pointing into it. */
int devices_attach(struct devices *r, const struct device_kind *k, const struct vm_config *c,
		   unsigned i, const struct device_env *env) WARN_UNUSED;

/* How many devices c describes, of all the kinds in kinds[]. */
unsigned devices_configured(const struct device_kind *const *kinds, size_t nkinds,
			    const struct vm_config *c);

/* Every device c describes, kind by kind in the order of kinds[], each
 * kind's in configuration order: the guest's slot order. Stops at the first
 * failure. 0 or -errno (logged). */
int devices_attach_all(struct devices *r, const struct device_kind *const *kinds, size_t nkinds,
		       const struct vm_config *c, const struct device_env *env) WARN_UNUSED;

/* The device of kind `kind` (a kind's name; NULL for any) with this id, or
 * NULL. */
struct device *devices_find(const struct devices *r, const char *kind, const char *id);

/* Attached devices and the n-th of them, in attach order (NULL past the end). */
unsigned devices_count(const struct devices *r);
struct device *devices_at(const struct devices *r, unsigned n);

/* The device of kind `kind` known as id follows its changed entry in c
 * (struct device_kind's update). -ENOENT when there is no such device,
 * -EOPNOTSUPP when its kind cannot change; err says why. */
int devices_update(struct devices *r, const char *kind, const char *id, const struct vm_config *c,
		   unsigned changes, struct vm_err *err) WARN_UNUSED;

/* Each counter of device d (struct device_kind's counters); none when its
 * kind has no counters hook. */
void device_counters(const struct device *d, device_counter_fn emit, void *ctx);

/* Device d's report (struct device_kind's report): -EOPNOTSUPP when its
 * kind has none. */
int device_report(const struct device *d, device_counter_fn emit, void *ctx) WARN_UNUSED;

/* Device d's command hook (struct device_kind): -EOPNOTSUPP, err set, when
 * its kind takes none. */
int device_command(struct device *d, enum device_command cmd, uint64_t arg, device_counter_fn emit,
		   void *ctx, struct vm_err *err) WARN_UNUSED;

/* Device d's section in the metrics file ("block_rootfs", "vsock"). */
void device_metrics_section(const struct device *d, char *buf, size_t len);

/* Each device's hand_over hook (struct device_kind), in attach order,
 * all within one deadline: after the VM stopped, the event loop ended. */
void devices_hand_over(struct devices *r, uint64_t deadline_ns);

/* Each device's check hook (struct device_kind), in attach order: the
 * first failure, err naming the device. */
int devices_check(const struct devices *r, char *err, size_t errlen) WARN_UNUSED;

/* Each device's --stats lines, in attach order. */
void devices_print_stats(const struct devices *r);

/* Append each device's kernel command-line argument to buf (NUL-terminated,
 * size len). 0 or -ENOSPC. */
int devices_cmdline(const struct devices *r, char *buf, size_t len) WARN_UNUSED;

/* Snapshot loops over the attached devices, in attach order (struct
 * device_kind's hooks; the order of a snapshot is there). drain: the first
 * refusal is returned. quiesce: every device. kick: every queue of every
 * device. */
int devices_drain(struct devices *r, uint64_t deadline_ns, struct vm_err *err) WARN_UNUSED;
void devices_quiesce(struct devices *r);
void devices_kick(struct devices *r);

/* A device's section id: "<kind>:<device id>" ("blk:rootfs"), the id's
 * bytes outside printable ASCII, space and '%' written %XX (a config
 * file's ids may hold any), at most this long (a kind's name is at most 15
 * bytes). */
#define DEVICE_SECTION_ID_MAX (15 + 1 + 3 * VMC_MAX_ID)
/* Receives one device's section. */
typedef int (*device_section_fn)(void *ctx, const char *id, const void *data, size_t len);
/* Finds one: 0 with *data and *len set, or -ENOENT. */
typedef int (*device_lookup_fn)(void *ctx, const char *id, const uint8_t **data, size_t *len);

/* Each device's section, given to emit: u32 version, the transport's
 * state, then the kind's own (save hook). 0 or -errno with err set. */
int devices_save(const struct devices *r, device_section_fn emit, void *ctx, char *err,
		 size_t errlen) WARN_UNUSED;
/* Restore every attached device (made from the snapshot's configuration,
 * those of a restore_first kind first, then the others in attach order,
 * the event loop not started) from its section found with lookup: a
 * missing section, one with bytes left over, or one its transport or kind
 * refuses fails, err naming the device. A device restored before the
 * failure keeps its state: discard the VM then. */
int devices_restore(struct devices *r, device_lookup_fn lookup, void *ctx, char *err,
		    size_t errlen) WARN_UNUSED;
/* Whether every attached device's transport can be reset in place
 * (devices_reset); true for none attached. */
bool devices_can_reset(const struct devices *r);
/* A VM reset in place to its snapshot: every device's transport goes back
 * to a fresh slot's state, as the driver's own reset would take it (the
 * device forgets its queues, requests and buffers), so that
 * devices_restore takes the devices again. After devices_drain and
 * devices_quiesce, with the vCPUs paused and the event loop parked. */
void devices_reset(struct devices *r);

/* Tear down in reverse attach order: detach each device's transport, then
 * destroy the device. After the vCPUs and the event loop are gone. NULL ok. */
void devices_destroy(struct devices *r);

/* One attached device. */
const char *device_id(const struct device *d);
const struct device_kind *device_kind(const struct device *d);
/* Its index among the devices of its kind, in attach order: vda is drive 0,
 * eth1 is net 1. */
unsigned device_index(const struct device *d);
/* The kind's own device (struct blk, struct net, struct vsock_mux). */
void *device_priv(const struct device *d);
/* Its queues' counters from the transport (zeros for q out of range). */
unsigned device_num_queues(const struct device *d);
void device_queue_stats(const struct device *d, unsigned q, struct virtio_mmio_queue_stats *s);

#endif
