/* vm_config: Firecracker's resources, their defaults and rules. See
 * vm_config.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cli.h"
#include "config/cmdline.h"
#include "config/vm_config.h"
#include "x86/layout.h"

_Static_assert(VMC_MAX_VCPUS == MAX_VCPUS, "vm_config and cli agree on vCPUs");
_Static_assert(VMC_MAX_DRIVES == MAX_DRIVES, "vm_config and cli agree on drives");
_Static_assert(VMC_MAX_NETS == MAX_NETS, "vm_config and cli agree on interfaces");

void vm_config_init(struct vm_config *c)
{
	*c = (struct vm_config){
	    .machine = {.vcpu_count = VMC_DEFAULT_VCPUS, .mem_size_mib = VMC_DEFAULT_MEM_MIB},
	    .logger = {.level = VMC_LOG_INFO},
	};
}

void vmc_boot_free(struct vmc_boot *b)
{
	if (!b)
		return;
	free(b->kernel_image_path);
	free(b->initrd_path);
	free(b->boot_args);
	*b = (struct vmc_boot){0};
}

void vmc_drive_free(struct vmc_drive *d)
{
	if (!d)
		return;
	free(d->drive_id);
	free(d->path_on_host);
	free(d->socket);
	free(d->partuuid);
	*d = (struct vmc_drive){0};
}

void vmc_drive_patch_free(struct vmc_drive_patch *p)
{
	if (!p)
		return;
	free(p->drive_id);
	free(p->path_on_host);
	*p = (struct vmc_drive_patch){0};
}

void vmc_net_free(struct vmc_net *n)
{
	if (!n)
		return;
	free(n->iface_id);
	free(n->host_dev_name);
	*n = (struct vmc_net){0};
}

void vmc_net_patch_free(struct vmc_net_patch *p)
{
	if (!p)
		return;
	free(p->iface_id);
	*p = (struct vmc_net_patch){0};
}

void vmc_pmem_free(struct vmc_pmem *p)
{
	if (!p)
		return;
	free(p->id);
	free(p->path_on_host);
	*p = (struct vmc_pmem){0};
}

void vmc_pmem_patch_free(struct vmc_pmem_patch *p)
{
	if (!p)
		return;
	free(p->id);
	*p = (struct vmc_pmem_patch){0};
}

void vmc_vsock_free(struct vmc_vsock *v)
{
	if (!v)
		return;
	free(v->uds_path);
	free(v->vsock_id);
	*v = (struct vmc_vsock){0};
}

void vmc_logger_free(struct vmc_logger *l)
{
	if (!l)
		return;
	free(l->log_path);
	free(l->module);
	*l = (struct vmc_logger){.level = VMC_LOG_INFO};
}

void vmc_metrics_free(struct vmc_metrics *m)
{
	if (!m)
		return;
	free(m->metrics_path);
	m->metrics_path = NULL;
}

void vmc_serial_free(struct vmc_serial *s)
{
	if (!s)
		return;
	free(s->serial_out_path);
	*s = (struct vmc_serial){0};
}

void vm_config_free(struct vm_config *c)
{
	if (!c)
		return;
	vmc_boot_free(&c->boot);
	for (unsigned i = 0; i < c->ndrives; i++)
		vmc_drive_free(&c->drives[i]);
	for (unsigned i = 0; i < c->nnets; i++)
		vmc_net_free(&c->nets[i]);
	for (unsigned i = 0; i < c->npmem; i++)
		vmc_pmem_free(&c->pmem[i]);
	vmc_vsock_free(&c->vsock);
	vmc_logger_free(&c->logger);
	vmc_metrics_free(&c->metrics);
	vmc_serial_free(&c->serial);
	vm_config_init(c);
}

/* strdup that keeps NULL; false only when out of memory. */
static bool dup_str(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return !src || *dst;
}

int vm_config_copy(struct vm_config *dst, const struct vm_config *src)
{
	bool ok;

	*dst = *src;
	/* dst shares src's strings until each is duplicated: clear them first
	 * so that a failure frees only dst's own. */
	dst->boot = (struct vmc_boot){0};
	for (unsigned i = 0; i < src->ndrives; i++)
		dst->drives[i].drive_id = dst->drives[i].path_on_host = dst->drives[i].socket =
		    dst->drives[i].partuuid = NULL;
	for (unsigned i = 0; i < src->nnets; i++)
		dst->nets[i].iface_id = dst->nets[i].host_dev_name = NULL;
	for (unsigned i = 0; i < src->npmem; i++)
		dst->pmem[i].id = dst->pmem[i].path_on_host = NULL;
	dst->vsock.uds_path = dst->vsock.vsock_id = NULL;
	dst->logger.log_path = dst->logger.module = NULL;
	dst->metrics.metrics_path = NULL;
	dst->serial.serial_out_path = NULL;

	ok = dup_str(&dst->boot.kernel_image_path, src->boot.kernel_image_path) &&
	     dup_str(&dst->boot.initrd_path, src->boot.initrd_path) &&
	     dup_str(&dst->boot.boot_args, src->boot.boot_args);
	for (unsigned i = 0; ok && i < src->ndrives; i++) {
		const struct vmc_drive *s = &src->drives[i];
		struct vmc_drive *d = &dst->drives[i];
		ok = dup_str(&d->drive_id, s->drive_id) &&
		     dup_str(&d->path_on_host, s->path_on_host) && dup_str(&d->socket, s->socket) &&
		     dup_str(&d->partuuid, s->partuuid);
	}
	for (unsigned i = 0; ok && i < src->nnets; i++)
		ok = dup_str(&dst->nets[i].iface_id, src->nets[i].iface_id) &&
		     dup_str(&dst->nets[i].host_dev_name, src->nets[i].host_dev_name);
	for (unsigned i = 0; ok && i < src->npmem; i++)
		ok = dup_str(&dst->pmem[i].id, src->pmem[i].id) &&
		     dup_str(&dst->pmem[i].path_on_host, src->pmem[i].path_on_host);
	ok = ok && dup_str(&dst->vsock.uds_path, src->vsock.uds_path) &&
	     dup_str(&dst->vsock.vsock_id, src->vsock.vsock_id) &&
	     dup_str(&dst->logger.log_path, src->logger.log_path) &&
	     dup_str(&dst->logger.module, src->logger.module) &&
	     dup_str(&dst->metrics.metrics_path, src->metrics.metrics_path) &&
	     dup_str(&dst->serial.serial_out_path, src->serial.serial_out_path);
	if (!ok) {
		vm_config_free(dst);
		return -ENOMEM;
	}
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool drive_eq(const struct vmc_drive *a, const struct vmc_drive *b)
{
	return str_eq(a->drive_id, b->drive_id) && str_eq(a->path_on_host, b->path_on_host) &&
	       str_eq(a->socket, b->socket) && str_eq(a->partuuid, b->partuuid) &&
	       a->is_root_device == b->is_root_device && a->is_read_only == b->is_read_only &&
	       a->cache_type == b->cache_type && a->io_engine == b->io_engine &&
	       ratelimit_cfg_eq(&a->rate_limiter, &b->rate_limiter) && a->direct == b->direct;
}

static bool net_eq(const struct vmc_net *a, const struct vmc_net *b)
{
	return str_eq(a->iface_id, b->iface_id) && str_eq(a->host_dev_name, b->host_dev_name) &&
	       a->user == b->user && a->has_guest_mac == b->has_guest_mac &&
	       (!a->has_guest_mac || !memcmp(a->guest_mac, b->guest_mac, 6)) && a->mtu == b->mtu &&
	       ratelimit_cfg_eq(&a->rx_rate_limiter, &b->rx_rate_limiter) &&
	       ratelimit_cfg_eq(&a->tx_rate_limiter, &b->tx_rate_limiter) && a->mmds == b->mmds;
}

static bool pmem_eq(const struct vmc_pmem *a, const struct vmc_pmem *b)
{
	return str_eq(a->id, b->id) && str_eq(a->path_on_host, b->path_on_host) &&
	       a->root_device == b->root_device && a->read_only == b->read_only &&
	       ratelimit_cfg_eq(&a->rate_limiter, &b->rate_limiter);
}

static bool cpu_config_eq(const struct vmc_cpu_config *a, const struct vmc_cpu_config *b)
{
	if (a->enabled != b->enabled || a->ncpuid != b->ncpuid || a->nmsr != b->nmsr ||
	    a->ncap != b->ncap)
		return false;
	for (unsigned i = 0; i < a->ncap; i++)
		if (a->cap[i].cap != b->cap[i].cap || a->cap[i].remove != b->cap[i].remove)
			return false;
	for (unsigned i = 0; i < a->ncpuid; i++) {
		const struct vmc_cpuid_mod *x = &a->cpuid[i], *y = &b->cpuid[i];

		if (x->leaf != y->leaf || x->subleaf != y->subleaf || x->flags != y->flags ||
		    x->regs != y->regs)
			return false;
		for (unsigned r = 0; r < 4; r++)
			if (x->mask[r] != y->mask[r] || x->value[r] != y->value[r])
				return false;
	}
	for (unsigned i = 0; i < a->nmsr; i++)
		if (a->msr[i].addr != b->msr[i].addr || a->msr[i].mask != b->msr[i].mask ||
		    a->msr[i].value != b->msr[i].value)
			return false;
	return true;
}

bool vm_config_equal(const struct vm_config *a, const struct vm_config *b)
{
	const struct vmc_machine *ma = &a->machine, *mb = &b->machine;

	if (ma->vcpu_count != mb->vcpu_count || ma->mem_size_mib != mb->mem_size_mib ||
	    ma->smt != mb->smt || ma->track_dirty_pages != mb->track_dirty_pages ||
	    ma->cpu_template != mb->cpu_template || ma->huge_pages != mb->huge_pages)
		return false;
	if (!str_eq(a->boot.kernel_image_path, b->boot.kernel_image_path) ||
	    !str_eq(a->boot.initrd_path, b->boot.initrd_path) ||
	    !str_eq(a->boot.boot_args, b->boot.boot_args))
		return false;
	if (a->ndrives != b->ndrives || a->nnets != b->nnets || a->npmem != b->npmem)
		return false;
	for (unsigned i = 0; i < a->npmem; i++)
		if (!pmem_eq(&a->pmem[i], &b->pmem[i]))
			return false;
	for (unsigned i = 0; i < a->ndrives; i++)
		if (!drive_eq(&a->drives[i], &b->drives[i]))
			return false;
	for (unsigned i = 0; i < a->nnets; i++)
		if (!net_eq(&a->nets[i], &b->nets[i]))
			return false;
	if (a->vsock.enabled != b->vsock.enabled ||
	    (a->vsock.enabled && (a->vsock.guest_cid != b->vsock.guest_cid ||
				  !str_eq(a->vsock.uds_path, b->vsock.uds_path) ||
				  !str_eq(a->vsock.vsock_id, b->vsock.vsock_id))))
		return false;
	if (a->logger.enabled != b->logger.enabled ||
	    (a->logger.enabled &&
	     (!str_eq(a->logger.log_path, b->logger.log_path) ||
	      a->logger.level != b->logger.level || a->logger.show_level != b->logger.show_level ||
	      a->logger.show_log_origin != b->logger.show_log_origin ||
	      !str_eq(a->logger.module, b->logger.module))))
		return false;
	if (!str_eq(a->metrics.metrics_path, b->metrics.metrics_path))
		return false;
	if (a->entropy.enabled != b->entropy.enabled ||
	    (a->entropy.enabled &&
	     !ratelimit_cfg_eq(&a->entropy.rate_limiter, &b->entropy.rate_limiter)))
		return false;
	if (a->balloon.enabled != b->balloon.enabled ||
	    (a->balloon.enabled &&
	     (a->balloon.amount_mib != b->balloon.amount_mib ||
	      a->balloon.deflate_on_oom != b->balloon.deflate_on_oom ||
	      a->balloon.stats_polling_interval_s != b->balloon.stats_polling_interval_s ||
	      a->balloon.free_page_hinting != b->balloon.free_page_hinting ||
	      a->balloon.free_page_reporting != b->balloon.free_page_reporting)))
		return false;
	if (a->memory_hotplug.enabled != b->memory_hotplug.enabled ||
	    (a->memory_hotplug.enabled &&
	     (a->memory_hotplug.total_size_mib != b->memory_hotplug.total_size_mib ||
	      a->memory_hotplug.slot_size_mib != b->memory_hotplug.slot_size_mib ||
	      a->memory_hotplug.block_size_mib != b->memory_hotplug.block_size_mib)))
		return false;
	if (!cpu_config_eq(&a->cpu_config, &b->cpu_config))
		return false;
	if (a->mmds.enabled != b->mmds.enabled ||
	    (a->mmds.enabled &&
	     (a->mmds.v2 != b->mmds.v2 || a->mmds.imds_compat != b->mmds.imds_compat ||
	      a->mmds.ipv4 != b->mmds.ipv4)))
		return false;
	if (a->serial.enabled != b->serial.enabled ||
	    (a->serial.enabled &&
	     (!str_eq(a->serial.serial_out_path, b->serial.serial_out_path) ||
	      !ratelimit_bucket_cfg_eq(&a->serial.rate_limiter, &b->serial.rate_limiter))))
		return false;
	return true;
}

/* ---- field checks ------------------------------------------------------ */

static bool bucket_limits(const struct ratelimit_bucket_cfg *b)
{
	return b->size && b->refill_time_ms;
}

static bool rl_any(const struct ratelimit_cfg *r)
{
	return bucket_limits(&r->bandwidth) || bucket_limits(&r->ops);
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		return -EINVAL;                                                                    \
	} while (0)

int vmc_machine_check(const struct vmc_machine *m, char *err, size_t errlen)
{
	/* Firecracker's own rule: 1 to 32 vCPUs, and with SMT 1 or an even
	 * number (a core holds two threads); flint's limit is the same 32. */
	if (m->vcpu_count < 1 || m->vcpu_count > VMC_MAX_VCPUS)
		FAIL("vcpu_count: must be from 1 to %d, got %u", VMC_MAX_VCPUS, m->vcpu_count);
	if (m->smt && m->vcpu_count > 1 && m->vcpu_count % 2)
		FAIL("vcpu_count: with smt enabled it must be 1 or an even number, got %u",
		     m->vcpu_count);
	/* Firecracker takes any size above 0; flint's lower bound is the
	 * --mem one. */
	if (m->mem_size_mib < VMC_MIN_MEM_MIB || m->mem_size_mib > VMC_MAX_MEM_MIB)
		FAIL("mem_size_mib: must be from %llu to %llu (16 MiB to 1 TiB), got %llu",
		     VMC_MIN_MEM_MIB, VMC_MAX_MEM_MIB, (unsigned long long)m->mem_size_mib);
	if (m->huge_pages == VMC_HUGE_PAGES_2M && m->mem_size_mib % 2)
		FAIL("mem_size_mib: with 2M huge pages it must be a multiple of 2, got %llu",
		     (unsigned long long)m->mem_size_mib);
	return 0;
}

static int path_check(const char *field, const char *p, size_t max, char *err, size_t errlen)
{
	if (!*p)
		FAIL("%s: must not be empty", field);
	if (strlen(p) > max)
		FAIL("%s: longer than %zu bytes", field, max);
	return 0;
}

int vmc_boot_check(const struct vmc_boot *b, char *err, size_t errlen)
{
	int r;

	if (!b->kernel_image_path)
		FAIL("missing required field 'kernel_image_path'");
	if ((r = path_check("kernel_image_path", b->kernel_image_path, VMC_MAX_PATH, err, errlen)) <
	    0)
		return r;
	if (b->initrd_path &&
	    (r = path_check("initrd_path", b->initrd_path, VMC_MAX_PATH, err, errlen)) < 0)
		return r;
	return 0;
}

int vmc_boot_args_check(const struct vmc_boot *b, char *err, size_t errlen)
{
	return b->boot_args ? cmdline_check("boot_args", b->boot_args, CMDLINE_MAX, err, errlen)
			    : 0;
}

static int id_check(const char *field, const char *id, char *err, size_t errlen)
{
	if (!id || !*id)
		FAIL("%s: must not be empty", field);
	if (strlen(id) > VMC_MAX_ID)
		FAIL("%s: longer than %d bytes", field, VMC_MAX_ID);
	return 0;
}

int vmc_path_id_check(const char *id, char *err, size_t errlen)
{
	/* Firecracker's rule for the {id} of a path (its checked_id), with
	 * letters and digits taken as ASCII ones. */
	if (!*id)
		FAIL("the id in the path must not be empty");
	for (const char *s = id; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			FAIL("the id in the path, '%.*s', may hold only letters, digits and "
			     "underscores",
			     VMC_MAX_ID, id);
	if (strlen(id) > VMC_MAX_ID)
		FAIL("the id in the path is longer than %d bytes", VMC_MAX_ID);
	return 0;
}

int vmc_bucket_check(const char *field, const struct ratelimit_bucket_cfg *b, char *err,
		     size_t errlen)
{
	/* The API's int64, which ratelimit_init() takes and JSON (jansson's
	 * signed 64-bit integers) can carry. */
	if (b->size > INT64_MAX)
		FAIL("%s.size: at most %lld, got %llu", field, (long long)INT64_MAX,
		     (unsigned long long)b->size);
	if (b->one_time_burst > INT64_MAX)
		FAIL("%s.one_time_burst: at most %lld, got %llu", field, (long long)INT64_MAX,
		     (unsigned long long)b->one_time_burst);
	if (b->refill_time_ms > INT64_MAX)
		FAIL("%s.refill_time: at most %lld, got %llu", field, (long long)INT64_MAX,
		     (unsigned long long)b->refill_time_ms);
	return 0;
}

static int rl_check(const char *field, const struct ratelimit_cfg *r, char *err, size_t errlen)
{
	char f[64];
	int ret;

	snprintf(f, sizeof(f), "%s.bandwidth", field);
	if ((ret = vmc_bucket_check(f, &r->bandwidth, err, errlen)) < 0)
		return ret;
	snprintf(f, sizeof(f), "%s.ops", field);
	return vmc_bucket_check(f, &r->ops, err, errlen);
}

int vmc_drive_check(const struct vmc_drive *d, char *err, size_t errlen)
{
	int r;

	if ((r = id_check("drive_id", d->drive_id, err, errlen)) < 0)
		return r;
	/* Firecracker tells the kinds apart by which of the two is given. */
	if (d->path_on_host && d->socket)
		FAIL(
		    "a drive takes path_on_host (virtio-blk) or socket (vhost-user-blk), not both");
	if (!d->path_on_host && !d->socket)
		FAIL("missing required field 'path_on_host' (or 'socket' for vhost-user-blk)");
	if (d->path_on_host &&
	    (r = path_check("path_on_host", d->path_on_host, VMC_MAX_PATH, err, errlen)) < 0)
		return r;
	if (d->socket) {
		if ((r = path_check("socket", d->socket, VMC_MAX_PATH, err, errlen)) < 0)
			return r;
		if (d->is_read_only || rl_any(&d->rate_limiter) ||
		    d->io_engine != VMC_IO_ENGINE_SYNC || d->direct)
			FAIL("a vhost-user-blk drive (socket) takes no is_read_only, rate_limiter, "
			     "io_engine or flint_direct");
	}
	if (d->partuuid && !*d->partuuid)
		FAIL("partuuid: must not be empty");
	/* It becomes root=PARTUUID=<it>, one word of the kernel's command
	 * line: a space, a quote or "--" would add arguments. */
	if (d->partuuid &&
	    (d->partuuid[strcspn(d->partuuid, " \t\n\"\\")] || strstr(d->partuuid, "--")))
		FAIL("partuuid: '%.64s' must be one word (no space, quote, backslash or '--')",
		     d->partuuid);
	return rl_check("rate_limiter", &d->rate_limiter, err, errlen);
}

int vmc_pmem_check(const struct vmc_pmem *p, char *err, size_t errlen)
{
	int r;

	if ((r = id_check("id", p->id, err, errlen)) < 0 ||
	    (r = path_check("path_on_host", p->path_on_host, VMC_MAX_PATH, err, errlen)) < 0)
		return r;
	return rl_check("rate_limiter", &p->rate_limiter, err, errlen);
}

int vmc_net_check(const struct vmc_net *n, char *err, size_t errlen)
{
	int r;

	if ((r = id_check("iface_id", n->iface_id, err, errlen)) < 0)
		return r;
	if (n->user && n->host_dev_name)
		FAIL("host_dev_name: a user interface (passt) has no tap");
	if (!n->user && (!n->host_dev_name || !*n->host_dev_name))
		FAIL("host_dev_name: must not be empty");
	if (!n->user &&
	    (strlen(n->host_dev_name) > VMC_MAX_IFNAME || strchr(n->host_dev_name, '/')))
		FAIL("host_dev_name: '%.64s' is not an interface name (at most %d bytes, no '/')",
		     n->host_dev_name, VMC_MAX_IFNAME);
	/* A multicast address cannot be a station's (as --net). */
	if (n->has_guest_mac && n->guest_mac[0] & 1)
		FAIL("guest_mac: %02x:%02x:%02x:%02x:%02x:%02x is a multicast address",
		     n->guest_mac[0], n->guest_mac[1], n->guest_mac[2], n->guest_mac[3],
		     n->guest_mac[4], n->guest_mac[5]);
	if (n->mtu && (n->mtu < VMC_MIN_MTU || n->mtu > VMC_MAX_MTU))
		FAIL("mtu: must be from %d to %d, got %u", VMC_MIN_MTU, VMC_MAX_MTU, n->mtu);
	if (n->user && n->mtu > VMC_MAX_MTU_USER)
		FAIL("mtu: at most %d on a user interface (passt takes frames of up to 65535 "
		     "bytes), got %u",
		     VMC_MAX_MTU_USER, n->mtu);
	if ((r = rl_check("rx_rate_limiter", &n->rx_rate_limiter, err, errlen)) < 0)
		return r;
	return rl_check("tx_rate_limiter", &n->tx_rate_limiter, err, errlen);
}

int vmc_vsock_check(const struct vmc_vsock *v, char *err, size_t errlen)
{
	/* 0-2 are the hypervisor, local and host; -1 is VMADDR_CID_ANY. */
	if (v->guest_cid < 3 || v->guest_cid == UINT32_MAX)
		FAIL("guest_cid: must be from 3 to 4294967294, got %u", v->guest_cid);
	if (!v->uds_path)
		FAIL("missing required field 'uds_path'");
	return path_check("uds_path", v->uds_path, VMC_MAX_UDS_PATH, err, errlen);
}

void vmc_bucket_normalise(struct ratelimit_bucket_cfg *b)
{
	/* Firecracker builds no bucket from these: they limit nothing. */
	if (!b->size || !b->refill_time_ms)
		*b = (struct ratelimit_bucket_cfg){0};
}

void vmc_ratelimit_normalise(struct ratelimit_cfg *r)
{
	vmc_bucket_normalise(&r->bandwidth);
	vmc_bucket_normalise(&r->ops);
}

/* ---- updates ----------------------------------------------------------- */

int vm_config_set_machine(struct vm_config *c, const struct vmc_machine *m, char *err,
			  size_t errlen)
{
	int r;

	if ((r = vmc_machine_check(m, err, errlen)) < 0)
		return r;
	if (c->balloon.enabled && c->balloon.amount_mib > m->mem_size_mib)
		return err_set(err, errlen, -EINVAL,
			       "mem_size_mib: The memory size (MiB) is smaller than the previously "
			       "set balloon device target size (%u MiB).",
			       c->balloon.amount_mib);
	if (m->cpu_template != VMC_CPU_TEMPLATE_NONE)
		c->cpu_config.enabled = false; /* the last template set wins */
	c->machine = *m;
	return 0;
}

int vm_config_patch_machine(struct vm_config *c, const struct vmc_machine_patch *p, char *err,
			    size_t errlen)
{
	struct vmc_machine m = c->machine;

	if (!(p->has_vcpu_count || p->has_mem_size_mib || p->has_smt || p->has_track_dirty_pages ||
	      p->has_cpu_template || p->has_huge_pages))
		FAIL("nothing to change: the PATCH body names no machine-config field");
	if (p->has_vcpu_count)
		m.vcpu_count = p->v.vcpu_count;
	if (p->has_mem_size_mib)
		m.mem_size_mib = p->v.mem_size_mib;
	if (p->has_smt)
		m.smt = p->v.smt;
	if (p->has_track_dirty_pages)
		m.track_dirty_pages = p->v.track_dirty_pages;
	if (p->has_cpu_template)
		m.cpu_template = p->v.cpu_template;
	if (p->has_huge_pages)
		m.huge_pages = p->v.huge_pages;
	int r = vm_config_set_machine(c, &m, err, errlen);
	/* A template named again, even None, replaces a custom one. */
	if (r == 0 && p->has_cpu_template)
		c->cpu_config.enabled = false;
	return r;
}

int vm_config_set_boot(struct vm_config *c, struct vmc_boot *b, char *err, size_t errlen)
{
	int r;

	if ((r = vmc_boot_check(b, err, errlen)) < 0)
		return r;
	vmc_boot_free(&c->boot);
	c->boot = *b;
	*b = (struct vmc_boot){0};
	return 0;
}

int vm_config_find_drive(const struct vm_config *c, const char *drive_id)
{
	for (unsigned i = 0; i < c->ndrives; i++)
		if (!strcmp(c->drives[i].drive_id, drive_id))
			return i;
	return -1;
}

int vm_config_find_net(const struct vm_config *c, const char *iface_id)
{
	for (unsigned i = 0; i < c->nnets; i++)
		if (!strcmp(c->nets[i].iface_id, iface_id))
			return i;
	return -1;
}

int vm_config_find_pmem(const struct vm_config *c, const char *id)
{
	for (unsigned i = 0; i < c->npmem; i++)
		if (!strcmp(c->pmem[i].id, id))
			return i;
	return -1;
}

int vm_config_root_pmem(const struct vm_config *c)
{
	for (unsigned i = 0; i < c->npmem; i++)
		if (c->pmem[i].root_device)
			return i;
	return -1;
}

int vm_config_put_drive(struct vm_config *c, struct vmc_drive *d, char *err, size_t errlen)
{
	int r, at = vm_config_find_drive(c, d->drive_id ? d->drive_id : ""),
	       root_pmem = vm_config_root_pmem(c);

	if ((r = vmc_drive_check(d, err, errlen)) < 0)
		return r;
	/* Only drives[0] can be the root device; replacing it is fine. */
	if (d->is_root_device && c->ndrives && c->drives[0].is_root_device && at != 0)
		FAIL("drive '%s': a root device already exists ('%s')", d->drive_id,
		     c->drives[0].drive_id);
	if (d->is_root_device && root_pmem >= 0)
		FAIL("drive '%s': the root device is already pmem device '%s'", d->drive_id,
		     c->pmem[root_pmem].id);
	if (at < 0 && c->ndrives == VMC_MAX_DRIVES)
		FAIL("drive '%s': flint takes at most %d drives", d->drive_id, VMC_MAX_DRIVES);

	vmc_ratelimit_normalise(&d->rate_limiter);
	if (at >= 0) {
		vmc_drive_free(&c->drives[at]);
	} else if (d->is_root_device) {
		memmove(&c->drives[1], &c->drives[0], c->ndrives * sizeof(c->drives[0]));
		at = 0;
		c->ndrives++;
	} else {
		at = c->ndrives++;
	}
	c->drives[at] = *d;
	*d = (struct vmc_drive){0};
	/* Firecracker swaps a drive that becomes root with the first one. */
	if (at > 0 && c->drives[at].is_root_device) {
		struct vmc_drive t = c->drives[0];
		c->drives[0] = c->drives[at];
		c->drives[at] = t;
	}
	return 0;
}

/* Apply the buckets p names to r: a bucket given replaces, one given with
 * size or refill_time 0 removes the limit, one not given stays. */
static void rl_patch(struct ratelimit_cfg *r, const struct vmc_rl_patch *p)
{
	if (p->has_bandwidth)
		r->bandwidth = p->v.bandwidth;
	if (p->has_ops)
		r->ops = p->v.ops;
	vmc_ratelimit_normalise(r);
}

int vm_config_patch_drive(struct vm_config *c, struct vmc_drive_patch *p, char *err, size_t errlen)
{
	int r, at = vm_config_find_drive(c, p->drive_id ? p->drive_id : "");
	struct vmc_drive *d;

	if (at < 0)
		FAIL("no drive '%.*s' to update", VMC_MAX_ID, p->drive_id ? p->drive_id : "");
	d = &c->drives[at];
	if (d->socket &&
	    (p->path_on_host || p->rate_limiter.has_bandwidth || p->rate_limiter.has_ops))
		FAIL("drive '%s' is a vhost-user-blk drive: it has no path_on_host or rate_limiter "
		     "to update",
		     d->drive_id);
	if (p->path_on_host &&
	    (r = path_check("path_on_host", p->path_on_host, VMC_MAX_PATH, err, errlen)) < 0)
		return r;
	if ((r = rl_check("rate_limiter", &p->rate_limiter.v, err, errlen)) < 0)
		return r;
	if (p->path_on_host) {
		free(d->path_on_host);
		d->path_on_host = p->path_on_host;
		p->path_on_host = NULL;
	}
	rl_patch(&d->rate_limiter, &p->rate_limiter);
	return 0;
}

/* Firecracker keeps the devices in the order they were first put, the
 * guest's /dev/pmem<N>; a second root device is refused, replacing the
 * root device itself is not. */
int vm_config_put_pmem(struct vm_config *c, struct vmc_pmem *p, char *err, size_t errlen)
{
	int r, at = vm_config_find_pmem(c, p->id ? p->id : ""), root = vm_config_root_pmem(c);

	if ((r = vmc_pmem_check(p, err, errlen)) < 0)
		return r;
	if (p->root_device && root >= 0 && root != at)
		FAIL("pmem '%s': a root pmem device already exists ('%s')", p->id,
		     c->pmem[root].id);
	if (p->root_device && c->ndrives && c->drives[0].is_root_device)
		FAIL("pmem '%s': the root device is already drive '%s'", p->id,
		     c->drives[0].drive_id);
	if (at < 0 && c->npmem == VMC_MAX_PMEM)
		FAIL("pmem '%s': flint takes at most %d pmem devices", p->id, VMC_MAX_PMEM);
	vmc_ratelimit_normalise(&p->rate_limiter);
	if (at >= 0)
		vmc_pmem_free(&c->pmem[at]);
	else
		at = c->npmem++;
	c->pmem[at] = *p;
	*p = (struct vmc_pmem){0};
	return 0;
}

int vm_config_patch_pmem(struct vm_config *c, struct vmc_pmem_patch *p, char *err, size_t errlen)
{
	int r, at = vm_config_find_pmem(c, p->id ? p->id : "");

	if (at < 0)
		FAIL("no pmem device '%.*s' to update", VMC_MAX_ID, p->id ? p->id : "");
	if ((r = rl_check("rate_limiter", &p->rate_limiter.v, err, errlen)) < 0)
		return r;
	rl_patch(&c->pmem[at].rate_limiter, &p->rate_limiter);
	return 0;
}

int vm_config_put_net(struct vm_config *c, struct vmc_net *n, char *err, size_t errlen)
{
	int r, at = vm_config_find_net(c, n->iface_id ? n->iface_id : "");

	if ((r = vmc_net_check(n, err, errlen)) < 0)
		return r;
	for (unsigned i = 0; i < c->nnets; i++) {
		const struct vmc_net *o = &c->nets[i];
		if ((int)i == at)
			continue;
		if (o->host_dev_name && n->host_dev_name &&
		    !strcmp(o->host_dev_name, n->host_dev_name))
			FAIL("host_dev_name: '%s' is already used by interface '%s'",
			     n->host_dev_name, o->iface_id);
		/* One socket, two interfaces: each would read half of passt's
		 * stream and write frames into the other's. */
		if (n->user && o->user && n->fd && n->fd == o->fd)
			FAIL("fd: descriptor %d is already interface '%s''s passt socket", n->fd,
			     o->iface_id);
		if (n->has_guest_mac && o->has_guest_mac && !memcmp(o->guest_mac, n->guest_mac, 6))
			FAIL("guest_mac: %02x:%02x:%02x:%02x:%02x:%02x is already used by "
			     "interface '%s'",
			     n->guest_mac[0], n->guest_mac[1], n->guest_mac[2], n->guest_mac[3],
			     n->guest_mac[4], n->guest_mac[5], o->iface_id);
	}
	if (at < 0 && c->nnets == VMC_MAX_NETS)
		FAIL("interface '%s': flint takes at most %d network interfaces", n->iface_id,
		     VMC_MAX_NETS);
	vmc_ratelimit_normalise(&n->rx_rate_limiter);
	vmc_ratelimit_normalise(&n->tx_rate_limiter);
	if (at >= 0) {
		n->mmds = c->nets[at].mmds;
		vmc_net_free(&c->nets[at]);
	} else {
		at = c->nnets++;
	}
	c->nets[at] = *n;
	*n = (struct vmc_net){0};
	return 0;
}

void vmc_mmds_req_free(struct vmc_mmds_req *q)
{
	for (unsigned i = 0; i < q->nifaces; i++)
		free(q->ifaces[i]);
	*q = (struct vmc_mmds_req){0};
}

/* Firecracker's messages, but for the typo they begin with there
 * ("MMMDS config error"). */
int vm_config_set_mmds(struct vm_config *c, const struct vmc_mmds_req *q, char *err, size_t errlen)
{
	uint32_t a = ntohl(q->m.ipv4);

	if (a >> 16 != 0xa9fe || ((a >> 8) & 0xff) == 0 || ((a >> 8) & 0xff) == 255)
		FAIL("MMDS config error: The MMDS IPv4 address is not link local.");
	if (!q->nifaces)
		FAIL("MMDS config error: The list of network interface IDs that allow forwarding "
		     "MMDS requests is empty.");
	for (unsigned i = 0; i < q->nifaces; i++)
		if (vm_config_find_net(c, q->ifaces[i]) < 0)
			FAIL("MMDS config error: The list of network interface IDs provided "
			     "contains at least one ID that does not correspond to any existing "
			     "network interface. ('%.*s' is not configured)",
			     VMC_MAX_ID, q->ifaces[i]);
	for (unsigned i = 0; i < c->nnets; i++)
		c->nets[i].mmds = false;
	for (unsigned i = 0; i < q->nifaces; i++)
		c->nets[vm_config_find_net(c, q->ifaces[i])].mmds = true;
	c->mmds = q->m;
	c->mmds.enabled = true;
	return 0;
}

int vm_config_patch_net(struct vm_config *c, struct vmc_net_patch *p, char *err, size_t errlen)
{
	int r, at = vm_config_find_net(c, p->iface_id ? p->iface_id : "");

	if (at < 0)
		FAIL("no network interface '%.*s' to update", VMC_MAX_ID,
		     p->iface_id ? p->iface_id : "");
	if ((r = rl_check("rx_rate_limiter", &p->rx_rate_limiter.v, err, errlen)) < 0 ||
	    (r = rl_check("tx_rate_limiter", &p->tx_rate_limiter.v, err, errlen)) < 0)
		return r;
	rl_patch(&c->nets[at].rx_rate_limiter, &p->rx_rate_limiter);
	rl_patch(&c->nets[at].tx_rate_limiter, &p->tx_rate_limiter);
	return 0;
}

int vm_config_set_vsock(struct vm_config *c, struct vmc_vsock *v, char *err, size_t errlen)
{
	int r;

	if ((r = vmc_vsock_check(v, err, errlen)) < 0)
		return r;
	vmc_vsock_free(&c->vsock);
	c->vsock = *v;
	c->vsock.enabled = true;
	*v = (struct vmc_vsock){0};
	return 0;
}

void vm_config_set_logger(struct vm_config *c, struct vmc_logger *l)
{
	vmc_logger_free(&c->logger);
	c->logger = *l;
	c->logger.enabled = true;
	*l = (struct vmc_logger){.level = VMC_LOG_INFO};
}

void vm_config_update_logger(struct vm_config *c, struct vmc_logger *l)
{
	struct vmc_logger *o = &c->logger;

	o->enabled = true;
	o->level = l->level;
	if (l->log_path) {
		free(o->log_path);
		o->log_path = l->log_path;
		l->log_path = NULL;
	}
	if (l->has_show_level) {
		o->show_level = l->show_level;
		o->has_show_level = true;
	}
	if (l->has_show_log_origin) {
		o->show_log_origin = l->show_log_origin;
		o->has_show_log_origin = true;
	}
	if (l->module) {
		free(o->module);
		o->module = l->module;
		l->module = NULL;
	}
	vmc_logger_free(l);
}

void vm_config_set_metrics(struct vm_config *c, struct vmc_metrics *m)
{
	vmc_metrics_free(&c->metrics);
	c->metrics = *m;
	*m = (struct vmc_metrics){0};
}

void vm_config_set_entropy(struct vm_config *c, const struct vmc_entropy *e)
{
	c->entropy = *e;
	c->entropy.enabled = true;
	vmc_ratelimit_normalise(&c->entropy.rate_limiter);
}

void vm_config_set_serial(struct vm_config *c, struct vmc_serial *s)
{
	vmc_serial_free(&c->serial);
	c->serial = *s;
	c->serial.enabled = true;
	vmc_bucket_normalise(&c->serial.rate_limiter);
	*s = (struct vmc_serial){0};
}

/* The balloon's target against the machine's memory. */
static int balloon_amount_check(const struct vm_config *c, uint32_t amount_mib, char *err,
				size_t errlen)
{
	if (amount_mib > c->machine.mem_size_mib)
		return err_set(err, errlen, -EINVAL,
			       "amount_mib: %u MiB is more than the guest's memory (%llu MiB)",
			       amount_mib, (unsigned long long)c->machine.mem_size_mib);
	return 0;
}

void vm_config_set_cpu_config(struct vm_config *c, const struct vmc_cpu_config *t)
{
	c->cpu_config = *t;
	c->cpu_config.enabled = true;
	/* One template at a time, the last one set (Firecracker's rule). */
	c->machine.cpu_template = VMC_CPU_TEMPLATE_NONE;
}

int vm_config_set_balloon(struct vm_config *c, const struct vmc_balloon *b, char *err,
			  size_t errlen)
{
	int r = balloon_amount_check(c, b->amount_mib, err, errlen);

	if (r < 0)
		return r;
	c->balloon = *b;
	c->balloon.enabled = true;
	return 0;
}

int vm_config_patch_balloon(struct vm_config *c, uint32_t amount_mib, char *err, size_t errlen)
{
	int r;

	if (!c->balloon.enabled)
		return err_set(err, errlen, -ENOENT, "no balloon device is configured");
	if ((r = balloon_amount_check(c, amount_mib, err, errlen)) < 0)
		return r;
	c->balloon.amount_mib = amount_mib;
	return 0;
}

int vm_config_patch_balloon_stats(struct vm_config *c, uint32_t interval_s, bool started, char *err,
				  size_t errlen)
{
	if (!c->balloon.enabled)
		return err_set(err, errlen, -ENOENT, "no balloon device is configured");
	if (started && (interval_s == 0) != (c->balloon.stats_polling_interval_s == 0))
		return err_set(err, errlen, -EINVAL,
			       "stats_polling_interval_s: statistics cannot be turned %s once "
			       "the microVM has started",
			       interval_s ? "on" : "off");
	c->balloon.stats_polling_interval_s = interval_s;
	return 0;
}

/* Firecracker's MemoryHotplugConfig rules, in its order, with flint's
 * limit on memory for the total. */
static int memory_hotplug_check(const struct vmc_memory_hotplug *h, char *err, size_t errlen)
{
	uint32_t block = h->block_size_mib, slot = h->slot_size_mib, total = h->total_size_mib;

	if (block < VMC_HOTPLUG_DEFAULT_BLOCK_MIB || (block & (block - 1)))
		FAIL("block_size_mib: must be a power of two, at least %u MiB, got %u",
		     VMC_HOTPLUG_DEFAULT_BLOCK_MIB, block);
	if (slot < VMC_HOTPLUG_DEFAULT_SLOT_MIB)
		FAIL("slot_size_mib: must be at least %u MiB, got %u", VMC_HOTPLUG_DEFAULT_SLOT_MIB,
		     slot);
	if (slot % block)
		FAIL("slot_size_mib: must be a multiple of block_size_mib (%u MiB), got %u", block,
		     slot);
	if (total < slot)
		FAIL("total_size_mib: must be at least slot_size_mib (%u MiB), got %u", slot,
		     total);
	if (total % slot)
		FAIL("total_size_mib: must be a multiple of slot_size_mib (%u MiB), got %u", slot,
		     total);
	if (total > VMC_MAX_MEM_MIB)
		FAIL("total_size_mib: must be at most %llu (1 TiB), got %u", VMC_MAX_MEM_MIB,
		     total);
	return 0;
}

int vm_config_set_memory_hotplug(struct vm_config *c, const struct vmc_memory_hotplug *h, char *err,
				 size_t errlen)
{
	int r = memory_hotplug_check(h, err, errlen);

	if (r < 0)
		return r;
	c->memory_hotplug = *h;
	c->memory_hotplug.enabled = true;
	c->memory_hotplug.requested_size_mib = 0; /* a new device: nothing asked for yet */
	return 0;
}

/* ---- features ------------------------------------------------------------ */

/* What a drive, an interface, and the rest ask for (vmc_feature bits). */
static unsigned drive_features(const struct vmc_drive *d)
{
	return (d->socket ? VMC_F_VHOST_USER_BLK : 0) |
	       (d->partuuid && d->is_root_device ? VMC_F_PARTUUID : 0) |
	       (rl_any(&d->rate_limiter) ? VMC_F_DRIVE_RATE_LIMIT : 0);
}

static unsigned net_features(const struct vmc_net *n)
{
	return (n->mtu ? VMC_F_NET_MTU : 0) |
	       (rl_any(&n->rx_rate_limiter) || rl_any(&n->tx_rate_limiter) ? VMC_F_NET_RATE_LIMIT
									   : 0);
}

static unsigned other_features(const struct vm_config *c)
{
	const struct vmc_machine *m = &c->machine;

	return (m->smt ? VMC_F_SMT : 0) |
	       (m->cpu_template != VMC_CPU_TEMPLATE_NONE ? VMC_F_CPU_TEMPLATE : 0) |
	       (m->huge_pages != VMC_HUGE_PAGES_NONE ? VMC_F_HUGE_PAGES : 0) |
	       (m->track_dirty_pages ? VMC_F_DIRTY_PAGES : 0) |
	       (c->entropy.enabled ? VMC_F_ENTROPY : 0) |
	       (c->entropy.enabled && rl_any(&c->entropy.rate_limiter) ? VMC_F_ENTROPY_RATE_LIMIT
								       : 0) |
	       (c->logger.enabled ? VMC_F_LOGGER : 0) |
	       (c->logger.enabled && c->logger.module ? VMC_F_LOGGER_MODULE : 0) |
	       (c->metrics.metrics_path ? VMC_F_METRICS : 0) |
	       (c->serial.enabled && c->serial.serial_out_path ? VMC_F_SERIAL_OUT : 0) |
	       (c->serial.enabled && bucket_limits(&c->serial.rate_limiter)
		    ? VMC_F_SERIAL_RATE_LIMIT
		    : 0) |
	       (c->balloon.enabled ? VMC_F_BALLOON : 0) | (c->npmem ? VMC_F_PMEM : 0) |
	       (c->cpu_config.enabled ? VMC_F_CPU_CONFIG : 0) |
	       (c->balloon.enabled && c->balloon.free_page_hinting ? VMC_F_BALLOON_HINTING : 0) |
	       (c->balloon.enabled && c->balloon.free_page_reporting ? VMC_F_BALLOON_REPORTING
								     : 0) |
	       (c->memory_hotplug.enabled ? VMC_F_MEMORY_HOTPLUG : 0);
}

unsigned vm_config_features(const struct vm_config *c)
{
	unsigned f = other_features(c);

	for (unsigned i = 0; i < c->ndrives; i++)
		f |= drive_features(&c->drives[i]);
	for (unsigned i = 0; i < c->nnets; i++)
		f |= net_features(&c->nets[i]);
	return f;
}

/* What each feature is, for "flint does not support ...". */
static const char *feature_what(unsigned bit)
{
	switch (bit) {
	case VMC_F_SMT:
		return "smt (simultaneous multithreading)";
	case VMC_F_CPU_TEMPLATE:
		return "CPU templates (cpu_template)";
	case VMC_F_HUGE_PAGES:
		return "huge pages (huge_pages)";
	case VMC_F_DIRTY_PAGES:
		return "dirty page tracking (track_dirty_pages)";
	case VMC_F_VHOST_USER_BLK:
		return "vhost-user-blk drives (socket)";
	case VMC_F_PARTUUID:
		return "booting from a partition (partuuid)";
	case VMC_F_DRIVE_RATE_LIMIT:
		return "drive rate limiters (rate_limiter)";
	case VMC_F_NET_RATE_LIMIT:
		return "network rate limiters (rx_rate_limiter, tx_rate_limiter)";
	case VMC_F_NET_MTU:
		return "advertising an MTU (mtu)";
	case VMC_F_ENTROPY:
		return "the entropy device";
	case VMC_F_ENTROPY_RATE_LIMIT:
		return "an entropy device rate limiter (rate_limiter)";
	case VMC_F_LOGGER:
		return "the logger";
	case VMC_F_LOGGER_MODULE:
		return "filtering the log by module (module)";
	case VMC_F_METRICS:
		return "metrics";
	case VMC_F_SERIAL_OUT:
		return "writing the serial console to a file (serial_out_path)";
	case VMC_F_SERIAL_RATE_LIMIT:
		return "a serial console rate limiter (rate_limiter)";
	case VMC_F_BALLOON:
		return "the balloon device";
	case VMC_F_CPU_CONFIG:
		return "custom CPU templates (cpu-config)";
	case VMC_F_BALLOON_HINTING:
		return "balloon free page hinting (free_page_hinting)";
	case VMC_F_BALLOON_REPORTING:
		return "balloon free page reporting (free_page_reporting)";
	case VMC_F_PMEM:
		return "virtio-pmem devices (pmem)";
	case VMC_F_MEMORY_HOTPLUG:
		return "memory hot-plug (memory-hotplug)";
	}
	return "a feature";
}

static unsigned lowest_bit(unsigned f)
{
	return f & -f;
}

int vm_config_check_supported(const struct vm_config *c, unsigned supported, char *err,
			      size_t errlen)
{
	unsigned f;

	for (unsigned i = 0; i < c->ndrives; i++)
		if ((f = drive_features(&c->drives[i]) & ~supported)) {
			snprintf(err, errlen, "drive '%s': flint does not support %s",
				 c->drives[i].drive_id, feature_what(lowest_bit(f)));
			return -EOPNOTSUPP;
		}
	for (unsigned i = 0; i < c->nnets; i++)
		if ((f = net_features(&c->nets[i]) & ~supported)) {
			snprintf(err, errlen, "network interface '%s': flint does not support %s",
				 c->nets[i].iface_id, feature_what(lowest_bit(f)));
			return -EOPNOTSUPP;
		}
	if ((f = other_features(c) & ~supported)) {
		snprintf(err, errlen, "flint does not support %s", feature_what(lowest_bit(f)));
		return -EOPNOTSUPP;
	}
	return 0;
}

/* ---- names --------------------------------------------------------------- */

const char *vmc_cpu_template_name(enum vmc_cpu_template t)
{
	static const char *const names[] = {"None", "C3", "T2", "T2S", "T2CL", "T2A", "V1N1"};
	return (unsigned)t < ARRAY_SIZE(names) ? names[t] : "None";
}

const char *vmc_huge_pages_name(enum vmc_huge_pages h)
{
	return h == VMC_HUGE_PAGES_2M ? "2M" : "None";
}

const char *vmc_cache_type_name(enum vmc_cache_type t)
{
	return t == VMC_CACHE_WRITEBACK ? "Writeback" : "Unsafe";
}

const char *vmc_io_engine_name(enum vmc_io_engine e)
{
	return e == VMC_IO_ENGINE_ASYNC ? "Async" : "Sync";
}

const char *vmc_log_level_name(enum vmc_log_level l)
{
	static const char *const names[] = {"Error", "Warning", "Info", "Debug", "Trace", "Off"};
	return (unsigned)l < ARRAY_SIZE(names) ? names[l] : "Info";
}
