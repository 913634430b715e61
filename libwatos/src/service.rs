//! What every storage server process shares: its own name, the stop notification, name lookup with a
//! NUL, the supervisor's client, and a wall clock.
//!
//! Design: servers are started by the kernel from the initrd manifest and find each other by name
//! (`find_task`), so one binary can serve several roles (blockcache0, blockcache1) by reading its own
//! name. An orderly shutdown is a notification, not a message: a server blocked in `receive` wakes on
//! `STOP`, finishes what it owns (unmount, write back), tells the server below it to stop, and exits,
//! so shutting down never races with a request in flight from the same chain.

use crate::{ipc, sys};
use alloc::string::String;
use alloc::vec::Vec;
use protocol::api::supervisor;
use protocol::fs::{Clock, Timespec};
use watos_abi::SysError;

/// Notification bit asking a server to finish its work and exit. The kernel takes it only from the
/// supervisor and programs flagged CONTROL in the manifest (`NotPermitted` from anyone else).
pub const STOP: u64 = watos_abi::NOTIFY_STOP;

/// Notification bit of a filesystem server's daemon timer (`run_filesystem`).
pub const DAEMON_TICK: u64 = 1 << 1;

/// This task's name from the initrd manifest.
pub fn own_name() -> String {
    sys::task_info(sys::SELF_ID).map(|i| String::from(i.name())).unwrap_or_default()
}

/// The id of the live task called `name` (no NUL needed).
pub fn find(name: &str) -> Result<u64, SysError> {
    let mut c: Vec<u8> = name.as_bytes().into();
    c.push(0);
    let c = core::ffi::CStr::from_bytes_with_nul(&c).map_err(|_| SysError::BadString)?;
    sys::find_task(c)
}

/// Sends `STOP` to the server called `name`; a server already gone is not an error.
pub fn stop(name: &str) {
    if let Ok(id) = find(name) {
        let _ = ipc::notify(id, STOP);
    }
}

/// The vfs server's name in the manifest: the task filesystem servers accept direct-read grants from.
pub const VFS: &str = "vfs-server";

/// Whether `task` (as a caller the kernel stamped) is the live task called `name`.
pub fn is_task(task: protocol::ipc::TaskId, name: &str) -> bool {
    let info = crate::transport::to_kernel(task).and_then(|id| sys::task_info(id).ok());
    info.is_some_and(|i| i.name() == name)
}

/// The task id of the supervisor (the manifest's SUPERVISOR program).
pub fn supervisor_task() -> Result<u64, SysError> {
    let flag = watos_abi::PROGRAM_SUPERVISOR;
    let supervisor = sys::programs().into_iter().find(|p| p.flags & flag != 0).ok_or(SysError::NoSuchTask)?;
    find(supervisor.name())
}

/// A client of the supervisor's interface (`protocol::api::supervisor`: list, kill, restart,
/// spawn, the latest deaths). Kill, restart and spawn need the manifest's CONTROL flag (or, for a
/// service, to be about itself); anyone else gets `PermissionDenied`.
pub fn supervisor() -> protocol::Result<supervisor::Client<crate::transport::KernelTransport>> {
    let id = supervisor_task().map_err(crate::transport::map_error)?;
    Ok(supervisor::Client::new(crate::transport::KernelTransport::new(), crate::transport::from_kernel(id)))
}

/// The filesystems' clock: the kernel's wall clock (`wall_clock`: the RTC read at boot plus the
/// monotonic time since), so timestamps are real dates and move forward within a boot.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootClock;

impl Clock for BootClock {
    fn now(&self) -> Timespec {
        let ns = sys::wall_clock_ns();
        Timespec { secs: (ns / 1_000_000_000) as i64, nanos: (ns % 1_000_000_000) as u32 }
    }
}

/// The whole life of a filesystem server process called `name`: find the block cache server
/// `cache`, `mount` the filesystem on it (`kind` names it in the log), serve the filesystem
/// interface until `STOP` (running its daemon on a timer meanwhile, both counted in TSC cycles by
/// [`crate::metered::Metered`]), then `finish` it (unmount: commit and write back through the cache) and
/// stop the cache server, in that order, so the cache never leaves before its last write. Returns
/// the process's exit code.
pub fn run_filesystem<F: protocol::fs::FileSystem>(
    kind: &str,
    cache: &str,
    mount: impl FnOnce(crate::transport::KernelTransport, protocol::ipc::TaskId) -> protocol::Result<F>,
    finish: impl FnOnce(F) -> protocol::Result<()>,
) -> i64 {
    let name = own_name();
    let t = crate::transport::KernelTransport::new();
    let fs = match t.lookup(cache).and_then(|id| mount(t, id)) {
        Ok(fs) => fs,
        Err(e) => {
            crate::println!("{name}: cannot mount {kind} from {cache}: {e:?}");
            return 2;
        }
    };
    crate::println!("{name}: mounted {kind} from {cache}");
    // Only the vfs grants direct reads and makes the operations apps may not (an app may call this
    // server for its direct reads and statistics): the kernel's name for the caller says who it is.
    let fs = protocol::api::filesystem::FsServer::new(fs).with_granter(alloc::boxed::Box::new(|t| is_task(t, VFS)));
    // Requests and daemon ticks are counted in TSC cycles (`daemon_stats` reports them); the first
    // rate reading is the reference the reports measure the TSC's rate from.
    crate::tsc::hz();
    let mut server = crate::metered::Metered::new(fs, crate::tsc::Tsc);
    crate::println!("{name}: serving");
    // The daemon (`FileSystem::background`) runs on the task's one kernel timer, between calls; it
    // says when it wants to run next.
    let arm = |delay: Option<u64>| {
        if let Some(d) = delay {
            ipc::set_timer(sys::monotonic_ns().saturating_add(d), DAEMON_TICK);
        }
    };
    arm(server.background());
    let served = crate::transport::serve_ticking(&mut server, STOP, DAEMON_TICK, |s| arm(s.background()));
    let done = finish(server.into_fs());
    stop(cache);
    match (served, done) {
        (Ok(()), Ok(())) => {
            crate::println!("{name}: stopped; unmounted cleanly");
            0
        }
        (s, d) => {
            crate::println!("{name}: stopped with errors: serve {s:?}, unmount {d:?}");
            1
        }
    }
}

/// Deterministic test-file contents (xorshift64 from `seed`): the guest test app writes them and
/// xtask checks the images on the host against the same bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    prng::bytes(seed | 1, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_seed_dependent() {
        assert_eq!(pattern(7, 1000), pattern(7, 1000));
        assert_ne!(pattern(7, 64), pattern(8, 64));
        assert_eq!(&pattern(7, 1000)[..10], &pattern(7, 10)[..]);
        // Not constant, not trivially periodic in the first bytes.
        let p = pattern(0x5eed_0001, 4096);
        assert!(p.iter().any(|&b| b != p[0]) && p[..16] != p[16..32]);
    }
}
