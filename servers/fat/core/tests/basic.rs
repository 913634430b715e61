//! Functional tests on RAM disks: every operation, on all three FAT types, checked by our own
//! checker and by reading back after a remount.

mod common;

use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType};
use protocol::fs::{FileSystem, SetAttr};
use protocol::Error;

const TYPES: [(FatType, u64); 3] =
    [(FatType::Fat12, 4 * 2048), (FatType::Fat16, 20 * 2048), (FatType::Fat32, 40 * 2048)];

fn remount(fs: FatFs<RamDisk>) -> FatFs<RamDisk> {
    let dev = fs.unmount().unwrap();
    FatFs::mount(dev, clock()).unwrap()
}

fn assert_clean(fs: &mut FatFs<RamDisk>) {
    let r = fs.check().unwrap();
    assert!(r.is_clean() && !r.dirty, "{r}");
}

#[test]
fn write_read_remount_all_types() {
    for (kind, sectors) in TYPES {
        let mut fs = format(kind, sectors, None);
        let root = fs.root();
        let d = mkdir(&mut fs, root, "Some Directory");
        let sub = mkdir(&mut fs, d, "sub");
        let sizes = [0usize, 1, 511, 512, 513, 4096, 70_000];
        for (i, &n) in sizes.iter().enumerate() {
            let f = file(&mut fs, sub, &format!("file number {i}.bin"));
            assert_eq!(fs.write(f, 0, &data(n, i as u64)).unwrap(), n);
        }
        let short = file(&mut fs, root, "readme.txt");
        fs.write(short, 0, b"hello").unwrap();
        let mut fs = remount(fs);
        assert_clean(&mut fs);
        for (i, &n) in sizes.iter().enumerate() {
            let f = walk(&mut fs, &format!("/some directory/SUB/File Number {i}.bin")).unwrap();
            assert_eq!(read_all(&mut fs, f), data(n, i as u64), "{kind:?} size {n}");
        }
        let names: Vec<_> = fs.readdir(fs.root(), 0, 100).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["Some Directory", "readme.txt"]);
        let _ = fs.unmount().unwrap();
    }
}

#[test]
fn append_overwrite_holes_and_truncate() {
    for (kind, sectors) in TYPES {
        let mut fs = format(kind, sectors, None);
        let root = fs.root();
        let f = file(&mut fs, root, "f");
        let mut model = data(3000, 1);
        fs.write(f, 0, &model).unwrap();
        fs.write(f, 3000, &data(10, 2)).unwrap(); // append
        model.extend(data(10, 2));
        fs.write(f, 100, &data(50, 3)).unwrap(); // overwrite inside
        model[100..150].copy_from_slice(&data(50, 3));
        fs.write(f, 9000, b"x").unwrap(); // write past the end: zero-filled gap
        model.resize(9000, 0);
        model.push(b'x');
        assert_eq!(read_all(&mut fs, f), model);
        fs.setattr(f, SetAttr { size: Some(700), ..Default::default() }).unwrap();
        model.truncate(700);
        assert_eq!(read_all(&mut fs, f), model);
        fs.setattr(f, SetAttr { size: Some(5000), ..Default::default() }).unwrap();
        model.resize(5000, 0);
        assert_eq!(read_all(&mut fs, f), model);
        let mut buf = [0u8; 10];
        assert_eq!(fs.read(f, 4995, &mut buf).unwrap(), 5);
        assert_eq!(fs.read(f, 6000, &mut buf).unwrap(), 0);
        fs.setattr(f, SetAttr { size: Some(0), ..Default::default() }).unwrap();
        assert_eq!(fs.getattr(f).unwrap().size, 0);
        let mut fs = remount(fs);
        assert_clean(&mut fs);
    }
}

#[test]
fn free_count_is_exact_through_create_and_delete() {
    let mut fs = format(FatType::Fat32, 40 * 2048, None);
    let start = fs.statfs().unwrap().free_blocks;
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    let f = file(&mut fs, d, "big");
    fs.write(f, 0, &data(100_000, 9)).unwrap();
    assert!(fs.statfs().unwrap().free_blocks < start);
    fs.unlink(d, "big").unwrap();
    fs.rmdir(root, "d").unwrap();
    assert_eq!(fs.statfs().unwrap().free_blocks, start);
    let mut fs = remount(fs);
    assert_eq!(fs.statfs().unwrap().free_blocks, start);
    assert_clean(&mut fs);
}

#[test]
fn rename_within_and_across_directories() {
    for (kind, sectors) in TYPES {
        let mut fs = format(kind, sectors, None);
        let root = fs.root();
        let a = mkdir(&mut fs, root, "a");
        let b = mkdir(&mut fs, root, "b");
        let f = file(&mut fs, a, "one.txt");
        fs.write(f, 0, b"one").unwrap();
        let g = file(&mut fs, b, "two.txt");
        fs.write(g, 0, b"two").unwrap();
        fs.rename(a, "one.txt", a, "A much longer name.txt").unwrap();
        assert_eq!(fs.lookup(a, "a much longer NAME.txt").unwrap().ino, f, "ids survive renames");
        fs.rename(a, "A much longer name.txt", b, "two.txt").unwrap(); // replaces
        assert_eq!(read_all(&mut fs, f), b"one");
        assert_eq!(fs.lookup(b, "two.txt").unwrap().ino, f);
        assert_eq!(fs.lookup(a, "one.txt"), Err(Error::NotFound));
        // Move a directory into another and check its `..`.
        let c = mkdir(&mut fs, a, "c");
        file(&mut fs, c, "inside");
        fs.rename(a, "c", b, "c moved").unwrap();
        assert_eq!(fs.rename(root, "b", c, "loop"), Err(Error::InvalidArgument));
        assert_eq!(fs.rename(b, "two.txt", root, "a"), Err(Error::IsADirectory));
        assert_eq!(fs.rename(root, "a", b, "two.txt"), Err(Error::NotADirectory));
        assert_eq!(fs.rename(root, "a", root, "b"), Err(Error::DirectoryNotEmpty));
        fs.rename(b, "two.txt", b, "TWO.TXT").unwrap(); // case-only rename
        assert_eq!(fs.readdir(b, 0, 10).unwrap().iter().filter(|e| e.name == "TWO.TXT").count(), 1);
        let mut fs = remount(fs);
        assert_clean(&mut fs);
        let moved = walk(&mut fs, "/b/c moved/inside").unwrap();
        assert_eq!(fs.getattr(moved).unwrap().size, 0);
        let _ = fs.unmount().unwrap();
    }
}

#[test]
fn errors_for_bad_requests() {
    let mut fs = format(FatType::Fat16, 20 * 2048, None);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "dir");
    let f = file(&mut fs, d, "f");
    assert_eq!(
        fs.create(d, "F", &protocol::fs::NewNode::new(protocol::fs::FileType::File, 0o644)).unwrap_err(),
        Error::AlreadyExists
    );
    assert_eq!(fs.rmdir(root, "dir"), Err(Error::DirectoryNotEmpty));
    assert_eq!(fs.unlink(root, "dir"), Err(Error::IsADirectory));
    assert_eq!(fs.rmdir(d, "f"), Err(Error::NotADirectory));
    assert_eq!(fs.lookup(f, "x").unwrap_err(), Error::NotADirectory);
    assert_eq!(fs.write(d, 0, b"x"), Err(Error::IsADirectory));
    assert_eq!(fs.write(f, u32::MAX as u64, b"x"), Err(Error::FileTooLarge));
    assert_eq!(fs.link(f, root, "l").unwrap_err(), Error::NotSupported);
    let sym = protocol::fs::NewNode::new(protocol::fs::FileType::Symlink, 0o777);
    assert_eq!(fs.create(root, "s", &sym).unwrap_err(), Error::NotSupported);
    assert_eq!(
        fs.create(root, "bad:name", &protocol::fs::NewNode::new(protocol::fs::FileType::File, 0)).unwrap_err(),
        Error::InvalidArgument
    );
    assert!(!fs.capabilities().permissions && !fs.capabilities().symlinks && !fs.capabilities().hard_links);
    // Read-only attribute through the mode bits.
    let st = fs.setattr(f, SetAttr { mode: Some(0o444), ..Default::default() }).unwrap();
    assert_eq!(st.mode & 0o222, 0);
    fs.unlink(d, "f").unwrap();
    fs.rmdir(root, "dir").unwrap();
    assert_eq!(fs.getattr(f), Err(Error::NotFound));
}

#[test]
fn no_space_is_an_error_not_a_panic() {
    let mut fs = format(FatType::Fat12, 2048, None);
    let root = fs.root();
    let f = file(&mut fs, root, "fill");
    let free = fs.statfs().unwrap();
    let too_big = (free.free_blocks + 1) * free.block_size as u64;
    assert_eq!(fs.write(f, 0, &vec![1u8; too_big as usize]), Err(Error::NoSpace));
    // A write past the end that cannot fit allocates nothing (no chain longer than the file).
    assert_eq!(fs.write(f, too_big - 600, &[1u8; 1000]), Err(Error::NoSpace));
    assert_eq!(fs.statfs().unwrap().free_blocks, free.free_blocks);
    let fit = free.free_blocks * free.block_size as u64;
    assert_eq!(fs.write(f, 0, &vec![1u8; fit as usize]).unwrap(), fit as usize);
    // The fixed FAT12 root fills up too.
    let mut made = 0;
    loop {
        match fs.create(root, &format!("{made}"), &protocol::fs::NewNode::new(protocol::fs::FileType::File, 0o644)) {
            Ok(_) => made += 1,
            Err(e) => {
                assert_eq!(e, Error::NoSpace);
                break;
            }
        }
    }
    assert_eq!(made, 511);
    let mut fs = remount(fs);
    assert_clean(&mut fs);
}

#[test]
fn many_files_in_one_directory_get_unique_aliases() {
    let mut fs = format(FatType::Fat32, 40 * 2048, None);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "many");
    for i in 0..300 {
        file(&mut fs, d, &format!("Long file name {i:04}.data"));
    }
    let mut fs = remount(fs);
    let d = walk(&mut fs, "/many").unwrap();
    let mut all = Vec::new();
    let mut cookie = 0;
    loop {
        let page = fs.readdir(d, cookie, 64).unwrap();
        let Some(last) = page.last() else { break };
        cookie = last.next_cookie;
        all.extend(page.into_iter().map(|e| e.name));
    }
    assert_eq!(all.len(), 300);
    assert_eq!(all[299], "Long file name 0299.data");
    assert_clean(&mut fs);
}

#[test]
fn fat32_with_mirroring_disabled_uses_the_active_copy() {
    let mut fs = format(FatType::Fat32, 40 * 2048, None);
    let root = fs.root();
    let f = file(&mut fs, root, "data.bin");
    fs.write(f, 0, &data(50_000, 4)).unwrap();
    let g = fs.geometry().clone();
    let mut img = fs.unmount().unwrap().into_bytes();
    // Active FAT = copy 2, mirroring off; wreck copy 1 to prove it is not read.
    img[40..42].copy_from_slice(&0x81u16.to_le_bytes());
    let first = g.fat_offset as usize;
    img[first + 8..first + g.fat_bytes as usize].fill(0);
    let mut fs = FatFs::mount(RamDisk::from_bytes(img), clock()).unwrap();
    assert_eq!(fs.geometry().active_fat, Some(1));
    let f = walk(&mut fs, "/data.bin").unwrap();
    assert_eq!(read_all(&mut fs, f), data(50_000, 4));
    fs.write(f, 50_000, &data(9000, 5)).unwrap();
    let r = fs.check().unwrap();
    assert!(r.is_clean(), "{r}");
    let img = fs.unmount().unwrap().into_bytes();
    // Only the active copy was written.
    assert!(img[first + 8..first + g.fat_bytes as usize].iter().all(|&b| b == 0));
}

#[test]
fn short_aliases_resolve_and_names_are_case_insensitive() {
    let mut fs = format(FatType::Fat16, 20 * 2048, None);
    let root = fs.root();
    let f = file(&mut fs, root, "A very long file name.txt");
    assert_eq!(fs.lookup(root, "AVERYL~1.TXT").unwrap().ino, f);
    assert_eq!(fs.lookup(root, "averyl~1.txt").unwrap().ino, f);
    assert_eq!(fs.lookup(root, "A VERY LONG FILE NAME.TXT").unwrap().ino, f);
    let g = file(&mut fs, root, "A very long file name.dat");
    assert_eq!(fs.lookup(root, "AVERYL~1.DAT").unwrap().ino, g);
    let h = file(&mut fs, root, "A very long file name 2.txt");
    assert_eq!(fs.lookup(root, "AVERYL~2.TXT").unwrap().ino, h);
    // An alias is taken: creating it as a name is refused.
    let err = fs.create(root, "AVERYL~1.TXT", &protocol::fs::NewNode::new(protocol::fs::FileType::File, 0o644));
    assert_eq!(err.unwrap_err(), Error::AlreadyExists);
}

#[test]
fn timestamps_are_fat_two_second_local_time() {
    let mut fs = format(FatType::Fat16, 20 * 2048, None);
    let root = fs.root();
    let f = file(&mut fs, root, "t");
    let st = fs.getattr(f).unwrap();
    // The fixed clock says 1_700_000_000 (even, so exact in 2-second steps).
    assert_eq!(st.mtime.secs, 1_700_000_000);
    assert_eq!(st.crtime.secs, 1_700_000_000);
    assert_eq!(st.atime.secs, 1_700_000_000 - 1_700_000_000 % 86_400); // access is a date only
    let when = protocol::fs::Timespec::new(1_000_000_001, 0);
    fs.setattr(f, SetAttr { mtime: Some(when), ..Default::default() }).unwrap();
    let mut fs = remount(fs);
    let f = walk(&mut fs, "/t").unwrap();
    assert_eq!(fs.getattr(f).unwrap().mtime.secs, 1_000_000_000);
}

#[test]
fn unlinked_open_files_live_until_release() {
    let mut fs = format(FatType::Fat16, 20 * 2048, None);
    let root = fs.root();
    let free = fs.statfs().unwrap().free_blocks;
    let f = file(&mut fs, root, "open.bin");
    fs.write(f, 0, &data(10_000, 6)).unwrap();
    fs.open(f).unwrap();
    fs.unlink(root, "open.bin").unwrap();
    assert_eq!(fs.lookup(root, "open.bin").unwrap_err(), Error::NotFound);
    assert_eq!(read_all(&mut fs, f), data(10_000, 6));
    fs.write(f, 10_000, b"more").unwrap();
    assert!(fs.statfs().unwrap().free_blocks < free);
    fs.release(f).unwrap();
    assert_eq!(fs.getattr(f), Err(Error::NotFound));
    assert_eq!(fs.statfs().unwrap().free_blocks, free);
    let mut fs = remount(fs);
    assert_clean(&mut fs);
}

#[test]
fn ids_from_readdir_are_usable_and_unique() {
    let mut fs = format(FatType::Fat32, 40 * 2048, None);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    for i in 0..40 {
        let f = file(&mut fs, d, &format!("file {i}"));
        fs.write(f, 0, &data(100 + i, i as u64)).unwrap();
    }
    let mut fs = remount(fs);
    let d = walk(&mut fs, "/d").unwrap();
    let listed = fs.readdir(d, 0, 100).unwrap();
    // Straight from the listing, without a lookup first.
    for (i, e) in listed.iter().enumerate() {
        assert_eq!(fs.getattr(e.ino).unwrap().size, 100 + i as u64);
        assert_eq!(read_all(&mut fs, e.ino), data(100 + i, i as u64));
    }
    for e in &listed {
        assert_eq!(fs.lookup(d, &e.name).unwrap().ino, e.ino);
    }
    // A node renamed away keeps its id; the entry that reuses its old slot gets another one.
    let moved = listed[0].ino;
    fs.rename(d, "file 0", root, "moved").unwrap();
    file(&mut fs, d, "file 0");
    let again = fs.readdir(d, 0, 100).unwrap();
    let mut ids: Vec<_> = again.iter().map(|e| e.ino).collect();
    ids.push(moved);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), again.len() + 1);
    assert_eq!(fs.lookup(root, "moved").unwrap().ino, moved);
    assert_eq!(fs.getattr(999_999_999), Err(Error::NotFound));
}
