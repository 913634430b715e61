//! The task table and everything that changes it: spawning from an ELF image, killing and reaping,
//! and switching the CPU between tasks.
//!
//! Design: a `Vec` of slots; a slot keeps its 16-bit generation across reuse, so a `TaskId` names one
//! incarnation only (the IPC step will rely on that to fail calls to restarted servers). Scheduler
//! state lives in a parallel `Vec<SchedState>` so kernel-core's pure round-robin functions can read
//! it directly. A task owns its address space, its saved registers and its FXSAVE area; there is no
//! per-task kernel stack. Death goes through one function, `reap`, whatever the cause, so the next
//! step can notify a supervisor from exactly one place.

use crate::arch::{self, TICK_NS, USER_CS, USER_DS};
use crate::entry::{Exit, FxArea, TrapFrame, CURRENT_FX, IDLE_FX, SYSCALL_VECTOR};
use crate::mem::{DirectMap, FrameList};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use kernel_core::abi::{TaskId, ANON_BASE, PAGE, USER_END};
use kernel_core::elf;
use kernel_core::paging::{AddressSpace, FrameAlloc, Perm};
use kernel_core::sched::{self, SchedState};

/// Initial user stack: 64 KiB ending here, with unmapped guard pages below and above.
pub const STACK_TOP: u64 = 0x0000_7FFF_FFF0_0000;
const STACK_SIZE: u64 = 64 * 1024;
/// Timer ticks a task may run before the next runnable task gets the CPU.
pub const QUANTUM: u64 = 10;
/// User-visible RFLAGS bits a task may keep (arithmetic flags, TF, DF, AC, ID); IF is forced on.
const USER_RFLAGS: u64 = 0x0024_0DD5;

/// How a task left the CPU last: decides `iretq` or `sysretq` on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Iret,
    Sysret,
}

/// Why a task ended.
pub enum Death {
    Exit(i64),
    /// A CPU exception in user mode; the report is already logged.
    Fault,
}

pub struct Task {
    pub id: TaskId,
    pub name: String,
    pub frame: TrapFrame,
    pub resume: Resume,
    pub fx: Box<FxArea>,
    pub space: AddressSpace,
    pub anon_next: u64,
    pub anon_bytes: u64,
    pub ticks: u64,
    pub syscalls: u64,
}

#[derive(Default)]
pub struct Slot {
    pub generation: u16,
    pub task: Option<Task>,
}

pub struct Kernel {
    pub slots: Vec<Slot>,
    pub sched: Vec<SchedState>,
    pub current: Option<usize>,
    pub ticks: u64,
    slice_start: u64,
    pub frames: FrameList,
    pub kernel_root: u64,
    clean_fx: Box<FxArea>,
    /// Free frames before the first task was created: all must be back when the last one ends.
    pub frames_at_start: usize,
    pub exited: usize,
    pub killed: usize,
    entered_user: bool,
    /// The PML4 in CR3 now, so a switch back to the same task does not flush the TLB.
    cr3: u64,
}

impl Kernel {
    pub fn new(frames: FrameList, kernel_root: u64) -> Kernel {
        let mut clean_fx = Box::new(FxArea([0; 512]));
        arch::initial_fx_state(&mut clean_fx);
        let frames_at_start = frames.free_count();
        Kernel {
            slots: Vec::new(),
            sched: Vec::new(),
            current: None,
            ticks: 0,
            slice_start: 0,
            frames,
            kernel_root,
            clean_fx,
            frames_at_start,
            exited: 0,
            killed: 0,
            entered_user: false,
            cr3: kernel_root,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.ticks * TICK_NS
    }

    pub fn task(&self, i: usize) -> Option<&Task> {
        self.slots.get(i)?.task.as_ref()
    }

    pub fn task_mut(&mut self, i: usize) -> Option<&mut Task> {
        self.slots.get_mut(i)?.task.as_mut()
    }

    /// The slot of the live task with this exact id (generation included).
    pub fn lookup(&self, id: TaskId) -> Option<usize> {
        let i = id.index as usize;
        (self.task(i)?.id == id).then_some(i)
    }

    pub fn live_tasks(&self) -> usize {
        self.slots.iter().filter(|s| s.task.is_some()).count()
    }

    /// Creates a runnable task from an ELF image.
    pub fn spawn(&mut self, name: &str, image: &[u8]) -> Result<TaskId, &'static str> {
        let plan = elf::plan(image).map_err(|e| match e {
            elf::ElfError::Truncated => "truncated ELF",
            elf::ElfError::NotSupported => "not an x86-64 static executable",
            elf::ElfError::BadSegment => "bad ELF segment",
            elf::ElfError::BadEntry => "entry point outside executable code",
            elf::ElfError::OutOfMemory => "out of memory",
        })?;
        let index = match self.slots.iter().position(|s| s.task.is_none()) {
            Some(i) => i,
            None if self.slots.len() < u16::MAX as usize => {
                self.slots.push(Slot::default());
                self.sched.push(SchedState::Free);
                self.slots.len() - 1
            }
            None => return Err("task table full"),
        };
        let space = AddressSpace::new(&mut DirectMap, &mut self.frames, self.kernel_root).ok_or("out of memory")?;
        if let Err(e) = self.populate(&space, &plan, image) {
            space.free_user(&mut DirectMap, &mut self.frames);
            return Err(e);
        }
        let id = TaskId { index: index as u16, generation: self.slots[index].generation };
        let frame = TrapFrame { rip: plan.entry, cs: USER_CS, rflags: 0x202, rsp: STACK_TOP, ss: USER_DS, ..Default::default() };
        self.slots[index].task = Some(Task {
            id,
            name: String::from(name),
            frame,
            resume: Resume::Iret,
            fx: self.clean_fx.clone(),
            space,
            anon_next: ANON_BASE,
            anon_bytes: 0,
            ticks: 0,
            syscalls: 0,
        });
        self.sched[index] = SchedState::Runnable;
        Ok(id)
    }

    fn populate(&mut self, space: &AddressSpace, plan: &elf::Plan, image: &[u8]) -> Result<(), &'static str> {
        elf::load(plan, image, space, &mut DirectMap, &mut self.frames).map_err(|_| "cannot load ELF segments")?;
        let rw = Perm { write: true, exec: false };
        self.map_zeroed(space, STACK_TOP - STACK_SIZE, STACK_SIZE / PAGE, rw).map_err(|_| "out of memory for the stack")
    }

    /// Maps `pages` fresh zeroed frames at `va`.
    pub fn map_zeroed(&mut self, space: &AddressSpace, va: u64, pages: u64, perm: Perm) -> Result<(), ()> {
        for i in 0..pages {
            let frame = self.frames.alloc().ok_or(())?;
            kernel_core::paging::PhysMem::zero_frame(&mut DirectMap, frame);
            if space.map(&mut DirectMap, &mut self.frames, va + i * PAGE, frame, perm).is_err() {
                self.frames.free(frame);
                return Err(());
            }
        }
        Ok(())
    }

    /// Records the registers of the task that trapped (called on every trap from user mode).
    pub fn save_current(&mut self, frame: &TrapFrame) {
        if let Some(task) = self.current.and_then(|c| self.task_mut(c)) {
            task.frame = *frame;
            task.resume = if frame.vector == SYSCALL_VECTOR { Resume::Sysret } else { Resume::Iret };
        }
    }

    /// Ends task `i`: frees its address space and slot. The only way a task dies.
    pub fn reap(&mut self, i: usize, death: Death) {
        let Some(task) = self.slots[i].task.take() else { return };
        if self.current == Some(i) {
            // Never free the tables the CPU is using.
            arch::set_cr3(self.kernel_root);
            self.cr3 = self.kernel_root;
            self.current = None;
        }
        let freed = task.space.free_user(&mut DirectMap, &mut self.frames);
        self.slots[i].generation = self.slots[i].generation.wrapping_add(1);
        self.sched[i] = SchedState::Free;
        match death {
            Death::Exit(code) => {
                self.exited += 1;
                klog!("task {} ({}) exited with code {code}; {freed} frames freed", i, task.name);
            }
            Death::Fault => {
                self.killed += 1;
                klog!("task {} ({}) reaped; {freed} frames freed", i, task.name);
            }
        }
        if self.live_tasks() == 0 {
            self.finish();
        }
    }

    /// Every task is gone: report and power off.
    fn finish(&self) -> ! {
        klog!("all tasks finished: {} exited, {} killed", self.exited, self.killed);
        let free = self.frames.free_count();
        let ok = free == self.frames_at_start;
        let verdict = if ok { "PASS" } else { "FAIL" };
        klog!("CHECK {verdict} kernel: every frame returned after all processes ended ({free} free, {} at start)", self.frames_at_start);
        crate::serial::exit_qemu(ok)
    }

    /// One timer tick: time advances, sleepers wake. Returns true if the CPU should be rescheduled.
    pub fn tick(&mut self) -> bool {
        self.ticks += 1;
        if let Some(t) = self.current.and_then(|c| self.task_mut(c)) {
            t.ticks += 1;
        }
        sched::wake_sleepers(&mut self.sched, self.ticks);
        self.current.is_none() || self.ticks - self.slice_start >= QUANTUM
    }

    /// Chooses who runs next and loads its registers into `frame`.
    pub fn switch(&mut self, frame: &mut TrapFrame, reschedule: bool) -> Exit {
        let stay = self.current.filter(|&c| !reschedule && self.sched[c] == SchedState::Runnable);
        let next = stay.or_else(|| sched::pick_next(&self.sched, self.current));
        let Some(n) = next else {
            self.current = None;
            // Safety: the idle area is a static; the entry code reads CURRENT_FX only after we return.
            unsafe { CURRENT_FX = &raw mut IDLE_FX };
            return Exit::Idle;
        };
        if self.current != Some(n) {
            self.current = Some(n);
            self.slice_start = self.ticks;
        }
        if !self.entered_user {
            self.entered_user = true;
            klog!("first process entering user mode at tick {} ({} us after the timer started)", self.ticks, self.now_ns() / 1000);
        }
        let task = self.slots[n].task.as_mut().expect("runnable slot has a task");
        if self.cr3 != task.space.root {
            arch::set_cr3(task.space.root);
            self.cr3 = task.space.root;
        }
        // Safety: the task's FxArea is boxed, so its address is stable until the task is reaped, and
        // a reaped task is never current.
        unsafe { CURRENT_FX = &mut *task.fx as *mut FxArea };
        task.frame.rflags = (task.frame.rflags & USER_RFLAGS) | 0x202;
        *frame = task.frame;
        frame.cs = USER_CS;
        frame.ss = USER_DS;
        // sysret to a non-canonical RIP would fault in ring 0; user RIPs are always below USER_END,
        // but iret is the safe choice should one ever not be.
        if task.resume == Resume::Sysret && frame.rip < USER_END {
            Exit::Sysret
        } else {
            Exit::Iret
        }
    }
}
