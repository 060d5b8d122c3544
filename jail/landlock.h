/* Landlock (Linux 5.13+) for the process that becomes flint: defence in
 * depth behind pivot_root. Should flint ever find a way out of its root,
 * it still may touch no file outside it; it may not bind or connect TCP
 * sockets (ABI 4+: flint in a jail has no use for them, passt is handed to
 * it), nor reach abstract Unix sockets or signal processes outside its
 * domain (ABI 6+). Firecracker's jailer confines its VMM to the jail the
 * same way (file system only). */
#ifndef FLINT_JAIL_LANDLOCK_H
#define FLINT_JAIL_LANDLOCK_H

#include "core/util.h"

/* Confine this process, whose root is the jail's, to what lies beneath its
 * root. Called last before the exec, with no_new_privs set. Returns the
 * Landlock ABI enforced (1 or more), 0 when the kernel has no Landlock
 * (said on stderr: the jail goes on without it), or -errno (printed) when
 * the kernel has it and it could not be enforced. */
int landlock_confine(void) WARN_UNUSED;

#endif
