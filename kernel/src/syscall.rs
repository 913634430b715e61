//! System calls: one `match` over the ABI's numbers.
//!
//! Design (after Hubris): a handler returns `Ok(value)` or `Err(UserError)`. `Recoverable` errors go
//! back to the caller in `rax`; `Fault` (unused today; the IPC step will use it for protocol abuse
//! such as over-long replies) kills the task like a CPU exception. Handlers never read user memory
//! except through kernel-core's `usermem`, which validates against the caller's page tables and
//! copies once. `Flow` tells the trap path whether the caller keeps the CPU.

use crate::mem::DirectMap;
use crate::task::{Death, Kernel};
use alloc::string::String;
use kernel_core::abi::{Sys, SysError, TaskId, TaskInfo, ANON_LIMIT, MAP_WRITE, MAX_STR, MAX_WRITE, PAGE, SELF_ID};
use kernel_core::paging::Perm;
use kernel_core::sched::SchedState;
use kernel_core::usermem::{check_range, copy_in, copy_in_str, copy_out};

/// What went wrong in a syscall.
pub enum UserError {
    /// Reported to the caller.
    Recoverable(SysError),
    /// Kills the caller (with this reason in the log).
    Fault(&'static str),
}

impl From<SysError> for UserError {
    fn from(e: SysError) -> Self {
        UserError::Recoverable(e)
    }
}

/// Whether the caller keeps running after the call.
#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Reschedule,
}

/// Handles the syscall of task `c`, whose registers are saved in its frame. Returns true if the
/// scheduler should pick again.
pub fn dispatch(k: &mut Kernel, c: usize) -> bool {
    let Some(task) = k.task_mut(c) else { return true };
    task.syscalls += 1;
    let f = task.frame;
    let args = [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9];
    let mut flow = Flow::Continue;
    let result = match Sys::from_raw(f.rax) {
        None => Err(UserError::Recoverable(SysError::BadSyscall)),
        Some(Sys::Exit) => {
            k.reap(c, Death::Exit(args[0] as i64));
            return true;
        }
        Some(Sys::Yield) => {
            flow = Flow::Reschedule;
            Ok(0)
        }
        Some(Sys::ConsoleWrite) => console_write(k, c, args[0], args[1]),
        Some(Sys::Sleep) => {
            let ticks = args[0].div_ceil(crate::arch::TICK_NS).max(1);
            k.sched[c] = SchedState::Sleeping { until: k.ticks.saturating_add(ticks) };
            flow = Flow::Reschedule;
            Ok(0)
        }
        Some(Sys::MonotonicNs) => Ok(k.now_ns()),
        Some(Sys::MapAnon) => map_anon(k, c, args[0], args[1]),
        Some(Sys::TaskId) => Ok(k.task(c).map_or(0, |t| t.id.to_raw())),
        Some(Sys::TaskInfo) => task_info(k, c, args[0], args[1], args[2]),
        Some(Sys::FindTask) => find_task(k, c, args[0]),
    };
    let rax = match result {
        Ok(v) => v,
        Err(UserError::Recoverable(e)) => e.to_ret(),
        Err(UserError::Fault(why)) => {
            let name = k.task(c).map_or(String::new(), |t| t.name.clone());
            klog!("task {c} ({name}) killed by the kernel: {why}");
            k.reap(c, Death::Fault);
            return true;
        }
    };
    if let Some(task) = k.task_mut(c) {
        task.frame.rax = rax;
    }
    flow == Flow::Reschedule
}

fn space_of(k: &Kernel, c: usize) -> Result<kernel_core::paging::AddressSpace, UserError> {
    k.task(c).map(|t| t.space).ok_or(UserError::Fault("no such task"))
}

fn console_write(k: &mut Kernel, c: usize, ptr: u64, len: u64) -> Result<u64, UserError> {
    check_range(ptr, len)?;
    if len > MAX_WRITE as u64 {
        return Err(SysError::InvalidArgument.into());
    }
    let bytes = copy_in(&space_of(k, c)?, &DirectMap, ptr, len)?;
    crate::serial::write_bytes(&bytes);
    Ok(len)
}

fn map_anon(k: &mut Kernel, c: usize, len: u64, flags: u64) -> Result<u64, UserError> {
    if len == 0 || flags & !MAP_WRITE != 0 {
        return Err(SysError::InvalidArgument.into());
    }
    let pages = len.div_ceil(PAGE);
    let task = k.task(c).ok_or(UserError::Fault("no such task"))?;
    let (va, space) = (task.anon_next, task.space);
    if task.anon_bytes.saturating_add(pages * PAGE) > ANON_LIMIT || (k.frames.free_count() as u64) < pages + 16 {
        return Err(SysError::OutOfMemory.into());
    }
    // Frames mapped before a failure stay owned by the space and are freed with it.
    k.map_zeroed(&space, va, pages, Perm { write: flags & MAP_WRITE != 0, exec: false })
        .map_err(|()| SysError::OutOfMemory)?;
    let task = k.task_mut(c).ok_or(UserError::Fault("no such task"))?;
    // One unmapped guard page after every mapping, so overruns fault instead of spilling over.
    task.anon_next = va + (pages + 1) * PAGE;
    task.anon_bytes += pages * PAGE;
    Ok(va)
}

fn task_info(k: &mut Kernel, c: usize, id: u64, out: u64, len: u64) -> Result<u64, UserError> {
    check_range(out, len)?;
    let size = core::mem::size_of::<TaskInfo>() as u64;
    if len < size {
        return Err(SysError::InvalidArgument.into());
    }
    let target = if id == SELF_ID {
        c
    } else {
        TaskId::from_raw(id).and_then(|id| k.lookup(id)).ok_or(SysError::NoSuchTask)?
    };
    let t = k.task(target).ok_or(SysError::NoSuchTask)?;
    let mut info = TaskInfo { id: t.id.to_raw(), ticks: t.ticks, syscalls: t.syscalls, anon_bytes: t.anon_bytes, name: [0; 32] };
    let n = t.name.len().min(31);
    info.name[..n].copy_from_slice(&t.name.as_bytes()[..n]);
    copy_out(&space_of(k, c)?, &mut DirectMap, out, &info.to_bytes())?;
    Ok(size)
}

fn find_task(k: &mut Kernel, c: usize, name_ptr: u64) -> Result<u64, UserError> {
    let bytes = copy_in_str(&space_of(k, c)?, &DirectMap, name_ptr, MAX_STR)?;
    let name = core::str::from_utf8(&bytes).map_err(|_| SysError::BadString)?;
    let found = k.slots.iter().filter_map(|s| s.task.as_ref()).find(|t| t.name == name);
    Ok(found.ok_or(SysError::NoSuchTask)?.id.to_raw())
}
