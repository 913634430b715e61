//! Trap entry and exit: the interrupt stubs, `syscall` entry, and the paths back to user mode.
//!
//! Design: every way into the kernel builds the same `TrapFrame` at the top of the one kernel stack
//! (the CPU switches to TSS.RSP0 on an interrupt from ring 3; `syscall_entry` switches by hand; the
//! idle loop halts with RSP at the same top) and calls `trap_dispatch` with a
//! `kernel_core::trap::TrapFrame` (whose field order is this code's push order). That Rust function
//! may rewrite the whole frame with another task's registers; its return value picks the exit:
//! 0 = `iretq`, 1 = `sysretq` (the task last entered through `syscall`, so rcx/r11 are dead),
//! 2 = idle. The FPU/SSE registers are not saved here: the kernel is built soft-float and never
//! touches them, so they keep the last task's state across any trap, and `Hw::load_fx` swaps them
//! only when a different task is resumed. Interrupts stay disabled in the kernel (interrupt gates,
//! and SFMASK clears IF on `syscall`), so a trap never nests on a stack Rust is using; only #DF has
//! its own IST stack.

use core::arch::global_asm;

pub use kernel_core::trap::TrapFrame;

/// Scratch for the user RSP during `syscall_entry` (one CPU, interrupts off: no race).
#[no_mangle]
static mut SYSCALL_USER_RSP: u64 = 0;
/// Top of the kernel stack, set once at boot.
#[no_mangle]
pub static mut KSTACK_TOP: u64 = 0;

extern "C" {
    /// Table of the 48 interrupt stubs (exceptions 0..31, PIC IRQs 32..47).
    pub static isr_table: [u64; 48];
    pub fn syscall_entry();
    /// Halts with interrupts on until the next trap; never returns.
    pub fn idle_loop() -> !;
}

global_asm!(
    r#"
.section .text.entry, "ax"
// Restores the general registers saved by trap_common and drops vector and error code, leaving RSP
// at the CPU-format return frame (rip, cs, rflags, rsp, ss).
.macro POP_TASK_REGISTERS
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
.endm

.global trap_common
trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp
    call trap_dispatch
    cmp rax, 2
    je idle_loop
    test rax, rax
    jnz return_sysret
    POP_TASK_REGISTERS
    iretq
return_sysret:
    POP_TASK_REGISTERS
    mov rcx, [rsp]
    mov r11, [rsp + 16]
    mov rsp, [rsp + 24]
    sysretq

.global idle_loop
idle_loop:
    mov rsp, [rip + KSTACK_TOP]
    sti
    hlt
    cli
    jmp idle_loop

.global syscall_entry
syscall_entry:
    mov [rip + SYSCALL_USER_RSP], rsp
    mov rsp, [rip + KSTACK_TOP]
    push 0x1b
    push qword ptr [rip + SYSCALL_USER_RSP]
    push r11
    push 0x23
    push rcx
    push 0
    push 256
    jmp trap_common

isr_0:
    push 0
    push 0
    jmp trap_common
isr_1:
    push 0
    push 1
    jmp trap_common
isr_2:
    push 0
    push 2
    jmp trap_common
isr_3:
    push 0
    push 3
    jmp trap_common
isr_4:
    push 0
    push 4
    jmp trap_common
isr_5:
    push 0
    push 5
    jmp trap_common
isr_6:
    push 0
    push 6
    jmp trap_common
isr_7:
    push 0
    push 7
    jmp trap_common
isr_8:
    push 8
    jmp trap_common
isr_9:
    push 0
    push 9
    jmp trap_common
isr_10:
    push 10
    jmp trap_common
isr_11:
    push 11
    jmp trap_common
isr_12:
    push 12
    jmp trap_common
isr_13:
    push 13
    jmp trap_common
isr_14:
    push 14
    jmp trap_common
isr_15:
    push 0
    push 15
    jmp trap_common
isr_16:
    push 0
    push 16
    jmp trap_common
isr_17:
    push 17
    jmp trap_common
isr_18:
    push 0
    push 18
    jmp trap_common
isr_19:
    push 0
    push 19
    jmp trap_common
isr_20:
    push 0
    push 20
    jmp trap_common
isr_21:
    push 21
    jmp trap_common
isr_22:
    push 0
    push 22
    jmp trap_common
isr_23:
    push 0
    push 23
    jmp trap_common
isr_24:
    push 0
    push 24
    jmp trap_common
isr_25:
    push 0
    push 25
    jmp trap_common
isr_26:
    push 0
    push 26
    jmp trap_common
isr_27:
    push 0
    push 27
    jmp trap_common
isr_28:
    push 0
    push 28
    jmp trap_common
isr_29:
    push 29
    jmp trap_common
isr_30:
    push 30
    jmp trap_common
isr_31:
    push 0
    push 31
    jmp trap_common
isr_32:
    push 0
    push 32
    jmp trap_common
isr_33:
    push 0
    push 33
    jmp trap_common
isr_34:
    push 0
    push 34
    jmp trap_common
isr_35:
    push 0
    push 35
    jmp trap_common
isr_36:
    push 0
    push 36
    jmp trap_common
isr_37:
    push 0
    push 37
    jmp trap_common
isr_38:
    push 0
    push 38
    jmp trap_common
isr_39:
    push 0
    push 39
    jmp trap_common
isr_40:
    push 0
    push 40
    jmp trap_common
isr_41:
    push 0
    push 41
    jmp trap_common
isr_42:
    push 0
    push 42
    jmp trap_common
isr_43:
    push 0
    push 43
    jmp trap_common
isr_44:
    push 0
    push 44
    jmp trap_common
isr_45:
    push 0
    push 45
    jmp trap_common
isr_46:
    push 0
    push 46
    jmp trap_common
isr_47:
    push 0
    push 47
    jmp trap_common
.section .rodata.isr_table, "a"
.align 8
.global isr_table
isr_table:
    .quad isr_0
    .quad isr_1
    .quad isr_2
    .quad isr_3
    .quad isr_4
    .quad isr_5
    .quad isr_6
    .quad isr_7
    .quad isr_8
    .quad isr_9
    .quad isr_10
    .quad isr_11
    .quad isr_12
    .quad isr_13
    .quad isr_14
    .quad isr_15
    .quad isr_16
    .quad isr_17
    .quad isr_18
    .quad isr_19
    .quad isr_20
    .quad isr_21
    .quad isr_22
    .quad isr_23
    .quad isr_24
    .quad isr_25
    .quad isr_26
    .quad isr_27
    .quad isr_28
    .quad isr_29
    .quad isr_30
    .quad isr_31
    .quad isr_32
    .quad isr_33
    .quad isr_34
    .quad isr_35
    .quad isr_36
    .quad isr_37
    .quad isr_38
    .quad isr_39
    .quad isr_40
    .quad isr_41
    .quad isr_42
    .quad isr_43
    .quad isr_44
    .quad isr_45
    .quad isr_46
    .quad isr_47
"#
);
