/* Landlock for the process that becomes flint: defence in depth behind
 * pivot_root. Should flint ever find a way out of its root, it still may
 * touch no file outside it (Landlock ABI 1, Linux 5.13+); it may not bind
 * or connect TCP sockets (ABI 4, Linux 6.7+: flint in a jail has no use
 * for them, passt is handed to it as a descriptor); nor reach abstract Unix
 * sockets or signal processes outside its domain (ABI 6, Linux 6.12+). */
#ifndef FLINT_JAIL_LANDLOCK_H
#define FLINT_JAIL_LANDLOCK_H

#include "core/util.h"

/* The ruleset for a process whose root is the jail's: everything beneath
 * its root, nothing else. Made while the jailer is still root and can
 * undo the jail, after pivot_root. *ruleset is its fd (close-on-exec), or
 * -1 when the kernel offers no Landlock (said on stderr: the jail goes on
 * without it). 0 or -errno (printed). */
int landlock_prepare(int *ruleset) WARN_UNUSED;

/* Enforce the ruleset (from landlock_prepare; -1: none, nothing done) on
 * this process, last before the exec, with no_new_privs set; closes it.
 * 0 or -errno (printed). */
int landlock_enforce(int ruleset) WARN_UNUSED;

#endif
