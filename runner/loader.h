/* Linux x86 64-bit boot protocol: load an uncompressed ELF vmlinux or a
 * bzImage, an initrd, and fill the zero page. Works only through gmem, so it
 * is tested against a malloc'd guest memory. */
#ifndef FLINT_LOADER_H
#define FLINT_LOADER_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"
#include "util.h"

enum kernel_kind { KERNEL_ELF, KERNEL_BZIMAGE };

struct boot_info {
	enum kernel_kind kind;
	uint64_t entry;                 /* 64-bit entry point, guest physical */
	uint64_t kernel_start;          /* lowest loaded byte */
	uint64_t kernel_end;            /* one past the highest loaded byte */
	bool has_setup_header;          /* bzImage: hdr is the image's header */
	struct setup_header hdr;
	uint64_t initrd_addr, initrd_size; /* 0, 0 when none */
};

/* Parse a kernel image held in memory and load it into guest memory. On
 * error returns -EINVAL (or -ENOMEM/-EFBIG) and sets *why to a static string
 * naming the problem ("not an ELF or bzImage file", "truncated program
 * header", ...). The caller adds the file name. */
int loader_load_kernel(struct gmem *g, const uint8_t *img, uint64_t len, struct boot_info *bi,
		       const char **why) WARN_UNUSED;

/* Place the initrd as high as allowed in low RAM above the kernel, page
 * aligned, and record it in bi. Same error convention. */
int loader_load_initrd(struct gmem *g, const uint8_t *img, uint64_t len, struct boot_info *bi,
		       const char **why) WARN_UNUSED;

/* Write the command line to CMDLINE_ADDR and the zero page to ZERO_PAGE_ADDR:
 * the setup header (copied for bzImage, synthesized for ELF), loader type
 * 0xff, command line pointer and size, initrd location, and the e820 map
 * derived from gmem's layout (low RAM up to EBDA_START, reserved EBDA,
 * RAM from HIMEM_START to the hole, RAM above 4 GiB). Same error convention. */
int loader_write_zero_page(struct gmem *g, const struct boot_info *bi, const char *cmdline,
			   const char **why) WARN_UNUSED;

#endif
