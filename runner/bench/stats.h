/* stats: flint bench's numbers. One figure (a phase's time, a phase's
 * duration, the start-up latency, an exit counter, the RSS overhead, the
 * guest RAM touched, page faults) of one VMM over a bench's runs:
 * percentiles, min, max, mean, and the ratio to flint's.
 *
 * Percentiles are linear interpolation between the closest ranks (R's
 * type 7, Hyndman and Fan's definition 7): over the n values sorted,
 * x[0] <= ... <= x[n-1], the p-th percentile is at rank h = (n - 1) p/100,
 * x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]). Chosen over
 * nearest-rank because a dashboard that recomputes from the raw runs gets
 * the same numbers from the tools it has (numpy.percentile's default,
 * pandas' quantile, a spreadsheet's PERCENTILE.INC), and because p50 is
 * then the usual median (the mean of the two middle values when n is
 * even), the median bench/table.awk prints. With the few runs a bench has,
 * p99 lies between the two largest values (nearest-rank would call it the
 * largest from 2 runs to 100). n = 1: every percentile is the value.
 *
 * Only runs that succeeded count (ok); failed ones are counted apart, and
 * a figure a run does not have (BENCH_NONE) is left out, never read as 0. */
#ifndef FLINT_BENCH_STATS_H
#define FLINT_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/record.h"
#include "core/util.h"

/* What a figure is read from. BF_PHASE, BF_DURATION and BF_EXIT take an
 * index (enum bench_phase, enum bench_exit); the others none. */
enum bench_fig_kind {
	BF_PHASE,	  /* the phase's time from the launch, us */
	BF_DURATION,	  /* the phase's time minus the previous one's, us */
	BF_STARTUP,	  /* launch to the last start-up phase reached, us */
	BF_EXIT,	  /* an exit counter */
	BF_RSS_OVERHEAD,  /* KiB */
	BF_GUEST_TOUCHED, /* KiB */
	BF_MINOR_FAULTS,
	BF_MAJOR_FAULTS,
	BF_CPU, /* the VMM's CPU time, us */
};

struct bench_fig {
	enum bench_fig_kind kind;
	unsigned index;
};

/* The start-up phases: a boot's up to its first output, a restore's up to
 * its first response, a serve request's up to its answer read
 * (BP_RESPONSE: "startup" is then the request's latency); BP_EXIT, the
 * process's end, is not one. */
#define BENCH_STARTUP_PHASES BP_EXIT

/* Run r's time of its last start-up phase reached (the largest of them),
 * or BENCH_NONE when it reached none; with r->to_exit its BP_EXIT. */
uint64_t stats_startup_us(const struct bench_record *r);

/* Phase p's duration in run r: its time minus the time of the phase
 * reached just before it. "Before" is in time, not in the enum's order
 * (a restore reports process start and state read, a boot skips what its
 * VMM does not report): the run's phases reached, start-up ones apart
 * from BP_EXIT, sorted by time (ties by the enum's order), each minus the
 * one before it, the first minus the launch (0). So a run's durations add
 * up to its start-up latency, and BP_EXIT's is the teardown after the
 * last start-up phase. BENCH_NONE when p was not reached. */
uint64_t stats_duration_us(const struct bench_record *r, enum bench_phase p);

/* Figure f of run r, or BENCH_NONE (not there, or f out of range). */
uint64_t stats_fig_value(const struct bench_record *r, struct bench_fig f);

/* f's name as the reports print it and the JSON keys it: a phase's (for
 * its time and its duration alike), an exit counter's, "startup",
 * "rss_overhead_kib", "guest_touched_kib", "minor_faults",
 * "major_faults", "cpu"; NULL for an index out of range. */
const char *stats_fig_name(struct bench_fig f);

/* f's unit as the JSON and the CSV name it: "us", "KiB" or "count". */
const char *stats_fig_unit(struct bench_fig f);

/* A figure over a VMM's runs. n counts the successful runs that have the
 * figure, n_failed the VMM's failed runs, n_none the successful ones
 * without it. The rest is meaningful only when n > 0 (0 otherwise). */
struct bench_stats {
	size_t n, n_failed, n_none;
	double p50, p90, p99, min, max, mean;
};

/* Sort v[0..n) ascending. */
void stats_sort(double *v, size_t n);

/* The p-th percentile (0 to 100) of sorted[0..n) as above; 0 when n is 0. */
double stats_percentile(const double *sorted, size_t n, double p);

/* st of figure f over the runs of vmm among runs[0..n) (any order). 0 or
 * -ENOMEM. */
int stats_of(const struct bench_record *runs, size_t n, const char *vmm, struct bench_fig f,
	     struct bench_stats *st) WARN_UNUSED;

/* The ratio of x's p50 to flint's (above 1: more than flint, slower than
 * flint for a time) into *ratio; false, with *ratio 0, when either has
 * no value or flint's p50 is 0. */
bool stats_ratio(const struct bench_stats *x, const struct bench_stats *flint, double *ratio);

/* The most VMMs a bench compares (flint and its peers), for callers'
 * arrays. */
#define BENCH_MAX_VMMS 16

/* The VMMs of set s in the order the reports show them: "flint" first
 * when it has runs, then the others in the order of their first run, then
 * the missing peers that have none. Up to max names (pointers into s's
 * records and missing entries) into names; returns how many there are
 * (which may be more than max). */
size_t stats_vmms(const struct bench_set *s, const char **names, size_t max);

/* Whether vmm is among s's missing peers; its entry, or NULL. */
const struct bench_missing *stats_missing_of(const struct bench_set *s, const char *vmm);

#endif
