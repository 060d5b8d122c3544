#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "err.h"

/* Every capability set of this process, bounding set included, is empty. */
static bool caps_empty(void)
{
	cap_t now = cap_get_proc(), none = cap_init();
	bool empty = now && none && cap_compare(now, none) == 0;

	cap_free(now);
	cap_free(none);
	for (cap_value_t c = 0; empty && c < (cap_value_t)cap_max_bits(); c++)
		empty = cap_get_bound(c) == 0 && cap_get_ambient(c) <= 0;
	return empty;
}

int privs_drop(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++)
		if (cap_drop_bound(c) < 0)
			return jail_fail("drop the capability bounding set", NULL, -errno);
	if (cap_reset_ambient() < 0)
		return jail_fail("clear the ambient capabilities", NULL, -errno);
	if (setgroups(0, NULL) < 0)
		return jail_fail("clear supplementary groups", NULL, -errno);
	if (setresgid(gid, gid, gid) < 0)
		return jail_fail("setresgid", NULL, -errno);
	if (setresuid(uid, uid, uid) < 0)
		return jail_fail("setresuid", NULL, -errno);
	/* setresuid from root already empties permitted and effective (no
	 * SECBIT_KEEP_CAPS); clearing them explicitly does not rely on it. */
	cap_t none = cap_init();
	int r = none ? cap_set_proc(none) : -1;
	int e = errno;
	cap_free(none);
	if (r < 0)
		return jail_fail("clear the capability sets", NULL, -e);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return jail_fail("set no_new_privs", NULL, -errno);
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != uid ||
	    eu != uid || su != uid || rg != gid || eg != gid || sg != gid || !caps_empty() ||
	    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return jail_failf(-EPERM, "drop privileges", NULL,
				  "the process still holds ids or capabilities it should not");
	return 0;
}
