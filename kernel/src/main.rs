//! The WATOS microkernel: boot, memory, address spaces, processes, scheduling and validated syscalls.
//!
//! Design (see docs/ARCHITECTURE.md): a thin hardware layer around `kernel-core`, which holds every
//! decision that can be tested on the host. The kernel runs on one CPU with interrupts disabled
//! whenever kernel code runs; interrupts are taken only from user mode or from the idle `hlt`, always
//! on the single kernel stack, so no interrupt ever lands on a stack Rust code is using. Every trap
//! (syscall, exception, timer) saves the user registers into the current task, and the exit path
//! restores whichever task the scheduler picked: there are no per-task kernel stacks.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod boot;
#[macro_use]
mod serial;

/// Where the kernel image is linked: physical address + this.
pub const KERNEL_VMA: u64 = 0xFFFF_FFFF_8000_0000;

#[global_allocator]
static HEAP: kernel_core::heap::LockedHeap<kernel_core::heap::NoGrow> =
    kernel_core::heap::LockedHeap::new(kernel_core::heap::NoGrow);

/// Called by the boot trampoline in long mode, on the kernel stack.
#[no_mangle]
extern "C" fn kmain(magic: u32, mbi: u32) -> ! {
    serial::init();
    klog!("WATOS booting (multiboot magic {magic:#x}, info at {mbi:#x})");
    serial::exit_qemu(true)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    klog!("KERNEL PANIC: {info}");
    serial::exit_qemu(false)
}
