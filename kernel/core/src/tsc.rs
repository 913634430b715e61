//! Monotonic time from the CPU's time-stamp counter, calibrated once at boot against the PIT.
//!
//! Design: counting timer interrupts loses time whenever interrupts are dropped or coalesced (QEMU's
//! TCG does both when the host deschedules it), so the kernel reads time from the TSC instead and
//! uses the PIT tick only as the moment to look at the clock. Calibration measures, a few times, how
//! many TSC cycles pass while the PIT (1 193 182 Hz, a fixed crystal) counts a known number of
//! periods; anything that delays the measuring loop only adds cycles, so the sample with the fewest
//! cycles per PIT period is the best estimate. A frequency outside `MIN_HZ..=MAX_HZ` is refused and
//! the kernel keeps counting ticks (`Clock::Ticks`). Conversion is a fixed-point multiply:
//! `ns = cycles * mult >> SHIFT` with `mult = 10^9 << SHIFT / hz`, computed in 128 bits, so the
//! product never overflows for any 64-bit cycle count; the result fits 64 bits for more than 500
//! years of uptime at any accepted frequency (saturating beyond). `mult` is rounded down, which keeps
//! the relative error below 1 / `mult` (< 2e-11 at any accepted frequency) and the function monotonic.

/// The PIT's input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// Slowest TSC accepted (anything slower is a broken measurement, not a CPU).
pub const MIN_HZ: u64 = 10_000_000;
/// Fastest TSC accepted.
pub const MAX_HZ: u64 = 20_000_000_000;
/// Fraction bits of the multiplier.
pub const SHIFT: u32 = 40;

/// Why a calibration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationError {
    /// No sample had a non-zero PIT interval and TSC delta.
    NoSamples,
    /// The best sample gives a frequency outside `MIN_HZ..=MAX_HZ` (the value, in Hz).
    Absurd(u64),
}

/// TSC frequency from samples of (TSC cycles elapsed, PIT periods elapsed over the same interval).
/// Samples with a zero in either are skipped; the one with the fewest cycles per PIT period wins.
pub fn calibrate(samples: &[(u64, u64)]) -> Result<u64, CalibrationError> {
    let best = samples
        .iter()
        .filter(|&&(cycles, periods)| cycles != 0 && periods != 0)
        .map(|&(cycles, periods)| (cycles as u128 * PIT_HZ as u128) / periods as u128)
        .min()
        .ok_or(CalibrationError::NoSamples)?;
    let hz = u64::try_from(best).unwrap_or(u64::MAX);
    if (MIN_HZ..=MAX_HZ).contains(&hz) {
        Ok(hz)
    } else {
        Err(CalibrationError::Absurd(hz))
    }
}

/// Cycles-to-nanoseconds conversion for one TSC frequency, relative to a base reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscClock {
    /// TSC value at monotonic time 0.
    pub base: u64,
    /// Calibrated frequency in Hz (kept for logging).
    pub hz: u64,
    mult: u64,
}

impl TscClock {
    /// A clock running at `hz` (must be a `calibrate` result: `MIN_HZ..=MAX_HZ`) that reads 0 at `base`.
    pub fn new(hz: u64, base: u64) -> Self {
        let hz = hz.clamp(MIN_HZ, MAX_HZ);
        // 10^9 << 40 / 10^7 < 2^47, so `cycles * mult` < 2^111 always fits in 128 bits.
        let mult = ((1_000_000_000u128 << SHIFT) / hz as u128) as u64;
        TscClock { base, hz, mult }
    }

    /// Nanoseconds since `base` at TSC reading `tsc` (0 for a reading before `base`).
    pub fn ns(&self, tsc: u64) -> u64 {
        let cycles = tsc.saturating_sub(self.base);
        let ns = (cycles as u128 * self.mult as u128) >> SHIFT;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// The kernel's monotonic clock: the TSC when calibration succeeded, else counted ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Tsc(TscClock),
    /// Nanoseconds per counted tick.
    Ticks(u64),
}

impl Clock {
    /// Monotonic nanoseconds given the current TSC reading and the number of ticks counted.
    pub fn now_ns(&self, tsc: u64, ticks: u64) -> u64 {
        match self {
            Clock::Tsc(c) => c.ns(tsc),
            Clock::Ticks(tick_ns) => ticks.saturating_mul(*tick_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_is_accurate_at_common_frequencies() {
        for hz in [MIN_HZ, 1_000_000_000, 2_399_987_654, 3_000_000_000, 5_000_000_000, MAX_HZ] {
            let c = TscClock::new(hz, 1000);
            assert_eq!(c.ns(1000), 0);
            // One second of cycles reads one second, within 1 ns per 10^9 (rounding of `mult`) + 1.
            let one_s = c.ns(1000 + hz);
            assert!((1_000_000_000 - 2..=1_000_000_000).contains(&one_s), "{hz} Hz: {one_s}");
            // An hour, within a microsecond.
            let hour = c.ns(1000 + hz * 3600);
            assert!(hour.abs_diff(3_600_000_000_000) < 1_000, "{hz} Hz: {hour}");
        }
    }

    #[test]
    fn readings_before_the_base_are_zero() {
        let c = TscClock::new(1_000_000_000, 5_000);
        assert_eq!(c.ns(0), 0);
        assert_eq!(c.ns(4_999), 0);
        assert_eq!(c.ns(5_001), 1);
    }

    #[test]
    fn conversion_is_monotonic() {
        let c = TscClock::new(2_999_999_999, 0);
        // Every small reading, then the whole 64-bit range with an odd stride.
        let small = 0..100_000u64;
        let large = (100_000..u64::MAX - 1_000_000_007).step_by(1_000_000_007_000).take(100_000);
        let mut last = 0;
        for tsc in small.chain(large) {
            let ns = c.ns(tsc);
            assert!(ns >= last, "{tsc}: {ns} < {last}");
            last = ns;
        }
    }

    #[test]
    fn no_overflow_for_centuries_and_saturation_at_the_end() {
        // Ten years at the fastest accepted frequency (the coarsest `mult`): within 10 ms.
        let c = TscClock::new(MAX_HZ, 0);
        let ten_years_s = 10 * 365 * 86_400u64;
        let ns = c.ns(MAX_HZ * ten_years_s);
        assert!(ns.abs_diff(ten_years_s * 1_000_000_000) < 10_000_000, "{ns}");
        // The whole 64-bit TSC range at the slowest frequency would exceed u64 ns: saturates.
        let slow = TscClock::new(MIN_HZ, 0);
        assert_eq!(slow.ns(u64::MAX), u64::MAX);
        // At the fastest, the whole range fits (2^64 / 2e10 Hz ≈ 29 years).
        let full = c.ns(u64::MAX);
        assert!(full < u64::MAX && full > 900_000_000 * 1_000_000_000);
    }

    #[test]
    fn calibration_arithmetic_from_counter_samples() {
        // 10 ms of PIT (11932 periods) at 3 GHz is 30_000_000 cycles (to within a period's rounding).
        assert_eq!(calibrate(&[(30_000_000, 11_932)]), Ok(30_000_000 * PIT_HZ / 11_932));
        let hz = calibrate(&[(30_000_000, 11_932)]).unwrap();
        assert!(hz.abs_diff(3_000_000_000) < 300_000, "{hz}");
        // The fastest sample (fewest cycles: least delayed) wins; zeros are skipped.
        let samples = [(31_000_000, 11_932), (0, 11_932), (30_000_000, 11_932), (25_000_000, 0), (45_000_000, 11_932)];
        assert_eq!(calibrate(&samples), Ok(hz));
        // Different interval lengths compare per period.
        assert_eq!(calibrate(&[(60_000_000, 23_864), (31_000_000, 11_932)]), Ok(60_000_000 * PIT_HZ / 23_864));
    }

    #[test]
    fn absurd_calibrations_are_refused() {
        assert_eq!(calibrate(&[]), Err(CalibrationError::NoSamples));
        assert_eq!(calibrate(&[(0, 100), (100, 0)]), Err(CalibrationError::NoSamples));
        // 100 cycles in 10 ms: 10 kHz.
        assert!(matches!(calibrate(&[(100, 11_932)]), Err(CalibrationError::Absurd(_))));
        // 1e12 cycles in one period.
        assert!(matches!(calibrate(&[(1_000_000_000_000, 1)]), Err(CalibrationError::Absurd(_))));
        assert!(matches!(calibrate(&[(u64::MAX, 1)]), Err(CalibrationError::Absurd(u64::MAX))));
    }

    #[test]
    fn clock_falls_back_to_ticks() {
        let ticks = Clock::Ticks(999_847);
        assert_eq!(ticks.now_ns(123_456_789, 3), 3 * 999_847);
        assert_eq!(ticks.now_ns(0, u64::MAX), u64::MAX);
        let tsc = Clock::Tsc(TscClock::new(1_000_000_000, 0));
        assert_eq!(tsc.now_ns(2_000, 999), 2_000);
    }
}
