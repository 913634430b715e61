//! Model-based random testing: random sequences of operations run against the filesystem and
//! against a plain in-memory model of the tree; every result (success or the exact error) must
//! match, and at every remount and at the end the whole tree (names, kinds, contents) must match
//! and the checker must find the volume clean.

mod common;

use std::collections::BTreeMap;

use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType};
use proptest::prelude::*;
use protocol::fs::{FileSystem, FileType, NewNode, SetAttr};
use protocol::Error;

const NAMES: [&str; 5] = ["d1", "d2", "long name.txt", "Ünï", "e"];
const DIRS: [&str; 5] = ["", "/d1", "/d1/d2", "/e", "/d1/e"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize, usize),
    Mkdir(usize, usize),
    Write(usize, usize, u16, u16, u8),
    Truncate(usize, usize, u16),
    Unlink(usize, usize),
    Rmdir(usize, usize),
    Rename(usize, usize, usize, usize),
    Remount,
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DIRS.len();
    let n = 0..NAMES.len();
    prop_oneof![
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::Create(d, n)),
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::Mkdir(d, n)),
        (d.clone(), n.clone(), 0..6000u16, 1..3000u16, any::<u8>())
            .prop_map(|(d, n, o, l, s)| Op::Write(d, n, o, l, s)),
        (d.clone(), n.clone(), 0..6000u16).prop_map(|(d, n, s)| Op::Truncate(d, n, s)),
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::Unlink(d, n)),
        (d.clone(), n.clone()).prop_map(|(d, n)| Op::Rmdir(d, n)),
        (d.clone(), n.clone(), d, n).prop_map(|(a, b, c, e)| Op::Rename(a, b, c, e)),
        Just(Op::Remount),
    ]
}

/// The model: path → None for a directory, Some(contents) for a file. The root is "".
type Model = BTreeMap<String, Option<Vec<u8>>>;

fn join(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

/// Resolve a directory path the way `walk` + a directory operation would.
fn dir_of(m: &Model, path: &str) -> Result<(), Error> {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if m.get(&at) != Some(&None) {
            return Err(Error::NotADirectory);
        }
        at = join(&at, part);
        if !m.contains_key(&at) {
            return Err(Error::NotFound);
        }
    }
    match m.get(&at) {
        Some(None) => Ok(()),
        _ => Err(Error::NotADirectory),
    }
}

fn children<'a>(m: &'a Model, dir: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    m.keys().filter(move |k| {
        k.len() > dir.len()
            && k.starts_with(dir)
            && k[dir.len()..].starts_with('/')
            && !k[dir.len() + 1..].contains('/')
    })
}

/// The contents of file `NAMES[n]` in `DIRS[d]`, with the errors a lookup of it would give.
fn file_mut(m: &mut Model, d: usize, n: usize) -> Result<&mut Vec<u8>, Error> {
    dir_of(m, DIRS[d])?;
    match m.get_mut(&join(DIRS[d], NAMES[n])) {
        None => Err(Error::NotFound),
        Some(None) => Err(Error::IsADirectory),
        Some(Some(v)) => Ok(v),
    }
}

fn model_apply(m: &mut Model, op: &Op) -> Result<(), Error> {
    match *op {
        Op::Create(d, n) | Op::Mkdir(d, n) => {
            dir_of(m, DIRS[d])?;
            let p = join(DIRS[d], NAMES[n]);
            if m.contains_key(&p) {
                return Err(Error::AlreadyExists);
            }
            m.insert(p, if matches!(op, Op::Create(..)) { Some(Vec::new()) } else { None });
            Ok(())
        }
        Op::Write(d, n, off, len, seed) => {
            let v = file_mut(m, d, n)?;
            let end = off as usize + len as usize;
            if v.len() < end {
                v.resize(end, 0);
            }
            v[off as usize..end].copy_from_slice(&data(len as usize, seed as u64));
            Ok(())
        }
        Op::Truncate(d, n, size) => {
            file_mut(m, d, n)?.resize(size as usize, 0);
            Ok(())
        }
        Op::Unlink(d, n) | Op::Rmdir(d, n) => {
            dir_of(m, DIRS[d])?;
            let p = join(DIRS[d], NAMES[n]);
            let is_dir = match m.get(&p) {
                None => return Err(Error::NotFound),
                Some(v) => v.is_none(),
            };
            match (matches!(op, Op::Unlink(..)), is_dir) {
                (true, true) => return Err(Error::IsADirectory),
                (false, false) => return Err(Error::NotADirectory),
                (false, true) if children(m, &p).next().is_some() => return Err(Error::DirectoryNotEmpty),
                _ => {}
            }
            m.remove(&p);
            Ok(())
        }
        Op::Rename(fd, fnm, td, tnm) => {
            dir_of(m, DIRS[fd])?;
            let from = join(DIRS[fd], NAMES[fnm]);
            let Some(src) = m.get(&from).cloned() else { return Err(Error::NotFound) };
            dir_of(m, DIRS[td])?;
            let to = join(DIRS[td], NAMES[tnm]);
            if src.is_none() && (DIRS[td] == from || DIRS[td].starts_with(&format!("{from}/"))) {
                return Err(Error::InvalidArgument);
            }
            if from == to {
                return Ok(());
            }
            match (src.is_none(), m.get(&to)) {
                (false, Some(None)) => return Err(Error::IsADirectory),
                (true, Some(Some(_))) => return Err(Error::NotADirectory),
                (true, Some(None)) if children(m, &to).next().is_some() => return Err(Error::DirectoryNotEmpty),
                _ => {}
            }
            m.remove(&to);
            let moved: Vec<String> =
                m.keys().filter(|k| **k == from || k.starts_with(&format!("{from}/"))).cloned().collect();
            for k in moved {
                let v = m.remove(&k).unwrap();
                m.insert(format!("{to}{}", &k[from.len()..]), v);
            }
            Ok(())
        }
        Op::Remount => Ok(()),
    }
}

fn fs_apply(fs: &mut FatFs<RamDisk>, op: &Op) -> Result<(), Error> {
    let file = NewNode::new(FileType::File, 0o644);
    let dir = NewNode::new(FileType::Directory, 0o755);
    match *op {
        Op::Create(d, n) => {
            let p = walk(fs, DIRS[d])?;
            fs.create(p, NAMES[n], &file).map(drop)
        }
        Op::Mkdir(d, n) => {
            let p = walk(fs, DIRS[d])?;
            fs.create(p, NAMES[n], &dir).map(drop)
        }
        Op::Write(d, n, off, len, seed) => {
            let node = walk(fs, &join(DIRS[d], NAMES[n]))?;
            fs.write(node, off as u64, &data(len as usize, seed as u64)).map(drop)
        }
        Op::Truncate(d, n, size) => {
            let node = walk(fs, &join(DIRS[d], NAMES[n]))?;
            fs.setattr(node, SetAttr { size: Some(size as u64), ..Default::default() }).map(drop)
        }
        Op::Unlink(d, n) => {
            let p = walk(fs, DIRS[d])?;
            fs.unlink(p, NAMES[n])
        }
        Op::Rmdir(d, n) => {
            let p = walk(fs, DIRS[d])?;
            fs.rmdir(p, NAMES[n])
        }
        Op::Rename(fd, fnm, td, tnm) => {
            let a = walk(fs, DIRS[fd])?;
            // The model resolves the source name before the target directory; so do we.
            fs.lookup(a, NAMES[fnm])?;
            let b = walk(fs, DIRS[td])?;
            fs.rename(a, NAMES[fnm], b, NAMES[tnm])
        }
        Op::Remount => Ok(()),
    }
}

fn compare(fs: &mut FatFs<RamDisk>, m: &Model) {
    for (path, v) in m {
        let node = walk(fs, path).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        match v {
            Some(bytes) => assert!(read_all(fs, node) == *bytes, "{path} differs"),
            None => {
                let mut names: Vec<String> = fs.readdir(node, 0, 1000).unwrap().into_iter().map(|e| e.name).collect();
                let mut want: Vec<String> =
                    children(m, path).map(|k| k.rsplit('/').next().unwrap().to_string()).collect();
                names.sort();
                want.sort();
                assert_eq!(names, want, "listing of {path:?}");
            }
        }
    }
    let r = fs.check().unwrap();
    assert!(r.is_clean(), "{r}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model(
        kind in prop_oneof![Just(FatType::Fat12), Just(FatType::Fat16)],
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let sectors = if kind == FatType::Fat12 { 2048 } else { 4400 };
        let mut fs = format(kind, sectors, None);
        let mut m = Model::new();
        m.insert(String::new(), None);
        for (i, op) in ops.iter().enumerate() {
            let want = model_apply(&mut m, op);
            let got = fs_apply(&mut fs, op);
            prop_assert_eq!(got, want, "op {} {:?}", i, op);
            if matches!(op, Op::Remount) {
                fs = FatFs::mount(fs.unmount().unwrap(), clock()).unwrap();
                compare(&mut fs, &m);
            }
        }
        compare(&mut fs, &m);
        let mut fs = FatFs::mount(fs.unmount().unwrap(), clock()).unwrap();
        compare(&mut fs, &m);
    }
}
