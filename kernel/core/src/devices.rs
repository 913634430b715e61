//! Device access for user-space drivers: I/O ports and interrupt lines, for driver tasks only.
//!
//! Design: drivers are processes (the virtio-blk driver lives in blockcache-server), so the kernel
//! lends them exactly two things. I/O ports, through `io_in`/`io_out` syscalls (slow next to an I/O
//! bitmap, but trivially safe, and port I/O is only for device registers, never for data), only the
//! ports of an allow-list (`pci_ports`: the devices' I/O windows, named legacy ports, configuration
//! space writable through its command register only). And interrupt lines: `irq_bind` routes a legacy PIC line to notification bits of the task; when it fires the
//! kernel masks the line, acknowledges the PIC and posts the bits; the driver services its device and
//! calls `irq_ack` to unmask. Device DMA needs memory whose physical address is known and contiguous:
//! `map_dma` maps such pages and tells the driver where they are. Only tasks whose initrd entry has the DRIVER flag may do any of this; a
//! driver's lines are unbound and masked when it dies.

use crate::abi::{SysError, TaskId, ANON_LIMIT, MAX_DMA_PAGES, PAGE};
use crate::kernel::{Kernel, Platform};
use crate::paging::Perm;
use crate::paging::{FrameAlloc, PhysMem};
use crate::syscall::UserError;
use crate::usermem::{copy_out, validate, Access};

/// Lines a driver may bind: not the timer (0), not the cascade (2), not COM1 (4, the kernel's
/// console input), not 7 and 15 (where the PIC reports spurious interrupts).
pub fn bindable(line: u64) -> bool {
    (1..16).contains(&line) && ![2, crate::console::LINE as u64, 7, 15].contains(&line)
}

/// A driver's access to `width` bytes at `port` (`write`: the value written), checked against the
/// allow-list (`pci_ports`).
fn port_range<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    port: u64,
    width: u64,
    write: Option<u32>,
) -> Result<(u16, u8), SysError> {
    let mine = k.slots.get(c).and_then(|s| s.task.as_ref()).map_or(&[][..], |t| &t.devices[..]);
    crate::pci_ports::check(&mut k.platform, &k.io_windows, mine, port, width, write)
}

fn require_driver<P: Platform, M: PhysMem, F: FrameAlloc>(k: &Kernel<P, M, F>, c: usize) -> Result<TaskId, UserError> {
    match k.task(c) {
        Some(t) if t.driver => Ok(t.id),
        _ => Err(SysError::NotPermitted.into()),
    }
}

/// `io_in(port, width)` -> value.
pub fn io_in<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    a: [u64; 6],
) -> Result<u64, UserError> {
    require_driver(k, c)?;
    let (port, width) = port_range(k, c, a[0], a[1], None)?;
    Ok(k.platform.port_in(port, width) as u64)
}

/// `io_out(port, width, value)` -> 0.
pub fn io_out<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    a: [u64; 6],
) -> Result<u64, UserError> {
    let me = require_driver(k, c)?;
    let (port, width) = port_range(k, c, a[0], a[1], Some(a[2] as u32))?;
    crate::busmaster::on_port_write(k, me, port, a[2] as u32)?;
    k.platform.port_out(port, width, a[2] as u32);
    // Only now has the hardware seen a write that may have switched a function off.
    crate::busmaster::release_quarantine(k);
    Ok(0)
}

/// `irq_bind(line, bits)` -> 0; bits 0 unbinds. Only the line of one of the driver's PCI functions
/// or a named legacy line (`pci_ports::may_bind`); a line bound to another live task is
/// `NotPermitted`.
pub fn irq_bind<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    a: [u64; 6],
) -> Result<u64, UserError> {
    let me = require_driver(k, c)?;
    let (line, bits) = (a[0], a[1]);
    if !bindable(line) {
        return Err(SysError::InvalidArgument.into());
    }
    let mine = k.task(c).map_or(&[][..], |t| &t.devices[..]);
    if !crate::pci_ports::may_bind(&k.irq_lines, mine, line as u8) {
        return Err(SysError::NotPermitted.into());
    }
    let slot = &mut k.irqs[line as usize];
    if slot.is_some_and(|(owner, _)| owner != me) {
        return Err(SysError::NotPermitted.into());
    }
    *slot = (bits != 0).then_some((me, bits));
    k.platform.irq_mask(line as u8, bits == 0);
    Ok(0)
}

/// `irq_ack(line)` -> 0: the driver has serviced the device; unmask the line.
pub fn irq_ack<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    a: [u64; 6],
) -> Result<u64, UserError> {
    let me = require_driver(k, c)?;
    match k.irqs.get(a[0] as usize).copied().flatten() {
        Some((owner, _)) if owner == me => {
            k.platform.irq_mask(a[0] as u8, false);
            Ok(0)
        }
        _ => Err(SysError::InvalidArgument.into()),
    }
}

/// `map_dma(pages, phys_out)` -> virtual address. The frames belong to the driver's address space
/// and are freed with it; the physical address goes to `phys_out` for the device's descriptors.
pub fn map_dma<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    a: [u64; 6],
) -> Result<u64, UserError> {
    require_driver(k, c)?;
    let (pages, phys_out) = (a[0], a[1]);
    if pages == 0 || pages > MAX_DMA_PAGES {
        return Err(SysError::InvalidArgument.into());
    }
    let task = k.task(c).ok_or(SysError::NoSuchTask)?;
    let (space, va, bytes) = (task.space, task.anon_next, pages * PAGE);
    // Check the output pointer before taking memory, so a bad pointer cannot leak frames.
    validate(&space, &k.mem, phys_out, 8, Access::Write)?;
    if task.anon_bytes + bytes > ANON_LIMIT || k.frames.free_count() < (pages + 16) as usize {
        return Err(SysError::OutOfMemory.into());
    }
    let first = k.frames.alloc_contiguous(pages).ok_or(SysError::OutOfMemory)?;
    let rw = Perm { write: true, exec: false };
    for i in 0..pages {
        let frame = first + i * PAGE;
        k.mem.zero_frame(frame);
        if let Err(e) = space.map(&mut k.mem, &mut k.frames, va + i * PAGE, frame, rw) {
            // Frames not yet mapped are not owned by the space: give them back.
            for rest in i..pages {
                k.frames.free(first + rest * PAGE);
            }
            return Err(SysError::from(e).into());
        }
    }
    copy_out(&space, &mut k.mem, phys_out, &first.to_le_bytes())?;
    if let Some(t) = k.task_mut(c) {
        t.anon_next = va + bytes + PAGE;
        t.anon_bytes += bytes;
        t.dma.push((first, pages));
    }
    Ok(va)
}

/// Interrupt line `line` fired (already acknowledged at the PIC): mask it and tell its driver.
pub fn on_irq<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, line: u8) {
    k.platform.irq_mask(line, true);
    let Some((owner, bits)) = k.irqs.get(line as usize).copied().flatten() else { return };
    if let Some(t) = k.lookup(owner) {
        crate::ipc::post(k, t, bits);
    }
}

/// A task died: switch off bus mastering it enabled, release its lines. Runs before its address
/// space (with its DMA pages) is freed.
/// Returns the functions the driver enabled that still master the bus (another live driver enabled
/// them too).
pub fn on_death<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    dead: TaskId,
    name: &str,
) -> alloc::vec::Vec<crate::busmaster::Function> {
    let mastering = crate::busmaster::on_death(k, dead, name);
    for line in 0..k.irqs.len() {
        if k.irqs[line].is_some_and(|(owner, _)| owner == dead) {
            k.irqs[line] = None;
            k.platform.irq_mask(line as u8, true);
        }
    }
    mastering
}
