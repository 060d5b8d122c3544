/* bench plot (issue 15): --svg's SVG drawn by the real gnuplot from
 * made-up records, checked to be well-formed XML (python3's minidom) with
 * each VMM's name, the missing peer and its reason in it; a set where no
 * run succeeded still makes one; the script never carries a quote or a
 * backslash from the records' text; gnuplot missing (a clear error naming
 * Debian's gnuplot-nox), failing or writing something else: an error and
 * nothing written, gnuplot's message passed on. The tests that need
 * gnuplot are skipped only when it is not installed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/plot.h"
#include "bench/record.h"

static struct bench_record runs[8];
static struct bench_missing missing[1];
static struct bench_set set;

static void setup(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
		struct bench_record *r = &runs[i];
		uint64_t j = i * 130;

		bench_record_init(r, i % 2 ? "qemu" : "flint");
		r->ok = i != 7;
		if (i % 2 == 0) {
			r->phase_us[BP_PROCESS] = 300 + j;
			r->phase_us[BP_VM_CREATED] = 900 + j;
			r->phase_us[BP_KERNEL_ENTRY] = 4100 + j;
			r->phase_us[BP_INIT] = 21000 + j * 10;
			r->phase_us[BP_FIRST_OUTPUT] = 27000 + j * 12;
			r->phase_us[BP_EXIT] = 30000 + j * 12;
		} else {
			r->phase_us[BP_INIT] = 45000 + j * 20;
			r->phase_us[BP_FIRST_OUTPUT] = 52000 + j * 20;
		}
	}
	snprintf(runs[7].why, sizeof(runs[7].why), "timeout");
	snprintf(missing[0].vmm, sizeof(missing[0].vmm), "lkvm");
	snprintf(missing[0].why, sizeof(missing[0].why), "not installed: no lkvm in PATH");
	set = (struct bench_set){.mode = "boot",
				 .runs = runs,
				 .nruns = ARRAY_SIZE(runs),
				 .missing = missing,
				 .nmissing = 1};
}

TestSuite(bench_plot, .init = setup);

/* Whether prog is an executable file in PATH. */
static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char dir[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, path, prog);
		if (!access(dir, X_OK))
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

static void need_gnuplot(void)
{
	if (!in_path("gnuplot"))
		cr_skip_test("gnuplot is not installed (Debian: apt-get install gnuplot-nox;"
			     " CI installs it)");
}

/* A new empty file, its name into path (removed by the caller). */
static int temp_file(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "/tmp/flint-test-plot-XXXXXX");
	fd = mkostemp(path, O_CLOEXEC);
	cr_assert_geq(fd, 0);
	return fd;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* The file at path parses as XML (python3's xml.dom.minidom) and its root
 * element is svg. */
static void well_formed_svg(const char *path)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import sys, xml.dom.minidom as m;"
		 " d = m.parse(sys.argv[1]);"
		 " sys.exit(d.documentElement.tagName != \"svg\")' %s",
		 path);
	cr_assert_eq(system(cmd), 0, "%s is not a well-formed SVG", path);
}

Test(bench_plot, svg_from_records)
{
	char path[64], err[256] = "", *svg;
	int fd;

	need_gnuplot();
	fd = temp_file(path, sizeof(path));
	cr_assert_eq(plot_svg(&set, fd, NULL, err, sizeof(err)), 0, "%s", err);
	close(fd);
	well_formed_svg(path);
	svg = slurp(path);
	unlink(path);
	cr_assert(strstr(svg, "flint (4 runs)<"), "the CDF's key names flint");
	cr_assert(strstr(svg, "qemu (3 runs, 1 failed)<"),
		  "the CDF's key names qemu, its good runs and its failed one");
	cr_assert(strstr(svg, ">flint<") && strstr(svg, ">qemu<"), "the bars name both VMMs");
	cr_assert(strstr(svg, "lkvm missing (not installed: no lkvm in PATH)"));
	cr_assert(strstr(svg, "kernel-entry") && strstr(svg, "first-output"), "phases in the key");
	cr_assert_null(strstr(svg, ">exit<"), "the exit is not a start-up phase");
	cr_assert(strstr(svg, "flint bench boot: start-up latency"));
	free(svg);
}

Test(bench_plot, svg_with_no_successful_run)
{
	char path[64], err[256] = "", *svg;
	int fd;

	need_gnuplot();
	for (size_t i = 0; i < ARRAY_SIZE(runs); i++)
		runs[i].ok = false;
	fd = temp_file(path, sizeof(path));
	cr_assert_eq(plot_svg(&set, fd, NULL, err, sizeof(err)), 0, "%s", err);
	close(fd);
	well_formed_svg(path);
	svg = slurp(path);
	unlink(path);
	cr_assert(strstr(svg, "no successful run to plot"));
	cr_assert(strstr(svg, "flint no successful run (timeout)") ||
		  strstr(svg, "flint no successful run"));
	cr_assert(strstr(svg, "qemu no successful run (timeout)"), "the first reason");
	cr_assert(strstr(svg, "lkvm missing"));
	free(svg);
}

Test(bench_plot, script_carries_no_quotes)
{
	char *script = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&script, &len);

	snprintf(runs[0].vmm, sizeof(runs[0].vmm), "x\"; system(\"id\") #\\");
	snprintf(missing[0].why, sizeof(missing[0].why), "a \"quote\" \\ and\nline");
	set.mode = "boot\"\n!id";
	cr_assert_eq(plot_script(&set, f), 0);
	fclose(f);
	cr_assert_null(strstr(script, "system(\""), "%s", script);
	cr_assert_null(strchr(script, '\\'), "%s", script);
	cr_assert_null(strstr(script, "\n!id"), "%s", script);
	cr_assert(strstr(script, "x___system__id_____ ("), "%s", script);
	cr_assert(strstr(script, "a ?quote? ? and?line"), "%s", script);
	/* every line has its double quotes paired */
	for (char *line = script; *line;) {
		char *end = strchr(line, '\n');
		int q = 0;

		cr_assert_not_null(end);
		for (char *c = line; c < end; c++)
			q += *c == '"';
		cr_assert_eq(q % 2, 0, "%.*s", (int)(end - line), line);
		line = end + 1;
	}
	free(script);
}

/* The script for set, as a malloc'd string. */
static char *script_of(void)
{
	char *script = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&script, &len);

	cr_assert_eq(plot_script(&set, f), 0);
	fclose(f);
	return script;
}

/* A bench run's start-up is launch to exit: its bars end with the exit
 * (the teardown after the first output), a boot's not. */
Test(bench_plot, bars_to_the_exit_in_run)
{
	char *script = script_of();

	cr_assert_null(strstr(script, "title \"exit\""), "%s", script);
	free(script);
	set.mode = "run";
	for (size_t i = 0; i < ARRAY_SIZE(runs); i++)
		runs[i].to_exit = true;
	script = script_of();
	cr_assert(strstr(script, "title \"exit\""), "%s", script);
	/* flint's CDF ends at its exits (30000 + 12 * 130 * i us, i 0 to 6) */
	cr_assert(strstr(script, "\n39.360 1.000000\n"), "%s", script);
	free(script);
}

/* gnuplot missing, failing, or writing something that is not an SVG:
 * an error, and the output file left empty. */
static void refused(const char *prog, int want, const char *says)
{
	char path[64], err[256] = "";
	struct stat st;
	int fd = temp_file(path, sizeof(path));

	cr_assert_eq(plot_svg(&set, fd, prog, err, sizeof(err)), want, "%s: %s", prog, err);
	cr_assert(strstr(err, says), "%s: %s", prog, err);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 0, "%s: something written", prog);
	close(fd);
	unlink(path);
}

Test(bench_plot, gnuplot_missing_or_failing)
{
	refused("flint-test-no-such-gnuplot", -ENOENT, "apt-get install gnuplot-nox");
	refused("/nonexistent/gnuplot", -ENOENT, "/nonexistent/gnuplot not found");
	refused("false", -EPROTO, "false failed (exit status 1)");
	/* cat echoes the script: exit status 0, but no SVG */
	refused("cat", -EPROTO, "cat failed (exit status 0)");
}

/* A stand-in gnuplot that reads the script, complains as gnuplot does and
 * fails: its last message line is passed on. */
Test(bench_plot, gnuplot_message_passed_on)
{
	static const char fake[] = "#!/bin/sh\ncat >/dev/null\n"
				   "echo 'gnuplot> plot $nope' >&2\n"
				   "echo '         line 7: no datablock named $nope' >&2\n"
				   "echo >&2\nexit 1\n";
	char path[64];
	int fd = temp_file(path, sizeof(path));

	cr_assert_eq(write(fd, fake, strlen(fake)), (ssize_t)strlen(fake));
	cr_assert_eq(fchmod(fd, 0700), 0);
	close(fd);
	refused(path, -EPROTO, "failed (exit status 1): line 7: no datablock named $nope");
	unlink(path);
}

Test(bench_plot, nothing_at_all)
{
	char err[256] = "";
	int fd;

	need_gnuplot();
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	/* an empty mode and no VMM at all: a valid script, which gnuplot draws */
	set.nruns = 0;
	set.nmissing = 0;
	cr_assert_eq(plot_svg(&set, fd, NULL, err, sizeof(err)), 0, "%s", err);
	close(fd);
}
