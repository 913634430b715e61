//! File data: reads, writes, extension with zeros, and truncation.
//!
//! Design: a byte range is translated through the node's run map into contiguous disk extents and
//! each extent is one device request straight into (or out of) the caller's buffer; only partial
//! sectors at the ends go through a bounce buffer. Growth allocates every cluster a write needs in
//! one [`FatTable::allocate`](crate::table::FatTable::allocate) call, continuing right after the
//! file's last cluster when it is free, so sequential writes stay contiguous. The new size is kept
//! in the node and reaches the directory entry at the next commit, after the FAT.

use alloc::vec;
use blockdev::BlockDevice;
use protocol::fs::NodeId;
use protocol::{Error, Result};

use crate::dirent::{to_dos, ATTR_ARCHIVE};
use crate::table::Entry;
use crate::volume::FatFs;

/// Zeros are written in pieces of this size when a file is extended.
const ZERO_CHUNK: usize = 64 * 1024;

impl<D: BlockDevice> FatFs<D> {
    /// Disk extents covering `len` bytes of node `id` from `pos`, passed to `f(device offset,
    /// offset within the range, length)`.
    fn for_extents(
        &mut self,
        id: NodeId,
        pos: u64,
        len: usize,
        mut f: impl FnMut(&mut Self, u64, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let cs = self.geo.cluster_size as u64;
        let mut done = 0usize;
        while done < len {
            let p = pos + done as u64;
            let idx = (p / cs) as u32;
            let (disk, contig) = self.runs(id)?.lookup(idx).ok_or(Error::Corrupt { block: id })?;
            let in_cl = p % cs;
            let avail = contig as u64 * cs - in_cl;
            let take = avail.min((len - done) as u64) as usize;
            let off = self.geo.cluster_offset(disk) + in_cl;
            f(self, off, done, take)?;
            done += take;
        }
        Ok(())
    }

    pub(crate) fn read_file(&mut self, id: NodeId, off: u64, buf: &mut [u8]) -> Result<usize> {
        let n = self.node(id)?;
        if n.ent.is_dir() {
            return Err(Error::IsADirectory);
        }
        let size = n.ent.size as u64;
        if off >= size || buf.is_empty() {
            return Ok(0);
        }
        let cs = self.geo.cluster_size as u64;
        if (self.runs(id)?.len() as u64) * cs < size {
            // The chain ends before the size says it should.
            return Err(Error::Corrupt { block: id });
        }
        let len = (size - off).min(buf.len() as u64) as usize;
        self.for_extents(id, off, len, |fs, dev_off, at, take| fs.dev_read(dev_off, &mut buf[at..at + take]))?;
        Ok(len)
    }

    /// Make sure node `id` has clusters for `bytes` bytes.
    fn ensure_clusters(&mut self, id: NodeId, bytes: u64) -> Result<()> {
        let cs = self.geo.cluster_size as u64;
        let need = bytes.div_ceil(cs) as u32;
        let runs = self.runs(id)?;
        let have = runs.len();
        if need <= have {
            return Ok(());
        }
        let last = runs.last();
        let new = self.fat.allocate(need - have, last)?;
        let runs = self.runs(id)?;
        for c in new {
            runs.push(c);
        }
        let first = runs.first().unwrap_or(0);
        self.node_mut(id)?.ent.cluster = first;
        Ok(())
    }

    /// Write `data` at `off` into clusters that already exist.
    fn write_range(&mut self, id: NodeId, off: u64, data: &[u8]) -> Result<()> {
        self.for_extents(id, off, data.len(), |fs, dev_off, at, take| fs.dev_write(dev_off, &data[at..at + take]))
    }

    /// Write zeros over `[from, to)`, allocating as needed.
    fn zero_fill(&mut self, id: NodeId, from: u64, to: u64) -> Result<()> {
        self.ensure_clusters(id, to)?;
        let zeros = vec![0u8; ZERO_CHUNK.min((to - from) as usize)];
        let mut p = from;
        while p < to {
            let n = ((to - p) as usize).min(zeros.len());
            self.write_range(id, p, &zeros[..n])?;
            p += n as u64;
        }
        Ok(())
    }

    fn touch(&mut self, id: NodeId, size: u32) -> Result<()> {
        let (d, t, _) = to_dos(self.clock.now());
        let n = self.node_mut(id)?;
        n.ent.size = size;
        n.ent.wdate = d;
        n.ent.wtime = t;
        n.ent.adate = d;
        n.ent.attr |= ATTR_ARCHIVE;
        self.dirty.insert(id);
        Ok(())
    }

    pub(crate) fn write_file(&mut self, id: NodeId, off: u64, data: &[u8]) -> Result<usize> {
        let n = self.node(id)?;
        if n.ent.is_dir() {
            return Err(Error::IsADirectory);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let end = off.checked_add(data.len() as u64).ok_or(Error::FileTooLarge)?;
        if end > u32::MAX as u64 {
            return Err(Error::FileTooLarge);
        }
        let size = n.ent.size as u64;
        self.begin_change()?;
        // Allocate everything first: a volume without room for the whole write gets nothing.
        self.ensure_clusters(id, end)?;
        if off > size {
            self.zero_fill(id, size, off)?;
        }
        self.write_range(id, off, data)?;
        self.touch(id, size.max(end) as u32)?;
        Ok(data.len())
    }

    /// Change the size of node `id` (a file), freeing or zero-filling clusters.
    pub(crate) fn truncate(&mut self, id: NodeId, new: u64) -> Result<()> {
        if new > u32::MAX as u64 {
            return Err(Error::FileTooLarge);
        }
        let size = self.node(id)?.ent.size as u64;
        if new == size {
            return Ok(());
        }
        self.begin_change()?;
        if new > size {
            self.zero_fill(id, size, new)?;
            return self.touch(id, new as u32);
        }
        let cs = self.geo.cluster_size as u64;
        let keep = new.div_ceil(cs) as u32;
        let runs = self.runs(id)?;
        let have = runs.len();
        let first = runs.first();
        let last_kept = if keep > 0 { runs.lookup(keep - 1).map(|r| r.0) } else { None };
        self.touch(id, new as u32)?;
        if keep == 0 {
            self.node_mut(id)?.ent.cluster = 0;
        }
        // The entry must stop referencing the clusters before the FAT frees them.
        self.dirty.remove(&id);
        self.write_entry(id)?;
        if keep < have {
            match last_kept {
                Some(l) => {
                    if let Some(tail) = self.fat.next(l)? {
                        // The cut goes to disk before the frees (phase one of the FAT flush).
                        self.fat.set(l, Entry::End);
                        self.fat.free_chain(tail)?;
                    }
                }
                None => {
                    if let Some(f) = first {
                        self.fat.free_chain(f)?;
                    }
                }
            }
            self.runs(id)?.truncate(keep);
        }
        Ok(())
    }
}
