/* libFuzzer harness for runner/x86/loader.c: the fuzzer plays a malformed
 * kernel (ELF or bzImage, whatever the bytes say) and initrd, into guest
 * memory of two sizes. ASan and UBSan are the oracle for the parsing (every
 * header and program header comes from the input), with the checks below:
 * a load that fails says why; one that succeeds lies in RAM from 1 MiB,
 * enters inside what it loaded (a bzImage at its 64-bit entry), puts the
 * initrd page aligned above the kernel and below the top of low RAM, and
 * its zero page is written or refused for the command line's length only.
 *
 * Input layout:
 *   0      bit 0 guest RAM of 48 MiB (else 16), bit 1 an initrd (the
 *          input's last N bytes), bit 2 a command line longer than any
 *          kernel takes
 *   1..2   N, little-endian (with bit 1)
 *   then   the kernel image
 * tests/fuzz/corpus/loader holds a minimal ELF and a minimal bzImage. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/gmem.h"
#include "fuzz.h"
#include "x86/layout.h"
#include "x86/loader.h"

#define HDR 3

static struct gmem *small, *large;
static char cmdline[CMDLINE_MAX + 16];

static void setup(void)
{
	log_verbose = 0;
	if (gmem_create(&small, 16u << 20) || gmem_create(&large, 48u << 20))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct boot_info bi;
	const char *why = NULL;
	size_t initrd = 0, kernel;
	struct gmem *g;

	if (size < HDR)
		return 0;
	if (!small)
		setup();
	g = data[0] & 1 ? large : small;
	if (data[0] & 2)
		initrd = (size_t)(data[1] | data[2] << 8);
	if (initrd > size - HDR)
		initrd = size - HDR;
	kernel = size - HDR - initrd;

	if (loader_load_kernel(g, data + HDR, kernel, &bi, &why) < 0) {
		CHECK(why && why[0]);
		return 0;
	}
	CHECK(bi.kernel_start >= HIMEM_START && bi.kernel_end > bi.kernel_start);
	CHECK(gmem_ptr(g, bi.kernel_start, bi.kernel_end - bi.kernel_start) != NULL);
	if (bi.kind == KERNEL_BZIMAGE)
		CHECK(bi.has_setup_header && bi.entry == HIMEM_START + 0x200);
	else
		CHECK(bi.entry >= bi.kernel_start && bi.entry < bi.kernel_end);

	if (initrd) {
		why = NULL;
		if (loader_load_initrd(g, data + size - initrd, initrd, &bi, &why) < 0) {
			CHECK(why && why[0]);
		} else {
			CHECK(bi.initrd_size == initrd && bi.initrd_addr % 4096 == 0);
			CHECK(bi.initrd_addr >= bi.kernel_end);
			CHECK(bi.initrd_addr + bi.initrd_size <= gmem_low_end(g));
		}
	}

	size_t n = data[0] & 4 ? CMDLINE_MAX + 8 : 40;
	memset(cmdline, 'x', n);
	cmdline[n] = '\0';
	why = NULL;
	int r = loader_write_zero_page(g, &bi, cmdline, &why);
	CHECK(r == 0 || (r == -EINVAL && why && why[0]));
	CHECK(data[0] & 4 ? r < 0 : true);
	return 0;
}
