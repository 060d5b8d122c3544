/* The seccomp tables: each compiles, none allows what no flint thread may
 * do, and installed filters (in a child process each) allow the listed
 * calls and kill on the rest. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "api/controller.h"
#include "api/http.h"
#include "api/router.h"
#include "config/cli.h"
#include "core/evloop.h"
#include "core/seccomp.h"
#include "core/vcpu.h"

TestSuite(seccomp, .timeout = 10);

static const enum seccomp_thread kinds[] = {SECCOMP_MAIN, SECCOMP_VCPU, SECCOMP_EVLOOP,
					    SECCOMP_RUN,  SECCOMP_API,	SECCOMP_CONTROL};

Test(seccomp, every_table_compiles_in_both_modes)
{
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
		for (int log_only = 0; log_only < 2; log_only++) {
			int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
			cr_assert_geq(fd, 0);
			int r = seccomp_export(kinds[k], log_only, fd);
			cr_assert_eq(r, 0, "%s table: %s", seccomp_thread_name(kinds[k]),
				     strerror(-r));
			/* A BPF program: whole 8-byte instructions, at least one per row. */
			off_t len = lseek(fd, 0, SEEK_END);
			size_t n;
			seccomp_table(kinds[k], &n);
			cr_assert_eq(len % 8, 0);
			cr_assert_geq((size_t)len / 8, n, "%s: %lld bytes of BPF for %zu rows",
				      seccomp_thread_name(kinds[k]), (long long)len, n);
			close(fd);
		}
	cr_assert_eq(seccomp_export(SECCOMP_THREADS, false, 2), -EINVAL);
}

Test(seccomp, forbidden_calls_are_in_no_table)
{
	/* clang-format off */
	static const struct {
		const char *name;
		int nr;
	} forbidden[] = {
#define F(sys) {#sys, SCMP_SYS(sys)}
		F(execve), F(execveat), F(open), F(openat2), F(creat),
		F(ptrace), F(process_vm_readv), F(process_vm_writev),
		F(mount), F(umount2), F(setns), F(unshare), F(chroot), F(pivot_root),
		F(clone), F(clone3), F(fork), F(vfork),
		F(kexec_load), F(init_module), F(finit_module), F(bpf), F(perf_event_open),
		F(userfaultfd), F(pkey_mprotect), F(setuid), F(capset), F(prctl), F(seccomp),
		F(kill), F(rt_sigaction), F(mknodat), F(symlinkat), F(linkat), F(renameat2),
#undef F
	};
	/* clang-format on */
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		size_t n;
		const struct seccomp_rule *t = seccomp_table(kinds[k], &n);
		cr_assert_gt(n, 0);
		for (size_t i = 0; i < n; i++)
			for (size_t f = 0; f < ARRAY_SIZE(forbidden); f++)
				cr_assert_neq(t[i].nr, forbidden[f].nr, "%s table allows %s",
					      seccomp_thread_name(kinds[k]), forbidden[f].name);
	}
}

static const struct scmp_arg_cmp *cond_on(const struct seccomp_rule *r, unsigned arg)
{
	for (unsigned j = 0; j < r->nconds; j++)
		if (r->conds[j].arg == arg)
			return &r->conds[j];
	return NULL;
}

Test(seccomp, conditions_guard_ioctl_mmap_mprotect_tgkill_socket)
{
	unsigned ioctls = 0;

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		const char *name = seccomp_thread_name(kinds[k]);
		size_t n;
		const struct seccomp_rule *t = seccomp_table(kinds[k], &n);
		for (size_t i = 0; i < n; i++) {
			const struct scmp_arg_cmp *c;
			cr_assert_leq(t[i].nconds, SECCOMP_MAX_CONDS);
			if (t[i].nr == SCMP_SYS(ioctl)) {
				/* One request per row, never "any request". */
				c = cond_on(&t[i], 1);
				cr_assert(c && t[i].nconds == 1 && c->op == SCMP_CMP_EQ,
					  "%s: ioctl row %zu is not one exact request", name, i);
				ioctls++;
			} else if (t[i].nr == SCMP_SYS(mmap) || t[i].nr == SCMP_SYS(mprotect)) {
				c = cond_on(&t[i], 2);
				cr_assert(c && c->op == SCMP_CMP_MASKED_EQ &&
					      (c->datum_a & PROT_EXEC) && c->datum_b == 0,
					  "%s: %s may map executable memory", name, t[i].name);
			} else if (t[i].nr == SCMP_SYS(tgkill)) {
				cr_assert(cond_on(&t[i], 0) && cond_on(&t[i], 2),
					  "%s: tgkill without pid and signal checks", name);
			} else if (t[i].nr == SCMP_SYS(socket)) {
				c = cond_on(&t[i], 0);
				cr_assert(c && c->op == SCMP_CMP_EQ && c->datum_a == AF_UNIX,
					  "%s: socket beyond AF_UNIX", name);
			} else if (t[i].nr == SCMP_SYS(sendto) || t[i].nr == SCMP_SYS(recvfrom)) {
				/* send() and recv() on connected sockets only. */
				c = cond_on(&t[i], 4);
				cr_assert(c && c->op == SCMP_CMP_EQ && c->datum_a == 0,
					  "%s: %s with an address", name, t[i].name);
			} else if (t[i].nr == SCMP_SYS(openat)) {
				/* No file truncated by its open (the snapshot's
				 * memory file is, by ftruncate, once checked). */
				c = cond_on(&t[i], 2);
				cr_assert(c && c->op == SCMP_CMP_MASKED_EQ &&
					      (c->datum_a & O_TRUNC) && (c->datum_a & O_PATH) &&
					      c->datum_b == 0,
					  "%s: openat may truncate", name);
			} else if (t[i].nr == SCMP_SYS(fcntl)) {
				/* Image locks, and the image's O_NONBLOCK cleared
				 * (F_SETFL): no F_DUPFD, F_SETOWN, leases... */
				c = cond_on(&t[i], 1);
				cr_assert(c && c->op == SCMP_CMP_EQ &&
					      (c->datum_a == F_OFD_SETLK ||
					       c->datum_a == F_OFD_GETLK || c->datum_a == F_SETFL),
					  "%s: fcntl beyond the image lock", name);
			} else if (t[i].nr == SCMP_SYS(poll) && t[i].nconds) {
				/* Every thread: whether stderr takes a line now. */
				c = cond_on(&t[i], 2);
				cr_assert(c && t[i].nconds == 1 && c->op == SCMP_CMP_EQ &&
					      c->datum_a == 0,
					  "%s: poll that may wait", name);
			} else if (t[i].nr == SCMP_SYS(madvise)) {
				c = cond_on(&t[i], 2);
				cr_assert(c && c->op == SCMP_CMP_EQ && c->datum_a == MADV_DONTNEED);
			} else if (t[i].nr == SCMP_SYS(clock_nanosleep)) {
				/* A relative sleep on the monotonic clock only. */
				c = cond_on(&t[i], 0);
				cr_assert(c && c->op == SCMP_CMP_EQ &&
					      c->datum_a == CLOCK_MONOTONIC,
					  "%s: clock_nanosleep on another clock", name);
				c = cond_on(&t[i], 1);
				cr_assert(c && c->op == SCMP_CMP_EQ && c->datum_a == 0,
					  "%s: clock_nanosleep with flags", name);
			} else {
				cr_assert_eq(t[i].nconds, 0, "%s: unexpected condition on %s", name,
					     t[i].name);
			}
		}
	}
	cr_assert_geq(ioctls, 3); /* KVM_RUN and TUNSETOFFLOAD on vCPUs, TCSETS on main */
}

Test(seccomp, thread_names)
{
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
		cr_assert_eq(seccomp_thread_by_name(seccomp_thread_name(kinds[k])), (int)kinds[k]);
	cr_assert_eq(seccomp_thread_by_name("vcpu0"), -EINVAL);
	cr_assert_eq(seccomp_thread_by_name(""), -EINVAL);
	cr_assert_null(seccomp_thread_name(SECCOMP_THREADS));
}

/* ---- installed filters, each in a child process ---- */

/* Exit statuses of a child whose call was allowed but went wrong. */
#define CHILD_NO_FILTER	   100
#define CHILD_WRONG_RESULT 101

/* Fork; the child installs kind's filter (unless kind is SECCOMP_THREADS),
 * runs call() and exits 0. Returns the child's wait status. */
static int in_child(enum seccomp_thread kind, bool log_only, void (*call)(void))
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (kind != SECCOMP_THREADS && seccomp_install(kind, log_only) < 0)
			_exit(CHILD_NO_FILTER);
		call();
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

static void killed(int st, const char *what)
{
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		  "%s: expected death by SIGSYS, got status 0x%x", what, st);
}

static void allowed(int st, const char *what)
{
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: expected exit 0, got status 0x%x",
		  what, st);
}

/* The child's calls: raw system calls, so that glibc adds none. */
static void expect_errno(long r, int err)
{
	if (r != -1 || errno != err)
		_exit(CHILD_WRONG_RESULT);
}

static void call_kvm_run(void)
{
	expect_errno(syscall(SYS_ioctl, -1, KVM_RUN, 0), EBADF);
}

static void call_kvmclock_ctrl(void)
{
	expect_errno(syscall(SYS_ioctl, -1, KVM_KVMCLOCK_CTRL, 0), EBADF);
}

static void call_set_gsi_routing(void)
{
	expect_errno(syscall(SYS_ioctl, -1, KVM_SET_GSI_ROUTING, 0), EBADF);
}

static void call_clock_nanosleep(void)
{
	struct timespec ts = {0, 1000};

	if (syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL) != 0)
		_exit(CHILD_WRONG_RESULT);
}

static void call_clock_nanosleep_abs(void)
{
	struct timespec ts = {0, 0};

	syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void call_tcsets(void)
{
	struct termios t = {0};
	syscall(SYS_ioctl, -1, TCSETS, &t);
}

static void call_mmap_rw(void)
{
	void *p = (void *)syscall(SYS_mmap, NULL, 4096, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(CHILD_WRONG_RESULT);
}

static void call_mmap_exec(void)
{
	syscall(SYS_mmap, NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void call_mprotect_exec(void)
{
	static char page[4096] __attribute__((aligned(4096)));
	syscall(SYS_mprotect, page, sizeof(page), PROT_READ | PROT_WRITE | PROT_EXEC);
}

static void call_execve(void)
{
	static char *const none[] = {NULL};
	expect_errno(syscall(SYS_execve, "", none, none), ENOENT);
}

static void call_openat(void)
{
	syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
}

/* What only the main thread may open: an existing image, read or write;
 * creating or truncating a file is refused everywhere. */
static void call_openat_image(void)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		_exit(CHILD_WRONG_RESULT);
	close(fd);
}

static void call_openat_truncate(void)
{
	syscall(SYS_openat, AT_FDCWD, "/tmp/flint-seccomp-never", O_RDWR | O_CREAT | O_TRUNC, 0600);
}

/* A thread id no thread has (above PID_MAX_LIMIT): ESRCH when allowed. */
#define NO_TID 0x3fffffff

static void call_tgkill_kick(void)
{
	expect_errno(syscall(SYS_tgkill, getpid(), NO_TID, VCPU_KICK_SIGNAL), ESRCH);
}

static void call_tgkill_other_signal(void)
{
	syscall(SYS_tgkill, getpid(), NO_TID, SIGUSR1);
}

static void call_tgkill_other_process(void)
{
	syscall(SYS_tgkill, getppid(), NO_TID, VCPU_KICK_SIGNAL);
}

static void call_socket_unix(void)
{
	long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		_exit(CHILD_WRONG_RESULT);
}

static void call_socket_inet(void)
{
	syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
}

static void call_send(void)
{
	expect_errno(syscall(SYS_sendto, -1, "x", 1, MSG_NOSIGNAL, NULL, 0), EBADF);
}

/* A log line or console output to a socket (stderr under systemd):
 * every thread may log. */
static void call_send_nowait(void)
{
	expect_errno(syscall(SYS_sendto, -1, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0), EBADF);
}

static void call_sendto_address(void)
{
	struct sockaddr_un to = {.sun_family = AF_UNIX};
	syscall(SYS_sendto, -1, "x", 1, 0, &to, sizeof(to));
}

/* flint run's own connection to the agent: connect to a socket that is
 * not there (ENOENT when allowed), recv with and without a source address. */
static void call_connect_unix(void)
{
	struct sockaddr_un to = {.sun_family = AF_UNIX, .sun_path = "/nonexistent/flint.sock"};
	long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		_exit(CHILD_WRONG_RESULT);
	expect_errno(syscall(SYS_connect, fd, &to, sizeof(to)), ENOENT);
}

static void call_recv(void)
{
	char c;
	expect_errno(syscall(SYS_recvfrom, -1, &c, 1, 0, NULL, NULL), EBADF);
}

static void call_recvfrom_address(void)
{
	struct sockaddr_un from;
	socklen_t len = sizeof(from);
	char c;
	syscall(SYS_recvfrom, -1, &c, 1, 0, &from, &len);
}

static void call_poll(void)
{
	if (syscall(SYS_poll, NULL, 0, 0) != 0)
		_exit(CHILD_WRONG_RESULT);
}

/* A poll that may wait: only the threads that wait on fds. */
static void call_poll_wait(void)
{
	if (syscall(SYS_poll, NULL, 0, 1) != 0)
		_exit(CHILD_WRONG_RESULT);
}

/* What each filter must allow (exit 0) and kill (SIGSYS). */
static const struct {
	enum seccomp_thread kind;
	void (*call)(void);
	bool allow;
	const char *what;
} cases[] = {
    {SECCOMP_VCPU, call_kvm_run, true, "vcpu: KVM_RUN"},
    {SECCOMP_VCPU, call_mmap_rw, true, "vcpu: mmap rw"},
    {SECCOMP_VCPU, call_tgkill_kick, true, "vcpu: tgkill kick"},
    {SECCOMP_VCPU, call_kvmclock_ctrl, true, "vcpu: KVM_KVMCLOCK_CTRL"},
    {SECCOMP_VCPU, call_set_gsi_routing, true, "vcpu: KVM_SET_GSI_ROUTING"},
    {SECCOMP_VCPU, call_clock_nanosleep, true, "vcpu: clock_nanosleep (the I/O APIC's turn)"},
    {SECCOMP_VCPU, call_clock_nanosleep_abs, false, "vcpu: clock_nanosleep TIMER_ABSTIME"},
    {SECCOMP_VCPU, call_tcsets, false, "vcpu: ioctl TCSETS"},
    {SECCOMP_VCPU, call_mmap_exec, false, "vcpu: mmap exec"},
    {SECCOMP_VCPU, call_mprotect_exec, false, "vcpu: mprotect exec"},
    {SECCOMP_VCPU, call_execve, false, "vcpu: execve"},
    {SECCOMP_VCPU, call_openat, false, "vcpu: openat"},
    {SECCOMP_VCPU, call_tgkill_other_signal, false, "vcpu: tgkill SIGUSR1"},
    {SECCOMP_VCPU, call_tgkill_other_process, false, "vcpu: tgkill the parent"},
    {SECCOMP_VCPU, call_socket_unix, false, "vcpu: socket"},
    {SECCOMP_MAIN, call_poll, true, "main: poll"},
    {SECCOMP_MAIN, call_kvm_run, false, "main: KVM_RUN"},
    {SECCOMP_MAIN, call_kvmclock_ctrl, false, "main: KVM_KVMCLOCK_CTRL"},
    {SECCOMP_MAIN, call_set_gsi_routing, true, "main: KVM_SET_GSI_ROUTING"},
    {SECCOMP_MAIN, call_openat_image, true, "main: openat of an image"},
    {SECCOMP_MAIN, call_openat_truncate, false, "main: openat O_TRUNC"},
    {SECCOMP_EVLOOP, call_socket_unix, true, "evloop: AF_UNIX socket"},
    {SECCOMP_EVLOOP, call_socket_inet, false, "evloop: AF_INET socket"},
    {SECCOMP_EVLOOP, call_kvm_run, false, "evloop: KVM_RUN"},
    {SECCOMP_EVLOOP, call_set_gsi_routing, false, "evloop: KVM_SET_GSI_ROUTING"},
    {SECCOMP_EVLOOP, call_clock_nanosleep, false, "evloop: clock_nanosleep"},
    {SECCOMP_RUN, call_poll, true, "run: poll"},
    {SECCOMP_RUN, call_send, true, "run: send"},
    {SECCOMP_RUN, call_sendto_address, false, "run: sendto an address"},
    {SECCOMP_RUN, call_socket_unix, true, "run: AF_UNIX socket"},
    {SECCOMP_RUN, call_socket_inet, false, "run: AF_INET socket"},
    {SECCOMP_RUN, call_connect_unix, true, "run: connect"},
    {SECCOMP_RUN, call_recv, true, "run: recv"},
    {SECCOMP_RUN, call_recvfrom_address, false, "run: recvfrom with an address"},
    {SECCOMP_RUN, call_execve, false, "run: execve"},
    {SECCOMP_CONTROL, call_poll, true, "control: poll"},
    {SECCOMP_CONTROL, call_mmap_rw, true, "control: mmap rw"},
    {SECCOMP_CONTROL, call_tgkill_kick, true, "control: tgkill kick (a stop)"},
    {SECCOMP_CONTROL, call_socket_unix, false, "control: socket"},
    {SECCOMP_CONTROL, call_send, false, "control: send"},
    {SECCOMP_CONTROL, call_send_nowait, true, "control: a log line to a socket"},
    {SECCOMP_MAIN, call_send_nowait, true, "main: a log line to a socket"},
    {SECCOMP_MAIN, call_send, false, "main: a send that may wait"},
    {SECCOMP_VCPU, call_send_nowait, true, "vcpu: console output to a socket"},
    {SECCOMP_VCPU, call_send, false, "vcpu: a send that may wait"},
    {SECCOMP_VCPU, call_poll, true, "vcpu: whether stderr takes a log line (poll, timeout 0)"},
    {SECCOMP_VCPU, call_poll_wait, false, "vcpu: a poll that may wait"},
    {SECCOMP_EVLOOP, call_poll, true, "evloop: poll, timeout 0"},
    {SECCOMP_EVLOOP, call_poll_wait, false, "evloop: a poll that may wait"},
    {SECCOMP_MAIN, call_poll_wait, true, "main: a poll that waits"},
    {SECCOMP_EVLOOP, call_send_nowait, true, "evloop: a log line to a socket"},
    {SECCOMP_EVLOOP, call_send, false, "evloop: a send that may wait"},
    {SECCOMP_RUN, call_send_nowait, true, "run: a log line to a socket"},
    {SECCOMP_API, call_send_nowait, true, "api: a log line to a socket"},
    {SECCOMP_CONTROL, call_kvm_run, false, "control: KVM_RUN"},
    {SECCOMP_CONTROL, call_openat, false, "control: openat"},
    {SECCOMP_CONTROL, call_execve, false, "control: execve"},
    {SECCOMP_API, call_poll, true, "api: poll"},
    {SECCOMP_API, call_send, true, "api: send"},
    {SECCOMP_API, call_mmap_rw, true, "api: mmap rw"},
    {SECCOMP_API, call_tcsets, false, "api: ioctl TCSETS"},
    {SECCOMP_API, call_kvm_run, false, "api: KVM_RUN"},
    {SECCOMP_API, call_sendto_address, false, "api: sendto an address"},
    {SECCOMP_API, call_socket_unix, false, "api: socket"},
    {SECCOMP_API, call_openat, false, "api: openat"},
    {SECCOMP_API, call_execve, false, "api: execve"},
};

Test(seccomp, installed_filters_allow_their_table_and_kill_the_rest)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int st = in_child(cases[i].kind, false, cases[i].call);
		if (cases[i].allow)
			allowed(st, cases[i].what);
		else
			killed(st, cases[i].what);
	}
}

Test(seccomp, log_mode_lets_the_call_through)
{
	allowed(in_child(SECCOMP_VCPU, true, call_execve), "execve, logged");
	allowed(in_child(SECCOMP_THREADS, false, call_execve), "execve without a filter");
}

static void enter_vcpu(void)
{
	if (seccomp_enter(SECCOMP_VCPU) < 0)
		_exit(CHILD_NO_FILTER);
}

static void configure_and_enter(enum seccomp_mode mode, int test_thread)
{
	if (seccomp_configure(mode, test_thread) < 0)
		_exit(CHILD_NO_FILTER);
	enter_vcpu();
}

static void hook_vcpu_kill(void)
{
	configure_and_enter(SECCOMP_KILL, SECCOMP_VCPU);
}

static void hook_vcpu_log(void)
{
	configure_and_enter(SECCOMP_LOG, SECCOMP_VCPU);
}

/* --no-seccomp: the hook's call goes through and no filter is on. */
static void hook_vcpu_off(void)
{
	configure_and_enter(SECCOMP_OFF, SECCOMP_VCPU);
	if (prctl(PR_GET_SECCOMP) != 0)
		_exit(CHILD_WRONG_RESULT);
}

static void hook_other_thread(void)
{
	configure_and_enter(SECCOMP_KILL, SECCOMP_MAIN);
	call_kvm_run(); /* the vCPU filter is on, the hook did not fire */
}

static void no_policy(void)
{
	enter_vcpu();
	call_execve(); /* seccomp_enter without a policy installs nothing */
}

Test(seccomp, enter_applies_the_policy_and_the_test_hook)
{
	/* in_child with SECCOMP_THREADS: the child installs nothing itself. */
	killed(in_child(SECCOMP_THREADS, false, hook_vcpu_kill), "hook on vcpu");
	allowed(in_child(SECCOMP_THREADS, false, hook_vcpu_log), "hook on vcpu, log mode");
	allowed(in_child(SECCOMP_THREADS, false, hook_vcpu_off), "hook on vcpu, no filters");
	allowed(in_child(SECCOMP_THREADS, false, hook_other_thread), "hook on main");
	allowed(in_child(SECCOMP_THREADS, false, no_policy), "no policy");
	cr_assert_eq(seccomp_configure(SECCOMP_KILL, SECCOMP_THREADS), -EINVAL);
}

Test(seccomp, a_program_is_built_once_and_is_libseccomps)
{
	const struct sock_fprog *a, *b;

	cr_assert_eq(seccomp_configure(SECCOMP_KILL, -1), 0);
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		cr_assert_eq(seccomp_program(kinds[k], &a), 0);
		cr_assert_eq(seccomp_program(kinds[k], &b), 0);
		cr_assert_eq(a, b, "%s: built twice", seccomp_thread_name(kinds[k]));
		/* The very program libseccomp exports for the table. */
		int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		cr_assert_geq(fd, 0);
		cr_assert_eq(seccomp_export(kinds[k], false, fd), 0);
		off_t len = lseek(fd, 0, SEEK_END);
		cr_assert_eq(len, (off_t)(a->len * sizeof(*a->filter)), "%s",
			     seccomp_thread_name(kinds[k]));
		void *bytes = malloc((size_t)len);
		cr_assert_not_null(bytes);
		cr_assert_eq(pread(fd, bytes, (size_t)len, 0), len);
		cr_assert_eq(memcmp(bytes, a->filter, (size_t)len), 0, "%s",
			     seccomp_thread_name(kinds[k]));
		free(bytes);
		close(fd);
	}
	cr_assert_eq(seccomp_program(SECCOMP_THREADS, &a), -EINVAL);
	cr_assert_null(a);
}

/* ---- malloc in a filtered thread ---- */

/* A thread under the vCPU filter that allocates and frees megabytes in
 * blocks below the mmap threshold, so that glibc grows and trims a heap. */
static void *churn(void *arg)
{
	(void)arg;
	if (seccomp_install(SECCOMP_VCPU, false) < 0)
		return (void *)1;
	for (int round = 0; round < 8; round++) {
		void *p[64];
		for (int i = 0; i < 64; i++)
			if (!(p[i] = malloc(64 << 10)))
				return (void *)2;
		for (int i = 0; i < 64; i++)
			free(p[i]);
	}
	return NULL;
}

#define CHURN_ENV "FLINT_TEST_SECCOMP_CHURN"

/* In a process this test re-executes, before Criterion starts: a fresh
 * process, with no malloc arena but the main one, as flint is when it sets
 * its policy. CHURN_ENV=policy sets it first; =none does not. */
__attribute__((constructor)) static void churn_process(void)
{
	const char *how = getenv(CHURN_ENV);
	pthread_t t;
	void *res;

	if (!how)
		return;
	if (!strcmp(how, "policy") && seccomp_configure(SECCOMP_KILL, -1) < 0)
		_exit(CHILD_NO_FILTER);
	if (pthread_create(&t, NULL, churn, NULL))
		_exit(CHILD_NO_FILTER);
	pthread_join(t, &res);
	_exit(res ? CHILD_WRONG_RESULT : 0);
}

static int churn_status(const char *how)
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char *argv[] = {"unit-tests", NULL};
		setenv(CHURN_ENV, how, 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

Test(seccomp, malloc_and_free_in_a_filtered_thread)
{
	/* Trimming a thread's own arena, glibc reads
	 * /proc/sys/vm/overcommit_memory: an openat no table allows. */
	killed(churn_status("none"), "malloc churn in a thread's own arena");
	/* The policy keeps every thread in the main arena. */
	allowed(churn_status("policy"), "malloc churn with the policy set");
}

/* ---- the event loop's thread installs its filter through its hook ---- */

static int install_evloop(void *ctx)
{
	*(int *)ctx += 1;
	return seccomp_install(SECCOMP_EVLOOP, false);
}

static void evloop_under_filter(void)
{
	static int calls;
	struct evloop *l;

	if (evloop_create(&l, 8) < 0)
		_exit(CHILD_NO_FILTER);
	evloop_set_thread_init(l, install_evloop, &calls);
	/* The loop thread polls its eventfd, wakes, drains and exits under
	 * its filter; this thread has none. */
	if (evloop_start(l) < 0)
		_exit(CHILD_NO_FILTER);
	evloop_stop(l);
	if (evloop_join(l) != 0 || calls != 1)
		_exit(CHILD_WRONG_RESULT);
	evloop_destroy(l);
}

Test(seccomp, evloop_thread_runs_under_its_filter)
{
	allowed(in_child(SECCOMP_THREADS, false, evloop_under_filter), "event loop");
}

static int refuse(void *ctx)
{
	(void)ctx;
	return -EPERM;
}

Test(seccomp, evloop_thread_init_failure_ends_the_thread)
{
	struct evloop *l;

	cr_assert_eq(evloop_create(&l, 8), 0);
	evloop_set_thread_init(l, refuse, NULL);
	cr_assert_eq(evloop_start(l), 0);
	cr_assert_eq(evloop_join(l), -EPERM);
	evloop_destroy(l);
}

/* ---- the command line ---- */

static enum cli_result parse(struct config *cfg, char *err, const char *a, const char *b)
{
	char *argv[] = {"flint", "--kernel", "k", (char *)a, (char *)b, NULL};
	return cli_parse(b ? 5 : 4, argv, cfg, err, 256);
}

Test(seccomp, cli_options)
{
	struct config cfg;
	char err[256];

	cr_assert_eq(parse(&cfg, err, "--stats", NULL), CLI_RUN);
	cr_assert(cfg.seccomp == SECCOMP_KILL && !cfg.seccomp_test,
		  "filters kill, no hook, by default");
	cr_assert_eq(parse(&cfg, err, "--seccomp-log", NULL), CLI_RUN);
	cr_assert_eq(cfg.seccomp, SECCOMP_LOG);
	cr_assert_eq(parse(&cfg, err, "--no-seccomp", NULL), CLI_RUN);
	cr_assert_eq(cfg.seccomp, SECCOMP_OFF);
	cr_assert_eq(parse(&cfg, err, "--no-seccomp", "--seccomp-log"), CLI_ERROR);
	cr_assert(strstr(err, "--seccomp-log: there are no filters"), "%s", err);
	cr_assert_eq(parse(&cfg, err, "--seccomp-test-forbidden", "evloop"), CLI_RUN);
	cr_assert_str_eq(cfg.seccomp_test, "evloop");
	cr_assert_eq(parse(&cfg, err, "--seccomp-test-forbidden", "gpu"), CLI_ERROR);
	cr_assert(strstr(err, "--seccomp-test-forbidden gpu"), "%s", err);
}

/* ---- the API thread under its filter ---- */

Test(seccomp, api_table_has_no_ioctl)
{
	size_t n;
	const struct seccomp_rule *t = seccomp_table(SECCOMP_API, &n);

	cr_assert_gt(n, 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_neq(t[i].nr, SCMP_SYS(ioctl), "the API table allows ioctl");
}

/* One request to the API socket at path, the answer's status line
 * checked; the connection closed by the client. */
static void api_request(const char *path, const char *req, size_t len, const char *want)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[4096];
	size_t n = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		_exit(CHILD_WRONG_RESULT);
	while (len) {
		ssize_t w = send(fd, req, len, MSG_NOSIGNAL);
		if (w <= 0)
			_exit(CHILD_WRONG_RESULT);
		req += w;
		len -= (size_t)w;
	}
	while (n < sizeof(buf) - 1 && !memmem(buf, n, "\r\n\r\n", 4)) {
		ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (r <= 0)
			_exit(CHILD_WRONG_RESULT);
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (strncmp(buf, want, strlen(want)))
		_exit(CHILD_WRONG_RESULT);
	close(fd);
}

/* In a child: the policy on, the API thread enters its filter, and serves
 * a GET, a PUT with a body, a body over the cap and a bad path while the
 * main thread (unfiltered) is its client; then stops. Any call outside
 * the API table kills the child with SIGSYS. */
static void api_under_filter(void)
{
	char dir[] = "/tmp/flint-api-seccomp-XXXXXX", path[64], err[256];
	struct api_ctl *ctl;
	struct api_http *http;
	static char big[3 * API_MAX_BODY + 128];

	if (!mkdtemp(dir))
		_exit(CHILD_WRONG_RESULT);
	snprintf(path, sizeof(path), "%s/api.sock", dir);
	if (seccomp_configure(SECCOMP_KILL, -1) < 0 ||
	    api_ctl_create(&ctl, NULL, NULL, NULL, NULL) < 0)
		_exit(CHILD_NO_FILTER);
	if (api_http_start(&http, path, ctl, err, sizeof(err)) < 0)
		_exit(CHILD_NO_FILTER);
	const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *put = "PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\n\r\n"
			  "{\"vcpu_count\": 2, \"mem_size_mib\": 256}";
	api_request(path, get, strlen(get), "HTTP/1.1 200");
	api_request(path, put, strlen(put), "HTTP/1.1 204");
	int h = snprintf(big, sizeof(big),
			 "PUT /boot-source HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
			 3 * API_MAX_BODY);
	memset(big + h, ' ', sizeof(big) - (size_t)h);
	api_request(path, big, (size_t)h + 3 * API_MAX_BODY, "HTTP/1.1 400");
	const char *bad = "GET /balloon/x HTTP/1.1\r\nHost: x\r\n\r\n";
	api_request(path, bad, strlen(bad), "HTTP/1.1 400");
	api_http_stop(http);
	api_ctl_destroy(ctl);
	rmdir(dir);
}

Test(seccomp, api_thread_serves_under_its_filter)
{
	allowed(in_child(SECCOMP_THREADS, false, api_under_filter),
		"API requests under the filter");
}
