//! Resolving a node id to its directory entry, on disk when its directory is not cached.
//!
//! Design: an id is the device byte offset of a short entry divided by 32, so it names a sector
//! and a slot in it, but not the directory that owns the sector; FAT keeps no back pointers that
//! can be trusted (`..` may be stale on images written by other tools). Ids of directories loaded
//! since mount are found in the cache. Otherwise, after cheap checks on the location itself (in
//! the fixed root region or in an allocated data cluster, inside the volume), directories are
//! loaded breadth-first from the root until one holds the sector. Each directory is entered once
//! per first cluster, so a corrupt image whose entries form a cycle cannot loop, and the total
//! work is bounded by the directories on the volume. The directories loaded stay cached, so a
//! burst of re-opens after a server restart pays for the walk once.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::fs::NodeId;
use protocol::{Error, Result};

use crate::dirent::{Short, SLOT};
use crate::table::Entry;
use crate::volume::{FatFs, ROOT, SPARE_IDS};

impl<D: BlockDevice> FatFs<D> {
    /// Make sure node `id` has a record: ids handed out by a listing, or by an earlier run of the
    /// server, get theirs here, found by their entry's location. Ids that do not name the short
    /// entry of a live name are `NotFound`.
    pub(crate) fn resolve(&mut self, id: NodeId) -> Result<()> {
        if self.nodes.contains_key(&id) {
            return Ok(());
        }
        if id >= SPARE_IDS {
            return Err(Error::NotFound);
        }
        let off = id * SLOT as u64;
        let (sector, in_sec) = (off / SECTOR_SIZE as u64, (off % SECTOR_SIZE as u64) as usize);
        let cached: Vec<NodeId> = self.dirs.keys().copied().collect();
        let mut found = cached.into_iter().find_map(|dir| self.slot_at(dir, sector, in_sec));
        if found.is_none() && self.plausible_entry_sector(off) {
            found = self.search_disk(sector, in_sec)?;
        }
        let (dir, first_slot, slot) = found.ok_or(Error::NotFound)?;
        if self.node_at(dir, first_slot, slot)? == id {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// Whether byte offset `off` can hold a directory entry at all: inside the FAT12/16 root
    /// region, or inside an allocated data cluster of the volume.
    fn plausible_entry_sector(&self, off: u64) -> bool {
        let g = &self.geo;
        if off >= g.root_offset && off < g.root_offset + g.root_bytes {
            return true;
        }
        if off < g.data_offset {
            return false;
        }
        let c = (off - g.data_offset) / g.cluster_size as u64 + 2;
        let Ok(c) = u32::try_from(c) else { return false };
        g.valid_cluster(c) && matches!(self.fat.get(c), Ok(Entry::Next(_) | Entry::End))
    }

    /// The (directory, first slot, slot) of a live short entry at `in_sec` of device `sector`,
    /// when `sector` belongs to cached directory `dir`.
    fn slot_at(&self, dir: NodeId, sector: u64, in_sec: usize) -> Option<(NodeId, u32, u32)> {
        let d = self.dirs.get(&dir)?;
        let piece = d.sectors.iter().position(|&s| s == sector)?;
        let slot = ((piece * SECTOR_SIZE + in_sec) / SLOT) as u32;
        // `entries` holds only live short entries (no LFN slots, deleted names, `.` or `..`).
        let i = d.entries.binary_search_by_key(&slot, |e| e.slot).ok()?;
        Some((dir, d.entries[i].first_slot, slot))
    }

    /// Load directories breadth-first from the root until one owns `sector`.
    fn search_disk(&mut self, sector: u64, in_sec: usize) -> Result<Option<(NodeId, u32, u32)>> {
        let mut seen = BTreeSet::new();
        seen.insert(self.node(ROOT)?.ent.cluster);
        let mut queue = VecDeque::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            match self.load_dir(dir) {
                Ok(()) => {}
                // A damaged subtree hides only what is under it.
                Err(Error::Corrupt { .. }) => continue,
                Err(e) => return Err(e),
            }
            if let Some(found) = self.slot_at(dir, sector, in_sec) {
                return Ok(Some(found));
            }
            let d = &self.dirs[&dir];
            let subdirs: Vec<_> = d
                .entries
                .iter()
                .filter_map(|e| {
                    let at = e.slot as usize * SLOT;
                    let ent = Short::decode(&d.data[at..at + SLOT]);
                    (ent.is_dir() && self.geo.valid_cluster(ent.cluster)).then_some((e.first_slot, e.slot, ent.cluster))
                })
                .collect();
            for (first_slot, slot, cluster) in subdirs {
                if seen.insert(cluster) {
                    queue.push_back(self.node_at(dir, first_slot, slot)?);
                }
            }
        }
        Ok(None)
    }
}
