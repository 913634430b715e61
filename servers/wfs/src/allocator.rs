//! The block allocator: an in-memory bitmap rebuilt from the trees, with deferred frees.
//!
//! Design: WFS does not store a free-space map. The set of allocated blocks is, by definition, the
//! set of blocks reachable from the committed superblock (live tree plus snapshot trees), and mount
//! rebuilds the bitmap by walking them (see `Wfs::rebuild_allocator`). So the allocator can never
//! disagree with the trees after a crash, and leaks cannot survive a remount (RedoxFS's history is
//! mostly allocator-log leaks). While mounted the bitmap is kept exact:
//! - a block written by the open transaction (birth == open txid) is referenced by no durable
//!   state, so freeing it makes it reusable at once;
//! - a block of an older transaction may still be referenced by the durable superblock, so it goes
//!   on `deferred` and becomes reusable only after the commit that frees it has been flushed;
//! - a block born at or before the newest snapshot may be shared with that snapshot and is not
//!   freed at all; deleting the snapshot triggers a rebuild that reclaims whatever became unreachable.
//!
//! File data is allocated in contiguous runs (`alloc_run`) so that extents stay long.
//! Two cursors (low half, high half) let a tree node's ditto copy land far from its first copy.

use alloc::vec;
use alloc::vec::Vec;

use protocol::{Error, Result};

/// Blocks `alloc_run` looks at for a long enough run before settling for the longest seen.
const RUN_SEARCH: u64 = 1 << 16;

pub struct Allocator {
    bits: Vec<u64>,
    total: u64,
    free: u64,
    cursors: [u64; 2],
    deferred: Vec<u64>,
}

impl Allocator {
    /// An allocator for `total` blocks with every block free.
    pub fn new(total: u64) -> Self {
        Allocator {
            bits: vec![0; total.div_ceil(64) as usize],
            total,
            free: total,
            cursors: [0, total / 2],
            deferred: Vec::new(),
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn free_blocks(&self) -> u64 {
        self.free
    }

    pub fn is_used(&self, b: u64) -> bool {
        b < self.total && self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    /// Mark `b` used; returns false if it already was (a double reference while rebuilding).
    pub fn mark(&mut self, b: u64) -> bool {
        if b >= self.total || self.is_used(b) {
            return false;
        }
        self.bits[(b / 64) as usize] |= 1 << (b % 64);
        self.free -= 1;
        true
    }

    fn clear(&mut self, b: u64) {
        if self.is_used(b) {
            self.bits[(b / 64) as usize] &= !(1 << (b % 64));
            self.free += 1;
        }
    }

    /// Allocate one block, searching from the cursor of `region` (0 = low, 1 = high half).
    pub fn alloc(&mut self, region: usize) -> Result<u64> {
        if self.free == 0 {
            return Err(Error::NoSpace);
        }
        let start = self.cursors[region] % self.total;
        let words = self.bits.len() as u64;
        let mut w = start / 64;
        // The first word is searched from the cursor's bit; the wrap-around visit sees all of it.
        let mut below = (1u64 << (start % 64)) - 1;
        for _ in 0..=words {
            let word = self.bits[w as usize] | below;
            below = 0;
            if word != u64::MAX {
                let bit = (!word).trailing_zeros() as u64;
                let b = w * 64 + bit;
                if b < self.total {
                    self.mark(b);
                    self.cursors[region] = b + 1;
                    return Ok(b);
                }
            }
            w = (w + 1) % words;
        }
        Err(Error::NoSpace)
    }

    /// Allocate up to `want` contiguous blocks for file data: the first free run of at least
    /// `want` blocks found from the data cursor (looking at most `RUN_SEARCH` blocks ahead), else
    /// the longest run seen. Returns (first block, length ≥ 1).
    pub fn alloc_run(&mut self, want: u64) -> Result<(u64, u64)> {
        if self.free == 0 {
            return Err(Error::NoSpace);
        }
        let want = want.max(1);
        let mut b = self.cursors[0] % self.total;
        let mut best = (0, 0);
        let mut looked = 0;
        while looked < RUN_SEARCH.min(self.total) {
            let w = self.bits[(b / 64) as usize];
            if b % 64 == 0 && w == u64::MAX {
                // A full word: skip it whole.
                b += 64;
                looked += 64;
            } else if self.is_used(b) {
                b += 1;
                looked += 1;
            } else {
                let mut e = b + 1;
                while e < self.total && e - b < want && !self.is_used(e) {
                    e += 1;
                }
                if e - b >= want {
                    best = (b, e - b);
                    break;
                }
                if e - b > best.1 {
                    best = (b, e - b);
                }
                looked += e - b;
                b = e;
            }
            if b >= self.total {
                b = 0;
            }
        }
        if best.1 == 0 {
            // Nothing in the window (a nearly full device): any free block.
            let b = self.alloc(0)?;
            return Ok((b, 1));
        }
        for x in best.0..best.0 + best.1 {
            self.mark(x);
        }
        self.cursors[0] = best.0 + best.1;
        Ok(best)
    }

    /// Free a block that no durable state references (written by the open transaction).
    pub fn free_now(&mut self, b: u64) {
        self.clear(b);
    }

    /// Free a block that the durable state may still reference: reusable after the next commit.
    pub fn free_deferred(&mut self, b: u64) {
        if b < self.total {
            self.deferred.push(b);
        }
    }

    /// The commit that freed the deferred blocks is durable: release them.
    pub fn commit_durable(&mut self) {
        let d = core::mem::take(&mut self.deferred);
        for b in d {
            self.clear(b);
        }
    }

    /// Blocks allocated per the bitmap, as a sorted list (fsck compares it with reachability).
    pub fn used_blocks(&self) -> Vec<u64> {
        (0..self.total).filter(|&b| self.is_used(b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_every_block_once_then_reports_no_space() {
        let mut a = Allocator::new(130);
        let mut seen = alloc::collections::BTreeSet::new();
        for i in 0..130 {
            let b = a.alloc(i % 2).unwrap();
            assert!(seen.insert(b), "block {b} handed out twice");
        }
        assert_eq!(a.alloc(0), Err(Error::NoSpace));
        assert_eq!(a.free_blocks(), 0);
    }

    #[test]
    fn deferred_frees_wait_for_the_commit() {
        let mut a = Allocator::new(64);
        for _ in 0..64 {
            a.alloc(0).unwrap();
        }
        a.free_deferred(10);
        assert_eq!(a.alloc(0), Err(Error::NoSpace), "a deferred block must not be reused before commit");
        a.commit_durable();
        assert_eq!(a.alloc(0), Ok(10));
        a.free_now(10);
        assert_eq!(a.alloc(1), Ok(10));
    }

    #[test]
    fn runs_prefer_a_gap_long_enough() {
        let mut a = Allocator::new(1000);
        for b in (0..100).chain(103..200) {
            a.mark(b);
        }
        // Blocks 100..103 are too short for 10: the run comes from 200 on.
        assert_eq!(a.alloc_run(10), Ok((200, 10)));
        assert_eq!(a.alloc_run(2), Ok((210, 2)));
        for b in 212..1000 {
            a.mark(b);
        }
        // Nothing long enough anywhere: the longest run seen.
        assert_eq!(a.alloc_run(5), Ok((100, 3)));
        assert_eq!(a.alloc_run(5), Err(Error::NoSpace));
    }

    #[test]
    fn high_region_starts_in_the_upper_half() {
        let mut a = Allocator::new(1000);
        assert!(a.alloc(1).unwrap() >= 500);
        assert!(a.alloc(0).unwrap() < 500);
        assert!(!a.mark(5000));
    }
}
