//! libwatos: the runtime every WATOS user program links.
//!
//! Design: `sys` holds the typed syscall wrappers and `fmt` console printing; both are ordinary
//! library code that also compiles on the host. The `rt` feature adds what a bare-metal program needs
//! to exist at all: `_start`, the global allocator (the shared size-class heap growing through
//! `map_anon`), the panic handler (report, then exit with status 101) and the C memory symbols. A
//! program supplies `fn main() -> i64` through `libwatos::entry!(main)`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod dev;
pub mod fmt;
pub mod forward;
pub mod ipc;
pub mod metered;
pub mod service;
pub mod sys;
pub mod transport;
pub mod tsc;

#[cfg(feature = "rt")]
pub mod rt;

/// The protocol crate, for programs that speak it through `transport`.
pub use protocol;
pub use watos_abi as abi;
/// The std::fs-like file API (`File`, `OpenOptions`, `read_dir`, transactions) over any transport;
/// [`fs()`] connects it to the running vfs server.
pub use watos_fs as fs;

/// The file API connected to the vfs server over kernel IPC: `let fs = libwatos::fs()?;`. Fails with
/// the lookup's error if no vfs server is running.
pub fn fs() -> protocol::Result<fs::Fs<transport::KernelTransport>> {
    let t = transport::KernelTransport::new();
    let vfs = t.lookup("vfs-server")?;
    Ok(fs::Fs::connect(t, vfs))
}

/// How long an asynchronous queue sleeps before it asks the vfs server again on its own: a vfs
/// server that dies while the app waits costs this delay, then a resubmission or a clear error,
/// never a hang.
pub const AIO_RECHECK_NS: u64 = 50_000_000;

/// An asynchronous queue on the vfs server (`fs::Queue`) that sleeps on notification `bit` until
/// the server has finished requests, or [`AIO_RECHECK_NS`] passed. It uses the task's one timer
/// while it waits (and cancels it after).
pub fn queue(fs: &fs::Fs<transport::KernelTransport>, bit: u64) -> fs::Queue<transport::KernelTransport> {
    fs.queue().with_notification(bit, |bits| {
        ipc::set_timer(sys::monotonic_ns().saturating_add(AIO_RECHECK_NS), bits);
        let _ = ipc::wait_notification(bits);
        ipc::set_timer(0, 0);
    })
}

/// Declares the program's entry point: `libwatos::entry!(main)` with `fn main() -> i64`; the
/// returned value becomes the exit code.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        pub extern "Rust" fn __watos_main() -> i64 {
            $main()
        }
    };
}
