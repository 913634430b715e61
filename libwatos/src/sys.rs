//! Typed wrappers over the WATOS system calls (numbers and codes in `watos_abi`).
//!
//! Design: one raw `syscall6` in assembly, and a safe function per call that encodes arguments and
//! decodes `rax` into `Result<_, SysError>`. Calls that take pointers take slices, so ordinary code
//! cannot pass a bad pointer; `raw` is public for tests that must (the hostile program).

use core::arch::asm;
pub use watos_abi::{
    DeathInfo, ProgramInfo, Sys, SysError, TaskInfo, DEATH_EXIT, DEATH_FAULT, KILLED, MAP_WRITE, NOTIFY_DEATH,
    PROGRAM_RESTART, SELF_ID,
};

/// The raw `syscall` instruction: number and six arguments in, `rax` out. No validation here: the
/// kernel validates everything.
pub fn raw(nr: Sys, a: [u64; 6]) -> u64 {
    let ret: u64;
    // Safety: `syscall` transfers to the kernel, which may only write the registers named here
    // (rax; rcx and r11 are clobbered by the instruction itself) and never touches our memory except
    // through buffers we pass, which it validates. It preserves the stack and all other registers.
    unsafe {
        asm!("syscall",
            inlateout("rax") nr as u64 => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    ret
}

/// `raw`, also returning `rdx` as the kernel left it (`send` puts the needed length of a reply
/// that did not fit there).
pub fn raw_rdx(nr: Sys, a: [u64; 6]) -> (u64, u64) {
    let (ret, rdx): (u64, u64);
    // Safety: as in `raw`; `rdx` is declared an output, so the compiler does not assume it kept.
    unsafe {
        asm!("syscall",
            inlateout("rax") nr as u64 => ret,
            in("rdi") a[0], in("rsi") a[1], inlateout("rdx") a[2] => rdx, in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    (ret, rdx)
}

fn call(nr: Sys, a: [u64; 6]) -> Result<u64, SysError> {
    SysError::decode(raw(nr, a))
}

/// Ends the calling process with `code`.
pub fn exit(code: i64) -> ! {
    raw(Sys::Exit, [code as u64, 0, 0, 0, 0, 0]);
    // The kernel never returns from exit; if it somehow did, do not run on.
    loop {
        core::hint::spin_loop();
    }
}

/// Gives the CPU to the next runnable task.
pub fn yield_now() {
    let _ = call(Sys::Yield, [0; 6]);
}

/// Writes bytes to the console; returns how many were written.
pub fn console_write(bytes: &[u8]) -> Result<usize, SysError> {
    call(Sys::ConsoleWrite, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]).map(|n| n as usize)
}

/// Takes what the console has received (at most `buf.len()`, bounded by the kernel's
/// `MAX_CONSOLE_READ`), without waiting; 0 if nothing was typed.
pub fn console_read(buf: &mut [u8]) -> Result<usize, SysError> {
    let len = buf.len().min(watos_abi::MAX_CONSOLE_READ);
    call(Sys::ConsoleRead, [buf.as_mut_ptr() as u64, len as u64, 0, 0, 0, 0]).map(|n| n as usize)
}

/// Makes task `id` the owner of console input (the only task `console_read` serves). The
/// supervisor or the current owner only; `NotPermitted` for anyone else.
pub fn console_give(id: u64) -> Result<(), SysError> {
    call(Sys::ConsoleGive, [id, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Like `console_read`, but blocks until at least one byte has been received (the kernel buffers
/// input from COM1's interrupt), so an interactive program need not poll. Returns 0 only for an
/// empty `buf`.
pub fn console_read_wait(buf: &mut [u8]) -> Result<usize, SysError> {
    let len = buf.len().min(watos_abi::MAX_CONSOLE_READ);
    call(Sys::ConsoleRead, [buf.as_mut_ptr() as u64, len as u64, watos_abi::CONSOLE_WAIT, 0, 0, 0]).map(|n| n as usize)
}

/// Sleeps for at least `ns` nanoseconds (the kernel's tick is 1 ms).
pub fn sleep_ns(ns: u64) {
    let _ = call(Sys::Sleep, [ns, 0, 0, 0, 0, 0]);
}

/// Nanoseconds since boot, monotonic.
pub fn monotonic_ns() -> u64 {
    call(Sys::MonotonicNs, [0; 6]).unwrap_or(0)
}

pub use kernel_core::rtc::DateTime;

/// Nanoseconds since 1970-01-01 00:00:00 UTC: the kernel's RTC reading at boot plus the monotonic
/// time since. (`DateTime::from_unix` turns its seconds into a calendar date.)
pub fn wall_clock_ns() -> u64 {
    call(Sys::WallClock, [0; 6]).unwrap_or(0)
}

/// Maps `len` bytes (rounded up to pages) of zeroed memory; writable if `flags` has `MAP_WRITE`.
pub fn map_anon(len: usize, flags: u64) -> Result<*mut u8, SysError> {
    call(Sys::MapAnon, [len as u64, flags, 0, 0, 0, 0]).map(|a| a as *mut u8)
}

/// This task's id (generation << 16 | slot).
pub fn task_id() -> u64 {
    call(Sys::TaskId, [0; 6]).unwrap_or(0)
}

/// Information about task `id` (`SELF_ID` for the caller).
pub fn task_info(id: u64) -> Result<TaskInfo, SysError> {
    let mut info = TaskInfo::default();
    let size = core::mem::size_of::<TaskInfo>() as u64;
    call(Sys::TaskInfo, [id, &mut info as *mut TaskInfo as u64, size, 0, 0, 0])?;
    Ok(info)
}

/// The id of the live task called `name`. `name` must end with a NUL byte.
pub fn find_task(name: &core::ffi::CStr) -> Result<u64, SysError> {
    call(Sys::FindTask, [name.as_ptr() as u64, 0, 0, 0, 0, 0])
}

/// Starts the initrd program called `name` (supervisor only); returns its id.
pub fn spawn(name: &core::ffi::CStr) -> Result<u64, SysError> {
    call(Sys::Spawn, [name.as_ptr() as u64, 0, 0, 0, 0, 0])
}

/// The oldest death not yet collected (supervisor only); `None` when there is none.
pub fn next_death() -> Result<Option<DeathInfo>, SysError> {
    let mut info = DeathInfo::default();
    let n = call(Sys::NextDeath, [&mut info as *mut DeathInfo as u64, DeathInfo::SIZE as u64, 0, 0, 0, 0])?;
    Ok((n == 1).then_some(info))
}

/// Program `index` of the initrd manifest (name, flags, size); `None` past the last one.
pub fn program_info(index: usize) -> Result<Option<ProgramInfo>, SysError> {
    const _: () = assert!(core::mem::size_of::<ProgramInfo>() == ProgramInfo::SIZE);
    let mut info = ProgramInfo::default();
    let n = call(
        Sys::ProgramInfo,
        [index as u64, &mut info as *mut ProgramInfo as u64, ProgramInfo::SIZE as u64, 0, 0, 0],
    )?;
    Ok((n == 1).then_some(info))
}

/// Every program in the initrd manifest, in order.
pub fn programs() -> alloc::vec::Vec<ProgramInfo> {
    (0..).map_while(|i| program_info(i).ok().flatten()).collect()
}

/// Ends task `id` as a fault with code `KILLED` (supervisor only).
pub fn kill(id: u64) -> Result<(), SysError> {
    call(Sys::Kill, [id, 0, 0, 0, 0, 0]).map(|_| ())
}
