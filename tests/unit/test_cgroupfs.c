#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "core/cgroupfs.h"

static const char mountinfo[] =
    "22 1 0:21 / / rw,relatime - ext4 /dev/vda rw\n"
    "33 25 0:28 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n"
    "34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
    "35 33 0:30 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n"
    "36 33 0:31 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory\n"
    "37 33 0:32 / /sys/fs/cgroup/systemd rw shared:13 - cgroup cgroup rw,xattr,name=systemd\n"
    "38 22 0:31 /inner /mnt/my\\040cg rw master:12 - cgroup cgroup rw,memory\n";

static const char proc_cgroup[] = "9:name=systemd:/\n"
				  "5:cpu,cpuacct:/batch\n"
				  "4:memory:/process_api/abc\n"
				  "0::/user.slice/s-1.scope\n";

Test(cgroupfs, finds_v1_and_v2_mounts)
{
	char mnt[PATH_MAX], root[PATH_MAX];

	cr_assert_eq(cgroupfs_find_mount(mountinfo, "memory", mnt, sizeof(mnt), root, sizeof(root)),
		     0);
	cr_assert_str_eq(mnt, "/sys/fs/cgroup/memory");
	cr_assert_str_eq(root, "/");
	cr_assert_eq(
	    cgroupfs_find_mount(mountinfo, "cpuacct", mnt, sizeof(mnt), root, sizeof(root)), 0);
	cr_assert_str_eq(mnt, "/sys/fs/cgroup/cpu,cpuacct");
	cr_assert_eq(cgroupfs_find_mount(mountinfo, NULL, mnt, sizeof(mnt), root, sizeof(root)), 0);
	cr_assert_str_eq(mnt, "/sys/fs/cgroup/unified");
	cr_assert_eq(cgroupfs_find_mount(mountinfo, "pids", mnt, sizeof(mnt), root, sizeof(root)),
		     -ENOENT);
	cr_assert_eq(cgroupfs_find_mount(mountinfo, "name", mnt, sizeof(mnt), root, sizeof(root)),
		     -ENOENT, "name=systemd is not a controller called name");
	cr_assert_eq(cgroupfs_find_mount(mountinfo, "memory", mnt, 5, root, sizeof(root)),
		     -ENAMETOOLONG);
}

Test(cgroupfs, unescapes_and_keeps_the_mount_root)
{
	char mnt[PATH_MAX], root[PATH_MAX];
	const char *only = strstr(mountinfo, "38 22");

	cr_assert_eq(cgroupfs_find_mount(only, "memory", mnt, sizeof(mnt), root, sizeof(root)), 0);
	cr_assert_str_eq(mnt, "/mnt/my cg");
	cr_assert_str_eq(root, "/inner");
}

Test(cgroupfs, own_path)
{
	char p[PATH_MAX];

	cr_assert_eq(cgroupfs_own_path(proc_cgroup, "memory", p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/process_api/abc");
	cr_assert_eq(cgroupfs_own_path(proc_cgroup, "cpu", p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/batch");
	cr_assert_eq(cgroupfs_own_path(proc_cgroup, NULL, p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/user.slice/s-1.scope");
	cr_assert_eq(cgroupfs_own_path(proc_cgroup, "pids", p, sizeof(p)), -ENOENT);
	cr_assert_eq(cgroupfs_own_path("4:memory:/a\n", NULL, p, sizeof(p)), -ENOENT, "no v2 line");
	cr_assert_eq(cgroupfs_own_path("0::/\n", NULL, p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/");
	cr_assert_eq(cgroupfs_own_path("garbage\n::\n", NULL, p, sizeof(p)), -ENOENT);
	cr_assert_eq(cgroupfs_own_path(proc_cgroup, "memory", p, 4), -ENAMETOOLONG);
}

Test(cgroupfs, dir_under_a_mount)
{
	char d[PATH_MAX];

	cr_assert_eq(cgroupfs_dir("/sys/fs/cgroup/memory", "/", "/a/b", d, sizeof(d)), 0);
	cr_assert_str_eq(d, "/sys/fs/cgroup/memory/a/b");
	cr_assert_eq(cgroupfs_dir("/sys/fs/cgroup/memory", "/", "/", d, sizeof(d)), 0);
	cr_assert_str_eq(d, "/sys/fs/cgroup/memory");
	cr_assert_eq(cgroupfs_dir("/m", "/inner", "/inner/x", d, sizeof(d)), 0);
	cr_assert_str_eq(d, "/m/x");
	cr_assert_eq(cgroupfs_dir("/m", "/inner", "/inner", d, sizeof(d)), 0);
	cr_assert_str_eq(d, "/m");
	cr_assert_eq(cgroupfs_dir("/m", "/inner", "/innerx/y", d, sizeof(d)), -ENOENT);
	cr_assert_eq(cgroupfs_dir("/m", "/inner", "/other", d, sizeof(d)), -ENOENT);
	cr_assert_eq(cgroupfs_dir("/sys/fs/cgroup/memory", "/", "/a/b", d, 10), -ENAMETOOLONG);
}

Test(cgroupfs, limits)
{
	uint64_t v;

	cr_assert_eq(cgroupfs_parse_limit("max\n", &v), 0);
	cr_assert_eq(v, CGROUPFS_NO_LIMIT);
	cr_assert_eq(cgroupfs_parse_limit("67108864\n", &v), 0);
	cr_assert_eq(v, 64ULL << 20);
	cr_assert_eq(cgroupfs_parse_limit("9223372036854771712\n", &v), 0, "v1's 'unlimited'");
	cr_assert_eq(v, 9223372036854771712ULL);
	cr_assert_eq(cgroupfs_parse_limit("", &v), -EINVAL);
	cr_assert_eq(cgroupfs_parse_limit("maximum", &v), -EINVAL);
	cr_assert_eq(cgroupfs_parse_limit("-1", &v), -EINVAL);
	cr_assert_eq(cgroupfs_parse_limit("12 kB", &v), -EINVAL);
	cr_assert_eq(cgroupfs_parse_limit("99999999999999999999999", &v), -EINVAL);
}
