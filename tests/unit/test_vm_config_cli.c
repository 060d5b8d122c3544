/* vm_config_cli (issue 11): flint's options as Firecracker's resources:
 * --kernel, --initrd, the command line as boot_args, --mem and --vcpus,
 * each --drive, --net and --vsock; what cannot map is refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "config/cli.h"
#include "config/vm_config.h"
#include "config/vm_config_cli.h"

static char err[256];

#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "'%s' not in '%s'", s, err)

Test(vm_config_cli, every_option_maps)
{
	struct config cfg = {
	    .kernel = "/vmlinux",
	    .initrd = "/initrd",
	    .append = "quiet=0",
	    .mem = 256ULL << 20,
	    .vcpus = 2,
	    .drives = {{.path = "/root.img", .read_only = true},
		       {.path = "/data.img", .id = "data", .direct = true}},
	    .ndrives = 2,
	    .nets = {{.tap = "tap0", .has_mac = true, .mac = {6, 0, 0xac, 0x10, 0, 2}}},
	    .nnets = 1,
	    .vsock = {.enabled = true, .cid = 7, .uds = "/v.sock"},
	    .guest_argv = (char *[]){"sh", "-c", "echo hi", NULL},
	    .guest_argc = 3,
	};
	struct vm_config c;

	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.machine.vcpu_count, 2);
	cr_assert_eq(c.machine.mem_size_mib, 256);
	cr_assert_str_eq(c.boot.kernel_image_path, "/vmlinux");
	cr_assert_str_eq(c.boot.initrd_path, "/initrd");
	cr_assert_str_eq(c.boot.boot_args, DEFAULT_CMDLINE " quiet=0 -- sh -c \"echo hi\"");
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(c.drives[0].drive_id, "drive0");
	cr_assert(c.drives[0].is_read_only && !c.drives[0].is_root_device);
	cr_assert_eq(c.drives[0].cache_type, VMC_CACHE_WRITEBACK,
		     "--drive does the guest's flushes");
	cr_assert_str_eq(c.drives[1].drive_id, "data");
	cr_assert(c.drives[1].direct);
	cr_assert_str_eq(c.nets[0].iface_id, "net0");
	cr_assert_str_eq(c.nets[0].host_dev_name, "tap0");
	cr_assert(c.nets[0].has_guest_mac);
	cr_assert_eq(c.nets[0].guest_mac[2], 0xac);
	cr_assert(c.vsock.enabled);
	cr_assert_eq(c.vsock.guest_cid, 7);
	cr_assert_eq(vm_config_features(&c), 0, "plain flint needs no optional feature");
	vm_config_free(&c);

	/* Two --drive with one id would become one drive: refused. */
	cfg.drives[0].id = "data";
	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), -EINVAL);
	ERR_HAS("another drive has the id 'data'");
	cfg.drives[0].id = NULL;

	cfg.mem = (256ULL << 20) + 4096;
	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), -EINVAL);
	ERR_HAS("--mem");
}
