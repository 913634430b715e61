//! The `*at` operations: relative paths from descriptors, the empty path, and the limits on `..`.

mod common;

use common::*;
use protocol::api::vfs::OpenFlags as O;
use protocol::fs::{FileType, NewNode, SetAttr};
use protocol::ipc::MAX_PATH;
use protocol::Error;

fn dir_fd(v: &mut vfs::Vfs, path: &str) -> u32 {
    v.open(P1, path, O::READ | O::DIRECTORY, 0).unwrap()
}

#[test]
fn relative_paths_start_at_the_descriptor() {
    let (mut v, _) = setup();
    v.mkdir("/a", 0o755).unwrap();
    v.mkdir("/a/b", 0o755).unwrap();
    put(&mut v, "/a/b/f", b"hello");
    let a = dir_fd(&mut v, "/a");
    assert_eq!(v.statat(P1, a, "b/f", false).unwrap().size, 5);
    assert_eq!(v.statat(P1, a, "/a/b/f", false).unwrap().size, 5, "absolute paths ignore dir");
    assert_eq!(v.statat(P1, a, "", false).unwrap().kind, FileType::Directory, "empty path: the descriptor");
    assert_eq!(v.statat(P1, a, "b/..", false).unwrap().ino, v.stat("/a").unwrap().ino);
    assert_eq!(v.statat(P1, a, "..", false), Err(Error::NotSupported), "no climbing above the descriptor");
    assert_eq!(v.statat(P1, 99, "b", false), Err(Error::BadFileDescriptor));
    let f = v.openat(P1, a, "b/f", O::READ | O::WRITE, 0).unwrap();
    assert_eq!(v.statat(P1, f, "x", false), Err(Error::NotADirectory));
    // Positioned writes leave the offset alone.
    assert_eq!(v.pwrite(P1, f, 3, b"p!").unwrap(), 2);
    let mut buf = [0u8; 8];
    assert_eq!(v.read(P1, f, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"help!");
    assert_eq!(v.pwrite(P1, a, 0, b"x"), Err(Error::BadFileDescriptor), "directories are read-only");
}

#[test]
fn nodes_are_made_with_the_owner_and_kind_asked_for() {
    let (mut v, _) = setup();
    let root = dir_fd(&mut v, "/");
    let mut node = NewNode::new(FileType::Fifo, 0o640);
    node.uid = 1000;
    node.gid = 100;
    let st = v.makeat(P1, root, "pipe", node.clone()).unwrap();
    assert_eq!((st.kind, st.uid, st.gid, st.mode & 0o7777), (FileType::Fifo, 1000, 100, 0o640));
    assert_eq!(v.makeat(P1, root, "pipe", node), Err(Error::AlreadyExists));
    let mut link = NewNode::new(FileType::Symlink, 0o777);
    link.symlink_target = "pipe".into();
    v.makeat(P1, root, "sym", link.clone()).unwrap();
    assert_eq!(v.readlinkat(P1, root, "sym").unwrap(), "pipe");
    link.symlink_target.clear();
    assert_eq!(v.makeat(P1, root, "empty", link), Err(Error::InvalidArgument));
    assert_eq!(v.statat(P1, root, "sym", true).unwrap().kind, FileType::Fifo, "follow");
    assert_eq!(v.statat(P1, root, "sym", false).unwrap().kind, FileType::Symlink, "no follow");
    // setattr on a name, without following, and through a descriptor with the empty path.
    let st = v.setattrat(P1, root, "sym", SetAttr { uid: Some(7), ..SetAttr::default() }, false).unwrap();
    assert_eq!((st.kind, st.uid), (FileType::Symlink, 7));
    assert_eq!(v.statat(P1, root, "pipe", false).unwrap().uid, 1000, "the target is untouched");
    put(&mut v, "/f", b"0123456789");
    let f = v.open(P1, "/f", O::READ, 0).unwrap();
    assert_eq!(v.setattrat(P1, f, "", SetAttr { size: Some(4), ..SetAttr::default() }, false).unwrap().size, 4);
    assert_eq!(get(&mut v, "/f").unwrap(), b"0123");
}

#[test]
fn unlinked_open_files_stay_reachable_through_their_descriptor() {
    let (mut v, _) = setup();
    let root = dir_fd(&mut v, "/");
    put(&mut v, "/f", b"data");
    let f = v.openat(P1, root, "f", O::READ, 0).unwrap();
    v.unlinkat(P1, root, "f", false).unwrap();
    assert_eq!(v.statat(P1, root, "f", false), Err(Error::NotFound));
    assert_eq!(v.statat(P1, f, "", false).unwrap().size, 4);
    // A new name for an open file (Linux's linkat with AT_EMPTY_PATH); as on Linux, not for one
    // whose last name is gone.
    assert_eq!(v.linkat(P1, f, "", root, "back"), Err(Error::NotFound));
    put(&mut v, "/g", b"gg");
    let g = v.open(P1, "/g", O::READ, 0).unwrap();
    v.linkat(P1, g, "", root, "g2").unwrap();
    assert_eq!(get(&mut v, "/g2").unwrap(), b"gg");
    assert_eq!(v.unlinkat(P1, root, "", false), Err(Error::NotFound), "the empty path has no name");
}

#[test]
fn rename_and_remove_between_descriptors() {
    let (mut v, _) = setup();
    v.mkdir("/a", 0o755).unwrap();
    v.mkdir("/b", 0o755).unwrap();
    put(&mut v, "/a/f", b"1");
    put(&mut v, "/b/g", b"2");
    let (a, b) = (dir_fd(&mut v, "/a"), dir_fd(&mut v, "/b"));
    assert_eq!(v.renameat(P1, a, "f", b, "g", true), Err(Error::AlreadyExists), "noreplace");
    assert_eq!(get(&mut v, "/a/f").unwrap(), b"1");
    v.renameat(P1, a, "f", b, "g", false).unwrap();
    assert_eq!(get(&mut v, "/b/g").unwrap(), b"1");
    v.renameat(P1, b, "g", b, "h", true).unwrap();
    let names: Vec<String> = v.readdirat(P1, b, "", 0, 64).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, [".", "..", "h"]);
    v.makeat(P1, a, "d", NewNode::new(FileType::Directory, 0o755)).unwrap();
    assert_eq!(v.unlinkat(P1, a, "d", false), Err(Error::IsADirectory));
    v.unlinkat(P1, a, "d", true).unwrap();
    assert_eq!(v.statat(P1, a, "d", false), Err(Error::NotFound));
}

#[test]
fn paths_longer_than_max_path_are_walked_from_descriptors() {
    let (mut v, _) = setup();
    let mut fd = dir_fd(&mut v, "/");
    let name = "d".repeat(200);
    // 8 levels of 200-byte names: deeper than one path may be, reached one level at a time.
    for _ in 0..8 {
        v.makeat(P1, fd, &name, NewNode::new(FileType::Directory, 0o755)).unwrap();
        fd = v.openat(P1, fd, &name, O::READ | O::DIRECTORY, 0).unwrap();
    }
    v.makeat(P1, fd, "leaf", NewNode::new(FileType::File, 0o644)).unwrap();
    let deep = format!("/{}/leaf", [name.as_str(); 8].join("/"));
    assert!(deep.len() > MAX_PATH);
    assert_eq!(v.stat(&deep), Err(Error::NameTooLong));
    assert_eq!(v.statat(P1, fd, "leaf", false).unwrap().kind, FileType::File);
}
