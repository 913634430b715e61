//! Descriptor tables in the real system: the per-process limit and lowest-free numbering, and a
//! process that dies holding descriptors (by exiting, or by faulting) has them closed.
//!
//! Design: the limit test opens one file until the vfs refuses, in this process. The death tests
//! need a second process, which only the supervisor can start: `fstest` asks init for the manifest's
//! on-demand programs `fdhog-exit` and `fdhog-fault` (this same binary under other names). Each
//! begins a transaction on `/`, writes a file in it ([`HOG_TX_FILE`]), opens [`HOG_FILES`]
//! descriptors on each mount, then waits for
//! the file [`GO_PATH`] to appear (a notification would need a call history between the two, which
//! the kernel requires and they do not have); `fstest` sees them counted in the vfs statistics,
//! creates it, and the hog exits without closing anything or faults (`ud2`). Meanwhile `fstest`
//! checks that it works on `/` outside the hog's transaction (its write and fsync there succeed)
//! and does not see the hog's file. init collects the death and reports it to the vfs server
//! (`process_exited`), so the open-file count must come back down and the transaction be aborted:
//! the hog's file never appears, `fstest`'s write stays.
//! `fstest-kill` runs the exit case once more after the vfs server was killed and restarted: the
//! new vfs server must take init's reports too.

use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::protocol::api::vfs::{Client, OpenFlags, VfsStats};
use libwatos::protocol::Error;
use libwatos::transport::to_kernel;
use libwatos::transport::KernelTransport;
use libwatos::{println, service, sys};

type Vfs = Client<KernelTransport>;

/// Descriptors each hog opens per mount.
pub const HOG_FILES: usize = 24;
/// Created by `fstest` when the hog may die now. On FAT, so that the hog's polls of it never depend
/// on the transaction it holds on `/`.
const GO_PATH: &str = "/fat/fdhog.go";
/// The file each hog writes inside its transaction (never committed).
const HOG_TX_FILE: &str = "/fdhog-tx.txt";
/// The hog's own deadline in polls of 10 ms (it never waits forever for `GO_PATH`).
const DEADLINE_POLLS: u32 = 6000;
/// The files the hogs open (made and made durable by `fstest` first, so nothing the hogs' aborted
/// transactions roll back concerns them).
const HOG_PATHS: [&str; 2] = ["/hog.tmp", "/fat/hog.tmp"];
/// Descriptor numbers (vfs `MAX_FDS`, `FIRST_FD`).
const MAX_FDS: u32 = 1024;
const FIRST_FD: u32 = 3;

/// Polls the vfs counters every 10 ms (at most `tries` times) until `done` holds; returns the last
/// counters seen.
fn wait_for(vfs: &Vfs, tries: u32, done: impl Fn(&VfsStats) -> bool) -> Option<VfsStats> {
    let mut last = None;
    for _ in 0..tries {
        last = vfs.stats().ok();
        if last.as_ref().is_some_and(&done) {
            break;
        }
        sys::sleep_ns(10_000_000);
    }
    last
}

/// The per-process limit and the numbering of descriptors, in this process.
pub fn limits(vfs: &Vfs) {
    let path = "/fds.tmp";
    let made =
        vfs.open(path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644).and_then(|fd| vfs.close(fd));
    let first = made.and_then(|_| vfs.open(path, OpenFlags::READ, 0));
    let std = [vfs.fstat(0).err(), vfs.fstat(1).err(), vfs.fstat(2).err(), vfs.close(2).err()];
    check(
        first == Ok(FIRST_FD) && std.iter().all(|e| *e == Some(Error::BadFileDescriptor)),
        format_args!(
            "fstest: fds: the first open gets descriptor 3; 0-2 are reserved and never handed out ({first:?})"
        ),
    );
    let mut fds: Vec<u32> = first.into_iter().collect();
    let refused = loop {
        match vfs.open(path, OpenFlags::READ, 0) {
            Ok(fd) if fds.len() < MAX_FDS as usize => fds.push(fd),
            Ok(fd) => break Ok(fd),
            Err(e) => break Err(e),
        }
    };
    let expected: Vec<u32> = (FIRST_FD..MAX_FDS).collect();
    check(
        fds == expected && refused == Err(Error::TooManyOpenFiles),
        format_args!(
            "fstest: fds: {} opens get descriptors 3..=1023 in order, the next fails with EMFILE ({refused:?})",
            fds.len()
        ),
    );
    let closed = [500, 7, 9].map(|fd| vfs.close(fd));
    let reuse =
        [vfs.open(path, OpenFlags::READ, 0), vfs.open(path, OpenFlags::READ, 0), vfs.open(path, OpenFlags::READ, 0)];
    check(
        closed.iter().all(Result::is_ok) && reuse == [Ok(7), Ok(9), Ok(500)],
        format_args!("fstest: fds: after closing 500, 7 and 9 the next opens get the lowest free: {reuse:?}"),
    );
    let all_closed = fds.iter().all(|&fd| vfs.close(fd).is_ok());
    let after = vfs.stats().map(|s| s.open_files);
    check(
        all_closed && after == Ok(0) && vfs.unlink(path).is_ok(),
        format_args!("fstest: fds: closing all {} leaves no open file ({after:?})", fds.len()),
    );
}

/// Whether the hog that is task `id` is still alive.
fn alive(id: u64) -> bool {
    sys::task_info(id).is_ok()
}

/// Has init start `name`, waits until it holds its descriptors and transaction, lets it die, and
/// checks that the vfs closed and aborted everything.
fn one_hog(vfs: &Vfs, name: &str) {
    let before = vfs.stats().unwrap_or_default();
    let id = service::supervisor().and_then(|s| s.spawn_task(name)).map(|id| to_kernel(id).unwrap_or(0));
    check(id.is_ok(), format_args!("fstest: fds: init started {name} on request ({id:?})"));
    let Ok(id) = id else { return };
    let held = 2 * HOG_FILES as u64;
    let holding =
        wait_for(vfs, 3000, |s| s.open_files == before.open_files + held && s.tx_begins == before.tx_begins + 1);
    check(
        holding.is_some_and(|s| s.open_files == before.open_files + held && s.tx_begins == before.tx_begins + 1),
        format_args!(
            "fstest: fds: {name} holds {held} descriptors and a transaction (vfs open files {:?})",
            holding.map(|s| s.open_files)
        ),
    );
    isolation(vfs, name);
    // Without it the hog still ends at its deadline, and the checks below still judge it.
    let _ = vfs.open(GO_PATH, OpenFlags::WRITE | OpenFlags::CREATE, 0o644).and_then(|fd| vfs.close(fd));
    let mut polls = 0;
    while alive(id) && polls < 3000 {
        sys::sleep_ns(10_000_000);
        polls += 1;
    }
    let _ = vfs.unlink(GO_PATH);
    let after = wait_for(vfs, 3000, |s| s.open_files == before.open_files && s.tx_aborts == before.tx_aborts + 1);
    let how = if name == "fdhog-fault" { "faulted" } else { "exited without closing anything" };
    let gone = vfs.stat(HOG_TX_FILE).map(|_| ());
    let ours = vfs.stat("/hog.tmp").map(|s| s.size);
    check(
        !alive(id)
            && after.is_some_and(|s| {
                s.open_files == before.open_files && s.closes >= before.closes + held && s.tx_aborts == before.tx_aborts + 1
            })
            && gone == Err(Error::NotFound)
            && ours == Ok(1),
        format_args!(
            "fstest: fds: {name} {how}; the vfs closed its {held} descriptors and aborted its transaction (open files {:?}), only its changes are gone (its file: {gone:?}, our write: {ours:?})",
            after.map(|s| s.open_files)
        ),
    );
}

/// While hog `name` (another process) holds a transaction on `/`, this process works there outside
/// it: its write and its fsync succeed (a real barrier, without the hog's changes), it does not see
/// the hog's uncommitted file, and FAT (another mount) takes writes and fsyncs as usual.
fn isolation(vfs: &Vfs, name: &str) {
    let (write, fsync) = match vfs.open("/hog.tmp", OpenFlags::WRITE | OpenFlags::TRUNCATE, 0) {
        Ok(fd) => {
            let r = (vfs.write(fd, b"x"), vfs.fsync(fd));
            let _ = vfs.close(fd);
            r
        }
        Err(e) => (Err(e), Err(e)),
    };
    let unseen = vfs.stat(HOG_TX_FILE).map(|_| ());
    let fat = vfs.open("/fat/hog.tmp", OpenFlags::WRITE, 0).and_then(|fd| {
        let r = vfs.write(fd, b"x").and_then(|_| vfs.fsync(fd));
        let _ = vfs.close(fd);
        r
    });
    check(
        write == Ok(1) && fsync.is_ok() && unseen == Err(Error::NotFound) && fat.is_ok(),
        format_args!(
            "fstest: tx isolation: while {name} holds a transaction on / with a file of its own in it, our write and fsync there succeed ({write:?}, {fsync:?}), its file is not visible to us ({unseen:?}), FAT is unaffected ({fat:?})"
        ),
    );
}

/// The death tests, one per hog in `hogs` (`fdhog-exit` exits, `fdhog-fault` faults).
pub fn deaths(vfs: &Vfs, hogs: &[&str]) {
    let made = HOG_PATHS.iter().all(|p| {
        vfs.open(p, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644)
            .and_then(|fd| vfs.fsync(fd).and(vfs.close(fd)))
            .is_ok()
    });
    check(made, format_args!("fstest: fds: the hogs' files exist and are durable"));
    for name in hogs {
        one_hog(vfs, name);
    }
    let tx = vfs.begin("/").and_then(|tx| vfs.abort(tx));
    check(tx.is_ok(), format_args!("fstest: fds: / takes a new transaction after the hogs' were aborted ({tx:?})"));
    for p in HOG_PATHS {
        let _ = vfs.unlink(p);
    }
}

/// The hog's side (`fdhog-exit`, `fdhog-fault`): begin, write a file in the transaction, open,
/// wait for `GO_PATH`, die holding it all.
pub fn hog(vfs: &Vfs, name: &str) -> i64 {
    let tx = vfs.begin("/");
    let wrote = vfs
        .open(HOG_TX_FILE, OpenFlags::WRITE | OpenFlags::CREATE, 0o644)
        .and_then(|fd| vfs.write(fd, b"uncommitted").and(vfs.close(fd)));
    let mut held = 0;
    for path in HOG_PATHS {
        for _ in 0..HOG_FILES {
            held += vfs.open(path, OpenFlags::READ, 0).is_ok() as usize;
        }
    }
    println!("{name}: holding {held} descriptors and transaction {tx:?} (its file: {wrote:?})");
    for _ in 0..DEADLINE_POLLS {
        if vfs.stat(GO_PATH).is_ok() {
            break;
        }
        sys::sleep_ns(10_000_000);
    }
    if name == "fdhog-fault" {
        // Safety: a deliberate invalid-opcode fault; the kernel kills this process, which is the test.
        unsafe { core::arch::asm!("ud2") };
    }
    0
}
