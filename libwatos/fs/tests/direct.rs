//! Direct reads over the whole host stack: after a positioned read asks the vfs for a grant, reads
//! go from the app to the filesystem server (WFS, FAT, memfs) in one call, byte-exact; the vfs path
//! takes over whenever the direct one cannot answer (filesystem or vfs restarts, pending
//! asynchronous writes, open transactions), and a grant is no use to anyone but its client.

mod common;

use common::*;
use protocol::api::filesystem;
use protocol::api::grants::DirectStats;
use protocol::local::LocalIpc;
use watos_fs::{Done, File, OpenOptions, SeekFrom};

/// The filesystem server behind each of [`MOUNTS`].
const SERVERS: [&str; 3] = ["wfs", "fat", "memfs"];

fn direct_stats(s: &watos_stack::Stack, server: &str) -> DirectStats {
    filesystem::Client::new(s.ipc.clone(), s.id(server).unwrap()).direct_stats().unwrap()
}

/// Read `len` bytes at `at` the way qbench's cached4k does: a seek and a read.
fn pread(f: &mut File<LocalIpc>, at: u64, len: usize) -> Vec<u8> {
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut buf = vec![0u8; len];
    let n = f.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn offsets(len: usize, n: usize) -> Vec<u64> {
    let mut rng = prng::XorShift64(7);
    (0..n).map(|_| rng.below(len as u64)).collect()
}

#[test]
fn positioned_reads_go_straight_to_the_filesystem_server_byte_exact_on_every_mount() {
    let (s, fs) = stack();
    for (m, server) in MOUNTS.into_iter().zip(SERVERS) {
        let path = format!("{m}/data");
        let data = pattern(300_000, 3);
        fs.write(&path, &data).unwrap();
        let mut f = fs.open(&path).unwrap();
        let (before, vfs_before) = (fs.direct_reads(), fs.vfs_stats().unwrap());
        for at in offsets(data.len(), 40) {
            let end = (at as usize + 4096).min(data.len());
            assert_eq!(pread(&mut f, at, 4096), &data[at as usize..end], "{m}: 4 KiB at {at}");
        }
        // Sequential reads after a grant go direct too.
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        assert_eq!(all, data, "{m}: the whole file, read directly");
        assert!(fs.direct_reads() - before >= 40, "{m}: every positioned read was direct");
        let vfs_after = fs.vfs_stats().unwrap();
        assert_eq!(vfs_after.reads, vfs_before.reads, "{m}: the vfs read nothing");
        let st = direct_stats(&s, server);
        assert!(st.reads >= 40 && st.grants == 1 && st.live == 1, "{m}: {st:?}");
        drop(f);
        assert_eq!(direct_stats(&s, server).live, 0, "{m}: the close revoked the grant");
    }
}

#[test]
fn a_direct_read_sees_every_write_made_through_the_vfs() {
    let (_s, fs) = stack();
    for m in MOUNTS {
        let path = format!("{m}/rw");
        let mut f = OpenOptions::new().read(true).write(true).create(true).open(&fs, &path).unwrap();
        f.write_all(&pattern(20_000, 1)).unwrap();
        assert_eq!(pread(&mut f, 100, 50), &pattern(20_000, 1)[100..150]);
        let direct = fs.direct_reads();
        f.seek(SeekFrom::Start(100)).unwrap();
        f.write_all(b"fresh bytes").unwrap();
        let mut other = fs.open(&path).unwrap();
        assert_eq!(pread(&mut other, 95, 20)[5..16], *b"fresh bytes", "{m}: another file's view");
        assert_eq!(pread(&mut f, 100, 11), b"fresh bytes", "{m}: the writer's own view");
        f.set_len(50).unwrap();
        assert_eq!(pread(&mut f, 40, 100).len(), 10, "{m}: the truncation is seen");
        assert!(fs.direct_reads() >= direct + 3, "{m}: those reads were direct");
    }
}

#[test]
fn a_filesystem_server_restart_falls_back_to_the_vfs_then_grants_again() {
    let (s, fs) = stack();
    // memfs keeps nothing across a restart, so only the disk filesystems.
    for (m, server) in [("", "wfs"), ("/fat", "fat")] {
        let path = format!("{m}/restart");
        let data = pattern(100_000, 9);
        fs.write(&path, &data).unwrap();
        let mut f = fs.open(&path).unwrap();
        f.sync_all().unwrap();
        assert_eq!(pread(&mut f, 1000, 4096), &data[1000..5096]);
        let direct = fs.direct_reads();
        s.restart(server).unwrap();
        // The grant died with the server: this read goes through the vfs, which re-opens the file.
        assert_eq!(pread(&mut f, 7000, 4096), &data[7000..11096], "{m}: read after the restart");
        assert_eq!(fs.direct_reads(), direct, "{m}: the direct read failed and the vfs answered");
        assert_eq!(pread(&mut f, 50_000, 4096), &data[50_000..54_096], "{m}");
        assert_eq!(fs.direct_reads(), direct + 1, "{m}: a new grant, and direct again");
        assert_eq!(direct_stats(&s, server).grants, 1, "{m}: granted by the new instance");
    }
}

#[test]
fn a_vfs_restart_re_opens_the_file_and_grants_again() {
    let (s, fs) = stack();
    let data = pattern(64_000, 4);
    fs.write("/v", &data).unwrap();
    let mut f = fs.open("/v").unwrap();
    assert_eq!(pread(&mut f, 10, 100), &data[10..110]);
    let old = direct_stats(&s, "wfs");
    s.restart("vfs").unwrap();
    // Until this connection notices the restart, the grant (for a file it did open) still reads.
    assert_eq!(pread(&mut f, 20_000, 4096), &data[20_000..24_096]);
    assert_eq!(f.metadata().unwrap().len(), 64_000, "noticed here: the file re-opens");
    assert_eq!(pread(&mut f, 30_000, 4096), &data[30_000..34_096]);
    let new = direct_stats(&s, "wfs");
    assert_eq!(new.grants, old.grants + 1, "the re-opened file asked the new vfs for a grant");
    assert_eq!(new.live, 1, "the old vfs's grant was dropped when the new one granted");
    drop(f);
    assert_eq!(direct_stats(&s, "wfs").live, 0);
}

#[test]
fn a_grant_serves_its_client_only_and_dies_with_the_process() {
    let (s, fs) = stack();
    fs.write("/secret", b"only for the granted").unwrap();
    let app = s.app("reader").unwrap();
    let vfs = &app.vfs;
    let fd = vfs.open("/secret", protocol::api::vfs::OpenFlags::READ, 0).unwrap();
    let grant = vfs.direct_read(fd).unwrap();
    assert_eq!(grant.server, s.id("wfs").unwrap());
    let mut buf = [0u8; 64];
    let mine = filesystem::Client::new(s.ipc.as_task(app.id), grant.server);
    assert_eq!(mine.direct_read(grant.handle, 0, &mut buf), Ok(20));
    assert_eq!(&buf[..20], b"only for the granted");
    let thief = s.app("thief").unwrap();
    let theirs = filesystem::Client::new(s.ipc.as_task(thief.id), grant.server);
    assert_eq!(theirs.direct_read(grant.handle, 0, &mut buf), Err(protocol::Error::PermissionDenied));
    assert_eq!(theirs.direct_read(grant.handle + 1, 0, &mut buf), Err(protocol::Error::BadFileDescriptor));
    assert_eq!(theirs.grant(thief.id, 1), Err(protocol::Error::PermissionDenied), "only the vfs grants");
    assert_eq!(theirs.revoke(grant.handle), Err(protocol::Error::PermissionDenied), "only the vfs revokes");
    // The edge an app has to the server for its direct reads gives it nothing else but statistics.
    let root = theirs.root();
    assert_eq!(root, Err(protocol::Error::PermissionDenied));
    assert_eq!(theirs.getattr(1), Err(protocol::Error::PermissionDenied));
    assert_eq!(theirs.write(1, 0, b"x"), Err(protocol::Error::PermissionDenied));
    assert_eq!(theirs.unlink(1, "secret"), Err(protocol::Error::PermissionDenied));
    assert!(theirs.daemon_stats().is_ok() && theirs.direct_stats().is_ok(), "statistics are open");
    let wo = vfs.open("/secret", protocol::api::vfs::OpenFlags::WRITE, 0).unwrap();
    assert_eq!(vfs.direct_read(wo), Err(protocol::Error::BadFileDescriptor), "no grant without read access");
    s.crash_app(&app).unwrap();
    assert_eq!(mine.direct_read(grant.handle, 0, &mut buf), Err(protocol::Error::BadFileDescriptor), "revoked");
}

#[test]
fn pending_asynchronous_writes_and_transactions_keep_reads_on_the_vfs() {
    let (_s, fs) = stack();
    fs.write("/q", &pattern(10_000, 2)).unwrap();
    let mut f = OpenOptions::new().read(true).write(true).open(&fs, "/q").unwrap();
    pread(&mut f, 0, 10);
    let direct = fs.direct_reads();
    let mut q = fs.queue();
    q.submit_write(&f, 0, b"queued".to_vec());
    pread(&mut f, 100, 10);
    assert_eq!(fs.direct_reads(), direct, "an asynchronous write is outstanding");
    assert_eq!(q.complete()[0].result, Ok(Done::Written(6)));
    assert_eq!(pread(&mut f, 0, 6), b"queued");
    assert_eq!(fs.direct_reads(), direct + 1, "direct again once it finished");
    let tx = fs.begin("/").unwrap();
    pread(&mut f, 200, 10);
    assert_eq!(fs.direct_reads(), direct + 1, "a transaction is open");
    tx.commit().unwrap();
    pread(&mut f, 200, 10);
    assert_eq!(fs.direct_reads(), direct + 2);
    fs.set_direct_reads(false);
    pread(&mut f, 300, 10);
    assert_eq!(fs.direct_reads(), direct + 2, "switched off");
}

#[test]
fn whole_file_reads_never_ask_for_a_grant() {
    let (s, fs) = stack();
    fs.write("/whole", &pattern(200_000, 5)).unwrap();
    assert_eq!(fs.read("/whole").unwrap(), pattern(200_000, 5));
    assert_eq!(direct_stats(&s, "wfs").grants, 0, "sequential reads from the start stay on the vfs");
    assert_eq!(fs.direct_reads(), 0);
}
