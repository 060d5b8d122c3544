/* record: flint bench's record of one run. See record.h. */
#include <stdio.h>
#include <string.h>

#include "bench/record.h"

/* Times count from the launch, so a phase's name says so: the reports'
 * rows and the JSON's keys read "launch-to-init". */
static const char *const phase_names[BP_COUNT] = {
    [BP_PROCESS] = "launch-to-process",
    [BP_VM_CREATED] = "launch-to-vm-created",
    [BP_VCPUS_STARTED] = "launch-to-vcpus-started",
    [BP_KERNEL_ENTRY] = "launch-to-kernel-entry",
    [BP_INIT] = "launch-to-init",
    [BP_AGENT_READY] = "launch-to-agent-ready",
    [BP_FIRST_OUTPUT] = "launch-to-first-output",
    [BP_STATE_READ] = "launch-to-state-read",
    [BP_MEMORY_MAPPED] = "launch-to-memory-mapped",
    [BP_RESUMED] = "launch-to-resumed",
    [BP_FIRST_RESPONSE] = "launch-to-first-response",
    [BP_RESPONSE] = "launch-to-response",
    [BP_EXIT] = "launch-to-exit",
};

/* KVM's own names for its statistics. */
static const char *const exit_names[BE_COUNT] = {
    [BE_TOTAL] = "exits",	  [BE_IO] = "io_exits",
    [BE_MMIO] = "mmio_exits",	  [BE_HALT] = "halt_exits",
    [BE_IRQ] = "irq_exits",	  [BE_IRQ_WINDOW] = "irq_window_exits",
    [BE_SIGNAL] = "signal_exits", [BE_INSN_EMULATION] = "insn_emulation",
    [BE_PF_TAKEN] = "pf_taken",
};

const char *bench_phase_name(enum bench_phase p)
{
	return (unsigned)p < BP_COUNT ? phase_names[p] : NULL;
}

const char *bench_exit_name(enum bench_exit e)
{
	return (unsigned)e < BE_COUNT ? exit_names[e] : NULL;
}

int bench_phase_from_name(const char *name)
{
	for (int p = 0; name && p < BP_COUNT; p++)
		if (!strcmp(name, phase_names[p]))
			return p;
	return -1;
}

int bench_exit_from_name(const char *name)
{
	for (int e = 0; name && e < BE_COUNT; e++)
		if (!strcmp(name, exit_names[e]))
			return e;
	return -1;
}

void bench_record_init(struct bench_record *r, const char *vmm)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->vmm, sizeof(r->vmm), "%s", vmm ? vmm : "");
	r->ok = false;
	for (size_t i = 0; i < BP_COUNT; i++)
		r->phase_us[i] = BENCH_NONE;
	for (size_t i = 0; i < BE_COUNT; i++)
		r->exits[i] = BENCH_NONE;
	r->rss_overhead_kib = BENCH_NONE;
	r->guest_touched_kib = BENCH_NONE;
	r->minor_faults = BENCH_NONE;
	r->major_faults = BENCH_NONE;
	r->cpu_us = BENCH_NONE;
}

/* Whether every run of vmm in runs[0..n) failed for a missing binary. */
static bool all_missing(const struct bench_record *runs, size_t n, const char *vmm)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(runs[i].vmm, vmm) &&
		    (runs[i].ok ||
		     strncmp(runs[i].why, BENCH_MISSING_PREFIX, strlen(BENCH_MISSING_PREFIX))))
			return false;
	return true;
}

/* Whether vmm has a run among runs[0..n). */
static bool has_run(const struct bench_record *runs, size_t n, const char *vmm)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(runs[i].vmm, vmm))
			return true;
	return false;
}

/* Whether vmm is among missing[0..n). */
static bool listed(const struct bench_missing *missing, size_t n, const char *vmm)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(missing[i].vmm, vmm))
			return true;
	return false;
}

size_t bench_split_missing(struct bench_record *runs, size_t n, struct bench_missing *missing,
			   size_t max, size_t *nmissing)
{
	size_t kept = 0;

	*nmissing = 0;
	for (size_t i = 0; i < n; i++) {
		struct bench_record *r = &runs[i];
		bool gone = listed(missing, *nmissing, r->vmm);

		/* decided at the VMM's first run (none kept yet), when all of its
		 * runs are at i or after (those kept move below i) */
		if (!gone && *nmissing < max && !has_run(runs, kept, r->vmm) &&
		    all_missing(runs + i, n - i, r->vmm)) {
			struct bench_missing *m = &missing[(*nmissing)++];

			snprintf(m->vmm, sizeof(m->vmm), "%s", r->vmm);
			snprintf(m->why, sizeof(m->why), "%s",
				 r->why + strlen(BENCH_MISSING_PREFIX));
			gone = true;
		}
		if (!gone)
			runs[kept++] = *r;
	}
	return kept;
}
