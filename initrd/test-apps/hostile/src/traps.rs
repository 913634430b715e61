//! The trap-path roles: each tries one way into the kernel that is not a system call, or a system
//! call with a machine state a careless entry path would trust, and must be killed by the exception
//! named (or, for `trap-ksp`, by the page fault its own kernel-half stack pointer causes back in user
//! mode) without disturbing anything else.
//!
//!   trap-tf     `popf` with the trap flag: the next instruction raises #DB in user mode;
//!   trap-ac     `popf` with AC, DF and NT set, then a system call and a misaligned load: the kernel
//!               entry must run with them cleared (SFMASK) and the task survive, then #DB from TF;
//!   trap-int80  `int 0x80`: not a gate user mode may use, #GP;
//!   trap-int3   `int3`: #BP or #GP, never a kernel fault;
//!   trap-icebp  `icebp` (int1): #DB;
//!   trap-ksp    a system call with the stack pointer in the kernel half: answered, then the first
//!               push in user mode is a #PF.
use core::arch::asm;
use libwatos::abi::{Sys, KERNEL_HALF};
use libwatos::{println, sys};

pub fn run(name: &str) {
    println!("{name}: trying");
    // Safety (every block): each deliberately ends this process with a CPU exception or runs a
    // system call with a hostile machine state; nothing after the fault runs.
    match name {
        "trap-tf" => unsafe { asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "nop") },
        "trap-ac" => {
            // Safety: as above; AC/DF/NT set in user mode, then a system call that must not fault.
            unsafe { asm!("pushfq", "or qword ptr [rsp], 0x44400", "popfq") };
            let id = sys::raw(Sys::TaskId, [0; 6]);
            // Safety: clears DF again so the Rust code after it follows the ABI.
            unsafe { asm!("cld") };
            println!("trap-ac: a system call with AC, DF and NT set returned {id:#x}");
            // Safety: as for trap-tf.
            unsafe { asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "nop") };
        }
        "trap-int80" => unsafe { asm!("int 0x80") },
        "trap-int3" => unsafe { asm!("int3") },
        "trap-icebp" => unsafe { asm!(".byte 0xf1") },
        "trap-ksp" => unsafe {
            asm!(
                "mov r12, rsp",
                "mov rsp, {k}",
                "mov eax, {nr}",
                "syscall",
                "push rax",
                k = in(reg) KERNEL_HALF + 0x1000,
                nr = const Sys::Yield as u32,
                out("rax") _, out("rcx") _, out("r11") _, out("r12") _,
            )
        },
        _ => {}
    }
}
