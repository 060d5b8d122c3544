/* The API router and controller with fake VM ops: every path of the
 * swagger, body errors, Firecracker's phase rules, what the ops are given. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/controller.h"
#include "api/router.h"
#include "core/devices.h"
#include "mmds/mmds.h"

TestSuite(api_router, .timeout = 10);

/* What the fake VM saw. */
static struct fake {
	int starts, pauses, resumes, cads, flushes, loggers, metrics;
	int fail_start, fail_update; /* -errno to answer, 0 to succeed */
	unsigned start_vcpus;
	char drive_path[128];
	uint64_t drive_bw_size, drive_ops_size;
	int drive_updates, net_updates, pmem_updates;
	uint64_t pmem_ops_size, pmem_bw_size;
	bool drive_new_image;
	uint64_t net_rx_size, net_tx_size;
	const char *state;
	/* snapshots */
	int creates, loads;
	struct vm_snapshot_args create;
	char create_state[128], create_mem[128];
	struct vm_restore_args load;
	char load_state[128], load_backend[128], load_uds[128], load_serial[128], load_iface[64],
	    load_tap[64];
	/* the balloon */
	int balloon_updates;
	unsigned balloon_changes;
	struct vmc_balloon balloon;
	/* its free page hinting: the last command and argument */
	int hint_cmds;
	unsigned hint_cmd;
	uint64_t hint_arg;
	/* memory hot-plug: the last target asked for, what the device says */
	int hotplug_updates, hotplug_reports;
	uint32_t hotplug_requested, hotplug_plugged;
} fake;

static int f_create(void *ctx, const struct vm_snapshot_args *a, struct vm_err *err)
{
	(void)ctx, (void)err;
	fake.creates++;
	fake.create = *a;
	snprintf(fake.create_state, sizeof(fake.create_state), "%s", a->snapshot_path);
	snprintf(fake.create_mem, sizeof(fake.create_mem), "%s", a->mem_file_path);
	return 0;
}

/* Loads a machine of 3 vCPUs, as the snapshot's configuration. */
static int f_load(void *ctx, const struct vm_restore_args *a, struct vm_config *loaded,
		  struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_start)
		return vm_err_set(err, fake.fail_start, "fake load failed");
	fake.loads++;
	fake.load = *a;
	snprintf(fake.load_state, sizeof(fake.load_state), "%s", a->snapshot_path);
	snprintf(fake.load_backend, sizeof(fake.load_backend), "%s", a->backend_path);
	snprintf(fake.load_uds, sizeof(fake.load_uds), "%s",
		 a->vsock_uds_path ? a->vsock_uds_path : "");
	snprintf(fake.load_serial, sizeof(fake.load_serial), "%s",
		 a->serial && a->serial->enabled && a->serial->serial_out_path
		     ? a->serial->serial_out_path
		     : "");
	if (a->n_net_overrides) {
		snprintf(fake.load_iface, sizeof(fake.load_iface), "%s",
			 a->net_overrides[0].iface_id);
		snprintf(fake.load_tap, sizeof(fake.load_tap), "%s",
			 a->net_overrides[0].host_dev_name);
	}
	loaded->machine.vcpu_count = 3;
	loaded->machine.track_dirty_pages = a->track_dirty_pages; /* as vm_restore */
	fake.state = a->resume_vm ? "Running" : "Paused";
	return 0;
}

static int f_start(void *ctx, const struct vm_config *c, struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_start)
		return vm_err_set(err, fake.fail_start, "fake start failed");
	fake.starts++;
	fake.start_vcpus = c->machine.vcpu_count;
	fake.state = "Running";
	return 0;
}

static int f_pause(void *ctx, struct vm_err *err)
{
	(void)ctx, (void)err;
	fake.pauses++;
	fake.state = "Paused";
	return 0;
}

static int f_resume(void *ctx, struct vm_err *err)
{
	(void)ctx, (void)err;
	fake.resumes++;
	fake.state = "Running";
	return 0;
}

static int f_cad(void *ctx, struct vm_err *err)
{
	(void)ctx, (void)err;
	fake.cads++;
	return 0;
}

static int f_flush(void *ctx, struct vm_err *err)
{
	(void)ctx, (void)err;
	fake.flushes++;
	return 0;
}

static int f_update_drive(void *ctx, const struct vmc_drive *d, bool new_image, struct vm_err *err)
{
	(void)ctx;
	fake.drive_new_image = new_image;
	if (fake.fail_update)
		return vm_err_set(err, fake.fail_update, "fake update failed");
	fake.drive_updates++;
	snprintf(fake.drive_path, sizeof(fake.drive_path), "%s", d->path_on_host);
	fake.drive_bw_size = d->rate_limiter.bandwidth.size;
	fake.drive_ops_size = d->rate_limiter.ops.size;
	return 0;
}

static int f_update_net(void *ctx, const struct vmc_net *n, struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_update)
		return vm_err_set(err, fake.fail_update, "fake update failed");
	fake.net_updates++;
	fake.net_rx_size = n->rx_rate_limiter.bandwidth.size;
	fake.net_tx_size = n->tx_rate_limiter.ops.size;
	return 0;
}

static int f_update_pmem(void *ctx, const struct vmc_pmem *p, struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_update)
		return vm_err_set(err, fake.fail_update, "fake update failed");
	fake.pmem_updates++;
	fake.pmem_ops_size = p->rate_limiter.ops.size;
	fake.pmem_bw_size = p->rate_limiter.bandwidth.size;
	return 0;
}

static int f_update_balloon(void *ctx, const struct vmc_balloon *b, unsigned changes,
			    struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_update)
		return vm_err_set(err, fake.fail_update, "fake update failed");
	fake.balloon_updates++;
	fake.balloon_changes = changes;
	fake.balloon = *b;
	return 0;
}

/* The device's report: its target (the last update's) and one statistic. */
static int f_balloon_report(void *ctx, void (*emit)(void *e, const char *name, uint64_t v), void *e,
			    struct vm_err *err)
{
	(void)ctx, (void)err;
	emit(e, "target_pages", fake.balloon.amount_mib * 256ull);
	emit(e, "actual_pages", 512);
	emit(e, "target_mib", fake.balloon.amount_mib);
	emit(e, "actual_mib", 2);
	emit(e, "free_memory", 1234);
	return 0;
}

/* Hinting: the command is recorded; the status is host_cmd 3, guest_cmd 0. */
static int f_balloon_command(void *ctx, unsigned cmd, uint64_t arg,
			     void (*emit)(void *e, const char *name, uint64_t v), void *e,
			     struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_update)
		return vm_err_set(err, fake.fail_update, "fake command failed");
	fake.hint_cmds++;
	fake.hint_cmd = cmd;
	fake.hint_arg = arg;
	if (cmd == DEVICE_CMD_HINT_STATUS) {
		emit(e, "host_cmd", 3);
		emit(e, "guest_cmd", 0);
	}
	return 0;
}

static int f_update_memory_hotplug(void *ctx, uint32_t requested_size_mib, struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_update)
		return vm_err_set(err, fake.fail_update, "fake update failed");
	fake.hotplug_updates++;
	fake.hotplug_requested = requested_size_mib;
	return 0;
}

/* The device's figures: the last target, and what the guest plugged. */
static int f_memory_hotplug_status(void *ctx, uint32_t *plugged_size_mib,
				   uint32_t *requested_size_mib, struct vm_err *err)
{
	(void)ctx;
	if (fake.fail_update)
		return vm_err_set(err, fake.fail_update, "fake status failed");
	fake.hotplug_reports++;
	*plugged_size_mib = fake.hotplug_plugged;
	*requested_size_mib = fake.hotplug_requested;
	return 0;
}

static int f_logger(void *ctx, const struct vmc_logger *l, struct vm_err *err)
{
	(void)ctx, (void)l, (void)err;
	fake.loggers++;
	return 0;
}

static int f_metrics(void *ctx, const struct vmc_metrics *m, struct vm_err *err)
{
	(void)ctx, (void)m, (void)err;
	fake.metrics++;
	return 0;
}

/* Files whose name holds "missing" do not open; a write to one holding
 * "ro-" is refused. */
static int f_check_file(void *ctx, const char *path, bool write, struct vm_err *err)
{
	(void)ctx;
	if (strstr(path, "missing"))
		return vm_err_set(err, -ENOENT, "%s: No such file or directory", path);
	if (write && strstr(path, "ro-"))
		return vm_err_set(err, -EACCES, "%s: Permission denied", path);
	return 0;
}

static int f_check_tap(void *ctx, const char *name, struct vm_err *err)
{
	(void)ctx;
	return strstr(name, "missing") ? vm_err_set(err, -ENODEV, "tap %s: no such device", name)
				       : 0;
}

static int f_check_uds(void *ctx, const char *path, struct vm_err *err)
{
	(void)ctx;
	return strstr(path, "missing")
		   ? vm_err_set(err, -ENOENT, "vsock socket %s: No such file or directory", path)
		   : 0;
}

static const char *f_state(void *ctx)
{
	(void)ctx;
	return fake.state;
}

static const struct api_vm_ops ops = {
    .start = f_start,
    .pause = f_pause,
    .resume = f_resume,
    .ctrl_alt_del = f_cad,
    .flush_metrics = f_flush,
    .update_drive = f_update_drive,
    .update_net = f_update_net,
    .update_pmem = f_update_pmem,
    .update_balloon = f_update_balloon,
    .balloon_report = f_balloon_report,
    .balloon_command = f_balloon_command,
    .update_memory_hotplug = f_update_memory_hotplug,
    .memory_hotplug_status = f_memory_hotplug_status,
    .set_logger = f_logger,
    .set_metrics = f_metrics,
    .check_file = f_check_file,
    .check_tap = f_check_tap,
    .check_uds = f_check_uds,
    .state = f_state,
    .snapshot_create = f_create,
    .snapshot_load = f_load,
};

static struct api_ctl *ctl;
static struct api_resp resp;

static void setup(void)
{
	memset(&fake, 0, sizeof(fake));
	cr_assert_eq(api_ctl_create(&ctl, NULL, NULL, &ops, NULL), 0);
}

static void teardown(void)
{
	api_resp_free(&resp);
	api_ctl_destroy(ctl);
}

/* One request; returns the status. The previous answer is freed. */
static int req(const char *method, const char *url, const char *body)
{
	api_resp_free(&resp);
	int st = api_handle(ctl, method, url, body, body ? strlen(body) : 0, &resp);
	cr_assert_eq(st, resp.status);
	if (st == 204)
		cr_assert_null(resp.body);
	else
		cr_assert_not_null(resp.body);
	return st;
}

/* The answer's fault_message ("" when none). */
static const char *fault_msg(void)
{
	static char msg[512];
	json_t *o = json_loads(resp.body, 0, NULL);
	cr_assert_not_null(o, "not JSON: %s", resp.body);
	const char *s = json_string_value(json_object_get(o, "fault_message"));
	cr_assert_not_null(s, "no fault_message in %s", resp.body);
	cr_assert_eq(json_object_size(o), 1);
	snprintf(msg, sizeof(msg), "%s", s);
	json_decref(o);
	return msg;
}

static void expect_fault(const char *method, const char *url, const char *body, const char *part)
{
	cr_assert_eq(req(method, url, body), 400, "%s %s: %d %s", method, url, resp.status,
		     resp.body);
	const char *m = fault_msg();
	cr_assert(strstr(m, part), "%s %s: fault '%s' lacks '%s'", method, url, m, part);
}

static void expect_ok(const char *method, const char *url, const char *body)
{
	int st = req(method, url, body);
	cr_assert_eq(st, 204, "%s %s %s: %d %s", method, url, body ? body : "", st,
		     resp.body ? resp.body : "");
}

/* A member of the last 200 answer, as a JSON value (decref'd by the
 * caller). */
static json_t *get_json(const char *url)
{
	cr_assert_eq(req("GET", url, NULL), 200, "GET %s: %d %s", url, resp.status, resp.body);
	json_t *o = json_loads(resp.body, 0, NULL);
	cr_assert_not_null(o, "GET %s: not JSON: %s", url, resp.body);
	return o;
}

/* The counters api_ctl_counters emits, by name. */
static struct {
	char name[96];
	uint64_t v;
} counters[96];
static size_t ncounters;

static void collect(void *ctx, const char *name, uint64_t v)
{
	(void)ctx;
	cr_assert_lt(ncounters, ARRAY_SIZE(counters));
	snprintf(counters[ncounters].name, sizeof(counters[0].name), "%s", name);
	counters[ncounters++].v = v;
}

/* Counter name's value; fails the test when it is not emitted. */
static uint64_t counter(const char *name)
{
	ncounters = 0;
	api_ctl_counters(ctl, collect, NULL);
	for (size_t i = 0; i < ncounters; i++)
		if (!strcmp(counters[i].name, name))
			return counters[i].v;
	cr_assert_fail("%s not emitted", name);
	return 0;
}

static const char *KERNEL = "{\"kernel_image_path\": \"/k\", \"boot_args\": \"console=ttyS0\"}";
static const char *ROOTFS =
    "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r.ext4\", \"is_root_device\": true}";

static void boot(void)
{
	expect_ok("PUT", "/boot-source", KERNEL);
	expect_ok("PUT", "/drives/rootfs", ROOTFS);
	expect_ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	cr_assert_eq(fake.starts, 1);
}

Test(api_router, get_root_version_machine_vm_config, .init = setup, .fini = teardown)
{
	json_t *o = get_json("/");
	cr_assert_str_eq(json_string_value(json_object_get(o, "app_name")), "flint");
	cr_assert_str_eq(json_string_value(json_object_get(o, "id")), "anonymous-instance");
	cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "Not started");
	cr_assert_str_eq(json_string_value(json_object_get(o, "vmm_version")), api_vmm_version());
	json_decref(o);

	o = get_json("/version");
	cr_assert_str_eq(json_string_value(json_object_get(o, "firecracker_version")),
			 api_vmm_version());
	json_decref(o);

	o = get_json("/machine-config");
	cr_assert_eq(json_integer_value(json_object_get(o, "vcpu_count")), 1);
	cr_assert_eq(json_integer_value(json_object_get(o, "mem_size_mib")), 128);
	json_decref(o);

	expect_ok("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
	o = get_json("/machine-config");
	cr_assert_eq(json_integer_value(json_object_get(o, "vcpu_count")), 2);
	json_decref(o);

	expect_ok("PUT", "/boot-source", KERNEL);
	o = get_json("/vm/config");
	json_t *bs = json_object_get(o, "boot-source");
	cr_assert_str_eq(json_string_value(json_object_get(bs, "kernel_image_path")), "/k");
	cr_assert_eq(json_integer_value(
			 json_object_get(json_object_get(o, "machine-config"), "mem_size_mib")),
		     256);
	json_decref(o);

	/* A query string is ignored; trailing slashes too, as Firecracker. */
	json_decref(get_json("/version?x=1"));
	json_decref(get_json("/machine-config/"));
	/* An absolute-form target is its path, as Firecracker's server
	 * takes it; one without a path is no route. */
	json_decref(get_json("http://localhost/version"));
	expect_ok("PUT", "http://localhost:80/machine-config",
		  "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
	expect_fault("GET", "http://localhost", NULL, "Invalid request method and/or path");
}

/* member key of o is there and null. */
static void expect_null(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert_not_null(v, "%s missing", key);
	cr_assert(json_is_null(v), "%s is not null", key);
}

/* GET /vm/config as Firecracker writes its FullVmConfiguration: a
 * boot-source always, and an optional member not set as null rather
 * than left out. */
Test(api_router, vm_config_writes_nulls, .init = setup, .fini = teardown)
{
	json_t *o = get_json("/vm/config"), *x, *rl;

	x = json_object_get(o, "boot-source");
	cr_assert_str_eq(json_string_value(json_object_get(x, "kernel_image_path")), "");
	expect_null(x, "initrd_path");
	expect_null(x, "boot_args");
	json_decref(o);

	expect_ok("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}");
	expect_ok("PUT", "/drives/rootfs", ROOTFS);
	expect_ok("PUT", "/drives/data",
		  "{\"drive_id\": \"data\", \"path_on_host\": \"/d.img\", \"is_root_device\": "
		  "false, \"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": "
		  "100}}}");
	expect_ok("PUT", "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}");
	expect_ok("PUT", "/pmem/p0", "{\"id\": \"p0\", \"path_on_host\": \"/p.img\"}");
	expect_ok("PUT", "/entropy", "{}");
	o = get_json("/vm/config");
	x = json_object_get(o, "boot-source");
	cr_assert_str_eq(json_string_value(json_object_get(x, "kernel_image_path")), "/k");
	expect_null(x, "initrd_path");
	expect_null(x, "boot_args");
	x = json_array_get(json_object_get(o, "drives"), 0);
	expect_null(x, "partuuid");
	expect_null(x, "rate_limiter");
	expect_null(x, "socket");
	rl = json_object_get(json_array_get(json_object_get(o, "drives"), 1), "rate_limiter");
	expect_null(rl, "ops");
	expect_null(json_object_get(rl, "bandwidth"), "one_time_burst");
	x = json_array_get(json_object_get(o, "network-interfaces"), 0);
	expect_null(x, "guest_mac");
	expect_null(x, "mtu");
	expect_null(x, "rx_rate_limiter");
	expect_null(x, "tx_rate_limiter");
	expect_null(json_array_get(json_object_get(o, "pmem"), 0), "rate_limiter");
	expect_null(json_object_get(o, "entropy"), "rate_limiter");
	json_decref(o);
}

Test(api_router, instance_id_and_state_after_start, .init = setup, .fini = teardown)
{
	api_ctl_destroy(ctl);
	cr_assert_eq(api_ctl_create(&ctl, "vm-7", NULL, &ops, NULL), 0);
	boot();
	json_t *o = get_json("/");
	cr_assert_str_eq(json_string_value(json_object_get(o, "id")), "vm-7");
	cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "Running");
	json_decref(o);
	expect_ok("PATCH", "/vm", "{\"state\": \"Paused\"}");
	o = get_json("/");
	cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "Paused");
	json_decref(o);
	expect_ok("PATCH", "/vm", "{\"state\": \"Resumed\"}");
	cr_assert_eq(fake.pauses, 1);
	cr_assert_eq(fake.resumes, 1);
}

Test(api_router, every_pre_boot_put, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/machine-config",
		  "{\"vcpu_count\": 2, \"mem_size_mib\": 512, \"smt\": false}");
	expect_ok("PATCH", "/machine-config", "{\"mem_size_mib\": 1024}");
	expect_ok("PUT", "/boot-source", KERNEL);
	expect_ok("PUT", "/drives/rootfs", ROOTFS);
	expect_ok(
	    "PUT", "/drives/data",
	    "{\"drive_id\": \"data\", \"path_on_host\": \"/d.img\", \"is_root_device\": false, "
	    "\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}");
	expect_ok("PUT", "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": "
		  "\"06:00:00:00:00:01\"}");
	expect_ok("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}");
	expect_ok("PUT", "/logger", "{\"log_path\": \"/tmp/log\", \"level\": \"Debug\"}");
	expect_ok("PUT", "/metrics", "{\"metrics_path\": \"/tmp/metrics\"}");
	expect_ok("PUT", "/entropy", "{}");
	expect_ok("PUT", "/serial", "{\"serial_out_path\": \"/tmp/serial\"}");
	cr_assert_eq(fake.loggers, 1);
	cr_assert_eq(fake.metrics, 1);

	struct vm_config c;
	cr_assert_eq(api_ctl_get_config(ctl, &c), 0);
	cr_assert_eq(c.machine.vcpu_count, 2);
	cr_assert_eq(c.machine.mem_size_mib, 1024);
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(c.drives[0].drive_id, "rootfs");
	cr_assert_eq(c.drives[1].rate_limiter.bandwidth.size, 1000);
	cr_assert_eq(c.nnets, 1);
	cr_assert_str_eq(c.nets[0].host_dev_name, "tap0");
	cr_assert(c.vsock.enabled);
	cr_assert_eq(c.vsock.guest_cid, 3);
	cr_assert_str_eq(c.logger.log_path, "/tmp/log");
	cr_assert_str_eq(c.metrics.metrics_path, "/tmp/metrics");
	cr_assert(c.entropy.enabled);
	cr_assert_str_eq(c.serial.serial_out_path, "/tmp/serial");
	vm_config_free(&c);

	/* A second PUT /logger updates the first, as Firecracker's: the
	 * level always (Info when not given), the rest only when given. */
	expect_ok("PUT", "/logger", "{\"show_level\": true, \"module\": \"virtio\"}");
	expect_ok("PUT", "/logger", "{\"level\": \"Trace\"}");
	cr_assert_eq(fake.loggers, 3);
	cr_assert_eq(api_ctl_get_config(ctl, &c), 0);
	cr_assert_str_eq(c.logger.log_path, "/tmp/log");
	cr_assert_eq(c.logger.level, VMC_LOG_TRACE);
	cr_assert(c.logger.show_level && !c.logger.show_log_origin);
	cr_assert_str_eq(c.logger.module, "virtio");
	vm_config_free(&c);

	/* Metrics once only, as Firecracker. */
	expect_fault("PUT", "/metrics", "{\"metrics_path\": \"/tmp/m2\"}", "Reinitialization");
	/* FlushMetrics is for after the start, metrics configured or not. */
	expect_fault("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}",
		     API_ERR_BEFORE_START);
	cr_assert_eq(fake.flushes, 0);
	cr_assert_eq(fake.starts, 0);

	expect_ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	cr_assert_eq(fake.starts, 1);
	cr_assert_eq(fake.start_vcpus, 2);
}

Test(api_router, body_errors, .init = setup, .fini = teardown)
{
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\": 2", "not valid JSON");
	expect_fault("PUT", "/machine-config", "[1]", "JSON object");
	expect_fault("PUT", "/machine-config",
		     "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"foo\": 1}", "foo");
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 256}",
		     "vcpu_count");
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 256}",
		     "vcpu_count");
	expect_fault("PUT", "/machine-config", "{\"mem_size_mib\": 256}", "vcpu_count");
	expect_fault("PUT", "/boot-source", "{\"boot_args\": \"x\"}", "kernel_image_path");
	expect_fault("PUT", "/actions", "{\"action_type\": \"Reboot\"}", "action_type");
	expect_fault("PUT", "/actions", "{}", "action_type");
	expect_fault("PUT", "/actions", "{\"action_type\": \"InstanceStart\", \"x\": 1}", "x");
	expect_fault("PUT", "/actions", "nope", "not valid JSON");
	expect_fault(
	    "PUT", "/drives/rootfs",
	    "{\"drive_id\": \"other\", \"path_on_host\": \"/r\", \"is_root_device\": true}",
	    "drive_id");
	expect_fault("PUT", "/drives/bad-id!", ROOTFS, "");
	expect_fault("PUT", "/drives", ROOTFS, "");
	expect_fault("PUT", "/network-interfaces/eth0",
		     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"bogus\": true}",
		     "bogus");
	/* vcpu_count 0 left the config as it was. */
	json_t *o = get_json("/machine-config");
	cr_assert_eq(json_integer_value(json_object_get(o, "vcpu_count")), 1);
	json_decref(o);

	/* Counted as fails. */
	cr_assert_eq(counter("put_api_requests.machine_cfg_count"), 6);
	cr_assert_eq(counter("put_api_requests.machine_cfg_fails"), 6);
}

Test(api_router, methods_paths_and_empty_bodies, .init = setup, .fini = teardown)
{
	expect_fault("GET", "/nope", NULL, "Invalid request method and/or path: GET /nope.");
	expect_fault("PUT", "/nope", "{}", "Invalid request method and/or path");
	expect_fault("GET", "/boot-source", NULL, "Invalid request method and/or path");
	expect_fault("PATCH", "/boot-source", "{}", "Invalid request method and/or path");
	expect_fault("PUT", "/version", "{}", "Invalid request method and/or path");
	expect_fault("POST", "/actions", "{\"action_type\": \"InstanceStart\"}",
		     "Invalid request method and/or path: POST /actions.");
	expect_fault("DELETE", "/drives/rootfs", NULL, "Invalid request method");
	expect_fault("GET", "/drives/rootfs/extra", NULL, "Invalid request method and/or path");
	expect_fault("GET", "/a/b/c/d/e/f", NULL, "Invalid request method and/or path");
	expect_fault("GET", "relative", NULL, "Invalid request method and/or path");
	expect_fault("GET", "/", "{}", "GET request cannot have a body.");
	expect_fault("PUT", "/boot-source", NULL, "Empty PUT request.");
	expect_fault("PATCH", "/machine-config", NULL, "Empty PATCH request.");
	/* A path that is not UTF-8 still gets a JSON answer. */
	expect_fault("GET", "/\xff\xfe", NULL, "Invalid request method and/or path");
	expect_fault("PUT", "/drives/\xff", ROOTFS, "");
	cr_assert_eq(fake.starts, 0);
}

/* A method the swagger does not have on a path is a wrong method. */
Test(api_router, methods_the_swagger_lacks, .init = setup, .fini = teardown)
{
	expect_fault("GET", "/snapshot/create", NULL, "Invalid request method");
	expect_fault("PUT", "/balloon/statistics", "{}", "Invalid request method");
}

/* A MemoryHotplugStatus answer: its five numbers, and nothing else. */
static void expect_hotplug_status(uint32_t total, uint32_t slot, uint32_t block, uint32_t plugged,
				  uint32_t requested)
{
	json_t *o = get_json("/hotplug/memory");
	cr_assert_eq(json_object_size(o), 5, "%s", resp.body);
	cr_assert_eq(json_integer_value(json_object_get(o, "total_size_mib")), total, "%s",
		     resp.body);
	cr_assert_eq(json_integer_value(json_object_get(o, "slot_size_mib")), slot, "%s",
		     resp.body);
	cr_assert_eq(json_integer_value(json_object_get(o, "block_size_mib")), block, "%s",
		     resp.body);
	cr_assert_eq(json_integer_value(json_object_get(o, "plugged_size_mib")), plugged, "%s",
		     resp.body);
	cr_assert_eq(json_integer_value(json_object_get(o, "requested_size_mib")), requested, "%s",
		     resp.body);
	json_decref(o);
}

/* Memory hot-plug before the start: PUT (its rules, each limit named, its
 * body), GET (the configuration, nothing plugged), PATCH refused (the
 * device exists in a running VM only), GET /vm/config. */
Test(api_router, memory_hotplug_before_the_start, .init = setup, .fini = teardown)
{
	expect_fault("GET", "/hotplug/memory", NULL, "No memory hotplug device found.");
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 2}",
		     "No memory hotplug device found.");
	expect_fault("PUT", "/hotplug/memory", "{}", "missing required field 'total_size_mib'");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 500}",
		     "total_size_mib: must be a multiple of slot_size_mib (128 MiB), got 500");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 64}",
		     "total_size_mib: must be at least slot_size_mib (128 MiB), got 64");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 2097152}",
		     "total_size_mib: must be at most 1048576 (1 TiB), got 2097152");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 512, \"block_size_mib\": 3}",
		     "block_size_mib: must be a power of two, at least 2 MiB, got 3");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 512, \"block_size_mib\": 1}",
		     "block_size_mib: must be a power of two, at least 2 MiB, got 1");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 512, \"slot_size_mib\": 64}",
		     "slot_size_mib: must be at least 128 MiB, got 64");
	expect_fault("PUT", "/hotplug/memory",
		     "{\"total_size_mib\": 512, \"slot_size_mib\": 128, \"block_size_mib\": 256}",
		     "slot_size_mib: must be a multiple of block_size_mib (256 MiB), got 128");
	expect_fault("PUT", "/hotplug/memory",
		     "{\"total_size_mib\": 512, \"requested_size_mib\": 0}", "requested_size_mib");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": \"512\"}", "total_size_mib");
	expect_fault("GET", "/hotplug/memory", NULL, "No memory hotplug device found.");
	json_t *o = get_json("/vm/config");
	cr_assert(json_is_null(json_object_get(o, "memory-hotplug")));
	json_decref(o);

	expect_ok("PUT", "/hotplug/memory", "{\"total_size_mib\": 512}");
	expect_hotplug_status(512, 128, 2, 0, 0);
	o = get_json("/vm/config");
	json_t *want = json_loads(
	    "{\"total_size_mib\": 512, \"slot_size_mib\": 128, \"block_size_mib\": 2}", 0, NULL);
	cr_assert(json_equal(json_object_get(o, "memory-hotplug"), want), "%s", resp.body);
	json_decref(want);
	json_decref(o);
	/* A PUT again replaces it. */
	expect_ok("PUT", "/hotplug/memory",
		  "{\"total_size_mib\": 1024, \"slot_size_mib\": 256, \"block_size_mib\": 4}");
	expect_hotplug_status(1024, 256, 4, 0, 0);
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 256}",
		     "not supported before starting the microVM. The memory hot-plug device exists "
		     "in a running microVM only");
	expect_fault("PATCH", "/hotplug/memory", "{}",
		     "missing required field 'requested_size_mib'");
	expect_fault("PATCH", "/hotplug/memory",
		     "{\"requested_size_mib\": 2, \"total_size_mib\": 4}", "total_size_mib");
	cr_assert_eq(fake.hotplug_updates + fake.hotplug_reports, 0, "no VM before the start");
	cr_assert_eq(counter("put_api_requests.hotplug_memory_count"), 12);
	cr_assert_eq(counter("put_api_requests.hotplug_memory_fails"), 10);
	cr_assert_eq(counter("patch_api_requests.hotplug_memory_count"), 4);
	cr_assert_eq(counter("patch_api_requests.hotplug_memory_fails"), 4);
	cr_assert_eq(counter("get_api_requests.hotplug_memory_count"), 4);
}

/* After the start: PUT refused as the other pre-boot PUTs; PATCH within
 * the device's geometry reaches the VM; GET asks the device. */
Test(api_router, memory_hotplug_after_the_start, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/hotplug/memory", "{\"total_size_mib\": 512, \"block_size_mib\": 4}");
	boot();
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024}", API_ERR_AFTER_START);
	expect_hotplug_status(512, 128, 4, 0, 0);
	cr_assert_eq(fake.hotplug_reports, 1);

	expect_ok("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 256}");
	cr_assert_eq(fake.hotplug_updates, 1);
	cr_assert_eq(fake.hotplug_requested, 256);
	fake.hotplug_plugged = 128; /* the guest's driver on its way */
	expect_hotplug_status(512, 128, 4, 128, 256);
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 640}",
		     "requested_size_mib: must be at most total_size_mib (512 MiB), got 640");
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 6}",
		     "requested_size_mib: must be a multiple of block_size_mib (4 MiB), got 6");
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": -4}",
		     "requested_size_mib");
	cr_assert_eq(fake.hotplug_updates, 1, "a refused size reached the VM");
	/* The whole region, and none. */
	expect_ok("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 512}");
	cr_assert_eq(fake.hotplug_requested, 512);
	expect_ok("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 0}");
	cr_assert_eq(fake.hotplug_requested, 0);
	cr_assert_eq(fake.hotplug_updates, 3);

	/* The VM's refusals are the answer. */
	fake.fail_update = -EIO;
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 8}",
		     "fake update failed");
	expect_fault("GET", "/hotplug/memory", NULL, "fake status failed");
	fake.fail_update = 0;
	/* GET /vm/config keeps the configuration. */
	json_t *o = get_json("/vm/config");
	json_t *h = json_object_get(o, "memory-hotplug");
	cr_assert_eq(json_integer_value(json_object_get(h, "total_size_mib")), 512);
	cr_assert_eq(json_integer_value(json_object_get(h, "block_size_mib")), 4);
	cr_assert_null(json_object_get(h, "requested_size_mib"));
	json_decref(o);
	cr_assert_eq(counter("patch_api_requests.hotplug_memory_count"), 7);
	cr_assert_eq(counter("patch_api_requests.hotplug_memory_fails"), 4);
}

Test(api_router, no_memory_hotplug_after_the_start, .init = setup, .fini = teardown)
{
	boot();
	expect_fault("GET", "/hotplug/memory", NULL, "No memory hotplug device found.");
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 0}",
		     "No memory hotplug device found.");
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 512}", API_ERR_AFTER_START);
	cr_assert_eq(fake.hotplug_updates + fake.hotplug_reports, 0);
}

/* A VM without the ops: the controller says what it cannot do. */
Test(api_router, memory_hotplug_without_the_ops, .init = setup, .fini = teardown)
{
	static const struct api_vm_ops bare = {.start = f_start};

	api_ctl_destroy(ctl);
	cr_assert_eq(api_ctl_create(&ctl, NULL, NULL, &bare, NULL), 0);
	expect_ok("PUT", "/hotplug/memory", "{\"total_size_mib\": 128}");
	boot();
	expect_fault("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 2}",
		     "flint cannot update the memory hot-plug device after boot");
	expect_fault("GET", "/hotplug/memory", NULL,
		     "flint cannot report on the memory hot-plug device");
}

/* A VM with memory hot-plug is snapshotted as any other: the VM is asked
 * (it saves the region and the device). */
Test(api_router, snapshot_create_with_memory_hotplug, .init = setup, .fini = teardown)
{
	const char *body = "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}";

	expect_ok("PUT", "/hotplug/memory", "{\"total_size_mib\": 256}");
	boot();
	expect_ok("PATCH", "/vm", "{\"state\": \"Paused\"}");
	expect_ok("PUT", "/snapshot/create", body);
	cr_assert_eq(fake.creates, 1, "the VM was not asked");
	cr_assert_eq(counter("put_api_requests.snapshot_create_fails"), 0);
	/* Before the start it is the phase rule. */
	api_ctl_destroy(ctl);
	cr_assert_eq(api_ctl_create(&ctl, NULL, NULL, &ops, NULL), 0);
	expect_ok("PUT", "/hotplug/memory", "{\"total_size_mib\": 256}");
	expect_fault("PUT", "/snapshot/create", body, "not supported before starting");
}

/* A VM a snapshot made has started: PUT /hotplug/memory is refused (it
 * keeps the snapshot's configuration, as Firecracker's does), and a PUT
 * before the load is a boot resource that rules the load out. */
Test(api_router, memory_hotplug_and_snapshot_load, .init = setup, .fini = teardown)
{
	const char *load = "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}";

	expect_ok("PUT", "/snapshot/load", load);
	expect_fault("PUT", "/hotplug/memory", "{\"total_size_mib\": 512}", API_ERR_AFTER_START);
	expect_fault("GET", "/hotplug/memory", NULL, "No memory hotplug device found.");
	api_ctl_destroy(ctl);
	cr_assert_eq(api_ctl_create(&ctl, NULL, NULL, &ops, NULL), 0);
	expect_ok("PUT", "/hotplug/memory", "{\"total_size_mib\": 512}");
	expect_fault("PUT", "/snapshot/load", load,
		     "not allowed after configuring boot-specific resources");
}

/* null where Firecracker's snapshot bodies have a serde default (no
 * Option) is refused, naming the field; an Option's null is left out. */
Test(api_router, snapshot_bodies_null_only_for_options, .init = setup, .fini = teardown)
{
	static const char *const load_null[] = {"enable_diff_snapshots", "track_dirty_pages",
						"resume_vm", "network_overrides", "clock_realtime"};
	char body[256], want[96];

	for (size_t i = 0; i < ARRAY_SIZE(load_null); i++) {
		snprintf(body, sizeof(body),
			 "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"%s\": null}",
			 load_null[i]);
		snprintf(want, sizeof(want), "%s: null is not a value here", load_null[i]);
		expect_fault("PUT", "/snapshot/load", body, want);
	}
	expect_fault("PUT", "/pmem/p",
		     "{\"id\": \"p\", \"path_on_host\": \"/p\", \"read_only\": null}",
		     "read_only: null is not a value here");
	boot();
	expect_ok("PATCH", "/vm", "{\"state\": \"Paused\"}");
	expect_fault(
	    "PUT", "/snapshot/create",
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"snapshot_type\": null}",
	    "snapshot_type: null is not a value here");
	cr_assert_eq(fake.creates, 0);
	/* An Option's null: the field left out. */
	api_ctl_destroy(ctl);
	cr_assert_eq(api_ctl_create(&ctl, NULL, NULL, &ops, NULL), 0);
	expect_ok(
	    "PUT", "/snapshot/load",
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"vsock_override\": null}");
}

/* A config file's memory hot-plug (the controller starts from it). */
Test(api_router, memory_hotplug_from_the_initial_config, .init = setup, .fini = teardown)
{
	struct vm_config c;
	struct vmc_memory_hotplug h = {
	    .total_size_mib = 256, .slot_size_mib = 128, .block_size_mib = 2};
	char why[256];

	vm_config_init(&c);
	cr_assert_eq(vm_config_set_memory_hotplug(&c, &h, why, sizeof(why)), 0, "%s", why);
	api_ctl_destroy(ctl);
	cr_assert_eq(api_ctl_create(&ctl, NULL, &c, &ops, NULL), 0);
	vm_config_free(&c);
	api_ctl_mark_started(ctl);
	fake.hotplug_plugged = 64;
	fake.hotplug_requested = 64;
	expect_hotplug_status(256, 128, 2, 64, 64);
	expect_ok("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 256}");
	cr_assert_eq(fake.hotplug_requested, 256);
}

/* The balloon before the start: PUT (its limits and body), GET, PATCH of
 * the target and the interval (the config only), and the requests that
 * need a started VM or hinting. */
Test(api_router, balloon_before_the_start, .init = setup, .fini = teardown)
{
	expect_fault("GET", "/balloon", NULL, "No balloon device found.");
	expect_fault("PATCH", "/balloon", "{\"amount_mib\": 1}", "No balloon device found.");
	expect_fault("PUT", "/balloon", "{\"amount_mib\": 10}", "deflate_on_oom");
	expect_fault("PUT", "/balloon", "{\"amount_mib\": 129, \"deflate_on_oom\": true}",
		     "amount_mib: 129 MiB is more than the guest's memory (128 MiB)");
	expect_fault("PUT", "/balloon",
		     "{\"amount_mib\": 1, \"deflate_on_oom\": true, "
		     "\"stats_polling_interval_s\": 65536}",
		     "stats_polling_interval_s");
	expect_fault("PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": true, \"x\": 1}",
		     "x");
	expect_ok(
	    "PUT", "/balloon",
	    "{\"amount_mib\": 64, \"deflate_on_oom\": true, \"stats_polling_interval_s\": 1}");
	json_t *o = get_json("/balloon");
	cr_assert_eq(json_integer_value(json_object_get(o, "amount_mib")), 64);
	cr_assert(json_is_true(json_object_get(o, "deflate_on_oom")));
	cr_assert_eq(json_integer_value(json_object_get(o, "stats_polling_interval_s")), 1);
	cr_assert(json_is_false(json_object_get(o, "free_page_hinting")));
	cr_assert(json_is_false(json_object_get(o, "free_page_reporting")));
	json_decref(o);
	o = get_json("/vm/config");
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(o, "balloon"), "amount_mib")), 64);
	json_decref(o);

	expect_ok("PATCH", "/balloon", "{\"amount_mib\": 32}");
	expect_ok("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 0}");
	expect_fault("PATCH", "/balloon", "{\"amount_mib\": 32, \"deflate_on_oom\": true}",
		     "deflate_on_oom");
	o = get_json("/balloon");
	cr_assert_eq(json_integer_value(json_object_get(o, "amount_mib")), 32);
	cr_assert_eq(json_integer_value(json_object_get(o, "stats_polling_interval_s")), 0);
	json_decref(o);
	cr_assert_eq(fake.balloon_updates, 0, "no VM to update before the start");
	expect_fault("GET", "/balloon/statistics", NULL, "not supported before starting");
	expect_fault("PATCH", "/balloon/hinting/start", "{}", "not supported before starting");
	expect_fault("GET", "/balloon/hinting/status", NULL, "not supported before starting");
	cr_assert_eq(counter("put_api_requests.balloon_count"), 5);
	cr_assert_eq(counter("put_api_requests.balloon_fails"), 4);
}

Test(api_router, balloon_after_the_start, .init = setup, .fini = teardown)
{
	expect_ok(
	    "PUT", "/balloon",
	    "{\"amount_mib\": 16, \"deflate_on_oom\": false, \"stats_polling_interval_s\": 5}");
	boot();
	expect_fault("PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": true}",
		     "not supported after starting");

	expect_ok("PATCH", "/balloon", "{\"amount_mib\": 100}");
	cr_assert_eq(fake.balloon_updates, 1);
	cr_assert_eq(fake.balloon_changes, DEVICE_CHANGE_TARGET);
	cr_assert_eq(fake.balloon.amount_mib, 100);
	cr_assert_eq(fake.balloon.stats_polling_interval_s, 5, "the whole entry");
	expect_fault("PATCH", "/balloon", "{\"amount_mib\": 200}", "more than the guest's memory");

	expect_ok("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 9}");
	cr_assert_eq(fake.balloon_changes, DEVICE_CHANGE_STATS_INTERVAL);
	cr_assert_eq(fake.balloon.stats_polling_interval_s, 9);
	expect_fault("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 0}",
		     "statistics cannot be turned off once the microVM has started");

	/* The VM refuses: the config keeps what the device has. */
	fake.fail_update = -EIO;
	expect_fault("PATCH", "/balloon", "{\"amount_mib\": 50}", "fake update failed");
	fake.fail_update = 0;
	json_t *o = get_json("/balloon");
	cr_assert_eq(json_integer_value(json_object_get(o, "amount_mib")), 100);
	cr_assert_eq(json_integer_value(json_object_get(o, "stats_polling_interval_s")), 9);
	json_decref(o);

	o = get_json("/balloon/statistics");
	cr_assert_eq(json_integer_value(json_object_get(o, "target_pages")), 25600);
	cr_assert_eq(json_integer_value(json_object_get(o, "actual_mib")), 2);
	cr_assert_eq(json_integer_value(json_object_get(o, "free_memory")), 1234);
	json_decref(o);
	expect_fault("PATCH", "/balloon/hinting/start", "{}",
		     "Attempting to use hinting when not enabled");
	expect_fault("GET", "/balloon/hinting/status", NULL,
		     "Attempting to use hinting when not enabled");
	expect_fault("PATCH", "/balloon/hinting/stop", "{}",
		     "Attempting to use hinting when not enabled");
	cr_assert_eq(fake.hint_cmds, 0, "not asked of the device");
	cr_assert_eq(counter("get_api_requests.balloon_stats_count"), 1);
	cr_assert_eq(counter("patch_api_requests.balloon_fails"), 2);
}

/* Free page hinting on a balloon made with it: a start with no body or
 * without acknowledge_on_stop acknowledges (Firecracker's default), one
 * that says false does not, a body of the wrong kind is refused; stop;
 * the status as the device tells it. */
Test(api_router, balloon_hinting, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/balloon",
		  "{\"amount_mib\": 0, \"deflate_on_oom\": false, \"free_page_hinting\": true}");
	json_t *o = get_json("/balloon");
	cr_assert(json_is_true(json_object_get(o, "free_page_hinting")));
	json_decref(o);
	expect_fault("PATCH", "/balloon/hinting/start", NULL, "not supported before starting");
	boot();
	expect_ok("PATCH", "/balloon/hinting/start", NULL);
	cr_assert_eq(fake.hint_cmd, DEVICE_CMD_HINT_START);
	cr_assert_eq(fake.hint_arg, 1, "acknowledged by default");
	expect_ok("PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": false}");
	cr_assert_eq(fake.hint_arg, 0);
	expect_ok("PATCH", "/balloon/hinting/start", "{\"other\": 1}");
	cr_assert_eq(fake.hint_arg, 1, "other keys ignored, as Firecracker's parser does");
	expect_fault("PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": \"no\"}",
		     "acknowledge_on_stop");
	expect_fault("PATCH", "/balloon/hinting/start", "[", "the body");
	cr_assert_eq(fake.hint_cmds, 3);
	expect_ok("PATCH", "/balloon/hinting/stop", NULL);
	cr_assert_eq(fake.hint_cmd, DEVICE_CMD_HINT_STOP);
	o = get_json("/balloon/hinting/status");
	cr_assert_eq(fake.hint_cmd, DEVICE_CMD_HINT_STATUS);
	cr_assert_eq(json_integer_value(json_object_get(o, "host_cmd")), 3);
	cr_assert(json_is_integer(json_object_get(o, "guest_cmd")));
	cr_assert_eq(json_integer_value(json_object_get(o, "guest_cmd")), 0);
	json_decref(o);
	fake.fail_update = -EIO;
	expect_fault("PATCH", "/balloon/hinting/stop", NULL, "fake command failed");
	expect_fault("GET", "/balloon/hinting/status", NULL, "fake command failed");
}

/* PUT /cpu-config before the start: the template is the config's (GET
 * /vm/config shows it); a bad one is refused naming the member; after the
 * start the phase rule. */
Test(api_router, cpu_config, .init = setup, .fini = teardown)
{
	expect_fault("PUT", "/cpu-config", "{\"msr_modifiers\": [{\"addr\": \"0x10a\"}]}",
		     "msr_modifiers[0]: missing required field 'bitmap'");
	expect_ok("PUT", "/cpu-config",
		  "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0,"
		  " \"modifiers\": [{\"register\": \"ecx\", \"bitmap\": "
		  "\"0bxxxxxxxx00xxxxxxxxxxxxxxxxxxxxxx\"}]}]}");
	json_t *o = get_json("/vm/config");
	json_t *m =
	    json_array_get(json_object_get(json_object_get(o, "cpu-config"), "cpuid_modifiers"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(m, "leaf")), "0x1");
	json_decref(o);
	boot();
	expect_fault("PUT", "/cpu-config", "{}", "not supported after starting");
	cr_assert_eq(counter("put_api_requests.cpu_cfg_count"), 3);
	cr_assert_eq(counter("put_api_requests.cpu_cfg_fails"), 2);
}

/* The data store: before and after the start, the limit (413), PATCH
 * before PUT, any JSON value; and a controller without a store. */
Test(api_router, mmds_data_store, .init = setup, .fini = teardown)
{
	struct mmds *m;

	expect_fault("GET", "/mmds", NULL, "no MMDS data store");
	cr_assert_eq(mmds_create(&m, 60), 0);
	api_ctl_set_mmds(ctl, m);
	cr_assert_eq(req("GET", "/mmds", NULL), 200);
	cr_assert_str_eq(resp.body, "{}");
	expect_fault("PATCH", "/mmds", "{\"a\": 1}",
		     "MMDS error: The MMDS data store is not initialized.");
	expect_ok("PUT", "/mmds", "{\"latest\": {\"meta-data\": {\"id\": \"i-1\"}}}");
	expect_ok("PATCH", "/mmds", "{\"latest\": {\"meta-data\": {\"zone\": \"z\"}}}");
	cr_assert_eq(req("GET", "/mmds", NULL), 200);
	cr_assert_str_eq(resp.body, "{\"latest\":{\"meta-data\":{\"id\":\"i-1\",\"zone\":\"z\"}}}");
	cr_assert_eq(req("PATCH", "/mmds", "{\"more\": \"0123456789012345\"}"), 413);
	cr_assert(
	    strstr(fault_msg(), "MMDS limit exceeded error: The MMDS patch request doesn't fit."));
	expect_fault("PUT", "/mmds", "{nope", "not valid JSON");
	/* Firecracker's router reads no further than /mmds. */
	cr_assert_eq(req("GET", "/mmds/latest", NULL), 200);
	cr_assert_str_eq(resp.body, "{\"latest\":{\"meta-data\":{\"id\":\"i-1\",\"zone\":\"z\"}}}");
	expect_fault("PUT", "/mmds/latest", "{}", "Unrecognized PUT request path `latest`.");
	cr_assert_eq(req("GET", "/mmds/config", NULL), 200, "the store, as Firecracker");
	boot();
	expect_ok("PUT", "/mmds", "\"a string will do\"");
	cr_assert_eq(req("GET", "/mmds", NULL), 200);
	cr_assert_str_eq(resp.body, "\"a string will do\"");
	cr_assert_eq(counter("get_api_requests.mmds_count"), 6);
	cr_assert_eq(counter("put_api_requests.mmds_count"), 4);
	cr_assert_eq(counter("put_api_requests.mmds_fails"), 2);
	cr_assert_eq(counter("patch_api_requests.mmds_count"), 3);
	cr_assert_eq(counter("patch_api_requests.mmds_fails"), 2);
	api_resp_free(&resp);
	mmds_destroy(m);
}

/* PUT /mmds/config: its checks, GET /vm/config, the deprecation header of
 * version 1, and not after the start. */
Test(api_router, mmds_config, .init = setup, .fini = teardown)
{
	json_t *o, *mc;

	expect_fault("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}",
		     "does not correspond to any existing network interface");
	expect_ok("PUT", "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}");
	expect_fault("PUT", "/mmds/config", "{\"version\": \"V2\"}",
		     "missing required field 'network_interfaces'");
	expect_fault("PUT", "/mmds/config", "{\"network_interfaces\": []}",
		     "network interface IDs that allow forwarding MMDS requests is empty");
	expect_fault("PUT", "/mmds/config",
		     "{\"network_interfaces\": [\"eth0\"], \"ipv4_address\": \"10.0.0.1\"}",
		     "The MMDS IPv4 address is not link local.");
	expect_fault("PUT", "/mmds/config",
		     "{\"network_interfaces\": [\"eth0\"], \"ipv4_address\": \"nope\"}",
		     "ipv4_address: 'nope' is not an IPv4 address");
	expect_fault("PUT", "/mmds/config",
		     "{\"network_interfaces\": [\"eth0\"], \"version\": \"V3\"}", "version");
	expect_ok("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}");
	cr_assert(resp.deprecated, "version 1 is deprecated");
	expect_ok("PUT", "/mmds/config",
		  "{\"network_interfaces\": [\"eth0\"], \"version\": \"V2\", "
		  "\"ipv4_address\": \"169.254.170.2\", \"imds_compat\": true}");
	cr_assert_not(resp.deprecated);
	/* A PUT of the interface again keeps it on MMDS. */
	expect_ok("PUT", "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap1\"}");
	o = get_json("/vm/config");
	mc = json_object_get(o, "mmds-config");
	cr_assert_str_eq(json_string_value(json_object_get(mc, "version")), "V2");
	cr_assert_str_eq(json_string_value(json_object_get(mc, "ipv4_address")), "169.254.170.2");
	cr_assert(json_is_true(json_object_get(mc, "imds_compat")));
	cr_assert_str_eq(
	    json_string_value(json_array_get(json_object_get(mc, "network_interfaces"), 0)),
	    "eth0");
	json_decref(o);
	boot();
	expect_fault("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}",
		     "not supported after starting");
}

/* Firecracker answers a request that uses a deprecated field with
 * "Deprecation: true", whatever the request's outcome: machine-config's
 * cpu_template, vsock's vsock_id, snapshot/load's mem_file_path and
 * enable_diff_snapshots. */
Test(api_router, deprecated_fields, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
	cr_assert_not(resp.deprecated);
	expect_ok("PUT", "/machine-config",
		  "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": \"None\"}");
	cr_assert(resp.deprecated, "PUT /machine-config: cpu_template");
	expect_ok("PATCH", "/machine-config", "{\"vcpu_count\": 1}");
	cr_assert_not(resp.deprecated);
	expect_ok("PATCH", "/machine-config", "{\"cpu_template\": \"None\"}");
	cr_assert(resp.deprecated, "PATCH /machine-config: cpu_template");
	expect_ok("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}");
	cr_assert_not(resp.deprecated);
	expect_ok("PUT", "/vsock",
		  "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\", \"vsock_id\": \"v\"}");
	cr_assert(resp.deprecated, "PUT /vsock: vsock_id");
	/* Refused (a boot resource was configured), still marked. */
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
		     "not allowed after configuring");
	cr_assert(resp.deprecated, "PUT /snapshot/load: mem_file_path");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", \"enable_diff_snapshots\": true, "
		     "\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"/m\"}}",
		     "not allowed after configuring");
	cr_assert(resp.deprecated, "PUT /snapshot/load: enable_diff_snapshots");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", \"track_dirty_pages\": true, "
		     "\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"/m\"}}",
		     "not allowed after configuring");
	cr_assert_not(resp.deprecated);
	/* A body that does not parse is not marked. */
	expect_fault("PUT", "/machine-config", "{\"cpu_template\": \"None\"}", "vcpu_count");
	cr_assert_not(resp.deprecated);
}

/* Statistics asked of a balloon without them, and of no balloon. */
Test(api_router, balloon_statistics_off, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/balloon", "{\"amount_mib\": 0, \"deflate_on_oom\": false}");
	boot();
	expect_fault("GET", "/balloon/statistics", NULL,
		     "Received stats query when stats are disabled.");
	expect_fault("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 3}",
		     "statistics cannot be turned on once the microVM has started");
	cr_assert_eq(fake.balloon_updates, 0);
}

Test(api_router, no_balloon_after_the_start, .init = setup, .fini = teardown)
{
	boot();
	expect_fault("GET", "/balloon", NULL, "No balloon device found.");
	expect_fault("GET", "/balloon/statistics", NULL, "No balloon device found.");
	expect_fault("PATCH", "/balloon/hinting/stop", "{}", "No balloon device found.");
}

/* "{", spaces, "}": an n-byte JSON object (NUL-terminated); free it. */
static char *spaced_object(size_t n)
{
	char *o = malloc(n + 1);

	cr_assert_not_null(o);
	memset(o, ' ', n);
	o[0] = '{';
	o[n - 1] = '}';
	o[n] = '\0';
	return o;
}

Test(api_router, oversized_body, .init = setup, .fini = teardown)
{
	char *big = spaced_object(API_MAX_BODY + 1);
	expect_fault("PUT", "/boot-source", big, "larger than the limit of 51200");
	/* At the limit it is parsed (and refused for what it says). */
	big[API_MAX_BODY - 1] = '}';
	api_resp_free(&resp);
	cr_assert_eq(api_handle(ctl, "PUT", "/boot-source", big, API_MAX_BODY, &resp), 400);
	cr_assert(strstr(fault_msg(), "kernel_image_path"), "%s", resp.body);
	free(big);
	/* The HTTP layer passes no body once over the cap. */
	api_resp_free(&resp);
	cr_assert_eq(api_handle(ctl, "PUT", "/boot-source", NULL, 1u << 30, &resp), 400);
	cr_assert(strstr(fault_msg(), "larger than the limit"));
}

/* --http-api-max-payload-size: the cap is the controller's. */
Test(api_router, body_cap_set, .init = setup, .fini = teardown)
{
	char *big = spaced_object(100001);
	const char *small = "{\"kernel_image_path\": \"k\"}";
	cr_assert_eq(api_ctl_max_body(ctl), API_MAX_BODY);
	api_ctl_set_max_body(ctl, 100000);
	expect_fault("PUT", "/boot-source", big, "larger than the limit of 100000");
	/* 60000 bytes, over Firecracker's default: parsed now. */
	big[59999] = '}';
	api_resp_free(&resp);
	cr_assert_eq(api_handle(ctl, "PUT", "/boot-source", big, 60000, &resp), 400);
	cr_assert(strstr(fault_msg(), "kernel_image_path"), "%s", resp.body);
	/* A smaller cap refuses what the default takes. */
	api_ctl_set_max_body(ctl, 10);
	api_resp_free(&resp);
	cr_assert_eq(api_handle(ctl, "PUT", "/boot-source", small, strlen(small), &resp), 400);
	cr_assert(strstr(fault_msg(), "larger than the limit of 10 "), "%s", resp.body);
	free(big);
}

Test(api_router, phase_rules, .init = setup, .fini = teardown)
{
	/* Before the start. */
	expect_fault("PATCH", "/vm", "{\"state\": \"Paused\"}", API_ERR_BEFORE_START);
	expect_fault("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}",
		     API_ERR_BEFORE_START);
	expect_fault("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}",
		     API_ERR_BEFORE_START);
	expect_fault("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
		     "without kernel configuration");
	expect_ok("PUT", "/drives/rootfs", ROOTFS);
	expect_fault("PATCH", "/drives/rootfs",
		     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/new\"}",
		     API_ERR_BEFORE_START);
	cr_assert_eq(fake.pauses + fake.cads + fake.flushes + fake.drive_updates, 0);

	/* A failed start leaves the VM not started. */
	expect_ok("PUT", "/boot-source", KERNEL);
	fake.fail_start = -ENOENT;
	expect_fault("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
		     "fake start failed");
	cr_assert_not(api_ctl_started(ctl));
	fake.fail_start = 0;
	expect_ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	cr_assert(api_ctl_started(ctl));

	/* After: every pre-boot request is refused and changes nothing. */
	char *before = api_ctl_vm_config_json(ctl);
	expect_fault("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
		     API_ERR_AFTER_START);
	expect_fault("PUT", "/boot-source", "{\"kernel_image_path\": \"/other\"}",
		     API_ERR_AFTER_START);
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\": 4, \"mem_size_mib\": 256}",
		     API_ERR_AFTER_START);
	expect_fault("PATCH", "/machine-config", "{\"vcpu_count\": 4}", API_ERR_AFTER_START);
	expect_fault("PUT", "/drives/d2",
		     "{\"drive_id\": \"d2\", \"path_on_host\": \"/x\", \"is_root_device\": false}",
		     API_ERR_AFTER_START);
	expect_fault("PUT", "/network-interfaces/eth0",
		     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}", API_ERR_AFTER_START);
	expect_fault("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/v\"}",
		     API_ERR_AFTER_START);
	expect_fault("PUT", "/logger", "{\"log_path\": \"/l\"}", API_ERR_AFTER_START);
	expect_fault("PUT", "/metrics", "{\"metrics_path\": \"/m\"}", API_ERR_AFTER_START);
	expect_fault("PUT", "/entropy", "{}", API_ERR_AFTER_START);
	expect_fault("PUT", "/serial", "{\"serial_out_path\": \"/s\"}", API_ERR_AFTER_START);
	char *after = api_ctl_vm_config_json(ctl);
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	cr_assert_eq(fake.starts, 1);
	cr_assert_eq(fake.loggers + fake.metrics, 0);

	/* Post-boot actions. */
	expect_ok("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
	cr_assert_eq(fake.cads, 1);
	/* No metrics configured: nothing to write, and no error. */
	expect_ok("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
	cr_assert_eq(fake.flushes, 0);
	expect_fault("PATCH", "/vm", "{\"state\": \"Stopped\"}", "state");
	json_decref(get_json("/machine-config"));
}

Test(api_router, patch_after_boot_merges_and_reverts, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r.ext4\", \"is_root_device\": "
		  "true, \"rate_limiter\": {\"ops\": {\"size\": 50, \"refill_time\": 1000}}}");
	expect_ok("PUT", "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"tx_rate_limiter\": "
		  "{\"ops\": {\"size\": 7, \"refill_time\": 100}}}");
	expect_ok("PUT", "/boot-source", KERNEL);
	expect_ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");

	/* A new image: the op gets the whole entry, its limiter kept. */
	expect_ok("PATCH", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/new\"}");
	cr_assert_eq(fake.drive_updates, 1);
	cr_assert_str_eq(fake.drive_path, "/new");
	cr_assert_eq(fake.drive_ops_size, 50);
	cr_assert(fake.drive_new_image, "the PATCH named an image");
	/* A bandwidth bucket only: the path stays the new one. */
	expect_ok("PATCH", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"rate_limiter\": {\"bandwidth\": {\"size\": 4096, "
		  "\"refill_time\": 100}}}");
	cr_assert_str_eq(fake.drive_path, "/new");
	cr_assert_eq(fake.drive_bw_size, 4096);
	cr_assert_eq(fake.drive_ops_size, 50);
	cr_assert_not(fake.drive_new_image, "a limiter-only PATCH must not reopen the image");

	/* The VM refuses: the config keeps what the VM runs. */
	fake.fail_update = -EIO;
	expect_fault("PATCH", "/drives/rootfs",
		     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/refused\"}",
		     "fake update failed");
	struct vm_config c;
	cr_assert_eq(api_ctl_get_config(ctl, &c), 0);
	cr_assert_str_eq(c.drives[0].path_on_host, "/new");
	cr_assert_eq(c.drives[0].rate_limiter.bandwidth.size, 4096);
	vm_config_free(&c);
	expect_fault("PATCH", "/network-interfaces/eth0",
		     "{\"iface_id\": \"eth0\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 9, "
		     "\"refill_time\": 9}}}",
		     "fake update failed");
	fake.fail_update = 0;

	expect_ok("PATCH", "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 9000, "
		  "\"refill_time\": 100}}}");
	cr_assert_eq(fake.net_updates, 1);
	cr_assert_eq(fake.net_rx_size, 9000);
	cr_assert_eq(fake.net_tx_size, 7);
	cr_assert_eq(api_ctl_get_config(ctl, &c), 0);
	cr_assert_eq(c.nets[0].rx_rate_limiter.bandwidth.size, 9000);
	vm_config_free(&c);

	/* Unknown ids and mismatched ids. */
	expect_fault("PATCH", "/drives/nope", "{\"drive_id\": \"nope\", \"path_on_host\": \"/x\"}",
		     "nope");
	expect_fault("PATCH", "/drives/rootfs",
		     "{\"drive_id\": \"other\", \"path_on_host\": \"/x\"}", "drive_id");
	expect_fault("PATCH", "/network-interfaces/eth9", "{\"iface_id\": \"eth9\"}", "eth9");
	cr_assert_eq(fake.drive_updates, 2);
}

/* PUT /pmem/{id} before the start (the file must open, for writing unless
 * read_only), in GET /vm/config; PATCH /pmem/{id} after it, the limiter
 * merged, kept only when the VM takes it; the counters. */
Test(api_router, pmem, .init = setup, .fini = teardown)
{
	static const char p0[] =
	    "{\"id\": \"p0\", \"path_on_host\": \"/p0.img\", \"rate_limiter\": "
	    "{\"ops\": {\"size\": 5, \"refill_time\": 100}}}";

	expect_fault("PATCH", "/pmem/p0", "{\"id\": \"p0\"}", API_ERR_BEFORE_START);
	expect_fault("PUT", "/pmem/p0", "{\"id\": \"p0\", \"path_on_host\": \"/missing\"}",
		     "The pmem device's file cannot be opened: /missing: No such file");
	expect_fault("PUT", "/pmem/p0", "{\"id\": \"p0\", \"path_on_host\": \"/ro-p\"}",
		     "Permission denied");
	expect_ok("PUT", "/pmem/ro",
		  "{\"id\": \"ro\", \"path_on_host\": \"/ro-p\", "
		  "\"read_only\": true, \"root_device\": true}");
	expect_ok("PUT", "/pmem/p0", p0);
	expect_fault("PUT", "/pmem/p1",
		     "{\"id\": \"p1\", \"path_on_host\": \"/p1\", \"root_device\": true}",
		     "a root pmem device already exists ('ro')");
	expect_fault(
	    "PUT", "/drives/rootfs",
	    "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", \"is_root_device\": true}",
	    "the root device is already pmem device 'ro'");
	json_t *o = get_json("/vm/config"), *a = json_object_get(o, "pmem");
	cr_assert_eq(json_array_size(a), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "id")), "ro");
	cr_assert(json_is_true(json_object_get(json_array_get(a, 0), "root_device")));
	json_decref(o);

	expect_ok("PUT", "/boot-source", KERNEL);
	expect_ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	expect_fault("PUT", "/pmem/p2", "{\"id\": \"p2\", \"path_on_host\": \"/p2\"}",
		     API_ERR_AFTER_START);
	expect_ok("PATCH", "/pmem/p0",
		  "{\"id\": \"p0\", \"rate_limiter\": {\"bandwidth\": {\"size\": 8192, "
		  "\"refill_time\": 100}}}");
	cr_assert_eq(fake.pmem_updates, 1);
	cr_assert_eq(fake.pmem_bw_size, 8192);
	cr_assert_eq(fake.pmem_ops_size, 5, "the bucket the PATCH left out stays");
	fake.fail_update = -EIO;
	expect_fault("PATCH", "/pmem/p0",
		     "{\"id\": \"p0\", \"rate_limiter\": {\"ops\": {\"size\": 1, "
		     "\"refill_time\": 1}}}",
		     "fake update failed");
	fake.fail_update = 0;
	struct vm_config c;
	cr_assert_eq(api_ctl_get_config(ctl, &c), 0);
	cr_assert_eq(c.pmem[1].rate_limiter.ops.size, 5);
	cr_assert_eq(c.pmem[1].rate_limiter.bandwidth.size, 8192);
	vm_config_free(&c);
	expect_fault("PATCH", "/pmem/nope", "{\"id\": \"nope\"}", "no pmem device 'nope'");
	expect_fault("PATCH", "/pmem/p0", "{\"id\": \"p9\"}", "does not match");
	cr_assert_eq(counter("put_api_requests.drive_fails"), 1);
	cr_assert_eq(counter("put_api_requests.pmem_count"), 6);
	cr_assert_eq(counter("put_api_requests.pmem_fails"), 4);
	cr_assert_eq(counter("patch_api_requests.pmem_count"), 5);
	cr_assert_eq(counter("patch_api_requests.pmem_fails"), 4);
}

Test(api_router, started_outside_the_api, .init = setup, .fini = teardown)
{
	struct vm_config c;
	vm_config_init(&c);
	struct vmc_metrics m = {.metrics_path = strdup("/tmp/m")};
	vm_config_set_metrics(&c, &m);
	api_ctl_destroy(ctl);
	cr_assert_eq(api_ctl_create(&ctl, "cfg", &c, &ops, NULL), 0);
	vm_config_free(&c);
	api_ctl_mark_started(ctl);
	fake.state = "Running";
	expect_fault("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
		     API_ERR_AFTER_START);
	expect_ok("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
	cr_assert_eq(fake.flushes, 1);
	cr_assert_eq(fake.starts, 0);
}

Test(api_router, counters_by_path, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/drives/rootfs", ROOTFS);
	expect_fault("PUT", "/drives/rootfs", "{}", "");
	json_decref(get_json("/"));
	json_decref(get_json("/"));
	expect_fault("PATCH", "/drives/rootfs", "{\"drive_id\": \"rootfs\"}", "");

	cr_assert_eq(counter("put_api_requests.drive_count"), 2);
	cr_assert_eq(counter("put_api_requests.drive_fails"), 1);
	cr_assert_eq(counter("get_api_requests.instance_info_count"), 2);
	cr_assert_eq(counter("patch_api_requests.drive_count"), 1);
	cr_assert_eq(counter("patch_api_requests.drive_fails"), 1);
	cr_assert_eq(counter("put_api_requests.actions_count"), 0);
}

/* PUT /snapshot/create: once started; the body's fields reach the VM. */
Test(api_router, snapshot_create, .init = setup, .fini = teardown)
{
	const char *body = "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}";

	expect_fault("PUT", "/snapshot/create", body, "not supported before starting");
	expect_ok("PUT", "/machine-config",
		  "{\"vcpu_count\": 1, \"mem_size_mib\": 64, \"track_dirty_pages\": true}");
	expect_ok("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}");
	expect_ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	expect_ok("PUT", "/snapshot/create", body);
	cr_assert_eq(fake.creates, 1);
	cr_assert_eq(fake.create.type, VM_SNAPSHOT_FULL, "Full by default");
	cr_assert_str_eq(fake.create_state, "/s");
	cr_assert_str_eq(fake.create_mem, "/m");
	expect_ok(
	    "PUT", "/snapshot/create",
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"snapshot_type\": \"Diff\"}");
	cr_assert_eq(fake.create.type, VM_SNAPSHOT_DIFF);
	expect_fault("PUT", "/snapshot/create", "{\"snapshot_path\": \"/s\"}", "mem_file_path");
	expect_fault(
	    "PUT", "/snapshot/create",
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"snapshot_type\": \"Half\"}",
	    "snapshot_type");
	expect_fault("PUT", "/snapshot/create",
		     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"version\": \"1\"}",
		     "version");
	cr_assert_eq(fake.creates, 2, "a refused body reached the VM");
}

/* A Diff snapshot of a VM that does not track dirty pages is refused
 * with Firecracker's message before the VM is asked (Firecracker checks
 * it first, paused or not); a VM loaded with track_dirty_pages takes one. */
Test(api_router, snapshot_create_diff_needs_dirty_tracking, .init = setup, .fini = teardown)
{
	const char *diff =
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"snapshot_type\": \"Diff\"}";

	expect_ok("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}");
	expect_ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	expect_fault("PUT", "/snapshot/create", diff,
		     "Diff snapshots are not allowed on uVMs with dirty page tracking disabled.");
	cr_assert_eq(fake.creates, 0, "the VM was asked");
	cr_assert_eq(counter("put_api_requests.snapshot_create_fails"), 1);
}

Test(api_router, snapshot_create_diff_after_a_tracked_load, .init = setup, .fini = teardown)
{
	const char *diff =
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"snapshot_type\": \"Diff\"}";

	expect_ok("PUT", "/snapshot/load",
		  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", "
		  "\"track_dirty_pages\": true}");
	expect_ok("PUT", "/snapshot/create", diff);
	cr_assert_eq(fake.creates, 1);
}

/* PUT /snapshot/load: its fields and Firecracker's rules. */
Test(api_router, snapshot_load, .init = setup, .fini = teardown)
{
	expect_fault("PUT", "/snapshot/load", "{\"snapshot_path\": \"/s\"}", "Exactly one");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", "
		     "\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"/m\"}}",
		     "Exactly one");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", "
		     "\"mem_backend\": {\"backend_type\": \"Disk\", \"backend_path\": \"/m\"}}",
		     "backend_type");
	cr_assert_eq(fake.loads, 0);
	expect_ok("PUT", "/logger", "{\"log_path\": \"/dev/null\"}");
	expect_ok(
	    "PUT", "/snapshot/load",
	    "{\"snapshot_path\": \"/s\", \"resume_vm\": true, \"enable_diff_snapshots\": true, "
	    "\"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"/u.sock\"}, "
	    "\"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap7\"}], "
	    "\"vsock_override\": {\"uds_path\": \"/v.sock\"}}");
	cr_assert_eq(fake.loads, 1);
	cr_assert_str_eq(fake.load_state, "/s");
	cr_assert_eq(fake.load.backend, VM_MEM_UFFD);
	cr_assert_str_eq(fake.load_backend, "/u.sock");
	cr_assert(fake.load.resume_vm);
	cr_assert(fake.load.track_dirty_pages, "enable_diff_snapshots is track_dirty_pages");
	cr_assert(!fake.load.clock_realtime,
		  "Firecracker's default: the clock goes on from the snapshot");
	cr_assert_eq(fake.load.n_net_overrides, 1);
	cr_assert_str_eq(fake.load_iface, "eth0");
	cr_assert_str_eq(fake.load_tap, "tap7");
	cr_assert_str_eq(fake.load_uds, "/v.sock");
	/* The machine is the snapshot's; the instance has started. */
	json_t *o = get_json("/machine-config");
	cr_assert_eq(json_integer_value(json_object_get(o, "vcpu_count")), 3);
	json_decref(o);
	o = get_json("/");
	cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "Running");
	json_decref(o);
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
		     "not supported after starting");
}

/* Firecracker's NetworkOverride and VsockOverride, unlike the load's body
 * and MemoryBackend, take members they do not know (serde without
 * deny_unknown_fields) and ignore them. */
Test(api_router, snapshot_load_overrides_ignore_unknown_members, .init = setup, .fini = teardown)
{
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", "
		     "\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"/m\", "
		     "\"x\": 1}}",
		     "x");
	expect_ok("PUT", "/snapshot/load",
		  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", "
		  "\"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": "
		  "\"tap7\", \"guest_mac\": \"06:00:00:00:00:01\"}], "
		  "\"vsock_override\": {\"uds_path\": \"/v.sock\", \"guest_cid\": 3}}");
	cr_assert_eq(fake.loads, 1);
	cr_assert_str_eq(fake.load_tap, "tap7");
	cr_assert_str_eq(fake.load_uds, "/v.sock");
}

/* No snapshot loads once a boot resource was configured. */
Test(api_router, snapshot_load_after_boot_resources, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}");
	expect_fault(
	    "PUT", "/snapshot/load",
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"clock_realtime\": false}",
	    "not allowed after configuring boot-specific resources");
	cr_assert_eq(fake.loads, 0);
}

/* PUT /serial is no boot resource, as in Firecracker: a snapshot loads
 * after it, and its console goes to serial_out_path. */
Test(api_router, snapshot_load_after_serial, .init = setup, .fini = teardown)
{
	expect_ok("PUT", "/serial", "{\"serial_out_path\": \"/tmp/restored-console\"}");
	expect_ok("PUT", "/snapshot/load",
		  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}");
	cr_assert_eq(fake.loads, 1);
	cr_assert_str_eq(fake.load_serial, "/tmp/restored-console");
}

/* A boot resource asked for and refused still rules a snapshot out, as in
 * Firecracker, which marks its boot path before it tries. */
Test(api_router, snapshot_load_after_a_failed_boot_resource, .init = setup, .fini = teardown)
{
	expect_fault("PUT", "/boot-source", "{\"kernel_image_path\": \"/missing-k\"}",
		     "cannot be opened");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
		     "not allowed after configuring boot-specific resources");
	cr_assert_eq(fake.loads, 0);
}

/* clock_realtime true reaches the load: the guest's clock is set forward. */
Test(api_router, snapshot_load_clock_realtime, .init = setup, .fini = teardown)
{
	expect_ok(
	    "PUT", "/snapshot/load",
	    "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"clock_realtime\": true}");
	cr_assert_eq(fake.loads, 1);
	cr_assert(fake.load.clock_realtime);
}

/* A kernel, an initrd or a drive's file that does not open, a tap that
 * does not attach, or a vsock socket that cannot be made, is the PUT's
 * 400, naming it, and changes nothing; a drive is opened as it will
 * be used (read-write unless is_read_only). */
Test(api_router, files_that_do_not_open_are_the_puts_error, .init = setup, .fini = teardown)
{
	expect_fault("PUT", "/boot-source", "{\"kernel_image_path\": \"/missing-k\"}",
		     "The kernel file cannot be opened: /missing-k: No such file");
	expect_fault("PUT", "/boot-source",
		     "{\"kernel_image_path\": \"/k\", \"initrd_path\": \"/missing-i\"}",
		     "The initrd file cannot be opened: /missing-i");
	expect_fault("PUT", "/drives/rootfs",
		     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/ro-disk\", "
		     "\"is_root_device\": true}",
		     "The drive's file cannot be opened: /ro-disk: Permission denied");
	expect_fault("PUT", "/network-interfaces/eth0",
		     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"missing0\"}",
		     "Could not create the network device: tap missing0: no such device");
	expect_fault("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/missing/v.sock\"}",
		     "Cannot create backend for vsock device: vsock socket /missing/v.sock: No "
		     "such file");
	json_t *o = get_json("/vm/config");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "boot-source"),
							   "kernel_image_path")),
			 "", "a failed PUT configured nothing");
	cr_assert_eq(json_array_size(json_object_get(o, "network-interfaces")), 0);
	cr_assert_eq(json_array_size(json_object_get(o, "drives")), 0);
	cr_assert(json_is_null(json_object_get(o, "vsock")));
	json_decref(o);
	expect_ok("PUT", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/ro-disk\", "
		  "\"is_root_device\": true, \"is_read_only\": true}");
}
