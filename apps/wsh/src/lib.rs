//! wsh: the WATOS shell, as a library the WATOS binary (and host tests) drive.
//!
//! Design: [`Shell`] owns a `watos_fs::Fs` handle, a current directory and a [`Hooks`]
//! implementation, and writes everything (output and error lines) to a `core::fmt::Write` the caller
//! gives it, so the same code serves the serial console, a script run and a test's `String`. A line
//! is parsed ([`parse`]), run, and any failure becomes exactly one line `wsh: <cmd>: <what>: <why>`.
//! The filesystem commands (ls, cat, echo, cp, mv, rm, mkdir, rmdir, stat, df, sync, cd, pwd) use
//! only the file API, `snapshot` and `scrub` the vfs interface's administrative operations (by
//! mount path); the commands that need other servers (stats detail, ps, kill, restart, the mount
//! list) go through [`Hooks`], which the binary implements with its own clients. A command's output can go to a file with `>`/`>>`; scripts run line by line,
//! optionally stopping at the first error. [`LineEditor`] turns console bytes into lines (echo,
//! backspace, Ctrl-U, Ctrl-C) for the interactive loop.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod admin;
mod commands;
mod line;
mod parse;
pub mod report;
mod shell;

pub use line::{Input, LineEditor, MAX_LINE};
pub use parse::{parse, Line, ParseError, RedirectMode};
pub use shell::{CmdError, Hooks, NoHooks, ScriptOutcome, Shell, Status};
