/* vm_config_cli: the vm_config of flint's command line. See
 * vm_config_cli.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cli.h"
#include "config/cmdline.h"
#include "config/vm_config_cli.h"
#include "x86/layout.h"

/* *dst = a copy of src, or NULL for NULL; false when out of memory. */
static bool set(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return !src || *dst;
}

static char *dup_or_numbered(const char *s, const char *prefix, unsigned n)
{
	char name[32];

	if (s)
		return strdup(s);
	snprintf(name, sizeof(name), "%s%u", prefix, n);
	return strdup(name);
}

/* Whether the kernel's part of s (before its "--") has an ip= word. */
static bool has_ip_arg(const char *s)
{
	const char *init;
	size_t len = s ? cmdline_split(s, &init) : 0;

	for (size_t i = 0; i + 3 <= len; i++)
		if ((i == 0 || s[i - 1] == ' ') && !strncmp(s + i, "ip=", 3))
			return true;
	return false;
}

/* The kernel's ip= for the first --net user interface, in buf: the
 * addresses passt serves (vm_config.h), so that the guest is on the
 * network before init runs (no DHCP client to wait for), its DNS server
 * in /proc/net/pnp. Nothing when there is none, or when the user's
 * --cmdline or --append has an ip= of its own. */
static void user_ip_arg(const struct config *cfg, char *buf, size_t len)
{
	buf[0] = '\0';
	if (has_ip_arg(cfg->cmdline) || has_ip_arg(cfg->append))
		return;
	for (unsigned i = 0; i < cfg->nnets; i++)
		if (cfg->nets[i].user) {
			snprintf(buf, len, "ip=%s::%s:%s::eth%u:off:%s", VMC_USER_ADDR,
				 VMC_USER_GATEWAY, VMC_USER_NETMASK, i, VMC_USER_DNS);
			return;
		}
}

int vm_config_from_cli(struct vm_config *c, const struct config *cfg, char *err, size_t errlen)
{
	char ip[128];
	int r = -ENOMEM;

	vm_config_init(c);
	if (cfg->mem % (1ULL << 20)) {
		snprintf(err, errlen, "--mem: %llu KiB is not a whole number of MiB",
			 (unsigned long long)(cfg->mem >> 10));
		return -EINVAL;
	}
	c->machine.vcpu_count = cfg->vcpus;
	c->machine.mem_size_mib = cfg->mem >> 20;
	if ((r = vmc_machine_check(&c->machine, err, errlen)) < 0)
		return r;

	user_ip_arg(cfg, ip, sizeof(ip));
	c->boot.boot_args = cli_guest_cmdline(cfg, ip[0] ? ip : NULL, CMDLINE_MAX, err, errlen);
	if (!c->boot.boot_args) {
		vm_config_free(c);
		return -EINVAL;
	}
	r = -ENOMEM;
	if (!set(&c->boot.kernel_image_path, cfg->kernel) ||
	    !set(&c->boot.initrd_path, cfg->initrd))
		goto err;

	for (unsigned i = 0; i < cfg->ndrives; i++) {
		const struct drive_cfg *s = &cfg->drives[i];
		/* flint's drives have always done the guest's flushes: Writeback,
		 * where Firecracker's API defaults to Unsafe. */
		struct vmc_drive d = {.is_read_only = s->read_only,
				      .direct = s->direct,
				      .keep_blocks = s->keep_blocks,
				      .cache_type = VMC_CACHE_WRITEBACK};
		if (!(d.drive_id = dup_or_numbered(s->id, "drive", i)) ||
		    !(d.path_on_host = strdup(s->path))) {
			vmc_drive_free(&d);
			goto err;
		}
		/* A PUT replaces a drive of the same id; two --drive do not. */
		if (vm_config_find_drive(c, d.drive_id) >= 0) {
			snprintf(err, errlen, "--drive %s: another drive has the id '%s'", s->path,
				 d.drive_id);
			vmc_drive_free(&d);
			r = -EINVAL;
			goto err_msg;
		}
		if ((r = vm_config_put_drive(c, &d, err, errlen)) < 0) {
			vmc_drive_free(&d);
			goto err_msg;
		}
		r = -ENOMEM;
	}
	for (unsigned i = 0; i < cfg->nnets; i++) {
		const struct net_cfg *s = &cfg->nets[i];
		struct vmc_net n = {.has_guest_mac = s->has_mac, .user = s->user, .fd = s->fd};
		memcpy(n.guest_mac, s->mac, 6);
		if (!(n.iface_id = dup_or_numbered(s->id, "net", i)) ||
		    (s->tap && !(n.host_dev_name = strdup(s->tap)))) {
			vmc_net_free(&n);
			goto err;
		}
		if (vm_config_find_net(c, n.iface_id) >= 0) {
			snprintf(err, errlen, "--net %s%s: another interface has the id '%s'",
				 s->tap ? "tap=" : "user", s->tap ? s->tap : "", n.iface_id);
			vmc_net_free(&n);
			r = -EINVAL;
			goto err_msg;
		}
		if ((r = vm_config_put_net(c, &n, err, errlen)) < 0) {
			vmc_net_free(&n);
			goto err_msg;
		}
		r = -ENOMEM;
	}
	if (cfg->vsock.enabled) {
		struct vmc_vsock v = {.guest_cid = cfg->vsock.cid};
		if (!(v.uds_path = strdup(cfg->vsock.uds)))
			goto err;
		if ((r = vm_config_set_vsock(c, &v, err, errlen)) < 0) {
			vmc_vsock_free(&v);
			goto err_msg;
		}
	}
	return 0;

err:
	snprintf(err, errlen, "out of memory");
err_msg:
	vm_config_free(c);
	return r;
}
