/* util.h on its own: what every module gets from it without other headers. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"

struct outer {
	char pad[3];
	int member;
	struct {
		long x;
	} inner;
};

/* container_of is util.h's (once, for every module), and gets back the
 * embedding struct from a member at any offset. */
Test(util, container_of_finds_the_embedding_struct)
{
	struct outer o;

	cr_assert_eq(container_of(&o.member, struct outer, member), &o);
	cr_assert_eq(container_of(&o.inner, struct outer, inner), &o);
	cr_assert_eq(container_of(&o.inner.x, struct outer, inner.x), &o);
	cr_assert_eq(container_of((void *)o.pad, struct outer, pad), &o);
}

/* The Rss of the main thread's stack, from /proc/self/smaps, in KiB. */
static long stack_rss_kib(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in_stack = false;
	long kib = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ' ') && line[0] != ' ' &&
		    strchr("0123456789abcdef", line[0]))
			in_stack = strstr(line, "[stack]") != NULL;
		else if (in_stack && sscanf(line, "Rss: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

/* 256 KiB of stack touched below the caller's frame, as set-up's deep
 * calls do; returns the sum so that the writes cannot be optimised out. */
static __attribute__((noinline)) int touch_deep(void)
{
	volatile char buf[256 * 1024];
	int sum = 0;

	for (size_t i = 0; i < sizeof(buf); i += 4096)
		buf[i] = 1;
	for (size_t i = 0; i < sizeof(buf); i += 4096)
		sum += buf[i];
	return sum;
}

static void *release_on_thread(void *arg)
{
	(void)arg;
	return stack_release_below() ? (void *)1 : NULL;
}

/* The pages that deeper calls touched leave the main thread's RSS, the
 * stack still works (they come back zeroed), and another thread's stack,
 * whose neighbours are unknown, is left alone. */
Test(util, stack_release_below_gives_back_what_deeper_calls_touched)
{
	pthread_t t;
	void *released = (void *)1;
	long before, after;

	cr_assert_eq(touch_deep(), 64);
	before = stack_rss_kib();
	cr_assert_geq(before, 256, "the stack holds %ld KiB after touching 256", before);
	cr_assert(stack_release_below());
	after = stack_rss_kib();
	cr_assert_lt(after, before - 200, "%ld KiB before the release, %ld after", before, after);
	cr_assert_eq(touch_deep(), 64);
	cr_assert_eq(pthread_create(&t, NULL, release_on_thread, NULL), 0);
	cr_assert_eq(pthread_join(t, &released), 0);
	cr_assert_null(released);
}
