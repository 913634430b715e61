//! Randomized robustness test of the whole syscall surface: several tasks make thousands of syscalls
//! with hostile arguments (null, kernel-half, non-canonical, unmapped, read-only, huge lengths, random
//! ids), interleaved with timer ticks and CPU exceptions. The kernel must never panic, must keep its
//! scheduler consistent, and must get every frame back once all tasks are gone. Deterministic
//! (xorshift with fixed seeds); `exhaustive_random_syscalls` runs far longer (`--ignored`).

use crate::abi::{Sys, KERNEL_HALF, PAGE, USER_END};
use crate::kernel_tests::{boot, first_tick, syscall6, DATA, TEXT};
use crate::sched::SchedState;
use crate::trap::{Event, Exit, TrapFrame};
use std::vec::Vec;

use prng::XorShift64 as Rng;

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut k = boot(&["a", "b", "c", "d"]);
    k.supervisor = k.task(0).map(|t| t.id);
    let mut f = first_tick(&mut k);
    let mut idle = false;
    let (mut respawns, mut outcomes) = (0, [0u32; 32]);
    for _ in 0..steps {
        let ids: Vec<u64> = k.slots.iter().filter_map(|s| s.task.as_ref()).map(|t| t.id.to_raw()).collect();
        let id = if ids.is_empty() { 0 } else { rng.pick(&ids) };
        let pointers = [
            0,
            1,
            0xFFF,
            DATA,
            DATA + 100,
            DATA + PAGE - 3,
            TEXT,
            KERNEL_HALF,
            1 << 47,
            USER_END - 8,
            0x1000_0000_0000,
            u64::MAX,
            rng.next_u64(),
        ];
        let numbers = [
            0,
            1,
            8,
            64,
            255,
            256,
            4096,
            1 << 32 | 3,
            u64::MAX,
            id,
            id + (1 << 16),
            rng.next_u64() % 512,
            rng.next_u64(),
        ];
        let exit = if idle || rng.next_u64().is_multiple_of(8) {
            if !idle {
                f.vector = 32;
            }
            let mut frame = if idle { TrapFrame { cs: 0x08, ..Default::default() } } else { f };
            let e = k.trap(&mut frame, Event::Timer);
            if e != Exit::Idle {
                f = frame;
            }
            e
        } else if rng.next_u64().is_multiple_of(200) {
            k.trap(
                &mut f,
                Event::Exception {
                    vector: rng.pick(&[0, 6, 13, 14]),
                    error: rng.next_u64() & 0x1F,
                    cr2: rng.next_u64(),
                },
            )
        } else {
            // Mostly real calls; sometimes an unknown number. Exit is rare so tasks live long enough.
            let nr = loop {
                let n = rng.next_u64() % (Sys::ALL.len() as u64 + 2);
                if n != Sys::Exit as u64 || rng.next_u64().is_multiple_of(50) {
                    break n;
                }
            };
            let mut a = [0u64; 6];
            for (i, arg) in a.iter_mut().enumerate() {
                *arg = if i % 2 == 0 { rng.pick(&pointers) } else { rng.pick(&numbers) };
            }
            if rng.next_u64().is_multiple_of(3) {
                a[0] = id;
            }
            // Keep sleeps short so the run keeps moving.
            if nr == Sys::Sleep as u64 {
                a[0] %= 5_000_000;
            }
            f.rax = nr;
            (f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9) = (a[0], a[1], a[2], a[3], a[4], a[5]);
            f.vector = crate::trap::SYSCALL_VECTOR;
            k.trap(&mut f, Event::Syscall)
        };
        match exit {
            Exit::Halt { ok } => {
                assert!(ok, "frames leaked (seed {seed})");
                return;
            }
            Exit::Idle => {
                idle = true;
                assert!(k.current.is_none());
            }
            Exit::Iret | Exit::Sysret => {
                idle = false;
                let c = k.current.expect("running task");
                assert_eq!(k.sched[c], SchedState::Runnable);
            }
        }
        // Keep four tasks alive (as a supervisor would), so the run covers many lifetimes.
        while k.live_tasks() < 4 {
            k.spawn("respawned", &crate::kernel_tests::image()).expect("frames for a respawn");
            respawns += 1;
        }
        if let Exit::Sysret | Exit::Iret = exit {
            let code = f.rax as i64;
            outcomes[if code >= 0 { 0 } else { code.unsigned_abs().min(31) as usize }] += 1;
        }
        // Everyone blocked forever on each other: break the deadlock the way a fault would.
        if idle && !k.sched.iter().any(|s| matches!(s, SchedState::Runnable | SchedState::Sleeping { .. })) {
            let victim = k.sched.iter().position(|s| *s == SchedState::Blocked).expect("someone is blocked");
            k.reap(victim, crate::kernel::Death::Fault(0));
        }
    }
    if std::env::var("FUZZ_STATS").is_ok() {
        std::eprintln!(
            "seed {seed}: ticks {} killed {} exited {} respawns {respawns} results (ok, -1, -2, ...) {outcomes:?}",
            k.ticks,
            k.killed,
            k.exited
        );
    }
    // Tear everything down and check the frame count.
    for i in 0..k.slots.len() {
        k.reap(i, crate::kernel::Death::Exit(0));
    }
    assert!(k.platform.log.iter().any(|l| l.starts_with("CHECK PASS kernel: every frame returned")), "seed {seed}");
    let _ = syscall6; // shares the helpers module
}

#[test]
fn random_syscalls_never_panic_and_leak_nothing() {
    for seed in 1..=12u64 {
        run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 3_000);
    }
}

#[test]
#[ignore]
fn exhaustive_random_syscalls() {
    for seed in 1..=400u64 {
        run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 20_000);
    }
}
