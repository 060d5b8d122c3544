/* bench stats and record (issue 15): the record's names and its empty
 * state; percentiles by linear interpolation pinned on known data (n = 1,
 * n = 2, five values, unsorted input, every run failed, figures a run does
 * not have, other VMMs' runs); ratios to flint with flint missing or 0;
 * a run's start-up latency and its phases' durations (by time, adding up
 * to the start-up latency); the order of a set's VMMs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "bench/record.h"
#include "bench/stats.h"

/* Exact for the values the tests use (sums of halves and tenths are
 * compared with a tolerance far below the smallest step). */
#define near(a, b)                                                                                 \
	cr_assert((a) - (b) < 1e-9 && (b) - (a) < 1e-9, "%s = %.12g, not %.12g", #a, (double)(a),  \
		  (double)(b))

static struct bench_record rec(const char *vmm, bool ok, uint64_t init_us)
{
	struct bench_record r;

	bench_record_init(&r, vmm);
	r.ok = ok;
	r.phase_us[BP_INIT] = init_us;
	return r;
}

static const struct bench_fig init_fig = {BF_PHASE, BP_INIT};

Test(bench_record, init_and_names)
{
	struct bench_record r;

	memset(&r, 0x5a, sizeof(r));
	bench_record_init(&r, "a-vmm-name-that-is-longer-than-thirty-one-bytes");
	cr_assert_eq(strlen(r.vmm), sizeof(r.vmm) - 1);
	cr_assert(!r.ok);
	cr_assert_str_eq(r.why, "");
	for (int p = 0; p < BP_COUNT; p++)
		cr_assert_eq(r.phase_us[p], BENCH_NONE);
	for (int e = 0; e < BE_COUNT; e++)
		cr_assert_eq(r.exits[e], BENCH_NONE);
	cr_assert_eq(r.rss_overhead_kib, BENCH_NONE);
	cr_assert_eq(r.guest_touched_kib, BENCH_NONE);
	cr_assert_eq(r.minor_faults, BENCH_NONE);
	cr_assert_eq(r.major_faults, BENCH_NONE);

	cr_assert_str_eq(bench_phase_name(BP_INIT), "launch-to-init");
	cr_assert_str_eq(bench_phase_name(BP_FIRST_RESPONSE), "launch-to-first-response");
	cr_assert_str_eq(bench_phase_name(BP_RESPONSE), "launch-to-response");
	cr_assert_str_eq(bench_exit_name(BE_IO), "io_exits");
	cr_assert_str_eq(bench_exit_name(BE_TOTAL), "exits");
	cr_assert_null(bench_phase_name(BP_COUNT));
	cr_assert_null(bench_exit_name(BE_COUNT));
	for (int p = 0; p < BP_COUNT; p++) {
		cr_assert_not_null(bench_phase_name(p), "phase %d has no name", p);
		cr_assert_eq(bench_phase_from_name(bench_phase_name(p)), p);
	}
	for (int e = 0; e < BE_COUNT; e++) {
		cr_assert_not_null(bench_exit_name(e), "exit %d has no name", e);
		cr_assert_eq(bench_exit_from_name(bench_exit_name(e)), e);
	}
	cr_assert_eq(bench_phase_from_name("init"), -1);
	cr_assert_eq(bench_phase_from_name(NULL), -1);
	cr_assert_eq(bench_exit_from_name("launch-to-init"), -1);
}

Test(bench_stats, percentile_known_data)
{
	const double five[] = {15, 20, 35, 40, 50};
	const double two[] = {10, 20};
	const double one[] = {7};

	/* rank h = (n - 1) p / 100, interpolated between floor(h) and the next */
	near(stats_percentile(five, 5, 0), 15);
	near(stats_percentile(five, 5, 25), 20);
	near(stats_percentile(five, 5, 40), 29); /* h = 1.6: 20 + 0.6 * 15 */
	near(stats_percentile(five, 5, 50), 35);
	near(stats_percentile(five, 5, 90), 46);   /* h = 3.6: 40 + 0.6 * 10 */
	near(stats_percentile(five, 5, 99), 49.6); /* h = 3.96 */
	near(stats_percentile(five, 5, 100), 50);
	/* n = 2: the median is the mean of the two */
	near(stats_percentile(two, 2, 50), 15);
	near(stats_percentile(two, 2, 90), 19);
	near(stats_percentile(two, 2, 99), 19.9);
	/* n = 1: every percentile is the value */
	near(stats_percentile(one, 1, 0), 7);
	near(stats_percentile(one, 1, 50), 7);
	near(stats_percentile(one, 1, 99), 7);
	near(stats_percentile(one, 0, 50), 0);
}

Test(bench_stats, over_records_unsorted)
{
	/* flint's init times out of order, a failed run and a run without the
	 * phase among them, and another VMM's runs that must not count */
	struct bench_record r[] = {
	    rec("flint", true, 40), rec("qemu", true, 1000),	    rec("flint", true, 15),
	    rec("flint", false, 1), rec("flint", true, 50),	    rec("qemu", true, 3000),
	    rec("flint", true, 20), rec("flint", true, BENCH_NONE), rec("flint", true, 35),
	};
	struct bench_stats st;

	cr_assert_eq(stats_of(r, ARRAY_SIZE(r), "flint", init_fig, &st), 0);
	cr_assert_eq(st.n, 5);
	cr_assert_eq(st.n_failed, 1);
	cr_assert_eq(st.n_none, 1);
	near(st.p50, 35);
	near(st.p90, 46);
	near(st.p99, 49.6);
	near(st.min, 15);
	near(st.max, 50);
	near(st.mean, 32);

	cr_assert_eq(stats_of(r, ARRAY_SIZE(r), "qemu", init_fig, &st), 0);
	cr_assert_eq(st.n, 2);
	near(st.p50, 2000);
	near(st.min, 1000);
	near(st.max, 3000);

	cr_assert_eq(stats_of(r, ARRAY_SIZE(r), "lkvm", init_fig, &st), 0);
	cr_assert_eq(st.n + st.n_failed + st.n_none, 0);
}

Test(bench_stats, one_run_and_two)
{
	struct bench_record r[] = {rec("flint", true, 1234), rec("qemu", true, 300),
				   rec("qemu", true, 100)};
	struct bench_stats st;

	cr_assert_eq(stats_of(r, 1, "flint", init_fig, &st), 0);
	cr_assert_eq(st.n, 1);
	near(st.p50, 1234);
	near(st.p90, 1234);
	near(st.p99, 1234);
	near(st.min, 1234);
	near(st.max, 1234);
	near(st.mean, 1234);
	cr_assert_eq(stats_of(r, ARRAY_SIZE(r), "qemu", init_fig, &st), 0);
	cr_assert_eq(st.n, 2);
	near(st.p50, 200);
	near(st.p90, 280);
	near(st.p99, 298);
}

Test(bench_stats, all_failed)
{
	struct bench_record r[] = {rec("flint", false, 10), rec("flint", false, 20)};
	struct bench_stats st, ok;
	double ratio = -1;

	cr_assert_eq(stats_of(r, ARRAY_SIZE(r), "flint", init_fig, &st), 0);
	cr_assert_eq(st.n, 0);
	cr_assert_eq(st.n_failed, 2);
	near(st.p50, 0);
	near(st.max, 0);
	/* nothing to divide by */
	ok = (struct bench_stats){.n = 3, .p50 = 10};
	cr_assert(!stats_ratio(&ok, &st, &ratio));
	near(ratio, 0);
	cr_assert(!stats_ratio(&st, &ok, &ratio));
	cr_assert_eq(stats_of(NULL, 0, "flint", init_fig, &st), 0);
	cr_assert_eq(st.n, 0);
}

Test(bench_stats, ratio)
{
	struct bench_stats flint = {.n = 10, .p50 = 1000}, qemu = {.n = 10, .p50 = 1700};
	struct bench_stats zero = {.n = 10, .p50 = 0};
	double ratio;

	cr_assert(stats_ratio(&qemu, &flint, &ratio));
	near(ratio, 1.7);
	cr_assert(stats_ratio(&flint, &flint, &ratio));
	near(ratio, 1);
	cr_assert(stats_ratio(&zero, &flint, &ratio));
	near(ratio, 0);
	cr_assert(!stats_ratio(&qemu, &zero, &ratio), "a ratio to flint's 0");
	near(ratio, 0);
}

Test(bench_stats, startup_and_durations_boot)
{
	struct bench_record r;

	bench_record_init(&r, "flint");
	r.ok = true;
	cr_assert_eq(stats_startup_us(&r), BENCH_NONE);
	r.phase_us[BP_PROCESS] = 100;
	r.phase_us[BP_VM_CREATED] = 300;
	r.phase_us[BP_INIT] = 1000;
	r.phase_us[BP_AGENT_READY] = 1500;
	r.phase_us[BP_FIRST_OUTPUT] = 5000;
	r.phase_us[BP_EXIT] = 6000;
	cr_assert_eq(stats_startup_us(&r), 5000, "the exit is not start-up");
	cr_assert_eq(stats_duration_us(&r, BP_PROCESS), 100);
	cr_assert_eq(stats_duration_us(&r, BP_VM_CREATED), 200);
	cr_assert_eq(stats_duration_us(&r, BP_VCPUS_STARTED), BENCH_NONE);
	cr_assert_eq(stats_duration_us(&r, BP_INIT), 700, "from the previous phase reached");
	cr_assert_eq(stats_duration_us(&r, BP_AGENT_READY), 500);
	cr_assert_eq(stats_duration_us(&r, BP_FIRST_OUTPUT), 3500);
	cr_assert_eq(stats_duration_us(&r, BP_EXIT), 1000);
	cr_assert_eq(stats_duration_us(&r, BP_COUNT), BENCH_NONE);

	uint64_t sum = 0;
	for (int p = 0; p < BENCH_STARTUP_PHASES; p++)
		if (stats_duration_us(&r, p) != BENCH_NONE)
			sum += stats_duration_us(&r, p);
	cr_assert_eq(sum, stats_startup_us(&r));
	/* bench run's: the whole process, launch to exit */
	r.to_exit = true;
	cr_assert_eq(stats_startup_us(&r), 6000);
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_STARTUP, 0}), 6000);
	r.to_exit = false;

	/* the figure selectors */
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_STARTUP, 0}), 5000);
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_DURATION, BP_INIT}), 700);
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_PHASE, BP_INIT}), 1000);
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_PHASE, BP_COUNT}), BENCH_NONE);
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_EXIT, BE_COUNT}), BENCH_NONE);
	r.exits[BE_IO] = 42;
	r.rss_overhead_kib = 9000;
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_EXIT, BE_IO}), 42);
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_RSS_OVERHEAD, 0}), 9000);
	cr_assert_eq(stats_fig_value(&r, (struct bench_fig){BF_MAJOR_FAULTS, 0}), BENCH_NONE);
	cr_assert_str_eq(stats_fig_name((struct bench_fig){BF_STARTUP, 0}), "startup");
	cr_assert_str_eq(stats_fig_name((struct bench_fig){BF_DURATION, BP_INIT}),
			 "launch-to-init");
	cr_assert_str_eq(stats_fig_unit((struct bench_fig){BF_DURATION, BP_INIT}), "us");
	cr_assert_str_eq(stats_fig_unit((struct bench_fig){BF_GUEST_TOUCHED, 0}), "KiB");
	cr_assert_str_eq(stats_fig_unit((struct bench_fig){BF_EXIT, BE_IO}), "count");
}

/* A restore's phases after the process start, with the VM made after the
 * state was read: durations follow time, not the enum's order. */
Test(bench_stats, durations_follow_time)
{
	struct bench_record r;

	bench_record_init(&r, "flint");
	r.ok = true;
	r.phase_us[BP_PROCESS] = 100;
	r.phase_us[BP_STATE_READ] = 300;
	r.phase_us[BP_VM_CREATED] = 400;
	r.phase_us[BP_MEMORY_MAPPED] = 450;
	r.phase_us[BP_RESUMED] = 450; /* a tie: after memory-mapped, by the enum */
	r.phase_us[BP_FIRST_RESPONSE] = 2000;
	cr_assert_eq(stats_duration_us(&r, BP_STATE_READ), 200);
	cr_assert_eq(stats_duration_us(&r, BP_VM_CREATED), 100);
	cr_assert_eq(stats_duration_us(&r, BP_MEMORY_MAPPED), 50);
	cr_assert_eq(stats_duration_us(&r, BP_RESUMED), 0);
	cr_assert_eq(stats_duration_us(&r, BP_FIRST_RESPONSE), 1550);
	cr_assert_eq(stats_startup_us(&r), 2000);
}

Test(bench_stats, vmm_order)
{
	struct bench_record r[] = {rec("qemu", true, 1), rec("flint", true, 1),
				   rec("qemu", true, 1), rec("lkvm", false, 1),
				   rec("flint", true, 1)};
	struct bench_missing m[] = {
	    {"firecracker", "not installed"}, {"qemu", "dup"}, {"firecracker", "twice"}};
	struct bench_set s = {.runs = r, .nruns = ARRAY_SIZE(r), .missing = m, .nmissing = 3};
	const char *v[BENCH_MAX_VMMS];

	cr_assert_eq(stats_vmms(&s, v, BENCH_MAX_VMMS), 4);
	cr_assert_str_eq(v[0], "flint");
	cr_assert_str_eq(v[1], "qemu");
	cr_assert_str_eq(v[2], "lkvm");
	cr_assert_str_eq(v[3], "firecracker");
	/* room for two: the count is still all of them */
	v[2] = NULL;
	cr_assert_eq(stats_vmms(&s, v, 2), 4);
	cr_assert_null(v[2]);
	cr_assert_not_null(stats_missing_of(&s, "firecracker"));
	cr_assert_str_eq(stats_missing_of(&s, "firecracker")->why, "not installed");
	cr_assert_null(stats_missing_of(&s, "flint"));

	/* no flint: the order of the first runs */
	s.runs = r;
	s.nruns = 1;
	s.nmissing = 0;
	cr_assert_eq(stats_vmms(&s, v, BENCH_MAX_VMMS), 1);
	cr_assert_str_eq(v[0], "qemu");
}

/* The runners' "missing: NAME" records become missing peers, when every
 * run of the VMM says so; the rest stay, in order. */
Test(bench_record, split_missing)
{
	struct bench_record r[] = {
	    rec("flint", true, 1),	  rec("firecracker", false, 1), rec("qemu", true, 2),
	    rec("firecracker", false, 1), rec("qemu", false, 1),	rec("lkvm", false, 1),
	    rec("flint", true, 3),
	};
	struct bench_record copy[ARRAY_SIZE(r)];
	struct bench_missing m[4];
	size_t n, nm;

	snprintf(r[1].why, sizeof(r[1].why), "missing: /opt/fc/firecracker not found");
	snprintf(r[3].why, sizeof(r[3].why), "missing: /opt/fc/firecracker not found");
	/* qemu ran once, then its binary went: a failed run, not a missing peer */
	snprintf(r[4].why, sizeof(r[4].why), "missing: qemu-system-x86_64 not found");
	snprintf(r[5].why, sizeof(r[5].why), "missing: lkvm not found");
	memcpy(copy, r, sizeof(r));

	n = bench_split_missing(r, ARRAY_SIZE(r), m, ARRAY_SIZE(m), &nm);
	cr_assert_eq(n, 4);
	cr_assert_eq(nm, 2);
	cr_assert_str_eq(m[0].vmm, "firecracker");
	cr_assert_str_eq(m[0].why, "/opt/fc/firecracker not found");
	cr_assert_str_eq(m[1].vmm, "lkvm");
	cr_assert_str_eq(m[1].why, "lkvm not found");
	cr_assert_str_eq(r[0].vmm, "flint");
	cr_assert_str_eq(r[1].vmm, "qemu");
	cr_assert(r[1].ok);
	cr_assert_str_eq(r[2].vmm, "qemu");
	cr_assert(!r[2].ok);
	cr_assert_str_eq(r[3].vmm, "flint");
	cr_assert_eq(r[3].phase_us[BP_INIT], 3);

	/* room for one: lkvm stays as a failed run */
	memcpy(r, copy, sizeof(r));
	n = bench_split_missing(r, ARRAY_SIZE(r), m, 1, &nm);
	cr_assert_eq(nm, 1);
	cr_assert_str_eq(m[0].vmm, "firecracker");
	cr_assert_eq(n, 5);
	cr_assert_str_eq(r[3].vmm, "lkvm");

	/* a qemu missing first and run later is no missing peer either */
	r[0] = copy[4];
	r[1] = copy[2];
	n = bench_split_missing(r, 2, m, ARRAY_SIZE(m), &nm);
	cr_assert_eq(nm, 0);
	cr_assert_eq(n, 2);
	cr_assert(!r[0].ok && r[1].ok);
}
