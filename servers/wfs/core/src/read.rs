//! Read-only operations on one tree, shared by the live filesystem and snapshot views.
//!
//! Design: these functions take a store and a tree root and never modify either, so a snapshot view
//! answers lookups, stats, readdir and reads with exactly the code the live filesystem uses. File
//! reads gather the extent items (see `extent`) of up to `CHUNK` blocks, read runs of physically contiguous blocks
//! with one device request each and verify every block's checksum before copying a byte out; runs
//! already in the verified-data cache (`datacache`) are copied from it instead, with no device request
//! and no second checksum.

use alloc::string::String;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::fs::{DirEntry, FileType, Stat};
use protocol::{Error, Result};

use crate::btree::{self, Child};
use crate::names;
use crate::ondisk::{get_u64, kind_from_code, BlockPtr, Checksum, Inode, Key, BLOCK_SIZE, KIND_DIRENT, KIND_INODE};
use crate::store::Store;

/// Blocks handled per step of a read or write.
pub const CHUNK: u64 = 256;
/// Bytes before the name in a directory entry value: ino (8) and kind (1).
pub const DIRENT_HDR: usize = 9;
/// Largest file size (2^50 bytes: block indexes stay far from overflow).
pub const MAX_FILE_SIZE: u64 = 1 << 50;

pub fn inode_key(ino: u64) -> Key {
    Key::new(ino, KIND_INODE, 0)
}

pub fn get_inode<D: BlockDevice>(st: &mut Store<D>, root: &Child, ino: u64) -> Result<Inode> {
    match btree::get(st, root, &inode_key(ino))? {
        Some(v) => Inode::decode(&v),
        None => Err(Error::NotFound),
    }
}

pub fn to_stat(ino: u64, i: &Inode) -> Stat {
    Stat {
        ino,
        kind: i.kind,
        mode: i.mode & 0o7777,
        nlink: i.nlink,
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        blocks: i.blocks.saturating_mul(BLOCK_SIZE as u64 / 512),
        rdev: i.rdev,
        atime: i.atime,
        mtime: i.mtime,
        ctime: i.ctime,
        crtime: i.crtime,
    }
}

/// A decoded directory entry value.
pub struct Dirent {
    pub key: Key,
    pub ino: u64,
    pub kind: FileType,
}

fn decode_dirent(key: Key, v: &[u8]) -> Result<Dirent> {
    if v.len() < DIRENT_HDR {
        return Err(Error::Corrupt { block: 0 });
    }
    let kind = kind_from_code(v[8]).ok_or(Error::Corrupt { block: 0 })?;
    Ok(Dirent { key, ino: get_u64(v, 0), kind })
}

pub fn encode_dirent(ino: u64, kind: FileType, name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(DIRENT_HDR + name.len());
    v.extend_from_slice(&ino.to_le_bytes());
    v.push(crate::ondisk::kind_code(kind));
    v.extend_from_slice(name.as_bytes());
    v
}

/// The directory inode `dir`, or `NotADirectory`.
pub fn get_dir<D: BlockDevice>(st: &mut Store<D>, root: &Child, dir: u64) -> Result<Inode> {
    let i = get_inode(st, root, dir)?;
    if i.kind != FileType::Directory {
        return Err(Error::NotADirectory);
    }
    Ok(i)
}

pub fn dir_lookup<D: BlockDevice>(st: &mut Store<D>, root: &Child, dir: u64, name: &str) -> Result<Option<Dirent>> {
    names::check_name(name)?;
    match names::find(st, root, dir, KIND_DIRENT, DIRENT_HDR, name.as_bytes())? {
        Some((k, v)) => Ok(Some(decode_dirent(k, &v)?)),
        None => Ok(None),
    }
}

pub fn lookup<D: BlockDevice>(st: &mut Store<D>, root: &Child, dir: u64, name: &str) -> Result<Stat> {
    get_dir(st, root, dir)?;
    let d = dir_lookup(st, root, dir, name)?.ok_or(Error::NotFound)?;
    let i =
        get_inode(st, root, d.ino).map_err(|e| if e == Error::NotFound { Error::Corrupt { block: 0 } } else { e })?;
    Ok(to_stat(d.ino, &i))
}

pub fn readdir<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    dir: u64,
    cookie: u64,
    max: usize,
) -> Result<Vec<DirEntry>> {
    get_dir(st, root, dir)?;
    let mut out = Vec::new();
    btree::scan(st, root, Key::new(dir, KIND_DIRENT, cookie), Key::new(dir, KIND_DIRENT, u64::MAX), max, &mut out)?;
    let mut list = Vec::with_capacity(out.len());
    for (k, v) in out {
        let d = decode_dirent(k, &v)?;
        let name = String::from_utf8(v[DIRENT_HDR..].to_vec()).map_err(|_| Error::Corrupt { block: 0 })?;
        list.push(DirEntry { name, ino: d.ino, kind: d.kind, next_cookie: k.off.wrapping_add(1) });
    }
    Ok(list)
}

/// True if directory `dir` has no entries.
pub fn dir_is_empty<D: BlockDevice>(st: &mut Store<D>, root: &Child, dir: u64) -> Result<bool> {
    let mut out = Vec::new();
    btree::scan(st, root, Key::new(dir, KIND_DIRENT, 0), Key::new(dir, KIND_DIRENT, u64::MAX), 1, &mut out)?;
    Ok(out.is_empty())
}

/// The pointers of blocks `first..=last` of file `ino`, as (file block, pointer).
pub fn extents<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, BlockPtr)>> {
    crate::extent::blocks(st, root, ino, first, last)
}

/// Read the data blocks `ptrs` (physically contiguous, `ptrs[0].addr` first) into `buf`,
/// verifying each against its pointer.
pub fn read_run<D: BlockDevice>(st: &mut Store<D>, ptrs: &[BlockPtr], buf: &mut [u8]) -> Result<()> {
    let Some(first) = ptrs.first() else { return Ok(()) };
    if first.addr == 0 {
        return Err(Error::Corrupt { block: 0 });
    }
    st.read_raw(first.addr, buf)?;
    verify_run(st.csum, ptrs, buf)
}

/// `read_run` through the verified-data cache: a run whose every block is cached (same address, same
/// crc) is copied from it with no device request and no checksum; otherwise the whole run is read and
/// verified as `read_run` does, and its blocks are cached if `admit` (see `Store::admit_read`). For
/// file reads; scrub reads the device.
pub fn read_run_cached<D: BlockDevice>(
    st: &mut Store<D>,
    ptrs: &[BlockPtr],
    buf: &mut [u8],
    admit: bool,
) -> Result<()> {
    let Some(first) = ptrs.first() else { return Ok(()) };
    if first.addr != 0 && st.data.has_run(first.addr, ptrs.iter().map(|p| p.crc)) {
        for (p, dst) in ptrs.iter().zip(buf.chunks_mut(BLOCK_SIZE)) {
            let block = st.data.get(p.addr, p.crc).ok_or(Error::Corrupt { block: p.addr })?;
            dst.copy_from_slice(&block[..dst.len()]);
        }
        return Ok(());
    }
    read_run(st, ptrs, buf)?;
    if admit {
        remember_run(st, ptrs, buf);
    }
    Ok(())
}

/// Caches the blocks of a run that `verify_run` passed (whole blocks only).
pub fn remember_run<D: BlockDevice>(st: &mut Store<D>, ptrs: &[BlockPtr], buf: &[u8]) {
    for (p, block) in ptrs.iter().zip(buf.chunks_exact(BLOCK_SIZE)) {
        st.data.insert(p.addr, p.crc, block);
    }
}

/// Checks each data block of a run read into `buf` against its pointer's checksum; a mismatch names
/// the block.
pub fn verify_run(csum: Checksum, ptrs: &[BlockPtr], buf: &[u8]) -> Result<()> {
    for (p, block) in ptrs.iter().zip(buf.chunks(BLOCK_SIZE)) {
        if csum.of(block) != p.crc {
            return Err(Error::Checksum { block: p.addr });
        }
    }
    Ok(())
}

/// The runs holding the bytes `[off, end)` of file `ino`: consecutive file blocks stored in
/// consecutive device blocks, each as the file offset of its first block and its pointers, in file
/// order. Holes have no run.
pub fn file_runs<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    off: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<BlockPtr>)>> {
    let mut runs = Vec::new();
    if off >= end {
        return Ok(runs);
    }
    let bs = BLOCK_SIZE as u64;
    let (b0, b1) = (off / bs, (end - 1) / bs);
    let mut cb = b0;
    while cb <= b1 {
        let ce = b1.min(cb + CHUNK - 1);
        let ext = extents(st, root, ino, cb, ce)?;
        let mut i = 0;
        while i < ext.len() {
            let mut j = i + 1;
            while j < ext.len()
                && ext[j].0 == ext[j - 1].0 + 1
                && ext[j - 1].1.addr.checked_add(1) == Some(ext[j].1.addr)
            {
                j += 1;
            }
            runs.push((ext[i].0 * bs, ext[i..j].iter().map(|e| e.1).collect()));
            i = j;
        }
        cb = ce + 1;
    }
    Ok(runs)
}

/// Read file `ino` (of `size` bytes) at `off` into `buf`.
pub fn file_read<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    size: u64,
    off: u64,
    buf: &mut [u8],
) -> Result<usize> {
    if off >= size || buf.is_empty() {
        return Ok(0);
    }
    let end = size.min(off.saturating_add(buf.len() as u64));
    let admit = st.admit_read(ino, off, end - off);
    let runs = file_runs(st, root, ino, off, end)?;
    fill(st, &runs, off, end, admit, buf)
}

/// `file_read` handing the bytes to `sink` (see `FileSystem::read_with`): when the runs cover the
/// whole range with no hole and every block is in the verified-data cache, the bytes are lent
/// straight from the cache, one piece per stretch of adjacent cache slots; otherwise the read fills
/// `buf` as `file_read` does and `buf` is passed whole.
pub fn file_read_with<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    size: u64,
    off: u64,
    buf: &mut [u8],
    sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
) -> Result<usize> {
    if off >= size || buf.is_empty() {
        return Ok(0);
    }
    let end = size.min(off.saturating_add(buf.len() as u64));
    let admit = st.admit_read(ino, off, end - off);
    let runs = file_runs(st, root, ino, off, end)?;
    if all_cached(st, &runs, off, end) {
        let mut at = 0;
        for (rs, ptrs) in &runs {
            let re = rs + (ptrs.len() * BLOCK_SIZE) as u64;
            let (s, e) = ((*rs).max(off), re.min(end));
            st.data.lend_run(ptrs[0].addr, (s - rs) as usize, (e - rs) as usize, &mut |piece| {
                sink(at, piece)?;
                at += piece.len();
                Ok(())
            })?;
        }
        return Ok(at);
    }
    let n = fill(st, &runs, off, end, admit, buf)?;
    sink(0, &buf[..n])?;
    Ok(n)
}

/// True if `runs` cover `[off, end)` back to back (no hole, in order) and every block of them is in
/// the verified-data cache.
fn all_cached<D: BlockDevice>(st: &Store<D>, runs: &[(u64, Vec<BlockPtr>)], off: u64, end: u64) -> bool {
    let mut next = off;
    for (i, (rs, ptrs)) in runs.iter().enumerate() {
        let Some(first) = ptrs.first() else { return false };
        // The first run may start before `off` (inside its first block); every later one starts
        // exactly where the previous ended, so the pieces lent never overlap.
        let adjacent = if i == 0 { *rs <= off } else { *rs == next };
        if !adjacent || first.addr == 0 || !st.data.has_run(first.addr, ptrs.iter().map(|p| p.crc)) {
            return false;
        }
        next = rs + (ptrs.len() * BLOCK_SIZE) as u64;
    }
    next >= end
}

/// Copy bytes `[off, end)` of the file whose data lies in `runs` (from `file_runs`) into `buf`,
/// zeroing holes; returns the count.
fn fill<D: BlockDevice>(
    st: &mut Store<D>,
    runs: &[(u64, Vec<BlockPtr>)],
    off: u64,
    end: u64,
    admit: bool,
    buf: &mut [u8],
) -> Result<usize> {
    let n = (end - off) as usize;
    let mut tmp = Vec::new();
    // Runs come in file order without overlap, so only the gaps between them (holes) need zeroing;
    // if damaged metadata breaks that order, the whole buffer is zeroed first instead.
    let ordered = runs.windows(2).all(|w| w[0].0.saturating_add((w[0].1.len() * BLOCK_SIZE) as u64) <= w[1].0);
    if !ordered {
        buf[..n].fill(0);
    }
    let mut filled = 0;
    for (rs, ptrs) in runs {
        // Copy the overlap of [run start, run end) with [off, end); a run wholly inside the
        // request is read straight into the caller's buffer.
        let rs = *rs;
        let re = rs + (ptrs.len() * BLOCK_SIZE) as u64;
        let (s, e) = (rs.max(off), re.min(end));
        if ordered {
            buf[filled..(s - off) as usize].fill(0);
        }
        filled = (e - off) as usize;
        let dst = &mut buf[(s - off) as usize..(e - off) as usize];
        if s == rs && e == re {
            read_run_cached(st, ptrs, dst, admit)?;
        } else {
            tmp.resize(ptrs.len() * BLOCK_SIZE, 0);
            read_run_cached(st, ptrs, &mut tmp, admit)?;
            dst.copy_from_slice(&tmp[(s - rs) as usize..(e - rs) as usize]);
        }
    }
    if ordered {
        buf[filled..n].fill(0);
    }
    Ok(n)
}

pub fn readlink<D: BlockDevice>(st: &mut Store<D>, root: &Child, ino: u64) -> Result<String> {
    let i = get_inode(st, root, ino)?;
    if i.kind != FileType::Symlink {
        return Err(Error::InvalidArgument);
    }
    String::from_utf8(i.target).map_err(|_| Error::Corrupt { block: 0 })
}

/// Read file contents for a node of any kind, with the errors POSIX gives for non-files.
pub fn read<D: BlockDevice>(st: &mut Store<D>, root: &Child, ino: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
    let i = get_inode(st, root, ino)?;
    match i.kind {
        FileType::File => file_read(st, root, ino, i.size, off, buf),
        FileType::Directory => Err(Error::IsADirectory),
        _ => Err(Error::InvalidArgument),
    }
}

/// `read` handing the bytes to `sink` (see [`file_read_with`]).
pub fn read_with<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    ino: u64,
    off: u64,
    buf: &mut [u8],
    sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
) -> Result<usize> {
    let i = get_inode(st, root, ino)?;
    match i.kind {
        FileType::File => file_read_with(st, root, ino, i.size, off, buf, sink),
        FileType::Directory => Err(Error::IsADirectory),
        _ => Err(Error::InvalidArgument),
    }
}
