/* bench baseline (issue 15): --baseline FILE --max-regress PCT against
 * made-up JSON files: within the limit (and exactly at it), over it, a
 * phase new in this bench or gone from it, a peer's regression shown but
 * not counted, flint not run at all; a bench's own --json output as its
 * baseline (no change); and files refused with a message naming the file
 * and what is wrong: missing, not JSON, not flint bench's, another version
 * or mode, a member of the wrong type, no flint; a bad PCT. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/baseline.h"
#include "bench/record.h"
#include "bench/report.h"

static struct bench_record runs[4];
static struct bench_set set;
static char path[64];
static char *out;
static size_t outlen;
static FILE *outf;
static char err[512];

/* This bench: flint's init at 1000 us and its VM made at 100 (one run
 * each, so p50 is the value), qemu's init at 3000. */
static void setup(void)
{
	bench_record_init(&runs[0], "flint");
	runs[0].ok = true;
	runs[0].phase_us[BP_VM_CREATED] = 100;
	runs[0].phase_us[BP_INIT] = 1000;
	bench_record_init(&runs[1], "qemu");
	runs[1].ok = true;
	runs[1].phase_us[BP_INIT] = 3000;
	set = (struct bench_set){.mode = "boot", .runs = runs, .nruns = 2};
	path[0] = 0;
	err[0] = 0;
	outf = open_memstream(&out, &outlen);
	cr_assert_not_null(outf);
}

static void teardown(void)
{
	if (path[0])
		unlink(path);
	fclose(outf);
	free(out);
}

TestSuite(bench_baseline, .init = setup, .fini = teardown);

/* The baseline file holding text. */
static void base_file(const char *text)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/flint-test-baseline-XXXXXX");
	fd = mkostemp(path, O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A version 1 baseline of mode boot: flint's and qemu's phases (JSON
 * members of "phases", STATS reduced to p50), and a startup p50 each. */
static void base_of(const char *flint_phases, const char *qemu_phases)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\","
		 " \"vmms\": ["
		 "  {\"name\": \"flint\", \"status\": \"ok\", \"phases\": {%s},"
		 "   \"startup\": {\"p50\": 1000}},"
		 "  {\"name\": \"qemu\", \"status\": \"ok\", \"phases\": {%s},"
		 "   \"startup\": {\"p50\": 3000}},"
		 "  {\"name\": \"lkvm\", \"status\": \"missing\", \"why\": \"not installed\"}],"
		 " \"runs\": []}",
		 flint_phases, qemu_phases);
	base_file(text);
}

/* The comparison's result and its text. */
static int check(double pct, bool *regressed)
{
	json_t *base;
	int r = baseline_load(path, set.mode, set.flint_launch, &base, err, sizeof(err));

	*regressed = false;
	if (r < 0)
		return r;
	r = baseline_check(&set, base, path, pct, outf, regressed, err, sizeof(err));
	json_decref(base);
	fflush(outf);
	return r;
}

/* The comparison's line of vmm and fig holds want. */
static void says(const char *vmm, const char *fig, const char *want)
{
	char head[64];
	const char *l;

	snprintf(head, sizeof(head), "%-12s %-26s ", vmm, fig);
	l = strstr(out, head);
	cr_assert_not_null(l, "no line %s %s in:\n%s", vmm, fig, out);
	cr_assert(strstr(l, want) && strstr(l, want) < strchr(l, '\n'), "%s %s: not %s in:\n%s",
		  vmm, fig, want, out);
}

static void no_line(const char *vmm, const char *fig)
{
	char head[64];

	snprintf(head, sizeof(head), "%-12s %-26s ", vmm, fig);
	cr_assert_null(strstr(out, head), "a line %s %s in:\n%s", vmm, fig, out);
}

Test(bench_baseline, within)
{
	bool regressed = true;

	base_of("\"launch-to-vm-created\": {\"p50\": 100}, \"launch-to-init\": {\"p50\": 950}",
		"\"launch-to-init\": {\"p50\": 3000}");
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(!regressed, "%s", out);
	says("flint", "launch-to-init", "0.950       1.000     +5.3%\n");
	says("flint", "launch-to-vm-created", "+0.0%\n");
	says("flint", "startup", "+0.0%\n");
	says("qemu", "launch-to-init", "+0.0%\n");
	no_line("flint", "launch-to-agent-ready");
	cr_assert(strstr(out, "lkvm         (in the baseline, not in this bench)\n"), "%s", out);
	cr_assert(strstr(out, "flint within +10.0% of the baseline\n"), "%s", out);
}

Test(bench_baseline, exactly_at_the_limit)
{
	bool regressed = true;

	base_of("\"launch-to-vm-created\": {\"p50\": 100}, \"launch-to-init\": {\"p50\": 800}", "");
	/* 1000 is 800 + 25% */
	cr_assert_eq(check(25, &regressed), 0, "%s", err);
	cr_assert(!regressed, "%s", out);
	says("flint", "launch-to-init", "+25.0%\n");
	cr_assert_eq(check(24.9, &regressed), 0, "%s", err);
	cr_assert(regressed);
}

Test(bench_baseline, over)
{
	bool regressed = false;

	base_of("\"launch-to-vm-created\": {\"p50\": 100}, \"launch-to-init\": {\"p50\": 800}",
		"\"launch-to-init\": {\"p50\": 1000}");
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(regressed, "%s", out);
	says("flint", "launch-to-init", "+25.0%  REGRESSED (limit +10.0%)");
	/* qemu tripled: shown, not counted */
	says("qemu", "launch-to-init", "+200.0%\n");
	cr_assert(strstr(out, "flint regressed: 1 figure over +10.0% or gone\n"), "%s", out);
	/* a faster flint is no regression */
	fclose(outf);
	free(out);
	outf = open_memstream(&out, &outlen);
	runs[0].phase_us[BP_INIT] = 500;
	cr_assert_eq(check(0, &regressed), 0, "%s", err);
	cr_assert(!regressed, "%s", out);
	says("flint", "launch-to-init", "-37.5%\n");
}

Test(bench_baseline, phase_missing_in_either)
{
	bool regressed = false;

	/* vm-created is new; agent-ready (flint) and kernel-entry (qemu) are
	 * gone; a phase this flint does not know is gone too */
	base_of("\"launch-to-init\": {\"p50\": 1000}, \"launch-to-agent-ready\": {\"p50\": 2000}",
		"\"launch-to-init\": {\"p50\": 3000}, \"launch-to-kernel-entry\": {\"p50\": 10}");
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(regressed, "a flint phase gone: %s", out);
	says("flint", "launch-to-vm-created", "-       0.100       new\n");
	says("flint", "launch-to-agent-ready",
	     "2.000           -      gone  REGRESSED (not reached now)");
	says("qemu", "launch-to-kernel-entry", "gone\n");
	says("flint", "launch-to-init", "+0.0%\n");
	cr_assert(strstr(out, "flint regressed: 1 figure over"), "%s", out);

	/* only the new phase: no regression */
	fclose(outf);
	free(out);
	outf = open_memstream(&out, &outlen);
	unlink(path);
	base_of("\"launch-to-init\": {\"p50\": 1000}, \"launch-to-vm-glowed\": {\"p50\": 1}", "");
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(regressed, "an unknown flint phase is gone: %s", out);
	says("flint", "launch-to-vm-glowed", "gone  REGRESSED");
}

Test(bench_baseline, peers_come_and_go)
{
	bool regressed = true;
	struct bench_missing m = {"qemu", "not installed"};

	/* qemu missing now; lkvm runs now, but was missing then */
	bench_record_init(&runs[1], "lkvm");
	runs[1].ok = true;
	runs[1].phase_us[BP_INIT] = 2000;
	set.missing = &m;
	set.nmissing = 1;
	base_of("\"launch-to-init\": {\"p50\": 1000}, \"launch-to-vm-created\": {\"p50\": 100}",
		"\"launch-to-init\": {\"p50\": 3000}");
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(!regressed, "%s", out);
	cr_assert(strstr(out, "\nqemu         (missing in this bench)\n"), "%s", out);
	cr_assert(strstr(out, "\nlkvm         (not in the baseline)\n"), "%s", out);
}

Test(bench_baseline, flint_failed_or_not_run)
{
	bool regressed = false;

	base_of("\"launch-to-init\": {\"p50\": 1000}", "");
	runs[0].ok = false;
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(regressed, "every flint run failed: %s", out);
	says("flint", "launch-to-init", "gone  REGRESSED");
	says("flint", "startup", "gone  REGRESSED");

	fclose(outf);
	free(out);
	outf = open_memstream(&out, &outlen);
	set.runs = &runs[1];
	set.nruns = 1;
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(regressed, "flint not run: %s", out);
	says("flint", "launch-to-init", "gone  REGRESSED");
}

/* restore: flint-uffd is a row of flint's (bench_status counts its
 * failures): its regressions count, and a --backend uffd bench, which has
 * no "flint" row, is its own baseline. */
Test(bench_baseline, flint_uffd_counts)
{
	bool regressed = false;

	set.mode = "restore";
	bench_record_init(&runs[0], "flint-uffd");
	runs[0].ok = true;
	runs[0].phase_us[BP_FIRST_RESPONSE] = 1000;
	set.nruns = 1;
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"restore\","
		  " \"vmms\": [{\"name\": \"flint-uffd\", \"status\": \"ok\", \"phases\":"
		  " {\"launch-to-first-response\": {\"p50\": 500}}}]}");
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(regressed, "flint-uffd doubled: %s", out);
	says("flint-uffd", "launch-to-first-response", "+100.0%  REGRESSED (limit +10.0%)");

	/* a baseline of both backends against --backend uffd now: flint's
	 * File row left out, not gone */
	fclose(outf);
	free(out);
	outf = open_memstream(&out, &outlen);
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"restore\","
		  " \"vmms\": [{\"name\": \"flint\", \"status\": \"ok\", \"phases\":"
		  " {\"launch-to-first-response\": {\"p50\": 900}}},"
		  " {\"name\": \"flint-uffd\", \"status\": \"ok\", \"phases\":"
		  " {\"launch-to-first-response\": {\"p50\": 1000}}}]}");
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert(!regressed, "%s", out);
	cr_assert(strstr(out, "flint        (in the baseline, not in this bench)\n"), "%s", out);
}

/* A bench none of whose flint rows is in the baseline (a restore with
 * --backend file against one made with uffd) compared nothing: refused,
 * not passed. */
Test(bench_baseline, no_flint_row_in_common)
{
	bool regressed = false;

	set.mode = "restore";
	bench_record_init(&runs[0], "flint-uffd");
	runs[0].ok = true;
	runs[0].phase_us[BP_FIRST_RESPONSE] = 10000;
	set.nruns = 1;
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"restore\","
		  " \"vmms\": [{\"name\": \"flint\", \"status\": \"ok\", \"phases\":"
		  " {\"launch-to-first-response\": {\"p50\": 1000}}}]}");
	cr_assert_eq(check(10, &regressed), -EINVAL, "%s", out);
	cr_assert(strstr(err, "none of flint's rows in this bench is in it"), "%s", err);
	cr_assert(strstr(out, "flint-uffd   (not in the baseline)\n"), "%s", out);
}

/* A bench's own --json output is its own baseline: nothing changed. */
Test(bench_baseline, own_output_round_trip)
{
	bool regressed = true;
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/flint-test-baseline-XXXXXX");
	fd = mkostemp(path, O_CLOEXEC);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_eq(report_json(&set, f), 0);
	fclose(f);
	cr_assert_eq(check(0, &regressed), 0, "%s", err);
	cr_assert(!regressed, "%s", out);
	says("flint", "launch-to-init", "1.000       1.000     +0.0%\n");
	says("flint", "launch-to-vm-created", "+0.0%\n");
	says("qemu", "launch-to-init", "+0.0%\n");
	says("qemu", "startup", "+0.0%\n");
}

/* A refused baseline: -want, and err names the file and says what. */
static void refused(int want, const char *what)
{
	bool regressed = true;
	char named[128];

	cr_assert_eq(check(10, &regressed), want, "%s", err);
	cr_assert(!regressed);
	snprintf(named, sizeof(named), "baseline %s: ", path);
	cr_assert(strstr(err, named), "%s", err);
	cr_assert(strstr(err, what), "%s: not %s", err, what);
}

Test(bench_baseline, malformed_or_wrong)
{
	snprintf(path, sizeof(path), "/nonexistent/base.json");
	refused(-ENOENT, "cannot read it: No such file or directory");
	snprintf(path, sizeof(path), "/tmp");
	refused(-EISDIR, "a directory, not a file");
	path[0] = 0;

	base_file("{\"schema\": \"flint-bench\", \"version\": 1,");
	refused(-EINVAL, "not JSON: ");
	unlink(path);
	base_file("[1, 2]");
	refused(-EINVAL, "not a JSON object");
	unlink(path);
	base_file("{\"schema\": \"something-else\", \"version\": 1}");
	refused(-EINVAL, "not a flint bench --json output");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 2, \"mode\": \"boot\"}");
	refused(-EINVAL, "schema version 2; this flint reads version 1");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": \"1\"}");
	refused(-EINVAL, "\"version\" is not an integer");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"restore\","
		  " \"vmms\": []}");
	refused(-EINVAL, "a bench of mode restore; this one is boot");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\","
		  " \"vmms\": {}}");
	refused(-EINVAL, "\"vmms\" is not an array");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\", \"vmms\": ["
		  "{\"name\": \"flint\", \"status\": \"ok\","
		  " \"phases\": {\"launch-to-init\": {\"p50\": \"fast\"}}}]}");
	refused(-EINVAL, "vmms[0].phases.launch-to-init.p50 is not a number");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\", \"vmms\": ["
		  "{\"name\": \"flint\", \"status\": \"ok\","
		  " \"phases\": {\"launch-to-init\": {\"p50\": -5}}}]}");
	refused(-EINVAL, "vmms[0].phases.launch-to-init.p50 is not a number >= 0");
	unlink(path);
	/* flint's runs all failed then: nothing to compare with */
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\", \"vmms\": ["
		  "{\"name\": \"flint\", \"status\": \"ok\", \"runs\": 3, \"failed\": 3,"
		  " \"phases\": {}, \"durations\": {}, \"exits\": {}}]}");
	refused(-EINVAL, "no results of flint");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\", \"vmms\": ["
		  "{\"name\": \"flint\", \"status\": \"ok\", \"phases\": {}},"
		  " {\"name\": \"qemu\", \"status\": \"ok\"}]}");
	refused(-EINVAL, "vmms[1].phases is not an object");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\", \"vmms\": ["
		  "{\"name\": \"flint\", \"status\": \"ok\", \"phases\": {}, \"startup\": 5}]}");
	refused(-EINVAL, "vmms[0].startup is not an object");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\", \"vmms\": ["
		  "{\"status\": \"ok\"}]}");
	refused(-EINVAL, "vmms[0].name is not a string");
	unlink(path);
	base_file("{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\", \"vmms\": ["
		  "{\"name\": \"qemu\", \"status\": \"ok\", \"phases\": {}},"
		  " {\"name\": \"flint\", \"status\": \"missing\"}]}");
	refused(-EINVAL, "no results of flint");
	cr_assert_eq(outlen, 0, "nothing compared: %s", out);
}

/* A boot baseline whose flint was launched otherwise (flint run, its
 * agent, against flint booting as the peers do) has other phases: refused
 * before the runs, and in the comparison; one without config.flint_launch
 * is a flint run's, as every boot was before the field. */
Test(bench_baseline, flint_launched_otherwise)
{
	static const char *const fmt =
	    "{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"boot\"%s,"
	    " \"vmms\": [{\"name\": \"flint\", \"status\": \"ok\","
	    " \"phases\": {\"launch-to-init\": {\"p50\": 1000}}}], \"runs\": []}";
	char text[512];
	bool regressed = true;
	json_t *base, *cur;

	set.flint_launch = "flint";
	snprintf(text, sizeof(text), fmt, "");
	base_file(text);
	cr_assert_eq(check(10, &regressed), -EINVAL);
	cr_assert(strstr(err, "launched as \"flint run\" then and is as \"flint\" now"), "%s", err);
	cr_assert(strstr(err, "make a new baseline"), "%s", err);
	unlink(path);
	snprintf(text, sizeof(text), fmt, ", \"config\": {\"flint_launch\": \"flint\"}");
	base_file(text);
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
	cr_assert_not(regressed);
	/* The comparison checks it too, from this bench's own document. */
	cr_assert_eq(baseline_load(path, "boot", NULL, &base, err, sizeof(err)), 0, "%s", err);
	set.flint_launch = "flint run";
	cr_assert_eq(report_json_build(&set, &cur), 0);
	cr_assert_eq(baseline_compare(base, cur, path, 10, outf, &regressed, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "this bench's is with --agent"), "%s", err);
	json_decref(cur);
	json_decref(base);
}

/* A baseline made with other settings the figures depend on is refused,
 * before the runs (baseline_check_config) and at the comparison; one from
 * an older flint without a setting is not held to it, and a different
 * number of runs or kernel path is no difference. */
Test(bench_baseline, made_with_other_settings)
{
	static const char *const fmt =
	    "{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"serve\","
	    " \"config\": {%s},"
	    " \"vmms\": [{\"name\": \"flint\", \"status\": \"ok\","
	    " \"phases\": {\"launch-to-init\": {\"p50\": 1000}}}], \"runs\": []}";
	char text[512];
	bool regressed = true;
	json_t *base;

	set.mode = "serve";
	set.concurrency = 4;
	set.mem_mib = 128;
	set.runs_asked = 10;
	set.kernel = "/here/vmlinux";
	set.isolation = "reset";
	snprintf(text, sizeof(text), fmt,
		 "\"concurrency\": 4, \"mem_mib\": 128, \"runs\": 200, "
		 "\"kernel\": \"/there/vmlinux\", \"isolation\": \"restore\"");
	base_file(text);
	cr_assert_eq(baseline_load(path, "serve", NULL, &base, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(baseline_check_config(base, path, &set, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "made with isolation \"restore\"; this bench has \"reset\""), "%s",
		  err);
	cr_assert(strstr(err, "make a new baseline"), "%s", err);
	cr_assert_eq(check(10, &regressed), -EINVAL, "at the comparison too");
	set.isolation = "restore";
	cr_assert_eq(baseline_check_config(base, path, &set, err, sizeof(err)), 0, "%s", err);
	set.concurrency = 8;
	cr_assert_eq(baseline_check_config(base, path, &set, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "made with concurrency 4; this bench has 8"), "%s", err);
	json_decref(base);
	unlink(path);
	/* An older baseline: no config at all. */
	snprintf(text, sizeof(text), fmt, "");
	base_file(text);
	cr_assert_eq(check(10, &regressed), 0, "%s", err);
}

/* A run bench's baseline made before its start-up counted to the exit
 * (no config.command then): refused, not compared with longer figures;
 * one with the command, held to it. */
Test(bench_baseline, an_older_run_baseline)
{
	static const char *const fmt =
	    "{\"schema\": \"flint-bench\", \"version\": 1, \"mode\": \"run\","
	    " \"config\": {%s},"
	    " \"vmms\": [{\"name\": \"flint\", \"status\": \"ok\","
	    " \"phases\": {\"launch-to-exit\": {\"p50\": 1000}}}], \"runs\": []}";
	char *words[] = {"true", NULL};
	char text[512];
	json_t *base;

	set.mode = "run";
	set.command = words;
	set.ncommand = 1;
	snprintf(text, sizeof(text), fmt, "\"runs\": 3");
	base_file(text);
	cr_assert_eq(baseline_load(path, "run", NULL, &base, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(baseline_check_config(base, path, &set, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "run start-up ended at the first output"), "%s", err);
	json_decref(base);
	unlink(path);
	snprintf(text, sizeof(text), fmt, "\"command\": [\"true\"]");
	base_file(text);
	cr_assert_eq(baseline_load(path, "run", NULL, &base, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(baseline_check_config(base, path, &set, err, sizeof(err)), 0, "%s", err);
	json_decref(base);
}

Test(bench_baseline, bad_limit)
{
	bool regressed = true;

	base_of("\"launch-to-init\": {\"p50\": 1000}", "");
	cr_assert_eq(check(-1, &regressed), -EINVAL);
	cr_assert(strstr(err, "--max-regress"), "%s", err);
	cr_assert_eq(check(NAN, &regressed), -EINVAL);
	cr_assert(!regressed);
}
