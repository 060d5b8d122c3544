#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "opts.h"

#define ARGV(...)	   ((char *[]){"flint-jail", __VA_ARGS__, NULL})
#define ARGC(...)	   ((int)(sizeof((char *[]){"flint-jail", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, err, ...) opts_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), o, err, 256)
#define REQUIRED	   "--id", "vm-1", "--exec-file", "/usr/bin/flint", "--uid", "123", "--gid", "100"

static struct jail_opts o;
static char err[256];

Test(jail_opts, required_and_defaults)
{
	cr_assert_eq(PARSE(&o, err, REQUIRED), OPTS_RUN, "%s", err);
	cr_assert_str_eq(o.id, "vm-1");
	cr_assert_str_eq(o.exec_file, "/usr/bin/flint");
	cr_assert_eq(o.uid, 123);
	cr_assert_eq(o.gid, 100);
	cr_assert_str_eq(o.base, "/srv/jailer");
	cr_assert_null(o.netns);
	cr_assert_eq(o.ncgroups, 0);
	cr_assert_eq(o.cgroup_version, 0);
	cr_assert_eq(o.nofile, 2048);
	cr_assert_not(o.has_fsize);
	cr_assert_not(o.daemonize);
	cr_assert_not(o.new_pid_ns);
	cr_assert_eq(o.flint_argc, 0);
	cr_assert_str_eq(opts_exec_name(&o), "flint");
	cr_assert_str_eq(opts_parent_cgroup(&o), "flint");
}

Test(jail_opts, every_option_and_flint_args)
{
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--chroot-base-dir", "/var/jail", "--netns",
			   "/var/run/netns/a", "--cgroup", "memory.max=512M", "--cgroup",
			   "cpu.max=50000 100000", "--cgroup-version", "2", "--parent-cgroup",
			   "tenants/a", "--resource-limit", "fsize=1000", "--resource-limit",
			   "no-file=64", "--daemonize", "--new-pid-ns", "--", "--kernel", "k", "--",
			   "sh"),
		     OPTS_RUN, "%s", err);
	cr_assert_str_eq(o.base, "/var/jail");
	cr_assert_str_eq(o.netns, "/var/run/netns/a");
	cr_assert_eq(o.ncgroups, 2);
	cr_assert_str_eq(o.cgroups[0].file, "memory.max");
	cr_assert_str_eq(o.cgroups[0].controller, "memory");
	cr_assert_str_eq(o.cgroups[0].value, "512M");
	cr_assert_str_eq(o.cgroups[1].controller, "cpu");
	cr_assert_str_eq(o.cgroups[1].value, "50000 100000");
	cr_assert_eq(o.cgroup_version, 2);
	cr_assert_str_eq(opts_parent_cgroup(&o), "tenants/a");
	cr_assert(o.has_fsize);
	cr_assert_eq(o.fsize, 1000);
	cr_assert_eq(o.nofile, 64);
	cr_assert(o.daemonize);
	cr_assert(o.new_pid_ns);
	cr_assert_eq(o.flint_argc, 4);
	cr_assert_str_eq(o.flint_argv[0], "--kernel");
	cr_assert_str_eq(o.flint_argv[2], "--");
	cr_assert_str_eq(o.flint_argv[3], "sh");
}

Test(jail_opts, ids)
{
	char longest[JAIL_ID_MAX + 2];

	cr_assert_eq(opts_check_id("551e7604-e35c-42b3-b825-416853441234"), 0);
	cr_assert_eq(opts_check_id("A"), 0);
	memset(longest, 'a', JAIL_ID_MAX);
	longest[JAIL_ID_MAX] = '\0';
	cr_assert_eq(opts_check_id(longest), 0);
	longest[JAIL_ID_MAX] = 'a';
	longest[JAIL_ID_MAX + 1] = '\0';
	cr_assert_eq(opts_check_id(longest), -EINVAL, "65 characters");
	cr_assert_eq(opts_check_id(""), -EINVAL);
	cr_assert_eq(opts_check_id("a/b"), -EINVAL);
	cr_assert_eq(opts_check_id(".."), -EINVAL);
	cr_assert_eq(opts_check_id("a_b"), -EINVAL);
	cr_assert_eq(opts_check_id("a b"), -EINVAL);
	cr_assert_eq(opts_check_id("a\n"), -EINVAL);
	cr_assert_eq(PARSE(&o, err, "--id", "../x", "--exec-file", "f", "--uid", "1", "--gid", "1"),
		     OPTS_ERROR);
	cr_assert(strstr(err, "--id ../x"), "%s", err);
}

Test(jail_opts, missing_required)
{
	cr_assert_eq(PARSE(&o, err, "--id", "a", "--exec-file", "f", "--uid", "1"), OPTS_ERROR);
	cr_assert(strstr(err, "required"), "%s", err);
	cr_assert_eq(PARSE(&o, err, "--exec-file", "f", "--uid", "1", "--gid", "1"), OPTS_ERROR);
}

Test(jail_opts, unknown_and_stray)
{
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--frob"), OPTS_ERROR);
	cr_assert(strstr(err, "unknown option --frob"), "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--kernel", "k"), OPTS_ERROR, "flint's, before --");
	cr_assert(strstr(err, "unknown option --kernel"), "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "stray"), OPTS_ERROR);
	cr_assert(strstr(err, "unexpected argument stray"), "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--netns"), OPTS_ERROR);
	cr_assert(strstr(err, "--netns needs a value"), "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--id", "b"), OPTS_ERROR);
	cr_assert(strstr(err, "--id is given twice"), "%s", err);
	/* An option with one value never silently takes the last one given,
	 * as Firecracker's jailer refuses a repeated argument. */
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--chroot-base-dir", "/a", "--chroot-base-dir", "/b"),
		     OPTS_ERROR);
	cr_assert(strstr(err, "--chroot-base-dir is given twice"), "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--parent-cgroup", "a", "--parent-cgroup", "b"),
		     OPTS_ERROR);
	cr_assert(strstr(err, "--parent-cgroup is given twice"), "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--cgroup-version", "1", "--cgroup-version", "2"),
		     OPTS_ERROR);
	cr_assert(strstr(err, "--cgroup-version is given twice"), "%s", err);
}

Test(jail_opts, uid_gid)
{
	cr_assert_eq(PARSE(&o, err, "--id", "a", "--exec-file", "f", "--uid", "0", "--gid", "1"),
		     OPTS_ERROR);
	cr_assert(strstr(err, "--uid 0"), "%s", err);
	cr_assert_eq(PARSE(&o, err, "--id", "a", "--exec-file", "f", "--uid", "1", "--gid", "0"),
		     OPTS_ERROR);
	cr_assert(strstr(err, "--gid 0"), "%s", err);
	cr_assert_eq(PARSE(&o, err, "--id", "a", "--exec-file", "f", "--uid", "-1", "--gid", "1"),
		     OPTS_ERROR);
	cr_assert_eq(
	    PARSE(&o, err, "--id", "a", "--exec-file", "f", "--uid", "4294967295", "--gid", "1"),
	    OPTS_ERROR, "(uid_t)-1 means no change to setresuid");
	cr_assert_eq(PARSE(&o, err, "--id", "a", "--exec-file", "f", "--uid", "12x", "--gid", "1"),
		     OPTS_ERROR);
	cr_assert_eq(
	    PARSE(&o, err, "--id", "a", "--exec-file", "f", "--uid", "4294967294", "--gid", "1"),
	    OPTS_RUN);
	cr_assert_eq(o.uid, 4294967294u);
}

Test(jail_opts, cgroup_lines)
{
	struct jail_cgroup_setting c;
	static const char *const bad[] = {
	    "memory.max",      /* no value */
	    "=5",	       /* no file */
	    "memory.max=",     /* empty value */
	    "memory=5",	       /* no name after the controller */
	    ".max=5",	       /* no controller */
	    "memory.=5",       /* nothing after the dot */
	    "../memory.max=5", /* a path */
	    "memory/x.max=5",  /* a path */
	    "Memory.max=5",    /* controllers are lower case */
	    "cgroup.procs=1",  /* the jailer's own business */
	    "cgroup.subtree_control=+cpu",
	    "memory.max=1\n2", /* two lines */
	    "pids.max=a\tb",   /* a control character */
	    "tasks=1",	       /* v1 core file, no controller */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(opts_parse_cgroup(bad[i], &c, err, sizeof(err)), -EINVAL, "%s",
			     bad[i]);
	cr_assert_eq(opts_parse_cgroup("cpuset.cpus=0-1", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.controller, "cpuset");
	cr_assert_str_eq(c.file, "cpuset.cpus");
	cr_assert_str_eq(c.value, "0-1");
	cr_assert_eq(opts_parse_cgroup("hugetlb.2MB.max=0", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.controller, "hugetlb");
	cr_assert_eq(opts_parse_cgroup("memory.limit_in_bytes=a=b", &c, err, sizeof(err)), 0);
	cr_assert_str_eq(c.value, "a=b", "the first = splits");
	cr_assert_eq(
	    PARSE(&o, err, REQUIRED, "--cgroup", "memory.max=1G", "--cgroup", "memory.max=2G"),
	    OPTS_ERROR);
	cr_assert(strstr(err, "given twice"), "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--cgroup", "nonsense"), OPTS_ERROR);
	cr_assert(strstr(err, "--cgroup nonsense"), "%s", err);
}

Test(jail_opts, cgroup_version_parent_rlimits)
{
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--cgroup-version", "3"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--cgroup-version", "1"), OPTS_RUN);
	cr_assert_eq(o.cgroup_version, 1);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--parent-cgroup", "/abs"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--parent-cgroup", "a/../b"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--parent-cgroup", "a//b"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--parent-cgroup", "a/b/"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--parent-cgroup", "a b"), OPTS_ERROR);
	/* systemd's delegation: user@UID.service */
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--parent-cgroup",
			   "user.slice/user-1000.slice/user@1000.service/app.slice"),
		     OPTS_RUN, "%s", err);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--resource-limit", "nproc=5"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--resource-limit", "fsize=-1"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--resource-limit", "no-file=0"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--resource-limit", "no-file="), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--chroot-base-dir", "relative"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--chroot-base-dir", "/srv/../etc"), OPTS_ERROR);
	cr_assert_eq(
	    PARSE(&o, err, "--id", "a", "--exec-file", "/usr/bin/", "--uid", "1", "--gid", "1"),
	    OPTS_ERROR, "an exec file needs a name");
}

/* --image-limit: the bounds of an image built from a tenant's tree or
 * archive (jimage.h), with defaults. */
Test(jail_opts, image_limits)
{
	cr_assert_eq(PARSE(&o, err, REQUIRED), OPTS_RUN, "%s", err);
	cr_assert_eq(o.image_bytes, 8ULL << 30);
	cr_assert_eq(o.image_entries, 1000000);
	cr_assert_eq(o.image_cache, 10ULL << 30);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--image-limit", "bytes=1048576", "--image-limit",
			   "entries=10", "--image-limit", "cache=0"),
		     OPTS_RUN, "%s", err);
	cr_assert_eq(o.image_bytes, 1048576);
	cr_assert_eq(o.image_entries, 10);
	cr_assert_eq(o.image_cache, 0, "0: the cache has no limit");
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--image-limit", "cache=1073741824"), OPTS_RUN);
	cr_assert_eq(o.image_cache, 1ULL << 30);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--image-limit", "bytes=0"), OPTS_ERROR);
	cr_assert_str_eq(err, "--image-limit bytes=0: expected bytes=N or entries=N (N > 0), or "
			      "cache=N (0: no limit)");
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--image-limit", "cache=1G"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--image-limit", "entries=-1"), OPTS_ERROR);
	cr_assert_eq(PARSE(&o, err, REQUIRED, "--image-limit", "size=1"), OPTS_ERROR);
}

Test(jail_opts, paths)
{
	char p[PATH_MAX];

	cr_assert_eq(PARSE(&o, err, REQUIRED), OPTS_RUN);
	cr_assert_eq(opts_jail_dir(&o, p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/srv/jailer/flint/vm-1");
	cr_assert_eq(opts_jail_root(&o, p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/srv/jailer/flint/vm-1/root");
	cr_assert_eq(PARSE(&o, err, "--id", "x", "--exec-file", "flint-static", "--uid", "1",
			   "--gid", "1", "--chroot-base-dir", "/j//"),
		     OPTS_RUN);
	cr_assert_eq(opts_jail_root(&o, p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/j/flint-static/x/root", "trailing slashes are not doubled");
	cr_assert_eq(PARSE(&o, err, "--id", "x", "--exec-file", "f", "--uid", "1", "--gid", "1",
			   "--chroot-base-dir", "/"),
		     OPTS_RUN);
	cr_assert_eq(opts_jail_root(&o, p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/f/x/root");
	cr_assert_eq(opts_jail_root(&o, p, 9), -ENAMETOOLONG);
	cr_assert_eq(opts_jail_root(&o, p, 10), 0);
}

Test(jail_opts, help_and_version)
{
	cr_assert_eq(PARSE(&o, err, "--version"), OPTS_EXIT_OK);
}
