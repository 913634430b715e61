//! Drivers' I/O ports: an allow-list, and configuration space only through the command register.
//!
//! Design (after MINIX's per-driver `io` ranges and PCI ACLs, and Fuchsia's refusal of header
//! writes): the initrd manifest assigns each driver the PCI functions it drives. A driver may use
//! the I/O windows (I/O BARs, found at boot before any task runs) of its own functions; the named
//! legacy ports of the devices WATOS drivers use (CMOS/RTC, 0x70..0x71); and configuration
//! mechanism #1, readable for every function (drivers find their device by enumerating) and
//! writable only for its own, restricted so that the kernel's view of it stays exact:
//!
//! - the address port only as a dword at 0xCF8, with its low two bits clear (QEMU's host bridge
//!   ORs them into the register offset, which would let a write at 0xCFC reach another byte, and a
//!   byte at 0xCF9 is the chipset's reset control);
//! - data-port writes only while the latch selects the command/status dword (0x04): no BAR can be
//!   moved over the kernel's devices, no interrupt routing or device-specific register (such as the
//!   ACPI power-management base) changed. Reads of any register stay open.
//!
//! Everything else (the keyboard controller's reset line, port 0x92, ACPI, other chipset ports) is
//! `NotPermitted`, and the kernel's own ports (PIC, PIT, COM1, the QEMU exit port) are refused even
//! if a window overlaps them. With the BARs fixed, the windows found at boot stay true.

use crate::abi::SysError;
use crate::busmaster::{self, Function, CONFIG_ADDRESS, CONFIG_DATA};
use crate::kernel::Platform;
use alloc::vec::Vec;

/// Ports the kernel drives itself: PICs, PIT (and its gate), COM1, QEMU's debug-exit device.
const KERNEL_PORTS: [(u16, u16); 6] =
    [(0x20, 0x21), (0x40, 0x43), (0x61, 0x61), (0xA0, 0xA1), (0x3F8, 0x3FF), (0xF4, 0xF7)];
/// Named legacy ports drivers may use: the CMOS/RTC index and data ports.
const LEGACY_PORTS: [(u16, u16); 1] = [(0x70, 0x71)];
/// The only configuration register drivers may write: command (bus mastering, decoding) and status.
const WRITABLE_REGISTER: u32 = 0x04;
const ENABLE: u32 = 1 << 31;
/// Interrupt lines drivers may bind without a device: the RTC's (8), a named legacy line like CMOS.
pub const LEGACY_LINES: [u8; 1] = [8];
/// The interrupt line register (its low byte: the PIC line the firmware routed INTx to).
const REG_INTERRUPT: u32 = 0x3C;
/// Base address registers of a type-0 header.
const BARS: core::ops::RangeInclusive<u32> = 0x10..=0x24;
/// Command register bit 0: the device decodes its I/O windows.
const IO_DECODE: u32 = 1;

/// A function's I/O window: (function, first port, last port).
pub type Window = (Function, u16, u16);

fn overlaps(ranges: &[(u16, u16)], first: u16, last: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| first <= hi && lo <= last)
}

/// May a driver whose functions are `mine` access `width` bytes at `port` (a write of `write`, or
/// a read)? `windows` are the devices' I/O windows; the latch is read back from the hardware for
/// data-port writes. Returns the port and width to use, `InvalidArgument` for a malformed access,
/// `NotPermitted` for a refused one.
pub fn check<P: Platform>(
    p: &mut P,
    windows: &[Window],
    mine: &[Function],
    port: u64,
    width: u64,
    write: Option<u32>,
) -> Result<(u16, u8), SysError> {
    if !matches!(width, 1 | 2 | 4) || port >= 0x1_0000 || !port.is_multiple_of(width) || port + width > 0x1_0000 {
        return Err(SysError::InvalidArgument);
    }
    let (first, last) = (port as u16, (port + width - 1) as u16);
    let ok = if overlaps(&KERNEL_PORTS, first, last) {
        false
    } else if overlaps(&[(CONFIG_ADDRESS, CONFIG_ADDRESS + 3)], first, last) {
        first == CONFIG_ADDRESS && width == 4 && write.is_none_or(|v| v & 3 == 0)
    } else if overlaps(&[(CONFIG_DATA, CONFIG_DATA + 3)], first, last) {
        write.is_none() || {
            let latch = p.port_in(CONFIG_ADDRESS, 4);
            latch & ENABLE != 0 && latch & 0xFC == WRITABLE_REGISTER && mine.contains(&((latch >> 8) as Function))
        }
    } else {
        let own = windows.iter().filter(|w| mine.contains(&w.0)).map(|w| (w.1, w.2));
        LEGACY_PORTS.iter().copied().chain(own).any(|(lo, hi)| lo <= first && last <= hi)
    };
    if !ok {
        return Err(SysError::NotPermitted);
    }
    Ok((first, width as u8))
}

fn read<P: Platform>(p: &mut P, f: busmaster::Function, reg: u32) -> u32 {
    p.port_out(CONFIG_ADDRESS, 4, busmaster::address(f, reg));
    p.port_in(CONFIG_DATA, 4)
}

fn write<P: Platform>(p: &mut P, f: busmaster::Function, reg: u32, value: u32) {
    p.port_out(CONFIG_ADDRESS, 4, busmaster::address(f, reg));
    p.port_out(CONFIG_DATA, 4, value);
}

/// At boot: the PIC line the firmware routed each device's (not bridges') interrupt to, from its
/// interrupt line register (0xFF or 0: none). The latch is left at 0.
pub fn interrupt_lines<P: Platform>(p: &mut P) -> Vec<(Function, u8)> {
    let lines = busmaster::devices(p)
        .into_iter()
        .map(|f| (f, read(p, f, REG_INTERRUPT) as u8))
        .filter(|&(_, line)| (1..16).contains(&line))
        .collect();
    p.port_out(CONFIG_ADDRESS, 4, 0);
    lines
}

/// May a driver whose functions are `mine` bind interrupt line `line`, given each device's line?
pub fn may_bind(lines: &[(Function, u8)], mine: &[Function], line: u8) -> bool {
    LEGACY_LINES.contains(&line) || lines.iter().any(|&(f, l)| l == line && mine.contains(&f))
}

/// At boot, before any task runs: the I/O windows of every device (not bridges) the bus walk
/// finds, sized the standard way (all ones written to the BAR with the device's I/O decoding off,
/// the mask read back, the BAR and command restored). The latch is left at 0.
pub fn io_windows<P: Platform>(p: &mut P) -> Vec<Window> {
    let mut windows = Vec::new();
    for f in busmaster::devices(p) {
        let command = read(p, f, WRITABLE_REGISTER) & 0xFFFF;
        for reg in BARS.step_by(4) {
            let bar = read(p, f, reg);
            if bar & 1 == 0 || bar & 0xFFFC == 0 {
                continue;
            }
            write(p, f, WRITABLE_REGISTER, command & !IO_DECODE);
            write(p, f, reg, u32::MAX);
            let mask = read(p, f, reg) & 0xFFFC;
            write(p, f, reg, bar);
            write(p, f, WRITABLE_REGISTER, command);
            if mask == 0 {
                continue;
            }
            let size = (!mask & 0xFFFF) + 1;
            let base = bar & 0xFFFC;
            if base + size <= 0x1_0000 {
                windows.push((f, base as u16, (base + size - 1) as u16));
            }
        }
    }
    p.port_out(CONFIG_ADDRESS, 4, 0);
    windows.sort_unstable_by_key(|w| w.1);
    windows
}
