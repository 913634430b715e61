//! x86-64 setup: GDT and TSS, IDT, the legacy PIC and PIT timer, the `syscall` MSRs, control
//! registers.
//!
//! Design: everything here is written once, at boot, on one CPU, before interrupts are first enabled,
//! which is what makes the `static mut` tables sound. Segment layout is dictated by `sysret`: kernel
//! code 0x08, kernel data 0x10, user data 0x18 (0x1b with RPL 3), user code 0x20 (0x23), TSS 0x28.
//! The timer is the PIT at ~1 kHz on IRQ 0 and COM1's receive interrupt is IRQ 4; every other IRQ
//! stays masked until a driver (in user space) binds it.

use crate::entry::{isr_table, syscall_entry, KSTACK_TOP};
use crate::serial::outb;
use core::arch::asm;

use kernel_core::trap::FxArea;

pub const KERNEL_CS: u64 = 0x08;
const TSS_SEL: u16 = 0x28;

/// Timer vector (IRQ 0 after remapping the PIC to 32..47).
pub const TIMER_VECTOR: u64 = 32;
/// PIT input clock / divisor: 1193182 Hz / 1193 ≈ 1000.15 Hz.
const PIT_DIVISOR: u16 = 1193;
/// Length of one tick in nanoseconds (1193 / 1193182 s).
pub const TICK_NS: u64 = 999_847;

#[repr(C, packed)]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    _reserved: u32,
}

static mut TSS: Tss =
    Tss { _reserved0: 0, rsp: [0; 3], _reserved1: 0, ist: [0; 7], _reserved2: 0, _reserved3: 0, iomap_base: 104 };
static mut GDT: [u64; 7] = [
    0,
    0x00AF_9A00_0000_FFFF, // kernel code, 64-bit
    0x00CF_9200_0000_FFFF, // kernel data
    0x00CF_F200_0000_FFFF, // user data, DPL 3
    0x00AF_FA00_0000_FFFF, // user code, 64-bit, DPL 3
    0,                     // TSS (two slots)
    0,
];
static mut IDT: [IdtEntry; 256] =
    [IdtEntry { offset_low: 0, selector: 0, ist: 0, attributes: 0, offset_mid: 0, offset_high: 0, _reserved: 0 }; 256];

/// Loads the GDT with the TSS (RSP0 = the kernel stack, IST1 = the double-fault stack) and reloads
/// every segment register.
pub fn init_gdt(kstack_top: u64, fault_stack_top: u64) {
    // Safety: single-threaded boot, interrupts off; nothing else references these statics yet.
    unsafe {
        KSTACK_TOP = kstack_top;
        let tss = &raw mut TSS;
        (*tss).rsp[0] = kstack_top;
        (*tss).ist[0] = fault_stack_top;
        let base = tss as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let gdt = &raw mut GDT;
        (*gdt)[5] = (limit & 0xFFFF)
            | (base & 0xFF_FFFF) << 16
            | 0x89 << 40
            | ((limit >> 16) & 0xF) << 48
            | ((base >> 24) & 0xFF) << 56;
        (*gdt)[6] = base >> 32;
        let ptr = DescriptorPointer { limit: (core::mem::size_of::<[u64; 7]>() - 1) as u16, base: gdt as u64 };
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {tmp:e}, 0x10",
            "mov ds, {tmp:x}",
            "mov es, {tmp:x}",
            "mov ss, {tmp:x}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:x}",
            "mov gs, {tmp:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = const KERNEL_CS,
            tmp = out(reg) _,
            tss = in(reg) TSS_SEL,
        );
    }
}

/// Points vectors 0..47 at the entry stubs (interrupt gates, so IF is cleared on entry).
pub fn init_idt() {
    // Safety: single-threaded boot; the IDT is static and lives forever; the stubs are valid code.
    unsafe {
        let idt = &raw mut IDT;
        for (v, &handler) in isr_table.iter().enumerate() {
            (*idt)[v] = IdtEntry {
                offset_low: handler as u16,
                selector: KERNEL_CS as u16,
                ist: if v == 8 { 1 } else { 0 },
                attributes: 0x8E,
                offset_mid: (handler >> 16) as u16,
                offset_high: (handler >> 32) as u32,
                _reserved: 0,
            };
        }
        let ptr = DescriptorPointer { limit: (core::mem::size_of::<[IdtEntry; 256]>() - 1) as u16, base: idt as u64 };
        asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags));
    }
}

/// Remaps the PIC to vectors 32..47, masks everything but the timer, and starts the PIT.
pub fn init_timer() {
    let seq = [(0x20, 0x11), (0xA0, 0x11), (0x21, 32), (0xA1, 40), (0x21, 4), (0xA1, 2), (0x21, 1), (0xA1, 1)];
    for (port, value) in seq {
        outb(port, value);
    }
    outb(0x21, 0xFE);
    outb(0xA1, 0xFF);
    outb(0x43, 0x34);
    outb(0x40, PIT_DIVISOR as u8);
    outb(0x40, (PIT_DIVISOR >> 8) as u8);
}

/// Current PIC masks (bit set = line masked): the timer alone is open at boot.
static PIC_MASK: core::sync::atomic::AtomicU16 = core::sync::atomic::AtomicU16::new(0xFFFE);

/// Masks or unmasks line 1..15; the cascade (line 2) is open whenever any slave line is.
pub fn set_irq_masked(line: u8, masked: bool) {
    use core::sync::atomic::Ordering::Relaxed;
    let mut mask = PIC_MASK.load(Relaxed);
    if masked {
        mask |= 1 << line;
    } else {
        mask &= !(1 << line);
    }
    if mask & 0xFF00 != 0xFF00 {
        mask &= !(1 << 2);
    } else {
        mask |= 1 << 2;
    }
    PIC_MASK.store(mask, Relaxed);
    outb(0x21, mask as u8);
    outb(0xA1, (mask >> 8) as u8);
}

/// The CMOS registers behind the RTC's index (0x70) and data (0x71) ports, read once at boot
/// (afterwards the ports are left to drivers, such as the test `rtc-driver`).
pub struct CmosPorts;

impl kernel_core::rtc::Cmos for CmosPorts {
    fn read(&mut self, reg: u8) -> u8 {
        outb(0x70, reg);
        crate::serial::inb(0x71)
    }
}

/// Port input of `width` bytes (1, 2 or 4).
pub fn port_in(port: u16, width: u8) -> u32 {
    let value: u32;
    // Safety: port I/O has no memory effects; kernel-core only lets drivers reach device ports.
    unsafe {
        match width {
            1 => asm!("in al, dx", out("eax") value, in("dx") port, options(nomem, nostack)),
            2 => asm!("in ax, dx", out("eax") value, in("dx") port, options(nomem, nostack)),
            _ => asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack)),
        }
    }
    match width {
        1 => value & 0xFF,
        2 => value & 0xFFFF,
        _ => value,
    }
}

/// Port output of `width` bytes (1, 2 or 4).
pub fn port_out(port: u16, width: u8, value: u32) {
    // Safety: as for `port_in`.
    unsafe {
        match width {
            1 => asm!("out dx, al", in("dx") port, in("al") value as u8, options(nomem, nostack)),
            2 => asm!("out dx, ax", in("dx") port, in("ax") value as u16, options(nomem, nostack)),
            _ => asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)),
        }
    }
}

/// Acknowledges an IRQ at the PIC.
pub fn end_of_interrupt(vector: u64) {
    if vector >= 40 {
        outb(0xA0, 0x20);
    }
    outb(0x20, 0x20);
}

fn wrmsr(msr: u32, value: u64) {
    // Safety: only called for the architectural syscall MSRs, at boot.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// `syscall` enters at `syscall_entry` with CS 0x08; `sysret` returns with CS 0x23 / SS 0x1b;
/// IF, TF, DF, AC and NT are cleared on entry. (EFER.SCE was set by the boot trampoline.)
pub fn init_syscall() {
    wrmsr(0xC000_0081, (0x10u64 << 48) | (KERNEL_CS << 32));
    wrmsr(0xC000_0082, syscall_entry as *const () as u64);
    wrmsr(0xC000_0084, 0x4_4700);
}

/// Switches to the address space whose PML4 is at `root`.
pub fn set_cr3(root: u64) {
    // Safety: `root` is a PML4 whose kernel half is the kernel's own (AddressSpace::new copies it),
    // so the code and stack we are running on stay mapped.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

pub fn cr2() -> u64 {
    let v: u64;
    // Safety: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// A clean FPU/SSE state (x87 reset, MXCSR default) to start every task from.
pub fn initial_fx_state(area: &mut FxArea) {
    let mxcsr: u32 = 0x1F80;
    // Safety: `area` is a 16-byte aligned 512-byte buffer; SSE was enabled by the boot code.
    unsafe {
        asm!("fninit", "ldmxcsr [{m}]", "fxsave64 [{a}]", m = in(reg) &mxcsr, a = in(reg) area.0.as_mut_ptr(), options(nostack))
    };
}

/// Saves the FPU/SSE registers into `area`.
pub fn fx_save(area: *mut FxArea) {
    // Safety: kernel-core hands out only live tasks' boxed areas (16-byte aligned, 512 bytes,
    // released before they are freed); fxsave writes exactly those 512 bytes.
    unsafe { asm!("fxsave64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
}

/// Loads the FPU/SSE registers from `area`.
pub fn fx_restore(area: *mut FxArea) {
    // Safety: as for `fx_save`; the area holds a state fxsave wrote (a task's own, or the clean
    // state from `initial_fx_state`), so fxrstor cannot fault on reserved MXCSR bits.
    unsafe { asm!("fxrstor64 [{}]", in(reg) area, options(nostack, preserves_flags, readonly)) };
}

/// Turns on SMEP and SMAP where the CPU has them (QEMU's default TCG model does not): the kernel never
/// executes or touches user pages through user addresses (it copies through the direct map), so both
/// only ever catch kernel bugs. Returns which were enabled.
pub fn enable_smep_smap() -> (bool, bool) {
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 {
        return (false, false);
    }
    let ebx = core::arch::x86_64::__cpuid_count(7, 0).ebx;
    let (smep, smap) = (ebx & (1 << 7) != 0, ebx & (1 << 20) != 0);
    let bits = if smep { 1u64 << 20 } else { 0 } | if smap { 1u64 << 21 } else { 0 };
    if bits != 0 {
        // Safety: setting CR4.SMEP/SMAP only restricts what ring 0 may do to user pages, which this
        // kernel never does; the bits are set only when CPUID reports them.
        unsafe {
            asm!("mov {t}, cr4", "or {t}, {b}", "mov cr4, {t}", t = out(reg) _, b = in(reg) bits, options(nostack))
        };
    }
    (smep, smap)
}
