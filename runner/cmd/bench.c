/* flint bench: the command. See bench.h. */
#include "cmd/bench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/baseline.h"
#include "bench/plot.h"
#include "bench/report.h"
#include "bench/runner.h"
#include "bench/stats.h"
#include "bench/vmm.h"
#include "config/cli.h"
#include "config/home.h"
#include "image/image.h"

/* What a peer's command prints by default, and the marker that finds it
 * on the console (not on the kernel command line: "quiet" keeps the
 * kernel from echoing that). */
#define BENCH_OUTPUT "flint-bench-output"

static const char *const mode_names[] = {[BENCH_BOOT] = "boot",
					 [BENCH_RESTORE] = "restore",
					 [BENCH_RUN] = "run",
					 [BENCH_SERVE] = "serve"};
static const char *const peer_names[] = {
    [PEER_QEMU] = "qemu", [PEER_FIRECRACKER] = "firecracker", [PEER_LKVM] = "lkvm"};
static const char *const peer_bins[] = {
    [PEER_QEMU] = "qemu-system-x86_64", [PEER_FIRECRACKER] = "firecracker", [PEER_LKVM] = "lkvm"};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: flint bench boot [options] [-- COMMAND ARGS...]\n"
	    "       flint bench restore [options] [--backend file|uffd|both] [-- COMMAND...]\n"
	    "       flint bench run [options] [-- COMMAND ARGS...]\n"
	    "       flint bench serve [options] [--isolation reset|restore|reuse] [-- COMMAND...]\n"
	    "Start-up latency of flint, phase by phase (its --phase-fd events), and of\n"
	    "its peers booting the same guest, runs interleaved (see README.md).\n"
	    "  boot     launch to init and COMMAND's first output on the console (default\n"
	    "           COMMAND: echo " BENCH_OUTPUT "), flint booting the guest as its\n"
	    "           peers do; with --agent through flint run, agent ready too\n"
	    "  restore  flint run --restore of a snapshot the bench makes first, to the\n"
	    "           first response, per memory backend (default COMMAND: true)\n"
	    "  run      a whole flint run, launch to exit (default COMMAND: true)\n"
	    "  serve    requests through a flint serve of the bench's own, each from its\n"
	    "           send to its whole answer, --concurrency at once: requests/s\n"
	    "           (default COMMAND: sh -c 'read l; echo pong $l', with a prepare)\n\n"
	    "  --runs N           counted runs of each VMM (1 to 100000, default 10)\n"
	    "  --warmup N         runs of each before them, not counted (0 to 100000,\n"
	    "                     default 1; serve: 2 x --concurrency requests)\n"
	    "  --concurrency C    C VMs of one VMM launched at once per run: VMs/s too\n"
	    "                     (1 to 256, default 1)\n"
	    "  --kernel FILE      guest kernel (default: vmlinux where flint run finds it)\n"
	    "  --rootfs IMG       root file system (default: rootfs.ext4, likewise)\n"
	    "  --image PATH       flint run --image PATH (flint only: no --peer; not in\n"
	    "                     restore or serve; boot: implies --agent)\n"
	    "  --agent            boot: flint through flint run, its agent on vsock\n"
	    "                     running COMMAND (no --peer: theirs run none)\n"
	    "  --mem SIZE         guest memory, whole MiB (default 128M)\n"
	    "  --vcpus N          vCPUs, 1 to %d (default 1)\n"
	    "  --cmdline STR      kernel command line (default \"%s\")\n"
	    "  --peer qemu[=PATH] QEMU microvm beside flint (default qemu-system-x86_64)\n"
	    "  --peer firecracker[=PATH], --peer lkvm[=PATH]\n"
	    "                     (boot; repeatable; one not installed is reported\n"
	    "                     missing, with its reason; serve: each reported missing,\n"
	    "                     no peer has a serve mode; not restore or run)\n"
	    "  --backend MODE     restore: file, uffd or both (default), rows flint and\n"
	    "                     flint-uffd\n"
	    "  --isolation MODE   serve: reset (flint serve's default), restore (its\n"
	    "                     --per-request restore) or reuse (\"isolation\": \"reuse\")\n"
	    "  --uffd-handler PATH  restore: the page-fault handler (default flint-uffd\n"
	    "                     beside flint, else in PATH)\n"
	    "  --flint PATH       the flint benched (default: this one)\n"
	    "  --timeout S        a run's limit, its VMM killed then (1 to 86400,\n"
	    "                     default 60)\n"
	    "  --json FILE, --csv FILE, --svg FILE   outputs beside the table on stdout\n"
	    "                     (--svg needs gnuplot: Debian's gnuplot-nox)\n"
	    "  --baseline FILE    an earlier --json of the same mode: compare p50s ...\n"
	    "  --max-regress PCT  ... and exit 1 when one of flint's grew by more\n"
	    "  --help\n"
	    "Exit status: 0; 1 flint regressed (--baseline); 2 a run of flint failed\n"
	    "(the outputs written); 125 bad options, or the bench could not run or\n"
	    "write an output; 128+N stopped by signal N (the VMMs running killed).\n",
	    MAX_VCPUS, VMM_DEFAULT_CMDLINE);
}

/* ----- options ----- */

static int bad(char *err, size_t errlen, const char *fmt, ...) PRINTF(3, 4);
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A decimal number from min to max, the whole of s. */
static int number(const char *opt, const char *s, unsigned long min, unsigned long max, unsigned *v,
		  char *err, size_t errlen)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || x < min || x > max)
		return bad(err, errlen, "flint bench: %s %s: expected a number from %lu to %lu",
			   opt, s, min, max);
	*v = (unsigned)x;
	return 0;
}

static int peer_option(struct bench_opts *o, const char *val, char *err, size_t errlen)
{
	size_t nl = strcspn(val, "=");
	int k = -1;

	for (int i = 0; i < (int)ARRAY_SIZE(peer_names); i++)
		if (strlen(peer_names[i]) == nl && !strncmp(val, peer_names[i], nl))
			k = i;
	if (k < 0 || (val[nl] == '=' && !val[nl + 1]))
		return bad(err, errlen,
			   "flint bench: --peer %s: expected qemu, firecracker or lkvm, each "
			   "optionally =PATH",
			   val);
	for (unsigned i = 0; i < o->npeers; i++)
		if (o->peers[i].kind == (enum bench_peer_kind)k)
			return bad(err, errlen, "flint bench: --peer %s: %s given twice", val,
				   peer_names[k]);
	if (o->npeers == BENCH_MAX_PEERS)
		return bad(err, errlen, "flint bench: --peer: at most %d", BENCH_MAX_PEERS);
	o->peers[o->npeers++] = (struct bench_peer){.kind = (enum bench_peer_kind)k,
						    .path = val[nl] ? val + nl + 1 : NULL};
	return 0;
}

enum {
	O_RUNS = 256,
	O_WARMUP,
	O_CONCURRENCY,
	O_KERNEL,
	O_ROOTFS,
	O_IMAGE,
	O_AGENT,
	O_MEM,
	O_VCPUS,
	O_CMDLINE,
	O_PEER,
	O_BACKEND,
	O_ISOLATION,
	O_UFFD,
	O_FLINT,
	O_TIMEOUT,
	O_JSON,
	O_CSV,
	O_SVG,
	O_BASELINE,
	O_MAX_REGRESS,
	O_HELP,
};

/* The options that need each other or the mode. */
static int check_opts(struct bench_opts *o, bool max_regress, char *err, size_t errlen)
{
	if (!!o->baseline != max_regress)
		return bad(err, errlen,
			   "flint bench: --baseline FILE and --max-regress PCT go "
			   "together");
	if (o->mode == BENCH_SERVE && (o->image || o->cmdline))
		return bad(err, errlen,
			   "flint bench serve: %s: flint serve's functions take a kernel and a "
			   "root image, no %s",
			   o->image ? "--image" : "--cmdline",
			   o->image ? "image directory" : "kernel command line");
	if (o->mode != BENCH_SERVE && o->isolation_set)
		return bad(err, errlen, "flint bench %s: --isolation is serve's",
			   mode_names[o->mode]);
	/* serve: each warm VM takes a request before the clock starts (its
	 * first after a restore costs more: bench/serve/README.md). */
	if (o->mode == BENCH_SERVE && !o->warmup_set)
		o->warmup = 2 * o->concurrency;
	if (o->mode != BENCH_BOOT && o->mode != BENCH_SERVE && o->npeers)
		return bad(err, errlen,
			   "flint bench %s: --peer: only boot has peers (no peer's equivalent of "
			   "flint's %s)",
			   mode_names[o->mode], o->mode == BENCH_RESTORE ? "restore" : "run");
	if (o->image && o->npeers)
		return bad(err, errlen,
			   "flint bench: --image: flint only, the peers cannot boot "
			   "an --image userland; use --rootfs with --peer");
	if (o->agent && o->mode != BENCH_BOOT)
		return bad(
		    err, errlen, "flint bench %s: --agent is boot's (%s)", mode_names[o->mode],
		    o->mode == BENCH_SERVE ? "serve's VMs are flint serve's"
					   : "this mode goes through flint run's agent already");
	if (o->agent && o->npeers)
		return bad(err, errlen,
			   "flint bench boot: --agent with --peer: the peers boot without an "
			   "agent; compare them with flint booting as they do (no --agent)");
	/* --image is flint run's: the guest's command then runs through its
	 * agent. */
	if (o->mode == BENCH_BOOT && o->image)
		o->agent = true;
	if (o->mode != BENCH_RESTORE && o->backends)
		return bad(err, errlen, "flint bench %s: --backend is restore's",
			   mode_names[o->mode]);
	if (o->mode == BENCH_RESTORE && o->image)
		return bad(err, errlen,
			   "flint bench restore: --image: a snapshot keeps its "
			   "root image; use --rootfs");
	if (!o->backends)
		o->backends = BENCH_BACKEND_FILE | BENCH_BACKEND_UFFD;
	return 0;
}

int bench_parse(int argc, char **argv, struct bench_opts *o, char *err, size_t errlen)
{
	static const struct option longs[] = {
	    {"runs", required_argument, NULL, O_RUNS},
	    {"warmup", required_argument, NULL, O_WARMUP},
	    {"concurrency", required_argument, NULL, O_CONCURRENCY},
	    {"kernel", required_argument, NULL, O_KERNEL},
	    {"rootfs", required_argument, NULL, O_ROOTFS},
	    {"image", required_argument, NULL, O_IMAGE},
	    {"agent", no_argument, NULL, O_AGENT},
	    {"mem", required_argument, NULL, O_MEM},
	    {"vcpus", required_argument, NULL, O_VCPUS},
	    {"cmdline", required_argument, NULL, O_CMDLINE},
	    {"peer", required_argument, NULL, O_PEER},
	    {"backend", required_argument, NULL, O_BACKEND},
	    {"isolation", required_argument, NULL, O_ISOLATION},
	    {"uffd-handler", required_argument, NULL, O_UFFD},
	    {"flint", required_argument, NULL, O_FLINT},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"json", required_argument, NULL, O_JSON},
	    {"csv", required_argument, NULL, O_CSV},
	    {"svg", required_argument, NULL, O_SVG},
	    {"baseline", required_argument, NULL, O_BASELINE},
	    {"max-regress", required_argument, NULL, O_MAX_REGRESS},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	bool max_regress = false;
	uint64_t bytes;
	char *end;
	int c, r = 0;

	*o = (struct bench_opts){
	    .runs = 10, .warmup = 1, .concurrency = 1, .vcpus = 1, .timeout_s = 60, .mem_mib = 128};
	if (argc < 2 || !strcmp(argv[1], "--help")) {
		if (argc >= 2) {
			usage(stdout);
			return 1;
		}
		return bad(err, errlen,
			   "flint bench: which bench? boot, restore, run or serve "
			   "(see flint bench --help)");
	}
	for (r = 0; r < (int)ARRAY_SIZE(mode_names) && strcmp(argv[1], mode_names[r]); r++)
		;
	if (r == (int)ARRAY_SIZE(mode_names))
		return bad(err, errlen, "flint bench: unknown mode %s: boot, restore, run or serve",
			   argv[1]);
	o->mode = (enum bench_mode)r;
	/* The mode is getopt's argv[0]; '+': options end at the first word
	 * that is not one ("--" or the command). */
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", longs, NULL)) != -1) {
		r = 0;
		switch (c) {
		case O_RUNS:
			r = number("--runs", optarg, 1, 100000, &o->runs, err, errlen);
			break;
		case O_WARMUP:
			r = number("--warmup", optarg, 0, 100000, &o->warmup, err, errlen);
			o->warmup_set = true;
			break;
		case O_CONCURRENCY:
			r = number("--concurrency", optarg, 1, 256, &o->concurrency, err, errlen);
			break;
		case O_KERNEL:
			o->kernel = optarg;
			break;
		case O_ROOTFS:
			o->rootfs = optarg;
			break;
		case O_IMAGE:
			o->image = optarg;
			break;
		case O_AGENT:
			o->agent = true;
			break;
		case O_MEM:
			if (cli_parse_size(optarg, &bytes) < 0)
				return bad(err, errlen,
					   "flint bench: --mem %s: expected a size such as 128M or "
					   "1G (16M to 1024G, in whole MiB)",
					   optarg);
			o->mem_mib = bytes >> 20;
			if (bytes & ((1u << 20) - 1))
				return bad(err, errlen,
					   "flint bench: --mem %s: a whole number of "
					   "MiB (the peers take MiB)",
					   optarg);
			break;
		case O_VCPUS:
			r = number("--vcpus", optarg, 1, MAX_VCPUS, &o->vcpus, err, errlen);
			break;
		case O_CMDLINE:
			if (!*optarg)
				return bad(err, errlen, "flint bench: --cmdline: empty");
			o->cmdline = optarg;
			break;
		case O_PEER:
			r = peer_option(o, optarg, err, errlen);
			break;
		case O_BACKEND:
			if (!strcmp(optarg, "file"))
				o->backends = BENCH_BACKEND_FILE;
			else if (!strcmp(optarg, "uffd"))
				o->backends = BENCH_BACKEND_UFFD;
			else if (!strcmp(optarg, "both"))
				o->backends = BENCH_BACKEND_FILE | BENCH_BACKEND_UFFD;
			else
				return bad(err, errlen,
					   "flint bench: --backend %s: expected file, uffd or both",
					   optarg);
			break;
		case O_ISOLATION:
			if (bserve_isolation_from_name(optarg, &o->isolation) < 0)
				return bad(
				    err, errlen,
				    "flint bench: --isolation %s: expected reset, restore or "
				    "reuse",
				    optarg);
			o->isolation_set = true;
			break;
		case O_UFFD:
			o->uffd_handler = optarg;
			break;
		case O_FLINT:
			o->flint = optarg;
			break;
		case O_TIMEOUT:
			r = number("--timeout", optarg, 1, 86400, &o->timeout_s, err, errlen);
			break;
		case O_JSON:
			o->json = optarg;
			break;
		case O_CSV:
			o->csv = optarg;
			break;
		case O_SVG:
			o->svg = optarg;
			break;
		case O_BASELINE:
			o->baseline = optarg;
			break;
		case O_MAX_REGRESS:
			errno = 0;
			o->max_regress = strtod(optarg, &end);
			/* digits and a point only: strtod also takes " 10", "0x10"
			 * (16) and "-0" (a limit printed "+-0.0%") */
			if (errno || end == optarg || *end || !(o->max_regress >= 0) ||
			    o->max_regress > 1e6 || optarg[strspn(optarg, "0123456789.")])
				return bad(err, errlen,
					   "flint bench: --max-regress %s: expected a percentage, "
					   "0 or more (e.g. 10)",
					   optarg);
			max_regress = true;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		case ':':
			return bad(err, errlen, "flint bench: %s needs a value", argv[optind - 1]);
		default:
			if (optopt && optopt < O_RUNS)
				return bad(err, errlen, "flint bench: unknown option -%c", optopt);
			if (optopt >= O_RUNS)
				return bad(err, errlen, "flint bench: %s needs a value",
					   argv[optind - 1]);
			return bad(err, errlen,
				   "flint bench: unknown option %s (see flint bench "
				   "--help)",
				   argv[optind - 1]);
		}
		if (r < 0)
			return r;
	}
	if (optind < argc && strcmp(argv[optind - 1], "--"))
		return bad(err, errlen,
			   "flint bench: unexpected argument %s (the command goes after --)",
			   argv[optind]);
	o->command = argv + optind;
	o->ncommand = argc - optind;
	return check_opts(o, max_regress, err, errlen);
}

/* ----- the loop ----- */

struct slot_job {
	const struct bench_loop *l;
	unsigned vmm, slot;
	struct bench_record r;
	uint64_t start_us; /* from the round's start */
	uint64_t round0;
	int ret;
};

static void *slot_thread(void *arg)
{
	struct slot_job *j = arg;

	j->start_us = now_us() - j->round0;
	j->ret = j->l->run(j->l->ctx, j->vmm, j->slot, &j->r);
	return NULL;
}

/* One round: l->concurrency runs of vmm at once into jobs[]. */
static int round_of(const struct bench_loop *l, unsigned vmm, struct slot_job *jobs)
{
	pthread_t t[256];
	unsigned started = 0;
	uint64_t round0 = now_us();
	int ret = 0;

	for (unsigned s = 0; s < l->concurrency; s++) {
		jobs[s] = (struct slot_job){.l = l, .vmm = vmm, .slot = s, .round0 = round0};
		bench_record_init(&jobs[s].r, "");
	}
	if (l->concurrency == 1) {
		slot_thread(&jobs[0]);
		return jobs[0].ret;
	}
	for (; started < l->concurrency; started++) {
		int e = pthread_create(&t[started], NULL, slot_thread, &jobs[started]);

		if (e) {
			ret = -e;
			break;
		}
	}
	for (unsigned s = 0; s < started; s++)
		pthread_join(t[s], NULL);
	for (unsigned s = 0; s < started && !ret; s++)
		ret = jobs[s].ret;
	return ret;
}

int bench_loop_run(const struct bench_loop *l, struct bench_record *out, size_t *n,
		   struct bench_rate *rates)
{
	struct slot_job *jobs;
	int ret = 0;

	*n = 0;
	if (!l->nvmm || !l->concurrency || l->concurrency > 256)
		return -EINVAL;
	if (!(jobs = calloc(l->concurrency, sizeof(*jobs))))
		return -ENOMEM;
	if (rates)
		memset(rates, 0, l->nvmm * sizeof(*rates));
	for (unsigned it = 0; it < l->warmup + l->runs && !ret; it++) {
		for (unsigned k = 0; k < l->nvmm && !ret; k++) {
			/* Every other round in the reverse order: in the rig a run's
			 * time depends on what ran just before it (bench/run's
			 * README), so no VMM always follows the same one. */
			unsigned v = it % 2 ? l->nvmm - 1 - k : k;
			uint64_t span = 0;
			size_t ok = 0;

			if ((ret = round_of(l, v, jobs)) < 0)
				break;
			if (it < l->warmup)
				continue;
			for (unsigned s = 0; s < l->concurrency; s++) {
				uint64_t st = stats_startup_us(&jobs[s].r);

				out[(*n)++] = jobs[s].r;
				if (!jobs[s].r.ok || st == BENCH_NONE)
					continue;
				ok++;
				if (jobs[s].start_us + st > span)
					span = jobs[s].start_us + st;
			}
			if (rates) {
				rates[v].ok += ok;
				rates[v].span_us += span;
			}
		}
	}
	free(jobs);
	return ret;
}

static bool is_flint(const char *vmm)
{
	return !strcmp(vmm, "flint") || !strncmp(vmm, "flint-", 6);
}

int bench_status(const struct bench_set *s, bool regressed)
{
	if (regressed)
		return BENCH_EXIT_REGRESSED;
	for (size_t i = 0; i < s->nruns; i++)
		if (is_flint(s->runs[i].vmm) && !s->runs[i].ok)
			return BENCH_EXIT_FLINT_FAILED;
	for (size_t i = 0; i < s->nmissing; i++)
		if (is_flint(s->missing[i].vmm))
			return BENCH_EXIT_FLINT_FAILED;
	return BENCH_EXIT_OK;
}

/* ----- the VMMs ----- */

enum vmm_kind { VK_FLINT, VK_FLINT_UFFD, VK_QEMU, VK_FIRECRACKER, VK_LKVM };

struct vmm_entry {
	char name[32];
	enum vmm_kind kind;
	const char *path; /* the binary (NULL: the kind's default) */
};

struct bench_ctx {
	const struct bench_opts *o;
	struct vmm_entry vmm[BENCH_MAX_VMMS];
	unsigned nvmm;
	struct vmm_guest g; /* the guest: a boot's, or with state a restore's */
	char flint[PATH_MAX], kernel[PATH_MAX], rootfs[PATH_MAX], uffd[PATH_MAX];
	char dir[PATH_MAX]; /* the bench's private directory */
	char state[PATH_MAX], mem[PATH_MAX];
	bool own_output;	/* the default command: the peers' marker finds it */
	unsigned counter;	/* for unique socket names */
	json_t *base;		/* --baseline, read before the runs */
	char gnuplot[PATH_MAX]; /* --svg: the gnuplot found before the runs */
	pthread_mutex_t lock;
};

/* Insert "--image PATH" before flint run's "--". */
static int add_image(struct vmm_argv *a, const char *image)
{
	int k;

	if (a->n + 2 > VMM_ARGV_MAX)
		return -E2BIG;
	for (k = 0; k < a->n && strcmp(a->v[k], "--"); k++)
		;
	memmove(&a->v[k + 2], &a->v[k], (size_t)(a->n - k + 1) * sizeof(a->v[0]));
	a->v[k] = "--image";
	a->v[k + 1] = (char *)image;
	a->n += 2;
	return 0;
}

/* Whether e is flint booting the guest as its peers do (boot without
 * --agent), rather than through flint run. */
static bool as_peers(const struct bench_opts *o, const struct vmm_entry *e)
{
	return e->kind == VK_FLINT && o->mode == BENCH_BOOT && !o->agent;
}

/* How a boot launches flint, for the JSON's config and --baseline:
 * "flint" (as the peers) or "flint run" (--agent); NULL in other modes. */
static const char *flint_launch(const struct bench_opts *o)
{
	return o->mode != BENCH_BOOT ? NULL : o->agent ? "flint run" : "flint";
}

/* The bench's settings, as its outputs give them; no runs yet. */
static struct bench_set settings(const struct bench_ctx *c)
{
	const struct bench_opts *o = c->o;

	return (struct bench_set){
	    .mode = mode_names[o->mode],
	    .runs_asked = o->runs,
	    .warmup = o->warmup,
	    .concurrency = o->concurrency,
	    .vcpus = o->vcpus,
	    .mem_mib = o->mem_mib,
	    .kernel = c->kernel,
	    .rootfs = c->rootfs,
	    /* a serve's functions boot from flint serve's own (no --cmdline) */
	    .cmdline = o->mode == BENCH_SERVE ? NULL
		       : o->cmdline	      ? o->cmdline
					      : VMM_DEFAULT_CMDLINE,
	    .image = o->image,
	    /* the command run: the mode's default when none was given (plan
	     * chose it), but serve's (its function's, bench/serve.h) */
	    .command = o->mode == BENCH_SERVE ? o->command : c->g.command,
	    .ncommand = (size_t)(o->mode == BENCH_SERVE ? o->ncommand : c->g.ncommand),
	    .flint_launch = flint_launch(o),
	    .isolation = o->mode == BENCH_SERVE ? bserve_isolation_name(o->isolation) : NULL,
	};
}

/* VMM e's argv for guest g (sock: Firecracker's API socket). */
static int argv_of(const struct bench_ctx *c, const struct vmm_entry *e, const struct vmm_guest *g,
		   const char *sock, struct vmm_argv *a)
{
	int r;

	switch (e->kind) {
	case VK_FLINT:
		if (as_peers(c->o, e))
			return vmm_flint_boot_argv(a, c->flint, g);
		/* fall through */
	case VK_FLINT_UFFD:
		if ((r = vmm_flint_argv(a, c->flint, g)) < 0)
			return r;
		return c->o->image && !g->state ? add_image(a, c->o->image) : 0;
	case VK_QEMU:
		return vmm_qemu_argv(a, e->path, g);
	case VK_LKVM:
		return vmm_lkvm_argv(a, e->path, g);
	case VK_FIRECRACKER:
		return vmm_firecracker_argv(a, e->path, sock);
	}
	return -EINVAL;
}

/* The VMMs running now, by slot (a round's runs), so that SIGINT,
 * SIGTERM or SIGHUP can kill their process groups (each VMM runs in one
 * of its own: the terminal's Ctrl-C does not reach it) before the bench
 * ends. Read by the handler: plain stores, no lock. */
#define LIVE_SLOTS 257 /* 256 at once, and the snapshot's maker */
static volatile pid_t live[LIVE_SLOTS];
static volatile sig_atomic_t stop_sig;
/* serve: the flint serve running, told to stop as its README says
 * (SIGTERM: it kills and reaps its VMs, each in a process group of its
 * own, which killing its group would leave running); bench/serve.c kills
 * its group only if it has not ended BSERVE_STOP_S later. */
static volatile pid_t serve_pid;

static void on_stop(int sig)
{
	stop_sig = sig;
	if (serve_pid > 0)
		kill(serve_pid, SIGTERM);
	for (unsigned i = 0; i < LIVE_SLOTS; i++) {
		pid_t p = live[i];

		if (p > 0)
			kill(-p, SIGKILL);
	}
}

/* The Uffd backend's handler for one restore: started on sock, up once
 * sock is there (within 10 s), in a process group of its own, as a VMM
 * is, which stop_child kills whole (a handler that is a wrapper script
 * left its children). 0 with *pid, or -errno with why. */
static int start_uffd(const struct bench_ctx *c, const char *path, const char *sock, pid_t *pid,
		      char *why, size_t len)
{
	char *const argv[] = {(char *)path, (char *)sock, (char *)c->mem, NULL};
	uint64_t deadline = now_ns() + 10000000000ull;
	struct stat st;
	int status;

	*pid = fork();
	if (*pid < 0) {
		snprintf(why, len, "fork: %s", strerror(errno));
		return -errno;
	}
	if (*pid == 0) {
		/* async-signal-safe calls only: other threads may run VMMs */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		/* Above 0-2, as runner.c's child does. */
		if (null >= 0)
			null = fcntl(null, F_DUPFD_CLOEXEC, 3);
		if (setpgid(0, 0) < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(null, STDOUT_FILENO) < 0)
			_exit(126);
		close_range(STDERR_FILENO + 1, ~0U, 0); /* nothing else inherited */
		execv(path, argv);
		_exit(127);
	}
	setpgid(*pid, *pid); /* as the child does: whichever runs first */
	while (stat(sock, &st) < 0) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			snprintf(why, len, "%.80s ended before it listened (status %d)", path,
				 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			*pid = -1;
			return -EIO;
		}
		if (stop_sig) {
			snprintf(why, len, "flint bench interrupted");
			return -EINTR;
		}
		if (now_ns() > deadline) {
			snprintf(why, len, "%.40s did not listen on %.40s within 10 s", path, sock);
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
	return 0;
}

static void stop_child(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(-*pid, SIGKILL);
	while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
		;
	*pid = -1;
}

/* A runner_launch.drive that puts the VMM in live[] (then drives it as
 * the inner drive does, Firecracker's API). */
struct track {
	unsigned slot;
	int (*drive)(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t whylen);
	void *ctx;
};

static int track(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t whylen)
{
	struct track *t = ctx;

	live[t->slot] = pid;
	if (stop_sig) {
		snprintf(why, whylen, "flint bench interrupted");
		return -EINTR;
	}
	return t->drive ? t->drive(t->ctx, pid, deadline_us, why, whylen) : 0;
}

/* runner_run of l with its VMM in live[slot] while it runs. */
static int tracked_run(struct runner_launch *l, unsigned slot, struct bench_record *r)
{
	struct track t = {.slot = slot, .drive = l->drive, .ctx = l->drive_ctx};
	int ret;

	l->drive = track;
	l->drive_ctx = &t;
	ret = runner_run(l, r);
	live[slot] = 0;
	return ret < 0 ? ret : stop_sig ? -EINTR : 0;
}

/* bench_run_fn for the real VMMs. */
static int run_vmm(void *ctx, unsigned v, unsigned slot, struct bench_record *r)
{
	struct bench_ctx *c = ctx;
	const struct vmm_entry *e = &c->vmm[v];
	const struct bench_opts *o = c->o;
	struct vmm_guest g = c->g;
	struct vmm_argv a;
	struct runner_launch l = {
	    .vmm = e->name,
	    .guest_mem_kib = o->mem_mib * 1024,
	    .timeout_ms = o->timeout_s * 1000,
	};
	struct vmm_firecracker_boot fb = {.g = &g};
	char sock[108] = "", why[sizeof(r->why)], handler[PATH_MAX];
	pid_t uffd = -1;
	unsigned id;
	int ret;

	if (stop_sig)
		return -EINTR;
	pthread_mutex_lock(&c->lock);
	id = c->counter++;
	pthread_mutex_unlock(&c->lock);
	if (e->kind == VK_FLINT_UFFD || e->kind == VK_FIRECRACKER)
		snprintf(sock, sizeof(sock), "%.80s/%u.sock", c->dir, id);
	if (e->kind == VK_FLINT_UFFD) {
		g.mem_file = NULL;
		g.uffd_sock = sock;
	}
	if ((ret = argv_of(c, e, &g, sock, &a)) < 0)
		return ret; /* checked once before the loop */
	l.argv = a.v;
	if (as_peers(o, e)) {
		/* Booting as the peers do: its phases before init on the
		 * pipe, init and the command's output on the console, as
		 * theirs (init's boot timer write comes before its line). Its
		 * exit status is the command's, which no peer gives. */
		l.phase_fd = true;
		l.phase_skip = 1u << BP_INIT;
		l.status_is_guests = true;
		l.markers[0] = (struct runner_marker){VMM_INIT_MARKER, BP_INIT};
		l.measure_at = BP_INIT;
		if (c->own_output) {
			l.markers[1] = (struct runner_marker){BENCH_OUTPUT, BP_FIRST_OUTPUT};
			l.measure_at = BP_FIRST_OUTPUT;
		}
	} else if (e->kind == VK_FLINT || e->kind == VK_FLINT_UFFD) {
		l.phase_fd = true;
		l.measure_at = o->mode == BENCH_RESTORE ? BP_FIRST_RESPONSE : BP_FIRST_OUTPUT;
	} else {
		l.markers[0] = (struct runner_marker){VMM_INIT_MARKER, BP_INIT};
		l.measure_at = BP_INIT;
		if (c->own_output) {
			l.markers[1] = (struct runner_marker){BENCH_OUTPUT, BP_FIRST_OUTPUT};
			l.measure_at = BP_FIRST_OUTPUT;
		}
		/* No clean way out of flint's init but the exit device. */
		l.stop_at_measure = e->kind != VK_QEMU;
	}
	if (e->kind == VK_FIRECRACKER) {
		fb.sock = sock;
		l.drive = vmm_firecracker_boot;
		l.drive_ctx = &fb;
	}
	if (e->kind == VK_FLINT_UFFD) {
		if ((ret = runner_find(c->uffd, handler, sizeof(handler))) < 0) {
			/* missing, as runner_run says of a VMM's binary */
			bench_record_init(r, e->name);
			runner_missing(r, c->uffd, ret);
			return 0;
		}
		if (start_uffd(c, handler, sock, &uffd, why, sizeof(why)) < 0) {
			stop_child(&uffd);
			bench_record_init(r, e->name);
			snprintf(r->why, sizeof(r->why), "%s", why);
			unlink(sock);
			return stop_sig ? -EINTR : 0;
		}
	}
	ret = tracked_run(&l, slot, r);
	r->to_exit = o->mode == BENCH_RUN;
	stop_child(&uffd);
	if (sock[0])
		unlink(sock);
	return ret;
}

/* ----- serve ----- */

/* serve: a flint serve of the bench's own, started and its warm pool
 * filled (bench/serve.h); --warmup requests, then --runs into runs[],
 * their count into *n and the requests/s into *rate; the server stopped
 * (*unclean when it did not stop cleanly, said). 0 or -errno. */
static int run_serve(struct bench_ctx *c, struct bench_record *runs, size_t *n,
		     struct bench_rate *rate, bool *unclean)
{
	const struct bench_opts *o = c->o;
	bool own = o->ncommand > 0;
	struct bserve_cfg cfg = {
	    .flint = c->flint,
	    .dir = c->dir,
	    .kernel = c->kernel,
	    .rootfs = c->rootfs,
	    .mem_mib = (unsigned)o->mem_mib,
	    .vcpus = o->vcpus,
	    .concurrency = o->concurrency,
	    .timeout_s = o->timeout_s,
	    .isolation = o->isolation,
	    .command = o->command,
	    .ncommand = o->ncommand,
	    .stop = &stop_sig,
	    .pid = &serve_pid,
	};
	struct bserve_load l = {.path = "/functions/" BSERVE_FN "/invoke",
				.body = own ? "" : BSERVE_BODY,
				.expect = own ? NULL : BSERVE_EXPECT,
				.n = o->warmup,
				.concurrency = o->concurrency,
				.timeout_s = o->timeout_s,
				.stop = &stop_sig};
	struct bench_record *warm = NULL;
	struct bserve *s;
	char why[512];
	uint64_t wall = 0;
	size_t nw;
	int r;

	*n = 0;
	*unclean = false;
	memset(rate, 0, sizeof(*rate));
	if ((r = bserve_start(&cfg, &s, why, sizeof(why))) < 0) {
		if (!stop_sig)
			pr_err("flint bench serve: cannot ready flint serve: %s", why);
		return r;
	}
	l.sock = bserve_socket(s);
	if (o->warmup && !(warm = calloc(o->warmup, sizeof(*warm))))
		r = -ENOMEM;
	else if (o->warmup)
		r = bserve_load_run(&l, warm, &nw, &wall);
	if (!r) {
		l.n = o->runs;
		r = bserve_load_run(&l, runs, n, &wall);
	}
	if (r < 0 && !stop_sig)
		pr_err("flint bench serve: cannot send the requests: %s", strerror(-r));
	for (size_t i = 0; i < *n; i++)
		rate->ok += runs[i].ok;
	rate->span_us = wall;
	free(warm);
	if (bserve_stop(s, why, sizeof(why)) < 0 && !stop_sig) {
		pr_err("flint bench serve: %s", why);
		*unclean = true;
	}
	return r;
}

/* serve: every --peer, missing with the reason (no peer has a serve
 * mode), into missing[]; their count. */
static size_t serve_peers(const struct bench_opts *o, struct bench_missing *missing)
{
	for (unsigned i = 0; i < o->npeers; i++) {
		snprintf(missing[i].vmm, sizeof(missing[i].vmm), "%s",
			 peer_names[o->peers[i].kind]);
		snprintf(missing[i].why, sizeof(missing[i].why), "%s",
			 o->peers[i].kind == PEER_QEMU
			     ? "no serve mode; bench/serve measures QEMU restored per request"
			     : "no serve mode: it has no function server of its own");
	}
	return o->npeers;
}

/* ----- set-up ----- */

/* The flint benched, the guest's files (flint run's defaults: home.h). */
static int find_files(struct bench_ctx *c)
{
	const struct bench_opts *o = c->o;
	char exe[PATH_MAX], where[3 * PATH_MAX + 80];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct home h;

	if (n <= 0) {
		pr_err("flint bench: /proc/self/exe: %s", strerror(errno));
		return -EIO;
	}
	exe[n] = '\0';
	if (runner_find(o->flint ? o->flint : exe, c->flint, sizeof(c->flint)) < 0) {
		pr_err("flint bench: %s %s: not an executable",
		       o->flint ? "--flint" : "this flint,", o->flint ? o->flint : exe);
		return -ENOENT;
	}
	/* Where that flint's run would look (its own directory). */
	home_init(&h, getenv("FLINT_HOME"), c->flint);
	home_describe(&h, where, sizeof(where));
	if (o->kernel)
		snprintf(c->kernel, sizeof(c->kernel), "%s", o->kernel);
	else if (home_find(&h, "vmlinux", c->kernel, sizeof(c->kernel)) < 0) {
		pr_err("flint bench: no guest kernel vmlinux in %s; set FLINT_HOME or use "
		       "--kernel FILE",
		       where);
		return -ENOENT;
	}
	if (o->rootfs)
		snprintf(c->rootfs, sizeof(c->rootfs), "%s", o->rootfs);
	else if (home_find(&h, "rootfs.ext4", c->rootfs, sizeof(c->rootfs)) < 0) {
		pr_err("flint bench: no root file system rootfs.ext4 in %s; set FLINT_HOME or "
		       "use --rootfs IMG",
		       where);
		return -ENOENT;
	}
	if (access(c->kernel, R_OK) < 0 || access(c->rootfs, R_OK) < 0) {
		const char *f = access(c->kernel, R_OK) < 0 ? c->kernel : c->rootfs;

		pr_err("flint bench: %s %s: %s", f == c->kernel ? "--kernel" : "--rootfs", f,
		       strerror(errno));
		return -ENOENT;
	}
	/* What the image is (a directory, a tar, an ext4 image) is flint run's
	 * to judge on its first run; one that is not there is known now. */
	if (o->image && access(o->image, R_OK) < 0) {
		pr_err("flint bench: --image %s: %s", o->image, strerror(errno));
		return -ENOENT;
	}
	if (o->uffd_handler) {
		snprintf(c->uffd, sizeof(c->uffd), "%s", o->uffd_handler);
	} else {
		char *slash = strrchr(c->flint, '/');

		snprintf(c->uffd, sizeof(c->uffd), "%.*s/flint-uffd",
			 slash ? (int)(slash - c->flint) : 1, slash ? c->flint : ".");
		if (access(c->uffd, X_OK) < 0)
			snprintf(c->uffd, sizeof(c->uffd), "flint-uffd");
	}
	return 0;
}

static void add_vmm(struct bench_ctx *c, const char *name, enum vmm_kind k, const char *path)
{
	struct vmm_entry *e = &c->vmm[c->nvmm++];

	snprintf(e->name, sizeof(e->name), "%s", name);
	e->kind = k;
	e->path = path;
}

/* What plan() adds when flint, booting as the peers do, cannot take a
 * command that its kernel command line carries. */
static const char *flint_hint(const struct bench_ctx *c, unsigned i)
{
	return as_peers(c->o, &c->vmm[i])
		   ? " (the kernel command line carries the command; without --peer, --agent "
		     "runs it through flint run's agent)"
		   : "";
}

/* The VMMs in the order each iteration runs them, the guest, and each
 * argv tried once so that a guest a VMM cannot take is refused now. */
static int plan(struct bench_ctx *c)
{
	const struct bench_opts *o = c->o;
	static char *const dflt_boot[] = {"echo", BENCH_OUTPUT, NULL};
	static char *const dflt_true[] = {"true", NULL};
	static const enum vmm_kind kinds[] = {
	    [PEER_QEMU] = VK_QEMU, [PEER_FIRECRACKER] = VK_FIRECRACKER, [PEER_LKVM] = VK_LKVM};
	struct vmm_argv a;
	int r;

	c->g = (struct vmm_guest){
	    .kernel = c->kernel,
	    .rootfs = c->rootfs,
	    .root_ext4 = image_is_ext4(c->rootfs),
	    .mem_mib = (unsigned)o->mem_mib,
	    .vcpus = o->vcpus,
	    .cmdline = o->cmdline,
	    .command = o->command,
	    .ncommand = o->ncommand,
	};
	if (!o->ncommand) {
		c->own_output = o->mode == BENCH_BOOT;
		c->g.command = o->mode == BENCH_BOOT ? dflt_boot : dflt_true;
		c->g.ncommand = o->mode == BENCH_BOOT ? 2 : 1;
	}
	if (o->mode == BENCH_RESTORE) {
		if (o->backends & BENCH_BACKEND_FILE)
			add_vmm(c, "flint", VK_FLINT, NULL);
		if (o->backends & BENCH_BACKEND_UFFD)
			add_vmm(c, "flint-uffd", VK_FLINT_UFFD, NULL);
	} else {
		add_vmm(c, "flint", VK_FLINT, NULL);
	}
	for (unsigned i = 0; i < o->npeers; i++)
		add_vmm(c, peer_names[o->peers[i].kind], kinds[o->peers[i].kind],
			o->peers[i].path ? o->peers[i].path : peer_bins[o->peers[i].kind]);
	for (unsigned i = 0; i < c->nvmm; i++)
		if ((r = argv_of(c, &c->vmm[i], &c->g, "x.sock", &a)) < 0 ||
		    (c->vmm[i].kind == VK_FIRECRACKER &&
		     (r = vmm_peer_cmdline(a.buf, sizeof(a.buf), &c->g, NULL)) < 0)) {
			if (r == -E2BIG && !as_peers(o, &c->vmm[i]) &&
			    c->vmm[i].kind != VK_FIRECRACKER)
				pr_err(
				    "flint bench: the command is too long for flint bench to pass "
				    "to %s: over %d words or %d KiB with flint's own arguments",
				    c->vmm[i].name, VMM_ARGV_MAX, VMM_ARGV_BYTES / 1024);
			else if (r == -E2BIG)
				pr_err("flint bench: %s cannot boot this guest: "
				       "its kernel command line would be over %d bytes, "
				       "or the command over %d words%s",
				       c->vmm[i].name, VMM_CMDLINE_MAX, VMM_COMMAND_WORDS_MAX,
				       flint_hint(c, i));
			else
				pr_err("flint bench: %s cannot boot this guest: "
				       "a word of the command has a space, a quote or is --, "
				       "or the root image's path has a ','%s",
				       c->vmm[i].name, flint_hint(c, i));
			return r;
		}
	return 0;
}

/* restore: the snapshot every run restores, made once by the flint
 * benched (flint run --save-snapshot, no command: stop once saved). */
static int make_snapshot(struct bench_ctx *c)
{
	const struct bench_opts *o = c->o;
	char mem[32], vcpus[16];
	char *argv[24];
	int n = 0;
	struct bench_record r;
	struct runner_launch l = {.vmm = "flint-snapshot",
				  .argv = argv,
				  .measure_at = BP_EXIT,
				  .timeout_ms = o->timeout_s * 1000};

	snprintf(c->state, sizeof(c->state), "%s/snap.state", c->dir);
	snprintf(c->mem, sizeof(c->mem), "%s/snap.mem", c->dir);
	snprintf(mem, sizeof(mem), "%uM", (unsigned)o->mem_mib);
	snprintf(vcpus, sizeof(vcpus), "%u", o->vcpus);
	argv[n++] = c->flint;
	argv[n++] = "run";
	argv[n++] = "--kernel";
	argv[n++] = c->kernel;
	argv[n++] = "--rootfs";
	argv[n++] = c->rootfs;
	argv[n++] = "--mem";
	argv[n++] = mem;
	argv[n++] = "--vcpus";
	argv[n++] = vcpus;
	argv[n++] = "--cmdline";
	argv[n++] = (char *)(o->cmdline ? o->cmdline : VMM_DEFAULT_CMDLINE);
	argv[n++] = "--save-snapshot";
	argv[n++] = c->state;
	argv[n++] = "--save-mem";
	argv[n++] = c->mem;
	argv[n] = NULL;
	if (tracked_run(&l, LIVE_SLOTS - 1, &r) < 0 || !r.ok) {
		if (stop_sig)
			return -EINTR;
		pr_err("flint bench restore: cannot make the snapshot with %s run "
		       "--save-snapshot: %s",
		       c->flint, r.why[0] ? r.why : "the bench could not run it");
		return -EIO;
	}
	c->g.state = c->state;
	c->g.mem_file = c->mem;
	return 0;
}

/* Remove the private directory and what the bench left in it. */
static void clean_dir(struct bench_ctx *c)
{
	if (!c->dir[0])
		return;
	if (c->state[0])
		unlink(c->state);
	if (c->mem[0])
		unlink(c->mem);
	if (rmdir(c->dir) < 0)
		pr_err("flint bench: cannot remove %s: %s", c->dir, strerror(errno));
}

/* ----- outputs ----- */

/* An output (--json, --csv, --svg), opened before the bench runs (a path
 * that cannot be written is said before minutes of runs, not after):
 * written to a file of its own beside path and renamed over it once the
 * bench wrote it, so that a bench that cannot run or is stopped leaves an
 * earlier result in place. A path that is there and not a regular file
 * (/dev/stdout, a FIFO) is written as it is; a FIFO nobody reads yet is
 * refused at once, not waited on (the bench takes its signals only once
 * it runs, so a blocked open could only be killed). */
struct output {
	const char *opt, *path;
	char tmp[PATH_MAX]; /* "" when writing path itself */
	int fd;
	FILE *f; /* --json, --csv: over fd */
};

static int output_open(struct output *out, const char *opt, const char *path, bool stream)
{
	struct stat st;
	mode_t mask;

	*out = (struct output){.opt = opt, .path = path, .fd = -1};
	if (!path)
		return 0;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		out->fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (out->fd < 0 && errno == ENXIO) {
			pr_err("flint bench: %s %s: a FIFO with no reader (start its reader "
			       "first)",
			       opt, path);
			return -ENXIO;
		}
		if (out->fd >= 0 && fcntl(out->fd, F_SETFL, 0) < 0) {
			close(out->fd);
			out->fd = -1;
		}
	} else if ((size_t)snprintf(out->tmp, sizeof(out->tmp), "%s.XXXXXX", path) >=
		   sizeof(out->tmp)) {
		errno = ENAMETOOLONG;
		out->tmp[0] = '\0';
	} else if ((out->fd = mkostemp(out->tmp, O_CLOEXEC)) < 0) {
		out->tmp[0] = '\0';
	} else {
		/* mkostemp's 0600: the mode a new file gets, as fopen's */
		mask = umask(0);
		umask(mask);
		fchmod(out->fd, 0666 & ~mask);
	}
	if (out->fd >= 0 && stream && !(out->f = fdopen(out->fd, "w"))) {
		close(out->fd);
		out->fd = -1;
	}
	if (out->fd < 0) {
		int e = errno;

		pr_err("flint bench: %s %s: %s", opt, path, strerror(e));
		if (out->tmp[0])
			unlink(out->tmp);
		out->tmp[0] = '\0';
		return -e;
	}
	return 0;
}

/* Close the output; with keep, put it in place (0, or -errno said), else
 * drop what was written. */
static int output_close(struct output *out, bool keep)
{
	int r = 0;

	if (!out->path || out->fd < 0)
		return 0;
	if (out->f ? fclose(out->f) == EOF : close(out->fd) < 0)
		r = -errno;
	out->f = NULL;
	out->fd = -1;
	if (keep && !r && out->tmp[0] && rename(out->tmp, out->path) < 0)
		r = -errno;
	if (r && keep)
		pr_err("flint bench: %s %s: %s", out->opt, out->path, strerror(-r));
	if ((r || !keep) && out->tmp[0])
		unlink(out->tmp);
	return r;
}

/* VMs/s of each VMM with runs at once (bench_rate), on stdout and in the
 * JSON (doc, or NULL) as "throughput" (a member the report's version 1
 * allows: members may be added). */
static void throughput(const struct bench_ctx *c, const struct bench_rate *rates, json_t *doc)
{
	bool serve = c->o->mode == BENCH_SERVE;
	json_t *t;

	if (c->o->concurrency < 2 && !serve)
		return;
	t = doc ? json_object() : NULL;
	for (unsigned v = 0; v < c->nvmm; v++) {
		double vps = rates[v].span_us ? rates[v].ok * 1e6 / (double)rates[v].span_us : 0;

		if (!rates[v].ok)
			continue;
		if (serve) {
			/* requests answered over the counted requests' wall time */
			printf("throughput %s %.3f requests/s (%zu answered ok, %u at once, "
			       "isolation %s)\n",
			       c->vmm[v].name, vps, rates[v].ok, c->o->concurrency,
			       bserve_isolation_name(c->o->isolation));
			if (t)
				json_object_set_new(
				    t, c->vmm[v].name,
				    json_pack("{s:f, s:I, s:i, s:I}", "requests_per_s", vps, "ok",
					      (json_int_t)rates[v].ok, "concurrency",
					      (int)c->o->concurrency, "wall_us",
					      (json_int_t)rates[v].span_us));
			continue;
		}
		printf("throughput %s %.3f VMs/s (%zu started ok, %u at once)\n", c->vmm[v].name,
		       vps, rates[v].ok, c->o->concurrency);
		if (t)
			json_object_set_new(t, c->vmm[v].name,
					    json_pack("{s:f, s:I, s:i}", "vms_per_s", vps, "ok",
						      (json_int_t)rates[v].ok, "concurrency",
						      (int)c->o->concurrency));
	}
	if (t)
		json_object_set_new(doc, "throughput", t);
}

/* Every output asked for; 0, or -EIO when one could not be written (each
 * said). *regressed from --baseline. */
static int outputs(struct bench_ctx *c, const struct bench_set *s, const struct bench_rate *rates,
		   FILE *json, FILE *csv, int svg, bool *regressed)
{
	const struct bench_opts *o = c->o;
	char err[512];
	json_t *doc = NULL;
	int ret = 0, r;

	*regressed = false;
	if ((r = report_table(s, stdout)) < 0) {
		pr_err("flint bench: cannot write the table: %s", strerror(-r));
		ret = -EIO;
	}
	if (json && (r = report_json_build(s, &doc)) < 0)
		pr_err("flint bench: --json %s: %s", o->json, strerror(-r));
	throughput(c, rates, doc);
	if (doc) {
		if (json_dumpf(doc, json, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) ||
		    fputc('\n', json) == EOF || fflush(json)) {
			pr_err("flint bench: --json %s: cannot write it", o->json);
			ret = -EIO;
		}
		json_decref(doc);
	} else if (json) {
		ret = -EIO;
	}
	if (csv && report_csv(s, csv) < 0) {
		pr_err("flint bench: --csv %s: cannot write it", o->csv);
		ret = -EIO;
	}
	if (svg >= 0 && plot_svg(s, svg, c->gnuplot, err, sizeof(err)) < 0) {
		pr_err("flint bench: --svg %s: %s", o->svg, err);
		ret = -EIO;
	}
	fflush(stdout);
	if (c->base) {
		if (baseline_check(s, c->base, o->baseline, o->max_regress, stdout, regressed, err,
				   sizeof(err)) < 0) {
			pr_err("flint bench: --baseline: %s", err);
			ret = -EIO;
		}
		fflush(stdout);
	}
	return ret;
}

int bench_main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_ctx c = {.o = &o};
	struct bench_record *runs = NULL;
	struct bench_missing missing[BENCH_MAX_VMMS];
	struct bench_rate rates[BENCH_MAX_VMMS];
	struct output json = {.fd = -1}, csv = {.fd = -1}, svg = {.fd = -1};
	int status = BENCH_EXIT_ERROR, r;
	size_t n = 0, nmissing = 0;
	char err[512];
	bool regressed, unclean = false, written = false;

	if ((r = bench_parse(argc, argv, &o, err, sizeof(err))) != 0) {
		if (r < 0)
			pr_err("%s", err);
		return r > 0 ? 0 : BENCH_EXIT_ERROR;
	}
	struct sigaction sa = {.sa_handler = on_stop, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	struct sigaction was;
	/* SIGINT and SIGHUP left ignored when they were (a background job,
	 * nohup), as a shell expects. */
	for (unsigned i = 0; i < 3; i++) {
		int sig = i == 0 ? SIGTERM : i == 1 ? SIGINT : SIGHUP;

		if (sigaction(sig, NULL, &was) == 0 &&
		    (sig == SIGTERM || was.sa_handler != SIG_IGN))
			sigaction(sig, &sa, NULL);
	}
	pthread_mutex_init(&c.lock, NULL);
	if (find_files(&c) < 0)
		goto out;
	if (o.mode == BENCH_SERVE)
		add_vmm(&c, "flint", VK_FLINT, NULL);
	else if (plan(&c) < 0)
		goto out;
	/* What the outputs need, before any run: the baseline read (it may be
	 * the file --json writes), gnuplot there. */
	if (o.baseline) {
		struct bench_set now = settings(&c);

		if (baseline_load(o.baseline, now.mode, now.flint_launch, &c.base, err,
				  sizeof(err)) < 0 ||
		    baseline_check_config(c.base, o.baseline, &now, err, sizeof(err)) < 0) {
			pr_err("flint bench: --baseline: %s", err);
			goto out;
		}
	}
	if (o.svg && runner_find("gnuplot", c.gnuplot, sizeof(c.gnuplot)) < 0) {
		pr_err("flint bench: --svg %s: gnuplot not found in PATH (Debian: apt-get "
		       "install gnuplot-nox)",
		       o.svg);
		goto out;
	}
	if (output_open(&json, "--json", o.json, true) < 0 ||
	    output_open(&csv, "--csv", o.csv, true) < 0 ||
	    output_open(&svg, "--svg", o.svg, false) < 0)
		goto out;
	const char *tmp = getenv("TMPDIR");
	snprintf(c.dir, sizeof(c.dir), "%s/flint-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	/* Sockets live there: a Unix socket's path holds 107 bytes. */
	if (strlen(c.dir) > 80 || !mkdtemp(c.dir)) {
		pr_err("flint bench: cannot make %s: %s", c.dir,
		       strlen(c.dir) > 80 ? "too long a path for sockets; set TMPDIR"
					  : strerror(errno));
		c.dir[0] = '\0';
		goto out;
	}
	if (o.mode == BENCH_RESTORE && make_snapshot(&c) < 0)
		goto out;
	size_t cap = (size_t)o.runs * c.nvmm * o.concurrency;
	if (!(runs = calloc(cap, sizeof(*runs)))) {
		pr_err("flint bench: out of memory for %zu runs", cap);
		goto out;
	}
	struct bench_loop l = {.nvmm = c.nvmm,
			       .runs = o.runs,
			       .warmup = o.warmup,
			       .concurrency = o.concurrency,
			       .run = run_vmm,
			       .ctx = &c};
	if (o.mode == BENCH_SERVE) {
		if (run_serve(&c, runs, &n, rates, &unclean) < 0)
			goto out;
		nmissing = serve_peers(&o, missing);
	} else if ((r = bench_loop_run(&l, runs, &n, rates)) < 0) {
		if (!stop_sig)
			pr_err("flint bench: cannot run a VMM: %s", strerror(-r));
		goto out;
	} else {
		n = bench_split_missing(runs, n, missing, ARRAY_SIZE(missing), &nmissing);
	}
	struct bench_set s = settings(&c);
	s.runs = runs;
	s.nruns = n;
	s.missing = missing;
	s.nmissing = nmissing;
	if (outputs(&c, &s, rates, json.f, csv.f, svg.fd, &regressed) == 0) {
		status = bench_status(&s, regressed);
		written = true;
	}
	/* serve: a server that did not stop cleanly is flint's failure too */
	if (unclean && status == BENCH_EXIT_OK)
		status = BENCH_EXIT_FLINT_FAILED;
out:
	/* Put in place only what the bench wrote; a stopped bench leaves
	 * none, and earlier files where they were. */
	written = written && !stop_sig;
	if ((output_close(&json, written) | output_close(&csv, written) |
	     output_close(&svg, written)) < 0)
		status = BENCH_EXIT_ERROR;
	json_decref(c.base);
	clean_dir(&c);
	free(runs);
	pthread_mutex_destroy(&c.lock);
	if (stop_sig) {
		pr_err("flint bench: stopped by signal %d: the VMMs running killed, no outputs "
		       "written",
		       (int)stop_sig);
		return 128 + stop_sig;
	}
	return status;
}
