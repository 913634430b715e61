//! The IPC model every WATOS server is written against: synchronous calls with inline messages and leases.
//!
//! Three modules named `ipc`, one per layer: this one, the transport-independent model that servers and
//! stubs are written against (implemented in memory by [`crate::local`] and on the kernel by
//! `libwatos::transport`); `libwatos::ipc`, the user-space wrappers of the kernel's IPC system calls;
//! and `kernel_core::ipc`, the kernel's implementation of those calls.
//!
//! Design (a model of the kernel IPC, so the same server code runs on the host and under WATOS):
//! - A [`Transport`] makes a synchronous `call` to a [`TaskId`] with an inline message of at most
//!   [`MAX_MESSAGE`] bytes and at most [`MAX_LEASES`] leases, and gets an inline reply of at most
//!   [`MAX_MESSAGE`] bytes. Oversize messages and replies are errors ([`Error::TooBig`]), never cut.
//! - A [`Lease`] lends a caller buffer for the duration of one call, `Read` (server may read it),
//!   `Write` (server may write it) or `ReadWrite`. The server sees leases only through [`Leases`], whose
//!   accessors check index, offset + length and direction; a violation is an error returned to the
//!   server (never a fault of the client: "borrowing is not a weapon"). Leases end at reply; Rust
//!   lifetimes enforce that here, the kernel's lease table does it under WATOS.
//! - [`Leases::forward`] lends (part of) a lease the server holds on to the next server with the same or
//!   narrower bounds and the same rights, so bulk data moves once, from the app buffer to the final server.
//! - Task ids carry a wide generation (32 bits, so it does not wrap in practice). A call addressed to an
//!   old generation fails with [`Error::ServerRestarted`] (or [`Error::ServerDead`] if nothing runs in
//!   that slot); [`Transport::refresh`] tells the caller the current id. A server restarted while a call
//!   is in flight makes that call fail with `ServerRestarted`: its reply is dropped (no time travel).
//! - The server learns who is calling from the transport ([`Incoming::caller`]), never from the message,
//!   so a process cannot act on another process's descriptors.
//!
//! [`crate::local::LocalIpc`] implements this in memory for host tests: every server is an object in
//! the same process.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest inline message (request or reply) in bytes: the kernel's `MAX_MSG` (docs/ARCHITECTURE.md,
/// "IPC"), as in Hubris. Small requests and replies travel inline; a request body or a reply that does
/// not fit travels in a lease of at most [`MAX_INDIRECT`] bytes (see [`crate::idl`]); bulk data
/// always goes in leases.
pub const MAX_MESSAGE: usize = 256;

/// Largest request body or reply carried in a lease when it does not fit inline: two paths of
/// [`MAX_PATH`] bytes, or a page of directory entries.
pub const MAX_INDIRECT: usize = 4096;

/// Most leases one call may carry (the kernel's limit); the generated stubs use up to two of them for
/// an out-of-line request body and reply.
pub const MAX_LEASES: usize = 16;

/// Longest path accepted by the path-level interfaces, in bytes (POSIX PATH_MAX is 4096; two paths
/// must fit one out-of-line request).
pub const MAX_PATH: usize = 1024;

/// A task (server or client process) as IPC addresses it: a slot index and the generation of the task
/// that runs in that slot now. A restart bumps the generation, so a stale id never reaches the new task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub index: u16,
    pub generation: u32,
}

impl TaskId {
    pub const fn new(index: u16, generation: u32) -> Self {
        TaskId { index, generation }
    }
}

/// What a lease lets the server do with the lent buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseKind {
    Read,
    Write,
    ReadWrite,
}

/// A caller buffer lent to a server for one call.
#[derive(Debug)]
pub enum Lease<'a> {
    /// The server may only read the buffer (data the caller sends, e.g. a write).
    Read(&'a [u8]),
    /// The server may only write the buffer (room for data the caller receives, e.g. a read).
    Write(&'a mut [u8]),
    /// The server may read and write the buffer.
    ReadWrite(&'a mut [u8]),
}

impl Lease<'_> {
    pub fn len(&self) -> usize {
        match self {
            Lease::Read(b) => b.len(),
            Lease::Write(b) | Lease::ReadWrite(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> LeaseKind {
        match self {
            Lease::Read(_) => LeaseKind::Read,
            Lease::Write(_) => LeaseKind::Write,
            Lease::ReadWrite(_) => LeaseKind::ReadWrite,
        }
    }
}

/// Check that `offset..offset+len` lies inside a lease of `total` bytes; returns the range.
fn lease_range(total: usize, offset: usize, len: usize) -> Result<core::ops::Range<usize>> {
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(offset..end),
        // The kernel answers an out-of-bounds lease access with an error to the server (EFAULT-like).
        _ => Err(Error::InvalidArgument),
    }
}

/// How a server reaches the leases of the call it is handling: every access is checked.
///
/// The in-memory transport implements it over the lent slices ([`Leases`]); a kernel transport
/// implements it with its borrow syscalls, so server code is the same in both.
///
/// Errors: an index past the last lease or a range outside the lease is [`Error::InvalidArgument`];
/// reading a `Write` lease or writing a `Read` lease is [`Error::PermissionDenied`].
pub trait LeaseAccess {
    /// Number of leases the caller sent.
    fn count(&self) -> usize;
    /// Length in bytes of lease `index`.
    fn len(&self, index: usize) -> Result<usize>;
    /// Rights of lease `index`.
    fn kind(&self, index: usize) -> Result<LeaseKind>;
    /// Copy `buf.len()` bytes from lease `index` at `offset` into `buf`.
    fn read(&self, index: usize, offset: usize, buf: &mut [u8]) -> Result<()>;
    /// Copy `data` into lease `index` at `offset`.
    fn write(&mut self, index: usize, offset: usize, data: &[u8]) -> Result<()>;
    /// Lend `len` bytes of lease `index` from `offset` on to another server, with the rights the
    /// caller gave (never more); the forwarded lease cannot outlive this call. A transport without
    /// forwarding answers `NotSupported` and servers fall back to copying through their own memory.
    fn forward(&mut self, _index: usize, _offset: usize, _len: usize) -> Result<Lease<'_>> {
        Err(Error::NotSupported)
    }
}

/// The leases of one call over the caller's lent slices (the in-memory transport's [`LeaseAccess`]).
pub struct Leases<'c, 'a> {
    leases: &'c mut [Lease<'a>],
}

impl<'c, 'a> Leases<'c, 'a> {
    pub fn new(leases: &'c mut [Lease<'a>]) -> Self {
        Leases { leases }
    }

    fn get(&self, index: usize) -> Result<&Lease<'a>> {
        self.leases.get(index).ok_or(Error::InvalidArgument)
    }

    fn get_mut(&mut self, index: usize) -> Result<&mut Lease<'a>> {
        self.leases.get_mut(index).ok_or(Error::InvalidArgument)
    }
}

impl LeaseAccess for Leases<'_, '_> {
    fn count(&self) -> usize {
        self.leases.len()
    }

    fn len(&self, index: usize) -> Result<usize> {
        Ok(self.get(index)?.len())
    }

    fn kind(&self, index: usize) -> Result<LeaseKind> {
        Ok(self.get(index)?.kind())
    }

    fn read(&self, index: usize, offset: usize, buf: &mut [u8]) -> Result<()> {
        let src: &[u8] = match self.get(index)? {
            Lease::Read(b) => b,
            Lease::ReadWrite(b) => b,
            Lease::Write(_) => return Err(Error::PermissionDenied),
        };
        let range = lease_range(src.len(), offset, buf.len())?;
        buf.copy_from_slice(&src[range]);
        Ok(())
    }

    fn write(&mut self, index: usize, offset: usize, data: &[u8]) -> Result<()> {
        let dst: &mut [u8] = match self.get_mut(index)? {
            Lease::Write(b) | Lease::ReadWrite(b) => b,
            Lease::Read(_) => return Err(Error::PermissionDenied),
        };
        let range = lease_range(dst.len(), offset, data.len())?;
        dst[range].copy_from_slice(data);
        Ok(())
    }

    fn forward(&mut self, index: usize, offset: usize, len: usize) -> Result<Lease<'_>> {
        let lease = self.get_mut(index)?;
        let range = lease_range(lease.len(), offset, len)?;
        Ok(match lease {
            Lease::Read(b) => Lease::Read(&b[range]),
            Lease::Write(b) => Lease::Write(&mut b[range]),
            Lease::ReadWrite(b) => Lease::ReadWrite(&mut b[range]),
        })
    }
}

/// One call as the server receives it: who sent it and what it lent.
pub struct Incoming<'c, 'a> {
    caller: TaskId,
    pub leases: &'c mut (dyn LeaseAccess + 'a),
}

impl<'c, 'a> Incoming<'c, 'a> {
    pub fn new(caller: TaskId, leases: &'c mut (dyn LeaseAccess + 'a)) -> Self {
        Incoming { caller, leases }
    }

    /// The calling task, as the kernel (or the in-memory transport) vouches for it.
    pub fn caller(&self) -> TaskId {
        self.caller
    }
}

/// A server: handles one message at a time and writes its reply.
pub trait Server {
    /// Handle `msg`, write the reply into `reply` and return its length. An `Err` models a server
    /// that faulted on this call: the caller receives that error instead of a reply.
    fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize>;
}

/// The client half of IPC: what generated stubs call.
pub trait Transport {
    /// Send `msg` with `leases` to `to`, block until it replies, and copy the reply into `reply`;
    /// returns the reply length. Errors: `TooBig` for a message over [`MAX_MESSAGE`], more than
    /// [`MAX_LEASES`] leases, or a reply that does not fit `reply`; `ServerRestarted` if `to` names an
    /// older generation than the one running (or the server was restarted during the call);
    /// `ServerDead` if nothing runs there.
    fn call(&self, to: TaskId, msg: &[u8], leases: &mut [Lease<'_>], reply: &mut [u8]) -> Result<usize>;

    /// The id of the task that runs in `to`'s slot now (after a restart: the new generation).
    fn refresh(&self, to: TaskId) -> Result<TaskId>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn call(&self, to: TaskId, msg: &[u8], leases: &mut [Lease<'_>], reply: &mut [u8]) -> Result<usize> {
        (**self).call(to, msg, leases, reply)
    }
    fn refresh(&self, to: TaskId) -> Result<TaskId> {
        (**self).refresh(to)
    }
}

/// Checks every transport applies before delivering a call.
pub fn check_call(msg: &[u8], leases: &[Lease<'_>]) -> Result<()> {
    if msg.len() > MAX_MESSAGE || leases.len() > MAX_LEASES {
        return Err(Error::TooBig);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_accessors_check_bounds_and_direction() {
        let src = [1u8, 2, 3, 4];
        let mut dst = [0u8; 4];
        let mut leases = [Lease::Read(&src), Lease::Write(&mut dst)];
        let mut l = Leases::new(&mut leases);
        let mut buf = [0u8; 2];
        l.read(0, 2, &mut buf).unwrap();
        assert_eq!(buf, [3, 4]);
        assert_eq!(l.read(0, 3, &mut buf), Err(Error::InvalidArgument));
        assert_eq!(l.read(0, usize::MAX, &mut buf), Err(Error::InvalidArgument));
        assert_eq!(l.read(1, 0, &mut buf), Err(Error::PermissionDenied));
        assert_eq!(l.write(0, 0, &buf), Err(Error::PermissionDenied));
        assert_eq!(l.write(2, 0, &buf), Err(Error::InvalidArgument));
        l.write(1, 1, &[9, 9]).unwrap();
        assert_eq!(l.write(1, 3, &[9, 9]), Err(Error::InvalidArgument));
        assert_eq!(dst, [0, 9, 9, 0]);
    }

    #[test]
    fn forwarded_lease_keeps_bounds_and_rights() {
        let mut dst = [0u8; 8];
        let mut leases = [Lease::Write(&mut dst)];
        let mut l = Leases::new(&mut leases);
        assert_eq!(l.forward(0, 4, 8).err(), Some(Error::InvalidArgument));
        let mut fwd = [l.forward(0, 2, 4).unwrap()];
        let mut inner = Leases::new(&mut fwd);
        assert_eq!(inner.len(0), Ok(4));
        assert_eq!(inner.read(0, 0, &mut [0u8; 1]), Err(Error::PermissionDenied));
        assert_eq!(inner.write(0, 1, &[5u8; 4]), Err(Error::InvalidArgument));
        inner.write(0, 0, &[5u8; 4]).unwrap();
        assert_eq!(dst, [0, 0, 5, 5, 5, 5, 0, 0]);
    }

    #[test]
    fn oversize_calls_are_refused() {
        assert_eq!(check_call(&[0u8; MAX_MESSAGE + 1], &[]), Err(Error::TooBig));
        let b = [0u8; 1];
        let leases: alloc::vec::Vec<Lease<'_>> = (0..=MAX_LEASES).map(|_| Lease::Read(&b)).collect();
        assert_eq!(check_call(&[], &leases), Err(Error::TooBig));
        assert_eq!(check_call(&[0u8; MAX_MESSAGE], &leases[..MAX_LEASES]), Ok(()));
    }
}
