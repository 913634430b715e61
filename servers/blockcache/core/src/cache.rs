//! The cache's state and its slot management: lookup, allocation, eviction and write-back.
//!
//! Design: slot `i` owns bytes `i*4096..(i+1)*4096` of one flat buffer; `index` maps block number to
//! slot and holds exactly the valid slots; `dirty` is the sorted set of dirty block numbers (always a
//! subset of the index), which makes both "all dirty blocks in ascending order" for flush and "the
//! dirty neighbours of this block" for eviction cheap. Every path that writes dirty data to the device
//! marks a block clean only after the device accepted it. The request paths are in `io.rs`.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use blockdev::{BlockDevice, Error, Result, SECTOR_SIZE};

use crate::config::{Config, WriteMode};
use crate::io::ReadAheadState;
use crate::map::BlockMap;
use crate::policy::Policy;
use crate::stats::{NoTicks, Stats, Ticks};
use crate::{BLOCK_SIZE, SECTORS_PER_BLOCK};

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    pub(crate) block: u64,
    pub(crate) dirty: bool,
    /// Brought in by read-ahead and not asked for yet.
    pub(crate) speculative: bool,
}

/// A write-back block cache over a sector device; itself a [`BlockDevice`].
pub struct BlockCache<D: BlockDevice, T: Ticks = NoTicks> {
    pub(crate) dev: D,
    pub(crate) clock: T,
    pub(crate) cfg: Config,
    pub(crate) policy: Box<dyn Policy + Send>,
    /// Device size in sectors and in (possibly short-ended) blocks.
    pub(crate) sectors: u64,
    pub(crate) blocks: u64,
    pub(crate) data: Vec<u8>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) index: BlockMap<u32>,
    pub(crate) free: Vec<u32>,
    pub(crate) dirty: BTreeSet<u64>,
    /// Bounce buffer for reads (misses, read-ahead): runs of adjacent blocks land here in one request.
    pub(crate) scratch: Vec<u8>,
    /// Bounce buffer for write-back, separate because eviction can happen while `scratch` is full.
    pub(crate) wb: Vec<u8>,
    pub(crate) ra: ReadAheadState,
    pub(crate) stats: Stats,
}

impl<D: BlockDevice> BlockCache<D, NoTicks> {
    /// A cache over `dev` that does not measure latency.
    pub fn new(dev: D, cfg: Config) -> Result<Self> {
        Self::with_clock(dev, cfg, NoTicks)
    }
}

impl<D: BlockDevice, T: Ticks> BlockCache<D, T> {
    /// A cache over `dev` measuring latencies with `clock`. Capacity and batch size must be at
    /// least one block, and the capacity must fit slot numbers in 32 bits.
    pub fn with_clock(dev: D, cfg: Config, clock: T) -> Result<Self> {
        let cap = cfg.capacity_blocks;
        if cap == 0 || cap >= u32::MAX as usize || cfg.max_batch_blocks == 0 {
            return Err(Error::InvalidArgument);
        }
        if cfg.read_ahead.is_some_and(|ra| ra.initial == 0 || ra.max < ra.initial) {
            return Err(Error::InvalidArgument);
        }
        let batch = cfg.max_batch_blocks.checked_mul(BLOCK_SIZE).ok_or(Error::InvalidArgument)?;
        let bytes = cap.checked_mul(BLOCK_SIZE).ok_or(Error::InvalidArgument)?;
        let sectors = dev.sector_count();
        Ok(BlockCache {
            policy: cfg.policy.build(cap),
            blocks: sectors.div_ceil(SECTORS_PER_BLOCK),
            sectors,
            data: vec![0; bytes],
            slots: vec![Slot::default(); cap],
            index: BlockMap::default(),
            // Reversed so slot 0 is handed out first (only matters for readable tests).
            free: (0..cap as u32).rev().collect(),
            dirty: BTreeSet::new(),
            scratch: vec![0; batch],
            wb: vec![0; batch],
            ra: ReadAheadState::default(),
            stats: Stats::default(),
            dev,
            clock,
            cfg,
        })
    }

    /// Counters so far, with the current number of dirty blocks.
    pub fn stats(&self) -> Stats {
        Stats { dirty_blocks: self.dirty.len() as u64, ..self.stats.clone() }
    }

    /// Ticks per second of the latency clock (0 if unknown).
    pub fn tick_hz(&mut self) -> u64 {
        self.clock.hz()
    }

    pub fn reset_stats(&mut self) {
        self.stats.reset();
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Name of the replacement policy.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Blocks cached now.
    pub fn cached_blocks(&self) -> usize {
        self.index.len()
    }

    /// True if `block` is cached.
    pub fn contains(&self, block: u64) -> bool {
        self.index.contains_key(&block)
    }

    pub fn inner(&self) -> &D {
        &self.dev
    }

    /// The device underneath. Writing to it directly bypasses the cache: call
    /// [`invalidate_clean`](Self::invalidate_clean) afterwards or the cache may serve stale data.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Flush everything and hand back the device. If the flush fails nothing is lost: the error
    /// comes back with the cache, dirty blocks and all.
    pub fn into_inner(mut self) -> core::result::Result<D, (Error, Box<Self>)> {
        match self.flush() {
            Ok(()) => Ok(self.dev),
            Err(e) => Err((e, Box::new(self))),
        }
    }

    /// Forget every clean block (dirty ones stay: they are the only copy).
    pub fn invalidate_clean(&mut self) {
        let clean: Vec<u64> =
            self.index.iter().filter(|(_, &s)| !self.slots[s as usize].dirty).map(|(&b, _)| b).collect();
        for b in clean {
            self.invalidate(b);
        }
    }

    /// Write every dirty block to the device (ascending, coalesced, batched), without a barrier.
    pub fn write_back(&mut self) -> Result<()> {
        let dirty: Vec<u64> = self.dirty.iter().copied().collect();
        let max = self.cfg.max_batch_blocks;
        let mut i = 0;
        while i < dirty.len() {
            let end = (i + max).min(dirty.len());
            self.write_blocks(&dirty[i..end])?;
            i = end;
        }
        Ok(())
    }

    /// Bytes in `block` (the device's last block may be short).
    pub(crate) fn block_len(&self, block: u64) -> usize {
        block_len(self.sectors, block)
    }

    pub(crate) fn lookup(&self, block: u64) -> Option<usize> {
        self.index.get(&block).map(|&s| s as usize)
    }

    pub(crate) fn slot_bytes(&mut self, slot: usize) -> &mut [u8] {
        &mut self.data[slot * BLOCK_SIZE..(slot + 1) * BLOCK_SIZE]
    }

    /// Look `block` up for a demand access: a hit is accounted on its slot (see [`hit`](Self::hit)),
    /// a miss is counted; the caller handles the miss.
    pub(crate) fn access(&mut self, block: u64) -> Option<usize> {
        let slot = self.lookup(block);
        match slot {
            Some(slot) => self.hit(slot),
            None => self.stats.misses += 1,
        }
        slot
    }

    /// Account a cache hit on `slot`.
    pub(crate) fn hit(&mut self, slot: usize) {
        self.stats.hits += 1;
        let s = &mut self.slots[slot];
        if s.speculative {
            s.speculative = false;
            self.stats.read_ahead_used += 1;
            self.policy.first_use(slot);
        } else {
            self.policy.touch(slot);
        }
    }

    /// A free slot, evicting (and first writing back) a block if none is free. On a write-back
    /// error nothing changes and the error is returned.
    pub(crate) fn alloc(&mut self) -> Result<usize> {
        if let Some(s) = self.free.pop() {
            return Ok(s as usize);
        }
        let victim = self.policy.victim().ok_or(Error::Busy)?;
        if self.slots[victim].dirty {
            self.write_back_around(victim)?;
        }
        self.policy.remove(victim, true);
        self.index.remove(&self.slots[victim].block);
        self.stats.evictions += 1;
        Ok(victim)
    }

    /// Give back a slot from `alloc` that was never installed.
    pub(crate) fn unalloc(&mut self, slot: usize) {
        self.free.push(slot as u32);
    }

    /// Make `slot` (whose bytes the caller fills) hold `block`.
    pub(crate) fn install(&mut self, slot: usize, block: u64, dirty: bool, speculative: bool) {
        self.slots[slot] = Slot { block, dirty: false, speculative };
        self.index.insert(block, slot as u32);
        self.policy.insert(slot, block, speculative);
        if dirty {
            self.mark_dirty(slot);
        }
    }

    pub(crate) fn mark_dirty(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if !s.dirty {
            s.dirty = true;
            self.dirty.insert(s.block);
        }
    }

    /// Drop `block` from the cache if present. Only for clean blocks (or data the caller has
    /// just written elsewhere).
    pub(crate) fn invalidate(&mut self, block: u64) {
        if let Some(slot) = self.index.remove(&block) {
            let slot = slot as usize;
            self.policy.remove(slot, false);
            if self.slots[slot].dirty {
                self.dirty.remove(&block);
            }
            self.slots[slot] = Slot::default();
            self.free.push(slot as u32);
        }
    }

    /// Write back the dirty block in `slot` and its dirty neighbours, as one request of at most
    /// `max_batch_blocks` blocks.
    fn write_back_around(&mut self, slot: usize) -> Result<()> {
        let block = self.slots[slot].block;
        let max = self.cfg.max_batch_blocks as u64;
        let mut start = block;
        while start > 0 && block - start + 1 < max && self.dirty.contains(&(start - 1)) {
            start -= 1;
        }
        let mut end = block + 1;
        while end - start < max && self.dirty.contains(&end) {
            end += 1;
        }
        let run: Vec<u64> = (start..end).collect();
        self.write_blocks(&run)
    }

    /// Write the given dirty blocks (ascending, at most `max_batch_blocks`) with one vectored
    /// request whose runs are the adjacent ones, then mark them clean.
    fn write_blocks(&mut self, blocks: &[u64]) -> Result<()> {
        debug_assert!(blocks.len() <= self.cfg.max_batch_blocks);
        for (i, &b) in blocks.iter().enumerate() {
            let slot = self.index[&b] as usize;
            let len = self.block_len(b);
            self.wb[i * BLOCK_SIZE..i * BLOCK_SIZE + len].copy_from_slice(&self.data[slot * BLOCK_SIZE..][..len]);
        }
        let sectors = self.sectors;
        let mut runs: Vec<(u64, &[u8])> = Vec::new();
        let mut rest: &[u8] = &self.wb;
        for (first, n) in adjacent_runs(blocks) {
            let (run, tail) = rest.split_at(n * BLOCK_SIZE);
            let bytes = (n - 1) * BLOCK_SIZE + block_len(sectors, first + n as u64 - 1);
            runs.push((first * SECTORS_PER_BLOCK, &run[..bytes]));
            rest = tail;
        }
        let result = self.dev.write_vectored(&runs);
        self.stats.device_writes += 1;
        if let Err(e) = result {
            self.stats.write_back_errors += 1;
            return Err(e);
        }
        for &b in blocks {
            let slot = self.index[&b] as usize;
            self.slots[slot].dirty = false;
            self.dirty.remove(&b);
        }
        self.stats.write_backs += blocks.len() as u64;
        Ok(())
    }

    /// Flush: every dirty block to the device, then the device's own barrier.
    pub(crate) fn flush_all(&mut self) -> Result<()> {
        if self.cfg.write_mode == WriteMode::WriteBack {
            self.write_back()?;
        }
        self.dev.flush()
    }
}

/// Bytes in `block` of a device of `sectors` sectors.
pub(crate) fn block_len(sectors: u64, block: u64) -> usize {
    let first = block * SECTORS_PER_BLOCK;
    (sectors.saturating_sub(first).min(SECTORS_PER_BLOCK)) as usize * SECTOR_SIZE
}

/// Split ascending block numbers into (first, count) runs of consecutive blocks.
pub(crate) fn adjacent_runs(blocks: &[u64]) -> impl Iterator<Item = (u64, usize)> + '_ {
    let mut i = 0;
    core::iter::from_fn(move || {
        let first = *blocks.get(i)?;
        let mut n = 1;
        while blocks.get(i + n) == Some(&(first + n as u64)) {
            n += 1;
        }
        i += n;
        Some((first, n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_adjacent_blocks() {
        let r: Vec<(u64, usize)> = adjacent_runs(&[1, 2, 3, 7, 9, 10]).collect();
        assert_eq!(r, [(1, 3), (7, 1), (9, 2)]);
        assert_eq!(adjacent_runs(&[]).count(), 0);
    }

    #[test]
    fn short_last_block() {
        assert_eq!(block_len(20, 0), 4096);
        assert_eq!(block_len(20, 2), 4 * 512);
        assert_eq!(block_len(20, 3), 0);
    }
}
