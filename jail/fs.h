/* The jail's file system: its directory, the files staged into it, its
 * device nodes, the pid file, the move into it (a private mount namespace,
 * pivot_root), its /proc of processes only, and the handover to the jail's
 * user.
 *
 * A process running as the jail's uid may be at work on the host while the
 * jailer is (the same tenant's previous VM), so the jailer follows no name
 * that uid could change:
 * - the directories on the way to <base>/<exec> must be ones only root can
 *   change (checked while walking them without following symlinks);
 * - everything below is made relative to directory descriptors the jailer
 *   holds (mkdirat, mknodat, openat with O_EXCL), each name new, in a root
 *   that stays root's, 0755, until the end;
 * - each staged file is opened once, by path as uid:gid (so its whole path
 *   is resolved with their permissions), checked on that descriptor, and
 *   linked or copied through it;
 * - the tenant's entries (device nodes, the sockets' directories,
 *   flint run's /tmp and scratch disk) and then the root are given to uid:gid last, with
 *   fchown on held descriptors;
 * - a failure removes what was made by (held directory, name), never by
 *   path. */
#ifndef FLINT_JAIL_FS_H
#define FLINT_JAIL_FS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "core/util.h"
#include "plan.h"

#define FS_MAX_MADE 64

/* One entry this run made. */
struct fs_entry {
	int parent; /* index of the directory entry it is in; -1: jail_fs.top_fd */
	char name[NAME_MAX + 1];
	char *path; /* host path, for messages only; malloc'd */
	int fd;	    /* the entry itself (directories, device nodes, the pid file), or -1 */
	bool dir;
	bool tenant; /* given to uid:gid at the handover */
	bool socket; /* a directory made for a socket flint binds */
};

struct jail_fs {
	uid_t uid;
	gid_t gid;
	int top_fd;			   /* the deepest directory of <base>/<exec> that existed */
	char *top_path;			   /* its path; malloc'd */
	struct fs_entry made[FS_MAX_MADE]; /* in the order made */
	unsigned nmade;
	int root;	 /* index of <base>/<exec>/<id>/root in made, or -1 */
	int pid;	 /* index of the pid file in made, or -1 */
	int proc;	 /* index of /proc in made, or -1 */
	int proc_fd;	 /* /proc as the jail's mount namespace shows it, or -1 */
	int host_mnt_fd; /* the mount namespace the jailer started in */
	bool entered;	 /* in the jail's own mount namespace */
	bool pivoted;	 /* false: moved over / and chrooted (an initramfs root) */
};

/* Nothing made, no descriptor held: fs_undo and fs_keep may run on it. */
void fs_init(struct jail_fs *j);

/* Make <dir>/root (dir is <base>/<exec name>/<id>), creating missing
 * parents, and hold a descriptor of it. <dir> itself must not exist yet: a
 * jail is never reused, so nothing a previous tenant left (a planted
 * symlink, a stale image) can be in it. Every directory on the way must be
 * one that only root can change. The root stays root's until fs_handover.
 * 0 or -errno (printed). */
int fs_create(struct jail_fs *j, const char *dir, uid_t uid, gid_t gid) WARN_UNUSED;

/* The host path of the jail's root (for messages), "" before fs_create. */
const char *fs_root_path(const struct jail_fs *j);

/* Fill the jail while it is root's alone: stage the plan's files at its
 * top level (each opened once as uid:gid, which must be allowed to use it
 * as flint will; hard-linked through that descriptor when on the same file
 * system, else copied from it with owner, group and mode kept; a
 * set-user-ID or executable file the tenant may not write always copied,
 * without those bits and file capabilities; the exec
 * file always copied, so that no two jails share its pages), make /dev
 * with kvm, net/tun and urandom, /proc (root's, 0555) when the plan wants
 * one, the directories of the API socket, of
 * the vsock socket and of the log and metrics files (the log file itself,
 * empty, where the plan says so), flint run's /tmp and --scratch disk
 * (made and formatted here, root's until the handover), and <exec
 * name>.pid for fs_write_pid. The rewritten config file is written, not
 * staged. 0 or -errno (printed). */
int fs_stage(struct jail_fs *j, const struct plan *p) WARN_UNUSED;

/* Read the file at path as flint will in the jail, for the plan's config
 * file: opened as uid:gid (the file-system ids, no supplementary groups, as
 * each staged file is), so they must be able to reach and read it; a
 * regular file of at most max bytes, returned NUL-terminated in a malloc'd
 * *text of *len bytes. 0, or -errno with a message in err. */
int fs_read_as(uid_t uid, gid_t gid, const char *path, size_t max, char **text, size_t *len,
	       char *err, size_t errlen) WARN_UNUSED;

/* Open path as the jail's user will see it: read-only (O_NONBLOCK,
 * close-on-exec), with uid:gid as the file-system ids and no supplementary
 * groups, so they must be able to reach and read it; a directory opens
 * too. *fd, or -errno with a message in err. For the image sources that
 * the jailer builds (jimage.h). */
int fs_open_as(uid_t uid, gid_t gid, const char *path, int *fd, char *err,
	       size_t errlen) WARN_UNUSED;

/* Enter the jail: a new mount namespace with every mount private, the jail
 * (the held root, carried in as the working directory) bind-mounted onto
 * itself and made the root with pivot_root; the old root is unmounted.
 * Where pivot_root cannot work (the current root is an initramfs), the jail
 * is moved over / and chrooted into, as switch_root does: without
 * capabilities neither way out exists. With a /proc made by fs_stage, its
 * directory in the new namespace is opened for fs_mount_proc (by its name
 * in the root, which is still root's alone, and checked to be the one
 * made). 0 or -errno (printed). */
int fs_enter(struct jail_fs *j) WARN_UNUSED;

/* Mount a procfs of processes only on the jail's /proc (when fs_stage made
 * one; else nothing): subset=pid (no /proc/sys, kcore, sysrq-trigger...,
 * only the pid directories, self and thread-self), hidepid=invisible (no
 * process flint may not ptrace-read, so none of another uid's), nosuid,
 * nodev, noexec. Through the descriptor fs_enter opened, never a name, so
 * it may run after the handover. The procfs shows the pid namespace of the
 * caller: called by the process that becomes flint (with --new-pid-ns, the
 * child, pid 1 of the new namespace). A kernel that refuses the mount
 * (subset=pid needs Linux 5.8) gets a warning and no /proc: flint then
 * drops every page at a reset, as before, and says so. 0 or -errno
 * (printed). */
int fs_mount_proc(struct jail_fs *j) WARN_UNUSED;

/* Give uid:gid what is theirs: the device nodes, the vsock socket's
 * directories and /tmp, then the root, through held descriptors. The last
 * step before flint: from here on the tenant may rename anything in the
 * root, and the jailer looks up no name in it any more. 0 or -errno
 * (printed). */
int fs_handover(struct jail_fs *j) WARN_UNUSED;

/* Write pid to the pid file fs_stage created. 0 or -errno (printed). */
int fs_write_pid(struct jail_fs *j, pid_t pid) WARN_UNUSED;

/* Remove what this run created, newest first, each by its held directory
 * and name; from inside the jail it first returns to the jailer's original
 * mount namespace (for the cgroup file system; the jail's namespace and its
 * mounts go away with the last process in it). */
void fs_undo(struct jail_fs *j);

/* Forget what was created (on success it stays for flint) and close every
 * descriptor held. */
void fs_keep(struct jail_fs *j);

#endif
