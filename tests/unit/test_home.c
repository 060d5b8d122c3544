/* Where flint run finds its guest (issue 10: installed as
 * /usr/local/bin/flint it looked only beside itself): $FLINT_HOME, beside
 * the binary, then the install prefix's share/flint, file by file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/home.h"

static char top[] = "/tmp/flint-home-XXXXXX";
static char home_dir[64], bin_dir[64], exe[80];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(top));
	snprintf(home_dir, sizeof(home_dir), "%s/home", top);
	snprintf(bin_dir, sizeof(bin_dir), "%s/bin", top);
	snprintf(exe, sizeof(exe), "%s/flint", bin_dir);
	cr_assert_eq(mkdir(home_dir, 0700), 0);
	cr_assert_eq(mkdir(bin_dir, 0700), 0);
}

static void put(const char *dir, const char *name)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fclose(f);
}

static void teardown(void)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(home, .init = setup, .fini = teardown);

Test(home, places_in_order)
{
	struct home h;

	home_init(&h, home_dir, exe);
	cr_assert_eq(h.n, 3);
	cr_assert_str_eq(h.dirs[0].dir, home_dir);
	cr_assert_str_eq(h.dirs[1].dir, bin_dir);
	cr_assert_str_eq(h.dirs[2].dir, home_datadir);
	home_init(&h, "", "/flint");
	cr_assert_eq(h.n, 2, "an empty FLINT_HOME is unset");
	cr_assert_str_eq(h.dirs[0].dir, "/");
	home_init(&h, NULL, NULL);
	cr_assert_eq(h.n, 1);
	cr_assert_str_eq(h.dirs[0].dir, home_datadir);
}

Test(home, first_place_holding_each_file)
{
	struct home h;
	char p[PATH_MAX], want[PATH_MAX];

	home_init(&h, home_dir, exe);
	cr_assert_eq(home_find(&h, "vmlinux", p, sizeof(p)), -ENOENT);
	put(bin_dir, "vmlinux");
	put(bin_dir, "rootfs.ext4");
	cr_assert_eq(home_find(&h, "vmlinux", p, sizeof(p)), 0);
	snprintf(want, sizeof(want), "%s/vmlinux", bin_dir);
	cr_assert_str_eq(p, want, "beside the binary");
	/* $FLINT_HOME comes first; file by file. */
	put(home_dir, "vmlinux");
	cr_assert_eq(home_find(&h, "vmlinux", p, sizeof(p)), 0);
	snprintf(want, sizeof(want), "%s/vmlinux", home_dir);
	cr_assert_str_eq(p, want);
	cr_assert_eq(home_find(&h, "rootfs.ext4", p, sizeof(p)), 0);
	snprintf(want, sizeof(want), "%s/rootfs.ext4", bin_dir);
	cr_assert_str_eq(p, want);
	cr_assert_eq(home_find(&h, "vmlinux", p, 8), -ENAMETOOLONG);
}

Test(home, says_where_it_looked)
{
	struct home h;
	char s[3 * PATH_MAX + 80], want[sizeof(s)];

	home_init(&h, home_dir, exe);
	home_describe(&h, s, sizeof(s));
	snprintf(want, sizeof(want), "%s (FLINT_HOME), %s (beside flint) or %s", home_dir, bin_dir,
		 home_datadir);
	cr_assert_str_eq(s, want);
	home_init(&h, NULL, exe);
	home_describe(&h, s, sizeof(s));
	snprintf(want, sizeof(want), "$FLINT_HOME (not set), %s (beside flint) or %s", bin_dir,
		 home_datadir);
	cr_assert_str_eq(s, want);
}
