#include <asm/processor-flags.h>
#include <criterion/criterion.h>
#include <errno.h>

#include "core/gmem.h"
#include "x86/layout.h"
#include "x86/x86.h"

Test(x86, page_tables_identity_map_4g_with_2m_pages)
{
	struct gmem *g;
	cr_assert_eq(gmem_create(&g, 64 << 20), 0);
	cr_assert_eq(x86_write_boot_tables(g), 0);
	uint64_t *pml4 = gmem_ptr(g, PML4_ADDR, 4096);
	uint64_t *pdpt = gmem_ptr(g, PDPT_ADDR, 4096);
	uint64_t *pd = gmem_ptr(g, PD_ADDR, 4 * 4096);
	cr_assert_eq(pml4[0] & ~0xfffULL, PDPT_ADDR);
	cr_assert_eq(pml4[0] & 3, 3, "present, writable");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pdpt[i] & ~0xfffULL, PD_ADDR + i * 0x1000);
	cr_assert_eq(pd[0], 0x83);
	cr_assert_eq(pd[1] & ~0xfffULL, 2 << 20);
	cr_assert_eq(pd[2047] & ~0xfffULL, 0xffe00000ULL);
	gmem_destroy(g);
}

Test(x86, gdt_matches_the_boot_protocol_selectors)
{
	struct gmem *g;
	struct kvm_sregs s = {0};
	cr_assert_eq(gmem_create(&g, 64 << 20), 0);
	cr_assert_eq(x86_write_boot_tables(g), 0);
	x86_boot_sregs(&s);
	cr_assert_eq(s.cs.selector, 0x10, "__BOOT_CS");
	cr_assert_eq(s.ds.selector, 0x18, "__BOOT_DS");
	cr_assert_eq(s.ss.selector, 0x18);
	cr_assert_eq(s.cs.l, 1, "64-bit code");
	uint64_t *gdt = gmem_ptr(g, GDT_ADDR, s.gdt.limit + 1);
	/* The code descriptor: present, DPL 0, exec/read, L=1, G=1. */
	cr_assert_eq((gdt[2] >> 40) & 0xff, 0x9b);
	cr_assert_eq((gdt[2] >> 53) & 1, 1, "L bit");
	cr_assert_eq((gdt[3] >> 40) & 0xff, 0x93);
	cr_assert_eq(s.cr3, PML4_ADDR);
	cr_assert(s.cr0 & X86_CR0_PG);
	cr_assert(s.cr0 & X86_CR0_PE);
	cr_assert(s.cr4 & X86_CR4_PAE);
	cr_assert_eq(s.efer & 0x500, 0x500, "LME and LMA");
	gmem_destroy(g);
}

Test(x86, boot_regs_point_at_entry_and_zero_page)
{
	struct kvm_regs r;
	struct boot_info bi = {.entry = 0x1000000};
	x86_boot_regs(&r, &bi);
	cr_assert_eq(r.rip, 0x1000000);
	cr_assert_eq(r.rsi, ZERO_PAGE_ADDR);
	cr_assert_eq(r.rflags, 2);
	cr_assert_eq(r.rax, 0);
}

Test(x86, tables_fail_cleanly_without_low_memory)
{
	struct gmem *g;
	/* 16 KiB of RAM cannot hold the page directories at 0xb000-0xefff. */
	cr_assert_eq(gmem_create(&g, 16 << 10), 0);
	cr_assert_eq(x86_write_boot_tables(g), -EFAULT);
	gmem_destroy(g);
}
