/* A tiny 64-bit "kernel" for smoke tests: entered by flint in long mode like
 * Linux, it signals the boot timer, prints a line on the UART, then ends in
 * the way chosen at build time:
 *   EXIT_STATUS  report 42 through flint's exit device
 *   RESET        pulse reset through the i8042 (a guest reboot)
 *   TRIPLE       touch unmapped memory with an empty IDT: #PF, then #DF,
 *                then a triple fault */
	.code64
	.globl _start
_start:
	movb $123, %al
	movabs $0xd0000000, %rbx
	movb %al, (%rbx)
	mov $0x3f8, %dx
	lea msg(%rip), %rsi
1:	lodsb
	test %al, %al
	jz 2f
	outb %al, %dx
	jmp 1b
2:
#if defined(EXIT_STATUS)
	movl $42, %eax
	movabs $0xd0001000, %rbx
	movl %eax, (%rbx)
#elif defined(RESET)
	movb $0xfe, %al
	outb %al, $0x64
#elif defined(TRIPLE)
	lidt bad_idt(%rip)
	movabs $0x800000000000, %rbx
	movb (%rbx), %al
#endif
3:	hlt
	jmp 3b
msg:	.asciz "hello from the tiny guest\n"
bad_idt: .word 0
	.quad 0
