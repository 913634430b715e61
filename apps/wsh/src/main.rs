//! wsh as a WATOS program: the shell library connected to the running storage system.
//!
//! Design: the file commands go through `libwatos::fs()` (the vfs server); the server-specific
//! commands are [`WatosHooks`]: the mount list is fixed by the storage manifest (`/` on WFS, `/fat`
//! on FAT), `ps`, `kill` and `restart` go to the supervisor (init) over its
//! interface (`ps` adds the kernel's ticks and syscalls; wsh has the manifest's CONTROL flag, so
//! init takes its kills and restarts, each started again at once), and `stats` asks each
//! block cache server for its counters and latencies and each filesystem server for its daemon's
//! report (`wsh::report` formats them). Output goes to the serial console a line at a time (the
//! prompt and the echo of typed bytes at once). Two roles, by the name the manifest gives it:
//! `wsh-script` runs `/demo.wsh` from the WFS disk with stop-on-error, prints one `wsh: script ...`
//! verdict line and exits with 0 only if every line succeeded; `wsh` is the interactive shell: it
//! waits for console input (`console_read_wait`: the kernel buffers what COM1's interrupt brings
//! and wakes the shell), feeds each byte to the `LineEditor` and runs each line until `exit`. Either
//! way it then stops the servers, so the kernel halts and QEMU exits.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use libwatos::abi::PROGRAM_SUPERVISOR;
use libwatos::protocol::api::{blockcache, filesystem};
use libwatos::transport::{to_kernel, KernelTransport};
use libwatos::{println, service, sys};
use wsh::{report, CmdError, Hooks, Input, LineEditor, Shell, Status};

libwatos::entry!(main);

/// The script the `wsh-script` role runs (xtask puts it on the WFS image).
const SCRIPT: &str = "/demo.wsh";
/// The block cache servers `stats` asks, with the mount each one serves.
const CACHES: [(&str, &str); 2] = [("blockcache0", "/"), ("blockcache1", "/fat")];
/// The filesystem servers whose daemon `stats` reports, with their mount.
const FILESYSTEMS: [(&str, &str); 2] = [("wfs-server", "/"), ("fat-server", "/fat")];

/// Console output: collected until a newline, then one console write per line, so the shell's
/// lines never interleave mid-line with a server's log.
struct Console(String);

impl Console {
    /// Sends what is buffered without waiting for a newline (after a command, e.g. `echo -n`).
    fn flush(&mut self) {
        if !self.0.is_empty() {
            let _ = sys::console_write(self.0.as_bytes());
            self.0.clear();
        }
    }
}

/// The echo of typed bytes: written at once, since the person is waiting to see each key.
struct Echo;

impl Write for Echo {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::console_write(s.as_bytes()).map(|_| ()).map_err(|_| core::fmt::Error)
    }
}

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

impl Hooks for WatosHooks {
    fn mounts(&self) -> Vec<String> {
        ["/", "/fat"].into_iter().map(String::from).collect()
    }

    fn stats(&mut self, out: &mut dyn Write) -> Result<(), CmdError> {
        for (name, mount) in CACHES {
            let t = KernelTransport::new();
            let id = t.lookup(name)?;
            let cache = blockcache::Client::new(t, id);
            let s = cache.stats()?;
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
            let l = cache.latency()?;
            let who = format!("{name} ({mount})");
            for (kind, summary) in [("read", l.read), ("write", l.write), ("flush", l.flush)] {
                writeln!(out, "{}", report::latency_line(&who, kind, &summary, l.tick_hz))?;
            }
        }
        for (name, mount) in FILESYSTEMS {
            let t = KernelTransport::new();
            let id = t.lookup(name)?;
            let d = filesystem::Client::new(t, id).daemon_stats()?;
            for line in report::daemon_lines(&format!("{name} ({mount})"), &d, sys::wall_clock_ns() as i128) {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }

    fn ps(&mut self, out: &mut dyn Write) -> Result<(), CmdError> {
        // The programs and their restart record from init; ticks and syscalls from the kernel.
        let tasks = service::supervisor()?.list_tasks()?;
        let programs = sys::programs();
        writeln!(out, "NAME             TASK      TICKS  SYSCALLS  RESTARTS  FLAGS")?;
        for t in tasks {
            let supervisor = programs.iter().any(|p| p.name() == t.name.as_str() && p.flags & PROGRAM_SUPERVISOR != 0);
            let flags = match (supervisor, t.service, t.given_up) {
                (true, ..) => "supervisor",
                (_, true, true) => "service, given up",
                (_, true, false) => "service",
                _ => "",
            };
            let info = t.id.and_then(to_kernel).and_then(|id| sys::task_info(id).ok());
            let (id, ticks, syscalls) = match info {
                Some(i) => (format!("{}", i.id), format!("{}", i.ticks), format!("{}", i.syscalls)),
                None => (String::from("-"), String::from("-"), String::from("-")),
            };
            let row = format!("{:<16} {id:<9} {ticks:>6} {syscalls:>9} {:>9}  {flags}", t.name.as_str(), t.restarts);
            writeln!(out, "{}", row.trim_end())?;
        }
        Ok(())
    }

    fn kill(&mut self, task: &str, out: &mut dyn Write) -> Result<(), CmdError> {
        service::supervisor()?.kill_task(task)?;
        Ok(writeln!(out, "{task}: killed; init started it again")?)
    }

    fn restart(&mut self, task: &str, out: &mut dyn Write) -> Result<(), CmdError> {
        let id = to_kernel(service::supervisor()?.restart_task(task)?).unwrap_or(0);
        // So the next command finds it serving, and its start-up lines come before the prompt.
        wait_until_serving(id);
        Ok(writeln!(out, "restarted {task} as task {id:#x}")?)
    }
}

type Wsh = Shell<KernelTransport, Console, WatosHooks>;

/// Runs `/demo.wsh` with stop-on-error; the exit code says whether every line succeeded.
fn run_script(shell: &mut Wsh) -> i64 {
    let outcome = shell.run_file(SCRIPT, true);
    shell.out.flush();
    match outcome {
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
    }
}

/// Block until task `id` is in its serve loop: an empty message is malformed for every interface,
/// so the server answers it with an error reply, and it can only answer once it has mounted or probed
/// and started receiving. The shell waits for this before printing its first prompt and after a
/// restart, so the servers' start-up lines never land in the middle of a prompt and its echoed input.
fn wait_until_serving(id: u64) {
    let mut reply = [0u8; libwatos::protocol::ipc::MAX_MESSAGE];
    let _ = libwatos::ipc::send(id, &[], &mut reply, &[]);
}

/// The interactive loop: prompt, read a line from the console, run it, until `exit`.
fn interactive(shell: &mut Wsh) -> i64 {
    if let Ok(vfs) = service::find("vfs-server") {
        wait_until_serving(vfs);
    }
    println!("wsh: the WATOS shell. / is WFS, /fat is FAT. Type `help` for the commands, `exit` to shut down.");
    let mut editor = LineEditor::new();
    let mut buf = [0u8; 64];
    let prompt = |cwd: &str| {
        let _ = sys::console_write(format!("wsh:{cwd}$ ").as_bytes());
    };
    prompt(shell.cwd());
    loop {
        let n = match sys::console_read_wait(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                println!("wsh: console input: {e:?}");
                return 1;
            }
        };
        for &b in &buf[..n] {
            match editor.feed(b, &mut Echo) {
                Input::More => continue,
                Input::Cancelled => {}
                Input::Line(line) => {
                    let status = shell.run_line(&line);
                    shell.out.flush();
                    if status == Status::Exit {
                        return 0;
                    }
                }
            }
            prompt(shell.cwd());
        }
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
    let code = if service::own_name() == "wsh-script" { run_script(&mut shell) } else { interactive(&mut shell) };
    println!("wsh: exit; stopping the servers");
    for server in ["vfs-server", "wfs-server", "fat-server"] {
        service::stop(server);
    }
    code
}
