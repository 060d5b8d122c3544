/* flint's phase events (--phase-fd N): one line per phase of a boot or a
 * restore, written to a descriptor the launcher (`flint bench`) passed,
 * in bench/phase.h's format, so that it times flint from flint's own
 * moments instead of guessing them from the console.
 *
 * Process-wide, one VM per process: flint and flint run have one. Off
 * (no --phase-fd) every call returns at once, and the vCPU loop's hook is
 * one predictable branch on a flag that is never set. Each phase is
 * written once, its first time, by whichever thread reaches it, with one
 * write() (allowed by every thread's seccomp filter; the descriptor is
 * made non-blocking, so a launcher that does not read never stalls a
 * vCPU: a line that does not fit is lost, and the launcher's parser then
 * misses a phase). Which kind of run this is, a boot or a restore, is
 * decided by the first phase of either kind marked; phases of the other
 * kind are dropped (a restored VM's vCPUs leaving KVM_RUN is no kernel
 * entry, a snapshot's pause and resume in a booted VM no restore). */
#ifndef FLINT_PHASES_H
#define FLINT_PHASES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/record.h"
#include "core/util.h"

struct vcpu;

/* Set while the kernel-entry event is still to come (vcpu.c tests it
 * after each KVM_RUN; phases_kernel_entry clears it). */
extern atomic_bool phases_entry_pending;

/* Start writing phase lines on fd (the caller's, inherited; made
 * close-on-exec and non-blocking), and write the process phase at
 * launch_ns (CLOCK_MONOTONIC ns: main's first moment, or under a jailer the
 * jailer's start, --start-time-us). fd <= 0: off.
 * Returns 0 or -errno (fd is not open). */
int phases_open(int fd, uint64_t launch_ns) WARN_UNUSED;

/* Stop (the descriptor stays the caller's, open); for tests. */
void phases_close(void);

/* Whether phase lines are written. */
bool phases_on(void);

/* Phase p happened now (its first time only; a phase of the other kind
 * than the run's is dropped). */
void phases_mark(enum bench_phase p);

/* The VM's vCPUs, before they start (the main thread, before its seccomp
 * filter): where each one's exit counters are in its KVM statistics, so
 * that reading them later is one pread() per vCPU; and the kernel-entry
 * flag set for a boot. n may be 0 (no statistics: no exits line). */
void phases_arm(struct vcpu *vcpus, unsigned n);

/* A vCPU thread is about to enter its first KVM_RUN: the last of the
 * vCPUs phases_arm counted marks vcpus-started. */
void phases_vcpu_entering(void);

/* The first exit of any vCPU to flint: the kernel runs. */
void phases_kernel_entry(void);

/* The command's first output (or its end, if it printed nothing):
 * first-output in a boot, first-response in a restore, then the exits
 * line. */
void phases_output(void);

/* The VM has stopped, its vCPUs joined: the exits line if none was
 * written, then forget the vCPUs (their statistics are about to close). */
void phases_end(void);

#endif
