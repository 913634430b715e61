//! Unit tests of memfs: POSIX semantics of every operation, one behaviour per test.

extern crate std;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use protocol::fs::{Clock, FileSystem, FileType, NewNode, SetAttr, Timespec};
use protocol::Error;

use crate::{Limits, MemFs, CHUNK, ROOT};

/// A clock tests can move forward.
#[derive(Clone, Default)]
struct TestClock(Arc<AtomicI64>);

impl Clock for TestClock {
    fn now(&self) -> Timespec {
        Timespec::new(self.0.load(Ordering::SeqCst), 0)
    }
}

impl TestClock {
    fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::SeqCst)
    }
}

fn fs() -> (MemFs, TestClock) {
    let clock = TestClock::default();
    clock.set(100);
    (MemFs::new(Box::new(clock.clone())), clock)
}

fn file(fs: &mut MemFs, dir: u64, name: &str) -> u64 {
    fs.create(dir, name, &NewNode::new(FileType::File, 0o644)).unwrap().ino
}

fn dir(fs: &mut MemFs, parent: u64, name: &str) -> u64 {
    fs.create(parent, name, &NewNode::new(FileType::Directory, 0o755)).unwrap().ino
}

fn names(fs: &mut MemFs, d: u64) -> Vec<String> {
    fs.readdir(d, 0, usize::MAX).unwrap().into_iter().map(|e| e.name).collect()
}

fn read_all(fs: &mut MemFs, ino: u64) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size + 10];
    let n = fs.read(ino, 0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn root_is_an_empty_directory() {
    let (mut fs, _) = fs();
    let st = fs.getattr(ROOT).unwrap();
    assert_eq!(st.kind, FileType::Directory);
    assert_eq!(st.nlink, 2);
    assert!(names(&mut fs, ROOT).is_empty());
}

#[test]
fn create_lookup_write_read() {
    let (mut fs, _) = fs();
    let f = file(&mut fs, ROOT, "a.txt");
    assert_eq!(fs.lookup(ROOT, "a.txt").unwrap().ino, f);
    assert_eq!(fs.write(f, 0, b"hello world").unwrap(), 11);
    assert_eq!(fs.write(f, 6, b"WORLD!").unwrap(), 6);
    assert_eq!(read_all(&mut fs, f), b"hello WORLD!");
    let mut buf = [0u8; 4];
    assert_eq!(fs.read(f, 100, &mut buf).unwrap(), 0);
    assert_eq!(fs.read(f, 10, &mut buf).unwrap(), 2);
    assert_eq!(fs.lookup(ROOT, "missing"), Err(Error::NotFound));
}

#[test]
fn create_existing_name_fails() {
    let (mut fs, _) = fs();
    file(&mut fs, ROOT, "x");
    let again = fs.create(ROOT, "x", &NewNode::new(FileType::Directory, 0o755));
    assert_eq!(again, Err(Error::AlreadyExists));
}

#[test]
fn bad_names_are_rejected() {
    let (mut fs, _) = fs();
    for bad in ["", ".", "..", "a/b", "nul\0"] {
        assert_eq!(fs.create(ROOT, bad, &NewNode::new(FileType::File, 0o644)), Err(Error::InvalidArgument), "{bad:?}");
    }
    let long: String = "n".repeat(256);
    assert_eq!(fs.create(ROOT, &long, &NewNode::new(FileType::File, 0o644)), Err(Error::NameTooLong));
    let ok: String = "n".repeat(255);
    file(&mut fs, ROOT, &ok);
}

#[test]
fn operations_on_wrong_node_kinds() {
    let (mut fs, _) = fs();
    let f = file(&mut fs, ROOT, "f");
    let d = dir(&mut fs, ROOT, "d");
    assert_eq!(fs.lookup(f, "x"), Err(Error::NotADirectory));
    assert_eq!(fs.create(f, "x", &NewNode::new(FileType::File, 0)), Err(Error::NotADirectory));
    assert_eq!(fs.read(d, 0, &mut [0u8; 4]), Err(Error::IsADirectory));
    assert_eq!(fs.write(d, 0, b"x"), Err(Error::IsADirectory));
    assert_eq!(fs.unlink(ROOT, "d"), Err(Error::IsADirectory));
    assert_eq!(fs.rmdir(ROOT, "f"), Err(Error::NotADirectory));
    assert_eq!(fs.readlink(f), Err(Error::InvalidArgument));
    assert_eq!(fs.readdir(f, 0, 10), Err(Error::NotADirectory));
    assert_eq!(fs.setattr(d, SetAttr { size: Some(0), ..Default::default() }), Err(Error::IsADirectory));
    assert_eq!(fs.getattr(999), Err(Error::NotFound));
}

#[test]
fn sparse_write_leaves_a_hole_of_zeros() {
    let (mut fs, _) = fs();
    let f = file(&mut fs, ROOT, "sparse");
    let far = 10 * 1024 * 1024;
    fs.write(f, far, b"end").unwrap();
    let st = fs.getattr(f).unwrap();
    assert_eq!(st.size, far + 3);
    assert_eq!(st.blocks, (CHUNK / 512) as u64, "only the written chunk is allocated");
    let mut buf = vec![0xAAu8; 8192];
    assert_eq!(fs.read(f, 4096, &mut buf).unwrap(), 8192);
    assert!(buf.iter().all(|&b| b == 0));
    let mut tail = [0u8; 3];
    fs.read(f, far, &mut tail).unwrap();
    assert_eq!(&tail, b"end");
}

#[test]
fn truncate_shrinks_then_extends_with_zeros() {
    let (mut fs, clock) = fs();
    let f = file(&mut fs, ROOT, "t");
    fs.write(f, 0, &[9u8; 10_000]).unwrap();
    clock.set(200);
    let st = fs.setattr(f, SetAttr { size: Some(5), ..Default::default() }).unwrap();
    assert_eq!((st.size, st.mtime.secs, st.ctime.secs), (5, 200, 200));
    assert_eq!(fs.chunks_used(), 1);
    fs.setattr(f, SetAttr { size: Some(9000), ..Default::default() }).unwrap();
    let data = read_all(&mut fs, f);
    assert_eq!(data.len(), 9000);
    assert_eq!(&data[..5], &[9u8; 5]);
    assert!(data[5..].iter().all(|&b| b == 0), "stale bytes must not reappear");
    assert_eq!(fs.setattr(f, SetAttr { size: Some(u64::MAX), ..Default::default() }), Err(Error::FileTooLarge));
}

#[test]
fn write_past_max_size_fails() {
    let (mut fs, _) = fs();
    let f = file(&mut fs, ROOT, "big");
    assert_eq!(fs.write(f, u64::MAX - 1, b"abc"), Err(Error::FileTooLarge));
    assert_eq!(fs.write(f, i64::MAX as u64, b"a"), Err(Error::FileTooLarge));
    assert_eq!(fs.getattr(f).unwrap().size, 0);
}

#[test]
fn attributes_are_stored() {
    let (mut fs, clock) = fs();
    let node =
        NewNode { kind: FileType::File, mode: 0o4750, uid: 1000, gid: 50, rdev: 0, symlink_target: String::new() };
    let f = fs.create(ROOT, "own", &node).unwrap().ino;
    let st = fs.getattr(f).unwrap();
    assert_eq!((st.mode, st.uid, st.gid), (0o4750, 1000, 50));
    clock.set(300);
    let t = Timespec::new(42, 7);
    let st = fs
        .setattr(
            f,
            SetAttr { mode: Some(0o600), uid: Some(1), gid: Some(2), atime: Some(t), mtime: Some(t), size: None },
        )
        .unwrap();
    assert_eq!((st.mode, st.uid, st.gid, st.atime, st.mtime, st.ctime.secs), (0o600, 1, 2, t, t, 300));
    assert_eq!(fs.setattr(f, SetAttr { mode: Some(0o170000), ..Default::default() }), Err(Error::InvalidArgument));
}

#[test]
fn timestamps_follow_the_clock() {
    let (mut fs, clock) = fs();
    let f = file(&mut fs, ROOT, "f");
    let st = fs.getattr(f).unwrap();
    assert_eq!((st.atime.secs, st.mtime.secs, st.ctime.secs, st.crtime.secs), (100, 100, 100, 100));
    clock.set(150);
    fs.write(f, 0, b"x").unwrap();
    let st = fs.getattr(f).unwrap();
    assert_eq!((st.atime.secs, st.mtime.secs, st.ctime.secs), (100, 150, 150));
    clock.set(160);
    file(&mut fs, ROOT, "g");
    let root = fs.getattr(ROOT).unwrap();
    assert_eq!((root.mtime.secs, root.ctime.secs), (160, 160));
    clock.set(170);
    fs.link(f, ROOT, "f2").unwrap();
    assert_eq!(fs.getattr(f).unwrap().ctime.secs, 170);
    // Reading does not change atime (memfs behaves as noatime).
    fs.read(f, 0, &mut [0u8; 1]).unwrap();
    assert_eq!(fs.getattr(f).unwrap().atime.secs, 100);
}

#[test]
fn directory_link_counts() {
    let (mut fs, _) = fs();
    let a = dir(&mut fs, ROOT, "a");
    dir(&mut fs, a, "b");
    file(&mut fs, a, "f");
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    assert_eq!(fs.getattr(a).unwrap().nlink, 3);
    assert_eq!(fs.rmdir(ROOT, "a"), Err(Error::DirectoryNotEmpty));
    fs.rmdir(a, "b").unwrap();
    fs.unlink(a, "f").unwrap();
    assert_eq!(fs.getattr(a).unwrap().nlink, 2);
    fs.rmdir(ROOT, "a").unwrap();
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 2);
    assert_eq!(fs.node_count(), 1);
}

#[test]
fn hard_links_share_data_and_count() {
    let (mut fs, _) = fs();
    let f = file(&mut fs, ROOT, "one");
    let d = dir(&mut fs, ROOT, "d");
    fs.write(f, 0, b"shared").unwrap();
    assert_eq!(fs.link(f, d, "two").unwrap().nlink, 2);
    assert_eq!(fs.link(f, d, "two"), Err(Error::AlreadyExists));
    assert_eq!(fs.link(d, ROOT, "dirlink"), Err(Error::NotPermitted));
    fs.unlink(ROOT, "one").unwrap();
    let two = fs.lookup(d, "two").unwrap();
    assert_eq!((two.ino, two.nlink), (f, 1));
    assert_eq!(read_all(&mut fs, f), b"shared");
    fs.unlink(d, "two").unwrap();
    assert_eq!(fs.getattr(f), Err(Error::NotFound));
    assert_eq!(fs.chunks_used(), 0);
}

#[test]
fn symlinks_and_special_files() {
    let (mut fs, _) = fs();
    let mut n = NewNode::new(FileType::Symlink, 0o777);
    n.symlink_target = String::from("../some/where");
    let s = fs.create(ROOT, "ln", &n).unwrap();
    assert_eq!((s.kind, s.size), (FileType::Symlink, 13));
    assert_eq!(fs.readlink(s.ino).unwrap(), "../some/where");
    assert_eq!(fs.read(s.ino, 0, &mut [0u8; 4]), Err(Error::InvalidArgument));
    n.symlink_target = String::new();
    assert_eq!(fs.create(ROOT, "empty", &n), Err(Error::NotFound));
    n.symlink_target = "x".repeat(5000);
    assert_eq!(fs.create(ROOT, "long", &n), Err(Error::NameTooLong));

    let mut dev = NewNode::new(FileType::CharDevice, 0o600);
    dev.rdev = 0x0103;
    let c = fs.create(ROOT, "null", &dev).unwrap();
    assert_eq!((c.kind, c.rdev), (FileType::CharDevice, 0x0103));
    for (name, kind) in [("fifo", FileType::Fifo), ("sock", FileType::Socket), ("blk", FileType::BlockDevice)] {
        assert_eq!(fs.create(ROOT, name, &NewNode::new(kind, 0o644)).unwrap().kind, kind);
    }
    assert_eq!(fs.write(c.ino, 0, b"x"), Err(Error::InvalidArgument));
    let kinds: Vec<FileType> = fs.readdir(ROOT, 0, 100).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [FileType::Symlink, FileType::CharDevice, FileType::Fifo, FileType::Socket, FileType::BlockDevice]
    );
}

#[test]
fn unlinked_open_file_stays_readable_until_release() {
    let (mut fs, _) = fs();
    let f = file(&mut fs, ROOT, "tmp");
    fs.write(f, 0, b"still here").unwrap();
    fs.open(f).unwrap();
    fs.open(f).unwrap();
    fs.unlink(ROOT, "tmp").unwrap();
    assert_eq!(fs.lookup(ROOT, "tmp"), Err(Error::NotFound));
    assert_eq!(fs.getattr(f).unwrap().nlink, 0);
    fs.write(f, 10, b"!").unwrap();
    assert_eq!(read_all(&mut fs, f), b"still here!");
    assert_eq!(fs.link(f, ROOT, "back"), Err(Error::NotFound));
    fs.release(f).unwrap();
    assert!(fs.getattr(f).is_ok(), "one handle is still open");
    fs.release(f).unwrap();
    assert_eq!(fs.getattr(f), Err(Error::NotFound));
    assert_eq!(fs.chunks_used(), 0);
    assert_eq!(fs.release(f), Err(Error::NotFound));
    let g = file(&mut fs, ROOT, "g");
    assert_eq!(fs.release(g), Err(Error::InvalidArgument), "release without open");
}

#[test]
fn removed_open_directory_accepts_no_new_entries() {
    let (mut fs, _) = fs();
    let d = dir(&mut fs, ROOT, "d");
    fs.open(d).unwrap();
    fs.rmdir(ROOT, "d").unwrap();
    assert!(fs.readdir(d, 0, 10).unwrap().is_empty());
    assert_eq!(fs.create(d, "x", &NewNode::new(FileType::File, 0o644)), Err(Error::NotFound));
    fs.release(d).unwrap();
    assert_eq!(fs.getattr(d), Err(Error::NotFound));
}

#[test]
fn readdir_pages_with_cookies() {
    let (mut fs, _) = fs();
    for i in 0..10 {
        file(&mut fs, ROOT, &std::format!("f{i}"));
    }
    let mut seen = Vec::new();
    let mut cookie = 0;
    loop {
        let page = fs.readdir(ROOT, cookie, 3).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        cookie = page.last().unwrap().next_cookie;
        seen.extend(page.into_iter().map(|e| e.name));
    }
    let want: Vec<String> = (0..10).map(|i| std::format!("f{i}")).collect();
    assert_eq!(seen, want);
    assert!(fs.readdir(ROOT, u64::MAX, 3).unwrap().is_empty());
}

#[test]
fn readdir_cookies_stable_under_concurrent_changes() {
    let (mut fs, _) = fs();
    for name in ["m", "a", "z", "k"] {
        file(&mut fs, ROOT, name);
    }
    let first = fs.readdir(ROOT, 0, 2).unwrap();
    let cookie = first[1].next_cookie;
    // Between pages: add names that sort before and after, remove one already listed and one not.
    file(&mut fs, ROOT, "0first");
    file(&mut fs, ROOT, "zz");
    fs.unlink(ROOT, &first[0].name).unwrap();
    fs.unlink(ROOT, "k").unwrap();
    let rest: Vec<String> = fs.readdir(ROOT, cookie, 100).unwrap().into_iter().map(|e| e.name).collect();
    let listed: Vec<&str> = first.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(listed, ["m", "a"]);
    // No entry listed twice, every entry present throughout ("z") listed, newcomers after.
    assert_eq!(rest, ["z", "0first", "zz"]);
    // Removing the entry the cookie came from does not lose our place.
    fs.unlink(ROOT, "a").unwrap();
    let again: Vec<String> = fs.readdir(ROOT, cookie, 100).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(again, ["z", "0first", "zz"]);
}

#[test]
fn rename_simple_and_across_directories() {
    let (mut fs, clock) = fs();
    let f = file(&mut fs, ROOT, "a");
    let d = dir(&mut fs, ROOT, "d");
    clock.set(500);
    fs.rename(ROOT, "a", d, "b").unwrap();
    assert_eq!(fs.lookup(d, "b").unwrap().ino, f);
    assert_eq!(fs.lookup(ROOT, "a"), Err(Error::NotFound));
    assert_eq!(fs.getattr(f).unwrap().ctime.secs, 500);
    assert_eq!(fs.getattr(d).unwrap().mtime.secs, 500);
    assert_eq!(fs.rename(ROOT, "a", d, "c"), Err(Error::NotFound));
    // Moving a directory moves its ".." link count.
    let e = dir(&mut fs, ROOT, "e");
    fs.rename(ROOT, "e", d, "e").unwrap();
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);
    assert_eq!(fs.lookup(d, "e").unwrap().ino, e);
}

#[test]
fn rename_replaces_files_and_frees_the_old_target() {
    let (mut fs, _) = fs();
    let a = file(&mut fs, ROOT, "a");
    let b = file(&mut fs, ROOT, "b");
    fs.write(b, 0, b"old").unwrap();
    fs.rename(ROOT, "a", ROOT, "b").unwrap();
    assert_eq!(fs.lookup(ROOT, "b").unwrap().ino, a);
    assert_eq!(fs.getattr(b), Err(Error::NotFound));
    assert_eq!(names(&mut fs, ROOT), ["b"]);
    assert_eq!(fs.chunks_used(), 0);
}

#[test]
fn rename_posix_replace_rules() {
    let (mut fs, _) = fs();
    let d1 = dir(&mut fs, ROOT, "d1");
    let d2 = dir(&mut fs, ROOT, "d2");
    file(&mut fs, ROOT, "f");
    // Directory over a non-directory, and the reverse.
    assert_eq!(fs.rename(ROOT, "d1", ROOT, "f"), Err(Error::NotADirectory));
    assert_eq!(fs.rename(ROOT, "f", ROOT, "d1"), Err(Error::IsADirectory));
    // Directory over a non-empty directory.
    file(&mut fs, d2, "inside");
    assert_eq!(fs.rename(ROOT, "d1", ROOT, "d2"), Err(Error::DirectoryNotEmpty));
    // Directory over an empty directory replaces it.
    fs.unlink(d2, "inside").unwrap();
    fs.rename(ROOT, "d1", ROOT, "d2").unwrap();
    assert_eq!(fs.lookup(ROOT, "d2").unwrap().ino, d1);
    assert_eq!(fs.getattr(d2), Err(Error::NotFound));
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    // Failed renames changed nothing.
    assert_eq!(names(&mut fs, ROOT), ["d2", "f"], "the replaced name keeps its place");
}

#[test]
fn rename_into_own_subtree_is_invalid() {
    let (mut fs, _) = fs();
    let a = dir(&mut fs, ROOT, "a");
    let b = dir(&mut fs, a, "b");
    let c = dir(&mut fs, b, "c");
    assert_eq!(fs.rename(ROOT, "a", c, "x"), Err(Error::InvalidArgument));
    assert_eq!(fs.rename(ROOT, "a", a, "x"), Err(Error::InvalidArgument));
    // Onto an ancestor: the ancestor is not empty.
    assert_eq!(fs.rename(b, "c", ROOT, "a"), Err(Error::DirectoryNotEmpty));
    // Moving up is fine, and re-parents the subtree.
    fs.rename(b, "c", ROOT, "c").unwrap();
    fs.rename(ROOT, "a", c, "a").unwrap();
    assert_eq!(fs.lookup(c, "a").unwrap().ino, a);
    assert_eq!(fs.rename(ROOT, "c", b, "c"), Err(Error::InvalidArgument));
}

#[test]
fn rename_between_links_of_one_node_does_nothing() {
    let (mut fs, _) = fs();
    let f = file(&mut fs, ROOT, "a");
    fs.link(f, ROOT, "b").unwrap();
    fs.rename(ROOT, "a", ROOT, "b").unwrap();
    assert_eq!(names(&mut fs, ROOT), ["a", "b"]);
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    fs.rename(ROOT, "a", ROOT, "a").unwrap();
    assert_eq!(names(&mut fs, ROOT), ["a", "b"]);
}

#[test]
fn rename_over_open_file_keeps_it_alive() {
    let (mut fs, _) = fs();
    file(&mut fs, ROOT, "new");
    let old = file(&mut fs, ROOT, "old");
    fs.write(old, 0, b"data").unwrap();
    fs.open(old).unwrap();
    fs.rename(ROOT, "new", ROOT, "old").unwrap();
    assert_eq!(read_all(&mut fs, old), b"data");
    fs.release(old).unwrap();
    assert_eq!(fs.getattr(old), Err(Error::NotFound));
}

#[test]
fn limits_give_no_space() {
    let clock = TestClock::default();
    let mut fs = MemFs::with_limits(Box::new(clock), Limits { max_chunks: 2, max_nodes: 3 });
    let f = file(&mut fs, ROOT, "f");
    fs.write(f, 0, &[1u8; 2 * CHUNK]).unwrap();
    assert_eq!(fs.write(f, 2 * CHUNK as u64, b"x"), Err(Error::NoSpace));
    assert_eq!(fs.getattr(f).unwrap().size, 2 * CHUNK as u64, "a failed write changes nothing");
    fs.write(f, 5, b"overwrite is fine").unwrap();
    file(&mut fs, ROOT, "g");
    assert_eq!(fs.create(ROOT, "h", &NewNode::new(FileType::File, 0)), Err(Error::NoSpace));
    let st = fs.statfs().unwrap();
    assert_eq!((st.free_blocks, st.free_nodes, st.block_size), (0, 0, CHUNK as u32));
    fs.setattr(f, SetAttr { size: Some(0), ..Default::default() }).unwrap();
    assert_eq!(fs.statfs().unwrap().free_blocks, 2);
}

#[test]
fn transaction_abort_restores_and_commit_keeps() {
    let (mut fs, _) = fs();
    let keep = file(&mut fs, ROOT, "keep");
    fs.write(keep, 0, b"v1").unwrap();
    let tx = fs.begin_transaction().unwrap();
    assert_eq!(fs.begin_transaction(), Err(Error::Busy));
    fs.write(keep, 0, b"v2").unwrap();
    let temp = file(&mut fs, ROOT, "temp");
    fs.open(keep).unwrap();
    assert_eq!(fs.commit_transaction(tx + 1), Err(Error::NoSuchTransaction));
    fs.abort_transaction(tx).unwrap();
    assert_eq!(read_all(&mut fs, keep), b"v1");
    assert_eq!(fs.getattr(temp), Err(Error::NotFound));
    fs.release(keep).unwrap();
    let fresh = file(&mut fs, ROOT, "fresh");
    assert_ne!(fresh, temp, "node ids are never reused after an abort");

    let tx = fs.begin_transaction().unwrap();
    fs.write(keep, 0, b"v3").unwrap();
    fs.commit_transaction(tx).unwrap();
    assert_eq!(fs.abort_transaction(tx), Err(Error::NoSuchTransaction));
    assert_eq!(read_all(&mut fs, keep), b"v3");
}

#[test]
fn memfs_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<MemFs>();
}
