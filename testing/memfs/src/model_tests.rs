//! Property tests: random operation sequences against memfs, checking its structural invariants
//! after every step and file contents against a shadow copy.
//!
//! Design: a small name space (4 names, 3 directories deep at most) so sequences hit the interesting
//! cases (replace, non-empty, into-own-subtree, unlinked-but-open) often. Invariants are checked on
//! the internal tree: entries point at live nodes, link counts equal the entries naming a node
//! (directories: 2 + subdirectories), parents are right, chunk accounting adds up, and nothing
//! unreferenced survives. Beside them runs a model of the name space (`Model`, plain maps of names
//! and link counts): every name-space operation must return what the model predicts, the error
//! included, and after every step memfs's directories, listings, lookups and link counts must equal
//! the model's. Errors are expected (the sequences are random); a failed call must leave the tree
//! valid and unchanged.

extern crate std;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;
use protocol::fs::{FileSystem, FileType, NewNode, NodeId, SetAttr};
use protocol::Error;

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

/// The name space as POSIX says it must be after each operation, kept apart from memfs: every
/// directory's entries, each directory's parent, each linked file's link count. Each method answers
/// what the operation must return (checked in the order memfs documents) and applies it on success.
#[derive(Default)]
struct Model {
    dirs: BTreeMap<NodeId, BTreeMap<&'static str, NodeId>>,
    parent: BTreeMap<NodeId, NodeId>,
    links: BTreeMap<NodeId, u32>,
}

impl Model {
    fn entry(&self, dir: NodeId, name: &str) -> Option<NodeId> {
        self.dirs[&dir].get(name).copied()
    }

    fn create(&self, dir: NodeId, name: &str) -> Result<(), Error> {
        match self.entry(dir, name) {
            Some(_) => Err(Error::AlreadyExists),
            None => Ok(()),
        }
    }

    /// A successful create: the node memfs chose.
    fn adopt(&mut self, dir: NodeId, name: &'static str, ino: NodeId, kind: FileType) {
        assert!(!self.dirs.contains_key(&ino) && !self.links.contains_key(&ino), "node id {ino} reused");
        self.dirs.get_mut(&dir).unwrap().insert(name, ino);
        if kind == FileType::Directory {
            self.dirs.insert(ino, BTreeMap::new());
            self.parent.insert(ino, dir);
        } else {
            self.links.insert(ino, 1);
        }
    }

    /// One name of `ino` is gone.
    fn drop_name(&mut self, ino: NodeId) {
        if self.dirs.remove(&ino).is_some() {
            self.parent.remove(&ino);
        } else {
            let n = self.links.get_mut(&ino).unwrap();
            *n -= 1;
            if *n == 0 {
                self.links.remove(&ino);
            }
        }
    }

    fn unlink(&mut self, dir: NodeId, name: &'static str) -> Result<(), Error> {
        let ino = self.entry(dir, name).ok_or(Error::NotFound)?;
        if self.dirs.contains_key(&ino) {
            return Err(Error::IsADirectory);
        }
        self.dirs.get_mut(&dir).unwrap().remove(name);
        self.drop_name(ino);
        Ok(())
    }

    fn rmdir(&mut self, dir: NodeId, name: &'static str) -> Result<(), Error> {
        let ino = self.entry(dir, name).ok_or(Error::NotFound)?;
        let victim = self.dirs.get(&ino).ok_or(Error::NotADirectory)?;
        if !victim.is_empty() {
            return Err(Error::DirectoryNotEmpty);
        }
        self.dirs.get_mut(&dir).unwrap().remove(name);
        self.drop_name(ino);
        Ok(())
    }

    fn rename(&mut self, from_dir: NodeId, from: &'static str, to_dir: NodeId, to: &'static str) -> Result<(), Error> {
        let src = self.entry(from_dir, from).ok_or(Error::NotFound)?;
        let target = self.entry(to_dir, to);
        if target == Some(src) {
            return Ok(());
        }
        let src_is_dir = self.dirs.contains_key(&src);
        if src_is_dir {
            let mut cur = to_dir;
            while cur != ROOT {
                if cur == src {
                    return Err(Error::InvalidArgument);
                }
                cur = self.parent[&cur];
            }
        }
        if let Some(t) = target {
            match (src_is_dir, self.dirs.get(&t)) {
                (true, None) => return Err(Error::NotADirectory),
                (false, Some(_)) => return Err(Error::IsADirectory),
                (true, Some(d)) if !d.is_empty() => return Err(Error::DirectoryNotEmpty),
                _ => {}
            }
        }
        self.dirs.get_mut(&from_dir).unwrap().remove(from);
        self.dirs.get_mut(&to_dir).unwrap().insert(to, src);
        if src_is_dir {
            self.parent.insert(src, to_dir);
        }
        if let Some(t) = target {
            self.drop_name(t);
        }
        Ok(())
    }

    fn link(&mut self, file: NodeId, dir: NodeId, name: &'static str) -> Result<(), Error> {
        if !self.links.contains_key(&file) {
            // Only unlinked-but-open files are reachable without a name.
            return Err(Error::NotFound);
        }
        self.create(dir, name)?;
        self.dirs.get_mut(&dir).unwrap().insert(name, file);
        *self.links.get_mut(&file).unwrap() += 1;
        Ok(())
    }

    /// memfs's name space, as its interface shows it, equals the model's: the same directories, each
    /// listing the same names for the same nodes of the same kinds, with the link counts POSIX gives.
    fn compare(&self, fs: &mut MemFs) {
        let (mut dirs, _) = reachable(fs);
        dirs.sort();
        assert_eq!(dirs, self.dirs.keys().copied().collect::<Vec<_>>(), "directories");
        for (&dir, entries) in &self.dirs {
            let listed = fs.readdir(dir, 0, usize::MAX).unwrap();
            let names: BTreeMap<&str, (NodeId, FileType)> =
                listed.iter().map(|e| (e.name.as_str(), (e.ino, e.kind))).collect();
            assert_eq!(names.len(), listed.len(), "a name listed twice in {dir}");
            let want: BTreeMap<&str, (NodeId, FileType)> = entries
                .iter()
                .map(|(&n, &i)| (n, (i, if self.dirs.contains_key(&i) { FileType::Directory } else { FileType::File })))
                .collect();
            assert_eq!(names, want, "entries of directory {dir}");
            for (name, &(ino, _)) in &want {
                assert_eq!(fs.lookup(dir, name).unwrap().ino, ino, "lookup of {name} in {dir}");
            }
            let subdirs = entries.values().filter(|i| self.dirs.contains_key(i)).count() as u32;
            assert_eq!(fs.getattr(dir).unwrap().nlink, 2 + subdirs, "link count of directory {dir}");
        }
        for (&ino, &n) in &self.links {
            assert_eq!(fs.getattr(ino).unwrap().nlink, n, "link count of file {ino}");
        }
    }
}

fn run(ops: Vec<Op>) {
    let mut fs = MemFs::default();
    let mut shadow: BTreeMap<NodeId, Vec<u8>> = BTreeMap::new();
    let mut opened: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut model = Model::default();
    model.dirs.insert(ROOT, BTreeMap::new());
    for op in ops {
        let (dirs, files) = reachable(&fs);
        // Files that are open but unlinked stay addressable, as through an open descriptor.
        let mut handles: Vec<NodeId> = files.clone();
        handles.extend(opened.keys().filter(|k| !files.contains(k) && fs.tree.nodes.contains_key(k)));
        let dir = |i: usize| dirs[i % dirs.len()];
        let file = |i: usize| (!handles.is_empty()).then(|| handles[i % handles.len()]);
        match op {
            Op::CreateFile(d, n) | Op::Mkdir(d, n) => {
                let (kind, mode) = if matches!(op, Op::CreateFile(..)) {
                    (FileType::File, 0o644)
                } else {
                    (FileType::Directory, 0o755)
                };
                let want = model.create(dir(d), NAMES[n]);
                let got = fs.create(dir(d), NAMES[n], &NewNode::new(kind, mode));
                assert_eq!(got.map(|_| ()), want, "{op:?}");
                if let Ok(st) = got {
                    assert_eq!(st.kind, kind);
                    model.adopt(dir(d), NAMES[n], st.ino, kind);
                    if kind == FileType::File {
                        shadow.insert(st.ino, Vec::new());
                    }
                }
            }
            Op::Unlink(d, n) => {
                let want = model.unlink(dir(d), NAMES[n]);
                assert_eq!(fs.unlink(dir(d), NAMES[n]), want, "{op:?}");
            }
            Op::Rmdir(d, n) => {
                let want = model.rmdir(dir(d), NAMES[n]);
                assert_eq!(fs.rmdir(dir(d), NAMES[n]), want, "{op:?}");
            }
            Op::Rename(a, b, c, e) => {
                let want = model.rename(dir(a), NAMES[b], dir(c), NAMES[e]);
                assert_eq!(fs.rename(dir(a), NAMES[b], dir(c), NAMES[e]), want, "{op:?}");
            }
            Op::Link(f, d, n) => {
                if let Some(f) = file(f) {
                    let want = model.link(f, dir(d), NAMES[n]);
                    let got = fs.link(f, dir(d), NAMES[n]);
                    assert_eq!(got.map(|_| ()), want, "{op:?}");
                    if let Ok(st) = got {
                        assert_eq!(st.nlink, model.links[&f], "link count returned by link");
                    }
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
        model.compare(&mut fs);
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
