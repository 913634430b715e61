//! The stress boot's reader, renamer, transaction and fsync-heavy clients (the frame they share,
//! [`Client`], and the writers are in `stress`).
//!
//! Design: each client checks its own rule from `stress_rules` on every operation that succeeds
//! and counts every failure by kind; what each may see is:
//! - reader (`stress-reader`): reads each writer's file by path; every read must pass
//!   `records::judge` for that writer (a complete version, or genuine records of several versions
//!   while a rewrite or a kill is in progress, or records of zeros a kill left; never a byte of
//!   anything else).
//! - renamer (`stress-rename`, WFS): each round writes and fsyncs a new version under a temporary
//!   name in one directory, renames it over `cur` there, then renames `cur` into the other
//!   directory, and fsyncs the target after each rename (on WFS an fsync commits the whole
//!   filesystem, the rename with it); then the target holds the fsynced bytes and the old name is
//!   gone. A wfs-server restart between the rename and the fsync loses the uncommitted rename; the
//!   fsync then answers `ServerRestarted` (the vfs, and after a vfs restart the file API, count a
//!   process's name changes as unsynced until its next fsync), so a rename undone behind an Ok
//!   fsync is wrong. After a rename or its fsync failed, once the mount answers again, exactly one
//!   of the round's three names holds the bytes: WFS renames atomically, and a killed WFS server
//!   goes back to its last commit, which may undo this round's renames. FAT
//!   is not used: it has no journal, so a kill in the middle of a rename may leave the file under
//!   neither name (its clusters lost until fsck), and nothing would be left to check.
//! - transaction user (`stress-tx`, WFS): the all-or-none rule of `stress_rules::tx` on three
//!   files written inside one transaction per round, one round in four aborted.
//! - fsync-heavy (`stress-fsync`): small appends each followed by fsync, alternately on a log on
//!   each mount, under the acknowledged-bytes rule of `stress_rules::log`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use libwatos::fs::{ErrorKind, File, OpenOptions, SeekFrom};
use libwatos::transport::KernelTransport;
use libwatos::{println, sys};
use stress_rules::log::{self, Log};
use stress_rules::records::{self, Seen};
use stress_rules::tx::{self, Ending, Held};

use crate::stress::{final_contents, writer_path, Client, WRITERS};

/// Reads each writer's file in turn and judges what it got.
pub fn reader(mut c: Client) {
    let (mut whole, mut mixed, mut empty, mut holed, mut first_bad) = (0u32, 0u32, 0u32, 0u32, None);
    let mut i = 0;
    while !c.over() {
        let name = WRITERS[i % WRITERS.len()];
        i += 1;
        match c.fs.read(&writer_path(name)) {
            Ok(bytes) => {
                c.t.success();
                c.t.bytes += bytes.len() as u64;
                match records::judge(records::owner_of(name), &bytes) {
                    Ok(Seen::Whole { .. }) => whole += 1,
                    Ok(Seen::Mixed { .. }) => mixed += 1,
                    Ok(Seen::Empty) => empty += 1,
                    Ok(Seen::Holes { holes }) => {
                        holed += 1;
                        println!(
                            "stress: {}: {name}: {holes} records of zeros in a read of {} bytes",
                            c.name,
                            bytes.len()
                        );
                    }
                    Err(bad) => {
                        c.t.wrong += 1;
                        first_bad.get_or_insert((name, bad));
                        let at = match bad {
                            records::Bad::Record { index, .. } => index * records::RECORD,
                            records::Bad::Length(_) => 0,
                        };
                        let head = &bytes[at.min(bytes.len())..(at + 16).min(bytes.len())];
                        println!(
                            "stress: {}: {name}: {bad:?} in a read of {} bytes; bytes there {head:02x?}",
                            c.name,
                            bytes.len()
                        );
                    }
                }
            }
            Err(e) => c.failed("read", e.kind()),
        }
    }
    let wrong = c.t.wrong;
    c.finish(
        "reader",
        "reads",
        whole > 0,
        format_args!(
            "every read of the writers' files was their genuine records ({whole} complete versions, {mixed} mixed while rewritten, {holed} with holes a kill left, {empty} empty, {wrong} wrong, first wrong {first_bad:?})"
        ),
    );
}

/// The renamer's two directories on WFS.
const RENAME_DIRS: [&str; 2] = ["/stress-ren-a", "/stress-ren-b"];

/// Polls `f` every 50 ms for up to 3 s while it fails (a server restarting).
fn settled<R>(mut f: impl FnMut() -> libwatos::fs::Result<R>) -> libwatos::fs::Result<R> {
    let mut last = f();
    for _ in 0..60 {
        if last.is_ok() {
            break;
        }
        sys::sleep_ns(50_000_000);
        last = f();
    }
    last
}

/// Whether `path` holds exactly `data`; `Ok(false)` when it is absent or holds something else.
fn holds(c: &Client, path: &str, data: &[u8]) -> libwatos::fs::Result<bool> {
    match c.fs.read(path) {
        Ok(got) => Ok(got == data),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// One rename and its check: the target holds `data` and `from` is gone; after a failed rename,
/// exactly one of the round's `names` holds `data`. True when the file ended up at `to`.
fn rename_checked(c: &mut Client, from: &str, to: &str, names: &[String], data: &[u8], n: &mut Renames) -> bool {
    let durable = c.fs.rename(from, to).and_then(|()| {
        n.done += 1;
        OpenOptions::new().write(true).open(&c.fs, to)?.sync_all()
    });
    match durable {
        Ok(()) => match (holds(c, to, data), c.fs.exists(from)) {
            (Ok(true), Ok(false)) => {
                c.t.success();
                c.t.bytes += data.len() as u64;
                true
            }
            (Ok(false), Ok(true)) => match holds(c, from, data) {
                Ok(true) => {
                    println!("stress: {}: {from} -> {to} undone although its fsync answered Ok", c.name);
                    n.undone += 1;
                    c.t.wrong += 1;
                    false
                }
                Ok(false) => {
                    println!("stress: {}: after {from} -> {to} (fsynced): the bytes are under neither name", c.name);
                    c.t.wrong += 1;
                    false
                }
                Err(e) => {
                    c.failed("check", e.kind());
                    false
                }
            },
            (Ok(there), Ok(left)) => {
                println!(
                    "stress: {}: after {from} -> {to} (fsynced): target right {there}, old name left {left}",
                    c.name
                );
                c.t.wrong += 1;
                false
            }
            (Err(e), _) | (_, Err(e)) => {
                c.failed("check", e.kind());
                false
            }
        },
        Err(e) => {
            c.failed("rename+fsync", e.kind());
            let at = settled(|| names.iter().map(|n| holds(c, n, data)).collect::<libwatos::fs::Result<Vec<bool>>>());
            match at {
                Ok(at) if at.iter().filter(|&&b| b).count() == 1 => names.iter().zip(at).any(|(n, b)| b && n == to),
                Ok(at) => {
                    println!(
                        "stress: {}: after {from} -> {to} failed, the bytes are under {at:?} of {names:?}",
                        c.name
                    );
                    c.t.wrong += 1;
                    false
                }
                Err(e) => {
                    c.failed("check", e.kind());
                    false
                }
            }
        }
    }
}

/// The renamer's counts.
#[derive(Default)]
struct Renames {
    done: u32,
    undone: u32,
}

/// Write `data` to `path` and fsync it.
fn put_synced(c: &Client, path: &str, data: &[u8]) -> libwatos::fs::Result<()> {
    let mut f = c.fs.create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Creates, fsyncs and renames files into place, back and forth between two directories.
pub fn renamer(mut c: Client) {
    let owner = records::owner_of(&c.name);
    let (mut round, mut renames) = (0u32, Renames::default());
    while !c.over() {
        if let Err(e) = RENAME_DIRS.iter().try_for_each(|d| c.fs.create_dir_all(d)) {
            c.failed("mkdir", e.kind());
            continue;
        }
        round += 1;
        let (here, there) =
            if round % 2 == 0 { (RENAME_DIRS[0], RENAME_DIRS[1]) } else { (RENAME_DIRS[1], RENAME_DIRS[0]) };
        let tmp = format!("{here}/tmp-{round}");
        let (cur, moved) = (format!("{here}/cur"), format!("{there}/cur"));
        let data = records::version(owner, round, 1 + (round as u16 % 6));
        if let Err(e) = put_synced(&c, &tmp, &data) {
            c.failed("create", e.kind());
            let _ = c.fs.remove_file(&tmp);
            continue;
        }
        let names = [tmp.clone(), cur.clone(), moved.clone()];
        if rename_checked(&mut c, &tmp, &cur, &names, &data, &mut renames) {
            rename_checked(&mut c, &cur, &moved, &names, &data, &mut renames);
        }
        // Left there by a failed or undone rename.
        let _ = c.fs.remove_file(&tmp);
    }
    let (wrong, done, undone) = (c.t.wrong, renames.done, renames.undone);
    c.finish(
        "renamer",
        "checked renames",
        done > 0,
        format_args!(
            "every rename left the fsynced bytes under exactly one name, the target after a success ({round} rounds, {done} renames done, {undone} of them undone behind an Ok fsync, {wrong} wrong)"
        ),
    );
}

/// The transaction user's files on WFS.
const TX_DIR: &str = "/stress-tx";
const TX_FILES: [&str; 3] = ["/stress-tx/a", "/stress-tx/b", "/stress-tx/c"];

/// What a transaction file holds: `Ok(None)` when absent; an error for contents that are not one
/// whole version of the client (counted as wrong by the caller).
fn tx_held(c: &Client, path: &str, owner: u32) -> libwatos::fs::Result<Result<Held, ()>> {
    match c.fs.read(path) {
        Ok(bytes) => Ok(match records::judge(owner, &bytes) {
            Ok(Seen::Whole { round, count: 4 }) => Ok(Some(round)),
            _ => Err(()),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Ok(None)),
        Err(e) => Err(e),
    }
}

/// Runs round `round`'s transaction: writes every file, then commits or aborts.
fn tx_round(c: &mut Client, round: u32, owner: u32, abort: bool) -> Ending {
    let tx = match c.fs.begin(TX_DIR) {
        Ok(tx) => tx,
        Err(e) => {
            c.failed("begin", e.kind());
            return Ending::NotCommitted;
        }
    };
    let data = records::version(owner, round, 4);
    if let Err(e) = TX_FILES.iter().try_for_each(|p| c.fs.write(p, &data)) {
        // Dropping the transaction aborts it (or a restart already did).
        drop(tx);
        c.failed("write", e.kind());
        return Ending::NotCommitted;
    }
    if abort {
        // A failed abort ended the transaction too: a restarted vfs or filesystem dropped it.
        if let Err(e) = tx.abort() {
            c.failed("abort", e.kind());
        }
        return Ending::NotCommitted;
    }
    match tx.commit() {
        Ok(()) => Ending::Committed,
        Err(e) => {
            let kind = e.kind();
            c.failed("commit", kind);
            match kind {
                ErrorKind::Conflict | ErrorKind::NoSuchTransaction => Ending::NotCommitted,
                _ => Ending::Unknown,
            }
        }
    }
}

/// Begins, writes, commits or aborts, and checks that all or none of the round is visible.
pub fn transactions(mut c: Client) {
    let owner = records::owner_of(&c.name);
    let (mut round, mut endings) = (0u32, [0u32; 3]);
    let mut first_wrong = None;
    // What the files held after the last check; `None` when that check could not read them.
    let mut before: Option<Held> = None;
    while !c.over() {
        if let Err(e) = c.fs.create_dir_all(TX_DIR) {
            c.failed("mkdir", e.kind());
            continue;
        }
        round += 1;
        let failed = c.t.failed;
        // Once the run is over no round aborts, so the client's last success is a commit: under a
        // kill every few hundred ms a whole run can pass without one.
        let abort = round % 4 == 0 && !c.stopping();
        let ending = tx_round(&mut c, round, owner, abort);
        endings[ending as usize] += 1;
        let seen: libwatos::fs::Result<Vec<_>> = settled(|| TX_FILES.iter().map(|p| tx_held(&c, p, owner)).collect());
        match seen {
            Ok(seen) => match seen.into_iter().collect::<Result<Vec<Held>, ()>>() {
                Ok(seen) if tx::allowed(ending, before, round, &seen) => {
                    c.t.bytes += (seen.iter().flatten().count() * 4 * records::RECORD) as u64;
                    if c.t.failed == failed {
                        c.t.success();
                    }
                    before = Some(seen[0]);
                }
                seen => {
                    c.t.wrong += 1;
                    first_wrong.get_or_insert((round, ending, before, seen));
                    before = None;
                }
            },
            Err(e) => {
                c.failed("check", e.kind());
                before = None;
            }
        }
    }
    let wrong = c.t.wrong;
    c.finish(
        "transaction",
        "checked rounds",
        endings[Ending::Committed as usize] > 0,
        format_args!(
            "all or none of each transaction was visible ({round} rounds: {} committed, {} not, {} unknown; {wrong} wrong, first {first_wrong:?}; files at round {before:?})",
            endings[0], endings[1], endings[2]
        ),
    );
    if let Some(held) = before {
        for p in TX_FILES {
            final_contents(p, &held.map_or(Vec::new(), |r| records::version(owner, r, 4)));
        }
    }
}

/// One of the fsync-heavy client's logs.
struct LogFile {
    path: String,
    log: Log,
    file: Option<File<KernelTransport>>,
    next: u32,
}

/// A log past this many bytes is cut back to empty.
const LOG_LIMIT: usize = 8192;

/// One step on one log: cut it back when its tail is unknown or it is too long, else append an
/// entry and fsync. Every step that succeeds reads the file back and checks the rule.
fn log_step(c: &mut Client, l: &mut LogFile, owner: u32) {
    if l.file.is_none() {
        match OpenOptions::new().read(true).write(true).create(true).open(&c.fs, &l.path) {
            Ok(f) => l.file = Some(f),
            Err(e) => return c.failed("open", e.kind()),
        }
    }
    if l.log.tail_unknown() {
        match c.fs.read(&l.path) {
            Ok(got) if l.log.intact(&got) => c.t.bytes += l.log.acked().len() as u64,
            Ok(_) => c.t.wrong += 1,
            Err(e) => return c.failed("read", e.kind()),
        }
    }
    let Some(f) = l.file.as_mut() else { return };
    let cut = l.log.tail_unknown() || l.log.acked().len() > LOG_LIMIT;
    let step = if cut {
        let keep = if l.log.tail_unknown() { l.log.acked().len() } else { 0 };
        f.set_len(keep as u64).and_then(|_| f.sync_all()).map(|_| l.log.cut(keep))
    } else {
        let entry = log::entry(owner, l.next);
        l.next += 1;
        let at = l.log.acked().len() as u64;
        f.seek(SeekFrom::Start(at))
            .and_then(|_| f.write_all(&entry))
            .and_then(|_| f.sync_all())
            .map(|_| l.log.acknowledge(&entry))
    };
    if let Err(e) = step {
        l.log.failed();
        l.file = None;
        return c.failed(if cut { "cut" } else { "append" }, e.kind());
    }
    c.t.success();
    match c.fs.read(&l.path) {
        Ok(got) if l.log.exact(&got) => c.t.bytes += got.len() as u64,
        Ok(_) => c.t.wrong += 1,
        Err(e) => c.failed("read", e.kind()),
    }
}

/// Appends small entries with an fsync after each, alternately to a log on each mount.
pub fn fsync_heavy(mut c: Client) {
    let owner = records::owner_of(&c.name);
    let mut logs = ["/stress-log.bin", "/fat/stress-log.bin"].map(|p| LogFile {
        path: p.into(),
        log: Log::default(),
        file: None,
        next: 0,
    });
    let mut i = 0;
    while !c.over() {
        let l = &mut logs[i % 2];
        log_step(&mut c, l, owner ^ u32::from(l.path.starts_with("/fat")));
        i += 1;
    }
    // A log whose tail is unknown is cut back before the end, so its final contents are known.
    for _ in 0..100 {
        let Some(l) = logs.iter_mut().find(|l| l.log.tail_unknown()) else { break };
        log_step(&mut c, l, owner ^ u32::from(l.path.starts_with("/fat")));
    }
    let wrong = c.t.wrong;
    let lens = logs.each_ref().map(|l| l.log.acked().len());
    c.finish(
        "fsync",
        "fsynced appends and cuts",
        logs.iter().all(|l| l.next > 0),
        format_args!(
            "each log read back as exactly its acknowledged bytes ({} appends, {wrong} wrong; acknowledged {lens:?} bytes)",
            logs.iter().map(|l| l.next).sum::<u32>()
        ),
    );
    for l in logs.iter().filter(|l| !l.log.tail_unknown()) {
        final_contents(&l.path, l.log.acked());
    }
}
