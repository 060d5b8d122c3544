/* The kernel arguments that name the root drive (vm_root_args), as
 * Firecracker adds them: root=PARTUUID=<uuid> with a partuuid, else
 * root=/dev/vda; ro or rw as the drive is. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/vm_config.h"
#include "core/vm.h"

static void root_drive(struct vm_config *c, const char *partuuid, bool ro)
{
	vm_config_init(c);
	c->ndrives = 1;
	c->drives[0] = (struct vmc_drive){
	    .drive_id = strdup("rootfs"),
	    .path_on_host = strdup("/img"),
	    .partuuid = partuuid ? strdup(partuuid) : NULL,
	    .is_root_device = true,
	    .is_read_only = ro,
	};
}

static const char *args(struct vm_config *c, int want)
{
	static char buf[256];
	char err[128] = "";

	cr_assert_eq(vm_root_args(c, buf, sizeof(buf), err, sizeof(err)), want, "%s", err);
	if (want < 0)
		cr_assert(strstr(err, "partuuid"), "message: %s", err);
	return buf;
}

Test(vm_root, partuuid_names_the_root_partition)
{
	struct vm_config c;

	root_drive(&c, "1a2b3c4d-02", false);
	cr_assert_str_eq(args(&c, 0), "root=PARTUUID=1a2b3c4d-02 rw ");
	vm_config_free(&c);
	root_drive(&c, "0ea7c1e2-5f1a-4cf6-9b8d-3f2e1d0c9b8a", true);
	cr_assert_str_eq(args(&c, 0), "root=PARTUUID=0ea7c1e2-5f1a-4cf6-9b8d-3f2e1d0c9b8a ro ");
	vm_config_free(&c);
}

Test(vm_root, without_partuuid_it_is_dev_vda)
{
	struct vm_config c;

	root_drive(&c, NULL, true);
	cr_assert_str_eq(args(&c, 0), "root=/dev/vda ro ");
	c.drives[0].is_read_only = false;
	cr_assert_str_eq(args(&c, 0), "root=/dev/vda rw ");
	c.drives[0].is_root_device = false;
	cr_assert_str_eq(args(&c, 0), "", "no root device: nothing");
	vm_config_free(&c);
	vm_config_init(&c);
	cr_assert_str_eq(args(&c, 0), "", "no drive");
	vm_config_free(&c);
}

Test(vm_root, partuuid_cannot_smuggle_arguments)
{
	static const char *const bad[] = {"ab init=/bin/sh", "ab\tc", "a\"b",
					  "ab\\c",	     "--",    "ab -- x"};
	struct vm_config c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		root_drive(&c, bad[i], false);
		cr_assert_str_eq(args(&c, -EINVAL), "", "%s", bad[i]);
		vm_config_free(&c);
	}
}

Test(vm_root, too_small_a_buffer_is_enospc)
{
	struct vm_config c;
	char buf[16], err[128];

	root_drive(&c, "1a2b3c4d-02", false);
	cr_assert_eq(vm_root_args(&c, buf, sizeof(buf), err, sizeof(err)), -ENOSPC);
	cr_assert_str_eq(buf, "");
	vm_config_free(&c);
}

/* A root pmem device is /dev/pmem<N>, N its place among the pmem devices;
 * with a root drive as well, the VM does not start. */
Test(vm_root, pmem_root_device)
{
	struct vm_config c;
	char buf[64], err[128] = "";

	vm_config_init(&c);
	for (unsigned i = 0; i < 3; i++) {
		char id[8];
		snprintf(id, sizeof(id), "p%u", i);
		struct vmc_pmem p = {.id = strdup(id),
				     .path_on_host = strdup("/p"),
				     .root_device = i == 2,
				     .read_only = true};
		cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_str_eq(args(&c, 0), "root=/dev/pmem2 ro ");
	c.pmem[2].read_only = false;
	cr_assert_str_eq(args(&c, 0), "root=/dev/pmem2 rw ");
	cr_assert_eq(vm_root_args(&c, buf, 8, err, sizeof(err)), -ENOSPC);
	c.ndrives = 1;
	c.drives[0] = (struct vmc_drive){
	    .drive_id = strdup("rootfs"), .path_on_host = strdup("/img"), .is_root_device = true};
	cr_assert_eq(vm_root_args(&c, buf, sizeof(buf), err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "drive rootfs and pmem device p2 are both root devices");
	c.drives[0].is_root_device = false;
	cr_assert_str_eq(args(&c, 0), "root=/dev/pmem2 rw ");
	vm_config_free(&c);
}
