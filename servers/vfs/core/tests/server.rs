//! VfsServer through the generated dispatch, with a transport that can and one that cannot forward
//! leases (the vfs falls back to copying through its own memory).

mod common;

use common::*;
use protocol::api::vfs::{dispatch, OpenFlags, Request};
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
