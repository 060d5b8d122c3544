/* The logger: stderr as before until configured; levels, show_level,
 * show_log_origin, the module filter, Firecracker's line format in a file
 * or a named pipe, bad paths, threads, and a line under a seccomp filter. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/logger.h"
#include "core/seccomp.h"

static char dir[] = "/tmp/flint-logger-XXXXXX";
static char logpath[128], errpath[128];
static int saved_stderr = -1;

/* Each test: a fresh directory with an empty log file, and stderr sent to
 * a file there. */
static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	int fd = open(logpath, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	fd = open(errpath, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_verbose = 0;
	logger_thread_name(NULL);
}

static void teardown(void)
{
	char cmd[160];

	logger_reset();
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(logger, .init = setup, .fini = teardown);

/* The whole of a file, NUL-terminated (static buffer). */
static const char *slurp(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	cr_assert_geq(fd, 0, "open %s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void matches(const char *text, const char *re)
{
	regex_t r;

	cr_assert_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB | REG_NEWLINE), 0, "%s", re);
	int m = regexec(&r, text, 0, NULL, 0);
	regfree(&r);
	cr_assert_eq(m, 0, "'%s' does not match /%s/", text, re);
}

static struct vmc_logger cfg(enum vmc_log_level level, const char *path)
{
	/* show_level and show_log_origin given (false unless a test sets them). */
	return (struct vmc_logger){.enabled = true,
				   .log_path = (char *)path,
				   .level = level,
				   .has_show_level = true,
				   .has_show_log_origin = true};
}

static void configure(const struct vmc_logger *l, const char *id)
{
	char err[256] = "";

	cr_assert_eq(logger_configure(l, id, err, sizeof(err)), 0, "%s", err);
}

#define TS "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}"

Test(logger, unconfigured_stderr_is_as_before)
{
	pr_err("cannot open %s: %s", "x.img", "No such file");
	pr_info("info %d", 42);
	pr_warn("warned");
	pr_debug("hidden debug");
	pr_trace("hidden trace");
	log_verbose = 1;
	pr_debug("shown debug");
	pr_trace("still hidden");
	cr_assert_str_eq(slurp(errpath), "flint: cannot open x.img: No such file\n"
					 "flint: info 42\n"
					 "flint: warned\n"
					 "flint: shown debug\n");
	cr_assert_str_eq(slurp(logpath), "");
}

Test(logger, long_stderr_lines_are_cut_to_1k_as_before)
{
	char big[3000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pr_info("%s", big);
	const char *out = slurp(errpath);
	cr_assert_eq(strlen(out), 1023);
	cr_assert_eq(strncmp(out, "flint: aaa", 10), 0);
	cr_assert_eq(out[1022], '\n');
}

Test(logger, file_line_in_firecrackers_format)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);

	l.show_level = true;
	l.show_log_origin = true;
	configure(&l, "vm-1");
	logger_thread_name("tester");
	int line = __LINE__ + 1;
	pr_warn("disk %s is %d%% full", "rootfs", 90);

	char re[256];
	snprintf(re, sizeof(re),
		 "^" TS " \\[vm-1:tester:WARN:tests/unit/test_logger\\.c:%d\\] disk rootfs is 90%% "
		 "full\n$",
		 line);
	matches(slurp(logpath), re);
	cr_assert_str_eq(slurp(errpath), "", "only errors are repeated on stderr");
}

Test(logger, plain_file_line_has_id_and_thread_only)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);

	configure(&l, NULL);
	pr_info("hello");
	matches(slurp(logpath), "^" TS " \\[anonymous-instance:-\\] hello\n$");
}

Test(logger, level_names_and_origin_alone)
{
	struct vmc_logger l = cfg(VMC_LOG_TRACE, logpath);

	l.show_level = true;
	configure(&l, "i");
	pr_err("e");
	pr_warn("w");
	pr_info("i");
	pr_debug("d");
	pr_trace("t");
	const char *out = slurp(logpath);
	matches(out, "^" TS " \\[i:-:ERROR\\] e\n" TS " \\[i:-:WARN\\] w\n" TS
		     " \\[i:-:INFO\\] i\n" TS " \\[i:-:DEBUG\\] d\n" TS " \\[i:-:TRACE\\] t\n$");

	l.show_level = false;
	l.show_log_origin = true;
	configure(&l, "i");
	pr_info("o");
	matches(slurp(logpath), "\n" TS " \\[i:-:tests/unit/test_logger\\.c:[0-9]+\\] o\n$");
}

Test(logger, levels_filter)
{
	static const struct {
		enum vmc_log_level level;
		const char *want;
	} cases[] = {
	    {VMC_LOG_ERROR, "E"},    {VMC_LOG_WARNING, "EW"},  {VMC_LOG_INFO, "EWI"},
	    {VMC_LOG_DEBUG, "EWID"}, {VMC_LOG_TRACE, "EWIDT"}, {VMC_LOG_OFF, ""},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct vmc_logger l = cfg(cases[i].level, logpath);
		cr_assert_eq(truncate(logpath, 0), 0);
		configure(&l, "x");
		pr_err("E");
		pr_warn("W");
		pr_info("I");
		pr_debug("D");
		pr_trace("T");

		char got[8] = "";
		const char *p = slurp(logpath);
		while ((p = strstr(p, "] ")) != NULL) {
			strncat(got, p + 2, 1);
			p += 2;
		}
		cr_assert_str_eq(got, cases[i].want, "level %s",
				 vmc_log_level_name(cases[i].level));
	}
}

Test(logger, verbose_lifts_info_to_debug_only)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, NULL);

	log_verbose = 1;
	configure(&l, NULL);
	pr_debug("d1");
	l.level = VMC_LOG_ERROR;
	configure(&l, NULL);
	pr_debug("d2");
	pr_info("i2");
	cr_assert_str_eq(slurp(errpath), "flint: d1\n");
}

/* --level without --log-path: stderr, filtered, in flint's own format. */
Test(logger, level_alone_filters_stderr)
{
	struct vmc_logger l = cfg(VMC_LOG_ERROR, NULL);

	configure(&l, NULL);
	pr_info("not shown");
	pr_warn("not shown either");
	pr_err("boom %d", 1);
	cr_assert_str_eq(slurp(errpath), "flint: boom 1\n");

	/* Off silences all but errors, which stderr still gets. */
	l.level = VMC_LOG_OFF;
	configure(&l, NULL);
	pr_warn("silenced");
	pr_err("fatal");
	cr_assert_str_eq(slurp(errpath), "flint: boom 1\nflint: fatal\n");
}

/* Neither the level nor the module filter keeps an error from stderr (a
 * bad config file at level Off, or with --module, exited 125 unsaid); they
 * choose only what the log file gets. */
Test(logger, errors_reach_stderr_past_level_and_module)
{
	struct vmc_logger l = cfg(VMC_LOG_OFF, logpath);

	configure(&l, NULL);
	pr_err("off %d", 1);
	l = cfg(VMC_LOG_INFO, logpath);
	l.module = "virtio/blk";
	configure(&l, NULL);
	pr_err("filtered %d", 2);
	pr_info("not shown");
	cr_assert_str_eq(slurp(logpath), "", "the filters still hold for the log file");
	logger_reset();
	l.log_path = NULL;
	configure(&l, NULL);
	pr_err("filtered %d", 3);
	pr_warn("not shown either");
	cr_assert_str_eq(slurp(errpath), "flint: off 1\nflint: filtered 2\nflint: filtered 3\n");
}

/* A second configuration updates the first, as Firecracker's
 * Logger::update: the level is set every time (Info when not given), the
 * log file, show_level, show_log_origin and the module filter stay unless
 * given (PUT /logger {"log_path"} then {"level": "Debug"} went back to
 * stderr; --log-path lost to a config file's logger that gave only a
 * level). */
Test(logger, a_later_configuration_keeps_what_it_leaves_out)
{
	struct vmc_logger l = cfg(VMC_LOG_WARNING, logpath);

	l.show_level = true;
	l.module = "tests/unit";
	configure(&l, "vm");
	l = (struct vmc_logger){.enabled = true, .level = VMC_LOG_DEBUG};
	configure(&l, "vm");
	pr_debug("kept");
	pr_log(PR_INFO, "virtio/blk/blk.c", 1, "still filtered");
	l = (struct vmc_logger){.enabled = true,
				.level = VMC_LOG_INFO,
				.show_log_origin = true,
				.has_show_log_origin = true,
				.module = ""};
	configure(&l, "vm");
	pr_debug("not at Info");
	pr_log(PR_INFO, "virtio/blk/blk.c", 2, "no filter now");

	cr_assert_str_eq(slurp(errpath), "", "nothing went to stderr");
	matches(slurp(logpath), "^" TS " \\[vm:-:DEBUG\\] kept\n" TS
				" \\[vm:-:INFO:virtio/blk/blk\\.c:2\\] no filter now\n$");
}

Test(logger, stderr_tag_when_asked)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, NULL);

	l.show_level = true;
	configure(&l, NULL);
	pr_err("a");
	l.show_log_origin = true;
	configure(&l, NULL);
	int line = __LINE__ + 1;
	pr_info("b");
	l.show_level = false;
	configure(&l, NULL);
	pr_info("c");

	char want[256];
	snprintf(want, sizeof(want),
		 "flint: [ERROR] a\nflint: [INFO:tests/unit/test_logger.c:%d] b\n"
		 "flint: [tests/unit/test_logger.c:%d] c\n",
		 line, line + 3);
	cr_assert_str_eq(slurp(errpath), want);
}

Test(logger, errors_also_on_stderr_with_a_log_path)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);

	configure(&l, NULL);
	pr_err("fatal: %s", "why");
	pr_info("detail");
	cr_assert_str_eq(slurp(errpath), "flint: fatal: why\n");
	matches(slurp(logpath), "\\] fatal: why\n.*\\] detail\n$");
}

Test(logger, module_filter_is_a_source_path_prefix)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);

	l.module = "virtio/blk";
	configure(&l, NULL);
	pr_info("from a test file");
	pr_log(PR_INFO, "virtio/blk/blk.c", 7, "from blk");
	pr_log(PR_INFO, NULL, 0, "from nowhere");
	const char *out = slurp(logpath);
	cr_assert_null(strstr(out, "test file"));
	cr_assert_null(strstr(out, "nowhere"));
	matches(out, "\\] from blk\n$");

	l.module = "tests/unit";
	configure(&l, NULL);
	pr_info("from a test file");
	matches(slurp(logpath), "\\] from a test file\n$");
}

Test(logger, missing_path_is_refused_and_changes_nothing)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);
	char missing[160], err[256] = "";

	configure(&l, "first");
	snprintf(missing, sizeof(missing), "%s/nope/log", dir);
	l = cfg(VMC_LOG_ERROR, missing);
	cr_assert_eq(logger_configure(&l, "second", err, sizeof(err)), -ENOENT);
	cr_assert_not_null(strstr(err, missing), "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
	cr_assert_eq(access(missing, F_OK), -1, "not created");

	pr_info("still here");
	matches(slurp(logpath), "\\[first:-\\] still here\n$");

	l = cfg(VMC_LOG_INFO, dir);
	cr_assert_eq(logger_configure(&l, NULL, err, sizeof(err)), -EISDIR);
	l = cfg(VMC_LOG_OFF + 1, NULL);
	cr_assert_eq(logger_configure(&l, NULL, err, sizeof(err)), -EINVAL);
}

Test(logger, appends_to_an_existing_file)
{
	int fd = open(logpath, O_WRONLY | O_TRUNC | O_CLOEXEC);
	cr_assert_eq(write(fd, "old line\n", 9), 9);
	close(fd);

	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);
	configure(&l, NULL);
	pr_info("new");
	matches(slurp(logpath), "^old line\n" TS " \\[anonymous-instance:-\\] new\n$");
}

/* A named pipe opens with no reader, and a full one drops lines (counted)
 * instead of blocking the thread that logs. */
Test(logger, named_pipe_without_reader_and_full)
{
	char fifo[160];
	struct logger_counts before, after;

	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	struct vmc_logger l = cfg(VMC_LOG_INFO, fifo);
	configure(&l, "p");
	pr_info("first");

	int rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert_geq(rd, 0);
	char buf[256];
	ssize_t n = read(rd, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	matches(buf, "^" TS " \\[p:-\\] first\n$");

	logger_counts(&before);
	for (int i = 0; i < 2000; i++)
		pr_info("filling the pipe with line %d of a fair length, %064d", i, 0);
	logger_counts(&after);
	cr_assert_gt(after.missed_log_count, before.missed_log_count);
	cr_assert_eq(after.log_fails, before.log_fails, "a full pipe is a miss, not a failure");
	close(rd);
}

#define THREADS 4
#define LINES	500

static void *chatter(void *arg)
{
	char name[16];

	snprintf(name, sizeof(name), "t%ld", (long)(intptr_t)arg);
	logger_thread_name(name);
	for (int i = 0; i < LINES; i++)
		pr_info("thread %ld line %d %s", (long)(intptr_t)arg, i,
			"padding padding padding padding padding padding padding");
	return NULL;
}

Test(logger, threads_lines_stay_whole)
{
	pthread_t t[THREADS];
	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);

	configure(&l, "mt");
	for (long i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, chatter, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);

	FILE *f = fopen(logpath, "re");
	char line[512];
	int count[THREADS] = {0};
	regex_t r;
	cr_assert_eq(
	    regcomp(&r,
		    "^" TS " \\[mt:t([0-9])\\] thread ([0-9]) line [0-9]+ padding( padding){6}\n$",
		    REG_EXTENDED),
	    0);
	while (fgets(line, sizeof(line), f)) {
		regmatch_t m[3];
		cr_assert_eq(regexec(&r, line, 3, m, 0), 0, "torn line: %s", line);
		cr_assert_eq(line[m[1].rm_so], line[m[2].rm_so], "thread name: %s", line);
		count[line[m[1].rm_so] - '0']++;
	}
	regfree(&r);
	fclose(f);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(count[i], LINES);
}

/* Logging makes no call a thread's filter refuses: the vCPU table, the
 * narrowest one with write. */
Test(logger, a_line_under_the_vcpu_filter)
{
	struct vmc_logger l = cfg(VMC_LOG_INFO, logpath);
	int st;

	l.show_level = true;
	l.show_log_origin = true;
	configure(&l, "sec");
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (seccomp_install(SECCOMP_VCPU, false) < 0)
			_exit(100);
		logger_thread_name("vcpu 0");
		pr_info("under the filter");
		pr_err("and an error");
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	matches(slurp(logpath), "\\[sec:vcpu 0:INFO:[^]]*\\] under the filter\n");
	cr_assert_str_eq(slurp(errpath), "flint: and an error\n");
}
