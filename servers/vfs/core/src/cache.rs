//! The metadata cache: directory entries (positive and negative) and node attributes.
//!
//! Design: two ordered maps keyed by mount index and node id, filled on lookups and updated or
//! invalidated by every mutation the VFS performs (all mutations go through it, so the cache is
//! coherent as long as nobody else writes the filesystem; after a filesystem-server restart the VFS
//! drops the whole cache because uncommitted changes may have vanished). Bounded: when a map reaches
//! [`CAPACITY`] it is emptied, a cheap policy that keeps the cache correct and memory bounded; the
//! hot working set refills in a few lookups. A mount with an explicit transaction open is not
//! cached at all (`set_uncached`): its processes see different states (the owner its transaction's,
//! the others the main one), which one cache keyed by mount cannot tell apart.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;

use protocol::fs::{NodeId, Stat};

/// Most entries each map holds.
pub const CAPACITY: usize = 8192;

type Mount = usize;

#[derive(Default)]
pub struct MetaCache {
    /// (mount, directory, name) -> Some(node) or None for "known not to exist".
    dentries: BTreeMap<(Mount, NodeId, String), Option<NodeId>>,
    attrs: BTreeMap<(Mount, NodeId), Stat>,
    /// Mounts not cached now (see `set_uncached`).
    uncached: BTreeSet<Mount>,
    pub dentry_hits: u64,
    pub dentry_misses: u64,
    pub attr_hits: u64,
    pub attr_misses: u64,
}

impl MetaCache {
    /// `Some(Some(node))` cached positive, `Some(None)` cached negative, `None` unknown.
    pub fn dentry(&mut self, mount: Mount, dir: NodeId, name: &str) -> Option<Option<NodeId>> {
        if self.uncached.contains(&mount) {
            return None;
        }
        // A String key forces an allocation per probe; acceptable next to an IPC round trip.
        let hit = self.dentries.get(&(mount, dir, String::from(name))).copied();
        if hit.is_some() {
            self.dentry_hits += 1;
        } else {
            self.dentry_misses += 1;
        }
        hit
    }

    pub fn put_dentry(&mut self, mount: Mount, dir: NodeId, name: &str, node: Option<NodeId>) {
        if self.uncached.contains(&mount) {
            return;
        }
        if self.dentries.len() >= CAPACITY {
            self.dentries.clear();
        }
        self.dentries.insert((mount, dir, String::from(name)), node);
    }

    pub fn forget_dentry(&mut self, mount: Mount, dir: NodeId, name: &str) {
        self.dentries.remove(&(mount, dir, String::from(name)));
    }

    pub fn attr(&mut self, mount: Mount, node: NodeId) -> Option<Stat> {
        if self.uncached.contains(&mount) {
            return None;
        }
        let hit = self.attrs.get(&(mount, node)).copied();
        if hit.is_some() {
            self.attr_hits += 1;
        } else {
            self.attr_misses += 1;
        }
        hit
    }

    pub fn put_attr(&mut self, mount: Mount, stat: Stat) {
        if self.uncached.contains(&mount) {
            return;
        }
        if self.attrs.len() >= CAPACITY {
            self.attrs.clear();
        }
        self.attrs.insert((mount, stat.ino), stat);
    }

    pub fn forget_attr(&mut self, mount: Mount, node: NodeId) {
        self.attrs.remove(&(mount, node));
    }

    /// Drop everything known about one mount (its server restarted, or it was unmounted).
    pub fn forget_mount(&mut self, mount: Mount) {
        self.dentries.retain(|k, _| k.0 != mount);
        self.attrs.retain(|k, _| k.0 != mount);
    }

    /// Stop (`true`) or resume caching `mount`; either way what was cached about it is dropped.
    pub fn set_uncached(&mut self, mount: Mount, uncached: bool) {
        self.forget_mount(mount);
        if uncached {
            self.uncached.insert(mount);
        } else {
            self.uncached.remove(&mount);
        }
    }

    pub fn len(&self) -> usize {
        self.dentries.len() + self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::fs::{FileType, Timespec};

    fn st(ino: NodeId) -> Stat {
        let t = Timespec::ZERO;
        Stat {
            ino,
            kind: FileType::File,
            mode: 0,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            blocks: 0,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
        }
    }

    #[test]
    fn hits_misses_and_invalidation() {
        let mut c = MetaCache::default();
        assert_eq!(c.dentry(0, 1, "a"), None);
        c.put_dentry(0, 1, "a", Some(5));
        c.put_dentry(0, 1, "b", None);
        assert_eq!(c.dentry(0, 1, "a"), Some(Some(5)));
        assert_eq!(c.dentry(0, 1, "b"), Some(None));
        assert_eq!(c.dentry(1, 1, "a"), None, "mounts are separate");
        c.forget_dentry(0, 1, "a");
        assert_eq!(c.dentry(0, 1, "a"), None);
        c.put_attr(0, st(5));
        assert_eq!(c.attr(0, 5).map(|s| s.ino), Some(5));
        c.forget_mount(0);
        assert_eq!(c.attr(0, 5), None);
        assert_eq!((c.dentry_hits, c.dentry_misses, c.attr_hits, c.attr_misses), (2, 3, 1, 1));
    }

    #[test]
    fn an_uncached_mount_is_neither_filled_nor_answered() {
        let mut c = MetaCache::default();
        c.put_attr(0, st(5));
        c.put_attr(1, st(5));
        c.set_uncached(0, true);
        assert_eq!(c.attr(0, 5), None);
        c.put_attr(0, st(6));
        c.put_dentry(0, 1, "a", Some(6));
        assert_eq!((c.attr(0, 6), c.dentry(0, 1, "a")), (None, None));
        assert_eq!(c.attr(1, 5).map(|s| s.ino), Some(5), "other mounts stay cached");
        c.set_uncached(0, false);
        c.put_attr(0, st(6));
        assert_eq!(c.attr(0, 6).map(|s| s.ino), Some(6));
    }

    #[test]
    fn stays_bounded() {
        let mut c = MetaCache::default();
        for i in 0..(CAPACITY as u64 * 2 + 3) {
            c.put_attr(0, st(i));
        }
        assert!(c.len() <= CAPACITY);
    }
}
