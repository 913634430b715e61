//! Background compaction: a file whose data is scattered over several extents is rewritten
//! contiguously, one file of at most [`COMPACT_MAX_BLOCKS`] blocks per daemon tick.
//!
//! Design: copy-on-write scatters a file that is rewritten piecemeal (each rewrite takes fresh
//! blocks wherever free space is), so reading it back takes several device requests. Free space
//! itself needs no coalescing: the allocator is a bitmap, so adjacent free blocks are one run by
//! construction; what fragments is files. [`Wfs::compact_slice`] walks inodes from a cursor, a
//! bounded number per tick, and takes the first regular file that has more than one extent item,
//! no hole below its size, and at most `max_blocks` blocks. It reads the whole file (every block
//! verified against its checksum) and writes it back through the ordinary write path
//! (`write_blocks`: fresh blocks, in as few contiguous runs as free space allows), keeping its
//! size, block count and times, as one operation of the commit group: a crash leaves the old layout
//! or the new one. It does nothing while a transaction is open (the daemon acts on the main state
//! only) or while a snapshot exists (its blocks are shared with the live tree: a rewrite would
//! double the space they take).

use alloc::vec;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::fs::{FileSystem, FileType};
use protocol::Result;

use crate::btree;
use crate::ondisk::{Key, BLOCK_SIZE, KIND_EXTENT, KIND_INODE};
use crate::{read, Wfs};

/// Largest file the daemon rewrites in one tick (1 MiB).
pub const COMPACT_MAX_BLOCKS: u64 = 256;
/// Inodes looked at per tick.
const INODES_PER_SLICE: usize = 32;

/// A file the compaction rewrote: its inode and its extent items before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub ino: u64,
    pub extents_before: usize,
    pub extents_after: usize,
}

impl<D: BlockDevice> Wfs<D> {
    /// Look at up to 32 inodes from the compaction cursor and rewrite the first fragmented file of
    /// at most `max_blocks` blocks contiguously (see the module header). `None` when none was.
    pub fn compact_slice(&mut self, max_blocks: u64) -> Result<Option<Compacted>> {
        if self.open_transaction().is_some() || self.st.snap_txid != 0 || self.writable().is_err() {
            return Ok(None);
        }
        let from = Key::new(self.compact_cursor, KIND_INODE, 0);
        let mut items = Vec::new();
        // Every object has its inode item first, then its entries or extents: a window of keys
        // wide enough for the inodes asked for on small objects, and the cursor moves past what it saw.
        btree::scan(&mut self.st, &self.root, from, Key::MAX, INODES_PER_SLICE * 8, &mut items)?;
        let inodes: Vec<u64> =
            items.iter().filter(|(k, _)| k.kind == KIND_INODE).map(|(k, _)| k.oid).take(INODES_PER_SLICE).collect();
        let Some(&last) = inodes.last() else {
            self.compact_cursor = 0;
            return Ok(None);
        };
        self.compact_cursor = last + 1;
        for ino in inodes {
            if let Some(extents) = self.fragmented(ino, max_blocks)? {
                self.rewrite_contiguously(ino)?;
                let after = self.extent_items(ino, max_blocks)?.len();
                return Ok(Some(Compacted { ino, extents_before: extents, extents_after: after }));
            }
        }
        Ok(None)
    }

    /// The extent items of `ino` (at most `max + 1` of them).
    fn extent_items(&mut self, ino: u64, max: u64) -> Result<Vec<(Key, Vec<u8>)>> {
        let mut out = Vec::new();
        let (from, to) = (Key::new(ino, KIND_EXTENT, 0), Key::new(ino, KIND_EXTENT, u64::MAX));
        btree::scan(&mut self.st, &self.root, from, to, max as usize + 1, &mut out)?;
        Ok(out)
    }

    /// How many extents `ino` has if it is a file worth compacting: more than one, no hole below
    /// its size, at most `max_blocks` blocks.
    fn fragmented(&mut self, ino: u64, max_blocks: u64) -> Result<Option<usize>> {
        let inode = read::get_inode(&mut self.st, &self.root, ino)?;
        let blocks = inode.size.div_ceil(BLOCK_SIZE as u64);
        if inode.kind != FileType::File || blocks > max_blocks || blocks < 2 {
            return Ok(None);
        }
        let items = self.extent_items(ino, max_blocks)?;
        let mut next = 0;
        for (k, v) in &items {
            let e = crate::extent::Extent::decode(k.off, v)?;
            if e.start != next {
                return Ok(None); // a hole: rewriting would fill it
            }
            next = e.end();
        }
        Ok((items.len() > 1 && next >= blocks).then_some(items.len()))
    }

    /// Read `ino` whole and write it back to fresh, contiguous blocks, times untouched.
    fn rewrite_contiguously(&mut self, ino: u64) -> Result<()> {
        let saved = self.begin_op();
        let r = (|| {
            let mut inode = self.get_inode(ino)?;
            let mut data = vec![0u8; inode.size as usize];
            let n = self.read(ino, 0, &mut data)?;
            data.truncate(n);
            let margin = crate::file::slop(self.st.alloc.total());
            let blocks = self.write_blocks(ino, &mut inode, 0, &data, margin)?;
            self.put_inode(ino, &inode)?;
            Ok(blocks)
        })();
        let blocks = self.end_op(saved, r)?;
        self.op_done(blocks)
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use blockdev::RamDisk;
    use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, Timespec};

    use super::COMPACT_MAX_BLOCKS;
    use crate::{FormatOptions, Wfs};

    fn fs() -> Wfs<RamDisk> {
        Wfs::format(RamDisk::new(16384), &FormatOptions::default(), Box::new(FixedClock(Timespec::new(7, 0)))).unwrap()
    }

    fn file(fs: &mut Wfs<RamDisk>, name: &str) -> u64 {
        fs.create(1, name, &NewNode::new(FileType::File, 0o644)).unwrap().ino
    }

    /// Two files written a block at a time in turn: their blocks interleave on the device.
    fn interleaved(fs: &mut Wfs<RamDisk>, blocks: u64) -> (u64, u64, Vec<u8>) {
        let (a, b) = (file(fs, "a"), file(fs, "b"));
        let mut want = Vec::new();
        for i in 0..blocks {
            let block: Vec<u8> = (0..4096).map(|j| (i as usize * 7 + j) as u8).collect();
            fs.write(a, i * 4096, &block).unwrap();
            fs.write(b, i * 4096, &[9u8; 4096]).unwrap();
            want.extend_from_slice(&block);
        }
        // A short tail: the last block is partial.
        fs.write(a, blocks * 4096, b"tail").unwrap();
        want.extend_from_slice(b"tail");
        (a, b, want)
    }

    fn read_all(fs: &mut Wfs<RamDisk>, ino: u64, len: usize) -> Vec<u8> {
        let mut buf = alloc::vec![0u8; len + 100];
        let n = fs.read(ino, 0, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn a_fragmented_file_is_rewritten_into_one_extent_with_its_bytes_and_times() {
        let mut fs = fs();
        let (a, _, want) = interleaved(&mut fs, 12);
        fs.sync().unwrap();
        let before = fs.getattr(a).unwrap();
        let free = fs.statfs().unwrap().free_blocks;
        let mut done = None;
        for _ in 0..4 {
            done = done.or(fs.compact_slice(COMPACT_MAX_BLOCKS).unwrap().filter(|c| c.ino == a));
        }
        let c = done.expect("file a was compacted");
        assert!(c.extents_before > 1 && c.extents_after == 1, "{c:?}");
        assert_eq!(read_all(&mut fs, a, want.len()), want);
        let after = fs.getattr(a).unwrap();
        assert_eq!(
            (after.size, after.blocks, after.mtime, after.ctime),
            (before.size, before.blocks, before.mtime, before.ctime)
        );
        fs.sync().unwrap();
        assert_eq!(fs.statfs().unwrap().free_blocks, free, "the old blocks are free again");
        assert!(fs.fsck(false).unwrap().is_clean());
        let dev = fs.unmount().unwrap();
        let mut fs = Wfs::mount(dev, Box::new(FixedClock(Timespec::new(8, 0)))).unwrap();
        assert_eq!(read_all(&mut fs, a, want.len()), want, "durable after the commit");
    }

    #[test]
    fn the_daemon_compacts_a_fragmented_file_per_tick() {
        let mut fs = fs();
        interleaved(&mut fs, 4);
        fs.sync().unwrap();
        for _ in 0..6 {
            fs.background();
        }
        assert_eq!(fs.daemon_report().files_compacted, 2, "a and b, each once");
        assert!(fs.fsck(false).unwrap().is_clean());
    }

    #[test]
    fn snapshots_transactions_holes_and_contiguous_files_are_left_alone() {
        let mut fs = fs();
        let (a, _, _) = interleaved(&mut fs, 6);
        // A hole below the size: rewriting would fill it.
        let h = file(&mut fs, "holey");
        fs.write(h, 0, &[1u8; 4096]).unwrap();
        fs.write(h, 3 * 4096, &[2u8; 4096]).unwrap();
        fs.sync().unwrap();
        let tx = fs.begin_transaction().unwrap();
        fs.select_transaction(None).unwrap();
        assert_eq!(fs.compact_slice(COMPACT_MAX_BLOCKS).unwrap(), None, "a transaction is open");
        fs.abort_transaction(tx).unwrap();
        fs.create_snapshot("s").unwrap();
        assert_eq!(fs.compact_slice(COMPACT_MAX_BLOCKS).unwrap(), None, "a snapshot shares the blocks");
        fs.delete_snapshot("s").unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.extend(fs.compact_slice(COMPACT_MAX_BLOCKS).unwrap().map(|c| c.ino));
        }
        assert!(seen.contains(&a));
        assert!(!seen.contains(&h), "a file with a hole is not rewritten");
        // Compacted files are one extent now: nothing more to do.
        for _ in 0..4 {
            assert_eq!(fs.compact_slice(COMPACT_MAX_BLOCKS).unwrap().map(|c| c.ino), None);
        }
    }
}

#[cfg(test)]
mod model_tests {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use blockdev::RamDisk;
    use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, SetAttr, Timespec};

    use super::COMPACT_MAX_BLOCKS;
    use crate::{FormatOptions, Wfs};

    #[test]
    fn appends_cuts_commits_and_compaction_keep_every_byte() {
        for seed in 1..=8 {
            run(seed);
        }
    }

    fn run(seed: u64) {
        let mut rng = prng::XorShift64::new(seed);
        let clock = || Box::new(FixedClock(Timespec::new(7, 0)));
        let mut fs = Wfs::format(RamDisk::new(16384), &FormatOptions::default(), clock()).unwrap();
        let a = fs.create(1, "log", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        let b = fs.create(1, "other", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        let mut model: Vec<u8> = Vec::new();
        fs.sync().unwrap();
        let mut durable: Vec<u8> = Vec::new();
        for step in 0..1500u32 {
            match rng.below(10) {
                0..=4 => {
                    let len = 8 + rng.below(57) as usize;
                    let entry: Vec<u8> = (0..len).map(|i| (step as usize * 13 + i) as u8 | 1).collect();
                    fs.write(a, model.len() as u64, &entry).unwrap();
                    model.extend_from_slice(&entry);
                    // Interleave another file's blocks.
                    fs.write(b, rng.below(8) * 4096, &[5u8; 100]).unwrap();
                }
                5 => {
                    let keep = if model.len() > 8192 { 0 } else { rng.below(model.len() as u64 + 1) as usize };
                    fs.setattr(a, SetAttr { size: Some(keep as u64), ..Default::default() }).unwrap();
                    model.truncate(keep);
                }
                6 => {
                    fs.fsync(a).unwrap();
                    durable = model.clone();
                }
                7 | 8 => {
                    let _ = fs.compact_slice(COMPACT_MAX_BLOCKS).unwrap();
                }
                _ => {
                    // A power cut: what the last commit left.
                    let img = fs.device_mut().as_bytes().to_vec();
                    let mut cut = Wfs::mount(RamDisk::from_bytes(img), clock()).unwrap();
                    let mut got = alloc::vec![0u8; durable.len() + 10];
                    let n = cut.read(a, 0, &mut got).unwrap();
                    assert_eq!(&got[..n], &durable[..], "step {step}: after a power cut");
                }
            }
            let mut got = alloc::vec![0u8; model.len() + 10];
            let n = fs.read(a, 0, &mut got).unwrap();
            assert_eq!(&got[..n], &model[..], "step {step}");
        }
        assert!(fs.fsck(false).unwrap().is_clean());
    }
}
