/* probe: run by tests/jail/run.sh as flint-jail's --exec-file in place of
 * flint. Prints what a jailed process sees, one "key=value" per line, from
 * system calls only (the jail has no /proc):
 *   ids, supplementary groups, capability sets (capget) and the bounding set
 *   (PR_CAPBSET_READ), no_new_privs, rlimits, environment, open descriptors,
 *   pid, whether /dev/kvm opens, and every path under / ("file=PATH").
 * With "wait" as an argument it then blocks until stdin closes, so the test
 * can read /proc/<pid>/status and /proc/<pid>/cgroup from outside; "sleep N"
 * waits N seconds more (for --daemonize, whose stdin is /dev/null); "exit N"
 * sets the exit status. Given "--api-sock PATH", as flint is, it binds a
 * Unix socket there ("bind=ok" or the error) before the walk, so the test
 * can find it from the host; given "--save-snapshot PATH" and "--save-mem
 * PATH", it writes a new file at each, as flint run would ("saved=ok" or
 * the error), for the test to collect from the jail's root. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static void walk(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d || depth > 6)
		goto out;
	while ((e = readdir(d))) {
		char path[4096];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		printf("file=%s %c %u:%u %o\n", path,
		       S_ISDIR(st.st_mode)    ? 'd'
		       : S_ISCHR(st.st_mode)  ? 'c'
		       : S_ISREG(st.st_mode)  ? 'f'
		       : S_ISSOCK(st.st_mode) ? 's'
					      : '?',
		       (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
		if (S_ISDIR(st.st_mode))
			walk(path, depth + 1);
	}
out:
	if (d)
		closedir(d);
}

/* Bind and listen on a Unix socket at path, as flint's API does. */
static void bind_socket(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0)
		printf("bind=%m\n");
	else
		printf("bind=ok\n");
}

/* A new file at path holding what, 0600, as flint writes a snapshot's. */
static void save(const char *path, const char *what)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, what, strlen(what)) != (ssize_t)strlen(what))
		printf("saved=%m\n");
	else
		printf("saved=ok\n");
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[2] = {0};
	uid_t r, e, s;
	gid_t rg, eg, sg;
	struct rlimit nofile, fsize;
	int status = 0, wait_stdin = 0, sleep_s = 0, bnd = 0, env = 0;
	const char *api_sock = NULL, *save_state = NULL, *save_mem = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "wait"))
			wait_stdin = 1;
		else if (!strcmp(argv[i], "exit") && i + 1 < argc)
			status = atoi(argv[++i]);
		else if (!strcmp(argv[i], "sleep") && i + 1 < argc)
			sleep_s = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--api-sock") && i + 1 < argc)
			api_sock = argv[i + 1];
		else if (!strcmp(argv[i], "--save-snapshot") && i + 1 < argc)
			save_state = argv[i + 1];
		else if (!strcmp(argv[i], "--save-mem") && i + 1 < argc)
			save_mem = argv[i + 1];
	}
	getresuid(&r, &e, &s);
	getresgid(&rg, &eg, &sg);
	printf("uid=%u %u %u\ngid=%u %u %u\ngroups=%d\n", r, e, s, rg, eg, sg, getgroups(0, NULL));
	syscall(SYS_capget, &h, c);
	printf("capeff=%x%08x\ncapprm=%x%08x\ncapinh=%x%08x\n", c[1].effective, c[0].effective,
	       c[1].permitted, c[0].permitted, c[1].inheritable, c[0].inheritable);
	for (int cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			bnd++;
	printf("capbnd=%d\nnnp=%d\n", bnd, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	getrlimit(RLIMIT_NOFILE, &nofile);
	getrlimit(RLIMIT_FSIZE, &fsize);
	printf("nofile=%llu\nfsize=%lld\n", (unsigned long long)nofile.rlim_cur,
	       fsize.rlim_cur == RLIM_INFINITY ? -1LL : (long long)fsize.rlim_cur);
	for (char **v = environ; v && *v; v++)
		env++;
	printf("env=%d\n", env);
	printf("fds=");
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			printf("%d ", fd);
	printf("\npid=%d\nargv0=%s\n", (int)getpid(), argv[0]);
	for (int i = 1; i < argc; i++)
		printf("arg=%s\n", argv[i]);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	printf("kvm=%s\n", kvm >= 0 ? "opens" : "fails");
	if (kvm >= 0)
		close(kvm);
	if (api_sock)
		bind_socket(api_sock);
	if (save_state)
		save(save_state, "state\n");
	if (save_mem)
		save(save_mem, "memory\n");
	walk("/", 0);
	printf("end\n");
	fflush(stdout);
	if (wait_stdin) {
		char b;
		while (read(0, &b, 1) > 0)
			;
	}
	if (sleep_s)
		sleep(sleep_s);
	return status;
}
