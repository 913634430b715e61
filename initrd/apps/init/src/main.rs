//! init: the supervisor. The kernel tells it of every death (`NOTIFY_DEATH`, then `next_death`);
//! it restarts the services it is responsible for when they fault or are killed, with exponential
//! backoff, gives up on one that faults more than 3 times in 5 s (and says so), and exits once
//! nothing else is left.
//!
//! Design: the services are the initrd programs flagged RESTART (read with `program_info` at start),
//! so the manifest, not this binary, says what is supervised. Between deaths it answers requests
//! (`libwatos::supervise::Request`): `kill NAME` ends a service through the kernel's `kill`, and the
//! death that follows is handled like any fault.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use libwatos::ipc::{self, NOTIFICATION};
use libwatos::supervise::{self, Decision, Request, RestartPolicy};
use libwatos::{println, service, sys};

libwatos::entry!(main);

/// Handles one request from a task; returns the reply byte.
fn request(services: &[String], msg: &[u8]) -> u8 {
    match supervise::parse_request(msg) {
        Some(Request::Kill(name)) if services.iter().any(|s| s == name) => match service::find(name).and_then(sys::kill) {
            Ok(()) => {
                println!("init: killed {name} on request");
                supervise::REPLY_OK
            }
            Err(_) => supervise::REPLY_NO_SUCH_TASK,
        },
        _ => supervise::REPLY_REFUSED,
    }
}

fn restart(name: &str) -> bool {
    let mut cname: Vec<u8> = name.as_bytes().into();
    cname.push(0);
    match core::ffi::CStr::from_bytes_with_nul(&cname).map_err(|_| ()).and_then(|c| sys::spawn(c).map_err(|_| ())) {
        Ok(id) => {
            println!("init: restarted {name} as task {id:#x}");
            true
        }
        Err(()) => {
            println!("init: could not restart {name}");
            false
        }
    }
}

fn main() -> i64 {
    let services = supervise::restart_list(&sys::programs());
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
            let answer = request(&services, &buf[..(info.len as usize).min(buf.len())]);
            let _ = ipc::reply(info.sender, &[answer]);
            continue;
        }
        let mut last_live = None;
        let mut restarted = false;
        while let Ok(Some(death)) = sys::next_death() {
            let name = death.name();
            let faulted = death.cause == sys::DEATH_FAULT && services.iter().any(|s| s == name);
            match policy.on_death(name, faulted, sys::monotonic_ns()) {
                Decision::Restart { delay_ns, attempt } => {
                    let why = if death.code == sys::KILLED { String::from("killed") } else { alloc::format!("vector {}", death.code) };
                    println!("init: {name} faulted ({why}); restarting in {} ms (fault {attempt} in the window)", delay_ns / 1_000_000);
                    sys::sleep_ns(delay_ns);
                    restarted |= restart(name);
                }
                Decision::GiveUp { faults } => println!("init: {name} faulted {faults} times within 5 s: giving up on it"),
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
