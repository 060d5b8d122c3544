/* Pause and resume against real vCPUs: vCPU 0 runs a two-instruction guest
 * that counts in guest memory, vCPU 1 waits for a SIPI inside KVM_RUN (an
 * AP nobody starts). A pause must stop the count and park both threads, a
 * resume must let it go on, and a stop must end a paused vCPU. Skipped
 * where /dev/kvm cannot be used. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/bus.h"
#include "core/control.h"
#include "core/gmem.h"
#include "core/kvm.h"
#include "core/vcpu.h"
#include "x86/cpuid.h"
#include "x86/layout.h"
#include "x86/loader.h"
#include "x86/x86.h"

#define NVCPUS	    2
#define CODE_ADDR   0x100000ULL
#define COUNTER_GPA 0x200000ULL
#define SECOND	    1000000000ULL

static struct {
	int sys_fd, vm_fd;
	struct gmem *mem;
	struct bus *pio, *mmio;
	struct control ctl;
	struct vcpu_env env;
	struct vcpu v[NVCPUS];
	volatile uint64_t *counter;
} k = {.sys_fd = -1, .vm_fd = -1};

static void kick_all(void *ctx)
{
	(void)ctx;
	for (unsigned i = 0; i < NVCPUS; i++)
		vcpu_kick(&k.v[i]);
}

static void setup(void)
{
	/* 1: incq COUNTER_GPA; jmp 1b */
	static const uint8_t code[] = {0x48, 0xff, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0xeb, 0xf6};
	uint64_t tss = KVM_TSS_ADDR, idmap = KVM_IDENTITY_MAP_ADDR;
	struct boot_info bi = {.entry = CODE_ADDR};
	const char *what = "";
	char err[512];
	unsigned max;

	/* This host's kvm_pvm runs these few instructions, as the smoke tests'. */
	setenv("FLINT_ALLOW_PVM", "1", 1);
	if (kvm_open(&k.sys_fd, err, sizeof(err)) < 0)
		cr_skip_test("no usable /dev/kvm: %s", err);
	k.vm_fd = ioctl(k.sys_fd, KVM_CREATE_VM, 0);
	cr_assert_geq(k.vm_fd, 0);
	cr_assert_eq(ioctl(k.vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss), 0);
	cr_assert_eq(ioctl(k.vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap), 0);
	cr_assert_eq(ioctl(k.vm_fd, KVM_CREATE_IRQCHIP, 0), 0);
	cr_assert_eq(gmem_create(&k.mem, 32 << 20), 0);
	const struct gmem_region *g = gmem_region(k.mem, 0);
	struct kvm_userspace_memory_region m = {.guest_phys_addr = g->gpa,
						.memory_size = g->size,
						.userspace_addr = (uint64_t)(uintptr_t)g->host};
	cr_assert_eq(ioctl(k.vm_fd, KVM_SET_USER_MEMORY_REGION, &m), 0);
	cr_assert_eq(x86_write_boot_tables(k.mem), 0);
	cr_assert_eq(gmem_write(k.mem, CODE_ADDR, code, sizeof(code)), 0);
	k.counter = gmem_ptr(k.mem, COUNTER_GPA, sizeof(uint64_t));

	cr_assert_eq(bus_create(&k.pio), 0);
	cr_assert_eq(bus_create(&k.mmio), 0);
	control_init(&k.ctl, kick_all, NULL);
	k.env = (struct vcpu_env){.pio = k.pio, .mmio = k.mmio, .ctl = &k.ctl};
	struct kvm_cpuid2 *supported = kvm_supported_cpuid(k.sys_fd, &max);
	cr_assert(supported);
	size_t sz = sizeof(*supported) + max * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *cpuid = malloc(sz);
	for (unsigned i = 0; i < NVCPUS; i++) {
		cr_assert_eq(vcpu_create(&k.v[i], k.sys_fd, k.vm_fd, i, &k.env), 0);
		memcpy(cpuid, supported, sz);
		cr_assert_eq(cpuid_setup(cpuid, max, i, NVCPUS), 0);
		cr_assert_eq(x86_vcpu_setup(k.v[i].fd, i, cpuid, &bi, &what), 0, "%s", what);
	}
	free(cpuid);
	free(supported);
	vcpu_block_kick();
	for (unsigned i = 0; i < NVCPUS; i++)
		cr_assert_eq(vcpu_start(&k.v[i]), 0);
}

static void teardown(void)
{
	control_request_stop(&k.ctl, STOP_REQUESTED, 0, NULL);
	for (unsigned i = 0; i < NVCPUS; i++)
		vcpu_destroy(&k.v[i]);
	bus_destroy(k.pio);
	bus_destroy(k.mmio);
	gmem_destroy(k.mem);
	close_fd(&k.vm_fd);
	close_fd(&k.sys_fd);
}

TestSuite(vcpu_pause, .init = setup, .fini = teardown, .timeout = 60);

/* The counter once it has passed `past`, or fail after 10 s. */
static uint64_t wait_count_past(uint64_t past)
{
	uint64_t end = now_ns() + 10 * SECOND, c;

	while ((c = *k.counter) <= past) {
		cr_assert_lt(now_ns(), end, "the guest did not count past %llu (at %llu)",
			     (unsigned long long)past, (unsigned long long)c);
		usleep(1000);
	}
	return c;
}

static void pause_all(void)
{
	uint64_t deadline = now_ns() + 5 * SECOND;

	for (unsigned i = 0; i < NVCPUS; i++)
		vcpu_pause(&k.v[i]);
	for (unsigned i = 0; i < NVCPUS; i++)
		cr_assert_eq(vcpu_wait_paused(&k.v[i], deadline), 0, "vCPU %u did not park", i);
}

static void resume_all(void)
{
	for (unsigned i = 0; i < NVCPUS; i++)
		vcpu_resume(&k.v[i]);
}

Test(vcpu_pause, a_pause_stops_the_count_and_a_resume_lets_it_go_on)
{
	uint64_t c = wait_count_past(1000);

	pause_all();
	for (unsigned i = 0; i < NVCPUS; i++)
		cr_assert(vcpu_parked(&k.v[i]), "vCPU %u", i);
	uint64_t paused = *k.counter;
	cr_assert_geq(paused, c);
	usleep(200 * 1000);
	cr_assert_eq(*k.counter, paused, "the guest counted while paused");
	/* The guest has no kvmclock, which KVM answers with EINVAL; any other
	 * error would mean the call itself is wrong. */
	cr_log_info("KVM_KVMCLOCK_CTRL on a paused vCPU: %s",
		    k.v[0].kvmclock ? strerror(-k.v[0].kvmclock) : "done");
	for (unsigned i = 0; i < NVCPUS; i++)
		cr_assert(k.v[i].kvmclock == 0 || k.v[i].kvmclock == -EINVAL,
			  "KVM_KVMCLOCK_CTRL on vCPU %u: %s", i, strerror(-k.v[i].kvmclock));

	resume_all();
	wait_count_past(paused + 1000);
	cr_assert_not(control_stopping(&k.ctl));
}

Test(vcpu_pause, pause_and_resume_over_and_over)
{
	uint64_t c = wait_count_past(0);

	for (int round = 0; round < 50; round++) {
		pause_all();
		uint64_t paused = *k.counter;
		usleep(2000);
		cr_assert_eq(*k.counter, paused, "round %d: counted while paused", round);
		/* A second pause of a paused vCPU is answered at once. */
		pause_all();
		resume_all();
		c = wait_count_past(paused);
	}
	(void)c;
}

Test(vcpu_pause, a_stop_ends_paused_vcpus)
{
	wait_count_past(0);
	pause_all();
	control_request_stop(&k.ctl, STOP_REQUESTED, 0, NULL);
	for (unsigned i = 0; i < NVCPUS; i++) {
		vcpu_join(&k.v[i]);
		cr_assert(k.v[i].exited, "vCPU %u", i);
		cr_assert_not(k.v[i].parked, "vCPU %u", i);
	}
}

Test(vcpu_pause, a_pause_waits_for_nothing_once_the_vcpu_has_ended)
{
	wait_count_past(0);
	control_request_stop(&k.ctl, STOP_REQUESTED, 0, NULL);
	for (unsigned i = 0; i < NVCPUS; i++) {
		/* Its thread is ending or gone: nothing is in KVM_RUN to wait for. */
		vcpu_pause(&k.v[i]);
		cr_assert_eq(vcpu_wait_paused(&k.v[i], now_ns() + 5 * SECOND), 0);
		vcpu_join(&k.v[i]);
		vcpu_pause(&k.v[i]);
		cr_assert_eq(vcpu_wait_paused(&k.v[i], now_ns()), 0, "joined: not started");
		vcpu_resume(&k.v[i]);
	}
}

/* vcpu_alive while the thread runs (parked too), not once it has ended; an
 * abandoned vCPU (vm.c: one stuck on memory nobody serves) is neither
 * joined nor freed: its thread runs on, its fd and kvm_run stay. */
Test(vcpu_pause, an_abandoned_vcpu_is_neither_joined_nor_freed)
{
	wait_count_past(0);
	pause_all();
	cr_assert(vcpu_alive(&k.v[0]));
	int fd = k.v[0].fd;
	vcpu_abandon(&k.v[0]);
	vcpu_join(&k.v[0]); /* at once: the parked thread is not waited for */
	vcpu_destroy(&k.v[0]);
	cr_assert(vcpu_alive(&k.v[0]), "joined");
	cr_assert_eq(k.v[0].fd, fd, "its fd was closed");
	cr_assert_not_null(k.v[0].run, "its kvm_run was unmapped");
	/* Taken back, for the teardown. */
	k.v[0].abandoned = false;
	control_request_stop(&k.ctl, STOP_REQUESTED, 0, NULL);
	for (unsigned i = 0; i < NVCPUS; i++) {
		vcpu_join(&k.v[i]);
		cr_assert_not(vcpu_alive(&k.v[i]), "vCPU %u", i);
	}
}

/* A kick that reaches a vCPU before its thread starts is not lost: its
 * first KVM_RUN returns at once, so the thread looks at the stop and pause
 * flags again. (vm_run starts the vCPUs one by one while a device thread
 * may already stop the VM; the kick used to be dropped for an unstarted
 * vCPU, whose thread could then check the stop flag just before it was
 * set and stay in KVM_RUN for ever: flint hung, 1 run in 600.) Here the
 * late vCPU is an AP waiting for a SIPI, which stays in KVM_RUN unless
 * kicked. */
/* One more vCPU, not started: an AP that waits in KVM_RUN for a SIPI. */
static void make_late_vcpu(struct vcpu *late)
{
	struct boot_info bi = {.entry = CODE_ADDR};
	const char *what = "";
	unsigned max;

	struct kvm_cpuid2 *cpuid = kvm_supported_cpuid(k.sys_fd, &max);
	cr_assert(cpuid);
	cr_assert_eq(vcpu_create(late, k.sys_fd, k.vm_fd, NVCPUS, &k.env), 0);
	cr_assert_eq(cpuid_setup(cpuid, max, NVCPUS, NVCPUS + 1), 0);
	cr_assert_eq(x86_vcpu_setup(late->fd, NVCPUS, cpuid, &bi, &what), 0, "%s", what);
	free(cpuid);
}

Test(vcpu_pause, a_kick_before_the_start_is_not_lost)
{
	struct vcpu late;

	make_late_vcpu(&late);
	vcpu_kick(&late);
	cr_assert_eq(vcpu_start(&late), 0);
	uint64_t end = now_ns() + 5 * SECOND;
	while (!late.exits[KVM_EXIT_INTR] && now_ns() < end)
		usleep(1000);
	cr_assert_geq(late.exits[KVM_EXIT_INTR], 1,
		      "the kick before the start did not bring the vCPU out of KVM_RUN");
	control_request_stop(&k.ctl, STOP_REQUESTED, 0, NULL);
	vcpu_kick(&late);
	vcpu_destroy(&late);
}

/* A vCPU paused before its thread starts parks before its first KVM_RUN
 * (a restored VM that waits for PATCH /vm Resumed), and runs once
 * resumed. It used to ignore the pause and run. */
Test(vcpu_pause, a_pause_before_the_start_parks_before_the_first_run)
{
	struct vcpu late;

	make_late_vcpu(&late);
	vcpu_pause(&late);
	cr_assert_eq(vcpu_start(&late), 0);
	cr_assert_eq(vcpu_wait_paused(&late, now_ns() + 5 * SECOND), 0);
	cr_assert(vcpu_parked(&late), "started paused, it did not park");
	uint64_t exits = 0;
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
		exits += late.exits[r];
	cr_assert_eq(exits, 0, "it entered KVM_RUN before it was resumed");
	vcpu_resume(&late);
	uint64_t end = now_ns() + 5 * SECOND;
	while (vcpu_parked(&late) && now_ns() < end)
		usleep(1000);
	cr_assert_not(vcpu_parked(&late), "resumed, it stayed parked");
	control_request_stop(&k.ctl, STOP_REQUESTED, 0, NULL);
	vcpu_kick(&late);
	vcpu_destroy(&late);
}
