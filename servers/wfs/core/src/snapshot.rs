//! Snapshots: named, read-only copies of a committed tree.
//!
//! Design: a snapshot is a record in the live tree, under (META_OID, SNAPSHOT, hashed name), that
//! holds a committed root pointer and its txid. Taking one costs one commit and one item: the live
//! tree and the snapshot share every block until the live side rewrites it. Sharing is tracked with
//! birth txids (as ZFS does): a block born at or before the newest snapshot's txid may be shared,
//! so the live tree never frees it while the snapshot exists. Deleting a snapshot removes its
//! record, commits, and rebuilds the allocator from the remaining trees, which returns every block
//! only that snapshot used. A [`SnapshotView`] serves the read-only half of `FileSystem` from the
//! snapshot's root with the same code as the live tree.

use alloc::string::String;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::fs::{Capabilities, DirEntry, FileSystem, FsStats, NodeId, SetAttr, Stat, Timespec};
use protocol::{Error, Result};

use crate::btree::{self, Child};
use crate::names;
use crate::ondisk::{get_u32, get_u64, put_u32, put_u64, BlockPtr, Key, KIND_SNAPSHOT, META_OID, ROOT_INO};
use crate::read;
use crate::Wfs;

const SNAP_HDR: usize = 48;

/// A snapshot record as stored in the tree.
pub(crate) struct SnapRecord {
    pub root: BlockPtr,
    pub txid: u64,
    pub time: Timespec,
    pub name: Vec<u8>,
}

impl SnapRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = alloc::vec![0u8; SNAP_HDR + self.name.len()];
        self.root.encode(&mut v[0..28]);
        put_u64(&mut v, 28, self.txid);
        put_u64(&mut v, 36, self.time.secs as u64);
        put_u32(&mut v, 44, self.time.nanos);
        v[SNAP_HDR..].copy_from_slice(&self.name);
        v
    }

    pub fn decode(v: &[u8]) -> Result<SnapRecord> {
        if v.len() < SNAP_HDR {
            return Err(Error::Corrupt { block: 0 });
        }
        Ok(SnapRecord {
            root: BlockPtr::decode(&v[0..28])?,
            txid: get_u64(v, 28),
            time: Timespec::new(get_u64(v, 36) as i64, get_u32(v, 44)),
            name: v[SNAP_HDR..].to_vec(),
        })
    }
}

/// What `list_snapshots` reports about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    /// The transaction the snapshot captured.
    pub txid: u64,
    pub created: Timespec,
}

impl<D: BlockDevice> Wfs<D> {
    fn find_snapshot(&mut self, name: &str) -> Result<Option<(Key, SnapRecord)>> {
        names::check_name(name)?;
        match names::find(&mut self.st, &self.root, META_OID, KIND_SNAPSHOT, SNAP_HDR, name.as_bytes())? {
            Some((k, v)) => Ok(Some((k, SnapRecord::decode(&v)?))),
            None => Ok(None),
        }
    }

    /// Capture the current state (after committing it) as snapshot `name`.
    pub fn create_snapshot(&mut self, name: &str) -> Result<()> {
        if self.tx.is_some() {
            return Err(Error::Busy);
        }
        if self.find_snapshot(name)?.is_some() {
            return Err(Error::AlreadyExists);
        }
        self.commit()?;
        self.room(2, 0)?;
        let rec = SnapRecord {
            root: self.committed.root,
            txid: self.committed.txid,
            time: self.now(),
            name: name.as_bytes().to_vec(),
        };
        // From now on nothing born at or before the snapshot may be freed by the live tree.
        self.st.snap_txid = self.st.snap_txid.max(rec.txid);
        let key = names::free_key(&mut self.st, &self.root, META_OID, KIND_SNAPSHOT, name.as_bytes())?;
        self.tree_insert(key, rec.encode())?;
        self.commit()
    }

    /// Every snapshot, oldest first.
    pub fn list_snapshots(&mut self) -> Result<Vec<SnapshotInfo>> {
        let mut out = Vec::new();
        let (from, to) = (Key::new(META_OID, KIND_SNAPSHOT, 0), Key::new(META_OID, KIND_SNAPSHOT, u64::MAX));
        btree::scan(&mut self.st, &self.root, from, to, usize::MAX, &mut out)?;
        let mut list = Vec::new();
        for (_, v) in out {
            let r = SnapRecord::decode(&v)?;
            let name = String::from_utf8(r.name).map_err(|_| Error::Corrupt { block: 0 })?;
            list.push(SnapshotInfo { name, txid: r.txid, created: r.time });
        }
        list.sort_by_key(|s| s.txid);
        Ok(list)
    }

    /// Delete snapshot `name` and give back the blocks only it used.
    pub fn delete_snapshot(&mut self, name: &str) -> Result<()> {
        if self.tx.is_some() {
            return Err(Error::Busy);
        }
        let (key, _) = self.find_snapshot(name)?.ok_or(Error::NotFound)?;
        self.room(2, 0)?;
        // With nothing pending, the allocator is exactly the committed state; what the trees
        // reach without this snapshot is what stays, the rest was the snapshot's alone. It is
        // freed by the same commit that drops the record, so the persisted space map never
        // shows the snapshot's blocks as used once the record is gone (even after a crash).
        self.commit()?;
        let (keep, snap_txid) = self.reachable(Some(key))?;
        self.tree_remove(&key)?;
        for b in 0..keep.total() {
            if self.st.alloc.is_used(b) && !keep.is_used(b) {
                self.st.alloc.free_deferred(b);
            }
        }
        self.st.snap_txid = snap_txid;
        self.commit()
    }

    /// A read-only view of snapshot `name`.
    pub fn snapshot(&mut self, name: &str) -> Result<SnapshotView<'_, D>> {
        let (_, rec) = self.find_snapshot(name)?.ok_or(Error::NotFound)?;
        Ok(SnapshotView { fs: self, root: Child::Disk(rec.root) })
    }
}

/// A snapshot opened read-only; every modifying call fails with `ReadOnly`.
pub struct SnapshotView<'a, D: BlockDevice> {
    fs: &'a mut Wfs<D>,
    root: Child,
}

impl<D: BlockDevice> FileSystem for SnapshotView<'_, D> {
    fn root(&self) -> NodeId {
        ROOT_INO
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hard_links: true,
            symlinks: true,
            special_files: true,
            permissions: true,
            transactions: false,
            snapshots: false,
        }
    }

    fn lookup(&mut self, dir: NodeId, name: &str) -> Result<Stat> {
        read::lookup(&mut self.fs.st, &self.root, dir, name)
    }

    fn getattr(&mut self, node: NodeId) -> Result<Stat> {
        Ok(read::to_stat(node, &read::get_inode(&mut self.fs.st, &self.root, node)?))
    }

    fn setattr(&mut self, _: NodeId, _: SetAttr) -> Result<Stat> {
        Err(Error::ReadOnly)
    }

    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        read::read(&mut self.fs.st, &self.root, node, offset, buf)
    }

    fn write(&mut self, _: NodeId, _: u64, _: &[u8]) -> Result<usize> {
        Err(Error::ReadOnly)
    }

    fn create(&mut self, _: NodeId, _: &str, _: &protocol::fs::NewNode) -> Result<Stat> {
        Err(Error::ReadOnly)
    }

    fn unlink(&mut self, _: NodeId, _: &str) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn rmdir(&mut self, _: NodeId, _: &str) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn rename(&mut self, _: NodeId, _: &str, _: NodeId, _: &str) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        read::readdir(&mut self.fs.st, &self.root, dir, cookie, max)
    }

    fn fsync(&mut self, _: NodeId) -> Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        Ok(())
    }

    fn statfs(&mut self) -> Result<FsStats> {
        self.fs.statfs()
    }

    fn readlink(&mut self, node: NodeId) -> Result<String> {
        read::readlink(&mut self.fs.st, &self.root, node)
    }
}

/// The txid of the newest snapshot recorded in the tree at `root` (0: none).
pub(crate) fn newest_txid<D: BlockDevice>(st: &mut crate::store::Store<D>, root: &crate::btree::Child) -> Result<u64> {
    let mut out = Vec::new();
    let (from, to) = (Key::new(META_OID, KIND_SNAPSHOT, 0), Key::new(META_OID, KIND_SNAPSHOT, u64::MAX));
    btree::scan(st, root, from, to, usize::MAX, &mut out)?;
    let mut newest = 0;
    for (_, v) in out {
        newest = newest.max(SnapRecord::decode(&v)?.txid);
    }
    Ok(newest)
}
