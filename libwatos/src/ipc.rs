//! IPC wrappers: calls (`send`), serving (`receive`/`reply`), leases and notifications.
//!
//! These are the kernel's IPC system calls as they are (raw byte messages and kernel leases). Servers and
//! clients speaking the protocol use `protocol::ipc`'s model instead, which [`crate::transport`] implements
//! on these calls; the kernel side is `kernel_core::ipc`.
//!
//! Design: slices in, `Result<_, SysError>` out, so ordinary code never builds a raw pointer. A
//! `Lease` records a buffer's address; it is only meaningful for the duration of the `send` it is
//! passed to, which blocks until the reply, so the buffer cannot be freed or moved meanwhile.

use crate::sys::raw;
pub use watos_abi::{Lease, RecvInfo, Sys, SysError, LEASE_READ, LEASE_WRITE, MAX_LEASES, MAX_MSG, NOTIFICATION};

/// A lease letting the server read `buf`.
pub fn lease_read(buf: &[u8]) -> Lease {
    Lease { ptr: buf.as_ptr() as u64, len: buf.len() as u64, rights: LEASE_READ }
}

/// A lease letting the server write (and read) `buf`.
pub fn lease_write(buf: &mut [u8]) -> Lease {
    Lease { ptr: buf.as_mut_ptr() as u64, len: buf.len() as u64, rights: LEASE_READ | LEASE_WRITE }
}

/// Calls `target`: sends `msg` with `leases`, blocks until the reply, which lands in `reply`.
/// Returns the reply's length. `TaskDied` means the server died (look it up again).
pub fn send(target: u64, msg: &[u8], reply: &mut [u8], leases: &[Lease]) -> Result<usize, SysError> {
    send_code(target, msg, reply, leases).map(|(len, _)| len)
}

/// `send`, also returning the server's reply code (0 unless it used `reply_code`).
pub fn send_code(target: u64, msg: &[u8], reply: &mut [u8], leases: &[Lease]) -> Result<(usize, u32), SysError> {
    send_sized(target, msg, reply, leases).map_err(|(e, _)| e)
}

/// `send_code` whose error carries, for `ReplyTooSmall`, the reply length the server needed (0 for
/// every other error): the call is over and the reply lost, so a caller can retry with that much.
pub fn send_sized(
    target: u64,
    msg: &[u8],
    reply: &mut [u8],
    leases: &[Lease],
) -> Result<(usize, u32), (SysError, usize)> {
    let lens = msg.len() as u64 | (leases.len() as u64) << 32;
    let (ret, rdx) = crate::sys::raw_rdx(
        Sys::Send,
        [target, msg.as_ptr() as u64, lens, reply.as_mut_ptr() as u64, reply.len() as u64, leases.as_ptr() as u64],
    );
    match SysError::decode(ret) {
        Ok(v) => Ok(((v & 0xFFFF_FFFF) as usize, (v >> 32) as u32)),
        Err(SysError::ReplyTooSmall) => Err((SysError::ReplyTooSmall, rdx as usize)),
        Err(e) => Err((e, 0)),
    }
}

/// Waits for a message (into `buf`) or for a notification bit in `mask`.
pub fn receive(buf: &mut [u8], mask: u64) -> Result<RecvInfo, SysError> {
    let mut info = RecvInfo::default();
    let ret =
        raw(Sys::Receive, [buf.as_mut_ptr() as u64, buf.len() as u64, mask, &mut info as *mut RecvInfo as u64, 0, 0]);
    SysError::decode(ret).map(|_| info)
}

/// `receive` that never blocks: `None` when no masked notification is pending and no caller waits.
pub fn try_receive(buf: &mut [u8], mask: u64) -> Result<Option<RecvInfo>, SysError> {
    let mut info = RecvInfo::default();
    let flags = watos_abi::RECV_NONBLOCK;
    let ret = raw(
        Sys::Receive,
        [buf.as_mut_ptr() as u64, buf.len() as u64, mask, &mut info as *mut RecvInfo as u64, flags, 0],
    );
    SysError::decode(ret).map(|v| (v != watos_abi::RECV_EMPTY).then_some(info))
}

/// Ends `client`'s call with `msg`. If `msg` does not fit the client's reply buffer
/// (`RecvInfo::reply_cap`) the client's call fails with `ReplyTooSmall`; ours still succeeds.
pub fn reply(client: u64, msg: &[u8]) -> Result<(), SysError> {
    reply_code(client, msg, 0)
}

/// `reply` with a code (up to 2^31 - 1) the client gets beside the length, e.g. an error number.
pub fn reply_code(client: u64, msg: &[u8], code: u32) -> Result<(), SysError> {
    SysError::decode(raw(Sys::Reply, [client, msg.as_ptr() as u64, msg.len() as u64, code as u64, 0, 0])).map(|_| ())
}

/// Length and rights of lease `index` of `client`'s call (its address is not revealed).
pub fn lease_info(client: u64, index: usize) -> Result<Lease, SysError> {
    let mut lease = Lease::default();
    SysError::decode(raw(Sys::LeaseInfo, [client, index as u64, &mut lease as *mut Lease as u64, 0, 0, 0]))?;
    Ok(lease)
}

/// Copies `buf.len()` bytes from `client`'s lease `index` at `offset` into `buf`.
pub fn borrow_read(client: u64, index: usize, offset: usize, buf: &mut [u8]) -> Result<usize, SysError> {
    let a = [client, index as u64, offset as u64, buf.as_mut_ptr() as u64, buf.len() as u64, 0];
    SysError::decode(raw(Sys::BorrowRead, a)).map(|n| n as usize)
}

/// Copies `buf` into `client`'s lease `index` at `offset`.
pub fn borrow_write(client: u64, index: usize, offset: usize, buf: &[u8]) -> Result<usize, SysError> {
    let a = [client, index as u64, offset as u64, buf.as_ptr() as u64, buf.len() as u64, 0];
    SysError::decode(raw(Sys::BorrowWrite, a)).map(|n| n as usize)
}

/// Sets notification `bits` on `target`.
pub fn notify(target: u64, bits: u64) -> Result<(), SysError> {
    SysError::decode(raw(Sys::Notify, [target, bits, 0, 0, 0, 0])).map(|_| ())
}

/// Asks the kernel to set notification `bits` on us when the monotonic clock reaches `deadline_ns`
/// (one timer per task; `bits == 0` cancels it).
pub fn set_timer(deadline_ns: u64, bits: u64) {
    let _ = raw(Sys::SetTimer, [deadline_ns, bits, 0, 0, 0, 0]);
}

/// Waits until one of the notification `bits` is set (taking them), leaving any callers queued:
/// what a driver uses to sleep until its interrupt in the middle of serving a request. Returns the
/// bits that fired.
pub fn wait_notification(bits: u64) -> Result<u64, SysError> {
    let mut info = RecvInfo::default();
    let ret = raw(Sys::Receive, [0, 0, bits, &mut info as *mut RecvInfo as u64, watos_abi::RECV_NOTIFY_ONLY, 0]);
    SysError::decode(ret).map(|_| info.notifications)
}
