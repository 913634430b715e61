//! `cargo xtask bench [NAME...]`: runs the host benchmark binaries of `tools/bench` (every file in
//! its `src/bin/`, or only the names given), in release mode. Each prints Markdown for
//! docs/BENCHMARKS.md. Benchmarks are never part of `cargo xtask test`.

use crate::{cargo, workspace_root};

pub fn run(names: &[String]) -> bool {
    let mut all: Vec<String> = std::fs::read_dir(workspace_root().join("tools/bench/src/bin"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    let chosen: Vec<&String> = all.iter().filter(|n| names.is_empty() || names.contains(n)).collect();
    if chosen.is_empty() {
        eprintln!("no benchmark matches {names:?}; available: {all:?}");
        return false;
    }
    let mut ok = true;
    for name in chosen {
        println!("\n## bench: {name}\n");
        ok &= cargo(&["run", "--release", "--quiet", "-p", "watos-bench", "--bin", name]);
    }
    ok
}
