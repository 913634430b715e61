//! Multiboot entry and the 32-bit trampoline into long mode.
//!
//! Design: the multiboot1 header uses the a.out kludge (flag bit 16) so QEMU's `-kernel` loads our
//! ELF64 file verbatim at 1 MiB. `_start32` runs in protected mode without paging: it enables SSE
//! (the precompiled libcore uses it), builds the boot page tables, enters long mode and jumps to the
//! higher half. The boot tables map, with 2 MiB pages:
//!
//! - 0..4 GiB identity (only until the jump; the kernel clears it before any process exists),
//! - 0..4 GiB at 0xFFFF_8000_0000_0000 (the direct map through which the kernel reaches all RAM),
//! - 0..1 GiB at 0xFFFF_FFFF_8000_0000 (the kernel image, linked there).
//!
//! These tables stay the kernel's tables for good: their upper half is copied into every process.

use core::arch::global_asm;

global_asm!(
    r#"
.section .multiboot, "a"
.align 4
multiboot_header:
    .long 0x1BADB002
    .long 0x00010003
    .long -(0x1BADB002 + 0x00010003)
    .long multiboot_header
    .long __phys_start
    .long __load_end_phys
    .long __bss_end_phys
    .long _start32

.section .boot.text, "ax"
.code32
.global _start32
_start32:
    cli
    mov edi, eax
    mov esi, ebx
    mov eax, cr0
    and eax, 0xFFFFFFFB
    or eax, 0x2
    mov cr0, eax
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax

    xor ecx, ecx
fill_pd:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [boot_pd + ecx*8], eax
    mov dword ptr [boot_pd + ecx*8 + 4], 0
    inc ecx
    cmp ecx, 2048
    jne fill_pd

    xor ecx, ecx
fill_pdpt:
    mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 3
    mov [boot_pdpt + ecx*8], eax
    inc ecx
    cmp ecx, 4
    jne fill_pdpt

    mov eax, offset boot_pd
    or eax, 3
    mov [boot_pdpt_high + 510*8], eax
    mov eax, offset boot_pdpt
    or eax, 3
    mov [boot_pml4], eax
    mov [boot_pml4 + 256*8], eax
    mov eax, offset boot_pdpt_high
    or eax, 3
    mov [boot_pml4 + 511*8], eax
    mov eax, offset boot_pml4
    mov cr3, eax

    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x901
    wrmsr

    mov eax, cr0
    or eax, 0x80010000
    mov cr0, eax
    lgdt [boot_gdtr]
    .byte 0xEA
    .long long_mode_low
    .word 0x08

.code64
long_mode_low:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movabs rax, offset long_mode_high
    jmp rax

.section .boot.data, "aw", @progbits
.align 4096
.global boot_pml4
boot_pml4: .zero 4096
boot_pdpt: .zero 4096
boot_pdpt_high: .zero 4096
boot_pd: .zero 16384
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdtr:
    .word 23
    .long boot_gdt

.section .bss.stacks, "aw", @nobits
.align 16
.global kernel_stack_bottom
kernel_stack_bottom:
    .skip 65536
.global kernel_stack_top
kernel_stack_top:
    .skip 16384
.global fault_stack_top
fault_stack_top:

.section .text.boot64, "ax"
long_mode_high:
    movabs rsp, offset kernel_stack_top
    mov edi, edi
    mov esi, esi
    xor ebp, ebp
    movabs rax, offset kmain
    call rax
    ud2
"#
);

extern "C" {
    static mut kernel_stack_bottom: u64;
    static boot_pml4: u8;
    static kernel_stack_top: u8;
    static fault_stack_top: u8;
    static __phys_start: u8;
    static __kernel_end: u8;
}

/// Physical address of the kernel's PML4 (the boot tables live in the identity-placed boot section).
pub fn kernel_pml4() -> u64 {
    &raw const boot_pml4 as u64
}

/// Written at the lowest word of the kernel stack; if it ever changes, the stack overflowed (there
/// is no guard page: the kernel image is mapped with 2 MiB pages).
const STACK_CANARY: u64 = 0x5741_544F_535F_5354;

pub fn set_stack_canary() {
    // Safety: the lowest word of the kernel stack, far below anything in use at boot.
    unsafe { (&raw mut kernel_stack_bottom).write_volatile(STACK_CANARY) };
}

/// Panics if the kernel stack overflowed at some point (checked on every trap).
pub fn check_stack_canary() {
    // Safety: reading the word `set_stack_canary` wrote.
    if unsafe { (&raw const kernel_stack_bottom).read_volatile() } != STACK_CANARY {
        panic!("kernel stack overflow (canary at the bottom of the kernel stack overwritten)");
    }
}

/// Top of the one kernel stack every trap from user mode lands on.
pub fn kstack_top() -> u64 {
    &raw const kernel_stack_top as u64
}

/// Top of the double-fault stack (IST1).
pub fn fault_stack() -> u64 {
    &raw const fault_stack_top as u64
}

/// Physical range of the loaded kernel image including bss.
pub fn image_phys() -> (u64, u64) {
    let (start, end) = (&raw const __phys_start as u64, &raw const __kernel_end as u64);
    (start, end - crate::KERNEL_VMA)
}
