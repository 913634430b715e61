//! [`VfsServer`]: the vfs-server's request handler, the [`Vfs`] behind the generated vfs interface.
//!
//! Design: the caller's task id (from the transport) is the process id, so descriptors are per process.
//! `read` and `write` forward the app's lease to the filesystem server (same bounds and rights), so
//! file data is copied between the app and the filesystem server only, never into vfs memory; so is a
//! batch of one read (the file API's positioned read). Batches of several reads scatter into one lease
//! and go through a bounce buffer. Transfers are capped at
//! [`MAX_BULK`] per call (a short count, as POSIX allows), listings at what fits one reply. Served
//! through [`VfsServer::serve`] (its `Server` impl), every request is timed (module `timing`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use protocol::api::filesystem::{fit_entries, ScrubSummary, SnapshotInfo, MAX_BULK};
use protocol::api::grants::DirectGrant;
use protocol::api::vfs::{AioDone, AioReq, AioStats, Handler, OpenFlags, ReadReq, VfsStats, VfsTiming, Whence};
use protocol::fs::{DirEntry, FsStats, NewNode, SetAttr, Stat};
use protocol::ipc::{Incoming, Lease, TaskId};
use protocol::latency::{NoTicks, Ticks};
use protocol::{Error, Result};

use crate::aio::AioState;
use crate::namespace::READDIR_PAGE;
use crate::timing::OpTimes;
use crate::Vfs;

pub struct VfsServer {
    pub vfs: Vfs,
    bounce: Vec<u8>,
    /// Task slot of the supervisor, the only caller allowed to report process deaths.
    supervisor: Option<u16>,
    aio: AioState,
    /// The clock requests are timed with (`timing`).
    pub(crate) clock: Box<dyn Ticks>,
    pub(crate) times: OpTimes,
}

impl VfsServer {
    pub fn new(vfs: Vfs) -> Self {
        VfsServer {
            vfs,
            bounce: Vec::new(),
            supervisor: None,
            aio: AioState::default(),
            clock: Box::new(NoTicks),
            times: OpTimes::default(),
        }
    }

    /// The serve loop's idle work: run the queued asynchronous requests. `None` if there were none,
    /// else the processes to notify (with their bits).
    pub fn run_aio(&mut self) -> Option<Vec<(TaskId, u64)>> {
        self.aio.has_work().then(|| self.aio.run(&mut self.vfs))
    }

    /// Accept process-death reports from the task in slot `index` (any generation: a restarted
    /// supervisor is still the supervisor).
    pub fn with_supervisor(mut self, index: u16) -> Self {
        self.supervisor = Some(index);
        self
    }

    /// A one-read batch through a forwarded lease: `None` if the transport cannot forward leases or
    /// the read is empty or bigger than one transfer (the bounce path then answers, errors included).
    fn single_read(&mut self, cx: &mut Incoming<'_, '_>, r: ReadReq) -> Result<Option<u32>> {
        let len = r.len as usize;
        if len == 0 || len > MAX_BULK {
            return Ok(None);
        }
        let caller = cx.caller();
        let lease = match cx.leases.forward(0, 0, len) {
            Ok(lease) => lease,
            Err(Error::NotSupported) => return Ok(None),
            Err(e) => return Err(e),
        };
        let n = self.vfs.pread_batched(caller, r.fd, r.offset, lease)?;
        Ok(Some(n as u32))
    }

    /// Take the bounce buffer, grown (never shrunk) to hold lease 0 of `cx` capped at MAX_BULK;
    /// returns it with the length to use. Grow-only, so alternating request sizes never re-zero it.
    fn take_bounce(&mut self, cx: &Incoming<'_, '_>) -> Result<(Vec<u8>, usize)> {
        let len = cx.leases.len(0)?.min(MAX_BULK);
        let mut b = core::mem::take(&mut self.bounce);
        if b.len() < len {
            b = vec![0; len];
        }
        Ok((b, len))
    }
}

impl VfsServer {
    /// `write` (`at` None: at the descriptor's offset, which advances) and `pwrite` (at `at`): the
    /// app's lease 0 goes on to the filesystem server when the transport can forward it, else its
    /// bytes go through the bounce buffer.
    fn write_from_lease(&mut self, cx: &mut Incoming<'_, '_>, fd: u32, at: Option<u64>) -> Result<u32> {
        let caller = cx.caller();
        let len = cx.leases.len(0)?.min(MAX_BULK);
        match cx.leases.forward(0, 0, len) {
            Ok(lease) => return write_lease_at(&mut self.vfs, caller, fd, at, lease).map(|n| n as u32),
            Err(Error::NotSupported) => {}
            Err(e) => return Err(e),
        }
        let (mut b, len) = self.take_bounce(cx)?;
        let r = cx
            .leases
            .read(0, 0, &mut b[..len])
            .and_then(|_| write_lease_at(&mut self.vfs, caller, fd, at, Lease::Read(&b[..len])))
            .map(|n| n as u32);
        self.bounce = b;
        r
    }
}

fn write_lease_at(vfs: &mut Vfs, pid: TaskId, fd: u32, at: Option<u64>, lease: Lease<'_>) -> Result<usize> {
    match at {
        None => vfs.write_lease(pid, fd, lease),
        Some(offset) => vfs.pwrite_lease(pid, fd, offset, lease),
    }
}

impl Handler for VfsServer {
    fn open(&mut self, cx: &mut Incoming<'_, '_>, path: &str, flags: OpenFlags, mode: u32) -> Result<u32> {
        self.vfs.open(cx.caller(), path, flags, mode)
    }
    fn close(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<()> {
        self.vfs.close(cx.caller(), fd)
    }
    fn read(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<u32> {
        // The app's lease goes on to the filesystem server: the data never lands in vfs memory.
        let caller = cx.caller();
        let len = cx.leases.len(0)?.min(MAX_BULK);
        match cx.leases.forward(0, 0, len) {
            Ok(lease) => return self.vfs.read_lease(caller, fd, lease).map(|n| n as u32),
            Err(Error::NotSupported) => {}
            Err(e) => return Err(e),
        }
        // A transport that cannot forward leases: bounce through vfs memory.
        let (mut b, len) = self.take_bounce(cx)?;
        let r = self.vfs.read(caller, fd, &mut b[..len]).and_then(|n| cx.leases.write(0, 0, &b[..n]).map(|_| n as u32));
        self.bounce = b;
        r
    }
    fn write(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<u32> {
        self.write_from_lease(cx, fd, None)
    }
    fn seek(&mut self, cx: &mut Incoming<'_, '_>, fd: u32, whence: Whence, offset: i64) -> Result<u64> {
        self.vfs.seek(cx.caller(), fd, whence, offset)
    }
    fn stat(&mut self, cx: &mut Incoming<'_, '_>, path: &str) -> Result<Stat> {
        self.vfs.serving(cx.caller());
        self.vfs.stat(path)
    }
    fn fstat(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<Stat> {
        self.vfs.fstat(cx.caller(), fd)
    }
    fn readdir(&mut self, cx: &mut Incoming<'_, '_>, path: &str, cookie: u64) -> Result<Vec<DirEntry>> {
        self.vfs.serving(cx.caller());
        let mut entries = self.vfs.readdir(path, cookie, READDIR_PAGE)?;
        fit_entries(&mut entries)?;
        Ok(entries)
    }
    fn mkdir(&mut self, cx: &mut Incoming<'_, '_>, path: &str, mode: u32) -> Result<()> {
        self.vfs.serving(cx.caller());
        self.vfs.mkdir(path, mode)
    }
    fn unlink(&mut self, cx: &mut Incoming<'_, '_>, path: &str) -> Result<()> {
        self.vfs.serving(cx.caller());
        self.vfs.unlink(path)
    }
    fn rmdir(&mut self, cx: &mut Incoming<'_, '_>, path: &str) -> Result<()> {
        self.vfs.serving(cx.caller());
        self.vfs.rmdir(path)
    }
    fn rename(&mut self, cx: &mut Incoming<'_, '_>, from: &str, to: &str) -> Result<()> {
        self.vfs.serving(cx.caller());
        self.vfs.rename(from, to)
    }
    fn fsync(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<()> {
        self.vfs.fsync(cx.caller(), fd)
    }
    fn truncate(&mut self, cx: &mut Incoming<'_, '_>, fd: u32, size: u64) -> Result<()> {
        self.vfs.truncate(cx.caller(), fd, size)
    }
    fn dup(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<u32> {
        self.vfs.dup(cx.caller(), fd)
    }
    fn exit(&mut self, cx: &mut Incoming<'_, '_>) -> Result<()> {
        self.aio.forget(cx.caller());
        self.vfs.exit(cx.caller()).map(|_| ())
    }
    fn batch_read(&mut self, cx: &mut Incoming<'_, '_>, reads: Vec<ReadReq>) -> Result<Vec<u32>> {
        let total =
            reads.iter().try_fold(0usize, |a, r| a.checked_add(r.len as usize)).ok_or(Error::InvalidArgument)?;
        if total > cx.leases.len(0)? {
            return Err(Error::InvalidArgument);
        }
        if let [r] = reads[..] {
            // One read (the file API's positioned read): lend the app's lease on to the filesystem
            // server as `read` does, so the bytes skip vfs memory and its two copies.
            if let Some(n) = self.single_read(cx, r)? {
                return Ok(vec![n]);
            }
        }
        let (mut b, len) = self.take_bounce(cx)?;
        let r = self.vfs.batch_read(cx.caller(), &reads, &mut b[..len]).and_then(|counts| {
            // Only the bytes each read produced are copied; the rest of its slot is left untouched.
            let mut at = 0;
            for (req, &n) in reads.iter().zip(&counts) {
                cx.leases.write(0, at, &b[at..at + n as usize])?;
                at += req.len as usize;
            }
            Ok(counts)
        });
        self.bounce = b;
        r
    }
    fn begin(&mut self, cx: &mut Incoming<'_, '_>, path: &str) -> Result<u64> {
        self.vfs.begin(cx.caller(), path)
    }
    fn commit(&mut self, cx: &mut Incoming<'_, '_>, tx: u64) -> Result<()> {
        self.vfs.commit(cx.caller(), tx)
    }
    fn abort(&mut self, cx: &mut Incoming<'_, '_>, tx: u64) -> Result<()> {
        self.vfs.abort(cx.caller(), tx)
    }
    fn stats(&mut self, _: &mut Incoming<'_, '_>) -> Result<VfsStats> {
        Ok(self.vfs.stats())
    }
    fn lstat(&mut self, cx: &mut Incoming<'_, '_>, path: &str) -> Result<Stat> {
        self.vfs.serving(cx.caller());
        self.vfs.lstat(path)
    }
    fn symlink(&mut self, cx: &mut Incoming<'_, '_>, target: &str, path: &str) -> Result<()> {
        self.vfs.serving(cx.caller());
        self.vfs.symlink(target, path)
    }
    fn readlink(&mut self, cx: &mut Incoming<'_, '_>, path: &str) -> Result<String> {
        self.vfs.serving(cx.caller());
        self.vfs.readlink(path)
    }
    fn process_exited(&mut self, cx: &mut Incoming<'_, '_>, pid: TaskId) -> Result<u32> {
        if self.supervisor != Some(cx.caller().index) {
            return Err(Error::PermissionDenied);
        }
        self.aio.forget(pid);
        self.vfs.exit(pid).map(|n| n as u32)
    }
    fn link(&mut self, cx: &mut Incoming<'_, '_>, from: &str, to: &str) -> Result<()> {
        self.vfs.serving(cx.caller());
        self.vfs.link(from, to)
    }
    fn statfs(&mut self, cx: &mut Incoming<'_, '_>, path: &str) -> Result<FsStats> {
        self.vfs.serving(cx.caller());
        self.vfs.statfs(path)
    }
    fn aio_submit(&mut self, cx: &mut Incoming<'_, '_>, queue: u32, notify: u64, reqs: Vec<AioReq>) -> Result<u64> {
        self.aio.submit((cx.caller(), queue), notify, &reqs, cx.leases)
    }
    fn aio_reap(&mut self, cx: &mut Incoming<'_, '_>, queue: u32, max: u32) -> Result<Vec<AioDone>> {
        let caller = cx.caller();
        self.aio.reap(&mut self.vfs, (caller, queue), max, cx.leases)
    }
    fn aio_close(&mut self, cx: &mut Incoming<'_, '_>, queue: u32) -> Result<()> {
        self.aio.close((cx.caller(), queue))
    }
    fn aio_stats(&mut self, _: &mut Incoming<'_, '_>) -> Result<AioStats> {
        Ok(self.aio.stats())
    }
    fn snapshot_create(&mut self, _: &mut Incoming<'_, '_>, path: &str, name: &str) -> Result<()> {
        self.vfs.snapshot_create(path, name)
    }
    fn snapshot_list(&mut self, _: &mut Incoming<'_, '_>, path: &str, start: u32) -> Result<Vec<SnapshotInfo>> {
        let mut page: Vec<SnapshotInfo> = self.vfs.snapshot_list(path)?.into_iter().skip(start as usize).collect();
        fit_entries(&mut page)?;
        Ok(page)
    }
    fn snapshot_delete(&mut self, _: &mut Incoming<'_, '_>, path: &str, name: &str) -> Result<()> {
        self.vfs.snapshot_delete(path, name)
    }
    fn scrub(&mut self, _: &mut Incoming<'_, '_>, path: &str) -> Result<ScrubSummary> {
        self.vfs.scrub(path)
    }
    fn openat(&mut self, cx: &mut Incoming<'_, '_>, dir: u32, path: &str, flags: OpenFlags, mode: u32) -> Result<u32> {
        self.vfs.openat(cx.caller(), dir, path, flags, mode)
    }
    fn statat(&mut self, cx: &mut Incoming<'_, '_>, dir: u32, path: &str, follow: bool) -> Result<Stat> {
        self.vfs.statat(cx.caller(), dir, path, follow)
    }
    fn makeat(&mut self, cx: &mut Incoming<'_, '_>, dir: u32, path: &str, node: NewNode) -> Result<Stat> {
        self.vfs.makeat(cx.caller(), dir, path, node)
    }
    fn unlinkat(&mut self, cx: &mut Incoming<'_, '_>, dir: u32, path: &str, rmdir: bool) -> Result<()> {
        self.vfs.unlinkat(cx.caller(), dir, path, rmdir)
    }
    fn renameat(
        &mut self,
        cx: &mut Incoming<'_, '_>,
        from_dir: u32,
        from: &str,
        to_dir: u32,
        to: &str,
        noreplace: bool,
    ) -> Result<()> {
        self.vfs.renameat(cx.caller(), from_dir, from, to_dir, to, noreplace)
    }
    fn linkat(&mut self, cx: &mut Incoming<'_, '_>, from_dir: u32, from: &str, to_dir: u32, to: &str) -> Result<()> {
        self.vfs.linkat(cx.caller(), from_dir, from, to_dir, to)
    }
    fn setattrat(
        &mut self,
        cx: &mut Incoming<'_, '_>,
        dir: u32,
        path: &str,
        attr: SetAttr,
        follow: bool,
    ) -> Result<Stat> {
        self.vfs.setattrat(cx.caller(), dir, path, attr, follow)
    }
    fn readlinkat(&mut self, cx: &mut Incoming<'_, '_>, dir: u32, path: &str) -> Result<String> {
        self.vfs.readlinkat(cx.caller(), dir, path)
    }
    fn readdirat(&mut self, cx: &mut Incoming<'_, '_>, dir: u32, path: &str, cookie: u64) -> Result<Vec<DirEntry>> {
        let mut entries = self.vfs.readdirat(cx.caller(), dir, path, cookie, READDIR_PAGE)?;
        fit_entries(&mut entries)?;
        Ok(entries)
    }
    fn pwrite(&mut self, cx: &mut Incoming<'_, '_>, fd: u32, offset: u64) -> Result<u32> {
        self.write_from_lease(cx, fd, Some(offset))
    }
    fn timing(&mut self, _: &mut Incoming<'_, '_>) -> Result<VfsTiming> {
        let hz = self.clock.hz();
        Ok(self.times.report(hz))
    }

    fn direct_read(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<DirectGrant> {
        self.vfs.direct_read(cx.caller(), fd)
    }
}
