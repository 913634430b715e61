//! Four-level x86-64 page tables, written against two small traits so the same code runs in the kernel
//! (over the direct map of physical memory) and in host tests (over a simulated memory).
//!
//! Design: an address space is just the physical address of its PML4. The upper 256 PML4 entries are
//! copied from the kernel's PML4 when the space is made, so every process shares the kernel half (the
//! kernel never adds PML4-level entries after boot, so the copies never go stale). The lower 256 entries
//! are private: every table and every leaf frame under them belongs to the space and is returned to the
//! frame allocator by `free_user`. User leaves are never huge pages; the walker still understands huge
//! pages so that `translate` is correct on any table the CPU would accept.

use crate::abi::{SysError, PAGE, USER_END, USER_MIN};

/// Page-table entry bits used here.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const HUGE: u64 = 1 << 7;
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// Physical-address bits of an entry (bits 12..52).
    pub const ADDR: u64 = 0x000F_FFFF_FFFF_F000;
}

/// Access to physical memory by physical address. Every access stays within one 4 KiB frame.
pub trait PhysMem {
    fn read_u64(&self, pa: u64) -> u64;
    fn write_u64(&mut self, pa: u64, value: u64);
    fn read(&self, pa: u64, out: &mut [u8]);
    fn write(&mut self, pa: u64, data: &[u8]);
    fn zero_frame(&mut self, pa: u64);
    /// Copies `n` bytes from `from` to `to` (each range within one frame; they may be the same
    /// frame and overlap). The default goes through a stack bounce; a memory the kernel can address
    /// directly overrides it with one copy.
    fn copy(&mut self, from: u64, to: u64, n: usize) {
        let mut buf = [0u8; crate::abi::PAGE as usize];
        self.read(from, &mut buf[..n]);
        self.write(to, &buf[..n]);
    }
}

/// A source of 4 KiB physical frames.
pub trait FrameAlloc {
    fn alloc(&mut self) -> Option<u64>;
    fn free(&mut self, pa: u64);
    /// Frames still available (for leak checks and memory-pressure decisions).
    fn free_count(&self) -> usize;
    /// `n` physically contiguous frames (for device DMA), or `None` if the allocator cannot.
    fn alloc_contiguous(&mut self, _n: u64) -> Option<u64> {
        None
    }
}

/// Permissions of a user mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    pub write: bool,
    pub exec: bool,
}

/// What `translate` found: the physical address of the byte and the effective permissions (an
/// access is allowed only if every level allows it, as the CPU checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    pub user: bool,
    pub writable: bool,
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Not page aligned, or outside `USER_MIN..USER_END`.
    BadAddress,
    /// The page is already mapped.
    AlreadyMapped,
    /// No frame for an intermediate table.
    OutOfFrames,
}

impl From<MapError> for SysError {
    fn from(e: MapError) -> SysError {
        match e {
            MapError::OutOfFrames => SysError::OutOfMemory,
            MapError::BadAddress | MapError::AlreadyMapped => SysError::InvalidArgument,
        }
    }
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & 0x1FF
}

/// One process's address space, named by its PML4's physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressSpace {
    pub root: u64,
}

impl AddressSpace {
    /// A fresh space: an empty user half and the kernel half shared with `kernel_root`.
    pub fn new(mem: &mut impl PhysMem, frames: &mut impl FrameAlloc, kernel_root: u64) -> Option<Self> {
        let root = frames.alloc()?;
        mem.zero_frame(root);
        for i in 256..512 {
            let entry = mem.read_u64(kernel_root + i * 8);
            mem.write_u64(root + i * 8, entry);
        }
        Some(AddressSpace { root })
    }

    /// Maps the user page at `va` to frame `pa`. The frame becomes owned by this space.
    pub fn map(
        &self,
        mem: &mut impl PhysMem,
        frames: &mut impl FrameAlloc,
        va: u64,
        pa: u64,
        perm: Perm,
    ) -> Result<(), MapError> {
        if !va.is_multiple_of(PAGE) || !pa.is_multiple_of(PAGE) || !(USER_MIN..USER_END).contains(&va) {
            return Err(MapError::BadAddress);
        }
        let mut table = self.root;
        for level in (1..4).rev() {
            let slot = table + index(va, level) * 8;
            let entry = mem.read_u64(slot);
            table = if entry & pte::PRESENT != 0 {
                entry & pte::ADDR
            } else {
                let new = frames.alloc().ok_or(MapError::OutOfFrames)?;
                mem.zero_frame(new);
                // Intermediate levels allow everything; the leaf decides.
                mem.write_u64(slot, new | pte::PRESENT | pte::WRITABLE | pte::USER);
                new
            };
        }
        let slot = table + index(va, 0) * 8;
        if mem.read_u64(slot) & pte::PRESENT != 0 {
            return Err(MapError::AlreadyMapped);
        }
        let mut leaf = pa | pte::PRESENT | pte::USER;
        if perm.write {
            leaf |= pte::WRITABLE;
        }
        if !perm.exec {
            leaf |= pte::NO_EXECUTE;
        }
        mem.write_u64(slot, leaf);
        Ok(())
    }

    /// Walks the tables for `va` as the MMU would; `None` if any level is not present.
    pub fn translate(&self, mem: &impl PhysMem, va: u64) -> Option<Translation> {
        let mut table = self.root;
        let (mut user, mut writable) = (true, true);
        for level in (0..4).rev() {
            let entry = mem.read_u64(table + index(va, level) * 8);
            if entry & pte::PRESENT == 0 {
                return None;
            }
            user &= entry & pte::USER != 0;
            writable &= entry & pte::WRITABLE != 0;
            let span = 1u64 << (12 + 9 * level);
            if level == 0 || (level < 3 && entry & pte::HUGE != 0) {
                let base = entry & pte::ADDR & !(span - 1);
                return Some(Translation { pa: base + (va & (span - 1)), user, writable });
            }
            table = entry & pte::ADDR;
        }
        None
    }

    /// Returns every frame of the user half (leaves and tables) and the PML4 itself to `frames`.
    /// Returns how many frames were freed.
    pub fn free_user(self, mem: &mut impl PhysMem, frames: &mut impl FrameAlloc) -> usize {
        fn free_table(mem: &mut impl PhysMem, frames: &mut impl FrameAlloc, table: u64, level: u32) -> usize {
            let mut freed = 0;
            for i in 0..512 {
                let entry = mem.read_u64(table + i * 8);
                if entry & pte::PRESENT == 0 {
                    continue;
                }
                let child = entry & pte::ADDR;
                // User leaves are always 4 KiB pages; a huge entry here would be a kernel bug, and
                // freeing its first frame only is the least harmful reading of it.
                if level > 0 && entry & pte::HUGE == 0 {
                    freed += free_table(mem, frames, child, level - 1);
                }
                frames.free(child);
                freed += 1;
                mem.write_u64(table + i * 8, 0);
            }
            freed
        }
        let mut freed = 0;
        for i in 0..256 {
            let entry = mem.read_u64(self.root + i * 8);
            if entry & pte::PRESENT != 0 {
                let pdpt = entry & pte::ADDR;
                freed += free_table(mem, frames, pdpt, 2) + 1;
                frames.free(pdpt);
                mem.write_u64(self.root + i * 8, 0);
            }
        }
        frames.free(self.root);
        freed + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimMem;

    const RW: Perm = Perm { write: true, exec: false };

    #[test]
    fn map_then_translate_keeps_offset_and_permissions() {
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        let frame = frames.alloc().unwrap();
        space.map(&mut mem, &mut frames, 0x40_0000, frame, RW).unwrap();
        let t = space.translate(&mem, 0x40_0123).unwrap();
        assert_eq!(t, Translation { pa: frame + 0x123, user: true, writable: true });
        assert_eq!(space.translate(&mem, 0x40_1000), None);
        let ro = frames.alloc().unwrap();
        space.map(&mut mem, &mut frames, 0x40_1000, ro, Perm { write: false, exec: true }).unwrap();
        assert!(!space.translate(&mem, 0x40_1000).unwrap().writable);
    }

    #[test]
    fn kernel_half_is_shared_but_not_user() {
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        let t = space.translate(&mem, crate::abi::KERNEL_HALF + 0x5000).unwrap();
        assert!(!t.user);
    }

    #[test]
    fn map_rejects_bad_addresses_and_double_maps() {
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        let f = frames.alloc().unwrap();
        assert_eq!(space.map(&mut mem, &mut frames, 0, f, RW), Err(MapError::BadAddress));
        assert_eq!(space.map(&mut mem, &mut frames, 0x40_0001, f, RW), Err(MapError::BadAddress));
        assert_eq!(space.map(&mut mem, &mut frames, USER_END, f, RW), Err(MapError::BadAddress));
        space.map(&mut mem, &mut frames, 0x40_0000, f, RW).unwrap();
        assert_eq!(space.map(&mut mem, &mut frames, 0x40_0000, f, RW), Err(MapError::AlreadyMapped));
    }

    #[test]
    fn free_user_returns_every_frame() {
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let before = frames.free_count();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        // Spread pages so several tables at every level are needed.
        for va in [0x40_0000u64, 0x40_1000, 0x8000_0000, 0x1000_0000_0000, USER_END - PAGE] {
            let f = frames.alloc().unwrap();
            space.map(&mut mem, &mut frames, va, f, RW).unwrap();
        }
        assert!(frames.free_count() < before);
        let freed = space.free_user(&mut mem, &mut frames);
        assert_eq!(frames.free_count(), before);
        // 5 leaves, the root, 3 PDPTs, 4 PDs and 4 PTs.
        assert_eq!(freed, 5 + 1 + 3 + 4 + 4);
    }

    #[test]
    fn out_of_frames_is_an_error() {
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        let f = frames.alloc().unwrap();
        while frames.alloc().is_some() {}
        assert_eq!(space.map(&mut mem, &mut frames, 0x40_0000, f, RW), Err(MapError::OutOfFrames));
    }
}
