/* flint run --image PATH and --scratch SIZE (issue 14): parsed, and refused
 * where they mean nothing, naming the option. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/cli.h"

#define ARGV(...)	     ((char *[]){"flint", __VA_ARGS__, NULL})
#define ARGC(...)	     ((int)(sizeof((char *[]){"flint", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) cli_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, err, 256)

Test(image_cli, image_and_scratch)
{
	struct config c;
	char err[256] = "";

	cr_assert_eq(PARSE(&c, err, "run", "--image", "/srv/root", "--scratch", "4G", "--", "true"),
		     CLI_RUN, "%s", err);
	cr_assert_str_eq(c.image, "/srv/root");
	cr_assert_eq(c.scratch, 4ULL << 30);
	cli_config_free(&c);
	cr_assert_eq(PARSE(&c, err, "run", "--image=x.tar", "--", "true"), CLI_RUN, "%s", err);
	cr_assert_str_eq(c.image, "x.tar");
	cr_assert_eq(c.scratch, 0);
	cli_config_free(&c);
}

static void refused(struct config *c, const char *err, const char *want)
{
	cr_assert_not_null(strstr(err, want), "'%s' lacks '%s'", err, want);
	cli_config_free(c);
}

Test(image_cli, refusals)
{
	struct config c;
	char err[256] = "";

	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--image", "d"), CLI_ERROR);
	refused(&c, err, "--image is an option of flint run");
	cr_assert_eq(PARSE(&c, err, "run", "--image", "", "--", "true"), CLI_ERROR);
	refused(&c, err, "--image: expected");
	cr_assert_eq(PARSE(&c, err, "run", "--image", "d", "--scratch", "1M", "--", "true"),
		     CLI_ERROR);
	refused(&c, err, "--scratch 1M: expected a size");
	cr_assert_eq(PARSE(&c, err, "run", "--image", "d", "--scratch", "lots", "--", "true"),
		     CLI_ERROR);
	refused(&c, err, "--scratch lots");
	cr_assert_eq(PARSE(&c, err, "run", "--scratch", "1G", "--", "true"), CLI_ERROR);
	refused(&c, err, "it needs --image PATH");
	cr_assert_eq(PARSE(&c, err, "run", "--image", "d", "--scratch", "1G", "--save-snapshot",
			   "s", "--save-mem", "m"),
		     CLI_ERROR);
	refused(&c, err, "--scratch and --save-snapshot cannot be combined");
	/* A restored or attached VM has its root already. */
	cr_assert_eq(PARSE(&c, err, "run", "--restore", "s", "--mem-file", "m", "--image", "d",
			   "--", "true"),
		     CLI_ERROR);
	refused(&c, err, "machine options");
	cr_assert_eq(PARSE(&c, err, "run", "--attach", "/u", "--image", "d", "--", "true"),
		     CLI_ERROR);
	refused(&c, err, "machine options");
}
