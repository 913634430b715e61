//! Leases as the kernel holds them for a call in flight, and forwarding: a server lending on part of
//! a lease its own caller lent it, so the next server copies straight to and from the first caller's
//! memory (one copy per byte on the bulk path, however many servers the request passes).
//!
//! Design: a held lease is an address range in the memory of one task plus the list of calls it
//! depends on (`origin`). A lease the sender lends from its own memory has an empty origin: it lives
//! exactly as long as the call that carries it, which `call_with` already checks at every borrow. A
//! forwarded lease (`LEASE_FORWARD`, see `abi::Lease`) is checked once at send time against the lease
//! it names (the naming client must be awaiting the sender's reply; index, rights a subset, range
//! inside) and then records every call of the chain it came through, root first, each by slot, task
//! id and call serial. Its memory is the root caller's. Every borrow re-checks that each recorded call
//! is still in flight with the same serial, so once any of them ends (reply, death, a new call reusing
//! the slot or the task) the forwarded lease answers `BadLease` and never touches an address space that
//! is gone or has moved on. Serials come from one counter and are never reused. Chains are allowed up to
//! `MAX_FORWARD_DEPTH` links, with the same rules at every step.

use crate::abi::{Lease, SysError, TaskId, LEASE_READ, LEASE_WRITE, MAX_FORWARD_DEPTH};
use crate::ipc::{call_with, IpcState};
use crate::kernel::{Kernel, Platform};
use crate::paging::{AddressSpace, FrameAlloc, PhysMem};
use crate::syscall::UserError;
use crate::usermem::{check_range, validate, Access};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// One call a forwarded lease depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub slot: usize,
    pub id: TaskId,
    pub serial: u64,
}

/// A lease of a call in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Address in the memory of `origin[0]`'s task, or of the caller when `origin` is empty.
    pub ptr: u64,
    pub len: u64,
    /// `LEASE_READ` | `LEASE_WRITE`.
    pub rights: u64,
    /// The calls this lease was forwarded through, root first; empty for the caller's own memory.
    pub origin: Vec<Link>,
}

/// Call serials: unique for the kernel's lifetime (64 bits do not wrap).
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// A fresh call serial.
pub fn next_serial() -> u64 {
    NEXT_SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// Turns lease `lease` of a `send` by task `c` (address space `space`) into a held lease.
pub fn take<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &Kernel<P, M, F>,
    c: usize,
    space: &AddressSpace,
    lease: Lease,
) -> Result<Held, UserError> {
    if let Some(f) = lease.forward() {
        // Bits 16..32 are unused in the forwarded form: refuse them so they can mean something later.
        if f.rights == 0 || f.rights & !(LEASE_READ | LEASE_WRITE) != 0 || lease.rights & 0xFFFF_0000 != 0 {
            return Err(SysError::BadLease.into());
        }
        return Ok(forward(k, c, f.client, f.index, f.offset, f.len, f.rights)?);
    }
    if lease.rights == 0 || lease.rights & !(LEASE_READ | LEASE_WRITE) != 0 {
        return Err(SysError::BadLease.into());
    }
    if lease.len > 0 {
        let access = if lease.rights & LEASE_WRITE != 0 { Access::Write } else { Access::Read };
        validate(space, &k.mem, lease.ptr, lease.len, access)?;
    } else {
        check_range(lease.ptr, 0)?;
    }
    Ok(Held { ptr: lease.ptr, len: lease.len, rights: lease.rights, origin: Vec::new() })
}

/// Part of lease `index` of `client`'s call to `c`, as a lease `c` can lend on.
fn forward<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &Kernel<P, M, F>,
    c: usize,
    client: u64,
    index: u64,
    offset: u64,
    len: u64,
    rights: u64,
) -> Result<Held, SysError> {
    // Not a client of ours: a lease we do not hold, whatever that task is doing.
    let (x, call) =
        call_with(k, c, client).map_err(|e| if e == SysError::TaskDied { e } else { SysError::BadLease })?;
    let orig = usize::try_from(index).ok().and_then(|i| call.leases.get(i)).ok_or(SysError::BadLease)?;
    let end = offset.checked_add(len).ok_or(SysError::BadLease)?;
    if rights & !orig.rights != 0 || end > orig.len {
        return Err(SysError::BadLease);
    }
    owner(k, orig, x)?;
    if orig.origin.len() >= MAX_FORWARD_DEPTH {
        return Err(SysError::BadLease);
    }
    let id = k.task(x).map(|t| t.id).ok_or(SysError::TaskDied)?;
    let mut origin = orig.origin.clone();
    origin.push(Link { slot: x, id, serial: call.serial });
    Ok(Held { ptr: orig.ptr + offset, len, rights, origin })
}

/// The slot whose memory `held` (a lease of a call made by task `caller`) lends, after checking that
/// every call it was forwarded through is still in flight; `BadLease` once any has ended.
pub fn owner<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &Kernel<P, M, F>,
    held: &Held,
    caller: usize,
) -> Result<usize, SysError> {
    for link in &held.origin {
        let live = match k.task(link.slot) {
            Some(t) if t.id == link.id => {
                matches!(&t.ipc, IpcState::Sending(call) | IpcState::AwaitingReply(call) if call.serial == link.serial)
            }
            _ => false,
        };
        if !live {
            return Err(SysError::BadLease);
        }
    }
    Ok(held.origin.first().map_or(caller, |l| l.slot))
}
