//! Whole-stack robustness: malformed messages, bad leases, dead and restarted servers.

mod common;

use common::*;
use protocol::api::vfs::OpenFlags as O;
use protocol::api::{blockcache, filesystem, vfs as vfs_api};
use protocol::idl::{decode_reply_parts, encode_request};
use protocol::ipc::{Lease, Transport, MAX_LEASES, MAX_MESSAGE};
use protocol::Error;

/// Send raw bytes to `server` and decode the reply as a `Result<()>`-shaped error. A filesystem
/// server gets them from the vfs, the one caller it serves every operation (`FsService`).
fn raw(s: &watos_stack::Stack, server: &str, msg: &[u8], leases: &mut [Lease<'_>]) -> Result<Error, Error> {
    let mut reply = [0u8; MAX_MESSAGE];
    let from = if ["wfs", "fat", "memfs"].contains(&server) { s.ipc.as_task(s.id("vfs")?) } else { s.ipc.clone() };
    let n = from.call(s.id(server)?, msg, leases, &mut reply)?;
    match decode_reply_parts::<()>(&reply[..n], &[]) {
        Err(e) => Ok(e),
        Ok(()) => Err(Error::InvalidArgument),
    }
}

#[test]
fn malformed_messages_get_errors_and_every_server_keeps_serving() {
    let (s, app) = stack();
    put(&app.vfs, "/f", b"still here").unwrap();
    let servers = [
        ("vfs", vfs_api::VERSION),
        ("wfs", filesystem::VERSION),
        ("fat", filesystem::VERSION),
        ("memfs", filesystem::VERSION),
        ("wfs-cache", blockcache::VERSION),
        ("fat-cache", blockcache::VERSION),
        ("supervisor", protocol::api::supervisor::VERSION),
    ];
    let mut bad_version = [0u8; 16];
    let n = encode_request(&mut bad_version, 99, 1, &()).unwrap();
    let garbage: [&[u8]; 5] = [&[], &[0xff; 7], &[1, 0xff, 0xff, 0xff, 0xff, 0x0f], &bad_version[..n], &[1, 200]];
    for (server, version) in servers {
        for msg in garbage {
            let e = raw(&s, server, msg, &mut []).unwrap();
            assert!(matches!(e, Error::Malformed | Error::NotSupported), "{server} {msg:?}: {e:?}");
        }
        // Trailing bytes after a valid request are rejected too.
        let mut msg = [0u8; 16];
        let n = encode_request(&mut msg, version, 1, &()).unwrap();
        msg[n] = 0x42;
        let e = raw(&s, server, &msg[..n + 1], &mut []).unwrap();
        assert!(matches!(e, Error::Malformed | Error::InvalidArgument), "{server}: {e:?}");
        // Oversize messages and too many leases never reach the server.
        let mut reply = [0u8; 64];
        let id = s.id(server).unwrap();
        assert_eq!(s.ipc.call(id, &[0u8; MAX_MESSAGE + 1], &mut [], &mut reply), Err(Error::TooBig));
        let b = [0u8; 1];
        let mut many: Vec<Lease<'_>> = (0..=MAX_LEASES).map(|_| Lease::Read(&b)).collect();
        assert_eq!(s.ipc.call(id, &[0], &mut many, &mut reply), Err(Error::TooBig));
    }
    assert_eq!(get(&app.vfs, "/f").unwrap(), b"still here");
    assert_eq!(app.vfs.stat("/fat").unwrap().kind, protocol::fs::FileType::Directory);
}

#[test]
fn bad_leases_get_errors_and_the_servers_keep_serving() {
    let (s, app) = stack();
    let c = &app.vfs;
    put(c, "/f", b"0123456789").unwrap();
    let fd = c.open("/f", O::READ, 0).unwrap();
    let mut msg = [0u8; 64];
    // vfs read without a lease, and with a read-only lease where it must write.
    let n = vfs_api::Request::Read { fd }.encode(&mut msg).unwrap();
    assert_eq!(raw(&s, "vfs", &msg[..n], &mut []), Ok(Error::InvalidArgument));
    let src = [0u8; 8];
    assert_eq!(raw(&s, "vfs", &msg[..n], &mut [Lease::Read(&src)]), Ok(Error::InvalidArgument));
    // A filesystem read bigger than the bulk limit.
    let n = filesystem::Request::Read { node: 1, offset: 0 }.encode(&mut msg).unwrap();
    let mut huge = vec![0u8; filesystem::MAX_BULK + 512];
    assert_eq!(raw(&s, "wfs", &msg[..n], &mut [Lease::Write(&mut huge)]), Ok(Error::TooBig));
    // Block cache: partial sectors, runs that do not match the lease, sectors past the end.
    let n = blockcache::Request::Read { sector: 0 }.encode(&mut msg).unwrap();
    let mut odd = [0u8; 100];
    assert_eq!(raw(&s, "wfs-cache", &msg[..n], &mut [Lease::Write(&mut odd)]), Ok(Error::InvalidArgument));
    let runs = vec![blockcache::Run { sector: 0, sectors: 2 }];
    let n = blockcache::Request::ReadVectored { runs }.encode(&mut msg).unwrap();
    let mut one = [0u8; 512];
    assert_eq!(raw(&s, "wfs-cache", &msg[..n], &mut [Lease::Write(&mut one)]), Ok(Error::InvalidArgument));
    let cache = s.cache_client("wfs-cache").unwrap();
    let end = cache.sector_count().unwrap();
    assert_eq!(cache.read(end, &mut one), Err(Error::InvalidArgument));
    assert_eq!(cache.write(u64::MAX, &one), Err(Error::InvalidArgument));
    // Everyone still serves.
    let mut buf = [0u8; 10];
    assert_eq!(c.read(fd, &mut buf), Ok(10));
    assert_eq!(&buf, b"0123456789");
    cache.read(0, &mut one).unwrap();
    assert!(cache.stats().unwrap().reads > 0);
}

#[test]
fn filesystem_restart_reopens_files_and_reports_unprovable_writes() {
    let (s, app) = stack();
    let c = &app.vfs;
    let data = pattern(50_000, 9);
    put(c, "/keep", &data).unwrap();
    let fd = c.open("/keep", O::READ | O::WRITE, 0).unwrap();
    c.fsync(fd).unwrap();
    let before = s.id("wfs").unwrap();
    let after = s.restart("wfs").unwrap();
    assert_eq!(after.generation, before.generation + 1);
    // A read is idempotent at the filesystem level: retried on the new server, transparently.
    let mut buf = vec![0u8; 50_000];
    assert_eq!(c.read(fd, &mut buf), Ok(50_000));
    assert_eq!(buf, data);
    assert!(c.stats().unwrap().fs_reopens >= 1, "the vfs re-opened the file by node id");
    // A write cannot be proven complete: the app hears about the restart, then retries.
    s.restart("wfs").unwrap();
    assert_eq!(c.write(fd, b"tail"), Err(Error::ServerRestarted));
    assert_eq!(c.write(fd, b"tail"), Ok(4));
    c.fsync(fd).unwrap();
    c.close(fd).unwrap();
    let mut expect = data.clone();
    expect.extend_from_slice(b"tail");
    assert_eq!(get(c, "/keep").unwrap(), expect);
}

#[test]
fn an_fsync_after_a_filesystem_restart_reports_the_name_changes_it_lost() {
    for (mount, server) in [("", "wfs"), ("/fat", "fat")] {
        let (s, app) = stack();
        let other = s.app("other").unwrap();
        let c = &app.vfs;
        put(c, &format!("{mount}/old"), b"bytes").unwrap();
        let fd = c.open(&format!("{mount}/keep"), O::READ | O::WRITE | O::CREATE, 0o644).unwrap();
        c.fsync(fd).unwrap();
        let ofd = other.vfs.open(&format!("{mount}/other"), O::READ | O::WRITE | O::CREATE, 0o644).unwrap();
        other.vfs.fsync(ofd).unwrap();
        // The rename is acknowledged, then the server restarts before anything made it durable.
        c.rename(&format!("{mount}/old"), &format!("{mount}/new")).unwrap();
        s.restart(server).unwrap();
        // Another process's call meets the restart first (a lookup, retried transparently).
        other.vfs.stat(&format!("{mount}/other")).unwrap();
        assert_eq!(c.fsync(fd), Err(Error::ServerRestarted), "{mount}: the rename may be gone");
        if server == "wfs" {
            // WFS lost it with its uncommitted group (FAT had written it through to its cache).
            assert_eq!(c.stat(&format!("{mount}/new")), Err(Error::NotFound));
            c.rename(&format!("{mount}/old"), &format!("{mount}/new")).unwrap();
            assert_eq!(c.fsync(fd), Ok(()), "reported once; the redone rename is durable now");
        } else {
            c.fsync(fd).unwrap();
        }
        s.restart(server).unwrap();
        assert_eq!(get(c, &format!("{mount}/new")).unwrap(), b"bytes", "{mount}");
        // A process with no changes there has nothing to hear about.
        other.vfs.fsync(ofd).unwrap();
    }
}

#[test]
fn vfs_restart_loses_descriptors_and_reopen_by_path_works() {
    let (s, app) = stack();
    let c = &app.vfs;
    put(c, "/doc", b"persistent").unwrap();
    let fd = c.open("/doc", O::READ, 0).unwrap();
    c.fsync(fd).unwrap();
    s.restart("vfs").unwrap();
    assert_eq!(c.read(fd, &mut [0u8; 4]), Err(Error::ServerRestarted), "read moves the offset: not retried");
    assert_eq!(c.read(fd, &mut [0u8; 4]), Err(Error::BadFileDescriptor), "the new vfs has no such descriptor");
    assert_eq!(c.stat("/doc").unwrap().size, 10, "idempotent calls retry transparently");
    assert_eq!(get(c, "/doc").unwrap(), b"persistent");
}

#[test]
fn cache_restart_is_reported_at_the_next_flush_and_committed_data_survives() {
    let (s, app) = stack();
    let c = &app.vfs;
    put(c, "/early", b"committed before").unwrap();
    let fd = c.open("/early", O::READ, 0).unwrap();
    c.fsync(fd).unwrap();
    put(c, "/late", b"written after").unwrap();
    s.restart("wfs-cache").unwrap();
    // The restarted cache lost its dirty blocks; the filesystem's device replays them, so the
    // restart is invisible to the filesystem and to the app.
    assert_eq!(c.fsync(fd), Ok(()));
    assert_eq!(get(c, "/early").unwrap(), b"committed before");
    assert_eq!(get(c, "/late").unwrap(), b"written after");
    use protocol::fs::FileSystem;
    let mut durable = s.durable_wfs().unwrap();
    let root = durable.root();
    assert!(durable.lookup(root, "early").is_ok());
    assert!(durable.lookup(root, "late").is_ok(), "the fsync committed the replayed blocks too");
}

#[test]
fn dead_server_fails_cleanly_and_the_supervisor_restarts_it() {
    let (s, app) = stack();
    let c = &app.vfs;
    put(c, "/fat/a.txt", b"fat data").unwrap();
    let fd = c.open("/fat/a.txt", O::READ, 0).unwrap();
    c.fsync(fd).unwrap();
    c.close(fd).unwrap();
    let fat = s.id("fat").unwrap();
    s.ipc.kill(fat.index).unwrap();
    assert_eq!(c.open("/fat/a.txt", O::READ, 0), Err(Error::ServerDead));
    assert_eq!(c.readdir("/fat", 0), Err(Error::ServerDead));
    put(c, "/root-still-works", b"1").unwrap();
    let sup = s.supervisor(&app).unwrap();
    let tasks = sup.list_tasks().unwrap();
    let fat_task = tasks.iter().find(|t| t.name == "fat").unwrap();
    assert!(fat_task.service && fat_task.id.is_none());
    let new = sup.restart_task("fat").unwrap();
    assert!(new.generation > fat.generation);
    assert_eq!(get(c, "/fat/a.txt").unwrap(), b"fat data", "the vfs reconnected to the new fat server");
    let tasks = sup.list_tasks().unwrap();
    assert_eq!(tasks.iter().find(|t| t.name == "fat").unwrap().id, Some(new));
    assert_eq!(tasks.iter().find(|t| t.name == "fat").unwrap().restarts, 1);
    // A kill through the supervisor brings the service back at once, as init does.
    sup.kill_task("fat").unwrap();
    let first = get(c, "/fat/a.txt");
    assert!(matches!(first, Err(Error::ServerRestarted)) || first.as_deref() == Ok(b"fat data"), "{first:?}");
    assert_eq!(get(c, "/fat/a.txt").unwrap(), b"fat data");
    assert_eq!(sup.kill_task("app"), Err(Error::NotPermitted), "apps are not services");
}

#[test]
fn opening_a_cached_path_after_a_filesystem_restart_is_transparent() {
    // Path resolution comes from the vfs cache, so opening the file is the first call the restarted
    // filesystem server gets. Opening a node on a server that never saw the open is safe to redo, so
    // no reader learns of the restart.
    let (s, app) = stack();
    let c = &app.vfs;
    for (server, path) in [("wfs", "/cached"), ("fat", "/fat/cached")] {
        put(c, path, b"fsynced").unwrap();
        let fd = c.open(path, O::READ, 0).unwrap();
        c.fsync(fd).unwrap();
        c.close(fd).unwrap();
        assert_eq!(get(c, path).unwrap(), b"fsynced");
        for _ in 0..3 {
            s.restart(server).unwrap();
            assert_eq!(get(c, path), Ok(b"fsynced".to_vec()), "{server}: read after a restart");
            s.restart(server).unwrap();
            assert_eq!(c.stat(path).map(|st| st.size), Ok(7), "{server}: stat after a restart");
            // Closing is the first call the restarted server gets: its open died with the old one.
            let fd = c.open(path, O::READ, 0).unwrap();
            s.restart(server).unwrap();
            assert_eq!(c.close(fd), Ok(()), "{server}: close after a restart");
        }
    }
}
