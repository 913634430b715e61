//! The VFS operations on names: attributes by path, directory listing, creating, linking,
//! removing and renaming nodes.
//!
//! Design: each operation resolves its path(s) across mounts (`Vfs::resolve`, optionally from a
//! starting directory for the `*at` forms), refuses what crosses a mount where POSIX says `EXDEV`,
//! and then updates or invalidates exactly the cached metadata it changes: the entries it adds or
//! removes and the attributes of the nodes and parent directories it touches. Descriptor and file
//! I/O operations are in `ops`.

use alloc::string::String;
use alloc::vec::Vec;

use protocol::fs::{DirEntry, FileType, NewNode, Stat};
use protocol::{Error, Result};

use crate::ops::tally;
use crate::path;
use crate::vfs::{Loc, Vfs};

/// Most entries one `readdir` call returns.
pub const READDIR_PAGE: usize = 64;

impl Vfs {
    /// Attributes of `path`, following symbolic links.
    pub fn stat(&mut self, path: &str) -> Result<Stat> {
        let st = self.resolve(path, true).map(|r| r.stat);
        tally(st, &mut self.stats.stats)
    }

    /// Attributes of `path` itself, even if it is a symbolic link.
    pub fn lstat(&mut self, path: &str) -> Result<Stat> {
        let st = self.resolve(path, false).map(|r| r.stat);
        tally(st, &mut self.stats.stats)
    }

    /// Up to `max` entries of directory `path` after `cookie` (0 = start): `.` and `..` first
    /// (synthesized; `..` of `/` is `/`), then the filesystem's entries.
    pub fn readdir(&mut self, path: &str, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.readdir_from(None, path, cookie, max)
    }

    /// [`Vfs::readdir`] with a relative `path` resolved from `start`. For the empty path (`start`
    /// itself) the parent is unknown, so `..` reports `start`'s own node.
    pub(crate) fn readdir_from(
        &mut self,
        start: Option<Loc>,
        path: &str,
        cookie: u64,
        max: usize,
    ) -> Result<Vec<DirEntry>> {
        let dir = self.resolve_at(start, path, true)?;
        if dir.stat.kind != FileType::Directory {
            return Err(Error::NotADirectory);
        }
        let max = max.min(READDIR_PAGE);
        let mut out = Vec::new();
        if cookie == 0 && out.len() < max {
            out.push(DirEntry { name: ".".into(), ino: dir.stat.ino, kind: FileType::Directory, next_cookie: 1 });
        }
        if cookie <= 1 && out.len() < max {
            let ino = self.getattr(dir.parent)?.ino;
            out.push(DirEntry { name: "..".into(), ino, kind: FileType::Directory, next_cookie: 2 });
        }
        let want = max - out.len();
        if want > 0 {
            let fs_cookie = cookie.saturating_sub(2);
            let loc = dir.loc;
            let entries = self.with_fs(loc.mount, |fs| fs.readdir(loc.node, fs_cookie, want))?;
            for mut e in entries {
                e.next_cookie = e.next_cookie.checked_add(2).ok_or(Error::Corrupt { block: 0 })?;
                out.push(e);
            }
        }
        self.stats.readdirs += 1;
        Ok(out)
    }

    fn create_node(&mut self, path: &str, node: NewNode) -> Result<Stat> {
        self.create_node_from(None, path, node)
    }

    pub(crate) fn create_node_from(&mut self, start: Option<Loc>, path: &str, node: NewNode) -> Result<Stat> {
        let (dir, name) = self.resolve_parent_at(start, path)?;
        self.names_changing(dir.mount);
        let st = self.with_fs(dir.mount, |fs| fs.create(dir.node, name, &node))?;
        self.cache.put_dentry(dir.mount, dir.node, name, Some(st.ino));
        self.cache.put_attr(dir.mount, st);
        self.cache.forget_attr(dir.mount, dir.node);
        Ok(st)
    }

    pub fn mkdir(&mut self, path: &str, mode: u32) -> Result<()> {
        if path::components(path)?.is_empty() {
            return Err(Error::AlreadyExists);
        }
        let r = self.create_node(path, NewNode::new(FileType::Directory, mode & 0o7777)).map(|_| ());
        tally(r, &mut self.stats.mkdirs)
    }

    /// Create a symbolic link at `path` pointing to `target` (stored as given).
    pub fn symlink(&mut self, target: &str, path: &str) -> Result<()> {
        if target.is_empty() || target.len() > protocol::ipc::MAX_PATH {
            return Err(Error::InvalidArgument);
        }
        let mut node = NewNode::new(FileType::Symlink, 0o777);
        node.symlink_target = target.into();
        let r = self.create_node(path, node).map(|_| ());
        tally(r, &mut self.stats.symlinks)
    }

    pub fn readlink(&mut self, path: &str) -> Result<String> {
        self.readlink_from(None, path)
    }

    pub(crate) fn readlink_from(&mut self, start: Option<Loc>, path: &str) -> Result<String> {
        let r = self.resolve_at(start, path, false)?;
        if r.stat.kind != FileType::Symlink {
            return Err(Error::InvalidArgument);
        }
        let target = self.with_fs(r.loc.mount, |fs| fs.readlink(r.loc.node));
        tally(target, &mut self.stats.readlinks)
    }

    /// Give the non-directory `from` (not following a final symlink) the new name `to`.
    pub fn link(&mut self, from: &str, to: &str) -> Result<()> {
        self.link_from(None, from, None, to)
    }

    pub(crate) fn link_from(&mut self, fstart: Option<Loc>, from: &str, tstart: Option<Loc>, to: &str) -> Result<()> {
        let src = self.resolve_at(fstart, from, false)?;
        if src.stat.kind == FileType::Directory {
            return Err(Error::NotPermitted);
        }
        let (dir, name) = self.resolve_parent_at(tstart, to)?;
        if dir.mount != src.loc.mount {
            return Err(Error::CrossDevice);
        }
        let node = src.loc.node;
        self.names_changing(dir.mount);
        let st = self.with_fs(dir.mount, |fs| fs.link(node, dir.node, name))?;
        self.cache.put_dentry(dir.mount, dir.node, name, Some(node));
        self.cache.put_attr(dir.mount, st);
        self.cache.forget_attr(dir.mount, dir.node);
        self.stats.links += 1;
        Ok(())
    }

    /// Space accounting of the filesystem that holds `path`.
    pub fn statfs(&mut self, path: &str) -> Result<protocol::fs::FsStats> {
        let mount = self.resolve(path, true)?.loc.mount;
        let st = self.with_fs(mount, |fs| fs.statfs());
        tally(st, &mut self.stats.statfs)
    }

    /// Remove a name: `unlink` (non-directories) or `rmdir` (empty directories).
    pub(crate) fn remove(&mut self, start: Option<Loc>, path: &str, dir_wanted: bool) -> Result<()> {
        let (dir, name) = self.resolve_parent_at(start, path)?;
        let target = self.lookup(dir, name)?;
        let tloc = Loc { mount: dir.mount, node: target.ino };
        if self.is_mount_boundary(tloc) {
            return Err(Error::Busy);
        }
        if dir_wanted {
            self.names_changing(dir.mount);
            self.with_fs(dir.mount, |fs| fs.rmdir(dir.node, name))?;
        } else {
            self.names_changing(dir.mount);
            self.with_fs(dir.mount, |fs| fs.unlink(dir.node, name))?;
        }
        self.cache.put_dentry(dir.mount, dir.node, name, None);
        self.cache.forget_attr(dir.mount, dir.node);
        self.cache.forget_attr(dir.mount, target.ino);
        if dir_wanted {
            self.stats.rmdirs += 1;
        } else {
            self.stats.unlinks += 1;
        }
        Ok(())
    }

    pub fn unlink(&mut self, path: &str) -> Result<()> {
        self.remove(None, path, false)
    }

    pub fn rmdir(&mut self, path: &str) -> Result<()> {
        self.remove(None, path, true)
    }

    /// Rename within one filesystem (`CrossDevice` across mounts, `Busy` for mount points).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.rename_from(None, from, None, to, false)
    }

    /// [`Vfs::rename`] with relative paths resolved from `fstart` and `tstart`; `noreplace` fails
    /// with `AlreadyExists` when `to` exists (Linux's RENAME_NOREPLACE).
    pub(crate) fn rename_from(
        &mut self,
        fstart: Option<Loc>,
        from: &str,
        tstart: Option<Loc>,
        to: &str,
        noreplace: bool,
    ) -> Result<()> {
        let (fdir, fname) = self.resolve_parent_at(fstart, from)?;
        let (tdir, tname) = self.resolve_parent_at(tstart, to)?;
        if fdir.mount != tdir.mount {
            return Err(Error::CrossDevice);
        }
        let moving = self.lookup(fdir, fname)?;
        let replaced = match self.lookup(tdir, tname) {
            Ok(_) if noreplace => return Err(Error::AlreadyExists),
            Ok(st) => Some(st.ino),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        };
        let m = fdir.mount;
        for node in core::iter::once(moving.ino).chain(replaced) {
            if self.is_mount_boundary(Loc { mount: m, node }) {
                return Err(Error::Busy);
            }
        }
        self.names_changing(m);
        let result = self.with_fs(m, |fs| fs.rename(fdir.node, fname, tdir.node, tname));
        // Forget before looking at the result: a failed rename may still have changed times.
        self.cache.forget_dentry(m, fdir.node, fname);
        self.cache.forget_dentry(m, tdir.node, tname);
        for node in [fdir.node, tdir.node, moving.ino].into_iter().chain(replaced) {
            self.cache.forget_attr(m, node);
        }
        tally(result, &mut self.stats.renames)
    }
}
