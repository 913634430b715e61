//! POSIX behaviours that pjdfstest checks through the FUSE mount, tested on the library directly:
//! over-long names are `NameTooLong` on every path (not `NotFound`), a directory's modification
//! time moves when names are added to or removed from it (rename included, on both sides), and an
//! unlinked file that is still open reports no links, stays readable and writable, and keeps its
//! clusters until the last release.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType};
use protocol::fs::{Clock, FileSystem, FileType, NewNode, NodeId, SetAttr, Timespec};
use protocol::Error;

/// A clock the test moves by hand (shared with the mounted volume).
#[derive(Clone)]
struct StepClock(Arc<AtomicI64>);

impl Clock for StepClock {
    fn now(&self) -> Timespec {
        Timespec::new(self.0.load(Ordering::SeqCst), 0)
    }
}

impl StepClock {
    /// Move on by more than FAT's 2-second modification-time granularity.
    fn advance(&self) {
        self.0.fetch_add(10, Ordering::SeqCst);
    }
}

fn volume(kind: FatType, sectors: u64) -> (FatFs<RamDisk>, StepClock) {
    let clock = StepClock(Arc::new(AtomicI64::new(1_700_000_000)));
    let fs = format(kind, sectors, None);
    let fs = FatFs::mount(fs.unmount().unwrap(), Box::new(clock.clone())).unwrap();
    (fs, clock)
}

fn mtime(fs: &mut FatFs<RamDisk>, id: NodeId) -> i64 {
    let st = fs.getattr(id).unwrap();
    assert_eq!(st.mtime, st.ctime, "FAT reports the modification time as ctime");
    st.mtime.secs
}

/// Run `op` one clock step later and require that it moved the mtime of every dir in `dirs`.
fn assert_touches(fs: &mut FatFs<RamDisk>, clock: &StepClock, dirs: &[NodeId], op: impl FnOnce(&mut FatFs<RamDisk>)) {
    let before: Vec<i64> = dirs.iter().map(|&d| mtime(fs, d)).collect();
    clock.advance();
    op(fs);
    for (&d, b) in dirs.iter().zip(before) {
        assert!(mtime(fs, d) > b, "mtime of directory {d} did not change");
    }
}

#[test]
fn over_long_names_are_name_too_long_everywhere() {
    let (mut fs, _) = volume(FatType::Fat32, 40 * 2048);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    file(&mut fs, d, "f");
    let long = "x".repeat(256);
    let max = "y".repeat(255);
    // The longest legal name works end to end.
    file(&mut fs, d, &max);
    assert!(fs.lookup(d, &max).is_ok());
    // One character more is refused by every call that takes a name, existing or not.
    let file_node = NewNode::new(FileType::File, 0o644);
    let dir_node = NewNode::new(FileType::Directory, 0o755);
    assert_eq!(fs.lookup(d, &long).unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.create(d, &long, &file_node).unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.create(d, &long, &dir_node).unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.unlink(d, &long).unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.rmdir(d, &long).unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.rename(d, &long, d, "g").unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.rename(d, "f", d, &long).unwrap_err(), Error::NameTooLong);
    // 255 characters that take 256 UTF-16 units (one outside the BMP) are too long as well.
    let wide = format!("{}\u{1F600}", "z".repeat(254));
    assert_eq!(fs.lookup(d, &wide).unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.create(d, &wide, &file_node).unwrap_err(), Error::NameTooLong);
    // Nothing changed.
    let names: Vec<_> = fs.readdir(d, 0, 10).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["f", max.as_str()]);
    let r = fs.check().unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn directory_mtime_follows_entry_changes() {
    for (kind, sectors) in [(FatType::Fat12, 4 * 2048), (FatType::Fat16, 20 * 2048), (FatType::Fat32, 40 * 2048)] {
        let (mut fs, clock) = volume(kind, sectors);
        let root = fs.root();
        let a = mkdir(&mut fs, root, "a");
        let b = mkdir(&mut fs, root, "b");
        assert_touches(&mut fs, &clock, &[a], |fs| {
            file(fs, a, "file");
        });
        assert_touches(&mut fs, &clock, &[a], |fs| {
            mkdir(fs, a, "sub");
        });
        assert_touches(&mut fs, &clock, &[a], |fs| fs.rename(a, "file", a, "renamed").unwrap());
        assert_touches(&mut fs, &clock, &[a, b], |fs| fs.rename(a, "renamed", b, "moved").unwrap());
        assert_touches(&mut fs, &clock, &[a, b], |fs| fs.rename(a, "sub", b, "subdir").unwrap());
        assert_touches(&mut fs, &clock, &[b], |fs| fs.unlink(b, "moved").unwrap());
        assert_touches(&mut fs, &clock, &[b], |fs| fs.rmdir(b, "subdir").unwrap());
        // The root has no entry of its own; it still reports the change while mounted.
        assert_touches(&mut fs, &clock, &[root], |fs| {
            file(fs, root, "top");
        });
        // A refused call changes nothing.
        let before = mtime(&mut fs, a);
        clock.advance();
        assert_eq!(fs.unlink(a, "missing").unwrap_err(), Error::NotFound);
        assert_eq!(mtime(&mut fs, a), before);
        // The new times reach the disk.
        let want = (mtime(&mut fs, a), mtime(&mut fs, b));
        let fs = FatFs::mount(fs.unmount().unwrap(), Box::new(clock.clone())).unwrap();
        let mut fs = fs;
        let (a, b) = (walk(&mut fs, "/a").unwrap(), walk(&mut fs, "/b").unwrap());
        assert_eq!((mtime(&mut fs, a), mtime(&mut fs, b)), want, "{kind:?}");
        let r = fs.check().unwrap();
        assert!(r.is_clean(), "{kind:?}: {r}");
    }
}

#[test]
fn new_node_times_are_equal_and_match_the_parent_change() {
    let (mut fs, clock) = volume(FatType::Fat16, 20 * 2048);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    clock.advance();
    let f = fs.create(d, "f", &NewNode::new(FileType::File, 0o644)).unwrap();
    assert_eq!(f.mtime, f.ctime);
    assert_eq!(fs.getattr(d).unwrap().mtime, f.mtime);
}

#[test]
fn unlinked_open_file_has_no_links_and_keeps_working() {
    let (mut fs, _) = volume(FatType::Fat32, 40 * 2048);
    let root = fs.root();
    let free = fs.statfs().unwrap().free_blocks;
    let f = file(&mut fs, root, "open.bin");
    fs.open(f).unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    fs.unlink(root, "open.bin").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 0);
    // I/O after the unlink, growing the file from nothing.
    fs.write(f, 0, &data(5000, 3)).unwrap();
    assert_eq!(read_all(&mut fs, f), data(5000, 3));
    assert!(fs.statfs().unwrap().free_blocks < free, "an open file's clusters counted as free");
    fs.setattr(f, SetAttr { size: Some(100), ..Default::default() }).unwrap();
    assert_eq!(read_all(&mut fs, f), data(100, 3));
    fs.sync().unwrap();
    assert!(fs.statfs().unwrap().free_blocks < free);
    fs.release(f).unwrap();
    assert_eq!(fs.statfs().unwrap().free_blocks, free);
    let r = fs.check().unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn directory_link_count_is_two_plus_subdirectories() {
    let (mut fs, _) = volume(FatType::Fat16, 20 * 2048);
    let root = fs.root();
    let a = mkdir(&mut fs, root, "a");
    let b = mkdir(&mut fs, root, "b");
    mkdir(&mut fs, a, "sub");
    file(&mut fs, a, "plain file");
    let nlink = |fs: &mut FatFs<RamDisk>, id| fs.getattr(id).unwrap().nlink;
    assert_eq!((nlink(&mut fs, root), nlink(&mut fs, a), nlink(&mut fs, b)), (4, 3, 2));
    fs.rename(a, "sub", b, "moved").unwrap();
    assert_eq!((nlink(&mut fs, a), nlink(&mut fs, b)), (2, 3));
    // Straight after a remount too (the count comes from the directory on disk).
    let mut fs = FatFs::mount(fs.unmount().unwrap(), clock()).unwrap();
    let b = walk(&mut fs, "/b").unwrap();
    assert_eq!(fs.lookup(root, "b").unwrap().nlink, 3);
    fs.rmdir(b, "moved").unwrap();
    assert_eq!(nlink(&mut fs, b), 2);
}
