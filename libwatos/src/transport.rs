//! The protocol crate's IPC model (`protocol::ipc`) on the WATOS kernel, so the same server and stub
//! code that runs over `protocol::local` in host tests runs between real processes.
//!
//! Design: `KernelTransport` is the client half: `call` turns protocol leases into kernel leases and
//! makes one `send`; it remembers the name each server was found by, so `refresh` can look a
//! restarted server up again. `serve` is the server half: one loop of `receive`, `Server::handle`,
//! `reply`, with `KernelLeases` answering the server's lease accesses through `lease_info` and the
//! borrow syscalls. A server's `Err` travels as reply code 1 with the postcard-encoded error as the
//! reply bytes, so the caller gets exactly that error back. Kernel errors map onto protocol errors:
//! a dead server is `ServerRestarted` when its name now names a newer task, `ServerDead` otherwise.
//! `KernelLeases::forward` lends part of the caller's lease on without copying (see `forward`). The serve
//! loop reaches the kernel only through the `Endpoint` trait, the client half and `KernelLeases` through
//! `Syscalls`; `Kernel` (transport_kernel.rs) implements both with the real system calls, and host
//! tests drive the same code from a scripted kernel (transport_tests.rs, kernel_tests.rs).

use crate::forward;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use protocol::ipc::{
    check_call, Incoming, Lease as PLease, LeaseAccess, LeaseKind, Server, TaskId, Transport, MAX_MESSAGE,
};
use protocol::{Error, Result};
use watos_abi::{Lease, RecvInfo, SysError, LEASE_READ, LEASE_WRITE, NOTIFICATION};

/// A kernel call's own result.
type SysResult<T> = core::result::Result<T, SysError>;

/// Reply code meaning "the reply bytes are a postcard-encoded `protocol::Error`".
pub const CODE_ERROR: u32 = 1;

/// Kernel id (generation << 16 | index) to protocol id.
pub fn from_kernel(raw: u64) -> TaskId {
    TaskId::new(raw as u16, (raw >> 16) as u16 as u32)
}

/// Protocol id to kernel id; `None` for a generation the kernel cannot have issued.
pub fn to_kernel(id: TaskId) -> Option<u64> {
    (id.generation <= u16::MAX as u32).then_some((id.generation as u64) << 16 | id.index as u64)
}

/// Kernel error of a call or lease access, as the protocol names it (`TaskDied` needs context and is
/// mapped by the caller).
pub fn map_error(e: SysError) -> Error {
    match e {
        SysError::MessageTooBig | SysError::ReplyTooSmall => Error::TooBig,
        SysError::NoSuchTask | SysError::TaskDied => Error::ServerDead,
        SysError::OutOfMemory => Error::NoSpace,
        SysError::NotPermitted => Error::PermissionDenied,
        SysError::WouldDeadlock => Error::Busy,
        _ => Error::InvalidArgument,
    }
}

/// The kernel calls the client half and `KernelLeases` make: `Kernel` makes them for real; host tests
/// (kernel_tests.rs) answer them from memory, so name look-ups, lease checks and error mapping are
/// tested without a kernel.
pub trait Syscalls {
    fn find_task(&self, name: &core::ffi::CStr) -> SysResult<u64>;
    fn send_code(&self, target: u64, msg: &[u8], reply: &mut [u8], leases: &[Lease]) -> SysResult<(usize, u32)>;
    fn lease_info(&self, client: u64, index: usize) -> SysResult<Lease>;
    fn borrow_read(&self, client: u64, index: usize, offset: usize, buf: &mut [u8]) -> SysResult<usize>;
    fn borrow_write(&self, client: u64, index: usize, offset: usize, data: &[u8]) -> SysResult<usize>;
    /// Maps `len` bytes read-only (the forward window); its address.
    fn map_window(&self, len: usize) -> Option<usize>;
}

/// The client half: calls over kernel IPC.
#[derive(Default)]
pub struct KernelTransport<K: Syscalls = Kernel> {
    kernel: K,
    names: RefCell<BTreeMap<u16, String>>,
}

impl KernelTransport {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<K: Syscalls> KernelTransport<K> {
    /// A transport making its kernel calls through `kernel`.
    pub fn with(kernel: K) -> Self {
        KernelTransport { kernel, names: RefCell::default() }
    }

    /// The id of the live task called `name` (remembered for `refresh`).
    pub fn lookup(&self, name: &str) -> Result<TaskId> {
        let mut cname: Vec<u8> = name.as_bytes().into();
        cname.push(0);
        let c = core::ffi::CStr::from_bytes_with_nul(&cname).map_err(|_| Error::InvalidArgument)?;
        let id = from_kernel(self.kernel.find_task(c).map_err(map_error)?);
        self.names.borrow_mut().insert(id.index, String::from(name));
        Ok(id)
    }
}

impl<K: Syscalls> Transport for KernelTransport<K> {
    fn call(&self, to: TaskId, msg: &[u8], leases: &mut [PLease<'_>], reply: &mut [u8]) -> Result<usize> {
        check_call(msg, leases)?;
        let target = to_kernel(to).ok_or(Error::ServerDead)?;
        let kernel_leases: Vec<Lease> = leases.iter_mut().map(forward::kernel_lease).collect::<Result<_>>()?;
        let sent = self.kernel.send_code(target, msg, reply, &kernel_leases);
        call_result(sent, reply, to, |to| self.refresh(to))
    }

    fn refresh(&self, to: TaskId) -> Result<TaskId> {
        let name = self.names.borrow().get(&to.index).cloned().ok_or(Error::ServerDead)?;
        self.lookup(&name)
    }
}

/// What a call's kernel result means to the caller: the reply's length, the server's own error (reply
/// code `CODE_ERROR`), or the kernel's error; for `TaskDied`, `refresh` says whether the name now
/// names a newer task (`ServerRestarted`) or nothing (`ServerDead`).
pub(crate) fn call_result(
    sent: core::result::Result<(usize, u32), SysError>,
    reply: &[u8],
    to: TaskId,
    refresh: impl FnOnce(TaskId) -> Result<TaskId>,
) -> Result<usize> {
    match sent {
        Ok((len, 0)) => Ok(len),
        Ok((len, CODE_ERROR)) => {
            Err(reply.get(..len).and_then(|r| postcard::from_bytes(r).ok()).unwrap_or(Error::Malformed))
        }
        Ok(_) => Err(Error::Malformed),
        Err(SysError::TaskDied) => Err(match refresh(to) {
            Ok(now) if now != to => Error::ServerRestarted,
            _ => Error::ServerDead,
        }),
        Err(e) => Err(map_error(e)),
    }
}

/// The server's view of the current caller's leases, through the kernel.
pub struct KernelLeases<K: Syscalls = Kernel> {
    kernel: K,
    client: u64,
    count: usize,
}

impl<K: Syscalls> LeaseAccess for KernelLeases<K> {
    fn count(&self) -> usize {
        self.count
    }
    fn len(&self, index: usize) -> Result<usize> {
        self.kernel.lease_info(self.client, index).map(|l| l.len as usize).map_err(|_| Error::InvalidArgument)
    }
    fn kind(&self, index: usize) -> Result<LeaseKind> {
        match self.kernel.lease_info(self.client, index).map_err(|_| Error::InvalidArgument)?.rights {
            LEASE_READ => Ok(LeaseKind::Read),
            LEASE_WRITE => Ok(LeaseKind::Write),
            _ => Ok(LeaseKind::ReadWrite),
        }
    }
    fn read(&self, index: usize, offset: usize, buf: &mut [u8]) -> Result<()> {
        match self.kernel.borrow_read(self.client, index, offset, buf) {
            Ok(_) => Ok(()),
            Err(SysError::BadLease) if self.kind(index) == Ok(LeaseKind::Write) => Err(Error::PermissionDenied),
            Err(_) => Err(Error::InvalidArgument),
        }
    }
    fn write(&mut self, index: usize, offset: usize, data: &[u8]) -> Result<()> {
        match self.kernel.borrow_write(self.client, index, offset, data) {
            Ok(_) => Ok(()),
            Err(SysError::BadLease) if self.kind(index) == Ok(LeaseKind::Read) => Err(Error::PermissionDenied),
            Err(_) => Err(Error::InvalidArgument),
        }
    }
    fn forward(&mut self, index: usize, offset: usize, len: usize) -> Result<PLease<'_>> {
        let lease = self.kernel.lease_info(self.client, index).map_err(|_| Error::InvalidArgument)?;
        if offset.checked_add(len).is_none_or(|end| end as u64 > lease.len) {
            forward::refused();
            return Err(Error::InvalidArgument);
        }
        let live = forward::Live { client: self.client, index, offset, len, rights: lease.rights };
        let (base, len) = forward::start(live, |n| self.kernel.map_window(n))?;
        // Safety: the window is `forward::WINDOW` bytes mapped (read-only) once and never unmapped,
        // `len` is at most that, and it is handed out only here, borrowing these leases mutably, while
        // `start` refuses any other call's forward until ours ends: no other reference to it is live.
        // Nothing reads or writes it through this slice except by mistake; a write then faults.
        let window = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, len) };
        Ok(match lease.rights {
            LEASE_READ => PLease::Read(window),
            LEASE_WRITE => PLease::Write(window),
            _ => PLease::ReadWrite(window),
        })
    }
}

impl<K: Syscalls> Drop for KernelLeases<K> {
    /// The call ends with its leases: so does any forward of them.
    fn drop(&mut self) {
        forward::end(self.client);
    }
}

/// Serves calls with `server` until a notification in `stop_bits` arrives (0: forever).
pub fn serve<S: Server>(server: &mut S, stop_bits: u64) -> Result<()> {
    serve_loop(&mut Kernel, server, stop_bits, 0, None, None)
}

/// `serve` for a server with deferred work. `idle` is called whenever no caller is waiting: it
/// returns `None` when it has nothing to do (the loop then sleeps in a blocking `receive`), or the
/// tasks to notify (with which bits) about the work it just did, and the loop looks for callers
/// again. So callers are always answered before deferred work runs, and the work runs in batches.
pub fn serve_idle<S: Server>(
    server: &mut S,
    stop_bits: u64,
    mut idle: impl FnMut(&mut S) -> Option<Vec<(TaskId, u64)>>,
) -> Result<()> {
    serve_loop(&mut Kernel, server, stop_bits, 0, Some(&mut idle), None)
}

/// `serve` for a server with background work on a timer: a notification in `tick_bits` (the
/// kernel timer the server arms, see `ipc::set_timer`) calls `tick` between two calls, never in
/// the middle of one, so the background work sees the server's state as a caller would.
pub fn serve_ticking<S: Server>(
    server: &mut S,
    stop_bits: u64,
    tick_bits: u64,
    mut tick: impl FnMut(&mut S),
) -> Result<()> {
    serve_loop(&mut Kernel, server, stop_bits, tick_bits, None, Some(&mut tick))
}

/// Deferred work a serve loop runs when no caller waits.
type Idle<'a, S> = &'a mut dyn FnMut(&mut S) -> Option<Vec<(TaskId, u64)>>;
/// Work a serve loop runs when its timer bits arrive.
type Tick<'a, S> = &'a mut dyn FnMut(&mut S);

/// The kernel calls a serve loop makes: `Kernel` makes them for real; the host tests script them, so
/// the loop's decisions (stop or tick, idle work, error replies) are tested without a kernel.
pub(crate) trait Endpoint {
    type Leases: LeaseAccess;
    fn receive(&mut self, buf: &mut [u8], mask: u64) -> SysResult<RecvInfo>;
    fn try_receive(&mut self, buf: &mut [u8], mask: u64) -> SysResult<Option<RecvInfo>>;
    /// The leases of the call `info` announced.
    fn leases(&mut self, info: &RecvInfo) -> Self::Leases;
    fn reply(&mut self, client: u64, msg: &[u8], code: u32) -> SysResult<()>;
    fn notify(&mut self, task: u64, bits: u64) -> SysResult<()>;
}

/// Without `idle`, every wait is a plain blocking `receive` (no extra syscall per call).
pub(crate) fn serve_loop<E: Endpoint, S: Server>(
    kernel: &mut E,
    server: &mut S,
    stop_bits: u64,
    tick_bits: u64,
    mut idle: Option<Idle<'_, S>>,
    mut tick: Option<Tick<'_, S>>,
) -> Result<()> {
    let mut msg = [0u8; MAX_MESSAGE];
    let mut reply = [0u8; MAX_MESSAGE];
    let mask = stop_bits | tick_bits;
    loop {
        let waiting = match idle {
            Some(_) => kernel.try_receive(&mut msg, mask).map_err(map_error)?,
            None => Some(kernel.receive(&mut msg, mask).map_err(map_error)?),
        };
        let info = match waiting {
            Some(info) => info,
            None => match idle.as_mut().and_then(|f| f(server)) {
                Some(wake) => {
                    for (task, bits) in wake {
                        // A client that died meanwhile has nobody left to wake.
                        let _ = to_kernel(task).map(|id| kernel.notify(id, bits));
                    }
                    continue;
                }
                None => kernel.receive(&mut msg, mask).map_err(map_error)?,
            },
        };
        if info.sender == NOTIFICATION && info.notifications & stop_bits == 0 && info.notifications & tick_bits != 0 {
            if let Some(f) = tick.as_mut() {
                f(server);
            }
            continue;
        }
        if info.sender == NOTIFICATION {
            return Ok(());
        }
        let mut leases = kernel.leases(&info);
        let mut cx = Incoming::new(from_kernel(info.sender), &mut leases);
        let (n, code) = match server.handle(&msg[..(info.len as usize).min(MAX_MESSAGE)], &mut cx, &mut reply) {
            Ok(n) => (n.min(MAX_MESSAGE), 0),
            Err(e) => (postcard::to_slice(&e, &mut reply).map(|s| s.len()).unwrap_or(0), CODE_ERROR),
        };
        // A caller that died meanwhile is no reason to stop serving the others.
        let _ = kernel.reply(info.sender, &reply[..n], code);
    }
}

#[path = "transport_kernel.rs"]
mod kernel;
pub use kernel::Kernel;

#[cfg(test)]
#[path = "transport_tests.rs"]
mod serve_tests;

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod kernel_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_convert_both_ways_and_refuse_impossible_generations() {
        let raw = 0xBEEF_0003;
        assert_eq!(from_kernel(raw), TaskId::new(3, 0xBEEF));
        assert_eq!(to_kernel(TaskId::new(3, 0xBEEF)), Some(raw));
        assert_eq!(to_kernel(TaskId::new(3, 0x1_0000)), None);
    }

    #[test]
    fn kernel_errors_map_to_protocol_errors() {
        assert_eq!(map_error(SysError::MessageTooBig), Error::TooBig);
        assert_eq!(map_error(SysError::NoSuchTask), Error::ServerDead);
        assert_eq!(map_error(SysError::NullPointer), Error::InvalidArgument);
    }

    #[test]
    fn protocol_leases_become_kernel_leases_with_the_right_rights() {
        let data = [1u8; 4];
        let mut out = [0u8; 8];
        let mut both = [0u8; 2];
        let mut leases = [PLease::Read(&data), PLease::Write(&mut out), PLease::ReadWrite(&mut both)];
        let k: Vec<Lease> = leases.iter_mut().map(|l| forward::kernel_lease(l).unwrap()).collect();
        assert_eq!((k[0].len, k[0].rights), (4, LEASE_READ));
        assert_eq!((k[1].len, k[1].rights), (8, LEASE_WRITE));
        assert_eq!((k[2].len, k[2].rights), (2, LEASE_READ | LEASE_WRITE));
    }

    #[test]
    fn server_errors_survive_the_reply_encoding() {
        let mut buf = [0u8; MAX_MESSAGE];
        let e = Error::Corrupt { block: 7 };
        let n = postcard::to_slice(&e, &mut buf).unwrap().len();
        assert_eq!(postcard::from_bytes::<Error>(&buf[..n]).unwrap(), e);
    }
}
