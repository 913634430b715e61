//! `trap_dispatch`: where every entry into the kernel lands; the glue between the CPU and
//! kernel-core's state machine.
//!
//! Design: classify the vector into a `kernel_core::trap::Event` (acknowledging the PIC, reading CR2),
//! hand it to `Kernel::trap`, and turn its `Exit` into the code the assembly expects. An exception in
//! kernel mode is a kernel bug: it is reported (vector, error code, RIP, CR2, the task being served)
//! and the kernel panics, which powers QEMU off with a failure status, instead of triple-faulting.

use crate::arch::{self, TICK_NS, TIMER_VECTOR};
use crate::entry::TrapFrame;
use crate::mem::{DirectMap, FrameList};
use crate::KERNEL;
use kernel_core::kernel::{Kernel, Platform};
use kernel_core::trap::{exception_name, fault_detail, Event, Exit, FxArea, LiveFx, SYSCALL_VECTOR};

/// The hardware side of kernel-core's `Platform`.
pub struct Hw {
    /// The PML4 in CR3 now, so resuming the same task does not flush the TLB.
    pub loaded_root: u64,
    /// The calibrated TSC, or `None` to count ticks (`Platform::clock_ns`).
    pub clock: Option<kernel_core::tsc::TscClock>,
    /// Which task's FPU/SSE state the registers hold.
    pub live_fx: LiveFx,
}

impl Platform for Hw {
    fn log(&mut self, args: core::fmt::Arguments) {
        klog!("{args}");
    }
    fn console(&mut self, bytes: &[u8]) {
        crate::serial::write_bytes(bytes);
    }
    fn set_root(&mut self, root: u64) {
        if root != self.loaded_root {
            arch::set_cr3(root);
            self.loaded_root = root;
        }
    }
    fn load_fx(&mut self, fx: *mut FxArea) {
        if let Some(moves) = self.live_fx.switch_to(fx) {
            if let Some(save) = moves.save {
                arch::fx_save(save);
            }
            arch::fx_restore(moves.load);
        }
    }
    fn release_fx(&mut self, fx: *mut FxArea) {
        self.live_fx.release(fx);
    }
    fn tick_ns(&self) -> u64 {
        TICK_NS
    }
    fn clock_ns(&self) -> Option<u64> {
        self.clock.map(|c| c.ns(crate::time::rdtsc()))
    }
    fn port_in(&mut self, port: u16, width: u8) -> u32 {
        arch::port_in(port, width)
    }
    fn port_out(&mut self, port: u16, width: u8, value: u32) {
        arch::port_out(port, width, value)
    }
    fn irq_mask(&mut self, line: u8, masked: bool) {
        arch::set_irq_masked(line, masked)
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        crate::serial::read_bytes(buf)
    }
}

pub type KernelState = Kernel<Hw, DirectMap, FrameList>;

#[no_mangle]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) -> u64 {
    if frame.cs & 3 == 0 && frame.vector < 32 {
        kernel_fault(frame);
    }
    let event = match frame.vector {
        SYSCALL_VECTOR => Event::Syscall,
        TIMER_VECTOR => {
            arch::end_of_interrupt(TIMER_VECTOR);
            Event::Timer
        }
        vector @ 0..=31 => {
            Event::Exception { vector, error: frame.error, cr2: if vector == 14 { arch::cr2() } else { 0 } }
        }
        // Spurious IRQ 7: nothing to acknowledge. Spurious IRQ 15: acknowledge the master only.
        39 => Event::Ignored,
        47 => {
            arch::end_of_interrupt(TIMER_VECTOR);
            Event::Ignored
        }
        // Device lines: acknowledged here, masked and routed to their driver by kernel-core.
        v @ 33..=46 => {
            arch::end_of_interrupt(v);
            Event::Irq((v - TIMER_VECTOR) as u8)
        }
        v => {
            klog!("unexpected vector {v}; ignored");
            arch::end_of_interrupt(v);
            Event::Ignored
        }
    };
    let mut guard = KERNEL.lock();
    let Some(k) = guard.as_mut() else { panic!("trap {} before the kernel was ready", frame.vector) };
    let exit = k.trap(frame, event);
    crate::boot::check_stack_canary();
    match exit {
        Exit::Iret => 0,
        Exit::Sysret => 1,
        Exit::Idle => 2,
        Exit::Halt { ok } => crate::serial::exit_qemu(ok),
    }
}

fn kernel_fault(frame: &TrapFrame) -> ! {
    let (mnemonic, name) = exception_name(frame.vector);
    let detail = fault_detail(frame.vector, frame.error);
    let cr2 = if frame.vector == 14 { arch::cr2() } else { 0 };
    // Never wait for the kernel lock here: the fault may have happened while it was held.
    let running = match KERNEL.try_lock() {
        Some(guard) => {
            match guard.as_ref().and_then(|k| k.current.and_then(|c| k.task(c)).map(|t| (t.id.index, t.name.clone()))) {
                Some((i, n)) => alloc::format!("task {i} ({n})"),
                None => alloc::string::String::from("no task"),
            }
        }
        None => alloc::string::String::from("unknown task (kernel state locked)"),
    };
    klog!(
        "KERNEL FAULT {mnemonic} {name}{}{detail} while serving {running}: vector={} error={:#x} rip={:#x} cr2={cr2:#x} rsp={:#x}",
        if detail.is_empty() { "" } else { ", " },
        frame.vector,
        frame.error,
        frame.rip,
        frame.rsp
    );
    panic!("CPU exception {mnemonic} in kernel mode");
}
