/* The jail's cgroups: <mount>/<parent cgroup>/<id> in the cgroup v2
 * hierarchy, or in each v1 hierarchy holding a controller that --cgroup
 * names; the settings written, then the process moved in. With no --cgroup
 * the process stays where it is (Firecracker's behaviour). */
#ifndef FLINT_JAIL_CGROUP_H
#define FLINT_JAIL_CGROUP_H

#include <limits.h>
#include <stdbool.h>

#include "core/util.h"
#include "opts.h"

#define CGROUP_MAX_HIER 8
#define CGROUP_MAX_MADE 24

struct jail_cgroups {
	int version; /* 1 or 2 once joined; 0 when no --cgroup was given */
	struct {
		char dir[PATH_MAX];  /* the jail's cgroup */
		char orig[PATH_MAX]; /* where the process came from */
		bool joined;
	} hier[CGROUP_MAX_HIER];
	unsigned nhier;
	char made[CGROUP_MAX_MADE][PATH_MAX]; /* directories this run created, in order */
	unsigned nmade;
};

/* The hierarchy to use: --cgroup-version, else 2 when mountinfo shows a
 * cgroup2 mount whose cgroup.controllers (v2_controllers, NULL when
 * unreadable) lists every controller the settings name, else 1. */
int cgroup_pick_version(const struct jail_opts *o, const char *mountinfo,
			const char *v2_controllers);

/* Create the jail's cgroups, write the settings and move this process in.
 * 0, or -errno after printing "flint-jail: cgroup: PATH: reason"; what was
 * done is undone by cgroup_undo, which the caller runs on any later failure
 * too. */
int cgroup_join(struct jail_cgroups *cg, const struct jail_opts *o) WARN_UNUSED;

/* Move the process back where it came from and remove the directories
 * cgroup_join created. */
void cgroup_undo(struct jail_cgroups *cg);

#endif
