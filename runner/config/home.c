#include "config/home.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FLINT_PREFIX
#define FLINT_PREFIX "/usr/local"
#endif

const char home_datadir[] = FLINT_PREFIX "/share/flint";

static void add(struct home *h, const char *dir, size_t len, const char *why)
{
	if (h->n == HOME_MAX_DIRS || len == 0 || len >= sizeof(h->dirs[0].dir))
		return;
	memcpy(h->dirs[h->n].dir, dir, len);
	h->dirs[h->n].dir[len] = '\0';
	h->dirs[h->n].why = why;
	h->n++;
}

void home_init(struct home *h, const char *flint_home, const char *exe)
{
	*h = (struct home){0};
	if (flint_home && *flint_home) {
		h->flint_home_set = true;
		add(h, flint_home, strlen(flint_home), "FLINT_HOME");
	}
	if (exe) {
		const char *slash = strrchr(exe, '/');
		if (slash)
			add(h, exe, slash == exe ? 1 : (size_t)(slash - exe), "beside flint");
	}
	add(h, home_datadir, strlen(home_datadir), NULL);
}

int home_find(const struct home *h, const char *name, char *out, size_t len)
{
	struct stat st;

	for (unsigned i = 0; i < h->n; i++) {
		const char *d = h->dirs[i].dir;
		bool root = !strcmp(d, "/");
		if ((size_t)snprintf(out, len, "%s/%s", root ? "" : d, name) >= len)
			return -ENAMETOOLONG;
		/* Present is enough: one that cannot be read fails later with a
		 * message naming it, rather than being passed over in silence. */
		if (stat(out, &st) == 0)
			return 0;
	}
	out[0] = '\0';
	return -ENOENT;
}

void home_describe(const struct home *h, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	if (!h->flint_home_set)
		n += snprintf(out, len, "$FLINT_HOME (not set), ");
	for (unsigned i = 0; i < h->n && n < len; i++) {
		const char *sep = i == 0 ? "" : i + 1 == h->n ? " or " : ", ";
		n += snprintf(out + n, len - n, "%s%s", sep, h->dirs[i].dir);
		if (h->dirs[i].why && n < len)
			n += snprintf(out + n, len - n, " (%s)", h->dirs[i].why);
	}
}
