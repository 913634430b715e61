//! memfs: an in-memory implementation of [`protocol::fs::FileSystem`].
//!
//! Design: a `BTreeMap` from node id to [`node::Node`]; directories map names to node ids, so hard links
//! are just several entries naming the same id. A node is freed when its link count is zero and no
//! `open` is outstanding, which keeps unlinked-but-open files readable (POSIX semantics the VFS relies
//! on). Permissions and ownership are stored but not enforced: the interface carries no caller
//! credentials, access checks belong to the VFS. `atime` is only changed by `setattr` (like `noatime`),
//! so a read never mutates state. A transaction works on its own copy of the whole tree (cheap for
//! the sizes memfs is used at, tests); `select_transaction` swaps which copy the calls act on. Commit
//! adopts the transaction's copy if the other one did not change since `begin` (open counts aside)
//! and otherwise answers `Conflict`: memfs detects conflicts per filesystem, where WFS merges
//! changes to different objects.
//!
//! memfs is the reference model: WFS and FAT model-based tests compare their behaviour against it,
//! so it follows POSIX as closely as the interface allows and documents every choice it makes.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod filesystem;
mod node;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;

use protocol::fs::{Clock, FixedClock, NodeId, Stat, Timespec, TxId};
use protocol::{Error, Result};

pub use node::CHUNK;
use node::{Directory, Node, Payload};

/// Longest name component accepted, in bytes (the shared rule's, as Linux's NAME_MAX).
pub const MAX_NAME_LEN: usize = protocol::names::MAX_NAME;
/// Most hard links one node may have.
pub const MAX_LINKS: u32 = 65_000;
/// Largest file size accepted (as `off_t`'s maximum).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;
/// Node id of the root directory.
pub const ROOT: NodeId = 1;

/// Optional limits, so tests can exercise `NoSpace` handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most data chunks ([`CHUNK`] bytes each) stored at once.
    pub max_chunks: u64,
    /// Most nodes alive at once (root included).
    pub max_nodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // Large enough never to matter in a test, small enough that statfs figures stay readable.
        Limits { max_chunks: 1 << 28, max_nodes: 1 << 32 }
    }
}

/// An open transaction: the tree not selected now and the tree as it was at `begin`.
pub(crate) struct Tx {
    pub(crate) id: TxId,
    pub(crate) other: Tree,
    pub(crate) base: Tree,
    /// `tree` is the transaction's copy (`other` the main one).
    pub(crate) selected: bool,
}

/// The part of the state a transaction copies.
#[derive(Clone)]
pub(crate) struct Tree {
    nodes: BTreeMap<NodeId, Node>,
    next_ino: NodeId,
    chunks_used: u64,
}

/// An in-memory filesystem.
pub struct MemFs {
    tree: Tree,
    limits: Limits,
    clock: Box<dyn Clock + Send>,
    /// The open transaction, if any.
    tx: Option<Tx>,
    next_tx: TxId,
}

impl Default for MemFs {
    fn default() -> Self {
        MemFs::new(Box::new(FixedClock(Timespec::ZERO)))
    }
}

impl MemFs {
    /// An empty filesystem (root directory mode 0o755, owned by root) taking time from `clock`.
    pub fn new(clock: Box<dyn Clock + Send>) -> Self {
        MemFs::with_limits(clock, Limits::default())
    }

    pub fn with_limits(clock: Box<dyn Clock + Send>, limits: Limits) -> Self {
        let now = clock.now();
        let mut root = Node::new(ROOT, protocol::fs::FileType::Directory, 0o755, 0, 0, now);
        root.payload = Payload::Dir(Directory::new(ROOT));
        root.stat.nlink = 2;
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, root);
        MemFs { tree: Tree { nodes, next_ino: ROOT + 1, chunks_used: 0 }, limits, clock, tx: None, next_tx: 1 }
    }

    /// Number of live nodes (including unlinked-but-open ones); lets tests see that space is freed.
    pub fn node_count(&self) -> usize {
        self.tree.nodes.len()
    }

    /// Data chunks currently stored.
    pub fn chunks_used(&self) -> u64 {
        self.tree.chunks_used
    }

    fn now(&self) -> Timespec {
        self.clock.now()
    }

    fn node(&self, ino: NodeId) -> Result<&Node> {
        self.tree.nodes.get(&ino).ok_or(Error::NotFound)
    }

    fn node_mut(&mut self, ino: NodeId) -> Result<&mut Node> {
        self.tree.nodes.get_mut(&ino).ok_or(Error::NotFound)
    }

    fn stat_of(&self, ino: NodeId) -> Result<Stat> {
        Ok(self.node(ino)?.stat())
    }

    /// Free a node once nothing refers to it any more.
    fn maybe_free(&mut self, ino: NodeId) {
        let gone = match self.tree.nodes.get(&ino) {
            Some(n) => n.stat.nlink == 0 && n.open_count == 0,
            None => false,
        };
        if gone {
            if let Some(Node { payload: Payload::File(f), .. }) = self.tree.nodes.remove(&ino) {
                self.tree.chunks_used -= f.chunks.len() as u64;
            }
        }
    }

    /// Drop one link of a non-directory (or the last of a directory) and free it if unreferenced.
    fn drop_link(&mut self, ino: NodeId, now: Timespec) {
        if let Some(n) = self.tree.nodes.get_mut(&ino) {
            n.stat.nlink = if n.is_dir() { 0 } else { n.stat.nlink.saturating_sub(1) };
            n.stat.ctime = now;
        }
        self.maybe_free(ino);
    }

    /// Mark a directory's contents as changed.
    fn touch_dir(&mut self, dir: NodeId, now: Timespec) {
        if let Some(n) = self.tree.nodes.get_mut(&dir) {
            n.stat.mtime = now;
            n.stat.ctime = now;
        }
    }

    /// A directory that still has a name (an rmdir'ed one may stay alive while open, but nothing
    /// may be created in it).
    fn live_dir(&self, dir: NodeId) -> Result<&Directory> {
        let n = self.node(dir)?;
        let d = n.dir()?;
        if n.stat.nlink == 0 {
            return Err(Error::NotFound);
        }
        Ok(d)
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
