//! Console input: what COM1 receives, taken by the kernel when the UART interrupts, and the tasks
//! waiting in `console_read` for it.
//!
//! Design: the UART raises IRQ 4 for every received byte (FIFO trigger level 1); the kernel drains
//! the whole receive FIFO into its own buffer (`INPUT_BUFFER` bytes; beyond that input is dropped
//! and counted), so a program that reads rarely loses nothing to the UART's 16-byte FIFO, and the
//! line drops so the next byte makes a fresh edge at the (edge-triggered) PIC. `console_read` hands
//! out what is buffered; with `CONSOLE_WAIT` and nothing buffered the caller blocks until the next
//! interrupt brings input, which goes to the waiter that has waited longest. Every read also drains
//! the UART first (by polling), so input is never stranded if an interrupt is lost, and the host
//! tests, whose platform has no interrupts, see the same bytes. The buffer is validated writable
//! before the caller blocks and before any byte is taken, so a bad pointer loses no input.
//!
//! Input has one owner, the foreground program: only it may `console_read` (others get
//! `NotPermitted`, so no task can take typed input ahead of the shell). The first program the
//! manifest flags CONSOLE to start while no live task owns the console becomes its owner; the
//! supervisor or the owner passes it on with `console_give`, which refuses the old owner's waiting
//! read (`NotPermitted`) rather than hand it the new owner's input.

use crate::abi::{SysError, TaskId, CONSOLE_WAIT, MAX_CONSOLE_READ};
use crate::kernel::{Kernel, Platform};
use crate::paging::{FrameAlloc, PhysMem};
use crate::sched::SchedState;
use crate::syscall::UserError;
use crate::usermem::{check_range, copy_out, validate_user_ptr, Access};
use alloc::collections::VecDeque;

/// COM1's interrupt line; the kernel's own, never a driver's.
pub const LINE: u8 = 4;
/// Received bytes the kernel keeps for readers.
pub const INPUT_BUFFER: usize = 4096;

/// Bytes received and not yet read, and who waits for them.
#[derive(Debug, Default)]
pub struct ConsoleInput {
    pub buffered: VecDeque<u8>,
    /// Bytes thrown away because the buffer was full.
    pub dropped: u64,
    /// Bytes taken from the UART at its interrupt (the rest were found by a read's own drain).
    pub by_interrupt: u64,
    /// Blocked readers, longest waiting first: (slot, buffer pointer, capacity).
    waiters: VecDeque<(usize, u64, u64)>,
    /// The task input belongs to (none until a CONSOLE program starts or one is given it).
    pub owner: Option<TaskId>,
}

/// Task `c` owns console input.
fn owns<P: Platform, M: PhysMem, F: FrameAlloc>(k: &Kernel<P, M, F>, c: usize) -> bool {
    k.console_in.owner.is_some_and(|o| k.task(c).is_some_and(|t| t.id == o))
}

/// A CONSOLE program started as task `id`: it owns input unless a live task already does.
pub fn on_console_program<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, id: TaskId) {
    if k.console_in.owner.and_then(|o| k.lookup(o)).is_none() {
        k.console_in.owner = Some(id);
    }
}

/// `console_give(id)`: the supervisor or the owner makes live task `id` the owner.
pub fn give<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    id: u64,
) -> Result<u64, UserError> {
    let me = k.task(c).map(|t| t.id);
    if !(owns(k, c) || me.is_some() && me == k.supervisor) {
        return Err(SysError::NotPermitted.into());
    }
    let to = crate::ipc::resolve(k, id)?;
    let new = k.task(to).map(|t| t.id);
    k.console_in.owner = new;
    let (keep, refused): (VecDeque<_>, VecDeque<_>) = k.console_in.waiters.drain(..).partition(|w| w.0 == to);
    k.console_in.waiters = keep;
    for (t, _, _) in refused {
        if let Some(task) = k.task_mut(t) {
            task.frame.rax = SysError::NotPermitted.to_ret();
            k.sched[t] = SchedState::Runnable;
        }
    }
    Ok(0)
}

/// Moves everything the UART holds into the buffer.
fn drain<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>) {
    let mut chunk = [0u8; 64];
    loop {
        let n = k.platform.console_read(&mut chunk).min(chunk.len());
        if n == 0 {
            return;
        }
        for &b in &chunk[..n] {
            if k.console_in.buffered.len() < INPUT_BUFFER {
                k.console_in.buffered.push_back(b);
            } else {
                k.console_in.dropped += 1;
            }
        }
    }
}

/// Copies up to `cap` buffered bytes to `ptr` in task `c`'s space; returns how many.
fn take<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    ptr: u64,
    cap: u64,
) -> Result<u64, UserError> {
    let space = k.task(c).map(|t| t.space).ok_or(UserError::Fault("no such task"))?;
    let n = (cap as usize).min(k.console_in.buffered.len());
    let bytes: alloc::vec::Vec<u8> = k.console_in.buffered.iter().take(n).copied().collect();
    copy_out(&space, &mut k.mem, ptr, &bytes)?;
    k.console_in.buffered.drain(..n);
    Ok(n as u64)
}

/// `console_read(ptr, cap, flags)`: `Ok(None)` when the caller blocked.
pub fn read<P: Platform, M: PhysMem, F: FrameAlloc>(
    k: &mut Kernel<P, M, F>,
    c: usize,
    ptr: u64,
    cap: u64,
    flags: u64,
) -> Result<Option<u64>, UserError> {
    check_range(ptr, cap)?;
    if cap > MAX_CONSOLE_READ as u64 || flags & !CONSOLE_WAIT != 0 {
        return Err(SysError::InvalidArgument.into());
    }
    let space = k.task(c).map(|t| t.space).ok_or(UserError::Fault("no such task"))?;
    validate_user_ptr(&space, &k.mem, ptr, cap, Access::Write)?;
    if !owns(k, c) {
        return Err(SysError::NotPermitted.into());
    }
    drain(k);
    if k.console_in.buffered.is_empty() && cap > 0 && flags & CONSOLE_WAIT != 0 {
        k.console_in.waiters.push_back((c, ptr, cap));
        k.sched[c] = SchedState::Blocked;
        return Ok(None);
    }
    take(k, c, ptr, cap).map(Some)
}

/// IRQ 4: take the input and hand it to waiting readers. Returns whether one woke.
pub fn on_irq<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>) -> bool {
    let before = k.console_in.buffered.len() as u64 + k.console_in.dropped;
    drain(k);
    k.console_in.by_interrupt += k.console_in.buffered.len() as u64 + k.console_in.dropped - before;
    let mut woke = false;
    while !k.console_in.buffered.is_empty() {
        let Some((t, ptr, cap)) = k.console_in.waiters.pop_front() else { break };
        let result = match take(k, t, ptr, cap) {
            Ok(n) => n,
            Err(UserError::Recoverable(e)) => e.to_ret(),
            Err(UserError::Fault(_)) => continue,
        };
        if let Some(task) = k.task_mut(t) {
            task.frame.rax = result;
            k.sched[t] = SchedState::Runnable;
            woke = true;
        }
    }
    woke
}

/// Task `slot` is gone: it waits for nothing any more.
pub fn on_death<P: Platform, M: PhysMem, F: FrameAlloc>(k: &mut Kernel<P, M, F>, slot: usize) {
    k.console_in.waiters.retain(|w| w.0 != slot);
}
