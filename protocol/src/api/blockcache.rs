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

/// Cache statistics as the server reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub dirty_blocks: u64,
    pub readahead_blocks: u64,
    pub flushes: u64,
}

crate::interface! {
    version 1;
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
    /// Hit/miss and I/O counters.
    7 idempotent Stats fn stats() -> CacheStats;
}
