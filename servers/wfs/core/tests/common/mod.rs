//! Helpers shared by the WFS integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use blockdev::{BlockDevice, RamDisk};
use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, NodeId, Timespec};
use wfs::{FormatOptions, Wfs};

pub fn clock() -> Box<FixedClock> {
    Box::new(FixedClock(Timespec::new(1_700_000_000, 0)))
}

/// A freshly formatted filesystem on a RAM disk of `mib` MiB.
pub fn fresh(mib: u64) -> Wfs<RamDisk> {
    Wfs::format(RamDisk::new(mib * 2048), &FormatOptions::default(), clock()).unwrap()
}

pub fn remount<D: BlockDevice>(fs: Wfs<D>) -> Wfs<D> {
    let dev = fs.unmount().unwrap();
    Wfs::mount(dev, clock()).unwrap()
}

pub fn mkfile<F: FileSystem>(fs: &mut F, dir: NodeId, name: &str, data: &[u8]) -> NodeId {
    let st = fs.create(dir, name, &NewNode::new(FileType::File, 0o644)).unwrap();
    if !data.is_empty() {
        assert_eq!(fs.write(st.ino, 0, data).unwrap(), data.len());
    }
    st.ino
}

pub fn mkdir<F: FileSystem>(fs: &mut F, dir: NodeId, name: &str) -> NodeId {
    fs.create(dir, name, &NewNode::new(FileType::Directory, 0o755)).unwrap().ino
}

pub fn read_all<F: FileSystem>(fs: &mut F, ino: NodeId) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size];
    let mut off = 0;
    while off < size {
        let n = fs.read(ino, off as u64, &mut buf[off..]).unwrap();
        assert!(n > 0, "short read at {off} of {size}");
        off += n;
    }
    buf
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    prng::bytes(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, len)
}

pub type State = BTreeMap<String, (FileType, Vec<u8>, u32)>;

/// Everything visible through the namespace: path -> (kind, contents or link target, nlink).
pub fn dump<F: FileSystem>(fs: &mut F) -> State {
    let mut out = State::new();
    let root = fs.root();
    walk(fs, root, String::new(), &mut out);
    out
}

fn walk<F: FileSystem>(fs: &mut F, dir: NodeId, path: String, out: &mut State) {
    let mut cookie = 0;
    loop {
        let page = fs.readdir(dir, cookie, 64).unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            let p = format!("{path}/{}", e.name);
            let st = fs.getattr(e.ino).unwrap();
            let body = match e.kind {
                FileType::File => read_all(fs, e.ino),
                FileType::Symlink => fs.readlink(e.ino).unwrap().into_bytes(),
                _ => Vec::new(),
            };
            out.insert(p.clone(), (e.kind, body, st.nlink));
            if e.kind == FileType::Directory {
                walk(fs, e.ino, p, out);
            }
        }
        cookie = page.last().unwrap().next_cookie;
    }
}
