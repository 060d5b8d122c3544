/* stats: flint bench's numbers. See stats.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench/stats.h"

uint64_t stats_startup_us(const struct bench_record *r)
{
	uint64_t last = BENCH_NONE;

	if (r->to_exit)
		return r->phase_us[BP_EXIT];
	for (int p = 0; p < BENCH_STARTUP_PHASES; p++)
		if (r->phase_us[p] != BENCH_NONE && (last == BENCH_NONE || r->phase_us[p] > last))
			last = r->phase_us[p];
	return last;
}

/* Whether phase q comes before phase p in run r's order: by time, then by
 * the enum's order. */
static bool before(const struct bench_record *r, int q, int p)
{
	return r->phase_us[q] < r->phase_us[p] || (r->phase_us[q] == r->phase_us[p] && q < p);
}

uint64_t stats_duration_us(const struct bench_record *r, enum bench_phase p)
{
	uint64_t prev = 0;

	if ((unsigned)p >= BP_COUNT || r->phase_us[p] == BENCH_NONE)
		return BENCH_NONE;
	/* BP_EXIT follows every start-up phase; no start-up phase follows it. */
	for (int q = 0; q < BP_COUNT; q++) {
		if (q == (int)p || r->phase_us[q] == BENCH_NONE)
			continue;
		if (p != BP_EXIT && q == BP_EXIT)
			continue;
		if (before(r, q, p) && r->phase_us[q] > prev)
			prev = r->phase_us[q];
	}
	return r->phase_us[p] >= prev ? r->phase_us[p] - prev : 0;
}

uint64_t stats_fig_value(const struct bench_record *r, struct bench_fig f)
{
	switch (f.kind) {
	case BF_PHASE:
		return f.index < BP_COUNT ? r->phase_us[f.index] : BENCH_NONE;
	case BF_DURATION:
		return stats_duration_us(r, f.index);
	case BF_STARTUP:
		return stats_startup_us(r);
	case BF_EXIT:
		return f.index < BE_COUNT ? r->exits[f.index] : BENCH_NONE;
	case BF_RSS_OVERHEAD:
		return r->rss_overhead_kib;
	case BF_GUEST_TOUCHED:
		return r->guest_touched_kib;
	case BF_MINOR_FAULTS:
		return r->minor_faults;
	case BF_MAJOR_FAULTS:
		return r->major_faults;
	case BF_CPU:
		return r->cpu_us;
	}
	return BENCH_NONE;
}

const char *stats_fig_name(struct bench_fig f)
{
	switch (f.kind) {
	case BF_PHASE:
	case BF_DURATION:
		return bench_phase_name(f.index);
	case BF_STARTUP:
		return "startup";
	case BF_EXIT:
		return bench_exit_name(f.index);
	case BF_RSS_OVERHEAD:
		return "rss_overhead_kib";
	case BF_GUEST_TOUCHED:
		return "guest_touched_kib";
	case BF_MINOR_FAULTS:
		return "minor_faults";
	case BF_MAJOR_FAULTS:
		return "major_faults";
	case BF_CPU:
		return "cpu";
	}
	return NULL;
}

const char *stats_fig_unit(struct bench_fig f)
{
	switch (f.kind) {
	case BF_PHASE:
	case BF_DURATION:
	case BF_STARTUP:
	case BF_CPU:
		return "us";
	case BF_RSS_OVERHEAD:
	case BF_GUEST_TOUCHED:
		return "KiB";
	default:
		return "count";
	}
}

double stats_percentile(const double *sorted, size_t n, double p)
{
	double h, frac;
	size_t lo;

	if (!n)
		return 0;
	if (p <= 0)
		return sorted[0];
	if (p >= 100)
		return sorted[n - 1];
	h = (double)(n - 1) * p / 100;
	lo = (size_t)h;
	frac = h - (double)lo;
	if (lo + 1 >= n)
		return sorted[n - 1];
	return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void stats_sort(double *v, size_t n)
{
	if (n)
		qsort(v, n, sizeof(*v), cmp_double);
}

int stats_of(const struct bench_record *runs, size_t n, const char *vmm, struct bench_fig f,
	     struct bench_stats *st)
{
	double *v = NULL, sum = 0;
	size_t k = 0;

	memset(st, 0, sizeof(*st));
	if (n && !(v = malloc(n * sizeof(*v))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint64_t x;

		if (strcmp(runs[i].vmm, vmm))
			continue;
		if (!runs[i].ok) {
			st->n_failed++;
			continue;
		}
		x = stats_fig_value(&runs[i], f);
		if (x == BENCH_NONE) {
			st->n_none++;
			continue;
		}
		v[k++] = (double)x;
		sum += (double)x;
	}
	st->n = k;
	if (k) {
		stats_sort(v, k);
		st->p50 = stats_percentile(v, k, 50);
		st->p90 = stats_percentile(v, k, 90);
		st->p99 = stats_percentile(v, k, 99);
		st->min = v[0];
		st->max = v[k - 1];
		st->mean = sum / (double)k;
	}
	free(v);
	return 0;
}

bool stats_ratio(const struct bench_stats *x, const struct bench_stats *flint, double *ratio)
{
	*ratio = 0;
	if (!x->n || !flint->n || flint->p50 <= 0)
		return false;
	*ratio = x->p50 / flint->p50;
	return true;
}

/* Whether vmm has a run among s's first i runs (i = s->nruns: any). */
static bool has_run(const struct bench_set *s, size_t i, const char *vmm)
{
	for (size_t j = 0; j < i; j++)
		if (!strcmp(s->runs[j].vmm, vmm))
			return true;
	return false;
}

/* names[n] = v when there is room; the count grows either way. */
static void add(const char **names, size_t max, size_t *n, const char *v)
{
	if (*n < max)
		names[*n] = v;
	(*n)++;
}

size_t stats_vmms(const struct bench_set *s, const char **names, size_t max)
{
	bool flint = has_run(s, s->nruns, "flint");
	size_t n = 0;

	if (flint)
		add(names, max, &n, "flint");
	for (size_t i = 0; i < s->nruns; i++) {
		const char *v = s->runs[i].vmm;

		if (strcmp(v, "flint") && !has_run(s, i, v))
			add(names, max, &n, v);
	}
	for (size_t i = 0; i < s->nmissing; i++) {
		const char *v = s->missing[i].vmm;
		bool seen = has_run(s, s->nruns, v);

		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(s->missing[j].vmm, v);
		if (!seen)
			add(names, max, &n, v);
	}
	return n;
}

const struct bench_missing *stats_missing_of(const struct bench_set *s, const char *vmm)
{
	for (size_t i = 0; i < s->nmissing; i++)
		if (!strcmp(s->missing[i].vmm, vmm))
			return &s->missing[i];
	return NULL;
}
