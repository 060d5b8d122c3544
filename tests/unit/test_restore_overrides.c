/* --restore's overrides from the command line to the restored VM's
 * configuration: cli_parse, instance_restore_args (runner/cmd/instance.c)
 * and vm_restore_config (runner/core/vm_snap.c), all but KVM. The smoke
 * test (tests/smoke/drive-override.sh) restores a real snapshot with them. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/instance.h"
#include "config/cli.h"
#include "config/config_json.h"
#include "config/vm_config.h"
#include "core/vm_int.h"

#define ARGV(...) ((char *[]){"flint", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"flint", __VA_ARGS__}) / sizeof(char *)))

/* What a snapshot recorded: a read-only root drive, a writable data drive
 * with a rate limiter, an interface. */
static void saved_config(struct vm_config *c)
{
	char why[256];
	static const char json[] =
	    "{\"boot-source\": {\"kernel_image_path\": \"/k\"},"
	    " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"/old/rootfs.ext4\","
	    " \"is_root_device\": true, \"is_read_only\": true},"
	    " {\"drive_id\": \"data\", \"path_on_host\": \"/old/data.img\", \"is_root_device\": "
	    "false, \"rate_limiter\": {\"bandwidth\": {\"size\": 4096, \"refill_time\": 100}}}],"
	    " \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}]}";

	cr_assert_eq(config_json_parse_file(json, strlen(json), c, why, sizeof(why)), 0, "%s", why);
}

static int restore_config(int argc, char **argv, struct vm_config *out)
{
	struct config cfg;
	struct restore_overrides ov;
	struct vm_restore_args a;
	struct vm_config saved;
	char err[256];
	int r;

	cr_assert_eq(cli_parse(argc, argv, &cfg, err, sizeof(err)), CLI_RUN, "%s", err);
	instance_restore_args(&cfg, &a, &ov);
	saved_config(&saved);
	r = vm_restore_config(&saved, &a, out);
	vm_config_free(&saved);
	cli_config_free(&cfg);
	return r;
}

/* Each drive named opens the new path; everything else it had stays. */
Test(restore_overrides, drive_override_replaces_the_path_only)
{
	struct vm_config c;

	cr_assert_eq(restore_config(ARGC("--restore", "s", "--mem-file", "m", "--drive-override",
					 "rootfs=/jail/rootfs.ext4", "--net-override", "eth0=tap9"),
				    ARGV("--restore", "s", "--mem-file", "m", "--drive-override",
					 "rootfs=/jail/rootfs.ext4", "--net-override", "eth0=tap9"),
				    &c),
		     0);
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(c.drives[0].drive_id, "rootfs");
	cr_assert_str_eq(c.drives[0].path_on_host, "/jail/rootfs.ext4");
	cr_assert(c.drives[0].is_read_only && c.drives[0].is_root_device, "kept");
	cr_assert_str_eq(c.drives[1].path_on_host, "/old/data.img", "not named: unchanged");
	cr_assert_str_eq(c.nets[0].host_dev_name, "tap9");
	vm_config_free(&c);

	cr_assert_eq(restore_config(ARGC("run", "--restore", "s", "--mem-file", "m",
					 "--drive-override", "data=/new/data.img", "--", "true"),
				    ARGV("run", "--restore", "s", "--mem-file", "m",
					 "--drive-override", "data=/new/data.img", "--", "true"),
				    &c),
		     0);
	cr_assert_str_eq(c.drives[0].path_on_host, "/old/rootfs.ext4");
	cr_assert_str_eq(c.drives[1].path_on_host, "/new/data.img");
	cr_assert_not(c.drives[1].is_read_only, "a writable drive stays writable");
	cr_assert_eq(c.drives[1].rate_limiter.bandwidth.size, 4096, "its rate limiter kept");
	vm_config_free(&c);
}

/* An id the snapshot has no drive of is refused, naming it. */
Test(restore_overrides, unknown_drive_is_refused, .init = cr_redirect_stderr)
{
	struct vm_config c;
	char got[512] = "";
	FILE *f;

	cr_assert_eq(restore_config(ARGC("--restore", "s", "--mem-file", "m", "--drive-override",
					 "rootfs=/a", "--drive-override", "scratch=/b"),
				    ARGV("--restore", "s", "--mem-file", "m", "--drive-override",
					 "rootfs=/a", "--drive-override", "scratch=/b"),
				    &c),
		     -EINVAL);
	fflush(stderr);
	f = cr_get_redirected_stderr();
	fread(got, 1, sizeof(got) - 1, f);
	cr_assert(strstr(got, "--drive-override: the snapshot has no drive 'scratch'"), "%s", got);
}

/* A PUT /serial before PUT /snapshot/load: the restored console's
 * serial_out_path and rate limiter, the snapshot's own replaced; without
 * one the snapshot's stays. */
Test(restore_overrides, serial_before_the_load)
{
	struct vmc_serial s = {.enabled = true,
			       .serial_out_path = "/run/console.out",
			       .rate_limiter = {.size = 4096, .refill_time_ms = 100}};
	struct vm_restore_args a = {.serial = &s};
	struct vm_config saved, c;

	saved_config(&saved);
	cr_assert_eq(vm_restore_config(&saved, &a, &c), 0);
	cr_assert(c.serial.enabled);
	cr_assert_str_eq(c.serial.serial_out_path, "/run/console.out");
	cr_assert_neq(c.serial.serial_out_path, s.serial_out_path, "a copy");
	cr_assert_eq(c.serial.rate_limiter.size, 4096);
	vm_config_free(&c);
	s.enabled = false;
	cr_assert_eq(vm_restore_config(&saved, &a, &c), 0);
	cr_assert_not(c.serial.enabled, "the snapshot's: none");
	vm_config_free(&c);
	vm_config_free(&saved);
}
