//! Model-based test: random operation sequences give identical results through the IPC stack
//! (app stub → vfs server → RemoteFs → memfs server) and through a `Vfs` over an in-process memfs.
//! Any difference is a bug in the encoding, the stubs, the dispatch, the leases or the adapters.

use proptest::prelude::*;

use memfs::MemFs;
use protocol::api::filesystem::{FsServer, Service as FsService};
use protocol::api::vfs::{Client, OpenFlags, ReadReq, Service as VfsService, Whence};
use protocol::fs::{FixedClock, Timespec};
use protocol::ipc::TaskId;
use protocol::local::LocalIpc;
use protocol::Result;
use vfs::{RemoteFs, Vfs, VfsServer};

fn memfs() -> MemFs {
    MemFs::new(Box::new(FixedClock(Timespec::new(1_000, 0))))
}

const PATHS: [&str; 6] = ["/a", "/b", "/d", "/d/x", "/d/e", "/d/e/y"];

#[derive(Debug, Clone)]
enum Op {
    Open(usize, u32),
    Close(u32),
    Read(u32, u16),
    Write(u32, Vec<u8>),
    Seek(u32, i64),
    Stat(usize),
    Mkdir(usize),
    Unlink(usize),
    Rmdir(usize),
    Rename(usize, usize),
    Readdir(usize),
    Dup(u32),
    Truncate(u32, u16),
    Batch(Vec<(u32, u16, u16)>),
    Link(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let fd = 3u32..8;
    let path = 0..PATHS.len();
    prop_oneof![
        (path.clone(), 0u32..256).prop_map(|(p, f)| Op::Open(p, f)),
        fd.clone().prop_map(Op::Close),
        (fd.clone(), 0u16..3000).prop_map(|(f, n)| Op::Read(f, n)),
        (fd.clone(), proptest::collection::vec(any::<u8>(), 0..2000)).prop_map(|(f, d)| Op::Write(f, d)),
        (fd.clone(), -100i64..5000).prop_map(|(f, o)| Op::Seek(f, o)),
        path.clone().prop_map(Op::Stat),
        path.clone().prop_map(Op::Mkdir),
        path.clone().prop_map(Op::Unlink),
        path.clone().prop_map(Op::Rmdir),
        (path.clone(), path.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        path.clone().prop_map(Op::Readdir),
        fd.clone().prop_map(Op::Dup),
        (fd.clone(), 0u16..5000).prop_map(|(f, n)| Op::Truncate(f, n)),
        proptest::collection::vec((fd, 0u16..4000, 0u16..600), 0..5).prop_map(Op::Batch),
        (path.clone(), path.clone()).prop_map(|(a, b)| Op::Link(a, b)),
    ]
}

/// What an operation returned, comparable across both sides.
#[derive(Debug, PartialEq)]
enum Out {
    Unit(Result<()>),
    Num(Result<u64>),
    Bytes(Result<Vec<u8>>),
    Stat(Result<protocol::fs::Stat>),
    Names(Result<Vec<(String, u64)>>),
    Counts(Result<Vec<u32>>, Vec<u8>),
}

fn run_local(v: &mut Vfs, pid: TaskId, op: &Op) -> Out {
    match op {
        Op::Open(p, f) => Out::Num(v.open(pid, PATHS[*p], OpenFlags(*f), 0o644).map(u64::from)),
        Op::Close(fd) => Out::Unit(v.close(pid, *fd)),
        Op::Read(fd, n) => {
            let mut b = vec![0u8; *n as usize];
            Out::Bytes(v.read(pid, *fd, &mut b).map(|k| b[..k].to_vec()))
        }
        Op::Write(fd, d) => Out::Num(v.write(pid, *fd, d).map(|n| n as u64)),
        Op::Seek(fd, o) => Out::Num(v.seek(pid, *fd, Whence::Start, *o)),
        Op::Stat(p) => Out::Stat(v.stat(PATHS[*p])),
        Op::Mkdir(p) => Out::Unit(v.mkdir(PATHS[*p], 0o755)),
        Op::Unlink(p) => Out::Unit(v.unlink(PATHS[*p])),
        Op::Rmdir(p) => Out::Unit(v.rmdir(PATHS[*p])),
        Op::Rename(a, b) => Out::Unit(v.rename(PATHS[*a], PATHS[*b])),
        Op::Readdir(p) => Out::Names(
            v.readdir(PATHS[*p], 0, vfs::READDIR_PAGE).map(|es| es.into_iter().map(|e| (e.name, e.ino)).collect()),
        ),
        Op::Dup(fd) => Out::Num(v.dup(pid, *fd).map(u64::from)),
        Op::Truncate(fd, n) => Out::Unit(v.truncate(pid, *fd, u64::from(*n))),
        Op::Batch(rs) => {
            let reqs: Vec<ReadReq> =
                rs.iter().map(|&(fd, off, len)| ReadReq { fd, offset: off.into(), len: len.into() }).collect();
            let mut out = vec![0u8; reqs.iter().map(|r| r.len as usize).sum()];
            let r = v.batch_read(pid, &reqs, &mut out);
            Out::Counts(r, out)
        }
        Op::Link(a, b) => Out::Unit(v.link(PATHS[*a], PATHS[*b])),
    }
}

fn run_remote(c: &Client<LocalIpc>, op: &Op) -> Out {
    match op {
        Op::Open(p, f) => Out::Num(c.open(PATHS[*p], OpenFlags(*f), 0o644).map(u64::from)),
        Op::Close(fd) => Out::Unit(c.close(*fd)),
        Op::Read(fd, n) => {
            let mut b = vec![0u8; *n as usize];
            Out::Bytes(c.read(*fd, &mut b).map(|k| b[..k as usize].to_vec()))
        }
        Op::Write(fd, d) => Out::Num(c.write(*fd, d).map(u64::from)),
        Op::Seek(fd, o) => Out::Num(c.seek(*fd, Whence::Start, *o)),
        Op::Stat(p) => Out::Stat(c.stat(PATHS[*p])),
        Op::Mkdir(p) => Out::Unit(c.mkdir(PATHS[*p], 0o755)),
        Op::Unlink(p) => Out::Unit(c.unlink(PATHS[*p])),
        Op::Rmdir(p) => Out::Unit(c.rmdir(PATHS[*p])),
        Op::Rename(a, b) => Out::Unit(c.rename(PATHS[*a], PATHS[*b])),
        // A reply holds at most what fits one message; the model lists fewer than a page, so both agree.
        Op::Readdir(p) => {
            Out::Names(c.readdir(PATHS[*p], 0).map(|es| es.into_iter().map(|e| (e.name, e.ino)).collect()))
        }
        Op::Dup(fd) => Out::Num(c.dup(*fd).map(u64::from)),
        Op::Truncate(fd, n) => Out::Unit(c.truncate(*fd, u64::from(*n))),
        Op::Batch(rs) => {
            let reqs: Vec<ReadReq> =
                rs.iter().map(|&(fd, off, len)| ReadReq { fd, offset: off.into(), len: len.into() }).collect();
            let mut out = vec![0u8; reqs.iter().map(|r| r.len as usize).sum()];
            let r = c.batch_read(reqs, &mut out);
            Out::Counts(r, out)
        }
        Op::Link(a, b) => Out::Unit(c.link(PATHS[*a], PATHS[*b])),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ipc_stack_behaves_like_the_local_vfs(ops in proptest::collection::vec(op(), 1..60)) {
        let ipc = LocalIpc::new();
        let fs_id = ipc.spawn("memfs", Box::new(|_| Box::new(FsService(FsServer::new(memfs()))))).unwrap();
        let vfs_id = ipc
            .spawn("vfs", Box::new(move |ipc| {
                let root = RemoteFs::connect(ipc, fs_id).unwrap();
                Box::new(VfsService(VfsServer::new(Vfs::new(Box::new(root)))))
            }))
            .unwrap();
        let app = ipc.spawn_client("app").unwrap();
        let client = Client::new(ipc.as_task(app), vfs_id);
        let mut local = Vfs::new(Box::new(memfs()));
        for op in &ops {
            let want = run_local(&mut local, app, op);
            let got = run_remote(&client, op);
            prop_assert_eq!(got, want, "{:?}", op);
        }
        // Exit closes the same descriptors on both sides.
        prop_assert_eq!(client.exit(), local.exit(app).map(|_| ()));
        prop_assert_eq!(client.stats().unwrap().open_files, local.stats().open_files);
    }
}
