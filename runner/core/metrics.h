/* Metrics: Firecracker's metrics file (--metrics-path, PUT /metrics, a
 * config file's "metrics"; flushed every 60 s and on the FlushMetrics
 * action).
 *
 * Each flush writes one line, one compact JSON object:
 *     {"utc_timestamp_ms":1739000000000,"logger":{...},"api_server":{...},...}
 * with one member per section ("api_server", "block_rootfs", "net_eth0",
 * "vsock", "entropy", "vcpu", "vmm", "latencies_us"...), in the order the
 * sections were first registered. A section's members come from the
 * sources registered under its name: each source's fill() adds numbers to
 * the section's object (metrics_put; nested objects allowed).
 *
 * Two kinds of source, as Firecracker's two kinds of metric:
 *  - counters (metrics_add_source), Firecracker's SharedIncMetric: fill()
 *    puts running totals and the file gets, for each, what it grew by
 *    since the last flush that was written (a total that went down, e.g.
 *    a device made anew, counts from zero). A failed write loses nothing:
 *    the next line carries the growth since the last written one;
 *  - gauges (metrics_add_gauges), Firecracker's SharedStoreMetric: values
 *    written as they are (latencies, start-up time).
 * The module registers the "logger" section itself (missed_metrics_count,
 * metrics_fails, missed_log_count, log_fails), as Firecracker's.
 *
 * Thread safety: every function may be called from any thread; fills run
 * one at a time, under the module's lock, on the thread that flushes (the
 * VM's control thread for the timer and FlushMetrics). A flush makes no
 * system call besides write, clock_gettime and malloc's. */
#ifndef FLINT_METRICS_H
#define FLINT_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/vm_config.h"
#include "core/util.h"

/* Firecracker flushes every 60 s. */
#define METRICS_PERIOD_S 60

struct metrics;

/* A source: add this section's numbers to obj (metrics_put). ctx is the
 * pointer given at registration. */
typedef void metrics_fill_fn(void *ctx, json_t *obj);

/* A metrics object, not configured (flushes write nothing), its timer
 * disarmed. Returns 0 or -errno. Release with metrics_destroy. */
int metrics_create(struct metrics **m) WARN_UNUSED;
/* Close the file and the timer and free m. NULL is fine. */
void metrics_destroy(struct metrics *m);

/* Open c->metrics_path and start the 60 s timer. The path is opened as
 * Firecracker opens it: read-write (a named pipe with no reader yet opens
 * at once, a full one fails a write instead of blocking: non-blocking),
 * created (0644) when missing, close-on-exec; and appending where
 * Firecracker writes from offset 0, so that a reused file keeps whole
 * lines. Once only, as Firecracker ("Reinitialization of metrics not
 * allowed": -EALREADY). Call before the control thread's seccomp filter
 * (open). Returns 0 or -errno with err saying why. c is not kept. */
int metrics_configure(struct metrics *m, const struct vmc_metrics *c, char *err,
		      size_t errlen) WARN_UNUSED;

/* Register fill(ctx, obj) under section (copied), as a source of counters
 * (add_source) or of gauges (add_gauges); several sources may share a
 * section. Returns 0 or -ENOMEM. */
int metrics_add_source(struct metrics *m, const char *section, metrics_fill_fn *fill,
		       void *ctx) WARN_UNUSED;
int metrics_add_gauges(struct metrics *m, const char *section, metrics_fill_fn *fill,
		       void *ctx) WARN_UNUSED;
/* Forget every source registered with ctx (before ctx goes away: a device
 * destroyed). A section left without sources is no longer written. */
void metrics_remove_sources(struct metrics *m, void *ctx);

/* For fills: set obj[name] to v. */
void metrics_put(json_t *obj, const char *name, uint64_t v);

/* Write one line now. Without a metrics_path, nothing is written and 0 is
 * returned (as Firecracker's FlushMetrics before PUT /metrics). Returns 0,
 * or -errno with err saying why (-EAGAIN: a full pipe), the line then
 * counted in the "logger" section's missed_metrics_count. */
int metrics_flush(struct metrics *m, char *err, size_t errlen) WARN_UNUSED;

/* The timer for the control thread's poll loop: readable every
 * METRICS_PERIOD_S once metrics_configure ran (never before). Owned by m. */
int metrics_timer_fd(const struct metrics *m);
/* The timer fd was readable: consume its expirations and flush. A failed
 * flush is logged (pr_warn) here. Returns 0 (also when the timer had not
 * expired after all) or the flush's -errno. */
int metrics_on_timer(struct metrics *m);

#endif
