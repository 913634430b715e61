//! The shell's QEMU boots: `wsh-script` runs `/demo.wsh` (put on a fresh WFS image by
//! `watos-image`), then the interactive `wsh` boots on the same images with typed input fed through
//! QEMU's stdin.
//!
//! Design: both boots are judged like every storage boot (`storage::judge_boot`) and then by the
//! shell's own output: the lines each command must print, in order, matched exactly except where a
//! line carries counters or times (matched by its start). The host then checks what the shell
//! wrote: `fsck.fat -n` and mtools on the FAT image, `watos-image` on the WFS image.

use crate::harness::Verdicts;
use crate::storage::{boot_with_input, image_tool, judge_boot, make_images, mtools_get, run_tool, Boot, Disks};
use crate::watos::{build_storage, Options};
use std::process::Command;

/// The shell's script, put on the WFS image of the wsh boot as `/demo.wsh`.
const DEMO_SCRIPT: &str = include_str!("demo.wsh");

/// What the script must print, in this order (other lines may come between: the servers' logs, and
/// the figures of `stat`, `df`, `stats` and `ps`). A line ending in `*` is matched by its start only,
/// because what follows are counters and times.
const DEMO_OUTPUT: [&str; 49] = [
    "== ls /",
    "demo.wsh",
    "fat",
    "hello from wsh",
    "hello from wsh",
    "== cat /fat/c.txt",
    "hello from wsh",
    "more on fat",
    "== ls /fat",
    "c.txt",
    "sub",
    "  File: /d/a.txt",
    "  Type: regular file  Size: 15  *",
    " Inode: *",
    "Modify: *",
    "== ls /d",
    "== df",
    "Mounted on          KiB       Used      Avail Use%",
    "/                 32768 *",
    "/fat              *",
    "vfs: opens *",
    "vfs: filesystem errors *",
    "vfs latency *",
    "vfs errors by kind: *",
    "blockcache0 (/): hit rate *",
    "blockcache0 (/) latency read: *",
    "blockcache0 (/) latency write: *",
    "blockcache0 (/) latency flush: *",
    "blockcache1 (/fat): hit rate *",
    "blockcache1 (/fat) latency read: *",
    "wfs-server (/) daemon: flush age 5000 ms, *",
    "wfs-server (/) daemon cpu: *",
    "fat-server (/fat) daemon: flush age 5000 ms, *",
    "fat-server (/fat) daemon cpu: *",
    "NAME             TASK      TICKS  SYSCALLS  RESTARTS  FLAGS",
    "init             0 *",
    "== snapshot",
    "snapshot demo of / created",
    "snapshot kept of / created",
    "2 snapshots of /",
    "  demo  txid *",
    "  kept  txid *",
    "scrub /: *",
    "scrub /: clean",
    "snapshot demo of / deleted",
    "1 snapshots of /",
    "  kept  txid *",
    "== end",
    "wsh: script /demo.wsh: 31 lines ran, none failed",
];

/// Ok if each `want` line appears in `log` in order (exactly, or by its start when it ends in `*`).
fn in_order(log: &[String], want: &[&str]) -> Result<(), String> {
    let mut lines = log.iter();
    for w in want {
        let found = match w.strip_suffix('*') {
            Some(start) => lines.any(|l| l.starts_with(start)),
            None => lines.any(|l| l == w),
        };
        if !found {
            return Err(format!("missing (in order): {w:?}"));
        }
    }
    Ok(())
}

/// The wsh boots of `cargo xtask test`.
pub fn run_tests(opts: &Options, v: &mut Verdicts) {
    let Some(art) = build_storage(opts, "wsh-script") else {
        v.check(false, "the wsh initrd builds");
        return;
    };
    let (Some(disks), Some(tool)) = (make_images("wsh-"), image_tool()) else {
        v.check(false, "the wsh boot's disk images are made");
        return;
    };
    let script = disks.wfs.with_extension("demo.wsh");
    let (Some(wfs), Some(host)) = (disks.wfs.to_str(), script.to_str()) else {
        v.check(false, "the wsh boot's paths are UTF-8");
        return;
    };
    let put = std::fs::write(&script, DEMO_SCRIPT).is_ok() && run_tool(&tool, &["put", wfs, host, "/demo.wsh"]);
    v.check(put, "wsh boot: watos-image puts /demo.wsh on the WFS image");
    let (log, status) = boot_with_input(&art, opts, &disks, "4 (fresh images: wsh runs /demo.wsh)", None);
    judge_boot(&log, status, Boot::Wsh, v);
    let order = in_order(&log, &DEMO_OUTPUT);
    v.check(
        order.is_ok(),
        &format!(
            "wsh boot: the script's output lines, in order ({})",
            order.err().unwrap_or_else(|| "all found".into())
        ),
    );
    v.check(!log.iter().any(|l| is_error_line(l)), "wsh boot: no command printed an error line");
    // Latencies: every kind the script made requests of, plausible in µs (TSC cycles converted
    // with the rate each server measured), ordered min <= p50 <= p99 <= max and mean inside.
    for (who, kind, least_us, most_us) in [
        ("blockcache0 (/)", "read", 1.0, 100_000.0),
        ("blockcache0 (/)", "write", 1.0, 100_000.0),
        ("blockcache0 (/)", "flush", 1.0, 1_000_000.0),
        ("blockcache1 (/fat)", "read", 1.0, 100_000.0),
        ("vfs", "read", 1.0, 1_000_000.0),
        ("vfs", "write", 1.0, 1_000_000.0),
        ("vfs", "open", 1.0, 1_000_000.0),
    ] {
        let line = log.iter().find(|l| l.starts_with(&format!("{who} latency {kind}: ")));
        let lat = line.and_then(|l| Latency::parse(l));
        v.check(
            lat.as_ref().is_some_and(|l| l.plausible(least_us, most_us)),
            &format!("wsh boot: `stats` shows {who}'s {kind} latency, ordered, mean {least_us}-{most_us} µs ({lat:?})"),
        );
    }
    for who in ["wfs-server (/)", "fat-server (/fat)"] {
        let line = log.iter().find(|l| l.starts_with(&format!("{who} daemon cpu: ")));
        let share = line.and_then(|l| daemon_share(l));
        v.check(
            share.is_some_and(|(cycles, pct)| cycles > 0 && (0.0..=100.0).contains(&pct)),
            &format!("wsh boot: `stats` shows {who}'s daemon cycles and share of the time since it started ({share:?} %; target < 5 %)"),
        );
    }
    let ps: Vec<&String> = log.iter().skip_while(|l| !l.starts_with("NAME ")).skip(1).take(7).collect();
    v.check(
        ["init", "blockcache0", "blockcache1", "wfs-server", "fat-server", "vfs-server", "wsh-script"]
            .iter()
            .zip(&ps)
            .all(|(name, l)| l.split_whitespace().next() == Some(*name) && l.split_whitespace().count() >= 4),
        "wsh boot: ps lists every program of the manifest with a live task, ticks and syscalls",
    );
    let fsck = Command::new("fsck.fat").arg("-n").arg(&disks.fat).output();
    v.check(fsck.is_ok_and(|o| o.status.success()), "wsh boot: host: fsck.fat -n finds the FAT image clean");
    v.check(
        mtools_get(&disks.fat, "/c.txt").is_some_and(|b| b == b"hello from wsh\nmore on fat\n"),
        "wsh boot: host: mtools reads /c.txt (cp, mv and >> by the shell) byte-exact",
    );
    let check = Command::new(&tool).arg("check").arg(wfs).output();
    v.check(
        check.is_ok_and(|o| o.status.success()),
        "wsh boot: host: watos-image check finds the WFS image consistent",
    );
    let snaps = Command::new(&tool).arg("snapshot").arg(wfs).arg("list").output();
    v.check(
        snaps.is_ok_and(|o| {
            let out = String::from_utf8_lossy(&o.stdout);
            o.status.success() && out.lines().any(|l| l.starts_with("kept\t")) && !out.contains("demo")
        }),
        "wsh boot: host: the WFS image holds snapshot `kept` (made by the shell over IPC) and not the deleted `demo`",
    );
    let listed = Command::new(&tool).arg("ls").arg(wfs).arg("/d").output();
    v.check(
        listed.is_ok_and(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("a.txt")),
        "wsh boot: host: /d exists on the WFS image without a.txt (mkdir, then rm of its file)",
    );
    shell_boot(opts, &disks, v);
}

/// One `stats` latency line (`<who> latency <kind>: N calls, min X us, mean X us, p50 X us, p99 X
/// us, max X us`).
#[derive(Debug, Clone, PartialEq)]
struct Latency {
    count: u64,
    /// min, mean, p50, p99, max in µs.
    us: [f64; 5],
}

impl Latency {
    fn parse(line: &str) -> Option<Latency> {
        let (_, figures) = line.split_once(": ")?;
        let mut parts = figures.split(", ");
        let count = parts.next()?.strip_suffix(" calls")?.parse().ok()?;
        let mut us = [0.0; 5];
        for (slot, name) in us.iter_mut().zip(["min", "mean", "p50", "p99", "max"]) {
            *slot = parts.next()?.strip_prefix(name)?.strip_suffix(" us")?.trim().parse().ok()?;
        }
        parts.next().is_none().then_some(Latency { count, us })
    }

    /// Non-zero count and minimum, min <= p50 <= p99 <= max, the mean within [min, max] and within
    /// [least, most] µs.
    fn plausible(&self, least: f64, most: f64) -> bool {
        let [min, mean, p50, p99, max] = self.us;
        self.count > 0
            && min > 0.0
            && min <= p50
            && p50 <= p99
            && p99 <= max
            && (min..=max).contains(&mean)
            && (least..=most).contains(&mean)
    }
}

/// The daemon's cycles and percentage share in a `stats` daemon CPU line
/// (`<who> daemon cpu: N cycles, P % of ...`).
fn daemon_share(line: &str) -> Option<(u64, f64)> {
    let (_, rest) = line.split_once("daemon cpu: ")?;
    let (cycles, rest) = rest.split_once(" cycles, ")?;
    let (pct, _) = rest.split_once(" % of ")?;
    Some((cycles.parse().ok()?, pct.parse().ok()?))
}

/// How many `NotFound` replies a `stats` errors line reports (`vfs errors by kind: NotFound 4, ...`;
/// 0 when it lists none).
fn not_found(line: &str) -> Option<u64> {
    let (_, list) = line.split_once("errors by kind: ")?;
    if list == "none" {
        return Some(0);
    }
    Some(list.split(", ").find_map(|e| e.strip_prefix("NotFound ")?.parse().ok()).unwrap_or(0))
}

/// A `wsh: <cmd>: ...` error line (not the shell's own verdict and exit lines).
fn is_error_line(l: &str) -> bool {
    l.starts_with("wsh: ")
        && !l.starts_with("wsh: script")
        && !l.starts_with("wsh: exit;")
        && !l.starts_with("wsh: the WATOS shell")
}

/// What the interactive boot "types": CR-terminated lines as a terminal sends them, with a line
/// edited by DEL (0x7f) and Ctrl-U (0x15) before it is sent, `scrub /fat` (which FAT answers with
/// "not supported"), and `sync` before `restart fat-server`
/// (a killed FAT server loses what was not yet written back, like a power cut), then three `stat`s of
/// missing files and `stats`, whose vfs error line must count them. It starts with a bare CR because the
/// first byte can arrive before the kernel sets up COM1, and enabling the UART's FIFO discards it;
/// a lost CR costs nothing, a kept one is an empty line (just another prompt).
const TYPED: &[u8] = b"\rcat /fat/c.txt\rcd /fat\rls\recho typed > t.txt\rcat t.txt\rcat /nope\rpwd\rab\x7fc\x15echo edited\rscrub /fat\rsync\rrestart fat-server\rcat /fat/c.txt\rstat /missing-1\rstat /missing-2\rstat /missing-3\rstats\rexit\r";

/// What the interactive boot must print, in order (as `DEMO_OUTPUT`). A prompt and the echo of the
/// typed line share a log line.
const TYPED_OUTPUT: [&str; 30] = [
    "wsh: the WATOS shell. *",
    "wsh:/$ cat /fat/c.txt",
    "hello from wsh",
    "more on fat",
    "wsh:/$ cd /fat",
    "wsh:/fat$ ls",
    "c.txt",
    "sub",
    "wsh:/fat$ echo typed > t.txt",
    "wsh:/fat$ cat t.txt",
    "typed",
    "wsh:/fat$ cat /nope",
    "wsh: cat: /nope: *",
    "wsh:/fat$ pwd",
    "/fat",
    "edited",
    "wsh:/fat$ scrub /fat",
    "wsh: scrub: /fat: operation not supported",
    "wsh:/fat$ restart fat-server",
    "restarted fat-server as task *",
    "hello from wsh",
    "more on fat",
    "wsh:/fat$ stat /missing-1",
    "wsh: stat: /missing-1: *",
    "wsh:/fat$ stat /missing-2",
    "wsh: stat: /missing-2: *",
    "wsh:/fat$ stat /missing-3",
    "wsh: stat: /missing-3: *",
    "wsh:/fat$ stats",
    "vfs errors by kind: *",
];

/// The interactive shell on the images the script boot left, with `TYPED` on its console.
fn shell_boot(opts: &Options, disks: &Disks, v: &mut Verdicts) {
    let Some(art) = build_storage(opts, "wsh") else {
        v.check(false, "the interactive wsh initrd builds");
        return;
    };
    let (log, status) =
        boot_with_input(&art, opts, disks, "5 (same images: interactive wsh, typed input)", Some(TYPED));
    judge_boot(&log, status, Boot::Shell, v);
    let order = in_order(&log, &TYPED_OUTPUT);
    v.check(
        order.is_ok(),
        &format!(
            "shell boot: the typed commands' output, in order ({})",
            order.err().unwrap_or_else(|| "all found".into())
        ),
    );
    v.check(
        log.iter().filter(|l| is_error_line(l)).count() == 5,
        "shell boot: only `cat /nope`, `scrub /fat` (FAT has no scrub) and the three `stat`s of missing files printed an error line",
    );
    // `cat /nope` and the three `stat`s: at least four NotFound replies from the vfs.
    let found = log.iter().find(|l| l.starts_with("vfs errors by kind: ")).and_then(|l| not_found(l));
    v.check(
        found.is_some_and(|n| n >= 4),
        &format!("shell boot: `stats` counts the provoked missing-file errors (NotFound {found:?}, at least 4)"),
    );
    // The shell blocks in console_read until the kernel, at COM1's interrupt, has taken input.
    let by_irq = log.iter().find_map(|l| {
        l.split_once("console input: ")?.1.split_once(" bytes taken at COM1's interrupt")?.0.parse::<usize>().ok()
    });
    v.check(
        by_irq.is_some_and(|n| n > 0 && n <= TYPED.len()),
        &format!("shell boot: the typed input came in by COM1's interrupt ({by_irq:?} of {} bytes)", TYPED.len()),
    );
    // No fsck.fat verdict here: a FAT volume whose server was killed keeps its dirty bit through the
    // restarted server's clean unmount (as Linux leaves it), which `fsck.fat -n` reports as an error.
    v.check(
        mtools_get(&disks.fat, "/t.txt").is_some_and(|b| b == b"typed\n"),
        "shell boot: host: mtools reads /fat/t.txt (typed `echo typed > t.txt` in /fat) byte-exact",
    );
}

#[cfg(test)]
mod tests {
    use super::{daemon_share, in_order, not_found, Latency};

    #[test]
    fn latency_lines_parse_and_are_judged() {
        let l =
            "blockcache0 (/) latency read: 5 calls, min 12.3 us, mean 40.0 us, p50 30.1 us, p99 150.2 us, max 200.0 us";
        let lat = Latency::parse(l).unwrap();
        assert_eq!(lat, Latency { count: 5, us: [12.3, 40.0, 30.1, 150.2, 200.0] });
        assert!(lat.plausible(1.0, 100.0));
        assert!(!lat.plausible(50.0, 100.0), "mean below the least");
        let unordered = Latency { us: [12.3, 40.0, 300.0, 150.2, 200.0], ..lat.clone() };
        assert!(!unordered.plausible(1.0, 100.0));
        let mean_outside = Latency { us: [12.3, 400.0, 30.1, 150.2, 200.0], ..lat.clone() };
        assert!(!mean_outside.plausible(1.0, 1000.0));
        assert!(!Latency { count: 0, ..lat }.plausible(1.0, 100.0));
        // Ticks (no rate) and cut lines are refused.
        assert_eq!(
            Latency::parse(
                "vfs latency read: 5 calls, min 1 ticks, mean 1 ticks, p50 1 ticks, p99 1 ticks, max 1 ticks"
            ),
            None
        );
        assert_eq!(Latency::parse("vfs latency read: 5 calls, min 1.0 us"), None);
    }

    #[test]
    fn daemon_and_error_lines_parse() {
        let l = "wfs-server (/) daemon cpu: 3000000 cycles, 0.100 % of 3.0 s since the server started; server busy 1 cycles, 1.000 %";
        assert_eq!(daemon_share(l), Some((3_000_000, 0.1)));
        assert_eq!(daemon_share("wfs-server (/) daemon: flush age"), None);
        assert_eq!(not_found("vfs errors by kind: AlreadyExists 1, NotFound 4"), Some(4));
        assert_eq!(not_found("vfs errors by kind: Busy 2"), Some(0));
        assert_eq!(not_found("vfs errors by kind: none"), Some(0));
        assert_eq!(not_found("vfs: opens 3"), None);
    }

    fn log(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn lines_must_appear_in_order_exactly_or_by_their_start() {
        let l = log(&["== ls /", "server noise", "demo.wsh", "fat", "blockcache0 (/): hit rate 50.0%"]);
        assert!(in_order(&l, &["== ls /", "demo.wsh", "fat", "blockcache0 (/): hit rate *"]).is_ok());
        // A short name must not be satisfied by a longer line that merely starts with it.
        assert!(in_order(&l, &["== ls /", "d", "fat"]).is_err());
        // Out of order.
        assert!(in_order(&l, &["fat", "demo.wsh"]).is_err());
    }
}
