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
    let mut k = boot(&["shell", "other"]);
    let mut f = first_tick(&mut k);
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
    let mut k = boot(&["shell"]);
    let mut f = first_tick(&mut k);
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
    let mut k = boot(&["shell"]);
    let mut f = first_tick(&mut k);
    typed(&mut k, &vec![b'x'; INPUT_BUFFER + 10]);
    irq(&mut k, &mut f);
    assert_eq!(k.console_in.buffered.len(), INPUT_BUFFER);
    assert_eq!(k.console_in.dropped, 10);
    assert_eq!(k.console_in.by_interrupt, INPUT_BUFFER as u64 + 10);
    assert!(k.platform.console_input.is_empty(), "the UART is always drained, so its line drops");
}

#[test]
fn bad_flags_and_buffers_are_refused_before_anything_is_taken_or_anyone_blocks() {
    let mut k = boot(&["shell"]);
    let mut f = first_tick(&mut k);
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
    let mut k = boot(&["shell", "other"]);
    let mut f = first_tick(&mut k);
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
fn waiting_readers_are_served_in_the_order_they_came() {
    let mut k = boot(&["a", "b", "c"]);
    let mut f = first_tick(&mut k);
    read(&mut k, &mut f, 2, CONSOLE_WAIT);
    assert_eq!(k.current, Some(1));
    read(&mut k, &mut f, 2, CONSOLE_WAIT);
    assert_eq!(k.current, Some(2));
    typed(&mut k, b"xyz");
    irq(&mut k, &mut f);
    assert_eq!((k.task(0).unwrap().frame.rax, k.task(1).unwrap().frame.rax), (2, 1));
    assert_eq!((memory(&k, 0, 2), memory(&k, 1, 1)), (b"xy".to_vec(), b"z".to_vec()));
}

#[test]
fn drivers_cannot_bind_the_console_line() {
    assert!(!crate::devices::bindable(LINE as u64));
}
