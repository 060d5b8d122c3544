#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cgroupfs.h"
#include "err.h"

#define MOUNTINFO_MAX (256 * 1024)

/* Whether the space-separated list (cgroup.controllers, .subtree_control)
 * holds word. */
static bool listed(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

int cgroup_pick_version(const struct jail_opts *o, const char *mountinfo,
			const char *v2_controllers)
{
	char mnt[PATH_MAX], root[PATH_MAX];

	if (o->cgroup_version)
		return o->cgroup_version;
	if (!v2_controllers ||
	    cgroupfs_find_mount(mountinfo, NULL, mnt, sizeof(mnt), root, sizeof(root)) < 0)
		return 1;
	for (unsigned i = 0; i < o->ncgroups; i++)
		if (!listed(v2_controllers, o->cgroups[i].controller))
			return 1;
	return 2;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return jail_fail("cgroup", path, -errno);
	/* cgroup files take one write each; a short one is an error. */
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		r = jail_fail("cgroup", path, errno ? -errno : -EIO);
	close_fd(&fd);
	return r;
}

static int made(struct jail_cgroups *cg, const char *dir)
{
	if (mkdir(dir, 0755) == 0) {
		if (cg->nmade == CGROUP_MAX_MADE) {
			rmdir(dir);
			return jail_failf(-E2BIG, "cgroup", dir, "too deep a --parent-cgroup");
		}
		snprintf(cg->made[cg->nmade++], PATH_MAX, "%s", dir);
		return 1;
	}
	if (errno == EEXIST)
		return 0;
	return jail_fail("cgroup", dir, -errno);
}

/* A new cpuset has no CPUs and no memory nodes, and takes no task until it
 * has both: give it its parent's (Firecracker's jailer does the same). */
static int inherit_cpuset(const char *dir)
{
	static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char path[PATH_MAX], parent[PATH_MAX], text[4096];
		int r;
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (cgroupfs_read(path, text, sizeof(text)) == 0 && text[0] != '\n' && text[0])
			continue;
		snprintf(parent, sizeof(parent), "%s", dir);
		*strrchr(parent, '/') = '\0';
		snprintf(parent + strlen(parent), sizeof(parent) - strlen(parent), "/%s", files[i]);
		if ((r = cgroupfs_read(parent, text, sizeof(text))) < 0)
			return jail_fail("cgroup", parent, r);
		if ((r = write_text(path, text)) < 0)
			return r;
	}
	return 0;
}

/* Make <mnt>/<parent>/<id>, enabling the controllers for the level below on
 * the way down when v2 (controllers is NULL for v1). */
static int make_path(struct jail_cgroups *cg, const struct jail_opts *o, const char *mnt,
		     const char *controllers, bool cpuset, char *dir, size_t len)
{
	char rel[PATH_MAX];
	int r;

	if ((size_t)snprintf(rel, sizeof(rel), "%s/%s", opts_parent_cgroup(o), o->id) >=
		sizeof(rel) ||
	    (size_t)snprintf(dir, len, "%s", mnt) >= len)
		return jail_fail("cgroup", mnt, -ENAMETOOLONG);
	for (char *part = rel; part;) {
		char *slash = strchr(part, '/');
		if (slash)
			*slash = '\0';
		if (controllers) {
			char sc[PATH_MAX], text[4096], word[JAIL_CGROUP_FILE_MAX + 1];
			snprintf(sc, sizeof(sc), "%s/cgroup.subtree_control", dir);
			if ((r = cgroupfs_read(sc, text, sizeof(text))) < 0)
				return jail_fail("cgroup", sc, r);
			for (const char *c = controllers; *c; c += strlen(c) + 1) {
				if (listed(text, c))
					continue;
				snprintf(word, sizeof(word), "+%s", c);
				if ((r = write_text(sc, word)) < 0)
					return r;
			}
		}
		size_t n = strlen(dir);
		if (n + 1 + strlen(part) >= len)
			return jail_fail("cgroup", dir, -ENAMETOOLONG);
		snprintf(dir + n, len - n, "/%s", part);
		if ((r = made(cg, dir)) < 0)
			return r;
		if (r == 1 && cpuset && (r = inherit_cpuset(dir)) < 0)
			return r;
		part = slash ? slash + 1 : NULL;
	}
	return 0;
}

/* Write the settings of the controllers in `which` (NUL-separated list;
 * NULL: all), then move in. */
static int fill_and_enter(struct jail_cgroups *cg, const struct jail_opts *o, const char *which,
			  const char *orig)
{
	unsigned h = cg->nhier;
	char path[PATH_MAX], pid[32];
	int r;

	for (unsigned i = 0; i < o->ncgroups; i++) {
		const struct jail_cgroup_setting *s = &o->cgroups[i];
		bool ours = !which;
		for (const char *c = which; c && *c && !ours; c += strlen(c) + 1)
			ours = !strcmp(c, s->controller);
		if (!ours)
			continue;
		snprintf(path, sizeof(path), "%s/%s", cg->hier[h].dir, s->file);
		if ((r = write_text(path, s->value)) < 0)
			return r;
	}
	snprintf(cg->hier[h].orig, sizeof(cg->hier[h].orig), "%s", orig);
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg->hier[h].dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	cg->nhier++;
	if ((r = write_text(path, pid)) < 0)
		return r;
	cg->hier[h].joined = true;
	return 0;
}

/* The distinct controllers the settings name, as a NUL-separated list. */
static void controllers_of(const struct jail_opts *o, char *out, size_t len)
{
	size_t n = 0;

	for (unsigned i = 0; i < o->ncgroups; i++) {
		const char *c = o->cgroups[i].controller;
		bool seen = false;
		for (const char *p = out; p < out + n && !seen; p += strlen(p) + 1)
			seen = !strcmp(p, c);
		if (!seen && n + strlen(c) + 2 <= len) {
			memcpy(out + n, c, strlen(c) + 1);
			n += strlen(c) + 1;
		}
	}
	out[n] = '\0';
}

static int join_v2(struct jail_cgroups *cg, const struct jail_opts *o, const char *info,
		   const char *own, const char *controllers)
{
	char mnt[PATH_MAX], root[PATH_MAX], path[PATH_MAX], orig[PATH_MAX], text[4096];
	int r;

	if (cgroupfs_find_mount(info, NULL, mnt, sizeof(mnt), root, sizeof(root)) < 0)
		return jail_failf(-ENOENT, "cgroup", "/proc/self/mountinfo",
				  "no cgroup2 file system is mounted");
	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt) >= sizeof(path))
		return jail_fail("cgroup", mnt, -ENAMETOOLONG);
	if ((r = cgroupfs_read(path, text, sizeof(text))) < 0)
		return jail_fail("cgroup", path, r);
	for (const char *c = controllers; *c; c += strlen(c) + 1)
		if (!listed(text, c))
			return jail_failf(-ENOENT, "cgroup", path,
					  "controller %s is not available in cgroup v2 here", c);
	if (cgroupfs_own_path(own, NULL, orig, sizeof(orig)) < 0 ||
	    cgroupfs_dir(mnt, root, orig, path, sizeof(path)) < 0)
		return jail_failf(-ENOENT, "cgroup", "/proc/self/cgroup",
				  "this process's cgroup v2 is not under %s", mnt);
	if ((r = make_path(cg, o, mnt, controllers, false, cg->hier[0].dir, PATH_MAX)) < 0)
		return r;
	return fill_and_enter(cg, o, NULL, path);
}

static int join_v1(struct jail_cgroups *cg, const struct jail_opts *o, const char *info,
		   const char *own, const char *controllers)
{
	char mnts[CGROUP_MAX_HIER][PATH_MAX];
	int r;

	for (const char *c = controllers; *c; c += strlen(c) + 1) {
		char mnt[PATH_MAX], root[PATH_MAX], own_path[PATH_MAX], orig[PATH_MAX];
		char which[JAIL_MAX_CGROUPS * JAIL_CGROUP_FILE_MAX];
		size_t n = 0;
		bool seen = false;

		if (cgroupfs_find_mount(info, c, mnt, sizeof(mnt), root, sizeof(root)) < 0)
			return jail_failf(-ENOENT, "cgroup", "/proc/self/mountinfo",
					  "no cgroup v1 hierarchy holds the %s controller", c);
		for (unsigned h = 0; h < cg->nhier && !seen; h++)
			seen = !strcmp(mnts[h], mnt);
		if (seen) /* cpu,cpuacct: one hierarchy, already joined */
			continue;
		if (cg->nhier == CGROUP_MAX_HIER)
			return jail_failf(-E2BIG, "cgroup", mnt, "too many hierarchies");
		/* Every controller of this hierarchy that the settings name. */
		for (const char *d = c; *d; d += strlen(d) + 1) {
			char m2[PATH_MAX], r2[PATH_MAX];
			if (cgroupfs_find_mount(info, d, m2, sizeof(m2), r2, sizeof(r2)) == 0 &&
			    !strcmp(m2, mnt)) {
				memcpy(which + n, d, strlen(d) + 1);
				n += strlen(d) + 1;
			}
		}
		which[n] = '\0';
		if (cgroupfs_own_path(own, c, own_path, sizeof(own_path)) < 0 ||
		    cgroupfs_dir(mnt, root, own_path, orig, sizeof(orig)) < 0)
			return jail_failf(-ENOENT, "cgroup", "/proc/self/cgroup",
					  "this process's %s cgroup is not under %s", c, mnt);
		snprintf(mnts[cg->nhier], PATH_MAX, "%s", mnt);
		if ((r = make_path(cg, o, mnt, NULL, !strcmp(c, "cpuset"), cg->hier[cg->nhier].dir,
				   PATH_MAX)) < 0 ||
		    (r = fill_and_enter(cg, o, which, orig)) < 0)
			return r;
	}
	return 0;
}

int cgroup_join(struct jail_cgroups *cg, const struct jail_opts *o)
{
	char own[8192], controllers[JAIL_MAX_CGROUPS * JAIL_CGROUP_FILE_MAX + 1], v2[4096];
	char mnt[PATH_MAX], root[PATH_MAX], path[PATH_MAX];
	char *info;
	int r;

	*cg = (struct jail_cgroups){0};
	if (o->ncgroups == 0)
		return 0;
	if (!(info = malloc(MOUNTINFO_MAX)))
		return jail_fail("cgroup", NULL, -ENOMEM);
	if ((r = cgroupfs_read("/proc/self/mountinfo", info, MOUNTINFO_MAX)) < 0) {
		jail_fail("cgroup", "/proc/self/mountinfo", r);
		goto out;
	}
	if ((r = cgroupfs_read("/proc/self/cgroup", own, sizeof(own))) < 0) {
		jail_fail("cgroup", "/proc/self/cgroup", r);
		goto out;
	}
	controllers_of(o, controllers, sizeof(controllers));
	bool have_v2 = cgroupfs_find_mount(info, NULL, mnt, sizeof(mnt), root, sizeof(root)) == 0;
	have_v2 =
	    have_v2 &&
	    (size_t)snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt) < sizeof(path) &&
	    cgroupfs_read(path, v2, sizeof(v2)) == 0;
	cg->version = cgroup_pick_version(o, info, have_v2 ? v2 : NULL);
	r = cg->version == 2 ? join_v2(cg, o, info, own, controllers)
			     : join_v1(cg, o, info, own, controllers);
out:
	free(info);
	return r;
}

void cgroup_undo(struct jail_cgroups *cg)
{
	char path[PATH_MAX], pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	while (cg->nhier > 0) {
		unsigned h = --cg->nhier;
		if (!cg->hier[h].joined)
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg->hier[h].orig);
		if (write_text(path, pid) == 0)
			cg->hier[h].joined = false;
	}
	while (cg->nmade > 0) {
		const char *dir = cg->made[--cg->nmade];
		if (rmdir(dir) < 0)
			jail_fail("cgroup (undoing)", dir, -errno);
	}
}
