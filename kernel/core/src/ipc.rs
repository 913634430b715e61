//! Synchronous IPC: send (call), receive, reply, leases, notifications; and what a death does to it.
//!
//! Who may call whom is the manifest's send list (`Sends`, MINIX's `s_ipc_to`): a `send` to a
//! program not on the caller's list is `NotPermitted` before anything is copied; the supervisor
//! calls anyone, and replies need no list.
//!
//! Design (after Hubris): a call is `send`, which blocks the caller until the server `reply`s. The
//! message (at most `MAX_MSG` bytes) is copied into the kernel once, at send time, and out to the
//! server once, when it receives; the reply likewise. Bulk data never travels inline: the caller lends
//! buffers (leases, each READ and/or WRITE), validated against its page tables at send time, and the
//! server moves bytes with `borrow_read`/`borrow_write`, which the kernel checks against the lease
//! (index, right, offset + length) and copies directly between the two address spaces. Leases die with
//! the reply. Ids carry a generation: an id whose task has died returns `TaskDied`, never reaching a
//! newer task in the same slot. Mistakes are errors to the one who made them (a server borrowing from
//! a task that is not waiting on it gets an error, not a fault: Hubris issue 172). A reply longer than
//! the caller's reply buffer is the caller's mistake (it chose the buffer): the call ends with
//! `ReplyTooSmall` and the needed length for the caller, and the replier's `reply` succeeds (Fuchsia's
//! `BUFFER_TOO_SMALL`); `RecvInfo::reply_cap` tells the server the capacity beforehand, as Hubris's
//! `recv` does, so it can answer with something that fits. When a task dies, every task
//! blocked sending to it or waiting for its reply is woken with `TaskDied`. A server may lend on part
//! of a lease its caller lent it (forwarding, see `lease`): the next server then copies straight to
//! and from the first caller's memory, for as long as every call of the chain is in flight.

use crate::abi::{
    Lease, RecvInfo, SysError, TaskId, LEASE_READ, LEASE_WRITE, MAX_LEASES, MAX_MSG, MAX_REPLY_CODE, NOTIFICATION,
    NOTIFY_DEATH, NOTIFY_STOP, RECV_EMPTY, RECV_NONBLOCK, RECV_NOTIFY_ONLY,
};
use crate::kernel::{Kernel, Platform};
use crate::lease::{self, Held};
use crate::paging::{FrameAlloc, PhysMem};
use crate::sched::SchedState;
use crate::syscall::UserError;
use crate::usermem::{copy_between, copy_in, copy_out, validate, Access};
use alloc::vec::Vec;

/// A call in flight: what the caller sent and where the reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub server: TaskId,
    /// The message, until the server receives it.
    pub msg: Vec<u8>,
    pub reply_ptr: u64,
    pub reply_cap: u64,
    pub leases: Vec<Held>,
    /// Unique per call, so a forwarded lease can tell its call from a later one by the same task.
    pub serial: u64,
}

/// A task's IPC state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IpcState {
    #[default]
    Idle,
    /// Blocked in `send`, message not yet received.
    Sending(Call),
    /// The server has the message; blocked until it replies.
    AwaitingReply(Call),
    /// Blocked in `receive`.
    /// `notify_only`: wait for masked notifications alone; senders keep waiting (a driver waiting
    /// for its interrupt in the middle of serving a request must not take the next request).
    Receiving { buf: u64, cap: u64, mask: u64, info: u64, notify_only: bool },
}

/// Which programs a task may call (MINIX's `s_ipc_to`, Hubris's task slots), from its manifest
/// entry; the supervisor may call anyone whatever its list says. Replies need no permission: a
/// server always answers whoever called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sends {
    /// Any task (a program without a send list).
    Any,
    /// The tasks of these programs: bit i is `Kernel::images[i]`.
    Programs(u64),
}

impl Sends {
    /// May a task with this list call a task of program `target` (`None`: started without one)?
    pub fn allows(self, target: Option<usize>) -> bool {
        match (self, target) {
            (Sends::Any, _) => true,
            (Sends::Programs(bits), Some(p)) => p < 64 && bits & 1 << p != 0,
            (Sends::Programs(_), None) => false,
        }
    }
}

/// May task `c` call task `s`: the supervisor always, anyone else as its send list says.
fn may_call<P: Platform, M: PhysMem, F: FrameAlloc>(k: &Kernel<P, M, F>, c: usize, s: usize) -> bool {
    let (Some(me), Some(them)) = (k.task(c), k.task(s)) else { return false };
    Some(me.id) == k.supervisor || me.sends.allows(them.program)
}

/// Most tasks a task's call history keeps for `notify` (the oldest is forgotten first).
pub const MAX_PEERS: usize = 32;

type Res = Result<u64, UserError>;
/// `Ok(None)`: the result reaches the caller later (it is blocked) or was already written by a wake.
type Blocking = Result<Option<u64>, UserError>;

/// The slot of the live task `raw` names: `NoSuchTask` if it never existed, `TaskDied` if it died.
pub fn resolve<P: Platform, M: PhysMem, F: FrameAlloc>(k: &Kernel<P, M, F>, raw: u64) -> Result<usize, SysError> {
    let id = TaskId::from_raw(raw).ok_or(SysError::NoSuchTask)?;
    let slot = k.slots.get(id.index as usize).ok_or(SysError::NoSuchTask)?;
    match &slot.task {
        Some(t) if t.id == id => Ok(id.index as usize),
        _ if id.generation <= slot.generation => Err(SysError::TaskDied),
        _ => Err(SysError::NoSuchTask),
    }
}

/// `send`: blocks the caller until the reply (whose length becomes its result).
pub fn send<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, c: usize, a: [u64; 6]) -> Blocking {
    let (target, msg_ptr, msg_len, lease_count) = (a[0], a[1], a[2] & 0xFFFF_FFFF, a[2] >> 32);
    let (reply_ptr, reply_cap, leases_ptr) = (a[3], a[4], a[5]);
    let s = resolve(k, target)?;
    if s == c {
        return Err(SysError::WouldDeadlock.into());
    }
    // Before anything is copied or validated: a refused call costs the target nothing and tells
    // the caller nothing about it but that it exists.
    if !may_call(k, c, s) {
        return Err(SysError::NotPermitted.into());
    }
    if msg_len > MAX_MSG as u64 {
        return Err(SysError::MessageTooBig.into());
    }
    if lease_count > MAX_LEASES as u64 {
        return Err(SysError::BadLease.into());
    }
    let space = k.task(c).map(|t| t.space).ok_or(UserError::Fault("no such task"))?;
    let msg = if msg_len == 0 { Vec::new() } else { copy_in(&space, &k.mem, msg_ptr, msg_len)? };
    if reply_cap > 0 {
        validate(&space, &k.mem, reply_ptr, reply_cap, Access::Write)?;
    }
    let mut leases = Vec::new();
    if lease_count > 0 {
        let raw = copy_in(&space, &k.mem, leases_ptr, lease_count * Lease::SIZE as u64)?;
        for chunk in raw.chunks_exact(Lease::SIZE) {
            let lease = Lease::from_bytes(chunk.try_into().map_err(|_| SysError::BadLease)?);
            leases.push(lease::take(k, c, &space, lease)?);
        }
    }
    let server = k.task(s).map(|t| t.id).ok_or(SysError::TaskDied)?;
    if let Some(t) = k.task_mut(c) {
        if !t.peers.contains(&server) {
            if t.peers.len() >= MAX_PEERS {
                t.peers.remove(0);
            }
            t.peers.push(server);
        }
    }
    let serial = lease::next_serial();
    set_ipc(k, c, IpcState::Sending(Call { server, msg, reply_ptr, reply_cap, leases, serial }));
    k.sched[c] = SchedState::Blocked;
    if matches!(k.task(s).map(|t| &t.ipc), Some(IpcState::Receiving { notify_only: false, .. })) {
        deliver(k, c, s);
    }
    Ok(None)
}

/// `receive`. With `RECV_NONBLOCK`, returns `RECV_EMPTY` instead of blocking when neither a masked
/// notification nor (unless `RECV_NOTIFY_ONLY`) a sender is waiting.
pub fn receive<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, r: usize, a: [u64; 6]) -> Blocking {
    let (buf, cap, mask, info, flags) = (a[0], a[1], a[2], a[3], a[4]);
    if flags & !(RECV_NOTIFY_ONLY | RECV_NONBLOCK) != 0 {
        return Err(SysError::InvalidArgument.into());
    }
    let notify_only = flags & RECV_NOTIFY_ONLY != 0;
    if notify_only && mask == 0 {
        // Nothing could ever wake it.
        return Err(SysError::InvalidArgument.into());
    }
    let space = k.task(r).map(|t| t.space).ok_or(UserError::Fault("no such task"))?;
    if cap > 0 {
        validate(&space, &k.mem, buf, cap, Access::Write)?;
    }
    validate(&space, &k.mem, info, RecvInfo::SIZE as u64, Access::Write)?;
    let pending = k.task(r).map_or(0, |t| t.notifications) & mask;
    if pending != 0 {
        let mut kernel = 0;
        if let Some(t) = k.task_mut(r) {
            kernel = t.kernel_pending & pending;
            t.notifications &= !pending;
            t.kernel_pending &= !pending;
        }
        let bytes = RecvInfo { sender: NOTIFICATION, notifications: pending, kernel, ..RecvInfo::default() }.to_bytes();
        copy_out(&space, &mut k.mem, info, &bytes)?;
        return Ok(Some(0));
    }
    let server_id = k.task(r).map(|t| t.id);
    let n = k.slots.len();
    let sending_to_us = |k: &Kernel<P, M, F>, s: usize| matches!(k.task(s).map(|t| &t.ipc), Some(IpcState::Sending(call)) if Some(call.server) == server_id);
    if flags & RECV_NONBLOCK != 0 && (notify_only || !(1..n).any(|d| sending_to_us(k, (r + d) % n))) {
        return Ok(Some(RECV_EMPTY));
    }
    set_ipc(k, r, IpcState::Receiving { buf, cap, mask, info, notify_only });
    k.sched[r] = SchedState::Blocked;
    if notify_only {
        return Ok(None);
    }
    // Senders are served in slot order after the last one served, so they take turns: a scan from
    // the receiver's own slot would serve the slots just after it first every time, and callers
    // in the slots before it (init telling the vfs of a death, behind busy clients) would wait for
    // as long as those keep calling.
    let last = k.task(r).map_or(r, |t| t.received_from);
    for s in (1..=n).map(|d| (last + d) % n).filter(|&s| s != r) {
        if sending_to_us(k, s) && deliver(k, s, r) {
            break;
        }
    }
    // Non-blocking and every waiting message was too big for the buffer (those senders got
    // `MessageTooBig`): report empty rather than block.
    if flags & RECV_NONBLOCK != 0 && matches!(k.task(r).map(|t| &t.ipc), Some(IpcState::Receiving { .. })) {
        set_ipc(k, r, IpcState::Idle);
        k.sched[r] = SchedState::Runnable;
        return Ok(Some(RECV_EMPTY));
    }
    Ok(None)
}

/// Moves sender `s`'s message to receiver `r` (which is `Receiving`). False if it did not fit (the
/// sender then gets `MessageTooBig` and the receiver keeps waiting).
fn deliver<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, s: usize, r: usize) -> bool {
    let Some(IpcState::Receiving { buf, cap, info, notify_only: false, .. }) = k.task(r).map(|t| t.ipc.clone()) else {
        return false;
    };
    let Some(IpcState::Sending(mut call)) = k.task(s).map(|t| t.ipc.clone()) else { return false };
    if call.msg.len() as u64 > cap {
        set_ipc(k, s, IpcState::Idle);
        wake(k, s, SysError::MessageTooBig.to_ret());
        return false;
    }
    let (Some(rspace), Some(sid)) = (k.task(r).map(|t| t.space), k.task(s).map(|t| t.id)) else { return false };
    let recv = RecvInfo {
        sender: sid.to_raw(),
        len: call.msg.len() as u64,
        leases: call.leases.len() as u64,
        notifications: 0,
        reply_cap: call.reply_cap,
        kernel: 0,
    };
    // Both ranges were validated when the receiver called receive, and a blocked task cannot change
    // its mappings, so these copies cannot fail. An empty message touches no buffer (a receiver
    // with capacity 0 may pass any pointer, and the kernel never validated it).
    let copied = if call.msg.is_empty() { Ok(()) } else { copy_out(&rspace, &mut k.mem, buf, &call.msg) }
        .and_then(|()| copy_out(&rspace, &mut k.mem, info, &recv.to_bytes()));
    if copied.is_err() {
        set_ipc(k, s, IpcState::Idle);
        wake(k, s, SysError::TaskDied.to_ret());
        return false;
    }
    call.msg = Vec::new();
    set_ipc(k, s, IpcState::AwaitingReply(call));
    set_ipc(k, r, IpcState::Idle);
    if let Some(t) = k.task_mut(r) {
        t.received_from = s;
    }
    wake(k, r, 0);
    true
}

/// The call client `raw` has in flight with server `r`, or why there is none (an error, not a fault).
pub(crate) fn call_with<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &Kernel<P, M, F>,
    r: usize,
    raw: u64,
) -> Result<(usize, Call), SysError> {
    let c = resolve(k, raw)?;
    let server = k.task(r).map(|t| t.id);
    match k.task(c).map(|t| &t.ipc) {
        Some(IpcState::AwaitingReply(call)) if Some(call.server) == server => Ok((c, call.clone())),
        _ => Err(SysError::NoSuchTask),
    }
}

/// `reply`. The replier's own mistakes (a code or length out of range, a bad pointer) are errors to
/// it and leave the call open; a reply longer than the caller's buffer ends the call with
/// `ReplyTooSmall` for the caller (needed length in its `rdx`) and is 0, success, for the replier.
pub fn reply<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, r: usize, a: [u64; 6]) -> Res {
    let (c, call) = call_with(k, r, a[0])?;
    let (ptr, len, code) = (a[1], a[2], a[3]);
    if code > MAX_REPLY_CODE {
        return Err(SysError::InvalidArgument.into());
    }
    if len > MAX_MSG as u64 {
        return Err(SysError::MessageTooBig.into());
    }
    let rspace = k.task(r).map(|t| t.space).ok_or(UserError::Fault("no such task"))?;
    let bytes = if len == 0 { Vec::new() } else { copy_in(&rspace, &k.mem, ptr, len)? };
    if len > call.reply_cap {
        set_ipc(k, c, IpcState::Idle);
        if let Some(t) = k.task_mut(c) {
            t.frame.rdx = len;
        }
        wake(k, c, SysError::ReplyTooSmall.to_ret());
        return Ok(0);
    }
    let cspace = k.task(c).map(|t| t.space).ok_or(SysError::TaskDied)?;
    if !bytes.is_empty() {
        copy_out(&cspace, &mut k.mem, call.reply_ptr, &bytes)?;
    }
    set_ipc(k, c, IpcState::Idle);
    wake(k, c, len | code << 32);
    Ok(0)
}

/// `lease_info(client, index, out: *mut Lease)`: the lease's length and rights (its address stays
/// the client's business: `ptr` is written as 0).
pub fn lease_info<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, r: usize, a: [u64; 6]) -> Res {
    let (_, call) = call_with(k, r, a[0])?;
    let lease = usize::try_from(a[1]).ok().and_then(|i| call.leases.get(i)).ok_or(SysError::BadLease)?;
    let mut bytes = [0u8; Lease::SIZE];
    bytes[8..16].copy_from_slice(&lease.len.to_le_bytes());
    bytes[16..24].copy_from_slice(&lease.rights.to_le_bytes());
    let space = k.task(r).map(|t| t.space).ok_or(UserError::Fault("no such task"))?;
    copy_out(&space, &mut k.mem, a[2], &bytes)?;
    Ok(0)
}

/// `borrow_read` (`write == false`: lease -> server) and `borrow_write` (server -> lease).
pub fn borrow<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    r: usize,
    a: [u64; 6],
    write: bool,
) -> Res {
    let (c, call) = call_with(k, r, a[0])?;
    let (index, offset, buf, len) = (a[1], a[2], a[3], a[4]);
    let lease = usize::try_from(index).ok().and_then(|i| call.leases.get(i)).ok_or(SysError::BadLease)?;
    let right = if write { LEASE_WRITE } else { LEASE_READ };
    let end = offset.checked_add(len).ok_or(SysError::BadLease)?;
    if lease.rights & right == 0 || end > lease.len {
        return Err(SysError::BadLease.into());
    }
    // A forwarded lease's memory is its first lender's, and only while the whole chain is in flight.
    let c = lease::owner(k, lease, c)?;
    if len == 0 {
        return Ok(0);
    }
    let (Some(rs), Some(cs)) = (k.task(r).map(|t| t.space), k.task(c).map(|t| t.space)) else {
        return Err(SysError::TaskDied.into());
    };
    let at = lease.ptr + offset;
    if write {
        copy_between(&mut k.mem, (&rs, buf), (&cs, at), len)?;
    } else {
        copy_between(&mut k.mem, (&cs, at), (&rs, buf), len)?;
    }
    Ok(len)
}

/// `notify` from task `c`: sets bits on the target, waking it if it is receiving with any of them
/// unmasked. Kernel-owned bits (`NOTIFY_DEATH`, the bits of the target's interrupt lines) are
/// refused to every task, `NOTIFY_STOP` to all but the supervisor and `control` programs, so a
/// receiver can trust them; the bits a task posts reach the receiver outside `RecvInfo::kernel`.
/// Other bits come only from the supervisor or a task the target has a call history with (one of
/// them called the other: a server telling its client, a client poking its server).
pub fn notify<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, c: usize, a: [u64; 6]) -> Res {
    let t = resolve(k, a[0])?;
    let bits = a[1];
    let (Some(me), Some(them)) = (k.task(c), k.task(t)) else { return Err(SysError::TaskDied.into()) };
    let irq_bits = k.irqs.iter().flatten().filter(|(owner, _)| *owner == them.id);
    let kernel_owned = NOTIFY_DEATH | irq_bits.fold(0, |acc, (_, b)| acc | b);
    let supervisor = Some(me.id) == k.supervisor;
    let may_stop = supervisor || me.control;
    let related = supervisor || me.id == them.id || me.peers.contains(&them.id) || them.peers.contains(&me.id);
    if bits & kernel_owned != 0 || bits & NOTIFY_STOP != 0 && !may_stop || bits & !NOTIFY_STOP != 0 && !related {
        return Err(SysError::NotPermitted.into());
    }
    post_bits(k, t, bits, false);
    Ok(0)
}

/// Sets notification bits on task `t` on the kernel's behalf (interrupt, timer, death).
pub fn post<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, t: usize, bits: u64) {
    post_bits(k, t, bits, true);
}

/// Sets notification bits on task `t`, remembering which the kernel posted.
fn post_bits<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, t: usize, bits: u64, kernel: bool) {
    let Some(task) = k.task_mut(t) else { return };
    task.notifications |= bits;
    if kernel {
        task.kernel_pending |= bits;
    }
    if let IpcState::Receiving { mask, info, .. } = task.ipc {
        let fired = task.notifications & mask;
        if fired != 0 {
            let kernel = task.kernel_pending & fired;
            task.notifications &= !fired;
            task.kernel_pending &= !fired;
            let space = task.space;
            let bytes =
                RecvInfo { sender: NOTIFICATION, notifications: fired, kernel, ..RecvInfo::default() }.to_bytes();
            if copy_out(&space, &mut k.mem, info, &bytes).is_ok() {
                set_ipc(k, t, IpcState::Idle);
                wake(k, t, 0);
            }
        }
    }
}

/// Task `dead` is gone: wake everyone sending to it or waiting for its reply with `TaskDied`.
pub fn on_death<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, dead: TaskId) {
    for i in 0..k.slots.len() {
        let waiting = matches!(k.task(i).map(|t| &t.ipc),
            Some(IpcState::Sending(call) | IpcState::AwaitingReply(call)) if call.server == dead);
        if waiting {
            set_ipc(k, i, IpcState::Idle);
            wake(k, i, SysError::TaskDied.to_ret());
        }
    }
}

fn set_ipc<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, t: usize, state: IpcState) {
    if let Some(task) = k.task_mut(t) {
        task.ipc = state;
    }
}

/// Makes blocked task `t` runnable with `rax` as its syscall's result (its IPC state is already set).
fn wake<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, t: usize, rax: u64) {
    if let Some(task) = k.task_mut(t) {
        task.frame.rax = rax;
        k.sched[t] = SchedState::Runnable;
    }
}
