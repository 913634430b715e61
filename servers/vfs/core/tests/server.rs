//! VfsServer through the generated dispatch, with a transport that can and one that cannot forward
//! leases (the vfs falls back to copying through its own memory).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use protocol::api::vfs::{dispatch, OpenFlags, Request};
use protocol::fs::Stat;
use protocol::idl::decode_reply_parts;
use protocol::ipc::{Incoming, Lease, LeaseAccess, LeaseKind, Leases, MAX_MESSAGE};
use protocol::Result;
use vfs::VfsServer;

/// In-memory leases without forwarding, like a kernel that has no forward call.
struct NoForward<'c, 'a>(Leases<'c, 'a>);

impl LeaseAccess for NoForward<'_, '_> {
    fn count(&self) -> usize {
        self.0.count()
    }
    fn len(&self, i: usize) -> Result<usize> {
        self.0.len(i)
    }
    fn kind(&self, i: usize) -> Result<LeaseKind> {
        self.0.kind(i)
    }
    fn read(&self, i: usize, off: usize, buf: &mut [u8]) -> Result<()> {
        self.0.read(i, off, buf)
    }
    fn write(&mut self, i: usize, off: usize, data: &[u8]) -> Result<()> {
        self.0.write(i, off, data)
    }
}

/// Send `req` with `leases` to the server as process P1, forwarding or not.
fn call<R: serde::de::DeserializeOwned>(
    s: &mut VfsServer,
    req: Request<'_>,
    leases: &mut [Lease<'_>],
    forward: bool,
) -> Result<R> {
    let mut msg = [0u8; MAX_MESSAGE];
    let n = req.encode(&mut msg)?;
    let mut reply = [0u8; MAX_MESSAGE];
    let len = if forward {
        let mut access = Leases::new(leases);
        dispatch(s, &msg[..n], &mut Incoming::new(P1, &mut access), &mut reply)?
    } else {
        let mut access = NoForward(Leases::new(leases));
        dispatch(s, &msg[..n], &mut Incoming::new(P1, &mut access), &mut reply)?
    };
    decode_reply_parts(&reply[..len], &[])
}

#[test]
fn read_and_write_with_and_without_lease_forwarding() {
    let (v, _) = setup();
    let mut s = VfsServer::new(v);
    for forward in [true, false] {
        let flags = OpenFlags::READ | OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let fd: u32 = call(&mut s, Request::Open { path: "/f", flags, mode: 0o644 }, &mut [], forward).unwrap();
        let n: u32 = call(&mut s, Request::Write { fd }, &mut [Lease::Read(b"forwarded?")], forward).unwrap();
        assert_eq!(n, 10);
        let _: u64 =
            call(&mut s, Request::Seek { fd, whence: protocol::api::vfs::Whence::Start, offset: 0 }, &mut [], forward)
                .unwrap();
        let mut buf = [0u8; 16];
        let n: u32 = call(&mut s, Request::Read { fd }, &mut [Lease::Write(&mut buf)], forward).unwrap();
        assert_eq!(&buf[..n as usize], b"forwarded?", "forward = {forward}");
        let () = call(&mut s, Request::Close { fd }, &mut [], forward).unwrap();
    }
}

/// A clock whose every reading moves it by the step the test sets, so a request takes exactly that
/// many ticks; its rate is 1 GHz.
struct Stepping(Rc<Cell<u64>>, u64);

impl protocol::latency::Ticks for Stepping {
    fn now(&mut self) -> u64 {
        self.1 += self.0.get();
        self.1
    }
    fn hz(&mut self) -> u64 {
        1_000_000_000
    }
}

/// Send `req` through the timed entry point (`VfsServer::serve`) as process P1.
fn timed<R: serde::de::DeserializeOwned>(s: &mut VfsServer, req: Request<'_>, leases: &mut [Lease<'_>]) -> Result<R> {
    let mut msg = [0u8; MAX_MESSAGE];
    let n = req.encode(&mut msg)?;
    let mut reply = [0u8; MAX_MESSAGE];
    let mut access = Leases::new(leases);
    let len = s.serve(&msg[..n], &mut Incoming::new(P1, &mut access), &mut reply)?;
    decode_reply_parts(&reply[..len], &[])
}

#[test]
fn every_request_is_timed_by_kind_and_its_errors_counted_by_kind() {
    use protocol::api::vfs::{OpKind, VfsTiming};
    use protocol::Error;
    let (v, _) = setup();
    let step = Rc::new(Cell::new(0));
    let mut s = VfsServer::new(v).with_clock(Box::new(Stepping(step.clone(), 0)));
    let flags = OpenFlags::READ | OpenFlags::WRITE | OpenFlags::CREATE;
    step.set(500);
    let fd: u32 = timed(&mut s, Request::Open { path: "/t", flags, mode: 0o644 }, &mut []).unwrap();
    // Three writes of 1000, 2000 and 3000 ticks, five lookups of missing files of 40 ticks.
    for t in [1000, 2000, 3000] {
        step.set(t);
        let _: u32 = timed(&mut s, Request::Write { fd }, &mut [Lease::Read(b"abc")]).unwrap();
    }
    step.set(40);
    for i in 0..5 {
        let path = format!("/missing-{i}");
        assert_eq!(
            timed::<u32>(&mut s, Request::Open { path: &path, flags: OpenFlags::READ, mode: 0 }, &mut []),
            Err(Error::NotFound)
        );
    }
    assert_eq!(timed::<Stat>(&mut s, Request::Stat { path: "/nope" }, &mut []).map(|_| ()), Err(Error::NotFound));
    assert_eq!(timed::<()>(&mut s, Request::Close { fd: 999 }, &mut []), Err(Error::BadFileDescriptor));
    // A message that is not a request: an error reply, filed under `Other`.
    let mut reply = [0u8; MAX_MESSAGE];
    let n = s.serve(&[0xff; 3], &mut Incoming::new(P1, &mut Leases::new(&mut [])), &mut reply).unwrap();
    assert_eq!(protocol::idl::reply_error(&reply[..n]), Some(Error::Malformed));

    step.set(7);
    let t: VfsTiming = timed(&mut s, Request::Timing {}, &mut []).unwrap();
    assert_eq!(t.tick_hz, 1_000_000_000);
    let w = t.of(OpKind::Write);
    assert_eq!((w.count, w.min, w.max, w.mean), (3, 1000, 3000, 2000));
    assert!(w.p50.abs_diff(2000) * 16 <= 2000 && w.p99.abs_diff(3000) * 16 <= 3000, "{w:?}");
    let o = t.of(OpKind::Open);
    assert_eq!((o.count, o.min, o.max), (6, 40, 500), "failed opens are timed too");
    assert_eq!((t.of(OpKind::Stat).count, t.of(OpKind::Close).count, t.of(OpKind::Other).count), (1, 1, 1));
    assert_eq!(t.of(OpKind::Read).count, 0);
    assert!(t.ops.iter().all(|(_, l)| l.count > 0), "only kinds that ran are listed");
    assert_eq!(t.errors_of(Error::NotFound), 6);
    assert_eq!((t.errors_of(Error::BadFileDescriptor), t.errors_of(Error::Malformed)), (1, 1));
    assert_eq!(t.errors.len(), 3, "{:?}", t.errors);
    // The `timing` request itself is counted afterwards, under `Other`.
    let again: VfsTiming = timed(&mut s, Request::Timing {}, &mut []).unwrap();
    assert_eq!(again.of(OpKind::Other).count, 2);
}

#[test]
fn without_a_clock_requests_are_counted_with_no_ticks() {
    let (v, _) = setup();
    let mut s = VfsServer::new(v);
    let _: Stat = timed(&mut s, Request::Stat { path: "/" }, &mut []).unwrap();
    let t: protocol::api::vfs::VfsTiming = timed(&mut s, Request::Timing {}, &mut []).unwrap();
    let st = t.of(protocol::api::vfs::OpKind::Stat);
    assert_eq!((t.tick_hz, st.count, st.max), (0, 1, 0));
}
