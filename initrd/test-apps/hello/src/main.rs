//! hello: the first QEMU test. Prints a greeting, exercises the heap, time (monotonic and wall
//! clock), sleep and task info, and exits 0.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::{println, sys};

libwatos::entry!(main);

fn main() -> i64 {
    let id = sys::task_id();
    println!("hello: Hello from WATOS! I am task {id:#x}");
    let info = sys::task_info(sys::SELF_ID);
    check(info.is_ok_and(|i| i.name() == "hello" && i.id == id), format_args!("hello: task_info names me"));

    let v: Vec<u64> = (1..=10_000).collect();
    check(v.iter().sum::<u64>() == 50_005_000, format_args!("hello: heap Vec of 10000 u64"));
    let big: Vec<u8> = alloc::vec![7; 600 * 1024];
    check(big.iter().all(|&b| b == 7), format_args!("hello: 600 KiB heap block"));

    let t0 = sys::monotonic_ns();
    sys::sleep_ns(20_000_000);
    let t1 = sys::monotonic_ns();
    check(t1 >= t0 + 20_000_000, format_args!("hello: sleep 20 ms took {} us", (t1 - t0) / 1000));

    // The wall clock: the RTC read at boot plus the time since. The harness compares the seconds
    // with the host's clock (QEMU's RTC follows it).
    let wall = sys::wall_clock_ns();
    let later = sys::wall_clock_ns();
    println!(
        "hello: wall clock {} ({} s since 1970)",
        sys::DateTime::from_unix(wall / 1_000_000_000),
        wall / 1_000_000_000
    );
    check(
        later >= wall && wall / 1_000_000_000 > 1_700_000_000,
        format_args!("hello: the wall clock is after 2023-11-14 and does not go back"),
    );

    // A timer notification instead of a sleep: receive returns when the kernel posts the bit.
    let deadline = sys::monotonic_ns() + 15_000_000;
    libwatos::ipc::set_timer(deadline, 1 << 5);
    let got = libwatos::ipc::receive(&mut [], 1 << 5);
    let now = sys::monotonic_ns();
    check(
        got.is_ok_and(|i| i.sender == libwatos::ipc::NOTIFICATION && i.notifications == 1 << 5) && now >= deadline,
        format_args!(
            "hello: set_timer woke receive with its bit at the deadline ({} us late)",
            now.saturating_sub(deadline) / 1000
        ),
    );
    0
}
