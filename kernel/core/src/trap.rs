//! What a trap looks like to the portable kernel: the saved registers, the FPU/SSE save area, the
//! kinds of event, how to leave, and the names of CPU exceptions.
//!
//! Design: the register layout is the one the bare-metal entry code pushes (it is `repr(C)` and the
//! assembly depends on its order); everything else here is plain data so the kernel's state machine in
//! `kernel` can be driven by host tests exactly as the hardware drives it.

/// Registers of an interrupted task, in the order the entry code pushes them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Vector number the syscall entry records in the frame (beyond the 256 hardware vectors).
pub const SYSCALL_VECTOR: u64 = 256;
/// User code and stack selectors (RPL 3), fixed by the `sysret` GDT layout.
pub const USER_CS: u64 = 0x23;
pub const USER_DS: u64 = 0x1b;

/// 512-byte FXSAVE area, 16-byte aligned as the instruction requires.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FxArea(pub [u8; 512]);

/// Which task's FPU/SSE state the registers hold. The kernel is soft-float and never touches those
/// registers, so a trap leaves them alone and they keep the interrupted task's state through the
/// kernel and the idle loop; they are swapped only when a different task is resumed (one save and
/// one load then, none on a syscall that returns to its caller).
#[derive(Debug, Default)]
pub struct LiveFx(Option<*mut FxArea>);

/// The register moves that make a task's state live: save the registers into `save` (if any), then
/// load them from `load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FxSwitch {
    pub save: Option<*mut FxArea>,
    pub load: *mut FxArea,
}

// Safety: the pointer is only compared and handed back to the platform, never dereferenced here;
// the kernel runs on one CPU with interrupts off, and a task's area is released before it is freed.
unsafe impl Send for LiveFx {}

impl LiveFx {
    /// The moves to make `fx` live, `None` when it already is; the registers belong to `fx` after.
    pub fn switch_to(&mut self, fx: *mut FxArea) -> Option<FxSwitch> {
        if self.0 == Some(fx) {
            return None;
        }
        Some(FxSwitch { save: self.0.replace(fx), load: fx })
    }

    /// `fx` is about to be freed: if the registers hold its state, that state is dead and is never
    /// saved (into freed memory).
    pub fn release(&mut self, fx: *mut FxArea) {
        if self.0 == Some(fx) {
            self.0 = None;
        }
    }

    /// The area whose state the registers hold.
    pub fn owner(&self) -> Option<*mut FxArea> {
        self.0
    }
}

/// Why the kernel was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Syscall,
    Timer,
    /// A CPU exception in user mode; `cr2` is meaningful for page faults.
    Exception {
        vector: u64,
        error: u64,
        cr2: u64,
    },
    /// Legacy interrupt line 1..15 fired (the PIC is already acknowledged).
    Irq(u8),
    /// An interrupt with nothing to do (spurious, unexpected); already acknowledged.
    Ignored,
}

/// How to leave the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Restore the frame with `iretq`.
    Iret,
    /// Restore it with `sysretq` (the task entered through `syscall`, so rcx/r11 are dead).
    Sysret,
    /// Nothing is runnable: halt until the next interrupt.
    Idle,
    /// Every task has ended; `ok` says whether the kernel's end-of-run checks passed.
    Halt { ok: bool },
}

/// Mnemonic and name of CPU exception `vector`.
pub fn exception_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point error"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        _ => ("#??", "reserved exception"),
    }
}

/// A page-fault error code in words a person can act on (empty for other vectors).
pub fn fault_detail(vector: u64, error: u64) -> &'static str {
    if vector != 14 {
        return "";
    }
    match (error & 1 != 0, error & 2 != 0, error & 16 != 0) {
        (_, _, true) => "instruction fetch",
        (false, false, _) => "read of an unmapped page",
        (false, true, _) => "write to an unmapped page",
        (true, false, _) => "read of a protected page",
        (true, true, _) => "write to a protected page",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_matches_the_entry_code() {
        // 15 general registers, vector, error, then the 5-word CPU frame.
        assert_eq!(core::mem::size_of::<TrapFrame>(), 22 * 8);
        assert_eq!(core::mem::offset_of!(TrapFrame, rax), 14 * 8);
        assert_eq!(core::mem::offset_of!(TrapFrame, rip), 17 * 8);
        assert_eq!(core::mem::align_of::<FxArea>(), 16);
    }

    #[test]
    fn fpu_state_moves_only_when_the_owner_changes() {
        let (mut a, mut b) = (FxArea([0; 512]), FxArea([0; 512]));
        let (a, b) = (&mut a as *mut FxArea, &mut b as *mut FxArea);
        let mut live = LiveFx::default();
        assert_eq!(live.switch_to(a), Some(FxSwitch { save: None, load: a }), "boot: nothing to save");
        assert_eq!(live.switch_to(a), None, "same task again: no move");
        assert_eq!(live.switch_to(b), Some(FxSwitch { save: Some(a), load: b }));
        live.release(a);
        assert_eq!(live.owner(), Some(b), "releasing another task's area leaves the registers' owner");
        live.release(b);
        assert_eq!(live.owner(), None);
        assert_eq!(live.switch_to(a), Some(FxSwitch { save: None, load: a }), "a released state is never saved");
    }

    #[test]
    fn exceptions_are_named_and_page_faults_explained() {
        assert_eq!(exception_name(14).0, "#PF");
        assert_eq!(exception_name(13).1, "general protection");
        assert_eq!(exception_name(9).0, "#??");
        assert_eq!(fault_detail(14, 0b111), "write to a protected page");
        assert_eq!(fault_detail(14, 0b10), "write to an unmapped page");
        assert_eq!(fault_detail(14, 0x10), "instruction fetch");
        assert_eq!(fault_detail(13, 0b111), "");
    }
}
