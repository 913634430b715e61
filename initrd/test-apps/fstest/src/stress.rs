//! The concurrent-clients stress boot (`fstest-stress`): client processes of several kinds on both
//! mounts while storage servers are killed one after another.
//!
//! Design: the parent reads the run's seed and length from `/stress.conf` (put on the image by the
//! host), has init start the clients in [`CLIENTS`] (on-demand programs: this binary under those
//! names runs [`client`]), has init kill each server in [`VICTIMS`] (init restarts it at once), some
//! right after the server they depend on or that depends on them, so a restarted server meets
//! another's death while it starts; then kills servers picked by the seeded schedule
//! (`stress_rules::schedule`) for the configured seconds; then stops the servers in [`OUTAGES`] and
//! has init start them again only later; creates [`STOP_PATH`] and waits for the clients to end.
//! Every client (a [`Client`]) loops until it sees [`STOP_PATH`] and then needs one more success;
//! errors while a server is down are expected but must be clear ones ([`CLEAR`]). Each prints two
//! `CHECK` lines (it recovered; its contents rule held), a figures line (`stress_rules::config::Figures`)
//! and a `stress-final:` line for each file whose final contents it knows, which the host reads
//! back from the image. The writers (`stress-wfs*`, `stress-fat*`) are here; the reader, renamer,
//! transaction and fsync-heavy clients are in `stress_clients`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Arguments;
use libwatos::fmt::check;
use libwatos::fs::{ErrorKind, Fs, OpenOptions, SeekFrom};
use libwatos::println;
use libwatos::service;
use libwatos::sys;
use libwatos::transport::{to_kernel, KernelTransport};
use stress_rules::config::{self, Config, Figures, Final};
use stress_rules::records;
use stress_rules::schedule::{Kills, SHORT_GAP_NS};

use crate::stress_clients;

pub use stress_rules::{CLIENTS, WRITERS};

/// Time between two fixed kills.
const KILL_GAP_NS: u64 = 400_000_000;

/// The fixed kills, in order, each with the time to wait after it.
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

/// A client stops by itself this long plus three times the configured kill time, whether or not
/// it saw [`STOP_PATH`] (a kill takes init far longer than its gap when the clients keep the CPU
/// busy).
const SPARE_RUN_NS: u64 = 150_000_000_000;

/// How long the parent waits for the clients after creating [`STOP_PATH`].
const END_WAIT_NS: u64 = 30_000_000_000;

/// A client's pause between two operations, so init and the restarting servers get the CPU and
/// the kills keep their pace.
const PACE_NS: u64 = 10_000_000;

/// After its run, how long a client keeps trying for one more success.
const SETTLE_NS: u64 = 5_000_000_000;

/// Error kinds a client may meet while servers die: a server gone or restarted under a request, a
/// descriptor lost with the vfs, a device gone with its cache, a file not there yet or moved away,
/// a transaction ended by a restart or a conflict. Anything else is a failure.
pub const CLEAR: [ErrorKind; 8] = [
    ErrorKind::ServerRestarted,
    ErrorKind::ServerDead,
    ErrorKind::BadDescriptor,
    ErrorKind::Io,
    ErrorKind::NotFound,
    ErrorKind::ResourceBusy,
    ErrorKind::NoSuchTransaction,
    ErrorKind::Conflict,
];

/// The run's configuration from the image, polled for a few seconds while the servers start.
fn config(fs: &Fs<KernelTransport>) -> Result<Config, String> {
    let mut last = String::new();
    for _ in 0..40 {
        match fs.read_to_string(config::PATH) {
            Ok(text) => return Config::parse(&text).map_err(String::from),
            Err(e) => last = format!("{:?}", e.kind()),
        }
        sys::sleep_ns(50_000_000);
    }
    Err(last)
}

/// The parent: start the clients, kill the servers, wait for the clients to end.
pub fn run() {
    let init = match service::supervisor() {
        Ok(init) => init,
        Err(e) => {
            check(false, format_args!("stress: no supervisor ({e:?})"));
            return;
        }
    };
    let conf = libwatos::fs().map_err(|e| format!("{e:?}")).and_then(|fs| config(&fs));
    check(conf.is_ok(), format_args!("stress: read {} ({conf:?})", config::PATH));
    let conf = conf.unwrap_or(Config { seed: 1, kill_s: 0 });
    println!("stress: seed {:#x}, {} s of seeded kills after the fixed ones", conf.seed, conf.kill_s);
    let mut ids = Vec::new();
    for name in CLIENTS {
        let id = init.spawn_task(name).map(|id| to_kernel(id).unwrap_or(0));
        check(id.is_ok(), format_args!("stress: init started {name} ({id:?})"));
        ids.extend(id);
    }
    let started = sys::monotonic_ns();
    sys::sleep_ns(KILL_GAP_NS / 2);
    println!("stress: clients started, first kill {} ms later", (sys::monotonic_ns() - started) / 1_000_000);
    let (mut kills, mut refused) = (0u32, 0u32);
    let mut kill = |victim: &str, gap: u64| {
        match init.kill_task(victim) {
            Ok(()) => kills += 1,
            Err(e) => {
                refused += 1;
                println!("stress: init refused to kill {victim}: {e:?}");
            }
        }
        sys::sleep_ns(gap);
    };
    for (victim, gap) in VICTIMS {
        kill(victim, gap);
    }
    let mut schedule = Kills::new(conf.seed);
    let end = sys::monotonic_ns() + conf.kill_s * 1_000_000_000;
    while sys::monotonic_ns() < end {
        let (victim, gap) = schedule.next_kill();
        kill(victim, gap);
    }
    println!("stress: kills took {} ms", (sys::monotonic_ns() - started) / 1_000_000);
    check(
        refused == 0,
        format_args!(
            "stress: init killed {kills} servers under the clients ({} fixed, the rest from seed {:#x}), refused {refused}",
            VICTIMS.len(),
            conf.seed
        ),
    );
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
    let deadline = sys::monotonic_ns() + END_WAIT_NS + SETTLE_NS;
    while ids.iter().any(|&id| sys::task_info(id).is_ok()) && sys::monotonic_ns() < deadline {
        sys::sleep_ns(50_000_000);
    }
    check(ids.iter().all(|&id| sys::task_info(id).is_err()), format_args!("stress: every client ended"));
    let _ = libwatos::fs().map(|fs| fs.remove_file(STOP_PATH));
}

/// What one client saw.
#[derive(Default)]
pub struct Tally {
    pub ok: u32,
    pub failed: u32,
    /// Successes since the last failure.
    pub since_failure: u32,
    /// Failures of a kind not in [`CLEAR`].
    pub unclear: u32,
    /// Contents that broke the client's rule.
    pub wrong: u32,
    /// Bytes compared against what they had to be.
    pub bytes: u64,
    pub errors: BTreeMap<String, u32>,
}

impl Tally {
    pub fn success(&mut self) {
        self.ok += 1;
        self.since_failure += 1;
    }

    pub fn error(&mut self, what: &str, kind: ErrorKind) {
        self.failed += 1;
        self.since_failure = 0;
        self.unclear += u32::from(!CLEAR.contains(&kind));
        *self.errors.entry(format!("{what}-{kind:?}")).or_default() += 1;
    }
}

/// One client's run: its connection, its clock, its tally.
pub struct Client {
    pub fs: Fs<KernelTransport>,
    pub name: String,
    pub t: Tally,
    start: u64,
    max_run_ns: u64,
    stopped_at: Option<u64>,
}

impl Client {
    /// Whether the parent has signalled the end of the run (the client is settling).
    pub fn stopping(&self) -> bool {
        self.stopped_at.is_some()
    }

    fn connect(name: &str) -> Option<Client> {
        let fs = libwatos::fs()
            .map_err(|e| check(false, format_args!("stress: {name}: connects to the vfs server ({e:?})")))
            .ok()?;
        let kill_s = config(&fs).map_or(0, |c| c.kill_s);
        let max_run_ns = 3 * kill_s * 1_000_000_000 + SPARE_RUN_NS;
        Some(Client {
            fs,
            name: name.into(),
            t: Tally::default(),
            start: sys::monotonic_ns(),
            max_run_ns,
            stopped_at: None,
        })
    }

    /// Whether to stop: after the stop file (or the time limit), once the last operation
    /// succeeded, or when the settling time ran out.
    pub fn over(&mut self) -> bool {
        sys::sleep_ns(PACE_NS);
        let now = sys::monotonic_ns();
        if self.stopped_at.is_none()
            && (now >= self.start + self.max_run_ns || self.fs.exists(STOP_PATH).unwrap_or(false))
        {
            self.stopped_at = Some(now);
        }
        self.stopped_at.is_some_and(|at| self.t.since_failure > 0 || now >= at + SETTLE_NS)
    }

    /// A failure: counted, then a pause so a restarting server is not flooded.
    pub fn failed(&mut self, what: &str, kind: ErrorKind) {
        self.t.error(what, kind);
        sys::sleep_ns(20_000_000);
    }

    /// Prints the recovery check (`unit` names what `ok` counts), the contents check and the
    /// figures line.
    pub fn finish(&self, kind: &str, unit: &str, rule: bool, rule_line: Arguments) {
        let t = &self.t;
        check(
            t.ok > 0 && t.since_failure > 0 && t.unclear == 0,
            format_args!(
                "stress: {}: recovered after every kill ({} {unit} in {} ms, {} failures, {} not clear errors, the last {} in a row succeeded; {:?})",
                self.name, t.ok, (sys::monotonic_ns() - self.start) / 1_000_000, t.failed, t.unclear, t.since_failure, t.errors
            ),
        );
        check(rule && t.wrong == 0, format_args!("stress: {}: {rule_line}", self.name));
        let errors = t.errors.iter().map(|(k, &n)| (k.clone(), u64::from(n))).collect();
        let figures =
            Figures { client: self.name.clone(), kind: kind.into(), ops: u64::from(t.ok), bytes: t.bytes, errors };
        println!("{}", figures.render());
    }
}

/// Prints the final-contents line of `path` for the host.
pub fn final_contents(path: &str, data: &[u8]) {
    println!("{}", Final::of(path, data).render());
}

/// One client (`stress-*`).
pub fn client(name: &str) -> i64 {
    let Some(c) = Client::connect(name) else { return 1 };
    match name {
        "stress-reader" => stress_clients::reader(c),
        "stress-rename" => stress_clients::renamer(c),
        "stress-tx" => stress_clients::transactions(c),
        "stress-fsync" => stress_clients::fsync_heavy(c),
        _ => writer(c),
    }
    0
}

/// A writer's file: `/<name>.bin` on WFS, `/fat/<name>.bin` on FAT.
pub fn writer_path(name: &str) -> String {
    format!("{}{name}.bin", if name.contains("fat") { "/fat/" } else { "/" })
}

/// A writer: rewrite (seek to 0, write a new version over the old, set the length, fsync) and read
/// back its file until the run is over.
fn writer(mut c: Client) {
    let path = writer_path(&c.name);
    let owner = records::owner_of(&c.name);
    let (mut reads, mut file, mut round) = (0u32, None, 0u32);
    // The last fsynced contents and their version key.
    let mut synced: Option<(u64, Vec<u8>)> = None;
    while !c.over() {
        round += 1;
        if file.is_none() {
            match OpenOptions::new().read(true).write(true).create(true).open(&c.fs, &path) {
                Ok(f) => file = Some(f),
                Err(e) => {
                    c.failed("open", e.kind());
                    continue;
                }
            }
        }
        let Some(f) = file.as_mut() else { continue };
        let data = records::version(owner, round, 8 + (round as u16 * 5) % 40);
        let wrote = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&data))
            .and_then(|_| f.set_len(data.len() as u64))
            .and_then(|_| f.sync_all());
        match wrote {
            Ok(()) => {
                c.t.success();
                synced = Some((records::key(owner, round), data));
            }
            Err(e) => {
                // The contents are unknown now: only a later fsync says what is durable. The file
                // is opened (and created) again: a create a kill undid leaves a handle whose every
                // call is `NotFound`.
                synced = None;
                file = None;
                c.failed("write", e.kind());
                continue;
            }
        }
        reads += 1;
        // Every other round reads back through the open file from position 0: a positioned read,
        // so straight from the filesystem server under a grant the kills keep ending; the others
        // by path, through the vfs.
        let back = match file.as_mut().filter(|_| round % 2 == 1) {
            Some(f) => {
                let mut back = Vec::new();
                f.seek(SeekFrom::Start(0)).and_then(|_| f.read_to_end(&mut back)).map(|_| back)
            }
            None => c.fs.read(&path),
        };
        match back {
            Ok(back) if synced.as_ref().is_some_and(|(_, d)| *d == back) => c.t.bytes += back.len() as u64,
            Ok(_) => c.t.wrong += 1,
            Err(e) => c.failed("read", e.kind()),
        }
    }
    let last = c.fs.read(&path);
    let (key, len) = synced.as_ref().map_or((0, 0), |(k, d)| (*k, d.len()));
    let exact = synced.as_ref().is_some_and(|(_, d)| last.as_ref().ok() == Some(d));
    c.finish(
        "writer",
        "fsynced rewrites",
        exact,
        format_args!(
            "fsynced bytes read back exactly ({reads} reads, {} direct, {} wrong, final read {:?}; last fsync: seed {key:#x}, {len} bytes)",
            c.fs.direct_reads(),
            c.t.wrong,
            last.as_ref().map(|d| d.len()).map_err(|e| e.kind()),
        ),
    );
    if let Some((_, d)) = synced.as_ref().filter(|_| exact) {
        final_contents(&path, d);
    }
}
