/* copy_session (runner/cmd/copy.c): one copy over an agent connection the
 * caller opened itself, as bench/run/runbench.c does over AF_VSOCK, here a
 * socket pair whose other end the real agent's connection server
 * (rootfs/agent/agent.c, built into this file) serves in a child process:
 * a tree in, the same tree out, and the agent's refusal as the message. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/proto.h"
#include "cmd/copy.h"
#include "tmpdir.h"

int copy_session_agent_main(void);
#define main	 copy_session_agent_main
#define close_fd agent_close_fd
#include "agent/agent.c"
#undef main
#undef close_fd

static char dir[160];

static void setup(void)
{
	static char lock[192];

	signal(SIGPIPE, SIG_IGN);
	cr_assert_lt((size_t)snprintf(dir, sizeof(dir), "%s/flint-unit-cps-XXXXXX", test_tmpdir()),
		     sizeof(dir), "$TMPDIR too long");
	cr_assert_not_null(mkdtemp(dir));
	/* The agent's sole-writer lock, the test's own. */
	snprintf(lock, sizeof(lock), "%s/agent.lock", dir);
	sole_lock_path = lock;
}

static void teardown(void)
{
	char cmd[192];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return;
}

static const char *at(const char *rel)
{
	static char p[8][256];
	static int i;

	i = (i + 1) % 8;
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

/* One copy_session against the agent serving the other end of a socket
 * pair in a child; the socket stays the caller's. Returns its result. */
static int session(bool out, const struct copy_item *it, char *msg)
{
	int sv[2], r, st;
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		serve(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	msg[0] = '\0';
	r = copy_session(sv[0], out, it, msg);
	/* Left open for the caller: still a socket. */
	cr_assert_geq(fcntl(sv[0], F_GETFD), 0);
	close(sv[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return r;
}

TestSuite(copy_session, .init = setup, .fini = teardown, .timeout = 30);

Test(copy_session, a_tree_in_and_back_out)
{
	char msg[COPY_MSG_LEN], gin[200], back[200];
	struct stat st;

	cr_assert_eq(mkdir(at("src"), 0755), 0);
	cr_assert_eq(mkdir(at("src/sub"), 0750), 0);
	cr_assert_eq(chmod(at("src/sub"), 0750), 0);
	put("src/a", "alpha\n", 0640);
	put("src/sub/b", "beta\n", 0755);
	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	/* "guest" stands for the guest's file system. */
	snprintf(gin, sizeof(gin), "%s", at("guest/job"));
	struct copy_item in = {.src = at("src"), .dst = gin};

	cr_assert_eq(session(false, &in, msg), 0, "%s", msg);
	cr_assert_str_eq(text("guest/job/a"), "alpha\n");
	cr_assert_str_eq(text("guest/job/sub/b"), "beta\n");
	cr_assert_eq(stat(at("guest/job/sub/b"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0755);

	put("guest/job/sub/b", "changed\n", 0700);
	snprintf(back, sizeof(back), "%s", at("back"));
	struct copy_item out = {.src = gin, .dst = back};

	cr_assert_eq(session(true, &out, msg), 0, "%s", msg);
	cr_assert_str_eq(text("back/a"), "alpha\n");
	cr_assert_str_eq(text("back/sub/b"), "changed\n");
	cr_assert_eq(stat(at("back/sub"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750);
}

Test(copy_session, the_agents_refusal_is_the_message)
{
	char msg[COPY_MSG_LEN], missing[200];

	snprintf(missing, sizeof(missing), "%s", at("guest/nothing"));
	struct copy_item out = {.src = missing, .dst = at("res")};

	cr_assert_eq(session(true, &out, msg), -1);
	cr_assert(strstr(msg, "the guest agent: "), "%s", msg);
	cr_assert(strstr(msg, "No such file or directory"), "%s", msg);
	cr_assert_null(text("res"));

	/* A file where a directory is wanted: refused by the agent too. */
	put("afile", "x\n", 0644);
	cr_assert_eq(mkdir(at("src"), 0755), 0);
	char bad[200];
	snprintf(bad, sizeof(bad), "%s/", at("afile"));
	struct copy_item in = {.src = at("src"), .dst = bad};

	cr_assert_eq(session(false, &in, msg), -1);
	cr_assert(strstr(msg, "not a directory"), "%s", msg);
}

/* A guest that goes silent fails the copy at the connection's idle limit
 * (copy_set_idle), with a message naming it, in both directions: a
 * copy-out whose stream never comes, a copy-in whose tree fills the
 * socket and is never read. */
Test(copy_session, a_silent_agent_fails_at_the_idle_limit)
{
	char msg[COPY_MSG_LEN], big[1 << 16];
	int sv[2], fd;
	struct timespec t0, t1;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(copy_set_idle(sv[0], 200), 0);
	struct copy_item out = {.src = "/job/out", .dst = at("res")};

	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(copy_session(sv[0], true, &out, msg), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert(strstr(msg, "idle for 0.2 s"), "%s", msg);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 5);
	cr_assert_null(text("res"));

	/* 4 MiB is more than the socket pair holds. */
	memset(big, 'x', sizeof(big));
	cr_assert_geq(fd = open(at("big"), O_WRONLY | O_CREAT, 0644), 0);
	for (int i = 0; i < 64; i++)
		cr_assert_eq(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
	close(fd);
	struct copy_item in = {.src = at("big"), .dst = "/job/big"};

	cr_assert_eq(copy_session(sv[0], false, &in, msg), -1);
	cr_assert(strstr(msg, "idle for 0.2 s"), "%s", msg);
	close(sv[0]);
	close(sv[1]);
}

/* The run's --user: what it copies in becomes its own, with no set-id
 * bits; a copy-out reads as the user, so a file only root may read is
 * refused, naming it, where a root run's copy-out takes it. */
Test(copy_session, a_users_copies_are_its_own)
{
	char msg[COPY_MSG_LEN], gin[200], back[200];
	struct stat st;

	cr_assert_eq(geteuid(), 0, "needs root to change users");
	cr_assert_eq(chmod(dir, 0755), 0); /* the user may reach the guest's paths */
	cr_assert_eq(mkdir(at("src"), 0755), 0);
	put("src/a", "alpha\n", 0640);
	put("src/suid", "x\n", 04755);
	cr_assert_eq(symlink("a", at("src/l")), 0);
	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	snprintf(gin, sizeof(gin), "%s", at("guest/job"));
	struct copy_item in = {
	    .src = at("src"), .dst = gin, .user = true, .uid = 4242, .gid = 4343};

	cr_assert_eq(session(false, &in, msg), 0, "%s", msg);
	const char *mine[] = {"guest/job", "guest/job/a", "guest/job/suid", "guest/job/l"};

	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++) {
		cr_assert_eq(lstat(at(mine[i]), &st), 0, "%s", mine[i]);
		cr_assert(st.st_uid == 4242 && st.st_gid == 4343, "%s: %u:%u", mine[i],
			  (unsigned)st.st_uid, (unsigned)st.st_gid);
	}
	cr_assert_eq(stat(at("guest/job/suid"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0755, "set-id bits kept: %o", st.st_mode & 07777);
	/* The directories a copy makes on the way are the user's too (DIR/.
	 * into /ws: the job may write in /ws itself). */
	char deep[200];

	snprintf(deep, sizeof(deep), "%s", at("guest/ws/deep"));
	struct copy_item flat = {.src = at("src"),
				 .dst = deep,
				 .contents = true,
				 .user = true,
				 .uid = 4242,
				 .gid = 4343};

	cr_assert_eq(session(false, &flat, msg), 0, "%s", msg);
	cr_assert_str_eq(text("guest/ws/deep/a"), "alpha\n");
	const char *made[] = {"guest/ws", "guest/ws/deep"};

	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		cr_assert_eq(lstat(at(made[i]), &st), 0, "%s", made[i]);
		cr_assert(st.st_uid == 4242 && st.st_gid == 4343, "%s: %u:%u", made[i],
			  (unsigned)st.st_uid, (unsigned)st.st_gid);
	}
	cr_assert_eq(lstat(at("guest"), &st), 0);
	cr_assert_eq(st.st_uid, 0, "a directory there before changed hands");

	put("guest/job/secret", "root's\n", 0600);
	snprintf(back, sizeof(back), "%s", at("back"));
	struct copy_item out = {.src = gin, .dst = back, .user = true, .uid = 4242, .gid = 4343};

	cr_assert_eq(session(true, &out, msg), -1, "a file only root may read was copied out");
	cr_assert(strstr(msg, "secret"), "%s", msg);
	cr_assert_null(text("back/secret"), "root's file came out");
	cr_assert_eq(chmod(at("guest/job/secret"), 0644), 0);
	snprintf(back, sizeof(back), "%s", at("back2"));
	cr_assert_eq(session(true, &out, msg), 0, "%s", msg);
	cr_assert_str_eq(text("back2/secret"), "root's\n");
	out.user = false;
	cr_assert_eq(chmod(at("guest/job/secret"), 0600), 0);
	snprintf(back, sizeof(back), "%s", at("back3"));
	cr_assert_eq(session(true, &out, msg), 0, "%s", msg);
	cr_assert_str_eq(text("back3/secret"), "root's\n");
}

/* Once a command has run in the guest (as after one here: the agent's
 * flag in this process), a copy-in follows no symlink to its destination
 * that another user could have made (here: in a directory anyone may
 * write): a job's link in the path cannot have root write where it leads.
 * Before any, it does. */
Test(copy_session, after_a_command_a_copy_in_follows_no_link)
{
	char msg[COPY_MSG_LEN], gin[200];

	cr_assert_eq(mkdir(at("src"), 0755), 0);
	put("src/a", "alpha\n", 0644);
	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	cr_assert_eq(chmod(at("guest"), 0777), 0);
	cr_assert_eq(mkdir(at("guest/usr-local-sbin"), 0755), 0);
	cr_assert_eq(symlink("usr-local-sbin", at("guest/bin")), 0);
	snprintf(gin, sizeof(gin), "%s", at("guest/bin"));
	struct copy_item in = {.src = at("src"), .dst = gin};

	started_here = true;
	cr_assert_eq(session(false, &in, msg), -1, "copied in through the job's symlink");
	cr_assert(strstr(msg, "a symlink on the way"), "%s", msg);
	cr_assert_null(text("guest/usr-local-sbin/src/a"));
	started_here = false;
	cr_assert_eq(session(false, &in, msg), 0, "%s", msg);
	cr_assert_str_eq(text("guest/usr-local-sbin/src/a"), "alpha\n");
}

/* Once a command has run, a --user copy-in is made by the user itself (a
 * job of the user's still running could swap a directory root writes in):
 * into the user's own directory it goes, the files the user's; where only
 * root may write, it is refused. */
Test(copy_session, after_a_command_a_users_copy_in_is_made_as_the_user)
{
	char msg[COPY_MSG_LEN], gin[200];
	struct stat st;

	cr_assert_eq(geteuid(), 0, "needs root to change users");
	cr_assert_eq(chmod(dir, 0755), 0);
	cr_assert_eq(mkdir(at("src"), 0755), 0);
	put("src/a", "alpha\n", 04755);
	cr_assert_eq(mkdir(at("guest"), 0755), 0);
	cr_assert_eq(mkdir(at("guest/ws"), 0755), 0);
	cr_assert_eq(chown(at("guest/ws"), 4242, 4343), 0);
	started_here = true;
	snprintf(gin, sizeof(gin), "%s", at("guest/ws/src"));
	struct copy_item in = {
	    .src = at("src"), .dst = gin, .user = true, .uid = 4242, .gid = 4343};

	cr_assert_eq(session(false, &in, msg), 0, "%s", msg);
	cr_assert_eq(stat(at("guest/ws/src/a"), &st), 0);
	cr_assert(st.st_uid == 4242 && st.st_gid == 4343, "%u:%u", (unsigned)st.st_uid,
		  (unsigned)st.st_gid);
	cr_assert_eq(st.st_mode & 07000, 0, "set-id bits kept: %o", st.st_mode & 07777);
	snprintf(gin, sizeof(gin), "%s", at("guest/roots"));
	cr_assert_eq(session(false, &in, msg), -1, "made where only root may write");
	cr_assert(strstr(msg, "Can't create"), "%s", msg);
	cr_assert_eq(lstat(at("guest/roots"), &st), -1);
}

static void *first_command(void *done)
{
	command_begins();
	__atomic_store_n((bool *)done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* A copy-in as the guest's sole writer holds off the first command until
 * it ends, and none begins as one once a command is on its way. */
Test(copy_session, a_first_command_waits_for_a_sole_copy)
{
	bool done = false;
	pthread_t t;

	int fd = sole_begin();

	cr_assert_geq(fd, 0, "no command yet: the sole writer");
	cr_assert_eq(pthread_create(&t, NULL, first_command, &done), 0);
	usleep(100000);
	cr_assert_not(__atomic_load_n(&done, __ATOMIC_SEQ_CST), "a command began during the copy");
	cr_assert_lt(sole_begin(), 0, "a sole copy began with a command on its way");
	close(fd);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert(done);
}

/* A sole copy killed midway (the guest's OOM killer, say) holds off no
 * command: the kernel drops its lock. */
Test(copy_session, a_sole_copy_killed_holds_nothing)
{
	int st, p[2];
	pid_t pid;
	char c;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		if (sole_begin() < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(p[0], &c, 1), 1, "the child did not begin a sole copy");
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	command_begins();
	cr_assert(started_here);
}
