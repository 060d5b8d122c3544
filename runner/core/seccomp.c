#include "core/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/vcpu.h"

/* The tables are aligned by hand: one row a line, its reason beside it. */
/* clang-format off */

/* Placeholders for values known only at run time, filled in by build(). */
#define THIS_PID	0xf11e7000000001ULL /* getpid() */
#define KICK_SIGNAL	0xf11e7000000002ULL /* VCPU_KICK_SIGNAL */

/* O_TMPFILE's own bit: glibc's __O_TMPFILE includes O_DIRECTORY, which a
 * snapshot's directory fsync opens with. */
#define O_TMPFILE_ONLY	020000000

/* Conditions: argument i equals v; argument i has none of the bits in m. */
#define ARG_EQ(i, v)	  {.arg = i, .op = SCMP_CMP_EQ, .datum_a = v}
#define ARG_WITHOUT(i, m) {.arg = i, .op = SCMP_CMP_MASKED_EQ, .datum_a = m, .datum_b = 0}

#define ALLOW(sys)	  {#sys, SCMP_SYS(sys), 0, {{0}}}
#define ALLOW_IF(sys, ...) \
	{#sys, SCMP_SYS(sys), ARRAY_SIZE(((struct scmp_arg_cmp[]){__VA_ARGS__})), {__VA_ARGS__}}
/* ioctl with exactly this request, whatever the fd. */
#define IOCTL(req)	  ALLOW_IF(ioctl, ARG_EQ(1, req))
/* mmap and mprotect for data only: no executable mappings after start-up. */
#define NO_EXEC(sys)	  ALLOW_IF(sys, ARG_WITHOUT(2, PROT_EXEC))

/* What every thread needs, glibc's own calls included:
 *   futex			mutexes, condition variables (the mailbox's
 *				answers, a parked vCPU), pthread_join
 *   write			log lines (one write each), eventfds, console output
 *   poll(timeout 0)		whether stderr takes a log line now, where it
 *				could not be made non-blocking (pr_stderr)
 *   sendto(MSG_DONTWAIT | MSG_NOSIGNAL, no address)
 *				the same to a socket (stdout and stderr under
 *				systemd), never waiting for its reader (util.h's
 *				nb_out: pr_stderr_nonblocking, the console)
 *   clock_gettime		now_ns(), where the vDSO falls back to the kernel
 *   mmap, mprotect, munmap, brk	malloc and free: the main arena, large
 *				blocks (seccomp_configure keeps every thread
 *				in the main arena)
 *   madvise(MADV_DONTNEED)	glibc dropping the stack of a finished thread;
 *				a balloon's inflate or free page hints giving
 *				guest pages back (gmem_discard, on the event
 *				loop or a vCPU)
 *   getpid, gettid, rt_sigprocmask, tgkill(this process, kick signal)
 *				pthread_kill(vCPU, kick), from any thread that
 *				stops the VM (glibc blocks signals around it)
 *   exit, exit_group		a thread's end, the process's end */
#define COMMON_RULES \
	ALLOW(futex), \
	ALLOW(write), \
	ALLOW_IF(poll, ARG_EQ(2, 0)), \
	ALLOW_IF(sendto, ARG_EQ(3, MSG_DONTWAIT | MSG_NOSIGNAL), ARG_EQ(4, 0)), \
	ALLOW(clock_gettime), \
	NO_EXEC(mmap), NO_EXEC(mprotect), ALLOW(munmap), ALLOW(brk), \
	ALLOW_IF(madvise, ARG_EQ(2, MADV_DONTNEED)), \
	ALLOW(getpid), ALLOW(gettid), ALLOW(rt_sigprocmask), \
	ALLOW_IF(tgkill, ARG_EQ(0, THIS_PID), ARG_EQ(2, KICK_SIGNAL)), \
	ALLOW(exit), ALLOW(exit_group)

/* The main thread once the other threads run: the wait loop in vm_run and
 * the mailbox's actions it carries out (a pause waits for the vCPUs on
 * condition variables), then teardown and exit. */
static const struct seccomp_rule main_rules[] = {
	COMMON_RULES,
	ALLOW(poll),		/* the mailbox's eventfd, signalfd, stdin, console output, */
	ALLOW(read),		/* and a dead Uffd handler's userfaultfd (vm.c), */
	IOCTL(UFFDIO_WAKE),	/* whose waiting faults it wakes to fault anew */
	IOCTL(TCSETS),		/* tcsetattr: the terminal gets its settings back; */
	IOCTL(TCGETS),		/* glibc's tcsetattr reads them before and after */
	IOCTL(KVM_GET_CLOCK),	/* a pause keeps the guest's clock, */
	IOCTL(KVM_SET_CLOCK),	/* and a resume sets it back */
	ALLOW(pread64),		/* --stats: the KVM statistics of each vCPU */
	ALLOW(close),		/* teardown */
	ALLOW(io_uring_enter),	/* evloop_destroy cancels what a loop that never ran left */
	ALLOW(newfstatat),	/* the API socket is removed only while it is still ours */
	ALLOW(unlink),		/* flint run: its socket, and the API's; */
	ALLOW(rmdir),		/* and its private directory */
	/* PATCH /drives after boot: blk_set_backing opens the new image (no
	 * file is truncated), locks it and reads its size. PUT
	 * /snapshot/create (vm_snap.c) creates its two files: the memory file
	 * (truncated by ftruncate only once it is known not to be the one the
	 * guest's memory is mapped from) and the state file's temporary one;
	 * it opens the state file's directory to fsync it and, when the host
	 * swaps, /proc/self/pagemap. */
	ALLOW_IF(openat, ARG_WITHOUT(2, O_TRUNC | O_PATH | O_TMPFILE_ONLY)),
	ALLOW_IF(fcntl, ARG_EQ(1, F_OFD_SETLK)),	/* its lock, */
	ALLOW_IF(fcntl, ARG_EQ(1, F_OFD_GETLK)),	/* and who holds it if refused */
	ALLOW_IF(fcntl, ARG_EQ(1, F_SETFL)),	/* O_NONBLOCK off: a disk, a memory file */
	IOCTL(BLKGETSIZE64),	/* a block device's size */
	IOCTL(BLKSSZGET),	/* and sector size, and with O_DIRECT */
	ALLOW(statx),		/* a file's direct-I/O alignment */
	/* PUT /snapshot/create, on this thread with the vCPUs paused: */
	ALLOW(ftruncate),	/* the memory file's size (its holes) */
	ALLOW(pwrite64),	/* guest pages, in runs */
	ALLOW(lseek),		/* SEEK_DATA/SEEK_HOLE: which pages a file holds */
	ALLOW(mincore),		/* which guest pages hold data */
	ALLOW(sysinfo),		/* whether the host swaps (then pagemap, not mincore) */
	ALLOW(fsync),		/* both files and the directory, before and after */
	ALLOW(rename),		/* the state file's atomic replace */
	IOCTL(KVM_GET_DIRTY_LOG),	/* a diff snapshot's pages */
	IOCTL(KVM_CHECK_EXTENSION),	/* vcpu_state.c: the XSAVE area's size, TSC kHz */
	IOCTL(KVM_GET_MSR_INDEX_LIST),	/* the MSRs KVM can save */
	IOCTL(KVM_GET_REGS), IOCTL(KVM_GET_SREGS), IOCTL(KVM_GET_XSAVE), IOCTL(KVM_GET_XSAVE2),
	IOCTL(KVM_GET_XCRS), IOCTL(KVM_GET_LAPIC), IOCTL(KVM_GET_MSRS),
	IOCTL(KVM_GET_VCPU_EVENTS), IOCTL(KVM_GET_MP_STATE), IOCTL(KVM_GET_DEBUGREGS),
	IOCTL(KVM_GET_TSC_KHZ),	/* each vCPU's state (vcpu_state.h lists it) */
	/* A reset in place (vm_reset, vm_snap.c), with the vCPUs paused: the
	 * guest's memory dropped (madvise(MADV_DONTNEED), above), then the
	 * snapshot's state put back as a restore does, and the devices
	 * reset and activated as by the driver: */
	IOCTL(KVM_SET_GSI_ROUTING),	/* vm_state.c: the I/O APIC's routes */
	IOCTL(KVM_SET_MSRS), IOCTL(KVM_SET_TSC_KHZ), IOCTL(KVM_SET_MP_STATE),
	IOCTL(KVM_SET_REGS), IOCTL(KVM_SET_SREGS), IOCTL(KVM_SET_XSAVE), IOCTL(KVM_SET_XCRS),
	IOCTL(KVM_SET_DEBUGREGS), IOCTL(KVM_SET_LAPIC),
	IOCTL(KVM_SET_VCPU_EVENTS),	/* vcpu_state.c */
	IOCTL(TUNSETOFFLOAD),	/* virtio-net's reset and activate */
	/* and memory hot-plug's blocks unplugged, then those the snapshot
	 * had plugged again: their KVM slots dropped and made */
	IOCTL(KVM_SET_USER_MEMORY_REGION),
};

/* A vCPU thread: KVM_RUN and the exit handlers (serial, virtio-mmio
 * registers, boot timer, i8042 reset). */
static const struct seccomp_rule vcpu_rules[] = {
	COMMON_RULES,
	IOCTL(KVM_RUN),
	IOCTL(KVM_GET_REGS),	/* where the guest was when it crashed */
	IOCTL(KVM_GET_SREGS),
	IOCTL(KVM_KVMCLOCK_CTRL), /* a pause: tell the guest's kvmclock (then park: futex) */
	IOCTL(KVM_SET_GSI_ROUTING),	/* the guest (un)masked an I/O APIC pin */
	/* and does it too often: its turn (ioapic.c), a relative sleep */
	ALLOW_IF(clock_nanosleep, ARG_EQ(0, CLOCK_MONOTONIC), ARG_EQ(1, 0)),
	IOCTL(TUNSETOFFLOAD),	/* virtio-net's activate and reset, on a status write */
	ALLOW(pread64),		/* the boot timer snapshots KVM's exit count */
	ALLOW(rt_sigreturn),	/* from the kick handler */
	ALLOW(io_uring_enter),	/* virtio-blk's reset waits for its drive's I/O */
};

/* The event-loop thread: the ring, and what its completion handlers do for
 * the devices (net: everything through the loop's ring; blk: through its
 * drive's own ring, io_uring_enter as well; vsock: the muxer's Unix
 * sockets). */
static const struct seccomp_rule evloop_rules[] = {
	COMMON_RULES,
	ALLOW(io_uring_enter),
	ALLOW(read),		/* eventfds: ioeventfds, the loop's wake-up */
	/* vsock: host connections to the muxer's socket, guest ones to
	 * <uds>_<port>; a connection's CONNECT line, data and ends. */
	ALLOW(accept4),
	ALLOW_IF(socket, ARG_EQ(0, AF_UNIX)),
	ALLOW(connect),
	ALLOW_IF(recvfrom, ARG_EQ(4, 0)),	/* recv(): no source address */
	ALLOW(readv),
	ALLOW(sendmsg),
	ALLOW(shutdown),
	ALLOW(close),
	ALLOW(getrandom),	/* the entropy device fills the guest's buffers (rng.c) */
	/* virtio-mem: a KVM slot of the hot-plug region made or dropped as
	 * the guest plugs or unplugs its blocks (and madvise, above, gives
	 * the memory back) */
	IOCTL(KVM_SET_USER_MEMORY_REGION),
};

/* flint run's relay thread: the agent's connection, stdin, stdout, stderr. */
static const struct seccomp_rule run_rules[] = {
	COMMON_RULES,
	ALLOW(poll),
	ALLOW(accept4),
	ALLOW(read),
	ALLOW_IF(sendto, ARG_EQ(4, 0)),	/* send(): frames to the agent, no address */
	ALLOW(close),
	/* A connection of its own to the agent (a restored guest, or after
	 * --save-snapshot's reset), through the vsock device's Unix socket: */
	ALLOW_IF(socket, ARG_EQ(0, AF_UNIX)),	/* a Unix socket only, */
	ALLOW(connect),				/* to the device's socket; */
	ALLOW_IF(recvfrom, ARG_EQ(4, 0)),	/* recv(): its "OK" line, no source address */
	ALLOW(pread64),		/* --phase-fd: KVM's exit counters at the first output */
};

/* flint --restore --control-fd: the thread that reads "reset" lines on
 * the inherited fd, hands each to the VM's control thread (the mailbox:
 * futex) and writes the answer; the fd's end stops the VM (a kick:
 * tgkill). */
static const struct seccomp_rule control_rules[] = {
	COMMON_RULES,
	ALLOW(poll),		/* the fd and the stop eventfd */
	ALLOW(read),		/* both */
};

/* The API thread (runner/api/http.c): libmicrohttpd driven from its epoll
 * fd, the router, jansson and the controller, whose api_vm_ops hand their
 * work to the VM's control thread and wait (futex). No ioctl at all. */
static const struct seccomp_rule api_rules[] = {
	COMMON_RULES,
	ALLOW(poll),		/* the daemon's epoll fd and the stop eventfd */
	ALLOW(epoll_wait),	/* MHD_run */
	ALLOW(epoll_ctl),	/* a new connection joins the daemon's epoll set */
	ALLOW(accept4),		/* a client on the API socket */
	ALLOW(read),		/* the daemon's own wake-up eventfd (MHD_run drains it) */
	ALLOW_IF(recvfrom, ARG_EQ(4, 0)),	/* recv(): requests, no source address */
	ALLOW_IF(sendto, ARG_EQ(4, 0)),		/* send(): answers, no address */
	ALLOW(sendmsg),		/* an answer's header and body in one call */
	ALLOW(shutdown),	/* a connection's end */
	ALLOW(close),
};

/* clang-format on */

static const struct {
	const char *name;
	const struct seccomp_rule *rules;
	size_t n;
} tables[SECCOMP_THREADS] = {
    [SECCOMP_MAIN] = {"main", main_rules, ARRAY_SIZE(main_rules)},
    [SECCOMP_VCPU] = {"vcpu", vcpu_rules, ARRAY_SIZE(vcpu_rules)},
    [SECCOMP_EVLOOP] = {"evloop", evloop_rules, ARRAY_SIZE(evloop_rules)},
    [SECCOMP_RUN] = {"run", run_rules, ARRAY_SIZE(run_rules)},
    [SECCOMP_API] = {"api", api_rules, ARRAY_SIZE(api_rules)},
    [SECCOMP_CONTROL] = {"control", control_rules, ARRAY_SIZE(control_rules)},
};

/* Written once by seccomp_configure() before any thread starts. */
static struct {
	bool on;
	bool log_only;
	bool said_off;
	int test_thread;
} policy = {.test_thread = -1};

/* Each kind's program under the policy, built by the first thread of that
 * kind and kept: the vCPU threads share one. */
static struct {
	pthread_mutex_t lock;
	struct sock_fprog prog[SECCOMP_THREADS];
} built = {.lock = PTHREAD_MUTEX_INITIALIZER};

const struct seccomp_rule *seccomp_table(enum seccomp_thread kind, size_t *n)
{
	if ((unsigned)kind >= SECCOMP_THREADS) {
		*n = 0;
		return NULL;
	}
	*n = tables[kind].n;
	return tables[kind].rules;
}

const char *seccomp_thread_name(enum seccomp_thread kind)
{
	return (unsigned)kind < SECCOMP_THREADS ? tables[kind].name : NULL;
}

int seccomp_thread_by_name(const char *name)
{
	for (int i = 0; i < SECCOMP_THREADS; i++)
		if (!strcmp(name, tables[i].name))
			return i;
	return -EINVAL;
}

static uint64_t fill_in(uint64_t datum)
{
	if (datum == THIS_PID)
		return (uint64_t)getpid();
	if (datum == KICK_SIGNAL)
		return VCPU_KICK_SIGNAL;
	return datum;
}

/* kind's filter as a libseccomp context, or NULL with *err set. */
static scmp_filter_ctx build(enum seccomp_thread kind, bool log_only, int *err)
{
	uint32_t deny = log_only ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	scmp_filter_ctx ctx;
	size_t n;
	const struct seccomp_rule *rules = seccomp_table(kind, &n);
	int r = -EINVAL;

	if (!rules || !(ctx = seccomp_init(deny))) {
		*err = rules ? -ENOMEM : -EINVAL;
		return NULL;
	}
	/* A call through another ABI (int 0x80, x32) gets the same answer.
	 * Level 2 turns the list into a binary search over syscall numbers. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, deny)) < 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0)
		goto err;
	for (size_t i = 0; i < n; i++) {
		struct scmp_arg_cmp c[SECCOMP_MAX_CONDS];
		for (unsigned j = 0; j < rules[i].nconds; j++) {
			c[j] = rules[i].conds[j];
			c[j].datum_a = fill_in(c[j].datum_a);
		}
		r = seccomp_rule_add_exact_array(ctx, SCMP_ACT_ALLOW, rules[i].nr, rules[i].nconds,
						 c);
		if (r < 0) {
			pr_err("seccomp: %s table: cannot add %s: %s", tables[kind].name,
			       rules[i].name, strerror(-r));
			goto err;
		}
	}
	return ctx;
err:
	seccomp_release(ctx);
	*err = r;
	return NULL;
}

int seccomp_export(enum seccomp_thread kind, bool log_only, int fd)
{
	int r;
	scmp_filter_ctx ctx = build(kind, log_only, &r);

	if (!ctx)
		return r;
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	return r;
}

/* kind's filter as BPF: libseccomp's program, exported into a memfd and
 * read back (libseccomp 2.5 exports to a descriptor only). */
static int build_prog(enum seccomp_thread kind, bool log_only, struct sock_fprog *out)
{
	struct sock_filter *f = NULL;
	int fd, r;
	off_t len;

	if ((fd = memfd_create("flint-seccomp", MFD_CLOEXEC)) < 0)
		return -errno;
	if ((r = seccomp_export(kind, log_only, fd)) < 0)
		goto out;
	len = lseek(fd, 0, SEEK_CUR);
	if (len <= 0 || len % (off_t)sizeof(*f) || len / (off_t)sizeof(*f) > BPF_MAXINSNS) {
		r = -EINVAL;
		goto out;
	}
	if (!(f = malloc((size_t)len))) {
		r = -ENOMEM;
		goto out;
	}
	if (pread(fd, f, (size_t)len, 0) != len) {
		r = -EIO;
		free(f);
		goto out;
	}
	out->filter = f;
	out->len = (unsigned short)(len / (off_t)sizeof(*f));
	r = 0;
out:
	close(fd);
	return r;
}

/* As libseccomp's seccomp_load: no_new_privs (SCMP_FLTATR_CTL_NNP's
 * default), then prog on the calling thread alone (no TSYNC flag). */
static int load_prog(const struct sock_fprog *prog)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
		return -errno;
	return 0;
}

/* A build on a thread of its own (build_apart). */
struct build_job {
	enum seccomp_thread kind;
	bool log_only;
	struct sock_fprog *out;
	int r;
};

static void *build_thread(void *arg)
{
	struct build_job *j = arg;

	j->r = build_prog(j->kind, j->log_only, j->out);
	return NULL;
}

/* Stack for build_apart's thread (libseccomp's program generation
 * recurses), above a guard page. */
#define BUILD_STACK (512u * 1024)
#define BUILD_GUARD 4096u

/* build_prog on a short-lived thread, with a stack of our own. libseccomp
 * makes and frees thousands of small blocks; freed by a long-lived thread,
 * they would wait in its malloc cache (tcache), each one keeping the free
 * space around it from being given back, for the VM's life (some 50 KiB
 * of heap). When this thread ends, glibc returns its cache to the heap,
 * where malloc_trim can release the pages. Its stack is mapped here, with
 * a guard page below, and unmapped after: not one glibc keeps for reuse.
 * The thread takes no signals. Where no thread can be started (a tight
 * pids.max), the build runs on the caller's, RSS being all that costs. */
static int build_apart(enum seccomp_thread kind, bool log_only, struct sock_fprog *out)
{
	struct build_job j = {.kind = kind, .log_only = log_only, .out = out};
	uint8_t *map = lazy_zalloc(BUILD_GUARD + BUILD_STACK);
	pthread_attr_t a;
	pthread_t t;
	int r = -ENOMEM;

	if (map && mprotect(map, BUILD_GUARD, PROT_NONE) == 0 && pthread_attr_init(&a) == 0) {
		r = -pthread_attr_setstack(&a, map + BUILD_GUARD, BUILD_STACK);
		if (!r)
			r = -thread_start_unsignalled(&t, &a, build_thread, &j);
		pthread_attr_destroy(&a);
		if (!r)
			pthread_join(t, NULL);
	}
	lazy_free(map, BUILD_GUARD + BUILD_STACK);
	return r ? build_prog(kind, log_only, out) : j.r;
}

int seccomp_install(enum seccomp_thread kind, bool log_only)
{
	struct sock_fprog prog;
	int r = build_prog(kind, log_only, &prog);

	if (r < 0)
		return r;
	r = load_prog(&prog);
	free(prog.filter);
	return r;
}

int seccomp_program(enum seccomp_thread kind, const struct sock_fprog **out)
{
	int r = 0;

	*out = NULL;
	if ((unsigned)kind >= SECCOMP_THREADS)
		return -EINVAL;
	pthread_mutex_lock(&built.lock);
	if (!built.prog[kind].filter) {
		r = build_apart(kind, policy.log_only, &built.prog[kind]);
		/* libseccomp's working memory (its rule database and the program
		 * it generated) went back to the heap, where it would stay
		 * resident for the VM's life. */
		malloc_trim(0);
	}
	if (!r)
		*out = &built.prog[kind];
	pthread_mutex_unlock(&built.lock);
	return r;
}

int seccomp_configure(enum seccomp_mode mode, int test_thread)
{
	if (test_thread >= SECCOMP_THREADS)
		return -EINVAL;
	policy.test_thread = test_thread;
	if (mode == SECCOMP_OFF) {
		/* Once, though a VM's set-up configures again what flint's
		 * command set. */
		if (!policy.said_off)
			pr_warn("seccomp: no filters (--no-seccomp): every thread may make "
				"any system call");
		policy.said_off = true;
		return 0;
	}
	/* Level 3: the kernel and the library know SECCOMP_RET_KILL_PROCESS
	 * and SECCOMP_RET_LOG (Linux 4.14). */
	if (seccomp_api_get() < 3) {
		pr_err("seccomp: this kernel or libseccomp lacks the kill-process and log "
		       "actions (Linux 4.14, libseccomp 2.4)");
		return -ENOSYS;
	}
	/* Every thread allocates from the main arena, which grows and shrinks
	 * with brk. A thread's own arena would be trimmed by shrink_heap(),
	 * which reads /proc/sys/vm/overcommit_memory the first time: an openat
	 * no filter allows. Before any thread exists, so none has an arena. */
	if (mallopt(M_ARENA_MAX, 1) != 1)
		return -EINVAL;
	policy.on = true;
	policy.log_only = mode == SECCOMP_LOG;
	return 0;
}

/* The test hook: a call no table allows, harmless when only logged (execve
 * of an empty path fails with ENOENT). */
static void forbidden_call(enum seccomp_thread kind)
{
	static char *const none[] = {NULL};

	pr_info("seccomp test hook: execve on the %s thread", tables[kind].name);
	long r = syscall(SYS_execve, "", none, none);
	pr_info("seccomp test hook: execve on the %s thread returned %ld (%s): %s",
		tables[kind].name, r, strerror(errno),
		policy.on ? "logged, not killed" : "no filter");
}

int seccomp_enter(enum seccomp_thread kind)
{
	const struct sock_fprog *prog;
	int r;

	if (policy.on && ((r = seccomp_program(kind, &prog)) < 0 || (r = load_prog(prog)) < 0))
		return r;
	if (policy.test_thread == (int)kind)
		forbidden_call(kind);
	return 0;
}
