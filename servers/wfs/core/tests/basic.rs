//! Namespace and data operations of WFS through the `FileSystem` interface, across remounts.

mod common;

use common::*;
use protocol::fs::{FileSystem, FileType, NewNode, SetAttr};
use protocol::Error;

#[test]
fn format_mount_and_root() {
    let mut fs = fresh(8);
    let root = fs.root();
    let st = fs.getattr(root).unwrap();
    assert_eq!(st.kind, FileType::Directory);
    assert_eq!(st.nlink, 2);
    let mut fs = remount(fs);
    assert!(fs.readdir(root, 0, 100).unwrap().is_empty());
    assert!(fs.fsck(false).unwrap().is_clean());
}

#[test]
fn files_survive_remount_with_exact_contents() {
    let mut fs = fresh(16);
    let root = fs.root();
    let a = pattern(10_000, 1);
    let b = pattern(300_000, 2);
    let ia = mkfile(&mut fs, root, "a", &a);
    let d = mkdir(&mut fs, root, "dir");
    let ib = mkfile(&mut fs, d, "b", &b);
    assert_eq!(read_all(&mut fs, ia), a);
    let mut fs = remount(fs);
    assert_eq!(read_all(&mut fs, ia), a);
    assert_eq!(read_all(&mut fs, ib), b);
    assert_eq!(fs.lookup(d, "b").unwrap().ino, ib);
    assert_eq!(fs.lookup(root, "dir").unwrap().nlink, 2);
    assert_eq!(fs.getattr(root).unwrap().nlink, 3);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn writes_at_offsets_holes_and_truncate() {
    let mut fs = fresh(16);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "f", b"hello");
    fs.write(f, 3, b"LOWORLD").unwrap();
    assert_eq!(read_all(&mut fs, f), b"helLOWORLD");
    // A hole of several blocks, then data: the hole reads as zeros and takes no blocks.
    fs.write(f, 5 * 4096 + 7, b"tail").unwrap();
    let st = fs.getattr(f).unwrap();
    assert_eq!(st.size, 5 * 4096 + 11);
    assert_eq!(st.blocks, 2 * 8);
    let all = read_all(&mut fs, f);
    assert!(all[10..5 * 4096 + 7].iter().all(|&b| b == 0));
    // Shrink into the middle of a block, then grow: the cut bytes must come back as zeros.
    fs.setattr(f, SetAttr { size: Some(4), ..Default::default() }).unwrap();
    fs.setattr(f, SetAttr { size: Some(9000), ..Default::default() }).unwrap();
    let all = read_all(&mut fs, f);
    assert_eq!(&all[..4], b"helL");
    assert!(all[4..].iter().all(|&b| b == 0));
    assert_eq!(fs.getattr(f).unwrap().blocks, 8);
    let mut fs = remount(fs);
    assert_eq!(read_all(&mut fs, f).len(), 9000);
    assert!(fs.fsck(false).unwrap().is_clean());
}

#[test]
fn files_past_4_gib_are_sparse() {
    let mut fs = fresh(8);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "big", b"");
    let off = 5u64 << 30;
    fs.write(f, off, b"far away").unwrap();
    let mut fs = remount(fs);
    let mut buf = [0u8; 8];
    assert_eq!(fs.read(f, off, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"far away");
    assert_eq!(fs.read(f, 1 << 30, &mut buf).unwrap(), 8);
    assert_eq!(buf, [0; 8]);
    assert_eq!(fs.getattr(f).unwrap().size, off + 8);
    assert_eq!(fs.write(f, 1 << 52, b"x"), Err(Error::FileTooLarge));
}

#[test]
fn namespace_errors_follow_posix() {
    let mut fs = fresh(8);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    let f = mkfile(&mut fs, d, "f", b"x");
    assert_eq!(fs.create(root, "d", &NewNode::new(FileType::File, 0o644)).unwrap_err(), Error::AlreadyExists);
    assert_eq!(fs.lookup(root, "nope").unwrap_err(), Error::NotFound);
    assert_eq!(fs.lookup(f, "x").unwrap_err(), Error::NotADirectory);
    assert_eq!(fs.rmdir(root, "d").unwrap_err(), Error::DirectoryNotEmpty);
    assert_eq!(fs.unlink(root, "d").unwrap_err(), Error::IsADirectory);
    assert_eq!(fs.rmdir(d, "f").unwrap_err(), Error::NotADirectory);
    assert_eq!(fs.lookup(root, &"n".repeat(256)).unwrap_err(), Error::NameTooLong);
    assert_eq!(fs.rename(root, "d", d, "sub").unwrap_err(), Error::InvalidArgument);
    let mut buf = [0u8; 4];
    assert_eq!(fs.read(d, 0, &mut buf).unwrap_err(), Error::IsADirectory);
    assert_eq!(fs.write(d, 0, b"x").unwrap_err(), Error::IsADirectory);
    fs.unlink(d, "f").unwrap();
    fs.rmdir(root, "d").unwrap();
    assert_eq!(fs.getattr(f).unwrap_err(), Error::NotFound);
    assert_eq!(fs.getattr(root).unwrap().nlink, 2);
    assert!(fs.fsck(false).unwrap().is_clean());
}

#[test]
fn rename_replaces_moves_and_keeps_counts() {
    let mut fs = fresh(8);
    let root = fs.root();
    let a = mkdir(&mut fs, root, "a");
    let b = mkdir(&mut fs, root, "b");
    let x = mkfile(&mut fs, a, "x", b"xx");
    let y = mkfile(&mut fs, b, "y", b"yy");
    fs.rename(a, "x", b, "y").unwrap();
    assert_eq!(fs.lookup(b, "y").unwrap().ino, x);
    assert_eq!(fs.getattr(y).unwrap_err(), Error::NotFound);
    assert_eq!(fs.lookup(a, "x").unwrap_err(), Error::NotFound);
    let s = mkdir(&mut fs, a, "sub");
    fs.rename(a, "sub", b, "sub2").unwrap();
    assert_eq!(fs.getattr(a).unwrap().nlink, 2);
    assert_eq!(fs.getattr(b).unwrap().nlink, 3);
    // Replacing an empty directory with a directory.
    mkdir(&mut fs, root, "empty");
    fs.rename(b, "sub2", root, "empty").unwrap();
    assert_eq!(fs.lookup(root, "empty").unwrap().ino, s);
    assert_eq!(fs.getattr(root).unwrap().nlink, 5);
    assert_eq!(fs.rename(root, "empty", root, "b").unwrap_err(), Error::DirectoryNotEmpty);
    let mut fs = remount(fs);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn hard_links_symlinks_and_special_files() {
    let mut fs = fresh(8);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "f", b"data");
    assert_eq!(fs.link(f, root, "g").unwrap().nlink, 2);
    let mut n = NewNode::new(FileType::Symlink, 0o777);
    n.symlink_target = "f".into();
    let l = fs.create(root, "l", &n).unwrap();
    assert_eq!(l.size, 1);
    let mut n = NewNode::new(FileType::CharDevice, 0o600);
    n.rdev = 0x0501;
    let c = fs.create(root, "tty", &n).unwrap();
    fs.create(root, "fifo", &NewNode::new(FileType::Fifo, 0o600)).unwrap();
    fs.unlink(root, "f").unwrap();
    let mut fs = remount(fs);
    assert_eq!(fs.readlink(l.ino).unwrap(), "f");
    assert_eq!(fs.getattr(c.ino).unwrap().rdev, 0x0501);
    assert_eq!(fs.lookup(root, "g").unwrap().nlink, 1);
    assert_eq!(read_all(&mut fs, f), b"data");
    let names: Vec<String> = fs.readdir(root, 0, 100).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names.len(), 4);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn unlinked_open_file_lives_until_release_or_next_mount() {
    let mut fs = fresh(8);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "f", &pattern(50_000, 3));
    fs.open(f).unwrap();
    fs.unlink(root, "f").unwrap();
    assert_eq!(read_all(&mut fs, f).len(), 50_000);
    fs.sync().unwrap();
    let free_before = fs.statfs().unwrap().free_blocks;
    fs.release(f).unwrap();
    fs.sync().unwrap();
    assert!(fs.statfs().unwrap().free_blocks >= free_before + 13);
    assert_eq!(fs.getattr(f).unwrap_err(), Error::NotFound);
    // Crash with an open unlinked file: the next mount deletes it.
    let g = mkfile(&mut fs, root, "g", &pattern(50_000, 4));
    fs.open(g).unwrap();
    fs.unlink(root, "g").unwrap();
    fs.sync().unwrap();
    let dev = fs.device_mut().clone();
    let mut fs2 = wfs::Wfs::mount(dev, clock()).unwrap();
    assert_eq!(fs2.getattr(g).unwrap_err(), Error::NotFound);
    let r = fs2.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn transactions_commit_and_abort() {
    let mut fs = fresh(8);
    let root = fs.root();
    mkfile(&mut fs, root, "before", b"1");
    let tx = fs.begin_transaction().unwrap();
    assert_eq!(fs.begin_transaction().unwrap_err(), Error::Busy);
    mkfile(&mut fs, root, "inside", &pattern(20_000, 5));
    fs.unlink(root, "before").unwrap();
    fs.abort_transaction(tx).unwrap();
    assert!(fs.lookup(root, "before").is_ok());
    assert_eq!(fs.lookup(root, "inside").unwrap_err(), Error::NotFound);
    assert_eq!(fs.commit_transaction(tx).unwrap_err(), Error::NoSuchTransaction);
    let tx = fs.begin_transaction().unwrap();
    mkfile(&mut fs, root, "kept", b"2");
    fs.commit_transaction(tx).unwrap();
    // The committed transaction is durable: a copy of the device taken now has it.
    let dev = fs.device_mut().clone();
    let mut fs2 = wfs::Wfs::mount(dev, clock()).unwrap();
    assert!(fs2.lookup(root, "kept").is_ok());
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn many_entries_and_readdir_cookies() {
    let mut fs = fresh(32);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    let n = 3000;
    for i in 0..n {
        fs.create(d, &format!("file-{i}"), &NewNode::new(FileType::File, 0o644)).unwrap();
    }
    let mut fs = remount(fs);
    let mut cookie = 0;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let page = fs.readdir(d, cookie, 77).unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            assert!(seen.insert(e.name.clone()), "duplicate {}", e.name);
        }
        cookie = page.last().unwrap().next_cookie;
    }
    assert_eq!(seen.len(), n);
    for i in (0..n).step_by(2) {
        fs.unlink(d, &format!("file-{i}")).unwrap();
    }
    assert_eq!(fs.lookup(d, "file-1").unwrap().kind, FileType::File);
    assert_eq!(fs.lookup(d, "file-2").unwrap_err(), Error::NotFound);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    for i in (1..n).step_by(2) {
        fs.unlink(d, &format!("file-{i}")).unwrap();
    }
    fs.rmdir(root, "d").unwrap();
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn space_comes_back_after_delete() {
    let mut fs = fresh(16);
    let root = fs.root();
    fs.sync().unwrap();
    let free0 = fs.statfs().unwrap().free_blocks;
    mkfile(&mut fs, root, "f", &pattern(4 << 20, 6));
    fs.sync().unwrap();
    assert!(fs.statfs().unwrap().free_blocks < free0 - 1024);
    fs.unlink(root, "f").unwrap();
    fs.sync().unwrap();
    // The tree may have changed shape by a node or two; the data must all be back.
    assert!(fs.statfs().unwrap().free_blocks + 8 >= free0);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn full_device_reports_no_space_and_stays_consistent() {
    let mut fs = fresh(2);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "f", b"");
    let chunk = pattern(64 * 1024, 7);
    let mut off = 0;
    loop {
        match fs.write(f, off, &chunk) {
            Ok(_) => off += chunk.len() as u64,
            Err(Error::NoSpace) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(off < 4 << 20, "2 MiB device never filled");
    }
    fs.sync().unwrap();
    let mut fs = remount(fs);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    fs.unlink(root, "f").unwrap();
    fs.sync().unwrap();
    mkfile(&mut fs, root, "g", &chunk);
}

/// A 100,000-entry directory: create, look every name up, list, remount, delete
/// (`cargo test -p wfs --release -- --ignored`; slow in debug builds).
#[test]
#[ignore]
fn hundred_thousand_entries() {
    let mut fs = fresh(256);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    let n = 100_000;
    for i in 0..n {
        fs.create(d, &format!("entry-{i}"), &NewNode::new(FileType::File, 0o644)).unwrap();
    }
    let mut fs = remount(fs);
    for i in 0..n {
        assert_eq!(fs.lookup(d, &format!("entry-{i}")).unwrap().kind, FileType::File);
    }
    let mut cookie = 0;
    let mut count = 0;
    loop {
        let page = fs.readdir(d, cookie, 1000).unwrap();
        if page.is_empty() {
            break;
        }
        count += page.len();
        cookie = page.last().unwrap().next_cookie;
    }
    assert_eq!(count, n);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    for i in 0..n {
        fs.unlink(d, &format!("entry-{i}")).unwrap();
    }
    fs.rmdir(root, "d").unwrap();
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn format_without_ditto_copies_works_and_uses_less_space() {
    let opts = wfs::FormatOptions { ditto_metadata: false, ..Default::default() };
    let mut single = wfs::Wfs::format(blockdev::RamDisk::new(8 * 2048), &opts, clock()).unwrap();
    let mut double = fresh(8);
    for fs in [&mut single, &mut double] {
        let root = fs.root();
        for i in 0..300 {
            mkfile(fs, root, &format!("f{i}"), b"x");
        }
        fs.sync().unwrap();
    }
    let used = |fs: &mut wfs::Wfs<blockdev::RamDisk>| {
        let s = fs.statfs().unwrap();
        s.total_blocks - s.free_blocks
    };
    assert!(used(&mut single) < used(&mut double));
    let mut single = remount(single);
    assert_eq!(single.readdir(single.root(), 0, 1000).unwrap().len(), 300);
    let r = single.scrub().unwrap();
    assert!(r.is_clean() && r.node_copies_repaired == 0, "{r}");
    assert!(single.fsck(false).unwrap().is_clean());
}

#[test]
fn filling_with_files_fails_cleanly_and_deletes_still_work() {
    let mut fs = fresh(2);
    let root = fs.root();
    let mut made = Vec::new();
    for i in 0.. {
        let name = format!("file-with-a-long-name-to-fill-leaves-{i}");
        match fs.create(root, &name, &NewNode::new(FileType::File, 0o644)) {
            Ok(st) => match fs.write(st.ino, 0, &pattern(3000, i)) {
                Ok(_) => made.push(name),
                Err(Error::NoSpace) => {
                    made.push(name);
                    break;
                }
                Err(e) => panic!("write: {e:?}"),
            },
            Err(Error::NoSpace) => break,
            Err(e) => panic!("create {i}: {e:?}"),
        }
        assert!(i < 100_000);
    }
    // The refused operations left the commit its blocks: it succeeds, and fsck is clean.
    fs.sync().unwrap();
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    for name in made.iter().take(made.len() / 2) {
        fs.unlink(root, name).unwrap();
    }
    fs.sync().unwrap();
    mkfile(&mut fs, root, "after", &pattern(3000, 1));
    let mut fs = remount(fs);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    assert!(made.len() > 100, "only {} files fit in 2 MiB", made.len());
}

/// Reads `len` bytes at `off` through `read_with`, putting each piece where the sink says; returns
/// the bytes and the number of pieces.
fn read_with(fs: &mut wfs::Wfs<blockdev::RamDisk>, ino: u64, off: u64, buf: &mut [u8]) -> (Vec<u8>, usize) {
    let mut out = vec![0u8; buf.len()];
    let mut pieces = 0;
    let mut next = 0;
    let n = fs
        .read_with(ino, off, buf, &mut |at, data| {
            assert_eq!(at, next, "pieces come in order, back to back");
            out[at..at + data.len()].copy_from_slice(data);
            next = at + data.len();
            pieces += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(next, n);
    out.truncate(n);
    (out, pieces)
}

#[test]
fn read_with_lends_cached_data_and_fills_the_buffer_otherwise() {
    let mut fs = fresh(16);
    let root = fs.root();
    let data = pattern(300_000, 7);
    let ino = mkfile(&mut fs, root, "f", &data);
    let sparse = mkfile(&mut fs, root, "s", &data[..5000]);
    fs.write(sparse, 60_000, &data[..3000]).unwrap();
    let mut fs = remount(fs);
    for (off, len) in [(0u64, 300_000usize), (4096, 8192), (123, 4000), (299_000, 5000), (296_000, 4096)] {
        let want = &data[off as usize..(off as usize + len).min(data.len())];
        // First read: from the device, through the buffer.
        let mut buf = vec![0u8; len];
        let (got, _) = read_with(&mut fs, ino, off, &mut buf);
        assert_eq!(got, want, "cold read at {off}");
        // Now every block is in the verified-data cache: lent from it, the buffer left untouched.
        let mut buf = vec![0xeeu8; len];
        let (got, pieces) = read_with(&mut fs, ino, off, &mut buf);
        assert_eq!(got, want, "cached read at {off}");
        assert!(buf.iter().all(|&b| b == 0xee), "a cached read must not go through the buffer");
        assert!(pieces >= 1);
    }
    // A hole is never lent: it reads as zeros through the buffer.
    let mut want = vec![0u8; 63_000];
    want[..5000].copy_from_slice(&data[..5000]);
    want[60_000..].copy_from_slice(&data[..3000]);
    for _ in 0..2 {
        let mut buf = vec![0xeeu8; 63_000];
        let (got, pieces) = read_with(&mut fs, sparse, 0, &mut buf);
        assert_eq!(got, want);
        assert_eq!(pieces, 1);
    }
    assert_eq!(read_with(&mut fs, ino, 300_000, &mut [0u8; 10]).0.len(), 0);
}
