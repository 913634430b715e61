//! The storage system in QEMU: disk images, the two persistence boots, and the host-side checks.
//!
//! Design: the host tool `watos-image` (built from this workspace) makes the images, so the guest
//! mounts exactly what the host libraries format: disk 0 is WFS with a `/fat` mount-point directory,
//! disk 1 is FAT. QEMU attaches them as legacy virtio-blk PCI functions in that order, which is the
//! order blockcache-server numbers them in. `cargo xtask test` boots the storage initrd twice on the
//! same fresh images (the first boot writes, the second reads back what the first wrote), then checks
//! the images on the host: `fsck.fat -n` and mtools for FAT (byte-exact against the same generator
//! the guest used), `watos-image check` and `get` for WFS. Verdicts come from printed lines only.
//! The stress boot (concurrent clients) is in `stress.rs`.

use crate::harness::{check_of, kernel_said, position, wait_with_timeout, Verdicts};
use crate::watos::{build_storage, have_qemu, qemu_command, Artifacts, Options, QEMU_SUCCESS};
use crate::workspace_root;
use libwatos::service::pattern;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How many times fstest-kill has init kill fat-server in a row after the victims (fstest's
/// `REPEATED_KILLS`).
const REPEATED_KILLS: usize = 5;
/// Time limit of one storage boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// Size and seed of each mount's `persist.bin` (initrd/test-apps/fstest has the same constants).
const PERSIST_LEN: usize = 150_001;
const FAT_SEED: u64 = 0x5eed_0002;
const WFS_SEED: u64 = 0x5eed_0001;

/// The two disk images.
pub struct Disks {
    pub wfs: PathBuf,
    pub fat: PathBuf,
}

/// Builds `watos-image` (host, debug) and returns its path.
pub(crate) fn image_tool() -> Option<PathBuf> {
    if !crate::cargo(&["build", "-q", "-p", "watos-image"]) {
        eprintln!("cannot build watos-image");
        return None;
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    Some(target.join("debug/watos-image"))
}

pub(crate) fn run_tool(tool: &Path, args: &[&str]) -> bool {
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
pub(crate) fn storage_qemu(art: &Artifacts, opts: &Options, d: &Disks) -> Command {
    let mut cmd = qemu_command(art, opts);
    for (i, img) in [&d.wfs, &d.fat].into_iter().enumerate() {
        cmd.arg("-drive").arg(format!("file={},format=raw,if=none,id=d{i}", img.display()));
        // At a fixed slot: the manifest assigns each block cache its disk's function by address.
        let slot = crate::watos::FIRST_DISK_SLOT as usize + i;
        cmd.args(["-device", &format!("virtio-blk-pci,drive=d{i},disable-modern=on,addr={slot:#x}")]);
    }
    cmd
}

/// `cargo xtask qemu`: the storage system on the images of `cargo xtask image` (made if missing),
/// booted into the interactive shell (`wsh`) on the serial console. The console is QEMU's stdio
/// multiplexed with its monitor, so Ctrl-A X quits QEMU and Ctrl-C reaches the shell (it abandons
/// the line) instead of killing QEMU; `exit` in the shell shuts the system down.
pub fn run_interactive(opts: &Options) -> bool {
    let Some(art) = build_storage(opts, "wsh") else { return false };
    let dir = workspace_root().join("target/watos");
    let existing = disks_in(&dir, "");
    let disks = if existing.wfs.exists() && existing.fat.exists() { Some(existing) } else { make_images("") };
    let Some(disks) = disks else { return false };
    if !have_qemu() {
        return false;
    }
    println!(
        "== booting the WATOS storage system into wsh (disks {} and {})",
        disks.wfs.display(),
        disks.fat.display()
    );
    println!("== type `help` for the commands; `exit` shuts WATOS down, Ctrl-A X quits QEMU");
    let mut cmd = storage_qemu(&art, opts, &disks);
    // Later -serial/-chardev options do not replace the first `-serial stdio`, so the console is
    // rebuilt from the arguments with that pair swapped for a multiplexed stdio.
    let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_os_string()).collect();
    let mut mux = Command::new(cmd.get_program());
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-serial" && args.get(i + 1).is_some_and(|a| a == "stdio") {
            mux.args([
                "-chardev",
                "stdio,id=console,mux=on,signal=off",
                "-serial",
                "chardev:console",
                "-mon",
                "chardev=console",
            ]);
            i += 2;
        } else {
            mux.arg(&args[i]);
            i += 1;
        }
    }
    cmd = mux;
    if opts.gdb {
        // QEMU's -s is its gdb stub on localhost:1234, -S keeps the CPU halted until gdb continues.
        cmd.args(["-s", "-S"]);
        println!("== QEMU is halted with its gdb stub on localhost:1234; in another terminal:");
        println!("    {}", gdb_line(&art.kernel));
    }
    cmd.status().is_ok_and(|s| s.code() == Some(QEMU_SUCCESS))
}

/// The gdb command line that loads the kernel's symbols and attaches to QEMU's stub.
pub(crate) fn gdb_line(kernel: &Path) -> String {
    format!("gdb -ex 'target remote localhost:1234' {}", kernel.display())
}

/// One boot: prints the log and returns it with QEMU's exit status.
pub(crate) fn boot(art: &Artifacts, opts: &Options, d: &Disks, what: &str) -> (Vec<String>, Option<i32>) {
    boot_with_input(art, opts, d, what, None)
}

/// One boot with `input` (if any) fed to the serial console through QEMU's stdin: QEMU passes it
/// on only as fast as the guest's UART takes it, so it can all be written at once.
pub(crate) fn boot_with_input(
    art: &Artifacts,
    opts: &Options,
    d: &Disks,
    what: &str,
    input: Option<&[u8]>,
) -> (Vec<String>, Option<i32>) {
    boot_within(art, opts, d, what, input, BOOT_TIMEOUT)
}

/// One boot with `input` (see [`boot_with_input`]) and its own time limit (the stress soak's).
pub(crate) fn boot_within(
    art: &Artifacts,
    opts: &Options,
    d: &Disks,
    what: &str,
    input: Option<&[u8]>,
    limit: Duration,
) -> (Vec<String>, Option<i32>) {
    println!("== storage boot: {what}");
    let mut cmd = storage_qemu(art, opts, d);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped());
    let child = cmd.spawn().ok().map(|mut c| {
        if let (Some(mut stdin), Some(bytes)) = (c.stdin.take(), input) {
            // A writer thread, so a guest that stops reading cannot stall the harness's timeout.
            let bytes = bytes.to_vec();
            std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
        }
        c
    });
    let (log, status) = child.and_then(|c| wait_with_timeout(c, limit)).unwrap_or_default();
    let lines: Vec<String> = log.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    for l in &lines {
        println!("  | {l}");
    }
    (lines, status)
}

/// Which storage boot a log comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// Fresh images: fstest writes the persistence files.
    First,
    /// The same images again: fstest verifies them.
    Second,
    /// Copies of the images, `fstest-kill`: each server killed mid-write and restarted.
    Kill,
    /// Fresh images with `/demo.wsh`: the shell (`wsh-script`) runs it.
    Wsh,
    /// The same images: the interactive shell (`wsh`) with typed input.
    Shell,
}

/// The servers `fstest-kill` has init kill, in order (initrd/test-apps/fstest `VICTIMS`).
const VICTIMS: [&str; 5] = ["wfs-server", "fat-server", "blockcache1", "blockcache0", "vfs-server"];
/// Seed of victim `i`'s committed file is `KILL_SEED + 16 * i` (initrd/test-apps/fstest).
const KILL_SEED: u64 = 0x5eed_1000;

/// The verdicts every storage boot must earn, plus those of its kind.
pub fn judge_boot(log: &[String], status: Option<i32>, kind: Boot, v: &mut Verdicts) {
    let has = |s: &str| log.iter().any(|l| l.contains(s));
    // Facts only the kernel reports (deaths, exits, bus mastering): from its lines only.
    let kernel = |s: &str| kernel_said(log, s).is_some();
    let boot = match kind {
        Boot::First => "boot 1",
        Boot::Second => "boot 2",
        Boot::Kill => "kill boot",
        Boot::Wsh => "wsh boot",
        Boot::Shell => "shell boot",
    };
    for line in log {
        if let Some((ok, what)) = check_of(line) {
            v.check(ok, &format!("{boot}: {what}"));
        }
    }
    v.check(!has("KERNEL PANIC") && !has("KERNEL FAULT"), &format!("{boot}: no kernel panic or fault"));
    // "WFS3SUPR", the superblock magic at the start of block 0.
    v.check(
        has("blockcache0: virtio-blk disk 0:") && has("sector 0 starts [57, 46, 53, 33, 53, 55, 50, 52"),
        &format!("{boot}: blockcache0 drives virtio-blk disk 0 and reads the WFS superblock magic"),
    );
    v.check(has("blockcache1: virtio-blk disk 1:"), &format!("{boot}: blockcache1 drives virtio-blk disk 1"));
    v.check(
        has("wfs-server: mounted WFS") && has("fat-server: mounted FAT"),
        &format!("{boot}: WFS and FAT mounted by their servers"),
    );
    v.check(
        has("vfs-server: mounted /") && has("vfs-server: mounted /fat"),
        &format!("{boot}: the vfs server mounted / and /fat"),
    );
    let done = match kind {
        Boot::First => "fstest: first boot: persistence files written",
        Boot::Second => "fstest: boot with existing files: both verified",
        Boot::Kill => "fstest: kill tests done",
        Boot::Wsh => "wsh: script /demo.wsh: 31 lines ran, none failed",
        Boot::Shell => "wsh: exit; stopping the servers",
    };
    v.check(has(done), &format!("{boot}: {done}"));
    v.check(
        log.iter().any(|l| {
            l.starts_with("init: supervising [") && l.contains("\"wfs-server\"") && l.contains("\"blockcache1\"")
        }),
        &format!("{boot}: init took its restart list from the manifest"),
    );
    // Kills on request (the kill boot's victims, its repeated kills, the shell's restart) are no
    // faults, so init never gives up on a storage server.
    v.check(!has("giving up on it"), &format!("{boot}: init gave up on no service"));
    if matches!(kind, Boot::First | Boot::Second) {
        // File data goes app -> filesystem server in one copy: vfs forwards the app's lease.
        let forwarded =
            log.iter().find_map(|l| l.split_once("vfs-server: stopped (")?.1.split_once(' ')?.0.parse::<u64>().ok());
        v.check(
            forwarded.is_some_and(|n| n > 0),
            &format!("{boot}: the vfs server forwarded reads/writes ({forwarded:?})"),
        );
    }
    let victims: &[&str] = match kind {
        Boot::Kill => &VICTIMS,
        // The shell boot types `restart fat-server`.
        Boot::Shell => &["fat-server"],
        _ => &[],
    };
    for victim in victims {
        v.check(
            kernel(&format!("({victim}) killed by the supervisor"))
                && has(&format!("init: restarted {victim} as task")),
            &format!("{boot}: {victim} was killed mid-workload and init restarted it"),
        );
    }
    for driver in victims.iter().filter(|n| n.starts_with("blockcache")) {
        // A killed driver's disk must stop mastering the bus before its DMA pages are freed.
        let killed = kernel_said(log, &format!("({driver}) killed by the supervisor"));
        let off = position(log, |l| {
            l.starts_with("[kernel] ")
                && l.contains("bus mastering off for PCI")
                && l.contains(&format!("({driver} died; it was on)"))
        });
        let freed = kernel_said(log, &format!("({driver}) reaped;"));
        v.check(
            matches!((killed, off, freed), (Some(k), Some(o), Some(f)) if k < o && o < f),
            &format!("{boot}: the kernel switched off bus mastering on {driver}'s disk before freeing its memory"),
        );
    }
    // The fstest boots' fault is on purpose: the child that dies holding descriptors.
    let faulted: &[&str] = if matches!(kind, Boot::First | Boot::Second) { &["fdhog-fault"] } else { &[] };
    // The kill boot also has init kill fat-server REPEATED_KILLS times in a row (fstest's
    // `repeated_kills`: kills on request never make init give up).
    let repeated = if matches!(kind, Boot::Kill) { REPEATED_KILLS } else { 0 };
    let reaped: Vec<&String> = log.iter().filter(|l| l.starts_with("[kernel] ") && l.contains(") reaped;")).collect();
    v.check(
        reaped.len() == victims.len() + faulted.len() + repeated
            && reaped.iter().all(|l| victims.iter().chain(faulted).any(|n| l.contains(&format!("({n})")))),
        &format!("{boot}: no task but the killed servers (and fdhog-fault) died ({} reaped)", reaped.len()),
    );
    if matches!(kind, Boot::First | Boot::Second) {
        judge_fd_checks(log, boot, v);
    }
    if kind == Boot::Kill {
        // Two direct-read lines per victim (fstest's `direct::hold` and `held_across_kill`).
        let direct =
            log.iter().filter(|l| check_of(l).is_some_and(|(_, w)| w.contains("read directly before the kill")));
        let n = direct.count();
        v.check(
            n == 2 * victims.len(),
            &format!(
                "{boot}: a directly read file was held across every kill ({n} CHECK lines of {})",
                2 * victims.len()
            ),
        );
        let told = format!("init: vfs-server closed {HOG_HELD} descriptors of fdhog-exit");
        v.check(has(&told), &format!("{boot}: the restarted vfs server closed what the dead fdhog-exit held ({told})"));
    }
    let app = match kind {
        Boot::Kill => "fstest-kill",
        Boot::Wsh => "wsh-script",
        Boot::Shell => "wsh",
        _ => "fstest",
    };
    let hog: &[&str] = match kind {
        Boot::First | Boot::Second => &["fdhog-exit", "authority"],
        Boot::Kill => &["fdhog-exit"],
        _ => &[],
    };
    if matches!(kind, Boot::First | Boot::Second) {
        v.check(
            has("authority: attacks done (all refused)"),
            &format!("{boot}: authority: every attack of the unprivileged program was refused"),
        );
    }
    for task in [app, "vfs-server", "wfs-server", "fat-server", "blockcache0", "blockcache1", "init"].iter().chain(hog)
    {
        v.check(kernel(&format!("({task}) exited with code 0")), &format!("{boot}: {task} exited with code 0"));
    }
    v.check(kernel("all tasks finished"), &format!("{boot}: the kernel saw every task finish"));
    v.check(status == Some(QEMU_SUCCESS), &format!("{boot}: QEMU exit status {status:?} is the kernel's success"));
}

/// `CHECK` lines fstest prints per group (initrd/test-apps/fstest: `api::CHECKS` per mount, and the
/// `fds` module's), so a property that silently did not run is a failure.
const API_CHECKS: usize = 13;
const FD_CHECKS: usize = 12;
/// fstest's `direct` module: four lines per mount.
const DIRECT_CHECKS: usize = 8;
/// Descriptors each fd hog holds (2 mounts × `fds::HOG_FILES`).
const HOG_HELD: usize = 48;

/// The descriptor and file API verdicts of an fstest boot: every group printed all its lines, and
/// init reported each hog's death to the vfs server, which closed what it held.
fn judge_fd_checks(log: &[String], boot: &str, v: &mut Verdicts) {
    let count = |group: &str| log.iter().filter(|l| check_of(l).is_some_and(|(_, w)| w.starts_with(group))).count();
    // One transaction-isolation check per hog (both boots start `fdhog-exit` and `fdhog-fault`),
    // and three per transaction peer (`txpeer-commit`, `txpeer-abort`: two of fstest's, one of its own).
    for (group, want) in [
        ("fstest: wfs api: ", API_CHECKS),
        ("fstest: fat api: ", API_CHECKS),
        ("fstest: fds: ", FD_CHECKS),
        ("fstest: tx isolation: ", 2),
        ("fstest: tx peer: ", 6),
        ("fstest: direct: ", DIRECT_CHECKS),
    ] {
        let n = count(group);
        v.check(n == want, &format!("{boot}: `{}` printed {n} CHECK lines of {want}", group.trim_end_matches(": ")));
    }
    for hog in ["fdhog-exit", "fdhog-fault"] {
        let told = format!("init: vfs-server closed {HOG_HELD} descriptors of {hog}");
        v.check(
            log.iter().any(|l| l.contains(&told)),
            &format!("{boot}: init told the vfs server of {hog}'s death ({told})"),
        );
    }
}

/// Reads `path` from a FAT image with mtools.
pub(crate) fn mtools_get(img: &Path, path: &str) -> Option<Vec<u8>> {
    let out = img.with_extension(path.trim_start_matches('/'));
    let _ = std::fs::remove_file(&out);
    let ok = Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(img)
        .arg(format!("::{path}"))
        .arg(&out)
        .status();
    ok.is_ok_and(|s| s.success()).then(|| std::fs::read(&out).ok()).flatten()
}

/// The checks of images whose servers were killed mid-write, under `label`: `watos-image check`
/// must pass on the WFS image as it is (its journal leaves it consistent at every instant); the FAT
/// image must be clean (`fsck.fat -n`) after `fsck.fat -a` repaired what a kill can leave (lost
/// clusters, the dirty bit).
pub(crate) fn check_killed_images(d: &Disks, tool: &Path, label: &str, v: &mut Verdicts) {
    let check = Command::new(tool).arg("check").arg(&d.wfs).output();
    if let Ok(o) = &check {
        print!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    }
    v.check(
        check.is_ok_and(|o| o.status.success()),
        &format!("host ({label}): watos-image check finds the WFS image consistent"),
    );
    let repair = Command::new("fsck.fat").arg("-a").arg(&d.fat).output();
    if let Ok(o) = &repair {
        print!("{}", String::from_utf8_lossy(&o.stdout));
    }
    let clean = Command::new("fsck.fat").arg("-n").arg(&d.fat).output();
    v.check(
        repair.is_ok() && clean.is_ok_and(|o| o.status.success()),
        &format!("host ({label}): after fsck.fat -a the FAT image is clean (fsck.fat -n)"),
    );
}

/// The host's view of the images after the kill boot: WFS must be consistent as it is; FAT has no
/// journal, so a server killed mid-write leaves lost clusters and the dirty bit, which `fsck.fat -a`
/// repairs; after that the volume is clean and every file committed before a kill is byte-exact.
fn check_kill_images(d: &Disks, tool: &Path, v: &mut Verdicts) {
    check_killed_images(d, tool, "kill images", v);
    for (i, victim) in VICTIMS.iter().enumerate() {
        if *victim == "fat-server" || *victim == "blockcache1" {
            let path = format!("/committed-{victim}.bin");
            let got = mtools_get(&d.fat, &path);
            v.check(
                got.is_some_and(|b| b == pattern(KILL_SEED + 16 * i as u64, 200_000)),
                &format!("host (kill images): mtools reads {path} byte-exact"),
            );
        }
    }
}

/// The host's view of the images after the boots.
fn check_images(d: &Disks, v: &mut Verdicts) {
    let fsck = Command::new("fsck.fat").arg("-n").arg(&d.fat).output();
    v.check(fsck.as_ref().is_ok_and(|o| o.status.success()), "host: fsck.fat -n finds the FAT image clean");
    if let Ok(o) = &fsck {
        print!("{}", String::from_utf8_lossy(&o.stdout));
    }
    v.check(
        mtools_get(&d.fat, "/persist.bin").is_some_and(|got| got == pattern(FAT_SEED, PERSIST_LEN)),
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
    if opts.wsh_only {
        return crate::wsh::run_tests(opts, v);
    }
    if opts.stress_only {
        return crate::stress::run_tests(opts, v);
    }
    let (Some(art), Some(kill_art)) = (build_storage(opts, "fstest"), build_storage(opts, "fstest-kill")) else {
        v.check(false, "the storage initrds build");
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
    judge_boot(&log, status, Boot::First, v);
    let (log, status) = boot(&art, opts, &disks, "2 (same images: read back)");
    judge_boot(&log, status, Boot::Second, v);
    check_images(&disks, v);
    // The kill tests run on copies, so the images above stay as the persistence boots left them.
    let kill = disks_in(&workspace_root().join("target/watos"), "kill-");
    let copied = std::fs::copy(&disks.wfs, &kill.wfs).and_then(|_| std::fs::copy(&disks.fat, &kill.fat));
    v.check(copied.is_ok(), "the images are copied for the kill boot");
    let (log, status) = boot(&kill_art, opts, &kill, "3 (copies: kill each server mid-write)");
    judge_boot(&log, status, Boot::Kill, v);
    match image_tool() {
        Some(tool) => check_kill_images(&kill, &tool, v),
        None => v.check(false, "host: watos-image builds"),
    }
    crate::stress::run_tests(opts, v);
    crate::powercut::run_tests(opts, v);
    crate::qbench::run_check(opts, v);
    crate::bench_aio::test(opts, v);
    crate::wsh::run_tests(opts, v);
}
