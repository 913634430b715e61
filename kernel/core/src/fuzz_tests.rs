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

/// Drivers write random values at random widths to the configuration ports (latches with random
/// functions, registers, low bits and enable bits; data at every offset) and die at random, against
/// a model of QEMU's host bridge. After every step the kernel's claims name exactly the functions
/// whose Bus Master Enable is on: no write it lets through switches mastering on unseen, and no
/// death leaves a device mastering that only the dead driver had enabled.
fn drivers_run(seed: u64, steps: usize) {
    use crate::busmaster::{BUS_MASTER, CONFIG_ADDRESS, CONFIG_DATA};
    let mut rng = Rng(seed);
    let mut k = boot(&[]);
    let functions: [u16; 4] = [0x08, 0x09, 0x18, 0x20];
    let mut pci = crate::sim::SimPci::default();
    for f in functions {
        pci.add(f, 0x1000_1AF4, 0x0100_0000, 0x0001, f == 0x08);
    }
    k.platform.pci = Some(pci);
    let leaked: &'static [u8] = std::boxed::Box::leak(crate::kernel_tests::image().into_boxed_slice());
    k.add_image("drv", leaked, true);
    for f in functions {
        k.assign_device("drv", f);
    }
    k.spawn_image("drv").unwrap();
    k.spawn_image("drv").unwrap();
    let mut f = first_tick(&mut k);
    for step in 0..steps {
        if rng.next_u64().is_multiple_of(40) {
            // A driver dies (as a fault would end it) and the supervisor starts another.
            let c = k.current.expect("a driver runs");
            k.trap(&mut f, Event::Exception { vector: 6, error: 0, cr2: 0 });
            assert!(k.task(c).is_none());
            k.spawn_image("drv").unwrap();
            if k.current.is_none() {
                // Nobody was runnable: the next tick schedules the new driver.
                let mut idle = TrapFrame { cs: 0x08, ..Default::default() };
                k.trap(&mut idle, Event::Timer);
                f = idle;
            }
        } else {
            let (port, width, value) = if rng.next_u64().is_multiple_of(2) {
                let reg = rng.pick(&[0u32, 4, 4, 4, 8, 0x10, 0x3C, 0xFC]);
                let latch = rng.pick(&[1u32 << 31, 1 << 31, 0]) | (rng.pick(&functions) as u32) << 8 | reg;
                (
                    CONFIG_ADDRESS as u64 + rng.pick(&[0, 0, 0, 1, 2]),
                    rng.pick(&[4u64, 4, 2, 1]),
                    latch | rng.pick(&[0, 0, 1, 2, 3]),
                )
            } else {
                let width = rng.pick(&[1u64, 2, 4]);
                let offset = rng.pick(&[0u64, 1, 2, 3]) / width * width;
                (CONFIG_DATA as u64 + offset, width, rng.next_u64() as u32 | rng.pick(&[0, BUS_MASTER]))
            };
            syscall6(&mut k, &mut f, Sys::IoOut, [port, width, value as u64, 0, 0, 0]);
        }
        let pci = k.platform.pci.as_ref().unwrap();
        let on: Vec<u16> = functions.iter().copied().filter(|&g| pci.command(g) as u32 & BUS_MASTER != 0).collect();
        let live: Vec<_> = k.slots.iter().filter_map(|s| s.task.as_ref()).map(|t| t.id).collect();
        let mut claimed: Vec<u16> = live.iter().flat_map(|&d| k.bus_masters.claimed_by(d)).collect();
        claimed.sort_unstable();
        claimed.dedup();
        assert_eq!(claimed, on, "seed {seed} step {step}: claims and the hardware's BME differ");
    }
}

#[test]
fn random_configuration_writes_never_hide_bus_mastering() {
    for seed in 1..=8u64 {
        drivers_run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 2_000);
    }
}

#[test]
#[ignore]
fn exhaustive_random_configuration_writes() {
    for seed in 1..=200u64 {
        drivers_run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 20_000);
    }
}
