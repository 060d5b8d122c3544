/* The VM's insides, shared by vm.c (building, running, pausing) and
 * vm_snap.c (snapshot and restore), and by nothing else. */
#ifndef FLINT_VM_INT_H
#define FLINT_VM_INT_H

#include <linux/kvm.h>
#include <stdatomic.h>
#include <termios.h>

#include "core/bus.h"
#include "core/devices.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/vcpu.h"
#include "core/vdev.h"
#include "core/vm.h"
#include "legacy/console.h"
#include "legacy/ioapic.h"
#include "legacy/legacy.h"
#include "legacy/serial.h"
#include "snapshot/uffd_watch.h"
#include "x86/loader.h"

/* The memory hot-plug region's KVM slots: after RAM's and device memory's
 * (at most VMC_MAX_PMEM), one per slot_size of the region. */
#define HOTMEM_SLOT0 (GMEM_MAX_REGIONS + 16)

struct vm {
	struct vm_config c; /* the VM's own copy */
	struct vm_opts opts;
	int sys_fd, vm_fd;
	struct gmem *mem;
	struct bus *pio, *mmio;
	struct control ctl;
	struct console *con;
	int serial_out_fd; /* PUT /serial's serial_out_path, -1 for none */
	struct serial *serial;
	int serial_irqfd;
	struct i8042 i8042;
	struct ioapic ioapic;
	int i8042_irqfd;
	struct boot_timer timer;
	struct exit_dev exitdev;
	struct boot_info bi;
	struct evloop *loop; /* NULL when the VM has no virtio device */
	struct vdev_env vdev_env;
	/* Device memory (map_device_memory): the next free address, 0
	 * before the first, and the KVM slots taken after RAM's. */
	struct device_memmap memmap;
	uint64_t devmem_next;
	unsigned devmem_slots;
	/* The memory hot-plug region (hotmem_add; where it lies is gmem's,
	 * gmem_hotplug_region): KVM slots of slot_size from HOTMEM_SLOT0, each
	 * made while it holds plugged memory (plugged: bytes, per slot).
	 * Changed on the event-loop thread only (and, restoring, by the
	 * device's restore before the loop runs). */
	struct device_hotmem hotmem;
	uint64_t hot_slot_size;
	uint64_t *hot_plugged;
	struct devices *devs; /* NULL when the VM has no virtio device */
	char devices[1024];   /* virtio_mmio.device= arguments for the kernel */
	struct vcpu_env env;
	struct vcpu *vcpus;
	unsigned nvcpus; /* created so far */
	/* Actions for the control thread (the one in vm_run's loop), which
	 * polls its fd; stop requests wake it through the same fd. */
	struct mailbox *mb;
	uint64_t boot_exits; /* KVM exits of all vCPUs when the boot timer fired */
	_Atomic int state;   /* enum vm_state; written by the control thread */
	/* The guest's kvmclock when it was paused: set back on resume, so the
	 * guest's clock stands still while it is paused (as QEMU's stop). */
	struct kvm_clock_data paused_clock;
	bool has_paused_clock;
	/* How long the last pause and resume took, for the metrics. */
	_Atomic uint64_t pause_us, resume_us;
	/* Snapshots (vm_snap.c). cpuid0: the CPUID vCPU 0 was given, whose
	 * feature words a snapshot records. uffd: the Uffd backend's
	 * userfaultfd and connection to its handler (kept open: its hang-up
	 * tells the handler the VM is gone, and the handler's, flint that
	 * nothing serves guest memory any more), -1 for none. restored_realtime: CLOCK_REALTIME
	 * (ns) when the snapshot this VM came from was taken, 0 for none: its first resume moves
	 * the guest's clock on by the time since (the guest's wall clock is right again).
	 * record_workset: where to write the pages the guest touched when it stops, NULL for
	 * nowhere. */
	struct kvm_cpuid2 *cpuid0;
	int uffd, uffd_conn;
	/* The main thread's watch over them (vm_run's loop, and a snapshot's
	 * or reset's pause of the event loop meanwhile). */
	struct uffd_watch uffd_watch;
	uint64_t restored_realtime;
	bool start_paused; /* vm_run starts the vCPUs paused (a restore) */
	char *record_workset;
	_Atomic uint64_t snap_full_us, snap_diff_us, load_us;
	/* Reset in place (vm_reset): the state file this VM was restored
	 * from, kept decoded (NULL for a VM that was booted), whether its
	 * clock follows the wall clock, and why it cannot be reset ("" when
	 * it can: a diff laid over its memory, say). */
	struct snap *snap;
	bool reset_clock_realtime;
	char reset_refusal[256];
	_Atomic uint64_t reset_us;
	atomic_bool describe_at_stop; /* vm_describe_at_stop */
	/* Threads were left waiting on guest memory nobody will serve
	 * (vm_run): the process's exit ends them; until then nothing may wait
	 * on what they hold, and vm_destroy frees nothing. */
	atomic_bool abandoned;
	struct termios tty;
	bool tty_raw;
};

/* The start-up steps vm_create runs in this order (vm.c), each 0 or
 * -errno with a message logged; a restore (vm_snap.c) runs the same ones
 * but for memory (mapped from the snapshot) and the boot image (none). */
int vm_setup_seccomp(struct vm *vm);
int vm_setup_kvm(struct vm *vm);
int vm_setup_memory(struct vm *vm);
int vm_setup_legacy(struct vm *vm);
int vm_setup_virtio(struct vm *vm);
int vm_setup_vcpus(struct vm *vm);
int vm_setup_metrics(struct vm *vm);
/* Give vm->mem's regions to KVM as memory slots 0, 1 (region order). */
int vm_map_memory(struct vm *vm);

/* A VM holding a copy of c and o, nothing built yet (vm_destroy frees it).
 * 0 or -errno, logged. */
int vm_alloc(struct vm **out, const struct vm_config *c, const struct vm_opts *o);

/* Pause and resume every vCPU (the control thread; vm.c). */
int vm_pause_vcpus(struct vm *vm, struct vm_err *err);
/* Give the guest back its clock kept at a pause (paused_clock), moved on
 * by the wall-clock time since restored_realtime when that is set (a
 * restore); then neither is kept. Before the vCPUs run again. */
void vm_set_paused_clock(struct vm *vm);

/* VM_ACTION_SNAPSHOT on the control thread (vm_snap.c): arg is a struct
 * vm_snapshot_args. */
void vm_snapshot_execute(struct vm *vm, const struct vm_snapshot_args *a, struct vm_err *err);
/* When the VM stops: write its loading set if asked (vm_snap.c). */
void vm_snapshot_on_stop(struct vm *vm);
/* VM_ACTION_RESET on the control thread (vm_snap.c). */
void vm_reset_execute(struct vm *vm, struct vm_err *err);
/* The snapshot's configuration `saved` with a load's overrides (taps for
 * interfaces, images for drives, the vsock socket, dirty-page tracking)
 * into c (vm_config_free's). 0; -EINVAL, logged, for an override naming
 * what the snapshot lacks (an interface, a drive, a vsock device); or
 * -ENOMEM. On error c holds nothing. */
int vm_restore_config(const struct vm_config *saved, const struct vm_restore_args *a,
		      struct vm_config *c);
/* Free what a restore kept for vm_reset (vm_destroy). */
void vm_snapshot_forget(struct vm *vm);
/* Let paused vCPUs run again, the guest's clock given back first (vm.c). */
void vm_resume_vcpus(struct vm *vm);

#endif
