//! init: the supervisor. The kernel tells it of every death (`NOTIFY_DEATH`, then `next_death`);
//! it restarts the services it is responsible for when they fault, with exponential backoff, gives up
//! on one that faults more than 3 times in 5 s (and says so), and exits once nothing else is left.
#![no_std]
#![no_main]

use libwatos::ipc::{self, NOTIFICATION};
use libwatos::supervise::{Decision, RestartPolicy};
use libwatos::{println, sys};

libwatos::entry!(main);

/// Programs init restarts when they fault (the rest are tests that are meant to die).
const SERVICES: [&str; 2] = ["echo", "fault-ud"];

fn main() -> i64 {
    let mut policy = RestartPolicy::new(10_000_000, 3, 5_000_000_000);
    let mut buf = [0u8; 16];
    println!("init: supervising {SERVICES:?}");
    loop {
        let info = match ipc::receive(&mut buf, sys::NOTIFY_DEATH) {
            Ok(info) => info,
            Err(e) => {
                println!("init: receive failed: {e:?}");
                return 1;
            }
        };
        if info.sender != NOTIFICATION {
            // Nobody has a reason to call init yet; answer so the caller is not stuck.
            let _ = ipc::reply(info.sender, &[]);
            continue;
        }
        let mut last_live = None;
        let mut restarted = false;
        while let Ok(Some(death)) = sys::next_death() {
            let name = death.name();
            let faulted = death.cause == sys::DEATH_FAULT && SERVICES.contains(&name);
            match policy.on_death(name, faulted, sys::monotonic_ns()) {
                Decision::Restart { delay_ns, attempt } => {
                    println!("init: {name} faulted (vector {}); restarting in {} ms (fault {attempt} in the window)", death.code, delay_ns / 1_000_000);
                    sys::sleep_ns(delay_ns);
                    let mut cname = [0u8; 33];
                    cname[..name.len()].copy_from_slice(name.as_bytes());
                    match core::ffi::CStr::from_bytes_until_nul(&cname).map_err(|_| ()).and_then(|c| sys::spawn(c).map_err(|_| ())) {
                        Ok(id) => {
                            println!("init: restarted {name} as task {id:#x}");
                            restarted = true;
                        }
                        Err(()) => println!("init: could not restart {name}"),
                    }
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
