//! Block devices: the interface every filesystem and the block cache are written against.
//!
//! Design: a device is an array of fixed-size sectors (512 bytes for everything QEMU's virtio-blk and
//! disk images give us). Requests move whole sectors, any number of them at once, so a filesystem with
//! 4 KiB blocks issues one request per block run, never eight. `flush` is a barrier: when it returns,
//! every write that returned before it is durable. The vectored calls exist so a cache or a virtio queue
//! can submit many runs in one go; the default bodies fall back to one call per run.
//!
//! [`FaultDisk`] wraps any device to record its write log and inject I/O errors or power cuts for
//! crash tests (module [`fault`]); [`SmallReadCache`] keeps clean copies of recently read blocks for
//! small reads (module [`small_reads`]).
//!
//! Errors are [`protocol::Error::Io`] (device failure, with the byte offset) or
//! [`protocol::Error::InvalidArgument`] (misaligned or out-of-range request); devices never panic.
// Tests build with std so the image-file device is tested by a plain `cargo test` too.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod fault;
#[cfg(any(feature = "std", test))]
mod file;
mod ram;
pub mod small_reads;

pub use fault::{FaultDisk, Op};
#[cfg(any(feature = "std", test))]
pub use file::FileDisk;
pub use protocol::{Error, Result};
pub use ram::RamDisk;
pub use small_reads::SmallReadCache;

/// Sector size of every WATOS block device.
pub const SECTOR_SIZE: usize = 512;

/// A sector-addressed storage device.
pub trait BlockDevice {
    /// Number of sectors on the device.
    fn sector_count(&self) -> u64;

    /// Read `buf.len() / SECTOR_SIZE` sectors starting at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()>;

    /// Write `buf.len() / SECTOR_SIZE` sectors starting at `sector`. Not durable until `flush`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()>;

    /// Barrier: every write that completed before this call is durable when it returns.
    fn flush(&mut self) -> Result<()>;

    /// Read several runs; the default issues them one by one.
    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        for (sector, buf) in runs.iter_mut() {
            self.read(*sector, buf)?;
        }
        Ok(())
    }

    /// Write several runs; the default issues them one by one.
    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        for (sector, buf) in runs {
            self.write(*sector, buf)?;
        }
        Ok(())
    }

    /// Device size in bytes.
    fn size_bytes(&self) -> u64 {
        self.sector_count() * SECTOR_SIZE as u64
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        (**self).write(sector, buf)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        (**self).read_vectored(runs)
    }
    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        (**self).write_vectored(runs)
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for alloc::boxed::Box<D> {
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        (**self).write(sector, buf)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        (**self).read_vectored(runs)
    }
    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        (**self).write_vectored(runs)
    }
}

/// Check that a request of `len` bytes at `sector` is whole sectors and inside a device of
/// `sector_count` sectors; returns the byte offset where it starts.
pub fn check_request(sector_count: u64, sector: u64, len: usize) -> Result<u64> {
    if len % SECTOR_SIZE != 0 {
        return Err(Error::InvalidArgument);
    }
    let sectors = (len / SECTOR_SIZE) as u64;
    match sector.checked_add(sectors) {
        Some(end) if end <= sector_count => Ok(sector * SECTOR_SIZE as u64),
        _ => Err(Error::InvalidArgument),
    }
}
