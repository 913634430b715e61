//! `cargo xtask bench qemu`: the whole storage stack measured in QEMU, beside a Linux guest running the
//! same file workload on ext4 and vfat on the same emulated hardware; and the tiny read-back check of the
//! same program for `cargo xtask test`.
//!
//! Design: a release build of the storage system whose app is `qbench` (initrd/test-apps/qbench) boots
//! on two fresh 160 MiB images (WFS with the `/fat` mount point, FAT). The app prints
//! `QBENCH <mount> <metric> <value>` lines; this module parses them into tables. In the same sitting it
//! runs `../shared/tools/linux-fs-ref` (beside the repository: Debian's kernel running fsbench.c, the
//! same workload, on ext4 and FAT32 virtio-blk disks under the same QEMU options: `-m 256M`, QEMU's
//! default CPU model, TCG), installing the packages its header names with apt-get if they are missing
//! and skipping it with a plain message if that fails. Our figures are printed as `RESULT wfs` and
//! `RESULT fat` lines with linux-fs-ref's keys, its own `RESULT ext4/vfat/ipc` lines pass through, and
//! a table gives the ratios WFS/ext4 and FAT/vfat. The machine's load average is printed before and
//! after, since the figures depend on it. `--kvm` is honoured only if /dev/kvm opens (otherwise TCG,
//! said plainly); the Linux reference always runs under TCG, so its ratios are meaningful only for a
//! TCG run.

use crate::harness::Verdicts;
use crate::storage::{image_tool, run_tool, storage_qemu, Disks};
use crate::watos::{build_with, have_qemu, storage_manifest, Options, QEMU_SUCCESS};
use crate::workspace_root;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Time limit of the benchmark boot (it takes a few minutes under TCG on a loaded machine).
const BENCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// A boot that prints nothing for this long has stopped (every phase prints within seconds).
const SILENCE_LIMIT: Duration = Duration::from_secs(120);
/// Time limit of the check boot.
const CHECK_TIMEOUT: Duration = Duration::from_secs(180);
/// The Linux reference under `../shared/tools` (the repository's sibling directory).
const LINUX_FS_REF: &str = "../shared/tools/linux-fs-ref";
/// The packages linux-fs-ref's header asks for.
const LINUX_PACKAGES: [&str; 6] = ["linux-image-amd64", "busybox-static", "cpio", "gcc", "dosfstools", "e2fsprogs"];

/// `(mount, metric) -> value` from the `QBENCH` lines.
type Figures = crate::daemon_share::Figures;

pub fn parse(log: &str) -> Figures {
    log.lines()
        .filter_map(|l| {
            let mut w = l.trim_end_matches('\r').strip_prefix("QBENCH ")?.split_whitespace();
            let (mount, metric, value) = (w.next()?, w.next()?, w.next()?.parse().ok()?);
            Some(((mount.to_string(), metric.to_string()), value))
        })
        .collect()
}

/// `label -> key -> value` from `RESULT <label> key=value ...` lines.
pub type Results = BTreeMap<String, BTreeMap<String, f64>>;

/// The `RESULT <label> key=value ...` lines of linux-fs-ref (and of our own summary) by label.
pub fn parse_results(out: &str) -> Results {
    out.lines()
        .filter_map(|l| {
            let mut w = l.trim_end_matches('\r').strip_prefix("RESULT ")?.split_whitespace();
            let label = w.next()?.to_string();
            let kv = w.filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            });
            Some((label, kv.collect()))
        })
        .collect()
}

/// linux-fs-ref's keys, in its order, each with its unit and our metric it is compared with.
/// Its rates are MiB per second (64 MiB over seconds), ours are bytes per µs, hence the
/// conversion in [`summary`].
const KEYS: [(&str, &str, &str); 7] = [
    ("seqwrite_fsync_MBps", "MiB/s", "seq_write"),
    ("coldread_MBps", "MiB/s", "seq_read_cold"),
    ("warmread_MBps", "MiB/s", "seq_read_warm"),
    ("cached4k_ops", "reads/s", "rand_cached_iops"),
    ("cached4k_median_us", "µs", "rand_cached_median_us"),
    ("cached4k_p99_us", "µs", "rand_cached_p99_us"),
    ("uncached4k_ops", "reads/s", "rand_uncached_iops"),
];

/// Our figures for one mount under linux-fs-ref's keys (rates in MiB/s like its own).
pub fn summary(ours: &Figures, mount: &str) -> Vec<(&'static str, f64)> {
    let get = |m: &str| ours.get(&(mount.to_string(), m.to_string())).copied();
    KEYS.iter()
        .filter_map(|&(key, unit, metric)| {
            let v = if unit == "MiB/s" {
                let (bytes, us) = (get(&format!("{metric}_bytes"))?, get(&format!("{metric}_us"))?);
                bytes / (1u64 << 20) as f64 / (us / 1e6)
            } else {
                get(metric)?
            };
            Some((key, v))
        })
        .collect()
}

/// The storage system with `qbench` (or `qbench-check`) as its app.
fn build(opts: &Options, app: &'static str) -> Option<crate::watos::Artifacts> {
    let mut manifest = storage_manifest(app);
    manifest[6].1 = "qbench";
    build_with(opts, &manifest, &format!("initrd-{app}.img"))
}

/// Fresh images of `size` (e.g. "160M") under target/watos, named with `prefix`.
fn images(prefix: &str, size: &str) -> Option<Disks> {
    let tool = image_tool()?;
    let dir = workspace_root().join("target/watos");
    std::fs::create_dir_all(&dir).ok()?;
    let d = Disks { wfs: dir.join(format!("{prefix}wfs.img")), fat: dir.join(format!("{prefix}fat.img")) };
    let _ = std::fs::remove_file(&d.wfs);
    let _ = std::fs::remove_file(&d.fat);
    let (wfs, fat) = (d.wfs.to_str()?, d.fat.to_str()?);
    let ok = run_tool(&tool, &["mkfs", "wfs", wfs, size])
        && run_tool(&tool, &["mkdir", wfs, "/fat"])
        && run_tool(&tool, &["mkfs", "fat", fat, size]);
    ok.then_some(d)
}

/// One boot; returns each log line with the host time it arrived, and QEMU's status. Lines are
/// echoed as they come if `echo`.
fn boot(
    art: &crate::watos::Artifacts,
    opts: &Options,
    d: &Disks,
    limit: Duration,
    echo: bool,
) -> (Vec<(Instant, String)>, Option<i32>) {
    let mut cmd = storage_qemu(art, opts, d);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        eprintln!("cannot start QEMU");
        return (Vec::new(), None);
    };
    let Some(stdout) = child.stdout.take() else { return (Vec::new(), None) };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line.trim_end_matches('\r').to_string())).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut log = Vec::new();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now()).min(SILENCE_LIMIT);
        match rx.recv_timeout(wait) {
            Ok((at, line)) => {
                if echo {
                    println!("  | {line}");
                }
                log.push((at, line));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // QEMU pauses (and waits forever) after e.g. a KVM internal error, so silence ends
                // the boot as surely as the time limit.
                eprintln!(
                    "QEMU printed nothing for {} s or ran past {} s; killed",
                    SILENCE_LIMIT.as_secs(),
                    limit.as_secs()
                );
                let _ = child.kill();
                break;
            }
        }
    }
    (log, child.wait().ok().and_then(|s| s.code()))
}

/// TSC ticks per microsecond from the `QBENCH-TSC` marks: the TSC's advance between the first and
/// the last mark over the host time between their arrival.
pub fn tsc_mhz(log: &[(Instant, String)]) -> Option<f64> {
    let marks: Vec<(Instant, u64)> =
        log.iter().filter_map(|(at, l)| Some((*at, l.strip_prefix("QBENCH-TSC ")?.trim().parse().ok()?))).collect();
    let (first, last) = (marks.first()?, marks.last()?);
    let us = last.0.duration_since(first.0).as_secs_f64() * 1e6;
    (us > 1e6 && last.1 > first.1).then(|| (last.1 - first.1) as f64 / us)
}

/// Adds the time-based figures: `X_us` for every `X_ticks`, `X_mbps` where `X_bytes` (for
/// `X_nofsync_ticks` too) is known (bytes per µs are MB/s), `X_iops` where `X_ops` is known.
pub fn derive(f: &mut Figures, mhz: f64) {
    let ticks: Vec<((String, String), f64)> =
        f.iter().filter(|((_, k), _)| k.ends_with("_ticks")).map(|(k, v)| (k.clone(), *v)).collect();
    for ((mount, key), v) in ticks {
        let stem = &key[..key.len() - "_ticks".len()];
        let us = v / mhz;
        let bytes = f.get(&(mount.clone(), format!("{}_bytes", stem.trim_end_matches("_nofsync")))).copied();
        let ops = f.get(&(mount.clone(), format!("{stem}_ops"))).copied();
        f.insert((mount.clone(), format!("{stem}_us")), us);
        if let Some(b) = bytes {
            f.insert((mount.clone(), format!("{stem}_mbps")), b / us);
        }
        if let Some(n) = ops {
            f.insert((mount.clone(), format!("{stem}_iops")), n / us * 1e6);
        }
    }
}

/// CPU seconds used by this process's finished children (and theirs): `cutime + cstime` of
/// /proc/self/stat, in clock ticks of 1/100 s (Linux's USER_HZ on x86-64).
fn children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces): cutime and
    // cstime are fields 16 and 17 of the whole line, so 14 and 15 after the name.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    f.get(13).zip(f.get(14)).map(|(u, s)| (u + s) / 100.0).unwrap_or(0.0)
}

/// Runs `f`, returning its result with the wall seconds and the share of one core its child
/// processes got meanwhile (QEMU is one busy thread under TCG: below 100 % means the host's
/// other load took the rest, and every figure of that run is lower by about that factor).
fn measured<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (cpu, wall) = (children_cpu_secs(), Instant::now());
    let r = f();
    let secs = wall.elapsed().as_secs_f64();
    (r, secs, (children_cpu_secs() - cpu) / secs.max(1e-9) * 100.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// True if /dev/kvm can be opened for QEMU; says why not otherwise.
fn kvm_usable() -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(e) => {
            println!("== --kvm: /dev/kvm is not usable ({e}); running under TCG");
            false
        }
    }
}

/// linux-fs-ref, found beside the repository (`../shared/tools`); from a git worktree elsewhere, beside
/// the main checkout that owns the worktree's git directory.
fn linux_fs_ref() -> Option<PathBuf> {
    let root = workspace_root();
    let mut candidates = vec![root.join(LINUX_FS_REF)];
    let common = Command::new("git").arg("-C").arg(&root).args(["rev-parse", "--git-common-dir"]).output();
    if let Ok(out) = common {
        let dir = root.join(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(main) = dir.parent() {
            candidates.push(main.join(LINUX_FS_REF));
        }
    }
    candidates.into_iter().find(|p| p.exists())
}

/// True if something linux-fs-ref's header asks for is not installed.
fn linux_prerequisites_missing() -> bool {
    let kernel = std::fs::read_dir("/boot")
        .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-")))
        .unwrap_or(false);
    let runs = |cmd: &str, arg: &str| Command::new(cmd).arg(arg).output().is_ok();
    !kernel
        || !Path::new("/bin/busybox").exists()
        || !runs("cpio", "--version")
        || !runs("gcc", "--version")
        || !runs("mkfs.fat", "--help")
        || !runs("mkfs.ext4", "-V")
}

/// linux-fs-ref's `RESULT` lines (ext4, vfat, ipc), or `None` (with a plain message) if it cannot run.
pub fn linux_reference() -> Option<(Results, f64)> {
    let Some(tool) = linux_fs_ref() else {
        println!("== Linux reference skipped: {LINUX_FS_REF} (beside the repository) is missing");
        return None;
    };
    if linux_prerequisites_missing() {
        println!("== Linux reference needs {LINUX_PACKAGES:?}: apt-get install -y ...");
        let ok =
            Command::new("apt-get").args(["install", "-y"]).args(LINUX_PACKAGES).status().is_ok_and(|s| s.success());
        if !ok {
            println!("== Linux reference skipped: its packages could not be installed");
            return None;
        }
    }
    println!("== Linux reference: {LINUX_FS_REF} (Debian's kernel, the same workload on ext4 and FAT32, QEMU TCG)");
    let (out, secs, share) = measured(|| Command::new("bash").arg(&tool).output());
    let out = out.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Its lines pass through unchanged (only RESULT lines and errors reach its stdout).
    print!("{text}");
    println!("== Linux reference took {secs:.0} s; its QEMU got {share:.0} % of one core");
    let results = parse_results(&text);
    if !results.contains_key("ext4") && !results.contains_key("vfat") {
        println!(
            "== Linux reference produced no figures (status {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some((results, share))
}

/// `cargo xtask bench qemu [--kvm]`.
pub fn run(opts: &Options) -> bool {
    let opts = Options { release: true, kvm: opts.kvm && kvm_usable(), ..Options::default() };
    let accel = if opts.kvm { "KVM" } else { "TCG" };
    let Some(art) = build(&opts, "qbench") else { return false };
    let Some(disks) = images("qbench-", "160M") else { return false };
    if !have_qemu() {
        return false;
    }
    let load_before = loadavg();
    println!("== whole-stack benchmark in QEMU ({accel}, release build), load average {load_before}");
    let ((lines, status), took, share) = measured(|| boot(&art, &opts, &disks, BENCH_TIMEOUT, true));
    println!("== the benchmark boot took {took:.0} s; QEMU got {share:.0} % of one core");
    let log: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut ours = parse(&log);
    let mhz = tsc_mhz(&lines);
    match mhz {
        Some(mhz) => {
            ours.insert(("all".into(), "tsc_mhz".into()), mhz);
            derive(&mut ours, mhz);
        }
        None => eprintln!("no TSC marks far enough apart: the times cannot be computed"),
    }
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("CHECK FAIL") || l.contains("KERNEL PANIC")).collect();
    let ok = mhz.is_some() && failures.is_empty() && log.contains("qbench: done") && status == Some(QEMU_SUCCESS);
    let load_after = loadavg();
    let linux = linux_reference();
    let load = [load_before, load_after, loadavg()];
    for mount in ["wfs", "fat"] {
        let kv: Vec<String> = summary(&ours, mount).iter().map(|(k, v)| format!("{k}={v:.1}")).collect();
        println!("RESULT {mount} {}", kv.join(" "));
    }
    print_table(&ours, linux.as_ref(), accel, (took, share), &load);
    if !ok {
        eprintln!("the whole-stack benchmark did not complete cleanly (QEMU status {status:?}; {failures:?})");
    }
    ok
}

/// The check boot of `cargo xtask test`: `qbench-check` writes small files on both mounts, reads
/// them back sequentially, at random, one by one and batched, and compares every byte.
pub fn run_check(opts: &Options, v: &mut Verdicts) {
    let Some(art) = build(opts, "qbench-check") else {
        v.check(false, "the qbench-check initrd builds");
        return;
    };
    let Some(disks) = images("qcheck-", "16M") else {
        v.check(false, "the qbench-check images are made");
        return;
    };
    println!("== storage boot: qbench-check (whole-stack bench app, tiny sizes, every byte compared)");
    let started = Instant::now();
    let (lines, status) = boot(&art, opts, &disks, CHECK_TIMEOUT, true);
    println!("== qbench-check boot took {:.1} s", started.elapsed().as_secs_f64());
    let log: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut checks = 0;
    for line in log.lines() {
        if let Some((_, what)) = line.split_once("CHECK PASS ") {
            v.check(true, &format!("qbench-check: {}", what.trim_end()));
            checks += what.starts_with("qbench: ") as usize;
        } else if let Some((_, what)) = line.split_once("CHECK FAIL ") {
            v.check(false, &format!("qbench-check: {}", what.trim_end()));
        }
    }
    // Per mount: 2 sequential writes, 2 sequential reads, 3 random-read phases, 2 batch phases.
    v.check(checks == 20, &format!("qbench-check: {checks} of the app's 20 data checks passed"));
    let direct = log.lines().filter(|l| l.contains("CHECK PASS qbench-direct: ")).count();
    v.check(direct == 2, &format!("qbench-check: both filesystem servers served direct reads ({direct} of 2)"));
    v.check(!log.contains("KERNEL PANIC") && !log.contains("KERNEL FAULT"), "qbench-check: no kernel panic or fault");
    v.check(log.contains("qbench: done"), "qbench-check: the app finished without errors");
    crate::daemon_share::check(&parse(&log), v);
    v.check(
        status == Some(QEMU_SUCCESS),
        &format!("qbench-check: QEMU exit status {status:?} is the kernel's success"),
    );
}

/// One row of the detail table: label, our metric, its unit.
struct Row {
    label: &'static str,
    metric: &'static str,
    unit: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        label: "sequential write, 1 MiB requests (write calls only)",
        metric: "seq_write_nofsync_mbps",
        unit: "MB/s",
    },
    Row { label: "sequential write incl. the final fsync", metric: "seq_write_mbps", unit: "MB/s" },
    Row { label: "sequential read, cold (file 8x the cache)", metric: "seq_read_cold_mbps", unit: "MB/s" },
    Row { label: "sequential read, warm (4 MiB file, cached)", metric: "seq_read_warm_mbps", unit: "MB/s" },
    Row { label: "random 4 KiB reads, uncached (whole big file)", metric: "rand_uncached_iops", unit: "reads/s" },
    Row { label: "random 4 KiB reads, cached", metric: "rand_cached_iops", unit: "reads/s" },
    Row { label: "cached random 4 KiB read latency, median", metric: "rand_cached_median_us", unit: "µs" },
    Row { label: "cached random 4 KiB read latency, p99", metric: "rand_cached_p99_us", unit: "µs" },
    Row {
        label: "  the same through the vfs (direct reads off), median",
        metric: "rand_cached_vfs_median_us",
        unit: "µs",
    },
    Row { label: "uncached random 4 KiB read latency, median", metric: "rand_uncached_median_us", unit: "µs" },
    Row { label: "block-cache hit rate: sequential cold read", metric: "seq_read_cold_hit_pct", unit: "%" },
    Row { label: "block-cache hit rate: uncached random reads", metric: "rand_uncached_hit_pct", unit: "%" },
    Row { label: "block-cache hit rate: 90% of reads in 2 MiB, 10% over 64 MiB", metric: "hotcold_hit_pct", unit: "%" },
    Row { label: "block-cache hit rate: cached random reads", metric: "rand_cached_hit_pct", unit: "%" },
    Row { label: "batch (64 per vfs call) vs one by one, cached: speedup", metric: "batch_cached_speedup", unit: "×" },
    Row { label: "  cached, one by one, per read", metric: "batch_cached_single_per_read_us", unit: "µs" },
    Row { label: "  cached, batched, per read", metric: "batch_cached_batched_per_read_us", unit: "µs" },
    Row { label: "batch vs one by one, uncached: speedup", metric: "batch_uncached_speedup", unit: "×" },
    Row { label: "IPC round trip app → vfs (stats), median", metric: "ipc_app_vfs_median_us", unit: "µs" },
    Row { label: "IPC round trip app → blockcache (stats), median", metric: "ipc_app_cache_median_us", unit: "µs" },
    Row { label: "blockcache requests per cached 4 KiB read", metric: "rand_cached_cache_reqs_per_op", unit: "" },
    Row {
        label: "blockcache requests per 1 MiB sequential cold read",
        metric: "seq_read_cold_cache_reqs_per_op",
        unit: "",
    },
    Row {
        label: "device requests per 1 MiB sequential cold read",
        metric: "seq_read_cold_device_reqs_per_op",
        unit: "",
    },
    Row { label: "blockcache requests per 1 MiB sequential write", metric: "seq_write_cache_reqs_per_op", unit: "" },
    Row {
        label: "device requests per 1 MiB sequential write (+ fsync)",
        metric: "seq_write_device_reqs_per_op",
        unit: "",
    },
    Row {
        label: "read-ahead blocks per uncached random 4 KiB read",
        metric: "rand_uncached_readahead_blocks_per_op",
        unit: "",
    },
];

/// The phases of the time-share table.
const PHASES: [(&str, &str); 5] = [
    ("seq_write", "sequential write + fsync"),
    ("seq_read_cold", "sequential read, cold"),
    ("seq_read_warm", "sequential read, warm"),
    ("rand_cached", "random 4 KiB reads, cached"),
    ("rand_uncached", "random 4 KiB reads, uncached"),
];

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The Markdown tables for docs/BENCHMARKS.md: our figures beside linux-fs-ref's (ext4 beside WFS,
/// vfat beside FAT) with ratios, then the detail rows and where the time goes. `linux` is its
/// `RESULT` lines and its QEMU's share of a core; `boot` the benchmark boot's wall seconds and QEMU's
/// share of one core; `load` the load averages before our boot, after it and after Linux's.
fn print_table(ours: &Figures, linux: Option<&(Results, f64)>, accel: &str, boot: (f64, f64), load: &[String; 3]) {
    let get = |mount: &str, metric: &str| ours.get(&(mount.to_string(), metric.to_string())).copied();
    let all = |metric: &str| get("all", metric).unwrap_or(0.0);
    println!("\n## bench: qemu (whole stack, QEMU {accel}, release build)\n");
    println!(
        "Files: {} MiB (cold) and {} MiB (warm) per mount; block caches of 8 MiB. Guest TSC {:.0} MHz against the host's clock; \
         against the kernel's clock {:.0} MHz, i.e. the kernel's clock ran {:.0} % slow (lost timer interrupts).",
        all("big_mib"),
        all("warm_mib"),
        all("tsc_mhz"),
        all("kernel_tsc_mhz"),
        (1.0 - all("tsc_mhz") / all("kernel_tsc_mhz").max(1.0)) * 100.0
    );
    println!(
        "Per-byte cost in the guest (the app, same emulation): copying 1 MiB takes {:.0} µs, its XXH64 (WFS's block \
         checksum) {:.0} µs, its crc32 (crc32fast, the checksum of images formatted with `--checksum crc32`) {:.0} µs.",
        all("copy_1mib_us"),
        all("xxh64_1mib_us"),
        all("crc32_1mib_us")
    );
    let linux_share = linux.map(|l| format!("{:.0} %", l.1)).unwrap_or_else(|| "–".into());
    println!(
        "Boot with the benchmark took {:.0} s. QEMU's share of one host core: {:.0} % (ours), {linux_share} (Linux's). \
         Load average (1/5/15 min): {} before, {} after our boot, {} after Linux's.\n",
        boot.0, boot.1, load[0], load[1], load[2]
    );
    let (wfs, fat) = (summary(ours, "wfs"), summary(ours, "fat"));
    let theirs = |label: &str, key: &str| linux.and_then(|l| l.0.get(label)?.get(key).copied());
    println!("Same workload as linux-fs-ref (fsbench.c) on ext4 and vfat in a Linux 6.1 guest under the same QEMU");
    println!("(same -m, default -cpu, TCG, virtio-blk); rates in MiB/s as it prints them. For the µs rows a");
    println!("ratio above 1 means slower than Linux, for every other row below 1 does.\n");
    println!("| figure | WFS | FAT | Linux ext4 | Linux vfat | WFS / ext4 | FAT / vfat |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (key, unit, _) in KEYS {
        let mine = |s: &[(&str, f64)]| s.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let (w, f, e, v) = (mine(&wfs), mine(&fat), theirs("ext4", key), theirs("vfat", key));
        let cell = |x: Option<f64>| x.map(|x| format!("{} {unit}", fmt(x))).unwrap_or_else(|| "–".into());
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "–".into(),
        };
        println!(
            "| {key} | {} | {} | {} | {} | {} | {} |",
            cell(w),
            cell(f),
            cell(e),
            cell(v),
            ratio(w, e),
            ratio(f, v)
        );
    }
    if let (Some(sys), Some(pipe)) =
        (theirs("ipc", "null_syscall_median_us"), theirs("ipc", "pipe_roundtrip_median_us"))
    {
        let (vfs, cache) = (get("wfs", "ipc_app_vfs_median_us"), get("wfs", "ipc_app_cache_median_us"));
        println!(
            "\nKernel cost: Linux's null syscall (getppid) {sys:.2} µs, its pipe round trip between two processes \
             {pipe:.2} µs; our app → vfs round trip {} µs, app → blockcache {} µs (`cargo xtask bench ipc` has the \
             bare kernel figures).",
            vfs.map(fmt).unwrap_or_else(|| "–".into()),
            cache.map(fmt).unwrap_or_else(|| "–".into())
        );
    }
    if linux.is_none() {
        println!("\nNo Linux reference in this run (see the message above).");
    }
    println!("\n| figure | WFS | FAT |");
    println!("|---|---:|---:|");
    for row in ROWS {
        let (w, f) = (get("wfs", row.metric), get("fat", row.metric));
        let cell = |v: Option<f64>| {
            v.map(|v| format!("{} {}", fmt(v), row.unit).trim_end().to_string()).unwrap_or_else(|| "–".into())
        };
        println!("| {} | {} | {} |", row.label, cell(w), cell(f));
    }
    println!("\nWhere the time goes: share of each phase's wall time each task was running (1 ms timer ticks");
    println!("charged to the running task, kernel work on its behalf included), WFS / FAT; the rest is idle");
    println!("time (waiting for QEMU's disk) and other tasks.\n");
    println!("| phase | app | vfs-server | wfs / fat-server | blockcache | rest |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (phase, label) in PHASES {
        let pct = |m: &str, who: &str| get(m, &format!("{phase}_cpu_{who}_pct"));
        let both = |who: &str| match (pct("wfs", who), pct("fat", who)) {
            (Some(w), Some(f)) => format!("{w:.0} / {f:.0} %"),
            _ => "–".into(),
        };
        let rest = |m: &str| {
            ["app", "vfs", "fs", "cache"].iter().map(|w| pct(m, w)).sum::<Option<f64>>().map(|s| (100.0 - s).max(0.0))
        };
        let rest = match (rest("wfs"), rest("fat")) {
            (Some(w), Some(f)) => format!("{w:.0} / {f:.0} %"),
            _ => "–".into(),
        };
        println!("| {label} | {} | {} | {} | {} | {rest} |", both("app"), both("vfs"), both("fs"), both("cache"));
    }
    crate::daemon_share::print(ours);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_app_lines_and_ignores_the_rest() {
        let log = "qbench: starting\r\nQBENCH wfs seq_write_mbps 12.500\r\nQBENCH all tsc_mhz 2400.000\nQBENCH fat bad x\nnoise QBENCH\n";
        let f = parse(log);
        assert_eq!(f.len(), 2);
        assert_eq!(f[&("wfs".to_string(), "seq_write_mbps".to_string())], 12.5);
        assert_eq!(f[&("all".to_string(), "tsc_mhz".to_string())], 2400.0);
    }

    fn key(m: &str, k: &str) -> (String, String) {
        (m.to_string(), k.to_string())
    }

    #[test]
    fn ticks_become_times_rates_and_throughput() {
        let mut f = parse("QBENCH wfs seq_write_ticks 2000000\nQBENCH wfs seq_write_nofsync_ticks 1000000\nQBENCH wfs seq_write_bytes 1000000\nQBENCH wfs rand_ticks 4000000\nQBENCH wfs rand_ops 100\nQBENCH wfs rand_median_ticks 2000\n");
        derive(&mut f, 2000.0);
        assert_eq!(f[&key("wfs", "seq_write_us")], 1000.0);
        assert_eq!(f[&key("wfs", "seq_write_mbps")], 1000.0);
        assert_eq!(f[&key("wfs", "seq_write_nofsync_mbps")], 2000.0);
        assert_eq!(f[&key("wfs", "rand_iops")], 50_000.0);
        assert_eq!(f[&key("wfs", "rand_median_us")], 1.0);
        assert!(!f.contains_key(&key("wfs", "rand_median_iops")));
    }

    #[test]
    fn the_tsc_rate_comes_from_the_first_and_last_mark() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let log = vec![
            (at(0), "QBENCH-TSC 1000".to_string()),
            (at(1), "noise".to_string()),
            (at(5), "QBENCH-TSC 3000001000".to_string()),
            (at(10), "QBENCH-TSC 6000001000".to_string()),
        ];
        assert!((tsc_mhz(&log).unwrap() - 600.0).abs() < 1e-9);
        assert_eq!(tsc_mhz(&log[..1]), None);
    }

    #[test]
    fn parses_result_lines_and_summarises_ours_in_their_keys() {
        let out = "RESULT ext4 seqwrite_fsync_MBps=85.5 coldread_MBps=510.0\r\nnoise\nRESULT ipc null_syscall_median_us=0.66 bad=x\n";
        let r = parse_results(out);
        assert_eq!(r.len(), 2);
        assert_eq!(r["ext4"]["coldread_MBps"], 510.0);
        assert_eq!(r["ipc"].len(), 1);
        let mut f = parse("QBENCH wfs seq_read_cold_bytes 2097152\nQBENCH wfs seq_read_cold_ticks 2000000000\nQBENCH wfs rand_cached_median_ticks 6000\n");
        derive(&mut f, 2000.0);
        let s = summary(&f, "wfs");
        assert_eq!(s, vec![("coldread_MBps", 2.0), ("cached4k_median_us", 3.0)]);
        assert!(summary(&f, "fat").is_empty());
    }
}
