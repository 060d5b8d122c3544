/* prom (issue 13): Prometheus' text exposition format 0.0.4. The exact
 * text of counters, gauges and histograms with and without labels (HELP
 * and TYPE first, series sorted by label values, buckets cumulative with
 * +Inf, _sum and _count); label value and HELP escaping; values as the Go
 * client writes them; a value on a bucket bound counted in that bucket;
 * series removal; every refusal; increments from several threads summing
 * right, and renders during them always consistent. */
#include <criterion/criterion.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/prom.h"

static struct prom_registry *r;

static void setup(void)
{
	cr_assert_eq(prom_registry_create(&r), 0);
}

static void teardown(void)
{
	prom_registry_destroy(r);
}

TestSuite(serve_prom, .init = setup, .fini = teardown);

/* The double next to v (finite, positive) towards +Inf (up) or 0, without
 * libm, which the unit tests do not link. */
static double next_double(double v, bool up)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof(bits));
	bits += up ? 1 : -1;
	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* The registry rendered must be exactly want. */
static void renders(const char *want)
{
	char *text;
	size_t len;

	cr_assert_eq(prom_render(r, &text, &len), 0);
	cr_assert_eq(len, strlen(text));
	cr_assert_str_eq(text, want);
	free(text);
}

static const char *const fn_label[] = {"function", NULL};
#define FN(x) ((const char *const[]){x})

Test(serve_prom, empty)
{
	renders("");
	cr_assert_str_eq(PROM_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}

Test(serve_prom, counter_without_labels)
{
	struct prom_family *c;

	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "flint_serve_requests_total",
				     "Requests taken.", NULL, NULL, 0, &c),
		     0);
	/* There from the start, at 0. */
	renders("# HELP flint_serve_requests_total Requests taken.\n"
		"# TYPE flint_serve_requests_total counter\n"
		"flint_serve_requests_total 0\n");
	cr_assert_eq(prom_counter_add(c, NULL, 1), 0);
	cr_assert_eq(prom_counter_add(c, NULL, 2), 0);
	cr_assert_eq(prom_counter_add(c, NULL, 0.5), 0);
	cr_assert_eq(prom_counter_add(c, NULL, 0), 0);
	renders("# HELP flint_serve_requests_total Requests taken.\n"
		"# TYPE flint_serve_requests_total counter\n"
		"flint_serve_requests_total 3.5\n");
}

Test(serve_prom, counters_and_gauges_by_label)
{
	static const char *const two[] = {"function", "code", NULL};
	struct prom_family *inv, *warm, *errs;

	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "flint_serve_invocations_total",
				     "Invocations by function.", fn_label, NULL, 0, &inv),
		     0);
	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "flint_serve_pool_warm",
				     "VMs restored and paused.", fn_label, NULL, 0, &warm),
		     0);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "flint_serve_errors_total",
				     "Answers other than 200.", two, NULL, 0, &errs),
		     0);
	/* Labelled families without a series yet: their HELP and TYPE. */
	renders("# HELP flint_serve_invocations_total Invocations by function.\n"
		"# TYPE flint_serve_invocations_total counter\n"
		"# HELP flint_serve_pool_warm VMs restored and paused.\n"
		"# TYPE flint_serve_pool_warm gauge\n"
		"# HELP flint_serve_errors_total Answers other than 200.\n"
		"# TYPE flint_serve_errors_total counter\n");

	/* Made in any order, rendered sorted by label values. */
	cr_assert_eq(prom_counter_add(inv, FN("resize"), 1), 0);
	cr_assert_eq(prom_counter_add(inv, FN("echo"), 1), 0);
	cr_assert_eq(prom_counter_add(inv, FN("resize"), 1), 0);
	cr_assert_eq(prom_counter_add(inv, FN("Zed"), 7), 0);
	cr_assert_eq(prom_gauge_set(warm, FN("echo"), 4), 0);
	cr_assert_eq(prom_gauge_add(warm, FN("echo"), -1), 0);
	cr_assert_eq(prom_gauge_add(warm, FN("resize"), -2.5), 0);
	cr_assert_eq(prom_counter_add(errs, (const char *const[]){"echo", "504"}, 1), 0);
	cr_assert_eq(prom_counter_add(errs, (const char *const[]){"echo", "422"}, 2), 0);
	cr_assert_eq(prom_counter_add(errs, (const char *const[]){"a", "504"}, 1), 0);
	renders("# HELP flint_serve_invocations_total Invocations by function.\n"
		"# TYPE flint_serve_invocations_total counter\n"
		"flint_serve_invocations_total{function=\"Zed\"} 7\n"
		"flint_serve_invocations_total{function=\"echo\"} 1\n"
		"flint_serve_invocations_total{function=\"resize\"} 2\n"
		"# HELP flint_serve_pool_warm VMs restored and paused.\n"
		"# TYPE flint_serve_pool_warm gauge\n"
		"flint_serve_pool_warm{function=\"echo\"} 3\n"
		"flint_serve_pool_warm{function=\"resize\"} -2.5\n"
		"# HELP flint_serve_errors_total Answers other than 200.\n"
		"# TYPE flint_serve_errors_total counter\n"
		"flint_serve_errors_total{function=\"a\",code=\"504\"} 1\n"
		"flint_serve_errors_total{function=\"echo\",code=\"422\"} 2\n"
		"flint_serve_errors_total{function=\"echo\",code=\"504\"} 1\n");

	/* A deleted function's series go; the others stay. */
	cr_assert_eq(prom_series_remove(inv, FN("echo")), 0);
	cr_assert_eq(prom_series_remove(inv, FN("echo")), -ENOENT);
	cr_assert_eq(prom_series_remove(warm, FN("resize")), 0);
	cr_assert_eq(prom_series_remove(warm, FN("echo")), 0);
	renders("# HELP flint_serve_invocations_total Invocations by function.\n"
		"# TYPE flint_serve_invocations_total counter\n"
		"flint_serve_invocations_total{function=\"Zed\"} 7\n"
		"flint_serve_invocations_total{function=\"resize\"} 2\n"
		"# HELP flint_serve_pool_warm VMs restored and paused.\n"
		"# TYPE flint_serve_pool_warm gauge\n"
		"# HELP flint_serve_errors_total Answers other than 200.\n"
		"# TYPE flint_serve_errors_total counter\n"
		"flint_serve_errors_total{function=\"a\",code=\"504\"} 1\n"
		"flint_serve_errors_total{function=\"echo\",code=\"422\"} 2\n"
		"flint_serve_errors_total{function=\"echo\",code=\"504\"} 1\n");
	/* Made again from 0. */
	cr_assert_eq(prom_counter_add(inv, FN("echo"), 1), 0);
	cr_assert_eq(prom_gauge_add(warm, FN("echo"), 1), 0);
	char *text;
	size_t len;
	cr_assert_eq(prom_render(r, &text, &len), 0);
	cr_assert_not_null(strstr(text, "flint_serve_invocations_total{function=\"echo\"} 1\n"));
	cr_assert_not_null(strstr(text, "flint_serve_pool_warm{function=\"echo\"} 1\n"));
	free(text);
}

Test(serve_prom, histogram)
{
	static const double bounds[] = {0.25, 0.5, 1, 2.5};
	struct prom_family *h, *plain;

	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "flint_serve_run_seconds",
				     "Time in the VM.", fn_label, bounds, 4, &h),
		     0);
	/* A value equal to a bound is in that bound's bucket. */
	cr_assert_eq(prom_histogram_observe(h, FN("echo"), 0.25), 0);
	cr_assert_eq(prom_histogram_observe(h, FN("echo"), 0.5), 0);
	cr_assert_eq(prom_histogram_observe(h, FN("echo"), 0.75), 0);
	cr_assert_eq(prom_histogram_observe(h, FN("echo"), 1), 0);
	cr_assert_eq(prom_histogram_observe(h, FN("echo"), 3), 0);
	cr_assert_eq(prom_histogram_observe(h, FN("echo"), 100), 0);
	cr_assert_eq(prom_histogram_observe(h, FN("cat"), 2.5), 0);
	cr_assert_eq(prom_histogram_observe(h, FN("cat"), -1), 0);
	renders("# HELP flint_serve_run_seconds Time in the VM.\n"
		"# TYPE flint_serve_run_seconds histogram\n"
		"flint_serve_run_seconds_bucket{function=\"cat\",le=\"0.25\"} 1\n"
		"flint_serve_run_seconds_bucket{function=\"cat\",le=\"0.5\"} 1\n"
		"flint_serve_run_seconds_bucket{function=\"cat\",le=\"1\"} 1\n"
		"flint_serve_run_seconds_bucket{function=\"cat\",le=\"2.5\"} 2\n"
		"flint_serve_run_seconds_bucket{function=\"cat\",le=\"+Inf\"} 2\n"
		"flint_serve_run_seconds_sum{function=\"cat\"} 1.5\n"
		"flint_serve_run_seconds_count{function=\"cat\"} 2\n"
		"flint_serve_run_seconds_bucket{function=\"echo\",le=\"0.25\"} 1\n"
		"flint_serve_run_seconds_bucket{function=\"echo\",le=\"0.5\"} 2\n"
		"flint_serve_run_seconds_bucket{function=\"echo\",le=\"1\"} 4\n"
		"flint_serve_run_seconds_bucket{function=\"echo\",le=\"2.5\"} 4\n"
		"flint_serve_run_seconds_bucket{function=\"echo\",le=\"+Inf\"} 6\n"
		"flint_serve_run_seconds_sum{function=\"echo\"} 105.5\n"
		"flint_serve_run_seconds_count{function=\"echo\"} 6\n");

	/* Without labels: le alone, and zeros before anything is observed. */
	static const double small[] = {0.001, 1e6};
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "q_wait_seconds", "Queue wait.", NULL,
				     small, 2, &plain),
		     0);
	cr_assert_eq(prom_series_remove(h, FN("echo")), 0);
	cr_assert_eq(prom_series_remove(h, FN("cat")), 0);
	renders("# HELP flint_serve_run_seconds Time in the VM.\n"
		"# TYPE flint_serve_run_seconds histogram\n"
		"# HELP q_wait_seconds Queue wait.\n"
		"# TYPE q_wait_seconds histogram\n"
		"q_wait_seconds_bucket{le=\"0.001\"} 0\n"
		"q_wait_seconds_bucket{le=\"1e+06\"} 0\n"
		"q_wait_seconds_bucket{le=\"+Inf\"} 0\n"
		"q_wait_seconds_sum 0\n"
		"q_wait_seconds_count 0\n");
	cr_assert_eq(prom_histogram_observe(plain, NULL, 0.001), 0);
	cr_assert_eq(prom_histogram_observe(plain, NULL, 0.0010000000000000002), 0);
	cr_assert_eq(prom_histogram_observe(plain, NULL, INFINITY), 0);
	renders("# HELP flint_serve_run_seconds Time in the VM.\n"
		"# TYPE flint_serve_run_seconds histogram\n"
		"# HELP q_wait_seconds Queue wait.\n"
		"# TYPE q_wait_seconds histogram\n"
		"q_wait_seconds_bucket{le=\"0.001\"} 1\n"
		"q_wait_seconds_bucket{le=\"1e+06\"} 2\n"
		"q_wait_seconds_bucket{le=\"+Inf\"} 3\n"
		"q_wait_seconds_sum +Inf\n"
		"q_wait_seconds_count 3\n");
}

Test(serve_prom, bucket_boundaries)
{
	static const double bounds[] = {1, 2, 3};
	struct prom_family *h;
	char *text;
	size_t len;

	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "b", "b", NULL, bounds, 3, &h), 0);
	/* Each bound exactly, and the doubles either side of it. */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(prom_histogram_observe(h, NULL, next_double(bounds[i], false)), 0);
		cr_assert_eq(prom_histogram_observe(h, NULL, bounds[i]), 0);
		cr_assert_eq(prom_histogram_observe(h, NULL, next_double(bounds[i], true)), 0);
	}
	cr_assert_eq(prom_histogram_observe(h, NULL, -INFINITY), 0);
	cr_assert_eq(prom_render(r, &text, &len), 0);
	/* le=1: -Inf, below 1, 1; le=2: and above 1, below 2, 2; ... */
	cr_assert_not_null(strstr(text, "b_bucket{le=\"1\"} 3\n"), "%s", text);
	cr_assert_not_null(strstr(text, "b_bucket{le=\"2\"} 6\n"), "%s", text);
	cr_assert_not_null(strstr(text, "b_bucket{le=\"3\"} 9\n"), "%s", text);
	cr_assert_not_null(strstr(text, "b_bucket{le=\"+Inf\"} 10\n"), "%s", text);
	cr_assert_not_null(strstr(text, "b_count 10\n"), "%s", text);
	cr_assert_not_null(strstr(text, "b_sum -Inf\n"), "%s", text);
	free(text);
}

Test(serve_prom, escaping)
{
	static const char *const two[] = {"path", "error", NULL};
	struct prom_family *g;

	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "msdos_file_access_time_seconds",
				     "Help with a \\ backslash,\na line feed and \"quotes\".", two,
				     NULL, 0, &g),
		     0);
	cr_assert_eq(prom_gauge_set(g,
				    (const char *const[]){"C:\\DIR\\FILE.TXT",
							  "Cannot find file:\n\"FILE.TXT\""},
				    1.458255915e9),
		     0);
	cr_assert_eq(prom_gauge_set(g, (const char *const[]){"", "\xc3\xa9t\xc3\xa9 {}=,"}, -0.5),
		     0);
	renders("# HELP msdos_file_access_time_seconds Help with a \\\\ backslash,\\na line feed "
		"and \"quotes\".\n"
		"# TYPE msdos_file_access_time_seconds gauge\n"
		"msdos_file_access_time_seconds{path=\"\",error=\"\xc3\xa9t\xc3\xa9 {}=,\"} -0.5\n"
		"msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find "
		"file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e+09\n");
}

Test(serve_prom, values)
{
	static const struct {
		double v;
		const char *s;
	} cases[] = {
	    {0, "0"},
	    {-0.0, "0"},
	    {1, "1"},
	    {-1, "-1"},
	    {100, "100"},
	    {0.1, "0.1"},
	    {0.3, "0.3"},
	    {0.1 + 0.2, "0.30000000000000004"},
	    {1.0 / 3, "0.3333333333333333"},
	    {2.0 / 3, "0.6666666666666666"},
	    {12.47, "12.47"},
	    {123456, "123456"},
	    {999999, "999999"},
	    {1e6, "1e+06"},
	    {1234567, "1.234567e+06"},
	    {-1234567, "-1.234567e+06"},
	    {1.458255915e9, "1.458255915e+09"},
	    {53423, "53423"},
	    {1.7560473e+07, "1.7560473e+07"},
	    {1e21, "1e+21"},
	    {9007199254740993.0, "9.007199254740992e+15"},
	    {0.0001, "0.0001"},
	    {0.00012345, "0.00012345"},
	    {0.00001, "1e-05"},
	    {-0.00001, "-1e-05"},
	    {5e-324, "5e-324"},
	    {DBL_MAX, "1.7976931348623157e+308"},
	    {-DBL_MAX, "-1.7976931348623157e+308"},
	    {DBL_MIN, "2.2250738585072014e-308"},
	    {NAN, "NaN"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	};
	char buf[PROM_VALUE_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		prom_format_value(cases[i].v, buf);
		cr_assert_str_eq(buf, cases[i].s, "case %zu", i);
		/* And it reads back as the same double. */
		if (!isnan(cases[i].v))
			cr_assert_eq(strtod(buf, NULL), cases[i].v == 0 ? 0 : cases[i].v);
	}
	/* Every double read back, over a spread of magnitudes and digits. */
	for (int e = -320; e <= 308; e += 7)
		for (int k = 1; k < 40; k += 3) {
			char num[32];
			double v;

			snprintf(num, sizeof(num), "%de%d", k, e);
			v = strtod(num, NULL) * 0.7310585786300049;

			prom_format_value(v, buf);
			cr_assert_eq(strtod(buf, NULL), v, "%s", buf);
			cr_assert_lt(strlen(buf), PROM_VALUE_MAX);
		}
}

Test(serve_prom, refusals)
{
	static const double bounds[] = {1, 2};
	static const char *const le[] = {"le", NULL};
	static const char *const reserved[] = {"__name", NULL};
	static const char *const dup[] = {"a", "a", NULL};
	static const char *const bad_label[] = {"a:b", NULL};
	static const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL};
	static const char *const eight[] = {"a", "b", "c", "d", "e", "f", "g", "h", NULL};
	struct prom_family *f, *c, *g, *h;
	char name[PROM_MAX_NAME + 2];

	/* Names. */
	static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "a.b", "é"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		cr_assert_eq(prom_family_add(r, PROM_COUNTER, bad_names[i], "h", NULL, NULL, 0, &f),
			     -EINVAL, "%s", bad_names[i]);
	cr_assert_null(f);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, NULL, "h", NULL, NULL, 0, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "x", NULL, NULL, NULL, 0, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, 7, "x", "h", NULL, NULL, 0, &f), -EINVAL);
	memset(name, 'n', PROM_MAX_NAME + 1);
	name[PROM_MAX_NAME + 1] = '\0';
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, name, "h", NULL, NULL, 0, &f), -EINVAL);
	name[PROM_MAX_NAME] = '\0';
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, name, "h", NULL, NULL, 0, &f), 0);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "ns:sub_total", "h", NULL, NULL, 0, &f), 0);

	/* Labels. */
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h1", "h", le, bounds, 2, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "le_ok", "h", le, NULL, 0, &f), 0);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "c1", "h", reserved, NULL, 0, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "c1", "h", dup, NULL, 0, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "c1", "h", bad_label, NULL, 0, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "c1", "h", nine, NULL, 0, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "c8", "h", eight, NULL, 0, &f), 0);

	/* Bounds. */
	static const double unsorted[] = {1, 0.5}, same[] = {1, 1}, nan_b[] = {NAN},
			    inf_b[] = {1, INFINITY}, ninf_b[] = {-INFINITY, 1};
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h1", "h", NULL, NULL, 0, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h1", "h", NULL, unsorted, 2, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h1", "h", NULL, same, 2, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h1", "h", NULL, nan_b, 1, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h1", "h", NULL, inf_b, 2, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h1", "h", NULL, ninf_b, 2, &f), -EINVAL);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "c1", "h", NULL, bounds, 2, &f), -EINVAL);
	double many[PROM_MAX_BOUNDS + 1];
	for (int i = 0; i <= PROM_MAX_BOUNDS; i++)
		many[i] = i;
	cr_assert_eq(
	    prom_family_add(r, PROM_HISTOGRAM, "h1", "h", NULL, many, PROM_MAX_BOUNDS + 1, &f),
	    -EINVAL);
	cr_assert_eq(
	    prom_family_add(r, PROM_HISTOGRAM, "h64", "h", NULL, many, PROM_MAX_BOUNDS, &f), 0);

	/* Clashing names: the same name, or a histogram's sample names. */
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "x", "h", NULL, NULL, 0, &c), 0);
	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "x", "h", NULL, NULL, 0, &f), -EEXIST);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "x", "h", NULL, bounds, 2, &f), -EEXIST);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "lat", "h", NULL, bounds, 2, &h), 0);
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "lat_count", "h", NULL, NULL, 0, &f),
		     -EEXIST);
	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "lat_sum", "h", NULL, NULL, 0, &f), -EEXIST);
	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "lat_bucket", "h", NULL, NULL, 0, &f), -EEXIST);
	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "y_sum", "h", NULL, NULL, 0, &g), 0);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "y", "h", NULL, bounds, 2, &f), -EEXIST);
	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "lat_other", "h", NULL, NULL, 0, &f), 0);

	/* Updates of the wrong type, bad values, missing label values. */
	cr_assert_eq(prom_gauge_set(c, NULL, 1), -EINVAL);
	cr_assert_eq(prom_gauge_add(c, NULL, 1), -EINVAL);
	cr_assert_eq(prom_histogram_observe(c, NULL, 1), -EINVAL);
	cr_assert_eq(prom_counter_add(g, NULL, 1), -EINVAL);
	cr_assert_eq(prom_histogram_observe(g, NULL, 1), -EINVAL);
	cr_assert_eq(prom_counter_add(h, NULL, 1), -EINVAL);
	cr_assert_eq(prom_gauge_set(h, NULL, 1), -EINVAL);
	cr_assert_eq(prom_counter_add(c, NULL, -1), -EINVAL);
	cr_assert_eq(prom_counter_add(c, NULL, NAN), -EINVAL);
	cr_assert_eq(prom_counter_add(c, NULL, INFINITY), -EINVAL);
	cr_assert_eq(prom_histogram_observe(h, NULL, NAN), -EINVAL);
	cr_assert_eq(prom_gauge_set(g, NULL, NAN), 0);
	struct prom_family *lab;
	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "lab", "h", fn_label, NULL, 0, &lab), 0);
	cr_assert_eq(prom_counter_add(lab, NULL, 1), -EINVAL);
	cr_assert_eq(prom_counter_add(lab, FN(NULL), 1), -EINVAL);
	cr_assert_eq(prom_series_remove(lab, NULL), -EINVAL);
	cr_assert_eq(prom_series_remove(lab, FN("none")), -ENOENT);
	/* A family without labels keeps its series. */
	cr_assert_eq(prom_series_remove(c, NULL), -EINVAL);
	/* The refused updates left nothing. */
	char *text;
	size_t len;
	cr_assert_eq(prom_render(r, &text, &len), 0);
	cr_assert_not_null(strstr(text, "\nx 0\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nlat_count 0\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\ny_sum NaN\n"), "%s", text);
	cr_assert_str_eq(text + len - strlen("# TYPE lab counter\n"), "# TYPE lab counter\n");
	free(text);
	prom_registry_destroy(NULL);
}

/* ---- threads ----------------------------------------------------------- */

#define THREADS 4
#define ROUNDS	50000

static struct prom_family *t_count, *t_gauge, *t_hist;
static atomic_int t_done;

static void *hammer(void *arg)
{
	/* Two functions, one shared by all threads, one each. */
	static const char *const own[THREADS] = {"t0", "t1", "t2", "t3"};
	const char *mine = own[(long)arg];

	for (int i = 0; i < ROUNDS; i++) {
		cr_assert_eq(prom_counter_add(t_count, FN("shared"), 1), 0);
		cr_assert_eq(prom_counter_add(t_count, FN(mine), 1), 0);
		cr_assert_eq(prom_gauge_add(t_gauge, FN("shared"), 1), 0);
		cr_assert_eq(prom_gauge_add(t_gauge, FN("shared"), -1), 0);
		/* 1 each time into the shared series, so that its sum is
		 * its count; 0, 0.5, 1, 1.5 in turn into the thread's. */
		cr_assert_eq(prom_histogram_observe(t_hist, FN("shared"), 1), 0);
		cr_assert_eq(prom_histogram_observe(t_hist, FN(mine), (i % 4) * 0.5), 0);
	}
	return NULL;
}

/* Value of the line starting with prefix in text, or -1. */
static double value_of(const char *text, const char *prefix)
{
	const char *p = strstr(text, prefix);

	return p ? strtod(p + strlen(prefix), NULL) : -1;
}

/* Renders while the threads run: each must show the shared histogram
 * series from whole observations (every bucket, the sum and the count
 * from the same ones), the gauge within what the threads can have added,
 * and the counter never going backwards. */
static void *watch(void *arg)
{
	double last = 0;
	bool gauge_seen = false;
	long *seen = arg;

	while (!t_done) {
		char *text;
		size_t len;
		double inf, count, sum, b0, b1, gauge, shared;

		cr_assert_eq(prom_render(r, &text, &len), 0);
		inf = value_of(text, "h_bucket{function=\"shared\",le=\"+Inf\"} ");
		count = value_of(text, "h_count{function=\"shared\"} ");
		sum = value_of(text, "h_sum{function=\"shared\"} ");
		b0 = value_of(text, "h_bucket{function=\"shared\",le=\"0\"} ");
		b1 = value_of(text, "h_bucket{function=\"shared\",le=\"1\"} ");
		gauge = value_of(text, "g{function=\"shared\"} ");
		shared = value_of(text, "c_total{function=\"shared\"} ");
		if (count >= 0) {
			cr_assert_eq(b0, 0, "%s", text);
			cr_assert_eq(b1, count, "%s", text);
			cr_assert_eq(inf, count, "%s", text);
			cr_assert_eq(sum, count, "%s", text);
			/* The families are rendered one after another, not at
			 * one instant: the counter's and the gauge's series
			 * may not exist yet in a render whose histogram has
			 * one (CI saw both missing). Once there, they stay,
			 * and the counter never goes back. */
			if (gauge >= 0) {
				cr_assert_leq(gauge, THREADS, "%s", text);
				gauge_seen = true;
			} else {
				cr_assert(!gauge_seen, "the shared gauge went away: %s", text);
			}
			if (shared >= 0) {
				cr_assert_geq(shared, last, "%s", text);
				last = shared;
			} else {
				cr_assert_eq(last, 0, "the shared counter went away: %s", text);
			}
			(*seen)++;
		}
		free(text);
	}
	return NULL;
}

Test(serve_prom, concurrent_updates)
{
	static const double bounds[] = {0, 1};
	pthread_t t[THREADS], w;
	char *text, want[512];
	long seen = 0;
	size_t len;

	cr_assert_eq(prom_family_add(r, PROM_COUNTER, "c_total", "c", fn_label, NULL, 0, &t_count),
		     0);
	cr_assert_eq(prom_family_add(r, PROM_GAUGE, "g", "g", fn_label, NULL, 0, &t_gauge), 0);
	cr_assert_eq(prom_family_add(r, PROM_HISTOGRAM, "h", "h", fn_label, bounds, 2, &t_hist), 0);
	t_done = 0;
	cr_assert_eq(pthread_create(&w, NULL, watch, &seen), 0);
	for (long i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	t_done = 1;
	pthread_join(w, NULL);
	cr_log_info("%ld renders checked while the threads ran", seen);

	cr_assert_eq(prom_render(r, &text, &len), 0);
	snprintf(want, sizeof(want), "c_total{function=\"shared\"} %d\n", THREADS * ROUNDS);
	cr_assert_not_null(strstr(text, want), "%s", text);
	cr_assert_not_null(strstr(text, "g{function=\"shared\"} 0\n"), "%s", text);
	snprintf(want, sizeof(want),
		 "h_bucket{function=\"shared\",le=\"0\"} 0\n"
		 "h_bucket{function=\"shared\",le=\"1\"} %d\n"
		 "h_bucket{function=\"shared\",le=\"+Inf\"} %d\n"
		 "h_sum{function=\"shared\"} %d\n"
		 "h_count{function=\"shared\"} %d\n",
		 THREADS * ROUNDS, THREADS * ROUNDS, THREADS * ROUNDS, THREADS * ROUNDS);
	cr_assert_not_null(strstr(text, want), "%s", text);
	for (int i = 0; i < THREADS; i++) {
		snprintf(want, sizeof(want), "c_total{function=\"t%d\"} %d\n", i, ROUNDS);
		cr_assert_not_null(strstr(text, want), "%s", text);
		/* A quarter each of 0, 0.5, 1 and 1.5: sum 0.75 a round. */
		snprintf(want, sizeof(want),
			 "h_bucket{function=\"t%d\",le=\"0\"} %d\n"
			 "h_bucket{function=\"t%d\",le=\"1\"} %d\n"
			 "h_bucket{function=\"t%d\",le=\"+Inf\"} %d\n"
			 "h_sum{function=\"t%d\"} %d\n"
			 "h_count{function=\"t%d\"} %d\n",
			 i, ROUNDS / 4, i, ROUNDS * 3 / 4, i, ROUNDS, i, ROUNDS * 3 / 4, i, ROUNDS);
		cr_assert_not_null(strstr(text, want), "%s", text);
	}
	free(text);
}
