//! `cargo xtask`: the project's build, run, test and benchmark driver.
//!
//! Design: plain `std::process::Command` calls to cargo and QEMU, no dependencies beyond our own
//! initrd packer, so the driver itself builds in a second. Host crates are tested with the normal
//! target dir; bare-metal binaries are built into `target/watos` with their own RUSTFLAGS so neither
//! build invalidates the other.
//!
//! Subcommands:
//!   build [--release]          kernel + initrd apps, then pack target/watos/initrd.img
//!   image                      fresh disk images for `qemu`: target/watos/{wfs,fat}.img
//!   qemu  [--release] [--kvm]  build, then boot the storage system in QEMU (disks from `image`,
//!                              made if missing) with the serial console on stdout
//!         [--gdb]              start QEMU halted with its gdb stub and print the gdb command
//!   (qemu and test install what they run when it is missing: see setup.rs)
//!   test  [--release]          host tests (`cargo test`), then the QEMU boot tests: the kernel
//!                              and process tests, the kernel-fault boot, the two storage boots
//!         [--qemu-only]        skip the host tests
//!         [--storage-only]     only the storage boots and image checks
//!         [--stress-only]      only the stress boot (concurrent clients while servers die)
//!         [--soak[=SECS]]      only the stress boot, with SECS (default 180) of seeded kills
//!   coverage                   line coverage of the host crates' tests (cargo llvm-cov, installed
//!                              when missing): total, per crate, weakest files; fails if a library
//!                              crate covers under 70 % of what host tests reach; report in target/llvm-cov
//!   lint                       rustfmt check and clippy (warnings denied) on host and bare-metal
//!                              crates
//!   bench [NAME...]            host benchmarks (tools/bench), release mode; `ipc` = the QEMU
//!                              IPC round-trip benchmark; `qemu [--kvm]` = the whole storage stack
//!                              in QEMU beside a Linux guest (only when named)
#![forbid(unsafe_code)]

mod bench;
mod bench_aio;
mod coverage;
mod daemon_share;
mod harness;
mod lint;
mod powercut;
mod qbench;
mod setup;
mod storage;
mod stress;
mod watos;
mod wsh;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = &args[args.len().min(1)..];
    let opts = watos::Options::parse(rest);
    let ok = match args.first().map(String::as_str) {
        Some("build") => watos::build(&opts).is_some(),
        Some("image") => storage::image(),
        Some("lint") => lint::run(),
        Some("coverage") => coverage::run(),
        Some("qemu") => setup::ensure(setup::QEMU) && storage::run_interactive(&opts),
        Some("test") => {
            if !setup::ensure(setup::BOOTS) {
                return ExitCode::FAILURE;
            }
            if !opts.qemu_only && !setup::ensure_suites() {
                eprintln!("the FUSE tests will skip what is missing (see the SKIP fuse: lines)");
            }
            // Both halves always run, so one failure does not hide the other's results.
            let host = opts.qemu_only || host_tests();
            let qemu = watos::build(&opts).is_some_and(|art| harness::run(&art, &opts));
            if !host {
                eprintln!("host tests failed (see above)");
            }
            if !opts.qemu_only {
                // Repeated under the QEMU summary, so a skipped FUSE suite is not lost in scrollback.
                for why in fuse_skips() {
                    println!("SKIP fuse: {why}");
                }
            }
            host && qemu
        }
        Some("bench") => {
            // `ipc`, `aio` and `qemu` run in QEMU (watos::bench_ipc, bench_aio::run, qbench::run); every
            // other name is a host benchmark; `--kvm` and the like are options, not names.
            let names: Vec<&String> = rest.iter().filter(|n| !n.starts_with("--")).collect();
            let host: Vec<String> =
                names.iter().filter(|n| !["ipc", "qemu", "aio"].contains(&n.as_str())).map(|n| n.to_string()).collect();
            let mut ok = true;
            if names.is_empty() || !host.is_empty() {
                ok &= bench::run(&host);
            }
            if names.is_empty() || names.iter().any(|n| *n == "ipc") {
                ok &= watos::bench_ipc();
            }
            // The whole-stack run takes minutes (and a Linux guest beside it): only when named.
            if names.iter().any(|n| *n == "qemu") {
                ok &= qbench::run(&opts);
            }
            if names.is_empty() || names.iter().any(|n| *n == "aio") {
                ok &= bench_aio::run();
            }
            ok
        }
        _ => {
            eprintln!("usage: cargo xtask <build | image | lint | coverage | qemu [--kvm] [--gdb] | test [--qemu-only|--storage-only|--wsh-only] | bench [NAME...]> [--release]");
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
    Command::new(env!("CARGO")).args(args).current_dir(workspace_root()).status().map(|s| s.success()).unwrap_or(false)
}

pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Host unit and whole-stack tests: the workspace's default members. The FUSE tests in them pass
/// without doing anything when FUSE or a suite is missing (their own `SKIP:` line is captured by
/// cargo; under `CI=true` they fail instead), so the same conditions are checked here and every
/// skip is printed where it is seen.
fn host_tests() -> bool {
    println!("== host tests (cargo test)");
    let ok = cargo(&["test"]);
    for why in fuse_skips() {
        println!("SKIP fuse: {why}");
    }
    ok
}

/// Why the FUSE tests of `cargo test` (tools/watos-image/tests/fuse.rs) skipped all or part of
/// their work: the same checks they make (/dev/fuse usable; tools in PATH or target/tools/bin).
fn fuse_skips() -> Vec<String> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        return vec![format!("/dev/fuse is not usable ({e}): no FUSE mount was tested")];
    }
    let local = workspace_root().join("target/tools/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<_> = std::env::split_paths(&path).chain([local]).collect();
    missing_fuse_tools(&dirs)
}

/// The FUSE tests' tools that none of `dirs` holds, each with what skipping it costs.
fn missing_fuse_tools(dirs: &[std::path::PathBuf]) -> Vec<String> {
    let missing = |tool: &str| !dirs.iter().any(|d| d.join(tool).is_file());
    let mut out = Vec::new();
    for (tool, what) in [
        ("fsx", "fsx runs skipped (cargo install --root ~/.cache/watos-tools fsx@0.3.2)"),
        ("pjdfstest", "pjdfstest runs skipped (cargo install --root ~/.cache/watos-tools pjdfstest@0.2.2)"),
        ("fsck.fat", "fsck.fat -n after the FAT mount skipped (apt-get install dosfstools)"),
    ] {
        if missing(tool) {
            out.push(format!("{tool} not found in PATH or target/tools/bin: {what}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_fuse_tools_are_named() {
        let none = super::missing_fuse_tools(&[]);
        assert_eq!(none.len(), 3);
        assert!(none[0].starts_with("fsx not found"), "{none:?}");
        let dir = std::env::temp_dir().join(format!("xtask-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fsx"), b"").unwrap();
        let some = super::missing_fuse_tools(std::slice::from_ref(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(some.len(), 2);
        assert!(some.iter().all(|s| !s.starts_with("fsx")), "{some:?}");
    }
}
