#include "core/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/kvm.h"
#include "core/logger.h"
#include "core/phases.h"
#include "core/seccomp.h"

#define SIG_KICK VCPU_KICK_SIGNAL

static const char *const exit_names[VCPU_EXIT_REASONS] = {
    [KVM_EXIT_UNKNOWN] = "UNKNOWN",
    [KVM_EXIT_EXCEPTION] = "EXCEPTION",
    [KVM_EXIT_IO] = "IO",
    [KVM_EXIT_HYPERCALL] = "HYPERCALL",
    [KVM_EXIT_DEBUG] = "DEBUG",
    [KVM_EXIT_HLT] = "HLT",
    [KVM_EXIT_MMIO] = "MMIO",
    [KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
    [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
    [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
    [KVM_EXIT_INTR] = "INTR",
    [KVM_EXIT_SET_TPR] = "SET_TPR",
    [KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
    [KVM_EXIT_NMI] = "NMI",
    [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
    [KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
    [KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
    [KVM_EXIT_X86_WRMSR] = "X86_WRMSR",
    [KVM_EXIT_IOAPIC_EOI] = "IOAPIC_EOI",
};

const char *vcpu_exit_name(unsigned reason)
{
	if (reason < VCPU_EXIT_REASONS && exit_names[reason])
		return exit_names[reason];
	return "OTHER";
}

static enum vcpu_action fatal(struct vcpu *v, const char *fmt, ...) PRINTF(2, 3);
static enum vcpu_action fatal(struct vcpu *v, const char *fmt, ...)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->fatal, sizeof(v->fatal), fmt, ap);
	va_end(ap);
	/* Where the guest was: enough to find a crash in its System.map.
	 * KVM on AMD resets the vCPU at a triple fault (the VMCB is undefined
	 * after a shutdown intercept): the reset state says nothing, so say
	 * that instead. */
	n = strlen(v->fatal);
	if (v->fd < 0 || ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return VCPU_FATAL;
	if (r.rip == 0xfff0 && s.cs.base == 0xffff0000 && !(s.cr0 & 1))
		snprintf(v->fatal + n, sizeof(v->fatal) - n,
			 "; its registers are lost (KVM reset the vCPU, as it does on AMD)");
	else
		snprintf(v->fatal + n, sizeof(v->fatal) - n,
			 "; rip %#llx rsp %#llx cr0 %#llx cr2 %#llx cr3 %#llx cr4 %#llx efer %#llx",
			 (unsigned long long)r.rip, (unsigned long long)r.rsp,
			 (unsigned long long)s.cr0, (unsigned long long)s.cr2,
			 (unsigned long long)s.cr3, (unsigned long long)s.cr4,
			 (unsigned long long)s.efer);
	return VCPU_FATAL;
}

static void handle_io(struct vcpu *v, struct kvm_run *run)
{
	/* data_offset and size*count come from KVM, which keeps them inside
	 * the kvm_run mapping; still bound them against it when we know it. */
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t size = run->io.size;

	if (v->run_size &&
	    ((uint64_t)run->io.data_offset + (uint64_t)size * run->io.count > v->run_size)) {
		vcpu_count(&v->unhandled);
		return;
	}
	vcpu_count(&v->pio_exits);
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		bool ok = run->io.direction == KVM_EXIT_IO_OUT
			      ? bus_write(v->env->pio, run->io.port, data, size)
			      : bus_read(v->env->pio, run->io.port, data, size);
		if (!ok)
			vcpu_count(&v->unhandled);
	}
}

static void handle_mmio(struct vcpu *v, struct kvm_run *run)
{
	uint32_t len = run->mmio.len;
	bool ok;

	if (len > sizeof(run->mmio.data)) {
		vcpu_count(&v->unhandled);
		return;
	}
	vcpu_count(&v->mmio_exits);
	ok = run->mmio.is_write ? bus_write(v->env->mmio, run->mmio.phys_addr, run->mmio.data, len)
				: bus_read(v->env->mmio, run->mmio.phys_addr, run->mmio.data, len);
	if (!ok)
		vcpu_count(&v->unhandled);
}

static enum vcpu_action handle_system_event(struct vcpu *v, struct kvm_run *run)
{
	switch (run->system_event.type) {
	case KVM_SYSTEM_EVENT_RESET:
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		/* Both end the VM cleanly, as an i8042 reset does. */
		control_request_stop(v->env->ctl, STOP_GUEST_RESET, 0, NULL);
		return VCPU_STOP;
	case KVM_SYSTEM_EVENT_CRASH:
		return fatal(v, "guest reported a crash (vCPU %u)", v->id);
	default:
		return fatal(v, "unexpected system event %u on vCPU %u", run->system_event.type,
			     v->id);
	}
}

enum vcpu_action vcpu_handle_exit(struct vcpu *v, struct kvm_run *run)
{
	enum vcpu_action act = VCPU_CONTINUE;
	uint32_t reason = run->exit_reason;

	vcpu_count(&v->exits[reason < VCPU_EXIT_REASONS ? reason : KVM_EXIT_UNKNOWN]);
	switch (reason) {
	case KVM_EXIT_IO:
		handle_io(v, run);
		break;
	case KVM_EXIT_MMIO:
		handle_mmio(v, run);
		break;
	case KVM_EXIT_INTR:
		break; /* a kick: the stop check below decides */
	case KVM_EXIT_IOAPIC_EOI:
		/* The guest ended a level-triggered I/O APIC interrupt. flint's
		 * chip keeps no remote IRR (legacy/ioapic.h): nothing to do. */
		break;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; flint always has one. */
		return fatal(v, "vCPU %u halted with interrupts off", v->id);
	case KVM_EXIT_SHUTDOWN:
		return fatal(v, "guest triple fault on vCPU %u (KVM_EXIT_SHUTDOWN)", v->id);
	case KVM_EXIT_FAIL_ENTRY:
		return fatal(v, "KVM could not enter vCPU %u (hardware reason 0x%llx)", v->id,
			     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	case KVM_EXIT_INTERNAL_ERROR:
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
			return fatal(v, "KVM failed to emulate an instruction on vCPU %u", v->id);
		return fatal(v, "KVM internal error on vCPU %u (suberror %u)", v->id,
			     run->internal.suberror);
	case KVM_EXIT_SYSTEM_EVENT:
		return handle_system_event(v, run);
	default:
		return fatal(v, "unexpected exit reason %u (%s) on vCPU %u", reason,
			     vcpu_exit_name(reason), v->id);
	}
	if (control_stopping(v->env->ctl))
		act = VCPU_STOP;
	return act;
}

/* immediate_exit cleared, then a full fence: the checks of stop and pause
 * that follow must not be read before the clear is seen by a kicker, or a
 * kick landing in between (its immediate_exit overwritten by this 0, its
 * signal spent in user space) would be lost, and an idle guest's vCPU
 * would stay in KVM_RUN with a stop or pause waiting (vcpu_kick pairs). */
static void clear_immediate_exit(struct vcpu *v)
{
	v->run->immediate_exit = 0;
	atomic_thread_fence(memory_order_seq_cst);
}

/* Out of KVM_RUN on a pause request: tell the guest, say so, and wait
 * for resume or stop. */
static void park(struct vcpu *v)
{
	/* The guest's kvmclock learns it was stopped, so that its watchdogs
	 * do not take the pause for a soft lockup. -EINVAL: no kvmclock. */
	v->kvmclock = ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0) < 0 ? -errno : 0;
	pthread_mutex_lock(&v->lock);
	v->parked = true;
	pthread_cond_broadcast(&v->cond);
	while (atomic_load(&v->pause) && !control_stopping(v->env->ctl))
		pthread_cond_wait(&v->cond, &v->lock);
	v->parked = false;
	pthread_mutex_unlock(&v->lock);
	/* The pause's kick may not have been used up; the loop checks stop
	 * and pause again before KVM_RUN, and a later kick sets it anew. */
	clear_immediate_exit(v);
}

/* An I/O exit's instruction is finished only when KVM_RUN is entered
 * again (KVM's API: userspace completes it before saving state). With
 * immediate_exit set KVM finishes it and returns, running no guest
 * instruction: before parking, so that a snapshot or a reset in place
 * (vm_reset) reads or sets the vCPU's state with no half-done instruction
 * under it. An instruction with a second access exits again: handled. */
static enum vcpu_action complete_io(struct vcpu *v)
{
	enum vcpu_action a = VCPU_CONTINUE;

	for (int i = 0; i < 16 && a == VCPU_CONTINUE; i++) {
		if (v->run->exit_reason != KVM_EXIT_IO && v->run->exit_reason != KVM_EXIT_MMIO)
			break;
		v->run->immediate_exit = 1;
		if (ioctl(v->fd, KVM_RUN, 0) < 0)
			break; /* EINTR: done (exit_reason is KVM_EXIT_INTR) */
		a = vcpu_handle_exit(v, v->run);
	}
	clear_immediate_exit(v);
	return a;
}

static void run_loop(struct vcpu *v)
{
	while (!control_stopping(v->env->ctl)) {
		if (atomic_load_explicit(&v->pause, memory_order_acquire)) {
			enum vcpu_action a = complete_io(v);

			if (a == VCPU_FATAL) {
				control_request_stop(v->env->ctl, STOP_GUEST_CRASH, 0, "%s",
						     v->fatal);
				break;
			}
			if (a == VCPU_STOP)
				break;
			park(v);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				clear_immediate_exit(v);
				vcpu_count(&v->exits[KVM_EXIT_INTR]);
				continue;
			}
			control_request_stop(v->env->ctl, STOP_ERROR, 0, "KVM_RUN on vCPU %u: %s",
					     v->id, strerror(errno));
			break;
		}
		/* The one cost of --phase-fd here: a flag cleared once read. */
		if (__builtin_expect(
			atomic_load_explicit(&phases_entry_pending, memory_order_relaxed), 0))
			phases_kernel_entry();
		enum vcpu_action a = vcpu_handle_exit(v, v->run);
		if (a == VCPU_FATAL) {
			control_request_stop(v->env->ctl, STOP_GUEST_CRASH, 0, "%s", v->fatal);
			break;
		}
		if (a == VCPU_STOP)
			break;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Before the first KVM_RUN: from here on the guest drives this thread. */
	char name[16];
	snprintf(name, sizeof(name), "vcpu%u", v->id);
	/* The thread names itself, before its filter: named by its creator,
	 * it could log (a seccomp audit line) or die under flint's name. */
	pthread_setname_np(pthread_self(), name);
	logger_thread_name(name);
	int r = seccomp_enter(SECCOMP_VCPU);
	if (r < 0)
		control_request_stop(v->env->ctl, STOP_ERROR, 0, "seccomp filter for vCPU %u: %s",
				     v->id, strerror(-r));
	else {
		struct kvm_regs regs;

		phases_vcpu_entering();
		run_loop(v);
		if (v->fd >= 0 && ioctl(v->fd, KVM_GET_REGS, &regs) == 0) {
			v->left_rip = regs.rip;
			v->left_valid = true;
		}
	}
	pthread_mutex_lock(&v->lock);
	v->exited = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

void vcpu_block_kick(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	sigset_t set;

	sigemptyset(&sa.sa_mask);
	sigaction(SIG_KICK, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int vcpu_create(struct vcpu *v, int sys_fd, int vm_fd, unsigned id, const struct vcpu_env *env)
{
	memset(v, 0, sizeof(*v));
	v->fd = v->stats_fd = -1;
	pthread_mutex_init(&v->lock, NULL);
	cond_init_monotonic(&v->cond);
	v->id = id;
	v->env = env;
	int size = ioctl(sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return size < 0 ? -errno : -EINVAL;
	v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return -errno;
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -errno;
	}
	v->run_size = size;
	v->stats_fd = ioctl(v->fd, KVM_GET_STATS_FD, 0);
	return 0;
}

int vcpu_start(struct vcpu *v)
{
	/* Under the lock that vcpu_kick takes: a kick either sees the thread
	 * started and signals it, or came before and left immediate_exit set
	 * for its first KVM_RUN. A kick in between was lost before, and the
	 * vCPU ran on after the VM stopped. */
	pthread_mutex_lock(&v->lock);
	int r = thread_start(&v->thread, vcpu_thread, v);
	if (!r)
		v->started = true;
	pthread_mutex_unlock(&v->lock);
	if (r)
		return -r;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->run)
		return;
	/* immediate_exit covers a kick that lands just before KVM_RUN, and
	 * one before the thread starts (its first KVM_RUN returns at once).
	 * Set after the flag the kick is for, seen in that order (the fence;
	 * clear_immediate_exit's is the other half). */
	atomic_thread_fence(memory_order_seq_cst);
	v->run->immediate_exit = 1;
	pthread_mutex_lock(&v->lock);
	if (v->started)
		pthread_kill(v->thread, SIG_KICK);
	/* A parked vCPU waits on cond, where the signal may not reach. */
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

void vcpu_pause(struct vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->pause, true);
	pthread_mutex_unlock(&v->lock);
	/* Not started: it parks before its first KVM_RUN (a restored VM
	 * that waits to be resumed). */
	if (!v->started)
		return;
	/* After the flag: the thread checks it after every exit from KVM_RUN,
	 * and the kick makes sure there is one soon. */
	vcpu_kick(v);
}

int vcpu_wait_paused(struct vcpu *v, uint64_t deadline_ns)
{
	int r = 0;

	if (!v->started)
		return 0;
	pthread_mutex_lock(&v->lock);
	while (!v->parked && !v->exited && r != ETIMEDOUT)
		r = cond_wait_until(&v->cond, &v->lock, deadline_ns);
	r = v->parked || v->exited ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&v->lock);
	return r;
}

void vcpu_resume(struct vcpu *v)
{
	if (!v->started)
		return;
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->pause, false);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

bool vcpu_parked(struct vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	bool p = v->parked;
	pthread_mutex_unlock(&v->lock);
	return p;
}

bool vcpu_alive(struct vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	bool a = v->started && !v->exited;
	pthread_mutex_unlock(&v->lock);
	return a;
}

void vcpu_abandon(struct vcpu *v)
{
	v->abandoned = true;
}

void vcpu_join(struct vcpu *v)
{
	if (v->abandoned)
		return;
	if (v->started)
		pthread_join(v->thread, NULL);
	pthread_mutex_lock(&v->lock);
	v->started = false;
	pthread_mutex_unlock(&v->lock);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->abandoned)
		return;
	vcpu_join(v);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	if (v->run)
		munmap(v->run, v->run_size);
	v->run = NULL;
	close_fd(&v->stats_fd);
	close_fd(&v->fd);
}

int vcpu_kvm_stat(struct vcpu *v, const char *name, uint64_t *val)
{
	struct kvm_stats_header h;
	int ret = -ENOENT;

	if (v->stats_fd < 0 || pread(v->stats_fd, &h, sizeof(h), 0) != sizeof(h))
		return -ENOENT;
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	uint8_t *descs = malloc(dsz * h.num_desc);
	if (!descs)
		return -ENOMEM;
	if (pread(v->stats_fd, descs, dsz * h.num_desc, h.desc_offset) !=
	    (ssize_t)(dsz * h.num_desc))
		goto out;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * dsz);
		if (strncmp(d->name, name, h.name_size) || d->size < 1)
			continue;
		if (pread(v->stats_fd, val, sizeof(*val), h.data_offset + d->offset) ==
		    sizeof(*val))
			ret = 0;
		break;
	}
out:
	free(descs);
	return ret;
}
