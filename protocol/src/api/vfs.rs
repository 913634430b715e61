//! vfs-server interface: path-level file operations for applications.
//!
//! Design: the calling process is identified by the transport (`Incoming::caller`), never by the
//! message, so descriptors are per process and unforgeable. File data travels in leases. `read` and
//! `write` move the shared file offset, so they are `once`; `batch_read` (positioned reads), stat and
//! listings are idempotent. Paths are at most [`crate::ipc::MAX_PATH`] bytes.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::fs::{DirEntry, Stat};

/// `open` flags with their POSIX meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    pub const READ: OpenFlags = OpenFlags(1);
    pub const WRITE: OpenFlags = OpenFlags(2);
    /// Every write goes to the end of the file (implies write access, as in Rust's std).
    pub const APPEND: OpenFlags = OpenFlags(4);
    pub const CREATE: OpenFlags = OpenFlags(8);
    /// Cut the file to 0 bytes on open; needs write access.
    pub const TRUNCATE: OpenFlags = OpenFlags(16);
    /// With CREATE: fail with `AlreadyExists` if the name exists.
    pub const EXCLUSIVE: OpenFlags = OpenFlags(32);
    /// Fail with `NotADirectory` unless the path is a directory.
    pub const DIRECTORY: OpenFlags = OpenFlags(64);
    /// Do not follow a symbolic link in the last component.
    pub const NOFOLLOW: OpenFlags = OpenFlags(128);
    const ALL: u32 = 255;

    pub const fn contains(self, other: OpenFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn is_valid(self) -> bool {
        self.0 & !Self::ALL == 0
    }
    pub const fn can_read(self) -> bool {
        self.contains(Self::READ)
    }
    pub const fn can_write(self) -> bool {
        self.contains(Self::WRITE) || self.contains(Self::APPEND)
    }
}

impl core::ops::BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, rhs: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | rhs.0)
    }
}

/// Where `seek` counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Whence {
    Start,
    Current,
    End,
}

/// One positioned read of a batch; its data lands in the lease right after the previous one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReq {
    pub fd: u32,
    pub offset: u64,
    pub len: u32,
}

/// Most reads in one batch (keeps the request inline).
pub const MAX_BATCH: usize = 64;

/// One asynchronous request of `aio_submit`: read `len` bytes of `fd` at `offset`, or (`write`)
/// write the next `len` bytes of the submit's data lease there. Positioned: offsets do not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AioReq {
    pub fd: u32,
    pub offset: u64,
    pub len: u32,
    pub write: bool,
}

/// One finished asynchronous request of `aio_reap`. A read's `Ok(n)` bytes follow the previous
/// read's in the reap lease; a write's `Ok(n)` is the count written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AioDone {
    pub ticket: u64,
    pub result: core::result::Result<u32, crate::Error>,
}

/// The vfs server's asynchronous-I/O counters: "held" is how many requests the server held for all
/// processes (queued or finished but not reaped), sampled at each submit; a "run" is one execution
/// of queued requests when no call was waiting, and its size is how many requests it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AioStats {
    pub submitted: u64,
    pub completed: u64,
    pub held_max: u64,
    pub held_sum: u64,
    pub held_samples: u64,
    pub runs: u64,
    pub run_max: u64,
    pub run_sum: u64,
}

/// Most requests one process may have at the vfs server at once (queued or unreaped, all its
/// queues together): `Busy` beyond.
pub const MAX_AIO: usize = 1024;
/// Most requests one `aio_submit` carries (they travel out of line, within `MAX_INDIRECT`).
pub const MAX_AIO_SUBMIT: usize = 64;
/// Most bytes one asynchronous request moves.
pub const MAX_AIO_LEN: usize = 64 * 1024;

/// Counters the vfs server reports. Operation counters count operations that succeeded (a failed
/// `open` opened nothing); a batch read counts once in `batch_reads` and once per read in `reads`.
///
/// Wire size: 36 `u64` varints, so the reply travels inline while the counters are small (each below
/// 2^42 keeps it within 256 bytes) and otherwise in the reply area every stub lends, as the IDL allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfsStats {
    pub opens: u64,
    /// Open-file descriptions released (the last descriptor of one closed).
    pub closes: u64,
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub batch_reads: u64,
    /// Name lookups made while resolving paths (each one a dentry-cache hit or miss).
    pub lookups: u64,
    pub dentry_hits: u64,
    pub dentry_misses: u64,
    pub attr_hits: u64,
    pub attr_misses: u64,
    /// Open-file descriptions now (a gauge).
    pub open_files: u64,
    /// Mounted filesystems now (a gauge).
    pub mounts: u64,
    /// Open files re-opened by node id after their filesystem server restarted.
    pub fs_reopens: u64,
    pub seeks: u64,
    /// `stat`, `lstat` and `fstat`.
    pub stats: u64,
    pub statfs: u64,
    /// Listing pages served.
    pub readdirs: u64,
    pub mkdirs: u64,
    pub symlinks: u64,
    pub readlinks: u64,
    pub links: u64,
    pub unlinks: u64,
    pub rmdirs: u64,
    pub renames: u64,
    pub fsyncs: u64,
    pub truncates: u64,
    pub dups: u64,
    pub tx_begins: u64,
    pub tx_commits: u64,
    pub tx_aborts: u64,
    /// Calls to a filesystem that failed, any kind (a lookup of a missing name included).
    pub fs_errors: u64,
    /// Of those: the device or the data failed (`Io`, `Checksum`, `Corrupt`).
    pub io_errors: u64,
    /// Of those: the filesystem server was gone (`ServerDead`, `ServerRestarted`).
    pub server_errors: u64,
    /// Of those: refused for now (`Busy`: e.g. a second transaction, or `fsync` inside one).
    pub busy_errors: u64,
}

/// The kinds of operation the vfs server times (`timing`), each a group of operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    /// `open`, `openat`.
    Open,
    Close,
    /// `read`, `batch_read`.
    Read,
    /// `write`, `pwrite`.
    Write,
    /// `stat`, `fstat`, `lstat`, `statat`, `statfs`.
    Stat,
    /// `readdir`, `readdirat`.
    Readdir,
    Fsync,
    /// Changes to names: mkdir, unlink, rmdir, rename, symlink, link and their `*at` forms.
    Namespace,
    /// `truncate`, `setattrat`.
    Setattr,
    Seek,
    /// `begin`, `commit`, `abort`.
    Transaction,
    /// `aio_submit`, `aio_reap`, `aio_close`.
    Aio,
    /// Everything else (dup, readlink, statistics, snapshots, scrub, exit, unknown codes).
    Other,
}

impl OpKind {
    /// Every kind, in the order `timing` reports them.
    pub const ALL: [OpKind; 13] = [
        OpKind::Open,
        OpKind::Close,
        OpKind::Read,
        OpKind::Write,
        OpKind::Stat,
        OpKind::Readdir,
        OpKind::Fsync,
        OpKind::Namespace,
        OpKind::Setattr,
        OpKind::Seek,
        OpKind::Transaction,
        OpKind::Aio,
        OpKind::Other,
    ];

    /// The kind of operation code `op` (see the interface below).
    pub const fn of(op: u16) -> OpKind {
        match op {
            1 | 40 => OpKind::Open,
            2 => OpKind::Close,
            3 | 17 => OpKind::Read,
            4 | 49 => OpKind::Write,
            6 | 7 | 22 | 26 | 41 => OpKind::Stat,
            8 | 48 => OpKind::Readdir,
            13 => OpKind::Fsync,
            9 | 10 | 11 | 12 | 23 | 25 | 42..=45 => OpKind::Namespace,
            14 | 46 => OpKind::Setattr,
            5 => OpKind::Seek,
            18..=20 => OpKind::Transaction,
            28 | 29 | 31 => OpKind::Aio,
            _ => OpKind::Other,
        }
    }

    /// Its position in [`OpKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Open => "open",
            OpKind::Close => "close",
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Stat => "stat",
            OpKind::Readdir => "readdir",
            OpKind::Fsync => "fsync",
            OpKind::Namespace => "namespace",
            OpKind::Setattr => "setattr",
            OpKind::Seek => "seek",
            OpKind::Transaction => "transaction",
            OpKind::Aio => "aio",
            OpKind::Other => "other",
        }
    }
}

/// What `timing` reports: each request's time in the vfs server, from receiving it to its reply
/// encoded, by kind of operation, and the failed replies by error kind.
///
/// Wire size: up to 13 kinds of 61 bytes and 29 error kinds of 11, under 1.2 KiB: it travels in the
/// reply area every stub lends (a test holds this).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfsTiming {
    /// Ticks per second of the server's clock (TSC cycles on WATOS), 0 if unknown.
    pub tick_hz: u64,
    /// Every kind with at least one request, in [`OpKind::ALL`] order.
    pub ops: Vec<(OpKind, crate::latency::LatencySummary)>,
    /// Every error kind replied at least once, with its count (the error's detail is 0).
    pub errors: Vec<(crate::Error, u64)>,
}

impl VfsTiming {
    /// The latencies of `kind` (all zero if it never ran).
    pub fn of(&self, kind: OpKind) -> crate::latency::LatencySummary {
        self.ops.iter().find(|(k, _)| *k == kind).map(|(_, l)| *l).unwrap_or_default()
    }

    /// How many replies failed with `e`'s kind.
    pub fn errors_of(&self, e: crate::Error) -> u64 {
        self.errors.iter().find(|(k, _)| k.kind() == e.kind()).map(|(_, n)| *n).unwrap_or(0)
    }
}

crate::interface! {
    // 2: `stats` counts every kind of operation (version 1 had fifteen counters).
    // 3: `timing` (latency by kind of operation, errors by kind).
    // 4: direct reads (`direct_read`, 60).
    version 4;
    /// Open `path`; returns the lowest free descriptor (>= 3).
    1 once Open fn open(path: &'a str, flags: OpenFlags, mode: u32) -> u32;
    2 once Close fn close(fd: u32) -> ();
    /// Read at the file offset into the lease and advance the offset; returns the count.
    3 once Read fn read(fd: u32) leases(buf: Write) -> u32;
    /// Write the lease at the file offset (the end with APPEND) and advance; returns the count.
    4 once Write fn write(fd: u32) leases(data: Read) -> u32;
    5 once Seek fn seek(fd: u32, whence: Whence, offset: i64) -> u64;
    /// Attributes of `path`, following symbolic links.
    6 idempotent Stat fn stat(path: &'a str) -> Stat;
    7 idempotent Fstat fn fstat(fd: u32) -> Stat;
    /// Entries of the directory `path` after `cookie` (0 = start), `.` and `..` included.
    8 idempotent Readdir fn readdir(path: &'a str, cookie: u64) -> Vec<DirEntry>;
    9 once Mkdir fn mkdir(path: &'a str, mode: u32) -> ();
    10 once Unlink fn unlink(path: &'a str) -> ();
    11 once Rmdir fn rmdir(path: &'a str) -> ();
    12 once Rename fn rename(from: &'a str, to: &'a str) -> ();
    13 once Fsync fn fsync(fd: u32) -> ();
    14 once Truncate fn truncate(fd: u32, size: u64) -> ();
    15 once Dup fn dup(fd: u32) -> u32;
    /// The calling process exits: every descriptor it holds is closed, its transactions aborted.
    16 once Exit fn exit() -> ();
    /// Several positioned reads in one request; returns each read's count.
    17 idempotent BatchRead fn batch_read(reads: Vec<ReadReq>) leases(buf: Write) -> Vec<u32>;
    /// Begin a transaction on the filesystem holding `path`.
    18 once Begin fn begin(path: &'a str) -> u64;
    19 once Commit fn commit(tx: u64) -> ();
    20 once Abort fn abort(tx: u64) -> ();
    21 idempotent Stats fn stats() -> VfsStats;
    /// Attributes of `path` without following a final symbolic link.
    22 idempotent Lstat fn lstat(path: &'a str) -> Stat;
    23 once Symlink fn symlink(target: &'a str, path: &'a str) -> ();
    24 idempotent Readlink fn readlink(path: &'a str) -> alloc::string::String;
    /// A new name `to` for the non-directory `from` (same filesystem only).
    25 once Link fn link(from: &'a str, to: &'a str) -> ();
    /// Space accounting of the filesystem holding `path`.
    26 idempotent Statfs fn statfs(path: &'a str) -> crate::fs::FsStats;
    /// Process `pid` died (the supervisor, told by the kernel, reports it): close everything it
    /// held, abort its transactions; returns the number of descriptors closed. Only the supervisor
    /// may call this (`PermissionDenied` for anyone else).
    27 once ProcessExited fn process_exited(pid: crate::ipc::TaskId) -> u32;
    /// Queue asynchronous requests on the caller's queue `queue` (any number the caller picks; each
    /// queue has its own tickets and results). Write data is copied from `data` now. Returns the
    /// first request's ticket, the others following in order. The server runs queued requests
    /// when no call is waiting, then posts the notification bits `notify` to the caller;
    /// `aio_reap` collects them.
    28 once AioSubmit fn aio_submit(queue: u32, notify: u64, reqs: Vec<AioReq>) leases(data: Read) -> u64;
    /// Up to `max` finished requests of `queue`, in submission order, read data packed into `buf`
    /// (as many as fit). A queue that asked for no notification (`notify` 0) and has requests
    /// queued and none finished has them run first, so a transport without notifications still
    /// makes progress.
    29 once AioReap fn aio_reap(queue: u32, max: u32) leases(buf: Write) -> Vec<AioDone>;
    30 idempotent AioStatsOp fn aio_stats() -> AioStats;
    /// Forget `queue`: its queued requests never run, its results are dropped.
    31 once AioClose fn aio_close(queue: u32) -> ();
    /// Snapshot `name` of the filesystem holding `path` (`NotSupported` where it has none).
    34 once SnapshotCreate fn snapshot_create(path: &'a str, name: &'a str) -> ();
    /// Snapshots of the filesystem holding `path` from list position `start`, as many as fit one
    /// reply; an empty page means the end.
    35 idempotent SnapshotList fn snapshot_list(path: &'a str, start: u32) -> Vec<crate::api::filesystem::SnapshotInfo>;
    36 once SnapshotDelete fn snapshot_delete(path: &'a str, name: &'a str) -> ();
    /// Scrub the filesystem holding `path`.
    37 once Scrub fn scrub(path: &'a str) -> crate::api::filesystem::ScrubSummary;
    // The `*at` operations (40..=49): a relative `path` is resolved from the caller's descriptor
    // `dir` (an absolute one ignores it); an empty `path` names `dir`'s own node where that makes
    // sense (stat, setattr, readlink, readdir, link source, open). `..` cannot climb above `dir`
    // (`NotSupported`: the VFS does not know a descriptor's parent). The FUSE adapter uses them, one
    // component at a time, so paths of any total length work.
    /// Open `path` from `dir`; returns the lowest free descriptor.
    40 once OpenAt fn openat(dir: u32, path: &'a str, flags: OpenFlags, mode: u32) -> u32;
    /// Attributes of `path` from `dir`; `follow`: follow a final symbolic link.
    41 idempotent StatAt fn statat(dir: u32, path: &'a str, follow: bool) -> Stat;
    /// Create any kind of node (file, directory, symbolic link, FIFO, socket, device) with the owner,
    /// mode, device number and target given: the interface carries no credentials, so the caller
    /// (the FUSE adapter, which has the kernel's) says who owns it. `AlreadyExists` if the name exists.
    42 once MakeAt fn makeat(dir: u32, path: &'a str, node: crate::fs::NewNode) -> Stat;
    /// Remove a name: a non-directory, or with `rmdir` an empty directory.
    43 once UnlinkAt fn unlinkat(dir: u32, path: &'a str, rmdir: bool) -> ();
    /// Rename within one filesystem; `noreplace` fails with `AlreadyExists` if `to` exists.
    44 once RenameAt fn renameat(from_dir: u32, from: &'a str, to_dir: u32, to: &'a str, noreplace: bool) -> ();
    /// A new name `to` for the non-directory `from` (never following a final symbolic link).
    45 once LinkAt fn linkat(from_dir: u32, from: &'a str, to_dir: u32, to: &'a str) -> ();
    /// Change attributes (chmod, chown, truncate, utimens) of `path` from `dir`; returns the new ones.
    46 once SetattrAt fn setattrat(dir: u32, path: &'a str, attr: crate::fs::SetAttr, follow: bool) -> Stat;
    /// Target of the symbolic link `path` from `dir`.
    47 idempotent ReadlinkAt fn readlinkat(dir: u32, path: &'a str) -> alloc::string::String;
    /// Entries of the directory `path` from `dir` after `cookie`, as `readdir`.
    48 idempotent ReaddirAt fn readdirat(dir: u32, path: &'a str, cookie: u64) -> Vec<DirEntry>;
    /// Write the lease at `offset` (the end with APPEND) without moving the file offset.
    49 once Pwrite fn pwrite(fd: u32, offset: u64) leases(data: Read) -> u32;
    /// Latency by kind of operation (min, mean, p50, p99, max) and failed replies by error kind.
    50 idempotent Timing fn timing() -> VfsTiming;
    /// Let the caller read `fd`'s file straight from its filesystem server (`filesystem::direct_read`,
    /// see `crate::api::grants`): returns that server and the grant, the same one for every
    /// descriptor of the open-file description, valid until its last descriptor closes. Needs read
    /// access to a non-directory (`BadFileDescriptor`, `IsADirectory`); `NotSupported` where the
    /// filesystem is not behind a server of its own.
    60 once DirectRead fn direct_read(fd: u32) -> crate::api::grants::DirectGrant;
}
