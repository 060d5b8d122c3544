/* flint run's --copy-in, --copy-out, --env-file and --user options
 * (runner/config/cli.c): the HOST:GUEST split and the guest path's checks,
 * the user's numbers, and the environment files' lines. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/proto.h"
#include "config/cli.h"

static void ok_copy(const char *s, bool out, const char *host, const char *guest, bool contents)
{
	struct copy_cfg c;
	char err[256];

	cr_assert_eq(cli_parse_copy(s, out, &c, err, sizeof(err)), 0, "%s: %s", s, err);
	cr_assert_str_eq(c.host, host);
	cr_assert_str_eq(c.guest, guest);
	cr_assert_eq(c.contents, contents, "%s", s);
	free(c.host);
	free(c.guest);
}

static void bad_copy(const char *s, bool out, const char *needle)
{
	struct copy_cfg c;
	char err[256] = "";

	cr_assert_eq(cli_parse_copy(s, out, &c, err, sizeof(err)), -EINVAL, "%s taken", s);
	cr_assert(strstr(err, needle), "%s: '%s' lacks '%s'", s, err, needle);
	cr_assert_null(c.host);
	cr_assert_null(c.guest);
}

Test(cli_copy, split_and_contents)
{
	ok_copy("src:/work", false, "src", "/work", false);
	ok_copy("a:b/c:/w/x", false, "a:b/c", "/w/x", false); /* the last ':' */
	ok_copy("src/.:/w/", false, "src", "/w/", true);
	ok_copy(".:/w", false, ".", "/w", false);
	ok_copy("../up:/", false, "../up", "/", false); /* the host's own paths */
	ok_copy("/w/out:res", true, "res", "/w/out", false);
	ok_copy("/w/out:a:b", true, "a:b", "/w/out", false); /* the first ':' */
	ok_copy("/w/out/.:res", true, "res", "/w/out", true);
}

Test(cli_copy, refusals_name_the_option)
{
	bad_copy("nocolon", false, "--copy-in nocolon: expected HOST:GUEST");
	bad_copy(":/w", false, "expected HOST:GUEST");
	bad_copy("src:", false, "expected HOST:GUEST");
	bad_copy("/w:", true, "--copy-out /w:: expected GUEST:HOST");
	bad_copy("src:w", false, "is not absolute");
	bad_copy("w:res", true, "is not absolute");
	bad_copy("src:/w/../etc", false, "'..'");
	bad_copy("src:/w/./x", false, "'..'");
	bad_copy("src:/..", false, "'..'");
	bad_copy("/w/../../etc/shadow:res", true, "'..'");
	bad_copy("/:res", true, "not / itself");
	bad_copy("/.:res", true, "not / itself");
}

Test(cli_copy, user)
{
	uint32_t u, g;

	cr_assert_eq(cli_parse_user("1000", &u, &g), 0);
	cr_assert_eq(u, 1000);
	cr_assert_eq(g, AGENT_GID_DEFAULT);
	cr_assert_eq(cli_parse_user("0:0", &u, &g), 0);
	cr_assert(u == 0 && g == 0);
	cr_assert_eq(cli_parse_user("65534:100", &u, &g), 0);
	cr_assert(u == 65534 && g == 100);
	cr_assert_eq(cli_parse_user("4294967294", &u, &g), 0);
	for (const char *const *s =
		 (const char *const[]){"", "root", "-1", "1:", ":1", "1:2:3", "4294967295",
				       "1:4294967295", "1x", " 1", NULL};
	     *s; s++)
		cr_assert_eq(cli_parse_user(*s, &u, &g), -EINVAL, "'%s' taken", *s);
}

static enum cli_result parse(char **argv, struct config *cfg, char *err)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	return cli_parse(argc, argv, cfg, err, 256);
}

Test(cli_copy, options_parsed_and_need_a_command)
{
	struct config cfg;
	char err[256];

	cr_assert_eq(
	    parse((char *[]){"flint", "run", "--copy-in", "a:/w", "--copy-in", "b/.:/w",
			     "--copy-out", "/w/r:out", "--user", "1000:1000", "--", "true", NULL},
		  &cfg, err),
	    CLI_RUN, "%s", err);
	cr_assert_eq(cfg.n_copy_in, 2);
	cr_assert_eq(cfg.n_copy_out, 1);
	cr_assert(cfg.copy_in[1].contents);
	cr_assert_str_eq(cfg.copy_out[0].host, "out");
	cr_assert(cfg.user && cfg.uid == 1000 && cfg.gid == 1000);
	cli_config_free(&cfg);
	cr_assert_eq(parse((char *[]){"flint", "run", "--save-snapshot", "s", "--save-mem", "m",
				      "--copy-in", "a:/w", NULL},
			   &cfg, err),
		     CLI_ERROR);
	cr_assert(strstr(err, "--copy-in is for the command"), "%s", err);
	cli_config_free(&cfg);
	cr_assert_eq(
	    parse((char *[]){"flint", "--kernel", "k", "--copy-out", "/a:b", NULL}, &cfg, err),
	    CLI_ERROR);
	cr_assert(strstr(err, "--copy-out is an option of flint run"), "%s", err);
	cli_config_free(&cfg);
	cr_assert_eq(
	    parse((char *[]){"flint", "run", "--user", "bob", "--", "id", NULL}, &cfg, err),
	    CLI_ERROR);
	cr_assert(strstr(err, "--user bob"), "%s", err);
	cli_config_free(&cfg);
}

/* --copy-timeout (whole seconds, as --timeout) and --copy-out-limit (a
 * size, as --scratch); 0 where not given: copy.h's defaults. */
Test(cli_copy, copy_timeout_and_out_limit)
{
	struct config cfg;
	char err[256];

	cr_assert_eq(parse((char *[]){"flint", "run", "--copy-out", "/w/r:out", "--", "true", NULL},
			   &cfg, err),
		     CLI_RUN, "%s", err);
	cr_assert_eq(cfg.copy_timeout_s, 0);
	cr_assert_eq(cfg.copy_out_limit, 0);
	cli_config_free(&cfg);
	cr_assert_eq(parse((char *[]){"flint", "run", "--copy-out", "/w/r:out", "--copy-timeout",
				      "30", "--copy-out-limit", "512M", "--", "true", NULL},
			   &cfg, err),
		     CLI_RUN, "%s", err);
	cr_assert_eq(cfg.copy_timeout_s, 30);
	cr_assert_eq(cfg.copy_out_limit, 512ULL << 20);
	cli_config_free(&cfg);
	cr_assert_eq(parse((char *[]){"flint", "run", "--copy-timeout", "604800",
				      "--copy-out-limit", "1G", "--", "true", NULL},
			   &cfg, err),
		     CLI_RUN, "%s", err);
	cr_assert_eq(cfg.copy_timeout_s, 604800);
	cr_assert_eq(cfg.copy_out_limit, 1ULL << 30);
	cli_config_free(&cfg);
	const char *bad_timeouts[] = {"0", "604801", "1.5", "-3", "10s", ""};
	for (unsigned i = 0; i < sizeof(bad_timeouts) / sizeof(*bad_timeouts); i++) {
		cr_assert_eq(parse((char *[]){"flint", "run", "--copy-timeout",
					      (char *)bad_timeouts[i], "--", "true", NULL},
				   &cfg, err),
			     CLI_ERROR, "%s", bad_timeouts[i]);
		cr_assert(strstr(err, "--copy-timeout") && strstr(err, "1 to 604800"), "%s", err);
		cli_config_free(&cfg);
	}
	const char *bad_limits[] = {"0", "1K", "2T", "12X", "lots", ""};
	for (unsigned i = 0; i < sizeof(bad_limits) / sizeof(*bad_limits); i++) {
		cr_assert_eq(parse((char *[]){"flint", "run", "--copy-out-limit",
					      (char *)bad_limits[i], "--", "true", NULL},
				   &cfg, err),
			     CLI_ERROR, "%s", bad_limits[i]);
		cr_assert(strstr(err, "--copy-out-limit") && strstr(err, "16M to 1T"), "%s", err);
		cli_config_free(&cfg);
	}
	cr_assert_eq(
	    parse((char *[]){"flint", "--kernel", "k", "--copy-timeout", "5", NULL}, &cfg, err),
	    CLI_ERROR);
	cr_assert(strstr(err, "--copy-timeout is an option of flint run"), "%s", err);
	cli_config_free(&cfg);
}

static char *env_file(const char *text)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/flint-unit-env-%d", getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

Test(cli_copy, env_file_lines_and_precedence)
{
	struct config cfg;
	char err[256];
	char *path =
	    env_file("# a comment\nA=1\n\n  \t\nB=two words = here\nA=3\nC=\nD=from file\n");

	cr_assert_eq(parse((char *[]){"flint", "run", "--env", "D=from option", "--env-file", path,
				      "--", "env", NULL},
			   &cfg, err),
		     CLI_RUN, "%s", err);
	cr_assert_eq(cli_load_env_files(&cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cfg.nenv, 4);
	cr_assert_str_eq(cfg.env[0], "B=two words = here");
	cr_assert_str_eq(cfg.env[1], "A=3"); /* the later line */
	cr_assert_str_eq(cfg.env[2], "C=");
	cr_assert_str_eq(cfg.env[3], "D=from option"); /* --env wins */
	cr_assert_null(cfg.env[4]);
	cli_config_free(&cfg);
	unlink(path);
}

/* As Docker reads one: a byte order mark, CRs of a file saved on
 * Windows and a line's leading blanks left out, an indented comment
 * skipped, a value's quotes kept; and one --env name twice, the last. */
Test(cli_copy, env_file_as_docker_reads_one)
{
	struct config cfg;
	char err[256];
	char *path = env_file("\xef\xbb\xbf"
			      "A=1\r\n  # indented\r\n\tB=\"x y\"\r\nC=3");

	cr_assert_eq(parse((char *[]){"flint", "run", "--env", "E=1", "--env", "F=2", "--env",
				      "E=3", "--env-file", path, "--", "env", NULL},
			   &cfg, err),
		     CLI_RUN, "%s", err);
	cr_assert_eq(cli_load_env_files(&cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cfg.nenv, 5);
	cr_assert_str_eq(cfg.env[0], "A=1");
	cr_assert_str_eq(cfg.env[1], "B=\"x y\"");
	cr_assert_str_eq(cfg.env[2], "C=3");
	cr_assert_str_eq(cfg.env[3], "E=3", "the last --env E");
	cr_assert_str_eq(cfg.env[4], "F=2");
	cli_config_free(&cfg);
	unlink(path);
}

/* An --env-file value the agent cannot take is refused when the file is
 * read, naming the file, the line and the variable; and all of them with
 * the command over one request, too. */
Test(cli_copy, env_file_too_long)
{
	static char text[1000000];
	struct config cfg;
	char err[512];
	char *path;

	memcpy(text, "OK=1\nHUGE=", 10);
	memset(text + 10, 'x', 200000);
	path = env_file(text);
	cr_assert_eq(
	    parse((char *[]){"flint", "run", "--env-file", path, "--", "env", NULL}, &cfg, err),
	    CLI_RUN, "%s", err);
	cr_assert_eq(cli_load_env_files(&cfg, err, sizeof(err)), -E2BIG);
	cr_assert(strstr(err, "line 2: HUGE is longer than the guest agent takes"), "%s", err);
	cr_assert(strstr(err, path), "%s", err);
	cli_config_free(&cfg);
	/* 9 values of 100 kB in the file, 2 more given with --env: each
	 * fits, not all of them */
	static char x[100010], y[100010];
	memset(text, 0, sizeof(text));
	for (int i = 0, at = 0; i < 9; i++) {
		at += sprintf(text + at, "V%d=", i);
		memset(text + at, 'v', 100000);
		at += 100000;
		text[at++] = '\n';
	}
	memcpy(x, "X=", 2);
	memset(x + 2, 'x', 100000);
	memcpy(y, "Y=", 2);
	memset(y + 2, 'y', 100000);
	path = env_file(text);
	cr_assert_eq(parse((char *[]){"flint", "run", "--env", x, "--env", y, "--env-file", path,
				      "--", "env", NULL},
			   &cfg, err),
		     CLI_RUN, "%s", err);
	cr_assert_eq(cli_load_env_files(&cfg, err, sizeof(err)), -E2BIG);
	cr_assert(strstr(err, "the guest agent takes at most"), "%s", err);
	cli_config_free(&cfg);
	unlink(path);
}

/* An empty command name is refused as the options are read. */
Test(cli_copy, empty_command_name)
{
	struct config cfg;
	char err[256];

	cr_assert_eq(parse((char *[]){"flint", "run", "--", "", NULL}, &cfg, err), CLI_ERROR);
	cr_assert(strstr(err, "the command's name is empty"), "%s", err);
	cli_config_free(&cfg);
}

Test(cli_copy, env_file_refusals_name_file_and_line)
{
	struct config cfg;
	char err[256];
	char *path = env_file("A=1\nexport B=2\n");

	cr_assert_eq(
	    parse((char *[]){"flint", "run", "--env-file", path, "--", "env", NULL}, &cfg, err),
	    CLI_RUN, "%s", err);
	cr_assert_lt(cli_load_env_files(&cfg, err, sizeof(err)), 0);
	cr_assert(strstr(err, "line 2: expected NAME=VALUE"), "%s", err);
	cr_assert(strstr(err, path), "%s", err);
	cli_config_free(&cfg);
	path = env_file("NOVALUE\n");
	cr_assert_eq(
	    parse((char *[]){"flint", "run", "--env-file", path, "--", "env", NULL}, &cfg, err),
	    CLI_RUN);
	cr_assert_lt(cli_load_env_files(&cfg, err, sizeof(err)), 0);
	cr_assert(strstr(err, "line 1"), "%s", err);
	cli_config_free(&cfg);
	unlink(path);
	cr_assert_eq(
	    parse((char *[]){"flint", "run", "--env-file", "/nonexistent/env", "--", "env", NULL},
		  &cfg, err),
	    CLI_RUN);
	cr_assert_lt(cli_load_env_files(&cfg, err, sizeof(err)), 0);
	cr_assert(strstr(err, "--env-file /nonexistent/env: No such file"), "%s", err);
	cli_config_free(&cfg);
	/* a directory opens; its read is refused, and said so */
	cr_assert_eq(
	    parse((char *[]){"flint", "run", "--env-file", "/tmp", "--", "env", NULL}, &cfg, err),
	    CLI_RUN);
	cr_assert_lt(cli_load_env_files(&cfg, err, sizeof(err)), 0);
	cr_assert(strstr(err, "--env-file /tmp: Is a directory"), "%s", err);
	cli_config_free(&cfg);
}
