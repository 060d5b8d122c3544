/* What every libFuzzer harness here shares: the entry point libFuzzer calls,
 * and CHECK, an assertion that stays in optimised builds and stops the run
 * where it failed (the fuzzer then saves the input). */
#ifndef FLINT_FUZZ_H
#define FLINT_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

#endif
