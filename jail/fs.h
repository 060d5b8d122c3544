/* The jail's file system: its directory, the files staged into it, the move
 * into it (a private mount namespace, pivot_root) and its device nodes.
 * Everything this run creates is recorded, so a failure removes it again. */
#ifndef FLINT_JAIL_FS_H
#define FLINT_JAIL_FS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "plan.h"
#include "util.h"

#define FS_MAX_MADE 64

struct jail_fs {
	char root[PATH_MAX]; /* host path of the jail's root */
	uid_t uid;
	gid_t gid;
	char *made[FS_MAX_MADE]; /* host paths this run created, in order */
	bool made_dir[FS_MAX_MADE];
	unsigned nmade;
	int host_mnt_fd; /* the mount namespace the jailer started in */
	bool entered;	 /* in the jail's own mount namespace */
	bool pivoted;	 /* false: moved over / and chrooted (an initramfs root) */
};

/* Make <dir>/root (dir is <base>/<exec name>/<id>), creating missing parents.
 * <dir> itself must not exist yet: a jail is never reused, so nothing a
 * previous tenant left (a planted symlink, a stale image) can be in it. The
 * root belongs to uid:gid, as Firecracker's does. 0 or -errno (printed). */
int fs_create(struct jail_fs *j, const char *dir, uid_t uid, gid_t gid) WARN_UNUSED;

/* Stage the plan's files at the jail's top level, hard-linked when on the
 * same file system, else copied (owner, group and mode kept), and check
 * that uid:gid may use them as flint will; make the vsock socket's
 * directory and flint run's /tmp, owned by uid:gid. 0 or -errno (printed). */
int fs_stage(struct jail_fs *j, const struct plan *p) WARN_UNUSED;

/* Enter the jail: a new mount namespace with every mount private, the jail
 * bind-mounted onto itself and made the root with pivot_root; the old root
 * is unmounted. Where pivot_root cannot work (the current root is an
 * initramfs), the jail is moved over / and chrooted into, as switch_root
 * does: without capabilities neither way out exists. 0 or -errno (printed). */
int fs_enter(struct jail_fs *j) WARN_UNUSED;

/* In the jail: /dev/kvm, /dev/net/tun and /dev/urandom, owned by uid:gid.
 * 0 or -errno (printed). */
int fs_make_devices(struct jail_fs *j) WARN_UNUSED;

/* Remove what this run created, newest first; from inside the jail it
 * first returns to the jailer's original mount namespace (the jail's
 * namespace and its mounts go away with the last process in it). */
void fs_undo(struct jail_fs *j);

/* Forget what was created: on success it stays for flint. */
void fs_keep(struct jail_fs *j);

#endif
