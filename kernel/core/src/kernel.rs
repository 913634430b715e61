//! The kernel's state machine: the task table, spawning from ELF images, traps, scheduling, death.
//!
//! Design: everything the kernel decides lives here, generic over physical memory (`PhysMem`),
//! frames (`FrameAlloc`) and a small `Platform` (log, console, the CR3 and FXSAVE-pointer switches),
//! so host tests drive it trap by trap exactly as the CPU does. The task table is a `Vec` of slots; a
//! slot keeps its 16-bit generation across reuse (and is retired when it runs out, never wrapped),
//! so a `TaskId` names one incarnation only (IPC relies on that to fail calls to restarted
//! servers). Scheduler states live in a parallel vector
//! that `sched`'s pure functions read. There is no per-task kernel stack: a task is its saved
//! registers, FXSAVE area and address space. Death goes through one function, `reap`, whatever the
//! cause, so the supervisor is notified (`tell_supervisor`) from exactly one place.

use crate::abi::{DeathInfo, DEATH_EXIT, DEATH_FAULT, NOTIFY_DEATH};
use crate::abi::{SysError, TaskId, ANON_BASE, PAGE, USER_END};
use crate::elf;
use crate::paging::{AddressSpace, FrameAlloc, Perm, PhysMem};
use crate::sched::{self, SchedState};
use crate::trap::{exception_name, fault_detail, Event, Exit, FxArea, TrapFrame, SYSCALL_VECTOR, USER_CS, USER_DS};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Initial user stack: 64 KiB ending here, with unmapped guard pages below and above.
pub const STACK_TOP: u64 = 0x0000_7FFF_FFF0_0000;
pub const STACK_SIZE: u64 = 64 * 1024;
/// Timer ticks a task may run before the next runnable task gets the CPU.
pub const QUANTUM: u64 = 10;
/// User-visible RFLAGS bits a task may keep (arithmetic flags, TF, DF, AC, ID); IF is forced on.
const USER_RFLAGS: u64 = 0x0024_0DD5;

/// What the portable kernel needs from the machine.
pub trait Platform {
    /// One kernel log line (the implementation adds the prefix and newline).
    fn log(&mut self, args: fmt::Arguments);
    /// Bytes a process wrote to the console.
    fn console(&mut self, bytes: &[u8]);
    /// Make the address space with this PML4 current (called before its tables are freed, too).
    fn set_root(&mut self, root: u64);
    /// Make `fx` the FPU/SSE state in the registers: the task about to run owns it. The registers
    /// keep a task's state while the kernel and the idle loop run (neither touches them), so a
    /// platform saves the previous owner's state and loads `fx` only when the owner changes.
    fn load_fx(&mut self, fx: *mut FxArea);
    /// `fx` is about to be freed (its task is reaped): if it owns the registers, forget it, so its
    /// state is never saved into freed memory.
    fn release_fx(&mut self, fx: *mut FxArea);
    /// Nanoseconds per timer tick (the clock when `clock_ns` has none).
    fn tick_ns(&self) -> u64;
    /// Monotonic nanoseconds from a clock that does not depend on counting ticks (the calibrated
    /// TSC, `tsc::TscClock`), or `None` to count ticks. Ticks may be lost (QEMU TCG drops them
    /// under host load), so the hardware kernel answers this whenever calibration succeeded.
    fn clock_ns(&self) -> Option<u64> {
        None
    }
    /// Reads I/O port `port` (`width` 1, 2 or 4 bytes), for a driver task.
    fn port_in(&mut self, port: u16, width: u8) -> u32;
    /// Writes I/O port `port`, for a driver task.
    fn port_out(&mut self, port: u16, width: u8, value: u32);
    /// Masks or unmasks legacy interrupt line `line` (1..15) at the PIC.
    fn irq_mask(&mut self, line: u8, masked: bool);
    /// Takes up to `buf.len()` bytes the console's UART holds, without waiting; returns how many.
    /// (Called from its interrupt and from `console_read`.) The default has no console input.
    fn console_read(&mut self, _buf: &mut [u8]) -> usize {
        0
    }
}

/// A kernel log line, started on a fresh line even if a task left its line unfinished.
macro_rules! klog {
    ($k:expr, $($arg:tt)*) => {{
        if $k.console_out.kernel_line() {
            $k.platform.console(b"\n");
        }
        $k.platform.log(format_args!($($arg)*))
    }};
}
pub(crate) use klog;

/// How a task left the CPU last: decides `iretq` or `sysretq` on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Iret,
    Sysret,
}

/// Why a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    Exit(i64),
    /// A CPU exception (its vector) or a fault the kernel raised (`u64::MAX`); already logged.
    Fault(u64),
}

/// A program the kernel can start: its name, ELF bytes, whether it is a driver, and its manifest
/// flags (reported by `program_info`).
pub struct Image {
    pub name: String,
    pub bytes: &'static [u8],
    pub driver: bool,
    pub flags: u64,
    /// The PCI functions the manifest assigns to this driver (`pci_ports`).
    pub devices: Vec<crate::busmaster::Function>,
    /// The programs its tasks may call (the manifest's send list).
    pub sends: crate::ipc::Sends,
}

/// Death records kept for the supervisor; beyond this the oldest is dropped (and logged).
pub const MAX_DEATHS: usize = 64;

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
    pub ipc: crate::ipc::IpcState,
    /// The slot of the last caller whose message it received: its next receive looks at the slots
    /// after it first, so callers take turns.
    pub received_from: usize,
    /// Pending notification bits (delivered by `receive` when its mask allows).
    pub notifications: u64,
    /// Of `notifications`, the bits the kernel posted (reported as `RecvInfo::kernel`).
    pub kernel_pending: u64,
    /// `set_timer`: (monotonic ns at or after which to post, bits).
    pub timer: Option<(u64, u64)>,
    /// May use I/O ports and interrupt lines (initrd flag DRIVER).
    pub driver: bool,
    /// May post `NOTIFY_STOP` (initrd flag CONTROL or STOPPER).
    pub control: bool,
    /// The PCI functions it drives (its image's), for `pci_ports`.
    pub devices: Vec<crate::busmaster::Function>,
    /// The index of its program in `images` (`None` when started without one), which others'
    /// send lists name.
    pub program: Option<usize>,
    /// The programs it may call (its image's).
    pub sends: crate::ipc::Sends,
    /// The tasks it has called, most recent last (at most `ipc::MAX_PEERS`): they and it may
    /// notify each other.
    pub peers: Vec<TaskId>,
    /// DMA mappings (first frame, pages): held back at death while a device may still write them.
    pub dma: Vec<(u64, u64)>,
}

#[derive(Default)]
pub struct Slot {
    pub generation: u16,
    pub task: Option<Task>,
}

pub struct Kernel<P: Platform, M: PhysMem, F: FrameAlloc> {
    pub platform: P,
    pub mem: M,
    pub frames: F,
    pub slots: Vec<Slot>,
    pub sched: Vec<SchedState>,
    pub current: Option<usize>,
    pub ticks: u64,
    slice_start: u64,
    kernel_root: u64,
    clean_fx: FxArea,
    /// Free frames before the first task was created: all must be back when the last one ends.
    frames_at_start: usize,
    pub exited: usize,
    pub killed: usize,
    entered_user: bool,
    halted: Option<bool>,
    /// The task told of every death (`NOTIFY_DEATH` + `next_death`), allowed to `spawn`.
    pub supervisor: Option<TaskId>,
    /// Program images for `spawn` (the initrd's entries).
    pub images: Vec<Image>,
    /// Interrupt line -> (driver, notification bits).
    pub irqs: [Option<(TaskId, u64)>; 16],
    /// Wall-clock time when the monotonic clock read 0, in ns since the Unix epoch (the RTC at boot).
    pub wall_at_boot_ns: u64,
    /// Console input received and not yet read, and its waiting readers.
    pub console_in: crate::console::ConsoleInput,
    /// The devices' I/O windows drivers may use (`pci_ports::io_windows`, found at boot).
    pub io_windows: Vec<crate::pci_ports::Window>,
    /// Each device's interrupt line (`pci_ports::interrupt_lines`, found at boot).
    pub irq_lines: Vec<(crate::busmaster::Function, u8)>,
    /// The console's line state, so task lines never pass for the kernel's or another program's.
    pub console_out: crate::console_out::ConsoleOut,
    /// PCI functions drivers have let master the bus.
    pub bus_masters: crate::busmaster::BusMasters,
    /// Deaths not yet collected by the supervisor.
    pub deaths: VecDeque<DeathInfo>,
}

impl<P: Platform, M: PhysMem, F: FrameAlloc> Kernel<P, M, F> {
    /// A kernel with no tasks. `clean_fx` is the FPU state every task starts from.
    pub fn new(platform: P, mem: M, frames: F, kernel_root: u64, clean_fx: FxArea) -> Self {
        let frames_at_start = frames.free_count();
        Kernel {
            platform,
            mem,
            frames,
            slots: Vec::new(),
            sched: Vec::new(),
            current: None,
            ticks: 0,
            slice_start: 0,
            kernel_root,
            clean_fx,
            frames_at_start,
            exited: 0,
            killed: 0,
            entered_user: false,
            halted: None,
            supervisor: None,
            images: Vec::new(),
            irqs: [None; 16],
            wall_at_boot_ns: crate::rtc::FALLBACK_UNIX_SECS * 1_000_000_000,
            bus_masters: Default::default(),
            console_in: Default::default(),
            io_windows: Vec::new(),
            irq_lines: Vec::new(),
            console_out: Default::default(),
            deaths: VecDeque::new(),
        }
    }

    /// Monotonic time: the platform's clock, or the ticks counted when it has none.
    pub fn now_ns(&self) -> u64 {
        self.platform.clock_ns().unwrap_or_else(|| self.ticks.saturating_mul(self.platform.tick_ns()))
    }

    /// Nanoseconds since the Unix epoch.
    pub fn wall_clock_ns(&self) -> u64 {
        self.wall_at_boot_ns.saturating_add(self.now_ns())
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
        // A slot whose generation is used up is retired rather than wrapped, so an old id can never
        // name a new task; the table grows by reserving first, so a full heap refuses the spawn
        // instead of failing an allocation inside the kernel.
        let index = match self.slots.iter().position(|s| s.task.is_none() && s.generation < u16::MAX) {
            Some(i) => i,
            None if self.slots.len() < u16::MAX as usize => {
                if self.slots.try_reserve(1).is_err() || self.sched.try_reserve(1).is_err() {
                    return Err("out of memory for the task table");
                }
                self.slots.push(Slot::default());
                self.sched.push(SchedState::Free);
                self.slots.len() - 1
            }
            None => return Err("task table full"),
        };
        let space = AddressSpace::new(&mut self.mem, &mut self.frames, self.kernel_root).ok_or("out of memory")?;
        let loaded =
            elf::load(&plan, image, &space, &mut self.mem, &mut self.frames).map_err(|_| "cannot load ELF segments");
        let stack = loaded.and_then(|()| {
            let rw = Perm { write: true, exec: false };
            self.map_zeroed(&space, STACK_TOP - STACK_SIZE, STACK_SIZE / PAGE, rw)
                .map_err(|_| "out of memory for the stack")
        });
        if let Err(e) = stack {
            space.free_user(&mut self.mem, &mut self.frames);
            return Err(e);
        }
        let id = TaskId { index: index as u16, generation: self.slots[index].generation };
        let frame = TrapFrame {
            rip: plan.entry,
            cs: USER_CS,
            rflags: 0x202,
            rsp: STACK_TOP,
            ss: USER_DS,
            ..Default::default()
        };
        self.slots[index].task = Some(Task {
            id,
            name: String::from(name),
            frame,
            resume: Resume::Iret,
            fx: Box::new(self.clean_fx.clone()),
            space,
            anon_next: ANON_BASE,
            anon_bytes: 0,
            ticks: 0,
            syscalls: 0,
            ipc: crate::ipc::IpcState::Idle,
            received_from: index,
            notifications: 0,
            kernel_pending: 0,
            timer: None,
            driver: false,
            control: false,
            devices: Vec::new(),
            program: None,
            sends: crate::ipc::Sends::Any,
            peers: Vec::new(),
            dma: Vec::new(),
        });
        self.sched[index] = SchedState::Runnable;
        Ok(id)
    }

    /// Maps `pages` fresh zeroed frames at `va`. Frames mapped before a failure stay owned by the
    /// space (and are freed with it).
    pub fn map_zeroed(&mut self, space: &AddressSpace, va: u64, pages: u64, perm: Perm) -> Result<(), SysError> {
        for i in 0..pages {
            let frame = self.frames.alloc().ok_or(SysError::OutOfMemory)?;
            self.mem.zero_frame(frame);
            if let Err(e) = space.map(&mut self.mem, &mut self.frames, va + i * PAGE, frame, perm) {
                self.frames.free(frame);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Handles one trap. `frame` holds the interrupted registers on entry and the registers of the
    /// task to resume on return (unless the result is `Idle` or `Halt`).
    pub fn trap(&mut self, frame: &mut TrapFrame, event: Event) -> Exit {
        if frame.cs & 3 == 3 {
            self.save_current(frame);
        }
        let reschedule = match event {
            Event::Syscall => self.current.is_none_or(|c| crate::syscall::dispatch(self, c)),
            Event::Timer => self.tick(),
            Event::Exception { vector, error, cr2 } => {
                self.user_fault(vector, error, cr2);
                true
            }
            Event::Irq(crate::console::LINE) => crate::console::on_irq(self),
            Event::Irq(line) => {
                crate::devices::on_irq(self, line);
                false
            }
            Event::Ignored => false,
        };
        if let Some(ok) = self.halted {
            return Exit::Halt { ok };
        }
        self.switch(frame, reschedule)
    }

    fn save_current(&mut self, frame: &TrapFrame) {
        if let Some(task) = self.current.and_then(|c| self.task_mut(c)) {
            task.frame = *frame;
            task.resume = if frame.vector == SYSCALL_VECTOR { Resume::Sysret } else { Resume::Iret };
        }
    }

    fn user_fault(&mut self, vector: u64, error: u64, cr2: u64) {
        let Some(c) = self.current else { return };
        let Some(task) = self.task(c) else { return };
        let (mnemonic, name) = exception_name(vector);
        let detail = fault_detail(vector, error);
        let sep = if detail.is_empty() { "" } else { ", " };
        let (rip, rsp) = (task.frame.rip, task.frame.rsp);
        let report = alloc::format!(
            "task {c} ({}) killed by {mnemonic} {name}{sep}{detail}: vector={vector} error={error:#x} rip={rip:#x} cr2={cr2:#x} rsp={rsp:#x}",
            task.name
        );
        klog!(self, "{report}");
        self.reap(c, Death::Fault(vector));
    }

    /// Ends task `i`: frees its address space and slot. The only way a task dies.
    pub fn reap(&mut self, i: usize, death: Death) {
        let Some(task) = self.slots.get_mut(i).and_then(|s| s.task.take()) else { return };
        if self.current == Some(i) {
            // Never free the tables the CPU is using.
            self.platform.set_root(self.kernel_root);
            self.current = None;
        }
        self.platform.release_fx(&*task.fx as *const FxArea as *mut FxArea);
        // Devices first: a device this driver let master the bus must stop before its DMA pages
        // can be handed to anyone else.
        let mastering = crate::devices::on_death(self, task.id, &task.name);
        let freed = crate::busmaster::free_space(self, task.space, &task.dma, mastering, &task.name);
        // At u16::MAX the slot is retired (`spawn` skips it): ids never wrap.
        self.slots[i].generation = self.slots[i].generation.saturating_add(1);
        self.sched[i] = SchedState::Free;
        crate::ipc::on_death(self, task.id);
        crate::console::on_death(self, i);
        match death {
            Death::Exit(code) => {
                self.exited += 1;
                klog!(self, "task {i} ({}) exited with code {code}; {freed} frames freed", task.name);
            }
            Death::Fault(_) => {
                self.killed += 1;
                klog!(self, "task {i} ({}) reaped; {freed} frames freed", task.name);
            }
        }
        self.tell_supervisor(&task, death);
        if self.live_tasks() == 0 {
            klog!(self, "all tasks finished: {} exited, {} killed", self.exited, self.killed);
            // The harness compares this with the host's time (ticks show how many were lost).
            klog!(self, "clock: {} ns monotonic at halt, {} timer ticks counted", self.now_ns(), self.ticks);
            let input = &self.console_in;
            if input.by_interrupt + input.dropped > 0 {
                klog!(
                    self,
                    "console input: {} bytes taken at COM1's interrupt, {} dropped (buffer full)",
                    input.by_interrupt,
                    input.dropped
                );
            }
            let free = self.frames.free_count();
            let ok = free == self.frames_at_start;
            let verdict = if ok { "PASS" } else { "FAIL" };
            klog!(
                self,
                "CHECK {verdict} kernel: every frame returned after all processes ended ({free} free, {} at start)",
                self.frames_at_start
            );
            self.halted = Some(ok);
        }
    }

    /// Queues a death record for the supervisor and sets its `NOTIFY_DEATH` bit.
    fn tell_supervisor(&mut self, task: &Task, death: Death) {
        let Some(sup) = self.supervisor else { return };
        if sup == task.id {
            klog!(self, "the supervisor ({}) has ended: nobody restarts tasks any more", task.name);
            self.supervisor = None;
            return;
        }
        let Some(s) = self.lookup(sup) else { return };
        let (cause, code) = match death {
            Death::Exit(code) => (DEATH_EXIT, code as u64),
            Death::Fault(vector) => (DEATH_FAULT, vector),
        };
        let mut info =
            DeathInfo { id: task.id.to_raw(), cause, code, live: self.live_tasks() as u64 - 1, name: [0; 32] };
        let n = task.name.len().min(31);
        info.name[..n].copy_from_slice(&task.name.as_bytes()[..n]);
        if self.deaths.len() == MAX_DEATHS {
            if let Some(lost) = self.deaths.pop_front() {
                klog!(self, "death record of task {:#x} dropped: the supervisor is not collecting them", lost.id);
            }
        }
        self.deaths.push_back(info);
        crate::ipc::post(self, s, NOTIFY_DEATH);
    }

    /// Registers a program image `spawn` may start by name.
    pub fn add_image(&mut self, name: &str, bytes: &'static [u8], driver: bool) {
        self.add_program(name, bytes, if driver { crate::abi::PROGRAM_DRIVER } else { 0 });
    }

    /// Registers an initrd program with its manifest flags (`PROGRAM_DRIVER` grants device access).
    pub fn add_program(&mut self, name: &str, bytes: &'static [u8], flags: u64) {
        let driver = flags & crate::abi::PROGRAM_DRIVER != 0;
        let sends = crate::ipc::Sends::Any;
        self.images.push(Image { name: String::from(name), bytes, driver, flags, devices: Vec::new(), sends });
    }

    /// Limits the program `name` to calling the programs in `programs` (bit i: `images[i]`, the
    /// initrd's order); without this call it may call any task.
    pub fn limit_sends(&mut self, name: &str, programs: u64) {
        if let Some(image) = self.images.iter_mut().find(|i| i.name == name) {
            image.sends = crate::ipc::Sends::Programs(programs);
        }
    }

    /// Assigns PCI function `f` to the driver program `name` (its manifest entry's device).
    pub fn assign_device(&mut self, name: &str, f: crate::busmaster::Function) {
        if let Some(image) = self.images.iter_mut().find(|i| i.name == name) {
            image.devices.push(f);
        }
    }

    /// Starts a registered image (with its privileges).
    pub fn spawn_image(&mut self, name: &str) -> Result<TaskId, &'static str> {
        let program = self.images.iter().position(|i| i.name == name).ok_or("no such program")?;
        let i = &self.images[program];
        let image = (i.bytes, i.driver, i.flags, i.devices.clone(), i.sends);
        let id = self.spawn(name, image.0)?;
        if let Some(t) = self.task_mut(id.index as usize) {
            t.driver = image.1;
            t.control = image.2 & (crate::abi::PROGRAM_CONTROL | crate::abi::PROGRAM_STOPPER) != 0;
            t.devices = image.3;
            t.program = Some(program);
            t.sends = image.4;
        }
        if image.2 & crate::abi::PROGRAM_CONSOLE != 0 {
            crate::console::on_console_program(self, id);
        }
        Ok(id)
    }

    /// One timer tick: the moment to look at the clock. Deadlines are compared with the clock, not
    /// with the tick count, so they fire on time even when ticks were lost. Returns true if the CPU
    /// should be rescheduled (time slices are still counted in ticks).
    fn tick(&mut self) -> bool {
        self.ticks += 1;
        if let Some(t) = self.current.and_then(|c| self.task_mut(c)) {
            t.ticks += 1;
        }
        let now = self.now_ns();
        sched::wake_sleepers(&mut self.sched, now);
        for i in 0..self.slots.len() {
            let due = self.task(i).and_then(|t| t.timer).filter(|&(at, _)| at <= now);
            if let Some((_, bits)) = due {
                if let Some(t) = self.task_mut(i) {
                    t.timer = None;
                }
                crate::ipc::post(self, i, bits);
            }
        }
        self.current.is_none() || self.ticks - self.slice_start >= QUANTUM
    }

    /// Chooses who runs next and loads its registers into `frame`.
    fn switch(&mut self, frame: &mut TrapFrame, reschedule: bool) -> Exit {
        let stay = self.current.filter(|&c| !reschedule && self.sched[c] == SchedState::Runnable);
        let Some(n) = stay.or_else(|| sched::pick_next(&self.sched, self.current)) else {
            self.current = None;
            return Exit::Idle;
        };
        if self.current != Some(n) {
            self.current = Some(n);
            self.slice_start = self.ticks;
        }
        if !self.entered_user {
            self.entered_user = true;
            klog!(
                self,
                "first process entering user mode at tick {} ({} us monotonic)",
                self.ticks,
                self.now_ns() / 1000
            );
        }
        let task = self.slots[n].task.as_mut().expect("runnable slot has a task");
        let (root, fx) = (task.space.root, &mut *task.fx as *mut FxArea);
        task.frame.rflags = (task.frame.rflags & USER_RFLAGS) | 0x202;
        *frame = task.frame;
        frame.cs = USER_CS;
        frame.ss = USER_DS;
        let resume = task.resume;
        self.platform.set_root(root);
        self.platform.load_fx(fx);
        // sysret to a non-canonical RIP would fault in ring 0; user RIPs are always below USER_END,
        // but iret is the safe choice should one ever not be.
        if resume == Resume::Sysret && frame.rip < USER_END {
            Exit::Sysret
        } else {
            Exit::Iret
        }
    }
}
