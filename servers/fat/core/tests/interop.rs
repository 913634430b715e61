//! Interoperability with the reference tools: images made by `mkfs.fat` and filled by mtools must
//! read back byte-exact, and images this crate writes must pass `fsck.fat -n` (exit 0) and read
//! back byte-exact through mtools. A missing tool fails the test with the install command.

mod common;

use std::path::Path;

use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType, FormatOptions};
use protocol::fs::{FileSystem, SetAttr};

/// (mkfs.fat -F argument, image size in KiB)
const MKFS: [(&str, &str); 3] = [("12", "4096"), ("16", "20480"), ("32", "40960")];

fn load(img: &Path) -> FatFs<RamDisk> {
    FatFs::mount(RamDisk::from_bytes(std::fs::read(img).unwrap()), clock()).expect("mount")
}

fn store(fs: FatFs<RamDisk>, img: &Path) {
    std::fs::write(img, fs.unmount().unwrap().into_bytes()).unwrap();
}

/// The files every image gets: (path, contents).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for (i, n) in [0usize, 1, 511, 512, 513].into_iter().enumerate() {
        v.push((format!("/sizes/s{n}.bin"), data(n, i as u64 + 10)));
    }
    v.push(("/A very long file name with spaces.txt".into(), b"long name".to_vec()));
    v.push(("/deep/er/est/Über_Ünïcode_naam.txt".into(), b"hello world\n".to_vec()));
    v.push(("/deep/日本語のファイル名.dat".into(), data(3000, 7)));
    v.push(("/deep/er/MixedCase.Txt".into(), data(100, 8)));
    v.push(("/big.bin".into(), data(3 * 1024 * 1024 + 123, 9)));
    v
}

#[test]
fn mkfs_images_filled_by_mtools_read_back_exactly() {
    for (bits, kib) in MKFS {
        let dir = scratch(&format!("mkfs{bits}"));
        let img = dir.join("img");
        let i = img.to_str().unwrap();
        tool_ok("mkfs.fat", &["-F", bits, "-C", i, kib]);
        for d in ["::/sizes", "::/deep", "::/deep/er", "::/deep/er/est", "::/frag"] {
            tool_ok("mmd", &["-i", i, d]);
        }
        let files = corpus();
        for (path, bytes) in &files {
            mwrite(&img, path, bytes, &dir);
        }
        // Fragment: interleave small files, delete every other one, then write a big file
        // that must fill the holes.
        for k in 0..8 {
            mwrite(&img, &format!("/frag/pad{k}"), &data(3000, 100 + k), &dir);
        }
        for k in (0..8).step_by(2) {
            tool_ok("mdel", &["-i", i, &format!("::/frag/pad{k}")]);
        }
        let frag = data(200_000, 55);
        mwrite(&img, "/frag/fragmented.bin", &frag, &dir);
        fsck_clean(&img);

        let mut fs = load(&img);
        for (path, bytes) in files.iter().chain([("/frag/fragmented.bin".to_string(), frag.clone())].iter()) {
            let node = walk(&mut fs, path).unwrap_or_else(|e| panic!("FAT{bits} {path}: {e:?}"));
            assert!(read_all(&mut fs, node) == *bytes, "FAT{bits}: {path} differs");
        }
        // Random reads inside the fragmented file hit the right clusters.
        let node = walk(&mut fs, "/frag/fragmented.bin").unwrap();
        for off in [0usize, 2999, 3000, 4095, 70_001, 199_990] {
            let mut buf = [0u8; 10];
            let n = fs.read(node, off as u64, &mut buf).unwrap();
            assert_eq!(&buf[..n], &frag[off..off + n]);
        }
        let deep = walk(&mut fs, "/deep").unwrap();
        let names: Vec<_> = fs.readdir(deep, 0, 99).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["er", "日本語のファイル名.dat"]);
        let r = fs.check().unwrap();
        assert!(r.is_clean(), "FAT{bits}: {r}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Write the corpus, then delete, rename and truncate some of it; return what should remain.
fn populate(fs: &mut FatFs<RamDisk>) -> Vec<(String, Vec<u8>)> {
    let mut files = corpus();
    for (path, bytes) in &files {
        let mut at = fs.root();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for d in &parts[..parts.len() - 1] {
            at = match fs.lookup(at, d) {
                Ok(st) => st.ino,
                Err(_) => mkdir(fs, at, d),
            };
        }
        let f = file(fs, at, parts[parts.len() - 1]);
        // Write in odd-sized pieces to exercise partial sectors and appends.
        for (k, chunk) in bytes.chunks(100_003).enumerate() {
            fs.write(f, (k * 100_003) as u64, chunk).unwrap();
        }
    }
    let root = fs.root();
    let sizes = walk(fs, "/sizes").unwrap();
    let deep = walk(fs, "/deep").unwrap();
    fs.unlink(sizes, "s511.bin").unwrap();
    fs.rename(sizes, "s513.bin", deep, "moved across with a long name.bin").unwrap();
    fs.rename(root, "A very long file name with spaces.txt", root, "short.txt").unwrap();
    fs.rename(sizes, "s1.bin", sizes, "s512.bin").unwrap(); // replaces
    let big = walk(fs, "/big.bin").unwrap();
    fs.setattr(big, SetAttr { size: Some(1_000_000), ..Default::default() }).unwrap();
    let er = walk(fs, "/deep/er").unwrap();
    fs.rename(er, "est", root, "est moved").unwrap(); // directory across directories
    files.retain(|(p, _)| p != "/sizes/s511.bin");
    for (p, b) in files.iter_mut() {
        match p.as_str() {
            "/sizes/s513.bin" => *p = "/deep/moved across with a long name.bin".into(),
            "/A very long file name with spaces.txt" => *p = "/short.txt".into(),
            "/sizes/s1.bin" => *p = "/sizes/s512.bin".into(),
            "/big.bin" => b.truncate(1_000_000),
            "/deep/er/est/Über_Ünïcode_naam.txt" => *p = "/est moved/Über_Ünïcode_naam.txt".into(),
            _ => {}
        }
    }
    files.retain(|(p, b)| !(p == "/sizes/s512.bin" && b.len() == 512));
    files
}

#[test]
fn images_we_write_pass_fsck_and_read_back_with_mtools() {
    for (kind, kib) in [(FatType::Fat12, 4096u64), (FatType::Fat16, 20480), (FatType::Fat32, 40960)] {
        let dir = scratch(&format!("ours{kind:?}"));
        let img = dir.join("img");
        let opts = FormatOptions { fat_type: Some(kind), label: Some("WATOS".into()), ..Default::default() };
        let mut fs = FatFs::format(RamDisk::new(kib * 2), &opts, clock()).unwrap();
        let files = populate(&mut fs);
        let r = fs.check().unwrap();
        assert!(r.is_clean(), "{kind:?}: {r}");
        store(fs, &img);
        fsck_clean(&img);
        for (path, bytes) in &files {
            assert!(mread(&img, path, &dir) == *bytes, "{kind:?}: mtools reads {path} differently");
        }
        let listing = tool_ok("mdir", &["-/", "-i", img.to_str().unwrap(), "::/"]);
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("moved across with a long name.bin"), "{listing}");
        assert!(!listing.contains("s511"), "{listing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn we_modify_mkfs_images_and_fsck_agrees() {
    for (bits, kib) in MKFS {
        let dir = scratch(&format!("modify{bits}"));
        let img = dir.join("img");
        let i = img.to_str().unwrap();
        tool_ok("mkfs.fat", &["-F", bits, "-C", i, kib]);
        tool_ok("mmd", &["-i", i, "::/from mtools"]);
        mwrite(&img, "/from mtools/keep.txt", b"kept", &dir);
        let mut fs = load(&img);
        let files = populate(&mut fs);
        store(fs, &img);
        fsck_clean(&img);
        assert_eq!(mread(&img, "/from mtools/keep.txt", &dir), b"kept");
        for (path, bytes) in &files {
            assert!(mread(&img, path, &dir) == *bytes, "FAT{bits}: {path}");
        }
        // mtools can keep writing to the image after us.
        mwrite(&img, "/deep/after.txt", b"after", &dir);
        fsck_clean(&img);
        let mut fs = load(&img);
        let after = walk(&mut fs, "/deep/after.txt").unwrap();
        assert_eq!(read_all(&mut fs, after), b"after");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn large_logical_sectors_and_clusters_from_mkfs() {
    // (mkfs arguments, size in KiB): 2 KiB and 4 KiB logical sectors, 8 KiB clusters.
    let cases: [(&[&str], &str); 3] = [
        (&["-F", "16", "-S", "2048", "-s", "1"], "20480"),
        (&["-F", "32", "-S", "4096", "-s", "1"], "300000"),
        (&["-F", "12", "-s", "16"], "4096"),
    ];
    for (args, kib) in cases {
        let dir = scratch("sectors");
        let img = dir.join("img");
        let i = img.to_str().unwrap();
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["-C", i, kib]);
        tool_ok("mkfs.fat", &a);
        tool_ok("mmd", &["-i", i, "::/d"]);
        let theirs = data(70_000, 3);
        mwrite(&img, "/d/from mtools.bin", &theirs, &dir);
        // Straight on the (sparse) image file: the FAT32 case is 300 MB.
        let mut fs = FatFs::mount(blockdev::FileDisk::open(&img).unwrap(), clock()).unwrap();
        let f = walk(&mut fs, "/d/from mtools.bin").unwrap();
        assert!(read_all(&mut fs, f) == theirs, "{args:?}");
        let d = walk(&mut fs, "/d").unwrap();
        let g = file(&mut fs, d, "from us with a long name.bin");
        let ours = data(123_457, 4);
        fs.write(g, 0, &ours).unwrap();
        fs.unlink(d, "from mtools.bin").unwrap();
        drop(fs.unmount().unwrap());
        fsck_clean(&img);
        assert!(mread(&img, "/d/from us with a long name.bin", &dir) == ours, "{args:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn many_similar_long_names_pass_fsck_and_mtools() {
    let dir = scratch("aliases");
    let img = dir.join("img");
    let mut fs = FatFs::format(
        RamDisk::new(40 * 2048),
        &FormatOptions { fat_type: Some(FatType::Fat32), ..Default::default() },
        clock(),
    )
    .unwrap();
    let root = fs.root();
    let d = mkdir(&mut fs, root, "similar");
    for i in 0..150 {
        let f = file(&mut fs, d, &format!("Quarterly report {i:03}.document"));
        fs.write(f, 0, format!("{i}").as_bytes()).unwrap();
    }
    for i in (0..150).step_by(3) {
        fs.unlink(d, &format!("Quarterly report {i:03}.document")).unwrap();
    }
    for i in 0..20 {
        file(&mut fs, d, &format!("Quarterly report new {i}.document"));
    }
    store(fs, &img);
    fsck_clean(&img);
    assert_eq!(mread(&img, "/similar/Quarterly report 149.document", &dir), b"149");
    let listing = tool_ok("mdir", &["-b", "-i", img.to_str().unwrap(), "::/similar"]);
    assert_eq!(String::from_utf8_lossy(&listing.stdout).lines().filter(|l| l.contains("Quarterly")).count(), 120);
    let _ = std::fs::remove_dir_all(&dir);
}
