/* See hugepool.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hugepool.h"

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static int lock_fd = -1;
static long nr_before = -1; /* vm.nr_hugepages to put back, or -1 */

static long meminfo(const char *name)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	size_t n = strlen(name);
	long v = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static long available(void)
{
	long rsvd = meminfo("HugePages_Rsvd");
	return meminfo("HugePages_Free") - (rsvd > 0 ? rsvd : 0);
}

static bool write_nr(long v)
{
	FILE *f = fopen(NR_HUGEPAGES, "w");

	if (!f)
		return false;
	bool ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

long hugepool_take(long want)
{
	if (lock_fd < 0) {
		lock_fd = open(NR_HUGEPAGES, O_RDONLY | O_CLOEXEC);
		cr_assert_geq(lock_fd, 0, "%s: %s", NR_HUGEPAGES, strerror(errno));
		cr_assert_eq(flock(lock_fd, LOCK_EX), 0, "flock %s: %s", NR_HUGEPAGES,
			     strerror(errno));
	}
	long avail = available();
	if (avail >= want)
		return avail;
	FILE *f = fopen(NR_HUGEPAGES, "r");
	long nr = -1;
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld", &nr), 1);
	fclose(f);
	if (!write_nr(nr + want - avail))
		return avail;
	if (nr_before < 0)
		nr_before = nr;
	return available();
}

void hugepool_give_back(void)
{
	if (nr_before >= 0) {
		long nr = nr_before;
		nr_before = -1;
		cr_assert(write_nr(nr), "putting vm.nr_hugepages back to %ld", nr);
	}
	if (lock_fd >= 0) {
		close(lock_fd);
		lock_fd = -1;
	}
}
