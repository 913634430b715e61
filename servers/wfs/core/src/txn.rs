//! Explicit transactions with isolation: while one is open, WFS keeps two in-memory states, the
//! main state (every operation outside the transaction) and the transaction's, both started from
//! the commit `begin_transaction` made.
//!
//! Design:
//! - The `Wfs` fields (`root`, the group counters, `Store::dirty_nodes`, `Store::pinned`,
//!   `touched`) hold the state being changed; the other one is parked in [`OpenTx::other`].
//!   [`Wfs::select`] swaps them (a few words: trees are `Arc`-shared). Commits only ever write the
//!   main state; the transaction's dirty nodes stay in memory until its commit.
//! - One allocator serves both, so they never take the same block. Blocks born at or before the
//!   begin commit (`Store::pin_txid`) may be in both trees: neither state frees them while the
//!   transaction is open; each state lists the ones it released (`Store::pinned`). Blocks
//!   allocated for the transaction are tracked (`Allocator::tx_owned`). A commit of the main state
//!   records both lists (its own pinned releases, the transaction's blocks) as free in the space
//!   map, so a crash leaves no trace of the transaction and no leak.
//! - Each state records the objects it changed ([`Obj`]: a node's data and attributes, or one
//!   name in a directory), and the transaction logs its operations ([`LogOp`], bounded by
//!   [`LOG_OPS`] and [`LOG_BYTES`]; beyond them an operation fails with `TooBig`).
//! - Commit: if the main state did not change since begin, the transaction's state becomes the
//!   live state. Otherwise, if both changed a common object, the commit fails with `Conflict`
//!   (first committer wins); else the log is replayed on the main state as one operation (same
//!   inode numbers: they come from one counter), and a replayed operation that fails or gives
//!   another result fails the commit with `Conflict`, leaving the main state as it was. Either way
//!   a failed commit has rolled the transaction back. Abort drops the transaction's state and
//!   frees its blocks; the main state is untouched.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::fs::{FileSystem, NewNode, NodeId, SetAttr, TxId};
use protocol::{Error, Result};

use crate::btree::Child;
use crate::Wfs;

/// Most operations one transaction may log.
pub const LOG_OPS: usize = 16384;
/// Most bytes of written data one transaction may log (its replay needs them).
pub const LOG_BYTES: usize = 8 << 20;
/// Most objects the main state's write set holds while a transaction is open; past it the main
/// state counts as having changed everything (the transaction can then only fail to commit).
pub const MAIN_OBJS: usize = 16384;

/// Something a state changed while a transaction is open.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Obj {
    /// A node's data, size, attributes or links.
    Node(u64),
    /// The entry `name` in directory `dir` (created, removed or replaced).
    Name(u64, String),
}

/// An operation of the transaction, as its replay repeats it.
#[derive(Debug, Clone)]
pub(crate) enum LogOp {
    Setattr(NodeId, SetAttr),
    Write(NodeId, u64, Vec<u8>),
    /// With the inode number the transaction gave the new node.
    Create(NodeId, String, NewNode, u64),
    Unlink(NodeId, String),
    Rmdir(NodeId, String),
    Rename(NodeId, String, NodeId, String),
    Link(NodeId, NodeId, String),
    /// The last close of an unlinked node deleted it.
    Delete(NodeId),
}

impl LogOp {
    fn bytes(&self) -> usize {
        match self {
            LogOp::Write(_, _, d) => d.len(),
            _ => 0,
        }
    }
}

/// The state not being changed right now.
pub(crate) struct Side {
    root: Child,
    dirty: bool,
    ops_since: u64,
    blocks_since: u64,
    dirty_nodes: u64,
    pinned: Vec<u64>,
    touched: BTreeSet<Obj>,
}

impl Side {
    /// A state with nothing pending on top of the tree at `root`.
    fn clean(root: Child) -> Side {
        Side {
            root,
            dirty: false,
            ops_since: 0,
            blocks_since: 0,
            dirty_nodes: 0,
            pinned: Vec::new(),
            touched: BTreeSet::new(),
        }
    }
}

/// The open explicit transaction.
pub(crate) struct OpenTx {
    id: TxId,
    /// The parked state: the transaction's while `in_tx` is false, the main one otherwise.
    other: Side,
    /// The `Wfs` fields hold the transaction's state.
    in_tx: bool,
    /// The main state changed since begin (an operation of it succeeded).
    main_changed: bool,
    /// The main state's write set outgrew `MAIN_OBJS`: any commit conflicts.
    main_overflow: bool,
    log: Vec<LogOp>,
    log_bytes: usize,
}

/// What an operation about to run must record if it succeeds (see [`Wfs::tx_prepare`]).
pub(crate) struct Pending {
    objs: Vec<Obj>,
    op: Option<LogOp>,
}

impl Pending {
    /// A create's log entry learns the number of the node it made.
    pub(crate) fn with_ino(mut self, ino: u64) -> Self {
        if let Some(LogOp::Create(_, _, _, n)) = &mut self.op {
            *n = ino;
        }
        self.objs.push(Obj::Node(ino));
        self
    }
}

impl OpenTx {
    pub(crate) fn id(&self) -> TxId {
        self.id
    }
}

impl<D: BlockDevice> Wfs<D> {
    /// The `Wfs` fields hold the open transaction's state.
    pub(crate) fn in_tx(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.in_tx)
    }

    fn swap_sides(&mut self) {
        let Some(t) = self.tx.as_mut() else { return };
        let o = &mut t.other;
        core::mem::swap(&mut self.root, &mut o.root);
        core::mem::swap(&mut self.dirty, &mut o.dirty);
        core::mem::swap(&mut self.ops_since, &mut o.ops_since);
        core::mem::swap(&mut self.blocks_since, &mut o.blocks_since);
        core::mem::swap(&mut self.st.dirty_nodes, &mut o.dirty_nodes);
        core::mem::swap(&mut self.st.pinned, &mut o.pinned);
        core::mem::swap(&mut self.touched, &mut o.touched);
        self.st.parked_dirty_nodes = o.dirty_nodes;
        t.in_tx = !t.in_tx;
        self.st.alloc.track_tx = t.in_tx;
    }

    /// Make the next operations act in transaction `tx`'s state (`Some`) or in the main state.
    pub fn select(&mut self, tx: Option<TxId>) -> Result<()> {
        let want = match (tx, &self.tx) {
            (None, _) => false,
            (Some(id), Some(t)) if t.id == id => true,
            (Some(_), _) => return Err(Error::NoSuchTransaction),
        };
        if self.in_tx() != want {
            self.swap_sides();
        }
        Ok(())
    }

    /// Run `f` in the main state, whichever state is selected (commits write the main state).
    pub(crate) fn in_main<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let was = self.in_tx();
        if was {
            self.swap_sides();
        }
        let r = f(self);
        if was {
            self.swap_sides();
        }
        r
    }

    pub(crate) fn tx_begin(&mut self) -> Result<TxId> {
        if self.tx.is_some() {
            return Err(Error::Busy);
        }
        self.writable()?;
        // Both states start from a committed tree, which is also what an abort returns to.
        self.commit()?;
        let id = self.st.txid;
        self.st.pin_txid = self.committed.txid;
        self.tx = Some(OpenTx {
            id,
            other: Side::clean(Child::Disk(self.committed.root)),
            in_tx: false,
            main_changed: false,
            main_overflow: false,
            log: Vec::new(),
            log_bytes: 0,
        });
        // The caller of `begin` works in its transaction until it selects otherwise.
        self.swap_sides();
        Ok(id)
    }

    /// End the open transaction `id` with the main state in the fields; returns its state.
    fn tx_take(&mut self, id: TxId) -> Result<(OpenTx, Side)> {
        if self.tx.as_ref().is_none_or(|t| t.id != id) {
            return Err(Error::NoSuchTransaction);
        }
        if self.in_tx() {
            self.swap_sides();
        }
        let mut t = self.tx.take().ok_or(Error::NoSuchTransaction)?;
        let side = core::mem::replace(&mut t.other, Side::clean(Child::empty()));
        self.st.pin_txid = 0;
        self.st.parked_dirty_nodes = 0;
        self.st.alloc.track_tx = false;
        Ok((t, side))
    }

    /// The transaction's state is gone: free the blocks it allocated, and release the shared
    /// blocks the main state let go of (its commits record them as free already).
    fn tx_discard(&mut self) {
        let deferred: BTreeSet<u64> = self.st.alloc.deferred().iter().copied().collect();
        let owned = core::mem::take(&mut self.st.alloc.tx_owned);
        for b in owned.into_iter().filter(|b| !deferred.contains(b)) {
            self.st.alloc.free_now(b);
        }
        for b in core::mem::take(&mut self.st.pinned) {
            self.st.alloc.free_deferred(b);
        }
        self.daemon_note_change();
    }

    pub(crate) fn tx_abort(&mut self, id: TxId) -> Result<()> {
        self.tx_take(id)?;
        self.touched.clear();
        self.tx_discard();
        Ok(())
    }

    pub(crate) fn tx_commit(&mut self, id: TxId) -> Result<()> {
        let (t, side) = self.tx_take(id)?;
        if !t.main_changed {
            // Nothing else changed: the transaction's state becomes the live state.
            for b in core::mem::take(&mut self.st.pinned).into_iter().chain(side.pinned) {
                self.st.alloc.free_deferred(b);
            }
            // Its blocks are recorded as used from this commit on.
            for b in core::mem::take(&mut self.st.alloc.tx_owned) {
                self.st.alloc.note(b);
            }
            self.touched.clear();
            self.root = side.root;
            self.dirty = true;
            self.ops_since = self.ops_since.saturating_add(side.ops_since);
            self.blocks_since = self.blocks_since.saturating_add(side.blocks_since);
            self.st.dirty_nodes = self.st.dirty_nodes.saturating_add(side.dirty_nodes);
            return self.commit();
        }
        let conflict = t.main_overflow || side.touched.iter().any(|o| self.touched.contains(o));
        self.touched.clear();
        self.tx_discard();
        if conflict {
            return Err(Error::Conflict);
        }
        let saved = self.begin_op();
        let r = self.replay(&t.log);
        self.end_op(saved, r)?;
        self.commit()
    }

    /// Repeat the transaction's operations on the main state (inside one operation).
    fn replay(&mut self, log: &[LogOp]) -> Result<()> {
        // A replayed operation that fails for its own reasons conflicts; the device's errors and
        // a full device stay what they are.
        let conflict = |e| match e {
            Error::Io { .. } | Error::Checksum { .. } | Error::Corrupt { .. } | Error::NoSpace | Error::ReadOnly => e,
            _ => Error::Conflict,
        };
        for op in log {
            match op.clone() {
                LogOp::Setattr(n, a) => self.setattr(n, a).map(drop),
                LogOp::Write(n, off, d) => match self.write(n, off, &d) {
                    Ok(k) if k == d.len() => Ok(()),
                    _ => Err(Error::Conflict),
                },
                LogOp::Create(dir, name, node, ino) => {
                    self.forced_ino = Some(ino);
                    let r = self.create(dir, &name, &node);
                    self.forced_ino = None;
                    match r {
                        Ok(st) if st.ino == ino => Ok(()),
                        _ => Err(Error::Conflict),
                    }
                }
                LogOp::Unlink(dir, name) => self.unlink(dir, &name),
                LogOp::Rmdir(dir, name) => self.rmdir(dir, &name),
                LogOp::Rename(fd, from, td, to) => self.rename(fd, &from, td, &to),
                LogOp::Link(n, dir, name) => self.link(n, dir, &name).map(drop),
                LogOp::Delete(n) => self.delete_orphan(n),
            }
            .map_err(conflict)?;
        }
        Ok(())
    }

    /// Delete `ino` if it has no links and is not open (the replay of a last close).
    pub(crate) fn delete_orphan(&mut self, ino: u64) -> Result<()> {
        match self.get_inode(ino) {
            Ok(i) if i.nlink == 0 && !self.open.contains_key(&ino) => {
                let saved = self.begin_op();
                let r = self.delete_inode(ino);
                self.end_op(saved, r)
            }
            Ok(_) | Err(Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Before a change while a transaction is open: note what it touches (`objs` of the state it
    /// runs in) and, in the transaction, the operation to log; `TooBig` once the log is full.
    /// `None` (nothing to do) without a transaction.
    pub(crate) fn tx_prepare(
        &mut self,
        objs: impl FnOnce(&mut Self) -> Vec<Obj>,
        op: impl FnOnce() -> LogOp,
    ) -> Result<Option<Pending>> {
        let Some(t) = &self.tx else { return Ok(None) };
        let op = if t.in_tx {
            let op = op();
            if t.log.len() >= LOG_OPS || t.log_bytes.saturating_add(op.bytes()) > LOG_BYTES {
                return Err(Error::TooBig);
            }
            Some(op)
        } else {
            None
        };
        Ok(Some(Pending { objs: objs(self), op }))
    }

    /// The change prepared with `p` is over: record it if it succeeded.
    pub(crate) fn tx_record<T>(&mut self, p: Option<Pending>, r: &Result<T>) {
        let (Some(p), Ok(_), Some(t)) = (p, r, self.tx.as_mut()) else { return };
        match p.op {
            Some(op) => {
                t.log_bytes += op.bytes();
                t.log.push(op);
                self.touched.extend(p.objs);
            }
            None => {
                t.main_changed = true;
                if self.touched.len() >= MAIN_OBJS {
                    t.main_overflow = true;
                } else {
                    self.touched.extend(p.objs);
                }
            }
        }
    }

    /// Both daemons' view: the main state has something pending again (blocks to release).
    fn daemon_note_change(&mut self) {
        if !self.daemon.pending() {
            let now = self.now();
            self.daemon.changed(now);
        }
    }
}
