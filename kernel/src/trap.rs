//! `trap_dispatch`: where every entry into the kernel lands, and the CPU-exception reports.
//!
//! Design: a trap from user mode first saves the task's registers, then is handled (syscall, timer,
//! exception), then the scheduler loads whichever task runs next into the same frame. An exception in
//! user mode kills only that task, with a report naming the vector, error code, RIP, CR2 and the task.
//! An exception in kernel mode is a kernel bug: it is reported the same way and the kernel panics
//! (which powers QEMU off with a failure status) rather than triple-faulting silently.

use crate::arch::{self, TIMER_VECTOR};
use crate::entry::{TrapFrame, SYSCALL_VECTOR};
use crate::task::{Death, Kernel};
use crate::{syscall, KERNEL};

/// Mnemonic and name of CPU exception `vector`.
pub fn exception_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point error"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        _ => ("#??", "reserved exception"),
    }
}

/// Decodes a page-fault error code into words a person can act on.
fn page_fault_detail(error: u64) -> &'static str {
    match (error & 1 != 0, error & 2 != 0, error & 16 != 0) {
        (_, _, true) => "instruction fetch",
        (false, false, _) => "read of an unmapped page",
        (false, true, _) => "write to an unmapped page",
        (true, false, _) => "read of a protected page",
        (true, true, _) => "write to a protected page",
    }
}

fn describe(frame: &TrapFrame) -> (&'static str, &'static str, &'static str, u64) {
    let (mnemonic, name) = exception_name(frame.vector);
    let cr2 = if frame.vector == 14 { arch::cr2() } else { 0 };
    let detail = if frame.vector == 14 { page_fault_detail(frame.error) } else { "" };
    (mnemonic, name, detail, cr2)
}

#[no_mangle]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) -> u64 {
    let from_user = frame.cs & 3 == 3;
    if !from_user && frame.vector < 32 {
        kernel_fault(frame);
    }
    let mut guard = KERNEL.lock();
    let Some(k) = guard.as_mut() else { panic!("trap {} before the kernel was ready", frame.vector) };
    if from_user {
        k.save_current(frame);
    }
    let reschedule = match frame.vector {
        SYSCALL_VECTOR => k.current.is_none_or(|c| syscall::dispatch(k, c)),
        TIMER_VECTOR => {
            arch::end_of_interrupt(frame.vector);
            k.tick()
        }
        0..=31 => {
            user_fault(k, frame);
            true
        }
        // Spurious IRQ 7 / 15 from the PIC: nothing to acknowledge on the master for 7.
        39 => false,
        47 => {
            arch::end_of_interrupt(32);
            false
        }
        v => {
            klog!("unexpected vector {v}; ignored");
            arch::end_of_interrupt(v);
            false
        }
    };
    k.switch(frame, reschedule) as u64
}

fn user_fault(k: &mut Kernel, frame: &TrapFrame) {
    let Some(c) = k.current else { return };
    let (mnemonic, name, detail, cr2) = describe(frame);
    let task = k.task(c).map_or("?", |t| t.name.as_str());
    klog!(
        "task {c} ({task}) killed by {mnemonic} {name}{}{detail}: vector={} error={:#x} rip={:#x} cr2={cr2:#x} rsp={:#x}",
        if detail.is_empty() { "" } else { ", " },
        frame.vector,
        frame.error,
        frame.rip,
        frame.rsp
    );
    k.reap(c, Death::Fault);
}

fn kernel_fault(frame: &TrapFrame) -> ! {
    let (mnemonic, name, detail, cr2) = describe(frame);
    // Never wait for the kernel lock here: the fault may have happened while it was held.
    let running = match KERNEL.try_lock() {
        Some(guard) => match guard.as_ref().and_then(|k| k.current.and_then(|c| k.task(c)).map(|t| (t.id.index, t.name.clone()))) {
            Some((i, n)) => alloc::format!("task {i} ({n})"),
            None => alloc::string::String::from("no task"),
        },
        None => alloc::string::String::from("unknown task (kernel state locked)"),
    };
    klog!(
        "KERNEL FAULT {mnemonic} {name} {detail} while serving {running}: vector={} error={:#x} rip={:#x} cr2={cr2:#x} rsp={:#x}",
        frame.vector,
        frame.error,
        frame.rip,
        frame.rsp
    );
    panic!("CPU exception {mnemonic} in kernel mode");
}
