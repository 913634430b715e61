//! init: the supervisor. The kernel tells it of every death (`NOTIFY_DEATH`, then `next_death`);
//! between deaths it serves the supervisor interface (`protocol::api::supervisor`: list, kill,
//! restart, spawn, the latest deaths). Every decision (restart policy, backoff, give-up, who may ask
//! for what) is the host-tested `supervisor` library; this binary connects it to the syscalls.
//!
//! Design: the programs and their roles come from the initrd manifest (`program_info` at start):
//! RESTART programs are the services, CONTROL programs may ask for kills, restarts and spawns, and
//! programs with no flag are on-demand. A caller is known by the id the kernel stamps on its
//! message, and its manifest entry by the kernel's name for that id. init exits once nothing else is
//! left.
//!
//! Every death it collects it also reports to the vfs server (`process_exited`, MINIX's PM → VFS),
//! which closes the dead process's descriptors and aborts its transactions, whether it exited or
//! faulted. That call cannot wedge init: no server ever calls init (calls only go init → vfs →
//! filesystem servers → caches, and none of them waits for a restart), a dead vfs server fails the
//! call at once, a restarted one simply has nothing of the dead process, and any error is logged,
//! never fatal.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use libwatos::abi::{
    PROGRAM_AUTOSTART, PROGRAM_CONSOLE, PROGRAM_CONTROL, PROGRAM_DRIVER, PROGRAM_RESTART, PROGRAM_STOPPER,
    PROGRAM_SUPERVISOR,
};
use libwatos::protocol::api::supervisor::{Cause, Outcome, Service};
use libwatos::protocol::api::vfs as vfs_api;
use libwatos::protocol::ipc::TaskId;
use libwatos::protocol::{Error, Result};
use libwatos::transport::{self, map_error, KernelTransport};
use libwatos::{println, service, sys};
use supervisor::{Death, Kernel, Program, RestartPolicy, Supervisor};

libwatos::entry!(main);

/// The vfs server's name in the manifest.
const VFS: &str = "vfs-server";

/// The kernel as the supervisor library sees it: the manifest read once, the syscalls.
struct Syscalls {
    programs: Vec<Program>,
}

/// The manifest's programs with the roles its flags give them.
fn manifest() -> Vec<Program> {
    // A program with any flag is not on-demand, so no flag's rights can be gained by a spawn request.
    let special = PROGRAM_AUTOSTART
        | PROGRAM_DRIVER
        | PROGRAM_RESTART
        | PROGRAM_SUPERVISOR
        | PROGRAM_CONTROL
        | PROGRAM_CONSOLE
        | PROGRAM_STOPPER;
    sys::programs()
        .iter()
        .map(|p| Program {
            name: String::from(p.name()),
            service: p.flags & PROGRAM_RESTART != 0,
            control: p.flags & PROGRAM_CONTROL != 0,
            on_demand: p.flags & special == 0,
        })
        .collect()
}

impl Kernel for Syscalls {
    fn programs(&self) -> Vec<Program> {
        self.programs.clone()
    }

    fn find(&self, name: &str) -> Option<TaskId> {
        service::find(name).ok().map(transport::from_kernel)
    }

    fn name_of(&self, id: TaskId) -> Option<String> {
        let info = sys::task_info(transport::to_kernel(id)?).ok()?;
        Some(String::from(info.name()))
    }

    fn kill(&mut self, id: TaskId) -> Result<()> {
        sys::kill(transport::to_kernel(id).ok_or(Error::NotFound)?).map_err(map_error)
    }

    fn spawn(&mut self, name: &str) -> Result<TaskId> {
        let mut cname: Vec<u8> = name.as_bytes().into();
        cname.push(0);
        let cname = core::ffi::CStr::from_bytes_with_nul(&cname).map_err(|_| Error::InvalidArgument)?;
        sys::spawn(cname).map(transport::from_kernel).map_err(map_error)
    }

    fn now_ns(&self) -> u64 {
        sys::monotonic_ns()
    }

    fn sleep_ns(&mut self, ns: u64) {
        sys::sleep_ns(ns);
    }

    fn log(&mut self, line: fmt::Arguments<'_>) {
        println!("{line}");
    }
}

/// Tells the vfs server that the task `death` describes is gone, so it closes what that process
/// held. The vfs server's own death needs no report (its tables died with it), and no vfs server
/// means nothing is open.
fn tell_vfs(death: &sys::DeathInfo) {
    let name = death.name();
    if name == VFS {
        return;
    }
    let t = KernelTransport::new();
    let Ok(vfs) = t.lookup(VFS) else { return };
    match vfs_api::Client::new(t, vfs).process_exited(transport::from_kernel(death.id)) {
        Ok(0) => {}
        Ok(n) => println!("init: {VFS} closed {n} descriptors of {name} (task {:#x})", death.id),
        // It ended between the lookup and the call: nothing left to close.
        Err(Error::ServerDead | Error::ServerRestarted) => {}
        Err(e) => println!("init: {VFS} could not close what {name} held: {e:?}"),
    }
}

fn cause(death: &sys::DeathInfo) -> Cause {
    match (death.cause, death.code) {
        (sys::DEATH_EXIT, code) => Cause::Exit(code),
        (_, sys::KILLED) => Cause::Killed,
        (_, vector) => Cause::Fault(vector),
    }
}

fn main() -> i64 {
    let kernel = Syscalls { programs: manifest() };
    let mut server = Service(Supervisor::new(kernel, RestartPolicy::new(10_000_000, 3, 5_000_000_000)));
    println!("init: supervising {:?} (the manifest's RESTART programs)", server.0.services());
    loop {
        // Serves requests until the kernel posts NOTIFY_DEATH.
        if let Err(e) = transport::serve(&mut server, sys::NOTIFY_DEATH) {
            println!("init: receive failed: {e:?}");
            return 1;
        }
        let mut last_live = None;
        let mut restarted = false;
        while let Ok(Some(death)) = sys::next_death() {
            tell_vfs(&death);
            let id = transport::from_kernel(death.id);
            let outcome = server.0.on_death(&Death { id, name: String::from(death.name()), cause: cause(&death) });
            restarted |= matches!(outcome, Outcome::Restarted { .. });
            last_live = Some(death.live);
        }
        if last_live == Some(0) && !restarted {
            println!("init: every other task has ended; exiting");
            return 0;
        }
    }
}
