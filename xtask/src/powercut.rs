//! The power-cut boot: unsynced writes on both mounts must be on the disk images after the storage
//! daemons' flush age, with no orderly shutdown.
//!
//! Design: `fstest-powercut` (initrd/test-apps/fstest, `powercut`) writes a file on each mount
//! without fsync or close, idles longer than the flush age, checks the daemons' counters and prints
//! its ready line; at that line the harness kills QEMU (the whole machine loses power: nothing is
//! unmounted, no cache is written back). The host then reads both files from the images
//! (`watos-image get`, mtools) byte-exact against the same generator, checks the WFS image with
//! `watos-image check`, and the FAT image with `fsck.fat` (`-a` first: the volume was never
//! unmounted, so its dirty bit is set, as after any power cut).

use crate::harness::Verdicts;
use crate::storage::{image_tool, make_images, mtools_get, storage_qemu};
use crate::watos::{build_storage, have_qemu, Options};
use libwatos::service::pattern;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The line fstest-powercut prints when the cut may come.
const READY: &str = "fstest: power cut: ready";
/// Time limit of the boot up to that line.
const TIMEOUT: Duration = Duration::from_secs(240);
/// Length and seeds of the two files (initrd/test-apps/fstest/src/powercut.rs).
const LEN: usize = 300_001;
const WFS_SEED: u64 = 0x5eed_2001;
const FAT_SEED: u64 = 0x5eed_2002;

/// Boots and kills QEMU as soon as a line contains `marker` (or at the timeout); returns the log.
fn boot_until(cmd: &mut Command, marker: &str) -> (Vec<String>, bool) {
    let Ok(mut child) = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn() else { return (Vec::new(), false) };
    let Some(stdout) = child.stdout.take() else { return (Vec::new(), false) };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut log = Vec::new();
    let mut seen = false;
    while !seen && start.elapsed() < TIMEOUT {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                println!("  | {line}");
                seen = line.contains(marker);
                log.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // The power cut.
    let _ = child.kill();
    let _ = child.wait();
    (log, seen)
}

/// The power-cut boot of `cargo xtask test`.
pub fn run_tests(opts: &Options, v: &mut Verdicts) {
    let Some(art) = build_storage(opts, "fstest-powercut") else {
        v.check(false, "the power-cut initrd builds");
        return;
    };
    let (Some(d), Some(tool)) = (make_images("powercut-"), image_tool()) else {
        v.check(false, "the power-cut images are made");
        return;
    };
    if !have_qemu() {
        v.check(false, "QEMU is installed");
        return;
    }
    println!("== storage boot: power cut (unsynced writes, then QEMU killed after the flush age)");
    let (log, seen) = boot_until(&mut storage_qemu(&art, opts, &d), READY);
    let mut checks = 0;
    for line in &log {
        if let Some((_, what)) = line.split_once("CHECK PASS ") {
            v.check(true, &format!("power cut: {what}"));
            checks += 1;
        } else if let Some((_, what)) = line.split_once("CHECK FAIL ") {
            v.check(false, &format!("power cut: {what}"));
            checks += 1;
        }
    }
    v.check(checks == 5, &format!("power cut: fstest-powercut printed {checks} CHECK lines of 5"));
    v.check(!log.iter().any(|l| l.contains("KERNEL PANIC") || l.contains(") reaped;")), "power cut: no task died");
    v.check(seen, "power cut: the boot reached the cut without an unmount or a sync");
    let wout = d.wfs.with_extension("powercut.bin");
    let _ = std::fs::remove_file(&wout);
    let get = Command::new(&tool).arg("get").arg(&d.wfs).arg("/powercut.bin").arg(&wout).status();
    v.check(
        get.is_ok_and(|s| s.success()) && std::fs::read(&wout).unwrap_or_default() == pattern(WFS_SEED, LEN),
        "host (power cut): watos-image reads the unsynced /powercut.bin from the WFS image byte-exact",
    );
    let check = Command::new(&tool).arg("check").arg(&d.wfs).output();
    v.check(
        check.is_ok_and(|o| o.status.success()),
        "host (power cut): watos-image check finds the WFS image consistent",
    );
    v.check(
        mtools_get(&d.fat, "/powercut.bin").is_some_and(|b| b == pattern(FAT_SEED, LEN)),
        "host (power cut): mtools reads the unsynced /fat/powercut.bin from the FAT image byte-exact",
    );
    let repair = Command::new("fsck.fat").arg("-a").arg(&d.fat).output();
    if let Ok(o) = &repair {
        print!("{}", String::from_utf8_lossy(&o.stdout));
    }
    let clean = Command::new("fsck.fat").arg("-n").arg(&d.fat).output();
    v.check(
        repair.is_ok() && clean.is_ok_and(|o| o.status.success()),
        "host (power cut): after fsck.fat -a (the dirty bit) the FAT image is clean (fsck.fat -n)",
    );
}
