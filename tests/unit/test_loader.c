#include <asm/bootparam.h>
#include <asm/e820.h>
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/gmem.h"
#include "x86/layout.h"
#include "x86/loader.h"

#define MiB    (1ULL << 20)
#define GiB    (1ULL << 30)
#define PM_OFF 0xa00 /* (4 setup sectors + 1) * 512 */

struct seg {
	uint64_t paddr, vaddr, off, filesz, memsz;
};

/* File byte at offset i: a pattern that shows misplaced copies. */
static uint8_t pat(uint64_t i)
{
	return (uint8_t)(i * 7 + 1);
}

/* A minimal x86-64 vmlinux: header, program headers right after it, and the
 * file padded to cover every segment, filled with pat(). */
static uint8_t *make_elf(uint64_t *len, const struct seg *s, unsigned n, uint64_t entry)
{
	uint64_t size = sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr);
	for (unsigned i = 0; i < n; i++)
		if (s[i].off + s[i].filesz > size)
			size = s[i].off + s[i].filesz;
	uint8_t *img = malloc(size);
	cr_assert_not_null(img);
	for (uint64_t i = 0; i < size; i++)
		img[i] = pat(i);
	Elf64_Ehdr eh = {
	    .e_type = ET_EXEC,
	    .e_machine = EM_X86_64,
	    .e_version = EV_CURRENT,
	    .e_entry = entry,
	    .e_phoff = sizeof(Elf64_Ehdr),
	    .e_ehsize = sizeof(Elf64_Ehdr),
	    .e_phentsize = sizeof(Elf64_Phdr),
	    .e_phnum = n,
	};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	memcpy(img, &eh, sizeof(eh));
	for (unsigned i = 0; i < n; i++) {
		Elf64_Phdr ph = {.p_type = PT_LOAD,
				 .p_flags = PF_R | PF_X,
				 .p_offset = s[i].off,
				 .p_vaddr = s[i].vaddr,
				 .p_paddr = s[i].paddr,
				 .p_filesz = s[i].filesz,
				 .p_memsz = s[i].memsz,
				 .p_align = 0x200000};
		memcpy(img + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
	}
	*len = size;
	return img;
}

/* Text at 16 MiB (file 0x1000..0x3000) and data+bss at 18 MiB. */
static const struct seg two_segs[] = {
    {0x1000000, 0xffffffff81000000, 0x1000, 0x2000, 0x2000},
    {0x1200000, 0xffffffff81200000, 0x3000, 0x800, 0x5000},
};

/* A bzImage, protocol 2.15, 4 setup sectors, relocatable, 2 MiB aligned,
 * preferring 16 MiB and needing 8 MiB there to decompress. */
static uint8_t *make_bzimage(uint64_t *len, uint64_t pm_len)
{
	uint64_t size = PM_OFF + pm_len;
	uint8_t *img = malloc(size);
	cr_assert_not_null(img);
	for (uint64_t i = 0; i < size; i++)
		img[i] = pat(i);
	struct setup_header h;
	memcpy(&h, img + 0x1f1, sizeof(h));
	h.setup_sects = 4;
	h.boot_flag = 0xaa55;
	h.jump = 0x6aeb;
	h.header = 0x53726448;
	h.version = 0x020f;
	h.type_of_loader = 0;
	h.loadflags = LOADED_HIGH;
	h.code32_start = 0x100000;
	h.ramdisk_image = 0;
	h.ramdisk_size = 0;
	h.cmd_line_ptr = 0;
	h.initrd_addr_max = 0x7fffffff;
	h.kernel_alignment = 0x200000;
	h.relocatable_kernel = 1;
	h.min_alignment = 21;
	h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	h.cmdline_size = 2047;
	h.pref_address = 0x1000000;
	h.init_size = 8 * MiB;
	memcpy(img + 0x1f1, &h, sizeof(h));
	*len = size;
	return img;
}

static struct gmem *mkgmem(uint64_t size)
{
	struct gmem *g;
	cr_assert_eq(gmem_create(&g, size), 0);
	return g;
}

static void read_zero_page(struct gmem *g, struct boot_params *bp)
{
	cr_assert_eq(gmem_read(g, ZERO_PAGE_ADDR, bp, sizeof(*bp)), 0);
}

static void assert_e820(const struct boot_params *bp, unsigned i, uint64_t addr, uint64_t size,
			uint32_t type)
{
	const struct boot_e820_entry *e = &bp->e820_table[i];
	cr_assert_eq(e->addr, addr, "e820[%u].addr 0x%llx", i, (unsigned long long)e->addr);
	cr_assert_eq(e->size, size, "e820[%u].size 0x%llx", i, (unsigned long long)e->size);
	cr_assert_eq(e->type, type, "e820[%u].type %u", i, e->type);
}

/* Load img and expect failure with err and exactly the message want. */
static void expect_kernel_error(uint64_t memsize, const uint8_t *img, uint64_t len, int err,
				const char *want)
{
	struct gmem *g = mkgmem(memsize);
	struct boot_info bi;
	const char *why = NULL;
	cr_assert_eq(loader_load_kernel(g, img, len, &bi, &why), err);
	cr_assert_not_null(why);
	cr_assert_str_eq(why, want);
	gmem_destroy(g);
}

Test(loader, elf_loads_segments_and_zeroes_bss)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	uint64_t len;
	uint8_t *img = make_elf(&len, two_segs, 2, 0x1000000);

	/* Dirty the bss first, so zeroing is what clears it. */
	memset(gmem_ptr(g, 0x1200000, 0x6000), 0xcc, 0x6000);
	cr_assert_eq(loader_load_kernel(g, img, len, &bi, &why), 0, "%s", why);
	cr_assert_eq(bi.kind, KERNEL_ELF);
	cr_assert_eq(bi.entry, 0x1000000);
	cr_assert_eq(bi.kernel_start, 0x1000000);
	cr_assert_eq(bi.kernel_end, 0x1205000);
	cr_assert_not(bi.has_setup_header);
	cr_assert_eq(memcmp(gmem_ptr(g, 0x1000000, 0x2000), img + 0x1000, 0x2000), 0);
	cr_assert_eq(memcmp(gmem_ptr(g, 0x1200000, 0x800), img + 0x3000, 0x800), 0);
	const uint8_t *bss = gmem_ptr(g, 0x1200800, 0x4800);
	for (unsigned i = 0; i < 0x4800; i++)
		cr_assert_eq(bss[i], 0, "bss byte %u", i);
	cr_assert_eq(*(uint8_t *)gmem_ptr(g, 0x1205000, 1), 0xcc, "nothing past p_memsz");
	free(img);
	gmem_destroy(g);
}

Test(loader, elf_entry_outside_segments)
{
	uint64_t len;
	uint8_t *img = make_elf(&len, two_segs, 2, 0x1100000);
	expect_kernel_error(128 * MiB, img, len, -EINVAL,
			    "ELF entry point is outside the loadable segments");
	free(img);
}

Test(loader, rejects_empty_short_and_garbage)
{
	uint8_t buf[4096];
	memset(buf, 0x5a, sizeof(buf));
	expect_kernel_error(128 * MiB, buf, 0, -EINVAL, "kernel image is empty");
	expect_kernel_error(128 * MiB, buf, 10, -EINVAL, "not an ELF or bzImage file");
	expect_kernel_error(128 * MiB, buf, sizeof(buf), -EINVAL, "not an ELF or bzImage file");
	memcpy(buf, ELFMAG, SELFMAG);
	expect_kernel_error(128 * MiB, buf, 10, -EINVAL, "truncated ELF header");
}

#define EH(f) offsetof(Elf64_Ehdr, f), sizeof(((Elf64_Ehdr *)0)->f)
#define PH(i, f)                                                                                   \
	sizeof(Elf64_Ehdr) + (i) * sizeof(Elf64_Phdr) + offsetof(Elf64_Phdr, f),                   \
	    sizeof(((Elf64_Phdr *)0)->f)
#define SH(f) 0x1f1 + offsetof(struct setup_header, f), sizeof(((struct setup_header *)0)->f)

/* Overwrite one little-endian field of an image; size 0 is no patch. */
struct patch {
	uint64_t off;
	unsigned size;
	uint64_t val;
};

struct bad_image {
	struct patch p[2];
	uint64_t mem;
	int err;
	const char *why;
};

/* two_segs in a file: ELF header, two program headers, data up to 0x3800. */
static const struct bad_image bad_elves[] = {
    {{{EI_MAG3, 1, 'G'}}, 128 * MiB, -EINVAL, "not an ELF or bzImage file"},
    {{{EI_CLASS, 1, ELFCLASS32}}, 128 * MiB, -EINVAL, "not a 64-bit ELF file"},
    {{{EI_DATA, 1, ELFDATA2MSB}}, 128 * MiB, -EINVAL, "not a little-endian ELF file"},
    {{{EH(e_machine), EM_AARCH64}}, 128 * MiB, -EINVAL, "ELF file is not for x86-64"},
    {{{EH(e_type), ET_DYN}}, 128 * MiB, -EINVAL, "ELF file is not an executable"},
    {{{EH(e_phentsize), sizeof(Elf32_Phdr)}},
     128 * MiB,
     -EINVAL,
     "unexpected ELF program header size"},
    {{{EH(e_phnum), 0}}, 128 * MiB, -EINVAL, "unsupported ELF program header count"},
    {{{EH(e_phoff), 0x3800}}, 128 * MiB, -EINVAL, "truncated ELF program header table"},
    /* e_phoff + e_phnum * e_phentsize wraps to a small number. */
    {{{EH(e_phoff), UINT64_MAX - 0x100}, {EH(e_phnum), 0xfff0}},
     128 * MiB,
     -EINVAL,
     "truncated ELF program header table"},
    {{{PH(0, p_type), PT_NOTE}, {PH(1, p_type), PT_GNU_STACK}},
     128 * MiB,
     -EINVAL,
     "ELF file has no loadable segments"},
    {{{PH(1, p_filesz), 0x801}},
     128 * MiB,
     -EINVAL,
     "ELF segment extends past the end of the file"},
    {{{PH(1, p_offset), UINT64_MAX - 0x10}},
     128 * MiB,
     -EINVAL,
     "ELF segment extends past the end of the file"},
    {{{PH(1, p_memsz), 0x100}},
     128 * MiB,
     -EINVAL,
     "ELF segment file size exceeds its memory size"},
    {{{PH(1, p_paddr), 200 * MiB}}, 128 * MiB, -EFBIG, "kernel does not fit in guest memory"},
    {{{PH(1, p_paddr), MMIO_GAP_START + MiB}},
     5 * GiB,
     -EINVAL,
     "ELF segment overlaps the MMIO hole"},
    {{{PH(1, p_paddr), MMIO_GAP_END - 0x1000}},
     5 * GiB,
     -EINVAL,
     "ELF segment overlaps the MMIO hole"},
    /* RAM there, but the boot page tables map the first 4 GiB only: the
     * guest would triple-fault at its first instruction. */
    {{{PH(1, p_paddr), MMIO_GAP_END + 16 * MiB}},
     5 * GiB,
     -EINVAL,
     "ELF segment is above 4 GiB, which the boot page tables do not map"},
    {{{PH(1, p_paddr), 0x8000}}, 128 * MiB, -EINVAL, "ELF segment is below 1 MiB"},
    {{{PH(1, p_memsz), UINT64_MAX - 0x1000}},
     128 * MiB,
     -EINVAL,
     "ELF segment address range wraps around"},
};

static void apply(uint8_t *img, const struct patch *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		memcpy(img + p[i].off, &p[i].val, p[i].size);
}

Test(loader, malformed_elf)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_elves); i++) {
		const struct bad_image *t = &bad_elves[i];
		uint64_t len;
		uint8_t *img = make_elf(&len, two_segs, 2, 0x1000000);
		cr_assert_eq(len, 0x3800);
		apply(img, t->p, ARRAY_SIZE(t->p));
		expect_kernel_error(t->mem, img, len, t->err, t->why);
		free(img);
	}
}

Test(loader, elf_error_leaves_guest_untouched)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	const char *why;
	uint64_t len;
	uint8_t *img = make_elf(&len, two_segs, 2, 0x1000000);
	const struct patch outside = {PH(1, p_paddr), 200 * MiB};

	apply(img, &outside, 1);
	cr_assert_eq(loader_load_kernel(g, img, len, &bi, &why), -EFBIG);
	cr_assert_eq(*(uint8_t *)gmem_ptr(g, 0x1000000, 1), 0, "first segment not copied");
	free(img);
	gmem_destroy(g);
}

Test(loader, bzimage_loads_at_1m_with_64bit_entry)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	uint64_t len;
	uint8_t *img = make_bzimage(&len, 0x4000);

	cr_assert_eq(loader_load_kernel(g, img, len, &bi, &why), 0, "%s", why);
	cr_assert_eq(bi.kind, KERNEL_BZIMAGE);
	cr_assert_eq(bi.entry, 0x100200);
	cr_assert_eq(bi.kernel_start, 0x100000);
	/* Relocatable: runtime start = max(align_up(1 MiB, 2 MiB), 16 MiB). */
	cr_assert_eq(bi.kernel_end, 0x1000000 + 8 * MiB);
	cr_assert(bi.has_setup_header);
	cr_assert_eq(memcmp(gmem_ptr(g, 0x100000, 0x4000), img + PM_OFF, 0x4000), 0);
	cr_assert_eq(*(uint8_t *)gmem_ptr(g, 0x104000, 1), 0);
	cr_assert_eq(bi.hdr.version, 0x020f);
	cr_assert_eq(bi.hdr.init_size, 8 * MiB);
	cr_assert_eq(bi.hdr.pref_address, 0x1000000);
	cr_assert_eq(bi.hdr.initrd_addr_max, 0x7fffffff);
	cr_assert_eq(bi.hdr.code32_start, 0x100000);
	cr_assert_eq(bi.hdr.xloadflags, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	free(img);
	gmem_destroy(g);
}

/* Variants that load: the patches, the protected-mode size (bzImage) and
 * where the entry and the kernel's end must land. */
struct good_image {
	struct patch p[3];
	uint64_t pm_len;
	uint64_t entry, kernel_end;
};

static const struct good_image good_elves[] = {
    /* A virtual e_entry goes through its segment's p_vaddr - p_paddr. */
    {{{EH(e_entry), 0xffffffff81200040}}, 0, 0x1200040, 0x1205000},
    /* A non-PT_LOAD header with a garbage address is ignored. */
    {{{PH(1, p_type), PT_NOTE}, {PH(1, p_paddr), 0x10}}, 0, 0x1000000, 0x1002000},
};

static const struct good_image good_bzimages[] = {
    /* setup_sects 0 means 4, so the payload still starts at 0xa00. */
    {{{SH(setup_sects), 0}}, 0x4000, 0x100200, 0x1000000 + 8 * MiB},
    /* An image larger than its init_size area ends the kernel itself. */
    {{{0, 0, 0}}, 30 * MiB, 0x100200, 0x100000 + 30 * MiB},
    /* Not relocatable: it decompresses at pref_address, whatever the alignment. */
    {{{SH(relocatable_kernel), 0}, {SH(kernel_alignment), 0}, {SH(pref_address), 0x2000000}},
     0x4000,
     0x100200,
     0x2000000 + 8 * MiB},
};

static void load_good(const struct good_image *t, bool bz)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	uint64_t len;
	uint8_t *img = bz ? make_bzimage(&len, t->pm_len) : make_elf(&len, two_segs, 2, 0x1000000);

	apply(img, t->p, ARRAY_SIZE(t->p));
	cr_assert_eq(loader_load_kernel(g, img, len, &bi, &why), 0, "%s", why);
	cr_assert_eq(bi.entry, t->entry);
	cr_assert_eq(bi.kernel_end, t->kernel_end);
	if (bz)
		cr_assert_eq(memcmp(gmem_ptr(g, HIMEM_START, t->pm_len), img + PM_OFF, t->pm_len),
			     0);
	free(img);
	gmem_destroy(g);
}

Test(loader, elf_variants)
{
	for (size_t i = 0; i < ARRAY_SIZE(good_elves); i++)
		load_good(&good_elves[i], false);
}

Test(loader, bzimage_variants)
{
	for (size_t i = 0; i < ARRAY_SIZE(good_bzimages); i++)
		load_good(&good_bzimages[i], true);
}

static const struct bad_image bad_bzimages[] = {
    {{{SH(boot_flag), 0x55aa}}, 128 * MiB, -EINVAL, "bzImage has a bad boot flag (0x55aa)"},
    {{{SH(version), 0x020b}},
     128 * MiB,
     -EINVAL,
     "bzImage boot protocol 2.11 is too old (need 2.12)"},
    {{{SH(xloadflags), XLF_CAN_BE_LOADED_ABOVE_4G}},
     128 * MiB,
     -EINVAL,
     "bzImage has no 64-bit entry point"},
    {{{SH(loadflags), 0}}, 128 * MiB, -EINVAL, "zImage (loaded low) is not supported"},
    {{{SH(kernel_alignment), 0x300000}},
     128 * MiB,
     -EINVAL,
     "bzImage kernel alignment is not a power of two"},
    {{{SH(setup_sects), 200}},
     128 * MiB,
     -EINVAL,
     "bzImage setup sectors extend past the end of the file"},
    {{{SH(pref_address), UINT64_MAX - 0x1000}},
     128 * MiB,
     -EINVAL,
     "bzImage preferred load address is not in low memory"},
    {{{SH(header), 0x53726447}}, 128 * MiB, -EINVAL, "not an ELF or bzImage file"},
    /* 16 MiB preferred + 8 MiB init_size = 24 MiB. */
    {{{0, 0, 0}}, 16 * MiB, -EFBIG, "kernel needs 24 MiB of memory"},
};

Test(loader, malformed_bzimage)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_bzimages); i++) {
		const struct bad_image *t = &bad_bzimages[i];
		uint64_t len;
		uint8_t *img = make_bzimage(&len, 0x4000);
		apply(img, t->p, ARRAY_SIZE(t->p));
		expect_kernel_error(t->mem, img, len, t->err, t->why);
		free(img);
	}
}

Test(loader, bzimage_protected_mode_part_too_small)
{
	uint64_t len;
	uint8_t *img = make_bzimage(&len, 0x200);
	expect_kernel_error(128 * MiB, img, len, -EINVAL,
			    "bzImage protected-mode part is too small");
	free(img);
}

Test(loader, bzimage_too_big_for_memory)
{
	uint64_t len;
	uint8_t *img = make_bzimage(&len, 40 * MiB);
	expect_kernel_error(32 * MiB, img, len, -EFBIG, "kernel does not fit in guest memory");
	free(img);
}

/* Load the stock ELF or bzImage (with the given cmdline_size) or fail. */
static void load_kernel(struct gmem *g, struct boot_info *bi, bool bz, uint16_t cmdline_size)
{
	const char *why = NULL;
	uint64_t len;
	uint8_t *img = bz ? make_bzimage(&len, 0x4000) : make_elf(&len, two_segs, 2, 0x1000000);
	const struct patch size = {SH(cmdline_size), cmdline_size};

	if (bz)
		apply(img, &size, 1);
	cr_assert_eq(loader_load_kernel(g, img, len, bi, &why), 0, "%s", why);
	free(img);
}

static uint8_t *make_initrd(uint64_t len)
{
	uint8_t *rd = malloc(len);
	cr_assert_not_null(rd);
	for (uint64_t i = 0; i < len; i++)
		rd[i] = pat(i + 3);
	return rd;
}

/* Where an initrd of len bytes lands: as high as the limit allows. */
static const struct {
	bool bz;
	uint64_t mem, len, addr;
} initrd_places[] = {
    /* Top of low RAM, rounded down to a page. */
    {false, 128 * MiB, 0x12345, (128 * MiB - 0x12345) & ~0xfffULL},
    /* bzImage: ends at initrd_addr_max + 1 (0x7fffffff + 1). */
    {true, 4 * GiB + GiB / 2, 0x3000, 0x80000000 - 0x3000},
    /* ELF: no header to ask, so just below the hole. */
    {false, 4 * GiB + GiB / 2, 0x3000, MMIO_GAP_START - 0x3000},
};

Test(loader, initrd_goes_as_high_as_allowed)
{
	for (size_t i = 0; i < ARRAY_SIZE(initrd_places); i++) {
		struct gmem *g = mkgmem(initrd_places[i].mem);
		struct boot_info bi;
		const char *why = NULL;
		uint64_t len = initrd_places[i].len;
		uint8_t *rd = make_initrd(len);

		load_kernel(g, &bi, initrd_places[i].bz, 2047);
		cr_assert_eq(loader_load_initrd(g, rd, len, &bi, &why), 0, "%s", why);
		cr_assert_eq(bi.initrd_addr, initrd_places[i].addr, "case %zu", i);
		cr_assert_eq(bi.initrd_addr % 4096, 0);
		cr_assert_eq(bi.initrd_size, len);
		cr_assert_eq(memcmp(gmem_ptr(g, bi.initrd_addr, len), rd, len), 0);
		free(rd);
		gmem_destroy(g);
	}
}

Test(loader, initrd_fits_exactly_above_kernel)
{
	struct gmem *g = mkgmem(32 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	uint64_t room = 32 * MiB - 0x1205000; /* kernel_end is page aligned */
	uint8_t *rd = make_initrd(room + 1);

	load_kernel(g, &bi, false, 0);
	cr_assert_eq(loader_load_initrd(g, rd, room, &bi, &why), 0, "%s", why);
	cr_assert_eq(bi.initrd_addr, bi.kernel_end);
	cr_assert_eq(loader_load_initrd(g, rd, room + 1, &bi, &why), -EFBIG);
	cr_assert_str_eq(why, "initrd does not fit in guest memory (14 MiB; try a larger --mem)");
	free(rd);
	gmem_destroy(g);
}

Test(loader, initrd_too_big_and_empty)
{
	struct gmem *g = mkgmem(32 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	uint8_t *rd = make_initrd(40 * MiB);

	load_kernel(g, &bi, true, 2047);
	cr_assert_eq(loader_load_initrd(g, rd, 40 * MiB, &bi, &why), -EFBIG);
	cr_assert_str_eq(why, "initrd does not fit in guest memory (40 MiB; try a larger --mem)");
	cr_assert_eq(loader_load_initrd(g, rd, 0, &bi, &why), -EINVAL);
	cr_assert_str_eq(why, "initrd is empty");
	cr_assert_eq(bi.initrd_addr, 0);
	cr_assert_eq(bi.initrd_size, 0);
	free(rd);
	gmem_destroy(g);
}

Test(loader, elf_zero_page_small_memory)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	struct boot_params bp;
	const char *why = NULL;
	uint8_t *rd = make_initrd(0x2000);
	const char *cmd = "console=ttyS0 reboot=k panic=1";

	load_kernel(g, &bi, false, 0);
	cr_assert_eq(loader_load_initrd(g, rd, 0x2000, &bi, &why), 0, "%s", why);
	memset(gmem_ptr(g, ZERO_PAGE_ADDR, 4096), 0xcc, 4096);
	cr_assert_eq(loader_write_zero_page(g, &bi, cmd, &why), 0, "%s", why);
	read_zero_page(g, &bp);
	cr_assert_eq(bp.hdr.boot_flag, 0xaa55);
	cr_assert_eq(bp.hdr.header, 0x53726448);
	cr_assert_eq(bp.hdr.version, 0x020c);
	cr_assert_eq(bp.hdr.type_of_loader, 0xff);
	cr_assert_eq(bp.hdr.kernel_alignment, 0x1000000);
	cr_assert_eq(bp.hdr.cmd_line_ptr, CMDLINE_ADDR);
	cr_assert_eq(bp.ext_cmd_line_ptr, 0);
	cr_assert_eq(bp.hdr.cmdline_size, CMDLINE_MAX - 1);
	cr_assert_eq(bp.hdr.ramdisk_image, 128 * MiB - 0x2000);
	cr_assert_eq(bp.hdr.ramdisk_size, 0x2000);
	cr_assert_eq(bp.ext_ramdisk_image, 0);
	cr_assert_eq(bp.ext_ramdisk_size, 0);
	cr_assert_eq(bp.hdr.setup_data, 0);
	cr_assert_eq(bp.screen_info.orig_video_isVGA, 0, "rest of the page zeroed");
	cr_assert_str_eq((const char *)gmem_ptr(g, CMDLINE_ADDR, strlen(cmd) + 1), cmd);
	cr_assert_eq(bp.e820_entries, 3);
	assert_e820(&bp, 0, 0, EBDA_START, E820_RAM);
	assert_e820(&bp, 1, EBDA_START, 0xa0000 - EBDA_START, E820_RESERVED);
	assert_e820(&bp, 2, HIMEM_START, 128 * MiB - HIMEM_START, E820_RAM);
	free(rd);
	gmem_destroy(g);
}

Test(loader, bzimage_zero_page_large_memory)
{
	uint64_t size = 4 * GiB + GiB / 2;
	struct gmem *g = mkgmem(size);
	struct boot_info bi;
	struct boot_params bp;
	const char *why = NULL;

	load_kernel(g, &bi, true, 2047);
	cr_assert_eq(loader_write_zero_page(g, &bi, "", &why), 0, "%s", why);
	read_zero_page(g, &bp);
	cr_assert_eq(bp.hdr.boot_flag, 0xaa55);
	cr_assert_eq(bp.hdr.version, 0x020f, "the image's header, not a synthesized one");
	cr_assert_eq(bp.hdr.init_size, 8 * MiB);
	cr_assert_eq(bp.hdr.pref_address, 0x1000000);
	cr_assert_eq(bp.hdr.kernel_alignment, 0x200000);
	cr_assert_eq(bp.hdr.loadflags, LOADED_HIGH);
	cr_assert_eq(bp.hdr.cmdline_size, 2047);
	cr_assert_eq(bp.hdr.type_of_loader, 0xff);
	cr_assert_eq(bp.hdr.cmd_line_ptr, CMDLINE_ADDR);
	cr_assert_eq(bp.hdr.ramdisk_image, 0);
	cr_assert_eq(bp.hdr.ramdisk_size, 0);
	cr_assert_eq(*(char *)gmem_ptr(g, CMDLINE_ADDR, 1), '\0');
	cr_assert_eq(bp.e820_entries, 4);
	assert_e820(&bp, 0, 0, EBDA_START, E820_RAM);
	assert_e820(&bp, 1, EBDA_START, 0xa0000 - EBDA_START, E820_RESERVED);
	assert_e820(&bp, 2, HIMEM_START, MMIO_GAP_START - HIMEM_START, E820_RAM);
	assert_e820(&bp, 3, MMIO_GAP_END, size - MMIO_GAP_START, E820_RAM);
	gmem_destroy(g);
}

Test(loader, cmdline_length_limits)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	char *cmd = malloc(CMDLINE_MAX + 1), want[80];

	cr_assert_not_null(cmd);
	load_kernel(g, &bi, false, 0);
	memset(cmd, 'a', CMDLINE_MAX);
	cmd[CMDLINE_MAX] = '\0';
	cr_assert_eq(loader_write_zero_page(g, &bi, cmd, &why), -EINVAL);
	snprintf(want, sizeof(want), "kernel command line too long (%llu bytes, max %llu)",
		 CMDLINE_MAX, CMDLINE_MAX - 1);
	cr_assert_str_eq(why, want);
	cmd[CMDLINE_MAX - 1] = '\0';
	cr_assert_eq(loader_write_zero_page(g, &bi, cmd, &why), 0, "%s", why);
	cr_assert_str_eq((const char *)gmem_ptr(g, CMDLINE_ADDR, CMDLINE_MAX), cmd);

	load_kernel(g, &bi, true, 255);
	cmd[256] = '\0';
	cr_assert_eq(loader_write_zero_page(g, &bi, cmd, &why), -EINVAL);
	cr_assert_str_eq(why, "kernel command line too long (256 bytes, max 255)");
	cmd[255] = '\0';
	cr_assert_eq(loader_write_zero_page(g, &bi, cmd, &why), 0, "%s", why);
	free(cmd);
	gmem_destroy(g);
}

/* A file holding len bytes of img (a memfd). */
static int image_file(const uint8_t *img, uint64_t len)
{
	int fd = memfd_create("image", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, img, len), (ssize_t)len);
	return fd;
}

/* From a file, the kernel and the initrd land as from memory; a file cut
 * short after its size was taken (whoever can write it) fails the load with
 * a message, where a mapping of it would have killed flint with SIGBUS. */
Test(loader, kernel_and_initrd_from_a_file_and_one_cut_short)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	uint64_t len, rdlen = 0x5000;
	uint8_t *img = make_elf(&len, two_segs, 2, 0x1000000), *rd = make_initrd(rdlen);
	int fd = image_file(img, len), rfd = image_file(rd, rdlen);

	cr_assert_eq(loader_load_kernel_fd(g, fd, len, &bi, &why), 0, "%s", why);
	cr_assert_eq(bi.kernel_end, 0x1205000);
	cr_assert_eq(memcmp(gmem_ptr(g, 0x1000000, 0x2000), img + 0x1000, 0x2000), 0);
	cr_assert_eq(memcmp(gmem_ptr(g, 0x1200000, 0x800), img + 0x3000, 0x800), 0);
	cr_assert_eq(loader_load_initrd_fd(g, rfd, rdlen, &bi, &why), 0, "%s", why);
	cr_assert_eq(memcmp(gmem_ptr(g, bi.initrd_addr, rdlen), rd, rdlen), 0);

	cr_assert_eq(ftruncate(fd, 0x2000), 0);
	cr_assert_eq(loader_load_kernel_fd(g, fd, len, &bi, &why), -EIO);
	cr_assert_str_eq(why, "the file shrank to 8192 of its 14336 bytes while read");
	cr_assert_eq(ftruncate(rfd, 0), 0);
	load_kernel(g, &bi, false, 0);
	cr_assert_eq(loader_load_initrd_fd(g, rfd, rdlen, &bi, &why), -EIO);
	cr_assert_str_eq(why, "the file shrank to 0 of its 20480 bytes while read");
	close(fd);
	close(rfd);
	free(img);
	free(rd);
	gmem_destroy(g);
}

/* Below the kernel's initrd_addr_max there is no room above the kernel:
 * more guest memory would not help, and the message says what would. */
Test(loader, initrd_above_the_kernels_initrd_addr_max)
{
	struct gmem *g = mkgmem(128 * MiB);
	struct boot_info bi;
	const char *why = NULL;
	uint8_t *rd = make_initrd(0x3000);

	load_kernel(g, &bi, true, 2047);
	bi.hdr.initrd_addr_max = 0x17fffff; /* the kernel needs up to 24 MiB */
	cr_assert_eq(loader_load_initrd(g, rd, 0x3000, &bi, &why), -EFBIG);
	cr_assert_str_eq(why, "initrd (1 MiB) does not fit between the kernel's end (0x1800000) "
			      "and its initrd_addr_max (0x17fffff)");
	free(rd);
	gmem_destroy(g);
}
