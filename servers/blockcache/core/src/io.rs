//! The request paths: read, write, flush (the cache's `BlockDevice` implementation) and read-ahead.
//!
//! Design: a request is a list of runs (sector, buffer); a plain read or write is a list of one.
//! Reads first copy every cached block out, then fetch all the missing blocks of the whole request
//! in chunks of `max_batch_blocks`, each chunk one vectored device read whose runs are the adjacent
//! missing blocks, and only then insert them into the cache. A missing block that the request wants
//! whole (and only once) is read straight into the caller's buffer; partial ones go through a bounce
//! buffer. So a miss costs one device request per chunk however many blocks it spans, and inserting
//! (which may evict) can never disturb data the request still needs. A read that cannot cache a block because evicting a
//! dirty victim failed still succeeds: the victim stays dirty and the next flush reports the error.
//!
//! Writes in write-back mode update cached blocks in place; a block not cached is allocated without
//! reading it if the write covers it whole, or read first (read-modify-write) if not. In write-through
//! mode the caller's runs go to the device first, unchanged (they are whole sectors already), and
//! the cache keeps clean copies; if the device fails, the blocks concerned are dropped from the cache
//! so it can never serve data the device may not hold.
//!
//! Read-ahead follows a single sequential stream: a read starting at the sector where the previous
//! read ended continues it (so does a first read of sector 0); re-reading a hot block does not.
//! When half a window or less is prefetched ahead of the reader, the next window past the
//! prefetched blocks is fetched in one request and the window doubles, up to the maximum, and up to
//! two thirds of the policy's read-ahead room (half the cache for LRU, the small queue for S3-FIFO)
//! so prefetched blocks are not evicted before they are read. Read-ahead failures are ignored: it
//! is only a guess.

use alloc::vec::Vec;
use core::ops::Range;

use blockdev::{check_request, BlockDevice, Result, SECTOR_SIZE};

use crate::cache::{adjacent_runs, block_len, BlockCache};
use crate::config::WriteMode;
use crate::stats::Ticks;
use crate::{BLOCK_SIZE, SECTORS_PER_BLOCK};

/// The sequential stream being followed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadAheadState {
    /// Sector a continuing read starts at.
    next_sector: u64,
    /// Current window in blocks; 0 when no stream is followed.
    window: u64,
    /// One past the last block prefetched.
    end: u64,
}

/// The blocks a request of `len` bytes at `sector` touches.
fn blocks_of(sector: u64, len: usize) -> Range<u64> {
    if len == 0 {
        return 0..0;
    }
    let last = sector + (len / SECTOR_SIZE) as u64 - 1;
    sector / SECTORS_PER_BLOCK..last / SECTORS_PER_BLOCK + 1
}

/// Where a request at `sector` of `len` bytes and `block` (of `block_len` bytes) overlap:
/// (range in the request's buffer, range in the block).
fn overlap(sector: u64, len: usize, block: u64, block_len: usize) -> (Range<usize>, Range<usize>) {
    let req_start = sector * SECTOR_SIZE as u64;
    let blk_start = block * BLOCK_SIZE as u64;
    let lo = req_start.max(blk_start);
    let hi = (req_start + len as u64).min(blk_start + block_len as u64);
    let (a, b) = ((lo - req_start) as usize, (hi - req_start) as usize);
    let (c, d) = ((lo - blk_start) as usize, (hi - blk_start) as usize);
    (a..b, c..d)
}

impl<D: BlockDevice, T: Ticks> BlockCache<D, T> {
    fn check_runs<'a>(&self, runs: impl Iterator<Item = (u64, usize)> + 'a) -> Result<()> {
        for (sector, len) in runs {
            check_request(self.sectors, sector, len)?;
        }
        Ok(())
    }

    fn read_runs(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        self.check_runs(runs.iter().map(|(s, b)| (*s, b.len())))?;
        // Pass 1: serve what is cached; note (block, run) pairs that are not.
        let mut missing: Vec<(u64, usize)> = Vec::new();
        for (i, (sector, buf)) in runs.iter_mut().enumerate() {
            for block in blocks_of(*sector, buf.len()) {
                match self.access(block) {
                    Some(slot) => {
                        let (dst, src) = overlap(*sector, buf.len(), block, self.block_len(block));
                        buf[dst].copy_from_slice(&self.data[slot * BLOCK_SIZE..][src]);
                    }
                    None => missing.push((block, i)),
                }
            }
        }
        // Pass 2: fetch the missing blocks, a chunk of distinct blocks per device request.
        missing.sort_unstable();
        let chunk_max = self.cfg.max_batch_blocks.min(self.cfg.capacity_blocks);
        let mut k = 0;
        while k < missing.len() {
            let from = k;
            let mut blocks: Vec<u64> = Vec::new();
            while k < missing.len() && (blocks.last() == Some(&missing[k].0) || blocks.len() < chunk_max) {
                if blocks.last() != Some(&missing[k].0) {
                    blocks.push(missing[k].0);
                }
                k += 1;
            }
            // A block only one run wants, and wants whole, is read straight into that run's buffer
            // (then copied into the cache): one copy fewer than going through `scratch`.
            let direct: Vec<Option<(usize, usize)>> = blocks
                .iter()
                .map(|&block| {
                    let mut users = missing[from..k].iter().filter(|m| m.0 == block);
                    let (_, i) = *users.next()?;
                    if users.next().is_some() {
                        return None;
                    }
                    let blen = self.block_len(block);
                    let (dst, src) = overlap(runs[i].0, runs[i].1.len(), block, blen);
                    (src.len() == blen).then_some((i, dst.start))
                })
                .collect();
            self.fetch_into(&blocks, &direct, runs)?;
            for &(block, i) in &missing[from..k] {
                let pos = blocks.binary_search(&block).unwrap_or(0);
                if direct[pos].is_some() {
                    continue;
                }
                let (sector, buf) = &mut runs[i];
                let (dst, src) = overlap(*sector, buf.len(), block, self.block_len(block));
                buf[dst].copy_from_slice(&self.scratch[pos * BLOCK_SIZE..][src]);
            }
            for (pos, &block) in blocks.iter().enumerate() {
                // No slot (a dirty victim failed to write back): the data was delivered anyway.
                let Ok(slot) = self.alloc() else { break };
                let len = self.block_len(block);
                let from_buf = match direct[pos] {
                    Some((i, off)) => &runs[i].1[off..off + len],
                    None => &self.scratch[pos * BLOCK_SIZE..][..len],
                };
                self.data[slot * BLOCK_SIZE..][..len].copy_from_slice(from_buf);
                self.install(slot, block, false, false);
            }
        }
        Ok(())
    }

    /// Read `blocks` (ascending, distinct, at most `max_batch_blocks`) with one vectored device
    /// request: block `p` into `runs[i]` at byte `off` if `direct[p]` is `Some((i, off))`, else into
    /// `scratch` at `p * BLOCK_SIZE`. Adjacent blocks with adjacent destinations form one run.
    fn fetch_into(
        &mut self,
        blocks: &[u64],
        direct: &[Option<(usize, usize)>],
        runs: &mut [(u64, &mut [u8])],
    ) -> Result<()> {
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut p = 0;
        while p < blocks.len() {
            let mut n = 1;
            while p + n < blocks.len()
                && blocks[p + n] == blocks[p] + n as u64
                && match (direct[p], direct[p + n]) {
                    (None, None) => true,
                    (Some((i, off)), Some((j, off2))) => i == j && off2 == off + n * BLOCK_SIZE,
                    _ => false,
                }
            {
                n += 1;
            }
            groups.push((p, n));
            p += n;
        }
        let sectors = self.sectors;
        let bytes = |p: usize, n: usize| (n - 1) * BLOCK_SIZE + block_len(sectors, blocks[p + n - 1]);
        let mut dev_runs: Vec<(u64, &mut [u8])> = Vec::with_capacity(groups.len());
        // Pieces of scratch, in ascending position.
        let mut rest: &mut [u8] = &mut self.scratch;
        let mut at = 0;
        for &(p, n) in groups.iter().filter(|g| direct[g.0].is_none()) {
            let (_, tail) = core::mem::take(&mut rest).split_at_mut(p * BLOCK_SIZE - at);
            let (piece, tail) = tail.split_at_mut(n * BLOCK_SIZE);
            rest = tail;
            at = (p + n) * BLOCK_SIZE;
            dev_runs.push((blocks[p] * SECTORS_PER_BLOCK, &mut piece[..bytes(p, n)]));
        }
        // Pieces of the callers' buffers, in (run, offset) order so each buffer is split front to back.
        let mut pieces: Vec<(usize, usize, usize, usize)> =
            groups.iter().filter_map(|&(p, n)| direct[p].map(|(i, off)| (i, off, p, n))).collect();
        pieces.sort_unstable();
        let mut next = pieces.iter().peekable();
        for (i, (_, buf)) in runs.iter_mut().enumerate() {
            let mut rest: &mut [u8] = buf;
            let mut at = 0;
            while let Some(&(_, off, p, n)) = next.next_if(|piece| piece.0 == i) {
                let (_, tail) = core::mem::take(&mut rest).split_at_mut(off - at);
                let (piece, tail) = tail.split_at_mut(bytes(p, n));
                rest = tail;
                at = off + bytes(p, n);
                dev_runs.push((blocks[p] * SECTORS_PER_BLOCK, piece));
            }
        }
        self.stats.device_reads += 1;
        self.dev.read_vectored(&mut dev_runs)
    }

    /// Read `blocks` (ascending, distinct, at most `max_batch_blocks`) into `scratch`, block `i` at
    /// `i * BLOCK_SIZE`, with one vectored device request.
    fn fetch(&mut self, blocks: &[u64]) -> Result<()> {
        let sectors = self.sectors;
        let mut runs: Vec<(u64, &mut [u8])> = Vec::new();
        let mut rest: &mut [u8] = &mut self.scratch;
        for (first, n) in adjacent_runs(blocks) {
            let (run, tail) = core::mem::take(&mut rest).split_at_mut(n * BLOCK_SIZE);
            let bytes = (n - 1) * BLOCK_SIZE + block_len(sectors, first + n as u64 - 1);
            runs.push((first * SECTORS_PER_BLOCK, &mut run[..bytes]));
            rest = tail;
        }
        self.stats.device_reads += 1;
        self.dev.read_vectored(&mut runs)
    }

    /// Insert blocks just fetched into `scratch`. Stops quietly if no slot can be freed (a dirty
    /// victim failed to write back): the data was delivered, caching it is only an optimisation.
    fn cache_fetched(&mut self, blocks: &[u64], speculative: bool) -> usize {
        for (pos, &block) in blocks.iter().enumerate() {
            let Ok(slot) = self.alloc() else { return pos };
            let len = self.block_len(block);
            self.data[slot * BLOCK_SIZE..][..len].copy_from_slice(&self.scratch[pos * BLOCK_SIZE..][..len]);
            self.install(slot, block, false, speculative);
        }
        blocks.len()
    }

    fn write_runs(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        self.check_runs(runs.iter().map(|(s, b)| (*s, b.len())))?;
        if self.cfg.write_mode == WriteMode::WriteThrough {
            return self.write_through(runs);
        }
        for &(sector, buf) in runs {
            for block in blocks_of(sector, buf.len()) {
                let blen = self.block_len(block);
                let (src, dst) = overlap(sector, buf.len(), block, blen);
                let slot = match self.access(block) {
                    Some(slot) => slot,
                    None => {
                        let slot = self.alloc()?;
                        if dst.len() < blen {
                            // Partial block: the rest of it must come from the device.
                            let r =
                                self.dev.read(block * SECTORS_PER_BLOCK, &mut self.data[slot * BLOCK_SIZE..][..blen]);
                            self.stats.device_reads += 1;
                            if let Err(e) = r {
                                self.unalloc(slot);
                                return Err(e);
                            }
                        }
                        self.install(slot, block, false, false);
                        slot
                    }
                };
                self.slot_bytes(slot)[dst].copy_from_slice(&buf[src]);
                self.mark_dirty(slot);
            }
        }
        Ok(())
    }

    fn write_through(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        self.stats.device_writes += 1;
        if let Err(e) = self.dev.write_vectored(runs) {
            // Some runs may have landed: keep no copy that could disagree with the device.
            for &(sector, buf) in runs {
                blocks_of(sector, buf.len()).for_each(|b| self.invalidate(b));
            }
            return Err(e);
        }
        for &(sector, buf) in runs {
            for block in blocks_of(sector, buf.len()) {
                let blen = self.block_len(block);
                let (src, dst) = overlap(sector, buf.len(), block, blen);
                let slot = match self.access(block) {
                    Some(slot) => slot,
                    None => {
                        // Only whole blocks are worth a slot: a partial one would need a read.
                        if dst.len() < blen {
                            continue;
                        }
                        let Ok(slot) = self.alloc() else { continue };
                        self.install(slot, block, false, false);
                        slot
                    }
                };
                self.slot_bytes(slot)[dst].copy_from_slice(&buf[src]);
            }
        }
        Ok(())
    }

    /// Follow the sequential stream after a read of `len` bytes at `sector`; prefetch if it is
    /// running low.
    fn read_ahead(&mut self, sector: u64, len: usize) {
        let Some(cfg) = self.cfg.read_ahead else { return };
        let blocks = blocks_of(sector, len);
        if blocks.is_empty() {
            return;
        }
        // Only a read starting exactly where the last one ended continues the stream: re-reading
        // a hot block is not sequential access.
        let continues = sector == self.ra.next_sector;
        self.ra.next_sector = sector + (len / SECTOR_SIZE) as u64;
        if !continues {
            self.ra = ReadAheadState { next_sector: self.ra.next_sector, window: 0, end: 0 };
            return;
        }
        // Up to 1.5 windows can be ahead of the reader; keep that within the policy's room.
        let room = (self.policy.read_ahead_room() * 2 / 3) as u64;
        let max = (cfg.max as u64).min(room);
        if max == 0 {
            return;
        }
        if self.ra.window == 0 {
            self.ra.window = (cfg.initial as u64).min(max);
        }
        let ahead = self.ra.end.saturating_sub(blocks.end);
        if ahead > self.ra.window / 2 {
            return;
        }
        // A whole window past what is already prefetched: one request per window once it is large.
        let start = self.ra.end.max(blocks.end);
        let end = (start + self.ra.window).min(self.blocks);
        self.ra.end = end.max(start);
        self.ra.window = (self.ra.window * 2).min(max);
        self.prefetch(start..end);
    }

    /// Bring the uncached blocks of `range` in as speculative blocks, one request per batch.
    fn prefetch(&mut self, range: Range<u64>) {
        let wanted: Vec<u64> = range.filter(|b| !self.index.contains_key(b)).collect();
        for chunk in wanted.chunks(self.cfg.max_batch_blocks) {
            if self.fetch(chunk).is_err() {
                return;
            }
            let cached = self.cache_fetched(chunk, true);
            self.stats.read_ahead_issued += cached as u64;
            if cached < chunk.len() {
                return;
            }
        }
    }
}

impl<D: BlockDevice, T: Ticks> BlockCache<D, T> {
    /// A read of `len` bytes at `sector` that lends the cache's own bytes instead of copying them
    /// into a buffer: if every block it touches is cached, the bytes are passed to `sink(at, bytes)`
    /// as slices of the cache, in order, one per stretch of adjacent slots, and the read is accounted
    /// as [`BlockDevice::read`] accounts it (hits, read-ahead, statistics). Returns `Ok(false)`,
    /// having changed nothing, if a block is missing or the slots are too scattered for lending to
    /// pay (stretches of less than four blocks on average: the caller's copy per stretch then costs
    /// more than one copy through its buffer). An error from `sink` ends the read with that error.
    pub fn read_lent(
        &mut self,
        sector: u64,
        len: usize,
        sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<bool> {
        self.check_runs(core::iter::once((sector, len)))?;
        let blocks = blocks_of(sector, len);
        let mut stretches = 0usize;
        let mut prev: Option<usize> = None;
        for block in blocks.clone() {
            let Some(slot) = self.lookup(block) else { return Ok(false) };
            if prev.is_none_or(|p| p + 1 != slot) {
                stretches += 1;
            }
            prev = Some(slot);
        }
        if stretches > 1 && stretches * 4 > (blocks.end - blocks.start) as usize {
            return Ok(false);
        }
        self.counted_read(sector, len, |cache| cache.lend(sector, len, blocks, sink)).map(|_| true)
    }

    /// Runs `read`, one demand read of `len` bytes at `sector`, counted as one: read-ahead and bytes
    /// on success, the request and its latency always.
    fn counted_read(&mut self, sector: u64, len: usize, read: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let t0 = self.clock.now();
        let r = read(self);
        if r.is_ok() {
            self.read_ahead(sector, len);
            self.stats.bytes_read += len as u64;
        }
        self.stats.reads += 1;
        let dt = self.clock.now().saturating_sub(t0);
        self.stats.read_latency.record(dt);
        r
    }

    /// The lending part of [`read_lent`](Self::read_lent), for blocks all known to be cached.
    fn lend(
        &mut self,
        sector: u64,
        len: usize,
        blocks: Range<u64>,
        sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        // The stretch of `data` gathered so far and where it goes in the read.
        let mut piece = 0..0;
        let mut at = 0;
        for block in blocks {
            let slot = self.access(block).ok_or(blockdev::Error::Io { offset: block * BLOCK_SIZE as u64 })?;
            let (dst, src) = overlap(sector, len, block, self.block_len(block));
            let from = slot * BLOCK_SIZE + src.start;
            if piece.is_empty() {
                (piece, at) = (from..from + src.len(), dst.start);
            } else if piece.end == from {
                piece.end += src.len();
            } else {
                sink(at, &self.data[piece.clone()])?;
                (piece, at) = (from..from + src.len(), dst.start);
            }
        }
        if !piece.is_empty() {
            sink(at, &self.data[piece])?;
        }
        Ok(())
    }
}

impl<D: BlockDevice, T: Ticks> BlockDevice for BlockCache<D, T> {
    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        self.counted_read(sector, len, |cache| cache.read_runs(&mut [(sector, buf)]))
    }

    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        let t0 = self.clock.now();
        let r = self.read_runs(runs);
        if r.is_ok() {
            self.stats.bytes_read += runs.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        }
        self.stats.reads += 1;
        let dt = self.clock.now().saturating_sub(t0);
        self.stats.read_latency.record(dt);
        r
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.write_vectored(&[(sector, buf)])
    }

    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        let t0 = self.clock.now();
        let r = self.write_runs(runs);
        if r.is_ok() {
            self.stats.bytes_written += runs.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        }
        self.stats.writes += 1;
        let dt = self.clock.now().saturating_sub(t0);
        self.stats.write_latency.record(dt);
        r
    }

    fn flush(&mut self) -> Result<()> {
        let t0 = self.clock.now();
        let r = self.flush_all();
        self.stats.flushes += 1;
        let dt = self.clock.now().saturating_sub(t0);
        self.stats.flush_latency.record(dt);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_geometry() {
        assert_eq!(blocks_of(0, 0), 0..0);
        assert_eq!(blocks_of(7, 1024), 0..2);
        assert_eq!(blocks_of(8, 4096), 1..2);
        // Sector 9..11 inside block 1 (bytes 4608..5632).
        assert_eq!(overlap(9, 1024, 1, 4096), (0..1024, 512..1536));
        // A request spanning blocks 0..2 and its overlap with a short block 2 of 1024 bytes.
        assert_eq!(overlap(4, 8192, 2, 1024), (6144..7168, 0..1024));
    }
}
