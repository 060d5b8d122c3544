#include "core/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Every capability flint uses, with what it is for in the error message. */
static const struct {
	int cap;
	const char *name;
} required_caps[] = {
    {KVM_CAP_SPLIT_IRQCHIP, "KVM_CAP_SPLIT_IRQCHIP (in-kernel local APICs, I/O APIC in flint)"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER (the guest's timer: there is no PIT)"},
    {KVM_CAP_HLT, "KVM_CAP_HLT"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_BINARY_STATS_FD, "KVM_CAP_BINARY_STATS_FD (exit statistics)"},
};

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

int kvm_irqfd(int vm_fd, unsigned gsi)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct kvm_irqfd irqfd = {.fd = fd, .gsi = gsi};
	if (ioctl(vm_fd, KVM_IRQFD, &irqfd) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

bool kvm_host_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

int kvm_open(int *sys_fd, char *err, size_t errlen)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int ret;

	*sys_fd = -1;
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open /dev/kvm: %s", strerror(errno));
		return ret;
	}
	int version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm speaks API version %d, flint needs %d", version,
			 KVM_API_VERSION);
		ret = -ENOTSUP;
		goto err_close;
	}
	for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			snprintf(err, errlen, "this host's KVM lacks %s", required_caps[i].name);
			ret = -ENOTSUP;
			goto err_close;
		}
	}
	if (kvm_host_is_pvm() && !getenv("FLINT_ALLOW_PVM")) {
		snprintf(
		    err, errlen,
		    "this host's /dev/kvm is kvm_pvm, a nested paravirtual KVM that emulates "
		    "guest kernel code and cannot boot a stock Linux guest; run flint on a host "
		    "with hardware virtualization, or inside the nested-KVM rig (make run, "
		    "tests/vm/rig)");
		ret = -ENOTSUP;
		goto err_close;
	}
	*sys_fd = fd;
	return 0;

err_close:
	close(fd);
	return ret;
}

#define CPUID1_ECX_TSC_DEADLINE (1u << 24)

/* KVM emulates the TSC-deadline timer but reports it as a capability, not in
 * the supported CPUID (QEMU adds it the same way); kvm_open requires the
 * capability. Without it Linux calibrates its LAPIC timer against a PIT,
 * which flint's VMs do not have. */
static void add_tsc_deadline(struct kvm_cpuid2 *c)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1)
			c->entries[i].ecx |= CPUID1_ECX_TSC_DEADLINE;
}

struct kvm_cpuid2 *kvm_supported_cpuid(int sys_fd, unsigned *max)
{
	unsigned n = 128;
	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			return NULL;
		c->nent = n;
		/* Keep spare entries: cpuid_setup may add topology subleaves. */
		if (ioctl(sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0 && c->nent + 8 <= n) {
			add_tsc_deadline(c);
			*max = n;
			return c;
		}
		int e = c->nent + 8 > n ? E2BIG : errno;
		free(c);
		if (e != E2BIG || n >= 4096) {
			errno = e;
			return NULL;
		}
		n *= 2;
	}
}
