/* Where tests make their scratch files: $TMPDIR, else /tmp. Header-only. */
#ifndef FLINT_TEST_TMPDIR_H
#define FLINT_TEST_TMPDIR_H

#include <stdlib.h>

static inline const char *test_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t && *t ? t : "/tmp";
}

#endif
