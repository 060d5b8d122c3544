/* seccomp filters: one allow list per kind of flint thread, each installed
 * by the thread itself before it does work a guest can influence.
 *
 * Each table in seccomp.c lists the system calls one kind of thread makes
 * once running, glibc's own calls included, with argument conditions where
 * the code allows them: ioctl only with the requests that thread issues,
 * mmap/mprotect only without PROT_EXEC, tgkill only to this process with the
 * vCPU kick signal, socket only for AF_UNIX, send and recv without an
 * address. No table has execve, open or openat, clone, ptrace and the like:
 * every file and thread is made before the filters go on (only flint run's
 * socket and directory are removed at exit). Anything else kills the whole
 * process with SIGSYS
 * (SCMP_ACT_KILL_PROCESS), or is only logged to the kernel log in log mode
 * (--seccomp-log, for finding a missing call: "audit: ... syscall=N" names
 * the thread in comm=).
 *
 * Every thread installs its own filter, without SECCOMP_FILTER_FLAG_TSYNC,
 * and a new thread inherits the filters of the thread that creates it (all
 * of them apply: the strictest answer wins). So the order matters:
 *  - the main thread creates the event-loop thread and the vCPU threads in
 *    vm_run and installs its own filter only after that, before it serves
 *    the console, signals and stop requests. Had it installed first, every
 *    other table would be cut down to the main thread's, and the main
 *    thread's would need KVM_RUN. Between starting the vCPUs and its own
 *    install it runs no code that reads guest-controlled data;
 *  - the `flint run` thread, the API thread (api_http_start) and the
 *    --control-fd thread (cmd/ctlfd.c) are created by the main thread
 *    before vm_run, and the event-loop and vCPU threads by the main thread
 *    before its install: none inherits a filter, and each installs its
 *    own first thing. The API thread serves
 *    requests whose api_vm_ops run on it, so those hand their work to the
 *    control thread (the mailbox) rather than make calls of their own; so
 *    does the --control-fd thread with a reset (vm_reset), whose KVM
 *    ioctls and madvise are the main thread's.
 *  - no thread creates threads after its filter is on (clone is in no
 *    table), so no thread ever runs under a filter meant for another.
 * The threads share one address space, so a filter confines what a thread
 * can ask of the kernel, not what a subverted thread can do to another's
 * memory: the tables are defence in depth for each thread, and the narrowest
 * ones (vCPU, event loop) guard the code the guest drives directly.
 *
 * glibc makes calls of its own that the source does not show; the tables
 * list those found under the filters in the tests (a pthread_kill's getpid
 * and rt_sigprocmask, tcsetattr's TCGETS, a finished thread's madvise). One
 * is avoided instead: trimming a thread's own malloc arena opens
 * /proc/sys/vm/overcommit_memory, so seccomp_configure() limits malloc to
 * the main arena (M_ARENA_MAX 1) before any thread starts.
 *
 * io_uring submissions do not pass through seccomp: the event loop's ring
 * and each drive's ring are restricted to their own opcode tables instead
 * (evloop.c, blk_ring.c). */
#ifndef FLINT_SECCOMP_H
#define FLINT_SECCOMP_H

#include <linux/filter.h>
#include <seccomp.h> /* libseccomp's: project headers are -iquote */
#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

enum seccomp_thread {
	SECCOMP_MAIN,	 /* console, host signals, stop requests, teardown */
	SECCOMP_VCPU,	 /* KVM_RUN and the exit handlers */
	SECCOMP_EVLOOP,	 /* io_uring loop and the device work on it */
	SECCOMP_RUN,	 /* flint run's relay to the guest agent */
	SECCOMP_API,	 /* the HTTP API: libmicrohttpd, jansson, the controller */
	SECCOMP_CONTROL, /* flint --control-fd: reset requests to the mailbox */
	SECCOMP_THREADS
};

/* What the filters do with a call outside a thread's table: kill the
 * process (the default), only log it (--seccomp-log), or there are no
 * filters at all (--no-seccomp, Firecracker's option of that name). */
enum seccomp_mode {
	SECCOMP_KILL,
	SECCOMP_LOG,
	SECCOMP_OFF,
};

#define SECCOMP_MAX_CONDS 2

/* One row of an allow list: the system call `nr` (`name`, for messages and
 * tests), allowed when all of the first `nconds` argument conditions hold
 * (any arguments when 0). Several rows for one call are alternatives. */
struct seccomp_rule {
	const char *name;
	int nr;
	unsigned nconds;
	struct scmp_arg_cmp conds[SECCOMP_MAX_CONDS];
};

/* The rows of one thread kind's table; *n gets their count. */
const struct seccomp_rule *seccomp_table(enum seccomp_thread kind, size_t *n);

/* "main", "vcpu", "evloop", "run", "api"; NULL for a bad kind. */
const char *seccomp_thread_name(enum seccomp_thread kind);
/* The kind named `name`, or -EINVAL. */
int seccomp_thread_by_name(const char *name) WARN_UNUSED;

/* Build kind's filter and write it to fd as BPF, without installing it (for
 * tests and inspection). Returns 0 or -errno. */
int seccomp_export(enum seccomp_thread kind, bool log_only, int fd) WARN_UNUSED;

/* Build kind's filter and install it on the calling thread only (with
 * no_new_privs, no TSYNC). Calls outside the table then kill the process,
 * or are logged and allowed when log_only. Returns 0 or -errno. */
int seccomp_install(enum seccomp_thread kind, bool log_only) WARN_UNUSED;

/* Process-wide policy, set once from the command line before any thread
 * starts: the mode (filters that kill, the default of a VM run; filters
 * that log; none, with a warning), and the test hook: `test_thread` (a
 * kind, or -1 for none) makes one forbidden call (execve of "") right
 * after installing its filter, so that tests can see the filter kill, log,
 * or (with none) let it through, on that thread. With filters, checks that
 * the kernel and libseccomp support the actions used, and keeps malloc in
 * the main arena (see above). Returns 0 or -errno. */
int seccomp_configure(enum seccomp_mode mode, int test_thread) WARN_UNUSED;

/* kind's program under the policy set by seccomp_configure, as
 * seccomp_enter installs it: built once a process by the first thread that
 * asks (under a lock; the vCPU threads then share it), after which the
 * memory libseccomp worked in is given back (malloc_trim) rather than left
 * in flint's RSS. *out stays valid for the process's life. Returns 0 or
 * -errno. */
int seccomp_program(enum seccomp_thread kind, const struct sock_fprog **out) WARN_UNUSED;

/* What each thread calls first: install kind's filter per the policy set
 * by seccomp_configure (nothing when it was never called, as in the unit
 * tests of other modules, or when it said SECCOMP_OFF), then run the test
 * hook if it names this kind.
 * Returns 0 or -errno; the caller stops the VM on failure. */
int seccomp_enter(enum seccomp_thread kind) WARN_UNUSED;

#endif
