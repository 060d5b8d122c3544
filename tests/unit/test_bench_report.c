/* bench report (issue 15): the text table (its header, nine columns on
 * every row, values in ms, ratios to flint, "-" where a VMM has no value,
 * rows only for what some VMM reported, failed runs and missing peers
 * named), the JSON (parsed back with jansson: schema, version, config,
 * per-VMM statistics with ratios, missing peers with their reason, every
 * raw run with null for what it lacks, integers and reals) and the CSV
 * (lines counted, fields parsed with RFC 4180's quoting, one row per run
 * and per missing peer, empty cells for what a run lacks); write errors
 * and too many VMMs refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/record.h"
#include "bench/report.h"
#include "bench/stats.h"

static struct bench_record runs[5];
static struct bench_missing missing[1];
static struct bench_set set;

/* flint: two good runs (init at 1000 and 2000 us, VM made at 100 and
 * 300) and one that timed out; qemu: two runs (init at 3000 and 3000,
 * nothing else but exits); firecracker missing. The runs interleaved. */
static void setup(void)
{
	bench_record_init(&runs[0], "flint");
	runs[0].ok = true;
	runs[0].phase_us[BP_PROCESS] = 50;
	runs[0].phase_us[BP_VM_CREATED] = 100;
	runs[0].phase_us[BP_INIT] = 1000;
	runs[0].exits[BE_TOTAL] = 1389;
	runs[0].exits[BE_IO] = 140;
	runs[0].rss_overhead_kib = 2048;
	runs[0].minor_faults = 700;
	runs[0].cpu_us = 800000;

	bench_record_init(&runs[1], "qemu");
	runs[1].ok = true;
	runs[1].phase_us[BP_INIT] = 3000;
	runs[1].exits[BE_TOTAL] = 2069;
	runs[1].exits[BE_IO] = 213;
	runs[1].cpu_us = 1600000;

	bench_record_init(&runs[2], "flint");
	runs[2].ok = true;
	runs[2].phase_us[BP_PROCESS] = 70;
	runs[2].phase_us[BP_VM_CREATED] = 300;
	runs[2].phase_us[BP_INIT] = 2000;
	runs[2].exits[BE_TOTAL] = 1391;
	runs[2].exits[BE_IO] = 141;
	runs[2].rss_overhead_kib = 2050;
	runs[2].minor_faults = 702;
	runs[2].cpu_us = 900000;

	bench_record_init(&runs[3], "qemu");
	runs[3].ok = true;
	runs[3].phase_us[BP_INIT] = 3000;
	runs[3].exits[BE_TOTAL] = 2071;
	runs[3].exits[BE_IO] = 215;
	runs[3].cpu_us = 1700000;

	bench_record_init(&runs[4], "flint");
	runs[4].ok = false;
	snprintf(runs[4].why, sizeof(runs[4].why), "timeout, no \"ready\" marker");
	runs[4].phase_us[BP_PROCESS] = 60;

	snprintf(missing[0].vmm, sizeof(missing[0].vmm), "firecracker");
	snprintf(missing[0].why, sizeof(missing[0].why), "not installed: no firecracker in PATH");

	set = (struct bench_set){.mode = "boot",
				 .runs = runs,
				 .nruns = ARRAY_SIZE(runs),
				 .missing = missing,
				 .nmissing = ARRAY_SIZE(missing),
				 .runs_asked = 3,
				 .warmup = 1,
				 .vcpus = 1,
				 .mem_mib = 128,
				 .cmdline = "console=ttyS0 quiet"};
}

TestSuite(bench_report, .init = setup);

/* What fn wrote for the set, as a malloc'd string. */
static char *render(int (*fn)(const struct bench_set *, FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	cr_assert_eq(fn(&set, f), 0);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

/* The line of text starting with "<fig> <vmm> ", split at blanks into
 * w[9]; false when there is none. */
static bool row(const char *text, const char *fig, const char *vmm, char w[9][32])
{
	const char *line = text;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		char copy[256];
		char *save, *tok;
		int n = 0;

		snprintf(copy, sizeof(copy), "%.*s", end ? (int)(end - line) : (int)strlen(line),
			 line);
		line = end ? end + 1 : NULL;
		for (tok = strtok_r(copy, " ", &save); tok && n < 10;
		     tok = strtok_r(NULL, " ", &save))
			if (n++ < 9)
				snprintf(w[n - 1], 32, "%s", tok);
		if (n >= 2 && !strcmp(w[0], fig) && !strcmp(w[1], vmm)) {
			cr_assert_eq(n, 9, "row %s %s has %d columns", fig, vmm, n);
			return true;
		}
	}
	return false;
}

Test(bench_report, table)
{
	char *t = render(report_table), w[9][32];
	const char *rows, *p;

	cr_assert(strstr(t, "flint bench boot: flint 3 runs (1 failed), qemu 2 runs,"
			    " firecracker missing\n"),
		  "%s", t);
	rows = strstr(t, "\nfigure ");
	cr_assert_not_null(rows, "%s", t);
	/* every row below the column heads has the nine columns */
	p = strchr(rows + 1, '\n') + 1;
	while (*p && *p != '\n') {
		const char *end = strchr(p, '\n');
		char copy[256], *save;
		int n = 0;

		cr_assert_not_null(end);
		snprintf(copy, sizeof(copy), "%.*s", (int)(end - p), p);
		for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
			n++;
		cr_assert_eq(n, 9, "%.*s: %d columns", (int)(end - p), p, n);
		p = end + 1;
	}

	cr_assert(row(t, "launch-to-init", "flint", w), "%s", t);
	cr_assert_str_eq(w[2], "2");
	cr_assert_str_eq(w[3], "1.500"); /* p50, ms */
	cr_assert_str_eq(w[4], "1.900"); /* p90 */
	cr_assert_str_eq(w[5], "1.990"); /* p99 */
	cr_assert_str_eq(w[6], "1.000");
	cr_assert_str_eq(w[7], "2.000");
	cr_assert_str_eq(w[8], "1.00");
	cr_assert(row(t, "launch-to-init", "qemu", w));
	cr_assert_str_eq(w[3], "3.000");
	cr_assert_str_eq(w[8], "2.00");
	/* flint alone reports the VM's creation: qemu's row says so */
	cr_assert(row(t, "launch-to-vm-created", "qemu", w));
	cr_assert_str_eq(w[2], "0");
	cr_assert_str_eq(w[3], "-");
	cr_assert_str_eq(w[8], "-");
	/* nobody reports vCPUs started, or a restore's phases */
	cr_assert(!row(t, "launch-to-vcpus-started", "flint", w));
	cr_assert(!row(t, "launch-to-state-read", "flint", w));
	cr_assert(!row(t, "launch-to-init", "firecracker", w), "a missing peer has no rows");
	/* counts as they are, with their ratios */
	cr_assert(row(t, "exits", "qemu", w));
	cr_assert_str_eq(w[3], "2070");
	cr_assert_str_eq(w[8], "1.49");
	cr_assert(row(t, "io_exits", "flint", w));
	cr_assert_str_eq(w[3], "140.5");
	cr_assert(row(t, "startup", "flint", w));
	cr_assert_str_eq(w[3], "1.500");
	cr_assert(row(t, "rss_overhead_kib", "flint", w));
	cr_assert_str_eq(w[3], "2049");
	cr_assert(row(t, "minor_faults", "qemu", w));
	cr_assert_str_eq(w[3], "-");
	cr_assert(!row(t, "major_faults", "flint", w));
	/* CPU time in ms like the times, its ratio like theirs */
	cr_assert(row(t, "cpu", "flint", w));
	cr_assert_str_eq(w[3], "850.000");
	cr_assert(row(t, "cpu", "qemu", w));
	cr_assert_str_eq(w[3], "1650.000");
	cr_assert_str_eq(w[8], "1.94");
	/* the failures and the missing peer, with their reasons */
	cr_assert(strstr(t, "\nflint: 1 of 3 runs failed (first: timeout, no \"ready\" marker)\n"),
		  "%s", t);
	cr_assert(strstr(t, "\nfirecracker: missing: not installed: no firecracker in PATH\n"),
		  "%s", t);
	free(t);
}

static json_t *get(json_t *o, const char *path)
{
	char copy[256], *save;
	json_t *v = o;

	snprintf(copy, sizeof(copy), "%s", path);
	for (char *k = strtok_r(copy, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, strtoul(k, NULL, 10))
				     : json_object_get(v, k);
	cr_assert_not_null(v, "no %s", path);
	return v;
}

static void num(json_t *doc, const char *path, double want)
{
	json_t *v = get(doc, path);

	cr_assert(json_is_number(v), "%s is not a number", path);
	cr_assert(json_number_value(v) - want < 1e-9 && want - json_number_value(v) < 1e-9,
		  "%s = %.12g, not %.12g", path, json_number_value(v), want);
}

static void str(json_t *doc, const char *path, const char *want)
{
	json_t *v = get(doc, path);

	cr_assert(json_is_string(v), "%s is not a string", path);
	cr_assert_str_eq(json_string_value(v), want, "%s", path);
}

Test(bench_report, json)
{
	char *t = render(report_json);
	json_error_t e;
	json_t *doc = json_loads(t, 0, &e);

	cr_assert_not_null(doc, "%s: %s", e.text, t);
	cr_assert_eq(t[strlen(t) - 1], '\n');
	str(doc, "schema", "flint-bench");
	cr_assert(json_is_integer(get(doc, "version")));
	num(doc, "version", REPORT_VERSION);
	str(doc, "mode", "boot");
	str(doc, "percentile", "linear");
	str(doc, "units.time", "us");
	str(doc, "units.memory", "KiB");
	num(doc, "config.runs", 3);
	num(doc, "config.warmup", 1);
	num(doc, "config.mem_mib", 128);
	str(doc, "config.cmdline", "console=ttyS0 quiet");
	cr_assert_null(json_object_get(get(doc, "config"), "kernel"), "not given: left out");
	cr_assert_null(json_object_get(get(doc, "config"), "concurrency"));
	cr_assert_null(json_object_get(get(doc, "config"), "flint_launch"), "not boot's");
	/* --warmup 0 is a value, not one left out */
	set.warmup = 0;
	json_decref(doc);
	free(t);
	t = render(report_json);
	doc = json_loads(t, 0, &e);
	cr_assert_not_null(doc, "%s: %s", e.text, t);
	num(doc, "config.warmup", 0);
	/* boot's: how flint was launched */
	set.flint_launch = "flint run";
	json_decref(doc);
	free(t);
	t = render(report_json);
	doc = json_loads(t, 0, &e);
	cr_assert_not_null(doc, "%s: %s", e.text, t);
	str(doc, "config.flint_launch", "flint run");
	set.flint_launch = NULL;
	cr_assert_null(json_object_get(get(doc, "config"), "command"), "not given: left out");
	cr_assert_null(json_object_get(get(doc, "config"), "image"));
	/* what was run: a dashboard, and --baseline, tell benches apart */
	{
		char *words[] = {"make", "-C", "/src", NULL};
		json_t *d;

		set.command = words;
		set.ncommand = 3;
		set.image = "/img/debian.tar";
		free(t);
		t = render(report_json);
		cr_assert_not_null(d = json_loads(t, 0, &e), "%s: %s", e.text, t);
		str(d, "config.command.0", "make");
		str(d, "config.command.2", "/src");
		cr_assert_eq(json_array_size(get(d, "config.command")), 3);
		str(d, "config.image", "/img/debian.tar");
		json_decref(d);
		set.command = NULL;
		set.ncommand = 0;
		set.image = NULL;
	}

	cr_assert_eq(json_array_size(get(doc, "vmms")), 3);
	str(doc, "vmms.0.name", "flint");
	str(doc, "vmms.0.status", "ok");
	num(doc, "vmms.0.runs", 3);
	num(doc, "vmms.0.failed", 1);
	num(doc, "vmms.0.phases.launch-to-init.n", 2);
	num(doc, "vmms.0.phases.launch-to-init.failed", 1);
	num(doc, "vmms.0.phases.launch-to-init.p50", 1500);
	cr_assert(json_is_integer(get(doc, "vmms.0.phases.launch-to-init.p50")),
		  "whole: an integer");
	num(doc, "vmms.0.phases.launch-to-init.p90", 1900);
	num(doc, "vmms.0.phases.launch-to-init.p99", 1990);
	num(doc, "vmms.0.phases.launch-to-init.min", 1000);
	num(doc, "vmms.0.phases.launch-to-init.max", 2000);
	num(doc, "vmms.0.phases.launch-to-init.mean", 1500);
	num(doc, "vmms.0.phases.launch-to-init.ratio", 1);
	/* 140 and 141: a real, not an integer */
	num(doc, "vmms.0.exits.io_exits.p50", 140.5);
	cr_assert(json_is_real(get(doc, "vmms.0.exits.io_exits.p50")));
	num(doc, "vmms.0.exits.io_exits.p99", 140.99);
	/* durations: init's from the VM's creation */
	num(doc, "vmms.0.durations.launch-to-init.p50", 1300);
	num(doc, "vmms.0.durations.launch-to-vm-created.p50", 140);
	num(doc, "vmms.0.startup.p50", 1500);
	num(doc, "vmms.0.rss_overhead_kib.p50", 2049);
	cr_assert_null(json_object_get(get(doc, "vmms.0.phases"), "launch-to-vcpus-started"));
	cr_assert_null(json_object_get(get(doc, "vmms.0"), "major_faults"));
	num(doc, "vmms.0.cpu.p50", 850000);

	str(doc, "vmms.1.name", "qemu");
	num(doc, "vmms.1.phases.launch-to-init.p50", 3000);
	num(doc, "vmms.1.phases.launch-to-init.ratio", 2);
	cr_assert_null(json_object_get(get(doc, "vmms.1.phases"), "launch-to-vm-created"));
	cr_assert_eq(json_object_size(get(doc, "vmms.1.phases")), 1);
	num(doc, "vmms.1.exits.exits.ratio", 1.489209); /* 2070 / 1390 to 1/10^6 */
	cr_assert_null(json_object_get(get(doc, "vmms.1"), "minor_faults"));
	num(doc, "vmms.1.cpu.ratio", 1.941176); /* 1650 / 850 to 1/10^6 */

	/* a VMM none of whose runs succeeded: "failed", not "ok" */
	{
		struct bench_record was = runs[1], was3 = runs[3];
		json_t *d;

		runs[1].ok = runs[3].ok = false;
		free(t);
		t = render(report_json);
		cr_assert_not_null(d = json_loads(t, 0, &e), "%s: %s", e.text, t);
		str(d, "vmms.1.name", "qemu");
		str(d, "vmms.1.status", "failed");
		num(d, "vmms.1.failed", 2);
		str(d, "vmms.0.status", "ok");
		json_decref(d);
		runs[1] = was;
		runs[3] = was3;
	}

	str(doc, "vmms.2.name", "firecracker");
	str(doc, "vmms.2.status", "missing");
	str(doc, "vmms.2.why", "not installed: no firecracker in PATH");
	cr_assert_null(json_object_get(get(doc, "vmms.2"), "phases"));

	/* the raw runs, in order, each with every figure */
	cr_assert_eq(json_array_size(get(doc, "runs")), 5);
	str(doc, "runs.1.vmm", "qemu");
	num(doc, "runs.1.index", 1);
	num(doc, "runs.1.run", 1);
	num(doc, "runs.2.run", 2);
	cr_assert(json_is_true(get(doc, "runs.2.ok")));
	num(doc, "runs.2.phases_us.launch-to-init", 2000);
	num(doc, "runs.2.startup_us", 2000);
	num(doc, "runs.4.startup_us", 60);
	cr_assert(json_is_null(get(doc, "runs.2.phases_us.launch-to-vcpus-started")));
	cr_assert_eq(json_object_size(get(doc, "runs.2.phases_us")), BP_COUNT);
	cr_assert_eq(json_object_size(get(doc, "runs.2.exits")), BE_COUNT);
	num(doc, "runs.2.exits.io_exits", 141);
	cr_assert(json_is_null(get(doc, "runs.2.exits.halt_exits")));
	num(doc, "runs.2.minor_faults", 702);
	cr_assert(json_is_null(get(doc, "runs.2.major_faults")));
	num(doc, "runs.2.cpu_us", 900000);
	cr_assert(json_is_null(get(doc, "runs.4.cpu_us")));
	cr_assert(json_is_false(get(doc, "runs.4.ok")));
	str(doc, "runs.4.why", "timeout, no \"ready\" marker");
	num(doc, "runs.4.run", 3);
	json_decref(doc);
	free(t);
}

/* The fields of one CSV line (RFC 4180 quoting) into f[], their count. */
static int csv_split(const char *line, char f[][128], int max)
{
	int n = 0;

	for (;;) {
		char *o = f[n];
		size_t k = 0;

		cr_assert_lt(n, max);
		if (*line == '"') {
			for (line++;; line++) {
				if (*line == '"' && line[1] == '"')
					o[k++] = *line++;
				else if (*line == '"')
					break;
				else
					o[k++] = *line;
				cr_assert(*line, "unterminated quote");
			}
			line++;
		} else {
			while (*line && *line != ',' && *line != '\n')
				o[k++] = *line++;
		}
		o[k] = 0;
		n++;
		if (*line != ',')
			return n;
		line++;
	}
}

Test(bench_report, csv)
{
	char *t = render(report_csv), f[64][128], head[64][128];
	char *lines[16], *save;
	int nl = 0, nh;

	cr_assert_eq(t[strlen(t) - 1], '\n');
	for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		cr_assert_lt(nl, 16);
		lines[nl++] = l;
	}
	/* the header, five runs, the missing peer */
	cr_assert_eq(nl, 7);
	nh = csv_split(lines[0], head, 64);
	cr_assert_eq(nh, 5 + BP_COUNT + 1 + BE_COUNT + 5);
	cr_assert_str_eq(head[0], "index");
	cr_assert_str_eq(head[3], "status");
	cr_assert_str_eq(head[5], "launch-to-process_us");
	cr_assert_str_eq(head[5 + BP_INIT], "launch-to-init_us");
	cr_assert_str_eq(head[5 + BP_COUNT], "startup_us");
	cr_assert_str_eq(head[5 + BP_COUNT + 1 + BE_IO], "io_exits");
	cr_assert_str_eq(head[nh - 2], "major_faults");
	cr_assert_str_eq(head[nh - 1], "cpu_us");
	for (int i = 1; i < nl; i++)
		cr_assert_eq(csv_split(lines[i], f, 64), nh, "line %d: %s", i, lines[i]);

	csv_split(lines[3], f, 64);
	cr_assert_str_eq(f[0], "2");
	cr_assert_str_eq(f[1], "flint");
	cr_assert_str_eq(f[2], "2");
	cr_assert_str_eq(f[3], "ok");
	cr_assert_str_eq(f[5 + BP_INIT], "2000");
	cr_assert_str_eq(f[5 + BP_VCPUS_STARTED], "", "no value: an empty cell");
	cr_assert_str_eq(f[5 + BP_COUNT], "2000");
	cr_assert_str_eq(f[5 + BP_COUNT + 1 + BE_IO], "141");
	cr_assert_str_eq(f[nh - 3], "702");
	cr_assert_str_eq(f[nh - 2], "");
	cr_assert_str_eq(f[nh - 1], "900000");

	csv_split(lines[5], f, 64);
	cr_assert_str_eq(f[3], "failed");
	cr_assert_str_eq(f[4], "timeout, no \"ready\" marker", "quoted and read back");
	cr_assert(strstr(lines[5], "\"timeout, no \"\"ready\"\" marker\""), "%s", lines[5]);

	csv_split(lines[6], f, 64);
	cr_assert_str_eq(f[0], "");
	cr_assert_str_eq(f[1], "firecracker");
	cr_assert_str_eq(f[3], "missing");
	cr_assert_str_eq(f[4], "not installed: no firecracker in PATH");
	for (int i = 5; i < nh; i++)
		cr_assert_str_eq(f[i], "");
	free(t);
}

/* A peer that is missing and also has runs (it failed to start once it
 * was found) is listed once, with its runs. */
Test(bench_report, missing_with_runs_listed_once)
{
	char *t;

	snprintf(missing[0].vmm, sizeof(missing[0].vmm), "qemu");
	t = render(report_csv);
	cr_assert_null(strstr(t, ",missing,"), "%s", t);
	free(t);
	t = render(report_table);
	cr_assert_null(strstr(t, "qemu missing"), "%s", t);
	free(t);
}

Test(bench_report, write_errors_and_limits)
{
	FILE *full = fopen("/dev/full", "w");
	struct bench_record many[BENCH_MAX_VMMS + 1];
	json_t *doc;

	cr_assert_not_null(full);
	cr_assert_eq(report_table(&set, full), -EIO);
	clearerr(full);
	cr_assert_eq(report_json(&set, full), -EIO);
	clearerr(full);
	cr_assert_eq(report_csv(&set, full), -EIO);
	fclose(full);

	for (size_t i = 0; i < ARRAY_SIZE(many); i++) {
		char name[16];

		snprintf(name, sizeof(name), "vmm%zu", i);
		bench_record_init(&many[i], name);
	}
	set.runs = many;
	set.nruns = ARRAY_SIZE(many);
	set.nmissing = 0;
	cr_assert_eq(report_json_build(&set, &doc), -E2BIG);
	cr_assert_null(doc);
	cr_assert_eq(report_table(&set, stdout), -E2BIG);
	set.nruns = BENCH_MAX_VMMS;
	cr_assert_eq(report_json_build(&set, &doc), 0);
	cr_assert_eq(json_array_size(json_object_get(doc, "vmms")), BENCH_MAX_VMMS);
	json_decref(doc);
}

/* serve's records count from the request sent: the table says so, and a
 * request's answer (launch-to-response) is its start-up figure. */
Test(bench_report, serve_counts_from_the_request)
{
	struct bench_record r[2];
	struct bench_set s = {.mode = "serve", .runs = r, .nruns = 2};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	for (int i = 0; i < 2; i++) {
		bench_record_init(&r[i], "flint");
		r[i].ok = true;
		r[i].phase_us[BP_FIRST_RESPONSE] = 20000 + 1000 * i;
		r[i].phase_us[BP_RESPONSE] = 20100 + 1000 * i;
	}
	cr_assert_eq(report_table(&s, f), 0);
	fclose(f);
	cr_assert(strstr(buf, "times in ms from the request sent"), "%s", buf);
	cr_assert(strstr(buf, "launch-to-response         flint            2      20.600"), "%s",
		  buf);
	cr_assert(strstr(buf, "startup                    flint            2      20.600"), "%s",
		  buf);
	free(buf);
}
