//! Transactions with isolation: the owner's state (selected with `select_transaction`) and the
//! main state (everyone else) run side by side; the main state's syncs are durable without any of
//! the transaction; commit adopts or replays the transaction, or fails with `Conflict` and leaves
//! nothing of it; abort takes back only the transaction. fsck is clean after each, and the free
//! block count returns to where it was.

mod common;

use blockdev::RamDisk;
use common::*;
use protocol::fs::{FileSystem, FileType, NewNode, SetAttr};
use protocol::Error;
use wfs::Wfs;

/// The image as a power cut now would leave it, mounted.
fn power_cut(fs: &mut Wfs<RamDisk>) -> Wfs<RamDisk> {
    let copy = RamDisk::from_bytes(fs.device_mut().as_bytes().to_vec());
    let mut cut = Wfs::mount(copy, clock()).unwrap();
    let r = cut.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    cut
}

fn clean(fs: &mut Wfs<RamDisk>) {
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

fn content(fs: &mut Wfs<RamDisk>, path: &str) -> Option<Vec<u8>> {
    let root = fs.root();
    let ino = fs.lookup(root, path).ok()?.ino;
    Some(read_all(fs, ino))
}

/// A filesystem with `shared` (committed) in the root.
fn setup() -> (Wfs<RamDisk>, u64) {
    let mut fs = fresh(8);
    let root = fs.root();
    let shared = mkfile(&mut fs, root, "shared", b"base");
    fs.sync().unwrap();
    (fs, shared)
}

#[test]
fn the_owner_sees_its_changes_and_nobody_else_does() {
    let (mut fs, shared) = setup();
    let root = fs.root();
    let tx = fs.begin_transaction().unwrap();
    assert_eq!(fs.selected_transaction(), Some(tx), "begin selects the transaction");
    mkfile(&mut fs, root, "in-tx", b"owner's");
    fs.write(shared, 0, b"OWNR").unwrap();
    assert_eq!(content(&mut fs, "in-tx").unwrap(), b"owner's");
    assert_eq!(content(&mut fs, "shared").unwrap(), b"OWNR");
    fs.select_transaction(None).unwrap();
    assert_eq!(fs.lookup(root, "in-tx"), Err(Error::NotFound));
    assert_eq!(content(&mut fs, "shared").unwrap(), b"base");
    mkfile(&mut fs, root, "outside", b"other's");
    fs.select_transaction(Some(tx)).unwrap();
    assert_eq!(fs.lookup(root, "outside"), Err(Error::NotFound), "snapshot isolation for the owner");
    assert_eq!(fs.select_transaction(Some(tx + 1)), Err(Error::NoSuchTransaction));
    assert_eq!(fs.begin_transaction(), Err(Error::Busy), "one open transaction per filesystem");
}

#[test]
fn another_states_fsync_is_durable_without_the_transaction() {
    let (mut fs, shared) = setup();
    let root = fs.root();
    let tx = fs.begin_transaction().unwrap();
    mkfile(&mut fs, root, "in-tx", &pattern(50_000, 1));
    fs.write(shared, 0, b"TX").unwrap();
    assert_eq!(fs.fsync(shared), Err(Error::Busy), "nothing of a transaction is durable before its commit");
    fs.select_transaction(None).unwrap();
    let other = mkfile(&mut fs, root, "other", &pattern(30_000, 2));
    fs.fsync(other).unwrap();
    let mut cut = power_cut(&mut fs);
    assert_eq!(content(&mut cut, "other").unwrap(), pattern(30_000, 2));
    assert_eq!(content(&mut cut, "shared").unwrap(), b"base");
    assert_eq!(cut.lookup(root, "in-tx"), Err(Error::NotFound));
    // The main state goes on; the transaction is still open and commits afterwards.
    fs.write(other, 0, b"again").unwrap();
    fs.sync().unwrap();
    fs.commit_transaction(tx).unwrap();
    let mut cut = power_cut(&mut fs);
    assert_eq!(content(&mut cut, "in-tx").unwrap(), pattern(50_000, 1));
    assert_eq!(&content(&mut cut, "shared").unwrap()[..4], b"TXse");
    assert_eq!(&content(&mut cut, "other").unwrap()[..5], b"again");
    clean(&mut fs);
}

#[test]
fn abort_takes_back_only_the_transaction_and_its_space() {
    let (mut fs, shared) = setup();
    let root = fs.root();
    let free = fs.statfs().unwrap().free_blocks;
    let tx = fs.begin_transaction().unwrap();
    mkfile(&mut fs, root, "in-tx", &pattern(100_000, 3));
    fs.write(shared, 0, &pattern(20_000, 4)).unwrap();
    fs.unlink(root, "shared").unwrap();
    fs.select_transaction(None).unwrap();
    let other = mkfile(&mut fs, root, "other", b"kept");
    fs.sync().unwrap();
    fs.abort_transaction(tx).unwrap();
    assert_eq!(fs.selected_transaction(), None);
    assert_eq!(fs.lookup(root, "in-tx"), Err(Error::NotFound));
    assert_eq!(content(&mut fs, "shared").unwrap(), b"base");
    assert_eq!(read_all(&mut fs, other), b"kept");
    clean(&mut fs);
    // Without the other change, the space comes back exactly.
    fs.unlink(root, "other").unwrap();
    fs.sync().unwrap();
    let tx = fs.begin_transaction().unwrap();
    mkfile(&mut fs, root, "in-tx", &pattern(100_000, 3));
    fs.setattr(shared, SetAttr { size: Some(0), ..Default::default() }).unwrap();
    fs.abort_transaction(tx).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.statfs().unwrap().free_blocks, free);
    clean(&mut fs);
    let mut fs = remount(fs);
    assert_eq!(fs.statfs().unwrap().free_blocks, free);
    assert_eq!(content(&mut fs, "shared").unwrap(), b"base");
}

#[test]
fn commit_without_other_changes_adopts_the_transaction() {
    let (mut fs, shared) = setup();
    let root = fs.root();
    let tx = fs.begin_transaction().unwrap();
    let d = mkdir(&mut fs, root, "d");
    mkfile(&mut fs, d, "f", &pattern(70_000, 5));
    fs.unlink(root, "shared").unwrap();
    fs.commit_transaction(tx).unwrap();
    assert_eq!(fs.selected_transaction(), None);
    assert_eq!(fs.lookup(root, "shared"), Err(Error::NotFound));
    let mut cut = power_cut(&mut fs);
    assert_eq!(content(&mut cut, "shared"), None);
    let f = cut.lookup(d, "f").unwrap().ino;
    assert_eq!(read_all(&mut cut, f), pattern(70_000, 5));
    clean(&mut fs);
    let _ = shared;
    let mut fs = remount(fs);
    clean(&mut fs);
}

#[test]
fn commit_replays_over_changes_to_other_things() {
    let (mut fs, shared) = setup();
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    let theirs = mkfile(&mut fs, root, "theirs", b"old");
    fs.sync().unwrap();
    let tx = fs.begin_transaction().unwrap();
    let mine = mkfile(&mut fs, d, "mine", &pattern(40_000, 6));
    fs.write(shared, 2, b"SE").unwrap();
    fs.rename(d, "mine", root, "mine2").unwrap();
    fs.select_transaction(None).unwrap();
    // The same directories, other names and nodes.
    mkfile(&mut fs, d, "x", b"x");
    mkfile(&mut fs, root, "y", &pattern(10_000, 7));
    fs.write(theirs, 0, b"new").unwrap();
    fs.sync().unwrap();
    fs.commit_transaction(tx).unwrap();
    assert_eq!(fs.lookup(root, "mine2").unwrap().ino, mine, "the owner's inode numbers stay");
    assert_eq!(read_all(&mut fs, mine), pattern(40_000, 6));
    assert_eq!(content(&mut fs, "shared").unwrap(), b"baSE");
    assert_eq!(content(&mut fs, "theirs").unwrap(), b"new");
    assert_eq!(content(&mut fs, "y").unwrap(), pattern(10_000, 7));
    assert!(fs.lookup(d, "x").is_ok());
    assert_eq!(fs.getattr(root).unwrap().nlink, 3);
    clean(&mut fs);
    let mut cut = power_cut(&mut fs);
    assert_eq!(read_all(&mut cut, mine), pattern(40_000, 6));
    let mut fs = remount(fs);
    clean(&mut fs);
    assert_eq!(content(&mut fs, "y").unwrap(), pattern(10_000, 7));
}

#[test]
fn conflicting_changes_fail_the_commit_and_leave_nothing() {
    // The same file written on both sides; the same name created on both; a directory the
    // transaction fills removed by the other side (the replay fails).
    type Side = fn(&mut Wfs<RamDisk>, u64, u64) -> u64;
    let cases: [(&str, Side, Side); 3] = [
        ("same file", |fs, s, _| fs.write(s, 0, b"A").unwrap() as u64, |fs, s, _| fs.write(s, 1, b"B").unwrap() as u64),
        (
            "same name",
            |fs, _, _| mkfile(fs, 1, "n", b"A"),
            |fs, _, _| fs.create(1, "n", &NewNode::new(FileType::Directory, 0o755)).unwrap().ino,
        ),
        ("removed directory", |fs, _, d| mkfile(fs, d, "in", b"A"), |fs, _, _| fs.rmdir(1, "d").map(|_| 0).unwrap()),
    ];
    for (what, mine, theirs) in cases {
        let (mut fs, shared) = setup();
        let root = fs.root();
        let d = mkdir(&mut fs, root, "d");
        fs.sync().unwrap();
        let before = dump(&mut fs);
        let tx = fs.begin_transaction().unwrap();
        mkfile(&mut fs, root, "tx-only", &pattern(9000, 8));
        mine(&mut fs, shared, d);
        fs.select_transaction(None).unwrap();
        theirs(&mut fs, shared, d);
        let after_theirs = dump(&mut fs);
        assert_ne!(before, after_theirs);
        assert_eq!(fs.commit_transaction(tx), Err(Error::Conflict), "{what}");
        assert_eq!(fs.open_transaction(), None, "{what}: rolled back");
        assert_eq!(dump(&mut fs), after_theirs, "{what}: nothing of the transaction");
        assert_eq!(fs.commit_transaction(tx), Err(Error::NoSuchTransaction));
        fs.sync().unwrap();
        clean(&mut fs);
        let mut fs = remount(fs);
        assert_eq!(dump(&mut fs), after_theirs, "{what}");
        clean(&mut fs);
    }
}

#[test]
fn a_transaction_log_past_its_bound_fails_the_operation_clearly() {
    let mut fs = fresh(32);
    let root = fs.root();
    let shared = mkfile(&mut fs, root, "shared", b"base");
    let _tx = fs.begin_transaction().unwrap();
    let chunk = vec![7u8; 1 << 20];
    let mut n = 0;
    let err = loop {
        match fs.write(shared, n * chunk.len() as u64, &chunk) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 64, "no bound");
    };
    assert_eq!(err, Error::TooBig);
    assert_eq!(n as usize, wfs::TX_LOG_BYTES >> 20);
    // The failed write left nothing; the transaction goes on.
    assert_eq!(fs.getattr(shared).unwrap().size, n * chunk.len() as u64);
    assert_eq!(fs.create(root, "more", &NewNode::new(FileType::File, 0o644)).map(|s| s.kind), Ok(FileType::File));
}

#[test]
fn a_main_state_past_its_write_set_bound_makes_the_commit_conflict() {
    let (mut fs, _) = setup();
    let root = fs.root();
    let tx = fs.begin_transaction().unwrap();
    mkfile(&mut fs, root, "mine", b"m");
    fs.select_transaction(None).unwrap();
    let d = mkdir(&mut fs, root, "many");
    // Two objects (the name and the node) per create.
    for i in 0..wfs::TX_MAIN_OBJS / 2 + 1 {
        fs.create(d, &format!("f{i}"), &NewNode::new(FileType::Fifo, 0o600)).unwrap();
    }
    assert_eq!(fs.commit_transaction(tx), Err(Error::Conflict));
    assert_eq!(fs.lookup(root, "mine"), Err(Error::NotFound));
    fs.sync().unwrap();
    clean(&mut fs);
}

#[test]
fn a_replay_repeats_unlinks_of_open_files_and_directory_renames() {
    let (mut fs, shared) = setup();
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    let inner = mkfile(&mut fs, d, "inner", &pattern(6000, 9));
    fs.sync().unwrap();
    let tx = fs.begin_transaction().unwrap();
    // Unlinked while open, then closed: deleted at the release (logged as such).
    fs.open(shared).unwrap();
    fs.unlink(root, "shared").unwrap();
    assert_eq!(read_all(&mut fs, shared), b"base", "still readable while open");
    fs.release(shared).unwrap();
    let e = mkdir(&mut fs, root, "e");
    fs.rename(root, "d", e, "d2").unwrap();
    fs.select_transaction(None).unwrap();
    mkfile(&mut fs, root, "other", b"o");
    assert_eq!(content(&mut fs, "shared").unwrap(), b"base");
    fs.commit_transaction(tx).unwrap();
    assert_eq!(fs.lookup(root, "shared"), Err(Error::NotFound));
    assert_eq!(fs.getattr(shared), Err(Error::NotFound), "the node is gone, not orphaned");
    assert_eq!(fs.lookup(e, "d2").unwrap().ino, d);
    assert_eq!(read_all(&mut fs, inner), pattern(6000, 9));
    assert_eq!(fs.getattr(d).unwrap().nlink, 2);
    assert_eq!(fs.getattr(root).unwrap().nlink, 3, "root: itself, e");
    fs.sync().unwrap();
    clean(&mut fs);
    // fsck's walk == allocation == space map: the deleted file's blocks were not leaked.
    let mut fs = remount(fs);
    clean(&mut fs);
}
