//! Serving an [`ImageFs`] to the Linux kernel through FUSE (`watos-image mount`).
//!
//! Design: every FUSE request goes through the WATOS VFS server and the filesystem server, over the
//! protocol encoding of the in-process IPC model ([`backend`]), so a mount exercises the same request
//! paths as an application under WATOS: the VFS's path resolution, descriptor table, open-file
//! descriptions and metadata cache, then the filesystem server. The adapter speaks the VFS's `*at`
//! operations one component at a time from directory descriptors ([`nodes`] maps FUSE inode numbers
//! to descriptors and names); files the kernel opens are VFS descriptors (the FUSE file handle is the
//! descriptor number), so reads, writes, fsync and the attributes of an unlinked open file go
//! through the VFS's descriptor path. The same code serves memfs, WFS and FAT.
//!
//! The adapter sits behind one mutex (fuser runs a single dispatch thread; the mutex makes the
//! adapter `Sync` as fuser requires). The kernel does permission checks (`default_permissions`),
//! since the interfaces carry no credentials; the adapter supplies what a Unix kernel's VFS would:
//! the caller's uid/gid for new nodes (through `makeat`), set-group-id directory inheritance,
//! `RENAME_NOREPLACE` (through `renameat`). Attribute and entry caching in the kernel is off (TTL 0)
//! so every stat reflects the filesystem, which POSIX suites check.
//!
//! FUSE names the root inode 1; the filesystem's root id and id 1 are swapped when they differ, a
//! bijection that keeps every other id unchanged. readdir offsets are the VFS's listing cookies
//! (1 and 2 are `.` and `..`).
//!
//! [`convert`] holds the type conversions, [`serve`] the mount and shutdown.

mod backend;
mod convert;
mod nodes;
mod serve;

pub use convert::{from_system_time, to_system_time};
pub use serve::serve;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use protocol::api::vfs::{OpenFlags as VfsFlags, ReadReq};
use protocol::fs::{FileType, NewNode, NodeId, SetAttr, Stat};
use protocol::Error;

use backend::Backend;
use convert::{errno, kind, kind_from_mode, name_str, time_or_now};
use nodes::Nodes;

const TTL: Duration = Duration::ZERO;
const S_ISGID: u32 = 0o2000;

type Shared = Arc<Mutex<Option<Nodes>>>;

/// The fuser `Filesystem` over one image.
pub struct FuseAdapter {
    state: Shared,
    root: NodeId,
}

/// The VFS open flags for a FUSE open: the access mode and APPEND the kernel passes (truncation
/// reaches us as a separate setattr), never following a symbolic link.
fn vfs_flags(flags: i32) -> VfsFlags {
    let access = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => VfsFlags::READ,
        libc::O_WRONLY => VfsFlags::WRITE,
        _ => VfsFlags::READ | VfsFlags::WRITE,
    };
    let append = if flags & libc::O_APPEND != 0 { VfsFlags::APPEND } else { VfsFlags(0) };
    access | append | VfsFlags::NOFOLLOW
}

impl FuseAdapter {
    pub fn new(backend: Backend) -> Result<Self, Error> {
        let nodes = Nodes::new(backend)?;
        let root = nodes.root;
        Ok(FuseAdapter { state: Arc::new(Mutex::new(Some(nodes))), root })
    }

    fn shared(&self) -> Shared {
        self.state.clone()
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

    /// Run `f` on the node map and the stack; after shutdown began every call fails with EIO.
    fn with<T>(&self, f: impl FnOnce(&mut Nodes) -> Result<T, Error>) -> Result<T, Error> {
        let mut guard = self.state.lock().map_err(|_| Error::Io { offset: 0 })?;
        match guard.as_mut() {
            Some(nodes) => f(nodes),
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
        self.with(|n| {
            let fd = n.dir_fd(dir)?;
            let p = n.vfs().statat(fd, "", false)?;
            if p.mode & S_ISGID != 0 {
                node.gid = p.gid;
                if node.kind == FileType::Directory {
                    node.mode |= S_ISGID;
                }
            }
            let st = n.vfs().makeat(fd, name, node)?;
            n.learn(dir, name, &st);
            Ok(st)
        })
    }

    /// The generation of `ino`, counting the entry reply about to be sent as a kernel lookup.
    fn entry_generation(&self, ino: NodeId) -> Generation {
        Generation(
            self.with(|n| {
                n.entered(ino);
                Ok(n.generation(ino))
            })
            .unwrap_or(0),
        )
    }

    /// Remove `name` from `parent` (a directory with `rmdir`), retiring the id if the node died.
    fn remove(&self, parent: INodeNo, name: &OsStr, rmdir: bool) -> Result<(), Error> {
        let name = name_str(name)?;
        let dir = self.to_fs(parent);
        self.with(|n| {
            let fd = n.dir_fd(dir)?;
            let st = n.vfs().statat(fd, name, false)?;
            n.vfs().unlinkat(fd, name, rmdir)?;
            n.unlinked(dir, name, &st);
            Ok(())
        })
    }

    /// Open `ino` with `flags` as a VFS descriptor: the FUSE file handle.
    fn open_fh(&self, ino: INodeNo, flags: VfsFlags) -> Result<FileHandle, Error> {
        let node = self.to_fs(ino);
        self.with(|n| {
            let (fd, path) = n.at(node)?;
            let fh = n.vfs().openat(fd, &path, flags, 0)?;
            n.opened(node, fh);
            Ok(FileHandle(u64::from(fh)))
        })
    }

    fn reply_entry(&self, r: Result<Stat, Error>, reply: ReplyEntry) {
        match r {
            Ok(st) => reply.entry(&TTL, &self.attr(&st), self.entry_generation(st.ino)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn reply_attr(&self, r: Result<Stat, Error>, reply: ReplyAttr) {
        match r {
            Ok(st) => reply.attr(&TTL, &self.attr(&st)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn reply_empty(r: Result<(), Error>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn reply_open(r: Result<FileHandle, Error>, reply: ReplyOpen) {
        match r {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }
}

/// A FUSE file handle as the VFS descriptor it is.
fn fd(fh: FileHandle) -> Result<u32, Error> {
    u32::try_from(fh.0).map_err(|_| Error::BadFileDescriptor)
}

impl Filesystem for FuseAdapter {
    fn destroy(&mut self) {
        // The kernel is done with us: make everything durable now (fsync of any node commits the
        // whole filesystem in WFS and FAT), in case the process dies before `serve` closes the image.
        if let Err(e) = self.with(|n| n.vfs().fsync(n.root_fd())) {
            eprintln!("watos-image: sync at unmount failed: {e}");
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let node = self.to_fs(ino);
        let _ = self.with(|n| {
            n.kernel_forgot(node, nlookup);
            Ok(())
        });
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let dir = self.to_fs(parent);
        let r = match name.to_str() {
            Some(name) => self.with(|n| {
                let fd = n.dir_fd(dir)?;
                let st = n.vfs().statat(fd, name, false)?;
                n.learn(dir, name, &st);
                Ok(st)
            }),
            None => Err(Error::NotFound),
        };
        self.reply_entry(r, reply)
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let node = self.to_fs(ino);
        let r = self.with(|n| match fh {
            Some(fh) => n.vfs().fstat(fd(fh)?),
            None => n.getattr(node),
        });
        self.reply_attr(r, reply)
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
        fh: Option<FileHandle>,
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
        let node = self.to_fs(ino);
        let r = self.with(|n| {
            let (dir, path) = match fh {
                Some(fh) => (fd(fh)?, String::new()),
                None => n.at(node)?,
            };
            n.vfs().setattrat(dir, &path, attr, false)
        });
        self.reply_attr(r, reply)
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let node = self.to_fs(ino);
        match self.with(|n| n.at(node).and_then(|(fd, path)| n.vfs().readlinkat(fd, &path))) {
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
        Self::reply_empty(self.remove(parent, name, false), reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(self.remove(parent, name, true), reply)
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
            let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
            self.with(|n| {
                let (ffd, tfd) = (n.dir_fd(from_dir)?, n.dir_fd(to_dir)?);
                let moved = n.vfs().statat(ffd, from, false)?;
                let replaced = n.vfs().statat(tfd, to, false).ok().filter(|t| t.ino != moved.ino);
                n.vfs().renameat(ffd, from, tfd, to, noreplace)?;
                if let Some(t) = replaced {
                    n.unlinked(to_dir, to, &t);
                }
                // Some filesystems name a node by where its entry is (FAT): learn the moved node
                // afresh under its new name.
                n.forget(moved.ino);
                if let Ok(st) = n.vfs().statat(tfd, to, false) {
                    n.learn(to_dir, to, &st);
                }
                Ok(())
            })
        });
        Self::reply_empty(r, reply)
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (node, dir) = (self.to_fs(ino), self.to_fs(newparent));
        let r = name_str(newname).and_then(|name| {
            self.with(|n| {
                let (from, path) = n.at(node)?;
                let to = n.dir_fd(dir)?;
                n.vfs().linkat(from, &path, to, name)?;
                let st = n.vfs().statat(to, name, false)?;
                n.learn(dir, name, &st);
                Ok(st)
            })
        });
        self.reply_entry(r, reply)
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        Self::reply_open(self.open_fh(ino, vfs_flags(flags.0)), reply)
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut buf = vec![0u8; size as usize];
        let r = self.with(|n| {
            let counts = n.vfs().batch_read(vec![ReadReq { fd: fd(fh)?, offset, len: size }], &mut buf)?;
            counts.first().map(|&c| c as usize).ok_or(Error::Malformed)
        });
        match r {
            Ok(len) => reply.data(&buf[..len.min(buf.len())]),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|n| n.vfs().pwrite(fd(fh)?, offset, data)) {
            Ok(n) => reply.written(n),
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
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let node = self.to_fs(ino);
        Self::reply_empty(self.with(|n| n.release(node, fd(fh)?)), reply)
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        Self::reply_empty(self.with(|n| n.vfs().fsync(fd(fh)?)), reply)
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        Self::reply_open(self.open_fh(ino, VfsFlags::READ | VfsFlags::DIRECTORY), reply)
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut cookie = offset;
        loop {
            let page = match self.with(|n| n.vfs().readdirat(fd(fh)?, "", cookie)) {
                Ok(p) => p,
                Err(e) => return reply.error(errno(e)),
            };
            if page.is_empty() {
                return reply.ok();
            }
            // `..`'s inode number is not used by the kernel (it resolves `..` itself).
            for e in page {
                if reply.add(self.to_fuse(e.ino), e.next_cookie, kind(e.kind), &e.name) {
                    return reply.ok();
                }
                cookie = e.next_cookie;
            }
        }
    }

    fn releasedir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        let node = self.to_fs(ino);
        Self::reply_empty(self.with(|n| n.release(node, fd(fh)?)), reply)
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        Self::reply_empty(self.with(|n| n.vfs().fsync(fd(fh)?)), reply)
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.with(|n| n.vfs().statfs("/")) {
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
        let dir = self.to_fs(parent);
        let r = match self.make(req, parent, name, node) {
            // Someone created it since the kernel's lookup: without O_EXCL, open the existing file.
            Err(Error::AlreadyExists) if flags & libc::O_EXCL == 0 => name_str(name).and_then(|name| {
                self.with(|n| {
                    let fd = n.dir_fd(dir)?;
                    let st = n.vfs().statat(fd, name, false)?;
                    n.learn(dir, name, &st);
                    Ok(st)
                })
            }),
            other => other,
        };
        let opened = r.and_then(|st| self.open_fh(self.to_fuse(st.ino), vfs_flags(flags)).map(|fh| (st, fh)));
        match opened {
            Ok((st, fh)) => {
                reply.created(&TTL, &self.attr(&st), self.entry_generation(st.ino), fh, FopenFlags::empty())
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ids_swap_as_a_bijection() {
        let mut a = FuseAdapter::new(Backend::start(Box::new(memfs::MemFs::default())).unwrap()).unwrap();
        a.root = 7;
        assert_eq!(a.to_fs(INodeNo(1)), 7);
        assert_eq!(a.to_fs(INodeNo(7)), 1);
        assert_eq!(a.to_fs(INodeNo(9)), 9);
        for i in [1, 7, 9] {
            assert_eq!(a.to_fs(a.to_fuse(i)), i);
        }
    }

    #[test]
    fn open_flags_map_to_the_vfs() {
        assert_eq!(vfs_flags(libc::O_RDONLY), VfsFlags::READ | VfsFlags::NOFOLLOW);
        assert_eq!(vfs_flags(libc::O_WRONLY | libc::O_TRUNC), VfsFlags::WRITE | VfsFlags::NOFOLLOW);
        assert_eq!(
            vfs_flags(libc::O_RDWR | libc::O_APPEND),
            VfsFlags::READ | VfsFlags::WRITE | VfsFlags::APPEND | VfsFlags::NOFOLLOW
        );
    }
}
