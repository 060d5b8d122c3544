/* Dropping to the jail's user for good: uid and gid, no supplementary
 * groups, every capability set and the bounding set empty (libcap), and
 * no_new_privs, so nothing flint execs can gain privileges back. */
#ifndef FLINT_JAIL_PRIVS_H
#define FLINT_JAIL_PRIVS_H

#include <sys/types.h>

#include "core/util.h"

/* Drop to uid:gid. The bounding and ambient sets go first, while
 * CAP_SETPCAP still allows it; then the ids; then the remaining sets; then
 * no_new_privs; finally it checks the result. 0 or -errno (printed, naming
 * the step); on failure after the ids changed, the process has no way back
 * to root and must exit. */
int privs_drop(uid_t uid, gid_t gid) WARN_UNUSED;

#endif
