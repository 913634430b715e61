//! Transactions: everything a process changes on one filesystem between `begin` and `commit` becomes
//! durable together, or not at all.
//!
//! Design: a [`Transaction`] is a guard around the vfs transaction id. `commit` and `abort` consume
//! it; dropping an unfinished one aborts it, so an early `?` return never leaves a transaction open.
//! [`Fs::transaction`] runs a closure and commits only if it succeeded. Begin, commit and abort are
//! `once` requests: after a vfs restart their outcome is unknown and `ServerRestarted` is reported (a
//! restarted vfs has aborted every transaction it held, and the filesystem drops uncommitted work).
//! While one is open, the connection's files read through the vfs, not directly (see `direct`).
//! An open transaction fences the connection (`Channel::fence`): after a vfs restart every call on
//! it (and its clones) fails with `NoSuchTransaction` until the transaction is committed, aborted
//! or dropped, which then reports `ServerRestarted` without sending anything. Otherwise the calls
//! after the restart would reach the new vfs, which knows no transaction, and land outside it
//! while those before the restart were dropped. Another connection of the same process is not
//! fenced.

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
        self.lift()?;
        Ok(self.fs.client().commit(self.id)?)
    }

    /// Undo every change since `begin`.
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        self.lift()?;
        Ok(self.fs.client().abort(self.id)?)
    }

    /// Lifts the transaction's fence: `ServerRestarted` if the vfs restarted while it stood (the
    /// transaction ended with it).
    fn lift(&self) -> Result<()> {
        match self.fs.client().channel.unfence() {
            true => Err(protocol::Error::ServerRestarted.into()),
            false => Ok(()),
        }
    }
}

impl<T: Transport> Drop for Transaction<T> {
    fn drop(&mut self) {
        // Best effort: if the vfs is gone the transaction died with it.
        if !self.finished && self.lift().is_ok() {
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
        self.client().channel.fence();
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
