/* probe: run by tests/jail/run.sh as flint-jail's --exec-file in place of
 * flint. Prints what a jailed process sees, one "key=value" per line, from
 * system calls (the jail has no /proc but for a --restore's):
 *   ids, supplementary groups, capability sets (capget) and the bounding set
 *   (PR_CAPBSET_READ), no_new_privs, rlimits, environment, open descriptors,
 *   pid, whether /dev/kvm opens, and every path under / ("file=PATH"; /proc
 *   itself, not what is in it). When there is a /proc: whether
 *   /proc/self/pagemap opens and reads ("pagemap=reads"), what /proc/self
 *   is, each entry of /proc ("procent=NAME"), whether /proc/1 and the
 *   system-wide files (sys, kcore, sysrq-trigger, meminfo, mounts) are there,
 *   whether the probe can make a directory in it, and the mount's type and
 *   flags.
 * With "wait" as an argument it then blocks until stdin closes, so the test
 * can read /proc/<pid>/status and /proc/<pid>/cgroup from outside; "sleep N"
 * waits N seconds more (for --daemonize, whose stdin is /dev/null); "exit N"
 * sets the exit status. Given "--api-sock PATH", as flint is, it binds a
 * Unix socket there ("bind=ok" or the error) before the walk, so the test
 * can find it from the host; given "--save-snapshot PATH" and "--save-mem
 * PATH", it writes a new file at each, as flint run would ("saved=ok" or
 * the error), for the test to collect from the jail's root; given "--net
 * user,fd=N" (flint-jail's passt), it checks passt answers on N. It also
 * says the kernel's Landlock ABI and whether it may bind a TCP socket. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
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
		if (S_ISDIR(st.st_mode) && strcmp(path, "/proc"))
			walk(path, depth + 1);
	}
out:
	if (d)
		closedir(d);
}

/* What the jail's /proc shows (nothing when it has none). */
static void proc_view(void)
{
	static const char *const global[] = {"sys", "kcore", "sysrq-trigger", "meminfo", "mounts"};
	char buf[64], path[64];
	uint64_t entry;
	struct statfs sf;
	struct statvfs sv;
	struct dirent *e;
	struct stat st;
	DIR *d;

	if (stat("/proc/self", &st) < 0) {
		printf("proc=%m\n");
		return;
	}
	printf("proc=yes\n");
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	printf("procself=%s\n", buf);
	/* The entry of a page of this stack, as a reset reads its guest's. */
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t at = (off_t)((uintptr_t)&entry / 4096 * sizeof(entry));
	if (pm < 0)
		printf("pagemap=open: %m\n");
	else if (pread(pm, &entry, sizeof(entry), at) != (ssize_t)sizeof(entry))
		printf("pagemap=read: %m\n");
	else
		printf("pagemap=reads%s\n", entry >> 63 ? " present" : "");
	if (pm >= 0)
		close(pm);
	if ((d = opendir("/proc"))) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				printf("procent=%s\n", e->d_name);
		closedir(d);
	}
	printf("proc1=%s\n", stat("/proc/1", &st) == 0 ? "visible" : "invisible");
	printf("procglobal=");
	for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++) {
		snprintf(path, sizeof(path), "/proc/%s", global[i]);
		if (lstat(path, &st) == 0 || errno != ENOENT)
			printf("%s ", global[i]);
	}
	printf("\nprocmkdir=%s\n", mkdir("/proc/x", 0755) == 0 ? "made" : strerror(errno));
	/* A descriptor inherited on a file outside the jail (the test's
	 * --control-fd 3), opened anew through its magic link: nothing but
	 * Landlock stops that. */
	if (fcntl(3, F_GETFD) >= 0) {
		int re = open("/proc/self/fd/3", O_RDONLY | O_CLOEXEC);
		printf("reopen=%s\n", re >= 0 ? "ok" : strerror(errno));
		if (re >= 0)
			close(re);
	}
	if (statfs("/proc", &sf) == 0 && statvfs("/proc", &sv) == 0)
		printf("procmount=%s%s%s%s\n", sf.f_type == PROC_SUPER_MAGIC ? "proc" : "other",
		       sv.f_flag & ST_NOSUID ? " nosuid" : "", sv.f_flag & ST_NODEV ? " nodev" : "",
		       sv.f_flag & ST_NOEXEC ? " noexec" : "");
}

/* Given "--net user,...,fd=N", as flint is by flint-jail: whether N is a
 * Unix stream socket whose other end answers an ARP request for the
 * gateway, as passt does ("netfd=N passt answers", or what is wrong). */
static void net_fd(const char *spec)
{
	/* 10.0.2.15 asks who has 10.0.2.2, behind its 4-byte length. */
	static const unsigned char req[4 + 42] = {
	    0,	  0,	0, 42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2,  0, 0, 0, 0, 1,
	    0x08, 0x06, 0, 1,  0x08, 0,	   6,	 4,    0,    1,	   2,  0, 0, 0, 0, 1,
	    10,	  0,	2, 15, 0,    0,	   0,	 0,    0,    0,	   10, 0, 2, 2};
	const char *at = strstr(spec, "fd=");
	int fd = at ? atoi(at + 3) : -1, type = 0, domain = 0;
	socklen_t len = sizeof(int);
	unsigned char buf[4 + 1600];

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) {
		printf("netfd=%d %m\n", fd);
		return;
	}
	if (type != SOCK_STREAM || domain != AF_UNIX) {
		printf("netfd=%d not a Unix stream socket\n", fd);
		return;
	}
	struct timeval tv = {.tv_sec = 5};
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, req, sizeof(req)) != (ssize_t)sizeof(req)) {
		printf("netfd=%d write: %m\n", fd);
		return;
	}
	/* Frames until the ARP reply (passt may send others first). */
	for (int frames = 0; frames < 16; frames++) {
		size_t got = 0, want = 4;
		while (got < want) {
			ssize_t n = read(fd, buf + got, want - got);
			if (n <= 0) {
				printf("netfd=%d read: %s\n", fd, n ? strerror(errno) : "end");
				return;
			}
			got += n;
			if (got == 4) {
				want = 4 + ((size_t)buf[2] << 8 | buf[3]);
				if (buf[0] || buf[1] || want > sizeof(buf)) {
					printf("netfd=%d not a stream of frames\n", fd);
					return;
				}
			}
		}
		if (want >= 4 + 42 && buf[4 + 12] == 0x08 && buf[4 + 13] == 0x06 &&
		    buf[4 + 21] == 2) {
			printf("netfd=%d passt answers\n", fd);
			return;
		}
	}
	printf("netfd=%d no ARP reply\n", fd);
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

/* The kernel's Landlock ABI ("landlock_abi=N", -1 without), and whether a
 * TCP socket binds on the loopback ("tcpbind=ok" or the error): under the
 * jail's Landlock domain (ABI 4+) it may not. */
static void landlock(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1UL /* VERSION */);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	printf("landlock_abi=%ld\n", abi);
	if (s < 0)
		printf("tcpbind=socket: %m\n");
	else if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		printf("tcpbind=%m\n");
	else
		printf("tcpbind=ok\n");
	if (s >= 0)
		close(s);
}

int main(int argc, char **argv)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[2] = {0};
	uid_t r, e, s;
	gid_t rg, eg, sg;
	struct rlimit nofile, fsize;
	int status = 0, wait_stdin = 0, sleep_s = 0, bnd = 0, env = 0;
	const char *api_sock = NULL, *save_state = NULL, *save_mem = NULL, *net[8];
	int nnet = 0;

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
		else if (!strcmp(argv[i], "--net") && i + 1 < argc && strstr(argv[i + 1], "fd=") &&
			 nnet < 8)
			net[nnet++] = argv[i + 1];
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
	struct timespec mono, cpu;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	printf("\nmono_us=%lld\ncpu_us=%lld\n",
	       (long long)mono.tv_sec * 1000000 + mono.tv_nsec / 1000,
	       (long long)cpu.tv_sec * 1000000 + cpu.tv_nsec / 1000);
	printf("pid=%d\nargv0=%s\n", (int)getpid(), argv[0]);
	for (int i = 1; i < argc; i++)
		printf("arg=%s\n", argv[i]);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	printf("kvm=%s\n", kvm >= 0 ? "opens" : "fails");
	landlock();
	if (kvm >= 0)
		close(kvm);
	if (api_sock)
		bind_socket(api_sock);
	if (save_state)
		save(save_state, "state\n");
	if (save_mem)
		save(save_mem, "memory\n");
	for (int i = 0; i < nnet; i++)
		net_fd(net[i]);
	walk("/", 0);
	proc_view();
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
