//! blockcache-server interface: sector reads and writes with the data in leases, flush barrier, batches.
//!
//! Retry policy: reads and writes are idempotent (writing the same bytes to the same sectors twice is
//! harmless) and are re-sent after a restart; `flush` is not, because a restart may have lost dirty
//! blocks written before it: the client must learn that (see `Channel::restarts`) and re-send them.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One run of a vectored request: `sectors` sectors from `sector`. The runs' data lie back to back in
/// the lease, in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub sector: u64,
    pub sectors: u32,
}

/// Most runs in one vectored request (keeps the request inline).
pub const MAX_RUNS: usize = 64;

/// Count, total and worst case of one kind of request's latency, in the server's tick unit (whatever
/// its clock counts: TSC cycles on WATOS, nanoseconds on the host; 0 when it has no clock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub total_ticks: u64,
    pub max_ticks: u64,
}

impl LatencyStats {
    /// Mean ticks per request (0 when there were none).
    pub fn average(&self) -> u64 {
        self.total_ticks.checked_div(self.count).unwrap_or(0)
    }
}

/// Cache statistics as the server reports them: every counter the block cache keeps, as a snapshot.
///
/// Wire size: 24 `u64` varints (at most 10 bytes each) and two `u32` (at most 5) are at most 250
/// bytes, so with the reply's prefix and `Ok` tag the reply always fits the 256-byte inline message,
/// whatever the values. A test holds this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Read requests served (a vectored read is one).
    pub reads: u64,
    /// Write requests served (a vectored write is one).
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Block accesses found in the cache (a request touching three blocks makes three).
    pub hits: u64,
    /// Block accesses not cached (reads that went to the device, writes that allocated a block).
    pub misses: u64,
    /// Blocks given up to make room.
    pub evictions: u64,
    /// Dirty blocks now (a gauge).
    pub dirty_blocks: u64,
    /// Blocks brought in by read-ahead (the name predates `readahead_used`).
    pub readahead_blocks: u64,
    /// Flush requests served.
    pub flushes: u64,
    /// Read-ahead blocks that were later asked for.
    pub readahead_used: u64,
    /// Dirty blocks written to the device (eviction, flush or write-through).
    pub write_backs: u64,
    /// Write-backs that failed (those blocks stayed dirty).
    pub write_back_errors: u64,
    /// Requests sent to the device (a vectored request is one).
    pub device_reads: u64,
    pub device_writes: u64,
    pub read_latency: LatencyStats,
    pub write_latency: LatencyStats,
    pub flush_latency: LatencyStats,
    /// Blocks cached now (a gauge), saturated at `u32::MAX`.
    pub cached_blocks: u32,
    /// Blocks the cache can hold, saturated at `u32::MAX`.
    pub capacity_blocks: u32,
}

impl CacheStats {
    /// Hits over block accesses, 0.0 before the first access.
    pub fn hit_rate(&self) -> f64 {
        // With no accesses there are no hits either: 0 / 1.
        let accesses = self.hits.saturating_add(self.misses).max(1);
        self.hits as f64 / accesses as f64
    }
}

/// Latency summaries of the three kinds of request, with the rate of the ticks they are counted in.
///
/// Wire size: 19 `u64` varints, at most 190 bytes, so the reply always fits the 256-byte inline
/// message (a test holds this); it is its own operation because `CacheStats` has no room left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLatency {
    /// Ticks per second of the server's clock (TSC cycles on WATOS), 0 if unknown.
    pub tick_hz: u64,
    /// Reads, plain and vectored, each request one sample.
    pub read: crate::latency::LatencySummary,
    pub write: crate::latency::LatencySummary,
    pub flush: crate::latency::LatencySummary,
}

crate::interface! {
    // 2: `stats` replies with every cache counter (version 1 had ten of them).
    // 3: `latency` (min, mean, p50, p99, max per kind of request).
    version 3;
    /// Device size in sectors.
    1 idempotent SectorCount fn sector_count() -> u64;
    /// Fill the lease with the sectors starting at `sector` (its length must be whole sectors).
    2 idempotent Read fn read(sector: u64) leases(buf: Write) -> ();
    /// Write the lease's sectors starting at `sector`. Durable only after `flush`.
    3 idempotent Write fn write(sector: u64) leases(data: Read) -> ();
    /// Barrier: every write that returned before is durable.
    4 once Flush fn flush() -> ();
    /// Read several runs into one lease.
    5 idempotent ReadVectored fn read_vectored(runs: Vec<Run>) leases(buf: Write) -> ();
    /// Write several runs from one lease.
    6 idempotent WriteVectored fn write_vectored(runs: Vec<Run>) leases(data: Read) -> ();
    /// Every cache counter: requests, bytes, hits, misses, evictions, write-backs, read-ahead, device
    /// requests, latencies, occupancy.
    7 idempotent Stats fn stats() -> CacheStats;
    /// Latency summaries of reads, writes and flushes, and the tick rate.
    8 idempotent Latency fn latency() -> CacheLatency;
}
