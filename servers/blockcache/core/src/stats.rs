//! Cache statistics (seed 3.3) and the tick source latencies are measured with.
//!
//! Design: counters are plain integers bumped on the request path; derived figures (hit rate,
//! averages) are methods so a snapshot can be sent over IPC as-is. Time comes from a [`Ticks`]
//! source given at construction: a TSC or timer read on WATOS, `Instant` in host benchmarks, a fake
//! counter in tests, or [`NoTicks`] when nobody wants latencies. The unit is whatever the source
//! counts; the cache never converts it.

/// A monotonic tick counter.
pub trait Ticks {
    fn now(&mut self) -> u64;
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

/// Total ticks and count of one kind of request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub total_ticks: u64,
    pub max_ticks: u64,
}

impl Latency {
    pub(crate) fn record(&mut self, ticks: u64) {
        self.count += 1;
        self.total_ticks = self.total_ticks.saturating_add(ticks);
        self.max_ticks = self.max_ticks.max(ticks);
    }

    /// Mean ticks per request (0 when there were none).
    pub fn average(&self) -> u64 {
        self.total_ticks.checked_div(self.count).unwrap_or(0)
    }
}

/// What the cache has done since it was created (or since [`reset`](Stats::reset)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
        assert_eq!((s.read_latency.average(), s.read_latency.max_ticks), (20, 30));
        assert_eq!(Latency::default().average(), 0);
        s.reset();
        assert_eq!(s, Stats { dirty_blocks: 5, ..Stats::default() });
        assert_eq!(s.hit_rate(), 0.0);
    }

    #[test]
    fn closures_are_tick_sources() {
        let mut t = 0u64;
        let mut clock = move || {
            t += 5;
            t
        };
        assert_eq!((Ticks::now(&mut clock), Ticks::now(&mut clock)), (5, 10));
        assert_eq!(NoTicks.now(), 0);
    }
}
