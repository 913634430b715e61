//! The COM1 console (kernel log, the processes' console writes and console input) and QEMU's exit
//! port.
//!
//! Design: polled output, no buffer and no lock: the kernel runs on one CPU with interrupts off, so a
//! write cannot be interleaved, and a panic can always print (there is no lock it could find held).
//! Input comes by interrupt: with the receive FIFO's trigger level at one byte, the UART raises
//! IRQ 4 for each byte received, and kernel-core's `console` drains the FIFO (`read_bytes`) into
//! the kernel's buffer and wakes a waiting reader.

use core::arch::asm;
use core::fmt;

const COM1: u16 = 0x3F8;

/// Writes `value` to I/O port `port`.
pub fn outb(port: u16, value: u8) {
    // Safety: port I/O has no memory effects; callers pick ports whose device they own.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads I/O port `port`.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // Safety: as for `outb`.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}

/// 115200 8N1, FIFOs on and cleared with a one-byte receive trigger, interrupts off (until
/// `enable_receive_interrupt`); DTR, RTS and OUT2 (which gates the UART's interrupt onto the bus on
/// PCs).
pub fn init() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0x07);
    outb(COM1 + 4, 0x0B);
}

/// Received-data-available interrupt on (IRQ 4; the PIC line is unmasked separately).
pub fn enable_receive_interrupt() {
    outb(COM1 + 1, 0x01);
}

pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

/// Takes the bytes COM1 has received (line status bit 0: data ready), up to `buf.len()`.
pub fn read_bytes(buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() && inb(COM1 + 5) & 0x01 != 0 {
        buf[n] = inb(COM1);
        n += 1;
    }
    n
}

fn put(b: u8) {
    while inb(COM1 + 5) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, b);
}

pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Kernel log line, prefixed so the test harness can tell the kernel from the processes.
#[macro_export]
macro_rules! klog {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::serial::Serial, "[kernel] {}", format_args!($($arg)*));
    }};
}

/// Ends the QEMU run through the isa-debug-exit device (QEMU exits with `code << 1 | 1`); on real
/// hardware, where the port does nothing, halts forever.
pub fn exit_qemu(success: bool) -> ! {
    let code: u32 = if success { 0x10 } else { 0x11 };
    // Safety: port 0xf4 is the debug-exit device we configure in QEMU; elsewhere the write is ignored.
    unsafe { asm!("out dx, eax", in("dx") 0xf4u16, in("eax") code, options(nomem, nostack)) };
    loop {
        // Safety: halting with interrupts off just stops this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
