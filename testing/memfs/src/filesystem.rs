//! The [`FileSystem`] methods of [`MemFs`].
//!
//! Design: each method validates everything first and mutates only once it knows it will succeed,
//! so a failed call leaves the tree untouched (the property model-based tests compare against).
//! Error choices follow Linux where POSIX leaves room: `unlink` of a directory is `IsADirectory`,
//! `link` to a directory is `NotPermitted`, a symlink with an empty target is `NotFound`, creating in
//! a directory that was removed while open is `NotFound`.

use alloc::string::String;
use alloc::vec::Vec;

use protocol::fs::{Capabilities, DirEntry, FileSystem, FileType, FsStats, NewNode, NodeId, SetAttr, Stat, TxId};
use protocol::names::check_name;
use protocol::{Error, Result};

use crate::node::{Directory, FileData, Node, Payload, CHUNK};
use crate::{MemFs, Tx, MAX_FILE_SIZE, MAX_LINKS, MAX_NAME_LEN, ROOT};

/// Longest symlink target accepted, as Linux's PATH_MAX less the NUL.
const MAX_SYMLINK_LEN: usize = 4095;

impl FileSystem for MemFs {
    fn root(&self) -> NodeId {
        ROOT
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hard_links: true,
            symlinks: true,
            special_files: true,
            permissions: true,
            transactions: true,
            snapshots: false,
        }
    }

    fn lookup(&mut self, dir: NodeId, name: &str) -> Result<Stat> {
        check_name(name)?;
        let ino = self.node(dir)?.dir()?.get(name).ok_or(Error::NotFound)?;
        self.stat_of(ino)
    }

    fn getattr(&mut self, node: NodeId) -> Result<Stat> {
        self.stat_of(node)
    }

    fn setattr(&mut self, node: NodeId, attr: SetAttr) -> Result<Stat> {
        let now = self.now();
        let n = self.node(node)?;
        if let Some(size) = attr.size {
            match n.payload {
                Payload::File(_) => {}
                Payload::Dir(_) => return Err(Error::IsADirectory),
                _ => return Err(Error::InvalidArgument),
            }
            if size > MAX_FILE_SIZE {
                return Err(Error::FileTooLarge);
            }
        }
        if attr.mode.is_some_and(|m| m & !0o7777 != 0) {
            return Err(Error::InvalidArgument);
        }
        let n = self.node_mut(node)?;
        let mut freed = 0;
        if let Some(size) = attr.size {
            if let Payload::File(f) = &mut n.payload {
                let before = f.chunks.len() as u64;
                f.truncate(size);
                freed = before - f.chunks.len() as u64;
            }
            n.stat.size = size;
            // truncate(2) always updates mtime and ctime, even when the size does not change.
            n.stat.mtime = now;
        }
        if let Some(mode) = attr.mode {
            n.stat.mode = mode;
        }
        if let Some(uid) = attr.uid {
            n.stat.uid = uid;
        }
        if let Some(gid) = attr.gid {
            n.stat.gid = gid;
        }
        if let Some(atime) = attr.atime {
            n.stat.atime = atime;
        }
        if let Some(mtime) = attr.mtime {
            n.stat.mtime = mtime;
        }
        n.stat.ctime = now;
        let st = n.stat();
        self.tree.chunks_used -= freed;
        Ok(st)
    }

    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let n = self.node(node)?;
        match &n.payload {
            Payload::File(f) => Ok(f.read(n.stat.size, offset, buf)),
            Payload::Dir(_) => Err(Error::IsADirectory),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn write(&mut self, node: NodeId, offset: u64, data: &[u8]) -> Result<usize> {
        let now = self.now();
        let n = self.node(node)?;
        let f = match &n.payload {
            Payload::File(f) => f,
            Payload::Dir(_) => return Err(Error::IsADirectory),
            _ => return Err(Error::InvalidArgument),
        };
        let end = offset.checked_add(data.len() as u64).ok_or(Error::FileTooLarge)?;
        if end > MAX_FILE_SIZE {
            return Err(Error::FileTooLarge);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let (first, last) = (offset / CHUNK as u64, (end - 1) / CHUNK as u64);
        let new_chunks = (first..=last).filter(|i| !f.chunks.contains_key(i)).count() as u64;
        if self.tree.chunks_used + new_chunks > self.limits.max_chunks {
            return Err(Error::NoSpace);
        }
        self.tree.chunks_used += new_chunks;
        let n = self.node_mut(node)?;
        if let Payload::File(f) = &mut n.payload {
            f.write(offset, data);
        }
        n.stat.size = n.stat.size.max(end);
        n.stat.mtime = now;
        n.stat.ctime = now;
        Ok(data.len())
    }

    fn create(&mut self, dir: NodeId, name: &str, new: &NewNode) -> Result<Stat> {
        check_name(name)?;
        let now = self.now();
        if self.live_dir(dir)?.get(name).is_some() {
            return Err(Error::AlreadyExists);
        }
        if new.mode & !0o7777 != 0 {
            return Err(Error::InvalidArgument);
        }
        if self.tree.nodes.len() as u64 >= self.limits.max_nodes {
            return Err(Error::NoSpace);
        }
        let ino = self.tree.next_ino;
        let mut node = Node::new(ino, new.kind, new.mode, new.uid, new.gid, now);
        match new.kind {
            FileType::File => node.payload = Payload::File(FileData::default()),
            FileType::Directory => {
                node.payload = Payload::Dir(Directory::new(dir));
                node.stat.nlink = 2;
            }
            FileType::Symlink => {
                if new.symlink_target.is_empty() {
                    return Err(Error::NotFound);
                }
                if new.symlink_target.len() > MAX_SYMLINK_LEN || new.symlink_target.contains('\0') {
                    return Err(Error::NameTooLong);
                }
                node.stat.size = new.symlink_target.len() as u64;
                node.payload = Payload::Symlink(new.symlink_target.clone());
            }
            FileType::CharDevice | FileType::BlockDevice => node.stat.rdev = new.rdev,
            FileType::Fifo | FileType::Socket => {}
        }
        self.tree.next_ino += 1;
        let st = node.stat();
        self.tree.nodes.insert(ino, node);
        let parent = self.node_mut(dir)?;
        parent.dir_mut()?.insert(name, ino);
        if new.kind == FileType::Directory {
            parent.stat.nlink += 1;
        }
        self.touch_dir(dir, now);
        Ok(st)
    }

    fn unlink(&mut self, dir: NodeId, name: &str) -> Result<()> {
        check_name(name)?;
        let now = self.now();
        let ino = self.node(dir)?.dir()?.get(name).ok_or(Error::NotFound)?;
        if self.node(ino)?.is_dir() {
            return Err(Error::IsADirectory);
        }
        self.node_mut(dir)?.dir_mut()?.remove(name);
        self.touch_dir(dir, now);
        self.drop_link(ino, now);
        Ok(())
    }

    fn rmdir(&mut self, dir: NodeId, name: &str) -> Result<()> {
        check_name(name)?;
        let now = self.now();
        let ino = self.node(dir)?.dir()?.get(name).ok_or(Error::NotFound)?;
        if !self.node(ino)?.dir()?.is_empty() {
            return Err(Error::DirectoryNotEmpty);
        }
        let parent = self.node_mut(dir)?;
        parent.dir_mut()?.remove(name);
        parent.stat.nlink -= 1;
        self.touch_dir(dir, now);
        self.drop_link(ino, now);
        Ok(())
    }

    fn rename(&mut self, from_dir: NodeId, from: &str, to_dir: NodeId, to: &str) -> Result<()> {
        check_name(from)?;
        check_name(to)?;
        let now = self.now();
        let src = self.node(from_dir)?.dir()?.get(from).ok_or(Error::NotFound)?;
        let target = self.live_dir(to_dir)?.get(to);
        if target == Some(src) {
            // POSIX: renaming one link of a node onto another link of the same node does nothing.
            return Ok(());
        }
        let src_is_dir = self.node(src)?.is_dir();
        if src_is_dir {
            // Walk up from the destination: meeting the source means moving it into itself.
            let mut cur = to_dir;
            loop {
                if cur == src {
                    return Err(Error::InvalidArgument);
                }
                let parent = self.node(cur)?.dir()?.parent;
                if parent == cur {
                    break;
                }
                cur = parent;
            }
        }
        let target_is_dir = match target {
            Some(t) => {
                let tn = self.node(t)?;
                match (src_is_dir, tn.is_dir()) {
                    (true, false) => return Err(Error::NotADirectory),
                    (false, true) => return Err(Error::IsADirectory),
                    (true, true) if !tn.dir()?.is_empty() => return Err(Error::DirectoryNotEmpty),
                    _ => {}
                }
                tn.is_dir()
            }
            None => false,
        };

        let from_parent = self.node_mut(from_dir)?;
        from_parent.dir_mut()?.remove(from);
        if src_is_dir {
            from_parent.stat.nlink -= 1;
        }
        let to_parent = self.node_mut(to_dir)?;
        match target {
            Some(_) => to_parent.dir_mut()?.replace(to, src),
            None => to_parent.dir_mut()?.insert(to, src),
        }
        if src_is_dir {
            to_parent.stat.nlink += 1;
        }
        if target_is_dir {
            to_parent.stat.nlink -= 1;
        }
        let moved = self.node_mut(src)?;
        moved.stat.ctime = now;
        if let Payload::Dir(d) = &mut moved.payload {
            d.parent = to_dir;
        }
        self.touch_dir(from_dir, now);
        self.touch_dir(to_dir, now);
        if let Some(t) = target {
            self.drop_link(t, now);
        }
        Ok(())
    }

    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        let d = self.node(dir)?.dir()?;
        let mut out = Vec::new();
        for (&c, name) in d.by_cookie.range(cookie.saturating_add(1)..).take(max) {
            let ino = d.get(name).ok_or(Error::Corrupt { block: dir })?;
            let kind = self.node(ino)?.stat.kind;
            out.push(DirEntry { name: name.clone(), ino, kind, next_cookie: c });
        }
        Ok(out)
    }

    fn fsync(&mut self, node: NodeId) -> Result<()> {
        self.sync()?;
        self.node(node).map(|_| ())
    }

    fn sync(&mut self) -> Result<()> {
        // As WFS: nothing of a transaction can be made durable before its commit, and a durability
        // call never answers Ok without doing it.
        if self.tx.as_ref().is_some_and(|t| t.selected) {
            return Err(Error::Busy);
        }
        Ok(())
    }

    fn statfs(&mut self) -> Result<FsStats> {
        Ok(FsStats {
            block_size: CHUNK as u32,
            total_blocks: self.limits.max_chunks,
            free_blocks: self.limits.max_chunks - self.tree.chunks_used,
            total_nodes: self.limits.max_nodes,
            free_nodes: self.limits.max_nodes.saturating_sub(self.tree.nodes.len() as u64),
            max_name_len: MAX_NAME_LEN as u32,
        })
    }

    fn open(&mut self, node: NodeId) -> Result<()> {
        let n = self.node_mut(node)?;
        n.open_count = n.open_count.checked_add(1).ok_or(Error::TooManyOpenFiles)?;
        // Open counts are the VFS's handles, the same whichever tree a transaction selected.
        if let Some(n) = self.tx.as_mut().and_then(|t| t.other.nodes.get_mut(&node)) {
            n.open_count += 1;
        }
        Ok(())
    }

    fn release(&mut self, node: NodeId) -> Result<()> {
        let n = self.node_mut(node)?;
        if n.open_count == 0 {
            return Err(Error::InvalidArgument);
        }
        n.open_count -= 1;
        self.maybe_free(node);
        if let Some(n) = self.tx.as_mut().and_then(|t| t.other.nodes.get_mut(&node)) {
            n.open_count = n.open_count.saturating_sub(1);
        }
        Ok(())
    }

    fn link(&mut self, node: NodeId, dir: NodeId, name: &str) -> Result<Stat> {
        check_name(name)?;
        let now = self.now();
        let n = self.node(node)?;
        if n.is_dir() {
            return Err(Error::NotPermitted);
        }
        if n.stat.nlink == 0 {
            return Err(Error::NotFound);
        }
        if n.stat.nlink >= MAX_LINKS {
            return Err(Error::TooManyLinks);
        }
        if self.live_dir(dir)?.get(name).is_some() {
            return Err(Error::AlreadyExists);
        }
        self.node_mut(dir)?.dir_mut()?.insert(name, node);
        self.touch_dir(dir, now);
        let n = self.node_mut(node)?;
        n.stat.nlink += 1;
        n.stat.ctime = now;
        Ok(n.stat())
    }

    fn readlink(&mut self, node: NodeId) -> Result<String> {
        match &self.node(node)?.payload {
            Payload::Symlink(t) => Ok(t.clone()),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn begin_transaction(&mut self) -> Result<TxId> {
        if self.tx.is_some() {
            return Err(Error::Busy);
        }
        let id = self.next_tx;
        self.next_tx += 1;
        self.tx = Some(Tx { id, other: self.tree.clone(), base: self.tree.clone(), selected: true });
        Ok(id)
    }

    fn commit_transaction(&mut self, tx: TxId) -> Result<()> {
        let t = self.end_tx(tx)?;
        let unchanged = self.tree.nodes.len() == t.base.nodes.len()
            && self
                .tree
                .nodes
                .iter()
                .zip(t.base.nodes.iter())
                .all(|((a, x), (b, y))| a == b && x.stat == y.stat && x.payload == y.payload);
        if !unchanged {
            return Err(Error::Conflict);
        }
        let main = core::mem::replace(&mut self.tree, t.other);
        self.tree.next_ino = self.tree.next_ino.max(main.next_ino);
        self.free_unreferenced();
        Ok(())
    }

    fn open_transaction(&self) -> Option<TxId> {
        self.tx.as_ref().map(|t| t.id)
    }

    fn abort_transaction(&mut self, tx: TxId) -> Result<()> {
        let t = self.end_tx(tx)?;
        // Node ids stay unique for the life of the filesystem, so a handle to a node created in the
        // aborted transaction can never reach a later, unrelated node.
        self.tree.next_ino = self.tree.next_ino.max(t.other.next_ino);
        self.free_unreferenced();
        Ok(())
    }

    fn select_transaction(&mut self, tx: Option<TxId>) -> Result<()> {
        let Some(t) = &mut self.tx else {
            return if tx.is_none() { Ok(()) } else { Err(Error::NoSuchTransaction) };
        };
        let want = match tx {
            None => false,
            Some(id) if id == t.id => true,
            Some(_) => return Err(Error::NoSuchTransaction),
        };
        if t.selected != want {
            // One node-id counter for both trees: a node made in one never shares its id with
            // a node of the other.
            let next = self.tree.next_ino.max(t.other.next_ino);
            core::mem::swap(&mut self.tree, &mut t.other);
            self.tree.next_ino = next;
            t.selected = want;
        }
        Ok(())
    }
}

impl MemFs {
    /// Finish transaction `tx`: the main tree is selected again; returns the transaction (its
    /// `other` is then the transaction's tree).
    fn end_tx(&mut self, tx: TxId) -> Result<Tx> {
        match &self.tx {
            Some(t) if t.id == tx => {}
            _ => return Err(Error::NoSuchTransaction),
        }
        self.select_transaction(None)?;
        let t = self.tx.take().ok_or(Error::NoSuchTransaction)?;
        Ok(t)
    }

    /// Free the nodes of the live tree that nothing refers to any more (closed while the other
    /// tree was selected).
    fn free_unreferenced(&mut self) {
        let inos: Vec<NodeId> = self.tree.nodes.keys().copied().collect();
        for ino in inos {
            self.maybe_free(ino);
        }
    }
}
