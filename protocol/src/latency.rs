//! Latency recording shared by the servers: a tick source, a recorder with a log-scale histogram,
//! the summary a server reports over IPC, error counters by kind, and tick-rate conversion.
//!
//! Design: a server reads a [`Ticks`] source (the TSC on WATOS, a fake counter in tests) before and
//! after the work it measures and feeds the difference to a [`Recorder`]. The recorder keeps the
//! exact count, total, minimum and maximum plus a histogram whose buckets split every power of two
//! into [`SUB_BUCKETS`] equal parts (values below `SUB_BUCKETS` get a bucket each), so recording is
//! O(1), memory is fixed (allocated on the first sample) and a percentile is read from the bucket
//! holding its rank: reported as that bucket's midpoint, clamped to [min, max], it is within half a
//! bucket, 1/16 (6.25 %) of the true value at that rank, and exact below `SUB_BUCKETS` ticks.
//! Servers send [`LatencySummary`] (count, min, mean, p50, p99, max), never the buckets, so a
//! summary of several kinds still fits one message. Ticks become time with the tick rate the server
//! measures ([`rate_hz`]: ticks over the monotonic clock's nanoseconds since it started), because
//! the kernel calibrates the TSC but does not publish its frequency.

use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::Error;

/// A monotonic tick counter.
pub trait Ticks {
    fn now(&mut self) -> u64;
    /// Ticks per second, 0 when unknown (a fake or absent clock).
    fn hz(&mut self) -> u64 {
        0
    }
}

impl<F: FnMut() -> u64> Ticks for F {
    fn now(&mut self) -> u64 {
        self()
    }
}

/// A clock that always reads 0: latencies stay 0 and cost nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTicks;

impl Ticks for NoTicks {
    fn now(&mut self) -> u64 {
        0
    }
}

/// Buckets per power of two (a power of two itself).
pub const SUB_BUCKETS: u64 = 8;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Buckets covering every `u64`: `SUB_BUCKETS` exact ones, then `SUB_BUCKETS` per power of two from
/// `SUB_BUCKETS` up.
const BUCKETS: usize = ((64 - SUB_BITS + 1) * SUB_BUCKETS as u32) as usize;

/// The bucket holding `v`.
fn bucket(v: u64) -> usize {
    if v < SUB_BUCKETS {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) & (SUB_BUCKETS - 1);
    ((exp - SUB_BITS + 1) as u64 * SUB_BUCKETS + sub) as usize
}

/// The smallest and largest value bucket `b` holds.
fn bucket_range(b: usize) -> (u64, u64) {
    let b = b as u64;
    if b < SUB_BUCKETS {
        return (b, b);
    }
    let shift = (b / SUB_BUCKETS - 1) as u32;
    let low = (SUB_BUCKETS + b % SUB_BUCKETS) << shift;
    (low, low + ((1u64 << shift) - 1))
}

/// Latencies of one kind of work, in ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorder {
    pub count: u64,
    /// Sum of every sample (saturating).
    pub total_ticks: u64,
    /// Smallest sample (0 before the first).
    pub min_ticks: u64,
    pub max_ticks: u64,
    /// Samples per bucket; empty until the first sample.
    buckets: Vec<u64>,
}

impl Recorder {
    pub fn record(&mut self, ticks: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
            self.min_ticks = ticks;
        }
        self.count += 1;
        self.total_ticks = self.total_ticks.saturating_add(ticks);
        self.min_ticks = self.min_ticks.min(ticks);
        self.max_ticks = self.max_ticks.max(ticks);
        self.buckets[bucket(ticks)] += 1;
    }

    /// Mean ticks per sample (0 when there were none).
    pub fn average(&self) -> u64 {
        self.total_ticks.checked_div(self.count).unwrap_or(0)
    }

    /// The `p`-th percentile (`p` in 1..=100; the smallest sample for 0): the midpoint of the
    /// bucket holding the sample of rank ceil(count * p / 100), clamped to [min, max]. 0 when empty.
    pub fn percentile(&self, p: u32) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let p = u128::from(p.min(100));
        let rank = ((u128::from(self.count) * p).div_ceil(100)).max(1) as u64;
        let mut seen = 0u64;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_range(b);
                return (low + (high - low) / 2).clamp(self.min_ticks, self.max_ticks);
            }
        }
        self.max_ticks
    }

    /// What a server reports.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            min: self.min_ticks,
            mean: self.average(),
            p50: self.percentile(50),
            p99: self.percentile(99),
            max: self.max_ticks,
        }
    }
}

/// One kind of work's latencies as a server reports them, in its ticks (TSC cycles on WATOS).
/// Wire size: six `u64` varints, at most 60 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: u64,
    /// Median and 99th percentile, each within 1/16 of a sample at that rank (see the module).
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// Ticks per second from `ticks` counted over `ns` nanoseconds of the monotonic clock (0 if no time
/// passed).
pub fn rate_hz(ticks: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000_000 / u128::from(ns)).min(u128::from(u64::MAX)) as u64
}

/// `ticks` at `hz` ticks per second, in nanoseconds (0 when the rate is unknown).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)).min(u128::from(u64::MAX)) as u64
}

/// How many replies failed, per [`Error`] kind (the kind's detail, such as a block number, ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCounts([u64; Error::KINDS]);

impl Default for ErrorCounts {
    fn default() -> Self {
        ErrorCounts([0; Error::KINDS])
    }
}

impl ErrorCounts {
    pub fn count(&mut self, e: &Error) {
        // `kind` is below `KINDS` for every error `ALL` lists; a kind added without its entry there
        // goes uncounted rather than faulting the server.
        if let Some(n) = self.0.get_mut(e.kind()) {
            *n += 1;
        }
    }

    /// How many errors of `e`'s kind.
    pub fn of(&self, e: &Error) -> u64 {
        self.0.get(e.kind()).copied().unwrap_or(0)
    }

    /// Every kind that occurred, with its count, in [`Error::ALL`] order (one representative
    /// error per kind, detail 0).
    pub fn nonzero(&self) -> Vec<(Error, u64)> {
        Error::ALL.iter().zip(self.0).filter(|(_, n)| *n > 0).map(|(e, n)| (*e, n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_every_value_in_order() {
        assert_eq!(BUCKETS, 496);
        let mut expect_low = 0u64;
        for b in 0..BUCKETS {
            let (low, high) = bucket_range(b);
            assert_eq!(low, expect_low, "bucket {b}");
            assert!(high >= low);
            assert_eq!((bucket(low), bucket(high)), (b, b));
            expect_low = high.wrapping_add(1);
        }
        assert_eq!(expect_low, 0, "the last bucket ends at u64::MAX");
        // Relative width: at most 1/8 of the bucket's smallest value past the exact ones.
        for b in SUB_BUCKETS as usize..BUCKETS {
            let (low, high) = bucket_range(b);
            assert!((high - low + 1) * SUB_BUCKETS <= low, "bucket {b}");
        }
    }

    #[test]
    fn an_empty_recorder_reports_zeros() {
        let r = Recorder::default();
        assert_eq!(r.summary(), LatencySummary::default());
        assert_eq!(r.percentile(99), 0);
    }

    #[test]
    fn min_max_count_and_mean_are_exact() {
        let mut r = Recorder::default();
        for v in [700, 3, 90_000, 5, 12_345] {
            r.record(v);
        }
        let s = r.summary();
        assert_eq!((s.count, s.min, s.max, s.mean), (5, 3, 90_000, (700 + 3 + 90_000 + 5 + 12_345) / 5));
        // One sample: every percentile is that sample, exactly (clamped to min = max).
        let mut one = Recorder::default();
        one.record(1_000_003);
        assert_eq!((one.percentile(1), one.percentile(50), one.percentile(99)), (1_000_003, 1_000_003, 1_000_003));
        // Small values are exact.
        let mut small = Recorder::default();
        for v in 0..8 {
            small.record(v);
        }
        assert_eq!((small.percentile(50), small.percentile(100), small.min_ticks), (3, 7, 0));
    }

    /// The estimate against the exact percentile of a sorted sample set.
    fn check_within_resolution(samples: &mut [u64]) {
        let mut r = Recorder::default();
        for &v in samples.iter() {
            r.record(v);
        }
        samples.sort_unstable();
        for p in [1u32, 50, 90, 99, 100] {
            let rank = (samples.len() as u64 * p as u64).div_ceil(100).max(1);
            let exact = samples[rank as usize - 1];
            let got = r.percentile(p);
            let err = got.abs_diff(exact);
            assert!(err * 16 <= exact.max(1) || err == 0, "p{p}: {got} vs {exact}");
        }
        let s = r.summary();
        assert!(s.min <= s.p50 && s.p50 <= s.p99 && s.p99 <= s.max);
    }

    #[test]
    fn percentiles_are_within_the_bucket_resolution() {
        // Uniform 1..=10_000.
        let mut uniform: Vec<u64> = (1..=10_000).collect();
        check_within_resolution(&mut uniform);
        // A fast mode and a slow tail: 98 % near 2_000, 2 % near 1_500_000 (p99 lands in the tail).
        let mut bimodal: Vec<u64> =
            (0..10_000u64).map(|i| if i % 50 == 0 { 1_500_000 + i } else { 2_000 + i % 97 }).collect();
        check_within_resolution(&mut bimodal);
        let mut r = Recorder::default();
        for &v in &bimodal {
            r.record(v);
        }
        assert!(r.percentile(50) < 2_200 && r.percentile(99) > 1_400_000);
        // Log-spread values from a generator.
        let mut spread: Vec<u64> = prng_values(5_000);
        check_within_resolution(&mut spread);
    }

    fn prng_values(n: usize) -> Vec<u64> {
        let mut g = prng::XorShift64(0x9e37_79b9_7f4a_7c15);
        (0..n).map(|_| (g.next_u64() >> g.below(50)) | 1).collect()
    }

    #[test]
    fn extreme_samples_do_not_overflow() {
        let mut r = Recorder::default();
        r.record(u64::MAX);
        r.record(u64::MAX);
        assert_eq!((r.total_ticks, r.average(), r.percentile(99)), (u64::MAX, u64::MAX / 2, u64::MAX));
    }

    #[test]
    fn closures_are_tick_sources_of_unknown_rate() {
        let mut t = 0u64;
        let mut clock = move || {
            t += 5;
            t
        };
        assert_eq!((Ticks::now(&mut clock), Ticks::now(&mut clock), clock.hz()), (5, 10, 0));
        assert_eq!((NoTicks.now(), NoTicks.hz()), (0, 0));
    }

    #[test]
    fn tick_rates_convert_both_ways() {
        assert_eq!(rate_hz(3_000_000_000, 1_000_000_000), 3_000_000_000);
        assert_eq!(rate_hz(5, 0), 0);
        assert_eq!(ticks_to_ns(3_000, 3_000_000_000), 1_000);
        assert_eq!(ticks_to_ns(3_000, 0), 0);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn errors_are_counted_by_kind_ignoring_their_detail() {
        let mut c = ErrorCounts::default();
        c.count(&Error::NotFound);
        c.count(&Error::NotFound);
        c.count(&Error::Io { offset: 4096 });
        c.count(&Error::Io { offset: 0 });
        assert_eq!((c.of(&Error::NotFound), c.of(&Error::Io { offset: 7 }), c.of(&Error::Busy)), (2, 2, 0));
        assert_eq!(c.nonzero(), vec![(Error::NotFound, 2), (Error::Io { offset: 0 }, 2)]);
    }
}
