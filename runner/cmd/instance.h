/* flint as Firecracker runs: a microVM described by a JSON config file
 * (--config-file, booted at once) or configured and driven through
 * Firecracker's REST API on a Unix socket (--api-sock), or both. */
#ifndef FLINT_INSTANCE_H
#define FLINT_INSTANCE_H

#include "config/cli.h"
#include "core/vm.h"

/* Run the instance cfg describes until its VM stops (or, waiting for
 * InstanceStart, until a signal); returns flint's exit status. */
int instance_main(const struct config *cfg);

/* The process's reading of how a VM ended: its exit status, after
 * printing the VM's message. Shared by every command that runs a VM. */
int instance_exit_status(const struct vm_exit *how);

/* The process policy the command line asks for (console, stats,
 * seccomp). */
void instance_vm_opts(const struct config *cfg, struct vm_opts *o);

/* What --restore and its options ask of vm_restore (flint and flint run):
 * *a points into *ov for the --net-override and --drive-override pairs, so
 * ov must outlive it.
 * The VM resumes at once unless --paused; its vsock keeps the snapshot's
 * socket unless --vsock-override (flint run gives its own). */
struct restore_overrides {
	struct vm_net_override net[MAX_NETS];
	char names[MAX_NETS][VMC_MAX_ID + 1];
	struct vm_drive_override drive[MAX_DRIVES];
	char drive_ids[MAX_DRIVES][VMC_MAX_ID + 1];
};
void instance_restore_args(const struct config *cfg, struct vm_restore_args *a,
			   struct restore_overrides *ov);

#endif
