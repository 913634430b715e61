//! The vfs server's asynchronous requests (ops 28..=31) through the generated dispatch: a submit
//! only queues, the idle run executes and names whom to notify, a reap returns results and data in
//! submission order; several queues per process, closing, limits and a process's exit.

mod common;

use common::*;
use protocol::api::vfs::{dispatch, AioDone, AioReq, AioStats, OpenFlags, Request, MAX_AIO_SUBMIT};
use protocol::idl::decode_reply_parts;
use protocol::ipc::{Incoming, Lease, Leases, TaskId, MAX_MESSAGE};
use protocol::{Error, Result};
use vfs::VfsServer;

fn call<R: serde::de::DeserializeOwned>(
    s: &mut VfsServer,
    who: TaskId,
    req: Request<'_>,
    leases: &mut [Lease<'_>],
) -> Result<R> {
    let mut msg = [0u8; MAX_MESSAGE];
    let n = req.encode(&mut msg)?;
    let mut reply = [0u8; MAX_MESSAGE];
    let mut access = Leases::new(leases);
    let len = dispatch(s, &msg[..n], &mut Incoming::new(who, &mut access), &mut reply)?;
    decode_reply_parts(&reply[..len], &[])
}

fn read(fd: u32, offset: u64, len: u32) -> AioReq {
    AioReq { fd, offset, len, write: false }
}

#[test]
fn submit_queues_idle_runs_and_notifies_reap_collects_in_order() {
    let (v, _) = setup();
    let mut s = VfsServer::new(v);
    let flags = OpenFlags::READ | OpenFlags::WRITE | OpenFlags::CREATE;
    let fd: u32 = call(&mut s, P1, Request::Open { path: "/a", flags, mode: 0o644 }, &mut []).unwrap();
    let reqs = vec![
        AioReq { fd, offset: 0, len: 6, write: true },
        read(fd, 2, 10),
        AioReq { fd, offset: 6, len: 3, write: true },
        read(fd, 0, 9),
        read(99, 0, 1),
    ];
    let first: u64 =
        call(&mut s, P1, Request::AioSubmit { queue: 1, notify: 1 << 4, reqs }, &mut [Lease::Read(b"abcdefXYZ")])
            .unwrap();
    assert_eq!(first, 0);
    let mut buf = [0u8; 64];
    let none: Vec<AioDone> =
        call(&mut s, P1, Request::AioReap { queue: 1, max: 10 }, &mut [Lease::Write(&mut buf)]).unwrap();
    assert!(none.is_empty(), "nothing runs before the server is idle when a notification was asked for");
    assert_eq!(s.run_aio(), Some(vec![(P1, 1 << 4)]));
    assert_eq!(s.run_aio(), None, "nothing left to do");
    let done: Vec<AioDone> =
        call(&mut s, P1, Request::AioReap { queue: 1, max: 10 }, &mut [Lease::Write(&mut buf)]).unwrap();
    let results: Vec<(u64, Result<u32>)> = done.into_iter().map(|d| (d.ticket, d.result)).collect();
    assert_eq!(results, vec![(0, Ok(6)), (1, Ok(4)), (2, Ok(3)), (3, Ok(9)), (4, Err(Error::BadFileDescriptor))]);
    // The read after the first write sees it; the one after the second sees both.
    assert_eq!(&buf[..13], b"cdefabcdefXYZ");
    let stats: AioStats = call(&mut s, P1, Request::AioStatsOp {}, &mut []).unwrap();
    assert_eq!((stats.submitted, stats.completed, stats.runs, stats.run_max, stats.held_max), (5, 5, 1, 5, 5));
}

#[test]
fn reap_without_notification_runs_the_queue_and_limits_hold() {
    let (v, _) = setup();
    let mut s = VfsServer::new(v);
    let flags = OpenFlags::READ | OpenFlags::WRITE | OpenFlags::CREATE;
    let fd: u32 = call(&mut s, P1, Request::Open { path: "/b", flags, mode: 0o644 }, &mut []).unwrap();
    let w = AioReq { fd, offset: 0, len: 4, write: true };
    // Write data must be lent; requests are bounded in number, size and count per submit.
    let short: Result<u64> =
        call(&mut s, P1, Request::AioSubmit { queue: 1, notify: 0, reqs: vec![w] }, &mut [Lease::Read(b"ab")]);
    assert_eq!(short, Err(Error::InvalidArgument));
    let big: Result<u64> = call(
        &mut s,
        P1,
        Request::AioSubmit { queue: 1, notify: 0, reqs: vec![read(fd, 0, 1 << 20)] },
        &mut [Lease::Read(b"x")],
    );
    assert_eq!(big, Err(Error::InvalidArgument));
    let many: Result<u64> = call(
        &mut s,
        P1,
        Request::AioSubmit { queue: 1, notify: 0, reqs: vec![read(fd, 0, 1); MAX_AIO_SUBMIT + 1] },
        &mut [Lease::Read(b"x")],
    );
    assert!(many.is_err());
    let t: u64 = call(
        &mut s,
        P1,
        Request::AioSubmit { queue: 1, notify: 0, reqs: vec![w, read(fd, 0, 4)] },
        &mut [Lease::Read(b"wxyz")],
    )
    .unwrap();
    // A reap buffer too small for the next read is an error, not a stall.
    let mut tiny = [0u8; 2];
    let mut buf = [0u8; 8];
    let done: Vec<AioDone> =
        call(&mut s, P1, Request::AioReap { queue: 1, max: 1 }, &mut [Lease::Write(&mut tiny)]).unwrap();
    assert_eq!((done[0].ticket, done[0].result), (t, Ok(4)));
    let r: Result<Vec<AioDone>> =
        call(&mut s, P1, Request::AioReap { queue: 1, max: 8 }, &mut [Lease::Write(&mut tiny)]);
    assert_eq!(r, Err(Error::InvalidArgument));
    let done: Vec<AioDone> =
        call(&mut s, P1, Request::AioReap { queue: 1, max: 8 }, &mut [Lease::Write(&mut buf)]).unwrap();
    assert_eq!((done.len(), &buf[..4]), (1, &b"wxyz"[..]));
    // Another process, and another queue of the same process, have their own tickets and results.
    let t2: u64 = call(
        &mut s,
        P2,
        Request::AioSubmit { queue: 1, notify: 1, reqs: vec![read(fd, 0, 1)] },
        &mut [Lease::Read(b"x")],
    )
    .unwrap();
    assert_eq!(t2, 0);
    let q2: u64 = call(
        &mut s,
        P1,
        Request::AioSubmit { queue: 2, notify: 0, reqs: vec![read(fd, 1, 2)] },
        &mut [Lease::Read(b"x")],
    )
    .unwrap();
    let q3: u64 = call(
        &mut s,
        P1,
        Request::AioSubmit { queue: 3, notify: 0, reqs: vec![read(fd, 0, 1)] },
        &mut [Lease::Read(b"x")],
    )
    .unwrap();
    assert_eq!((q2, q3), (0, 0));
    let none: Vec<AioDone> =
        call(&mut s, P1, Request::AioReap { queue: 1, max: 8 }, &mut [Lease::Write(&mut buf)]).unwrap();
    assert!(none.is_empty(), "queue 1 has nothing left");
    let done: Vec<AioDone> =
        call(&mut s, P1, Request::AioReap { queue: 2, max: 8 }, &mut [Lease::Write(&mut buf)]).unwrap();
    assert_eq!((done.len(), done[0].result, &buf[..2]), (1, Ok(2), &b"xy"[..]));
    // A closed queue's requests never run; closing an unknown queue is NotFound.
    let _: () = call(&mut s, P1, Request::AioClose { queue: 3 }, &mut []).unwrap();
    assert_eq!(call::<()>(&mut s, P1, Request::AioClose { queue: 3 }, &mut []), Err(Error::NotFound));
    // An exited process's queues are dropped.
    let _: () = call(&mut s, P2, Request::Exit {}, &mut []).unwrap();
    assert_eq!(s.run_aio(), None);
}
