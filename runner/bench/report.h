/* report: flint bench's outputs of a set of runs (flint's and its peers',
 * see record.h): a text table for people, JSON for dashboards and
 * --baseline, CSV for spreadsheets. Numbers are stats.h's (percentiles by
 * linear interpolation, failed runs and missing figures left out). Peers
 * that were missing are in every output with their reason.
 *
 * The text table: a header naming the mode and each VMM's runs, then one
 * row per figure and VMM with nine columns, "-" where there is no value:
 *   figure vmm n p50 p90 p99 min max ratio
 * figures in this order: each phase some VMM reported (its time from the
 * launch), "startup" (launch to the last start-up phase reached), each
 * exit counter some VMM reported, rss_overhead_kib, guest_touched_kib,
 * minor_faults, major_faults, cpu (the VMM's CPU time, record.h), each
 * where some VMM has it. Times in ms
 * with three decimals (us exact), memory in KiB, counts as they are;
 * ratio is the VMM's p50 over flint's. Then a line per VMM whose runs
 * failed (how many, the first reason) and per missing peer (its reason).
 *
 * JSON (one object; numbers in microseconds, KiB or counts; a value that
 * is not there is null or left out, never 0):
 *   { "schema": "flint-bench", "version": 1,
 *     "mode": "boot",
 *     "config": { "runs": N, "warmup": N, "concurrency": N, "vcpus": N,
 *                 "mem_mib": N, "kernel": S, "rootfs": S, "cmdline": S },
 *              (as the set gives them: one not given is left out)
 *     "percentile": "linear",   (stats.h's definition: R's type 7)
 *     "units": { "time": "us", "memory": "KiB" },
 *     "vmms": [ one per VMM, flint first:
 *       { "name": "flint", "status": "ok", "runs": N, "failed": N,
 *         "phases":    { PHASE: STATS, ... }, (each phase it reported)
 *         "durations": { PHASE: STATS, ... }, (a phase's time minus the
 *                                             previous one's, stats.h)
 *         "startup": STATS,                   (or absent)
 *         "exits":     { COUNTER: STATS, ... },
 *         "rss_overhead_kib": STATS, "guest_touched_kib": STATS,
 *         "minor_faults": STATS, "major_faults": STATS,
 *         "cpu": STATS (us; each if reported) },
 *       { "name": "lkvm", "status": "missing", "why": S } ],
 *     "runs": [ every record, in the order they ran:
 *       { "index": I (0-based, over all runs), "vmm": S,
 *         "run": R (1-based, this VMM's), "ok": B, "why": S,
 *         "phases_us": { PHASE: us or null, ... every phase },
 *         "startup_us": us or null, (launch to the last start-up phase)
 *         "exits": { COUNTER: n or null, ... every counter },
 *         "rss_overhead_kib": n or null, "guest_touched_kib": n or null,
 *         "minor_faults": n or null, "major_faults": n or null,
 *         "cpu_us": us or null } ] }
 *   STATS = { "n": N, "failed": N, "none": N, "p50": X, "p90": X,
 *             "p99": X, "min": X, "max": X, "mean": X,
 *             "ratio": X or null }
 *   (n: the successful runs that have it; none: the successful ones that
 *   do not; X an integer when whole, else rounded to 1/1000; ratio: the
 *   p50 over flint's to 1/10^6, null without one). A figure is in "phases",
 *   "exits"... only when n > 0. Version 1 readers (baseline.c) refuse
 *   other versions; adding members keeps the version, changing or removing
 *   one bumps it.
 *
 * CSV (RFC 4180 fields, lines ending in LF, a header line first): one row
 * per run, the wide form that a spreadsheet filters, sorts and charts a
 * column of (its PERCENTILE.INC over a column gives the report's
 * numbers):
 *   index,vmm,run,status,why,<PHASE>_us...,startup_us,<COUNTER>...,
 *   rss_overhead_kib,guest_touched_kib,minor_faults,major_faults,cpu_us
 * every phase and counter always (the columns do not depend on the
 * mode), an empty cell where a run has no value; status is ok or failed,
 * and a missing peer has one row of its own with status missing, its
 * reason in why and every other cell but vmm empty.
 *
 * Functions write to out and return 0 or -errno: -EIO when a write
 * fails, -ENOMEM, -E2BIG for more VMMs than BENCH_MAX_VMMS. */
#ifndef FLINT_BENCH_REPORT_H
#define FLINT_BENCH_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "bench/record.h"
#include "core/util.h"

#define REPORT_SCHEMA  "flint-bench"
#define REPORT_VERSION 1

/* The text table of s. */
int report_table(const struct bench_set *s, FILE *out) WARN_UNUSED;

/* The JSON document of s as a new object in *out (the caller
 * json_decref()s it): what report_json() writes and --baseline reads. */
int report_json_build(const struct bench_set *s, json_t **out) WARN_UNUSED;

/* The JSON document of s, indented, with a final line feed. */
int report_json(const struct bench_set *s, FILE *out) WARN_UNUSED;

/* The CSV of s. */
int report_csv(const struct bench_set *s, FILE *out) WARN_UNUSED;

#endif
