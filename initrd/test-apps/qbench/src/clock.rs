//! Time for the benchmark: the TSC, converted to time on the host.
//!
//! Design: every duration is measured with `rdtsc` and reported in TSC ticks. The kernel's clock
//! (`monotonic_ns`) is no time base here: it counts PIT interrupts, and under QEMU TCG on a loaded
//! host interrupts that come late are lost, so it runs slow (by 30-55 % in our runs). Under TCG the
//! guest's TSC is the host's, so it keeps real time; its rate is not known inside the guest, so the
//! program prints `QBENCH-TSC <ticks>` marks and xtask divides the TSC's advance between the first
//! and the last mark by the host time between their arrival on the serial console. The rate against
//! the kernel's clock over the whole run ([`Stamp::kernel_rate`]) is printed too, to show how far that clock drifts.

use libwatos::sys;

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // Safety: rdtsc only reads the time-stamp counter (allowed in ring 3: CR4.TSD is clear); lfence
    // keeps it from being taken before earlier instructions finished.
    unsafe { core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

/// Prints a TSC mark for xtask's calibration.
pub fn mark() {
    libwatos::println!("QBENCH-TSC {}", rdtsc());
}

/// The kernel's clock and the TSC at one moment.
pub struct Stamp(u64, u64);

impl Stamp {
    pub fn now() -> Stamp {
        Stamp(sys::monotonic_ns(), rdtsc())
    }

    /// TSC ticks per microsecond of the kernel's clock since `self` (a diagnostic: see the module
    /// header; equal to the host-measured rate only if the kernel lost no timer interrupts).
    pub fn kernel_rate(&self) -> f64 {
        let now = Stamp::now();
        (now.1 - self.1) as f64 * 1000.0 / (now.0 - self.0).max(1) as f64
    }
}

/// Median and 99th percentile of `samples` (sorted in place); zeros if there are none.
pub fn percentiles(samples: &mut [u64]) -> (u64, u64) {
    if samples.is_empty() {
        return (0, 0);
    }
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[(samples.len() * 99 / 100).min(samples.len() - 1)])
}

/// The benchmark's offsets are reproducible from one seed.
pub use prng::XorShift64 as Rng;

/// The per-byte costs the servers pay, measured in this process under the same emulation: the
/// median over `runs` of copying `CHUNK` bytes, and of the two block checksums WFS knows over them
/// (XXH64, the default, and crc32). Printed as `QBENCH all copy_1mib_ticks`, `xxh64_1mib_ticks` and
/// `crc32_1mib_ticks`.
pub fn per_byte_costs(runs: usize) {
    let src = libwatos::service::pattern(7, crate::data::CHUNK);
    let mut dst = alloc::vec![0u8; crate::data::CHUNK];
    let (mut copy, mut xxh, mut crc) = (alloc::vec![0u64; runs], alloc::vec![0u64; runs], alloc::vec![0u64; runs]);
    let mut sum = 0u64;
    for i in 0..runs {
        let t0 = rdtsc();
        dst.copy_from_slice(&src);
        let t1 = rdtsc();
        // Folded into a printed value, so the compiler cannot drop the work.
        sum ^= xxhash_rust::xxh64::xxh64(&dst, 0);
        let t2 = rdtsc();
        sum ^= u64::from(crc32fast::hash(&dst));
        let t3 = rdtsc();
        (copy[i], xxh[i], crc[i]) = (t1 - t0, t2 - t1, t3 - t2);
    }
    libwatos::println!("QBENCH all copy_1mib_ticks {}", percentiles(&mut copy).0);
    libwatos::println!("QBENCH all xxh64_1mib_ticks {}", percentiles(&mut xxh).0);
    libwatos::println!("QBENCH all crc32_1mib_ticks {}", percentiles(&mut crc).0);
    libwatos::println!("qbench: per-byte probe done ({sum:#x})");
}
