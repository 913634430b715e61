//! The client half and `KernelLeases` against a kernel kept in memory: name look-ups and what they
//! remember, what a call sends and what its caller gets back, and how a server's lease accesses and
//! forwards turn the kernel's answers into protocol results.
//!
//! Design: `Memory` answers `Syscalls` the way the kernel does for the parts these tests need: tasks
//! by name, one scripted answer per `send` (every send recorded with its leases), and the current
//! caller's leases as byte buffers with rights, refusing accesses outside a lease or against its
//! rights with `BadLease`. The transport and leases borrow it, so each test inspects it afterwards.

extern crate std;

use super::*;
use alloc::collections::VecDeque;
use alloc::vec;
use core::ffi::CStr;

/// A send as the kernel saw it: target, message, leases.
type Sent = (u64, Vec<u8>, Vec<Lease>);
/// What a send returns: the reply bytes and code, or the kernel's error.
type Answer = SysResult<(Vec<u8>, u32)>;

/// The kernel's side, in memory.
#[derive(Default)]
struct Memory {
    /// Live tasks: name and kernel id.
    tasks: RefCell<Vec<(&'static str, u64)>>,
    /// Every send, in order.
    sent: RefCell<Vec<Sent>>,
    /// What each send returns, in order.
    answers: RefCell<VecDeque<Answer>>,
    /// The current caller's leases: bytes and rights.
    leases: RefCell<Vec<(Vec<u8>, u64)>>,
}

impl Syscalls for &Memory {
    fn find_task(&self, name: &CStr) -> SysResult<u64> {
        let tasks = self.tasks.borrow();
        let found = tasks.iter().find(|(n, _)| n.as_bytes() == name.to_bytes());
        found.map(|&(_, id)| id).ok_or(SysError::NoSuchTask)
    }
    fn send_code(&self, target: u64, msg: &[u8], reply: &mut [u8], leases: &[Lease]) -> SysResult<(usize, u32)> {
        self.sent.borrow_mut().push((target, msg.to_vec(), leases.to_vec()));
        let (bytes, code) = self.answers.borrow_mut().pop_front().expect("a send past the script")?;
        reply[..bytes.len()].copy_from_slice(&bytes);
        Ok((bytes.len(), code))
    }
    fn lease_info(&self, client: u64, index: usize) -> SysResult<Lease> {
        assert_eq!(client, CLIENT, "only the current caller's leases are asked for");
        let leases = self.leases.borrow();
        let (bytes, rights) = leases.get(index).ok_or(SysError::BadLease)?;
        Ok(Lease { ptr: 0, len: bytes.len() as u64, rights: *rights })
    }
    fn borrow_read(&self, _: u64, index: usize, offset: usize, buf: &mut [u8]) -> SysResult<usize> {
        let leases = self.leases.borrow();
        let (bytes, rights) = leases.get(index).ok_or(SysError::BadLease)?;
        let src = bytes.get(offset..offset + buf.len()).filter(|_| rights & LEASE_READ != 0);
        buf.copy_from_slice(src.ok_or(SysError::BadLease)?);
        Ok(buf.len())
    }
    fn borrow_write(&self, _: u64, index: usize, offset: usize, data: &[u8]) -> SysResult<usize> {
        let mut leases = self.leases.borrow_mut();
        let (bytes, rights) = leases.get_mut(index).ok_or(SysError::BadLease)?;
        let writable = *rights & LEASE_WRITE != 0;
        let dst = bytes.get_mut(offset..offset + data.len()).filter(|_| writable);
        dst.ok_or(SysError::BadLease)?.copy_from_slice(data);
        Ok(data.len())
    }
    fn map_window(&self, len: usize) -> Option<usize> {
        assert_eq!(len, forward::WINDOW);
        Some(forward::test_window())
    }
}

/// The caller whose leases `Memory` holds.
const CLIENT: u64 = 0x0002_0009;
/// The vfs server's kernel id: generation 3, slot 5.
const VFS: u64 = 0x0003_0005;

fn with_vfs() -> Memory {
    let m = Memory::default();
    m.tasks.borrow_mut().push(("vfs", VFS));
    m
}

#[test]
fn lookup_finds_a_task_by_name_and_refuses_names_the_kernel_cannot_hold() {
    let m = with_vfs();
    let t = KernelTransport::with(&m);
    assert_eq!(t.lookup("vfs"), Ok(TaskId::new(5, 3)));
    assert_eq!(t.lookup("fat"), Err(Error::ServerDead), "no such task");
    assert_eq!(t.lookup("v\0fs"), Err(Error::InvalidArgument), "a NUL inside the name");
    assert_eq!(t.refresh(TaskId::new(5, 3)), Ok(TaskId::new(5, 3)), "the name was remembered");
    assert_eq!(t.refresh(TaskId::new(6, 1)), Err(Error::ServerDead), "never looked up");
}

#[test]
fn a_call_sends_the_message_and_leases_and_returns_the_reply() {
    let m = with_vfs();
    m.answers.borrow_mut().push_back(Ok((b"done".to_vec(), 0)));
    let t = KernelTransport::with(&m);
    let vfs = t.lookup("vfs").unwrap();
    let data = *b"abc";
    let mut out = [0u8; 16];
    let mut reply = [0u8; 8];
    let n = t.call(vfs, b"req", &mut [PLease::Read(&data), PLease::Write(&mut out)], &mut reply).unwrap();
    assert_eq!(&reply[..n], b"done");
    let sent = m.sent.borrow();
    let (target, msg, leases) = &sent[0];
    assert_eq!((*target, msg.as_slice()), (VFS, &b"req"[..]));
    assert_eq!(leases[0], Lease { ptr: data.as_ptr() as u64, len: 3, rights: LEASE_READ });
    assert_eq!(leases[1], Lease { ptr: out.as_ptr() as u64, len: 16, rights: LEASE_WRITE });
}

#[test]
fn a_new_transport_refreshes_only_names_it_looked_up() {
    // No look-up, so no system call: this runs on the host as in WATOS.
    assert_eq!(KernelTransport::new().refresh(TaskId::new(5, 3)), Err(Error::ServerDead));
}

#[test]
fn a_call_the_kernel_refuses_fails_with_the_matching_protocol_error() {
    let m = with_vfs();
    let t = KernelTransport::with(&m);
    let refusals = [(SysError::OutOfMemory, Error::NoSpace), (SysError::NotPermitted, Error::PermissionDenied)];
    m.answers.borrow_mut().extend(refusals.iter().map(|(e, _)| Err(*e)));
    for (_, want) in refusals {
        assert_eq!(t.call(TaskId::new(5, 3), b"x", &mut [], &mut [0; 8]), Err(want));
    }
}

#[test]
fn a_call_the_kernel_could_not_carry_is_refused_before_sending() {
    let m = with_vfs();
    let t = KernelTransport::with(&m);
    let big = vec![0u8; MAX_MESSAGE + 1];
    assert_eq!(t.call(TaskId::new(5, 3), &big, &mut [], &mut [0; 8]), Err(Error::TooBig));
    let impossible = TaskId::new(5, 1 << 16);
    assert_eq!(t.call(impossible, b"x", &mut [], &mut [0; 8]), Err(Error::ServerDead), "no such generation");
    assert!(m.sent.borrow().is_empty());
}

#[test]
fn a_server_that_died_is_restarted_if_its_name_now_names_a_newer_task() {
    let m = with_vfs();
    let t = KernelTransport::with(&m);
    let vfs = t.lookup("vfs").unwrap();
    m.answers.borrow_mut().extend([Err(SysError::TaskDied), Err(SysError::TaskDied)]);
    m.tasks.borrow_mut()[0].1 = 0x0004_0005;
    assert_eq!(t.call(vfs, b"x", &mut [], &mut [0; 8]), Err(Error::ServerRestarted));
    assert_eq!(t.refresh(vfs), Ok(TaskId::new(5, 4)), "the name now names the new task");
    m.tasks.borrow_mut().clear();
    assert_eq!(t.call(vfs, b"x", &mut [], &mut [0; 8]), Err(Error::ServerDead), "nothing by that name");
}

fn leases(m: &Memory) -> KernelLeases<&Memory> {
    *m.leases.borrow_mut() =
        vec![(b"hello".to_vec(), LEASE_READ), (vec![0; 8], LEASE_WRITE), (vec![0; 16], LEASE_READ | LEASE_WRITE)];
    KernelLeases { kernel: m, client: CLIENT, count: 3 }
}

#[test]
fn lease_sizes_and_kinds_come_from_the_kernel() {
    let m = Memory::default();
    let l = leases(&m);
    assert_eq!(l.count(), 3);
    assert_eq!((l.len(0), l.len(1), l.len(2)), (Ok(5), Ok(8), Ok(16)));
    assert_eq!(l.kind(0), Ok(LeaseKind::Read));
    assert_eq!(l.kind(1), Ok(LeaseKind::Write));
    assert_eq!(l.kind(2), Ok(LeaseKind::ReadWrite));
    assert_eq!(l.len(3), Err(Error::InvalidArgument));
    assert_eq!(l.kind(3), Err(Error::InvalidArgument));
}

#[test]
fn lease_copies_against_the_rights_are_refused_as_such() {
    let m = Memory::default();
    let mut l = leases(&m);
    let mut buf = [0u8; 3];
    l.read(0, 1, &mut buf).unwrap();
    assert_eq!(&buf, b"ell");
    l.write(1, 6, b"xy").unwrap();
    assert_eq!(m.leases.borrow()[1].0, b"\0\0\0\0\0\0xy");
    assert_eq!(l.read(1, 0, &mut buf), Err(Error::PermissionDenied), "reading a write-only lease");
    assert_eq!(l.write(0, 0, b"x"), Err(Error::PermissionDenied), "writing a read-only lease");
    assert_eq!(l.read(0, 4, &mut buf), Err(Error::InvalidArgument), "past the lease's end");
    assert_eq!(l.write(1, 7, b"xy"), Err(Error::InvalidArgument), "past the lease's end");
    assert_eq!(l.read(9, 0, &mut buf), Err(Error::InvalidArgument), "no such lease");
    assert_eq!(m.leases.borrow()[0].0, b"hello", "a refused write changes nothing");
}

#[test]
fn a_forward_outside_the_lease_is_refused_and_counted() {
    let m = Memory::default();
    let mut l = leases(&m);
    let (_, refused) = forward::counts();
    assert_eq!(l.forward(2, 10, 7).err(), Some(Error::InvalidArgument), "past the end");
    assert_eq!(l.forward(2, usize::MAX, 2).err(), Some(Error::InvalidArgument), "an overflowing range");
    assert_eq!(l.forward(5, 0, 1).err(), Some(Error::InvalidArgument), "no such lease");
    assert!(forward::counts().1 >= refused + 2);
}

#[test]
fn a_forward_lends_the_callers_range_on_until_the_call_ends() {
    let _serial = forward::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = Memory::default();
    let mut l = leases(&m);
    let mut lent = l.forward(2, 4, 6).unwrap();
    assert!(matches!(lent, PLease::ReadWrite(ref w) if w.len() == 6), "the caller's rights, the asked length");
    let f = forward::kernel_lease(&mut lent).unwrap().forward().expect("a forwarded kernel lease");
    assert_eq!((f.client, f.index, f.offset, f.len, f.rights), (CLIENT, 2, 4, 6, LEASE_READ | LEASE_WRITE));
    // Another forward in the same call (the range of a smaller transfer) carries that lease's rights.
    assert!(matches!(l.forward(0, 1, 4), Ok(PLease::Read(r)) if r.len() == 4));
    assert!(matches!(l.forward(1, 0, 8), Ok(PLease::Write(w)) if w.len() == 8));
    let other = forward::Live { client: 99, index: 0, offset: 0, len: 1, rights: LEASE_READ };
    assert_eq!(forward::start(other, |_| None), Err(Error::NotSupported), "the caller's forward is live");
    drop(l);
    let base = forward::test_window();
    assert_eq!(forward::start(other, |_| None), Ok((base, 1)), "the call ended, and its forward with it");
    forward::end(99);
}
