//! The bare-metal runtime (feature `rt`): entry, heap, panic.
//!
//! Design: the kernel starts a process at `_start` with a 16-byte aligned stack and nothing else;
//! `_start` calls the program's `main` (declared with `entry!`) and exits with its result. The heap is
//! the kernel-core size-class heap, grown 256 KiB at a time through `map_anon`, so allocation never
//! needs more than one syscall per growth. The size-class heap stops at 1 MiB; larger blocks (a
//! block cache's arena, big buffers) are whole `map_anon` regions of their own, kept on a short
//! free list when released because the kernel has no unmap yet.

use crate::sys;
use core::alloc::{GlobalAlloc, Layout};
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

/// Largest block the size-class heap serves (its top class).
const SMALL_MAX: usize = 1 << 20;
/// Released large regions kept for reuse; more than this are leaked (and freed with the process).
const LARGE_SLOTS: usize = 16;

/// The size-class heap for blocks up to 1 MiB, whole anonymous regions above.
struct Heap {
    small: LockedHeap<AnonGrow>,
    /// Released large regions as (address, length); 0 length = empty slot.
    large: spin::Mutex<[(usize, usize); LARGE_SLOTS]>,
}

fn large_len(layout: Layout) -> usize {
    layout.size().next_multiple_of(4096)
}

// Safety: small blocks come from `LockedHeap`, which upholds GlobalAlloc's contract; large blocks
// are fresh page-aligned `map_anon` regions (alignment up to 4096, like the small heap) or regions
// released earlier whose length covers the request, each handed to one owner at a time under the lock.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() <= SMALL_MAX || layout.align() > 4096 {
            // Safety: forwarded with the caller's promises.
            return unsafe { self.small.alloc(layout) };
        }
        let len = large_len(layout);
        {
            let mut free = self.large.lock();
            // Reuse a released region that fits without wasting more than half of it.
            if let Some(slot) = free.iter_mut().find(|(_, l)| *l >= len && *l / 2 < len) {
                let addr = slot.0;
                *slot = (0, 0);
                return addr as *mut u8;
            }
        }
        sys::map_anon(len, sys::MAP_WRITE).unwrap_or(core::ptr::null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() <= SMALL_MAX || layout.align() > 4096 {
            // Safety: forwarded with the caller's promises.
            return unsafe { self.small.dealloc(ptr, layout) };
        }
        let mut free = self.large.lock();
        if let Some(slot) = free.iter_mut().find(|(_, l)| *l == 0) {
            // A reused region may be longer than this layout says; remembering the layout's length
            // only under-reports it, which is safe.
            *slot = (ptr as usize, large_len(layout));
        }
    }
}

#[global_allocator]
static HEAP: Heap = Heap { small: LockedHeap::new(AnonGrow), large: spin::Mutex::new([(0, 0); LARGE_SLOTS]) };

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
