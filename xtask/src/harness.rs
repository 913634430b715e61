//! The QEMU test harness: boots the system once, reads the serial log, and judges it.
//!
//! Design: the kernel and the test programs print plain lines; the harness never relies on timing,
//! only on what was printed and in which order, with one generous timeout for the whole run. Checks:
//! every `CHECK PASS`/`CHECK FAIL` line the programs and the kernel print, plus the harness's own
//! expectations (hello exits 0, each fault program is killed with the right exception while the
//! spinners keep running and exit 0 afterwards, all frames come back, no kernel panic, QEMU exits
//! with the kernel's success status). It prints `N passed, N failed` and fails if anything failed.

use crate::watos::{have_qemu, qemu_command, Artifacts, Options, QEMU_FAILURE, QEMU_SUCCESS};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(180);

pub(crate) struct Verdicts {
    pub passed: usize,
    pub failed: Vec<String>,
}

impl Verdicts {
    pub fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
            println!("ok   {what}");
        } else {
            self.failed.push(what.to_string());
            println!("FAIL {what}");
        }
    }
}

pub fn run(art: &Artifacts, opts: &Options) -> bool {
    println!("== QEMU tests");
    if opts.storage_only {
        return finish(storage_only(opts));
    }
    if !have_qemu() {
        println!("0 passed, 1 failed");
        return false;
    }
    let started = Instant::now();
    let mut child = match qemu_command(art, opts).stdout(Stdio::piped()).stdin(Stdio::null()).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start QEMU: {e}");
            println!("0 passed, 1 failed");
            return false;
        }
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut log: Vec<String> = Vec::new();
    let mut first_process = None;
    let mut kernel_rust = None;
    let mut clock_at_halt = None;
    let mut timed_out = false;
    loop {
        let left = TIMEOUT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok((at, line)) => {
                let line = line.trim_end_matches('\r').to_string();
                println!("  | {line}");
                if kernel_rust.is_none() && line.contains("WATOS booting") {
                    kernel_rust = Some(at - started);
                }
                if first_process.is_none() && line.contains("entering user mode") {
                    first_process = Some(at - started);
                }
                if clock_at_halt.is_none() && line.contains("ns monotonic at halt") {
                    clock_at_halt = Some(at - started);
                }
                log.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().ok().and_then(|s| s.code());
    if let (Some(rust), Some(user)) = (kernel_rust, first_process) {
        println!(
            "boot timing (wall clock from QEMU start): kernel Rust code {:.3} s, first process in ring 3 {:.3} s ({:.3} s in the kernel)",
            rust.as_secs_f64(),
            user.as_secs_f64(),
            (user - rust).as_secs_f64()
        );
    }
    println!("QEMU run took {:.2} s", started.elapsed().as_secs_f64());

    let mut v = Verdicts { passed: 0, failed: Vec::new() };
    judge(&log, &mut v);
    let host_secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let guest = wall_clock_secs(&log);
    v.check(
        guest.is_some_and(|g| g.abs_diff(host_secs) < 86_400),
        &format!("hello's wall clock ({guest:?} s) is within a day of the host's ({host_secs} s)"),
    );
    v.check(!timed_out, &format!("QEMU finished within {} s", TIMEOUT.as_secs()));
    v.check(
        status == Some(QEMU_SUCCESS),
        &format!("QEMU exit status {status:?} is the kernel's success ({QEMU_SUCCESS})"),
    );
    check_clock(&log, first_process, clock_at_halt, &mut v);
    kernel_fault_selftest(art, opts, &mut v);
    crate::storage::run_tests(opts, &mut v);
    finish(v)
}

/// The guest's monotonic clock against the host's, between the first process entering user mode and
/// the halt (both lines print the guest's time; the host time is when each line arrived). The bound
/// is loose because serial output can lag under host load; the old tick-counting clock ran at
/// 0.3-0.5 of real time on a loaded host, so it still catches a clock that loses ticks.
fn check_clock(log: &[String], first: Option<Duration>, halt: Option<Duration>, v: &mut Verdicts) {
    let guest_ns = |key: &str, unit: &str| -> Option<u64> {
        let line = log.iter().find(|l| l.contains(key))?;
        let end = line.find(unit)?;
        let start = line[..end].trim_end().rfind(|c: char| !c.is_ascii_digit())? + 1;
        line[start..end].trim().parse().ok()
    };
    let first_ns = guest_ns("entering user mode", " us monotonic").map(|us| us * 1000);
    let halt_ns = guest_ns("ns monotonic at halt", " ns monotonic at halt");
    let (Some(first), Some(halt), Some(g0), Some(g1)) = (first, halt, first_ns, halt_ns) else {
        v.check(false, "the kernel printed its monotonic time at the first process and at halt");
        return;
    };
    let host = (halt.saturating_sub(first)).as_secs_f64();
    let guest = g1.saturating_sub(g0) as f64 / 1e9;
    let ratio = guest / host.max(1e-9);
    println!("guest clock vs host between first process and halt: {guest:.3} s / {host:.3} s = {ratio:.3}");
    if host < 1.0 {
        println!("(under a second of host time: the ratio is only logged)");
        return;
    }
    v.check(
        (1.0 / 1.5..=1.5).contains(&ratio),
        &format!("the guest's monotonic clock kept real time ({ratio:.3} x the host's, within 1.5x)"),
    );
}

fn storage_only(opts: &Options) -> Verdicts {
    let mut v = Verdicts { passed: 0, failed: Vec::new() };
    crate::storage::run_tests(opts, &mut v);
    v
}

fn finish(v: Verdicts) -> bool {
    for f in &v.failed {
        println!("failed: {f}");
    }
    println!("{} passed, {} failed", v.passed, v.failed.len());
    v.failed.is_empty()
}

/// Boots a second time with `selftest=kernel-fault`: the kernel touches an unmapped address in ring 0
/// and must print a full report and panic (failure status), not triple-fault silently.
fn kernel_fault_selftest(art: &Artifacts, opts: &Options, v: &mut Verdicts) {
    println!("== kernel-fault self-test (second boot, expected to panic)");
    let mut cmd = qemu_command(art, opts);
    cmd.args(["-append", "selftest=kernel-fault"]).stdin(Stdio::null()).stdout(Stdio::piped());
    let out = match cmd.spawn() {
        Ok(child) => wait_with_timeout(child, Duration::from_secs(60)),
        Err(e) => {
            eprintln!("cannot start QEMU: {e}");
            None
        }
    };
    let (log, status) = out.unwrap_or_default();
    for line in log.lines() {
        println!("  | {}", line.trim_end_matches('\r'));
    }
    let report = log.lines().find(|l| l.contains("KERNEL FAULT #PF page fault"));
    v.check(
        report.is_some_and(|l| {
            l.contains("cr2=0xdead0000000") && l.contains("rip=0x") && l.contains("while serving no task")
        }),
        "a kernel-mode page fault is reported with vector, error, RIP, CR2 and the task",
    );
    v.check(
        log.contains("KERNEL PANIC") && status == Some(QEMU_FAILURE),
        "the kernel then panics and QEMU exits with the failure status",
    );
}

/// Collects a child's stdout and exit code, killing it after `limit`.
pub(crate) fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Option<(String, Option<i32>)> {
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                break None;
            }
        }
    };
    Some((reader.join().unwrap_or_default(), status))
}

pub(crate) fn position(log: &[String], pred: impl Fn(&str) -> bool) -> Option<usize> {
    log.iter().position(|l| pred(l))
}

/// The seconds since 1970 hello read from the wall clock (`hello: wall clock ... (N s since 1970)`).
fn wall_clock_secs(log: &[String]) -> Option<u64> {
    let line = log.iter().find(|l| l.contains("hello: wall clock "))?;
    line.rsplit_once('(')?.1.split_once(" s since 1970")?.0.parse().ok()
}

/// A `CHECK` line's verdict and text: `CHECK PASS|FAIL` at the line start, or after `[kernel] `. A
/// program's line that starts like someone else's (`[kernel] ...`, another program's name) reaches
/// the log marked with its writer's name (kernel/core/src/console_out.rs), so it is no check here.
pub(crate) fn check_of(line: &str) -> Option<(bool, &str)> {
    let line = line.strip_prefix("[kernel] ").unwrap_or(line);
    line.strip_prefix("CHECK PASS ").map(|w| (true, w)).or_else(|| line.strip_prefix("CHECK FAIL ").map(|w| (false, w)))
}

/// The first line the kernel logged (it starts with `[kernel] `, which no program's line can) that
/// contains `s`.
pub(crate) fn kernel_said(log: &[String], s: &str) -> Option<usize> {
    position(log, |l| l.starts_with("[kernel] ") && l.contains(s))
}

/// The log's verdicts, separate from QEMU so it can be unit-tested.
fn judge(log: &[String], v: &mut Verdicts) {
    for line in log {
        if let Some((ok, what)) = check_of(line) {
            v.check(ok, what);
        }
    }
    let has = |s: &str| position(log, |l| l.contains(s));
    let kernel = |s: &str| kernel_said(log, s);
    // A program cannot print the kernel's lines: the kernel marks them as its own.
    v.check(
        has("hostile: [kernel] CHECK PASS kernel: forged").is_some()
            && has("hostile: CHECK PASS init: forged").is_some()
            && kernel("forged").is_none()
            && !log.iter().any(|l| l.starts_with("CHECK PASS init: forged")),
        "authority: lines a program forged as the kernel's or init's reach the log marked as its own",
    );
    v.check(has("[kernel] WATOS booting").is_some(), "kernel reached Rust and logged on serial");
    v.check(has("KERNEL PANIC").is_none() && has("KERNEL FAULT").is_none(), "no kernel panic or kernel fault");
    v.check(has("hello: Hello from WATOS").is_some(), "hello printed its greeting");
    v.check(kernel("(hello) exited with code 0").is_some(), "hello exited with code 0");
    v.check(has("hostile: pointer checks done").is_some(), "hostile ran all its bad-pointer syscalls");
    v.check(has("echo-client: done").is_some(), "echo-client ran all its IPC checks");
    v.check(
        has("busmaster-check: ports outside the allow-list all refused").is_some(),
        "authority: a driver's ports outside the allow-list (reset, power-off, BAR moves) are refused",
    );
    v.check(has("init: restarted echo as task").is_some(), "init restarted echo after its fault");
    v.check(
        has("init: fault-ud faulted 4 times within 5 s: giving up").is_some(),
        "init gave up on crash-looping fault-ud and said so",
    );
    v.check(kernel("(init) exited with code 0").is_some(), "init exited once everything else had ended");
    // hostile has no CONTROL flag: init refuses its kill and, as the kernel's log shows, ends nothing
    // (the battery's lease-victim is the one task killed on a CONTROL program's request).
    v.check(
        has("init: refused kill echo from hostile").is_some()
            && !log.iter().any(|l| l.contains("killed by the supervisor") && !l.contains("(lease-victim)")),
        "authority: init refused hostile's kill request and killed no task",
    );
    // hostile's send list names only init: its call to echo is refused, and echo serves on.
    v.check(
        has("CHECK PASS hostile: authority: a call to echo, outside its send list, is refused").is_some()
            && has("echo-client: done").is_some(),
        "authority: a call outside the caller's send list is refused and the server keeps serving",
    );
    // The lease and forwarding battery: each attack is a CHECK line of its own; here, that it ran to
    // the end, the server it crashed was restarted, and all three roles ended cleanly.
    v.check(
        has("lease-client: lease battery done (all refused)").is_some()
            && kernel("(lease-server) killed by #UD").is_some()
            && kernel("(lease-victim) killed by the supervisor").is_some()
            && has("init: restarted lease-server").is_some()
            && ["lease-client", "lease-server", "lease-thief"]
                .iter()
                .all(|t| kernel(&format!("({t}) exited with code 0")).is_some()),
        "authority: the lease and forwarding battery was refused throughout and lease-server served on after its restart",
    );
    v.check(
        has("(rtc-driver) exited with code 0").is_some(),
        "the RTC driver took its interrupts and exited with code 0",
    );
    v.check(
        has("(proto-client) exited with code 0").is_some() && has("(proto-echo) exited with code 0").is_some(),
        "the protocol-level client and server over kernel IPC both exited with code 0",
    );
    v.check(has("(echo-client) exited with code 0").is_some(), "echo-client exited with code 0");
    v.check(
        ["fwd-client", "fwd-middle", "fwd-last"].iter().all(|t| has(&format!("({t}) exited with code 0")).is_some()),
        "the forwarded-lease client, middle and last server all exited with code 0",
    );
    v.check(
        has("(busmaster) killed by #UD").is_some() && has("(busmaster-check) exited with code 0").is_some(),
        "a driver died with bus mastering on and a second driver saw the kernel had switched it off",
    );
    let kills = [("echo", "#UD"), ("hostile", "#PF"), ("fault-gp", "#GP"), ("fault-ud", "#UD"), ("fault-de", "#DE")];
    let mut last_kill = None;
    for (name, exc) in kills {
        let at = position(log, |l| l.contains(&format!("({name}) killed by {exc}")));
        v.check(at.is_some(), &format!("{name} was killed by {exc} with a report"));
        last_kill = last_kill.max(at);
    }
    // Ways into the kernel that are not system calls, and a system call with a hostile machine
    // state: each kills only its task, by an exception taken in user mode.
    let traps: [(&str, &[&str]); 6] = [
        ("trap-tf", &["#DB"]),
        ("trap-ac", &["#DB"]),
        ("trap-int80", &["#GP"]),
        ("trap-int3", &["#GP", "#BP"]),
        ("trap-icebp", &["#DB", "#UD"]),
        ("trap-ksp", &["#PF"]),
    ];
    for (name, excs) in traps {
        v.check(
            excs.iter().any(|e| kernel(&format!("({name}) killed by {e}")).is_some()),
            &format!("authority: {name} was killed by {} and nothing else", excs.join(" or ")),
        );
    }
    v.check(
        has("trap-ac: a system call with AC, DF and NT set returned").is_some(),
        "authority: a system call made with AC, DF and NT set is answered",
    );
    let panic_report = has("panicker: panicked: ");
    v.check(
        panic_report.is_some_and(|at| log[at].contains("deliberate panic number 8")),
        "libwatos's panic handler reported the panic message",
    );
    let panic_exit = position(log, |l| l.contains("(panicker) exited with code 101"));
    v.check(panic_exit.is_some(), "a panicking program exits with code 101");
    last_kill = last_kill.max(panic_exit);
    for spinner in ["spinner-a", "spinner-b"] {
        let exit = has(&format!("({spinner}) exited with code 0"));
        v.check(exit.is_some(), &format!("{spinner} kept running and exited with code 0"));
        v.check(
            exit.is_some() && last_kill.is_some() && exit > last_kill,
            &format!("{spinner} finished after every faulting program was killed"),
        );
    }
    v.check(kernel("all tasks finished").is_some(), "kernel saw every task finish");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    const GOOD: &str = "[kernel] WATOS booting
hello: Hello from WATOS
hello: wall clock 2026-11-25 15:30:07 UTC (1795620607 s since 1970)
[kernel] task 1 (hello) exited with code 0
echo-client: done (all as expected)
init: restarted echo as task 0x1000a
init: fault-ud faulted 4 times within 5 s: giving up on it
[kernel] task 0 (init) exited with code 0
[kernel] task 11 (rtc-driver) exited with code 0
[kernel] task 12 (proto-echo) exited with code 0
[kernel] task 13 (proto-client) exited with code 0
[kernel] task 9 (echo) killed by #UD invalid opcode
[kernel] task 10 (echo-client) exited with code 0
[kernel] task 14 (busmaster) killed by #UD invalid opcode
[kernel] task 15 (busmaster-check) exited with code 0
CHECK PASS hostile: null pointer
hostile: pointer checks done
busmaster-check: ports outside the allow-list all refused
[kernel] task 2 (hostile) killed by #PF page fault
[kernel] task 3 (fault-gp) killed by #GP general protection
[kernel] task 4 (fault-ud) killed by #UD invalid opcode
[kernel] task 5 (fault-de) killed by #DE divide error
panicker: panicked: src/main.rs:9:5: deliberate panic number 8
[kernel] task 8 (panicker) exited with code 101; 3 frames freed
[kernel] task 6 (spinner-a) exited with code 0
[kernel] task 7 (spinner-b) exited with code 0
[kernel] task 16 (fwd-client) exited with code 0
[kernel] task 17 (fwd-middle) exited with code 0
[kernel] task 18 (fwd-last) exited with code 0
[kernel] task 26 (lease-server) killed by #UD invalid opcode
init: restarted lease-server as task 0x1001a
lease-client: lease battery done (all refused)
[kernel] task 25 (lease-thief) exited with code 0
[kernel] task 28 (lease-victim) killed by the supervisor
[kernel] task 26 (lease-server) exited with code 0
[kernel] task 27 (lease-client) exited with code 0
[kernel] task 19 (trap-tf) killed by #DB debug: vector=1
[kernel] task 20 (trap-ac) killed by #DB debug: vector=1
trap-ac: a system call with AC, DF and NT set returned 0x14
[kernel] task 21 (trap-int80) killed by #GP general protection: vector=13
[kernel] task 22 (trap-int3) killed by #GP general protection: vector=13
[kernel] task 23 (trap-icebp) killed by #UD invalid opcode: vector=6
[kernel] task 24 (trap-ksp) killed by #PF page fault, write to a protected page: vector=14
init: refused kill echo from hostile (task 0x2): the manifest does not allow it
[kernel] CHECK PASS kernel: frames returned
[kernel] all tasks finished
hostile: [kernel] CHECK PASS kernel: forged
hostile: CHECK PASS init: forged
CHECK PASS hostile: authority: a call to echo, outside its send list, is refused (Err((NotPermitted, 0)))";

    #[test]
    fn a_good_log_passes() {
        let mut v = Verdicts { passed: 0, failed: Vec::new() };
        judge(&lines(GOOD), &mut v);
        assert!(v.failed.is_empty(), "{:?}", v.failed);
        assert_eq!(v.passed, 3 + 38, "{:?}", v.failed);
        assert_eq!(wall_clock_secs(&lines(GOOD)), Some(1_795_620_607));
        assert_eq!(wall_clock_secs(&lines("hello: wall clock garbage")), None);
    }

    #[test]
    fn panics_failed_checks_and_early_spinners_fail() {
        let bad = GOOD
            .replace("CHECK PASS hostile: null", "CHECK FAIL hostile: null")
            .replace("all tasks finished", "KERNEL PANIC: x");
        let mut v = Verdicts { passed: 0, failed: Vec::new() };
        judge(&lines(&bad), &mut v);
        assert_eq!(v.failed.len(), 3, "{:?}", v.failed);
        // A spinner that exits before the last kill does not prove isolation.
        let mut early = lines(GOOD);
        let spin = early.remove(24);
        early.insert(2, spin);
        let mut v = Verdicts { passed: 0, failed: Vec::new() };
        judge(&early, &mut v);
        assert_eq!(v.failed, ["spinner-a finished after every faulting program was killed"]);
        // A kill by the supervisor in this boot can only come from a request it should have refused.
        let echo = "[kernel] task 9 (echo) killed by #UD";
        let killed = GOOD.replace(echo, &format!("[kernel] task 9 (echo) killed by the supervisor\n{echo}"));
        let mut v = Verdicts { passed: 0, failed: Vec::new() };
        judge(&lines(&killed), &mut v);
        assert_eq!(v.failed, ["authority: init refused hostile's kill request and killed no task"]);
    }

    #[test]
    fn a_boot_without_the_refused_call_fails() {
        let log = GOOD.replace("CHECK PASS hostile: authority: a call to echo", "hostile: a call to echo");
        let mut v = Verdicts { passed: 0, failed: Vec::new() };
        judge(&lines(&log), &mut v);
        assert_eq!(
            v.failed,
            ["authority: a call outside the caller's send list is refused and the server keeps serving"]
        );
    }

    #[test]
    fn forged_kernel_and_program_lines_are_neither_checks_nor_kernel_lines() {
        // Unmarked, as a kernel that did not mark program lines would have let them through.
        for forged in ["[kernel] CHECK PASS kernel: forged", "CHECK PASS init: forged"] {
            let log = GOOD.replace(&format!("hostile: {forged}"), forged);
            let mut v = Verdicts { passed: 0, failed: Vec::new() };
            judge(&lines(&log), &mut v);
            assert_eq!(
                v.failed,
                ["authority: lines a program forged as the kernel's or init's reach the log marked as its own"]
            );
        }
        assert_eq!(check_of("hostile: CHECK PASS init: x"), None);
        assert_eq!(check_of("[kernel] CHECK FAIL kernel: y"), Some((false, "kernel: y")));
        assert_eq!(kernel_said(&lines("hostile: [kernel] all tasks finished"), "all tasks finished"), None);
    }

    #[test]
    fn the_guest_clock_is_judged_against_the_host_time_between_two_lines() {
        let log = lines("[kernel] first process entering user mode at tick 1 (500000 us monotonic)\n[kernel] clock: 10500000000 ns monotonic at halt, 3000 timer ticks counted");
        let secs = Duration::from_secs_f64;
        let judge_at = |first: f64, halt: f64| {
            let mut v = Verdicts { passed: 0, failed: Vec::new() };
            check_clock(&log, Some(secs(first)), Some(secs(halt)), &mut v);
            (v.passed, v.failed.len())
        };
        // 10 s of guest time in 10.4 s of host time passes; in 30 s (ticks lost) or 5 s it fails.
        assert_eq!(judge_at(1.0, 11.4), (1, 0));
        assert_eq!(judge_at(1.0, 31.0), (0, 1));
        assert_eq!(judge_at(1.0, 6.0), (0, 1));
        // Under a second of host time is only logged; a missing line is a failure.
        assert_eq!(judge_at(1.0, 1.5), (0, 0));
        let mut v = Verdicts { passed: 0, failed: Vec::new() };
        check_clock(&log[..1], Some(secs(1.0)), None, &mut v);
        assert_eq!(v.failed.len(), 1);
    }
}
