/* The x86 guest-physical memory map. One place for every fixed address. */
#ifndef FLINT_LAYOUT_H
#define FLINT_LAYOUT_H

#define GDT_ADDR	0x500ULL   /* boot GDT, 4 entries */
#define IDT_ADDR	0x520ULL   /* empty IDT */
#define ZERO_PAGE_ADDR	0x7000ULL  /* struct boot_params */
#define BOOT_STACK_ADDR 0x8ff0ULL  /* rsp at entry */
#define PML4_ADDR	0x9000ULL  /* identity page tables: PML4 */
#define PDPT_ADDR	0xa000ULL  /* one PDPT */
#define PD_ADDR		0xb000ULL  /* four PDs (0xb000-0xefff): 4 GiB of 2 MiB pages */
#define CMDLINE_ADDR	0x20000ULL /* kernel command line */
#define CMDLINE_MAX	2048ULL	   /* bytes incl. NUL: x86 COMMAND_LINE_SIZE */
#define EBDA_START	0x9fc00ULL /* top of low RAM; MP table lives here */
#define MPTABLE_ADDR	EBDA_START
#define HIMEM_START	0x100000ULL /* 1 MiB: bzImage protected-mode code */

/* The 32-bit MMIO hole: RAM stops here and resumes at 4 GiB. */
#define MMIO_GAP_START 0xd0000000ULL
#define MMIO_GAP_END   0x100000000ULL
#define MMIO_SLOT_SIZE 0x1000ULL
/* Fixed MMIO devices, one page each, at the bottom of the hole. */
#define BOOT_TIMER_ADDR 0xd0000000ULL /* Firecracker's boot-timer contract */
#define EXIT_DEV_ADDR	0xd0001000ULL /* guest init reports its exit status */
#define MMIO_DYN_START	0xd0002000ULL /* later: virtio-mmio devices */
/* KVM needs three pages for the TSS and one for the identity map, in the hole. */
#define KVM_TSS_ADDR	      0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define IOAPIC_ADDR	      0xfec00000ULL
#define LAPIC_ADDR	      0xfee00000ULL

/* Device memory (virtio-pmem's files) starts at the first 1 GiB boundary
 * above RAM and the MMIO hole. */
#define DEVMEM_BASE_ALIGN (1ULL << 30)
/* And ends below 64 TiB, the physical memory x86-64 Linux addresses with
 * 4-level page tables (MAX_PHYSMEM_BITS 46). */
#define DEVMEM_END (1ULL << 46)

/* Legacy I/O ports and ISA IRQs. */
#define COM1_PORT	0x3f8
#define COM1_IRQ	4
#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT	0x64

#endif
