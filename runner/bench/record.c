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
}
