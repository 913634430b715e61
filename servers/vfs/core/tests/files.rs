//! Descriptors, open flags, offsets, I/O, batch reads and transactions of the VFS library.

mod common;

use common::*;
use protocol::api::vfs::{OpenFlags as O, ReadReq, Whence};
use protocol::fs::{FileSystem, FileType};
use protocol::Error;
use vfs::{FIRST_FD, MAX_FDS};

#[test]
fn open_flags_follow_posix() {
    let (mut v, _) = setup();
    assert_eq!(v.open(P1, "/f", O::READ, 0), Err(Error::NotFound));
    assert_eq!(v.open(P1, "/f", O::CREATE, 0o644), Err(Error::InvalidArgument), "no access mode");
    assert_eq!(v.open(P1, "/f", O::READ | O::TRUNCATE, 0), Err(Error::InvalidArgument));
    assert_eq!(v.open(P1, "/f", O(1 << 20) | O::READ, 0), Err(Error::InvalidArgument));
    let fd = v.open(P1, "/f", O::WRITE | O::CREATE, 0o640).unwrap();
    assert_eq!(fd, FIRST_FD);
    assert_eq!(v.fstat(P1, fd).unwrap().mode, 0o640);
    assert_eq!(v.read(P1, fd, &mut [0u8; 4]), Err(Error::BadFileDescriptor), "write-only");
    v.write(P1, fd, b"hello").unwrap();
    assert_eq!(v.open(P1, "/f", O::WRITE | O::CREATE | O::EXCLUSIVE, 0), Err(Error::AlreadyExists));
    let ro = v.open(P1, "/f", O::READ, 0).unwrap();
    assert_eq!(v.write(P1, ro, b"x"), Err(Error::BadFileDescriptor), "read-only");
    // Append writes at the end whatever the offset; truncate empties on open.
    let ap = v.open(P1, "/f", O::APPEND, 0).unwrap();
    v.seek(P1, ap, Whence::Start, 0).unwrap();
    v.write(P1, ap, b"!").unwrap();
    assert_eq!(get(&mut v, "/f").unwrap(), b"hello!");
    let tr = v.open(P1, "/f", O::WRITE | O::TRUNCATE, 0).unwrap();
    assert_eq!(v.fstat(P1, tr).unwrap().size, 0);
    // Directories: read-only opens only, and DIRECTORY insists on one.
    v.mkdir("/d", 0o755).unwrap();
    assert_eq!(v.open(P1, "/d", O::WRITE, 0), Err(Error::IsADirectory));
    let d = v.open(P1, "/d", O::READ | O::DIRECTORY, 0).unwrap();
    assert_eq!(v.read(P1, d, &mut [0u8; 4]), Err(Error::IsADirectory));
    assert_eq!(v.open(P1, "/f", O::READ | O::DIRECTORY, 0), Err(Error::NotADirectory));
    assert_eq!(v.open(P1, "/f/x", O::READ, 0), Err(Error::NotADirectory));
}

#[test]
fn descriptors_are_per_process_lowest_free_and_limited() {
    let (mut v, root) = setup();
    put(&mut v, "/f", b"abc");
    let mut fds = Vec::new();
    for _ in FIRST_FD..MAX_FDS {
        fds.push(v.open(P1, "/f", O::READ, 0).unwrap());
    }
    assert_eq!(*fds.last().unwrap(), MAX_FDS - 1);
    assert_eq!(v.open(P1, "/f", O::READ, 0), Err(Error::TooManyOpenFiles));
    assert_eq!(v.dup(P1, 3), Err(Error::TooManyOpenFiles));
    // Another process has its own table; P1's descriptors mean nothing to it.
    assert_eq!(v.open(P2, "/f", O::READ, 0), Ok(FIRST_FD));
    assert_eq!(v.close(P2, 100), Err(Error::BadFileDescriptor));
    v.close(P1, 7).unwrap();
    assert_eq!(v.close(P1, 7), Err(Error::BadFileDescriptor));
    assert_eq!(v.open(P1, "/f", O::READ, 0), Ok(7), "lowest free descriptor");
    let opens = root.probe.opens.get();
    assert_eq!(v.exit(P1), Ok((MAX_FDS - FIRST_FD) as usize));
    assert_eq!(v.open_count(P1), 0);
    assert_eq!(root.probe.releases.get(), opens - 1, "every open of P1 released, P2's kept");
    assert_eq!(v.read(P1, 3, &mut [0u8; 1]), Err(Error::BadFileDescriptor));
    assert_eq!(v.read(P2, 3, &mut [0u8; 3]), Ok(3));
}

#[test]
fn dup_shares_the_offset_and_release_waits_for_the_last_descriptor() {
    let (mut v, root) = setup();
    put(&mut v, "/f", b"0123456789");
    let a = v.open(P1, "/f", O::READ, 0).unwrap();
    let b = v.dup(P1, a).unwrap();
    let mut buf = [0u8; 4];
    v.read(P1, a, &mut buf).unwrap();
    v.read(P1, b, &mut buf).unwrap();
    assert_eq!(&buf, b"4567");
    let other = v.open(P1, "/f", O::READ, 0).unwrap();
    v.read(P1, other, &mut buf).unwrap();
    assert_eq!(&buf, b"0123", "a separate open has its own offset");
    // Unlinked while open: still readable until the last descriptor goes.
    v.unlink("/f").unwrap();
    let nodes = root.fs.borrow().node_count();
    v.close(P1, a).unwrap();
    v.close(P1, other).unwrap();
    assert_eq!(v.pread(P1, b, 8, &mut buf), Ok(2));
    assert_eq!(root.fs.borrow().node_count(), nodes);
    v.close(P1, b).unwrap();
    assert_eq!(root.fs.borrow().node_count(), nodes - 1, "freed at the last release");
}

#[test]
fn seek_and_truncate() {
    let (mut v, _) = setup();
    let fd = v.open(P1, "/f", O::READ | O::WRITE | O::CREATE, 0o644).unwrap();
    v.write(P1, fd, b"abcdef").unwrap();
    assert_eq!(v.seek(P1, fd, Whence::End, -2), Ok(4));
    let mut buf = [0u8; 8];
    assert_eq!(v.read(P1, fd, &mut buf), Ok(2));
    assert_eq!(&buf[..2], b"ef");
    assert_eq!(v.seek(P1, fd, Whence::Current, -100), Err(Error::InvalidArgument));
    assert_eq!(v.seek(P1, fd, Whence::Start, 10), Ok(10));
    v.write(P1, fd, b"Z").unwrap();
    assert_eq!(v.fstat(P1, fd).unwrap().size, 11, "writing past the end leaves a hole");
    assert_eq!(get(&mut v, "/f").unwrap(), b"abcdef\0\0\0\0Z");
    v.truncate(P1, fd, 3).unwrap();
    assert_eq!(v.stat("/f").unwrap().size, 3);
    let ro = v.open(P1, "/f", O::READ, 0).unwrap();
    assert_eq!(v.truncate(P1, ro, 0), Err(Error::BadFileDescriptor));
    v.fsync(P1, fd).unwrap();
}

#[test]
fn batch_reads_match_single_reads() {
    let (mut v, _) = setup();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    put(&mut v, "/a", &data);
    put(&mut v, "/b", b"short");
    let a = v.open(P1, "/a", O::READ, 0).unwrap();
    let b = v.open(P1, "/b", O::READ, 0).unwrap();
    let reqs = [
        ReadReq { fd: a, offset: 100, len: 50 },
        ReadReq { fd: b, offset: 2, len: 10 },
        ReadReq { fd: a, offset: 9_990, len: 20 },
    ];
    let mut out = [0xEEu8; 80];
    assert_eq!(v.batch_read(P1, &reqs, &mut out), Ok(vec![50, 3, 10]));
    assert_eq!(&out[..50], &data[100..150]);
    assert_eq!(&out[50..53], b"ort");
    assert_eq!(&out[60..70], &data[9_990..]);
    assert_eq!(v.seek(P1, a, Whence::Current, 0), Ok(0), "batch reads do not move offsets");
    assert_eq!(v.batch_read(P1, &reqs, &mut out[..79]), Err(Error::InvalidArgument));
    let bad = [ReadReq { fd: 99, offset: 0, len: 1 }];
    assert_eq!(v.batch_read(P1, &bad, &mut out), Err(Error::BadFileDescriptor));
    assert_eq!(v.stats().batch_reads, 1);
}

#[test]
fn transactions_pass_through_or_are_not_supported() {
    let (mut v, root) = setup();
    put(&mut v, "/keep", b"1");
    let tx = v.begin(P1, "/").unwrap();
    assert_eq!(v.commit(P2, tx), Err(Error::NoSuchTransaction), "only the owner commits");
    put(&mut v, "/gone", b"2");
    assert_eq!(v.stat("/gone").unwrap().kind, FileType::File);
    v.abort(P1, tx).unwrap();
    assert_eq!(v.stat("/gone"), Err(Error::NotFound), "abort undid the change and the cache forgot it");
    let tx = v.begin(P1, "/keep").unwrap();
    put(&mut v, "/kept", b"3");
    v.commit(P1, tx).unwrap();
    assert_eq!(v.commit(P1, tx), Err(Error::NoSuchTransaction));
    assert_eq!(get(&mut v, "/kept").unwrap(), b"3");
    // Exit aborts what the process left open.
    let _tx = v.begin(P1, "/").unwrap();
    put(&mut v, "/orphan", b"4");
    v.exit(P1).unwrap();
    assert_eq!(v.stat("/orphan"), Err(Error::NotFound));
    // A filesystem without transactions says so.
    let plain = Shared::new();
    plain.probe.no_transactions.set(true);
    v.mkdir("/mnt", 0o755).unwrap();
    v.mount("/mnt", plain.boxed()).unwrap();
    assert_eq!(v.begin(P1, "/mnt"), Err(Error::NotSupported));
    assert!(root.fs.borrow_mut().capabilities().transactions);
}

#[test]
fn another_process_works_outside_an_open_transaction_and_neither_side_sees_the_other() {
    use protocol::api::vfs::OpenFlags as O;
    let (mut v, root) = setup();
    let theirs = v.open(P2, "/b", O::WRITE | O::CREATE, 0o644).unwrap();
    let tx = v.begin(P1, "/").unwrap();
    assert_eq!(v.begin(P1, "/"), Err(Error::Busy), "one transaction per process and mount");
    let mine = v.open(P1, "/a", O::WRITE | O::CREATE, 0o644).unwrap();
    assert_eq!(v.write(P1, mine, b"tx"), Ok(2));
    assert_eq!(v.fsync(P1, mine), Err(Error::Busy), "nothing of a transaction is durable before its commit");
    // P2 goes on outside the transaction, with real syncs, and does not see P1's file.
    assert_eq!(v.write(P2, theirs, b"x"), Ok(1));
    assert_eq!(v.fsync(P2, theirs), Ok(()));
    v.serving(P2);
    assert_eq!(v.mkdir("/d", 0o755), Ok(()));
    assert_eq!(v.stat("/a"), Err(Error::NotFound));
    // P1 does not see P2's changes (snapshot isolation), however the cache was filled.
    v.serving(P1);
    assert_eq!(v.stat("/d"), Err(Error::NotFound));
    assert_eq!(v.fstat(P1, mine).unwrap().size, 2);
    v.close(P1, mine).unwrap();
    // memfs detects conflicts per filesystem: P2 changed it, so P1's commit fails and leaves nothing.
    assert_eq!(v.commit(P1, tx), Err(Error::Conflict));
    v.serving(P2);
    assert_eq!(v.stat("/a"), Err(Error::NotFound));
    assert_eq!(v.stat("/b").unwrap().size, 1);
    // Without a concurrent change the commit goes through and everyone sees it.
    let tx = v.begin(P1, "/").unwrap();
    v.mkdir("/in-tx", 0o755).unwrap();
    v.serving(P2);
    assert_eq!(v.stat("/in-tx"), Err(Error::NotFound));
    assert_eq!(v.stat("/d").unwrap().kind, FileType::Directory, "reads outside go on");
    v.commit(P1, tx).unwrap();
    v.serving(P2);
    assert_eq!(v.stat("/in-tx").unwrap().kind, FileType::Directory);
    // The owner's exit aborts only its transaction.
    let _tx = v.begin(P1, "/").unwrap();
    put(&mut v, "/gone", b"g");
    v.exit(P1).unwrap();
    v.serving(P2);
    assert_eq!(v.stat("/gone"), Err(Error::NotFound));
    assert_eq!(v.write(P2, theirs, b"y"), Ok(1));
    assert_eq!(v.fsync(P2, theirs), Ok(()));
    assert!(root.fs.borrow_mut().capabilities().transactions);
}

#[test]
fn restarted_filesystem_gets_open_files_reopened() {
    let (mut v, root) = setup();
    put(&mut v, "/f", b"data");
    let a = v.open(P1, "/f", O::READ, 0).unwrap();
    let _b = v.open(P1, "/f", O::READ, 0).unwrap();
    v.stat("/f").unwrap();
    let opens = root.probe.opens.get();
    root.probe.generation.set(1);
    let lookups = root.probe.lookups.get();
    assert_eq!(v.pread(P1, a, 0, &mut [0u8; 4]), Ok(4));
    assert_eq!(root.probe.opens.get(), opens + 2, "both open files re-opened by node id");
    assert_eq!(v.stats().fs_reopens, 2);
    v.stat("/f").unwrap();
    assert_eq!(root.probe.lookups.get(), lookups + 1, "the cache was dropped");
}
