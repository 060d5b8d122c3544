/* Linux x86 64-bit boot protocol: load an uncompressed ELF vmlinux or a
 * bzImage, an initrd, and fill the zero page. Works only through gmem, so it
 * is tested against a malloc'd guest memory. */
#ifndef FLINT_LOADER_H
#define FLINT_LOADER_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/gmem.h"
#include "core/util.h"

enum kernel_kind { KERNEL_ELF, KERNEL_BZIMAGE };

struct boot_info {
	enum kernel_kind kind;
	uint64_t entry;			   /* 64-bit entry point, guest physical */
	uint64_t kernel_start;		   /* lowest loaded byte */
	uint64_t kernel_end;		   /* one past the highest loaded byte */
	bool has_setup_header;		   /* hdr is the bzImage's own header */
	struct setup_header hdr;	   /* ELF: synthesized, as Firecracker does */
	uint64_t initrd_addr, initrd_size; /* 0, 0 when none */
};

/* Parse a kernel image held in memory and load it into guest memory, filling
 * *bi from scratch. ELF: each PT_LOAD at p_paddr (>= 1 MiB, not in the hole).
 * bzImage: the protected-mode part at HIMEM_START, entry at +0x200, and
 * kernel_end covers the kernel's init_size decompression area. On error
 * returns -EINVAL (-EFBIG when guest RAM is too small) and sets *why to a
 * message naming the problem ("not an ELF or bzImage file", "truncated ELF
 * program header table", ...); it is static storage valid until the next
 * loader call. The caller adds the file name. The image stays the caller's. */
int loader_load_kernel(struct gmem *g, const uint8_t *img, uint64_t len, struct boot_info *bi,
		       const char **why) WARN_UNUSED;
/* The same from the file fd of len bytes (its size when opened), read with
 * pread straight into guest memory: a file cut short meanwhile fails the
 * load (-EIO, "the file shrank ..."), as a mapping of it could not. */
int loader_load_kernel_fd(struct gmem *g, int fd, uint64_t len, struct boot_info *bi,
			  const char **why) WARN_UNUSED;

/* Place the initrd page aligned, as high as allowed (below the hole and, for
 * a bzImage, at most hdr.initrd_addr_max) but above bi->kernel_end, and
 * record it in bi. Same error convention. */
int loader_load_initrd(struct gmem *g, const uint8_t *img, uint64_t len, struct boot_info *bi,
		       const char **why) WARN_UNUSED;
int loader_load_initrd_fd(struct gmem *g, int fd, uint64_t len, struct boot_info *bi,
			  const char **why) WARN_UNUSED;

/* Write the command line to CMDLINE_ADDR and the zero page to ZERO_PAGE_ADDR:
 * bi->hdr (copied for bzImage, synthesized for ELF), loader type 0xff,
 * command line pointer, initrd location, and the e820 map derived from
 * gmem's layout (RAM up to EBDA_START, EBDA..0xa0000 reserved, RAM from
 * HIMEM_START to the hole, RAM above 4 GiB). The command line may hold at
 * most min(CMDLINE_MAX - 1, hdr.cmdline_size for bzImage) bytes. Same error
 * convention. */
int loader_write_zero_page(struct gmem *g, const struct boot_info *bi, const char *cmdline,
			   const char **why) WARN_UNUSED;

#endif
