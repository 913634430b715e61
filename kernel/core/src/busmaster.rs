//! Bus mastering: which PCI functions drivers have allowed to do DMA, and switching them off when
//! those drivers die, before the dead driver's DMA frames go back to the allocator.
//!
//! Design: WATOS has no IOMMU, so a device that may master the bus can write any physical frame. A
//! driver that dies with a request in flight leaves its device pointed at DMA pages the kernel is
//! about to reuse. The kernel sees every port write a driver makes (`io_out` is a syscall), and the
//! only way a driver can reach configuration space is mechanism #1 (a dword address written to
//! 0xCF8, then the data port 0xCFC..0xCFF): it has no MMIO, so no ECAM. Bus Master Enable is bit 2
//! of the command register, the low byte of dword 0x04, so it can only change through a write to
//! port 0xCFC itself (of width 1, 2 or 4: ports are aligned, so a write at 0xCFD..0xCFF never
//! covers byte 0) while the address latch has its enable bit set and selects register 0x04. On such
//! a write the kernel reads the latch back from the hardware (not from its own model of it, so no
//! sequence of partial or misaligned address writes can desynchronise the two) and records a claim
//! (function, driver) when the value sets the bit, or drops every claim on the function when it
//! clears it. The latch's bits 30..24 are ignored (reserved on Intel and in QEMU; register bits
//! 11..8 on some AMD parts), which can only over-approximate: a claim too many means a redundant
//! clear, never a missed one.
//!
//! When a driver dies, its claims go; each function left with no claim by a live driver gets BME
//! cleared (read-modify-write of the command word, so the status register's write-1-to-clear bits
//! are untouched) before `reap` frees the address space. The latch is saved and restored around the
//! cleanup, so a live driver preempted between its address and data accesses still hits the
//! register it selected. A function another live driver has also enabled stays enabled (clearing it
//! would break that driver); then the dead driver's DMA frames (the only frames whose physical
//! address a process learns) are kept back from the allocator, while the rest of its address space
//! is freed, until every such function has stopped mastering: a BME-off write by a driver (after
//! it reaches the hardware) or the death of the last driver that enabled it. At boot, before any
//! task runs, BME is cleared on every non-bridge function, so whatever the firmware left mastering
//! is off and every function that can master the bus later was switched on through a write the
//! kernel saw. (That scan walks bus 0 and the buses behind PCI-to-PCI bridges: where firmware puts
//! devices.)
//!
//! What this does not do: stop a hostile driver. Without an IOMMU any driver with a bus-mastering
//! device can already DMA anywhere; the guarantee is about the dead driver's own device, not about
//! malice. A driver can switch off another driver's device (it can reset it just as well).

use crate::abi::TaskId;
use crate::kernel::{klog, Kernel, Platform};
use crate::paging::{FrameAlloc, PhysMem};
use alloc::vec::Vec;

pub const CONFIG_ADDRESS: u16 = 0xCF8;
pub const CONFIG_DATA: u16 = 0xCFC;
const ENABLE: u32 = 1 << 31;
const REG_COMMAND: u32 = 0x04;
const REG_VENDOR: u32 = 0x00;
const REG_CLASS: u32 = 0x08;
const REG_HEADER_TYPE: u32 = 0x0C;
/// Type-1 header: primary, secondary and subordinate bus numbers.
const REG_BUSES: u32 = 0x18;
pub const BUS_MASTER: u32 = 1 << 2;
/// PCI base class of bridges (host, ISA, PCI-to-PCI, ...): they forward other devices' DMA.
const CLASS_BRIDGE: u32 = 0x06;

/// Most (function, driver) claims at once: far more than any machine's devices, and a bound on the
/// list every BME write and death scans (a driver could otherwise claim all 65,536 addresses).
pub const MAX_CLAIMS: usize = 256;

/// A PCI function as bits 23..8 of a configuration address: bus << 8 | device << 3 | function.
pub type Function = u16;

/// Formats a function as bus:device.function.
pub struct Bdf(pub Function);

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.0 >> 8, (self.0 >> 3) & 0x1F, self.0 & 7)
    }
}

/// The configuration address of dword register `reg` of function `f`.
pub fn address(f: Function, reg: u32) -> u32 {
    ENABLE | (f as u32) << 8 | (reg & 0xFC)
}

/// What a driver's write of `value` to `port` does to Bus Master Enable, given the address latch
/// read back from the hardware: `Some((function, enabled))` if it writes the command register's low
/// byte, `None` otherwise.
pub fn command_write(latch: u32, port: u16, value: u32) -> Option<(Function, bool)> {
    if port != CONFIG_DATA || latch & ENABLE == 0 || latch & 0xFC != REG_COMMAND {
        return None;
    }
    Some(((latch >> 8) as Function, value & BUS_MASTER != 0))
}

/// Claims on bus mastering: (function, driver that enabled it); and frames held back from the
/// allocator until the functions that might still write them stop mastering.
#[derive(Debug, Default)]
pub struct BusMasters {
    claims: Vec<(Function, TaskId)>,
    quarantine: Vec<(Vec<Function>, Vec<u64>)>,
}

impl BusMasters {
    /// Frames held back now.
    pub fn quarantined(&self) -> usize {
        self.quarantine.iter().map(|q| q.1.len()).sum()
    }

    /// Functions `driver` has enabled, in the order it did.
    pub fn claimed_by(&self, driver: TaskId) -> Vec<Function> {
        self.claims.iter().filter(|c| c.1 == driver).map(|c| c.0).collect()
    }

    /// Notes a BME write; `false` (and nothing noted) if it would be a claim beyond `MAX_CLAIMS`.
    fn record(&mut self, f: Function, driver: TaskId, enabled: bool) -> bool {
        if !enabled {
            self.claims.retain(|c| c.0 != f);
        } else if !self.claims.contains(&(f, driver)) {
            if self.claims.len() >= MAX_CLAIMS {
                return false;
            }
            self.claims.push((f, driver));
        }
        true
    }

    /// Drops `driver`'s claims; returns the functions nobody else claims (to be switched off) and
    /// those another live driver still has enabled.
    fn release(&mut self, driver: TaskId) -> (Vec<Function>, Vec<Function>) {
        let mine = self.claimed_by(driver);
        self.claims.retain(|c| c.1 != driver);
        mine.into_iter().partition(|f| !self.claims.iter().any(|c| c.0 == *f))
    }
}

/// Called by `io_out` before a driver's write reaches the hardware: notes what it does to BME.
/// `NotPermitted` (and the write must not happen) when it would switch on one claim too many.
pub fn on_port_write<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    driver: TaskId,
    port: u16,
    value: u32,
) -> Result<(), crate::abi::SysError> {
    if port != CONFIG_DATA {
        return Ok(());
    }
    let latch = k.platform.port_in(CONFIG_ADDRESS, 4);
    match command_write(latch, port, value) {
        Some((f, enabled)) if !k.bus_masters.record(f, driver, enabled) => Err(crate::abi::SysError::NotPermitted),
        _ => Ok(()),
    }
}

/// Clears BME on `f` if it is set; leaves the latch selecting `f`'s command register. Returns
/// whether it was set.
fn clear<P: Platform>(p: &mut P, f: Function) -> bool {
    p.port_out(CONFIG_ADDRESS, 4, address(f, REG_COMMAND));
    let command = p.port_in(CONFIG_DATA, 2);
    if command & BUS_MASTER == 0 {
        return false;
    }
    p.port_out(CONFIG_DATA, 2, command & !BUS_MASTER & 0xFFFF);
    true
}

/// A driver died: switch off bus mastering on each function only it had enabled. Must run before
/// its address space (and so its DMA frames) is freed. Returns the functions that stay on (another
/// live driver enabled them too), for `free_space`.
pub fn on_death<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    dead: TaskId,
    name: &str,
) -> Vec<Function> {
    let (off, shared) = k.bus_masters.release(dead);
    if off.is_empty() && shared.is_empty() {
        return shared;
    }
    let latch = k.platform.port_in(CONFIG_ADDRESS, 4);
    for &f in &off {
        let was = clear(&mut k.platform, f);
        klog!(
            k,
            "bus mastering off for PCI {} ({name} died; it was {})",
            Bdf(f),
            if was { "on" } else { "already off" }
        );
    }
    k.platform.port_out(CONFIG_ADDRESS, 4, latch);
    for &f in &shared {
        klog!(k, "PCI {} stays bus-mastering: another live driver enabled it too ({name} died)", Bdf(f));
    }
    // Functions switched off here may be what older quarantined frames waited for.
    release_quarantine(k);
    shared
}

/// A frame allocator that keeps back the frames of `hold` (DMA ranges) and passes the rest on.
struct Holding<'a, F: FrameAlloc> {
    inner: &'a mut F,
    hold: &'a [(u64, u64)],
    held: Vec<u64>,
}

impl<F: FrameAlloc> FrameAlloc for Holding<'_, F> {
    fn alloc(&mut self) -> Option<u64> {
        self.inner.alloc()
    }
    fn free(&mut self, pa: u64) {
        if self.hold.iter().any(|&(first, pages)| (first..first + pages * crate::abi::PAGE).contains(&pa)) {
            self.held.push(pa);
        } else {
            self.inner.free(pa);
        }
    }
    fn free_count(&self) -> usize {
        self.inner.free_count()
    }
}

/// Frees a dead task's address space. If some function it enabled still masters the bus
/// (`mastering`, from `on_death`), its DMA frames are quarantined instead, until every function in
/// `mastering` has stopped (`release_quarantine`). Returns the frames freed now.
pub fn free_space<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    space: crate::paging::AddressSpace,
    dma: &[(u64, u64)],
    mastering: Vec<Function>,
    name: &str,
) -> usize {
    if mastering.is_empty() || dma.is_empty() {
        return space.free_user(&mut k.mem, &mut k.frames);
    }
    let mut holding = Holding { inner: &mut k.frames, hold: dma, held: Vec::new() };
    let freed = space.free_user(&mut k.mem, &mut holding);
    let held = holding.held;
    klog!(k, "{} DMA frames of {name} held back until PCI {} stops bus-mastering", held.len(), Bdf(mastering[0]));
    let n = held.len();
    k.bus_masters.quarantine.push((mastering, held));
    freed - n
}

/// Returns quarantined frames whose functions have all stopped mastering the bus.
pub fn release_quarantine<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>) {
    let bm = &mut k.bus_masters;
    for (functions, _) in bm.quarantine.iter_mut() {
        functions.retain(|f| bm.claims.iter().any(|c| c.0 == *f));
    }
    let (done, kept): (Vec<_>, Vec<_>) = core::mem::take(&mut bm.quarantine).into_iter().partition(|q| q.0.is_empty());
    bm.quarantine = kept;
    for (_, frames) in done {
        for &pa in &frames {
            k.frames.free(pa);
        }
        klog!(k, "{} quarantined DMA frames released: their device stopped bus-mastering", frames.len());
    }
}

fn read<P: Platform>(p: &mut P, f: Function, reg: u32) -> u32 {
    p.port_out(CONFIG_ADDRESS, 4, address(f, reg));
    p.port_in(CONFIG_DATA, 4)
}

/// At boot: clears BME on every function that is not a bridge (`devices`). Returns the functions
/// that had BME set. The latch is left at 0 (disabled).
pub fn disable_all<P: Platform>(p: &mut P) -> Vec<Function> {
    let mut cleared: Vec<Function> = devices(p).into_iter().filter(|&f| clear(p, f)).collect();
    p.port_out(CONFIG_ADDRESS, 4, 0);
    cleared.sort_unstable();
    cleared
}

/// Every function that is not a bridge, on bus 0 and every bus behind a PCI-to-PCI bridge (the
/// buses the firmware can have set devices up on; functions 1..7 only where function 0 says
/// multi-function). A depth-first walk touches a few dozen functions where a brute-force scan of
/// all 256 buses costs ~16 ms of port I/O under QEMU's TCG.
pub fn devices<P: Platform>(p: &mut P) -> Vec<Function> {
    let mut found = Vec::new();
    let mut seen = [false; 256];
    let mut buses = alloc::vec![0u16];
    while let Some(bus) = buses.pop() {
        if core::mem::replace(&mut seen[bus as usize], true) {
            continue;
        }
        for device in 0..32u16 {
            let f0 = bus << 8 | device << 3;
            if read(p, f0, REG_VENDOR) & 0xFFFF == 0xFFFF {
                continue;
            }
            let multi = read(p, f0, REG_HEADER_TYPE) >> 16 & 0x80 != 0;
            for f in f0..f0 + if multi { 8 } else { 1 } {
                if read(p, f, REG_VENDOR) & 0xFFFF == 0xFFFF {
                    continue;
                }
                if read(p, f, REG_CLASS) >> 24 == CLASS_BRIDGE {
                    // A PCI-to-PCI bridge (header type 1) leads to its secondary bus; numbers
                    // only grow downstream, so a smaller or equal one is a misconfiguration.
                    if read(p, f, REG_HEADER_TYPE) >> 16 & 0x7F == 1 {
                        let secondary = (read(p, f, REG_BUSES) >> 8 & 0xFF) as u16;
                        if secondary > bus {
                            buses.push(secondary);
                        }
                    }
                    continue;
                }
                found.push(f);
            }
        }
    }
    found
}
