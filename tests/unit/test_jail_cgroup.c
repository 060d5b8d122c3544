#include <criterion/criterion.h>
#include <string.h>

#include "cgroup.h"

/* A host like the development machines: v1 controllers, cgroup2 beside. */
static const char hybrid[] =
    "25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "33 25 0:28 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n"
    "34 33 0:29 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n"
    "38 33 0:33 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory\n"
    "39 33 0:34 / /sys/fs/cgroup/cpu,cpuacct rw shared:16 - cgroup cgroup rw,cpu,cpuacct\n";
static const char v1_only[] =
    "38 33 0:33 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory\n";

static struct jail_opts with(const char *const *lines, unsigned n, int version)
{
	struct jail_opts o = {.cgroup_version = version};
	char err[256];

	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(
		    opts_parse_cgroup(lines[i], &o.cgroups[o.ncgroups++], err, sizeof(err)), 0,
		    "%s", err);
	return o;
}

Test(jail_cgroup, v2_where_it_offers_every_controller)
{
	static const char *const mem_cpu[] = {"memory.max=1G", "cpu.max=max"};
	struct jail_opts o = with(mem_cpu, 2, 0);

	cr_assert_eq(cgroup_pick_version(&o, hybrid, "cpuset cpu io memory pids\n"), 2);
	cr_assert_eq(cgroup_pick_version(&o, hybrid, "cpuset cpu io pids\n"), 1, "no memory in v2");
	cr_assert_eq(cgroup_pick_version(&o, hybrid, "hugetlb\n"), 1, "these hosts");
	cr_assert_eq(cgroup_pick_version(&o, hybrid, NULL), 1, "unreadable");
	cr_assert_eq(cgroup_pick_version(&o, v1_only, "memory cpu\n"), 1, "no cgroup2 mount");
	cr_assert_eq(cgroup_pick_version(&o, hybrid, "cpuset cpuio memoryx\n"), 1,
		     "whole words only");
}

Test(jail_cgroup, the_option_decides)
{
	static const char *const mem[] = {"memory.limit_in_bytes=1G"};
	struct jail_opts o = with(mem, 1, 1);

	cr_assert_eq(cgroup_pick_version(&o, hybrid, "memory\n"), 1);
	o.cgroup_version = 2;
	cr_assert_eq(cgroup_pick_version(&o, v1_only, NULL), 2);
}
