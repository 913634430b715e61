//! `cargo xtask`: the project's build, run, test and benchmark driver.
//!
//! Design: plain `std::process::Command` calls to cargo and QEMU, no dependencies, so the driver itself
//! builds in a second. Host crates are tested with the normal target dir; bare-metal binaries are
//! built into `target/watos` with their own RUSTFLAGS so neither build invalidates the other.

mod bench;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = &args[args.len().min(1)..];
    let ok = match args.first().map(String::as_str) {
        Some("test") => host_tests(),
        Some("bench") => bench::run(rest),
        _ => {
            eprintln!("usage: cargo xtask <test | bench [NAME...]>");
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Run `cargo` with `args` from the workspace root; true on success.
pub fn cargo(args: &[&str]) -> bool {
    Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Host unit and whole-stack tests: the workspace's default members.
fn host_tests() -> bool {
    cargo(&["test"])
}
