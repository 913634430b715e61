//! The `authority` role: an unprivileged program attacks the storage servers and init with valid
//! calls only, while fstest's workload runs, and checks that each attack costs only itself.
//!
//! Attacks: a call whose reply buffer holds nothing (the server's reply must fail the caller with
//! `ReplyTooSmall`, never kill the server) to init and the vfs server, the two its manifest send
//! list names; the same call to every server below them, which the kernel refuses (`NotPermitted`),
//! after which an ordinary notification to that server is refused too (a refused call is no call
//! history); notifications only the kernel or the supervisor may
//! post: `STOP` to every server, `NOTIFY_DEATH` to init, each block cache's interrupt bit (all
//! `NotPermitted`), and an ordinary bit to the workload app, with which it has no call history.
//! Afterwards every target still has the task id it had before (nothing died or restarted); the
//! harness also checks that no task was reaped and every server stopped cleanly.
use libwatos::abi::{SysError, NOTIFY_DEATH, NOTIFY_STOP};
use libwatos::fmt::check;
use libwatos::{ipc, println, sys};

/// init and every server of the storage system.
const TARGETS: [&core::ffi::CStr; 6] =
    [c"init", c"vfs-server", c"wfs-server", c"fat-server", c"blockcache0", c"blockcache1"];

/// The targets the manifest lets this program call (xtask's storage manifest: init and the vfs
/// server; it reads no files, so not the filesystem servers).
const MAY_CALL: [&core::ffi::CStr; 2] = [c"init", c"vfs-server"];

/// An ordinary notification bit (no kernel meaning, bound to no interrupt).
const ORDINARY: u64 = 1 << 6;

/// The notification bit blockcache-server binds to its disk's interrupt line.
const IRQ_BIT: u64 = 1 << 1;

/// The live id of `name`, waiting for it to be started (the kernel starts the manifest in order).
fn wait_for(name: &core::ffi::CStr) -> Option<u64> {
    for _ in 0..500 {
        if let Ok(id) = sys::find_task(name) {
            return Some(id);
        }
        sys::sleep_ns(10_000_000);
    }
    None
}

pub fn run() -> i64 {
    let mut ok = true;
    let mut ids = [0u64; TARGETS.len()];
    for (i, name) in TARGETS.iter().enumerate() {
        let Some(id) = wait_for(name) else {
            return i64::from(!check(false, format_args!("authority: {name:?} is running")));
        };
        ids[i] = id;
        // A one-byte request no server understands, with no room for the answer.
        let got = ipc::send_sized(id, b"x", &mut [], &[]);
        if !MAY_CALL.contains(name) {
            ok &= check(
                matches!(got, Err((SysError::NotPermitted, _))),
                format_args!("authority: a call to {name:?}, outside the send list, is refused ({got:?})"),
            );
            let poke = ipc::notify(id, ORDINARY);
            ok &= check(
                poke == Err(SysError::NotPermitted),
                format_args!("authority: a refused call gives no right to notify {name:?} ({poke:?})"),
            );
            continue;
        }
        let fair = match got {
            Err((SysError::ReplyTooSmall, needed)) => needed > 0,
            Ok((0, _)) => true,
            _ => false,
        };
        ok &=
            check(fair, format_args!("authority: {name:?} answered a call with reply capacity 0 and lives ({got:?})"));
    }
    // The vfs server answered, so it had mounted both filesystems through both caches: each block
    // cache has bound its interrupt line.
    for (name, id) in TARGETS.iter().zip(ids) {
        let forged: &[(&str, u64)] = match name.to_bytes() {
            b"init" => &[("NOTIFY_DEATH", NOTIFY_DEATH)],
            b"blockcache0" | b"blockcache1" => &[("STOP", NOTIFY_STOP), ("its interrupt bit", IRQ_BIT)],
            _ => &[("STOP", NOTIFY_STOP)],
        };
        for (what, bits) in forged {
            let got = ipc::notify(id, *bits);
            ok &= check(
                got == Err(SysError::NotPermitted),
                format_args!("authority: notify({name:?}, {what}) is refused ({got:?})"),
            );
        }
    }
    // Ordinary bits need a call history: the workload app never called us, nor we it.
    if let Some(app) = wait_for(c"fstest") {
        let got = ipc::notify(app, ORDINARY);
        ok &= check(
            got == Err(SysError::NotPermitted),
            format_args!("authority: notify(\"fstest\", an ordinary bit) without a call history is refused ({got:?})"),
        );
    }
    for (name, id) in TARGETS.iter().zip(ids) {
        let now = sys::find_task(name);
        ok &= check(now == Ok(id), format_args!("authority: {name:?} keeps its task id {id:#x} ({now:?})"));
    }
    println!("authority: attacks done ({})", if ok { "all refused" } else { "SOME SUCCEEDED" });
    i64::from(!ok)
}
