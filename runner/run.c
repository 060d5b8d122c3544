/* Placeholder until the flint run client lands; see run.h. */
#include "run.h"

#include <errno.h>
#include <stddef.h>

int run_start(struct run **out, const struct run_params *p)
{
	(void)p;
	*out = NULL;
	pr_err("flint run is not built yet");
	return -ENOSYS;
}

void run_stop(struct run *r)
{
	(void)r;
}

bool run_finished(const struct run *r)
{
	(void)r;
	return false;
}

void run_get_timings(const struct run *r, struct run_timings *out)
{
	(void)r;
	*out = (struct run_timings){0};
}
