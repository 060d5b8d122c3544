/* See landlock.h. The system calls directly: glibc has no wrappers, and
 * the installed UAPI header may predate the kernel's ABI (each field and
 * right below is used only where the kernel's ABI has it). */
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"

/* landlock_ruleset_attr as of ABI 6; older kernels take a prefix of it. */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

#define FS_ABI1	       ((1ULL << 13) - 1) /* EXECUTE ... MAKE_SYM */
#define FS_REFER       (1ULL << 13)	  /* ABI 2 */
#define FS_TRUNCATE    (1ULL << 14)	  /* ABI 3 */
#define FS_IOCTL_DEV   (1ULL << 15)	  /* ABI 5 */
#define NET_BIND_TCP   (1ULL << 0)	  /* ABI 4 */
#define NET_CONNECT    (1ULL << 1)
#define SCOPE_ABS_UNIX (1ULL << 0) /* ABI 6 */
#define SCOPE_SIGNAL   (1ULL << 1)

int landlock_prepare(int *ruleset)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	struct ruleset_attr attr = {.handled_access_fs = FS_ABI1};
	struct landlock_path_beneath_attr beneath = {0};
	size_t size = sizeof(attr.handled_access_fs);
	int rules, root;

	*ruleset = -1;
	/* No Landlock: not built in, not among lsm=, or the system call
	 * refused by a container's own filter. */
	if (abi < 1) {
		fprintf(stderr,
			"flint-jail: Landlock: not offered here (%s); flint is confined by its "
			"root, namespaces, capabilities and seccomp\n",
			abi < 0 ? strerror(errno) : "ABI 0");
		return 0;
	}
	if (abi >= 2)
		attr.handled_access_fs |= FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= FS_IOCTL_DEV;
	if (abi >= 4) {
		attr.handled_access_net = NET_BIND_TCP | NET_CONNECT;
		size = offsetof(struct ruleset_attr, scoped);
	}
	if (abi >= 6) {
		attr.scoped = SCOPE_ABS_UNIX | SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	if ((rules = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0)) < 0)
		return jail_fail("Landlock: create the ruleset", NULL, -errno);
	/* Everything beneath the root, the jail's since pivot_root; no rule
	 * for TCP: none is allowed. */
	if ((root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		int r = jail_fail("Landlock", "/", -errno);
		close(rules);
		return r;
	}
	beneath.allowed_access = attr.handled_access_fs;
	beneath.parent_fd = root;
	if (syscall(SYS_landlock_add_rule, rules, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) < 0) {
		int r = jail_fail("Landlock: the jail's root", NULL, -errno);
		close(root);
		close(rules);
		return r;
	}
	close(root);
	*ruleset = rules;
	return 0;
}

int landlock_enforce(int ruleset)
{
	int r = 0;

	if (ruleset < 0)
		return 0;
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		r = jail_fail("Landlock: restrict", NULL, -errno);
	close(ruleset);
	return r;
}
