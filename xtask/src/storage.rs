//! The storage system in QEMU: disk images, the two persistence boots, and the host-side checks.
//!
//! Design: the host tool `watos-image` (built from this workspace) makes the images, so the guest
//! mounts exactly what the host libraries format: disk 0 is WFS with a `/fat` mount-point directory,
//! disk 1 is FAT. QEMU attaches them as legacy virtio-blk PCI functions in that order, which is the
//! order blockcache-server numbers them in. `cargo xtask test` boots the storage initrd twice on the
//! same fresh images (the first boot writes, the second reads back what the first wrote), then checks
//! the images on the host: `fsck.fat -n` and mtools for FAT (byte-exact against the same generator
//! the guest used), `watos-image check` and `get` for WFS. Verdicts come from printed lines only.

use crate::harness::{wait_with_timeout, Verdicts};
use crate::watos::{build_storage, have_qemu, qemu_command, Artifacts, Options, QEMU_SUCCESS};
use crate::workspace_root;
use libwatos::service::pattern;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Time limit of one storage boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// Size and seed of each mount's `persist.bin` (initrd/apps/fstest has the same constants).
const PERSIST_LEN: usize = 150_001;
const FAT_SEED: u64 = 0x5eed_0002;
const WFS_SEED: u64 = 0x5eed_0001;

/// The two disk images.
pub struct Disks {
    pub wfs: PathBuf,
    pub fat: PathBuf,
}

/// Builds `watos-image` (host, debug) and returns its path.
fn image_tool() -> Option<PathBuf> {
    if !crate::cargo(&["build", "-q", "-p", "watos-image"]) {
        eprintln!("cannot build watos-image");
        return None;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    Some(target.join("debug/watos-image"))
}

fn run_tool(tool: &Path, args: &[&str]) -> bool {
    let ok = Command::new(tool).args(args).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("watos-image {} failed", args.join(" "));
    }
    ok
}

fn disks_in(dir: &Path, prefix: &str) -> Disks {
    Disks { wfs: dir.join(format!("{prefix}wfs.img")), fat: dir.join(format!("{prefix}fat.img")) }
}

/// Makes fresh images under target/watos (`prefix` keeps the test's apart from `cargo xtask qemu`'s).
pub fn make_images(prefix: &str) -> Option<Disks> {
    let tool = image_tool()?;
    let dir = workspace_root().join("target/watos");
    std::fs::create_dir_all(&dir).ok()?;
    let d = disks_in(&dir, prefix);
    let _ = std::fs::remove_file(&d.wfs);
    let _ = std::fs::remove_file(&d.fat);
    let (wfs, fat) = (d.wfs.to_str()?, d.fat.to_str()?);
    let ok = run_tool(&tool, &["mkfs", "wfs", wfs, "32M"])
        && run_tool(&tool, &["mkdir", wfs, "/fat"])
        && run_tool(&tool, &["mkfs", "fat", fat, "16M"]);
    ok.then(|| {
        println!("== disk images: {} (WFS, 32 MiB), {} (FAT, 16 MiB)", d.wfs.display(), d.fat.display());
        d
    })
}

/// `cargo xtask image`: fresh images for `cargo xtask qemu`.
pub fn image() -> bool {
    make_images("").is_some()
}

/// QEMU with the storage initrd and both disks attached as virtio-blk (legacy PCI).
fn storage_qemu(art: &Artifacts, opts: &Options, d: &Disks) -> Command {
    let mut cmd = qemu_command(art, opts);
    for (i, img) in [&d.wfs, &d.fat].into_iter().enumerate() {
        cmd.arg("-drive").arg(format!("file={},format=raw,if=none,id=d{i}", img.display()));
        cmd.args(["-device", &format!("virtio-blk-pci,drive=d{i},disable-modern=on")]);
    }
    cmd
}

/// `cargo xtask qemu`: the storage system on the images of `cargo xtask image` (made if missing).
pub fn run_interactive(opts: &Options) -> bool {
    let Some(art) = build_storage(opts) else { return false };
    let dir = workspace_root().join("target/watos");
    let existing = disks_in(&dir, "");
    let disks = if existing.wfs.exists() && existing.fat.exists() { Some(existing) } else { make_images("") };
    let Some(disks) = disks else { return false };
    if !have_qemu() {
        return false;
    }
    println!("== booting the WATOS storage system (disks {} and {})", disks.wfs.display(), disks.fat.display());
    storage_qemu(&art, opts, &disks).status().is_ok_and(|s| s.code() == Some(QEMU_SUCCESS))
}

/// One boot: prints the log and returns it with QEMU's exit status.
fn boot(art: &Artifacts, opts: &Options, d: &Disks, what: &str) -> (Vec<String>, Option<i32>) {
    println!("== storage boot: {what}");
    let mut cmd = storage_qemu(art, opts, d);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let (log, status) = cmd.spawn().ok().and_then(|c| wait_with_timeout(c, BOOT_TIMEOUT)).unwrap_or_default();
    let lines: Vec<String> = log.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    for l in &lines {
        println!("  | {l}");
    }
    (lines, status)
}

/// The verdicts every storage boot must earn; `second` selects the persistence expectation.
pub fn judge_boot(log: &[String], status: Option<i32>, second: bool, v: &mut Verdicts) {
    let has = |s: &str| log.iter().any(|l| l.contains(s));
    let boot = if second { "boot 2" } else { "boot 1" };
    for line in log {
        if let Some((_, what)) = line.split_once("CHECK PASS ") {
            v.check(true, &format!("{boot}: {what}"));
        } else if let Some((_, what)) = line.split_once("CHECK FAIL ") {
            v.check(false, &format!("{boot}: {what}"));
        }
    }
    v.check(!has("KERNEL PANIC") && !has("KERNEL FAULT"), &format!("{boot}: no kernel panic or fault"));
    // "WFS3SUPR", the superblock magic at the start of block 0.
    v.check(
        has("blockcache0: virtio-blk disk 0:") && has("sector 0 starts [57, 46, 53, 33, 53, 55, 50, 52"),
        &format!("{boot}: blockcache0 drives virtio-blk disk 0 and reads the WFS superblock magic"),
    );
    v.check(has("blockcache1: virtio-blk disk 1:"), &format!("{boot}: blockcache1 drives virtio-blk disk 1"));
    v.check(has("wfs-server: mounted WFS") && has("fat-server: mounted FAT"), &format!("{boot}: WFS and FAT mounted by their servers"));
    v.check(has("vfs-server: mounted /") && has("vfs-server: mounted /fat"), &format!("{boot}: the vfs server mounted / and /fat"));
    let persisted = if second { "fstest: boot with existing files: both verified" } else { "fstest: first boot: persistence files written" };
    v.check(has(persisted), &format!("{boot}: {persisted}"));
    v.check(
        log.iter().any(|l| l.starts_with("init: supervising [") && l.contains("\"wfs-server\"") && l.contains("\"blockcache1\"")),
        &format!("{boot}: init took its restart list from the manifest"),
    );
    v.check(
        has("(wfs-server) killed by the supervisor") && has("init: restarted wfs-server as task"),
        &format!("{boot}: wfs-server was killed mid-workload and init restarted it"),
    );
    let reaped: Vec<&String> = log.iter().filter(|l| l.contains(") reaped;")).collect();
    v.check(
        reaped.len() == 1 && reaped[0].contains("(wfs-server)"),
        &format!("{boot}: no task but the killed wfs-server died ({} reaped)", reaped.len()),
    );
    for task in ["fstest", "vfs-server", "wfs-server", "fat-server", "blockcache0", "blockcache1", "init"] {
        v.check(has(&format!("({task}) exited with code 0")), &format!("{boot}: {task} exited with code 0"));
    }
    v.check(has("[kernel] all tasks finished"), &format!("{boot}: the kernel saw every task finish"));
    v.check(status == Some(QEMU_SUCCESS), &format!("{boot}: QEMU exit status {status:?} is the kernel's success"));
}

/// The host's view of the images after the boots.
fn check_images(d: &Disks, v: &mut Verdicts) {
    let fsck = Command::new("fsck.fat").arg("-n").arg(&d.fat).output();
    v.check(fsck.as_ref().is_ok_and(|o| o.status.success()), "host: fsck.fat -n finds the FAT image clean");
    if let Ok(o) = &fsck {
        print!("{}", String::from_utf8_lossy(&o.stdout));
    }
    let out = d.fat.with_extension("persist.bin");
    let _ = std::fs::remove_file(&out);
    let mcopy = Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&d.fat).arg("::/persist.bin").arg(&out).status();
    let got = std::fs::read(&out).unwrap_or_default();
    v.check(
        mcopy.is_ok_and(|s| s.success()) && got == pattern(FAT_SEED, PERSIST_LEN),
        "host: mtools reads /fat/persist.bin from the FAT image byte-exact",
    );
    let Some(tool) = image_tool() else {
        v.check(false, "host: watos-image builds");
        return;
    };
    let check = Command::new(&tool).arg("check").arg(&d.wfs).output();
    if let Ok(o) = &check {
        print!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    }
    v.check(check.is_ok_and(|o| o.status.success()), "host: watos-image check finds the WFS image consistent");
    let wout = d.wfs.with_extension("persist.bin");
    let get = Command::new(&tool).arg("get").arg(&d.wfs).arg("/persist.bin").arg(&wout).status();
    v.check(
        get.is_ok_and(|s| s.success()) && std::fs::read(&wout).unwrap_or_default() == pattern(WFS_SEED, PERSIST_LEN),
        "host: watos-image reads /persist.bin from the WFS image byte-exact",
    );
}

/// The storage boots of `cargo xtask test`.
pub fn run_tests(opts: &Options, v: &mut Verdicts) {
    let Some(art) = build_storage(opts) else {
        v.check(false, "the storage initrd builds");
        return;
    };
    let Some(disks) = make_images("test-") else {
        v.check(false, "the disk images are made");
        return;
    };
    if !have_qemu() {
        v.check(false, "QEMU is installed");
        return;
    }
    let (log, status) = boot(&art, opts, &disks, "1 (fresh images: write)");
    judge_boot(&log, status, false, v);
    let (log, status) = boot(&art, opts, &disks, "2 (same images: read back)");
    judge_boot(&log, status, true, v);
    check_images(&disks, v);
}
