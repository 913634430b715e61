//! [`Fs`]: the handle every call goes through, and the path-level functions of `std::fs`.
//!
//! Design: `Fs` is a reference-counted vfs client stub, so files, directory iterators and queues
//! keep a clone and no global state is needed (the same code serves many apps in one host test).
//! Path-level lookups (stat, readdir, statfs) are `idempotent` in the vfs interface, so the stub
//! itself retries them after a vfs restart; namespace changes are `once` and report the restart.
//! Whole-file helpers (`read`, `write`, `copy`) are built on [`File`] and inherit its restart
//! handling.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;

use protocol::api::vfs::{Client, VfsStats, VfsTiming};
use protocol::fs::{FileType, FsStats};
use protocol::ipc::{TaskId, Transport};

use crate::dir::{Metadata, ReadDir};
use crate::error::{Error, ErrorKind, Result};
use crate::file::{File, OpenOptions};

/// Permission bits new directories get.
const DIR_MODE: u32 = 0o755;

/// A connection to the vfs server; clone it freely.
pub struct Fs<T: Transport> {
    client: Rc<Client<T>>,
    conn: Rc<Conn>,
}

/// What the clones of one connection share.
struct Conn {
    /// Numbers handed to asynchronous queues (each names its own queue at the vfs server).
    queues: Cell<u32>,
    /// Transactions begun and not finished (reads go through the vfs meanwhile).
    transactions: Cell<u32>,
    direct_on: Cell<bool>,
    direct_reads: Cell<u64>,
    /// The vfs epoch of the oldest name change (create, remove, rename) not yet followed by a
    /// successful fsync: after a vfs restart the new vfs cannot vouch for it (see `File::sync_all`).
    names_epoch: Cell<Option<u32>>,
}

impl<T: Transport> Clone for Fs<T> {
    fn clone(&self) -> Self {
        Fs { client: self.client.clone(), conn: self.conn.clone() }
    }
}

impl<T: Transport> Fs<T> {
    /// Use an existing vfs client stub.
    pub fn new(client: Client<T>) -> Self {
        let conn = Conn {
            queues: Cell::new(0),
            transactions: Cell::new(0),
            direct_on: Cell::new(true),
            direct_reads: Cell::new(0),
            names_epoch: Cell::new(None),
        };
        Fs { client: Rc::new(client), conn: Rc::new(conn) }
    }

    /// Talk to the vfs server `vfs` over `transport`.
    pub fn connect(transport: T, vfs: TaskId) -> Self {
        Fs::new(Client::new(transport, vfs))
    }

    /// A name is about to change (counted before the call: a failed one may have been applied).
    pub(crate) fn changing_names(&self) {
        if self.conn.names_epoch.get().is_none() {
            self.conn.names_epoch.set(Some(self.epoch()));
        }
    }

    /// An fsync succeeded: if names changed under an earlier vfs incarnation than the one that
    /// answered, they may be lost (the filesystem server behind the old vfs may have restarted
    /// too), which the caller reports as `ServerRestarted` once. Either way they count as synced.
    pub(crate) fn names_synced(&self) -> bool {
        let stale = self.conn.names_epoch.get().is_some_and(|e| e != self.epoch());
        self.conn.names_epoch.set(None);
        stale
    }

    /// The raw stub, for calls this layer does not wrap.
    pub fn client(&self) -> &Client<T> {
        &self.client
    }

    /// A queue number no other queue of this connection has.
    pub(crate) fn next_queue(&self) -> u32 {
        let n = self.conn.queues.get().wrapping_add(1);
        self.conn.queues.set(n);
        n
    }

    /// Let files read straight from their filesystem servers (the default) or only through the
    /// vfs (see the `direct` module).
    pub fn set_direct_reads(&self, on: bool) {
        self.conn.direct_on.set(on);
    }

    pub(crate) fn direct_reads_on(&self) -> bool {
        self.conn.direct_on.get()
    }

    /// How many reads of this connection went straight to a filesystem server.
    pub fn direct_reads(&self) -> u64 {
        self.conn.direct_reads.get()
    }

    pub(crate) fn count_direct_read(&self) {
        self.conn.direct_reads.set(self.conn.direct_reads.get() + 1);
    }

    pub(crate) fn open_transactions(&self) -> u32 {
        self.conn.transactions.get()
    }

    /// A transaction began (`true`) or finished.
    pub(crate) fn track_transaction(&self, begun: bool) {
        let n = self.conn.transactions.get();
        self.conn.transactions.set(if begun { n + 1 } else { n.saturating_sub(1) });
    }

    /// How many vfs restarts this connection has noticed; descriptors of older epochs are stale.
    pub(crate) fn epoch(&self) -> u32 {
        self.client.channel.restarts()
    }

    /// Open `path` read-only.
    pub fn open(&self, path: &str) -> Result<File<T>> {
        OpenOptions::new().read(true).open(self, path)
    }

    /// Create or truncate `path` and open it write-only.
    pub fn create(&self, path: &str) -> Result<File<T>> {
        OpenOptions::new().write(true).create(true).truncate(true).open(self, path)
    }

    /// Attributes of `path`, following symbolic links.
    pub fn metadata(&self, path: &str) -> Result<Metadata> {
        Ok(Metadata::from(self.client.stat(path)?))
    }

    /// Attributes of `path` itself, even when it is a symbolic link.
    pub fn symlink_metadata(&self, path: &str) -> Result<Metadata> {
        Ok(Metadata::from(self.client.lstat(path)?))
    }

    /// Whether `path` names anything; errors other than "not found" are reported.
    pub fn exists(&self, path: &str) -> Result<bool> {
        match self.client.stat(path) {
            Ok(_) => Ok(true),
            Err(protocol::Error::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The entries of directory `path`, without `.` and `..`.
    pub fn read_dir(&self, path: &str) -> Result<ReadDir<T>> {
        ReadDir::new(self.clone(), path)
    }

    pub fn create_dir(&self, path: &str) -> Result<()> {
        self.changing_names();
        Ok(self.client.mkdir(path, DIR_MODE)?)
    }

    /// Create `path` and every missing parent; existing directories on the way are fine.
    pub fn create_dir_all(&self, path: &str) -> Result<()> {
        if !path.starts_with('/') {
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        let mut prefix = String::with_capacity(path.len());
        for part in path.split('/').filter(|p| !p.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            match self.client.stat(&prefix) {
                Ok(st) if st.kind == FileType::Directory => continue,
                Ok(_) => return Err(protocol::Error::NotADirectory.into()),
                Err(protocol::Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            self.changing_names();
            match self.client.mkdir(&prefix, DIR_MODE) {
                // Someone else made it between our stat and mkdir: that is what we wanted.
                Ok(()) | Err(protocol::Error::AlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub fn remove_file(&self, path: &str) -> Result<()> {
        self.changing_names();
        Ok(self.client.unlink(path)?)
    }

    /// Remove the empty directory `path`.
    pub fn remove_dir(&self, path: &str) -> Result<()> {
        self.changing_names();
        Ok(self.client.rmdir(path)?)
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.changing_names();
        Ok(self.client.rename(from, to)?)
    }

    /// Copy the contents of file `from` to `to` (created or truncated); returns the bytes copied.
    pub fn copy(&self, from: &str, to: &str) -> Result<u64> {
        let mut src = self.open(from)?;
        if src.metadata()?.is_dir() {
            return Err(protocol::Error::IsADirectory.into());
        }
        let mut dst = self.create(to)?;
        let mut buf = alloc::vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            dst.write_all(&buf[..n])?;
            total += n as u64;
        }
    }

    /// The whole contents of file `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(path)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The whole contents of file `path` as UTF-8 text.
    pub fn read_to_string(&self, path: &str) -> Result<String> {
        let mut out = String::new();
        self.open(path)?.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Make `path` hold exactly `data` (created or truncated).
    pub fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        self.create(path)?.write_all(data)
    }

    /// Space accounting of the filesystem holding `path`.
    pub fn statfs(&self, path: &str) -> Result<FsStats> {
        Ok(self.client.statfs(path)?)
    }

    /// The vfs server's counters.
    pub fn vfs_stats(&self) -> Result<VfsStats> {
        Ok(self.client.stats()?)
    }

    /// The vfs server's request latencies by kind of operation and its error replies by kind.
    pub fn vfs_timing(&self) -> Result<VfsTiming> {
        Ok(self.client.timing()?)
    }
}
