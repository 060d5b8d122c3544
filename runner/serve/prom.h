/* prom: metrics in Prometheus' text exposition format 0.0.4, for flint
 * serve's GET /metrics.
 *
 * A registry holds metric families (a counter, a gauge or a histogram with
 * fixed bucket bounds), each with a fixed list of label names and, under
 * it, one series per set of label values (function="x"), made at its first
 * update. Updates may come from any thread: each family has a lock, held
 * for the few instructions of an update and while the family is rendered,
 * so a histogram's buckets, sum and count are always rendered from the
 * same observations.
 *
 * Rendering follows the format's rules: a "# HELP" line (backslash and
 * line feed escaped) and a "# TYPE" line before each family's samples,
 * which come as one group; label values with backslash, double quote and
 * line feed escaped; a histogram x as x_bucket{...,le="B"} lines, one per
 * bound in increasing order and counting every observation <= B
 * (cumulative), then le="+Inf" (equal to x_count), x_sum and x_count.
 * Families come in the order they were added, series sorted by their
 * label values (byte order, label by label), so that two renders of the
 * same state are the same text. Values are written as Prometheus' own Go
 * client writes them (strconv.FormatFloat(v, 'g', -1, 64): the fewest
 * digits that read back as the same double, exponent form below 1e-4 and
 * from 1e+06 up; NaN, +Inf, -Inf).
 *
 * Functions return 0 or -errno: -EINVAL for a bad argument, -EEXIST for a
 * family whose samples' names clash with another's, -ENOENT for a series
 * that is not there, -ENOMEM. */
#ifndef FLINT_SERVE_PROM_H
#define FLINT_SERVE_PROM_H

#include <stddef.h>

#include "core/util.h"

/* The Content-Type of what prom_render() writes. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* At most so many bytes in a metric or label name, label names per
 * family and bounds per histogram. */
#define PROM_MAX_NAME	128
#define PROM_MAX_LABELS 8
#define PROM_MAX_BOUNDS 64

/* Room for any value prom_format_value() writes, NUL included. */
#define PROM_VALUE_MAX 32

enum prom_type {
	PROM_COUNTER,
	PROM_GAUGE,
	PROM_HISTOGRAM,
};

struct prom_registry;
struct prom_family;

int prom_registry_create(struct prom_registry **out) WARN_UNUSED;
/* Frees the registry and its families (whose pointers die with it). No
 * update may run concurrently. NULL is fine. */
void prom_registry_destroy(struct prom_registry *r);

/* Add a family to r and return it in *out (owned by r; valid until
 * prom_registry_destroy, and safe to use from any thread).
 *   name    a metric name, [a-zA-Z_:][a-zA-Z0-9_:]*, at most PROM_MAX_NAME
 *           bytes
 *   help    its HELP text, any UTF-8 (escaped when rendered)
 *   labels  NULL-terminated label names (NULL for none), each
 *           [a-zA-Z_][a-zA-Z0-9_]* not starting "__" (reserved by
 *           Prometheus), at most PROM_MAX_NAME bytes, distinct, and not
 *           "le" for a histogram; at most PROM_MAX_LABELS
 *   bounds  a histogram's bucket upper bounds, n of them (1 to
 *           PROM_MAX_BOUNDS), finite and strictly increasing; the +Inf
 *           bucket is added. NULL and 0 for counters and gauges.
 * A family without labels has its one series from the start (rendered as
 * 0); a labelled one renders its HELP and TYPE lines only until its first
 * update. -EEXIST when a sample name of the new family (name, or
 * name_bucket, name_sum, name_count for a histogram) is a name or sample
 * name of one already there. Strings are copied. */
int prom_family_add(struct prom_registry *r, enum prom_type type, const char *name,
		    const char *help, const char *const *labels, const double *bounds, size_t n,
		    struct prom_family **out) WARN_UNUSED;

/* Updates. values holds one string per label name of f, in their order
 * (NULL when f has none); any UTF-8, copied when the series is made.
 * -EINVAL when f is of another type, a value is NULL, or v is refused. */
/* A counter's series grows by v (finite, >= 0). */
int prom_counter_add(struct prom_family *f, const char *const *values, double v) WARN_UNUSED;
/* A gauge's series is set to v, or moved by v. */
int prom_gauge_set(struct prom_family *f, const char *const *values, double v) WARN_UNUSED;
int prom_gauge_add(struct prom_family *f, const char *const *values, double v) WARN_UNUSED;
/* A histogram's series counts v (not NaN) in the first bucket whose bound
 * is >= v (a value equal to a bound goes in that bound's bucket), or in
 * +Inf's, and adds it to the sum. */
int prom_histogram_observe(struct prom_family *f, const char *const *values, double v) WARN_UNUSED;

/* Drop the series of values from f (a deleted function's), or -ENOENT. A
 * family without labels keeps its one series: -EINVAL. */
int prom_series_remove(struct prom_family *f, const char *const *values) WARN_UNUSED;

/* The whole registry as text, into a malloc'd NUL-terminated *out of *len
 * bytes (the caller frees it). Safe while updates run. */
int prom_render(struct prom_registry *r, char **out, size_t *len) WARN_UNUSED;

/* v as the format writes it (see above) into buf of at least
 * PROM_VALUE_MAX bytes. */
void prom_format_value(double v, char *buf);

#endif
