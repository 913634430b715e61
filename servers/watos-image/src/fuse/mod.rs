//! Serving an [`ImageFs`] to the Linux kernel through FUSE (`watos-image mount`).
//!
//! Design: a thin, generic adapter from fuser's `Filesystem` callbacks to `protocol::fs::FileSystem`
//! calls, so memfs, WFS and FAT mount through the same code. The filesystem sits behind one mutex
//! (fuser runs a single dispatch thread by default; the mutex makes the adapter `Sync` as fuser
//! requires). The kernel does permission checks (`default_permissions`), since the interface carries
//! no credentials; the adapter supplies what the VFS would: the caller's uid/gid for new nodes,
//! set-group-id directory inheritance, `.` and `..` in listings, `RENAME_NOREPLACE`. Attribute and
//! entry caching is off (TTL 0) so every stat reflects the filesystem, which POSIX suites check.
//!
//! Node ids may be reused by a filesystem once a node is gone (FAT derives them from directory-entry
//! positions), while the kernel may still cache an inode under the old id. The adapter therefore
//! counts a generation per id and bumps it whenever it sees a node die (last unlink, rmdir, rename
//! over a target); the kernel compares generations and drops its stale inode instead of reusing a
//! dead one for the new node.
//!
//! FUSE names the root inode 1; the filesystem's root id and id 1 are swapped when they differ, a
//! bijection that keeps every other id unchanged. readdir offsets: 1 and 2 are `.` and `..`, a
//! filesystem cookie `c` is offset `c + 2`.
//!
//! [`backend`] decides whether calls reach the filesystem through the filesystem-server protocol
//! (default) or directly; [`convert`] holds the type conversions, [`serve`] the mount and shutdown.


mod backend;
mod convert;
mod serve;

pub use convert::{from_system_time, to_system_time};
pub use serve::serve;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use protocol::fs::{FileSystem, FileType, NewNode, NodeId, SetAttr, Stat};
use protocol::Error;

use convert::{errno, kind, kind_from_mode, name_str, time_or_now};
use backend::Backend;

const TTL: Duration = Duration::ZERO;
const S_ISGID: u32 = 0o2000;

type Shared = Arc<Mutex<Option<Backend>>>;

/// The fuser `Filesystem` over one image.
pub struct FuseAdapter {
    fs: Shared,
    root: NodeId,
    /// Generation of each id that has died at least once (absent = 0).
    generations: Mutex<HashMap<NodeId, u64>>,
}


impl FuseAdapter {
    pub fn new(mut backend: Backend) -> Self {
        let root = backend.fs().root();
        FuseAdapter { fs: Arc::new(Mutex::new(Some(backend))), root, generations: Mutex::new(HashMap::new()) }
    }

    fn shared(&self) -> Shared {
        self.fs.clone()
    }

    fn to_fs(&self, ino: INodeNo) -> NodeId {
        match ino.0 {
            1 => self.root,
            i if i == self.root => 1,
            i => i,
        }
    }

    fn to_fuse(&self, ino: NodeId) -> INodeNo {
        INodeNo(match ino {
            i if i == self.root => 1,
            1 => self.root,
            i => i,
        })
    }

    fn attr(&self, st: &Stat) -> FileAttr {
        FileAttr {
            ino: self.to_fuse(st.ino),
            size: st.size,
            blocks: st.blocks,
            atime: to_system_time(st.atime),
            mtime: to_system_time(st.mtime),
            ctime: to_system_time(st.ctime),
            crtime: to_system_time(st.crtime),
            kind: kind(st.kind),
            perm: (st.mode & 0o7777) as u16,
            nlink: st.nlink,
            uid: st.uid,
            gid: st.gid,
            rdev: st.rdev,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Run `f` on the filesystem; after shutdown began every call fails with EIO.
    fn with<T>(&self, f: impl FnOnce(&mut dyn FileSystem) -> Result<T, Error>) -> Result<T, Error> {
        let mut guard = self.fs.lock().map_err(|_| Error::Io { offset: 0 })?;
        match guard.as_mut() {
            Some(backend) => f(backend.fs()),
            None => Err(Error::Io { offset: 0 }),
        }
    }

    /// Create a node owned by the caller; in a set-group-id directory it takes the directory's group
    /// (and a new directory inherits the bit), as on every Unix filesystem.
    fn make(&self, req: &Request, parent: INodeNo, name: &OsStr, mut node: NewNode) -> Result<Stat, Error> {
        let name = name_str(name)?;
        let dir = self.to_fs(parent);
        node.uid = req.uid();
        node.gid = req.gid();
        self.with(|fs| {
            let p = fs.getattr(dir)?;
            if p.mode & S_ISGID != 0 {
                node.gid = p.gid;
                if node.kind == FileType::Directory {
                    node.mode |= S_ISGID;
                }
            }
            fs.create(dir, name, &node)
        })
    }

    fn generation(&self, ino: NodeId) -> Generation {
        Generation(self.generations.lock().map(|g| g.get(&ino).copied().unwrap_or(0)).unwrap_or(0))
    }

    /// The node `name` in `dir` will die if the operation about to run removes this name: remember
    /// its id when this is its last link (directories have only one).
    fn last_link(&self, fs: &mut dyn FileSystem, dir: NodeId, name: &str) -> Option<NodeId> {
        match fs.lookup(dir, name) {
            Ok(st) if st.kind == FileType::Directory || st.nlink <= 1 => Some(st.ino),
            _ => None,
        }
    }

    fn bump_generation(&self, ino: Option<NodeId>) {
        if let (Some(ino), Ok(mut g)) = (ino, self.generations.lock()) {
            *g.entry(ino).or_insert(0) += 1;
        }
    }

    /// Remove `name` from `dir` with `op` (unlink or rmdir), retiring the id if the node died.
    fn remove(&self, parent: INodeNo, name: &OsStr, op: fn(&mut dyn FileSystem, NodeId, &str) -> Result<(), Error>) -> Result<(), Error> {
        let name = name_str(name)?;
        let dir = self.to_fs(parent);
        let dying = self.with(|fs| {
            let dying = self.last_link(fs, dir, name);
            op(fs, dir, name).map(|()| dying)
        })?;
        self.bump_generation(dying);
        Ok(())
    }

    fn reply_entry(&self, r: Result<Stat, Error>, reply: ReplyEntry) {
        match r {
            Ok(st) => reply.entry(&TTL, &self.attr(&st), self.generation(st.ino)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn reply_empty(r: Result<(), Error>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for FuseAdapter {
    fn destroy(&mut self) {
        // The kernel is done with us: make everything durable now, in case the process dies before
        // `serve` closes the image.
        if let Err(e) = self.with(|fs| fs.sync()) {
            eprintln!("watos-image: sync at unmount failed: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let dir = self.to_fs(parent);
        let r = match name.to_str() {
            Some(n) => self.with(|fs| fs.lookup(dir, n)),
            None => Err(Error::NotFound),
        };
        self.reply_entry(r, reply)
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|fs| fs.getattr(self.to_fs(ino))) {
            Ok(st) => reply.attr(&TTL, &self.attr(&st)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attr = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(time_or_now),
            mtime: mtime.map(time_or_now),
        };
        match self.with(|fs| fs.setattr(self.to_fs(ino), attr)) {
            Ok(st) => reply.attr(&TTL, &self.attr(&st)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.with(|fs| fs.readlink(self.to_fs(ino))) {
            Ok(t) => reply.data(t.as_bytes()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let r = kind_from_mode(mode).and_then(|k| {
            let mut node = NewNode::new(k, mode & 0o7777 & !umask);
            node.rdev = rdev;
            self.make(req, parent, name, node)
        });
        self.reply_entry(r, reply)
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let node = NewNode::new(FileType::Directory, mode & 0o7777 & !umask);
        self.reply_entry(self.make(req, parent, name, node), reply)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(self.remove(parent, name, |fs, d, n| fs.unlink(d, n)), reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(self.remove(parent, name, |fs, d, n| fs.rmdir(d, n)), reply)
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let r = target.to_str().ok_or(Error::InvalidArgument).and_then(|t| {
            let mut node = NewNode::new(FileType::Symlink, 0o777);
            node.symlink_target = t.to_string();
            self.make(req, parent, link_name, node)
        });
        self.reply_entry(r, reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (from_dir, to_dir) = (self.to_fs(parent), self.to_fs(newparent));
        let r = name_str(name).and_then(|from| {
            let to = name_str(newname)?;
            if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
                return Err(Error::InvalidArgument);
            }
            let dying = self.with(|fs| {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) && fs.lookup(to_dir, to).is_ok() {
                    return Err(Error::AlreadyExists);
                }
                let moved = fs.lookup(from_dir, from)?.ino;
                let dying = self.last_link(fs, to_dir, to).filter(|&t| t != moved);
                fs.rename(from_dir, from, to_dir, to).map(|()| dying)
            })?;
            self.bump_generation(dying);
            Ok(())
        });
        Self::reply_empty(r, reply)
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let r = name_str(newname).and_then(|n| self.with(|fs| fs.link(self.to_fs(ino), self.to_fs(newparent), n)));
        self.reply_entry(r, reply)
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|fs| fs.open(self.to_fs(ino))) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut buf = vec![0u8; size as usize];
        match self.with(|fs| fs.read(self.to_fs(ino), offset, &mut buf)) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|fs| fs.write(self.to_fs(ino), offset, data)) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Writes go straight to the filesystem; durability is fsync's job.
        reply.ok()
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(self.with(|fs| fs.release(self.to_fs(ino))), reply)
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        Self::reply_empty(self.with(|fs| fs.fsync(self.to_fs(ino))), reply)
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|fs| fs.open(self.to_fs(ino))) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let dir = self.to_fs(ino);
        if offset == 0 && reply.add(ino, 1, fuser::FileType::Directory, ".") {
            return reply.ok();
        }
        // `..`'s inode number is not used by the kernel (it resolves `..` itself); report our own.
        if offset <= 1 && reply.add(ino, 2, fuser::FileType::Directory, "..") {
            return reply.ok();
        }
        let mut cookie = offset.saturating_sub(2);
        loop {
            let page = match self.with(|fs| fs.readdir(dir, cookie, 128)) {
                Ok(p) => p,
                Err(e) => return reply.error(errno(e)),
            };
            if page.is_empty() {
                return reply.ok();
            }
            for e in page {
                let Some(off) = e.next_cookie.checked_add(2) else {
                    return reply.error(errno(Error::Corrupt { block: dir }));
                };
                if reply.add(self.to_fuse(e.ino), off, kind(e.kind), &e.name) {
                    return reply.ok();
                }
                cookie = e.next_cookie;
            }
        }
    }

    fn releasedir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        Self::reply_empty(self.with(|fs| fs.release(self.to_fs(ino))), reply)
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        Self::reply_empty(self.with(|fs| fs.fsync(self.to_fs(ino))), reply)
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.with(|fs| fs.statfs()) {
            Ok(s) => reply.statfs(
                s.total_blocks,
                s.free_blocks,
                s.free_blocks,
                s.total_nodes,
                s.free_nodes,
                s.block_size,
                s.max_name_len,
                s.block_size,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let node = NewNode::new(FileType::File, mode & 0o7777 & !umask);
        let r = match self.make(req, parent, name, node) {
            // Someone created it since the kernel's lookup: without O_EXCL, open the existing file.
            Err(Error::AlreadyExists) if flags & libc::O_EXCL == 0 => {
                let dir = self.to_fs(parent);
                name_str(name).and_then(|n| self.with(|fs| fs.lookup(dir, n)))
            }
            other => other,
        };
        match r.and_then(|st| self.with(|fs| fs.open(st.ino)).map(|()| st)) {
            Ok(st) => reply.created(&TTL, &self.attr(&st), self.generation(st.ino), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backend::Owned;
    use super::*;

    #[test]
    fn root_ids_swap_as_a_bijection() {
        let mut a = FuseAdapter::new(Backend::Direct(Owned(Box::new(memfs::MemFs::default()))));
        a.root = 7;
        assert_eq!(a.to_fs(INodeNo(1)), 7);
        assert_eq!(a.to_fs(INodeNo(7)), 1);
        assert_eq!(a.to_fs(INodeNo(9)), 9);
        for i in [1, 7, 9] {
            assert_eq!(a.to_fs(a.to_fuse(i)), i);
        }
    }

    #[test]
    fn generations_advance_only_for_dead_ids() {
        let a = FuseAdapter::new(Backend::Direct(Owned(Box::new(memfs::MemFs::default()))));
        assert_eq!(a.generation(5), Generation(0));
        a.bump_generation(Some(5));
        a.bump_generation(None);
        assert_eq!(a.generation(5), Generation(1));
        assert_eq!(a.generation(6), Generation(0));
    }
}
