//! The bus-master roles: a driver that dies with its device allowed to DMA, and a second driver that
//! checks the kernel switched the device off.
//!
//! `busmaster` picks the first PCI function on bus 0 that is not a bridge (in QEMU's default machine
//! the IDE controller 00:01.1), maps DMA pages, turns Bus Master Enable on the way a careless or
//! hostile driver might (a single byte written to 0xCFC rather than a word to the command
//! register), leaves the address latch pointing at another function, answers one call ("ready")
//! and faults on the next. `busmaster-check` makes the first call, finds the same function, makes
//! the second (which ends with `TaskDied` once the kernel has reaped the first driver), and reads the
//! command register: BME must be off, I/O and memory decoding as they were.
//!
//! Configuration space is one address port and one data port shared by every driver, so a driver
//! preempted between the two can read another's register. The roles therefore take turns: the
//! checker touches it only once `busmaster` has answered "ready", and `busmaster` starts only once
//! `rtc-driver` (which reads the host bridge's id) has ended.

use libwatos::abi::SysError;
use libwatos::fmt::check;
use libwatos::{dev, ipc, println, sys};

const ADDRESS: u16 = 0xCF8;
const DATA: u16 = 0xCFC;
const BUS_MASTER: u32 = 1 << 2;

fn read(f: u32, reg: u32) -> u32 {
    let _ = dev::io_out(ADDRESS, 4, 0x8000_0000 | f << 8 | reg);
    dev::io_in(DATA, 4).unwrap_or(u32::MAX)
}

/// The first function of bus 0 that exists and is not a bridge (base class 6), as bus/dev/fn bits.
fn target() -> Option<u32> {
    (0..256u32).find(|&f| read(f, 0) & 0xFFFF != 0xFFFF && read(f, 8) >> 24 != 6)
}

fn name(f: u32) -> alloc::string::String {
    alloc::format!("{:02x}:{:02x}.{}", f >> 8, (f >> 3) & 0x1F, f & 7)
}

pub fn master() -> i64 {
    while sys::find_task(c"rtc-driver").is_ok() {
        sys::sleep_ns(2_000_000);
    }
    let Some(f) = target() else {
        check(false, format_args!("busmaster: no PCI function to use"));
        return 1;
    };
    let dma = dev::map_dma(2);
    check(dma.is_ok(), format_args!("busmaster: DMA pages mapped"));
    let before = read(f, 4) & 0xFFFF;
    let _ = dev::io_out(ADDRESS, 4, 0x8000_0000 | f << 8 | 4);
    let _ = dev::io_out(DATA, 1, (before | BUS_MASTER) & 0xFF);
    let now = read(f, 4) & 0xFFFF;
    check(
        now & BUS_MASTER != 0,
        format_args!("busmaster: bus mastering on for PCI {} (command {before:#x} -> {now:#x})", name(f)),
    );
    // Leave the latch selecting another function's register, as a driver killed mid-access would.
    let _ = dev::io_out(ADDRESS, 4, 0x8000_0000 | 0x10);
    let mut buf = [0u8; 8];
    if let Ok(info) = ipc::receive(&mut buf, 0) {
        let _ = ipc::reply(info.sender, b"ready");
    }
    let _ = ipc::receive(&mut buf, 0);
    // Safety: a deliberate fault; the kernel reaps this process, so nothing after it runs.
    unsafe { core::arch::asm!("ud2") };
    1
}

pub fn check_master() -> i64 {
    let id = loop {
        match sys::find_task(c"busmaster") {
            Ok(id) => break id,
            Err(_) => sys::sleep_ns(1_000_000),
        }
    };
    let ready = ipc::send(id, b"ready?", &mut [0u8; 8], &[]);
    check(ready == Ok(5), format_args!("busmaster-check: the driver has set up its device ({ready:?})"));
    let Some(f) = target() else {
        check(false, format_args!("busmaster-check: no PCI function to use"));
        return 1;
    };
    let before = read(f, 4) & 0xFFFF;
    let r = ipc::send(id, b"die", &mut [], &[]);
    check(r == Err(SysError::TaskDied), format_args!("busmaster-check: the driver died mid-call ({r:?})"));
    let after = read(f, 4) & 0xFFFF;
    println!("busmaster-check: PCI {} command {before:#x} before the driver died, {after:#x} after", name(f));
    let ok = check(
        after & BUS_MASTER == 0 && after | BUS_MASTER == before | BUS_MASTER,
        format_args!(
            "busmaster-check: the kernel switched bus mastering off on the dead driver's PCI {}, nothing else",
            name(f)
        ),
    );
    let refused = port_checks(f);
    if ok && refused {
        0
    } else {
        1
    }
}

/// As a driver the manifest assigns no device: every port outside the allow-list is refused, among
/// them those that would reset or power off the machine if they got through (the chipset's reset
/// control 0xCF9, port 0x92, the keyboard controller, QEMU's ACPI PM1a control), a latch with low
/// bits set, a BAR write, and the command register of the device another driver was assigned.
fn port_checks(f: u32) -> bool {
    let mut ok = true;
    let writes: [(&str, u16, u8, u32); 6] = [
        ("reset control 0xCF9", 0xCF9, 1, 0x06),
        ("port 0x92 reset bit", 0x92, 1, 0x01),
        ("keyboard controller reset", 0x64, 1, 0xFE),
        ("ACPI PM1a control (power off)", 0x604, 2, 0x2000),
        ("address latch with low bits set", ADDRESS, 4, 0x8000_0001 | f << 8),
        ("a word at 0xCFA", 0xCFA, 2, 0),
    ];
    for (what, port, width, value) in writes {
        let r = dev::io_out(port, width, value);
        ok &= check(r == Err(SysError::NotPermitted), format_args!("busmaster-check: io_out {what} refused ({r:?})"));
    }
    // Interrupt lines: only its devices' and the named legacy ones (the RTC's 8); it has no device.
    let r = dev::irq_bind(11, 1 << 5);
    ok &= check(r == Err(SysError::NotPermitted), format_args!("busmaster-check: irq_bind(11) refused ({r:?})"));
    let r = dev::io_in(0x60, 1);
    ok &= check(r == Err(SysError::NotPermitted), format_args!("busmaster-check: io_in keyboard data refused ({r:?})"));
    let bar = read(f, 0x10);
    let _ = dev::io_out(ADDRESS, 4, 0x8000_0000 | f << 8 | 0x10);
    let r = dev::io_out(DATA, 4, u32::MAX);
    ok &= check(
        r == Err(SysError::NotPermitted) && read(f, 0x10) == bar,
        format_args!("busmaster-check: a BAR write is refused and the BAR unchanged ({r:?})"),
    );
    // The manifest assigns this driver no device: not even the command register is its to write.
    let command = read(f, 4);
    let _ = dev::io_out(ADDRESS, 4, 0x8000_0000 | f << 8 | 4);
    let r = dev::io_out(DATA, 2, (command | BUS_MASTER) & 0xFFFF);
    ok &= check(
        r == Err(SysError::NotPermitted) && read(f, 4) == command,
        format_args!("busmaster-check: the command register of a device not assigned to it is refused ({r:?})"),
    );
    println!("busmaster-check: ports outside the allow-list {}", if ok { "all refused" } else { "NOT ALL REFUSED" });
    ok
}
