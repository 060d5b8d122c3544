/* jailing: each VM of `flint serve` under flint-jail (see jailing.h). */
#include "serve/jailing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <mntent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/logger.h"

#define MAX_HIERARCHIES 16
#define RM_DEPTH_MAX	64 /* a deeper tree in a jail is left (and said) */

struct jailing {
	pthread_mutex_t lock;
	pthread_cond_t freed; /* a uid given back, or a stop (CLOCK_MONOTONIC) */
	bool stopping;
	char jailer[PATH_MAX], flint[PATH_MAX], base[PATH_MAX], parent[128];
	char exec_name[NAME_MAX + 1];
	char *cgroups[JAILING_MAX_CGROUPS];
	unsigned ncgroups;
	/* The default memory limit's file when none was given, "" for none
	 * (no memory controller). */
	char mem_file[32];
	uint32_t first, n, cursor, taken;
	int64_t gid;
	uint8_t *used; /* n bytes: 1 for a uid some jail holds */
	uint32_t tag, seq;
	/* The cgroup hierarchies' mount points: a VM's cgroup is removed in
	 * each that holds it. */
	char *mounts[MAX_HIERARCHIES];
	unsigned nmounts;
};

int jailing_parse_range(const char *s, uint32_t *first, uint32_t *last)
{
	unsigned long long a, b;
	char *end;

	errno = 0;
	a = strtoull(s, &end, 10);
	if (errno || end == s || *end != '-' || *s == '-')
		return -EINVAL;
	s = end + 1;
	b = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || a == 0 || a > b || b >= UINT32_MAX)
		return -EINVAL;
	*first = (uint32_t)a;
	*last = (uint32_t)b;
	return 0;
}

/* Whether the cgroup2 mount at mp offers controller c. */
static bool v2_offers(const char *mp, const char *c)
{
	char path[PATH_MAX], buf[512], *save = NULL;
	FILE *f;
	bool found = false;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", mp);
	if (!(f = fopen(path, "re")))
		return false;
	if (fgets(buf, sizeof(buf), f))
		for (char *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
			found |= !strcmp(t, c);
	fclose(f);
	return found;
}

/* The cgroup mounts, and the default memory limit's file: flint-jail
 * takes v2 when it offers the controller, else v1. */
static int find_hierarchies(struct jailing *j)
{
	FILE *f = setmntent("/proc/self/mounts", "re");
	struct mntent *m;
	bool v2_mem = false, v1_mem = false;

	if (!f)
		return 0; /* no /proc: nothing to remove but the jail */
	while ((m = getmntent(f)) && j->nmounts < MAX_HIERARCHIES) {
		bool v2 = !strcmp(m->mnt_type, "cgroup2");
		if (!v2 && strcmp(m->mnt_type, "cgroup"))
			continue;
		if (!(j->mounts[j->nmounts] = strdup(m->mnt_dir))) {
			endmntent(f);
			return -ENOMEM;
		}
		j->nmounts++;
		if (v2)
			v2_mem |= v2_offers(m->mnt_dir, "memory");
		else
			v1_mem |= hasmntopt(m, "memory") != NULL;
	}
	endmntent(f);
	snprintf(j->mem_file, sizeof(j->mem_file), "%s",
		 v2_mem	  ? "memory.max"
		 : v1_mem ? "memory.limit_in_bytes"
			  : "");
	return 0;
}

int jailing_new(struct jailing **out, const struct jailing_opts *o, const char *flint,
		uint32_t max_vms, char *err, size_t errlen)
{
	struct jailing *j;
	const char *slash = strrchr(flint, '/');
	uint64_t n = (uint64_t)o->uid_last - o->uid_first + 1;
	int r = -ENOMEM;

	*out = NULL;
	if (!o->jailer || o->uid_first == 0 || o->uid_last < o->uid_first)
		return err_set(err, errlen, -EINVAL, "--jail needs --uid-range FIRST-LAST");
	/* Each VM holds a uid, a registration's too (within --max-vms); the
	 * one more covers a VM whose uid is not back yet: it is freed at the
	 * reaping, a little after the pool gave the VM's room to another. */
	if (n < (uint64_t)max_vms + 1)
		return err_set(err, errlen, -EINVAL,
			       "--uid-range %" PRIu32 "-%" PRIu32 " holds %" PRIu64
			       " uids: one per VM needs --max-vms (%" PRIu32 ") + 1",
			       o->uid_first, o->uid_last, n, max_vms);
	if (n > 1u << 20)
		return err_set(err, errlen, -EINVAL, "--uid-range: at most %u uids", 1u << 20);
	if (!(j = calloc(1, sizeof(*j))) || !(j->used = calloc(n, 1)))
		goto nomem;
	pthread_mutex_init(&j->lock, NULL);
	cond_init_monotonic(&j->freed);
	j->first = o->uid_first;
	j->n = (uint32_t)n;
	j->gid = o->gid;
	snprintf(j->jailer, sizeof(j->jailer), "%s", o->jailer);
	snprintf(j->flint, sizeof(j->flint), "%s", flint);
	snprintf(j->base, sizeof(j->base), "%s", o->base ? o->base : JAILING_DEFAULT_BASE);
	snprintf(j->parent, sizeof(j->parent), "%s",
		 o->parent ? o->parent : JAILING_DEFAULT_PARENT);
	snprintf(j->exec_name, sizeof(j->exec_name), "%s", slash ? slash + 1 : flint);
	for (unsigned i = 0; i < o->ncgroups; i++) {
		if (!(j->cgroups[i] = strdup(o->cgroups[i])))
			goto nomem;
		j->ncgroups++;
	}
	if ((r = find_hierarchies(j)) < 0)
		goto nomem;
	if (getrandom(&j->tag, sizeof(j->tag), 0) != sizeof(j->tag))
		j->tag = (uint32_t)getpid() ^ (uint32_t)now_ns();
	if (!o->ncgroups && !j->mem_file[0])
		pr_warn("flint serve: no memory cgroup controller here: jailed VMs get no cgroup");
	*out = j;
	return 0;
nomem:
	jailing_free(j);
	return err_set(err, errlen, r, "out of memory");
}

/* Removes name (in dir) and all beneath it, following no symlink. */
static int rm_tree_at(int dir, const char *name, int depth)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int fd, r = 0;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dir, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (depth >= RM_DEPTH_MAX)
		return -ELOOP;
	if ((fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (!(d = fdopendir(fd))) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int rr = rm_tree_at(dirfd(d), e->d_name, depth + 1);
		if (rr < 0 && !r)
			r = rr;
	}
	closedir(d);
	if (unlinkat(dir, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !r)
		r = -errno;
	return r;
}

/* Removes PARENT/rel (rel NULL: PARENT) in each hierarchy holding it. */
static void rm_cgroups(struct jailing *j, const char *rel)
{
	char path[PATH_MAX];

	for (unsigned i = 0; i < j->nmounts; i++)
		if ((size_t)snprintf(path, sizeof(path), "%s/%s%s%s", j->mounts[i], j->parent,
				     rel ? "/" : "", rel ? rel : "") < sizeof(path) &&
		    rmdir(path) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EBUSY)
			pr_warn("flint serve: cannot remove cgroup %s: %s", path, strerror(errno));
}

void jailing_fn_gone(struct jailing *j, const char *fn)
{
	if (j)
		rm_cgroups(j, fn);
}

void jailing_free(struct jailing *j)
{
	if (!j)
		return;
	rm_cgroups(j, NULL);
	for (unsigned i = 0; i < j->ncgroups; i++)
		free(j->cgroups[i]);
	for (unsigned i = 0; i < j->nmounts; i++)
		free(j->mounts[i]);
	free(j->used);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->freed);
	free(j);
}

static void slot_free(struct jail_slot *sl)
{
	for (char **p = sl->launcher; p && *p; p++)
		free(*p);
	free(sl->launcher);
	free(sl);
}

/* The launcher: flint-jail --id ID --exec-file FLINT --uid U --gid G
 * --chroot-base-dir BASE [--parent-cgroup PARENT/FN --cgroup S ...] --. */
static int make_launcher(struct jail_slot *sl, unsigned mem_mib)
{
	struct jailing *j = sl->j;
	char uid[16], gid[16], parent[256], mem[64];
	const char *cg[JAILING_MAX_CGROUPS];
	unsigned ncg = 0, n = 0;

	snprintf(uid, sizeof(uid), "%" PRIu32, sl->uid);
	snprintf(gid, sizeof(gid), "%" PRIu32, sl->gid);
	snprintf(parent, sizeof(parent), "%s/%s", j->parent, sl->fn);
	for (unsigned i = 0; i < j->ncgroups; i++)
		cg[ncg++] = j->cgroups[i];
	if (!ncg && j->mem_file[0]) {
		snprintf(mem, sizeof(mem), "%s=%" PRIu64, j->mem_file,
			 ((uint64_t)mem_mib + JAILING_OVERHEAD_MIB) << 20);
		cg[ncg++] = mem;
	}
	const char *fixed[] = {j->jailer, "--id",  sl->id, "--exec-file",	j->flint, "--uid",
			       uid,	  "--gid", gid,	   "--chroot-base-dir", j->base};
	if (!(sl->launcher = calloc(ARRAY_SIZE(fixed) + 2 + 2 * ncg + 2, sizeof(char *))))
		return -ENOMEM;
	for (unsigned i = 0; i < ARRAY_SIZE(fixed); i++)
		if (!(sl->launcher[n++] = strdup(fixed[i])))
			return -ENOMEM;
	if (ncg && (!(sl->launcher[n++] = strdup("--parent-cgroup")) ||
		    !(sl->launcher[n++] = strdup(parent))))
		return -ENOMEM;
	for (unsigned i = 0; i < ncg; i++)
		if (!(sl->launcher[n++] = strdup("--cgroup")) ||
		    !(sl->launcher[n++] = strdup(cg[i])))
			return -ENOMEM;
	if (!(sl->launcher[n++] = strdup("--")))
		return -ENOMEM;
	return 0;
}

int jail_take(struct jailing *j, const char *fn, unsigned mem_mib, uint64_t deadline_ns,
	      struct jail_slot **out)
{
	struct jail_slot *sl = calloc(1, sizeof(*sl));
	uint32_t i, seq;
	int r;

	*out = NULL;
	if (!sl)
		return -ENOMEM;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		/* The uid least recently given back: round the range. */
		for (i = 0; i < j->n && j->used[(j->cursor + i) % j->n]; i++)
			;
		if (i < j->n && !j->stopping)
			break;
		if (j->stopping || now_ns() >= deadline_ns) {
			r = j->stopping ? -ESHUTDOWN : deadline_ns ? -ETIMEDOUT : -EAGAIN;
			pthread_mutex_unlock(&j->lock);
			free(sl);
			return r;
		}
		(void)cond_wait_until(&j->freed, &j->lock, deadline_ns);
	}
	i = (j->cursor + i) % j->n;
	j->used[i] = 1;
	j->taken++;
	j->cursor = (i + 1) % j->n;
	seq = ++j->seq;
	pthread_mutex_unlock(&j->lock);
	sl->j = j;
	sl->uid = j->first + i;
	sl->gid = j->gid < 0 ? sl->uid : (uint32_t)j->gid;
	snprintf(sl->fn, sizeof(sl->fn), "%s", fn);
	snprintf(sl->id, sizeof(sl->id), "fs-%08" PRIx32 "-%" PRIu32, j->tag, seq);
	if ((size_t)snprintf(sl->root, sizeof(sl->root), "%s/%s/%s/root", j->base, j->exec_name,
			     sl->id) >= sizeof(sl->root)) {
		r = -ENAMETOOLONG;
		goto err;
	}
	if ((r = make_launcher(sl, mem_mib)) < 0)
		goto err;
	*out = sl;
	return 0;
err:
	jail_give(sl);
	return r;
}

void jailing_stop(struct jailing *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	pthread_cond_broadcast(&j->freed);
	pthread_mutex_unlock(&j->lock);
}

void jail_give(void *slot)
{
	struct jail_slot *sl = slot;
	struct jailing *j;
	char path[PATH_MAX], rel[256];
	int dir, r;

	if (!sl)
		return;
	j = sl->j;
	/* <base>/<exec name> is root's (flint-jail makes sure): the jail is
	 * removed from there down, through descriptors. */
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", j->base, j->exec_name) >= sizeof(path))
		dir = -1, errno = ENAMETOOLONG;
	else
		dir = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir >= 0) {
		if ((r = rm_tree_at(dir, sl->id, 0)) < 0)
			pr_warn("flint serve: cannot remove the jail %s/%s: %s", path, sl->id,
				strerror(-r));
		close(dir);
	} else if (errno != ENOENT) {
		pr_warn("flint serve: %s: %s", path, strerror(errno));
	}
	snprintf(rel, sizeof(rel), "%s/%s", sl->fn, sl->id);
	rm_cgroups(j, rel);
	pthread_mutex_lock(&j->lock);
	j->used[sl->uid - j->first] = 0;
	j->taken--;
	pthread_cond_broadcast(&j->freed);
	pthread_mutex_unlock(&j->lock);
	slot_free(sl);
}

int jail_host_path(const struct jail_slot *sl, const char *path, char *out, size_t len)
{
	if (path[0] != '/')
		return -EINVAL;
	if ((size_t)snprintf(out, len, "%s%s", sl->root, path) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int jail_open_beneath(const struct jail_slot *sl, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve =
		RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int root, fd;

	while (*path == '/')
		path++;
	if (!*path)
		return -EINVAL;
	root = open(sl->root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	if (fd < 0)
		fd = -errno;
	close(root);
	return fd;
}

/* Copies in to out from off, data only: holes stay holes. */
static int copy_data(int in, int out, off_t size)
{
	char buf[64 << 10]; /* on the stack: a static __thread buffer is in every thread's TLS */
	off_t data = 0, hole;

	while (data < size) {
		if ((data = lseek(in, data, SEEK_DATA)) < 0)
			return errno == ENXIO ? 0 : -errno;
		if ((hole = lseek(in, data, SEEK_HOLE)) < 0)
			return -errno;
		while (data < hole) {
			size_t want =
			    hole - data < (off_t)sizeof(buf) ? (size_t)(hole - data) : sizeof(buf);
			ssize_t n = pread(in, buf, want, data);
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			for (ssize_t done = 0; done < n;) {
				ssize_t w =
				    pwrite(out, buf + done, (size_t)(n - done), data + done);
				if (w < 0)
					return -errno;
				done += w;
			}
			data += n;
		}
	}
	return 0;
}

int jail_collect(const struct jail_slot *sl, const char *path, const char *dest)
{
	struct stat st;
	int in = jail_open_beneath(sl, path, O_RDONLY | O_NOFOLLOW), out = -1, r;

	if (in < 0)
		return in;
	if (fstat(in, &st) < 0) {
		r = -errno;
		goto out;
	}
	/* Only a file the jail's flint made: not a device, nor a link to a
	 * file staged in the jail. */
	if (!S_ISREG(st.st_mode) || st.st_uid != sl->uid || st.st_nlink != 1) {
		r = -EPERM;
		goto out;
	}
	if ((out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = copy_data(in, out, st.st_size)) == 0 && ftruncate(out, st.st_size) < 0)
		r = -errno;
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	close(out);
	if (r < 0)
		unlink(dest);
out:
	close(in);
	return r;
}

void jailing_counts(struct jailing *j, unsigned *total, unsigned *taken)
{
	pthread_mutex_lock(&j->lock);
	*total = j->n;
	*taken = j->taken;
	pthread_mutex_unlock(&j->lock);
}
