//! The forwarded-lease QEMU test: three tasks, client -> middle -> last.
//!
//!   fwd-client  lends 1 MiB to read and 1 MiB to write to fwd-middle; checks the checksum the last
//!               server computed over its bytes, that its write lease holds every byte XOR 0x5A, and
//!               the middle's verdicts on its refused forwards.
//!   fwd-middle  never touches the data: lends both leases on to fwd-last as forwarded leases (the
//!               kernel copies straight between client and last), and checks that a widening forward
//!               (read lease as read-write), one past the end, and one naming a task that is not
//!               calling it are refused with `BadLease`.
//!   fwd-last    reads the forwarded read lease in 64 KiB borrows, writes each byte XOR 0x5A into the
//!               forwarded write lease, and checks that writing the read-only one is refused.
//!
//! And the benchmark's middle server (`bench-middle`): 1 MiB through a middle, forwarded or bounced.

use super::{find, fnv1a, percentiles, rdtsc, BULK, CHUNK, FNV_START};
use alloc::vec;
use libwatos::abi::{Lease, LEASE_READ, LEASE_WRITE, MAX_MSG};
use libwatos::fmt::check;
use libwatos::ipc::{self, SysError};
use libwatos::println;

pub fn client() -> i64 {
    let Some(middle) = find(c"fwd-middle") else {
        check(false, format_args!("fwd-client: found fwd-middle"));
        return 1;
    };
    let input: alloc::vec::Vec<u8> = (0..BULK).map(|i| (i * 13 + i / 777) as u8).collect();
    let mut output = vec![0u8; BULK];
    let mut reply = [0u8; MAX_MSG];
    let n = ipc::send(middle, b"S", &mut reply, &[ipc::lease_read(&input), ipc::lease_write(&mut output)]);
    let sum = reply[..8].try_into().map(u64::from_le_bytes).unwrap_or(0);
    let mut ok = check(
        n == Ok(12) && sum == fnv1a(FNV_START, &input),
        format_args!(
            "fwd-client: the last server read the 1 MiB lease through the middle's forward (checksum {sum:#x}, {n:?})"
        ),
    );
    let same = input.iter().zip(&output).all(|(a, b)| a ^ 0x5A == *b);
    ok &= check(same, format_args!("fwd-client: the last server wrote the 1 MiB forwarded write lease exactly"));
    ok &= check(reply[8] == 1, format_args!("fwd-client: forwarding the read lease as read-write was refused"));
    ok &= check(reply[9] == 1, format_args!("fwd-client: forwarding past the lease's end was refused"));
    ok &= check(
        reply[10] == 1,
        format_args!("fwd-client: forwarding a lease of a task not calling the middle was refused"),
    );
    ok &= check(reply[11] == 1, format_args!("fwd-client: the last server could not write the forwarded read lease"));
    let n = ipc::send(middle, b"Q", &mut reply, &[]);
    ok &= check(n == Ok(0), format_args!("fwd-client: the middle and last servers shut down"));
    if ok {
        0
    } else {
        1
    }
}

pub fn middle() -> i64 {
    let Some(last) = find(c"fwd-last") else { return 1 };
    let mut buf = [0u8; MAX_MSG];
    loop {
        let Ok(info) = ipc::receive(&mut buf, 0) else { return 1 };
        let client = info.sender;
        let mut out = [0u8; MAX_MSG];
        if buf[0] == b'Q' {
            let _ = ipc::send(last, b"Q", &mut out, &[]);
            let _ = ipc::reply(client, &[]);
            return 0;
        }
        let (Ok(src), Ok(dst)) = (ipc::lease_info(client, 0), ipc::lease_info(client, 1)) else {
            let _ = ipc::reply(client, &[]);
            continue;
        };
        let bad = |leases: &[Lease]| ipc::send(last, b"E", &mut [0u8; 8], leases) == Err(SysError::BadLease);
        let widen = bad(&[Lease::forwarded(client, 0, 0, 16, LEASE_READ | LEASE_WRITE)]);
        let past = bad(&[Lease::forwarded(client, 1, 1, dst.len, LEASE_WRITE)]);
        let not_caller = bad(&[Lease::forwarded(last, 0, 0, 16, LEASE_READ)]);
        let fwd =
            [Lease::forwarded(client, 0, 0, src.len, LEASE_READ), Lease::forwarded(client, 1, 0, dst.len, LEASE_WRITE)];
        let n = ipc::send(last, b"S", &mut out, &fwd);
        if n != Ok(9) {
            println!("fwd-middle: the forwarded call failed: {n:?}");
        }
        let denied = out[8];
        out[8..12].copy_from_slice(&[widen as u8, past as u8, not_caller as u8, denied]);
        let _ = ipc::reply(client, &out[..12]);
    }
}

pub fn last() -> i64 {
    let mut buf = [0u8; MAX_MSG];
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let Ok(info) = ipc::receive(&mut buf, 0) else { return 1 };
        let client = info.sender;
        match buf[0] {
            b'S' => {
                let mut hash = FNV_START;
                let mut ok = true;
                let mut offset = 0;
                let len = ipc::lease_info(client, 0).map_or(0, |l| l.len as usize);
                while offset < len && ok {
                    let n = CHUNK.min(len - offset);
                    ok = ipc::borrow_read(client, 0, offset, &mut chunk[..n]).is_ok();
                    hash = fnv1a(hash, &chunk[..n]);
                    chunk[..n].iter_mut().for_each(|b| *b ^= 0x5A);
                    ok &= ipc::borrow_write(client, 1, offset, &chunk[..n]).is_ok();
                    offset += n;
                }
                let denied = ipc::borrow_write(client, 0, 0, b"x") == Err(SysError::BadLease);
                let mut out = [0u8; 9];
                out[..8].copy_from_slice(&if ok { hash } else { 0 }.to_le_bytes());
                out[8] = denied as u8;
                let _ = ipc::reply(client, &out);
            }
            b'Q' => {
                let _ = ipc::reply(client, &[]);
                return 0;
            }
            _ => {
                let _ = ipc::reply(client, &[]);
            }
        }
    }
}

/// `bench-middle`: passes lease 0 on to bench-echo's `R`, forwarded (`F`) or through its own buffer
/// (`B`), so the two rows differ only in the middle's extra copy.
pub fn bench_middle() -> i64 {
    let Some(sink) = find(c"bench-echo") else { return 1 };
    let mut buf = [0u8; 16];
    let mut own = vec![0u8; BULK];
    loop {
        let Ok(info) = ipc::receive(&mut buf, 0) else { return 1 };
        let client = info.sender;
        let len = ipc::lease_info(client, 0).map_or(0, |l| l.len as usize).min(BULK);
        let r = match buf[0] {
            b'F' => ipc::send(sink, b"R", &mut [0u8; 8], &[Lease::forwarded(client, 0, 0, len as u64, LEASE_READ)]),
            b'B' => ipc::borrow_read(client, 0, 0, &mut own[..len])
                .and_then(|_| ipc::send(sink, b"R", &mut [0u8; 8], &[ipc::lease_read(&own[..len])])),
            _ => {
                let _ = ipc::reply(client, &[]);
                return 0;
            }
        };
        let _ = ipc::reply_code(client, &[], r.is_err() as u32);
    }
}

/// The benchmark's rows through bench-middle; false if a call failed.
pub fn bench_through_middle(reply: &mut [u8]) -> bool {
    const CALLS: usize = 100;
    let Some(middle) = find(c"bench-middle") else { return false };
    let data = vec![0x3Cu8; BULK];
    let mut samples = vec![0u64; CALLS];
    for (op, name) in [
        (b"F", "1 MiB read lease through a middle server, forwarded (one copy)"),
        (b"B", "1 MiB read lease through a middle server, bounced (two copies)"),
    ] {
        for i in 0..CALLS + 10 {
            let t0 = rdtsc();
            let r = ipc::send_code(middle, op, reply, &[ipc::lease_read(&data)]);
            let t = rdtsc() - t0;
            if r != Ok((0, 0)) {
                println!("ipc-bench: call through the middle failed: {r:?}");
                return false;
            }
            if i >= 10 {
                samples[i - 10] = t;
            }
        }
        let (median, p99) = percentiles(&mut samples);
        println!("BENCH ipc | {name} | {median} | {p99} | {CALLS}");
    }
    ipc::send(middle, b"Q", reply, &[]).is_ok()
}
