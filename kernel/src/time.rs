//! The kernel's clock on the hardware: reading the TSC and calibrating it against PIT channel 2.
//!
//! Design: calibration runs once at boot, before interrupts are enabled. Channel 2 (the speaker
//! channel, whose gate the kernel controls through port 0x61 and whose output it can read back there)
//! is programmed in mode 0 (interrupt on terminal count) with a 10 ms count, and the TSC is read
//! before the count is written and after OUT2 rises. That is repeated `SAMPLES` times; the pure
//! `kernel_core::tsc::calibrate` keeps the least delayed sample and refuses absurd results, in which
//! case the kernel counts ticks as before. Under QEMU both the PIT and the TSC follow the host's
//! clock, so a calibration stretched by the host descheduling QEMU is still consistent.

use crate::serial::{inb, outb};
use kernel_core::tsc::{self, CalibrationError, TscClock};

/// PIT periods per calibration sample: 10 ms.
const PERIODS: u16 = 11_932;
/// Calibration samples taken (the least delayed one is used).
const SAMPLES: usize = 5;
/// Polls of OUT2 before a sample is given up (a PIT that never fires must not hang the boot).
const MAX_POLLS: u64 = 50_000_000;

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // Safety: RDTSC only reads a counter; `has_tsc` was checked before any reading is used.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CPUID says the TSC exists (leaf 1, EDX bit 4), and whether it is invariant (0x8000_0007, EDX bit 8).
fn tsc_features() -> (bool, bool) {
    let has = core::arch::x86_64::__cpuid(1).edx & (1 << 4) != 0;
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    let invariant = max_ext >= 0x8000_0007 && core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0;
    (has, invariant)
}

/// One sample: (TSC cycles, PIT periods) while channel 2 counts `PERIODS` down; (0, 0) on timeout.
fn sample() -> (u64, u64) {
    // Gate 2 high, speaker off.
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    // Channel 2, low then high byte, mode 0, binary.
    outb(0x43, 0xB0);
    let start = rdtsc();
    outb(0x42, PERIODS as u8);
    outb(0x42, (PERIODS >> 8) as u8);
    for _ in 0..MAX_POLLS {
        if inb(0x61) & 0x20 != 0 {
            return (rdtsc() - start, PERIODS as u64);
        }
    }
    (0, 0)
}

/// Calibrates the TSC and returns the clock reading 0 now, or why the kernel must count ticks.
pub fn calibrate() -> Result<TscClock, &'static str> {
    let (has, invariant) = tsc_features();
    if !has {
        return Err("the CPU has no TSC");
    }
    let mut samples = [(0, 0); SAMPLES];
    for s in samples.iter_mut() {
        *s = sample();
    }
    match tsc::calibrate(&samples) {
        Ok(hz) => {
            klog!(
                "TSC: {}.{:03} MHz calibrated against the PIT (best of {SAMPLES} x 10 ms{}); monotonic time follows it",
                hz / 1_000_000,
                hz / 1_000 % 1_000,
                if invariant { ", invariant" } else { ", not reported invariant" }
            );
            Ok(TscClock::new(hz, rdtsc()))
        }
        Err(CalibrationError::NoSamples) => Err("PIT channel 2 never reached its terminal count"),
        Err(CalibrationError::Absurd(hz)) => {
            klog!("TSC: calibration gave an absurd {hz} Hz");
            Err("absurd calibration")
        }
    }
}
