//! Property tests: random operation sequences against memfs, checking its structural invariants
//! after every step and file contents against a shadow copy.
//!
//! Design: a small name space (4 names, 3 directories deep at most) so sequences hit the interesting
//! cases (replace, non-empty, into-own-subtree, unlinked-but-open) often. Invariants are checked on
//! the internal tree: entries point at live nodes, link counts equal the entries naming a node
//! (directories: 2 + subdirectories), parents are right, chunk accounting adds up, and nothing
//! unreferenced survives. Errors are allowed (the sequences are random); a failed call must leave
//! the tree valid.

extern crate std;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;
use protocol::fs::{FileSystem, FileType, NewNode, NodeId, SetAttr};

use crate::node::Payload;
use crate::{MemFs, ROOT};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    CreateFile(usize, usize),
    Mkdir(usize, usize),
    Unlink(usize, usize),
    Rmdir(usize, usize),
    Rename(usize, usize, usize, usize),
    Link(usize, usize, usize),
    Write(usize, u16, u8, u16),
    Truncate(usize, u16),
    Open(usize),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..4usize;
    let n = 0..NAMES.len();
    prop_oneof![
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::CreateFile(d, n)),
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::Mkdir(d, n)),
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::Unlink(d, n)),
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::Rmdir(d, n)),
        (d.clone(), n.clone(), d.clone(), n.clone()).prop_map(|(a, b, c, e)| Op::Rename(a, b, c, e)),
        (0..8usize, d.clone(), n.clone()).prop_map(|(f, d, n)| Op::Link(f, d, n)),
        (0..8usize, any::<u16>(), any::<u8>(), 0..9000u16).prop_map(|(f, o, b, l)| Op::Write(f, o, b, l)),
        (0..8usize, 0..20000u16).prop_map(|(f, s)| Op::Truncate(f, s)),
        (0..8usize).prop_map(Op::Open),
        (0..8usize).prop_map(Op::Release),
    ]
}

/// The directories and files currently reachable, in id order (ops pick among them by index).
fn reachable(fs: &MemFs) -> (Vec<NodeId>, Vec<NodeId>) {
    let (mut dirs, mut files) = (vec![ROOT], Vec::new());
    let mut i = 0;
    while i < dirs.len() {
        if let Payload::Dir(d) = &fs.tree.nodes[&dirs[i]].payload {
            for &(ino, _) in d.entries.values() {
                match fs.tree.nodes[&ino].payload {
                    Payload::Dir(_) => dirs.push(ino),
                    Payload::File(_) if !files.contains(&ino) => files.push(ino),
                    _ => {}
                }
            }
        }
        i += 1;
    }
    files.sort();
    (dirs, files)
}

fn check_invariants(fs: &MemFs, opened: &BTreeMap<NodeId, u32>) {
    let nodes = &fs.tree.nodes;
    let mut names_of: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut chunks = 0u64;
    for (&ino, node) in nodes {
        assert_eq!(node.stat.ino, ino);
        match &node.payload {
            Payload::Dir(d) => {
                assert_eq!(d.entries.len(), d.by_cookie.len(), "cookie index matches entries");
                let mut subdirs = 0;
                for (name, &(child, cookie)) in &d.entries {
                    assert_eq!(d.by_cookie.get(&cookie), Some(name));
                    assert!(cookie <= d.last_cookie);
                    let c = nodes.get(&child).expect("entry names a live node");
                    if let Payload::Dir(cd) = &c.payload {
                        subdirs += 1;
                        assert_eq!(cd.parent, ino, "a directory's parent is where it is linked");
                    }
                    *names_of.entry(child).or_default() += 1;
                }
                if node.stat.nlink != 0 {
                    assert_eq!(node.stat.nlink, 2 + subdirs, "directory link count");
                } else {
                    assert!(d.entries.is_empty(), "a removed directory is empty");
                }
            }
            Payload::File(f) => {
                chunks += f.chunks.len() as u64;
                let max_chunk = node.stat.size.div_ceil(crate::CHUNK as u64);
                assert!(f.chunks.keys().all(|&k| k < max_chunk), "no chunk past the end of file");
            }
            _ => {}
        }
        assert_eq!(node.open_count, opened.get(&ino).copied().unwrap_or(0), "open count");
        if node.stat.nlink == 0 {
            assert!(node.open_count > 0, "unreferenced node {ino} was not freed");
        }
    }
    for (&ino, node) in nodes {
        if ino != ROOT && !matches!(node.payload, Payload::Dir(_)) {
            assert_eq!(node.stat.nlink, names_of.get(&ino).copied().unwrap_or(0), "link count of {ino}");
        }
    }
    assert_eq!(fs.tree.chunks_used, chunks, "chunk accounting");
}

fn run(ops: Vec<Op>) {
    let mut fs = MemFs::default();
    let mut shadow: BTreeMap<NodeId, Vec<u8>> = BTreeMap::new();
    let mut opened: BTreeMap<NodeId, u32> = BTreeMap::new();
    for op in ops {
        let (dirs, files) = reachable(&fs);
        // Files that are open but unlinked stay addressable, as through an open descriptor.
        let mut handles: Vec<NodeId> = files.clone();
        handles.extend(opened.keys().filter(|k| !files.contains(k) && fs.tree.nodes.contains_key(k)));
        let dir = |i: usize| dirs[i % dirs.len()];
        let file = |i: usize| (!handles.is_empty()).then(|| handles[i % handles.len()]);
        match op {
            Op::CreateFile(d, n) => {
                if let Ok(st) = fs.create(dir(d), NAMES[n], &NewNode::new(FileType::File, 0o644)) {
                    shadow.insert(st.ino, Vec::new());
                }
            }
            Op::Mkdir(d, n) => {
                let _ = fs.create(dir(d), NAMES[n], &NewNode::new(FileType::Directory, 0o755));
            }
            Op::Unlink(d, n) => {
                let _ = fs.unlink(dir(d), NAMES[n]);
            }
            Op::Rmdir(d, n) => {
                let _ = fs.rmdir(dir(d), NAMES[n]);
            }
            Op::Rename(a, b, c, e) => {
                let _ = fs.rename(dir(a), NAMES[b], dir(c), NAMES[e]);
            }
            Op::Link(f, d, n) => {
                if let Some(f) = file(f) {
                    let _ = fs.link(f, dir(d), NAMES[n]);
                }
            }
            Op::Write(f, off, byte, len) => {
                if let Some(f) = file(f) {
                    let data = vec![byte; len as usize];
                    fs.write(f, off as u64, &data).unwrap();
                    // A write of nothing changes nothing, not even the size (POSIX).
                    let s = shadow.get_mut(&f).unwrap();
                    let end = off as usize + data.len();
                    if !data.is_empty() {
                        if s.len() < end {
                            s.resize(end, 0);
                        }
                        s[off as usize..end].copy_from_slice(&data);
                    }
                }
            }
            Op::Truncate(f, size) => {
                if let Some(f) = file(f) {
                    fs.setattr(f, SetAttr { size: Some(size as u64), ..Default::default() }).unwrap();
                    shadow.get_mut(&f).unwrap().resize(size as usize, 0);
                }
            }
            Op::Open(f) => {
                if let Some(f) = file(f) {
                    fs.open(f).unwrap();
                    *opened.entry(f).or_default() += 1;
                }
            }
            Op::Release(f) => {
                if let Some(f) = file(f) {
                    match opened.get_mut(&f) {
                        Some(n) => {
                            fs.release(f).unwrap();
                            *n -= 1;
                            if *n == 0 {
                                opened.remove(&f);
                            }
                        }
                        None => assert!(fs.release(f).is_err(), "release without open fails"),
                    }
                }
            }
        }
        check_invariants(&fs, &opened);
        shadow.retain(|ino, _| fs.tree.nodes.contains_key(ino));
        for (&ino, want) in &shadow {
            let mut got = vec![0u8; want.len() + 1];
            let n = fs.read(ino, 0, &mut got).unwrap();
            assert_eq!(&got[..n], &want[..], "contents of node {ino}");
        }
    }
    // Close everything: only reachable nodes may remain.
    for (&ino, &n) in &opened {
        for _ in 0..n {
            fs.release(ino).unwrap();
        }
    }
    check_invariants(&fs, &BTreeMap::new());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_memfs_consistent(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}

/// The case proptest once found: an empty write past the end of an empty file.
#[test]
fn an_empty_write_past_the_end_changes_nothing() {
    run(vec![Op::CreateFile(0, 0), Op::Write(0, 1, 0, 0)]);
}
