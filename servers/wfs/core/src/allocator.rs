//! The block allocator: an in-memory bitmap loaded from the persisted space map, with deferred
//! frees.
//!
//! Design: the allocated set is, by definition, the blocks reachable from the committed superblock
//! (live tree, snapshot trees, the space map itself). Mount loads the bitmap from the space map
//! that the last commit wrote (see `spacemap`); fsck checks that map against a full walk and
//! `Wfs::rebuild_allocator` recomputes the bitmap by that walk when the map is damaged. While
//! mounted the bitmap is kept exact, and every change notes which map block must be rewritten:
//! - a block written by the open transaction (birth == open txid) is referenced by no durable
//!   state, so freeing it makes it reusable at once;
//! - a block of an older transaction may still be referenced by the durable superblock, so it goes
//!   on `deferred` and becomes reusable only after the commit that frees it has been flushed (the
//!   map that commit writes already records it as free);
//! - a block born at or before the newest snapshot may be shared with that snapshot and is not
//!   freed at all; deleting the snapshot frees, in the same commit, whatever only it reached.
//!
//! While an explicit transaction is open (see `txn`), the blocks allocated for it are kept in
//! `tx_owned`: no durable state references them until its commit, so a commit of the other state
//! records them as free in the space map, and an abort frees them.
//!
//! File data is allocated in contiguous runs (`alloc_run`) so that extents stay long.
//! Two cursors (low half, high half) let a tree node's ditto copy land far from its first copy.

use alloc::collections::BTreeSet;
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
    /// Per space-map bitmap block (`MAP_BITS` blocks each): changed since the map was last
    /// written, so the next commit must rewrite it.
    changed: Vec<bool>,
    /// While an operation runs: what it changed, so a failed operation can be undone.
    journal: Option<Journal>,
    /// Blocks allocated for the open explicit transaction and not freed since.
    pub tx_owned: BTreeSet<u64>,
    /// Allocations now are the open transaction's (its state is the one being changed).
    pub track_tx: bool,
}

/// The allocator changes of one operation in progress.
struct Journal {
    /// (block, true if the bit was set / false if cleared), in order.
    log: Vec<(u64, bool)>,
    deferred: usize,
    cursors: [u64; 2],
}

/// Device blocks one space-map bitmap block describes (one bit each).
pub const MAP_BITS: u64 = (crate::ondisk::BLOCK_SIZE * 8) as u64;

impl Allocator {
    /// An allocator for `total` blocks with every block free.
    pub fn new(total: u64) -> Self {
        Allocator {
            bits: vec![0; total.div_ceil(64) as usize],
            total,
            free: total,
            cursors: [0, total / 2],
            deferred: Vec::new(),
            changed: vec![false; total.div_ceil(MAP_BITS) as usize],
            journal: None,
            tx_owned: BTreeSet::new(),
            track_tx: false,
        }
    }

    /// An operation starts: record its changes until `end_op` or `undo_op`.
    pub fn begin_op(&mut self) {
        self.journal = Some(Journal { log: Vec::new(), deferred: self.deferred.len(), cursors: self.cursors });
    }

    /// The operation succeeded: keep its changes.
    pub fn end_op(&mut self) {
        self.journal = None;
    }

    /// The operation failed: put every bit, the deferred list and the cursors back as they were
    /// at `begin_op` (the space-map change notes may stay; rewriting an unchanged map block is
    /// harmless).
    pub fn undo_op(&mut self) {
        if let Some(j) = self.journal.take() {
            for (b, set) in j.log.into_iter().rev() {
                if set {
                    self.clear_bit(b);
                } else {
                    self.set_bit(b);
                }
            }
            self.deferred.truncate(j.deferred);
            self.cursors = j.cursors;
        }
    }

    /// The bitmap words of map block `i` (`MAP_BITS / 64` words; past the device end: zero).
    pub fn map_words(&self, i: usize) -> &[u64] {
        let per = (MAP_BITS / 64) as usize;
        let s = (i * per).min(self.bits.len());
        &self.bits[s..(s + per).min(self.bits.len())]
    }

    /// Map blocks changed since the last `take_changed`.
    pub fn take_changed(&mut self) -> Vec<usize> {
        let out = (0..self.changed.len()).filter(|&i| self.changed[i]).collect();
        self.changed.iter_mut().for_each(|c| *c = false);
        out
    }

    pub fn any_changed(&self) -> bool {
        self.changed.iter().any(|&c| c)
    }

    /// Every map block must be rewritten (the bitmap was rebuilt).
    pub fn change_all(&mut self) {
        self.changed.iter_mut().for_each(|c| *c = true);
    }

    /// The map block recording `b` must be rewritten at the next commit.
    pub fn note(&mut self, b: u64) {
        if let Some(c) = self.changed.get_mut((b / MAP_BITS) as usize) {
            *c = true;
        }
    }

    /// Blocks freed by the open transaction, reusable once its commit is durable.
    pub fn deferred(&self) -> &[u64] {
        &self.deferred
    }

    /// An allocator whose bitmap is `words` as the space map recorded them (bits past the
    /// device end are ignored); nothing is noted as changed.
    pub fn from_words(total: u64, mut words: Vec<u64>) -> Self {
        let mut a = Allocator::new(total);
        words.resize(a.bits.len(), 0);
        if !total.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last &= (1u64 << (total % 64)) - 1;
            }
        }
        a.free = total - words.iter().map(|w| w.count_ones() as u64).sum::<u64>();
        a.bits = words;
        a
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
        let fresh = self.set_bit(b);
        if fresh {
            self.note(b);
        }
        fresh
    }

    /// Mark `b` used without noting a space-map change (the map's own blocks, which the map never
    /// records: see `spacemap`).
    pub fn set_bit(&mut self, b: u64) -> bool {
        if b >= self.total || self.is_used(b) {
            return false;
        }
        self.bits[(b / 64) as usize] |= 1 << (b % 64);
        self.free -= 1;
        if let Some(j) = &mut self.journal {
            j.log.push((b, true));
        }
        if self.track_tx {
            self.tx_owned.insert(b);
        }
        true
    }

    fn clear(&mut self, b: u64) {
        if self.clear_bit(b) {
            self.note(b);
        }
    }

    fn clear_bit(&mut self, b: u64) -> bool {
        if self.is_used(b) {
            self.bits[(b / 64) as usize] &= !(1 << (b % 64));
            self.free += 1;
            if let Some(j) = &mut self.journal {
                j.log.push((b, false));
            }
            self.tx_owned.remove(&b);
            return true;
        }
        false
    }

    /// Allocate one block, searching from the cursor of `region` (0 = low, 1 = high half).
    pub fn alloc(&mut self, region: usize) -> Result<u64> {
        let b = self.find(region)?;
        self.note(b);
        Ok(b)
    }

    /// Allocate one block for the space map itself (not noted as a map change).
    pub fn alloc_untracked(&mut self) -> Result<u64> {
        self.find(1)
    }

    /// Find and set a free block from the cursor of `region`.
    fn find(&mut self, region: usize) -> Result<u64> {
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
                    self.set_bit(b);
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
            if b.is_multiple_of(64) && w == u64::MAX {
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
            // The map written by this commit already records the block as free.
            self.note(b);
            self.deferred.push(b);
        }
    }

    /// Free an old space-map block at the next durable commit (the map never records its own
    /// blocks, so no map block changes).
    pub fn free_deferred_untracked(&mut self, b: u64) {
        if b < self.total {
            self.deferred.push(b);
        }
    }

    /// The commit that freed the deferred blocks is durable: release them. The map that commit
    /// wrote already shows them free, so no map change is noted.
    pub fn commit_durable(&mut self) {
        let d = core::mem::take(&mut self.deferred);
        for b in d {
            self.clear_bit(b);
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
    fn a_failed_operation_is_undone_exactly() {
        let mut a = Allocator::new(256);
        let first = a.alloc_run(10).unwrap();
        a.free_deferred(3);
        let (free, used) = (a.free_blocks(), a.used_blocks());
        a.begin_op();
        a.alloc_run(20).unwrap();
        a.free_now(first.0 + 1);
        a.free_deferred(5);
        a.alloc(1).unwrap();
        a.undo_op();
        assert_eq!((a.free_blocks(), a.used_blocks()), (free, used));
        assert_eq!(a.deferred(), [3]);
        // The cursor is back too: the next allocation is where it would have been.
        assert_eq!(a.alloc_run(1).unwrap(), (first.0 + first.1, 1));
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
