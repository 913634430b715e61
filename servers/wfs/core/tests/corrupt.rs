//! Corruption: flipped bits in data and metadata, damaged superblocks, scrub repair from ditto
//! copies, and fuzz-style garbage and truncated images (errors, never panics or hangs).

mod common;

use blockdev::RamDisk;
use common::*;
use proptest::prelude::*;
use protocol::fs::FileSystem;
use protocol::Error;
use wfs::Wfs;

const BS: usize = 4096;

fn image_with_files() -> Vec<u8> {
    let mut fs = fresh(4);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "d");
    for i in 0..200 {
        mkfile(&mut fs, d, &format!("file-with-a-longish-name-{i}"), &pattern(i * 31, i as u64));
    }
    mkfile(&mut fs, root, "data", &pattern(64 * 1024, 77));
    fs.unmount().unwrap().into_bytes()
}

/// Block numbers whose content starts with the node magic; the first copies sit in the low half.
fn node_blocks(img: &[u8]) -> Vec<usize> {
    (1..img.len() / BS - 1).filter(|&b| &img[b * BS..b * BS + 4] == b"WFSN").collect()
}

fn mount(img: Vec<u8>) -> wfs::Wfs<RamDisk> {
    Wfs::mount(RamDisk::from_bytes(img), clock()).unwrap()
}

#[test]
fn flipped_data_bit_is_a_checksum_error_naming_the_block() {
    let mut img = image_with_files();
    let want = pattern(64 * 1024, 77);
    let at = img.windows(64).position(|w| w == &want[4096..4160]).unwrap();
    assert_eq!(at % BS, 0);
    img[at + 5] ^= 0x10;
    let mut fs = mount(img);
    let ino = fs.lookup(fs.root(), "data").unwrap().ino;
    let mut buf = vec![0u8; 64 * 1024];
    assert_eq!(fs.read(ino, 0, &mut buf), Err(Error::Checksum { block: (at / BS) as u64 }));
    // Other blocks of the file still read.
    assert_eq!(fs.read(ino, 8192, &mut buf[..4096]).unwrap(), 4096);
    assert_eq!(&buf[..4096], &want[8192..12288]);
    let r = fs.scrub().unwrap();
    assert_eq!(r.unrepairable, vec![(at / BS) as u64], "{r}");
}

#[test]
fn both_checksums_catch_flipped_data_and_node_bits_and_survive_remount() {
    for checksum in [wfs::Checksum::Crc32, wfs::Checksum::Xxh64] {
        let opts = wfs::FormatOptions { checksum, ..Default::default() };
        let mut fs = Wfs::format(RamDisk::new(4 * 2048), &opts, clock()).unwrap();
        let root = fs.root();
        let d = mkdir(&mut fs, root, "d");
        for i in 0..50 {
            mkfile(&mut fs, d, &format!("f{i}"), &pattern(i * 97, i as u64));
        }
        let want = pattern(64 * 1024, 5);
        mkfile(&mut fs, root, "data", &want);
        let img = fs.unmount().unwrap().into_bytes();
        // Undamaged: the superblock names the algorithm, fsck is clean, every byte reads back.
        let mut fs = mount(img.clone());
        assert_eq!(fs.checksum(), checksum);
        assert!(fs.fsck(false).unwrap().is_clean());
        let ino = fs.lookup(fs.root(), "data").unwrap().ino;
        let mut buf = vec![0u8; want.len()];
        assert_eq!(fs.read(ino, 0, &mut buf).unwrap(), want.len());
        assert_eq!(buf, want, "{checksum:?}");
        // A flipped data bit: a checksum error naming the block.
        let mut bad = img.clone();
        let at = bad.windows(64).position(|w| w == &want[8192..8256]).unwrap();
        bad[at + 100] ^= 0x01;
        let mut fs = mount(bad);
        let ino = fs.lookup(fs.root(), "data").unwrap().ino;
        assert_eq!(fs.read(ino, 8192, &mut buf[..4096]), Err(Error::Checksum { block: (at / BS) as u64 }));
        // A flipped bit in every first copy of the tree nodes: the ditto copies serve, and scrub
        // repairs what it finds.
        let mut bad = img;
        let nodes = node_blocks(&bad);
        let half = bad.len() / BS / 2;
        for &b in nodes.iter().filter(|&&b| b < half) {
            bad[b * BS + 200] ^= 0x02;
        }
        let mut fs = mount(bad);
        let d = fs.lookup(fs.root(), "d").unwrap().ino;
        assert_eq!(fs.readdir(d, 0, 1000).unwrap().len(), 50, "{checksum:?}");
        assert!(fs.scrub().unwrap().node_copies_repaired > 0, "{checksum:?}");
    }
}

#[test]
fn data_damaged_after_it_was_verified_is_caught_by_scrub_and_by_the_next_read_from_the_device() {
    let img = image_with_files();
    let want = pattern(64 * 1024, 77);
    let at = img.windows(64).position(|w| w == &want[4096..4160]).unwrap();
    let mut fs = mount(img);
    let ino = fs.lookup(fs.root(), "data").unwrap().ino;
    let mut buf = vec![0u8; 64 * 1024];
    assert_eq!(fs.read(ino, 0, &mut buf).unwrap(), buf.len());
    assert_eq!(buf, want);
    // The block rots on the device after it was read and verified: reads served from the cache of
    // verified data still hold the verified bytes (as a page cache would), scrub reads the device and
    // names the block, and once the cache is dropped the read reaches the device and fails.
    fs.device_mut().as_bytes_mut()[at + 5] ^= 0x10;
    assert_eq!(fs.read(ino, 0, &mut buf).unwrap(), buf.len());
    assert_eq!(buf, want);
    let r = fs.scrub().unwrap();
    assert_eq!(r.unrepairable, vec![(at / BS) as u64], "{r}");
    fs.drop_caches();
    assert_eq!(fs.read(ino, 0, &mut buf), Err(Error::Checksum { block: (at / BS) as u64 }));
    assert_eq!(fs.read(ino, 4096, &mut buf[..4096]), Err(Error::Checksum { block: (at / BS) as u64 }));
}

#[test]
fn rewritten_data_is_read_back_new_not_from_the_verified_cache() {
    let mut fs = mount(image_with_files());
    let ino = fs.lookup(fs.root(), "data").unwrap().ino;
    let mut buf = vec![0u8; 64 * 1024];
    fs.read(ino, 0, &mut buf).unwrap();
    let new = pattern(64 * 1024, 5);
    fs.write(ino, 0, &new[..8192]).unwrap();
    fs.read(ino, 0, &mut buf).unwrap();
    assert_eq!(&buf[..8192], &new[..8192]);
    assert_eq!(&buf[8192..], &pattern(64 * 1024, 77)[8192..]);
}

#[test]
fn scrub_repairs_every_damaged_metadata_copy() {
    let mut img = image_with_files();
    let nodes = node_blocks(&img);
    let half = img.len() / BS / 2;
    let low: Vec<usize> = nodes.iter().copied().filter(|&b| b < half).collect();
    assert!(low.len() >= 3, "expected several tree nodes, got {nodes:?}");
    for &b in &low {
        img[b * BS + 200] ^= 0xff;
    }
    let mut fs = mount(img);
    // Reads fall back to the ditto copies.
    let root = fs.root();
    let d = fs.lookup(root, "d").unwrap().ino;
    assert_eq!(fs.readdir(d, 0, 1000).unwrap().len(), 200);
    let r = fs.scrub().unwrap();
    // Every live node had its first copy (low half) damaged; `low` may also hold stale freed nodes.
    assert_eq!(r.node_copies_repaired * 2, r.node_copies_checked, "{r}");
    assert!(r.node_copies_repaired + 4 >= low.len() as u64, "{r}");
    assert!(r.is_clean(), "{r}");
    assert_eq!(fs.scrub().unwrap().node_copies_repaired, 0);
    let img = fs.unmount().unwrap().into_bytes();
    // The repaired first copies are good again: damaging every second copy now is harmless.
    let mut img2 = img.clone();
    for b in node_blocks(&img).into_iter().filter(|&b| b >= half) {
        img2[b * BS + 300] ^= 0xff;
    }
    let mut fs = mount(img2);
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn both_copies_damaged_is_an_error_not_data() {
    let mut img = image_with_files();
    for b in node_blocks(&img) {
        img[b * BS + 100] ^= 1;
    }
    match Wfs::mount(RamDisk::from_bytes(img), clock()) {
        Err(Error::Checksum { .. }) => {}
        Err(e) => panic!("expected a checksum error, got {e:?}"),
        Ok(_) => panic!("mounted with every tree node damaged"),
    }
}

#[test]
fn damaged_superblock_falls_back_and_scrub_rewrites_it() {
    let mut img = image_with_files();
    img[40] ^= 1;
    let mut fs = mount(img);
    assert_eq!(fs.readdir(fs.root(), 0, 10).unwrap().len(), 2);
    let r = fs.scrub().unwrap();
    assert_eq!(r.superblocks_repaired, 1, "{r}");
    let mut img = fs.unmount().unwrap().into_bytes();
    let last = img.len() - BS;
    img[last + 40] ^= 1;
    let fs = mount(img.clone());
    drop(fs);
    img[40] ^= 1;
    assert!(Wfs::mount(RamDisk::from_bytes(img), clock()).is_err());
}

#[test]
fn truncated_images_are_refused() {
    let img = image_with_files();
    for len in [0, 512, BS, 8 * BS, img.len() / 2, img.len() - BS, img.len() - 512] {
        let r = Wfs::mount(RamDisk::from_bytes(img[..len].to_vec()), clock());
        assert!(r.is_err(), "mounted an image cut to {len} bytes");
    }
}

/// Mount and exercise a possibly corrupt image; anything but a panic or hang is fine.
fn exercise(img: Vec<u8>) {
    let Ok(mut fs) = Wfs::mount(RamDisk::from_bytes(img), clock()) else { return };
    let root = fs.root();
    if let Ok(list) = fs.readdir(root, 0, 1000) {
        for e in list {
            let mut buf = vec![0u8; 70_000];
            let _ = fs.read(e.ino, 0, &mut buf);
            let _ = fs.readdir(e.ino, 0, 1000);
        }
    }
    let _ = fs.fsck(false);
    let _ = fs.scrub();
    let _ = fs.create(root, "new", &protocol::fs::NewNode::new(protocol::fs::FileType::File, 0o644));
    let _ = fs.unmount();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64 * 1024)) {
        exercise(bytes);
    }

    #[test]
    fn flipped_bytes_in_a_real_image_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..40)) {
        let mut img = image_with_files();
        for (i, x) in flips {
            let at = i.index(img.len());
            img[at] ^= x | 1;
        }
        exercise(img);
    }
}
