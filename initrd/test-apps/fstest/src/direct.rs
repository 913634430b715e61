//! Direct reads on the real system: once a file is read at a position of its own choosing, the file
//! API reads it straight from the filesystem server under a grant the vfs gave, one IPC hop.
//!
//! Design: per mount, random 4 KiB reads of a pattern file (a seek and a read each, qbench's
//! cached4k) must be byte-exact and every one of them direct (the file API's count), the
//! filesystem server must have served them (its `direct_stats`), and closing the file must revoke
//! the grant there, and the server must refuse this app everything else (its manifest edge is for
//! direct reads and statistics only). The harness counts the lines (`DIRECT_CHECKS` in xtask). The kill boot
//! holds a directly read file across each server kill (`held_across_kill`): it must read the same
//! bytes afterwards, the vfs answering while the grant is dead.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::fs::{File, Fs, Result, SeekFrom};
use libwatos::protocol::api::filesystem;
use libwatos::protocol::api::grants::DirectStats;
use libwatos::service::pattern;
use libwatos::transport::KernelTransport;

type Api = Fs<KernelTransport>;

const LEN: usize = 256 * 1024;
const READS: u64 = 64;
const BLOCK: usize = 4096;

/// The direct-read counters of the filesystem server `server`.
pub fn stats(server: &str) -> protocol::Result<DirectStats> {
    let t = KernelTransport::new();
    let id = t.lookup(server)?;
    filesystem::Client::new(t, id).direct_stats()
}

/// Seek to `at` and read up to `len` bytes there.
fn pread(f: &mut File<KernelTransport>, at: u64, len: usize) -> Result<Vec<u8>> {
    f.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; len];
    let n = f.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// The direct-read checks on the mount at `dir`, served by `server`.
pub fn run(fs: &Api, dir: &str, server: &str, tag: &str, seed: u64) {
    let path = format!("{dir}direct.bin");
    let data = pattern(seed, LEN);
    let before = stats(server);
    let direct_before = fs.direct_reads();
    let mut exact = true;
    let read = fs.write(&path, &data).and_then(|_| fs.open(&path)).map(|mut f| {
        let mut rng = prng::XorShift64(seed);
        for _ in 0..READS {
            let at = rng.below((LEN - BLOCK) as u64);
            exact &= pread(&mut f, at, BLOCK).is_ok_and(|got| got == data[at as usize..at as usize + BLOCK]);
        }
        f
    });
    let direct = fs.direct_reads() - direct_before;
    check(
        read.is_ok() && exact && direct == READS,
        format_args!("fstest: direct: {tag}: {READS} random 4 KiB reads byte-exact, {direct} of them direct"),
    );
    let during = stats(server);
    let served = match (&before, &during) {
        (Ok(b), Ok(d)) => d.reads - b.reads,
        _ => 0,
    };
    check(
        served >= READS && during.as_ref().is_ok_and(|d| d.live > before.as_ref().map_or(0, |b| b.live)),
        format_args!(
            "fstest: direct: {tag}: {server} served them under a live grant ({served} direct reads; {during:?})"
        ),
    );
    drop(read);
    let after = stats(server);
    check(
        after.as_ref().is_ok_and(|a| before.as_ref().is_ok_and(|b| a.live == b.live && a.revokes > b.revokes)),
        format_args!("fstest: direct: {tag}: closing the file revoked its grant at {server} ({after:?})"),
    );
    let _ = fs.remove_file(&path);
    refused(server, tag);
}

/// The filesystem server serves this app no operation but the open ones, and no grant it has not
/// been given.
fn refused(server: &str, tag: &str) {
    let t = KernelTransport::new();
    let Ok(id) = t.lookup(server) else {
        check(false, format_args!("fstest: direct: {tag}: {server} is running"));
        return;
    };
    let c = filesystem::Client::new(t, id);
    let root = c.root();
    let grant = c.grant(libwatos::transport::from_kernel(libwatos::sys::task_id()), 1);
    let forged = c.direct_read(u64::MAX, 0, &mut [0u8; 16]);
    check(
        root == Err(protocol::Error::PermissionDenied)
            && grant == Err(protocol::Error::PermissionDenied)
            && forged == Err(protocol::Error::BadFileDescriptor),
        format_args!("fstest: direct: {tag}: {server} refuses this app all but direct reads and statistics (root {root:?}, a grant to itself {grant:?}, an unknown handle {forged:?})"),
    );
}

/// Open `path` (holding `data`) and read it once at a position, so it holds a grant; `None` if
/// that failed or was not direct (the failed check says so).
pub fn hold(fs: &Api, path: &str, data: &[u8], victim: &str) -> Option<File<KernelTransport>> {
    let before = fs.direct_reads();
    let f = fs.open(path).ok().and_then(|mut f| {
        let ok = pread(&mut f, 1000, BLOCK).is_ok_and(|got| got == data[1000..1000 + BLOCK]);
        ok.then_some(f)
    });
    let direct = fs.direct_reads() > before;
    check(
        f.is_some() && direct,
        format_args!("fstest: kill {victim}: {path} read directly before the kill (direct: {direct})"),
    );
    f
}

/// The file [`hold`] opened reads the same bytes after `victim` was killed and restarted.
pub fn held_across_kill(fs: &Api, f: Option<File<KernelTransport>>, data: &[u8], victim: &str) {
    let before = fs.direct_reads();
    let mut exact = f.is_some();
    if let Some(mut f) = f {
        for at in [0usize, 70_000, 150_000, data.len() - BLOCK] {
            exact &= pread(&mut f, at as u64, BLOCK).is_ok_and(|got| got == data[at..at + BLOCK]);
        }
    }
    let direct = fs.direct_reads() - before;
    check(
        exact,
        format_args!("fstest: kill {victim}: the file read directly before the kill reads the same bytes after it ({direct} of 4 reads direct)"),
    );
}
