//! Variable-length extents: sequential writes give few long extent items, appends merge, COW
//! overwrites and truncates split them, and a checksum mismatch inside a long extent names the
//! damaged block while the rest of the extent still reads.

mod common;

use common::*;
use protocol::fs::FileSystem;
use protocol::Error;

const BS: usize = 4096;

fn extent_items<D: blockdev::BlockDevice>(fs: &mut wfs::Wfs<D>) -> u64 {
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    r.extents
}

#[test]
fn sequential_write_maps_long_runs_and_appends_merge() {
    let mut fs = fresh(64);
    let root = fs.root();
    let data = pattern(4 << 20, 1);
    let f = mkfile(&mut fs, root, "f", &data);
    // 1024 blocks in runs of at most 256 blocks: 4 items (one per block before extents: 1024).
    assert_eq!(extent_items(&mut fs), 4);
    // Small appends in one commit group join the last extent instead of adding items.
    let f2 = mkfile(&mut fs, root, "g", &[]);
    let mut want = Vec::new();
    for i in 0..40u64 {
        let chunk = pattern(BS, 100 + i);
        fs.write(f2, i * BS as u64, &chunk).unwrap();
        want.extend_from_slice(&chunk);
    }
    assert_eq!(extent_items(&mut fs), 5);
    let mut fs = remount(fs);
    assert_eq!(read_all(&mut fs, f), data);
    assert_eq!(read_all(&mut fs, f2), want);
}

#[test]
fn overwrite_in_the_middle_splits_and_truncate_trims() {
    let mut fs = fresh(64);
    let root = fs.root();
    let mut data = pattern(100 * BS, 2);
    let f = mkfile(&mut fs, root, "f", &data);
    fs.sync().unwrap();
    assert_eq!(extent_items(&mut fs), 1);
    // The committed extent is copy-on-write: block 50 goes elsewhere, splitting the item in three.
    let patch = pattern(BS, 3);
    fs.write(f, 50 * BS as u64, &patch).unwrap();
    data[50 * BS..51 * BS].copy_from_slice(&patch);
    assert_eq!(extent_items(&mut fs), 3);
    assert_eq!(read_all(&mut fs, f), data);
    // Unaligned overwrite across the split point keeps the neighbouring bytes.
    let patch = pattern(3 * BS, 4);
    fs.write(f, 49 * BS as u64 + 100, &patch).unwrap();
    data[49 * BS + 100..52 * BS + 100].copy_from_slice(&patch);
    assert_eq!(read_all(&mut fs, f), data);
    // Truncating inside the first extent trims it and drops the rest; the new last block has its
    // tail zeroed, which rewrites it elsewhere (copy-on-write): [0, 30) and [30].
    fs.setattr(f, protocol::fs::SetAttr { size: Some(30 * BS as u64 + 7), ..Default::default() }).unwrap();
    data.truncate(30 * BS + 7);
    assert_eq!(extent_items(&mut fs), 2);
    assert_eq!(fs.getattr(f).unwrap().blocks, 31 * 8);
    let mut fs = remount(fs);
    assert_eq!(read_all(&mut fs, f), data);
    // Growing again reads zeros past the old end.
    fs.setattr(f, protocol::fs::SetAttr { size: Some(40 * BS as u64), ..Default::default() }).unwrap();
    data.resize(40 * BS, 0);
    assert_eq!(read_all(&mut fs, f), data);
    assert!(fs.fsck(false).unwrap().is_clean());
}

#[test]
fn sparse_extents_and_far_offsets() {
    let mut fs = fresh(64);
    let root = fs.root();
    let f = mkfile(&mut fs, root, "sparse", &[]);
    let far = 5u64 << 30; // past 4 GiB
    let a = pattern(10 * BS, 5);
    fs.write(f, far, &a).unwrap();
    fs.write(f, 3 * BS as u64, &a).unwrap();
    let mut fs = remount(fs);
    let mut buf = vec![0u8; 12 * BS];
    assert_eq!(fs.read(f, far - 2 * BS as u64, &mut buf).unwrap(), 12 * BS);
    assert!(buf[..2 * BS].iter().all(|&b| b == 0));
    assert_eq!(&buf[2 * BS..], &a[..]);
    assert_eq!(fs.getattr(f).unwrap().blocks, 20 * 8);
    assert_eq!(extent_items(&mut fs), 2);
}

#[test]
fn damaged_block_inside_an_extent_is_named_and_the_rest_reads() {
    let mut fs = fresh(16);
    let root = fs.root();
    let data = pattern(64 * BS, 6);
    let f = mkfile(&mut fs, root, "f", &data);
    let mut img = fs.unmount().unwrap().into_bytes();
    let at = img.windows(64).position(|w| w == &data[20 * BS..20 * BS + 64]).unwrap();
    assert_eq!(at % BS, 0);
    img[at + 9] ^= 0x40;
    let mut fs = wfs::Wfs::mount(blockdev::RamDisk::from_bytes(img), clock()).unwrap();
    let mut buf = vec![0u8; 64 * BS];
    assert_eq!(fs.read(f, 0, &mut buf), Err(Error::Checksum { block: (at / BS) as u64 }));
    let mut one = vec![0u8; BS];
    assert_eq!(fs.read(f, 21 * BS as u64, &mut one).unwrap(), BS);
    assert_eq!(one, &data[21 * BS..22 * BS]);
    let s = fs.scrub().unwrap();
    assert_eq!(s.unrepairable, [(at / BS) as u64]);
}
