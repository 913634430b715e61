//! The [`FileSystem`] operations on top of the volume, directory and file layers.
//!
//! Design: every operation validates its arguments and the node kinds before the first write, so a
//! refused call changes nothing. FAT has no links, symlinks, special files, owners or permission
//! bits: those report `NotSupported`; the read-only attribute maps to the write bits of the mode
//! (clearing every write bit sets it). A rename removes the source entry before writing the new
//! one (a crash in between loses the name, never duplicates a chain), and a directory moved to a
//! new parent gets its `..` entry rewritten. Unlinked files that are still open keep their
//! clusters until `release` and report no links meanwhile. POSIX details FAT does not store are
//! derived: a directory's link count is 2 + its subdirectories, and adding or removing a name
//! moves the directory's modification time (reported as ctime too). A name too long to exist is
//! `NameTooLong` on lookup as well as on create.

use alloc::vec::Vec;
use blockdev::BlockDevice;
use protocol::fs::{Capabilities, DirEntry, FileSystem, FileType, FsStats, NewNode, NodeId, SetAttr, Stat};
use protocol::{Error, Result};

use crate::dirent::{from_dos, to_dos, Short, ATTR_ARCHIVE, ATTR_DIR, ATTR_READ_ONLY, SLOT};
use crate::volume::{FatFs, Node, ROOT};

/// `subdirs`: how many subdirectories a directory holds (FAT stores no link count; like Linux
/// vfat, a directory reports 2 + that, for its name, its `.` and each child's `..`).
fn stat_of(id: NodeId, n: &Node, cluster_size: u32, subdirs: u32) -> Stat {
    let dir = n.ent.is_dir();
    let mut mode = if dir { 0o755 } else { 0o644 };
    if n.ent.attr & ATTR_READ_ONLY != 0 {
        mode &= !0o222;
    }
    let size = if dir { 0 } else { n.ent.size as u64 };
    let cs = cluster_size as u64;
    let mtime = from_dos(n.ent.wdate, n.ent.wtime, 0);
    Stat {
        ino: id,
        kind: if dir { FileType::Directory } else { FileType::File },
        mode,
        // An unlinked file that is still open has no name left (POSIX: st_nlink 0).
        nlink: if dir {
            2 + subdirs
        } else if n.unlinked {
            0
        } else {
            1
        },
        uid: 0,
        gid: 0,
        size,
        blocks: size.div_ceil(cs) * cs / 512,
        rdev: 0,
        atime: from_dos(n.ent.adate, 0, 0),
        mtime,
        ctime: mtime,
        crtime: from_dos(n.ent.cdate, n.ent.ctime, n.ent.ctime_tenth),
    }
}

impl<D: BlockDevice> FatFs<D> {
    fn stat(&mut self, id: NodeId) -> Result<Stat> {
        // A directory that cannot be read still has attributes (as in Linux vfat): it counts no
        // subdirectories, and the error surfaces when its contents are looked at.
        let subdirs = if self.node(id)?.ent.is_dir() && self.load_dir(id).is_ok() {
            let d = self.dirs.get(&id).ok_or(Error::NotFound)?;
            let is_sub = |e: &&crate::dirent::Named| d.data[e.slot as usize * SLOT + 11] & ATTR_DIR != 0;
            d.entries.iter().filter(is_sub).count() as u32
        } else {
            0
        };
        Ok(stat_of(id, self.node(id)?, self.geo.cluster_size, subdirs))
    }

    /// First cluster of directory `id` as `..` entries record it (0 for the root).
    fn dir_cluster(&self, id: NodeId) -> Result<u32> {
        Ok(if id == ROOT { 0 } else { self.node(id)?.ent.cluster })
    }

    /// Drop a node whose name is gone, freeing its clusters unless it is still open.
    fn retire(&mut self, id: NodeId) -> Result<()> {
        let open = self.node(id)?.open > 0;
        if open {
            let n = self.node_mut(id)?;
            n.unlinked = true;
            self.dirty.remove(&id);
            return Ok(());
        }
        if let Some(n) = self.drop_node(id) {
            if n.ent.cluster != 0 {
                self.fat.free_chain(n.ent.cluster)?;
            }
        }
        Ok(())
    }

    /// A name was added to or removed from directory `dir`: move its modification time (which
    /// FAT also reports as ctime). The entry reaches the disk at the next commit; the root has no
    /// entry, so its new time lasts only while mounted.
    fn touch_dir(&mut self, dir: NodeId) -> Result<()> {
        let (d, t, _) = to_dos(self.clock.now());
        let n = self.node_mut(dir)?;
        n.ent.wdate = d;
        n.ent.wtime = t;
        if dir != ROOT {
            self.dirty.insert(dir);
        }
        Ok(())
    }

    /// Is `id` equal to `ancestor` or below it?
    fn is_within(&self, mut id: NodeId, ancestor: NodeId) -> bool {
        for _ in 0..4096 {
            if id == ancestor {
                return true;
            }
            match self.nodes.get(&id) {
                Some(n) if id != ROOT => id = n.parent,
                _ => return false,
            }
        }
        true
    }

    fn make_dir_cluster(&mut self, parent: NodeId, ent: &Short) -> Result<u32> {
        let c = self.fat.allocate(1, None)?[0];
        self.zero_cluster(c)?;
        let mut dots = [0u8; 2 * SLOT];
        let mut dot = *ent;
        dot.name = *b".          ";
        dot.cluster = c;
        dot.encode(&mut dots[..SLOT]);
        dot.name = *b"..         ";
        dot.cluster = self.dir_cluster(parent)?;
        dot.encode(&mut dots[SLOT..]);
        self.dev_write(self.geo.cluster_offset(c), &dots)?;
        Ok(c)
    }
}

impl<D: BlockDevice> FileSystem for FatFs<D> {
    fn root(&self) -> NodeId {
        ROOT
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn lookup(&mut self, dir: NodeId, name: &str) -> Result<Stat> {
        self.resolve(dir)?;
        let e = self.find(dir, name)?;
        let id = self.node_for(dir, &e)?;
        self.stat(id)
    }

    fn getattr(&mut self, node: NodeId) -> Result<Stat> {
        self.resolve(node)?;
        self.stat(node)
    }

    fn setattr(&mut self, node: NodeId, attr: SetAttr) -> Result<Stat> {
        self.resolve(node)?;
        let n = self.node(node)?;
        if attr.uid.is_some_and(|u| u != 0) || attr.gid.is_some_and(|g| g != 0) {
            return Err(Error::NotSupported);
        }
        if attr.size.is_some() && n.ent.is_dir() {
            return Err(Error::IsADirectory);
        }
        if node == ROOT {
            return self.stat(node);
        }
        if let Some(size) = attr.size {
            self.truncate(node, size)?;
        }
        if attr.mode.is_some() || attr.mtime.is_some() || attr.atime.is_some() {
            self.begin_change()?;
            let n = self.node_mut(node)?;
            if let Some(mode) = attr.mode {
                if mode & 0o222 == 0 {
                    n.ent.attr |= ATTR_READ_ONLY;
                } else {
                    n.ent.attr &= !ATTR_READ_ONLY;
                }
            }
            if let Some(t) = attr.mtime {
                let (d, tm, _) = to_dos(t);
                n.ent.wdate = d;
                n.ent.wtime = tm;
            }
            if let Some(t) = attr.atime {
                n.ent.adate = to_dos(t).0;
            }
            self.dirty.insert(node);
        }
        self.stat(node)
    }

    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.resolve(node)?;
        self.read_file(node, offset, buf)
    }

    fn write(&mut self, node: NodeId, offset: u64, data: &[u8]) -> Result<usize> {
        self.resolve(node)?;
        self.write_file(node, offset, data)
    }

    fn create(&mut self, dir: NodeId, name: &str, node: &NewNode) -> Result<Stat> {
        self.resolve(dir)?;
        let is_dir = match node.kind {
            FileType::File => false,
            FileType::Directory => true,
            _ => return Err(Error::NotSupported),
        };
        crate::name::validate(name)?;
        match self.find(dir, name) {
            Ok(_) => return Err(Error::AlreadyExists),
            Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
        self.begin_change()?;
        let mut ent = Short { attr: if is_dir { ATTR_DIR } else { ATTR_ARCHIVE }, ..Default::default() };
        if node.mode & 0o222 == 0 {
            ent.attr |= ATTR_READ_ONLY;
        }
        ent.stamp_all(self.clock.now());
        if is_dir {
            ent.cluster = self.make_dir_cluster(dir, &ent)?;
        }
        let named = match self.insert_entry(dir, name, ent) {
            Ok((named, _)) => named,
            Err(e) => {
                if ent.cluster != 0 {
                    self.fat.free_chain(ent.cluster)?;
                }
                return Err(e);
            }
        };
        self.touch_dir(dir)?;
        let id = self.node_for(dir, &named)?;
        self.stat(id)
    }

    fn unlink(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.resolve(dir)?;
        let e = self.find(dir, name)?;
        let id = self.node_for(dir, &e)?;
        if self.node(id)?.ent.is_dir() {
            return Err(Error::IsADirectory);
        }
        self.begin_change()?;
        self.remove_entry(dir, &e)?;
        self.touch_dir(dir)?;
        self.retire(id)
    }

    fn rmdir(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.resolve(dir)?;
        let e = self.find(dir, name)?;
        let id = self.node_for(dir, &e)?;
        if !self.node(id)?.ent.is_dir() {
            return Err(Error::NotADirectory);
        }
        if !self.dir_is_empty(id)? {
            return Err(Error::DirectoryNotEmpty);
        }
        self.begin_change()?;
        self.remove_entry(dir, &e)?;
        self.touch_dir(dir)?;
        self.node_mut(id)?.open = 0;
        self.retire(id)
    }

    fn rename(&mut self, from_dir: NodeId, from: &str, to_dir: NodeId, to: &str) -> Result<()> {
        self.resolve(from_dir)?;
        self.resolve(to_dir)?;
        crate::name::validate(to)?;
        let src = self.find(from_dir, from)?;
        let src_id = self.node_for(from_dir, &src)?;
        self.load_dir(to_dir)?;
        let src_is_dir = self.node(src_id)?.ent.is_dir();
        if src_is_dir && self.is_within(to_dir, src_id) {
            return Err(Error::InvalidArgument);
        }
        let target = match self.find(to_dir, to) {
            Ok(t) if from_dir == to_dir && t.slot == src.slot => None,
            Ok(t) => Some(t),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        };
        if target.is_none() && from_dir == to_dir && from == to {
            return Ok(());
        }
        let tgt_id = match &target {
            Some(t) => {
                let id = self.node_for(to_dir, t)?;
                let tgt_dir = self.node(id)?.ent.is_dir();
                match (src_is_dir, tgt_dir) {
                    (false, true) => return Err(Error::IsADirectory),
                    (true, false) => return Err(Error::NotADirectory),
                    (true, true) if !self.dir_is_empty(id)? => return Err(Error::DirectoryNotEmpty),
                    _ => {}
                }
                Some(id)
            }
            None => None,
        };
        self.begin_change()?;
        self.remove_entry(from_dir, &src)?;
        if let Some(t) = &target {
            self.remove_entry(to_dir, t)?;
        }
        // `..` changes while the directory has no name anywhere: a cut leaves it lost, not wrong.
        if src_is_dir && from_dir != to_dir {
            self.load_dir(src_id)?;
            let up = self.dir_cluster(to_dir)?;
            let d = self.dirs.get(&src_id).ok_or(Error::NotFound)?;
            let mut dotdot = Short::decode(&d.data[SLOT..2 * SLOT]);
            if &dotdot.name == b"..         " {
                dotdot.cluster = up;
                let mut raw = [0u8; SLOT];
                dotdot.encode(&mut raw);
                self.write_slots(src_id, 1, &[raw])?;
            }
        }
        let ent = self.node(src_id)?.ent;
        let (named, written) = self.insert_entry(to_dir, to, ent)?;
        self.dirty.remove(&src_id);
        let n = self.node_mut(src_id)?;
        n.parent = to_dir;
        n.slot = named.slot;
        n.first_slot = named.first_slot;
        n.ent = written;
        self.by_loc.insert((to_dir, named.slot), src_id);
        self.touch_dir(from_dir)?;
        self.touch_dir(to_dir)?;
        if let Some(id) = tgt_id {
            self.retire(id)?;
        }
        Ok(())
    }

    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.resolve(dir)?;
        self.load_dir(dir)?;
        let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
        let start = d.entries.partition_point(|e| (e.slot as u64) < cookie);
        let end = d.entries.len().min(start.saturating_add(max));
        let mut out = Vec::with_capacity(end - start);
        for i in start..end {
            let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
            let e = &d.entries[i];
            let (name, first_slot, slot) = (e.name.clone(), e.first_slot, e.slot);
            let attr = d.data[slot as usize * SLOT + 11];
            let kind = if attr & ATTR_DIR != 0 { FileType::Directory } else { FileType::File };
            let id = self.listed_id(dir, first_slot, slot)?;
            out.push(DirEntry { name, ino: id, kind, next_cookie: slot as u64 + 1 });
        }
        Ok(out)
    }

    fn fsync(&mut self, node: NodeId) -> Result<()> {
        self.resolve(node)?;
        self.node(node)?;
        self.sync_all()
    }

    fn sync(&mut self) -> Result<()> {
        self.sync_all()
    }

    fn background(&mut self) -> Option<u64> {
        Some(FatFs::background(self))
    }

    fn daemon_stats(&mut self) -> Result<protocol::daemon::DaemonStats> {
        Ok(self.daemon_report())
    }

    fn statfs(&mut self) -> Result<FsStats> {
        Ok(FsStats {
            block_size: self.geo.cluster_size,
            total_blocks: self.geo.clusters as u64,
            free_blocks: self.fat.free_count() as u64,
            total_nodes: 0,
            free_nodes: 0,
            max_name_len: crate::name::MAX_LFN as u32,
        })
    }

    fn open(&mut self, node: NodeId) -> Result<()> {
        self.resolve(node)?;
        self.node_mut(node)?.open += 1;
        Ok(())
    }

    fn release(&mut self, node: NodeId) -> Result<()> {
        self.resolve(node)?;
        let n = self.node_mut(node)?;
        n.open = n.open.saturating_sub(1);
        if n.open == 0 && n.unlinked {
            self.retire(node)?;
        }
        Ok(())
    }
}
