/* Metrics: the JSON line (timestamp, sections in order, the logger
 * section), counters as growth since the last line written, gauges as
 * they are, the file (created, appended, once only, bad paths), a full
 * pipe, the 60 s timer, and a flush under the main thread's filter. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/metrics.h"
#include "core/seccomp.h"

static char dir[] = "/tmp/flint-metrics-XXXXXX";
static char path[128];
static struct metrics *m;
static char err[256];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/metrics.json", dir);
	cr_assert_eq(metrics_create(&m), 0);
	err[0] = '\0';
}

static void teardown(void)
{
	char cmd[160];

	metrics_destroy(m);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(metrics, .init = setup, .fini = teardown);

/* A fake device: running totals, and a gauge. */
struct fake {
	uint64_t reads, bytes, nested;
	uint64_t latency;
};

static void fill_counters(void *ctx, json_t *obj)
{
	struct fake *f = ctx;

	metrics_put(obj, "read_count", f->reads);
	metrics_put(obj, "read_bytes", f->bytes);
	json_t *sub = json_object();
	metrics_put(sub, "count", f->nested);
	json_object_set_new(obj, "agg", sub);
}

static void fill_gauges(void *ctx, json_t *obj)
{
	struct fake *f = ctx;

	metrics_put(obj, "boot_us", f->latency);
}

static void configure(void)
{
	struct vmc_metrics c = {.metrics_path = path};

	cr_assert_eq(metrics_configure(m, &c, err, sizeof(err)), 0, "%s", err);
}

static void flush(void)
{
	cr_assert_eq(metrics_flush(m, err, sizeof(err)), 0, "%s", err);
}

/* The file's lines, parsed; *n gets their count. */
static json_t **lines(size_t *n)
{
	static json_t *out[16];
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len;

	cr_assert_geq(fd, 0);
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_geq(len, 0);
	buf[len] = '\0';
	*n = 0;
	for (char *p = buf, *nl; *p; p = nl + 1) {
		json_error_t je;
		nl = strchr(p, '\n');
		cr_assert_not_null(nl, "every line ends with a newline");
		*nl = '\0';
		cr_assert_lt(*n, ARRAY_SIZE(out));
		out[*n] = json_loads(p, 0, &je);
		cr_assert_not_null(out[*n], "line %zu: %s: %s", *n, je.text, p);
		(*n)++;
	}
	return out;
}

static json_t *last_line(void)
{
	size_t n;
	json_t **l = lines(&n);

	cr_assert_gt(n, 0);
	return l[n - 1];
}

static uint64_t num(json_t *root, const char *section, const char *key)
{
	json_t *s = json_object_get(root, section);
	cr_assert(json_is_object(s), "no section %s", section);
	json_t *v = json_object_get(s, key);
	cr_assert(json_is_integer(v), "no %s.%s", section, key);
	return (uint64_t)json_integer_value(v);
}

Test(metrics, unconfigured_flush_writes_nothing)
{
	struct itimerspec t;

	cr_assert_eq(metrics_flush(m, err, sizeof(err)), 0);
	cr_assert_eq(access(path, F_OK), -1);
	cr_assert_eq(timerfd_gettime(metrics_timer_fd(m), &t), 0);
	cr_assert_eq(t.it_value.tv_sec + t.it_value.tv_nsec, 0, "timer disarmed until configured");
	cr_assert_eq(metrics_on_timer(m), 0);
}

Test(metrics, line_shape)
{
	struct fake blk = {.reads = 3, .bytes = 4096}, net = {.reads = 1}, lat = {.latency = 1234};
	struct timespec ts;

	cr_assert_eq(metrics_add_source(m, "block_rootfs", fill_counters, &blk), 0);
	cr_assert_eq(metrics_add_gauges(m, "latencies_us", fill_gauges, &lat), 0);
	cr_assert_eq(metrics_add_source(m, "net_eth0", fill_counters, &net), 0);
	configure();
	cr_assert_eq(access(path, F_OK), 0, "created when missing");
	clock_gettime(CLOCK_REALTIME, &ts);
	flush();

	size_t n;
	json_t *root = lines(&n)[0];
	cr_assert_eq(n, 1);
	const char *want_keys[] = {"utc_timestamp_ms", "logger", "block_rootfs", "latencies_us",
				   "net_eth0"};
	const char *key;
	json_t *v;
	size_t i = 0;
	json_object_foreach(root, key, v)
	{
		cr_assert_lt(i, ARRAY_SIZE(want_keys));
		cr_assert_str_eq(key, want_keys[i], "member %zu", i);
		i++;
	}
	cr_assert_eq(i, ARRAY_SIZE(want_keys));

	int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t stamp = json_integer_value(json_object_get(root, "utc_timestamp_ms"));
	cr_assert(stamp >= now_ms - 1000 && stamp <= now_ms + 5000, "%lld vs %lld",
		  (long long)stamp, (long long)now_ms);
	cr_assert_eq(num(root, "block_rootfs", "read_count"), 3);
	cr_assert_eq(num(root, "block_rootfs", "read_bytes"), 4096);
	cr_assert_eq(num(root, "net_eth0", "read_count"), 1);
	cr_assert_eq(num(root, "latencies_us", "boot_us"), 1234);
	cr_assert_eq(json_object_size(json_object_get(root, "logger")), 4);
	cr_assert_eq(num(root, "logger", "missed_metrics_count"), 0);
	cr_assert_eq(num(root, "logger", "metrics_fails"), 0);
	cr_assert_eq(num(root, "logger", "missed_log_count"), 0);
	cr_assert_eq(num(root, "logger", "log_fails"), 0);
}

Test(metrics, compact_single_line)
{
	struct fake f = {.reads = 1};

	cr_assert_eq(metrics_add_source(m, "vmm", fill_counters, &f), 0);
	configure();
	flush();
	char buf[1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(len, 0);
	buf[len] = '\0';
	cr_assert_null(strchr(buf, ' '), "compact: %s", buf);
	cr_assert_eq(strchr(buf, '\n'), buf + len - 1, "one line: %s", buf);
	cr_assert_eq(strncmp(buf, "{\"utc_timestamp_ms\":", 20), 0, "%s", buf);
}

/* Counters: what they grew by since the last line; gauges as they are. */
Test(metrics, counters_are_deltas_gauges_are_values)
{
	struct fake f = {.reads = 5, .bytes = 100, .nested = 2, .latency = 7};

	cr_assert_eq(metrics_add_source(m, "block", fill_counters, &f), 0);
	cr_assert_eq(metrics_add_gauges(m, "latencies_us", fill_gauges, &f), 0);
	configure();
	flush();
	f.reads = 12, f.bytes = 100, f.nested = 5;
	flush();
	flush();
	f.reads = 3, f.latency = 9; /* went down: the device was made anew */
	flush();

	size_t n;
	json_t **l = lines(&n);
	cr_assert_eq(n, 4);
	const uint64_t reads[] = {5, 7, 0, 3}, bytes[] = {100, 0, 0, 0}, nested[] = {2, 3, 0, 0},
		       lat[] = {7, 7, 7, 9};
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(num(l[i], "block", "read_count"), reads[i], "line %zu", i);
		cr_assert_eq(num(l[i], "block", "read_bytes"), bytes[i], "line %zu", i);
		json_t *agg = json_object_get(json_object_get(l[i], "block"), "agg");
		cr_assert_eq(json_integer_value(json_object_get(agg, "count")), nested[i],
			     "line %zu", i);
		cr_assert_eq(num(l[i], "latencies_us", "boot_us"), lat[i], "line %zu", i);
	}
}

static void fill_a(void *ctx, json_t *obj)
{
	(void)ctx;
	metrics_put(obj, "exit_io_in", 1);
}

static void fill_b(void *ctx, json_t *obj)
{
	(void)ctx;
	metrics_put(obj, "exit_mmio_read", 2);
}

Test(metrics, sources_share_a_section_and_go_away)
{
	int a, b;

	cr_assert_eq(metrics_add_source(m, "vcpu", fill_a, &a), 0);
	cr_assert_eq(metrics_add_source(m, "vcpu", fill_b, &b), 0);
	configure();
	flush();
	json_t *root = last_line();
	cr_assert_eq(num(root, "vcpu", "exit_io_in"), 1);
	cr_assert_eq(num(root, "vcpu", "exit_mmio_read"), 2);

	metrics_remove_sources(m, &a);
	flush();
	root = last_line();
	cr_assert_null(json_object_get(json_object_get(root, "vcpu"), "exit_io_in"));
	cr_assert_eq(num(root, "vcpu", "exit_mmio_read"), 0);

	metrics_remove_sources(m, &b);
	cr_assert_eq(metrics_add_source(m, "vsock", fill_a, &a), 0); /* appended after removal */
	flush();
	root = last_line();
	cr_assert_null(json_object_get(root, "vcpu"));
	cr_assert_eq(num(root, "vsock", "exit_io_in"), 1);
}

Test(metrics, appends_and_configures_once)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_eq(write(fd, "{}\n", 3), 3);
	close(fd);

	configure();
	flush();
	size_t n;
	lines(&n);
	cr_assert_eq(n, 2, "the earlier line is kept");

	struct vmc_metrics c = {.metrics_path = path};
	cr_assert_eq(metrics_configure(m, &c, err, sizeof(err)), -EALREADY);
	cr_assert_str_eq(err, "Reinitialization of metrics not allowed.");
}

Test(metrics, bad_paths)
{
	char missing[160];
	struct vmc_metrics c = {.metrics_path = missing};

	snprintf(missing, sizeof(missing), "%s/no/such/dir/m.json", dir);
	cr_assert_eq(metrics_configure(m, &c, err, sizeof(err)), -ENOENT);
	cr_assert_not_null(strstr(err, missing), "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);

	c.metrics_path = dir;
	cr_assert_eq(metrics_configure(m, &c, err, sizeof(err)), -EISDIR);
	c.metrics_path = NULL;
	cr_assert_eq(metrics_configure(m, &c, err, sizeof(err)), -EINVAL);

	/* Still unconfigured: a good path is taken afterwards. */
	configure();
}

/* A full pipe: the flush fails with -EAGAIN and the line is counted as
 * missed; the next line written carries the growth since the last one
 * written, nothing lost. */
Test(metrics, full_pipe_loses_no_counts)
{
	struct fake f = {.reads = 1};
	char fifo[160];

	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(metrics_add_source(m, "block", fill_counters, &f), 0);
	struct vmc_metrics c = {.metrics_path = fifo};
	cr_assert_eq(metrics_configure(m, &c, err, sizeof(err)), 0, "no reader needed: %s", err);

	int rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int wr = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert(rd >= 0 && wr >= 0);
	flush(); /* reads 1 */
	char buf[1 << 16];
	cr_assert_gt(read(rd, buf, sizeof(buf)), 0);

	static char junk[4096];
	while (write(wr, junk, sizeof(junk)) > 0)
		;
	/* a little room, not enough for a line */
	cr_assert_eq(read(rd, buf, 16), 16);
	f.reads = 4;
	cr_assert_eq(metrics_flush(m, err, sizeof(err)), -EAGAIN);
	cr_assert_not_null(strstr(err, "cannot write the metrics"), "%s", err);

	while (read(rd, buf, sizeof(buf)) > 0)
		;
	f.reads = 6;
	flush();
	ssize_t len = read(rd, buf, sizeof(buf) - 1);
	cr_assert_gt(len, 0);
	buf[len] = '\0';
	json_t *root = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	cr_assert_not_null(root, "%s", buf);
	cr_assert_eq(num(root, "block", "read_count"), 5, "growth since the last line written");
	cr_assert_eq(num(root, "logger", "missed_metrics_count"), 1);
	cr_assert_eq(num(root, "logger", "metrics_fails"), 0, "a full pipe is a miss");
	json_decref(root);
	close(rd);
	close(wr);
}

Test(metrics, timer_every_60s_and_on_timer_flushes)
{
	struct itimerspec t;
	int tfd = metrics_timer_fd(m);

	configure();
	cr_assert_eq(timerfd_gettime(tfd, &t), 0);
	cr_assert_eq(t.it_interval.tv_sec, METRICS_PERIOD_S);
	cr_assert_eq(METRICS_PERIOD_S, 60);
	cr_assert(t.it_value.tv_sec > 0 && t.it_value.tv_sec <= 60);
	cr_assert_eq(fcntl(tfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

	/* Not expired: nothing written. */
	cr_assert_eq(metrics_on_timer(m), 0);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 0);

	/* Expire it now (1 ms), as the poll loop would see it. */
	struct itimerspec soon = {.it_value.tv_nsec = 1000000};
	cr_assert_eq(timerfd_settime(tfd, 0, &soon, NULL), 0);
	struct pollfd p = {.fd = tfd, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 2000), 1);
	cr_assert_eq(metrics_on_timer(m), 0);
	size_t n;
	lines(&n);
	cr_assert_eq(n, 1);
}

/* The control thread flushes under the main table's filter. */
Test(metrics, flush_under_the_main_filter)
{
	struct fake f = {.reads = 2};
	int st;

	cr_assert_eq(metrics_add_source(m, "block", fill_counters, &f), 0);
	configure();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (seccomp_install(SECCOMP_MAIN, false) < 0)
			_exit(100);
		char e[256];
		for (int i = 0; i < 3; i++)
			if (metrics_flush(m, e, sizeof(e)) < 0)
				_exit(101);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	size_t n;
	json_t **l = lines(&n);
	cr_assert_eq(n, 3);
	cr_assert_eq(num(l[0], "block", "read_count"), 2);
}
