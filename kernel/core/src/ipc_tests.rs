//! Host tests of IPC: calls, leases, notifications and deaths, driven through the syscall path.

use crate::abi::{
    Lease, RecvInfo, Sys, SysError, TaskId, LEASE_READ, LEASE_WRITE, MAP_WRITE, MAX_LEASES, MAX_MSG, NOTIFICATION, PAGE,
};
use crate::kernel_tests::{boot, first_tick, space, syscall6, DATA, K, TEXT};
use crate::sched::SchedState;
use crate::trap::{Event, TrapFrame};
use crate::usermem::{copy_in, copy_out};
use std::vec::Vec;

pub(crate) const MSG: u64 = DATA;
pub(crate) const REPLY: u64 = DATA + 512;
pub(crate) const BUF: u64 = DATA + 1024;
pub(crate) const INFO: u64 = DATA + 2048;
pub(crate) const LEASES: u64 = DATA + 3072;

pub(crate) fn id(k: &K, i: usize) -> u64 {
    k.task(i).unwrap().id.to_raw()
}

pub(crate) fn put(k: &mut K, i: usize, va: u64, bytes: &[u8]) {
    let s = space(k, i);
    copy_out(&s, &mut k.mem, va, bytes).unwrap();
}

pub(crate) fn get(k: &K, i: usize, va: u64, len: u64) -> Vec<u8> {
    copy_in(&space(k, i), &k.mem, va, len).unwrap()
}

pub(crate) fn info(k: &K, i: usize) -> RecvInfo {
    let b = get(k, i, INFO, RecvInfo::SIZE as u64);
    let w = |n: usize| u64::from_le_bytes(b[n * 8..n * 8 + 8].try_into().unwrap());
    RecvInfo { sender: w(0), len: w(1), leases: w(2), notifications: w(3), reply_cap: w(4), kernel: w(5) }
}

pub(crate) fn send(k: &mut K, f: &mut TrapFrame, to: u64, msg: &[u8], leases: &[Lease]) {
    let c = k.current.unwrap();
    put(k, c, MSG, msg);
    let raw: Vec<u8> = leases.iter().flat_map(|l| [l.ptr, l.len, l.rights]).flat_map(u64::to_le_bytes).collect();
    if !raw.is_empty() {
        put(k, c, LEASES, &raw);
    }
    syscall6(k, f, Sys::Send, [to, MSG, msg.len() as u64 | (leases.len() as u64) << 32, REPLY, 64, LEASES]);
}

pub(crate) fn receive(k: &mut K, f: &mut TrapFrame, mask: u64) {
    syscall6(k, f, Sys::Receive, [BUF, 512, mask, INFO, 0, 0]);
}

/// Client 0 calls server 1 (not yet receiving); the server then receives and replies.
#[test]
fn call_round_trip_send_first() {
    let mut k = boot(&["client", "server"]);
    let mut f = first_tick(&mut k);
    let (client, server) = (id(&k, 0), id(&k, 1));
    send(&mut k, &mut f, server, b"ping", &[]);
    assert_eq!(k.sched[0], SchedState::Blocked);
    assert_eq!(k.current, Some(1), "the blocked caller gave up the CPU");
    receive(&mut k, &mut f, 0);
    assert_eq!(k.current, Some(1));
    assert_eq!(f.rax, 0);
    assert_eq!(get(&k, 1, BUF, 4), b"ping");
    assert_eq!(info(&k, 1), RecvInfo { sender: client, len: 4, leases: 0, notifications: 0, reply_cap: 64, kernel: 0 });
    put(&mut k, 1, BUF, b"pong!");
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 5, 1 << 31, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::InvalidArgument), "reply code out of range");
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 5, 7, 0, 0]);
    assert_eq!(f.rax, 0, "reply returns 0 to the server, which keeps running");
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(k.task(0).unwrap().frame.rax, 5 | 7 << 32, "the caller's send returns length and code");
    assert_eq!(get(&k, 0, REPLY, 5), b"pong!");
}

/// Callers 0 and 1 wait on server 2; caller 0 calls again as soon as it has its reply. The server's
/// receives must alternate between them, not serve the slot after its own every time.
#[test]
fn waiting_callers_take_turns() {
    let mut k = boot(&["a", "b", "server"]);
    let mut f = first_tick(&mut k);
    let server = id(&k, 2);
    let (a, b) = (id(&k, 0), id(&k, 1));
    send(&mut k, &mut f, server, b"a1", &[]);
    send(&mut k, &mut f, server, b"b1", &[]);
    assert_eq!(k.current, Some(2));
    let mut served = Vec::new();
    for _ in 0..4 {
        receive(&mut k, &mut f, 0);
        let sender = info(&k, 2).sender;
        served.push(if sender == a {
            'a'
        } else if sender == b {
            'b'
        } else {
            '?'
        });
        syscall6(&mut k, &mut f, Sys::Reply, [sender, BUF, 0, 0, 0, 0]);
        if sender == a {
            // The server's slice runs out; a runs and calls again before the server's next receive.
            while k.current != Some(0) {
                k.trap(&mut f, Event::Timer);
            }
            send(&mut k, &mut f, server, b"a2", &[]);
            while k.current != Some(2) {
                k.trap(&mut f, Event::Timer);
            }
        } else {
            while k.current != Some(1) {
                k.trap(&mut f, Event::Timer);
            }
            send(&mut k, &mut f, server, b"b2", &[]);
            while k.current != Some(2) {
                k.trap(&mut f, Event::Timer);
            }
        }
    }
    assert_eq!(served, ['a', 'b', 'a', 'b']);
}

#[test]
fn call_round_trip_receive_first_and_stale_reply() {
    let mut k = boot(&["server", "client"]);
    let mut f = first_tick(&mut k);
    let server = id(&k, 0);
    receive(&mut k, &mut f, 0);
    assert_eq!(k.current, Some(1));
    send(&mut k, &mut f, server, b"hi", &[]);
    assert_eq!(k.sched[0], SchedState::Runnable, "the waiting server was woken");
    assert_eq!(k.current, Some(0));
    assert_eq!(get(&k, 0, BUF, 2), b"hi");
    let client = info(&k, 0).sender;
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 0, 0, 0, 0]);
    // A second reply to the same call: no call in flight any more.
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 0, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NoSuchTask));
}

/// Client 0 lends a read lease and a write lease over anonymous memory; server 1 borrows both.
#[test]
fn leases_move_bulk_data_and_are_checked() {
    let mut k = boot(&["client", "server"]);
    let mut f = first_tick(&mut k);
    let server = id(&k, 1);
    syscall6(&mut k, &mut f, Sys::MapAnon, [3 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let src = f.rax;
    let data: Vec<u8> = (0..3 * PAGE as usize).map(|i| (i * 31 % 251) as u8).collect();
    put(&mut k, 0, src, &data);
    syscall6(&mut k, &mut f, Sys::MapAnon, [2 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let dst = f.rax;
    let leases =
        [Lease { ptr: src + 100, len: 9000, rights: LEASE_READ }, Lease { ptr: dst, len: 5000, rights: LEASE_WRITE }];
    send(&mut k, &mut f, server, b"copy", &leases);
    assert_eq!(k.current, Some(1));
    // The server's own buffer.
    syscall6(&mut k, &mut f, Sys::MapAnon, [3 * PAGE, MAP_WRITE, 0, 0, 0, 0]);
    let sbuf = f.rax;
    receive(&mut k, &mut f, 0);
    let client = info(&k, 1).sender;
    assert_eq!(info(&k, 1).leases, 2);
    let borrow = |k: &mut K, f: &mut TrapFrame, nr, idx, off, buf, len| {
        syscall6(k, f, nr, [client, idx, off, buf, len, 0]);
        SysError::decode(f.rax)
    };
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, 0, 0, sbuf, 9000), Ok(9000));
    assert_eq!(get(&k, 1, sbuf, 9000), &data[100..9100]);
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, 1, 1000, sbuf, 4000), Ok(4000));
    assert_eq!(get(&k, 0, dst + 1000, 4000), &data[100..4100]);
    // Checked against the lease: range, right, index; the server's own buffer like any pointer.
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, 0, 8999, sbuf, 2), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, 0, u64::MAX, sbuf, 2), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowWrite, 0, 0, sbuf, 1), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, 1, 0, sbuf, 1), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, 2, 0, sbuf, 1), Err(SysError::BadLease));
    assert_eq!(borrow(&mut k, &mut f, Sys::BorrowRead, 0, 0, TEXT, 1), Err(SysError::NotWritable));
    // lease_info tells the server each lease's length and rights, never its address.
    syscall6(&mut k, &mut f, Sys::LeaseInfo, [client, 1, INFO, 0, 0, 0]);
    assert_eq!(f.rax, 0);
    let raw = get(&k, 1, INFO, 24);
    assert_eq!(Lease::from_bytes(&raw.try_into().unwrap()), Lease { ptr: 0, len: 5000, rights: LEASE_WRITE });
    syscall6(&mut k, &mut f, Sys::LeaseInfo, [client, 2, INFO, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::BadLease));
    assert_eq!(k.current, Some(1), "lease mistakes are errors, not faults");
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 0, 0, 0, 0]);
    assert_eq!(
        borrow(&mut k, &mut f, Sys::BorrowRead, 0, 0, sbuf, 1),
        Err(SysError::NoSuchTask),
        "leases end at reply"
    );
}

#[test]
fn bad_sends_are_refused_with_distinct_errors() {
    let mut k = boot(&["client", "server"]);
    let mut f = first_tick(&mut k);
    let (me, server) = (id(&k, 0), id(&k, 1));
    let try_send = |k: &mut K, f: &mut TrapFrame, to, len: u64, leases: &[Lease]| {
        let raw: Vec<u8> = leases.iter().flat_map(|l| [l.ptr, l.len, l.rights]).flat_map(u64::to_le_bytes).collect();
        put(k, 0, LEASES, &raw);
        syscall6(k, f, Sys::Send, [to, MSG, len | (leases.len() as u64) << 32, REPLY, 64, LEASES]);
        assert_eq!(k.current, Some(0), "the caller is not blocked by a refused send");
        SysError::decode(f.rax)
    };
    assert_eq!(try_send(&mut k, &mut f, me, 1, &[]), Err(SysError::WouldDeadlock));
    assert_eq!(try_send(&mut k, &mut f, 0xFFFF_0099, 1, &[]), Err(SysError::NoSuchTask));
    assert_eq!(try_send(&mut k, &mut f, server, MAX_MSG as u64 + 1, &[]), Err(SysError::MessageTooBig));
    let lease = |ptr, len, rights| Lease { ptr, len, rights };
    assert_eq!(try_send(&mut k, &mut f, server, 1, &[lease(0, 8, LEASE_READ)]), Err(SysError::NullPointer));
    assert_eq!(try_send(&mut k, &mut f, server, 1, &[lease(TEXT, 8, LEASE_WRITE)]), Err(SysError::NotWritable));
    assert_eq!(
        try_send(&mut k, &mut f, server, 1, &[lease(DATA, u64::MAX, LEASE_READ)]),
        Err(SysError::LengthOverflow)
    );
    assert_eq!(try_send(&mut k, &mut f, server, 1, &[lease(DATA, 8, 0)]), Err(SysError::BadLease));
    assert_eq!(try_send(&mut k, &mut f, server, 1, &[lease(DATA, 8, 4)]), Err(SysError::BadLease));
    let many = std::vec![lease(DATA, 8, LEASE_READ); MAX_LEASES + 1];
    assert_eq!(try_send(&mut k, &mut f, server, 1, &many), Err(SysError::BadLease));
    syscall6(&mut k, &mut f, Sys::Send, [server, 0, 8, REPLY, 64, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NullPointer));
    syscall6(&mut k, &mut f, Sys::Send, [server, MSG, 1, TEXT, 64, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotWritable), "reply buffer must be writable");
}

#[test]
fn over_long_reply_costs_the_caller_not_the_server() {
    let mut k = boot(&["client", "server"]);
    let mut f = first_tick(&mut k);
    let server = id(&k, 1);
    send(&mut k, &mut f, server, b"q", &[]);
    receive(&mut k, &mut f, 0);
    let client = info(&k, 1).sender;
    assert_eq!(info(&k, 1).reply_cap, 64, "the server learns the caller's reply capacity at receive");
    // The replier's own mistakes are errors to it, and the call stays open.
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, MAX_MSG as u64 + 1, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::MessageTooBig));
    syscall6(&mut k, &mut f, Sys::Reply, [client, 0, 8, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NullPointer));
    assert_eq!(k.sched[0], SchedState::Blocked, "the call is still open");
    // A reply longer than the caller's buffer: the server's reply succeeds, the caller's send fails.
    put(&mut k, 0, REPLY, &[0xAA; 64]);
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 65, 3, 0, 0]);
    assert_eq!(f.rax, 0, "the replier gets an ordinary result");
    assert!(k.task(1).is_some(), "the replier lives");
    assert_eq!(k.current, Some(1));
    let caller = k.task(0).unwrap().frame;
    assert_eq!(SysError::decode(caller.rax), Err(SysError::ReplyTooSmall));
    assert_eq!(caller.rdx, 65, "the caller learns the length it needed");
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(get(&k, 0, REPLY, 64), [0xAA; 64], "nothing of the reply was written");
    assert!(!k.platform.log.iter().any(|l| l.contains("killed")));
    // The call is over: a second reply is refused, and the server serves the next call.
    syscall6(&mut k, &mut f, Sys::Reply, [client, BUF, 1, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NoSuchTask));
}

#[test]
fn zero_capacity_receive_of_an_empty_message_is_delivered() {
    let mut k = boot(&["client", "server"]);
    let mut f = first_tick(&mut k);
    let (client, server) = (id(&k, 0), id(&k, 1));
    syscall6(&mut k, &mut f, Sys::Send, [server, MSG, 0, REPLY, 0, 0]);
    assert_eq!(k.current, Some(1));
    // Capacity 0 and a null buffer: nothing is copied there, so nothing can fail.
    syscall6(&mut k, &mut f, Sys::Receive, [0, 0, 0, INFO, 0, 0]);
    assert_eq!(f.rax, 0);
    assert_eq!(info(&k, 1), RecvInfo { sender: client, reply_cap: 0, ..RecvInfo::default() });
    assert_eq!(k.sched[0], SchedState::Blocked, "the caller waits for the reply, not told the server died");
    syscall6(&mut k, &mut f, Sys::Reply, [client, 0, 0, 0, 0, 0]);
    assert_eq!(f.rax, 0);
    assert_eq!(k.task(0).unwrap().frame.rax, 0);
}

#[test]
fn death_wakes_blocked_callers_and_stale_ids_never_reach_a_new_task() {
    let mut k = boot(&["client", "server", "other"]);
    let mut f = first_tick(&mut k);
    let old = id(&k, 1);
    send(&mut k, &mut f, old, b"q", &[]);
    assert_eq!(k.current, Some(1));
    k.trap(&mut f, Event::Exception { vector: 6, error: 0, cr2: 0 });
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(SysError::decode(k.task(0).unwrap().frame.rax), Err(SysError::TaskDied));
    let new = k.spawn("server", &crate::kernel_tests::image()).unwrap();
    assert_eq!(new, TaskId { index: 1, generation: 1 });
    while k.current != Some(0) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    send(&mut k, &mut f, old, b"q", &[]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::TaskDied), "the old id does not reach the new server");
    assert_eq!(k.current, Some(0));
}

#[test]
fn message_longer_than_the_receive_buffer_bounces_to_the_sender() {
    let mut k = boot(&["server", "client"]);
    let mut f = first_tick(&mut k);
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 2, 0, INFO, 0, 0]);
    let server = id(&k, 0);
    send(&mut k, &mut f, server, b"too long", &[]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::MessageTooBig));
    assert_eq!(k.current, Some(1));
    assert_eq!(k.sched[0], SchedState::Blocked, "the server keeps waiting");
}

#[test]
fn notifications_respect_the_mask_and_stay_pending() {
    let mut k = boot(&["server", "client"]);
    crate::kernel_tests::called(&mut k, 1, 0);
    let mut f = first_tick(&mut k);
    let server = id(&k, 0);
    receive(&mut k, &mut f, 0b10);
    syscall6(&mut k, &mut f, Sys::Notify, [server, 0b1000, 0, 0, 0, 0]);
    assert_eq!(k.sched[0], SchedState::Blocked, "masked bit does not wake");
    syscall6(&mut k, &mut f, Sys::Notify, [server, 0b10, 0, 0, 0, 0]);
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(info(&k, 0), RecvInfo { sender: NOTIFICATION, notifications: 0b10, ..RecvInfo::default() });
    syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    assert_eq!(k.current, Some(0));
    receive(&mut k, &mut f, 0b1000);
    assert_eq!(k.current, Some(0), "a pending bit is delivered at once");
    assert_eq!(info(&k, 0).notifications, 0b1000);
    assert_eq!(info(&k, 0).kernel, 0, "a task posted it");
    syscall6(&mut k, &mut f, Sys::Notify, [0xFFFF_0099, 1, 0, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NoSuchTask));
}

#[test]
fn timers_post_their_bits_at_the_deadline_and_can_be_cancelled() {
    let mut k = boot(&["server", "other"]);
    let mut f = first_tick(&mut k); // tick 1; 1 ms per tick in tests
    syscall6(&mut k, &mut f, Sys::SetTimer, [4_000_000, 0b100, 0, 0, 0, 0]);
    receive(&mut k, &mut f, 0b100);
    assert_eq!(k.current, Some(1));
    let mut woke = None;
    for _ in 0..6 {
        f.vector = 32;
        k.trap(&mut f, Event::Timer);
        if woke.is_none() && k.sched[0] == SchedState::Runnable {
            woke = Some(k.ticks);
        }
    }
    assert_eq!(woke, Some(4), "posted on the deadline's tick");
    let timer = RecvInfo { sender: NOTIFICATION, notifications: 0b100, kernel: 0b100, ..RecvInfo::default() };
    assert_eq!(info(&k, 0), timer, "the receiver sees that the kernel posted it");
    // A cancelled timer never fires.
    while k.current != Some(0) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    syscall6(&mut k, &mut f, Sys::SetTimer, [20_000_000, 0b1, 0, 0, 0, 0]);
    syscall6(&mut k, &mut f, Sys::SetTimer, [0, 0, 0, 0, 0, 0]);
    for _ in 0..30 {
        f.vector = 32;
        k.trap(&mut f, Event::Timer);
    }
    assert_eq!(k.task(0).unwrap().notifications, 0);
}

/// A driver waiting for its interrupt (notify-only receive) is not handed the next request: the
/// sender keeps waiting until an ordinary receive, and only masked bits wake the driver.
#[test]
fn notify_only_receive_leaves_senders_waiting() {
    use crate::abi::RECV_NOTIFY_ONLY;
    let mut k = boot(&["driver", "client", "irq"]);
    crate::kernel_tests::called(&mut k, 2, 0);
    let mut f = first_tick(&mut k);
    let driver = id(&k, 0);
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0, INFO, RECV_NOTIFY_ONLY, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::InvalidArgument), "an empty mask would never wake");
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0b100, INFO, 4, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::InvalidArgument), "unknown flags");
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0b100, INFO, RECV_NOTIFY_ONLY, 0]);
    assert_eq!(k.sched[0], SchedState::Blocked);
    assert_eq!(k.current, Some(1));
    send(&mut k, &mut f, driver, b"req", &[]);
    assert_eq!(k.sched[0], SchedState::Blocked, "the message did not wake the driver");
    assert_eq!(k.sched[1], SchedState::Blocked, "the client waits for service");
    assert_eq!(k.current, Some(2), "the third task posts the notifications");
    syscall6(&mut k, &mut f, Sys::Notify, [driver, 0b010, 0, 0, 0, 0]);
    assert_eq!(k.sched[0], SchedState::Blocked, "an unmasked bit does not wake it either");
    syscall6(&mut k, &mut f, Sys::Notify, [driver, 0b100, 0, 0, 0, 0]);
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(info(&k, 0), RecvInfo { sender: NOTIFICATION, notifications: 0b100, ..RecvInfo::default() });
    while k.current != Some(0) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    // An ordinary receive now takes the queued request.
    receive(&mut k, &mut f, 0);
    assert_eq!(f.rax, 0);
    assert_eq!(info(&k, 0).sender, id(&k, 1));
    assert_eq!(get(&k, 0, BUF, 3), b"req");
}

/// A non-blocking receive returns `RECV_EMPTY` at once when nothing waits, and otherwise takes the
/// pending notification or the waiting sender exactly as a blocking one would.
#[test]
fn nonblocking_receive_never_blocks() {
    use crate::abi::{RECV_EMPTY, RECV_NONBLOCK, RECV_NOTIFY_ONLY};
    let mut k = boot(&["server", "client"]);
    let mut f = first_tick(&mut k);
    let (server, client) = (id(&k, 0), id(&k, 1));
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0b10, INFO, RECV_NONBLOCK, 0]);
    assert_eq!(
        (f.rax, k.current, k.sched[0]),
        (RECV_EMPTY, Some(0), SchedState::Runnable),
        "nothing waiting: empty, still running"
    );
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0b10, INFO, RECV_NONBLOCK | RECV_NOTIFY_ONLY, 0]);
    assert_eq!(f.rax, RECV_EMPTY);
    syscall6(&mut k, &mut f, Sys::Notify, [server, 0b10, 0, 0, 0, 0]);
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0b10, INFO, RECV_NONBLOCK, 0]);
    assert_eq!(f.rax, 0);
    assert_eq!(info(&k, 0).notifications, 0b10, "a pending notification is taken");
    syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    assert_eq!(k.current, Some(1));
    send(&mut k, &mut f, server, b"call", &[]);
    assert_eq!(k.current, Some(0));
    // Notify-only leaves the sender queued, so it is still "empty".
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0b10, INFO, RECV_NONBLOCK | RECV_NOTIFY_ONLY, 0]);
    assert_eq!(f.rax, RECV_EMPTY);
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0b10, INFO, RECV_NONBLOCK, 0]);
    assert_eq!((f.rax, k.current), (0, Some(0)), "the waiting sender is delivered without blocking");
    assert_eq!(info(&k, 0).sender, client);
    assert_eq!(get(&k, 0, BUF, 4), b"call");
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 512, 0, INFO, RECV_NONBLOCK, 0]);
    assert_eq!(f.rax, RECV_EMPTY, "the only sender now awaits its reply");
    // A waiting message too big for the buffer: the sender is refused and the receiver gets empty.
    syscall6(&mut k, &mut f, Sys::Reply, [client, REPLY, 0, 0, 0, 0]);
    syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    assert_eq!(k.current, Some(1));
    send(&mut k, &mut f, server, b"longer", &[]);
    syscall6(&mut k, &mut f, Sys::Receive, [BUF, 2, 0, INFO, RECV_NONBLOCK, 0]);
    assert_eq!((f.rax, k.sched[0]), (RECV_EMPTY, SchedState::Runnable));
    assert_eq!(SysError::decode(k.task(1).unwrap().frame.rax), Err(SysError::MessageTooBig));
}
