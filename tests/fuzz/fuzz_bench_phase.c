/* libFuzzer harness for flint bench's phase parser (runner/bench/phase.c):
 * the fuzzer plays a VMM writing on --phase-fd. The input's first byte
 * picks where the rest is cut into two reads. Fed in pieces, the parser
 * must say what it says of the whole (the same result, the same record);
 * a record it accepts must keep phase.h's rules: times since the launch,
 * none before its phase's nearest predecessor, a boot's or a restore's
 * phases, not both, never the launcher's exit. */
#include <stdbool.h>
#include <string.h>

#include "bench/phase.h"
#include "fuzz.h"

#define BASE 1000000ULL

static int parse_split(const char *s, size_t n, size_t cut, struct bench_record *r)
{
	struct phase_parser p;
	char err[128];

	bench_record_init(r, "flint");
	phase_parser_init(&p, r, BASE);
	if (phase_feed(&p, s, cut, err, sizeof(err)) < 0 ||
	    phase_feed(&p, s + cut, n - cut, err, sizeof(err)) < 0)
		return -1;
	return phase_finish(&p, err, sizeof(err)) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bench_record whole, split;
	char err[128];

	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1, cut = n ? data[0] % (n + 1) : 0;

	bench_record_init(&whole, "flint");
	int a = phase_parse(s, n, BASE, &whole, err, sizeof(err)) < 0 ? -1 : 0;
	int b = parse_split(s, n, cut, &split);
	CHECK(a == b);
	if (a < 0)
		return 0;
	CHECK(!memcmp(&whole, &split, sizeof(whole)));
	CHECK(whole.phase_us[BP_EXIT] == BENCH_NONE);
	bool boot = false, restore = false;
	for (int k = 0; k < BP_COUNT; k++) {
		if (whole.phase_us[k] == BENCH_NONE)
			continue;
		CHECK(whole.phase_us[k] <= UINT64_MAX - BASE);
		if (k != BP_PROCESS) {
			boot |= !phase_is_restore(k);
			restore |= phase_is_restore(k);
		}
		enum bench_phase p = phase_after(k);
		while (p != BP_COUNT && whole.phase_us[p] == BENCH_NONE)
			p = phase_after(p);
		CHECK(p == BP_COUNT || whole.phase_us[k] >= whole.phase_us[p]);
	}
	CHECK(!(boot && restore));
	return 0;
}
