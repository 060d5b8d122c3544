#include "api/router.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "config/jfield.h"

enum { M_GET = 1, M_PUT = 2, M_PATCH = 4 };

/* What a path is, once matched. */
enum route_kind {
	R_ROOT,
	R_VERSION,
	R_MACHINE,
	R_VM_CONFIG,
	R_ACTIONS,
	R_BOOT,
	R_DRIVE,
	R_NET,
	R_PMEM,
	R_LOGGER,
	R_METRICS,
	R_VSOCK,
	R_ENTROPY,
	R_SERIAL,
	R_BALLOON,
	R_BALLOON_STATS,
	R_BALLOON_HINT_START,
	R_BALLOON_HINT_STATUS,
	R_BALLOON_HINT_STOP,
	R_HOTPLUG_MEMORY,
	R_CPU_CONFIG,
	R_MMDS,
	R_MMDS_CONFIG,
	R_VM,
	R_SNAPSHOT_CREATE,
	R_SNAPSHOT_LOAD,
	R_UNSUPPORTED,
};

/* The swagger's paths and methods. "*" is the resource id segment. */
static const struct route {
	const char *path;
	unsigned methods;
	enum route_kind kind;
	const char *what; /* R_UNSUPPORTED: what flint lacks */
} routes[] = {
    {"", M_GET, R_ROOT, NULL},
    {"version", M_GET, R_VERSION, NULL},
    {"machine-config", M_GET | M_PUT | M_PATCH, R_MACHINE, NULL},
    {"vm/config", M_GET, R_VM_CONFIG, NULL},
    {"actions", M_PUT, R_ACTIONS, NULL},
    {"boot-source", M_PUT, R_BOOT, NULL},
    {"drives/*", M_PUT | M_PATCH, R_DRIVE, NULL},
    {"network-interfaces/*", M_PUT | M_PATCH, R_NET, NULL},
    {"logger", M_PUT, R_LOGGER, NULL},
    {"metrics", M_PUT, R_METRICS, NULL},
    {"vsock", M_PUT, R_VSOCK, NULL},
    {"entropy", M_PUT, R_ENTROPY, NULL},
    {"serial", M_PUT, R_SERIAL, NULL},
    {"vm", M_PATCH, R_VM, NULL},
    {"balloon", M_GET | M_PUT | M_PATCH, R_BALLOON, NULL},
    {"balloon/statistics", M_GET | M_PATCH, R_BALLOON_STATS, NULL},
    {"balloon/hinting/start", M_PATCH, R_BALLOON_HINT_START, NULL},
    {"balloon/hinting/status", M_GET, R_BALLOON_HINT_STATUS, NULL},
    {"balloon/hinting/stop", M_PATCH, R_BALLOON_HINT_STOP, NULL},
    {"cpu-config", M_PUT, R_CPU_CONFIG, NULL},
    {"pmem/*", M_PUT | M_PATCH, R_PMEM, NULL},
    {"mmds", M_GET | M_PUT | M_PATCH, R_MMDS, NULL},
    {"mmds/config", M_GET | M_PUT | M_PATCH, R_MMDS_CONFIG, NULL},
    /* Firecracker's router reads no further than /mmds. */
    {"mmds/*", M_GET | M_PUT | M_PATCH, R_MMDS, NULL},
    {"hotplug/memory", M_GET | M_PUT | M_PATCH, R_HOTPLUG_MEMORY, NULL},
    {"snapshot/create", M_PUT, R_SNAPSHOT_CREATE, NULL},
    {"snapshot/load", M_PUT, R_SNAPSHOT_LOAD, NULL},
};

/* Longest path flint looks at; longer ones match no route. */
#define PATH_MAX_LEN 512

void api_resp_free(struct api_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

static int set_json(struct api_resp *resp, int status, char *body)
{
	resp->status = status;
	resp->body = body;
	resp->len = body ? strlen(body) : 0;
	return status;
}

/* status {"fault_message": msg}. */
static int fault_msg(struct api_resp *resp, int status, char *msg)
{
	json_t *s = json_string(msg);
	if (!s) {
		/* Not UTF-8: a message may quote the request's path. */
		ascii_printable(msg);
		s = json_string(msg);
	}
	json_t *o = s ? json_pack("{s:o}", "fault_message", s) : NULL;
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body) /* out of memory: a fixed answer */
		body = strdup("{\"fault_message\": \"out of memory\"}");
	return set_json(resp, status, body);
}

/* 400 {"fault_message": msg}. */
static int fault(struct api_resp *resp, const char *fmt, ...) PRINTF(2, 3);
static int fault(struct api_resp *resp, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fault_msg(resp, 400, msg);
}

static int no_content(struct api_resp *resp)
{
	return set_json(resp, 204, NULL);
}

static int ok_json(struct api_resp *resp, char *body)
{
	if (!body)
		return fault(resp, "out of memory, or a path that is not UTF-8");
	return set_json(resp, 200, body);
}

/* The request being routed. */
struct req {
	struct api_ctl *ctl;
	unsigned method;
	const char *mname; /* as given */
	const char *path;  /* without "?query" */
	const char *id;	   /* the path's id segment, "" when none */
	const char *body;
	size_t len;
	struct api_resp *resp;
};

/* Split path (after its leading '/'s, without a trailing '/') into at
 * most n segments; returns how many, or -1 when there are more. */
static int split(char *path, char **seg, int n)
{
	int k = 0;
	char *p = path;

	while (*p == '/')
		p++;
	size_t l = strlen(p);
	while (l && p[l - 1] == '/')
		p[--l] = '\0';
	if (!*p)
		return 0;
	for (;;) {
		if (k == n)
			return -1;
		seg[k++] = p;
		char *slash = strchr(p, '/');
		if (!slash)
			return k;
		*slash = '\0';
		p = slash + 1;
	}
}

/* Match the segments to a route; *id gets the "*" segment ("" when the
 * path ends before it, as Firecracker's "/drives" with no id). */
static const struct route *match(char **seg, int n, const char **id)
{
	*id = "";
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		char pat[64], *ps[4];
		snprintf(pat, sizeof(pat), "%s", routes[i].path);
		int pn = split(pat, ps, 4);
		bool has_id = pn > 0 && !strcmp(ps[pn - 1], "*");
		if (n != pn && !(has_id && n == pn - 1))
			continue;
		bool same = true;
		for (int k = 0; k < n && same; k++)
			same = (has_id && k == pn - 1) || !strcmp(seg[k], ps[k]);
		if (!same)
			continue;
		if (has_id && n == pn)
			*id = seg[n - 1];
		return &routes[i];
	}
	return NULL;
}

/* A config_json parse and a controller update, counted as req. */
#define ERRBUF(e) (e).msg, sizeof((e).msg)

/* Whether the body (parsed already) names member key, not null: for
 * Firecracker's "Deprecation: true" on a request that uses a deprecated
 * field, whatever its outcome. */
static bool names(const struct req *q, const char *key)
{
	json_t *o = json_loadb(q->body, q->len, 0, NULL);
	bool has = o && jfield_member(o, key);

	json_decref(o);
	return has;
}

static int answer(struct req *q, enum api_req counter, int r, const struct vm_err *e)
{
	api_ctl_count(q->ctl, counter, r < 0);
	if (r < 0)
		return fault(q->resp, "%s", e->msg[0] ? e->msg : strerror(-r));
	return no_content(q->resp);
}

static int do_machine(struct req *q)
{
	struct vm_err e = {0};
	int r;

	if (q->method == M_GET) {
		api_ctl_count(q->ctl, API_REQ_GET_MACHINE_CFG, false);
		return ok_json(q->resp, api_ctl_machine_json(q->ctl));
	}
	if (q->method == M_PUT) {
		struct vmc_machine m;
		if ((r = config_json_machine(q->body, q->len, &m, ERRBUF(e))) >= 0) {
			q->resp->deprecated = names(q, "cpu_template");
			r = api_ctl_put_machine(q->ctl, &m, &e);
		}
		return answer(q, API_REQ_PUT_MACHINE_CFG, r, &e);
	}
	struct vmc_machine_patch p;
	if ((r = config_json_machine_patch(q->body, q->len, &p, ERRBUF(e))) >= 0) {
		q->resp->deprecated = p.has_cpu_template;
		r = api_ctl_patch_machine(q->ctl, &p, &e);
	}
	return answer(q, API_REQ_PATCH_MACHINE_CFG, r, &e);
}

static int do_boot(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_boot b;
	int r;

	if ((r = config_json_boot_source(q->body, q->len, &b, ERRBUF(e))) >= 0) {
		r = api_ctl_put_boot(q->ctl, &b, &e);
		vmc_boot_free(&b);
	}
	return answer(q, API_REQ_PUT_BOOT_SOURCE, r, &e);
}

static int do_drive(struct req *q)
{
	struct vm_err e = {0};
	int r;

	if (q->method == M_PUT) {
		struct vmc_drive d;
		if ((r = config_json_drive(q->id, q->body, q->len, &d, ERRBUF(e))) >= 0) {
			r = api_ctl_put_drive(q->ctl, &d, &e);
			vmc_drive_free(&d);
		}
		return answer(q, API_REQ_PUT_DRIVE, r, &e);
	}
	struct vmc_drive_patch p;
	if ((r = config_json_drive_patch(q->id, q->body, q->len, &p, ERRBUF(e))) >= 0) {
		r = api_ctl_patch_drive(q->ctl, &p, &e);
		vmc_drive_patch_free(&p);
	}
	return answer(q, API_REQ_PATCH_DRIVE, r, &e);
}

static int do_net(struct req *q)
{
	struct vm_err e = {0};
	int r;

	if (q->method == M_PUT) {
		struct vmc_net n;
		if ((r = config_json_net(q->id, q->body, q->len, &n, ERRBUF(e))) >= 0) {
			r = api_ctl_put_net(q->ctl, &n, &e);
			vmc_net_free(&n);
		}
		return answer(q, API_REQ_PUT_NETWORK, r, &e);
	}
	struct vmc_net_patch p;
	if ((r = config_json_net_patch(q->id, q->body, q->len, &p, ERRBUF(e))) >= 0) {
		r = api_ctl_patch_net(q->ctl, &p, &e);
		vmc_net_patch_free(&p);
	}
	return answer(q, API_REQ_PATCH_NETWORK, r, &e);
}

static int do_pmem(struct req *q)
{
	struct vm_err e = {0};
	int r;

	if (q->method == M_PUT) {
		struct vmc_pmem d;
		if ((r = config_json_pmem(q->id, q->body, q->len, &d, ERRBUF(e))) >= 0) {
			r = api_ctl_put_pmem(q->ctl, &d, &e);
			vmc_pmem_free(&d);
		}
		return answer(q, API_REQ_PUT_PMEM, r, &e);
	}
	struct vmc_pmem_patch p;
	if ((r = config_json_pmem_patch(q->id, q->body, q->len, &p, ERRBUF(e))) >= 0) {
		r = api_ctl_patch_pmem(q->ctl, &p, &e);
		vmc_pmem_patch_free(&p);
	}
	return answer(q, API_REQ_PATCH_PMEM, r, &e);
}

static int do_logger(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_logger l;
	int r;

	if ((r = config_json_logger(q->body, q->len, &l, ERRBUF(e))) >= 0) {
		r = api_ctl_put_logger(q->ctl, &l, &e);
		vmc_logger_free(&l);
	}
	return answer(q, API_REQ_PUT_LOGGER, r, &e);
}

static int do_metrics(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_metrics m;
	int r;

	if ((r = config_json_metrics(q->body, q->len, &m, ERRBUF(e))) >= 0) {
		r = api_ctl_put_metrics(q->ctl, &m, &e);
		vmc_metrics_free(&m);
	}
	return answer(q, API_REQ_PUT_METRICS, r, &e);
}

static int do_vsock(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_vsock v;
	int r;

	if ((r = config_json_vsock(q->body, q->len, &v, ERRBUF(e))) >= 0) {
		q->resp->deprecated = v.vsock_id != NULL;
		r = api_ctl_put_vsock(q->ctl, &v, &e);
		vmc_vsock_free(&v);
	}
	return answer(q, API_REQ_PUT_VSOCK, r, &e);
}

static int do_entropy(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_entropy en;
	int r;

	if ((r = config_json_entropy(q->body, q->len, &en, ERRBUF(e))) >= 0)
		r = api_ctl_put_entropy(q->ctl, &en, &e);
	return answer(q, API_REQ_PUT_ENTROPY, r, &e);
}

/* A GET answered with JSON or the fault err says. */
static int got_json(struct req *q, enum api_req counter, char *body, const struct vm_err *e)
{
	api_ctl_count(q->ctl, counter, !body);
	return body ? ok_json(q->resp, body) : fault(q->resp, "%s", e->msg);
}

static int do_balloon(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_balloon b;
	uint32_t amount;
	int r;

	if (q->method == M_GET)
		return got_json(q, API_REQ_GET_BALLOON, api_ctl_balloon_json(q->ctl, &e), &e);
	if (q->method == M_PUT) {
		if ((r = config_json_balloon(q->body, q->len, &b, ERRBUF(e))) >= 0)
			r = api_ctl_put_balloon(q->ctl, &b, &e);
		return answer(q, API_REQ_PUT_BALLOON, r, &e);
	}
	if ((r = config_json_balloon_update(q->body, q->len, &amount, ERRBUF(e))) >= 0)
		r = api_ctl_patch_balloon(q->ctl, amount, &e);
	return answer(q, API_REQ_PATCH_BALLOON, r, &e);
}

static int do_balloon_stats(struct req *q)
{
	struct vm_err e = {0};
	uint32_t interval;
	int r;

	if (q->method == M_GET)
		return got_json(q, API_REQ_GET_BALLOON_STATS,
				api_ctl_balloon_stats_json(q->ctl, &e), &e);
	if ((r = config_json_balloon_stats_update(q->body, q->len, &interval, ERRBUF(e))) >= 0)
		r = api_ctl_patch_balloon_stats(q->ctl, interval, &e);
	return answer(q, API_REQ_PATCH_BALLOON_STATS, r, &e);
}

/* Free page hinting runs: PATCH start (BalloonStartCmd), PATCH stop, GET
 * status (BalloonHintingStatus). */
static int do_balloon_hinting(struct req *q, enum route_kind kind)
{
	struct vm_err e = {0};
	bool ack;
	int r;

	if (kind == R_BALLOON_HINT_STATUS) {
		char *body = api_ctl_balloon_hint_status_json(q->ctl, &e);

		return body ? ok_json(q->resp, body) : fault(q->resp, "%s", e.msg);
	}
	if (kind == R_BALLOON_HINT_STOP)
		r = api_ctl_balloon_hint_stop(q->ctl, &e);
	else if ((r = config_json_balloon_hint_start(q->body, q->len, &ack, ERRBUF(e))) >= 0)
		r = api_ctl_balloon_hint_start(q->ctl, ack, &e);
	return r < 0 ? fault(q->resp, "%s", e.msg[0] ? e.msg : strerror(-r)) : no_content(q->resp);
}

/* Memory hot-plug: PUT MemoryHotplugConfig, PATCH MemoryHotplugSizeUpdate,
 * GET MemoryHotplugStatus. */
static int do_hotplug_memory(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_memory_hotplug h;
	uint32_t requested;
	int r;

	if (q->method == M_GET)
		return got_json(q, API_REQ_GET_HOTPLUG_MEMORY,
				api_ctl_memory_hotplug_json(q->ctl, &e), &e);
	if (q->method == M_PUT) {
		if ((r = config_json_memory_hotplug(q->body, q->len, &h, ERRBUF(e))) >= 0)
			r = api_ctl_put_memory_hotplug(q->ctl, &h, &e);
		return answer(q, API_REQ_PUT_HOTPLUG_MEMORY, r, &e);
	}
	if ((r = config_json_memory_hotplug_update(q->body, q->len, &requested, ERRBUF(e))) >= 0)
		r = api_ctl_patch_memory_hotplug(q->ctl, requested, &e);
	return answer(q, API_REQ_PATCH_HOTPLUG_MEMORY, r, &e);
}

static int do_cpu_config(struct req *q)
{
	struct vmc_cpu_config *t = malloc(sizeof(*t));
	struct vm_err e = {0};
	int r = -ENOMEM;

	if (t && (r = config_json_cpu_config(q->body, q->len, t, ERRBUF(e))) >= 0)
		r = api_ctl_put_cpu_config(q->ctl, t, &e);
	free(t);
	return answer(q, API_REQ_PUT_CPU_CONFIG, r, &e);
}

/* PUT, PATCH, GET /mmds: any JSON value, as Firecracker's data store
 * takes; 413 for a document over the store's limit. */
static int do_mmds(struct req *q)
{
	static const enum api_req counters[] = {
	    [M_GET] = API_REQ_GET_MMDS, [M_PUT] = API_REQ_PUT_MMDS, [M_PATCH] = API_REQ_PATCH_MMDS};
	struct mmds *m = api_ctl_mmds(q->ctl);
	enum api_req counter = counters[q->method];
	struct vm_err e = {0};
	json_error_t je;
	json_t *v;
	int r;

	if (!m) {
		api_ctl_count(q->ctl, counter, true);
		return fault(q->resp, "this flint has no MMDS data store");
	}
	if (q->method == M_GET) {
		api_ctl_count(q->ctl, counter, false);
		return ok_json(q->resp, mmds_get_json(m));
	}
	if (q->method == M_PUT && *q->id) {
		api_ctl_count(q->ctl, counter, true);
		return fault(q->resp, "Unrecognized PUT request path `%s`.", q->id);
	}
	if (!(v = json_loadb(q->body, q->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je))) {
		api_ctl_count(q->ctl, counter, true);
		return fault(q->resp, "the body is not valid JSON: %s (line %d, column %d)",
			     je.text, je.line, je.column);
	}
	r = q->method == M_PUT ? mmds_put(m, v, ERRBUF(e)) : mmds_patch(m, v, ERRBUF(e));
	json_decref(v);
	api_ctl_count(q->ctl, counter, r < 0);
	if (r == -EFBIG)
		return fault_msg(q->resp, 413, e.msg);
	return r < 0 ? fault(q->resp, "%s", e.msg) : no_content(q->resp);
}

static int do_mmds_config(struct req *q)
{
	struct vmc_mmds_req m;
	struct vm_err e = {0};
	int r;

	if (q->method != M_PUT) /* Firecracker's GET and PATCH of /mmds/... */
		return do_mmds(q);
	if ((r = config_json_mmds_config(q->body, q->len, &m, ERRBUF(e))) >= 0) {
		r = api_ctl_put_mmds_config(q->ctl, &m, &e);
		/* Firecracker marks version 1 deprecated. */
		q->resp->deprecated = r >= 0 && !m.m.v2;
		vmc_mmds_req_free(&m);
	}
	return answer(q, API_REQ_PUT_MMDS, r, &e);
}

static int do_serial(struct req *q)
{
	struct vm_err e = {0};
	struct vmc_serial s;
	int r;

	if ((r = config_json_serial(q->body, q->len, &s, ERRBUF(e))) >= 0) {
		r = api_ctl_put_serial(q->ctl, &s, &e);
		vmc_serial_free(&s);
	}
	return answer(q, API_REQ_PUT_SERIAL, r, &e);
}

/* A body that is one object with one required enum member: /actions'
 * action_type, /vm's state. *out gets the index in names. */
static int one_enum(struct req *q, const char *key, const char *const *names, size_t n, int *out,
		    struct vm_err *e)
{
	struct jfield j = {.err = e->msg, .errlen = sizeof(e->msg)};
	const char *const keys[] = {key, NULL};
	json_t *o = jfield_load(&j, q->body, q->len, "the body");
	int r;

	if (!o)
		return -EINVAL;
	if ((r = jfield_only_keys(&j, o, keys)) >= 0)
		r = jfield_enum(&j, o, key, true, names, n, false, out, NULL);
	json_decref(o);
	return r;
}

static int do_actions(struct req *q)
{
	static const char *const names[] = {"InstanceStart", "SendCtrlAltDel", "FlushMetrics"};
	struct vm_err e = {0};
	int which, r;

	if ((r = one_enum(q, "action_type", names, ARRAY_SIZE(names), &which, &e)) >= 0) {
		if (which == 0)
			r = api_ctl_start(q->ctl, &e);
		else if (which == 1)
			r = api_ctl_ctrl_alt_del(q->ctl, &e);
		else
			r = api_ctl_flush_metrics(q->ctl, &e);
	}
	return answer(q, API_REQ_PUT_ACTIONS, r, &e);
}

static int do_vm(struct req *q)
{
	static const char *const names[] = {"Paused", "Resumed"};
	struct vm_err e = {0};
	int which, r;

	if ((r = one_enum(q, "state", names, ARRAY_SIZE(names), &which, &e)) >= 0)
		r = which == 0 ? api_ctl_pause(q->ctl, &e) : api_ctl_resume(q->ctl, &e);
	return answer(q, API_REQ_PATCH_VM, r, &e);
}

/* PUT /snapshot/create: SnapshotCreateParams. */
static int do_snapshot_create(struct req *q)
{
	static const char *const keys[] = {"mem_file_path", "snapshot_path", "snapshot_type", NULL};
	static const char *const types[] = {"Full", "Diff"};
	static const char *const not_null[] = {"snapshot_type", NULL};
	struct vm_err e = {0};
	struct jfield j = {.err = e.msg, .errlen = sizeof(e.msg)};
	char *mem = NULL, *state = NULL;
	int type = 0, r = -EINVAL;
	json_t *o = jfield_load(&j, q->body, q->len, "the body");

	if (o && (r = jfield_only_keys(&j, o, keys)) >= 0 &&
	    (r = jfield_not_null(&j, o, not_null)) >= 0 &&
	    (r = jfield_str(&j, o, "mem_file_path", true, &mem)) >= 0 &&
	    (r = jfield_str(&j, o, "snapshot_path", true, &state)) >= 0 &&
	    (r = jfield_enum(&j, o, "snapshot_type", false, types, ARRAY_SIZE(types), false, &type,
			     NULL)) >= 0) {
		struct vm_snapshot_args a = {.type = type ? VM_SNAPSHOT_DIFF : VM_SNAPSHOT_FULL,
					     .snapshot_path = state,
					     .mem_file_path = mem};
		r = api_ctl_snapshot_create(q->ctl, &a, &e);
	}
	json_decref(o);
	free(mem);
	free(state);
	return answer(q, API_REQ_PUT_SNAPSHOT_CREATE, r, &e);
}

/* SnapshotLoadParams' network_overrides: an array of {iface_id,
 * host_dev_name}, at most VMC_MAX_NETS. Other members are ignored, as
 * Firecracker's NetworkOverride (no deny_unknown_fields) ignores them. */
static int load_net_overrides(struct jfield *j, json_t *o, struct vm_net_override *ov, char **strs,
			      unsigned *n)
{
	json_t *arr = jfield_member(o, "network_overrides"), *item;
	size_t i;
	int r = 0;

	*n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return jfield_err(j, "network_overrides", "expected an array, got %s",
				  jfield_type_name(arr));
	if (json_array_size(arr) > VMC_MAX_NETS)
		return jfield_err(j, "network_overrides", "more than %d entries", VMC_MAX_NETS);
	json_array_foreach(arr, i, item)
	{
		size_t mark = jfield_enter(j, "network_overrides", (int)i);

		if (!json_is_object(item))
			r = jfield_obj_err(j, "expected an object, got %s", jfield_type_name(item));
		else if ((r = jfield_str(j, item, "iface_id", true, &strs[2 * i])) >= 0 &&
			 (r = jfield_str(j, item, "host_dev_name", true, &strs[2 * i + 1])) >= 0)
			ov[i] = (struct vm_net_override){strs[2 * i], strs[2 * i + 1]};
		jfield_leave(j, mark);
		if (r < 0)
			return r;
		*n = i + 1;
	}
	return 0;
}

/* PUT /snapshot/load: SnapshotLoadParams. Exactly one of mem_backend and
 * the deprecated mem_file_path; enable_diff_snapshots is the deprecated
 * name of track_dirty_pages; clock_realtime false unless given, as in
 * Firecracker (flint's own --restore defaults to true). */
static int do_snapshot_load(struct req *q)
{
	static const char *const keys[] = {"enable_diff_snapshots", "track_dirty_pages",
					   "mem_file_path",	    "mem_backend",
					   "snapshot_path",	    "resume_vm",
					   "network_overrides",	    "vsock_override",
					   "clock_realtime",	    NULL};
	/* Firecracker's serde defaults, which take no null. */
	static const char *const not_null[] = {
	    "enable_diff_snapshots", "track_dirty_pages", "resume_vm",
	    "network_overrides",     "clock_realtime",	  NULL};
	static const char *const mb_keys[] = {"backend_type", "backend_path", NULL};
	static const char *const backends[] = {"File", "Uffd"};
	struct vm_err e = {0};
	struct jfield j = {.err = e.msg, .errlen = sizeof(e.msg)};
	struct vm_net_override ov[VMC_MAX_NETS];
	char *strs[2 * VMC_MAX_NETS] = {0}, *state = NULL, *mem = NULL, *uds = NULL;
	struct vm_restore_args a = {.backend = VM_MEM_FILE};
	bool diff = false, track = false;
	int backend = 0, r = -EINVAL;
	json_t *o = jfield_load(&j, q->body, q->len, "the body"), *mb, *vs;

	if (!o || (r = jfield_only_keys(&j, o, keys)) < 0 ||
	    (r = jfield_not_null(&j, o, not_null)) < 0 ||
	    (r = jfield_str(&j, o, "snapshot_path", true, &state)) < 0 ||
	    (r = jfield_bool(&j, o, "enable_diff_snapshots", false, &diff, NULL)) < 0 ||
	    (r = jfield_bool(&j, o, "track_dirty_pages", false, &track, NULL)) < 0 ||
	    (r = jfield_bool(&j, o, "resume_vm", false, &a.resume_vm, NULL)) < 0 ||
	    (r = jfield_bool(&j, o, "clock_realtime", false, &a.clock_realtime, NULL)) < 0 ||
	    (r = load_net_overrides(&j, o, ov, strs, &a.n_net_overrides)) < 0)
		goto out;
	mb = jfield_member(o, "mem_backend");
	if (!mb == !jfield_member(o, "mem_file_path")) {
		r = vm_err_set(&e, -EINVAL,
			       "Exactly one of mem_backend and mem_file_path must be given.");
		goto out;
	}
	if (!mb) {
		r = jfield_str(&j, o, "mem_file_path", true, &mem);
	} else {
		size_t mark = jfield_enter(&j, "mem_backend", -1);
		if (!json_is_object(mb))
			r = jfield_obj_err(&j, "expected an object, got %s", jfield_type_name(mb));
		else if ((r = jfield_only_keys(&j, mb, mb_keys)) >= 0 &&
			 (r = jfield_enum(&j, mb, "backend_type", true, backends,
					  ARRAY_SIZE(backends), false, &backend, NULL)) >= 0)
			r = jfield_str(&j, mb, "backend_path", true, &mem);
		jfield_leave(&j, mark);
	}
	if (r < 0)
		goto out;
	if ((vs = jfield_member(o, "vsock_override"))) {
		size_t mark = jfield_enter(&j, "vsock_override", -1);
		if (!json_is_object(vs))
			r = jfield_obj_err(&j, "expected an object, got %s", jfield_type_name(vs));
		else /* VsockOverride, as NetworkOverride, ignores other members */
			r = jfield_str(&j, vs, "uds_path", true, &uds);
		jfield_leave(&j, mark);
		if (r < 0)
			goto out;
	}
	a.snapshot_path = state;
	a.backend = backend ? VM_MEM_UFFD : VM_MEM_FILE;
	a.backend_path = mem;
	a.track_dirty_pages = diff || track;
	a.net_overrides = ov;
	a.vsock_uds_path = uds;
	q->resp->deprecated = !mb || diff;
	r = api_ctl_snapshot_load(q->ctl, &a, &e);
out:
	json_decref(o);
	free(state);
	free(mem);
	free(uds);
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		free(strs[i]);
	return answer(q, API_REQ_PUT_SNAPSHOT_LOAD, r, &e);
}

static int route(struct req *q, const struct route *rt)
{
	switch (rt->kind) {
	case R_ROOT:
		api_ctl_count(q->ctl, API_REQ_GET_INSTANCE_INFO, false);
		return ok_json(q->resp, api_ctl_instance_info(q->ctl));
	case R_VERSION:
		api_ctl_count(q->ctl, API_REQ_GET_VERSION, false);
		return ok_json(q->resp, api_ctl_version(q->ctl));
	case R_VM_CONFIG:
		api_ctl_count(q->ctl, API_REQ_GET_VM_CONFIG, false);
		return ok_json(q->resp, api_ctl_vm_config_json(q->ctl));
	case R_MACHINE:
		return do_machine(q);
	case R_ACTIONS:
		return do_actions(q);
	case R_BOOT:
		return do_boot(q);
	case R_DRIVE:
		return do_drive(q);
	case R_PMEM:
		return do_pmem(q);
	case R_NET:
		return do_net(q);
	case R_LOGGER:
		return do_logger(q);
	case R_METRICS:
		return do_metrics(q);
	case R_VSOCK:
		return do_vsock(q);
	case R_ENTROPY:
		return do_entropy(q);
	case R_SERIAL:
		return do_serial(q);
	case R_BALLOON:
		return do_balloon(q);
	case R_BALLOON_STATS:
		return do_balloon_stats(q);
	case R_BALLOON_HINT_START:
	case R_BALLOON_HINT_STATUS:
	case R_BALLOON_HINT_STOP:
		return do_balloon_hinting(q, rt->kind);
	case R_HOTPLUG_MEMORY:
		return do_hotplug_memory(q);
	case R_CPU_CONFIG:
		return do_cpu_config(q);
	case R_MMDS:
		return do_mmds(q);
	case R_MMDS_CONFIG:
		return do_mmds_config(q);
	case R_VM:
		return do_vm(q);
	case R_SNAPSHOT_CREATE:
		return do_snapshot_create(q);
	case R_SNAPSHOT_LOAD:
		return do_snapshot_load(q);
	case R_UNSUPPORTED:
		break;
	}
	return fault(q->resp, "flint does not support %s yet (%s /%s).", rt->what, q->mname,
		     rt->path);
}

int api_handle(struct api_ctl *ctl, const char *method, const char *url, const char *body,
	       size_t len, struct api_resp *resp)
{
	char path[PATH_MAX_LEN + 1], shown[PATH_MAX_LEN + 1], *seg[4];
	struct req q = {.ctl = ctl, .mname = method, .body = body, .len = len, .resp = resp};

	*resp = (struct api_resp){0};
	if (len > api_ctl_max_body(ctl))
		return fault(resp,
			     "Request payload with size %zu is larger than the limit of %zu "
			     "allowed by server.",
			     len, api_ctl_max_body(ctl));
	if (!method)
		method = q.mname = "";
	if (!url)
		url = "";
	/* An absolute-form target (http://host/path) is its path, as
	 * Firecracker's server takes it. */
	if (!strncmp(url, "http://", 7)) {
		const char *p = strchr(url + 7, '/');
		url = p ? p : "";
	}
	size_t plen = strcspn(url, "?");
	snprintf(shown, sizeof(shown), "%.*s", (int)(plen < PATH_MAX_LEN ? plen : PATH_MAX_LEN),
		 url);
	ascii_printable(shown);
	if (!strcmp(method, "GET"))
		q.method = M_GET;
	else if (!strcmp(method, "PUT"))
		q.method = M_PUT;
	else if (!strcmp(method, "PATCH"))
		q.method = M_PATCH;
	char mshown[16];
	snprintf(mshown, sizeof(mshown), "%s", method);
	ascii_printable(mshown);
	if (!q.method)
		return fault(resp, "Invalid request method and/or path: %s %s.", mshown, shown);
	/* Firecracker's checks before routing. */
	if (q.method == M_GET && len)
		return fault(resp, "GET request cannot have a body.");

	const struct route *rt = NULL;
	const char *id = "";
	int n = -1;
	if (plen <= PATH_MAX_LEN && url[0] == '/') {
		memcpy(path, url, plen);
		path[plen] = '\0';
		n = split(path, seg, ARRAY_SIZE(seg));
	}
	if (n >= 0)
		rt = match(seg, n, &id);
	if (rt && !(rt->methods & q.method))
		rt = NULL;
	/* Firecracker's check before routing, but for a hinting run's start
	 * and stop, which may come without a body. */
	if (q.method != M_GET && !len &&
	    !(rt && (rt->kind == R_BALLOON_HINT_START || rt->kind == R_BALLOON_HINT_STOP)))
		return fault(resp, "Empty %s request.", method);
	if (!rt)
		return fault(resp, "Invalid request method and/or path: %s %s.", method, shown);
	q.path = shown;
	q.id = id;
	return route(&q, rt);
}
