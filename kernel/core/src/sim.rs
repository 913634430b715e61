//! Test doubles: a simulated physical memory and frame allocator, so paging, pointer validation and
//! ELF loading are tested on the host against real-format page tables; and a simulated PCI
//! configuration space behind ports 0xCF8/0xCFC. Frame frees and configuration writes are stamped
//! from one per-thread sequence, so a test can tell which happened first.

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
    /// (sequence stamp, frame) of every free, in order.
    pub freed: Vec<(u64, u64)>,
}

std::thread_local! {
    static SEQ: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// The next stamp of this thread's event sequence.
pub fn next_seq() -> u64 {
    SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    })
}

impl FrameAlloc for SimFrames {
    fn alloc(&mut self) -> Option<u64> {
        self.free.pop()
    }
    fn free(&mut self, pa: u64) {
        assert!(!self.free.contains(&pa), "double free of frame {pa:#x}");
        self.free.push(pa);
        self.freed.push((next_seq(), pa));
    }
    fn free_count(&self) -> usize {
        self.free.len()
    }
    fn alloc_contiguous(&mut self, n: u64) -> Option<u64> {
        let mut sorted = self.free.clone();
        sorted.sort_unstable();
        let n = n as usize;
        let start =
            (0..sorted.len().checked_sub(n - 1)?).find(|&i| sorted[i + n - 1] == sorted[i] + (n as u64 - 1) * PAGE)?;
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
        let mut frames = SimFrames { free: (1..FRAMES).rev().map(|f| f * PAGE).collect(), freed: Vec::new() };
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

/// PCI configuration mechanism #1 as QEMU implements it: only a dword access to 0xCF8 reaches the
/// address latch (kept whole, low bits included); 0xCFC + n reaches register `(latch & 0xFF) | n`
/// (QEMU ORs the port's low bits into the latch's, so a latch with low bits set moves every data
/// access) when the latch's enable bit is set; an absent function reads all ones and ignores
/// writes. Vendor, device, class and header type are read-only, the status register is
/// write-1-to-clear, an I/O BAR added with `io_bar` keeps its size's low bits (sizing reads back
/// the mask), the rest is plain storage.
#[derive(Default)]
pub struct SimPci {
    pub latch: u32,
    pub functions: std::collections::BTreeMap<u16, [u8; 256]>,
    /// (sequence stamp, function, new command word) of every write that changed a command register.
    pub command_writes: Vec<(u64, u16, u16)>,
    /// Sizes of I/O BARs: (function, register) -> bytes.
    pub bar_sizes: std::collections::BTreeMap<(u16, usize), u32>,
}

impl SimPci {
    /// Adds function `f` (bus << 8 | device << 3 | function) with this id, class code (base class
    /// in the top byte) and command register; `multi` sets the header's multi-function bit.
    pub fn add(&mut self, f: u16, id: u32, class: u32, command: u16, multi: bool) {
        let mut c = [0u8; 256];
        c[0..4].copy_from_slice(&id.to_le_bytes());
        c[4..6].copy_from_slice(&command.to_le_bytes());
        c[6] = 0x10; // status: capabilities list (a bit writes of zeros must leave alone)
        c[8..12].copy_from_slice(&class.to_le_bytes());
        c[14] = if multi { 0x80 } else { 0 };
        self.functions.insert(f, c);
    }

    /// Adds a PCI-to-PCI bridge (header type 1) at `f` leading to bus `secondary`.
    pub fn add_bridge(&mut self, f: u16, secondary: u8) {
        self.add(f, 0x244E_8086, 0x0604_0000, 0x0007, false);
        if let Some(c) = self.functions.get_mut(&f) {
            c[14] = 1;
            c[0x18] = (f >> 8) as u8;
            c[0x19] = secondary;
            c[0x1A] = secondary;
        }
    }

    /// Gives function `f` an I/O BAR at register `reg` (0x10..0x24) of `size` bytes at `base`.
    pub fn io_bar(&mut self, f: u16, reg: usize, base: u16, size: u32) {
        if let Some(c) = self.functions.get_mut(&f) {
            c[reg..reg + 4].copy_from_slice(&(base as u32 | 1).to_le_bytes());
        }
        self.bar_sizes.insert((f, reg), size);
    }

    /// The BAR at `reg` of `f`, as the device decodes it.
    pub fn bar(&self, f: u16, reg: usize) -> u32 {
        self.functions.get(&f).map_or(0, |c| u32::from_le_bytes(c[reg..reg + 4].try_into().unwrap()))
    }

    pub fn command(&self, f: u16) -> u16 {
        self.functions.get(&f).map_or(0xFFFF, |c| u16::from_le_bytes([c[4], c[5]]))
    }

    pub fn status(&self, f: u16) -> u8 {
        self.functions.get(&f).map_or(0xFF, |c| c[6])
    }

    pub fn handles(port: u16) -> bool {
        (0xCF8..=0xCFF).contains(&port)
    }

    fn selected(&self, port: u16) -> Option<(u16, usize)> {
        (port >= 0xCFC && self.latch & 1 << 31 != 0)
            .then(|| ((self.latch >> 8) as u16, ((self.latch & 0xFF) | (port - 0xCFC) as u32) as usize))
    }

    pub fn port_in(&mut self, port: u16, width: u8) -> u32 {
        if port == 0xCF8 && width == 4 {
            return self.latch;
        }
        let Some((f, reg)) = self.selected(port) else { return u32::MAX };
        let Some(c) = self.functions.get(&f) else { return u32::MAX };
        // Past the end of configuration space reads as ones (QEMU cuts the access there).
        (0..width as usize).map(|i| (*c.get(reg + i).unwrap_or(&0xFF) as u32) << (8 * i)).sum()
    }

    pub fn port_out(&mut self, port: u16, width: u8, value: u32) {
        if port == 0xCF8 {
            if width == 4 {
                self.latch = value;
            }
            return;
        }
        let Some((f, reg)) = self.selected(port) else { return };
        let Some(c) = self.functions.get_mut(&f) else { return };
        let before = u16::from_le_bytes([c[4], c[5]]);
        for i in (0..width as usize).filter(|i| reg + i < 256) {
            let byte = (value >> (8 * i)) as u8;
            match reg + i {
                0..=3 | 8..=15 => {}
                6 | 7 => c[reg + i] &= !byte,
                r => c[r] = byte,
            }
        }
        if let Some(&size) = self.bar_sizes.get(&(f, reg & !3)) {
            let r = reg & !3;
            let v = u32::from_le_bytes(c[r..r + 4].try_into().unwrap());
            c[r..r + 4].copy_from_slice(&((v & !(size - 1) & 0xFFFF) | 1).to_le_bytes());
        }
        let after = u16::from_le_bytes([c[4], c[5]]);
        if after != before {
            self.command_writes.push((next_seq(), f, after));
        }
    }
}
