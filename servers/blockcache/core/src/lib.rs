//! blockcache: the block cache at the core of blockcache-server.
//!
//! Design: [`BlockCache`] wraps any [`blockdev::BlockDevice`] and is one itself, so a filesystem runs
//! the same with or without it. It caches 4 KiB blocks (eight 512-byte sectors; the last block of a
//! device whose size is not a multiple of 4 KiB is short) in a fixed array of slots allocated once.
//! Requests may start and end on any sector: partial blocks are read-modify-written.
//!
//! - Replacement is a [`Policy`] over slot numbers, chosen at construction: LRU, the seed's baseline,
//!   or S3-FIFO, which is scan-resistant. Both are O(1); the index is a hash map (hashbrown, the
//!   standard no_std Swiss table).
//! - Write-back by default: a dirty block is never dropped. Before it is evicted it is written back
//!   together with the dirty blocks adjacent to it, as one device request; `flush` writes every dirty
//!   block in ascending order, coalesced into runs and batched into vectored requests, then flushes
//!   the device, so when `flush` returns everything written before it is durable. If the device fails
//!   a write-back the blocks stay dirty and the error is returned (or, when only a read needed the
//!   slot, the block is simply not cached and the next flush reports it). Write-through is an option.
//! - Read-ahead detects sequential reads and fetches a window ahead that grows from 4 to 64 blocks;
//!   read-ahead blocks enter S3-FIFO's small queue, and their first demand read counts as their
//!   first use, not a reuse, so a scan read ahead leaves through that queue without pushing out the
//!   hot set.
//! - Batch I/O: the misses of one request (or of a vectored request) are read with one vectored device
//!   request whose runs are the adjacent missing blocks.
//! - [`Stats`] counts requests, bytes, hits, misses, evictions, write-backs, dirty blocks, read-ahead
//!   and device requests, with latencies measured by a [`Ticks`] source given at construction.
//!
//! Around the cache sit its two IPC adapters: [`CacheServer`] serves a cache over the generated
//! blockcache interface, and [`RemoteBlockDevice`] is the client side, a `BlockDevice` whose sectors
//! live behind a blockcache server (what wfs-server and fat-server mount).
//!
//! The cache is single-threaded (the server's IPC loop owns it); it never panics on bad requests:
//! misaligned or out-of-range ones get `Error::InvalidArgument`, device failures `Error::Io`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod cache;
mod config;
mod io;
mod map;
pub mod policy;
mod remote;
mod serve;
mod stats;

pub use cache::BlockCache;
pub use config::{Config, ReadAhead, WriteMode};
pub use policy::{Policy, PolicyKind};
pub use remote::RemoteBlockDevice;
pub use serve::{cache_stats, CacheServer};
pub use stats::{Latency, NoTicks, Stats, Ticks};

/// Cache block size in bytes.
pub const BLOCK_SIZE: usize = 4096;
/// Device sectors per cache block.
pub const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE / blockdev::SECTOR_SIZE) as u64;
