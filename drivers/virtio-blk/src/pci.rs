//! PCI discovery through configuration mechanism #1 (ports 0xCF8 address, 0xCFC data).
//!
//! Design: a brute-force scan of every bus/slot/function, reading only the vendor id until a device
//! answers (0xFFFF means "nothing here"); functions 1..7 are read only when function 0's header says
//! multi-function. That is at most 8192 vendor reads, each two port syscalls in WATOS: a few
//! milliseconds once at start-up, and it needs no knowledge of bridges. Found virtio-blk functions
//! (vendor 0x1af4, transitional block device 0x1001) are switched to I/O-space decoding and bus
//! mastering, the two things a legacy virtio device needs to be driven and to do DMA.

use crate::hal::{Hal, PortExt};
use alloc::vec::Vec;
use protocol::{Error, Result};

pub const CONFIG_ADDRESS: u16 = 0xCF8;
pub const CONFIG_DATA: u16 = 0xCFC;

pub const VENDOR_VIRTIO: u16 = 0x1af4;
/// Transitional (legacy-capable) virtio-blk; modern-only devices (0x1042) need MMIO, which WATOS
/// drivers do not have yet.
pub const DEVICE_VIRTIO_BLK_LEGACY: u16 = 0x1001;

const REG_VENDOR: u8 = 0x00;
const REG_COMMAND: u8 = 0x04;
const REG_HEADER_TYPE: u8 = 0x0C; // dword holding cache line, latency, header type (byte 2), BIST
const REG_BAR0: u8 = 0x10;
const REG_INTERRUPT: u8 = 0x3C; // dword: interrupt line (byte 0), pin (byte 1)

const CMD_IO_SPACE: u16 = 1 << 0;
const CMD_BUS_MASTER: u16 = 1 << 2;

/// A PCI function's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciAddress {
    /// The CONFIG_ADDRESS value selecting dword register `offset` of this function.
    pub fn config_address(&self, offset: u8) -> u32 {
        0x8000_0000
            | (self.bus as u32) << 16
            | ((self.device & 0x1f) as u32) << 11
            | ((self.function & 0x7) as u32) << 8
            | (offset & 0xfc) as u32
    }
}

/// A legacy virtio device found on the bus, ready to be driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioPci {
    pub address: PciAddress,
    pub device_id: u16,
    /// Base of the legacy register block (BAR0, I/O space).
    pub io_base: u16,
    /// Legacy PIC line the firmware routed the device's INTx to.
    pub irq_line: u8,
}

/// Read a config-space dword.
pub fn config_read<H: Hal + ?Sized>(hal: &mut H, at: PciAddress, offset: u8) -> Result<u32> {
    hal.out32(CONFIG_ADDRESS, at.config_address(offset))?;
    hal.in32(CONFIG_DATA)
}

/// Write a config-space dword.
pub fn config_write<H: Hal + ?Sized>(hal: &mut H, at: PciAddress, offset: u8, v: u32) -> Result<()> {
    hal.out32(CONFIG_ADDRESS, at.config_address(offset))?;
    hal.out32(CONFIG_DATA, v)
}

/// Every function with this vendor and device id, in bus order.
pub fn find<H: Hal + ?Sized>(hal: &mut H, vendor: u16, device: u16) -> Result<Vec<PciAddress>> {
    let mut found = Vec::new();
    for bus in 0..=255u8 {
        for slot in 0..32u8 {
            let f0 = PciAddress { bus, device: slot, function: 0 };
            let id = config_read(hal, f0, REG_VENDOR)?;
            if id as u16 == 0xffff {
                continue;
            }
            let multi = config_read(hal, f0, REG_HEADER_TYPE)? >> 16 & 0x80 != 0;
            let functions = if multi { 8 } else { 1 };
            for function in 0..functions {
                let at = PciAddress { bus, device: slot, function };
                let id = if function == 0 { id } else { config_read(hal, at, REG_VENDOR)? };
                if id as u16 == vendor && (id >> 16) as u16 == device {
                    found.push(at);
                }
            }
        }
    }
    Ok(found)
}

/// Read BAR0 and the interrupt line of a legacy virtio function and enable I/O decoding and bus
/// mastering. A BAR0 that is not an I/O BAR (or lies above the 16-bit port space) is `NotSupported`.
pub fn setup_legacy<H: Hal + ?Sized>(hal: &mut H, at: PciAddress) -> Result<VirtioPci> {
    let id = config_read(hal, at, REG_VENDOR)?;
    if id as u16 != VENDOR_VIRTIO {
        return Err(Error::NotFound);
    }
    let bar0 = config_read(hal, at, REG_BAR0)?;
    if bar0 & 1 == 0 || bar0 & !0x3 > 0xffff || bar0 & !0x3 == 0 {
        return Err(Error::NotSupported);
    }
    let irq_line = config_read(hal, at, REG_INTERRUPT)? as u8;
    let cmd_status = config_read(hal, at, REG_COMMAND)?;
    let cmd = cmd_status as u16 | CMD_IO_SPACE | CMD_BUS_MASTER;
    // The upper half is the status register, whose bits are write-1-to-clear: write zeros there.
    config_write(hal, at, REG_COMMAND, cmd as u32)?;
    Ok(VirtioPci { address: at, device_id: (id >> 16) as u16, io_base: (bar0 & !0x3) as u16, irq_line })
}

/// Find and prepare every legacy virtio-blk device (QEMU attaches one per `-drive`).
pub fn find_virtio_blk<H: Hal + ?Sized>(hal: &mut H) -> Result<Vec<VirtioPci>> {
    find(hal, VENDOR_VIRTIO, DEVICE_VIRTIO_BLK_LEGACY)?.into_iter().map(|at| setup_legacy(hal, at)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_address_encodes_fields() {
        let a = PciAddress { bus: 1, device: 3, function: 2 };
        assert_eq!(a.config_address(0x3E), 0x8001_1A3C);
        assert_eq!(PciAddress { bus: 0, device: 0, function: 0 }.config_address(0), 0x8000_0000);
    }
}
