//! [`SmallReadCache`]: clean copies of recently read 4 KiB blocks in front of a device, for small
//! reads only.
//!
//! Design: a filesystem server whose library keeps no data cache (FAT) pays a call to the block
//! cache server for every read, so a random 4 KiB read costs two IPC hops where WFS's costs one.
//! This wrapper answers small reads (at most [`SMALL_READ`] bytes) from a direct-mapped table of
//! whole blocks, filling a missing block with one device read of the whole block. Everything else
//! goes straight to the device, unchanged: large reads (sequential ones, which the cache server
//! already reads ahead for, and which would only thrash a small table), and every write, which first
//! drops the cached copies it overlaps. So the wrapper holds no data the device does not have, a
//! write is exactly as durable as without it, and a process restart loses nothing. A block that
//! runs past the end of the device (its last sectors missing) is never cached.

use alloc::vec;
use alloc::vec::Vec;

use crate::{BlockDevice, Result, SECTOR_SIZE};

/// Bytes of a cached block.
const BLOCK: usize = 4096;
const SECTORS_PER_BLOCK: u64 = (BLOCK / SECTOR_SIZE) as u64;
/// Largest read answered from the table.
pub const SMALL_READ: usize = 4 * BLOCK;

/// A device with a table of clean copies for small reads.
pub struct SmallReadCache<D> {
    dev: D,
    /// Per slot, the block it holds.
    tags: Vec<Option<u64>>,
    data: Vec<u8>,
    /// Blocks answered from the table, and blocks read from the device to fill it.
    pub hits: u64,
    pub misses: u64,
}

impl<D: BlockDevice> SmallReadCache<D> {
    /// `dev` with a table of `blocks` blocks (at least 1).
    pub fn new(dev: D, blocks: usize) -> Self {
        let blocks = blocks.max(1);
        SmallReadCache { dev, tags: vec![None; blocks], data: vec![0; blocks * BLOCK], hits: 0, misses: 0 }
    }

    pub fn into_inner(self) -> D {
        self.dev
    }

    fn slot(&self, block: u64) -> usize {
        (block % self.tags.len() as u64) as usize
    }

    /// Read blocks `first..=last` from the device with one request (a cluster that straddles two
    /// blocks costs one call, not two), keep a copy of each in the table, and return them.
    fn fetch(&mut self, first: u64, last: u64) -> Result<Vec<u8>> {
        let mut blocks = vec![0u8; (last - first + 1) as usize * BLOCK];
        self.dev.read(first * SECTORS_PER_BLOCK, &mut blocks)?;
        for (i, block) in (first..=last).enumerate() {
            let slot = self.slot(block);
            self.data[slot * BLOCK..(slot + 1) * BLOCK].copy_from_slice(&blocks[i * BLOCK..(i + 1) * BLOCK]);
            self.tags[slot] = Some(block);
        }
        self.misses += last - first + 1;
        Ok(blocks)
    }

    /// Forget the copies of the blocks `len` bytes at `sector` touch.
    fn drop_range(&mut self, sector: u64, len: usize) {
        let end = sector + (len / SECTOR_SIZE) as u64;
        for block in sector / SECTORS_PER_BLOCK..end.div_ceil(SECTORS_PER_BLOCK) {
            let slot = self.slot(block);
            if self.tags[slot] == Some(block) {
                self.tags[slot] = None;
            }
        }
    }

    /// Whether a read of `len` bytes at `sector` is served from the table: small, in range, and
    /// inside the device's last whole block.
    fn small(&self, sector: u64, len: usize) -> bool {
        let whole_blocks = self.dev.sector_count() / SECTORS_PER_BLOCK * SECTORS_PER_BLOCK;
        len <= SMALL_READ && len % SECTOR_SIZE == 0 && sector.saturating_add((len / SECTOR_SIZE) as u64) <= whole_blocks
    }
}

impl<D: BlockDevice> BlockDevice for SmallReadCache<D> {
    fn sector_count(&self) -> u64 {
        self.dev.sector_count()
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        if !self.small(sector, buf.len()) {
            return self.dev.read(sector, buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let end = sector + (buf.len() / SECTOR_SIZE) as u64;
        let (first, last) = (sector / SECTORS_PER_BLOCK, (end - 1) / SECTORS_PER_BLOCK);
        let skip = (sector - first * SECTORS_PER_BLOCK) as usize * SECTOR_SIZE;
        if (first..=last).any(|b| self.tags[self.slot(b)] != Some(b)) {
            // Copied from what was read, not from the table: two blocks of the range may share a slot.
            let blocks = self.fetch(first, last)?;
            buf.copy_from_slice(&blocks[skip..skip + buf.len()]);
            return Ok(());
        }
        self.hits += last - first + 1;
        let mut at = 0;
        while at < buf.len() {
            let s = sector + (at / SECTOR_SIZE) as u64;
            let (block, within) = (s / SECTORS_PER_BLOCK, (s % SECTORS_PER_BLOCK) as usize * SECTOR_SIZE);
            let n = (BLOCK - within).min(buf.len() - at);
            let slot = self.slot(block);
            buf[at..at + n].copy_from_slice(&self.data[slot * BLOCK + within..slot * BLOCK + within + n]);
            at += n;
        }
        Ok(())
    }

    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        let total: usize = runs.iter().map(|(_, b)| b.len()).sum();
        if total > SMALL_READ {
            return self.dev.read_vectored(runs);
        }
        for (sector, buf) in runs.iter_mut() {
            self.read(*sector, buf)?;
        }
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.drop_range(sector, buf.len());
        self.dev.write(sector, buf)
    }

    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        for (sector, buf) in runs {
            self.drop_range(*sector, buf.len());
        }
        self.dev.write_vectored(runs)
    }

    fn flush(&mut self) -> Result<()> {
        self.dev.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RamDisk;

    /// A device whose sector `s` holds bytes derived from `s`, 8 blocks and 3 sectors long.
    fn disk() -> RamDisk {
        let sectors = 8 * SECTORS_PER_BLOCK + 3;
        let bytes = (0..sectors as usize * SECTOR_SIZE).map(|i| (i / SECTOR_SIZE * 31 + i) as u8).collect();
        RamDisk::from_bytes(bytes)
    }

    fn read(dev: &mut impl BlockDevice, sector: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        dev.read(sector, &mut buf).unwrap();
        buf
    }

    #[test]
    fn small_reads_match_the_device_and_repeat_from_the_table() {
        let mut plain = disk();
        let mut c = SmallReadCache::new(disk(), 4);
        for (sector, len) in [(0, 4096), (3, 1024), (7, 2048), (9, 8192), (5, SMALL_READ - 512)] {
            assert_eq!(read(&mut c, sector, len), read(&mut plain, sector, len), "{sector} {len}");
        }
        let misses = c.misses;
        assert_eq!(read(&mut c, 8, 4096), read(&mut plain, 8, 4096));
        assert_eq!(c.misses, misses, "block 1 was cached");
        assert!(c.hits > 0);
    }

    #[test]
    fn a_write_drops_the_copies_it_overlaps_and_large_reads_pass_through() {
        let mut c = SmallReadCache::new(disk(), 8);
        read(&mut c, 8, 4096);
        c.write(10, &[0xAB; 512]).unwrap();
        let back = read(&mut c, 8, 4096);
        assert_eq!(&back[1024..1536], &[0xAB; 512][..], "the write is seen, not the old copy");
        c.write_vectored(&[(16, &[0xCD; 4096][..])]).unwrap();
        assert_eq!(read(&mut c, 16, 512), vec![0xCD; 512]);
        let (hits, misses) = (c.hits, c.misses);
        let big = read(&mut c, 0, SMALL_READ + 4096);
        assert_eq!((c.hits, c.misses), (hits, misses), "a large read goes straight to the device");
        assert_eq!(&big[16 * SECTOR_SIZE..17 * SECTOR_SIZE], &[0xCD; 512][..]);
        // The table never served a byte the device does not hold.
        let mut plain = c.into_inner();
        assert_eq!(read(&mut plain, 8, 4096), back);
    }

    #[test]
    fn the_partial_last_block_and_vectored_reads() {
        let mut plain = disk();
        let mut c = SmallReadCache::new(disk(), 2);
        let last = 8 * SECTORS_PER_BLOCK;
        assert_eq!(read(&mut c, last, 3 * SECTOR_SIZE), read(&mut plain, last, 3 * SECTOR_SIZE));
        assert_eq!((c.hits, c.misses), (0, 0), "past the last whole block: never cached");
        let (mut a, mut b) = (vec![0u8; 512], vec![0u8; 4096]);
        c.read_vectored(&mut [(1, &mut a[..]), (24, &mut b[..])]).unwrap();
        assert_eq!(a, read(&mut plain, 1, 512));
        assert_eq!(b, read(&mut plain, 24, 4096));
        assert!(c.read(last + 3, &mut [0u8; 512]).is_err(), "out of range is the device's error");
    }
}
