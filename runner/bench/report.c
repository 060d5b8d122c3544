/* report: flint bench's text table, JSON and CSV. See report.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "bench/report.h"
#include "bench/stats.h"

/* Every figure the table and the JSON show, in their order (durations
 * apart): phases, start-up, exit counters, memory, faults, CPU time. */
#define NFIGS (BP_COUNT + 1 + BE_COUNT + 5)

static size_t all_figs(struct bench_fig *f)
{
	size_t n = 0;

	for (unsigned p = 0; p < BP_COUNT; p++)
		f[n++] = (struct bench_fig){BF_PHASE, p};
	f[n++] = (struct bench_fig){BF_STARTUP, 0};
	for (unsigned e = 0; e < BE_COUNT; e++)
		f[n++] = (struct bench_fig){BF_EXIT, e};
	f[n++] = (struct bench_fig){BF_RSS_OVERHEAD, 0};
	f[n++] = (struct bench_fig){BF_GUEST_TOUCHED, 0};
	f[n++] = (struct bench_fig){BF_MINOR_FAULTS, 0};
	f[n++] = (struct bench_fig){BF_MAJOR_FAULTS, 0};
	f[n++] = (struct bench_fig){BF_CPU, 0};
	return n;
}

/* Whether some successful run of s has figure f. */
static bool reported(const struct bench_set *s, struct bench_fig f)
{
	for (size_t i = 0; i < s->nruns; i++)
		if (s->runs[i].ok && stats_fig_value(&s->runs[i], f) != BENCH_NONE)
			return true;
	return false;
}

/* vmm's runs in s, and how many of them failed (and the first reason). */
static size_t runs_of(const struct bench_set *s, const char *vmm, size_t *failed, const char **why)
{
	size_t n = 0;

	*failed = 0;
	*why = NULL;
	for (size_t i = 0; i < s->nruns; i++) {
		if (strcmp(s->runs[i].vmm, vmm))
			continue;
		n++;
		if (!s->runs[i].ok && !(*failed)++)
			*why = s->runs[i].why;
	}
	return n;
}

/* The VMMs of s into vmm[BENCH_MAX_VMMS], their count into *nv. */
static int vmms_of(const struct bench_set *s, const char **vmm, size_t *nv)
{
	*nv = stats_vmms(s, vmm, BENCH_MAX_VMMS);
	return *nv > BENCH_MAX_VMMS ? -E2BIG : 0;
}

/* Whether vmm has runs in s (a missing peer has none). */
static bool has_runs(const struct bench_set *s, const char *vmm)
{
	for (size_t i = 0; i < s->nruns; i++)
		if (!strcmp(s->runs[i].vmm, vmm))
			return true;
	return false;
}

/* Each run's number among its VMM's (1, 2, ...), in one pass: a malloc'd
 * array of s->nruns (NULL when there are none, or on -ENOMEM in *r). */
static size_t *run_numbers(const struct bench_set *s, int *r)
{
	const char *vmm[BENCH_MAX_VMMS];
	size_t count[BENCH_MAX_VMMS] = {0}, nv, *num;

	if ((*r = vmms_of(s, vmm, &nv)) < 0 || !s->nruns)
		return NULL;
	if (!(num = malloc(s->nruns * sizeof(*num)))) {
		*r = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < s->nruns; i++)
		for (size_t k = 0; k < nv; k++)
			if (!strcmp(s->runs[i].vmm, vmm[k])) {
				num[i] = ++count[k];
				break;
			}
	return num;
}

/* 0 when everything written to out so far reached its file, else -EIO. */
static int flushed(FILE *out)
{
	return fflush(out) == EOF || ferror(out) ? -EIO : 0;
}

/* ----- the text table ----- */

/* v of figure f as the table prints it into buf. */
static void fmt_value(char *buf, size_t len, struct bench_fig f, double v)
{
	if (!strcmp(stats_fig_unit(f), "us"))
		snprintf(buf, len, "%.3f", v / 1000);
	else if (v == (double)(uint64_t)v)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f", v);
}

static void table_row(FILE *out, struct bench_fig f, const char *vmm, const struct bench_stats *st,
		      const struct bench_stats *flint)
{
	const double v[5] = {st->p50, st->p90, st->p99, st->min, st->max};
	char buf[32];
	double ratio;

	fprintf(out, "%-26s %-12s %5zu", stats_fig_name(f), vmm, st->n);
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		if (st->n)
			fmt_value(buf, sizeof(buf), f, v[i]);
		fprintf(out, " %11s", st->n ? buf : "-");
	}
	if (flint && stats_ratio(st, flint, &ratio))
		fprintf(out, " %7.2f\n", ratio);
	else
		fprintf(out, " %7s\n", "-");
}

static void table_header(const struct bench_set *s, FILE *out, const char **vmm, size_t nv)
{
	fprintf(out, "flint bench %s:", s->mode ? s->mode : "");
	for (size_t i = 0; i < nv; i++) {
		size_t failed;
		const char *why;
		size_t n = runs_of(s, vmm[i], &failed, &why);

		fprintf(out, "%s %s", i ? "," : "", vmm[i]);
		if (!n && stats_missing_of(s, vmm[i]))
			fprintf(out, " missing");
		else if (failed)
			fprintf(out, " %zu runs (%zu failed)", n, failed);
		else
			fprintf(out, " %zu runs", n);
	}
	/* serve's records count from the request sent (record.h) */
	fprintf(out, "\ntimes in ms from %s, memory in KiB; ratio: the VMM's p50 over flint's\n\n",
		s->mode && !strcmp(s->mode, "serve") ? "the request sent" : "the launch");
	fprintf(out, "%-26s %-12s %5s %11s %11s %11s %11s %11s %7s\n", "figure", "vmm", "n", "p50",
		"p90", "p99", "min", "max", "ratio");
}

static void table_footer(const struct bench_set *s, FILE *out, const char **vmm, size_t nv)
{
	bool blank = false;

	for (size_t i = 0; i < nv; i++) {
		size_t failed;
		const char *why;
		size_t n = runs_of(s, vmm[i], &failed, &why);
		const struct bench_missing *m = stats_missing_of(s, vmm[i]);

		if (!failed && (n || !m))
			continue;
		if (!blank)
			fputc('\n', out);
		blank = true;
		if (failed)
			fprintf(out, "%s: %zu of %zu runs failed (first: %s)\n", vmm[i], failed, n,
				why && *why ? why : "no reason given");
		else
			fprintf(out, "%s: missing: %s\n", vmm[i],
				*m->why ? m->why : "no reason given");
	}
}

int report_table(const struct bench_set *s, FILE *out)
{
	const char *vmm[BENCH_MAX_VMMS];
	struct bench_fig figs[NFIGS];
	size_t nv, nf = all_figs(figs);
	bool flint = has_runs(s, "flint");
	int r;

	if ((r = vmms_of(s, vmm, &nv)) < 0)
		return r;
	table_header(s, out, vmm, nv);
	for (size_t i = 0; i < nf; i++) {
		struct bench_stats fst, st;

		if (!reported(s, figs[i]))
			continue;
		if (flint && (r = stats_of(s->runs, s->nruns, "flint", figs[i], &fst)) < 0)
			return r;
		for (size_t j = 0; j < nv; j++) {
			if (!has_runs(s, vmm[j]))
				continue;
			if ((r = stats_of(s->runs, s->nruns, vmm[j], figs[i], &st)) < 0)
				return r;
			table_row(out, figs[i], vmm[j], &st, flint ? &fst : NULL);
		}
	}
	table_footer(s, out, vmm, nv);
	return flushed(out);
}

/* ----- JSON ----- */

/* v into o under k; *r becomes -ENOMEM when that fails (v NULL or the
 * set refused: json_object_set_new drops v either way). */
static void put(json_t *o, const char *k, json_t *v, int *r)
{
	if (!v || json_object_set_new(o, k, v))
		*r = -ENOMEM;
}

/* x as an integer when whole, else rounded to 1/scale (what
 * JSON_REAL_PRECISION(15) then writes without a tail of binary noise). */
static json_t *jround(double x, double scale)
{
	if (x >= 0 && x < 9007199254740992.0 && x == (double)(int64_t)x)
		return json_integer((json_int_t)x);
	return json_real((double)(int64_t)(x * scale + (x < 0 ? -0.5 : 0.5)) / scale);
}

/* A statistic: to 1/1000 (of a us, a KiB, a count). */
static json_t *jnum(double x)
{
	return jround(x, 1e3);
}

/* A record's figure: null when it has none. */
static json_t *juint(uint64_t x)
{
	return x == BENCH_NONE || x > INT64_MAX ? json_null() : json_integer((json_int_t)x);
}

static json_t *stats_json(const struct bench_stats *st, const struct bench_stats *flint)
{
	json_t *o = json_object();
	double ratio;
	int r = 0;

	if (!o)
		return NULL;
	put(o, "n", json_integer((json_int_t)st->n), &r);
	put(o, "failed", json_integer((json_int_t)st->n_failed), &r);
	put(o, "none", json_integer((json_int_t)st->n_none), &r);
	put(o, "p50", jnum(st->p50), &r);
	put(o, "p90", jnum(st->p90), &r);
	put(o, "p99", jnum(st->p99), &r);
	put(o, "min", jnum(st->min), &r);
	put(o, "max", jnum(st->max), &r);
	put(o, "mean", jnum(st->mean), &r);
	put(o, "ratio", flint && stats_ratio(st, flint, &ratio) ? jround(ratio, 1e6) : json_null(),
	    &r);
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Figure f of vmm as STATS into o under f's name (into the object
 * named group of o, made on first use, when group is not NULL), when
 * vmm has it. */
static int put_stats(const struct bench_set *s, json_t *o, const char *group, const char *vmm,
		     struct bench_fig f, bool flint)
{
	struct bench_stats st, fst;
	json_t *g = o;
	int r;

	if ((r = stats_of(s->runs, s->nruns, vmm, f, &st)) < 0)
		return r;
	if (!st.n)
		return 0;
	if (flint && (r = stats_of(s->runs, s->nruns, "flint", f, &fst)) < 0)
		return r;
	if (group && !(g = json_object_get(o, group))) {
		r = 0;
		put(o, group, json_object(), &r);
		if (r || !(g = json_object_get(o, group)))
			return -ENOMEM;
	}
	r = 0;
	put(g, stats_fig_name(f), stats_json(&st, flint ? &fst : NULL), &r);
	return r;
}

/* vmm's entry of "vmms". */
static int vmm_json(const struct bench_set *s, const char *vmm, json_t **out)
{
	const struct bench_missing *m = stats_missing_of(s, vmm);
	bool flint = has_runs(s, "flint");
	struct bench_fig figs[NFIGS];
	size_t nf = all_figs(figs), failed;
	const char *why;
	size_t n = runs_of(s, vmm, &failed, &why);
	json_t *o = json_object();
	int r = 0;

	*out = NULL;
	if (!o)
		return -ENOMEM;
	put(o, "name", json_string(vmm), &r);
	if (!n && m) {
		put(o, "status", json_string("missing"), &r);
		put(o, "why", json_string(m->why), &r);
		goto done;
	}
	/* "failed": not one of its runs succeeded (each run's why says how) */
	put(o, "status", json_string(n && failed == n ? "failed" : "ok"), &r);
	put(o, "runs", json_integer((json_int_t)n), &r);
	put(o, "failed", json_integer((json_int_t)failed), &r);
	/* The groups exist even when empty: a reader finds "phases" always. */
	put(o, "phases", json_object(), &r);
	put(o, "durations", json_object(), &r);
	put(o, "exits", json_object(), &r);
	for (size_t i = 0; i < nf && !r; i++) {
		const char *group = figs[i].kind == BF_PHASE  ? "phases"
				    : figs[i].kind == BF_EXIT ? "exits"
							      : NULL;

		r = put_stats(s, o, group, vmm, figs[i], flint);
	}
	for (unsigned p = 0; p < BP_COUNT && !r; p++)
		r = put_stats(s, o, "durations", vmm, (struct bench_fig){BF_DURATION, p}, flint);
done:
	if (r) {
		json_decref(o);
		return r;
	}
	*out = o;
	return 0;
}

/* Record i of s, its VMM's run-th, as an entry of "runs". */
static json_t *run_json(const struct bench_set *s, size_t i, size_t run)
{
	const struct bench_record *rec = &s->runs[i];
	json_t *o = json_object(), *ph = json_object(), *ex = json_object();
	int r = 0;

	if (!o || !ph || !ex) {
		json_decref(o);
		json_decref(ph);
		json_decref(ex);
		return NULL;
	}
	for (unsigned p = 0; p < BP_COUNT; p++)
		put(ph, bench_phase_name(p), juint(rec->phase_us[p]), &r);
	for (unsigned e = 0; e < BE_COUNT; e++)
		put(ex, bench_exit_name(e), juint(rec->exits[e]), &r);
	put(o, "index", json_integer((json_int_t)i), &r);
	put(o, "vmm", json_string(rec->vmm), &r);
	put(o, "run", json_integer((json_int_t)run), &r);
	put(o, "ok", json_boolean(rec->ok), &r);
	put(o, "why", json_string(rec->why), &r);
	put(o, "phases_us", ph, &r);
	put(o, "startup_us", juint(stats_startup_us(rec)), &r);
	put(o, "exits", ex, &r);
	put(o, "rss_overhead_kib", juint(rec->rss_overhead_kib), &r);
	put(o, "guest_touched_kib", juint(rec->guest_touched_kib), &r);
	put(o, "minor_faults", juint(rec->minor_faults), &r);
	put(o, "major_faults", juint(rec->major_faults), &r);
	put(o, "cpu_us", juint(rec->cpu_us), &r);
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A config member: a count or a string, when given. */
static void put_given_count(json_t *o, const char *k, uint64_t v, int *r)
{
	if (v)
		put(o, k, json_integer((json_int_t)v), r);
}

static void put_given_str(json_t *o, const char *k, const char *v, int *r)
{
	if (v)
		put(o, k, json_string(v), r);
}

static json_t *config_json(const struct bench_set *s)
{
	json_t *o = json_object();
	int r = 0;

	if (!o)
		return NULL;
	put_given_count(o, "runs", s->runs_asked, &r);
	/* 0 is a --warmup of its own: there whenever the bench's --runs is */
	if (s->runs_asked)
		put(o, "warmup", json_integer((json_int_t)s->warmup), &r);
	put_given_count(o, "concurrency", s->concurrency, &r);
	put_given_count(o, "vcpus", s->vcpus, &r);
	put_given_count(o, "mem_mib", s->mem_mib, &r);
	put_given_str(o, "kernel", s->kernel, &r);
	put_given_str(o, "rootfs", s->rootfs, &r);
	put_given_str(o, "cmdline", s->cmdline, &r);
	put_given_str(o, "flint_launch", s->flint_launch, &r);
	put_given_str(o, "isolation", s->isolation, &r);
	put_given_str(o, "image", s->image, &r);
	if (s->ncommand) {
		json_t *cmd = json_array();

		for (size_t i = 0; cmd && i < s->ncommand; i++)
			if (json_array_append_new(cmd, json_string(s->command[i])))
				r = -ENOMEM;
		put(o, "command", cmd, &r);
	}
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int report_json_build(const struct bench_set *s, json_t **out)
{
	const char *vmm[BENCH_MAX_VMMS];
	json_t *doc, *vmms, *runs;
	size_t nv;
	int r;

	*out = NULL;
	if ((r = vmms_of(s, vmm, &nv)) < 0)
		return r;
	if (!(doc = json_object()))
		return -ENOMEM;
	put(doc, "schema", json_string(REPORT_SCHEMA), &r);
	put(doc, "version", json_integer(REPORT_VERSION), &r);
	put(doc, "mode", json_string(s->mode ? s->mode : ""), &r);
	put(doc, "config", config_json(s), &r);
	put(doc, "percentile", json_string("linear"), &r);
	put(doc, "units", json_pack("{s:s, s:s}", "time", "us", "memory", "KiB"), &r);
	put(doc, "vmms", vmms = json_array(), &r);
	put(doc, "runs", runs = json_array(), &r);
	for (size_t i = 0; i < nv && !r; i++) {
		json_t *v;

		if ((r = vmm_json(s, vmm[i], &v)) == 0 && json_array_append_new(vmms, v))
			r = -ENOMEM;
	}
	size_t *num = r ? NULL : run_numbers(s, &r);

	for (size_t i = 0; i < s->nruns && !r; i++)
		if (json_array_append_new(runs, run_json(s, i, num[i])))
			r = -ENOMEM;
	free(num);
	if (r) {
		json_decref(doc);
		return r;
	}
	*out = doc;
	return 0;
}

int report_json(const struct bench_set *s, FILE *out)
{
	json_t *doc;
	int r;

	if ((r = report_json_build(s, &doc)) < 0)
		return r;
	r = json_dumpf(doc, out, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) ? -EIO : 0;
	json_decref(doc);
	if (!r && fputc('\n', out) == EOF)
		r = -EIO;
	return r ? r : flushed(out);
}

/* ----- CSV ----- */

/* One field, quoted when it holds a comma, a double quote or a line
 * break (RFC 4180; a double quote doubled). */
static void csv_field(FILE *out, const char *v)
{
	if (!strpbrk(v, ",\"\r\n")) {
		fputs(v, out);
		return;
	}
	fputc('"', out);
	for (; *v; v++) {
		if (*v == '"')
			fputc('"', out);
		fputc(*v, out);
	}
	fputc('"', out);
}

static void csv_uint(FILE *out, uint64_t v)
{
	if (v != BENCH_NONE)
		fprintf(out, "%" PRIu64, v);
}

static void csv_header(FILE *out)
{
	fputs("index,vmm,run,status,why", out);
	for (unsigned p = 0; p < BP_COUNT; p++)
		fprintf(out, ",%s_us", bench_phase_name(p));
	fputs(",startup_us", out);
	for (unsigned e = 0; e < BE_COUNT; e++)
		fprintf(out, ",%s", bench_exit_name(e));
	fputs(",rss_overhead_kib,guest_touched_kib,minor_faults,major_faults,cpu_us\n", out);
}

static void csv_run(const struct bench_set *s, size_t i, size_t run, FILE *out)
{
	const struct bench_record *rec = &s->runs[i];

	fprintf(out, "%zu,", i);
	csv_field(out, rec->vmm);
	fprintf(out, ",%zu,%s,", run, rec->ok ? "ok" : "failed");
	csv_field(out, rec->why);
	for (unsigned p = 0; p < BP_COUNT; p++) {
		fputc(',', out);
		csv_uint(out, rec->phase_us[p]);
	}
	fputc(',', out);
	csv_uint(out, stats_startup_us(rec));
	for (unsigned e = 0; e < BE_COUNT; e++) {
		fputc(',', out);
		csv_uint(out, rec->exits[e]);
	}
	const uint64_t mem[] = {rec->rss_overhead_kib, rec->guest_touched_kib, rec->minor_faults,
				rec->major_faults, rec->cpu_us};
	for (size_t k = 0; k < ARRAY_SIZE(mem); k++) {
		fputc(',', out);
		csv_uint(out, mem[k]);
	}
	fputc('\n', out);
}

/* A missing peer's row: its name, status and reason, every figure empty. */
static void csv_missing(const struct bench_missing *m, FILE *out)
{
	fputc(',', out);
	csv_field(out, m->vmm);
	fputs(",,missing,", out);
	csv_field(out, m->why);
	for (size_t k = 0; k < BP_COUNT + 1 + BE_COUNT + 5; k++)
		fputc(',', out);
	fputc('\n', out);
}

int report_csv(const struct bench_set *s, FILE *out)
{
	int r;
	size_t *num = run_numbers(s, &r);

	if (r < 0)
		return r;
	csv_header(out);
	for (size_t i = 0; i < s->nruns; i++)
		csv_run(s, i, num[i], out);
	free(num);
	for (size_t i = 0; i < s->nmissing; i++)
		if (!has_runs(s, s->missing[i].vmm))
			csv_missing(&s->missing[i], out);
	return flushed(out);
}
