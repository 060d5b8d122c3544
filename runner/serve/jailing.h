/* jailing: `flint serve --jail`, each VM's flint under flint-jail.
 *
 * Every VM (and every registration's boot) gets a jail of its own: a uid
 * from the configured range that no other live VM holds (the gid the same
 * number unless one is given), its own directory under flint-jail's
 * chroot base, and a cgroup under one per function (PARENT/FUNCTION/ID)
 * with a memory limit of its guest memory plus an overhead unless the
 * administrator gave cgroup settings of their own. Once the VM's flint is
 * reaped, its jail directory and cgroup are removed and its uid is free
 * again.
 *
 * The jail's tree belongs to the tenant's uid: the server never follows a
 * name in it. Files are taken out of it, and sockets in it reached,
 * through jail_open_beneath (openat2 with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS from the jail's root); the tree is removed through
 * descriptors, never following a symlink. */
#ifndef FLINT_SERVE_JAILING_H
#define FLINT_SERVE_JAILING_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define JAILING_MAX_CGROUPS    8
#define JAILING_DEFAULT_BASE   "/srv/jailer"
#define JAILING_DEFAULT_PARENT "flint-serve"
/* Memory a VM's flint uses besides its guest memory, in the default
 * cgroup limit (flint itself, page tables, the memory file's page cache
 * the VM faults in first). */
#define JAILING_OVERHEAD_MIB 64

struct jailing_opts {
	const char *jailer;	      /* flint-jail's path; NULL: no jails */
	const char *base;	      /* --chroot-base-dir; NULL: the default */
	uint32_t uid_first, uid_last; /* inclusive; first > 0 */
	int64_t gid;		      /* -1: each VM's gid is its uid */
	const char *parent;	      /* the cgroup parent; NULL: the default */
	/* flint-jail --cgroup FILE=VALUE settings for every VM; none: the
	 * memory limit. */
	const char *cgroups[JAILING_MAX_CGROUPS];
	unsigned ncgroups;
};

struct jailing;

/* One VM's jail, from jail_take to jail_give. */
struct jail_slot {
	struct jailing *j;
	uint32_t uid, gid;
	char id[48];
	char fn[72];
	char root[PATH_MAX]; /* the jail's root on the host */
	/* flint-jail and its options up to "--", NULL-terminated: the
	 * worker's launcher (flint's own arguments follow). */
	char **launcher;
};

/* Parses "FIRST-LAST" into the range. 0 or -EINVAL. */
int jailing_parse_range(const char *s, uint32_t *first, uint32_t *last) WARN_UNUSED;

/* The jailing of a server whose VMs run flint (a static binary: the
 * jailer refuses another), with at most max_vms VMs and registrations
 * alive: the range must hold that many uids. 0, or -errno with the reason
 * in err. */
int jailing_new(struct jailing **out, const struct jailing_opts *o, const char *flint,
		uint32_t max_vms, char *err, size_t errlen) WARN_UNUSED;
void jailing_free(struct jailing *j); /* NULL ok; every slot given back */

/* A jail for a VM of function fn with mem_mib of guest memory: a free
 * uid, a new id, the launcher. When every uid is taken, waits for one to be
 * given back until deadline_ns (now_ns()'s clock; 0: not at all): a VM's
 * uid comes back when its flint is reaped, a little after the pool gave
 * its place to another. 0; -EAGAIN when none was free and deadline_ns was
 * 0, -ETIMEDOUT when none came by it, -ESHUTDOWN after jailing_stop;
 * -ENOMEM. Thread-safe; never wait holding a lock the reaping takes. */
int jail_take(struct jailing *j, const char *fn, unsigned mem_mib, uint64_t deadline_ns,
	      struct jail_slot **out) WARN_UNUSED;
/* The server stops: no more jails, and whoever waits in jail_take returns. */
void jailing_stop(struct jailing *j); /* NULL ok */
/* The VM's flint is reaped (or never started): its jail directory and
 * cgroup removed, its uid free. Takes a struct jail_slot * (a worker's
 * gone callback); NULL ok. */
void jail_give(void *slot);

/* The host path of path in the jail (an absolute in-jail path). 0 or
 * -ENAMETOOLONG. */
int jail_host_path(const struct jail_slot *sl, const char *path, char *out, size_t len) WARN_UNUSED;
/* Opens path (absolute, in the jail) beneath the jail's root with flags
 * (O_PATH for a socket), no symlink followed on the way. An fd, or
 * -errno. */
int jail_open_beneath(const struct jail_slot *sl, const char *path, int flags) WARN_UNUSED;
/* Copies the jail's regular file path (owned by the jail's uid) to dest,
 * a new file of the server's (mode 0644), holes kept. 0, or -errno. */
int jail_collect(const struct jail_slot *sl, const char *path, const char *dest) WARN_UNUSED;
/* The function's cgroup (PARENT/fn) removed, once it holds no VM. */
void jailing_fn_gone(struct jailing *j, const char *fn);

/* For the metrics and GET /: uids in the range, uids taken. */
void jailing_counts(struct jailing *j, unsigned *total, unsigned *taken);

#endif
