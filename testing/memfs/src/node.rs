//! Nodes of the in-memory filesystem: attributes plus one of three payloads.
//!
//! Design: file data is sparse, a `BTreeMap` from chunk index to a fixed-size chunk, so a write far past
//! the end costs one chunk and holes read as zeros without being stored. Directories hand every entry a
//! cookie from a per-directory counter that only grows; `readdir` lists in cookie order, so an entry
//! inserted during a listing appears after every cookie already handed out and never makes a reader
//! see an entry twice or skip one.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;

use protocol::fs::{FileType, NodeId, Stat, Timespec};
use protocol::{Error, Result};

/// Size of one stored piece of file data; also the `block_size` memfs reports.
pub const CHUNK: usize = 4096;

/// A directory: names to children, plus the cookie order used by `readdir`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directory {
    /// name -> (child, cookie of this entry)
    pub entries: BTreeMap<String, (NodeId, u64)>,
    /// cookie -> name, the listing order.
    pub by_cookie: BTreeMap<u64, String>,
    /// The last cookie handed out; cookie 0 means "from the beginning", so real cookies start at 1.
    pub last_cookie: u64,
    /// The directory this one is linked in (itself for the root).
    pub parent: NodeId,
}

impl Directory {
    pub fn new(parent: NodeId) -> Self {
        Directory { parent, ..Default::default() }
    }

    pub fn get(&self, name: &str) -> Option<NodeId> {
        self.entries.get(name).map(|&(ino, _)| ino)
    }

    /// Add `name`; the caller has checked it is free.
    pub fn insert(&mut self, name: &str, ino: NodeId) {
        self.last_cookie += 1;
        self.entries.insert(String::from(name), (ino, self.last_cookie));
        self.by_cookie.insert(self.last_cookie, String::from(name));
    }

    pub fn remove(&mut self, name: &str) -> Option<NodeId> {
        let (ino, cookie) = self.entries.remove(name)?;
        self.by_cookie.remove(&cookie);
        Some(ino)
    }

    /// Point an existing name at another node, keeping its cookie (rename over an existing entry).
    pub fn replace(&mut self, name: &str, ino: NodeId) {
        if let Some(slot) = self.entries.get_mut(name) {
            slot.0 = ino;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Sparse file contents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileData {
    pub chunks: BTreeMap<u64, Box<[u8; CHUNK]>>,
}

impl FileData {
    /// Copy into `buf` from `offset`, limited by `size`; holes read as zeros.
    pub fn read(&self, size: u64, offset: u64, buf: &mut [u8]) -> usize {
        if offset >= size {
            return 0;
        }
        let n = core::cmp::min(buf.len() as u64, size - offset) as usize;
        let mut done = 0;
        while done < n {
            let pos = offset + done as u64;
            let (idx, within) = (pos / CHUNK as u64, (pos % CHUNK as u64) as usize);
            let take = core::cmp::min(CHUNK - within, n - done);
            let out = &mut buf[done..done + take];
            match self.chunks.get(&idx) {
                Some(chunk) => out.copy_from_slice(&chunk[within..within + take]),
                None => out.fill(0),
            }
            done += take;
        }
        n
    }

    /// Store `data` at `offset`, allocating chunks as needed. The caller updates the size.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let (idx, within) = (pos / CHUNK as u64, (pos % CHUNK as u64) as usize);
            let take = core::cmp::min(CHUNK - within, data.len() - done);
            let chunk = self.chunks.entry(idx).or_insert_with(|| Box::new([0u8; CHUNK]));
            chunk[within..within + take].copy_from_slice(&data[done..done + take]);
            done += take;
        }
    }

    /// Drop everything at or past `new_size`, zeroing the tail of the last kept chunk so a later
    /// extension reads zeros there, not stale bytes.
    pub fn truncate(&mut self, new_size: u64) {
        let first_dropped = new_size.div_ceil(CHUNK as u64);
        let _ = self.chunks.split_off(&first_dropped);
        let within = (new_size % CHUNK as u64) as usize;
        if within != 0 {
            if let Some(chunk) = self.chunks.get_mut(&(new_size / CHUNK as u64)) {
                chunk[within..].fill(0);
            }
        }
    }

    /// Allocated space in 512-byte units, as `st_blocks`.
    pub fn blocks(&self) -> u64 {
        self.chunks.len() as u64 * (CHUNK as u64 / 512)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    File(FileData),
    Dir(Directory),
    Symlink(String),
    /// Fifo, socket, character or block device: attributes only.
    Special,
}

/// One node: its attributes (kept in `Stat` form) and contents.
#[derive(Clone, Debug)]
pub struct Node {
    pub stat: Stat,
    pub payload: Payload,
    /// Number of `open` calls not yet matched by `release`.
    pub open_count: u32,
}

impl Node {
    pub fn new(ino: NodeId, kind: FileType, mode: u32, uid: u32, gid: u32, now: Timespec) -> Self {
        let stat = Stat {
            ino,
            kind,
            mode: mode & 0o7777,
            nlink: 1,
            uid,
            gid,
            size: 0,
            blocks: 0,
            rdev: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
        };
        Node { stat, payload: Payload::Special, open_count: 0 }
    }

    pub fn dir(&self) -> Result<&Directory> {
        match &self.payload {
            Payload::Dir(d) => Ok(d),
            _ => Err(Error::NotADirectory),
        }
    }

    pub fn dir_mut(&mut self) -> Result<&mut Directory> {
        match &mut self.payload {
            Payload::Dir(d) => Ok(d),
            _ => Err(Error::NotADirectory),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.payload, Payload::Dir(_))
    }

    /// The attributes as reported, with `blocks` computed from what is really stored.
    pub fn stat(&self) -> Stat {
        let mut st = self.stat;
        st.blocks = match &self.payload {
            Payload::File(f) => f.blocks(),
            _ => 0,
        };
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_write_reads_holes_as_zeros() {
        let mut f = FileData::default();
        f.write(3 * CHUNK as u64 + 10, b"abc");
        assert_eq!(f.chunks.len(), 1);
        let mut buf = [0xffu8; 20];
        assert_eq!(f.read(3 * CHUNK as u64 + 13, 3 * CHUNK as u64, &mut buf), 13);
        assert_eq!(&buf[..10], &[0u8; 10]);
        assert_eq!(&buf[10..13], b"abc");
        assert_eq!(f.blocks(), 8);
    }

    #[test]
    fn write_spanning_chunks() {
        let mut f = FileData::default();
        let data: alloc::vec::Vec<u8> = (0..3 * CHUNK + 7).map(|i| i as u8).collect();
        f.write(CHUNK as u64 - 5, &data);
        let mut back = alloc::vec![0u8; data.len()];
        let size = CHUNK as u64 - 5 + data.len() as u64;
        assert_eq!(f.read(size, CHUNK as u64 - 5, &mut back), data.len());
        assert_eq!(back, data);
        assert_eq!(f.chunks.len(), 5);
    }

    #[test]
    fn truncate_zeroes_the_tail_of_the_kept_chunk() {
        let mut f = FileData::default();
        f.write(0, &[7u8; 2 * CHUNK]);
        f.truncate(10);
        assert_eq!(f.chunks.len(), 1);
        let mut buf = [1u8; 20];
        assert_eq!(f.read(20, 0, &mut buf), 20);
        assert_eq!(&buf[..10], &[7u8; 10]);
        assert_eq!(&buf[10..], &[0u8; 10]);
    }

    #[test]
    fn directory_cookies_only_grow() {
        let mut d = Directory::new(1);
        d.insert("a", 2);
        d.insert("b", 3);
        d.remove("a");
        d.insert("a", 4);
        let order: alloc::vec::Vec<&String> = d.by_cookie.values().collect();
        assert_eq!(order, ["b", "a"]);
        assert_eq!(d.last_cookie, 3);
    }
}
