//! Administrative operations passed to the filesystem holding a path: snapshots and scrub.
//!
//! Design: like `statfs` and `begin`, the path only picks the mount (whatever it resolves to, its
//! mount's filesystem answers); the VFS adds no state of its own, so a filesystem without the
//! operation answers `NotSupported` through the trait's default. A snapshot changes nothing the VFS
//! caches (it captures, it does not modify), and neither does a scrub (repairs rewrite copies of the
//! same contents), so the metadata cache stays valid.

use alloc::vec::Vec;

use protocol::api::filesystem::{ScrubSummary, SnapshotInfo};
use protocol::Result;

use crate::Vfs;

impl Vfs {
    fn mount_holding(&mut self, path: &str) -> Result<usize> {
        Ok(self.resolve(path, true)?.loc.mount)
    }

    /// Snapshot `name` of the filesystem holding `path`.
    pub fn snapshot_create(&mut self, path: &str, name: &str) -> Result<()> {
        let mount = self.mount_holding(path)?;
        self.with_fs(mount, |fs| fs.snapshot_create(name))
    }

    /// The snapshots of the filesystem holding `path`, oldest first.
    pub fn snapshot_list(&mut self, path: &str) -> Result<Vec<SnapshotInfo>> {
        let mount = self.mount_holding(path)?;
        self.with_fs(mount, |fs| fs.snapshot_list())
    }

    pub fn snapshot_delete(&mut self, path: &str, name: &str) -> Result<()> {
        let mount = self.mount_holding(path)?;
        self.with_fs(mount, |fs| fs.snapshot_delete(name))
    }

    /// Scrub the filesystem holding `path`.
    pub fn scrub(&mut self, path: &str) -> Result<ScrubSummary> {
        let mount = self.mount_holding(path)?;
        self.with_fs(mount, |fs| fs.run_scrub())
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use memfs::MemFs;
    use protocol::Error;

    use crate::Vfs;

    #[test]
    fn a_filesystem_without_snapshots_says_so() {
        let mut v = Vfs::new(Box::new(MemFs::new(Box::new(protocol::fs::FixedClock::default()))));
        assert_eq!(v.snapshot_create("/", "s"), Err(Error::NotSupported));
        assert_eq!(v.snapshot_list("/"), Err(Error::NotSupported));
        assert_eq!(v.snapshot_delete("/", "s"), Err(Error::NotSupported));
        assert_eq!(v.scrub("/"), Err(Error::NotSupported));
        assert_eq!(v.scrub("/missing"), Err(Error::NotFound));
    }
}
