//! Two processes and an explicit transaction in the real system: the on-demand programs
//! `txpeer-commit` and `txpeer-abort` (this same binary under other names) are process A, `fstest`
//! is process B.
//!
//! Design: A begins a transaction on `/`, writes its file there, reads it back (its own changes are
//! visible to it), finds that `fsync` inside the transaction answers `Busy`, and signals that it
//! is ready by creating a file on `/fat` (outside its transaction's mount). B then writes and
//! fsyncs a file of its own on `/` (it works on the mount outside A's transaction) and does not see
//! A's file. B creates the go file; A checks that it does not see B's file (it reads the state its
//! transaction began from), commits or aborts, writes its verdict to a file on `/fat` (only the
//! test app's own `CHECK` lines count, so fstest turns it into one) and exits. B then requires A's
//! verdict to pass, A's file to be there with A's bytes after a commit and absent after an abort,
//! and its own file intact either way.
//! The files are polled for (the two processes have no call history, which a notification would
//! need); both sides have deadlines, so a failure ends in FAIL lines, never a hang.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::protocol::api::vfs::{Client, OpenFlags};
use libwatos::protocol::{Error, Result};
use libwatos::transport::{to_kernel, KernelTransport};
use libwatos::{println, service, sys};

type Vfs = Client<KernelTransport>;

/// The peers fstest starts, in order.
pub const PEERS: [&str; 2] = ["txpeer-commit", "txpeer-abort"];
/// B's file, written and fsynced while A's transaction is open.
const OURS: &str = "/txpeer-b.txt";
const OUR_DATA: &[u8] = b"written and fsynced by fstest while the peer's transaction was open";
/// Polls of 10 ms either side waits at most.
const POLLS: u32 = 3000;

fn theirs(name: &str) -> String {
    format!("/{name}.txt")
}

fn their_data(name: &str) -> Vec<u8> {
    format!("written by {name} inside its transaction").into_bytes()
}

fn ready(name: &str) -> String {
    format!("/fat/{name}.ready")
}

fn go(name: &str) -> String {
    format!("/fat/{name}.go")
}

fn verdict(name: &str) -> String {
    format!("/fat/{name}.verdict")
}

fn put(vfs: &Vfs, path: &str, data: &[u8], fsync: bool) -> Result<()> {
    let fd = vfs.open(path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644)?;
    let r = vfs.write(fd, data).and_then(|_| if fsync { vfs.fsync(fd) } else { Ok(()) });
    let closed = vfs.close(fd);
    r.and(closed)
}

fn get(vfs: &Vfs, path: &str) -> Result<Vec<u8>> {
    let fd = vfs.open(path, OpenFlags::READ, 0)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    let r = loop {
        match vfs.read(fd, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n as usize]),
            Err(e) => break Err(e),
        }
    };
    let closed = vfs.close(fd);
    r.and(closed).map(|_| out)
}

/// Polls until `path` exists (at most `POLLS` times).
fn appears(vfs: &Vfs, path: &str) -> bool {
    for _ in 0..POLLS {
        if vfs.stat(path).is_ok() {
            return true;
        }
        sys::sleep_ns(10_000_000);
    }
    false
}

fn remove_files(vfs: &Vfs, name: &str) {
    for p in [theirs(name), ready(name), go(name), verdict(name), String::from(OURS)] {
        let _ = vfs.unlink(&p);
    }
}

/// B's side: one run per peer.
pub fn run(vfs: &Vfs) {
    for name in PEERS {
        remove_files(vfs, name);
        let id = service::supervisor().and_then(|s| s.spawn_task(name)).map(|id| to_kernel(id).unwrap_or(0));
        let is_ready = id.is_ok() && appears(vfs, &ready(name));
        let ours = put(vfs, OURS, OUR_DATA, true);
        let unseen = vfs.stat(&theirs(name)).map(|_| ());
        check(
            is_ready && ours.is_ok() && unseen == Err(Error::NotFound),
            format_args!(
                "fstest: tx peer: while {name} ({id:?}) has its transaction open on /, we write and fsync {OURS} there ({ours:?}) and do not see its file ({unseen:?})"
            ),
        );
        let signalled = put(vfs, &go(name), b"go", false);
        let mut polls = 0;
        while id.as_ref().is_ok_and(|&id| sys::task_info(id).is_ok()) && polls < POLLS {
            sys::sleep_ns(10_000_000);
            polls += 1;
        }
        let said = get(vfs, &verdict(name)).map(String::from_utf8);
        let said = match said {
            Ok(Ok(s)) => s,
            other => format!("FAIL no verdict ({other:?})"),
        };
        check(said.starts_with("PASS "), format_args!("fstest: tx peer: {name} says: {said}"));
        let got = get(vfs, &theirs(name));
        let want = if name.ends_with("commit") { Ok(their_data(name)) } else { Err(Error::NotFound) };
        let mine = get(vfs, OURS);
        check(
            signalled.is_ok() && got == want && mine.as_deref() == Ok(OUR_DATA),
            format_args!(
                "fstest: tx peer: after {name} ended its transaction its file is {} ({:?}) and ours is intact ({:?})",
                if want.is_ok() { "there with its bytes" } else { "gone" },
                got.map(|d| d.len()),
                mine.map(|d| d.len())
            ),
        );
        remove_files(vfs, name);
    }
}

/// A's side (`txpeer-commit`, `txpeer-abort`).
pub fn peer(vfs: &Vfs, name: &str) -> i64 {
    let path = theirs(name);
    let tx = vfs.begin("/");
    let wrote = tx.and_then(|_| put(vfs, &path, &their_data(name), false));
    let own = get(vfs, &path);
    let sync = vfs.open(&path, OpenFlags::WRITE, 0).and_then(|fd| {
        let r = vfs.fsync(fd);
        let _ = vfs.close(fd);
        r
    });
    let signalled = put(vfs, &ready(name), b"ready", false);
    let went = appears(vfs, &go(name));
    let other = vfs.stat(OURS).map(|_| ());
    let end = match tx {
        Ok(tx) if name.ends_with("commit") => vfs.commit(tx),
        Ok(tx) => vfs.abort(tx),
        Err(e) => Err(e),
    };
    let ok = wrote.is_ok()
        && own.as_deref() == Ok(&their_data(name)[..])
        && sync == Err(Error::Busy)
        && signalled.is_ok()
        && went
        && other == Err(Error::NotFound)
        && end.is_ok();
    let said = format!(
        "{} it sees its own file ({:?} bytes) but not fstest's ({other:?}), fsync inside its transaction answers {sync:?}, and it ends it ({end:?})",
        if ok { "PASS" } else { "FAIL" },
        own.map(|d| d.len())
    );
    println!("{name}: {said}");
    let _ = put(vfs, &verdict(name), said.as_bytes(), false);
    0
}
