/* Run an event loop on the test thread, for device tests whose handlers
 * stop it once the test's condition holds: a watchdog thread stops it
 * after ms should that never happen. Header-only. */
#ifndef FLINT_TEST_LOOP_WATCHDOG_H
#define FLINT_TEST_LOOP_WATCHDOG_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/evloop.h"

struct loop_watchdog {
	pthread_t t;
	struct evloop *loop;
	unsigned ms;
	atomic_bool done;
};

static inline void *loop_watchdog_thread(void *arg)
{
	struct loop_watchdog *w = arg;

	for (unsigned i = 0; i < w->ms; i++) {
		if (atomic_load(&w->done))
			return NULL; /* a stop now would end the next run at once */
		usleep(1000);
	}
	evloop_stop(w->loop);
	return NULL;
}

/* evloop_run(loop) until it stops, or ms have passed. */
static inline void loop_run_for(struct evloop *loop, unsigned ms)
{
	struct loop_watchdog w = {.loop = loop, .ms = ms};

	cr_assert_eq(pthread_create(&w.t, NULL, loop_watchdog_thread, &w), 0);
	cr_assert_eq(evloop_run(loop), 0);
	atomic_store(&w.done, true);
	pthread_join(w.t, NULL);
}

#endif
