/* nofsconfig: run a command (flint-jail, for tests/jail/run.sh) with every
 * fsconfig(2) failing EINVAL, as on a kernel whose procfs knows no
 * subset=pid (Linux before 5.8). The filter is root's own (CAP_SYS_ADMIN),
 * so no_new_privs is left as it was. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	scmp_filter_ctx c = seccomp_init(SCMP_ACT_ALLOW);

	if (argc < 2 || !c || seccomp_attr_set(c, SCMP_FLTATR_CTL_NNP, 0) < 0 ||
	    seccomp_rule_add(c, SCMP_ACT_ERRNO(EINVAL), SCMP_SYS(fsconfig), 0) < 0 ||
	    seccomp_load(c) < 0) {
		fprintf(stderr, "usage: nofsconfig COMMAND [ARGS...] (as root)\n");
		return 125;
	}
	seccomp_release(c);
	execv(argv[1], argv + 1);
	perror(argv[1]);
	return 127;
}
