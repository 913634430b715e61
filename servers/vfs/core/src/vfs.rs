//! The VFS core: mount table, path resolution and the filesystem access every operation goes through.
//!
//! Design:
//! - A mount is a `Box<dyn FileSystem>` in a slot whose index never changes while it is mounted (open
//!   files and the cache refer to mounts by index). The mount point is recorded two ways: by path, for
//!   the table's listing and [`Vfs::mount_of`] (longest prefix), and as the (parent mount, directory
//!   node) it covers, which is what resolution uses.
//! - Resolution walks one component at a time from the root (or, for the `*at` operations, from a
//!   descriptor's node, above which `..` cannot climb), keeping the stack of directories walked:
//!   `..` pops the stack, so it leaves a mount root for the directory above the mount point (mount
//!   crossing upwards) and is correct after symbolic links; entering a covered directory switches to the
//!   mounted filesystem's root (crossing downwards). Symbolic links are followed (absolute targets
//!   restart from `/`, relative ones from the link's directory) at most [`MAX_SYMLINKS`] times.
//! - Every filesystem call goes through [`Vfs::with_fs`], which afterwards compares the filesystem's
//!   [`FileSystem::generation`]: when the server behind a mount restarted, the VFS re-opens every open
//!   file of that mount by its stable node id and drops the mount's cached metadata.
//! - Transactions belong to the process that began them. Before a call, `with_fs` selects on the
//!   filesystem the state the caller works in ([`FileSystem::select_transaction`]: its transaction
//!   there, or none), sending the selection only when it differs from the last one sent; the vfs
//!   serves one request at a time, so nothing runs between the selection and the call. So other
//!   processes go on working on the mount outside the transaction and do not see its uncommitted
//!   changes, and an abort or the owner's death takes back only the owner's. While a transaction is
//!   open on a mount, its metadata is not cached (each process may see another state).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use protocol::api::vfs::VfsStats;
use protocol::fs::{Capabilities, FileSystem, FileType, NodeId, Stat, TxId};
use protocol::ipc::TaskId;
use protocol::{Error, Result};

use crate::cache::MetaCache;
use crate::fdtable::{FdTable, FileId};
use crate::path;

/// Most symbolic links followed while resolving one path (Linux's limit).
pub const MAX_SYMLINKS: u32 = 40;

/// A process, as the transport identifies it.
pub type Pid = TaskId;

/// A node somewhere in the mounted tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub mount: usize,
    pub node: NodeId,
}

pub(crate) struct Mount {
    pub path: String,
    pub fs: Box<dyn FileSystem>,
    pub root: NodeId,
    pub caps: Capabilities,
    /// The directory this mount covers; None for `/`.
    pub covers: Option<Loc>,
    /// `fs.generation()` when the VFS last had all its open files open there.
    pub generation: u64,
    /// The transaction selection last sent to the filesystem (`None`: not known, send it).
    pub selected: Option<Option<TxId>>,
}

/// An open-file description: shared by every descriptor `dup`ed from the same `open`.
pub(crate) struct OpenFile {
    pub loc: Loc,
    pub kind: FileType,
    pub flags: protocol::api::vfs::OpenFlags,
    pub offset: u64,
    /// Descriptors referring to this description.
    pub refs: u32,
    /// Written (or truncated) through this description since its last successful fsync.
    pub unsynced: bool,
    /// The filesystem server restarted while `unsynced`: those writes may be lost with it, so the
    /// next fsync reports `ServerRestarted` instead of syncing a server that never had them.
    pub lost: bool,
    /// The direct-read grant the owning process holds for this description (see `direct`).
    pub direct: Option<protocol::api::grants::DirectGrant>,
}

pub(crate) struct Tx {
    pub owner: Pid,
    pub mount: usize,
    pub fs_tx: TxId,
    /// The filesystem server restarted since the begin: the transaction died with it, and its id
    /// may name another process's transaction on the new server, so it is never sent again.
    pub lost: bool,
}

/// Where a path led: the node, its attributes, and the directory walked into last (its parent for
/// `..` purposes).
pub(crate) struct Resolved {
    pub loc: Loc,
    pub stat: Stat,
    pub parent: Loc,
}

/// The virtual filesystem: mounts, open files, descriptor tables, metadata cache, statistics.
pub struct Vfs {
    pub(crate) mounts: Vec<Option<Mount>>,
    /// Covered directory -> index of the mount on it.
    pub(crate) covered: BTreeMap<Loc, usize>,
    pub(crate) files: BTreeMap<FileId, OpenFile>,
    pub(crate) next_file: FileId,
    pub(crate) procs: BTreeMap<Pid, FdTable>,
    pub(crate) txs: BTreeMap<u64, Tx>,
    pub(crate) next_tx: u64,
    pub(crate) cache: MetaCache,
    pub(crate) stats: VfsStats,
    /// The process whose call is being served (`Vfs::serving`): its transaction, if it has one on
    /// a mount, is what `with_fs` selects there.
    pub(crate) caller: Option<Pid>,
    /// (process, mount) pairs with name or attribute changes (create, link, unlink, rename,
    /// setattr) since that process's last successful fsync on the mount; `true` once the
    /// filesystem server restarted meanwhile (the changes may be lost with it), which that
    /// process's next fsync there reports as `ServerRestarted` instead of an Ok.
    pub(crate) names: BTreeMap<(Pid, usize), bool>,
}

impl Vfs {
    /// A VFS with `root` mounted at `/`.
    pub fn new(root: Box<dyn FileSystem>) -> Self {
        let root_node = root.root();
        let caps = root.capabilities();
        let generation = root.generation();
        Vfs {
            mounts: alloc::vec![Some(Mount {
                path: "/".into(),
                fs: root,
                root: root_node,
                caps,
                covers: None,
                generation,
                selected: None,
            })],
            covered: BTreeMap::new(),
            files: BTreeMap::new(),
            next_file: 1,
            procs: BTreeMap::new(),
            txs: BTreeMap::new(),
            next_tx: 1,
            cache: MetaCache::default(),
            stats: VfsStats::default(),
            caller: None,
            names: BTreeMap::new(),
        }
    }

    pub(crate) fn mount_ref(&self, mount: usize) -> Result<&Mount> {
        self.mounts.get(mount).and_then(Option::as_ref).ok_or(Error::NotFound)
    }

    /// Run `f` on the filesystem of `mount` in the caller's transaction there (or outside any),
    /// then re-open that mount's files if its server restarted.
    pub(crate) fn with_fs<R>(&mut self, mount: usize, f: impl FnOnce(&mut dyn FileSystem) -> Result<R>) -> Result<R> {
        let mine = self.txs.values().find(|t| t.mount == mount && Some(t.owner) == self.caller);
        if mine.is_some_and(|t| t.lost) {
            count_error(&mut self.stats, &Error::NoSuchTransaction);
            return Err(Error::NoSuchTransaction);
        }
        let want = mine.map(|t| t.fs_tx);
        let m = self.mounts.get_mut(mount).and_then(Option::as_mut).ok_or(Error::NotFound)?;
        let selected = if m.selected == Some(want) { Ok(()) } else { m.fs.select_transaction(want) };
        if selected.is_ok() {
            m.selected = Some(want);
        }
        let result = selected.and_then(|()| f(&mut *m.fs));
        if let Err(e) = &result {
            count_error(&mut self.stats, e);
        }
        if m.fs.generation() != m.generation {
            self.reopen(mount);
        } else if matches!(result, Err(Error::ServerDead)) {
            // Nothing cached about a filesystem that is gone can be trusted once it comes back.
            self.cache.forget_mount(mount);
        }
        result
    }

    /// The caller is about to change names or attributes on `mount` (counted before the call: a
    /// failed one may have been applied).
    pub(crate) fn names_changing(&mut self, mount: usize) {
        if let Some(pid) = self.caller {
            self.names.entry((pid, mount)).or_insert(false);
        }
    }

    /// The next operations are made for process `pid` (the vfs server says so before each call's
    /// path operations; operations on a descriptor know their process already).
    pub fn serving(&mut self, pid: Pid) {
        self.caller = Some(pid);
    }

    /// The transaction table changed on `mount`: its metadata is cached only while none is open.
    pub(crate) fn tx_changed(&mut self, mount: usize) {
        let open = self.txs.values().any(|t| t.mount == mount);
        self.cache.set_uncached(mount, open);
    }

    /// The server behind `mount` restarted: re-open every open file there by node id, drop its cache,
    /// and remember which descriptions had writes the old server may have taken with it.
    fn reopen(&mut self, mount: usize) {
        self.cache.forget_mount(mount);
        if let Some(m) = self.mounts.get_mut(mount).and_then(Option::as_mut) {
            // The new server has no transaction and selects none.
            m.selected = Some(None);
        }
        for t in self.txs.values_mut().filter(|t| t.mount == mount) {
            t.lost = true;
        }
        for (_, lost) in self.names.iter_mut().filter(|((_, m), _)| *m == mount) {
            *lost = true;
        }
        for f in self.files.values_mut().filter(|f| f.loc.mount == mount) {
            f.lost |= f.unsynced;
            // Grants die with the server that made them.
            f.direct = None;
        }
        let nodes: Vec<NodeId> = self.files.values().filter(|f| f.loc.mount == mount).map(|f| f.loc.node).collect();
        let Some(m) = self.mounts.get_mut(mount).and_then(Option::as_mut) else { return };
        // Re-opening may itself meet another restart; loop until a generation holds for the whole pass.
        for _ in 0..4 {
            let generation = m.fs.generation();
            for &node in &nodes {
                // A node that no longer exists (its creation was lost with the server) stays in the
                // table; its next use reports the filesystem's error.
                let _ = m.fs.open(node);
                self.stats.fs_reopens += 1;
            }
            m.generation = generation;
            if m.fs.generation() == generation {
                break;
            }
        }
    }

    /// Attributes of a node, from the cache when known.
    pub(crate) fn getattr(&mut self, loc: Loc) -> Result<Stat> {
        if let Some(st) = self.cache.attr(loc.mount, loc.node) {
            return Ok(st);
        }
        let st = self.with_fs(loc.mount, |fs| fs.getattr(loc.node))?;
        self.cache.put_attr(loc.mount, st);
        Ok(st)
    }

    /// Look `name` up in directory `dir` (a plain name, never `.` or `..`), through the cache.
    pub(crate) fn lookup(&mut self, dir: Loc, name: &str) -> Result<Stat> {
        self.stats.lookups += 1;
        match self.cache.dentry(dir.mount, dir.node, name) {
            Some(None) => return Err(Error::NotFound),
            Some(Some(node)) => return self.getattr(Loc { mount: dir.mount, node }),
            None => {}
        }
        match self.with_fs(dir.mount, |fs| fs.lookup(dir.node, name)) {
            Ok(st) => {
                self.cache.put_dentry(dir.mount, dir.node, name, Some(st.ino));
                self.cache.put_attr(dir.mount, st);
                Ok(st)
            }
            Err(Error::NotFound) => {
                self.cache.put_dentry(dir.mount, dir.node, name, None);
                Err(Error::NotFound)
            }
            Err(e) => Err(e),
        }
    }

    /// If `loc` is covered by a mount, the mounted root instead (repeatedly, for stacked mounts).
    fn cross_down(&self, mut loc: Loc) -> Loc {
        while let Some(&m) = self.covered.get(&loc) {
            match self.mount_ref(m) {
                Ok(mount) => loc = Loc { mount: m, node: mount.root },
                Err(_) => break,
            }
        }
        loc
    }

    fn root_loc(&self) -> Loc {
        Loc { mount: 0, node: self.mounts[0].as_ref().map(|m| m.root).unwrap_or(0) }
    }

    /// Resolve an absolute path. `follow_last` says whether a symbolic link in the last component is
    /// followed (stat, open) or returned itself (lstat, unlink, rename).
    pub(crate) fn resolve(&mut self, path: &str, follow_last: bool) -> Result<Resolved> {
        self.resolve_at(None, path, follow_last)
    }

    /// [`Vfs::resolve`] where a relative `path` starts at `start` (a descriptor's node; `None`: a
    /// relative path is `InvalidArgument`). The empty relative path is `start` itself. `..` cannot
    /// climb above `start` (`NotSupported`): the VFS does not know a descriptor's parent.
    pub(crate) fn resolve_at(&mut self, start: Option<Loc>, path: &str, follow_last: bool) -> Result<Resolved> {
        let (absolute, parts) = path::split(path)?;
        // Components still to walk, last one first (symlink targets are pushed on the end).
        let mut todo: Vec<String> = parts.iter().rev().map(|s| String::from(*s)).collect();
        let first = if absolute { self.root_loc() } else { start.ok_or(Error::InvalidArgument)? };
        // Whether the bottom of the stack is the root (where `..` stays put).
        let mut from_root = absolute;
        let mut stack: Vec<Loc> = alloc::vec![first];
        let mut links = 0;
        let mut current = self.getattr(stack[0])?;
        while let Some(name) = todo.pop() {
            let here = *stack.last().ok_or(Error::InvalidArgument)?;
            if current.kind != FileType::Directory {
                return Err(Error::NotADirectory);
            }
            if name == "." {
                continue;
            }
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                } else if !from_root {
                    return Err(Error::NotSupported);
                }
                current = self.getattr(*stack.last().ok_or(Error::InvalidArgument)?)?;
                continue;
            }
            let st = self.lookup(here, &name)?;
            if st.kind == FileType::Symlink && (follow_last || !todo.is_empty()) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::TooManyLevels);
                }
                let target = self.with_fs(here.mount, |fs| fs.readlink(st.ino))?;
                if target.starts_with('/') {
                    stack = alloc::vec![self.root_loc()];
                    from_root = true;
                }
                if target.is_empty() {
                    return Err(Error::NotFound);
                }
                for c in target.split('/').filter(|c| !c.is_empty()).rev() {
                    path::check_component(c)?;
                    todo.push(c.into());
                }
                current = self.getattr(*stack.last().ok_or(Error::InvalidArgument)?)?;
                continue;
            }
            let loc = self.cross_down(Loc { mount: here.mount, node: st.ino });
            current = if loc.mount == here.mount { st } else { self.getattr(loc)? };
            stack.push(loc);
        }
        let loc = *stack.last().ok_or(Error::InvalidArgument)?;
        let parent = if stack.len() > 1 { stack[stack.len() - 2] } else { loc };
        Ok(Resolved { loc, stat: current, parent })
    }

    /// Resolve everything but the last component: returns the directory and the last name. The last
    /// name is never `.` or `..` (those cannot be created, removed or renamed: `InvalidArgument`), and
    /// `/` itself has no parent (`Busy`, as Linux answers for operations on the root). A relative
    /// `path` starts at `start` (see [`Vfs::resolve_at`]); the empty one has no last name (`NotFound`).
    pub(crate) fn resolve_parent_at<'p>(&mut self, start: Option<Loc>, path: &'p str) -> Result<(Loc, &'p str)> {
        let (absolute, parts) = path::split(path)?;
        let (&last, _) = parts.split_last().ok_or(if absolute { Error::Busy } else { Error::NotFound })?;
        if path::is_dot(last) {
            return Err(Error::InvalidArgument);
        }
        let cut = path.trim_end_matches('/');
        let dir_path = &cut[..cut.len() - last.len()];
        let dir = self.resolve_at(start, dir_path, true)?;
        if dir.stat.kind != FileType::Directory {
            return Err(Error::NotADirectory);
        }
        Ok((dir.loc, last))
    }

    /// True if `loc` is a mount point or a mounted root (it cannot be removed or renamed).
    pub(crate) fn is_mount_boundary(&self, loc: Loc) -> bool {
        self.covered.contains_key(&loc) || self.mount_ref(loc.mount).is_ok_and(|m| m.root == loc.node)
    }

    /// Mount `fs` on the directory `path`; returns the mount's index.
    pub fn mount(&mut self, path: &str, fs: Box<dyn FileSystem>) -> Result<usize> {
        let at = self.resolve(path, true)?;
        if at.stat.kind != FileType::Directory {
            return Err(Error::NotADirectory);
        }
        // One filesystem per mount point (no stacking) and never on `/` itself.
        if self.is_mount_boundary(at.loc) {
            return Err(Error::Busy);
        }
        let root = fs.root();
        let caps = fs.capabilities();
        let generation = fs.generation();
        let mount = Mount {
            path: path::join(&path::components(path)?),
            fs,
            root,
            caps,
            covers: Some(at.loc),
            generation,
            selected: None,
        };
        let index = match self.mounts.iter().position(Option::is_none) {
            Some(free) => {
                self.mounts[free] = Some(mount);
                free
            }
            None => {
                self.mounts.push(Some(mount));
                self.mounts.len() - 1
            }
        };
        self.covered.insert(at.loc, index);
        self.cache.forget_mount(index);
        Ok(index)
    }

    /// Unmount the filesystem mounted at `path` (`Busy` while files are open on it or something is
    /// mounted inside it); returns it.
    pub fn unmount(&mut self, path: &str) -> Result<Box<dyn FileSystem>> {
        let at = self.resolve(path, true)?;
        let index = at.loc.mount;
        let m = self.mount_ref(index)?;
        if index == 0 || at.loc.node != m.root {
            return Err(Error::InvalidArgument);
        }
        let busy = self.files.values().any(|f| f.loc.mount == index)
            || self.covered.keys().any(|l| l.mount == index)
            || self.txs.values().any(|t| t.mount == index);
        if busy {
            return Err(Error::Busy);
        }
        let m = self.mounts[index].take().ok_or(Error::NotFound)?;
        if let Some(c) = m.covers {
            self.covered.remove(&c);
        }
        self.cache.forget_mount(index);
        Ok(m.fs)
    }

    /// The mount table: (mount point, index), in index order.
    pub fn mounts(&self) -> Vec<(String, usize)> {
        self.mounts.iter().enumerate().filter_map(|(i, m)| m.as_ref().map(|m| (m.path.clone(), i))).collect()
    }

    /// The mount whose mount point is the longest prefix of `path` (by whole components), by the
    /// mount table's paths alone: no lookups, so symbolic links in `path` are not followed.
    pub fn mount_of(&self, path: &str) -> Result<usize> {
        let parts = path::components(path)?;
        let mut best = (0usize, 0usize);
        for (i, m) in self.mounts.iter().enumerate() {
            let Some(m) = m else { continue };
            let mp = path::components(&m.path)?;
            if mp.len() >= best.1 && parts.len() >= mp.len() && parts[..mp.len()] == mp[..] {
                best = (i, mp.len());
            }
        }
        Ok(best.0)
    }

    /// Statistics, with the cache counters folded in.
    pub fn stats(&self) -> VfsStats {
        let mut s = self.stats;
        s.dentry_hits = self.cache.dentry_hits;
        s.dentry_misses = self.cache.dentry_misses;
        s.attr_hits = self.cache.attr_hits;
        s.attr_misses = self.cache.attr_misses;
        s.open_files = self.files.len() as u64;
        s.mounts = self.mounts.iter().flatten().count() as u64;
        s
    }
}

/// Count a failed filesystem call in `stats`, by kind.
fn count_error(stats: &mut VfsStats, e: &Error) {
    stats.fs_errors += 1;
    match e {
        Error::Io { .. } | Error::Checksum { .. } | Error::Corrupt { .. } => stats.io_errors += 1,
        Error::ServerDead | Error::ServerRestarted => stats.server_errors += 1,
        Error::Busy => stats.busy_errors += 1,
        _ => {}
    }
}
