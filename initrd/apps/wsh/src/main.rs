//! wsh as a WATOS program: the shell library connected to the running storage system.
//!
//! Design: the file commands go through `libwatos::fs()` (the vfs server); the server-specific
//! commands are [`WatosHooks`]: the mount list is fixed by the storage manifest (`/` on WFS, `/fat`
//! on FAT), `ps` lists the initrd's programs with the live task behind each name, `kill`/`restart`
//! ask the supervisor (init), which restarts a RESTART service by its policy, and `stats` asks each
//! block cache server for its counters. Output goes to the serial console a line at a time. Run as
//! `wsh-script` (the storage boot's name for it) it runs `/demo.wsh` from the WFS disk with
//! stop-on-error, prints one `wsh: script ...` verdict line, stops the servers and exits with 0 only
//! if every line succeeded. The kernel has no console input yet, so there is no interactive mode.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use libwatos::abi::PROGRAM_SUPERVISOR;
use libwatos::fs::{Error as FsError, ErrorKind};
use libwatos::protocol::api::blockcache;
use libwatos::transport::KernelTransport;
use libwatos::{println, service, sys};
use wsh::{CmdError, Hooks, Shell};

libwatos::entry!(main);

/// The script the `wsh-script` role runs (xtask puts it on the WFS image).
const SCRIPT: &str = "/demo.wsh";
/// The block cache servers `stats` asks, with the mount each one serves.
const CACHES: [(&str, &str); 2] = [("blockcache0", "/"), ("blockcache1", "/fat")];

/// Console output: collected until a newline, then one console write per line, so the shell's
/// lines never interleave mid-line with a server's log.
struct Console(String);

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.push_str(s);
        if let Some(end) = self.0.rfind('\n') {
            let _ = sys::console_write(&self.0.as_bytes()[..=end]);
            self.0.drain(..=end);
        }
        Ok(())
    }
}

struct WatosHooks;

/// A syscall refusal as the shell's error.
fn sys_err(e: libwatos::abi::SysError) -> CmdError {
    CmdError::Other(libwatos::transport::map_error(e).into())
}

impl Hooks for WatosHooks {
    fn mounts(&self) -> Vec<String> {
        ["/", "/fat"].into_iter().map(String::from).collect()
    }

    fn stats(&mut self, out: &mut dyn Write) -> Result<(), CmdError> {
        for (name, mount) in CACHES {
            let t = KernelTransport::new();
            let id = t.lookup(name)?;
            let s = blockcache::Client::new(t, id).stats()?;
            writeln!(
                out,
                "{name} ({mount}): hit rate {:.1}%, {} hits, {} misses, {} reads, {} writes, {} device reads, {} device writes, {} flushes, {}/{} blocks cached",
                s.hit_rate() * 100.0,
                s.hits,
                s.misses,
                s.reads,
                s.writes,
                s.device_reads,
                s.device_writes,
                s.flushes,
                s.cached_blocks,
                s.capacity_blocks
            )?;
        }
        Ok(())
    }

    fn ps(&mut self, out: &mut dyn Write) -> Result<(), CmdError> {
        writeln!(out, "NAME             TASK      TICKS  SYSCALLS  FLAGS")?;
        for p in sys::programs() {
            let flags = if p.flags & PROGRAM_SUPERVISOR != 0 { "supervisor" } else { "" };
            match service::find(p.name()).and_then(sys::task_info) {
                Ok(i) => writeln!(out, "{}", format!("{:<16} {:<9} {:>6} {:>9}  {flags}", p.name(), i.id, i.ticks, i.syscalls).trim_end())?,
                Err(_) => writeln!(out, "{}", format!("{:<16} {:<9} {:>6} {:>9}  {flags}", p.name(), "-", "-", "-").trim_end())?,
            }
        }
        Ok(())
    }

    fn kill(&mut self, task: &str, out: &mut dyn Write) -> Result<(), CmdError> {
        service::kill_service(task).map_err(sys_err)?;
        Ok(writeln!(out, "{task}: killed (init restarts it if the manifest says RESTART)")?)
    }

    fn restart(&mut self, task: &str, out: &mut dyn Write) -> Result<(), CmdError> {
        // init restarts a killed RESTART service after its backoff; a service without the flag
        // would stay dead, so refuse those instead of killing them.
        let restartable = sys::programs().iter().any(|p| p.name() == task && p.flags & libwatos::abi::PROGRAM_RESTART != 0);
        if !restartable {
            return Err(CmdError::Other(FsError::new(ErrorKind::Unsupported)));
        }
        service::kill_service(task).map_err(sys_err)?;
        Ok(writeln!(out, "{task}: restarting")?)
    }
}

fn main() -> i64 {
    let fs = match libwatos::fs() {
        Ok(fs) => fs,
        Err(e) => {
            println!("wsh: no vfs server: {e:?}");
            return 1;
        }
    };
    let mut shell = Shell::new(fs, Console(String::new()), WatosHooks);
    let code = match shell.run_file(SCRIPT, true) {
        Ok(o) if o.failed == 0 => {
            println!("wsh: script {SCRIPT}: {} lines ran, none failed", o.ran);
            0
        }
        Ok(o) => {
            println!("wsh: script {SCRIPT}: {} lines ran, {} failed, stopped: {}", o.ran, o.failed, o.stopped);
            1
        }
        Err(e) => {
            println!("wsh: script {SCRIPT}: cannot read it: {e:?}");
            1
        }
    };
    for server in ["vfs-server", "wfs-server", "fat-server"] {
        service::stop(server);
    }
    code
}
