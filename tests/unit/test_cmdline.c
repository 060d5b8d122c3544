/* The guest kernel command line: flint's device arguments before the first
 * "--", wherever the user put it (issue 10: a --cmdline holding " -- " hid
 * the drives from the kernel), init's words after it, and clear errors
 * instead of truncation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/cli.h"
#include "config/cmdline.h"
#include "x86/layout.h"

#define DEV "virtio_mmio.device=4K@0xd0002000:5"

/* cmdline_split(s): the kernel's part and init's part, as strings. */
static void split(const char *s, const char *kernel, const char *init)
{
	const char *i;
	size_t n = cmdline_split(s, &i);
	cr_assert_eq(n, strlen(kernel), "'%s': kernel part %zu bytes, expected '%s'", s, n, kernel);
	cr_assert_eq(strncmp(s, kernel, n), 0, "'%s'", s);
	if (!init)
		cr_assert_null(i, "'%s': no init part expected, got '%s'", s, i);
	else {
		cr_assert_not_null(i, "'%s': expected init part '%s'", s, init);
		cr_assert_str_eq(i, init, "'%s'", s);
	}
}

Test(cmdline, split_at_the_first_dashes_word)
{
	split("", "", NULL);
	split("console=ttyS0 quiet", "console=ttyS0 quiet", NULL);
	split("console=ttyS0 -- -c x", "console=ttyS0", "-c x");
	split("init=/bin/sh -- -c \"a -- b\" -- c", "init=/bin/sh", "-c \"a -- b\" -- c");
	split("-- x", "", "x");
	split("  --  x ", "", "x ");
	split("a --", "a", "");
	split("a\t--\tb", "a", "b");
	/* The kernel's isspace() includes Latin-1's no-break space. */
	split("a\xa0--\xa0"
	      "b",
	      "a", "b");
	/* A quoted "--" is "--" to the kernel too. */
	split("a \"--\" b", "a", "b");
}

Test(cmdline, no_split_inside_quotes_or_other_words)
{
	split("a=\"x -- y\" b", "a=\"x -- y\" b", NULL);
	split("\"x -- y\" b", "\"x -- y\" b", NULL);
	split("a --x b", "a --x b", NULL);
	split("a x-- b", "a x-- b", NULL);
	split("a --=1 b", "a --=1 b", NULL);
	split("a ---", "a ---", NULL);
	/* An unclosed quote runs to the end. */
	split("a \"b -- c", "a \"b -- c", NULL);
}

static char *build(const struct cmdline_parts *p)
{
	char err[256] = "";
	char *s = cmdline_build(p, CMDLINE_MAX, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	return s;
}

#define EXPECT(parts, want)                                                                        \
	do {                                                                                       \
		char *s_ = build(parts);                                                           \
		cr_assert_str_eq(s_, want);                                                        \
		free(s_);                                                                          \
	} while (0)

Test(cmdline, devices_go_before_the_users_dashes)
{
	/* The case from issue 10: a drive and init's arguments in --cmdline. */
	struct cmdline_parts p = {
	    .base = "console=ttyS0 root=/dev/vda rw init=/bin/sh -- -c \"echo hi; exit 3\"",
	    .devices = DEV,
	};
	EXPECT(&p, "console=ttyS0 root=/dev/vda rw init=/bin/sh " DEV " -- -c \"echo hi; exit 3\"");
	p.base = "console=ttyS0 root=/dev/vda";
	EXPECT(&p, "console=ttyS0 root=/dev/vda " DEV);
	p.base = "-- x";
	EXPECT(&p, DEV " -- x");
	p.devices = DEV " virtio_mmio.device=4K@0xd0003000:6";
	p.base = "console=ttyS0 --";
	EXPECT(&p, "console=ttyS0 " DEV " virtio_mmio.device=4K@0xd0003000:6");
}

Test(cmdline, append_goes_with_the_kernel_part_and_its_own_dashes_to_init)
{
	struct cmdline_parts p = {.base = "console=ttyS0 -- one", .append = "x=1", .devices = DEV};
	EXPECT(&p, "console=ttyS0 x=1 " DEV " -- one");
	p.append = "x=1 -- two three";
	EXPECT(&p, "console=ttyS0 x=1 " DEV " -- one two three");
	p.base = "console=ttyS0";
	EXPECT(&p, "console=ttyS0 x=1 " DEV " -- two three");
	p.append = "";
	p.devices = NULL;
	EXPECT(&p, "console=ttyS0");
	p.append = "  y=2  ";
	EXPECT(&p, "console=ttyS0 y=2");
}

Test(cmdline, flints_own_words_follow_the_users_init_words)
{
	char *words[] = {"sh", "-c", "echo hi; exit 3", "", "a=b"};
	struct cmdline_parts p = {
	    .base = "console=ttyS0", .devices = DEV, .words = words, .nwords = 5};
	EXPECT(&p, "console=ttyS0 " DEV " -- sh -c \"echo hi; exit 3\" \"\" a=b");
	p.base = "console=ttyS0 -- first";
	p.append = "k=v -- second";
	EXPECT(&p, "console=ttyS0 k=v " DEV " -- first second sh -c \"echo hi; exit 3\" \"\" a=b");
	p.nwords = 1;
	p.base = "a\tb";
	p.append = NULL;
	p.devices = NULL;
	EXPECT(&p, "a\tb -- sh");
	char *tab[] = {"x\ty"};
	p.words = tab;
	EXPECT(&p, "a\tb -- \"x\ty\"");
}

Test(cmdline, words_the_kernel_cannot_carry_are_refused)
{
	char err[256];
	char *quote[] = {"echo", "a\"b"};
	struct cmdline_parts p = {.base = "console=ttyS0", .words = quote, .nwords = 2};
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "word 2"), "%s", err);
	cr_assert_not_null(strstr(err, "double quote"), "%s", err);
	/* After "--", another "--" ends init's arguments: the words after it
	 * would be lost without a word. */
	char *dashes[] = {"sh", "--", "x"};
	p.words = dashes;
	p.nwords = 3;
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "word 2"), "%s", err);
	cr_assert_not_null(strstr(err, "end init's arguments"), "%s", err);
}

/* A double quote left open runs its word to the end of the line (the
 * kernel's next_arg()): flint's device arguments after it would be part of
 * that parameter's value and the guest would find no drive, as with the
 * "--" of issue 10. Refused, in either piece and on either side of "--";
 * balanced quotes, even mid-word, pass. */
Test(cmdline, an_open_double_quote_is_refused)
{
	char err[256];
	char *words[] = {"x"};
	struct cmdline_parts p = {.base = "console=ttyS0 root=/dev/vda foo=\"bar", .devices = DEV};

	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "--cmdline leaves a double quote open"), "%s", err);
	p.base = "console=ttyS0";
	p.append = "foo=\"bar baz";
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "--append leaves a double quote open"), "%s", err);
	/* In init's part, flint's own words would join the open word. */
	p.append = NULL;
	p.base = "init=/bin/sh -- -c \"echo";
	p.devices = NULL;
	p.words = words;
	p.nwords = 1;
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	p.base = "foo=\"a b\" \"c d\" e=f\"g h\" -- -c \"echo hi\"";
	p.devices = DEV;
	EXPECT(&p, "foo=\"a b\" \"c d\" e=f\"g h\" " DEV " -- -c \"echo hi\" x");
}

/* After the first "--" the kernel hands init the words up to the next
 * "--" and drops the rest (parse_args() stops at "--" for init's arguments
 * too): a second "--" that words follow, the user's, --append's or
 * flint's, is refused; one at the very end drops nothing. */
Test(cmdline, words_after_a_second_dashes_are_refused)
{
	char err[256];
	char *words[] = {"z"};
	struct cmdline_parts p = {.base = "init=/bin/sh -- -c \"echo $1\" -- hello",
				  .devices = DEV};

	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "--cmdline: a second \"--\""), "%s", err);
	/* flint's own words after the user's second "--". */
	p.base = "init=/bin/sh -- -c x --";
	p.words = words;
	p.nwords = 1;
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	/* --append's init words after it. */
	p.nwords = 0;
	p.append = "-- y";
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	p.base = "init=/bin/sh";
	p.append = "-- -c x -- y";
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "--append: a second"), "%s", err);
	/* A "--" inside quotes is a word of init's; one at the very end drops
	 * nothing. */
	p.append = NULL;
	p.base = "init=/bin/sh -- -c \"a -- b\" --";
	EXPECT(&p, "init=/bin/sh " DEV " -- -c \"a -- b\" --");
}

Test(cmdline, too_long_is_an_error_never_a_truncation)
{
	char err[256];
	char base[CMDLINE_MAX + 8];
	struct cmdline_parts p = {.base = base};

	/* 2047 bytes and the NUL: the most x86's COMMAND_LINE_SIZE takes. */
	memset(base, 'a', CMDLINE_MAX - 1);
	base[CMDLINE_MAX - 1] = '\0';
	char *s = cmdline_build(&p, CMDLINE_MAX, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cr_assert_eq(strlen(s), CMDLINE_MAX - 1);
	free(s);
	/* One more byte, here from flint's device arguments. */
	base[CMDLINE_MAX - 2] = '\0';
	p.devices = "d";
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "too long: 2048 bytes"), "%s", err);
	cr_assert_not_null(strstr(err, "at most 2047"), "%s", err);
	/* The same through flint's words. */
	char *w[] = {"x"};
	p.devices = NULL;
	memset(base, 'a', CMDLINE_MAX - 6);
	base[CMDLINE_MAX - 6] = '\0';
	p.words = w;
	p.nwords = 1;
	s = cmdline_build(&p, CMDLINE_MAX, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cr_assert_eq(strlen(s), CMDLINE_MAX - 1, "'... -- x' fits exactly");
	free(s);
	base[CMDLINE_MAX - 6] = 'a';
	base[CMDLINE_MAX - 5] = '\0';
	cr_assert_null(cmdline_build(&p, CMDLINE_MAX, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "too long"), "%s", err);
}

/* Through flint's options: --cmdline with " -- ", a drive's arguments. */
Test(cmdline, from_flints_options)
{
	char *argv[] = {"flint",
			"--kernel",
			"k",
			"--cmdline",
			"console=ttyS0 root=/dev/vda rw init=/bin/sh -- -c \"exit 3\"",
			"--append",
			"quiet",
			"--drive",
			"path=/r.img",
			NULL};
	struct config c;
	char err[256];

	cr_assert_eq(cli_parse(9, argv, &c, err, sizeof(err)), CLI_RUN, "%s", err);
	char *s = cli_guest_cmdline(&c, DEV, CMDLINE_MAX, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cr_assert_str_eq(s, "console=ttyS0 root=/dev/vda rw init=/bin/sh quiet " DEV
			    " -- -c \"exit 3\"");
	free(s);
	cli_config_free(&c);
}
