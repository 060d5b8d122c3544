/* A tiny 64-bit guest for snapbench's selftest (bench/snapshot/selftest.sh):
 * on hosts whose KVM runs no Linux guest, it stands in for the benchmark's
 * guest command. Entered by flint in long mode, it signals the boot timer,
 * prints "bench-ready", then answers each line read from the UART with
 * "pong LINE", polling the line status register (no interrupts, no stack).
 * Lines are cut at 64 bytes; carriage returns are dropped. */
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
	print ready
newline:
	xor %r8, %r8
wait:
	mov $0x3fd, %dx
	inb %dx, %al
	test $1, %al
	jnz have
	pause
	jmp wait
have:
	mov $0x3f8, %dx
	inb %dx, %al
	cmp $13, %al
	je wait
	cmp $10, %al
	je answer
	cmp $64, %r8
	jae wait
	lea line(%rip), %rdi
	movb %al, (%rdi,%r8)
	inc %r8
	jmp wait
answer:
	print pong
	lea line(%rip), %rsi
	mov %r8, %rcx
	rep outsb
	movb $10, %al
	outb %al, %dx
	jmp newline
ready:	.asciz "bench-ready\n"
pong:	.asciz "pong "
line:	.fill 64, 1, 0
