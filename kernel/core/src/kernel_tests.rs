//! Host tests of the kernel state machine: tasks spawned from ELF images into simulated memory and
//! driven trap by trap (timer ticks, syscalls with chosen registers, exceptions) as the CPU would.

use crate::abi::{Sys, SysError, TaskId, TaskInfo, ANON_BASE, KERNEL_HALF, MAP_WRITE, PAGE, SELF_ID};
use crate::elf::build_test_elf;
use crate::kernel::{Kernel, Platform, STACK_TOP};
use crate::paging::FrameAlloc;
use crate::sched::SchedState;
use crate::sim::{SimFrames, SimMem};
use crate::trap::{Event, Exit, FxArea, FxSwitch, TrapFrame, SYSCALL_VECTOR, USER_CS};
use crate::usermem::{copy_in, copy_out};
use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

#[derive(Default)]
pub(crate) struct TestPlatform {
    pub log: Vec<String>,
    pub console: Vec<u8>,
    /// Bytes "typed" on the console, taken by `console_read`.
    pub console_input: std::collections::VecDeque<u8>,
    pub root: u64,
    /// The FPU/SSE register model, and every save and load it made.
    pub live_fx: crate::trap::LiveFx,
    pub fx_moves: Vec<FxSwitch>,
    /// Port writes, and the value every port read returns.
    pub port_writes: Vec<(u16, u8, u32)>,
    pub port_value: u32,
    /// Line -> masked?
    pub masked: std::collections::BTreeMap<u8, bool>,
    /// A PCI configuration space behind 0xCF8/0xCFC, if the test wants one.
    pub pci: Option<crate::sim::SimPci>,
    /// The platform clock (`clock_ns`), if the test sets one; else time is counted ticks.
    pub clock: Option<u64>,
}

impl Platform for TestPlatform {
    fn log(&mut self, args: core::fmt::Arguments) {
        self.log.push(std::format!("{args}"));
    }
    fn console(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn set_root(&mut self, root: u64) {
        self.root = root;
    }
    fn load_fx(&mut self, fx: *mut FxArea) {
        self.fx_moves.extend(self.live_fx.switch_to(fx));
    }
    fn release_fx(&mut self, fx: *mut FxArea) {
        self.live_fx.release(fx);
    }
    fn tick_ns(&self) -> u64 {
        1_000_000
    }
    fn clock_ns(&self) -> Option<u64> {
        self.clock
    }
    fn port_in(&mut self, port: u16, width: u8) -> u32 {
        match &mut self.pci {
            Some(pci) if crate::sim::SimPci::handles(port) => pci.port_in(port, width),
            _ => self.port_value,
        }
    }
    fn port_out(&mut self, port: u16, width: u8, value: u32) {
        self.port_writes.push((port, width, value));
        if let Some(pci) = self.pci.as_mut().filter(|_| crate::sim::SimPci::handles(port)) {
            pci.port_out(port, width, value);
        }
    }
    fn irq_mask(&mut self, line: u8, masked: bool) {
        self.masked.insert(line, masked);
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.console_input.len());
        for (b, x) in buf.iter_mut().zip(self.console_input.drain(..n)) {
            *b = x;
        }
        n
    }
}

pub(crate) type K = Kernel<TestPlatform, SimMem, SimFrames>;

pub(crate) const TEXT: u64 = 0x40_0000;
pub(crate) const DATA: u64 = 0x40_2000;

pub(crate) fn image() -> Vec<u8> {
    build_test_elf(TEXT, &[(TEXT, 5, &[0x90; 32], 32), (DATA, 6, b"hello", PAGE)])
}

pub(crate) fn boot(names: &[&str]) -> K {
    let (mem, frames, root) = SimMem::with_kernel();
    let mut k = Kernel::new(TestPlatform { root, ..Default::default() }, mem, frames, root, FxArea([0; 512]));
    for name in names {
        k.spawn(name, &image()).unwrap();
    }
    k
}

/// The first timer tick, taken in the idle loop (ring 0).
pub(crate) fn first_tick(k: &mut K) -> TrapFrame {
    let mut f = TrapFrame { cs: 0x08, vector: 32, ..Default::default() };
    assert_eq!(k.trap(&mut f, Event::Timer), Exit::Iret);
    f
}

fn syscall(k: &mut K, f: &mut TrapFrame, nr: Sys, args: [u64; 3]) -> Exit {
    syscall6(k, f, nr, [args[0], args[1], args[2], 0, 0, 0])
}

/// Makes the current task issue syscall `nr` with six arguments.
pub(crate) fn syscall6(k: &mut K, f: &mut TrapFrame, nr: Sys, a: [u64; 6]) -> Exit {
    f.rax = nr as u64;
    (f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9) = (a[0], a[1], a[2], a[3], a[4], a[5]);
    f.vector = SYSCALL_VECTOR;
    k.trap(f, Event::Syscall)
}

fn tick(k: &mut K, f: &mut TrapFrame) -> Exit {
    f.vector = 32;
    k.trap(f, Event::Timer)
}

pub(crate) fn space(k: &K, i: usize) -> crate::paging::AddressSpace {
    k.task(i).unwrap().space
}

#[test]
fn first_tick_enters_ring_three_at_the_entry_point() {
    let mut k = boot(&["a"]);
    let f = first_tick(&mut k);
    assert_eq!((f.rip, f.rsp, f.cs), (TEXT, STACK_TOP, USER_CS));
    assert_eq!(f.rflags & 0x200, 0x200, "interrupts on in user mode");
    assert_eq!(k.platform.root, space(&k, 0).root);
    assert_eq!(k.platform.live_fx.owner(), Some(&*k.task(0).unwrap().fx as *const FxArea as *mut FxArea));
    assert!(k.platform.log.iter().any(|l| l.contains("first process entering user mode")));
}

#[test]
fn console_write_copies_from_user_memory_and_returns_with_sysret() {
    let mut k = boot(&["a"]);
    let mut f = first_tick(&mut k);
    assert_eq!(syscall(&mut k, &mut f, Sys::ConsoleWrite, [DATA, 5, 0]), Exit::Sysret);
    assert_eq!(f.rax, 5);
    assert_eq!(k.platform.console, b"hello");
}

#[test]
fn console_read_takes_typed_bytes_into_user_memory_within_its_bound() {
    let mut k = boot(&["a"]);
    k.console_in.owner = Some(k.task(0).unwrap().id);
    let mut f = first_tick(&mut k);
    k.platform.console_input.extend(b"ls /\r");
    // Nothing is taken beyond the capacity; the rest waits for the next call.
    assert_eq!(syscall(&mut k, &mut f, Sys::ConsoleRead, [DATA, 3, 0]), Exit::Sysret);
    assert_eq!(f.rax, 3);
    assert_eq!(copy_in(&space(&k, 0), &k.mem, DATA, 5).unwrap(), b"ls lo");
    assert_eq!(syscall(&mut k, &mut f, Sys::ConsoleRead, [DATA, 100, 0]), Exit::Sysret);
    assert_eq!(f.rax, 2);
    assert_eq!(copy_in(&space(&k, 0), &k.mem, DATA, 2).unwrap(), b"/\r");
    // Nothing typed: 0, without blocking.
    assert_eq!(syscall(&mut k, &mut f, Sys::ConsoleRead, [DATA, 100, 0]), Exit::Sysret);
    assert_eq!(f.rax, 0);
}

#[test]
fn console_read_rejects_bad_buffers_without_losing_input() {
    let mut k = boot(&["a"]);
    k.console_in.owner = Some(k.task(0).unwrap().id);
    let mut f = first_tick(&mut k);
    k.platform.console_input.extend(b"x");
    let cases = [
        ([0, 1, 0], SysError::NullPointer),
        ([KERNEL_HALF, 1, 0], SysError::KernelAddress),
        ([1 << 47, 1, 0], SysError::NonCanonical),
        ([DATA, u64::MAX, 0], SysError::LengthOverflow),
        ([0x2000_0000_0000, 1, 0], SysError::Unmapped),
        // The text segment is mapped but read-only.
        ([TEXT, 1, 0], SysError::NotWritable),
        // Longer than the bound, even though the page is writable.
        ([DATA, crate::abi::MAX_CONSOLE_READ as u64 + 1, 0], SysError::InvalidArgument),
    ];
    for (args, want) in cases {
        assert_eq!(syscall(&mut k, &mut f, Sys::ConsoleRead, args), Exit::Sysret);
        assert_eq!(SysError::decode(f.rax), Err(want), "{args:x?}");
        assert_eq!(k.current, Some(0));
    }
    assert_eq!(k.platform.console_input.len(), 1, "a refused call takes no input");
    assert_eq!(syscall(&mut k, &mut f, Sys::ConsoleRead, [DATA, 1, 0]), Exit::Sysret);
    assert_eq!(f.rax, 1);
}

#[test]
fn bad_pointers_are_errors_and_the_caller_keeps_running() {
    let mut k = boot(&["a"]);
    let mut f = first_tick(&mut k);
    let cases = [
        (Sys::ConsoleWrite, [0, 1, 0], SysError::NullPointer),
        (Sys::ConsoleWrite, [KERNEL_HALF, 1, 0], SysError::KernelAddress),
        (Sys::ConsoleWrite, [1 << 47, 1, 0], SysError::NonCanonical),
        (Sys::ConsoleWrite, [DATA, u64::MAX, 0], SysError::LengthOverflow),
        (Sys::ConsoleWrite, [0x2000_0000_0000, 1, 0], SysError::Unmapped),
        (Sys::TaskInfo, [SELF_ID, TEXT, TaskInfo::SIZE as u64], SysError::NotWritable),
        (Sys::FindTask, [0x2000_0000_0000, 0, 0], SysError::Unmapped),
    ];
    for (nr, args, want) in cases {
        assert_eq!(syscall(&mut k, &mut f, nr, args), Exit::Sysret);
        assert_eq!(SysError::decode(f.rax), Err(want), "{nr:?} {args:x?}");
        assert_eq!(k.current, Some(0));
    }
    f.rax = 999;
    f.vector = SYSCALL_VECTOR;
    k.trap(&mut f, Event::Syscall);
    assert_eq!(SysError::decode(f.rax), Err(SysError::BadSyscall));
    assert!(k.platform.console.is_empty());
}

#[test]
fn timer_preempts_round_robin_and_registers_survive() {
    let mut k = boot(&["a", "b"]);
    let mut f = first_tick(&mut k);
    assert_eq!(k.current, Some(0));
    f.rbx = 0xAAAA;
    for _ in 0..crate::kernel::QUANTUM - 1 {
        tick(&mut k, &mut f);
        assert_eq!(k.current, Some(0));
    }
    tick(&mut k, &mut f);
    assert_eq!(k.current, Some(1), "slice over: next task");
    assert_eq!(f.rbx, 0, "b's own registers");
    assert_eq!(k.platform.root, space(&k, 1).root);
    for _ in 0..crate::kernel::QUANTUM {
        tick(&mut k, &mut f);
    }
    assert_eq!(k.current, Some(0));
    assert_eq!(f.rbx, 0xAAAA, "a's registers restored");
    assert_eq!(tick(&mut k, &mut f), Exit::Iret, "a was preempted, so it resumes with iret");
}

#[test]
fn yield_hands_over_and_sleep_idles_until_the_deadline() {
    let mut k = boot(&["a", "b"]);
    let mut f = first_tick(&mut k);
    syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    assert_eq!(k.current, Some(1));
    // b sleeps 3 ms, then a sleeps 5 ms: nothing runnable.
    syscall(&mut k, &mut f, Sys::Sleep, [3_000_000, 0, 0]);
    assert_eq!(k.current, Some(0));
    assert_eq!(syscall(&mut k, &mut f, Sys::Sleep, [5_000_000, 0, 0]), Exit::Idle);
    let mut idle = TrapFrame { cs: 0x08, ..Default::default() };
    let mut woke_at = None;
    for t in 1..=10 {
        if tick(&mut k, &mut idle) != Exit::Idle {
            woke_at.get_or_insert((t, k.current));
        }
    }
    assert_eq!(woke_at, Some((3, Some(1))), "b wakes first, after 3 ticks");
    assert!(matches!(k.sched[0], SchedState::Runnable | SchedState::Sleeping { .. }));
}

#[test]
fn a_user_exception_kills_only_that_task_and_frees_its_memory() {
    let mut k = boot(&["victim", "bystander"]);
    let mut f = first_tick(&mut k);
    let free_before = k.frames.free_count();
    f.vector = 14;
    f.rip = TEXT + 3;
    let exit = k.trap(&mut f, Event::Exception { vector: 14, error: 7, cr2: KERNEL_HALF });
    assert_eq!(exit, Exit::Iret);
    assert_eq!(k.current, Some(1), "the bystander runs next");
    assert!(k.task(0).is_none());
    assert!(k.frames.free_count() > free_before);
    let report = k.platform.log.iter().find(|l| l.contains("killed by")).unwrap();
    assert!(report.contains("task 0 (victim) killed by #PF page fault, write to a protected page"), "{report}");
    assert!(report.contains("rip=0x400003") && report.contains("cr2=0xffff800000000000"), "{report}");
    assert_eq!(k.killed, 1);
}

#[test]
fn last_exit_halts_with_every_frame_returned() {
    let mut k = boot(&["a", "b"]);
    let mut f = first_tick(&mut k);
    let mut f2 = f;
    assert_eq!(syscall(&mut k, &mut f, Sys::MapAnon, [3 * PAGE, MAP_WRITE, 0]), Exit::Sysret);
    syscall(&mut k, &mut f, Sys::Exit, [0, 0, 0]);
    assert_eq!(k.current, Some(1));
    assert_eq!(syscall(&mut k, &mut f2, Sys::Exit, [7, 0, 0]), Exit::Halt { ok: true });
    assert!(k.platform.log.iter().any(|l| l.contains("exited with code 7")));
    assert!(k.platform.log.iter().any(|l| l.starts_with("CHECK PASS kernel: every frame returned")));
    assert_eq!(k.platform.root, SimMem::with_kernel().2, "CR3 is back on the kernel tables, never a freed one");
}

/// The FPU/SSE area of task `i`, as the platform sees it.
fn fx_of(k: &K, i: usize) -> *mut FxArea {
    &*k.task(i).unwrap().fx as *const FxArea as *mut FxArea
}

#[test]
fn fpu_state_is_swapped_only_between_different_tasks_and_never_saved_after_death() {
    let mut k = boot(&["a", "b"]);
    let mut f = first_tick(&mut k);
    let (a, b) = (fx_of(&k, 0), fx_of(&k, 1));
    assert_eq!(k.platform.fx_moves, [FxSwitch { save: None, load: a }]);
    // Syscalls and ticks that come back to the caller move nothing.
    for _ in 0..3 {
        syscall(&mut k, &mut f, Sys::TaskId, [0; 3]);
    }
    assert_eq!(k.platform.fx_moves.len(), 1);
    syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    assert_eq!(k.platform.fx_moves[1], FxSwitch { save: Some(a), load: b });
    // b sleeps, a runs, a sleeps: idle keeps a's state in the registers, and a resumes without a move.
    syscall(&mut k, &mut f, Sys::Sleep, [50_000_000, 0, 0]);
    assert_eq!(k.platform.fx_moves[2], FxSwitch { save: Some(b), load: a });
    assert_eq!(syscall(&mut k, &mut f, Sys::Sleep, [2_000_000, 0, 0]), Exit::Idle);
    let mut idle = TrapFrame { cs: 0x08, ..Default::default() };
    while tick(&mut k, &mut idle) == Exit::Idle {}
    assert_eq!((k.current, k.platform.fx_moves.len()), (Some(0), 3));
    // a dies holding the registers: b's state is loaded and nothing is saved into a's freed area.
    syscall(&mut k, &mut idle, Sys::Exit, [0; 3]);
    while k.current != Some(1) {
        tick(&mut k, &mut idle);
    }
    assert_eq!(k.platform.fx_moves[3], FxSwitch { save: None, load: b });
}

#[test]
fn map_anon_leaves_guard_pages_honours_flags_and_limits() {
    let mut k = boot(&["a"]);
    let mut f = first_tick(&mut k);
    syscall(&mut k, &mut f, Sys::MapAnon, [100, MAP_WRITE, 0]);
    assert_eq!(f.rax, ANON_BASE);
    syscall(&mut k, &mut f, Sys::MapAnon, [PAGE, 0, 0]);
    let ro = f.rax;
    assert_eq!(ro, ANON_BASE + 2 * PAGE, "one guard page in between");
    assert_eq!(space(&k, 0).translate(&k.mem, ANON_BASE + PAGE), None);
    assert_eq!(copy_in(&space(&k, 0), &k.mem, ro, 8).unwrap(), [0; 8], "zeroed");
    syscall(&mut k, &mut f, Sys::TaskInfo, [SELF_ID, ro, TaskInfo::SIZE as u64]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotWritable));
    syscall(&mut k, &mut f, Sys::MapAnon, [1 << 30, MAP_WRITE, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::OutOfMemory));
    syscall(&mut k, &mut f, Sys::MapAnon, [0, MAP_WRITE, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::InvalidArgument));
}

#[test]
fn task_info_find_task_and_generations() {
    let mut k = boot(&["a", "b"]);
    let mut f = first_tick(&mut k);
    copy_out(&space(&k, 0), &mut k.mem, DATA + 100, b"b\0").unwrap();
    syscall(&mut k, &mut f, Sys::FindTask, [DATA + 100, 0, 0]);
    let b = f.rax;
    assert_eq!(TaskId::from_raw(b), Some(TaskId { index: 1, generation: 0 }));
    syscall(&mut k, &mut f, Sys::TaskInfo, [b, DATA + 200, TaskInfo::SIZE as u64]);
    assert_eq!(f.rax, TaskInfo::SIZE as u64);
    let bytes = copy_in(&space(&k, 0), &k.mem, DATA + 200, TaskInfo::SIZE as u64).unwrap();
    assert_eq!(&bytes[..8], &b.to_le_bytes());
    assert_eq!(&bytes[32..34], b"b\0");
    // b exits; a new task takes its slot with the next generation, and b's old id is dead.
    syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    assert_eq!(k.current, Some(1));
    syscall(&mut k, &mut f, Sys::Exit, [0; 3]);
    let c = k.spawn("c", &image()).unwrap();
    assert_eq!(c, TaskId { index: 1, generation: 1 });
    assert_eq!(k.current, Some(0));
    syscall(&mut k, &mut f, Sys::TaskInfo, [b, DATA + 200, TaskInfo::SIZE as u64]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NoSuchTask));
}

#[test]
fn spawn_refuses_bad_images_without_leaking() {
    let mut k = boot(&[]);
    let before = k.frames.free_count();
    assert!(k.spawn("x", b"not an elf").is_err());
    let mut bad = image();
    bad[18] = 3; // not x86-64
    assert!(k.spawn("x", &bad).is_err());
    assert_eq!(k.frames.free_count(), before);
    assert_eq!(k.live_tasks(), 0);
}

/// Task `from` has called task `to` (the call history `notify` allows between them).
pub(crate) fn called(k: &mut K, from: usize, to: usize) {
    let id = k.task(to).unwrap().id;
    k.task_mut(from).unwrap().peers.push(id);
}

/// Task 0 is the supervisor; returns the kernel and its first frame (the supervisor running).
pub(crate) fn supervised(names: &[&str]) -> (K, TrapFrame) {
    let mut k = boot(names);
    k.supervisor = Some(k.task(0).unwrap().id);
    let leaked: &'static [u8] = Box::leak(image().into_boxed_slice());
    k.add_image("worker", leaked, false);
    let f = first_tick(&mut k);
    (k, f)
}

#[test]
fn the_supervisor_hears_of_every_death_with_its_cause() {
    use crate::abi::{DeathInfo, DEATH_EXIT, DEATH_FAULT, NOTIFY_DEATH};
    let (mut k, mut f) = supervised(&["init", "worker", "quitter"]);
    let worker = k.task(1).unwrap().id.to_raw();
    syscall6(&mut k, &mut f, Sys::Receive, [DATA, 16, NOTIFY_DEATH, DATA + 64, 0, 0]);
    assert_eq!(k.current, Some(1));
    k.trap(&mut f, Event::Exception { vector: 13, error: 0, cr2: 0 });
    assert_eq!(k.sched[0], SchedState::Runnable, "the death woke the supervisor");
    assert_eq!(k.current, Some(0));
    syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    assert_eq!(k.current, Some(2));
    syscall(&mut k, &mut f, Sys::Exit, [3, 0, 0]);
    assert_eq!(k.current, Some(0));
    let mut records = Vec::new();
    loop {
        syscall(&mut k, &mut f, Sys::NextDeath, [DATA + 128, DeathInfo::SIZE as u64, 0]);
        if f.rax == 0 {
            break;
        }
        let b = copy_in(&space(&k, 0), &k.mem, DATA + 128, 32).unwrap();
        let w = |n: usize| u64::from_le_bytes(b[n * 8..n * 8 + 8].try_into().unwrap());
        records.push((w(0), w(1), w(2), w(3)));
    }
    assert_eq!(
        records,
        [(worker, DEATH_FAULT, 13, 1), (((k.slots[2].generation as u64 - 1) << 16) | 2, DEATH_EXIT, 3, 0)]
    );
}

#[test]
fn only_the_supervisor_spawns_and_restarts_get_a_new_generation() {
    use crate::abi::DeathInfo;
    let (mut k, mut f) = supervised(&["init", "worker"]);
    copy_out(&space(&k, 0), &mut k.mem, DATA, b"worker\0nobody\0").unwrap();
    syscall(&mut k, &mut f, Sys::Spawn, [DATA + 7, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NoSuchTask));
    syscall(&mut k, &mut f, Sys::Spawn, [DATA, 0, 0]);
    assert_eq!(TaskId::from_raw(f.rax), Some(TaskId { index: 2, generation: 0 }));
    assert_eq!(k.task(2).unwrap().name, "worker");
    syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    assert_eq!(k.current, Some(1));
    copy_out(&space(&k, 1), &mut k.mem, DATA, b"worker\0").unwrap();
    syscall(&mut k, &mut f, Sys::Spawn, [DATA, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotPermitted));
    syscall(&mut k, &mut f, Sys::NextDeath, [DATA + 128, DeathInfo::SIZE as u64, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotPermitted));
    // Task 1 faults; the supervisor restarts it into the same slot with the next generation.
    k.trap(&mut f, Event::Exception { vector: 6, error: 0, cr2: 0 });
    while k.current != Some(0) {
        syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    }
    syscall(&mut k, &mut f, Sys::Spawn, [DATA, 0, 0]);
    assert_eq!(TaskId::from_raw(f.rax), Some(TaskId { index: 1, generation: 1 }));
}

#[test]
fn program_info_lists_the_manifest_with_flags_to_anyone() {
    use crate::abi::{ProgramInfo, PROGRAM_DRIVER, PROGRAM_RESTART};
    let (mut k, mut f) = supervised(&["init", "worker"]);
    let leaked: &'static [u8] = Box::leak(image().into_boxed_slice());
    k.add_program("a-long-service-name-beyond-31-bytes", leaked, PROGRAM_RESTART | PROGRAM_DRIVER);
    // An ordinary task (not the supervisor) may read it.
    syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    let me = k.current.unwrap();
    assert_ne!(Some(k.task(me).unwrap().id), k.supervisor);
    let n = k.images.len() as u64;
    let mut seen = Vec::new();
    for i in 0..n + 2 {
        syscall(&mut k, &mut f, Sys::ProgramInfo, [i, DATA + 128, ProgramInfo::SIZE as u64]);
        if i >= n {
            assert_eq!(f.rax, 0, "past the last program");
            continue;
        }
        assert_eq!(f.rax, 1);
        let b = copy_in(&space(&k, me), &k.mem, DATA + 128, 64).unwrap();
        let flags = u64::from_le_bytes(b[0..8].try_into().unwrap());
        let size = u64::from_le_bytes(b[8..16].try_into().unwrap());
        let end = b[32..].iter().position(|&c| c == 0).unwrap();
        seen.push((String::from_utf8(b[32..32 + end].to_vec()).unwrap(), flags, size));
    }
    let last = seen.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1, last.2),
        ("a-long-service-name-beyond-31-b", PROGRAM_RESTART | PROGRAM_DRIVER, leaked.len() as u64)
    );
    assert!(seen.iter().any(|(name, flags, _)| name == "worker" && *flags == 0));
    assert!(k.images.last().unwrap().driver, "the DRIVER flag still grants device access");
    // Short or bad output buffers are refused and the caller keeps running.
    syscall(&mut k, &mut f, Sys::ProgramInfo, [0, DATA + 128, 63]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::InvalidArgument));
    syscall(&mut k, &mut f, Sys::ProgramInfo, [0, 0, 64]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NullPointer));
    assert_eq!(k.current, Some(me));
}

#[test]
fn the_supervisor_kills_a_blocked_task_and_hears_of_it_as_a_fault() {
    use crate::abi::{DeathInfo, DEATH_FAULT, KILLED};
    let (mut k, mut f) = supervised(&["init", "worker"]);
    let free_before = k.frames.free_count();
    syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    assert_eq!(k.current, Some(1));
    let worker = k.task(1).unwrap().id.to_raw();
    let init = k.task(0).unwrap().id.to_raw();
    // The worker refuses to kill anyone: only the supervisor may.
    syscall(&mut k, &mut f, Sys::Kill, [init, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotPermitted));
    // It blocks in receive; the supervisor runs and kills it there.
    syscall6(&mut k, &mut f, Sys::Receive, [DATA, 64, 0, DATA + 256, 0, 0]);
    while k.current != Some(0) {
        syscall(&mut k, &mut f, Sys::Yield, [0; 3]);
    }
    syscall(&mut k, &mut f, Sys::Kill, [init, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::InvalidArgument), "never itself");
    syscall(&mut k, &mut f, Sys::Kill, [worker, 0, 0]);
    assert_eq!(f.rax, 0);
    assert!(k.task(1).is_none(), "the slot is free");
    assert!(k.frames.free_count() > free_before, "its memory came back");
    syscall(&mut k, &mut f, Sys::Kill, [worker, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::TaskDied), "a stale id");
    syscall(&mut k, &mut f, Sys::NextDeath, [DATA + 128, DeathInfo::SIZE as u64, 0]);
    assert_eq!(f.rax, 1);
    let b = copy_in(&space(&k, 0), &k.mem, DATA + 128, 24).unwrap();
    let w = |n: usize| u64::from_le_bytes(b[n * 8..n * 8 + 8].try_into().unwrap());
    assert_eq!((w(0), w(1), w(2)), (worker, DEATH_FAULT, KILLED));
    // Spawned again, it gets a new generation.
    copy_out(&space(&k, 0), &mut k.mem, DATA, b"worker\0").unwrap();
    syscall(&mut k, &mut f, Sys::Spawn, [DATA, 0, 0]);
    assert_eq!(TaskId::from_raw(f.rax).map(|t| t.generation), Some(1));
}

#[test]
fn wall_clock_is_the_boot_reading_plus_monotonic_time() {
    let mut k = boot(&["a"]);
    assert_eq!(k.wall_clock_ns(), crate::rtc::FALLBACK_UNIX_SECS * 1_000_000_000, "no RTC reading: the fallback");
    k.wall_at_boot_ns = 1_795_620_607_000_000_000;
    let mut f = first_tick(&mut k);
    tick(&mut k, &mut f);
    tick(&mut k, &mut f);
    syscall(&mut k, &mut f, Sys::WallClock, [0; 3]);
    assert_eq!(f.rax, 1_795_620_607_000_000_000 + 3 * 1_000_000);
    syscall(&mut k, &mut f, Sys::MonotonicNs, [0; 3]);
    assert_eq!(f.rax, 3 * 1_000_000);
}

#[test]
fn deadlines_follow_the_platform_clock_when_ticks_are_lost() {
    let mut k = boot(&["a", "b"]);
    k.platform.clock = Some(0);
    k.wall_at_boot_ns = 1_000_000_000_000_000_000;
    let mut f = first_tick(&mut k);
    // a sleeps 30 ms; b arms a 50 ms timer and sleeps 100 ms: nothing runnable.
    syscall(&mut k, &mut f, Sys::Sleep, [30_000_000, 0, 0]);
    assert_eq!(k.current, Some(1));
    syscall(&mut k, &mut f, Sys::SetTimer, [50_000_000, 0b10, 0]);
    assert_eq!(syscall(&mut k, &mut f, Sys::Sleep, [100_000_000, 0, 0]), Exit::Idle);
    let mut idle = TrapFrame { cs: 0x08, ..Default::default() };
    // Only one tick arrives in 31 ms (the others were lost): a wakes on it all the same.
    k.platform.clock = Some(31_000_000);
    assert_ne!(tick(&mut k, &mut idle), Exit::Idle);
    assert_eq!((k.ticks, k.current), (2, Some(0)));
    syscall(&mut k, &mut f, Sys::MonotonicNs, [0; 3]);
    assert_eq!(f.rax, 31_000_000, "time is the clock's, not 2 ticks");
    syscall(&mut k, &mut f, Sys::WallClock, [0; 3]);
    assert_eq!(f.rax, 1_000_000_000_031_000_000);
    k.platform.clock = Some(49_999_999);
    tick(&mut k, &mut f);
    assert_eq!(k.task(1).unwrap().notifications, 0, "not before the deadline");
    k.platform.clock = Some(50_000_000);
    tick(&mut k, &mut f);
    assert_eq!(k.task(1).unwrap().notifications, 0b10, "posted at the first tick past the deadline");
    assert!(matches!(k.sched[1], SchedState::Sleeping { until: 100_000_000 }), "{:?}", k.sched[1]);
}
