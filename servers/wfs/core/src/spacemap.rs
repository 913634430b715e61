//! The persisted space map: the allocation bitmap, written copy-on-write at every commit, so mount
//! reads a few blocks instead of walking all metadata.
//!
//! Design: bitmap blocks of `MAP_BITS` bits (one per device block, 1 = in use) hang under a small
//! radix tree of index nodes (`FANOUT` checksummed pointers each); the superblock holds the top
//! pointer and the number of index levels. Every pointer carries the child's checksum and birth, as
//! in the filesystem tree. A commit rewrites only the bitmap blocks whose bits changed (the
//! allocator notes them) and the index nodes above them, into fresh blocks; the old ones are freed
//! under the deferred rule like any block the durable state references.
//!
//! The map records the state *after* the commit that writes it: blocks freed by that commit are
//! written as free (they are, once it is durable), and the map's own blocks are never recorded
//! (mount marks them used from the pointers it followed). Leaving its own blocks out is what keeps
//! the map from depending on itself: giving the map new blocks changes no bit it records, so one
//! pass is enough. While an explicit transaction is open the map also records as free the blocks
//! only the transaction uses and the shared blocks the main state released (see `txn`): the map
//! describes the main state's durable tree alone. The map is redundant with the trees, so a map that fails its checksums is not
//! fatal: mount falls back to the full walk and the next commit writes a fresh map; fsck compares
//! the map with a walk and repairs it.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::{Error, Result};

use crate::allocator::{Allocator, MAP_BITS};
use crate::ondisk::{get_u16, get_u64, put_u16, put_u64, superblock_addrs, BlockPtr, BLOCK_SIZE};
use crate::store::Store;

/// Pointers per index node: (4096 − 24) / 28.
pub const FANOUT: usize = 145;
/// Index node magic.
pub const MAP_MAGIC: [u8; 4] = *b"WFSM";
const HDR: usize = 24;

/// Blocks per level: level 0 = bitmap blocks, then index levels up to a single top node.
fn shape(total: u64) -> Vec<usize> {
    let mut v = vec![total.div_ceil(MAP_BITS) as usize];
    loop {
        let n = v.last().copied().unwrap_or(1).div_ceil(FANOUT);
        v.push(n);
        if n == 1 {
            return v;
        }
    }
}

/// Where the map's blocks are (pointers as the committed map recorded them).
#[derive(Debug, Clone)]
pub struct SpaceMap {
    /// `levels[0]`: bitmap blocks; `levels[k]`: index nodes of level k; the last has one node.
    levels: Vec<Vec<BlockPtr>>,
}

impl SpaceMap {
    /// A map with no block on disk yet (every block is written by the next commit).
    pub fn new(total: u64) -> SpaceMap {
        SpaceMap { levels: shape(total).into_iter().map(|n| vec![BlockPtr::default(); n]).collect() }
    }

    /// Index levels above the bitmap blocks (what the superblock records).
    pub fn index_levels(&self) -> u8 {
        (self.levels.len() - 1) as u8
    }

    /// Blocks of the whole map (the commit reserve must cover rewriting all of them).
    pub fn blocks(&self) -> u64 {
        self.levels.iter().map(|l| l.len() as u64).sum()
    }

    /// Addresses of the map's blocks on disk.
    pub fn addrs(&self) -> impl Iterator<Item = u64> + '_ {
        self.levels.iter().flatten().map(|p| p.addr).filter(|&a| a != 0)
    }

    pub fn top(&self) -> BlockPtr {
        self.levels.last().and_then(|l| l.first()).copied().unwrap_or_default()
    }

    /// Read the map whose top node is `top` and build the allocator it describes: recorded bits,
    /// the map's own blocks and the superblocks.
    pub fn load<D: BlockDevice>(
        st: &mut Store<D>,
        top: BlockPtr,
        index_levels: u8,
        total: u64,
    ) -> Result<(SpaceMap, Allocator)> {
        let mut map = SpaceMap::new(total);
        if index_levels != map.index_levels() {
            return Err(Error::Corrupt { block: top.addr });
        }
        let nlev = map.levels.len();
        map.levels[nlev - 1][0] = top;
        let mut buf = vec![0u8; BLOCK_SIZE];
        for k in (1..nlev).rev() {
            for i in 0..map.levels[k].len() {
                let ptr = map.levels[k][i];
                st.read_verified(&ptr, &mut buf)?;
                let first = i * FANOUT;
                let want = map.levels[k - 1].len().saturating_sub(first).min(FANOUT);
                if buf[0..4] != MAP_MAGIC
                    || buf[4] as usize != k
                    || get_u16(&buf, 8) as usize != want
                    || get_u64(&buf, 16) != ptr.birth
                {
                    return Err(Error::Corrupt { block: ptr.addr });
                }
                for j in 0..want {
                    map.levels[k - 1][first + j] = BlockPtr::decode(&buf[HDR + j * BlockPtr::SIZE..])?;
                }
            }
        }
        let mut words = Vec::with_capacity(total.div_ceil(64) as usize);
        for ptr in map.levels[0].clone() {
            st.read_verified(&ptr, &mut buf)?;
            words.extend(buf.chunks_exact(8).map(|w| get_u64(w, 0)));
        }
        let mut alloc = Allocator::from_words(total, words);
        for a in map.addrs().chain(superblock_addrs(total)) {
            alloc.set_bit(a);
        }
        Ok((map, alloc))
    }

    /// Give every changed bitmap block (and the index nodes above it) a new home and encode it;
    /// the blocks go into `out` to be written with the commit's tree nodes, before its barrier.
    /// Returns the new top pointer.
    pub fn write<D: BlockDevice>(&mut self, st: &mut Store<D>, out: &mut Vec<(u64, Vec<u8>)>) -> Result<BlockPtr> {
        let txid = st.txid;
        let mut dirty: Vec<BTreeSet<usize>> = vec![st.alloc.take_changed().into_iter().collect()];
        for k in 1..self.levels.len() {
            let up = dirty[k - 1].iter().map(|i| i / FANOUT).collect();
            dirty.push(up);
        }
        if dirty[0].is_empty() {
            return Ok(self.top());
        }
        for (k, set) in dirty.iter().enumerate() {
            for &i in set {
                let old = self.levels[k][i].addr;
                if old != 0 {
                    st.alloc.free_deferred_untracked(old);
                }
                self.levels[k][i] = BlockPtr { addr: st.alloc.alloc_untracked()?, addr2: 0, crc: 0, birth: txid };
            }
        }
        // Recorded as free: the map's own blocks, what this commit frees, and, while an explicit
        // transaction is open, its blocks (no durable state references them before its commit) and
        // the shared blocks this state released (kept in memory for the transaction's tree).
        let mut skip: Vec<u64> = self
            .addrs()
            .chain(st.alloc.deferred().iter().copied())
            .chain(st.alloc.tx_owned.iter().copied())
            .chain(st.pinned.iter().copied())
            .collect();
        skip.sort_unstable();
        for &i in &dirty[0] {
            let mut b = vec![0u8; BLOCK_SIZE];
            for (w, word) in st.alloc.map_words(i).iter().enumerate() {
                put_u64(&mut b, w * 8, *word);
            }
            let (lo, hi) = (i as u64 * MAP_BITS, (i as u64 + 1) * MAP_BITS);
            let from = skip.partition_point(|&a| a < lo);
            for &a in skip[from..].iter().take_while(|&&a| a < hi) {
                let bit = (a - lo) as usize;
                b[bit / 8] &= !(1 << (bit % 8));
            }
            let p = &mut self.levels[0][i];
            p.crc = st.csum.of(&b);
            out.push((p.addr, b));
        }
        for (k, set) in dirty.iter().enumerate().skip(1) {
            for &i in set {
                let first = i * FANOUT;
                let kids = &self.levels[k - 1][first..(first + FANOUT).min(self.levels[k - 1].len())];
                let mut b = vec![0u8; BLOCK_SIZE];
                b[0..4].copy_from_slice(&MAP_MAGIC);
                b[4] = k as u8;
                put_u16(&mut b, 8, kids.len() as u16);
                put_u64(&mut b, 16, txid);
                for (j, c) in kids.iter().enumerate() {
                    c.encode(&mut b[HDR + j * BlockPtr::SIZE..HDR + (j + 1) * BlockPtr::SIZE]);
                }
                let p = &mut self.levels[k][i];
                p.crc = st.csum.of(&b);
                out.push((p.addr, b));
            }
        }
        Ok(self.top())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_grows_an_index_level_per_fanout() {
        assert_eq!(shape(1000), [1, 1]);
        assert_eq!(shape(MAP_BITS * 145), [145, 1]);
        assert_eq!(shape(MAP_BITS * 145 + 1), [146, 2, 1]);
        assert_eq!(SpaceMap::new(MAP_BITS * 145 + 1).blocks(), 149);
    }
}
