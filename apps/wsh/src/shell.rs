//! [`Shell`]: line execution, redirection, scripts, path resolution, error lines, and the [`Hooks`]
//! the binary provides.
//!
//! Design: commands return `Result<(), CmdError>` and never print their own errors; `run_line` turns
//! an error into one line naming the command, so every failure looks the same. Redirected output is
//! collected in memory and written to the file after the command succeeded (a failing command does
//! not truncate its target).

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use protocol::ipc::Transport;
use watos_fs::{ErrorKind, Fs, OpenOptions};

use crate::parse::{parse, RedirectMode};

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    /// A file operation on `path` failed.
    Fs { path: String, err: watos_fs::Error },
    /// A failure that is not about one path (e.g. a hook's).
    Other(watos_fs::Error),
    /// Wrong arguments; the text says how to call the command.
    Usage(&'static str),
    /// Anything else, in words.
    Msg(String),
}

impl CmdError {
    pub fn at(path: &str) -> impl FnOnce(watos_fs::Error) -> CmdError + '_ {
        move |err| CmdError::Fs { path: path.to_string(), err }
    }
}

impl From<watos_fs::Error> for CmdError {
    fn from(e: watos_fs::Error) -> Self {
        CmdError::Other(e)
    }
}

impl From<core::fmt::Error> for CmdError {
    fn from(_: core::fmt::Error) -> Self {
        CmdError::Msg(String::from("cannot write output"))
    }
}

impl From<protocol::Error> for CmdError {
    fn from(e: protocol::Error) -> Self {
        CmdError::Other(e.into())
    }
}

/// Server-specific commands; the WATOS binary implements these with its own IPC clients. Every
/// method has a default that reports the command as unsupported.
pub trait Hooks {
    /// The mount points `df` and `sync` visit with no arguments.
    fn mounts(&self) -> Vec<String> {
        vec![String::from("/")]
    }
    /// `stats`: counters beyond the vfs's own (cache hit rate, device I/O).
    fn stats(&mut self, _out: &mut dyn Write) -> Result<(), CmdError> {
        Ok(())
    }
    /// `ps`: the tasks and their state.
    fn ps(&mut self, _out: &mut dyn Write) -> Result<(), CmdError> {
        Err(watos_fs::Error::new(ErrorKind::Unsupported).into())
    }
    /// `kill <task>`.
    fn kill(&mut self, _task: &str, _out: &mut dyn Write) -> Result<(), CmdError> {
        Err(watos_fs::Error::new(ErrorKind::Unsupported).into())
    }
    /// `restart <task>`.
    fn restart(&mut self, _task: &str, _out: &mut dyn Write) -> Result<(), CmdError> {
        Err(watos_fs::Error::new(ErrorKind::Unsupported).into())
    }
}

/// Hooks that support nothing beyond the file API.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// How a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    /// The `exit` command.
    Exit,
}

/// What a script run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScriptOutcome {
    /// Lines with a command that were run.
    pub ran: usize,
    /// How many of those failed.
    pub failed: usize,
    /// The script stopped early (first error with stop-on-error, or `exit`).
    pub stopped: bool,
}

/// What commands work on: everything of the shell but its output (so a command can write to the
/// console or to a redirection buffer while using the rest).
pub(crate) struct Env<T: Transport, H: Hooks> {
    pub(crate) fs: Fs<T>,
    pub(crate) hooks: H,
    pub(crate) cwd: String,
}

impl<T: Transport, H: Hooks> Env<T, H> {
    /// `path` made absolute against the current directory, with `.`, `..` and doubled slashes
    /// removed.
    pub(crate) fn resolve(&self, path: &str) -> String {
        let mut parts: Vec<&str> = Vec::new();
        let base = if path.starts_with('/') { "" } else { self.cwd.as_str() };
        for p in base.split('/').chain(path.split('/')) {
            match p {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        let mut out = String::new();
        for p in &parts {
            out.push('/');
            out.push_str(p);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

/// The shell.
pub struct Shell<T: Transport, W: Write, H: Hooks> {
    pub(crate) env: Env<T, H>,
    /// Where output and error lines go.
    pub out: W,
}

impl<T: Transport, W: Write, H: Hooks> Shell<T, W, H> {
    pub fn new(fs: Fs<T>, out: W, hooks: H) -> Self {
        Shell { env: Env { fs, hooks, cwd: String::from("/") }, out }
    }

    pub fn fs(&self) -> &Fs<T> {
        &self.env.fs
    }

    pub fn hooks(&mut self) -> &mut H {
        &mut self.env.hooks
    }

    pub fn cwd(&self) -> &str {
        &self.env.cwd
    }

    /// `path` made absolute against the current directory.
    pub fn resolve(&self, path: &str) -> String {
        self.env.resolve(path)
    }

    /// Run one line, printing its output and at most one error line.
    pub fn run_line(&mut self, line: &str) -> Status {
        let parsed = match parse(line) {
            Ok(Some(l)) => l,
            Ok(None) => return Status::Ok,
            Err(e) => {
                let _ = writeln!(self.out, "wsh: syntax error: {}", e.as_str());
                return Status::Failed;
            }
        };
        let Some(cmd) = parsed.words.first().cloned() else {
            let _ = writeln!(self.out, "wsh: syntax error: redirection without a command");
            return Status::Failed;
        };
        if cmd == "exit" {
            return Status::Exit;
        }
        let args = &parsed.words[1..];
        let result = match &parsed.redirect {
            None => self.env.dispatch(&cmd, args, &mut self.out),
            Some((mode, target)) => {
                let mut buf = String::new();
                let target = self.env.resolve(target);
                self.env.dispatch(&cmd, args, &mut buf).and_then(|()| self.write_redirect(*mode, &target, &buf))
            }
        };
        match result {
            Ok(()) => Status::Ok,
            Err(e) => {
                self.print_error(&cmd, &e);
                Status::Failed
            }
        }
    }

    fn write_redirect(&self, mode: RedirectMode, path: &str, text: &str) -> Result<(), CmdError> {
        let mut o = OpenOptions::new();
        match mode {
            RedirectMode::Truncate => o.write(true).create(true).truncate(true),
            RedirectMode::Append => o.append(true).create(true),
        };
        let mut f = o.open(&self.env.fs, path).map_err(CmdError::at(path))?;
        f.write_all(text.as_bytes()).map_err(CmdError::at(path))
    }

    fn print_error(&mut self, cmd: &str, e: &CmdError) {
        let _ = match e {
            CmdError::Fs { path, err } => writeln!(self.out, "wsh: {cmd}: {path}: {err}"),
            CmdError::Other(err) => writeln!(self.out, "wsh: {cmd}: {err}"),
            CmdError::Usage(u) => writeln!(self.out, "wsh: {cmd}: usage: {u}"),
            CmdError::Msg(m) => writeln!(self.out, "wsh: {cmd}: {m}"),
        };
    }

    /// Run a script: every line in order. With `stop_on_error` the first failing line ends it.
    pub fn run_script(&mut self, script: &str, stop_on_error: bool) -> ScriptOutcome {
        let mut o = ScriptOutcome::default();
        for line in script.lines() {
            if matches!(parse(line), Ok(None)) {
                continue;
            }
            o.ran += 1;
            match self.run_line(line) {
                Status::Ok => {}
                Status::Failed => {
                    o.failed += 1;
                    if stop_on_error {
                        o.stopped = true;
                        break;
                    }
                }
                Status::Exit => {
                    o.stopped = true;
                    break;
                }
            }
        }
        o
    }

    /// Run the script stored in file `path`.
    pub fn run_file(&mut self, path: &str, stop_on_error: bool) -> Result<ScriptOutcome, CmdError> {
        let abs = self.env.resolve(path);
        let text = self.env.fs.read_to_string(&abs).map_err(CmdError::at(&abs))?;
        Ok(self.run_script(&text, stop_on_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ipc::{Lease, TaskId};

    /// A transport that is never called: path resolution needs no server.
    struct Nowhere;
    impl Transport for Nowhere {
        fn call(&self, _: TaskId, _: &[u8], _: &mut [Lease<'_>], _: &mut [u8]) -> protocol::Result<usize> {
            Err(protocol::Error::ServerDead)
        }
        fn refresh(&self, _: TaskId) -> protocol::Result<TaskId> {
            Err(protocol::Error::ServerDead)
        }
    }

    #[test]
    fn paths_resolve_against_the_current_directory() {
        let mut sh = Shell::new(Fs::connect(Nowhere, TaskId::new(0, 1)), String::new(), NoHooks);
        assert_eq!(sh.resolve("a/b"), "/a/b");
        sh.env.cwd = String::from("/fat/dir");
        assert_eq!(sh.resolve("x"), "/fat/dir/x");
        assert_eq!(sh.resolve("../y/./z//"), "/fat/y/z");
        assert_eq!(sh.resolve("../../../.."), "/");
        assert_eq!(sh.resolve("/abs/../p"), "/p");
        assert_eq!(sh.resolve("."), "/fat/dir");
    }

    #[test]
    fn a_dead_vfs_is_one_error_line() {
        let mut sh = Shell::new(Fs::connect(Nowhere, TaskId::new(0, 1)), String::new(), NoHooks);
        assert_eq!(sh.run_line("ls /"), Status::Failed);
        assert_eq!(sh.out, "wsh: ls: /: server is not running\n");
    }
}
