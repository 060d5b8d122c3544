/* config_json: Firecracker's JSON to and from vm_config. See config_json.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_json.h"
#include "config/jfield.h"

/* ---- the parts ----------------------------------------------------------- */

static int parse_bucket(struct jfield *p, json_t *o, struct ratelimit_bucket_cfg *b)
{
	static const char *const keys[] = {"size", "one_time_burst", "refill_time", NULL};
	int r;

	/* The API's int64 (and jansson's integers) at most. */
	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_uint(p, o, "size", true, 0, INT64_MAX, &b->size, NULL)) < 0 ||
	    (r = jfield_uint(p, o, "one_time_burst", false, 0, INT64_MAX, &b->one_time_burst,
			     NULL)) < 0 ||
	    (r = jfield_uint(p, o, "refill_time", true, 0, INT64_MAX, &b->refill_time_ms, NULL)) <
		0)
		return r;
	return 0;
}

/* The bucket member key of o, if there (*has says so, when has is not
 * NULL). */
static int bucket_member(struct jfield *p, json_t *o, const char *key,
			 struct ratelimit_bucket_cfg *b, bool *has)
{
	json_t *v;
	size_t at;
	int r;

	if ((r = jfield_obj(p, o, key, false, &v)) < 0 || !v)
		return r;
	at = jfield_enter(p, key, -1);
	r = parse_bucket(p, v, b);
	jfield_leave(p, at);
	if (has)
		*has = r == 0;
	return r;
}

/* The rate limiter member key of o, if there, with the buckets it gives.
 * Buckets that limit nothing are kept as given: a PATCH needs them to
 * remove a limit (the vm_config updates normalise). */
static int parse_rl(struct jfield *p, json_t *o, const char *key, struct vmc_rl_patch *rl)
{
	static const char *const keys[] = {"bandwidth", "ops", NULL};
	json_t *v;
	size_t at;
	int r;

	if ((r = jfield_obj(p, o, key, false, &v)) < 0 || !v)
		return r;
	at = jfield_enter(p, key, -1);
	if ((r = jfield_only_keys(p, v, keys)) == 0 &&
	    (r = bucket_member(p, v, "bandwidth", &rl->v.bandwidth, &rl->has_bandwidth)) == 0)
		r = bucket_member(p, v, "ops", &rl->v.ops, &rl->has_ops);
	jfield_leave(p, at);
	return r;
}

/* A rate limiter for a PUT: the buckets given, the others none. */
static int parse_rl_cfg(struct jfield *p, json_t *o, const char *key, struct ratelimit_cfg *cfg)
{
	struct vmc_rl_patch rl = {0};
	int r = parse_rl(p, o, key, &rl);

	*cfg = rl.v;
	vmc_ratelimit_normalise(cfg);
	return r;
}

static const char *const cpu_templates[] = {"None", "C3", "T2", "T2S", "T2CL", "T2A", "V1N1"};
static const char *const huge_pages[] = {"None", "2M"};
static const char *const cache_types[] = {"Unsafe", "Writeback"};
static const char *const io_engines[] = {"Sync", "Async"};
/* Firecracker takes the level in any case, and "Warn" for "Warning". */
static const char *const log_levels[] = {"Error", "Warning", "Info", "Debug", "Trace", "Off"};

/* The machine-config fields into m; with patch, which were there. */
static int parse_machine(struct jfield *p, json_t *o, struct vmc_machine *m,
			 struct vmc_machine_patch *patch)
{
	static const char *const keys[] = {
	    "vcpu_count",	 "mem_size_mib", "smt", "cpu_template",
	    "track_dirty_pages", "huge_pages",	 NULL};
	/* Firecracker's PUT takes these absent, not null (a PATCH's
	 * MachineConfigUpdate has every field an Option). */
	static const char *const not_null[] = {"smt", "track_dirty_pages", "huge_pages", NULL};
	struct vmc_machine_patch dummy = {0};
	struct vmc_machine_patch *h = patch ? patch : &dummy;
	uint64_t vcpus = m->vcpu_count;
	int tmpl = m->cpu_template, huge = m->huge_pages, r;
	bool required = !patch;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (!patch && (r = jfield_not_null(p, o, not_null)) < 0) ||
	    (r = jfield_uint(p, o, "vcpu_count", required, 1, VMC_MAX_VCPUS, &vcpus,
			     &h->has_vcpu_count)) < 0 ||
	    (r = jfield_uint(p, o, "mem_size_mib", required, VMC_MIN_MEM_MIB, VMC_MAX_MEM_MIB,
			     &m->mem_size_mib, &h->has_mem_size_mib)) < 0 ||
	    (r = jfield_bool(p, o, "smt", false, &m->smt, &h->has_smt)) < 0 ||
	    (r = jfield_enum(p, o, "cpu_template", false, cpu_templates, ARRAY_SIZE(cpu_templates),
			     false, &tmpl, &h->has_cpu_template)) < 0 ||
	    (r = jfield_bool(p, o, "track_dirty_pages", false, &m->track_dirty_pages,
			     &h->has_track_dirty_pages)) < 0 ||
	    (r = jfield_enum(p, o, "huge_pages", false, huge_pages, ARRAY_SIZE(huge_pages), false,
			     &huge, &h->has_huge_pages)) < 0)
		return r;
	m->vcpu_count = vcpus;
	m->cpu_template = tmpl;
	m->huge_pages = huge;
	/* A patch is checked with the fields it keeps, when applied. */
	return patch ? 0 : jfield_placed(p, vmc_machine_check(m, p->err, p->errlen));
}

static int parse_boot(struct jfield *p, json_t *o, void *out)
{
	struct vmc_boot *b = out;
	static const char *const keys[] = {"kernel_image_path", "initrd_path", "boot_args", NULL};
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_str(p, o, "kernel_image_path", true, &b->kernel_image_path)) < 0 ||
	    (r = jfield_str(p, o, "initrd_path", false, &b->initrd_path)) < 0 ||
	    (r = jfield_str(p, o, "boot_args", false, &b->boot_args)) < 0)
		return r;
	return jfield_placed(p, vmc_boot_check(b, p->err, p->errlen));
}

static int parse_drive(struct jfield *p, json_t *o, void *out)
{
	struct vmc_drive *d = out;
	static const char *const keys[] = {"drive_id",
					   "partuuid",
					   "is_root_device",
					   "cache_type",
					   "is_read_only",
					   "path_on_host",
					   "rate_limiter",
					   "io_engine",
					   "socket",
					   "flint_direct",
					   NULL};
	static const char *const not_null[] = {"cache_type", NULL};
	int cache = VMC_CACHE_UNSAFE, engine = VMC_IO_ENGINE_SYNC, r;
	bool has_ro, has_engine;

	if ((r = jfield_only_keys(p, o, keys)) < 0 || (r = jfield_not_null(p, o, not_null)) < 0 ||
	    (r = jfield_str(p, o, "drive_id", true, &d->drive_id)) < 0 ||
	    (r = jfield_str(p, o, "partuuid", false, &d->partuuid)) < 0 ||
	    (r = jfield_bool(p, o, "is_root_device", true, &d->is_root_device, NULL)) < 0 ||
	    (r = jfield_enum(p, o, "cache_type", false, cache_types, ARRAY_SIZE(cache_types), false,
			     &cache, NULL)) < 0 ||
	    (r = jfield_bool(p, o, "is_read_only", false, &d->is_read_only, &has_ro)) < 0 ||
	    (r = jfield_str(p, o, "path_on_host", false, &d->path_on_host)) < 0 ||
	    (r = parse_rl_cfg(p, o, "rate_limiter", &d->rate_limiter)) < 0 ||
	    (r = jfield_enum(p, o, "io_engine", false, io_engines, ARRAY_SIZE(io_engines), false,
			     &engine, &has_engine)) < 0 ||
	    (r = jfield_str(p, o, "socket", false, &d->socket)) < 0 ||
	    (r = jfield_bool(p, o, "flint_direct", false, &d->direct, NULL)) < 0)
		return r;
	d->cache_type = cache;
	d->io_engine = engine;
	/* The swagger: these "should be omitted for vhost-user-block". */
	if (d->socket && (has_ro || has_engine))
		return jfield_obj_err(p, "a vhost-user-blk drive (socket) takes no %s",
				      has_ro ? "is_read_only" : "io_engine");
	return jfield_placed(p, vmc_drive_check(d, p->err, p->errlen));
}

static int parse_pmem(struct jfield *p, json_t *o, void *out)
{
	struct vmc_pmem *d = out;
	static const char *const keys[] = {"id",	"path_on_host", "root_device",
					   "read_only", "rate_limiter", NULL};
	static const char *const not_null[] = {"root_device", "read_only", NULL};
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 || (r = jfield_not_null(p, o, not_null)) < 0 ||
	    (r = jfield_str(p, o, "id", true, &d->id)) < 0 ||
	    (r = jfield_str(p, o, "path_on_host", true, &d->path_on_host)) < 0 ||
	    (r = jfield_bool(p, o, "root_device", false, &d->root_device, NULL)) < 0 ||
	    (r = jfield_bool(p, o, "read_only", false, &d->read_only, NULL)) < 0 ||
	    (r = parse_rl_cfg(p, o, "rate_limiter", &d->rate_limiter)) < 0)
		return r;
	return jfield_placed(p, vmc_pmem_check(d, p->err, p->errlen));
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* "06:00:ac:10:00:02": six pairs of hex digits (either case) joined by
 * colons. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++, s += 3) {
		int hi = hex_digit(s[0]), lo = hex_digit(s[1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[2] != ':'))
			return -EINVAL;
		mac[i] = hi << 4 | lo;
	}
	return 0;
}

static int parse_net(struct jfield *p, json_t *o, void *out)
{
	struct vmc_net *n = out;
	static const char *const keys[] = {
	    "iface_id",	       "host_dev_name", "guest_mac", "mtu", "rx_rate_limiter",
	    "tx_rate_limiter", "backend",	"fd",	     NULL};
	char *mac = NULL, *backend = NULL;
	uint64_t mtu = 0, fd = 0;
	bool has_fd = false;
	int r;

	/* flint's "backend": "tap" (Firecracker's, the default) or "user"
	 * (passt, no host_dev_name). */
	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_str(p, o, "iface_id", true, &n->iface_id)) < 0 ||
	    (r = jfield_str(p, o, "backend", false, &backend)) < 0)
		goto out;
	if (backend && strcmp(backend, "tap") && strcmp(backend, "user")) {
		r = jfield_err(p, "backend", "'%.32s' is neither tap nor user", backend);
		goto out;
	}
	n->user = backend && !strcmp(backend, "user");
	/* flint's "fd" (read, never written: a snapshot keeps none): a user
	 * interface's passt started by flint-jail, its socket inherited, as
	 * --net user,fd=N. */
	if ((r = jfield_uint(p, o, "fd", false, 3, 1048575, &fd, &has_fd)) < 0)
		goto out;
	if (has_fd && !n->user) {
		r = jfield_err(p, "fd",
			       "passt's socket is for a user interface (\"backend\": "
			       "\"user\")");
		goto out;
	}
	n->fd = (int)fd;
	if ((r = jfield_str(p, o, "host_dev_name", !n->user, &n->host_dev_name)) < 0 ||
	    (r = jfield_str(p, o, "guest_mac", false, &mac)) < 0 ||
	    (r = jfield_uint(p, o, "mtu", false, VMC_MIN_MTU, VMC_MAX_MTU, &mtu, NULL)) < 0 ||
	    (r = parse_rl_cfg(p, o, "rx_rate_limiter", &n->rx_rate_limiter)) < 0 ||
	    (r = parse_rl_cfg(p, o, "tx_rate_limiter", &n->tx_rate_limiter)) < 0)
		goto out;
	n->mtu = mtu;
	if (mac) {
		if (parse_mac(mac, n->guest_mac) < 0) {
			r = jfield_err(p, "guest_mac",
				       "'%.32s' is not a MAC address like 06:00:ac:10:00:02", mac);
			goto out;
		}
		n->has_guest_mac = true;
	}
	r = jfield_placed(p, vmc_net_check(n, p->err, p->errlen));
out:
	free(backend);
	free(mac);
	return r;
}

static int parse_vsock(struct jfield *p, json_t *o, void *out)
{
	struct vmc_vsock *v = out;
	static const char *const keys[] = {"guest_cid", "uds_path", "vsock_id", NULL};
	uint64_t cid = 0;
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_uint(p, o, "guest_cid", true, 3, UINT32_MAX - 1, &cid, NULL)) < 0 ||
	    (r = jfield_str(p, o, "uds_path", true, &v->uds_path)) < 0 ||
	    (r = jfield_str(p, o, "vsock_id", false, &v->vsock_id)) < 0)
		return r;
	v->guest_cid = cid;
	v->enabled = true;
	return jfield_placed(p, vmc_vsock_check(v, p->err, p->errlen));
}

static int nonempty(struct jfield *p, const char *key, const char *s)
{
	return s && !*s ? jfield_err(p, key, "must not be empty") : 0;
}

static int parse_logger(struct jfield *p, json_t *o, void *out)
{
	struct vmc_logger *l = out;
	static const char *const keys[] = {"level",	      "log_path", "show_level",
					   "show_log_origin", "module",	  NULL};
	json_t *lv = jfield_member(o, "level");
	int level = VMC_LOG_INFO, r;

	if ((r = jfield_only_keys(p, o, keys)) < 0)
		return r;
	if (lv && json_is_string(lv) && !strcasecmp(json_string_value(lv), "Warn"))
		level = VMC_LOG_WARNING;
	else if ((r = jfield_enum(p, o, "level", false, log_levels, ARRAY_SIZE(log_levels), true,
				  &level, NULL)) < 0)
		return r;
	l->level = level;
	if ((r = jfield_str(p, o, "log_path", false, &l->log_path)) < 0 ||
	    (r = nonempty(p, "log_path", l->log_path)) < 0 ||
	    (r = jfield_bool(p, o, "show_level", false, &l->show_level, &l->has_show_level)) < 0 ||
	    (r = jfield_bool(p, o, "show_log_origin", false, &l->show_log_origin,
			     &l->has_show_log_origin)) < 0 ||
	    (r = jfield_str(p, o, "module", false, &l->module)) < 0)
		return r;
	l->enabled = true;
	return 0;
}

static int parse_metrics(struct jfield *p, json_t *o, void *out)
{
	struct vmc_metrics *m = out;
	static const char *const keys[] = {"metrics_path", NULL};
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_str(p, o, "metrics_path", true, &m->metrics_path)) < 0)
		return r;
	return nonempty(p, "metrics_path", m->metrics_path);
}

static int parse_entropy(struct jfield *p, json_t *o, void *out)
{
	struct vmc_entropy *e = out;
	static const char *const keys[] = {"rate_limiter", NULL};
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = parse_rl_cfg(p, o, "rate_limiter", &e->rate_limiter)) < 0)
		return r;
	e->enabled = true;
	return 0;
}

/* Firecracker's Balloon: amount_mib (u32) and deflate_on_oom required,
 * stats_polling_interval_s a u16. */
static int parse_balloon(struct jfield *p, json_t *o, void *out)
{
	struct vmc_balloon *b = out;
	static const char *const keys[] = {
	    "amount_mib",	 "deflate_on_oom",	"stats_polling_interval_s",
	    "free_page_hinting", "free_page_reporting", NULL};
	static const char *const not_null[] = {"stats_polling_interval_s", "free_page_hinting",
					       "free_page_reporting", NULL};
	uint64_t amount = 0, interval = 0;
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 || (r = jfield_not_null(p, o, not_null)) < 0 ||
	    (r = jfield_uint(p, o, "amount_mib", true, 0, UINT32_MAX, &amount, NULL)) < 0 ||
	    (r = jfield_bool(p, o, "deflate_on_oom", true, &b->deflate_on_oom, NULL)) < 0 ||
	    (r = jfield_uint(p, o, "stats_polling_interval_s", false, 0, UINT16_MAX, &interval,
			     NULL)) < 0 ||
	    (r = jfield_bool(p, o, "free_page_hinting", false, &b->free_page_hinting, NULL)) < 0 ||
	    (r = jfield_bool(p, o, "free_page_reporting", false, &b->free_page_reporting, NULL)) <
		0)
		return r;
	b->amount_mib = (uint32_t)amount;
	b->stats_polling_interval_s = (uint32_t)interval;
	b->enabled = true;
	return 0;
}

/* Firecracker's MemoryHotplugConfig: total_size_mib required,
 * slot_size_mib and block_size_mib at their defaults when absent; the
 * rules between them are vm_config_set_memory_hotplug's. */
static int parse_memory_hotplug(struct jfield *p, json_t *o, void *out)
{
	struct vmc_memory_hotplug *h = out;
	static const char *const keys[] = {"total_size_mib", "slot_size_mib", "block_size_mib",
					   NULL};
	static const char *const not_null[] = {"slot_size_mib", "block_size_mib", NULL};
	uint64_t total = 0, slot = VMC_HOTPLUG_DEFAULT_SLOT_MIB,
		 block = VMC_HOTPLUG_DEFAULT_BLOCK_MIB;
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 || (r = jfield_not_null(p, o, not_null)) < 0 ||
	    (r = jfield_uint(p, o, "total_size_mib", true, 0, UINT32_MAX, &total, NULL)) < 0 ||
	    (r = jfield_uint(p, o, "slot_size_mib", false, 0, UINT32_MAX, &slot, NULL)) < 0 ||
	    (r = jfield_uint(p, o, "block_size_mib", false, 0, UINT32_MAX, &block, NULL)) < 0)
		return r;
	h->total_size_mib = (uint32_t)total;
	h->slot_size_mib = (uint32_t)slot;
	h->block_size_mib = (uint32_t)block;
	h->enabled = true;
	return 0;
}

/* Firecracker's MmdsConfig: network_interfaces (required, a list of
 * interface ids), version ("V1", the default, or "V2"), ipv4_address (by
 * default 169.254.169.254), imds_compat. */
static int parse_mmds_config(struct jfield *p, json_t *o, void *out)
{
	struct vmc_mmds_req *q = out;
	static const char *const keys[] = {"version", "network_interfaces", "ipv4_address",
					   "imds_compat", NULL};
	static const char *const versions[] = {"V1", "V2"};
	static const char *const not_null[] = {"version", "imds_compat", NULL};
	json_t *a, *e;
	char *ip = NULL;
	struct in_addr in;
	int ver = 0, r;
	size_t i;

	q->m.ipv4 = htonl(VMC_MMDS_DEFAULT_IPV4);
	if ((r = jfield_only_keys(p, o, keys)) < 0 || (r = jfield_not_null(p, o, not_null)) < 0 ||
	    (r = jfield_enum(p, o, "version", false, versions, ARRAY_SIZE(versions), false, &ver,
			     NULL)) < 0 ||
	    (r = jfield_bool(p, o, "imds_compat", false, &q->m.imds_compat, NULL)) < 0 ||
	    (r = jfield_str(p, o, "ipv4_address", false, &ip)) < 0)
		goto out;
	q->m.v2 = ver == 1;
	if (ip) {
		if (inet_pton(AF_INET, ip, &in) != 1) {
			r = jfield_err(p, "ipv4_address", "'%.32s' is not an IPv4 address", ip);
			goto out;
		}
		q->m.ipv4 = in.s_addr;
	}
	if (!(a = jfield_member(o, "network_interfaces"))) {
		r = jfield_missing(p, "network_interfaces");
		goto out;
	}
	if (!json_is_array(a)) {
		r = jfield_err(p, "network_interfaces", "expected an array, got %s",
			       jfield_type_name(a));
		goto out;
	}
	json_array_foreach(a, i, e)
	{
		if (!json_is_string(e)) {
			size_t at = jfield_enter(p, "network_interfaces", (int)i);
			r = jfield_obj_err(p, "expected a string, got %s", jfield_type_name(e));
			jfield_leave(p, at);
			goto out;
		}
		if (q->nifaces == VMC_MAX_NETS) {
			r = jfield_err(p, "network_interfaces",
				       "more than the %d interfaces flint takes", VMC_MAX_NETS);
			goto out;
		}
		if (!(q->ifaces[q->nifaces] = strdup(json_string_value(e)))) {
			r = jfield_oom(p);
			goto out;
		}
		q->nifaces++;
	}
out:
	free(ip);
	if (r < 0)
		vmc_mmds_req_free(q);
	return r;
}

/* A number as Firecracker's templates write one: "0x1f", "0b101" or
 * decimal, at most max. */
static int num_str(struct jfield *p, const char *key, const char *s, uint64_t max, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;
	const char *d = s;

	if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2))
		base = 16, d = s + 2;
	else if (!strncmp(s, "0b", 2) || !strncmp(s, "0B", 2))
		base = 2, d = s + 2;
	if (!*d)
		goto bad;
	for (; *d; d++) {
		unsigned x;

		if (*d >= '0' && *d <= '9')
			x = *d - '0';
		else if (*d >= 'a' && *d <= 'f')
			x = *d - 'a' + 10;
		else if (*d >= 'A' && *d <= 'F')
			x = *d - 'A' + 10;
		else
			goto bad;
		if (x >= base || v > (max - x) / base)
			goto bad;
		v = v * base + x;
	}
	*out = v;
	return 0;
bad:
	return jfield_err(p, key,
			  "'%s' is not a number up to %#llx (hex 0x.., binary 0b.. or decimal)", s,
			  (unsigned long long)max);
}

/* A bitmap as Firecracker's templates write one: an optional "0b", then
 * at most `bits` characters, the last for bit 0: '1' and '0' set and clear
 * that bit, 'x' leaves it, '_' is ignored; bits above those given are
 * left as 'x'. */
static int bitmap_str(struct jfield *p, const char *key, const char *s, unsigned bits,
		      uint64_t *mask, uint64_t *value)
{
	const char *d = strncmp(s, "0b", 2) ? s : s + 2;
	unsigned n = 0;

	*mask = *value = 0;
	for (const char *c = d + strlen(d); c-- > d;) {
		if (*c == '_')
			continue;
		if ((*c != '0' && *c != '1' && *c != 'x') || n == bits)
			goto bad;
		if (*c != 'x') {
			*mask |= 1ull << n;
			*value |= (uint64_t)(*c == '1') << n;
		}
		n++;
	}
	if (n)
		return 0;
bad:
	return jfield_err(
	    p, key,
	    "'%s' is not a bitmap of up to %u bits: an optional \"0b\", then '0', '1' "
	    "or 'x' for each bit, the last for bit 0 ('_' ignored)",
	    s, bits);
}

/* A string member read as num_str does. */
static int num_member(struct jfield *p, json_t *o, const char *key, uint64_t max, uint64_t *out)
{
	char *s = NULL;
	int r;

	if ((r = jfield_str(p, o, key, true, &s)) == 0)
		r = num_str(p, key, s, max, out);
	free(s);
	return r;
}

static int bitmap_member(struct jfield *p, json_t *o, unsigned bits, uint64_t *mask,
			 uint64_t *value)
{
	char *s = NULL;
	int r;

	if ((r = jfield_str(p, o, "bitmap", true, &s)) == 0)
		r = bitmap_str(p, "bitmap", s, bits, mask, value);
	free(s);
	return r;
}

/* The members of array `key` of o, each an object, through fn. */
static int each_obj(struct jfield *p, json_t *o, const char *key,
		    int (*fn)(struct jfield *p, json_t *e, void *ctx), void *ctx)
{
	json_t *a = jfield_member(o, key), *e;
	size_t i;
	int r = 0;

	if (!a)
		return 0;
	if (!json_is_array(a))
		return jfield_err(p, key, "expected an array, got %s", jfield_type_name(a));
	json_array_foreach(a, i, e)
	{
		size_t at = jfield_enter(p, key, (int)i);

		r = json_is_object(e)
			? fn(p, e, ctx)
			: jfield_obj_err(p, "expected an object, got %s", jfield_type_name(e));
		jfield_leave(p, at);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cpuid_register(struct jfield *p, json_t *e, void *ctx)
{
	static const char *const keys[] = {"register", "bitmap", NULL};
	static const char *const regs[] = {"eax", "ebx", "ecx", "edx"};
	struct vmc_cpuid_mod *m = ctx;
	uint64_t mask, value;
	int reg, r;

	if ((r = jfield_only_keys(p, e, keys)) < 0 ||
	    (r = jfield_enum(p, e, "register", true, regs, 4, false, &reg, NULL)) < 0 ||
	    (r = bitmap_member(p, e, 32, &mask, &value)) < 0)
		return r;
	/* Given again, as in Firecracker: applied after the first. */
	m->regs |= 1u << reg;
	m->value[reg] = (m->value[reg] & ~(uint32_t)mask) | (uint32_t)value;
	m->mask[reg] |= (uint32_t)mask;
	return 0;
}

static int cpuid_modifier(struct jfield *p, json_t *e, void *ctx)
{
	static const char *const keys[] = {"leaf", "subleaf", "flags", "modifiers", NULL};
	struct vmc_cpu_config *t = ctx;
	struct vmc_cpuid_mod m = {0};
	uint64_t leaf, subleaf, flags;
	int r;

	if ((r = jfield_only_keys(p, e, keys)) < 0 ||
	    (r = num_member(p, e, "leaf", UINT32_MAX, &leaf)) < 0 ||
	    (r = num_member(p, e, "subleaf", UINT32_MAX, &subleaf)) < 0 ||
	    (r = jfield_uint(p, e, "flags", true, 0, UINT32_MAX, &flags, NULL)) < 0)
		return r;
	if (!jfield_member(e, "modifiers"))
		return jfield_missing(p, "modifiers");
	m.leaf = (uint32_t)leaf;
	m.subleaf = (uint32_t)subleaf;
	m.flags = (uint32_t)flags;
	if ((r = each_obj(p, e, "modifiers", cpuid_register, &m)) < 0)
		return r;
	/* A leaf given twice is applied twice, in order, as in Firecracker. */
	if (t->ncpuid == VMC_MAX_CPUID_MODS)
		return jfield_obj_err(p, "at most %d CPUID modifiers", VMC_MAX_CPUID_MODS);
	t->cpuid[t->ncpuid++] = m;
	return 0;
}

static int msr_modifier(struct jfield *p, json_t *e, void *ctx)
{
	static const char *const keys[] = {"addr", "bitmap", NULL};
	struct vmc_cpu_config *t = ctx;
	struct vmc_msr_mod m = {0};
	uint64_t addr;
	int r;

	if ((r = jfield_only_keys(p, e, keys)) < 0 ||
	    (r = num_member(p, e, "addr", UINT32_MAX, &addr)) < 0 ||
	    (r = bitmap_member(p, e, 64, &m.mask, &m.value)) < 0)
		return r;
	m.addr = (uint32_t)addr;
	if (t->nmsr == VMC_MAX_MSR_MODS)
		return jfield_obj_err(p, "at most %d MSR modifiers", VMC_MAX_MSR_MODS);
	t->msr[t->nmsr++] = m;
	return 0;
}

/* kvm_capabilities: "N" asks that KVM have capability N, "!N" that it
 * not be used. */
static int kvm_capabilities(struct jfield *p, json_t *o, struct vmc_cpu_config *t)
{
	json_t *a = jfield_member(o, "kvm_capabilities"), *e;
	size_t i;

	if (!a)
		return 0;
	if (!json_is_array(a))
		return jfield_err(p, "kvm_capabilities", "expected an array, got %s",
				  jfield_type_name(a));
	json_array_foreach(a, i, e)
	{
		const char *s = json_string_value(e);
		struct vmc_kvm_cap c = {0};
		uint64_t v;
		int r;

		if (!s)
			return jfield_err(p, "kvm_capabilities", "expected strings, got %s",
					  jfield_type_name(e));
		c.remove = *s == '!';
		if ((r = num_str(p, "kvm_capabilities", s + c.remove, UINT32_MAX, &v)) < 0)
			return r;
		if (t->ncap == VMC_MAX_KVM_CAPS)
			return jfield_err(p, "kvm_capabilities", "at most %d", VMC_MAX_KVM_CAPS);
		c.cap = (uint32_t)v;
		t->cap[t->ncap++] = c;
	}
	return 0;
}

/* Firecracker's CpuConfig, x86's parts; the others must be empty. */
static int parse_cpu_config(struct jfield *p, json_t *o, void *out)
{
	struct vmc_cpu_config *t = out;
	static const char *const keys[] = {"kvm_capabilities", "cpuid_modifiers", "msr_modifiers",
					   "reg_modifiers",    "vcpu_features",	  NULL};
	static const char *const none[][2] = {
	    {"reg_modifiers", "register modifiers are for aarch64; flint is x86-64"},
	    {"vcpu_features", "vCPU features are for aarch64; flint is x86-64"},
	};
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(none); i++) {
		json_t *v = jfield_member(o, none[i][0]);

		if (v && !(json_is_array(v) && !json_array_size(v)))
			return jfield_err(p, none[i][0], "%s", none[i][1]);
	}
	if ((r = kvm_capabilities(p, o, t)) < 0 ||
	    (r = each_obj(p, o, "cpuid_modifiers", cpuid_modifier, t)) < 0 ||
	    (r = each_obj(p, o, "msr_modifiers", msr_modifier, t)) < 0)
		return r;
	t->enabled = true;
	return 0;
}

static int parse_serial(struct jfield *p, json_t *o, void *out)
{
	struct vmc_serial *s = out;
	static const char *const keys[] = {"serial_out_path", "rate_limiter", NULL};
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_str(p, o, "serial_out_path", false, &s->serial_out_path)) < 0 ||
	    (r = nonempty(p, "serial_out_path", s->serial_out_path)) < 0 ||
	    (r = bucket_member(p, o, "rate_limiter", &s->rate_limiter, NULL)) < 0)
		return r;
	vmc_bucket_normalise(&s->rate_limiter);
	s->enabled = true;
	return 0;
}

/* ---- API bodies ---------------------------------------------------------- */

/* Parses one API body's object into out, the public function's struct. */
typedef int (*body_fn)(struct jfield *p, json_t *o, void *out);

/* An API body: loaded (one JSON object) and handed to parse. out was set
 * to its empty value by the caller, which frees it when this fails. */
static int parse_body(const char *body, size_t len, body_fn parse, void *out, char *err,
		      size_t errlen)
{
	struct jfield p = {.err = err, .errlen = errlen};
	json_t *o = jfield_load(&p, body, len, "the body");
	int r;

	if (!o)
		return -EINVAL;
	r = parse(&p, o, out);
	json_decref(o);
	return r;
}

/* parse_body for PUT and PATCH /drives/{id} and their like: the path's id
 * must be a valid API id, and the one the body names in field (*body_id,
 * once parsed) the same. */
static int parse_id_body(const char *path_id, const char *field, char *const *body_id,
			 const char *body, size_t len, body_fn parse, void *out, char *err,
			 size_t errlen)
{
	struct jfield p = {.err = err, .errlen = errlen};
	int r;

	if ((r = vmc_path_id_check(path_id, err, errlen)) < 0 ||
	    (r = parse_body(body, len, parse, out, err, errlen)) < 0)
		return r;
	if (strcmp(path_id, *body_id))
		return jfield_obj_err(&p, "%s '%.*s' in the body does not match '%.*s' in the path",
				      field, VMC_MAX_ID, *body_id, VMC_MAX_ID, path_id);
	return 0;
}

static int parse_machine_body(struct jfield *p, json_t *o, void *out)
{
	return parse_machine(p, o, out, NULL);
}

static int parse_machine_patch(struct jfield *p, json_t *o, void *out)
{
	struct vmc_machine_patch *patch = out;

	return parse_machine(p, o, &patch->v, patch);
}

static int parse_drive_patch(struct jfield *p, json_t *o, void *out)
{
	static const char *const keys[] = {"drive_id", "path_on_host", "rate_limiter", NULL};
	struct vmc_drive_patch *d = out;
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_str(p, o, "drive_id", true, &d->drive_id)) < 0 ||
	    (r = jfield_str(p, o, "path_on_host", false, &d->path_on_host)) < 0 ||
	    (r = nonempty(p, "path_on_host", d->path_on_host)) < 0)
		return r;
	return parse_rl(p, o, "rate_limiter", &d->rate_limiter);
}

static int parse_pmem_patch(struct jfield *p, json_t *o, void *out)
{
	static const char *const keys[] = {"id", "rate_limiter", NULL};
	struct vmc_pmem_patch *d = out;
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_str(p, o, "id", true, &d->id)) < 0)
		return r;
	return parse_rl(p, o, "rate_limiter", &d->rate_limiter);
}

static int parse_net_patch(struct jfield *p, json_t *o, void *out)
{
	static const char *const keys[] = {"iface_id", "rx_rate_limiter", "tx_rate_limiter", NULL};
	struct vmc_net_patch *n = out;
	int r;

	if ((r = jfield_only_keys(p, o, keys)) < 0 ||
	    (r = jfield_str(p, o, "iface_id", true, &n->iface_id)) < 0 ||
	    (r = parse_rl(p, o, "rx_rate_limiter", &n->rx_rate_limiter)) < 0)
		return r;
	return parse_rl(p, o, "tx_rate_limiter", &n->tx_rate_limiter);
}

int config_json_machine(const char *body, size_t len, struct vmc_machine *m, char *err,
			size_t errlen)
{
	*m = (struct vmc_machine){.vcpu_count = VMC_DEFAULT_VCPUS,
				  .mem_size_mib = VMC_DEFAULT_MEM_MIB};
	return parse_body(body, len, parse_machine_body, m, err, errlen);
}

int config_json_machine_patch(const char *body, size_t len, struct vmc_machine_patch *patch,
			      char *err, size_t errlen)
{
	*patch = (struct vmc_machine_patch){0};
	return parse_body(body, len, parse_machine_patch, patch, err, errlen);
}

int config_json_boot_source(const char *body, size_t len, struct vmc_boot *b, char *err,
			    size_t errlen)
{
	int r;

	*b = (struct vmc_boot){0};
	if ((r = parse_body(body, len, parse_boot, b, err, errlen)) < 0 ||
	    (r = vmc_boot_args_check(b, err, errlen)) < 0)
		vmc_boot_free(b);
	return r;
}

int config_json_drive(const char *path_id, const char *body, size_t len, struct vmc_drive *d,
		      char *err, size_t errlen)
{
	int r;

	*d = (struct vmc_drive){0};
	if ((r = parse_id_body(path_id, "drive_id", &d->drive_id, body, len, parse_drive, d, err,
			       errlen)) < 0)
		vmc_drive_free(d);
	return r;
}

int config_json_drive_patch(const char *path_id, const char *body, size_t len,
			    struct vmc_drive_patch *d, char *err, size_t errlen)
{
	int r;

	*d = (struct vmc_drive_patch){0};
	if ((r = parse_id_body(path_id, "drive_id", &d->drive_id, body, len, parse_drive_patch, d,
			       err, errlen)) < 0)
		vmc_drive_patch_free(d);
	return r;
}

int config_json_pmem(const char *path_id, const char *body, size_t len, struct vmc_pmem *d,
		     char *err, size_t errlen)
{
	int r;

	*d = (struct vmc_pmem){0};
	if ((r = parse_id_body(path_id, "id", &d->id, body, len, parse_pmem, d, err, errlen)) < 0)
		vmc_pmem_free(d);
	return r;
}

int config_json_pmem_patch(const char *path_id, const char *body, size_t len,
			   struct vmc_pmem_patch *d, char *err, size_t errlen)
{
	int r;

	*d = (struct vmc_pmem_patch){0};
	if ((r = parse_id_body(path_id, "id", &d->id, body, len, parse_pmem_patch, d, err,
			       errlen)) < 0)
		vmc_pmem_patch_free(d);
	return r;
}

int config_json_net(const char *path_id, const char *body, size_t len, struct vmc_net *n, char *err,
		    size_t errlen)
{
	struct jfield p = {.err = err, .errlen = errlen};
	int r;

	*n = (struct vmc_net){0};
	r = parse_id_body(path_id, "iface_id", &n->iface_id, body, len, parse_net, n, err, errlen);
	/* A descriptor is flint's from its start, never the API's to name. */
	if (r == 0 && n->fd)
		r = jfield_err(&p, "fd",
			       "not through the API: passt's socket is given to flint "
			       "at its start (--net user,fd=N, a config file's \"fd\")");
	if (r < 0)
		vmc_net_free(n);
	return r;
}

int config_json_net_patch(const char *path_id, const char *body, size_t len,
			  struct vmc_net_patch *n, char *err, size_t errlen)
{
	int r;

	*n = (struct vmc_net_patch){0};
	if ((r = parse_id_body(path_id, "iface_id", &n->iface_id, body, len, parse_net_patch, n,
			       err, errlen)) < 0)
		vmc_net_patch_free(n);
	return r;
}

int config_json_vsock(const char *body, size_t len, struct vmc_vsock *v, char *err, size_t errlen)
{
	int r;

	*v = (struct vmc_vsock){0};
	if ((r = parse_body(body, len, parse_vsock, v, err, errlen)) < 0)
		vmc_vsock_free(v);
	return r;
}

int config_json_logger(const char *body, size_t len, struct vmc_logger *l, char *err, size_t errlen)
{
	int r;

	*l = (struct vmc_logger){.level = VMC_LOG_INFO};
	if ((r = parse_body(body, len, parse_logger, l, err, errlen)) < 0)
		vmc_logger_free(l);
	return r;
}

int config_json_metrics(const char *body, size_t len, struct vmc_metrics *m, char *err,
			size_t errlen)
{
	int r;

	*m = (struct vmc_metrics){0};
	if ((r = parse_body(body, len, parse_metrics, m, err, errlen)) < 0)
		vmc_metrics_free(m);
	return r;
}

int config_json_entropy(const char *body, size_t len, struct vmc_entropy *e, char *err,
			size_t errlen)
{
	int r;

	*e = (struct vmc_entropy){0};
	if ((r = parse_body(body, len, parse_entropy, e, err, errlen)) < 0)
		*e = (struct vmc_entropy){0};
	return r;
}

int config_json_cpu_config(const char *body, size_t len, struct vmc_cpu_config *t, char *err,
			   size_t errlen)
{
	int r;

	*t = (struct vmc_cpu_config){0};
	if ((r = parse_body(body, len, parse_cpu_config, t, err, errlen)) < 0)
		*t = (struct vmc_cpu_config){0};
	return r;
}

int config_json_balloon(const char *body, size_t len, struct vmc_balloon *b, char *err,
			size_t errlen)
{
	int r;

	*b = (struct vmc_balloon){0};
	if ((r = parse_body(body, len, parse_balloon, b, err, errlen)) < 0)
		*b = (struct vmc_balloon){0};
	return r;
}

int config_json_memory_hotplug(const char *body, size_t len, struct vmc_memory_hotplug *h,
			       char *err, size_t errlen)
{
	int r;

	*h = (struct vmc_memory_hotplug){0};
	if ((r = parse_body(body, len, parse_memory_hotplug, h, err, errlen)) < 0)
		*h = (struct vmc_memory_hotplug){0};
	return r;
}

int config_json_mmds_config(const char *body, size_t len, struct vmc_mmds_req *q, char *err,
			    size_t errlen)
{
	*q = (struct vmc_mmds_req){0};
	return parse_body(body, len, parse_mmds_config, q, err, errlen);
}

/* A body of one required unsigned member key, at most hi, into *v. */
struct one_uint {
	const char *key;
	uint64_t hi;
	uint32_t *v;
};

static int parse_one_uint(struct jfield *p, json_t *o, void *out)
{
	const struct one_uint *u = out;
	const char *const keys[] = {u->key, NULL};
	uint64_t v = 0;
	int r;

	if ((r = jfield_only_keys(p, o, keys)) == 0 &&
	    (r = jfield_uint(p, o, u->key, true, 0, u->hi, &v, NULL)) == 0)
		*u->v = (uint32_t)v;
	return r;
}

static int one_uint(const char *body, size_t len, const char *key, uint64_t hi, uint32_t *out,
		    char *err, size_t errlen)
{
	struct one_uint u = {.key = key, .hi = hi, .v = out};

	return parse_body(body, len, parse_one_uint, &u, err, errlen);
}

int config_json_balloon_update(const char *body, size_t len, uint32_t *amount_mib, char *err,
			       size_t errlen)
{
	return one_uint(body, len, "amount_mib", UINT32_MAX, amount_mib, err, errlen);
}

int config_json_balloon_stats_update(const char *body, size_t len, uint32_t *interval_s, char *err,
				     size_t errlen)
{
	return one_uint(body, len, "stats_polling_interval_s", UINT16_MAX, interval_s, err, errlen);
}

static int parse_hint_start(struct jfield *p, json_t *o, void *out)
{
	bool *ack = out;

	*ack = true;
	return jfield_bool(p, o, "acknowledge_on_stop", false, ack, NULL);
}

int config_json_balloon_hint_start(const char *body, size_t len, bool *ack_on_stop, char *err,
				   size_t errlen)
{
	*ack_on_stop = true;
	if (len == 0)
		return 0; /* no body: the default */
	return parse_body(body, len, parse_hint_start, ack_on_stop, err, errlen);
}

int config_json_memory_hotplug_update(const char *body, size_t len, uint32_t *requested_size_mib,
				      char *err, size_t errlen)
{
	return one_uint(body, len, "requested_size_mib", UINT32_MAX, requested_size_mib, err,
			errlen);
}

int config_json_serial(const char *body, size_t len, struct vmc_serial *s, char *err, size_t errlen)
{
	int r;

	*s = (struct vmc_serial){0};
	if ((r = parse_body(body, len, parse_serial, s, err, errlen)) < 0)
		vmc_serial_free(s);
	return r;
}

/* ---- the config file ----------------------------------------------------- */

/* One element of "drives", "network-interfaces" or "pmem": parsed, then put in c
 * (each_obj's fn; c is ctx). */
static int file_drive(struct jfield *p, json_t *e, void *c)
{
	struct vmc_drive d = {0};
	int r = parse_drive(p, e, &d);

	if (r == 0)
		r = jfield_placed(p, vm_config_put_drive(c, &d, p->err, p->errlen));
	vmc_drive_free(&d);
	return r;
}

static int file_net(struct jfield *p, json_t *e, void *c)
{
	struct vmc_net n = {0};
	int r = parse_net(p, e, &n);

	if (r == 0)
		r = jfield_placed(p, vm_config_put_net(c, &n, p->err, p->errlen));
	vmc_net_free(&n);
	return r;
}

static int file_pmem(struct jfield *p, json_t *e, void *c)
{
	struct vmc_pmem d = {0};
	int r = parse_pmem(p, e, &d);

	if (r == 0)
		r = jfield_placed(p, vm_config_put_pmem(c, &d, p->err, p->errlen));
	vmc_pmem_free(&d);
	return r;
}

/* One optional object section: parse(p, o, part) within its name. */
#define SECTION(p, root, key, parse, part)                                                         \
	({                                                                                         \
		json_t *o_;                                                                        \
		int r_ = jfield_obj(p, root, key, false, &o_);                                     \
		if (!r_ && o_) {                                                                   \
			size_t at_ = jfield_enter(p, key, -1);                                     \
			r_ = parse(p, o_, part);                                                   \
			jfield_leave(p, at_);                                                      \
		}                                                                                  \
		r_;                                                                                \
	})

static int parse_machine_file(struct jfield *p, json_t *o, struct vmc_machine *m)
{
	return parse_machine(p, o, m, NULL);
}

/* How the config file's other files are read (config_json_read_fn). */
struct file_reader {
	config_json_read_fn *read;
	void *ctx;
};

/* The config file's "cpu-config": as Firecracker's, the path of a template
 * file (read with rd, at most 1 MiB); or, flint's, the template itself, as
 * GET /vm/config writes it. */
static int file_cpu_config(struct jfield *p, json_t *v, struct vmc_cpu_config *t,
			   const struct file_reader *rd)
{
	const char *path = json_string_value(v);
	char why[256], *text = NULL;
	size_t at, n = 0;
	json_t *o;
	int r;

	if (!v)
		return 0;
	if (!path) {
		if (!json_is_object(v))
			return jfield_err(p, "cpu-config",
					  "expected a template file's path or a template, got %s",
					  jfield_type_name(v));
		at = jfield_enter(p, "cpu-config", -1);
		r = parse_cpu_config(p, v, t);
		jfield_leave(p, at);
		return r;
	}
	if (!rd || !rd->read)
		return jfield_err(p, "cpu-config", "%s: a template file cannot be read here", path);
	if ((r = rd->read(rd->ctx, path, 1u << 20, &text, &n, why, sizeof(why))) < 0)
		r = r == -ENOMEM ? jfield_oom(p) : jfield_err(p, "cpu-config", "%s: %s", path, why);
	if (r == 0) {
		char what[300];

		snprintf(what, sizeof(what), "cpu-config's %s", path);
		at = jfield_enter(p, "cpu-config", -1);
		if (!(o = jfield_load(p, text, n, what)))
			r = -EINVAL;
		else
			r = parse_cpu_config(p, o, t);
		json_decref(o);
		jfield_leave(p, at);
	}
	free(text);
	return r;
}

/* The config file's "memory-hotplug", its rules' messages placed in it
 * ("memory-hotplug: slot_size_mib: ..."). */
static int file_memory_hotplug(struct jfield *p, struct vm_config *c,
			       const struct vmc_memory_hotplug *h)
{
	size_t at = jfield_enter(p, "memory-hotplug", -1);
	int r = jfield_placed(p, vm_config_set_memory_hotplug(c, h, p->err, p->errlen));

	jfield_leave(p, at);
	return r;
}

static int parse_file(struct jfield *p, json_t *root, struct vm_config *c,
		      const struct file_reader *rd)
{
	static const char *const keys[] = {"boot-source",
					   "drives",
					   "machine-config",
					   "network-interfaces",
					   "vsock",
					   "logger",
					   "metrics",
					   "entropy",
					   "serial",
					   "balloon",
					   "cpu-config",
					   "mmds-config",
					   "pmem",
					   "memory-hotplug",
					   NULL};
	struct vmc_machine m = c->machine;
	struct vmc_boot boot = {0};
	struct vmc_vsock vsock = {0};
	struct vmc_logger logger = {.level = VMC_LOG_INFO};
	struct vmc_metrics metrics = {0};
	struct vmc_entropy entropy = {0};
	struct vmc_serial serial = {0};
	struct vmc_balloon balloon = {0};
	struct vmc_memory_hotplug hotplug = {0};
	struct vmc_mmds_req mmds = {0};
	struct vmc_cpu_config *cpu = calloc(1, sizeof(*cpu));
	int r;

	/* Firecracker's file parser passes over members it has no field for
	 * (its struct takes unknown keys): so does flint's, naming them. */
	char other[256];
	size_t nother = jfield_other_keys(root, keys, other, sizeof(other));

	if (!cpu)
		return jfield_oom(p);
	if (!jfield_member(root, "boot-source") || !jfield_member(root, "drives")) {
		r = jfield_missing(p,
				   jfield_member(root, "boot-source") ? "drives" : "boot-source");
		goto out;
	}

	/* Firecracker's order: machine, boot source, drives, interfaces,
	 * vsock, entropy (the logger and metrics before all, here after:
	 * nothing depends on them). */
	if ((r = SECTION(p, root, "machine-config", parse_machine_file, &m)) < 0)
		goto out;
	c->machine = m;
	if ((r = SECTION(p, root, "boot-source", parse_boot, &boot)) < 0 ||
	    (r = vm_config_set_boot(c, &boot, p->err, p->errlen)) < 0)
		goto out;
	if ((r = each_obj(p, root, "drives", file_drive, c)) < 0 ||
	    (r = each_obj(p, root, "pmem", file_pmem, c)) < 0 ||
	    (r = each_obj(p, root, "network-interfaces", file_net, c)) < 0)
		goto out;
	/* After the interfaces it names. */
	if ((r = SECTION(p, root, "mmds-config", parse_mmds_config, &mmds)) < 0 ||
	    (jfield_member(root, "mmds-config") &&
	     (r = vm_config_set_mmds(c, &mmds, p->err, p->errlen)) < 0))
		goto out;
	if ((r = SECTION(p, root, "vsock", parse_vsock, &vsock)) < 0 ||
	    (vsock.enabled && (r = vm_config_set_vsock(c, &vsock, p->err, p->errlen)) < 0))
		goto out;
	if ((r = SECTION(p, root, "entropy", parse_entropy, &entropy)) < 0)
		goto out;
	if (entropy.enabled)
		vm_config_set_entropy(c, &entropy);
	if ((r = SECTION(p, root, "balloon", parse_balloon, &balloon)) < 0 ||
	    (balloon.enabled && (r = vm_config_set_balloon(c, &balloon, p->err, p->errlen)) < 0))
		goto out;
	if ((r = SECTION(p, root, "memory-hotplug", parse_memory_hotplug, &hotplug)) < 0 ||
	    (hotplug.enabled && (r = file_memory_hotplug(p, c, &hotplug)) < 0))
		goto out;
	if ((r = file_cpu_config(p, jfield_member(root, "cpu-config"), cpu, rd)) < 0)
		goto out;
	if (cpu->enabled)
		vm_config_set_cpu_config(c, cpu);
	if ((r = SECTION(p, root, "logger", parse_logger, &logger)) < 0)
		goto out;
	if (logger.enabled)
		vm_config_set_logger(c, &logger);
	if ((r = SECTION(p, root, "metrics", parse_metrics, &metrics)) < 0)
		goto out;
	if (metrics.metrics_path)
		vm_config_set_metrics(c, &metrics);
	if ((r = SECTION(p, root, "serial", parse_serial, &serial)) < 0)
		goto out;
	if (serial.enabled)
		vm_config_set_serial(c, &serial);
	if (nother) {
		snprintf(p->err, p->errlen, "unknown top-level %s %s ignored",
			 nother > 1 ? "fields" : "field", other);
		r = 1;
	}
out:
	free(cpu);
	vmc_boot_free(&boot);
	vmc_vsock_free(&vsock);
	vmc_logger_free(&logger);
	vmc_metrics_free(&metrics);
	vmc_serial_free(&serial);
	vmc_mmds_req_free(&mmds);
	return r;
}

int config_json_parse_file_read(const char *text, size_t len, struct vm_config *c,
				config_json_read_fn *read, void *ctx, char *err, size_t errlen)
{
	struct jfield p = {.err = err, .errlen = errlen};
	struct file_reader rd = {.read = read, .ctx = ctx};
	json_t *root;
	int r;

	vm_config_init(c);
	if (!(root = jfield_load(&p, text, len, "the config file")))
		return -EINVAL;
	if ((r = parse_file(&p, root, c, &rd)) < 0)
		vm_config_free(c);
	json_decref(root);
	return r;
}

int config_json_parse_file(const char *text, size_t len, struct vm_config *c, char *err,
			   size_t errlen)
{
	return config_json_parse_file_read(text, len, c, NULL, NULL, err, errlen);
}

/* ---- encoding ------------------------------------------------------------ */

/* Set o[key] = v, taking v; *ok false if v is NULL or o cannot take it. */
static void put(json_t *o, const char *key, json_t *v, bool *ok)
{
	if (!v || json_object_set_new(o, key, v) < 0)
		*ok = false;
}

static void put_str(json_t *o, const char *key, const char *s, bool *ok)
{
	if (s)
		put(o, key, json_string(s), ok);
}

/* Firecracker's optional members: the string, or null when there is
 * none (its serde writes None as null, not leaving the member out). */
static void put_str_or_null(json_t *o, const char *key, const char *s, bool *ok)
{
	put(o, key, s ? json_string(s) : json_null(), ok);
}

static void put_uint(json_t *o, const char *key, uint64_t v, bool *ok)
{
	/* Parsed values fit; vmc_bucket_check keeps the others in range. */
	put(o, key, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v), ok);
}

static bool bucket_limits(const struct ratelimit_bucket_cfg *b)
{
	return b->size && b->refill_time_ms;
}

static json_t *enc_bucket(const struct ratelimit_bucket_cfg *b, bool *ok)
{
	json_t *o = json_object();

	if (!o) {
		*ok = false;
		return NULL;
	}
	put_uint(o, "size", b->size, ok);
	if (b->one_time_burst)
		put_uint(o, "one_time_burst", b->one_time_burst, ok);
	else
		put(o, "one_time_burst", json_null(), ok);
	put_uint(o, "refill_time", b->refill_time_ms, ok);
	return o;
}

/* The rate limiter as member key of o, null when it limits nothing (and
 * a bucket that limits nothing null), as Firecracker writes it. */
static void put_rl(json_t *o, const char *key, const struct ratelimit_cfg *r, bool *ok)
{
	json_t *rl;

	if (!bucket_limits(&r->bandwidth) && !bucket_limits(&r->ops)) {
		put(o, key, json_null(), ok);
		return;
	}
	if (!(rl = json_object())) {
		*ok = false;
		return;
	}
	put(rl, "bandwidth",
	    bucket_limits(&r->bandwidth) ? enc_bucket(&r->bandwidth, ok) : json_null(), ok);
	put(rl, "ops", bucket_limits(&r->ops) ? enc_bucket(&r->ops, ok) : json_null(), ok);
	put(o, key, rl, ok);
}

static json_t *enc_machine(const struct vmc_machine *m, bool *ok)
{
	json_t *o = json_object();

	if (!o) {
		*ok = false;
		return NULL;
	}
	put_uint(o, "vcpu_count", m->vcpu_count, ok);
	put_uint(o, "mem_size_mib", m->mem_size_mib, ok);
	put(o, "smt", json_boolean(m->smt), ok);
	/* Firecracker leaves the template out when there is none. */
	if (m->cpu_template != VMC_CPU_TEMPLATE_NONE)
		put_str(o, "cpu_template", vmc_cpu_template_name(m->cpu_template), ok);
	put(o, "track_dirty_pages", json_boolean(m->track_dirty_pages), ok);
	put_str(o, "huge_pages", vmc_huge_pages_name(m->huge_pages), ok);
	return o;
}

static json_t *enc_drive(const struct vmc_drive *d, bool *ok)
{
	json_t *o = json_object();

	if (!o) {
		*ok = false;
		return NULL;
	}
	put_str(o, "drive_id", d->drive_id, ok);
	put_str_or_null(o, "partuuid", d->partuuid, ok);
	put(o, "is_root_device", json_boolean(d->is_root_device), ok);
	put_str(o, "cache_type", vmc_cache_type_name(d->cache_type), ok);
	if (d->path_on_host) {
		put(o, "is_read_only", json_boolean(d->is_read_only), ok);
		put_str(o, "path_on_host", d->path_on_host, ok);
		put_rl(o, "rate_limiter", &d->rate_limiter, ok);
		put_str(o, "io_engine", vmc_io_engine_name(d->io_engine), ok);
	} else {
		/* vhost-user-blk: none of virtio-blk's members. */
		static const char *const none[] = {"is_read_only", "path_on_host", "rate_limiter",
						   "io_engine"};
		for (size_t i = 0; i < ARRAY_SIZE(none); i++)
			put(o, none[i], json_null(), ok);
	}
	put_str_or_null(o, "socket", d->socket, ok);
	if (d->direct)
		put(o, "flint_direct", json_true(), ok);
	return o;
}

static json_t *enc_pmem(const struct vmc_pmem *d, bool *ok)
{
	json_t *o = json_object();

	if (!o) {
		*ok = false;
		return NULL;
	}
	put_str(o, "id", d->id, ok);
	put_str(o, "path_on_host", d->path_on_host, ok);
	put(o, "root_device", json_boolean(d->root_device), ok);
	put(o, "read_only", json_boolean(d->read_only), ok);
	put_rl(o, "rate_limiter", &d->rate_limiter, ok);
	return o;
}

static json_t *enc_net(const struct vmc_net *n, bool *ok)
{
	json_t *o = json_object();
	char mac[18];

	if (!o) {
		*ok = false;
		return NULL;
	}
	put_str(o, "iface_id", n->iface_id, ok);
	put_str(o, "host_dev_name", n->host_dev_name, ok);
	if (n->user && !n->host_dev_name)
		put_str(o, "backend", "user", ok);
	if (n->has_guest_mac) {
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->guest_mac[0],
			 n->guest_mac[1], n->guest_mac[2], n->guest_mac[3], n->guest_mac[4],
			 n->guest_mac[5]);
		put_str(o, "guest_mac", mac, ok);
	} else {
		put(o, "guest_mac", json_null(), ok);
	}
	if (n->mtu)
		put_uint(o, "mtu", n->mtu, ok);
	else
		put(o, "mtu", json_null(), ok);
	put_rl(o, "rx_rate_limiter", &n->rx_rate_limiter, ok);
	put_rl(o, "tx_rate_limiter", &n->tx_rate_limiter, ok);
	return o;
}

/* An empty object as member key of o, returned to be filled. */
static json_t *put_obj(json_t *o, const char *key, bool *ok)
{
	json_t *v = json_object();

	put(o, key, v, ok);
	return *ok ? v : NULL;
}

/* "0b" and bits characters, most significant first: '1', '0' where mask
 * has the bit, 'x' elsewhere (bitmap_str's inverse). */
static json_t *enc_bitmap(uint64_t mask, uint64_t value, unsigned bits)
{
	char s[2 + 64 + 1] = "0b";

	for (unsigned i = 0; i < bits; i++) {
		uint64_t bit = 1ull << (bits - 1 - i);

		s[2 + i] = !(mask & bit) ? 'x' : value & bit ? '1' : '0';
	}
	s[2 + bits] = '\0';
	return json_string(s);
}

static json_t *enc_hex(uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%#llx", (unsigned long long)v);
	return json_string(s);
}

static json_t *enc_cpu_config(const struct vmc_cpu_config *t, bool *ok)
{
	static const char *const regs[] = {"eax", "ebx", "ecx", "edx"};
	json_t *o = json_object(), *ca = json_array(), *ma = json_array(), *e, *mods, *m;

	if (!o || !ca || !ma) {
		json_decref(ca);
		json_decref(ma);
		*ok = false;
		return o;
	}
	put(o, "cpuid_modifiers", ca, ok);
	put(o, "msr_modifiers", ma, ok);
	if (t->ncap) {
		json_t *ka = json_array();
		char s[16];

		put(o, "kvm_capabilities", ka, ok);
		for (unsigned i = 0; *ok && i < t->ncap; i++) {
			snprintf(s, sizeof(s), "%s%u", t->cap[i].remove ? "!" : "", t->cap[i].cap);
			if (json_array_append_new(ka, json_string(s)) < 0)
				*ok = false;
		}
	}
	for (unsigned i = 0; *ok && i < t->ncpuid; i++) {
		const struct vmc_cpuid_mod *c = &t->cpuid[i];

		if (!(e = json_object()) || json_array_append_new(ca, e) < 0) {
			*ok = false;
			break;
		}
		put(e, "leaf", enc_hex(c->leaf), ok);
		put(e, "subleaf", enc_hex(c->subleaf), ok);
		put_uint(e, "flags", c->flags, ok);
		put(e, "modifiers", mods = json_array(), ok);
		for (unsigned r = 0; *ok && r < 4; r++) {
			if (!(c->regs & (1u << r)))
				continue;
			if (!(m = json_object()) || json_array_append_new(mods, m) < 0) {
				*ok = false;
				break;
			}
			put(m, "register", json_string(regs[r]), ok);
			put(m, "bitmap", enc_bitmap(c->mask[r], c->value[r], 32), ok);
		}
	}
	for (unsigned i = 0; *ok && i < t->nmsr; i++) {
		if (!(e = json_object()) || json_array_append_new(ma, e) < 0) {
			*ok = false;
			break;
		}
		put(e, "addr", enc_hex(t->msr[i].addr), ok);
		put(e, "bitmap", enc_bitmap(t->msr[i].mask, t->msr[i].value, 64), ok);
	}
	return o;
}

static json_t *enc_balloon(const struct vmc_balloon *b, bool *ok)
{
	json_t *o = json_object();

	if (!o) {
		*ok = false;
		return NULL;
	}
	put_uint(o, "amount_mib", b->amount_mib, ok);
	put(o, "deflate_on_oom", json_boolean(b->deflate_on_oom), ok);
	put_uint(o, "stats_polling_interval_s", b->stats_polling_interval_s, ok);
	put(o, "free_page_hinting", json_boolean(b->free_page_hinting), ok);
	put(o, "free_page_reporting", json_boolean(b->free_page_reporting), ok);
	return o;
}

/* Firecracker's MmdsConfig, the interfaces in the configuration's order. */
static json_t *enc_mmds(const struct vm_config *c, bool *ok)
{
	json_t *o = json_object(), *a;
	char ip[INET_ADDRSTRLEN];
	struct in_addr in = {.s_addr = c->mmds.ipv4};

	if (!o) {
		*ok = false;
		return NULL;
	}
	put_str(o, "version", c->mmds.v2 ? "V2" : "V1", ok);
	put(o, "network_interfaces", a = json_array(), ok);
	for (unsigned i = 0; *ok && i < c->nnets; i++)
		if (c->nets[i].mmds &&
		    json_array_append_new(a, json_string(c->nets[i].iface_id)) < 0)
			*ok = false;
	put_str(o, "ipv4_address", inet_ntop(AF_INET, &in, ip, sizeof(ip)), ok);
	put(o, "imds_compat", json_boolean(c->mmds.imds_compat), ok);
	return o;
}

static json_t *enc_config(const struct vm_config *c, bool *ok)
{
	json_t *root = json_object(), *a, *o;

	if (!root) {
		*ok = false;
		return NULL;
	}
	/* Firecracker writes a boot-source even before one is set. */
	if ((o = put_obj(root, "boot-source", ok))) {
		put_str(o, "kernel_image_path",
			c->boot.kernel_image_path ? c->boot.kernel_image_path : "", ok);
		put_str_or_null(o, "initrd_path", c->boot.initrd_path, ok);
		put_str_or_null(o, "boot_args", c->boot.boot_args, ok);
	}
	put(root, "drives", a = json_array(), ok);
	for (unsigned i = 0; *ok && i < c->ndrives; i++)
		if (json_array_append_new(a, enc_drive(&c->drives[i], ok)) < 0)
			*ok = false;
	put(root, "machine-config", enc_machine(&c->machine, ok), ok);
	put(root, "network-interfaces", a = json_array(), ok);
	for (unsigned i = 0; *ok && i < c->nnets; i++)
		if (json_array_append_new(a, enc_net(&c->nets[i], ok)) < 0)
			*ok = false;
	if (c->vsock.enabled && (o = put_obj(root, "vsock", ok))) {
		put_uint(o, "guest_cid", c->vsock.guest_cid, ok);
		put_str(o, "uds_path", c->vsock.uds_path, ok);
		put_str(o, "vsock_id", c->vsock.vsock_id, ok);
	}
	if (c->logger.enabled && (o = put_obj(root, "logger", ok))) {
		put_str(o, "log_path", c->logger.log_path, ok);
		put_str(o, "level", vmc_log_level_name(c->logger.level), ok);
		put(o, "show_level", json_boolean(c->logger.show_level), ok);
		put(o, "show_log_origin", json_boolean(c->logger.show_log_origin), ok);
		put_str(o, "module", c->logger.module, ok);
	}
	if (c->metrics.metrics_path && (o = put_obj(root, "metrics", ok)))
		put_str(o, "metrics_path", c->metrics.metrics_path, ok);
	if (c->entropy.enabled && (o = put_obj(root, "entropy", ok)))
		put_rl(o, "rate_limiter", &c->entropy.rate_limiter, ok);
	if (c->balloon.enabled)
		put(root, "balloon", enc_balloon(&c->balloon, ok), ok);
	if (c->cpu_config.enabled)
		put(root, "cpu-config", enc_cpu_config(&c->cpu_config, ok), ok);
	if (c->memory_hotplug.enabled && (o = put_obj(root, "memory-hotplug", ok))) {
		put_uint(o, "total_size_mib", c->memory_hotplug.total_size_mib, ok);
		put_uint(o, "slot_size_mib", c->memory_hotplug.slot_size_mib, ok);
		put_uint(o, "block_size_mib", c->memory_hotplug.block_size_mib, ok);
	}
	if (c->mmds.enabled)
		put(root, "mmds-config", enc_mmds(c, ok), ok);
	/* Firecracker's FullVmConfiguration writes every section: null for
	 * one not configured, [] for an empty list. */
	static const char *const nulls[] = {"balloon",	      "cpu-config",  "logger", "metrics",
					    "memory-hotplug", "mmds-config", "vsock",  "entropy"};
	for (size_t i = 0; *ok && i < ARRAY_SIZE(nulls); i++)
		if (!json_object_get(root, nulls[i]))
			put(root, nulls[i], json_null(), ok);
	put(root, "pmem", a = json_array(), ok);
	for (unsigned i = 0; *ok && i < c->npmem; i++)
		if (json_array_append_new(a, enc_pmem(&c->pmem[i], ok)) < 0)
			*ok = false;
	if (c->serial.enabled && (o = put_obj(root, "serial", ok))) {
		put_str(o, "serial_out_path", c->serial.serial_out_path, ok);
		if (bucket_limits(&c->serial.rate_limiter))
			put(o, "rate_limiter", enc_bucket(&c->serial.rate_limiter, ok), ok);
	}
	return root;
}

/* Dump root (taking it) as a malloc'd string, NULL when !ok or on failure. */
static char *dump(json_t *root, bool ok, size_t flags)
{
	char *s = ok && root ? json_dumps(root, flags) : NULL;

	json_decref(root);
	return s;
}

char *config_json_encode(const struct vm_config *c, bool pretty)
{
	bool ok = true;
	json_t *root = enc_config(c, &ok);

	return dump(root, ok, pretty ? JSON_INDENT(2) : JSON_COMPACT);
}

char *config_json_encode_api(const struct vm_config *c)
{
	bool ok = true;
	json_t *root = enc_config(c, &ok);

	/* Firecracker's resources keep neither the logger nor the metrics
	 * (null in its answer), and its serial section is never written. */
	if (root && ok) {
		put(root, "logger", json_null(), &ok);
		put(root, "metrics", json_null(), &ok);
		json_object_del(root, "serial");
	}
	return dump(root, ok, JSON_COMPACT);
}

char *config_json_encode_machine(const struct vmc_machine *m)
{
	bool ok = true;
	json_t *root = enc_machine(m, &ok);

	return dump(root, ok, JSON_COMPACT);
}

char *config_json_encode_balloon(const struct vmc_balloon *b)
{
	bool ok = true;
	json_t *root = enc_balloon(b, &ok);

	return dump(root, ok, JSON_COMPACT);
}
