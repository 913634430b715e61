//! Shared helpers for the FAT integration tests: deterministic data, RAM-disk volumes, and the
//! external tools (dosfstools, mtools) the interop tests use as oracles.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use blockdev::RamDisk;
use fat::{FatFs, FatType, FormatOptions};
use protocol::fs::{FileSystem, NodeId};

/// Deterministic pseudo-random bytes, different per seed.
pub use test_support::pattern as data;
pub use test_support::{clock, mkdir, mkfile, read_all, walk};

pub fn format(kind: FatType, sectors: u64, spc: Option<u8>) -> FatFs<RamDisk> {
    let opts = FormatOptions { fat_type: Some(kind), sectors_per_cluster: spc, ..Default::default() };
    FatFs::format(RamDisk::new(sectors), &opts, clock()).expect("format")
}

/// An empty file `name` in `dir`.
pub fn file(fs: &mut impl FileSystem, dir: NodeId, name: &str) -> NodeId {
    mkfile(fs, dir, name, &[])
}

/// Run an external tool; a missing tool fails the test with the install command.
pub fn tool(name: &str, args: &[&str]) -> Output {
    // mtools converts names with the locale's charset; a UTF-8 locale keeps non-ASCII names exact.
    let cmd = Command::new(name).args(args).env("LC_ALL", "C.UTF-8").env("MTOOLS_SKIP_CHECK", "1").output();
    match cmd {
        Ok(o) => o,
        Err(e) => {
            panic!("cannot run `{name}` ({e}); install the FAT tools with `apt-get install -y mtools dosfstools`")
        }
    }
}

/// Run a tool and require success.
pub fn tool_ok(name: &str, args: &[&str]) -> Output {
    let o = tool(name, args);
    assert!(
        o.status.success(),
        "`{name} {}` failed ({}):\n{}{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `fsck.fat -n` must accept the image with exit status 0.
pub fn fsck_clean(img: &Path) {
    let o = tool("fsck.fat", &["-n", "-v", img.to_str().unwrap()]);
    assert!(
        o.status.code() == Some(0),
        "fsck.fat -n rejected {} ({}):\n{}{}",
        img.display(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A scratch directory unique to this call (tests run in parallel threads of one process).
pub fn scratch(test: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("watos-fat-{}-{test}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Read a file out of an image with mtools (`mcopy -n`), byte-exact.
pub fn mread(img: &Path, path: &str, scratch: &Path) -> Vec<u8> {
    let out = scratch.join("mread.out");
    let _ = std::fs::remove_file(&out);
    let src = format!("::{path}");
    tool_ok("mcopy", &["-n", "-i", img.to_str().unwrap(), &src, out.to_str().unwrap()]);
    std::fs::read(&out).unwrap()
}

/// Write a host file into an image with mtools.
pub fn mwrite(img: &Path, path: &str, bytes: &[u8], scratch: &Path) {
    let src = scratch.join("mwrite.in");
    std::fs::write(&src, bytes).unwrap();
    let dst = format!("::{path}");
    tool_ok("mcopy", &["-o", "-i", img.to_str().unwrap(), src.to_str().unwrap(), &dst]);
}
