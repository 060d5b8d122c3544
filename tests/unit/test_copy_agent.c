/* --copy-in and --copy-out end to end on the host: the copy helper
 * (runner/cmd/copy.c) against the real agent's connection server
 * (rootfs/agent/agent.c, built into this file) behind a stand-in vsock
 * device's socket (the CONNECT line, "OK"); and --user through the agent. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/proto.h"
#include "cmd/copy.h"
#include "cmd/spool.h"

int copy_agent_main(void);
#define main	 copy_agent_main
#define close_fd agent_close_fd
#include "agent/agent.c"
#undef main
#undef close_fd

static char dir[64], uds[108];
static int lfd = -1;
static pthread_t dev;
/* The guest's agent turned hostile: each connection gets a byte of tar
 * stream every 100 ms, and its own stream is read a byte at a time as
 * often, so that the copy's idle limit never passes. */
static bool trickle;

static void trickling_agent(int fd)
{
	uint8_t frm[AGENT_HDR_SIZE + 1], c;
	struct agent_outbuf o = {.buf = frm, .cap = sizeof(frm)};

	if (agent_out_frame(&o, AGENT_TAR, "a", 1) < 0)
		return;
	for (;;) {
		if (recv(fd, &c, 1, MSG_DONTWAIT) == 0 ||
		    send(fd, frm, o.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			return;
		usleep(100000);
	}
}

/* The stand-in vsock device: each connection's CONNECT line answered with
 * OK, then served by the agent's code in a child process. */
static void *device(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		char c;

		if (fd < 0)
			return NULL;
		while (read(fd, &c, 1) == 1 && c != '\n')
			;
		if (write(fd, "OK 1073741824\n", 14) != 14) {
			close(fd);
			continue;
		}
		if (fork() == 0) {
			signal(SIGCHLD, SIG_DFL); /* the command's exit is waited for */
			if (trickle)
				trickling_agent(fd);
			else
				serve(fd);
			_exit(0);
		}
		close(fd);
	}
}

static void setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_IGN); /* the servers reap themselves */
	snprintf(dir, sizeof(dir), "/tmp/flint-unit-cpa-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(uds, sizeof(uds), "%s/vsock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uds);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		  listen(lfd, 8) == 0);
	cr_assert_eq(pthread_create(&dev, NULL, device, NULL), 0);
}

static void teardown(void)
{
	char cmd[128];

	shutdown(lfd, SHUT_RDWR);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return;
}

static const char *at(const char *rel)
{
	static char p[16][256];
	static int i;

	i = (i + 1) % 16;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, rel);
	return p[i];
}

static void put(const char *rel, const char *text, mode_t mode)
{
	int fd = open(at(rel), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_eq(chmod(at(rel), mode), 0);
}

static char *text(const char *rel)
{
	static char buf[256];
	int fd = open(at(rel), O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return n < 0 ? NULL : buf;
}

/* Asks the helper for one direction; returns its failures. */
static int copies(struct copier *c, bool out)
{
	struct pollfd pf = {copy_fd(c), POLLIN, 0};
	int r;

	cr_assert_eq(copy_request(c, out), 0);
	do
		cr_assert_eq(poll(&pf, 1, 15000), 1, "the helper did not answer");
	while ((r = copy_result(c)) == -EAGAIN);
	return r;
}

/* The helper's messages go to a memfd. */
static int errfd(void)
{
	int fd = memfd_create("err", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	return fd;
}

static char *slurp(int fd)
{
	static char buf[4096];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

TestSuite(copy_agent, .init = setup, .fini = teardown, .timeout = 30);

Test(copy_agent, in_then_out_through_the_agent)
{
	struct copier *c;
	struct stat st;
	int e = errfd();

	cr_assert_eq(mkdir(at("src"), 0755), 0);
	cr_assert_eq(mkdir(at("src/empty"), 0700), 0);
	cr_assert_eq(chmod(at("src/empty"), 0700), 0);
	put("src/tool", "#!/bin/sh\necho hi\n", 0750);
	cr_assert_eq(symlink("tool", at("src/alias")), 0);
	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	/* "guest" stands for the guest's file system: the agent here is a
	 * process on the host. */
	char gin[200], gout[200];
	snprintf(gin, sizeof(gin), "%s", at("guest/job"));
	snprintf(gout, sizeof(gout), "%s", at("guest/job/tool"));
	struct copy_item in[] = {{.src = at("src"), .dst = gin}};
	char hostout[200];
	snprintf(hostout, sizeof(hostout), "%s", at("results/"));
	struct copy_item out[] = {{.src = gout, .dst = hostout}, {.src = gin, .dst = at("whole")}};

	cr_assert_eq(copy_start(&c, in, 1, out, 2, uds, e, true, NULL), 0);
	cr_assert_eq(copy_count(c, false), 1);
	cr_assert_eq(copy_count(c, true), 2);
	cr_assert_eq(copies(c, false), 0, "%s", slurp(e));
	cr_assert_str_eq(text("guest/job/tool"), "#!/bin/sh\necho hi\n");
	cr_assert_eq(lstat(at("guest/job/empty"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_eq(lstat(at("guest/job/tool"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750);
	cr_assert_eq(lstat(at("guest/job/alias"), &st), 0);
	cr_assert(S_ISLNK(st.st_mode));
	/* "The command" changes a file; the copy-outs bring it back. */
	put("guest/job/tool", "changed\n", 0755);
	cr_assert_eq(copies(c, true), 0, "%s", slurp(e));
	cr_assert_str_eq(text("results/tool"), "changed\n");
	cr_assert_str_eq(text("whole/tool"), "changed\n");
	cr_assert_eq(lstat(at("whole/empty"), &st), 0);
	copy_stop(c);
	close(e);
}

Test(copy_agent, failures_are_counted_and_named)
{
	struct copier *c;
	int e = errfd();
	char missing[200], bad[200];

	snprintf(missing, sizeof(missing), "%s", at("guest/nothing"));
	/* A file where the copy-in wants a directory: the agent refuses. */
	put("afile", "x\n", 0644);
	cr_assert_eq(mkdir(at("src"), 0755), 0);
	snprintf(bad, sizeof(bad), "%s/", at("afile"));
	struct copy_item in[] = {{.src = at("src"), .dst = bad},
				 {.src = at("src"), .dst = at("never")}};
	struct copy_item out[] = {{.src = missing, .dst = at("res")},
				  {.src = missing, .dst = at("res2")}};

	cr_assert_eq(copy_start(&c, in, 2, out, 2, uds, e, true, NULL), 0);
	/* The copy-ins stop at the first failure; every copy-out is tried. */
	cr_assert_eq(copies(c, false), 1);
	cr_assert_null(text("never"));
	cr_assert_eq(copies(c, true), 2);
	char *msg = slurp(e);
	cr_assert(strstr(msg, "--copy-in "), "%s", msg);
	cr_assert(strstr(msg, "not a directory"), "%s", msg);
	cr_assert(strstr(msg, "--copy-out "), "%s", msg);
	cr_assert(strstr(msg, "No such file or directory"), "%s", msg);
	copy_stop(c);
	close(e);
}

/* Without ahead (a run that waits for its go byte), the tree is read when
 * the copy-ins are asked for: a change made after copy_start arrives. */
Test(copy_agent, without_ahead_the_tree_is_read_when_asked_for)
{
	struct copier *c;
	int e = errfd();
	char gin[200];

	cr_assert_eq(mkdir(at("src"), 0755), 0);
	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	put("src/f", "before\n", 0644);
	snprintf(gin, sizeof(gin), "%s", at("guest/w"));
	struct copy_item in[] = {{.src = at("src"), .dst = gin}};

	cr_assert_eq(copy_start(&c, in, 1, NULL, 0, uds, e, false, NULL), 0);
	usleep(100000);
	put("src/f", "after\n", 0644);
	cr_assert_eq(copies(c, false), 0, "%s", slurp(e));
	cr_assert_str_eq(text("guest/w/f"), "after\n");
	copy_stop(c);
	close(e);
}

/* The archiver walks the tree changing directories as it goes, and here
 * waits in src/a/b for room in its ring (the file there is larger): a
 * socket path relative to where flint started still reaches the agent. */
Test(copy_agent, a_relative_socket_path_with_the_copy_ins_read_ahead)
{
	struct copier *c;
	int e = errfd();
	char gin[200], gin2[200], rel[64];

	cr_assert_eq(mkdir(at("src"), 0755), 0);
	cr_assert_eq(mkdir(at("src/a"), 0755), 0);
	cr_assert_eq(mkdir(at("src/a/b"), 0755), 0);
	for (int i = 0; i < 50; i++) {
		char name[32];
		snprintf(name, sizeof(name), "src/a/b/f%d", i);
		put(name, "data\n", 0644);
	}
	int fd = open(at("src/a/b/big"), O_WRONLY | O_CREAT, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, SPOOL_RING_SIZE + (1 << 20)), 0);
	close(fd);
	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	snprintf(gin, sizeof(gin), "%s", at("guest/w"));
	snprintf(gin2, sizeof(gin2), "%s", at("guest/x"));
	struct copy_item in[] = {{.src = "src", .dst = gin}, {.src = "src/a", .dst = gin2}};

	cr_assert_eq(chdir(dir), 0);
	snprintf(rel, sizeof(rel), "%s", strrchr(uds, '/') + 1);
	cr_assert_eq(copy_start(&c, in, 2, NULL, 0, rel, e, true, NULL), 0);
	int r = copies(c, false);
	cr_assert_eq(chdir("/"), 0);
	cr_assert_eq(r, 0, "%s", slurp(e));
	cr_assert_str_eq(text("guest/w/a/b/f49"), "data\n");
	cr_assert_str_eq(text("guest/x/b/f0"), "data\n");
	struct stat st;
	cr_assert_eq(stat(at("guest/w/a/b/big"), &st), 0);
	cr_assert_eq(st.st_size, SPOOL_RING_SIZE + (1 << 20));
	copy_stop(c);
	close(e);
}

Test(copy_agent, missing_host_source_refused_before_anything)
{
	struct copier *c = (struct copier *)1;
	int e = errfd();
	struct copy_item in[] = {{.src = at("absent"), .dst = "/w"}};

	cr_assert_eq(copy_start(&c, in, 1, NULL, 0, uds, e, true, NULL), -ENOENT);
	cr_assert_null(c);
	cr_assert(strstr(slurp(e), "--copy-in"), "%s", slurp(e));
	close(e);
}

/* A copy-in that fails on this host names the host's own cause, not
 * what the agent says of the stream's early end ("the stream did not
 * end", "nothing was sent"): a FIFO as the source, and a file flint may
 * not read (as nobody, in a child, when the test runs as root). */
static int copy_in_fails(const char *src, const char *why, const char *why2, int e)
{
	struct copier *c;
	struct copy_item in[] = {{.src = src, .dst = at("guest/w")}};
	struct pollfd pf;
	int r;

	if (copy_start(&c, in, 1, NULL, 0, uds, e, false, NULL) < 0 || copy_request(c, false) < 0)
		return 2;
	pf = (struct pollfd){copy_fd(c), POLLIN, 0};
	do
		if (poll(&pf, 1, 15000) != 1)
			return 3;
	while ((r = copy_result(c)) == -EAGAIN);
	copy_stop(c);
	return r == 1 && strstr(slurp(e), why) && (!why2 || strstr(slurp(e), why2)) ? 0 : 1;
}

Test(copy_agent, a_copy_in_failing_here_names_the_host_cause)
{
	int e = errfd(), p[2];
	unsigned char res = 9;

	cr_assert_eq(mkdir(at("guest"), 0777), 0);
	cr_assert_eq(mkfifo(at("fifo"), 0644), 0);
	cr_assert_eq(copy_in_fails(at("fifo"), "fifo: not a file, directory or symlink", NULL, e),
		     0, "%s", slurp(e));
	close(e);
	e = errfd();

	cr_assert_eq(mkdir(at("src"), 0755), 0);
	put("src/a", "a\n", 0644);
	put("src/secret", "s\n", 0);
	if (geteuid() == 0) /* for nobody to reach src and the socket */
		cr_assert(chmod(dir, 0755) == 0 && chmod(uds, 0777) == 0);
	/* The child's verdict comes through a pipe: SIGCHLD is ignored here
	 * (the stand-in agents reap themselves), so it cannot be waited for. */
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		res = 4;
		if (geteuid() != 0 ||
		    (setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0))
			res = (unsigned char)copy_in_fails(at("src"),
							   "src/secret: ", "Permission denied", e);
		_exit(write(p[1], &res, 1) == 1 ? 0 : 1);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], &res, 1), 1);
	close(p[0]);
	cr_assert_eq(res, 0, "verdict %u: %s", res, slurp(e));
	close(e);
}

Test(copy_agent, nothing_answers)
{
	struct copier *c;
	int e = errfd();
	char nowhere[200];

	snprintf(nowhere, sizeof(nowhere), "%s", at("no-socket"));
	cr_assert_eq(mkdir(at("src"), 0755), 0);
	struct copy_item in[] = {{.src = at("src"), .dst = "/w"}};

	cr_assert_eq(copy_start(&c, in, 1, NULL, 0, nowhere, e, true, NULL), 0);
	cr_assert_eq(copies(c, false), 1);
	cr_assert(strstr(slurp(e), "cannot reach the guest agent"), "%s", slurp(e));
	copy_stop(c);
	close(e);
}

/* ---- copy_bounds: what a hostile guest cannot do ---- */

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A guest that keeps each copy alive with a byte now and then is cut off
 * at the phase's deadline; the copy-outs after it fail untried. */
Test(copy_agent, a_trickling_copy_out_ends_at_the_copy_timeout)
{
	struct copy_bounds b = {.timeout_ms = 1000};
	struct copy_item out[] = {{.src = "/job/out", .dst = at("res")},
				  {.src = "/job/log", .dst = at("log")}};
	struct copier *c;
	int e = errfd();
	uint64_t t0;

	trickle = true;
	cr_assert_eq(copy_start(&c, NULL, 0, out, 2, uds, e, true, &b), 0);
	t0 = ms_now();
	cr_assert_eq(copies(c, true), 2, "%s", slurp(e));
	cr_assert_lt(ms_now() - t0, 3000);
	char *msg = slurp(e);
	cr_assert(strstr(msg, "--copy-out /job/out:"), "%s", msg);
	cr_assert(strstr(msg, "not done within --copy-timeout 1 s"), "%s", msg);
	cr_assert(strstr(msg, "not begun within --copy-timeout 1 s"), "%s", msg);
	copy_stop(c);
	close(e);
}

/* The same for a copy-in the guest takes in a byte at a time: the helper,
 * held up sending, is cut off too, and the next copy-in is not tried. */
Test(copy_agent, a_copy_in_read_slowly_ends_at_the_copy_timeout)
{
	struct copy_bounds b = {.timeout_ms = 1000};
	struct copier *c;
	int e = errfd(), fd;
	uint64_t t0;

	cr_assert_eq(mkdir(at("src"), 0755), 0);
	fd = open(at("src/big"), O_WRONLY | O_CREAT, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 16 << 20), 0);
	close(fd);
	struct copy_item in[] = {{.src = at("src"), .dst = "/job"},
				 {.src = at("src"), .dst = "/w2"}};

	trickle = true;
	cr_assert_eq(copy_start(&c, in, 2, NULL, 0, uds, e, true, &b), 0);
	t0 = ms_now();
	cr_assert_eq(copies(c, false), 1, "%s", slurp(e));
	cr_assert_lt(ms_now() - t0, 3000);
	cr_assert(strstr(slurp(e), "not done within --copy-timeout 1 s"), "%s", slurp(e));
	copy_stop(c);
	close(e);
}

static void put_size(const char *rel, off_t size)
{
	int fd = open(at(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char buf[4096];

	memset(buf, 'x', sizeof(buf));
	cr_assert_geq(fd, 0);
	for (off_t n = 0; n < size; n += sizeof(buf))
		cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
}

/* The copy-outs together write at most the limit's file data: the one
 * that would pass it fails naming it, what came before stays. */
Test(copy_agent, copy_outs_stop_at_the_limit)
{
	struct copy_bounds b = {.out_limit = 64 << 10};
	struct copier *c;
	struct stat st;
	int e = errfd();
	char ga[200], gb[200];

	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	put_size("guest/a", 40 << 10);
	put_size("guest/b", 40 << 10);
	snprintf(ga, sizeof(ga), "%s", at("guest/a"));
	snprintf(gb, sizeof(gb), "%s", at("guest/b"));
	struct copy_item out[] = {{.src = ga, .dst = at("ra")}, {.src = gb, .dst = at("rb")}};

	cr_assert_eq(copy_start(&c, NULL, 0, out, 2, uds, e, true, &b), 0);
	cr_assert_eq(copies(c, true), 1, "%s", slurp(e));
	char *msg = slurp(e);
	cr_assert(strstr(msg, "--copy-out ") && strstr(msg, "/guest/b:"), "%s", msg);
	cr_assert(strstr(msg, "more file data than --copy-out-limit 64K allows"), "%s", msg);
	cr_assert_eq(stat(at("ra"), &st), 0);
	cr_assert_eq(st.st_size, 40 << 10);
	copy_stop(c);
	close(e);
}

/* ---- --user ---- */

Test(copy_agent, user_runs_the_command_as_uid_and_gid)
{
	char *argv[] = {"sh", "-c", "echo $(id -u) $(id -g) $(id -G) $HOME"};
	struct agent_request req = {
	    .flags = AGENT_REQ_USER, .argc = 3, .argv = argv, .uid = 4242, .gid = 4343, .cwd = "/"};
	uint8_t frm[512], buf[512];
	struct agent_reader rd;
	char err[128], out[256] = "";
	int sv[2];
	pid_t pid;
	long n;

	cr_assert_eq(geteuid(), 0, "needs root to change users");
	n = agent_request_encode(&req, frm, sizeof(frm), err, sizeof(err));
	cr_assert_gt(n, 0, "%s", err);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	if (pid == 0) {
		signal(SIGCHLD, SIG_DFL);
		close(sv[0]);
		serve(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	cr_assert_eq(write(sv[0], frm, (size_t)n), n);
	agent_reader_init(&rd, buf, sizeof(buf) - 1);
	for (;;) {
		cr_assert_eq(agent_read_frame(&rd, sv[0]), 1);
		if (rd.f.type == AGENT_STDOUT) {
			buf[rd.f.len] = '\0';
			strncat(out, (char *)buf, sizeof(out) - strlen(out) - 1);
			continue;
		}
		cr_assert_eq(rd.f.type, AGENT_EXIT);
		break;
	}
	/* No /etc/passwd entry for 4242 on this host: HOME is "/". */
	cr_assert_str_eq(out, "4242 4343 4343 /\n");
	close(sv[0]);
}
