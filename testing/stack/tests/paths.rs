//! Whole-stack tests of the request paths: app stub → vfs server → filesystem servers → block caches.

mod common;

use common::*;
use protocol::api::vfs::{OpenFlags as O, ReadReq, Whence};
use protocol::fs::FileType;
use protocol::Error;
use vfs::{FIRST_FD, MAX_FDS};

#[test]
fn files_round_trip_on_every_filesystem() {
    let (_s, app) = stack();
    let c = &app.vfs;
    for dir in ["", "/fat", "/mem"] {
        let data = pattern(300_000, dir.len() as u64);
        let path = format!("{dir}/big.bin");
        put(c, &path, &data).unwrap();
        assert_eq!(get(c, &path).unwrap(), data, "{path}");
        assert_eq!(c.stat(&path).unwrap().size, data.len() as u64);
    }
    let names = list(c, "/").unwrap();
    for n in [".", "..", "fat", "mem", "big.bin"] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
}

#[test]
fn open_flags_through_the_stack() {
    let (_s, app) = stack();
    let c = &app.vfs;
    assert_eq!(c.open("/nope", O::READ, 0), Err(Error::NotFound));
    let fd = c.open("/f", O::READ | O::WRITE | O::CREATE | O::EXCLUSIVE, 0o600).unwrap();
    assert_eq!(fd, FIRST_FD);
    assert_eq!(c.open("/f", O::WRITE | O::CREATE | O::EXCLUSIVE, 0), Err(Error::AlreadyExists));
    c.write(fd, b"hello world").unwrap();
    assert_eq!(c.seek(fd, Whence::Start, 6), Ok(6));
    let mut buf = [0u8; 5];
    assert_eq!(c.read(fd, &mut buf), Ok(5));
    assert_eq!(&buf, b"world");
    let ap = c.open("/f", O::APPEND, 0).unwrap();
    c.write(ap, b"!").unwrap();
    assert_eq!(get(c, "/f").unwrap(), b"hello world!");
    let ro = c.open("/f", O::READ, 0).unwrap();
    assert_eq!(c.write(ro, b"x"), Err(Error::BadFileDescriptor));
    let tr = c.open("/f", O::WRITE | O::TRUNCATE, 0).unwrap();
    assert_eq!(c.fstat(tr).unwrap().size, 0);
    c.write(tr, b"abc").unwrap();
    c.truncate(tr, 1).unwrap();
    c.fsync(tr).unwrap();
    assert_eq!(get(c, "/f").unwrap(), b"a");
    assert_eq!(c.open("/fat", O::WRITE, 0), Err(Error::IsADirectory));
    assert_eq!(c.open("/f", O::READ | O::TRUNCATE, 0), Err(Error::InvalidArgument));
    let d = c.dup(fd).unwrap();
    assert_eq!(c.seek(d, Whence::Current, 0), c.seek(fd, Whence::Current, 0), "dup shares the offset");
}

#[test]
fn descriptor_limit_and_process_exit() {
    let (s, app) = stack();
    let c = &app.vfs;
    put(c, "/mem/f", b"x").unwrap();
    for want in FIRST_FD..MAX_FDS {
        assert_eq!(c.open("/mem/f", O::READ, 0), Ok(want));
    }
    assert_eq!(c.open("/mem/f", O::READ, 0), Err(Error::TooManyOpenFiles));
    let other = s.app("other").unwrap();
    assert_eq!(other.vfs.open("/mem/f", O::READ, 0), Ok(FIRST_FD), "tables are per process");
    assert_eq!(other.vfs.close(FIRST_FD + 1), Err(Error::BadFileDescriptor));
    // Unlink while open, exit: every descriptor closes and the filesystem frees the file.
    c.unlink("/mem/f").unwrap();
    assert_eq!(c.stats().unwrap().open_files, u64::from(MAX_FDS - FIRST_FD) + 1);
    c.exit().unwrap();
    assert_eq!(c.stats().unwrap().open_files, 1);
    assert_eq!(c.read(FIRST_FD, &mut [0u8; 1]), Err(Error::BadFileDescriptor));
    let mut b = [0u8; 1];
    assert_eq!(other.vfs.read(FIRST_FD, &mut b), Ok(1), "the other process still reads the unlinked file");
    other.vfs.exit().unwrap();
    assert_eq!(c.stats().unwrap().open_files, 0);
}

#[test]
fn namespace_operations_across_directories_and_mounts() {
    let (_s, app) = stack();
    let c = &app.vfs;
    c.mkdir("/a", 0o755).unwrap();
    c.mkdir("/a/b", 0o755).unwrap();
    assert_eq!(c.mkdir("/a", 0o755), Err(Error::AlreadyExists));
    put(c, "/a/b/f", b"data").unwrap();
    c.rename("/a/b/f", "/a/g").unwrap();
    assert_eq!(get(c, "/a/g").unwrap(), b"data");
    assert_eq!(c.stat("/a/b/f"), Err(Error::NotFound));
    assert_eq!(c.rename("/a/g", "/fat/g"), Err(Error::CrossDevice));
    assert_eq!(c.rename("/mem", "/mem2"), Err(Error::Busy));
    put(c, "/fat/x.txt", b"fat").unwrap();
    c.mkdir("/fat/dir", 0o755).unwrap();
    c.rename("/fat/x.txt", "/fat/dir/Long File Name.txt").unwrap();
    assert_eq!(get(c, "/fat/dir/Long File Name.txt").unwrap(), b"fat");
    assert_eq!(get(c, "/fat/dir/../../a/g").unwrap(), b"data", "`..` leaves the FAT mount");
    assert_eq!(c.stat("/fat/..").unwrap().ino, c.stat("/").unwrap().ino);
    assert_eq!(c.rmdir("/a"), Err(Error::DirectoryNotEmpty));
    c.unlink("/a/g").unwrap();
    c.rmdir("/a/b").unwrap();
    c.rmdir("/a").unwrap();
    assert_eq!(c.stat("/a"), Err(Error::NotFound));
    c.symlink("/fat/dir", "/link").unwrap();
    assert_eq!(c.lstat("/link").unwrap().kind, FileType::Symlink);
    assert_eq!(c.readlink("/link").unwrap(), "/fat/dir");
    assert_eq!(get(c, "/link/Long File Name.txt").unwrap(), b"fat", "a symlink into another mount");
    assert_eq!(c.link("/fat/dir/Long File Name.txt", "/fat/hard"), Err(Error::NotSupported), "FAT has no hard links");
    put(c, "/w", b"wfs").unwrap();
    c.link("/w", "/w2").unwrap();
    assert_eq!(c.stat("/w2").unwrap().nlink, 2);
    assert!(c.statfs("/").unwrap().total_blocks > c.statfs("/").unwrap().free_blocks);
    assert_ne!(c.statfs("/fat").unwrap(), c.statfs("/").unwrap());
    let st = c.stats().unwrap();
    assert_eq!(st.mounts, 3);
    assert!(st.dentry_hits > 0 && st.lookups > 0, "{st:?}");
}

#[test]
fn readdir_of_many_entries_pages_through_replies() {
    let (_s, app) = stack();
    let c = &app.vfs;
    for dir in ["/many", "/fat/many", "/mem/many"] {
        c.mkdir(dir, 0o755).unwrap();
        for i in 0..200 {
            let name = format!("{dir}/entry-with-a-longish-name-{i:04}");
            let fd = c.open(&name, O::WRITE | O::CREATE, 0o644).unwrap();
            c.close(fd).unwrap();
        }
        let names = list(c, dir).unwrap();
        assert_eq!(names.len(), 202, "{dir}");
        let page = c.readdir(dir, 0).unwrap();
        assert!(page.len() < 202, "one reply holds only part of the listing");
        let mut sorted: Vec<_> = names[2..].to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 200);
    }
}

#[test]
fn batch_reads_through_the_stack() {
    let (_s, app) = stack();
    let c = &app.vfs;
    let a = pattern(100_000, 1);
    let b = pattern(5_000, 2);
    put(c, "/a", &a).unwrap();
    put(c, "/fat/b", &b).unwrap();
    let fa = c.open("/a", O::READ, 0).unwrap();
    let fb = c.open("/fat/b", O::READ, 0).unwrap();
    let reqs = vec![
        ReadReq { fd: fa, offset: 0, len: 4096 },
        ReadReq { fd: fb, offset: 4_000, len: 4096 },
        ReadReq { fd: fa, offset: 99_000, len: 4096 },
    ];
    let mut out = vec![0u8; 3 * 4096];
    assert_eq!(c.batch_read(reqs.clone(), &mut out), Ok(vec![4096, 1000, 1000]));
    assert_eq!(&out[..4096], &a[..4096]);
    assert_eq!(&out[4096..5096], &b[4_000..]);
    assert_eq!(&out[8192..9192], &a[99_000..]);
    assert_eq!(c.batch_read(reqs, &mut out[..100]), Err(Error::InvalidArgument), "lease too small");
    let too_many = vec![ReadReq { fd: fa, offset: 0, len: 1 }; protocol::api::vfs::MAX_BATCH + 1];
    assert_eq!(c.batch_read(too_many, &mut out), Err(Error::TooBig));
    assert_eq!(c.stats().unwrap().batch_reads, 1);
}

#[test]
fn one_read_batches_lend_the_lease_on() {
    // A batch of one is answered through the app's own lease (no bounce); it must read, count and
    // fail exactly as the bounce path does.
    let (_s, app) = stack();
    let c = &app.vfs;
    let a = pattern(10_000, 3);
    put(c, "/fat/a", &a).unwrap();
    let fa = c.open("/fat/a", O::READ, 0).unwrap();
    let mut out = vec![0xeeu8; 8192];
    assert_eq!(c.batch_read(vec![ReadReq { fd: fa, offset: 4096, len: 4096 }], &mut out), Ok(vec![4096]));
    assert_eq!(&out[..4096], &a[4096..8192]);
    assert_eq!(&out[4096..], &[0xee; 4096][..], "past the read's slot nothing is written");
    assert_eq!(c.batch_read(vec![ReadReq { fd: fa, offset: 9_000, len: 4096 }], &mut out), Ok(vec![1000]));
    assert_eq!(&out[..1000], &a[9_000..]);
    assert_eq!(c.batch_read(vec![ReadReq { fd: fa, offset: 20_000, len: 4096 }], &mut out), Ok(vec![0]));
    let r = vec![ReadReq { fd: fa, offset: 0, len: 4096 }];
    assert_eq!(c.batch_read(r, &mut out[..100]), Err(Error::InvalidArgument), "lease too small");
    let bad = vec![ReadReq { fd: fa + 7, offset: 0, len: 4096 }];
    assert_eq!(c.batch_read(bad, &mut out), Err(Error::BadFileDescriptor));
    let d = c.open("/fat", O::READ, 0).unwrap();
    assert_eq!(c.batch_read(vec![ReadReq { fd: d, offset: 0, len: 16 }], &mut out), Err(Error::IsADirectory));
    assert_eq!(c.seek(fa, protocol::api::vfs::Whence::Current, 0), Ok(0), "the offset does not move");
    let st = c.stats().unwrap();
    assert_eq!((st.batch_reads, st.reads, st.bytes_read), (3, 3, 5096));
}

#[test]
fn transactions_reach_filesystems_that_have_them() {
    let (s, app) = stack();
    let c = &app.vfs;
    let tx = c.begin("/").unwrap();
    put(c, "/in-tx", b"committed").unwrap();
    c.commit(tx).unwrap();
    let tx = c.begin("/mem").unwrap();
    put(c, "/mem/aborted", b"x").unwrap();
    c.abort(tx).unwrap();
    assert_eq!(c.stat("/mem/aborted"), Err(Error::NotFound));
    assert_eq!(c.begin("/fat"), Err(Error::NotSupported), "FAT has no transactions");
    assert_eq!(c.commit(tx), Err(Error::NoSuchTransaction));
    // The committed file is on the disk itself, past the cache: flushed by the commit.
    let mut durable = s.durable_wfs().unwrap();
    use protocol::fs::FileSystem;
    let root = durable.root();
    let st = durable.lookup(root, "in-tx").unwrap();
    let mut buf = [0u8; 9];
    assert_eq!(durable.read(st.ino, 0, &mut buf), Ok(9));
    assert_eq!(&buf, b"committed");
}

#[test]
fn a_crashed_process_has_its_descriptors_closed_by_the_supervisor() {
    let (s, app) = stack();
    put(&app.vfs, "/mem/tmp", b"scratch").unwrap();
    let victim = s.app("victim").unwrap();
    for _ in 0..5 {
        victim.vfs.open("/mem/tmp", O::READ, 0).unwrap();
    }
    app.vfs.unlink("/mem/tmp").unwrap();
    let tx = victim.vfs.begin("/mem").unwrap();
    assert_eq!(app.vfs.process_exited(victim.id), Err(Error::PermissionDenied), "only the supervisor may");
    assert_eq!(app.vfs.stats().unwrap().open_files, 5);
    assert_eq!(s.crash_app(&victim), Ok(5));
    assert_eq!(app.vfs.stats().unwrap().open_files, 0);
    assert_eq!(app.vfs.commit(tx), Err(Error::NoSuchTransaction), "its transaction was aborted");
    assert_eq!(app.vfs.begin("/mem").map(|_| ()), Ok(()), "the filesystem is free for a new one");
}

#[test]
fn long_names_and_paths_travel_out_of_line_at_every_hop() {
    let (_s, app) = stack();
    let c = &app.vfs;
    // 255-byte names make even the filesystem's lookups too big for an inline message.
    let names: Vec<String> = (0..3).map(|i| format!("{i}{}", "n".repeat(254))).collect();
    let mut path = String::new();
    for n in &names {
        path = format!("{path}/{n}");
        c.mkdir(&path, 0o755).unwrap();
    }
    assert!(path.len() > 2 * protocol::ipc::MAX_MESSAGE);
    let file = format!("{path}/f");
    put(c, &file, b"deep").unwrap();
    assert_eq!(get(c, &file).unwrap(), b"deep");
    let moved = format!("{path}/{}", "m".repeat(255));
    c.rename(&file, &moved).unwrap();
    assert_eq!(c.stat(&moved).unwrap().size, 4);
    let listing = list(c, &path).unwrap();
    assert_eq!(listing, [".".to_string(), "..".to_string(), "m".repeat(255)]);
    let too_long = format!("{path}{}", "/x".repeat(200));
    assert_eq!(c.stat(&too_long), Err(Error::NameTooLong), "longer than MAX_PATH");
}
