//! Turning the boot loader's memory map into free physical memory, and the frame pool over it.
//!
//! Design: a frame is free if it lies wholly inside a region the firmware calls available, is not in any
//! reserved range (the kernel image, the boot information, the initrd), is above the first MiB (BIOS
//! data, the boot trampoline) and is below `limit` (the end of the kernel's direct map). `free_ranges`
//! computes those as page-aligned ranges without touching the memory. `FramePool` hands frames out by
//! bumping through the ranges and keeps returned frames on an intrusive stack (each free frame holds
//! the address of the next), so boot costs O(ranges), not O(frames), and alloc/free are O(1).

use crate::abi::PAGE;
use crate::paging::PhysMem;
use alloc::vec::Vec;

const LOW_MEMORY_END: u64 = 0x10_0000;

/// Page-aligned, sorted, non-overlapping `(start, end)` ranges of free memory. `available` are
/// (start, length) of usable RAM; `reserved` are (start, end) half-open ranges to keep out.
pub fn free_ranges(
    available: impl Iterator<Item = (u64, u64)>,
    reserved: &[(u64, u64)],
    limit: u64,
) -> Vec<(u64, u64)> {
    let round_up = |a: u64| a.checked_next_multiple_of(PAGE);
    let round_down = |a: u64| a - a % PAGE;
    let mut reserved: Vec<(u64, u64)> = reserved.to_vec();
    reserved.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, len) in available {
        let Some(mut lo) = round_up(start.max(LOW_MEMORY_END)) else { continue };
        let hi = round_down(start.saturating_add(len).min(limit));
        for &(rs, re) in &reserved {
            if lo >= hi {
                break;
            }
            if re <= lo || rs >= hi {
                continue;
            }
            if round_down(rs) > lo {
                out.push((lo, round_down(rs)));
            }
            lo = round_up(re).unwrap_or(u64::MAX).max(lo);
        }
        if lo < hi {
            out.push((lo, hi));
        }
    }
    // Firmware maps may list regions out of order or overlapping: normalize.
    out.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(out.len());
    for (s, e) in out {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Physical frames: never-used ones come from the ranges in order; freed ones from a stack.
pub struct FramePool {
    ranges: Vec<(u64, u64)>,
    /// Index of the range being bumped through, and the next frame in it.
    range: usize,
    cursor: u64,
    /// Top of the stack of freed frames (0 = empty: frame 0 is never handed out).
    stack: u64,
    free: usize,
}

impl FramePool {
    pub fn new(ranges: Vec<(u64, u64)>) -> Self {
        let free = ranges.iter().map(|(s, e)| ((e - s) / PAGE) as usize).sum();
        let cursor = ranges.first().map_or(0, |r| r.0);
        FramePool { ranges, range: 0, cursor, stack: 0, free }
    }

    pub fn free_count(&self) -> usize {
        self.free
    }

    pub fn alloc(&mut self, mem: &impl PhysMem) -> Option<u64> {
        if self.stack != 0 {
            let frame = self.stack;
            self.stack = mem.read_u64(frame);
            self.free -= 1;
            return Some(frame);
        }
        while let Some(&(_, end)) = self.ranges.get(self.range) {
            if self.cursor + PAGE <= end {
                let frame = self.cursor;
                self.cursor += PAGE;
                self.free -= 1;
                return Some(frame);
            }
            self.range += 1;
            self.cursor = self.ranges.get(self.range).map_or(0, |r| r.0);
        }
        None
    }

    /// `n` physically contiguous frames (for DMA), taken from the never-used ranges only; returns
    /// the first. Whatever is skipped at the end of a range too short goes onto the free stack.
    pub fn alloc_contiguous(&mut self, mem: &mut impl PhysMem, n: u64) -> Option<u64> {
        if n == 0 {
            return None;
        }
        let bytes = n.checked_mul(PAGE)?;
        while let Some(&(_, end)) = self.ranges.get(self.range) {
            if self.cursor.checked_add(bytes).is_some_and(|e| e <= end) {
                let first = self.cursor;
                self.cursor += bytes;
                self.free -= n as usize;
                return Some(first);
            }
            if !self.ranges[self.range + 1..].iter().any(|&(s, e)| e - s >= bytes) {
                return None;
            }
            // Too short: keep its tail usable as single frames, move on.
            while self.cursor + PAGE <= end {
                let frame = self.cursor;
                self.cursor += PAGE;
                self.free -= 1;
                self.free(mem, frame);
            }
            self.range += 1;
            self.cursor = self.ranges.get(self.range).map_or(0, |r| r.0);
        }
        None
    }

    pub fn free(&mut self, mem: &mut impl PhysMem, frame: u64) {
        mem.write_u64(frame, self.stack);
        self.stack = frame;
        self.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimMem;

    fn frames(avail: &[(u64, u64)], reserved: &[(u64, u64)], limit: u64) -> Vec<u64> {
        free_ranges(avail.iter().copied(), reserved, limit)
            .iter()
            .flat_map(|&(s, e)| (s..e).step_by(PAGE as usize))
            .collect()
    }

    #[test]
    fn low_memory_and_partial_frames_are_skipped() {
        let v = frames(&[(0, 0x9F000), (0x100_000, 0x3800)], &[], u64::MAX);
        assert_eq!(v, [0x100_000, 0x101_000, 0x102_000]);
        let v = frames(&[(0x100_800, 0x2000)], &[], u64::MAX);
        assert_eq!(v, [0x101_000]);
    }

    #[test]
    fn reserved_ranges_and_limit_are_respected() {
        let v = frames(&[(0x100_000, 0x10_000)], &[(0x10E_FFF, 0x10F_001), (0x101_000, 0x103_800)], 0x10E_000);
        assert_eq!(
            v,
            [
                0x100_000, 0x104_000, 0x105_000, 0x106_000, 0x107_000, 0x108_000, 0x109_000, 0x10A_000, 0x10B_000,
                0x10C_000, 0x10D_000
            ]
        );
        let v = frames(&[(0x100_000, 0x4000)], &[(0x10_2100, 0x10_2200)], u64::MAX);
        assert_eq!(v, [0x100_000, 0x101_000, 0x103_000]);
    }

    #[test]
    fn overlapping_and_unsorted_regions_are_merged() {
        let r = free_ranges([(0x200_000, 0x1000), (0x100_000, 0x101_000)].into_iter(), &[], u64::MAX);
        assert_eq!(r, [(0x100_000, 0x201_000)]);
    }

    #[test]
    fn huge_lengths_do_not_overflow() {
        assert!(frames(&[(u64::MAX - 0x1000, u64::MAX)], &[], u64::MAX).is_empty());
        assert!(frames(&[(0x100_000, 0x2000)], &[(0x100_000, u64::MAX)], u64::MAX).is_empty());
    }

    #[test]
    fn contiguous_allocations_skip_short_ranges_without_losing_frames() {
        let (mut mem, _, _) = SimMem::with_kernel();
        let mut pool = FramePool::new(std::vec![(0x10_000, 0x12_000), (0x20_000, 0x24_000)]);
        assert_eq!(pool.alloc_contiguous(&mut mem, 3), Some(0x20_000), "first range too short");
        assert_eq!(pool.free_count(), 3, "the skipped frames are still free");
        assert_eq!(pool.alloc_contiguous(&mut mem, 2), None, "only one contiguous frame left in the ranges");
        assert_eq!(pool.free_count(), 3);
        let mut got: Vec<u64> = (0..3).map(|_| pool.alloc(&mem).unwrap()).collect();
        got.sort();
        assert_eq!(got, [0x10_000, 0x11_000, 0x23_000]);
        assert_eq!(pool.alloc_contiguous(&mut mem, 0), None);
        assert_eq!(pool.alloc_contiguous(&mut mem, u64::MAX), None);
    }

    #[test]
    fn pool_hands_out_each_frame_once_and_reuses_freed_ones() {
        let (mut mem, _, _) = SimMem::with_kernel();
        let mut pool = FramePool::new(std::vec![(0x10_000, 0x12_000), (0x20_000, 0x21_000)]);
        assert_eq!(pool.free_count(), 3);
        let got: Vec<u64> = (0..3).map(|_| pool.alloc(&mem).unwrap()).collect();
        assert_eq!(got, [0x10_000, 0x11_000, 0x20_000]);
        assert_eq!(pool.alloc(&mem), None);
        pool.free(&mut mem, 0x11_000);
        pool.free(&mut mem, 0x10_000);
        assert_eq!(pool.free_count(), 2);
        assert_eq!(pool.alloc(&mem), Some(0x10_000));
        assert_eq!(pool.alloc(&mem), Some(0x11_000));
        assert_eq!(pool.alloc(&mem), None);
        assert_eq!(pool.free_count(), 0);
    }
}
