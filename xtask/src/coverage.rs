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
//! and a second figure leaves them out, for the whole and for each crate. The bar is held per crate
//! on that second figure: a library crate (one with `src/lib.rs`) under `LIBRARY_BAR` is marked
//! `below 70 %` and fails the command; binaries (xtask) are reported but not held to it, their code
//! being drivers of QEMU and of other tools. Not part of `cargo xtask test` or CI: the instrumented
//! build and test run take as long again as the host tests.

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
    ("libwatos/src/transport_kernel.rs", "the transport's system calls, one per method; run by the QEMU boots"),
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

/// The bar every library crate's figure must reach once the files out of host reach are left out.
pub const LIBRARY_BAR: f64 = 70.0;

/// What a report says, and which library crates are below [`LIBRARY_BAR`] (empty when all reach it).
pub struct Report {
    pub text: String,
    pub below: Vec<String>,
}

/// How a crate directory is told apart: `has_manifest` says whether it holds a Cargo.toml (what makes
/// it a crate), `is_library` whether it builds a library (`src/lib.rs`), the crates held to the bar;
/// the rest are binaries (xtask), reported but not held to it.
pub struct Layout<'a> {
    pub has_manifest: &'a dyn Fn(&Path) -> bool,
    pub is_library: &'a dyn Fn(&Path) -> bool,
}

/// The report's lines: the total with and without the files out of host reach, each crate from
/// weakest up (all its lines, then without those files, which is the figure held to the bar), then
/// the `weakest` files with the most uncovered lines and the files left out with the reason.
pub fn summary(files: &[(PathBuf, Lines)], root: &Path, layout: &Layout, weakest: usize) -> Report {
    let has_manifest = layout.has_manifest;
    let (total, crates) = by_crate(files, root, has_manifest);
    let mut out = format!("line coverage: {:.1}% ({} of {} lines)\n", total.percent(), total.hit, total.found);
    let out_of_reach = |f: &Path| {
        let rel = f.strip_prefix(root).unwrap_or(f);
        OUT_OF_HOST_REACH.iter().find(|(p, _)| rel == Path::new(p))
    };
    let reachable: Vec<(PathBuf, Lines)> = files.iter().filter(|(f, _)| out_of_reach(f).is_none()).cloned().collect();
    let (in_reach, crates_in_reach) = by_crate(&reachable, root, has_manifest);
    out.push_str(&format!(
        "line coverage of what host tests can reach: {:.1}% ({} of {} lines; {} files left out, below)\n\n",
        in_reach.percent(),
        in_reach.hit,
        in_reach.found,
        files.len() - reachable.len()
    ));
    let mut rows: Vec<(&String, Lines, Lines)> =
        crates.iter().map(|(name, all)| (name, *all, crates_in_reach.get(name).copied().unwrap_or_default())).collect();
    rows.sort_by(|a, b| a.2.percent().total_cmp(&b.2.percent()).then(a.0.cmp(b.0)));
    out.push_str(&format!(
        "per crate; a library crate must cover {LIBRARY_BAR:.0}% of the lines host tests can reach, a binary is not held to it\n"
    ));
    out.push_str(&format!(
        "{:<28} {:<8} {:>7} {:>8} {:>9} {:>9}\n",
        "crate", "kind", "lines", "covered", "reachable", "covered"
    ));
    let mut below = Vec::new();
    for (name, all, reach) in rows {
        let library = (layout.is_library)(&root.join(name));
        let kind = if library { "library" } else { "binary" };
        let mark = if library && reach.percent() < LIBRARY_BAR {
            below.push(name.clone());
            format!("  below {LIBRARY_BAR:.0} %")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{name:<28} {kind:<8} {:>7} {:>7.1}% {:>9} {:>8.1}%{mark}\n",
            all.found,
            all.percent(),
            reach.found,
            reach.percent()
        ));
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
            out.push_str(&format!("{path:<34} {:>5.1}% of {:>4} lines: {why}\n", l.percent(), l.found));
        }
    }
    Report { text: out, below }
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
    let layout =
        Layout { has_manifest: &|d| d.join("Cargo.toml").is_file(), is_library: &|d| d.join("src/lib.rs").is_file() };
    let report = summary(&files, &root, &layout, 12);
    println!("\n{}", report.text);
    println!("full report: {}/html/index.html (LCOV: {})", out.display(), lcov.display());
    if !report.below.is_empty() {
        eprintln!(
            "library crates below {LIBRARY_BAR:.0}% of the lines host tests can reach: {}",
            report.below.join(", ")
        );
    }
    report.below.is_empty()
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

    fn layout() -> Layout<'static> {
        Layout { has_manifest: &manifests, is_library: &|d| d != Path::new("/w/a") }
    }

    #[test]
    fn summary_prints_total_then_weakest_first() {
        let s = summary(&parse_lcov(LCOV), Path::new("/w"), &layout(), 1).text;
        assert!(s.starts_with("line coverage: 58.3% (14 of 24 lines)\n"), "{s}");
        let a = s.find("\na ").unwrap();
        let b = s.find("\nb/core ").unwrap();
        assert!(a < b, "the weaker crate comes first:\n{s}");
        assert!(s.contains("a/src/x/deep.rs"), "{s}");
        assert!(!s.contains("a/src/lib.rs "), "only the one weakest file is listed:\n{s}");
        assert_eq!(Lines::default().percent(), 100.0);
    }

    #[test]
    fn a_library_crate_under_the_bar_is_marked_and_a_binary_is_not() {
        let lcov = "SF:/w/lib/src/lib.rs\nLF:100\nLH:69\nend_of_record\n\
                    SF:/w/ok/src/lib.rs\nLF:100\nLH:70\nend_of_record\n\
                    SF:/w/bin/src/main.rs\nLF:100\nLH:5\nend_of_record\n";
        let manifests = |d: &Path| ["/w/lib", "/w/ok", "/w/bin"].contains(&d.to_str().unwrap());
        let layout = Layout { has_manifest: &manifests, is_library: &|d| d != Path::new("/w/bin") };
        let r = summary(&parse_lcov(lcov), Path::new("/w"), &layout, 0);
        assert_eq!(r.below, ["lib"], "{}", r.text);
        let line = |name: &str| r.text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap().to_string();
        assert!(line("lib").contains("library") && line("lib").ends_with("below 70 %"), "{}", r.text);
        assert!(!line("ok").contains("below"), "exactly the bar passes: {}", r.text);
        assert!(line("bin").contains("binary") && !line("bin").contains("below"), "{}", r.text);
    }

    #[test]
    fn files_out_of_host_reach_are_counted_once_and_named() {
        let lcov = "SF:/w/libwatos/src/sys.rs\nLF:90\nLH:0\nend_of_record\n\
                    SF:/w/libwatos/src/fmt.rs\nLF:10\nLH:9\nend_of_record\n";
        let layout = Layout { has_manifest: &|d| d == Path::new("/w/libwatos"), is_library: &|_| true };
        let r = summary(&parse_lcov(lcov), Path::new("/w"), &layout, 5);
        let s = &r.text;
        assert!(s.starts_with("line coverage: 9.0% (9 of 100 lines)\n"), "{s}");
        assert!(s.contains("host tests can reach: 90.0% (9 of 10 lines; 1 files left out"), "{s}");
        let row = s.lines().find(|l| l.starts_with("libwatos ")).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols, ["libwatos", "library", "100", "9.0%", "10", "90.0%"], "the crate with and without: {s}");
        assert!(r.below.is_empty(), "the bar is held against the reachable lines: {s}");
        assert!(s.contains("libwatos/src/sys.rs                  0.0% of   90 lines: the system calls"), "{s}");
        let reach = &s[s.find("out of host tests' reach:").unwrap()..];
        assert!(!reach.contains("fmt.rs"), "a reachable file is not listed as out of reach:\n{s}");
    }
}
