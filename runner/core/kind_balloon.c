/* The balloon device kind (PUT /balloon): at most one virtio-balloon
 * device, known as "balloon". */
#include <errno.h>
#include <string.h>

#include "balloon/balloon.h"
#include "core/device_kinds.h"

#define ULL(x) ((unsigned long long)(x))

/* MiB to the device's 4 KiB pages. */
#define PAGES_PER_MIB ((1u << 20) / BALLOON_PAGE)

/* The guest's statistics by VIRTIO_BALLOON_S_* tag, as Firecracker names
 * them in GET /balloon/statistics. */
static const char *const stat_names[BALLOON_NSTATS] = {
    "swap_in",	      "swap_out",	  "major_faults", "minor_faults",	 "free_memory",
    "total_memory",   "available_memory", "disk_caches",  "hugetlb_allocations", "hugetlb_failures",
    "oom_kill",	      "alloc_stall",	  "async_scan",	  "direct_scan",	 "async_reclaim",
    "direct_reclaim",
};

static unsigned balloon_count(const struct vm_config *c)
{
	return c->balloon.enabled;
}

static char *balloon_id(const struct vm_config *c, unsigned i)
{
	(void)c;
	(void)i;
	return strdup("balloon");
}

static int balloon_kind_create(const struct vm_config *c, unsigned i, const char *id,
			       const struct device_env *env, struct device_new *out)
{
	struct balloon_params p = {
	    .target_pages = c->balloon.amount_mib * PAGES_PER_MIB,
	    .deflate_on_oom = c->balloon.deflate_on_oom,
	    .stats_interval_s = c->balloon.stats_polling_interval_s,
	    .free_page_hinting = c->balloon.free_page_hinting,
	    .free_page_reporting = c->balloon.free_page_reporting,
	    .loop = env->loop,
	};
	struct balloon *b = NULL;
	int err;

	(void)i;
	(void)id;
	if ((err = balloon_create(&b, &p)) < 0)
		return err;
	*out = (struct device_new){.priv = b, .ops = &balloon_ops, .front = b};
	return 0;
}

static void balloon_kind_destroy(void *dev)
{
	balloon_destroy(dev);
}

static void balloon_print_stats(const struct device *d)
{
	struct balloon_counters n;
	struct balloon_info in;

	balloon_get_counters(device_priv(d), &n);
	balloon_get_info(device_priv(d), &in);
	pr_info("balloon: target=%u pages actual=%u; inflated=%llu pages in %llu requests, "
		"deflated=%llu in %llu; statistics=%llu; free page reports=%llu (%llu bytes); "
		"free page hints=%llu (%llu bytes); errors=%llu",
		in.target_pages, in.actual_pages, ULL(n.pages_inflated), ULL(n.inflate_count),
		ULL(n.pages_deflated), ULL(n.deflate_count), ULL(n.stats_updates_count),
		ULL(n.free_page_report_count), ULL(n.free_page_report_freed),
		ULL(n.free_page_hint_count), ULL(n.free_page_hint_freed),
		ULL(n.event_fails + n.free_page_report_fails + n.free_page_hint_fails));
}

/* Firecracker's balloon metric names, and flint's page counts. */
static void balloon_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	struct balloon_counters n;

	balloon_get_counters(device_priv(d), &n);
	emit(ctx, "inflate_count", n.inflate_count);
	emit(ctx, "deflate_count", n.deflate_count);
	emit(ctx, "stats_updates_count", n.stats_updates_count);
	emit(ctx, "stats_update_fails", n.stats_update_fails);
	emit(ctx, "event_fails", n.event_fails);
	emit(ctx, "free_page_report_count", n.free_page_report_count);
	emit(ctx, "free_page_report_freed", n.free_page_report_freed);
	emit(ctx, "free_page_report_fails", n.free_page_report_fails);
	emit(ctx, "free_page_hint_count", n.free_page_hint_count);
	emit(ctx, "free_page_hint_freed", n.free_page_hint_freed);
	emit(ctx, "free_page_hint_fails", n.free_page_hint_fails);
	emit(ctx, "pages_inflated", n.pages_inflated);
	emit(ctx, "pages_deflated", n.pages_deflated);
}

/* GET /balloon/statistics: Firecracker's BalloonStats, the guest's values
 * only once given. */
static void balloon_report(const struct device *d, device_counter_fn emit, void *ctx)
{
	struct balloon_info in;

	balloon_get_info(device_priv(d), &in);
	emit(ctx, "target_pages", in.target_pages);
	emit(ctx, "actual_pages", in.actual_pages);
	emit(ctx, "target_mib", in.target_pages / PAGES_PER_MIB);
	emit(ctx, "actual_mib", in.actual_pages / PAGES_PER_MIB);
	for (unsigned t = 0; t < BALLOON_NSTATS; t++)
		if (in.have[t])
			emit(ctx, stat_names[t], in.stat[t]);
}

static int balloon_update(void *dev, const struct vm_config *c, unsigned i, unsigned changes,
			  struct vm_err *err)
{
	(void)i;
	if ((changes & DEVICE_CHANGE_STATS_INTERVAL) &&
	    balloon_set_stats_interval(dev, c->balloon.stats_polling_interval_s) < 0)
		return vm_err_set(err, -EINVAL,
				  "Statistics cannot be enabled/disabled after activation.");
	if (changes & DEVICE_CHANGE_TARGET)
		balloon_set_target(dev, c->balloon.amount_mib * PAGES_PER_MIB);
	return 0;
}

/* Free page hinting (PATCH /balloon/hinting/start and stop, GET
 * /balloon/hinting/status: host_cmd, and guest_cmd once the guest sent one). */
static int balloon_command(void *dev, enum device_command cmd, uint64_t arg, device_counter_fn emit,
			   void *ctx, struct vm_err *err)
{
	struct balloon_hint_status st;
	int r;

	switch (cmd) {
	case DEVICE_CMD_HINT_START:
		r = balloon_hint_start(dev, arg != 0);
		break;
	case DEVICE_CMD_HINT_STOP:
		r = balloon_hint_stop(dev);
		break;
	case DEVICE_CMD_HINT_STATUS:
		if ((r = balloon_hint_status(dev, &st)) < 0)
			break;
		emit(ctx, "host_cmd", st.host_cmd);
		if (st.have_guest_cmd)
			emit(ctx, "guest_cmd", st.guest_cmd);
		break;
	default:
		return vm_err_set(err, -EOPNOTSUPP, "the balloon takes no command %d", cmd);
	}
	if (r == -ENODEV) /* Firecracker's words for a driver that has not started it */
		return vm_err_set(err, r, "Device not activated yet.");
	return r < 0 ? vm_err_set(err, r, "Attempting to use hinting when not enabled") : 0;
}

static void balloon_kind_quiesce(void *dev)
{
	balloon_quiesce(dev);
}

static int balloon_kind_save(const void *dev, struct wbuf *w)
{
	return balloon_save(dev, w);
}

static int balloon_kind_restore(void *dev, struct rbuf *r, char *err, size_t errlen)
{
	return balloon_restore(dev, r, err, errlen);
}

const struct device_kind balloon_kind = {
    .name = "balloon",
    .label = "balloon device",
    .metrics_section = "balloon",
    .count = balloon_count,
    .id = balloon_id,
    .create = balloon_kind_create,
    .destroy = balloon_kind_destroy,
    .print_stats = balloon_print_stats,
    .counters = balloon_counters,
    .report = balloon_report,
    .update = balloon_update,
    .command = balloon_command,
    /* No drain: nothing is ever in flight at a backend. */
    .quiesce = balloon_kind_quiesce,
    .save = balloon_kind_save,
    .restore = balloon_kind_restore,
};
