//! Restart policy for a supervisor: restart a faulting program after an exponentially growing delay,
//! and give up on one that faults too often.
//!
//! Design (after MINIX's reincarnation server and Hubris's jefe): a program that exits cleanly is
//! left alone; a fault is remembered with its time; faults older than the window are forgotten; the
//! n-th fault inside the window waits `base << (n - 1)` (capped) before the restart, so a crash loop
//! costs little CPU and cannot starve the rest; more than `max_faults` inside the window and the
//! supervisor gives up on that program for good. Which programs are services (restarted) comes from
//! the initrd manifest's RESTART flag, never from a list compiled into the supervisor. Other tasks
//! may ask the supervisor to kill a service by name (a one-line message, `kill NAME`), which is how a
//! shell or a test restarts one; the kill counts as a fault, so the same policy brings it back.
//! Only the supervisor may spawn, so a test that needs a child process asks it to start one of the
//! manifest's on-demand programs (flagged nothing: `spawn NAME`). Pure logic, so it is tested on
//! the host; [`request_spawn`] is the client side.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

/// What to do about a death.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after `delay_ns`; this is fault number `attempt` inside the window.
    Restart { delay_ns: u64, attempt: usize },
    /// Too many faults inside the window: do not restart, now or later.
    GiveUp { faults: usize },
    /// A clean exit, or a program already given up on: nothing to do.
    Leave,
}

pub struct RestartPolicy {
    base_delay_ns: u64,
    max_faults: usize,
    window_ns: u64,
    faults: BTreeMap<String, Vec<u64>>,
    given_up: BTreeSet<String>,
}

/// The names of the manifest's programs flagged RESTART.
pub fn restart_list(programs: &[crate::sys::ProgramInfo]) -> Vec<String> {
    programs.iter().filter(|p| p.flags & crate::sys::PROGRAM_RESTART != 0).map(|p| String::from(p.name())).collect()
}

/// The names of the manifest's on-demand programs: no flag at all (not started at boot, not a
/// driver, service or supervisor), so starting one on request grants nothing the manifest did not.
pub fn on_demand_list(programs: &[crate::sys::ProgramInfo]) -> Vec<String> {
    use crate::abi::{PROGRAM_AUTOSTART, PROGRAM_CONSOLE, PROGRAM_CONTROL, PROGRAM_DRIVER, PROGRAM_RESTART};
    let special = PROGRAM_AUTOSTART
        | PROGRAM_DRIVER
        | PROGRAM_RESTART
        | crate::abi::PROGRAM_SUPERVISOR
        | PROGRAM_CONTROL
        | PROGRAM_CONSOLE;
    programs.iter().filter(|p| p.flags & special == 0).map(|p| String::from(p.name())).collect()
}

/// A request to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// End the task called this (as a fault, so the restart policy applies).
    Kill(&'a str),
    /// Start the on-demand program called this (tasks other than the supervisor cannot spawn);
    /// its task id goes into the request's lease 0 (8 bytes, little-endian). A lease rather than a
    /// longer reply: a reply longer than the caller's buffer would fault the supervisor.
    Spawn(&'a str),
}

/// Prefix of a kill request.
pub const KILL: &[u8] = b"kill ";
/// Prefix of a spawn request.
pub const SPAWN: &[u8] = b"spawn ";

/// Decodes a request message; `None` for anything malformed.
pub fn parse_request(msg: &[u8]) -> Option<Request<'_>> {
    let (spawn, rest) = match (msg.strip_prefix(KILL), msg.strip_prefix(SPAWN)) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return None,
    };
    let name = core::str::from_utf8(rest).ok()?;
    let valid = !name.is_empty() && name.len() < 32 && !name.contains('\0');
    valid.then_some(if spawn { Request::Spawn(name) } else { Request::Kill(name) })
}

/// Reply byte: the request was carried out.
pub const REPLY_OK: u8 = 0;
/// Reply byte: malformed request, or the named task is not a service.
pub const REPLY_REFUSED: u8 = 1;
/// Reply byte: no live task has that name.
pub const REPLY_NO_SUCH_TASK: u8 = 2;

/// No single restart waits longer than this.
const MAX_DELAY_NS: u64 = 5_000_000_000;

impl RestartPolicy {
    pub fn new(base_delay_ns: u64, max_faults: usize, window_ns: u64) -> Self {
        RestartPolicy { base_delay_ns, max_faults, window_ns, faults: BTreeMap::new(), given_up: BTreeSet::new() }
    }

    /// Records the death of `name` at `now_ns`; `faulted` is false for a clean exit.
    pub fn on_death(&mut self, name: &str, faulted: bool, now_ns: u64) -> Decision {
        if !faulted || self.given_up.contains(name) {
            return Decision::Leave;
        }
        let history = self.faults.entry(String::from(name)).or_default();
        history.retain(|&t| now_ns.saturating_sub(t) < self.window_ns);
        history.push(now_ns);
        let n = history.len();
        if n > self.max_faults {
            self.given_up.insert(String::from(name));
            return Decision::GiveUp { faults: n };
        }
        let delay_ns = self.base_delay_ns.checked_shl(n as u32 - 1).unwrap_or(MAX_DELAY_NS).min(MAX_DELAY_NS);
        Decision::Restart { delay_ns, attempt: n }
    }
}

/// The task id of the supervisor (the manifest's SUPERVISOR program).
pub fn supervisor_task() -> Result<u64, crate::abi::SysError> {
    let flag = crate::abi::PROGRAM_SUPERVISOR;
    let supervisor =
        crate::sys::programs().into_iter().find(|p| p.flags & flag != 0).ok_or(crate::abi::SysError::NoSuchTask)?;
    crate::service::find(supervisor.name())
}

/// Asks the supervisor to start the on-demand program `name`; returns its task id. A refusal
/// (unknown or not on-demand) is `NotPermitted`.
pub fn request_spawn(name: &str) -> Result<u64, crate::abi::SysError> {
    use crate::abi::SysError;
    let id = supervisor_task()?;
    let msg = [SPAWN, name.as_bytes()].concat();
    let mut task = [0u8; 8];
    let mut reply = [0u8; 1];
    let n = crate::ipc::send(id, &msg, &mut reply, &[crate::ipc::lease_write(&mut task)])?;
    match (n, reply[0]) {
        (1, REPLY_OK) => Ok(u64::from_le_bytes(task)),
        (1, REPLY_NO_SUCH_TASK) => Err(SysError::NoSuchTask),
        _ => Err(SysError::NotPermitted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn requests_parse_strictly() {
        assert_eq!(parse_request(b"kill wfs-server"), Some(Request::Kill("wfs-server")));
        assert_eq!(parse_request(b"kill "), None);
        assert_eq!(parse_request(b"kil wfs"), None);
        assert_eq!(parse_request(b"kill a\0b"), None);
        assert_eq!(parse_request(b"kill \xff"), None);
        assert_eq!(parse_request(&[b'k'; 300]), None);
        let long = [KILL, &[b'x'; 40][..]].concat();
        assert_eq!(parse_request(&long), None);
    }

    #[test]
    fn spawn_requests_and_replies() {
        assert_eq!(parse_request(b"spawn fdhog-exit"), Some(Request::Spawn("fdhog-exit")));
        assert_eq!(parse_request(b"spawn "), None);
        assert_eq!(parse_request(b"spawnx"), None);
    }

    #[test]
    fn only_flagless_programs_are_on_demand() {
        use crate::sys::{ProgramInfo, PROGRAM_RESTART};
        let prog = |name: &str, flags| {
            let mut p = ProgramInfo { flags, ..ProgramInfo::default() };
            p.name[..name.len()].copy_from_slice(name.as_bytes());
            p
        };
        let list = on_demand_list(&[
            prog("init", 3),
            prog("wfs-server", 1 | PROGRAM_RESTART),
            prog("fdhog", 0),
            prog("drv", 4),
        ]);
        assert_eq!(list, ["fdhog"]);
    }

    #[test]
    fn the_restart_list_is_the_manifest_flag() {
        use crate::sys::{ProgramInfo, PROGRAM_RESTART};
        let prog = |name: &str, flags| {
            let mut p = ProgramInfo { flags, ..ProgramInfo::default() };
            p.name[..name.len()].copy_from_slice(name.as_bytes());
            p
        };
        let list = restart_list(&[
            prog("init", 3),
            prog("wfs-server", 1 | PROGRAM_RESTART),
            prog("fstest", 1),
            prog("blockcache0", 1 | 4 | PROGRAM_RESTART),
        ]);
        assert_eq!(list, ["wfs-server", "blockcache0"]);
    }

    #[test]
    fn clean_exits_are_left_alone() {
        let mut p = RestartPolicy::new(10 * MS, 3, 5_000 * MS);
        assert_eq!(p.on_death("a", false, 0), Decision::Leave);
    }

    #[test]
    fn delays_double_then_it_gives_up_for_good() {
        let mut p = RestartPolicy::new(10 * MS, 3, 5_000 * MS);
        assert_eq!(p.on_death("a", true, 0), Decision::Restart { delay_ns: 10 * MS, attempt: 1 });
        assert_eq!(p.on_death("a", true, 100 * MS), Decision::Restart { delay_ns: 20 * MS, attempt: 2 });
        assert_eq!(p.on_death("a", true, 200 * MS), Decision::Restart { delay_ns: 40 * MS, attempt: 3 });
        assert_eq!(p.on_death("a", true, 300 * MS), Decision::GiveUp { faults: 4 });
        assert_eq!(p.on_death("a", true, 100_000 * MS), Decision::Leave, "given up stays given up");
        assert_eq!(p.on_death("b", true, 300 * MS), Decision::Restart { delay_ns: 10 * MS, attempt: 1 }, "per program");
    }

    #[test]
    fn old_faults_leave_the_window() {
        let mut p = RestartPolicy::new(10 * MS, 2, 1_000 * MS);
        p.on_death("a", true, 0);
        p.on_death("a", true, 500 * MS);
        assert_eq!(p.on_death("a", true, 1_600 * MS), Decision::Restart { delay_ns: 10 * MS, attempt: 1 });
    }

    #[test]
    fn delays_are_capped() {
        let mut p = RestartPolicy::new(MAX_DELAY_NS, 100, u64::MAX);
        for t in 0..70 {
            if let Decision::Restart { delay_ns, .. } = p.on_death("a", true, t) {
                assert!(delay_ns <= MAX_DELAY_NS);
            }
        }
    }
}
