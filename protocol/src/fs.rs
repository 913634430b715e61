//! The filesystem-server interface: what WFS, FAT and the in-memory test filesystem implement.
//!
//! Design: an inode-level interface (like FUSE's low-level API and the VFS layer of a Unix kernel),
//! not a path-level one. Path resolution, mount crossing, file descriptors and open flags belong to the
//! VFS; a filesystem only knows nodes, identified by a [`NodeId`] that is stable for the life of the
//! node *across server restarts* (so the VFS can transparently re-open files after a filesystem server
//! is restarted). Names are single components, never paths; `.` and `..` are never passed in nor
//! returned by [`FileSystem::readdir`] (the VFS synthesises them).
//!
//! Every method returns [`crate::Error`]; implementations must never panic on bad input or a corrupt
//! image. Optional capabilities (links, transactions) have default bodies returning
//! [`Error::NotSupported`], and [`FileSystem::capabilities`] advertises what is real.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Stable identifier of a node inside one filesystem (inode number).
pub type NodeId = u64;

/// Identifier of an explicit transaction.
pub type TxId = u64;

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timespec {
    pub secs: i64,
    pub nanos: u32,
}

impl Timespec {
    pub const ZERO: Timespec = Timespec { secs: 0, nanos: 0 };

    pub const fn new(secs: i64, nanos: u32) -> Self {
        Timespec { secs, nanos }
    }
}

/// Where a filesystem gets "now" from: the host clock in tests and tools, a syscall under WATOS.
pub trait Clock {
    fn now(&self) -> Timespec;
}

/// A clock that always says the same time; makes tests and crash-replay deterministic.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedClock(pub Timespec);

impl Clock for FixedClock {
    fn now(&self) -> Timespec {
        self.0
    }
}

/// What kind of node this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileType {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

/// Attributes of a node, as `stat(2)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub ino: NodeId,
    pub kind: FileType,
    /// Permission bits only (0o7777); the type is in `kind`.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Logical size in bytes (for symlinks: length of the target).
    pub size: u64,
    /// Allocated space in 512-byte units, as `st_blocks`.
    pub blocks: u64,
    /// Device number for character and block devices, 0 otherwise.
    pub rdev: u32,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Birth time where the filesystem records one, otherwise equal to `ctime`.
    pub crtime: Timespec,
}

/// A change of attributes (`chmod`, `chown`, `truncate`, `utimens`); `None` leaves a field alone.
/// The filesystem updates `ctime` itself whenever anything changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
}

/// What to create in [`FileSystem::create`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNode {
    pub kind: FileType,
    /// Permission bits (already masked by the caller's umask).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number for `CharDevice`/`BlockDevice`, else 0.
    pub rdev: u32,
    /// Target for `Symlink`, else empty.
    pub symlink_target: String,
}

impl NewNode {
    /// A regular file or directory owned by root with the given permission bits.
    pub fn new(kind: FileType, mode: u32) -> Self {
        NewNode { kind, mode, uid: 0, gid: 0, rdev: 0, symlink_target: String::new() }
    }
}

/// One directory entry returned by [`FileSystem::readdir`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub ino: NodeId,
    pub kind: FileType,
    /// Pass this as `cookie` to continue listing after this entry.
    pub next_cookie: u64,
}

/// Space accounting, as `statfs(2)` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStats {
    pub block_size: u32,
    pub total_blocks: u64,
    pub free_blocks: u64,
    pub total_nodes: u64,
    pub free_nodes: u64,
    pub max_name_len: u32,
}

/// Which optional parts of the interface a filesystem really implements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub hard_links: bool,
    pub symlinks: bool,
    pub special_files: bool,
    pub permissions: bool,
    pub transactions: bool,
    pub snapshots: bool,
}

/// The filesystem-server interface. See the module documentation for the rules.
pub trait FileSystem {
    /// The root directory's node id.
    fn root(&self) -> NodeId;

    /// What this filesystem supports beyond the required methods.
    fn capabilities(&self) -> Capabilities;

    /// Find `name` in directory `dir`.
    fn lookup(&mut self, dir: NodeId, name: &str) -> Result<Stat>;

    fn getattr(&mut self, node: NodeId) -> Result<Stat>;

    /// Change attributes; `size` truncates or extends (with zeros, sparse where possible).
    fn setattr(&mut self, node: NodeId, attr: SetAttr) -> Result<Stat>;

    /// Read up to `buf.len()` bytes at `offset`; returns the count, 0 at or past end of file.
    /// Holes read as zeros.
    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// Write `data` at `offset`, extending the file (with a hole) if `offset` is past its end.
    /// Returns the number of bytes written (all of them unless an error occurs first).
    fn write(&mut self, node: NodeId, offset: u64, data: &[u8]) -> Result<usize>;

    /// Create a new node named `name` in `dir`; fails with `AlreadyExists` if the name is taken.
    fn create(&mut self, dir: NodeId, name: &str, node: &NewNode) -> Result<Stat>;

    /// Remove a non-directory name. The node's data is freed once it has no links and is not open.
    fn unlink(&mut self, dir: NodeId, name: &str) -> Result<()>;

    /// Remove an empty directory.
    fn rmdir(&mut self, dir: NodeId, name: &str) -> Result<()>;

    /// Atomically rename, replacing an existing target as POSIX `rename(2)` does.
    fn rename(&mut self, from_dir: NodeId, from: &str, to_dir: NodeId, to: &str) -> Result<()>;

    /// List up to `max` entries of `dir` starting after `cookie` (0 = from the beginning).
    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>>;

    /// Make the node's data and metadata durable. Never `Ok` without that: a filesystem that
    /// cannot (inside an explicit transaction, whose changes may not become durable before its
    /// commit) answers `Busy`. Outside it, an open transaction's changes are not made durable.
    fn fsync(&mut self, node: NodeId) -> Result<()>;

    /// Make everything durable (commit and flush); `Busy` as for `fsync`.
    fn sync(&mut self) -> Result<()>;

    fn statfs(&mut self) -> Result<FsStats>;

    /// The VFS opened the node; an unlinked node stays alive until the matching `release`.
    fn open(&mut self, _node: NodeId) -> Result<()> {
        Ok(())
    }

    /// The last VFS reference to an opened node went away.
    fn release(&mut self, _node: NodeId) -> Result<()> {
        Ok(())
    }

    /// Create a hard link `name` in `dir` to `node`.
    fn link(&mut self, _node: NodeId, _dir: NodeId, _name: &str) -> Result<Stat> {
        Err(Error::NotSupported)
    }

    fn readlink(&mut self, _node: NodeId) -> Result<String> {
        Err(Error::NotSupported)
    }

    /// Start an explicit transaction: every change made in it (see `select_transaction`) until
    /// `commit` or `abort` becomes durable atomically or not at all, and is seen by no other
    /// operation before its commit. The transaction is selected for the calls that follow. One
    /// open transaction at a time (`Busy` otherwise).
    fn begin_transaction(&mut self) -> Result<TxId> {
        Err(Error::NotSupported)
    }

    /// Make the transaction's changes part of the live state and durable, atomically; `Conflict`
    /// (the transaction rolled back) if they cannot be applied over changes made outside it since
    /// it began. Afterwards no transaction is selected.
    fn commit_transaction(&mut self, _tx: TxId) -> Result<()> {
        Err(Error::NotSupported)
    }

    /// Drop the transaction's changes; nothing else is affected. Afterwards no transaction is
    /// selected.
    fn abort_transaction(&mut self, _tx: TxId) -> Result<()> {
        Err(Error::NotSupported)
    }

    /// The explicit transaction open now, if any (the server aborts it when the vfs that owns it
    /// restarts and can no longer name it).
    fn open_transaction(&self) -> Option<TxId> {
        None
    }

    /// The operations that follow act in transaction `tx` (its own changes visible, nobody else's
    /// uncommitted ones) or, with `None`, outside any transaction. `NoSuchTransaction` for a
    /// transaction that is not open. A filesystem without transactions has only `None`.
    fn select_transaction(&mut self, tx: Option<TxId>) -> Result<()> {
        match tx {
            None => Ok(()),
            Some(_) => Err(Error::NoSuchTransaction),
        }
    }

    /// `read` into a lease the caller holds (possibly forwarded from another process) rather than
    /// into its own memory, so a server in the middle (the vfs) never copies the bytes. The default
    /// reads straight into the lent buffer, which is right for the in-memory transport's leases and
    /// for a filesystem behind IPC (it lends the buffer on). `PermissionDenied` for a read-only lease.
    fn read_lease(&mut self, node: NodeId, offset: u64, lease: crate::ipc::Lease<'_>) -> Result<usize> {
        match lease {
            crate::ipc::Lease::Write(buf) | crate::ipc::Lease::ReadWrite(buf) => self.read(node, offset, buf),
            crate::ipc::Lease::Read(_) => Err(Error::PermissionDenied),
        }
    }

    /// `read` that hands the bytes to `sink` rather than leaving them in `buf`: `sink(at, bytes)`
    /// delivers `bytes` at offset `at` of the read, the pieces in ascending order covering `0..n`
    /// exactly once; returns `n`. `buf` (as long as the read) is scratch the filesystem may fill. The
    /// default reads into `buf` and sinks it whole; a filesystem with a cache of its data lends
    /// straight from that cache, so a server answering through a lease copies each byte once.
    fn read_with(
        &mut self,
        node: NodeId,
        offset: u64,
        buf: &mut [u8],
        sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<usize> {
        let n = self.read(node, offset, buf)?;
        if n > 0 {
            sink(0, buf.get(..n).ok_or(Error::Corrupt { block: 0 })?)?;
        }
        Ok(n)
    }

    /// `write` from a lease the caller holds; see [`FileSystem::read_lease`]. `PermissionDenied` for
    /// a write-only lease.
    fn write_lease(&mut self, node: NodeId, offset: u64, lease: crate::ipc::Lease<'_>) -> Result<usize> {
        match lease {
            crate::ipc::Lease::Read(data) => self.write(node, offset, data),
            crate::ipc::Lease::ReadWrite(data) => self.write(node, offset, data),
            crate::ipc::Lease::Write(_) => Err(Error::PermissionDenied),
        }
    }

    /// Several reads in one call: read `i` is `reads[i] = (node, offset, len)` and lands in `out`
    /// right after read `i-1`'s `len` bytes; returns each read's byte count. A filesystem behind IPC
    /// turns this into one request instead of one per read; the default simply loops over `read`.
    /// `InvalidArgument` if `out` is shorter than the lengths add up to.
    fn read_batch(&mut self, reads: &[(NodeId, u64, u32)], out: &mut [u8]) -> Result<Vec<u32>> {
        let mut counts = Vec::with_capacity(reads.len());
        let mut at = 0usize;
        for &(node, offset, len) in reads {
            let end = at.checked_add(len as usize).ok_or(Error::InvalidArgument)?;
            let buf = out.get_mut(at..end).ok_or(Error::InvalidArgument)?;
            counts.push(self.read(node, offset, buf)? as u32);
            at = end;
        }
        Ok(counts)
    }

    /// A number that changes whenever the server behind this filesystem restarted, i.e. whenever
    /// state it held for the caller (nodes opened with [`FileSystem::open`]) may have been lost. A
    /// filesystem in the caller's own process never restarts: the default is a constant. The VFS
    /// compares it after each call and re-opens its open files when it changes.
    fn generation(&self) -> u64 {
        0
    }

    /// Capture the current state (committed first) as the read-only snapshot `name`.
    /// `AlreadyExists` if the name is taken, `Busy` inside an explicit transaction.
    fn snapshot_create(&mut self, _name: &str) -> Result<()> {
        Err(Error::NotSupported)
    }

    /// Every snapshot, oldest first.
    fn snapshot_list(&mut self) -> Result<Vec<crate::api::filesystem::SnapshotInfo>> {
        Err(Error::NotSupported)
    }

    /// Delete snapshot `name` and free what only it kept (`NotFound` if there is none).
    fn snapshot_delete(&mut self, _name: &str) -> Result<()> {
        Err(Error::NotSupported)
    }

    /// Read and verify every checksummed block, repairing from redundant copies where it can.
    fn run_scrub(&mut self) -> Result<crate::api::filesystem::ScrubSummary> {
        Err(Error::NotSupported)
    }
    /// The server's background work (its daemon, see [`crate::daemon`]), called from a timer: write
    /// back changes that have reached the flush age and do a bounded slice of other work. Returns
    /// the delay in ns until it wants to run again, `None` if it has no background work (default).
    /// A failure is counted in [`FileSystem::daemon_stats`], not returned: nobody waits for it.
    fn background(&mut self) -> Option<u64> {
        None
    }

    /// What the background work has done (`NotSupported` without any).
    fn daemon_stats(&mut self) -> Result<crate::daemon::DaemonStats> {
        Err(Error::NotSupported)
    }

    /// Let task `client` read `node` from the server behind this filesystem without the caller in
    /// between (see [`crate::api::grants`]); returns that server and the grant. `NotSupported` for a
    /// filesystem in the caller's own process (there is no hop to save).
    fn grant_direct(&mut self, _client: crate::ipc::TaskId, _node: NodeId) -> Result<crate::api::grants::DirectGrant> {
        Err(Error::NotSupported)
    }

    /// End a grant made by [`FileSystem::grant_direct`].
    fn revoke_direct(&mut self, _handle: u64) -> Result<()> {
        Err(Error::NotSupported)
    }
}
