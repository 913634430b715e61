//! The VFS operations applications see: descriptors, open flags, file I/O and namespace changes.
//!
//! Design: POSIX semantics where the interface allows. `open` needs read and/or write access
//! (`APPEND` implies write, as in Rust's std); `TRUNCATE` needs write access; directories open only
//! read-only; `CREATE|EXCLUSIVE` fails on any existing name. Every open-file description holds one
//! `FileSystem::open` on its node, released when its last descriptor closes, so an unlinked open file
//! stays readable. Every mutation updates or invalidates exactly the cached metadata it changes:
//! the entries it adds or removes, the attributes of the nodes it touches and of their directories
//! (size, link count and times change there). The operations on names (stat by path, readdir,
//! mkdir, link, unlink, rename, ...) are in `namespace`.

use alloc::vec::Vec;

use protocol::api::vfs::{OpenFlags, ReadReq, Whence, MAX_BATCH};
use protocol::fs::{FileType, NewNode, NodeId, SetAttr, Stat};
use protocol::ipc::Lease;
use protocol::{Error, Result};

use crate::fdtable::{FdTable, FileId};
use crate::vfs::{Loc, OpenFile, Pid, Tx, Vfs};

/// Times an open is sent again to a filesystem server that restarted under it.
const OPEN_RETRIES: u32 = 3;

impl Vfs {
    fn file_id(&self, pid: Pid, fd: u32) -> Result<FileId> {
        self.procs.get(&pid).ok_or(Error::BadFileDescriptor)?.get(fd)
    }

    pub(crate) fn file(&self, pid: Pid, fd: u32) -> Result<&OpenFile> {
        let id = self.file_id(pid, fd)?;
        self.files.get(&id).ok_or(Error::BadFileDescriptor)
    }

    fn file_mut(&mut self, pid: Pid, fd: u32) -> Result<&mut OpenFile> {
        let id = self.file_id(pid, fd)?;
        self.files.get_mut(&id).ok_or(Error::BadFileDescriptor)
    }

    /// Bind a new open-file description for `loc` to the lowest free descriptor of `pid`.
    fn install(&mut self, pid: Pid, loc: Loc, kind: FileType, flags: OpenFlags) -> Result<u32> {
        let table = self.procs.entry(pid).or_default();
        if table.len() as u32 >= crate::fdtable::MAX_FDS - crate::fdtable::FIRST_FD {
            return Err(Error::TooManyOpenFiles);
        }
        self.open_node(loc)?;
        let id = self.next_file;
        self.next_file += 1;
        self.files
            .insert(id, OpenFile { loc, kind, flags, offset: 0, refs: 1, unsynced: false, lost: false, direct: None });
        let table = self.procs.entry(pid).or_default();
        match table.insert(id) {
            Ok(fd) => Ok(fd),
            Err(e) => {
                self.files.remove(&id);
                let _ = self.with_fs(loc.mount, |fs| fs.release(loc.node));
                Err(e)
            }
        }
    }

    /// Tell the filesystem a description of `loc` is open. Path resolution may come wholly from the
    /// cache, so this can be the first call a restarted filesystem server gets, and the stub reports
    /// the restart rather than resend a `once` operation. Opening is safe to redo here: a server that
    /// restarted holds no opens, and the new one must get this one; so a reader never learns of a
    /// restart it did not live through ("reads and lookups retry"). A node lost with the old server
    /// gets the new server's error.
    fn open_node(&mut self, loc: Loc) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.with_fs(loc.mount, |fs| fs.open(loc.node)) {
                Err(Error::ServerRestarted) if tries < OPEN_RETRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// Open `path` for process `pid` with POSIX `flags`; `mode` is used when the file is created.
    pub fn open(&mut self, pid: Pid, path: &str, flags: OpenFlags, mode: u32) -> Result<u32> {
        self.open_from(pid, None, path, flags, mode)
    }

    /// [`Vfs::open`] with a relative `path` resolved from `start` (see `Vfs::resolve_at`).
    pub(crate) fn open_from(
        &mut self,
        pid: Pid,
        start: Option<Loc>,
        path: &str,
        flags: OpenFlags,
        mode: u32,
    ) -> Result<u32> {
        self.caller = Some(pid);
        if !flags.is_valid() || !(flags.can_read() || flags.can_write()) {
            return Err(Error::InvalidArgument);
        }
        if flags.contains(OpenFlags::TRUNCATE) && !flags.can_write() {
            return Err(Error::InvalidArgument);
        }
        let create = flags.contains(OpenFlags::CREATE);
        let exclusive = create && flags.contains(OpenFlags::EXCLUSIVE);
        let follow = !flags.contains(OpenFlags::NOFOLLOW) && !exclusive;
        let found = match self.resolve_at(start, path, follow) {
            Ok(r) => Some(r),
            Err(Error::NotFound) if create => None,
            Err(e) => return Err(e),
        };
        let (loc, stat) = match found {
            Some(_) if exclusive => return Err(Error::AlreadyExists),
            Some(r) => (r.loc, r.stat),
            None => {
                let (dir, name) = self.resolve_parent_at(start, path)?;
                let node = NewNode::new(FileType::File, mode & 0o7777);
                self.names_changing(dir.mount);
                let st = self.with_fs(dir.mount, |fs| fs.create(dir.node, name, &node))?;
                self.cache.put_dentry(dir.mount, dir.node, name, Some(st.ino));
                self.cache.put_attr(dir.mount, st);
                self.cache.forget_attr(dir.mount, dir.node);
                (Loc { mount: dir.mount, node: st.ino }, st)
            }
        };
        match stat.kind {
            FileType::Symlink => return Err(Error::TooManyLevels),
            FileType::Directory if flags.can_write() => return Err(Error::IsADirectory),
            FileType::Directory => {}
            _ if flags.contains(OpenFlags::DIRECTORY) => return Err(Error::NotADirectory),
            _ => {}
        }
        if flags.contains(OpenFlags::TRUNCATE) && stat.kind == FileType::File && stat.size != 0 {
            self.setattr(loc, SetAttr { size: Some(0), ..SetAttr::default() })?;
        }
        let fd = self.install(pid, loc, stat.kind, flags)?;
        self.stats.opens += 1;
        Ok(fd)
    }

    pub(crate) fn setattr(&mut self, loc: Loc, attr: SetAttr) -> Result<Stat> {
        self.cache.forget_attr(loc.mount, loc.node);
        self.names_changing(loc.mount);
        let st = self.with_fs(loc.mount, |fs| fs.setattr(loc.node, attr))?;
        self.cache.put_attr(loc.mount, st);
        Ok(st)
    }

    /// Drop one reference to an open-file description; the last one releases the node.
    fn unref(&mut self, id: FileId) -> Result<()> {
        let file = self.files.get_mut(&id).ok_or(Error::BadFileDescriptor)?;
        file.refs -= 1;
        if file.refs > 0 {
            return Ok(());
        }
        let loc = file.loc;
        if let Some(f) = self.files.remove(&id) {
            self.revoke_direct(&f);
        }
        self.stats.closes += 1;
        match self.with_fs(loc.mount, |fs| fs.release(loc.node)) {
            // The open died with the server that restarted; the new one never had it.
            Err(Error::ServerRestarted) => Ok(()),
            r => r,
        }
    }

    /// Close descriptor `fd` of `pid`. The descriptor is gone even if the filesystem's release fails.
    pub fn close(&mut self, pid: Pid, fd: u32) -> Result<()> {
        self.caller = Some(pid);
        let id = self.procs.get_mut(&pid).ok_or(Error::BadFileDescriptor)?.remove(fd)?;
        self.unref(id)
    }

    /// A second descriptor for the same open file (shared offset and flags).
    pub fn dup(&mut self, pid: Pid, fd: u32) -> Result<u32> {
        let id = self.file_id(pid, fd)?;
        let table = self.procs.get_mut(&pid).ok_or(Error::BadFileDescriptor)?;
        let new = table.insert(id)?;
        if let Some(f) = self.files.get_mut(&id) {
            f.refs += 1;
        }
        self.stats.dups += 1;
        Ok(new)
    }

    /// Process `pid` exited: close all its descriptors, abort its transactions. Returns how many
    /// descriptors were closed.
    pub fn exit(&mut self, pid: Pid) -> Result<usize> {
        self.caller = Some(pid);
        let ids = self.procs.remove(&pid).map(|mut t| t.drain()).unwrap_or_default();
        self.names.retain(|(p, _), _| *p != pid);
        let mut first_err = None;
        for &id in &ids {
            if let Err(e) = self.unref(id) {
                first_err.get_or_insert(e);
            }
        }
        let txs: Vec<u64> = self.txs.iter().filter(|(_, t)| t.owner == pid).map(|(&id, _)| id).collect();
        for tx in txs {
            if let Err(e) = self.abort(pid, tx) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(ids.len()),
        }
    }

    /// Read at offset `offset` without moving the file offset.
    pub fn pread(&mut self, pid: Pid, fd: u32, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.pread_lease(pid, fd, offset, Lease::Write(buf))
    }

    /// [`Vfs::pread`] into a lease: the filesystem gets the lease itself, so the bytes never pass
    /// through the vfs's memory.
    pub fn pread_lease(&mut self, pid: Pid, fd: u32, offset: u64, lease: Lease<'_>) -> Result<usize> {
        self.caller = Some(pid);
        let f = self.file(pid, fd)?;
        if !f.flags.can_read() {
            return Err(Error::BadFileDescriptor);
        }
        if f.kind == FileType::Directory {
            return Err(Error::IsADirectory);
        }
        let loc = f.loc;
        let n = self.with_fs(loc.mount, |fs| fs.read_lease(loc.node, offset, lease))?;
        self.stats.reads += 1;
        self.stats.bytes_read += n as u64;
        Ok(n)
    }

    /// A batch of one read into a lease: [`Vfs::pread_lease`] counted as a batch read, so the counters
    /// read the same whichever way the vfs-server answers it.
    pub fn pread_batched(&mut self, pid: Pid, fd: u32, offset: u64, lease: Lease<'_>) -> Result<usize> {
        let n = self.pread_lease(pid, fd, offset, lease)?;
        self.stats.batch_reads += 1;
        Ok(n)
    }

    /// Read at the file offset and advance it.
    pub fn read(&mut self, pid: Pid, fd: u32, buf: &mut [u8]) -> Result<usize> {
        self.read_lease(pid, fd, Lease::Write(buf))
    }

    /// [`Vfs::read`] into a lease (see [`Vfs::pread_lease`]).
    pub fn read_lease(&mut self, pid: Pid, fd: u32, lease: Lease<'_>) -> Result<usize> {
        let offset = self.file(pid, fd)?.offset;
        let n = self.pread_lease(pid, fd, offset, lease)?;
        self.file_mut(pid, fd)?.offset = offset + n as u64;
        Ok(n)
    }

    /// Write at the file offset (at the end with APPEND) and advance it.
    pub fn write(&mut self, pid: Pid, fd: u32, data: &[u8]) -> Result<usize> {
        self.write_lease(pid, fd, Lease::Read(data))
    }

    /// [`Vfs::write`] from a lease: the filesystem reads the caller's buffer itself.
    pub fn write_lease(&mut self, pid: Pid, fd: u32, lease: Lease<'_>) -> Result<usize> {
        let offset = self.file(pid, fd)?.offset;
        let (n, end) = self.write_at(pid, fd, offset, lease)?;
        self.file_mut(pid, fd)?.offset = end;
        Ok(n)
    }

    /// Write at `offset` (at the end with APPEND, as Linux's pwrite does) without moving the file
    /// offset.
    pub fn pwrite_lease(&mut self, pid: Pid, fd: u32, offset: u64, lease: Lease<'_>) -> Result<usize> {
        self.write_at(pid, fd, offset, lease).map(|(n, _)| n)
    }

    /// The write both take: returns the count and where the write ended.
    fn write_at(&mut self, pid: Pid, fd: u32, mut offset: u64, lease: Lease<'_>) -> Result<(usize, u64)> {
        self.caller = Some(pid);
        let f = self.file(pid, fd)?;
        if !f.flags.can_write() {
            return Err(Error::BadFileDescriptor);
        }
        let loc = f.loc;
        if f.flags.contains(OpenFlags::APPEND) {
            offset = self.getattr(loc)?.size;
        }
        self.cache.forget_attr(loc.mount, loc.node);
        let n = self.with_fs(loc.mount, |fs| fs.write_lease(loc.node, offset, lease))?;
        self.file_mut(pid, fd)?.unsynced = true;
        self.stats.writes += 1;
        self.stats.bytes_written += n as u64;
        Ok((n, offset + n as u64))
    }

    /// Move the file offset; returns the new one. A negative result is `InvalidArgument`.
    pub fn seek(&mut self, pid: Pid, fd: u32, whence: Whence, offset: i64) -> Result<u64> {
        self.caller = Some(pid);
        let f = self.file(pid, fd)?;
        let (loc, current) = (f.loc, f.offset);
        let base = match whence {
            Whence::Start => 0,
            Whence::Current => current,
            Whence::End => self.getattr(loc)?.size,
        };
        let new = i128::from(base) + i128::from(offset);
        let new = u64::try_from(new).map_err(|_| Error::InvalidArgument)?;
        self.file_mut(pid, fd)?.offset = new;
        self.stats.seeks += 1;
        Ok(new)
    }

    pub fn fstat(&mut self, pid: Pid, fd: u32) -> Result<Stat> {
        self.caller = Some(pid);
        let loc = self.file(pid, fd)?.loc;
        let st = self.getattr(loc);
        tally(st, &mut self.stats.stats)
    }

    /// Make what was written through `fd` durable. If the filesystem server restarted since this
    /// description's last write, the writes may have died with the old server while the new one has
    /// nothing to sync: that fsync reports `ServerRestarted` (once; a later fsync covers only later
    /// writes), never Ok.
    pub fn fsync(&mut self, pid: Pid, fd: u32) -> Result<()> {
        self.caller = Some(pid);
        let loc = self.file(pid, fd)?.loc;
        let r = if self.file(pid, fd)?.lost {
            Err(Error::ServerRestarted)
        } else {
            self.with_fs(loc.mount, |fs| fs.fsync(loc.node))
        };
        let f = self.file_mut(pid, fd)?;
        match r {
            Ok(()) => f.unsynced = false,
            // Reported now, whether noticed before this call or during it.
            Err(Error::ServerRestarted) => (f.unsynced, f.lost) = (false, false),
            Err(_) => {}
        }
        // The process's name changes on the mount: made durable by a successful fsync (a filesystem
        // server's fsync covers the whole mount), or lost with a server that restarted since (noticed
        // before this call or during it), which this answer reports once instead of an Ok.
        let names_lost = self.names.get(&(pid, loc.mount)) == Some(&true);
        let r = match r {
            Ok(()) if names_lost => Err(Error::ServerRestarted),
            r => r,
        };
        if matches!(r, Ok(()) | Err(Error::ServerRestarted)) {
            self.names.remove(&(pid, loc.mount));
        }
        tally(r, &mut self.stats.fsyncs)
    }

    /// Set the size of the open file (needs write access).
    pub fn truncate(&mut self, pid: Pid, fd: u32, size: u64) -> Result<()> {
        self.caller = Some(pid);
        let f = self.file(pid, fd)?;
        if !f.flags.can_write() {
            return Err(Error::BadFileDescriptor);
        }
        let loc = f.loc;
        let r = self.setattr(loc, SetAttr { size: Some(size), ..SetAttr::default() }).map(|_| ());
        if r.is_ok() {
            self.file_mut(pid, fd)?.unsynced = true;
        }
        tally(r, &mut self.stats.truncates)
    }

    /// Several positioned reads at once; read `i` lands in `out` right after read `i-1`'s requested
    /// length. Returns each read's byte count. Offsets do not move. Every descriptor is checked before
    /// anything is read; then each mount gets one `read_batch` (one request to its server).
    pub fn batch_read(&mut self, pid: Pid, reads: &[ReadReq], out: &mut [u8]) -> Result<Vec<u32>> {
        self.caller = Some(pid);
        if reads.len() > MAX_BATCH {
            return Err(Error::TooBig);
        }
        let mut slots = Vec::with_capacity(reads.len());
        let mut at = 0usize;
        for r in reads {
            let f = self.file(pid, r.fd)?;
            if !f.flags.can_read() {
                return Err(Error::BadFileDescriptor);
            }
            if f.kind == FileType::Directory {
                return Err(Error::IsADirectory);
            }
            let end = at.checked_add(r.len as usize).ok_or(Error::InvalidArgument)?;
            slots.push((f.loc, at, end));
            at = end;
        }
        if at > out.len() {
            return Err(Error::InvalidArgument);
        }
        let mut counts = alloc::vec![0u32; reads.len()];
        let mut mounts: Vec<usize> = slots.iter().map(|s| s.0.mount).collect();
        mounts.sort_unstable();
        mounts.dedup();
        for m in mounts {
            let idx: Vec<usize> = (0..reads.len()).filter(|&i| slots[i].0.mount == m).collect();
            let req: Vec<(NodeId, u64, u32)> =
                idx.iter().map(|&i| (slots[i].0.node, reads[i].offset, reads[i].len)).collect();
            let got = if idx.len() == reads.len() {
                // One mount: the filesystem's layout is the caller's, read straight into `out`.
                self.with_fs(m, |fs| fs.read_batch(&req, &mut out[..at]))?
            } else {
                let len: usize = req.iter().map(|r| r.2 as usize).sum();
                let mut tmp = alloc::vec![0u8; len];
                let got = self.with_fs(m, |fs| fs.read_batch(&req, &mut tmp))?;
                let mut pos = 0usize;
                for (&i, &n) in idx.iter().zip(&got) {
                    let (start, end) = (slots[i].1, slots[i].2);
                    let n = (n as usize).min(end - start);
                    out[start..start + n].copy_from_slice(&tmp[pos..pos + n]);
                    pos += end - start;
                }
                got
            };
            // A reply that does not match the request comes from a misbehaving server.
            if got.len() != idx.len() || got.iter().zip(&req).any(|(&n, r)| n > r.2) {
                return Err(Error::Malformed);
            }
            for (&i, n) in idx.iter().zip(got) {
                counts[i] = n;
            }
        }
        self.stats.batch_reads += 1;
        self.stats.reads += reads.len() as u64;
        self.stats.bytes_read += counts.iter().map(|&n| u64::from(n)).sum::<u64>();
        Ok(counts)
    }

    /// Begin a transaction on the filesystem that holds `path`. A process has at most one per
    /// mount (`Busy`); the filesystem may allow only one at a time (WFS: `Busy`).
    pub fn begin(&mut self, pid: Pid, path: &str) -> Result<u64> {
        self.caller = Some(pid);
        let mount = self.resolve(path, true)?.loc.mount;
        if !self.mount_ref(mount)?.caps.transactions {
            return Err(Error::NotSupported);
        }
        if self.txs.values().any(|t| t.mount == mount && t.owner == pid) {
            return Err(Error::Busy);
        }
        let fs_tx = self.with_fs(mount, |fs| fs.begin_transaction())?;
        let id = self.next_tx;
        self.next_tx += 1;
        self.txs.insert(id, Tx { owner: pid, mount, fs_tx, lost: false });
        if let Some(m) = self.mounts.get_mut(mount).and_then(Option::as_mut) {
            // `begin_transaction` selected the new transaction.
            m.selected = Some(Some(fs_tx));
        }
        self.tx_changed(mount);
        self.stats.tx_begins += 1;
        Ok(id)
    }

    /// Take `pid`'s transaction `tx` out of the table. One that died with its filesystem server is
    /// gone from the table as well, but answers `NoSuchTransaction`.
    fn take_tx(&mut self, pid: Pid, tx: u64) -> Result<Tx> {
        let t = match self.txs.get(&tx) {
            Some(t) if t.owner == pid => self.txs.remove(&tx).ok_or(Error::NoSuchTransaction)?,
            _ => return Err(Error::NoSuchTransaction),
        };
        if t.lost {
            self.tx_changed(t.mount);
            return Err(Error::NoSuchTransaction);
        }
        Ok(t)
    }

    /// Commit: the transaction's changes join the live state (or, on `Conflict`, vanish).
    pub fn commit(&mut self, pid: Pid, tx: u64) -> Result<()> {
        self.caller = Some(pid);
        let t = self.take_tx(pid, tx)?;
        let r = self.with_fs(t.mount, |fs| fs.commit_transaction(t.fs_tx));
        self.tx_ended(t.mount);
        tally(r, &mut self.stats.tx_commits)
    }

    /// Abort: the filesystem puts back what the transaction changed.
    pub fn abort(&mut self, pid: Pid, tx: u64) -> Result<()> {
        self.caller = Some(pid);
        let t = self.take_tx(pid, tx)?;
        let r = self.with_fs(t.mount, |fs| fs.abort_transaction(t.fs_tx));
        self.tx_ended(t.mount);
        tally(r, &mut self.stats.tx_aborts)
    }

    /// After a commit or abort the filesystem selects no transaction; after a failed one (a
    /// server that died meanwhile) the selection is not known, so the next call sends it again.
    fn tx_ended(&mut self, mount: usize) {
        if let Some(m) = self.mounts.get_mut(mount).and_then(Option::as_mut) {
            m.selected = None;
        }
        self.tx_changed(mount);
    }

    /// Number of descriptors process `pid` has open.
    pub fn open_count(&self, pid: Pid) -> usize {
        self.procs.get(&pid).map_or(0, FdTable::len)
    }
}

/// Count `r` in `counter` if it succeeded: the operation counters count operations done.
pub(crate) fn tally<R>(r: Result<R>, counter: &mut u64) -> Result<R> {
    if r.is_ok() {
        *counter += 1;
    }
    r
}
