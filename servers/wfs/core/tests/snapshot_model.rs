//! Random snapshot workloads: snapshots taken at random points must keep showing exactly the
//! namespace and contents of that moment while the live tree changes, snapshots are deleted and the
//! filesystem is remounted; fsck stays clean (no leak, no block both free and used) throughout.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use protocol::fs::{FileSystem, FileType, NewNode, SetAttr};

#[derive(Debug, Clone)]
enum Op {
    Write(u8, u32, u16, u8),
    Create(u8),
    Unlink(u8),
    Truncate(u8, u32),
    Snapshot,
    Delete(u8),
    Check,
    Remount,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..6, 0u32..60_000, 1u16..20_000, any::<u8>()).prop_map(|(f, o, l, s)| Op::Write(f, o, l, s)),
        2 => (0u8..6).prop_map(Op::Create),
        2 => (0u8..6).prop_map(Op::Unlink),
        1 => (0u8..6, 0u32..70_000).prop_map(|(f, s)| Op::Truncate(f, s)),
        2 => Just(Op::Snapshot),
        1 => (0u8..8).prop_map(Op::Delete),
        2 => Just(Op::Check),
        1 => Just(Op::Remount),
    ]
}

fn run(ops: Vec<Op>) {
    let mut fs = fresh(16);
    let root = fs.root();
    let mut snaps: BTreeMap<String, State> = BTreeMap::new();
    let mut next = 0;
    for op in ops {
        let name = |f: &u8| format!("f{f}");
        match op {
            Op::Write(f, off, len, seed) => {
                if let Ok(st) = fs.lookup(root, &name(&f)) {
                    fs.write(st.ino, off as u64, &pattern(len as usize, seed as u64)).unwrap();
                }
            }
            Op::Create(f) => {
                let _ = fs.create(root, &name(&f), &NewNode::new(FileType::File, 0o644));
            }
            Op::Unlink(f) => {
                let _ = fs.unlink(root, &name(&f));
            }
            Op::Truncate(f, size) => {
                if let Ok(st) = fs.lookup(root, &name(&f)) {
                    fs.setattr(st.ino, SetAttr { size: Some(size as u64), ..Default::default() }).unwrap();
                }
            }
            Op::Snapshot => {
                let n = format!("s{next:04}");
                next += 1;
                fs.create_snapshot(&n).unwrap();
                snaps.insert(n, dump(&mut fs));
            }
            Op::Delete(i) => {
                if let Some(n) = snaps.keys().nth(i as usize).cloned() {
                    fs.delete_snapshot(&n).unwrap();
                    snaps.remove(&n);
                }
            }
            Op::Check => {
                for (n, want) in &snaps {
                    let mut v = fs.snapshot(n).unwrap();
                    assert_eq!(&dump(&mut v), want, "snapshot {n} changed");
                }
                let r = fs.fsck(false).unwrap();
                assert!(r.is_clean(), "{r}");
            }
            Op::Remount => fs = remount(fs),
        }
    }
    let names: Vec<String> = fs.list_snapshots().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, snaps.keys().cloned().collect::<Vec<_>>());
    // Deleting every snapshot and every file gives all data blocks back.
    for n in names {
        fs.delete_snapshot(&n).unwrap();
    }
    for f in 0..6 {
        let _ = fs.unlink(root, &format!("f{f}"));
    }
    fs.sync().unwrap();
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.extents, 0);
    assert!(r.blocks_reachable < 16, "{r}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn snapshots_are_frozen_and_space_is_exact(ops in prop::collection::vec(op(), 1..100)) {
        run(ops);
    }
}
