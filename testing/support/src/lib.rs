//! Helpers the host test suites share (dev-dependency only; nothing in a WATOS binary uses it).
//!
//! Design: what more than one crate's tests need, written once: the deterministic test data
//! ([`pattern`]), the fixed clock filesystems are formatted with ([`clock`]), shortcuts over any
//! [`FileSystem`] that unwrap, because a failing step is the test's failure ([`mkfile`], [`mkdir`],
//! [`read_all`], [`walk`], [`dump`]). Helpers tied to
//! one crate (a WFS remount, the mtools oracles, a vfs client) stay in that crate's `tests/common`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, NodeId, Timespec};

/// `len` deterministic pseudo-random bytes, different per seed (every seed, 0 included, is usable).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    prng::bytes(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, len)
}

/// The clock test filesystems are made with: always the same instant, so runs are reproducible.
pub fn clock() -> Box<FixedClock> {
    Box::new(FixedClock(Timespec::new(1_700_000_000, 0)))
}

/// Create file `name` in `dir` holding `data`; its node id.
pub fn mkfile<F: FileSystem + ?Sized>(fs: &mut F, dir: NodeId, name: &str, data: &[u8]) -> NodeId {
    let st = fs.create(dir, name, &NewNode::new(FileType::File, 0o644)).expect("create");
    if !data.is_empty() {
        assert_eq!(fs.write(st.ino, 0, data).expect("write"), data.len());
    }
    st.ino
}

/// Create directory `name` in `dir`; its node id.
pub fn mkdir<F: FileSystem + ?Sized>(fs: &mut F, dir: NodeId, name: &str) -> NodeId {
    fs.create(dir, name, &NewNode::new(FileType::Directory, 0o755)).expect("mkdir").ino
}

/// The whole content of file `ino`, as long as `getattr` says it is; a read that stops early fails.
pub fn read_all<F: FileSystem + ?Sized>(fs: &mut F, ino: NodeId) -> Vec<u8> {
    let size = fs.getattr(ino).expect("getattr").size as usize;
    let mut buf = vec![0u8; size];
    let mut off = 0;
    while off < size {
        let n = fs.read(ino, off as u64, &mut buf[off..]).expect("read");
        assert!(n > 0, "short read at {off} of {size}");
        off += n;
    }
    buf
}

/// Resolve a slash-separated path from the root, component by component.
pub fn walk<F: FileSystem + ?Sized>(fs: &mut F, path: &str) -> protocol::Result<NodeId> {
    let mut at = fs.root();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = fs.lookup(at, part)?.ino;
    }
    Ok(at)
}

/// Everything visible through a namespace: path -> (kind, contents or link target, link count).
pub type State = BTreeMap<String, (FileType, Vec<u8>, u32)>;

/// The [`State`] of the whole filesystem, listing directories in pages of 64.
pub fn dump<F: FileSystem + ?Sized>(fs: &mut F) -> State {
    let mut out = State::new();
    let root = fs.root();
    dump_dir(fs, root, String::new(), &mut out);
    out
}

fn dump_dir<F: FileSystem + ?Sized>(fs: &mut F, dir: NodeId, path: String, out: &mut State) {
    let mut cookie = 0;
    loop {
        let page = fs.readdir(dir, cookie, 64).expect("readdir");
        let Some(last) = page.last() else { break };
        cookie = last.next_cookie;
        for e in &page {
            let p = format!("{path}/{}", e.name);
            let st = fs.getattr(e.ino).expect("getattr");
            let body = match e.kind {
                FileType::File => read_all(fs, e.ino),
                FileType::Symlink => fs.readlink(e.ino).expect("readlink").into_bytes(),
                _ => Vec::new(),
            };
            out.insert(p.clone(), (e.kind, body, st.nlink));
            if e.kind == FileType::Directory {
                dump_dir(fs, e.ino, p, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_deterministic_and_differ_per_seed() {
        assert_eq!(pattern(100, 3), pattern(100, 3));
        assert_ne!(pattern(100, 3), pattern(100, 4));
        assert_ne!(pattern(100, 0), vec![0u8; 100]);
        assert_eq!(pattern(10, 9)[..], pattern(20, 9)[..10]);
    }
}
