//! The hardware abstraction the driver is generic over.
//!
//! Design: the driver needs exactly three things from its environment, the same three the WATOS kernel
//! gives a `DRIVER` process: port I/O (`io_in`/`io_out`), DMA memory (`map_dma`: zeroed, physically
//! contiguous pages and their physical address) and a way to sleep until the device interrupts
//! (`irq_bind` notifications, re-armed with `irq_ack`). Every call returns a `protocol::Error` because
//! in WATOS each is a syscall that can be refused. On the host, `crate::sim` implements this trait with
//! a simulated PCI bus and device whose "physical" addresses index into test-owned memory.
//!
//! DMA memory is never freed by the driver: a WATOS process's DMA pages are freed with its address
//! space, and a host implementation frees them when the `Hal` itself is dropped. The driver owns its
//! `Hal`, so the memory outlives every pointer the driver keeps into it.

use core::ptr::NonNull;
use protocol::Result;

/// Page size of DMA allocations and the legacy virtqueue alignment.
pub const PAGE_SIZE: usize = 4096;

/// Width of a port access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    U8 = 1,
    U16 = 2,
    U32 = 4,
}

/// A DMA region: the driver's view (`virt`) and the device's (`phys`) of the same bytes.
#[derive(Debug, Clone, Copy)]
pub struct Dma {
    pub virt: NonNull<u8>,
    pub phys: u64,
    pub len: usize,
}

// Safety: a `Dma` is an address range owned by one driver; moving the driver (and with it the
// region's only user) to another thread is sound. It is deliberately not `Sync`.
unsafe impl Send for Dma {}

/// Port I/O, DMA memory and interrupts.
///
/// # Safety
/// `dma_alloc` must return memory that is valid for reads and writes of `len` bytes, zeroed,
/// page-aligned, physically contiguous at `phys`, used by nobody but the driver and its device, and
/// that stays mapped for as long as the `Hal` value lives. The driver dereferences it on that promise.
pub unsafe trait Hal {
    /// Read `width` bytes from `port`.
    fn io_in(&mut self, port: u16, width: Width) -> Result<u32>;

    /// Write the low `width` bytes of `value` to `port`.
    fn io_out(&mut self, port: u16, width: Width, value: u32) -> Result<()>;

    /// Allocate `pages` zeroed, physically contiguous pages.
    fn dma_alloc(&mut self, pages: usize) -> Result<Dma>;

    /// Sleep until the device's interrupt line fires (or, for a polling `Hal`, until it is worth
    /// looking at the used ring again). Returning early is harmless: the driver re-checks its ring.
    fn wait_interrupt(&mut self) -> Result<()>;

    /// Re-arm the interrupt line once the device has been serviced (WATOS `irq_ack`).
    fn ack_interrupt(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Convenience wrappers with fixed widths, so register code reads like the spec's table.
pub(crate) trait PortExt: Hal {
    fn in8(&mut self, port: u16) -> Result<u8> {
        self.io_in(port, Width::U8).map(|v| v as u8)
    }
    fn in16(&mut self, port: u16) -> Result<u16> {
        self.io_in(port, Width::U16).map(|v| v as u16)
    }
    fn in32(&mut self, port: u16) -> Result<u32> {
        self.io_in(port, Width::U32)
    }
    fn out8(&mut self, port: u16, v: u8) -> Result<()> {
        self.io_out(port, Width::U8, v as u32)
    }
    fn out16(&mut self, port: u16, v: u16) -> Result<()> {
        self.io_out(port, Width::U16, v as u32)
    }
    fn out32(&mut self, port: u16, v: u32) -> Result<()> {
        self.io_out(port, Width::U32, v)
    }
}

impl<H: Hal + ?Sized> PortExt for H {}

/// Volatile accessors for device-shared memory. Offsets are computed by the driver from its own
/// layout, never taken from the device, so they are in bounds by construction (checked in debug).
impl Dma {
    pub(crate) fn read<T: Copy>(&self, off: usize) -> T {
        debug_assert!(off + core::mem::size_of::<T>() <= self.len);
        // Safety: in bounds (layout invariant above) of memory the Hal promised is valid; every field
        // we access is naturally aligned because regions are page-aligned and layouts keep alignment.
        unsafe { core::ptr::read_volatile(self.virt.as_ptr().add(off) as *const T) }
    }

    pub(crate) fn write<T: Copy>(&self, off: usize, v: T) {
        debug_assert!(off + core::mem::size_of::<T>() <= self.len);
        // Safety: as in `read`.
        unsafe { core::ptr::write_volatile(self.virt.as_ptr().add(off) as *mut T, v) }
    }

    /// Copy bytes out of the region (data buffers, not rings: no ordering needed beyond the fence
    /// the caller already took when it saw the completion).
    pub(crate) fn copy_out(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.len);
        // Safety: in bounds (asserted) of valid memory; `dst` is a distinct Rust buffer, so no overlap.
        unsafe { core::ptr::copy_nonoverlapping(self.virt.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
    }

    pub(crate) fn copy_in(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.len);
        // Safety: as in `copy_out`.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), self.virt.as_ptr().add(off), src.len()) }
    }
}
