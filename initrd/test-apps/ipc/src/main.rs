//! ipc: the IPC QEMU test, shipped under two names.
//!
//!   echo         a server: echoes inline messages; for op `S` reads the caller's 1 MiB read lease in
//!                64 KiB borrows, writes each byte XOR 0x5A into its write lease and replies with the
//!                FNV-1a checksum of what it read; op `C` crashes it mid-call (`ud2`); op `Q` ends it.
//!   bench-echo   a server for the IPC benchmark: replies at once; op `L` first borrows 4 KiB, op
//!                `R` reads its whole lease 0 in 64 KiB borrows.
//!   bench-middle passes a 1 MiB read lease on to bench-echo (`R`): op `F` forwards it (one copy),
//!                op `B` bounces it through its own buffer (two copies).
//!   ipc-bench    times 10,000 empty calls and 10,000 calls with a 4 KiB lease copy (rdtsc), and 100
//!                1 MiB calls through bench-middle each way; prints median and p99
//!                (`cargo xtask bench ipc`).
//!   rtc-driver   a driver (initrd flag DRIVER): reads PCI configuration space through ports, maps
//!                DMA pages, then takes five RTC periodic interrupts (line 8) as notifications.
//!   proto-echo   a `protocol::ipc::Server` served by `libwatos::transport::serve`: echoes, sums a
//!                lease, or fails with a protocol error; stops on notification bit 1.
//!   proto-client calls it through `KernelTransport` (the protocol's `Transport` on kernel IPC).
//!   fwd-client, fwd-middle, fwd-last: forwarded leases through three tasks (see `forward`).
//!   echo-client  finds `echo` by name; checks an inline round trip, a 1 MiB lease round trip by
//!                checksum, that bad lease descriptors and oversize messages are refused while the
//!                server keeps serving, that a server dying mid-call returns `TaskDied`, and that once
//!                init has restarted the server (new generation) calls succeed again.
#![no_std]
#![no_main]

extern crate alloc;

mod forward;

use alloc::vec;
use libwatos::abi::{Lease, LEASE_READ, LEASE_WRITE, MAX_LEASES, MAX_MSG};
use libwatos::fmt::check;
use libwatos::ipc::{self, SysError};
use libwatos::{println, sys};

libwatos::entry!(main);

const CHUNK: usize = 64 * 1024;
const BULK: usize = 1 << 20;
/// Lives in .rodata: a read-only page to offer as a write lease.
static READ_ONLY: [u8; 64] = [0; 64];

fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn main() -> i64 {
    let me = sys::task_info(sys::SELF_ID).map(|i| i.name).unwrap_or_default();
    let end = me.iter().position(|&b| b == 0).unwrap_or(me.len());
    match &me[..end] {
        b"echo" => server(),
        b"bench-echo" => bench_server(),
        b"bench-middle" => forward::bench_middle(),
        b"ipc-bench" => bench_client(),
        b"rtc-driver" => rtc_driver(),
        b"proto-echo" => proto_echo(),
        b"proto-client" => proto_client(),
        b"fwd-client" => forward::client(),
        b"fwd-middle" => forward::middle(),
        b"fwd-last" => forward::last(),
        _ => client(),
    }
}

struct ProtoEcho;

impl libwatos::protocol::ipc::Server for ProtoEcho {
    fn handle(
        &mut self,
        msg: &[u8],
        cx: &mut libwatos::protocol::ipc::Incoming<'_, '_>,
        reply: &mut [u8],
    ) -> libwatos::protocol::Result<usize> {
        use libwatos::protocol::Error;
        match msg {
            b"fail" => Err(Error::Corrupt { block: 7 }),
            b"sum" => {
                let len = cx.leases.len(0)?;
                let mut chunk = [0u8; 4096];
                let (mut hash, mut at) = (FNV_START, 0);
                while at < len {
                    let n = (len - at).min(chunk.len());
                    cx.leases.read(0, at, &mut chunk[..n])?;
                    hash = fnv1a(hash, &chunk[..n]);
                    at += n;
                }
                // Writing to a read-only lease must be refused.
                let denied = cx.leases.write(0, 0, b"x") == Err(Error::PermissionDenied);
                reply[..8].copy_from_slice(&hash.to_le_bytes());
                reply[8] = denied as u8;
                Ok(9)
            }
            _ => {
                reply[..msg.len()].copy_from_slice(msg);
                Ok(msg.len())
            }
        }
    }
}

fn proto_echo() -> i64 {
    match libwatos::transport::serve(&mut ProtoEcho, 1) {
        Ok(()) => 0,
        Err(e) => {
            println!("proto-echo: {e}");
            1
        }
    }
}

fn proto_client() -> i64 {
    use libwatos::protocol::ipc::{Lease, Transport};
    use libwatos::protocol::Error;
    let t = libwatos::transport::KernelTransport::new();
    let mut server = Err(Error::ServerDead);
    for _ in 0..1000 {
        server = t.lookup("proto-echo");
        if server.is_ok() {
            break;
        }
        sys::yield_now();
    }
    let Ok(server) = server else {
        check(false, format_args!("proto-client: found proto-echo"));
        return 1;
    };
    let mut reply = [0u8; MAX_MSG];
    let mut ok = true;
    let n = t.call(server, b"hello protocol", &mut [], &mut reply);
    ok &= check(
        n == Ok(14) && &reply[..14] == b"hello protocol",
        format_args!("proto-client: Transport::call round trip over kernel IPC ({n:?})"),
    );
    let data: alloc::vec::Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let n = t.call(server, b"sum", &mut [Lease::Read(&data)], &mut reply);
    let sum = reply[..8].try_into().map(u64::from_le_bytes).unwrap_or(0);
    ok &= check(
        n == Ok(9) && sum == fnv1a(FNV_START, &data) && reply[8] == 1,
        format_args!("proto-client: server read a 20 KB lease through LeaseAccess; writing it was refused"),
    );
    let e = t.call(server, b"fail", &mut [], &mut reply);
    ok &= check(
        e == Err(Error::Corrupt { block: 7 }),
        format_args!("proto-client: the server's protocol error came back intact ({e:?})"),
    );
    let big = t.call(server, &[0u8; MAX_MSG + 1], &mut [], &mut reply);
    ok &= check(big == Err(Error::TooBig), format_args!("proto-client: an oversize message is TooBig ({big:?})"));
    let _ = ipc::notify(libwatos::transport::to_kernel(server).unwrap_or(0), 1);
    if ok {
        0
    } else {
        1
    }
}

/// CMOS register `reg` (bit 7 of the index keeps NMIs disabled, as firmware leaves them).
fn cmos(reg: u8, write: Option<u8>) -> Result<u8, SysError> {
    use libwatos::dev::{io_in, io_out};
    io_out(0x70, 1, 0x80 | reg as u32)?;
    match write {
        Some(v) => io_out(0x71, 1, v as u32).map(|()| v),
        None => io_in(0x71, 1).map(|v| v as u8),
    }
}

fn rtc_driver() -> i64 {
    use libwatos::dev::{io_in, io_out, irq_ack, irq_bind};
    let mut ok = true;
    // PCI configuration mechanism 1: bus 0, device 0, function 0, register 0 = vendor and device.
    let id = io_out(0xCF8, 4, 0x8000_0000).and_then(|()| io_in(0xCFC, 4));
    ok &= check(
        id.is_ok_and(|v| v & 0xFFFF == 0x8086),
        format_args!("rtc-driver: PCI host bridge vendor read through ports ({id:x?})"),
    );
    ok &= check(
        io_in(0x3F8, 1) == Err(SysError::NotPermitted),
        format_args!("rtc-driver: the kernel's serial port is refused"),
    );
    ok &= check(
        irq_bind(0, 1) == Err(SysError::InvalidArgument),
        format_args!("rtc-driver: the timer line cannot be bound"),
    );
    let dma = libwatos::dev::map_dma(4);
    let dma_ok = dma.is_ok_and(|(va, pa)| {
        // Safety: map_dma returned 4 fresh writable pages at `va`.
        let bytes = unsafe { core::slice::from_raw_parts_mut(va, 4 * 4096) };
        let zeroed = bytes.iter().all(|&b| b == 0);
        bytes.fill(0x5A);
        zeroed && pa != 0 && pa % 4096 == 0 && (va as u64).is_multiple_of(4096)
    });
    ok &= check(dma_ok, format_args!("rtc-driver: 4 contiguous DMA pages mapped, zeroed, writable ({dma:x?})"));
    // Periodic interrupt (register B bit 6) at the default 1024 Hz, routed to bit 3.
    const RTC_BIT: u64 = 1 << 3;
    let b = cmos(0x0B, None).unwrap_or(0);
    let setup = irq_bind(8, RTC_BIT).and_then(|()| cmos(0x0C, None)).and_then(|_| cmos(0x0B, Some(b | 0x40)));
    let mut seen = 0;
    let start = sys::monotonic_ns();
    while setup.is_ok() && seen < 5 && sys::monotonic_ns() - start < 5_000_000_000 {
        libwatos::ipc::set_timer(sys::monotonic_ns() + 1_000_000_000, 1);
        match ipc::receive(&mut [], RTC_BIT | 1) {
            Ok(info) if info.notifications & RTC_BIT != 0 => {
                seen += 1;
                // Reading register C acknowledges the RTC; then the line may fire again.
                let _ = cmos(0x0C, None);
                let _ = irq_ack(8);
            }
            _ => {}
        }
    }
    let _ = cmos(0x0B, Some(b & !0x40));
    let _ = irq_bind(8, 0);
    ok &= check(
        seen == 5,
        format_args!("rtc-driver: {seen} of 5 RTC interrupts arrived as notifications (setup {setup:?})"),
    );
    if ok {
        0
    } else {
        1
    }
}

fn find(name: &core::ffi::CStr) -> Option<u64> {
    for _ in 0..1000 {
        if let Ok(id) = sys::find_task(name) {
            return Some(id);
        }
        sys::yield_now();
    }
    None
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // Safety: rdtsc only reads the time-stamp counter (allowed in ring 3: CR4.TSD is clear).
    unsafe { core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

fn bench_server() -> i64 {
    let mut buf = [0u8; 16];
    let mut page = [0u8; 4096];
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let Ok(info) = ipc::receive(&mut buf, 0) else { return 1 };
        match buf[0] {
            b'R' => {
                let len = ipc::lease_info(info.sender, 0).map_or(0, |l| l.len as usize);
                let mut at = 0;
                while at < len && ipc::borrow_read(info.sender, 0, at, &mut chunk[..CHUNK.min(len - at)]).is_ok() {
                    at += CHUNK;
                }
                let _ = ipc::reply(info.sender, &[]);
            }
            b'L' => {
                let _ = ipc::borrow_read(info.sender, 0, 0, &mut page);
                let _ = ipc::reply(info.sender, &page[..1]);
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

/// Median and 99th percentile of `samples` (sorted in place).
fn percentiles(samples: &mut [u64]) -> (u64, u64) {
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn bench_client() -> i64 {
    const CALLS: usize = 10_000;
    let Some(server) = find(c"bench-echo") else { return 1 };
    let mut reply = [0u8; 16];
    let lent = vec![0xA5u8; 4096];
    let mut samples = vec![0u64; CALLS];
    for s in samples.iter_mut() {
        let t0 = rdtsc();
        let _ = sys::task_id();
        *s = rdtsc() - t0;
    }
    let (median, p99) = percentiles(&mut samples);
    println!("BENCH ipc | null syscall (task_id), for scale | {median} | {p99} | {CALLS}");
    for (op, name) in [
        (b"E", "empty call (send + receive + reply, 1-byte message)"),
        (b"L", "call with a 4 KiB lease copied by borrow_read"),
    ] {
        let leases = if op == b"L" { vec![ipc::lease_read(&lent)] } else { vec![] };
        for _ in 0..1000 {
            let _ = ipc::send(server, op, &mut reply, &leases);
        }
        for s in samples.iter_mut() {
            let t0 = rdtsc();
            let r = ipc::send(server, op, &mut reply, &leases);
            *s = rdtsc() - t0;
            if r.is_err() {
                println!("ipc-bench: call failed: {r:?}");
                return 1;
            }
        }
        let (median, p99) = percentiles(&mut samples);
        println!("BENCH ipc | {name} | {median} | {p99} | {CALLS}");
    }
    let ok = forward::bench_through_middle(&mut reply);
    let _ = ipc::send(server, b"Q", &mut reply, &[]);
    if ok {
        0
    } else {
        1
    }
}

fn server() -> i64 {
    let mut buf = [0u8; MAX_MSG];
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let info = match ipc::receive(&mut buf, 0) {
            Ok(info) => info,
            Err(e) => {
                println!("echo: receive failed: {e:?}");
                return 1;
            }
        };
        let (client, msg) = (info.sender, &buf[..info.len as usize]);
        let result = match msg.first() {
            Some(b'S') => {
                let mut hash = FNV_START;
                let mut offset = 0;
                let mut ok = true;
                while offset < BULK && ok {
                    ok = ipc::borrow_read(client, 0, offset, &mut chunk).is_ok();
                    hash = fnv1a(hash, &chunk);
                    chunk.iter_mut().for_each(|b| *b ^= 0x5A);
                    ok &= ipc::borrow_write(client, 1, offset, &chunk).is_ok();
                    offset += CHUNK;
                }
                if ok {
                    ipc::reply(client, &hash.to_le_bytes())
                } else {
                    ipc::reply(client, b"lease error")
                }
            }
            // Safety: a deliberate invalid opcode, so the client sees its server die mid-call.
            Some(b'C') => unsafe { core::arch::asm!("ud2", options(noreturn)) },
            Some(b'I') => match ipc::lease_info(client, 0) {
                Ok(lease) => ipc::reply_code(client, &lease.len.to_le_bytes(), lease.rights as u32 + 40),
                Err(e) => ipc::reply_code(client, &[], e as u32),
            },
            Some(b'Q') => {
                let _ = ipc::reply(client, b"bye");
                return 0;
            }
            _ => ipc::reply(client, msg),
        };
        if let Err(e) = result {
            println!("echo: reply to {client:#x} failed: {e:?}");
        }
    }
}

fn client() -> i64 {
    let Some(echo) = find(c"echo") else {
        check(false, format_args!("echo-client: found the echo server"));
        return 1;
    };
    let mut reply = [0u8; MAX_MSG];
    let mut ok = true;

    let n = ipc::send(echo, b"Ehello over IPC", &mut reply, &[]);
    ok &= check(
        n == Ok(15) && &reply[..15] == b"Ehello over IPC",
        format_args!("echo-client: inline round trip ({n:?})"),
    );

    let input: alloc::vec::Vec<u8> = (0..BULK).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut output = vec![0u8; BULK];
    let t0 = sys::monotonic_ns();
    let n = ipc::send(echo, b"S", &mut reply, &[ipc::lease_read(&input), ipc::lease_write(&mut output)]);
    let ms = (sys::monotonic_ns() - t0) / 1_000_000;
    let sum = reply[..8].try_into().map(u64::from_le_bytes).unwrap_or(0);
    ok &= check(
        n == Ok(8) && sum == fnv1a(FNV_START, &input),
        format_args!("echo-client: server read the 1 MiB lease exactly (checksum {sum:#x}, {ms} ms)"),
    );
    let same = input.iter().zip(&output).all(|(a, b)| a ^ 0x5A == *b);
    ok &= check(same, format_args!("echo-client: server wrote the 1 MiB write lease exactly"));

    let bad = |what: &str, got: Result<usize, SysError>, want: SysError| {
        check(got == Err(want), format_args!("echo-client: {what} -> {want:?} (got {got:?})"))
    };
    let lease = |ptr: u64, len: u64, rights: u64| Lease { ptr, len, rights };
    ok &= bad(
        "lease with a null pointer",
        ipc::send(echo, b"E", &mut reply, &[lease(0, 16, LEASE_READ)]),
        SysError::NullPointer,
    );
    let ro = READ_ONLY.as_ptr() as u64;
    ok &= bad(
        "read-only page as a write lease",
        ipc::send(echo, b"E", &mut reply, &[lease(ro, 64, LEASE_WRITE)]),
        SysError::NotWritable,
    );
    ok &= bad(
        "lease in the kernel half",
        ipc::send(echo, b"E", &mut reply, &[lease(0xFFFF_8000_0000_0000, 8, LEASE_READ)]),
        SysError::KernelAddress,
    );
    ok &= bad("lease with no rights", ipc::send(echo, b"E", &mut reply, &[lease(ro, 8, 0)]), SysError::BadLease);
    let many = [lease(ro, 8, LEASE_READ); MAX_LEASES + 1];
    ok &= bad("too many leases", ipc::send(echo, b"E", &mut reply, &many), SysError::BadLease);
    ok &= bad("oversize message", ipc::send(echo, &[b'E'; MAX_MSG + 1], &mut reply, &[]), SysError::MessageTooBig);
    ok &= bad("send to myself", ipc::send(sys::task_id(), b"E", &mut reply, &[]), SysError::WouldDeadlock);
    ok &= bad("send to a never-used id", ipc::send(0xFFFF_00F0, b"E", &mut reply, &[]), SysError::NoSuchTask);
    let mut probe = [0u8; 300];
    let got = ipc::send_code(echo, b"I", &mut reply, &[ipc::lease_write(&mut probe)]);
    let len = reply[..8].try_into().map(u64::from_le_bytes).unwrap_or(0);
    ok &= check(
        got == Ok((8, 43)) && len == 300,
        format_args!("echo-client: server learned the lease's length and rights, replied with a code ({got:?}, {len})"),
    );
    let n = ipc::send(echo, b"Estill serving", &mut reply, &[]);
    ok &= check(n == Ok(14), format_args!("echo-client: the server still serves after the bad calls"));

    let died = ipc::send(echo, b"C", &mut reply, &[]);
    ok &= check(
        died == Err(SysError::TaskDied),
        format_args!("echo-client: server died mid-call -> TaskDied (got {died:?})"),
    );
    let again = ipc::send(echo, b"E", &mut reply, &[]);
    ok &= check(again == Err(SysError::TaskDied), format_args!("echo-client: its old id stays dead (got {again:?})"));

    // init restarts echo under a new generation; look it up again (bounded wait) and call it.
    let start = sys::monotonic_ns();
    let mut restarted = None;
    while restarted.is_none() && sys::monotonic_ns() - start < 10_000_000_000 {
        restarted = sys::find_task(c"echo").ok().filter(|&id| id != echo);
        sys::sleep_ns(5_000_000);
    }
    let n = restarted.map(|id| ipc::send(id, b"Eagain", &mut reply, &[]));
    ok &= check(
        n == Some(Ok(6)) && &reply[..6] == b"Eagain",
        format_args!("echo-client: a call succeeds after the supervisor restarted echo ({n:?})"),
    );
    if let Some(id) = restarted {
        let n = ipc::send(id, b"Q", &mut reply, &[]);
        ok &= check(n == Ok(3), format_args!("echo-client: the restarted echo shut down on request"));
    }
    println!("echo-client: done ({})", if ok { "all as expected" } else { "SOME FAILED" });
    if ok {
        0
    } else {
        1
    }
}
