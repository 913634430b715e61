//! A simulated PCI bus with legacy virtio-blk devices, for host tests and benchmarks.
//!
//! Design: [`SimHal`] implements [`Hal`]; its port accesses go to a PCI configuration space
//! (0xCF8/0xCFC) and to each device's legacy register block, and its DMA allocations come from
//! [`SimMemory`], page-aligned host allocations given made-up "physical" addresses from 1 MiB up.
//! The device model ([`device::SimDevice`]) reads the rings through those physical addresses, as a
//! real device would, executes requests against a `RamDisk`, and posts completions in an order the
//! test chooses. The state sits in `Rc<RefCell<Sim>>` so a test keeps a handle ([`SimHandle`]) to
//! inject faults and inspect what the driver did while the driver owns the `SimHal`.
//!
//! The model is deliberately strict: every violation of the driver's side of the protocol (bad
//! descriptor, chain reused while the device owns it, ring index running past the queue, notify
//! before DRIVER_OK, modifying a descriptor the device owns...) is recorded in `violations`, and
//! tests assert that list stays empty.

pub mod device;

use crate::hal::{Dma, Hal, Width, PAGE_SIZE};
use crate::pci::{PciAddress, CONFIG_ADDRESS, CONFIG_DATA};
use alloc::rc::Rc;
use core::cell::RefCell;
use core::ptr::NonNull;
use protocol::{Error, Result};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::string::String;
use std::vec::Vec;

pub use device::{Order, SimConfig, SimDevice};

/// First simulated physical address (an arbitrary non-zero base, so a zero address is always wrong).
const PHYS_BASE: u64 = 0x10_0000;

struct Region {
    phys: u64,
    ptr: NonNull<u8>,
    len: usize,
}

/// DMA memory with simulated physical addresses.
pub struct SimMemory {
    regions: Vec<Region>,
    next_phys: u64,
    pub pages_allocated: usize,
}

impl SimMemory {
    fn new() -> SimMemory {
        SimMemory { regions: Vec::new(), next_phys: PHYS_BASE, pages_allocated: 0 }
    }

    fn alloc(&mut self, pages: usize) -> Result<Dma> {
        if pages == 0 || pages > 256 {
            return Err(Error::InvalidArgument);
        }
        let len = pages * PAGE_SIZE;
        let layout = Layout::from_size_align(len, PAGE_SIZE).map_err(|_| Error::InvalidArgument)?;
        // Safety: `layout` has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(Error::NoSpace)?;
        let phys = self.next_phys;
        // A guard page between regions, so a device access running off one region hits nothing.
        self.next_phys += (len + PAGE_SIZE) as u64;
        self.pages_allocated += pages;
        self.regions.push(Region { phys, ptr, len });
        Ok(Dma { virt: ptr, phys, len })
    }

    /// Host pointer to `len` bytes at physical `phys`, if they lie inside one region.
    pub fn translate(&self, phys: u64, len: usize) -> Option<*mut u8> {
        let r = self.regions.iter().find(|r| phys >= r.phys && phys < r.phys + r.len as u64)?;
        let off = (phys - r.phys) as usize;
        if off.checked_add(len)? > r.len {
            return None;
        }
        // Safety: `off + len <= r.len`, inside the allocation.
        Some(unsafe { r.ptr.as_ptr().add(off) })
    }

    pub fn read(&self, phys: u64, out: &mut [u8]) -> bool {
        match self.translate(phys, out.len()) {
            // Safety: translate checked the range; `out` is a separate host buffer.
            Some(p) => unsafe { core::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) },
            None => return false,
        }
        true
    }

    pub fn write(&self, phys: u64, data: &[u8]) -> bool {
        match self.translate(phys, data.len()) {
            // Safety: as in `read`.
            Some(p) => unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) },
            None => return false,
        }
        true
    }

    pub fn read_u16(&self, phys: u64) -> Option<u16> {
        let mut b = [0; 2];
        self.read(phys, &mut b).then(|| u16::from_le_bytes(b))
    }
}

impl Drop for SimMemory {
    fn drop(&mut self) {
        for r in &self.regions {
            // Safety: allocated in `alloc` with exactly this size and alignment, freed once.
            unsafe { dealloc(r.ptr.as_ptr(), Layout::from_size_align_unchecked(r.len, PAGE_SIZE)) };
        }
    }
}

/// A device on the simulated bus.
pub struct Slot {
    pub address: PciAddress,
    pub device_id: u16,
    pub io_base: u16,
    pub irq_line: u8,
    pub command: u16,
    pub dev: SimDevice,
}

/// The whole simulated machine.
pub struct Sim {
    pub mem: SimMemory,
    pub devices: Vec<Slot>,
    config_address: u32,
    /// Interrupts acknowledged with `ack_interrupt`, and waits that found nothing to wait for.
    pub irq_acks: usize,
    pub idle_waits: usize,
}

pub type SimHandle = Rc<RefCell<Sim>>;

impl Sim {
    /// A bus with one virtio-blk device at 00:04.0, I/O base 0xC040, interrupt line 11.
    pub fn new(config: SimConfig) -> SimHandle {
        let mut sim = Sim::empty();
        sim.add(PciAddress { bus: 0, device: 4, function: 0 }, 0x1001, 0xC040, 11, config);
        Rc::new(RefCell::new(sim))
    }

    pub fn empty() -> Sim {
        Sim { mem: SimMemory::new(), devices: Vec::new(), config_address: 0, irq_acks: 0, idle_waits: 0 }
    }

    pub fn add(&mut self, address: PciAddress, device_id: u16, io_base: u16, irq_line: u8, config: SimConfig) {
        self.devices.push(Slot { address, device_id, io_base, irq_line, command: 0, dev: SimDevice::new(config) });
    }

    /// The first device's model.
    pub fn dev(&mut self) -> &mut SimDevice {
        &mut self.devices[0].dev
    }

    /// Let the first device complete up to `n` pending requests now; returns how many it did.
    pub fn complete(&mut self, n: usize) -> usize {
        self.devices[0].dev.complete(&self.mem, n)
    }

    /// Every protocol violation any device recorded.
    pub fn violations(&self) -> Vec<String> {
        self.devices.iter().flat_map(|d| d.dev.violations.iter().cloned()).collect()
    }

    fn config_read(&self) -> u32 {
        let a = self.config_address;
        let at = PciAddress { bus: (a >> 16) as u8, device: (a >> 11 & 0x1f) as u8, function: (a >> 8 & 7) as u8 };
        let Some(d) = self.devices.iter().find(|d| d.address == at) else { return 0xffff_ffff };
        match a & 0xfc {
            0x00 => 0x1af4 | (d.device_id as u32) << 16,
            0x04 => d.command as u32,
            0x08 => 0x0100_0000, // class: mass storage
            0x0C => 0,           // single-function header
            0x10 => d.io_base as u32 | 1,
            0x2C => 0x0002_1af4, // subsystem: virtio block
            0x3C => d.irq_line as u32 | 1 << 8,
            _ => 0,
        }
    }

    fn config_write(&mut self, v: u32) {
        let a = self.config_address;
        let at = PciAddress { bus: (a >> 16) as u8, device: (a >> 11 & 0x1f) as u8, function: (a >> 8 & 7) as u8 };
        if let Some(d) = self.devices.iter_mut().find(|d| d.address == at) {
            if a & 0xfc == 0x04 {
                d.command = v as u16;
            }
        }
    }

    fn device_at(&mut self, port: u16) -> Option<(&mut SimDevice, &SimMemory, u16, bool)> {
        let mem = &self.mem;
        self.devices
            .iter_mut()
            .find(|d| port >= d.io_base && port < d.io_base + 0x40)
            .map(|d| (&mut d.dev, mem, port - d.io_base, d.command & 1 != 0))
    }
}

/// The `Hal` over a simulated machine.
pub struct SimHal {
    pub sim: SimHandle,
}

impl SimHal {
    pub fn new(sim: &SimHandle) -> SimHal {
        SimHal { sim: sim.clone() }
    }
}

// Safety: `SimMemory::alloc` returns zeroed, page-aligned host memory that lives until the `Sim`
// is dropped, which the `Rc` held here prevents while the `SimHal` exists.
unsafe impl Hal for SimHal {
    fn io_in(&mut self, port: u16, width: Width) -> Result<u32> {
        let mut sim = self.sim.borrow_mut();
        if port == CONFIG_DATA && width == Width::U32 {
            return Ok(sim.config_read());
        }
        match sim.device_at(port) {
            Some((dev, mem, reg, true)) => Ok(dev.io_in(mem, reg, width)),
            // I/O decoding off, or nothing there: the bus floats high.
            _ => Ok(u32::MAX >> (32 - 8 * width as u32)),
        }
    }

    fn io_out(&mut self, port: u16, width: Width, value: u32) -> Result<()> {
        let mut sim = self.sim.borrow_mut();
        match (port, width) {
            (CONFIG_ADDRESS, Width::U32) => sim.config_address = value,
            (CONFIG_DATA, Width::U32) => sim.config_write(value),
            _ => {
                if let Some((dev, mem, reg, true)) = sim.device_at(port) {
                    dev.io_out(mem, reg, width, value);
                }
            }
        }
        Ok(())
    }

    fn dma_alloc(&mut self, pages: usize) -> Result<Dma> {
        self.sim.borrow_mut().mem.alloc(pages)
    }

    /// The device "runs" while the driver sleeps: each device completes what its policy allows. If
    /// no device has anything to complete, a real driver would sleep forever; here that is an error.
    fn wait_interrupt(&mut self) -> Result<()> {
        let mut sim = self.sim.borrow_mut();
        let sim = &mut *sim;
        let mut raised = false;
        for d in sim.devices.iter_mut() {
            d.dev.run(&sim.mem);
            raised |= d.dev.interrupt_pending();
        }
        if raised {
            Ok(())
        } else {
            sim.idle_waits += 1;
            Err(Error::Io { offset: u64::MAX })
        }
    }

    /// Unmasking a level-triggered line while a device still asserts it (ISR not yet read) would
    /// interrupt again at once: a driver bug the model records.
    fn ack_interrupt(&mut self) -> Result<()> {
        let mut sim = self.sim.borrow_mut();
        sim.irq_acks += 1;
        for d in sim.devices.iter_mut().filter(|d| d.dev.interrupt_pending()) {
            d.dev.violations.push("interrupt line unmasked before ISR was read".into());
        }
        Ok(())
    }
}
