//! Snapshots and scrub over IPC through the whole stack: app stub → vfs server (by mount path) →
//! filesystem server → block cache. WFS does them; FAT and memfs answer `NotSupported`.

mod common;

use common::*;
use protocol::fs::FileSystem;
use protocol::Error;

#[test]
fn snapshots_are_created_listed_and_deleted_through_the_vfs() {
    let (s, app) = stack();
    let c = &app.vfs;
    put(c, "/a.txt", b"before").unwrap();
    c.snapshot_create("/", "first").unwrap();
    put(c, "/a.txt", b"after the snapshot").unwrap();
    assert_eq!(c.snapshot_create("/", "first"), Err(Error::AlreadyExists));
    // Any path on the mount picks its filesystem.
    c.snapshot_create("/a.txt", "second").unwrap();
    let names: Vec<String> = c.snapshot_list("/", 0).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["first", "second"]);
    // The snapshot really holds the old contents: read it from the disk as WFS left it.
    c.snapshot_delete("/", "second").unwrap();
    let mut durable = s.durable_wfs().unwrap();
    let mut view = durable.snapshot("first").unwrap();
    let root = view.root();
    let ino = view.lookup(root, "a.txt").unwrap().ino;
    let mut buf = [0u8; 32];
    let n = view.read(ino, 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"before");
    assert_eq!(get(c, "/a.txt").unwrap(), b"after the snapshot");
    assert_eq!(c.snapshot_delete("/", "second"), Err(Error::NotFound));
    c.snapshot_delete("/", "first").unwrap();
    assert_eq!(c.snapshot_list("/", 0).unwrap(), []);
}

#[test]
fn a_long_snapshot_list_arrives_whole_in_pages() {
    let (_s, app) = stack();
    let c = &app.vfs;
    // 30 names of 200 bytes: more than one reply area at both hops (wfs → vfs, vfs → app).
    let want: Vec<String> = (0..30).map(|i| format!("{i:03}{}", "s".repeat(197))).collect();
    for n in &want {
        c.snapshot_create("/", n).unwrap();
    }
    let first = c.snapshot_list("/", 0).unwrap();
    assert!(!first.is_empty() && first.len() < want.len(), "one page is cut to fit ({})", first.len());
    let mut all = Vec::new();
    loop {
        let page = c.snapshot_list("/", all.len() as u32).unwrap();
        if page.is_empty() {
            break;
        }
        all.extend(page.into_iter().map(|s| s.name));
    }
    assert_eq!(all, want, "oldest first, each once");
}

#[test]
fn scrub_reports_a_clean_filesystem_and_others_say_not_supported() {
    let (_s, app) = stack();
    let c = &app.vfs;
    put(c, "/data.bin", &pattern(100_000, 3)).unwrap();
    c.snapshot_create("/", "kept").unwrap();
    let r = c.scrub("/").unwrap();
    assert!(r.is_clean() && r.unrepairable_blocks.is_empty(), "{r:?}");
    assert!(r.node_copies_checked >= 2, "ditto metadata: every node twice ({r:?})");
    assert!(r.data_blocks_checked >= 25, "100,000 bytes are 25 data blocks ({r:?})");
    for path in ["/fat", "/mem", "/fat/"] {
        assert_eq!(c.scrub(path), Err(Error::NotSupported), "{path}");
        assert_eq!(c.snapshot_create(path, "x"), Err(Error::NotSupported), "{path}");
        assert_eq!(c.snapshot_list(path, 0), Err(Error::NotSupported), "{path}");
        assert_eq!(c.snapshot_delete(path, "x"), Err(Error::NotSupported), "{path}");
    }
    assert_eq!(c.scrub("/nowhere/x"), Err(Error::NotFound));
    assert_eq!(get(c, "/data.bin").unwrap(), pattern(100_000, 3), "scrub changed nothing it should not");
}

#[test]
fn no_snapshot_inside_a_transaction() {
    let (_s, app) = stack();
    let c = &app.vfs;
    let tx = c.begin("/").unwrap();
    assert_eq!(c.snapshot_create("/", "mid"), Err(Error::Busy));
    c.commit(tx).unwrap();
    c.snapshot_create("/", "mid").unwrap();
}

/// The newest valid superblock on `disk` (WFS keeps one in the first and one in the last block).
fn newest_superblock(disk: &mut watos_stack::SharedDisk) -> wfs::ondisk::Superblock {
    use blockdev::BlockDevice;
    use wfs::ondisk::{superblock_addrs, Superblock, BLOCK_SIZE, SECTORS_PER_BLOCK};
    let total = disk.sector_count() / SECTORS_PER_BLOCK;
    let mut buf = vec![0u8; BLOCK_SIZE];
    superblock_addrs(total)
        .into_iter()
        .filter_map(|addr| {
            disk.read(addr * SECTORS_PER_BLOCK, &mut buf).ok()?;
            Superblock::decode(&buf, addr).ok()
        })
        .max_by_key(|sb| sb.txid)
        .expect("a valid superblock")
}

#[test]
fn scrub_over_ipc_repairs_a_damaged_metadata_copy() {
    use blockdev::BlockDevice;
    use wfs::ondisk::{BLOCK_SIZE, SECTORS_PER_BLOCK};
    let (s, app) = stack();
    let c = &app.vfs;
    put(c, "/kept.bin", &pattern(50_000, 9)).unwrap();
    // A snapshot commits, and a commit writes everything through the cache to the disk.
    c.snapshot_create("/", "now").unwrap();
    let mut disk = s.wfs_disk.clone();
    let root = newest_superblock(&mut disk).root;
    assert_ne!(root.addr, root.addr2, "ditto metadata: two copies of the root node");
    disk.write(root.addr2 * SECTORS_PER_BLOCK, &vec![0xA5; BLOCK_SIZE]).unwrap();
    // A fresh cache, so the damaged copy is what the next read of that block sees.
    s.restart("wfs-cache").unwrap();
    let r = c.scrub("/").unwrap();
    assert!(r.node_copies_repaired >= 1 && r.is_clean(), "{r:?}");
    let mut buf = vec![0u8; BLOCK_SIZE];
    disk.read(root.addr2 * SECTORS_PER_BLOCK, &mut buf).unwrap();
    assert_ne!(buf, vec![0xA5; BLOCK_SIZE], "the bad copy was rewritten on the disk");
    let again = c.scrub("/").unwrap();
    assert_eq!((again.node_copies_repaired, again.is_clean()), (0, true), "{again:?}");
    assert_eq!(get(c, "/kept.bin").unwrap(), pattern(50_000, 9));
}
