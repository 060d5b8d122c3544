/* A tiny 64-bit "kernel" for smoke tests: entered by flint in long mode like
 * Linux, it signals the boot timer, prints a line on the UART, then ends in
 * the way chosen at build time:
 *   EXIT_STATUS  report 42 through flint's exit device
 *   RESET        pulse reset through the i8042 (a guest reboot)
 *   TRIPLE       touch unmapped memory with an empty IDT: #PF, then #DF,
 *                then a triple fault
 *   PANIC        print what Linux's panic() prints without panic=, ending
 *                with its end marker, then spin for ever as it does
 *   PANIC_LINE   print only a panic line (no end marker), then report 42
 *   COUNT        print "tick N" lines for ever, N counting up (base 16), one
 *                every 16384 turns of a busy loop: output that stops when
 *                the vCPU is paused
 *   WALK         for each byte B on the UART's input, write to the 4 KiB
 *                page at 32 MiB + B * 4 KiB and print "walked": memory
 *                touched when the test says (a restored guest's page that
 *                no handler has served yet)
 *   FLOOD        print a 64-byte line for ever, each with one `rep outsb`
 *                (one exit for the whole line), as fast as flint takes them
 *   HANG (or none of these)  halt for ever */
	.macro print str
	lea \str(%rip), %rsi
1:	lodsb
	test %al, %al
	jz 2f
	outb %al, %dx
	jmp 1b
2:
	.endm

	.code64
	.globl _start
_start:
	movb $123, %al
	movabs $0xd0000000, %rbx
	movb %al, (%rbx)
	mov $0x3f8, %dx
	print msg
#if defined(PANIC)
	print panic_msg
4:	pause
	jmp 4b
#elif defined(PANIC_LINE)
	print panic_line
#elif defined(COUNT)
	xor %r12, %r12
5:	mov $16384, %ecx
6:	dec %ecx
	jnz 6b
	inc %r12
	print tick
	/* N in base 16, most significant digit first, no leading zeros. */
	mov %r12, %r13
	bsr %r13, %rcx
	and $~3, %ecx
7:	mov %r13, %rax
	shr %cl, %rax
	and $15, %eax
	movb hex(%rax), %al
	outb %al, %dx
	sub $4, %ecx
	jns 7b
	movb $10, %al
	outb %al, %dx
	jmp 5b
#elif defined(WALK)
10:	mov $0x3fd, %dx
11:	inb %dx, %al
	test $1, %al
	jz 11b
	mov $0x3f8, %dx
	inb %dx, %al
	movzbl %al, %eax
	shl $12, %rax
	add $0x2000000, %rax
	movb %al, (%rax)
	print walked
	jmp 10b
#elif defined(FLOOD)
8:	lea flood(%rip), %rsi
	mov $64, %ecx
	rep outsb
	jmp 8b
#endif
#if defined(EXIT_STATUS) || defined(PANIC_LINE)
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
panic_msg:
	.ascii "[    1.000000] Kernel panic - not syncing: tiny guest test panic\r\n"
	.ascii "[    1.000001] CPU: 0 PID: 1 Comm: swapper/0\r\n"
	.asciz "[    1.000002] ---[ end Kernel panic - not syncing: tiny guest test panic ]---\r\n"
tick:	.asciz "tick "
walked:	.asciz "walked\n"
flood:	.ascii "flood: 64 bytes a line, one rep outsb each, as fast as it goes.\n"
hex:	.ascii "0123456789abcdef"
panic_line:
	.asciz "Kernel panic - not syncing: only a line of text\n"
bad_idt: .word 0
	.quad 0
