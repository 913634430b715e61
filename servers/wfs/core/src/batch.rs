//! Batched file reads: every data block of a batch of reads in one vectored device read.
//!
//! Design: a batch of positioned reads (the vfs's `read_batch`, one request from the vfs server)
//! is planned first — each read's inode and extent items give the physically contiguous runs it
//! needs, holes stay zero — and then all runs of all reads go to the device in one `read_vectored`,
//! so the block cache below sees every miss at once and the disk driver can keep many requests in
//! flight. Each block is verified against its pointer's checksum before a byte is copied out and is
//! then cached as verified; runs already in that cache are copied from it and never reach the
//! device, as in `read::file_read`. An error in any read fails the batch (the default `read_batch` does the
//! same), so the caller's per-read fallback decides which one it was.

use alloc::vec;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::fs::FileType;
use protocol::{Error, Result};

use crate::btree::Child;
use crate::ondisk::{BlockPtr, BLOCK_SIZE, SECTORS_PER_BLOCK};
use crate::read::{file_runs, get_inode, remember_run, verify_run};
use crate::store::Store;

/// One run to read: its pointers (contiguous on disk) and where its overlap with the read goes.
struct Piece {
    ptrs: Vec<BlockPtr>,
    /// Bytes of the run to copy: `[skip, skip + len)`, to `out[dst..]`.
    skip: usize,
    len: usize,
    dst: usize,
}

/// `FileSystem::read_batch` for the tree `root`: read `i` is `reads[i] = (ino, offset, len)` and
/// lands in `out` after read `i-1`'s `len` bytes; returns each read's byte count.
pub fn read_batch<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    reads: &[(u64, u64, u32)],
    out: &mut [u8],
) -> Result<Vec<u32>> {
    let mut pieces = Vec::new();
    let mut counts = Vec::with_capacity(reads.len());
    let mut at = 0usize;
    for &(ino, off, len) in reads {
        let slot = at..at.checked_add(len as usize).ok_or(Error::InvalidArgument)?;
        let buf = out.get_mut(slot.clone()).ok_or(Error::InvalidArgument)?;
        let inode = get_inode(st, root, ino)?;
        match inode.kind {
            FileType::File => {}
            FileType::Directory => return Err(Error::IsADirectory),
            _ => return Err(Error::InvalidArgument),
        }
        at = slot.end;
        if off >= inode.size || len == 0 {
            counts.push(0);
            continue;
        }
        let end = inode.size.min(off.saturating_add(len as u64));
        let n = (end - off) as usize;
        buf[..n].fill(0);
        counts.push(n as u32);
        for (rs, ptrs) in file_runs(st, root, ino, off, end)? {
            let re = rs + (ptrs.len() * BLOCK_SIZE) as u64;
            let (s, e) = (rs.max(off), re.min(end));
            pieces.push(Piece {
                ptrs,
                skip: (s - rs) as usize,
                len: (e - s) as usize,
                dst: slot.start + (s - off) as usize,
            });
        }
    }
    // Pieces whose every block is in the verified-data cache are copied from it; the rest go to the
    // device together.
    pieces.retain(|p| {
        if !st.data.has_run(p.ptrs[0].addr, p.ptrs.iter().map(|b| b.crc)) {
            return true;
        }
        let (mut at, mut dst) = (p.skip, p.dst);
        while at < p.skip + p.len {
            let (i, within) = (at / BLOCK_SIZE, at % BLOCK_SIZE);
            let n = (BLOCK_SIZE - within).min(p.skip + p.len - at);
            let Some(block) = st.data.get(p.ptrs[i].addr, p.ptrs[i].crc) else { return true };
            out[dst..dst + n].copy_from_slice(&block[within..within + n]);
            (at, dst) = (at + n, dst + n);
        }
        false
    });
    let mut bufs: Vec<Vec<u8>> = Vec::with_capacity(pieces.len());
    for p in &pieces {
        let addr = p.ptrs[0].addr;
        if addr == 0 || addr.checked_add(p.ptrs.len() as u64).is_none_or(|e| e > st.alloc.total()) {
            return Err(Error::Corrupt { block: addr });
        }
        bufs.push(vec![0u8; p.ptrs.len() * BLOCK_SIZE]);
    }
    let mut runs: Vec<(u64, &mut [u8])> =
        pieces.iter().zip(bufs.iter_mut()).map(|(p, b)| (p.ptrs[0].addr * SECTORS_PER_BLOCK, &mut b[..])).collect();
    if !runs.is_empty() {
        st.dev.read_vectored(&mut runs)?;
    }
    for (p, b) in pieces.iter().zip(&bufs) {
        verify_run(st.csum, &p.ptrs, b)?;
        remember_run(st, &p.ptrs, b);
        out[p.dst..p.dst + p.len].copy_from_slice(&b[p.skip..p.skip + p.len]);
    }
    Ok(counts)
}
