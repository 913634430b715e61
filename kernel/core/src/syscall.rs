//! System calls: one `match` over the ABI's numbers.
//!
//! Design (after Hubris): a handler returns `Ok(value)` or `Err(UserError)`. `Recoverable` errors go
//! back to the caller in `rax`; `Fault` (protocol abuse such as a reply longer than the
//! caller's reply buffer) kills the task like a CPU exception. Handlers never read user memory
//! except through `usermem`, which validates against the caller's page tables and copies once.

use crate::abi::{
    DeathInfo, ProgramInfo, Sys, SysError, TaskId, TaskInfo, ANON_LIMIT, KILLED, MAP_WRITE, MAX_STR, MAX_WRITE, PAGE,
    SELF_ID,
};
use crate::devices;
use crate::ipc;
use crate::kernel::{klog, Death, Kernel, Platform};
use crate::paging::{AddressSpace, FrameAlloc, Perm, PhysMem};
use crate::sched::SchedState;
use crate::usermem::{check_range, copy_in, copy_in_str, copy_out};

/// What went wrong in a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Handles the syscall of task `c`, whose registers are saved in its frame. Returns true if the
/// scheduler should pick again (the caller yielded, slept, blocked, or is gone).
pub fn dispatch<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, c: usize) -> bool {
    let Some(task) = k.task_mut(c) else { return true };
    task.syscalls += 1;
    let f = task.frame;
    let args = [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9];
    let mut reschedule = false;
    // `Ok(None)`: the caller's result is written later (it blocked) or it is gone.
    let result: Result<Option<u64>, UserError> = match Sys::from_raw(f.rax) {
        None => Err(SysError::BadSyscall.into()),
        Some(Sys::Exit) => {
            k.reap(c, Death::Exit(args[0] as i64));
            Ok(None)
        }
        Some(Sys::Yield) => {
            reschedule = true;
            Ok(Some(0))
        }
        Some(Sys::ConsoleWrite) => console_write(k, c, args[0], args[1]).map(Some),
        Some(Sys::ConsoleRead) => crate::console::read(k, c, args[0], args[1], args[2]),
        Some(Sys::ConsoleGive) => crate::console::give(k, c, args[0]).map(Some),
        Some(Sys::Sleep) => {
            // Woken by the first tick at or after the deadline (at least the next one).
            k.sched[c] = SchedState::Sleeping { until: k.now_ns().saturating_add(args[0].max(1)) };
            Ok(Some(0))
        }
        Some(Sys::MonotonicNs) => Ok(Some(k.now_ns())),
        Some(Sys::WallClock) => Ok(Some(k.wall_clock_ns())),
        Some(Sys::MapAnon) => map_anon(k, c, args[0], args[1]).map(Some),
        Some(Sys::TaskId) => Ok(k.task(c).map(|t| t.id.to_raw())),
        Some(Sys::TaskInfo) => task_info(k, c, args[0], args[1], args[2]).map(Some),
        Some(Sys::FindTask) => find_task(k, c, args[0]).map(Some),
        Some(Sys::Send) => ipc::send(k, c, args),
        Some(Sys::Receive) => ipc::receive(k, c, args),
        Some(Sys::Reply) => ipc::reply(k, c, args).map(Some),
        Some(Sys::BorrowRead) => ipc::borrow(k, c, args, false).map(Some),
        Some(Sys::BorrowWrite) => ipc::borrow(k, c, args, true).map(Some),
        Some(Sys::Notify) => ipc::notify(k, c, args).map(Some),
        Some(Sys::Spawn) => spawn(k, c, args[0]).map(Some),
        Some(Sys::NextDeath) => next_death(k, c, args[0], args[1]).map(Some),
        Some(Sys::ProgramInfo) => program_info(k, c, args[0], args[1], args[2]).map(Some),
        Some(Sys::Kill) => kill(k, c, args[0]).map(Some),
        Some(Sys::SetTimer) => {
            // Posted by the first tick at or after the deadline (one in the past fires on the next tick).
            if let Some(t) = k.task_mut(c) {
                t.timer = (args[1] != 0).then_some((args[0], args[1]));
            }
            Ok(Some(0))
        }
        Some(Sys::IoIn) => devices::io_in(k, c, args).map(Some),
        Some(Sys::IoOut) => devices::io_out(k, c, args).map(Some),
        Some(Sys::IrqBind) => devices::irq_bind(k, c, args).map(Some),
        Some(Sys::IrqAck) => devices::irq_ack(k, c, args).map(Some),
        Some(Sys::MapDma) => devices::map_dma(k, c, args).map(Some),
        Some(Sys::LeaseInfo) => ipc::lease_info(k, c, args).map(Some),
    };
    let rax = match result {
        Ok(v) => v,
        Err(UserError::Recoverable(e)) => Some(e.to_ret()),
        Err(UserError::Fault(why)) => {
            let name = k.task(c).map(|t| t.name.clone()).unwrap_or_default();
            klog!(k, "task {c} ({name}) killed by the kernel: {why}");
            k.reap(c, Death::Fault(u64::MAX));
            return true;
        }
    };
    let Some(task) = k.task_mut(c) else { return true };
    if let Some(rax) = rax {
        task.frame.rax = rax;
    }
    reschedule || k.sched[c] != SchedState::Runnable
}

fn space_of<P: Platform, M: PhysMem, F: FrameAlloc>(k: &Kernel<P, M, F>, c: usize) -> Result<AddressSpace, UserError> {
    k.task(c).map(|t| t.space).ok_or(UserError::Fault("no such task"))
}

fn console_write<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    ptr: u64,
    len: u64,
) -> Result<u64, UserError> {
    check_range(ptr, len)?;
    if len > MAX_WRITE as u64 {
        return Err(SysError::InvalidArgument.into());
    }
    let bytes = copy_in(&space_of(k, c)?, &k.mem, ptr, len)?;
    // Fields, not `k.task`, so the task table and the console state are borrowed apart.
    let task = k.slots.get(c).and_then(|s| s.task.as_ref()).ok_or(UserError::Fault("no such task"))?;
    let names = k.images.iter().map(|i| i.name.as_str());
    let marked = k.console_out.task_write(task.id, &task.name, names, &bytes);
    k.platform.console(&marked);
    Ok(len)
}

fn map_anon<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    len: u64,
    flags: u64,
) -> Result<u64, UserError> {
    if len == 0 || flags & !MAP_WRITE != 0 {
        return Err(SysError::InvalidArgument.into());
    }
    let pages = len.div_ceil(PAGE);
    // A length within a page of 2^64 rounds up past it: no such mapping can exist.
    let bytes = pages.checked_mul(PAGE).ok_or(SysError::OutOfMemory)?;
    let task = k.task(c).ok_or(UserError::Fault("no such task"))?;
    let (va, space) = (task.anon_next, task.space);
    // Keep a margin for the page tables the mapping may need.
    if task.anon_bytes.saturating_add(bytes) > ANON_LIMIT || (k.frames.free_count() as u64) < pages.saturating_add(16) {
        return Err(SysError::OutOfMemory.into());
    }
    k.map_zeroed(&space, va, pages, Perm { write: flags & MAP_WRITE != 0, exec: false })?;
    let task = k.task_mut(c).ok_or(UserError::Fault("no such task"))?;
    // One unmapped guard page after every mapping, so overruns fault instead of spilling over.
    task.anon_next = va + bytes + PAGE;
    task.anon_bytes += bytes;
    Ok(va)
}

/// An output buffer of `len` bytes at `out` for a record of `size` bytes: a valid range, large enough.
fn check_out_buf(out: u64, len: u64, size: usize) -> Result<(), UserError> {
    check_range(out, len)?;
    if len < size as u64 {
        return Err(SysError::InvalidArgument.into());
    }
    Ok(())
}

/// A name in a record's 32-byte field: cut to 31 bytes so it always ends in a NUL.
fn fixed_name(name: &str) -> [u8; 32] {
    let mut field = [0u8; 32];
    let n = name.len().min(31);
    field[..n].copy_from_slice(&name.as_bytes()[..n]);
    field
}

/// A task or program name copied in from user space; not UTF-8 is `BadString`.
fn utf8_name(bytes: &[u8]) -> Result<&str, UserError> {
    Ok(core::str::from_utf8(bytes).map_err(|_| SysError::BadString)?)
}

fn task_info<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    id: u64,
    out: u64,
    len: u64,
) -> Result<u64, UserError> {
    check_out_buf(out, len, TaskInfo::SIZE)?;
    let target =
        if id == SELF_ID { c } else { TaskId::from_raw(id).and_then(|id| k.lookup(id)).ok_or(SysError::NoSuchTask)? };
    let t = k.task(target).ok_or(SysError::NoSuchTask)?;
    let info = TaskInfo {
        id: t.id.to_raw(),
        ticks: t.ticks,
        syscalls: t.syscalls,
        anon_bytes: t.anon_bytes,
        name: fixed_name(&t.name),
    };
    let space = space_of(k, c)?;
    copy_out(&space, &mut k.mem, out, &info.to_bytes())?;
    Ok(TaskInfo::SIZE as u64)
}

fn find_task<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    name_ptr: u64,
) -> Result<u64, UserError> {
    let bytes = copy_in_str(&space_of(k, c)?, &k.mem, name_ptr, MAX_STR)?;
    let name = utf8_name(&bytes)?;
    let found = k.slots.iter().filter_map(|s| s.task.as_ref()).find(|t| t.name == name);
    Ok(found.ok_or(SysError::NoSuchTask)?.id.to_raw())
}

fn require_supervisor<P: Platform, M: PhysMem, F: FrameAlloc>(k: &Kernel<P, M, F>, c: usize) -> Result<(), UserError> {
    let me = k.task(c).map(|t| t.id);
    if me.is_none() || me != k.supervisor {
        return Err(SysError::NotPermitted.into());
    }
    Ok(())
}

fn spawn<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    name_ptr: u64,
) -> Result<u64, UserError> {
    require_supervisor(k, c)?;
    let bytes = copy_in_str(&space_of(k, c)?, &k.mem, name_ptr, MAX_STR)?;
    let name = utf8_name(&bytes)?;
    if !k.images.iter().any(|i| i.name == name) {
        return Err(SysError::NoSuchTask.into());
    }
    match k.spawn_image(name) {
        Ok(id) => {
            klog!(k, "started task {} ({name}) generation {} for the supervisor", id.index, id.generation);
            Ok(id.to_raw())
        }
        Err(why) => {
            klog!(k, "cannot start {name}: {why}");
            Err(SysError::OutOfMemory.into())
        }
    }
}

fn program_info<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    index: u64,
    out: u64,
    len: u64,
) -> Result<u64, UserError> {
    check_out_buf(out, len, ProgramInfo::SIZE)?;
    let Some(image) = usize::try_from(index).ok().and_then(|i| k.images.get(i)) else { return Ok(0) };
    let info = ProgramInfo {
        flags: image.flags,
        size: image.bytes.len() as u64,
        reserved: [0; 2],
        name: fixed_name(&image.name),
    };
    copy_out(&space_of(k, c)?, &mut k.mem, out, &info.to_bytes())?;
    Ok(1)
}

fn kill<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, c: usize, id: u64) -> Result<u64, UserError> {
    require_supervisor(k, c)?;
    let target = TaskId::from_raw(id).ok_or(SysError::NoSuchTask)?;
    let slot = k.lookup(target).ok_or(SysError::TaskDied)?;
    if slot == c {
        return Err(SysError::InvalidArgument.into());
    }
    let name = k.task(slot).map(|t| t.name.clone()).unwrap_or_default();
    klog!(k, "task {slot} ({name}) killed by the supervisor");
    k.reap(slot, Death::Fault(KILLED));
    Ok(0)
}

fn next_death<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    out: u64,
    len: u64,
) -> Result<u64, UserError> {
    require_supervisor(k, c)?;
    check_range(out, len)?;
    if len < DeathInfo::SIZE as u64 {
        return Err(SysError::InvalidArgument.into());
    }
    let Some(info) = k.deaths.front().copied() else { return Ok(0) };
    copy_out(&space_of(k, c)?, &mut k.mem, out, &info.to_bytes())?;
    k.deaths.pop_front();
    Ok(1)
}
