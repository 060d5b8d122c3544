/*
 * flint guest init: the /init of flint's initramfs, pid 1 in the guest.
 *
 * It mounts the pseudo file systems, tells the VMM that user space is up
 * (Firecracker's boot-timer register), prints "flint-init: ready", runs the
 * command given after "--" on the kernel command line (or a short demo), and
 * reports the command's exit status to flint's exit device. With the kernel
 * argument `flint.agent` it also starts the guest agent (`flint run`), and
 * without a command it then just waits. Built statically with no
 * dependencies but libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Firecracker's boot timer: a byte 123 written here marks "guest booted". */
#define BOOT_TIMER_GPA	 0xd0000000UL
#define BOOT_TIMER_MAGIC 123
/* flint's exit device: a 32-bit write here stops the VM with that status. */
#define EXIT_DEV_GPA 0xd0001000UL
#define PAGE	     4096UL
#define AGENT	     "/sbin/flint-agent"

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	/* write(2), not stdio: nothing may sit in a buffer when we reboot. */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static void ignore(int sig)
{
	(void)sig;
}

static void mount_fs(const char *src, const char *dir, const char *type, unsigned long flags,
		     const char *data)
{
	mkdir(dir, 0755);
	/* EBUSY: already mounted (e.g. devtmpfs by CONFIG_DEVTMPFS_MOUNT). */
	if (mount(src, dir, type, flags, data) < 0 && errno != EBUSY)
		say("flint-init: mount %s on %s: %s\n", type, dir, strerror(errno));
}

/* Points fds 0-2 at path; the kernel may have given us none at all. */
static int open_console(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY);

	if (fd < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		dup2(fd, i);
	if (fd > 2)
		close(fd);
	return 0;
}

/*
 * Maps the page at guest-physical address gpa through /dev/mem. Returns the
 * mapping or NULL when /dev/mem or the page is unavailable (another VMM,
 * STRICT_DEVMEM refusing RAM). O_SYNC makes the mapping uncached, so each
 * store reaches the VMM as an MMIO exit.
 */
static volatile uint8_t *map_phys(unsigned long gpa)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	void *p;

	if (fd < 0)
		return NULL;
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)gpa);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static void boot_timer_signal(void)
{
	volatile uint8_t *p = map_phys(BOOT_TIMER_GPA);

	if (!p)
		return;
	*p = BOOT_TIMER_MAGIC;
	munmap((void *)p, PAGE);
}

/* Under flint this does not return: the VM stops at the store. */
static void exit_device_report(int status)
{
	volatile uint8_t *p = map_phys(EXIT_DEV_GPA);

	if (!p)
		return;
	*(volatile uint32_t *)p = (uint32_t)status;
	munmap((void *)p, PAGE);
}

/*
 * The console's real tty (e.g. /dev/ttyS0): /dev/console itself cannot become
 * a controlling tty on open, and shells want one for job control and ^C.
 */
static void real_console(char *path, size_t size)
{
	char buf[128] = "";
	int fd = open("/sys/class/tty/console/active", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	char *name;

	if (fd >= 0)
		close(fd);
	snprintf(path, size, "/dev/console");
	if (n <= 0)
		return;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	/* Several consoles: the last one listed is /dev/console. */
	name = strrchr(buf, ' ');
	name = name ? name + 1 : buf;
	if (*name)
		snprintf(path, size, "/dev/%s", name);
}

/*
 * Makes init the leader of a session whose controlling tty is the console.
 * Init, not the command, leads it: when a session leader exits the kernel
 * hangs its tty up, which throws away output still queued for the UART (the
 * command's last lines).
 */
static void take_console(const char *tty)
{
	int fd = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (setsid() < 0 || ioctl(fd, TIOCSCTTY, 1) < 0)
		say("flint-init: no controlling tty %s: %s\n", tty, strerror(errno));
	close(fd);
}

/*
 * Starts argv as the console's foreground process group (so ^C reaches it
 * and shells get job control) with a clean environment.
 */
static pid_t spawn(char **argv, const sigset_t *oldmask, const char *tty)
{
	static char *const envp[] = {
	    "PATH=/bin:/sbin:/usr/bin:/usr/sbin",
	    "HOME=/",
	    "TERM=linux",
	    NULL,
	};
	pid_t pid = fork();

	if (pid != 0)
		return pid;

	if (open_console(tty) < 0)
		open_console("/dev/console");
	/* SIGTTOU is still blocked, so a background group may do this. */
	setpgid(0, 0);
	tcsetpgrp(STDIN_FILENO, getpid());
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	if (chdir("/") < 0)
		_exit(127);
	/* execvp searches the PATH of our own environment. */
	environ = (char **)envp;
	execvp(argv[0], argv);
	say("flint-init: cannot run '%.200s': %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* True if the kernel command line, before any "--", has the word `word`. */
static int cmdline_has(const char *word)
{
	char buf[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *save, *w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
		if (!strcmp(w, "--"))
			return 0;
		if (!strcmp(w, word))
			return 1;
	}
	return 0;
}

/* The value of `key=` on the kernel command line, before any "--", into
 * out; 0 if it is there. */
static int cmdline_value(const char *key, char *out, size_t len)
{
	char buf[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	size_t klen = strlen(key);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (char *save, *w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
		if (!strcmp(w, "--"))
			return -1;
		if (!strncmp(w, key, klen) && w[klen] == '=' &&
		    (size_t)snprintf(out, len, "%s", w + klen + 1) < len)
			return 0;
	}
	return -1;
}

/* mkdir, and 0 when the directory was there already. */
static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST) {
		say("flint-init: mkdir %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int mount_or_say(const char *src, const char *dir, const char *type, unsigned long flags,
			const char *data)
{
	if (mount(src, dir, type, flags, data) == 0)
		return 0;
	say("flint-init: mount %s on %s: %s\n", src ? src : type, dir, strerror(errno));
	return -1;
}

/*
 * `flint run --image` (kernel arguments flint.image=DEV, flint.scratch=DEV):
 * makes the user's image the root, writable and never written. flint's own
 * root (read-only, /dev/vda) stays what the kernel booted and where init and
 * the agent come from; the image is mounted read-only as an overlay's lower
 * layer, over an upper layer in a tmpfs or on the scratch disk. The
 * overlay gets /dev, /proc, /sys, /tmp and /run moved into it and flint's
 * root bound read-only at /.flint, then becomes / (moved over it, chroot),
 * so that the command sees the user's userland with its PATH, and its
 * /sbin/init never runs. Returns the agent's path from the new root, NULL
 * when there is no image, or "" when it could not be set up (the command
 * must not run in flint's own root instead).
 */
static const char *enter_image(void)
{
	static const char *const moved[] = {"/dev", "/proc", "/sys", "/tmp", "/run"};
	char img[128], scratch[128], to[64];
	int has_scratch;

	if (cmdline_value("flint.image", img, sizeof(img)) < 0)
		return NULL;
	has_scratch = cmdline_value("flint.scratch", scratch, sizeof(scratch)) == 0;
	/* flint's root is read-only: the mount points live in a tmpfs on
	 * /mnt, which the default upper layer shares. */
	if (mount_or_say("tmpfs", "/mnt", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0 ||
	    make_dir("/mnt/lower", 0755) < 0 || make_dir("/mnt/rw", 0755) < 0 ||
	    make_dir("/mnt/root", 0755) < 0)
		return "";
	/* A journal left to replay cannot be replayed on a read-only drive. */
	if (mount(img, "/mnt/lower", "ext4", MS_RDONLY, NULL) < 0 &&
	    mount_or_say(img, "/mnt/lower", "ext4", MS_RDONLY, "noload") < 0)
		return "";
	if (has_scratch && mount_or_say(scratch, "/mnt/rw", "ext4", 0, NULL) < 0)
		return "";
	if (make_dir("/mnt/rw/upper", 0755) < 0 || make_dir("/mnt/rw/work", 0755) < 0 ||
	    mount_or_say("overlay", "/mnt/root", "overlay", 0,
			 "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work") < 0)
		return "";
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		snprintf(to, sizeof(to), "/mnt/root%s", moved[i]);
		if (make_dir(to, !strcmp(moved[i], "/tmp") ? 01777 : 0755) < 0 ||
		    mount_or_say(moved[i], to, NULL, MS_MOVE, NULL) < 0)
			return "";
	}
	if (make_dir("/mnt/root/.flint", 0755) < 0 ||
	    mount_or_say("/", "/mnt/root/.flint", NULL, MS_BIND, NULL) < 0 ||
	    mount_or_say(NULL, "/mnt/root/.flint", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) <
		0)
		return "";
	if (chdir("/mnt/root") < 0 || mount_or_say(".", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0) {
		say("flint-init: cannot enter the image: %s\n", strerror(errno));
		return "";
	}
	return "/.flint" AGENT;
}

/*
 * Starts the guest agent in a session of its own (no controlling tty, so
 * ^C on the console never reaches it), stdin from /dev/null, its messages
 * on the console. Init reaps it like any orphan.
 */
static void start_agent(const sigset_t *oldmask, const char *path)
{
	char *const argv[] = {(char *)path, NULL};
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		say("flint-init: fork: %s\n", strerror(errno));
	if (pid != 0)
		return;
	setsid();
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	if (chdir("/") == 0)
		execv(path, argv);
	say("flint-init: cannot run %s: %s\n", path, strerror(errno));
	_exit(127);
}

/*
 * Waits (at most 2 s, in case the UART never drains) until the console has
 * sent everything: stopping or resetting the VM drops what is still queued.
 */
static void drain_console(void)
{
	struct sigaction sa = {.sa_handler = ignore}; /* no SA_RESTART */

	sigaction(SIGALRM, &sa, NULL);
	alarm(2);
	tcdrain(STDOUT_FILENO);
	alarm(0);
}

/* Reaps every exited child; returns the status of `main` if it was one. */
static int reap(pid_t main, int *main_status)
{
	int st, found = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid != main)
			continue;
		*main_status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
		found = 1;
	}
	return found;
}

/* Waits up to ms milliseconds for all other processes to be gone. */
static void reap_all(int ms)
{
	struct timespec tick = {0, 10 * 1000 * 1000};

	for (int t = 0; t < ms; t += 10) {
		pid_t pid;

		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (pid < 0 && errno == ECHILD)
			return;
		nanosleep(&tick, NULL);
	}
}

/*
 * A root file system on a disk (root=/dev/vda) is remounted read-only before
 * the VM stops, so the image is left clean: no journal to replay at the next
 * boot, and host tools (debugfs, e2fsck -n) read what the guest wrote. What
 * still runs could hold files open for writing, so it is killed first. A root
 * in memory (the initramfs: an anonymous device, major 0) is left alone.
 */
static void settle_root(void)
{
	struct stat st;

	if (stat("/", &st) < 0 || major(st.st_dev) == 0)
		return;
	kill(-1, SIGKILL);
	reap_all(1000);
	sync();
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		say("flint-init: remount / read-only: %s\n", strerror(errno));
}

/* busybox's reboot/halt/poweroff (SIGTERM, SIGUSR1, SIGUSR2) and the
 * kernel's Ctrl-Alt-Del (SIGINT): stop everything, then reset or report. */
static void shutdown_guest(int sig)
{
	if (sig == SIGINT)
		say("flint-init: Ctrl-Alt-Del, rebooting\n");
	kill(-1, SIGTERM);
	reap_all(1000);
	kill(-1, SIGKILL);
	reap_all(1000);
	settle_root();
	sync();
	drain_console();
	/* No ACPI: halt and poweroff end the VM through the exit device. */
	if (sig == SIGUSR1 || sig == SIGUSR2)
		exit_device_report(0);
	reboot(RB_AUTOBOOT);
}

int main(int argc, char **argv)
{
	static char *demo[] = {
	    "sh",
	    "-c",
	    "echo Hello from the flint guest; uname -sr; nproc",
	    NULL,
	};
	const int sigs[] = {SIGCHLD, SIGTERM, SIGUSR1, SIGUSR2, SIGINT};
	sigset_t set, oldmask;
	int status = 0, agent;
	const char *agent_path;
	char tty[160];
	pid_t child = 0;

	/* Run by mistake on a host, it would remount /dev and reboot it. */
	if (getpid() != 1) {
		say("flint-init: not pid 1; this is the guest's /init\n");
		return 1;
	}

	/* Signals are taken synchronously with sigwaitinfo; blocked signals
	 * are queued even for pid 1, which ignores unhandled ones. */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaddset(&set, sigs[i]);
		signal(sigs[i], ignore);
	}
	sigprocmask(SIG_BLOCK, &set, &oldmask);
	/* Init is a background process of its own session: keep SIGTTOU
	 * blocked so tcdrain and the child's tcsetpgrp are allowed. */
	sigaddset(&set, SIGTTOU);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, SIGTTOU);
	/* Ctrl-Alt-Del (flint's SendCtrlAltDel) as SIGINT to init, which
	 * shuts down cleanly, rather than the kernel's reset without a sync. */
	reboot(RB_DISABLE_CAD);

	mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	open_console("/dev/console");
	mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "gid=5,mode=620,ptmxmode=666");
	mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");

	real_console(tty, sizeof(tty));
	take_console(tty);

	boot_timer_signal();
	say("flint-init: ready\n");

	agent = cmdline_has("flint.agent");
	agent_path = enter_image();
	if (agent_path && !*agent_path) {
		/* No command in flint's own root in place of the user's. */
		status = 125;
		goto out;
	}
	if (agent)
		start_agent(&oldmask, agent_path ? agent_path : AGENT);
	/* The agent alone: no demo; the host ends the VM. */
	if (argc > 1 || !agent)
		child = spawn(argc > 1 ? argv + 1 : demo, &oldmask, tty);
	if (child < 0) {
		say("flint-init: fork: %s\n", strerror(errno));
		status = 127;
	}
	while (child > 0 || (agent && child == 0)) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);

		/* With no command (child 0), reap() only reaps orphans. */
		if (sig == SIGCHLD && reap(child, &status) && child > 0)
			break;
		if (sig == SIGTERM || sig == SIGUSR1 || sig == SIGUSR2 || sig == SIGINT)
			shutdown_guest(sig);
	}

out:
	settle_root();
	sync();
	drain_console();
	exit_device_report(status);
	/* Still here: not flint (QEMU ignores the store). Reset instead. */
	say("flint-init: exit status %d; no exit device, rebooting\n", status);
	drain_console();
	reboot(RB_AUTOBOOT);
	/* pid 1 must never exit: that panics the kernel. */
	for (;;)
		pause();
}
