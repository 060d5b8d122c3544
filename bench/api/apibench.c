/* apibench: flint's API against QEMU's QMP, and an API-driven boot against
 * flint's command-line boot, measured from outside the process the same way
 * for each.
 *
 *   apibench host [-n RUNS] [-a ACCEL] FLINT QEMU
 *       Launch to the control socket's first answer: flint --api-sock S to
 *       its answer to GET /, QEMU -M microvm -S -qmp unix:S to its answer to
 *       query-status (after the greeting and qmp_capabilities), alternately,
 *       RUNS of each (default 30). Per run: wall time from just before the
 *       fork to the answer, and the CPU time the process's threads used up to
 *       then (/proc/PID/task/STAR/schedstat). Prints each run, then median,
 *       p90, min and max of each, and the flint/QEMU ratio of the medians.
 *   apibench cli [-t SECONDS] -- FLINT ARGS...
 *       One command-line boot: runs FLINT ARGS until it exits; the boot
 *       time is the "guest boot time: N us" flint prints on stderr (launch
 *       to the guest init's boot-timer write).
 *   apibench api [-t SECONDS] -k KERNEL [-i INITRD] [-b BOOT-ARGS] [-m MIB]
 *                [-c VCPUS] -- FLINT ARGS...
 *       One API-driven boot: runs FLINT --api-sock S ARGS (ARGS must make
 *       flint log its "launched at monotonic N ns" line: --verbose), PUTs
 *       /boot-source and /machine-config, sends InstanceStart at t_send and
 *       waits for flint to exit. Boot time = launch + guest boot time -
 *       t_send; start_ms is InstanceStart's answer time.
 *   apibench table [FILE]
 *       Summarizes the "run mode=M ms=V ..." lines of cli and api runs.
 *
 * cli and api print one "run mode=... ms=..." line (ms=-1 and the reason on
 * stderr when the boot failed; exit status 1). Built static (bench/api/run)
 * with flint's own HTTP client of its API (runner/bench/fcapi.c, and
 * core/util.c, jansson) and bench/vmmctl.c's connect and QMP reads. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../vmmctl.h"
#include "bench/fcapi.h"
#include "core/util.h"

#define MAX_RUNS 1000

/* Fork and exec argv with stdin and stdout on /dev/null and stderr on
 * err_fd (-1: /dev/null too). Returns the pid or -errno. */
static pid_t spawn(char *const argv[], int err_fd)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(err_fd >= 0 ? err_fd : null, STDERR_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Wait for pid until deadline (SIGKILL it then). Returns its exit status
 * as a shell shows it (128+N for signal N). */
static int reap(pid_t pid, uint64_t deadline)
{
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return -1;
		if (now_ns() >= deadline) {
			kill(pid, SIGKILL);
			if (waitpid(pid, &st, 0) != pid)
				return -1;
			break;
		}
		usleep(1000);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void kill_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The next QMP message that is not an event, NUL-terminated in out. */
static int qmp_line(struct qmp_conn *c, char *out, size_t outlen)
{
	for (;;) {
		int r = qmp_next(c, out, outlen);
		if (r < 0 || !strstr(out, "\"event\""))
			return r;
	}
}

/* The CPU time pid's threads have used, in ns: the sum of the first field
 * of /proc/PID/task/STAR/schedstat (time on CPU). Threads that already ended
 * are not counted. */
static uint64_t cpu_ns(pid_t pid)
{
	char path[64];
	uint64_t sum = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p[320], buf[128];
		snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			sum += strtoull(buf, NULL, 10);
		}
	}
	closedir(d);
	return sum;
}

/* ---- statistics ---- */

struct series {
	const char *name;
	double v[MAX_RUNS];
	int n;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median, p90 (nearest rank), min and max of s (sorted in place). */
static void stats(struct series *s, double out[4])
{
	if (!s->n) {
		out[0] = out[1] = out[2] = out[3] = -1;
		return;
	}
	qsort(s->v, (size_t)s->n, sizeof(double), cmp_double);
	int n = s->n, r90 = (9 * n + 9) / 10; /* ceil(0.9 n) */
	out[0] = n % 2 ? s->v[n / 2] : (s->v[n / 2 - 1] + s->v[n / 2]) / 2;
	out[1] = s->v[r90 - 1];
	out[2] = s->v[0];
	out[3] = s->v[n - 1];
}

/* One table row: median, p90, min and max of s; its median in *median. */
static void table_row(const char *what, struct series *s, double *median)
{
	double st[4];
	stats(s, st);
	*median = st[0];
	if (!s->n) {
		printf("%-8s %-6s   0 runs\n", what, s->name);
		return;
	}
	printf("%-8s %-6s %3d runs  median %9.2f  p90 %9.2f  min %9.2f  max %9.2f\n", what, s->name,
	       s->n, st[0], st[1], st[2], st[3]);
}

/* The rows of a and b and b/a of their medians. */
static void table_pair(const char *what, struct series *a, struct series *b)
{
	double ma, mb;
	table_row(what, a, &ma);
	table_row(what, b, &mb);
	if (ma > 0 && mb >= 0)
		printf("%-8s %s/%s of the medians: %.3f\n", what, b->name, a->name, mb / ma);
}

/* ---- host: launch to the first answer ---- */

static struct series wall[2] = {{.name = "flint"}, {.name = "qemu"}};
static struct series cpu[2] = {{.name = "flint"}, {.name = "qemu"}};

/* One launch of flint (vmm 0) or QEMU (vmm 1) with its control socket at
 * sock, timed to its first answer; the process is killed and reaped after.
 * Returns 0 or -errno (with the reason printed). */
static int host_run(int vmm, char *const argv[], const char *sock, double *wall_ms, double *cpu_ms)
{
	struct qmp_conn *c = calloc(1, sizeof(*c));
	char out[4096] = "";
	int r, status = 0;

	if (!c)
		return -ENOMEM;
	unlink(sock);
	c->fd = -1;
	uint64_t t0 = now_ns();
	pid_t pid = spawn(argv, -1);
	if (pid < 0) {
		free(c);
		return pid;
	}
	c->deadline = t0 + 10000000000ULL;
	r = c->fd = vmmctl_connect(sock, pid, c->deadline);
	if (r < 0)
		goto out;
	if (vmm == 0) {
		r = fcapi_request(c->fd, "GET", "/", NULL, c->deadline / 1000, &status, out,
				  sizeof(out));
		if (r == 0 && status != 200)
			r = -EPROTO;
	} else {
		/* Greeting, capabilities negotiation, then the measured query. */
		if ((r = qmp_line(c, out, sizeof(out))) < 0 || !strstr(out, "\"QMP\"") ||
		    (r = write_full(c->fd, "{\"execute\":\"qmp_capabilities\"}\n", 31)) < 0 ||
		    (r = qmp_line(c, out, sizeof(out))) < 0 || !strstr(out, "\"return\"") ||
		    (r = write_full(c->fd, "{\"execute\":\"query-status\"}\n", 27)) < 0 ||
		    (r = qmp_line(c, out, sizeof(out))) < 0)
			r = r < 0 ? r : -EPROTO;
		else if (!strstr(out, "\"status\""))
			r = -EPROTO;
	}
	uint64_t t1 = now_ns();
	uint64_t used = cpu_ns(pid);
	*wall_ms = (double)(t1 - t0) / 1e6;
	*cpu_ms = (double)used / 1e6;
out:
	if (r == -ECHILD)
		fprintf(stderr, "apibench: %s exited before its socket accepted\n", argv[0]);
	else if (r < 0)
		fprintf(stderr, "apibench: %s: %s (status %d, last answer: %.200s)\n",
			wall[vmm].name, strerror(-r), status, r == -EPROTO ? out : "");
	close_fd(&c->fd);
	kill_reap(pid);
	unlink(sock);
	free(c);
	return r;
}

static int host_main(int argc, char **argv)
{
	int runs = 30, opt, failed = 0;
	const char *accel = "tcg";

	while ((opt = getopt(argc, argv, "+n:a:")) != -1) {
		if (opt == 'n')
			runs = atoi(optarg);
		else if (opt == 'a')
			accel = optarg;
		else
			return 2;
	}
	if (argc - optind != 2 || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: apibench host [-n RUNS] [-a ACCEL] FLINT QEMU\n");
		return 2;
	}
	char dir[] = "/tmp/apibench.XXXXXX", sock[64], qmp[96];
	if (!mkdtemp(dir))
		return 2;
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
	char *fl[] = {argv[optind], "--api-sock", sock, NULL};
	/* -S: the guest never runs, so QEMU needs no kernel and TCG costs
	 * nothing but its set-up. */
	char *qe[] = {
	    argv[optind + 1],  "-M",	   "microvm", "-accel", (char *)accel, "-S", "-nodefaults",
	    "-no-user-config", "-display", "none",    "-qmp",	qmp,	       NULL};
	char *const *argvs[2] = {fl, qe};

	for (int i = 0; i < runs; i++) {
		/* Alternate which goes first so neither always runs warm. */
		for (int k = 0; k < 2; k++) {
			int vmm = (i + k) % 2;
			double w, c;
			if (host_run(vmm, argvs[vmm], sock, &w, &c) < 0) {
				failed++;
				continue;
			}
			wall[vmm].v[wall[vmm].n++] = w;
			cpu[vmm].v[cpu[vmm].n++] = c;
			printf("run vmm=%s wall_ms=%.3f cpu_ms=%.3f\n", wall[vmm].name, w, c);
			fflush(stdout);
		}
	}
	rmdir(dir);
	printf("\nlaunch to the first answer (flint: GET /; QEMU %s: query-status)\n", accel);
	table_pair("wall ms", &wall[1], &wall[0]);
	table_pair("CPU ms", &cpu[1], &cpu[0]);
	if (failed)
		printf("%d runs failed\n", failed);
	return failed ? 1 : 0;
}

/* ---- rig: API-driven boot against command-line boot ---- */

/* The number after needle in text, or -1. */
static long long find_num(const char *text, const char *needle)
{
	const char *p = strstr(text, needle);
	return p ? strtoll(p + strlen(needle), NULL, 10) : -1;
}

/* stderr of a run, read back from its memfd (a file, so flint never
 * blocks on a full pipe). */
static char errbuf[1 << 20];

static const char *read_err(int fd)
{
	ssize_t n = pread(fd, errbuf, sizeof(errbuf) - 1, 0);
	errbuf[n > 0 ? n : 0] = '\0';
	return errbuf;
}

static void show_tail(const char *text)
{
	size_t n = strlen(text);
	const char *p = n > 1500 ? text + n - 1500 : text;
	fprintf(stderr, "apibench: flint's stderr (end):\n%s", p);
}

static int cli_main(int argc, char **argv)
{
	int timeout_s = 120, opt;

	while ((opt = getopt(argc, argv, "+t:")) != -1) {
		if (opt == 't')
			timeout_s = atoi(optarg);
		else
			return 2;
	}
	/* getopt() consumed the "--": the command starts at argv[optind]. */
	if (optind >= argc || strcmp(argv[optind - 1], "--")) {
		fprintf(stderr, "usage: apibench cli [-t SECONDS] -- FLINT ARGS...\n");
		return 2;
	}
	int err = memfd_create("flint-stderr", MFD_CLOEXEC);
	if (err < 0)
		return 2;
	uint64_t t0 = now_ns();
	pid_t pid = spawn(&argv[optind], err);
	if (pid < 0)
		return 2;
	int status = reap(pid, t0 + (uint64_t)timeout_s * 1000000000ULL);
	const char *text = read_err(err);
	close(err);
	long long boot_us = find_num(text, "guest boot time: ");
	printf("run mode=cli ms=%.3f status=%d\n", boot_us < 0 ? -1.0 : boot_us / 1e3, status);
	if (boot_us < 0) {
		fprintf(stderr, "apibench: cli: no \"guest boot time\" line (status %d)\n", status);
		show_tail(text);
		return 1;
	}
	return 0;
}

/* s with '"' and '\' escaped for a JSON string. */
static void json_str(char *out, size_t len, const char *s)
{
	size_t o = 0;
	for (; *s && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o] = '\0';
}

struct api_opts {
	const char *kernel, *initrd, *boot_args;
	int mem_mib, vcpus, timeout_s;
};

/* Configure the waiting flint through its API socket fd (one connection,
 * kept alive) and start it, each answer before deadline; *t_send is taken
 * just before InstanceStart goes out, *t_answer when its answer is in.
 * Returns 0 or -errno; a refusal is printed with its body. */
static int api_boot(int fd, uint64_t deadline, const struct api_opts *o, uint64_t *t_send,
		    uint64_t *t_answer)
{
	char body[8192], k[2048], i[2048], b[2048], out[2048];
	int r, status;
	struct {
		const char *path, *body;
	} steps[3] = {{"/boot-source", body}, {"/machine-config", NULL}, {"/actions", NULL}};
	char mc[128];

	json_str(k, sizeof(k), o->kernel);
	json_str(i, sizeof(i), o->initrd ? o->initrd : "");
	json_str(b, sizeof(b), o->boot_args);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s\",%s%s%s\"boot_args\":\"%s\"}", k,
		 o->initrd ? "\"initrd_path\":\"" : "", o->initrd ? i : "", o->initrd ? "\"," : "",
		 b);
	snprintf(mc, sizeof(mc), "{\"vcpu_count\":%d,\"mem_size_mib\":%d}", o->vcpus, o->mem_mib);
	steps[1].body = mc;
	steps[2].body = "{\"action_type\":\"InstanceStart\"}";
	for (int s = 0; s < 3; s++) {
		if (s == 2)
			*t_send = now_ns();
		r = fcapi_request(fd, "PUT", steps[s].path, steps[s].body, deadline / 1000, &status,
				  out, sizeof(out));
		if (s == 2)
			*t_answer = now_ns();
		if (r < 0) {
			fprintf(stderr, "apibench: api: PUT %s: %s\n", steps[s].path, strerror(-r));
			return r;
		}
		if (status != 204) {
			fprintf(stderr, "apibench: api: PUT %s answered %d: %s\n", steps[s].path,
				status, out);
			return -EPROTO;
		}
	}
	return 0;
}

static int api_main(int argc, char **argv)
{
	struct api_opts o = {.boot_args = "console=ttyS0 reboot=k panic=-1 quiet -- true",
			     .mem_mib = 128,
			     .vcpus = 1,
			     .timeout_s = 120};
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "+t:k:i:b:m:c:")) != -1) {
		switch (opt) {
		case 't':
			o.timeout_s = atoi(optarg);
			break;
		case 'k':
			o.kernel = optarg;
			break;
		case 'i':
			o.initrd = optarg;
			break;
		case 'b':
			o.boot_args = optarg;
			break;
		case 'm':
			o.mem_mib = atoi(optarg);
			break;
		case 'c':
			o.vcpus = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!o.kernel || optind >= argc || strcmp(argv[optind - 1], "--") || argc - optind > 60) {
		fprintf(stderr, "usage: apibench api [-t S] -k KERNEL [-i INITRD] [-b BOOT-ARGS] "
				"[-m MIB] [-c VCPUS] -- FLINT ARGS...\n");
		return 2;
	}
	char dir[] = "/tmp/apibench.XXXXXX", sock[64];
	if (!mkdtemp(dir))
		return 2;
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	/* FLINT --api-sock S ARGS... */
	char *av[64];
	int n = 0;
	av[n++] = argv[optind];
	av[n++] = "--api-sock";
	av[n++] = sock;
	for (int a = optind + 1; a < argc; a++)
		av[n++] = argv[a];
	av[n] = NULL;

	int err = memfd_create("flint-stderr", MFD_CLOEXEC);
	if (err < 0)
		return 2;
	uint64_t t0 = now_ns(), t_send = 0, t_answer = 0;
	uint64_t deadline = t0 + (uint64_t)o.timeout_s * 1000000000ULL;
	pid_t pid = spawn(av, err);
	if (pid < 0)
		return 2;
	int r, fd = r = vmmctl_connect(sock, pid, deadline);
	if (r < 0)
		fprintf(stderr, "apibench: api: cannot connect to %s: %s\n", sock, strerror(-r));
	else
		r = api_boot(fd, deadline, &o, &t_send, &t_answer);
	close_fd(&fd);
	if (r < 0)
		kill(pid, SIGKILL);
	int status = reap(pid, deadline);
	const char *text = read_err(err);
	long long launch = find_num(text, "launched at monotonic ");
	long long boot_us = find_num(text, "guest boot time: ");
	double ms = -1;
	if (r == 0 && launch < 0)
		fprintf(stderr, "apibench: api: no \"launched at monotonic\" line: run flint "
				"with --verbose\n");
	else if (r == 0 && boot_us < 0)
		fprintf(stderr, "apibench: api: no \"guest boot time\" line (status %d)\n", status);
	else if (r == 0) {
		ms = ((double)launch + boot_us * 1e3 - (double)t_send) / 1e6;
		rc = 0;
	}
	printf("run mode=api ms=%.3f start_ms=%.3f status=%d\n", ms,
	       t_answer ? (double)(t_answer - t_send) / 1e6 : -1.0, status);
	if (rc)
		show_tail(text);
	close(err);
	unlink(sock);
	rmdir(dir);
	return rc;
}

/* Summarize "run mode=M ms=V start_ms=V ..." lines: per mode, ms and the
 * API's start_ms, and api/cli of the median boot times. */
static int table_main(int argc, char **argv)
{
	static struct series ms[2] = {{.name = "cli"}, {.name = "api"}};
	static struct series start = {.name = "api"};
	FILE *f = argc > 1 ? fopen(argv[1], "r") : stdin;
	char line[1024], mode[16];
	int failed = 0;

	if (!f)
		return 2;
	while (fgets(line, sizeof(line), f)) {
		double v, s;
		if (sscanf(line, "run mode=%15s ms=%lf", mode, &v) != 2)
			continue;
		int m = !strcmp(mode, "api");
		if (v < 0 || ms[m].n == MAX_RUNS) {
			failed++;
			continue;
		}
		ms[m].v[ms[m].n++] = v;
		char *p = strstr(line, "start_ms=");
		if (m && p && sscanf(p, "start_ms=%lf", &s) == 1 && start.n < MAX_RUNS)
			start.v[start.n++] = s;
	}
	printf("\nguest boot (cli: launch to init; api: InstanceStart to init)\n");
	table_pair("boot ms", &ms[0], &ms[1]);
	double m;
	table_row("start ms", &start, &m);
	if (failed)
		printf("%d runs failed\n", failed);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "host"))
		return host_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "cli"))
		return cli_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "api"))
		return api_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "table"))
		return table_main(argc - 1, argv + 1);
	fprintf(stderr, "usage: apibench host|cli|api|table ... (see the comment at the top)\n");
	return 2;
}
