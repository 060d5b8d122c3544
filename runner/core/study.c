#include "core/study.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static const char *const names[STUDY_SWITCHES] = {
    [STUDY_NO_THP] = "no-thp",
    [STUDY_PLAIN_CPUID] = "plain-cpuid",
    [STUDY_NO_MSRS] = "no-msrs",
};

static bool on[STUDY_SWITCHES];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void parse(void)
{
	const char *env = getenv("FLINT_STUDY");

	if (!env)
		return;
	for (const char *p = env; *p;) {
		size_t len = strcspn(p, ",");
		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			if (strlen(names[i]) == len && !strncmp(p, names[i], len))
				on[i] = true;
		p += len;
		if (*p == ',')
			p++;
	}
}

bool study_on(enum study_switch s)
{
	pthread_once(&once, parse);
	return (unsigned)s < STUDY_SWITCHES && on[s];
}
