#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cli.h"

static enum cli_result parse(struct config *cfg, char *err, int argc, char **argv)
{
	return cli_parse(argc, argv, cfg, err, 256);
}

#define ARGV(...)	     ((char *[]){"flint", __VA_ARGS__, NULL})
#define ARGC(...)	     ((int)(sizeof((char *[]){"flint", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) parse(cfg, err, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

Test(cli, defaults)
{
	struct config c;
	char err[256];
	cr_assert_eq(PARSE(&c, err, "--kernel", "vmlinux"), CLI_RUN);
	cr_assert_str_eq(c.kernel, "vmlinux");
	cr_assert_null(c.initrd);
	cr_assert_eq(c.mem, 128ULL << 20);
	cr_assert_eq(c.vcpus, 1);
	cr_assert_eq(c.console, CONSOLE_STDIO);
	cr_assert_eq(c.guest_argc, 0);
}

Test(cli, all_options_and_guest_words)
{
	struct config c;
	char err[256];
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--initrd", "i", "--mem", "1G", "--vcpus", "4",
			   "--console", "none", "--stats", "--append", "x=1", "--", "sh", "-c",
			   "echo hi"),
		     CLI_RUN);
	cr_assert_eq(c.mem, 1ULL << 30);
	cr_assert_eq(c.vcpus, 4);
	cr_assert_eq(c.console, CONSOLE_NONE);
	cr_assert(c.stats);
	cr_assert_eq(c.guest_argc, 3);
	cr_assert_str_eq(c.guest_argv[2], "echo hi");
}

Test(cli, errors_name_the_option)
{
	struct config c;
	char err[256];
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--vcpus", "0"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--vcpus"));
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--vcpus", "33"), CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--vcpus", "2x"), CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--mem", "lots"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--mem"));
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--console", "tty"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--console"));
	cr_assert_eq(PARSE(&c, err, "--frobnicate"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--frobnicate"));
	cr_assert_eq(PARSE(&c, err, "--kernel"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--kernel needs a value"));
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--cmdline", "--", "sh", "-c", "x"), CLI_ERROR,
		     "--cmdline's value forgotten");
	cr_assert_not_null(strstr(err, "--cmdline needs a value (it took '--'"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--mem", "64M"), CLI_ERROR, "no kernel");
	cr_assert_not_null(strstr(err, "no kernel"));
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "stray"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "stray"));
}

Test(cli, sizes)
{
	uint64_t b;
	cr_assert_eq(cli_parse_size("256", &b), 0);
	cr_assert_eq(b, 256ULL << 20);
	cr_assert_eq(cli_parse_size("2G", &b), 0);
	cr_assert_eq(b, 2ULL << 30);
	cr_assert_eq(cli_parse_size("65536k", &b), 0);
	cr_assert_eq(b, 64ULL << 20);
	cr_assert_eq(cli_parse_size("512MiB", &b), 0);
	cr_assert_eq(b, 512ULL << 20);
	cr_assert_eq(cli_parse_size("8M", &b), -EINVAL, "below 16 MiB");
	cr_assert_eq(cli_parse_size("", &b), -EINVAL);
	cr_assert_eq(cli_parse_size("-1", &b), -EINVAL);
	cr_assert_eq(cli_parse_size("1T", &b), 0, "the largest, as the messages name it");
	cr_assert_eq(b, 1ULL << 40);
	cr_assert_eq(cli_parse_size("2T", &b), -EINVAL, "over 1 TiB");
	cr_assert_eq(cli_parse_size("99999999999999999999G", &b), -EINVAL);
	cr_assert_eq(cli_parse_size("2048G", &b), -EINVAL, "over 1 TiB");
	cr_assert_eq(cli_parse_size("16386K", &b), -EINVAL, "not whole pages");
	cr_assert_eq(cli_parse_size("16Mx", &b), -EINVAL);
}

Test(cli, guest_cmdline_quotes_words_with_spaces)
{
	struct config c;
	char err[256];
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--append", "foo=1", "--", "sh", "-c",
			   "echo hi; exit 3", ""),
		     CLI_RUN);
	char *s = cli_guest_cmdline(&c, NULL, 2048, err, sizeof(err));
	cr_assert_not_null(s);
	cr_assert_str_eq(s, DEFAULT_CMDLINE " foo=1 -- sh -c \"echo hi; exit 3\" \"\"");
	free(s);
}

Test(cli, guest_cmdline_replacement_and_limits)
{
	struct config c;
	char err[256];
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--cmdline", "console=ttyS0"), CLI_RUN);
	char *s = cli_guest_cmdline(&c, NULL, 2048, err, sizeof(err));
	cr_assert_str_eq(s, "console=ttyS0");
	free(s);
	cr_assert_null(cli_guest_cmdline(&c, NULL, 8, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "too long"));
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--", "echo", "a\"b"), CLI_RUN);
	cr_assert_null(cli_guest_cmdline(&c, NULL, 2048, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "double quote"));
}

Test(cli, drives)
{
	struct config c;
	char err[256];
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--drive", "path=/a.img", "--drive",
			   "path=b.img,ro,id=data,direct"),
		     CLI_RUN);
	cr_assert_eq(c.ndrives, 2);
	cr_assert_str_eq(c.drives[0].path, "/a.img");
	cr_assert_null(c.drives[0].id);
	cr_assert_not(c.drives[0].read_only);
	cr_assert_str_eq(c.drives[1].path, "b.img");
	cr_assert_str_eq(c.drives[1].id, "data");
	cr_assert(c.drives[1].read_only);
	cr_assert(c.drives[1].direct);
	cli_config_free(&c);
	cr_assert_eq(c.ndrives, 0);
}

Test(cli, bad_drives_say_what_is_wrong)
{
	struct drive_cfg d;
	char err[256];
	cr_assert_eq(cli_parse_drive("ro", &d, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "no path"));
	cr_assert_eq(cli_parse_drive("path=", &d, err, sizeof(err)), -EINVAL);
	cr_assert_eq(cli_parse_drive("path=a,rw", &d, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "'rw'"));
	cr_assert_eq(cli_parse_drive("path=a,ro=1", &d, err, sizeof(err)), -EINVAL);
	cr_assert_eq(cli_parse_drive("path=a,path=b", &d, err, sizeof(err)), -EINVAL);
	cr_assert_eq(cli_parse_drive("path=a,id=123456789012345678901", &d, err, sizeof(err)),
		     -EINVAL);
	cr_assert_not_null(strstr(err, "20 bytes"));
	cr_assert_null(d.path, "nothing left allocated on error");
	struct config c;
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--drive", "path=a,bogus"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "bogus"));
}

Test(cli, device_arguments_go_before_the_guest_words)
{
	struct config c;
	char err[256];
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--cmdline", "console=ttyS0", "--", "true"),
		     CLI_RUN);
	char *s =
	    cli_guest_cmdline(&c, "virtio_mmio.device=4K@0xd0002000:5", 2048, err, sizeof(err));
	cr_assert_str_eq(s, "console=ttyS0 virtio_mmio.device=4K@0xd0002000:5 -- true");
	free(s);
}

Test(cli, net_specs)
{
	struct net_cfg n;
	char err[256];

	cr_assert_eq(cli_parse_net("tap=tap0", &n, err, sizeof(err)), 0);
	cr_assert_str_eq(n.tap, "tap0");
	cr_assert_not(n.has_mac);
	cr_assert_null(n.id);
	free(n.tap);
	cr_assert_eq(cli_parse_net("tap=t1,mac=06:00:AC:10:00:02,id=uplink", &n, err, sizeof(err)),
		     0);
	cr_assert(n.has_mac);
	cr_assert_eq(memcmp(n.mac, "\x06\x00\xac\x10\x00\x02", 6), 0);
	cr_assert_str_eq(n.id, "uplink");
	free(n.tap);
	free(n.id);

	static const char *const bad[] = {
	    "",				      /* no tap */
	    "mac=06:00:00:00:00:01",	      /* no tap */
	    "tap=",			      /* empty name */
	    "tap=a-name-over-15-bytes",	      /* IFNAMSIZ */
	    "tap=../x",			      /* not a name */
	    "tap=t,mac=01:00:00:00:00:01",    /* multicast */
	    "tap=t,mac=06:00:00:00:00",	      /* short */
	    "tap=t,mac=06:00:00:00:00:0g",    /* not hex */
	    "tap=t,mac=06:00:00:00:00:01:02", /* long */
	    "tap=t,mac=6:0:0:0:0:1:2:3:4:5:6",
	    "tap=t,tap=u",    /* twice */
	    "tap=t,speed=10", /* unknown */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(cli_parse_net(bad[i], &n, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_assert_not_null(strstr(err, "--net"), "%s: %s", bad[i], err);
		cr_assert_null(n.tap);
	}
}

Test(cli, vsock_spec)
{
	struct vsock_cfg v;
	char err[256];

	cr_assert_eq(cli_parse_vsock("cid=3,uds=/run/v.sock", &v, err, sizeof(err)), 0);
	cr_assert(v.enabled);
	cr_assert_eq(v.cid, 3);
	cr_assert_str_eq(v.uds, "/run/v.sock");
	free(v.uds);
	cr_assert_eq(cli_parse_vsock("uds=x,cid=4294967294", &v, err, sizeof(err)), 0);
	cr_assert_eq(v.cid, 4294967294u);
	free(v.uds);

	static const char *const bad[] = {
	    "cid=3",		     /* no uds */
	    "uds=/x",		     /* no cid */
	    "cid=2,uds=/x",	     /* the host's CID */
	    "cid=4294967295,uds=/x", /* VMADDR_CID_ANY */
	    "cid=-3,uds=/x",
	    "cid=3x,uds=/x",
	    "cid=3,uds=",
	    "cid=3,uds=/x,port=1",
	    "cid=3,uds=/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/"
	    "0123456789/0123456789/0123456789",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(cli_parse_vsock(bad[i], &v, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_assert_not_null(strstr(err, "--vsock"), "%s: %s", bad[i], err);
		cr_assert_not(v.enabled);
	}
}

/* Two options naming one inherited descriptor: refused, naming both
 * (two passt interfaces would each read half of one stream). */
Test(cli, one_descriptor_is_one_options)
{
	struct config cfg;
	char err[256];

	cr_assert_eq(
	    PARSE(&cfg, err, "run", "--net", "user,fd=5", "--net", "user,fd=5", "--", "true"),
	    CLI_ERROR);
	cr_assert(strstr(err, "--net user,fd 5: that descriptor is --net user,fd's too"), "%s",
		  err);
	cr_assert_eq(
	    PARSE(&cfg, err, "run", "--status-fd", "5", "--net", "user,fd=5", "--", "true"),
	    CLI_ERROR);
	cr_assert(strstr(err, "--net user,fd 5: that descriptor is --status-fd's too"), "%s", err);
	cr_assert_eq(PARSE(&cfg, err, "run", "--status-fd", "5", "--net", "user,fd=6", "--net",
			   "user", "--net", "user", "--", "true"),
		     CLI_RUN, "%s", err);
	cli_config_free(&cfg);
}

Test(cli, net_and_vsock_options)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--net", "tap=a", "--net", "tap=b", "--vsock",
			   "cid=5,uds=/v"),
		     CLI_RUN);
	cr_assert_eq(c.nnets, 2);
	cr_assert_str_eq(c.nets[1].tap, "b");
	cr_assert_eq(c.vsock.cid, 5);
	cli_config_free(&c);
	cr_assert_eq(
	    PARSE(&c, err, "--kernel", "k", "--vsock", "cid=5,uds=/v", "--vsock", "cid=6,uds=/w"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "at most one"));
	cli_config_free(&c);
}

Test(cli, run_subcommand)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--timeout", "30", "--timings", "--", "sh", "-c", "x"),
		     CLI_RUN);
	cr_assert(c.run);
	cr_assert(c.timings);
	cr_assert_eq(c.timeout_s, 30);
	cr_assert_null(c.kernel, "the caller fills in the default kernel");
	cr_assert_eq(c.console, CONSOLE_NONE, "stdout belongs to the command");
	cr_assert_eq(c.guest_argc, 3);
	cr_assert_str_eq(c.guest_argv[0], "sh");

	/* The command goes to the agent, not onto the kernel command line. */
	char *line = cli_guest_cmdline(&c, NULL, 2048, err, sizeof(err));
	cr_assert_not_null(line);
	cr_assert_null(strstr(line, "--"), "%s", line);
	free(line);

	cr_assert_eq(PARSE(&c, err, "run"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "no command"));
	cr_assert_eq(PARSE(&c, err, "run", "--timeout", "0", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--timeout"));
	cr_assert_eq(PARSE(&c, err, "run", "--timeout", "1.5", "--", "true"), CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--timeout", "3"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "flint run"));
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--rootfs", "r"), CLI_ERROR);
}

/* Firecracker's process options: with neither --kernel nor --config-file
 * flint serves the API; --config-file describes the whole machine;
 * --no-api needs it; --id and --level are checked. */
Test(cli, firecracker_process_options)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "--api-sock", "/tmp/a.sock", "--id", "vm-1_a", "--level",
			   "debug", "--log-path", "/tmp/log", "--metrics-path", "/tmp/m"),
		     CLI_RUN, "%s", err);
	cr_assert_str_eq(c.api_sock, "/tmp/a.sock");
	cr_assert_str_eq(c.id, "vm-1_a");
	cr_assert(c.has_level);
	cr_assert_eq(c.level, VMC_LOG_DEBUG);
	cr_assert_str_eq(c.log_path, "/tmp/log");
	cr_assert_str_eq(c.metrics_path, "/tmp/m");
	char *none[] = {"flint", NULL};
	cr_assert_eq(parse(&c, err, 1, none), CLI_RUN,
		     "nothing at all: the API on its default socket");
	cr_assert_null(c.api_sock);
	cr_assert_eq(PARSE(&c, err, "--config-file", "vm.json", "--no-api"), CLI_RUN, "%s", err);
	cr_assert_str_eq(c.config_file, "vm.json");
	cr_assert(c.no_api);
	cr_assert_eq(PARSE(&c, err, "--level", "Warn"), CLI_RUN);
	cr_assert_eq(c.level, VMC_LOG_WARNING);

	cr_assert_eq(PARSE(&c, err, "--no-api"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--no-api needs --config-file"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--config-file", "vm.json", "--kernel", "k"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--config-file describes the whole machine"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--config-file", "vm.json", "--vcpus", "2"), CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--id", "a/b"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--id a/b"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--level", "loud"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--level loud"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--api-sock", ""), CLI_ERROR);
}

/* What Firecracker's jailer passes to the program it execs, and its other
 * process options flint takes. */
Test(cli, firecracker_jailer_arguments)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "--id", "j1", "--start-time-us", "123456789",
			   "--start-time-cpu-us", "42", "--parent-cpu-time-us", "7", "--boot-timer",
			   "--module", "core/vcpu", "--api-sock", "/run/a.sock"),
		     CLI_RUN, "%s", err);
	cr_assert(c.has_start_time);
	cr_assert_eq(c.start_time_us, 123456789);
	cr_assert_eq(c.start_time_cpu_us, 42);
	cr_assert_eq(c.parent_cpu_time_us, 7);
	cr_assert_str_eq(c.module, "core/vcpu");
	cr_assert_eq(PARSE(&c, err, "--api-sock", "/run/a.sock"), CLI_RUN, "%s", err);
	cr_assert_not(c.has_start_time);
	cr_assert_null(c.module);

	cr_assert_eq(PARSE(&c, err, "--start-time-us", "-5"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--start-time-us -5: expected microseconds"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--parent-cpu-time-us", "12ms"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--parent-cpu-time-us 12ms"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--start-time-cpu-us", ""), CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--start-time-us", "99999999999999999999999"), CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--module", ""), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--module"), "%s", err);

	cr_assert_eq(PARSE(&c, err, "--http-api-max-payload-size", "100000"), CLI_RUN, "%s", err);
	cr_assert_eq(c.http_max_body, 100000);
	cr_assert_eq(PARSE(&c, err, "--api-sock", "/a"), CLI_RUN, "%s", err);
	cr_assert_eq(c.http_max_body, 0, "unset: the API's default");
	cr_assert_eq(PARSE(&c, err, "--http-api-max-payload-size", "0"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--http-api-max-payload-size 0: expected bytes, 1 to"), "%s",
			   err);
	cr_assert_eq(PARSE(&c, err, "--http-api-max-payload-size", "67108865"), CLI_ERROR);
}

/* Firecracker's --no-seccomp and snapshot-version options; the ones for what
 * flint does not have are refused, saying why. */
Test(cli, firecracker_seccomp_and_snapshot_options)
{
	struct config c;
	char err[256];

	/* The other order than test_seccomp's. */
	cr_assert_eq(PARSE(&c, err, "--seccomp-log", "--no-seccomp"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--no-seccomp: there are no filters"), "%s", err);

	cr_assert_eq(PARSE(&c, err, "--snapshot-version"), CLI_RUN, "%s", err);
	cr_assert(c.snapshot_version);
	cr_assert_eq(PARSE(&c, err, "--describe-snapshot", "vm.snap"), CLI_RUN, "%s", err);
	cr_assert_str_eq(c.describe_snapshot, "vm.snap");
	cr_assert_not(c.snapshot_version);

	cr_assert_eq(PARSE(&c, err, "--seccomp-filter", "f.bpf"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--seccomp-filter: flint's seccomp filters are built in"),
			   "%s", err);
	cr_assert_eq(PARSE(&c, err, "--enable-pci"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--enable-pci: flint's devices are on virtio-mmio"), "%s",
			   err);
	cr_assert_eq(PARSE(&c, err, "--metadata", "m.json", "--mmds-size-limit", "100"), CLI_RUN,
		     "%s", err);
	cr_assert_str_eq(c.metadata, "m.json");
	cr_assert_eq(c.mmds_size_limit, 100);
	cr_assert_eq(PARSE(&c, err, "--mmds-size-limit", "0"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--mmds-size-limit 0: expected bytes"), "%s", err);
}

/* --restore and its options (PUT /snapshot/load's, from the command line). */
Test(cli, restore_options)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--mem-diff", "d",
			   "--track-dirty-pages", "--keep-clock", "--net-override", "eth0=tap3",
			   "--vsock-override", "/v.sock", "--workset", "w", "--record-workset",
			   "r"),
		     CLI_RUN, "%s", err);
	cr_assert_str_eq(c.restore, "s");
	cr_assert_str_eq(c.mem_file, "m");
	cr_assert_str_eq(c.mem_diff, "d");
	cr_assert(c.track_dirty_pages && c.keep_clock && !c.restore_paused);
	cr_assert_eq(c.n_net_override, 1);
	cr_assert_str_eq(c.net_override[0], "eth0=tap3");
	cr_assert_str_eq(c.vsock_override, "/v.sock");
	cr_assert_str_eq(c.workset, "w");
	cr_assert_str_eq(c.record_workset, "r");
	cr_assert_eq(
	    PARSE(&c, err, "--restore", "s", "--uffd-sock", "u", "--paused", "--api-sock", "a"),
	    CLI_RUN, "%s", err);
	cr_assert(c.restore_paused);

	cr_assert_eq(PARSE(&c, err, "--restore", "s"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "exactly one of --mem-file"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--uffd-sock", "u"),
		     CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--mem-file", "m"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "need --restore"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--kernel", "k"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "the snapshot describes the whole machine"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--uffd-sock", "u", "--mem-diff", "d"),
		     CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--paused"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--paused needs --api-sock"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--net-override", "eth0"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "IFACE=TAP"), "%s", err);
}

/* --drive-override ID=PATH: repeatable, with --restore only (flint and
 * flint run), each ID once; the value kept as given. */
Test(cli, drive_override)
{
	struct config c;
	char err[256];
	char long_id[VMC_MAX_ID + 8];

	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--drive-override",
			   "rootfs=/j/rootfs.ext4", "--drive-override=data=/d=x.img"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.n_drive_override, 2);
	cr_assert_str_eq(c.drive_override[0], "rootfs=/j/rootfs.ext4");
	cr_assert_str_eq(c.drive_override[1], "data=/d=x.img", "the path may hold '='");
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--drive-override",
			   "drive0=/r.ext4", "--", "true"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.n_drive_override, 1);
	cr_assert_str_eq(c.drive_override[0], "drive0=/r.ext4");

	static const char *const malformed[] = {"rootfs", "=/x", "rootfs=", ""};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--drive-override",
				   (char *)malformed[i]),
			     CLI_ERROR, "'%s'", malformed[i]);
		cr_assert_not_null(strstr(err, "expected ID=PATH"), "%s", err);
	}
	memset(long_id, 'a', VMC_MAX_ID + 1);
	snprintf(long_id + VMC_MAX_ID + 1, 7, "=/x");
	cr_assert_eq(
	    PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--drive-override", long_id),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "expected ID=PATH"), "%s", err);
	snprintf(long_id + VMC_MAX_ID, 7, "=/x");
	cr_assert_eq(
	    PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--drive-override", long_id),
	    CLI_RUN, "an id of %d bytes: %s", VMC_MAX_ID, err);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--drive-override", "d=/a",
			   "--drive-override", "d=/b"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "drive 'd' given twice"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--drive-override", "d=/a",
			   "--drive-override", "dd=/b"),
		     CLI_RUN, "'d' and 'dd' are two ids: %s", err);
	/* A snapshot option: --restore only. */
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--drive-override", "d=/a"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "need --restore"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--drive-override", "d=/a", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "need --restore"), "%s", err);
	cr_assert_eq(
	    PARSE(&c, err, "run", "--attach", "/v", "--drive-override", "d=/a", "--", "true"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "cannot be combined with --attach"), "%s", err);
}

/* flint run --save-snapshot: both files, a command or none. */
Test(cli, run_save_snapshot)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m"), CLI_RUN,
		     "%s", err);
	cr_assert(c.run);
	cr_assert_str_eq(c.save_snapshot, "s");
	cr_assert_str_eq(c.save_mem, "m");
	cr_assert_eq(c.guest_argc, 0, "no command: save, then stop");
	cr_assert_eq(PARSE(&c, err, "run", "--rootfs", "r", "--mem", "256M", "--save-snapshot", "s",
			   "--save-mem", "m", "--timeout", "5", "--", "sh", "-c", "x"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.guest_argc, 3);
	cr_assert_eq(c.mem, 256ULL << 20, "a booted machine's options go with it");

	cr_assert_eq(PARSE(&c, err, "run", "--save-snapshot", "s", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--save-mem FILE go together"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--save-mem", "m", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "go together"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--save-snapshot"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "needs a value"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--save-snapshot", "s", "--save-mem", "m"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--save-snapshot is an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--save-mem", "m"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--save-mem is an option of flint run"), "%s", err);
}

/* flint run --restore: a command, the snapshot instead of the machine
 * options, and the snapshot options flint run can honour. */
Test(cli, run_restore)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--workset", "w",
			   "--timeout", "9", "--", "sh", "-c", "echo hi"),
		     CLI_RUN, "%s", err);
	cr_assert(c.run);
	cr_assert_str_eq(c.restore, "s");
	cr_assert_str_eq(c.mem_file, "m");
	cr_assert_str_eq(c.workset, "w");
	cr_assert_eq(c.timeout_s, 9);
	cr_assert_eq(c.guest_argc, 3);
	cr_assert_eq(c.console, CONSOLE_NONE);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--uffd-sock", "u", "--keep-clock",
			   "--net-override", "eth0=tap1", "--record-workset", "r", "--timings",
			   "--", "true"),
		     CLI_RUN, "%s", err);
	cr_assert_str_eq(c.uffd_sock, "u");
	cr_assert(c.keep_clock && c.timings);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--mem-diff", "d",
			   "--", "true"),
		     CLI_RUN, "%s", err);

	/* A command it must have. */
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "flint run --restore: no command"), "%s", err);
	/* The snapshot is the machine. */
	static const char *const machine[][2] = {
	    {"--kernel", "k"}, {"--rootfs", "r"}, {"--mem", "256M"},  {"--vcpus", "2"},
	    {"--append", "a"}, {"--initrd", "i"}, {"--cmdline", "c"}, {"--config-file", "f"},
	};
	for (size_t i = 0; i < sizeof(machine) / sizeof(machine[0]); i++) {
		cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m",
				   (char *)machine[i][0], (char *)machine[i][1], "--", "true"),
			     CLI_ERROR, "%s", machine[i][0]);
		cr_assert_not_null(strstr(err, "the snapshot describes the whole machine"),
				   "%s: %s", machine[i][0], err);
	}
	/* One memory backend; the diff over a file. */
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "exactly one of --mem-file"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--uffd-sock", "u",
			   "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "exactly one of --mem-file"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--uffd-sock", "u", "--mem-diff", "d",
			   "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--mem-diff needs --mem-file"), "%s", err);
	/* flint run resumes the VM itself, on its own vsock socket. */
	cr_assert_eq(
	    PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--paused", "--", "true"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "--paused is not an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--vsock-override",
			   "/v", "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--vsock-override is not an option of flint run"), "%s",
			   err);
	/* Not both ends at once, and no snapshot option without --restore. */
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--save-snapshot",
			   "s2", "--save-mem", "m2", "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--restore and --save-snapshot cannot be combined"), "%s",
			   err);
	cr_assert_eq(PARSE(&c, err, "run", "--mem-file", "m", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "need --restore"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--workset", "w", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "need --restore"), "%s", err);
}

/* flint run --restore --wait-fd N: a warm VM waits, restored paused, for
 * one byte on an inherited fd. N is 3 or more (0-2 are the command's), a
 * plain number, and only with --restore. */
Test(cli, run_restore_wait_fd)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--wait-fd", "3",
			   "--timeout", "5", "--", "cat"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.wait_fd, 3);
	cr_assert_str_eq(c.restore, "s");
	cr_assert_eq(c.timeout_s, 5);
	cr_assert_eq(c.guest_argc, 1);
	cr_assert_eq(PARSE(&c, err, "run", "--wait-fd", "1048575", "--restore", "s", "--uffd-sock",
			   "u", "--", "true"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.wait_fd, 1048575);
	/* None unless asked. */
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--", "true"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.wait_fd, 0);

	static const char *const bad_fds[] = {
	    "0", "1", "2", "-3", "", "3x", "x", "1048576", "99999999999999999999", " 4"};
	for (size_t i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
		cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--wait-fd",
				   (char *)bad_fds[i], "--", "true"),
			     CLI_ERROR, "--wait-fd '%s' taken", bad_fds[i]);
		cr_assert_not_null(strstr(err, "--wait-fd"), "'%s': %s", bad_fds[i], err);
		cr_assert_not_null(strstr(err, "expected a file descriptor, 3 to 1048575"),
				   "'%s': %s", bad_fds[i], err);
	}
	/* Only a restored VM waits. */
	cr_assert_eq(PARSE(&c, err, "run", "--wait-fd", "3", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--wait-fd needs --restore"), "%s", err);
	cr_assert_eq(
	    PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m", "--wait-fd", "3"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "--wait-fd needs --restore"), "%s", err);
	/* A command it still needs. */
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--wait-fd", "3"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "no command"), "%s", err);
	/* An option of flint run, named by its name, not its value. */
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--wait-fd", "3"),
		     CLI_ERROR);
	cr_assert_str_eq(err, "--wait-fd is an option of flint run");
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--wait-fd"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "needs a value"), "%s", err);
}

/* flint run --status-fd N: the status line's fd, 3 or more, not the
 * --wait-fd one, and only with a command (boot, restore or attach). */
Test(cli, run_status_fd)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--wait-fd", "3",
			   "--status-fd", "4", "--", "cat"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.status_fd, 4);
	cr_assert_eq(PARSE(&c, err, "run", "--status-fd", "5", "--", "true"), CLI_RUN, "%s", err);
	cr_assert_eq(c.status_fd, 5);
	cr_assert_eq(
	    PARSE(&c, err, "run", "--attach", "/tmp/v.sock", "--status-fd", "3", "--", "true"),
	    CLI_RUN, "%s", err);
	cr_assert_eq(c.status_fd, 3);
	cr_assert_eq(PARSE(&c, err, "run", "--", "true"), CLI_RUN, "%s", err);
	cr_assert_eq(c.status_fd, 0);
	cr_assert_eq(PARSE(&c, err, "run", "--status-fd", "2", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--status-fd 2: expected a file descriptor, 3 to"), "%s",
			   err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--wait-fd", "3",
			   "--status-fd", "3", "--", "cat"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--status-fd 3: that descriptor is --wait-fd's too"), "%s",
			   err);
	cr_assert_eq(
	    PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m", "--status-fd", "3"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "there is no command"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--status-fd", "3"), CLI_ERROR);
	cr_assert_str_eq(err, "--status-fd is an option of flint run");
}

Test(cli, help_names_wait_fd, .init = cr_redirect_stdout)
{
	struct config c;
	char err[256];
	char buf[16384];
	size_t n;
	FILE *f;

	cr_assert_eq(PARSE(&c, err, "run", "--help"), CLI_EXIT_OK);
	fflush(stdout);
	f = cr_get_redirected_stdout();
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "--wait-fd N [options] -- COMMAND"), "%s", buf);
	cr_assert_not_null(
	    strstr(buf, "  --wait-fd N        with --restore: restore the VM paused"), "%s", buf);
}

Test(cli, help_names_env_workdir_save_after_attach, .init = cr_redirect_stdout)
{
	struct config c;
	char err[256];
	char buf[16384];
	size_t n;
	FILE *f;

	cr_assert_eq(PARSE(&c, err, "run", "--help"), CLI_EXIT_OK);
	fflush(stdout);
	f = cr_get_redirected_stdout();
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "  --env NAME=VALUE   set NAME"), "%s", buf);
	cr_assert_not_null(strstr(buf, "  --workdir DIR      the command's working"), "%s", buf);
	cr_assert_not_null(strstr(buf, "  --save-after       with --save-snapshot"), "%s", buf);
	cr_assert_not_null(strstr(buf, "  --attach UDS       no VM of its own"), "%s", buf);
	cr_assert_not_null(strstr(buf, "flint run --attach UDS [options] -- COMMAND"), "%s", buf);
}

/* --help names the other commands main() dispatches to, and the bounds
 * the parser enforces (README.md's tables say the same). */
Test(cli, help_names_serve_bench_and_bounds, .init = cr_redirect_stdout)
{
	struct config c;
	char err[256];
	char buf[16384];
	size_t n;
	FILE *f;

	cr_assert_eq(PARSE(&c, err, "--help"), CLI_EXIT_OK);
	fflush(stdout);
	f = cr_get_redirected_stdout();
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	cr_assert_lt(n, sizeof(buf) - 1);
	cr_assert_not_null(strstr(buf, "       flint serve --listen ADDR:PORT [options]"), "%s",
			   buf);
	cr_assert_not_null(strstr(buf, "       flint bench boot|restore|run|serve [options]"), "%s",
			   buf);
	/* What vm_config_from_cli takes: whole MiB, not any 4K multiple. */
	cr_assert_not_null(strstr(buf, "16M to 1024G, in whole MiB"), "%s", buf);
	cr_assert_null(strstr(buf, "multiple of 4K"), "%s", buf);
	cr_assert_not_null(strstr(buf, "user[,mac=MAC][,id=NAME]\n                     [,fd=N]"),
			   "%s", buf);
	cr_assert_not_null(strstr(buf, "--wait-fd or --stats\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "seconds (1 to 604800)"), "%s", buf);
}

/* flint run --env NAME=VALUE (repeatable) and --workdir DIR: what the
 * agent's request carries besides the command. */
Test(cli, run_env_and_workdir)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--env", "FOO=bar baz", "--env=_x1=", "--env",
			   "PATH=/opt/bin:/bin", "--env", "E=a=b", "--workdir", "/srv/app", "--",
			   "sh", "-c", "echo $FOO"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.nenv, 4);
	cr_assert_str_eq(c.env[0], "FOO=bar baz");
	cr_assert_str_eq(c.env[1], "_x1=");
	cr_assert_str_eq(c.env[2], "PATH=/opt/bin:/bin");
	cr_assert_str_eq(c.env[3], "E=a=b");
	cr_assert_null(c.env[4], "NULL-terminated");
	cr_assert_str_eq(c.workdir, "/srv/app");
	cr_assert_eq(c.guest_argc, 3);
	cli_config_free(&c);
	cr_assert_null(c.env);
	cr_assert_eq(c.nenv, 0);
	cli_config_free(&c); /* twice is fine */

	/* None unless asked. */
	cr_assert_eq(PARSE(&c, err, "run", "--", "true"), CLI_RUN, "%s", err);
	cr_assert_null(c.env);
	cr_assert_eq(c.nenv, 0);
	cr_assert_null(c.workdir);

	/* With --restore and with --save-snapshot and a command too. */
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--env", "A=1",
			   "--workdir", "/tmp", "--", "true"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.nenv, 1);
	cli_config_free(&c);
	cr_assert_eq(PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m", "--env",
			   "A=1", "--", "true"),
		     CLI_RUN, "%s", err);
	cli_config_free(&c);

	static const char *const bad_env[] = {"FOO", "=x",   "1A=x", "A-B=x", "A B=x",
					      "",    "a.b=", "=",    "É=x"};
	for (size_t i = 0; i < sizeof(bad_env) / sizeof(bad_env[0]); i++) {
		cr_assert_eq(PARSE(&c, err, "run", "--env", (char *)bad_env[i], "--", "true"),
			     CLI_ERROR, "--env '%s' taken", bad_env[i]);
		cr_assert_not_null(strstr(err, "--env"), "'%s': %s", bad_env[i], err);
		cr_assert_not_null(strstr(err, "expected NAME=VALUE"), "'%s': %s", bad_env[i], err);
		cr_assert_null(c.env, "freed on the error");
	}
	/* A later error frees the entries taken so far. */
	cr_assert_eq(PARSE(&c, err, "run", "--env", "A=1", "--vcpus", "0", "--", "true"),
		     CLI_ERROR);
	cr_assert_null(c.env);

	static const char *const bad_dirs[] = {"", "tmp", "./x", "~/x"};
	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++) {
		cr_assert_eq(PARSE(&c, err, "run", "--workdir", (char *)bad_dirs[i], "--", "true"),
			     CLI_ERROR, "--workdir '%s' taken", bad_dirs[i]);
		cr_assert_not_null(strstr(err, "--workdir"), "'%s': %s", bad_dirs[i], err);
		cr_assert_not_null(strstr(err, "expected an absolute path"), "'%s': %s",
				   bad_dirs[i], err);
	}

	/* Options of flint run only, by name. */
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--env", "A=1"), CLI_ERROR);
	cr_assert_str_eq(err, "--env is an option of flint run");
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--workdir", "/"), CLI_ERROR);
	cr_assert_str_eq(err, "--workdir is an option of flint run");
	/* They are the command's: none, none of them. */
	cr_assert_eq(
	    PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m", "--env", "A=1"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "--env is for the command, and there is none"), "%s", err);
	cr_assert_eq(
	    PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m", "--workdir", "/"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "--workdir is for the command"), "%s", err);
}

/* The command, --env and --workdir go in one agent request of at most
 * AGENT_REQUEST_MAX bytes, each string under AGENT_STR_MAX: refused at
 * once, by name. */
Test(cli, run_request_size)
{
	struct config c;
	char err[256];
	static char big[12][100 * 1024];
	char *argv[40];
	int n = 0;

	for (int i = 0; i < 12; i++) {
		memset(big[i], 'v', sizeof(big[i]) - 1);
		memcpy(big[i], "V_=", 3); /* V_A, V_B...: one entry each */
		big[i][1] = (char)('A' + i);
		big[i][sizeof(big[i]) - 1] = '\0';
	}
	argv[n++] = "flint";
	argv[n++] = "run";
	for (int i = 0; i < 10; i++) {
		argv[n++] = "--env";
		argv[n++] = big[i];
	}
	argv[n++] = "--";
	argv[n++] = "true";
	argv[n] = NULL;
	/* 10 x 100 KiB: under 1 MiB. */
	cr_assert_eq(parse(&c, err, n, argv), CLI_RUN, "%s", err);
	cr_assert_eq(c.nenv, 10);
	cli_config_free(&c);
	/* 11: over. */
	n -= 2;
	argv[n++] = "--env";
	argv[n++] = big[10];
	argv[n++] = "--";
	argv[n++] = "true";
	argv[n] = NULL;
	cr_assert_eq(parse(&c, err, n, argv), CLI_ERROR);
	cr_assert_not_null(strstr(err, "the command's words, --env entries and --workdir take"),
			   "%s", err);
	cr_assert_not_null(strstr(err, "at most 1048576"), "%s", err);
	cr_assert_null(c.env);

	/* One string over 128 KiB. */
	static char huge[200 * 1024];
	memset(huge, 'h', sizeof(huge) - 1);
	memcpy(huge, "HUGE=", 5);
	cr_assert_eq(PARSE(&c, err, "run", "--env", huge, "--", "true"), CLI_ERROR);
	cr_assert_str_eq(err, "--env HUGE: longer than the guest agent takes (131071 bytes)");
	huge[0] = '/';
	cr_assert_eq(PARSE(&c, err, "run", "--workdir", huge, "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--workdir: longer than the guest agent takes"), "%s", err);
}

/* flint run --save-snapshot S --save-mem M --save-after -- CMD: prepare,
 * then save. */
Test(cli, run_save_after)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m",
			   "--save-after", "--env", "A=1", "--workdir", "/tmp", "--", "sh", "-c",
			   "touch /tmp/x"),
		     CLI_RUN, "%s", err);
	cr_assert(c.save_after);
	cr_assert_str_eq(c.save_snapshot, "s");
	cr_assert_eq(c.guest_argc, 3);
	cli_config_free(&c);
	cr_assert_eq(PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m", "--", "true"),
		     CLI_RUN, "%s", err);
	cr_assert(!c.save_after, "not unless asked");

	/* Without a command, or without the files. */
	cr_assert_eq(
	    PARSE(&c, err, "run", "--save-snapshot", "s", "--save-mem", "m", "--save-after"),
	    CLI_ERROR);
	cr_assert_not_null(strstr(err, "--save-after needs --save-snapshot FILE, --save-mem FILE "
				       "and a command"),
			   "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--save-after", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--save-after needs"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--save-after",
			   "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--save-after needs"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--save-after"), CLI_ERROR);
	cr_assert_str_eq(err, "--save-after is an option of flint run");
}

/* flint run --attach UDS: a running VM's agent; no machine, restore or
 * save options, a command needed. */
Test(cli, run_attach)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--attach", "/run/fn/vm1.vsock", "--timeout", "7",
			   "--env", "A=1", "--workdir", "/tmp", "--timings", "--", "cat", "-"),
		     CLI_RUN, "%s", err);
	cr_assert_str_eq(c.attach, "/run/fn/vm1.vsock");
	cr_assert_eq(c.timeout_s, 7);
	cr_assert_eq(c.nenv, 1);
	cr_assert_str_eq(c.workdir, "/tmp");
	cr_assert(c.timings);
	cr_assert_eq(c.guest_argc, 2);
	cli_config_free(&c);
	cr_assert_eq(PARSE(&c, err, "run", "--", "true"), CLI_RUN, "%s", err);
	cr_assert_null(c.attach);

	static const char *const refused[][4] = {
	    {"--kernel", "k", NULL},
	    {"--rootfs", "r", NULL},
	    {"--mem", "256", NULL},
	    {"--vcpus", "2", NULL},
	    {"--drive", "path=d", NULL},
	    {"--vsock", "cid=3,uds=/tmp/v", NULL},
	    {"--append", "quiet", NULL},
	    {"--restore", "s", "--mem-file", "m"},
	    {"--mem-file", "m", NULL},
	    {"--workset", "w", NULL},
	    {"--save-snapshot", "s", "--save-mem", "m"},
	    {"--save-after", NULL},
	    {"--wait-fd", "3", NULL},
	    {"--stats", NULL},
	    {"--vsock-override", "/tmp/v", NULL},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char *argv[12] = {"flint", "run", "--attach", "/tmp/u"};
		int n = 4;

		for (int j = 0; j < 4 && refused[i][j]; j++)
			argv[n++] = (char *)refused[i][j];
		argv[n++] = "--";
		argv[n++] = "true";
		argv[n] = NULL;
		cr_assert_eq(parse(&c, err, n, argv), CLI_ERROR, "--attach with %s taken",
			     refused[i][0]);
		cr_assert(strstr(err, "--attach") || strstr(err, "--vsock-override"), "%s: %s",
			  refused[i][0], err);
	}
	cr_assert_eq(PARSE(&c, err, "run", "--attach", "/tmp/u", "--kernel", "k", "--", "true"),
		     CLI_ERROR);
	cr_assert_str_eq(err, "flint run --attach: the VM is running already: machine options "
			      "(--kernel, --rootfs, --mem, ...) cannot be combined with --attach");
	cr_assert_eq(PARSE(&c, err, "run", "--attach", "/tmp/u", "--restore", "s", "--mem-file",
			   "m", "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--restore and the snapshot options cannot be combined "
				       "with --attach"),
			   "%s", err);

	/* A command it needs; a socket path that fits sun_path. */
	cr_assert_eq(PARSE(&c, err, "run", "--attach", "/tmp/u"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "flint run --attach: no command"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--attach", "", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--attach : expected the path"), "%s", err);
	char long_path[120];
	memset(long_path, 'p', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	cr_assert_eq(PARSE(&c, err, "run", "--attach", long_path, "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "1 to 107 bytes"), "%s", err);
	long_path[107] = '\0';
	cr_assert_eq(PARSE(&c, err, "run", "--attach", long_path, "--", "true"), CLI_RUN, "%s",
		     err);
	cr_assert_eq(PARSE(&c, err, "--attach", "/tmp/u"), CLI_ERROR);
	cr_assert_str_eq(err, "--attach is an option of flint run");
}

/* --control-fd: only beside --restore (a VM that can be reset to its
 * snapshot), an fd number from 3, not an option of flint run. */
Test(cli, control_fd)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--control-fd", "3"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.control_fd, 3);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--uffd-sock", "u", "--control-fd", "17"),
		     CLI_RUN, "%s", err);
	cr_assert_eq(c.control_fd, 17);
	cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m"), CLI_RUN, "%s", err);
	cr_assert_eq(c.control_fd, 0);

	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--control-fd", "3"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--control-fd needs --restore"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--control-fd", "3"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--control-fd needs --restore"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--control-fd", "3",
			   "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--control-fd is an option of flint --restore"), "%s", err);
	static const char *const bad[] = {"2", "0", "-1", "x", "3x", "", "99999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(PARSE(&c, err, "--restore", "s", "--mem-file", "m", "--control-fd",
				   (char *)bad[i]),
			     CLI_ERROR, "--control-fd '%s'", bad[i]);
		cr_assert_not_null(strstr(err, "--control-fd"), "%s", err);
		cr_assert_not_null(strstr(err, "expected a file descriptor"), "%s", err);
	}
}

/* --config-file, --api-sock and --no-api are flint's, and so are the
 * metrics file, the API's body cap and MMDS: flint run, which would ignore
 * them, refuses them, naming the option. The logger's options it takes. */
Test(cli, run_refuses_config_file_and_api)
{
	struct config c;
	char err[256];

	cr_assert_eq(PARSE(&c, err, "run", "--config-file", "vm.json", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--config-file is not an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--api-sock", "/tmp/a.sock", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--api-sock is not an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--no-api", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--no-api is not an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--config-file",
			   "vm.json", "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "the snapshot describes the whole machine"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--api-sock", "a",
			   "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--api-sock is not an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--metrics-path", "/tmp/m", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--metrics-path is not an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--metadata", "md.json", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--metadata is not an option of flint run"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--mmds-size-limit", "4096", "--", "true"), CLI_ERROR);
	cr_assert_not_null(strstr(err, "--mmds-size-limit is not an option of flint run"), "%s",
			   err);
	cr_assert_eq(PARSE(&c, err, "run", "--http-api-max-payload-size", "4096", "--", "true"),
		     CLI_ERROR);
	cr_assert_not_null(strstr(err, "--http-api-max-payload-size is not an option of flint run"),
			   "%s", err);
	cr_assert_eq(PARSE(&c, err, "run", "--level", "debug", "--log-path", "/tmp/l",
			   "--show-level", "--show-log-origin", "--module", "virtio", "--", "true"),
		     CLI_RUN, "%s", err);
	cli_config_free(&c);
	/* what flint-jail passes on to flint run stays accepted */
	cr_assert_eq(PARSE(&c, err, "run", "--id", "vm-7", "--start-time-us", "1", "--", "true"),
		     CLI_RUN, "%s", err);
	cli_config_free(&c);
}
