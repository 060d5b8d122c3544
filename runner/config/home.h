/* Where `flint run` finds its guest, the kernel `vmlinux` and the root file
 * system `rootfs.ext4`: in $FLINT_HOME, then beside the flint binary (a
 * build tree), then in FLINT_PREFIX/share/flint (where `make install` puts
 * them; FLINT_PREFIX is compiled in, /usr/local by default). */
#ifndef FLINT_HOME_H
#define FLINT_HOME_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

/* FLINT_PREFIX "/share/flint", with the prefix home.o was compiled with
 * (the Makefile's PREFIX). */
extern const char home_datadir[];

#define HOME_MAX_DIRS 3

struct home {
	unsigned n;
	struct {
		char dir[PATH_MAX];
		const char *why; /* "FLINT_HOME", "beside flint", NULL */
	} dirs[HOME_MAX_DIRS];
	bool flint_home_set;
};

/* The places to look, in order: flint_home (the value of $FLINT_HOME;
 * NULL or "" for unset), the directory of exe (the running binary's path;
 * NULL to leave it out), home_datadir. */
void home_init(struct home *h, const char *flint_home, const char *exe);

/* The first place holding a file `name`: its path in out[0..len). Returns 0
 * or -ENOENT (none has it), -ENAMETOOLONG. */
int home_find(const struct home *h, const char *name, char *out, size_t len) WARN_UNUSED;

/* The places, for a message: "/a (FLINT_HOME), /b (beside flint) or
 * /usr/local/share/flint"; with $FLINT_HOME unset it says so. */
void home_describe(const struct home *h, char *out, size_t len);

#endif
