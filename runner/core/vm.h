/* One microVM: the start-up order written out in one place, the main
 * thread's wait loop, and teardown in reverse. */
#ifndef FLINT_VM_H
#define FLINT_VM_H

#include <stdint.h>

#include "config/vm_config.h"
#include "core/control.h"
#include "core/mailbox.h"
#include "core/seccomp.h"
#include "core/util.h"

struct vm;

/* How the process around the VM wants it run: policy that is not part of
 * the machine (vm_config). */
struct mmds;

struct vm_opts {
	/* Where the guest's console output goes: an fd (stdout), or -1 to
	 * drop it. */
	int console_out;
	/* Serve stdin to the guest's console (raw mode on a terminal). */
	bool console_in;
	bool stats;		   /* print --stats when the VM ends */
	enum seccomp_mode seccomp; /* kill (default), log, or no filters */
	const char *seccomp_test;  /* test hook: seccomp.h's thread kind name */
	/* The metrics file's writer (metrics.h), NULL for none: the VM adds
	 * its sources (each device, the vCPUs' exits, its latencies), flushes
	 * on its timer and on VM_ACTION_FLUSH_METRICS. */
	struct metrics *metrics;
	/* The instance's MMDS data store (mmds/mmds.h), which the interfaces
	 * the configuration's MMDS names serve the guest from; NULL: none (a
	 * configuration with MMDS is then refused). Not owned. */
	struct mmds *mmds;
};

/* What the VM layer honours of a vm_config (vm_config.h's vmc_feature
 * bits); vm_create refuses the rest, naming the field. */
extern const unsigned vm_supported_features;

/* Build the VM described by c (copied: the VM owns its configuration), in
 * order: KVM, VM, memory, interrupt controllers, buses and devices,
 * kernel/initrd/zero page/MP table/page tables, vCPUs. Logs a message
 * naming the failed step or file. Returns 0 or -errno; *out is NULL on
 * failure. */
int vm_create(struct vm **out, const struct vm_config *c, const struct vm_opts *o) WARN_UNUSED;

/* The kernel arguments that name c's root device, as Firecracker adds
 * them: "root=PARTUUID=<partuuid> ro " (or rw, as the drive is) for a root
 * drive with a partuuid, "root=/dev/vda ro " without, "root=/dev/pmem<N>
 * ro " for the N-th pmem device; "" when no device is the root device.
 * Into buf[0..len). 0, or -EINVAL (a partuuid that is not one plain word:
 * a space, quote or "--" would add other arguments; a root drive and a
 * root pmem device both) or -ENOSPC, with a message in err. */
int vm_root_args(const struct vm_config *c, char *buf, size_t len, char *err,
		 size_t errlen) WARN_UNUSED;

/* How the VM ended: why, the value that goes with it (control.h's enum
 * stop_reason says which) and a message for the user, "" for none. */
struct vm_exit {
	enum stop_reason reason;
	int value;
	char msg[256];
};

/* Start the vCPUs; serve the console, host signals and the mailbox (this
 * thread is the control thread) until the VM stops; print --stats. *how
 * says why it stopped: what that means for flint's exit status, and
 * printing how->msg, are the caller's. */
void vm_run(struct vm *vm, struct vm_exit *how);

/* Stop the VM (STOP_REQUESTED with value status; msg for the user, NULL
 * for none) without waiting; the first stop request wins. Any thread. */
void vm_request_stop(struct vm *vm, int status, const char *msg);

/* When the VM has stopped, log where each vCPU was (its RIP and its local
 * APIC's timer and interrupts), as --stats and SIGQUIT do: for a guest
 * that stopped answering. Any thread; no system call. */
void vm_describe_at_stop(struct vm *vm);

/* What the VM can be asked to do (vm_act). */
enum vm_action {
	/* Stop the VM (STOP_REQUESTED, value arg). Answered once the stop is
	 * under way (the vCPUs are kicked); vm_run then returns. */
	VM_ACTION_STOP,
	/* Pause the vCPUs: answered once none is in KVM_RUN (each has told
	 * the guest's kvmclock). -ETIMEDOUT when one did not leave it within
	 * VM_PAUSE_TIMEOUT_MS; the VM then runs on. The devices and the event
	 * loop keep running. Pausing a paused VM succeeds. */
	VM_ACTION_PAUSE,
	/* Let paused vCPUs run again. Resuming a running VM succeeds. */
	VM_ACTION_RESUME,
	/* Press Ctrl-Alt-Del on the i8042 keyboard (the guest's reboot key). */
	VM_ACTION_CTRL_ALT_DEL,
	/* A device follows a changed entry of the configuration (use
	 * vm_update_device). */
	VM_ACTION_UPDATE,
	/* A device carries out a command (use vm_device_command). */
	VM_ACTION_COMMAND,
	/* Write a line to the metrics file now (FlushMetrics). */
	VM_ACTION_FLUSH_METRICS,
	/* Save the paused VM to files (use vm_snapshot). */
	VM_ACTION_SNAPSHOT,
	/* Take the VM back to the snapshot it was restored from (use
	 * vm_reset). */
	VM_ACTION_RESET,
};

#define VM_PAUSE_TIMEOUT_MS 5000
/* At the VM's end, how long its devices get to hand host programs what the
 * guest sent them and they had not read yet (devices_hand_over). */
#define VM_HAND_OVER_MS 1000

/* Where the VM is. Firecracker's instance states, and stopped. */
enum vm_state {
	VM_STATE_NOT_STARTED, /* created, vm_run not yet started the vCPUs */
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,
	VM_STATE_STOPPED, /* a stop was requested, or vm_run has returned */
};

/* Ask the VM's control thread (the thread in vm_run) to carry out action a
 * and wait for its answer: 0, or -errno with err->msg saying why (-ESHUTDOWN
 * once the VM is stopping or stopped; -EALREADY for a second stop). Actions
 * run one at a time in the order they were asked for; one asked before
 * vm_run runs when vm_run starts. Any thread but the control thread; all
 * callers must have returned before vm_destroy. */
int vm_act(struct vm *vm, enum vm_action a, long arg, struct vm_err *err);

/* Edits a copy of the VM's configuration for vm_update_device: 0, or -errno
 * with err set (nothing changes then). */
typedef int (*vm_edit_fn)(struct vm_config *next, const void *arg, struct vm_err *err);

/* Change a device while the VM runs (PATCH /drives/{id}): on the control
 * thread, edit(copy of the VM's configuration, arg) changes its entry, then
 * the device of kind `kind` known as id follows it in what `changes` (enum
 * device_change bits) names; the VM's configuration becomes the copy only
 * when the device took it. 0, or -errno with err saying why (nothing
 * changed then). Any thread but the control thread. */
int vm_update_device(struct vm *vm, const char *kind, const char *id, unsigned changes,
		     vm_edit_fn edit, const void *arg, struct vm_err *err) WARN_UNUSED;

/* What the device of kind `kind` known as id reports of its state now
 * (struct device_kind's report: a balloon's statistics), through emit, on
 * the calling thread (the device takes its own lock). 0, or -ENOENT or
 * -EOPNOTSUPP with err set. Any thread while the VM lives. */
int vm_device_report(struct vm *vm, const char *kind, const char *id,
		     void (*emit)(void *ctx, const char *name, uint64_t value), void *ctx,
		     struct vm_err *err) WARN_UNUSED;

/* The device of kind `kind` known as id carries out cmd (enum
 * device_command) with arg on the control thread, reporting through emit
 * (called there, before this returns). 0, or -errno with err saying why
 * (-ENOENT: no such device). Any thread but the control thread. */
int vm_device_command(struct vm *vm, const char *kind, const char *id, unsigned cmd, uint64_t arg,
		      void (*emit)(void *ctx, const char *name, uint64_t value), void *ctx,
		      struct vm_err *err) WARN_UNUSED;

/* Snapshots (issue 12): a paused VM is saved to a state file and a memory
 * file, and a new flint process resumes it from them (vm_restore).
 *
 * Full: the memory file gets all of guest RAM (pages never touched stay
 * holes). Diff: only the pages written since the last snapshot (KVM's
 * dirty log and flint's own writes; needs track_dirty_pages), at their
 * offsets in a file of the same layout, to be laid over the full one
 * (vm_restore_args.mem_diff_path, or merged into a copy of it). */
enum vm_snapshot_type { VM_SNAPSHOT_FULL, VM_SNAPSHOT_DIFF };

struct vm_snapshot_args {
	enum vm_snapshot_type type;
	const char *snapshot_path; /* the state file, written atomically */
	const char *mem_file_path;
};

/* Save the VM, which must be paused (-EPERM otherwise, as Firecracker),
 * on its control thread: the devices finish their I/O in flight and give
 * back what they hold, vsock tells the guest its connections are gone;
 * then the memory file and the state file are written. The VM stays
 * paused and can be resumed. 0, or -errno with err saying which step
 * failed and why (the VM is then paused as before). Any thread but the
 * control thread. */
int vm_snapshot(struct vm *vm, const struct vm_snapshot_args *a, struct vm_err *err) WARN_UNUSED;

/* Where a restored VM's memory comes from. File: a private mapping of the
 * memory file (pages load on first touch; VMs restored from one file share
 * its page cache). Uffd: anonymous memory whose page faults a handler
 * serves, given the userfaultfd over the Unix socket at backend_path as
 * Firecracker does. */
enum vm_mem_backend { VM_MEM_FILE, VM_MEM_UFFD };

/* PUT /snapshot/load's network_overrides: interface iface_id of the
 * snapshot uses this tap. */
struct vm_net_override {
	const char *iface_id, *host_dev_name;
};

/* flint's --drive-override: drive drive_id of the snapshot opens
 * path_on_host instead of the image the snapshot recorded (a jail's, say,
 * or a copy); its other settings, read-only included, stay. */
struct vm_drive_override {
	const char *drive_id, *path_on_host;
};

struct vm_restore_args {
	const char *snapshot_path;
	enum vm_mem_backend backend;
	const char *backend_path;  /* the memory file, or the handler's socket */
	const char *mem_diff_path; /* File: a diff's memory file laid over it; NULL */
	bool track_dirty_pages;
	bool resume_vm; /* run at once; else the VM is restored paused */
	/* The guest's clock goes on by the (wall-clock) time since the
	 * snapshot, when the VM first runs, so its wall clock is right
	 * (Firecracker's clock_realtime); false: it goes on from where it was
	 * saved. */
	bool clock_realtime;
	const struct vm_net_override *net_overrides;
	unsigned n_net_overrides;
	const char *vsock_uds_path; /* vsock_override's uds_path; NULL keeps it */
	/* PUT /serial before the load: the restored VM's console (NULL, or
	 * not enabled: the snapshot's) */
	const struct vmc_serial *serial;
	const struct vm_drive_override *drive_overrides;
	unsigned n_drive_overrides;
	/* A loading set (workset.h) to fault in before the guest runs, and
	 * where to write one when the VM stops; NULL for neither. */
	const char *workset_path, *record_workset_path;
};

/* Build a VM from a snapshot (a fresh process: nothing configured before),
 * paused or running as a->resume_vm says once vm_run starts it. Nothing
 * from the files is trusted before it is checked; a file from another
 * format version, another CPU, truncated or corrupt is refused. 0, or
 * -errno with a message logged naming the file and what is wrong. */
int vm_restore(struct vm **out, const struct vm_restore_args *a,
	       const struct vm_opts *o) WARN_UNUSED;

/* Reset in place: take a VM restored from a snapshot (vm_restore, File
 * backend) back to that snapshot in this process, so that nothing of what
 * it did since survives: the vCPUs pause, the devices finish their I/O and
 * come to rest as for a snapshot (vsock closes every host connection, host
 * programs read EOF), every page of guest RAM the guest or flint wrote is
 * dropped (the guest reads the memory file again), the VM's, vCPUs',
 * serial's, i8042's and devices' state is put back from the same state
 * file, the guest's clock moves on as at the restore (clock_realtime), and
 * the VM runs again (a paused VM stays paused). On the control thread;
 * any thread but that one.
 *
 * Refused, the VM going on as it was: -EOPNOTSUPP for a VM that was not
 * restored, one whose memory is the Uffd backend's, one restored with a
 * diff laid over its memory file, with track_dirty_pages, with a writable
 * drive (its image is not in the snapshot), or with a device that cannot
 * be reset; -EPERM before the VM started; the errors of a
 * pause, a drain or the event loop's pause (the VM then runs on). A
 * failure once the memory is dropped stops the VM (STOP_ERROR): it never
 * runs half reset. 0, or -errno with err saying why. */
int vm_reset(struct vm *vm, struct vm_err *err) WARN_UNUSED;
/* How long the last vm_reset took, from its start on the control thread
 * to the vCPUs running again (microseconds); 0 before one. Any thread. */
uint64_t vm_last_reset_us(const struct vm *vm);

/* console_init_said (legacy/console.h) of the VM's console. */
bool vm_init_said(struct vm *vm, char *line, size_t len);

/* The VM's configuration (its own copy). Read it on the control thread, or
 * from another thread while no update runs. */
const struct vm_config *vm_get_config(const struct vm *vm);

/* The VM's state now. Any thread. */
enum vm_state vm_state(struct vm *vm);
/* "Not started", "Running", "Paused" (Firecracker's names), "Stopped". */
const char *vm_state_name(enum vm_state s);

/* Microseconds from launch to the guest init's boot-timer signal; 0 before. */
uint64_t vm_boot_us(const struct vm *vm);

/* A VM made that will not run (what was to follow its creation failed):
 * the actions queued for it, and every later one, are refused, so that a
 * thread waiting for an answer (the API's) gets one. After vm_run, nothing
 * changes. NULL ok. */
void vm_refuse_actions(struct vm *vm);
void vm_destroy(struct vm *vm); /* NULL ok */

#endif
