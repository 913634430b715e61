//! The file allocation table, cached in memory with write-back to every FAT copy.
//!
//! Design: the first FAT copy is read whole at mount (one device request) and kept as raw bytes, so
//! FAT12's 1.5-byte packing needs no special cases beyond the accessors and a flush writes exactly
//! the bytes that were read. Every change marks its 512-byte chunk dirty; [`FatTable::flush`]
//! writes the dirty chunks, coalesced into runs, to every copy, so allocating a thousand clusters
//! costs a handful of sector writes at the next commit instead of one per cluster. The free count is
//! computed by a full scan at mount and then kept exact on every `set`, which is what FSInfo needs.
//! Allocation starts from the next-free hint (or right after the chain being extended) and takes
//! free clusters in ascending order, which yields one contiguous run whenever free space allows.
//! The cost: memory equal to one FAT copy (4 bytes per cluster on FAT32).
//!
//! Crash order inside a flush: changes that only make an unreachable cluster allocated (the body
//! of a new chain) or cut a chain short are written first; changes that link an existing chain to
//! new clusters or free clusters are *deferred* (their old value is remembered) and written after a
//! barrier. So a power cut between the two phases never leaves a reachable chain that runs into a
//! free cluster. Sectors holding both kinds are written in phase one with the deferred entries
//! temporarily reverted, then again in phase two.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::{Error, Result};

use crate::bpb::{le16, le32, FatType, Geometry};

/// What a FAT entry says about a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Free,
    Next(u32),
    End,
    Bad,
}

/// The in-memory FAT.
pub struct FatTable {
    kind: FatType,
    bytes: Vec<u8>,
    /// One bit per 512-byte chunk of `bytes`.
    dirty: Vec<u64>,
    any_dirty: bool,
    /// Entries changed by links and frees since the last flush, with their value on disk.
    deferred: BTreeMap<u32, u32>,
    clusters: u32,
    free: u32,
    hint: u32,
    offset: u64,
    copy_bytes: u64,
    copies: u32,
}

impl FatTable {
    /// Read the first FAT copy and count free clusters.
    pub fn load<D: BlockDevice>(dev: &mut D, geo: &Geometry) -> Result<FatTable> {
        if geo.fat_offset % SECTOR_SIZE as u64 != 0 || geo.fat_bytes % SECTOR_SIZE as u64 != 0 {
            return Err(Error::Corrupt { block: 0 });
        }
        let mut bytes = vec![0u8; geo.fat_bytes as usize];
        dev.read(geo.primary_fat_offset() / SECTOR_SIZE as u64, &mut bytes)?;
        let chunks = bytes.len().div_ceil(SECTOR_SIZE);
        let mut t = FatTable {
            kind: geo.fat_type,
            bytes,
            dirty: vec![0; chunks.div_ceil(64)],
            any_dirty: false,
            deferred: BTreeMap::new(),
            clusters: geo.clusters,
            free: 0,
            hint: 2,
            offset: geo.primary_fat_offset(),
            copy_bytes: geo.fat_bytes,
            copies: if geo.active_fat.is_some() { 1 } else { geo.num_fats },
        };
        t.free = (2..=t.max_cluster()).filter(|&c| t.raw(c) == 0).count() as u32;
        Ok(t)
    }

    /// Highest valid cluster number.
    pub fn max_cluster(&self) -> u32 {
        self.clusters + 1
    }

    pub fn free_count(&self) -> u32 {
        self.free
    }

    pub fn next_free_hint(&self) -> u32 {
        self.hint
    }

    /// Start allocation searches at `c` (from FSInfo); ignored when out of range.
    pub fn set_hint(&mut self, c: u32) {
        if c >= 2 && c <= self.max_cluster() {
            self.hint = c;
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.any_dirty
    }

    fn raw(&self, c: u32) -> u32 {
        raw_entry(self.kind, &self.bytes, c)
    }

    fn mark(&mut self, byte: usize) {
        let chunk = byte / SECTOR_SIZE;
        self.dirty[chunk / 64] |= 1 << (chunk % 64);
        self.any_dirty = true;
    }

    fn set_raw(&mut self, c: u32, v: u32) {
        let c = c as usize;
        match self.kind {
            FatType::Fat12 => {
                let off = c + c / 2;
                let old = le16(&self.bytes, off);
                let new = if c & 1 == 1 {
                    (old & 0x000F) | ((v as u16 & 0xFFF) << 4)
                } else {
                    (old & 0xF000) | (v as u16 & 0xFFF)
                };
                self.bytes[off..off + 2].copy_from_slice(&new.to_le_bytes());
                self.mark(off);
                self.mark(off + 1);
            }
            FatType::Fat16 => {
                self.bytes[c * 2..c * 2 + 2].copy_from_slice(&(v as u16).to_le_bytes());
                self.mark(c * 2);
            }
            FatType::Fat32 => {
                // The top four bits are reserved and must be preserved.
                let old = le32(&self.bytes, c * 4);
                let new = (old & 0xF000_0000) | (v & 0x0FFF_FFFF);
                self.bytes[c * 4..c * 4 + 4].copy_from_slice(&new.to_le_bytes());
                self.mark(c * 4);
            }
        }
    }

    /// Decode the entry of data cluster `c`; out-of-range pointers are corruption.
    pub fn get(&self, c: u32) -> Result<Entry> {
        if c < 2 || c > self.max_cluster() {
            return Err(Error::Corrupt { block: c as u64 });
        }
        let v = self.raw(c);
        Ok(match v {
            0 => Entry::Free,
            v if v >= self.kind.eoc_min() => Entry::End,
            v if v == self.kind.bad() => Entry::Bad,
            v if v >= 2 && v <= self.max_cluster() => Entry::Next(v),
            _ => return Err(Error::Corrupt { block: c as u64 }),
        })
    }

    /// Set the entry of data cluster `c`, keeping the free count exact. Written in phase one.
    pub fn set(&mut self, c: u32, e: Entry) {
        let v = match e {
            Entry::Free => 0,
            Entry::Next(n) => n,
            Entry::End => 0x0FFF_FFFF,
            Entry::Bad => self.kind.bad(),
        };
        let was_free = self.raw(c) == 0;
        if was_free && v != 0 {
            self.free -= 1;
        } else if !was_free && v == 0 {
            self.free += 1;
        }
        self.set_raw(c, v);
    }

    /// Like [`set`](Self::set), for links into new clusters and frees: written in phase two.
    pub fn set_deferred(&mut self, c: u32, e: Entry) {
        let old = self.raw(c);
        self.deferred.entry(c).or_insert(old);
        self.set(c, e);
    }

    /// The "clean shutdown" bit in FAT entry 1 (FAT16/32 only; FAT12 has none and reports clean).
    pub fn is_clean(&self) -> bool {
        match self.kind {
            FatType::Fat12 => true,
            FatType::Fat16 => le16(&self.bytes, 2) & 0x8000 != 0,
            FatType::Fat32 => le32(&self.bytes, 4) & 0x0800_0000 != 0,
        }
    }

    pub fn set_clean(&mut self, clean: bool) {
        let (bit, cur) = match self.kind {
            FatType::Fat12 => return,
            FatType::Fat16 => (0x8000, le16(&self.bytes, 2) as u32),
            FatType::Fat32 => (0x0800_0000, le32(&self.bytes, 4)),
        };
        let new = if clean { cur | bit } else { cur & !bit };
        if new != cur {
            match self.kind {
                FatType::Fat16 => self.bytes[2..4].copy_from_slice(&(new as u16).to_le_bytes()),
                _ => self.bytes[4..8].copy_from_slice(&new.to_le_bytes()),
            }
            self.mark(2);
        }
    }

    /// Follow the chain one step: `Ok(None)` at its end; a free or bad link is corruption.
    pub fn next(&self, c: u32) -> Result<Option<u32>> {
        match self.get(c)? {
            Entry::Next(n) => Ok(Some(n)),
            Entry::End => Ok(None),
            Entry::Free | Entry::Bad => Err(Error::Corrupt { block: c as u64 }),
        }
    }

    /// Allocate `n` clusters as a chain, linked after `prev` when given. Returns the new clusters in
    /// chain order. Nothing changes when there is not enough space.
    pub fn allocate(&mut self, n: u32, prev: Option<u32>) -> Result<Vec<u32>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > self.free {
            return Err(Error::NoSpace);
        }
        let max = self.max_cluster();
        let start = match prev {
            Some(p) if p < max && self.raw(p + 1) == 0 => p + 1,
            _ => self.hint,
        };
        let mut got = Vec::with_capacity(n as usize);
        let mut c = start;
        // The free count guarantees the scan finds n clusters within one lap.
        for _ in 0..self.clusters {
            if self.raw(c) == 0 {
                got.push(c);
                if got.len() == n as usize {
                    break;
                }
            }
            c = if c >= max { 2 } else { c + 1 };
        }
        if got.len() != n as usize {
            return Err(Error::Corrupt { block: 0 });
        }
        for w in 0..got.len() {
            let e = if w + 1 < got.len() { Entry::Next(got[w + 1]) } else { Entry::End };
            self.set(got[w], e);
        }
        if let Some(p) = prev {
            self.set_deferred(p, Entry::Next(got[0]));
        }
        let last = got[got.len() - 1];
        self.hint = if last >= max { 2 } else { last + 1 };
        Ok(got)
    }

    /// Free the chain starting at `first`; returns how many clusters were freed.
    pub fn free_chain(&mut self, first: u32) -> Result<u32> {
        let mut c = first;
        let mut n = 0;
        loop {
            if n > self.clusters {
                return Err(Error::Corrupt { block: first as u64 });
            }
            let next = match self.get(c)? {
                Entry::Next(x) => Some(x),
                Entry::End => None,
                // Already free or bad: stop, the rest of the chain is not ours to free.
                Entry::Free | Entry::Bad => return Ok(n),
            };
            self.set_deferred(c, Entry::Free);
            n += 1;
            match next {
                Some(x) => c = x,
                None => return Ok(n),
            }
        }
    }

    /// Write every dirty chunk to every FAT copy, in the two phases described above.
    pub fn flush<D: BlockDevice>(&mut self, dev: &mut D) -> Result<()> {
        if !self.any_dirty {
            return Ok(());
        }
        let deferred = core::mem::take(&mut self.deferred);
        let mut finals = Vec::with_capacity(deferred.len());
        let mut phase2 = vec![0u64; self.dirty.len()];
        for (&c, &old) in &deferred {
            finals.push((c, self.raw(c)));
            self.set_raw(c, old);
            for b in self.entry_bytes(c) {
                phase2[b / SECTOR_SIZE / 64] |= 1 << ((b / SECTOR_SIZE) % 64);
            }
        }
        let phase1 = self.dirty.clone();
        let written = self.write_chunks(dev, &phase1);
        for &(c, v) in &finals {
            self.set_raw(c, v);
        }
        if let Err(e) = written {
            // Nothing is known to be on disk: keep everything pending.
            self.deferred = deferred;
            return Err(e);
        }
        if !deferred.is_empty() {
            let second = dev.flush().and_then(|_| self.write_chunks(dev, &phase2));
            if let Err(e) = second {
                self.deferred = deferred;
                return Err(e);
            }
        }
        self.dirty.iter_mut().for_each(|w| *w = 0);
        self.any_dirty = false;
        Ok(())
    }

    /// Byte range of entry `c` within the table.
    fn entry_bytes(&self, c: u32) -> core::ops::Range<usize> {
        let c = c as usize;
        match self.kind {
            FatType::Fat12 => c + c / 2..c + c / 2 + 2,
            FatType::Fat16 => c * 2..c * 2 + 2,
            FatType::Fat32 => c * 4..c * 4 + 4,
        }
    }

    /// Write the chunks set in `mask` to every copy, coalesced into runs.
    fn write_chunks<D: BlockDevice>(&self, dev: &mut D, mask: &[u64]) -> Result<()> {
        let chunks = self.bytes.len() / SECTOR_SIZE;
        let is_set = |i: usize| mask[i / 64] & (1 << (i % 64)) != 0;
        let mut i = 0;
        while i < chunks {
            if !is_set(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < chunks && is_set(i) {
                i += 1;
            }
            let data = &self.bytes[start * SECTOR_SIZE..i * SECTOR_SIZE];
            for copy in 0..self.copies as u64 {
                let off = self.offset + copy * self.copy_bytes + (start * SECTOR_SIZE) as u64;
                dev.write(off / SECTOR_SIZE as u64, data)?;
            }
        }
        Ok(())
    }
}

/// Decode an entry from a raw FAT image (used by the checker on copies read from disk).
pub fn raw_entry(kind: FatType, bytes: &[u8], c: u32) -> u32 {
    let c = c as usize;
    match kind {
        FatType::Fat12 => {
            let v = le16(bytes, c + c / 2) as u32;
            if c & 1 == 1 {
                v >> 4
            } else {
                v & 0xFFF
            }
        }
        FatType::Fat16 => le16(bytes, c * 2) as u32,
        FatType::Fat32 => le32(bytes, c * 4) & 0x0FFF_FFFF,
    }
}
