//! File data: writing at any offset, truncating, and freeing a node.
//!
//! Design: data is copy-on-write per 4 KiB block: every block written gets a fresh address and the
//! old one is released under the free rules (a block the open transaction wrote is reusable once
//! the operation succeeds; an older one after the commit is durable). Even a block of the open
//! transaction is not overwritten in place, so a failed operation can return to the state before
//! it (see `Wfs::atomic`). Writes go to the device immediately (they touch only blocks no committed tree uses), in
//! runs of contiguous blocks (allocated as contiguous runs), CHUNK blocks at a time; the extent items
//! pointing at them (merged and split by `extent::plan_set`) carry each block's checksum and become
//! durable with the next commit. Bytes past the end of file inside the last
//! block are always zero (truncate clears them), so extending a file never exposes old data.

use alloc::vec;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::fs::FileType;
use protocol::{Error, Result};

use crate::extent;
use crate::ondisk::{BlockPtr, Inode, Key, BLOCK_SIZE, KIND_EXTENT};
use crate::read::{self, CHUNK, MAX_FILE_SIZE};
use crate::Wfs;

const BS: u64 = BLOCK_SIZE as u64;
/// Extent items removed per tree scan when freeing a file's blocks.
const BATCH: usize = 1024;
/// Blocks kept free by writes and creates (1/64 of the device, at least 64) so that unlinking and
/// truncating, which dirty tree nodes before they free anything, still work on a full filesystem.
pub(crate) fn slop(total: u64) -> u64 {
    (total / 64).max(64)
}

impl<D: BlockDevice> Wfs<D> {
    /// Write `data` at `off` into file `ino`, updating size and times; returns blocks allocated.
    pub(crate) fn file_write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<(usize, u64)> {
        self.writable()?;
        let mut inode = self.get_inode(ino)?;
        match inode.kind {
            FileType::File => {}
            FileType::Directory => return Err(Error::IsADirectory),
            _ => return Err(Error::InvalidArgument),
        }
        let end = off.checked_add(data.len() as u64).ok_or(Error::FileTooLarge)?;
        if end > MAX_FILE_SIZE {
            return Err(Error::FileTooLarge);
        }
        if data.is_empty() {
            return Ok((0, 0));
        }
        let margin = slop(self.st.alloc.total());
        let allocated = self.write_blocks(ino, &mut inode, off, data, margin)?;
        inode.size = inode.size.max(end);
        let now = self.clock.now();
        inode.mtime = now;
        inode.ctime = now;
        self.put_inode(ino, &inode)?;
        Ok((data.len(), allocated))
    }

    /// Store `data` at `off` in the blocks of `ino` (size untouched). Returns blocks allocated.
    pub(crate) fn write_blocks(
        &mut self,
        ino: u64,
        inode: &mut Inode,
        off: u64,
        data: &[u8],
        margin: u64,
    ) -> Result<u64> {
        let end = off + data.len() as u64;
        let (b0, b1) = (off / BS, (end - 1) / BS);
        let mut allocated = 0;
        let mut cb = b0;
        let mut buf = Vec::new();
        while cb <= b1 {
            let ce = b1.min(cb + CHUNK - 1);
            let n = (ce - cb + 1) as usize;
            let mut old: Vec<Option<BlockPtr>> = vec![None; n];
            for (fb, p) in extent::blocks(&mut self.st, &self.root, ino, cb, ce)? {
                old[(fb - cb) as usize] = Some(p);
            }
            let (cs, ce_bytes) = (cb * BS, (ce + 1) * BS);
            let (s, e) = (off.max(cs), end.min(ce_bytes));
            // A chunk the request covers whole is written straight from `data` (no copy); otherwise
            // it is assembled in `buf`, partially covered edge blocks keeping their old bytes.
            let whole = s == cs && e == ce_bytes;
            if !whole {
                buf.clear();
                buf.resize(n * BLOCK_SIZE, 0);
                for idx in [0, n - 1] {
                    let bs = cs + idx as u64 * BS;
                    let covered = s <= bs && e >= bs + BS;
                    if let (false, Some(p)) = (covered, old[idx]) {
                        read::read_run(&mut self.st, &[p], &mut buf[idx * BLOCK_SIZE..(idx + 1) * BLOCK_SIZE])?;
                    }
                }
                buf[(s - cs) as usize..(e - cs) as usize]
                    .copy_from_slice(&data[(s - off) as usize..(e - off) as usize]);
            }
            let src: &[u8] = if whole { &data[(s - off) as usize..(e - off) as usize] } else { &buf };
            // Every block gets a fresh address (in as few contiguous runs as the free space
            // allows), even one this transaction wrote: the state before this operation, which a
            // failed operation returns to, may reference it. The old block is released (at once
            // if this transaction wrote it, once the operation succeeds).
            let need = n as u64;
            // Data may not eat the blocks the commit needs (the extent leaves of this chunk and
            // the inode), nor a margin that keeps deletes possible.
            self.room(4 + n as u64 / 64, need + margin)?;
            let addrs = self.st.alloc_data(need)?;
            allocated += need;
            let mut i = 0;
            while i < n {
                let mut j = i + 1;
                while j < n && addrs[j - 1].checked_add(1) == Some(addrs[j]) {
                    j += 1;
                }
                self.st.write_raw(addrs[i], &src[i * BLOCK_SIZE..j * BLOCK_SIZE])?;
                i = j;
            }
            let txid = self.st.txid;
            let ptrs: Vec<BlockPtr> = addrs
                .iter()
                .enumerate()
                .map(|(i, a)| BlockPtr {
                    addr: *a,
                    addr2: 0,
                    crc: self.st.csum.of(&src[i * BLOCK_SIZE..(i + 1) * BLOCK_SIZE]),
                    birth: txid,
                })
                .collect();
            let (remove, insert) = extent::plan_set(&mut self.st, &self.root, ino, cb, &ptrs)?;
            for start in remove {
                self.tree_remove(&Key::new(ino, KIND_EXTENT, start))?;
            }
            for e in insert {
                self.tree_insert(Key::new(ino, KIND_EXTENT, e.start), e.encode())?;
            }
            for (p, addr) in old.iter().zip(&addrs) {
                match p {
                    Some(p) if p.addr != *addr => self.st.release(p),
                    Some(_) => {}
                    None => inode.blocks += 1,
                }
            }
            cb = ce + 1;
        }
        Ok(allocated)
    }

    /// Drop every data block of `ino` at file block `from` or later (an extent that straddles
    /// `from` is cut short).
    fn free_extents_from(&mut self, ino: u64, inode: &mut Inode, from: u64) -> Result<()> {
        loop {
            let ext = extent::overlapping(&mut self.st, &self.root, ino, from, u64::MAX, BATCH)?;
            if ext.is_empty() {
                return Ok(());
            }
            for mut e in ext {
                let key = Key::new(ino, KIND_EXTENT, e.start);
                let keep = from.saturating_sub(e.start) as usize;
                for (_, p) in e.blocks().skip(keep) {
                    self.st.release(&p);
                }
                inode.blocks = inode.blocks.saturating_sub(e.len() - keep as u64);
                if keep == 0 {
                    self.tree_remove(&key)?;
                } else {
                    e.crcs.truncate(keep);
                    self.tree_insert(key, e.encode())?;
                }
            }
        }
    }

    /// Set the size of file `ino` (holes on growth, freed blocks on shrink).
    pub(crate) fn file_truncate(&mut self, ino: u64, inode: &mut Inode, size: u64) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(Error::FileTooLarge);
        }
        if size < inode.size {
            self.free_extents_from(ino, inode, size.div_ceil(BS))?;
            let tail = size % BS;
            if tail != 0 && !extent::blocks(&mut self.st, &self.root, ino, size / BS, size / BS)?.is_empty() {
                // Keep "bytes past EOF are zero" for a later extension.
                let zeros = vec![0u8; (BS - tail) as usize];
                self.write_blocks(ino, inode, size, &zeros, 0)?;
            }
        }
        inode.size = size;
        Ok(())
    }

    /// Free a node with no links left: its data, its inode and its orphan record.
    pub(crate) fn delete_inode(&mut self, ino: u64) -> Result<()> {
        let mut inode = self.get_inode(ino)?;
        self.free_extents_from(ino, &mut inode, 0)?;
        self.tree_remove(&read::inode_key(ino))?;
        self.tree_remove(&Key::new(crate::ondisk::META_OID, crate::ondisk::KIND_ORPHAN, ino))?;
        Ok(())
    }
}
