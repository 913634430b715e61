//! Replacement policies: which cached block to give up when a slot is needed.
//!
//! Design: a policy sees only slot numbers (0..capacity) and block numbers, never data or dirtiness,
//! so the cache owns write-back and a policy cannot lose data. Every operation is O(1) (S3-FIFO's
//! `victim` is amortised O(1): each block is re-queued at most a bounded number of times per
//! eviction it survives). `victim` only names the slot; the cache writes the block back if needed
//! and then calls `remove(.., evicted = true)`, so a failed write-back leaves the policy untouched.

mod list;
mod lru;
mod s3fifo;

use alloc::boxed::Box;

pub use lru::Lru;
pub use s3fifo::S3Fifo;

/// The interface the cache drives its replacement policy through.
pub trait Policy {
    /// Short name for statistics and benchmark tables.
    fn name(&self) -> &'static str;
    /// `block` now lives in the free `slot`. `speculative` means read-ahead brought it in without
    /// anybody asking for it yet.
    fn insert(&mut self, slot: usize, block: u64, speculative: bool);
    /// How many read-ahead blocks the policy can hold before it starts evicting them unused; the
    /// cache keeps its read-ahead window within this.
    fn read_ahead_room(&self) -> usize;
    /// The block in `slot` was read or written.
    fn touch(&mut self, slot: usize);
    /// The read-ahead block in `slot` was asked for the first time. That is its first real access,
    /// not a reuse: a scan read ahead must not look like a hot set.
    fn first_use(&mut self, slot: usize);
    /// The slot to evict next, left in place; `None` when nothing is cached. May reorder internally.
    fn victim(&mut self) -> Option<usize>;
    /// `slot` no longer holds a block: `evicted` after a replacement, false when invalidated.
    fn remove(&mut self, slot: usize, evicted: bool);
}

/// The policies a cache can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Least recently used: the seed's baseline.
    Lru,
    /// S3-FIFO (SOSP'23): small probationary FIFO, main FIFO with reinsertion, ghost queue of ids.
    /// Scan-resistant: blocks seen once (scans, read-ahead) leave through the small queue.
    S3Fifo,
}

impl PolicyKind {
    /// A policy of this kind for `slots` cache slots.
    pub fn build(self, slots: usize) -> Box<dyn Policy + Send> {
        match self {
            PolicyKind::Lru => Box::new(Lru::new(slots)),
            PolicyKind::S3Fifo => Box::new(S3Fifo::new(slots)),
        }
    }
}
