/* libFuzzer harness for runner/x86/loader.c: the fuzzer plays a malformed
 * kernel (ELF or bzImage, whatever the bytes say) and initrd, into guest
 * memory of two sizes. ASan and UBSan are the oracle for the parsing (every
 * header and program header comes from the input), with the checks below:
 * a load that fails says why; one that succeeds lies in RAM from 1 MiB and
 * enters inside what it loaded; an initrd lands whole, page aligned, above
 * the kernel and below the top of low RAM; the zero page is refused only
 * for a command line longer than the kernel takes, and once written points
 * at the command line and the initrd, with an e820 map of guest RAM,
 * sorted and without overlaps, that holds the kernel. Guest memory of 16
 * or 48 MiB: the MMIO hole and RAM above 4 GiB are the unit tests' (their
 * segments would need gigabytes zeroed per input).
 *
 * Input layout:
 *   0      bit 0 guest RAM of 48 MiB (else 16), bit 1 an initrd (the
 *          input's last N bytes), bit 2 a command line longer than any
 *          kernel takes
 *   1..2   N, little-endian (with bit 1)
 *   then   the kernel image
 * tests/fuzz/corpus/loader holds a minimal ELF and a minimal bzImage. */
#include <asm/e820.h>
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

/* What the kernel reads at its start: the command line where the zero
 * page points, the initrd where it says, and an e820 map of RAM sorted,
 * without overlaps, inside guest memory, with the kernel's bytes in RAM. */
static void check_zero_page(struct gmem *g, const struct boot_info *bi, size_t n)
{
	struct boot_params bp;
	uint64_t end = 0;
	bool kernel_in_ram = false;

	CHECK(gmem_read(g, ZERO_PAGE_ADDR, &bp, sizeof(bp)) == 0);
	CHECK(bp.hdr.cmd_line_ptr == (uint32_t)CMDLINE_ADDR && bp.ext_cmd_line_ptr == 0);
	CHECK(strlen(gmem_ptr(g, CMDLINE_ADDR, n + 1)) == n);
	CHECK((bp.hdr.ramdisk_image | (uint64_t)bp.ext_ramdisk_image << 32) == bi->initrd_addr);
	CHECK((bp.hdr.ramdisk_size | (uint64_t)bp.ext_ramdisk_size << 32) == bi->initrd_size);
	CHECK(bp.hdr.type_of_loader == 0xff);
	CHECK(bp.e820_entries >= 2 && bp.e820_entries <= E820_MAX_ENTRIES_ZEROPAGE);
	for (unsigned i = 0; i < bp.e820_entries; i++) {
		const struct boot_e820_entry *e = &bp.e820_table[i];

		CHECK(e->size > 0 && e->addr >= end);
		end = e->addr + e->size;
		if (e->type == E820_RAM) {
			CHECK(gmem_ptr(g, e->addr, e->size) != NULL);
			if (e->addr <= bi->kernel_start && bi->kernel_end <= end)
				kernel_in_ram = true;
		}
	}
	CHECK(kernel_in_ram);
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
	CHECK(bi.entry >= bi.kernel_start && bi.entry < bi.kernel_end);

	if (initrd) {
		why = NULL;
		if (loader_load_initrd(g, data + size - initrd, initrd, &bi, &why) < 0) {
			CHECK(why && why[0]);
			CHECK(bi.initrd_addr == 0 && bi.initrd_size == 0);
		} else {
			CHECK(bi.initrd_addr % 4096 == 0 && bi.initrd_addr >= bi.kernel_end);
			CHECK(bi.initrd_addr + bi.initrd_size <= gmem_low_end(g));
			CHECK(memcmp(gmem_ptr(g, bi.initrd_addr, initrd), data + size - initrd,
				     initrd) == 0);
		}
	}

	size_t n = data[0] & 4 ? CMDLINE_MAX + 8 : 40;
	memset(cmdline, 'x', n);
	cmdline[n] = '\0';
	why = NULL;
	int r = loader_write_zero_page(g, &bi, cmdline, &why);
	if (r < 0) {
		/* Only for a line longer than the kernel takes. */
		CHECK(r == -EINVAL && why && why[0]);
		CHECK(n > CMDLINE_MAX - 1 || (bi.has_setup_header && bi.hdr.cmdline_size < n));
		return 0;
	}
	CHECK(n <= CMDLINE_MAX - 1);
	check_zero_page(g, &bi, n);
	return 0;
}
