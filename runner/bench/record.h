/* `flint bench`'s data: what one run of one VMM measured (a record), and
 * the runs of a whole bench (a set). Filled by the runners (flint's phase
 * events, a peer's console marker), read by the statistics and the
 * reports. A plain value type: no pointers into anything, so a record can
 * be copied, kept in an array and compared in tests.
 *
 * Times are microseconds from the launch: the moment the bench forked the
 * VMM's process (flint bench serve: the moment it sent the request). A phase the run did not reach,
 * or that a VMM does not report, is BENCH_NONE; a count the run could not read is BENCH_NONE too (a
 * missing figure is never a 0). Memory, faults and CPU time are read once, when the run
 * reaches the phase it measures at (flint bench boot: the first output). */
#ifndef FLINT_BENCH_RECORD_H
#define FLINT_BENCH_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_NONE UINT64_MAX

/* The phases, in the order a boot goes through them. A restore's phases
 * come after a boot's: a run has either kind, never both. */
enum bench_phase {
	BP_PROCESS,	   /* the VMM's process is running its own code (flint: main) */
	BP_VM_CREATED,	   /* KVM_CREATE_VM returned */
	BP_VCPUS_STARTED,  /* the first KVM_RUN of every vCPU */
	BP_KERNEL_ENTRY,   /* the guest's first exit (the kernel runs) */
	BP_INIT,	   /* the boot timer: the guest's init wrote it */
	BP_AGENT_READY,	   /* the agent said it was ready */
	BP_FIRST_OUTPUT,   /* the first command's first output (or the marker) */
	BP_STATE_READ,	   /* restore: the snapshot's state file read */
	BP_MEMORY_MAPPED,  /* restore: guest memory mapped (file or uffd) */
	BP_RESUMED,	   /* restore: the vCPUs run again */
	BP_FIRST_RESPONSE, /* restore: the first answer of the restored guest;
			    * serve: the first byte of flint serve's answer */
	BP_RESPONSE,	   /* serve: the whole answer read (never on the wire) */
	BP_EXIT,	   /* the VMM's process was reaped */
	BP_COUNT
};

/* KVM's exit counters (its binary statistics, per VM summed over vCPUs),
 * by the names KVM gives them. */
enum bench_exit {
	BE_TOTAL,	   /* "exits" */
	BE_IO,		   /* "io_exits" */
	BE_MMIO,	   /* "mmio_exits" */
	BE_HALT,	   /* "halt_exits" */
	BE_IRQ,		   /* "irq_exits" */
	BE_IRQ_WINDOW,	   /* "irq_window_exits" */
	BE_SIGNAL,	   /* "signal_exits" */
	BE_INSN_EMULATION, /* "insn_emulation" */
	BE_PF_TAKEN,	   /* "pf_taken" */
	BE_COUNT
};

/* One run. vmm names the VMM ("flint", "qemu", "firecracker", "lkvm");
 * ok is false when the run failed (why says how: a missing marker, a
 * timeout, the VMM's status), and its figures then count for nothing. */
struct bench_record {
	char vmm[32];
	bool ok;
	char why[128];
	uint64_t phase_us[BP_COUNT];
	uint64_t exits[BE_COUNT];	     /* at BP_FIRST_OUTPUT (or the run's end) */
	uint64_t rss_overhead_kib;	     /* the VMM's RSS outside guest RAM */
	uint64_t guest_touched_kib;	     /* guest RAM resident */
	uint64_t minor_faults, major_faults; /* the VMM process's */
	uint64_t cpu_us; /* the VMM process's CPU time, user and system, all its threads: a
			  * guest's own execution counts in its vCPU threads */
	/* Its start-up is the whole process, launch to exit (bench run: a
	 * whole flint run), not launch to the last start-up phase. */
	bool to_exit;
};

/* The phase's and the exit counter's names, as the reports print them
 * ("launch-to-init", "io_exits"...); NULL for a value out of range. */
const char *bench_phase_name(enum bench_phase p);
const char *bench_exit_name(enum bench_exit e);

/* The phase or exit counter of a name above (exact), or -1: how a
 * report read back (a --baseline file) names its figures. */
int bench_phase_from_name(const char *name);
int bench_exit_from_name(const char *name);

/* An empty record of vmm (cut to fit vmm[]): every figure BENCH_NONE,
 * ok false, why "". */
void bench_record_init(struct bench_record *r, const char *vmm);

/* A peer the bench was asked for that could not run at all (not
 * installed, not runnable here; why says which): the reports list it as
 * missing, never drop it. A plain value type too. */
struct bench_missing {
	char vmm[32];
	char why[128];
};

/* How a record's why starts when its VMM's binary was not there (the
 * runners' "missing: NAME not found", or "... is not an executable
 * file"). */
#define BENCH_MISSING_PREFIX "missing: "

/* The missing VMMs of runs[0..n), taken out: a VMM every run of which
 * failed with a why starting BENCH_MISSING_PREFIX becomes an entry of
 * missing[] (why: the rest of the record's, "NAME not found"), and its runs are removed, the others
 * keeping their order. At most max entries (the VMMs past them stay as
 * failed runs); their count into *nmissing. Returns the runs left. */
size_t bench_split_missing(struct bench_record *runs, size_t n, struct bench_missing *missing,
			   size_t max, size_t *nmissing);

/* One bench, as the statistics, the reports and the plot take it: its
 * records in the order they ran (the VMMs interleaved), the peers that
 * were missing, and what was run, for the reports' headers and the
 * JSON's "config" (a NULL string or a 0 count: not given). It points into
 * the caller's arrays and strings and owns nothing. */
struct bench_set {
	const char *mode; /* "boot", "restore", "run", "serve" */
	const struct bench_record *runs;
	size_t nruns;
	const struct bench_missing *missing;
	size_t nmissing;
	unsigned runs_asked, warmup, concurrency, vcpus; /* --runs N ... */
	uint64_t mem_mib;
	const char *kernel, *rootfs, *cmdline;
	/* boot: how flint was launched, "flint" (as the peers) or "flint run"
	 * (its agent); NULL in the other modes */
	const char *flint_launch;
	/* serve: the isolation, "reset", "restore" or "reuse"; else NULL */
	const char *isolation;
	const char *image;    /* --image, or NULL */
	char *const *command; /* the command after "--", or NULL: the mode's own */
	size_t ncommand;
};

#endif
