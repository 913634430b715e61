//! A split virtqueue laid out by the legacy rules, and its descriptor free list.
//!
//! Layout (legacy interface, one physically contiguous DMA region whose page number goes to the
//! QUEUE_PFN register): the descriptor table (16 bytes per entry: addr u64, len u32, flags u16,
//! next u16) at offset 0, the available ring right after it (flags u16, idx u16, ring[size] u16,
//! used_event u16), then, at the next 4096-byte boundary, the used ring (flags u16, idx u16,
//! ring[size] of {id u32, len u32}, avail_event u16). All fields are little-endian, which is x86's.
//!
//! Trust: the device may write garbage into shared memory, so nothing the driver relies on lives
//! there. The free list, each chain's length and which heads are in flight are kept in driver-private
//! vectors; a used-ring entry is believed only if its id is a head we published and have not yet
//! seen completed, and the used index may not run ahead of what we published.
//!
//! Memory ordering (the points the simulated device checks):
//! 1. descriptors and the avail ring slot are written before a Release fence, then `avail.idx` is
//!    bumped; the device must never see an index covering an unwritten entry;
//! 2. a SeqCst fence separates the `avail.idx` store from the notify port write (x86 port I/O is
//!    serialising anyway; the fence keeps the compiler from sinking the store past it);
//! 3. `used.idx` is read, then an Acquire fence, then the used entries it covers.

use crate::hal::{Dma, Hal, PAGE_SIZE};
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};
use protocol::{Error, Result};

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;

/// Sentinel in the private `next` array for "end of list".
const NONE: u16 = u16::MAX;

/// Byte offsets of the three parts of a legacy queue of `size` entries, and its total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub avail: usize,
    pub used: usize,
    pub total: usize,
}

impl Layout {
    pub fn legacy(size: u16) -> Layout {
        let size = size as usize;
        let avail = 16 * size;
        let avail_end = avail + 4 + 2 * size + 2;
        let used = align_up(avail_end, PAGE_SIZE);
        let used_end = used + 4 + 8 * size + 2;
        Layout { avail, used, total: align_up(used_end, PAGE_SIZE) }
    }
}

pub fn align_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// One buffer of a descriptor chain: physical address, length, and whether the device writes it.
#[derive(Debug, Clone, Copy)]
pub struct Seg {
    pub phys: u64,
    pub len: u32,
    pub device_writes: bool,
}

pub struct VirtQueue {
    mem: Dma,
    layout: Layout,
    size: u16,
    /// Private free list and chain links (never read back from device memory).
    next: Vec<u16>,
    free_head: u16,
    num_free: u16,
    /// Per head: descriptors in its chain (0 when the head is not in flight).
    chain_len: Vec<u16>,
    /// Our copy of `avail.idx` and how far we have consumed the used ring.
    avail_idx: u16,
    last_used: u16,
}

impl VirtQueue {
    /// Allocate and zero a queue of `size` entries (a power of two, as legacy index arithmetic needs).
    pub fn new<H: Hal + ?Sized>(hal: &mut H, size: u16) -> Result<VirtQueue> {
        if size == 0 || !size.is_power_of_two() || size == NONE {
            return Err(Error::NotSupported);
        }
        let layout = Layout::legacy(size);
        let mem = hal.dma_alloc(layout.total / PAGE_SIZE)?;
        if mem.len < layout.total || mem.phys % PAGE_SIZE as u64 != 0 {
            return Err(Error::InvalidArgument);
        }
        let mut next: Vec<u16> = (1..=size).collect();
        next[size as usize - 1] = NONE;
        Ok(VirtQueue {
            mem,
            layout,
            size,
            next,
            free_head: 0,
            num_free: size,
            chain_len: vec![0; size as usize],
            avail_idx: 0,
            last_used: 0,
        })
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// Page frame number for the legacy QUEUE_PFN register.
    pub fn pfn(&self) -> Result<u32> {
        u32::try_from(self.mem.phys / PAGE_SIZE as u64).map_err(|_| Error::NotSupported)
    }

    /// Publish a chain made of `segs`; returns its head, or `None` when too few descriptors are free.
    pub fn push(&mut self, segs: &[Seg]) -> Option<u16> {
        if segs.is_empty() || segs.len() > self.num_free as usize {
            return None;
        }
        let head = self.free_head;
        let mut idx = head;
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            let following = self.next[idx as usize];
            let d = 16 * idx as usize;
            self.mem.write::<u64>(d, seg.phys);
            self.mem.write::<u32>(d + 8, seg.len);
            let flags = if seg.device_writes { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
            self.mem.write::<u16>(d + 12, flags);
            self.mem.write::<u16>(d + 14, if last { 0 } else { following });
            if last {
                self.free_head = following;
            } else {
                idx = following;
            }
        }
        self.num_free -= segs.len() as u16;
        self.chain_len[head as usize] = segs.len() as u16;
        let slot = self.layout.avail + 4 + 2 * (self.avail_idx % self.size) as usize;
        self.mem.write::<u16>(slot, head);
        // Ordering point 1: descriptors and ring slot before the index that publishes them.
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem.write::<u16>(self.layout.avail + 2, self.avail_idx);
        // Ordering point 2: the index is visible before the caller's notify.
        fence(Ordering::SeqCst);
        Some(head)
    }

    /// True when the device has completed entries we have not consumed.
    pub fn has_used(&self) -> bool {
        self.mem.read::<u16>(self.layout.used + 2) != self.last_used
    }

    /// Take the next used entry: `(head, bytes written by the device)`. Returns `Ok(None)` when there
    /// is none, `Err(Malformed)` when the device broke the protocol (the entry is consumed).
    pub fn pop_used(&mut self) -> Result<Option<(u16, u32)>> {
        let used_idx = self.mem.read::<u16>(self.layout.used + 2);
        if used_idx == self.last_used {
            return Ok(None);
        }
        let outstanding = self.size - self.num_free;
        if used_idx.wrapping_sub(self.last_used) > outstanding {
            // The device claims more completions than there are chains in flight: consume nothing,
            // since we cannot tell which entries are real.
            return Err(Error::Malformed);
        }
        // Ordering point 3: the entries covered by the index are read after the index.
        fence(Ordering::Acquire);
        let e = self.layout.used + 4 + 8 * (self.last_used % self.size) as usize;
        let id = self.mem.read::<u32>(e);
        let len = self.mem.read::<u32>(e + 4);
        self.last_used = self.last_used.wrapping_add(1);
        if id >= self.size as u32 || self.chain_len[id as usize] == 0 {
            return Err(Error::Malformed);
        }
        self.free_chain(id as u16);
        Ok(Some((id as u16, len)))
    }

    fn free_chain(&mut self, head: u16) {
        let n = core::mem::replace(&mut self.chain_len[head as usize], 0);
        let mut tail = head;
        for _ in 1..n {
            tail = self.next[tail as usize];
        }
        self.next[tail as usize] = self.free_head;
        self.free_head = head;
        self.num_free += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_layout_of_qemu_default_queue() {
        // QEMU's virtio-blk queue has 256 entries: 4096 bytes of descriptors, 518 of avail ring, so
        // the used ring starts at 8192 and its 2054 bytes round the queue up to three pages.
        let l = Layout::legacy(256);
        assert_eq!(l, Layout { avail: 4096, used: 8192, total: 12288 });
        let small = Layout::legacy(8);
        assert_eq!(small, Layout { avail: 128, used: 4096, total: 8192 });
    }
}
