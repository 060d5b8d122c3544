#include "x86/loader.h"

#include <asm/e820.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "x86/layout.h"

#define SETUP_HDR_OFF 0x1f1
#define HDRS_MAGIC    0x53726448 /* "HdrS" */
#define BOOT_FLAG     0xaa55
/* 2.12 added xloadflags, which is how a kernel says it has a 64-bit entry. */
#define MIN_BOOT_PROTOCOL 0x020c
#define ENTRY64_OFF	  0x200 /* 64-bit entry: protected-mode part + 0x200 */
#define SECTOR		  512
#define PAGE_SIZE	  4096ULL
#define MiB		  (1ULL << 20)
/* x86-64 kernels link at -2 GiB; an e_entry up there is virtual. */
#define KERNEL_VIRT_BASE 0xffffffff80000000ULL
/* The ELF path has no kernel header to ask: stay below the hole, under 4 GiB. */
#define ELF_INITRD_ADDR_MAX (MMIO_GAP_START - 1)

/* Messages with numbers in them; one boot loads one kernel at a time. */
static char why_buf[128];

static int fail(const char **why, int err, const char *fmt, ...) PRINTF(3, 4);
static int fail(const char **why, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	*why = why_buf;
	return err;
}

/* The image being loaded: len bytes in memory, or in the file fd (mem
 * NULL), read with pread. */
struct image {
	const uint8_t *mem;
	int fd;
	uint64_t len;
};

/* Copy the n bytes at off, which the caller checked lie in the image, to
 * buf. A file read short (cut meanwhile, by whoever can write it) is an
 * error naming that, never a SIGBUS as a mapping of it would be. */
static int image_read(const struct image *im, uint64_t off, void *buf, uint64_t n, const char **why)
{
	uint8_t *p = buf;

	if (im->mem) {
		memcpy(buf, im->mem + off, n);
		return 0;
	}
	while (n) {
		ssize_t r = pread(im->fd, p, n < (1u << 30) ? n : (1u << 30), (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(why, -errno, "reading byte %llu: %s", (unsigned long long)off,
				    strerror(errno));
		if (r == 0)
			return fail(why, -EIO,
				    "the file shrank to %llu of its %llu bytes while read",
				    (unsigned long long)off, (unsigned long long)im->len);
		p += r;
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	return 0;
}

/* [off, off + n) lies inside a file of len bytes, without computing off + n. */
static bool in_file(uint64_t len, uint64_t off, uint64_t n)
{
	return off <= len && n <= len - off;
}

static uint64_t align_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) & ~(align - 1);
}

static uint64_t mib_up(uint64_t bytes)
{
	return bytes / MiB + (bytes % MiB != 0);
}

/* Validate one PT_LOAD header against the file and the guest's RAM. */
static int check_segment(const struct gmem *g, const Elf64_Phdr *ph, uint64_t len, const char **why)
{
	if (ph->p_filesz > ph->p_memsz)
		return fail(why, -EINVAL, "ELF segment file size exceeds its memory size");
	if (!in_file(len, ph->p_offset, ph->p_filesz))
		return fail(why, -EINVAL, "ELF segment extends past the end of the file");
	if (ph->p_memsz > UINT64_MAX - ph->p_paddr)
		return fail(why, -EINVAL, "ELF segment address range wraps around");
	if (ph->p_paddr < HIMEM_START)
		return fail(why, -EINVAL, "ELF segment is below 1 MiB");
	if (ph->p_paddr < MMIO_GAP_END && ph->p_paddr + ph->p_memsz > MMIO_GAP_START)
		return fail(why, -EINVAL, "ELF segment overlaps the MMIO hole");
	if (ph->p_paddr >= MMIO_GAP_END)
		return fail(why, -EINVAL,
			    "ELF segment is above 4 GiB, which the boot page tables do not map");
	if (!gmem_ptr(g, ph->p_paddr, ph->p_memsz))
		return fail(why, -EFBIG, "kernel does not fit in guest memory");
	return 0;
}

/* e_entry of x86-64 vmlinux is startup_64's physical address; accept a
 * virtual one too by translating through the segment that holds it. */
static int find_entry(const Elf64_Phdr *phs, const Elf64_Ehdr *eh, uint64_t *entry)
{
	bool virt = eh->e_entry >= KERNEL_VIRT_BASE;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = &phs[i];
		uint64_t base = virt ? ph->p_vaddr : ph->p_paddr;

		if (ph->p_type != PT_LOAD || eh->e_entry < base ||
		    eh->e_entry - base >= ph->p_memsz)
			continue;
		*entry = ph->p_paddr + (eh->e_entry - base);
		return 0;
	}
	return -EINVAL;
}

static int check_elf_header(const Elf64_Ehdr *eh, uint64_t len, const char **why)
{
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return fail(why, -EINVAL, "not a 64-bit ELF file");
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return fail(why, -EINVAL, "not a little-endian ELF file");
	if (eh->e_machine != EM_X86_64)
		return fail(why, -EINVAL, "ELF file is not for x86-64");
	if (eh->e_type != ET_EXEC)
		return fail(why, -EINVAL, "ELF file is not an executable");
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return fail(why, -EINVAL, "unexpected ELF program header size");
	if (eh->e_phnum == 0 || eh->e_phnum == PN_XNUM)
		return fail(why, -EINVAL, "unsupported ELF program header count");
	if (!in_file(len, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)))
		return fail(why, -EINVAL, "truncated ELF program header table");
	return 0;
}

/* Fill the header an ELF kernel lacks, as Firecracker does. */
static void synthesize_header(struct setup_header *h)
{
	memset(h, 0, sizeof(*h));
	h->boot_flag = BOOT_FLAG;
	h->header = HDRS_MAGIC;
	h->version = MIN_BOOT_PROTOCOL;
	h->type_of_loader = 0xff;
	h->kernel_alignment = 0x1000000;
	h->cmdline_size = CMDLINE_MAX - 1;
	h->initrd_addr_max = ELF_INITRD_ADDR_MAX;
}

static int load_elf(struct gmem *g, const struct image *im, struct boot_info *bi, const char **why)
{
	Elf64_Ehdr eh;
	Elf64_Phdr *phs;
	uint64_t start = UINT64_MAX, end = 0;
	int ret;

	if (im->len < sizeof(eh))
		return fail(why, -EINVAL, "truncated ELF header");
	if ((ret = image_read(im, 0, &eh, sizeof(eh), why)) ||
	    (ret = check_elf_header(&eh, im->len, why)))
		return ret;
	/* At most 65534 entries of 56 bytes. */
	if (!(phs = malloc((size_t)eh.e_phnum * sizeof(*phs))))
		return fail(why, -ENOMEM, "out of memory for the ELF program headers");
	if ((ret = image_read(im, eh.e_phoff, phs, (uint64_t)eh.e_phnum * sizeof(*phs), why)))
		goto out;
	/* Check every segment before copying any, so a bad file leaves the
	 * guest untouched. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *ph = &phs[i];

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if ((ret = check_segment(g, ph, im->len, why)))
			goto out;
		if (ph->p_paddr < start)
			start = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > end)
			end = ph->p_paddr + ph->p_memsz;
	}
	ret = -EINVAL;
	if (end == 0) {
		fail(why, ret, "ELF file has no loadable segments");
		goto out;
	}
	if (find_entry(phs, &eh, &bi->entry)) {
		fail(why, ret, "ELF entry point is outside the loadable segments");
		goto out;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *ph = &phs[i];
		uint8_t *dst;

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		dst = gmem_ptr_w(g, ph->p_paddr, ph->p_memsz);
		if ((ret = image_read(im, ph->p_offset, dst, ph->p_filesz, why)))
			goto out;
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	}
	bi->kind = KERNEL_ELF;
	bi->kernel_start = start;
	bi->kernel_end = end;
	synthesize_header(&bi->hdr);
	ret = 0;
out:
	free(phs);
	return ret;
}

static int check_bzimage_header(const struct setup_header *h, const char **why)
{
	if (h->boot_flag != BOOT_FLAG)
		return fail(why, -EINVAL, "bzImage has a bad boot flag (0x%04x)", h->boot_flag);
	if (h->version < MIN_BOOT_PROTOCOL)
		return fail(why, -EINVAL, "bzImage boot protocol %u.%02u is too old (need 2.12)",
			    h->version >> 8, h->version & 0xff);
	if (!(h->xloadflags & XLF_KERNEL_64))
		return fail(why, -EINVAL, "bzImage has no 64-bit entry point");
	if (!(h->loadflags & LOADED_HIGH))
		return fail(why, -EINVAL, "zImage (loaded low) is not supported");
	if (h->relocatable_kernel &&
	    (h->kernel_alignment == 0 || (h->kernel_alignment & (h->kernel_alignment - 1))))
		return fail(why, -EINVAL, "bzImage kernel alignment is not a power of two");
	return 0;
}

/* Where the kernel decompresses itself (boot.rst "init_size"; head_64.S also
 * never goes below pref_address, LOAD_PHYSICAL_ADDR). */
static uint64_t runtime_start(const struct setup_header *h, uint64_t load)
{
	uint64_t start = h->pref_address > load ? h->pref_address : load;

	if (h->relocatable_kernel && align_up(load, h->kernel_alignment) > start)
		start = align_up(load, h->kernel_alignment);
	return start;
}

/* Load the protected-mode part at HIMEM_START, as QEMU and Firecracker's
 * linux-loader do, and enter it at +0x200. */
static int load_bzimage(struct gmem *g, const struct image *im, const struct setup_header *hdr,
			struct boot_info *bi, const char **why)
{
	struct setup_header h = *hdr;
	uint64_t setup_sects, pm_off, pm_len, run, need, len = im->len;
	const uint64_t load = HIMEM_START;
	int ret;

	ret = check_bzimage_header(&h, why);
	if (ret)
		return ret;
	setup_sects = h.setup_sects ? h.setup_sects : 4;
	pm_off = (setup_sects + 1) * SECTOR;
	if (pm_off >= len)
		return fail(why, -EINVAL, "bzImage setup sectors extend past the end of the file");
	pm_len = len - pm_off;
	if (pm_len <= ENTRY64_OFF)
		return fail(why, -EINVAL, "bzImage protected-mode part is too small");
	/* Bounds pref_address so run + init_size below cannot wrap. */
	if (h.pref_address >= MMIO_GAP_START)
		return fail(why, -EINVAL, "bzImage preferred load address is not in low memory");
	run = runtime_start(&h, load);
	need = run + h.init_size > load + pm_len ? run + h.init_size : load + pm_len;
	if (!gmem_ptr(g, load, pm_len))
		return fail(why, -EFBIG, "kernel does not fit in guest memory");
	if (!gmem_ptr(g, load, need - load))
		return fail(why, -EFBIG, "kernel needs %llu MiB of memory",
			    (unsigned long long)mib_up(need));
	ret = image_read(im, pm_off, gmem_ptr_w(g, load, pm_len), pm_len, why);
	if (ret)
		return ret;
	h.code32_start = load;
	bi->kind = KERNEL_BZIMAGE;
	bi->entry = load + ENTRY64_OFF;
	bi->kernel_start = load;
	bi->kernel_end = need;
	bi->has_setup_header = true;
	bi->hdr = h;
	return 0;
}

static int load_kernel(struct gmem *g, const struct image *im, struct boot_info *bi,
		       const char **why)
{
	struct setup_header h;
	uint8_t magic[SELFMAG];
	int ret;

	memset(bi, 0, sizeof(*bi));
	if (im->len == 0)
		return fail(why, -EINVAL, "kernel image is empty");
	if (im->len >= SELFMAG) {
		if ((ret = image_read(im, 0, magic, SELFMAG, why)))
			return ret;
		if (memcmp(magic, ELFMAG, SELFMAG) == 0)
			return load_elf(g, im, bi, why);
	}
	if (im->len >= SETUP_HDR_OFF + sizeof(h)) {
		if ((ret = image_read(im, SETUP_HDR_OFF, &h, sizeof(h), why)))
			return ret;
		if (h.header == HDRS_MAGIC)
			return load_bzimage(g, im, &h, bi, why);
	}
	return fail(why, -EINVAL, "not an ELF or bzImage file");
}

int loader_load_kernel(struct gmem *g, const uint8_t *img, uint64_t len, struct boot_info *bi,
		       const char **why)
{
	const struct image im = {.mem = img, .len = len};

	return load_kernel(g, &im, bi, why);
}

int loader_load_kernel_fd(struct gmem *g, int fd, uint64_t len, struct boot_info *bi,
			  const char **why)
{
	const struct image im = {.fd = fd, .len = len};

	return load_kernel(g, &im, bi, why);
}

/* The top of where the initrd may go: below the hole and the end of low
 * RAM, and at most the kernel's initrd_addr_max (*capped then). */
static uint64_t initrd_limit(const struct gmem *g, const struct boot_info *bi, bool *capped)
{
	uint64_t addr_max = bi->has_setup_header ? bi->hdr.initrd_addr_max : ELF_INITRD_ADDR_MAX;
	uint64_t limit = gmem_low_end(g);

	*capped = addr_max + 1 < limit;
	return *capped ? addr_max + 1 : limit;
}

static int load_initrd(struct gmem *g, const struct image *im, struct boot_info *bi,
		       const char **why)
{
	bool capped;
	uint64_t limit = initrd_limit(g, bi, &capped), len = im->len;
	uint64_t floor = align_up(bi->kernel_end, PAGE_SIZE);
	uint64_t addr;
	int ret;

	if (len == 0)
		return fail(why, -EINVAL, "initrd is empty");
	if (len > limit || ((limit - len) & ~(PAGE_SIZE - 1)) < floor) {
		if (capped)
			return fail(why, -EFBIG,
				    "initrd (%llu MiB) does not fit between the kernel's end "
				    "(%#llx) and its initrd_addr_max (%#llx)",
				    (unsigned long long)mib_up(len), (unsigned long long)floor,
				    (unsigned long long)(limit - 1));
		return fail(why, -EFBIG,
			    "initrd does not fit in guest memory (%llu MiB; try a larger --mem)",
			    (unsigned long long)mib_up(len));
	}
	addr = (limit - len) & ~(PAGE_SIZE - 1);
	if ((ret = image_read(im, 0, gmem_ptr_w(g, addr, len), len, why)))
		return ret;
	bi->initrd_addr = addr;
	bi->initrd_size = len;
	return 0;
}

int loader_load_initrd(struct gmem *g, const uint8_t *img, uint64_t len, struct boot_info *bi,
		       const char **why)
{
	const struct image im = {.mem = img, .len = len};

	return load_initrd(g, &im, bi, why);
}

int loader_load_initrd_fd(struct gmem *g, int fd, uint64_t len, struct boot_info *bi,
			  const char **why)
{
	const struct image im = {.fd = fd, .len = len};

	return load_initrd(g, &im, bi, why);
}

static void add_e820(struct boot_params *bp, uint64_t addr, uint64_t end, uint32_t type)
{
	if (end <= addr)
		return;
	bp->e820_table[bp->e820_entries++] =
	    (struct boot_e820_entry){.addr = addr, .size = end - addr, .type = type};
}

/* Low RAM up to the EBDA; the EBDA (and the MP table in it) reserved; the
 * VGA/BIOS area [0xa0000, 1 MiB) left out, as on a PC; then every byte of
 * RAM gmem has from 1 MiB up, split by the MMIO hole. */
static void fill_e820(const struct gmem *g, struct boot_params *bp)
{
	uint64_t low_end = gmem_low_end(g);

	add_e820(bp, 0, low_end < EBDA_START ? low_end : EBDA_START, E820_RAM);
	add_e820(bp, EBDA_START, 0xa0000, E820_RESERVED);
	add_e820(bp, HIMEM_START, low_end, E820_RAM);
	for (size_t i = 1; i < gmem_nregions(g); i++) {
		const struct gmem_region *r = gmem_region(g, i);
		add_e820(bp, r->gpa, r->gpa + r->size, E820_RAM);
	}
}

int loader_write_zero_page(struct gmem *g, const struct boot_info *bi, const char *cmdline,
			   const char **why)
{
	struct boot_params bp;
	size_t n = strlen(cmdline);
	uint64_t max = CMDLINE_MAX - 1;

	if (bi->has_setup_header && bi->hdr.cmdline_size < max)
		max = bi->hdr.cmdline_size;
	if (n > max)
		return fail(why, -EINVAL, "kernel command line too long (%zu bytes, max %llu)", n,
			    (unsigned long long)max);
	memset(&bp, 0, sizeof(bp));
	bp.hdr = bi->hdr;
	bp.hdr.type_of_loader = 0xff;
	bp.hdr.cmd_line_ptr = (uint32_t)CMDLINE_ADDR;
	bp.ext_cmd_line_ptr = (uint32_t)(CMDLINE_ADDR >> 32);
	bp.hdr.ramdisk_image = (uint32_t)bi->initrd_addr;
	bp.hdr.ramdisk_size = (uint32_t)bi->initrd_size;
	bp.ext_ramdisk_image = (uint32_t)(bi->initrd_addr >> 32);
	bp.ext_ramdisk_size = (uint32_t)(bi->initrd_size >> 32);
	fill_e820(g, &bp);
	if (gmem_write(g, CMDLINE_ADDR, cmdline, n + 1) ||
	    gmem_write(g, ZERO_PAGE_ADDR, &bp, sizeof(bp)))
		return fail(why, -EFAULT, "guest memory too small for the zero page");
	return 0;
}
