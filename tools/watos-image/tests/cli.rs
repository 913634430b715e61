//! The command line as users meet it: usage errors, bad input, clear messages, exit statuses.

mod common;

use common::{fails, ok};

#[test]
fn no_arguments_prints_usage_and_exits_2() {
    let err = fails(&[], 2);
    assert!(err.contains("usage: watos-image"), "{err}");
}

#[test]
fn help_succeeds() {
    assert!(ok(&["help"]).contains("mkfs wfs|fat IMAGE SIZE"));
}

#[test]
fn unknown_command_is_a_usage_error() {
    let err = fails(&["frobnicate", "x.img"], 2);
    assert!(err.contains("unknown command `frobnicate`"), "{err}");
}

#[test]
fn wrong_argument_counts_and_options() {
    assert!(fails(&["cat", "only-image.img"], 2).contains("expected 2 arguments, got 1"));
    assert!(fails(&["ls", "a.img", "--bogus"], 2).contains("unknown option `--bogus`"));
    assert!(fails(&["mkfs", "ext4", "a.img", "1M"], 2).contains("unknown format `ext4`"));
    assert!(fails(&["mkfs", "fat", "a.img", "1M", "--fat-type", "13"], 2).contains("12, 16 or 32"));
    assert!(fails(&["mkfs", "wfs", "a.img", "1M", "--fat-type", "16"], 2).contains("for fat images"));
    assert!(fails(&["mkfs", "fat", "a.img", "1M", "--fat-type"], 2).contains("needs a value"));
    assert!(fails(&["snapshot", "a.img", "explode"], 2).contains("unknown snapshot action"));
    assert!(fails(&["snapshot", "a.img", "create"], 2).contains("needs a NAME"));
}

#[test]
fn missing_image_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nope.img");
    let err = fails(&["ls", img.to_str().unwrap()], 1);
    assert!(err.starts_with("watos-image: ") && err.contains("nope.img") && err.contains("No such file"), "{err}");
}

#[test]
fn garbage_image_is_not_a_watos_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("junk.img");
    std::fs::write(&img, vec![0xA5u8; 1 << 20]).unwrap();
    let path = img.to_str().unwrap();
    for cmd in [&["ls", path][..], &["check", path], &["scrub", path], &["cat", path, "/x"]] {
        let err = fails(cmd, 1);
        assert!(err.contains("not a WATOS disk image"), "{cmd:?}: {err}");
    }
    std::fs::write(&img, b"short").unwrap();
    assert!(fails(&["ls", path], 1).contains("too small"));
}

#[test]
fn bad_sizes_are_rejected_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    let path = img.to_str().unwrap();
    assert!(fails(&["mkfs", "wfs", path, "12Q"], 1).contains("unknown unit"));
    assert!(fails(&["mkfs", "fat", path, "1K"], 1).contains("too small"));
    assert!(!img.exists(), "no image file is left behind by a rejected mkfs");
}

#[test]
fn put_of_missing_host_file_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let err = fails(&["put", img.to_str().unwrap(), "/definitely/not/here", "/x"], 1);
    assert!(err.contains("/definitely/not/here") && err.contains("No such file"), "{err}");
}

#[test]
fn mount_needs_a_directory() {
    let err = fails(&["mount", "--memfs", "/definitely/not/a/dir"], 1);
    assert!(err.contains("mount point is not a directory"), "{err}");
}
