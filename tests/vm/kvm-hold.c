/* kvm-hold: keeps one empty VM (no memory, no vCPU) open in the rig's L1
 * for the whole run, as a host that runs VMs always has one.
 *
 * KVM turns virtualization on in every CPU when its first VM is created
 * and off again when its last one goes (hardware_enable_all and
 * hardware_disable_all in Linux 6.1): both send an IPI to every CPU and
 * wait for all of them. In this stack (L1 under QEMU's TCG, emulating
 * AMD-V) that wait has been seen to never end: a flint's close of its VM
 * spun in smp_call_function_many_cond, inside kvm_destroy_vm, until L1
 * was lost. With a VM held, KVM's count of users never falls to zero, and
 * no scenario or benchmark pays, or risks, that round trip at each launch.
 *
 * Usage: kvm-hold &   (it waits for a signal; it prints only a failure) */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (kvm < 0) {
		fprintf(stderr, "kvm-hold: /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	if (ioctl(kvm, KVM_CREATE_VM, 0) < 0) {
		fprintf(stderr, "kvm-hold: KVM_CREATE_VM: %s\n", strerror(errno));
		return 1;
	}
	for (;;)
		pause();
}
