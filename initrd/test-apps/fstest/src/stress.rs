//! The concurrent-clients stress boot (`fstest-stress`): several client processes on both mounts
//! rewrite, fsync and read back their files while storage servers are killed one after another.
//!
//! Design: the parent has init start the clients (on-demand programs `stress-wfs1`, `stress-wfs2`,
//! `stress-fat1`, `stress-fat2`: this binary under those names runs [`client`]), then has init kill
//! each server in [`VICTIMS`] in turn (init restarts it at once), some right after the server they
//! depend on or that depends on them, so a restarted server meets another's death while it starts;
//! then stops the servers in [`OUTAGES`] and has init start them again only later; creates
//! [`STOP_PATH`] and waits for the clients to end. Each client keeps one file open and rewrites it
//! with new contents, fsyncs, and reads the file back through that open file (a positioned read, so
//! straight from the filesystem server under a grant the kills keep ending), until it sees [`STOP_PATH`] (or
//! [`MAX_RUN_NS`] passed); errors while a server is down are expected, but after the last kill every
//! client must succeed again and every fsynced content must read back exactly.
//! Each client prints its `CHECK` lines (recovery, direct reads, exact bytes) with its counts, and with the seed
//! and length of its last fsynced contents, so the host can read that file back from the image.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::fs::{ErrorKind, Fs, OpenOptions, SeekFrom};
use libwatos::service::{self, pattern};
use libwatos::sys;
use libwatos::transport::{to_kernel, KernelTransport};

/// The client programs init starts.
pub const CLIENTS: [&str; 4] = ["stress-wfs1", "stress-wfs2", "stress-fat1", "stress-fat2"];

/// Time between two kills, and between two kills meant to overlap a restart.
const KILL_GAP_NS: u64 = 400_000_000;
const SHORT_GAP_NS: u64 = 20_000_000;

/// The servers killed, in order, each with the time to wait after it.
pub const VICTIMS: [(&str, u64); 8] = [
    ("fat-server", KILL_GAP_NS),
    ("blockcache1", KILL_GAP_NS),
    // The cache dies while the new fat-server mounts from it.
    ("fat-server", SHORT_GAP_NS),
    ("blockcache1", KILL_GAP_NS),
    // The filesystem server dies while the new vfs-server remounts: changes a client sent through
    // the old vfs must not be reported durable by an fsync through the new one.
    ("vfs-server", SHORT_GAP_NS),
    ("fat-server", KILL_GAP_NS),
    ("wfs-server", KILL_GAP_NS),
    ("blockcache0", KILL_GAP_NS),
];

/// Servers stopped (with the servers they stop, restarted first) and left down for [`OUTAGE_NS`]
/// before init starts them again: a kill restarts at once, these leave the clients a dead server.
pub const OUTAGES: [(&str, &[&str]); 3] = [
    ("fat-server", &["blockcache1", "fat-server"]),
    ("vfs-server", &["vfs-server"]),
    ("wfs-server", &["blockcache0", "wfs-server"]),
];

/// How long an outage lasts.
const OUTAGE_NS: u64 = 300_000_000;

/// The parent creates it after the last kill: the clients' signal to finish.
const STOP_PATH: &str = "/stress.stop";

/// A client stops by itself after this long, whether or not it saw [`STOP_PATH`].
const MAX_RUN_NS: u64 = 40_000_000_000;

/// After its run, how long a client keeps trying for its final rewrite.
const SETTLE_NS: u64 = 5_000_000_000;

/// The parent: start the clients, kill the servers in turn, wait for the clients to end.
pub fn run() {
    let init = match service::supervisor() {
        Ok(init) => init,
        Err(e) => {
            check(false, format_args!("stress: no supervisor ({e:?})"));
            return;
        }
    };
    let mut ids = Vec::new();
    for name in CLIENTS {
        let id = init.spawn_task(name).map(|id| to_kernel(id).unwrap_or(0));
        check(id.is_ok(), format_args!("stress: init started {name} ({id:?})"));
        ids.extend(id);
    }
    sys::sleep_ns(KILL_GAP_NS / 2);
    for (victim, gap) in VICTIMS {
        let killed = init.kill_task(victim);
        check(killed.is_ok(), format_args!("stress: init killed {victim} under the clients ({killed:?})"));
        sys::sleep_ns(gap);
    }
    for (down, restart) in OUTAGES {
        service::stop(down);
        sys::sleep_ns(OUTAGE_NS);
        let back: Result<Vec<_>, _> = restart.iter().map(|name| init.restart_task(name)).collect();
        check(back.is_ok(), format_args!("stress: {down} stopped for 300 ms, then {restart:?} restarted ({back:?})"));
        sys::sleep_ns(KILL_GAP_NS);
    }
    let stop = (0..100).any(|_| {
        let made = libwatos::fs().is_ok_and(|fs| fs.write(STOP_PATH, b"stop").is_ok());
        if !made {
            sys::sleep_ns(50_000_000);
        }
        made
    });
    check(stop, format_args!("stress: {STOP_PATH} created after the last kill"));
    let deadline = sys::monotonic_ns() + MAX_RUN_NS + SETTLE_NS;
    while ids.iter().any(|&id| sys::task_info(id).is_ok()) && sys::monotonic_ns() < deadline {
        sys::sleep_ns(50_000_000);
    }
    check(ids.iter().all(|&id| sys::task_info(id).is_err()), format_args!("stress: every client ended"));
    let _ = libwatos::fs().map(|fs| fs.remove_file(STOP_PATH));
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    ok: u32,
    failed: u32,
    /// Successes since the last failure.
    since_failure: u32,
    reads: u32,
    wrong: u32,
    errors: BTreeMap<String, u32>,
}

impl Tally {
    fn error(&mut self, what: &str, kind: ErrorKind) {
        self.failed += 1;
        self.since_failure = 0;
        *self.errors.entry(format!("{what} {kind:?}")).or_default() += 1;
    }
}

/// One client (`stress-*`): rewrite, fsync and read back its file until the run is over.
pub fn client(name: &str) -> i64 {
    let fs: Fs<KernelTransport> = match libwatos::fs() {
        Ok(fs) => fs,
        Err(e) => {
            check(false, format_args!("stress: {name}: connects to the vfs server ({e:?})"));
            return 1;
        }
    };
    let dir = if name.contains("fat") { "/fat/" } else { "/" };
    let path = format!("{dir}{name}.bin");
    let seed = 0x5eed_5000 + name.bytes().map(u64::from).sum::<u64>();
    let start = sys::monotonic_ns();
    let mut stopped_at: Option<u64> = None;
    let mut t = Tally::default();
    // The last fsynced contents and their seed.
    let mut synced: Option<(u64, Vec<u8>)> = None;
    let mut file = None;
    let mut round = 0u64;
    loop {
        let now = sys::monotonic_ns();
        if stopped_at.is_none() && (now >= start + MAX_RUN_NS || fs.exists(STOP_PATH).unwrap_or(false)) {
            stopped_at = Some(now);
        }
        if stopped_at.is_some_and(|at| t.since_failure > 0 || now >= at + SETTLE_NS) {
            break;
        }
        round += 1;
        if file.is_none() {
            match OpenOptions::new().read(true).write(true).create(true).open(&fs, &path) {
                Ok(f) => file = Some(f),
                Err(e) => {
                    t.error("open", e.kind());
                    sys::sleep_ns(20_000_000);
                    continue;
                }
            }
        }
        let Some(f) = file.as_mut() else { continue };
        let round_seed = seed + round;
        let data = pattern(round_seed, 3000 + (round as usize * 131) % 9000);
        let wrote = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&data))
            .and_then(|_| f.set_len(data.len() as u64))
            .and_then(|_| f.sync_all());
        match wrote {
            Ok(()) => {
                t.ok += 1;
                t.since_failure += 1;
                synced = Some((round_seed, data));
            }
            Err(e) => {
                t.error("write", e.kind());
                // The contents are unknown now: only a later fsync says what is durable.
                synced = None;
                sys::sleep_ns(20_000_000);
                continue;
            }
        }
        t.reads += 1;
        // Read back through the open file from the start: a positioned read, so the file API reads
        // it straight from the filesystem server (a grant the kills keep taking away).
        let mut back = Vec::new();
        match f.seek(SeekFrom::Start(0)).and_then(|_| f.read_to_end(&mut back)) {
            Ok(_) if synced.as_ref().is_some_and(|(_, d)| *d == back) => {}
            Ok(_) => t.wrong += 1,
            Err(e) => t.error("read", e.kind()),
        }
    }
    check(
        t.ok > 0 && t.since_failure > 0,
        format_args!(
            "stress: {name}: recovered after every kill ({} fsynced rewrites, {} failures, the last {} in a row succeeded; {:?})",
            t.ok, t.failed, t.since_failure, t.errors
        ),
    );
    check(
        fs.direct_reads() > 0,
        format_args!(
            "stress: {name}: read its file straight from the filesystem server ({} direct reads)",
            fs.direct_reads()
        ),
    );
    let last = fs.read(&path);
    let (last_seed, last_len) = synced.as_ref().map_or((0, 0), |(s, d)| (*s, d.len()));
    check(
        t.wrong == 0 && synced.as_ref().is_some_and(|(_, d)| last.as_ref().ok() == Some(d)),
        format_args!(
            "stress: {name}: fsynced bytes read back exactly ({} reads, {} wrong, final read {:?}; last fsync: seed {:#x}, {} bytes)",
            t.reads,
            t.wrong,
            last.as_ref().map(|d| d.len()).map_err(|e| e.kind()),
            last_seed,
            last_len
        ),
    );
    0
}
