//! An I/O error in the middle of an operation leaves no trace: for every operation kind, a read of
//! each tree node and of the data blocks a partial write reads back (one at a time, with the node
//! cache dropped so the read reaches the device), or the k-th device write, is made to fail;
//! whenever the operation fails, the in-memory state equals the state before it (namespace,
//! contents, attributes, free space), the filesystem stays usable, and fsck is clean after the next
//! commit and remount. The multi-chunk write fails after its first chunk changed the tree.

mod common;

use blockdev::{FaultDisk, RamDisk};
use common::*;
use protocol::fs::{FileSystem, FileType, NewNode, SetAttr, Stat};
use protocol::Error;
use wfs::{FormatOptions, Wfs};

type Fs = Wfs<FaultDisk<RamDisk>>;
const BS: usize = 4096;

/// Without ditto copies, so a failed read of a node's only copy reaches the operation.
fn image() -> Vec<u8> {
    let mut fs =
        Wfs::format(RamDisk::new(16 * 2048), &FormatOptions { ditto_metadata: false, ..Default::default() }, clock())
            .unwrap();
    let root = fs.root();
    // First, so its items have the lowest keys: `pre` works here and dirties nothing the
    // operations need (the end of the tree, where new inodes go, stays on disk).
    let p = mkdir(&mut fs, root, "p");
    mkfile(&mut fs, p, "a", &pattern(3000, 2));
    mkfile(&mut fs, p, "b", &pattern(3000, 3));
    let d = mkdir(&mut fs, root, "d");
    // Enough items for tens of leaves, so most of the tree is not dirty after `pre`.
    for i in 0..400 {
        mkfile(&mut fs, d, &format!("f{i}"), &pattern(i % 20 * 50, i as u64));
    }
    mkfile(&mut fs, root, "big", &pattern(128 * BS + 100, 1));
    mkdir(&mut fs, root, "empty");
    let x = mkfile(&mut fs, root, "x", b"x");
    fs.link(x, d, "xl").unwrap();
    let sub = mkdir(&mut fs, root, "sub");
    mkfile(&mut fs, sub, "inner", b"inner");
    fs.unmount().unwrap().into_bytes()
}

fn id(fs: &mut Fs, path: &str) -> protocol::Result<u64> {
    let mut at = fs.root();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = fs.lookup(at, part)?.ino;
    }
    Ok(at)
}

/// Uncommitted work before the faulty operation, so there is in-memory state to keep.
fn pre(fs: &mut Fs) {
    let (p, a) = (id(fs, "/p").unwrap(), id(fs, "/p/a").unwrap());
    fs.write(a, 10, &pattern(3 * BS, 7)).unwrap();
    fs.unlink(p, "b").unwrap();
}

/// Everything an operation could change: the namespace with contents and attributes, free space.
fn state(fs: &mut Fs) -> (State, Vec<(String, Stat)>, u64) {
    let names = dump(fs);
    let stats = names
        .keys()
        .map(|p| {
            let ino = id(fs, p).unwrap();
            (p.clone(), fs.getattr(ino).unwrap())
        })
        .collect();
    (names, stats, fs.statfs().unwrap().free_blocks)
}

type OpFn = fn(&mut Fs, &Ids) -> protocol::Result<()>;

/// The nodes the operations work on, looked up before any fault is armed.
struct Ids {
    root: u64,
    d: u64,
    big: u64,
    x: u64,
}

fn ops() -> Vec<(&'static str, OpFn)> {
    vec![
        ("write across chunks", |fs, ids| {
            let f = ids.big;
            fs.write(f, 4000, &pattern(384 * BS, 9)).map(drop)
        }),
        ("overwrite inside an extent", |fs, ids| {
            let f = ids.big;
            fs.write(f, 20 * BS as u64 + 7, &pattern(2 * BS, 10)).map(drop)
        }),
        ("create", |fs, ids| {
            let d = ids.d;
            fs.create(d, "new", &NewNode::new(FileType::File, 0o644)).map(drop)
        }),
        ("mkdir", |fs, ids| {
            let d = ids.d;
            fs.create(d, "newdir", &NewNode::new(FileType::Directory, 0o755)).map(drop)
        }),
        ("symlink", |fs, ids| {
            let mut n = NewNode::new(FileType::Symlink, 0o777);
            n.symlink_target = "d/f1".into();
            let root = ids.root;
            fs.create(root, "ln", &n).map(drop)
        }),
        ("unlink a big file", |fs, ids| {
            let root = ids.root;
            fs.unlink(root, "big")
        }),
        ("unlink", |fs, ids| {
            let d = ids.d;
            fs.unlink(d, "f3")
        }),
        ("rmdir", |fs, ids| {
            let root = ids.root;
            fs.rmdir(root, "empty")
        }),
        ("rename replacing", |fs, ids| {
            let (d, root) = (ids.d, ids.root);
            fs.rename(d, "f1", root, "x")
        }),
        ("rename a directory", |fs, ids| {
            let (d, root) = (ids.d, ids.root);
            fs.rename(root, "sub", d, "sub2")
        }),
        ("truncate", |fs, ids| {
            let f = ids.big;
            fs.setattr(f, SetAttr { size: Some(5000), ..Default::default() }).map(drop)
        }),
        ("link", |fs, ids| {
            let (x, d) = (ids.x, ids.d);
            fs.link(x, d, "x3").map(drop)
        }),
    ]
}

fn mount(img: &[u8]) -> (Fs, Ids) {
    let mut fs = Wfs::mount(FaultDisk::new(RamDisk::from_bytes(img.to_vec())), clock()).unwrap();
    pre(&mut fs);
    let ids = Ids {
        root: fs.root(),
        d: id(&mut fs, "/d").unwrap(),
        big: id(&mut fs, "/big").unwrap(),
        x: id(&mut fs, "/x").unwrap(),
    };
    fs.drop_caches();
    (fs, ids)
}

/// After a failed operation: nothing changed, and the filesystem still works.
fn check_after_failure(mut fs: Fs, ids: &Ids, op: OpFn, before: &(State, Vec<(String, Stat)>, u64), what: &str) {
    // Not assert_eq: the states are large.
    assert!(&state(&mut fs) == before, "{what}: the failed operation left a trace");
    fs.sync().unwrap();
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{what}: {r}");
    op(&mut fs, ids).unwrap_or_else(|e| panic!("{what}: the retry failed: {e:?}"));
    let dev = fs.unmount().unwrap();
    let mut fs = Wfs::mount(dev, clock()).unwrap();
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{what}, after remount: {r}");
}

#[test]
fn failed_reads_mid_operation_leave_no_trace() {
    let img = image();
    let before = state(&mut mount(&img).0);
    // Tree nodes, and the blocks of "big" that the partial writes read back.
    let big = pattern(128 * BS + 100, 1);
    let edges: Vec<&[u8]> = [0, 20, 22].iter().map(|&i| &big[i * BS..(i + 1) * BS]).collect();
    let used: Vec<u64> = (1..(img.len() / BS) as u64 - 1)
        .filter(|&b| {
            let blk = &img[b as usize * BS..][..BS];
            &blk[..4] == b"WFSN" || edges.contains(&blk)
        })
        .collect();
    assert!(used.len() > 5, "{used:?}");
    for (name, op) in ops() {
        let mut failures = 0;
        for &b in &used {
            let (mut fs, ids) = mount(&img);
            fs.device_mut().fail_reads(b * 8..b * 8 + 8);
            let r = op(&mut fs, &ids);
            fs.device_mut().heal_reads();
            match r {
                Ok(()) => continue,
                Err(Error::Io { .. }) => {}
                Err(e) => panic!("{name}: block {b}: unexpected error {e:?}"),
            }
            failures += 1;
            check_after_failure(fs, &ids, op, &before, &format!("{name}, read of block {b} failed"));
        }
        assert!(failures > 0, "{name}: no read failure reached the operation");
    }
}

#[test]
fn failed_writes_mid_operation_leave_no_trace() {
    let img = image();
    let before = state(&mut mount(&img).0);
    for (name, op) in ops().into_iter().filter(|(n, _)| n.contains("write") || n.contains("truncate")) {
        let mut k = 0;
        loop {
            let (mut fs, ids) = mount(&img);
            fs.device_mut().fail_after_writes(Some(k));
            let r = op(&mut fs, &ids);
            fs.device_mut().fail_after_writes(None);
            match r {
                Ok(()) => break,
                Err(Error::Io { .. }) => {
                    check_after_failure(fs, &ids, op, &before, &format!("{name}, write {k} failed"))
                }
                Err(e) => panic!("{name}: write {k}: unexpected error {e:?}"),
            }
            k += 1;
        }
        // The write across chunks issues several device writes: some fail after others landed.
        if name == "write across chunks" {
            assert!(k >= 2, "{name}: only {k} writes");
        }
    }
}
