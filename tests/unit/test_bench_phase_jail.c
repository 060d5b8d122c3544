/* flint's --phase-fd under flint-jail: the descriptor is one the jailer
 * keeps open for flint, as --status-fd is (jail/plan.c keep_fds). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../jail/plan.h"

static int no_files(void *ctx, const char *path, size_t max, char **text, size_t *len, char *why,
		    size_t whylen)
{
	(void)ctx, (void)path, (void)max, (void)text, (void)len;
	snprintf(why, whylen, "No such file or directory");
	return -ENOENT;
}

Test(bench_phase_jail, the_descriptor_is_kept)
{
	struct plan p;
	char err[256] = "";
	char *const argv[] = {
	    "run",	   "--kernel", "/img/vmlinux", "--rootfs", "/img/rootfs.ext4",
	    "--status-fd", "4",	       "--phase-fd",   "5",	   "--",
	    "true",	   NULL};

	cr_assert_eq(
	    plan_build(&p, "/opt/flint/flint", NULL, no_files, NULL, 11, argv, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(p.nkeep, 2, "--status-fd and --phase-fd");
	cr_assert_eq(p.keep[1].fd, 5);
	cr_assert_str_eq(p.keep[1].opt, "--phase-fd");
	bool passed = false;
	for (int i = 0; i + 1 < p.argc; i++)
		passed |= !strcmp(p.argv[i], "--phase-fd") && !strcmp(p.argv[i + 1], "5");
	cr_assert(passed, "flint in the jail is still told --phase-fd 5");
	plan_free(&p);
}
