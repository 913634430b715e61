//! Mounts, path resolution, symbolic links, listings, renames and the metadata cache of the VFS.

mod common;

use common::*;
use protocol::api::vfs::OpenFlags as O;
use protocol::fs::FileType;
use protocol::Error;

#[test]
fn paths_normalize_dots_and_slashes() {
    let (mut v, _) = setup();
    v.mkdir("/a", 0o755).unwrap();
    v.mkdir("/a/b", 0o755).unwrap();
    put(&mut v, "/a/b/f", b"x");
    let ino = v.stat("/a/b/f").unwrap().ino;
    for p in ["//a///b/f", "/a/./b/f", "/a/b/../b/f", "/../../a/b/f", "/a/b/f/"] {
        assert_eq!(v.stat(p).unwrap().ino, ino, "{p}");
    }
    assert_eq!(v.stat("/a/b/f/.."), Err(Error::NotADirectory));
    assert_eq!(v.stat("relative"), Err(Error::InvalidArgument));
    assert_eq!(v.mkdir("/", 0o755), Err(Error::AlreadyExists));
    assert_eq!(v.rmdir("/"), Err(Error::Busy));
    assert_eq!(v.mkdir("/a/..", 0o755), Err(Error::InvalidArgument));
    assert_eq!(v.unlink("/a/b/f/."), Err(Error::InvalidArgument));
}

#[test]
fn mounts_are_crossed_both_ways() {
    let (mut v, _) = setup();
    v.mkdir("/mnt", 0o755).unwrap();
    put(&mut v, "/mnt/hidden", b"under");
    let other = Shared::new();
    let idx = v.mount("/mnt", other.boxed()).unwrap();
    assert_eq!(v.mount("/mnt", Shared::new().boxed()), Err(Error::Busy), "already a mount point");
    assert_eq!(v.stat("/mnt/hidden"), Err(Error::NotFound), "the mount covers the directory");
    v.mkdir("/mnt/sub", 0o755).unwrap();
    put(&mut v, "/mnt/sub/f", b"inside");
    assert_eq!(other.fs.borrow().node_count(), 3, "root, sub, f live in the mounted fs");
    // `..` at the mount root leads back into the parent filesystem.
    assert_eq!(get(&mut v, "/mnt/sub/../../mnt/sub/f").unwrap(), b"inside");
    assert_eq!(v.stat("/mnt/..").unwrap().ino, v.stat("/").unwrap().ino);
    let names_root = names(&mut v, "/mnt", 10);
    assert_eq!(names_root, [".", "..", "sub"]);
    let dotdot = v.readdir("/mnt", 0, 10).unwrap()[1].ino;
    assert_eq!(dotdot, v.stat("/").unwrap().ino, "`..` of a mount root is the parent directory");
    assert_eq!(v.mounts(), vec![("/".to_string(), 0), ("/mnt".to_string(), idx)]);
    assert_eq!(v.mount_of("/mnt/sub/f"), Ok(idx));
    assert_eq!(v.mount_of("/mntx"), Ok(0), "prefixes match whole components");
    // Mount points cannot be removed or renamed; cross-mount renames are EXDEV.
    assert_eq!(v.rmdir("/mnt"), Err(Error::Busy));
    assert_eq!(v.rename("/mnt", "/other"), Err(Error::Busy));
    assert_eq!(v.rename("/mnt/sub/f", "/f"), Err(Error::CrossDevice));
    // Unmount waits for open files, then uncovers the old directory.
    let fd = v.open(P1, "/mnt/sub/f", O::READ, 0).unwrap();
    assert_eq!(v.unmount("/mnt").err(), Some(Error::Busy));
    v.close(P1, fd).unwrap();
    assert!(v.unmount("/mnt").is_ok());
    assert_eq!(get(&mut v, "/mnt/hidden").unwrap(), b"under");
}

#[test]
fn symlinks_are_followed_with_a_limit() {
    let (mut v, _) = setup();
    v.mkdir("/d", 0o755).unwrap();
    put(&mut v, "/d/target", b"T");
    v.symlink("/d/target", "/abs").unwrap();
    v.symlink("target", "/d/rel").unwrap();
    v.symlink("../d", "/d/up").unwrap();
    assert_eq!(get(&mut v, "/abs").unwrap(), b"T");
    assert_eq!(get(&mut v, "/d/rel").unwrap(), b"T");
    assert_eq!(get(&mut v, "/d/up/up/up/rel").unwrap(), b"T");
    assert_eq!(v.lstat("/abs").unwrap().kind, FileType::Symlink);
    assert_eq!(v.stat("/abs").unwrap().kind, FileType::File);
    assert_eq!(v.readlink("/d/rel").unwrap(), "target");
    assert_eq!(v.open(P1, "/abs", O::READ | O::NOFOLLOW, 0), Err(Error::TooManyLevels));
    v.symlink("/loop2", "/loop1").unwrap();
    v.symlink("/loop1", "/loop2").unwrap();
    assert_eq!(v.stat("/loop1"), Err(Error::TooManyLevels));
    v.symlink("/nowhere", "/dangling").unwrap();
    assert_eq!(v.stat("/dangling"), Err(Error::NotFound));
    // Removing a link removes the link, not its target.
    v.unlink("/abs").unwrap();
    assert_eq!(get(&mut v, "/d/target").unwrap(), b"T");
}

#[test]
fn readdir_lists_many_entries_across_pages() {
    let (mut v, _) = setup();
    v.mkdir("/big", 0o755).unwrap();
    for i in 0..300 {
        put(&mut v, &format!("/big/file-{i:03}"), b"");
    }
    for page in [1, 7, 64] {
        let got = names(&mut v, "/big", page);
        assert_eq!(got.len(), 302, "page size {page}");
        assert_eq!(&got[..2], [".", ".."]);
        let mut files: Vec<_> = got[2..].to_vec();
        files.sort();
        files.dedup();
        assert_eq!(files.len(), 300);
    }
    assert_eq!(v.readdir("/big/file-000", 0, 10), Err(Error::NotADirectory));
}

#[test]
fn rename_moves_between_directories_and_the_cache_follows() {
    let (mut v, root) = setup();
    v.mkdir("/a", 0o755).unwrap();
    v.mkdir("/b", 0o755).unwrap();
    put(&mut v, "/a/f", b"one");
    put(&mut v, "/b/g", b"two");
    v.stat("/a/f").unwrap();
    v.stat("/b/g").unwrap();
    v.rename("/a/f", "/b/g").unwrap();
    assert_eq!(v.stat("/a/f"), Err(Error::NotFound));
    assert_eq!(get(&mut v, "/b/g").unwrap(), b"one", "the replaced target is gone");
    v.rename("/b", "/a/b2").unwrap();
    assert_eq!(get(&mut v, "/a/b2/g").unwrap(), b"one");
    assert_eq!(v.stat("/b"), Err(Error::NotFound));
    assert_eq!(v.rename("/a", "/a/b2/inside"), Err(Error::InvalidArgument), "into its own subtree");
    assert_eq!(v.rename("/missing", "/x"), Err(Error::NotFound));
    assert!(root.fs.borrow().node_count() >= 4);
}

#[test]
fn metadata_cache_hits_and_stays_coherent() {
    let (mut v, root) = setup();
    v.mkdir("/d", 0o755).unwrap();
    put(&mut v, "/d/f", b"12345");
    let before = root.probe.lookups.get();
    for _ in 0..10 {
        assert_eq!(v.stat("/d/f").unwrap().size, 5);
    }
    assert!(root.probe.lookups.get() - before <= 2, "repeated stats are served from the cache");
    let s = v.stats();
    assert!(s.dentry_hits >= 18 && s.attr_hits >= 9, "{s:?}");
    // Every mutation is visible through the cache at once.
    let fd = v.open(P1, "/d/f", O::APPEND, 0).unwrap();
    v.write(P1, fd, b"678").unwrap();
    assert_eq!(v.stat("/d/f").unwrap().size, 8);
    v.truncate(P1, fd, 2).unwrap();
    assert_eq!(v.stat("/d/f").unwrap().size, 2);
    let nlink = v.stat("/d").unwrap().nlink;
    v.mkdir("/d/sub", 0o755).unwrap();
    assert_eq!(v.stat("/d").unwrap().nlink, nlink + 1);
    v.rmdir("/d/sub").unwrap();
    assert_eq!(v.stat("/d/sub"), Err(Error::NotFound));
    assert_eq!(v.stat("/d/new"), Err(Error::NotFound));
    put(&mut v, "/d/new", b"n");
    assert_eq!(v.stat("/d/new").unwrap().size, 1, "a negative entry is replaced on create");
    v.unlink("/d/new").unwrap();
    assert_eq!(v.stat("/d/new"), Err(Error::NotFound));
    assert_eq!(v.rmdir("/d"), Err(Error::DirectoryNotEmpty));
    assert_eq!(v.unlink("/d"), Err(Error::IsADirectory));
    assert_eq!(v.stats().opens, 3);
}

#[test]
fn hard_links_and_statfs() {
    let (mut v, _) = setup();
    put(&mut v, "/f", b"linked");
    v.link("/f", "/g").unwrap();
    assert_eq!(v.stat("/f").unwrap().nlink, 2, "the cached attributes follow the new link");
    assert_eq!(v.stat("/g").unwrap().ino, v.stat("/f").unwrap().ino);
    v.unlink("/f").unwrap();
    assert_eq!(get(&mut v, "/g").unwrap(), b"linked");
    assert_eq!(v.stat("/g").unwrap().nlink, 1);
    assert_eq!(v.link("/g", "/g"), Err(Error::AlreadyExists));
    v.mkdir("/d", 0o755).unwrap();
    assert_eq!(v.link("/d", "/d2"), Err(Error::NotPermitted));
    v.mkdir("/mnt", 0o755).unwrap();
    v.mount("/mnt", Shared::new().boxed()).unwrap();
    assert_eq!(v.link("/g", "/mnt/g"), Err(Error::CrossDevice));
    assert!(v.statfs("/mnt").is_ok());
}
