//! Model-based random test: the same random operation sequences run on WFS and on `memfs::MemFs`
//! (the reference in-memory filesystem) must give the same results, including across unmount and
//! remount of WFS and explicit transactions that commit or abort, and reads made outside an open
//! transaction (another process's view: the state the transaction began from).

mod common;

use blockdev::RamDisk;
use common::*;
use memfs::MemFs;
use proptest::prelude::*;
use protocol::fs::{FileSystem, FileType, NewNode, NodeId, SetAttr};
use protocol::Result;
use wfs::{FormatOptions, Wfs};

/// A path: up to two directory levels of names n0..n3.
type P = Vec<u8>;

#[derive(Debug, Clone)]
enum Op {
    Create(P, u8),
    Write(P, u64, u16, u8),
    Read(P, u64, u16),
    Truncate(P, u64),
    Unlink(P),
    Rmdir(P),
    Rename(P, P),
    Link(P, P),
    Readdir(P),
    Stat(P),
    Sync,
    Remount,
    /// WFS only: run fsck (outside a transaction it must be clean) or a background tick.
    Fsck,
    Tick,
    Begin,
    Commit,
    Abort,
    /// A read by another process: outside the open transaction (if any), then back inside.
    Outside(Box<Op>),
}

fn path() -> impl Strategy<Value = P> {
    prop::collection::vec(0u8..4, 1..=3)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (path(), 0u8..4).prop_map(|(p, k)| Op::Create(p, k)),
        4 => (path(), 0u64..40_000, 1u16..9000, any::<u8>()).prop_map(|(p, o, l, s)| Op::Write(p, o, l, s)),
        3 => (path(), 0u64..50_000, 1u16..9000).prop_map(|(p, o, l)| Op::Read(p, o, l)),
        1 => (path(), 0u64..30_000).prop_map(|(p, s)| Op::Truncate(p, s)),
        2 => path().prop_map(Op::Unlink),
        1 => path().prop_map(Op::Rmdir),
        2 => (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (path(), path()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => path().prop_map(Op::Readdir),
        1 => path().prop_map(Op::Stat),
        1 => Just(Op::Sync),
        1 => Just(Op::Remount),
        1 => Just(Op::Fsck),
        1 => Just(Op::Tick),
        1 => Just(Op::Begin),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
        2 => prop_oneof![
            (path(), 0u64..50_000, 1u16..9000).prop_map(|(p, o, l)| Op::Read(p, o, l)),
            path().prop_map(Op::Readdir),
            path().prop_map(Op::Stat),
        ]
        .prop_map(|o| Op::Outside(Box::new(o))),
    ]
}

fn name(i: u8) -> String {
    format!("n{i}")
}

/// Resolve all but the last component; returns (parent dir, last name).
fn parent<F: FileSystem>(fs: &mut F, p: &P) -> Result<(NodeId, String)> {
    let mut dir = fs.root();
    for &c in &p[..p.len() - 1] {
        dir = fs.lookup(dir, &name(c))?.ino;
    }
    Ok((dir, name(*p.last().unwrap())))
}

fn node<F: FileSystem>(fs: &mut F, p: &P) -> Result<NodeId> {
    let (d, n) = parent(fs, p)?;
    Ok(fs.lookup(d, &n)?.ino)
}

/// What an operation returned, with node ids and times left out (they differ by design).
#[derive(Debug, PartialEq)]
enum Out {
    Unit,
    Attr(FileType, u64, u32),
    Bytes(Vec<u8>),
    Names(Vec<(String, FileType)>),
    Count(usize),
    Tx,
}

fn apply<F: FileSystem>(fs: &mut F, op: &Op, tx: &mut Option<u64>) -> Result<Out> {
    let attr =
        |s: protocol::fs::Stat| Out::Attr(s.kind, if s.kind == FileType::Directory { 0 } else { s.size }, s.nlink);
    match op {
        Op::Create(p, k) => {
            let (d, n) = parent(fs, p)?;
            let mut nn = NewNode::new(
                [FileType::File, FileType::Directory, FileType::Symlink, FileType::Fifo][*k as usize],
                0o644,
            );
            if nn.kind == FileType::Symlink {
                nn.symlink_target = "target".into();
            }
            fs.create(d, &n, &nn).map(attr)
        }
        Op::Write(p, off, len, seed) => {
            let ino = node(fs, p)?;
            fs.write(ino, *off, &pattern(*len as usize, *seed as u64)).map(Out::Count)
        }
        Op::Read(p, off, len) => {
            let ino = node(fs, p)?;
            let mut buf = vec![0u8; *len as usize];
            let n = fs.read(ino, *off, &mut buf)?;
            buf.truncate(n);
            Ok(Out::Bytes(buf))
        }
        Op::Truncate(p, size) => {
            let ino = node(fs, p)?;
            fs.setattr(ino, SetAttr { size: Some(*size), ..Default::default() }).map(attr)
        }
        Op::Unlink(p) => {
            let (d, n) = parent(fs, p)?;
            fs.unlink(d, &n).map(|_| Out::Unit)
        }
        Op::Rmdir(p) => {
            let (d, n) = parent(fs, p)?;
            fs.rmdir(d, &n).map(|_| Out::Unit)
        }
        Op::Rename(a, b) => {
            let (da, na) = parent(fs, a)?;
            let (db, nb) = parent(fs, b)?;
            fs.rename(da, &na, db, &nb).map(|_| Out::Unit)
        }
        Op::Link(a, b) => {
            let ino = node(fs, a)?;
            let (db, nb) = parent(fs, b)?;
            fs.link(ino, db, &nb).map(attr)
        }
        Op::Readdir(p) => {
            let ino = node(fs, p)?;
            let mut v: Vec<_> = fs.readdir(ino, 0, 1000)?.into_iter().map(|e| (e.name, e.kind)).collect();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            Ok(Out::Names(v))
        }
        Op::Stat(p) => {
            let ino = node(fs, p)?;
            fs.getattr(ino).map(attr)
        }
        Op::Sync | Op::Remount | Op::Fsck | Op::Tick => fs.sync().map(|_| Out::Unit),
        Op::Begin => {
            let id = fs.begin_transaction()?;
            *tx = Some(id);
            Ok(Out::Tx)
        }
        Op::Commit => fs.commit_transaction(tx.take().unwrap_or(u64::MAX)).map(|_| Out::Tx),
        Op::Abort => fs.abort_transaction(tx.take().unwrap_or(u64::MAX)).map(|_| Out::Tx),
        Op::Outside(inner) => {
            fs.select_transaction(None)?;
            let r = apply(fs, inner, &mut None);
            fs.select_transaction(*tx)?;
            r
        }
    }
}

fn run(ops: Vec<Op>, mib: u64) {
    let mut w = Wfs::format(RamDisk::new(mib * 2048), &FormatOptions::default(), clock()).unwrap();
    let mut m = MemFs::new(clock());
    let (mut wtx, mut mtx) = (None, None);
    for (i, op) in ops.iter().enumerate() {
        if let Op::Remount = op {
            // Unmount aborts an open explicit transaction; mirror that in the model.
            if let Some(t) = mtx.take() {
                m.abort_transaction(t).unwrap();
            }
            wtx = None;
            let dev = w.unmount().unwrap();
            w = Wfs::mount(dev, clock()).unwrap();
            continue;
        }
        match op {
            Op::Fsck if wtx.is_none() => {
                let r = w.fsck(false).unwrap();
                assert!(r.is_clean(), "op {i}: {r}");
                continue;
            }
            Op::Tick => {
                let t = w.tick(8).unwrap();
                assert!(t.bad_blocks.is_empty(), "op {i}: {t:?}");
                continue;
            }
            _ => {}
        }
        let a = apply(&mut w, op, &mut wtx);
        let b = apply(&mut m, op, &mut mtx);
        assert_eq!(a, b, "op {i}: {op:?}");
    }
    if let Some(t) = mtx.take() {
        m.abort_transaction(t).unwrap();
    }
    let dev = w.unmount().unwrap();
    let mut w = Wfs::mount(dev, clock()).unwrap();
    let r = w.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn wfs_matches_the_model(ops in prop::collection::vec(op(), 1..200)) {
        run(ops, 16);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    /// Longer sequences, many more cases (`cargo test -p wfs -- --ignored`).
    #[test]
    #[ignore]
    fn wfs_matches_the_model_long(ops in prop::collection::vec(op(), 1..600)) {
        run(ops, 32);
    }
}
