//! Scrub (verify every copy of every block, repair metadata from its ditto copy) and fsck (check
//! every structural invariant, optionally repair).
//!
//! Design: both run on the committed state (pending implicit work is committed first; they refuse
//! to run inside an explicit transaction). Scrub reads every copy raw, so it finds a rotten second
//! copy that normal reads, which stop at the first good copy, would never notice; a bad copy is
//! rewritten in place from a good one (safe: the content is fixed by the checksum in the parent).
//! Data blocks have one copy, so scrub can only report them. Fsck is the reachability and
//! consistency check RedoxFS's leak history argues for: reachable == allocated, no block used twice,
//! directory entries point at live inodes of the right kind, link counts match the entries, extents
//! belong to files and lie inside them, orphans really are unlinked.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use blockdev::BlockDevice;
use protocol::fs::FileType;
use protocol::{Error, Result};

use crate::allocator::Allocator;
use crate::btree::{self, Child, Node};
use crate::extent::Extent;
use crate::names::name_hash;
use crate::ondisk::*;
use crate::read::DIRENT_HDR;
use crate::snapshot::SnapRecord;
use crate::spacemap::SpaceMap;
use crate::Wfs;

/// What fsck found (and fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub tree_nodes: u64,
    pub inodes: u64,
    pub dirents: u64,
    pub extents: u64,
    pub snapshots: u64,
    pub blocks_reachable: u64,
    pub blocks_allocated: u64,
    pub problems: Vec<String>,
    pub repaired: u64,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for FsckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fsck: {} tree nodes, {} inodes, {} entries, {} extents, {} snapshots; {} blocks reachable, {} allocated",
            self.tree_nodes,
            self.inodes,
            self.dirents,
            self.extents,
            self.snapshots,
            self.blocks_reachable,
            self.blocks_allocated
        )?;
        for p in &self.problems {
            writeln!(f, "  problem: {p}")?;
        }
        write!(f, "fsck: {} problems, {} repaired", self.problems.len(), self.repaired)
    }
}

/// What scrub found (and fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    pub node_copies_checked: u64,
    pub node_copies_repaired: u64,
    pub data_blocks_checked: u64,
    pub superblocks_repaired: u64,
    /// The persisted space map failed its checksums and was rebuilt by a walk and rewritten.
    pub space_map_rebuilt: bool,
    /// Blocks that failed with no good copy left (first copy's address).
    pub unrepairable: Vec<u64>,
}

impl ScrubReport {
    pub fn is_clean(&self) -> bool {
        self.unrepairable.is_empty()
    }
}

impl fmt::Display for ScrubReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scrub: {} node copies checked, {} repaired; {} data blocks checked; {} superblocks rewritten; {} unrepairable blocks {:?}",
            self.node_copies_checked,
            self.node_copies_repaired,
            self.data_blocks_checked,
            self.superblocks_repaired,
            self.unrepairable.len(),
            self.unrepairable
        )?;
        if self.space_map_rebuilt {
            write!(f, "; space map rebuilt")?;
        }
        Ok(())
    }
}

struct InodeInfo {
    kind: FileType,
    nlink: u32,
    size: u64,
    blocks: u64,
    parent: u64,
}

#[derive(Default)]
struct Census {
    inodes: BTreeMap<u64, InodeInfo>,
    /// (entry key, target ino, kind in the entry)
    dirents: Vec<(Key, u64, FileType)>,
    /// ino -> (blocks mapped, highest file block, end of the previous extent)
    extents: BTreeMap<u64, (u64, u64, u64)>,
    extent_keys: Vec<Key>,
    orphans: BTreeSet<u64>,
    snaps: Vec<BlockPtr>,
}

impl<D: BlockDevice> Wfs<D> {
    fn quiesce(&mut self) -> Result<()> {
        if self.tx.is_some() {
            return Err(Error::Busy);
        }
        self.commit()
    }

    /// Check every invariant of the committed filesystem; with `repair`, fix what can be fixed.
    pub fn fsck(&mut self, repair: bool) -> Result<FsckReport> {
        self.quiesce()?;
        let mut r = FsckReport::default();
        let mut c = Census::default();
        let mut reach = Allocator::new(self.st.alloc.total());
        for b in superblock_addrs(reach.total()) {
            reach.mark(b);
        }
        let root = self.committed.root;
        let total = reach.total();
        let mut problems = Vec::new();
        let walked = btree::walk(&mut self.st, &root, None, &mut |_, ptr, node| {
            r.tree_nodes += 1;
            for a in ptr.copies() {
                if !reach.mark(a) {
                    problems.push(format!("tree block {a} is used twice or out of range"));
                }
            }
            if let Node::Leaf { items, .. } = node {
                for (k, v) in items {
                    census_item(&mut c, &mut reach, total, k, v, &mut problems);
                }
            }
            Ok(true)
        });
        if let Err(e) = walked {
            r.problems.push(format!("live tree unreadable: {e}"));
            return Ok(r);
        }
        r.problems.append(&mut problems);
        r.snapshots = c.snaps.len() as u64;
        for s in c.snaps.clone() {
            let res = btree::walk(&mut self.st, &s, None, &mut |_, ptr, node| {
                let mut fresh = false;
                for a in ptr.copies() {
                    fresh |= reach.mark(a);
                }
                if fresh {
                    if let Node::Leaf { items, .. } = node {
                        for (k, v) in items.iter().filter(|(k, _)| k.kind == KIND_EXTENT && k.oid != META_OID) {
                            if let Ok(e) = Extent::decode(k.off, v) {
                                for (_, p) in e.blocks() {
                                    reach.mark(p.addr);
                                }
                            }
                        }
                    }
                }
                Ok(fresh)
            });
            if let Err(e) = res {
                r.problems.push(format!("snapshot tree at block {} unreadable: {e}", s.addr));
                return Ok(r);
            }
        }
        for a in self.map.addrs() {
            if !reach.mark(a) {
                r.problems.push(format!("space map block {a} is also used by a tree"));
            }
        }
        r.inodes = c.inodes.len() as u64;
        r.dirents = c.dirents.len() as u64;
        r.extents = c.extent_keys.len() as u64;
        let fixes = self.check_census(&c, &mut r);
        // Reachable == allocated.
        let mut leaked = 0u64;
        for b in 0..total {
            match (reach.is_used(b), self.st.alloc.is_used(b)) {
                (true, false) => r.problems.push(format!("block {b} is in use but marked free")),
                (false, true) => leaked += 1,
                _ => {}
            }
        }
        if leaked > 0 {
            r.problems.push(format!("{leaked} blocks allocated but unreachable (leaked)"));
        }
        r.blocks_reachable = total - reach.free_blocks();
        r.blocks_allocated = total - self.st.alloc.free_blocks();
        let map_ok = self.check_space_map(&reach, &mut r);
        if repair && !r.problems.is_empty() {
            r.repaired = self.apply_fixes(fixes)?;
            self.commit()?;
            if !map_ok {
                // Not trusted: the rebuilt map gets all new blocks.
                self.map = SpaceMap::new(total);
            }
            // Recompute the allocation from the repaired trees and persist it as a new map.
            self.rebuild_allocator()?;
            self.commit()?;
            if leaked > 0 || !map_ok {
                r.repaired += 1;
            }
        }
        Ok(r)
    }

    /// Compare the persisted space map of the committed state with the walk's reachable set.
    fn check_space_map(&mut self, reach: &Allocator, r: &mut FsckReport) -> bool {
        let sb = self.committed;
        let total = reach.total();
        let map = match SpaceMap::load(&mut self.st, sb.space_map, sb.map_levels, total) {
            Ok((_, map)) => map,
            Err(e) => {
                r.problems.push(format!("space map unreadable: {e}"));
                return false;
            }
        };
        let (mut free_but_used, mut used_but_free) = (0u64, 0u64);
        for b in 0..total {
            match (reach.is_used(b), map.is_used(b)) {
                (true, false) => free_but_used += 1,
                (false, true) => used_but_free += 1,
                _ => {}
            }
        }
        if free_but_used > 0 {
            r.problems.push(format!("space map records {free_but_used} blocks in use as free"));
        }
        if used_but_free > 0 {
            r.problems.push(format!("space map records {used_but_free} unreachable blocks as used"));
        }
        free_but_used == 0 && used_but_free == 0
    }

    fn check_census(&mut self, c: &Census, r: &mut FsckReport) -> Fixes {
        let mut fx = Fixes::default();
        let mut refs: BTreeMap<u64, u32> = BTreeMap::new();
        let mut subdirs: BTreeMap<u64, u32> = BTreeMap::new();
        for (k, ino, kind) in &c.dirents {
            match c.inodes.get(&k.oid) {
                Some(d) if d.kind == FileType::Directory => {}
                _ => {
                    r.problems.push(format!("entry {:#x} in {} which is not a directory", k.off, k.oid));
                    fx.remove.push(*k);
                    continue;
                }
            }
            match c.inodes.get(ino) {
                Some(t) if t.kind == *kind => {
                    *refs.entry(*ino).or_default() += 1;
                    if *kind == FileType::Directory {
                        *subdirs.entry(k.oid).or_default() += 1;
                        if t.parent != k.oid {
                            r.problems.push(format!("directory {ino} is in {} but records parent {}", k.oid, t.parent));
                        }
                    }
                }
                _ => {
                    r.problems.push(format!("entry in {} points to missing or mistyped inode {ino}", k.oid));
                    fx.remove.push(*k);
                }
            }
        }
        for (&ino, i) in &c.inodes {
            if ino >= self.committed.next_ino {
                r.problems.push(format!("inode {ino} is beyond the inode counter"));
            }
            let nrefs = refs.get(&ino).copied().unwrap_or(0);
            let want = if i.kind == FileType::Directory {
                if ino != ROOT_INO && nrefs != 1 {
                    r.problems.push(format!("directory {ino} has {nrefs} entries"));
                }
                if nrefs == 0 && ino != ROOT_INO {
                    0
                } else {
                    2 + subdirs.get(&ino).copied().unwrap_or(0)
                }
            } else {
                nrefs
            };
            if ino == ROOT_INO && nrefs != 0 {
                r.problems.push("the root directory has an entry".into());
            }
            if want == 0 && ino != ROOT_INO {
                if !c.orphans.contains(&ino) || i.nlink != 0 {
                    r.problems.push(format!("inode {ino} is unreachable"));
                    fx.delete.push(ino);
                }
                continue;
            }
            let (n, maxfb, _) = c.extents.get(&ino).copied().unwrap_or((0, 0, 0));
            let mut fixed = None;
            if i.nlink != want {
                r.problems.push(format!("inode {ino} has nlink {} but {want} links", i.nlink));
                fixed = Some(want);
            }
            if n != i.blocks {
                r.problems.push(format!("inode {ino} counts {} blocks but its extents map {n}", i.blocks));
                fixed = Some(want);
            }
            if n > 0 && (i.kind != FileType::File || maxfb >= i.size.div_ceil(BLOCK_SIZE as u64)) {
                r.problems.push(format!("inode {ino} has extents beyond its end or is not a file"));
            }
            if let Some(nl) = fixed {
                fx.relink.push((ino, nl, n));
            }
        }
        for k in &c.extent_keys {
            if !c.inodes.contains_key(&k.oid) {
                r.problems.push(format!("extent of missing inode {}", k.oid));
                fx.remove.push(*k);
            }
        }
        for o in &c.orphans {
            if c.inodes.get(o).is_none_or(|i| i.nlink != 0) {
                r.problems.push(format!("orphan record for inode {o} which is missing or linked"));
                fx.remove.push(Key::new(META_OID, KIND_ORPHAN, *o));
            }
        }
        fx
    }

    fn apply_fixes(&mut self, fx: Fixes) -> Result<u64> {
        let mut n = 0;
        for k in fx.remove {
            if k.kind == KIND_EXTENT {
                if let Some(v) = btree::get(&mut self.st, &self.root, &k)? {
                    if let Ok(e) = Extent::decode(k.off, &v) {
                        for (_, p) in e.blocks() {
                            self.st.release(&p);
                        }
                    }
                }
            }
            self.tree_remove(&k)?;
            n += 1;
        }
        for (ino, nlink, blocks) in fx.relink {
            let mut i = self.get_inode(ino)?;
            i.nlink = nlink;
            i.blocks = blocks;
            self.put_inode(ino, &i)?;
            n += 1;
        }
        for ino in fx.delete {
            self.delete_inode(ino)?;
            n += 1;
        }
        Ok(n)
    }

    /// Read every copy of every tree node and every data block; rewrite bad node copies from a
    /// good one and stale or damaged superblocks from the committed state.
    pub fn scrub(&mut self) -> Result<ScrubReport> {
        self.quiesce()?;
        let mut r = ScrubReport::default();
        let mut seen = BTreeSet::new();
        let mut snaps = Vec::new();
        let root = self.committed.root;
        self.scrub_node(&root, None, &mut r, &mut seen, Some(&mut snaps))?;
        for s in snaps {
            self.scrub_node(&s, None, &mut r, &mut seen, None)?;
        }
        let total = self.st.alloc.total();
        let mut buf = vec![0u8; BLOCK_SIZE];
        for (i, addr) in superblock_addrs(total).into_iter().enumerate() {
            let ok = self.st.read_raw(addr, &mut buf).is_ok()
                && Superblock::decode(&buf, addr)
                    .is_ok_and(|sb| sb.txid == self.committed.txid && sb.index as usize == i);
            if !ok {
                let sb = Superblock { index: i as u32, ..self.committed };
                self.st.write_raw(addr, &sb.encode())?;
                r.superblocks_repaired += 1;
            }
        }
        self.st.dev.flush()?;
        let (sb, total) = (self.committed, self.st.alloc.total());
        if SpaceMap::load(&mut self.st, sb.space_map, sb.map_levels, total).is_err() {
            self.map = SpaceMap::new(total);
            self.rebuild_allocator()?;
            self.commit()?;
            r.space_map_rebuilt = true;
        }
        Ok(r)
    }

    fn scrub_node(
        &mut self,
        ptr: &BlockPtr,
        level: Option<u8>,
        r: &mut ScrubReport,
        seen: &mut BTreeSet<u64>,
        mut snaps: Option<&mut Vec<BlockPtr>>,
    ) -> Result<()> {
        if !seen.insert(ptr.addr) {
            return Ok(());
        }
        let mut good: Option<Vec<u8>> = None;
        let mut bad = Vec::new();
        for a in ptr.copies() {
            r.node_copies_checked += 1;
            let mut buf = vec![0u8; BLOCK_SIZE];
            let ok = a != 0
                && a < self.st.alloc.total() - 1
                && self.st.read_raw(a, &mut buf).is_ok()
                && self.st.csum.of(&buf) == ptr.crc;
            if ok {
                good.get_or_insert(buf);
            } else {
                bad.push(a);
            }
        }
        let Some(buf) = good else {
            r.unrepairable.push(ptr.addr);
            return Ok(());
        };
        for a in bad {
            if a != 0 && a < self.st.alloc.total() - 1 {
                self.st.write_raw(a, &buf)?;
                r.node_copies_repaired += 1;
            }
        }
        let node = match Node::decode(&buf, ptr) {
            Ok(n) if level.is_none_or(|l| l == n.level()) => n,
            _ => {
                r.unrepairable.push(ptr.addr);
                return Ok(());
            }
        };
        match node {
            Node::Leaf { items, .. } => {
                let mut data = vec![0u8; BLOCK_SIZE];
                for (k, v) in items {
                    if k.kind == KIND_EXTENT && k.oid != META_OID {
                        let e = Extent::decode(k.off, &v)?;
                        for (_, p) in e.blocks() {
                            if !seen.insert(p.addr) {
                                continue;
                            }
                            r.data_blocks_checked += 1;
                            if crate::read::read_run(&mut self.st, &[p], &mut data).is_err() {
                                r.unrepairable.push(p.addr);
                            }
                        }
                    } else if k.oid == META_OID && k.kind == KIND_SNAPSHOT {
                        if let (Some(s), Ok(rec)) = (snaps.as_deref_mut(), SnapRecord::decode(&v)) {
                            s.push(rec.root);
                        }
                    }
                }
            }
            Node::Internal { level, children } => {
                for (_, c) in children {
                    if let Child::Disk(p) = c {
                        self.scrub_node(&p, Some(level - 1), r, seen, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Fixes {
    remove: Vec<Key>,
    relink: Vec<(u64, u32, u64)>,
    delete: Vec<u64>,
}

fn census_item(c: &mut Census, reach: &mut Allocator, total: u64, k: &Key, v: &[u8], problems: &mut Vec<String>) {
    match (k.oid, k.kind) {
        (META_OID, KIND_ORPHAN) => {
            c.orphans.insert(k.off);
        }
        (META_OID, KIND_SNAPSHOT) => match SnapRecord::decode(v) {
            Ok(s) => c.snaps.push(s.root),
            Err(_) => problems.push("bad snapshot record".into()),
        },
        (META_OID, _) => problems.push(format!("unknown metadata item kind {}", k.kind)),
        (ino, KIND_INODE) => match Inode::decode(v) {
            Ok(i) => {
                c.inodes.insert(
                    ino,
                    InodeInfo { kind: i.kind, nlink: i.nlink, size: i.size, blocks: i.blocks, parent: i.parent },
                );
            }
            Err(_) => problems.push(format!("inode {ino} does not decode")),
        },
        (dir, KIND_DIRENT) => {
            if v.len() < DIRENT_HDR {
                problems.push(format!("short entry in directory {dir}"));
                return;
            }
            match kind_from_code(v[8]) {
                Some(kind) if name_hash(&v[DIRENT_HDR..]) == k.off & !0xffff => {
                    c.dirents.push((*k, get_u64(v, 0), kind))
                }
                _ => problems.push(format!("entry {:#x} in directory {dir} has a bad kind or hash", k.off)),
            }
        }
        (ino, KIND_EXTENT) => {
            c.extent_keys.push(*k);
            match Extent::decode(k.off, v) {
                Ok(x) if x.on_device(total) => {
                    let e = c.extents.entry(ino).or_insert((0, 0, 0));
                    e.0 += x.len();
                    e.1 = e.1.max(x.end() - 1);
                    // Items overlapping the previous one of the same file map a block twice.
                    if e.2 > x.start {
                        problems.push(format!("extent {} of inode {ino} overlaps the previous one", k.off));
                    }
                    e.2 = x.end();
                    for (_, p) in x.blocks() {
                        if !reach.mark(p.addr) {
                            problems.push(format!("data block {} of inode {ino} is used twice", p.addr));
                        }
                    }
                }
                Ok(_) => problems.push(format!("extent {} of inode {ino} points outside the device", k.off)),
                Err(_) => problems.push(format!("extent {} of inode {ino} does not decode", k.off)),
            }
        }
        (_, kind) => problems.push(format!("unknown item kind {kind}")),
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use blockdev::RamDisk;
    use protocol::fs::{FileSystem, FixedClock, NewNode, Timespec};

    use super::*;
    use crate::read::encode_dirent;
    use crate::FormatOptions;

    fn fs() -> Wfs<RamDisk> {
        let clock = Box::new(FixedClock(Timespec::new(5, 0)));
        Wfs::format(RamDisk::new(4096), &FormatOptions::default(), clock).unwrap()
    }

    #[test]
    fn wrong_link_count_is_found_and_repaired() {
        let mut fs = fs();
        let f = fs.create(ROOT_INO, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        let mut i = fs.get_inode(f).unwrap();
        i.nlink = 3;
        fs.put_inode(f, &i).unwrap();
        let r = fs.fsck(false).unwrap();
        assert!(r.problems.iter().any(|p| p.contains("nlink 3 but 1")), "{r}");
        let r = fs.fsck(true).unwrap();
        assert!(r.repaired >= 1, "{r}");
        assert!(fs.fsck(false).unwrap().is_clean());
        assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    }

    #[test]
    fn dangling_entry_and_leaked_block_are_found_and_repaired() {
        let mut fs = fs();
        let key = crate::names::free_key(&mut fs.st, &fs.root, ROOT_INO, KIND_DIRENT, b"ghost").unwrap();
        fs.tree_insert(key, encode_dirent(999, FileType::File, "ghost")).unwrap();
        fs.commit().unwrap();
        let leaked = fs.st.alloc(0).unwrap();
        let r = fs.fsck(false).unwrap();
        assert!(r.problems.iter().any(|p| p.contains("missing or mistyped inode 999")), "{r}");
        assert!(r.problems.iter().any(|p| p.contains("1 blocks allocated but unreachable")), "{r}");
        fs.fsck(true).unwrap();
        let r = fs.fsck(false).unwrap();
        assert!(r.is_clean(), "{r}");
        assert!(!fs.st.alloc.is_used(leaked));
    }

    #[test]
    fn unreachable_inode_is_deleted_by_repair() {
        let mut fs = fs();
        let f = fs.create(ROOT_INO, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        fs.write(f, 0, &[7u8; 10_000]).unwrap();
        let e = crate::read::dir_lookup(&mut fs.st, &fs.root, ROOT_INO, "f").unwrap().unwrap();
        fs.tree_remove(&e.key).unwrap();
        let r = fs.fsck(false).unwrap();
        assert!(r.problems.iter().any(|p| p.contains(&format!("inode {f} is unreachable"))), "{r}");
        fs.fsck(true).unwrap();
        assert!(fs.fsck(false).unwrap().is_clean());
        assert_eq!(fs.getattr(f), Err(Error::NotFound));
    }
}
