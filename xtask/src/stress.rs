//! The stress boot: concurrent clients of several kinds on both mounts while storage servers are
//! killed, then the host's view of the images it leaves; and the same boot as a soak of minutes.
//!
//! Design: the harness picks the run's seed (`WATOS_STRESS_SEED` repeats a run) and the seconds of
//! seeded kills (a few for `cargo xtask test`, minutes for `--soak`) and puts them on the fresh WFS
//! image as `/stress.conf`. `fstest-stress` (initrd/test-apps/fstest, src/stress.rs and
//! src/stress_clients.rs) starts the clients and has init kill and stop the storage servers under
//! them; each client prints two `CHECK` lines, a figures line and a `stress-final:` line for every
//! file whose final contents it knows. The harness judges the `CHECK` lines, then checks the images
//! like the kill boot's: `watos-image check` on WFS as it is, `fsck.fat -a` then `fsck.fat -n` on
//! FAT (no journal: a kill mid-write may leave lost clusters and the dirty bit), and reads every
//! final file back (`watos-image get`, mtools), which must match its length and checksum. Two cheap
//! negative cases show the host verdicts can fail: a file no client wrote reads as missing, and a
//! copy of the FAT image with its dirty bit set fails `fsck.fat -n`. Last it prints the figures:
//! operations, bytes verified and failures per client kind, failures by error kind, kills and
//! restarts.

use crate::harness::{check_of, kernel_said, Verdicts};
use crate::storage::{boot_within, check_killed_images, image_tool, make_images, mtools_get, run_tool};
use crate::watos::{build_storage, Options, QEMU_SUCCESS};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use stress_rules::config::{Config, Figures, Final, PATH as CONFIG_PATH};

/// The concurrent clients of the stress boot (the manifest ships them).
pub use stress_rules::CLIENTS;
/// Files whose final contents the clients report: one per writer, three of the transaction user,
/// the fsync-heavy client's two logs.
const FINALS: usize = 4 + 3 + 2;
/// The servers the stress boot's fixed kills hit (`stress::VICTIMS`), each at least once.
const VICTIMS: [&str; 5] = ["fat-server", "blockcache1", "vfs-server", "wfs-server", "blockcache0"];
/// Outages of the stress boot: servers stopped and restarted later (`stress::OUTAGES`).
const OUTAGES: usize = 3;
/// Seconds of seeded kills after the fixed ones in `cargo xtask test`.
const TEST_KILL_S: u64 = 10;
/// Seconds of seeded kills of `--soak` without a value.
pub const SOAK_SECS: u64 = 180;

/// The run's seed: `WATOS_STRESS_SEED` (decimal or 0x-hex) to repeat a run, else from the clock.
fn seed() -> u64 {
    let given = std::env::var("WATOS_STRESS_SEED").ok().and_then(|s| match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    });
    given.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// The stress boot on fresh images (a soak with `--soak`): the clients on both mounts while the
/// storage servers die; each client must keep its rule and recover, and the host must read back
/// every final file from the images afterwards.
pub fn run_tests(opts: &Options, v: &mut Verdicts) {
    let kill_s = opts.soak.unwrap_or(TEST_KILL_S);
    if kill_s == 0 {
        v.check(false, "--soak=SECS names a positive number of seconds");
        return;
    }
    let conf = Config { seed: seed(), kill_s };
    println!(
        "== stress seed {:#x} ({kill_s} s of seeded kills): repeat with WATOS_STRESS_SEED={:#x}",
        conf.seed, conf.seed
    );
    let Some(art) = build_storage(opts, "fstest-stress") else {
        v.check(false, "the stress initrd builds");
        return;
    };
    let (Some(disks), Some(tool)) = (make_images("stress-"), image_tool()) else {
        v.check(false, "the stress disk images are made");
        return;
    };
    let conf_file = disks.wfs.with_extension("conf");
    let put = std::fs::write(&conf_file, conf.render()).is_ok()
        && run_tool(&tool, &["put", &disks.wfs.to_string_lossy(), &conf_file.to_string_lossy(), CONFIG_PATH]);
    v.check(put, &format!("host: {CONFIG_PATH} is put on the stress WFS image"));
    let what = if opts.soak.is_some() { "soak" } else { "4 (fresh images: concurrent clients while servers die)" };
    let started = Instant::now();
    let limit = Duration::from_secs(240 + kill_s * 2);
    let (log, status) = boot_within(&art, opts, &disks, what, None, limit);
    let wall = started.elapsed();
    judge(&log, status, v);
    check_killed_images(&disks, &tool, "stress images", v);
    v.check(
        dirty_copy_is_refused(&disks.fat),
        "host (stress images): fsck.fat -n refuses a copy of the FAT image with the dirty bit set",
    );
    let finals: Vec<Final> = log.iter().filter_map(|l| Final::parse(l)).collect();
    v.check(
        finals.len() == FINALS,
        &format!(
            "host (stress images): the clients named {} files with known final contents of {FINALS}",
            finals.len()
        ),
    );
    for f in &finals {
        let (got, how) = match f.path.strip_prefix("/fat") {
            Some(on_fat) => (mtools_get(&disks.fat, on_fat), "mtools"),
            None => (wfs_get(&tool, &disks.wfs, &f.path), "watos-image get"),
        };
        // A client reports a file it last saw absent (the transaction user's, before any round
        // committed) as empty: no file holds those (no) bytes too.
        let absent_ok = f.len == 0 && got.is_none();
        v.check(
            absent_ok || got.as_deref().is_some_and(|g| f.matches(g)),
            &format!(
                "host (stress images): {how} reads {} as its client last knew it ({} bytes, fnv {:#x}; read {:?})",
                f.path,
                f.len,
                f.fnv,
                got.as_ref().map(Vec::len)
            ),
        );
    }
    // The read-back can fail: a file no client wrote is not there.
    v.check(
        wfs_get(&tool, &disks.wfs, "/stress-none.bin").is_none()
            && mtools_get(&disks.fat, "/stress-none.bin").is_none(),
        "host (stress images): a file no client wrote reads as missing on both images",
    );
    print!("{}", Summary::of(&log).render(&conf, wall));
}

/// The FAT verdict can fail: a copy of the (repaired) image with its dirty bit set, as a server
/// killed mid-write leaves it, must not pass `fsck.fat -n`. The image is FAT16 (16 MiB), whose dirty
/// bit is bit 0 of boot-sector byte 0x25.
fn dirty_copy_is_refused(fat: &Path) -> bool {
    let copy = fat.with_extension("dirty.img");
    let Ok(mut bytes) = std::fs::read(fat) else { return false };
    let Some(flags) = bytes.get_mut(0x25) else { return false };
    *flags |= 1;
    if std::fs::write(&copy, &bytes).is_err() {
        return false;
    }
    let refused = Command::new("fsck.fat").arg("-n").arg(&copy).output().is_ok_and(|o| !o.status.success());
    let _ = std::fs::remove_file(&copy);
    refused
}

/// Reads `path` from a WFS image with `watos-image get`.
fn wfs_get(tool: &Path, img: &Path, path: &str) -> Option<Vec<u8>> {
    let out = img.with_extension(path.trim_start_matches('/').replace('/', "-"));
    let _ = std::fs::remove_file(&out);
    let ok = Command::new(tool).arg("get").arg(img).arg(path).arg(&out).output();
    ok.is_ok_and(|o| o.status.success()).then(|| std::fs::read(&out).ok()).flatten()
}

/// The run's figures, from its log.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    /// Per client kind: clients, operations, bytes verified, failures.
    kinds: BTreeMap<String, [u64; 4]>,
    /// Failures by error kind (the operation that failed left out).
    errors: BTreeMap<String, u64>,
    kills: Option<u64>,
    restarts: usize,
}

impl Summary {
    fn of(log: &[String]) -> Summary {
        let mut s = Summary::default();
        for f in log.iter().filter_map(|l| Figures::parse(l)) {
            let k = s.kinds.entry(f.kind.clone()).or_default();
            for (slot, n) in k.iter_mut().zip([1, f.ops, f.bytes, f.failures()]) {
                *slot += n;
            }
            for (what, n) in &f.errors {
                *s.errors.entry(what.rsplit('-').next().unwrap_or(what).to_string()).or_default() += n;
            }
        }
        s.kills = log
            .iter()
            .filter_map(|l| check_of(l))
            .find_map(|(_, w)| w.strip_prefix("stress: init killed ")?.split_once(' ')?.0.parse().ok());
        s.restarts = log.iter().filter(|l| l.starts_with("init: restarted ")).count();
        s
    }

    fn render(&self, conf: &Config, wall: Duration) -> String {
        let mut out = format!(
            "== stress figures: seed {:#x}, {} s of seeded kills, boot {:.0} s\n   kills {}, restarts {}\n",
            conf.seed,
            conf.kill_s,
            wall.as_secs_f64(),
            self.kills.map_or("unknown".to_string(), |k| k.to_string()),
            self.restarts
        );
        for (kind, [clients, ops, bytes, failures]) in &self.kinds {
            out += &format!(
                "   {kind:<12} {clients} clients, {ops} operations, {bytes} bytes verified, {failures} failures\n"
            );
        }
        let errors: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out += &format!("   failures by kind: {}\n", if errors.is_empty() { "none".into() } else { errors.join(", ") });
        out
    }
}

fn judge(log: &[String], status: Option<i32>, v: &mut Verdicts) {
    let boot = "stress boot";
    let has = |s: &str| log.iter().any(|l| l.contains(s));
    let kernel = |s: &str| kernel_said(log, s).is_some();
    for line in log {
        if let Some((ok, what)) = check_of(line) {
            v.check(ok, &format!("{boot}: {what}"));
        }
    }
    // Started and two results per client, one per outage, the configuration, the kills, the stop
    // file and "every client ended".
    let want = CLIENTS.len() * 3 + OUTAGES + 4;
    let n = log.iter().filter(|l| check_of(l).is_some_and(|(_, w)| w.starts_with("stress: "))).count();
    v.check(n == want, &format!("{boot}: the stress test printed {n} CHECK lines of {want}"));
    let figures = log.iter().filter(|l| Figures::parse(l).is_some()).count();
    v.check(figures == CLIENTS.len(), &format!("{boot}: {figures} clients of {} printed their figures", CLIENTS.len()));
    v.check(!has("KERNEL PANIC") && !has("KERNEL FAULT"), &format!("{boot}: no kernel panic or fault"));
    v.check(has("fstest: stress done"), &format!("{boot}: fstest: stress done"));
    v.check(!has("giving up on it"), &format!("{boot}: init gave up on no service"));
    for victim in VICTIMS {
        v.check(
            kernel(&format!("({victim}) killed by the supervisor"))
                && has(&format!("init: restarted {victim} as task")),
            &format!("{boot}: {victim} was killed under the clients and init restarted it"),
        );
    }
    for task in ["fstest-stress", "vfs-server", "wfs-server", "fat-server", "blockcache0", "blockcache1", "init"]
        .iter()
        .chain(&CLIENTS)
    {
        v.check(kernel(&format!("({task}) exited with code 0")), &format!("{boot}: {task} exited with code 0"));
    }
    v.check(status == Some(QEMU_SUCCESS), &format!("{boot}: QEMU exit status {status:?} is the kernel's success"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn soak_flag_selects_the_stress_boot_and_its_length() {
        let parse = |args: &[&str]| Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let o = parse(&["--soak"]);
        assert_eq!(o.soak, Some(SOAK_SECS));
        assert!(o.stress_only && o.storage_only && o.qemu_only);
        assert_eq!(parse(&["--soak=600"]).soak, Some(600));
        // Not a number: 0, which `run_tests` refuses rather than running the default test.
        assert_eq!(parse(&["--soak=ten"]).soak, Some(0));
        let plain = parse(&["--stress-only"]);
        assert_eq!(plain.soak, None);
        assert!(plain.stress_only);
        assert!(!parse(&[]).stress_only);
    }

    #[test]
    fn the_summary_adds_up_every_clients_figures() {
        let l = log(&[
            "stress-figures: client=stress-wfs1 kind=writer ops=10 bytes=4096 errors=write-ServerDead:2",
            "stress-figures: client=stress-fat1 kind=writer ops=5 bytes=1024 errors=write-ServerDead:1,read-Io:1",
            "stress-figures: client=stress-reader kind=reader ops=7 bytes=512 errors=-",
            "CHECK PASS stress: init killed 23 servers under the clients (8 fixed, the rest from seed 0x5), refused 0",
            "init: restarted fat-server as task 0x10004",
            "init: restarted vfs-server as task 0x10005",
            "stress-wfs1: init: restarted fat-server as task 0x10004",
        ]);
        let s = Summary::of(&l);
        assert_eq!(s.kinds["writer"], [2, 15, 5120, 4]);
        assert_eq!(s.kinds["reader"], [1, 7, 512, 0]);
        assert_eq!(s.errors, BTreeMap::from([("ServerDead".to_string(), 3), ("Io".to_string(), 1)]));
        assert_eq!((s.kills, s.restarts), (Some(23), 2));
        let text = s.render(&Config { seed: 5, kill_s: 4 }, Duration::from_secs(61));
        assert!(text.contains("kills 23, restarts 2"), "{text}");
        assert!(text.contains("failures by kind: Io 1, ServerDead 3"), "{text}");
        // Nothing printed: nothing counted, and the kills unknown rather than zero.
        assert_eq!(Summary::of(&log(&["hello"])), Summary::default());
    }
}
