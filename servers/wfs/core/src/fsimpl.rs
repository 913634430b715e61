//! `protocol::fs::FileSystem` for the live filesystem: namespace operations and transactions.
//!
//! Design: every mutating call checks all its preconditions before it changes the tree, so a
//! rejected call changes nothing, and runs between `begin_op` and `end_op` (`mutation`), so a call that fails
//! part-way (an I/O error, a damaged node) leaves the in-memory state exactly as it was; the changes it makes join the current commit group (or the
//! explicit transaction) and `op_done` decides whether the group is big enough to commit. Link
//! counts follow POSIX: a directory has 2 + its subdirectories; a node whose count reaches zero
//! while the VFS holds it open goes on the orphan list and is freed by `release` (or at mount).

use alloc::string::String;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::api::filesystem::{ScrubSummary, SnapshotInfo, MAX_UNREPAIRABLE_LISTED};
use protocol::fs::{Capabilities, DirEntry, FileSystem, FileType, FsStats, NewNode, NodeId, SetAttr, Stat, TxId};
use protocol::{Error, Result};

use crate::names::{self, MAX_NAME};
use crate::ondisk::{Inode, Key, KIND_DIRENT, KIND_ORPHAN, MAX_SYMLINK, META_OID, ROOT_INO};
use crate::read::{self, encode_dirent};
use crate::txn::{LogOp, Obj};
use crate::Wfs;

impl<D: BlockDevice> Wfs<D> {
    /// Run one implicit namespace operation `f` between `begin_op` and `end_op` (so a failure leaves
    /// no trace), then let `op_done` commit the group if it has grown large.
    fn mutation<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let saved = self.begin_op();
        let r = f(self);
        let v = self.end_op(saved, r)?;
        self.op_done(0)?;
        Ok(v)
    }

    fn add_entry(&mut self, dir: u64, name: &str, ino: u64, kind: FileType) -> Result<()> {
        let key = names::free_key(&mut self.st, &self.root, dir, KIND_DIRENT, name.as_bytes())?;
        self.tree_insert(key, encode_dirent(ino, kind, name))
    }

    /// Update a directory's times (and link count by `dlink`) after its entries changed.
    fn touch_dir(&mut self, dir: u64, dlink: i32) -> Result<()> {
        let mut d = self.get_inode(dir)?;
        let now = self.now();
        d.mtime = now;
        d.ctime = now;
        d.nlink = d.nlink.saturating_add_signed(dlink);
        self.put_inode(dir, &d)
    }

    /// One link to `ino` went away: free it, or park it on the orphan list while it is open.
    fn drop_link(&mut self, ino: u64, is_dir: bool) -> Result<()> {
        let mut i = self.get_inode(ino)?;
        i.nlink = if is_dir { 0 } else { i.nlink.saturating_sub(1) };
        i.ctime = self.now();
        if i.nlink > 0 {
            return self.put_inode(ino, &i);
        }
        if self.open.contains_key(&ino) {
            self.put_inode(ino, &i)?;
            self.tree_insert(Key::new(META_OID, KIND_ORPHAN, ino), Vec::new())
        } else {
            self.delete_inode(ino)
        }
    }

    /// The objects an operation on the entry `name` of `dir` touches: the entry and the node it
    /// names now (if any).
    fn entry_objs(&mut self, dir: u64, name: &str) -> Vec<Obj> {
        let mut v = alloc::vec![Obj::Name(dir, name.into())];
        if let Ok(Some(e)) = read::dir_lookup(&mut self.st, &self.root, dir, name) {
            v.push(Obj::Node(e.ino));
        }
        v
    }

    fn setattr_inner(&mut self, node: NodeId, attr: SetAttr) -> Result<Stat> {
        self.mutation(|fs| -> Result<Stat> {
            let mut i = fs.get_inode(node)?;
            if attr.size.is_some() && i.kind != FileType::File {
                return Err(if i.kind == FileType::Directory { Error::IsADirectory } else { Error::InvalidArgument });
            }
            if let Some(m) = attr.mode {
                i.mode = m & 0o7777;
            }
            if let Some(u) = attr.uid {
                i.uid = u;
            }
            if let Some(g) = attr.gid {
                i.gid = g;
            }
            if let Some(t) = attr.atime {
                i.atime = t;
            }
            match attr.size {
                // Shrinking dirties the extent leaves it empties; growing or not only the inode's path.
                Some(size) if size < i.size => fs.room(4 + (i.size - size) / (64 * 4096), 0)?,
                _ => fs.room(2, 0)?,
            }
            let now = fs.now();
            if let Some(size) = attr.size {
                fs.file_truncate(node, &mut i, size)?;
                i.mtime = now;
            }
            if let Some(t) = attr.mtime {
                i.mtime = t;
            }
            i.ctime = now;
            fs.put_inode(node, &i)?;
            Ok(read::to_stat(node, &i))
        })
    }

    fn link_inner(&mut self, node: NodeId, dir: NodeId, name: &str) -> Result<Stat> {
        self.mutation(|fs| -> Result<Stat> {
            let mut i = fs.get_inode(node)?;
            if i.kind == FileType::Directory {
                return Err(Error::NotPermitted);
            }
            if i.nlink == 0 {
                return Err(Error::NotFound);
            }
            if i.nlink == u32::MAX {
                return Err(Error::TooManyLinks);
            }
            read::get_dir(&mut fs.st, &fs.root, dir)?;
            if read::dir_lookup(&mut fs.st, &fs.root, dir, name)?.is_some() {
                return Err(Error::AlreadyExists);
            }
            fs.room(4, crate::file::slop(fs.st.alloc.total()))?;
            fs.add_entry(dir, name, node, i.kind)?;
            i.nlink += 1;
            i.ctime = fs.now();
            fs.put_inode(node, &i)?;
            fs.touch_dir(dir, 0)?;
            Ok(read::to_stat(node, &i))
        })
    }

    fn is_ancestor(&mut self, anc: u64, mut dir: u64) -> Result<bool> {
        // Bounded: a parent chain longer than this is a corrupt image, not a deep tree.
        for _ in 0..65536 {
            if dir == anc {
                return Ok(true);
            }
            if dir == ROOT_INO {
                return Ok(false);
            }
            dir = self.get_inode(dir)?.parent;
        }
        Err(Error::Corrupt { block: 0 })
    }
}

impl<D: BlockDevice> FileSystem for Wfs<D> {
    fn root(&self) -> NodeId {
        ROOT_INO
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hard_links: true,
            symlinks: true,
            special_files: true,
            permissions: true,
            transactions: true,
            snapshots: true,
        }
    }

    fn lookup(&mut self, dir: NodeId, name: &str) -> Result<Stat> {
        read::lookup(&mut self.st, &self.root, dir, name)
    }

    fn getattr(&mut self, node: NodeId) -> Result<Stat> {
        Ok(read::to_stat(node, &self.get_inode(node)?))
    }

    fn setattr(&mut self, node: NodeId, attr: SetAttr) -> Result<Stat> {
        let p = self.tx_prepare(|_| alloc::vec![Obj::Node(node)], || LogOp::Setattr(node, attr))?;
        let r = self.setattr_inner(node, attr);
        self.tx_record(p, &r);
        r
    }

    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        read::read(&mut self.st, &self.root, node, offset, buf)
    }

    fn read_with(
        &mut self,
        node: NodeId,
        offset: u64,
        buf: &mut [u8],
        sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<usize> {
        read::read_with(&mut self.st, &self.root, node, offset, buf, sink)
    }

    fn read_batch(&mut self, reads: &[(NodeId, u64, u32)], out: &mut [u8]) -> Result<Vec<u32>> {
        crate::batch::read_batch(&mut self.st, &self.root, reads, out)
    }

    fn write(&mut self, node: NodeId, offset: u64, data: &[u8]) -> Result<usize> {
        let p = self.tx_prepare(|_| alloc::vec![Obj::Node(node)], || LogOp::Write(node, offset, data.to_vec()))?;
        let saved = self.begin_op();
        let r = self.file_write(node, offset, data);
        let r = self.end_op(saved, r);
        self.tx_record(p, &r);
        let (n, blocks) = r?;
        self.op_done(blocks)?;
        Ok(n)
    }

    fn create(&mut self, dir: NodeId, name: &str, node: &NewNode) -> Result<Stat> {
        // The log entry gets the new node's number once it is known.
        let p = self.tx_prepare(
            |_| alloc::vec![Obj::Name(dir, name.into())],
            || LogOp::Create(dir, name.into(), node.clone(), 0),
        )?;
        let r = self.create_inner(dir, name, node);
        let p = p.map(|p| p.with_ino(r.as_ref().map_or(0, |st| st.ino)));
        self.tx_record(p, &r);
        r
    }

    fn unlink(&mut self, dir: NodeId, name: &str) -> Result<()> {
        let p = self.tx_prepare(|fs| fs.entry_objs(dir, name), || LogOp::Unlink(dir, name.into()))?;
        let r = self.unlink_inner(dir, name);
        self.tx_record(p, &r);
        r
    }

    fn rmdir(&mut self, dir: NodeId, name: &str) -> Result<()> {
        let p = self.tx_prepare(|fs| fs.entry_objs(dir, name), || LogOp::Rmdir(dir, name.into()))?;
        let r = self.rmdir_inner(dir, name);
        self.tx_record(p, &r);
        r
    }

    fn rename(&mut self, from_dir: NodeId, from: &str, to_dir: NodeId, to: &str) -> Result<()> {
        let p = self.tx_prepare(
            |fs| {
                let mut v = fs.entry_objs(from_dir, from);
                v.extend(fs.entry_objs(to_dir, to));
                v
            },
            || LogOp::Rename(from_dir, from.into(), to_dir, to.into()),
        )?;
        let r = self.rename_inner(from_dir, from, to_dir, to);
        self.tx_record(p, &r);
        r
    }
    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        read::readdir(&mut self.st, &self.root, dir, cookie, max)
    }

    fn fsync(&mut self, _node: NodeId) -> Result<()> {
        self.sync()
    }

    fn sync(&mut self) -> Result<()> {
        // Inside an explicit transaction nothing may become durable before its commit: the
        // durability call fails rather than answering Ok without a barrier. Outside it, the main
        // state commits (the open transaction's changes are not part of it).
        if self.in_tx() {
            return Err(Error::Busy);
        }
        self.commit()
    }

    fn statfs(&mut self) -> Result<FsStats> {
        let total = self.st.alloc.total();
        let free = self.st.alloc.free_blocks();
        Ok(FsStats {
            block_size: crate::ondisk::BLOCK_SIZE as u32,
            total_blocks: total,
            free_blocks: free,
            total_nodes: total,
            free_nodes: free,
            max_name_len: MAX_NAME as u32,
        })
    }

    fn open(&mut self, node: NodeId) -> Result<()> {
        self.get_inode(node)?;
        *self.open.entry(node).or_insert(0) += 1;
        Ok(())
    }

    fn release(&mut self, node: NodeId) -> Result<()> {
        let Some(c) = self.open.get_mut(&node) else { return Err(Error::BadFileDescriptor) };
        *c -= 1;
        if *c > 0 {
            return Ok(());
        }
        self.open.remove(&node);
        match self.get_inode(node) {
            Ok(i) if i.nlink == 0 => {
                let p = match self.tx_prepare(|_| alloc::vec![Obj::Node(node)], || LogOp::Delete(node)) {
                    Ok(p) => p,
                    Err(e) => {
                        // Still open, as before the call.
                        self.open.insert(node, 1);
                        return Err(e);
                    }
                };
                let saved = self.begin_op();
                let r = self.delete_inode(node);
                if r.is_err() {
                    // Still open, as before the call (the VFS may retry the release).
                    self.open.insert(node, 1);
                }
                let r = self.end_op(saved, r);
                self.tx_record(p, &r);
                r?;
                self.op_done(0)
            }
            Ok(_) | Err(Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn link(&mut self, node: NodeId, dir: NodeId, name: &str) -> Result<Stat> {
        let objs = |_: &mut Self| alloc::vec![Obj::Node(node), Obj::Name(dir, name.into())];
        let p = self.tx_prepare(objs, || LogOp::Link(node, dir, name.into()))?;
        let r = self.link_inner(node, dir, name);
        self.tx_record(p, &r);
        r
    }

    fn readlink(&mut self, node: NodeId) -> Result<String> {
        read::readlink(&mut self.st, &self.root, node)
    }

    fn begin_transaction(&mut self) -> Result<TxId> {
        self.tx_begin()
    }

    fn commit_transaction(&mut self, tx: TxId) -> Result<()> {
        self.tx_commit(tx)
    }

    fn open_transaction(&self) -> Option<TxId> {
        Wfs::open_transaction(self)
    }

    fn abort_transaction(&mut self, tx: TxId) -> Result<()> {
        self.tx_abort(tx)
    }

    fn select_transaction(&mut self, tx: Option<TxId>) -> Result<()> {
        self.select(tx)
    }

    // Snapshots and scrub over IPC: the interface's shapes around the inherent functions.
    fn snapshot_create(&mut self, name: &str) -> Result<()> {
        self.create_snapshot(name)
    }

    fn snapshot_list(&mut self) -> Result<Vec<SnapshotInfo>> {
        let list = self.list_snapshots()?;
        Ok(list.into_iter().map(|s| SnapshotInfo { name: s.name, txid: s.txid, created: s.created }).collect())
    }

    fn snapshot_delete(&mut self, name: &str) -> Result<()> {
        self.delete_snapshot(name)
    }

    fn background(&mut self) -> Option<u64> {
        Some(Wfs::background(self))
    }

    fn daemon_stats(&mut self) -> Result<protocol::daemon::DaemonStats> {
        Ok(self.daemon_report())
    }

    fn run_scrub(&mut self) -> Result<ScrubSummary> {
        let r = self.scrub()?;
        Ok(ScrubSummary {
            node_copies_checked: r.node_copies_checked,
            node_copies_repaired: r.node_copies_repaired,
            data_blocks_checked: r.data_blocks_checked,
            superblocks_repaired: r.superblocks_repaired,
            unrepairable: r.unrepairable.len() as u64,
            unrepairable_blocks: r.unrepairable.into_iter().take(MAX_UNREPAIRABLE_LISTED).collect(),
        })
    }
}

/// The namespace changes themselves (the trait's methods add the transaction bookkeeping).
impl<D: BlockDevice> Wfs<D> {
    fn create_inner(&mut self, dir: NodeId, name: &str, node: &NewNode) -> Result<Stat> {
        self.mutation(|fs| -> Result<Stat> {
            read::get_dir(&mut fs.st, &fs.root, dir)?;
            if read::dir_lookup(&mut fs.st, &fs.root, dir, name)?.is_some() {
                return Err(Error::AlreadyExists);
            }
            fs.room(4, crate::file::slop(fs.st.alloc.total()))?;
            let target = match node.kind {
                FileType::Symlink if node.symlink_target.is_empty() => return Err(Error::InvalidArgument),
                FileType::Symlink if node.symlink_target.len() > MAX_SYMLINK => return Err(Error::NameTooLong),
                FileType::Symlink => node.symlink_target.as_bytes().to_vec(),
                _ => Vec::new(),
            };
            let is_dir = node.kind == FileType::Directory;
            let now = fs.now();
            let ino = match fs.forced_ino.take() {
                Some(ino) => ino,
                None => {
                    fs.next_ino += 1;
                    fs.next_ino - 1
                }
            };
            let i = Inode {
                kind: node.kind,
                mode: node.mode & 0o7777,
                uid: node.uid,
                gid: node.gid,
                nlink: if is_dir { 2 } else { 1 },
                rdev: if matches!(node.kind, FileType::CharDevice | FileType::BlockDevice) { node.rdev } else { 0 },
                size: target.len() as u64,
                blocks: 0,
                atime: now,
                mtime: now,
                ctime: now,
                crtime: now,
                parent: if is_dir { dir } else { 0 },
                target,
            };
            fs.put_inode(ino, &i)?;
            fs.add_entry(dir, name, ino, node.kind)?;
            fs.touch_dir(dir, if is_dir { 1 } else { 0 })?;
            Ok(read::to_stat(ino, &i))
        })
    }

    fn unlink_inner(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.mutation(|fs| -> Result<()> {
            read::get_dir(&mut fs.st, &fs.root, dir)?;
            let e = read::dir_lookup(&mut fs.st, &fs.root, dir, name)?.ok_or(Error::NotFound)?;
            if e.kind == FileType::Directory {
                return Err(Error::IsADirectory);
            }
            // Deleting the last link dirties the extent leaves of the whole file.
            let blocks = fs.get_inode(e.ino)?.blocks;
            fs.room(6 + blocks / 64, 0)?;
            fs.tree_remove(&e.key)?;
            fs.drop_link(e.ino, false)?;
            fs.touch_dir(dir, 0)?;
            Ok(())
        })
    }

    fn rmdir_inner(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.mutation(|fs| -> Result<()> {
            read::get_dir(&mut fs.st, &fs.root, dir)?;
            let e = read::dir_lookup(&mut fs.st, &fs.root, dir, name)?.ok_or(Error::NotFound)?;
            if e.kind != FileType::Directory {
                return Err(Error::NotADirectory);
            }
            if !read::dir_is_empty(&mut fs.st, &fs.root, e.ino)? {
                return Err(Error::DirectoryNotEmpty);
            }
            fs.room(6, 0)?;
            fs.tree_remove(&e.key)?;
            fs.drop_link(e.ino, true)?;
            fs.touch_dir(dir, -1)?;
            Ok(())
        })
    }

    fn rename_inner(&mut self, from_dir: NodeId, from: &str, to_dir: NodeId, to: &str) -> Result<()> {
        self.mutation(|fs| -> Result<()> {
            names::check_name(from)?;
            names::check_name(to)?;
            read::get_dir(&mut fs.st, &fs.root, from_dir)?;
            let src = read::dir_lookup(&mut fs.st, &fs.root, from_dir, from)?.ok_or(Error::NotFound)?;
            read::get_dir(&mut fs.st, &fs.root, to_dir)?;
            let dst = read::dir_lookup(&mut fs.st, &fs.root, to_dir, to)?;
            if dst.as_ref().is_some_and(|d| d.ino == src.ino) {
                // POSIX: renaming a link onto another link of the same node does nothing.
                return Ok(());
            }
            let src_dir = src.kind == FileType::Directory;
            if src_dir && fs.is_ancestor(src.ino, to_dir)? {
                return Err(Error::InvalidArgument);
            }
            if let Some(d) = &dst {
                match (src_dir, d.kind == FileType::Directory) {
                    (true, false) => return Err(Error::NotADirectory),
                    (false, true) => return Err(Error::IsADirectory),
                    (true, true) if !read::dir_is_empty(&mut fs.st, &fs.root, d.ino)? => {
                        return Err(Error::DirectoryNotEmpty)
                    }
                    _ => {}
                }
            }
            fs.room(10, 0)?;
            // All checks passed: from here on the rename happens as a whole in this commit group.
            if let Some(d) = dst {
                fs.tree_remove(&d.key)?;
                fs.drop_link(d.ino, src_dir)?;
                if src_dir {
                    fs.touch_dir(to_dir, -1)?;
                }
            }
            fs.tree_remove(&src.key)?;
            fs.add_entry(to_dir, to, src.ino, src.kind)?;
            let mut i = fs.get_inode(src.ino)?;
            i.ctime = fs.now();
            if src_dir {
                i.parent = to_dir;
            }
            fs.put_inode(src.ino, &i)?;
            let moved = if src_dir && from_dir != to_dir { 1 } else { 0 };
            fs.touch_dir(from_dir, -moved)?;
            if to_dir != from_dir {
                fs.touch_dir(to_dir, moved)?;
            }
            Ok(())
        })
    }
}
