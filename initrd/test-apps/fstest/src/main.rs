//! fstest: file tests through the real storage stack (vfs-server -> wfs-server / fat-server ->
//! blockcache0 / blockcache1 -> virtio-blk), on both mounts, across two boots.
//!
//! Design: every call goes through the generated vfs client stub over kernel IPC. For each mount it
//! writes a scratch file, reads it back and compares checksums, renames it and checks the listing,
//! then removes it. The persistence file `persist.bin` (contents from `service::pattern`, which xtask
//! also uses to check the FAT image with mtools) is written and fsynced if absent and verified
//! byte-exact if present, so the first boot on fresh images writes it and the second reads what the
//! first wrote. Shipped as `fstest-kill` (a separate boot, on copies of the images, because a FAT
//! volume whose server dies mid-write needs fsck) it instead has init kill each server in `VICTIMS`
//! in the middle of a write and checks that what was committed before is intact once init has
//! restarted it. At the end it stops the servers (vfs, then each filesystem server, which unmounts
//! and stops its cache), so the kernel halts once everything has ended. Results are `CHECK` lines.
//! Before the file tests it runs the descriptor-table tests (`fds`: the per-process limit, and
//! children that die holding descriptors, which ship as the on-demand programs `fdhog-exit` and
//! `fdhog-fault`: this binary under those names runs `fds::hog`), two processes around one
//! explicit transaction (`txpeer`: the on-demand programs `txpeer-commit` and `txpeer-abort`) and
//! the application file API tests on both mounts (`api`, through `libwatos::fs()`), then proves that
//! the file API's reads went straight to each filesystem server (`direct`). Shipped as
//! `fstest-powercut` it runs only the power-cut test of the storage daemons (`powercut`); shipped as
//! `fstest-stress` the concurrent-clients stress boot (`stress`, whose clients are this binary under
//! the `stress-*` names: `stress_clients`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::println;
use libwatos::service::{self, pattern};
use libwatos::transport::KernelTransport;
use protocol::api::vfs::{Client, OpenFlags};
use protocol::{Error, Result};

mod api;
mod direct;
mod fds;
mod powercut;
mod stress;
mod stress_clients;
mod txpeer;

libwatos::entry!(main);

/// Size of each mount's persistence file: not a multiple of any block or cluster size.
const PERSIST_LEN: usize = 150_001;

/// FNV-1a, to print and compare contents compactly.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

type Vfs = Client<KernelTransport>;

fn write_file(vfs: &Vfs, path: &str, data: &[u8]) -> Result<()> {
    let fd = vfs.open(path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644)?;
    let mut done = 0;
    while done < data.len() {
        let end = (done + 65536).min(data.len());
        let n = vfs.write(fd, &data[done..end])? as usize;
        if n == 0 {
            return Err(Error::Io { offset: done as u64 });
        }
        done += n;
    }
    vfs.fsync(fd)?;
    vfs.close(fd)
}

fn read_file(vfs: &Vfs, path: &str) -> Result<Vec<u8>> {
    let fd = vfs.open(path, OpenFlags::READ, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = vfs.read(fd, &mut buf)? as usize;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    vfs.close(fd)?;
    Ok(out)
}

fn names(vfs: &Vfs, dir: &str) -> Result<Vec<String>> {
    let mut all = Vec::new();
    let mut cookie = 0;
    loop {
        let page = vfs.readdir(dir, cookie)?;
        let Some(last) = page.last() else { break };
        cookie = last.next_cookie;
        all.extend(page.into_iter().map(|e| e.name));
    }
    Ok(all)
}

/// Write, read back, rename, list and remove a scratch file under `dir` (a mount's root).
fn scratch(vfs: &Vfs, dir: &str, seed: u64) {
    let tag = if dir == "/" { "wfs" } else { "fat" };
    let data = pattern(seed, 70_000);
    let (a, b) = (format!("{dir}scratch.tmp"), format!("{dir}renamed.tmp"));
    let back = write_file(vfs, &a, &data).and_then(|_| read_file(vfs, &a));
    check(
        back.as_ref().is_ok_and(|d| checksum(d) == checksum(&data) && *d == data),
        format_args!("fstest: {tag}: 70,000 bytes written read back with the same checksum ({:#x})", checksum(&data)),
    );
    let renamed = vfs.rename(&a, &b).and_then(|_| names(vfs, dir));
    check(
        renamed.as_ref().is_ok_and(|n| n.iter().any(|x| x == "renamed.tmp") && !n.iter().any(|x| x == "scratch.tmp")),
        format_args!("fstest: {tag}: rename shows in the listing ({:?})", renamed.as_ref().map(|n| n.len())),
    );
    let again = read_file(vfs, &b);
    check(again.is_ok_and(|d| d == data), format_args!("fstest: {tag}: the renamed file has the same bytes"));
    check(
        vfs.unlink(&b).is_ok() && vfs.stat(&b) == Err(Error::NotFound),
        format_args!("fstest: {tag}: unlink removes it"),
    );
}

/// Write the persistence file if it is absent, verify it if present; returns true if it was verified.
fn persist(vfs: &Vfs, dir: &str, seed: u64) -> bool {
    let tag = if dir == "/" { "wfs" } else { "fat" };
    let path = format!("{dir}persist.bin");
    let want = pattern(seed, PERSIST_LEN);
    match vfs.stat(&path) {
        Ok(_) => {
            let got = read_file(vfs, &path);
            check(
                got.as_ref().is_ok_and(|d| *d == want),
                format_args!(
                    "fstest: {tag}: persist.bin from the previous boot reads back byte-exact ({:#x})",
                    checksum(&want)
                ),
            );
            true
        }
        Err(Error::NotFound) => {
            let ok = write_file(vfs, &path, &want).and_then(|_| read_file(vfs, &path)).is_ok_and(|d| d == want);
            check(
                ok,
                format_args!(
                    "fstest: {tag}: persist.bin written and fsynced ({PERSIST_LEN} bytes, {:#x})",
                    checksum(&want)
                ),
            );
            false
        }
        Err(e) => {
            check(false, format_args!("fstest: {tag}: stat persist.bin: {e:?}"));
            false
        }
    }
}

/// Seed of the first victim's committed file; victim `i` uses `KILL_SEED + 16 * i` (xtask checks
/// the FAT ones on the host).
const KILL_SEED: u64 = 0x5eed_1000;

/// The servers killed mid-workload, each with the mount its death affects, in order.
const VICTIMS: [(&str, &str); 5] =
    [("wfs-server", "/"), ("fat-server", "/fat/"), ("blockcache1", "/fat/"), ("blockcache0", "/"), ("vfs-server", "/")];

/// Kill `victim` in the middle of writing a file under `dir` (through init, which restarts it by
/// policy): the file committed before the kill must be intact afterwards, the write in flight must
/// either go on or fail with a clear error, the other mount must not notice, and `dir` must take
/// writes again.
fn restart(vfs: &Vfs, victim: &str, dir: &str, seed: u64) {
    let committed = pattern(seed, 200_000);
    let (kept, inflight, after) =
        (format!("{dir}committed-{victim}.bin"), format!("{dir}inflight.bin"), format!("{dir}after-{victim}.bin"));
    let ok = write_file(vfs, &kept, &committed).is_ok();
    check(ok, format_args!("fstest: kill {victim}: {kept} written and fsynced before the kill"));
    // The file API reads it directly, under a grant the kill may take away.
    let api = libwatos::fs().ok();
    check(api.is_some(), format_args!("fstest: kill {victim}: the file API connects to the vfs server"));
    let held = api.as_ref().and_then(|fs| direct::hold(fs, &kept, &committed, victim));
    let partial = pattern(seed + 1, 128 * 1024);
    let fd = vfs.open(&inflight, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644);
    let first = fd.and_then(|fd| vfs.write(fd, &partial[..65536]));
    check(first == Ok(65536), format_args!("fstest: kill {victim}: first half of {inflight} written (not committed)"));
    let killed = service::supervisor().and_then(|s| s.kill_task(victim));
    check(killed.is_ok(), format_args!("fstest: kill {victim}: init killed it on request ({killed:?})"));
    let second = fd.and_then(|fd| vfs.write(fd, &partial[65536..]));
    let clear =
        matches!(second, Ok(65536) | Err(Error::ServerRestarted | Error::ServerDead | Error::BadFileDescriptor));
    check(clear, format_args!("fstest: kill {victim}: the write in flight continued or failed clearly ({second:?})"));
    if let Ok(fd) = fd {
        let _ = vfs.close(fd);
    }
    // init restarts it after its backoff; until then calls fail with ServerDead.
    let mut back = None;
    for attempt in 0..500 {
        match read_file(vfs, &kept) {
            Ok(d) => {
                back = Some((d, attempt));
                break;
            }
            Err(_) => libwatos::sys::sleep_ns(10_000_000),
        }
    }
    check(
        back.as_ref().is_some_and(|(d, _)| *d == committed),
        format_args!(
            "fstest: kill {victim}: {kept} intact after the restart ({:#x}, {:?} retries)",
            checksum(&committed),
            back.as_ref().map(|b| b.1)
        ),
    );
    if let Some(fs) = &api {
        direct::held_across_kill(fs, held, &committed, victim);
    }
    let (other, seed_other) =
        if dir == "/" { ("/fat/persist.bin", 0x5eed_0002) } else { ("/persist.bin", 0x5eed_0001) };
    let untouched = read_file(vfs, other);
    check(
        untouched.is_ok_and(|d| d == pattern(seed_other, PERSIST_LEN)),
        format_args!("fstest: kill {victim}: {other} on the other mount unaffected"),
    );
    let fresh = pattern(seed + 2, 40_000);
    // The first fsync on the mount after the restart reports `ServerRestarted` once: the file this
    // process was creating when the server died may have gone with it. Written again, it is durable.
    let again = match write_file(vfs, &after, &fresh) {
        Err(Error::ServerRestarted) => write_file(vfs, &after, &fresh),
        r => r,
    }
    .and_then(|_| read_file(vfs, &after));
    check(again.is_ok_and(|d| d == fresh), format_args!("fstest: kill {victim}: {dir} takes writes again"));
}

/// Kills in a row `repeated_kills` asks for: more than init's give-up limit (3 faults in 5 s).
const REPEATED_KILLS: u32 = 5;

/// init gives up on a service that faults more than 3 times in 5 s. Kills ordered through it are
/// no faults (this app has the manifest's CONTROL flag), so killing fat-server five times in a row,
/// each time waiting until /fat serves again, must leave it supervised, serving, and no fault
/// counted.
fn repeated_kills(vfs: &Vfs) {
    let init = match service::supervisor() {
        Ok(init) => init,
        Err(e) => {
            check(false, format_args!("fstest: repeated kills: no supervisor ({e:?})"));
            return;
        }
    };
    let status = || init.list_tasks().ok().and_then(|l| l.into_iter().find(|t| t.name == "fat-server"));
    let before = status();
    let (mut killed, mut back) = (0, 0);
    for _ in 0..REPEATED_KILLS {
        killed += u32::from(init.kill_task("fat-server").is_ok());
        // Back when a read through the vfs reaches the new fat server.
        back += u32::from((0..500).any(|_| {
            let ok = read_file(vfs, "/fat/persist.bin").is_ok();
            if !ok {
                libwatos::sys::sleep_ns(10_000_000);
            }
            ok
        }));
    }
    let after = status();
    let kept = match (&before, &after) {
        (Some(b), Some(a)) => {
            a.id.is_some() && !a.given_up && a.faults == b.faults && a.restarts == b.restarts + REPEATED_KILLS
        }
        _ => false,
    };
    check(
        killed == REPEATED_KILLS && back == REPEATED_KILLS && kept,
        format_args!(
            "fstest: authority: {killed} kills of fat-server in a row on request, back {back} times; init did not give up and counted no fault ({after:?})"
        ),
    );
}

fn main() -> i64 {
    let name = service::own_name();
    let t = KernelTransport::new();
    let vfs = match t.lookup("vfs-server") {
        Ok(id) => Client::new(t, id),
        Err(e) => {
            println!("{name}: no vfs-server: {e:?}");
            return 1;
        }
    };
    if name.starts_with("fdhog-") {
        return fds::hog(&vfs, &name);
    }
    if name.starts_with("txpeer-") {
        return txpeer::peer(&vfs, &name);
    }
    if name.starts_with("stress-") {
        return stress::client(&name);
    }
    let root = names(&vfs, "/");
    println!("fstest: / holds {root:?}");
    check(
        root.as_ref().is_ok_and(|n| n.iter().any(|x| x == "fat")),
        format_args!("fstest: the WFS root lists the /fat mount point"),
    );
    if name == "fstest-powercut" {
        powercut::run(&vfs);
        // The harness cuts the power now; nothing may be written back by an orderly stop.
        loop {
            libwatos::sys::sleep_ns(1_000_000_000);
        }
    }
    if name == "fstest-stress" {
        stress::run();
        println!("fstest: stress done");
    } else if service::own_name() == "fstest-kill" {
        for (i, (victim, dir)) in VICTIMS.into_iter().enumerate() {
            restart(&vfs, victim, dir, KILL_SEED + 16 * i as u64);
        }
        repeated_kills(&vfs);
        // The last victim was the vfs server: its successor must close a dead process's files too.
        fds::deaths(&vfs, &["fdhog-exit"]);
        println!("fstest: kill tests done");
    } else {
        fds::limits(&vfs);
        fds::deaths(&vfs, &["fdhog-exit", "fdhog-fault"]);
        txpeer::run(&vfs);
        match libwatos::fs() {
            Ok(fs) => {
                api::run(&fs, "/", "wfs", 0x5eed_0a01);
                api::run(&fs, "/fat/", "fat", 0x5eed_0a02);
                direct::run(&fs, "/", "wfs-server", "wfs", 0x5eed_0d01);
                direct::run(&fs, "/fat/", "fat-server", "fat", 0x5eed_0d02);
            }
            Err(e) => {
                check(false, format_args!("fstest: the file API connects to the vfs server ({e:?})"));
            }
        }
        let mut verified = 0;
        for (dir, seed) in [("/", 0x5eed_0001u64), ("/fat/", 0x5eed_0002)] {
            scratch(&vfs, dir, seed + 100);
            verified += persist(&vfs, dir, seed) as usize;
        }
        println!(
            "fstest: {}",
            if verified == 2 {
                "boot with existing files: both verified"
            } else {
                "first boot: persistence files written"
            }
        );
    }
    for server in ["vfs-server", "wfs-server", "fat-server"] {
        service::stop(server);
    }
    println!("fstest: done; servers asked to stop");
    0
}
