//! Directory listing ([`ReadDir`], [`DirEntry`]) and file attributes ([`Metadata`]).
//!
//! Design: the vfs lists a directory in pages addressed by a cookie, and each page request is
//! idempotent, so `ReadDir` holds only the path, the next cookie and the current page: a vfs restart
//! in the middle of a listing is retried by the stub and the listing continues. The first page is
//! fetched when the iterator is made, so a missing directory is reported by `read_dir` itself.
//! Entries carry the type from the listing; their metadata costs one stat when asked for.

use alloc::collections::VecDeque;
use alloc::string::String;

use protocol::fs::{FileType, Stat, Timespec};
use protocol::ipc::Transport;

use crate::error::Result;
use crate::handle::Fs;

/// Attributes of a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    stat: Stat,
}

impl From<Stat> for Metadata {
    fn from(stat: Stat) -> Self {
        Metadata { stat }
    }
}

impl Metadata {
    pub fn file_type(&self) -> FileType {
        self.stat.kind
    }
    pub fn is_dir(&self) -> bool {
        self.stat.kind == FileType::Directory
    }
    pub fn is_file(&self) -> bool {
        self.stat.kind == FileType::File
    }
    pub fn is_symlink(&self) -> bool {
        self.stat.kind == FileType::Symlink
    }
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.stat.size
    }
    pub fn is_empty(&self) -> bool {
        self.stat.size == 0
    }
    /// Permission bits (0o7777).
    pub fn mode(&self) -> u32 {
        self.stat.mode
    }
    pub fn modified(&self) -> Timespec {
        self.stat.mtime
    }
    pub fn accessed(&self) -> Timespec {
        self.stat.atime
    }
    pub fn created(&self) -> Timespec {
        self.stat.crtime
    }
    /// Everything the server reported.
    pub fn stat(&self) -> &Stat {
        &self.stat
    }
}

/// One entry of a directory listing.
pub struct DirEntry<T: Transport> {
    fs: Fs<T>,
    path: String,
    name: String,
    kind: FileType,
}

impl<T: Transport> DirEntry<T> {
    pub fn file_name(&self) -> &str {
        &self.name
    }
    /// The directory's path joined with the name.
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn file_type(&self) -> FileType {
        self.kind
    }
    /// Attributes of the entry itself (a symbolic link is not followed), as `std` does.
    pub fn metadata(&self) -> Result<Metadata> {
        self.fs.symlink_metadata(&self.path)
    }
}

/// Iterator over a directory's entries, `.` and `..` left out.
pub struct ReadDir<T: Transport> {
    fs: Fs<T>,
    dir: String,
    page: VecDeque<protocol::fs::DirEntry>,
    cookie: u64,
    done: bool,
}

impl<T: Transport> ReadDir<T> {
    pub(crate) fn new(fs: Fs<T>, dir: &str) -> Result<Self> {
        let mut dir = String::from(dir);
        while dir.len() > 1 && dir.ends_with('/') {
            dir.pop();
        }
        let mut it = ReadDir { fs, dir, page: VecDeque::new(), cookie: 0, done: false };
        it.fill()?;
        Ok(it)
    }

    fn fill(&mut self) -> Result<()> {
        let page = self.fs.client().readdir(&self.dir, self.cookie)?;
        match page.last() {
            Some(last) => self.cookie = last.next_cookie,
            None => self.done = true,
        }
        self.page.extend(page);
        Ok(())
    }
}

impl<T: Transport> Iterator for ReadDir<T> {
    type Item = Result<DirEntry<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.page.pop_front() {
                if e.name == "." || e.name == ".." {
                    continue;
                }
                let sep = if self.dir.ends_with('/') { "" } else { "/" };
                let path = alloc::format!("{}{}{}", self.dir, sep, e.name);
                return Some(Ok(DirEntry { fs: self.fs.clone(), path, name: e.name, kind: e.kind }));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                // One error ends the listing; a retry would repeat it.
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
