//! Round trips of every interface through the generated stubs, and property tests of the decoders.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::{blockcache, filesystem, supervisor, vfs};
use crate::fs::{FileType, NewNode, Stat, Timespec};
use crate::idl::decode_reply_parts;
use crate::ipc::{Incoming, Lease, Server, TaskId, Transport, MAX_INDIRECT, MAX_MESSAGE};
use crate::local::LocalIpc;
use crate::{Error, Result};

fn stat(ino: u64) -> Stat {
    Stat {
        ino,
        kind: FileType::File,
        mode: 0o644,
        nlink: 1,
        uid: 0,
        gid: 0,
        size: 3,
        blocks: 1,
        rdev: 0,
        atime: Timespec::ZERO,
        mtime: Timespec::ZERO,
        ctime: Timespec::ZERO,
        crtime: Timespec::ZERO,
    }
}

/// A vfs handler that answers a few operations and records the caller.
struct FakeVfs {
    last_caller: Option<TaskId>,
}

impl vfs::Handler for FakeVfs {
    fn open(&mut self, cx: &mut Incoming<'_, '_>, path: &str, flags: vfs::OpenFlags, _: u32) -> Result<u32> {
        self.last_caller = Some(cx.caller());
        if path == "/missing" {
            return Err(Error::NotFound);
        }
        Ok(3 + flags.0)
    }
    fn close(&mut self, _: &mut Incoming<'_, '_>, _: u32) -> Result<()> {
        Ok(())
    }
    fn read(&mut self, cx: &mut Incoming<'_, '_>, fd: u32) -> Result<u32> {
        let len = cx.leases.len(0)?;
        cx.leases.write(0, 0, &vec![fd as u8; len])?;
        Ok(len as u32)
    }
    fn write(&mut self, cx: &mut Incoming<'_, '_>, _: u32) -> Result<u32> {
        Ok(cx.leases.len(0)? as u32)
    }
    fn seek(&mut self, _: &mut Incoming<'_, '_>, _: u32, _: vfs::Whence, offset: i64) -> Result<u64> {
        u64::try_from(offset).map_err(|_| Error::InvalidArgument)
    }
    fn stat(&mut self, _: &mut Incoming<'_, '_>, _: &str) -> Result<Stat> {
        Ok(stat(7))
    }
    fn fstat(&mut self, _: &mut Incoming<'_, '_>, fd: u32) -> Result<Stat> {
        Ok(stat(fd as u64))
    }
    fn readdir(&mut self, _: &mut Incoming<'_, '_>, _: &str, _: u64) -> Result<Vec<crate::fs::DirEntry>> {
        let mut v: Vec<_> = (0..400)
            .map(|i| crate::fs::DirEntry {
                name: alloc::format!("entry-{i:04}"),
                ino: i,
                kind: FileType::File,
                next_cookie: i + 1,
            })
            .collect();
        filesystem::fit_entries(&mut v)?;
        Ok(v)
    }
    fn mkdir(&mut self, _: &mut Incoming<'_, '_>, _: &str, _: u32) -> Result<()> {
        Err(Error::AlreadyExists)
    }
    fn unlink(&mut self, _: &mut Incoming<'_, '_>, _: &str) -> Result<()> {
        Ok(())
    }
    fn rmdir(&mut self, _: &mut Incoming<'_, '_>, _: &str) -> Result<()> {
        Ok(())
    }
    fn rename(&mut self, _: &mut Incoming<'_, '_>, from: &str, to: &str) -> Result<()> {
        if from == to {
            Ok(())
        } else {
            Err(Error::CrossDevice)
        }
    }
    fn fsync(&mut self, _: &mut Incoming<'_, '_>, _: u32) -> Result<()> {
        Ok(())
    }
    fn truncate(&mut self, _: &mut Incoming<'_, '_>, _: u32, _: u64) -> Result<()> {
        Ok(())
    }
    fn dup(&mut self, _: &mut Incoming<'_, '_>, fd: u32) -> Result<u32> {
        Ok(fd + 1)
    }
    fn exit(&mut self, _: &mut Incoming<'_, '_>) -> Result<()> {
        Ok(())
    }
    fn batch_read(&mut self, cx: &mut Incoming<'_, '_>, reads: Vec<vfs::ReadReq>) -> Result<Vec<u32>> {
        let mut at = 0;
        let mut out = Vec::new();
        for r in reads {
            cx.leases.write(0, at, &vec![r.fd as u8; r.len as usize])?;
            at += r.len as usize;
            out.push(r.len);
        }
        Ok(out)
    }
    fn begin(&mut self, _: &mut Incoming<'_, '_>, _: &str) -> Result<u64> {
        Err(Error::NotSupported)
    }
    fn commit(&mut self, _: &mut Incoming<'_, '_>, _: u64) -> Result<()> {
        Err(Error::NoSuchTransaction)
    }
    fn abort(&mut self, _: &mut Incoming<'_, '_>, _: u64) -> Result<()> {
        Err(Error::NoSuchTransaction)
    }
    fn stats(&mut self, _: &mut Incoming<'_, '_>) -> Result<vfs::VfsStats> {
        Ok(vfs::VfsStats { opens: 1, ..Default::default() })
    }
    fn lstat(&mut self, _: &mut Incoming<'_, '_>, _: &str) -> Result<Stat> {
        Ok(stat(8))
    }
    fn symlink(&mut self, _: &mut Incoming<'_, '_>, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    fn readlink(&mut self, _: &mut Incoming<'_, '_>, path: &str) -> Result<String> {
        Ok(path.into())
    }
    fn link(&mut self, _: &mut Incoming<'_, '_>, _: &str, _: &str) -> Result<()> {
        Err(Error::CrossDevice)
    }
    fn statfs(&mut self, _: &mut Incoming<'_, '_>, _: &str) -> Result<crate::fs::FsStats> {
        Ok(crate::fs::FsStats { block_size: 4096, ..Default::default() })
    }
    fn process_exited(&mut self, _: &mut Incoming<'_, '_>, pid: TaskId) -> Result<u32> {
        Ok(pid.index.into())
    }
    fn aio_submit(
        &mut self,
        cx: &mut Incoming<'_, '_>,
        queue: u32,
        notify: u64,
        reqs: Vec<vfs::AioReq>,
    ) -> Result<u64> {
        let data: usize = reqs.iter().filter(|r| r.write).map(|r| r.len as usize).sum();
        if cx.leases.len(0)? < data {
            return Err(Error::InvalidArgument);
        }
        Ok(notify + u64::from(queue) + reqs.len() as u64)
    }
    fn aio_reap(&mut self, cx: &mut Incoming<'_, '_>, _queue: u32, max: u32) -> Result<Vec<vfs::AioDone>> {
        cx.leases.write(0, 0, b"reaped")?;
        Ok((0..u64::from(max))
            .map(|t| vfs::AioDone {
                ticket: u64::MAX - t,
                result: if t % 2 == 0 { Ok(u32::MAX) } else { Err(Error::Corrupt { block: u64::MAX }) },
            })
            .collect())
    }
    fn aio_stats(&mut self, _: &mut Incoming<'_, '_>) -> Result<vfs::AioStats> {
        Ok(vfs::AioStats { held_max: u64::MAX, ..Default::default() })
    }
    fn aio_close(&mut self, _: &mut Incoming<'_, '_>, queue: u32) -> Result<()> {
        if queue == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
    fn snapshot_create(&mut self, _: &mut Incoming<'_, '_>, _: &str, name: &str) -> Result<()> {
        if name.is_empty() {
            Err(Error::InvalidArgument)
        } else {
            Ok(())
        }
    }
    fn snapshot_list(
        &mut self,
        _: &mut Incoming<'_, '_>,
        _: &str,
        start: u32,
    ) -> Result<Vec<filesystem::SnapshotInfo>> {
        let mut v: Vec<_> = (start..300)
            .map(|i| filesystem::SnapshotInfo {
                name: alloc::format!("snapshot-{i:04}"),
                txid: i.into(),
                created: Timespec::ZERO,
            })
            .collect();
        filesystem::fit_entries(&mut v)?;
        Ok(v)
    }
    fn snapshot_delete(&mut self, _: &mut Incoming<'_, '_>, _: &str, _: &str) -> Result<()> {
        Err(Error::NotFound)
    }
    fn scrub(&mut self, _: &mut Incoming<'_, '_>, path: &str) -> Result<filesystem::ScrubSummary> {
        if path == "/fat" {
            return Err(Error::NotSupported);
        }
        Ok(filesystem::ScrubSummary { data_blocks_checked: 5, ..Default::default() })
    }
    fn openat(&mut self, _: &mut Incoming<'_, '_>, dir: u32, _: &str, _: vfs::OpenFlags, _: u32) -> Result<u32> {
        Ok(dir + 1)
    }
    fn statat(&mut self, _: &mut Incoming<'_, '_>, dir: u32, _: &str, _: bool) -> Result<Stat> {
        Ok(stat(dir.into()))
    }
    fn makeat(&mut self, _: &mut Incoming<'_, '_>, _: u32, _: &str, node: crate::fs::NewNode) -> Result<Stat> {
        Ok(stat(node.uid.into()))
    }
    fn unlinkat(&mut self, _: &mut Incoming<'_, '_>, _: u32, _: &str, _: bool) -> Result<()> {
        Err(Error::NotFound)
    }
    fn renameat(&mut self, _: &mut Incoming<'_, '_>, _: u32, _: &str, _: u32, _: &str, _: bool) -> Result<()> {
        Err(Error::AlreadyExists)
    }
    fn linkat(&mut self, _: &mut Incoming<'_, '_>, _: u32, _: &str, _: u32, _: &str) -> Result<()> {
        Err(Error::CrossDevice)
    }
    fn setattrat(
        &mut self,
        _: &mut Incoming<'_, '_>,
        _: u32,
        _: &str,
        attr: crate::fs::SetAttr,
        _: bool,
    ) -> Result<Stat> {
        Ok(stat(attr.size.unwrap_or(0)))
    }
    fn readlinkat(&mut self, _: &mut Incoming<'_, '_>, _: u32, path: &str) -> Result<String> {
        Ok(path.into())
    }
    fn readdirat(&mut self, _: &mut Incoming<'_, '_>, _: u32, _: &str, _: u64) -> Result<Vec<crate::fs::DirEntry>> {
        Ok(Vec::new())
    }
    fn pwrite(&mut self, cx: &mut Incoming<'_, '_>, _: u32, offset: u64) -> Result<u32> {
        Ok(cx.leases.len(0)? as u32 + offset as u32)
    }
    fn timing(&mut self, _: &mut Incoming<'_, '_>) -> Result<vfs::VfsTiming> {
        Ok(super::stats_tests::fullest_timing())
    }

    fn direct_read(&mut self, _: &mut Incoming<'_, '_>, _: u32) -> Result<super::grants::DirectGrant> {
        Err(Error::NotSupported)
    }
}

/// The largest asynchronous submit and reap travel: 64 requests out of line, 128 completions with
/// every number at its longest varint in the reply area.
#[test]
fn largest_aio_submit_and_reap_fit() {
    let (_ipc, c) = fake_vfs();
    let reqs: Vec<vfs::AioReq> = (0..vfs::MAX_AIO_SUBMIT)
        .map(|i| vfs::AioReq {
            fd: u32::MAX,
            offset: u64::MAX,
            len: if i % 2 == 0 { 2 } else { u32::MAX },
            write: i % 2 == 0,
        })
        .collect();
    let mut data = alloc::vec![0u8; 1];
    assert_eq!(c.aio_submit(u32::MAX, 1 << 5, reqs.clone(), &data), Err(Error::InvalidArgument));
    data.resize(reqs.iter().filter(|r| r.write).map(|r| r.len as usize).sum(), 0);
    assert_eq!(c.aio_submit(7, 1 << 5, reqs, &data), Ok(32 + 7 + 64));
    let mut buf = [0u8; 8];
    let done = c.aio_reap(u32::MAX, 128, &mut buf).unwrap();
    assert_eq!((done.len(), done[1].result, &buf[..6]), (128, Err(Error::Corrupt { block: u64::MAX }), &b"reaped"[..]));
    assert_eq!(c.aio_stats().unwrap().held_max, u64::MAX);
    assert_eq!((c.aio_close(1), c.aio_close(0)), (Ok(()), Err(Error::NotFound)));
}

pub(super) fn fake_vfs() -> (LocalIpc, vfs::Client<LocalIpc>) {
    let ipc = LocalIpc::new();
    let id = ipc.spawn("vfs", Box::new(|_| Box::new(vfs::Service(FakeVfs { last_caller: None })))).unwrap();
    let client = vfs::Client::new(ipc.clone(), id);
    (ipc, client)
}

#[test]
fn stub_calls_round_trip() {
    let (_ipc, c) = fake_vfs();
    assert_eq!(c.open("/a", vfs::OpenFlags::READ, 0), Ok(4));
    assert_eq!(c.open("/missing", vfs::OpenFlags::READ, 0), Err(Error::NotFound));
    let mut buf = [0u8; 10];
    assert_eq!(c.read(9, &mut buf), Ok(10));
    assert_eq!(buf, [9; 10]);
    assert_eq!(c.write(3, b"hello"), Ok(5));
    assert_eq!(c.rename("/a", "/b"), Err(Error::CrossDevice));
    assert_eq!(c.fstat(12).map(|s| s.ino), Ok(12));
    assert_eq!(c.seek(3, vfs::Whence::Start, -1), Err(Error::InvalidArgument));
    let listing = c.readdir("/", 0).unwrap();
    assert!(listing.len() > 100 && listing.len() < 400, "a page is cut to fit one reply area");
    let reads = vec![vfs::ReadReq { fd: 1, offset: 0, len: 3 }, vfs::ReadReq { fd: 2, offset: 0, len: 2 }];
    let mut out = [0u8; 5];
    assert_eq!(c.batch_read(reads, &mut out), Ok(vec![3, 2]));
    assert_eq!(out, [1, 1, 1, 2, 2]);
    assert_eq!(c.stats().map(|s| s.opens), Ok(1));
    // The `*at` operations (40..=49) carry every argument across.
    assert_eq!(c.openat(5, "a", vfs::OpenFlags::READ, 0), Ok(6));
    assert_eq!(c.statat(9, "", false).map(|s| s.ino), Ok(9));
    let mut node = crate::fs::NewNode::new(FileType::Fifo, 0o644);
    node.uid = 77;
    assert_eq!(c.makeat(3, "p", node).map(|s| s.ino), Ok(77));
    assert_eq!(c.unlinkat(3, "x", true), Err(Error::NotFound));
    assert_eq!(c.renameat(3, "a", 4, "b", true), Err(Error::AlreadyExists));
    assert_eq!(c.linkat(3, "a", 4, "b"), Err(Error::CrossDevice));
    let attr = crate::fs::SetAttr { size: Some(11), ..Default::default() };
    assert_eq!(c.setattrat(3, "", attr, false).map(|s| s.ino), Ok(11));
    assert_eq!(c.readlinkat(3, "l").as_deref(), Ok("l"));
    assert_eq!(c.readdirat(3, "", 0), Ok(Vec::new()));
    assert_eq!(c.pwrite(3, 2, b"abc"), Ok(5));
}

#[test]
fn snapshot_and_scrub_calls_round_trip_and_page() {
    let (_ipc, c) = fake_vfs();
    assert_eq!(c.snapshot_create("/", "a"), Ok(()));
    assert_eq!(c.snapshot_create("/", ""), Err(Error::InvalidArgument));
    assert_eq!(c.snapshot_delete("/", "a"), Err(Error::NotFound));
    assert_eq!(c.scrub("/").map(|r| r.data_blocks_checked), Ok(5));
    assert_eq!(c.scrub("/fat"), Err(Error::NotSupported));
    // A long list comes in pages cut to one reply area; following them yields every entry once.
    let mut all = Vec::new();
    loop {
        let page = c.snapshot_list("/", all.len() as u32).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() < 300, "a page is cut to fit one reply area");
        all.extend(page);
    }
    assert_eq!(all.len(), 300);
    assert!(all.iter().enumerate().all(|(i, s)| s.txid == i as u64));
}

#[test]
fn long_requests_and_replies_travel_out_of_line() {
    let (_ipc, c) = fake_vfs();
    // Too long to be inline: the body goes in a lease, and the echoed reply comes back in the area.
    let long = String::from("/") + &"x".repeat(3 * MAX_MESSAGE);
    assert_eq!(c.readlink(&long).as_deref(), Ok(long.as_str()));
    assert_eq!(c.stat(&long).map(|s| s.ino), Ok(7));
    let mut buf = [0u8; 3];
    assert_eq!(c.read(2, &mut buf), Ok(3), "declared leases keep their indices next to the extra ones");
    assert_eq!(buf, [2; 3]);
    // Larger than any out-of-line body: refused by the stub before anything is sent.
    let huge = "x".repeat(MAX_INDIRECT);
    assert_eq!(c.stat(&huge), Err(Error::TooBig));
}

#[test]
fn wrong_leases_get_errors_and_the_server_keeps_serving() {
    let (ipc, c) = fake_vfs();
    let id = c.channel.server();
    let mut msg = [0u8; 64];
    let n = vfs::Request::Read { fd: 3 }.encode(&mut msg).unwrap();
    let mut reply = [0u8; 64];
    // No lease at all, then a Read lease where the operation needs to write.
    let len = ipc.call(id, &msg[..n], &mut [], &mut reply).unwrap();
    assert_eq!(decode_reply_parts::<u32>(&reply[..len], &[]), Err(Error::InvalidArgument));
    let src = [0u8; 4];
    let len = ipc.call(id, &msg[..n], &mut [Lease::Read(&src)], &mut reply).unwrap();
    assert_eq!(decode_reply_parts::<u32>(&reply[..len], &[]), Err(Error::InvalidArgument));
    // Too many leases for the operation, and an indirect header whose body lease is missing.
    let mut dst = [0u8; 4];
    let mut extra = [0u8; 4];
    let mut three = [Lease::Write(&mut dst), Lease::Write(&mut extra), Lease::Read(&src)];
    let len = ipc.call(id, &msg[..n], &mut three, &mut reply).unwrap();
    assert_eq!(decode_reply_parts::<u32>(&reply[..len], &[]), Err(Error::InvalidArgument));
    let indirect = postcard::to_allocvec(&crate::idl::Header { version: vfs::VERSION, op: 6, indirect: true }).unwrap();
    let len = ipc.call(id, &indirect, &mut [], &mut reply).unwrap();
    assert_eq!(decode_reply_parts::<Stat>(&reply[..len], &[]), Err(Error::InvalidArgument));
    let garbage_body = [0xffu8; 9];
    let len = ipc.call(id, &indirect, &mut [Lease::Read(&garbage_body)], &mut reply).unwrap();
    assert_eq!(decode_reply_parts::<Stat>(&reply[..len], &[]), Err(Error::Malformed));
    // Garbage and a wrong version.
    let len = ipc.call(id, &[0xff, 0xff, 0xff, 0xff, 0xff], &mut [], &mut reply).unwrap();
    assert_eq!(decode_reply_parts::<u32>(&reply[..len], &[]), Err(Error::Malformed));
    let mut bad = [0u8; 64];
    let n2 = crate::idl::encode_request(&mut bad, vfs::VERSION + 1, 7, &(3u32,)).unwrap();
    let len = ipc.call(id, &bad[..n2], &mut [], &mut reply).unwrap();
    assert_eq!(decode_reply_parts::<Stat>(&reply[..len], &[]), Err(Error::NotSupported));
    assert_eq!(c.fstat(5).map(|s| s.ino), Ok(5));
}

#[test]
fn idempotent_calls_retry_after_restart_and_once_calls_report_it() {
    let (ipc, c) = fake_vfs();
    let old = c.channel.server();
    ipc.restart(old.index).unwrap();
    assert_eq!(c.stat("/x").map(|s| s.ino), Ok(7), "stat is retried on the new generation");
    assert_eq!(c.channel.restarts(), 1);
    ipc.restart(old.index).unwrap();
    assert_eq!(c.open("/x", vfs::OpenFlags::READ, 0), Err(Error::ServerRestarted));
    assert_eq!(c.open("/x", vfs::OpenFlags::READ, 0), Ok(4), "the channel now points at the new task");
    ipc.kill(old.index).unwrap();
    assert_eq!(c.stat("/x"), Err(Error::ServerDead));
}

#[test]
fn requests_round_trip_through_encode_and_decode() {
    let reqs = [
        filesystem::Request::Lookup { dir: 1, name: "abc" },
        filesystem::Request::Create { dir: 2, name: "n", node: NewNode::new(FileType::Directory, 0o755) },
        filesystem::Request::Rename { from_dir: 1, from: "a", to_dir: 2, to: "b" },
        filesystem::Request::Sync {},
    ];
    for r in reqs {
        let mut buf = [0u8; MAX_INDIRECT];
        let n = r.encode(&mut buf).unwrap();
        assert_eq!(filesystem::Request::decode(&buf[..n]).unwrap(), r);
        // Every strict prefix is rejected, never mis-decoded or panicking.
        for cut in 0..n {
            assert!(filesystem::Request::decode(&buf[..cut]).is_err());
        }
    }
    let r = blockcache::Request::ReadVectored { runs: vec![blockcache::Run { sector: 1, sectors: 2 }] };
    let mut buf = [0u8; 64];
    let n = r.encode(&mut buf).unwrap();
    assert_eq!(blockcache::Request::decode(&buf[..n]).unwrap().op(), 5);
}

/// A server that answers garbage: a stub gets `Malformed`, not a panic. The first byte picks the reply
/// form (inline, in the area with a length, unknown).
struct Garbage(u8);
impl Server for Garbage {
    fn handle(&mut self, _: &[u8], _: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        reply[..3].copy_from_slice(&[self.0, 0xff, 0xff]);
        Ok(3)
    }
}

#[test]
fn garbage_reply_is_malformed() {
    let ipc = LocalIpc::new();
    for form in [0u8, 1, 7] {
        let id = ipc.spawn("g", Box::new(move |_| Box::new(Garbage(form)))).unwrap();
        let c = supervisor::Client::new(ipc.clone(), id);
        assert_eq!(c.list_tasks(), Err(Error::Malformed), "form {form}");
    }
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = filesystem::Request::decode(&bytes);
        let _ = vfs::Request::decode(&bytes);
        let _ = blockcache::Request::decode(&bytes);
        let _ = supervisor::Request::decode(&bytes);
        let _ = decode_reply_parts::<Vec<crate::fs::DirEntry>>(&bytes, &bytes);
        let _ = decode_reply_parts::<Vec<supervisor::TaskStatus>>(&bytes, &bytes);
        let _ = decode_reply_parts::<Stat>(&bytes, &[]);
    }

    #[test]
    fn valid_header_with_garbage_body_is_an_error(op in 0u16..40, body in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Each interface with its own version, so the body decoder is what gets exercised.
        let msg = |version: u16| {
            let mut msg = postcard::to_allocvec(&crate::idl::Header { version, op, indirect: false }).unwrap();
            msg.extend_from_slice(&body);
            msg
        };
        if let Err(e) = vfs::Request::decode(&msg(vfs::VERSION)) {
            prop_assert_eq!(e, Error::Malformed);
        }
        if let Err(e) = filesystem::Request::decode(&msg(filesystem::VERSION)) {
            prop_assert_eq!(e, Error::Malformed);
        }
        if let Err(e) = blockcache::Request::decode(&msg(blockcache::VERSION)) {
            prop_assert_eq!(e, Error::Malformed);
        }
    }

    #[test]
    fn lookups_round_trip(dir in any::<u64>(), name in "[a-zA-Z0-9._ -]{0,255}") {
        let r = filesystem::Request::Lookup { dir, name: &name };
        let mut buf = [0u8; MAX_INDIRECT];
        let n = r.encode(&mut buf).unwrap();
        prop_assert_eq!(filesystem::Request::decode(&buf[..n]).unwrap(), r);
    }
}

#[test]
fn the_open_filesystem_operations_are_statistics_and_direct_reads() {
    let open: Vec<&str> =
        filesystem::OPS.iter().filter(|o| filesystem::OPEN_OPS.contains(&o.op)).map(|o| o.name).collect();
    assert_eq!(open, ["daemon_stats", "direct_read", "direct_stats"]);
}
