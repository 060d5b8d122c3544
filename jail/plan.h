/* What the jail must hold for flint's arguments, and the arguments rewritten
 * for flint's view from inside it. Pure but for flint run's defaults: walks
 * argv and touches no file, except that it looks for those defaults.
 *
 * The files flint opens are named on its command line: --kernel, --initrd,
 * --drive path=, --rootfs (flint run) and flint run's defaults (vmlinux,
 * rootfs.ext4, found where flint would look for them outside the jail,
 * runner/config/home.h), which flint cannot find from inside a jail with no
 * /proc or environment, so they are passed explicitly. Each is staged at the
 * jail's top level under its own name (numbered when two names collide) and the
 * argument points there. The directories of the --vsock socket and of the
 * API socket (--api-sock, or flint's default when flint serves the API)
 * are made inside the jail. Options the plan does not know pass through
 * untouched and nothing they name is staged. */
#ifndef FLINT_JAIL_PLAN_H
#define FLINT_JAIL_PLAN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cli.h"
#include "config/home.h"
#include "core/util.h"

/* flint's API socket when --api-sock is not given (API_DEFAULT_SOCK in
 * runner/config/cli.h). */
#define PLAN_DEFAULT_API_SOCK "/run/flint.socket"

/* The exec file, kernel, initrd, flint run's root image and the drives. */
#define PLAN_MAX_FILES (MAX_DRIVES + 4)

enum plan_access { PLAN_READ, PLAN_READ_WRITE, PLAN_EXEC };

struct plan_file {
	char *src;		 /* host path, malloc'd */
	char name[NAME_MAX + 1]; /* at the jail's top level */
	enum plan_access access;
};

struct plan {
	char **argv; /* "/<exec name>", the rewritten arguments, NULL; malloc'd */
	int argc;
	struct plan_file files[PLAN_MAX_FILES]; /* files[0] is the exec file */
	unsigned nfiles;
	char vsock_path[PATH_MAX]; /* in-jail socket path, "" without --vsock */
	/* In-jail path of the API socket: --api-sock's, else flint's default;
	 * "" when flint serves no API (flint run, --no-api, --kernel without
	 * --api-sock). */
	char api_sock_path[PATH_MAX];
	bool run_tmp; /* flint run makes its private socket directory in /tmp */
	uint64_t mem; /* guest memory from --mem, or flint's default */
};

/* Build the plan for exec_file (host path) and flint's arguments. flint
 * run's defaults come from the first of h's places that has them (h built
 * with home_init for $FLINT_HOME and exec_file), or, with h NULL, from
 * beside exec_file. 0, or -EINVAL / -ENOMEM / -ENOENT with a message in
 * err; plan_free in every case. */
int plan_build(struct plan *p, const char *exec_file, const struct home *h, int argc,
	       char *const *argv, char *err, size_t errlen) WARN_UNUSED;

void plan_free(struct plan *p);

#endif
