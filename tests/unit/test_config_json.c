/* config_json (issue 11): Firecracker's config file and API bodies into
 * vm_config and back. A full config file parses; every required field
 * missing, every unknown field, wrong types and out-of-range values are
 * refused with a message naming the field; PATCH bodies update only what
 * they name; PUT /drives/{id} with another id in the body is refused; and
 * the encoding parses back to the same vm_config. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_json.h"
#include "config/vm_config.h"

static char err[512];

#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "'%s' not in '%s'", s, err)

/* A config file like Firecracker's getting-started one, with every part. */
static const char full_file[] =
    "{\n"
    "  \"boot-source\": {\n"
    "    \"kernel_image_path\": \"vmlinux-6.1\",\n"
    "    \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\",\n"
    "    \"initrd_path\": null\n"
    "  },\n"
    "  \"drives\": [\n"
    "    {\"drive_id\": \"scratch\", \"path_on_host\": \"scratch.ext4\",\n"
    "     \"is_root_device\": false, \"is_read_only\": false, \"cache_type\": \"Writeback\",\n"
    "     \"io_engine\": \"Async\",\n"
    "     \"rate_limiter\": {\"bandwidth\": {\"size\": 10485760, \"refill_time\": 1000},\n"
    "                      \"ops\": {\"size\": 1000, \"one_time_burst\": 100,\n"
    "                              \"refill_time\": 1000}}},\n"
    "    {\"drive_id\": \"rootfs\", \"path_on_host\": \"ubuntu-24.04.ext4\",\n"
    "     \"is_root_device\": true, \"is_read_only\": true, \"partuuid\": null,\n"
    "     \"socket\": null, \"rate_limiter\": null}\n"
    "  ],\n"
    "  \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": false,\n"
    "                     \"track_dirty_pages\": false, \"huge_pages\": \"None\"},\n"
    "  \"network-interfaces\": [\n"
    "    {\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\",\n"
    "     \"host_dev_name\": \"tap0\",\n"
    "     \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1048576, \"refill_time\": 100}},\n"
    "     \"tx_rate_limiter\": {\"ops\": {\"size\": 500, \"refill_time\": 100}}}\n"
    "  ],\n"
    "  \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"},\n"
    "  \"logger\": {\"log_path\": \"/tmp/fc.log\", \"level\": \"debug\", \"show_level\": true,\n"
    "             \"show_log_origin\": true},\n"
    "  \"metrics\": {\"metrics_path\": \"/tmp/fc.metrics\"},\n"
    "  \"entropy\": {\"rate_limiter\": {\"bandwidth\": {\"size\": 4096, \"refill_time\": 100}}},\n"
    "  \"balloon\": null, \"cpu-config\": null, \"mmds-config\": null, \"pmem\": [],\n"
    "  \"memory-hotplug\": null\n"
    "}\n";

static int parse_file(const char *text, struct vm_config *c)
{
	return config_json_parse_file(text, strlen(text), c, err, sizeof(err));
}

Test(config_json, full_config_file_parses)
{
	struct vm_config c;

	cr_assert_eq(parse_file(full_file, &c), 0, "%s", err);
	cr_assert_eq(c.machine.vcpu_count, 2);
	cr_assert_eq(c.machine.mem_size_mib, 1024);
	cr_assert_str_eq(c.boot.kernel_image_path, "vmlinux-6.1");
	cr_assert_null(c.boot.initrd_path);
	cr_assert_str_eq(c.boot.boot_args, "console=ttyS0 reboot=k panic=1 pci=off");

	/* The root drive goes first, as in Firecracker. */
	cr_assert_eq(c.ndrives, 2);
	const struct vmc_drive *root = &c.drives[0], *scratch = &c.drives[1];
	cr_assert_str_eq(root->drive_id, "rootfs");
	cr_assert(root->is_root_device && root->is_read_only);
	cr_assert_null(root->partuuid);
	cr_assert_eq(root->cache_type, VMC_CACHE_UNSAFE, "the default");
	cr_assert_eq(root->io_engine, VMC_IO_ENGINE_SYNC, "the default");
	cr_assert_str_eq(scratch->path_on_host, "scratch.ext4");
	cr_assert_eq(scratch->cache_type, VMC_CACHE_WRITEBACK);
	cr_assert_eq(scratch->io_engine, VMC_IO_ENGINE_ASYNC);
	cr_assert_eq(scratch->rate_limiter.bandwidth.size, 10485760);
	cr_assert_eq(scratch->rate_limiter.bandwidth.refill_time_ms, 1000);
	cr_assert_eq(scratch->rate_limiter.ops.one_time_burst, 100);

	cr_assert_eq(c.nnets, 1);
	cr_assert_str_eq(c.nets[0].iface_id, "net1");
	cr_assert_str_eq(c.nets[0].host_dev_name, "tap0");
	cr_assert(c.nets[0].has_guest_mac);
	cr_assert_arr_eq(c.nets[0].guest_mac, ((uint8_t[]){6, 0, 0xac, 0x10, 0, 2}), 6);
	cr_assert_eq(c.nets[0].rx_rate_limiter.bandwidth.size, 1048576);
	cr_assert_eq(c.nets[0].rx_rate_limiter.ops.size, 0);
	cr_assert_eq(c.nets[0].tx_rate_limiter.ops.size, 500);

	cr_assert(c.vsock.enabled);
	cr_assert_eq(c.vsock.guest_cid, 3);
	cr_assert_str_eq(c.vsock.uds_path, "/tmp/v.sock");
	cr_assert(c.logger.enabled);
	cr_assert_eq(c.logger.level, VMC_LOG_DEBUG);
	cr_assert(c.logger.show_level && c.logger.show_log_origin);
	cr_assert_str_eq(c.metrics.metrics_path, "/tmp/fc.metrics");
	cr_assert(c.entropy.enabled);
	cr_assert_eq(c.entropy.rate_limiter.bandwidth.size, 4096);
	cr_assert(!c.serial.enabled);
	vm_config_free(&c);
}

/* The bodies of Firecracker's getting-started sequence, applied in turn. */
Test(config_json, getting_started_api_bodies)
{
	static const char boot[] = "{\"kernel_image_path\": \"./vmlinux\", "
				   "\"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"}";
	static const char rootfs[] =
	    "{\"drive_id\": \"rootfs\", \"path_on_host\": \"./rootfs.ext4\", "
	    "\"is_root_device\": true, \"is_read_only\": false}";
	static const char machine[] = "{\"vcpu_count\": 2, \"mem_size_mib\": 1024}";
	static const char iface[] =
	    "{\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\", "
	    "\"host_dev_name\": \"tap0\"}";
	struct vm_config c;
	struct vmc_boot b;
	struct vmc_drive d;
	struct vmc_machine m;
	struct vmc_net n;

	vm_config_init(&c);
	cr_assert_eq(config_json_boot_source(boot, strlen(boot), &b, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(vm_config_set_boot(&c, &b, err, sizeof(err)), 0);
	cr_assert_eq(config_json_drive("rootfs", rootfs, strlen(rootfs), &d, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0);
	cr_assert_eq(config_json_machine(machine, strlen(machine), &m, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_set_machine(&c, &m, err, sizeof(err)), 0);
	cr_assert_eq(config_json_net("net1", iface, strlen(iface), &n, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_put_net(&c, &n, err, sizeof(err)), 0);

	/* GET /vm/config: what Firecracker shows: an absent optional field
	 * null, a section not configured null. */
	char *got = config_json_encode(&c, false);
	cr_assert_not_null(got);
	json_t *g = json_loads(got, 0, NULL);
	json_t *want = json_loads(
	    "{\"boot-source\": {\"kernel_image_path\": \"./vmlinux\", \"initrd_path\": null,"
	    "  \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"},"
	    " \"drives\": [{\"drive_id\": \"rootfs\", \"partuuid\": null, \"is_root_device\": true,"
	    "  \"cache_type\": \"Unsafe\", \"is_read_only\": false,"
	    "  \"path_on_host\": \"./rootfs.ext4\", \"rate_limiter\": null, \"io_engine\": "
	    "\"Sync\","
	    "  \"socket\": null}],"
	    " \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": false,"
	    "  \"track_dirty_pages\": false, \"huge_pages\": \"None\"},"
	    " \"network-interfaces\": [{\"iface_id\": \"net1\", \"host_dev_name\": \"tap0\","
	    "  \"guest_mac\": \"06:00:ac:10:00:02\", \"mtu\": null, \"rx_rate_limiter\": null,"
	    "  \"tx_rate_limiter\": null}],"
	    " \"balloon\": null, \"cpu-config\": null, \"logger\": null, \"metrics\": null,"
	    " \"memory-hotplug\": null, \"mmds-config\": null, \"pmem\": [], \"vsock\": null,"
	    " \"entropy\": null}",
	    0, NULL);
	cr_assert(json_equal(g, want), "got %s", got);
	json_decref(g);
	json_decref(want);
	free(got);

	/* GET /machine-config. */
	got = config_json_encode_machine(&c.machine);
	cr_assert_str_eq(got, "{\"vcpu_count\":2,\"mem_size_mib\":1024,\"smt\":false,"
			      "\"track_dirty_pages\":false,\"huge_pages\":\"None\"}");
	free(got);
	vm_config_free(&c);
}

/* Which parser a body goes to. */
enum kind {
	FILE_,
	MACHINE,
	MACHINE_PATCH,
	BOOT,
	DRIVE,
	DRIVE_PATCH,
	NET,
	NET_PATCH,
	VSOCK,
	LOGGER,
	METRICS,
	ENTROPY,
	SERIAL,
	CPU,
};

/* Parse body as kind (path id "x" for drives and interfaces), free what
 * it made, and return the result; the message is in err. */
static int parse(enum kind k, const char *body)
{
	size_t n = strlen(body);
	int r = -1;

	err[0] = '\0';
	switch (k) {
	case FILE_: {
		struct vm_config c;
		r = config_json_parse_file(body, n, &c, err, sizeof(err));
		vm_config_free(&c);
		break;
	}
	case MACHINE: {
		struct vmc_machine m;
		r = config_json_machine(body, n, &m, err, sizeof(err));
		break;
	}
	case MACHINE_PATCH: {
		struct vmc_machine_patch m;
		r = config_json_machine_patch(body, n, &m, err, sizeof(err));
		break;
	}
	case BOOT: {
		struct vmc_boot b;
		r = config_json_boot_source(body, n, &b, err, sizeof(err));
		vmc_boot_free(&b);
		break;
	}
	case DRIVE: {
		struct vmc_drive d;
		r = config_json_drive("x", body, n, &d, err, sizeof(err));
		vmc_drive_free(&d);
		break;
	}
	case DRIVE_PATCH: {
		struct vmc_drive_patch d;
		r = config_json_drive_patch("x", body, n, &d, err, sizeof(err));
		vmc_drive_patch_free(&d);
		break;
	}
	case NET: {
		struct vmc_net d;
		r = config_json_net("x", body, n, &d, err, sizeof(err));
		vmc_net_free(&d);
		break;
	}
	case NET_PATCH: {
		struct vmc_net_patch d;
		r = config_json_net_patch("x", body, n, &d, err, sizeof(err));
		vmc_net_patch_free(&d);
		break;
	}
	case VSOCK: {
		struct vmc_vsock v;
		r = config_json_vsock(body, n, &v, err, sizeof(err));
		vmc_vsock_free(&v);
		break;
	}
	case LOGGER: {
		struct vmc_logger l;
		r = config_json_logger(body, n, &l, err, sizeof(err));
		vmc_logger_free(&l);
		break;
	}
	case METRICS: {
		struct vmc_metrics m;
		r = config_json_metrics(body, n, &m, err, sizeof(err));
		vmc_metrics_free(&m);
		break;
	}
	case ENTROPY: {
		struct vmc_entropy e;
		r = config_json_entropy(body, n, &e, err, sizeof(err));
		break;
	}
	case SERIAL: {
		struct vmc_serial s;
		r = config_json_serial(body, n, &s, err, sizeof(err));
		vmc_serial_free(&s);
		break;
	}
	case CPU: {
		struct vmc_cpu_config *t = malloc(sizeof(*t));
		cr_assert_not_null(t);
		r = config_json_cpu_config(body, n, t, err, sizeof(err));
		free(t);
		break;
	}
	}
	return r;
}

struct refusal {
	enum kind kind;
	const char *body;
	const char *msg; /* expected in err */
};

static void check_refusals(const struct refusal *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(parse(t[i].kind, t[i].body), -EINVAL, "accepted: %s", t[i].body);
		cr_assert_not_null(strstr(err, t[i].msg), "body %s: '%s' not in '%s'", t[i].body,
				   t[i].msg, err);
	}
}

/* Minimal valid bodies, each accepted. */
#define DRV   "\"drive_id\": \"x\", \"is_root_device\": false, \"path_on_host\": \"/img\""
#define NETB  "\"iface_id\": \"x\", \"host_dev_name\": \"tap0\""
#define BOOTB "\"kernel_image_path\": \"/k\""
#define FILEB "\"boot-source\": {" BOOTB "}, \"drives\": []"

Test(config_json, minimal_bodies_pass)
{
	static const struct {
		enum kind kind;
		const char *body;
	} ok[] = {
	    {FILE_, "{" FILEB "}"},
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 128}"},
	    {MACHINE_PATCH, "{\"smt\": true}"},
	    {BOOT, "{" BOOTB "}"},
	    {DRIVE, "{" DRV "}"},
	    {DRIVE, "{\"drive_id\": \"x\", \"is_root_device\": false, \"socket\": \"/s\"}"},
	    {DRIVE_PATCH, "{\"drive_id\": \"x\"}"},
	    {NET, "{" NETB "}"},
	    {NET_PATCH, "{\"iface_id\": \"x\"}"},
	    {VSOCK, "{\"guest_cid\": 3, \"uds_path\": \"/v\"}"},
	    {LOGGER, "{}"},
	    {METRICS, "{\"metrics_path\": \"/m\"}"},
	    {ENTROPY, "{}"},
	    {SERIAL, "{}"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		cr_assert_eq(parse(ok[i].kind, ok[i].body), 0, "%s: %s", ok[i].body, err);
}

/* boot_args are checked when set (PUT /boot-source, a config file), as
 * Firecracker does, not at InstanceStart: printable ASCII, under the
 * kernel's 2048 bytes, no double quote left open. */
Test(config_json, boot_args_refused_when_set)
{
	static char longer[2100];
	static const struct refusal t[] = {
	    {BOOT, "{" BOOTB ", \"boot_args\": \"console=ttyS0\\tquiet\"}",
	     "boot_args: the kernel command line is invalid: byte 0x09 at offset 13 is not "
	     "printable ASCII"},
	    {BOOT, "{" BOOTB ", \"boot_args\": \"init=/sbin/\u00e9\"}",
	     "byte 0xc3 at offset 11 is not printable ASCII"},
	    {BOOT, "{" BOOTB ", \"boot_args\": \"a=\\\"b c\"}", "leaves a double quote open"},
	};

	check_refusals(t, ARRAY_SIZE(t));
	for (size_t len = 2046; len <= 2048; len++) {
		int n = snprintf(longer, sizeof(longer), "{" BOOTB ", \"boot_args\": \"");
		memset(longer + n, 'a', len);
		strcpy(longer + n + len, "\"}");
		if (len <= 2047) {
			cr_assert_eq(parse(BOOT, longer), 0, "%zu bytes: %s", len, err);
		} else {
			cr_assert_eq(parse(BOOT, longer), -EINVAL, "%zu bytes", len);
			cr_assert_not_null(strstr(err, "2048 bytes, longer than the 2047"), "%s",
					   err);
		}
	}
	cr_assert_eq(parse(BOOT, "{" BOOTB ", \"boot_args\": \"a=\\\"b c\\\" ~\"}"), 0, "%s", err);
}

/* A configuration as a snapshot holds it parses whatever flint built its
 * command line from (guest words with a newline, quoted, from flint's own
 * command line): the check is of what a user sets (PUT /boot-source, and
 * --config-file, whose loader calls vmc_boot_args_check). */
Test(config_json, a_snapshots_boot_args_are_not_a_users)
{
	static const char file[] = "{\"boot-source\": {" BOOTB
				   ", \"boot_args\": \"console=ttyS0 -- sh -c \\\"echo a\\necho "
				   "b\\\"\"}, \"drives\": []}";
	struct vm_config c;

	cr_assert_eq(config_json_parse_file(file, strlen(file), &c, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(vmc_boot_args_check(&c.boot, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "boot_args: the kernel command line is invalid: byte 0x0a"),
			   "%s", err);
	vm_config_free(&c);
}

Test(config_json, each_required_field_missing)
{
	static const struct refusal t[] = {
	    {FILE_, "{\"drives\": []}", "missing required field 'boot-source'"},
	    {FILE_, "{\"boot-source\": {" BOOTB "}}", "missing required field 'drives'"},
	    {FILE_, "{" FILEB ", \"machine-config\": {\"vcpu_count\": 1}}",
	     "machine-config: missing required field 'mem_size_mib'"},
	    {MACHINE, "{\"mem_size_mib\": 128}", "missing required field 'vcpu_count'"},
	    {MACHINE, "{\"vcpu_count\": 1}", "missing required field 'mem_size_mib'"},
	    {BOOT, "{\"boot_args\": \"quiet\"}", "missing required field 'kernel_image_path'"},
	    {DRIVE, "{\"is_root_device\": false, \"path_on_host\": \"/img\"}",
	     "missing required field 'drive_id'"},
	    {DRIVE, "{\"drive_id\": \"x\", \"path_on_host\": \"/img\"}",
	     "missing required field 'is_root_device'"},
	    {DRIVE, "{\"drive_id\": \"x\", \"is_root_device\": false}",
	     "missing required field 'path_on_host' (or 'socket' for vhost-user-blk)"},
	    {DRIVE_PATCH, "{\"path_on_host\": \"/img\"}", "missing required field 'drive_id'"},
	    {NET, "{\"host_dev_name\": \"tap0\"}", "missing required field 'iface_id'"},
	    {NET, "{\"iface_id\": \"x\"}", "missing required field 'host_dev_name'"},
	    {NET_PATCH, "{}", "missing required field 'iface_id'"},
	    {VSOCK, "{\"uds_path\": \"/v\"}", "missing required field 'guest_cid'"},
	    {VSOCK, "{\"guest_cid\": 3}", "missing required field 'uds_path'"},
	    {METRICS, "{}", "missing required field 'metrics_path'"},
	    {DRIVE, "{" DRV ", \"rate_limiter\": {\"ops\": {\"size\": 1}}}",
	     "rate_limiter.ops: missing required field 'refill_time'"},
	    {DRIVE, "{" DRV ", \"rate_limiter\": {\"ops\": {\"refill_time\": 1}}}",
	     "rate_limiter.ops: missing required field 'size'"},
	    {SERIAL, "{\"rate_limiter\": {\"refill_time\": 1}}",
	     "rate_limiter: missing required field 'size'"},
	    /* A required field given as null is missing (serde's Option). */
	    {MACHINE, "{\"vcpu_count\": null, \"mem_size_mib\": 128}",
	     "missing required field 'vcpu_count'"},
	    /* In a file, the place is named. */
	    {FILE_, "{" FILEB ", \"network-interfaces\": [{" NETB "}, {\"iface_id\": \"y\"}]}",
	     "network-interfaces[1]: missing required field 'host_dev_name'"},
	};
	check_refusals(t, ARRAY_SIZE(t));
}

/* null is taken where Firecracker's field is an Option (absent, then), and
 * refused where serde gives a default for an absent member but has no
 * null to read (bool, u16, an enum): on PUT /machine-config (not its
 * PATCH, all Options), a drive's cache_type, the balloon's, the MMDS's
 * and memory hot-plug's defaulted fields. */
Test(config_json, null_only_where_firecracker_takes_it)
{
#define MACH "\"vcpu_count\": 1, \"mem_size_mib\": 128"
	static const struct refusal t[] = {
	    {MACHINE, "{" MACH ", \"smt\": null}", "smt: null is not a value here"},
	    {MACHINE, "{" MACH ", \"track_dirty_pages\": null}", "track_dirty_pages: null is not"},
	    {MACHINE, "{" MACH ", \"huge_pages\": null}", "huge_pages: null is not"},
	    {DRIVE, "{" DRV ", \"cache_type\": null}", "cache_type: null is not"},
	    {FILE_,
	     "{" FILEB ", \"balloon\": {\"amount_mib\": 1, \"deflate_on_oom\": false, "
	     "\"free_page_hinting\": null}}",
	     "balloon.free_page_hinting: null is not"},
	    {FILE_,
	     "{" FILEB ", \"balloon\": {\"amount_mib\": 1, \"deflate_on_oom\": false, "
	     "\"stats_polling_interval_s\": null}}",
	     "stats_polling_interval_s: null is not"},
	    {FILE_, "{" FILEB ", \"mmds-config\": {\"version\": null, \"network_interfaces\": []}}",
	     "mmds-config.version: null is not"},
	    {FILE_,
	     "{" FILEB ", \"memory-hotplug\": {\"total_size_mib\": 1024, \"slot_size_mib\": null}}",
	     "slot_size_mib: null is not"},
	};
	check_refusals(t, ARRAY_SIZE(t));
	cr_assert_eq(parse(MACHINE_PATCH, "{\"smt\": null}"), 0, "%s", err);
	cr_assert_eq(parse(MACHINE, "{" MACH ", \"cpu_template\": null}"), 0, "%s", err);
	cr_assert_eq(parse(DRIVE, "{" DRV ", \"is_read_only\": null, \"partuuid\": null}"), 0, "%s",
		     err);
#undef MACH
}

/* Firecracker's file parser passes over a top-level member it has no
 * field for (its struct takes unknown keys); flint's does too, and says
 * which, for a warning. Inside a section an unknown field is refused, as
 * there (below). */
Test(config_json, unknown_top_level_fields_ignored_named)
{
	struct vm_config c;

	cr_assert_eq(parse_file("{" FILEB ", \"vm\": {\"x\": 1}}", &c), 1, "%s", err);
	cr_assert_str_eq(err, "unknown top-level field 'vm' ignored");
	cr_assert_str_eq(c.boot.kernel_image_path, "/k");
	vm_config_free(&c);
	cr_assert_eq(parse_file("{\"machine_config\": 1, " FILEB ", \"x\": null}", &c), 1, "%s",
		     err);
	cr_assert_str_eq(err, "unknown top-level fields 'machine_config', 'x' ignored");
	vm_config_free(&c);
	/* An error still wins over the note. */
	cr_assert_eq(parse_file("{\"vm\": 1, " FILEB ", \"machine-config\": 3}", &c), -EINVAL);
	cr_assert_null(strstr(err, "ignored"), "%s", err);
	/* None: 0, as before. */
	cr_assert_eq(parse_file("{" FILEB "}", &c), 0, "%s", err);
	vm_config_free(&c);
}

Test(config_json, each_unknown_field)
{
	static const struct refusal t[] = {
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"vcpus\": 2}",
	     "unknown field 'vcpus' (expected one of: vcpu_count, mem_size_mib, smt, "
	     "cpu_template, track_dirty_pages, huge_pages)"},
	    /* gdb_socket_path only exists in Firecracker's gdb builds. */
	    {MACHINE_PATCH, "{\"gdb_socket_path\": \"/g\"}", "unknown field 'gdb_socket_path'"},
	    {BOOT, "{" BOOTB ", \"initrd\": \"/i\"}", "unknown field 'initrd'"},
	    {DRIVE, "{" DRV ", \"read_only\": true}", "unknown field 'read_only'"},
	    {DRIVE_PATCH, "{\"drive_id\": \"x\", \"is_read_only\": true}",
	     "unknown field 'is_read_only' (expected one of: drive_id, path_on_host, "
	     "rate_limiter)"},
	    {NET, "{" NETB ", \"mac\": \"06:00:00:00:00:01\"}", "unknown field 'mac'"},
	    {NET_PATCH, "{\"iface_id\": \"x\", \"host_dev_name\": \"tap1\"}",
	     "unknown field 'host_dev_name'"},
	    {VSOCK, "{\"guest_cid\": 3, \"uds_path\": \"/v\", \"cid\": 4}", "unknown field 'cid'"},
	    {LOGGER, "{\"log_level\": \"Info\"}", "unknown field 'log_level'"},
	    {METRICS, "{\"metrics_path\": \"/m\", \"format\": \"json\"}", "unknown field 'format'"},
	    {ENTROPY, "{\"rate\": 1}", "unknown field 'rate'"},
	    {SERIAL, "{\"path\": \"/s\"}", "unknown field 'path'"},
	    {DRIVE, "{" DRV ", \"rate_limiter\": {\"iops\": {}}}",
	     "rate_limiter: unknown field 'iops' (expected one of: bandwidth, ops)"},
	    {NET,
	     "{" NETB ", \"tx_rate_limiter\": {\"ops\": {\"size\": 1, \"refill_time\": 1, "
	     "\"burst\": 1}}}",
	     "tx_rate_limiter.ops: unknown field 'burst'"},
	    {FILE_, "{" FILEB ", \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/v\", \"x\": 1}}",
	     "vsock: unknown field 'x'"},
	};
	check_refusals(t, ARRAY_SIZE(t));
}

Test(config_json, wrong_types_name_the_field)
{
	static const struct refusal t[] = {
	    {MACHINE, "{\"vcpu_count\": \"2\", \"mem_size_mib\": 128}",
	     "vcpu_count: expected an integer, got a string"},
	    {MACHINE, "{\"vcpu_count\": 2, \"mem_size_mib\": 128.5}",
	     "mem_size_mib: expected an integer, got a number with a fraction"},
	    {MACHINE, "{\"vcpu_count\": 2, \"mem_size_mib\": 128.0}",
	     "mem_size_mib: expected an integer"},
	    {MACHINE, "{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"smt\": \"false\"}",
	     "smt: expected true or false, got a string"},
	    {MACHINE, "{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"smt\": 0}",
	     "smt: expected true or false, got an integer"},
	    {MACHINE, "{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"huge_pages\": 2}",
	     "huge_pages: expected a string, got an integer"},
	    {BOOT, "{\"kernel_image_path\": [\"/k\"]}",
	     "kernel_image_path: expected a string, got an array"},
	    {DRIVE, "{\"drive_id\": 1, \"is_root_device\": false, \"path_on_host\": \"/i\"}",
	     "drive_id: expected a string, got an integer"},
	    {DRIVE, "{" DRV ", \"rate_limiter\": 5}",
	     "rate_limiter: expected an object, got an integer"},
	    {DRIVE,
	     "{" DRV ", \"rate_limiter\": {\"bandwidth\": {\"size\": \"1M\", "
	     "\"refill_time\": 1}}}",
	     "rate_limiter.bandwidth.size: expected an integer, got a string"},
	    {NET, "{" NETB ", \"guest_mac\": 6}", "guest_mac: expected a string, got an integer"},
	    {NET, "{" NETB ", \"mtu\": \"1500\"}", "mtu: expected an integer, got a string"},
	    {VSOCK, "{\"guest_cid\": 3, \"uds_path\": true}",
	     "uds_path: expected a string, got a boolean"},
	    {LOGGER, "{\"show_level\": \"yes\"}", "show_level: expected true or false"},
	    {FILE_, "{\"boot-source\": {" BOOTB "}, \"drives\": {}}",
	     "drives: expected an array, got an object"},
	    {FILE_, "{" FILEB ", \"machine-config\": []}",
	     "machine-config: expected an object, got an array"},
	    {FILE_, "{\"boot-source\": {" BOOTB "}, \"drives\": [\"rootfs\"]}",
	     "drives[0]: expected an object, got a string"},
	    {FILE_, "{\"boot-source\": {" BOOTB "}, \"drives\": [{" DRV ", \"is_read_only\": 1}]}",
	     "drives[0].is_read_only: expected true or false, got an integer"},
	};
	check_refusals(t, ARRAY_SIZE(t));
}

Test(config_json, out_of_range_and_bad_values)
{
	static const struct refusal t[] = {
	    {MACHINE, "{\"vcpu_count\": 0, \"mem_size_mib\": 128}",
	     "vcpu_count: must be from 1 to 32, got 0"},
	    {MACHINE, "{\"vcpu_count\": 33, \"mem_size_mib\": 128}",
	     "vcpu_count: must be from 1 to 32, got 33"},
	    {MACHINE, "{\"vcpu_count\": -1, \"mem_size_mib\": 128}",
	     "vcpu_count: must be from 1 to 32, got -1"},
	    {MACHINE, "{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}",
	     "vcpu_count: with smt enabled it must be 1 or an even number, got 3"},
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 8}",
	     "mem_size_mib: must be from 16 to 1048576, got 8"},
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 1048577}",
	     "mem_size_mib: must be from 16 to 1048576"},
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 129, \"huge_pages\": \"2M\"}",
	     "mem_size_mib: with 2M huge pages it must be a multiple of 2, got 129"},
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"huge_pages\": \"1G\"}",
	     "huge_pages: must be one of None, 2M; got '1G'"},
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpu_template\": \"t2\"}",
	     "cpu_template: must be one of None, C3, T2, T2S, T2CL, T2A, V1N1; got 't2'"},
	    {MACHINE_PATCH, "{\"vcpu_count\": 64}", "vcpu_count: must be from 1 to 32, got 64"},
	    {BOOT, "{\"kernel_image_path\": \"\"}", "kernel_image_path: must not be empty"},
	    {DRIVE, "{" DRV ", \"cache_type\": \"WriteBack\"}",
	     "cache_type: must be one of Unsafe, Writeback; got 'WriteBack'"},
	    {DRIVE, "{" DRV ", \"io_engine\": \"Uring\"}", "io_engine: must be one of Sync, Async"},
	    {DRIVE, "{" DRV ", \"socket\": \"/s\"}",
	     "takes path_on_host (virtio-blk) or socket (vhost-user-blk), not both"},
	    {DRIVE,
	     "{\"drive_id\": \"x\", \"is_root_device\": false, \"socket\": \"/s\", "
	     "\"is_read_only\": false}",
	     "a vhost-user-blk drive (socket) takes no is_read_only"},
	    {DRIVE, "{" DRV ", \"rate_limiter\": {\"ops\": {\"size\": -1, \"refill_time\": 1}}}",
	     "rate_limiter.ops.size: must be from 0 to 9223372036854775807, got -1"},
	    {NET, "{" NETB ", \"guest_mac\": \"06:00:ac:10:00\"}",
	     "guest_mac: '06:00:ac:10:00' is not a MAC address like 06:00:ac:10:00:02"},
	    {NET, "{" NETB ", \"guest_mac\": \"06-00-ac-10-00-02\"}", "is not a MAC address"},
	    {NET, "{" NETB ", \"guest_mac\": \"0g:00:ac:10:00:02\"}", "is not a MAC address"},
	    {NET, "{" NETB ", \"guest_mac\": \"01:00:5e:00:00:01\"}",
	     "guest_mac: 01:00:5e:00:00:01 is a multicast address"},
	    {NET, "{" NETB ", \"mtu\": 67}", "mtu: must be from 68 to 65535, got 67"},
	    {NET, "{\"iface_id\": \"x\", \"backend\": \"user\", \"mtu\": 65522}",
	     "mtu: at most 65521 on a user interface"},
	    {NET, "{\"iface_id\": \"x\", \"host_dev_name\": \"tap/0\"}",
	     "host_dev_name: 'tap/0' is not an interface name"},
	    {VSOCK, "{\"guest_cid\": 2, \"uds_path\": \"/v\"}",
	     "guest_cid: must be from 3 to 4294967294, got 2"},
	    {VSOCK, "{\"guest_cid\": 4294967295, \"uds_path\": \"/v\"}",
	     "guest_cid: must be from 3"},
	    {VSOCK,
	     "{\"guest_cid\": 3, \"uds_path\": \"/a/very/long/path/that/does/not/fit/in/"
	     "sun_path/with/the/port/suffix/after/it/so/flint/refuses/it/now/x\"}",
	     "uds_path: longer than 96 bytes"},
	    {LOGGER, "{\"level\": \"Verbose\"}",
	     "level: must be one of Error, Warning, Info, Debug, Trace, Off; got 'Verbose'"},
	    {METRICS, "{\"metrics_path\": \"\"}", "metrics_path: must not be empty"},
	    {FILE_, "{\"boot-source\": {" BOOTB "}, \"drives\": [{" DRV ", \"mtu\": 1}]}",
	     "drives[0]: unknown field 'mtu'"},
	    {FILE_, "{" FILEB ", \"machine-config\": {\"vcpu_count\": 40, \"mem_size_mib\": 128}}",
	     "machine-config.vcpu_count: must be from 1 to 32, got 40"},
	};
	check_refusals(t, ARRAY_SIZE(t));
}

Test(config_json, not_json_or_not_an_object)
{
	static const struct refusal t[] = {
	    {MACHINE, "", "the body is not valid JSON"},
	    {MACHINE, "{\"vcpu_count\": 1,", "the body is not valid JSON"},
	    {MACHINE, "{\"vcpu_count\": 1, \"mem_size_mib\": 128} trailing",
	     "the body is not valid JSON"},
	    {MACHINE, "[1, 2]", "the body must be a JSON object, not an array"},
	    {VSOCK, "null", "the body must be a JSON object, not null"},
	    /* serde refuses a field given twice; so does flint. */
	    {MACHINE, "{\"vcpu_count\": 1, \"vcpu_count\": 2, \"mem_size_mib\": 128}", "duplicate"},
	    {BOOT, "{\"kernel_image_path\": \"/k\\u0000x\"}", "not valid JSON"},
	    {FILE_, "\"boot-source\"", "the config file must be a JSON object, not a string"},
	};
	check_refusals(t, ARRAY_SIZE(t));
}

static void round_trip(const struct vm_config *c);

/* PUT /hotplug/memory's body (MemoryHotplugConfig) and PATCH's
 * (MemoryHotplugSizeUpdate): the defaults, the required field, unknown
 * keys, types and ranges. The rules between the sizes are
 * vm_config_set_memory_hotplug's. */
Test(config_json, memory_hotplug_bodies)
{
	static const struct {
		const char *body, *msg;
	} bad[] = {
	    {"{}", "missing required field 'total_size_mib'"},
	    {"{\"total_size_mib\": null}", "missing required field 'total_size_mib'"},
	    {"{\"total_size_mib\": 1024, \"size\": 1}", "size"},
	    {"{\"total_size_mib\": 1024, \"requested_size_mib\": 0}", "requested_size_mib"},
	    {"{\"total_size_mib\": \"1024\"}", "total_size_mib"},
	    {"{\"total_size_mib\": -128}", "total_size_mib"},
	    {"{\"total_size_mib\": 4294967296}", "total_size_mib"},
	    {"{\"total_size_mib\": 1024, \"slot_size_mib\": 128.0}", "slot_size_mib"},
	    {"{\"total_size_mib\": 1024, \"block_size_mib\": true}", "block_size_mib"},
	    {"[]", "must be a JSON object"},
	};
	struct vmc_memory_hotplug h;
	uint32_t req = 7;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		cr_assert_eq(config_json_memory_hotplug(bad[i].body, strlen(bad[i].body), &h, err,
							sizeof(err)),
			     -EINVAL, "accepted %s", bad[i].body);
		ERR_HAS(bad[i].msg);
		cr_assert_not(h.enabled);
	}
	/* Firecracker's defaults: slots of 128 MiB, blocks of 2. */
	static const char def[] = "{\"total_size_mib\": 1024}";
	cr_assert_eq(config_json_memory_hotplug(def, strlen(def), &h, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert(h.enabled);
	cr_assert_eq(h.total_size_mib, 1024);
	cr_assert_eq(h.slot_size_mib, 128);
	cr_assert_eq(h.block_size_mib, 2);
	static const char all[] =
	    "{\"total_size_mib\": 2048, \"slot_size_mib\": 256, \"block_size_mib\": 4}";
	cr_assert_eq(config_json_memory_hotplug(all, strlen(all), &h, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(h.total_size_mib, 2048);
	cr_assert_eq(h.slot_size_mib, 256);
	cr_assert_eq(h.block_size_mib, 4);
	/* The parser checks types only: the rules are applied by the PUT. */
	static const char odd[] = "{\"total_size_mib\": 1000, \"block_size_mib\": 3}";
	cr_assert_eq(config_json_memory_hotplug(odd, strlen(odd), &h, err, sizeof(err)), 0, "%s",
		     err);

	static const char patch[] = "{\"requested_size_mib\": 512}";
	cr_assert_eq(
	    config_json_memory_hotplug_update(patch, strlen(patch), &req, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(req, 512);
	static const char *const bad_patch[] = {
	    "{}", "{\"requested_size_mib\": -2}", "{\"requested_size_mib\": \"2\"}",
	    "{\"requested_size_mib\": 2, \"total_size_mib\": 4}"};
	for (size_t i = 0; i < ARRAY_SIZE(bad_patch); i++) {
		cr_assert_eq(config_json_memory_hotplug_update(bad_patch[i], strlen(bad_patch[i]),
							       &req, err, sizeof(err)),
			     -EINVAL, "accepted %s", bad_patch[i]);
		cr_assert_not_null(strstr(err, i == 3 ? "total_size_mib" : "requested_size_mib"),
				   "%s: %s", bad_patch[i], err);
	}
}

/* "memory-hotplug" in a config file: PUT /hotplug/memory's body, its
 * defaults, its rules named with their place; null asks for none. */
Test(config_json, memory_hotplug_section)
{
	static const struct refusal t[] = {
	    {FILE_, "{" FILEB ", \"memory-hotplug\": {}}",
	     "memory-hotplug: missing required field 'total_size_mib'"},
	    {FILE_, "{" FILEB ", \"memory-hotplug\": {\"total_size_mib\": 500}}",
	     "memory-hotplug: total_size_mib: must be a multiple of slot_size_mib (128 MiB), got "
	     "500"},
	    {FILE_,
	     "{" FILEB ", \"memory-hotplug\": {\"total_size_mib\": 512, \"block_size_mib\": 3}}",
	     "memory-hotplug: block_size_mib: must be a power of two, at least 2 MiB, got 3"},
	    {FILE_, "{" FILEB ", \"memory-hotplug\": {\"total_size_mib\": 512, \"x\": 1}}",
	     "memory-hotplug"},
	    {FILE_, "{" FILEB ", \"memory-hotplug\": []}", "memory-hotplug"},
	};
	struct vm_config c;

	check_refusals(t, ARRAY_SIZE(t));
	cr_assert_eq(parse_file("{" FILEB ", \"memory-hotplug\": null}", &c), 0, "%s", err);
	cr_assert_not(c.memory_hotplug.enabled, "null is not asking for one");
	vm_config_free(&c);
	cr_assert_eq(parse_file("{" FILEB ", \"memory-hotplug\": {\"total_size_mib\": 512}}", &c),
		     0, "%s", err);
	cr_assert(c.memory_hotplug.enabled);
	cr_assert_eq(c.memory_hotplug.total_size_mib, 512);
	cr_assert_eq(c.memory_hotplug.slot_size_mib, 128);
	cr_assert_eq(c.memory_hotplug.block_size_mib, 2);
	cr_assert(vm_config_features(&c) & VMC_F_MEMORY_HOTPLUG);

	/* GET /vm/config shows the section, sizes and all, and it reads back. */
	char *got = config_json_encode(&c, false);
	cr_assert_not_null(got);
	json_t *g = json_loads(got, 0, NULL),
	       *want = json_loads("{\"total_size_mib\": 512, \"slot_size_mib\": 128, "
				  "\"block_size_mib\": 2}",
				  0, NULL);
	cr_assert(json_equal(json_object_get(g, "memory-hotplug"), want), "got %s", got);
	json_decref(g);
	json_decref(want);
	free(got);
	round_trip(&c);
	vm_config_free(&c);
}

/* "pmem" in the config file, PUT and PATCH /pmem/{id}: Firecracker's Pmem
 * and PartialPmem, the ids of path and body, one root device. */
Test(config_json, pmem)
{
	struct vm_config c;
	struct vmc_pmem d;
	struct vmc_pmem_patch pp;
	static const char put[] = "{\"id\": \"p0\", \"path_on_host\": \"/srv/p0.img\", "
				  "\"root_device\": true, \"read_only\": true, \"rate_limiter\": "
				  "{\"ops\": {\"size\": 10, \"refill_time\": 1000}}}";
	static const char patch[] = "{\"id\": \"p0\", \"rate_limiter\": {\"bandwidth\": "
				    "{\"size\": 4096, \"refill_time\": 100}}}";

	cr_assert_eq(config_json_pmem("p0", put, strlen(put), &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(d.id, "p0");
	cr_assert_str_eq(d.path_on_host, "/srv/p0.img");
	cr_assert(d.root_device && d.read_only);
	cr_assert_eq(d.rate_limiter.ops.size, 10);
	vmc_pmem_free(&d);
	cr_assert_eq(config_json_pmem("p1", put, strlen(put), &d, err, sizeof(err)), -EINVAL);
	ERR_HAS("id 'p0' in the body does not match 'p1' in the path");
	cr_assert_eq(config_json_pmem("p-0", put, strlen(put), &d, err, sizeof(err)), -EINVAL);
	cr_assert_eq(config_json_pmem_patch("p0", patch, strlen(patch), &pp, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert(pp.rate_limiter.has_bandwidth && !pp.rate_limiter.has_ops);
	vmc_pmem_patch_free(&pp);
	static const struct {
		const char *body, *msg;
	} bad[] = {
	    {"{\"path_on_host\": \"/p\"}", "id"},
	    {"{\"id\": \"x\"}", "path_on_host"},
	    {"{\"id\": \"x\", \"path_on_host\": \"/p\", \"is_root_device\": true}",
	     "is_root_device"},
	    {"{\"id\": \"x\", \"path_on_host\": \"\"}", "path_on_host"},
	    {"{\"id\": \"x\", \"path_on_host\": \"/p\", \"read_only\": 1}", "read_only"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cr_assert_eq(
		    config_json_pmem("x", bad[i].body, strlen(bad[i].body), &d, err, sizeof(err)),
		    -EINVAL, "accepted %s", bad[i].body);
		ERR_HAS(bad[i].msg);
	}
	static const char with_path[] = "{\"id\": \"x\", \"path_on_host\": \"/p\"}";
	cr_assert_eq(
	    config_json_pmem_patch("x", with_path, strlen(with_path), &pp, err, sizeof(err)),
	    -EINVAL);
	ERR_HAS("path_on_host");

	/* The file: in order, /dev/pmem0 first; a second root refused. */
	cr_assert_eq(
	    parse_file("{" FILEB ", \"pmem\": [{\"id\": \"a\", \"path_on_host\": \"/a\"}, "
		       "{\"id\": \"b\", \"path_on_host\": \"/b\", \"root_device\": true}]}",
		       &c),
	    0, "%s", err);
	cr_assert_eq(c.npmem, 2);
	cr_assert_str_eq(c.pmem[0].id, "a");
	cr_assert(c.pmem[1].root_device);
	round_trip(&c);
	vm_config_free(&c);
	cr_assert_eq(parse(FILE_,
			   "{" FILEB ", \"pmem\": [{\"id\": \"a\", \"path_on_host\": \"/a\", "
			   "\"root_device\": true}, {\"id\": \"b\", \"path_on_host\": \"/b\", "
			   "\"root_device\": true}]}"),
		     -EINVAL);
	ERR_HAS("pmem[1]");
	ERR_HAS("a root pmem device already exists ('a')");
}

/* "mmds-config": after the interfaces it names; its checks. */
Test(config_json, mmds_config)
{
	struct vm_config c;
	static const char *nets =
	    "\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}, "
	    "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\"}]";
	char f[1024];

	snprintf(f, sizeof(f),
		 "{" FILEB ", %s, \"mmds-config\": {\"network_interfaces\": [\"eth1\"]}}", nets);
	cr_assert_eq(parse_file(f, &c), 0, "%s", err);
	cr_assert(c.mmds.enabled);
	cr_assert_not(c.mmds.v2);
	cr_assert_eq(ntohl(c.mmds.ipv4), VMC_MMDS_DEFAULT_IPV4);
	cr_assert_not(c.nets[0].mmds);
	cr_assert(c.nets[1].mmds);
	vm_config_free(&c);
	snprintf(f, sizeof(f),
		 "{" FILEB ", %s, \"mmds-config\": {\"network_interfaces\": [\"eth2\"]}}", nets);
	cr_assert_eq(parse_file(f, &c), -EINVAL);
	cr_assert(strstr(err, "'eth2' is not configured"), "%s", err);
	snprintf(f, sizeof(f),
		 "{" FILEB ", %s, \"mmds-config\": {\"network_interfaces\": [\"eth0\"], "
		 "\"ipv4_address\": \"169.254.255.1\"}}",
		 nets);
	cr_assert_eq(parse_file(f, &c), -EINVAL);
	cr_assert(strstr(err, "not link local"), "%s", err);
	snprintf(f, sizeof(f),
		 "{" FILEB ", %s, \"mmds-config\": {\"network_interfaces\": [\"eth0\"], \"x\": 1}}",
		 nets);
	cr_assert_eq(parse_file(f, &c), -EINVAL);
	cr_assert(strstr(err, "mmds-config"), "%s", err);
}

/* config_json_read_fn: the whole file, as flint's reader. */
static int read_whole(void *ctx, const char *path, size_t max, char **text, size_t *len, char *why,
		      size_t whylen)
{
	FILE *f = fopen(path, "re");
	char *b = malloc(max + 1);

	(void)ctx;
	if (!f || !b) {
		snprintf(why, whylen, "%s", strerror(errno));
		free(b);
		if (f)
			fclose(f);
		return -ENOENT;
	}
	*len = fread(b, 1, max, f);
	b[*len] = '\0';
	fclose(f);
	*text = b;
	return 0;
}

/* A custom CPU template (Firecracker's CpuConfig) in PUT /cpu-config and
 * the config file: numbers in hex, binary or decimal, bitmaps with 'x'
 * and '_', the x86 members only; and what is refused, by name. */
Test(config_json, cpu_config)
{
	static const char body[] =
	    "{\"kvm_capabilities\": [\"121\", \"!56\"], \"vcpu_features\": [],"
	    " \"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0b0\", \"flags\": 0,"
	    "   \"modifiers\": [{\"register\": \"ecx\","
	    "     \"bitmap\": \"0bxxxxxxxx_00xxxxxx_xxxxxxxx_xxxxxxxx\"},"
	    "    {\"register\": \"edx\", \"bitmap\": \"01\"}]},"
	    "  {\"leaf\": \"7\", \"subleaf\": \"0\", \"flags\": 1, \"modifiers\": []}],"
	    " \"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": "
	    "\"0b0000000000000000000000000000000000000000000000000000000000001xx1\"}]}";
	static const struct refusal t[] = {
	    {CPU, "{\"kvm_capabilities\": [\"x\"]}", "kvm_capabilities: 'x' is not a number"},
	    {CPU, "{\"kvm_capabilities\": [121]}", "kvm_capabilities: expected strings"},
	    {CPU, "{\"reg_modifiers\": [{}]}", "reg_modifiers: register modifiers are for aarch64"},
	    {CPU, "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0\", \"flags\": 0}]}",
	     "cpuid_modifiers[0]: missing required field 'modifiers'"},
	    {CPU,
	     "{\"cpuid_modifiers\": [{\"leaf\": \"0xg\", \"subleaf\": \"0\", \"flags\": 0,"
	     " \"modifiers\": []}]}",
	     "cpuid_modifiers[0].leaf: '0xg' is not a number"},
	    {CPU,
	     "{\"cpuid_modifiers\": [{\"leaf\": \"0x100000000\", \"subleaf\": \"0\","
	     " \"flags\": 0, \"modifiers\": []}]}",
	     "is not a number up to 0xffffffff"},
	    {CPU,
	     "{\"cpuid_modifiers\": [{\"leaf\": \"1\", \"subleaf\": \"0\", \"flags\": 0,"
	     " \"modifiers\": [{\"register\": \"eax\", \"bitmap\": "
	     "\"0b1111111111111111111111111111111111\"}]}]}",
	     "is not a bitmap of up to 32 bits"},
	    {CPU,
	     "{\"cpuid_modifiers\": [{\"leaf\": \"1\", \"subleaf\": \"0\", \"flags\": 0,"
	     " \"modifiers\": [{\"register\": \"esi\", \"bitmap\": \"0b1\"}]}]}",
	     "register"},
	    {CPU, "{\"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": \"0b2\"}]}",
	     "msr_modifiers[0].bitmap"},
	    {CPU, "{\"msr_modifiers\": [{\"addr\": \"-1\", \"bitmap\": \"0b1\"}]}",
	     "msr_modifiers[0].addr"},
	};
	struct vmc_cpu_config *c = calloc(1, sizeof(*c));
	struct vm_config v;

	cr_assert_eq(config_json_cpu_config(body, strlen(body), c, err, sizeof(err)), 0, "%s", err);
	cr_assert(c->enabled);
	cr_assert_eq(c->ncpuid, 2);
	cr_assert_eq(c->cpuid[0].leaf, 1);
	cr_assert_eq(c->cpuid[0].regs, (1u << 2) | (1u << 3));
	cr_assert_eq(c->cpuid[0].mask[2], 3u << 22);
	cr_assert_eq(c->cpuid[0].value[2], 0);
	cr_assert_eq(c->cpuid[0].mask[3], 3u, "a short bitmap: the bits above are x");
	cr_assert_eq(c->cpuid[0].value[3], 1u);
	cr_assert_eq(c->ncap, 2);
	cr_assert(c->cap[0].cap == 121 && !c->cap[0].remove);
	cr_assert(c->cap[1].cap == 56 && c->cap[1].remove);
	cr_assert_eq(c->cpuid[1].leaf, 7);
	cr_assert_eq(c->cpuid[1].flags, 1);
	cr_assert_eq(c->cpuid[1].regs, 0);
	cr_assert_eq(c->nmsr, 1);
	cr_assert_eq(c->msr[0].addr, 0x10a);
	cr_assert_eq(c->msr[0].mask, ~0ull & ~6ull);
	cr_assert_eq(c->msr[0].value, 9);
	check_refusals(t, ARRAY_SIZE(t));

	/* Through GET /vm/config and back, as a config file. */
	vm_config_init(&v);
	v.boot.kernel_image_path = strdup("/k");
	vm_config_set_cpu_config(&v, c);
	round_trip(&v);
	vm_config_free(&v);

	/* Firecracker's config file names a template file. */
	char path[] = "/tmp/test_cpu_config.XXXXXX", file[512];
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	close(fd);
	snprintf(file, sizeof(file), "{" FILEB ", \"cpu-config\": \"%s\"}", path);
	cr_assert_eq(
	    config_json_parse_file_read(file, strlen(file), &v, read_whole, NULL, err, sizeof(err)),
	    0, "%s", err);
	cr_assert(v.cpu_config.enabled);
	cr_assert_eq(v.cpu_config.ncpuid, 2);
	vm_config_free(&v);
	cr_assert_eq(parse_file(file, &v), -EINVAL, "no reader: no file read");
	ERR_HAS("a template file cannot be read here");
	unlink(path);
	cr_assert_eq(
	    config_json_parse_file_read(file, strlen(file), &v, read_whole, NULL, err, sizeof(err)),
	    -EINVAL);
	ERR_HAS("cpu-config: ");
	ERR_HAS(": No such file or directory");
	cr_assert_eq(parse_file("{" FILEB ", \"cpu-config\": 3}", &v), -EINVAL);
	ERR_HAS("cpu-config: expected a template file's path or a template, got an integer");
	free(c);
}

/* The balloon in a config file, checked against its machine's memory
 * (given before or after it in the file). */
Test(config_json, balloon_section)
{
	static const struct refusal t[] = {
	    {FILE_, "{" FILEB ", \"balloon\": {\"amount_mib\": 129, \"deflate_on_oom\": true}}",
	     "amount_mib: 129 MiB is more than the guest's memory (128 MiB)"},
	    {FILE_, "{" FILEB ", \"balloon\": {\"amount_mib\": 1}}", "deflate_on_oom"},
	    {FILE_, "{" FILEB ", \"balloon\": {\"amount_mib\": -1, \"deflate_on_oom\": true}}",
	     "amount_mib"},
	};
	struct vm_config c;

	check_refusals(t, ARRAY_SIZE(t));
	cr_assert_eq(parse_file("{\"balloon\": {\"amount_mib\": 200, \"deflate_on_oom\": false, "
				"\"stats_polling_interval_s\": 2}, " FILEB
				", \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 256}}",
				&c),
		     0, "%s", err);
	cr_assert(c.balloon.enabled);
	cr_assert_eq(c.balloon.amount_mib, 200);
	cr_assert_not(c.balloon.deflate_on_oom);
	cr_assert_eq(c.balloon.stats_polling_interval_s, 2);
	cr_assert_not(c.balloon.free_page_hinting);
	vm_config_free(&c);
}

Test(config_json, drive_ids_path_and_body)
{
	static const char body[] = "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", "
				   "\"is_root_device\": true}";
	struct vmc_drive d;
	struct vmc_drive_patch p;
	struct vmc_net n;
	struct vmc_net_patch np;

	cr_assert_eq(config_json_drive("scratch", body, strlen(body), &d, err, sizeof(err)),
		     -EINVAL);
	ERR_HAS("drive_id 'rootfs' in the body does not match 'scratch' in the path");
	cr_assert_null(d.drive_id, "nothing left to free");
	/* The path's id is checked as Firecracker checks it, before the body. */
	cr_assert_eq(config_json_drive("root-fs", body, strlen(body), &d, err, sizeof(err)),
		     -EINVAL);
	ERR_HAS("may hold only letters, digits and underscores");
	cr_assert_eq(config_json_drive("", body, strlen(body), &d, err, sizeof(err)), -EINVAL);
	ERR_HAS("must not be empty");
	cr_assert_eq(config_json_drive("rootfs", body, strlen(body), &d, err, sizeof(err)), 0);
	vmc_drive_free(&d);

	static const char patch[] = "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/new\"}";
	cr_assert_eq(config_json_drive_patch("other", patch, strlen(patch), &p, err, sizeof(err)),
		     -EINVAL);
	ERR_HAS("drive_id 'rootfs' in the body does not match 'other' in the path");

	static const char nb[] = "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}";
	cr_assert_eq(config_json_net("eth1", nb, strlen(nb), &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("iface_id 'eth0' in the body does not match 'eth1' in the path");
	static const char npb[] = "{\"iface_id\": \"eth0\"}";
	cr_assert_eq(config_json_net_patch("eth1", npb, strlen(npb), &np, err, sizeof(err)),
		     -EINVAL);
	ERR_HAS("does not match 'eth1' in the path");
	cr_assert_eq(config_json_net_patch("eth0", npb, strlen(npb), &np, err, sizeof(err)), 0);
	vmc_net_patch_free(&np);

	/* A config file's ids are not path ids: Firecracker takes any. */
	cr_assert_eq(parse(FILE_,
			   "{\"boot-source\": {" BOOTB "}, \"drives\": [{\"drive_id\": "
			   "\"root-fs\", \"is_root_device\": true, \"path_on_host\": \"/r\"}]}"),
		     0, "%s", err);
}

Test(config_json, patch_bodies_update_only_what_they_name)
{
	struct vm_config c;
	struct vmc_machine_patch mp;
	struct vmc_drive_patch dp;
	struct vmc_net_patch np;

	cr_assert_eq(parse_file(full_file, &c), 0, "%s", err);

	static const char m1[] = "{\"mem_size_mib\": 2048, \"cpu_template\": null}";
	cr_assert_eq(config_json_machine_patch(m1, strlen(m1), &mp, err, sizeof(err)), 0);
	cr_assert(mp.has_mem_size_mib && !mp.has_vcpu_count && !mp.has_cpu_template);
	cr_assert_eq(vm_config_patch_machine(&c, &mp, err, sizeof(err)), 0);
	cr_assert_eq(c.machine.mem_size_mib, 2048);
	cr_assert_eq(c.machine.vcpu_count, 2);

	/* Checked with what it keeps: 2 vCPUs, then 3, then SMT refused. */
	static const char m2[] = "{\"vcpu_count\": 3}";
	cr_assert_eq(config_json_machine_patch(m2, strlen(m2), &mp, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_patch_machine(&c, &mp, err, sizeof(err)), 0);
	static const char m3[] = "{\"smt\": true}";
	cr_assert_eq(config_json_machine_patch(m3, strlen(m3), &mp, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_patch_machine(&c, &mp, err, sizeof(err)), -EINVAL);
	ERR_HAS("with smt enabled");
	static const char m4[] = "{}";
	cr_assert_eq(config_json_machine_patch(m4, strlen(m4), &mp, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_patch_machine(&c, &mp, err, sizeof(err)), -EINVAL);
	ERR_HAS("nothing to change");

	/* A new image for rootfs, its bandwidth limited; scratch's buckets:
	 * bandwidth removed (size 0), ops untouched. */
	static const char d1[] = "{\"drive_id\": \"rootfs\", \"path_on_host\": \"new.ext4\", "
				 "\"rate_limiter\": {\"bandwidth\": {\"size\": 5000, "
				 "\"refill_time\": 10}}}";
	cr_assert_eq(config_json_drive_patch("rootfs", d1, strlen(d1), &dp, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_patch_drive(&c, &dp, err, sizeof(err)), 0);
	vmc_drive_patch_free(&dp);
	cr_assert_str_eq(c.drives[0].path_on_host, "new.ext4");
	cr_assert_eq(c.drives[0].rate_limiter.bandwidth.size, 5000);
	cr_assert_eq(c.drives[0].rate_limiter.ops.size, 0);
	static const char d2[] = "{\"drive_id\": \"scratch\", \"rate_limiter\": {\"bandwidth\": "
				 "{\"size\": 0, \"refill_time\": 0}}}";
	cr_assert_eq(config_json_drive_patch("scratch", d2, strlen(d2), &dp, err, sizeof(err)), 0);
	cr_assert(dp.rate_limiter.has_bandwidth && !dp.rate_limiter.has_ops);
	cr_assert_eq(vm_config_patch_drive(&c, &dp, err, sizeof(err)), 0);
	vmc_drive_patch_free(&dp);
	cr_assert_str_eq(c.drives[1].path_on_host, "scratch.ext4");
	cr_assert_eq(c.drives[1].rate_limiter.bandwidth.size, 0);
	cr_assert_eq(c.drives[1].rate_limiter.ops.size, 1000);
	cr_assert_eq(c.drives[1].rate_limiter.ops.one_time_burst, 100);

	static const char n1[] = "{\"iface_id\": \"net1\", \"tx_rate_limiter\": {\"bandwidth\": "
				 "{\"size\": 7, \"refill_time\": 7}}}";
	cr_assert_eq(config_json_net_patch("net1", n1, strlen(n1), &np, err, sizeof(err)), 0);
	cr_assert_eq(vm_config_patch_net(&c, &np, err, sizeof(err)), 0);
	vmc_net_patch_free(&np);
	cr_assert_eq(c.nets[0].tx_rate_limiter.bandwidth.size, 7);
	cr_assert_eq(c.nets[0].tx_rate_limiter.ops.size, 500, "kept");
	cr_assert_eq(c.nets[0].rx_rate_limiter.bandwidth.size, 1048576, "kept");
	vm_config_free(&c);
}

/* encode(c) parses back to c, and encoding that gives the same text. */
static void round_trip(const struct vm_config *c)
{
	struct vm_config back;
	char *a = config_json_encode(c, false), *b, *pretty;

	cr_assert_not_null(a);
	cr_assert_eq(parse_file(a, &back), 0, "%s: %s", err, a);
	cr_assert(vm_config_equal(c, &back), "changed by the trip: %s", a);
	b = config_json_encode(&back, false);
	cr_assert_str_eq(a, b);
	pretty = config_json_encode(c, true);
	vm_config_free(&back);
	cr_assert_eq(parse_file(pretty, &back), 0, "%s", err);
	cr_assert(vm_config_equal(c, &back));
	vm_config_free(&back);
	free(a);
	free(b);
	free(pretty);
}

Test(config_json, round_trip)
{
	struct vm_config c;
	struct vmc_serial s;
	static const char sb[] = "{\"serial_out_path\": \"/tmp/serial.log\", "
				 "\"rate_limiter\": {\"size\": 4096, \"refill_time\": 1000}}";

	cr_assert_eq(parse_file(full_file, &c), 0, "%s", err);
	round_trip(&c);

	/* Everything else flint keeps: templates, huge pages, partuuid,
	 * vhost-user, flint_direct, mtu, vsock_id, logger module, serial. */
	c.machine.cpu_template = VMC_CPU_TEMPLATE_T2S;
	c.machine.huge_pages = VMC_HUGE_PAGES_2M;
	c.machine.smt = true;
	c.machine.track_dirty_pages = true;
	c.drives[0].partuuid = strdup("0eaa91a0-01");
	c.drives[1].direct = true;
	c.nets[0].mtu = 9000;
	c.vsock.vsock_id = strdup("vsock0");
	c.logger.module = strdup("api_server::request");
	c.logger.level = VMC_LOG_OFF;
	c.boot.initrd_path = strdup("initrd.img");
	struct vmc_drive d = {.drive_id = strdup("vhost"),
			      .socket = strdup("/run/vhost.sock"),
			      .cache_type = VMC_CACHE_WRITEBACK};
	cr_assert_eq(vm_config_put_drive(&c, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(config_json_serial(sb, strlen(sb), &s, err, sizeof(err)), 0, "%s", err);
	vm_config_set_serial(&c, &s);
	c.balloon = (struct vmc_balloon){.enabled = true,
					 .amount_mib = 100,
					 .deflate_on_oom = true,
					 .stats_polling_interval_s = 7,
					 .free_page_reporting = true};
	c.mmds = (struct vmc_mmds){
	    .enabled = true, .v2 = true, .imds_compat = true, .ipv4 = htonl(0xa9fe0102)};
	c.nets[c.nnets - 1].mmds = true;
	c.memory_hotplug = (struct vmc_memory_hotplug){
	    .enabled = true, .total_size_mib = 4096, .slot_size_mib = 512, .block_size_mib = 8};
	round_trip(&c);

	/* GET /vm/config shows what Firecracker's does: no logger, metrics
	 * or serial kept; the rest as the snapshot's encoding has it. */
	char *api = config_json_encode_api(&c), *all = config_json_encode(&c, false);
	json_t *ga = json_loads(api, 0, NULL), *gall = json_loads(all, 0, NULL);
	cr_assert_not_null(ga);
	cr_assert(json_is_object(json_object_get(gall, "logger")));
	cr_assert(json_is_object(json_object_get(gall, "metrics")));
	cr_assert(json_is_object(json_object_get(gall, "serial")));
	cr_assert(json_is_null(json_object_get(ga, "logger")), "%s", api);
	cr_assert(json_is_null(json_object_get(ga, "metrics")), "%s", api);
	cr_assert_null(json_object_get(ga, "serial"), "%s", api);
	json_object_del(gall, "serial");
	json_object_set_new(gall, "logger", json_null());
	json_object_set_new(gall, "metrics", json_null());
	cr_assert(json_equal(ga, gall), "%s", api);
	json_decref(ga);
	json_decref(gall);
	free(api);
	free(all);
	vm_config_free(&c);

	/* The defaults alone, with a kernel. */
	vm_config_init(&c);
	c.boot.kernel_image_path = strdup("/k");
	round_trip(&c);

	/* A path JSON cannot carry is no encoding rather than a wrong one. */
	free(c.boot.kernel_image_path);
	c.boot.kernel_image_path = strdup("/boot/vmlinuz-\xff");
	cr_assert_null(config_json_encode(&c, false));
	vm_config_free(&c);
}

Test(config_json, logger_levels_and_defaults)
{
	struct vmc_logger l;
	static const char *const bodies[] = {"{\"level\": \"warn\"}", "{\"level\": \"WARNING\"}",
					     "{\"level\": \"Warning\"}"};

	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		cr_assert_eq(config_json_logger(bodies[i], strlen(bodies[i]), &l, err, sizeof(err)),
			     0, "%s", err);
		cr_assert_eq(l.level, VMC_LOG_WARNING, "%s", bodies[i]);
		vmc_logger_free(&l);
	}
	cr_assert_eq(config_json_logger("{}", 2, &l, err, sizeof(err)), 0);
	cr_assert(l.enabled);
	cr_assert_eq(l.level, VMC_LOG_INFO, "the swagger's default");
	cr_assert(!l.show_level && !l.show_log_origin);
	cr_assert(!l.has_show_level && !l.has_show_log_origin,
		  "not given: the logger keeps its own");
	cr_assert_null(l.log_path);
	cr_assert_null(l.module);
	vmc_logger_free(&l);
	const char *both = "{\"show_level\": false, \"show_log_origin\": true}";
	cr_assert_eq(config_json_logger(both, strlen(both), &l, err, sizeof(err)), 0);
	cr_assert(l.has_show_level && !l.show_level && l.has_show_log_origin && l.show_log_origin);
	vmc_logger_free(&l);
}

Test(config_json, put_machine_resets_what_it_leaves_out)
{
	struct vmc_machine m;
	static const char b[] = "{\"vcpu_count\": 4, \"mem_size_mib\": 512, \"smt\": true, "
				"\"cpu_template\": \"C3\", \"track_dirty_pages\": true, "
				"\"huge_pages\": \"2M\"}";

	cr_assert_eq(config_json_machine(b, strlen(b), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert(m.smt && m.track_dirty_pages);
	cr_assert_eq(m.cpu_template, VMC_CPU_TEMPLATE_C3);
	cr_assert_eq(m.huge_pages, VMC_HUGE_PAGES_2M);
	static const char b2[] = "{\"vcpu_count\": 4, \"mem_size_mib\": 512}";
	cr_assert_eq(config_json_machine(b2, strlen(b2), &m, err, sizeof(err)), 0);
	cr_assert(!m.smt && !m.track_dirty_pages);
	cr_assert_eq(m.cpu_template, VMC_CPU_TEMPLATE_NONE);
	cr_assert_eq(m.huge_pages, VMC_HUGE_PAGES_NONE);
}

Test(config_json, file_applies_firecrackers_rules)
{
	/* Two root drives. */
	cr_assert_eq(
	    parse(FILE_,
		  "{\"boot-source\": {" BOOTB "}, \"drives\": ["
		  "{\"drive_id\": \"a\", \"is_root_device\": true, \"path_on_host\": \"/a\"},"
		  "{\"drive_id\": \"b\", \"is_root_device\": true, \"path_on_host\": \"/b\"}]}"),
	    -EINVAL);
	ERR_HAS("drives[1]: drive 'b': a root device already exists ('a')");
	/* Two interfaces on one tap. */
	cr_assert_eq(parse(FILE_, "{" FILEB ", \"network-interfaces\": ["
				  "{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\"},"
				  "{\"iface_id\": \"b\", \"host_dev_name\": \"tap0\"}]}"),
		     -EINVAL);
	ERR_HAS("network-interfaces[1]: host_dev_name: 'tap0' is already used by interface 'a'");
	/* A drive given twice: the second replaces the first, as a PUT. */
	struct vm_config c;
	cr_assert_eq(parse_file("{\"boot-source\": {" BOOTB "}, \"drives\": [{" DRV "}, "
				"{\"drive_id\": \"x\", \"is_root_device\": false, "
				"\"path_on_host\": \"/img2\"}]}",
				&c),
		     0, "%s", err);
	cr_assert_eq(c.ndrives, 1);
	cr_assert_str_eq(c.drives[0].path_on_host, "/img2");
	vm_config_free(&c);
}
