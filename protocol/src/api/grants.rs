//! Direct-read grants: a client reads an open file from the filesystem server itself, one IPC hop
//! instead of two (app → vfs → filesystem server).
//!
//! Design: capability, not trust. The vfs owns names, descriptors and open modes, so only it grants:
//! when a process wants direct reads of a file it opened for reading, it asks the vfs
//! (`vfs::direct_read`), which asks the filesystem server to grant that process that node
//! (`filesystem::grant`) and hands back the server's id and the grant's handle. The server then
//! serves `filesystem::direct_read(handle, offset)` to that process only: the caller the kernel
//! stamps on the call must be the grant's client, generation included, so a grant never passes to
//! another task nor to a restarted one. The vfs revokes the grant when the open-file description's
//! last descriptor closes (a process's exit closes them all).
//!
//! The same rule keeps the server's other operations the vfs's: with a granter set, any other
//! caller (an app, which may call the server for its direct reads) gets only the operations in
//! `filesystem::OPEN_OPS` (direct reads, each checked against its grant, and statistics);
//! everything else is `PermissionDenied` (`FsService` applies it to every call).
//!
//! Grants live in the server's memory, in [`Grants`] (held by `FsServer`, so every filesystem
//! served over IPC has them): a restarted server knows none, and its clients, calling the old
//! instance's id, get `ServerRestarted` and read through the vfs again. A grant from a newer vfs
//! incarnation than the grants held means the vfs restarted and forgot them, so they are all
//! dropped: nobody is left to revoke them. The table is bounded ([`MAX_GRANTS`]: `TooManyOpenFiles`
//! beyond, and the client keeps reading through the vfs). Handles count up and are never reused by
//! one server instance.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fs::NodeId;
use crate::ipc::TaskId;
use crate::{Error, Result};

/// Most grants one filesystem server holds at once.
pub const MAX_GRANTS: usize = 1024;

/// What the vfs hands a client for direct reads: the filesystem server to call and the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectGrant {
    pub server: TaskId,
    pub handle: u64,
}

/// A filesystem server's direct-read counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectStats {
    pub grants: u64,
    pub revokes: u64,
    /// Direct reads served.
    pub reads: u64,
    pub bytes: u64,
    /// Direct reads and grant requests refused (wrong caller, unknown handle, table full).
    pub refused: u64,
    /// Grants held now (a gauge).
    pub live: u64,
}

/// Decides whether a caller may grant and revoke (the vfs; under WATOS, the task of that name).
pub type GranterCheck = Box<dyn Fn(TaskId) -> bool>;

struct Grant {
    client: TaskId,
    node: NodeId,
}

/// The grants of one filesystem server instance.
pub struct Grants {
    table: BTreeMap<u64, Grant>,
    next: u64,
    /// Who may grant; nobody without one.
    is_granter: Option<GranterCheck>,
    /// The vfs incarnation that made the grants held.
    granter: Option<TaskId>,
    /// A new vfs incarnation replaced the one before since [`Grants::take_granter_restart`].
    granter_restarted: bool,
    stats: DirectStats,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            table: BTreeMap::new(),
            next: 1,
            is_granter: None,
            granter: None,
            granter_restarted: false,
            stats: DirectStats::default(),
        }
    }
}

impl Grants {
    /// Let the callers `check` accepts grant and revoke.
    pub fn set_granter(&mut self, check: GranterCheck) {
        self.is_granter = Some(check);
    }

    /// Whether `caller` is the granter. The check runs once per granter incarnation: the kernel
    /// never gives another task the same id (generation included).
    pub fn is_granter(&mut self, caller: TaskId) -> bool {
        if self.granter == Some(caller) {
            return true;
        }
        if !self.is_granter.as_ref().is_some_and(|f| f(caller)) {
            return false;
        }
        match self.granter {
            // An older incarnation finishing a call it began (the host transport lets one run to
            // the end of a call it was restarted in): still the granter, and it changes nothing.
            Some(g) if g.index == caller.index && g.generation > caller.generation => {}
            Some(_) => {
                // A new vfs incarnation: the grants of the old one have no owner any more.
                self.table.clear();
                self.granter = Some(caller);
                self.granter_restarted = true;
            }
            None => self.granter = Some(caller),
        }
        true
    }

    /// True once after a new vfs incarnation first called: what the old one left open (its
    /// transaction) has no owner any more.
    pub fn take_granter_restart(&mut self) -> bool {
        core::mem::take(&mut self.granter_restarted)
    }

    /// Whether `caller` may make operation `op`: anyone while no granter is set (a filesystem
    /// served to its only client), else the granter, and anyone for the operations in `open`.
    pub fn may_call(&mut self, caller: TaskId, op: u16, open: &[u16]) -> bool {
        self.is_granter.is_none() || open.contains(&op) || self.is_granter(caller)
    }

    fn check_granter(&mut self, caller: TaskId) -> Result<()> {
        if !self.is_granter(caller) {
            self.stats.refused += 1;
            return Err(Error::PermissionDenied);
        }
        Ok(())
    }

    /// Grant `client` direct reads of `node`, for `caller` (who must be the granter); returns the
    /// handle.
    pub fn grant(&mut self, caller: TaskId, client: TaskId, node: NodeId) -> Result<u64> {
        self.check_granter(caller)?;
        if self.table.len() >= MAX_GRANTS {
            self.stats.refused += 1;
            return Err(Error::TooManyOpenFiles);
        }
        let handle = self.next;
        self.next += 1;
        self.table.insert(handle, Grant { client, node });
        self.stats.grants += 1;
        Ok(handle)
    }

    /// End grant `handle`, for `caller` (who must be the granter); `BadFileDescriptor` if unknown.
    pub fn revoke(&mut self, caller: TaskId, handle: u64) -> Result<()> {
        self.check_granter(caller)?;
        self.table.remove(&handle).ok_or(Error::BadFileDescriptor)?;
        self.stats.revokes += 1;
        Ok(())
    }

    /// The node `caller` may read through `handle`: `BadFileDescriptor` for an unknown (or revoked)
    /// handle, `PermissionDenied` for anyone but the grant's client.
    pub fn node(&mut self, caller: TaskId, handle: u64) -> Result<NodeId> {
        let r = match self.table.get(&handle) {
            None => Err(Error::BadFileDescriptor),
            Some(g) if g.client != caller => Err(Error::PermissionDenied),
            Some(g) => Ok(g.node),
        };
        if r.is_err() {
            self.stats.refused += 1;
        }
        r
    }

    /// Count a direct read served.
    pub fn served(&mut self, bytes: u32) {
        self.stats.reads += 1;
        self.stats.bytes += u64::from(bytes);
    }

    pub fn stats(&self) -> DirectStats {
        DirectStats { live: self.table.len() as u64, ..self.stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VFS: TaskId = TaskId::new(5, 1);
    const APP: TaskId = TaskId::new(9, 1);

    fn grants() -> Grants {
        let mut g = Grants::default();
        g.set_granter(Box::new(|t| t.index == VFS.index));
        g
    }

    #[test]
    fn an_older_incarnation_finishing_a_call_drops_nothing() {
        let mut g = grants();
        let new_vfs = TaskId::new(VFS.index, VFS.generation + 1);
        let h = g.grant(new_vfs, APP, 7).unwrap();
        assert!(g.may_call(VFS, 5, &[]));
        assert_eq!(g.node(APP, h), Ok(7), "the newer incarnation's grants stay");
        assert!(g.may_call(new_vfs, 5, &[]));
        assert_eq!(g.node(APP, h), Ok(7));
    }

    #[test]
    fn only_the_granted_client_reads_and_only_until_revoked() {
        let mut g = grants();
        let h = g.grant(VFS, APP, 42).unwrap();
        assert_eq!(g.node(APP, h), Ok(42));
        assert_eq!(g.node(TaskId::new(10, 1), h), Err(Error::PermissionDenied), "another task");
        assert_eq!(g.node(TaskId::new(9, 2), h), Err(Error::PermissionDenied), "the client restarted");
        assert_eq!(g.node(APP, h + 1), Err(Error::BadFileDescriptor), "unknown handle");
        g.revoke(VFS, h).unwrap();
        assert_eq!(g.node(APP, h), Err(Error::BadFileDescriptor), "revoked");
        assert_eq!(g.revoke(VFS, h), Err(Error::BadFileDescriptor));
        let h2 = g.grant(VFS, APP, 42).unwrap();
        assert_ne!(h2, h, "handles are never reused");
        let s = g.stats();
        assert_eq!((s.grants, s.revokes, s.refused, s.live), (2, 1, 4, 1));
    }

    #[test]
    fn only_the_granter_grants_and_revokes() {
        let mut g = grants();
        assert_eq!(g.grant(APP, APP, 1), Err(Error::PermissionDenied));
        let h = g.grant(VFS, APP, 1).unwrap();
        assert_eq!(g.revoke(APP, h), Err(Error::PermissionDenied));
        assert_eq!(g.node(APP, h), Ok(1));
        let mut nobody = Grants::default();
        assert_eq!(nobody.grant(VFS, APP, 1), Err(Error::PermissionDenied), "no granter configured");
    }

    #[test]
    fn a_restarted_vfs_drops_the_old_incarnations_grants() {
        let mut g = grants();
        let old = g.grant(VFS, APP, 1).unwrap();
        assert!(!g.take_granter_restart(), "the first vfs replaces nobody");
        let new_vfs = TaskId::new(VFS.index, VFS.generation + 1);
        let new = g.grant(new_vfs, APP, 2).unwrap();
        assert_eq!(g.node(APP, old), Err(Error::BadFileDescriptor));
        assert_eq!(g.node(APP, new), Ok(2));
        assert_eq!(g.stats().live, 1);
        assert!(g.take_granter_restart(), "what the old vfs left open is the server's to drop");
        assert!(!g.take_granter_restart(), "once");
    }

    #[test]
    fn only_the_granter_makes_operations_outside_the_open_ones() {
        let mut g = grants();
        assert!(g.may_call(VFS, 5, &[42]));
        assert!(!g.may_call(APP, 5, &[42]));
        assert!(g.may_call(APP, 42, &[42]));
        let mut unguarded = Grants::default();
        assert!(unguarded.may_call(APP, 5, &[42]), "no granter: one trusted client");
        let h = g.grant(VFS, APP, 1).unwrap();
        assert!(g.may_call(TaskId::new(VFS.index, 2), 5, &[]), "a restarted vfs is the vfs");
        assert_eq!(g.node(APP, h), Err(Error::BadFileDescriptor), "its first call dropped the old grants");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut g = grants();
        for i in 0..MAX_GRANTS {
            g.grant(VFS, APP, i as u64).unwrap();
        }
        assert_eq!(g.grant(VFS, APP, 0), Err(Error::TooManyOpenFiles));
        g.revoke(VFS, 1).unwrap();
        assert!(g.grant(VFS, APP, 0).is_ok(), "room again after a revoke");
    }
}
