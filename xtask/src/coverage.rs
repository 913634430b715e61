//! `cargo xtask coverage`: line coverage of the host-tested crates.
//!
//! Design: `cargo llvm-cov` runs `cargo test` over the workspace's default members (the host crates)
//! with `-C instrument-coverage` in its own target dir (target/llvm-cov-target), so the normal build
//! is not invalidated. Test code is left out of the figure: cargo-llvm-cov's default filter drops
//! `tests/`, `benches/` and `examples/` directories, and ours drops the unit-test files in `src/`
//! (`tests.rs`, `*_tests.rs`); inline `#[cfg(test)] mod tests` blocks cannot be told apart by file and
//! stay counted. One run writes two reports from the same profile data: HTML for reading
//! (target/llvm-cov/html/index.html) and LCOV (target/llvm-cov/lcov.info), whose per-file `LF`/`LH`
//! counts give the printed total, the per-crate table and the weakest files. A crate is the nearest
//! directory above a file holding a Cargo.toml.
//!
//! What this cannot count: code that only runs in QEMU. The kernel's and servers' bare-metal binaries
//! are not built for the host at all; the host-built files no host test can run (system-call wrappers,
//! xtask's QEMU drivers) are named with the reason in `OUT_OF_HOST_REACH`: they stay in the total,
//! and a second figure leaves them out. Not part of `cargo xtask test` or CI: the instrumented build
//! and test run take as long again as the host tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{setup, workspace_root};

/// Unit-test files inside `src/`, which are test code like `tests/` but not caught by its filter.
const IGNORE_TEST_FILES: &str = r"(^|/)src/(.*/)?([a-z0-9_]+_)?tests\.rs$";

/// Files no host test can run, by path from the workspace root, and why: counted in the total, and
/// left out of the second figure, which says how well the code a host test can reach is tested.
pub const OUT_OF_HOST_REACH: &[(&str, &str)] = &[
    ("libwatos/src/sys.rs", "the system calls themselves (inline syscall); run by the QEMU boots"),
    ("libwatos/src/ipc.rs", "IPC system-call wrappers; run by the QEMU boots"),
    ("libwatos/src/dev.rs", "driver system-call wrappers; run by the virtio-blk driver in QEMU"),
    ("libwatos/src/service.rs", "a server process's life (lookup, stop, timer) through system calls"),
    ("xtask/src/storage.rs", "builds images and boots QEMU; judged by `cargo xtask test` itself"),
    ("xtask/src/watos.rs", "bare-metal builds and QEMU boots; judged by `cargo xtask test` itself"),
    ("xtask/src/wsh.rs", "the shell boot; judged by `cargo xtask test` itself"),
    ("xtask/src/powercut.rs", "the power-cut boot; judged by `cargo xtask test` itself"),
    ("xtask/src/qbench.rs", "`cargo xtask bench qemu`: QEMU and a Linux guest"),
    ("xtask/src/bench_aio.rs", "`cargo xtask bench aio`: a QEMU run"),
    ("xtask/src/bench.rs", "`cargo xtask bench`: runs the release benchmarks"),
    ("xtask/src/lint.rs", "`cargo xtask lint`: runs rustfmt and clippy"),
];

/// Lines found and lines hit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    pub found: u64,
    pub hit: u64,
}

impl Lines {
    fn add(&mut self, other: Lines) {
        self.found += other.found;
        self.hit += other.hit;
    }

    /// Percentage covered; 100 % of nothing.
    pub fn percent(self) -> f64 {
        if self.found == 0 {
            100.0
        } else {
            self.hit as f64 * 100.0 / self.found as f64
        }
    }
}

/// The per-file line counts of an LCOV report: (source file, lines). Records without `LF` count as
/// nothing found.
pub fn parse_lcov(text: &str) -> Vec<(PathBuf, Lines)> {
    let mut out = Vec::new();
    let mut current: Option<(PathBuf, Lines)> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(file) = line.strip_prefix("SF:") {
            current = Some((PathBuf::from(file), Lines::default()));
        } else if let (Some(n), Some((_, l))) = (line.strip_prefix("LF:"), current.as_mut()) {
            l.found = n.parse().unwrap_or(0);
        } else if let (Some(n), Some((_, l))) = (line.strip_prefix("LH:"), current.as_mut()) {
            l.hit = n.parse().unwrap_or(0);
        } else if line == "end_of_record" {
            out.extend(current.take());
        }
    }
    out
}

/// The crate directory a file belongs to, relative to `root`: the nearest ancestor holding a Cargo.toml
/// (`has_manifest` answers for a directory), or the file's own directory if none below `root` does.
pub fn crate_of(file: &Path, root: &Path, has_manifest: &dyn Fn(&Path) -> bool) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let mut dir = rel.parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() {
            break;
        }
        if has_manifest(&root.join(d)) {
            return d.display().to_string();
        }
        dir = d.parent();
    }
    rel.parent().map(|d| d.display().to_string()).unwrap_or_default()
}

/// The total and the per-crate line counts of `files`.
pub fn by_crate(
    files: &[(PathBuf, Lines)],
    root: &Path,
    has_manifest: &dyn Fn(&Path) -> bool,
) -> (Lines, BTreeMap<String, Lines>) {
    let mut total = Lines::default();
    let mut crates: BTreeMap<String, Lines> = BTreeMap::new();
    for (file, lines) in files {
        total.add(*lines);
        crates.entry(crate_of(file, root, has_manifest)).or_default().add(*lines);
    }
    (total, crates)
}

/// The lines printed for a report: the total, the crates from weakest up, then the `weakest` files with
/// the most uncovered lines.
pub fn summary(
    files: &[(PathBuf, Lines)],
    root: &Path,
    has_manifest: &dyn Fn(&Path) -> bool,
    weakest: usize,
) -> String {
    let (total, crates) = by_crate(files, root, has_manifest);
    let mut out = format!("line coverage: {:.1}% ({} of {} lines)\n", total.percent(), total.hit, total.found);
    let out_of_reach = |f: &Path| {
        let rel = f.strip_prefix(root).unwrap_or(f);
        OUT_OF_HOST_REACH.iter().find(|(p, _)| rel == Path::new(p))
    };
    let reachable: Vec<(PathBuf, Lines)> = files.iter().filter(|(f, _)| out_of_reach(f).is_none()).cloned().collect();
    let (in_reach, _) = by_crate(&reachable, root, has_manifest);
    out.push_str(&format!(
        "line coverage of what host tests can reach: {:.1}% ({} of {} lines; {} files left out, below)\n\n",
        in_reach.percent(),
        in_reach.hit,
        in_reach.found,
        files.len() - reachable.len()
    ));
    let mut rows: Vec<(&String, &Lines)> = crates.iter().collect();
    rows.sort_by(|a, b| a.1.percent().total_cmp(&b.1.percent()).then(a.0.cmp(b.0)));
    out.push_str(&format!("{:<32} {:>7} {:>8}\n", "crate", "lines", "covered"));
    for (name, l) in rows {
        out.push_str(&format!("{name:<32} {:>7} {:>7.1}%\n", l.found, l.percent()));
    }
    let mut missed: Vec<&(PathBuf, Lines)> = files.iter().filter(|(_, l)| l.hit < l.found).collect();
    missed.sort_by(|a, b| (b.1.found - b.1.hit).cmp(&(a.1.found - a.1.hit)).then(a.0.cmp(&b.0)));
    out.push_str(&format!("\nmost lines not covered:\n{:<52} {:>7} {:>8}\n", "file", "missed", "covered"));
    for (file, l) in missed.into_iter().take(weakest) {
        let rel = file.strip_prefix(root).unwrap_or(file).display().to_string();
        out.push_str(&format!("{rel:<52} {:>7} {:>7.1}%\n", l.found - l.hit, l.percent()));
    }
    out.push_str("\nout of host tests' reach:\n");
    for (file, l) in files {
        if let Some((path, why)) = out_of_reach(file) {
            out.push_str(&format!("{path:<28} {:>5.1}% of {:>4} lines: {why}\n", l.percent(), l.found));
        }
    }
    out
}

/// rustup's LLVM tools, which cargo-llvm-cov needs to merge and export the profiles.
fn ensure_llvm_tools() -> bool {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("llvm-tools")));
    if installed {
        return true;
    }
    println!("== installing llvm-tools-preview: rustup component add llvm-tools-preview");
    let ok =
        Command::new("rustup").args(["component", "add", "llvm-tools-preview"]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "llvm-tools-preview could not be installed; install with:\n    rustup component add llvm-tools-preview"
        );
    }
    ok
}

fn llvm_cov(args: &[&str]) -> bool {
    println!("== cargo llvm-cov {}", args.join(" "));
    Command::new(env!("CARGO"))
        .arg("llvm-cov")
        .args(args)
        .current_dir(workspace_root())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn run() -> bool {
    if !ensure_llvm_tools() || !setup::ensure_cargo_tools(setup::COVERAGE) {
        return false;
    }
    let root = workspace_root();
    let out = root.join("target/llvm-cov");
    if std::fs::create_dir_all(&out).is_err() {
        eprintln!("cannot create {}", out.display());
        return false;
    }
    let lcov = out.join("lcov.info");
    let (lcov_s, html_s) = (lcov.display().to_string(), out.display().to_string());
    let ignore = ["--ignore-filename-regex", IGNORE_TEST_FILES];
    // Tests run once (--no-report keeps the profiles, after the last run's are removed); both reports
    // read the same data.
    let ok = llvm_cov(&["clean", "--profraw-only"])
        && llvm_cov(&["--no-report"])
        && llvm_cov(&[&["report", "--lcov", "--output-path", &lcov_s][..], &ignore].concat())
        && llvm_cov(&[&["report", "--html", "--output-dir", &html_s][..], &ignore].concat());
    if !ok {
        eprintln!("cargo llvm-cov failed (see above)");
        return false;
    }
    let text = match std::fs::read_to_string(&lcov) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", lcov.display());
            return false;
        }
    };
    let files = parse_lcov(&text);
    if files.is_empty() {
        eprintln!("{} lists no source file", lcov.display());
        return false;
    }
    println!("\n{}", summary(&files, &root, &|d| d.join("Cargo.toml").is_file(), 12));
    println!("full report: {}/html/index.html (LCOV: {})", out.display(), lcov.display());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const LCOV: &str = "TN:\nSF:/w/a/src/lib.rs\nFN:1,f\nDA:1,1\nLF:10\nLH:9\nend_of_record\n\
                        SF:/w/a/src/x/deep.rs\nLF:10\nLH:1\nend_of_record\n\
                        SF:/w/b/core/src/lib.rs\nLF:4\nLH:4\nend_of_record\n\
                        SF:/w/broken.rs\nLF:7\n";

    fn manifests(d: &Path) -> bool {
        ["/w/a", "/w/b/core"].contains(&d.to_str().unwrap())
    }

    #[test]
    fn lcov_records_give_per_file_lines() {
        let files = parse_lcov(LCOV);
        assert_eq!(files.len(), 3, "an unterminated record is not counted: {files:?}");
        assert_eq!(files[0], (PathBuf::from("/w/a/src/lib.rs"), Lines { found: 10, hit: 9 }));
        assert_eq!(files[1].1, Lines { found: 10, hit: 1 });
    }

    #[test]
    fn files_are_summed_per_nearest_crate() {
        let files = parse_lcov(LCOV);
        let (total, crates) = by_crate(&files, Path::new("/w"), &manifests);
        assert_eq!(total, Lines { found: 24, hit: 14 });
        assert_eq!(crates["a"], Lines { found: 20, hit: 10 });
        assert_eq!(crates["b/core"], Lines { found: 4, hit: 4 });
        assert_eq!(crates.len(), 2);
        assert_eq!(crate_of(Path::new("/w/tools/x.rs"), Path::new("/w"), &manifests), "tools");
    }

    #[test]
    fn summary_prints_total_then_weakest_first() {
        let s = summary(&parse_lcov(LCOV), Path::new("/w"), &manifests, 1);
        assert!(s.starts_with("line coverage: 58.3% (14 of 24 lines)\n"), "{s}");
        let a = s.find("\na ").unwrap();
        let b = s.find("\nb/core ").unwrap();
        assert!(a < b, "the weaker crate comes first:\n{s}");
        assert!(s.contains("a/src/x/deep.rs"), "{s}");
        assert!(!s.contains("a/src/lib.rs "), "only the one weakest file is listed:\n{s}");
        assert_eq!(Lines::default().percent(), 100.0);
    }

    #[test]
    fn files_out_of_host_reach_are_counted_once_and_named() {
        let lcov = "SF:/w/libwatos/src/sys.rs\nLF:90\nLH:0\nend_of_record\n\
                    SF:/w/libwatos/src/fmt.rs\nLF:10\nLH:9\nend_of_record\n";
        let s = summary(&parse_lcov(lcov), Path::new("/w"), &|d| d == Path::new("/w/libwatos"), 5);
        assert!(s.starts_with("line coverage: 9.0% (9 of 100 lines)\n"), "{s}");
        assert!(s.contains("host tests can reach: 90.0% (9 of 10 lines; 1 files left out"), "{s}");
        assert!(s.contains("libwatos/src/sys.rs            0.0% of   90 lines: the system calls"), "{s}");
        let reach = &s[s.find("out of host tests' reach:").unwrap()..];
        assert!(!reach.contains("fmt.rs"), "a reachable file is not listed as out of reach:\n{s}");
    }
}
