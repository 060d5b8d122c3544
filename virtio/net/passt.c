/* passt, --net user's host end; see passt.h. */
#include "net/passt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/stream.h"

#define ARP_LEN 42u
/* The longest frame read while waiting for the ARP reply: anything passt
 * sends first is dropped, but never a length this long. */
#define PROBE_FRAME_MAX 1514u

static bool executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int passt_find(char *buf, size_t len)
{
	const char *env = getenv("FLINT_PASST");
	const char *path = getenv("PATH");
	int n;

	if (env && *env) {
		if (executable(env) && snprintf(buf, len, "%s", env) < (int)len)
			return 0;
		pr_err("--net user: FLINT_PASST=%s is not an executable file", env);
		return -ENOENT;
	}
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path, *end; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		if (end == p)
			continue;
		n = snprintf(buf, len, "%.*s/passt", (int)(end - p), p);
		if (n > 0 && (size_t)n < len && executable(buf))
			return 0;
	}
	pr_err("--net user needs passt, which is not in PATH (%s): install the Debian package "
	       "passt, or name the binary in FLINT_PASST",
	       path);
	return -ENOENT;
}

size_t passt_arp_probe(const struct passt_net *net, uint8_t *buf, size_t len)
{
	static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
	struct in_addr src, dst;
	uint8_t *a = buf + 14;

	if (len < ARP_LEN || inet_pton(AF_INET, net->addr, &src) != 1 ||
	    inet_pton(AF_INET, net->gateway, &dst) != 1)
		return 0;
	memset(buf, 0xff, 6);
	memcpy(buf + 6, mac, 6);
	buf[12] = 0x08, buf[13] = 0x06; /* ARP */
	a[0] = 0, a[1] = 1;		/* Ethernet */
	a[2] = 0x08, a[3] = 0x00;	/* IPv4 */
	a[4] = 6, a[5] = 4;
	a[6] = 0, a[7] = 1; /* request */
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, &src, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, &dst, 4);
	return ARP_LEN;
}

static bool is_arp_reply(const uint8_t *f, uint32_t len)
{
	return len >= ARP_LEN && f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 2;
}

/* Read exactly n bytes from the blocking socket fd by deadline_ns:
 * 0, -EPIPE at its end, -ETIMEDOUT, or -errno. */
static int read_by(int fd, uint8_t *p, size_t n, uint64_t deadline_ns)
{
	while (n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint64_t now = now_ns();
		ssize_t r;

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)((deadline_ns - now) / 1000000 + 1));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		r = read(fd, p, n);
		/* A peer that closed with our probe unread resets. */
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return -EPIPE;
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (r > 0) {
			p += r;
			n -= (size_t)r;
		}
	}
	return 0;
}

/* Wait for passt's ARP reply, dropping whatever it sends before it. */
static int wait_ready(int fd, uint64_t deadline_ns)
{
	static uint8_t f[PROBE_FRAME_MAX];
	uint8_t pre[STREAM_PREFIX];
	uint32_t len;
	int r;

	for (;;) {
		if ((r = read_by(fd, pre, sizeof(pre), deadline_ns)) < 0)
			return r;
		len = (uint32_t)pre[0] << 24 | (uint32_t)pre[1] << 16 | (uint32_t)pre[2] << 8 |
		      pre[3];
		if (len > sizeof(f))
			return -EPROTO;
		if ((r = read_by(fd, f, len, deadline_ns)) < 0)
			return r;
		if (is_arp_reply(f, len))
			return 0;
	}
}

/* What passt printed on its stderr (the memfd errfd), a line at a time,
 * as errors or (from one that started) warnings, without its complaints
 * that there is no syslog to write to. */
static void print_output(const char *id, int errfd, bool started)
{
	char buf[4096], *save = NULL;
	ssize_t n = pread(errfd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (!*l || !strncmp(l, "Failed to send", 14))
			continue;
		else if (started)
			pr_warn("%s: passt: %s", id, l);
		else
			pr_err("%s: passt: %s", id, l);
}

/* In the child, between fork and exec: only async-signal-safe calls, but
 * for c's hook (its caller is single-threaded). */
static void child(pid_t parent, int sock, int errfd, char *const *argv, const struct passt_child *c)
{
	sigset_t none;
	int s, e, null;

	if (!c->no_deathsig)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);
	/* A session of its own: no controlling terminal (under flint-jail
	 * passt runs as the tenant, who could otherwise have it push input
	 * into the caller's terminal with TIOCSTI), nor the signals of
	 * flint's process group. */
	if (setsid() < 0)
		setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	/* Before the descriptors move: the hook's own may be among 0-3. */
	if (c->setup) {
		if (c->setup(c->ctx) < 0)
			_exit(126);
		/* Set again: a change of ids clears it. */
		if (!c->no_deathsig &&
		    (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent))
			_exit(126);
	}
	/* Out of the way of 0-3 first, then into place (dup2 clears
	 * close-on-exec); nothing else of flint's is inherited. */
	if ((s = fcntl(sock, F_DUPFD, 10)) < 0 || (e = fcntl(errfd, F_DUPFD, 10)) < 0 ||
	    (null = open("/dev/null", O_RDONLY)) < 0)
		_exit(126);
	if (dup2(null, 0) < 0 || dup2(e, 1) < 0 || dup2(e, 2) < 0 || dup2(s, 3) < 0)
		_exit(126);
	syscall(SYS_close_range, 4u, ~0u, 0u);
	execv(argv[0], argv);
	_exit(127);
}

int passt_adopt(const char *id, int fd)
{
	int domain = 0, type = 0, fl;
	socklen_t len = sizeof(int);

	if (fcntl(fd, F_GETFD) < 0) {
		pr_err("%s: --net user,fd=%d: descriptor %d is not open", id, fd, fd);
		return -EBADF;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
		pr_err("%s: --net user,fd=%d: descriptor %d is not a Unix stream socket (passt's "
		       "end of a socket pair)",
		       id, fd, fd);
		return -ENOTSOCK;
	}
	/* A listening or unconnected socket (no peer) would fail only at the
	 * first frame ("read: Invalid argument"). */
	struct sockaddr_un peer;
	socklen_t plen = sizeof(peer);

	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0) {
		pr_err("%s: --net user,fd=%d: descriptor %d is not a connected socket (passt's end "
		       "of a socket pair)",
		       id, fd, fd);
		return -ENOTCONN;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int r = -errno;
		pr_err("%s: --net user,fd=%d: %s", id, fd, strerror(-r));
		return r;
	}
	return 0;
}

int passt_start(const char *id, const struct passt_net *net, unsigned timeout_ms, int *fd,
		pid_t *pid)
{
	return passt_start_as(id, net, timeout_ms, NULL, fd, pid);
}

int passt_start_as(const char *id, const struct passt_net *net, unsigned timeout_ms,
		   const struct passt_child *c, int *fd, pid_t *pid)
{
	static const struct passt_child plain;
	char bin[PATH_MAX], prefix[12];
	uint8_t probe[STREAM_PREFIX + ARP_LEN];
	/* The guest's queries to its DNS address go to the host's resolver
	 * (resolv.conf's first), --dns-forward. Not --dns too: passt
	 * 0.0~git20230309 (Debian 12) then takes that address for the host's
	 * resolver, and sent the guest's queries to 0.0.0.0, unanswered. */
	char *argv[] = {bin,
			"--foreground",
			"--quiet",
			"--fd",
			"3",
			"--address",
			(char *)net->addr,
			"--netmask",
			prefix,
			"--gateway",
			(char *)net->gateway,
			"--dns-forward",
			(char *)net->dns,
			NULL,
			NULL,
			NULL};
	pid_t parent = getpid();
	int sv[2] = {-1, -1}, errfd = -1, st = 0, r;
	size_t plen;

	*fd = -1;
	*pid = -1;
	plen = passt_arp_probe(net, probe + STREAM_PREFIX, ARP_LEN);
	if (!plen || !net->dns || net->prefix < 1 || net->prefix > 30) {
		pr_err("%s: passt: not an IPv4 network: %s/%u via %s", id, net->addr, net->prefix,
		       net->gateway);
		return -EINVAL;
	}
	stream_put_len(probe, (uint32_t)plen);
	/* As root, passt changes to nobody by name, which a host with no
	 * passwd entry for it (the rig's L1) cannot look up: by number. */
	if (!c)
		c = &plain;
	if (geteuid() == 0 && !c->setup) {
		argv[ARRAY_SIZE(argv) - 3] = "--runas";
		argv[ARRAY_SIZE(argv) - 2] = "65534:65534";
	}
	snprintf(prefix, sizeof(prefix), "%u", net->prefix);
	if ((r = passt_find(bin, sizeof(bin))) < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		pr_err("%s: passt: socketpair: %s", id, strerror(-r));
		return r;
	}
	if ((errfd = memfd_create("passt-stderr", MFD_CLOEXEC)) < 0) {
		r = -errno;
		pr_err("%s: passt: memfd_create: %s", id, strerror(-r));
		goto err_close;
	}
	*pid = fork();
	if (*pid == 0)
		child(parent, sv[1], errfd, argv, c);
	if (*pid < 0) {
		r = -errno;
		pr_err("%s: passt: fork: %s", id, strerror(-r));
		goto err_close;
	}
	close_fd(&sv[1]);
	/* MSG_NOSIGNAL: a passt that is gone already is an answer, not
	 * SIGPIPE. The socket is empty: the frame goes in whole. */
	if (send(sv[0], probe, STREAM_PREFIX + plen, MSG_NOSIGNAL) < 0)
		r = errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno;
	else
		r = wait_ready(sv[0], now_ns() + (uint64_t)timeout_ms * 1000000);
	if (r < 0)
		goto err_kill;
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		goto err_kill;
	}
	/* Its warnings at start ("Couldn't get any nameserver address"); what
	 * it says later (--quiet: warnings and errors) is not read. */
	print_output(id, errfd, true);
	close_fd(&errfd);
	*fd = sv[0];
	pr_debug("%s: passt %s (pid %d) ready", id, bin, (int)*pid);
	return 0;

err_kill:
	/* At its end (-EPIPE) passt has exited by itself, or is about to. */
	if (r != -EPIPE)
		kill(*pid, SIGKILL);
	while (waitpid(*pid, &st, 0) < 0 && errno == EINTR)
		;
	print_output(id, errfd, false);
	if (r == -EPIPE && WIFEXITED(st) && WEXITSTATUS(st) == 127)
		pr_err("%s: passt: cannot run %s", id, bin);
	else if (r == -EPIPE && WIFEXITED(st))
		pr_err("%s: passt exited with status %d before it was ready", id, WEXITSTATUS(st));
	else if (r == -EPIPE && WIFSIGNALED(st))
		pr_err("%s: passt was killed by signal %d before it was ready", id, WTERMSIG(st));
	else if (r == -ETIMEDOUT)
		pr_err("%s: passt did not answer within %u ms", id, timeout_ms);
	else
		pr_err("%s: passt: %s", id, r == -EPROTO ? "not a stream of frames" : strerror(-r));
	*pid = -1;
	if (r == -EPIPE)
		r = -ECONNREFUSED;
err_close:
	close_fd(&errfd);
	close_fd(&sv[0]);
	close_fd(&sv[1]);
	return r;
}
