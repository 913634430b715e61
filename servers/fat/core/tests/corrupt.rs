//! Corrupt images must give clear errors, never panics: hand-made corruptions with known
//! outcomes, plus proptest-driven random byte damage to the metadata of a populated image.

mod common;

use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType};
use proptest::prelude::*;
use protocol::fs::{FileSystem, FileType, NewNode, NodeId};
use protocol::Error;

/// A small populated image: (bytes, first-FAT byte offset, data offset, cluster size).
fn image(kind: FatType, sectors: u64) -> (Vec<u8>, u64, u64, u32) {
    let mut fs = format(kind, sectors, None);
    let root = fs.root();
    let d = mkdir(&mut fs, root, "directory");
    let sub = mkdir(&mut fs, d, "sub");
    for (i, n) in [0usize, 10, 600, 5000].into_iter().enumerate() {
        let f = file(&mut fs, if i % 2 == 0 { d } else { sub }, &format!("File {i} with long name"));
        fs.write(f, 0, &data(n, i as u64)).unwrap();
    }
    let f = file(&mut fs, root, "ROOT.TXT");
    fs.write(f, 0, &data(3000, 99)).unwrap();
    let g = fs.geometry().clone();
    (fs.unmount().unwrap().into_bytes(), g.fat_offset, g.data_offset, g.cluster_size)
}

/// Touch everything reachable, bounded, and report the first error (if any).
fn exercise(bytes: Vec<u8>) -> Result<(), Error> {
    let mut fs = FatFs::mount(RamDisk::from_bytes(bytes), clock())?;
    let mut first_err = None;
    let mut todo: Vec<(NodeId, usize)> = vec![(fs.root(), 0)];
    let mut seen = 0;
    while let Some((dir, depth)) = todo.pop() {
        let entries = match fs.readdir(dir, 0, 100) {
            Ok(e) => e,
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        for e in entries {
            seen += 1;
            if seen > 200 {
                break;
            }
            if let Err(err) = fs.lookup(dir, &e.name) {
                first_err.get_or_insert(err);
            }
            if e.kind == FileType::Directory {
                if depth < 6 {
                    todo.push((e.ino, depth + 1));
                }
            } else {
                let mut buf = vec![0u8; 8192];
                if let Err(err) = fs.read(e.ino, 0, &mut buf) {
                    first_err.get_or_insert(err);
                }
            }
        }
    }
    let _ = fs.check()?;
    // Writing to a damaged volume must fail cleanly too.
    let root = fs.root();
    if let Ok(st) = fs.create(root, "new file.bin", &NewNode::new(FileType::File, 0o644)) {
        let _ = fs.write(st.ino, 0, &data(3000, 5));
    }
    let _ = fs.rename(root, "ROOT.TXT", root, "renamed");
    let _ = fs.unlink(root, "renamed");
    let _ = fs.unmount();
    first_err.map_or(Ok(()), Err)
}

fn put16(b: &mut [u8], off: u64, v: u16) {
    b[off as usize..off as usize + 2].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn boot_sector_damage_is_refused_at_mount() {
    let (img, ..) = image(FatType::Fat16, 20 * 2048);
    let mount = |b: Vec<u8>| FatFs::mount(RamDisk::from_bytes(b), clock()).map(|_| ()).unwrap_err();
    let mut b = img.clone();
    b[510] = 0;
    assert_eq!(mount(b), Error::Corrupt { block: 0 });
    let mut b = img.clone();
    put16(&mut b, 11, 3); // bytes per sector
    assert_eq!(mount(b), Error::Corrupt { block: 0 });
    let mut b = img.clone();
    b[13] = 3; // sectors per cluster not a power of two
    assert_eq!(mount(b), Error::Corrupt { block: 0 });
    let mut b = img.clone();
    b[16] = 0; // no FATs
    assert_eq!(mount(b), Error::Corrupt { block: 0 });
    // An image cut short: the volume claims more sectors than the device has.
    let short = img[..img.len() / 2].to_vec();
    assert_eq!(mount(short), Error::Corrupt { block: 0 });
}

#[test]
fn broken_chains_give_corrupt_errors() {
    let (img, fat_off, ..) = image(FatType::Fat16, 20 * 2048);
    let mut fs = FatFs::mount(RamDisk::from_bytes(img.clone()), clock()).unwrap();
    let node = walk(&mut fs, "/ROOT.TXT").unwrap();
    let mut first = None;
    // Find the file's first cluster by scanning for it in the root region.
    let g = fs.geometry().clone();
    for s in img[g.root_offset as usize..(g.root_offset + g.root_bytes) as usize].chunks(32) {
        if &s[..11] == b"ROOT    TXT" {
            first = Some(u16::from_le_bytes([s[26], s[27]]));
        }
    }
    let c = first.unwrap() as u64;
    let mut buf = vec![0u8; 3000];
    assert_eq!(fs.read(node, 0, &mut buf).unwrap(), 3000);
    for (what, value) in [("free link", 0u16), ("self loop", c as u16), ("out of range", 0xFFF0)] {
        let mut b = img.clone();
        put16(&mut b, fat_off + 2 * c, value);
        let mut fs = FatFs::mount(RamDisk::from_bytes(b), clock()).unwrap();
        let node = walk(&mut fs, "/ROOT.TXT").unwrap();
        let err = fs.read(node, 0, &mut buf).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err:?}");
        let report = fs.check().unwrap();
        assert!(!report.is_clean(), "{what}: checker must notice\n{report}");
    }
}

#[test]
fn cross_links_are_detected_by_check() {
    let (mut img, _, _, _) = image(FatType::Fat12, 4 * 2048);
    let mut fs = FatFs::mount(RamDisk::from_bytes(img.clone()), clock()).unwrap();
    let g = fs.geometry().clone();
    assert!(fs.check().unwrap().is_clean());
    drop(fs);
    // Point a second root entry at the first file's chain.
    let root = g.root_offset as usize;
    let entries: Vec<usize> = (0..16)
        .map(|i| root + i * 32)
        .filter(|&o| img[o] != 0 && img[o + 11] & 0x10 != 0 || &img[o..o + 11] == b"ROOT    TXT")
        .collect();
    let (dir_ent, file_ent) = (entries[0], entries[1]);
    let dir_cluster = [img[dir_ent + 26], img[dir_ent + 27]];
    img[file_ent + 26..file_ent + 28].copy_from_slice(&dir_cluster);
    let mut fs = FatFs::mount(RamDisk::from_bytes(img), clock()).unwrap();
    let r = fs.check().unwrap();
    assert!(r.cross_linked > 0, "{r}");
    assert!(r.lost_clusters > 0, "the orphaned chain is lost: {r}");
}

#[test]
fn exercise_accepts_intact_images() {
    for (kind, sectors) in [(FatType::Fat12, 4 * 2048), (FatType::Fat32, 40 * 2048)] {
        let (img, ..) = image(kind, sectors);
        exercise(img).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random damage to the boot sector, the FATs, the root and the first directory clusters.
    #[test]
    fn random_metadata_damage_never_panics(
        kind in prop_oneof![Just(FatType::Fat12), Just(FatType::Fat16), Just(FatType::Fat32)],
        hits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..24),
    ) {
        let sectors = match kind { FatType::Fat12 => 4 * 2048, FatType::Fat16 => 20 * 2048, FatType::Fat32 => 40 * 2048 };
        let (mut img, _, data_off, cs) = image(kind, sectors);
        let span = (data_off + 8 * cs as u64) as f64;
        for (at, v) in hits {
            img[(at * span) as usize] = v;
        }
        let _ = exercise(img);
    }
}

#[test]
fn device_read_errors_are_returned_not_panicked() {
    use blockdev::fault::FaultDisk;
    let (img, _, data_off, _) = image(FatType::Fat16, 20 * 2048);
    let mut disk = FaultDisk::new(RamDisk::from_bytes(img));
    // Every data cluster fails: directories and files are unreadable, the FAT is fine.
    disk.fail_reads(data_off / 512..u64::MAX);
    let mut fs = FatFs::mount(disk, clock()).unwrap();
    let root = fs.root();
    let dir = fs.lookup(root, "directory").unwrap().ino; // the FAT16 root is outside the data area
    let err = fs.lookup(dir, "sub").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let f = fs.lookup(root, "ROOT.TXT").unwrap().ino;
    let mut buf = [0u8; 100];
    assert!(matches!(fs.read(f, 0, &mut buf), Err(Error::Io { .. })));
    assert!(fs.check().is_err());
}
