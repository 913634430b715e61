//! The `*at` operations: the path operations with a relative path resolved from a descriptor.
//!
//! Design: each one finds where its path starts ([`Vfs::start`]: nowhere for an absolute path, the
//! descriptor's node for a relative one) and runs the same code as its absolute-path operation, so
//! caching, statistics and mount rules are shared. The empty path names the descriptor's node
//! itself (Linux's `AT_EMPTY_PATH`), which is how a client reaches a node it holds open but no longer
//! has a name for (an unlinked file's attributes). A client that walks one component at a time from
//! descriptors (the FUSE adapter) is never limited by [`protocol::ipc::MAX_PATH`] in total.

use alloc::string::String;
use alloc::vec::Vec;

use protocol::api::vfs::OpenFlags;
use protocol::fs::{DirEntry, FileType, NewNode, SetAttr, Stat};
use protocol::ipc::{Lease, MAX_PATH};
use protocol::{Error, Result};

use crate::namespace::READDIR_PAGE;
use crate::vfs::{Loc, Pid, Vfs};

impl Vfs {
    /// Where `path` starts: `None` (the root) when absolute, else the node of `pid`'s descriptor
    /// `dir` (`BadFileDescriptor` if it has none).
    fn start(&self, pid: Pid, dir: u32, path: &str) -> Result<Option<Loc>> {
        if path.starts_with('/') {
            return Ok(None);
        }
        Ok(Some(self.file(pid, dir)?.loc))
    }

    pub fn openat(&mut self, pid: Pid, dir: u32, path: &str, flags: OpenFlags, mode: u32) -> Result<u32> {
        self.caller = Some(pid);
        let start = self.start(pid, dir, path)?;
        self.open_from(pid, start, path, flags, mode)
    }

    /// Attributes of `path` from `dir`; `follow` says whether a final symbolic link is followed.
    pub fn statat(&mut self, pid: Pid, dir: u32, path: &str, follow: bool) -> Result<Stat> {
        self.caller = Some(pid);
        let start = self.start(pid, dir, path)?;
        let st = self.resolve_at(start, path, follow).map(|r| r.stat);
        if st.is_ok() {
            self.stats.stats += 1;
        }
        st
    }

    /// Create `node` (any kind, with the owner it names) at `path` from `dir`.
    pub fn makeat(&mut self, pid: Pid, dir: u32, path: &str, node: NewNode) -> Result<Stat> {
        self.caller = Some(pid);
        let start = self.start(pid, dir, path)?;
        // As `symlink`: a link must point somewhere, and its target must fit a path.
        if node.kind == FileType::Symlink && (node.symlink_target.is_empty() || node.symlink_target.len() > MAX_PATH) {
            return Err(Error::InvalidArgument);
        }
        let kind = node.kind;
        let st = self.create_node_from(start, path, node)?;
        match kind {
            FileType::Directory => self.stats.mkdirs += 1,
            FileType::Symlink => self.stats.symlinks += 1,
            _ => {}
        }
        Ok(st)
    }

    /// Remove `path` from `dir`: a non-directory, or an empty directory with `rmdir`.
    pub fn unlinkat(&mut self, pid: Pid, dir: u32, path: &str, rmdir: bool) -> Result<()> {
        self.caller = Some(pid);
        let start = self.start(pid, dir, path)?;
        self.remove(start, path, rmdir)
    }

    pub fn renameat(
        &mut self,
        pid: Pid,
        from_dir: u32,
        from: &str,
        to_dir: u32,
        to: &str,
        noreplace: bool,
    ) -> Result<()> {
        self.caller = Some(pid);
        let fstart = self.start(pid, from_dir, from)?;
        let tstart = self.start(pid, to_dir, to)?;
        self.rename_from(fstart, from, tstart, to, noreplace)
    }

    pub fn linkat(&mut self, pid: Pid, from_dir: u32, from: &str, to_dir: u32, to: &str) -> Result<()> {
        self.caller = Some(pid);
        let fstart = self.start(pid, from_dir, from)?;
        let tstart = self.start(pid, to_dir, to)?;
        self.link_from(fstart, from, tstart, to)
    }

    /// Change the attributes of `path` from `dir` (the descriptor's own node for the empty path).
    pub fn setattrat(&mut self, pid: Pid, dir: u32, path: &str, attr: SetAttr, follow: bool) -> Result<Stat> {
        self.caller = Some(pid);
        let start = self.start(pid, dir, path)?;
        let loc = self.resolve_at(start, path, follow)?.loc;
        let st = self.setattr(loc, attr)?;
        if attr.size.is_some() {
            self.stats.truncates += 1;
        }
        Ok(st)
    }

    pub fn readlinkat(&mut self, pid: Pid, dir: u32, path: &str) -> Result<String> {
        self.caller = Some(pid);
        let start = self.start(pid, dir, path)?;
        self.readlink_from(start, path)
    }

    /// Up to `max` entries of the directory `path` from `dir` after `cookie`, as [`Vfs::readdir`].
    pub fn readdirat(&mut self, pid: Pid, dir: u32, path: &str, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.caller = Some(pid);
        let start = self.start(pid, dir, path)?;
        self.readdir_from(start, path, cookie, max.min(READDIR_PAGE))
    }

    /// [`Vfs::pwrite_lease`] from a plain buffer.
    pub fn pwrite(&mut self, pid: Pid, fd: u32, offset: u64, data: &[u8]) -> Result<usize> {
        self.pwrite_lease(pid, fd, offset, Lease::Read(data))
    }
}
