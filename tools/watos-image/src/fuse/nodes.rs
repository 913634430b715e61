//! From FUSE's inode numbers to the VFS's descriptors and names.
//!
//! Design: FUSE names nodes by inode number and asks about (directory, name) pairs; the VFS names
//! nodes by path from a descriptor. [`Nodes`] bridges them without ever building a whole path, so no
//! depth is too deep for the VFS's path limit:
//! - every node the kernel holds (from the entry reply that gave it, until the kernel's `forget`
//!   drops its last lookup) keeps one known name: (parent, name);
//! - a directory is reached through a VFS descriptor open on it, found in a small cache or opened
//!   with `openat(parent's descriptor, name)`, walking up the known names as far as needed (the root's
//!   descriptor is opened at start and never closed). The cache is bounded (LRU) because every entry
//!   is a descriptor in the adapter's one VFS process;
//! - a node is referred to by a descriptor open on it when there is one (a cached directory, a file
//!   the kernel has open: this is how an unlinked open file stays reachable) and else by its parent's
//!   descriptor and its name;
//! - node ids may be reused by a filesystem once a node is gone (FAT derives them from directory-entry
//!   positions), while the kernel may still cache an inode under the old id, so a generation is
//!   counted per id and bumped whenever a node dies; the kernel compares generations and drops its
//!   stale inode instead of reusing a dead one for the new node.
//!
//! Everything here runs under the adapter's mutex; the kernel does permission checks.

use std::collections::HashMap;

use protocol::api::vfs::OpenFlags;
use protocol::fs::{FileType, NodeId, Stat};
use protocol::{Error, Result};

use super::backend::Backend;

/// Most directory descriptors kept open for path walking (each is a descriptor of the adapter's VFS
/// process, which may have 1021).
const DIR_CACHE: usize = 256;

/// Longest chain of unknown-descriptor ancestors walked to reach a directory.
const MAX_DEPTH: usize = 4096;

pub struct Nodes {
    pub backend: Backend,
    pub root: NodeId,
    root_fd: u32,
    /// One known name of each node: (parent, name).
    names: HashMap<NodeId, (NodeId, String)>,
    /// Directory -> (descriptor open on it, last use).
    dirs: HashMap<NodeId, (u32, u64)>,
    tick: u64,
    /// Node -> descriptors the kernel holds open on it (FUSE file handles).
    files: HashMap<NodeId, Vec<u32>>,
    /// Generation of each id that has died at least once (absent = 0).
    generations: HashMap<NodeId, u64>,
    /// How many times each id was handed to the kernel in an entry and not yet forgotten by it.
    lookups: HashMap<NodeId, u64>,
}

impl Nodes {
    pub fn new(backend: Backend) -> Result<Nodes> {
        let root_fd = backend.vfs.open("/", OpenFlags::READ | OpenFlags::DIRECTORY, 0)?;
        let root = backend.vfs.fstat(root_fd)?.ino;
        Ok(Nodes {
            backend,
            root,
            root_fd,
            names: HashMap::new(),
            dirs: HashMap::new(),
            tick: 0,
            files: HashMap::new(),
            generations: HashMap::new(),
            lookups: HashMap::new(),
        })
    }

    pub fn vfs(&self) -> &protocol::api::vfs::Client<protocol::local::LocalIpc> {
        &self.backend.vfs
    }

    pub fn root_fd(&self) -> u32 {
        self.root_fd
    }

    /// A descriptor open on directory `ino`.
    pub fn dir_fd(&mut self, ino: NodeId) -> Result<u32> {
        if ino == self.root {
            return Ok(self.root_fd);
        }
        self.tick += 1;
        if let Some(entry) = self.dirs.get_mut(&ino) {
            entry.1 = self.tick;
            return Ok(entry.0);
        }
        // Walk up the known names to the nearest directory with a descriptor, then open downwards.
        let mut chain = vec![ino];
        let mut fd = loop {
            let top = *chain.last().ok_or(Error::NotFound)?;
            let parent = self.names.get(&top).ok_or(Error::NotFound)?.0;
            if parent == self.root {
                break self.root_fd;
            }
            if let Some(&(fd, _)) = self.dirs.get(&parent) {
                break fd;
            }
            if chain.len() >= MAX_DEPTH {
                return Err(Error::TooManyLevels);
            }
            chain.push(parent);
        };
        while let Some(dir) = chain.pop() {
            let name = self.names.get(&dir).ok_or(Error::NotFound)?.1.clone();
            let flags = OpenFlags::READ | OpenFlags::DIRECTORY | OpenFlags::NOFOLLOW;
            let opened = self.backend.vfs.openat(fd, &name, flags, 0)?;
            // A stale name (the node is gone, or the name now holds another node) must not be used.
            if self.backend.vfs.fstat(opened).map(|st| st.ino) != Ok(dir) {
                let _ = self.backend.vfs.close(opened);
                self.names.remove(&dir);
                return Err(Error::NotFound);
            }
            self.cache_dir(dir, opened);
            fd = opened;
        }
        Ok(fd)
    }

    fn cache_dir(&mut self, dir: NodeId, fd: u32) {
        self.tick += 1;
        self.dirs.insert(dir, (fd, self.tick));
        if self.dirs.len() > DIR_CACHE {
            if let Some((&old, &(old_fd, _))) = self.dirs.iter().min_by_key(|(_, &(_, used))| used) {
                self.dirs.remove(&old);
                let _ = self.backend.vfs.close(old_fd);
            }
        }
    }

    /// How to name `ino` to the VFS: a descriptor and a path from it (empty: the descriptor's node).
    pub fn at(&mut self, ino: NodeId) -> Result<(u32, String)> {
        if ino == self.root {
            return Ok((self.root_fd, String::new()));
        }
        if let Some(&(fd, _)) = self.dirs.get(&ino) {
            return Ok((fd, String::new()));
        }
        if let Some(&fd) = self.files.get(&ino).and_then(|v| v.first()) {
            return Ok((fd, String::new()));
        }
        let (parent, name) = self.names.get(&ino).cloned().ok_or(Error::NotFound)?;
        Ok((self.dir_fd(parent)?, name))
    }

    /// Attributes of `ino` (never following a symbolic link); `NotFound` if its known name now
    /// holds another node.
    pub fn getattr(&mut self, ino: NodeId) -> Result<Stat> {
        let (fd, path) = self.at(ino)?;
        let st = self.backend.vfs.statat(fd, &path, false)?;
        if st.ino != ino {
            self.names.remove(&ino);
            return Err(Error::NotFound);
        }
        Ok(st)
    }

    /// `st` was found as `name` in `parent`.
    pub fn learn(&mut self, parent: NodeId, name: &str, st: &Stat) {
        if st.ino != self.root {
            self.names.insert(st.ino, (parent, name.to_string()));
        }
    }

    /// The name `name` in `parent` is gone; `st` is what it held. Forget the name, and the node if
    /// it died (its last link, or a directory).
    pub fn unlinked(&mut self, parent: NodeId, name: &str, st: &Stat) {
        if st.kind == FileType::Directory || st.nlink <= 1 {
            self.died(st.ino);
        } else if self.names.get(&st.ino).is_some_and(|(p, n)| *p == parent && n == name) {
            self.names.remove(&st.ino);
        }
    }

    /// Node `ino` is gone: drop its name and directory descriptor, and retire its id.
    pub fn died(&mut self, ino: NodeId) {
        self.forget(ino);
        *self.generations.entry(ino).or_insert(0) += 1;
    }

    /// Drop what is known about `ino`'s name and its cached directory descriptor.
    pub fn forget(&mut self, ino: NodeId) {
        self.names.remove(&ino);
        if let Some((fd, _)) = self.dirs.remove(&ino) {
            let _ = self.backend.vfs.close(fd);
        }
    }

    /// The kernel was given `ino` in an entry reply (it counts a lookup).
    pub fn entered(&mut self, ino: NodeId) {
        *self.lookups.entry(ino).or_insert(0) += 1;
    }

    /// The kernel dropped `n` lookups of `ino`; at none, its name and descriptor are forgotten, so
    /// the map holds only what the kernel still knows (a forgotten directory has no known children).
    pub fn kernel_forgot(&mut self, ino: NodeId, n: u64) {
        let Some(count) = self.lookups.get_mut(&ino) else { return };
        *count = count.saturating_sub(n);
        if *count == 0 {
            self.lookups.remove(&ino);
            self.forget(ino);
        }
    }

    pub fn generation(&self, ino: NodeId) -> u64 {
        self.generations.get(&ino).copied().unwrap_or(0)
    }

    /// The kernel opened `ino` as descriptor `fd`.
    pub fn opened(&mut self, ino: NodeId, fd: u32) {
        self.files.entry(ino).or_default().push(fd);
    }

    /// The kernel released descriptor `fd` of `ino`: close it.
    pub fn release(&mut self, ino: NodeId, fd: u32) -> Result<()> {
        if let Some(v) = self.files.get_mut(&ino) {
            v.retain(|&f| f != fd);
            if v.is_empty() {
                self.files.remove(&ino);
            }
        }
        self.backend.vfs.close(fd)
    }

    /// Close every cached descriptor and hand the stack back.
    pub fn into_backend(mut self) -> Backend {
        for (_, (fd, _)) in self.dirs.drain() {
            let _ = self.backend.vfs.close(fd);
        }
        self.backend
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::fs::NewNode;

    fn nodes() -> Nodes {
        Nodes::new(Backend::start(Box::new(memfs::MemFs::default())).unwrap()).unwrap()
    }

    fn mkdir(n: &mut Nodes, parent: NodeId, name: &str) -> NodeId {
        let fd = n.dir_fd(parent).unwrap();
        let st = n.vfs().makeat(fd, name, NewNode::new(FileType::Directory, 0o755)).unwrap();
        n.learn(parent, name, &st);
        st.ino
    }

    #[test]
    fn directories_are_reached_by_walking_known_names() {
        let mut n = nodes();
        let mut dir = n.root;
        let name = "x".repeat(250);
        let mut ids = vec![];
        for _ in 0..10 {
            dir = mkdir(&mut n, dir, &name);
            ids.push(dir);
        }
        // Drop every cached descriptor: the deepest directory (2,500 bytes of path) is re-opened
        // one level at a time.
        for &d in &ids {
            if let Some((fd, _)) = n.dirs.remove(&d) {
                n.vfs().close(fd).unwrap();
            }
        }
        assert_eq!(n.getattr(dir).unwrap().ino, dir);
        assert_eq!(n.dirs.len(), 9, "its ancestors were opened; it is named from its parent");
        assert_eq!(n.dir_fd(dir).map(|_| n.dirs.len()), Ok(10));
        n.into_backend().close().unwrap();
    }

    #[test]
    fn stale_names_are_refused_and_dead_ids_get_new_generations() {
        let mut n = nodes();
        let root = n.root;
        let a = mkdir(&mut n, root, "a");
        n.forget(a);
        n.learn(root, "a", &n.vfs().statat(n.root_fd(), "a", false).unwrap());
        n.vfs().unlinkat(n.root_fd(), "a", true).unwrap();
        mkdir(&mut n, root, "b");
        n.vfs().renameat(n.root_fd(), "b", n.root_fd(), "a", false).unwrap();
        assert_eq!(n.getattr(a), Err(Error::NotFound), "the name now holds another node");
        assert_eq!(n.generation(a), 0);
        n.died(a);
        assert_eq!(n.generation(a), 1);
        n.into_backend().close().unwrap();
    }

    #[test]
    fn names_last_as_long_as_the_kernel_holds_the_node() {
        let mut n = nodes();
        let root = n.root;
        let a = mkdir(&mut n, root, "a");
        n.entered(a);
        n.entered(a);
        n.kernel_forgot(a, 1);
        assert!(n.getattr(a).is_ok(), "one lookup is still held");
        n.kernel_forgot(a, 1);
        assert_eq!(n.getattr(a), Err(Error::NotFound), "forgotten");
        n.kernel_forgot(a, 5);
        n.into_backend().close().unwrap();
    }

    #[test]
    fn the_directory_cache_is_bounded() {
        let mut n = nodes();
        let root = n.root;
        for i in 0..DIR_CACHE + 20 {
            let d = mkdir(&mut n, root, &format!("d{i}"));
            n.dir_fd(d).unwrap();
        }
        assert_eq!(n.dirs.len(), DIR_CACHE);
        n.into_backend().close().unwrap();
    }
}
