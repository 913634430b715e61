//! The bare-metal runtime (feature `rt`): entry, heap, panic.
//!
//! Design: the kernel starts a process at `_start` with a 16-byte aligned stack and nothing else;
//! `_start` calls the program's `main` (declared with `entry!`) and exits with its result. The heap is
//! the kernel-core size-class heap, grown 256 KiB at a time through `map_anon`, so allocation never
//! needs more than one syscall per growth.

use crate::sys;
use core::arch::global_asm;
use kernel_core::heap::{Grow, LockedHeap};

global_asm!(
    ".global _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym start_rust,
);

extern "Rust" {
    fn __watos_main() -> i64;
}

extern "C" fn start_rust() -> ! {
    // Safety: `__watos_main` is defined by the program through `entry!`, with this signature.
    let code = unsafe { __watos_main() };
    sys::exit(code)
}

/// Heap growth through the kernel.
pub struct AnonGrow;

impl Grow for AnonGrow {
    fn grow(&mut self, min: usize) -> Option<(usize, usize)> {
        let len = min.max(256 * 1024).next_multiple_of(4096);
        sys::map_anon(len, sys::MAP_WRITE).ok().map(|p| (p as usize, len))
    }
}

#[global_allocator]
static HEAP: LockedHeap<AnonGrow> = LockedHeap::new(AnonGrow);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let name = sys::task_info(sys::SELF_ID).map(|i| i.name).unwrap_or_default();
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = core::str::from_utf8(&name[..end]).unwrap_or("?");
    // One line, so it cannot be interleaved with another process's output.
    match info.location() {
        Some(at) => crate::println!("{name}: panicked: {} (at {}:{})", info.message(), at.file(), at.line()),
        None => crate::println!("{name}: panicked: {}", info.message()),
    }
    sys::exit(101)
}
