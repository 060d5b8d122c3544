/* virtio-mem (virtio 1.2 section 5.15), Firecracker's memory hot-plug
 * device: a region of guest-physical address space, cut into blocks, of
 * which the guest's driver plugs (takes into use) and unplugs (gives back)
 * blocks on its request queue, so that what it has plugged moves towards
 * the size the host requests. The device keeps which blocks are plugged;
 * what plugging does to the VM (the memory behind a range made usable by
 * the guest, or taken away) is the VM's glue's, through struct vmem_host.
 *
 * Features offered: VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE only: flint keeps
 * unplugged memory out of the guest's reach, so a driver that does not
 * accept it (one that may read unplugged memory: Linux before 5.16) is
 * refused at activation (DEVICE_NEEDS_RESET), as QEMU refuses it at
 * FEATURES_OK. No VIRTIO_MEM_F_ACPI_PXM: node_id is 0.
 *
 * Configuration space (struct virtio_mem_config, little-endian), read-only
 * for the driver (its writes are ignored): block_size, node_id 0, addr,
 * region_size, usable_region_size (the whole region), plugged_size (what
 * the guest has plugged) and requested_size (the host's target). A new
 * target raises a configuration interrupt; plugging and unplugging do not.
 *
 * Requests: each chain carries a device-readable struct virtio_mem_req (at
 * least sizeof(struct virtio_mem_req) readable bytes, in as many buffers as
 * the driver likes) and room for a device-writable struct virtio_mem_resp
 * (at least its sizeof, likewise), which gets the answer; the chain is
 * given back with sizeof(struct virtio_mem_resp) written. A range is
 * nb_blocks > 0 blocks from a block-aligned addr, wholly inside the usable
 * region.
 *   PLUG       ERROR for a bad range or one with a plugged block; NACK when
 *              plugged_size would pass requested_size; else host->plug and
 *              ACK (ERROR if that fails).
 *   UNPLUG     ERROR for a bad range or one with an unplugged block; else
 *              host->unplug and ACK (ERROR if that fails).
 *   UNPLUG_ALL host->unplug for each maximal run of plugged blocks, ACK;
 *              ERROR when one fails (the runs unplugged before stay so).
 *   STATE      ERROR for a bad range; else ACK, and the state of its blocks:
 *              PLUGGED, UNPLUGGED or MIXED.
 * Another type is answered ERROR. A request that failed changes nothing. A
 * chain too short for a request or a response is given back with nothing
 * written and counted as an error; a chain vq_pop refuses breaks the queue
 * (DEVICE_NEEDS_RESET).
 *
 * What is plugged outlives a driver reset (status 0): the driver that
 * probes next reads plugged_size and starts with UNPLUG_ALL (Linux does).
 * A reset drops the queue and nothing else.
 *
 * Threads: notify on the event-loop thread (or a vCPU thread, virtio.h);
 * activate, reset and config_read on vCPU threads; vmem_set_requested,
 * vmem_get_info and vmem_get_counters from the control thread. One mutex
 * serialises them; the vmem_host and virtio_host callbacks are called with
 * it held.
 *
 * Life cycle: vmem_create before the VM runs; vmem_destroy after its
 * threads have stopped. The device has no thread, timer or file of its
 * own. */
#ifndef FLINT_VMEM_H
#define FLINT_VMEM_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "core/wire.h"
#include "virtio.h"

#define VMEM_QUEUE_MAX 128 /* largest request queue taken */

struct vmem;

/* What plugging does to the VM (the VM's glue implements it): make the
 * block-aligned range [gpa, gpa + len) inside the region usable by the
 * guest (plug) or give it back (unplug: its contents are lost). Called on
 * the thread that handles the queue, with the device's lock held (unplug
 * with its state's lock let go, so that the metrics and the API do not
 * wait on a removal the Uffd backend holds up; the device's other calls
 * still wait). 0, or
 * -errno: the request is answered VIRTIO_MEM_RESP_ERROR and the device's
 * state does not change. */
struct vmem_host {
	int (*plug)(void *ctx, uint64_t gpa, uint64_t len);
	int (*unplug)(void *ctx, uint64_t gpa, uint64_t len);
	void *ctx;
};

struct vmem_params {
	uint64_t addr;	      /* the region's guest-physical start, block-aligned */
	uint64_t region_size; /* a non-zero multiple of block_size */
	uint64_t block_size;  /* a power of two, at least 2 MiB */
	struct vmem_host host;
};

/* What the device knows now. */
struct vmem_info {
	uint64_t addr, region_size, block_size;
	uint64_t plugged;   /* bytes the guest has plugged */
	uint64_t requested; /* the host's target */
};

/* Counters, cumulative since vmem_create. */
struct vmem_counters {
	uint64_t plug, unplug, unplug_all, state; /* requests taken, by type */
	uint64_t nacks;		  /* plug requests refused: over the requested size */
	uint64_t errors;	  /* malformed requests, bad ranges, host failures */
	uint64_t protocol_errors; /* broken queue: DEVICE_NEEDS_RESET */
};

/* Build the device, every block unplugged and a requested size of 0.
 * -EINVAL for bad params: a geometry other than the above, a region that
 * ends past the 52-bit guest-physical space (x86-64's widest), or a host
 * without plug or unplug; -ENOMEM. *out owned by the caller
 * (vmem_destroy). Nothing is called on the host. */
int vmem_create(struct vmem **out, const struct vmem_params *p) WARN_UNUSED;

/* Free the device (what is plugged is the VM's to take down). NULL ok. */
void vmem_destroy(struct vmem *m);

/* A new target (PATCH /hotplug/memory): -EINVAL unless a multiple of
 * block_size and at most region_size; else the config space shows it and,
 * once the driver runs, a configuration interrupt tells it. Any thread. */
int vmem_set_requested(struct vmem *m, uint64_t bytes) WARN_UNUSED;

/* Copy what the device knows, or its counters. Any thread. */
void vmem_get_info(struct vmem *m, struct vmem_info *out);
void vmem_get_counters(struct vmem *m, struct vmem_counters *out);

/* The device's own state for a snapshot: version, requested size, the
 * plugged blocks. restore checks everything (same region geometry) before
 * changing anything, and does NOT call host->plug (the VM restores its
 * memory itself; it reads vmem_plugged_ranges after). Call both with the
 * queue idle. save returns 0 or w's error; restore 0, -EBADMSG for a
 * truncated or corrupt state, -EPROTONOSUPPORT for another version,
 * -EINVAL for another geometry, or -ENOMEM, with err (errlen bytes) saying
 * which and the device left as it was. Bytes after the section are left
 * in r. */
int vmem_save(const struct vmem *m, struct wbuf *w) WARN_UNUSED;
int vmem_restore(struct vmem *m, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

/* Call fn for each maximal run of plugged blocks, in address order. fn is
 * called with the device's lock held: it must not call into the device. */
void vmem_plugged_ranges(struct vmem *m, void (*fn)(void *ctx, uint64_t gpa, uint64_t len),
			 void *ctx);

/* VIRTIO_ID_MEM, one queue of up to VMEM_QUEUE_MAX; dev is a struct vmem. */
extern const struct virtio_dev_ops vmem_ops; /* VIRTIO_ID_MEM, one queue */

#endif
