//! The cache of verified file data: data blocks whose checksum was checked when they came from the
//! device, so a later read of the same block hands them out without reading or checksumming again.
//!
//! Design: entries are keyed by block address and carry the checksum they were verified against;
//! a lookup hits only if the pointer being read names the same address *and* the same checksum, so a
//! freed and rewritten block (a new pointer, a new crc) is never served from a stale entry. Every
//! device write through the store drops the entries of the blocks it covers, which makes a crc
//! collision harmless too. Only blocks that passed `verify_run` are inserted, so what the cache hands
//! out was verified when it was read from the device (as ZFS's ARC and btrfs's page cache do: data
//! is checked on its way in from the disk, never again on a hit). Scrub bypasses the cache and always
//! reads the device. The cache is direct-mapped (block `addr` can only live in slot `addr % capacity`),
//! so a lookup, an insert and an eviction are one array access each, which matters because every
//! block of a cold read passes through here; blocks contiguous on disk never evict each other, so a
//! sequential scan of a file laid out contiguously and no larger than the cache keeps hitting. A
//! sequential read of one file that goes past the cache's size stops filling it (`Store::admit_read`),
//! so a big scan neither pays a copy per block nor evicts what was cached before it.

use alloc::vec;
use alloc::vec::Vec;

use crate::ondisk::BLOCK_SIZE;

/// Blocks the cache holds: 8 MiB, the size of a block cache server's cache.
pub const DATA_CACHE_BLOCKS: usize = 2048;

/// Verified data blocks by address.
pub struct DataCache {
    capacity: usize,
    /// Per slot: the address it holds and the crc it was verified against. Empty until first used.
    tags: Vec<Option<(u64, u32)>>,
    /// `capacity` blocks, allocated with the tags.
    data: Vec<u8>,
    used: usize,
}

impl DataCache {
    pub fn new(capacity: usize) -> Self {
        DataCache { capacity, tags: Vec::new(), data: Vec::new(), used: 0 }
    }

    /// Blocks cached now.
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    fn slot(&self, addr: u64) -> usize {
        (addr % self.capacity as u64) as usize
    }

    fn holds(&self, addr: u64, crc: u32) -> Option<usize> {
        if self.tags.is_empty() {
            return None;
        }
        let slot = self.slot(addr);
        (self.tags[slot] == Some((addr, crc))).then_some(slot)
    }

    /// The block at `addr` if it was verified against `crc`.
    pub fn get(&self, addr: u64, crc: u32) -> Option<&[u8]> {
        let slot = self.holds(addr, crc)?;
        Some(&self.data[slot * BLOCK_SIZE..(slot + 1) * BLOCK_SIZE])
    }

    /// True if every block `addr, addr+1, ...` with these crcs is cached.
    pub fn has_run(&self, addr: u64, crcs: impl Iterator<Item = u32>) -> bool {
        (addr..).zip(crcs).all(|(a, crc)| self.holds(a, crc).is_some())
    }

    /// Passes bytes `from..to` of the run of blocks `addr, addr+1, ...` to `f` as slices of the cache,
    /// in order, one per stretch of adjacent slots (a run stays adjacent in the direct mapping until
    /// it wraps round the end of the cache). Every block the range touches must be one `has_run` has
    /// just accepted; a block not held is `Corrupt` before anything of it is passed.
    pub fn lend_run(
        &self,
        addr: u64,
        from: usize,
        to: usize,
        f: &mut dyn FnMut(&[u8]) -> protocol::Result<()>,
    ) -> protocol::Result<()> {
        if from < to && self.tags.is_empty() {
            return Err(protocol::Error::Corrupt { block: addr });
        }
        let mut at = from;
        while at < to {
            let block = addr + (at / BLOCK_SIZE) as u64;
            let slot = self.slot(block);
            let start = slot * BLOCK_SIZE + at % BLOCK_SIZE;
            let n = (self.capacity * BLOCK_SIZE - start).min(to - at);
            let blocks = block..block + (at % BLOCK_SIZE + n).div_ceil(BLOCK_SIZE) as u64;
            if blocks.clone().any(|b| self.tags.get(self.slot(b)).copied().flatten().is_none_or(|t| t.0 != b)) {
                return Err(protocol::Error::Corrupt { block });
            }
            f(self.data.get(start..start + n).ok_or(protocol::Error::Corrupt { block })?)?;
            at += n;
        }
        Ok(())
    }

    /// Remembers `block` (one block, already verified against `crc`) as the content of `addr`,
    /// evicting whatever held its slot.
    pub fn insert(&mut self, addr: u64, crc: u32, block: &[u8]) {
        if self.capacity == 0 || block.len() != BLOCK_SIZE {
            return;
        }
        if self.tags.is_empty() {
            self.tags = vec![None; self.capacity];
            self.data = vec![0; self.capacity * BLOCK_SIZE];
        }
        let slot = self.slot(addr);
        self.used += self.tags[slot].is_none() as usize;
        self.tags[slot] = Some((addr, crc));
        self.data[slot * BLOCK_SIZE..(slot + 1) * BLOCK_SIZE].copy_from_slice(block);
    }

    /// Drops the entries of blocks `addr..addr + n` (they are being overwritten on the device).
    pub fn invalidate(&mut self, addr: u64, n: u64) {
        if self.used == 0 {
            return;
        }
        let end = addr.saturating_add(n);
        if n >= self.capacity as u64 {
            for t in self.tags.iter_mut() {
                if t.is_some_and(|(a, _)| a >= addr && a < end) {
                    *t = None;
                    self.used -= 1;
                }
            }
            return;
        }
        for a in addr..end {
            let slot = self.slot(a);
            if self.tags[slot].is_some_and(|(held, _)| held == a) {
                self.tags[slot] = None;
                self.used -= 1;
            }
        }
    }

    /// Drops everything (the memory stays allocated for reuse).
    pub fn clear(&mut self) {
        self.tags.iter_mut().for_each(|t| *t = None);
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn block(x: u8) -> Vec<u8> {
        vec![x; BLOCK_SIZE]
    }

    #[test]
    fn hits_only_with_the_same_address_and_crc() {
        let mut c = DataCache::new(4);
        c.insert(10, 0xaa, &block(1));
        assert_eq!(c.get(10, 0xaa), Some(&block(1)[..]));
        assert_eq!(c.get(10, 0xbb), None, "another crc is another block");
        assert_eq!(c.get(11, 0xaa), None);
        c.insert(10, 0xbb, &block(2));
        assert_eq!(c.get(10, 0xbb), Some(&block(2)[..]));
        assert_eq!(c.get(10, 0xaa), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn writes_invalidate_the_blocks_they_cover() {
        let mut c = DataCache::new(8);
        for a in 0..6 {
            c.insert(a, a as u32, &block(a as u8));
        }
        assert!(c.has_run(1, [1, 2, 3].into_iter()));
        c.invalidate(2, 2);
        assert!(!c.has_run(1, [1, 2, 3].into_iter()));
        assert!(c.get(2, 2).is_none() && c.get(3, 3).is_none());
        assert_eq!(c.get(4, 4), Some(&block(4)[..]));
        assert_eq!(c.len(), 4);
        c.clear();
        assert!(c.is_empty() && c.get(4, 4).is_none());
        c.insert(4, 4, &block(9));
        assert_eq!(c.get(4, 4), Some(&block(9)[..]));
    }

    #[test]
    fn a_contiguous_scan_that_fits_keeps_hitting_and_a_conflict_evicts() {
        let mut c = DataCache::new(4);
        for a in 100..104 {
            c.insert(a, 7, &block(a as u8));
        }
        for _ in 0..3 {
            assert!(c.has_run(100, [7; 4].into_iter()));
        }
        // Block 108 shares block 100's slot (108 % 4 == 100 % 4) and takes it.
        c.insert(108, 1, &block(1));
        assert_eq!(c.len(), 4);
        assert!(c.get(100, 7).is_none());
        assert_eq!(c.get(108, 1), Some(&block(1)[..]));
        assert!(c.has_run(101, [7; 3].into_iter()));
        // A write longer than the cache drops every entry in its range, wherever it sits.
        c.invalidate(0, 105);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(108, 1), Some(&block(1)[..]));
    }

    #[test]
    fn a_run_is_lent_in_one_piece_until_it_wraps() {
        let mut c = DataCache::new(4);
        for a in 5..9 {
            c.insert(a, 0, &block(a as u8));
        }
        let lent = |c: &DataCache, addr, from, to| {
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            c.lend_run(addr, from, to, &mut |p| {
                pieces.push(p.to_vec());
                Ok(())
            })
            .map(|_| pieces)
        };
        // 5 and 6 sit in slots 1 and 2: one piece, starting inside block 5.
        let p = lent(&c, 5, 100, BLOCK_SIZE + 10).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].len(), BLOCK_SIZE - 90);
        assert!(p[0][..BLOCK_SIZE - 100].iter().all(|&b| b == 5) && p[0][BLOCK_SIZE - 100..].iter().all(|&b| b == 6));
        // 7 is in slot 3, 8 wraps to slot 0: two pieces.
        let p = lent(&c, 6, 0, 3 * BLOCK_SIZE).unwrap();
        assert_eq!(p.iter().map(|p| p.len()).collect::<Vec<_>>(), [2 * BLOCK_SIZE, BLOCK_SIZE]);
        assert!(p[1].iter().all(|&b| b == 8));
        // A block not held is refused before any of its bytes are passed.
        c.insert(12, 0, &block(12));
        assert!(lent(&c, 7, 0, 2 * BLOCK_SIZE).is_err());
        assert!(DataCache::new(4).lend_run(1, 0, 1, &mut |_| Ok(())).is_err());
    }

    #[test]
    fn a_zero_capacity_cache_holds_nothing() {
        let mut c = DataCache::new(0);
        c.insert(1, 1, &block(1));
        assert!(c.is_empty() && c.get(1, 1).is_none());
    }
}
