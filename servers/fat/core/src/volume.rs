//! The mounted volume: node table, directory caches, device I/O and the commit order.
//!
//! Design: every node seen through a directory gets a [`Node`] holding the authoritative copy of
//! its short entry, so size and timestamp updates from writes stay in memory (marked dirty) and
//! reach the disk at the next commit, after the FAT. Directories are cached whole (bytes, the
//! device sector of each 512-byte piece, and the parsed names), so lookups and creates never
//! re-read a directory. Entry changes write only the sectors they touch, always after
//! [`FatFs::flush_fat`] (see the crate documentation for the full write order).

use alloc::boxed::Box;
use alloc::collections::btree_map::Entry;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::daemon::{Daemon, DaemonConfig, DaemonStats};
use protocol::fs::{Clock, NodeId};
use protocol::{Error, Result};

use crate::bpb::{le32, FatType, Geometry};
use crate::dirent::{parse, Named, Short, ATTR_DIR, SLOT};
use crate::runs::RunMap;
use crate::table::FatTable;

/// Node id of the root directory.
pub const ROOT: NodeId = 1;
/// Ids handed out when a location-derived id is still held by a renamed node.
pub(crate) const SPARE_IDS: NodeId = 1 << 62;
/// FAT caps a directory at 65,536 slots.
const MAX_DIR_SLOTS: usize = 65536;

pub(crate) struct Node {
    /// Parent directory (0 for the root).
    pub parent: NodeId,
    pub first_slot: u32,
    pub slot: u32,
    /// The short entry as it should be on disk.
    pub ent: Short,
    pub runs: Option<RunMap>,
    pub open: u32,
    pub unlinked: bool,
}

pub(crate) struct Dir {
    pub data: Vec<u8>,
    /// Device sector of each 512-byte piece of `data`.
    pub sectors: Vec<u64>,
    /// Named entries in slot order.
    pub entries: Vec<Named>,
    /// Name index, built on the first lookup or insert so that a plain listing does not pay for it.
    pub index: Option<Index>,
    /// The FAT12/16 root region, which cannot grow.
    pub fixed: bool,
}

/// Lookup structures of a cached directory.
#[derive(Default)]
pub(crate) struct Index {
    /// Case-folded long names and aliases → slot of the short entry.
    pub by_name: BTreeMap<String, u32>,
    /// Every short name in use, for `~N` alias generation.
    pub shorts: BTreeSet<[u8; 11]>,
    /// Where the `~N` search for an alias basis (base, extension) starts next time, so that many
    /// similar long names do not probe every lower tail again.
    pub tails: BTreeMap<(Vec<u8>, Vec<u8>), u32>,
}

/// A mounted FAT volume.
pub struct FatFs<D: BlockDevice> {
    pub(crate) dev: D,
    pub(crate) geo: Geometry,
    pub(crate) fat: FatTable,
    pub(crate) clock: Box<dyn Clock + Send>,
    pub(crate) nodes: BTreeMap<NodeId, Node>,
    pub(crate) by_loc: BTreeMap<(NodeId, u32), NodeId>,
    pub(crate) dirs: BTreeMap<NodeId, Dir>,
    /// Nodes whose entry in memory is newer than on disk.
    pub(crate) dirty: BTreeSet<NodeId>,
    next_spare: NodeId,
    /// We cleared the clean bit (so we set it again at unmount).
    marked_dirty: bool,
    /// The volume was not cleanly unmounted before this mount.
    was_dirty: bool,
    /// The write-back schedule and counters of the server's daemon (`background`).
    pub(crate) daemon: Daemon,
}

impl<D: BlockDevice> FatFs<D> {
    /// Mount the volume on `dev`, validating its boot sector and reading its FAT.
    pub fn mount(mut dev: D, clock: Box<dyn Clock + Send>) -> Result<Self> {
        let mut bs = [0u8; SECTOR_SIZE];
        dev.read(0, &mut bs)?;
        let geo = Geometry::parse(&bs, dev.size_bytes())?;
        let mut fat = FatTable::load(&mut dev, &geo)?;
        if let Some(off) = geo.fsinfo_offset {
            let mut s = [0u8; SECTOR_SIZE];
            dev.read(off / SECTOR_SIZE as u64, &mut s)?;
            if le32(&s, 0) == 0x4161_5252 && le32(&s, 484) == 0x6141_7272 {
                fat.set_hint(le32(&s, 492));
            }
        }
        let root = Short { attr: ATTR_DIR, cluster: geo.root_cluster, ..Default::default() };
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node { parent: 0, first_slot: 0, slot: 0, ent: root, runs: None, open: 0, unlinked: false });
        let was_dirty = !fat.is_clean();
        Ok(FatFs {
            dev,
            geo,
            fat,
            clock,
            nodes,
            by_loc: BTreeMap::new(),
            dirs: BTreeMap::new(),
            dirty: BTreeSet::new(),
            next_spare: SPARE_IDS,
            marked_dirty: false,
            was_dirty,
            daemon: Daemon::default(),
        })
    }

    /// Commit everything, write FSInfo, set the clean bit, flush, and hand the device back.
    pub fn unmount(mut self) -> Result<D> {
        self.sync_all()?;
        if self.marked_dirty && !self.was_dirty {
            self.fat.set_clean(true);
            self.flush_fat()?;
        }
        self.dev.flush()?;
        Ok(self.dev)
    }

    /// The device (for tests and tools that inspect it while mounted).
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The volume's layout.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Free clusters, as kept exact in memory.
    pub fn free_clusters(&self) -> u32 {
        self.fat.free_count()
    }

    // ---- device byte I/O -------------------------------------------------------------------

    /// Read `buf.len()` bytes at device byte offset `off`; whole sectors go straight into `buf`.
    pub(crate) fn dev_read(&mut self, off: u64, buf: &mut [u8]) -> Result<()> {
        for (sector, in_sec, at, n) in pieces(off, buf.len()) {
            if in_sec == 0 && n % SECTOR_SIZE == 0 {
                self.dev.read(sector, &mut buf[at..at + n])?;
            } else {
                let mut s = [0u8; SECTOR_SIZE];
                self.dev.read(sector, &mut s)?;
                buf[at..at + n].copy_from_slice(&s[in_sec..in_sec + n]);
            }
        }
        Ok(())
    }

    /// Write `data` at device byte offset `off`, read-modify-writing partial sectors.
    pub(crate) fn dev_write(&mut self, off: u64, data: &[u8]) -> Result<()> {
        for (sector, in_sec, at, n) in pieces(off, data.len()) {
            if in_sec == 0 && n % SECTOR_SIZE == 0 {
                self.dev.write(sector, &data[at..at + n])?;
            } else {
                let mut s = [0u8; SECTOR_SIZE];
                self.dev.read(sector, &mut s)?;
                s[in_sec..in_sec + n].copy_from_slice(&data[at..at + n]);
                self.dev.write(sector, &s)?;
            }
        }
        Ok(())
    }

    /// Fill cluster `c` with zeros.
    pub(crate) fn zero_cluster(&mut self, c: u32) -> Result<()> {
        let zeros = vec![0u8; self.geo.cluster_size as usize];
        self.dev_write(self.geo.cluster_offset(c), &zeros)
    }

    // ---- commit order ----------------------------------------------------------------------

    /// Clear the clean-shutdown bit before the first change of this mount.
    pub(crate) fn begin_change(&mut self) -> Result<()> {
        if !self.daemon.pending() {
            let now = self.clock.now();
            self.daemon.changed(now);
        }
        if !self.marked_dirty {
            self.marked_dirty = true;
            self.fat.set_clean(false);
            self.flush_fat()?;
        }
        Ok(())
    }

    /// Write the dirty FAT sectors to every copy, fenced by barriers so data written before is
    /// durable first and entries written after cannot overtake the FAT.
    pub(crate) fn flush_fat(&mut self) -> Result<()> {
        if self.fat.is_dirty() {
            self.dev.flush()?;
            self.fat.flush(&mut self.dev)?;
            self.dev.flush()?;
        }
        Ok(())
    }

    fn write_fsinfo(&mut self) -> Result<()> {
        let Some(off) = self.geo.fsinfo_offset else { return Ok(()) };
        let mut s = [0u8; SECTOR_SIZE];
        s[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
        s[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
        s[488..492].copy_from_slice(&self.fat.free_count().to_le_bytes());
        s[492..496].copy_from_slice(&self.fat.next_free_hint().to_le_bytes());
        s[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
        self.dev.write(off / SECTOR_SIZE as u64, &s)
    }

    /// Commit: FAT, then every dirty entry, then FSInfo, then a barrier.
    pub(crate) fn sync_all(&mut self) -> Result<()> {
        if !self.marked_dirty {
            self.daemon.written();
            return Ok(());
        }
        self.flush_fat()?;
        let dirty: Vec<NodeId> = core::mem::take(&mut self.dirty).into_iter().collect();
        for id in dirty {
            self.write_entry(id)?;
        }
        self.write_fsinfo()?;
        self.dev.flush()?;
        self.daemon.written();
        Ok(())
    }

    /// Set how the daemon runs (only the flush age and the tick period matter: FAT has no
    /// checksums to scrub).
    pub fn set_daemon(&mut self, cfg: DaemonConfig) {
        let stats = self.daemon.stats;
        self.daemon = Daemon::new(cfg);
        self.daemon.stats = DaemonStats { flush_age_ms: cfg.flush_age_ms, ..stats };
    }

    /// One daemon tick: write everything back (`sync`) once the oldest change not yet written back
    /// has reached the flush age. Returns the delay until the next tick (ns).
    pub fn background(&mut self) -> u64 {
        let now = self.clock.now();
        let flush = self.daemon.flush_due(now).then(|| self.sync_all().is_ok());
        self.daemon.ticked(now, flush);
        let end = self.clock.now();
        self.daemon.ran(now, end);
        self.daemon.next_delay_ns(end)
    }

    /// The daemon's counters.
    pub fn daemon_report(&self) -> DaemonStats {
        self.daemon.report()
    }

    // ---- nodes -----------------------------------------------------------------------------

    pub(crate) fn node(&self, id: NodeId) -> Result<&Node> {
        self.nodes.get(&id).ok_or(Error::NotFound)
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> Result<&mut Node> {
        self.nodes.get_mut(&id).ok_or(Error::NotFound)
    }

    /// The node for an entry of directory `dir`, created on first sight.
    pub(crate) fn node_for(&mut self, dir: NodeId, e: &Named) -> Result<NodeId> {
        self.node_at(dir, e.first_slot, e.slot)
    }

    /// The node whose short entry is at `slot` of directory `dir` (long name from `first_slot`).
    pub(crate) fn node_at(&mut self, dir: NodeId, first_slot: u32, slot: u32) -> Result<NodeId> {
        if let Some(&id) = self.by_loc.get(&(dir, slot)) {
            return Ok(id);
        }
        let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
        let at = slot as usize * SLOT;
        let ent = Short::decode(&d.data[at..at + SLOT]);
        let loc = d.sectors[at / SECTOR_SIZE] * SECTOR_SIZE as u64 + (at % SECTOR_SIZE) as u64;
        let node = Node { parent: dir, first_slot, slot, ent, runs: None, open: 0, unlinked: false };
        let id = match self.nodes.entry(loc / SLOT as u64) {
            Entry::Vacant(v) => {
                let id = *v.key();
                v.insert(node);
                id
            }
            Entry::Occupied(_) => {
                let id = self.next_spare;
                self.next_spare += 1;
                self.nodes.insert(id, node);
                id
            }
        };
        self.by_loc.insert((dir, slot), id);
        Ok(id)
    }

    /// The id a listing reports for the entry at `slot` of cached directory `dir`: its node's id,
    /// or else its location-derived id *without* creating a node (listing a big directory then
    /// costs no node records; [`resolve`](Self::resolve) creates one when the id is first used).
    pub(crate) fn listed_id(&mut self, dir: NodeId, first_slot: u32, slot: u32) -> Result<NodeId> {
        if let Some(&id) = self.by_loc.get(&(dir, slot)) {
            return Ok(id);
        }
        let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
        let at = slot as usize * SLOT;
        let id = (d.sectors[at / SECTOR_SIZE] * SECTOR_SIZE as u64 + (at % SECTOR_SIZE) as u64) / SLOT as u64;
        if self.nodes.contains_key(&id) {
            // Held by a node that was renamed away from here: this entry needs a spare id.
            return self.node_at(dir, first_slot, slot);
        }
        Ok(id)
    }

    /// The node's run map, built from its chain on first use.
    pub(crate) fn runs(&mut self, id: NodeId) -> Result<&mut RunMap> {
        let node = self.nodes.get_mut(&id).ok_or(Error::NotFound)?;
        if node.runs.is_none() {
            let first = node.ent.cluster;
            if first != 0 && !self.geo.valid_cluster(first) {
                return Err(Error::Corrupt { block: first as u64 });
            }
            node.runs = Some(RunMap::build(&self.fat, first)?);
        }
        Ok(node.runs.as_mut().expect("just built"))
    }

    /// Forget a node (its entry is gone); returns it.
    pub(crate) fn drop_node(&mut self, id: NodeId) -> Option<Node> {
        self.dirty.remove(&id);
        self.dirs.remove(&id);
        self.nodes.remove(&id)
    }

    /// Write node `id`'s entry into its parent directory.
    pub(crate) fn write_entry(&mut self, id: NodeId) -> Result<()> {
        let Some(n) = self.nodes.get(&id) else { return Ok(()) };
        if id == ROOT || n.unlinked {
            return Ok(());
        }
        let mut slot = [0u8; SLOT];
        n.ent.encode(&mut slot);
        let (parent, at) = (n.parent, n.slot);
        self.write_slots(parent, at, &[slot])
    }

    // ---- directories -----------------------------------------------------------------------

    /// Load directory `id` into the cache (no-op when cached).
    pub(crate) fn load_dir(&mut self, id: NodeId) -> Result<()> {
        if self.dirs.contains_key(&id) {
            return Ok(());
        }
        let n = self.node(id)?;
        if !n.ent.is_dir() {
            return Err(Error::NotADirectory);
        }
        let ss = SECTOR_SIZE as u64;
        let fixed = id == ROOT && self.geo.fat_type != FatType::Fat32;
        let (data, sectors) = if fixed {
            let mut data = vec![0u8; self.geo.root_bytes as usize];
            self.dev_read(self.geo.root_offset, &mut data)?;
            let first = self.geo.root_offset / ss;
            (data, (first..first + self.geo.root_bytes / ss).collect())
        } else {
            if n.ent.cluster == 0 {
                return Err(Error::Corrupt { block: id });
            }
            let cs = self.geo.cluster_size as u64;
            let runs: Vec<(u32, u32)> = self.runs(id)?.runs().collect();
            let total: u64 = runs.iter().map(|r| r.1 as u64 * cs).sum();
            if total > (MAX_DIR_SLOTS * SLOT) as u64 {
                return Err(Error::Corrupt { block: id });
            }
            let mut data = vec![0u8; total as usize];
            let mut sectors = Vec::with_capacity((total / ss) as usize);
            let mut at = 0usize;
            for (c, len) in runs {
                let off = self.geo.cluster_offset(c);
                let bytes = len as usize * cs as usize;
                self.dev_read(off, &mut data[at..at + bytes])?;
                sectors.extend((0..bytes as u64 / ss).map(|i| off / ss + i));
                at += bytes;
            }
            (data, sectors)
        };
        // `parse` yields entries in slot order, as `Dir::entries` keeps them.
        let entries = parse(&data);
        self.dirs.insert(id, Dir { data, sectors, entries, index: None, fixed });
        Ok(())
    }

    /// Overwrite slots starting at `first` in directory `dir` and write the touched sectors.
    pub(crate) fn write_slots(&mut self, dir: NodeId, first: u32, slots: &[[u8; SLOT]]) -> Result<()> {
        self.flush_fat()?;
        let d = self.dirs.get_mut(&dir).ok_or(Error::NotFound)?;
        let start = first as usize * SLOT;
        let end = start + slots.len() * SLOT;
        if end > d.data.len() {
            return Err(Error::InvalidArgument);
        }
        for (i, s) in slots.iter().enumerate() {
            d.data[start + i * SLOT..start + (i + 1) * SLOT].copy_from_slice(s);
        }
        for piece in start / SECTOR_SIZE..end.div_ceil(SECTOR_SIZE) {
            let bytes = &d.data[piece * SECTOR_SIZE..(piece + 1) * SECTOR_SIZE];
            self.dev.write(d.sectors[piece], bytes)?;
        }
        Ok(())
    }

    /// Add one zeroed cluster to directory `dir`.
    pub(crate) fn grow_dir(&mut self, dir: NodeId) -> Result<()> {
        let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
        if d.fixed || d.data.len() + self.geo.cluster_size as usize > MAX_DIR_SLOTS * SLOT {
            return Err(Error::NoSpace);
        }
        let last = self.runs(dir)?.last();
        let c = self.fat.allocate(1, last)?[0];
        self.zero_cluster(c)?;
        self.runs(dir)?.push(c);
        let cs = self.geo.cluster_size as usize;
        let off = self.geo.cluster_offset(c) / SECTOR_SIZE as u64;
        let d = self.dirs.get_mut(&dir).ok_or(Error::NotFound)?;
        d.data.resize(d.data.len() + cs, 0);
        d.sectors.extend((0..(cs / SECTOR_SIZE) as u64).map(|i| off + i));
        Ok(())
    }

    /// First of `n` consecutive free slots in `dir`, growing it when needed.
    pub(crate) fn free_slots(&mut self, dir: NodeId, n: usize) -> Result<u32> {
        loop {
            let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
            let mut run = 0;
            let mut end_seen = false;
            for (i, s) in d.data.chunks_exact(SLOT).enumerate() {
                end_seen |= s[0] == 0;
                if end_seen || s[0] == crate::dirent::DELETED {
                    run += 1;
                    if run == n {
                        return Ok((i + 1 - n) as u32);
                    }
                } else {
                    run = 0;
                }
            }
            self.grow_dir(dir)?;
        }
    }
}

/// Split the byte range `[off, off + len)` into device requests: (sector, offset in that sector,
/// offset in the range, length). A partial first or last sector is its own piece; everything
/// between is one whole-sector piece.
fn pieces(off: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let ss = SECTOR_SIZE as u64;
    let mut pos = off;
    let mut at = 0usize;
    core::iter::from_fn(move || {
        if at >= len {
            return None;
        }
        let in_sec = (pos % ss) as usize;
        let left = len - at;
        let n = if in_sec == 0 && left >= SECTOR_SIZE {
            left - left % SECTOR_SIZE
        } else {
            (SECTOR_SIZE - in_sec).min(left)
        };
        let piece = (pos / ss, in_sec, at, n);
        at += n;
        pos += n as u64;
        Some(piece)
    })
}
