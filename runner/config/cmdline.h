/* The guest kernel command line, assembled from the user's pieces and
 * flint's own. The kernel takes parameters up to its first "--" word and
 * hands every word after it to init, so whatever flint adds for the kernel
 * (the virtio_mmio.device= arguments) must go before the first "--" of the
 * whole line, wherever the user put one. Pure functions, unit tested. */
#ifndef FLINT_CMDLINE_H
#define FLINT_CMDLINE_H

#include <stddef.h>

#include "core/util.h"

struct cmdline_parts {
	const char *base;    /* --cmdline or the default; may hold "-- INIT-ARGS" */
	const char *append;  /* --append, NULL for none; may hold "-- INIT-ARGS" too */
	const char *devices; /* flint's kernel arguments, NULL for none; no "--" */
	char *const *words;  /* flint's own "-- CMD ARGS" words for init, unquoted */
	int nwords;
};

/* Find where the kernel stops taking parameters in s, splitting words as
 * its parse_args() does (on spaces, double quotes group): at the first word
 * "--" (or "\"--\""). Returns the length of the kernel's part without the
 * spaces before the "--"; *init points just after the "--" and its spaces,
 * or is NULL when s has no "--" (then the whole of s is the kernel's). */
size_t cmdline_split(const char *s, const char **init);

/* The command line for the kernel, as one string:
 *   KERNEL(base) KERNEL(append) devices -- INIT(base) INIT(append) words
 * where KERNEL() and INIT() are the two sides of cmdline_split(); " -- " only
 * when some init part is not empty. Words are double-quoted where they hold
 * a space or are empty. Returns a malloc'd string, or NULL with a message in
 * err: a word the kernel cannot carry (one holding a double quote, or "--",
 * which would end init's arguments there), base or append ending inside
 * double quotes (what follows would join their last word) or with a second
 * "--" that words follow (the kernel would drop them), or a line
 * longer than max - 1
 * bytes (max counts the NUL, as the kernel's COMMAND_LINE_SIZE does: flint
 * never truncates). */
char *cmdline_build(const struct cmdline_parts *p, size_t max, char *err, size_t errlen);

/* Whether s can start a kernel command line, as Firecracker checks
 * boot_args when they are set: printable ASCII only (0x20 to 0x7e, as
 * linux-loader's Cmdline), at most max - 1 bytes (max counts the NUL), and
 * no double quote left open (what flint adds after it would join its last
 * word). 0, or -EINVAL with err naming field and the reason. */
int cmdline_check(const char *field, const char *s, size_t max, char *err,
		  size_t errlen) WARN_UNUSED;

#endif
