#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_json.h"
#include "plan.h"
#include "snapshot/snapfile.h"

#define ARGV(...) ((char *const[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *const[]){__VA_ARGS__}) / sizeof(char *)))
#define BUILD(p, ...)                                                                              \
	plan_build(p, "/opt/flint/flint", NULL, fake_read, NULL, ARGC(__VA_ARGS__),                \
		   ARGV(__VA_ARGS__), err, 256)

static struct plan p;
static char err[256];

/* The config files the tests' reader knows, by path. */
static const struct {
	const char *path, *text;
} files[] = {
    {"/cfg/vm.json",
     "{\"boot-source\": {\"kernel_image_path\": \"/img/vmlinux\", \"initrd_path\": "
     "\"initrd.gz\", \"boot_args\": \"console=ttyS0\"},"
     " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"/img/root.ext4\", "
     "\"is_root_device\": true, \"is_read_only\": true},"
     " {\"drive_id\": \"data\", \"path_on_host\": \"/disks/vmlinux\", "
     "\"is_root_device\": false}],"
     " \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 512},"
     " \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"run/v.sock\"},"
     " \"logger\": {\"log_path\": \"/logs/fc.log\", \"level\": \"Debug\"},"
     " \"metrics\": {\"metrics_path\": \"/logs/metrics.json\"}}"},
    {"/cfg/bad.json", "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], "
		      "\"machine-config\": {\"vcpu_count\": 0, \"mem_size_mib\": 128}}"},
    {"/cfg/up.json", "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], "
		     "\"metrics\": {\"metrics_path\": \"../m\"}}"},
    {"/cfg/serial.json", "{\"boot-source\": {\"kernel_image_path\": \"/img/vmlinux\"}, "
			 "\"drives\": [], \"serial\": {\"serial_out_path\": \"out/serial.log\"}}"},
    {"/cfg/serial-staged.json",
     "{\"boot-source\": {\"kernel_image_path\": \"/img/vmlinux\"}, \"drives\": [], "
     "\"serial\": {\"serial_out_path\": \"/vmlinux\"}}"},
    {"/cfg/pmem.json",
     "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], "
     "\"pmem\": [{\"id\": \"root\", \"path_on_host\": \"/img/root.pmem\", \"read_only\": "
     "true, \"root_device\": true}, {\"id\": \"data\", \"path_on_host\": \"/d/data.pmem\"}]}"},
    /* A drive that names the config file itself. */
    {"/cfg/user.json", "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], "
		       "\"network-interfaces\": [{\"iface_id\": \"up\", \"backend\": \"user\"}, "
		       "{\"iface_id\": \"t\", \"host_dev_name\": \"tap0\"}]}"},
    {"/cfg/user-fd.json", "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], "
			  "\"network-interfaces\": [{\"iface_id\": \"given\", \"backend\": "
			  "\"user\", \"fd\": 3}]}"},
    {"/cfg/self.json", "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": "
		       "[{\"drive_id\": \"data\", \"path_on_host\": \"/cfg/self.json\", "
		       "\"is_root_device\": false}]}"},
    /* A CPU template named by path, as in Firecracker's file; one that is
     * not there. */
    {"/cfg/cpu.json", "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], "
		      "\"cpu-config\": \"/cfg/t2.json\"}"},
    {"/cfg/t2.json",
     "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", "
     "\"flags\": 0, \"modifiers\": [{\"register\": \"ecx\", \"bitmap\": \"0b0x\"}]}]}"},
    {"/cfg/cpu-gone.json", "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": "
			   "[], \"cpu-config\": \"/cfg/gone.json\"}"},
};

/* A state file the tests' reader knows (state_file), at STATE_PATH. */
#define STATE_PATH "/s/fn.state"
static struct wbuf state;

static int fake_read(void *ctx, const char *path, size_t max, char **text, size_t *len, char *why,
		     size_t whylen)
{
	(void)ctx;
	if (state.p && !strcmp(path, STATE_PATH)) {
		cr_assert_eq(max, SNAP_MAX_FILE, "a state file may be as large as flint reads");
		cr_assert_not_null(*text = malloc(state.len + 1));
		memcpy(*text, state.p, state.len);
		(*text)[state.len] = '\0';
		*len = state.len;
		return 0;
	}
	/* A config file, or a state file that is not one. */
	cr_assert(max == PLAN_CONFIG_MAX || max == SNAP_MAX_FILE);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (!strcmp(files[i].path, path)) {
			*text = strdup(files[i].text);
			*len = strlen(files[i].text);
			return 0;
		}
	snprintf(why, whylen, "No such file or directory");
	return -ENOENT;
}

/* A snapshot's state file of the machine json describes, as flint writes
 * it, for fake_read to give at STATE_PATH. */
static void state_file(const char *json)
{
	struct snap_cpu cpu = {.vendor = "GenuineIntel"};
	struct snap_writer w;
	struct vm_config c;
	char why[256];

	cr_assert_eq(config_json_parse_file(json, strlen(json), &c, why, sizeof(why)), 0, "%s",
		     why);
	cr_assert_eq(snap_writer_init(&w, &cpu, &c, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(snap_writer_add(&w, "vcpu0", "x", 1), 0);
	cr_assert_eq(snap_encode(&w, &state), 0);
	snap_writer_free(&w);
	vm_config_free(&c);
}

/* A function's snapshot as flint serve's registration makes one: flint
 * run's root image (drive0, read-only), a writable data drive, vsock. */
static const char fn_json[] =
    "{\"boot-source\": {\"kernel_image_path\": \"/vmlinux\"},"
    " \"drives\": [{\"drive_id\": \"drive0\", \"path_on_host\": \"/rootfs.ext4\","
    " \"is_root_device\": true, \"is_read_only\": true},"
    " {\"drive_id\": \"data\", \"path_on_host\": \"/host/data.img\", \"is_root_device\": "
    "false}],"
    " \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 256},"
    " \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/tmp/reg/v.sock\"}}";

static void fini(void)
{
	plan_free(&p);
	wbuf_free(&state);
	state = (struct wbuf){0};
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
	cr_assert_eq(
	    plan_build(&p, "/opt/flint/flint", NULL, fake_read, NULL, 0, NULL, err, sizeof(err)), 0,
	    "%s", err);
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

/* --metadata (MMDS's first document) is staged read-only, as a kernel. */
Test(jail_plan, metadata_is_staged)
{
	cr_assert_eq(BUILD(&p, "--metadata", "/etc/fc/meta.json", "--mmds-size-limit", "4096"), 0,
		     "%s", err);
	cr_assert_str_eq(joined(), "/flint --metadata /meta.json --mmds-size-limit 4096");
	cr_assert_eq(p.nfiles, 2);
	cr_assert_str_eq(p.files[1].src, "/etc/fc/meta.json");
	cr_assert_eq(p.files[1].access, PLAN_READ);
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

/* flint's parser decides: what it refuses is refused, with its message;
 * getopt_long's abbreviations are understood as flint understands them. */
Test(jail_plan, flint_refuses_what_flint_refuses)
{
	static const struct {
		const char *args[4];
		const char *msg;
	} cases[] = {
	    {{"--kernel", "/k", "--frob"}, "unknown option --frob (see --help)"},
	    {{"--new-opt=/etc/x"}, "unknown option --new-opt=/etc/x (see --help)"},
	    {{"--kernel", "/k", "stray"}, "unexpected argument stray; put guest commands after --"},
	    {{"--kernel"}, "--kernel needs a value"},
	    {{"--drive", "path=/d"}, "no kernel given"},
	    {{"--kernel", "/k", "--drive", "ro"}, "--drive ro: no path=FILE"},
	    {{"--no-api", "--kernel", "/k"}, "--no-api needs --config-file"},
	    {{"run", "--kernel", "/k", "--rootfs"}, "--rootfs needs a value"},
	    {{"--rootfs", "/r"}, "is an option of flint run"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int n = 0;
		while (n < 4 && cases[i].args[n])
			n++;
		cr_assert_eq(plan_build(&p, "/opt/flint/flint", NULL, fake_read, NULL, n,
					(char *const *)cases[i].args, err, sizeof(err)),
			     -EINVAL, "%s", cases[i].args[0]);
		cr_assert(strstr(err, cases[i].msg), "%s: %s", cases[i].args[0], err);
		plan_free(&p);
	}
}

Test(jail_plan, abbreviations_and_hidden_options)
{
	cr_assert_eq(BUILD(&p, "--seccomp-test-forbidden", "vcpu", "--ker=/k2", "--ini", "/i/rd",
			   "--drive=path=/d/x.img,ro", "--stats"),
		     0, "%s", err);
	cr_assert_str_eq(joined(),
			 "/flint --seccomp-test-forbidden vcpu --ker=/k2 --ini /rd "
			 "--drive=path=/x.img,ro --stats",
			 "'--ker' abbreviates --kernel, as getopt_long allows");
	cr_assert_eq(p.nfiles, 4);
	cr_assert_str_eq(p.files[1].src, "/k2");
	cr_assert_str_eq(p.files[3].src, "/d/x.img");
	plan_free(&p);
	/* --drive and --drive-override: "--dri" is both, and flint refuses it. */
	cr_assert_eq(BUILD(&p, "--ker=/k2", "--dri=path=/d/x.img,ro"), -EINVAL);
	cr_assert(strstr(err, "unknown option --dri=path=/d/x.img,ro"), "%s", err);
}

/* Only the values flint reads as paths are rewritten: an --append or
 * --cmdline word that looks like a drive spec is the guest's. */
Test(jail_plan, only_flints_paths_are_rewritten)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/k/vmlinux", "--append", "path=/d/a.img",
			   "--cmdline=uds=/x,path=/d/a.img", "--drive", "path=/d/a.img,id=a",
			   "--vsock", "cid=3,uds=/run/v", "--", "--drive", "path=/d/a.img"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --kernel /vmlinux --append path=/d/a.img "
				   "--cmdline=uds=/x,path=/d/a.img --drive path=/a.img,id=a "
				   "--vsock cid=3,uds=/run/v -- --drive path=/d/a.img");
	cr_assert_eq(p.nfiles, 3);
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

/* flint run's --image: staged read-only as a file of its own, never
 * merged with a drive of the same path (a directory there is replaced by
 * the jailer's build, plan_built), and the option rewritten. */
Test(jail_plan, run_image_is_staged_and_rewritten)
{
	cr_assert_eq(BUILD(&p, "run", "--image", "/imgs/userland", "--drive",
			   "path=/imgs/userland,ro", "--scratch", "64M", "--", "true"),
		     0, "%s", err);
	cr_assert_str_eq(joined(),
			 "/flint run --kernel /vmlinux --rootfs /rootfs.ext4 --image "
			 "/userland --drive path=/2-userland,ro --scratch /scratch.ext4 -- "
			 "true");
	cr_assert_eq(p.nfiles, 5);
	cr_assert_str_eq(p.files[3].src, "/imgs/userland");
	cr_assert_eq(p.files[3].access, PLAN_READ);
	cr_assert(p.files[3].image, "the jailer resolves it");
	cr_assert_not(p.files[3].rootfs);
	cr_assert_not(p.files[3].built);
	cr_assert_str_eq(p.files[4].src, "/imgs/userland");
	cr_assert_not(p.files[4].image, "the drive is a drive");
	cr_assert_not(p.files[2].image, "flint run's default root image is staged as it is");

	/* The jailer's build in its place, under the same in-jail name. */
	cr_assert_eq(plan_built(&p, 3, "/root/.cache/flint/images/abc.ext4"), 0);
	cr_assert_str_eq(p.files[3].src, "/root/.cache/flint/images/abc.ext4");
	cr_assert(p.files[3].built);
	cr_assert_str_eq(p.files[3].name, "userland");
	cr_assert_str_eq(p.files[4].src, "/imgs/userland", "the drive is untouched");
}

Test(jail_plan, run_rootfs_given_may_be_built)
{
	cr_assert_eq(
	    BUILD(&p, "run", "--rootfs=/imgs/root.tar", "--image=/imgs/root.tar", "--", "true"), 0,
	    "%s", err);
	cr_assert_str_eq(joined(), "/flint run --kernel /vmlinux --rootfs=/root.tar "
				   "--image=/2-root.tar -- true");
	cr_assert(p.files[2].image && p.files[2].rootfs, "--rootfs takes any file");
	cr_assert(p.files[3].image && !p.files[3].rootfs, "--image must be an image");
}

/* flint run --scratch SIZE: made by the jailer in the jail (flint there
 * has no mke2fs), under a name of its own, and given to flint as a path. */
Test(jail_plan, run_scratch_is_made_in_the_jail)
{
	cr_assert_eq(BUILD(&p, "run", "--image", "/i/u.ext4", "--scratch", "64M", "--drive",
			   "path=/d/scratch.ext4", "--", "true"),
		     0, "%s", err);
	cr_assert_str_eq(joined(),
			 "/flint run --kernel /vmlinux --rootfs /rootfs.ext4 --image "
			 "/u.ext4 --scratch /scratch.ext4 --drive path=/2-scratch.ext4 -- "
			 "true");
	cr_assert_eq(p.scratch, 64ULL << 20);
	cr_assert_str_eq(p.scratch_name, "scratch.ext4");
	plan_free(&p);

	cr_assert_eq(BUILD(&p, "run", "--image=/i/scratch.ext4", "--scr=1G", "--", "true"), 0, "%s",
		     err);
	cr_assert_str_eq(joined(), "/flint run --kernel /vmlinux --rootfs /rootfs.ext4 "
				   "--image=/scratch.ext4 --scr=/2-scratch.ext4 -- true");
	cr_assert_eq(p.scratch, 1ULL << 30);
	plan_free(&p);

	cr_assert_eq(BUILD(&p, "run", "--image", "/i/u.ext4", "--scratch", "64M", "--log-path",
			   "/scratch.ext4", "--", "true"),
		     -EINVAL);
	cr_assert_not_null(
	    strstr(err, "the log file /scratch.ext4: /scratch.ext4 is the scratch disk"), "%s",
	    err);
}

/* --net user: a passt for the jailer to start per interface, its socket
 * the lowest descriptor from 3 on that no kept one has, ",fd=N" after the
 * interface's own argument; a user interface given fd=N keeps it. */
Test(jail_plan, net_user_gets_a_passt)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/k", "--net", "user", "--net", "tap=t0",
			   "--net=user,id=b", "--append", "--net user"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --kernel /k --net user,fd=3 --net tap=t0 "
				   "--net=user,id=b,fd=4 --append --net user");
	cr_assert_eq(p.npasst, 2);
	cr_assert_eq(p.passt[0].net, 0);
	cr_assert_eq(p.passt[0].fd, 3);
	cr_assert_eq(p.passt[1].net, 2);
	cr_assert_eq(p.passt[1].fd, 4);
	cr_assert_eq(p.nkeep, 0);
	plan_free(&p);

	cr_assert_eq(BUILD(&p, "run", "--status-fd", "3", "--net", "user,fd=5", "--net", "user",
			   "--", "true"),
		     0, "%s", err);
	cr_assert_str_eq(joined(),
			 "/flint run --kernel /vmlinux --rootfs /rootfs.ext4 --status-fd 3 "
			 "--net user,fd=5 --net user,fd=4 -- true");
	cr_assert_eq(p.nkeep, 2, "3 and 5 are kept");
	cr_assert_eq(p.keep[1].fd, 5);
	cr_assert_str_eq(p.keep[1].opt, "--net user,fd=");
	cr_assert_eq(p.npasst, 1);
	cr_assert_eq(p.passt[0].net, 1);
	cr_assert_eq(p.passt[0].fd, 4);
}

/* A config file's user interfaces get passts as --net user's do (their
 * descriptors in the copy's "fd"); a file that names a descriptor itself
 * is refused (the jail's user wrote it: it would pick one of the
 * jailer's); a snapshot's user interface, which flint would have to
 * start, is refused unless --net-override gives it a tap. */
Test(jail_plan, user_interfaces_of_a_config_file_and_a_snapshot)
{
	struct vm_config c;
	char why[256];

	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/user-fd.json", "--no-api"), -EINVAL);
	cr_assert_not_null(strstr(err,
				  "config file /cfg/user-fd.json: interface 'given' names a "
				  "descriptor (\"fd\": 3): flint-jail starts its passt itself"),
			   "%s", err);
	cr_assert_eq(p.nkeep, 0);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/user.json", "--no-api"), 0, "%s", err);
	cr_assert_eq(p.nkeep, 0);
	cr_assert_eq(p.npasst, 1);
	cr_assert_eq(p.passt[0].net, 0);
	cr_assert_eq(p.passt[0].fd, 3);
	cr_assert_str_eq(p.passt[0].id, "up");
	cr_assert_not_null(p.files[1].content);
	cr_assert_eq(config_json_parse_file(p.files[1].content, strlen(p.files[1].content), &c, why,
					    sizeof(why)),
		     0, "%s", why);
	cr_assert_eq(c.nets[0].fd, 3, "%s", p.files[1].content);
	cr_assert_eq(c.nets[1].fd, 0);
	cr_assert_str_eq(c.nets[1].host_dev_name, "tap0");
	cr_assert_eq(c.nnets, 2);
	vm_config_free(&c);
	plan_free(&p);

	state_file("{\"boot-source\": {\"kernel_image_path\": \"/vmlinux\"}, \"drives\": [],"
		   " \"network-interfaces\": [{\"iface_id\": \"eth0\", \"backend\": \"user\"}]}");
	cr_assert_eq(BUILD(&p, "--restore", STATE_PATH, "--mem-file", "/s/fn.mem"), -EOPNOTSUPP);
	cr_assert_not_null(strstr(err, "the snapshot's interface 'eth0' is a user interface (passt)"
				       ", which flint in a jail cannot start; give it a tap with "
				       "--net-override eth0=TAP"),
			   "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--restore", STATE_PATH, "--mem-file", "/s/fn.mem", "--net-override",
			   "eth0=tap3"),
		     0, "%s", err);
	cr_assert_eq(p.npasst, 0);
}

/* A state file whose configuration names a descriptor (flint never writes
 * one: a crafted file) is read without it: a restored flint would take
 * whatever it has open under that number for passt's socket. */
Test(jail_plan, a_snapshot_keeps_no_descriptor)
{
	const char *json = "{\"boot-source\": {\"kernel_image_path\": \"/vmlinux\"}, "
			   "\"drives\": [], \"network-interfaces\": [{\"iface_id\": \"eth0\", "
			   "\"backend\": \"user\", \"fd\": 5}]}";
	struct snap_cpu cpu = {.vendor = "GenuineIntel"};
	struct snap_writer w;
	struct vm_config c;
	struct snap s = {0};
	struct wbuf b = {0};
	char why[256];

	cr_assert_eq(config_json_parse_file(json, strlen(json), &c, why, sizeof(why)), 0, "%s",
		     why);
	cr_assert_eq(c.nets[0].fd, 5);
	cr_assert_eq(snap_writer_init(&w, &cpu, &c, why, sizeof(why)), 0, "%s", why);
	free(w.config_json);
	cr_assert_not_null(w.config_json = strdup(json));
	cr_assert_eq(snap_writer_add(&w, "vcpu0", "x", 1), 0);
	cr_assert_eq(snap_encode(&w, &b), 0);
	cr_assert_eq(snap_read(b.p, b.len, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert(s.config.nets[0].user);
	cr_assert_eq(s.config.nets[0].fd, 0);
	snap_free(&s);
	wbuf_free(&b);
	snap_writer_free(&w);
	vm_config_free(&c);
}

/* --restore (flint serve's restored VM): the state and memory files staged
 * read-only, each drive's image from --drive-override staged as the
 * snapshot's drive uses it, the vsock override's directory made, the
 * control descriptor kept; the snapshot's machine gives the memory size. */
Test(jail_plan, restore_is_staged_and_rewritten)
{
	state_file(fn_json);
	cr_assert_eq(BUILD(&p, "--restore", STATE_PATH, "--mem-file", "/s/fn.mem",
			   "--vsock-override", "run/v.sock", "--console", "none", "--control-fd",
			   "3", "--drive-override", "drive0=/img/rootfs.ext4",
			   "--drive-override=data=/d/data.img"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --restore /fn.state --mem-file /fn.mem --vsock-override "
				   "/run/v.sock --console none --control-fd 3 --drive-override "
				   "drive0=/rootfs.ext4 --drive-override=data=/data.img");
	cr_assert_eq(p.nfiles, 5);
	cr_assert_str_eq(p.files[1].src, STATE_PATH);
	cr_assert_eq(p.files[1].access, PLAN_READ);
	cr_assert_str_eq(p.files[2].src, "/s/fn.mem");
	cr_assert_eq(p.files[2].access, PLAN_READ);
	cr_assert_str_eq(p.files[3].src, "/img/rootfs.ext4");
	cr_assert_eq(p.files[3].access, PLAN_READ, "is_read_only in the snapshot");
	cr_assert(p.files[3].image && p.files[3].rootfs,
		  "read-only: a directory or tar archive there is made into its image");
	cr_assert_str_eq(p.files[4].src, "/d/data.img");
	cr_assert_eq(p.files[4].access, PLAN_READ_WRITE, "writable in the snapshot");
	cr_assert_not(p.files[4].image, "a writable drive is staged as it is");
	cr_assert_eq(p.mem, 256ULL << 20, "the snapshot's machine");
	cr_assert_str_eq(p.vsock_path, "/run/v.sock");
	cr_assert_str_eq(p.api_sock_path, "", "a restore without --api-sock serves no API");
	cr_assert_eq(p.noutputs, 0);
	cr_assert_eq(p.nkeep, 1);
	cr_assert_eq(p.keep[0].fd, 3);
	cr_assert_str_eq(p.keep[0].opt, "--control-fd");
	cr_assert_not(p.run_tmp);
}

/* flint run --restore (flint serve's request VM): its two descriptors
 * kept, its vsock socket its own in /tmp; a diff, a loading set and one to
 * record. */
Test(jail_plan, run_restore_keeps_its_descriptors)
{
	state_file(fn_json);
	cr_assert_eq(BUILD(&p, "run", "--restore", STATE_PATH, "--mem-file", "/s/fn.mem",
			   "--mem-diff", "/s/d.mem", "--workset", "/s/ws", "--record-workset",
			   "out/ws", "--timeout", "5", "--wait-fd", "3", "--status-fd", "4",
			   "--timings", "--env", "K=/x", "--workdir", "/w", "--drive-override",
			   "drive0=/img/rootfs.ext4", "--drive-override", "data=/d/data.img", "--",
			   "cat", "/s/fn.mem"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint run --restore /fn.state --mem-file /fn.mem --mem-diff "
				   "/d.mem --workset /ws --record-workset /out/ws --timeout 5 "
				   "--wait-fd 3 --status-fd 4 --timings --env K=/x --workdir /w "
				   "--drive-override drive0=/rootfs.ext4 --drive-override "
				   "data=/data.img -- cat /s/fn.mem");
	cr_assert_eq(p.nfiles, 7);
	cr_assert_str_eq(p.files[3].src, "/s/d.mem");
	cr_assert_str_eq(p.files[4].src, "/s/ws");
	cr_assert_eq(p.noutputs, 1);
	cr_assert_str_eq(p.outputs[0].path, "/out/ws");
	cr_assert_str_eq(p.outputs[0].what, "loading set");
	cr_assert(p.run_tmp, "flint run's own vsock socket, in /tmp");
	cr_assert_str_eq(p.vsock_path, "");
	cr_assert_eq(p.nkeep, 2);
	cr_assert(p.keep[0].fd == 3 && !strcmp(p.keep[0].opt, "--wait-fd"));
	cr_assert(p.keep[1].fd == 4 && !strcmp(p.keep[1].opt, "--status-fd"));
	cr_assert_eq(p.mem, 256ULL << 20);
}

/* A /proc (of processes only) for a --restore, flint's or flint run's:
 * its reset in place and its loading set read /proc/self/pagemap. Nothing
 * else flint does in a jail needs one, so nothing else gets it. */
Test(jail_plan, proc_only_for_a_restore)
{
	state_file(fn_json);
	cr_assert_eq(BUILD(&p, "--restore", STATE_PATH, "--mem-file", "/s/fn.mem", "--control-fd",
			   "3", "--drive-override", "drive0=/img/rootfs.ext4", "--drive-override",
			   "data=/d/data.img"),
		     0, "%s", err);
	cr_assert(p.proc, "flint --restore");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "run", "--restore", STATE_PATH, "--mem-file", "/s/fn.mem",
			   "--drive-override", "drive0=/img/rootfs.ext4", "--drive-override",
			   "data=/d/data.img", "--", "true"),
		     0, "%s", err);
	cr_assert(p.proc, "flint run --restore");
	plan_free(&p);
	static const char *const none[][10] = {
	    {"--kernel", "/img/vmlinux"},
	    {"run", "--kernel", "/img/vmlinux", "--rootfs", "/img/r.img", "--", "true"},
	    {"run", "--kernel", "/img/vmlinux", "--rootfs", "/img/r.img", "--save-snapshot",
	     "/s.state", "--save-mem", "/s.mem"},
	    {"--config-file", "/cfg/vm.json"},
	    {"--api-sock", "/run/api.sock"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(none); i++) {
		char *av[10] = {0};
		int n = 0;
		for (; n < 9 && none[i][n]; n++)
			av[n] = (char *)none[i][n];
		cr_assert_eq(plan_build(&p, "/opt/flint/flint", NULL, fake_read, NULL, n, av, err,
					sizeof(err)),
			     0, "%s: %s", av[0], err);
		cr_assert_not(p.proc, "no /proc for %s %s", av[0], av[1]);
		plan_free(&p);
	}
}

/* /dev and /proc are the jailer's at the top level: a file of that name is
 * staged under another (it would be refused when /dev or /proc is made). */
Test(jail_plan, dev_and_proc_are_not_staged_names)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/img/proc", "--drive", "path=/d/dev,id=d", "--drive",
			   "path=/d/devs,id=e"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --kernel /2-proc --drive path=/2-dev,id=d --drive "
				   "path=/devs,id=e");
	cr_assert_str_eq(p.files[1].name, "2-proc");
	cr_assert_str_eq(p.files[2].name, "2-dev");
}

/* Without --vsock-override, flint binds the socket the snapshot recorded:
 * a path in the jail, whose directory is made. */
Test(jail_plan, restore_vsock_from_the_snapshot)
{
	state_file(fn_json);
	cr_assert_eq(BUILD(&p, "--restore", STATE_PATH, "--mem-file", "/s/fn.mem",
			   "--drive-override", "drive0=/img/rootfs.ext4", "--drive-override",
			   "data=/d/data.img"),
		     0, "%s", err);
	cr_assert_str_eq(p.vsock_path, "/tmp/reg/v.sock");
}

/* What flint would refuse, or could not open in the jail, is refused
 * before anything is made. */
Test(jail_plan, restore_refusals)
{
	static const struct {
		const char *args[10];
		const char *msg;
	} cases[] = {
	    {{"--restore", STATE_PATH, "--uffd-sock", "/s/uffd.sock", "--drive-override",
	      "drive0=/r", "--drive-override", "data=/d"},
	     "--uffd-sock is not supported under flint-jail"},
	    {{"--restore", STATE_PATH, "--mem-file", "/s/fn.mem", "--drive-override", "drive0=/r",
	      "--drive-override", "data=/d", "--drive-override", "scratch=/x"},
	     "--drive-override scratch=/x: the snapshot " STATE_PATH " has no drive of that id"},
	    {{"--restore", STATE_PATH, "--mem-file", "/s/fn.mem", "--drive-override", "drive0=/r"},
	     "the snapshot's drive 'data' is the image /host/data.img, which is not in the jail; "
	     "give it with --drive-override data=PATH"},
	    {{"--restore", "/s/none.state", "--mem-file", "/s/fn.mem"},
	     "--restore /s/none.state: No such file or directory"},
	    {{"--restore", "/cfg/vm.json", "--mem-file", "/s/fn.mem"},
	     "--restore /cfg/vm.json: not a flint snapshot"},
	    {{"--restore", STATE_PATH, "--mem-file", "/s/fn.mem", "--drive-override", "drive0=/r",
	      "--drive-override", "data=/d", "--vsock-override", "/fn.mem"},
	     "the vsock socket /fn.mem: /fn.mem is where /s/fn.mem is staged"},
	    {{"--restore", STATE_PATH, "--mem-file", "/s/fn.mem", "--drive-override", "drive0=/r",
	      "--drive-override", "data=/d", "--vsock-override", "../v.sock"},
	     "--vsock-override ../v.sock: expected a socket path"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int n = 0;
		while (n < 10 && cases[i].args[n])
			n++;
		state_file(fn_json);
		cr_assert_lt(plan_build(&p, "/opt/flint/flint", NULL, fake_read, NULL, n,
					(char *const *)cases[i].args, err, sizeof(err)),
			     0, "case %zu", i);
		cr_assert(strstr(err, cases[i].msg), "case %zu: %s", i, err);
		plan_free(&p);
		wbuf_free(&state);
		state = (struct wbuf){0};
	}
}

/* flint run --save-snapshot (flint serve's registration): both files are
 * flint's outputs in the jail, for the caller to collect. */
Test(jail_plan, save_snapshot_outputs)
{
	cr_assert_eq(BUILD(&p, "run", "--kernel", "/k/vmlinux", "--rootfs", "/i/rootfs.ext4",
			   "--mem", "64M", "--vcpus", "1", "--timings", "--save-snapshot",
			   "snap/fn.state", "--save-mem=/snap/fn.mem", "--save-after", "--",
			   "true"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint run --kernel /vmlinux --rootfs /rootfs.ext4 --mem 64M "
				   "--vcpus 1 --timings --save-snapshot /snap/fn.state "
				   "--save-mem=/snap/fn.mem --save-after -- true");
	cr_assert_eq(p.noutputs, 2);
	cr_assert_str_eq(p.outputs[0].path, "/snap/fn.state");
	cr_assert_str_eq(p.outputs[0].what, "snapshot state");
	cr_assert_not(p.outputs[0].make, "flint writes it");
	cr_assert_str_eq(p.outputs[1].path, "/snap/fn.mem");
	cr_assert_str_eq(p.outputs[1].what, "snapshot memory");
	cr_assert_eq(p.nfiles, 3, "nothing staged for them");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "run", "--kernel", "/k/vmlinux", "--rootfs", "/i/rootfs.ext4",
			   "--save-snapshot", "/fn.state", "--save-mem", "/rootfs.ext4"),
		     -EINVAL);
	cr_assert(strstr(err, "the snapshot memory file /rootfs.ext4: /rootfs.ext4 is where "
			      "/i/rootfs.ext4 is staged"),
		  "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "run", "--kernel", "/k/vmlinux", "--rootfs", "/i/rootfs.ext4",
			   "--save-snapshot", "../fn.state", "--save-mem", "/fn.mem"),
		     -EINVAL);
	cr_assert(strstr(err, "--save-snapshot ../fn.state: expected a path inside the jail"), "%s",
		  err);
}

Test(jail_plan, bad_values)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/k", "--vsock", "cid=3,uds=/run/../../etc/s"), -EINVAL);
	cr_assert(strstr(err, "--vsock uds=/run/../../etc/s"), "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/boot/"), -EINVAL);
	cr_assert(strstr(err, "/boot/ does not name a file"), "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/k", "--initrd", ".."), -EINVAL);
}

Test(jail_plan, api_socket_is_made_inside_the_jail)
{
	cr_assert_eq(BUILD(&p, "--api-sock", "api.sock", "--kernel", "/k", "--vsock",
			   "cid=3,uds=/run/v.sock"),
		     0, "%s", err);
	cr_assert_str_eq(joined(),
			 "/flint --api-sock /api.sock --kernel /k --vsock cid=3,uds=/run/v.sock",
			 "relative to flint's working directory, /");
	cr_assert_str_eq(p.api_sock_path, "/api.sock");
	cr_assert_eq(p.nfiles, 2, "a socket is made by flint, not staged");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--api-sock=/run/fc/api.sock", "--kernel", "/k", "--", "x"), 0, "%s",
		     err);
	cr_assert_str_eq(joined(), "/flint --api-sock=/run/fc/api.sock --kernel /k -- x");
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
	cr_assert_eq(
	    BUILD(&p, "--config-file", "/cfg/vm.json", "--no-api", "--api-sock", "/a.sock"), 0,
	    "%s", err);
	cr_assert_str_eq(joined(), "/flint --config-file /vm.json --no-api --api-sock /a.sock");
	cr_assert_str_eq(p.api_sock_path, "", "--no-api: no socket");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "run", "--kernel", "/k/vmlinux", "--rootfs", "/k/r.ext4", "--", "x"),
		     0, "%s", err);
	cr_assert_str_eq(p.api_sock_path, "", "flint run serves no API");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--check-kvm"), 0, "%s", err);
	cr_assert_str_eq(p.api_sock_path, "", "--check-kvm serves no API");
}

Test(jail_plan, bad_api_sockets)
{
	cr_assert_eq(BUILD(&p, "--api-sock", "/run/../../etc/s"), -EINVAL);
	cr_assert(strstr(err, "--api-sock /run/../../etc/s: expected a socket path"), "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--api-sock", "/run/"), -EINVAL, "a directory, not a socket");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--api-sock", "s", "--kernel", "/k", "--vsock", "cid=3,uds=/s"),
		     -EINVAL);
	cr_assert(strstr(err, "both /s"), "%s", err);
}

/* --mem as flint reads it (cli_parse_size, then whole MiB as
 * vm_config_from_cli wants), for the cgroup memory check; what flint
 * refuses is refused with its message, not taken for flint's default. */
Test(jail_plan, memory_sizes)
{
	static const struct {
		const char *arg;
		uint64_t bytes; /* 0: refused */
		const char *msg;
	} cases[] = {
	    {"256", 256ULL << 20, NULL},
	    {"512M", 512ULL << 20, NULL},
	    {"2G", 2ULL << 30, NULL},
	    {"65536K", 64ULL << 20, NULL},
	    {"2GiB", 2ULL << 30, NULL},
	    {"1gb", 1ULL << 30, NULL},
	    {"-5", 0, "--mem -5: expected a size"},
	    {"lots", 0, "--mem lots: expected a size"},
	    {"1T", 1ULL << 40, NULL},
	    {"2T", 0, "--mem 2T: expected a size"},
	    {"100M5", 0, "--mem 100M5: expected a size"},
	    {"17K", 0, "from 16M to 1024G"},
	    {"2048G", 0, "--mem 2048G: expected a size such as 128M or 2G, from 16M to 1024G"},
	    {"16388K", 0, "--mem: 16388 KiB is not a whole number of MiB"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *arg = (char *)cases[i].arg;
		int r = BUILD(&p, "--kernel", "/k", "--mem", arg);
		if (cases[i].bytes) {
			cr_assert_eq(r, 0, "--mem %s: %s", arg, err);
			cr_assert_eq(p.mem, cases[i].bytes, "--mem %s", arg);
		} else {
			cr_assert_eq(r, -EINVAL, "--mem %s", arg);
			cr_assert(strstr(err, cases[i].msg), "--mem %s: %s", arg, err);
		}
		plan_free(&p);
	}
	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/vm.json"), 0, "%s", err);
	cr_assert_eq(p.mem, 512ULL << 20, "the config file's mem_size_mib");
}

/* --log-path and --metrics-path are paths in the jail, as --api-sock's:
 * their directories are made there; the log file too, which flint opens
 * but does not create. */
Test(jail_plan, log_and_metrics_paths)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/k/vmlinux", "--log-path", "logs/flint.log",
			   "--metrics-path=/m/metrics.json", "--level", "Debug"),
		     0, "%s", err);
	cr_assert_str_eq(joined(), "/flint --kernel /vmlinux --log-path /logs/flint.log "
				   "--metrics-path=/m/metrics.json --level Debug");
	cr_assert_eq(p.noutputs, 2);
	cr_assert_str_eq(p.outputs[0].path, "/logs/flint.log");
	cr_assert_str_eq(p.outputs[0].what, "log");
	cr_assert(p.outputs[0].make, "flint's logger does not create its file");
	cr_assert_str_eq(p.outputs[1].path, "/m/metrics.json");
	cr_assert_not(p.outputs[1].make, "flint creates the metrics file");
	cr_assert_eq(p.nfiles, 2, "outputs are not staged from the host");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--log-path", "/run/../../var/log/x"), -EINVAL);
	cr_assert(strstr(err, "--log-path /run/../../var/log/x: expected a path inside the jail"),
		  "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--metrics-path", "/run/flint.socket"), -EINVAL);
	cr_assert(strstr(err, "the metrics file and a socket are both /run/flint.socket"), "%s",
		  err);
}

/* A config file: read (as the jail's user, by the caller's reader), the
 * files it names staged, its sockets and outputs made in the jail, and a
 * copy with the in-jail paths passed to flint. */
Test(jail_plan, config_file_is_staged_rewritten)
{
	struct vm_config c;
	char why[256];

	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/vm.json", "--log-path", "/logs/cli.log"), 0,
		     "%s", err);
	cr_assert_str_eq(joined(), "/flint --config-file /vm.json --log-path /logs/cli.log");
	cr_assert_eq(p.nfiles, 6);
	cr_assert_str_eq(p.files[1].name, "vm.json");
	cr_assert_str_eq(p.files[1].src, "/cfg/vm.json");
	cr_assert_not_null(p.files[1].content, "written, not staged");
	cr_assert_str_eq(p.files[2].src, "/img/vmlinux");
	cr_assert_eq(p.files[2].access, PLAN_READ);
	cr_assert_str_eq(p.files[3].src, "initrd.gz");
	cr_assert_str_eq(p.files[4].src, "/img/root.ext4");
	cr_assert_eq(p.files[4].access, PLAN_READ, "is_read_only");
	cr_assert_str_eq(p.files[5].src, "/disks/vmlinux");
	cr_assert_str_eq(p.files[5].name, "2-vmlinux");
	cr_assert_eq(p.files[5].access, PLAN_READ_WRITE);
	cr_assert_str_eq(p.vsock_path, "/run/v.sock");
	cr_assert_str_eq(p.api_sock_path, PLAN_DEFAULT_API_SOCK, "served: no --no-api");
	cr_assert_eq(p.noutputs, 3);
	cr_assert_str_eq(p.outputs[0].path, "/logs/fc.log");
	cr_assert(p.outputs[0].make);
	cr_assert_str_eq(p.outputs[1].path, "/logs/metrics.json");
	cr_assert_str_eq(p.outputs[2].path, "/logs/cli.log");
	cr_assert_eq(p.files[0].content, NULL);

	/* The copy is the same machine, with the jail's paths. */
	cr_assert_eq(config_json_parse_file(p.files[1].content, strlen(p.files[1].content), &c, why,
					    sizeof(why)),
		     0, "%s", why);
	cr_assert_str_eq(c.boot.kernel_image_path, "/vmlinux");
	cr_assert_str_eq(c.boot.initrd_path, "/initrd.gz");
	cr_assert_str_eq(c.boot.boot_args, "console=ttyS0");
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(c.drives[0].path_on_host, "/root.ext4");
	cr_assert(c.drives[0].is_root_device && c.drives[0].is_read_only);
	cr_assert_str_eq(c.drives[1].path_on_host, "/2-vmlinux");
	cr_assert_eq(c.machine.vcpu_count, 2);
	cr_assert_str_eq(c.vsock.uds_path, "/run/v.sock");
	cr_assert_str_eq(c.logger.log_path, "/logs/fc.log");
	cr_assert_eq(c.logger.level, VMC_LOG_DEBUG);
	cr_assert_str_eq(c.metrics.metrics_path, "/logs/metrics.json");
	vm_config_free(&c);
}

/* A config file's pmem devices: their files staged, read-only or
 * read-write as the device maps them, and their paths rewritten; a
 * snapshot with one cannot be restored in a jail, which has no way to
 * bring the file in. */
Test(jail_plan, config_file_pmem_is_staged)
{
	struct vm_config c;
	char why[256];

	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/pmem.json"), 0, "%s", err);
	cr_assert_eq(p.nfiles, 5);
	cr_assert_str_eq(p.files[3].src, "/img/root.pmem");
	cr_assert_eq(p.files[3].access, PLAN_READ);
	cr_assert_str_eq(p.files[4].src, "/d/data.pmem");
	cr_assert_eq(p.files[4].access, PLAN_READ_WRITE);
	cr_assert_eq(config_json_parse_file(p.files[1].content, strlen(p.files[1].content), &c, why,
					    sizeof(why)),
		     0, "%s", why);
	cr_assert_eq(c.npmem, 2);
	cr_assert_str_eq(c.pmem[0].path_on_host, "/root.pmem");
	cr_assert(c.pmem[0].root_device && c.pmem[0].read_only);
	cr_assert_str_eq(c.pmem[1].path_on_host, "/data.pmem");
	vm_config_free(&c);
	plan_free(&p);

	static const char with_pmem[] =
	    "{\"boot-source\": {\"kernel_image_path\": \"/vmlinux\"}, \"drives\": [],"
	    " \"pmem\": [{\"id\": \"p0\", \"path_on_host\": \"/host/p0.img\"}]}";
	state_file(with_pmem);
	cr_assert_lt(BUILD(&p, "--restore", STATE_PATH, "--mem-file", "/s/fn.mem"), 0);
	cr_assert(strstr(err, "the snapshot's pmem device 'p0' is the file /host/p0.img, which "
			      "flint-jail has no way to bring into the jail"),
		  "%s", err);
}

/* A CPU template the config file names is read as the jail's user (the
 * plan's reader) and carried in the copy itself: flint in the jail reads
 * no host path. */
Test(jail_plan, config_file_cpu_template_read_by_the_reader)
{
	struct vm_config c;
	char why[256];

	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/cpu.json"), 0, "%s", err);
	cr_assert_eq(config_json_parse_file(p.files[1].content, strlen(p.files[1].content), &c, why,
					    sizeof(why)),
		     0, "%s", why);
	cr_assert(c.cpu_config.enabled);
	cr_assert_eq(c.cpu_config.ncpuid, 1);
	cr_assert_eq(c.cpu_config.cpuid[0].mask[2], 2u);
	vm_config_free(&c);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/cpu-gone.json"), -EINVAL);
	cr_assert(strstr(err, "cpu-config: /cfg/gone.json: No such file or directory"), "%s", err);
}

Test(jail_plan, config_file_errors)
{
	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/none.json"), -ENOENT);
	cr_assert_str_eq(err, "config file /cfg/none.json: No such file or directory");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/bad.json"), -EINVAL);
	cr_assert(strstr(err, "config file /cfg/bad.json: ") && strstr(err, "vcpu_count"), "%s",
		  err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/up.json"), -EINVAL);
	cr_assert(strstr(err, "metrics metrics_path ../m: expected a path inside the jail"), "%s",
		  err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/vm.json", "--kernel", "/k"), -EINVAL);
	cr_assert(strstr(err, "--config-file describes the whole machine"), "%s", err);
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
	cr_assert_eq(plan_build(&p, exe, &h, fake_read, NULL, ARGC("run", "--", "true"),
				ARGV("run", "--", "true"), err, sizeof(err)),
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
	cr_assert_eq(plan_build(&p, exe, &h, fake_read, NULL, ARGC("run", "--", "true"),
				ARGV("run", "--", "true"), err, sizeof(err)),
		     -ENOENT);
	cr_assert(strstr(err, "no vmlinux in") && strstr(err, home_dir) && strstr(err, exe_dir) &&
		      strstr(err, "FLINT_HOME") && strstr(err, "--kernel FILE"),
		  "%s", err);
	snprintf(path, sizeof(path), "%s/rootfs.ext4", exe_dir);
	unlink(path);
	rmdir(home_dir);
	rmdir(exe_dir);
}

/* The config file's serial output is a path in the jail, as its metrics
 * path: flint creates it (O_CREAT), so its directory is made, and the
 * copy names the in-jail path, not the host's. */
Test(jail_plan, config_file_serial_output)
{
	struct vm_config c;
	char why[256];

	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/serial.json", "--no-api"), 0, "%s", err);
	cr_assert_eq(p.noutputs, 1);
	cr_assert_str_eq(p.outputs[0].path, "/out/serial.log");
	cr_assert_str_eq(p.outputs[0].what, "serial output");
	cr_assert_not(p.outputs[0].make, "flint creates it");
	cr_assert_eq(config_json_parse_file(p.files[1].content, strlen(p.files[1].content), &c, why,
					    sizeof(why)),
		     0, "%s", why);
	cr_assert(c.serial.enabled);
	cr_assert_str_eq(c.serial.serial_out_path, "/out/serial.log");
	vm_config_free(&c);
}

/* A socket or an output at (or under) a staged file's name is refused:
 * flint would append its metrics to a read-write drive's hard link, the
 * host's image itself, or bind a socket over a staged file. */
Test(jail_plan, outputs_and_sockets_are_not_staged_files)
{
	static const struct {
		const char *args[8];
		const char *msg;
	} cases[] = {
	    {{"--kernel", "/k/vmlinux", "--drive", "path=/img/rootfs.ext4", "--metrics-path",
	      "/rootfs.ext4"},
	     "the metrics file /rootfs.ext4: /rootfs.ext4 is where /img/rootfs.ext4 is staged; "
	     "give the metrics file a path of its own"},
	    {{"--kernel", "/k/vmlinux", "--drive", "path=/img/rootfs.ext4", "--metrics-path",
	      "//./rootfs.ext4"},
	     "the metrics file /rootfs.ext4: "},
	    {{"--kernel", "/k/vmlinux", "--drive", "path=/img/rootfs.ext4", "--metrics-path",
	      "rootfs.ext4"},
	     "the metrics file /rootfs.ext4: "},
	    {{"--kernel", "/k/vmlinux", "--log-path", "/vmlinux"},
	     "the log file /vmlinux: /vmlinux is where /k/vmlinux is staged"},
	    {{"--kernel", "/k/vmlinux", "--metrics-path", "/vmlinux/m.json"},
	     "the metrics file /vmlinux/m.json: /vmlinux is where /k/vmlinux is staged"},
	    {{"--kernel", "/k/vmlinux", "--api-sock", "/flint"},
	     "the API socket /flint: /flint is where /opt/flint/flint is staged"},
	    {{"--kernel", "/k/vmlinux", "--vsock", "cid=3,uds=/2-vmlinux", "--drive",
	      "path=/d/vmlinux"},
	     "the vsock socket /2-vmlinux: /2-vmlinux is where /d/vmlinux is staged"},
	    {{"--config-file", "/cfg/vm.json", "--metrics-path", "/vm.json"},
	     "the metrics file /vm.json: /vm.json is where the copy of /cfg/vm.json is staged"},
	    {{"--config-file", "/cfg/serial-staged.json"},
	     "the serial output file /vmlinux: /vmlinux is where /img/vmlinux is staged"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int n = 0;
		while (n < 8 && cases[i].args[n])
			n++;
		cr_assert_eq(plan_build(&p, "/opt/flint/flint", NULL, fake_read, NULL, n,
					(char *const *)cases[i].args, err, sizeof(err)),
			     -EINVAL, "case %zu: %s", i, err);
		cr_assert(strstr(err, cases[i].msg), "case %zu: %s", i, err);
		plan_free(&p);
	}
}

/* Socket and output paths are written one way ("//" and "." dropped), so
 * two names of one file are seen to be one. */
Test(jail_plan, jail_paths_written_one_way)
{
	cr_assert_eq(
	    BUILD(&p, "--kernel", "/k", "--metrics-path", "m//./x.json", "--api-sock", "/a/./s"), 0,
	    "%s", err);
	cr_assert_str_eq(joined(), "/flint --kernel /k --metrics-path /m/x.json --api-sock /a/s");
	cr_assert_str_eq(p.outputs[0].path, "/m/x.json");
	cr_assert_str_eq(p.api_sock_path, "/a/s");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--api-sock", "s", "--kernel", "/k", "--vsock", "cid=3,uds=//./s"),
		     -EINVAL);
	cr_assert(strstr(err, "both /s"), "%s", err);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/k", "--metrics-path", "m/."), -EINVAL);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/k", "--metrics-path", "m/"), -EINVAL);
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--kernel", "/k", "--metrics-path", "."), -EINVAL);
}

/* A drive that names the config file gets the file, staged on its own,
 * not the rewritten copy the jailer writes in its place. */
Test(jail_plan, drive_naming_the_config_file)
{
	struct vm_config c;
	char why[256];

	cr_assert_eq(BUILD(&p, "--config-file", "/cfg/self.json", "--no-api"), 0, "%s", err);
	cr_assert_eq(p.nfiles, 4);
	cr_assert_str_eq(p.files[1].name, "self.json");
	cr_assert(p.files[1].copy);
	cr_assert_not_null(p.files[1].content);
	cr_assert_str_eq(p.files[3].src, "/cfg/self.json");
	cr_assert_str_eq(p.files[3].name, "2-self.json");
	cr_assert_eq(p.files[3].access, PLAN_READ_WRITE);
	cr_assert_null(p.files[3].content, "staged, not written");
	cr_assert_eq(config_json_parse_file(p.files[1].content, strlen(p.files[1].content), &c, why,
					    sizeof(why)),
		     0, "%s", why);
	cr_assert_str_eq(c.drives[0].path_on_host, "/2-self.json");
	vm_config_free(&c);
}

/* flint's --id is the jail's unless its arguments name one: first among
 * them, after "run" for flint run. */
Test(jail_plan, the_jails_id_is_flints)
{
	cr_assert_eq(BUILD(&p, "--kernel", "/k/vmlinux", "--", "true"), 0, "%s", err);
	cr_assert_eq(plan_set_id(&p, "vm-7"), 0);
	cr_assert_str_eq(joined(), "/flint --id vm-7 --kernel /vmlinux -- true");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "run", "--", "uname"), 0, "%s", err);
	cr_assert_eq(plan_set_id(&p, "vm-7"), 0);
	cr_assert_eq(strncmp(joined(), "/flint run --id vm-7 ", 21), 0, "%s", joined());
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--id", "mine", "--kernel", "/k/vmlinux"), 0, "%s", err);
	cr_assert_eq(plan_set_id(&p, "vm-7"), 0);
	cr_assert_str_eq(joined(), "/flint --id mine --kernel /vmlinux");
}

/* As Firecracker's jailer: flint is told when the launch began, and the
 * values are given at the exec. */
Test(jail_plan, the_launchs_start_is_passed_on)
{
	cr_assert_eq(BUILD(&p, "run", "--", "uname"), 0, "%s", err);
	cr_assert_eq(plan_set_id(&p, "vm-7"), 0);
	cr_assert_eq(plan_set_start_times(&p), 0);
	cr_assert_str_eq(
	    joined(), "/flint run --start-time-us 0 --start-time-cpu-us 0 "
		      "--parent-cpu-time-us 0 --id vm-7 --kernel /vmlinux --rootfs /rootfs.ext4 -- "
		      "uname");
	plan_start_times(&p, 12345, 1500, 2500);
	/* flint's own parser takes what the jailer passes. */
	struct config c;
	char perr[256];
	cr_assert_eq(cli_parse(p.argc, p.argv, &c, perr, sizeof(perr)), CLI_RUN, "%s", perr);
	cr_assert(c.run && c.has_start_time && c.has_start_time_cpu && c.has_parent_cpu_time);
	cr_assert_eq(c.start_time_us, 12345);
	cr_assert_eq(c.start_time_cpu_us, 1500);
	cr_assert_eq(c.parent_cpu_time_us, 2500);
	cr_assert_str_eq(c.id, "vm-7");
	cli_config_free(&c);
	plan_start_times(&p, 18446744073709551615ULL, 1500, 2500);
	cr_assert_str_eq(joined(),
			 "/flint run --start-time-us 18446744073709551615 "
			 "--start-time-cpu-us 1500 --parent-cpu-time-us 2500 --id vm-7 --kernel "
			 "/vmlinux --rootfs /rootfs.ext4 -- uname");
	plan_free(&p);
	/* Any of them given among flint's arguments: kept, none added. */
	cr_assert_eq(BUILD(&p, "--start-time-us", "5", "--kernel", "/k/vmlinux"), 0, "%s", err);
	cr_assert_eq(plan_set_start_times(&p), 0);
	plan_start_times(&p, 9, 9, 9);
	cr_assert_str_eq(joined(), "/flint --start-time-us 5 --kernel /vmlinux");
	plan_free(&p);
	cr_assert_eq(BUILD(&p, "--parent-cpu-time-us", "5", "--kernel", "/k/vmlinux"), 0, "%s",
		     err);
	cr_assert_eq(plan_set_start_times(&p), 0);
	cr_assert_str_eq(joined(), "/flint --parent-cpu-time-us 5 --kernel /vmlinux");
}
