//! The WATOS microkernel: boot, memory, address spaces, processes, scheduling and validated syscalls.
//!
//! Design (see docs/ARCHITECTURE.md): a thin hardware layer around `kernel-core`, which holds every
//! decision that can be tested on the host. The kernel runs on one CPU with interrupts disabled
//! whenever kernel code runs; interrupts are taken only from user mode or from the idle `hlt`, always
//! on the single kernel stack, so no interrupt ever lands on a stack Rust code is using. Every trap
//! (syscall, exception, timer) saves the user registers into the current task, and the exit path
//! restores whichever task the scheduler picked: there are no per-task kernel stacks.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

#[macro_use]
mod serial;
mod arch;
mod boot;
mod entry;
mod mem;
mod time;
mod trap;

use kernel_core::heap::{LockedHeap, NoGrow};
use kernel_core::kernel::Kernel;
use kernel_core::paging::{FrameAlloc, PhysMem};
use mem::{DirectMap, PHYS_OFFSET};
use trap::{Hw, KernelState};

/// Where the kernel image is linked: physical address + this.
pub const KERNEL_VMA: u64 = 0xFFFF_FFFF_8000_0000;

#[global_allocator]
static HEAP: LockedHeap<NoGrow> = LockedHeap::new(NoGrow);

/// The kernel's state; locked by `trap_dispatch` (never contended: one CPU, interrupts off).
pub static KERNEL: spin::Mutex<Option<KernelState>> = spin::Mutex::new(None);

/// Called by the boot trampoline in long mode, on the kernel stack.
#[no_mangle]
extern "C" fn kmain(magic: u32, mbi: u32) -> ! {
    serial::init();
    boot::set_stack_canary();
    mem::init_heap();
    klog!("WATOS booting (multiboot magic {magic:#x}, info at {mbi:#x})");
    if magic != 0x2BAD_B002 {
        panic!("not started by a multiboot loader");
    }
    arch::init_gdt(boot::kstack_top(), boot::fault_stack());
    arch::init_idt();
    arch::init_syscall();
    let (smep, smap) = arch::enable_smep_smap();
    // The identity map of low memory was only for the jump to the higher half; user space starts
    // empty in every process, so clear it from the kernel's PML4 (entry 0) and flush the TLB.
    let root = boot::kernel_pml4();
    DirectMap.write_u64(root, 0);
    arch::set_cr3(root);
    klog!(
        "GDT, TSS, IDT and syscall MSRs installed; identity map removed; running at {:#x}",
        kmain as *const () as u64
    );
    klog!("SMEP {}, SMAP {}", if smep { "on" } else { "not available" }, if smap { "on" } else { "not available" });

    let info = mem::parse_multiboot(mbi as u64);
    let frames = mem::init_frames(&info, boot::image_phys());
    if !info.cmdline.is_empty() {
        klog!("command line: {}", info.cmdline);
    }
    if info.cmdline.split(' ').any(|w| w == "selftest=kernel-fault") {
        // Proves a kernel-mode exception is reported, not a silent triple fault (QEMU test).
        klog!("selftest: touching an unmapped address in kernel mode");
        // Safety: deliberately faulting; the page-fault handler reports and panics, never returns.
        unsafe { core::ptr::read_volatile(0x0000_0dea_d000_0000 as *const u64) };
    }
    let ram: u64 = info.available.iter().map(|r| r.1).sum();
    klog!("memory: {} MiB available, {} free frames, direct map at {PHYS_OFFSET:#x}", ram >> 20, frames.free_count());
    let mut clean_fx = kernel_core::trap::FxArea([0; 512]);
    arch::initial_fx_state(&mut clean_fx);
    let mut kernel = Kernel::new(
        Hw { loaded_root: root, clock: None, live_fx: Default::default() },
        DirectMap,
        frames,
        root,
        clean_fx,
    );
    // Whatever the firmware left mastering the bus is switched off, so every device that can DMA
    // later was switched on by a driver through a write the kernel saw (kernel_core::busmaster).
    let cleared = kernel_core::busmaster::disable_all(&mut kernel.platform);
    klog!("PCI: bus mastering switched off on {} function(s) the firmware had left on", cleared.len());
    for f in cleared {
        klog!("PCI: {} was bus-mastering", kernel_core::busmaster::Bdf(f));
    }
    // Drivers' ports are an allow-list: these windows, named legacy ports and configuration space
    // (kernel_core::pci_ports); the BARs cannot move afterwards, so the list stays true.
    kernel.io_windows = kernel_core::pci_ports::io_windows(&mut kernel.platform);
    kernel.irq_lines = kernel_core::pci_ports::interrupt_lines(&mut kernel.platform);
    for (f, first, last) in &kernel.io_windows {
        klog!("PCI: {}'s I/O ports {first:#06x}..={last:#06x}", kernel_core::busmaster::Bdf(*f));
    }
    // Monotonic time 0 is the end of calibration; the RTC is read right after it, so its reading is
    // the wall-clock time of monotonic time 0 (to within the reading's few milliseconds).
    kernel.platform.clock = match time::calibrate() {
        Ok(clock) => Some(clock),
        Err(why) => {
            klog!("TSC unusable ({why}); monotonic time counts timer ticks");
            None
        }
    };
    match kernel_core::rtc::read(&mut arch::CmosPorts) {
        Some(t) => {
            kernel.wall_at_boot_ns = t.to_unix().unwrap_or(kernel_core::rtc::FALLBACK_UNIX_SECS) * 1_000_000_000;
            klog!("RTC: {t} ({} s since 1970)", kernel.wall_at_boot_ns / 1_000_000_000);
        }
        None => klog!("RTC: unreadable; wall clock starts at {} s since 1970", kernel_core::rtc::FALLBACK_UNIX_SECS),
    }
    let Some(range) = info.initrd else { panic!("no initrd module (start QEMU with -initrd)") };
    let rd = match initrd::Initrd::parse(mem::initrd_bytes(range)) {
        Ok(rd) => rd,
        Err(e) => panic!("initrd is invalid: {e:?}"),
    };
    klog!("initrd: {} programs, {} bytes", rd.len(), range.1 - range.0);
    for entry in rd.entries() {
        kernel.add_program(entry.name, entry.data, entry.flags as u64);
        // A version 1 initrd has no send lists: its programs may call anyone.
        if let Some(programs) = entry.sends {
            kernel.limit_sends(entry.name, programs);
        }
        if let Some(f) = entry.device {
            kernel.assign_device(entry.name, f);
            klog!("{} drives PCI {}", entry.name, kernel_core::busmaster::Bdf(f));
        }
    }
    for entry in rd.entries().filter(|e| e.autostart()) {
        match kernel.spawn_image(entry.name) {
            Ok(id) => {
                klog!("started task {} ({}) generation {}", id.index, entry.name, id.generation);
                if entry.supervisor() {
                    kernel.supervisor = Some(id);
                    klog!("{} is the supervisor", entry.name);
                }
            }
            Err(e) => klog!("cannot start {}: {e}", entry.name),
        }
    }
    if kernel.live_tasks() == 0 {
        panic!("nothing to run");
    }
    *KERNEL.lock() = Some(kernel);
    arch::init_timer();
    serial::enable_receive_interrupt();
    arch::set_irq_masked(kernel_core::console::LINE, false);
    klog!("timer at {} Hz; scheduling", 1_000_000_000 / arch::TICK_NS);
    // Safety: everything the trap path needs is initialized; the idle loop takes the first timer
    // tick on the kernel stack and schedules the first task from there.
    unsafe { entry::idle_loop() }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    klog!("KERNEL PANIC: {info}");
    serial::exit_qemu(false)
}
