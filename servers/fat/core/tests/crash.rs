//! Power cuts at every write: the image left behind must mount, and hold at worst lost clusters
//! (or a chain longer than its file, which is the same thing for `fsck.fat`), never cross-linked or
//! truncated-under-its-size chains. States are rebuilt from the `FaultDisk` write log after each
//! write; a sample is also checked by `fsck.fat -n`, and a second test cuts the power for real
//! (writes fail with `Io`) to exercise the error paths.

mod common;

use blockdev::fault::{FaultDisk, Op};
use blockdev::{BlockDevice, RamDisk};
use common::*;
use fat::{FatFs, FatType, FormatOptions};
use protocol::fs::{FileSystem, FileType, NewNode, SetAttr};
use protocol::Result;

fn workload<D: BlockDevice>(fs: &mut FatFs<D>) -> Result<()> {
    let root = fs.root();
    let file = NewNode::new(FileType::File, 0o644);
    let dir = NewNode::new(FileType::Directory, 0o755);
    // A file whose second part links across a FAT sector boundary (two-phase FAT flush).
    let big = fs.create(root, "big.dat", &file)?.ino;
    fs.write(big, 0, &data(120_000, 50))?;
    // A file in the way, so the append lands in a FAT sector away from the link to it.
    let blocker = fs.create(root, "blocker", &file)?.ino;
    fs.write(blocker, 0, &data(200_000, 52))?;
    fs.sync()?;
    fs.write(big, 120_000, &data(100_000, 51))?;
    let docs = fs.create(root, "Documents", &dir)?.ino;
    let a = fs.create(docs, "first file with a long name.txt", &file)?.ino;
    fs.write(a, 0, &data(5000, 1))?;
    fs.sync()?;
    fs.write(a, 5000, &data(3000, 2))?;
    let b = fs.create(root, "B.BIN", &file)?.ino;
    fs.write(b, 0, &data(20_000, 3))?;
    fs.fsync(b)?;
    fs.rename(docs, "first file with a long name.txt", root, "B.BIN")?; // replaces B
    let sub = fs.create(docs, "sub", &dir)?.ino;
    for i in 0..24 {
        let f = fs.create(sub, &format!("entry number {i}"), &file)?.ino;
        fs.write(f, 0, &data(700, 10 + i))?;
    }
    fs.setattr(a, SetAttr { size: Some(100), ..Default::default() })?;
    fs.rename(docs, "sub", root, "sub moved")?;
    fs.unlink(sub, "entry number 3")?;
    fs.write(a, 100, &data(9000, 4))?;
    fs.create(docs, "empty", &dir)?;
    fs.rmdir(docs, "empty")?;
    fs.sync()
}

/// Problems a power cut may legitimately leave; everything else is a failure.
fn allowed(error: &str) -> bool {
    ["is longer than its size", "FSInfo free count", "differs from the first"].iter().any(|a| error.contains(a))
}

fn assert_survivable(image: &[u8], what: &str) -> fat::CheckReport {
    let mut fs = FatFs::mount(RamDisk::from_bytes(image.to_vec()), clock())
        .unwrap_or_else(|e| panic!("{what}: mount failed: {e:?}"));
    let r = fs.check().unwrap();
    assert_eq!(r.cross_linked, 0, "{what}: {r}");
    assert!(r.errors.iter().all(|e| allowed(e)), "{what}: {r}");
    r
}

fn fsck_sample(image: &[u8], what: &str) {
    let dir = scratch("crash");
    let img = dir.join("img");
    std::fs::write(&img, image).unwrap();
    let o = tool("fsck.fat", &["-n", img.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{what}: fsck.fat {}: {out} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.contains("share clusters") && !out.contains("free cluster"), "{what}: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Format, unmount, and return (base image, fault disk ready for the workload).
fn prepared(kind: FatType, sectors: u64) -> (Vec<u8>, FaultDisk<RamDisk>) {
    let opts = FormatOptions { fat_type: Some(kind), ..Default::default() };
    let fs = FatFs::format(RamDisk::new(sectors), &opts, clock()).unwrap();
    let base = fs.unmount().unwrap().into_bytes();
    (base.clone(), FaultDisk::new(RamDisk::from_bytes(base)))
}

fn cut_at_every_write(kind: FatType, sectors: u64, stride: usize) {
    let (base, disk) = prepared(kind, sectors);
    let mut fs = FatFs::mount(disk, clock()).unwrap();
    workload(&mut fs).unwrap();
    let disk = fs.unmount().unwrap();
    let log = disk.log().to_vec();
    let final_image = disk.into_inner().into_bytes();
    let mut image = base;
    let samples = log.len() / 6;
    let mut lossy = 0;
    for n in 0..=log.len() {
        if n > 0 {
            if let Op::Write { sector, data } = &log[n - 1] {
                let at = *sector as usize * 512;
                image[at..at + data.len()].copy_from_slice(data);
            }
        }
        if n % stride == 0 || n == log.len() {
            let r = assert_survivable(&image, &format!("{kind:?} after {n}/{} ops", log.len()));
            lossy += (r.lost_clusters > 0) as usize;
        }
        if samples > 0 && n % samples == samples / 2 {
            fsck_sample(&image, &format!("{kind:?} after {n} ops"));
        }
    }
    assert_eq!(image, final_image);
    // The cut points really land between allocation and the entry that claims it.
    assert!(lossy > 0 && log.len() > 100, "{kind:?}: {} ops, {lossy} states with lost clusters", log.len());
    eprintln!("{kind:?}: {} ops, {lossy} checked states had lost clusters", log.len());
    // The completed workload leaves a clean volume with the expected contents.
    fsck_clean_bytes(&image);
    let mut fs = FatFs::mount(RamDisk::from_bytes(image), clock()).unwrap();
    let a = walk(&mut fs, "/B.BIN").unwrap();
    let mut want = data(100, 1);
    want.extend(data(9000, 4));
    assert_eq!(read_all(&mut fs, a), want);
    let big = walk(&mut fs, "/big.dat").unwrap();
    let mut want = data(120_000, 50);
    want.extend(data(100_000, 51));
    assert!(read_all(&mut fs, big) == want);
    let e = walk(&mut fs, "/sub moved/entry number 23").unwrap();
    assert_eq!(read_all(&mut fs, e), data(700, 33));
}

fn fsck_clean_bytes(image: &[u8]) {
    let dir = scratch("crash-final");
    let img = dir.join("img");
    std::fs::write(&img, image).unwrap();
    fsck_clean(&img);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn power_cut_at_every_write_fat12() {
    cut_at_every_write(FatType::Fat12, 2048, 1);
}

#[test]
fn power_cut_at_every_write_fat16() {
    cut_at_every_write(FatType::Fat16, 4400, 1);
}

#[test]
fn power_cut_at_sampled_writes_fat32() {
    cut_at_every_write(FatType::Fat32, 68_000, 25);
}

/// The exhaustive FAT32 variant (slow in debug builds): `cargo test -p fat -- --ignored`.
#[test]
#[ignore]
fn power_cut_at_every_write_fat32() {
    cut_at_every_write(FatType::Fat32, 68_000, 1);
}

#[test]
fn failing_writes_return_errors_and_leave_survivable_images() {
    let (base, _) = prepared(FatType::Fat16, 4400);
    let mut cut = 1;
    loop {
        let mut disk = FaultDisk::new(RamDisk::from_bytes(base.clone()));
        disk.fail_after_writes(Some(cut));
        let mut fs = FatFs::mount(disk, clock()).unwrap();
        let outcome = workload(&mut fs);
        let image = fs.device().inner().as_bytes().to_vec();
        let _ = assert_survivable(&image, &format!("power cut after {cut} writes"));
        match outcome {
            Err(e) => assert!(matches!(e, protocol::Error::Io { .. }), "cut {cut}: {e:?}"),
            Ok(()) => break,
        }
        cut += 13;
    }
}
