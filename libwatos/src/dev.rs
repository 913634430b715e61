//! Device access for driver programs (initrd flag DRIVER): I/O ports and interrupt lines.
//! Every call fails with `NotPermitted` in an ordinary program or on a port the kernel owns.

use crate::sys::raw;
use watos_abi::{Sys, SysError};

/// Reads `width` (1, 2 or 4) bytes from I/O port `port`.
pub fn io_in(port: u16, width: u8) -> Result<u32, SysError> {
    SysError::decode(raw(Sys::IoIn, [port as u64, width as u64, 0, 0, 0, 0])).map(|v| v as u32)
}

/// Writes `width` (1, 2 or 4) bytes of `value` to I/O port `port`.
pub fn io_out(port: u16, width: u8, value: u32) -> Result<(), SysError> {
    SysError::decode(raw(Sys::IoOut, [port as u64, width as u64, value as u64, 0, 0, 0])).map(|_| ())
}

/// Routes interrupt line `line` to our notification `bits` (0 unbinds). The line stays masked after
/// each interrupt until `irq_ack`.
pub fn irq_bind(line: u8, bits: u64) -> Result<(), SysError> {
    SysError::decode(raw(Sys::IrqBind, [line as u64, bits, 0, 0, 0, 0])).map(|_| ())
}

/// Unmasks `line` once the device has been serviced.
pub fn irq_ack(line: u8) -> Result<(), SysError> {
    SysError::decode(raw(Sys::IrqAck, [line as u64, 0, 0, 0, 0, 0])).map(|_| ())
}

/// Maps `pages` zeroed, physically contiguous pages for device DMA; returns their address and the
/// physical address a device must be given.
pub fn map_dma(pages: usize) -> Result<(*mut u8, u64), SysError> {
    let mut phys = 0u64;
    let va = SysError::decode(raw(Sys::MapDma, [pages as u64, &mut phys as *mut u64 as u64, 0, 0, 0, 0]))?;
    Ok((va as *mut u8, phys))
}
