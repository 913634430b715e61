//! Host tests of driver privileges: ports, interrupt lines, and their release on death.

use crate::abi::{Sys, SysError};
use crate::kernel_tests::{boot, first_tick, image, syscall6, K};
use crate::paging::FrameAlloc;
use crate::sched::SchedState;
use crate::trap::{Event, TrapFrame};
use std::boxed::Box;

/// Task 0 is a driver (started from a DRIVER image), task 1 an ordinary program.
fn setup() -> (K, TrapFrame) {
    let mut k = boot(&[]);
    let leaked: &'static [u8] = Box::leak(image().into_boxed_slice());
    k.add_image("drv", leaked, true);
    k.add_image("app", leaked, false);
    k.spawn_image("drv").unwrap();
    k.spawn_image("app").unwrap();
    let f = first_tick(&mut k);
    (k, f)
}

fn call(k: &mut K, f: &mut TrapFrame, nr: Sys, a: [u64; 3]) -> Result<u64, SysError> {
    syscall6(k, f, nr, [a[0], a[1], a[2], 0, 0, 0]);
    SysError::decode(f.rax)
}

#[test]
fn drivers_reach_device_ports_but_never_the_kernels() {
    let (mut k, mut f) = setup();
    k.platform.port_value = 0x1234_8086;
    assert_eq!(call(&mut k, &mut f, Sys::IoOut, [0xCF8, 4, 0x8000_0000]), Ok(0));
    assert_eq!(call(&mut k, &mut f, Sys::IoIn, [0xCFC, 4, 0]), Ok(0x1234_8086));
    assert_eq!(k.platform.port_writes, [(0xCF8, 4, 0x8000_0000)]);
    for (port, width) in [(0x20, 1), (0x40, 1), (0x43, 1), (0xA0, 2), (0x3F8, 1), (0x3FC, 4), (0xF4, 4), (0x61, 1)] {
        assert_eq!(call(&mut k, &mut f, Sys::IoIn, [port, width, 0]), Err(SysError::NotPermitted), "{port:#x}");
    }
    assert_eq!(call(&mut k, &mut f, Sys::IoIn, [0x71, 3, 0]), Err(SysError::InvalidArgument));
    assert_eq!(call(&mut k, &mut f, Sys::IoIn, [0xCFD, 4, 0]), Err(SysError::InvalidArgument), "misaligned");
    assert_eq!(call(&mut k, &mut f, Sys::IoIn, [0xFFFF, 2, 0]), Err(SysError::InvalidArgument));
    assert_eq!(call(&mut k, &mut f, Sys::IoIn, [u64::MAX, 1, 0]), Err(SysError::InvalidArgument));
    assert_eq!(k.platform.port_writes.len(), 1, "refused writes never reach the hardware");
}

#[test]
fn ordinary_programs_get_no_device_access() {
    let (mut k, mut f) = setup();
    syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    assert_eq!(k.current, Some(1));
    assert_eq!(call(&mut k, &mut f, Sys::IoIn, [0x71, 1, 0]), Err(SysError::NotPermitted));
    assert_eq!(call(&mut k, &mut f, Sys::IoOut, [0x70, 1, 0]), Err(SysError::NotPermitted));
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [8, 1, 0]), Err(SysError::NotPermitted));
    assert!(k.platform.port_writes.is_empty());
}

#[test]
fn an_interrupt_masks_its_line_and_notifies_the_driver_until_acked() {
    let (mut k, mut f) = setup();
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [0, 1, 0]), Err(SysError::InvalidArgument), "the timer");
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [2, 1, 0]), Err(SysError::InvalidArgument), "the cascade");
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [16, 1, 0]), Err(SysError::InvalidArgument));
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [8, 1 << 3, 0]), Ok(0));
    assert_eq!(k.platform.masked.get(&8), Some(&false), "binding unmasks");
    // The driver waits; the line fires while the app runs.
    syscall6(
        &mut k,
        &mut f,
        Sys::Receive,
        [crate::kernel_tests::DATA, 0, 1 << 3, crate::kernel_tests::DATA + 64, 0, 0],
    );
    assert_eq!(k.current, Some(1));
    // The app cannot forge the interrupt: the line's bit is kernel-owned while it is bound.
    let driver = k.task(0).unwrap().id.to_raw();
    assert_eq!(call(&mut k, &mut f, Sys::Notify, [driver, 1 << 3 | 1 << 4, 0]), Err(SysError::NotPermitted));
    assert_eq!(k.sched[0], SchedState::Blocked, "the refused bits never reached the driver");
    assert_eq!(call(&mut k, &mut f, Sys::Notify, [driver, 1 << 4, 0]), Err(SysError::NotPermitted), "unrelated");
    crate::kernel_tests::called(&mut k, 1, 0);
    assert_eq!(call(&mut k, &mut f, Sys::Notify, [driver, 1 << 4, 0]), Ok(0), "a client, a bit of no kernel source");
    k.trap(&mut f, Event::Irq(8));
    assert_eq!(k.platform.masked.get(&8), Some(&true), "masked until the driver acks");
    assert_eq!(k.sched[0], SchedState::Runnable);
    let info = crate::usermem::copy_in(&crate::kernel_tests::space(&k, 0), &k.mem, crate::kernel_tests::DATA + 64, 48);
    let word = |n: usize| u64::from_le_bytes(info.as_ref().unwrap()[n * 8..n * 8 + 8].try_into().unwrap());
    assert_eq!((word(3), word(5)), (1 << 3, 1 << 3), "the driver sees that the kernel posted its interrupt");
    while k.current != Some(0) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(call(&mut k, &mut f, Sys::IrqAck, [8, 0, 0]), Ok(0));
    assert_eq!(k.platform.masked.get(&8), Some(&false));
    assert_eq!(call(&mut k, &mut f, Sys::IrqAck, [9, 0, 0]), Err(SysError::InvalidArgument), "not ours");
    // An unbound line that fires is simply masked.
    k.trap(&mut f, Event::Irq(5));
    assert_eq!(k.platform.masked.get(&5), Some(&true));
}

#[test]
fn a_driver_binds_only_its_devices_lines_and_the_named_legacy_ones() {
    let (mut k, mut f) = setup();
    k.irq_lines = std::vec![(0x20, 11), (0x28, 10)];
    k.task_mut(0).unwrap().devices = std::vec![0x20];
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [10, 1, 0]), Err(SysError::NotPermitted), "another's");
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [5, 1, 0]), Err(SysError::NotPermitted), "nobody's");
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [11, 1, 0]), Ok(0));
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [8, 2, 0]), Ok(0), "the RTC's, a named legacy line");
}

#[test]
fn a_dead_drivers_lines_are_released_and_masked() {
    let (mut k, mut f) = setup();
    k.irq_lines = std::vec![(0x20, 11)];
    k.images[0].devices = std::vec![0x20];
    k.task_mut(0).unwrap().devices = std::vec![0x20];
    call(&mut k, &mut f, Sys::IrqBind, [11, 1, 0]).unwrap();
    k.trap(&mut f, Event::Exception { vector: 13, error: 0, cr2: 0 });
    assert!(k.irqs[11].is_none());
    assert_eq!(k.platform.masked.get(&11), Some(&true));
    // A new driver can take the line.
    let drv = k.spawn_image("drv").unwrap();
    while k.current != Some(drv.index as usize) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(call(&mut k, &mut f, Sys::IrqBind, [11, 1, 0]), Ok(0));
}

#[test]
fn dma_memory_is_contiguous_reported_and_freed_with_the_driver() {
    use crate::kernel_tests::{space, DATA};
    let (mut k, mut f) = setup();
    let before = k.frames.free_count();
    let va = call(&mut k, &mut f, Sys::MapDma, [3, DATA, 0]).unwrap();
    let pa = u64::from_le_bytes(crate::usermem::copy_in(&space(&k, 0), &k.mem, DATA, 8).unwrap().try_into().unwrap());
    for i in 0..3 {
        let t = space(&k, 0).translate(&k.mem, va + i * crate::abi::PAGE).unwrap();
        assert_eq!(t.pa, pa + i * crate::abi::PAGE, "page {i} is where the driver was told");
        assert!(t.writable);
    }
    assert_eq!(call(&mut k, &mut f, Sys::MapDma, [0, DATA, 0]), Err(SysError::InvalidArgument));
    assert_eq!(call(&mut k, &mut f, Sys::MapDma, [257, DATA, 0]), Err(SysError::InvalidArgument));
    let free = k.frames.free_count();
    assert_eq!(call(&mut k, &mut f, Sys::MapDma, [1, crate::kernel_tests::TEXT, 0]), Err(SysError::NotWritable));
    assert_eq!(k.frames.free_count(), free, "a refused call takes no memory");
    k.trap(&mut f, Event::Exception { vector: 13, error: 0, cr2: 0 });
    syscall6(&mut k, &mut f, Sys::Exit, [0; 6]);
    assert!(k.frames.free_count() >= before, "the driver's DMA pages came back");
}
