/* Snapshots of a VM (issue 12): vm_snapshot saves a paused VM to a state
 * file (snapshot/snapfile.h: one section per component) and a memory file
 * (gmem_snap.h); vm_restore builds a VM from them in a fresh process.
 *
 * The state file's sections:
 *   "time"       u32 version, u64 CLOCK_REALTIME (ns) when it was taken
 *   "vm"         the I/O APIC and kvmclock (vm_state.h)
 *   "vcpuN"      each vCPU (vcpu_state.h)
 *   "serial", "i8042"
 *   "memory"     the memory file's layout (gmem_layout_save)
 *   "KIND:ID"    each virtio device: transport, queues, its own state
 *                (devices_save)
 * and in its header the CPU the guest was given: CPUID's vendor and the
 * feature words below, which a host restoring it must all have. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gmem_snap.h"
#include "core/logger.h"
#include "core/phases.h"
#include "core/vm_int.h"
#include "snapshot/snapfile.h"
#include "snapshot/uffd.h"
#include "snapshot/workset.h"
#include "x86/cpuid.h"
#include "x86/vcpu_state.h"
#include "x86/vm_state.h"

#define TIME_SECTION_VERSION 1u
_Static_assert(DEVICE_SECTION_ID_MAX <= SNAP_MAX_ID, "every device's section id fits the file's");
/* How long devices get to finish their I/O in flight before a snapshot. */
#define SNAPSHOT_DRAIN_MS 5000
/* The event loop's pause, with the Uffd backend (pause_loop). */
#define SNAPSHOT_PAUSE_MS 5000

/* CPUID words whose bits are features a restored guest may rely on: leaf
 * 1 ECX/EDX, leaf 7 EBX/ECX/EDX, XSAVE's leaf 0xD.1 EAX, the extended
 * leaf 0x80000001 ECX/EDX (reg: 0 EAX, 1 EBX, 2 ECX, 3 EDX). */
static const struct {
	uint32_t leaf, subleaf, reg;
} feature_words[] = {
    {1, 0, 2}, {1, 0, 3},   {7, 0, 1},		{7, 0, 2},
    {7, 0, 3}, {0xd, 1, 0}, {0x80000001, 0, 2}, {0x80000001, 0, 3},
};

/* The snapshot's view of a CPU: what vCPU 0 was given. */
static void cpu_of(struct kvm_cpuid2 *c, struct snap_cpu *out)
{
	const struct kvm_cpuid_entry2 *e = cpuid_find(c, 0, 0);

	memset(out, 0, sizeof(*out));
	if (e) {
		memcpy(out->vendor, &e->ebx, 4);
		memcpy(out->vendor + 4, &e->edx, 4);
		memcpy(out->vendor + 8, &e->ecx, 4);
	}
	for (size_t i = 0; i < ARRAY_SIZE(feature_words); i++) {
		if (!(e = cpuid_find(c, feature_words[i].leaf, feature_words[i].subleaf)))
			continue;
		const uint32_t regs[4] = {e->eax, e->ebx, e->ecx, e->edx};
		out->w[out->n++] = (struct snap_cpu_word){.leaf = feature_words[i].leaf,
							  .subleaf = feature_words[i].subleaf,
							  .reg = feature_words[i].reg,
							  .value = regs[feature_words[i].reg]};
	}
}

/* ---- saving -------------------------------------------------------------- */

static int add_section(void *ctx, const char *id, const void *data, size_t len)
{
	return snap_writer_add(ctx, id, data, len);
}

/* The VM's own components, each a section: fn fills b (why for a
 * message). */
static int save_time(struct vm *vm, struct wbuf *b, char *why, size_t n)
{
	(void)vm, (void)why, (void)n;
	wput_u32(b, TIME_SECTION_VERSION);
	wput_u64(b, realtime_ns());
	return 0;
}

static int save_kvm_vm(struct vm *vm, struct wbuf *b, char *why, size_t n)
{
	return vm_state_save(vm->vm_fd, &vm->ioapic, b, why, n);
}

static int save_serial(struct vm *vm, struct wbuf *b, char *why, size_t n)
{
	(void)why, (void)n;
	return serial_save(vm->serial, b);
}

static int save_i8042(struct vm *vm, struct wbuf *b, char *why, size_t n)
{
	(void)why, (void)n;
	return i8042_save(&vm->i8042, b);
}

static int save_layout(struct vm *vm, struct wbuf *b, char *why, size_t n)
{
	struct gmem_layout l;

	(void)why, (void)n;
	gmem_layout_of(vm->mem, &l);
	return gmem_layout_save(&l, b);
}

static const struct {
	const char *id;
	int (*save)(struct vm *vm, struct wbuf *b, char *why, size_t n);
} vm_parts[] = {
    {"time", save_time},   {"vm", save_kvm_vm},	    {"serial", save_serial},
    {"i8042", save_i8042}, {"memory", save_layout},
};

/* One section: what save (vcpu: -1 for a vm_parts entry, else the vCPU)
 * encodes. */
static int add_part(struct vm *vm, struct snap_writer *w, size_t part, int vcpu, char *err,
		    size_t errlen)
{
	char why[256] = "", id[16];
	struct wbuf b;
	int r;

	wbuf_init(&b);
	if (vcpu >= 0) {
		snprintf(id, sizeof(id), "vcpu%d", vcpu);
		r = vcpu_state_save(vm->vcpus[vcpu].fd, vm->sys_fd, &b, why, sizeof(why));
	} else {
		snprintf(id, sizeof(id), "%s", vm_parts[part].id);
		r = vm_parts[part].save(vm, &b, why, sizeof(why));
	}
	if (!r)
		r = wbuf_err(&b);
	if (!r)
		r = snap_writer_add(w, id, b.p, b.len);
	wbuf_free(&b);
	if (r < 0)
		err_set(err, errlen, r, "%s: %s", id, why[0] ? why : strerror(-r));
	return r;
}

/* KVM's dirty log of one slot (pages long, in GMEM_PAGE pages whatever
 * backs the slot) into g's bitmap (which also clears KVM's): RAM region i,
 * or (hot) the hot-plug region's slot i. */
static int merge_slot_log(struct vm *vm, bool hot, size_t i, uint64_t pages, char *err,
			  size_t errlen)
{
	unsigned long *bits = calloc((pages + 63) / 64, sizeof(*bits));
	struct kvm_dirty_log log = {.slot = hot ? HOTMEM_SLOT0 + i : i, .dirty_bitmap = bits};
	int r;

	if (!bits)
		return err_set(err, errlen, -ENOMEM, "out of memory");
	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		r = err_set(err, errlen, -errno, "KVM_GET_DIRTY_LOG: %s", strerror(errno));
	else if ((r = hot ? gmem_hotplug_dirty_merge(vm->mem, i * vm->hot_slot_size, bits, pages)
			  : gmem_dirty_merge(vm->mem, i, bits, pages)) < 0)
		err_set(err, errlen, r, "merging the dirty log: %s", strerror(-r));
	free(bits);
	return r;
}

/* Every slot's: RAM's, and the hot-plug region's that are there (a slot
 * is made while it has plugged blocks; what a dropped one held was given
 * up by the guest). */
static int merge_dirty_log(struct vm *vm, char *err, size_t errlen)
{
	const struct gmem_region *h = gmem_hotplug_region(vm->mem);
	int r = 0;

	for (size_t i = 0; i < gmem_nregions(vm->mem) && !r; i++)
		r = merge_slot_log(vm, false, i, gmem_region(vm->mem, i)->size / GMEM_PAGE, err,
				   errlen);
	for (size_t i = 0; h && i < h->size / vm->hot_slot_size && !r; i++)
		if (vm->hot_plugged[i])
			r = merge_slot_log(vm, true, i, vm->hot_slot_size / GMEM_PAGE, err, errlen);
	return r;
}

/* The memory file: Full (all of RAM, holes for untouched pages) or Diff
 * (the pages written since the last snapshot). */
static int save_memory(struct vm *vm, const struct vm_snapshot_args *a, char *err, size_t errlen)
{
	bool diff = a->type == VM_SNAPSHOT_DIFF;
	char why[256];
	int r;
	/* Not O_TRUNC: the file may be the one this VM's memory is mapped
	 * from, which must then be refused, not emptied. Nothing but a
	 * regular file (open_regular): a FIFO would hold the open, and with
	 * it the paused VM and the API, until a reader came, and a device's
	 * open alone may act. */
	struct stat ms, ss;
	int fd = open_regular(a->mem_file_path, O_WRONLY | O_CREAT | O_NOFOLLOW, &ms);

	if (fd < 0)
		return err_set(err, errlen, fd, "memory file %s: %s", a->mem_file_path,
			       file_strerror(fd));
	if (gmem_maps_file(vm->mem, fd)) {
		close(fd);
		return err_set(err, errlen, -EINVAL,
			       "memory file %s: it is the file this VM's memory is mapped from",
			       a->mem_file_path);
	}
	if (stat(a->snapshot_path, &ss) == 0 && ms.st_dev == ss.st_dev && ms.st_ino == ss.st_ino) {
		close(fd);
		return err_set(err, errlen, -EINVAL,
			       "memory file %s: it is the snapshot's state file too (%s), which "
			       "would replace it",
			       a->mem_file_path, a->snapshot_path);
	}
	why[0] = '\0';
	if (vm->c.machine.track_dirty_pages && (r = merge_dirty_log(vm, why, sizeof(why))) < 0)
		goto out;
	if (diff && ftruncate(fd, 0) < 0) {
		r = err_set(why, sizeof(why), -errno, "ftruncate: %s", strerror(errno));
		goto out;
	}
	r = diff ? gmem_save_diff(vm->mem, fd, why, sizeof(why))
		 : gmem_save_full(vm->mem, fd, why, sizeof(why));
	if (!r && fsync(fd) < 0)
		r = err_set(why, sizeof(why), -errno, "fsync: %s", strerror(errno));
out:
	close(fd);
	if (r < 0)
		err_set(err, errlen, r, "memory file %s: %s", a->mem_file_path, why);
	return r;
}

/* Every component's section, then the memory file, then the state file
 * (atomically: a reader never sees half of one). */
static int write_snapshot(struct vm *vm, const struct vm_snapshot_args *a, char *err, size_t errlen)
{
	struct snap_writer w;
	struct snap_cpu cpu;
	char why[256];
	int r = 0;

	cpu_of(vm->cpuid0, &cpu);
	if ((r = snap_writer_init(&w, &cpu, &vm->c, why, sizeof(why))) < 0)
		return err_set(err, errlen, r, "state: %s", r == -ENOMEM ? "out of memory" : why);
	for (size_t i = 0; i < ARRAY_SIZE(vm_parts) && !r; i++)
		r = add_part(vm, &w, i, -1, err, errlen);
	for (unsigned i = 0; i < vm->nvcpus && !r; i++)
		r = add_part(vm, &w, 0, (int)i, err, errlen);
	if (!r && vm->devs)
		r = devices_save(vm->devs, add_section, &w, err, errlen);
	if (!r)
		r = save_memory(vm, a, err, errlen);
	if (!r && (r = snap_write_file(&w, a->snapshot_path, why, sizeof(why))) < 0)
		err_set(err, errlen, r, "%s", why);
	snap_writer_free(&w);
	return r;
}

/* The event loop paused, as evloop_pause. With the Uffd backend, a
 * device's done() may wait on guest memory the handler does not serve, or
 * a balloon's discard on its UFFD_EVENT_REMOVE, which this thread reads
 * once the handler is gone: the watch goes on meanwhile, and after
 * SNAPSHOT_PAUSE_MS the pause is taken back (-ETIMEDOUT) rather than
 * waited for with nothing else answered (signals, the API, the watch). */
static int pause_loop(struct vm *vm)
{
	uint64_t end = now_ns() + SNAPSHOT_PAUSE_MS * 1000000ull;
	int r;

	if (vm->uffd_watch.state == UFFD_NONE)
		return evloop_pause(vm->loop);
	while ((r = evloop_pause_until(vm->loop, now_ns() + 10000000ull)) == -ETIMEDOUT) {
		if (now_ns() >= end) {
			evloop_resume(vm->loop);
			return r;
		}
		uffd_watch_poll(&vm->uffd_watch, 10);
	}
	return r;
}

/* pause_loop's -errno, said. */
static void pause_failed(struct vm_err *err, int r)
{
	if (r == -ETIMEDOUT)
		vm_err_set(err, r,
			   "the event loop did not pause within %d s: a device may wait on "
			   "guest memory the Uffd handler has not served",
			   SNAPSHOT_PAUSE_MS / 1000);
	else
		vm_err_set(err, r, "cannot pause the event loop: %s", strerror(-r));
}

static void quiesce_devices(void *devs)
{
	devices_quiesce(devs);
}

void vm_snapshot_execute(struct vm *vm, const struct vm_snapshot_args *a, struct vm_err *err)
{
	uint64_t t0 = now_ns();
	char why[sizeof(err->msg)];
	int r;

	if (a->type == VM_SNAPSHOT_DIFF && !vm->c.machine.track_dirty_pages) {
		/* Firecracker's words, as the API controller's own check. */
		vm_err_set(err, -EINVAL,
			   "Diff snapshots are not allowed on uVMs with dirty page tracking "
			   "disabled.");
		return;
	}
	/* A snapshot reads guest pages on this thread (a Full one every page,
	 * a Diff one those marked dirty, which a balloon's inflation or an
	 * unplug may have dropped): one the handler never brought would hold
	 * it for ever, with nobody reading the userfaultfd. A handler that
	 * stalls or dies during the read still holds it so: the read would
	 * need a thread of its own, made before the seccomp filter, with this
	 * one watching. */
	if (vm->uffd_conn >= 0 && uffd_handler_gone(vm->uffd_conn)) {
		vm_err_set(err, -EPIPE,
			   "the Uffd handler has hung up: guest memory it has not served "
			   "cannot be read for a snapshot");
		return;
	}
	/* Devices come to rest: I/O in flight finishes (the loop runs), then,
	 * with the loop parked, they give back what they hold. */
	if (vm->devs && devices_drain(vm->devs, now_ns() + SNAPSHOT_DRAIN_MS * 1000000ull, err) < 0)
		return;
	if (vm->loop && (r = pause_loop(vm)) < 0) {
		pause_failed(err, r);
		return;
	}
	/* On the loop's thread, parked: what the devices do to come to rest
	 * (close host sockets, cancel polls, answer I/O) is that thread's
	 * work, under its seccomp table, not the control thread's. */
	if (vm->devs && (r = evloop_call_parked(vm->loop, quiesce_devices, vm->devs)) < 0) {
		evloop_resume(vm->loop);
		vm_err_set(err, r, "the devices could not come to rest: %s", strerror(-r));
		return;
	}
	r = write_snapshot(vm, a, why, sizeof(why));
	if (vm->loop)
		evloop_resume(vm->loop);
	/* What the devices gave back is theirs again once the VM resumes. */
	if (vm->devs)
		devices_kick(vm->devs);
	if (r < 0) {
		vm_err_set(err, r, "%s", why);
		return;
	}
	uint64_t us = (now_ns() - t0) / 1000;
	atomic_store(a->type == VM_SNAPSHOT_DIFF ? &vm->snap_diff_us : &vm->snap_full_us, us);
	pr_debug("%s snapshot %s (memory %s) in %llu us",
		 a->type == VM_SNAPSHOT_DIFF ? "diff" : "full", a->snapshot_path, a->mem_file_path,
		 (unsigned long long)us);
}

void vm_snapshot_on_stop(struct vm *vm)
{
	struct gmem_layout l;
	char why[256];

	if (!vm->record_workset || !vm->mem)
		return;
	gmem_layout_of(vm->mem, &l);
	if (workset_record(vm->mem, &l, vm->record_workset, why, sizeof(why)) < 0)
		pr_warn("%s", why);
	else
		pr_debug("loading set written to %s", vm->record_workset);
}

/* ---- restoring ----------------------------------------------------------- */

/* A section that must be there, as an rbuf. */
static int section(struct snap *s, const char *id, struct rbuf *r)
{
	const uint8_t *data;
	size_t len;

	if (snap_section(s, id, &data, &len) < 0) {
		pr_err("the snapshot has no state for %s", id);
		return -EBADMSG;
	}
	rbuf_init(r, data, len);
	return 0;
}

/* Section id decoded (r read up to its state's end): bytes after it are a
 * file not written as this flint writes that state, -EBADMSG with why
 * saying so; else 0. */
static int leftover(const char *id, const struct rbuf *r, char *why, size_t n)
{
	if (rbuf_done(r))
		return 0;
	return err_set(why, n, -EBADMSG, "section %s: %zu bytes left over after its state", id,
		       r->len - r->off);
}

static int lookup_section(void *ctx, const char *id, const uint8_t **data, size_t *len)
{
	return snap_section(ctx, id, data, len);
}

int vm_restore_config(const struct vm_config *saved, const struct vm_restore_args *a,
		      struct vm_config *c)
{
	int r = vm_config_copy(c, saved);

	if (r < 0) {
		pr_err("out of memory");
		return r;
	}
	for (unsigned k = 0; k < a->n_net_overrides; k++) {
		const struct vm_net_override *o = &a->net_overrides[k];
		int i = vm_config_find_net(c, o->iface_id);
		char *dev;

		if (i < 0) {
			pr_err("network_overrides: the snapshot has no network interface '%s'",
			       o->iface_id);
			goto err;
		}
		if (!(dev = strdup(o->host_dev_name)))
			goto err;
		free(c->nets[i].host_dev_name);
		c->nets[i].host_dev_name = dev;
	}
	for (unsigned k = 0; k < a->n_drive_overrides; k++) {
		const struct vm_drive_override *o = &a->drive_overrides[k];
		int i = vm_config_find_drive(c, o->drive_id);
		char *path;

		if (i < 0) {
			pr_err("--drive-override: the snapshot has no drive '%s'", o->drive_id);
			goto err;
		}
		if (!c->drives[i].path_on_host) {
			pr_err("--drive-override: the snapshot's drive '%s' is a vhost-user-blk "
			       "socket, not an image",
			       o->drive_id);
			goto err;
		}
		if (!(path = strdup(o->path_on_host)))
			goto err;
		free(c->drives[i].path_on_host);
		c->drives[i].path_on_host = path;
	}
	if (a->vsock_uds_path) {
		char *p;

		if (!c->vsock.enabled) {
			pr_err("vsock_override: the snapshot has no vsock device");
			goto err;
		}
		if (!(p = strdup(a->vsock_uds_path)))
			goto err;
		free(c->vsock.uds_path);
		c->vsock.uds_path = p;
	}
	if (a->serial && a->serial->enabled) {
		struct vmc_serial s = *a->serial;

		if (s.serial_out_path && !(s.serial_out_path = strdup(s.serial_out_path)))
			goto err;
		vm_config_set_serial(c, &s);
	}
	c->machine.track_dirty_pages = a->track_dirty_pages;
	return 0;
err:
	vm_config_free(c);
	return -EINVAL;
}

/* The snapshot's hot-plug region (size 0: none) against its
 * configuration's memory-hotplug section: 0 or -EINVAL (logged). */
static int hot_matches(const struct gmem_layout_hot *h, const struct vmc_memory_hotplug *c)
{
	if (!h->size && !c->enabled)
		return 0;
	if (!h->size != !c->enabled || h->size != (uint64_t)c->total_size_mib << 20 ||
	    h->block != (uint64_t)c->block_size_mib << 20) {
		pr_err("memory layout: the hot-plug region (%llu MiB in blocks of %llu MiB) is "
		       "not the snapshot's memory-hotplug configuration's",
		       (unsigned long long)(h->size >> 20), (unsigned long long)(h->block >> 20));
		return -EINVAL;
	}
	return 0;
}

/* Guest RAM from the snapshot's memory: the layout its section gives,
 * which must be the one its configuration makes, mapped from the file
 * (with the hot-plug region, every block unplugged until the device's
 * restore plugs what the guest had). */
static int restore_memory(struct vm *vm, struct snap *s, const struct vm_restore_args *a)
{
	struct gmem_layout l, want;
	struct gmem_opts go = {.huge_2m = vm->c.machine.huge_pages == VMC_HUGE_PAGES_2M,
			       .track_dirty = vm->c.machine.track_dirty_pages};
	struct rbuf rb;
	char why[256];
	int r, fd;

	if ((r = section(s, "memory", &rb)) < 0)
		return r;
	if ((r = gmem_layout_restore(&l, &rb, why, sizeof(why))) < 0 ||
	    (r = leftover("memory", &rb, why, sizeof(why))) < 0) {
		pr_err("memory layout: %s", why);
		return r;
	}
	gmem_layout_for_size(vm->c.machine.mem_size_mib << 20, &want);
	if (l.nregions != want.nregions || memcmp(l.r, want.r, sizeof(l.r))) {
		pr_err("memory layout: not the one of the snapshot's %llu MiB machine",
		       (unsigned long long)vm->c.machine.mem_size_mib);
		return -EINVAL;
	}
	if ((r = hot_matches(&l.hot, &vm->c.memory_hotplug)) < 0)
		return r;
	if (a->backend == VM_MEM_UFFD) {
		/* Anonymous and untouched: every first touch is the handler's. */
		if (a->mem_diff_path || a->workset_path) {
			pr_err("the Uffd backend takes no diff memory file and no loading set "
			       "(the page-fault handler serves and prefetches the memory)");
			return -EINVAL;
		}
		if ((r = gmem_create_opts(&vm->mem, vm->c.machine.mem_size_mib << 20, &go)) < 0) {
			pr_err("cannot map %llu MiB of guest memory: %s",
			       (unsigned long long)vm->c.machine.mem_size_mib, strerror(-r));
			return r;
		}
		/* The hot-plug region too, for the handler to fill; the
		 * device's hotmem_add takes it as it is. */
		if (l.hot.size &&
		    (r = gmem_hotplug_add(vm->mem, l.hot.gpa, l.hot.size, l.hot.block)) < 0) {
			pr_err("cannot map the %llu MiB hot-plug region: %s",
			       (unsigned long long)(l.hot.size >> 20), strerror(-r));
			return r;
		}
		struct uffd_backend b;

		if ((r = uffd_backend_open(vm->mem, &l, a->backend_path, &b, why, sizeof(why))) <
		    0) {
			pr_err("Uffd backend %s: %s", a->backend_path, why);
			return r;
		}
		vm->uffd = b.uffd;
		vm->uffd_conn = b.conn;
		return vm_map_memory(vm);
	}
	if ((fd = open_regular(a->backend_path, O_RDONLY, NULL)) < 0) {
		pr_err("memory file %s: %s", a->backend_path, file_strerror(fd));
		return fd;
	}
	r = gmem_create_from_file(&vm->mem, &l, fd, &go, why, sizeof(why));
	close(fd);
	if (r < 0) {
		pr_err("%s: %s", a->backend_path, why);
		return r;
	}
	if (a->mem_diff_path) {
		if ((fd = open_regular(a->mem_diff_path, O_RDONLY, NULL)) < 0) {
			pr_err("diff memory file %s: %s", a->mem_diff_path, file_strerror(fd));
			return fd;
		}
		r = gmem_apply_diff(vm->mem, fd, why, sizeof(why));
		close(fd);
		if (r < 0) {
			pr_err("diff memory file %s: %s", a->mem_diff_path, why);
			return r;
		}
	}
	if (a->workset_path) {
		uint64_t t0 = now_ns();
		long n = workset_prefetch(vm->mem, &l, a->workset_path, why, sizeof(why));

		if (n < 0) {
			pr_err("%s", why);
			return (int)n;
		}
		pr_debug("loading set %s: %ld pages in %llu us", a->workset_path, n,
			 (unsigned long long)(now_ns() - t0) / 1000);
	}
	return vm_map_memory(vm);
}

/* One component's section put into the VM (vCPU i's for put_vcpu): each
 * put decodes and checks its state, its length included (leftover), before
 * any of it reaches KVM or the device. 0 or -errno with why set. */
typedef int part_put_fn(struct vm *vm, unsigned i, const char *id, struct rbuf *rb, char *why,
			size_t n);

static int put_vm(struct vm *vm, unsigned i, const char *id, struct rbuf *rb, char *why, size_t n)
{
	struct vm_kvm_state ks;
	int r;

	(void)i;
	if ((r = vm_state_decode(rb, &ks, why, n)) < 0 || (r = leftover(id, rb, why, n)) < 0)
		return r;
	return vm_state_put(vm->vm_fd, &vm->ioapic, &ks, why, n);
}

static int put_vcpu(struct vm *vm, unsigned i, const char *id, struct rbuf *rb, char *why, size_t n)
{
	struct vcpu_state vs;
	int r;

	if ((r = vcpu_state_decode(rb, &vs, why, n)) < 0)
		return r;
	if ((r = leftover(id, rb, why, n)) == 0)
		r = vcpu_state_put(vm->vcpus[i].fd, vm->sys_fd, &vs, why, n);
	vcpu_state_free(&vs);
	return r;
}

/* The UART's and the i8042's restores check all before they change
 * anything; what is left over after them is refused before the VM runs. */
static int put_serial(struct vm *vm, unsigned i, const char *id, struct rbuf *rb, char *why,
		      size_t n)
{
	int r = serial_restore(vm->serial, rb, why, n);

	(void)i;
	return r < 0 ? r : leftover(id, rb, why, n);
}

static int put_i8042(struct vm *vm, unsigned i, const char *id, struct rbuf *rb, char *why,
		     size_t n)
{
	int r = i8042_restore(&vm->i8042, rb, why, n);

	(void)i;
	return r < 0 ? r : leftover(id, rb, why, n);
}

/* Section id, which must be there, through put; its refusal logged as
 * "label: why". */
static int restore_part(struct vm *vm, struct snap *s, const char *id, const char *label,
			unsigned i, part_put_fn *put)
{
	char why[512] = "";
	struct rbuf rb;
	int r;

	if ((r = section(s, id, &rb)) < 0)
		return r;
	if ((r = put(vm, i, id, &rb, why, sizeof(why))) < 0)
		pr_err("%s: %s", label, why[0] ? why : strerror(-r));
	return r;
}

/* KVM, vCPU and device state from the sections, each checked before it
 * is put; then the guest's clock as the load asks. in_place: a reset of
 * vCPUs that have run (vm_reset), whose park told the guest's kvmclock
 * they stopped already. */
static int restore_state(struct vm *vm, struct snap *s, const struct vm_restore_args *a,
			 bool in_place)
{
	struct snap_cpu host;
	struct rbuf rb;
	char why[512], id[16];
	int r;

	cpu_of(vm->cpuid0, &host);
	/* An older flint gave its guests VMX or SVM where KVM had them: they
	 * are not asked of this host, which hides them now (nested state was
	 * never saved, so the guest used neither). */
	struct snap_cpu saved = s->cpu;
	for (unsigned i = 0; i < saved.n && i < SNAP_MAX_CPU_WORDS; i++)
		saved.w[i].value &=
		    ~cpuid_hidden(saved.w[i].leaf, saved.w[i].subleaf, saved.w[i].reg);
	if ((r = snap_cpu_compatible(&saved, &host, why, sizeof(why))) < 0) {
		pr_err("the snapshot was taken on another CPU: %s", why);
		return r;
	}
	if ((r = section(s, "time", &rb)) < 0)
		return r;
	uint32_t tv = rget_u32(&rb);
	uint64_t taken = rget_u64(&rb);
	if (rbuf_err(&rb) < 0 || tv != TIME_SECTION_VERSION || !rbuf_done(&rb)) {
		pr_err("time: a corrupt section or another version (%u)", tv);
		return -EBADMSG;
	}
	if ((r = restore_part(vm, s, "vm", "VM state", 0, put_vm)) < 0)
		return r;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		char label[24];

		snprintf(id, sizeof(id), "vcpu%u", i);
		snprintf(label, sizeof(label), "vCPU %u", i);
		if ((r = restore_part(vm, s, id, label, i, put_vcpu)) < 0)
			return r;
	}
	if ((r = restore_part(vm, s, "serial", "serial", 0, put_serial)) < 0 ||
	    (r = restore_part(vm, s, "i8042", "i8042", 0, put_i8042)) < 0)
		return r;
	if (vm->devs &&
	    (r = devices_restore(vm->devs, lookup_section, (void *)s, why, sizeof(why))) < 0) {
		pr_err("%s", why);
		return r;
	}
	/* Every vCPU tells the guest it was stopped, so the time it missed
	 * is no soft lockup. Not all guests use kvmclock: no error. */
	for (unsigned i = 0; i < vm->nvcpus && !in_place; i++)
		(void)ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0);
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->paused_clock) < 0) {
		r = -errno;
		pr_err("KVM_GET_CLOCK: %s", strerror(errno));
		return r;
	}
	vm->has_paused_clock = true;
	vm->restored_realtime = a->clock_realtime ? taken : 0;
	/* Runs at once: its clock now; else at its first resume. */
	if (a->resume_vm)
		vm_set_paused_clock(vm);
	vm->start_paused = !a->resume_vm;
	return 0;
}

/* What vm_reset needs of the restore: the decoded state file (taken from
 * s, which is left empty) and why the VM cannot be reset, if it cannot. */
static int keep_for_reset(struct vm *vm, struct snap *s, const struct vm_restore_args *a)
{
	if (!(vm->snap = malloc(sizeof(*vm->snap))))
		return -ENOMEM;
	*vm->snap = *s;
	memset(s, 0, sizeof(*s));
	vm->reset_clock_realtime = a->clock_realtime;
	if (a->backend == VM_MEM_UFFD)
		snprintf(vm->reset_refusal, sizeof(vm->reset_refusal),
			 "its memory is the Uffd backend's (only the File backend's memory can "
			 "be read from the memory file again)");
	else if (a->mem_diff_path)
		snprintf(vm->reset_refusal, sizeof(vm->reset_refusal),
			 "it was restored with a diff laid over its memory (--mem-diff): merge "
			 "the diff into a copy of the full memory file and restore from that");
	else if (a->track_dirty_pages)
		snprintf(vm->reset_refusal, sizeof(vm->reset_refusal),
			 "it tracks dirty pages (the next diff snapshot's base would be lost)");
	for (unsigned i = 0; i < vm->c.ndrives && !vm->reset_refusal[0]; i++)
		if (!vm->c.drives[i].is_read_only)
			/* Its image is not in the snapshot: the guest's memory
			 * would forget writes the disk keeps. */
			snprintf(vm->reset_refusal, sizeof(vm->reset_refusal),
				 "drive %.64s is writable (what the guest wrote to it would "
				 "stay, under a guest whose memory forgot it)",
				 vm->c.drives[i].drive_id);
	for (unsigned i = 0; i < vm->c.npmem && !vm->reset_refusal[0]; i++)
		if (!vm->c.pmem[i].read_only)
			/* Its file is not in the snapshot either. */
			snprintf(vm->reset_refusal, sizeof(vm->reset_refusal),
				 "pmem device %.64s is writable (what the guest wrote to it "
				 "would stay, under a guest whose memory forgot it)",
				 vm->c.pmem[i].id);
	return 0;
}

void vm_snapshot_forget(struct vm *vm)
{
	if (vm->snap)
		snap_free(vm->snap);
	free(vm->snap);
	vm->snap = NULL;
}

int vm_restore(struct vm **out, const struct vm_restore_args *a, const struct vm_opts *o)
{
	uint64_t t0 = now_ns();
	struct snap s = {0};
	struct vm_config c;
	struct vm *vm = NULL;
	char why[512];
	int r;

	*out = NULL;
	if ((r = snap_read_file(a->snapshot_path, &s, why, sizeof(why))) < 0) {
		pr_err("%s", r == -ENOMEM ? "out of memory" : why);
		return r;
	}
	pr_debug("state file read and checked in %llu us",
		 (unsigned long long)(now_ns() - t0) / 1000);
	phases_mark(BP_STATE_READ);
	if ((r = vm_restore_config(&s.config, a, &c)) < 0)
		goto out;
	r = vm_alloc(&vm, &c, o);
	vm_config_free(&c);
	if (r < 0)
		goto out;
	/* vm_create's order, with memory from the snapshot, no boot image,
	 * and the saved state put into the new VM and devices last. */
	enum { SECCOMP, KVM, MEMORY, LEGACY, VIRTIO, VCPUS, STATE, METRICS, NSTEPS };
	static const char *const step_name[NSTEPS] = {
	    "seccomp policy", "VM",    "memory",      "devices",
	    "virtio devices", "vCPUs", "saved state", "metrics"};
	for (int i = 0; i < NSTEPS; i++) {
		uint64_t ts = now_ns();

		switch (i) {
		case SECCOMP:
			r = vm_setup_seccomp(vm);
			break;
		case KVM:
			r = vm_setup_kvm(vm);
			break;
		case MEMORY:
			r = restore_memory(vm, &s, a);
			break;
		case LEGACY:
			r = vm_setup_legacy(vm);
			break;
		case VIRTIO:
			r = vm_setup_virtio(vm);
			break;
		case VCPUS:
			r = vm_setup_vcpus(vm);
			break;
		case STATE:
			r = restore_state(vm, &s, a, false);
			break;
		default:
			r = vm_setup_metrics(vm);
			break;
		}
		if (r < 0)
			goto out;
		if (i == MEMORY)
			phases_mark(BP_MEMORY_MAPPED);
		pr_debug("%s restored in %llu us", step_name[i],
			 (unsigned long long)(now_ns() - ts) / 1000);
	}
	const char *unread = snap_unread(&s);
	if (unread) {
		/* A vcpu2 of a 2-vCPU machine, a device the configuration
		 * does not have: state that would be dropped unsaid. */
		pr_err("the snapshot holds state for %s, which nothing in its configuration "
		       "restores",
		       unread);
		r = -EBADMSG;
		goto out;
	}
	if (a->record_workset_path && !(vm->record_workset = strdup(a->record_workset_path))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = keep_for_reset(vm, &s, a)) < 0)
		goto out;
	atomic_store(&vm->load_us, (now_ns() - t0) / 1000);
	pr_debug("restored %s in %llu us", a->snapshot_path,
		 (unsigned long long)(now_ns() - t0) / 1000);
	*out = vm;
	vm = NULL;
out:
	vm_destroy(vm);
	snap_free(&s);
	return r;
}

/* ---- reset in place ------------------------------------------------------ */

/* How long the devices get to finish their I/O before a reset. */
#define RESET_DRAIN_MS SNAPSHOT_DRAIN_MS

/* Why vm can be reset in place, or "" if it can: checked before anything
 * changes. */
static const char *reset_refusal(const struct vm *vm)
{
	if (!vm->snap)
		return "it was not restored from a snapshot";
	if (vm->reset_refusal[0])
		return vm->reset_refusal;
	if (vm->uffd >= 0 || !gmem_from_file(vm->mem))
		return "its memory is not a private mapping of a memory file";
	if (vm->devs && !devices_can_reset(vm->devs))
		return "one of its devices cannot be reset";
	return "";
}

/* The part with no way back: guest RAM reads the memory file again, then
 * every component's state is the snapshot's. The loop is parked, the
 * vCPUs paused. */
static int reset_to_snapshot(struct vm *vm, char *why, size_t n)
{
	struct vm_restore_args a = {.clock_realtime = vm->reset_clock_realtime, .resume_vm = false};
	bool start_paused = vm->start_paused;
	int r;

	if ((r = gmem_drop_private(vm->mem)) < 0)
		return err_set(why, n, r, "dropping the guest's memory: %s", strerror(-r));
	/* The devices forget their queues as at the driver's reset, so that
	 * their restore, made for a fresh device, takes them. */
	if (vm->devs)
		devices_reset(vm->devs);
	why[0] = '\0';
	pr_capture(why, n);
	r = restore_state(vm, vm->snap, &a, true);
	pr_capture(NULL, 0);
	vm->start_paused = start_paused;
	if (r < 0 && !why[0])
		snprintf(why, n, "%s", strerror(-r));
	return r;
}

void vm_reset_execute(struct vm *vm, struct vm_err *err)
{
	uint64_t t0 = now_ns();
	bool running = atomic_load(&vm->state) == VM_STATE_RUNNING;
	const char *no = reset_refusal(vm);
	char why[sizeof(err->msg) - 40];
	int r;

	if (*no) {
		vm_err_set(err, -EOPNOTSUPP, "this VM cannot be reset to its snapshot: %s", no);
		return;
	}
	if (running && vm_pause_vcpus(vm, err) < 0)
		return;
	/* As a snapshot: I/O in flight finishes, then, the loop parked, the
	 * devices give back what they hold and vsock closes its host
	 * connections (on the loop's thread). Up to here a failure leaves
	 * the VM as a snapshot does: it runs on. */
	if (vm->devs && devices_drain(vm->devs, now_ns() + RESET_DRAIN_MS * 1000000ull, err) < 0)
		goto resume;
	if (vm->loop && (r = pause_loop(vm)) < 0) {
		pause_failed(err, r);
		goto resume;
	}
	if (vm->devs && (r = evloop_call_parked(vm->loop, quiesce_devices, vm->devs)) < 0) {
		evloop_resume(vm->loop);
		vm_err_set(err, r, "the devices could not come to rest: %s", strerror(-r));
		goto resume;
	}
	r = reset_to_snapshot(vm, why, sizeof(why));
	if (vm->loop)
		evloop_resume(vm->loop);
	if (r < 0) {
		/* Half of the VM is the snapshot's: it must not run. */
		control_request_stop(&vm->ctl, STOP_ERROR, 0, "reset to the snapshot failed: %s",
				     why);
		vm_err_set(err, r, "reset to the snapshot failed (the VM is stopped): %s", why);
		return;
	}
	/* The restored queues' buffers are the devices' to take up. */
	if (vm->devs)
		devices_kick(vm->devs);
	if (running)
		vm_resume_vcpus(vm);
	atomic_store(&vm->reset_us, (now_ns() - t0) / 1000);
	pr_debug("reset to the snapshot in %llu us", (unsigned long long)(now_ns() - t0) / 1000);
	return;
resume:
	if (running)
		vm_resume_vcpus(vm);
}

uint64_t vm_last_reset_us(const struct vm *vm)
{
	return atomic_load(&vm->reset_us);
}
