/*
 * The testbed's guest: a multiboot kernel that fills guest RAM from 2 MiB
 * up to MEMTOP with xorshift32 noise (so QEMU cannot send zero pages
 * cheaply), then checksums that memory over and over, writing each result
 * as "C<8 hex digits>\n" to QEMU's debug console (port 0xe9) and to the
 * first serial port (0x3f8, which nova's guests log to console.log and
 * nova's API reads back as the console output).
 *
 * The memory is never written again, so every checksum is the same; a
 * checksum the guest computes after a live migration, on the destination,
 * equal to the one it computed before, says the memory arrived intact and
 * the guest runs there. Assembled with --defsym MEMTOP=<bytes> and
 * --defsym PASSES=<n>: PASSES=0 checksums forever, otherwise the guest
 * halts after that many checksums (an idle guest).
 *
 * --defsym DIRTY=<bytes>, not 0, makes a guest that dirties its memory
 * instead, for the benchmark: after its first checksum it writes one word
 * of every 4 KiB page of the first DIRTY bytes of the noise, then sleeps
 * until the firmware's timer ticks (IRQ 0, 18.2 Hz), and again, forever.
 * Its working set stays dirty while its vCPU is idle almost all the time,
 * as a server's is; its memory no longer matches its checksum.
 */
    .text
    .align 4
    .long 0x1BADB002            /* multiboot magic */
    .long 0x0                   /* flags */
    .long -(0x1BADB002)         /* checksum */

/* One character, %al, to the debug console and the serial port. */
    .macro putc
    mov $0xe9, %dx
    out %al, %dx
    mov $0x3f8, %dx
    out %al, %dx
    .endm

    .globl _start
_start:
    cli
    mov $0x12345678, %eax
    mov $0x200000, %edi
fill:
    mov %eax, %edx
    shl $13, %edx
    xor %edx, %eax
    mov %eax, %edx
    shr $17, %edx
    xor %edx, %eax
    mov %eax, %edx
    shl $5, %edx
    xor %edx, %eax
    mov %eax, (%edi)
    add $4, %edi
    cmp $MEMTOP, %edi
    jb fill

    mov $PASSES, %ebp
checksum:
    xor %ebx, %ebx
    mov $0x200000, %edi
sum:
    rol $5, %ebx
    xor (%edi), %ebx
    add $4, %edi
    cmp $MEMTOP, %edi
    jb sum

    mov $'C', %al
    putc
    mov $8, %ecx
hex:
    rol $4, %ebx
    mov %bl, %al
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe digit
    add $('a' - '0' - 10), %al
digit:
    putc
    loop hex
    mov $'\n', %al
    putc

    mov $DIRTY, %ecx
    test %ecx, %ecx
    jnz dirty_setup
    test %ebp, %ebp
    jz checksum                 /* PASSES=0: forever */
    dec %ebp
    jnz checksum
idle:
    hlt
    jmp idle

/* All 256 gates of an IDT lead to tick: the timer wakes the hlt below. */
dirty_setup:
    mov %cs, %ax
    mov $idt, %edi
    mov $256, %ecx
gate:
    mov $tick, %edx
    mov %dx, (%edi)
    mov %ax, 2(%edi)
    movw $0x8e00, 4(%edi)       /* present, ring 0, 32-bit interrupt gate */
    shr $16, %edx
    mov %dx, 6(%edi)
    add $8, %edi
    loop gate
    lidt idtr
dirty:
    mov $0x200000, %edi
page:
    incl (%edi)
    add $4096, %edi
    cmp $(0x200000 + DIRTY), %edi
    jb page
    sti
    hlt
    cli
    jmp dirty

tick:
    push %eax
    mov $0x20, %al
    out %al, $0x20              /* end of interrupt, to the PIC */
    pop %eax
    iret

    .align 8
idtr:
    .word 256 * 8 - 1
    .long idt
    .align 8
idt:
    .fill 256 * 8
