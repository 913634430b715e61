//! The background task of wfs-server: flush the commit group and scrub a bounded slice per tick.
//!
//! Design: the server calls [`Wfs::tick`] from its idle loop or a timer. Each tick commits the
//! pending group (so implicit work becomes durable within one tick period, like ZFS's txg timeout)
//! unless an explicit transaction is open, then verifies at most `budget` data blocks, continuing
//! from where the previous tick stopped (a key cursor in the live tree), so the cost of one tick is
//! bounded whatever the filesystem size. A full `scrub` remains the way to check and repair every
//! metadata copy.

use alloc::vec;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::Result;

use crate::btree;
use crate::extent::Extent;
use crate::ondisk::{Key, BLOCK_SIZE, KIND_EXTENT};
use crate::read::read_run;
use crate::Wfs;

/// What one background tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub committed: bool,
    pub blocks_verified: u64,
    /// Data blocks whose checksum failed (first copy address).
    pub bad_blocks: Vec<u64>,
    /// True when this tick's scrub slice reached the end of the tree (the next starts over).
    pub pass_complete: bool,
}

impl<D: BlockDevice> Wfs<D> {
    /// Commit pending implicit work and verify up to `budget` data blocks.
    pub fn tick(&mut self, budget: usize) -> Result<TickReport> {
        let mut r = TickReport::default();
        if self.tx.is_none() && self.dirty {
            self.commit()?;
            r.committed = true;
        }
        let mut items = Vec::new();
        let limit = budget.saturating_mul(4).saturating_add(16);
        let (from, mut skip) = self.scrub_cursor;
        btree::scan(&mut self.st, &self.root, from, Key::MAX, limit, &mut items)?;
        if items.first().is_none_or(|(k, _)| *k != from) {
            skip = 0; // the extent the cursor was inside is gone
        }
        let mut buf = vec![0u8; BLOCK_SIZE];
        let mut next = None;
        'items: for (k, v) in &items {
            if k.kind != KIND_EXTENT || k.oid == crate::ondisk::META_OID {
                continue;
            }
            // An extent may be longer than the budget: the cursor keeps the blocks done in it.
            for (i, (_, p)) in Extent::decode(k.off, v)?.blocks().enumerate().skip(skip) {
                if r.blocks_verified as usize >= budget {
                    next = Some((*k, i));
                    break 'items;
                }
                r.blocks_verified += 1;
                if read_run(&mut self.st, &[p], &mut buf).is_err() {
                    r.bad_blocks.push(p.addr);
                }
            }
            skip = 0;
        }
        // A short scan means the end of the tree was reached.
        let more =
            if items.len() == limit { items.last().and_then(|(k, _)| k.successor()).map(|k| (k, 0)) } else { None };
        match next.or(more) {
            Some(c) => self.scrub_cursor = c,
            None => {
                self.scrub_cursor = (Key::MIN, 0);
                r.pass_complete = true;
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use blockdev::RamDisk;
    use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, Timespec};

    use crate::{FormatOptions, Wfs};

    #[test]
    fn ticks_commit_then_verify_every_block_in_bounded_slices() {
        let clock = Box::new(FixedClock(Timespec::new(5, 0)));
        let mut fs = Wfs::format(RamDisk::new(8192), &FormatOptions::default(), clock).unwrap();
        let f = fs.create(1, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        fs.write(f, 0, &[9u8; 20 * 4096]).unwrap();
        let t0 = fs.committed_txid();
        let first = fs.tick(8).unwrap();
        assert!(first.committed && fs.committed_txid() > t0);
        assert_eq!(first.blocks_verified, 8);
        let mut total = first.blocks_verified;
        let mut ticks = 1;
        let mut done = first.pass_complete;
        while !done {
            let t = fs.tick(8).unwrap();
            assert!(!t.committed && t.blocks_verified <= 8 && t.bad_blocks.is_empty());
            total += t.blocks_verified;
            done = t.pass_complete;
            ticks += 1;
            assert!(ticks < 10, "the pass never completed");
        }
        assert_eq!(total, 20);
        // Damage one data block: the next pass names it.
        let ext = crate::read::extents(&mut fs.st, &fs.root, f, 3, 3).unwrap();
        let addr = ext[0].1.addr;
        fs.device_mut().as_bytes_mut()[addr as usize * 4096] ^= 1;
        let mut bad = alloc::vec::Vec::new();
        loop {
            let t = fs.tick(8).unwrap();
            bad.extend(t.bad_blocks);
            if t.pass_complete {
                break;
            }
        }
        assert_eq!(bad, [addr]);
    }
}
