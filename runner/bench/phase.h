/* flint's phase events, as `flint bench` reads them: the wire format that
 * `flint --phase-fd N` (core/phases.c) writes and its parser, which fills a
 * bench_record and trusts nothing.
 *
 * The format: lines of at most PHASE_LINE_MAX bytes, each ending in '\n',
 * each written with one write() (so lines from several threads never mix):
 *
 *   phase NAME US             NAME one of phase_wire_name()'s, US the
 *                             moment in CLOCK_MONOTONIC microseconds
 *   exits NAME=N NAME=N ...   KVM's exit counters summed over the vCPUs
 *                             (bench_exit_name()'s names, KVM's own), at
 *                             the first output or response, or at the
 *                             VM's end when there was none; a counter KVM
 *                             lacks is left out
 *
 * Rules (anything else is an error naming the line): a line's words are
 * separated by one space; numbers are decimal without sign or leading
 * zero; a phase or the exits line comes once; "exit" is the launcher's
 * own phase and "response" flint bench serve's, never on the wire; a
 * run's phases are a boot's or a restore's, never both (process is both's); no phase is before the
 * launch (base_us), and none is before the phase it follows
 * (phase_after(): checked at phase_finish, since lines from different
 * threads may arrive out of time order); a last line without its '\n' is
 * an error (the VMM died mid-line, or wrote garbage). */
#ifndef FLINT_BENCH_PHASE_H
#define FLINT_BENCH_PHASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/record.h"
#include "core/util.h"

#define PHASE_LINE_MAX 256

/* The phase's name on the wire ("vm-created", ...), NULL for BP_EXIT and
 * values out of range. */
const char *phase_wire_name(enum bench_phase p);

/* The phase p must not come before: the nearest earlier one of its kind
 * (kernel-entry follows vm-created, not vcpus-started: with several vCPUs
 * the boot vCPU may leave KVM_RUN before the last one has entered it).
 * BP_COUNT for none. */
enum bench_phase phase_after(enum bench_phase p);

/* True for a restore's own phases (state-read .. first-response). */
bool phase_is_restore(enum bench_phase p);

/* An incremental parser: feed it what the pipe gives, in any pieces. */
struct phase_parser {
	struct bench_record *r;
	uint64_t base_us; /* the launch, CLOCK_MONOTONIC us: times become since it */
	unsigned line;	  /* lines seen, for messages */
	bool exits_seen;
	bool failed; /* an error was returned: later feeds refuse */
	/* Phases (1u << enum bench_phase) taken from elsewhere: their lines
	 * are checked, then left out of r. */
	uint32_t skip;
	char part[PHASE_LINE_MAX];
	size_t plen;
};

/* Start parsing into r (whose phases and exits should be BENCH_NONE, as
 * bench_record_init leaves them). */
void phase_parser_init(struct phase_parser *p, struct bench_record *r, uint64_t base_us);

/* Parse the complete lines in buf[0..n) (keeping a partial last one for
 * the next call), filling r as they come: a caller may look at r's phases
 * after each call. Returns 0, or -EINVAL with the reason in err; after an
 * error the record's figures may be partly filled and every later call
 * fails. */
int phase_feed(struct phase_parser *p, const char *buf, size_t n, char *err,
	       size_t errlen) WARN_UNUSED;

/* The input's end: refuse a partial last line, then check the phases'
 * order. Returns 0 or -EINVAL with the reason in err. */
int phase_finish(struct phase_parser *p, char *err, size_t errlen) WARN_UNUSED;

/* phase_feed and phase_finish of a whole buffer. */
int phase_parse(const char *buf, size_t n, uint64_t base_us, struct bench_record *r, char *err,
		size_t errlen) WARN_UNUSED;

#endif
