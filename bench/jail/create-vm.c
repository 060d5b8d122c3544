/* create-vm: time KVM_CREATE_VM, the call Firecracker's users saw take tens
 * of milliseconds inside cgroups on some host kernels. Run it bare and as
 * flint-jail's --exec-file (with and without cgroups) to see whether a
 * kernel shows it.
 *   create-vm [N]      N VMs (default 30), each closed before the next; with
 *                      N = 0 it only opens /dev/kvm (a launcher's own cost)
 * Prints "create_vm_us median=M min=A max=B n=N" on stdout and stderr (where
 * bench/jail reads it while launch-to-marker watches stdout). */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 30;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	double t[1000];

	if (n < 0 || n > 1000 || kvm < 0) {
		perror("create-vm: /dev/kvm");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		int vm = ioctl(kvm, KVM_CREATE_VM, 0);
		t[i] = now_us() - t0;
		if (vm < 0) {
			perror("create-vm: KVM_CREATE_VM");
			return 1;
		}
		close(vm);
	}
	qsort(t, n, sizeof(t[0]), cmp);
	char line[128];
	if (n == 0)
		t[0] = 0;
	snprintf(line, sizeof(line), "create_vm_us median=%.0f min=%.0f max=%.0f n=%d\n",
		 n % 2 || n == 0 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2, t[0], t[n ? n - 1 : 0],
		 n);
	fputs(line, stdout);
	fputs(line, stderr);
	return 0;
}
