/* bench/boot/scrub: touch and free MIB MiB of anonymous memory (2 MiB pages
 * advised), so that the pages the last VM freed are written once before the
 * next VM gets them.
 *
 * Why (bench/boot/README.md, "What a VM leaves behind in the rig"): in the
 * rig, L1 runs under QEMU's TCG, which translated the guest's code from the
 * pages a VM used; the first write to such a page after the VM is gone
 * costs TCG the invalidation of what it translated there. L1 hands the
 * next VM the pages the last one freed, so without this the next VM pays
 * it, whichever VMM it is. On a host with hardware KVM there is no such
 * cost and this changes nothing.
 *   scrub MIB      prints "scrub: MIB MiB in T ms" on stderr */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	char *end;
	unsigned long mib = argc == 2 ? strtoul(argv[1], &end, 10) : 0;

	if (argc != 2 || *end || mib == 0 || mib > 65536) {
		fprintf(stderr, "usage: scrub MIB (1 to 65536)\n");
		return 2;
	}
	size_t n = mib << 20;
	double t0 = now_ms();
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("scrub: mmap");
		return 1;
	}
	madvise(p, n, MADV_HUGEPAGE);
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	fprintf(stderr, "scrub: %lu MiB in %.1f ms\n", mib, now_ms() - t0);
	return 0;
}
