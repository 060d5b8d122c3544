/* flint-jail: launch flint the way a multi-tenant host must, confined to a
 * directory of its own in a private mount namespace (with a /proc of its
 * own processes only, for a --restore), in cgroups, under
 * rlimits, as an unprivileged user with no capabilities. The steps run in
 * the order below; any failure undoes what the run created and exits 125. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config/vm_config.h"
#include "core/cgroupfs.h"
#include "err.h"
#include "fs.h"
#include "image/build.h"
#include "jimage.h"
#include "landlock.h"
#include "net/passt.h"
#include "opts.h"
#include "plan.h"
#include "privs.h"

#define EXIT_JAIL 125
/* PATH for the programs the jailer runs (never flint's: it gets no
 * environment). */
#define JAIL_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* How long passt may take to answer (flint's own wait, virtio/net/net.c). */
#define JAIL_PASST_TIMEOUT_MS 10000

static struct jail_opts opts;
static struct plan plan;
static struct jail_cgroups cgroups;
static struct jail_fs jfs;
static struct home home;
/* Where the jailer builds images (jimage.h): flint's cache directory as
 * the jailer was started, "" for none. */
static char image_cache[PATH_MAX];
/* The images built or found there for this jail, held (image/cache.h) as
 * long as the jailer runs: a trim by another build leaves them be until
 * they are linked into the jail, and after that. */
static int image_holds[PLAN_MAX_FILES];
static unsigned nimage_holds;
static pid_t child = -1;
/* The passts started for flint (plan.passt), -1 for none. */
static pid_t passt_pids[MAX_NETS] = {-1, -1, -1, -1, -1, -1, -1, -1};

static int set_rlimits(void)
{
	struct rlimit nofile = {opts.nofile, opts.nofile}, fsize = {opts.fsize, opts.fsize};

	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return jail_fail("set rlimit no-file", NULL, -errno);
	if (opts.has_fsize && setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		return jail_fail("set rlimit fsize", NULL, -errno);
	return 0;
}

static int daemonize(int null_fd)
{
	if (setsid() < 0)
		return jail_fail("daemonize: setsid", NULL, -errno);
	for (int fd = 0; fd < 3; fd++)
		if (dup2(null_fd, fd) < 0)
			return jail_fail("daemonize", "/dev/null", -errno);
	return 0;
}

/* The Landlock ruleset flint will run under (landlock_prepare), -1 for
 * none. */
static int landlock_fd = -1;
/* The exec file's copy in the jail, opened (O_PATH) while the root was
 * still root's: after the handover the tenant may rename anything in the
 * root, so flint is exec'd through this, never by its name. */
static int exec_fd = -1;
/* When the jailer started (CLOCK_MONOTONIC) and its CPU time then, in
 * microseconds: flint's --start-time-us and --start-time-cpu-us. */
static uint64_t start_us, start_cpu_us;

/* The last steps: drop to the user and become flint. Returns only on
 * failure; after privs_drop nothing can be undone any more, so every check
 * that can fail earlier (the exec file's type and mode, noexec) did. */
static int become_flint(bool deathsig)
{
	static char *const empty_env[] = {NULL};
	int r;

	if ((r = privs_drop(opts.uid, opts.gid)) < 0)
		return r;
	/* Set after the id change, which clears it: flint dies with the
	 * jailer that waits for it. */
	if (deathsig && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return jail_fail("set the parent-death signal", NULL, -errno);
	if ((r = landlock_enforce(landlock_fd)) < 0)
		return r;
	landlock_fd = -1;
	execveat(exec_fd, "", plan.argv, empty_env, AT_EMPTY_PATH);
	return jail_fail("exec", plan.argv[0], -errno);
}

/* Close every inherited descriptor above 2 but those p keeps, which must
 * be open, must not be directories (a way out of the
 * jail: openat through one reaches the host's files) and lose
 * close-on-exec. 0 or -errno (printed). */
static int close_inherited(const struct plan *p)
{
	unsigned from = 3, n = p->nkeep, keep[PLAN_MAX_KEEP];
	struct stat st;

	for (unsigned i = 0; i < n; i++) {
		int fd = p->keep[i].fd;
		if (fcntl(fd, F_GETFD) < 0 || fstat(fd, &st) < 0)
			return jail_failf(-EBADF, "flint arguments", NULL,
					  "%s %d: descriptor %d is not open in flint-jail: open it "
					  "for flint-jail, which passes it on",
					  p->keep[i].opt, fd, fd);
		if (S_ISDIR(st.st_mode))
			return jail_failf(-EISDIR, "flint arguments", NULL,
					  "%s %d: descriptor %d is a directory, a way out of the "
					  "jail",
					  p->keep[i].opt, fd, fd);
		if (fcntl(fd, F_SETFD, 0) < 0)
			return jail_fail("keep inherited descriptors", NULL, -errno);
		/* Sorted, for the ranges between them. */
		unsigned j = i;
		for (; j > 0 && keep[j - 1] > (unsigned)fd; j--)
			keep[j] = keep[j - 1];
		keep[j] = fd;
	}
	for (unsigned i = 0; i <= n; i++) {
		unsigned to = i < n ? keep[i] : ~0U;
		if (to > from && close_range(from, to - 1, 0) < 0)
			return jail_fail("close inherited descriptors", NULL, -errno);
		from = to + 1;
	}
	return 0;
}

/* The plan's reader: the config file or the state file, read as the
 * jail's user. */
static int read_as_user(void *ctx, const char *path, size_t max, char **text, size_t *len,
			char *err, size_t errlen)
{
	const struct jail_opts *o = ctx;

	return fs_read_as(o->uid, o->gid, path, max, text, len, err, errlen);
}

/* flint run's --image and --rootfs: a directory or tar archive is made into
 * an ext4 image in the jailer's cache, which is staged in its place; an
 * ext4 image is staged as it is. Before the jail is made: a failure leaves
 * nothing (an image built stays in the cache, as flint's own would).
 * 0 or -errno (printed). */
static int build_images(struct plan *p)
{
	const struct jimage_limits lim = {opts.image_bytes, opts.image_entries, opts.image_cache};
	char ext4[PATH_MAX], err[2 * PATH_MAX + 256];
	int r, hold;

	for (unsigned i = 0; i < p->nfiles; i++) {
		if (!p->files[i].image)
			continue;
		r = jimage_resolve(opts.uid, opts.gid, image_cache, &lim, p->files[i].src,
				   p->files[i].rootfs, ext4, sizeof(ext4), &hold, err, sizeof(err));
		if (r < 0)
			return jail_failf(r, "image", NULL, "%s", err);
		if (hold >= 0)
			image_holds[nimage_holds++] = hold;
		if (ext4[0] && (r = plan_built(p, i, ext4)) < 0)
			return jail_fail("image", ext4, r);
	}
	return 0;
}

/* Hold the descriptor numbers the plan gives flint for its passts (on
 * /dev/null, close-on-exec), right after the inherited ones are closed:
 * whatever the jailer opens later cannot take them. 0 or -errno
 * (printed). */
static int reserve_passt_fds(const struct plan *p)
{
	bool used = false;
	int null_fd;

	if (!p->npasst)
		return 0;
	if ((null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return jail_fail("start passt", "/dev/null", -errno);
	for (unsigned i = 0; i < p->npasst; i++) {
		if (p->passt[i].fd == null_fd) {
			used = true;
			continue;
		}
		if (fcntl(p->passt[i].fd, F_GETFD) >= 0 ||
		    dup3(null_fd, p->passt[i].fd, O_CLOEXEC) < 0) {
			close(null_fd);
			return jail_failf(-EBUSY, "start passt", NULL,
					  "descriptor %d for --net user is in use", p->passt[i].fd);
		}
	}
	if (!used)
		close(null_fd);
	return 0;
}

/* In passt's child, before exec: the jail's network namespace, then the
 * jail's user, every privilege dropped, as flint will be. */
static int passt_setup(void *ctx)
{
	const int *netns_fd = ctx;

	if (*netns_fd >= 0 && setns(*netns_fd, CLONE_NEWNET) < 0)
		return jail_fail("join network namespace", opts.netns, -errno);
	return privs_drop(opts.uid, opts.gid);
}

/* --net user: each interface's passt (virtio/net/passt.h, as flint starts
 * it), outside the jail, in the host's (or --netns's) network namespace
 * and mount namespace, in the jail's cgroup, as uid:gid; flint gets its
 * socket as the descriptor the plan named. passt ends with that socket,
 * when flint does, and dies with its parent (the jailer that becomes or
 * waits for flint; not with --daemonize's parent, which exits at once).
 * 0 or -errno (printed). */
static int start_passts(const struct plan *p, int netns_fd)
{
	const struct passt_net net = {.addr = VMC_USER_ADDR,
				      .prefix = VMC_USER_PREFIX,
				      .gateway = VMC_USER_GATEWAY,
				      .dns = VMC_USER_DNS};
	const struct passt_child c = {
	    .setup = passt_setup, .ctx = &netns_fd, .no_deathsig = opts.daemonize};
	int fd, r;

	for (unsigned i = 0; i < p->npasst; i++) {
		const char *id = p->passt[i].id;
		if ((r = passt_start_as(id, &net, JAIL_PASST_TIMEOUT_MS, &c, &fd, &passt_pids[i])) <
		    0)
			return jail_failf(r, "start passt", NULL,
					  "for --net user (interface %s), as uid %u gid %u: %s", id,
					  (unsigned)opts.uid, (unsigned)opts.gid,
					  r == -ENOENT ? "not found" : "see above");
		/* Not close-on-exec: flint's. */
		if (dup3(fd, p->passt[i].fd, 0) < 0) {
			r = -errno;
			close(fd);
			return jail_fail("start passt", NULL, r);
		}
		close(fd);
		fprintf(
		    stderr,
		    "flint-jail: passt (pid %d) for --net user (interface %s), as uid %u gid %u, "
		    "on flint's descriptor %d\n",
		    (int)passt_pids[i], id, (unsigned)opts.uid, (unsigned)opts.gid, p->passt[i].fd);
	}
	return 0;
}

/* A launch that failed: its passts go. */
static void stop_passts(void)
{
	for (unsigned i = 0; i < MAX_NETS; i++) {
		if (passt_pids[i] <= 0)
			continue;
		kill(passt_pids[i], SIGKILL);
		while (waitpid(passt_pids[i], NULL, 0) < 0 && errno == EINTR)
			;
		passt_pids[i] = -1;
	}
}

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

/* Fork flint off: into a new pid namespace (--new-pid-ns), or out of the
 * process group this jailer leads (--daemonize). The child reports a failure
 * before exec through a close-on-exec pipe, so the parent, still privileged,
 * can clean up; after a successful exec the parent writes the pid file
 * (made by fs_stage, written through its descriptor) and, unless
 * daemonizing, waits and exits with flint's status. */
static int spawn(int null_fd)
{
	int p[2], status;
	char byte;

	if (opts.new_pid_ns && unshare(CLONE_NEWPID) < 0)
		return jail_fail("unshare pid namespace", NULL, -errno);
	if (pipe2(p, O_CLOEXEC) < 0)
		return jail_fail("spawn", NULL, -errno);
	/* The child's CPU clock starts at 0: what the jailer spent so far is
	 * the parent's, as Firecracker's jailer reports it. */
	uint64_t cpu = process_cpu_us();
	plan_start_times(&plan, start_us, 0, cpu > start_cpu_us ? cpu - start_cpu_us : 0);
	child = fork();
	if (child < 0) {
		int r = jail_fail("spawn: fork", NULL, -errno);
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (child == 0) {
		close(p[0]);
		/* From in here: with --new-pid-ns this is pid 1 of the new
		 * namespace, which the procfs then shows (/proc/self is flint). */
		if (fs_mount_proc(&jfs) == 0 && (!opts.daemonize || daemonize(null_fd) == 0))
			become_flint(!opts.daemonize);
		byte = 1;
		ssize_t w = write(p[1], &byte, 1);
		(void)w;
		_exit(EXIT_JAIL);
	}
	close(p[1]);
	close_fd(&landlock_fd); /* the child's to enforce */
	/* passt's sockets are flint's alone: each passt ends with flint. */
	for (unsigned i = 0; i < plan.npasst; i++)
		close(plan.passt[i].fd);
	ssize_t n;
	while ((n = read(p[0], &byte, 1)) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (n != 0) {
		waitpid(child, NULL, 0);
		return -ECHILD;
	}
	jail_test_pause("pid file");
	if (fs_write_pid(&jfs, child) < 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return -EIO;
	}
	fs_keep(&jfs);
	if (opts.daemonize)
		exit(0);
	/* Only waiting is left: do it without privileges. */
	struct sigaction sa = {.sa_handler = forward};
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig == SIGHUP || sig == SIGINT || sig == SIGQUIT || sig == SIGTERM ||
		    sig == SIGUSR1 || sig == SIGUSR2)
			sigaction(sig, &sa, NULL);
	if (privs_drop(opts.uid, opts.gid) < 0) {
		kill(child, SIGKILL);
		exit(EXIT_JAIL);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			exit(EXIT_JAIL);
	exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int main(int argc, char **argv)
{
	char err[1024], dir[PATH_MAX];
	int netns_fd = -1, null_fd = -1, r;
	bool spawned;

	start_us = now_us();
	start_cpu_us = process_cpu_us();
	/* SIGCHLD ignored by a parent would have the kernel reap the jailed
	 * flint, passt and the image builds before waitpid saw them end. */
	signal(SIGCHLD, SIG_DFL);
	fs_init(&jfs); /* fs_undo may run before fs_create */
	switch (opts_parse(argc, argv, &opts, err, sizeof(err))) {
	case OPTS_EXIT_OK:
		return 0;
	case OPTS_ERROR:
		jail_failf(-EINVAL, "options", NULL, "%s", err);
		return EXIT_JAIL;
	case OPTS_RUN:
		break;
	}
	/* flint run's guest is looked for where flint would look
	 * (runner/config/home.h): $FLINT_HOME is read before the environment
	 * goes. */
	home_init(&home, getenv("FLINT_HOME"), opts.exec_file);
	if (image_cache_dir(image_cache, sizeof(image_cache)) < 0)
		image_cache[0] = '\0';
	/* passt for --net user, as flint would find it (passt.h). */
	const char *passt = getenv("FLINT_PASST");
	char passt_bin[PATH_MAX];
	snprintf(passt_bin, sizeof(passt_bin), "%s", passt ? passt : "");
	/* Nothing of the caller's reaches flint: no variable, and no
	 * descriptor but those flint's arguments name (the others closed once
	 * the plan has named them). The programs the jailer runs itself (tar,
	 * mke2fs, passt) are looked for in the system's directories only, or
	 * passt where FLINT_PASST says. */
	clearenv();
	if (setenv("PATH", JAIL_PATH, 1) < 0 ||
	    (passt_bin[0] && setenv("FLINT_PASST", passt_bin, 1) < 0)) {
		jail_fail("start", NULL, -errno);
		return EXIT_JAIL;
	}
	umask(022);
	if (geteuid() != 0) {
		jail_failf(-EPERM, "start", NULL, "flint-jail must be started as root");
		return EXIT_JAIL;
	}
	/* flint's arguments, parsed by flint's parser: its --help and
	 * --version are printed here, and nothing is launched. */
	r = plan_build(&plan, opts.exec_file, &home, read_as_user, &opts, opts.flint_argc,
		       opts.flint_argv, err, sizeof(err));
	if (r == 0 &&
	    ((r = plan_set_id(&plan, opts.id)) < 0 || (r = plan_set_start_times(&plan)) < 0))
		snprintf(err, sizeof(err), "%s", strerror(-r));
	if (r != 0) {
		if (r < 0)
			jail_failf(-EINVAL, "flint arguments", NULL, "%s", err);
		plan_free(&plan);
		return r == PLAN_PRINTED ? 0 : EXIT_JAIL;
	}
	if (close_inherited(&plan) < 0 || reserve_passt_fds(&plan) < 0 || build_images(&plan) < 0) {
		plan_free(&plan);
		return EXIT_JAIL;
	}
	if ((r = opts_jail_dir(&opts, dir, sizeof(dir))) < 0) {
		jail_fail("create jail", opts.base, r);
		goto fail;
	}
	/* flint is a child in a new pid namespace, and with --daemonize, so
	 * that the jailer returns at once (as Firecracker's, which forks
	 * twice); otherwise this process becomes flint. Either way the host
	 * finds flint's pid in <exec name>.pid. */
	spawned = opts.new_pid_ns || opts.daemonize;
	if (fs_create(&jfs, dir, opts.uid, opts.gid) < 0)
		goto fail;
	jail_test_pause("created");
	if (fs_stage(&jfs, &plan) < 0)
		goto fail;
	jail_test_pause("staged");
	if (cgroup_join(&cgroups, &opts) < 0)
		goto fail;
	/* flint makes the same check, but cannot see its cgroup from the jail. */
	if (cgroupfs_check_memory(plan.mem, err, sizeof(err)) < 0) {
		jail_failf(-ENOMEM, "cgroup memory limit", NULL, "%s", err);
		goto fail;
	}
	if (set_rlimits() < 0)
		goto fail;
	/* Opened now: neither path exists inside the jail. */
	if (opts.netns && (netns_fd = open(opts.netns, O_RDONLY | O_CLOEXEC)) < 0) {
		jail_fail("open network namespace", opts.netns, -errno);
		goto fail;
	}
	if (opts.daemonize && (null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		jail_fail("daemonize", "/dev/null", -errno);
		goto fail;
	}
	/* Outside the jail's mount namespace, where passt is; in its cgroup. */
	if (start_passts(&plan, netns_fd) < 0)
		goto fail;
	if (fs_enter(&jfs) < 0)
		goto fail;
	jail_test_pause("entered");
	if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) {
		jail_fail("join network namespace", opts.netns, -errno);
		goto fail;
	}
	close_fd(&netns_fd);
	if ((exec_fd = open(plan.argv[0], O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		jail_fail("open the exec file", plan.argv[0], -errno);
		goto fail;
	}
	/* Last before flint: the tenant's entries, then the root. */
	if (fs_handover(&jfs) < 0)
		goto fail;
	/* Made now, the root the jail's and the jailer still able to undo;
	 * enforced by the process that becomes flint, right before its exec. */
	if (landlock_prepare(&landlock_fd) < 0)
		goto fail;
	if (plan.api_sock_path[0])
		fprintf(stderr, "flint-jail: API socket at %s%s\n", fs_root_path(&jfs),
			plan.api_sock_path);
	if (plan.vsock_path[0])
		fprintf(stderr, "flint-jail: vsock socket at %s%s\n", fs_root_path(&jfs),
			plan.vsock_path);
	for (unsigned i = 0; i < plan.noutputs; i++)
		fprintf(stderr, "flint-jail: %s file at %s%s\n", plan.outputs[i].what,
			fs_root_path(&jfs), plan.outputs[i].path);
	jail_test_pause("before exec");
	if (spawned) {
		spawn(null_fd);
		goto fail;
	}
	if (fs_mount_proc(&jfs) < 0 || fs_write_pid(&jfs, getpid()) < 0)
		goto fail;
	close_fd(&null_fd);
	plan_start_times(&plan, start_us, start_cpu_us, 0);
	become_flint(false);
	/* Once the ids changed, nothing can be undone any more. */
	if (geteuid() != 0) {
		fprintf(stderr, "flint-jail: the jail %s is left behind\n", dir);
		return EXIT_JAIL;
	}
fail:
	close_fd(&exec_fd);
	close_fd(&netns_fd);
	close_fd(&null_fd);
	close_fd(&landlock_fd);
	stop_passts();
	fs_undo(&jfs);
	cgroup_undo(&cgroups);
	plan_free(&plan);
	return EXIT_JAIL;
}
