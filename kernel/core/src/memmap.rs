//! Turning the boot loader's memory map into the set of free frames.
//!
//! Design: a frame is free if it lies wholly inside a region the firmware calls available, is not in any
//! reserved range (the kernel image, the boot information, the initrd), is above the first MiB (BIOS
//! data, the boot trampoline) and is below `limit` (the end of the kernel's direct map). The result is
//! reported frame by frame to a callback so the kernel can build its free list before it has a heap.

use crate::abi::PAGE;

/// Calls `f` with the address of every free frame. `available` are (start, length) of usable RAM;
/// `reserved` are (start, end) half-open ranges that must not be handed out.
pub fn for_each_free_frame(
    available: impl Iterator<Item = (u64, u64)>,
    reserved: &[(u64, u64)],
    limit: u64,
    mut f: impl FnMut(u64),
) {
    let round_up = |a: u64| a.div_ceil(PAGE).checked_mul(PAGE);
    for (start, len) in available {
        let end = start.saturating_add(len).min(limit);
        let Some(mut frame) = round_up(start.max(0x100_000)) else { continue };
        while frame.checked_add(PAGE).is_some_and(|next| next <= end) {
            if let Some(&(_, r_end)) = reserved.iter().find(|&&(rs, re)| frame < re && rs < frame + PAGE) {
                // Skip straight past the reservation.
                match round_up(r_end) {
                    Some(next) => frame = next,
                    None => break,
                }
                continue;
            }
            f(frame);
            frame += PAGE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn frames(avail: &[(u64, u64)], reserved: &[(u64, u64)], limit: u64) -> Vec<u64> {
        let mut v = Vec::new();
        for_each_free_frame(avail.iter().copied(), reserved, limit, |f| v.push(f));
        v
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
        let v = frames(&[(0x100_000, 0x10_000)], &[(0x101_000, 0x103_800), (0x10E_FFF, 0x10F_001)], 0x10E_000);
        assert_eq!(v, [0x100_000, 0x104_000, 0x105_000, 0x106_000, 0x107_000, 0x108_000, 0x109_000, 0x10A_000, 0x10B_000, 0x10C_000, 0x10D_000]);
        let v = frames(&[(0x100_000, 0x4000)], &[(0x10_2100, 0x10_2200)], u64::MAX);
        assert_eq!(v, [0x100_000, 0x101_000, 0x103_000]);
    }

    #[test]
    fn huge_lengths_do_not_overflow() {
        let v = frames(&[(u64::MAX - 0x1000, u64::MAX)], &[], u64::MAX);
        assert!(v.is_empty());
        assert!(frames(&[(0x100_000, 0x2000)], &[(0x100_000, u64::MAX)], u64::MAX).is_empty());
    }
}
