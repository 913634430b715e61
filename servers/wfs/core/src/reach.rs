//! What the committed state uses: the walk that rebuilds the allocator (mount without a usable
//! space map, fsck's repair, scrub's map rebuild) and that snapshot deletion and fsck compare with.
//!
//! Design: every tree (the live one and each snapshot's) is walked from its committed root and
//! every node copy and data block marked; a subtree already marked is shared with a tree walked
//! earlier and skipped, so shared snapshots cost their differences only.

use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::{Error, Result};

use crate::allocator::Allocator;
use crate::btree::{self, Node};
use crate::ondisk::{superblock_addrs, BlockPtr, Key, KIND_EXTENT, KIND_SNAPSHOT, META_OID};
use crate::store::Store;
use crate::{extent, snapshot, Wfs};

impl<D: BlockDevice> Wfs<D> {
    /// Recompute the allocator from the committed trees: the superblocks, every node copy and
    /// every data block reachable from the live root and from each snapshot root.
    pub(crate) fn rebuild_allocator(&mut self) -> Result<()> {
        let (mut alloc, snap_txid) = self.reachable(None)?;
        // The whole map is rewritten at the next commit.
        alloc.change_all();
        self.st.alloc = alloc;
        self.st.snap_txid = snap_txid;
        Ok(())
    }

    /// The blocks the committed state uses (superblocks, space map, live tree, every snapshot
    /// tree except the one recorded under `skip`), and the newest remaining snapshot's txid.
    pub(crate) fn reachable(&mut self, skip: Option<Key>) -> Result<(Allocator, u64)> {
        let total = self.st.alloc.total();
        let mut alloc = Allocator::new(total);
        for b in superblock_addrs(total) {
            alloc.mark(b);
        }
        // The space map's blocks are not in the trees.
        for a in self.map.addrs() {
            alloc.set_bit(a);
        }
        let mut snaps = Vec::new();
        let root = self.committed.root;
        mark_tree(&mut self.st, &root, &mut alloc, Some(&mut snaps))?;
        let mut snap_txid = 0;
        for (key, ptr, txid) in snaps {
            if Some(key) != skip {
                snap_txid = snap_txid.max(txid);
                mark_tree(&mut self.st, &ptr, &mut alloc, None)?;
            }
        }
        Ok((alloc, snap_txid))
    }
}

/// Mark every block of the committed tree at `root` in `alloc`. Subtrees already marked (shared
/// with a tree marked earlier) are skipped. With `snaps`, snapshot records are collected.
fn mark_tree<D: BlockDevice>(
    st: &mut Store<D>,
    root: &BlockPtr,
    alloc: &mut Allocator,
    mut snaps: Option<&mut Vec<(Key, BlockPtr, u64)>>,
) -> Result<()> {
    let total = alloc.total();
    btree::walk(st, root, None, &mut |_, ptr, node| {
        let mut fresh = false;
        for a in ptr.copies() {
            if a >= total {
                return Err(Error::Corrupt { block: a });
            }
            fresh |= alloc.mark(a);
        }
        if !fresh {
            return Ok(false);
        }
        if let Node::Leaf { items, .. } = node {
            for (k, v) in items {
                if k.kind == KIND_EXTENT && k.oid != META_OID {
                    let e = extent::Extent::decode(k.off, v)?;
                    if !e.on_device(total) {
                        return Err(Error::Corrupt { block: ptr.addr });
                    }
                    for (_, p) in e.blocks() {
                        alloc.mark(p.addr);
                    }
                } else if k.oid == META_OID && k.kind == KIND_SNAPSHOT {
                    if let Some(s) = snaps.as_deref_mut() {
                        let rec = snapshot::SnapRecord::decode(v)?;
                        s.push((*k, rec.root, rec.txid));
                    }
                }
            }
        }
        Ok(true)
    })
}
