//! The image commands on real image files: make, fill, list, read back, remove, check; interop with
//! dosfstools and mtools where they are installed (a plain SKIP line otherwise; a failure under `CI=true`).

mod common;

use std::path::{Path, PathBuf};

use common::{fails, find_tool, ok, run_in, skip};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mkfs_fat(dir: &Path, name: &str, size: &str, fat_type: &str) -> PathBuf {
    let img = dir.join(name);
    ok(&["mkfs", "fat", s(&img), size, "--fat-type", fat_type]);
    img
}

/// put/get/ls/cat/mkdir/rm on one image, checked after every step that changes it.
fn round_trip(img: &Path, work: &Path) {
    let i = s(img);
    let data: Vec<u8> = (0..300_000u32).map(|x| (x * 7 % 251) as u8).collect();
    let host = work.join("data.bin");
    std::fs::write(&host, &data).unwrap();
    ok(&["mkdir", "-p", i, "/boot/watos/apps"]);
    ok(&["put", i, s(&host), "/boot/watos/apps/"]);
    ok(&["put", i, s(&host), "/A file with a long name.bin"]);
    let listing = ok(&["ls", i, "/boot/watos/apps"]);
    assert!(listing.contains("300000 data.bin"), "{listing}");
    let root = ok(&["ls", i]);
    assert!(root.contains("A file with a long name.bin") && root.contains(" boot"), "{root}");
    let back = work.join("back.bin");
    ok(&["get", i, "/boot/watos/apps/data.bin", s(&back)]);
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // Replace with a smaller file, then remove things.
    std::fs::write(&host, b"small").unwrap();
    ok(&["put", i, s(&host), "/A file with a long name.bin"]);
    assert_eq!(ok(&["cat", i, "/A file with a long name.bin"]), "small");
    assert!(fails(&["rm", i, "/boot"], 1).contains("not empty"));
    assert!(fails(&["get", i, "/nope", s(&work.join("never"))], 1).contains("/nope: no such file"));
    assert!(!work.join("never").exists(), "a failed get leaves no host file");
    ok(&["rm", "-r", i, "/boot"]);
    assert!(!ok(&["ls", i]).contains("boot"));
    ok(&["check", i]);
}

fn fsck_fat_clean(img: &Path) {
    match find_tool("fsck.fat") {
        Some(fsck) => {
            let (clean, out) = run_in(Path::new("/"), &fsck, &["-n", s(img)]);
            assert!(clean, "fsck.fat -n {}:\n{out}", img.display());
        }
        None => skip("fsck.fat not installed"),
    }
}

#[test]
fn fat12_16_32_round_trip_and_fsck() {
    let dir = tempfile::tempdir().unwrap();
    for (t, size) in [("12", "4M"), ("16", "64M"), ("32", "256M")] {
        let img = mkfs_fat(dir.path(), &format!("fat{t}.img"), size, t);
        round_trip(&img, dir.path());
        let report = ok(&["check", s(&img)]);
        assert!(report.contains(&format!("Fat{t}")), "{report}");
        fsck_fat_clean(&img);
    }
}

#[test]
fn fat_type_that_does_not_fit_the_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("bad.img");
    let err = fails(&["mkfs", "fat", s(&img), "4M", "--fat-type", "32"], 1);
    assert!(err.contains("cannot format FAT"), "{err}");
    assert!(!img.exists(), "the half-made image is removed");
}

#[test]
fn wfs_commands_are_refused_on_fat() {
    let dir = tempfile::tempdir().unwrap();
    let img = mkfs_fat(dir.path(), "f.img", "4M", "12");
    assert!(fails(&["scrub", s(&img)], 1).contains("only WFS"));
    assert!(fails(&["snapshot", s(&img), "list"], 1).contains("only WFS"));
}

#[test]
fn fat_check_finds_a_cross_linked_chain() {
    let dir = tempfile::tempdir().unwrap();
    let img = mkfs_fat(dir.path(), "x.img", "64M", "16");
    let host = dir.path().join("h");
    std::fs::write(&host, vec![1u8; 10_000]).unwrap();
    ok(&["put", s(&img), s(&host), "/a"]);
    ok(&["put", s(&img), s(&host), "/b"]);
    // Point /b's first cluster at /a's: find both 8.3 entries in the root directory region.
    let mut bytes = std::fs::read(&img).unwrap();
    let bps = u16::from_le_bytes([bytes[11], bytes[12]]) as usize;
    let reserved = u16::from_le_bytes([bytes[14], bytes[15]]) as usize;
    let fats = bytes[16] as usize;
    let fat_sectors = u16::from_le_bytes([bytes[22], bytes[23]]) as usize;
    let root = (reserved + fats * fat_sectors) * bps;
    let entry = |name: &[u8; 11], bytes: &[u8]| (0..512).map(|k| root + 32 * k).find(|&o| &bytes[o..o + 11] == name);
    let a = entry(b"A          ", &bytes).expect("entry of /a");
    let b = entry(b"B          ", &bytes).expect("entry of /b");
    let first_a = [bytes[a + 26], bytes[a + 27]];
    bytes[b + 26..b + 28].copy_from_slice(&first_a);
    std::fs::write(&img, &bytes).unwrap();
    let out = common::tool(&["check", s(&img)]);
    assert_eq!(out.status.code(), Some(1), "check must report the damage");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cross-linked") || text.contains("lost"), "{text}");
}

#[test]
fn corrupt_fat_boot_sector_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = mkfs_fat(dir.path(), "c.img", "64M", "16");
    let mut bytes = std::fs::read(&img).unwrap();
    // Claims 2 FATs of zero sectors: plausible enough to be detected as FAT, wrong enough to refuse.
    bytes[22] = 0;
    bytes[23] = 0;
    std::fs::write(&img, &bytes).unwrap();
    let err = fails(&["ls", s(&img)], 1);
    assert!(err.contains("not a valid FAT image"), "{err}");
}

#[test]
fn mtools_reads_what_we_write_and_we_read_what_mtools_writes() {
    let (Some(mcopy), Some(mmd)) = (find_tool("mcopy"), find_tool("mmd")) else {
        skip("mtools not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = mkfs_fat(dir.path(), "m.img", "64M", "16");
    let host = dir.path().join("Long name from WATOS.txt");
    std::fs::write(&host, b"written by watos-image").unwrap();
    ok(&["put", s(&img), s(&host), "/"]);
    let out = dir.path().join("out.txt");
    let (copied, log) = run_in(dir.path(), &mcopy, &["-n", "-i", s(&img), "::/Long name from WATOS.txt", s(&out)]);
    assert!(copied, "mcopy out: {log}");
    assert_eq!(std::fs::read(&out).unwrap(), b"written by watos-image");

    let (made, log) = run_in(dir.path(), &mmd, &["-i", s(&img), "::/From mtools"]);
    assert!(made, "mmd: {log}");
    let src = dir.path().join("src.txt");
    std::fs::write(&src, b"written by mtools").unwrap();
    let (copied, log) = run_in(dir.path(), &mcopy, &["-i", s(&img), s(&src), "::/From mtools/Mixed Case Name.txt"]);
    assert!(copied, "mcopy in: {log}");
    assert_eq!(ok(&["cat", s(&img), "/From mtools/Mixed Case Name.txt"]), "written by mtools");
    fsck_fat_clean(&img);
}

#[test]
fn wfs_round_trip_check_scrub() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("w.img");
    ok(&["mkfs", "wfs", s(&img), "64M"]);
    round_trip(&img, dir.path());
    assert!(ok(&["check", s(&img)]).contains("0 problems"));
    assert!(ok(&["scrub", s(&img)]).contains("0 unrepairable"));
}

#[test]
fn wfs_snapshots_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("w.img");
    let i = s(&img);
    ok(&["mkfs", "wfs", i, "64M"]);
    ok(&["mkdir", i, "/etc"]);
    ok(&["snapshot", i, "create", "before"]);
    ok(&["snapshot", i, "create", "second"]);
    let list = ok(&["snapshot", i, "list"]);
    assert!(list.lines().count() == 2 && list.contains("before") && list.contains("second"), "{list}");
    assert!(fails(&["snapshot", i, "create", "before"], 1).contains("before"));
    ok(&["snapshot", i, "delete", "before"]);
    assert!(fails(&["snapshot", i, "delete", "before"], 1).contains("no such snapshot"));
    assert!(!ok(&["snapshot", i, "list"]).contains("before"));
    ok(&["check", i]);
}

#[test]
fn wfs_with_a_destroyed_first_superblock_still_opens_or_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("w.img");
    ok(&["mkfs", "wfs", s(&img), "64M"]);
    let host = dir.path().join("h");
    std::fs::write(&host, b"kept").unwrap();
    ok(&["put", s(&img), s(&host), "/kept"]);
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[..4096].fill(0);
    std::fs::write(&img, &bytes).unwrap();
    // Detected from the copy at the end of the device, and readable through it.
    assert_eq!(ok(&["cat", s(&img), "/kept"]), "kept");
    // Both copies gone: a clear error, exit 1.
    let mut bytes = std::fs::read(&img).unwrap();
    let len = bytes.len();
    bytes[..4096].fill(0);
    bytes[len - 4096..].fill(0);
    std::fs::write(&img, &bytes).unwrap();
    assert!(fails(&["ls", s(&img)], 1).contains("not a WATOS disk image"));
}

#[test]
fn wfs_corrupt_superblock_copy_is_reported_by_wfs() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("w.img");
    ok(&["mkfs", "wfs", s(&img), "1M"]);
    let mut bytes = std::fs::read(&img).unwrap();
    let len = bytes.len();
    // Keep the magic, break everything after it in both copies.
    for base in [0, len - 4096] {
        bytes[base + 8..base + 4096].fill(0x77);
    }
    std::fs::write(&img, &bytes).unwrap();
    let err = fails(&["ls", s(&img)], 1);
    assert!(err.contains("cannot mount WFS"), "{err}");
}
