//! The WATOS kernel's portable core: everything the kernel decides that does not need the hardware.
//!
//! Design (after Hubris's `kerncore`): the bare-metal kernel binary is a thin layer of boot code,
//! interrupt entry and port I/O around this crate. Here live user-pointer validation over real-format
//! page tables, address-space construction and teardown, ELF planning and loading, the scheduler's
//! decisions, the memory-map walk, the heap, TSC calibration and cycle-to-nanosecond conversion, RTC
//! decoding and date arithmetic, the bookkeeping of which PCI functions drivers let master the bus, and
//! the kernel's whole state machine (task table, traps, syscalls, death) behind a small `Platform` trait.
//! The syscall ABI itself is the `watos-abi` crate, shared with libwatos and re-exported here as `abi`.
//! All of it is `no_std` + `alloc` and generic over small traits (`PhysMem`, `FrameAlloc`), so the same
//! code is unit-tested on the host against a simulated physical memory (`sim`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub use watos_abi as abi;
pub mod busmaster;
pub mod console;
pub mod console_out;
pub mod devices;
pub mod elf;
pub mod heap;
pub mod ipc;
pub mod kernel;
pub mod lease;
pub mod memcopy;
pub mod memmap;
pub mod paging;
pub mod pci_ports;
pub mod rtc;
pub mod sched;
pub mod syscall;
pub mod trap;
pub mod tsc;
pub mod usermem;

#[cfg(feature = "mem-symbols")]
pub mod mem_symbols;

#[cfg(test)]
mod authority_tests;
#[cfg(test)]
mod busmaster_tests;
#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod forward_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod ipc_tests;
#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
pub mod sim;
