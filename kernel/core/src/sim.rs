//! Test doubles: a simulated physical memory and frame allocator, so paging, pointer validation and
//! ELF loading are tested on the host against real-format page tables.

use crate::abi::{KERNEL_HALF, PAGE};
use crate::paging::{pte, FrameAlloc, PhysMem};
use std::vec::Vec;

/// `FRAMES` frames of simulated RAM starting at physical address 0.
pub struct SimMem {
    bytes: Vec<u8>,
}

/// A stack of free frames.
pub struct SimFrames {
    free: Vec<u64>,
}

impl FrameAlloc for SimFrames {
    fn alloc(&mut self) -> Option<u64> {
        self.free.pop()
    }
    fn free(&mut self, pa: u64) {
        assert!(!self.free.contains(&pa), "double free of frame {pa:#x}");
        self.free.push(pa);
    }
    fn free_count(&self) -> usize {
        self.free.len()
    }
    fn alloc_contiguous(&mut self, n: u64) -> Option<u64> {
        let mut sorted = self.free.clone();
        sorted.sort_unstable();
        let n = n as usize;
        let start = (0..sorted.len().checked_sub(n - 1)?).find(|&i| sorted[i + n - 1] == sorted[i] + (n as u64 - 1) * PAGE)?;
        let first = sorted[start];
        self.free.retain(|f| !(first..first + n as u64 * PAGE).contains(f));
        Some(first)
    }
}

const FRAMES: u64 = 1024;

impl SimMem {
    /// Memory, an allocator owning every frame but frame 0, and a kernel PML4 whose entry 256 maps
    /// the first GiB of the kernel half with one supervisor-only huge page (as the real kernel's
    /// direct map does with larger tables).
    pub fn with_kernel() -> (SimMem, SimFrames, u64) {
        let mut mem = SimMem { bytes: std::vec![0; (FRAMES * PAGE) as usize] };
        let mut frames = SimFrames { free: (1..FRAMES).rev().map(|f| f * PAGE).collect() };
        let root = frames.alloc().unwrap();
        let pdpt = frames.alloc().unwrap();
        mem.write_u64(root + 256 * 8, pdpt | pte::PRESENT | pte::WRITABLE);
        mem.write_u64(pdpt, pte::PRESENT | pte::WRITABLE | pte::HUGE);
        assert_eq!((KERNEL_HALF >> 39) & 0x1FF, 256);
        (mem, frames, root)
    }

    fn range(&self, pa: u64, len: usize) -> core::ops::Range<usize> {
        assert!(pa / PAGE == (pa + len.max(1) as u64 - 1) / PAGE, "access crosses a frame at {pa:#x}");
        pa as usize..pa as usize + len
    }
}

impl PhysMem for SimMem {
    fn read_u64(&self, pa: u64) -> u64 {
        let r = self.range(pa, 8);
        u64::from_le_bytes(self.bytes[r].try_into().unwrap())
    }
    fn write_u64(&mut self, pa: u64, value: u64) {
        let r = self.range(pa, 8);
        self.bytes[r].copy_from_slice(&value.to_le_bytes());
    }
    fn read(&self, pa: u64, out: &mut [u8]) {
        let r = self.range(pa, out.len());
        out.copy_from_slice(&self.bytes[r]);
    }
    fn write(&mut self, pa: u64, data: &[u8]) {
        let r = self.range(pa, data.len());
        self.bytes[r].copy_from_slice(data);
    }
    fn zero_frame(&mut self, pa: u64) {
        let r = self.range(pa, PAGE as usize);
        self.bytes[r].fill(0);
    }
}
