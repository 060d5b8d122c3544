/* rng.c's test seam, for the unit tests and the fuzzer only: nothing in
 * flint includes this header but rng.c itself, which defines the function.
 * It gives the rate limiter a clock the test moves by hand, so that what is
 * throttled and for how long does not depend on how fast the test runs. */
#ifndef FLINT_RNG_TEST_H
#define FLINT_RNG_TEST_H

#include <stdint.h>

/* Devices created after this call read the time from now() (monotonic
 * nanoseconds) instead of now_ns(); NULL goes back to now_ns(). The event
 * loop's timer still runs on the real clock. Not thread-safe: call it while
 * no device is being created. */
void rng_test_set_clock(uint64_t (*now)(void));

#endif
