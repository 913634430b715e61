//! A small segregated-fit heap used by both the kernel (over a fixed region) and libwatos (over memory
//! it maps with `map_anon`).
//!
//! Design: every request is rounded up to a power-of-two class from 16 bytes to 1 MiB; each class has
//! an intrusive singly linked free list (the next pointer lives in the free block), so alloc and free
//! are O(1). New blocks are carved from a bump region aligned to min(class, 4 KiB), which satisfies
//! every alignment up to 4 KiB. Blocks are never split or merged: simple, predictable, and good enough
//! for a kernel and small programs whose allocations come in few sizes. When the bump region runs out
//! the heap asks its `Grow` source for more (libwatos maps pages; the kernel has none and fails).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

const MIN_SHIFT: u32 = 4;
const MAX_SHIFT: u32 = 20;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
const MAX_ALIGN: usize = 4096;

/// Where a heap gets more memory: returns (start, len) of a fresh region of at least `min` bytes.
pub trait Grow {
    fn grow(&mut self, min: usize) -> Option<(usize, usize)>;
}

/// A source that never grows (the kernel's fixed heap).
pub struct NoGrow;

impl Grow for NoGrow {
    fn grow(&mut self, _min: usize) -> Option<(usize, usize)> {
        None
    }
}

/// The heap state. Not thread-safe by itself; wrap it in `LockedHeap`.
pub struct Heap<G: Grow> {
    free: [usize; CLASSES],
    bump: usize,
    end: usize,
    grow: G,
    /// Bytes currently handed out (by class size), for statistics and leak checks.
    pub in_use: usize,
}

fn class_of(layout: &Layout) -> Option<usize> {
    if layout.align() > MAX_ALIGN {
        return None;
    }
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT).checked_next_power_of_two()?;
    let shift = size.trailing_zeros();
    (shift <= MAX_SHIFT).then(|| (shift - MIN_SHIFT) as usize)
}

impl<G: Grow> Heap<G> {
    /// An empty heap; memory comes from `add_region` or `grow`.
    pub const fn new(grow: G) -> Self {
        Heap { free: [0; CLASSES], bump: 0, end: 0, grow, in_use: 0 }
    }

    /// Hands the heap a region to carve blocks from.
    ///
    /// # Safety
    /// `start..start+len` must be valid, writable memory owned by this heap from now on.
    pub unsafe fn add_region(&mut self, start: usize, len: usize) {
        self.bump = start;
        self.end = start + len;
    }

    /// Returns a block for `layout`, or null.
    pub fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(&layout) else { return null_mut() };
        let size = 1usize << (class as u32 + MIN_SHIFT);
        let head = self.free[class];
        if head != 0 {
            // Safety: `head` is a block this heap carved earlier and that was freed to this class;
            // its first word holds the next free block (written by `dealloc`).
            self.free[class] = unsafe { *(head as *const usize) };
            self.in_use += size;
            return head as *mut u8;
        }
        let align = size.min(MAX_ALIGN);
        let mut start = self.bump.next_multiple_of(align);
        if start.checked_add(size).is_none_or(|e| e > self.end) {
            let Some((region, len)) = self.grow.grow(size + align) else { return null_mut() };
            if region != self.end {
                self.bump = region;
            }
            self.end = region + len;
            start = self.bump.next_multiple_of(align);
            if start + size > self.end {
                return null_mut();
            }
        }
        self.bump = start + size;
        self.in_use += size;
        start as *mut u8
    }

    /// Returns `ptr` (from `alloc` with the same `layout`) to its class's free list.
    ///
    /// # Safety
    /// `ptr` must come from `self.alloc(layout)` and not be freed twice.
    pub unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(&layout) else { return };
        // Safety: per the contract the block is ours, at least 16 bytes and suitably aligned.
        unsafe { *(ptr as *mut usize) = self.free[class] };
        self.free[class] = ptr as usize;
        self.in_use -= 1usize << (class as u32 + MIN_SHIFT);
    }
}

/// A `GlobalAlloc` over a `Heap`, locked with a spin lock (the kernel and user programs are
/// single-threaded, so the lock is never contended; it makes the static sound).
pub struct LockedHeap<G: Grow>(pub spin::Mutex<Heap<G>>);

impl<G: Grow> LockedHeap<G> {
    pub const fn new(grow: G) -> Self {
        LockedHeap(spin::Mutex::new(Heap::new(grow)))
    }
}

// Safety: `alloc` returns blocks at least `layout.size()` long, aligned to `layout.align()`, never
// handed out twice until freed; all state is behind the mutex.
unsafe impl<G: Grow> GlobalAlloc for LockedHeap<G> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: forwarded contract of GlobalAlloc::dealloc.
        unsafe { self.0.lock().dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Grows from a leaked host buffer in fixed pieces, contiguous while it lasts.
    struct HostGrow {
        next: usize,
        end: usize,
        calls: usize,
    }

    impl Grow for HostGrow {
        fn grow(&mut self, min: usize) -> Option<(usize, usize)> {
            let len = min.next_multiple_of(64 * 1024);
            if self.next + len > self.end {
                return None;
            }
            self.calls += 1;
            let r = (self.next, len);
            self.next += len;
            Some(r)
        }
    }

    fn host_heap(bytes: usize) -> Heap<HostGrow> {
        let buf: &'static mut [u8] = std::vec![0u8; bytes + 4096].leak();
        let start = (buf.as_mut_ptr() as usize).next_multiple_of(4096);
        Heap::new(HostGrow { next: start, end: start + bytes, calls: 0 })
    }

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        let mut h = host_heap(4 << 20);
        let mut blocks = Vec::new();
        for (size, align) in [(1, 1), (16, 8), (24, 8), (100, 64), (4096, 4096), (5000, 8), (3, 2)] {
            let l = Layout::from_size_align(size, align).unwrap();
            let p = h.alloc(l);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            // Safety: the block is at least `size` bytes.
            unsafe { core::ptr::write_bytes(p, 0xAB, size) };
            blocks.push((p as usize, size, l));
        }
        for (i, a) in blocks.iter().enumerate() {
            for b in &blocks[i + 1..] {
                assert!(a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0, "overlap");
            }
        }
        let (p, _, l) = blocks[3];
        // Safety: p came from alloc(l).
        unsafe { h.dealloc(p as *mut u8, l) };
        assert_eq!(h.alloc(l) as usize, p);
    }

    #[test]
    fn in_use_returns_to_zero_after_freeing_everything() {
        let mut h = host_heap(1 << 20);
        let l = Layout::from_size_align(200, 8).unwrap();
        let ptrs: Vec<*mut u8> = (0..100).map(|_| h.alloc(l)).collect();
        assert_eq!(h.in_use, 100 * 256);
        for p in ptrs {
            // Safety: each p came from alloc(l).
            unsafe { h.dealloc(p, l) };
        }
        assert_eq!(h.in_use, 0);
    }

    #[test]
    fn grows_on_demand_and_fails_cleanly_when_exhausted() {
        let mut h = host_heap(256 * 1024);
        let l = Layout::from_size_align(40_000, 8).unwrap();
        let mut n = 0;
        while !h.alloc(l).is_null() {
            n += 1;
        }
        assert!(n >= 3, "only {n} blocks");
        assert!(h.grow.calls >= 2);
        assert!(h.alloc(Layout::from_size_align(8192, 8192).unwrap()).is_null(), "align > 4 KiB refused");
        assert!(h.alloc(Layout::from_size_align(2 << 20, 8).unwrap()).is_null(), "over 1 MiB refused");
    }

    #[test]
    fn fixed_region_heap_without_growth() {
        let buf: &'static mut [u8] = std::vec![0u8; 8192].leak();
        let mut h = Heap::new(NoGrow);
        // Safety: the leaked buffer is ours forever.
        unsafe { h.add_region(buf.as_mut_ptr() as usize, buf.len()) };
        let l = Layout::from_size_align(1000, 8).unwrap();
        let mut n = 0;
        while !h.alloc(l).is_null() {
            n += 1;
        }
        assert!((6..=8).contains(&n));
    }
}
