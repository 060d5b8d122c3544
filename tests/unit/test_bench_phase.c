/* flint bench's phase lines: the parser (bench/phase.c), which trusts
 * nothing the VMM writes, and flint's writer (core/phases.c) read back
 * through it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/phase.h"
#include "config/cli.h"
#include "core/phases.h"

#define BASE 1000000ULL

static int parse(const char *text, struct bench_record *r, char *err)
{
	bench_record_init(r, "flint");
	return phase_parse(text, strlen(text), BASE, r, err, 256);
}

static void refused(const char *text, const char *why)
{
	struct bench_record r;
	char err[256] = "";

	cr_assert_eq(parse(text, &r, err), -EINVAL, "accepted: %s", text);
	cr_assert(strstr(err, why), "for %s: '%s' lacks '%s'", text, err, why);
}

Test(bench_phase, a_boot)
{
	struct bench_record r;
	char err[256] = "";
	const char *text = "phase process 1000100\n"
			   "phase vm-created 1000500\n"
			   "phase vcpus-started 1002000\n"
			   "phase kernel-entry 1001900\n" /* the boot vCPU before the last */
			   "phase init 1200000\n"
			   "phase agent-ready 1300000\n"
			   "exits exits=1389 io_exits=140 mmio_exits=20\n"
			   "phase first-output 1300500\n";

	cr_assert_eq(parse(text, &r, err), 0, "%s", err);
	cr_assert_eq(r.phase_us[BP_PROCESS], 100);
	cr_assert_eq(r.phase_us[BP_VM_CREATED], 500);
	cr_assert_eq(r.phase_us[BP_VCPUS_STARTED], 2000);
	cr_assert_eq(r.phase_us[BP_KERNEL_ENTRY], 1900);
	cr_assert_eq(r.phase_us[BP_INIT], 200000);
	cr_assert_eq(r.phase_us[BP_AGENT_READY], 300000);
	cr_assert_eq(r.phase_us[BP_FIRST_OUTPUT], 300500);
	cr_assert_eq(r.phase_us[BP_STATE_READ], BENCH_NONE);
	cr_assert_eq(r.phase_us[BP_EXIT], BENCH_NONE);
	cr_assert_eq(r.exits[BE_TOTAL], 1389);
	cr_assert_eq(r.exits[BE_IO], 140);
	cr_assert_eq(r.exits[BE_MMIO], 20);
	cr_assert_eq(r.exits[BE_HALT], BENCH_NONE, "a counter not given is none, not 0");
}

Test(bench_phase, a_restore)
{
	struct bench_record r;
	char err[256] = "";
	const char *text = "phase process 1000000\n"
			   "phase state-read 1000300\n"
			   "phase memory-mapped 1000400\n"
			   "phase resumed 1002000\n"
			   "phase first-response 1050000\n"
			   "exits exits=0\n";

	cr_assert_eq(parse(text, &r, err), 0, "%s", err);
	cr_assert_eq(r.phase_us[BP_PROCESS], 0);
	cr_assert_eq(r.phase_us[BP_MEMORY_MAPPED], 400);
	cr_assert_eq(r.phase_us[BP_FIRST_RESPONSE], 50000);
	cr_assert_eq(r.exits[BE_TOTAL], 0);
}

/* Lines come in any pieces: a byte at a time gives the same record. */
Test(bench_phase, fed_a_byte_at_a_time)
{
	const char *text = "phase process 1000100\nphase init 1000200\nexits exits=5\n";
	struct bench_record r;
	struct phase_parser p;
	char err[256] = "";

	bench_record_init(&r, "flint");
	phase_parser_init(&p, &r, BASE);
	for (size_t i = 0; text[i]; i++) {
		cr_assert_eq(phase_feed(&p, text + i, 1, err, sizeof(err)), 0, "%s", err);
		if (i < 21)
			cr_assert_eq(r.phase_us[BP_PROCESS], BENCH_NONE,
				     "a line before its newline");
	}
	cr_assert_eq(phase_finish(&p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.phase_us[BP_PROCESS], 100);
	cr_assert_eq(r.phase_us[BP_INIT], 200);
	cr_assert_eq(r.exits[BE_TOTAL], 5);
}

Test(bench_phase, an_empty_input_is_no_phase)
{
	struct bench_record r;
	char err[256] = "";

	cr_assert_eq(parse("", &r, err), 0, "%s", err);
	for (int k = 0; k < BP_COUNT; k++)
		cr_assert_eq(r.phase_us[k], BENCH_NONE);
}

Test(bench_phase, malformed_lines)
{
	refused("phase\n", "neither a phase nor an exits line");
	refused("hello\n", "neither a phase nor an exits line");
	refused("phase init\n", "expected 'phase NAME US'");
	refused("phase init \n", "not a time");
	refused("phase init 12x\n", "not a time");
	refused("phase init -5\n", "not a time");
	refused("phase init 01000001\n", "not a time");
	refused("phase init 1000001 2\n", "not a time");
	refused("phase  init 1000001\n", "unknown phase ''");
	refused("phase init 99999999999999999999999\n", "not a time");
	refused("phase init 1000001", "ends without a newline");
	refused("exits exits\n", "not NAME=N");
	refused("exits exits=1  io_exits=2\n", "not NAME=N");
	refused("exits exits=1 \n", "a space at the end");
	refused("exits exits=\n", "not a count");
	refused("exits exits=18446744073709551615\n", "not a count");
}

Test(bench_phase, a_nul_byte)
{
	struct bench_record r;
	char err[256] = "";
	static const char text[] = "phase init 1\0 000001\n";

	bench_record_init(&r, "flint");
	cr_assert_eq(phase_parse(text, sizeof(text) - 1, BASE, &r, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "NUL"), "%s", err);
}

Test(bench_phase, a_line_too_long)
{
	char text[PHASE_LINE_MAX + 16];

	memset(text, 'a', sizeof(text) - 2);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	refused(text, "longer than");
}

Test(bench_phase, unknown_names)
{
	refused("phase boot 1000001\n", "unknown phase 'boot'");
	refused("phase exit 1000001\n", "unknown phase 'exit'"); /* the launcher's own */
	refused("phase launch-to-init 1000001\n", "unknown phase");
	refused("exits exits=1 vm_exits=2\n", "unknown counter 'vm_exits'");
}

Test(bench_phase, duplicates)
{
	refused("phase init 1000001\nphase init 1000002\n", "phase init given twice");
	refused("exits exits=1\nexits exits=1\n", "a second exits line");
	refused("exits exits=1 exits=2\n", "exits given twice");
}

Test(bench_phase, times_going_backwards)
{
	refused("phase process 999999\n", "before the launch");
	refused("phase process 1000500\nphase vm-created 1000400\n",
		"phase vm-created (400 us) before process (500 us)");
	refused("phase init 1000500\nphase agent-ready 1000400\n", "agent-ready");
	/* Against the nearest phase the run reached: init is missing. */
	refused("phase kernel-entry 1000500\nphase agent-ready 1000400\n",
		"agent-ready (400 us) before kernel-entry (500 us)");
	refused("phase state-read 1000500\nphase resumed 1000400\n", "resumed");
}

Test(bench_phase, out_of_order_lines_in_time_order_are_fine)
{
	struct bench_record r;
	char err[256] = "";

	/* Written by two threads: the later line has the earlier time. */
	cr_assert_eq(parse("phase init 1000500\nphase kernel-entry 1000400\n", &r, err), 0, "%s",
		     err);
}

Test(bench_phase, a_boot_and_a_restore_together)
{
	refused("phase vm-created 1000100\nphase state-read 1000200\n", "together");
	refused("phase resumed 1000100\nphase init 1000200\n", "together");
}

Test(bench_phase, a_failed_parser_stays_failed)
{
	struct bench_record r;
	struct phase_parser p;
	char err[256] = "";

	bench_record_init(&r, "flint");
	phase_parser_init(&p, &r, BASE);
	cr_assert_eq(phase_feed(&p, "junk\n", 5, err, sizeof(err)), -EINVAL);
	cr_assert_eq(phase_feed(&p, "phase init 1000001\n", 19, err, sizeof(err)), -EINVAL);
	cr_assert_eq(phase_finish(&p, err, sizeof(err)), -EINVAL);
}

Test(bench_phase, wire_names_and_order)
{
	cr_assert_str_eq(phase_wire_name(BP_KERNEL_ENTRY), "kernel-entry");
	cr_assert_null(phase_wire_name(BP_EXIT));
	cr_assert_null(phase_wire_name(BP_RESPONSE), "flint bench serve's, not a VMM's");
	cr_assert_eq(phase_after(BP_RESPONSE), BP_FIRST_RESPONSE);
	cr_assert_null(phase_wire_name(BP_COUNT));
	cr_assert_eq(phase_after(BP_KERNEL_ENTRY), BP_VM_CREATED);
	cr_assert_eq(phase_after(BP_FIRST_RESPONSE), BP_RESUMED);
	cr_assert(phase_is_restore(BP_MEMORY_MAPPED));
	cr_assert(!phase_is_restore(BP_INIT));
}

/* flint's side: what phases.c writes, read back through the parser. */
static size_t drain(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

Test(bench_phase, flint_writes_a_boot)
{
	int p[2];
	char buf[4096], err[256] = "";
	struct bench_record r;
	uint64_t launch = now_ns();

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(phases_open(p[1], launch), 0);
	cr_assert(phases_on());
	cr_assert(fcntl(p[1], F_GETFD) & FD_CLOEXEC);
	cr_assert(fcntl(p[1], F_GETFL) & O_NONBLOCK, "a full pipe must not stall flint");
	phases_mark(BP_VM_CREATED);
	phases_arm(NULL, 0);
	cr_assert(atomic_load(&phases_entry_pending), "a boot waits for its kernel entry");
	phases_kernel_entry();
	cr_assert(!atomic_load(&phases_entry_pending), "the flag is cleared once it fired");
	phases_kernel_entry();
	phases_mark(BP_INIT);
	phases_mark(BP_INIT);	 /* once */
	phases_mark(BP_RESUMED); /* a restore's: dropped in a boot */
	phases_mark(BP_AGENT_READY);
	phases_output();
	phases_mark(BP_EXIT); /* the launcher's: never written */
	phases_close();
	size_t n = drain(p[0], buf, sizeof(buf));
	bench_record_init(&r, "flint");
	cr_assert_eq(phase_parse(buf, n, launch / 1000, &r, err, sizeof(err)), 0, "%s: %s", err,
		     buf);
	cr_assert_eq(r.phase_us[BP_PROCESS], 0);
	cr_assert_neq(r.phase_us[BP_VM_CREATED], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_KERNEL_ENTRY], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_INIT], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_AGENT_READY], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_FIRST_OUTPUT], BENCH_NONE);
	cr_assert_eq(r.phase_us[BP_FIRST_RESPONSE], BENCH_NONE);
	cr_assert_eq(r.phase_us[BP_RESUMED], BENCH_NONE);
	cr_assert_eq(r.exits[BE_TOTAL], BENCH_NONE, "no vCPUs, no exits line");
	close(p[0]);
	close(p[1]);
}

Test(bench_phase, flint_writes_a_restore)
{
	int p[2];
	char buf[4096], err[256] = "";
	struct bench_record r;
	uint64_t launch = now_ns();

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(phases_open(p[1], launch), 0);
	phases_mark(BP_STATE_READ);
	phases_mark(BP_VM_CREATED); /* a boot's: dropped in a restore */
	phases_mark(BP_MEMORY_MAPPED);
	phases_arm(NULL, 0);
	cr_assert(!atomic_load(&phases_entry_pending), "no kernel entry in a restore");
	phases_mark(BP_RESUMED);
	phases_output();
	phases_close();
	size_t n = drain(p[0], buf, sizeof(buf));
	bench_record_init(&r, "flint");
	cr_assert_eq(phase_parse(buf, n, launch / 1000, &r, err, sizeof(err)), 0, "%s: %s", err,
		     buf);
	cr_assert_eq(r.phase_us[BP_VM_CREATED], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_STATE_READ], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_MEMORY_MAPPED], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_RESUMED], BENCH_NONE);
	cr_assert_neq(r.phase_us[BP_FIRST_RESPONSE], BENCH_NONE);
	cr_assert_eq(r.phase_us[BP_FIRST_OUTPUT], BENCH_NONE);
	close(p[0]);
	close(p[1]);
}

Test(bench_phase, off_writes_nothing)
{
	phases_close();
	cr_assert(!phases_on());
	cr_assert_eq(phases_open(0, now_ns()), 0);
	cr_assert(!phases_on());
	phases_arm(NULL, 0);
	cr_assert(!atomic_load(&phases_entry_pending), "off: the vCPU loop's flag stays clear");
	phases_mark(BP_INIT);
	phases_output();
	cr_assert_eq(phases_open(1000000, now_ns()), -EBADF);
}

/* The hidden option that turns it on. */
#define ARGV(...)	     ((char *[]){"flint", __VA_ARGS__, NULL})
#define ARGC(...)	     ((int)(sizeof((char *[]){"flint", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) cli_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, err, 256)

Test(bench_phase, the_option)
{
	struct config c;
	char err[256] = "";

	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--phase-fd", "3"), CLI_RUN, "%s", err);
	cr_assert_eq(c.phase_fd, 3);
	cli_config_free(&c);
	cr_assert_eq(PARSE(&c, err, "run", "--phase-fd", "7", "--", "true"), CLI_RUN, "%s", err);
	cr_assert_eq(c.phase_fd, 7);
	cli_config_free(&c);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k"), CLI_RUN, "%s", err);
	cr_assert_eq(c.phase_fd, 0, "off by default");
	cli_config_free(&c);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--phase-fd", "2"), CLI_ERROR);
	cr_assert(strstr(err, "--phase-fd 2: expected a file descriptor"), "%s", err);
	cr_assert_eq(PARSE(&c, err, "--kernel", "k", "--phase-fd", "x"), CLI_ERROR);
	cr_assert_eq(PARSE(&c, err, "run", "--status-fd", "4", "--phase-fd", "4", "--", "true"),
		     CLI_ERROR);
	cr_assert(strstr(err, "--status-fd 4: that descriptor is --phase-fd's too"), "%s", err);
}
