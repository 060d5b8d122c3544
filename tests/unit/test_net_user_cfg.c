/* --net user's configuration: the option, its mapping to a vm_config (and
 * the guest's ip= for the first user interface), the configuration's
 * "backend": "user" and its round trip through the JSON a snapshot keeps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cli.h"
#include "config/config_json.h"
#include "config/vm_config.h"
#include "config/vm_config_cli.h"

static char err[256];

Test(net_user_cfg, the_option)
{
	struct net_cfg n;

	cr_assert_eq(cli_parse_net("user", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert(n.user);
	cr_assert_null(n.tap);
	cr_assert_null(n.id);
	cr_assert_eq(cli_parse_net("user,mac=06:00:0a:00:02:0f,id=up", &n, err, sizeof(err)), 0);
	cr_assert(n.user && n.has_mac);
	cr_assert_eq(n.mac[5], 0x0f);
	cr_assert_str_eq(n.id, "up");
	free(n.id);
	cr_assert_eq(cli_parse_net("tap=t0", &n, err, sizeof(err)), 0);
	cr_assert_not(n.user, "tap unchanged");
	free(n.tap);

	static const char *const bad[] = {"user,tap=t0", "tap=t0,user",		  "user=1",
					  "user,user",	 "mac=06:00:00:00:00:01", "users"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(cli_parse_net(bad[i], &n, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_assert_not_null(strstr(err, "--net"), "%s: %s", bad[i], err);
		cr_assert(!n.user && !n.tap, "%s: nothing left", bad[i]);
	}
	cr_assert_eq(cli_parse_net("tap=t0,user", &n, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "one of them"), "%s", err);
}

/* user,fd=N: passt started by flint-jail, its socket inherited as fd N;
 * a tap has none; the number is a descriptor's, 3 or more. It reaches the
 * interface's configuration, and never the JSON a snapshot keeps. */
Test(net_user_cfg, an_inherited_passt)
{
	struct net_cfg n;

	cr_assert_eq(cli_parse_net("user,fd=5,id=up", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert(n.user);
	cr_assert_eq(n.fd, 5);
	free(n.id);
	cr_assert_eq(cli_parse_net("fd=7,user", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.fd, 7);
	static const char *const bad[] = {
	    "user,fd=2",      "user,fd=x",  "user,fd=",	   "user,fd=-4",
	    "user,fd=5,fd=6", "user,fd=3x", "tap=t0,fd=4", "fd=4"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(cli_parse_net(bad[i], &n, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_assert_not_null(strstr(err, "--net"), "%s: %s", bad[i], err);
		cr_assert(!n.user && !n.tap && !n.fd, "%s: nothing left", bad[i]);
	}
	cr_assert_eq(cli_parse_net("tap=t0,fd=4", &n, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "for user"), "%s", err);

	struct config cfg = {
	    .kernel = "/vmlinux",
	    .mem = 128ULL << 20,
	    .vcpus = 1,
	    .nets = {{.user = true, .fd = 4}, {.user = true}},
	    .nnets = 2,
	};
	struct vm_config c;
	char *enc;

	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.nets[0].fd, 4);
	cr_assert_eq(c.nets[1].fd, 0, "flint starts its passt");
	cr_assert_not_null(enc = config_json_encode(&c, false));
	cr_assert_null(strstr(enc, "\"fd\""), "a snapshot keeps no descriptor: %s", enc);
	free(enc);
	vm_config_free(&c);
}

/* The first user interface's addresses reach the kernel as ip=, named by
 * its place (eth1 after a tap); a second user interface gets none. */
Test(net_user_cfg, maps_with_the_guests_ip)
{
	struct config cfg = {
	    .kernel = "/vmlinux",
	    .mem = 128ULL << 20,
	    .vcpus = 1,
	    .nets = {{.tap = "tap0"}, {.user = true}, {.user = true, .id = "second"}},
	    .nnets = 3,
	    .guest_argv = (char *[]){"true", NULL},
	    .guest_argc = 1,
	};
	struct vm_config c;

	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(c.nets[0].user);
	cr_assert_str_eq(c.nets[0].host_dev_name, "tap0");
	cr_assert(c.nets[1].user);
	cr_assert_null(c.nets[1].host_dev_name);
	cr_assert_str_eq(c.nets[1].iface_id, "net1");
	cr_assert_str_eq(c.nets[2].iface_id, "second");
	cr_assert_str_eq(c.boot.boot_args, DEFAULT_CMDLINE
			 " ip=10.0.2.15::10.0.2.2:255.255.255.0::eth1:off:10.0.2.3 -- true");
	vm_config_free(&c);
}

/* The user's own ip= wins: flint adds none. */
Test(net_user_cfg, an_ip_of_the_users_own)
{
	struct config cfg = {
	    .kernel = "/vmlinux",
	    .append = "quiet ip=dhcp",
	    .mem = 128ULL << 20,
	    .vcpus = 1,
	    .nets = {{.user = true}},
	    .nnets = 1,
	};
	struct vm_config c;

	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.boot.boot_args, DEFAULT_CMDLINE " quiet ip=dhcp");
	vm_config_free(&c);
	/* An ip= after "--" is the command's, not the kernel's. */
	cfg.append = "-- ip=x";
	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(c.boot.boot_args, "ip=10.0.2.15"), "%s", c.boot.boot_args);
	vm_config_free(&c);
	/* noip=1 is not ip=. */
	cfg.append = "noip=1";
	cr_assert_eq(vm_config_from_cli(&c, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(c.boot.boot_args, "ip=10.0.2.15"), "%s", c.boot.boot_args);
	vm_config_free(&c);
}

static const char *json_with(const char *net)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
		 "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], "
		 "\"network-interfaces\": [%s]}",
		 net);
	return buf;
}

/* A snapshot keeps its configuration as JSON: a user interface comes back
 * one, a tap a tap with Firecracker's fields only. */
Test(net_user_cfg, json_round_trip)
{
	struct vm_config c, back;
	const char *j = json_with("{\"iface_id\": \"eth0\", \"backend\": \"user\"}");
	char *enc;

	cr_assert_eq(config_json_parse_file(j, strlen(j), &c, err, sizeof(err)), 0, "%s", err);
	cr_assert(c.nets[0].user);
	cr_assert_null(c.nets[0].host_dev_name);
	cr_assert_not_null(enc = config_json_encode(&c, false));
	cr_assert_not_null(
	    strstr(enc, "\"backend\": \"user\"") ?: strstr(enc, "\"backend\":\"user\""), "%s", enc);
	cr_assert_eq(config_json_parse_file(enc, strlen(enc), &back, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert(vm_config_equal(&c, &back));
	free(enc);
	vm_config_free(&back);
	vm_config_free(&c);

	j = json_with("{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}");
	cr_assert_eq(config_json_parse_file(j, strlen(j), &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(c.nets[0].user);
	cr_assert_not_null(enc = config_json_encode(&c, false));
	cr_assert_null(strstr(enc, "backend"), "%s", enc);
	free(enc);
	vm_config_free(&c);
}

Test(net_user_cfg, json_refusals)
{
	static const char *const bad[] = {
	    "{\"iface_id\": \"eth0\", \"backend\": \"user\", \"host_dev_name\": \"tap0\"}",
	    "{\"iface_id\": \"eth0\", \"backend\": \"slirp\"}",
	    "{\"iface_id\": \"eth0\", \"backend\": \"tap\"}", /* a tap needs its name */
	    "{\"iface_id\": \"eth0\"}",
	};
	struct vm_config c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *j = json_with(bad[i]);
		err[0] = '\0';
		cr_assert_lt(config_json_parse_file(j, strlen(j), &c, err, sizeof(err)), 0, "%s",
			     bad[i]);
		cr_assert(strstr(err, "backend") || strstr(err, "host_dev_name"), "%s: %s", bad[i],
			  err);
	}
}

/* The configuration's "fd" of a user interface (flint-jail's copy of a
 * config file): read, and never written back. */
Test(net_user_cfg, json_fd)
{
	struct vm_config c;
	const char *j = json_with("{\"iface_id\": \"eth0\", \"backend\": \"user\", \"fd\": 5}");
	char *enc;

	cr_assert_eq(config_json_parse_file(j, strlen(j), &c, err, sizeof(err)), 0, "%s", err);
	cr_assert(c.nets[0].user);
	cr_assert_eq(c.nets[0].fd, 5);
	cr_assert_not_null(enc = config_json_encode(&c, false));
	cr_assert_null(strstr(enc, "\"fd\""), "%s", enc);
	free(enc);
	vm_config_free(&c);

	static const char *const bad[] = {
	    "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"fd\": 5}",
	    "{\"iface_id\": \"eth0\", \"backend\": \"user\", \"fd\": 2}",
	    "{\"iface_id\": \"eth0\", \"backend\": \"user\", \"fd\": \"5\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = json_with(bad[i]);
		err[0] = '\0';
		cr_assert_lt(config_json_parse_file(j, strlen(j), &c, err, sizeof(err)), 0, "%s",
			     bad[i]);
		cr_assert_not_null(strstr(err, "fd"), "%s: %s", bad[i], err);
	}

	/* Not through the API: a PUT /network-interfaces body naming one. */
	struct vmc_net n;
	const char *body = "{\"iface_id\": \"eth0\", \"backend\": \"user\", \"fd\": 5}";
	cr_assert_lt(config_json_net("eth0", body, strlen(body), &n, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "not through the API"), "%s", err);
	body = "{\"iface_id\": \"eth0\", \"backend\": \"user\"}";
	cr_assert_eq(config_json_net("eth0", body, strlen(body), &n, err, sizeof(err)), 0, "%s",
		     err);
	vmc_net_free(&n);
}
