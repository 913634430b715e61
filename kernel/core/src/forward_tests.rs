//! Host tests of forwarded leases (`lease`): a server lending on its caller's lease, the checks at
//! send time (only a caller's lease, never wider, never longer) and the lease's death with any call
//! of its chain.

use crate::abi::{Lease, Sys, SysError, LEASE_READ, LEASE_WRITE, MAP_WRITE, PAGE};
use crate::ipc::IpcState;
use crate::ipc_tests::{get, id, info, put, receive, send, BUF, LEASES, MSG, REPLY};
use crate::kernel::Death;
use crate::kernel_tests::{boot, first_tick, syscall6, K};
use crate::trap::TrapFrame;
use std::vec::Vec;

/// The client's bytes: position-dependent, so an offset mistake shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

/// borrow_read/borrow_write with [client, lease index, offset, buffer, length].
fn borrow(k: &mut K, f: &mut TrapFrame, nr: Sys, [client, idx, off, buf, len]: [u64; 5]) -> Result<u64, SysError> {
    syscall6(k, f, nr, [client, idx, off, buf, len, 0]);
    SysError::decode(f.rax)
}

/// Tasks 0 (client), 1 (middle), 2.. : the client lends a read lease over `pattern(9000)` and a
/// write lease of 5000 bytes to the middle, which has received the call. Returns (client id, src,
/// dst, middle's buffer).
fn client_calls_middle(k: &mut K, f: &mut TrapFrame) -> (u64, u64, u64, u64) {
    let middle = id(k, 1);
    syscall6(k, f, Sys::MapAnon, [3 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let src = f.rax;
    put(k, 0, src, &pattern(9000));
    syscall6(k, f, Sys::MapAnon, [2 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let dst = f.rax;
    send(
        k,
        f,
        middle,
        b"io",
        &[Lease { ptr: src, len: 9000, rights: LEASE_READ }, Lease { ptr: dst, len: 5000, rights: LEASE_WRITE }],
    );
    assert_eq!(k.current, Some(1));
    syscall6(k, f, Sys::MapAnon, [3 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let mbuf = f.rax;
    receive(k, f, 0);
    assert_eq!(info(k, 1).leases, 2);
    (info(k, 1).sender, src, dst, mbuf)
}

/// The current task (a server) sends `leases` to `to` and must not be blocked: the send's error.
fn refused(k: &mut K, f: &mut TrapFrame, to: u64, leases: &[Lease]) -> Result<u64, SysError> {
    let me = k.current;
    let raw: Vec<u8> = leases.iter().flat_map(|l| [l.ptr, l.len, l.rights]).flat_map(u64::to_le_bytes).collect();
    put(k, me.unwrap(), LEASES, &raw);
    syscall6(k, f, Sys::Send, [to, MSG, 1 | (leases.len() as u64) << 32, REPLY, 64, LEASES]);
    assert_eq!(k.current, me, "a refused send does not block");
    SysError::decode(f.rax)
}

/// client -> middle -> last: the last server reads and writes the client's memory directly through
/// forwarded leases, within the forwarded bounds and rights only.
#[test]
fn forwarded_leases_reach_the_first_callers_memory() {
    let mut k = boot(&["client", "middle", "last"]);
    let mut f = first_tick(&mut k);
    let (client, _src, dst, _) = client_calls_middle(&mut k, &mut f);
    let last = id(&k, 2);
    // Bytes 1000..5000 of the read lease and 200..1200 of the write lease.
    send(
        &mut k,
        &mut f,
        last,
        b"fwd",
        &[Lease::forwarded(client, 0, 1000, 4000, LEASE_READ), Lease::forwarded(client, 1, 200, 1000, LEASE_WRITE)],
    );
    assert_eq!(k.current, Some(2));
    syscall6(&mut k, &mut f, Sys::MapAnon, [2 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let lbuf = f.rax;
    receive(&mut k, &mut f, 0);
    let middle = info(&k, 2).sender;
    assert_eq!(middle, id(&k, 1), "the call comes from the middle, not the client");
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, [middle, 0, 0, lbuf, 4000]), Ok(4000));
    assert_eq!(get(&k, 2, lbuf, 4000), &pattern(9000)[1000..5000]);
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 1, 10, lbuf, 990]), Ok(990));
    assert_eq!(get(&k, 0, dst + 210, 990), &pattern(9000)[1000..1990], "straight into the client");
    assert_eq!(get(&k, 0, dst + 200, 10), [0; 10], "nothing before the forwarded offset");
    // Its own bounds and rights, not the original's.
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, [middle, 0, 3999, lbuf, 2]), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 1, 0, lbuf, 1001]), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 0, 0, lbuf, 1]), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, [middle, 1, 0, lbuf, 1]), Err(SysError::BadLease));
    syscall6(&mut k, &mut f, Sys::LeaseInfo, [middle, 1, BUF, 0, 0, 0]);
    assert_eq!(
        Lease::from_bytes(&get(&k, 2, BUF, 24).try_into().unwrap()),
        Lease { ptr: 0, len: 1000, rights: LEASE_WRITE }
    );
    // The reply ends the forwarded call; the middle then replies to the client as usual.
    syscall6(&mut k, &mut f, Sys::Reply, [middle, BUF, 0, 0, 0, 0]);
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, [middle, 0, 0, lbuf, 1]), Err(SysError::NoSuchTask));
    while k.current != Some(1) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(f.rax, 0, "the middle's send returned");
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 0, 0, 0, 0]);
    assert_eq!(f.rax, 0);
}

/// A server may forward only leases of a task awaiting its reply, never wider or longer, and a
/// malformed forwarded lease is refused at send time (the sender is not blocked).
#[test]
fn hostile_forwards_are_refused() {
    let mut k = boot(&["client", "middle", "last"]);
    let mut f = first_tick(&mut k);
    let (client, ..) = client_calls_middle(&mut k, &mut f);
    let (middle, last) = (id(&k, 1), id(&k, 2));
    let fwd = Lease::forwarded;
    let bad = Err(SysError::BadLease);
    assert_eq!(
        refused(&mut k, &mut f, last, &[fwd(client, 0, 0, 9000, LEASE_READ | LEASE_WRITE)]),
        bad,
        "widening rights"
    );
    assert_eq!(refused(&mut k, &mut f, last, &[fwd(client, 1, 0, 10, LEASE_READ)]), bad, "reading a write lease");
    assert_eq!(refused(&mut k, &mut f, last, &[fwd(client, 0, 1, 9000, LEASE_READ)]), bad, "past the end");
    assert_eq!(refused(&mut k, &mut f, last, &[fwd(client, 0, u64::MAX, 2, LEASE_READ)]), bad, "offset overflow");
    assert_eq!(refused(&mut k, &mut f, last, &[fwd(client, 2, 0, 1, LEASE_READ)]), bad, "no such lease");
    assert_eq!(refused(&mut k, &mut f, last, &[fwd(client, 0, 0, 1, 0)]), bad, "no rights");
    assert_eq!(refused(&mut k, &mut f, last, &[fwd(last, 0, 0, 1, LEASE_READ)]), bad, "a task that is not calling us");
    assert_eq!(refused(&mut k, &mut f, last, &[fwd(middle, 0, 0, 1, LEASE_READ)]), bad, "ourselves");
    assert_eq!(
        refused(&mut k, &mut f, last, &[fwd(0xFFFF_0099, 0, 0, 1, LEASE_READ)]),
        bad,
        "a task that never existed"
    );
    let mut odd = fwd(client, 0, 0, 1, LEASE_READ);
    odd.rights |= 1 << 20;
    assert_eq!(refused(&mut k, &mut f, last, &[odd]), bad, "unused bits set");
    odd.rights = fwd(client, 0, 0, 1, LEASE_READ).rights | 8;
    assert_eq!(refused(&mut k, &mut f, last, &[odd]), bad, "unknown right");
    send(&mut k, &mut f, last, b"ok", &[fwd(client, 0, 0, 1, LEASE_READ)]);
    assert_eq!(k.current, Some(2), "a well-formed forward goes through");
    receive(&mut k, &mut f, 0);
    // The last server cannot forward the client's lease: the client is not calling it.
    assert_eq!(refused(&mut k, &mut f, client, &[fwd(client, 0, 0, 1, LEASE_READ)]), bad);
}

/// The forwarded lease dies with the original call: after the client dies (even if its slot is
/// reused) the last server's borrows are errors and touch no memory.
#[test]
fn forwarded_lease_dies_with_the_original_caller() {
    let mut k = boot(&["client", "middle", "last"]);
    let mut f = first_tick(&mut k);
    let (client, ..) = client_calls_middle(&mut k, &mut f);
    let last = id(&k, 2);
    send(&mut k, &mut f, last, b"fwd", &[Lease::forwarded(client, 1, 0, 5000, LEASE_WRITE)]);
    syscall6(&mut k, &mut f, Sys::MapAnon, [2 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let lbuf = f.rax;
    receive(&mut k, &mut f, 0);
    let middle = info(&k, 2).sender;
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 0, 0, lbuf, 5000]), Ok(5000));
    // A synchronous middle cannot reply while it waits on us, so stand in for "the client's call
    // ended and the same task made a new one": the same task, another call serial.
    let shift = |k: &mut K, by: i64| match &mut k.task_mut(0).unwrap().ipc {
        IpcState::AwaitingReply(call) => call.serial = call.serial.wrapping_add_signed(by),
        other => panic!("client not awaiting: {other:?}"),
    };
    shift(&mut k, 1000);
    assert_eq!(
        borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 0, 0, lbuf, 1]),
        Err(SysError::BadLease),
        "a later call of the same client"
    );
    shift(&mut k, -1000);
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 0, 0, lbuf, 1]), Ok(1));
    k.reap(0, Death::Exit(0));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 0, 0, lbuf, 5000]), Err(SysError::BadLease));
    let again = k.spawn("client", &crate::kernel_tests::image()).unwrap();
    assert_eq!(again.index, 0, "the slot is reused by a new task");
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, [middle, 0, 0, lbuf, 1]), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, [middle, 0, 0, lbuf, 1]), Err(SysError::BadLease));
    assert_eq!(k.current, Some(2), "errors, not faults");
}

/// Chains: the last server forwards the forwarded lease once more; the fourth task reaches the
/// client's memory, and loses it when a call in the middle of the chain ends (its task died).
#[test]
fn chained_forwards_keep_the_rules_and_die_with_any_link() {
    let mut k = boot(&["client", "middle", "last", "fourth"]);
    let mut f = first_tick(&mut k);
    let (client, src, ..) = client_calls_middle(&mut k, &mut f);
    let (third, fourth) = (id(&k, 2), id(&k, 3));
    send(&mut k, &mut f, third, b"fwd", &[Lease::forwarded(client, 0, 100, 8000, LEASE_READ)]);
    receive(&mut k, &mut f, 0);
    let middle = info(&k, 2).sender;
    assert_eq!(
        refused(&mut k, &mut f, fourth, &[Lease::forwarded(middle, 0, 0, 8001, LEASE_READ)]),
        Err(SysError::BadLease),
        "longer than the forwarded part"
    );
    send(&mut k, &mut f, fourth, b"fwd2", &[Lease::forwarded(middle, 0, 50, 500, LEASE_READ)]);
    assert_eq!(k.current, Some(3));
    syscall6(&mut k, &mut f, Sys::MapAnon, [PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let buf4 = f.rax;
    receive(&mut k, &mut f, 0);
    let last = info(&k, 3).sender;
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, [last, 0, 0, buf4, 500]), Ok(500));
    assert_eq!(get(&k, 3, buf4, 500), get(&k, 0, src + 150, 500));
    assert_eq!(get(&k, 3, buf4, 500), &pattern(9000)[150..650]);
    k.reap(1, Death::Exit(0));
    assert_eq!(
        borrow(&mut k, &mut f, Sys::BorrowRead, [last, 0, 0, buf4, 1]),
        Err(SysError::BadLease),
        "the middle's call ended"
    );
}
