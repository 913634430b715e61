//! Extent items: one tree item maps a run of contiguous file blocks to contiguous device blocks.
//!
//! Design: an EXTENT item (ino, file block of the first block) holds the device address of the
//! first block, the run length (1..=`MAX_EXTENT`), the birth txid of the run and one checksum per
//! block. Per-block checksums (not one per extent) because reads and overwrites work on single
//! blocks: a 4 KiB random read verifies exactly the block it reads, a checksum mismatch names the
//! block, and splitting an extent on a copy-on-write overwrite keeps the checksums of the pieces
//! without re-reading data. A run has one birth txid, so the deferred-free rules (which depend on
//! the birth) apply to the run as a whole: runs of different births are never merged.
//!
//! Because an extent is at most `MAX_EXTENT` blocks long, the extent that covers file block `b`
//! starts within `MAX_EXTENT - 1` blocks before it: a lookup is one `floor` descent bounded to that
//! window, no back-pointer.
//! Updates (`set_blocks`) re-encode the affected neighbourhood: the items overlapping the changed
//! range and its two neighbouring blocks are expanded to per-block pointers, patched, and encoded
//! again as maximal runs, which merges appends into the previous extent and splits an extent whose
//! middle was rewritten elsewhere.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::{Error, Result};

use crate::btree::{self, Child};
use crate::ondisk::{get_u32, get_u64, put_u32, put_u64, BlockPtr, Key, KIND_EXTENT};
use crate::store::Store;

/// Longest run one item maps (1 MiB); keeps an item (24 + 4 × 256 bytes) well under the value limit.
pub const MAX_EXTENT: u64 = 256;
/// Bytes before the checksums: device address (8), length (4), zero (4), birth (8).
const HDR: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// File block of the first block (the key's offset).
    pub start: u64,
    /// Device block of the first block.
    pub addr: u64,
    pub birth: u64,
    /// One checksum per block; the length of the run.
    pub crcs: Vec<u32>,
}

impl Extent {
    pub fn len(&self) -> u64 {
        self.crcs.len() as u64
    }

    /// One past the last file block.
    pub fn end(&self) -> u64 {
        self.start + self.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = alloc::vec![0u8; HDR + 4 * self.crcs.len()];
        put_u64(&mut v, 0, self.addr);
        put_u32(&mut v, 8, self.crcs.len() as u32);
        put_u64(&mut v, 16, self.birth);
        for (i, c) in self.crcs.iter().enumerate() {
            put_u32(&mut v, HDR + 4 * i, *c);
        }
        v
    }

    /// Decode the item stored under file block `start`; checks lengths and that no address or
    /// block number overflows (whether the run lies on the device is the reader's check).
    pub fn decode(start: u64, v: &[u8]) -> Result<Extent> {
        let bad = Error::Corrupt { block: 0 };
        if v.len() < HDR {
            return Err(bad);
        }
        let (addr, n, birth) = (get_u64(v, 0), get_u32(v, 8) as u64, get_u64(v, 16));
        if n == 0 || n > MAX_EXTENT || v.len() != HDR + 4 * n as usize || get_u32(v, 12) != 0 || addr == 0 {
            return Err(bad);
        }
        if addr.checked_add(n).is_none() || start.checked_add(n).is_none() {
            return Err(bad);
        }
        let crcs = (0..n as usize).map(|i| get_u32(v, HDR + 4 * i)).collect();
        Ok(Extent { start, addr, birth, crcs })
    }

    /// The pointer of the `i`-th block of the run.
    pub fn ptr(&self, i: usize) -> BlockPtr {
        BlockPtr { addr: self.addr + i as u64, addr2: 0, crc: self.crcs[i], birth: self.birth }
    }

    /// (file block, pointer) of every block of the run.
    pub fn blocks(&self) -> impl Iterator<Item = (u64, BlockPtr)> + '_ {
        (0..self.crcs.len()).map(move |i| (self.start + i as u64, self.ptr(i)))
    }

    /// True if every block lies strictly between the two superblocks of a `total`-block device.
    pub fn on_device(&self, total: u64) -> bool {
        self.addr != 0 && self.addr + self.len() < total
    }
}

/// The extents of file `ino` that overlap file blocks `first..=last`, in order: the one that
/// starts before `first` and covers it (found by one `floor` descent), then at most `limit` items
/// that start inside the range.
pub fn overlapping<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    first: u64,
    last: u64,
    limit: usize,
) -> Result<Vec<Extent>> {
    let mut list = Vec::new();
    if first > 0 {
        let lo = Key::new(ino, KIND_EXTENT, first.saturating_sub(MAX_EXTENT - 1));
        if let Some((k, v)) = btree::floor(st, root, &lo, &Key::new(ino, KIND_EXTENT, first - 1))? {
            let e = Extent::decode(k.off, &v)?;
            if e.end() > first {
                list.push(e);
            }
        }
    }
    let mut out = Vec::new();
    btree::scan(st, root, Key::new(ino, KIND_EXTENT, first), Key::new(ino, KIND_EXTENT, last), limit, &mut out)?;
    for (k, v) in out {
        list.push(Extent::decode(k.off, &v)?);
    }
    Ok(list)
}

/// The pointers of blocks `first..=last` of file `ino`, as (file block, pointer); holes are absent.
pub fn blocks<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, BlockPtr)>> {
    let mut out = Vec::new();
    for e in overlapping(st, root, ino, first, last, usize::MAX)? {
        out.extend(e.blocks().filter(|(fb, _)| *fb >= first && *fb <= last));
    }
    Ok(out)
}

/// Encode per-block pointers (sorted by file block) as maximal runs: consecutive file blocks in
/// consecutive device blocks with one birth, at most `MAX_EXTENT` long.
pub fn runs(map: &BTreeMap<u64, BlockPtr>) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::new();
    for (&fb, p) in map {
        if let Some(e) = out.last_mut() {
            if e.end() == fb && e.addr + e.len() == p.addr && e.birth == p.birth && e.len() < MAX_EXTENT {
                e.crcs.push(p.crc);
                continue;
            }
        }
        out.push(Extent { start: fb, addr: p.addr, birth: p.birth, crcs: alloc::vec![p.crc] });
    }
    out
}

/// The tree edits that make file `ino`'s blocks `first..first + new.len()` point at `new`:
/// (keys to remove, items to insert). Blocks outside the range keep their pointers; the items
/// around the range are re-encoded so runs merge and split as the addresses dictate.
pub fn plan_set<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    first: u64,
    new: &[BlockPtr],
) -> Result<(Vec<u64>, Vec<Extent>)> {
    let last = first + new.len() as u64 - 1;
    // The neighbouring blocks are included so an append joins the extent before it.
    let old = overlapping(st, root, ino, first.saturating_sub(1), last.saturating_add(1), usize::MAX)?;
    let mut map = BTreeMap::new();
    for e in &old {
        map.extend(e.blocks());
    }
    for (i, p) in new.iter().enumerate() {
        map.insert(first + i as u64, *p);
    }
    let fresh = runs(&map);
    let remove = old.iter().filter(|o| !fresh.iter().any(|f| f.start == o.start)).map(|o| o.start).collect();
    let insert = fresh.into_iter().filter(|f| !old.contains(f)).collect();
    Ok((remove, insert))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(addr: u64, birth: u64) -> BlockPtr {
        BlockPtr { addr, addr2: 0, crc: addr as u32 * 7, birth }
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let e = Extent { start: 5, addr: 100, birth: 3, crcs: alloc::vec![1, 2, 3] };
        let v = e.encode();
        assert_eq!(Extent::decode(5, &v).unwrap(), e);
        assert!(Extent::decode(5, &v[..v.len() - 1]).is_err());
        let mut zero = v.clone();
        put_u32(&mut zero, 8, 0);
        assert!(Extent::decode(5, &zero).is_err());
        let mut long = v.clone();
        put_u32(&mut long, 8, MAX_EXTENT as u32 + 1);
        assert!(Extent::decode(5, &long).is_err());
        let mut wrap = v;
        put_u64(&mut wrap, 0, u64::MAX - 1);
        assert!(Extent::decode(5, &wrap).is_err());
        assert!(Extent::decode(u64::MAX - 1, &e.encode()).is_err());
    }

    #[test]
    fn runs_split_on_address_birth_gap_and_length() {
        let mut m = BTreeMap::new();
        for i in 0..300 {
            m.insert(i, p(1000 + i, 1));
        }
        m.insert(10, p(5000, 1)); // rewritten elsewhere: splits
        m.insert(400, p(1400, 1)); // after a hole: new run even though the address follows
        m.insert(401, p(1401, 2)); // another birth: new run
        let r = runs(&m);
        let shape: Vec<(u64, u64, u64)> = r.iter().map(|e| (e.start, e.addr, e.len())).collect();
        assert_eq!(
            shape,
            [(0, 1000, 10), (10, 5000, 1), (11, 1011, 256), (267, 1267, 33), (400, 1400, 1), (401, 1401, 1)]
        );
        let back: BTreeMap<u64, BlockPtr> = r.iter().flat_map(|e| e.blocks().collect::<Vec<_>>()).collect();
        assert_eq!(back, m);
    }
}
