//! init: the supervisor. The kernel tells it of every death (`NOTIFY_DEATH`, then `next_death`);
//! it restarts the services it is responsible for when they fault or are killed, with exponential
//! backoff, gives up on one that faults more than 3 times in 5 s (and says so), and exits once
//! nothing else is left.
//!
//! Design: the services are the initrd programs flagged RESTART (read with `program_info` at start),
//! so the manifest, not this binary, says what is supervised. Between deaths it answers requests
//! (`libwatos::supervise::Request`): `kill NAME` ends a service through the kernel's `kill`, and the
//! death that follows is handled like any fault; `spawn NAME` starts one of the manifest's on-demand
//! programs (the only way a test gets a child process).
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
use libwatos::ipc::{self, NOTIFICATION};
use libwatos::protocol::api::vfs as vfs_api;
use libwatos::protocol::Error;
use libwatos::supervise::{self, Decision, Request, RestartPolicy};
use libwatos::transport::{self, KernelTransport};
use libwatos::{println, service, sys};

libwatos::entry!(main);

/// The vfs server's name in the manifest.
const VFS: &str = "vfs-server";

/// Handles one request from task `sender`; returns the reply byte.
fn request(services: &[String], on_demand: &[String], sender: u64, msg: &[u8]) -> u8 {
    match supervise::parse_request(msg) {
        Some(Request::Kill(name)) if services.iter().any(|s| s == name) => {
            match service::find(name).and_then(sys::kill) {
                Ok(()) => {
                    println!("init: killed {name} on request");
                    supervise::REPLY_OK
                }
                Err(_) => supervise::REPLY_NO_SUCH_TASK,
            }
        }
        Some(Request::Spawn(name)) if on_demand.iter().any(|s| s == name) => match spawn(name) {
            Some(id) => {
                println!("init: started {name} as task {id:#x} on request");
                // The id goes into the caller's lease; without one the caller learns only "refused".
                match ipc::borrow_write(sender, 0, 0, &id.to_le_bytes()) {
                    Ok(8) => supervise::REPLY_OK,
                    _ => supervise::REPLY_REFUSED,
                }
            }
            None => supervise::REPLY_NO_SUCH_TASK,
        },
        _ => supervise::REPLY_REFUSED,
    }
}

fn spawn(name: &str) -> Option<u64> {
    let mut cname: Vec<u8> = name.as_bytes().into();
    cname.push(0);
    core::ffi::CStr::from_bytes_with_nul(&cname).ok().and_then(|c| sys::spawn(c).ok())
}

fn restart(name: &str) -> bool {
    match spawn(name) {
        Some(id) => {
            println!("init: restarted {name} as task {id:#x}");
            true
        }
        None => {
            println!("init: could not restart {name}");
            false
        }
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

fn main() -> i64 {
    let programs = sys::programs();
    let services = supervise::restart_list(&programs);
    let on_demand = supervise::on_demand_list(&programs);
    let mut policy = RestartPolicy::new(10_000_000, 3, 5_000_000_000);
    let mut buf = [0u8; libwatos::abi::MAX_MSG];
    println!("init: supervising {services:?} (the manifest's RESTART programs)");
    loop {
        let info = match ipc::receive(&mut buf, sys::NOTIFY_DEATH) {
            Ok(info) => info,
            Err(e) => {
                println!("init: receive failed: {e:?}");
                return 1;
            }
        };
        if info.sender != NOTIFICATION {
            let answer = request(&services, &on_demand, info.sender, &buf[..(info.len as usize).min(buf.len())]);
            let _ = ipc::reply(info.sender, &[answer]);
            continue;
        }
        let mut last_live = None;
        let mut restarted = false;
        while let Ok(Some(death)) = sys::next_death() {
            tell_vfs(&death);
            let name = death.name();
            let faulted = death.cause == sys::DEATH_FAULT && services.iter().any(|s| s == name);
            match policy.on_death(name, faulted, sys::monotonic_ns()) {
                Decision::Restart { delay_ns, attempt } => {
                    let why = if death.code == sys::KILLED {
                        String::from("killed")
                    } else {
                        alloc::format!("vector {}", death.code)
                    };
                    println!(
                        "init: {name} faulted ({why}); restarting in {} ms (fault {attempt} in the window)",
                        delay_ns / 1_000_000
                    );
                    sys::sleep_ns(delay_ns);
                    restarted |= restart(name);
                }
                Decision::GiveUp { faults } => {
                    println!("init: {name} faulted {faults} times within 5 s: giving up on it")
                }
                Decision::Leave => {}
            }
            last_live = Some(death.live);
        }
        if last_live == Some(0) && !restarted {
            println!("init: every other task has ended; exiting");
            return 0;
        }
    }
}
