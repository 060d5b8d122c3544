#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"

#define ARGV(...) ((char *const[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *const[]){__VA_ARGS__}) / sizeof(char *)))
#define BUILD(p, ...)                                                                              \
	plan_build(p, "/opt/flint/flint", NULL, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, 256)

static struct plan p;
static char err[256];

static void fini(void)
{
	plan_free(&p);
}

/* The rewritten argv as one string, for compact expectations. */
static const char *joined(void)
{
	static char s[4096];
	size_t n = 0;

	s[0] = '\0';
	for (int i = 0; i < p.argc; i++)
		n += snprintf(s + n, sizeof(s) - n, "%s%s", i ? " " : "", p.argv[i]);
	cr_assert_null(p.argv[p.argc], "argv ends in NULL");
	return s;
}

TestSuite(jail_plan, .fini = fini);

Test(jail_plan, exec_file_only)
{
	cr_assert_eq(plan_build(&p, "/opt/flint/flint", NULL, 0, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(joined(), "/flint");
	cr_assert_eq(p.nfiles, 1);
	cr_assert_str_eq(p.files[0].src, "/opt/flint/flint");
	cr_assert_str_eq(p.files[0].name, "flint");
	cr_assert_eq(p.files[0].access, PLAN_EXEC);
	cr_assert_eq(p.mem, DEFAULT_MEM);
	cr_assert_str_eq(p.vsock_path, "");
	cr_assert_not(p.run_tmp);
}

Test(jail_plan, files_are_staged_and_arguments_rewritten)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/img/vmlinux", "--initrd=/img/initrd.gz", "--mem", "1G",
			   "--drive", "path=/disks/root.ext4,ro,id=root", "--drive",
			   "id=data,path=data.img", "--vsock", "cid=3,uds=/run/fc/v.sock",
			   "--stats", "--", "sh", "-c", "--kernel x"),
		     0, "%s", err);
	cr_assert_str_eq(joined(),
			 "/flint --kernel /vmlinux --initrd=/initrd.gz --mem 1G --drive "
			 "path=/root.ext4,ro,id=root --drive id=data,path=/data.img --vsock "
			 "cid=3,uds=/run/fc/v.sock --stats -- sh -c --kernel x");
	cr_assert_eq(p.nfiles, 5);
	cr_assert_str_eq(p.files[1].src, "/img/vmlinux");
	cr_assert_eq(p.files[1].access, PLAN_READ);
	cr_assert_str_eq(p.files[2].name, "initrd.gz");
	cr_assert_eq(p.files[3].access, PLAN_READ, "ro drive");
	cr_assert_str_eq(p.files[4].src, "data.img");
	cr_assert_eq(p.files[4].access, PLAN_READ_WRITE, "rw drive");
	cr_assert_eq(p.mem, 1ULL << 30);
	cr_assert_str_eq(p.vsock_path, "/run/fc/v.sock");
}

Test(jail_plan, name_collisions_and_repeats)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/a/flint", "--drive", "path=/b/disk", "--drive",
			   "path=/c/disk,ro", "--drive", "path=/b/disk,ro"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --kernel /2-flint --drive path=/disk --drive "
				   "path=/2-disk,ro --drive path=/disk,ro");
	cr_assert_eq(p.nfiles, 4, "the same path is staged once");
	cr_assert_eq(p.files[2].access, PLAN_READ_WRITE, "read-write wins");
}

Test(jail_plan, unknown_options_pass_through)
{
	cr_assert_eq(BUILD(&p, "--seccomp-test-forbidden", "vcpu", "--new-opt=/etc/x", "--kernel",
			   "/k", "--flag", "--ker=/k2"),
		     0, "%s", err);
	cr_assert_str_eq(joined(),
			 "/flint --seccomp-test-forbidden vcpu --new-opt=/etc/x --kernel "
			 "/k --flag --ker=/k2",
			 "'--ker' abbreviates --kernel, as getopt_long allows");
	cr_assert_eq(p.nfiles, 3);
	cr_assert_str_eq(p.files[2].src, "/k2");
}

Test(jail_plan, flint_run_defaults)
{
	cr_assert_eq(BUILD(&p, "run", "--timeout", "5", "--", "uname", "-a"), 0, "%s", err);
	cr_assert_str_eq(joined(), "/flint run --kernel /vmlinux --rootfs /rootfs.ext4 --timeout 5 "
				   "-- uname -a");
	cr_assert_str_eq(p.files[1].src, "/opt/flint/vmlinux");
	cr_assert_str_eq(p.files[2].src, "/opt/flint/rootfs.ext4");
	cr_assert(p.run_tmp, "flint run makes its socket directory in /tmp");
}

Test(jail_plan, flint_run_given_files_and_vsock)
{
	cr_assert_eq(
	    BUILD(&p, "run", "--rootfs", "/i/r.img", "--vsock", "uds=v/s,cid=9", "--", "true"), 0,
	    "%s", err);
	cr_assert_str_eq(joined(), "/flint run --kernel /vmlinux --rootfs /r.img --vsock "
				   "uds=/v/s,cid=9 -- true");
	cr_assert_not(p.run_tmp);
	cr_assert_str_eq(p.vsock_path, "/v/s", "relative to flint's working directory, /");
}

Test(jail_plan, bad_values)
{
	cr_assert_eq(BUILD(&p, "--vsock", "cid=3,uds=/run/../../etc/s"), -EINVAL);
	cr_assert(strstr(err, "--vsock uds=/run/../../etc/s"), "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/boot/"), -EINVAL);
	cr_assert(strstr(err, "/boot/ does not name a file"), "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--initrd", ".."), -EINVAL);
}

Test(jail_plan, api_socket_is_made_inside_the_jail)
{
	cr_assert_eq(BUILD(&p, "--api-sock", "api.sock", "--vsock", "cid=3,uds=/run/v.sock"), 0,
		     "%s", err);
	cr_assert_str_eq(joined(), "/flint --api-sock /api.sock --vsock cid=3,uds=/run/v.sock",
			 "relative to flint's working directory, /");
	cr_assert_str_eq(p.api_sock_path, "/api.sock");
	cr_assert_eq(p.nfiles, 1, "a socket is made by flint, not staged");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--api-sock=/run/fc/api.sock", "--", "x"), 0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --api-sock=/run/fc/api.sock -- x");
	cr_assert_str_eq(p.api_sock_path, "/run/fc/api.sock");
}

Test(jail_plan, api_socket_default)
{
	cr_assert_eq(BUILD(&p, "--id", "vm1"), 0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --id vm1", "flint's default is not passed");
	cr_assert_str_eq(p.api_sock_path, PLAN_DEFAULT_API_SOCK, "its directory is made");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/k/vmlinux"), 0, "%s", err);
	cr_assert_str_eq(p.api_sock_path, "", "a --kernel boot serves no API");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/k/vmlinux", "--api-sock", "/a.sock"), 0, "%s", err);
	cr_assert_str_eq(p.api_sock_path, "/a.sock", "unless given --api-sock");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--config-file", "/c.json", "--no-api", "--api-sock", "/a.sock"), 0,
		     "%s", err);
	cr_assert_str_eq(joined(), "/flint --config-file /c.json --no-api --api-sock /a.sock");
	cr_assert_str_eq(p.api_sock_path, "", "--no-api: no socket");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "run", "--kernel", "/k/vmlinux", "--rootfs", "/k/r.ext4"), 0, "%s",
		     err);
	cr_assert_str_eq(p.api_sock_path, "", "flint run serves no API");
}

Test(jail_plan, bad_api_sockets)
{
	cr_assert_eq(BUILD(&p, "--api-sock", "/run/../../etc/s"), -EINVAL);
	cr_assert(strstr(err, "--api-sock /run/../../etc/s: expected a socket path"), "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--api-sock", "/run/"), -EINVAL, "a directory, not a socket");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--api-sock", "s", "--vsock", "uds=/s"), -EINVAL);
	cr_assert(strstr(err, "both /s"), "%s", err);
}

Test(jail_plan, malformed_values_are_flints_to_refuse)
{
	cr_assert_eq(BUILD(&p, "--mem", "lots", "--drive", "ro", "--kernel"), 0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --mem lots --drive ro --kernel");
	cr_assert_eq(p.mem, DEFAULT_MEM);
	cr_assert_eq(p.nfiles, 1);
}

Test(jail_plan, memory_sizes)
{
	static const struct {
		const char *arg;
		uint64_t bytes;
	} cases[] = {{"256", 256ULL << 20},   {"512M", 512ULL << 20}, {"2G", 2ULL << 30},
		     {"65536K", 64ULL << 20}, {"2GiB", 2ULL << 30},   {"-5", DEFAULT_MEM}};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *arg = (char *)cases[i].arg;
		cr_assert_eq(BUILD(&p, "--mem", arg), 0);
		cr_assert_eq(p.mem, cases[i].bytes, "--mem %s", cases[i].arg);
		plan_free(&p);
	}
}

/* flint run's defaults come from where flint itself would look: the first
 * of $FLINT_HOME, beside the exec file, PREFIX/share/flint that has each. */
Test(jail_plan, run_defaults_follow_flint_home)
{
	char home_dir[] = "/tmp/flint-plan-home.XXXXXX", exe_dir[] = "/tmp/flint-plan-exe.XXXXXX";
	char path[PATH_MAX], exe[PATH_MAX], want[2 * PATH_MAX];
	struct home h;

	cr_assert_not_null(mkdtemp(home_dir));
	cr_assert_not_null(mkdtemp(exe_dir));
	/* The kernel in FLINT_HOME, the root image only beside the binary. */
	snprintf(path, sizeof(path), "%s/vmlinux", home_dir);
	fclose(fopen(path, "w"));
	snprintf(path, sizeof(path), "%s/rootfs.ext4", exe_dir);
	fclose(fopen(path, "w"));
	snprintf(exe, sizeof(exe), "%s/flint", exe_dir);
	home_init(&h, home_dir, exe);
	cr_assert_eq(plan_build(&p, exe, &h, ARGC("run", "--", "true"), ARGV("run", "--", "true"),
				err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint run --kernel /vmlinux --rootfs /rootfs.ext4 -- true");
	snprintf(want, sizeof(want), "%s/vmlinux", home_dir);
	cr_assert_str_eq(p.files[1].src, want);
	snprintf(want, sizeof(want), "%s/rootfs.ext4", exe_dir);
	cr_assert_str_eq(p.files[2].src, want);
	plan_free(&p);

	/* Nowhere: the error says where it looked and how to point elsewhere. */
	snprintf(path, sizeof(path), "%s/vmlinux", home_dir);
	unlink(path);
	cr_assert_eq(plan_build(&p, exe, &h, ARGC("run"), ARGV("run"), err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "no vmlinux in") && strstr(err, home_dir) && strstr(err, exe_dir) &&
		      strstr(err, "FLINT_HOME") && strstr(err, "--kernel FILE"),
		  "%s", err);
	snprintf(path, sizeof(path), "%s/rootfs.ext4", exe_dir);
	unlink(path);
	rmdir(home_dir);
	rmdir(exe_dir);
}
