//! User-space virtio-blk driver for WATOS (legacy virtio-pci over port I/O).
//!
//! Design: the driver is a library generic over [`Hal`] (port I/O, DMA pages, interrupt wait), so the
//! same code runs inside blockcache-server on WATOS and in host tests against [`sim`], a simulated
//! PCI bus and legacy virtio-blk device. Layers, bottom up:
//! - [`pci`]: configuration mechanism #1 scan for vendor 0x1af4 / device 0x1001, BAR0 (I/O) and the
//!   interrupt line, I/O decoding and bus mastering switched on;
//! - `queue`: one split virtqueue in the legacy layout (descriptors, avail ring, used ring on the
//!   next page), its free list kept in driver-private memory so a misbehaving device cannot corrupt
//!   it, and the three memory-ordering points of the ring protocol;
//! - [`VirtioBlk`]: reset → ACKNOWLEDGE → DRIVER → features (SIZE_MAX, SEG_MAX, RO, FLUSH) → queue
//!   PFN → DRIVER_OK; requests as header/data/status chains through per-request DMA bounce buffers;
//!   an async API (`submit` → `poll`/`wait`/`handle_interrupt` → `take`) with many requests in flight
//!   and completions matched by head descriptor in whatever order the device posts them;
//! - `sync`: `blockdev::BlockDevice` on top, splitting large and vectored I/O into requests that are
//!   all in flight together.
//!
//! Device errors (status IOERR/UNSUPP/unwritten, an impossible used length) are `Error::Io` at the
//! request's byte offset; device protocol violations (a used id never published) are
//! `Error::Malformed`; nothing the device writes can make the driver panic or index out of bounds.
#![cfg_attr(not(any(test, feature = "sim")), no_std)]

extern crate alloc;

mod blk;
pub mod hal;
pub mod pci;
mod queue;
pub mod regs;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod sync;

pub use blk::{Config, Depth, Request, Token, VirtioBlk};
pub use hal::{Dma, Hal, Width, PAGE_SIZE};
pub use queue::Layout;

/// Find the `index`th legacy virtio-blk device on the PCI bus (QEMU numbers them in `-drive` order
/// on bus 0) and initialise it. Returns the driver and the interrupt line the caller should bind
/// (WATOS `irq_bind`) before relying on `wait`. Only that function gets bus mastering: the WATOS
/// kernel switches a function off when the last driver that enabled it dies, so a driver must not
/// enable the disks it does not drive.
pub fn probe<H: Hal>(mut hal: H, index: usize, config: Config) -> protocol::Result<(VirtioBlk<H>, u8)> {
    let at = *pci::find(&mut hal, pci::VENDOR_VIRTIO, pci::DEVICE_VIRTIO_BLK_LEGACY)?
        .get(index)
        .ok_or(protocol::Error::NotFound)?;
    let dev = pci::setup_legacy(&mut hal, at)?;
    Ok((VirtioBlk::new(hal, dev.io_base, config)?, dev.irq_line))
}
