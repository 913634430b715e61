//! Fuzzing past the checksums: random, correctly checksummed but meaningless items are planted in
//! the tree, then every operation, fsck, scrub and a remount run over them. Nothing may panic or
//! hang; errors are expected.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use blockdev::RamDisk;
use proptest::prelude::*;
use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, SetAttr, Timespec};

use crate::ondisk::*;
use crate::{FormatOptions, Wfs};

fn clock() -> Box<FixedClock> {
    Box::new(FixedClock(Timespec::new(9, 0)))
}

fn exercise(fs: &mut Wfs<RamDisk>) {
    for ino in 0..12u64 {
        let _ = fs.getattr(ino);
        let mut buf = alloc::vec![0u8; 9000];
        let _ = fs.read(ino, 0, &mut buf);
        let _ = fs.read(ino, 1 << 40, &mut buf);
        let _ = fs.readlink(ino);
        if let Ok(list) = fs.readdir(ino, 0, 50) {
            for e in list {
                let _ = fs.lookup(ino, &e.name);
                let _ = fs.rename(ino, &e.name, ROOT_INO, "renamed");
            }
        }
        let _ = fs.write(ino, 100, b"xyz");
        let _ = fs.setattr(ino, SetAttr { size: Some(3), ..Default::default() });
        let _ = fs.link(ino, ROOT_INO, &format!("l{ino}"));
        let _ = fs.open(ino);
        let _ = fs.unlink(ROOT_INO, &format!("l{ino}"));
        let _ = fs.release(ino);
    }
    let _ = fs.create(ROOT_INO, "new", &NewNode::new(FileType::Directory, 0o755));
    let _ = fs.rmdir(ROOT_INO, "d");
    let _ = fs.list_snapshots();
    let _ = fs.tick(10);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn meaningless_items_never_panic(items in prop::collection::vec(
        (0u64..10, 1u8..7, prop_oneof![Just(0u64), 0u64..8, any::<u64>()], prop::collection::vec(any::<u8>(), 0..120)), 1..12)) {
        let mut fs = Wfs::format(RamDisk::new(4096), &FormatOptions::default(), clock()).unwrap();
        let d = fs.create(ROOT_INO, "d", &NewNode::new(FileType::Directory, 0o755)).unwrap().ino;
        let f = fs.create(d, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        fs.write(f, 0, &[1u8; 10_000]).unwrap();
        for (oid, kind, off, val) in items {
            let mut v: Vec<u8> = val;
            // Some values get a plausible length so that decoders get past their first check.
            if kind == KIND_INODE && v.len() > 40 { v.resize(INODE_FIXED, 1); v[0] = (off % 8) as u8; }
            if kind == KIND_EXTENT && v.len() > 20 { let n = v[8] % 4 + 1; v.resize(24 + 4 * n as usize, 0); v[8..16].copy_from_slice(&[n, 0, 0, 0, 0, 0, 0, 0]); }
            let _ = fs.tree_insert(Key::new(oid, kind, off), v);
        }
        if fs.commit().is_err() {
            return Ok(());
        }
        exercise(&mut fs);
        let _ = fs.fsck(false);
        let _ = fs.fsck(true);
        let _ = fs.scrub();
        if let Ok(dev) = fs.unmount() {
            if let Ok(mut fs) = Wfs::mount(dev, clock()) {
                exercise(&mut fs);
                let _ = fs.fsck(true);
            }
        }
    }
}
