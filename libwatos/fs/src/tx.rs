//! Transactions: everything a process changes on one filesystem between `begin` and `commit` becomes
//! durable together, or not at all.
//!
//! Design: a [`Transaction`] is a guard around the vfs transaction id. `commit` and `abort` consume
//! it; dropping an unfinished one aborts it, so an early `?` return never leaves a transaction open.
//! [`Fs::transaction`] runs a closure and commits only if it succeeded. Begin, commit and abort are
//! `once` requests: after a vfs restart their outcome is unknown and `ServerRestarted` is reported (a
//! restarted vfs has aborted every transaction it held, and the filesystem drops uncommitted work).
//! While one is open, the connection's files read through the vfs, not directly (see `direct`).

use protocol::ipc::Transport;

use crate::error::Result;
use crate::handle::Fs;

/// An open transaction on the filesystem holding the path it was begun on.
pub struct Transaction<T: Transport> {
    fs: Fs<T>,
    id: u64,
    finished: bool,
}

impl<T: Transport> Transaction<T> {
    /// The vfs transaction id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Make every change since `begin` visible to everyone and durable, atomically. Fails with
    /// `ErrorKind::Conflict`, the transaction rolled back, when another process changed the same
    /// things meanwhile (other processes work on outside it and never see it before this).
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        Ok(self.fs.client().commit(self.id)?)
    }

    /// Undo every change since `begin`.
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        Ok(self.fs.client().abort(self.id)?)
    }
}

impl<T: Transport> Drop for Transaction<T> {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort: if the vfs is gone the transaction died with it.
            let _ = self.fs.client().abort(self.id);
        }
        self.fs.track_transaction(false);
    }
}

impl<T: Transport> Fs<T> {
    /// Begin a transaction on the filesystem holding `path` (`Unsupported` where there are none).
    pub fn begin(&self, path: &str) -> Result<Transaction<T>> {
        let id = self.client().begin(path)?;
        self.track_transaction(true);
        Ok(Transaction { fs: self.clone(), id, finished: false })
    }

    /// Run `f` inside a transaction on the filesystem holding `path`: commit if it returns `Ok`,
    /// abort if it returns an error (that error is returned).
    pub fn transaction<R>(&self, path: &str, f: impl FnOnce(&Fs<T>) -> Result<R>) -> Result<R> {
        let tx = self.begin(path)?;
        match f(self) {
            Ok(r) => tx.commit().map(|()| r),
            Err(e) => {
                // The closure's error is the one worth reporting; the abort's would hide it.
                let _ = tx.abort();
                Err(e)
            }
        }
    }
}
