/* racer: the jail's user racing flint-jail, for tests/jail/races.sh (issue
 * 10). It does what a process of the jail's uid on the host could do while
 * a jail is being made: swap names in every jail under BASE/NAME/x/root.
 *
 *   racer OPTS drive ATTACKS PATTERN -- JAILER ARGS...
 *     Runs JAILER, the test build (make $(BUILD)/jail/flint-jail-pause),
 *     which prints "flint-jail: test pause: STEP" to the stderr it shares
 *     with this program and stops itself at each step. At each stop whose
 *     STEP matches the shell PATTERN (fnmatch), a child dropped to UID:GID
 *     runs ATTACKS once; then the jailer continues. Prints one
 *     "racer: STEP: ATTACK PATH: result" line per attempt and
 *     "racer: matched N pauses" at the end; exits with the jailer's status
 *     (128+N after signal N).
 *   racer OPTS race ATTACKS SECONDS
 *     Drops to UID:GID and runs ATTACKS over and over, as fast as it can,
 *     for SECONDS or until SIGTERM; prints how many of each landed.
 *
 * OPTS:
 *   -u UID -g GID  the jail's user
 *   -b DIR         the jails' base directory (--chroot-base-dir)
 *   -e NAME        the exec file's name
 *   -f FILE        a host file root owns: what swapped names point to
 *   -d DIR         a host directory: what planted directories point to
 *   -v DIR         a host directory holding kvm, urandom and net/tun
 *   -j PATH        a staged file as the jail sees it (/shared.img): what
 *                  swapped device nodes point to (the old jailer chowned
 *                  them by path from inside the jail)
 *   -s FILE        a staged file's source, in a directory the user owns
 *   -l FILE        (drive) the file the jailer's stderr goes to
 *
 * ATTACKS, comma-separated:
 *   swap    every entry of the root, subdirectories first, exchanged
 *           (renameat2 RENAME_EXCHANGE) with a symlink to FILE (entries
 *           in dev/: to the -j path)
 *   plant   run, run/v and tmp made symlinks to -d DIR: planted where
 *           missing, exchanged where present
 *   dev     dev made a symlink to -v DIR, planted or exchanged
 *   pid     the staged -j file renamed to NAME.pid
 *   source  -s FILE exchanged with a symlink to FILE (race: back and forth)
 *   exec    in jails whose id starts with "x", the exec file renamed
 *           away after the handover: the jailer must exec it all the same
 *           (through the descriptor it opened before)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NAMES 128

enum { SWAP = 1, PLANT = 2, DEV = 4, PID = 8, SOURCE = 16, EXEC = 32 };
#define NATTACKS 6
static const char *const attack_names[NATTACKS] = {"swap", "plant", "dev", "pid", "source", "exec"};

static uid_t uid;
static gid_t gid;
static const char *base, *exec_name, *host_file, *host_dir, *host_devs, *jail_file, *source,
    *log_file;
static const char *step = "race";      /* drive: the pause being attacked */
static bool logging;		       /* drive: one line per attempt */
static unsigned long landed[NATTACKS]; /* race: attacks that succeeded, per kind */
static unsigned counter;
static volatile sig_atomic_t stop;

static void note(int kind, const char *what, int err)
{
	if (!err)
		landed[kind]++;
	if (logging)
		fprintf(stderr, "racer: %s: %s %s: %s\n", step, attack_names[kind], what,
			err ? strerror(err) : "done");
}

/* Replace `name` in dirfd by a symlink to target: exchanged with a new
 * symlink where the name exists, planted where it does not. 0 or errno. */
static int swap_in(int dirfd, const char *name, const char *target, bool plant)
{
	char tmp[64];
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (!plant || errno != ENOENT)
			return errno;
		return symlinkat(target, dirfd, name) < 0 ? errno : 0;
	}
	if (S_ISLNK(st.st_mode))
		return EALREADY; /* ours already */
	snprintf(tmp, sizeof(tmp), ".racer-%d-%u", (int)getpid(), counter++);
	if (symlinkat(target, dirfd, tmp) < 0)
		return errno;
	if (renameat2(dirfd, tmp, dirfd, name, RENAME_EXCHANGE) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return e;
	}
	return 0;
}

/* swap: every entry below dirfd (rel is its path in the root), the
 * subdirectories' entries before the subdirectories. */
static void swap_all(int dirfd, const char *rel, int depth)
{
	char names[MAX_NAMES][256], what[512];
	unsigned n = 0;
	int dup_fd = dup(dirfd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return;
	}
	while ((e = readdir(d)) && n < MAX_NAMES)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strncmp(e->d_name, ".racer-", 7))
			snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	closedir(d);
	for (unsigned i = 0; i < n; i++) {
		struct stat st;
		if (snprintf(what, sizeof(what), "%s%s%s", rel, *rel ? "/" : "", names[i]) >=
		    (int)sizeof(what))
			continue;
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISLNK(st.st_mode))
			continue;
		if (S_ISDIR(st.st_mode) && depth < 4) {
			int sub = openat(dirfd, names[i],
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				swap_all(sub, what, depth + 1);
				close(sub);
			}
		}
		bool in_dev = !strncmp(rel, "dev", 3) && (rel[3] == '\0' || rel[3] == '/');
		note(0, what, swap_in(dirfd, names[i], in_dev ? jail_file : host_file, false));
	}
}

static void plant(int root, unsigned attacks)
{
	static const struct {
		const char *dir, *name;
		bool devs;
	} plants[] = {
	    {NULL, "run", false}, {"run", "v", false}, {NULL, "tmp", false}, {NULL, "dev", true}};

	for (size_t i = 0; i < sizeof(plants) / sizeof(plants[0]); i++) {
		if (!(attacks & (plants[i].devs ? DEV : PLANT)))
			continue;
		char what[64];
		int dirfd = plants[i].dir ? openat(root, plants[i].dir,
						   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
					  : root;
		snprintf(what, sizeof(what), "%s%s%s", plants[i].dir ? plants[i].dir : "",
			 plants[i].dir ? "/" : "", plants[i].name);
		int kind = plants[i].devs ? 2 : 1;
		if (dirfd < 0) {
			note(kind, what, errno);
			continue;
		}
		note(kind, what,
		     swap_in(dirfd, plants[i].name, plants[i].devs ? host_devs : host_dir, true));
		if (dirfd != root)
			close(dirfd);
	}
}

static void pid_rename(int root)
{
	char pid_name[300];
	const char *staged = strrchr(jail_file, '/') ? strrchr(jail_file, '/') + 1 : jail_file;

	snprintf(pid_name, sizeof(pid_name), "%s.pid", exec_name);
	note(3, pid_name, renameat(root, staged, root, pid_name) < 0 ? errno : 0);
}

static void exec_rename(int root, const char *id)
{
	char gone[300];

	if (id[0] != 'x')
		return;
	snprintf(gone, sizeof(gone), "%s.gone", exec_name);
	note(5, exec_name, renameat(root, exec_name, root, gone) < 0 ? errno : 0);
}

/* source: in drive mode, make it a symlink to host_file (once); in race
 * mode, swap it with the symlink back and forth. */
static void source_swap(bool toggle)
{
	char dir[2048], tmp[4096];
	const char *slash = strrchr(source, '/');
	struct stat st;

	if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - source), source) >= (int)sizeof(dir) ||
	    snprintf(tmp, sizeof(tmp), "%s/.racer-src", dir) >= (int)sizeof(tmp))
		return;
	if (lstat(tmp, &st) < 0 && symlink(host_file, tmp) < 0) {
		note(4, source, errno);
		return;
	}
	if (!toggle && lstat(source, &st) == 0 && S_ISLNK(st.st_mode))
		return;
	note(4, source,
	     renameat2(AT_FDCWD, tmp, AT_FDCWD, source, RENAME_EXCHANGE) < 0 ? errno : 0);
}

/* Every attack in `attacks` once, on every jail under base. */
static void attack(unsigned attacks, bool race)
{
	char dir[4096];
	DIR *d;
	struct dirent *e;

	if (attacks & SOURCE)
		source_swap(race);
	snprintf(dir, sizeof(dir), "%s/%s", base, exec_name);
	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		char path[8192];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/root", dir, e->d_name);
		int root = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (root < 0)
			continue;
		if (attacks & (PLANT | DEV))
			plant(root, attacks);
		if (attacks & PID)
			pid_rename(root);
		if (attacks & SWAP)
			swap_all(root, "", 0);
		if (attacks & EXEC)
			exec_rename(root, e->d_name);
		close(root);
	}
	closedir(d);
}

/* UID:GID, keeping CAP_DAC_READ_SEARCH alone: flint-jail's <id> is root's
 * and 0700, and what a process of the jail's uid has past it is a running
 * flint's /proc/PID/root, which this stands in for (from the handover on,
 * a little earlier than flint's exec makes it reachable). It lets the
 * racer read and search, never write, so nothing of root's it may rename
 * or plant in. */
static void become_user(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[2] = {
	    {.effective = 1u << CAP_DAC_READ_SEARCH, .permitted = 1u << CAP_DAC_READ_SEARCH}};

	if (prctl(PR_SET_KEEPCAPS, 1) < 0 || setgroups(0, NULL) < 0 ||
	    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0 ||
	    syscall(SYS_capset, &h, c) < 0) {
		perror("racer: drop to the jail's user");
		exit(2);
	}
}

static unsigned parse_attacks(const char *s)
{
	unsigned set = 0;
	char *copy = strdup(s), *save = NULL;

	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		size_t i = 0;
		while (i < NATTACKS && strcmp(w, attack_names[i]))
			i++;
		if (i == NATTACKS) {
			fprintf(stderr, "racer: unknown attack %s\n", w);
			exit(2);
		}
		set |= 1u << i;
	}
	free(copy);
	return set;
}

/* The step of the last "flint-jail: test pause: STEP" line in log_file. */
static void last_step(char *out, size_t len)
{
	static const char tag[] = "flint-jail: test pause: ";
	static char text[1 << 20];
	FILE *f = fopen(log_file, "r");
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	char *p = NULL;

	if (f)
		fclose(f);
	text[n] = '\0';
	for (char *q = text; (q = strstr(q, tag)); q += sizeof(tag) - 1)
		p = q + sizeof(tag) - 1;
	snprintf(out, len, "%.*s", p ? (int)strcspn(p, "\n") : 0, p ? p : "");
}

static int drive(unsigned attacks, const char *pattern, char **argv)
{
	char now[4096];
	unsigned matched = 0;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		perror("racer: exec the jailer");
		_exit(127);
	}
	for (;;) {
		if (waitpid(pid, &status, WUNTRACED) < 0) {
			perror("racer: waitpid");
			return 2;
		}
		if (!WIFSTOPPED(status))
			break;
		last_step(now, sizeof(now));
		if (!fnmatch(pattern, now, 0)) {
			matched++;
			pid_t c = fork();
			if (c == 0) {
				become_user();
				step = now;
				logging = true;
				attack(attacks, false);
				fflush(stderr);
				_exit(0);
			}
			waitpid(c, NULL, 0);
		}
		kill(pid, SIGCONT);
	}
	fprintf(stderr, "racer: matched %u pauses\n", matched);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int race(unsigned attacks, double seconds)
{
	struct timespec t0, t;
	unsigned long passes = 0;

	become_user();
	signal(SIGTERM, on_term);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		attack(attacks, true);
		passes++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (!stop && (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
	fprintf(stderr, "racer: %lu passes; landed:", passes);
	for (int i = 0; i < NATTACKS; i++)
		fprintf(stderr, " %s %lu", attack_names[i], landed[i]);
	fprintf(stderr, "\n");
	return 0;
}

int main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "+u:g:b:e:f:d:v:j:s:l:")) != -1) {
		switch (c) {
		case 'u':
			uid = atoi(optarg);
			break;
		case 'g':
			gid = atoi(optarg);
			break;
		case 'b':
			base = optarg;
			break;
		case 'e':
			exec_name = optarg;
			break;
		case 'f':
			host_file = optarg;
			break;
		case 'd':
			host_dir = optarg;
			break;
		case 'v':
			host_devs = optarg;
			break;
		case 'j':
			jail_file = optarg;
			break;
		case 's':
			source = optarg;
			break;
		case 'l':
			log_file = optarg;
			break;
		default:
			return 2;
		}
	}
	argv += optind;
	argc -= optind;
	if (!uid || !gid || !base || !exec_name || !host_file || !host_dir || !host_devs ||
	    !jail_file || !source || argc < 3) {
		fprintf(stderr, "racer: see the comment at the top of tests/jail/racer.c\n");
		return 2;
	}
	unsigned attacks = parse_attacks(argv[1]);
	if (!strcmp(argv[0], "drive") && argc >= 5 && !strcmp(argv[3], "--") && log_file)
		return drive(attacks, argv[2], argv + 4);
	if (!strcmp(argv[0], "race"))
		return race(attacks, atof(argv[2]));
	fprintf(stderr, "racer: expected drive or race\n");
	return 2;
}
