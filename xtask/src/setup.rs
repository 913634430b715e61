//! What `cargo xtask qemu` and `cargo xtask test` need from the machine, installed when missing.
//!
//! Design: the README's two commands are the whole set-up on a fresh Debian or Ubuntu machine.
//! Each command names the programs it runs; a missing one is installed:
//! system packages with `apt-get` when running as root (otherwise the one `sudo apt-get install`
//! line to run is printed and the command fails), the pinned POSIX suites with
//! `cargo install --locked --root ~/.cache/watos-tools` (no root needed; `WATOS_TOOLS` overrides the
//! directory), whose `bin` is put in front of `PATH` for everything xtask starts; `cargo xtask
//! coverage`'s pinned cargo-llvm-cov the same way (and rustup's `llvm-tools-preview`). A FUSE device
//! that cannot be opened is not installable: the FUSE tests keep reporting it as a `SKIP fuse:` line.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A program a command runs and the Debian package that provides it.
pub type Need = (&'static str, &'static str);

/// What `cargo xtask qemu` runs.
pub const QEMU: &[Need] = &[("qemu-system-x86_64", "qemu-system-x86")];

/// What the QEMU boots of `cargo xtask test` and their host-side image checks run.
pub const BOOTS: &[Need] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("mcopy", "mtools"),
    ("mdir", "mtools"),
    ("fsck.fat", "dosfstools"),
    ("mkfs.fat", "dosfstools"),
];

/// The independent POSIX suites the FUSE tests of `cargo test` run: (program, crate, pinned version).
pub const SUITES: &[(&str, &str, &str)] = &[("pjdfstest", "pjdfstest", "0.2.2"), ("fsx", "fsx", "0.3.2")];

/// What `cargo xtask coverage` runs besides rustup's `llvm-tools-preview` component.
pub const COVERAGE: &[(&str, &str, &str)] = &[("cargo-llvm-cov", "cargo-llvm-cov", "0.9.1")];

/// Where the POSIX suites are installed (`cargo install --root`).
pub fn tools_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("WATOS_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/watos-tools")
}

/// Put the tools root's `bin` in front of `PATH` for this process and every process it starts.
fn add_tools_to_path() {
    let bin = tools_root().join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| d == bin) {
        return;
    }
    let joined = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)));
    if let Ok(joined) = joined {
        std::env::set_var("PATH", joined);
    }
}

/// The directories of `PATH`.
fn path_dirs() -> Vec<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect()
}

/// The packages providing the programs of `needs` that none of `dirs` holds, each once, in order.
pub fn missing_packages(needs: &[Need], dirs: &[PathBuf]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for &(program, package) in needs {
        let found = dirs.iter().any(|d| d.join(program).is_file());
        if !found && !out.contains(&package) {
            out.push(package);
        }
    }
    out
}

/// The one line a user without root runs to install `packages`.
pub fn apt_line(packages: &[&str]) -> String {
    format!("sudo apt-get install -y {}", packages.join(" "))
}

/// The line that installs one POSIX suite.
pub fn cargo_install_line(krate: &str, version: &str, root: &Path) -> String {
    format!("cargo install --locked --root {} {krate} --version {version}", root.display())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Make sure every program of `needs` is installed: true if they all are (now).
pub fn ensure(needs: &[Need]) -> bool {
    let missing = missing_packages(needs, &path_dirs());
    if missing.is_empty() {
        return true;
    }
    if !is_root() {
        eprintln!("missing {}; install with:\n    {}", missing.join(", "), apt_line(&missing));
        return false;
    }
    println!("== installing {} (apt-get)", missing.join(" "));
    let apt = |args: &[&str]| {
        Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status().is_ok_and(|s| s.success())
    };
    let ok = apt(&["update", "-qq"]) && apt(&[&["install", "-y", "-qq"][..], &missing].concat());
    let still = missing_packages(needs, &path_dirs());
    if !ok || !still.is_empty() {
        eprintln!("apt-get could not install {}; install with:\n    {}", still.join(", "), apt_line(&still));
        return false;
    }
    true
}

/// Make sure the pinned POSIX suites are installed and in `PATH`: true if they are (now).
pub fn ensure_suites() -> bool {
    ensure_cargo_tools(SUITES)
}

/// Make sure each (program, crate, pinned version) of `tools` is in `PATH`, installing the missing
/// ones with `cargo install --locked` into the tools root: true if they all are (now).
pub fn ensure_cargo_tools(tools: &[(&str, &str, &str)]) -> bool {
    add_tools_to_path();
    let root = tools_root();
    let mut ok = true;
    for &(program, krate, version) in tools {
        if path_dirs().iter().any(|d| d.join(program).is_file()) {
            continue;
        }
        let line = cargo_install_line(krate, version, &root);
        println!("== installing {krate} {version}: {line}");
        let installed = Command::new(env!("CARGO"))
            .args(["install", "--quiet", "--locked", "--root"])
            .arg(&root)
            .args([krate, "--version", version])
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            eprintln!("{krate} could not be installed; install with:\n    {line}");
            ok = false;
        }
    }
    ok
}

/// Make sure rustup has the standard library for `target`, adding it when missing: true if it is
/// there (now).
pub fn ensure_rust_target(target: &str) -> bool {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == target));
    if installed {
        return true;
    }
    println!("== installing the {target} target: rustup target add {target}");
    let ok = Command::new("rustup").args(["target", "add", target]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("the {target} target could not be installed; install with:\n    rustup target add {target}");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_name_their_packages_once() {
        assert_eq!(missing_packages(BOOTS, &[]), ["qemu-system-x86", "mtools", "dosfstools"]);
        let dir = std::env::temp_dir().join(format!("xtask-setup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for p in ["qemu-system-x86_64", "mcopy", "mdir", "fsck.fat"] {
            std::fs::write(dir.join(p), b"").unwrap();
        }
        let some = missing_packages(BOOTS, std::slice::from_ref(&dir));
        std::fs::write(dir.join("mkfs.fat"), b"").unwrap();
        let none = missing_packages(BOOTS, std::slice::from_ref(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(some, ["dosfstools"]);
        assert!(none.is_empty());
    }

    #[test]
    fn install_lines_are_complete_commands() {
        assert_eq!(apt_line(&["mtools", "dosfstools"]), "sudo apt-get install -y mtools dosfstools");
        assert_eq!(
            cargo_install_line("fsx", "0.3.2", Path::new("/tmp/t")),
            "cargo install --locked --root /tmp/t fsx --version 0.3.2"
        );
    }
}
