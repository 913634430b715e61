//! Snapshots: create, list, read-only views, survival across remount, and space returned on delete.

mod common;

use common::*;
use protocol::fs::{FileSystem, FileType, NewNode};
use protocol::Error;

#[test]
fn snapshot_view_keeps_the_old_state() {
    let mut fs = fresh(16);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    let f = mkfile(&mut fs, d, "f", &pattern(20_000, 1));
    fs.create_snapshot("one").unwrap();
    fs.write(f, 100, b"CHANGED").unwrap();
    fs.rename(d, "f", root, "moved").unwrap();
    mkfile(&mut fs, root, "new", b"n");
    fs.create_snapshot("two").unwrap();
    fs.unlink(root, "moved").unwrap();

    let mut fs = remount(fs);
    let names: Vec<String> = fs.list_snapshots().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["one", "two"]);
    {
        let mut v = fs.snapshot("one").unwrap();
        let sd = v.lookup(root, "d").unwrap().ino;
        let sf = v.lookup(sd, "f").unwrap().ino;
        assert_eq!(read_all(&mut v, sf), pattern(20_000, 1));
        assert_eq!(v.lookup(root, "new").unwrap_err(), Error::NotFound);
        assert_eq!(v.write(sf, 0, b"x").unwrap_err(), Error::ReadOnly);
        assert_eq!(v.create(root, "x", &NewNode::new(FileType::File, 0o644)).unwrap_err(), Error::ReadOnly);
        assert_eq!(v.unlink(sd, "f").unwrap_err(), Error::ReadOnly);
    }
    {
        let mut v = fs.snapshot("two").unwrap();
        let m = v.lookup(root, "moved").unwrap().ino;
        let data = read_all(&mut v, m);
        assert_eq!(&data[100..107], b"CHANGED");
        assert!(v.lookup(root, "new").is_ok());
    }
    assert_eq!(fs.lookup(root, "moved").unwrap_err(), Error::NotFound);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.snapshots, 2);
}

#[test]
fn deleting_a_snapshot_gives_its_space_back() {
    let mut fs = fresh(32);
    let root = fs.root();
    fs.sync().unwrap();
    let free0 = fs.statfs().unwrap().free_blocks;
    mkfile(&mut fs, root, "big", &pattern(8 << 20, 2));
    fs.create_snapshot("keep").unwrap();
    fs.unlink(root, "big").unwrap();
    fs.sync().unwrap();
    // The snapshot still holds the 2048 data blocks.
    assert!(fs.statfs().unwrap().free_blocks + 2048 <= free0);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    fs.delete_snapshot("keep").unwrap();
    assert!(fs.statfs().unwrap().free_blocks + 16 >= free0, "space did not come back");
    assert!(fs.list_snapshots().unwrap().is_empty());
    let mut fs = remount(fs);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    assert!(fs.statfs().unwrap().free_blocks + 16 >= free0);
}

#[test]
fn overwrites_after_a_snapshot_do_not_touch_it() {
    let mut fs = fresh(16);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "f", &pattern(64 * 1024, 3));
    fs.create_snapshot("s").unwrap();
    for round in 0..5u64 {
        fs.write(f, round * 5000, &pattern(9000, 10 + round)).unwrap();
        fs.sync().unwrap();
    }
    fs.create_snapshot("s2").unwrap();
    fs.setattr(f, protocol::fs::SetAttr { size: Some(10), ..Default::default() }).unwrap();
    fs.delete_snapshot("s2").unwrap();
    let mut v = fs.snapshot("s").unwrap();
    let sf = v.lookup(root, "f").unwrap().ino;
    assert_eq!(read_all(&mut v, sf), pattern(64 * 1024, 3));
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn snapshot_name_rules() {
    let mut fs = fresh(8);
    fs.create_snapshot("a").unwrap();
    assert_eq!(fs.create_snapshot("a").unwrap_err(), Error::AlreadyExists);
    assert_eq!(fs.delete_snapshot("b").unwrap_err(), Error::NotFound);
    assert!(fs.snapshot("b").is_err());
    assert_eq!(fs.create_snapshot("").unwrap_err(), Error::InvalidArgument);
    let tx = fs.begin_transaction().unwrap();
    assert_eq!(fs.create_snapshot("c").unwrap_err(), Error::Busy);
    fs.commit_transaction(tx).unwrap();
}
