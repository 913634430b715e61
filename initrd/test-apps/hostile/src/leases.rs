//! The lease and forwarding battery: three roles attack leases, replies and task ids with valid
//! calls, each attack checked for the error it must get, and the server serves on afterwards.
//!
//!   lease-client  (calls lease-server) offers leases the kernel must refuse at send time (17 of
//!                 them, reserved rights bits, an address near 2^64, a length that wraps, a write
//!                 lease over read-only memory, a forward of a call it is not serving); then a good
//!                 call (`B`) with a read and a write lease, on which the server runs its side; has
//!                 the server run lease-victim's case (`K`); then
//!                 crashes the server (`C`) and checks that its old id stays dead (`TaskDied` for
//!                 calls and notifications) while the restarted server, under a new id, serves.
//!   lease-server  (RESTART, calls lease-thief) on `B`: borrows with index 255, offsets near 2^64,
//!                 a write through the read-only lease, forwards with index 255, an offset near
//!                 2^64 and reserved rights bits; has lease-thief try to take over the call; replies,
//!                 replies again, and borrows after its reply. `P` answers `pong`, `C` is `ud2`, `Q`
//!                 stops lease-thief and ends.
//!   lease-victim  (RESTART) calls lease-server with a read lease; on the client's `K` the server has
//!                 init kill it mid-call, then borrows its lease, reads its lease_info and replies to
//!                 it: each refused. Its restarted incarnation sees its own death and ends.
//!   lease-thief   a server that, while lease-server holds the client's call, tries to reply to that
//!                 client and to read, write and inspect its leases: it is not the one being called,
//!                 so each is `NoSuchTask` and the client never sees its reply.
//!
//! task_info of the stale id is `NoSuchTask`, as the kernel's host test expects (no record of the new
//! incarnation either way). The expected errors are those of the kernel's host tests (kernel/core/src/ipc_tests.rs,
//! forward_tests.rs); here the same attacks cross the real syscall boundary.
use alloc::vec::Vec;
use libwatos::abi::{Lease, Sys, SysError, LEASE_READ, LEASE_WRITE, MAX_LEASES, MAX_MSG};
use libwatos::fmt::check;
use libwatos::{ipc, println, sys};

/// Lives in .rodata: a read-only page to offer as a write lease.
static READ_ONLY: [u8; 64] = [7; 64];

/// The bytes of the client's read lease (the server writes them back XOR 0x5A).
fn pattern() -> [u8; 64] {
    core::array::from_fn(|i| (i * 37 + 11) as u8)
}

fn find(name: &core::ffi::CStr) -> Option<u64> {
    for _ in 0..1000 {
        if let Ok(id) = sys::find_task(name) {
            return Some(id);
        }
        sys::sleep_ns(1_000_000);
    }
    None
}

/// One check line: `<who>: authority: <what> -> <want> (got <got>)`.
fn expect<T: core::fmt::Debug>(who: &str, what: &str, got: Result<T, SysError>, want: SysError) -> bool {
    let ok = matches!(got, Err(e) if e == want);
    check(ok, format_args!("{who}: authority: {what} -> {want:?} (got {got:?})"))
}

fn send_raw(to: u64, leases: &[Lease]) -> Result<usize, SysError> {
    ipc::send(to, b"E", &mut [0u8; 8], leases)
}

pub fn client() -> i64 {
    const ME: &str = "lease-client";
    let Some(server) = find(c"lease-server") else {
        return i64::from(!check(false, format_args!("{ME}: found lease-server")));
    };
    let input = pattern();
    let mut ok = true;
    let good = ipc::lease_read(&input);
    let many = [good; MAX_LEASES + 1];
    ok &= expect(ME, "a call with 17 leases", send_raw(server, &many), SysError::BadLease);
    for (what, rights) in [
        ("a lease with a reserved rights bit (8)", LEASE_READ | 8),
        ("a lease with rights bit 40", LEASE_READ | 1 << 40),
    ] {
        let l = Lease { rights, ..good };
        ok &= expect(ME, what, send_raw(server, &[l]), SysError::BadLease);
    }
    let near_top = Lease { ptr: u64::MAX - 7, len: 8, rights: LEASE_READ };
    ok &= expect(ME, "a lease at address 2^64 - 8", send_raw(server, &[near_top]), SysError::KernelAddress);
    let wraps = Lease { len: u64::MAX - good.ptr + 8, ..good };
    ok &= expect(ME, "a lease whose end wraps past 2^64", send_raw(server, &[wraps]), SysError::LengthOverflow);
    let ro = Lease { ptr: READ_ONLY.as_ptr() as u64, len: 64, rights: LEASE_WRITE };
    ok &= expect(ME, "a write lease over read-only memory", send_raw(server, &[ro]), SysError::NotWritable);
    let forged = Lease::forwarded(server, 0, 0, 1, LEASE_READ);
    ok &= expect(ME, "forwarding a lease of a call it is not serving", send_raw(server, &[forged]), SysError::BadLease);

    // The good call: the server's side of the battery runs on these two leases.
    let mut output = [0u8; 64];
    let mut reply = [0u8; MAX_MSG];
    // A write-only lease (`ipc::lease_write` also grants reading).
    let out = Lease { ptr: output.as_mut_ptr() as u64, len: output.len() as u64, rights: LEASE_WRITE };
    let n = ipc::send(server, b"B", &mut reply, &[good, out]);
    ok &= check(
        n == Ok(6) && &reply[..6] == b"served",
        format_args!("{ME}: authority: the server's reply, not the thief's, ends the call ({n:?})"),
    );
    let exact = input.iter().zip(&output).all(|(a, b)| a ^ 0x5A == *b);
    ok &= check(
        exact && input == pattern() && READ_ONLY.iter().all(|&b| b == 7),
        format_args!("{ME}: authority: only the allowed borrows touched its memory (write lease exact, read lease and read-only page unchanged)"),
    );
    let n = ipc::send(server, b"P", &mut reply, &[]);
    ok &= check(n == Ok(4), format_args!("{ME}: authority: lease-server still serves after the battery ({n:?})"));

    // A client that dies mid-call: lease-victim's call is held by the server until now.
    let k = ipc::send_code(server, b"K", &mut reply, &[]);
    ok &= check(
        k == Ok((0, 0)),
        format_args!("{ME}: authority: the server's calls on a dead client's lease were refused ({k:?})"),
    );
    // Stale ids: the server dies mid-call and init restarts it under a new generation.
    let died = ipc::send(server, b"C", &mut reply, &[]);
    ok &= expect(ME, "a call whose server dies mid-call", died, SysError::TaskDied);
    let mut fresh = None;
    for _ in 0..2000 {
        match sys::find_task(c"lease-server") {
            Ok(id) if id != server => {
                fresh = Some(id);
                break;
            }
            _ => sys::sleep_ns(1_000_000),
        }
    }
    let Some(fresh) = fresh else {
        return i64::from(!check(false, format_args!("{ME}: authority: init restarted lease-server")));
    };
    println!("{ME}: lease-server restarted: {server:#x} -> {fresh:#x}");
    ok &= expect(ME, "a call to the old lease-server id", ipc::send(server, b"P", &mut reply, &[]), SysError::TaskDied);
    ok &= expect(ME, "notify to the old lease-server id", ipc::notify(server, 1 << 6), SysError::TaskDied);
    let info = sys::raw(Sys::TaskInfo, [server, reply.as_mut_ptr() as u64, reply.len() as u64, 0, 0, 0]);
    // task_info answers a stale id as one it does not know (kernel_tests.rs task_info_find_task_and_generations):
    // never the new incarnation's record.
    ok &= expect(ME, "task_info of the old lease-server id", SysError::decode(info), SysError::NoSuchTask);
    let n = ipc::send(fresh, b"P", &mut reply, &[]);
    ok &= check(
        n == Ok(4) && &reply[..4] == b"pong",
        format_args!("{ME}: authority: the restarted lease-server serves under its new id ({n:?})"),
    );
    let n = ipc::send(fresh, b"Q", &mut reply, &[]);
    ok &= check(n == Ok(0), format_args!("{ME}: lease-server and lease-thief shut down ({n:?})"));
    println!("{ME}: lease battery done ({})", if ok { "all refused" } else { "SOME SUCCEEDED" });
    i64::from(!ok)
}

pub fn server() -> i64 {
    let Some(thief) = find(c"lease-thief") else { return 1 };
    let mut buf = [0u8; MAX_MSG];
    let mut victim = None;
    loop {
        let Ok(info) = ipc::receive(&mut buf, 0) else { return 1 };
        let c = info.sender;
        match buf[0] {
            // lease-victim's call: held unanswered until the client asks for the case (`K`).
            b'V' => victim = Some(c),
            b'K' => {
                while victim.is_none() {
                    let Ok(v) = ipc::receive(&mut buf, 0) else { return 1 };
                    if buf[0] == b'V' {
                        victim = Some(v.sender);
                    } else {
                        let _ = ipc::reply(v.sender, &[]);
                    }
                }
                let ok = victim.take().is_some_and(client_dies);
                let _ = ipc::reply_code(c, &[], u32::from(!ok));
            }
            b'B' => {
                let _ = battery(c, thief);
            }
            b'P' => {
                let _ = ipc::reply(c, b"pong");
            }
            // Safety: a deliberate #UD mid-call, so the kernel kills this incarnation.
            b'C' => unsafe { core::arch::asm!("ud2") },
            b'Q' => {
                let _ = ipc::send(thief, b"Q", &mut [0u8; 8], &[]);
                let _ = ipc::reply(c, &[]);
                return 0;
            }
            _ => {
                let _ = ipc::reply(c, &[]);
            }
        }
    }
}

/// lease-victim is calling with a read lease; init kills it (a CONTROL request), and then its lease,
/// its call and its id are gone: borrowing, inspecting and replying are errors to this server.
fn client_dies(c: u64) -> bool {
    const ME: &str = "lease-server";
    let killed = libwatos::service::supervisor().and_then(|init| init.kill_task("lease-victim"));
    let mut ok = check(killed.is_ok(), format_args!("{ME}: init killed lease-victim mid-call ({killed:?})"));
    for _ in 0..1000 {
        if sys::task_info(c).is_err() {
            break;
        }
        sys::sleep_ns(1_000_000);
    }
    let mut b8 = [0u8; 8];
    let dead = sys::task_info(c);
    ok &= check(dead.is_err(), format_args!("{ME}: lease-victim's id is dead ({:?})", dead.map(|i| i.id)));
    ok &= expect(ME, "borrow_read after the client died", ipc::borrow_read(c, 0, 0, &mut b8), SysError::TaskDied);
    ok &= expect(ME, "lease_info after the client died", ipc::lease_info(c, 0), SysError::TaskDied);
    ok &= expect(ME, "reply after the client died", ipc::reply(c, b"late"), SysError::TaskDied);
    ok
}

/// lease-victim: calls lease-server with a read lease and is killed in the call. Its restarted
/// incarnation (it is a service, the only kind init kills on request) sees its own death and ends.
pub fn victim() -> i64 {
    let killed_before = libwatos::service::supervisor()
        .and_then(|init| init.deaths())
        .is_ok_and(|d| d.iter().any(|d| d.name == "lease-victim"));
    if killed_before {
        println!("lease-victim: restarted after the kill; done");
        return 0;
    }
    let Some(server) = find(c"lease-server") else { return 1 };
    let data = pattern();
    let got = ipc::send(server, b"V", &mut [0u8; 8], &[ipc::lease_read(&data)]);
    check(false, format_args!("lease-victim: authority: still alive after its kill ({got:?})"));
    1
}

/// The server's side, on client `c`'s call with lease 0 (read, 64 bytes) and lease 1 (write).
fn battery(c: u64, thief: u64) -> bool {
    const ME: &str = "lease-server";
    let mut ok = true;
    let mut b8 = [0u8; 8];
    ok &= expect(ME, "lease_info of lease index 255", ipc::lease_info(c, 255), SysError::BadLease);
    ok &= expect(ME, "borrow_read of lease index 255", ipc::borrow_read(c, 255, 0, &mut b8), SysError::BadLease);
    ok &= expect(
        ME,
        "borrow_read at offset 2^64 - 4",
        ipc::borrow_read(c, 0, usize::MAX - 3, &mut b8),
        SysError::BadLease,
    );
    ok &= expect(ME, "borrow_write at offset 2^64 - 1", ipc::borrow_write(c, 1, usize::MAX, &b8), SysError::BadLease);
    ok &= expect(ME, "borrow_write through the read-only lease", ipc::borrow_write(c, 0, 0, b"x"), SysError::BadLease);
    ok &= expect(ME, "borrow_read of the write-only lease", ipc::borrow_read(c, 1, 0, &mut b8), SysError::BadLease);
    let fwd = Lease::forwarded;
    let mut reserved = fwd(c, 0, 0, 1, LEASE_READ);
    reserved.rights |= 1 << 20;
    let bad_forwards: [(&str, Lease); 5] = [
        ("forwarding lease index 255", fwd(c, 255, 0, 1, LEASE_READ)),
        ("forwarding at offset 2^64 - 4", fwd(c, 0, u64::MAX - 3, 8, LEASE_READ)),
        ("forwarding with a reserved rights bit", reserved),
        ("forwarding the read lease as writable", fwd(c, 0, 0, 1, LEASE_READ | LEASE_WRITE)),
        ("forwarding a lease of a task not calling it", fwd(thief, 0, 0, 1, LEASE_READ)),
    ];
    for (what, lease) in bad_forwards {
        ok &= expect(ME, what, send_raw(thief, &[lease]), SysError::BadLease);
    }
    // The allowed borrows: read the lease, write it back XOR 0x5A.
    let mut data = [0u8; 64];
    let read = ipc::borrow_read(c, 0, 0, &mut data);
    data.iter_mut().for_each(|b| *b ^= 0x5A);
    let wrote = ipc::borrow_write(c, 1, 0, &data);
    ok &= check(
        read == Ok(64) && wrote == Ok(64),
        format_args!("{ME}: the allowed borrows still work ({read:?}, {wrote:?})"),
    );
    // Another server tries to take over this call.
    let mut msg = Vec::from(*b"T");
    msg.extend_from_slice(&c.to_le_bytes());
    let t = ipc::send_code(thief, &msg, &mut [0u8; 8], &[]);
    ok &= check(t == Ok((0, 0)), format_args!("{ME}: lease-thief finished its attempts ({t:?})"));
    let first = ipc::reply(c, b"served");
    ok &= check(first.is_ok(), format_args!("{ME}: its own reply went through ({first:?})"));
    ok &= expect(ME, "a second reply to the same call", ipc::reply(c, b"again"), SysError::NoSuchTask);
    ok &= expect(ME, "borrow_read after the reply", ipc::borrow_read(c, 0, 0, &mut b8), SysError::NoSuchTask);
    ok &= expect(ME, "borrow_write after the reply", ipc::borrow_write(c, 1, 0, &b8), SysError::NoSuchTask);
    ok &= expect(ME, "lease_info after the reply", ipc::lease_info(c, 0), SysError::NoSuchTask);
    ok
}

pub fn thief() -> i64 {
    const ME: &str = "lease-thief";
    let mut buf = [0u8; MAX_MSG];
    loop {
        let Ok(info) = ipc::receive(&mut buf, 0) else { return 1 };
        match buf[0] {
            b'T' => {
                let victim = u64::from_le_bytes(buf[1..9].try_into().unwrap_or([0; 8]));
                let mut b8 = [0u8; 8];
                let mut ok = true;
                ok &= expect(ME, "reply to lease-server's client", ipc::reply(victim, b"forged"), SysError::NoSuchTask);
                ok &= expect(
                    ME,
                    "borrow_read from lease-server's client",
                    ipc::borrow_read(victim, 0, 0, &mut b8),
                    SysError::NoSuchTask,
                );
                ok &= expect(
                    ME,
                    "borrow_write to lease-server's client",
                    ipc::borrow_write(victim, 1, 0, &b8),
                    SysError::NoSuchTask,
                );
                ok &=
                    expect(ME, "lease_info of lease-server's client", ipc::lease_info(victim, 0), SysError::NoSuchTask);
                let _ = ipc::reply_code(info.sender, &[], u32::from(!ok));
            }
            b'Q' => {
                let _ = ipc::reply(info.sender, &[]);
                return 0;
            }
            _ => {
                let _ = ipc::reply(info.sender, &[]);
            }
        }
    }
}
