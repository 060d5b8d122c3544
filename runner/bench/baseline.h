/* baseline: flint bench --baseline FILE --max-regress PCT, for CI. FILE is
 * an earlier --json output (report.h's schema, version 1, of the same
 * mode); each phase's p50, and the start-up latency's, is compared with
 * this bench's, for flint and for each peer in both, and the change is
 * written out:
 *
 *   vmm figure baseline now change [REGRESSED ...]
 *
 * times in ms, the change in percent of the baseline's p50 ("new" for a
 * figure the baseline does not have, "gone" for one this bench does not).
 * flint has regressed when one of its p50s grew by more than PCT percent
 * (exactly PCT is within; from a p50 of 0, any growth is over), or when a
 * figure of its baseline is gone (a phase no longer reached: all its runs
 * failed, or it no longer reports it; refresh the baseline when that is
 * meant). flint's rows are "flint" and "flint-uffd" (restore's Uffd
 * backend); a row of flint's not run now beside another is a --backend
 * left out, not gone. The peers' changes are shown, never counted: they
 * are not the code under test. */
#ifndef FLINT_BENCH_BASELINE_H
#define FLINT_BENCH_BASELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bench/record.h"
#include "core/util.h"

/* Read the baseline file at path for a bench of mode: 0 with the document
 * in *out (the caller's: json_decref), or -errno with err saying what is
 * wrong and naming the file: it cannot be read, is not JSON, is not flint
 * bench's (schema), is of another version or mode, for a boot launched
 * flint otherwise than launch ("flint" or "flint run"; a baseline without
 * config.flint_launch is a flint run's; NULL: not checked), has no flint
 * (or flint without a p50: every run of it failed then), or a
 * member is missing or of the wrong type (its path, as
 * vmms[0].phases.launch-to-init.p50). Before the runs, so that a bad
 * baseline costs no bench, and an output written over the file does not
 * change what the bench is compared with. */
int baseline_load(const char *path, const char *mode, const char *launch, json_t **out, char *err,
		  size_t errlen) WARN_UNUSED;

/* Whether the baseline base (named name) was made with the settings of
 * set s (its runs not looked at) that the figures depend on: --concurrency,
 * --vcpus, --mem, the kernel command line and serve's --isolation, each
 * where both give it. 0, or -EINVAL with err naming the first that
 * differs. Before the runs; baseline_compare checks it again. */
int baseline_check_config(json_t *base, const char *name, const struct bench_set *s, char *err,
			  size_t errlen) WARN_UNUSED;

/* Compare set s with the baseline base (baseline_load's, named name in
 * messages), writing the comparison to out and whether flint regressed by
 * more than max_pct to *regressed. 0, or -errno with err: -EINVAL for a
 * max_pct below 0 or not a number; -EIO when writing out fails. */
int baseline_check(const struct bench_set *s, json_t *base, const char *name, double max_pct,
		   FILE *out, bool *regressed, char *err, size_t errlen) WARN_UNUSED;

/* The same on documents already parsed: base (named name in messages)
 * against cur (report_json_build()'s, taken as valid). */
int baseline_compare(json_t *base, json_t *cur, const char *name, double max_pct, FILE *out,
		     bool *regressed, char *err, size_t errlen) WARN_UNUSED;

#endif
