/* Criterion's synthesis line leaves a skipped test out of its counts
 * without a word. This says, just before it, which tests skipped
 * themselves (cr_skip_test, always with a reason) and why, so that a check
 * that did not run is seen as such. Tests a --filter left out are skipped
 * too, without a reason: those are not listed. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>

static bool skipped_itself(const struct criterion_test_stats *t)
{
	return t->test_status == CR_STATUS_SKIPPED && t->message;
}

ReportHook(POST_ALL)(struct criterion_global_stats *all)
{
	size_t n = 0;

	for (struct criterion_suite_stats *s = all->suites; s; s = s->next)
		for (struct criterion_test_stats *t = s->tests; t; t = t->next)
			n += skipped_itself(t);
	if (!n)
		return;
	fprintf(stderr,
		"unit: %zu test(s) did not run (skipped; the synthesis below leaves them out):\n",
		n);
	for (struct criterion_suite_stats *s = all->suites; s; s = s->next)
		for (struct criterion_test_stats *t = s->tests; t; t = t->next)
			if (skipped_itself(t))
				fprintf(stderr, "unit:   %s::%s: %s\n", t->test->category,
					t->test->name, t->message);
}
