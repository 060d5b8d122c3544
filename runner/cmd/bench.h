/* `flint bench`: start-up latency of flint and its peers, measured the
 * same way for each (runner/bench/). This module is the command: its
 * options, the loop that runs the VMMs interleaved (warm-up runs first,
 * not counted; --concurrency runs of one VMM at once, on threads), and
 * the outputs of the one bench_set it builds (the table, --json, --csv,
 * --svg, --baseline).
 *
 *   flint bench boot    [OPTIONS] [-- COMMAND...]   a boot to the first output
 *   flint bench restore [OPTIONS] [-- COMMAND...]   a restore per memory backend
 *   flint bench run     [OPTIONS] [-- COMMAND...]   a whole flint run
 *   flint bench serve   [OPTIONS] [-- COMMAND...]   requests through flint serve
 *
 * It runs VMMs as child processes and gnuplot for --svg: it installs no
 * seccomp filter of its own (main.c dispatches it before any is set up);
 * each flint it launches installs its own. */
#ifndef FLINT_CMD_BENCH_H
#define FLINT_CMD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/record.h"
#include "bench/serve.h"
#include "core/util.h"

/* Exit statuses: flint's own 125 for bad usage and a bench that could not
 * run or write an output, as flint run and flint serve use it; 128+N when
 * signal N (SIGTERM, SIGINT, SIGHUP) stopped it: the VMMs running are
 * killed (each runs in a process group of its own, which a terminal's
 * Ctrl-C does not reach) and no output is written. */
#define BENCH_EXIT_OK		0
#define BENCH_EXIT_REGRESSED	1 /* --baseline: flint's p50 over --max-regress */
#define BENCH_EXIT_FLINT_FAILED 2 /* a counted run of flint failed (outputs written) */
#define BENCH_EXIT_ERROR	125

enum bench_mode { BENCH_BOOT, BENCH_RESTORE, BENCH_RUN, BENCH_SERVE };
enum bench_peer_kind { PEER_QEMU, PEER_FIRECRACKER, PEER_LKVM };

#define BENCH_MAX_PEERS	   6
#define BENCH_BACKEND_FILE 1u
#define BENCH_BACKEND_UFFD 2u

struct bench_peer {
	enum bench_peer_kind kind;
	const char *path; /* NULL: the usual name looked up in PATH */
};

/* The options, as bench_parse leaves them; strings point into argv. */
struct bench_opts {
	enum bench_mode mode;
	unsigned runs, warmup, concurrency, vcpus, timeout_s;
	uint64_t mem_mib;
	const char *kernel, *rootfs, *image, *cmdline; /* NULL: defaults */
	struct bench_peer peers[BENCH_MAX_PEERS];
	unsigned npeers;
	unsigned backends; /* restore: BENCH_BACKEND_* bits */
	const char *json, *csv, *svg, *baseline;
	double max_regress;		 /* with baseline */
	const char *flint;		 /* the flint benched (NULL: this binary) */
	const char *uffd_handler;	 /* NULL: flint-uffd beside flint, else in PATH */
	enum bserve_isolation isolation; /* serve: flint serve's (default reset) */
	bool isolation_set, warmup_set;
	/* boot: flint boots through `flint run` (its agent over vsock: the
	 * agent-ready phase), not as its peers do; set by --agent or --image */
	bool agent;
	char *const *command; /* after "--"; ncommand 0: the mode's default */
	int ncommand;
};

/* Parse `bench MODE [OPTIONS] [-- COMMAND...]` (argv[0] is "bench").
 * Returns 0, 1 when --help was printed to stdout, or -EINVAL with err
 * naming the option and what it takes. */
int bench_parse(int argc, char **argv, struct bench_opts *o, char *err, size_t errlen) WARN_UNUSED;

/* One run of VMM number vmm (0 is flint; the order runs go in), as the
 * slot-th of its concurrent runs: fills r. Returns 0 whatever the VMM did
 * (r says), -errno when the bench could not run it. */
typedef int (*bench_run_fn)(void *ctx, unsigned vmm, unsigned slot, struct bench_record *r);

/* How a VMM's concurrent rounds went, for VMs/s: the successful runs of
 * its counted rounds and the rounds' spans added up (a round's span: from
 * its start to the last of its runs' start-up latencies, each counted
 * from its own start). */
struct bench_rate {
	size_t ok;
	uint64_t span_us;
};

/* The loop: warmup + runs iterations; in each, every VMM in order
 * (0, 1, ..., nvmm - 1), its concurrency runs started at once (threads
 * when more than one) and all waited for before the next VMM's. The
 * warm-up iterations' records are dropped; the others go to out (room for
 * runs * nvmm * concurrency) in the order they ran, their count in *n.
 * rates[nvmm] (or NULL) get each VMM's rounds. Returns 0 or the first
 * -errno a run returned (the loop stops there). */
struct bench_loop {
	unsigned nvmm, runs, warmup, concurrency;
	bench_run_fn run;
	void *ctx;
};
int bench_loop_run(const struct bench_loop *l, struct bench_record *out, size_t *n,
		   struct bench_rate *rates) WARN_UNUSED;

/* The exit status of a bench whose outputs were all written: 1 when
 * regressed, else 2 when a run of flint (a VMM named "flint" or
 * "flint-...") failed, else 0. */
int bench_status(const struct bench_set *s, bool regressed);

/* `flint bench ...` (argv[0] "bench"): the exit status above. */
int bench_main(int argc, char **argv);

#endif
