/* flint bench's runners (bench/runner.c) without KVM: smaps and stat on
 * made-up text, the console's marker scan, and whole runs of stand-in
 * VMMs (shell and Python scripts that print a marker, write phase lines,
 * map "guest RAM", fail, or hang). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/runner.h"
#include "bench/vmm.h"

/* ---- smaps, stat ---------------------------------------------------- */

#define MAP(start, end, rest) start "-" end " " rest "\n"

/* Three mappings: flint's text, the guest's RAM (128 MiB, 20 MiB of it
 * resident) and the heap. Laid out as smaps prints it, one field a line,
 * so clang-format is kept off it (it cuts the strings into pieces). */
/* clang-format off */
static const char smaps[] =
	MAP("55d0c0000000", "55d0c0100000", "r-xp 00000000 08:01 123 /usr/bin/flint")
	"Size:               1024 kB\n"
	"Rss:                 800 kB\n"
	"Pss:                 800 kB\n"
	MAP("7f0000000000", "7f0008000000", "rw-p 00000000 00:00 0")
	"Size:             131072 kB\n"
	"KernelPageSize:        4 kB\n"
	"Rss:               20480 kB\n"
	"VmFlags: rd wr mr mw me ac hg\n"
	MAP("7f1000000000", "7f1000200000", "rw-p 00000000 00:00 0 [heap]")
	"Size:               2048 kB\n"
	"Rss:                1500 kB\n";
/* clang-format on */

Test(bench_runner, smaps_guest_and_the_rest)
{
	uint64_t total = 0, guest = 0;

	cr_assert_eq(runner_smaps(smaps, strlen(smaps), 131072, &total, &guest), 0);
	cr_assert_eq(total, 800 + 20480 + 1500);
	cr_assert_eq(guest, 20480);
}

/* A mapping a little larger (alignment, a merged neighbour) still counts;
 * of two candidates, the one with more Rss is guest RAM. */
Test(bench_runner, smaps_slack_and_candidates)
{
	/* clang-format off */
	static const char t[] =
		MAP("1000000", "9200000", "rw-p 00000000 00:00 0")	/* 128 MiB + 2 MiB */
		"Rss:    5000 kB\n"
		MAP("a000000", "12000000", "rw-p 00000000 00:00 0")	/* 128 MiB */
		"Rss:    9000 kB\n"
		MAP("20000000", "29000000", "rw-p 00000000 00:00 0")	/* 144 MiB: too big */
		"Rss:   90000 kB\n";
	/* clang-format on */
	uint64_t total = 0, guest = 0;

	cr_assert_eq(runner_smaps(t, strlen(t), 131072, &total, &guest), 0);
	cr_assert_eq(guest, 9000);
	cr_assert_eq(total, 104000);
}

Test(bench_runner, smaps_without_guest_ram)
{
	uint64_t total = 0, guest = 7;

	cr_assert_eq(runner_smaps(smaps, strlen(smaps), 262144, &total, &guest), -ENOENT);
	cr_assert_eq(total, 800 + 20480 + 1500, "the total is still known");
	cr_assert_eq(guest, 7, "untouched");
}

Test(bench_runner, smaps_that_is_not_smaps)
{
	uint64_t total, guest;
	static const char junk[] = "Rss: 12 kB\n";

	cr_assert_eq(runner_smaps(junk, strlen(junk), 1024, &total, &guest), -EINVAL);
	cr_assert_eq(runner_smaps("", 0, 1024, &total, &guest), -EINVAL);
}

Test(bench_runner, stat_faults_and_cpu)
{
	/* A name with a space and a parenthesis: fields count from the last
	 * ')'. utime 10 and stime 20 ticks at 100 a second: 300 ms. */
	static const char t[] = "4242 (qemu-sys (x) 86) S 1 4242 4242 0 -1 4194560 "
				"1234 0 56 0 10 20 0 0 20 0 3 0 100 1000 200\n";
	struct runner_stat st = {0};

	cr_assert_eq(runner_stat(t, 100, &st), 0);
	cr_assert_eq(st.minflt, 1234);
	cr_assert_eq(st.majflt, 56);
	cr_assert_eq(st.cpu_us, 300000);
	cr_assert_eq(runner_stat(t, 1000, &st), 0);
	cr_assert_eq(st.cpu_us, 30000);
	cr_assert_eq(runner_stat(t, 0, &st), -EINVAL, "no clock-tick rate");
	cr_assert_eq(runner_stat("4242 S 1 2", 100, &st), -EINVAL);
	cr_assert_eq(runner_stat("4242 (x) S 1 2", 100, &st), -EINVAL);
	/* Cut before stime. */
	cr_assert_eq(runner_stat("4242 (x) S 1 4242 4242 0 -1 4194560 1234 0 56 0 10", 100, &st),
		     -EINVAL);
}

/* ---- the marker scan ------------------------------------------------- */

Test(bench_runner, scan_across_reads)
{
	static const struct runner_marker m[] = {{"flint-init: ready", BP_INIT},
						 {"out=42", BP_FIRST_OUTPUT}};
	struct runner_scan s;

	runner_scan_init(&s, m, 2);
	cr_assert_eq(runner_scan_feed(&s, "[ 0.1] boot\nflint-in", 20), 0);
	cr_assert_eq(runner_scan_feed(&s, "it: rea", 7), 0);
	cr_assert_eq(runner_scan_feed(&s, "dy\nout=4", 8), 1, "the first marker, across 3 reads");
	cr_assert_eq(runner_scan_feed(&s, "2\nflint-init: ready\n", 20), 2, "each marker once");
	cr_assert_eq(s.found, 3);
}

Test(bench_runner, scan_a_long_stream)
{
	static const struct runner_marker m[] = {{"MARK", BP_INIT}};
	struct runner_scan s;
	char junk[1000];

	memset(junk, 'x', sizeof(junk));
	junk[sizeof(junk) - 1] = '\n';
	runner_scan_init(&s, m, 1);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(runner_scan_feed(&s, junk, sizeof(junk)), 0);
	cr_assert_eq(runner_scan_feed(&s, "MA", 2), 0);
	cr_assert_eq(runner_scan_feed(&s, "RK", 2), 1);
}

/* A marker counts where it begins a line (or the stream), not inside one:
 * a kernel without "quiet" echoes the command line, and with it the
 * command that prints the marker, long before the command runs. */
Test(bench_runner, scan_only_at_a_line_start)
{
	static const struct runner_marker m[] = {{"flint-bench-output", BP_FIRST_OUTPUT},
						 {"flint-init: ready", BP_INIT}};
	struct runner_scan s;

	runner_scan_init(&s, m, 2);
	cr_assert_eq(runner_scan_feed(&s, "flint-init: ready\r\n", 19), 2, "the stream's start");
	cr_assert_eq(
	    runner_scan_feed(&s, "Kernel command line: quiet -- echo flint-bench-output\r\n", 55),
	    0);
	cr_assert_eq(runner_scan_feed(&s, "sh: flint-bench-output", 22), 0);
	cr_assert_eq(runner_scan_feed(&s, "\r\nflint-bench-output\r\n", 22), 1);
}

/* ---- whole runs of stand-in VMMs ---------------------------------------- */

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_bench_runner.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* A script at dir/name; its path in path. */
static void script(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	cr_assert_eq(chmod(path, 0755), 0);
}

static void launch(struct runner_launch *l, char *const *argv, const char *marker,
		   unsigned timeout_ms)
{
	*l = (struct runner_launch){
	    .vmm = "qemu",
	    .argv = argv,
	    .markers = {{marker, BP_INIT}},
	    .measure_at = BP_INIT,
	    .guest_mem_kib = 65536,
	    .timeout_ms = timeout_ms,
	};
}

TestSuite(bench_runner_vmm, .init = setup, .fini = teardown);

Test(bench_runner_vmm, a_peer_that_prints_its_marker)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	script("vmm", "#!/bin/sh\necho booting; sleep 0.1; echo 'flint-init: ready'; sleep 0.2\n",
	       path, sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 5000);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(r.ok, "%s", r.why);
	cr_assert_str_eq(r.vmm, "qemu");
	cr_assert_geq(r.phase_us[BP_INIT], 100000, "%llu", (unsigned long long)r.phase_us[BP_INIT]);
	cr_assert_lt(r.phase_us[BP_INIT], 3000000);
	cr_assert_geq(r.phase_us[BP_EXIT], r.phase_us[BP_INIT] + 200000);
	cr_assert_eq(r.exits[BE_TOTAL], BENCH_NONE, "a peer's exits are not counted");
	cr_assert_neq(r.minor_faults, BENCH_NONE, "faults read at the marker");
	cr_assert_eq(r.guest_touched_kib, BENCH_NONE, "a shell has no guest RAM");
}

/* A descriptor the bench inherited without close-on-exec (a CI runner's,
 * make's jobserver) does not reach the VMM. */
Test(bench_runner_vmm, a_peer_inherits_no_descriptor_of_the_bench)
{
	char path[128], text[256];
	struct runner_launch l;
	struct bench_record r;
	int fd = open("/dev/null", O_RDONLY);

	cr_assert_geq(fd, 3);
	snprintf(text, sizeof(text),
		 "#!/bin/sh\n[ -e /proc/$$/fd/%d ] && { echo 'fd %d is open'; exit 3; }\n"
		 "echo 'flint-init: ready'\n",
		 fd, fd);
	script("vmm", text, path, sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 5000);
	cr_assert_eq(runner_run(&l, &r), 0);
	close(fd);
	cr_assert(r.ok, "%s", r.why);
}

/* "Guest RAM": 64 MiB mapped, 8 MiB of it touched; 0.3 s of its own CPU
 * time spent before the marker (counted by the process itself, so a busy
 * machine does not shorten it). */
Test(bench_runner_vmm, guest_ram_and_overhead)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("no /usr/bin/python3");
	script("vmm",
	       "#!/usr/bin/python3\n"
	       "import mmap, sys, time\n"
	       "m = mmap.mmap(-1, 64 << 20)\n"
	       "m.madvise(mmap.MADV_NOHUGEPAGE)\n"
	       "for i in range(0, 8 << 20, 4096): m[i] = 1\n"
	       "while time.process_time() < 0.3: pass\n"
	       "print('flint-init: ready', flush=True)\n"
	       "time.sleep(0.3)\n",
	       path, sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 10000);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(r.ok, "%s", r.why);
	cr_assert_geq(r.guest_touched_kib, 8192, "%llu", (unsigned long long)r.guest_touched_kib);
	cr_assert_lt(r.guest_touched_kib, 8192 + 1024);
	cr_assert_neq(r.rss_overhead_kib, BENCH_NONE);
	cr_assert_gt(r.rss_overhead_kib, 1000, "python itself");
	/* /proc's CPU time comes in clock ticks: 10 ms at 100 a second */
	cr_assert_geq(r.cpu_us, 290000, "%llu", (unsigned long long)r.cpu_us);
	cr_assert_lt(r.cpu_us, 30000000);
	cr_assert_geq(r.minor_faults, 2048, "8 MiB of first touches");
}

Test(bench_runner_vmm, a_hanging_vmm_is_killed_with_its_group)
{
	char path[128], pidfile[160], buf[32] = "";
	struct runner_launch l;
	struct bench_record r;
	FILE *f;

	snprintf(pidfile, sizeof(pidfile), "%s/child.pid", dir);
	char text[512];
	snprintf(text, sizeof(text),
		 "#!/bin/sh\nsleep 100 & echo $! >%s\necho 'flint-init: ready'\nsleep 100\n",
		 pidfile);
	script("vmm", text, path, sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 500);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert(strstr(r.why, "timeout after 500 ms"), "%s", r.why);
	cr_assert_geq(r.phase_us[BP_EXIT], 500000);
	cr_assert_lt(r.phase_us[BP_EXIT], 5000000);
	cr_assert_not_null(f = fopen(pidfile, "r"));
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	pid_t child = (pid_t)atoi(buf);
	cr_assert_gt(child, 1);
	/* SIGKILLed with the group: gone once init has reaped it. */
	for (int i = 0; i < 200 && kill(child, 0) == 0; i++)
		usleep(10000);
	cr_assert_eq(kill(child, 0), -1, "the VMM's child outlived the timeout");
}

Test(bench_runner_vmm, a_missing_binary_is_missing)
{
	struct runner_launch l;
	struct bench_record r;
	char *argv[] = {"no-such-vmm-in-path", NULL};
	char *abs[] = {"/nonexistent/lkvm", NULL};

	launch(&l, argv, "x", 1000);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert_str_eq(r.why, "missing: no-such-vmm-in-path not found");
	cr_assert_eq(r.phase_us[BP_EXIT], BENCH_NONE, "nothing was launched");
	launch(&l, abs, "x", 1000);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert_str_eq(r.why, "missing: /nonexistent/lkvm not found");
	/* there, but no binary (a directory, a file without x): said so */
	abs[0] = "/tmp";
	launch(&l, abs, "x", 1000);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert_str_eq(r.why, "missing: /tmp is not an executable file");
}

Test(bench_runner_vmm, a_failing_vmm_says_why)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	script("vmm", "#!/bin/sh\necho 'flint-init: ready'\necho 'qemu: boom' >&2\nexit 3\n", path,
	       sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 5000);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert_str_eq(r.why, "exit status 3: qemu: boom");
}

Test(bench_runner_vmm, no_marker)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	script("vmm", "#!/bin/sh\necho 'Kernel panic'\n", path, sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 5000);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert_str_eq(r.why, "the marker 'flint-init: ready' never appeared");
	cr_assert_neq(r.phase_us[BP_EXIT], BENCH_NONE);
}

Test(bench_runner_vmm, stopped_once_measured)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	script("vmm", "#!/bin/sh\necho 'flint-init: ready'\nsleep 100\nexit 9\n", path,
	       sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 10000);
	l.stop_at_measure = true;
	uint64_t t0 = now_ns();
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(r.ok, "%s", r.why);
	cr_assert_lt(now_ns() - t0, 5000000000ull, "killed at the marker, not at its end");
	cr_assert_eq(r.phase_us[BP_EXIT], BENCH_NONE, "its end was the kill: no launch-to-exit");
	cr_assert_neq(r.minor_faults, BENCH_NONE, "measured before the kill");
}

static int drive_calls;
static pid_t driven;

static int drive_ok(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t len)
{
	(void)why, (void)len;
	cr_assert_str_eq(ctx, "ctx");
	cr_assert_gt(deadline_us, now_ns() / 1000);
	drive_calls++;
	driven = pid;
	return 0;
}

static int drive_fails(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t len)
{
	(void)ctx, (void)pid, (void)deadline_us;
	snprintf(why, len, "PUT /actions: 400 no boot source");
	return -EIO;
}

Test(bench_runner_vmm, driven_after_the_fork)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	script("vmm", "#!/bin/sh\necho 'flint-init: ready'\nsleep 100\n", path, sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 10000);
	l.stop_at_measure = true;
	l.drive = drive_ok;
	l.drive_ctx = "ctx";
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(r.ok, "%s", r.why);
	cr_assert_eq(drive_calls, 1);
	cr_assert_gt(driven, 0);

	l.drive = drive_fails;
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert_str_eq(r.why, "PUT /actions: 400 no boot source");
	cr_assert_lt(r.phase_us[BP_EXIT], 5000000, "the VMM was killed");
	cr_assert_eq(r.phase_us[BP_INIT], BENCH_NONE, "its output was not read");
}

/* A bench whose stdin and stdout are closed: its pipes get those numbers,
 * and the child must still give the VMM its output pipe and fd 3. */
Test(bench_runner_vmm, a_bench_without_stdin_and_stdout)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("no /usr/bin/python3");
	script("vmm",
	       "#!/usr/bin/python3\n"
	       "import os, time\n"
	       "os.fstat(0)\n"
	       "os.write(3, b'phase process %d\\n' % (time.monotonic_ns() // 1000))\n"
	       "print('flint-init: ready', flush=True)\n",
	       path, sizeof(path));
	char *argv[] = {path, NULL};
	launch(&l, argv, "flint-init: ready", 5000);
	l.phase_fd = true;
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(r.ok, "%s", r.why);
	cr_assert_neq(r.phase_us[BP_PROCESS], BENCH_NONE, "fd 3 reached the VMM");
	cr_assert_neq(r.phase_us[BP_INIT], BENCH_NONE, "its stdout reached the bench");
}

/* --concurrency: runs at once from several threads, each its own. */
struct conc {
	struct runner_launch l;
	struct bench_record r;
	int ret;
};

static void *conc_run(void *arg)
{
	struct conc *c = arg;

	c->ret = runner_run(&c->l, &c->r);
	return NULL;
}

Test(bench_runner_vmm, concurrent_runs)
{
	char path[128], fast[128];
	struct conc c[4];
	pthread_t t[4];

	script("vmm", "#!/bin/sh\nsleep 0.3; echo 'flint-init: ready'; sleep 0.1\n", path,
	       sizeof(path));
	script("fast", "#!/bin/sh\necho 'flint-init: ready'; sleep 0.1\n", fast, sizeof(fast));
	char *argv[] = {path, NULL}, *fargv[] = {fast, NULL};
	for (int i = 0; i < 4; i++) {
		launch(&c[i].l, i % 2 ? fargv : argv, "flint-init: ready", 10000);
		cr_assert_eq(pthread_create(&t[i], NULL, conc_run, &c[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(c[i].ret, 0);
		cr_assert(c[i].r.ok, "%d: %s", i, c[i].r.why);
		if (i % 2)
			cr_assert_lt(c[i].r.phase_us[BP_INIT], 300000, "%d: another run's marker",
				     i);
		else
			cr_assert_geq(c[i].r.phase_us[BP_INIT], 300000);
	}
}

/* A stand-in flint: phase lines on fd 3, CLOCK_MONOTONIC microseconds. */
static void fake_flint(char *path, size_t len, const char *lines)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "#!/usr/bin/python3\n"
		 "import os, sys, time\n"
		 "def now(): return time.monotonic_ns() // 1000\n"
		 "def put(s): os.write(3, s.encode())\n"
		 "%s",
		 lines);
	script("flint", text, path, len);
}

static void flint_launch(struct runner_launch *l, char *const *argv)
{
	*l = (struct runner_launch){
	    .vmm = "flint",
	    .argv = argv,
	    .phase_fd = true,
	    .measure_at = BP_FIRST_OUTPUT,
	    .guest_mem_kib = 65536,
	    .timeout_ms = 10000,
	};
}

Test(bench_runner_vmm, flint_phases)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("no /usr/bin/python3");
	fake_flint(path, sizeof(path),
		   "put('phase process %d\\n' % now())\n"
		   "put('phase vm-created %d\\n' % now())\n"
		   "time.sleep(0.05)\n"
		   "put('phase init %d\\n' % now())\n"
		   "put('phase first-output %d\\n' % now())\n"
		   "put('exits exits=1389 io_exits=140\\n')\n"
		   "time.sleep(0.2)\n"
		   "print('out')\n");
	char *argv[] = {path, "--phase-fd", "3", NULL};
	flint_launch(&l, argv);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(r.ok, "%s", r.why);
	cr_assert_neq(r.phase_us[BP_PROCESS], BENCH_NONE);
	cr_assert_geq(r.phase_us[BP_INIT], r.phase_us[BP_VM_CREATED] + 50000);
	cr_assert_geq(r.phase_us[BP_EXIT], r.phase_us[BP_FIRST_OUTPUT] + 200000);
	cr_assert_eq(r.exits[BE_TOTAL], 1389);
	cr_assert_eq(r.exits[BE_IO], 140);
	cr_assert_neq(r.minor_faults, BENCH_NONE, "measured at first-output");
}

/* flint booting as the peers: init from its console line, as theirs, not
 * its earlier boot-timer event (0.1 s before it here); the command's exit
 * status (1: the guest's `false`) fails no run that reached the output. */
Test(bench_runner_vmm, flint_as_the_peers_init_from_its_console)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("no /usr/bin/python3");
	fake_flint(path, sizeof(path),
		   "put('phase process %d\\n' % now())\n"
		   "put('phase init %d\\n' % now())\n"
		   "time.sleep(0.1)\n"
		   "print('flint-init: ready', flush=True)\n"
		   "print('flint-bench-output', flush=True)\n"
		   "sys.exit(1)\n");
	char *argv[] = {path, "--phase-fd", "3", NULL};
	flint_launch(&l, argv);
	l.phase_skip = 1u << BP_INIT;
	l.status_is_guests = true;
	l.markers[0] = (struct runner_marker){"flint-init: ready", BP_INIT};
	l.markers[1] = (struct runner_marker){"flint-bench-output", BP_FIRST_OUTPUT};
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(r.ok, "%s", r.why);
	cr_assert_geq(r.phase_us[BP_INIT], r.phase_us[BP_PROCESS] + 100000, "%llu %llu",
		      (unsigned long long)r.phase_us[BP_INIT],
		      (unsigned long long)r.phase_us[BP_PROCESS]);
	cr_assert_geq(r.phase_us[BP_FIRST_OUTPUT], r.phase_us[BP_INIT]);
	/* Without the output: the status fails it, as any run's. */
	fake_flint(path, sizeof(path),
		   "put('phase process %d\\n' % now())\n"
		   "print('flint-init: ready', flush=True)\n"
		   "sys.exit(1)\n");
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert(strstr(r.why, "exit status 1"), "%s", r.why);
}

Test(bench_runner_vmm, flint_with_a_bad_line)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("no /usr/bin/python3");
	fake_flint(path, sizeof(path),
		   "put('phase first-output %d\\n' % now())\n"
		   "put('phase warp-drive %d\\n' % now())\n");
	char *argv[] = {path, NULL};
	flint_launch(&l, argv);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert(strstr(r.why, "phase line 2: unknown phase 'warp-drive'"), "%s", r.why);
}

Test(bench_runner_vmm, flint_that_never_output)
{
	char path[128];
	struct runner_launch l;
	struct bench_record r;

	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("no /usr/bin/python3");
	fake_flint(path, sizeof(path), "put('phase process %d\\n' % now())\n");
	char *argv[] = {path, NULL};
	flint_launch(&l, argv);
	cr_assert_eq(runner_run(&l, &r), 0);
	cr_assert(!r.ok);
	cr_assert(strstr(r.why, "launch-to-first-output never reported"), "%s", r.why);
}

Test(bench_runner, find)
{
	char p[4096];

	cr_assert_eq(runner_find("sh", p, sizeof(p)), 0);
	cr_assert(strchr(p, '/'), "%s", p);
	cr_assert_eq(runner_find("/bin/sh", p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/bin/sh");
	cr_assert_eq(runner_find("surely-not-a-command-here", p, sizeof(p)), -ENOENT);
	cr_assert_eq(runner_find("/etc/passwd", p, sizeof(p)), -EACCES, "not executable");
	cr_assert_eq(runner_find("/tmp", p, sizeof(p)), -EACCES, "a directory");
	cr_assert_eq(runner_find("/usr/bin/", p, sizeof(p)), -EACCES, "a directory");
	cr_assert_eq(runner_find("", p, sizeof(p)), -ENOENT);
}

/* ---- the VMMs' command lines (bench/vmm.c) ------------------------------ */

static bool has_pair(const struct vmm_argv *a, const char *opt, const char *val)
{
	for (int i = 0; i + 1 < a->n; i++)
		if (!strcmp(a->v[i], opt) && !strcmp(a->v[i + 1], val))
			return true;
	return false;
}

static const char *last(const struct vmm_argv *a)
{
	return a->n ? a->v[a->n - 1] : "";
}

static char *words[] = {"echo", "bench-out", NULL};

Test(bench_vmm, qemu_same_guest_as_flint)
{
	struct vmm_argv q, f;
	struct vmm_guest g = {.kernel = "/k/vmlinux",
			      .rootfs = "/r/rootfs.ext4",
			      .mem_mib = 128,
			      .vcpus = 2,
			      .command = words,
			      .ncommand = 2};

	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), 0);
	cr_assert_str_eq(q.v[0], "qemu-system-x86_64");
	cr_assert_null(q.v[q.n]);
	cr_assert(has_pair(&q, "-M",
			   "microvm,acpi=off,x-option-roms=off,rtc=off,"
			   "auto-kernel-cmdline=off"));
	cr_assert(has_pair(&q, "-m", "128"));
	cr_assert(has_pair(&q, "-smp", "2"));
	cr_assert(has_pair(&q, "-kernel", "/k/vmlinux"));
	cr_assert(has_pair(&q, "-drive",
			   "id=root,file=/r/rootfs.ext4,format=raw,if=none,"
			   "readonly=on"));
	cr_assert(has_pair(&q, "-serial", "stdio"));
	cr_assert_str_eq(
	    last(&q), "console=ttyS0 reboot=t panic=-1 quiet noreplace-smp i8042.noaux i8042.nomux "
		      "i8042.nopnp "
		      "i8042.dumbkbd root=/dev/vda ro "
		      "virtio_mmio.device=512@0xfeb00e00:12 -- echo bench-out");

	/* An ext4 root is named to the peer, as flint run names it. */
	g.root_ext4 = true;
	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), 0);
	cr_assert(strstr(last(&q), " root=/dev/vda ro virtio_mmio.device=512@0xfeb00e00:12 "
				   "rootfstype=ext4 -- echo bench-out"),
		  "%s", last(&q));

	cr_assert_eq(vmm_flint_argv(&f, "/b/flint", &g), 0);
	cr_assert_str_eq(f.v[0], "/b/flint");
	cr_assert_str_eq(f.v[1], "run");
	cr_assert(has_pair(&f, "--phase-fd", "3"));
	cr_assert(has_pair(&f, "--kernel", "/k/vmlinux"));
	cr_assert(has_pair(&f, "--rootfs", "/r/rootfs.ext4"));
	cr_assert(has_pair(&f, "--mem", "128M"));
	cr_assert(has_pair(&f, "--vcpus", "2"));
	cr_assert(has_pair(&f, "--cmdline", VMM_DEFAULT_CMDLINE));
	cr_assert(has_pair(&f, "--", "echo"));
	cr_assert_str_eq(last(&f), "bench-out");
}

/* flint booting as its peers do: no flint run, the root a read-only
 * drive, the command on the kernel command line, phases on fd 3. */
Test(bench_vmm, flint_boot_as_the_peers)
{
	struct vmm_argv f;
	struct vmm_guest g = {.kernel = "/k/vmlinux",
			      .rootfs = "/r/rootfs.ext4",
			      .root_ext4 = true,
			      .mem_mib = 128,
			      .vcpus = 2,
			      .command = words,
			      .ncommand = 2};

	cr_assert_eq(vmm_flint_boot_argv(&f, "/b/flint", &g), 0);
	cr_assert_str_eq(f.v[0], "/b/flint");
	for (int i = 0; i < f.n; i++) {
		cr_assert_str_neq(f.v[i], "run", "no flint run: no agent, no vsock");
		cr_assert_str_neq(f.v[i], "--", "the command is on the kernel command line");
	}
	cr_assert(has_pair(&f, "--phase-fd", "3"));
	cr_assert(has_pair(&f, "--kernel", "/k/vmlinux"));
	cr_assert(has_pair(&f, "--drive", "path=/r/rootfs.ext4,ro"));
	cr_assert(has_pair(&f, "--mem", "128M"));
	cr_assert(has_pair(&f, "--vcpus", "2"));
	cr_assert(has_pair(&f, "--cmdline",
			   VMM_DEFAULT_CMDLINE
			   " root=/dev/vda ro rootfstype=ext4 -- echo bench-out"));
	g.rootfs = "/r/a,b";
	cr_assert_eq(vmm_flint_boot_argv(&f, "flint", &g), -EINVAL, "a ',' starts a --drive key");
	g.rootfs = NULL;
	g.initrd = "/i/initrd";
	cr_assert_eq(vmm_flint_boot_argv(&f, "flint", &g), 0);
	cr_assert(has_pair(&f, "--initrd", "/i/initrd"));
	cr_assert(has_pair(&f, "--cmdline", VMM_DEFAULT_CMDLINE " -- echo bench-out"));
	g.state = "s";
	cr_assert_eq(vmm_flint_boot_argv(&f, "flint", &g), -EINVAL, "not a restore");
}

Test(bench_vmm, flint_restore)
{
	struct vmm_argv f, q;
	struct vmm_guest g = {.state = "s", .mem_file = "m", .command = words, .ncommand = 2};

	cr_assert_eq(vmm_flint_argv(&f, "flint", &g), 0);
	cr_assert(has_pair(&f, "--restore", "s"));
	cr_assert(has_pair(&f, "--mem-file", "m"));
	g.uffd_sock = "u";
	cr_assert_eq(vmm_flint_argv(&f, "flint", &g), 0);
	cr_assert(has_pair(&f, "--uffd-sock", "u"), "the Uffd backend");
	g.uffd_sock = NULL;
	for (int i = 0; i < f.n; i++)
		cr_assert_str_neq(f.v[i], "--kernel", "a restore has no machine options");
	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), -EINVAL);
}

Test(bench_vmm, words_a_kernel_command_line_cannot_hold)
{
	struct vmm_argv q;
	char *space[] = {"sh", "-c", "echo hi", NULL}, *quote[] = {"echo", "\"x", NULL},
	     *dashes[] = {"echo", "--", NULL};
	struct vmm_guest g = {.kernel = "k", .initrd = "i", .mem_mib = 64, .vcpus = 1};

	g.command = space, g.ncommand = 3;
	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), -EINVAL);
	g.command = quote, g.ncommand = 2;
	cr_assert_eq(vmm_lkvm_argv(&q, NULL, &g), -EINVAL);
	g.command = dashes, g.ncommand = 2;
	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), -EINVAL);
	g.command = words, g.ncommand = 2, g.rootfs = "a,b";
	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), -EINVAL, "a comma would start a -drive option");
	g.rootfs = NULL;
	cr_assert_eq(vmm_qemu_argv(&q, "/opt/qemu", &g), 0);
	cr_assert(has_pair(&q, "-initrd", "i"));
	cr_assert_str_eq(last(&q), VMM_DEFAULT_CMDLINE " -- echo bench-out");
}

Test(bench_vmm, too_long)
{
	static struct vmm_argv q;
	static char big[VMM_ARGV_BYTES + 1];
	static char *many[VMM_ARGV_MAX + 1];
	char *w[] = {big, NULL};
	struct vmm_guest g = {
	    .kernel = "k", .mem_mib = 64, .vcpus = 1, .command = w, .ncommand = 1};

	memset(big, 'x', sizeof(big) - 1);
	cr_assert_eq(vmm_flint_argv(&q, "flint", &g), -E2BIG);
	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), -E2BIG);
	cr_assert_eq(vmm_flint_boot_argv(&q, "flint", &g), -E2BIG);
	/* flint run's command goes through its agent: a long one fits */
	big[9000] = '\0';
	cr_assert_eq(vmm_flint_argv(&q, "flint", &g), 0);
	for (int i = 0; i < 40; i++)
		many[i] = "w";
	g.command = many, g.ncommand = 40;
	cr_assert_eq(vmm_flint_argv(&q, "flint", &g), 0);
	cr_assert_str_eq(q.v[q.n - 1], "w");
	for (int i = 0; i < VMM_ARGV_MAX; i++)
		many[i] = "w";
	g.ncommand = VMM_ARGV_MAX;
	cr_assert_eq(vmm_flint_argv(&q, "flint", &g), -E2BIG);
}

/* What x86 Linux takes: a command line of at most 2048 bytes, which the
 * VMMs' own words share (VMM_CMDLINE_MAX for the rest), and at most 32
 * arguments for init (VMM_COMMAND_WORDS_MAX words of command). */
Test(bench_vmm, what_a_kernel_command_line_takes)
{
	struct vmm_argv q;
	char out[4096], word[VMM_CMDLINE_MAX];
	char *w[VMM_COMMAND_WORDS_MAX + 2] = {"echo"};
	struct vmm_guest g = {.kernel = "k", .mem_mib = 64, .vcpus = 1, .command = w};
	size_t base;

	for (int i = 1; i <= VMM_COMMAND_WORDS_MAX; i++)
		w[i] = "a";
	g.ncommand = VMM_COMMAND_WORDS_MAX;
	cr_assert_eq(vmm_peer_cmdline(out, sizeof(out), &g, NULL), 0);
	g.ncommand = VMM_COMMAND_WORDS_MAX + 1;
	cr_assert_eq(vmm_peer_cmdline(out, sizeof(out), &g, NULL), -E2BIG);
	cr_assert_eq(vmm_flint_boot_argv(&q, "flint", &g), -E2BIG);
	cr_assert_eq(vmm_qemu_argv(&q, NULL, &g), -E2BIG);
	/* Bytes: the default words, " -- ", then one word filling the rest. */
	base = strlen(VMM_DEFAULT_CMDLINE " -- ");
	memset(word, 'x', VMM_CMDLINE_MAX - base);
	word[VMM_CMDLINE_MAX - base] = '\0';
	w[0] = word;
	g.ncommand = 1;
	cr_assert_eq(vmm_peer_cmdline(out, sizeof(out), &g, NULL), 0);
	cr_assert_eq(strlen(out), VMM_CMDLINE_MAX);
	word[VMM_CMDLINE_MAX - base] = 'x';
	word[VMM_CMDLINE_MAX - base + 1] = '\0';
	cr_assert_eq(vmm_peer_cmdline(out, sizeof(out), &g, NULL), -E2BIG);
	cr_assert_eq(vmm_flint_boot_argv(&q, "flint", &g), -E2BIG);
}
