/* flint bench's command (cmd/bench.c) without VMMs: its options, good and
 * bad (each refusal names the option), the loop's order and warm-up
 * accounting with a fake run function, --concurrency's rounds, and the
 * exit status. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cmd/bench.h"

/* bench_parse of the words (NULL-terminated) after "bench". */
#define PARSE(o, err, ...)                                                                         \
	({                                                                                         \
		char *argv_[] = {"bench", __VA_ARGS__, NULL};                                      \
		bench_parse((int)(sizeof(argv_) / sizeof(argv_[0])) - 1, argv_, (o), (err),        \
			    sizeof(err));                                                          \
	})

Test(bench_cli, defaults)
{
	struct bench_opts o;
	char err[256] = "";

	cr_assert_eq(PARSE(&o, err, "boot"), 0, "%s", err);
	cr_assert_eq(o.mode, BENCH_BOOT);
	cr_assert_eq(o.runs, 10);
	cr_assert_eq(o.warmup, 1);
	cr_assert_eq(o.concurrency, 1);
	cr_assert_eq(o.vcpus, 1);
	cr_assert_eq(o.mem_mib, 128);
	cr_assert_eq(o.timeout_s, 60);
	cr_assert_eq(o.npeers, 0);
	cr_assert_eq(o.ncommand, 0);
	cr_assert_null(o.kernel);
	cr_assert_null(o.json);
	cr_assert_null(o.baseline);
}

Test(bench_cli, every_option)
{
	struct bench_opts o;
	char err[256] = "";

	cr_assert_eq(PARSE(&o, err, "boot", "--runs", "3", "--warmup", "0", "--concurrency", "4",
			   "--kernel", "k", "--rootfs", "r", "--mem", "256M", "--vcpus", "2",
			   "--cmdline", "console=ttyS0", "--peer", "qemu", "--peer",
			   "firecracker=/opt/fc", "--peer", "lkvm=/x/lkvm", "--timeout", "9",
			   "--json", "o.json", "--csv", "o.csv", "--svg", "o.svg", "--baseline",
			   "b.json", "--max-regress", "12.5", "--flint", "/f", "--", "echo", "hi"),
		     0, "%s", err);
	cr_assert_eq(o.runs, 3);
	cr_assert_eq(o.warmup, 0);
	cr_assert_eq(o.concurrency, 4);
	cr_assert_str_eq(o.kernel, "k");
	cr_assert_str_eq(o.rootfs, "r");
	cr_assert_eq(o.mem_mib, 256);
	cr_assert_eq(o.vcpus, 2);
	cr_assert_str_eq(o.cmdline, "console=ttyS0");
	cr_assert_eq(o.npeers, 3);
	cr_assert_eq(o.peers[0].kind, PEER_QEMU);
	cr_assert_null(o.peers[0].path);
	cr_assert_eq(o.peers[1].kind, PEER_FIRECRACKER);
	cr_assert_str_eq(o.peers[1].path, "/opt/fc");
	cr_assert_eq(o.peers[2].kind, PEER_LKVM);
	cr_assert_str_eq(o.peers[2].path, "/x/lkvm");
	cr_assert_eq(o.timeout_s, 9);
	cr_assert_str_eq(o.json, "o.json");
	cr_assert_str_eq(o.csv, "o.csv");
	cr_assert_str_eq(o.svg, "o.svg");
	cr_assert_str_eq(o.baseline, "b.json");
	cr_assert_float_eq(o.max_regress, 12.5, 1e-9);
	cr_assert_str_eq(o.flint, "/f");
	cr_assert_eq(o.ncommand, 2);
	cr_assert_str_eq(o.command[0], "echo");
	cr_assert_str_eq(o.command[1], "hi");
}

Test(bench_cli, restore_backends)
{
	struct bench_opts o;
	char err[256] = "";

	cr_assert_eq(PARSE(&o, err, "restore"), 0, "%s", err);
	cr_assert_eq(o.mode, BENCH_RESTORE);
	cr_assert_eq(o.backends, BENCH_BACKEND_FILE | BENCH_BACKEND_UFFD);
	cr_assert_eq(PARSE(&o, err, "restore", "--backend", "uffd", "--uffd-handler", "/u"), 0);
	cr_assert_eq(o.backends, BENCH_BACKEND_UFFD);
	cr_assert_str_eq(o.uffd_handler, "/u");
	cr_assert_eq(PARSE(&o, err, "restore", "--backend", "file"), 0);
	cr_assert_eq(o.backends, BENCH_BACKEND_FILE);
	cr_assert_eq(PARSE(&o, err, "run", "--", "make", "-j2"), 0);
	cr_assert_eq(o.mode, BENCH_RUN);
	cr_assert_eq(o.ncommand, 2);
	cr_assert_eq(PARSE(&o, err, "serve"), 0);
	cr_assert_eq(o.mode, BENCH_SERVE);
}

Test(bench_cli, help)
{
	struct bench_opts o;
	char err[256] = "";

	cr_redirect_stdout();
	cr_assert_eq(PARSE(&o, err, "--help"), 1);
	cr_assert_eq(PARSE(&o, err, "boot", "--help"), 1);
}

/* Each refused, with a message holding what. */
static void refused(int r, const char *err, const char *what)
{
	cr_assert_eq(r, -EINVAL, "accepted; expected a refusal naming '%s'", what);
	cr_assert(strstr(err, what), "message '%s' does not hold '%s'", err, what);
}

/* boot: flint boots as its peers do unless --agent (or --image, flint
 * run's) sends it through flint run. */
Test(bench_cli, agent)
{
	struct bench_opts o;
	char err[256] = "";

	cr_assert_eq(PARSE(&o, err, "boot", "--peer", "qemu"), 0, "%s", err);
	cr_assert_not(o.agent);
	cr_assert_eq(PARSE(&o, err, "boot", "--agent"), 0, "%s", err);
	cr_assert(o.agent);
	cr_assert_eq(PARSE(&o, err, "boot", "--image", "d"), 0, "%s", err);
	cr_assert(o.agent, "--image is flint run's");
	cr_assert_eq(PARSE(&o, err, "run", "--image", "d", "--", "true"), 0, "%s", err);
	cr_assert_not(o.agent, "run goes through flint run anyway");
}

Test(bench_cli, bad_options)
{
	struct bench_opts o;
	char err[256];

	{
		char *argv[] = {"bench", NULL};
		refused(bench_parse(1, argv, &o, err, sizeof(err)), err, "which bench?");
	}
	refused(PARSE(&o, err, "start"), err, "unknown mode start");
	refused(PARSE(&o, err, "boot", "--runs", "0"), err, "--runs 0: expected a number");
	refused(PARSE(&o, err, "boot", "--runs", "3x"), err, "--runs 3x");
	refused(PARSE(&o, err, "boot", "--runs", "-1"), err, "--runs -1");
	refused(PARSE(&o, err, "boot", "--warmup", "many"), err, "--warmup many");
	refused(PARSE(&o, err, "boot", "--concurrency", "257"), err, "--concurrency 257");
	refused(PARSE(&o, err, "boot", "--vcpus", "33"), err, "--vcpus 33");
	refused(PARSE(&o, err, "boot", "--timeout", "0"), err, "--timeout 0");
	refused(PARSE(&o, err, "boot", "--mem", "lots"), err, "--mem lots");
	refused(PARSE(&o, err, "boot", "--mem", "16388K"), err, "a whole number of MiB");
	refused(PARSE(&o, err, "boot", "--cmdline", ""), err, "--cmdline: empty");
	refused(PARSE(&o, err, "boot", "--peer", "xen"), err, "--peer xen: expected qemu");
	refused(PARSE(&o, err, "boot", "--peer", "qemu="), err, "--peer qemu=");
	refused(PARSE(&o, err, "boot", "--peer", "qemux"), err, "--peer qemux");
	refused(PARSE(&o, err, "boot", "--peer", "qemu", "--peer", "qemu=/q"), err,
		"qemu given twice");
	refused(PARSE(&o, err, "boot", "--backend", "file"), err, "--backend is restore's");
	refused(PARSE(&o, err, "restore", "--backend", "disk"), err, "--backend disk");
	refused(PARSE(&o, err, "restore", "--peer", "qemu"), err, "only boot has peers");
	refused(PARSE(&o, err, "run", "--peer", "lkvm"), err, "only boot has peers");
	refused(PARSE(&o, err, "restore", "--image", "d"), err, "--image");
	refused(PARSE(&o, err, "boot", "--image", "d", "--peer", "qemu"), err, "--image");
	refused(PARSE(&o, err, "run", "--agent"), err, "--agent is boot's");
	refused(PARSE(&o, err, "serve", "--agent"), err, "--agent is boot's");
	refused(PARSE(&o, err, "boot", "--agent", "--peer", "qemu"), err,
		"the peers boot without an agent");
	refused(PARSE(&o, err, "boot", "--baseline", "b.json"), err, "--max-regress PCT go");
	refused(PARSE(&o, err, "boot", "--max-regress", "5"), err, "--baseline FILE");
	refused(PARSE(&o, err, "boot", "--baseline", "b", "--max-regress", "-3"), err,
		"--max-regress -3");
	refused(PARSE(&o, err, "boot", "--baseline", "b", "--max-regress", "ten"), err,
		"--max-regress ten");
	/* strtod's other forms: not a percentage as the help writes one */
	refused(PARSE(&o, err, "boot", "--baseline", "b", "--max-regress", "0x10"), err,
		"--max-regress 0x10");
	refused(PARSE(&o, err, "boot", "--baseline", "b", "--max-regress", "-0"), err,
		"--max-regress -0");
	refused(PARSE(&o, err, "boot", "--baseline", "b", "--max-regress", " 10"), err,
		"--max-regress  10");
	refused(PARSE(&o, err, "boot", "--frob"), err, "unknown option --frob");
	refused(PARSE(&o, err, "boot", "--runs"), err, "--runs needs a value");
	refused(PARSE(&o, err, "boot", "echo", "hi"), err, "unexpected argument echo");
}

/* ---- the loop, with a fake run function ------------------------------ */

struct fake {
	pthread_mutex_t lock;
	unsigned calls;
	unsigned log_vmm[64], log_slot[64];
	int in_flight[4];	    /* runs of each VMM running now */
	bool overlap;		    /* two VMMs' runs ran at once */
	unsigned fail_at;	    /* 1-based call that returns -EIO; 0: none */
	pthread_barrier_t *barrier; /* concurrency: the runs of a round meet */
};

static int fake_run(void *ctx, unsigned vmm, unsigned slot, struct bench_record *r)
{
	struct fake *f = ctx;
	unsigned call;
	char name[16];

	pthread_mutex_lock(&f->lock);
	call = f->calls++;
	f->log_vmm[call] = vmm;
	f->log_slot[call] = slot;
	f->in_flight[vmm]++;
	for (unsigned v = 0; v < 4; v++)
		if (v != vmm && f->in_flight[v])
			f->overlap = true;
	pthread_mutex_unlock(&f->lock);
	if (f->barrier)
		pthread_barrier_wait(f->barrier);
	snprintf(name, sizeof(name), "vmm%u", vmm);
	bench_record_init(r, name);
	r->ok = true;
	r->phase_us[BP_PROCESS] = call;		    /* which call made it */
	r->phase_us[BP_FIRST_OUTPUT] = 1000 + call; /* its start-up latency */
	pthread_mutex_lock(&f->lock);
	f->in_flight[vmm]--;
	pthread_mutex_unlock(&f->lock);
	return f->fail_at == call + 1 ? -EIO : 0;
}

Test(bench_cli, loop_interleaves_and_drops_the_warmup)
{
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct bench_loop l = {
	    .nvmm = 3, .runs = 2, .warmup = 2, .concurrency = 1, .run = fake_run, .ctx = &f};
	struct bench_record out[6];
	struct bench_rate rates[3];
	size_t n = 99;

	cr_assert_eq(bench_loop_run(&l, out, &n, rates), 0);
	/* (2 + 2) iterations of flint, peer 1, peer 2; every other one in
	 * the reverse order, so that no VMM always follows the same one */
	cr_assert_eq(f.calls, 12);
	for (unsigned i = 0; i < 12; i++) {
		unsigned k = i % 3, want = (i / 3) % 2 ? 2 - k : k;
		cr_assert_eq(f.log_vmm[i], want, "call %u ran VMM %u", i, f.log_vmm[i]);
	}
	cr_assert_eq(n, 6);
	for (unsigned i = 0; i < 6; i++) {
		char want[16];

		snprintf(want, sizeof(want), "vmm%u", i < 3 ? i : 5 - i);
		cr_assert_str_eq(out[i].vmm, want);
		/* the records kept are the calls after the 6 warm-up ones */
		cr_assert_eq(out[i].phase_us[BP_PROCESS], 6 + i);
	}
	for (unsigned v = 0; v < 3; v++) {
		cr_assert_eq(rates[v].ok, 2);
		/* VMM v was call 6 + v, then call 11 - v */
		cr_assert_geq(rates[v].span_us, 2 * 1000 + 6 + v + 11 - v);
	}
}

Test(bench_cli, loop_without_warmup_counts_every_run)
{
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct bench_loop l = {
	    .nvmm = 1, .runs = 3, .warmup = 0, .concurrency = 1, .run = fake_run, .ctx = &f};
	struct bench_record out[3];
	size_t n;

	cr_assert_eq(bench_loop_run(&l, out, &n, NULL), 0);
	cr_assert_eq(f.calls, 3);
	cr_assert_eq(n, 3);
	cr_assert_eq(out[0].phase_us[BP_PROCESS], 0);
}

Test(bench_cli, loop_concurrency_rounds, .timeout = 20)
{
	pthread_barrier_t b;
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER, .barrier = &b};
	struct bench_loop l = {
	    .nvmm = 2, .runs = 2, .warmup = 1, .concurrency = 3, .run = fake_run, .ctx = &f};
	struct bench_record out[12];
	struct bench_rate rates[2];
	size_t n;

	/* The three runs of a round wait for each other: they run at once,
	 * or the test times out. */
	pthread_barrier_init(&b, NULL, 3);
	cr_assert_eq(bench_loop_run(&l, out, &n, rates), 0);
	pthread_barrier_destroy(&b);
	cr_assert_eq(f.calls, 18);
	cr_assert_not(f.overlap, "runs of two VMMs ran at once");
	/* rounds in turn: 3 of VMM 0, 3 of VMM 1, then 3 of VMM 1, 3 of VMM
	 * 0 (every other iteration reversed), ... each slot once */
	for (unsigned round = 0; round < 6; round++) {
		unsigned slots = 0, want = (round / 2) % 2 ? 1 - round % 2 : round % 2;

		for (unsigned k = 0; k < 3; k++) {
			cr_assert_eq(f.log_vmm[round * 3 + k], want, "round %u", round);
			slots |= 1u << f.log_slot[round * 3 + k];
		}
		cr_assert_eq(slots, 7);
	}
	cr_assert_eq(n, 12);
	/* kept: iteration 1 (VMM 1, then 0), iteration 2 (VMM 0, then 1) */
	for (unsigned i = 0; i < 12; i++)
		cr_assert_str_eq(out[i].vmm, i / 3 == 0 || i / 3 == 3 ? "vmm1" : "vmm0");
	cr_assert_eq(rates[0].ok, 6);
	cr_assert_eq(rates[1].ok, 6);
	cr_assert_geq(rates[0].span_us, 2 * 1000);
}

Test(bench_cli, loop_stops_at_a_bench_error)
{
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER, .fail_at = 2};
	struct bench_loop l = {
	    .nvmm = 2, .runs = 3, .warmup = 0, .concurrency = 1, .run = fake_run, .ctx = &f};
	struct bench_record out[6];
	size_t n;

	cr_assert_eq(bench_loop_run(&l, out, &n, NULL), -EIO);
	cr_assert_eq(f.calls, 2);
}

Test(bench_cli, loop_refuses_nothing_to_run)
{
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct bench_loop l = {.nvmm = 0, .runs = 1, .concurrency = 1, .run = fake_run, .ctx = &f};
	struct bench_record out[1];
	size_t n;

	cr_assert_eq(bench_loop_run(&l, out, &n, NULL), -EINVAL);
	l.nvmm = 1;
	l.concurrency = 0;
	cr_assert_eq(bench_loop_run(&l, out, &n, NULL), -EINVAL);
	cr_assert_eq(f.calls, 0);
}

/* ---- the exit status ------------------------------------------------ */

static struct bench_record rec(const char *vmm, bool ok)
{
	struct bench_record r;

	bench_record_init(&r, vmm);
	r.ok = ok;
	return r;
}

Test(bench_cli, status)
{
	struct bench_record runs[3] = {rec("flint", true), rec("qemu", false), rec("flint", true)};
	struct bench_missing m[1] = {{"lkvm", "lkvm not found"}};
	struct bench_set s = {
	    .mode = "boot", .runs = runs, .nruns = 3, .missing = m, .nmissing = 1};

	/* a peer's failure and a missing peer are not flint's */
	cr_assert_eq(bench_status(&s, false), BENCH_EXIT_OK);
	cr_assert_eq(bench_status(&s, true), BENCH_EXIT_REGRESSED);
	runs[2].ok = false;
	cr_assert_eq(bench_status(&s, false), BENCH_EXIT_FLINT_FAILED);
	/* a regression says more than a failure */
	cr_assert_eq(bench_status(&s, true), BENCH_EXIT_REGRESSED);
	runs[2] = rec("flint-uffd", false);
	cr_assert_eq(bench_status(&s, false), BENCH_EXIT_FLINT_FAILED);
	runs[2] = rec("flintlike", false);
	cr_assert_eq(bench_status(&s, false), BENCH_EXIT_OK);
	snprintf(m[0].vmm, sizeof(m[0].vmm), "flint-uffd");
	cr_assert_eq(bench_status(&s, false), BENCH_EXIT_FLINT_FAILED);
}

Test(bench_cli, serve_options)
{
	struct bench_opts o;
	char err[256] = "";

	cr_assert_eq(PARSE(&o, err, "serve"), 0, "%s", err);
	cr_assert_eq(o.isolation, BSERVE_RESET, "flint serve's own default");
	cr_assert_eq(o.warmup, 2, "each warm VM takes one first: 2 x concurrency");
	cr_assert_eq(PARSE(&o, err, "serve", "--concurrency", "4", "--isolation", "restore"), 0,
		     "%s", err);
	cr_assert_eq(o.isolation, BSERVE_RESTORE);
	cr_assert_eq(o.warmup, 8);
	cr_assert_eq(PARSE(&o, err, "serve", "--concurrency", "4", "--warmup", "0", "--isolation",
			   "reuse", "--", "cat"),
		     0, "%s", err);
	cr_assert_eq(o.isolation, BSERVE_REUSE);
	cr_assert_eq(o.warmup, 0, "--warmup given is kept");
	cr_assert_eq(o.ncommand, 1);
	/* A peer is taken, to be reported missing (no peer has a serve mode). */
	cr_assert_eq(PARSE(&o, err, "serve", "--peer", "qemu"), 0, "%s", err);
	cr_assert_eq(o.npeers, 1);
	refused(PARSE(&o, err, "serve", "--isolation", "none"), err, "--isolation none: expected");
	refused(PARSE(&o, err, "boot", "--isolation", "reset"), err, "--isolation is serve's");
	refused(PARSE(&o, err, "serve", "--image", "d"), err, "--image");
	refused(PARSE(&o, err, "serve", "--cmdline", "console=ttyS0"), err, "--cmdline");
	refused(PARSE(&o, err, "serve", "--backend", "file"), err, "--backend is restore's");
}
