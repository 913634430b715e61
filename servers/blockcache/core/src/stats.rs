//! Cache statistics (seed 3.3) and the tick source latencies are measured with.
//!
//! Design: counters are plain integers bumped on the request path; derived figures (hit rate,
//! averages, percentiles) are methods so a snapshot can be sent over IPC as-is. Time comes from a
//! [`Ticks`] source given at construction: the TSC on WATOS, `Instant` in host benchmarks, a fake
//! counter in tests, or [`NoTicks`] when nobody wants latencies. The unit is whatever the source
//! counts; the cache never converts it. Each kind of request's latencies go to a
//! `protocol::latency::Recorder` (exact count, total, min and max, and a log-scale histogram for
//! percentiles).

pub use protocol::latency::{NoTicks, Recorder as Latency, Ticks};

/// What the cache has done since it was created (or since [`reset`](Stats::reset)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Read requests served (a vectored read is one).
    pub reads: u64,
    /// Write requests served (a vectored write is one).
    pub writes: u64,
    /// Flush requests served.
    pub flushes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Block accesses found in the cache (a request touching three blocks makes three accesses).
    pub hits: u64,
    /// Block accesses that were not cached (reads that went to the device, writes that allocated).
    pub misses: u64,
    /// Blocks given up to make room.
    pub evictions: u64,
    /// Dirty blocks written to the device (on eviction, flush or in write-through).
    pub write_backs: u64,
    /// Write-backs that failed; those blocks stayed dirty.
    pub write_back_errors: u64,
    /// Dirty blocks now (a gauge, not a counter).
    pub dirty_blocks: u64,
    /// Blocks brought in by read-ahead.
    pub read_ahead_issued: u64,
    /// Read-ahead blocks that were later asked for.
    pub read_ahead_used: u64,
    /// Requests sent to the device (a vectored request is one), reads and writes.
    pub device_reads: u64,
    pub device_writes: u64,
    pub read_latency: Latency,
    pub write_latency: Latency,
    pub flush_latency: Latency,
}

impl Stats {
    /// Hits over block accesses, 0.0 before the first access.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }

    /// Zero every counter, keeping the dirty-block gauge.
    pub fn reset(&mut self) {
        *self = Stats { dirty_blocks: self.dirty_blocks, ..Stats::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_figures() {
        let mut s = Stats { hits: 3, misses: 1, dirty_blocks: 5, ..Stats::default() };
        assert_eq!(s.hit_rate(), 0.75);
        s.read_latency.record(10);
        s.read_latency.record(30);
        assert_eq!((s.read_latency.average(), s.read_latency.min_ticks, s.read_latency.max_ticks), (20, 10, 30));
        assert_eq!(Latency::default().average(), 0);
        s.reset();
        assert_eq!(s, Stats { dirty_blocks: 5, ..Stats::default() });
        assert_eq!(s.hit_rate(), 0.0);
    }
}
