/* flint bench's runners: launch one VMM, time it from the fork and fill a
 * bench_record. flint reports its own phases on a pipe (--phase-fd,
 * bench/phase.h); a peer (QEMU, Firecracker, kvmtool) is timed the way
 * bench/boot does it, by marker lines on its console. For every VMM the
 * same figures, taken the same way at the phase the caller names
 * (measure_at): the RSS outside guest RAM and guest RAM resident, from
 * /proc/PID/smaps, and the process's minor and major faults, from
 * /proc/PID/stat. KVM's exit counters come from flint alone: a peer's
 * stay BENCH_NONE (counting them needs tracing privileges, as bench/boot's
 * kvm_exit histogram does).
 *
 * A VMM whose binary is not there gives a record "missing: <what>", never
 * a silent skip; one past the timeout has its process group killed and
 * its record failed with the reason. */
#ifndef FLINT_BENCH_RUNNER_H
#define FLINT_BENCH_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench/record.h"
#include "core/util.h"

/* The VMM's descriptor for flint's phase lines: flint gets "--phase-fd 3". */
#define RUNNER_PHASE_FD	   3
#define RUNNER_MAX_MARKERS 4
/* The smaps mapping taken for guest RAM may be this much larger than the
 * guest's memory (alignment, a neighbour the kernel merged it with). */
#define RUNNER_GUEST_SLACK_KIB 4096

/* A console marker: the first time text begins a line (across reads) on
 * the VMM's stdout or stderr, phase happened. Not elsewhere in a line: a
 * kernel without "quiet" echoes its command line, which holds the
 * command that prints the marker. */
struct runner_marker {
	const char *text; /* NULL: unused */
	enum bench_phase phase;
};

struct runner_launch {
	const char *vmm;   /* the record's name: "flint", "qemu", ... */
	char *const *argv; /* argv[0]: a path, or a name looked up in PATH */
	bool phase_fd;	   /* flint: a pipe at RUNNER_PHASE_FD, parsed as phase lines */
	struct runner_marker markers[RUNNER_MAX_MARKERS];
	/* Phases the pipe's lines may not give (1u << enum bench_phase):
	 * flint booting as the peers takes init from the console's marker,
	 * as theirs, not from its boot timer, which init writes before it
	 * prints the marker. */
	uint32_t phase_skip;
	/* flint booting as the peers: its exit status is the guest command's,
	 * which no peer reports; once measure_at is reached only a signal
	 * fails the run. */
	bool status_is_guests;
	/* When to read RSS, guest RAM and faults, and the phase a run must
	 * reach to be ok (flint run: first-output or first-response; a peer,
	 * or flint booting as one: its last marker's, else init). */
	enum bench_phase measure_at;
	uint64_t guest_mem_kib; /* the guest's memory: its mapping in smaps */
	unsigned timeout_ms;	/* 0: 60 s */
	/* Kill the VMM's process group once measure_at is reached and
	 * measured, and look no further at how it ends: for a peer whose
	 * guest has no clean way out (Firecracker and kvmtool take flint
	 * init's exit device for nothing). BP_EXIT is then the kill's reap. */
	bool stop_at_measure;
	/* Optional, in the parent right after the fork, before the VMM's
	 * output is read (Firecracker: its API driven to InstanceStart; the
	 * pipes hold what the VMM writes meanwhile). Returns 0, or -errno with
	 * a reason in why: the run fails with it and the VMM is killed. */
	int (*drive)(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t whylen);
	void *drive_ctx;
};

/* Run l once and fill r (bench_record_init'd here, with l->vmm): ok, or
 * why not (missing binary, timeout, exit status, a malformed phase line,
 * the measure_at phase never reached). Returns 0 whatever the VMM did, or
 * -errno when the bench itself could not run it (pipe, fork). Keeps no
 * state of its own: several threads may run VMMs at once (--concurrency);
 * the child does only async-signal-safe calls between fork and exec, and
 * every descriptor the bench opens is close-on-exec. */
int runner_run(const struct runner_launch *l, struct bench_record *r) WARN_UNUSED;

/* --- pieces, exposed for the tests -------------------------------------- */

/* Find name as execvp would: a name with a '/' as it is, else in PATH
 * (its default when unset). 0 with the path in out, -EACCES for a name
 * with a '/' that is there but not an executable file, or -ENOENT. */
int runner_find(const char *name, char *out, size_t len) WARN_UNUSED;

/* r's reason for bin missing, as runner_find's err (-EACCES or -ENOENT)
 * says: BENCH_MISSING_PREFIX "BIN not found" or "... is not an executable
 * file". */
void runner_missing(struct bench_record *r, const char *bin, int err);

/* /proc/PID/smaps's text: *total_kib the Rss of every mapping, *guest_kib
 * the Rss of guest RAM's mapping: of the mappings whose size is
 * guest_mem_kib to guest_mem_kib + RUNNER_GUEST_SLACK_KIB, the one with
 * the most Rss. Returns 0; -ENOENT when no mapping has that size
 * (*total_kib is still set); -EINVAL for text that is not smaps. */
int runner_smaps(const char *text, size_t n, uint64_t guest_mem_kib, uint64_t *total_kib,
		 uint64_t *guest_kib) WARN_UNUSED;

/* What the bench takes of /proc/PID/stat: the process's page faults and
 * its CPU time (utime + stime, all its threads, at the kernel's clock-tick
 * granularity, ticks_per_s a second: sysconf(_SC_CLK_TCK)). */
struct runner_stat {
	uint64_t minflt, majflt;
	uint64_t cpu_us;
};

/* /proc/PID/stat's text into *st. 0 or -EINVAL. */
int runner_stat(const char *text, long ticks_per_s, struct runner_stat *st) WARN_UNUSED;

/* Looks for the markers in a stream read in pieces. */
struct runner_scan {
	const struct runner_marker *m;
	unsigned nm;
	unsigned found; /* a bit per marker */
	char win[512];	/* the stream's tail, for markers across reads */
	size_t wl;
};

/* Scan for m[0..nm), each at most 255 bytes. */
void runner_scan_init(struct runner_scan *s, const struct runner_marker *m, unsigned nm);

/* Feed buf[0..n); returns the bits of the markers first seen in it. */
unsigned runner_scan_feed(struct runner_scan *s, const char *buf, size_t n);

#endif
