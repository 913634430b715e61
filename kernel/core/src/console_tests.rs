//! Host tests of interrupt-driven console input: the kernel's buffer, blocking readers woken by
//! IRQ 4, and the edge cases (full buffer, small reads, a waiter that dies, bad flags).

use crate::abi::{Sys, SysError, CONSOLE_WAIT};
use crate::console::{INPUT_BUFFER, LINE};
use crate::kernel_tests::{boot, first_tick, image, space, syscall6, DATA, K};
use crate::sched::SchedState;
use crate::trap::{Event, TrapFrame};
use crate::usermem::copy_in;
use std::boxed::Box;
use std::vec::Vec;

/// Boots `names` with task 0 owning console input.
fn shell(names: &[&str]) -> (K, TrapFrame) {
    let mut k = boot(names);
    k.console_in.owner = Some(k.task(0).unwrap().id);
    let f = first_tick(&mut k);
    (k, f)
}

fn read(k: &mut K, f: &mut TrapFrame, cap: u64, flags: u64) {
    syscall6(k, f, Sys::ConsoleRead, [DATA, cap, flags, 0, 0, 0]);
}

fn typed(k: &mut K, bytes: &[u8]) {
    k.platform.console_input.extend(bytes);
}

fn irq(k: &mut K, f: &mut TrapFrame) {
    k.trap(f, Event::Irq(LINE));
}

fn memory(k: &K, task: usize, len: u64) -> Vec<u8> {
    copy_in(&space(k, task), &k.mem, DATA, len).unwrap()
}

#[test]
fn a_waiting_reader_blocks_until_the_interrupt_brings_input() {
    let (mut k, mut f) = shell(&["shell", "other"]);
    read(&mut k, &mut f, 16, CONSOLE_WAIT);
    assert_eq!(k.sched[0], SchedState::Blocked);
    assert_eq!(k.current, Some(1), "the other task runs meanwhile");
    // An interrupt with nothing received (a stray one) wakes nobody.
    irq(&mut k, &mut f);
    assert_eq!(k.sched[0], SchedState::Blocked);
    typed(&mut k, b"ls\r");
    irq(&mut k, &mut f);
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(k.task(0).unwrap().frame.rax, 3);
    assert_eq!(memory(&k, 0, 3), b"ls\r");
    assert_eq!(k.platform.masked.get(&LINE), None, "the kernel's own line is never masked like a driver's");
}

#[test]
fn input_that_arrives_with_nobody_reading_is_kept_for_the_next_read() {
    let (mut k, mut f) = shell(&["shell"]);
    typed(&mut k, b"hello");
    irq(&mut k, &mut f);
    assert!(k.platform.console_input.is_empty(), "the UART was drained at the interrupt");
    read(&mut k, &mut f, 2, CONSOLE_WAIT);
    assert_eq!((f.rax, memory(&k, 0, 2).as_slice()), (2, &b"he"[..]), "buffered input returns at once");
    read(&mut k, &mut f, 16, 0);
    assert_eq!((f.rax, memory(&k, 0, 3).as_slice()), (3, &b"llo"[..]));
    read(&mut k, &mut f, 16, 0);
    assert_eq!(f.rax, 0, "without CONSOLE_WAIT an empty console is 0, not a wait");
    read(&mut k, &mut f, 0, CONSOLE_WAIT);
    assert_eq!(f.rax, 0, "a zero-length read never blocks");
    assert_eq!(k.sched[0], SchedState::Runnable);
}

#[test]
fn input_beyond_the_buffer_is_dropped_and_counted() {
    let (mut k, mut f) = shell(&["shell"]);
    typed(&mut k, &vec![b'x'; INPUT_BUFFER + 10]);
    irq(&mut k, &mut f);
    assert_eq!(k.console_in.buffered.len(), INPUT_BUFFER);
    assert_eq!(k.console_in.dropped, 10);
    assert_eq!(k.console_in.by_interrupt, INPUT_BUFFER as u64 + 10);
    assert!(k.platform.console_input.is_empty(), "the UART is always drained, so its line drops");
}

#[test]
fn bad_flags_and_buffers_are_refused_before_anything_is_taken_or_anyone_blocks() {
    let (mut k, mut f) = shell(&["shell"]);
    typed(&mut k, b"x");
    read(&mut k, &mut f, 1, 2);
    assert_eq!(SysError::decode(f.rax), Err(SysError::InvalidArgument));
    syscall6(&mut k, &mut f, Sys::ConsoleRead, [crate::kernel_tests::TEXT, 1, CONSOLE_WAIT, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotWritable));
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(k.platform.console_input.len(), 1, "nothing taken from the UART");
    read(&mut k, &mut f, 1, CONSOLE_WAIT);
    assert_eq!(f.rax, 1);
}

#[test]
fn a_reader_that_dies_while_waiting_takes_no_input_with_it() {
    let (mut k, mut f) = shell(&["shell", "other"]);
    read(&mut k, &mut f, 16, CONSOLE_WAIT);
    assert_eq!(k.current, Some(1));
    k.reap(0, crate::kernel::Death::Fault(crate::abi::KILLED));
    // The slot is reused by a new task that is not reading.
    let leaked: &'static [u8] = Box::leak(image().into_boxed_slice());
    k.add_image("new", leaked, false);
    k.spawn_image("new").unwrap();
    typed(&mut k, b"abc");
    irq(&mut k, &mut f);
    assert_eq!(k.console_in.buffered.len(), 3, "kept for the next reader");
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(k.task(0).unwrap().frame.rax, 0, "the new task's registers are untouched");
}

#[test]
fn only_the_owner_reads_and_only_it_or_the_supervisor_passes_the_console_on() {
    let (mut k, mut f) = shell(&["a", "b", "c"]);
    k.supervisor = Some(k.task(2).unwrap().id);
    let b = k.task(1).unwrap().id.to_raw();
    read(&mut k, &mut f, 2, CONSOLE_WAIT);
    assert_eq!(k.current, Some(1));
    typed(&mut k, b"xy");
    read(&mut k, &mut f, 2, 0);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotPermitted), "b does not own the console");
    syscall6(&mut k, &mut f, Sys::ConsoleGive, [b, 0, 0, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NotPermitted), "nor may it take it");
    assert_eq!(k.platform.console_input.len(), 2, "nothing taken");
    syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    assert_eq!(k.current, Some(2));
    syscall6(&mut k, &mut f, Sys::ConsoleGive, [0xFFFF_0099, 0, 0, 0, 0, 0]);
    assert_eq!(SysError::decode(f.rax), Err(SysError::NoSuchTask));
    // The supervisor gives the console to b: a's waiting read is refused, not served b's input.
    syscall6(&mut k, &mut f, Sys::ConsoleGive, [b, 0, 0, 0, 0, 0]);
    assert_eq!(f.rax, 0);
    assert_eq!(k.sched[0], SchedState::Runnable);
    assert_eq!(SysError::decode(k.task(0).unwrap().frame.rax), Err(SysError::NotPermitted));
    while k.current != Some(1) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    read(&mut k, &mut f, 2, 0);
    assert_eq!((f.rax, memory(&k, 1, 2)), (2, b"xy".to_vec()));
}

#[test]
fn a_console_program_takes_the_console_only_when_no_live_task_owns_it() {
    let (mut k, _f) = shell(&["a"]);
    let leaked: &'static [u8] = Box::leak(image().into_boxed_slice());
    k.add_program("wsh", leaked, crate::abi::PROGRAM_CONSOLE);
    let first = k.spawn_image("wsh").unwrap();
    assert_eq!(k.console_in.owner, Some(k.task(0).unwrap().id), "a still owns it");
    k.reap(0, crate::kernel::Death::Fault(crate::abi::KILLED));
    k.reap(first.index as usize, crate::kernel::Death::Fault(crate::abi::KILLED));
    let second = k.spawn_image("wsh").unwrap();
    assert_eq!(k.console_in.owner, Some(second));
}

#[test]
fn drivers_cannot_bind_the_console_line() {
    assert!(!crate::devices::bindable(LINE as u64));
}
