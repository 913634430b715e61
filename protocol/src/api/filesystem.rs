//! Filesystem-server interface: [`crate::fs::FileSystem`] over IPC, plus [`FsServer`], the adapter that
//! serves any `FileSystem` (WFS, FAT, the in-memory one) with it, [`FsService`], which serves it with
//! the rule that only the vfs makes operations beyond [`OPEN_OPS`], and [`forward_filesystem_ops!`], the
//! one list of operations that `FsServer` and the client-side adapter (`vfs::RemoteFs`) forward as they
//! are.
//!
//! Design: one operation per trait method, same arguments; file data travels in leases (a `Write` lease
//! for `read`, a `Read` lease for `write`), at most [`MAX_BULK`] bytes per call (clients split larger
//! transfers). Lookups, reads and listings are idempotent and retried across a server restart; every
//! mutation is `once`, so its caller learns that the outcome is unknown. Operations 30..=39 are the
//! administrative ones (snapshots, scrub): a filesystem without them answers `NotSupported`.
//! Operations 40..=49 are direct reads (see [`crate::api::grants`]): the vfs grants a client one
//! node, and the client reads it here without the vfs in between.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::api::grants::{DirectStats, GranterCheck, Grants};
use crate::fs::{Capabilities, DirEntry, FileSystem, FsStats, NewNode, NodeId, SetAttr, Stat, Timespec, TxId};
use crate::ipc::{Incoming, TaskId, MAX_INDIRECT};
use crate::{Error, Result};

/// Most bytes one read or write call moves; bounds the server's bounce buffer.
pub const MAX_BULK: usize = 1 << 20;

crate::interface! {
    // 2: direct reads (40..=43); `select_transaction` (24); `daemon_stats` carries the server's
    // cycle counts.
    version 2;
    1 idempotent Root fn root() -> NodeId;
    2 idempotent Capabilities fn capabilities() -> Capabilities;
    3 idempotent Lookup fn lookup(dir: NodeId, name: &'a str) -> Stat;
    4 idempotent Getattr fn getattr(node: NodeId) -> Stat;
    5 once Setattr fn setattr(node: NodeId, attr: SetAttr) -> Stat;
    /// Read into the lease; returns the byte count (0 at end of file).
    6 idempotent Read fn read(node: NodeId, offset: u64) leases(buf: Write) -> u32;
    /// Write the lease's bytes; returns the byte count.
    7 once Write fn write(node: NodeId, offset: u64) leases(data: Read) -> u32;
    8 once Create fn create(dir: NodeId, name: &'a str, node: NewNode) -> Stat;
    9 once Unlink fn unlink(dir: NodeId, name: &'a str) -> ();
    10 once Rmdir fn rmdir(dir: NodeId, name: &'a str) -> ();
    11 once Rename fn rename(from_dir: NodeId, from: &'a str, to_dir: NodeId, to: &'a str) -> ();
    /// Up to `max` entries after `cookie`; fewer if they would not fit one reply.
    12 idempotent Readdir fn readdir(dir: NodeId, cookie: u64, max: u32) -> Vec<DirEntry>;
    13 once Fsync fn fsync(node: NodeId) -> ();
    14 once Sync fn sync() -> ();
    15 idempotent Statfs fn statfs() -> FsStats;
    16 once Open fn open(node: NodeId) -> ();
    17 once Release fn release(node: NodeId) -> ();
    18 once Link fn link(node: NodeId, dir: NodeId, name: &'a str) -> Stat;
    19 idempotent Readlink fn readlink(node: NodeId) -> String;
    20 once BeginTransaction fn begin_transaction() -> TxId;
    21 once CommitTransaction fn commit_transaction(tx: TxId) -> ();
    22 once AbortTransaction fn abort_transaction(tx: TxId) -> ();
    /// Several reads in one request (see `FileSystem::read_batch`); at most [`MAX_BATCH`] reads.
    23 idempotent ReadBatch fn read_batch(reads: Vec<(NodeId, u64, u32)>) leases(buf: Write) -> Vec<u32>;
    /// Which transaction's state the operations that follow act in (`None`: outside any); the vfs
    /// sends it when the caller of its next operation is in another transaction than the last one.
    24 idempotent SelectTransaction fn select_transaction(tx: Option<TxId>) -> ();
    /// Capture the committed state as snapshot `name` (see `FileSystem::snapshot_create`).
    30 once SnapshotCreate fn snapshot_create(name: &'a str) -> ();
    /// Snapshots from position `start` of the oldest-first list, as many as fit one reply; an empty
    /// page means the end.
    31 idempotent SnapshotList fn snapshot_list(start: u32) -> Vec<SnapshotInfo>;
    32 once SnapshotDelete fn snapshot_delete(name: &'a str) -> ();
    /// Verify every checksum, repairing what a good copy allows; `once` because it writes repairs.
    33 once Scrub fn scrub() -> ScrubSummary;
    /// What the server's background work has done (`FileSystem::daemon_stats`).
    34 idempotent DaemonStats fn daemon_stats() -> crate::daemon::DaemonStats;
    /// Let `client` read `node` with `direct_read`; returns the grant's handle. Only the vfs may
    /// grant and revoke (`PermissionDenied`); `TooManyOpenFiles` when the table is full.
    40 once Grant fn grant(client: TaskId, node: NodeId) -> u64;
    41 once Revoke fn revoke(handle: u64) -> ();
    /// Read the node of grant `handle` at `offset` into the lease, for the grant's client only.
    /// `once`: a grant dies with the server instance, so a resend to a new one could only be refused.
    42 once DirectRead fn direct_read(handle: u64, offset: u64) leases(buf: Write) -> u32;
    43 idempotent DirectStatsOp fn direct_stats() -> DirectStats;
}

/// One snapshot, as `FileSystem::snapshot_list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// The transaction the snapshot captured (snapshots are listed in this order).
    pub txid: u64,
    pub created: Timespec,
}

/// What a scrub checked and repaired (`FileSystem::run_scrub`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubSummary {
    /// Copies of metadata (tree) blocks read and verified.
    pub node_copies_checked: u64,
    /// Bad metadata copies rewritten from a good one.
    pub node_copies_repaired: u64,
    pub data_blocks_checked: u64,
    /// Superblocks rewritten from the committed state.
    pub superblocks_repaired: u64,
    /// Blocks that failed with no good copy left.
    pub unrepairable: u64,
    /// The first [`MAX_UNREPAIRABLE_LISTED`] of those blocks' addresses.
    pub unrepairable_blocks: Vec<u64>,
}

impl ScrubSummary {
    pub fn is_clean(&self) -> bool {
        self.unrepairable == 0
    }
}

/// Most unrepairable block addresses a [`ScrubSummary`] lists, so the reply always fits.
pub const MAX_UNREPAIRABLE_LISTED: usize = 64;

/// Most entries the server asks its filesystem for per `readdir` request.
pub const READDIR_MAX: usize = 128;

/// Most reads in one `read_batch` request: even with every number at its longest varint the request
/// stays inline.
pub const MAX_BATCH: usize = 32;

/// Generates the methods of the operations that the two filesystem adapters forward unchanged: the
/// server side ([`FsServer`]'s `Handler` methods, `server`) calls `self.fs`, the client side
/// (`vfs::RemoteFs`'s `FileSystem` methods, `client`) calls `self.client`. Each such operation is one
/// line here, with the `FileSystem` method's name and arguments; the operations that need more (leases,
/// paging, a constant fetched once) are written out in both adapters. The `Handler` and the `FileSystem`
/// trait have the same method names for these, so a line that does not match both fails to compile.
#[doc(hidden)]
#[macro_export]
macro_rules! forward_filesystem_ops {
    ($side:ident) => {
        $crate::__forward_filesystem_ops! { $side;
            lookup(dir: $crate::fs::NodeId, name: &str) -> $crate::fs::Stat;
            getattr(node: $crate::fs::NodeId) -> $crate::fs::Stat;
            setattr(node: $crate::fs::NodeId, attr: $crate::fs::SetAttr) -> $crate::fs::Stat;
            unlink(dir: $crate::fs::NodeId, name: &str) -> ();
            rmdir(dir: $crate::fs::NodeId, name: &str) -> ();
            rename(from_dir: $crate::fs::NodeId, from: &str, to_dir: $crate::fs::NodeId, to: &str) -> ();
            fsync(node: $crate::fs::NodeId) -> ();
            sync() -> ();
            statfs() -> $crate::fs::FsStats;
            open(node: $crate::fs::NodeId) -> ();
            release(node: $crate::fs::NodeId) -> ();
            link(node: $crate::fs::NodeId, dir: $crate::fs::NodeId, name: &str) -> $crate::fs::Stat;
            readlink(node: $crate::fs::NodeId) -> $crate::idl::String;
            begin_transaction() -> $crate::fs::TxId;
            commit_transaction(tx: $crate::fs::TxId) -> ();
            abort_transaction(tx: $crate::fs::TxId) -> ();
            select_transaction(tx: Option<$crate::fs::TxId>) -> ();
            snapshot_create(name: &str) -> ();
            snapshot_delete(name: &str) -> ();
            daemon_stats() -> $crate::daemon::DaemonStats;
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __forward_filesystem_ops {
    (server; $($name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty;)*) => {
        $(
            fn $name(&mut self, _: &mut $crate::ipc::Incoming<'_, '_>, $($arg: $ty),*) -> $crate::Result<$ret> {
                self.fs.$name($($arg),*)
            }
        )*
    };
    (client; $($name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty;)*) => {
        $(
            fn $name(&mut self, $($arg: $ty),*) -> $crate::Result<$ret> {
                self.client.$name($($arg),*)
            }
        )*
    };
}

/// Serves a [`FileSystem`] over IPC. Holds one bounce buffer: a read goes through
/// [`FileSystem::read_with`], which either fills the bounce buffer or lends from the filesystem's own
/// cache, and each piece is copied into the caller's lease (the kernel's lease copy under WATOS).
/// Direct reads are served from the same path, for the clients the vfs granted ([`Grants`]).
pub struct FsServer<F> {
    pub fs: F,
    bounce: Vec<u8>,
    grants: Grants,
}

impl<F: FileSystem> FsServer<F> {
    pub fn new(fs: F) -> Self {
        FsServer { fs, bounce: Vec::new(), grants: Grants::default() }
    }

    /// Accept grants and revocations, and every operation outside [`OPEN_OPS`], only from the
    /// callers `check` accepts (the vfs), when served by [`FsService`]; without this, nobody may
    /// grant, every client reads through the vfs, and every caller may make every operation.
    pub fn with_granter(mut self, check: GranterCheck) -> Self {
        self.grants.set_granter(check);
        self
    }
}

/// The operations any caller may make of a server with a granter: `daemon_stats`, `direct_read`
/// (checked against its grant) and `direct_stats`. The rest are the vfs's.
pub const OPEN_OPS: [u16; 3] = [34, 42, 43];

/// [`FsServer`] served over IPC with its authority rule: a caller that is not the granter may make
/// only the [`OPEN_OPS`] (`PermissionDenied` for the rest, before anything is decoded further).
pub struct FsService<F>(pub FsServer<F>);

impl<F: FileSystem> crate::ipc::Server for FsService<F> {
    fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        if let Ok((header, _)) = crate::idl::decode_header(msg) {
            if !self.0.grants.may_call(cx.caller(), header.op, &OPEN_OPS) {
                return crate::idl::finish_reply::<()>(reply, &mut *cx.leases, None, &Err(Error::PermissionDenied));
            }
        }
        if self.0.grants.take_granter_restart() {
            // The old vfs's transaction: nobody can name it any more, and while it stayed open no
            // one could begin another.
            if let Some(tx) = self.0.fs.open_transaction() {
                let _ = self.0.fs.abort_transaction(tx);
            }
        }
        dispatch(&mut self.0, msg, cx, reply)
    }
}

/// The first `len` bytes of `bounce`, grown if needed; at most [`MAX_BULK`].
fn bounce(bounce: &mut Vec<u8>, len: usize) -> Result<&mut [u8]> {
    if len > MAX_BULK {
        return Err(Error::TooBig);
    }
    if bounce.len() < len {
        *bounce = vec![0; len];
    }
    Ok(&mut bounce[..len])
}

/// Drop entries from the end until `Ok(entries)` fits one reply (in the reply area: [`MAX_INDIRECT`]);
/// readdir may return fewer than asked.
pub fn fit_entries<T: serde::Serialize>(entries: &mut Vec<T>) -> Result<()> {
    let mut scratch = [0u8; MAX_INDIRECT];
    let had_any = !entries.is_empty();
    while postcard::to_slice(&Result::<&Vec<T>>::Ok(entries), &mut scratch).is_err() {
        entries.pop();
    }
    if had_any && entries.is_empty() {
        return Err(Error::TooBig);
    }
    Ok(())
}

impl<F: FileSystem> Handler for FsServer<F> {
    crate::forward_filesystem_ops!(server);

    fn root(&mut self, _: &mut Incoming<'_, '_>) -> Result<NodeId> {
        Ok(self.fs.root())
    }
    fn capabilities(&mut self, _: &mut Incoming<'_, '_>) -> Result<Capabilities> {
        Ok(self.fs.capabilities())
    }
    fn read(&mut self, cx: &mut Incoming<'_, '_>, node: NodeId, offset: u64) -> Result<u32> {
        let len = cx.leases.len(0)?;
        let buf = bounce(&mut self.bounce, len)?;
        let leases = &mut *cx.leases;
        let n = self.fs.read_with(node, offset, buf, &mut |at, data| leases.write(0, at, data))?;
        Ok(n as u32)
    }
    fn write(&mut self, cx: &mut Incoming<'_, '_>, node: NodeId, offset: u64) -> Result<u32> {
        let len = cx.leases.len(0)?;
        let buf = bounce(&mut self.bounce, len)?;
        cx.leases.read(0, 0, buf)?;
        let n = self.fs.write(node, offset, buf)?;
        Ok(n as u32)
    }
    fn create(&mut self, _: &mut Incoming<'_, '_>, dir: NodeId, name: &str, node: NewNode) -> Result<Stat> {
        self.fs.create(dir, name, &node)
    }
    fn readdir(&mut self, _: &mut Incoming<'_, '_>, dir: NodeId, cookie: u64, max: u32) -> Result<Vec<DirEntry>> {
        // A page never holds more than fits one reply, so a huge `max` must not make the filesystem
        // build a huge listing first.
        let mut entries = self.fs.readdir(dir, cookie, (max as usize).min(READDIR_MAX))?;
        fit_entries(&mut entries)?;
        Ok(entries)
    }
    fn read_batch(&mut self, cx: &mut Incoming<'_, '_>, reads: Vec<(NodeId, u64, u32)>) -> Result<Vec<u32>> {
        if reads.len() > MAX_BATCH {
            return Err(Error::TooBig);
        }
        let total = reads.iter().try_fold(0usize, |a, r| a.checked_add(r.2 as usize)).ok_or(Error::InvalidArgument)?;
        if total > cx.leases.len(0)? {
            return Err(Error::InvalidArgument);
        }
        let buf = bounce(&mut self.bounce, total)?;
        let counts = self.fs.read_batch(&reads, buf)?;
        // Copy only what each read produced, into its slot of the lease.
        let mut at = 0usize;
        for (r, &n) in reads.iter().zip(&counts) {
            let got = buf.get(at..at + n as usize).ok_or(Error::Corrupt { block: 0 })?;
            cx.leases.write(0, at, got)?;
            at += r.2 as usize;
        }
        Ok(counts)
    }
    fn snapshot_list(&mut self, _: &mut Incoming<'_, '_>, start: u32) -> Result<Vec<SnapshotInfo>> {
        let mut page: Vec<SnapshotInfo> = self.fs.snapshot_list()?.into_iter().skip(start as usize).collect();
        fit_entries(&mut page)?;
        Ok(page)
    }
    fn scrub(&mut self, _: &mut Incoming<'_, '_>) -> Result<ScrubSummary> {
        let mut r = self.fs.run_scrub()?;
        r.unrepairable_blocks.truncate(MAX_UNREPAIRABLE_LISTED);
        Ok(r)
    }
    fn grant(&mut self, cx: &mut Incoming<'_, '_>, client: TaskId, node: NodeId) -> Result<u64> {
        self.grants.grant(cx.caller(), client, node)
    }
    fn revoke(&mut self, cx: &mut Incoming<'_, '_>, handle: u64) -> Result<()> {
        self.grants.revoke(cx.caller(), handle)
    }
    fn direct_read(&mut self, cx: &mut Incoming<'_, '_>, handle: u64, offset: u64) -> Result<u32> {
        let node = self.grants.node(cx.caller(), handle)?;
        let n = self.read(cx, node, offset)?;
        self.grants.served(n);
        Ok(n)
    }
    fn direct_stats(&mut self, _: &mut Incoming<'_, '_>) -> Result<DirectStats> {
        Ok(self.grants.stats())
    }
}
