/* vm_config (issue 11): Firecracker's resources, defaults and rules, with
 * no JSON: the checks, the PUT/PATCH updates (one root drive kept first,
 * unique taps and MACs, bucket-wise rate limiter patches), copy and
 * compare, and the features flint may not honour. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/vm_config.h"
#include "core/vm.h"

static char err[256];

static struct vmc_drive drive(const char *id, const char *path, bool root)
{
	return (struct vmc_drive){
	    .drive_id = strdup(id), .path_on_host = strdup(path), .is_root_device = root};
}

static struct vmc_net net(const char *id, const char *tap)
{
	return (struct vmc_net){.iface_id = strdup(id), .host_dev_name = strdup(tap)};
}

#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "'%s' not in '%s'", s, err)

Test(vm_config, defaults_are_firecrackers)
{
	struct vm_config c;

	vm_config_init(&c);
	cr_assert_eq(c.machine.vcpu_count, 1);
	cr_assert_eq(c.machine.mem_size_mib, 128);
	cr_assert(!c.machine.smt && !c.machine.track_dirty_pages);
	cr_assert_eq(c.machine.cpu_template, VMC_CPU_TEMPLATE_NONE);
	cr_assert_eq(c.machine.huge_pages, VMC_HUGE_PAGES_NONE);
	cr_assert_null(c.boot.kernel_image_path);
	cr_assert_eq(c.ndrives + c.nnets, 0);
	cr_assert(!c.vsock.enabled && !c.logger.enabled && !c.entropy.enabled && !c.serial.enabled);
	cr_assert_eq(vm_config_features(&c), 0);
	vm_config_free(&c);
	vm_config_free(NULL);
}

Test(vm_config, machine_ranges)
{
	struct vmc_machine m = {.vcpu_count = 1, .mem_size_mib = 128};

	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), 0);
	m.vcpu_count = 0;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), -EINVAL);
	ERR_HAS("vcpu_count: must be from 1 to 32, got 0");
	m.vcpu_count = 33;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), -EINVAL);
	ERR_HAS("got 33");
	m.vcpu_count = 32;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), 0);

	/* Firecracker's SMT rule: 1 or an even number. */
	m.smt = true;
	m.vcpu_count = 3;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), -EINVAL);
	ERR_HAS("vcpu_count: with smt enabled it must be 1 or an even number, got 3");
	m.vcpu_count = 1;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), 0);
	m.vcpu_count = 4;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), 0);

	m.mem_size_mib = 15;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), -EINVAL);
	ERR_HAS("mem_size_mib");
	m.mem_size_mib = 16;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), 0);
	m.mem_size_mib = 1 << 20;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), 0);
	m.mem_size_mib = (1 << 20) + 1;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), -EINVAL);

	m.mem_size_mib = 129;
	m.huge_pages = VMC_HUGE_PAGES_2M;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), -EINVAL);
	ERR_HAS("multiple of 2");
	m.mem_size_mib = 130;
	cr_assert_eq(vmc_machine_check(&m, err, sizeof(err)), 0);
}

Test(vm_config, patch_machine_keeps_what_it_does_not_name)
{
	struct vm_config c;
	struct vmc_machine_patch p = {0};

	vm_config_init(&c);
	cr_assert_eq(vm_config_patch_machine(&c, &p, err, sizeof(err)), -EINVAL);
	ERR_HAS("nothing to change");

	p.has_mem_size_mib = true;
	p.v.mem_size_mib = 512;
	cr_assert_eq(vm_config_patch_machine(&c, &p, err, sizeof(err)), 0);
	cr_assert_eq(c.machine.mem_size_mib, 512);
	cr_assert_eq(c.machine.vcpu_count, 1);

	/* Checked with the fields kept: 3 vCPUs then SMT is refused, and
	 * nothing changes. */
	p = (struct vmc_machine_patch){.has_vcpu_count = true, .v.vcpu_count = 3};
	cr_assert_eq(vm_config_patch_machine(&c, &p, err, sizeof(err)), 0);
	p = (struct vmc_machine_patch){.has_smt = true, .v.smt = true};
	cr_assert_eq(vm_config_patch_machine(&c, &p, err, sizeof(err)), -EINVAL);
	cr_assert(!c.machine.smt);
	cr_assert_eq(c.machine.vcpu_count, 3);
	vm_config_free(&c);
}

Test(vm_config, drive_checks)
{
	struct vmc_drive d = drive("rootfs", "/img", true);

	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), 0);
	d.socket = strdup("/sock");
	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), -EINVAL);
	ERR_HAS("not both");
	free(d.path_on_host);
	d.path_on_host = NULL;
	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), 0);
	d.is_read_only = true;
	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), -EINVAL);
	ERR_HAS("vhost-user-blk");
	free(d.socket);
	d.socket = NULL;
	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), -EINVAL);
	ERR_HAS("missing required field 'path_on_host'");
	d.path_on_host = strdup("");
	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), -EINVAL);
	ERR_HAS("path_on_host: must not be empty");
	vmc_drive_free(&d);

	d = drive("", "/img", false);
	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), -EINVAL);
	ERR_HAS("drive_id: must not be empty");
	vmc_drive_free(&d);
	vmc_drive_free(NULL);
}

Test(vm_config, one_root_drive_kept_first)
{
	struct vm_config c;
	struct vmc_drive d;

	vm_config_init(&c);
	d = drive("data", "/data", false);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	cr_assert_null(d.drive_id, "the config took the strings");
	d = drive("rootfs", "/root", true);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(c.drives[0].drive_id, "rootfs");
	cr_assert_str_eq(c.drives[1].drive_id, "data");

	/* A second root device is refused, c unchanged, d still the caller's. */
	d = drive("other", "/other", true);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), -EINVAL);
	ERR_HAS("drive 'other': a root device already exists ('rootfs')");
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(d.drive_id, "other");
	vmc_drive_free(&d);

	/* The same id replaces: the root can be replaced, even as root. */
	d = drive("rootfs", "/root2", true);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(c.drives[0].path_on_host, "/root2");

	/* The root made non-root stays where it is; another drive made root
	 * is swapped with the first, as Firecracker does. */
	d = drive("rootfs", "/root2", false);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	d = drive("logs", "/logs", false);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	d = drive("logs", "/logs", true);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	cr_assert_str_eq(c.drives[0].drive_id, "logs");
	cr_assert_str_eq(c.drives[1].drive_id, "data");
	cr_assert_str_eq(c.drives[2].drive_id, "rootfs");
	cr_assert_eq(vm_config_find_drive(&c, "data"), 1);
	cr_assert_eq(vm_config_find_drive(&c, "nope"), -1);
	vm_config_free(&c);
}

Test(vm_config, a_new_root_drive_goes_in_front)
{
	struct vm_config c;
	struct vmc_drive d;

	vm_config_init(&c);
	d = drive("a", "/a", false);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	d = drive("b", "/b", false);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	d = drive("root", "/r", true);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	/* The others keep their order: a is vdb, b is vdc. */
	cr_assert_str_eq(c.drives[0].drive_id, "root");
	cr_assert_str_eq(c.drives[1].drive_id, "a");
	cr_assert_str_eq(c.drives[2].drive_id, "b");
	vm_config_free(&c);
}

Test(vm_config, at_most_16_drives_and_8_interfaces)
{
	struct vm_config c;
	char id[16], tap[16];

	vm_config_init(&c);
	for (int i = 0; i < VMC_MAX_DRIVES; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		struct vmc_drive d = drive(id, "/img", false);
		cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	}
	struct vmc_drive d = drive("d16", "/img", false);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), -EINVAL);
	ERR_HAS("at most 16 drives");
	vmc_drive_free(&d);
	/* Replacing one when full is still fine. */
	d = drive("d3", "/img3", false);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);

	for (int i = 0; i < VMC_MAX_NETS; i++) {
		snprintf(id, sizeof(id), "eth%d", i);
		snprintf(tap, sizeof(tap), "tap%d", i);
		struct vmc_net n = net(id, tap);
		cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), 0);
	}
	struct vmc_net n = net("eth8", "tap8");
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("at most 8 network interfaces");
	vmc_net_free(&n);
	vm_config_free(&c);
}

/* One passt socket is one interface's (--net user,fd=N twice): two
 * would each read half of its stream. Interfaces whose passt flint starts
 * (no fd) are any number. */
Test(vm_config, interfaces_share_no_passt_socket)
{
	struct vm_config c;
	struct vmc_net u = {.iface_id = strdup("u0"), .user = true, .fd = 5};

	vm_config_init(&c);
	cr_assert_eq(vm_config_put_net(&c, &u, err, sizeof(err)), 0, "%s", err);
	u = (struct vmc_net){.iface_id = strdup("u1"), .user = true, .fd = 5};
	cr_assert_eq(vm_config_put_net(&c, &u, err, sizeof(err)), -EINVAL);
	ERR_HAS("fd: descriptor 5 is already interface 'u0''s passt socket");
	u.fd = 6;
	cr_assert_eq(vm_config_put_net(&c, &u, err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < 2; i++) {
		u = (struct vmc_net){.iface_id = strdup(i ? "u3" : "u2"), .user = true};
		cr_assert_eq(vm_config_put_net(&c, &u, err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(c.nnets, 4);
	vm_config_free(&c);
}

Test(vm_config, interfaces_share_no_tap_or_mac)
{
	struct vm_config c;
	struct vmc_net n = net("eth0", "tap0");

	vm_config_init(&c);
	n.has_guest_mac = true;
	memcpy(n.guest_mac, (uint8_t[]){6, 0, 0xac, 0x10, 0, 2}, 6);
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), 0);

	n = net("eth1", "tap0");
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("host_dev_name: 'tap0' is already used by interface 'eth0'");
	vmc_net_free(&n);

	n = net("eth1", "tap1");
	n.has_guest_mac = true;
	memcpy(n.guest_mac, (uint8_t[]){6, 0, 0xac, 0x10, 0, 2}, 6);
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("guest_mac: 06:00:ac:10:00:02 is already used by interface 'eth0'");
	vmc_net_free(&n);

	/* eth0 itself may keep its tap and MAC when replaced. */
	n = net("eth0", "tap0");
	n.has_guest_mac = true;
	memcpy(n.guest_mac, (uint8_t[]){6, 0, 0xac, 0x10, 0, 2}, 6);
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), 0);
	cr_assert_eq(c.nnets, 1);

	/* A multicast address is no station's. */
	n = net("eth1", "tap1");
	n.has_guest_mac = true;
	memcpy(n.guest_mac, (uint8_t[]){1, 0, 0x5e, 0, 0, 1}, 6);
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("multicast");
	vmc_net_free(&n);

	n = net("eth1", "a_name_that_is_too_long");
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("host_dev_name");
	vmc_net_free(&n);
	vm_config_free(&c);
}

Test(vm_config, rate_limiter_patches_go_bucket_by_bucket)
{
	struct vm_config c;
	struct vmc_drive d = drive("rootfs", "/img", true);
	struct vmc_drive_patch p = {0};

	vm_config_init(&c);
	d.rate_limiter =
	    (struct ratelimit_cfg){.bandwidth = {.size = 1 << 20, .refill_time_ms = 100},
				   .ops = {.size = 0, .one_time_burst = 7, .refill_time_ms = 100}};
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	/* A bucket of size 0 limits nothing: kept as none. */
	cr_assert_eq(c.drives[0].rate_limiter.bandwidth.size, 1 << 20);
	cr_assert_eq(c.drives[0].rate_limiter.ops.one_time_burst, 0);
	cr_assert_eq(c.drives[0].rate_limiter.ops.refill_time_ms, 0);

	p.drive_id = strdup("nope");
	cr_assert_eq(vm_config_patch_drive(&c, &p, err, sizeof(err)), -EINVAL);
	ERR_HAS("no drive 'nope'");
	vmc_drive_patch_free(&p);

	/* ops set, bandwidth untouched, then the image swapped. */
	p = (struct vmc_drive_patch){.drive_id = strdup("rootfs")};
	p.rate_limiter = (struct vmc_rl_patch){
	    .has_ops = true, .v.ops = {.size = 100, .one_time_burst = 5, .refill_time_ms = 1000}};
	cr_assert_eq(vm_config_patch_drive(&c, &p, err, sizeof(err)), 0);
	cr_assert_eq(c.drives[0].rate_limiter.bandwidth.size, 1 << 20);
	cr_assert_eq(c.drives[0].rate_limiter.ops.size, 100);
	cr_assert_eq(c.drives[0].rate_limiter.ops.one_time_burst, 5);
	cr_assert_str_eq(c.drives[0].path_on_host, "/img");
	vmc_drive_patch_free(&p);

	p = (struct vmc_drive_patch){.drive_id = strdup("rootfs"), .path_on_host = strdup("/new")};
	p.rate_limiter = (struct vmc_rl_patch){.has_bandwidth = true,
					       .v.bandwidth = {.size = 0, .refill_time_ms = 0}};
	cr_assert_eq(vm_config_patch_drive(&c, &p, err, sizeof(err)), 0);
	cr_assert_str_eq(c.drives[0].path_on_host, "/new");
	cr_assert_null(p.path_on_host, "the config took the path");
	cr_assert_eq(c.drives[0].rate_limiter.bandwidth.size, 0, "a zero bucket removes the limit");
	cr_assert_eq(c.drives[0].rate_limiter.ops.size, 100);
	vmc_drive_patch_free(&p);

	struct vmc_net n = net("eth0", "tap0");
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), 0);
	struct vmc_net_patch np = {.iface_id = strdup("eth0")};
	np.tx_rate_limiter = (struct vmc_rl_patch){
	    .has_bandwidth = true, .v.bandwidth = {.size = 4096, .refill_time_ms = 10}};
	cr_assert_eq(vm_config_patch_net(&c, &np, err, sizeof(err)), 0);
	cr_assert_eq(c.nets[0].tx_rate_limiter.bandwidth.size, 4096);
	cr_assert_eq(c.nets[0].rx_rate_limiter.bandwidth.size, 0);
	vmc_net_patch_free(&np);
	np = (struct vmc_net_patch){.iface_id = strdup("eth9")};
	cr_assert_eq(vm_config_patch_net(&c, &np, err, sizeof(err)), -EINVAL);
	ERR_HAS("no network interface 'eth9'");
	vmc_net_patch_free(&np);
	vm_config_free(&c);
}

Test(vm_config, vsock_and_ids)
{
	struct vm_config c;
	struct vmc_vsock v = {.guest_cid = 2, .uds_path = strdup("/v.sock")};

	vm_config_init(&c);
	cr_assert_eq(vm_config_set_vsock(&c, &v, err, sizeof(err)), -EINVAL);
	ERR_HAS("guest_cid: must be from 3 to 4294967294, got 2");
	v.guest_cid = UINT32_MAX;
	cr_assert_eq(vm_config_set_vsock(&c, &v, err, sizeof(err)), -EINVAL);
	v.guest_cid = 3;
	cr_assert_eq(vm_config_set_vsock(&c, &v, err, sizeof(err)), 0);
	cr_assert(c.vsock.enabled);
	cr_assert_str_eq(c.vsock.uds_path, "/v.sock");
	vm_config_free(&c);

	cr_assert_eq(vmc_path_id_check("rootfs_1", err, sizeof(err)), 0);
	cr_assert_eq(vmc_path_id_check("", err, sizeof(err)), -EINVAL);
	ERR_HAS("must not be empty");
	cr_assert_eq(vmc_path_id_check("root-fs", err, sizeof(err)), -EINVAL);
	ERR_HAS("only letters, digits and underscores");
	cr_assert_eq(vmc_path_id_check("a/b", err, sizeof(err)), -EINVAL);
}

/* A config with something in every part, built by the updates. */
static void full(struct vm_config *c)
{
	struct vmc_machine m = {.vcpu_count = 2, .mem_size_mib = 256, .track_dirty_pages = true};
	struct vmc_boot b = {.kernel_image_path = strdup("/vmlinux"),
			     .boot_args = strdup("console=ttyS0")};
	struct vmc_drive d = drive("rootfs", "/rootfs.ext4", true);
	struct vmc_net n = net("eth0", "tap0");
	struct vmc_vsock v = {.guest_cid = 3, .uds_path = strdup("/v.sock")};
	struct vmc_logger l = {.log_path = strdup("/log"), .level = VMC_LOG_DEBUG};
	struct vmc_metrics mt = {.metrics_path = strdup("/metrics")};
	struct vmc_entropy e = {0};
	struct vmc_serial s = {.serial_out_path = strdup("/serial")};

	vm_config_init(c);
	d.partuuid = strdup("0eaa91a0-01");
	n.mtu = 1500;
	cr_assert_eq(vm_config_set_machine(c, &m, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_set_boot(c, &b, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_put_drive(c, &d, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_put_net(c, &n, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_set_vsock(c, &v, err, sizeof(err)), 0);
	vm_config_set_logger(c, &l);
	vm_config_set_metrics(c, &mt);
	vm_config_set_entropy(c, &e);
	vm_config_set_serial(c, &s);
}

Test(vm_config, copy_and_compare)
{
	struct vm_config a, b;

	full(&a);
	cr_assert_eq(vm_config_copy(&b, &a), 0);
	cr_assert(vm_config_equal(&a, &b));
	cr_assert_neq(a.drives[0].drive_id, b.drives[0].drive_id, "a deep copy");
	free(b.nets[0].host_dev_name);
	b.nets[0].host_dev_name = strdup("tap1");
	cr_assert(!vm_config_equal(&a, &b));
	vm_config_free(&b);
	cr_assert_eq(vm_config_copy(&b, &a), 0);
	b.drives[0].rate_limiter.ops =
	    (struct ratelimit_bucket_cfg){.size = 1, .refill_time_ms = 1};
	cr_assert(!vm_config_equal(&a, &b));
	b.drives[0].rate_limiter = a.drives[0].rate_limiter;
	b.logger.level = VMC_LOG_OFF;
	cr_assert(!vm_config_equal(&a, &b));
	vm_config_free(&b);
	/* b freed, a intact. */
	cr_assert_str_eq(a.boot.kernel_image_path, "/vmlinux");
	vm_config_free(&a);
}

Test(vm_config, features_flint_does_not_honour_are_named)
{
	struct vm_config c;
	unsigned all = ~0u;

	full(&c);
	unsigned f = vm_config_features(&c);
	cr_assert_eq(f, VMC_F_DIRTY_PAGES | VMC_F_PARTUUID | VMC_F_NET_MTU | VMC_F_ENTROPY |
			    VMC_F_LOGGER | VMC_F_METRICS | VMC_F_SERIAL_OUT);
	cr_assert_eq(vm_config_check_supported(&c, all, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_check_supported(&c, all & ~VMC_F_PARTUUID, err, sizeof(err)),
		     -EOPNOTSUPP);
	ERR_HAS("drive 'rootfs': flint does not support booting from a partition (partuuid)");
	cr_assert_eq(vm_config_check_supported(&c, all & ~VMC_F_NET_MTU, err, sizeof(err)),
		     -EOPNOTSUPP);
	ERR_HAS("network interface 'eth0': flint does not support advertising an MTU (mtu)");
	cr_assert_eq(vm_config_check_supported(&c, all & ~VMC_F_DIRTY_PAGES, err, sizeof(err)),
		     -EOPNOTSUPP);
	ERR_HAS("flint does not support dirty page tracking (track_dirty_pages)");

	c.machine.cpu_template = VMC_CPU_TEMPLATE_T2;
	c.machine.huge_pages = VMC_HUGE_PAGES_2M;
	c.machine.smt = true;
	f = vm_config_features(&c);
	cr_assert(f & VMC_F_CPU_TEMPLATE && f & VMC_F_HUGE_PAGES && f & VMC_F_SMT);
	cr_assert_eq(vm_config_check_supported(&c, all & ~VMC_F_HUGE_PAGES, err, sizeof(err)),
		     -EOPNOTSUPP);
	ERR_HAS("huge_pages");
	vm_config_free(&c);
}

/* What the VM honours: a logger's module filter (core/logger.c) among it;
 * a CPU template not. */
Test(vm_config, what_the_vm_honours)
{
	struct vm_config c;

	full(&c);
	c.logger.module = strdup("virtio/blk");
	cr_assert(vm_config_features(&c) & VMC_F_LOGGER_MODULE);
	cr_assert_eq(vm_config_check_supported(&c, vm_supported_features, err, sizeof(err)), 0,
		     "%s", err);
	c.machine.cpu_template = VMC_CPU_TEMPLATE_T2;
	cr_assert_eq(vm_config_check_supported(&c, vm_supported_features, err, sizeof(err)),
		     -EOPNOTSUPP);
	vm_config_free(&c);
}

/* The balloon: its target against the memory, PATCHes of a balloon that
 * is there, statistics that cannot be turned on or off once started, and
 * free page hinting and reporting, which the VM honours. */
Test(vm_config, balloon)
{
	struct vm_config c, d;
	struct vmc_balloon b = {.amount_mib = 128, .stats_polling_interval_s = 1};

	vm_config_init(&c);
	cr_assert_eq(vm_config_patch_balloon(&c, 1, err, sizeof(err)), -ENOENT);
	cr_assert_eq(vm_config_patch_balloon_stats(&c, 1, false, err, sizeof(err)), -ENOENT);
	cr_assert_eq(vm_config_set_balloon(&c, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert(c.balloon.enabled, "set by the PUT");
	cr_assert_eq(vm_config_features(&c), VMC_F_BALLOON);
	cr_assert_eq(vm_config_check_supported(&c, vm_supported_features, err, sizeof(err)), 0);
	b.amount_mib = 129;
	cr_assert_eq(vm_config_set_balloon(&c, &b, err, sizeof(err)), -EINVAL);
	ERR_HAS("amount_mib: 129 MiB is more than the guest's memory (128 MiB)");
	cr_assert_eq(vm_config_patch_balloon(&c, 129, err, sizeof(err)), -EINVAL);
	/* Nor the memory below the target afterwards. */
	struct vmc_machine m = c.machine;
	m.mem_size_mib = 64;
	cr_assert_eq(vm_config_set_machine(&c, &m, err, sizeof(err)), -EINVAL);
	ERR_HAS("smaller than the previously set balloon device target size (128 MiB)");
	cr_assert_eq(c.machine.mem_size_mib, 128);
	m.mem_size_mib = 128;
	cr_assert_eq(vm_config_set_machine(&c, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(vm_config_patch_balloon(&c, 0, err, sizeof(err)), 0);
	cr_assert_eq(c.balloon.amount_mib, 0);
	cr_assert_eq(vm_config_patch_balloon_stats(&c, 0, true, err, sizeof(err)), -EINVAL);
	ERR_HAS("statistics cannot be turned off once the microVM has started");
	cr_assert_eq(vm_config_patch_balloon_stats(&c, 3, true, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_patch_balloon_stats(&c, 0, false, err, sizeof(err)), 0);
	cr_assert_eq(c.balloon.stats_polling_interval_s, 0);

	cr_assert_eq(vm_config_copy(&d, &c), 0);
	cr_assert(vm_config_equal(&c, &d));
	d.balloon.deflate_on_oom = true;
	cr_assert_not(vm_config_equal(&c, &d));
	vm_config_free(&d);

	c.balloon.free_page_hinting = true;
	cr_assert_eq(vm_config_features(&c), VMC_F_BALLOON | VMC_F_BALLOON_HINTING);
	cr_assert_eq(vm_config_check_supported(&c, vm_supported_features, err, sizeof(err)), 0,
		     "%s", err);
	c.balloon.free_page_reporting = true;
	cr_assert_eq(vm_config_features(&c),
		     VMC_F_BALLOON | VMC_F_BALLOON_HINTING | VMC_F_BALLOON_REPORTING);
	cr_assert_eq(vm_config_check_supported(&c, vm_supported_features, err, sizeof(err)), 0,
		     "%s", err);
	vm_config_free(&c);
}

/* Memory hot-plug: Firecracker's rules between the three sizes, each
 * limit named; no defaults applied here; the feature the VM layer states;
 * copied and compared, the running target apart. */
Test(vm_config, memory_hotplug)
{
	static const struct {
		uint32_t total, slot, block;
		const char *msg;
	} bad[] = {
	    {1024, 128, 0, "block_size_mib: must be a power of two, at least 2 MiB, got 0"},
	    {1024, 128, 1, "block_size_mib: must be a power of two, at least 2 MiB, got 1"},
	    {1024, 128, 3, "block_size_mib: must be a power of two, at least 2 MiB, got 3"},
	    {1024, 128, 6, "block_size_mib: must be a power of two"},
	    {1024, 0, 2, "slot_size_mib: must be at least 128 MiB, got 0"},
	    {1024, 64, 2, "slot_size_mib: must be at least 128 MiB, got 64"},
	    {1024, 130, 4, "slot_size_mib: must be a multiple of block_size_mib (4 MiB), got 130"},
	    {1024, 128, 256, "slot_size_mib: must be a multiple of block_size_mib (256 MiB)"},
	    {0, 128, 2, "total_size_mib: must be at least slot_size_mib (128 MiB), got 0"},
	    {64, 128, 2, "total_size_mib: must be at least slot_size_mib (128 MiB), got 64"},
	    {1000, 128, 2,
	     "total_size_mib: must be a multiple of slot_size_mib (128 MiB), got 1000"},
	    {(1u << 20) + 128, 128, 2,
	     "total_size_mib: must be at most 1048576 (1 TiB), got 1048704"},
	    {UINT32_MAX - 127, 128, 2, "total_size_mib: must be at most 1048576"},
	};
	struct vm_config c, d;

	vm_config_init(&c);
	cr_assert_not(c.memory_hotplug.enabled, "none by default");
	cr_assert_eq(vm_config_features(&c) & VMC_F_MEMORY_HOTPLUG, 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vmc_memory_hotplug h = {.total_size_mib = bad[i].total,
					       .slot_size_mib = bad[i].slot,
					       .block_size_mib = bad[i].block};
		err[0] = '\0';
		cr_assert_eq(vm_config_set_memory_hotplug(&c, &h, err, sizeof(err)), -EINVAL,
			     "accepted %u/%u/%u", bad[i].total, bad[i].slot, bad[i].block);
		ERR_HAS(bad[i].msg);
		cr_assert_not(c.memory_hotplug.enabled, "a refused PUT changed the config");
	}
	/* No defaults here: zero sizes are refused (the parser fills them). */
	struct vmc_memory_hotplug h = {.total_size_mib = 1024};
	cr_assert_eq(vm_config_set_memory_hotplug(&c, &h, err, sizeof(err)), -EINVAL);
	ERR_HAS("block_size_mib");

	/* The least sizes, and the largest total. */
	h = (struct vmc_memory_hotplug){
	    .total_size_mib = 128, .slot_size_mib = 128, .block_size_mib = 2};
	cr_assert_eq(vm_config_set_memory_hotplug(&c, &h, err, sizeof(err)), 0, "%s", err);
	h = (struct vmc_memory_hotplug){
	    .total_size_mib = 1u << 20, .slot_size_mib = 1024, .block_size_mib = 1024};
	cr_assert_eq(vm_config_set_memory_hotplug(&c, &h, err, sizeof(err)), 0, "%s", err);
	/* A PUT again replaces it, enabled whatever h says, nothing requested. */
	h = (struct vmc_memory_hotplug){.total_size_mib = 512,
					.slot_size_mib = 256,
					.block_size_mib = 4,
					.requested_size_mib = 256};
	cr_assert_eq(vm_config_set_memory_hotplug(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert(c.memory_hotplug.enabled);
	cr_assert_eq(c.memory_hotplug.total_size_mib, 512);
	cr_assert_eq(c.memory_hotplug.slot_size_mib, 256);
	cr_assert_eq(c.memory_hotplug.block_size_mib, 4);
	cr_assert_eq(c.memory_hotplug.requested_size_mib, 0, "a new device has nothing requested");

	cr_assert_eq(vm_config_features(&c), VMC_F_MEMORY_HOTPLUG);
	cr_assert_eq(vm_config_check_supported(&c, ~VMC_F_MEMORY_HOTPLUG, err, sizeof(err)),
		     -EOPNOTSUPP);
	ERR_HAS("flint does not support memory hot-plug (memory-hotplug)");
	cr_assert_eq(vm_config_check_supported(&c, VMC_F_MEMORY_HOTPLUG, err, sizeof(err)), 0);

	cr_assert_eq(vm_config_copy(&d, &c), 0);
	cr_assert(vm_config_equal(&c, &d));
	cr_assert_eq(d.memory_hotplug.total_size_mib, 512);
	d.memory_hotplug.requested_size_mib = 128;
	cr_assert(vm_config_equal(&c, &d), "the running target is not configuration");
	d.memory_hotplug.slot_size_mib = 128;
	cr_assert_not(vm_config_equal(&c, &d));
	d.memory_hotplug = c.memory_hotplug;
	d.memory_hotplug.block_size_mib = 2;
	cr_assert_not(vm_config_equal(&c, &d));
	d.memory_hotplug = c.memory_hotplug;
	d.memory_hotplug.total_size_mib = 1024;
	cr_assert_not(vm_config_equal(&c, &d));
	d.memory_hotplug.enabled = false;
	cr_assert_not(vm_config_equal(&c, &d));
	vm_config_free(&d);
	vm_config_free(&c);
}

/* One CPU template at a time, the last one set (Firecracker's rule): a
 * custom one replaces a static one, and a static one named again, even
 * None, replaces the custom one. */
Test(vm_config, the_last_cpu_template_set_wins)
{
	struct vmc_cpu_config *t = calloc(1, sizeof(*t));
	struct vmc_machine_patch p = {.has_cpu_template = true};
	struct vm_config c;

	vm_config_init(&c);
	c.machine.cpu_template = VMC_CPU_TEMPLATE_T2;
	vm_config_set_cpu_config(&c, t);
	cr_assert(c.cpu_config.enabled);
	cr_assert_eq(c.machine.cpu_template, VMC_CPU_TEMPLATE_NONE);
	cr_assert_eq(vm_config_features(&c), VMC_F_CPU_CONFIG);
	p.v.cpu_template = VMC_CPU_TEMPLATE_NONE;
	cr_assert_eq(vm_config_patch_machine(&c, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(c.cpu_config.enabled);
	vm_config_set_cpu_config(&c, t);
	struct vmc_machine m = c.machine;
	cr_assert_eq(vm_config_set_machine(&c, &m, err, sizeof(err)), 0);
	cr_assert(c.cpu_config.enabled, "a PUT without a static template keeps it");
	m.cpu_template = VMC_CPU_TEMPLATE_C3;
	cr_assert_eq(vm_config_set_machine(&c, &m, err, sizeof(err)), 0);
	cr_assert_not(c.cpu_config.enabled);
	vm_config_free(&c);
	free(t);
}

Test(vm_config, names_are_firecrackers)
{
	cr_assert_str_eq(vmc_cpu_template_name(VMC_CPU_TEMPLATE_T2CL), "T2CL");
	cr_assert_str_eq(vmc_huge_pages_name(VMC_HUGE_PAGES_2M), "2M");
	cr_assert_str_eq(vmc_cache_type_name(VMC_CACHE_WRITEBACK), "Writeback");
	cr_assert_str_eq(vmc_io_engine_name(VMC_IO_ENGINE_ASYNC), "Async");
	cr_assert_str_eq(vmc_log_level_name(VMC_LOG_WARNING), "Warning");
}

/* A partuuid becomes root=PARTUUID=<it>, one word of the kernel's command
 * line: one that would add arguments is refused at PUT, not at the start. */
Test(vm_config, partuuid_is_one_word)
{
	const char *bad[] = {"a b", "a\"b", "a\\b", "x--y", "a\tb"};
	struct vmc_drive d = drive("rootfs", "/rootfs.ext4", true);

	d.partuuid = strdup("0eaa91a0-01");
	cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		free(d.partuuid);
		d.partuuid = strdup(bad[i]);
		cr_assert_eq(vmc_drive_check(&d, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		ERR_HAS("partuuid");
	}
	vmc_drive_free(&d);
}

static struct vmc_pmem pmem(const char *id, const char *path, bool root)
{
	return (struct vmc_pmem){
	    .id = strdup(id), .path_on_host = strdup(path), .root_device = root};
}

/* pmem devices: kept in the order first put (a PUT again replaces in
 * place), one root device, at most VMC_MAX_PMEM; PATCH of the limiter;
 * copies and comparisons; the feature the VM layer states it honours. */
Test(vm_config, pmem_devices)
{
	struct vm_config c, d;
	struct vmc_pmem p;

	vm_config_init(&c);
	p = pmem("a", "/a", false);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(p.id, "taken over");
	p = pmem("b", "/b", true);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), 0, "%s", err);
	p = pmem("c", "/c", true);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), -EINVAL);
	ERR_HAS("pmem 'c': a root pmem device already exists ('b')");
	vmc_pmem_free(&p);
	/* The root device itself may be put again, and another made root
	 * once it no longer is. */
	p = pmem("b", "/b2", false);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), 0, "%s", err);
	p = pmem("a", "/a2", true);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.npmem, 2);
	cr_assert_str_eq(c.pmem[0].path_on_host, "/a2");
	cr_assert_str_eq(c.pmem[1].path_on_host, "/b2");
	cr_assert_eq(vm_config_find_pmem(&c, "b"), 1);
	cr_assert_eq(vm_config_find_pmem(&c, "z"), -1);
	/* One root device among drives and pmem devices, as Firecracker's
	 * AddingSecondRootDevice, whichever came first. */
	struct vmc_drive rd = drive("rootfs", "/r.ext4", true);
	cr_assert_eq(vm_config_put_drive(&c, &rd, err, sizeof(err)), -EINVAL);
	ERR_HAS("drive 'rootfs': the root device is already pmem device 'a'");
	vmc_drive_free(&rd);
	vm_config_init(&d);
	rd = drive("rootfs", "/r.ext4", true);
	cr_assert_eq(vm_config_put_drive(&d, &rd, err, sizeof(err)), 0, "%s", err);
	p = pmem("r", "/r", true);
	cr_assert_eq(vm_config_put_pmem(&d, &p, err, sizeof(err)), -EINVAL);
	ERR_HAS("pmem 'r': the root device is already drive 'rootfs'");
	p.root_device = false;
	cr_assert_eq(vm_config_put_pmem(&d, &p, err, sizeof(err)), 0, "%s", err);
	vm_config_free(&d);
	p = pmem("", "/x", false);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), -EINVAL);
	ERR_HAS("id: must not be empty");
	vmc_pmem_free(&p);
	p = pmem("x", "", false);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), -EINVAL);
	ERR_HAS("path_on_host");
	vmc_pmem_free(&p);
	for (unsigned i = c.npmem; i < VMC_MAX_PMEM; i++) {
		char id[8];
		snprintf(id, sizeof(id), "p%u", i);
		p = pmem(id, "/p", false);
		cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), 0, "%s", err);
	}
	p = pmem("one_more", "/p", false);
	cr_assert_eq(vm_config_put_pmem(&c, &p, err, sizeof(err)), -EINVAL);
	ERR_HAS("at most 8 pmem devices");
	vmc_pmem_free(&p);

	struct vmc_pmem_patch pp = {
	    .id = strdup("b"),
	    .rate_limiter = {.has_ops = true, .v.ops = {.size = 3, .refill_time_ms = 10}}};
	cr_assert_eq(vm_config_patch_pmem(&c, &pp, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.pmem[1].rate_limiter.ops.size, 3);
	vmc_pmem_patch_free(&pp);
	pp = (struct vmc_pmem_patch){.id = strdup("zz")};
	cr_assert_eq(vm_config_patch_pmem(&c, &pp, err, sizeof(err)), -EINVAL);
	ERR_HAS("no pmem device 'zz'");
	vmc_pmem_patch_free(&pp);

	cr_assert_eq(vm_config_copy(&d, &c), 0);
	cr_assert(vm_config_equal(&c, &d));
	cr_assert_neq(c.pmem[0].path_on_host, d.pmem[0].path_on_host, "a deep copy");
	d.pmem[1].read_only = true;
	cr_assert_not(vm_config_equal(&c, &d));
	vm_config_free(&d);

	cr_assert(vm_config_features(&c) & VMC_F_PMEM);
	cr_assert_eq(vm_config_check_supported(&c, vm_supported_features, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(vm_config_check_supported(&c, ~VMC_F_PMEM, err, sizeof(err)), -EOPNOTSUPP);
	ERR_HAS("flint does not support virtio-pmem devices (pmem)");
	vm_config_free(&c);
}
