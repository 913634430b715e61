//! WFS v3: a copy-on-write, transactional filesystem with checksummed block pointers, ditto
//! metadata, snapshots, scrub and fsck. The library core of wfs-server.
//!
//! Design (the byte-level format is in docs/WFS.md):
//! - Everything is in one copy-on-write B+tree ([`btree`]) of (object, kind, offset) keys:
//!   inodes, hashed directory entries, extent items (runs of up to 256 contiguous data blocks with a
//!   checksum per block, see [`extent`]), the orphan list and snapshot records. Every pointer carries
//!   the child's checksum (XXH64 or crc32, [`Checksum`]) and birth txid; every tree node is written
//!   twice ("ditto") so scrub can repair it.
//! - Changes accumulate in memory as dirty tree nodes (data blocks go straight to free blocks that
//!   no durable state references). A commit writes the dirty nodes to new blocks, flushes, writes
//!   both superblocks (first and last block), flushes again, and only then lets blocks freed by the
//!   transaction be reused. Implicit operations are grouped into one commit, made on
//!   `sync`/`fsync`, `unmount`, explicit transaction boundaries or when the group grows large.
//! - An explicit transaction works on its own in-memory state beside the main one, selected per
//!   operation, isolated from it and merged into it (or refused with `Conflict`) at its commit
//!   (`txn`).
//! - The allocation bitmap is persisted as a space map ([`spacemap`]) that every commit rewrites in
//!   part, copy-on-write, so mount reads a few blocks instead of walking the trees; fsck checks it
//!   against a full walk, and a damaged map is rebuilt by that walk.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod allocator;
mod batch;
pub mod btree;
mod check;
pub mod compact;
mod daemon;
mod datacache;
mod extent;
mod file;
mod fsimpl;
mod names;
pub mod ondisk;
mod reach;
mod read;
mod snapshot;
mod spacemap;
mod store;
mod txn;

pub use txn::{LOG_BYTES as TX_LOG_BYTES, LOG_OPS as TX_LOG_OPS, MAIN_OBJS as TX_MAIN_OBJS};

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::daemon::Daemon;
use protocol::fs::{Clock, FileType, TxId};
use protocol::{Error, Result};

pub use check::{FsckReport, ScrubReport};
pub use daemon::TickReport;
pub use ondisk::Checksum;
pub use snapshot::{SnapshotInfo, SnapshotView};

use crate::allocator::Allocator;
use crate::btree::Child;
use crate::ondisk::{
    superblock_addrs, BlockPtr, Inode, Key, Superblock, BLOCK_SIZE, FEATURES_REQUIRED, FEATURE_DITTO_METADATA,
    KIND_ORPHAN, META_OID, MIN_BLOCKS, ROOT_INO, SECTORS_PER_BLOCK,
};
use crate::spacemap::SpaceMap;
use crate::store::Store;

/// Options for [`Wfs::format`].
#[derive(Debug, Clone, Copy)]
pub struct FormatOptions {
    /// Store every tree node twice so scrub can repair metadata (on by default).
    pub ditto_metadata: bool,
    /// The block checksum (XXH64 by default).
    pub checksum: Checksum,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions { ditto_metadata: true, checksum: Checksum::default() }
    }
}

/// Implicit operations grouped into one commit before it is forced.
const GROUP_OPS: u64 = 8192;
/// Data blocks written by one commit group before it is forced (64 MiB).
const GROUP_BLOCKS: u64 = 16384;

/// A mounted WFS filesystem on device `D`.
pub struct Wfs<D: BlockDevice> {
    st: Store<D>,
    /// The live tree, possibly with dirty nodes.
    root: Child,
    /// The last durable superblock.
    committed: Superblock,
    /// Where the persisted space map's blocks are (rewritten in part by every commit).
    map: SpaceMap,
    next_ino: u64,
    clock: Box<dyn Clock + Send>,
    /// Open counts from the VFS; unlinked nodes stay alive (on the orphan list) while open.
    open: BTreeMap<u64, u32>,
    /// The explicit transaction in progress, if any, with the state not selected now (see `txn`).
    tx: Option<txn::OpenTx>,
    /// While a transaction is open: what the selected state changed since it began.
    touched: alloc::collections::BTreeSet<txn::Obj>,
    /// Nesting of `begin_op` (a transaction's replay runs its operations inside one).
    op_depth: u32,
    /// The inode number the next `create` gives (a replayed create), instead of the counter's.
    forced_ino: Option<u64>,
    dirty: bool,
    ops_since: u64,
    blocks_since: u64,
    /// Where the background scrub (`tick`, `background`) continues.
    scrub_cursor: (Key, usize),
    /// The inode the background compaction (`compact`) looks at next.
    compact_cursor: u64,
    /// The write-back schedule and counters of the server's daemon (`background`).
    daemon: Daemon,
    /// A commit failed part-way: the in-memory state can no longer be trusted to match the
    /// device, so every change is refused (`ReadOnly`) until the filesystem is mounted again.
    failed: bool,
}

impl<D: BlockDevice> Wfs<D> {
    /// Write a new, empty filesystem onto `dev`.
    pub fn format(dev: D, opts: &FormatOptions, clock: Box<dyn Clock + Send>) -> Result<Self> {
        let total = dev.sector_count() / SECTORS_PER_BLOCK;
        if total < MIN_BLOCKS {
            return Err(Error::NoSpace);
        }
        let mut alloc = Allocator::new(total);
        for b in superblock_addrs(total) {
            alloc.mark(b);
        }
        // The first commit writes the whole space map.
        alloc.change_all();
        let features =
            FEATURES_REQUIRED | opts.checksum.feature() | if opts.ditto_metadata { FEATURE_DITTO_METADATA } else { 0 };
        let now = clock.now();
        let sb = Superblock {
            features,
            total_blocks: total,
            txid: 0,
            root: BlockPtr::default(),
            next_ino: ROOT_INO + 1,
            time: now,
            index: 0,
            space_map: BlockPtr::default(),
            map_levels: 0,
            scrub_at: (Key::MIN, 0),
        };
        let map = SpaceMap::new(total);
        let mut fs = Wfs {
            st: Store::new(dev, alloc, 1, opts.ditto_metadata, opts.checksum, map.blocks()),
            root: Child::empty(),
            committed: sb,
            map,
            next_ino: ROOT_INO + 1,
            clock,
            open: BTreeMap::new(),
            tx: None,
            touched: alloc::collections::BTreeSet::new(),
            op_depth: 0,
            forced_ino: None,
            dirty: true,
            ops_since: 0,
            blocks_since: 0,
            scrub_cursor: (Key::MIN, 0),
            compact_cursor: 0,
            daemon: Daemon::default(),
            failed: false,
        };
        let root = Inode {
            kind: FileType::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            nlink: 2,
            rdev: 0,
            size: 0,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            parent: ROOT_INO,
            target: Vec::new(),
        };
        fs.put_inode(ROOT_INO, &root)?;
        fs.commit()?;
        Ok(fs)
    }

    /// Mount the filesystem on `dev`: pick the newest valid superblock, load the allocator from the
    /// persisted space map (or, if the map fails its checksums, rebuild it by walking the trees)
    /// and delete the orphans a crash left behind.
    pub fn mount(dev: D, clock: Box<dyn Clock + Send>) -> Result<Self> {
        Self::mount_inner(dev, clock, false)
    }

    /// Mount ignoring the persisted space map: rebuild the allocator by walking every tree and
    /// write a fresh map at the next commit (recovery, and the benchmark's "before" figure).
    pub fn mount_rebuilding_space_map(dev: D, clock: Box<dyn Clock + Send>) -> Result<Self> {
        Self::mount_inner(dev, clock, true)
    }

    fn mount_inner(mut dev: D, clock: Box<dyn Clock + Send>, walk: bool) -> Result<Self> {
        let total = dev.sector_count() / SECTORS_PER_BLOCK;
        if total < MIN_BLOCKS {
            return Err(Error::Corrupt { block: 0 });
        }
        let mut best: Option<Superblock> = None;
        let mut first_err = Error::Corrupt { block: 0 };
        let mut buf = alloc::vec![0u8; BLOCK_SIZE];
        for (i, addr) in superblock_addrs(total).into_iter().enumerate() {
            let sb = dev
                .read(addr * SECTORS_PER_BLOCK, &mut buf)
                .and_then(|_| Superblock::decode(&buf, addr))
                .and_then(|sb| {
                    // A copy that describes another device size or sits in the wrong slot is not ours.
                    if sb.total_blocks != total || sb.index as usize != i {
                        Err(Error::Corrupt { block: addr })
                    } else {
                        Ok(sb)
                    }
                });
            match sb {
                Ok(sb) if best.is_none_or(|b| sb.txid > b.txid) => best = Some(sb),
                Ok(_) => {}
                Err(e) if i == 0 => first_err = e,
                Err(_) => {}
            }
        }
        let sb = best.ok_or(first_err)?;
        let ditto = sb.features & FEATURE_DITTO_METADATA != 0;
        let map = SpaceMap::new(total);
        let mut fs = Wfs {
            st: Store::new(
                dev,
                Allocator::new(total),
                sb.txid + 1,
                ditto,
                Checksum::of_features(sb.features),
                map.blocks(),
            ),
            root: Child::Disk(sb.root),
            committed: sb,
            map,
            next_ino: sb.next_ino,
            clock,
            open: BTreeMap::new(),
            tx: None,
            touched: alloc::collections::BTreeSet::new(),
            op_depth: 0,
            forced_ino: None,
            dirty: false,
            ops_since: 0,
            blocks_since: 0,
            // Resumes where the last commit left the background scrub.
            scrub_cursor: (sb.scrub_at.0, sb.scrub_at.1 as usize),
            compact_cursor: 0,
            daemon: Daemon::default(),
            failed: false,
        };
        if walk {
            fs.rebuild_allocator()?;
        } else {
            fs.load_allocator()?;
        }
        if read::get_inode(&mut fs.st, &fs.root, ROOT_INO)?.kind != FileType::Directory {
            return Err(Error::Corrupt { block: sb.root.addr });
        }
        fs.clean_orphans()?;
        Ok(fs)
    }

    /// Commit everything (an open explicit transaction is aborted), flush, and hand the device back.
    pub fn unmount(mut self) -> Result<D> {
        if let Some(id) = self.open_transaction() {
            self.tx_abort(id)?;
        }
        self.commit()?;
        self.st.dev.flush()?;
        Ok(self.st.dev)
    }

    /// The open explicit transaction, if any.
    pub fn open_transaction(&self) -> Option<TxId> {
        self.tx.as_ref().map(|t| t.id())
    }

    /// The transaction the operations act in now (`select_transaction`), if any.
    pub fn selected_transaction(&self) -> Option<TxId> {
        self.tx.as_ref().filter(|_| self.in_tx()).map(|t| t.id())
    }

    /// The transaction id of the last durable commit.
    /// The block checksum this image uses (named by its superblock's features).
    pub fn checksum(&self) -> Checksum {
        self.st.csum
    }

    pub fn committed_txid(&self) -> u64 {
        self.committed.txid
    }

    /// Drop the cache of decoded tree nodes, so the next reads go to the device (cold-cache
    /// measurements, and fault-injection tests whose failing reads must reach the operation).
    pub fn drop_caches(&mut self) {
        self.st.forget_cache();
    }

    /// Direct access to the device (tests and tools: corruption injection, image dumps).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.st.dev
    }

    fn now(&self) -> protocol::fs::Timespec {
        self.clock.now()
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// Check, before an operation changes anything, that the next commit will have blocks for
    /// the `paths` root-to-leaf paths it may dirty (with splits) plus `extra` blocks; so an
    /// operation fails whole with `NoSpace` instead of half-way or at commit time.
    pub(crate) fn room(&mut self, paths: u64, extra: u64) -> Result<()> {
        self.writable()?;
        let depth = btree::depth(&mut self.st, &self.root)? as u64 + 2;
        let nodes = paths.saturating_mul(depth);
        self.st.check_room(self.st.copies().saturating_mul(nodes).saturating_add(extra))
    }

    pub(crate) fn put_inode(&mut self, ino: u64, i: &Inode) -> Result<()> {
        self.writable()?;
        self.dirty = true;
        btree::insert(&mut self.st, &mut self.root, read::inode_key(ino), i.encode())
    }

    pub(crate) fn get_inode(&mut self, ino: u64) -> Result<Inode> {
        read::get_inode(&mut self.st, &self.root, ino)
    }

    pub(crate) fn tree_insert(&mut self, key: Key, val: Vec<u8>) -> Result<()> {
        self.writable()?;
        self.dirty = true;
        btree::insert(&mut self.st, &mut self.root, key, val)
    }

    pub(crate) fn tree_remove(&mut self, key: &Key) -> Result<Option<Vec<u8>>> {
        self.writable()?;
        self.dirty = true;
        btree::remove(&mut self.st, &mut self.root, key)
    }

    /// Make the current state durable: dirty nodes → flush → both superblocks → flush.
    pub(crate) fn commit(&mut self) -> Result<()> {
        self.writable()?;
        if self.in_tx() {
            // Only the main state is ever written; a transaction's becomes it at its commit.
            return Err(Error::Busy);
        }
        if !self.dirty && !self.st.alloc.any_changed() {
            self.daemon.written();
            return Ok(());
        }
        let r = self.commit_inner();
        if r.is_err() {
            // Some of this commit's blocks (or one superblock copy) may be on the device: reusing
            // them now could corrupt what a later mount finds. Stop changing anything instead.
            self.failed = true;
        }
        r
    }

    fn commit_inner(&mut self) -> Result<()> {
        let mut out = Vec::new();
        let root = btree::write_dirty(&mut self.st, &mut self.root, &mut out)?;
        // After the tree: the map must record the blocks the tree nodes just took.
        let space_map = self.map.write(&mut self.st, &mut out)?;
        self.write_sorted(out)?;
        self.st.dev.flush()?;
        let mut sb = Superblock {
            txid: self.st.txid,
            root,
            next_ino: self.next_ino,
            time: self.now(),
            space_map,
            map_levels: self.map.index_levels(),
            scrub_at: (self.scrub_cursor.0, u32::try_from(self.scrub_cursor.1).unwrap_or(0)),
            ..self.committed
        };
        for (i, addr) in superblock_addrs(sb.total_blocks).into_iter().enumerate() {
            sb.index = i as u32;
            self.st.write_raw(addr, &sb.encode())?;
        }
        self.st.dev.flush()?;
        sb.index = 0;
        self.committed = sb;
        self.st.alloc.commit_durable();
        self.st.dirty_nodes = 0;
        self.st.txid += 1;
        self.dirty = false;
        self.ops_since = 0;
        self.blocks_since = 0;
        self.daemon.written();
        Ok(())
    }

    /// Issue node writes sorted by address, one device request per contiguous run.
    fn write_sorted(&mut self, mut out: Vec<(u64, Vec<u8>)>) -> Result<()> {
        out.sort_unstable_by_key(|(a, _)| *a);
        let mut i = 0;
        let mut run = Vec::new();
        while i < out.len() {
            let start = out[i].0;
            run.clear();
            let mut j = i;
            while j < out.len() && out[j].0 == start + (j - i) as u64 {
                run.extend_from_slice(&out[j].1);
                j += 1;
            }
            self.st.write_raw(start, &run)?;
            i = j;
        }
        Ok(())
    }

    /// Load the allocator from the committed space map. A map that cannot be read or fails its
    /// checksums is not fatal (it is redundant with the trees): the allocator is rebuilt by a
    /// walk and the next commit writes a complete new map.
    pub(crate) fn load_allocator(&mut self) -> Result<()> {
        let (sb, total) = (self.committed, self.st.alloc.total());
        match SpaceMap::load(&mut self.st, sb.space_map, sb.map_levels, total) {
            Ok((map, alloc)) => {
                self.map = map;
                self.st.alloc = alloc;
                self.st.snap_txid = snapshot::newest_txid(&mut self.st, &Child::Disk(sb.root))?;
                Ok(())
            }
            Err(_) => {
                // The old map's blocks are not trusted (nor kept): the new map gets new blocks.
                self.map = SpaceMap::new(total);
                self.rebuild_allocator()
            }
        }
    }

    /// Start an operation that must leave no trace if it fails: save the in-memory tree (cheap:
    /// dirty nodes are shared, a change copies the nodes on its path) and the counters, and
    /// journal the allocator. Frees of open-transaction blocks wait for `end_op`.
    pub(crate) fn begin_op(&mut self) -> OpState {
        // A nested operation (a transaction's replay) is undone by the outer one.
        if self.op_depth == 0 {
            self.st.alloc.begin_op();
            self.st.op_frees = Some(Vec::new());
        }
        self.op_depth += 1;
        OpState {
            root: self.root.clone(),
            next_ino: self.next_ino,
            dirty: self.dirty,
            dirty_nodes: self.st.dirty_nodes,
            pinned: self.st.pinned.len(),
        }
    }

    /// Finish the operation begun with `saved`: keep its effects if `r` is `Ok`, otherwise put
    /// the tree, the counters and the allocator back as they were (the blocks it wrote data to
    /// were free before it, so they are simply free again). Returns `r`.
    pub(crate) fn end_op<T>(&mut self, saved: OpState, r: Result<T>) -> Result<T> {
        self.op_depth = self.op_depth.saturating_sub(1);
        if self.op_depth > 0 {
            return r;
        }
        let frees = self.st.op_frees.take().unwrap_or_default();
        if r.is_ok() {
            self.st.alloc.end_op();
            for b in frees {
                self.st.alloc.free_now(b);
            }
        } else {
            self.st.alloc.undo_op();
            self.root = saved.root;
            self.next_ino = saved.next_ino;
            self.dirty = saved.dirty;
            self.st.dirty_nodes = saved.dirty_nodes;
            self.st.pinned.truncate(saved.pinned);
        }
        r
    }

    /// Called after each implicit operation: commit when the group has grown large.
    pub(crate) fn op_done(&mut self, blocks: u64) -> Result<()> {
        if !self.daemon.pending() {
            let now = self.now();
            self.daemon.changed(now);
        }
        self.ops_since += 1;
        self.blocks_since += blocks;
        // The main state's group commits when large; a transaction's waits for its commit.
        let main = !self.in_tx() && self.op_depth == 0;
        if main && (self.ops_since >= GROUP_OPS || self.blocks_since >= GROUP_BLOCKS) {
            self.commit()?;
        }
        Ok(())
    }

    /// Delete every node on the orphan list (unlinked while open when the system went down).
    fn clean_orphans(&mut self) -> Result<()> {
        loop {
            let mut out = Vec::new();
            let (from, to) = (Key::new(META_OID, KIND_ORPHAN, 0), Key::new(META_OID, KIND_ORPHAN, u64::MAX));
            btree::scan(&mut self.st, &self.root, from, to, 64, &mut out)?;
            if out.is_empty() {
                break;
            }
            for (k, _) in out {
                self.tree_remove(&k)?;
                match self.get_inode(k.off) {
                    Ok(_) => self.delete_inode(k.off)?,
                    Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.commit()
    }
}

/// What `begin_op` saves of the in-memory state.
pub(crate) struct OpState {
    root: Child,
    next_ino: u64,
    dirty: bool,
    dirty_nodes: u64,
    pinned: usize,
}

#[cfg(test)]
mod fuzz_tests;
