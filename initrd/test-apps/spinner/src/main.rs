//! spinner: keeps computing while other processes fault, proving isolation and per-thread SSE state.
//!
//! It fills all sixteen XMM registers with a pattern unique to this process, then spins with the
//! pattern live across many timer preemptions and syscalls, and checks every register afterwards. Two
//! instances (spinner-a, spinner-b) run at once, so a kernel that did not save and restore FPU/SSE
//! state per thread would hand one the other's registers.
#![no_std]
#![no_main]

use core::arch::asm;
use libwatos::fmt::check;
use libwatos::{println, sys};

libwatos::entry!(main);

/// Loads xmm0..15 with `pattern + i`, spins `iters` times (one syscall per 4096 iterations), and
/// returns the XOR-difference of the registers from what was loaded (0 if intact).
fn spin_with_live_sse(pattern: u64, iters: u64) -> u64 {
    let diff: u64;
    // Safety: only registers are touched; the syscall (monotonic time) writes rax, rcx and r11, all
    // declared clobbered, and every XMM register is declared clobbered.
    unsafe {
        asm!(
            "mov {t}, {p}",
            "movq xmm0, {t}", "inc {t}", "movq xmm1, {t}", "inc {t}", "movq xmm2, {t}", "inc {t}",
            "movq xmm3, {t}", "inc {t}", "movq xmm4, {t}", "inc {t}", "movq xmm5, {t}", "inc {t}",
            "movq xmm6, {t}", "inc {t}", "movq xmm7, {t}", "inc {t}", "movq xmm8, {t}", "inc {t}",
            "movq xmm9, {t}", "inc {t}", "movq xmm10, {t}", "inc {t}", "movq xmm11, {t}", "inc {t}",
            "movq xmm12, {t}", "inc {t}", "movq xmm13, {t}", "inc {t}", "movq xmm14, {t}", "inc {t}",
            "movq xmm15, {t}",
            "2:",
            "test {n}, 4095",
            "jnz 3f",
            "mov eax, 4",
            "syscall",
            "3:",
            "dec {n}",
            "jnz 2b",
            "xor {d}, {d}",
            "mov {t}, {p}",
            "movq {u}, xmm0", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm1", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm2", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm3", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm4", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm5", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm6", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm7", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm8", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm9", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm10", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm11", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm12", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm13", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm14", "xor {u}, {t}", "or {d}, {u}", "inc {t}",
            "movq {u}, xmm15", "xor {u}, {t}", "or {d}, {u}",
            p = in(reg) pattern,
            n = inout(reg) iters.max(1) => _,
            t = out(reg) _,
            u = out(reg) _,
            d = out(reg) diff,
            out("rax") _, out("rcx") _, out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack),
        );
    }
    diff
}

fn main() -> i64 {
    let info = match sys::task_info(sys::SELF_ID) {
        Ok(info) => info,
        Err(e) => {
            println!("spinner: task_info failed: {e:?}");
            return 1;
        }
    };
    let name = info.name();
    let pattern = 0x5EED_0000_0000_0000 ^ (info.id << 20) ^ name.len() as u64;
    let start = sys::monotonic_ns();
    let mut rounds = 0u64;
    let mut bad_rounds = 0u64;
    // Run for at least 600 ms of kernel time, and until every faulting program is gone, so the
    // faults all happen while we are running whatever the host's load does to the virtual clock.
    // (A 120 s bound keeps a kernel that never kills them from hanging the test: the harness then
    // reports the missing kills.)
    let faulters = [c"hostile", c"fault-gp", c"fault-ud", c"fault-de", c"panicker", c"echo"];
    let busy = |elapsed: u64| {
        elapsed < 600_000_000 || (elapsed < 120_000_000_000 && faulters.iter().any(|n| sys::find_task(n).is_ok()))
    };
    while busy(sys::monotonic_ns() - start) {
        if spin_with_live_sse(pattern.wrapping_add(rounds << 8), 200_000) != 0 {
            bad_rounds += 1;
        }
        rounds += 1;
        if name.ends_with('b') {
            sys::sleep_ns(2_000_000);
        }
    }
    let ticks = sys::task_info(sys::SELF_ID).map(|i| i.ticks).unwrap_or(0);
    println!("{name}: {rounds} rounds in {} ms, {ticks} ticks on the CPU", (sys::monotonic_ns() - start) / 1_000_000);
    check(
        bad_rounds == 0,
        format_args!(
            "{name}: all 16 XMM registers survived preemption and syscalls ({bad_rounds} bad of {rounds} rounds)"
        ),
    );
    if bad_rounds == 0 {
        0
    } else {
        1
    }
}
