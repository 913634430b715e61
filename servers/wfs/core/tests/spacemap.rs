//! The persisted space map: mount reads it instead of walking the trees, it stays equal to a full
//! walk across commits, deletes and snapshots, and a damaged map is survived and repaired.

mod common;

use blockdev::{FaultDisk, RamDisk};
use common::*;
use protocol::fs::FileSystem;
use wfs::Wfs;

const BS: usize = 4096;

/// An image with enough metadata that a walk would read hundreds of nodes.
fn big_image() -> (Vec<u8>, u64) {
    let mut fs = fresh(64);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    for i in 0..3000 {
        mkfile(&mut fs, d, &format!("a-file-with-a-long-name-{i:05}"), &pattern(i % 5 * 1000, i as u64));
    }
    mkfile(&mut fs, root, "big", &pattern(8 << 20, 1));
    let nodes = fs.fsck(false).unwrap().tree_nodes;
    (fs.unmount().unwrap().into_bytes(), nodes)
}

#[test]
fn mount_reads_the_map_not_the_trees() {
    let (img, nodes) = big_image();
    assert!(nodes > 100, "{nodes} tree nodes");
    let mut fs = Wfs::mount(FaultDisk::new(RamDisk::from_bytes(img.clone())), clock()).unwrap();
    let reads = fs.device_mut().counters().read_calls;
    // Two superblocks, the map (index + bitmap), the root inode's path, the orphan and snapshot scans.
    assert!(reads < 20, "mount made {reads} reads for {nodes} tree nodes");
    assert!(fs.fsck(false).unwrap().is_clean());
    // The walking mount (recovery) finds the same allocation and reads every node.
    let mut w = Wfs::mount_rebuilding_space_map(FaultDisk::new(RamDisk::from_bytes(img)), clock()).unwrap();
    assert!(w.device_mut().counters().read_calls > nodes / 2);
    assert!(w.fsck(false).unwrap().is_clean());
}

#[test]
fn map_matches_a_walk_after_frees_snapshots_and_remounts() {
    let mut fs = fresh(16);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "f", &pattern(300 * BS, 2));
    fs.sync().unwrap();
    fs.create_snapshot("s").unwrap();
    fs.write(f, 10 * BS as u64, &pattern(50 * BS, 3)).unwrap();
    fs.unlink(root, "f").unwrap();
    let mut fs = remount(fs);
    assert!(fs.fsck(false).unwrap().is_clean());
    let before = fs.statfs().unwrap().free_blocks;
    fs.delete_snapshot("s").unwrap();
    let after = fs.statfs().unwrap().free_blocks;
    assert!(after >= before + 300, "the snapshot's blocks come back: {before} -> {after}");
    // The space is free in the persisted map too, not only in memory.
    let mut fs = remount(fs);
    assert_eq!(fs.statfs().unwrap().free_blocks, after);
    assert!(fs.fsck(false).unwrap().is_clean());
}

fn map_top(img: &[u8]) -> usize {
    // The map's top node: superblock bytes 92..100 (docs/WFS.md §2).
    u64::from_le_bytes(img[92..100].try_into().unwrap()) as usize
}

#[test]
fn damaged_map_falls_back_to_a_walk_and_is_rewritten() {
    let mut fs = fresh(16);
    let root = fs.root();
    mkfile(&mut fs, root, "f", &pattern(100 * BS, 4));
    let free = fs.statfs().unwrap().free_blocks;
    let mut img = fs.unmount().unwrap().into_bytes();
    let top = map_top(&img);
    img[top * BS + 40] ^= 0xff;
    // Mount walks the trees instead, and its first commit writes a complete new map.
    let fs = Wfs::mount(RamDisk::from_bytes(img), clock()).unwrap();
    let img = fs.unmount().unwrap().into_bytes();
    assert_ne!(map_top(&img), top);
    let mut fs = Wfs::mount(FaultDisk::new(RamDisk::from_bytes(img)), clock()).unwrap();
    assert!(fs.device_mut().counters().read_calls < 20, "the new map is used");
    assert_eq!(fs.statfs().unwrap().free_blocks, free, "the walk found the same free space");
    assert!(fs.fsck(false).unwrap().is_clean());
}

#[test]
fn fsck_finds_and_repairs_a_damaged_map() {
    let mut fs = fresh(16);
    let root = fs.root();
    mkfile(&mut fs, root, "f", &pattern(100 * BS, 4));
    fs.sync().unwrap();
    let free = fs.statfs().unwrap().free_blocks;
    let top = map_top(fs.device_mut().as_bytes_mut());
    fs.device_mut().as_bytes_mut()[top * BS + 40] ^= 0xff;
    let r = fs.fsck(false).unwrap();
    assert!(r.problems.iter().any(|p| p.contains("space map unreadable")), "{r}");
    let r = fs.fsck(true).unwrap();
    assert!(r.repaired > 0, "{r}");
    assert!(fs.fsck(false).unwrap().is_clean());
    let mut fs = remount(fs);
    assert!(fs.fsck(false).unwrap().is_clean());
    assert_eq!(fs.statfs().unwrap().free_blocks, free);
}

#[test]
fn scrub_rebuilds_a_damaged_map() {
    let mut fs = fresh(16);
    let root = fs.root();
    mkfile(&mut fs, root, "f", &pattern(10 * BS, 5));
    fs.sync().unwrap();
    let top = map_top(fs.device_mut().as_bytes_mut());
    fs.device_mut().as_bytes_mut()[top * BS + 100] ^= 1;
    let r = fs.scrub().unwrap();
    assert!(r.space_map_rebuilt && r.is_clean(), "{r}");
    assert!(fs.scrub().unwrap().to_string().ends_with("[]"));
    let mut fs = remount(fs);
    assert!(fs.fsck(false).unwrap().is_clean());
}
